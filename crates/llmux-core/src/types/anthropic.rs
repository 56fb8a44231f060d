//! Anthropic Messages API wire types, shared by both directions: llmux
//! calling Claude (`providers::anthropic`) and clients calling llmux's
//! `/v1/messages` (`inbound::anthropic`). Unknown fields are kept.

use crate::types::usage::ServerToolUse;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

pub const API_VERSION: &str = "2023-06-01";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Content>,
    /// Required by the API; optional here so a missing value gets a clear 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

deserialize_keeping_extra!(MessagesRequest,
    required { model: "model", messages: "messages" }
    defaults {}
    optional {
        system: "system",
        max_tokens: "max_tokens",
        metadata: "metadata",
        stop_sequences: "stop_sequences",
        stream: "stream",
        temperature: "temperature",
        top_p: "top_p",
        top_k: "top_k",
        tools: "tools",
        tool_choice: "tool_choice",
        thinking: "thinking",
    }
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `user` or `assistant` (`system` accepted inbound, as Claude Code
    /// clients sometimes send it).
    pub role: String,
    pub content: Content,
}

/// A string, or a list of blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

/// Read by what the JSON holds, a string or a list: an untagged derive
/// would copy the whole content into serde's buffer first and read it
/// again from there.
impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of content blocks")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Content, E> {
                Ok(Content::Text(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Content, E> {
                Ok(Content::Text(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(b) = seq.next_element()? {
                    blocks.push(b);
                }
                Ok(Content::Blocks(blocks))
            }
        }
        d.deserialize_any(V)
    }
}

impl Content {
    pub fn into_blocks(self) -> Vec<Block> {
        match self {
            Content::Text(t) => vec![Block::text(t)],
            Content::Blocks(b) => b,
        }
    }
}

/// A content block of a kind llmux understands, or of any other kind,
/// kept verbatim.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Block {
    Known(KnownBlock),
    Other(Value),
}

/// Text, tool calls and thinking, the blocks of nearly every message, are
/// read straight into their fields when `type` comes first, as Anthropic
/// and its SDKs write it (an untagged derive buffered every block). Any
/// other block, or `type` later in the object, is read into a JSON object
/// first and then as the kind it names. A block of a kind llmux knows whose
/// fields do not read (`"text": 5`) is an error, whichever way it was read;
/// a kind it does not know is kept as written. A block that is not an
/// object is an error.
impl<'de> Deserialize<'de> for Block {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Block;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a content block (an object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Block, A::Error> {
                let Some(first) = map.next_key::<String>()? else {
                    return Ok(Block::Other(Value::Object(Map::new())));
                };
                let first_value: Value = map.next_value()?;
                if first == "type" {
                    let rest = de::value::MapAccessDeserializer::new(&mut map);
                    match first_value.as_str() {
                        Some("text") => return TextRest::deserialize(rest).map(Block::from),
                        Some("tool_use") => return ToolUseRest::deserialize(rest).map(Block::from),
                        Some("thinking") => {
                            return ThinkingRest::deserialize(rest).map(Block::from);
                        }
                        Some("tool_result") => {
                            return ToolResultRest::deserialize(rest).map(Block::from);
                        }
                        Some("image") => return ImageRest::deserialize(rest).map(Block::from),
                        Some("document") => {
                            return DocumentRest::deserialize(rest).map(Block::from);
                        }
                        _ => {}
                    }
                }
                let mut obj = Map::new();
                obj.insert(first, first_value);
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    obj.insert(k, v);
                }
                let v = Value::Object(obj);
                let known = v
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| KNOWN_BLOCKS.contains(&t));
                if known {
                    KnownBlock::deserialize(&v)
                        .map(Block::Known)
                        .map_err(de::Error::custom)
                } else {
                    Ok(Block::Other(v))
                }
            }
        }
        d.deserialize_map(V)
    }
}

/// The `type`s of [`KnownBlock`].
const KNOWN_BLOCKS: &[&str] = &[
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
];

/// The fields after `type` of the blocks read directly (see [`Block`]);
/// the same as their [`KnownBlock`] variants'.
#[derive(Deserialize)]
struct TextRest {
    text: String,
    #[serde(default)]
    cache_control: Option<Value>,
    #[serde(default)]
    citations: Option<Value>,
}

#[derive(Deserialize)]
struct ToolUseRest {
    id: String,
    name: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    cache_control: Option<Value>,
}

#[derive(Deserialize)]
struct ThinkingRest {
    thinking: String,
    #[serde(default)]
    signature: String,
}

/// A tool's answer: in a coding agent's conversation, most of its bytes
/// (files read, commands' output).
#[derive(Deserialize)]
struct ToolResultRest {
    tool_use_id: String,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    is_error: Option<bool>,
    #[serde(default)]
    cache_control: Option<Value>,
}

/// An image, its base64 data read once rather than into a JSON object and
/// copied out of it.
#[derive(Deserialize)]
struct ImageRest {
    source: Value,
    #[serde(default)]
    cache_control: Option<Value>,
}

#[derive(Deserialize)]
struct DocumentRest {
    source: Value,
    #[serde(default)]
    cache_control: Option<Value>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    citations: Option<Value>,
}

impl From<ToolResultRest> for Block {
    fn from(r: ToolResultRest) -> Block {
        Block::Known(KnownBlock::ToolResult {
            tool_use_id: r.tool_use_id,
            content: r.content,
            is_error: r.is_error,
            cache_control: r.cache_control,
        })
    }
}

impl From<ImageRest> for Block {
    fn from(r: ImageRest) -> Block {
        Block::Known(KnownBlock::Image {
            source: r.source,
            cache_control: r.cache_control,
        })
    }
}

impl From<DocumentRest> for Block {
    fn from(r: DocumentRest) -> Block {
        Block::Known(KnownBlock::Document {
            source: r.source,
            cache_control: r.cache_control,
            title: r.title,
            context: r.context,
            citations: r.citations,
        })
    }
}

impl From<TextRest> for Block {
    fn from(r: TextRest) -> Block {
        Block::Known(KnownBlock::Text {
            text: r.text,
            cache_control: r.cache_control,
            citations: r.citations,
        })
    }
}

impl From<ToolUseRest> for Block {
    fn from(r: ToolUseRest) -> Block {
        Block::Known(KnownBlock::ToolUse {
            id: r.id,
            name: r.name,
            input: r.input,
            cache_control: r.cache_control,
        })
    }
}

impl From<ThinkingRest> for Block {
    fn from(r: ThinkingRest) -> Block {
        Block::Known(KnownBlock::Thinking {
            thinking: r.thinking,
            signature: r.signature,
        })
    }
}

impl Block {
    pub fn text(text: impl Into<String>) -> Block {
        Block::Known(KnownBlock::Text {
            text: text.into(),
            cache_control: None,
            citations: None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KnownBlock {
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        citations: Option<Value>,
    },
    Image {
        source: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    Document {
        source: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        citations: Option<Value>,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Content>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
    /// Server and client tools with a version (`computer_20250124`, …).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

deserialize_keeping_extra!(Tool,
    required { name: "name" }
    defaults {}
    optional {
        description: "description",
        input_schema: "input_schema",
        cache_control: "cache_control",
        kind: "type",
    }
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolChoice {
    /// `auto`, `any`, `tool`, `none`
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    pub id: String,
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    #[serde(default = "assistant_role")]
    pub role: String,
    pub model: String,
    pub content: Vec<Block>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(default)]
    pub usage: AnthropicUsage,
}

fn message_type() -> String {
    "message".to_owned()
}

fn assistant_role() -> String {
    "assistant".to_owned()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Web searches and fetches Claude ran (its server tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_tool_use: Option<ServerToolUse>,
}

impl AnthropicUsage {
    /// OpenAI's view: `prompt_tokens` includes cache reads and writes.
    pub fn to_openai(&self) -> crate::types::Usage {
        use crate::types::usage::PromptTokensDetails;
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        let prompt = self.input_tokens + read + written;
        crate::types::Usage {
            prompt_tokens: prompt,
            completion_tokens: self.output_tokens,
            total_tokens: prompt + self.output_tokens,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(read),
                cache_write_tokens: (written > 0).then_some(written),
                ..Default::default()
            }),
            completion_tokens_details: None,
            cache_read_input_tokens: Some(read),
            cache_creation_input_tokens: Some(written),
            prompt_cache_hit_tokens: None,
            cost: None,
            server_tool_use: self.server_tool_use,
        }
    }

    /// Anthropic's view of OpenAI usage: `input_tokens` excludes the cache.
    pub fn from_openai(u: &crate::types::Usage) -> AnthropicUsage {
        let read = u.cached_tokens();
        let written = u.cache_write_tokens();
        AnthropicUsage {
            input_tokens: u.prompt_tokens.saturating_sub(read + written),
            output_tokens: u.completion_tokens,
            cache_creation_input_tokens: Some(written),
            cache_read_input_tokens: Some(read),
            server_tool_use: u.server_tool_use,
        }
    }

    /// Takes in what a `message_delta` says: its counts are the totals so
    /// far, and a count it leaves out keeps its value.
    pub fn update(&mut self, u: DeltaUsage) {
        self.output_tokens = u.output_tokens;
        if let Some(v) = u.input_tokens {
            self.input_tokens = v;
        }
        if u.cache_read_input_tokens.is_some() {
            self.cache_read_input_tokens = u.cache_read_input_tokens;
        }
        if u.cache_creation_input_tokens.is_some() {
            self.cache_creation_input_tokens = u.cache_creation_input_tokens;
        }
        if u.server_tool_use.is_some() {
            self.server_tool_use = u.server_tool_use;
        }
    }
}

/// A streaming event (`data:` of an SSE event; its `event:` is the same name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        message: MessagesResponse,
    },
    ContentBlockStart {
        index: u32,
        content_block: Block,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<DeltaUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorBody,
    },
}

impl StreamEvent {
    /// An event's `data`. The SSE `event:` name, which the API sets to the
    /// data's `type`, picks the variant directly, sparing serde's buffering
    /// of an internally tagged enum (4 k instructions an event); the `type`
    /// must still say the same. No name, a name of no known event, or
    /// anything unexpected takes the tagged parse.
    pub fn parse(name: Option<&[u8]>, data: &str) -> serde_json::Result<StreamEvent> {
        let fast = match name {
            Some(b"content_block_delta") => text_delta(data).or_else(|| {
                serde_json::from_str::<FastDelta>(data).ok().and_then(|d| {
                    let index = d.index;
                    Some(StreamEvent::ContentBlockDelta {
                        index,
                        delta: d.into_delta()?,
                    })
                })
            }),
            Some(b"content_block_stop") => serde_json::from_str::<FastStop>(data)
                .ok()
                .filter(|s| s.kind == FastKind::ContentBlockStop)
                .map(|s| StreamEvent::ContentBlockStop { index: s.index }),
            Some(b"message_start") => serde_json::from_str::<FastMessageStart>(data)
                .ok()
                .filter(|s| s.kind == FastKind::MessageStart)
                .map(|s| StreamEvent::MessageStart { message: s.message }),
            Some(b"content_block_start") => serde_json::from_str::<FastBlockStart>(data)
                .ok()
                .filter(|s| s.kind == FastKind::ContentBlockStart)
                .map(|s| StreamEvent::ContentBlockStart {
                    index: s.index,
                    content_block: s.content_block,
                }),
            Some(b"message_delta") => serde_json::from_str::<FastMessageDelta>(data)
                .ok()
                .filter(|s| s.kind == FastKind::MessageDelta)
                .map(|s| StreamEvent::MessageDelta {
                    delta: s.delta,
                    usage: s.usage,
                }),
            Some(b"ping") => serde_json::from_str::<FastUnit>(data)
                .ok()
                .filter(|s| s.kind == FastKind::Ping)
                .map(|_| StreamEvent::Ping),
            Some(b"message_stop") => serde_json::from_str::<FastUnit>(data)
                .ok()
                .filter(|s| s.kind == FastKind::MessageStop)
                .map(|_| StreamEvent::MessageStop),
            _ => None,
        };
        match fast {
            Some(ev) => Ok(ev),
            None => serde_json::from_str(data),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
        }
    }
}

/// A piece of text, in the exact form Anthropic writes it:
/// `{"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"…"}}`.
/// Most events of a stream are this one; read by its fixed prefix and suffix
/// and the one string between, it costs a tenth of a struct's reading. Any
/// other form (spacing, key order, another delta) is `None`, for the
/// general reading.
fn text_delta(data: &str) -> Option<StreamEvent> {
    let (index, string) = text_delta_parts(data)?;
    // Exactly one JSON string, escapes and all, or nothing.
    let text = serde_json::from_str::<String>(string).ok()?;
    Some(StreamEvent::ContentBlockDelta {
        index,
        delta: BlockDelta::TextDelta { text },
    })
}

/// The kinds of delta [`raw_delta`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawDeltaKind {
    /// `text_delta`: a piece of a text block.
    Text,
    /// `input_json_delta`: a piece of a tool call's arguments.
    InputJson,
}

/// `,"delta":{"type":"text_delta","text":`, after the index.
const TEXT_DELTA: &str = r#","delta":{"type":"text_delta","text":"#;
/// `,"delta":{"type":"input_json_delta","partial_json":`, after the index.
const JSON_DELTA: &str = r#","delta":{"type":"input_json_delta","partial_json":"#;

/// A text or tool-argument delta's block index, its kind, and its string
/// as the JSON literal it was written as (quotes and escapes kept), for a
/// translator that copies the string into its own JSON instead of decoding
/// and encoding it again. Only for the canonical forms,
/// `{"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"…"}}`
/// and the same with `"input_json_delta","partial_json":"…"`, and only
/// when the literal holds no `\u` escape: one of those may be half of a
/// surrogate pair, which the decoding would refuse; a literal with one
/// takes the decoding path.
pub fn raw_delta(data: &str) -> Option<(u32, RawDeltaKind, &str)> {
    let (index, rest) = delta_index(data)?;
    let (kind, tail) = if let Some(tail) = rest.strip_prefix(TEXT_DELTA) {
        (RawDeltaKind::Text, tail)
    } else {
        (RawDeltaKind::InputJson, rest.strip_prefix(JSON_DELTA)?)
    };
    let literal = tail.strip_suffix("}}")?;
    crate::json::is_plain_str_literal(literal).then_some((index, kind, literal))
}

/// The index and the text's JSON literal of a text delta in its canonical
/// form; the literal is not checked.
fn text_delta_parts(data: &str) -> Option<(u32, &str)> {
    let (index, rest) = delta_index(data)?;
    let string = rest.strip_prefix(TEXT_DELTA)?.strip_suffix("}}")?;
    Some((index, string))
}

/// The block index of a `content_block_delta` in its canonical form, and
/// what follows the index.
fn delta_index(data: &str) -> Option<(u32, &str)> {
    let rest = data.strip_prefix(r#"{"type":"content_block_delta","index":"#)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    // JSON numbers have no leading zeros.
    if digits == 0 || digits > 9 || (digits > 1 && rest.starts_with('0')) {
        return None;
    }
    let index = rest[..digits].parse().ok()?;
    Some((index, &rest[digits..]))
}

/// `content_block_delta` read as a plain struct (see [`StreamEvent::parse`]).
#[derive(Deserialize)]
struct FastDelta {
    #[serde(rename = "type")]
    kind: FastKind,
    index: u32,
    delta: FastBlockDelta,
}

/// The `type` of the events read as plain structs.
#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum FastKind {
    MessageStart,
    ContentBlockStart,
    ContentBlockDelta,
    ContentBlockStop,
    MessageDelta,
    MessageStop,
    Ping,
}

#[derive(Deserialize)]
struct FastStop {
    #[serde(rename = "type")]
    kind: FastKind,
    index: u32,
}

#[derive(Deserialize)]
struct FastMessageStart {
    #[serde(rename = "type")]
    kind: FastKind,
    message: MessagesResponse,
}

#[derive(Deserialize)]
struct FastBlockStart {
    #[serde(rename = "type")]
    kind: FastKind,
    index: u32,
    content_block: Block,
}

#[derive(Deserialize)]
struct FastMessageDelta {
    #[serde(rename = "type")]
    kind: FastKind,
    delta: MessageDeltaBody,
    #[serde(default)]
    usage: Option<DeltaUsage>,
}

/// `ping` and `message_stop`: the `type` alone.
#[derive(Deserialize)]
struct FastUnit {
    #[serde(rename = "type")]
    kind: FastKind,
}

/// A `BlockDelta` with every variant's field optional: the variant is the
/// `type`, its field must be there.
#[derive(Deserialize)]
struct FastBlockDelta {
    #[serde(rename = "type")]
    kind: DeltaKind,
    text: Option<String>,
    partial_json: Option<String>,
    thinking: Option<String>,
    signature: Option<String>,
    citation: Option<Value>,
}

/// A delta's `type`: `text_delta`, `input_json_delta`, …
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DeltaKind {
    #[serde(rename = "text_delta")]
    Text,
    #[serde(rename = "input_json_delta")]
    InputJson,
    #[serde(rename = "thinking_delta")]
    Thinking,
    #[serde(rename = "signature_delta")]
    Signature,
    #[serde(rename = "citations_delta")]
    Citations,
}

impl FastDelta {
    fn into_delta(self) -> Option<BlockDelta> {
        if self.kind != FastKind::ContentBlockDelta {
            return None;
        }
        let d = self.delta;
        Some(match d.kind {
            DeltaKind::Text => BlockDelta::TextDelta { text: d.text? },
            DeltaKind::InputJson => BlockDelta::InputJsonDelta {
                partial_json: d.partial_json?,
            },
            DeltaKind::Thinking => BlockDelta::ThinkingDelta {
                thinking: d.thinking?,
            },
            DeltaKind::Signature => BlockDelta::SignatureDelta {
                signature: d.signature?,
            },
            DeltaKind::Citations => BlockDelta::CitationsDelta {
                citation: d.citation?,
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    TextDelta { text: String },
    InputJsonDelta { partial_json: String },
    ThinkingDelta { thinking: String },
    SignatureDelta { signature: String },
    CitationsDelta { citation: Value },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// `message_delta` usage: cumulative output tokens (and, from newer API
/// versions, the input counts again).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeltaUsage {
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_tool_use: Option<ServerToolUse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

/// Anthropic's error type for an HTTP status, for answers in its shape.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// An `ApiError` in Anthropic's shape: `{"type":"error","error":{…}}`.
pub fn error_json(e: &crate::types::ApiError) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": "error",
        "error": {"type": error_type_for_status(e.status), "message": e.message},
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block read with `type` first, or later, or of a kind read only
    /// through the JSON object, is what reading it as a `KnownBlock`, or
    /// else keeping it as it is, gives; from text and from a `Value` alike.
    #[test]
    fn blocks_read_as_their_kind_or_as_written() {
        let cases = [
            r#"{"type":"text","text":"Hi \"there\"\n"}"#,
            r#"{"type":"text","text":"cached","cache_control":{"type":"ephemeral"},"citations":[{"x":1}]}"#,
            r#"{"text":"type later","type":"text"}"#,
            r#"{"type":"tool_use","id":"toolu_1","name":"read","input":{"path":"a"}}"#,
            r#"{"type":"tool_use","id":"toolu_2","name":"noinput"}"#,
            r#"{"id":"toolu_3","type":"tool_use","name":"f","input":{}}"#,
            r#"{"type":"thinking","thinking":"hmm","signature":"EqQB"}"#,
            r#"{"type":"thinking","thinking":"unsigned"}"#,
            r#"{"type":"redacted_thinking","data":"opaque"}"#,
            r#"{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}}"#,
            r#"{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"A"}],"is_error":false}"#,
            r#"{"type":"tool_result","tool_use_id":"toolu_1","content":"plain"}"#,
            r#"{"type":"tool_result","tool_use_id":"toolu_1","content":"out\n","is_error":true,"cache_control":{"type":"ephemeral"},"x":1}"#,
            r#"{"type":"tool_result","tool_use_id":"toolu_1"}"#,
            r#"{"type":"tool_result","tool_use_id":"toolu_1","content":null}"#,
            r#"{"tool_use_id":"toolu_1","type":"tool_result","content":"type later"}"#,
            r#"{"type":"image","source":{"type":"url","url":"https://x/y.png"},"cache_control":{"type":"ephemeral"}}"#,
            r#"{"type":"document","source":{"type":"text","media_type":"text/plain","data":"d"},"title":"t","context":"c","citations":{"enabled":true},"cache_control":{"type":"ephemeral"}}"#,
            r#"{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"}}"#,
            r#"{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"q"}}"#,
            r#"{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]}"#,
            r#"{"type":7}"#,
            r#"{"kind":"no type at all"}"#,
            r#"{}"#,
        ];
        for case in cases {
            let v: Value = serde_json::from_str(case).unwrap();
            let want = match KnownBlock::deserialize(&v) {
                Ok(k) => Block::Known(k),
                Err(_) => Block::Other(v.clone()),
            };
            let from_text: Block = serde_json::from_str(case).unwrap();
            assert_eq!(from_text, want, "{case}");
            let from_value: Block = serde_json::from_value(v).unwrap();
            assert_eq!(from_value, want, "{case}");
        }
        // A known kind whose fields do not read, `type` first or not, and
        // a block that is not an object, are errors, not blocks kept blind.
        for bad in [
            r#"{"type":"text","text":5}"#,
            r#"{"text":5,"type":"text"}"#,
            r#"{"source":{},"type":"tool_result"}"#,
            r#"{"type":"tool_use","id":"t","name":["f"]}"#,
            r#"{"type":"tool_result","content":"no id"}"#,
            r#"{"type":"tool_result","tool_use_id":"t","content":5}"#,
            r#"{"type":"tool_result","tool_use_id":"t","is_error":"yes"}"#,
            r#"{"type":"image"}"#,
            r#"{"type":"document","source":{},"title":5}"#,
            r#""a string""#,
        ] {
            assert!(serde_json::from_str::<Block>(bad).is_err(), "{bad}");
        }
        let text: Content = serde_json::from_str(r#""just text""#).unwrap();
        assert_eq!(text, Content::Text("just text".into()));
        let blocks: Content =
            serde_json::from_str(r#"[{"type":"text","text":"a"},{"type":"custom","z":1}]"#)
                .unwrap();
        assert_eq!(
            blocks,
            Content::Blocks(vec![
                Block::text("a"),
                Block::Other(serde_json::json!({"type": "custom", "z": 1}))
            ])
        );
        assert!(serde_json::from_str::<Content>("5").is_err());

        // KNOWN_BLOCKS names exactly KnownBlock's variants (serde lists
        // them when it meets another).
        let e = KnownBlock::deserialize(&serde_json::json!({"type": "x"}))
            .unwrap_err()
            .to_string();
        let listed: Vec<&str> = e
            .split("expected one of ")
            .nth(1)
            .unwrap()
            .split(", ")
            .map(|v| v.trim_matches('`'))
            .collect();
        assert_eq!(listed, KNOWN_BLOCKS, "{e}");
    }

    /// The event-name fast path reads every event exactly as the tagged
    /// parse does, and anything it does not expect falls back to it.
    #[test]
    fn stream_events_parse_the_same_with_and_without_their_name() {
        let cases = [
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \"there\"\n"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"signature_delta","signature":"EqQB"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"type":"char_location","cited_text":"x"}}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":3}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
            // Text in Anthropic's own form, read by `text_delta`.
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":12,"delta":{"type":"text_delta","text":"\u00e9\ud83e\udd80 é \\ \/"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}"#,
            ),
            // Near it but not it: the general reading decides.
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"x"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"y"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","extra":1}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}} "#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":99999999999,"delta":{"type":"text_delta","text":"x"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}"#,
            ),
            // Not what the name says, a field missing, an unknown delta:
            // the tagged parse decides.
            (
                "content_block_delta",
                r#"{"type":"content_block_stop","index":3}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"new_delta","x":1}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":"#,
            ),
            // Every other event, read by its name.
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":12,"output_tokens":1,"service_tier":"standard"}}}"#,
            ),
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","model":"m","content":[{"type":"text","text":"x"}]}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":58}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"input_tokens":10,"cache_read_input_tokens":4,"output_tokens":3}}"#,
            ),
            ("message_delta", r#"{"type":"message_delta","delta":{}}"#),
            ("ping", r#"{"type":"ping"}"#),
            ("ping", r#"{"type":"ping","extra":true}"#),
            (
                "message_stop",
                r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":1}}"#,
            ),
            // Named as one event, typed as another: the `type` decides.
            ("ping", r#"{"type":"message_stop"}"#),
            ("message_stop", r#"{"type":"ping"}"#),
            (
                "message_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"}}"#,
            ),
            ("message_delta", r#"{"type":"ping"}"#),
            // Missing or broken fields: the tagged parse's error.
            ("message_start", r#"{"type":"message_start"}"#),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":"x"}}"#,
            ),
            ("ping", r#"{"type":"pong"}"#),
            ("message_stop", r#"{"type":"message_stop""#),
            (
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
        ];
        for (name, data) in cases {
            let tagged = serde_json::from_str::<StreamEvent>(data);
            for parsed in [
                StreamEvent::parse(Some(name.as_bytes()), data),
                StreamEvent::parse(None, data),
            ] {
                match (&parsed, &tagged) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{data}"),
                    (Err(_), Err(_)) => {}
                    _ => panic!("{data}: {parsed:?} vs {tagged:?}"),
                }
            }
        }
        assert!(matches!(
            StreamEvent::parse(Some(b"content_block_delta"), cases[0].1),
            Ok(StreamEvent::ContentBlockDelta { index: 0, delta: BlockDelta::TextDelta { ref text } }) if text == "Hi \"there\"\n"
        ));
        assert!(matches!(
            StreamEvent::parse(
                Some(b"message_delta"),
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":58}}"#
            ),
            Ok(StreamEvent::MessageDelta {
                usage: Some(DeltaUsage {
                    output_tokens: 58,
                    ..
                }),
                ..
            })
        ));
        assert!(matches!(
            StreamEvent::parse(Some(b"ping"), r#"{"type":"message_stop"}"#),
            Ok(StreamEvent::MessageStop)
        ));
        // The string's literal, as written, when it is one well-formed JSON
        // string without `\u` escapes; otherwise the decoding path. The
        // same for a text and a tool call's arguments.
        for (kind, head) in [
            (RawDeltaKind::Text, r#""type":"text_delta","text""#),
            (
                RawDeltaKind::InputJson,
                r#""type":"input_json_delta","partial_json""#,
            ),
        ] {
            let delta = |string: &str| {
                format!(r#"{{"type":"content_block_delta","index":3,"delta":{{{head}:{string}}}}}"#)
            };
            assert_eq!(
                raw_delta(&delta(r#""a\"b\\c\n\t \/ é""#)),
                Some((3, kind, r#""a\"b\\c\n\t \/ é""#))
            );
            assert_eq!(
                raw_delta(&delta(r#""{\"path\":\"a.rs\"}""#)),
                Some((3, kind, r#""{\"path\":\"a.rs\"}""#))
            );
            assert_eq!(raw_delta(&delta(r#""""#)), Some((3, kind, r#""""#)));
            for bad in [
                r#""\u00e9""#,
                r#""\ud83e""#,
                r#""\x""#,
                "\"a\u{1}b\"",
                r#""a"}},"x":{"y":"b""#,
                r#""a" "#,
                r#" "a""#,
                "5",
                "null",
                r#""a"#,
            ] {
                assert_eq!(raw_delta(&delta(bad)), None, "{bad}");
            }
        }
        // Other deltas, and other forms, are not read this way.
        for other in [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"partial_json":"a","type":"input_json_delta"}}"#,
            r#"{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}} "#,
            r#"{"type": "content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"#,
        ] {
            assert_eq!(raw_delta(other), None, "{other}");
        }
        // The canonical form is read by the short way, the rest is not.
        assert!(text_delta(cases[0].1).is_some());
        assert!(text_delta(cases[7].1).is_some());
        for (_, data) in &cases[9..15] {
            assert!(text_delta(data).is_none(), "{data}");
        }
    }
}
