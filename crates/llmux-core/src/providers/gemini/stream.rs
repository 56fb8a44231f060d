//! Gemini's SSE stream (`streamGenerateContent?alt=sse`, one whole
//! `GenerateContentResponse` per event) → OpenAI chunks.

use super::error::from_error_object;
use super::response::{GenerateResponse, UsageMetadata, blocked, finish_reason, tool_call};
use crate::providers::sse::SseParser;
use crate::providers::{ChunkSource, StreamEvent, StreamTranslator};
use crate::types::{ApiError, Delta, FunctionCallDelta, ToolCallDelta, Usage};
use serde_json::Value;

pub struct GeminiStream {
    sse: SseParser,
    client_wants_usage: bool,
    src: ChunkSource,
    started: bool,
    /// Tool calls sent so far, per candidate.
    tools: Vec<u32>,
    finished: bool,
    usage: Option<Usage>,
    ended: bool,
}

impl GeminiStream {
    pub fn new(client_wants_usage: bool, model: &str, created: u64) -> Self {
        GeminiStream {
            sse: SseParser::new(),
            client_wants_usage,
            src: ChunkSource::new(format!("gemini-{created}"), model.to_owned(), created),
            started: false,
            tools: Vec::new(),
            finished: false,
            usage: None,
            ended: false,
        }
    }

    fn emit(&self, out: &mut Vec<StreamEvent>, index: u32, delta: Delta, finish: Option<String>) {
        out.push(self.src.chunk(index, delta, finish));
    }

    fn fail(&mut self, err: ApiError, out: &mut Vec<StreamEvent>) {
        self.ended = true;
        out.push(StreamEvent::error(err));
    }

    fn event(&mut self, data: &str, out: &mut Vec<StreamEvent>) {
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                return self.fail(
                    ApiError::bad_gateway(format!(
                        "The upstream sent a malformed stream event: {e}"
                    ))
                    .retryable(true),
                    out,
                );
            }
        };
        if let Some(e) = v.get("error") {
            return self.fail(from_error_object(0, e), out);
        }
        let resp: GenerateResponse = match serde_json::from_value(v) {
            Ok(r) => r,
            Err(e) => {
                return self.fail(
                    ApiError::bad_gateway(format!("Unreadable Gemini stream event: {e}")),
                    out,
                );
            }
        };
        if let Some(id) = resp.response_id {
            self.src.set_id(id);
        }
        if let Some(u) = &resp.usage_metadata {
            self.usage = Some(UsageMetadata::to_openai(u));
        }
        if resp.candidates.is_empty() {
            if let Some(err) = resp.prompt_feedback.as_ref().and_then(blocked) {
                return self.fail(err, out);
            }
        }
        if !self.started {
            self.started = true;
            self.emit(
                out,
                0,
                Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Default::default()
                },
                None,
            );
        }
        for (i, c) in resp.candidates.into_iter().enumerate() {
            let index = c.index.unwrap_or(i as u32);
            let slot = index as usize;
            if self.tools.len() <= slot {
                self.tools.resize(slot + 1, 0);
            }
            for p in c.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(call) = tool_call(&p) {
                    let n = self.tools[slot];
                    self.tools[slot] += 1;
                    let delta = Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index: n,
                            id: Some(call.id),
                            kind: Some("function".into()),
                            function: Some(FunctionCallDelta {
                                name: Some(call.function.name),
                                arguments: Some(call.function.arguments),
                            }),
                            provider_specific_fields: call
                                .extra
                                .get("provider_specific_fields")
                                .cloned(),
                        }]),
                        ..Default::default()
                    };
                    self.emit(out, index, delta, None);
                } else if let Some(t) = p
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    let delta = if p.get("thought").and_then(Value::as_bool) == Some(true) {
                        Delta {
                            reasoning_content: Some(t.to_owned()),
                            ..Default::default()
                        }
                    } else {
                        Delta {
                            content: Some(t.to_owned()),
                            ..Default::default()
                        }
                    };
                    self.emit(out, index, delta, None);
                }
            }
            if let Some(f) = finish_reason(c.finish_reason.as_deref(), self.tools[slot] > 0) {
                self.finished = true;
                self.emit(out, index, Delta::default(), Some(f));
            }
        }
    }
}

impl StreamTranslator for GeminiStream {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        self.sse.push(bytes);
        while let Some(ev) = self.sse.next_event() {
            let data = ev.data();
            if ev.has_data && !data.trim().is_empty() {
                self.event(&data, out);
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
            let data = ev.data();
            if ev.has_data && !data.trim().is_empty() {
                self.event(&data, out);
            }
        }
        if self.ended {
            return;
        }
        if !self.finished {
            return self.fail(
                ApiError::bad_gateway("The upstream stream ended without a finish reason.")
                    .retryable(true),
                out,
            );
        }
        if let (true, Some(u)) = (self.client_wants_usage, &self.usage) {
            out.push(self.src.usage(u));
        }
        self.ended = true;
        out.push(StreamEvent::Done);
    }

    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}
