//! Anthropic's stream → OpenAI chunks, event by event. The per-request
//! state is here and nowhere else: which content block is which tool call,
//! the thinking text seen so far, and the usage.

use super::error::from_parts;
use super::request::JSON_TOOL;
use super::response::{finish_reason, provider_field};
use crate::providers::sse::SseParser;
use crate::providers::{ChunkSource, StreamEvent, StreamTranslator};
use crate::types::anthropic::{
    AnthropicUsage, Block, BlockDelta, KnownBlock, RawDeltaKind, StreamEvent as AnEvent, raw_delta,
};
use crate::types::{ApiError, Delta, FunctionCallDelta, ToolCallDelta, Usage};
use serde_json::{Value, json};

/// Content blocks a streamed message may open: far more than any answer
/// has, few enough that a broken index cannot make the table large.
const MAX_BLOCKS: usize = 4096;

enum BlockKind {
    Text,
    /// A tool call, with its OpenAI index.
    Tool(u32),
    /// The forced JSON tool: its input is the answer text.
    JsonAnswer,
    Thinking,
    /// A call Anthropic runs itself (web search): passed on whole at its
    /// end, its input gathered from the deltas.
    Server(Box<ServerCall>),
    Other,
}

struct ServerCall {
    block: Value,
    input: String,
    /// More input came than is kept: the block goes with the input its
    /// start event had, marked `input_truncated`.
    truncated: bool,
}

/// Input JSON kept for the server tool calls of one stream, all together:
/// a search query is short; a stream that sends more cannot make llmux
/// hold more.
const MAX_SERVER_INPUT: usize = 256 * 1024;

pub struct AnthropicStream {
    sse: SseParser,
    client_wants_usage: bool,
    json_tool: bool,
    src: ChunkSource,
    /// Each content block's kind, at its index (Anthropic numbers a
    /// message's blocks 0, 1, 2, …).
    blocks: Vec<BlockKind>,
    next_tool: u32,
    usage: AnthropicUsage,
    openai_usage: Option<Usage>,
    stop_reason: Option<String>,
    /// Server tool input kept so far (at most [`MAX_SERVER_INPUT`]).
    server_input: usize,
    ended: bool,
}

impl AnthropicStream {
    pub fn new(client_wants_usage: bool, json_tool: bool, model: &str, created: u64) -> Self {
        AnthropicStream {
            sse: SseParser::new(),
            client_wants_usage,
            json_tool,
            src: ChunkSource::new(String::new(), model.to_owned(), created),
            blocks: Vec::new(),
            next_tool: 0,
            usage: AnthropicUsage::default(),
            openai_usage: None,
            stop_reason: None,
            server_input: 0,
            ended: false,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<String>) -> StreamEvent {
        self.src.chunk(0, delta, finish)
    }

    /// The server call at block `index`, if one is open there, to the
    /// client: its input read from the deltas (the start's `{}` if none
    /// came; text if it does not read as JSON).
    fn flush_server(&mut self, index: usize, out: &mut Vec<StreamEvent>) {
        let Some(slot @ BlockKind::Server(_)) = self.blocks.get_mut(index) else {
            return;
        };
        let BlockKind::Server(call) = std::mem::replace(slot, BlockKind::Other) else {
            return;
        };
        let ServerCall {
            mut block,
            input,
            truncated,
        } = *call;
        if let Some(obj) = block.as_object_mut() {
            if truncated {
                obj.insert("input_truncated".into(), Value::Bool(true));
            } else if !input.is_empty() {
                let value = serde_json::from_str(&input).unwrap_or(Value::String(input));
                obj.insert("input".into(), value);
            }
        }
        out.push(self.provider_fields(json!({ "server_tool_use": [block] })));
    }

    /// A chunk carrying only `provider_specific_fields`.
    fn provider_fields(&self, fields: Value) -> StreamEvent {
        self.chunk(
            Delta {
                provider_specific_fields: Some(fields),
                ..Default::default()
            },
            None,
        )
    }

    fn fail(&mut self, err: ApiError, out: &mut Vec<StreamEvent>) {
        self.ended = true;
        out.push(StreamEvent::error(err));
    }

    fn event(&mut self, ev: AnEvent, out: &mut Vec<StreamEvent>) {
        match ev {
            AnEvent::MessageStart { message } => {
                self.src.set_id(message.id);
                if !message.model.is_empty() {
                    self.src.set_model(message.model);
                }
                self.usage = message.usage;
                self.openai_usage = Some(self.usage.to_openai());
                out.push(self.chunk(
                    Delta {
                        role: Some("assistant".into()),
                        content: Some(String::new()),
                        ..Default::default()
                    },
                    None,
                ));
            }
            AnEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                let i = index as usize;
                if i >= MAX_BLOCKS {
                    self.fail(
                        ApiError::bad_gateway(format!(
                            "The upstream stream opened content block {index}; \
                             at most {MAX_BLOCKS} are read."
                        )),
                        out,
                    );
                    return;
                }
                let kind = match content_block {
                    Block::Known(KnownBlock::Text { text, .. }) => {
                        if !text.is_empty() {
                            out.push(self.chunk(
                                Delta {
                                    content: Some(text),
                                    ..Default::default()
                                },
                                None,
                            ));
                        }
                        BlockKind::Text
                    }
                    Block::Known(KnownBlock::ToolUse { name, .. })
                        if self.json_tool && name == JSON_TOOL =>
                    {
                        BlockKind::JsonAnswer
                    }
                    Block::Known(KnownBlock::ToolUse { id, name, .. }) => {
                        let i = self.next_tool;
                        self.next_tool += 1;
                        out.push(self.chunk(
                            Delta {
                                tool_calls: Some(vec![ToolCallDelta {
                                    index: i,
                                    id: Some(id),
                                    kind: Some("function".into()),
                                    function: Some(FunctionCallDelta {
                                        name: Some(name),
                                        arguments: Some(String::new()),
                                    }),
                                    provider_specific_fields: None,
                                }]),
                                ..Default::default()
                            },
                            None,
                        ));
                        BlockKind::Tool(i)
                    }
                    Block::Known(KnownBlock::Thinking { .. }) => BlockKind::Thinking,
                    Block::Other(block) => {
                        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
                        let key = provider_field(kind);
                        if key == "server_tool_use" {
                            BlockKind::Server(Box::new(ServerCall {
                                block,
                                input: String::new(),
                                truncated: false,
                            }))
                        } else {
                            // A result comes whole in its start event.
                            out.push(self.provider_fields(json!({ key: [block] })));
                            BlockKind::Other
                        }
                    }
                    Block::Known(KnownBlock::RedactedThinking { data }) => {
                        out.push(self.chunk(
                            Delta {
                                thinking_blocks: Some(vec![
                                    json!({"type": "redacted_thinking", "data": data}),
                                ]),
                                ..Default::default()
                            },
                            None,
                        ));
                        BlockKind::Other
                    }
                    _ => BlockKind::Other,
                };
                if i >= self.blocks.len() {
                    self.blocks.resize_with(i + 1, || BlockKind::Other);
                }
                // A server call whose index is used again before its stop
                // goes as it is, not lost.
                self.flush_server(i, out);
                if let Some(slot) = self.blocks.get_mut(i) {
                    *slot = kind;
                }
            }
            AnEvent::ContentBlockDelta { index, delta } => {
                if let (
                    Some(BlockKind::Server(call)),
                    BlockDelta::InputJsonDelta { partial_json },
                ) = (self.blocks.get_mut(index as usize), &delta)
                {
                    if call.truncated || self.server_input + partial_json.len() > MAX_SERVER_INPUT {
                        call.truncated = true;
                    } else {
                        self.server_input += partial_json.len();
                        call.input.push_str(partial_json);
                    }
                    return;
                }
                let kind = self.blocks.get(index as usize).unwrap_or(&BlockKind::Other);
                let d = match (kind, delta) {
                    (BlockKind::Text, BlockDelta::TextDelta { text }) => Delta {
                        content: Some(text),
                        ..Default::default()
                    },
                    (BlockKind::JsonAnswer, BlockDelta::InputJsonDelta { partial_json }) => Delta {
                        content: Some(partial_json),
                        ..Default::default()
                    },
                    (BlockKind::Tool(i), BlockDelta::InputJsonDelta { partial_json }) => Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index: *i,
                            id: None,
                            kind: None,
                            function: Some(FunctionCallDelta {
                                name: None,
                                arguments: Some(partial_json),
                            }),
                            provider_specific_fields: None,
                        }]),
                        ..Default::default()
                    },
                    // Where the text just sent comes from (LiteLLM's key).
                    (BlockKind::Text, BlockDelta::CitationsDelta { citation }) => Delta {
                        provider_specific_fields: Some(json!({ "citation": citation })),
                        ..Default::default()
                    },
                    (BlockKind::Thinking, BlockDelta::ThinkingDelta { thinking }) => Delta {
                        reasoning_content: Some(thinking.clone()),
                        thinking_blocks: Some(vec![
                            json!({"type": "thinking", "thinking": thinking}),
                        ]),
                        ..Default::default()
                    },
                    (BlockKind::Thinking, BlockDelta::SignatureDelta { signature }) => Delta {
                        thinking_blocks: Some(vec![
                            json!({"type": "thinking", "thinking": "", "signature": signature}),
                        ]),
                        ..Default::default()
                    },
                    _ => return,
                };
                out.push(self.chunk(d, None));
            }
            AnEvent::ContentBlockStop { index } => self.flush_server(index as usize, out),
            AnEvent::Ping => {}
            AnEvent::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    self.usage.update(u);
                }
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                self.openai_usage = Some(self.usage.to_openai());
            }
            AnEvent::MessageStop => {
                // Server calls never stopped still reach the client.
                for i in 0..self.blocks.len() {
                    self.flush_server(i, out);
                }
                let has_tools = self.next_tool > 0;
                let finish = if self.json_tool && !has_tools {
                    "stop".to_owned()
                } else {
                    finish_reason(self.stop_reason.as_deref(), has_tools)
                };
                out.push(self.chunk(Delta::default(), Some(finish)));
                let usage = self.usage.to_openai();
                if self.client_wants_usage {
                    out.push(self.src.usage(&usage));
                }
                self.openai_usage = Some(usage);
                self.ended = true;
                out.push(StreamEvent::Done);
            }
            AnEvent::Error { error } => {
                let status = super::error::status_for_type(&error.kind).unwrap_or(500);
                let err = from_parts(status, &error.kind, &error.message);
                self.fail(err, out);
            }
        }
    }
}

impl StreamTranslator for AnthropicStream {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        self.sse.push(bytes);
        while let Some(ev) = self.sse.next_event() {
            let data = ev.data();
            if !ev.has_data || data.trim().is_empty() {
                continue;
            }
            let name = ev.event_bytes();
            // A piece of text or of a tool call's arguments, most of a
            // stream: its JSON string goes into the chunk as it came.
            if name == Some(b"content_block_delta") {
                if let Some((index, kind, literal)) = raw_delta(&data) {
                    let chunk = match (self.blocks.get(index as usize), kind) {
                        (Some(BlockKind::Text), RawDeltaKind::Text)
                        | (Some(BlockKind::JsonAnswer), RawDeltaKind::InputJson) => {
                            Some(self.src.raw_text_chunk(0, literal))
                        }
                        (Some(BlockKind::Tool(tool)), RawDeltaKind::InputJson) => {
                            Some(self.src.raw_arguments_chunk(0, *tool, literal))
                        }
                        _ => None,
                    };
                    if let Some(chunk) = chunk {
                        out.push(chunk);
                        continue;
                    }
                }
            }
            match AnEvent::parse(name, &data) {
                Ok(parsed) => self.event(parsed, out),
                Err(e) => {
                    // Event types added to the API later are skipped; a
                    // known one that does not parse is a broken stream.
                    let known = name.is_some_and(|n| {
                        matches!(
                            n,
                            b"message_start"
                                | b"content_block_start"
                                | b"content_block_delta"
                                | b"content_block_stop"
                                | b"message_delta"
                                | b"message_stop"
                                | b"error"
                        )
                    });
                    if known || serde_json::from_str::<serde::de::IgnoredAny>(&data).is_err() {
                        self.fail(
                            ApiError::bad_gateway(format!(
                                "The upstream sent a malformed stream event: {e}"
                            ))
                            .retryable(true),
                            out,
                        );
                    }
                }
            }
            if self.ended {
                return;
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        if let Some(ev) = self.sse.finish() {
            if let Ok(parsed) = AnEvent::parse(ev.event_bytes(), &ev.data()) {
                self.event(parsed, out);
            }
        }
        if !self.ended {
            self.fail(
                ApiError::bad_gateway("The upstream stream ended before `message_stop`.")
                    .retryable(true),
                out,
            );
        }
    }

    fn usage(&self) -> Option<&Usage> {
        self.openai_usage.as_ref()
    }
}
