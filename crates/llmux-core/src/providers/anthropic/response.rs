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

pub fn to_openai(resp: MessagesResponse, json_tool: bool, created: u64) -> ChatCompletionResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks: Vec<Value> = Vec::new();
    let mut tool_calls: Vec<ToolCall> = Vec::new();
    for block in resp.content {
        match block {
            Block::Known(KnownBlock::Text { text: t, .. }) => text.push_str(&t),
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
            // Server tool blocks (web search's `server_tool_use` and
            // `web_search_tool_result`) have no OpenAI field and are not
            // passed on yet; the answer's text, which cites them, is.
            _ => {}
        }
    }
    let has_tools = !tool_calls.is_empty();
    let finish = if json_tool && !has_tools {
        "stop".to_owned()
    } else {
        finish_reason(resp.stop_reason.as_deref(), has_tools)
    };
    let message = ResponseMessage {
        role: "assistant".into(),
        content: (!text.is_empty() || !has_tools).then_some(text),
        tool_calls: has_tools.then_some(tool_calls),
        reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
        thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
        refusal: None,
        extra: Map::new(),
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
