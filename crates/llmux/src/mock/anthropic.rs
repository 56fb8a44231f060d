//! Anthropic's Messages API on the mock (docs/mock.md, "Anthropic"):
//! `POST /v1/messages` and `POST /v1/messages/count_tokens`, checked the way
//! the real API checks a request, answered and streamed in its format, with
//! the same faults as the OpenAI routes plus an `error` event mid-stream.

use super::answer::{DEFAULT_CONTENT, MockOptions, example_for_schema, words};
use super::{MockState, StreamGuard, event_stream, fault, raw, record};
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const DEFAULT_THINKING: &str = "Let me think about this.";
const MAX_CACHE_CONTROL: usize = 4;
const MIN_THINKING_BUDGET: u64 = 1024;
const THINKING_DOCS: &str = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size";

/// Top-level fields `POST /v1/messages` accepts; anything else is a 400.
const MESSAGES_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    "output_config",
    "output_format",
];

/// Top-level fields `POST /v1/messages/count_tokens` accepts.
const COUNT_TOKENS_FIELDS: &[&str] = &[
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "mcp_servers",
    "context_management",
    "output_config",
    "output_format",
];

/// The fields of a custom (client) tool.
const CUSTOM_TOOL_FIELDS: &[&str] = &[
    "name",
    "description",
    "input_schema",
    "cache_control",
    "type",
];

/// `type` prefixes of Anthropic's server and built-in client tools, whose
/// fields the mock does not check.
const SERVER_TOOL_TYPES: &[&str] = &[
    "bash_",
    "code_execution_",
    "computer_",
    "memory_",
    "mcp_toolset",
    "text_editor_",
    "tool_search_tool_",
    "web_fetch_",
    "web_search_",
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Endpoint {
    Messages,
    CountTokens,
}

pub async fn messages(State(s): State<Arc<MockState>>, req: Request) -> Response {
    handle(s, req, Endpoint::Messages).await
}

pub async fn count_tokens(State(s): State<Arc<MockState>>, req: Request) -> Response {
    handle(s, req, Endpoint::CountTokens).await
}

async fn handle(s: Arc<MockState>, req: Request, endpoint: Endpoint) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return error(400, "could not read the body", None),
    };
    record(&s, &parts.method, &parts.uri, &parts.headers, &body);

    if let Err((status, message)) = check_headers(&parts.headers) {
        return error(status, message, None);
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return error(400, "Input should be a valid dictionary", None),
        Err(e) => {
            return error(
                400,
                &format!("There was an error parsing the body: {e}"),
                None,
            );
        }
    };
    let opts = match MockOptions::read(None, &parts.headers, &request) {
        Ok(o) => o,
        Err(e) => return error(400, &format!("Invalid mock directive: {e}"), None),
    };
    if let Some(f) = fault(&s, &opts) {
        let message = f
            .message
            .unwrap_or_else(|| default_message(f.status).to_owned());
        return error(f.status, &message, f.retry_after);
    }
    let interleaved = parts
        .headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("interleaved-thinking"));
    if let Err(message) = validate(&request, endpoint, interleaved) {
        return error(400, &message, None);
    }

    let delay = opts.first_byte_delay_ms.unwrap_or(s.args.latency_ms);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }

    let input_tokens = (body.len() as u64 / 4).max(1);
    if endpoint == Endpoint::CountTokens {
        return json_response(&json!({"input_tokens": input_tokens}));
    }
    let reply = Reply::new(&request, &opts, input_tokens);
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let tps = opts.tokens_per_sec.unwrap_or(s.args.tokens_per_sec);
        s.streams_started.fetch_add(1, Ordering::Relaxed);
        let guard = StreamGuard {
            state: s.clone(),
            completed: false,
        };
        let mut r = event_stream(
            reply.sse(&opts),
            opts.reset_after_chunks,
            tps,
            guard,
            "text/event-stream; charset=utf-8",
        );
        r.headers_mut().insert("request-id", request_id());
        return r;
    }
    if opts.malformed {
        return raw(
            200,
            "application/json",
            Bytes::from_static(b"{\"id\":\"msg_broken\",\"type\":\"message\",\"content\":[{"),
        );
    }
    json_response(&reply.message())
}

// ---------------------------------------------------------------------------
// Errors

/// Anthropic's error `type` for an HTTP status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

fn default_message(status: u16) -> &'static str {
    match status {
        529 => "Overloaded",
        500 => "Internal server error",
        _ => "mock fault",
    }
}

/// An error the way Anthropic sends one.
fn error(status: u16, message: &str, retry_after: Option<u64>) -> Response {
    let id = next_id();
    let body = json!({
        "type": "error",
        "error": {"type": error_type(status), "message": message},
        "request_id": format!("req_mock{id}"),
    });
    let mut r = raw(status, "application/json", Bytes::from(body.to_string()));
    if let Ok(v) = HeaderValue::from_str(&format!("req_mock{id}")) {
        r.headers_mut().insert("request-id", v);
    }
    if let Some(secs) = retry_after {
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

fn json_response(v: &Value) -> Response {
    let mut r = raw(200, "application/json", Bytes::from(v.to_string()));
    r.headers_mut().insert("request-id", request_id());
    r
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{nanos:x}{:04}",
        NEXT_ID.fetch_add(1, Ordering::Relaxed) % 10_000
    )
}

fn request_id() -> HeaderValue {
    HeaderValue::from_str(&format!("req_mock{}", next_id()))
        .unwrap_or_else(|_| HeaderValue::from_static("req_mock"))
}

// ---------------------------------------------------------------------------
// Validation

/// `x-api-key` (401 without it) and `anthropic-version` (400 without it).
fn check_headers(headers: &HeaderMap) -> Result<(), (u16, &'static str)> {
    if headers.get("x-api-key").is_none_or(|v| v.is_empty()) {
        return Err((401, "x-api-key header is required"));
    }
    if headers
        .get("anthropic-version")
        .is_none_or(|v| v.is_empty())
    {
        return Err((400, "anthropic-version: header is required"));
    }
    Ok(())
}

/// The first problem the real API would report with this request body, as
/// its `invalid_request_error` message.
fn validate(req: &Value, endpoint: Endpoint, interleaved_thinking: bool) -> Result<(), String> {
    let Some(obj) = req.as_object() else {
        return Err("Input should be a valid dictionary".to_owned());
    };
    let allowed = match endpoint {
        Endpoint::Messages => MESSAGES_FIELDS,
        Endpoint::CountTokens => COUNT_TOKENS_FIELDS,
    };
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("{k}: Extra inputs are not permitted"));
    }
    match obj.get("model") {
        None => return Err("model: Field required".to_owned()),
        Some(Value::String(_)) => {}
        Some(_) => return Err("model: Input should be a valid string".to_owned()),
    }
    let max_tokens = match endpoint {
        Endpoint::Messages => Some(positive_int("max_tokens", obj.get("max_tokens"), 1)?),
        Endpoint::CountTokens => None,
    };
    check_messages(obj.get("messages"))?;
    if obj
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
        .is_some_and(|u| u.contains('@'))
    {
        return Err("metadata.user_id: user_id appears to contain an email address, which is not permitted. Please use an anonymous identifier such as a hash or UUID instead.".to_owned());
    }
    check_system(obj.get("system"))?;
    check_tools(obj.get("tools"))?;
    check_tool_choice(obj)?;
    let n = count_cache_control(obj);
    if n > MAX_CACHE_CONTROL {
        return Err(format!(
            "A maximum of {MAX_CACHE_CONTROL} blocks with cache_control may be provided. Found {n}."
        ));
    }
    check_thinking(obj, max_tokens, interleaved_thinking)
}

/// Tool-use ids as the API takes them: `^[a-zA-Z0-9_-]+$`.
fn valid_tool_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// An integer field that must be at least `min`.
fn positive_int(path: &str, v: Option<&Value>, min: u64) -> Result<u64, String> {
    let n = match v {
        None => return Err(format!("{path}: Field required")),
        Some(Value::Number(n)) => n,
        Some(_) => return Err(format!("{path}: Input should be a valid integer")),
    };
    let value = match (n.as_u64(), n.as_i64(), n.as_f64()) {
        (Some(u), _, _) => u,
        (None, Some(_), _) => 0, // negative
        (None, None, Some(f)) if f.fract() == 0.0 => {
            if f < 0.0 {
                0
            } else {
                f as u64
            }
        }
        _ => return Err(format!("{path}: Input should be a valid integer")),
    };
    if value < min {
        return Err(format!(
            "{path}: Input should be greater than or equal to {min}"
        ));
    }
    Ok(value)
}

fn role(m: &Value) -> Option<&str> {
    m.get("role").and_then(Value::as_str)
}

fn blocks(m: &Value) -> &[Value] {
    m.get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn block_type(b: &Value) -> Option<&str> {
    b.get("type").and_then(Value::as_str)
}

/// The ids of the `tool_use` blocks of a message.
fn tool_use_ids(m: &Value) -> Vec<&str> {
    blocks(m)
        .iter()
        .filter(|b| block_type(b) == Some("tool_use"))
        .filter_map(|b| b.get("id").and_then(Value::as_str))
        .collect()
}

/// The `tool_use_id`s of the `tool_result` blocks of a message, with the
/// blocks' indexes.
fn tool_results(m: &Value) -> Vec<(usize, &str)> {
    blocks(m)
        .iter()
        .enumerate()
        .filter(|(_, b)| block_type(b) == Some("tool_result"))
        .map(|(j, b)| {
            (
                j,
                b.get("tool_use_id").and_then(Value::as_str).unwrap_or(""),
            )
        })
        .collect()
}

fn check_messages(messages: Option<&Value>) -> Result<(), String> {
    let Some(v) = messages else {
        return Err("messages: Field required".to_owned());
    };
    let Some(list) = v.as_array() else {
        return Err("messages: Input should be a valid list".to_owned());
    };
    if list.is_empty() {
        return Err("messages: at least one message is required".to_owned());
    }
    let last = list.len() - 1;
    for (i, m) in list.iter().enumerate() {
        if !m.is_object() {
            return Err(format!(
                "messages.{i}: Input should be a valid dictionary or object to extract fields from"
            ));
        }
        match (m.get("role"), role(m)) {
            (None, _) => return Err(format!("messages.{i}.role: Field required")),
            (_, Some("user" | "assistant")) => {}
            _ => {
                return Err(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                ));
            }
        }
        let empty = match m.get("content") {
            None => return Err(format!("messages.{i}.content: Field required")),
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            Some(_) => {
                return Err(format!(
                    "messages.{i}.content: Input should be a valid list"
                ));
            }
        };
        if empty && !(i == last && role(m) == Some("assistant")) {
            return Err(format!(
                "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
            ));
        }
        for (j, b) in blocks(m).iter().enumerate() {
            match block_type(b) {
                None => {
                    return Err(format!("messages.{i}.content.{j}.type: Field required"));
                }
                Some("thinking") if b.get("signature").is_none_or(Value::is_null) => {
                    return Err(format!(
                        "messages.{i}.content.{j}.thinking.signature: Field required"
                    ));
                }
                Some("redacted_thinking") if b.get("data").is_none_or(Value::is_null) => {
                    return Err(format!(
                        "messages.{i}.content.{j}.redacted_thinking.data: Field required"
                    ));
                }
                Some("tool_result") if b.get("tool_use_id").is_none() => {
                    return Err(format!(
                        "messages.{i}.content.{j}.tool_result.tool_use_id: Field required"
                    ));
                }
                Some("tool_use")
                    if b.get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| !valid_tool_id(id)) =>
                {
                    return Err(format!(
                        "messages.{i}.content.{j}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
                    ));
                }
                Some("tool_result")
                    if b.get("tool_use_id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| !valid_tool_id(id)) =>
                {
                    return Err(format!(
                        "messages.{i}.content.{j}.tool_result.tool_use_id: String should match pattern '^[a-zA-Z0-9_-]+$'"
                    ));
                }
                Some("tool_use") if b.get("id").is_none() => {
                    return Err(format!(
                        "messages.{i}.content.{j}.tool_use.id: Field required"
                    ));
                }
                _ => {}
            }
        }
    }
    if role(&list[0]) != Some("user") {
        return Err("messages: first message must use the \"user\" role".to_owned());
    }
    // Tool results answer the tool calls of the message just before, and
    // every tool call is answered in the message just after.
    for (i, m) in list.iter().enumerate() {
        if role(m) == Some("assistant") && i < last {
            let ids = tool_use_ids(m);
            let answered: Vec<&str> = tool_results(&list[i + 1])
                .into_iter()
                .map(|(_, id)| id)
                .collect();
            let missing: Vec<&str> = ids
                .into_iter()
                .filter(|id| !answered.contains(id))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                    missing.join(", ")
                ));
            }
        }
        if role(m) == Some("user") {
            let prev = if i > 0 && role(&list[i - 1]) == Some("assistant") {
                tool_use_ids(&list[i - 1])
            } else {
                vec![]
            };
            if let Some((j, id)) = tool_results(m)
                .into_iter()
                .find(|(_, id)| !prev.contains(id))
            {
                return Err(format!(
                    "messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                ));
            }
        }
    }
    Ok(())
}

fn check_system(system: Option<&Value>) -> Result<(), String> {
    match system {
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(list)) => {
            for (i, b) in list.iter().enumerate() {
                match block_type(b) {
                    Some("text") => {}
                    None => return Err(format!("system.{i}.type: Field required")),
                    Some(_) => return Err(format!("system.{i}.type: Input should be 'text'")),
                }
            }
            Ok(())
        }
        Some(_) => Err("system: Input should be a valid list".to_owned()),
    }
}

fn is_server_tool(kind: &str) -> bool {
    SERVER_TOOL_TYPES.iter().any(|p| kind.starts_with(p))
}

fn valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_tools(tools: Option<&Value>) -> Result<(), String> {
    let Some(v) = tools else { return Ok(()) };
    let Some(list) = v.as_array() else {
        return Err("tools: Input should be a valid list".to_owned());
    };
    for (i, t) in list.iter().enumerate() {
        let Some(o) = t.as_object() else {
            return Err(format!(
                "tools.{i}: Input should be a valid dictionary or object to extract fields from"
            ));
        };
        match o.get("type").and_then(Value::as_str) {
            None | Some("custom") => {}
            Some(kind) if is_server_tool(kind) => continue,
            Some(kind) => {
                return Err(format!(
                    "tools.{i}: Input tag '{kind}' found using 'type' does not match any of the expected tags: 'custom', 'bash_20250124', 'code_execution_20250825', 'computer_20250124', 'text_editor_20250728', 'web_fetch_20250910', 'web_search_20250305'"
                ));
            }
        }
        if let Some(k) = o.keys().find(|k| !CUSTOM_TOOL_FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "tools.{i}.custom.{k}: Extra inputs are not permitted"
            ));
        }
        match o.get("name") {
            None => return Err(format!("tools.{i}.custom.name: Field required")),
            Some(Value::String(name)) if valid_tool_name(name) => {}
            Some(_) => {
                return Err(format!(
                    "tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
                ));
            }
        }
        match o.get("input_schema") {
            None => return Err(format!("tools.{i}.custom.input_schema: Field required")),
            Some(Value::Object(_)) => {}
            Some(_) => {
                return Err(format!(
                    "tools.{i}.custom.input_schema: Input should be a valid dictionary"
                ));
            }
        }
    }
    Ok(())
}

fn check_tool_choice(obj: &Map<String, Value>) -> Result<(), String> {
    let Some(choice) = obj.get("tool_choice") else {
        return Ok(());
    };
    let kind = choice.get("type").and_then(Value::as_str);
    match kind {
        Some("auto" | "any" | "none") => {}
        Some("tool") => {
            if choice.get("name").and_then(Value::as_str).is_none() {
                return Err("tool_choice.tool.name: Field required".to_owned());
            }
        }
        None => return Err("tool_choice.type: Field required".to_owned()),
        Some(other) => {
            return Err(format!(
                "tool_choice: Input tag '{other}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
            ));
        }
    }
    let has_tools = obj
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    if !has_tools && kind != Some("none") {
        return Err("tool_choice may only be specified while providing tools.".to_owned());
    }
    Ok(())
}

/// Blocks carrying `cache_control`: system blocks, tools, message content
/// blocks and the blocks inside tool results.
fn count_cache_control(obj: &Map<String, Value>) -> usize {
    fn has(v: &Value) -> usize {
        usize::from(v.get("cache_control").is_some_and(|c| !c.is_null()))
    }
    let list = |k: &str| {
        obj.get(k)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    };
    let mut n: usize = list("system").iter().map(has).sum();
    n += list("tools").iter().map(has).sum::<usize>();
    for m in list("messages") {
        for b in blocks(m) {
            n += has(b);
            if let Some(inner) = b.get("content").and_then(Value::as_array) {
                n += inner.iter().map(has).sum::<usize>();
            }
        }
    }
    n
}

/// `thinking` as sent: is it on (`enabled` or `adaptive`)?
fn thinking_on(req: &Value) -> bool {
    matches!(
        req.get("thinking")
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str),
        Some("enabled" | "adaptive")
    )
}

fn check_thinking(
    obj: &Map<String, Value>,
    max_tokens: Option<u64>,
    interleaved: bool,
) -> Result<(), String> {
    let Some(t) = obj.get("thinking") else {
        return Ok(());
    };
    match t.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            let budget = positive_int(
                "thinking.enabled.budget_tokens",
                t.get("budget_tokens"),
                MIN_THINKING_BUDGET,
            )?;
            if max_tokens.is_some_and(|max| budget >= max) && !interleaved {
                return Err(format!(
                    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at {THINKING_DOCS}"
                ));
            }
        }
        Some("disabled" | "adaptive") => return Ok(()),
        None => return Err("thinking.type: Field required".to_owned()),
        Some(other) => {
            return Err(format!(
                "thinking: Input tag '{other}' found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'"
            ));
        }
    }
    let forced = obj
        .get("tool_choice")
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str);
    if matches!(forced, Some("any" | "tool")) {
        return Err("Thinking may not be enabled when tool_choice forces tool use.".to_owned());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The answer

#[derive(Debug)]
enum Block {
    Thinking {
        thinking: String,
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// A search Claude ran with the web search tool.
    ServerToolUse {
        id: String,
        input: Value,
    },
    /// What that search found: streamed whole in its start event.
    WebSearchResult {
        tool_use_id: String,
        content: Value,
    },
    /// Text that cites a search result.
    CitedText {
        text: String,
        citation: Value,
    },
}

impl Block {
    /// The whole block, as in a non-streaming `message`.
    fn json(&self) -> Value {
        match self {
            Block::Thinking {
                thinking,
                signature,
            } => {
                json!({"type": "thinking", "thinking": thinking, "signature": signature})
            }
            Block::RedactedThinking { data } => json!({"type": "redacted_thinking", "data": data}),
            Block::Text(text) => json!({"type": "text", "text": text}),
            Block::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
            Block::ServerToolUse { id, input } => {
                json!({"type": "server_tool_use", "id": id, "name": "web_search", "input": input})
            }
            Block::WebSearchResult {
                tool_use_id,
                content,
            } => {
                json!({"type": "web_search_tool_result", "tool_use_id": tool_use_id, "content": content})
            }
            Block::CitedText { text, citation } => {
                json!({"type": "text", "text": text, "citations": [citation]})
            }
        }
    }

    /// The block as `content_block_start` carries it: empty, but whole for
    /// redacted thinking.
    fn start(&self) -> Value {
        match self {
            Block::Thinking { .. } => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Block::RedactedThinking { .. } => self.json(),
            Block::Text(_) => json!({"type": "text", "text": ""}),
            Block::ToolUse { id, name, .. } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": {}})
            }
            Block::ServerToolUse { id, .. } => {
                json!({"type": "server_tool_use", "id": id, "name": "web_search", "input": {}})
            }
            Block::WebSearchResult { .. } => self.json(),
            Block::CitedText { .. } => json!({"type": "text", "text": "", "citations": []}),
        }
    }

    /// The `delta`s of its `content_block_delta` events.
    fn deltas(&self) -> Vec<Value> {
        match self {
            Block::Thinking {
                thinking,
                signature,
            } => {
                let mut out: Vec<Value> = words(thinking)
                    .into_iter()
                    .map(|w| json!({"type": "thinking_delta", "thinking": w}))
                    .collect();
                out.push(json!({"type": "signature_delta", "signature": signature}));
                out
            }
            Block::RedactedThinking { .. } => vec![],
            Block::Text(text) => words(text)
                .into_iter()
                .map(|w| json!({"type": "text_delta", "text": w}))
                .collect(),
            Block::ToolUse { input, .. } | Block::ServerToolUse { input, .. } => {
                let json = input.to_string();
                pieces(&json, 3)
                    .into_iter()
                    .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                    .collect()
            }
            Block::WebSearchResult { .. } => vec![],
            // The citation first, then the text it backs.
            Block::CitedText { text, citation } => {
                let mut out = vec![json!({"type": "citations_delta", "citation": citation})];
                out.extend(
                    words(text)
                        .into_iter()
                        .map(|w| json!({"type": "text_delta", "text": w})),
                );
                out
            }
        }
    }
}

/// `s` cut in at most `n` pieces of about the same length, on character
/// boundaries, none empty.
pub(super) fn pieces(s: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for k in 1..=n {
        let mut end = s.len() * k / n;
        while !s.is_char_boundary(end) {
            end += 1;
        }
        if end > start {
            out.push(&s[start..end]);
            start = end;
        }
    }
    out
}

/// A `message` answer: its blocks, stop reason and usage.
pub struct Reply {
    id: String,
    model: String,
    blocks: Vec<Block>,
    stop_reason: String,
    stop_sequence: Option<String>,
    input_tokens: u64,
    output_tokens: u64,
    cache_read: u64,
    cache_creation: u64,
    web_searches: u64,
}

impl Reply {
    pub fn new(req: &Value, opts: &MockOptions, input_tokens: u64) -> Reply {
        let mut blocks = Vec::new();
        let mut output_tokens = 0;
        if thinking_on(req) {
            let thinking = opts
                .thinking
                .clone()
                .unwrap_or_else(|| DEFAULT_THINKING.to_owned());
            output_tokens += thinking.split_whitespace().count() as u64;
            blocks.push(Block::Thinking {
                signature: base64(format!("llmux-mock-signature:{thinking}").as_bytes()),
                thinking,
            });
            if opts.redacted_thinking {
                blocks.push(Block::RedactedThinking {
                    data: base64(b"llmux-mock-redacted-thinking"),
                });
            }
        }
        let calls = tool_uses(req, opts);
        let search = calls.is_empty().then(|| web_search(req)).flatten();
        let web_searches = u64::from(search.is_some());
        let default_stop = if let Some(found) = search {
            output_tokens += 20;
            blocks.extend(found);
            "end_turn"
        } else if calls.is_empty() {
            let text = opts
                .content
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTENT.to_owned());
            output_tokens += text.split_whitespace().count() as u64;
            blocks.push(Block::Text(text));
            "end_turn"
        } else {
            output_tokens += 10 * calls.len() as u64;
            blocks.extend(calls);
            "tool_use"
        };
        let stop_reason = opts
            .stop_reason
            .clone()
            .unwrap_or_else(|| default_stop.to_owned());
        let stop_sequence = (stop_reason == "stop_sequence")
            .then(|| {
                opts.stop_sequence.clone().or_else(|| {
                    req.get("stop_sequences")
                        .and_then(|s| s.get(0))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
            })
            .flatten();
        Reply {
            id: format!("msg_mock{}", next_id()),
            model: req
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            blocks,
            stop_reason,
            stop_sequence,
            input_tokens,
            output_tokens: output_tokens.max(1),
            cache_read: opts.cached_tokens.unwrap_or(0),
            cache_creation: opts.cache_creation_tokens.unwrap_or(0),
            web_searches,
        }
    }

    fn usage(&self, output_tokens: u64) -> Value {
        let mut usage = json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_creation,
                "ephemeral_1h_input_tokens": 0
            },
            "output_tokens": output_tokens,
            "service_tier": "standard"
        });
        if self.web_searches > 0 {
            usage["server_tool_use"] = json!({"web_search_requests": self.web_searches});
        }
        usage
    }

    fn envelope(&self, content: Vec<Value>, stop: bool, output_tokens: u64) -> Value {
        let (stop_reason, stop_sequence) = if stop {
            (json!(self.stop_reason), json!(self.stop_sequence))
        } else {
            (Value::Null, Value::Null)
        };
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": self.usage(output_tokens)
        })
    }

    /// `message_delta`'s usage: the output so far and the searches run.
    fn delta_usage(&self) -> Value {
        let mut usage = json!({"output_tokens": self.output_tokens});
        if self.web_searches > 0 {
            usage["server_tool_use"] = json!({"web_search_requests": self.web_searches});
        }
        usage
    }

    /// The non-streaming answer.
    pub fn message(&self) -> Value {
        self.envelope(
            self.blocks.iter().map(Block::json).collect(),
            true,
            self.output_tokens,
        )
    }

    /// The stream's events, as (event name, data).
    pub fn events(&self) -> Vec<(&'static str, Value)> {
        let mut out = vec![
            (
                "message_start",
                json!({"type": "message_start", "message": self.envelope(vec![], false, 1)}),
            ),
            ("ping", json!({"type": "ping"})),
        ];
        for (index, block) in self.blocks.iter().enumerate() {
            out.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": block.start()}),
            ));
            for delta in block.deltas() {
                out.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": delta}),
                ));
            }
            out.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
        }
        out.push((
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence},
                "usage": self.delta_usage()
            }),
        ));
        out.push(("message_stop", json!({"type": "message_stop"})));
        out
    }

    /// The stream as SSE bytes, with the faults of `opts` applied: a
    /// malformed event after `message_start`, or an `error` event after
    /// `error_event_after` events.
    fn sse(&self, opts: &MockOptions) -> Vec<Bytes> {
        let mut events: Vec<Bytes> = self
            .events()
            .into_iter()
            .map(|(name, data)| sse_event(name, &data))
            .collect();
        if opts.malformed {
            events.insert(
                1.min(events.len()),
                Bytes::from_static(
                    b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\n\n",
                ),
            );
        }
        if let Some(n) = opts.error_event_after {
            events.truncate(n);
            let message = opts.message.as_deref().unwrap_or("Overloaded");
            events.push(sse_event(
                "error",
                &json!({"type": "error", "error": {"type": "overloaded_error", "message": message}}),
            ));
        }
        events
    }
}

fn sse_event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// `tool_use` blocks when the request offers custom tools, `tool_choice`
/// is not `none` and the last user turn is not only tool results.
fn tool_uses(req: &Value, opts: &MockOptions) -> Vec<Block> {
    let tools: Vec<&Value> = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| matches!(block_type(t), None | Some("custom")))
        .filter(|t| t.get("name").and_then(Value::as_str).is_some())
        .collect();
    if tools.is_empty() {
        return vec![];
    }
    let choice = req.get("tool_choice");
    let kind = choice.and_then(|c| c.get("type")).and_then(Value::as_str);
    if kind == Some("none") {
        return vec![];
    }
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let answering = messages
        .iter()
        .rev()
        .find(|m| role(m) == Some("user"))
        .is_some_and(|m| {
            let b = blocks(m);
            !b.is_empty() && b.iter().all(|b| block_type(b) == Some("tool_result"))
        });
    if answering {
        return vec![];
    }
    let forced = if kind == Some("tool") {
        choice.and_then(|c| c.get("name")).and_then(Value::as_str)
    } else {
        None
    };
    let single = choice
        .and_then(|c| c.get("disable_parallel_tool_use"))
        .and_then(Value::as_bool)
        == Some(true);
    let n = opts.tool_calls.unwrap_or(1);
    let n = if single { n.min(1) } else { n };
    let name_of = |t: &Value| {
        t.get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (0..n)
        .map(|i| {
            let tool = forced
                .and_then(|f| tools.iter().find(|t| name_of(t) == f))
                .unwrap_or(&tools[i % tools.len()]);
            Block::ToolUse {
                id: format!("toolu_mock_{i}"),
                name: name_of(tool),
                input: tool
                    .get("input_schema")
                    .map(example_for_schema)
                    .unwrap_or_else(|| json!({})),
            }
        })
        .collect()
}

/// A web search's blocks when the request offers the web search tool: the
/// search (for the last user text), one result, and text citing it, as
/// Claude answers.
fn web_search(req: &Value) -> Option<Vec<Block>> {
    let offered = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|t| block_type(t).is_some_and(|k| k.starts_with("web_search_")));
    if !offered {
        return None;
    }
    let query: String = req
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.iter().rev().find(|m| role(m) == Some("user")))
        .map(|m| match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            _ => blocks(m)
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" "),
        })
        .unwrap_or_default();
    let id = format!("srvtoolu_mock{}", next_id());
    let (url, title) = ("https://example.com/llmux-mock", "llmux mock search result");
    Some(vec![
        Block::Text("Let me search the web. ".to_owned()),
        Block::ServerToolUse {
            id: id.clone(),
            input: json!({ "query": query }),
        },
        Block::WebSearchResult {
            tool_use_id: id,
            content: json!([{
                "type": "web_search_result", "url": url, "title": title,
                "encrypted_content": base64(b"llmux-mock-search-result"), "page_age": null
            }]),
        },
        Block::CitedText {
            text: "The mock web says hello.".to_owned(),
            citation: json!({
                "type": "web_search_result_location", "url": url, "title": title,
                "encrypted_index": base64(b"llmux-mock-index"), "cited_text": "Hello from the mock web."
            }),
        },
    ])
}

/// Standard base64 with padding, for mock signatures.
pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 2048,
               "messages": [{"role": "user", "content": "hi"}]})
    }

    fn with(mut v: Value, k: &str, x: Value) -> Value {
        v[k] = x;
        v
    }

    fn check(v: &Value) -> Result<(), String> {
        validate(v, Endpoint::Messages, false)
    }

    fn err(v: &Value) -> String {
        check(v).expect_err("should be rejected")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accepts_a_plain_request() {
        assert_eq!(check(&base()), Ok(()));
        let v = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(validate(&v, Endpoint::CountTokens, false), Ok(()));
    }

    #[test]
    fn requires_the_key_and_version_headers() {
        assert_eq!(
            check_headers(&headers(&[("anthropic-version", "2023-06-01")])),
            Err((401, "x-api-key header is required"))
        );
        assert_eq!(
            check_headers(&headers(&[("x-api-key", "k")])),
            Err((400, "anthropic-version: header is required"))
        );
        assert_eq!(
            check_headers(&headers(&[
                ("x-api-key", "k"),
                ("anthropic-version", "2023-06-01")
            ])),
            Ok(())
        );
        assert_eq!(error_type(401), "authentication_error");
        assert_eq!(error_type(529), "overloaded_error");
        assert_eq!(error_type(413), "request_too_large");
    }

    #[test]
    fn checks_max_tokens() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("max_tokens");
        assert_eq!(err(&v), "max_tokens: Field required");
        assert_eq!(
            err(&with(base(), "max_tokens", json!("10"))),
            "max_tokens: Input should be a valid integer"
        );
        assert_eq!(
            err(&with(base(), "max_tokens", json!(0))),
            "max_tokens: Input should be greater than or equal to 1"
        );
        // count_tokens takes no max_tokens at all.
        assert_eq!(
            validate(&base(), Endpoint::CountTokens, false),
            Err("max_tokens: Extra inputs are not permitted".to_owned())
        );
    }

    #[test]
    fn checks_messages() {
        assert_eq!(
            err(&with(base(), "messages", json!([]))),
            "messages: at least one message is required"
        );
        assert_eq!(
            err(&with(
                base(),
                "messages",
                json!([{"role": "assistant", "content": "x"}])
            )),
            "messages: first message must use the \"user\" role"
        );
        assert_eq!(
            err(&with(
                base(),
                "messages",
                json!([{"role": "system", "content": "x"}])
            )),
            "messages.0.role: Input should be 'user' or 'assistant'"
        );
        // An empty final assistant message (prefill) is fine; an empty user one is not.
        let prefill =
            json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]);
        assert_eq!(check(&with(base(), "messages", prefill)), Ok(()));
        assert!(
            err(&with(
                base(),
                "messages",
                json!([{"role": "user", "content": []}])
            ))
            .contains("non-empty content")
        );
    }

    #[test]
    fn rejects_unknown_fields() {
        assert_eq!(
            err(&with(base(), "mock", json!({}))),
            "mock: Extra inputs are not permitted"
        );
        assert_eq!(
            err(&with(base(), "response_format", json!({}))),
            "response_format: Extra inputs are not permitted"
        );
    }

    #[test]
    fn pairs_tool_results_with_tool_uses() {
        let ok = json!([
            {"role": "user", "content": "read"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]}
        ]);
        assert_eq!(check(&with(base(), "messages", ok)), Ok(()));
        let orphan = json!([
            {"role": "user", "content": "read"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "y"}]}
        ]);
        assert_eq!(
            err(&with(base(), "messages", orphan)),
            "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_2. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
        );
        let unanswered = json!([
            {"role": "user", "content": "read"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
            {"role": "user", "content": "never mind"}
        ]);
        assert!(err(&with(base(), "messages", unanswered))
            .starts_with("messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1."));
    }

    #[test]
    fn limits_cache_control_to_four_blocks() {
        let cc = json!({"type": "ephemeral"});
        let v = json!({
            "model": "m", "max_tokens": 10,
            "system": [{"type": "text", "text": "a", "cache_control": cc},
                       {"type": "text", "text": "b", "cache_control": cc}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}, "cache_control": cc}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "c", "cache_control": cc},
                {"type": "text", "text": "d", "cache_control": cc}]}]
        });
        assert_eq!(
            err(&v),
            "A maximum of 4 blocks with cache_control may be provided. Found 5."
        );
    }

    #[test]
    fn checks_tool_fields() {
        let strict = json!([{"name": "f", "input_schema": {"type": "object"}, "strict": true}]);
        assert_eq!(
            err(&with(base(), "tools", strict)),
            "tools.0.custom.strict: Extra inputs are not permitted"
        );
        let openai = json!([{"type": "function", "function": {"name": "f"}}]);
        assert!(err(&with(base(), "tools", openai)).starts_with("tools.0: Input tag 'function'"));
        let no_schema = json!([{"name": "f"}]);
        assert_eq!(
            err(&with(base(), "tools", no_schema)),
            "tools.0.custom.input_schema: Field required"
        );
        let server = json!([{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]);
        assert_eq!(check(&with(base(), "tools", server)), Ok(()));
        assert_eq!(
            err(&with(base(), "tool_choice", json!({"type": "auto"}))),
            "tool_choice may only be specified while providing tools."
        );
    }

    #[test]
    fn checks_thinking() {
        let t = |budget: u64| {
            with(
                base(),
                "thinking",
                json!({"type": "enabled", "budget_tokens": budget}),
            )
        };
        assert_eq!(check(&t(1024)), Ok(()));
        assert_eq!(
            err(&t(1000)),
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        );
        assert!(
            err(&t(2048))
                .starts_with("`max_tokens` must be greater than `thinking.budget_tokens`.")
        );
        assert_eq!(validate(&t(2048), Endpoint::Messages, true), Ok(()));
        let unsigned = json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "yo"}]},
            {"role": "user", "content": "again"}
        ]);
        assert_eq!(
            err(&with(base(), "messages", unsigned)),
            "messages.1.content.0.thinking.signature: Field required"
        );
    }

    fn tool_request() -> Value {
        json!({"model": "claude-x", "max_tokens": 4096,
        "messages": [{"role": "user", "content": "read"}],
        "tools": [
            {"name": "read_file", "input_schema": {"type": "object", "properties":
                {"path": {"type": "string"}, "line": {"type": "integer"}}}},
            {"name": "ls", "input_schema": {"type": "object", "properties": {"all": {"type": "boolean"}}}}
        ]})
    }

    #[test]
    fn calls_tools_with_inputs_from_their_schema() {
        let opts = MockOptions {
            tool_calls: Some(3),
            ..Default::default()
        };
        let m = Reply::new(&tool_request(), &opts, 10).message();
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(m["model"], "claude-x");
        let content = m["content"].as_array().unwrap();
        assert_eq!(content.len(), 3);
        assert_eq!(
            content[0],
            json!({"type": "tool_use", "id": "toolu_mock_0", "name": "read_file",
                   "input": {"path": "mock", "line": 1}})
        );
        assert_eq!(content[1]["name"], "ls");
        assert_eq!(content[1]["input"], json!({"all": true}));
        assert_eq!(content[2]["id"], "toolu_mock_2");
        assert_eq!(m["usage"]["output_tokens"], 30);

        // A forced tool, without parallel calls.
        let forced = with(
            tool_request(),
            "tool_choice",
            json!({"type": "tool", "name": "ls", "disable_parallel_tool_use": true}),
        );
        let m = Reply::new(&forced, &opts, 10).message();
        assert_eq!(m["content"].as_array().unwrap().len(), 1);
        assert_eq!(m["content"][0]["name"], "ls");

        // tool_choice none, or answering tool results: text.
        let none = with(tool_request(), "tool_choice", json!({"type": "none"}));
        assert_eq!(
            Reply::new(&none, &opts, 10).message()["stop_reason"],
            "end_turn"
        );
        let answering = with(
            tool_request(),
            "messages",
            json!([
                {"role": "user", "content": "read"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_mock_0", "name": "ls", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_mock_0", "content": "a b"}]}
            ]),
        );
        let m = Reply::new(&answering, &opts, 10).message();
        assert_eq!(
            m["content"],
            json!([{"type": "text", "text": DEFAULT_CONTENT}])
        );
        assert_eq!(m["stop_reason"], "end_turn");
    }

    #[test]
    fn answers_with_thinking_and_usage() {
        let req = with(
            base(),
            "thinking",
            json!({"type": "enabled", "budget_tokens": 1024}),
        );
        let opts = MockOptions {
            redacted_thinking: true,
            content: Some("one two three".into()),
            cached_tokens: Some(100),
            cache_creation_tokens: Some(50),
            ..Default::default()
        };
        let m = Reply::new(&req, &opts, 42).message();
        assert!(m["id"].as_str().unwrap().starts_with("msg_mock"));
        assert_eq!(m["type"], "message");
        assert_eq!(m["role"], "assistant");
        assert_eq!(m["content"][0]["type"], "thinking");
        assert_eq!(m["content"][0]["thinking"], DEFAULT_THINKING);
        assert!(!m["content"][0]["signature"].as_str().unwrap().is_empty());
        assert_eq!(m["content"][1]["type"], "redacted_thinking");
        assert_eq!(
            m["content"][2],
            json!({"type": "text", "text": "one two three"})
        );
        assert_eq!(m["stop_sequence"], Value::Null);
        assert_eq!(m["usage"]["input_tokens"], 42);
        assert_eq!(m["usage"]["cache_read_input_tokens"], 100);
        assert_eq!(m["usage"]["cache_creation_input_tokens"], 50);
        assert_eq!(m["usage"]["output_tokens"], 5 + 3);

        let stop = MockOptions {
            stop_reason: Some("stop_sequence".into()),
            ..Default::default()
        };
        let req = with(base(), "stop_sequences", json!(["END"]));
        let m = Reply::new(&req, &stop, 1).message();
        assert_eq!(m["stop_reason"], "stop_sequence");
        assert_eq!(m["stop_sequence"], "END");
    }

    #[test]
    fn streams_events_in_order_with_indexes() {
        let req = with(
            tool_request(),
            "thinking",
            json!({"type": "enabled", "budget_tokens": 1024}),
        );
        let opts = MockOptions {
            tool_calls: Some(2),
            ..Default::default()
        };
        let reply = Reply::new(&req, &opts, 7);
        let events = reply.events();
        let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
        for (name, data) in &events {
            assert_eq!(data["type"], *name);
        }
        assert_eq!(names[..2], ["message_start", "ping"]);
        assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
        let start = &events[0].1["message"];
        assert_eq!(start["content"], json!([]));
        assert_eq!(start["stop_reason"], Value::Null);
        assert_eq!(start["usage"]["input_tokens"], 7);
        assert_eq!(start["usage"]["output_tokens"], 1);
        assert_eq!(
            events[events.len() - 2].1["delta"]["stop_reason"],
            "tool_use"
        );
        assert_eq!(events[events.len() - 2].1["usage"]["output_tokens"], 5 + 20);

        // Blocks: start, deltas, stop, each with its index, in order; the
        // deltas put back together give the non-streaming message.
        let mut open: Option<u64> = None;
        let mut next = 0;
        let mut rebuilt: Vec<Value> = Vec::new();
        let mut json_parts = String::new();
        for (name, data) in &events[2..events.len() - 2] {
            let index = data["index"].as_u64().unwrap();
            match *name {
                "content_block_start" => {
                    assert_eq!(open, None);
                    assert_eq!(index, next);
                    open = Some(index);
                    rebuilt.push(data["content_block"].clone());
                    json_parts.clear();
                }
                "content_block_delta" => {
                    assert_eq!(open, Some(index));
                    let block = rebuilt.last_mut().unwrap();
                    let d = &data["delta"];
                    match d["type"].as_str().unwrap() {
                        "thinking_delta" => {
                            let t = format!(
                                "{}{}",
                                block["thinking"].as_str().unwrap(),
                                d["thinking"].as_str().unwrap()
                            );
                            block["thinking"] = json!(t);
                        }
                        "signature_delta" => block["signature"] = d["signature"].clone(),
                        "input_json_delta" => {
                            json_parts.push_str(d["partial_json"].as_str().unwrap())
                        }
                        other => panic!("unexpected delta {other}"),
                    }
                }
                "content_block_stop" => {
                    assert_eq!(open, Some(index));
                    let block = rebuilt.last_mut().unwrap();
                    if block["type"] == "tool_use" {
                        assert_eq!(block["input"], json!({}));
                        block["input"] = serde_json::from_str(&json_parts).unwrap();
                    }
                    open = None;
                    next += 1;
                }
                other => panic!("unexpected event {other}"),
            }
        }
        assert_eq!(json!(rebuilt), reply.message()["content"]);
        assert_eq!(rebuilt.len(), 3);
        assert_eq!(rebuilt[0]["type"], "thinking");
        assert_eq!(rebuilt[2]["id"], "toolu_mock_1");
        // Tool input arrives in 2-3 pieces.
        let pieces = events
            .iter()
            .filter(|(_, d)| d["index"] == 1 && d["delta"]["type"] == "input_json_delta")
            .count();
        assert!((2..=3).contains(&pieces), "{pieces} pieces");
    }

    #[test]
    fn streams_text_word_by_word() {
        let opts = MockOptions {
            content: Some("a b c".into()),
            ..Default::default()
        };
        let events = Reply::new(&base(), &opts, 1).events();
        let texts: Vec<&str> = events
            .iter()
            .filter_map(|(_, d)| d["delta"]["text"].as_str())
            .collect();
        assert_eq!(texts, ["a", " b", " c"]);
        assert_eq!(
            events[2].1["content_block"],
            json!({"type": "text", "text": ""})
        );
    }

    #[test]
    fn ends_with_an_error_event_when_told() {
        let opts = MockOptions {
            error_event_after: Some(3),
            ..Default::default()
        };
        let sse = Reply::new(&base(), &opts, 1).sse(&opts);
        assert_eq!(sse.len(), 4);
        assert!(sse[0].starts_with(b"event: message_start\ndata: {"));
        assert_eq!(
            &sse[3][..],
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
        );
    }

    #[test]
    fn reads_directives_from_the_header_or_the_last_tag() {
        let req = json!({"messages": [
            {"role": "user", "content": "<mock>{\"content\": \"first\"}</mock>"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "x <mock>{\"content\": \"nested\"}</mock>"}]},
                {"type": "text", "text": "see <mock> {\"content\": \"last\", \"stop_reason\": \"max_tokens\"} </mock> here"}]}
        ]});
        let o = MockOptions::read(None, &HeaderMap::new(), &req).unwrap();
        assert_eq!(o.content.as_deref(), Some("last"));
        assert_eq!(o.stop_reason.as_deref(), Some("max_tokens"));
        let h = headers(&[("x-mock", "{\"status\": 529, \"cache_read_tokens\": 9}")]);
        let o = MockOptions::read(None, &h, &req).unwrap();
        assert_eq!(o.status, Some(529));
        assert_eq!(o.cached_tokens, Some(9));
        assert!(MockOptions::read(None, &headers(&[("x-mock", "{nope")]), &req).is_err());
        let none = MockOptions::read(None, &HeaderMap::new(), &base()).unwrap();
        assert_eq!(none.content, None);
    }

    #[test]
    fn encodes_base64() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn cuts_pieces_on_char_boundaries() {
        assert_eq!(pieces("{}", 3), ["{", "}"]);
        assert_eq!(pieces("abcdef", 3), ["ab", "cd", "ef"]);
        assert_eq!(pieces("é", 3).concat(), "é");
    }
}
