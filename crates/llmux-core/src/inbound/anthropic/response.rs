//! Canonical (OpenAI) response → Messages response.

use crate::types::ChatCompletionResponse;
use crate::types::anthropic::{AnthropicUsage, Block, KnownBlock, MessagesResponse};
use serde_json::Value;

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`.
pub fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// `model` is the name the client asked for.
pub fn from_canonical(resp: ChatCompletionResponse, model: &str) -> MessagesResponse {
    let mut content = Vec::new();
    let choice = resp.choices.into_iter().next();
    let finish = choice.as_ref().and_then(|c| c.finish_reason.clone());
    if let Some(c) = choice {
        let m = c.message;
        // Claude's thinking blocks, signed, as the model wrote them (Claude
        // wants them back on the next turn); other models' reasoning as
        // one unsigned block.
        let signed: Vec<Block> = m
            .thinking_blocks
            .iter()
            .flatten()
            .filter_map(thinking_block)
            .collect();
        if !signed.is_empty() {
            content.extend(signed);
        } else if let Some(r) = m.reasoning_content.filter(|r| !r.is_empty()) {
            content.push(Block::Known(KnownBlock::Thinking {
                thinking: r,
                signature: String::new(),
            }));
        }
        if let Some(t) = m.content.filter(|t| !t.is_empty()) {
            content.push(Block::text(t));
        }
        if let Some(r) = m.refusal.filter(|r| !r.is_empty()) {
            content.push(Block::text(r));
        }
        for call in m.tool_calls.into_iter().flatten() {
            let input = serde_json::from_str::<Value>(&call.function.arguments)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| Value::Object(Default::default()));
            content.push(Block::Known(KnownBlock::ToolUse {
                id: call.id,
                name: call.function.name,
                input,
                cache_control: None,
            }));
        }
    }
    let id = if resp.id.starts_with("msg_") {
        resp.id
    } else {
        format!("msg_{}", resp.id)
    };
    MessagesResponse {
        id,
        kind: "message".into(),
        role: "assistant".into(),
        model: model.to_owned(),
        content,
        stop_reason: Some(stop_reason(finish.as_deref()).to_owned()),
        stop_sequence: None,
        usage: resp
            .usage
            .as_ref()
            .map(AnthropicUsage::from_openai)
            .unwrap_or_default(),
    }
}

/// One of a canonical message's `thinking_blocks` as a content block.
fn thinking_block(b: &Value) -> Option<Block> {
    let text = |k: &str| {
        b.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match b.get("type").and_then(Value::as_str)? {
        "thinking" => Some(Block::Known(KnownBlock::Thinking {
            thinking: text("thinking"),
            signature: text("signature"),
        })),
        "redacted_thinking" => Some(Block::Known(KnownBlock::RedactedThinking {
            data: text("data"),
        })),
        _ => None,
    }
}
