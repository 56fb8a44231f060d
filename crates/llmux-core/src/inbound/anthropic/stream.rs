//! Canonical chunks → Anthropic's stream events: message_start, one
//! content block at a time (thinking, text, each tool call), message_delta
//! with the stop reason and usage, message_stop.

use super::response::stop_reason;
use crate::json::JsonStr;
use crate::providers::StreamEvent;
use crate::types::anthropic::{
    AnthropicUsage, Block, DeltaUsage, KnownBlock, MessageDeltaBody, MessagesResponse,
    StreamEvent as AnEvent, error_type_for_status,
};
use crate::types::extra::Str;
use crate::types::{ApiError, Usage};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

#[derive(PartialEq)]
enum Open {
    None,
    Thinking,
    /// A thinking block its signature has closed: more reasoning is a
    /// new block.
    Signed,
    /// A redacted thinking block, whole in its start event.
    Redacted,
    Text,
    /// The OpenAI tool-call index this block is.
    Tool(u32),
}

pub struct MessagesEncoder {
    model: String,
    started: bool,
    open: Open,
    /// The next Anthropic block index.
    next_index: u32,
    finish: Option<String>,
    usage: Option<Usage>,
    done: bool,
}

impl MessagesEncoder {
    /// `model` is the name the client asked for.
    pub fn new(model: &str) -> Self {
        MessagesEncoder {
            model: model.to_owned(),
            started: false,
            open: Open::None,
            next_index: 0,
            finish: None,
            usage: None,
            done: false,
        }
    }

    /// Turns canonical events into framed Anthropic SSE (`StreamEvent::Raw`).
    pub fn encode(&mut self, events: &mut Vec<StreamEvent>) {
        // An event takes about as many bytes as the chunk it came from,
        // and the first also a message_start: room for both at once.
        let room: usize = events
            .iter()
            .map(|e| match e {
                StreamEvent::Data(d) | StreamEvent::Raw(d) => d.len(),
                _ => 0,
            })
            .sum();
        let mut buf = Vec::with_capacity(room + 256);
        for ev in events.drain(..) {
            if self.done {
                break;
            }
            match ev {
                StreamEvent::Data(d) => match crate::json::from_bytes::<ChunkView>(&d) {
                    Ok(chunk) => self.chunk(chunk, &mut buf),
                    Err(_) => {
                        // An upstream error event relayed as data.
                        let err = serde_json::from_slice::<Value>(&d)
                            .ok()
                            .and_then(|v| v.get("error").cloned())
                            .map(|e| {
                                let msg = e
                                    .get("message")
                                    .and_then(Value::as_str)
                                    .unwrap_or("upstream error");
                                ApiError::bad_gateway(msg)
                            })
                            .unwrap_or_else(|| {
                                ApiError::bad_gateway("The upstream sent an unreadable chunk.")
                            });
                        self.error(&err, &mut buf);
                    }
                },
                StreamEvent::Comment(_) => emit(&mut buf, &AnEvent::Ping),
                StreamEvent::Done => self.finish(&mut buf),
                StreamEvent::Error(e) => self.error(&e, &mut buf),
                StreamEvent::Raw(r) => buf.extend_from_slice(&r),
            }
        }
        if !buf.is_empty() {
            events.push(StreamEvent::Raw(Bytes::from(buf)));
        }
    }

    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// `message_stop` or an error was sent: nothing may follow.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn start(&mut self, id: &str, buf: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = if id.starts_with("msg_") {
            id.to_owned()
        } else {
            format!("msg_{id}")
        };
        emit(
            buf,
            &AnEvent::MessageStart {
                message: MessagesResponse {
                    id,
                    kind: "message".into(),
                    role: "assistant".into(),
                    model: self.model.clone(),
                    content: vec![],
                    stop_reason: None,
                    stop_sequence: None,
                    usage: AnthropicUsage::default(),
                },
            },
        );
    }

    fn close(&mut self, buf: &mut Vec<u8>) {
        if self.open != Open::None {
            emit(
                buf,
                &AnEvent::ContentBlockStop {
                    index: self.next_index - 1,
                },
            );
            self.open = Open::None;
        }
    }

    fn open(&mut self, kind: Open, block: Block, buf: &mut Vec<u8>) -> u32 {
        self.close(buf);
        let index = self.next_index;
        self.next_index += 1;
        emit(
            buf,
            &AnEvent::ContentBlockStart {
                index,
                content_block: block,
            },
        );
        self.open = kind;
        index
    }

    /// A `content_block_delta` for the open block: `kind` is the delta's
    /// type (`text_delta`, …) and `field` its one field, holding `value`.
    /// Written directly: most events of a stream are these, and serde
    /// would write the event as a map through its tag (the same bytes,
    /// tested). A value that came as a plain JSON string is copied as it
    /// came, not decoded and encoded again.
    fn delta(&self, kind: &str, field: &str, value: &JsonStr<'_>, buf: &mut Vec<u8>) {
        buf.extend_from_slice(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
        );
        crate::json::write_u64(buf, (self.next_index - 1).into());
        buf.extend_from_slice(b",\"delta\":{\"type\":\"");
        buf.extend_from_slice(kind.as_bytes());
        buf.extend_from_slice(b"\",\"");
        buf.extend_from_slice(field.as_bytes());
        buf.extend_from_slice(b"\":");
        match value {
            JsonStr::Raw(literal) => buf.extend_from_slice(literal.as_bytes()),
            JsonStr::Decoded(text) => crate::json::write_str(buf, text),
        }
        buf.extend_from_slice(b"}}\n\n");
    }

    fn chunk(&mut self, chunk: ChunkView<'_>, buf: &mut Vec<u8>) {
        self.start(&chunk.id.0, buf);
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return;
        };
        let d = choice.delta.unwrap_or_default();
        if let Some(r) = d
            .reasoning_content
            .and_then(JsonStr::read)
            .filter(|r| !r.is_empty())
        {
            if self.open != Open::Thinking {
                self.open(Open::Thinking, empty_thinking(), buf);
            }
            self.delta("thinking_delta", "thinking", &r, buf);
        }
        // Claude's signatures and redacted thinking (from Bedrock), which
        // Claude Code sends back on the next turn.
        for tb in d.thinking_blocks.into_iter().flatten() {
            match &*tb.kind.0 {
                "thinking" => {
                    let Some(sig) = tb.signature.and_then(JsonStr::read) else {
                        continue;
                    };
                    if sig.is_empty() {
                        continue;
                    }
                    if self.open != Open::Thinking {
                        self.open(Open::Thinking, empty_thinking(), buf);
                    }
                    self.delta("signature_delta", "signature", &sig, buf);
                    self.open = Open::Signed;
                }
                "redacted_thinking" => {
                    if let Some(data) = tb.data.and_then(JsonStr::read) {
                        let data = data.into_string();
                        self.open(
                            Open::Redacted,
                            Block::Known(KnownBlock::RedactedThinking { data }),
                            buf,
                        );
                    }
                }
                _ => {}
            }
        }
        if let Some(t) = d.content.and_then(JsonStr::read).filter(|t| !t.is_empty()) {
            if self.open != Open::Text {
                self.open(Open::Text, Block::text(""), buf);
            }
            self.delta("text_delta", "text", &t, buf);
        }
        for tc in d.tool_calls.into_iter().flatten() {
            let starts_new = tc.id.is_some() || self.open != Open::Tool(tc.index);
            let (name, args) = match tc.function {
                Some(f) => (f.name, f.arguments),
                None => (None, None),
            };
            if starts_new && self.open != Open::Tool(tc.index) {
                let id = tc.id.unwrap_or_else(|| format!("toolu_{}", tc.index));
                self.open(
                    Open::Tool(tc.index),
                    Block::Known(KnownBlock::ToolUse {
                        id,
                        name: name.unwrap_or_default(),
                        input: json!({}),
                        cache_control: None,
                    }),
                    buf,
                );
            }
            if let Some(args) = args.and_then(JsonStr::read).filter(|a| !a.is_empty()) {
                self.delta("input_json_delta", "partial_json", &args, buf);
            }
        }
        if let Some(f) = choice.finish_reason {
            self.finish = Some(f);
        }
    }

    fn finish(&mut self, buf: &mut Vec<u8>) {
        self.start("llmux", buf);
        self.close(buf);
        let u = self
            .usage
            .as_ref()
            .map(AnthropicUsage::from_openai)
            .unwrap_or_default();
        emit(
            buf,
            &AnEvent::MessageDelta {
                delta: MessageDeltaBody {
                    stop_reason: Some(stop_reason(self.finish.as_deref()).to_owned()),
                    stop_sequence: None,
                },
                usage: Some(DeltaUsage {
                    output_tokens: u.output_tokens,
                    input_tokens: Some(u.input_tokens),
                    cache_creation_input_tokens: u.cache_creation_input_tokens,
                    cache_read_input_tokens: u.cache_read_input_tokens,
                    server_tool_use: u.server_tool_use,
                }),
            },
        );
        emit(buf, &AnEvent::MessageStop);
        self.done = true;
    }

    fn error(&mut self, e: &ApiError, buf: &mut Vec<u8>) {
        let data = json!({"type": "error", "error": {"type": error_type_for_status(e.status), "message": e.message}});
        buf.extend_from_slice(b"event: error\ndata: ");
        buf.extend_from_slice(data.to_string().as_bytes());
        buf.extend_from_slice(b"\n\n");
        self.done = true;
    }
}

/// An OpenAI chunk as the encoder reads it: only the members it uses, the
/// id borrowed, and the strings it passes on (text, reasoning, tool
/// arguments) kept as the JSON they came as, for [`JsonStr`].
#[derive(Deserialize)]
struct ChunkView<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(default, borrow)]
    choices: Vec<ChoiceView<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaView<'a>>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Default, Deserialize)]
struct DeltaView<'a> {
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    reasoning_content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ToolCallView<'a>>>,
    #[serde(default, borrow)]
    thinking_blocks: Option<Vec<ThinkingView<'a>>>,
}

/// A piece of a thinking block: its signature, or a redacted block.
#[derive(Deserialize)]
struct ThinkingView<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(default, borrow)]
    signature: Option<&'a RawValue>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

fn empty_thinking() -> Block {
    Block::Known(KnownBlock::Thinking {
        thinking: String::new(),
        signature: String::new(),
    })
}

#[derive(Deserialize)]
struct ToolCallView<'a> {
    index: u32,
    #[serde(default)]
    id: Option<String>,
    #[serde(default, borrow)]
    function: Option<FunctionView<'a>>,
}

#[derive(Deserialize)]
struct FunctionView<'a> {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

fn emit(buf: &mut Vec<u8>, ev: &AnEvent) {
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(ev.name().as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    // Writing into a Vec fails only for a map with keys that are not
    // strings, which no event has.
    let _ = serde_json::to_writer(&mut *buf, ev);
    buf.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::anthropic::BlockDelta;

    /// The deltas written directly are the events serde writes, byte for
    /// byte, for each kind, at any index, with text that needs escaping.
    #[test]
    fn written_deltas_are_the_events_serde_writes() {
        let texts = [
            "",
            "Hi",
            "a \"q\" \\ \n\t\u{1} é 🦀 \u{2028}",
            "{\"path\":\"a.rs\"}",
        ];
        for next_index in [1, 2, 10, 4096] {
            let mut enc = MessagesEncoder::new("m");
            enc.next_index = next_index;
            for text in texts {
                for (kind, field, delta) in [
                    (
                        "text_delta",
                        "text",
                        BlockDelta::TextDelta { text: text.into() },
                    ),
                    (
                        "thinking_delta",
                        "thinking",
                        BlockDelta::ThinkingDelta {
                            thinking: text.into(),
                        },
                    ),
                    (
                        "input_json_delta",
                        "partial_json",
                        BlockDelta::InputJsonDelta {
                            partial_json: text.into(),
                        },
                    ),
                ] {
                    let mut written = Vec::new();
                    enc.delta(kind, field, &JsonStr::Decoded(text.into()), &mut written);
                    // The same string copied as it came, escaped as serde does.
                    let literal = serde_json::to_string(text).unwrap();
                    let mut copied = Vec::new();
                    enc.delta(kind, field, &JsonStr::Raw(&literal), &mut copied);
                    assert_eq!(copied, written);
                    let mut want = Vec::new();
                    let index = next_index - 1;
                    emit(&mut want, &AnEvent::ContentBlockDelta { index, delta });
                    assert_eq!(
                        String::from_utf8_lossy(&written),
                        String::from_utf8_lossy(&want)
                    );
                }
            }
        }
    }
}
