//! Anthropic Messages response → canonical (OpenAI) response.

use super::request::JSON_TOOL;
use crate::types::anthropic::{Block, KnownBlock, MessagesResponse};
use crate::types::{ChatCompletionResponse, Choice, FunctionCall, ResponseMessage, ToolCall};
use serde_json::{Map, Value, json};

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
pub fn finish_reason(stop_reason: Option<&str>, has_tool_calls: bool) -> String {
    match stop_reason {
        Some("tool_use") if has_tool_calls => "tool_calls",
        Some("tool_use") => "stop",
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn (a server-tool turn paused:
        // the client may send the conversation again to continue).
        _ => "stop",
    }
    .to_owned()
}

/// Where a content block with no OpenAI field goes in the message's
/// `provider_specific_fields` (LiteLLM's keys), by its `type`: each key
/// holds a list of whole blocks, in the order they came.
pub fn provider_field(kind: &str) -> &'static str {
    match kind {
        "web_search_tool_result" => "web_search_results",
        "web_fetch_tool_result" => "web_fetch_results",
        k if k.ends_with("_tool_result") => "tool_results",
        // `server_tool_use` (web search, web fetch, code execution) and
        // `mcp_tool_use`: calls Anthropic ran itself, never the client's
        // to run, so not `tool_calls`.
        k if k.ends_with("tool_use") => "server_tool_use",
        _ => "other_content_blocks",
    }
}

/// Appends `value` to the list at `key` (every value of `fields` is one).
fn push_field(fields: &mut Map<String, Value>, key: &str, value: Value) {
    if let Value::Array(list) = fields
        .entry(key)
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        list.push(value);
    }
}

pub fn to_openai(resp: MessagesResponse, json_tool: bool, created: u64) -> ChatCompletionResponse {
    let mut text = String::new();
    // Citations (a list per cited text block) and server tool blocks.
    let mut fields = Map::new();
    let mut reasoning = String::new();
    let mut thinking_blocks: Vec<Value> = Vec::new();
    let mut tool_calls: Vec<ToolCall> = Vec::new();
    for block in resp.content {
        match block {
            Block::Known(KnownBlock::Text {
                text: t, citations, ..
            }) => {
                text.push_str(&t);
                if let Some(c) = citations.filter(|c| !c.is_null()) {
                    push_field(&mut fields, "citations", c);
                }
            }
            Block::Known(KnownBlock::Thinking {
                thinking,
                signature,
            }) => {
                reasoning.push_str(&thinking);
                thinking_blocks.push(
                    json!({"type": "thinking", "thinking": thinking, "signature": signature}),
                );
            }
            Block::Known(KnownBlock::RedactedThinking { data }) => {
                thinking_blocks.push(json!({"type": "redacted_thinking", "data": data}));
            }
            Block::Known(KnownBlock::ToolUse {
                id, name, input, ..
            }) => {
                if json_tool && name == JSON_TOOL {
                    // The forced JSON tool is the answer itself.
                    text.push_str(&input.to_string());
                    continue;
                }
                tool_calls.push(ToolCall {
                    id,
                    kind: "function".into(),
                    function: FunctionCall {
                        name,
                        arguments: input.to_string(),
                    },
                    extra: Map::new(),
                });
            }
            Block::Other(block) => {
                let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
                let key = provider_field(kind);
                push_field(&mut fields, key, block);
            }
            // Blocks only a request carries (images, tool results).
            Block::Known(_) => {}
        }
    }
    let has_tools = !tool_calls.is_empty();
    let finish = if json_tool && !has_tools {
        "stop".to_owned()
    } else {
        finish_reason(resp.stop_reason.as_deref(), has_tools)
    };
    let mut extra = Map::new();
    if !fields.is_empty() {
        extra.insert("provider_specific_fields".into(), Value::Object(fields));
    }
    let message = ResponseMessage {
        role: "assistant".into(),
        content: (!text.is_empty() || !has_tools).then_some(text),
        tool_calls: has_tools.then_some(tool_calls),
        reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
        thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
        refusal: None,
        extra,
    };
    ChatCompletionResponse {
        id: resp.id,
        object: "chat.completion".into(),
        created,
        model: resp.model,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(finish),
            logprobs: None,
        }],
        usage: Some(resp.usage.to_openai()),
        system_fingerprint: None,
        extra: Map::new(),
    }
}
