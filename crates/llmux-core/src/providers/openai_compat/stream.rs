//! The pass-through stream: upstream SSE events go to the client as they are,
//! byte for byte. Each is checked to be framed as a JSON object (`{…}`), which
//! catches a cut event or an error page; it is not parsed, as the client
//! parses it anyway. The usage chunk is parsed and read (and given the
//! `"choices": []` clients index into, if a server left it out), and hidden
//! from clients that did not ask for it.

use crate::providers::sse::{SseEvent, SseParser};
use crate::providers::{StreamEvent, StreamTranslator};
use crate::types::{ApiError, Usage};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

pub struct PassthroughStream {
    sse: SseParser,
    client_wants_usage: bool,
    usage: Option<Usage>,
    ended: bool,
    /// The upstream names reasoning `reasoning` (OpenRouter, Groq):
    /// clients of a LiteLLM gateway read `reasoning_content`.
    rename_reasoning: bool,
}

impl PassthroughStream {
    pub fn new(client_wants_usage: bool) -> Self {
        PassthroughStream {
            sse: SseParser::new(),
            client_wants_usage,
            usage: None,
            ended: false,
            rename_reasoning: false,
        }
    }

    /// For an upstream that names reasoning `reasoning`.
    pub fn renaming_reasoning(mut self) -> Self {
        self.rename_reasoning = true;
        self
    }

    fn event(&mut self, mut ev: SseEvent, out: &mut Vec<StreamEvent>) {
        if let Some(comment) = ev.comment.take() {
            out.push(StreamEvent::Comment(Bytes::from(comment)));
        }
        if !ev.has_data {
            return;
        }
        // The event's own bytes, relayed without a copy.
        let data = ev.into_data();
        let text = data.trim_ascii();
        if text == b"[DONE]" {
            self.ended = true;
            out.push(StreamEvent::Done);
            return;
        }
        if text.is_empty() {
            return;
        }
        if has_usage_object(text) {
            self.usage_event(data, out);
            return;
        }
        if text.starts_with(b"{") && text.ends_with(b"}") {
            match self
                .rename_reasoning
                .then(|| reasoning_as_reasoning_content(&data))
                .flatten()
            {
                Some(renamed) => out.push(StreamEvent::Data(Bytes::from(renamed))),
                None => out.push(StreamEvent::Data(data)),
            }
        } else {
            self.malformed("not a JSON object", out);
        }
    }

    /// A chunk with usage. Read, and relayed as it came when it needs no
    /// change (the common case); rewritten only to add a missing `choices`
    /// or to hide the usage from a client that did not ask for it.
    fn usage_event(&mut self, data: Bytes, out: &mut Vec<StreamEvent>) {
        #[derive(Deserialize)]
        struct Chunk {
            #[serde(default)]
            usage: Option<Usage>,
            #[serde(default)]
            choices: Option<Vec<IgnoredAny>>,
        }
        // `data` is UTF-8 (`SseEvent::into_data`); parsing it as text spares
        // serde_json checking every string in it again.
        let text = crate::json::utf8(&data).unwrap_or_default();
        let chunk = match serde_json::from_str::<Chunk>(text) {
            Ok(c) => c,
            Err(e) => return self.malformed(&e.to_string(), out),
        };
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        match (chunk.choices.map(|c| c.is_empty()), self.client_wants_usage) {
            // A client that asked for usage gets the chunk as it came.
            (Some(_), true) => out.push(StreamEvent::Data(data)),
            // A usage-only chunk is hidden from a client that did not ask.
            (Some(true) | None, false) => {}
            // A content chunk that also carries usage: the content stays.
            (Some(false), false) => self.rewrite(
                &data,
                |obj| {
                    obj.insert("usage".into(), Value::Null);
                },
                out,
            ),
            // No `choices`: clients index into it, so it is added.
            (None, true) => self.rewrite(
                &data,
                |obj| {
                    obj.insert("choices".into(), Value::Array(vec![]));
                },
                out,
            ),
        }
    }

    fn rewrite(
        &mut self,
        data: &[u8],
        change: impl FnOnce(&mut Map<String, Value>),
        out: &mut Vec<StreamEvent>,
    ) {
        match serde_json::from_slice::<Value>(data) {
            Ok(Value::Object(mut obj)) => {
                change(&mut obj);
                out.push(StreamEvent::Data(Bytes::from(
                    Value::Object(obj).to_string(),
                )));
            }
            Ok(_) => self.malformed("not a JSON object", out),
            Err(e) => self.malformed(&e.to_string(), out),
        }
    }

    fn malformed(&mut self, e: &str, out: &mut Vec<StreamEvent>) {
        self.ended = true;
        out.push(StreamEvent::error(
            ApiError::bad_gateway(format!("The upstream sent a malformed stream event: {e}"))
                .retryable(true),
        ));
    }
}

/// A chunk or answer whose reasoning is named `reasoning` (OpenRouter,
/// Groq) with the name LiteLLM gives it, `reasoning_content`, as LiteLLM
/// renames it; `None` when there is nothing to rename. The key is found as
/// bytes: `"reasoning":` cannot occur inside a JSON string, whose quotes
/// are escaped, so each match is a member's name. A body that already has
/// `reasoning_content` is left as it is.
pub fn reasoning_as_reasoning_content(data: &[u8]) -> Option<Vec<u8>> {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"reasoning\":"));
    let first = FINDER.find(data)?;
    if memchr::memmem::find(data, b"\"reasoning_content\"").is_some() {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut rest = data;
    let mut at = Some(first);
    while let Some(i) = at {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(b"\"reasoning_content\":");
        rest = &rest[i + b"\"reasoning\":".len()..];
        at = FINDER.find(rest);
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// Whether an event has `"usage": {…}` (not `null`), found without parsing.
fn has_usage_object(data: &[u8]) -> bool {
    // OpenAI ends every chunk but the usage chunk with `,"usage":null}`.
    // Those bytes at the very end are a member of the outermost object (a
    // quote after `,` or `{` opens a string, and the last `}` closes the
    // outermost object), and an object names a member once, so the chunk
    // has no usage: the search through the whole chunk is skipped.
    if let Some(head) = data.strip_suffix(b"\"usage\":null}") {
        if matches!(head.last(), Some(b',' | b'{')) {
            return false;
        }
    }
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));
    let mut rest = data;
    while let Some(i) = FINDER.find(rest) {
        rest = &rest[i + 7..];
        let after = rest.trim_ascii_start();
        if let Some(after) = after.strip_prefix(b":") {
            if after.trim_ascii_start().starts_with(b"{") {
                return true;
            }
        }
    }
    false
}

impl StreamTranslator for PassthroughStream {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        self.sse.push(bytes);
        while let Some(ev) = self.sse.next_event() {
            self.event(ev, out);
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
            self.event(ev, out);
        }
        if !self.ended {
            // Some servers close without `[DONE]`; the client still needs it.
            self.ended = true;
            out.push(StreamEvent::Done);
        }
    }

    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data of `STREAM`'s line `n`, as the bytes a client should get.
    fn data_line(n: usize) -> Bytes {
        let line = STREAM.lines().nth(n).unwrap();
        Bytes::copy_from_slice(line.strip_prefix("data: ").unwrap().as_bytes())
    }

    const STREAM: &str = concat!(
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
        "data: [DONE]\n\n",
    );

    fn run(t: &mut PassthroughStream, input: &[&[u8]]) -> Vec<StreamEvent> {
        let mut out = vec![];
        for part in input {
            t.push(part, &mut out);
        }
        t.finish(&mut out);
        out
    }

    #[test]
    fn passes_events_through_and_reads_usage_byte_by_byte() {
        let mut t = PassthroughStream::new(true);
        let bytes: Vec<&[u8]> = STREAM.as_bytes().chunks(1).collect();
        let out = run(&mut t, &bytes);
        assert_eq!(out.len(), 5);
        let StreamEvent::Data(second) = &out[1] else {
            panic!("{out:?}")
        };
        let v: Value = serde_json::from_slice(second).unwrap();
        assert_eq!(v["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(out[4], StreamEvent::Done);
        let u = t.usage().unwrap();
        assert_eq!((u.prompt_tokens, u.cached_tokens()), (9, 4));
        let StreamEvent::Data(last) = &out[3] else {
            panic!()
        };
        let v: Value = serde_json::from_slice(last).unwrap();
        assert_eq!(v["choices"], serde_json::json!([]));
    }

    #[test]
    fn content_events_are_relayed_verbatim() {
        let mut t = PassthroughStream::new(true);
        let out = run(&mut t, &[STREAM.as_bytes()]);
        assert_eq!(out[0], StreamEvent::Data(data_line(0)));
    }

    #[test]
    fn hides_the_usage_chunk_from_clients_that_did_not_ask_but_still_counts_it() {
        let mut t = PassthroughStream::new(false);
        let out = run(&mut t, &[STREAM.as_bytes()]);
        assert_eq!(out.len(), 4);
        assert_eq!(out[3], StreamEvent::Done);
        assert_eq!(t.usage().unwrap().total_tokens, 10);
    }

    #[test]
    fn a_usage_chunk_a_client_asked_for_is_relayed_byte_for_byte() {
        let mut t = PassthroughStream::new(true);
        let out = run(&mut t, &[STREAM.as_bytes()]);
        let usage_line = data_line(6);
        let text = std::str::from_utf8(&usage_line).unwrap();
        assert!(text.contains("\"usage\":{"), "{text}");
        assert_eq!(out[3], StreamEvent::Data(usage_line));
    }

    #[test]
    fn usage_on_a_content_chunk_is_read_and_hidden_from_clients_that_did_not_ask() {
        let chunk = b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n";
        let mut t = PassthroughStream::new(false);
        let out = run(&mut t, &[chunk]);
        let StreamEvent::Data(d) = &out[0] else {
            panic!("{out:?}")
        };
        let v: Value = serde_json::from_slice(d).unwrap();
        assert_eq!(v["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(v["usage"], Value::Null);
        assert_eq!(t.usage().unwrap().total_tokens, 3);
        // A client that asked gets it untouched.
        let mut t = PassthroughStream::new(true);
        let out = run(&mut t, &[chunk]);
        let text = std::str::from_utf8(chunk).unwrap();
        let line = text.trim_end().strip_prefix("data: ").unwrap();
        assert_eq!(out[0], StreamEvent::Data(Bytes::from(line.to_owned())));
    }

    #[test]
    fn adds_missing_choices_to_a_usage_chunk() {
        let mut t = PassthroughStream::new(true);
        let out = run(
            &mut t,
            &[b"data: {\"id\":\"c\",\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\ndata: [DONE]\n\n"],
        );
        let StreamEvent::Data(d) = &out[0] else {
            panic!()
        };
        let v: Value = serde_json::from_slice(d).unwrap();
        assert_eq!(v["choices"], serde_json::json!([]));
        assert_eq!(v["usage"]["total_tokens"], 3);
    }

    #[test]
    fn a_malformed_event_ends_the_stream_with_an_error() {
        let mut t = PassthroughStream::new(true);
        let out = run(&mut t, &[b"data: {\"id\":\"c\",\"choices\":[]}\n\ndata: {not json\n\ndata: {\"id\":\"late\"}\n\n"]);
        assert_eq!(out.len(), 2);
        let StreamEvent::Error(e) = &out[1] else {
            panic!("{out:?}")
        };
        assert_eq!(e.status, 502);
    }

    #[test]
    fn a_stream_closed_without_done_still_ends_with_done() {
        let mut t = PassthroughStream::new(true);
        let out = run(&mut t, &[b"data: {\"id\":\"c\",\"choices\":[]}"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], StreamEvent::Done);
    }

    #[test]
    fn keep_alive_comments_are_relayed() {
        let mut t = PassthroughStream::new(true);
        let out = run(&mut t, &[b": OPENROUTER PROCESSING\n\ndata: [DONE]\n\n"]);
        assert_eq!(
            out[0],
            StreamEvent::Comment(Bytes::from_static(b"OPENROUTER PROCESSING"))
        );
    }

    #[test]
    fn finds_usage_objects_without_parsing() {
        assert!(has_usage_object(br#"{"usage": {"a":1}}"#));
        assert!(!has_usage_object(br#"{"usage":null}"#));
        assert!(!has_usage_object(br#"{"content":"the \"usage\" word"}"#));
        // The chunk's own `"usage":null`, last, settles it.
        assert!(!has_usage_object(
            br#"{"choices":[{"delta":{},"usage":{"a":1}}],"usage":null}"#
        ));
        // Bytes that only look like it: a nested member, and the key
        // `x"usage`; the search through the chunk still runs.
        assert!(has_usage_object(br#"{"usage":{"a":1},"b":{"usage":null}}"#));
        assert!(has_usage_object(br#"{"usage":{"a":1},"x\"usage":null}"#));
    }

    #[test]
    fn reasoning_named_reasoning_reaches_the_client_as_reasoning_content() {
        let chunk = br#"{"id":"gen-1","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"The \"reasoning\": part","reasoning_details":[{"type":"reasoning.text","text":"x"}]},"finish_reason":null}]}"#;
        let renamed = reasoning_as_reasoning_content(chunk).unwrap();
        let v: Value = serde_json::from_slice(&renamed).unwrap();
        let delta = &v["choices"][0]["delta"];
        assert_eq!(delta["reasoning_content"], "The \"reasoning\": part");
        assert!(delta.get("reasoning").is_none());
        assert!(delta["reasoning_details"].is_array(), "other members stay");
        // Nothing to rename, or already named: left alone.
        assert!(
            reasoning_as_reasoning_content(br#"{"choices":[{"delta":{"content":"hi"}}]}"#)
                .is_none()
        );
        assert!(
            reasoning_as_reasoning_content(br#"{"reasoning_content":"a","reasoning":"a"}"#)
                .is_none()
        );
        // Through a stream, for a provider that names it so.
        let mut t = PassthroughStream::new(false).renaming_reasoning();
        let mut out = Vec::new();
        t.push(b"data: ", &mut out);
        t.push(chunk, &mut out);
        t.push(b"\n\ndata: [DONE]\n\n", &mut out);
        let StreamEvent::Data(d) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(d.as_ref(), &renamed[..]);
        // Others pass it as it came.
        let mut t = PassthroughStream::new(false);
        let mut out = Vec::new();
        t.push(b"data: ", &mut out);
        t.push(chunk, &mut out);
        t.push(b"\n\n", &mut out);
        let StreamEvent::Data(d) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(d.as_ref(), &chunk[..]);
    }
}
