//! Messages request → canonical (OpenAI) request.

use crate::types::anthropic::{Block, Content, KnownBlock, MessagesRequest};
use crate::types::chat::{
    ContentPart, FunctionCall, FunctionDefinition, ImageUrl, KnownPart, NamedFunction,
    NamedToolChoice, Stop, StreamOptions, Tool, ToolCall, ToolChoice,
};
use crate::types::{ApiError, ChatCompletionRequest, ChatMessage, MessageContent, Role};
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
    /// A Claude model behind another API (Bedrock): it takes `thinking` as
    /// the client wrote it, budget and all, and its signed thinking blocks
    /// back on later turns, as `thinking_blocks`.
    pub claude: bool,
    /// Groq and DeepSeek take a system message's content only as a string.
    pub plain_system: bool,
    /// DeepSeek takes every message's content only as a string, and its
    /// reasoning back on the turns that called tools.
    pub deepseek: bool,
    pub drop_params: bool,
}

/// Request fields that mean nothing once translated and are dropped; and
/// LiteLLM's `drop_params` and `num_retries`, which steer the gateway
/// (the route reads them) and are never sent upstream.
const IGNORED: &[&str] = &[
    "service_tier",
    "container",
    "context_management",
    "drop_params",
    "num_retries",
];

pub fn to_canonical(
    mut req: MessagesRequest,
    target: Target,
) -> Result<ChatCompletionRequest, ApiError> {
    // `output_config`: the effort of adaptive thinking and the answer's
    // JSON schema, as Claude Code and the SDKs send them.
    let output = req.extra.remove("output_config");
    let output_effort = output
        .as_ref()
        .and_then(|o| o.get("effort"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let response_format = output
        .as_ref()
        .and_then(|o| o.get("format"))
        .filter(|f| f.get("type").and_then(Value::as_str) == Some("json_schema"))
        .and_then(|f| f.get("schema"))
        .map(|schema| {
            json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}})
        });
    if !target.drop_params {
        if let Some((k, _)) = req.extra.iter().find(|(k, v)| {
            !v.is_null()
                && !IGNORED.contains(&k.as_str())
                && !crate::providers::GATEWAY_FIELDS.contains(&k.as_str())
        }) {
            return Err(ApiError::invalid_field(
                k,
                format!(
                    "`{k}` is not supported when this model is not served by Anthropic; set drop_params to drop it."
                ),
            ));
        }
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = req.system {
        messages.push(system_message(system));
    }
    for (i, m) in req.messages.into_iter().enumerate() {
        match m.role.as_str() {
            "system" => messages.push(system_message(m.content)),
            "user" => user_messages(m.content, i, &mut messages)?,
            "assistant" => messages.push(assistant_message(m.content, target)),
            other => {
                return Err(ApiError::invalid_field(
                    &format!("messages[{i}].role"),
                    format!("Unknown role `{other}`: use user or assistant."),
                ));
            }
        }
    }

    for m in &mut messages {
        if target.deepseek || (target.plain_system && m.role == Role::System) {
            flatten_text(m);
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
        tools.push(Tool {
            kind: FUNCTION.to_owned(),
            function: Some(FunctionDefinition {
                name: t.name,
                description: t.description,
                parameters: Some(
                    t.input_schema
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                ),
                strict: None,
            }),
            cache_control: t.cache_control,
            extra: Map::new(),
        });
    }
    let has_tools = !tools.is_empty();
    let (tool_choice, parallel_tool_calls) = match req.tool_choice {
        Some(choice) if has_tools => {
            let c = match choice.kind.as_str() {
                "any" => ToolChoice::Mode("required".to_owned()),
                "none" => ToolChoice::Mode("none".to_owned()),
                "tool" => ToolChoice::Named(NamedToolChoice {
                    kind: FUNCTION.to_owned(),
                    function: NamedFunction {
                        name: choice.name.unwrap_or_default(),
                    },
                }),
                _ => ToolChoice::Mode("auto".to_owned()),
            };
            let parallel = (choice.disable_parallel_tool_use == Some(true)).then_some(false);
            (Some(c), parallel)
        }
        _ => (None, None),
    };

    let stream = req.stream == Some(true);
    let user = req
        .metadata
        .as_ref()
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut extra = Map::new();
    let thinking = req.thinking.filter(|t| !t.is_null());
    let reasoning_effort = match &thinking {
        // Claude takes its own `thinking`, budget and all.
        Some(t) if target.claude => {
            extra.insert("thinking".into(), t.clone());
            None
        }
        Some(t) if target.supports_reasoning => {
            effort_for_thinking(t, output_effort.as_deref()).map(str::to_owned)
        }
        _ => None,
    };
    if let (Some(k), false) = (req.top_k, target.openai_proper) {
        extra.insert("top_k".into(), k.into());
    }
    let (max_tokens, max_completion_tokens) = if target.openai_proper {
        (None, req.max_tokens)
    } else {
        (req.max_tokens, None)
    };
    Ok(ChatCompletionRequest {
        model: req.model,
        messages,
        stream: stream.then_some(true),
        stream_options: stream.then(|| StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        }),
        max_tokens,
        max_completion_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        n: None,
        stop: req.stop_sequences.filter(|s| !s.is_empty()).map(Stop::Many),
        presence_penalty: None,
        frequency_penalty: None,
        seed: None,
        user,
        tools: has_tools.then_some(tools),
        tool_choice,
        parallel_tool_calls,
        response_format,
        reasoning_effort,
        extra,
    })
}

const FUNCTION: &str = "function";

/// A message of `role` with `content` and nothing else.
fn message(role: Role, content: Option<MessageContent>) -> ChatMessage {
    ChatMessage {
        role,
        content,
        name: None,
        tool_calls: None,
        tool_call_id: None,
        reasoning_content: None,
        thinking_blocks: None,
        cache_control: None,
        extra: Map::new(),
    }
}

/// Claude's thinking as an OpenAI effort level: a budget's size, or for
/// adaptive thinking the effort `output_config` names (medium if none).
fn effort_for_thinking(thinking: &Value, effort: Option<&str>) -> Option<&'static str> {
    match thinking.get("type").and_then(Value::as_str) {
        Some("enabled") => {}
        Some("adaptive") => {
            return Some(match effort {
                Some("low") => "low",
                Some("high" | "max" | "xhigh") => "high",
                _ => "medium",
            });
        }
        _ => return None,
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

fn system_message(content: Content) -> ChatMessage {
    let content = match content {
        Content::Text(t) => MessageContent::Text(t),
        Content::Blocks(blocks) => {
            MessageContent::Parts(blocks.into_iter().filter_map(text_part).collect())
        }
    };
    message(Role::System, Some(content))
}

fn text_part(b: Block) -> Option<ContentPart> {
    match b {
        Block::Known(KnownBlock::Text {
            text,
            cache_control,
            ..
        }) => Some(ContentPart::Known(KnownPart::Text {
            text,
            cache_control,
        })),
        _ => None,
    }
}

/// `data:<media type>;base64,<data>` from a base64 source, its data moved
/// into the URL rather than copied twice.
fn data_url(source: &mut Value, default_type: &str) -> String {
    let data = match source.get_mut("data") {
        Some(Value::String(d)) => std::mem::take(d),
        _ => String::new(),
    };
    let media_type = source
        .get("media_type")
        .and_then(Value::as_str)
        .unwrap_or(default_type);
    let mut url = String::with_capacity(13 + media_type.len() + data.len());
    url.push_str("data:");
    url.push_str(media_type);
    url.push_str(";base64,");
    url.push_str(&data);
    url
}

fn source_kind(source: &Value) -> Option<&str> {
    source.get("type").and_then(Value::as_str)
}

/// A content block as an OpenAI content part, where one exists.
fn part(b: Block, at: &str) -> Result<Option<ContentPart>, ApiError> {
    Ok(match b {
        Block::Known(KnownBlock::Text { .. }) => text_part(b),
        Block::Known(KnownBlock::Image {
            mut source,
            cache_control,
        }) => {
            let url = match source_kind(&source) {
                Some("base64") => data_url(&mut source, "image/png"),
                Some("url") => match source.get_mut("url") {
                    Some(Value::String(u)) => std::mem::take(u),
                    _ => String::new(),
                },
                _ => {
                    return Err(ApiError::invalid_field(
                        at,
                        "Only base64 and url image sources can be translated.",
                    ));
                }
            };
            Some(ContentPart::Known(KnownPart::ImageUrl {
                image_url: ImageUrl::Object {
                    url,
                    detail: None,
                    format: None,
                },
                cache_control,
            }))
        }
        Block::Known(KnownBlock::Document {
            mut source,
            title,
            cache_control,
            ..
        }) => Some(ContentPart::Known(match source_kind(&source) {
            Some("base64") => {
                let mut file = Map::new();
                file.insert(
                    "file_data".into(),
                    data_url(&mut source, "application/pdf").into(),
                );
                if let Some(t) = title {
                    file.insert("filename".into(), t.into());
                }
                KnownPart::File {
                    file: Value::Object(file),
                    cache_control,
                }
            }
            Some("text") => KnownPart::Text {
                text: match source.get_mut("data") {
                    Some(Value::String(d)) => std::mem::take(d),
                    _ => String::new(),
                },
                cache_control,
            },
            _ => {
                return Err(ApiError::invalid_field(
                    at,
                    "Only base64 and text document sources can be translated.",
                ));
            }
        })),
        _ => None,
    })
}

/// A user turn: its tool results become `tool` messages (first, as OpenAI
/// wants them right after the assistant's calls), the rest one user message.
fn user_messages(content: Content, i: usize, out: &mut Vec<ChatMessage>) -> Result<(), ApiError> {
    let blocks = match content {
        Content::Text(t) => {
            out.push(message(Role::User, Some(MessageContent::Text(t))));
            return Ok(());
        }
        Content::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    let mut result_images = Vec::new();
    for (j, b) in blocks.into_iter().enumerate() {
        let at = || format!("messages[{i}].content[{j}]");
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
                            if text.is_empty() {
                                text = t;
                            } else {
                                text.push('\n');
                                text.push_str(&t);
                            }
                        }
                        other @ Block::Known(KnownBlock::Image { .. }) => {
                            // OpenAI tool messages carry text only: images
                            // follow in the user message.
                            if let Some(p) = part(other, &at())? {
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
                let mut m = message(Role::Tool, Some(MessageContent::Text(text)));
                m.tool_call_id = Some(tool_use_id);
                m.cache_control = cache_control;
                out.push(m);
            }
            other => {
                if let Some(p) = part(other, &at())? {
                    parts.push(p);
                }
            }
        }
    }
    result_images.extend(parts);
    if !result_images.is_empty() {
        out.push(message(
            Role::User,
            Some(MessageContent::Parts(result_images)),
        ));
    }
    Ok(())
}

/// An assistant turn. Thinking blocks go back only to Claude (`claude`),
/// as `thinking_blocks` with their signatures: Claude wants a signed one
/// before a tool call it made while thinking, and no other model takes
/// reasoning back as input.
fn assistant_message(content: Content, target: Target) -> ChatMessage {
    let claude = target.claude;
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut thinking = Vec::new();
    let mut reasoning = String::new();
    for b in content.into_blocks() {
        match b {
            // DeepSeek's own reasoning, shown to the client as thinking,
            // goes back as `reasoning_content` (below).
            Block::Known(KnownBlock::Thinking { thinking: t, .. }) if target.deepseek => {
                reasoning.push_str(&t);
            }
            Block::Known(KnownBlock::Thinking {
                thinking: t,
                signature,
            }) if claude && !signature.is_empty() => {
                thinking.push(json!({"type": "thinking", "thinking": t, "signature": signature}));
            }
            Block::Known(KnownBlock::RedactedThinking { data }) if claude => {
                thinking.push(json!({"type": "redacted_thinking", "data": data}));
            }
            Block::Known(KnownBlock::Text { text: t, .. }) => {
                if text.is_empty() {
                    text = t;
                } else {
                    text.push_str(&t);
                }
            }
            Block::Known(KnownBlock::ToolUse {
                id, name, input, ..
            }) => calls.push(ToolCall {
                id,
                kind: FUNCTION.to_owned(),
                function: FunctionCall {
                    name,
                    arguments: if input.is_null() {
                        "{}".to_owned()
                    } else {
                        input.to_string()
                    },
                },
                extra: Map::new(),
            }),
            _ => {}
        }
    }
    let content = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(MessageContent::Text(text))
    };
    let mut m = message(Role::Assistant, content);
    if !calls.is_empty() {
        m.tool_calls = Some(calls);
    }
    if !thinking.is_empty() {
        m.thinking_blocks = Some(thinking);
    }
    // DeepSeek wants it back on the turns that called tools (a 400
    // otherwise), and ignores it, or on older models refuses it, elsewhere.
    if !reasoning.is_empty() && m.tool_calls.is_some() {
        m.reasoning_content = Some(reasoning);
    }
    m
}

/// A message's text parts as one string, for an API that takes no parts;
/// content with an image or another kind of part stays as it is.
fn flatten_text(m: &mut ChatMessage) {
    let Some(MessageContent::Parts(parts)) = &m.content else {
        return;
    };
    let mut text = String::new();
    for p in parts {
        match p {
            ContentPart::Known(KnownPart::Text { text: t, .. }) => {
                if !text.is_empty() && !t.is_empty() {
                    text.push('\n');
                }
                text.push_str(t);
            }
            _ => return,
        }
    }
    m.content = Some(MessageContent::Text(text));
}
