//! JSON from bytes, read the cheaper way.

use crate::types::ApiError;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

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

/// A body written as JSON into a buffer of `size` bytes to start, the
/// size of the body it translates and some: `serde_json::to_vec` starts at
/// 128 bytes and grows, copying what it has written, five times or so for
/// a short chat.
pub fn body<T: Serialize + ?Sized>(value: &T, size: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(size);
    serde_json::to_writer(&mut out, value).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Bytes::from(out))
}

/// Room for what a translation adds to a body of `len` bytes.
pub fn translated_size(len: usize) -> usize {
    len + len / 4 + 256
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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

    #[test]
    fn a_body_is_the_same_json_whatever_room_it_starts_with() {
        let v =
            serde_json::json!({"a": "x\"y\n".repeat(100), "b": [1, 2.5, null], "c": {"d": true}});
        let want = serde_json::to_vec(&v).unwrap();
        for size in [0, 1, 128, translated_size(want.len()), 1 << 16] {
            assert_eq!(body(&v, size).unwrap(), want);
        }
        // A map with a non-string key cannot be JSON: a 500, not a panic.
        let bad: std::collections::HashMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        assert_eq!(body(&bad, 16).unwrap_err().status, 500);
    }
}
