//! Server-sent events, split as they arrive: bytes in, complete events out.
//! Partial lines stay buffered until the rest comes.

use bytes::{Buf, BytesMut};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// Whether the event carried any `data:` line at all.
    pub has_data: bool,
    /// Comment lines (`: keep-alive`) seen in the event, for relaying.
    pub comment: Option<String>,
}

#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
    current: SseEvent,
    has_any: bool,
}

impl SseParser {
    pub fn new() -> Self {
        SseParser::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, if the buffer holds one.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        while let Some(pos) = memchr::memchr(b'\n', &self.buf) {
            let mut line = &self.buf[..pos];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line.is_empty() {
                self.buf.advance(pos + 1);
                if self.has_any {
                    self.has_any = false;
                    return Some(std::mem::take(&mut self.current));
                }
                continue;
            }
            take_line(&mut self.current, line);
            self.has_any = true;
            self.buf.advance(pos + 1);
        }
        None
    }

    /// At the end of the body: an event not closed by a blank line.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.buf.is_empty() {
            let rest = self.buf.split();
            let mut line: &[u8] = &rest;
            while let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if !line.is_empty() {
                take_line(&mut self.current, line);
                self.has_any = true;
            }
        }
        if self.has_any {
            self.has_any = false;
            return Some(std::mem::take(&mut self.current));
        }
        None
    }

    /// Bytes held back waiting for the end of a line.
    pub fn buffered(&self) -> usize {
        self.buf.remaining()
    }
}

/// One non-empty line into the event being built.
fn take_line(current: &mut SseEvent, line: &[u8]) {
    // Valid UTF-8 (every provider sends it) is borrowed as it is.
    let line = match std::str::from_utf8(line) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(line),
    };
    if let Some(comment) = line.strip_prefix(':') {
        let c = current.comment.get_or_insert_with(String::new);
        if !c.is_empty() {
            c.push('\n');
        }
        c.push_str(comment.trim_start());
        return;
    }
    let (field, value) = match line.find(':') {
        Some(i) => {
            let v = &line[i + 1..];
            (&line[..i], v.strip_prefix(' ').unwrap_or(v))
        }
        None => (line.as_ref(), ""),
    };
    match field {
        "data" => {
            if current.has_data {
                current.data.push('\n');
            }
            current.data.push_str(value);
            current.has_data = true;
        }
        "event" => current.event = Some(value.to_owned()),
        // `id` and `retry` mean nothing between a provider and llmux.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut SseParser) -> Vec<SseEvent> {
        std::iter::from_fn(|| p.next_event()).collect()
    }

    #[test]
    fn splits_events_across_reads() {
        let mut p = SseParser::new();
        p.push(b"data: {\"a\":");
        assert!(all(&mut p).is_empty());
        p.push(b"1}\n\ndata: [DONE]\n");
        let ev = all(&mut p);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data, "{\"a\":1}");
        p.push(b"\n");
        assert_eq!(all(&mut p)[0].data, "[DONE]");
    }

    #[test]
    fn handles_crlf_event_names_comments_and_multiline_data() {
        let mut p = SseParser::new();
        p.push(
            b": OPENROUTER PROCESSING\r\n\r\nevent: message_start\r\ndata: a\r\ndata: b\r\n\r\n",
        );
        let ev = all(&mut p);
        assert_eq!(ev[0].comment.as_deref(), Some("OPENROUTER PROCESSING"));
        assert!(!ev[0].has_data);
        assert_eq!(ev[1].event.as_deref(), Some("message_start"));
        assert_eq!(ev[1].data, "a\nb");
    }

    #[test]
    fn an_unterminated_last_event_is_not_lost() {
        let mut p = SseParser::new();
        p.push(b"data: [DONE]");
        assert!(p.next_event().is_none());
        assert_eq!(p.finish().unwrap().data, "[DONE]");
    }
}
