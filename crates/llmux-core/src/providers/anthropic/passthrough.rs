//! `/v1/messages` in front of Claude: events relayed as they arrive, only
//! the usage read on the way (from `message_start` and `message_delta`).

use crate::providers::sse::SseParser;
use crate::providers::{StreamEvent, StreamTranslator};
use crate::types::anthropic::{AnthropicUsage, StreamEvent as AnEvent};
use crate::types::{ApiError, Usage};
use bytes::{BufMut, BytesMut};

#[derive(Default)]
pub struct MessagesPassthrough {
    sse: SseParser,
    usage: AnthropicUsage,
    openai_usage: Option<Usage>,
    ended: bool,
}

impl MessagesPassthrough {
    pub fn new() -> Self {
        MessagesPassthrough::default()
    }

    fn read_usage(&mut self, data: &str) {
        match serde_json::from_str::<AnEvent>(data) {
            Ok(AnEvent::MessageStart { message }) => self.usage = message.usage,
            Ok(AnEvent::MessageDelta { usage: Some(u), .. }) => self.usage.update(u),
            _ => return,
        }
        self.openai_usage = Some(self.usage.to_openai());
    }
}

impl StreamTranslator for MessagesPassthrough {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        self.sse.push(bytes);
        let mut buf = BytesMut::new();
        while let Some(ev) = self.sse.next_event() {
            let name = ev.event().unwrap_or("");
            let data = ev.data();
            if matches!(name, "message_start" | "message_delta") {
                self.read_usage(&data);
            }
            if !name.is_empty() {
                buf.put_slice(b"event: ");
                buf.put_slice(name.as_bytes());
                buf.put_slice(b"\n");
            }
            if ev.has_data {
                for line in data.split('\n') {
                    buf.put_slice(b"data: ");
                    buf.put_slice(line.as_bytes());
                    buf.put_slice(b"\n");
                }
            }
            buf.put_slice(b"\n");
            if matches!(name, "message_stop" | "error") {
                self.ended = true;
                break;
            }
        }
        if !buf.is_empty() {
            out.push(StreamEvent::Raw(buf.freeze()));
        }
        if self.ended {
            out.push(StreamEvent::Done);
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.ended {
            self.ended = true;
            out.push(StreamEvent::error(
                ApiError::bad_gateway("The upstream stream ended before `message_stop`.")
                    .retryable(true),
            ));
        }
    }

    fn usage(&self) -> Option<&Usage> {
        self.openai_usage.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_events_and_reads_usage() {
        let input = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\",\"content\":[],\"usage\":{\"input_tokens\":7,\"output_tokens\":1,\"cache_read_input_tokens\":3}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":5}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let mut t = MessagesPassthrough::new();
        let mut out = vec![];
        for b in input.as_bytes().chunks(5) {
            t.push(b, &mut out);
        }
        let relayed: Vec<u8> = out
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Raw(b) => Some(b.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(String::from_utf8(relayed).unwrap(), input);
        assert_eq!(out.last(), Some(&StreamEvent::Done));
        let u = t.usage().unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens()),
            (10, 5, 3)
        );
    }
}
