//! A chat request as raw JSON: the top-level fields are split out, their
//! values stay unparsed slices of the client's body. This is all the
//! OpenAI-compatible pass-through path needs: read `model`, `stream` and
//! `stream_options`, then write the body back with only `model` (and what a
//! deployment must add) changed. `messages` is never parsed there.

use super::chat::ChatCompletionRequest;
use super::error::ApiError;
use super::extra::Str;
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

pub struct RawChatRequest<'a> {
    body: &'a [u8],
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    model: Cow<'a, str>,
    stream: bool,
    include_usage: bool,
    /// The size of the client's body.
    size: usize,
}

/// How to write a request back for an upstream.
#[derive(Default)]
pub struct Rewrite<'r> {
    /// The upstream model id that replaces the client's `model`.
    pub model: &'r str,
    /// Top-level fields to leave out (gateway controls such as `drop_params`).
    pub remove: &'r [&'r str],
    /// Fields to set, as JSON text, replacing the client's value if any.
    pub set: &'r [(&'r str, &'r str)],
    /// Fields to add only when the client did not send them.
    pub defaults: Option<&'r Map<String, Value>>,
}

impl<'a> RawChatRequest<'a> {
    /// Splits the body and checks the fields every chat request needs,
    /// answering a 400 that names the field when one is wrong.
    pub fn parse(body: &'a [u8]) -> Result<Self, ApiError> {
        let TopLevel(fields) = crate::json::from_bytes(body).map_err(|e| {
            if e.classify() == serde_json::error::Category::Data {
                ApiError::bad_request("The request body must be a JSON object.")
            } else {
                ApiError::bad_request(format!("The request body is not valid JSON: {e}"))
            }
        })?;
        let find = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);

        let model = match find("model") {
            None => {
                return Err(ApiError::invalid_field(
                    "model",
                    "Missing required field `model`.",
                ));
            }
            Some(raw) => match serde_json::from_str::<Str<'a>>(raw.get()) {
                Ok(Str(m)) if !m.is_empty() => m,
                _ => {
                    return Err(ApiError::invalid_field(
                        "model",
                        "`model` must be a non-empty string.",
                    ));
                }
            },
        };
        match find("messages") {
            None => {
                return Err(ApiError::invalid_field(
                    "messages",
                    "Missing required field `messages`.",
                ));
            }
            Some(raw) if !raw.get().starts_with('[') => {
                return Err(ApiError::invalid_field(
                    "messages",
                    "`messages` must be an array of message objects.",
                ));
            }
            Some(_) => {}
        }
        let stream = match find("stream") {
            None => false,
            Some(raw) => match serde_json::from_str::<Option<bool>>(raw.get()) {
                Ok(b) => b.unwrap_or(false),
                Err(_) => {
                    return Err(ApiError::invalid_field(
                        "stream",
                        "`stream` must be a boolean.",
                    ));
                }
            },
        };
        let include_usage = match find("stream_options") {
            None => false,
            Some(raw) => {
                #[derive(Deserialize)]
                struct StreamOptions {
                    include_usage: Option<bool>,
                }
                match serde_json::from_str::<Option<StreamOptions>>(raw.get()) {
                    Ok(o) => o.and_then(|o| o.include_usage).unwrap_or(false),
                    Err(_) => {
                        return Err(ApiError::invalid_field(
                            "stream_options",
                            "`stream_options` must be an object like {\"include_usage\": true}.",
                        ));
                    }
                }
            }
        };
        Ok(RawChatRequest {
            body,
            fields,
            model,
            stream,
            include_usage,
            size: body.len(),
        })
    }

    /// The routing fields of a request that exists only typed, for a
    /// provider that translates it (`ChatCall::typed` then carries it): no
    /// body and no fields to pass through, so the request is read through
    /// `ChatCall::typed`, not `to_typed`. `size` is the size of the body
    /// the client sent, which sizes the translated body's buffer.
    pub fn from_typed(req: &'a ChatCompletionRequest, size: usize) -> Self {
        RawChatRequest {
            body: b"",
            fields: Vec::new(),
            model: Cow::Borrowed(&req.model),
            stream: req.is_stream(),
            include_usage: req.include_usage(),
            size,
        }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// The size of the body as the client sent it.
    pub fn body_len(&self) -> usize {
        self.size
    }

    pub fn is_stream(&self) -> bool {
        self.stream
    }

    /// Whether the client asked for the usage chunk at the end of a stream.
    pub fn include_usage(&self) -> bool {
        self.include_usage
    }

    /// A top-level field as raw JSON.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// The model of a body that is a JSON object with a top-level `model`
    /// member, a string without escapes, found by a scan that skips the
    /// other members' values without reading them (strings by their
    /// closing quote, objects and arrays by their depth), so it costs a
    /// small part of the split. `None` for any other body, whose model only
    /// [`RawChatRequest::parse`] can tell. The scan does not check the
    /// JSON: whoever acts on its answer reads the body in full after it.
    /// curl and the openai Python SDK from version 3 write `model` first;
    /// its earlier versions write it after `messages`, and the anthropic
    /// Python SDK after `max_tokens` and `messages`.
    pub fn model_of(body: &[u8]) -> Option<&str> {
        let mut at = skip_ws(body, 0);
        if body.get(at) != Some(&b'{') {
            return None;
        }
        loop {
            at = skip_ws(body, at + 1);
            if body.get(at) != Some(&b'"') {
                return None;
            }
            let key_end = string_end(body, at)?;
            let key = &body[at + 1..key_end];
            at = skip_ws(body, key_end + 1);
            if body.get(at) != Some(&b':') {
                return None;
            }
            at = skip_ws(body, at + 1);
            if key == b"model" {
                if body.get(at) != Some(&b'"') {
                    return None;
                }
                let name = &body[at + 1..at + 1 + memchr::memchr(b'"', &body[at + 1..])?];
                if name.is_empty() || name.iter().any(|&c| c == b'\\' || c < 0x20) {
                    return None;
                }
                return std::str::from_utf8(name).ok();
            }
            at = skip_ws(body, value_end(body, at)?);
            if body.get(at) != Some(&b',') {
                return None;
            }
        }
    }

    /// A top-level field parsed into `T`; `None` when absent or `null`.
    pub fn get_as<T: Deserialize<'a>>(&self, name: &str) -> Result<Option<T>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<Option<T>>(raw.get())
                .map_err(|e| ApiError::invalid_field(name, format!("Invalid `{name}`: {e}"))),
        }
    }

    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_ref())
    }

    /// The whole request, typed, for providers that translate it.
    pub fn to_typed(&self) -> Result<ChatCompletionRequest, ApiError> {
        crate::json::from_bytes(self.body)
            .map_err(|e| ApiError::bad_request(format!("Invalid chat completion request: {e}")))
    }

    /// Writes the body for an upstream: the client's fields in their order,
    /// values untouched, with `model` replaced and the rewrite applied.
    pub fn write(&self, rw: &Rewrite<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64);
        out.push(b'{');
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !first {
                out.push(b',');
            }
            first = false;
        };
        for (key, value) in &self.fields {
            let key = key.as_ref();
            if rw.remove.contains(&key) || rw.set.iter().any(|(k, _)| *k == key) {
                continue;
            }
            sep(&mut out);
            write_key(&mut out, key);
            if key == "model" {
                write_string(&mut out, rw.model);
            } else {
                out.extend_from_slice(value.get().as_bytes());
            }
        }
        for (key, json) in rw.set {
            sep(&mut out);
            write_key(&mut out, key);
            out.extend_from_slice(json.as_bytes());
        }
        if let Some(defaults) = rw.defaults {
            for (key, value) in defaults {
                if self.get(key).is_none() && !rw.set.iter().any(|(k, _)| k == key) {
                    sep(&mut out);
                    write_key(&mut out, key);
                    // Writing a Value into a Vec cannot fail.
                    let _ = serde_json::to_writer(&mut out, value);
                }
            }
        }
        out.push(b'}');
        out
    }
}

fn write_key(out: &mut Vec<u8>, key: &str) {
    write_string(out, key);
    out.push(b':');
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The top level of a JSON object, keys in order, values left raw.
struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(16);
                while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    // A repeated key: the last one wins, as in most parsers.
                    fields.retain(|(k, _): &(Cow<'de, str>, &RawValue)| k != &key);
                    fields.push((key, value));
                }
                Ok(TopLevel(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// The first byte at or after `at` that is not JSON whitespace.
fn skip_ws(b: &[u8], mut at: usize) -> usize {
    while matches!(b.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The index of the quote that closes the string opening at `open`: the
/// next quote not escaped by an odd run of backslashes.
fn string_end(b: &[u8], open: usize) -> Option<usize> {
    let mut at = open + 1;
    loop {
        let q = at + memchr::memchr(b'"', b.get(at..)?)?;
        let backslashes = b[at..q].iter().rev().take_while(|&&c| c == b'\\').count();
        if backslashes % 2 == 0 {
            return Some(q);
        }
        at = q + 1;
    }
}

/// The index just past the value starting at `at`, for a body read as JSON
/// (a malformed one may end anywhere, or `None`).
fn value_end(b: &[u8], at: usize) -> Option<usize> {
    match *b.get(at)? {
        b'"' => string_end(b, at).map(|q| q + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match *b.get(i)? {
                    b'"' => i = string_end(b, i)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let n = b[at..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))?;
            Some(at + n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RawChatRequest<'_>, ApiError> {
        RawChatRequest::parse(s.as_bytes())
    }

    #[test]
    fn escaped_keys_and_model_names_are_read_like_plain_ones() {
        let r = parse(r#"{"mo\u0064el":"gpt\u002d4o","messages":[],"str\u0065am":true}"#).unwrap();
        assert_eq!(r.model(), "gpt-4o");
        assert!(r.is_stream());
        assert!(r.field_names().any(|k| k == "messages"));
    }

    #[test]
    fn the_top_level_model_is_found_without_reading_the_rest() {
        fn find(s: &str) -> Option<&str> {
            RawChatRequest::model_of(s.as_bytes())
        }
        // Found first, the rest is not looked at.
        assert_eq!(find(r#"{"model":"gemini","messages":[tru"#), Some("gemini"));
        assert_eq!(
            find(" \r\n\t{ \"model\" :\t\"claude-é\" , \"stream\":true}"),
            Some("claude-é")
        );
        // Found after other members, whatever their values hold: nested
        // `model` keys, quotes and backslashes escaped in every way,
        // brackets inside strings, scalars of every kind.
        for (body, model) in [
            (r#"{"messages":[],"model":"gemini"}"#, "gemini"),
            (
                r#"{"messages":[{"role":"user","content":"say \"model\": \"x\" {[ \\","model":"inner"}],"model":"outer"}"#,
                "outer",
            ),
            (
                r#"{"a":"\\","b":"\\\"","c":{"model":"no","d":[1,{"model":"no"}]},"model":"yes"}"#,
                "yes",
            ),
            (
                "{\"t\":0.5 ,\"n\":null,\"s\":true,\"f\":false,\"i\":-1e3\n,\"model\" : \"m\"}",
                "m",
            ),
            (r#"{"model_x":"no","x_model":"no","model":"m"}"#, "m"),
        ] {
            assert_eq!(find(body), Some(model), "{body}");
            assert_eq!(serde_json::from_str::<Value>(body).unwrap()["model"], model);
        }
        // Anything it cannot tell so is left to the split.
        for other in [
            r#"{"model":"gem\u0069ni"}"#,
            r#"{"mo\u0064el":"gemini"}"#,
            r#"{"model":""}"#,
            r#"{"model":5}"#,
            r#"{"model":"gemini"#,
            r#"{"model_x":"gemini"}"#,
            r#"{"messages":[],"stream":true}"#,
            r#"{"messages":[{"model":"inner"}]}"#,
            r#"{"messages":"a\"}, \"model\": \"b"}"#,
            r#"{"messages":[{"content":"}"}]"#,
            r#"{"messages":[] "model":"m"}"#,
            r#"{"n":1"#,
            "{\"model\":\"a\nb\"}",
            r#"["model","gemini"]"#,
            "",
        ] {
            assert_eq!(find(other), None, "{other}");
        }
        assert_eq!(RawChatRequest::model_of(b"{\"model\":\"\xff\"}"), None);
    }

    #[test]
    fn the_scan_agrees_with_a_json_reader_on_generated_bodies() {
        // Bodies whose members hold what trips a scan that does not read
        // JSON: quotes, backslashes, brackets and `model` keys inside
        // strings and nested values, in compact and pretty layouts.
        let mut seed: u64 = 7;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        const PIECES: [&str; 12] = [
            "a", "\"", "\\", "{", "}", "[", "]", ",", ":", "model", "\n", "é",
        ];
        fn value(next: &mut dyn FnMut(u64) -> u64, depth: u32) -> Value {
            match next(if depth > 2 { 4 } else { 6 }) {
                0 => Value::Null,
                1 => Value::from(next(1000) as f64 / 8.0),
                2 | 3 => Value::from(
                    (0..next(8))
                        .map(|_| PIECES[next(PIECES.len() as u64) as usize])
                        .collect::<String>(),
                ),
                4 => Value::Array((0..next(4)).map(|_| value(next, depth + 1)).collect()),
                _ => Value::Object(
                    (0..next(4))
                        .map(|i| {
                            let key = if next(3) == 0 {
                                "model".to_owned()
                            } else {
                                format!("k{i}")
                            };
                            (key, value(next, depth + 1))
                        })
                        .collect(),
                ),
            }
        }
        let mut found = 0;
        for n in 0..3000 {
            let mut members: Vec<(String, Value)> = (0..next(5))
                .map(|i| (format!("m{i}"), value(&mut next, 0)))
                .collect();
            let model = match next(4) {
                0 => None,
                1 => Some(value(&mut next, 0)),
                _ => Some(Value::from(format!("model-{n}"))),
            };
            if let Some(m) = &model {
                let at = next(members.len() as u64 + 1) as usize;
                members.insert(at, ("model".to_owned(), m.clone()));
            }
            let obj = Value::Object(members.into_iter().collect());
            let body = if next(2) == 0 {
                serde_json::to_string(&obj).unwrap()
            } else {
                serde_json::to_string_pretty(&obj).unwrap()
            };
            let plain = model
                .as_ref()
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty() && !serde_json::to_string(m).unwrap().contains('\\'));
            assert_eq!(RawChatRequest::model_of(body.as_bytes()), plain, "{body}");
            found += usize::from(plain.is_some());
        }
        assert!(found > 1000, "{found} bodies with a model to find");
    }

    #[test]
    fn reads_the_routing_fields_only() {
        let r = parse(
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],
                "stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert_eq!(r.model(), "gpt-4o");
        assert!(r.is_stream());
        assert!(r.include_usage());
    }

    #[test]
    fn rewrites_only_the_model_and_keeps_everything_else_byte_for_byte() {
        let body = r#"{"model":"fast","messages":[{"role":"user","content":"h\u00e9 \"q\""}],"x_future":{"a":[1,2.50,null]},"temperature":0}"#;
        let r = parse(body).unwrap();
        let out = r.write(&Rewrite {
            model: "gpt-4o-2024-08-06",
            ..Default::default()
        });
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"model":"gpt-4o-2024-08-06","messages":[{"role":"user","content":"h\u00e9 \"q\""}],"x_future":{"a":[1,2.50,null]},"temperature":0}"#
        );
    }

    #[test]
    fn removes_sets_and_adds_defaults() {
        let r = parse(r#"{"model":"m","messages":[],"drop_params":true,"stream":true,"stream_options":{"include_usage":false},"provider":{"x":1}}"#).unwrap();
        let mut defaults = Map::new();
        defaults.insert("provider".into(), serde_json::json!({"order": ["Groq"]}));
        defaults.insert("transforms".into(), serde_json::json!([]));
        let out = r.write(&Rewrite {
            model: "up",
            remove: &["drop_params"],
            set: &[("stream_options", r#"{"include_usage":true}"#)],
            defaults: Some(&defaults),
        });
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "up");
        assert!(v.get("drop_params").is_none());
        assert_eq!(v["stream_options"]["include_usage"], true);
        // The client's own value wins over a default.
        assert_eq!(v["provider"], serde_json::json!({"x": 1}));
        assert_eq!(v["transforms"], serde_json::json!([]));
    }

    #[test]
    fn a_typed_request_gives_the_same_routing_fields_as_its_body() {
        for body in [
            r#"{"model":"m","messages":[]}"#,
            r#"{"model":"m\u00e9","messages":[],"stream":true}"#,
            r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
            r#"{"model":"m","messages":[],"stream":null,"stream_options":null}"#,
        ] {
            let raw = parse(body).unwrap();
            let typed = raw.to_typed().unwrap();
            let from = RawChatRequest::from_typed(&typed, 1234);
            assert_eq!(
                (from.model(), from.is_stream(), from.include_usage()),
                (raw.model(), raw.is_stream(), raw.include_usage()),
                "{body}"
            );
            assert_eq!(from.body_len(), 1234);
            assert_eq!(raw.body_len(), body.len());
            // Nothing to pass through.
            assert_eq!(from.field_names().count(), 0);
        }
    }

    #[test]
    fn names_the_field_that_is_wrong() {
        let e = parse(r#"{"messages":[]}"#).err().unwrap();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("model")));
        let e = parse(r#"{"model":"m"}"#).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = parse(r#"{"model":"m","messages":"hi"}"#).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = parse(r#"{"model":3,"messages":[]}"#).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = parse(r#"{"model":"m","messages":[],"stream":"yes"}"#)
            .err()
            .unwrap();
        assert_eq!(e.param.as_deref(), Some("stream"));
        let e = parse(r#"{"model":"m","messages":[],"#).err().unwrap();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse(r#"[1,2]"#).err().unwrap();
        assert!(e.message.contains("JSON object"), "{}", e.message);
    }

    #[test]
    fn escaped_keys_are_written_back_correctly() {
        let r = parse(r#"{"model":"m","messages":[],"we\"ird":1}"#).unwrap();
        let out = r.write(&Rewrite {
            model: "m2",
            ..Default::default()
        });
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["we\"ird"], 1);
    }
}
