//! JSON from bytes, read the cheaper way.

use crate::types::ApiError;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// `serde_json::from_slice`, but checking the bytes are UTF-8 in one pass
/// first and then reading them as text: `from_slice` checks each string on
/// its own as it goes, which costs a request's bodies about twice as much.
/// Bytes that are not UTF-8 get `from_slice`'s own error, position and all.
pub fn from_bytes<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match utf8(bytes) {
        Some(text) => serde_json::from_str(text),
        None => serde_json::from_slice(bytes),
    }
}

/// `bytes` as text if they are UTF-8. simdutf8 checks 32 bytes a step where
/// the CPU has AVX2 (chosen at run time), against the 8 of
/// `std::str::from_utf8`'s ASCII loop: every body and stream event read
/// is checked, so this is on the hot path of every request.
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(bytes).ok()
}

/// `text` as a JSON string, quotes included, at the end of `out`: the
/// bytes serde_json writes for it (`\"`, `\\`, `\b \t \n \f \r`, the
/// other control characters as `\u00xx`, everything else as it is; tested
/// below). serde_json looks up every byte in a table and writes each run
/// between two escapes on its own; this looks at 8 bytes a step and copies
/// each run whole. (json-escape-simd looks at 32, but first reserves six
/// bytes of room for every byte of the string, which a body or chunk
/// would then hold until it is sent.)
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run = 0;
    while let Some(at) = next_escape(bytes, run) {
        out.extend_from_slice(&bytes[run..at]);
        let byte = bytes[at];
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
        }
        run = at + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Where the next byte JSON must escape is, from `from` on: a quote, a
/// backslash or a control character. Eight bytes are checked at once (the
/// zero-byte test of "Bit Twiddling Hacks", on the bytes minus 0x20 and on
/// them XORed with each of the two characters); the lowest flagged byte of
/// a step is the first hit (the test flags a byte wrongly only above a
/// true hit). Bytes of 0x80 and up (UTF-8 beyond ASCII) never match.
#[inline]
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let needs = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let rest = bytes.get(from..)?;
    let mut steps = rest.chunks_exact(8);
    for (i, step) in steps.by_ref().enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(step);
        let w = u64::from_le_bytes(word);
        let control = w.wrapping_sub(ONES * 0x20);
        let quote = (w ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
        let backslash = (w ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
        let hits = (control | quote | backslash) & !w & HIGH;
        if hits != 0 {
            return Some(from + i * 8 + (hits.trailing_zeros() / 8) as usize);
        }
    }
    let tail = steps.remainder();
    let done = rest.len() - tail.len();
    tail.iter().position(|&b| needs(b)).map(|i| from + done + i)
}

/// Whether `literal` is exactly one JSON string, quotes included, with no
/// `\u` escape: between its quotes no raw quote or control character, and
/// a backslash only before `" \\ / b f n r t`. The text of a stream's
/// delta is checked this way before it is copied into a chunk as it came;
/// serde_json's reading of a short string costs more to set up than this
/// costs in all. Strings with a `\u` escape are refused (one may be half
/// of a surrogate pair); the caller decodes those.
pub fn is_plain_str_literal(literal: &str) -> bool {
    let Some(inner) = literal
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return false;
    };
    let bytes = inner.as_bytes();
    let mut from = 0;
    while let Some(at) = next_escape(bytes, from) {
        if bytes[at] != b'\\' {
            return false;
        }
        match bytes.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => from = at + 2,
            _ => return false,
        }
    }
    true
}

/// A JSON string member read as it came ([`RawValue`]): its literal when
/// that can be copied into other JSON as is ([`is_plain_str_literal`]),
/// else the decoded text.
pub enum JsonStr<'a> {
    Raw(&'a str),
    Decoded(String),
}

impl<'a> JsonStr<'a> {
    /// `None` for a member that is not a string, as if it were absent.
    pub fn read(raw: &'a RawValue) -> Option<JsonStr<'a>> {
        let literal = raw.get();
        if is_plain_str_literal(literal) {
            Some(JsonStr::Raw(literal))
        } else {
            serde_json::from_str(literal).ok().map(JsonStr::Decoded)
        }
    }

    /// The text itself.
    pub fn into_string(self) -> String {
        match self {
            // A plain literal is a JSON string; it always decodes.
            JsonStr::Raw(literal) => serde_json::from_str(literal).unwrap_or_default(),
            JsonStr::Decoded(text) => text,
        }
    }

    /// Whether the string is `""`.
    pub fn is_empty(&self) -> bool {
        match self {
            JsonStr::Raw(literal) => literal.len() == 2,
            JsonStr::Decoded(text) => text.is_empty(),
        }
    }
}

/// `n` in decimal at the end of `out`, as serde_json writes it.
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `value` as serde_json writes it, at the end of `out`.
pub fn write_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
    serde_json::to_writer(out, value)
}

/// A JSON tree as serde_json writes it, its strings and keys through
/// [`write_str`]: tool schemas, thinking blocks, the Gemini and Bedrock
/// request bodies. serde_json keeps trees at most 128 levels deep when it
/// reads them, so the recursion is bounded.
pub fn write_tree(out: &mut Vec<u8>, value: &Value) -> serde_json::Result<()> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_value(out, n)?,
        Value::String(s) => write_str(out, s),
        Value::Array(items) => write_tree_list(out, items)?,
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_tree(out, item)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// A list, `[…]`: each item written by `write`, commas between.
pub fn write_list<T>(
    out: &mut Vec<u8>,
    items: &[T],
    mut write: impl FnMut(&mut Vec<u8>, &T) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item)?;
    }
    out.push(b']');
    Ok(())
}

/// A list of trees, `[…]`.
pub fn write_tree_list(out: &mut Vec<u8>, items: &[Value]) -> serde_json::Result<()> {
    write_list(out, items, write_tree)
}

/// `key` (a literal such as `,"name":`) and the string, if there is one:
/// a field serde skips when it is `None`.
pub fn write_opt_str(out: &mut Vec<u8>, key: &[u8], text: Option<&str>) {
    if let Some(text) = text {
        out.extend_from_slice(key);
        write_str(out, text);
    }
}

/// `key` and the value, by serde, if there is one.
pub fn write_opt_value<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    key: &[u8],
    value: Option<&T>,
) -> serde_json::Result<()> {
    match value {
        Some(value) => {
            out.extend_from_slice(key);
            write_value(out, value)
        }
        None => Ok(()),
    }
}

/// `key` and the tree, if there is one.
pub fn write_opt_tree(
    out: &mut Vec<u8>,
    key: &[u8],
    value: Option<&Value>,
) -> serde_json::Result<()> {
    match value {
        Some(value) => {
            out.extend_from_slice(key);
            write_tree(out, value)
        }
        None => Ok(()),
    }
}

impl WriteJson for Value {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        write_tree(out, self)
    }
}

/// A flattened `extra` map's entries, each after a comma, as serde's
/// `#[serde(flatten)]` writes them after a struct's own fields.
pub fn write_entries(out: &mut Vec<u8>, entries: &Map<String, Value>) -> serde_json::Result<()> {
    for (key, value) in entries {
        out.push(b',');
        write_str(out, key);
        out.push(b':');
        write_tree(out, value)?;
    }
    Ok(())
}

/// A type written as JSON by hand, field by field, for a hot path: the
/// bytes serde_json writes for it (each implementation tests that against
/// serde's derive). serde's derive escapes every key again, a byte at a
/// time, and every string the same way; here keys are literals and strings
/// go through [`write_str`].
pub trait WriteJson {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
}

/// A body written as JSON into a buffer of `size` bytes to start, the
/// size of the body it translates and some: a buffer that starts small
/// grows, copying what it has written, five times or so for a short chat.
pub fn written_body<T: WriteJson + ?Sized>(value: &T, size: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(size);
    value
        .write_json(&mut out)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Bytes::from(out))
}

/// Room for what a translation adds to a body of `len` bytes.
pub fn translated_size(len: usize) -> usize {
    len + len / 4 + 256
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_from_slice_reads_and_fails_where_it_fails() {
        let ok = b"{\"a\":\"\\u00e9t\\u00e9 \xc3\xa9\",\"b\":[1,2]}";
        let a: Value = from_bytes(ok).unwrap();
        let b: Value = serde_json::from_slice(ok).unwrap();
        assert_eq!(a, b);
        assert_eq!(a["a"], "été é");
        for bad in [&b"{\"a\":\"\xff\"}"[..], b"{\"a\":", b"[1,]"] {
            let mine = from_bytes::<Value>(bad).unwrap_err().to_string();
            let theirs = serde_json::from_slice::<Value>(bad)
                .unwrap_err()
                .to_string();
            assert_eq!(mine, theirs);
        }
    }

    /// Every string of up to three pieces from a set that holds every
    /// escape, good and bad, and every character class, at every offset
    /// around an 8-byte step: a plain literal exactly when serde_json reads
    /// it as one string and it has no `\u` escape.
    #[test]
    fn plain_string_literals_are_the_ones_serde_json_reads() {
        let pieces = [
            "a", "é", "🦀", "\"", "\\", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t",
            "\\u00e9", "\\x", "\\ ", "\n", "\t", "\u{1f}", "\u{7f}", " ",
        ];
        let mut checked = 0;
        for pad in [0, 1, 7, 8, 9] {
            let lead = "z".repeat(pad);
            for a in pieces {
                for b in pieces {
                    for c in ["", "\"", "q"] {
                        for body in [format!("{lead}{a}{b}{c}"), format!("{a}{lead}{b}{c}")] {
                            let lit = format!("\"{body}\"");
                            let serde_reads =
                                serde_json::from_str::<serde::de::IgnoredAny>(&lit).is_ok();
                            // Escaped backslashes out of the way, a `\u` left is an escape.
                            let want = serde_reads && !body.replace("\\\\", "").contains("\\u");
                            assert_eq!(is_plain_str_literal(&lit), want, "{lit:?}");
                            checked += usize::from(want);
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
        for bad in ["", "\"", "abc", "\"abc", "abc\"", "\"a\"b\"", "\"a\\\""] {
            assert!(!is_plain_str_literal(bad), "{bad:?}");
        }
    }

    /// Every ASCII character and a few wider ones, alone and at every
    /// position around a 32-byte step, escape as serde_json escapes them.
    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut texts: Vec<String> = Vec::new();
        let wide = ['é', '€', '🦀', '\u{2028}', '\u{7f}', '\u{80}', '\u{ffff}'];
        for c in (0u8..0x80).map(char::from).chain(wide) {
            texts.push(c.to_string());
            for at in [0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 100] {
                let mut s = "a".repeat(at);
                s.push(c);
                s.push_str(&"z".repeat(40));
                texts.push(s);
            }
        }
        texts.push(String::new());
        // Mixes of the characters that sit next to the ones escaped, in
        // every order a simple generator makes, up to 40 characters long.
        let alphabet = [
            'a', ' ', '!', '"', '#', '[', '\\', ']', '\n', '\u{1f}', '\u{0}', 'é', '🦀',
        ];
        let mut seed: u64 = 1;
        for _ in 0..2000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 58) as usize % 41;
            texts.push(
                (0..len)
                    .map(|i| alphabet[((seed >> (i % 60)) as usize + i * 7) % alphabet.len()])
                    .collect(),
            );
        }
        texts.push("\"\\\n\t\u{1}".repeat(50));
        texts.push("code:\n```rust\nfn main() {\n    println!(\"hi\");\n}\n```".repeat(20));
        for text in &texts {
            let mut out = b"[".to_vec();
            write_str(&mut out, text);
            let want = [&b"["[..], &serde_json::to_vec(text).unwrap()].concat();
            assert_eq!(out, want, "{text:?}");
        }
        let mut out = Vec::new();
        for n in [0, 7, 10, 99, 1_000_000, u64::MAX] {
            out.clear();
            write_u64(&mut out, n);
            assert_eq!(out, serde_json::to_vec(&n).unwrap());
        }
    }

    /// A tree of every kind of value, numbers of every kind among them,
    /// is written as serde_json writes it.
    #[test]
    fn trees_are_written_as_serde_json_writes_them() {
        let trees = [
            serde_json::json!(null),
            serde_json::json!([]),
            serde_json::json!({}),
            serde_json::json!({"type": "object", "properties": {"path": {"type": "string",
                "description": "A path, \"relative\"\n\tto the workspace"}},
                "required": ["path"], "additionalProperties": false,
                "odd \"key\"\u{1}": [0, -1, 1.5, 0.1, -0.0, 1e300, 5e-324, u64::MAX, i64::MIN, true, null,
                    [[]], {"a": {}}]}),
        ];
        for tree in &trees {
            let mut out = Vec::new();
            write_tree(&mut out, tree).unwrap();
            assert_eq!(out, serde_json::to_vec(tree).unwrap(), "{tree}");
            assert_eq!(written_body(tree, 0).unwrap(), out);
        }
    }

    #[test]
    fn a_body_is_the_same_json_whatever_room_it_starts_with() {
        let v =
            serde_json::json!({"a": "x\"y\n".repeat(100), "b": [1, 2.5, null], "c": {"d": true}});
        let want = serde_json::to_vec(&v).unwrap();
        for size in [0, 1, 128, translated_size(want.len()), 1 << 16] {
            assert_eq!(written_body(&v, size).unwrap(), want);
        }
        // A map with a non-string key cannot be JSON: a 500, not a panic.
        struct BadKeys;
        impl WriteJson for BadKeys {
            fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
                let bad: std::collections::HashMap<Vec<u8>, u8> = [(vec![1], 1)].into();
                write_value(out, &bad)
            }
        }
        assert_eq!(written_body(&BadKeys, 16).unwrap_err().status, 500);
    }
}
