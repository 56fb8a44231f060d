//! Gemini's SSE stream (`streamGenerateContent?alt=sse`, one whole
//! `GenerateContentResponse` per event) → OpenAI chunks.

use super::error::from_error_object;
use super::response::{
    Metadata, UsageMetadata, blocked, count_searches, failed_answer, finish_reason, function_call,
    grounded, image,
};
use crate::json::JsonStr;
use crate::providers::sse::SseParser;
use crate::providers::{ChunkSource, StreamEvent, StreamTranslator};
use crate::types::extra::Str;
use crate::types::{ApiError, Delta, FunctionCallDelta, ToolCallDelta, Usage};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Candidates whose grounding is counted: Gemini gives at most 8.
const MAX_CANDIDATES: usize = 64;

pub struct GeminiStream {
    sse: SseParser,
    client_wants_usage: bool,
    src: ChunkSource,
    started: bool,
    /// Tool calls sent so far, per candidate.
    tools: Vec<u32>,
    /// Some answer text or image was sent.
    answered: bool,
    /// Images sent so far.
    images: usize,
    finished: bool,
    usage: Option<Usage>,
    /// Which candidates' answers were grounded with Google Search, by index.
    grounded: Vec<bool>,
    /// The latest safety ratings, passed on with the finish.
    safety: Vec<Value>,
    ended: bool,
}

impl GeminiStream {
    pub fn new(client_wants_usage: bool, model: &str, created: u64) -> Self {
        GeminiStream {
            sse: SseParser::new(),
            client_wants_usage,
            src: ChunkSource::new(crate::providers::completion_id(), model.to_owned(), created),
            started: false,
            tools: Vec::new(),
            answered: false,
            images: 0,
            finished: false,
            usage: None,
            grounded: Vec::new(),
            safety: Vec::new(),
            ended: false,
        }
    }

    fn searches(&self) -> u64 {
        self.grounded.iter().filter(|g| **g).count() as u64
    }

    fn emit(&self, out: &mut Vec<StreamEvent>, index: u32, delta: Delta, finish: Option<String>) {
        out.push(self.src.chunk(index, delta, finish));
    }

    fn fail(&mut self, err: ApiError, out: &mut Vec<StreamEvent>) {
        self.ended = true;
        out.push(StreamEvent::error(err));
    }

    fn event(&mut self, data: &str, out: &mut Vec<StreamEvent>) {
        let resp: StreamResponse = match serde_json::from_str(data) {
            Ok(r) => r,
            Err(e) => return self.unreadable(data, e, out),
        };
        if let Some(e) = &resp.error {
            return self.fail(from_error_object(0, e), out);
        }
        if let Some(Str(id)) = resp.response_id {
            // The same id on every event: compared borrowed, copied once.
            if id != self.src.id() {
                self.src.set_id(id.into_owned());
            }
        }
        if let Some(u) = &resp.usage_metadata {
            let mut usage = UsageMetadata::to_openai(u);
            count_searches(&mut usage, self.searches());
            self.usage = Some(usage);
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
        let mut metadata = Metadata::default();
        let mut candidates = resp.candidates;
        let mut finishing = false;
        for (i, c) in candidates.iter_mut().enumerate() {
            let slot = c.index.unwrap_or(i as u32) as usize;
            if c.grounding_metadata.as_ref().is_some_and(grounded) && slot < MAX_CANDIDATES {
                if self.grounded.len() <= slot {
                    self.grounded.resize(slot + 1, false);
                }
                self.grounded[slot] = true;
            }
            finishing |= c.finish_reason.is_some();
            metadata.add(
                c.grounding_metadata.take(),
                c.url_context_metadata.take(),
                c.safety_ratings.take(),
                c.citation_metadata.take(),
            );
        }
        let safety = metadata.take_safety();
        if !safety.is_empty() {
            self.safety = safety;
        }
        if metadata.has_sources() || (finishing && !self.safety.is_empty()) {
            // Grounding comes with the last pieces of the answer: a chunk
            // of its own, before them, as LiteLLM's chunks carry it.
            // Safety ratings, which may come with every event, come once,
            // the latest, with the finish.
            let searches = self.searches();
            if let Some(u) = &mut self.usage {
                count_searches(u, searches);
            }
            if finishing {
                metadata.set_safety(std::mem::take(&mut self.safety));
            }
            let index = candidates.first().and_then(|c| c.index).unwrap_or(0);
            let mut fields = serde_json::Map::new();
            metadata.into_fields(&mut fields);
            out.push(
                self.src
                    .chunk_with_fields(index, Delta::default(), None, &fields),
            );
        }
        for (i, c) in candidates.into_iter().enumerate() {
            let index = c.index.unwrap_or(i as u32);
            let slot = index as usize;
            if self.tools.len() <= slot {
                self.tools.resize(slot + 1, 0);
            }
            for p in c.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(fc) = &p.function_call {
                    let call = function_call(fc, p.thought_signature.as_deref());
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
                } else if let Some(inline) = p.inline_data {
                    let n = self.images;
                    let Some(image) = image(&inline, n) else {
                        continue;
                    };
                    self.images += 1;
                    self.answered = true;
                    let delta = Delta {
                        images: Some(vec![image]),
                        ..Default::default()
                    };
                    self.emit(out, index, delta, None);
                } else if let Some(text) = p.text.and_then(JsonStr::read) {
                    // A text that is not a string is no text.
                    if text.is_empty() {
                        continue;
                    }
                    if p.thought == Some(true) {
                        let delta = Delta {
                            reasoning_content: Some(text.into_string()),
                            ..Default::default()
                        };
                        self.emit(out, index, delta, None);
                        continue;
                    }
                    // Most events: a piece of the answer, whose JSON string
                    // goes into the chunk as it came when it can.
                    out.push(self.src.text_piece(index, text));
                    self.answered = true;
                }
            }
            if !self.answered && self.tools[slot] == 0 {
                let reason = c.finish_reason.as_ref().map(|Str(r)| &**r);
                let message = c.finish_message.as_ref().map(|Str(m)| &**m);
                if let Some(err) = failed_answer(reason, message) {
                    return self.fail(err, out);
                }
            }
            if let Some(f) = finish_reason(
                c.finish_reason.as_ref().map(|Str(r)| &**r),
                self.tools[slot] > 0,
            ) {
                self.finished = true;
                self.emit(out, index, Delta::default(), Some(f));
            }
        }
    }

    /// An event that is not a `GenerateContentResponse`: Gemini's error
    /// object in an odd shape, or a broken event.
    fn unreadable(&mut self, data: &str, e: serde_json::Error, out: &mut Vec<StreamEvent>) {
        let err = match serde_json::from_str::<Value>(data) {
            Ok(v) => match v.get("error") {
                Some(error) => from_error_object(0, error),
                None => ApiError::bad_gateway(format!("Unreadable Gemini stream event: {e}")),
            },
            Err(e) => {
                ApiError::bad_gateway(format!("The upstream sent a malformed stream event: {e}"))
                    .retryable(true)
            }
        };
        self.fail(err, out);
    }
}

/// One event of the stream: a `GenerateContentResponse`, or an error. Read
/// straight into these types, its strings borrowed from the event: a
/// `serde_json::Value` first cost ten times as much.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamResponse<'a> {
    #[serde(default, borrow)]
    candidates: Vec<StreamCandidate<'a>>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    prompt_feedback: Option<Value>,
    #[serde(default, borrow)]
    response_id: Option<Str<'a>>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamCandidate<'a> {
    #[serde(default, borrow)]
    content: Option<StreamContent<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Str<'a>>,
    #[serde(default, borrow)]
    finish_message: Option<Str<'a>>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    grounding_metadata: Option<Value>,
    #[serde(default)]
    url_context_metadata: Option<Value>,
    #[serde(default)]
    safety_ratings: Option<Value>,
    #[serde(default)]
    citation_metadata: Option<Value>,
}

#[derive(Deserialize)]
struct StreamContent<'a> {
    #[serde(default, borrow)]
    parts: Vec<StreamPart<'a>>,
}

/// A part: text (or thought text), or a whole function call; other kinds
/// of part carry nothing a chat chunk has room for.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamPart<'a> {
    /// The text as the JSON it came as, to be copied or decoded.
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    function_call: Option<Value>,
    #[serde(default)]
    thought_signature: Option<String>,
    /// Media the model made: an image, whole in one part.
    #[serde(default)]
    inline_data: Option<Value>,
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
