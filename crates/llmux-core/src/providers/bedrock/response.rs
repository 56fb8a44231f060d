//! Converse response → canonical (OpenAI) response.

use crate::providers::anthropic::request::JSON_TOOL;
use crate::types::usage::PromptTokensDetails;
use crate::types::{
    ChatCompletionResponse, Choice, FunctionCall, ResponseMessage, ToolCall, Usage,
};
use serde_json::{Map, Value, json};

pub fn finish_reason(stop: Option<&str>, has_tool_calls: bool) -> String {
    match stop {
        Some("tool_use") if has_tool_calls => "tool_calls",
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("guardrail_intervened") | Some("content_filtered") => "content_filter",
        _ => "stop",
    }
    .to_owned()
}

/// Bedrock's usage; `inputTokens` leaves the cache out, as Anthropic's does.
pub fn usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (input, read, write, output) = (
        n("inputTokens"),
        n("cacheReadInputTokens"),
        n("cacheWriteInputTokens"),
        n("outputTokens"),
    );
    let prompt = input + read + write;
    Usage {
        prompt_tokens: prompt,
        completion_tokens: output,
        total_tokens: prompt + output,
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: Some(read),
            cache_write_tokens: (write > 0).then_some(write),
            ..Default::default()
        }),
        completion_tokens_details: None,
        cache_read_input_tokens: Some(read),
        cache_creation_input_tokens: Some(write),
        prompt_cache_hit_tokens: None,
        cost: None,
        server_tool_use: None,
    }
}

pub fn to_openai(
    resp: &Value,
    model: &str,
    json_tool: bool,
    created: u64,
) -> ChatCompletionResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut calls = Vec::new();
    let blocks = resp
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for b in &blocks {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(tu) = b.get("toolUse") {
            let name = tu.get("name").and_then(Value::as_str).unwrap_or_default();
            let input = tu.get("input").cloned().unwrap_or_else(|| json!({}));
            if json_tool && name == JSON_TOOL {
                text.push_str(&input.to_string());
                continue;
            }
            calls.push(ToolCall {
                id: tu
                    .get("toolUseId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                kind: "function".into(),
                function: FunctionCall {
                    name: name.to_owned(),
                    arguments: input.to_string(),
                },
                extra: Map::new(),
            });
        } else if let Some(rc) = b.get("reasoningContent") {
            if let Some(rt) = rc.get("reasoningText") {
                let t = rt.get("text").and_then(Value::as_str).unwrap_or_default();
                reasoning.push_str(t);
                thinking_blocks.push(json!({"type": "thinking", "thinking": t,
                    "signature": rt.get("signature").and_then(Value::as_str).unwrap_or_default()}));
            } else if let Some(data) = rc.get("redactedContent") {
                thinking_blocks.push(json!({"type": "redacted_thinking", "data": data}));
            }
        }
    }
    let has_calls = !calls.is_empty();
    let stop = resp.get("stopReason").and_then(Value::as_str);
    let finish = if json_tool && !has_calls {
        "stop".to_owned()
    } else {
        finish_reason(stop, has_calls)
    };
    ChatCompletionResponse {
        id: crate::providers::completion_id(),
        object: "chat.completion".into(),
        created,
        model: model.to_owned(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant".into(),
                content: (!text.is_empty() || !has_calls).then_some(text),
                tool_calls: has_calls.then_some(calls),
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
                ..Default::default()
            },
            finish_reason: Some(finish),
            logprobs: None,
        }],
        usage: resp.get("usage").map(usage),
        system_fingerprint: None,
        extra: Map::new(),
    }
}
