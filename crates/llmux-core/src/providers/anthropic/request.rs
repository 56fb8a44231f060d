//! Canonical (OpenAI) request → Anthropic Messages request.

use crate::types::{
    ApiError, ChatCompletionRequest, ChatMessage, ContentPart, ImageUrl, KnownPart, MessageContent,
    Role, ToolChoice,
};
use serde_json::{Map, Value, json};

/// The tool a `response_format` becomes (LiteLLM's name, so clients that
/// know LiteLLM see the same thing).
pub const JSON_TOOL: &str = "json_tool_call";
/// Anthropic accepts at most this many `cache_control` breakpoints.
pub const MAX_CACHE_BREAKPOINTS: usize = 4;

/// OpenAI fields with no Anthropic meaning that are hints, not
/// instructions: dropped without an error.
const IGNORED_HINTS: &[&str] = &[
    "prompt_cache_key",
    "store",
    "metadata",
    "service_tier",
    "safety_identifier",
    "stream_options",
    "drop_params",
    "num_retries",
];
/// OpenAI fields Anthropic cannot honour: a 400 naming them, unless
/// `drop_params`.
const UNSUPPORTED: &[&str] = &[
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
    "functions",
    "function_call",
    "verbosity",
];

/// What the response side needs to know about how the request was built.
#[derive(Debug, Clone, Default)]
pub struct Built {
    pub body: Value,
    /// `anthropic-beta` features the request uses.
    pub betas: Vec<&'static str>,
    /// `response_format` was turned into the forced JSON tool.
    pub json_tool: bool,
}

/// Builds the Anthropic request. `default_max_tokens` is the model's max
/// output from the catalog (Anthropic requires `max_tokens`).
pub fn build(
    req: &ChatCompletionRequest,
    upstream_model: &str,
    default_max_tokens: Option<u64>,
    drop_params: bool,
) -> Result<Built, ApiError> {
    check_params(req, drop_params)?;
    let mut betas = Vec::new();
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();

    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role {
            Role::System | Role::Developer => {
                let mut blocks = text_blocks(msg, i)?;
                apply_message_cache(&mut blocks, msg);
                system.extend(blocks);
            }
            Role::User => {
                let mut blocks = user_blocks(msg, i, drop_params, &mut betas)?;
                apply_message_cache(&mut blocks, msg);
                push_turn(&mut turns, "user", blocks);
            }
            Role::Assistant => {
                let mut blocks = assistant_blocks(msg, i)?;
                apply_message_cache(&mut blocks, msg);
                push_turn(&mut turns, "assistant", blocks);
            }
            Role::Tool | Role::Function => {
                let block = tool_result_block(msg, i)?;
                push_turn(&mut turns, "user", vec![block]);
            }
        }
    }
    // Anthropic wants the first turn to be the user's; OpenAI does not.
    if turns.first().is_some_and(|(role, _)| role == "assistant") {
        turns.insert(0, ("user".to_owned(), vec![text_block(".", None)]));
    }
    // A final assistant turn is a prefill; Anthropic refuses trailing
    // whitespace there.
    if let Some((role, blocks)) = turns.last_mut() {
        if role == "assistant" {
            if let Some(Value::String(t)) = blocks.last_mut().and_then(|b| b.get_mut("text")) {
                let trimmed = t.trim_end().to_owned();
                *t = trimmed;
            }
        }
    }

    let mut body = Map::new();
    body.insert("model".into(), upstream_model.into());
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    if messages.is_empty() {
        return Err(ApiError::invalid_field(
            "messages",
            "Anthropic needs at least one user or assistant message.",
        ));
    }
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }

    // Tools, tool choice, and response_format as a forced tool.
    let mut tools: Vec<Value> = Vec::new();
    for t in req.tools.iter().flatten() {
        if t.kind != "function" {
            // Anthropic's own tool types (computer use, bash, text editor)
            // pass through as the client wrote them.
            let mut v = t.extra.clone();
            v.insert("type".into(), t.kind.clone().into());
            if let Some(beta) = beta_for_tool(&t.kind) {
                betas.push(beta);
            }
            tools.push(Value::Object(v));
            continue;
        }
        let mut tool = Map::new();
        tool.insert("name".into(), t.function.name.clone().into());
        if let Some(d) = &t.function.description {
            tool.insert("description".into(), d.clone().into());
        }
        tool.insert(
            "input_schema".into(),
            t.function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        );
        if let Some(cc) = &t.cache_control {
            tool.insert("cache_control".into(), cc.clone());
        }
        tools.push(Value::Object(tool));
    }
    let mut tool_choice = req.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Mode(m) if m == "none" => json!({"type": "none"}),
        ToolChoice::Mode(m) if m == "required" || m == "any" => json!({"type": "any"}),
        ToolChoice::Mode(_) => json!({"type": "auto"}),
        ToolChoice::Named(n) => json!({"type": "tool", "name": n.function.name}),
    });
    let mut json_tool = false;
    if let Some(schema) = json_schema(req.response_format.as_ref())? {
        tools.push(json!({
            "name": JSON_TOOL,
            "description": "Respond with a JSON object that matches this schema.",
            "input_schema": schema,
        }));
        tool_choice = Some(json!({"type": "tool", "name": JSON_TOOL}));
        json_tool = true;
    }
    if req.parallel_tool_calls == Some(false) && !tools.is_empty() {
        let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = true.into();
        }
    }
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(c) = tool_choice.filter(|_| body.contains_key("tools")) {
        body.insert("tool_choice".into(), c);
    }

    // Thinking: `thinking` as Anthropic spells it, or `reasoning_effort`.
    let thinking = match req.extra.get("thinking") {
        Some(t) if !t.is_null() => Some(t.clone()),
        _ => req
            .reasoning_effort
            .as_deref()
            .and_then(budget_for_effort)
            .map(|b| json!({"type": "enabled", "budget_tokens": b})),
    };
    let budget = thinking
        .as_ref()
        .and_then(|t| t.get("budget_tokens"))
        .and_then(Value::as_u64);
    let mut max_tokens = req
        .max_output_tokens()
        .or(default_max_tokens)
        .unwrap_or(4096);
    if let Some(b) = budget {
        if max_tokens <= b {
            // The answer needs room beyond the thinking budget.
            max_tokens = b + default_max_tokens.unwrap_or(4096).min(8192);
        }
    }
    body.insert("max_tokens".into(), max_tokens.into());
    if let Some(t) = thinking {
        body.insert("thinking".into(), t);
    }

    if let Some(t) = req.temperature {
        body.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), p.into());
    }
    if let Some(k) = req.extra.get("top_k").filter(|v| !v.is_null()) {
        body.insert("top_k".into(), k.clone());
    }
    if let Some(stop) = &req.stop {
        let stops: Vec<String> = stop
            .to_vec()
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .collect();
        if !stops.is_empty() {
            body.insert("stop_sequences".into(), stops.into());
        }
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if req.is_stream() {
        body.insert("stream".into(), true.into());
    }

    let mut body = Value::Object(body);
    limit_cache_breakpoints(&mut body);
    betas.sort_unstable();
    betas.dedup();
    Ok(Built {
        body,
        betas,
        json_tool,
    })
}

fn check_params(req: &ChatCompletionRequest, drop_params: bool) -> Result<(), ApiError> {
    if drop_params {
        return Ok(());
    }
    let refuse = |name: &str| {
        ApiError::invalid_field(
            name,
            format!(
                "Anthropic does not support the parameter `{name}`. Remove it, or set \
                 `drop_params: true` (in the request or litellm_settings) to drop it."
            ),
        )
    };
    if req.n.is_some_and(|n| n > 1) {
        return Err(refuse("n"));
    }
    for name in [
        ("presence_penalty", req.presence_penalty.is_some()),
        ("frequency_penalty", req.frequency_penalty.is_some()),
        ("seed", req.seed.is_some()),
    ] {
        if name.1 {
            return Err(refuse(name.0));
        }
    }
    // Everything else the client sent that has no Anthropic meaning,
    // known OpenAI parameters first so the error names the likely one.
    let mut unknown: Vec<&str> = req
        .extra
        .iter()
        .filter(|(k, v)| !v.is_null() && !IGNORED_HINTS.contains(&k.as_str()))
        .map(|(k, _)| k.as_str())
        .filter(|k| !matches!(*k, "thinking" | "top_k"))
        .collect();
    unknown.sort_by_key(|k| !UNSUPPORTED.contains(k));
    if let Some(k) = unknown.first() {
        return Err(refuse(k));
    }
    Ok(())
}

/// LiteLLM's mapping of OpenAI effort levels to thinking budgets.
fn budget_for_effort(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(2048),
        "high" => Some(4096),
        _ => None,
    }
}

fn beta_for_tool(kind: &str) -> Option<&'static str> {
    match kind {
        "computer_20241022" | "text_editor_20241022" | "bash_20241022" => {
            Some("computer-use-2024-10-22")
        }
        k if k.starts_with("computer_") => Some("computer-use-2025-01-24"),
        _ => None,
    }
}

fn json_schema(format: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(f) = format else { return Ok(None) };
    match f.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let schema = f
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .cloned()
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "response_format",
                        "`response_format.json_schema.schema` is required.",
                    )
                })?;
            Ok(Some(schema))
        }
        Some("json_object") => Ok(Some(
            json!({"type": "object", "additionalProperties": true}),
        )),
        Some("text") | None => Ok(None),
        Some(other) => Err(ApiError::invalid_field(
            "response_format",
            format!("Unknown response_format type `{other}`."),
        )),
    }
}

/// Appends blocks to the last turn when it has the same role (Anthropic
/// wants alternating turns), else starts a new one.
fn push_turn(turns: &mut Vec<(String, Vec<Value>)>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((r, b)) if r == role => {
            // Tool results must lead a user turn: keep them before other
            // user blocks when a user message follows results.
            b.extend(blocks);
            if role == "user" {
                b.sort_by_key(|v| v.get("type").and_then(Value::as_str) != Some("tool_result"));
            }
        }
        _ => turns.push((role.to_owned(), blocks)),
    }
}

/// A message-level `cache_control` marks the message's last block.
fn apply_message_cache(blocks: &mut [Value], msg: &ChatMessage) {
    if let (Some(cc), Some(last)) = (&msg.cache_control, blocks.last_mut()) {
        if let Some(o) = last.as_object_mut() {
            o.insert("cache_control".into(), cc.clone());
        }
    }
}

fn text_block(text: &str, cache_control: Option<&Value>) -> Value {
    let mut b = json!({"type": "text", "text": text});
    if let Some(cc) = cache_control {
        b["cache_control"] = cc.clone();
    }
    b
}

/// System messages: text only.
fn text_blocks(msg: &ChatMessage, i: usize) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    match &msg.content {
        None => {}
        Some(MessageContent::Text(t)) if !t.trim().is_empty() => out.push(text_block(t, None)),
        Some(MessageContent::Text(_)) => {}
        Some(MessageContent::Parts(parts)) => {
            for p in parts {
                match p {
                    ContentPart::Known(KnownPart::Text {
                        text,
                        cache_control,
                    }) => {
                        if !text.trim().is_empty() {
                            out.push(text_block(text, cache_control.as_ref()));
                        }
                    }
                    _ => {
                        return Err(ApiError::invalid_field(
                            &format!("messages[{i}].content"),
                            "System messages may only contain text.",
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

fn user_blocks(
    msg: &ChatMessage,
    i: usize,
    drop_params: bool,
    betas: &mut Vec<&'static str>,
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    match &msg.content {
        None => {}
        Some(MessageContent::Text(t)) if !t.trim().is_empty() => out.push(text_block(t, None)),
        Some(MessageContent::Text(_)) => {}
        Some(MessageContent::Parts(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                let at = format!("messages[{i}].content[{j}]");
                match p {
                    ContentPart::Known(KnownPart::Text {
                        text,
                        cache_control,
                    }) => {
                        if !text.trim().is_empty() {
                            out.push(text_block(text, cache_control.as_ref()));
                        }
                    }
                    ContentPart::Known(KnownPart::ImageUrl {
                        image_url,
                        cache_control,
                    }) => {
                        let mut b =
                            json!({"type": "image", "source": image_source(image_url, &at)?});
                        if let Some(cc) = cache_control {
                            b["cache_control"] = cc.clone();
                        }
                        out.push(b);
                    }
                    ContentPart::Known(KnownPart::File {
                        file,
                        cache_control,
                    }) => {
                        let (source, beta) = document_source(file, &at)?;
                        if let Some(beta) = beta {
                            betas.push(beta);
                        }
                        let mut b = json!({"type": "document", "source": source});
                        if let Some(name) = file.get("filename").and_then(Value::as_str) {
                            b["title"] = name.into();
                        }
                        if let Some(cc) = cache_control {
                            b["cache_control"] = cc.clone();
                        }
                        out.push(b);
                    }
                    ContentPart::Known(KnownPart::InputAudio { .. }) if drop_params => {}
                    ContentPart::Known(KnownPart::InputAudio { .. }) => {
                        return Err(ApiError::invalid_field(
                            &at,
                            "Anthropic does not accept audio input.",
                        ));
                    }
                    // Anthropic-native blocks sent through the OpenAI API
                    // (documents, search results) pass as written.
                    ContentPart::Other(v) => out.push(v.clone()),
                }
            }
        }
    }
    Ok(out)
}

/// `data:` URLs become base64 sources, http(s) URLs url sources.
fn image_source(image: &ImageUrl, at: &str) -> Result<Value, ApiError> {
    let url = image.url();
    if let Some((media_type, data)) = parse_data_url(url) {
        return Ok(json!({"type": "base64", "media_type": media_type, "data": data}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "url", "url": url}));
    }
    Err(ApiError::invalid_field(
        at,
        "image_url must be a data: URL (base64) or an http(s) URL.",
    ))
}

fn document_source(file: &Value, at: &str) -> Result<(Value, Option<&'static str>), ApiError> {
    if let Some(data) = file.get("file_data").and_then(Value::as_str) {
        if let Some((media_type, b64)) = parse_data_url(data) {
            if media_type == "text/plain" {
                return Ok((
                    json!({"type": "text", "media_type": "text/plain", "data": decode_text(b64)}),
                    None,
                ));
            }
            return Ok((
                json!({"type": "base64", "media_type": media_type, "data": b64}),
                None,
            ));
        }
    }
    if let Some(id) = file.get("file_id").and_then(Value::as_str) {
        return Ok((
            json!({"type": "file", "file_id": id}),
            Some("files-api-2025-04-14"),
        ));
    }
    if let Some(url) = file.get("url").and_then(Value::as_str) {
        return Ok((json!({"type": "url", "url": url}), None));
    }
    Err(ApiError::invalid_field(
        at,
        "A file part needs `file_data` (a data: URL), `file_id` or `url`.",
    ))
}

/// Plain-text documents are sent as text, not base64.
fn decode_text(b64: &str) -> String {
    use base64::Engine;
    // Not decodable: keep the data as it came, and Anthropic reports a
    // clear error.
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| b64.to_owned())
}

/// `data:<media type>;base64,<data>`
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

fn assistant_blocks(msg: &ChatMessage, i: usize) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    // Thinking first, with the signatures Claude needs to see again.
    for b in msg.thinking_blocks.iter().flatten() {
        match b.get("type").and_then(Value::as_str) {
            Some("thinking")
                if b.get("signature")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty()) =>
            {
                out.push(json!({"type": "thinking", "thinking": b.get("thinking").cloned().unwrap_or_default(),
                                "signature": b["signature"]}));
            }
            Some("redacted_thinking") => {
                out.push(json!({"type": "redacted_thinking", "data": b.get("data").cloned().unwrap_or_default()}));
            }
            // Unsigned thinking cannot be sent back; Claude re-thinks.
            _ => {}
        }
    }
    match &msg.content {
        Some(MessageContent::Text(t)) if !t.trim().is_empty() => out.push(text_block(t, None)),
        Some(MessageContent::Parts(parts)) => {
            for p in parts {
                match p {
                    ContentPart::Known(KnownPart::Text {
                        text,
                        cache_control,
                    }) if !text.trim().is_empty() => {
                        out.push(text_block(text, cache_control.as_ref()));
                    }
                    ContentPart::Other(v) => out.push(v.clone()),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
        let args = call.function.arguments.trim();
        let input: Value = if args.is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|_| {
                ApiError::invalid_field(
                    &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                    "Tool call arguments must be a JSON object.",
                )
            })?
        };
        out.push(
            json!({"type": "tool_use", "id": call.id, "name": call.function.name, "input": input}),
        );
    }
    Ok(out)
}

fn tool_result_block(msg: &ChatMessage, i: usize) -> Result<Value, ApiError> {
    let id = msg
        .tool_call_id
        .clone()
        .or_else(|| msg.name.clone())
        .ok_or_else(|| {
            ApiError::invalid_field(
                &format!("messages[{i}].tool_call_id"),
                "A tool message needs `tool_call_id`.",
            )
        })?;
    let mut b = json!({"type": "tool_result", "tool_use_id": id});
    match &msg.content {
        Some(MessageContent::Text(t)) if !t.is_empty() => b["content"] = t.clone().into(),
        Some(MessageContent::Parts(parts)) => {
            let mut blocks = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                match p {
                    ContentPart::Known(KnownPart::Text {
                        text,
                        cache_control,
                    }) if !text.is_empty() => {
                        blocks.push(text_block(text, cache_control.as_ref()));
                    }
                    ContentPart::Known(KnownPart::ImageUrl { image_url, .. }) => {
                        let at = format!("messages[{i}].content[{j}]");
                        blocks.push(
                            json!({"type": "image", "source": image_source(image_url, &at)?}),
                        );
                    }
                    _ => {}
                }
            }
            if !blocks.is_empty() {
                b["content"] = Value::Array(blocks);
            }
        }
        _ => {}
    }
    if msg.extra.get("is_error").and_then(Value::as_bool) == Some(true) {
        b["is_error"] = true.into();
    }
    if let Some(cc) = &msg.cache_control {
        b["cache_control"] = cc.clone();
    }
    Ok(b)
}

/// More than four `cache_control` marks: keep the last four (in the
/// order tools → system → messages, which is Anthropic's prefix order:
/// a later breakpoint caches a longer prefix), drop the earlier ones.
fn limit_cache_breakpoints(body: &mut Value) {
    let mut paths: Vec<Vec<PathStep>> = Vec::new();
    collect_cache_paths(body, &mut paths);
    if paths.len() <= MAX_CACHE_BREAKPOINTS {
        return;
    }
    let excess = paths.len() - MAX_CACHE_BREAKPOINTS;
    for path in paths.into_iter().take(excess) {
        if let Some(Value::Object(o)) = walk_mut(body, &path) {
            o.remove("cache_control");
        }
    }
}

#[derive(Clone)]
enum PathStep {
    Key(&'static str),
    Index(usize),
}

fn collect_cache_paths(body: &Value, out: &mut Vec<Vec<PathStep>>) {
    use PathStep::{Index, Key};
    let has = |v: &Value| v.get("cache_control").is_some_and(|c| !c.is_null());
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        for (i, t) in tools.iter().enumerate() {
            if has(t) {
                out.push(vec![Key("tools"), Index(i)]);
            }
        }
    }
    if let Some(system) = body.get("system").and_then(Value::as_array) {
        for (i, b) in system.iter().enumerate() {
            if has(b) {
                out.push(vec![Key("system"), Index(i)]);
            }
        }
    }
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        for (i, m) in messages.iter().enumerate() {
            if let Some(blocks) = m.get("content").and_then(Value::as_array) {
                for (j, b) in blocks.iter().enumerate() {
                    if has(b) {
                        out.push(vec![Key("messages"), Index(i), Key("content"), Index(j)]);
                    }
                }
            }
        }
    }
}

fn walk_mut<'v>(v: &'v mut Value, path: &[PathStep]) -> Option<&'v mut Value> {
    let mut cur = v;
    for step in path {
        cur = match step {
            PathStep::Key(k) => cur.get_mut(*k)?,
            PathStep::Index(i) => cur.get_mut(*i)?,
        };
    }
    Some(cur)
}
