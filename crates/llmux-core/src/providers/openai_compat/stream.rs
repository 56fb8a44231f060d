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
use serde_json::Value;

pub struct PassthroughStream {
    sse: SseParser,
    client_wants_usage: bool,
    usage: Option<Usage>,
    ended: bool,
}

impl PassthroughStream {
    pub fn new(client_wants_usage: bool) -> Self {
        PassthroughStream {
            sse: SseParser::new(),
            client_wants_usage,
            usage: None,
            ended: false,
        }
    }

    fn event(&mut self, ev: SseEvent, out: &mut Vec<StreamEvent>) {
        if let Some(comment) = ev.comment {
            out.push(StreamEvent::Comment(Bytes::from(comment)));
        }
        if !ev.has_data {
            return;
        }
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.ended = true;
            out.push(StreamEvent::Done);
            return;
        }
        if data.is_empty() {
            return;
        }
        if has_usage_object(data) {
            match serde_json::from_str::<Value>(data) {
                Ok(v) => self.usage_event(v, out),
                Err(e) => self.malformed(&e.to_string(), out),
            }
            return;
        }
        if data.starts_with('{') && data.ends_with('}') {
            out.push(StreamEvent::Data(Bytes::from(ev.data)));
        } else {
            self.malformed("not a JSON object", out);
        }
    }

    fn usage_event(&mut self, mut v: Value, out: &mut Vec<StreamEvent>) {
        if let Some(u) = v.get("usage").and_then(|u| Usage::deserialize(u).ok()) {
            self.usage = Some(u);
        }
        let Some(obj) = v.as_object_mut() else {
            return;
        };
        let choices_empty = match obj.get("choices") {
            None | Some(Value::Null) => {
                obj.insert("choices".into(), Value::Array(vec![]));
                true
            }
            Some(Value::Array(a)) => a.is_empty(),
            Some(_) => false,
        };
        if choices_empty && !self.client_wants_usage {
            return;
        }
        if !self.client_wants_usage {
            // A content chunk that also carries usage: keep the content.
            obj.insert("usage".into(), Value::Null);
        }
        out.push(StreamEvent::Data(Bytes::from(v.to_string())));
    }

    fn malformed(&mut self, e: &str, out: &mut Vec<StreamEvent>) {
        self.ended = true;
        out.push(StreamEvent::Error(
            ApiError::bad_gateway(format!("The upstream sent a malformed stream event: {e}"))
                .retryable(true),
        ));
    }
}

/// Whether an event has `"usage": {…}` (not `null`), found without parsing.
fn has_usage_object(data: &str) -> bool {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));
    let mut rest = data.as_bytes();
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
        let first_line = STREAM
            .lines()
            .next()
            .unwrap()
            .strip_prefix("data: ")
            .unwrap();
        assert_eq!(
            out[0],
            StreamEvent::Data(Bytes::from(first_line.to_owned()))
        );
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
        assert!(has_usage_object(r#"{"usage": {"a":1}}"#));
        assert!(!has_usage_object(r#"{"usage":null}"#));
        assert!(!has_usage_object(r#"{"content":"the \"usage\" word"}"#));
    }
}
