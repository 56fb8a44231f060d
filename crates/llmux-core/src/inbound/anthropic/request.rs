//! Messages request → canonical (OpenAI) request.

use crate::types::anthropic::{Block, Content, KnownBlock, MessagesRequest};
use crate::types::{ApiError, ChatCompletionRequest};
use serde_json::{Map, Value, json};

/// What the canonical request is headed for, where OpenAI-compatible
/// upstreams differ.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target {
    /// OpenAI or Azure proper: `max_completion_tokens`, no `top_k`.
    pub openai_proper: bool,
    /// The model reasons: `thinking` becomes `reasoning_effort`; otherwise
    /// the thinking request is dropped (the model cannot honour it).
    pub supports_reasoning: bool,
    pub drop_params: bool,
}

/// Request fields that mean nothing once translated and are dropped.
const IGNORED: &[&str] = &["service_tier", "container", "context_management"];

pub fn to_canonical(
    req: MessagesRequest,
    target: Target,
) -> Result<ChatCompletionRequest, ApiError> {
    if !target.drop_params {
        if let Some((k, _)) = req
            .extra
            .iter()
            .find(|(k, v)| !v.is_null() && !IGNORED.contains(&k.as_str()))
        {
            return Err(ApiError::invalid_field(
                k,
                format!(
                    "`{k}` is not supported when this model is not served by Anthropic; set drop_params to drop it."
                ),
            ));
        }
    }
    let mut messages: Vec<Value> = Vec::new();
    if let Some(system) = req.system {
        messages.push(system_message(system));
    }
    for (i, m) in req.messages.into_iter().enumerate() {
        match m.role.as_str() {
            "system" => messages.push(system_message(m.content)),
            "user" => user_messages(m.content, i, &mut messages)?,
            "assistant" => messages.push(assistant_message(m.content)),
            other => {
                return Err(ApiError::invalid_field(
                    &format!("messages[{i}].role"),
                    format!("Unknown role `{other}`: use user or assistant."),
                ));
            }
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), req.model.into());
    out.insert("messages".into(), Value::Array(messages));
    if let Some(max) = req.max_tokens {
        let key = if target.openai_proper {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        out.insert(key.into(), max.into());
    }
    if let Some(t) = req.temperature {
        out.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        out.insert("top_p".into(), p.into());
    }
    if let (Some(k), false) = (req.top_k, target.openai_proper) {
        out.insert("top_k".into(), k.into());
    }
    if let Some(stops) = req.stop_sequences.filter(|s| !s.is_empty()) {
        out.insert("stop".into(), stops.into());
    }
    if let Some(user) = req
        .metadata
        .as_ref()
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), user.into());
    }
    if req.stream == Some(true) {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(effort) = req.thinking.as_ref().and_then(effort_for_thinking) {
        if target.supports_reasoning {
            out.insert("reasoning_effort".into(), effort.into());
        }
    }

    let mut tools = Vec::new();
    for t in req.tools.into_iter().flatten() {
        if t.kind.as_deref().is_some_and(|k| k != "custom") && t.input_schema.is_none() {
            // A server or versioned Anthropic tool (web search, computer
            // use): only Claude runs those.
            if target.drop_params {
                continue;
            }
            return Err(ApiError::invalid_field(
                "tools",
                format!(
                    "The Anthropic tool `{}` ({}) only runs on Claude and this model is not served by Anthropic; \
                     set drop_params to drop it.",
                    t.name,
                    t.kind.unwrap_or_default()
                ),
            ));
        }
        let mut f = json!({"name": t.name, "parameters": t.input_schema.unwrap_or_else(|| json!({"type": "object", "properties": {}}))});
        if let Some(d) = t.description {
            f["description"] = d.into();
        }
        let mut tool = json!({"type": "function", "function": f});
        if let Some(cc) = t.cache_control {
            tool["cache_control"] = cc;
        }
        tools.push(tool);
    }
    let has_tools = !tools.is_empty();
    if has_tools {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = req.tool_choice {
        let c = match choice.kind.as_str() {
            "any" => json!("required"),
            "none" => json!("none"),
            "tool" => {
                json!({"type": "function", "function": {"name": choice.name.unwrap_or_default()}})
            }
            _ => json!("auto"),
        };
        if has_tools {
            out.insert("tool_choice".into(), c);
            if choice.disable_parallel_tool_use == Some(true) {
                out.insert("parallel_tool_calls".into(), false.into());
            }
        }
    }
    serde_json::from_value(Value::Object(out))
        .map_err(|e| ApiError::bad_request(format!("Invalid Messages request: {e}")))
}

/// Claude's thinking budget as an OpenAI effort level.
fn effort_for_thinking(thinking: &Value) -> Option<&'static str> {
    if thinking.get("type").and_then(Value::as_str) != Some("enabled") {
        return None;
    }
    let budget = thinking
        .get("budget_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(1024);
    Some(match budget {
        0..2048 => "low",
        2048..8192 => "medium",
        _ => "high",
    })
}

fn system_message(content: Content) -> Value {
    match content {
        Content::Text(t) => json!({"role": "system", "content": t}),
        Content::Blocks(blocks) => {
            let parts: Vec<Value> = blocks.into_iter().filter_map(text_part).collect();
            json!({"role": "system", "content": parts})
        }
    }
}

fn text_part(b: Block) -> Option<Value> {
    match b {
        Block::Known(KnownBlock::Text {
            text,
            cache_control,
            ..
        }) => {
            let mut p = json!({"type": "text", "text": text});
            if let Some(cc) = cache_control {
                p["cache_control"] = cc;
            }
            Some(p)
        }
        _ => None,
    }
}

/// A content block as an OpenAI content part, where one exists.
fn part(b: Block, at: &str) -> Result<Option<Value>, ApiError> {
    Ok(match b {
        Block::Known(KnownBlock::Text { .. }) => text_part(b),
        Block::Known(KnownBlock::Image {
            source,
            cache_control,
        }) => {
            let url = match source.get("type").and_then(Value::as_str) {
                Some("base64") => format!(
                    "data:{};base64,{}",
                    source
                        .get("media_type")
                        .and_then(Value::as_str)
                        .unwrap_or("image/png"),
                    source.get("data").and_then(Value::as_str).unwrap_or("")
                ),
                Some("url") => source
                    .get("url")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                _ => {
                    return Err(ApiError::invalid_field(
                        at,
                        "Only base64 and url image sources can be translated.",
                    ));
                }
            };
            let mut p = json!({"type": "image_url", "image_url": {"url": url}});
            if let Some(cc) = cache_control {
                p["cache_control"] = cc;
            }
            Some(p)
        }
        Block::Known(KnownBlock::Document {
            source,
            title,
            cache_control,
            ..
        }) => {
            let mut p = match source.get("type").and_then(Value::as_str) {
                Some("base64") => {
                    let mut file = json!({"file_data": format!(
                        "data:{};base64,{}",
                        source.get("media_type").and_then(Value::as_str).unwrap_or("application/pdf"),
                        source.get("data").and_then(Value::as_str).unwrap_or("")
                    )});
                    if let Some(t) = title {
                        file["filename"] = t.into();
                    }
                    json!({"type": "file", "file": file})
                }
                Some("text") => {
                    json!({"type": "text", "text": source.get("data").and_then(Value::as_str).unwrap_or("")})
                }
                _ => {
                    return Err(ApiError::invalid_field(
                        at,
                        "Only base64 and text document sources can be translated.",
                    ));
                }
            };
            if let Some(cc) = cache_control {
                p["cache_control"] = cc;
            }
            Some(p)
        }
        _ => None,
    })
}

/// A user turn: its tool results become `tool` messages (first, as OpenAI
/// wants them right after the assistant's calls), the rest one user message.
fn user_messages(content: Content, i: usize, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let blocks = match content {
        Content::Text(t) => {
            out.push(json!({"role": "user", "content": t}));
            return Ok(());
        }
        Content::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    let mut result_images = Vec::new();
    for (j, b) in blocks.into_iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        match b {
            Block::Known(KnownBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
                cache_control,
            }) => {
                let mut text = String::new();
                for rb in content.map(Content::into_blocks).unwrap_or_default() {
                    match rb {
                        Block::Known(KnownBlock::Text { text: t, .. }) => {
                            if !text.is_empty() {
                                text.push('\n');
                            }
                            text.push_str(&t);
                        }
                        other @ Block::Known(KnownBlock::Image { .. }) => {
                            // OpenAI tool messages carry text only: images
                            // follow in the user message.
                            if let Some(p) = part(other, &at)? {
                                result_images.push(p);
                            }
                        }
                        _ => {}
                    }
                }
                // OpenAI has no error flag on tool results: say it in the text.
                if is_error == Some(true)
                    && !text.trim_start().to_ascii_lowercase().starts_with("error")
                {
                    text.insert_str(0, "Error: ");
                }
                let mut m = json!({"role": "tool", "tool_call_id": tool_use_id, "content": text});
                if let Some(cc) = cache_control {
                    m["cache_control"] = cc;
                }
                out.push(m);
            }
            other => {
                if let Some(p) = part(other, &at)? {
                    parts.push(p);
                }
            }
        }
    }
    result_images.extend(parts);
    if !result_images.is_empty() {
        out.push(json!({"role": "user", "content": result_images}));
    }
    Ok(())
}

/// An assistant turn. Thinking blocks are left out: their signatures are
/// Claude's, and no other model takes reasoning back as input.
fn assistant_message(content: Content) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in content.into_blocks() {
        match b {
            Block::Known(KnownBlock::Text { text: t, .. }) => text.push_str(&t),
            Block::Known(KnownBlock::ToolUse { id, name, input, .. }) => calls.push(json!({
                "id": id, "type": "function",
                "function": {"name": name, "arguments": if input.is_null() { "{}".to_owned() } else { input.to_string() }}
            })),
            _ => {}
        }
    }
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        text.into()
    };
    let mut m = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    m
}
