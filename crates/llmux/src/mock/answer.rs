//! What the mock answers: text or tool calls, whole or as stream chunks,
//! shaped exactly like OpenAI's responses; and the directives
//! (`MockOptions`) that steer every route, OpenAI and Anthropic alike.

use http::HeaderMap;
use llmux_core::types::{ChatCompletionRequest, FunctionDefinition, Role};
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub const DEFAULT_CONTENT: &str = "Hello from llmux mock.";

/// The request header that may carry the directives, as a JSON object.
pub const DIRECTIVE_HEADER: &str = "x-mock";

/// The directives a request may carry (docs/mock.md).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MockOptions {
    pub content: Option<String>,
    pub status: Option<u16>,
    pub message: Option<String>,
    pub retry_after: Option<u64>,
    pub fail_times: Option<u64>,
    pub key: Option<String>,
    pub first_byte_delay_ms: Option<u64>,
    pub tokens_per_sec: Option<f64>,
    pub reset_after_chunks: Option<usize>,
    pub malformed: bool,
    pub tool_calls: Option<usize>,
    /// Cached prompt tokens: OpenAI `prompt_tokens_details.cached_tokens`,
    /// Anthropic `cache_read_input_tokens`.
    #[serde(alias = "cache_read_tokens")]
    pub cached_tokens: Option<u64>,
    /// Anthropic `cache_creation_input_tokens`.
    pub cache_creation_tokens: Option<u64>,
    /// Anthropic: the text of the thinking block; Gemini: of the thought
    /// part (when the request enables thinking).
    pub thinking: Option<String>,
    /// Anthropic: add a `redacted_thinking` block after the thinking block.
    pub redacted_thinking: bool,
    /// Anthropic: the `stop_reason` to report.
    pub stop_reason: Option<String>,
    /// Anthropic: the `stop_sequence` to report with `stop_reason:
    /// "stop_sequence"` (default: the request's first stop sequence).
    pub stop_sequence: Option<String>,
    /// Streaming (Anthropic, Gemini): after this many events, an error
    /// event (`overloaded_error`; Gemini: `UNAVAILABLE`) ends the stream.
    pub error_event_after: Option<usize>,
    /// Gemini: the candidates' `finishReason` (`STOP`, `MAX_TOKENS`,
    /// `SAFETY`, …).
    pub finish_reason: Option<String>,
    /// Gemini: block the prompt: `promptFeedback.blockReason` and no
    /// candidates.
    pub block_reason: Option<String>,
    /// Bedrock ConverseStream: after this many frames, an exception frame
    /// (`exception`, default `throttlingException`) ends the stream.
    pub exception_after: Option<usize>,
    /// Bedrock ConverseStream: the `:exception-type` of that frame
    /// (`throttlingException`, `modelStreamErrorException`, …).
    pub exception: Option<String>,
    /// Bedrock ConverseStream: write each frame in two halves, with a
    /// short pause between them.
    pub split_frames: bool,
    /// Bedrock: the exception name (`x-amzn-ErrorType`) sent with `status`,
    /// instead of the one for the status (`ModelNotReadyException`, …).
    pub error_type: Option<String>,
}

impl MockOptions {
    /// The directives of a request, from the first source that has them:
    /// the body's `mock` field (OpenAI routes only: `body_field`), the
    /// `x-mock` header, the last `<mock>{…}</mock>` tag in the text of the
    /// request's messages (Gemini: `contents`). None of them: the defaults. A source that does
    /// not parse is an error, so a typo does not go unnoticed.
    pub fn read(
        body_field: Option<&Value>,
        headers: &HeaderMap,
        body: &Value,
    ) -> Result<MockOptions, String> {
        if let Some(v) = body_field.filter(|v| !v.is_null()) {
            return serde_json::from_value(v.clone()).map_err(|e| format!("mock: {e}"));
        }
        if let Some(h) = headers.get(DIRECTIVE_HEADER) {
            let text = h
                .to_str()
                .map_err(|_| format!("{DIRECTIVE_HEADER} header: not valid text"))?;
            return serde_json::from_str(text)
                .map_err(|e| format!("{DIRECTIVE_HEADER} header: {e}"));
        }
        if let Some(tag) = last_tag(body) {
            return serde_json::from_str(&tag).map_err(|e| format!("<mock> tag: {e}"));
        }
        Ok(MockOptions::default())
    }
}

/// The inside of the last `<mock>…</mock>` tag in the messages' text:
/// string contents, `text` blocks or parts, and the text inside Anthropic
/// `tool_result` blocks; for Bedrock, `text` blocks and the text and JSON
/// strings inside `toolResult` blocks; for Gemini, the `text` parts of
/// `contents` and the strings inside `functionResponse` parts.
fn last_tag(body: &Value) -> Option<String> {
    const OPEN: &str = "<mock>";
    const CLOSE: &str = "</mock>";
    let mut texts = Vec::new();
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        content_texts(m.get("content"), &mut texts);
    }
    for c in body
        .get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for part in c
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                texts.push(t);
            }
            let response = part
                .get("functionResponse")
                .or_else(|| part.get("function_response"));
            if let Some(r) = response {
                strings_in(r, &mut texts);
            }
        }
    }
    let mut last = None;
    for text in texts {
        let mut rest = text;
        while let Some(i) = rest.find(OPEN) {
            let after = &rest[i + OPEN.len()..];
            let Some(j) = after.find(CLOSE) else { break };
            last = Some(after[..j].trim().to_owned());
            rest = &after[j + CLOSE.len()..];
        }
    }
    last
}

/// Every string inside a JSON value.
fn strings_in<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings_in(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings_in(x, out)),
        _ => {}
    }
}

fn content_texts<'a>(content: Option<&'a Value>, out: &mut Vec<&'a str>) {
    match content {
        Some(Value::String(s)) => out.push(s),
        Some(Value::Array(blocks)) => {
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = b.get("text").and_then(Value::as_str) {
                            out.push(t);
                        }
                    }
                    Some("tool_result") => content_texts(b.get("content"), out),
                    // Bedrock Converse: blocks are unions without `type`:
                    // `{"text": …}`, and `{"toolResult": {"content": [{"text"
                    // | "json": …}]}}`.
                    None => {
                        if let Some(t) = b.get("text").and_then(Value::as_str) {
                            out.push(t);
                        }
                        let inner = b
                            .get("toolResult")
                            .and_then(|r| r.get("content"))
                            .and_then(Value::as_array);
                        for c in inner.into_iter().flatten() {
                            if let Some(t) = c.get("text").and_then(Value::as_str) {
                                out.push(t);
                            }
                            if let Some(j) = c.get("json") {
                                strings_in(j, out);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

struct Call {
    id: String,
    name: String,
    arguments: String,
}

pub struct Answer {
    id: String,
    created: u64,
    model: String,
    content: Option<String>,
    calls: Vec<Call>,
    prompt_tokens: u64,
    cached_tokens: u64,
    /// OpenRouter's usage accounting was asked for (`usage.include`).
    report_cost: bool,
}

impl Answer {
    pub fn new(
        req: &ChatCompletionRequest,
        opts: &MockOptions,
        model: &str,
        body_len: usize,
    ) -> Answer {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let calls = tool_calls(req, opts);
        let content = if calls.is_empty() {
            Some(
                opts.content
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONTENT.to_owned()),
            )
        } else {
            None
        };
        Answer {
            id: format!("chatcmpl-mock{created}"),
            created,
            model: model.to_owned(),
            content,
            calls,
            prompt_tokens: (body_len as u64 / 4).max(1),
            cached_tokens: opts.cached_tokens.unwrap_or(0),
            report_cost: req
                .extra
                .get("usage")
                .and_then(|u| u.get("include"))
                .and_then(Value::as_bool)
                == Some(true),
        }
    }

    fn completion_tokens(&self) -> u64 {
        match &self.content {
            Some(c) => c.split_whitespace().count() as u64,
            None => 10 * self.calls.len() as u64,
        }
    }

    fn finish_reason(&self) -> &'static str {
        if self.calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        }
    }

    fn usage(&self) -> Value {
        let completion = self.completion_tokens();
        let mut usage = json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        });
        if self.report_cost {
            // OpenRouter's charge: $1 per million prompt tokens, $2 per
            // million completion tokens.
            usage["cost"] = json!(self.prompt_tokens as f64 * 1e-6 + completion as f64 * 2e-6);
        }
        usage
    }

    pub fn completion(&self) -> Value {
        let mut message = json!({"role": "assistant", "content": self.content, "refusal": null});
        if !self.calls.is_empty() {
            message["tool_calls"] = self
                .calls
                .iter()
                .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                .collect();
        }
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": self.finish_reason()}],
            "usage": self.usage(),
            "system_fingerprint": "fp_llmux_mock"
        })
    }

    /// The chunks of a stream, as JSON text, without `[DONE]`.
    pub fn chunks(&self, include_usage: bool) -> Vec<String> {
        let chunk = |delta: Value, finish: Value| {
            let mut c = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "fp_llmux_mock",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
            });
            if include_usage {
                c["usage"] = Value::Null;
            }
            c.to_string()
        };
        let mut out = vec![chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null,
        )];
        if let Some(content) = &self.content {
            for piece in words(content) {
                out.push(chunk(json!({"content": piece}), Value::Null));
            }
        }
        for (i, c) in self.calls.iter().enumerate() {
            out.push(chunk(
                json!({"tool_calls": [{"index": i, "id": c.id, "type": "function",
                        "function": {"name": c.name, "arguments": ""}}]}),
                Value::Null,
            ));
            let mid = c.arguments.len() / 2;
            let mid = (0..=mid)
                .rev()
                .find(|m| c.arguments.is_char_boundary(*m))
                .unwrap_or(0);
            for part in [&c.arguments[..mid], &c.arguments[mid..]] {
                out.push(chunk(
                    json!({"tool_calls": [{"index": i, "function": {"arguments": part}}]}),
                    Value::Null,
                ));
            }
        }
        out.push(chunk(json!({}), Value::from(self.finish_reason())));
        if include_usage {
            out.push(
                json!({
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "system_fingerprint": "fp_llmux_mock",
                    "choices": [],
                    "usage": self.usage()
                })
                .to_string(),
            );
        }
        out
    }
}

/// Words with their leading spaces, so that joined they give the text back.
pub fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, w) in text.split(' ').enumerate() {
        out.push(if i == 0 {
            w.to_owned()
        } else {
            format!(" {w}")
        });
    }
    out.retain(|w| !w.is_empty());
    out
}

/// Tool calls when the request offers tools and is not answering a tool result.
fn tool_calls(req: &ChatCompletionRequest, opts: &MockOptions) -> Vec<Call> {
    // Function tools: what a model calls back (a provider's own tools, such
    // as a web search, it runs itself).
    let tools: Vec<&FunctionDefinition> = req
        .tools
        .iter()
        .flatten()
        .filter_map(|t| t.as_function())
        .collect();
    if tools.is_empty() {
        return vec![];
    }
    if req.tool_choice.as_ref().is_some_and(|c| c.is_none()) {
        return vec![];
    }
    if req.messages.last().is_some_and(|m| m.role == Role::Tool) {
        return vec![];
    }
    let forced = req.tool_choice.as_ref().and_then(|c| c.function_name());
    let n = opts.tool_calls.unwrap_or(1);
    (0..n)
        .map(|i| {
            let tool = match forced {
                Some(name) => tools.iter().find(|t| t.name == name).unwrap_or(&tools[0]),
                None => &tools[i % tools.len()],
            };
            let args = tool
                .parameters
                .as_ref()
                .map(example_for_schema)
                .unwrap_or_else(|| json!({}));
            Call {
                id: format!("call_mock_{i}"),
                name: tool.name.clone(),
                arguments: args.to_string(),
            }
        })
        .collect()
}

/// A value that fits a JSON schema well enough for a mock (types in any
/// case: Gemini writes `OBJECT`, `STRING`, …).
pub fn example_for_schema(schema: &Value) -> Value {
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    match kind.as_deref() {
        Some("object") | None if schema.get("properties").is_some() => {
            let mut m = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    m.insert(k.clone(), example_for_schema(v));
                }
            }
            Value::Object(m)
        }
        Some("object") => json!({}),
        Some("string") => schema
            .get("enum")
            .and_then(|e| e.get(0))
            .cloned()
            .unwrap_or_else(|| json!("mock")),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        _ => json!("mock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> ChatCompletionRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn streams_text_that_joins_back_and_ends_with_usage() {
        let r = req(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
        let a = Answer::new(&r, &MockOptions::default(), "m", 100);
        let chunks: Vec<Value> = a
            .chunks(true)
            .iter()
            .map(|c| serde_json::from_str(c).unwrap())
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"].get(0)?["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(text, DEFAULT_CONTENT);
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["prompt_tokens"], 25);
    }

    #[test]
    fn calls_tools_with_schema_shaped_arguments() {
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": "read"}],
            "tools": [{"type": "function", "function": {"name": "read_file", "parameters":
                {"type": "object", "properties": {"path": {"type": "string"}, "line": {"type": "integer"}}}}}]}),
        );
        let a = Answer::new(
            &r,
            &MockOptions {
                tool_calls: Some(2),
                ..Default::default()
            },
            "m",
            10,
        );
        let c = a.completion();
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        let calls = c["choices"][0]["message"]["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1]["id"], "call_mock_1");
        let args: Value =
            serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"path": "mock", "line": 1}));
    }

    #[test]
    fn reads_the_body_field_first_then_header_then_tag() {
        let body = json!({"mock": {"content": "body"}, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<mock>{\"content\": \"tag\"}</mock>"}]}]});
        let mut h = HeaderMap::new();
        h.insert(
            DIRECTIVE_HEADER,
            http::HeaderValue::from_static("{\"content\": \"header\"}"),
        );
        let read = |field: Option<&Value>, h: &HeaderMap| {
            MockOptions::read(field, h, &body).unwrap().content
        };
        assert_eq!(read(body.get("mock"), &h).as_deref(), Some("body"));
        assert_eq!(read(None, &h).as_deref(), Some("header"));
        assert_eq!(read(None, &HeaderMap::new()).as_deref(), Some("tag"));
        assert!(MockOptions::read(Some(&json!({"status": "x"})), &h, &body).is_err());
    }

    #[test]
    fn zero_tool_calls_answers_text() {
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": "read"}],
            "tools": [{"type": "function", "function": {"name": "f"}}]}),
        );
        let opts = MockOptions {
            tool_calls: Some(0),
            ..Default::default()
        };
        let c = Answer::new(&r, &opts, "m", 10).completion();
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn answers_text_after_a_tool_result() {
        let r = req(json!({"model": "m", "messages": [
            {"role": "user", "content": "read"},
            {"role": "assistant", "tool_calls": [{"id": "call_mock_0", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_mock_0", "content": "data"}],
            "tools": [{"type": "function", "function": {"name": "f"}}]}));
        let a = Answer::new(&r, &MockOptions::default(), "m", 10);
        assert_eq!(
            a.completion()["choices"][0]["message"]["content"],
            DEFAULT_CONTENT
        );
    }
}
