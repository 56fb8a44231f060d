//! Reading wire structs that keep the members they do not name in an
//! `extra` map, as `#[serde(flatten)]` would, without what flatten costs:
//! serde reads a flattened struct's whole object into its private `Content`
//! tree first and the struct from that tree after, so every message, tool
//! schema and string of a chat request was read twice, and every string
//! with an escape copied twice. [`deserialize_keeping_extra!`] writes the
//! one-pass reading serde's derive writes for a struct without flatten,
//! with the members it does not name kept in order in `extra`.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::borrow::Cow;
use std::fmt;

/// A JSON string borrowed from the input when it has no escapes (serde's
/// own `Cow<str>` always copies): an object's keys here, and the top-level
/// fields `RawChatRequest` splits out.
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StrVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(StrVisitor(std::marker::PhantomData))
    }
}

/// An optional member's value: absent and `null` are both `None`, as
/// `#[serde(default)]` on an `Option` reads them.
pub(crate) fn optional<T>(seen: Option<Option<T>>) -> Option<T> {
    seen.flatten()
}

/// `Deserialize` for `$ty`, a struct of the members listed and
/// `extra: Map<String, Value>`. `required` members must be present;
/// `defaults` take the function's value when absent; `optional` members
/// are `Option`s, `None` when absent or `null`. A listed member named
/// twice is an error, as in serde's derive; an unlisted one named twice
/// keeps its last value. Only a JSON object reads as the struct.
macro_rules! deserialize_keeping_extra {
    (
        $ty:ident,
        required { $($req:ident: $req_key:literal),* $(,)? }
        defaults { $($def:ident: $def_key:literal = $def_fn:path),* $(,)? }
        optional { $($opt:ident: $opt_key:literal),* $(,)? }
    ) => {
        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct StructVisitor;
                impl<'de> ::serde::de::Visitor<'de> for StructVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                        f.write_str(concat!("struct ", stringify!($ty)))
                    }
                    fn visit_map<A: ::serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$ty, A::Error> {
                        use ::serde::de::Error as _;
                        $(let mut $req = None;)*
                        $(let mut $def = None;)*
                        $(let mut $opt = None;)*
                        let mut rest = ::serde_json::Map::new();
                        while let Some(key) = map.next_key::<$crate::types::extra::Str<'de>>()? {
                            match &*key.0 {
                                $($req_key => {
                                    if $req.is_some() {
                                        return Err(A::Error::duplicate_field($req_key));
                                    }
                                    $req = Some(map.next_value()?);
                                })*
                                $($def_key => {
                                    if $def.is_some() {
                                        return Err(A::Error::duplicate_field($def_key));
                                    }
                                    $def = Some(map.next_value()?);
                                })*
                                $($opt_key => {
                                    if $opt.is_some() {
                                        return Err(A::Error::duplicate_field($opt_key));
                                    }
                                    $opt = Some(map.next_value()?);
                                })*
                                _ => {
                                    rest.insert(key.0.into_owned(), map.next_value()?);
                                }
                            }
                        }
                        Ok($ty {
                            $($req: match $req {
                                Some(v) => v,
                                None => return Err(A::Error::missing_field($req_key)),
                            },)*
                            $($def: match $def {
                                Some(v) => v,
                                None => $def_fn(),
                            },)*
                            $($opt: $crate::types::extra::optional($opt),)*
                            extra: rest,
                        })
                    }
                }
                d.deserialize_map(StructVisitor)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::types::anthropic::MessagesRequest;
    use crate::types::{ChatCompletionRequest, MessageContent};
    use serde_json::{Value, json};

    /// Read, then written back: every member the client sent, known or
    /// not, at every level that keeps extra members.
    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(body: &Value) -> T {
        let text = body.to_string();
        let read: T = serde_json::from_str(&text).unwrap();
        assert_eq!(&serde_json::to_value(&read).unwrap(), body);
        read
    }

    #[test]
    fn a_chat_request_keeps_every_member_in_one_reading() {
        let body = json!({
            "x_first": 1,
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "be \"brief\"\n", "x_msg": [1, {"a": null}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "low"}},
                    {"type": "future_part", "blob": {"k": [true]}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"},
                     "provider_specific_fields": {"thought_signature": "sig"}}
                ], "reasoning_content": "hm", "thinking_blocks": [{"type": "thinking", "thinking": "t"}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42", "name": "f", "cache_control": {"type": "ephemeral"}}
            ],
            "stream": true,
            "stream_options": {"include_usage": true, "x_opt": "kept"},
            "max_tokens": 5, "max_completion_tokens": 6, "temperature": 0.5, "top_p": 1.0,
            "n": 1, "stop": ["a", "b"], "presence_penalty": 0.1, "frequency_penalty": 0.2,
            "seed": -3, "user": "u", "parallel_tool_calls": false,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}},
                       "cache_control": {"type": "ephemeral"}, "x_tool": 2}],
            "tool_choice": "auto",
            "response_format": {"type": "json_object"},
            "reasoning_effort": "low",
            "x_last": {"deep": [null]}
        });
        // Written back without the null content, which reads as absent.
        let mut want = body.clone();
        want["messages"][2]
            .as_object_mut()
            .unwrap()
            .remove("content");
        let text = body.to_string();
        let req: ChatCompletionRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_value(&req).unwrap(), want);
        let keys: Vec<&str> = req.extra.keys().map(String::as_str).collect();
        assert_eq!(keys, ["x_first", "x_last"]);
        assert_eq!(req.messages[0].extra["x_msg"], json!([1, {"a": null}]));
        assert!(matches!(&req.messages[1].content, Some(MessageContent::Parts(p)) if p.len() == 3));
        assert_eq!(
            req.messages[2].tool_calls.as_ref().unwrap()[0].extra["provider_specific_fields"]["thought_signature"],
            "sig"
        );
        // `null` for an optional member is the member left out.
        let req: ChatCompletionRequest = serde_json::from_str(
            r#"{"model":"m","messages":[],"stream":null,"tools":null,"user":null}"#,
        )
        .unwrap();
        assert_eq!((req.stream, req.tools, req.user), (None, None, None));
        assert!(req.extra.is_empty());
    }

    #[test]
    fn the_default_type_escaped_keys_and_errors_read_as_serde_reads_them() {
        let req: ChatCompletionRequest = serde_json::from_str(
            r#"{"mo\u0064el":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f"}}]}],"tools":[{"function":{"name":"f"}}],"x\"y":1}"#,
        )
        .unwrap();
        assert_eq!(req.model, "m");
        assert_eq!(
            req.messages[0].tool_calls.as_ref().unwrap()[0].kind,
            "function"
        );
        assert_eq!(req.tools.as_ref().unwrap()[0].kind, "function");
        assert_eq!(req.extra["x\"y"], 1);
        let err = |body: &str| {
            serde_json::from_str::<ChatCompletionRequest>(body)
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"messages":[]}"#).starts_with("missing field `model`"));
        assert!(
            err(r#"{"model":"a","messages":[],"model":"b"}"#)
                .starts_with("duplicate field `model`")
        );
        assert!(
            err(r#"{"model":"a","messages":[],"stream":true,"stream":false}"#)
                .starts_with("duplicate field `stream`")
        );
        assert!(
            err(r#"{"model":"a","messages":[{"content":"x"}]}"#)
                .starts_with("missing field `role`")
        );
        assert!(
            err(r#"{"model":"a","messages":[{"role":"user","content":5}]}"#)
                .contains("expected a string or an array of content parts")
        );
        assert!(err(r#"{"model":"a","messages":"x"}"#).contains("invalid type: string"));
        assert!(
            err(r#"{"model":"a","messages":[],"max_tokens":"5"}"#).contains("invalid type: string")
        );
        assert!(err(r#"["gpt-4o",[]]"#).contains("expected struct ChatCompletionRequest"));
        assert!(
            err(r#"{"model":"a","messages":[],"tools":[{"type":"function"}]}"#)
                .starts_with("missing field `function`")
        );
        // Unlisted members named twice keep the last value, as before.
        let req: ChatCompletionRequest =
            serde_json::from_str(r#"{"model":"a","messages":[],"x":1,"x":2}"#).unwrap();
        assert_eq!(req.extra["x"], 2);
    }

    #[test]
    fn an_anthropic_request_keeps_every_member_in_one_reading() {
        let req: MessagesRequest = round_trip(&json!({
            "model": "claude",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
            "max_tokens": 100, "metadata": {"user_id": "u"}, "stop_sequences": ["x"],
            "stream": true, "temperature": 1.0, "top_p": 0.9, "top_k": 5,
            "tools": [
                {"name": "t", "description": "d", "input_schema": {"type": "object"},
                 "cache_control": {"type": "ephemeral"}, "x_tool": 1},
                {"name": "computer", "type": "computer_20250124", "display_width_px": 1024}
            ],
            "tool_choice": {"type": "auto"},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "x_request": "kept"
        }));
        assert_eq!(req.extra["x_request"], "kept");
        assert_eq!(
            req.tools.as_ref().unwrap()[1].extra["display_width_px"],
            1024
        );
        let err =
            serde_json::from_str::<MessagesRequest>(r#"{"model":"c","messages":[],"tools":[{}]}"#)
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("missing field `name`"), "{err}");
    }
}
