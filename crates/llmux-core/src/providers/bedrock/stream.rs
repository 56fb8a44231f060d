//! ConverseStream's binary event stream (`application/vnd.amazon.eventstream`,
//! decoded with `aws-smithy-eventstream`: CRCs checked, frames split across
//! reads reassembled) → OpenAI chunks. Exceptions are checked before events.

use super::error::from_exception;
use super::response::{finish_reason, usage};
use crate::json::JsonStr;
use crate::providers::anthropic::request::JSON_TOOL;
use crate::providers::{ChunkSource, StreamEvent, StreamTranslator};
use crate::types::extra::Str;
use crate::types::{ApiError, Delta, FunctionCallDelta, ToolCallDelta, Usage};
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::BytesMut;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::HashMap;

pub struct BedrockStream {
    buf: BytesMut,
    decoder: MessageFrameDecoder,
    client_wants_usage: bool,
    /// `response_format` asked for JSON, which comes as the forced JSON
    /// tool's input and goes to the client as the answer's text.
    json_tool: bool,
    /// The contentBlockIndex of that tool's block, once it has started.
    json_block: Option<u64>,
    src: ChunkSource,
    /// contentBlockIndex → OpenAI tool-call index.
    tools: HashMap<u64, u32>,
    next_tool: u32,
    stopped: bool,
    usage: Option<Usage>,
    ended: bool,
}

fn header<'m>(m: &'m Message, name: &str) -> Option<&'m str> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

impl BedrockStream {
    pub fn new(client_wants_usage: bool, json_tool: bool, model: &str, created: u64) -> Self {
        BedrockStream {
            buf: BytesMut::new(),
            decoder: MessageFrameDecoder::new(),
            client_wants_usage,
            json_tool,
            json_block: None,
            src: ChunkSource::new(crate::providers::completion_id(), model.to_owned(), created),
            tools: HashMap::new(),
            next_tool: 0,
            stopped: false,
            usage: None,
            ended: false,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<String>) -> StreamEvent {
        self.src.chunk(0, delta, finish)
    }

    fn fail(&mut self, err: ApiError, out: &mut Vec<StreamEvent>) {
        self.ended = true;
        out.push(StreamEvent::error(err));
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        if let (true, Some(u)) = (self.client_wants_usage, &self.usage) {
            out.push(self.src.usage(u));
        }
        self.ended = true;
        out.push(StreamEvent::Done);
    }

    fn message(&mut self, m: Message, out: &mut Vec<StreamEvent>) {
        match header(&m, ":message-type") {
            Some("exception") | Some("error") => {
                let payload: Value = crate::json::from_bytes(m.payload()).unwrap_or(Value::Null);
                let name = header(&m, ":exception-type")
                    .or_else(|| header(&m, ":error-code"))
                    .unwrap_or("internalServerException");
                let msg = payload
                    .get("message")
                    .or_else(|| payload.get("Message"))
                    .and_then(Value::as_str)
                    .or_else(|| header(&m, ":error-message"))
                    .unwrap_or("Bedrock reported an error mid-stream.");
                return self.fail(from_exception(0, name, msg), out);
            }
            _ => {}
        }
        let event = header(&m, ":event-type").unwrap_or("");
        if let Err(e) = self.event(event, m.payload(), out) {
            self.fail(
                ApiError::bad_gateway(format!(
                    "The upstream sent a malformed `{event}` event: {e}"
                ))
                .retryable(true),
                out,
            );
        }
    }

    /// One event's JSON payload, read into the struct its type names (the
    /// payload's `p`, padding against traffic analysis, and any member not
    /// named below are skipped).
    fn event(
        &mut self,
        event: &str,
        payload: &[u8],
        out: &mut Vec<StreamEvent>,
    ) -> serde_json::Result<()> {
        match event {
            "messageStart" => out.push(self.chunk(
                Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Default::default()
                },
                None,
            )),
            "contentBlockStart" => {
                let ev: BlockStart = crate::json::from_bytes(payload)?;
                if let Some(tu) = ev.start.and_then(|s| s.tool_use) {
                    let block = ev.content_block_index.unwrap_or(0);
                    if self.json_tool && tu.name.as_deref() == Some(JSON_TOOL) {
                        self.json_block = Some(block);
                        return Ok(());
                    }
                    let i = self.next_tool;
                    self.next_tool += 1;
                    self.tools.insert(block, i);
                    out.push(self.chunk(
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: i,
                                id: tu.tool_use_id,
                                kind: Some("function".into()),
                                function: Some(FunctionCallDelta {
                                    name: tu.name,
                                    arguments: Some(String::new()),
                                }),
                                provider_specific_fields: None,
                            }]),
                            ..Default::default()
                        },
                        None,
                    ));
                }
            }
            "contentBlockDelta" => {
                let ev: BlockDeltaEvent = crate::json::from_bytes(payload)?;
                let block = ev.content_block_index.unwrap_or(0);
                let Some(d) = ev.delta else {
                    return Ok(());
                };
                // Text and tool input, most of a stream: the JSON string
                // goes into the chunk as it came when it can.
                if let Some(text) = d.text.and_then(JsonStr::read) {
                    out.push(self.src.text_piece(0, text));
                } else if let Some(input) = d.tool_use.and_then(|t| t.input).and_then(JsonStr::read)
                {
                    if self.json_block == Some(block) {
                        // The JSON answer, as text.
                        out.push(self.src.text_piece(0, input));
                    } else if let Some(&i) = self.tools.get(&block) {
                        out.push(self.src.arguments_piece(0, i, input));
                    }
                } else if let Some(rc) = d.reasoning_content {
                    let delta = if let Some(t) = rc.text {
                        Delta {
                            thinking_blocks: Some(vec![json!({"type": "thinking", "thinking": t})]),
                            reasoning_content: Some(t),
                            ..Default::default()
                        }
                    } else if let Some(sig) = rc.signature {
                        Delta {
                            thinking_blocks: Some(vec![
                                json!({"type": "thinking", "thinking": "", "signature": sig}),
                            ]),
                            ..Default::default()
                        }
                    } else if let Some(data) = rc.redacted_content {
                        Delta {
                            thinking_blocks: Some(vec![
                                json!({"type": "redacted_thinking", "data": data}),
                            ]),
                            ..Default::default()
                        }
                    } else {
                        return Ok(());
                    };
                    out.push(self.chunk(delta, None));
                }
            }
            "messageStop" => {
                let ev: MessageStop = crate::json::from_bytes(payload)?;
                self.stopped = true;
                let has_tools = self.next_tool > 0;
                // A JSON answer ends as an answer, not as a tool call.
                let f = if self.json_tool && !has_tools {
                    "stop".to_owned()
                } else {
                    finish_reason(ev.stop_reason.as_ref().map(|Str(r)| &**r), has_tools)
                };
                out.push(self.chunk(Delta::default(), Some(f)));
            }
            "metadata" => {
                let ev: Metadata = crate::json::from_bytes(payload)?;
                if let Some(u) = &ev.usage {
                    self.usage = Some(usage(u));
                }
                if self.stopped {
                    self.end(out);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `contentBlockStart`: a tool call's id and name (text blocks start with
/// their first delta).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart {
    #[serde(default)]
    content_block_index: Option<u64>,
    #[serde(default)]
    start: Option<BlockStartKind>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStartKind {
    #[serde(default)]
    tool_use: Option<ToolUseStart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart {
    #[serde(default)]
    tool_use_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// `contentBlockDelta`: a piece of text, of a tool call's input, or of
/// reasoning.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDeltaEvent<'a> {
    #[serde(default)]
    content_block_index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<BlockDelta<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta<'a> {
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_use: Option<ToolUseDelta<'a>>,
    #[serde(default)]
    reasoning_content: Option<ReasoningDelta>,
}

#[derive(Deserialize)]
struct ToolUseDelta<'a> {
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReasoningDelta {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    redacted_content: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop<'a> {
    #[serde(default, borrow)]
    stop_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<Value>,
}

impl StreamTranslator for BedrockStream {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            match self.decoder.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(m)) => {
                    self.message(m, out);
                    if self.ended {
                        return;
                    }
                }
                Ok(DecodedFrame::Incomplete) => return,
                Err(e) => {
                    return self.fail(
                        ApiError::bad_gateway(format!(
                            "The upstream sent a malformed event-stream frame: {e}"
                        ))
                        .retryable(true),
                        out,
                    );
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        if self.stopped {
            // No metadata event: the answer is complete all the same.
            return self.end(out);
        }
        self.fail(
            ApiError::bad_gateway("The upstream stream ended before `messageStop`.")
                .retryable(true),
            out,
        );
    }

    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}
