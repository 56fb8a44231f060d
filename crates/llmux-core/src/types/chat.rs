//! OpenAI Chat Completions, typed: the canonical format every translated
//! provider converts to and from. Unknown fields are kept in `extra` so a
//! round trip loses nothing. The OpenAI-compatible pass-through path does
//! not use these types at all (see `raw.rs`).

use super::usage::Usage;
use crate::json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// Everything else the client sent, kept as it was.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

deserialize_keeping_extra!(ChatCompletionRequest,
    required { model: "model", messages: "messages" }
    defaults {}
    optional {
        stream: "stream",
        stream_options: "stream_options",
        max_tokens: "max_tokens",
        max_completion_tokens: "max_completion_tokens",
        temperature: "temperature",
        top_p: "top_p",
        n: "n",
        stop: "stop",
        presence_penalty: "presence_penalty",
        frequency_penalty: "frequency_penalty",
        seed: "seed",
        user: "user",
        tools: "tools",
        tool_choice: "tool_choice",
        parallel_tool_calls: "parallel_tool_calls",
        response_format: "response_format",
        reasoning_effort: "reasoning_effort",
    }
);

impl ChatCompletionRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// `max_completion_tokens` wins over the legacy `max_tokens`.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

/// The Messages route writes its canonical request this way for every
/// upstream: a coding agent's whole conversation, its system prompt and
/// its tools, on every turn. Messages, text parts and function tools by
/// hand, the short and rare fields by serde; `serde_json::to_vec` writes
/// the same bytes (tested, and checked on every inbound fixture).
impl json::WriteJson for ChatCompletionRequest {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"model\":");
        json::write_str(out, &self.model);
        out.extend_from_slice(b",\"messages\":");
        json::write_list(out, &self.messages, |out, m| m.write_json(out))?;
        json::write_opt_value(out, b",\"stream\":", self.stream.as_ref())?;
        json::write_opt_value(out, b",\"stream_options\":", self.stream_options.as_ref())?;
        json::write_opt_value(out, b",\"max_tokens\":", self.max_tokens.as_ref())?;
        json::write_opt_value(
            out,
            b",\"max_completion_tokens\":",
            self.max_completion_tokens.as_ref(),
        )?;
        json::write_opt_value(out, b",\"temperature\":", self.temperature.as_ref())?;
        json::write_opt_value(out, b",\"top_p\":", self.top_p.as_ref())?;
        json::write_opt_value(out, b",\"n\":", self.n.as_ref())?;
        json::write_opt_value(out, b",\"stop\":", self.stop.as_ref())?;
        json::write_opt_value(
            out,
            b",\"presence_penalty\":",
            self.presence_penalty.as_ref(),
        )?;
        json::write_opt_value(
            out,
            b",\"frequency_penalty\":",
            self.frequency_penalty.as_ref(),
        )?;
        json::write_opt_value(out, b",\"seed\":", self.seed.as_ref())?;
        json::write_opt_str(out, b",\"user\":", self.user.as_deref());
        if let Some(tools) = &self.tools {
            out.extend_from_slice(b",\"tools\":");
            json::write_list(out, tools, |out, t| t.write_json(out))?;
        }
        json::write_opt_value(out, b",\"tool_choice\":", self.tool_choice.as_ref())?;
        json::write_opt_value(
            out,
            b",\"parallel_tool_calls\":",
            self.parallel_tool_calls.as_ref(),
        )?;
        json::write_opt_tree(out, b",\"response_format\":", self.response_format.as_ref())?;
        json::write_opt_str(
            out,
            b",\"reasoning_effort\":",
            self.reasoning_effort.as_deref(),
        );
        json::write_entries(out, &self.extra)?;
        out.push(b'}');
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

deserialize_keeping_extra!(StreamOptions,
    required {}
    defaults {}
    optional { include_usage: "include_usage" }
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn as_slice(&self) -> &[String] {
        match self {
            Stop::One(s) => std::slice::from_ref(s),
            Stop::Many(v) => v,
        }
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.as_slice().to_vec()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Reasoning text from an earlier assistant turn (LiteLLM's field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Anthropic thinking blocks with signatures, kept across turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<Value>>,
    /// A cache breakpoint on the whole message (LiteLLM's convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

deserialize_keeping_extra!(ChatMessage,
    required { role: "role" }
    defaults {}
    optional {
        content: "content",
        name: "name",
        tool_calls: "tool_calls",
        tool_call_id: "tool_call_id",
        reasoning_content: "reasoning_content",
        thinking_blocks: "thinking_blocks",
        cache_control: "cache_control",
    }
);

impl ChatMessage {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(match self.role {
            Role::System => b"{\"role\":\"system\"",
            Role::Developer => b"{\"role\":\"developer\"",
            Role::User => b"{\"role\":\"user\"",
            Role::Assistant => b"{\"role\":\"assistant\"",
            Role::Tool => b"{\"role\":\"tool\"",
            Role::Function => b"{\"role\":\"function\"",
        });
        match &self.content {
            Some(MessageContent::Text(text)) => {
                out.extend_from_slice(b",\"content\":");
                json::write_str(out, text);
            }
            Some(MessageContent::Parts(parts)) => {
                out.extend_from_slice(b",\"content\":");
                json::write_list(out, parts, |out, part| match part {
                    ContentPart::Known(KnownPart::Text {
                        text,
                        cache_control,
                    }) => {
                        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
                        json::write_str(out, text);
                        json::write_opt_tree(out, b",\"cache_control\":", cache_control.as_ref())?;
                        out.push(b'}');
                        Ok(())
                    }
                    other => json::write_value(out, other),
                })?;
            }
            None => {}
        }
        json::write_opt_str(out, b",\"name\":", self.name.as_deref());
        write_tool_calls(out, self.tool_calls.as_deref())?;
        json::write_opt_str(out, b",\"tool_call_id\":", self.tool_call_id.as_deref());
        write_reasoning(
            out,
            self.reasoning_content.as_deref(),
            self.thinking_blocks.as_deref(),
        )?;
        json::write_opt_tree(out, b",\"cache_control\":", self.cache_control.as_ref())?;
        json::write_entries(out, &self.extra)?;
        out.push(b'}');
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// A string, or a list of parts, read as it comes: an untagged enum would
/// read the whole content into serde's buffer first to try each form.
impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> serde::de::Visitor<'de> for ContentVisitor {
            type Value = MessageContent;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<MessageContent, A::Error> {
                let mut parts = Vec::new();
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(MessageContent::Parts(parts))
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

impl MessageContent {
    /// All text of the content, parts joined.
    pub fn text(&self) -> String {
        match self {
            MessageContent::Text(s) => s.clone(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Known(KnownPart::Text { text, .. }) => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

/// A content part: one llmux understands, or any other kept verbatim.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ContentPart {
    Known(KnownPart),
    Other(Value),
}

/// A part is [`KnownPart`] when it reads as one, and otherwise kept as the
/// JSON it is, as an untagged derive would read it; but in one pass. The
/// derive read every part into serde's buffer and each try from there,
/// copying its strings again (a coding agent's text and images, on every
/// turn). Here each member is read once into a list, and a part of a kind
/// llmux knows has its fields moved out of it, unknown members dropped as
/// the derive drops them; anything else becomes the object its members
/// make. (Unlike the derive, a part that names a field twice reads as the
/// object with the last value, never as a known part, and a struct written
/// as a JSON array is not read as one.)
impl<'de> Deserialize<'de> for ContentPart {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, SeqAccess};
        struct PartVisitor;
        impl<'de> de::Visitor<'de> for PartVisitor {
            type Value = ContentPart;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a content part")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ContentPart, A::Error> {
                let mut members: Vec<(String, Value)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(3).min(16));
                while let Some(key) = map.next_key::<super::extra::Str<'de>>()? {
                    members.push((key.0.into_owned(), map.next_value()?));
                }
                Ok(match known_part(&mut members) {
                    Some(part) => ContentPart::Known(part),
                    None => ContentPart::Other(Value::Object(members.into_iter().collect())),
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ContentPart, A::Error> {
                Value::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(ContentPart::Other)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ContentPart, E> {
                Ok(ContentPart::Other(Value::String(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ContentPart, E> {
                Ok(ContentPart::Other(Value::String(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ContentPart, E> {
                Ok(ContentPart::Other(Value::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ContentPart, E> {
                Ok(ContentPart::Other(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ContentPart, E> {
                Ok(ContentPart::Other(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ContentPart, E> {
                Ok(ContentPart::Other(v.into()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ContentPart, E> {
                Ok(ContentPart::Other(Value::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<ContentPart, E> {
                Ok(ContentPart::Other(Value::Null))
            }
        }
        d.deserialize_any(PartVisitor)
    }
}

/// Where `key` is among `members`: `Err` when it is there twice.
fn member(members: &[(String, Value)], key: &str) -> Result<Option<usize>, ()> {
    let mut found = None;
    for (i, (k, _)) in members.iter().enumerate() {
        if k == key {
            if found.is_some() {
                return Err(());
            }
            found = Some(i);
        }
    }
    Ok(found)
}

/// The value at `at`, taken out (the member keeps a `null`).
fn take(members: &mut [(String, Value)], at: usize) -> Value {
    std::mem::take(&mut members[at].1)
}

/// An optional member's value: absent and `null` are `None`.
fn take_optional(members: &mut [(String, Value)], at: Option<usize>) -> Option<Value> {
    at.map(|i| take(members, i)).filter(|v| !v.is_null())
}

/// The part the members make, if they make one of [`KnownPart`]'s kinds
/// with fields of the right types; nothing is taken out of them otherwise.
fn known_part(members: &mut [(String, Value)]) -> Option<KnownPart> {
    let kind = members[member(members, "type").ok()??].1.as_str()?;
    let cache_control = member(members, "cache_control").ok()?;
    match kind {
        "text" => {
            let Value::String(text) = &mut members[member(members, "text").ok()??].1 else {
                return None;
            };
            Some(KnownPart::Text {
                text: std::mem::take(text),
                cache_control: take_optional(members, cache_control),
            })
        }
        "image_url" => {
            let at = member(members, "image_url").ok()??;
            if !ImageUrl::reads_from(&members[at].1) {
                return None;
            }
            let image_url = ImageUrl::from_value(take(members, at))?;
            Some(KnownPart::ImageUrl {
                image_url,
                cache_control: take_optional(members, cache_control),
            })
        }
        "input_audio" => {
            let at = member(members, "input_audio").ok()??;
            Some(KnownPart::InputAudio {
                input_audio: take(members, at),
            })
        }
        "file" => {
            let at = member(members, "file").ok()??;
            Some(KnownPart::File {
                file: take(members, at),
                cache_control: take_optional(members, cache_control),
            })
        }
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KnownPart {
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    ImageUrl {
        image_url: ImageUrl,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    InputAudio {
        input_audio: Value,
    },
    File {
        file: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageUrl {
    Object {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<String>,
    },
    /// Some clients send the URL as a bare string.
    Url(String),
}

impl ImageUrl {
    /// Whether `v` reads as an `ImageUrl`: a string, or an object with a
    /// string `url` and `detail` and `format` strings or `null` if there.
    fn reads_from(v: &Value) -> bool {
        match v {
            Value::String(_) => true,
            Value::Object(o) => {
                let text_or_null = |k: &str| o.get(k).is_none_or(|v| v.is_null() || v.is_string());
                o.get("url").is_some_and(Value::is_string)
                    && text_or_null("detail")
                    && text_or_null("format")
            }
            _ => false,
        }
    }

    /// The value as an `ImageUrl`, its strings moved, when it
    /// [reads as one](ImageUrl::reads_from).
    fn from_value(v: Value) -> Option<ImageUrl> {
        let text = |v: Option<Value>| match v {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        match v {
            Value::String(url) => Some(ImageUrl::Url(url)),
            Value::Object(mut o) => Some(ImageUrl::Object {
                url: text(o.remove("url"))?,
                detail: text(o.remove("detail")),
                format: text(o.remove("format")),
            }),
            _ => None,
        }
    }

    pub fn url(&self) -> &str {
        match self {
            ImageUrl::Object { url, .. } | ImageUrl::Url(url) => url,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
    /// e.g. `provider_specific_fields.thought_signature` for Gemini.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

deserialize_keeping_extra!(ToolCall,
    required { id: "id", function: "function" }
    defaults { kind: "type" = function_type }
    optional {}
);

impl ToolCall {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"id\":");
        json::write_str(out, &self.id);
        out.extend_from_slice(b",\"type\":");
        json::write_str(out, &self.kind);
        out.extend_from_slice(b",\"function\":{\"name\":");
        json::write_str(out, &self.function.name);
        out.extend_from_slice(b",\"arguments\":");
        json::write_str(out, &self.function.arguments);
        out.push(b'}');
        json::write_entries(out, &self.extra)?;
        out.push(b'}');
        Ok(())
    }
}

fn function_type() -> String {
    "function".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text, as OpenAI sends it.
    #[serde(default)]
    pub arguments: String,
}

/// A tool offered to the model: OpenAI's function tool, or a provider's
/// own (Anthropic's `{"type": "web_search_20250305", "name": …}`, Gemini's
/// `{"googleSearch": {}}`), its fields kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tool {
    /// `function`, a provider's tool type, or empty for a tool written
    /// without one (Gemini's `{"googleSearch": {}}`).
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Always there for a `function` tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool as written, before it is told which kind it is.
struct ToolWire {
    kind: Option<String>,
    function: Option<FunctionDefinition>,
    cache_control: Option<Value>,
    extra: Map<String, Value>,
}

deserialize_keeping_extra!(ToolWire,
    required {}
    defaults {}
    optional { kind: "type", function: "function", cache_control: "cache_control" }
);

impl<'de> Deserialize<'de> for Tool {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = ToolWire::deserialize(d)?;
        // `"type": ""` says no more than no type.
        let kind = match (w.kind.filter(|k| !k.is_empty()), &w.function) {
            (Some(k), None) if k == "function" => {
                return Err(serde::de::Error::missing_field("function"));
            }
            (Some(k), _) => k,
            (None, Some(_)) => function_type(),
            (None, None) if w.extra.is_empty() => {
                return Err(serde::de::Error::missing_field("function"));
            }
            (None, None) => String::new(),
        };
        Ok(Tool {
            kind,
            function: w.function,
            cache_control: w.cache_control,
            extra: w.extra,
        })
    }
}

impl Tool {
    /// The function of a `function` tool.
    pub fn as_function(&self) -> Option<&FunctionDefinition> {
        self.function.as_ref().filter(|_| self.kind == "function")
    }

    /// What kind of tool it is, to name in an error: its `type`, or for
    /// a tool written without one, its first member (`googleSearch`).
    pub fn kind_name(&self) -> &str {
        if self.kind.is_empty() {
            self.extra.keys().next().map_or("", String::as_str)
        } else {
            &self.kind
        }
    }

    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.push(b'{');
        // A comma before every member but the first, whichever that is.
        let mut first = true;
        let mut key = |out: &mut Vec<u8>, key: &[u8]| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            out.extend_from_slice(key);
        };
        if !self.kind.is_empty() {
            key(out, b"\"type\":");
            json::write_str(out, &self.kind);
        }
        if let Some(f) = &self.function {
            key(out, b"\"function\":{\"name\":");
            json::write_str(out, &f.name);
            json::write_opt_str(out, b",\"description\":", f.description.as_deref());
            json::write_opt_tree(out, b",\"parameters\":", f.parameters.as_ref())?;
            json::write_opt_value(out, b",\"strict\":", f.strict.as_ref())?;
            out.push(b'}');
        }
        if let Some(c) = &self.cache_control {
            key(out, b"\"cache_control\":");
            json::write_tree(out, c)?;
        }
        for (k, v) in &self.extra {
            key(out, b"");
            json::write_str(out, k);
            out.push(b':');
            json::write_tree(out, v)?;
        }
        out.push(b'}');
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `"auto" | "none" | "required"` or `{"type":"function","function":{"name"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(String),
    Named(NamedToolChoice),
}

impl ToolChoice {
    /// The function a named choice forces, if any.
    pub fn function_name(&self) -> Option<&str> {
        match self {
            ToolChoice::Named(n) => Some(&n.function.name),
            ToolChoice::Mode(_) => None,
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, ToolChoice::Mode(m) if m == "none")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedToolChoice {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: NamedFunction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedFunction {
    pub name: String,
}

// ---- responses ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionResponse {
    pub id: String,
    #[serde(default = "completion_object")]
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn completion_object() -> String {
    "chat.completion".to_owned()
}

/// Every translated answer (Anthropic, Gemini, Bedrock) is written this
/// way; `serde_json::to_vec` writes the same bytes (tested).
impl json::WriteJson for ChatCompletionResponse {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"id\":");
        json::write_str(out, &self.id);
        out.extend_from_slice(b",\"object\":");
        json::write_str(out, &self.object);
        out.extend_from_slice(b",\"created\":");
        json::write_u64(out, self.created);
        out.extend_from_slice(b",\"model\":");
        json::write_str(out, &self.model);
        out.extend_from_slice(b",\"choices\":");
        json::write_list(out, &self.choices, |out, c| c.write_json(out))?;
        if let Some(usage) = &self.usage {
            out.extend_from_slice(b",\"usage\":");
            usage.write_json(out);
        }
        json::write_opt_str(
            out,
            b",\"system_fingerprint\":",
            self.system_fingerprint.as_deref(),
        );
        json::write_entries(out, &self.extra)?;
        out.push(b'}');
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub index: u32,
    pub message: ResponseMessage,
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub logprobs: Option<Value>,
}

impl Choice {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"index\":");
        json::write_u64(out, self.index.into());
        out.extend_from_slice(b",\"message\":");
        self.message.write_json(out)?;
        out.extend_from_slice(b",\"finish_reason\":");
        match &self.finish_reason {
            Some(reason) => json::write_str(out, reason),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"logprobs\":");
        match &self.logprobs {
            Some(logprobs) => json::write_tree(out, logprobs)?,
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    pub role: String,
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResponseMessage {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"role\":");
        json::write_str(out, &self.role);
        out.extend_from_slice(b",\"content\":");
        match &self.content {
            Some(text) => json::write_str(out, text),
            None => out.extend_from_slice(b"null"),
        }
        write_tool_calls(out, self.tool_calls.as_deref())?;
        write_reasoning(
            out,
            self.reasoning_content.as_deref(),
            self.thinking_blocks.as_deref(),
        )?;
        json::write_opt_str(out, b",\"refusal\":", self.refusal.as_deref());
        json::write_entries(out, &self.extra)?;
        out.push(b'}');
        Ok(())
    }
}

/// A message's `tool_calls`, if it has them.
fn write_tool_calls(out: &mut Vec<u8>, calls: Option<&[ToolCall]>) -> serde_json::Result<()> {
    match calls {
        Some(calls) => {
            out.extend_from_slice(b",\"tool_calls\":");
            json::write_list(out, calls, |out, c| c.write_json(out))
        }
        None => Ok(()),
    }
}

/// A message's `reasoning_content` and `thinking_blocks`, those it has.
fn write_reasoning(
    out: &mut Vec<u8>,
    text: Option<&str>,
    blocks: Option<&[Value]>,
) -> serde_json::Result<()> {
    json::write_opt_str(out, b",\"reasoning_content\":", text);
    if let Some(blocks) = blocks {
        out.extend_from_slice(b",\"thinking_blocks\":");
        json::write_tree_list(out, blocks)?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    #[serde(default = "chunk_object")]
    pub object: String,
    pub created: u64,
    pub model: String,
    /// Always present; empty on the final usage chunk (clients index it).
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
}

fn chunk_object() -> String {
    "chat.completion.chunk".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<Value>>,
    /// Images the model made (Gemini's image models), as LiteLLM carries
    /// them: `{"type": "image_url", "image_url": {"url": "data:…"}, "index": n}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<Value>>,
    /// What the provider sent that has no OpenAI field, as LiteLLM carries
    /// it: Claude's `citation`s and its server tools' calls and results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_specific_fields: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
    /// e.g. Gemini's `thought_signature`, as LiteLLM carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_specific_fields: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `ContentPart` was: the untagged derive, serde's own verdict.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum DerivedPart {
        Known(KnownPart),
        Other(Value),
    }

    #[test]
    fn a_part_reads_as_the_untagged_derive_reads_it() {
        use serde_json::json;
        let absent = json!("(absent)"); // a marker: leave the member out
        let future = json!([1, {"a": null}]);
        let kinds = [
            json!("text"),
            json!("image_url"),
            json!("input_audio"),
            json!("file"),
            json!("refusal"),
            json!(5),
            Value::Null,
            absent.clone(),
        ];
        let texts = [
            absent.clone(),
            json!("hi"),
            json!("é \"q\"\n\\"),
            json!(5),
            json!({}),
        ];
        let caches = [
            absent.clone(),
            json!(null),
            json!({"type": "ephemeral"}),
            json!("x"),
        ];
        let images = [
            absent.clone(),
            json!("data:image/png;base64,iVBO"),
            json!({"url": "u"}),
            json!({"url": "u", "detail": "low", "format": null, "x": 1}),
            json!({"url": 5}),
            json!({"detail": "low"}),
            json!({"url": "u", "detail": 3}),
            json!(null),
            json!([1]),
        ];
        let payloads = [
            absent.clone(),
            json!({"data": "UklG", "format": "wav"}),
            json!(null),
        ];
        let mut n = 0;
        for kind in &kinds {
            for text in &texts {
                for cache in &caches {
                    for image in &images {
                        for payload in &payloads {
                            for extra in [false, true] {
                                for type_last in [false, true] {
                                    let mut members = vec![];
                                    if !type_last && kind != &absent {
                                        members.push(("type", kind));
                                    }
                                    if text != &absent {
                                        members.push(("text", text));
                                    }
                                    if extra {
                                        members.push(("x_future", &future));
                                    }
                                    if cache != &absent {
                                        members.push(("cache_control", cache));
                                    }
                                    if image != &absent {
                                        members.push(("image_url", image));
                                    }
                                    if payload != &absent {
                                        members.push(("input_audio", payload));
                                        members.push(("file", payload));
                                    }
                                    if type_last && kind != &absent {
                                        members.push(("type", kind));
                                    }
                                    let body = format!(
                                        "{{{}}}",
                                        members
                                            .iter()
                                            .map(|(k, v)| format!("\"{k}\":{v}"))
                                            .collect::<Vec<_>>()
                                            .join(",")
                                    );
                                    let ours: ContentPart = serde_json::from_str(&body).unwrap();
                                    let theirs =
                                        match serde_json::from_str::<DerivedPart>(&body).unwrap() {
                                            DerivedPart::Known(k) => ContentPart::Known(k),
                                            DerivedPart::Other(v) => ContentPart::Other(v),
                                        };
                                    assert_eq!(ours, theirs, "{body}");
                                    n += matches!(ours, ContentPart::Known(_)) as usize;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(n > 1000, "only {n} known parts among the cases");
        for other in [
            "\"hello\"",
            "5",
            "-2",
            "1.5",
            "true",
            "null",
            "[1,{\"type\":\"text\"}]",
            "{}",
        ] {
            let ours: ContentPart = serde_json::from_str(other).unwrap();
            assert_eq!(
                ours,
                ContentPart::Other(serde_json::from_str(other).unwrap()),
                "{other}"
            );
        }
        // Errors in the JSON itself are errors, not parts.
        assert!(serde_json::from_str::<ContentPart>(r#"{"type":"text","text":"x""#).is_err());
        assert!(serde_json::from_str::<ContentPart>(r#"{"type":"text","text":"\x"}"#).is_err());
    }

    const ROO_CODE_REQUEST: &str = r#"{
        "model": "gpt-4o", "max_tokens": 8192, "temperature": 0,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are Roo.", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [
                {"type": "text", "text": "what is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a.rs\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "fn main() {}"}
        ],
        "stream": true, "stream_options": {"include_usage": true},
        "tools": [{"type": "function", "function": {"name": "read_file", "description": "Read a file",
                   "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
                   "strict": true}}],
        "tool_choice": "auto",
        "some_future_field": {"kept": true}
    }"#;

    #[test]
    fn parses_a_coding_agent_request_and_keeps_everything() {
        let req: ChatCompletionRequest = serde_json::from_str(ROO_CODE_REQUEST).unwrap();
        assert!(req.is_stream());
        assert!(req.include_usage());
        assert_eq!(req.max_output_tokens(), Some(8192));
        assert_eq!(req.messages.len(), 4);
        let MessageContent::Parts(parts) = req.messages[0].content.as_ref().unwrap() else {
            panic!("system content should be parts")
        };
        assert!(matches!(
            &parts[0],
            ContentPart::Known(KnownPart::Text {
                cache_control: Some(_),
                ..
            })
        ));
        assert_eq!(
            req.tools.as_ref().unwrap()[0].as_function().unwrap().strict,
            Some(true)
        );
        assert_eq!(req.extra["some_future_field"]["kept"], true);

        assert_eq!(req.temperature, Some(0.0));

        // A round trip is lossless (numbers compare as JSON values, so the
        // integer temperature is set aside: it comes back as 0.0).
        let mut again: Value = serde_json::to_value(&req).unwrap();
        let mut original: Value = serde_json::from_str(ROO_CODE_REQUEST).unwrap();
        again.as_object_mut().unwrap().remove("temperature");
        original.as_object_mut().unwrap().remove("temperature");
        assert_eq!(again, original);
    }

    #[test]
    fn tools_are_functions_or_a_providers_own() {
        let tools = |v: Value| {
            serde_json::from_value::<ChatCompletionRequest>(
                serde_json::json!({"model": "m", "messages": [], "tools": v}),
            )
            .map(|r| r.tools.unwrap())
        };
        let t = tools(serde_json::json!([
            {"type": "", "function": {"name": "f"}},
            {"type": "web_search_20250305", "name": "web_search"},
            {"googleSearch": {}}
        ]))
        .unwrap();
        assert_eq!(t[0].kind, "function");
        assert_eq!(t[0].as_function().unwrap().name, "f");
        assert_eq!(
            (t[1].kind.as_str(), t[1].as_function()),
            ("web_search_20250305", None)
        );
        assert_eq!(t[1].extra["name"], "web_search");
        assert_eq!((t[2].kind.as_str(), t[2].as_function()), ("", None));
        assert_eq!(t[2].extra["googleSearch"], serde_json::json!({}));
        // A function tool needs its function; a tool needs something.
        for bad in [
            serde_json::json!([{"type": "function"}]),
            serde_json::json!([{}]),
            serde_json::json!([{"type": "function", "name": "f"}]),
        ] {
            let e = tools(bad.clone()).unwrap_err().to_string();
            assert!(e.contains("missing field `function`"), "{bad}: {e}");
        }
    }

    /// A request written by hand is what serde's derive writes, byte for
    /// byte: every field, every kind of part, strings that need escaping.
    #[test]
    fn a_written_request_is_the_json_serde_writes() {
        let requests = [
            ROO_CODE_REQUEST,
            r#"{"model":"m","messages":[{"role":"developer","content":"be \"terse\"\n"},
                {"role":"user","content":[{"type":"text","text":"a\tb","cache_control":{"type":"ephemeral","ttl":"1h"}},
                  {"type":"image_url","image_url":"https://x/y.png"},
                  {"type":"input_audio","input_audio":{"data":"AAA","format":"wav"}},
                  {"type":"file","file":{"file_id":"f1"}},{"type":"video_url","video_url":{"url":"v"}}],
                 "name":"ann","cache_control":{"type":"ephemeral"}},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
                  "function":{"name":"f","arguments":"{}"},"provider_specific_fields":{"thought_signature":"s"}}],
                 "reasoning_content":"hmm","thinking_blocks":[{"type":"thinking","thinking":"t","signature":"s"}],
                 "odd":[1,2]},
                {"role":"function","name":"f","content":"r"}],
              "max_tokens":5,"max_completion_tokens":6,"temperature":0.7,"top_p":1,"n":1,"stop":"END",
              "presence_penalty":-0.5,"frequency_penalty":0.25,"seed":-42,"user":"u\u0001",
              "tools":[{"type":"function","function":{"name":"g"},"cache_control":{"type":"ephemeral"}},
                       {"type":"function","function":{"name":"h","strict":false,"parameters":{}},"x":true}],
              "tool_choice":{"type":"function","function":{"name":"g"}},"parallel_tool_calls":false,
              "response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"}}},
              "reasoning_effort":"low","stream":false,"stream_options":{"include_usage":false,"more":1},
              "metadata":{"k":"v"}}"#,
            r#"{"model":"","messages":[],"stop":["a","b"],"tool_choice":"required"}"#,
            // Tools that are not functions: a provider's own, typed or not.
            r#"{"model":"m","messages":[],"tools":[{"googleSearch":{}},
                {"type":"web_search_20250305","name":"web_search","max_uses":3},
                {"cache_control":{"type":"ephemeral"},"urlContext":{}},
                {"function":{"name":"f"}}]}"#,
        ];
        for text in requests {
            let req: ChatCompletionRequest = serde_json::from_str(text).unwrap();
            let want = serde_json::to_vec(&req).unwrap();
            assert_eq!(
                json::written_body(&req, 0).unwrap(),
                want,
                "{}",
                String::from_utf8_lossy(&want)
            );
        }
    }

    #[test]
    fn unknown_content_parts_survive() {
        let msg: ChatMessage = serde_json::from_str(
            r#"{"role":"user","content":[{"type":"video_url","video_url":{"url":"x"}}]}"#,
        )
        .unwrap();
        let MessageContent::Parts(parts) = msg.content.unwrap() else {
            panic!()
        };
        assert!(matches!(parts[0], ContentPart::Other(_)));
    }

    /// The written answer is what serde's derive writes, byte for byte, for
    /// answers that use every field: tool calls with extra fields, null
    /// content, reasoning, thinking blocks, a refusal, logprobs, several
    /// choices, usage with and without details, unknown fields at every
    /// level, and strings that need escaping.
    #[test]
    fn a_written_answer_is_the_json_serde_writes() {
        let answers = [
            r#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o",
                "choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"there\"\n\t\\ é 🦀 \u2028 \u0001"},
                "finish_reason":"stop","logprobs":null}],
                "usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}"#,
            r#"{"id":"msg_\"odd\"","object":"chat.completion","created":0,"model":"claude",
                "choices":[{"index":0,"message":{"role":"assistant","content":null,
                  "tool_calls":[
                    {"id":"call_1","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"a.rs\"}"},
                     "provider_specific_fields":{"thought_signature":"sig=="}},
                    {"id":"call_2","type":"function","function":{"name":"ls","arguments":""}}],
                  "reasoning_content":"Let me think\nabout it.",
                  "thinking_blocks":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"redacted_thinking","data":"xx"}],
                  "refusal":"no","provider_specific_fields":{"citations":[1,2.5,null,true]}},
                "finish_reason":"tool_calls","logprobs":{"content":[]}},
                {"index":1,"message":{"role":"assistant","content":""},"finish_reason":null,"logprobs":null}],
                "usage":{"prompt_tokens":100,"completion_tokens":5,"total_tokens":105,
                  "prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0,"cache_write_tokens":7},
                  "completion_tokens_details":{"reasoning_tokens":3,"audio_tokens":1,"accepted_prediction_tokens":2,"rejected_prediction_tokens":4},
                  "cache_read_input_tokens":64,"cache_creation_input_tokens":7},
                "system_fingerprint":"fp_1","service_tier":"default","odd \"key\"\n":{"a":[]}}"#,
            r#"{"id":"x","object":"chat.completion","created":18446744073709551615,"model":"m","choices":[],
                "usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,
                  "prompt_tokens_details":{},"completion_tokens_details":{"rejected_prediction_tokens":1}}}"#,
            r#"{"id":"","created":5,"model":"","choices":[{"index":4294967295,"message":{"role":"assistant","content":"x"},"finish_reason":"length"}]}"#,
        ];
        for answer in answers {
            let resp: ChatCompletionResponse = serde_json::from_str(answer).unwrap();
            let want = serde_json::to_vec(&resp).unwrap();
            for size in [0, 64, 4096] {
                assert_eq!(
                    json::written_body(&resp, size).unwrap(),
                    want,
                    "{}",
                    String::from_utf8_lossy(&want)
                );
            }
        }
    }

    #[test]
    fn usage_chunk_serializes_empty_choices() {
        let chunk = ChatCompletionChunk {
            id: "c".into(),
            object: chunk_object(),
            created: 1,
            model: "m".into(),
            choices: vec![],
            usage: Some(Usage::default()),
            system_fingerprint: None,
        };
        let v = serde_json::to_value(&chunk).unwrap();
        assert_eq!(v["choices"], serde_json::json!([]));
    }
}
