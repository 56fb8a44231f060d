//! Server-sent events, split as they arrive: bytes in, complete events out.
//! Partial lines stay buffered until the rest comes.

use bytes::{Bytes, BytesMut};
use std::borrow::Cow;

/// One event. Its fields are slices of the bytes read, not copies: an
/// event with one `data:` line (nearly all of them) costs no allocation.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    event: Option<Bytes>,
    /// The `data:` lines joined with `\n`.
    data: Bytes,
    /// Whether the event carried any `data:` line at all.
    pub has_data: bool,
    /// Comment lines (`: keep-alive`) seen in the event, for relaying.
    pub comment: Option<String>,
}

impl SseEvent {
    /// The `event:` field; `None` if absent or not UTF-8 (no known name).
    pub fn event(&self) -> Option<&str> {
        crate::json::utf8(self.event.as_deref()?)
    }

    /// The `event:` field as it came, for comparing with known names: no
    /// UTF-8 check, which costs more than the comparison on a short name.
    pub fn event_bytes(&self) -> Option<&[u8]> {
        self.event.as_deref()
    }

    /// The data as text: invalid UTF-8 is replaced, as a browser's
    /// `EventSource` does.
    pub fn data(&self) -> Cow<'_, str> {
        text(&self.data)
    }

    /// The data as bytes, shared with the buffer it was read into; valid
    /// UTF-8 (invalid sequences replaced).
    pub fn into_data(self) -> Bytes {
        match text(&self.data) {
            Cow::Borrowed(_) => self.data,
            Cow::Owned(fixed) => Bytes::from(fixed),
        }
    }
}

/// `bytes` as text. A whole-slice check first: `from_utf8_lossy` checks
/// byte by byte, several times slower on the valid text nearly every event
/// is.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match crate::json::utf8(bytes) {
        Some(s) => Cow::Borrowed(s),
        None => String::from_utf8_lossy(bytes),
    }
}

#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes read and not yet split into lines: at most a partial line
    /// once `next_event` has run.
    buf: BytesMut,
    /// Complete lines taken from `buf` in one piece, read from `at` on.
    /// One split and freeze per read rather than per line: events are
    /// slices of it.
    lines: Bytes,
    at: usize,
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
        loop {
            if self.at == self.lines.len() {
                // Every complete line read so far, in one piece.
                let last = memchr::memrchr(b'\n', &self.buf)?;
                self.lines = self.buf.split_to(last + 1).freeze();
                self.at = 0;
            }
            let start = self.at;
            // `lines` ends with a line feed, so there is one from `start` on.
            let pos = start + memchr::memchr(b'\n', &self.lines[start..])?;
            self.at = pos + 1;
            let end = if pos > start && self.lines[pos - 1] == b'\r' {
                pos - 1
            } else {
                pos
            };
            if end > start {
                take_line(&mut self.current, &self.lines, start, end);
                self.has_any = true;
            }
            if self.at == self.lines.len() {
                // The piece is read: from now on it is held only by the
                // events that are slices of it.
                self.lines = Bytes::new();
                self.at = 0;
            }
            // A blank line ends the event.
            if end == start && self.has_any {
                self.has_any = false;
                return Some(std::mem::take(&mut self.current));
            }
        }
    }

    /// At the end of the body: an event not closed by a blank line.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.buf.is_empty() {
            let mut line = self.buf.split().freeze();
            while line.last() == Some(&b'\r') {
                line.truncate(line.len() - 1);
            }
            if !line.is_empty() {
                take_line(&mut self.current, &line, 0, line.len());
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
        self.buf.len()
    }
}

/// One non-empty line, `lines[start..end]` (its line end cut off), into the
/// event being built.
fn take_line(current: &mut SseEvent, lines: &Bytes, start: usize, end: usize) {
    let line = &lines[start..end];
    if line[0] == b':' {
        let text = String::from_utf8_lossy(&line[1..]);
        let c = current.comment.get_or_insert_with(String::new);
        if !c.is_empty() {
            c.push('\n');
        }
        c.push_str(text.trim_start());
        return;
    }
    // `data:` and `event:`, nearly every line, are known without a search.
    let colon = if line.starts_with(b"data:") {
        Some(4)
    } else if line.starts_with(b"event:") {
        Some(5)
    } else {
        memchr::memchr(b':', line)
    };
    let (field, value) = match colon {
        Some(i) => {
            let v = if line.get(i + 1) == Some(&b' ') {
                i + 2
            } else {
                i + 1
            };
            (&line[..i], lines.slice(start + v..end))
        }
        None => (line, Bytes::new()),
    };
    match field {
        b"data" => {
            if current.has_data {
                let mut joined = Vec::with_capacity(current.data.len() + 1 + value.len());
                joined.extend_from_slice(&current.data);
                joined.push(b'\n');
                joined.extend_from_slice(&value);
                current.data = Bytes::from(joined);
            } else {
                current.data = value;
            }
            current.has_data = true;
        }
        b"event" => current.event = Some(value),
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
        assert_eq!(ev[0].data(), "{\"a\":1}");
        p.push(b"\n");
        assert_eq!(all(&mut p)[0].data(), "[DONE]");
    }

    /// Whatever sizes the reads come in, the events are the same.
    #[test]
    fn events_do_not_depend_on_how_the_bytes_were_split() {
        let stream: &[u8] = b": hi\r\n\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\n\
            data: x\ndata:y\n\nevent:ping\ndata\n\ndata: [DONE]\n\n";
        let mut whole = SseParser::new();
        whole.push(stream);
        let want = all(&mut whole);
        assert_eq!(want.len(), 5);
        for size in 1..stream.len() {
            let mut p = SseParser::new();
            let mut got = Vec::new();
            for chunk in stream.chunks(size) {
                p.push(chunk);
                got.extend(all(&mut p));
            }
            assert!(p.finish().is_none(), "read {size} bytes at a time");
            assert_eq!(got, want, "read {size} bytes at a time");
        }
        assert_eq!(want[1].event(), Some("message_start"));
        assert_eq!(want[1].data(), "{\"a\":1}");
        assert_eq!(want[2].data(), "x\ny");
        assert_eq!(want[4].data(), "[DONE]");
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
        assert_eq!(ev[1].event(), Some("message_start"));
        assert_eq!(ev[1].data(), "a\nb");
    }

    #[test]
    fn an_unterminated_last_event_is_not_lost() {
        let mut p = SseParser::new();
        p.push(b"data: [DONE]");
        assert!(p.next_event().is_none());
        assert_eq!(p.finish().unwrap().data(), "[DONE]");
    }

    #[test]
    fn events_keep_their_bytes_while_the_parser_reads_on() {
        let mut p = SseParser::new();
        p.push(b"data: {\"n\":1}\n\ndata: {\"n\"");
        let first = p.next_event().unwrap();
        // The rest of the second event arrives, and the buffer is reused.
        p.push(b":2}\n\n");
        let second = p.next_event().unwrap();
        p.push(&[b'x'; 10_000]);
        assert_eq!(first.into_data(), "{\"n\":1}");
        assert_eq!(second.into_data(), "{\"n\":2}");
        assert_eq!(p.buffered(), 10_000);
    }

    #[test]
    fn reads_fields_as_the_spec_does() {
        let mut p = SseParser::new();
        // No space after the colon; a bare `data` line is an empty data line;
        // unknown fields are ignored; only one leading space is dropped.
        // Fields that only start like `data` or `event` are other fields.
        p.push(b"event:ping\ndata\nid: 7\ndatabase: x\nevents: y\ndata:  two\n\n");
        let ev = all(&mut p);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event(), Some("ping"));
        assert!(ev[0].has_data);
        assert_eq!(ev[0].data(), "\n two");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_relayed() {
        let mut p = SseParser::new();
        p.push(b"data: {\"a\":\"\xff\"}\n\n");
        let ev = p.next_event().unwrap();
        assert_eq!(ev.data(), "{\"a\":\"\u{fffd}\"}");
        assert_eq!(ev.into_data(), "{\"a\":\"\u{fffd}\"}".as_bytes());
        // Long enough for the vector check, with the bad byte at the end
        // and valid multi-byte text before it.
        let good = "\u{e9}t\u{e9} \u{1f980} ".repeat(20);
        let mut line = format!("data: {good}").into_bytes();
        line.extend_from_slice(b"\xc3\n\n");
        p.push(&line);
        assert_eq!(p.next_event().unwrap().data(), format!("{good}\u{fffd}"));
        p.push(format!("event: n\u{e9}\ndata: {good}\n\n").as_bytes());
        let ev = p.next_event().unwrap();
        assert_eq!(ev.event(), Some("n\u{e9}"));
        assert_eq!(ev.data(), good);
    }
}
