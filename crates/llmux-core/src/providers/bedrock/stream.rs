//! ConverseStream's binary event stream (`application/vnd.amazon.eventstream`,
//! decoded with `aws-smithy-eventstream`: CRCs checked, frames split across
//! reads reassembled) → OpenAI chunks. Exceptions are checked before events.

use super::error::from_exception;
use super::response::{finish_reason, usage};
use crate::providers::{ChunkSource, StreamEvent, StreamTranslator};
use crate::types::{ApiError, Delta, FunctionCallDelta, ToolCallDelta, Usage};
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::BytesMut;
use serde_json::{Value, json};
use std::collections::HashMap;

pub struct BedrockStream {
    buf: BytesMut,
    decoder: MessageFrameDecoder,
    client_wants_usage: bool,
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
    pub fn new(client_wants_usage: bool, model: &str, created: u64) -> Self {
        BedrockStream {
            buf: BytesMut::new(),
            decoder: MessageFrameDecoder::new(),
            client_wants_usage,
            src: ChunkSource::new(format!("bedrock-{created}"), model.to_owned(), created),
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
        let payload: Value = crate::json::from_bytes(m.payload()).unwrap_or(Value::Null);
        match header(&m, ":message-type") {
            Some("exception") | Some("error") => {
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
        match header(&m, ":event-type").unwrap_or("") {
            "messageStart" => out.push(self.chunk(
                Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Default::default()
                },
                None,
            )),
            "contentBlockStart" => {
                if let Some(tu) = payload.pointer("/start/toolUse") {
                    let block = payload
                        .get("contentBlockIndex")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let i = self.next_tool;
                    self.next_tool += 1;
                    self.tools.insert(block, i);
                    out.push(self.chunk(
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: i,
                                id: tu.get("toolUseId").and_then(Value::as_str).map(str::to_owned),
                                kind: Some("function".into()),
                                function: Some(FunctionCallDelta {
                                    name: tu.get("name").and_then(Value::as_str).map(str::to_owned),
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
                let block = payload
                    .get("contentBlockIndex")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let Some(d) = payload.get("delta") else {
                    return;
                };
                let delta = if let Some(t) = d.get("text").and_then(Value::as_str) {
                    Delta {
                        content: Some(t.to_owned()),
                        ..Default::default()
                    }
                } else if let Some(input) = d.pointer("/toolUse/input").and_then(Value::as_str) {
                    let Some(&i) = self.tools.get(&block) else {
                        return;
                    };
                    Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index: i,
                            function: Some(FunctionCallDelta {
                                name: None,
                                arguments: Some(input.to_owned()),
                            }),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }
                } else if let Some(rc) = d.get("reasoningContent") {
                    if let Some(t) = rc.get("text").and_then(Value::as_str) {
                        Delta {
                            reasoning_content: Some(t.to_owned()),
                            thinking_blocks: Some(vec![json!({"type": "thinking", "thinking": t})]),
                            ..Default::default()
                        }
                    } else if let Some(sig) = rc.get("signature").and_then(Value::as_str) {
                        Delta {
                            thinking_blocks: Some(vec![
                                json!({"type": "thinking", "thinking": "", "signature": sig}),
                            ]),
                            ..Default::default()
                        }
                    } else if let Some(data) = rc.get("redactedContent") {
                        Delta {
                            thinking_blocks: Some(vec![
                                json!({"type": "redacted_thinking", "data": data}),
                            ]),
                            ..Default::default()
                        }
                    } else {
                        return;
                    }
                } else {
                    return;
                };
                out.push(self.chunk(delta, None));
            }
            "messageStop" => {
                self.stopped = true;
                let f = finish_reason(
                    payload.get("stopReason").and_then(Value::as_str),
                    self.next_tool > 0,
                );
                out.push(self.chunk(Delta::default(), Some(f)));
            }
            "metadata" => {
                if let Some(u) = payload.get("usage") {
                    self.usage = Some(usage(u));
                }
                if self.stopped {
                    self.end(out);
                }
            }
            _ => {}
        }
    }
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
