//! Providers: pure translation between the canonical (OpenAI) format and each
//! provider's wire format. No I/O here: a provider builds the upstream request,
//! reads an upstream response, and translates a stream event by event.
//!
//! Adding a provider is one module, one `ProviderKind` variant, and fixtures.

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai_compat;
pub mod sse;

use crate::deployment::Deployment;
use crate::types::{
    ApiError, ChatCompletionRequest, ChatCompletionResponse, ChunkChoice, Delta, FunctionCallDelta,
    RawChatRequest, ToolCallDelta, Usage,
};
use bytes::Bytes;
use http::HeaderMap;

/// Which API a deployment speaks, from the prefix of its `model`
/// (`openai/gpt-4o`, `azure/my-deployment`, `groq/llama3-70b-8192`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    OpenAi,
    Azure,
    Groq,
    DeepSeek,
    OpenRouter,
    Anthropic,
    Gemini,
    VertexAi,
    Bedrock,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 9] = [
        ProviderKind::OpenAi,
        ProviderKind::Azure,
        ProviderKind::Groq,
        ProviderKind::DeepSeek,
        ProviderKind::OpenRouter,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::VertexAi,
        ProviderKind::Bedrock,
    ];

    /// LiteLLM's provider name (`litellm_provider`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Azure => "azure",
            ProviderKind::Groq => "groq",
            ProviderKind::DeepSeek => "deepseek",
            ProviderKind::OpenRouter => "openrouter",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::VertexAi => "vertex_ai",
            ProviderKind::Bedrock => "bedrock",
        }
    }

    /// A provider prefix as LiteLLM spells it. OpenAI-compatible servers
    /// named by LiteLLM's other prefixes (`hosted_vllm`, `lm_studio`, …)
    /// are the OpenAI family with an `api_base`.
    pub fn from_prefix(prefix: &str) -> Option<ProviderKind> {
        Some(match prefix {
            "openai" | "custom_openai" | "openai_like" | "hosted_vllm" | "lm_studio"
            | "llamafile" => ProviderKind::OpenAi,
            "azure" => ProviderKind::Azure,
            "groq" => ProviderKind::Groq,
            "deepseek" => ProviderKind::DeepSeek,
            "openrouter" => ProviderKind::OpenRouter,
            "anthropic" => ProviderKind::Anthropic,
            "gemini" => ProviderKind::Gemini,
            "vertex_ai" | "vertex_ai_beta" => ProviderKind::VertexAi,
            "bedrock" => ProviderKind::Bedrock,
            _ => return None,
        })
    }

    /// Splits `provider/model-id`; a model with no known prefix has none.
    pub fn split_model(model: &str) -> Option<(ProviderKind, &str)> {
        let (prefix, rest) = model.split_once('/')?;
        let kind = ProviderKind::from_prefix(prefix)?;
        // `bedrock/converse/<id>` names the API explicitly: Converse is the only one.
        let rest = match kind {
            ProviderKind::Bedrock => rest.strip_prefix("converse/").unwrap_or(rest),
            _ => rest,
        };
        Some((kind, rest))
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request ready for the transport.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A successful non-streaming response, ready for the client.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    pub answer: Answer,
    pub usage: Option<Usage>,
}

/// The answer itself, in OpenAI's format.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The upstream's own body, passed through as it came.
    Body(Bytes),
    /// Read into the canonical type (translated from the upstream's
    /// format, or read whole for the Messages API), written only when
    /// sent: the Messages API turns it into Anthropic's format instead.
    /// `size` is the upstream body's, which sizes the written one.
    Typed {
        response: Box<ChatCompletionResponse>,
        size: usize,
    },
}

impl ChatResponse {
    /// A typed answer, with its usage.
    pub fn typed(response: ChatCompletionResponse, upstream_size: usize) -> ChatResponse {
        ChatResponse {
            usage: response.usage.clone(),
            answer: Answer::Typed {
                response: Box::new(response),
                size: upstream_size,
            },
        }
    }

    /// The answer as OpenAI JSON, for the client.
    pub fn into_body(self) -> Result<Bytes, ApiError> {
        match self.answer {
            Answer::Body(body) => Ok(body),
            Answer::Typed { response, size } => {
                crate::json::written_body(&*response, crate::json::translated_size(size))
            }
        }
    }

    /// The answer typed: a translated one as it is, a passed-through body
    /// read.
    pub fn into_typed(self) -> Result<ChatCompletionResponse, ApiError> {
        match self.answer {
            Answer::Typed { response, .. } => Ok(*response),
            Answer::Body(body) => crate::json::from_bytes(&body).map_err(|e| {
                ApiError::bad_gateway(format!(
                    "The upstream returned an unreadable completion: {e}"
                ))
            }),
        }
    }
}

/// What a stream translator hands to the server, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// One OpenAI chunk as JSON text (the server frames it as `data: …`).
    Data(Bytes),
    /// A keep-alive comment from the upstream.
    Comment(Bytes),
    /// The end of the stream (`data: [DONE]`).
    Done,
    /// The stream failed; the client gets this as an error event. Boxed:
    /// an error is rare, and inline it would make every event (and the
    /// buffer each open stream keeps for them) three times the size.
    Error(Box<ApiError>),
    /// Bytes already framed as SSE, relayed as they are (Anthropic-format
    /// streams, whose events carry names).
    Raw(Bytes),
}

impl StreamEvent {
    /// The event that fails a stream with `e`.
    pub fn error(e: ApiError) -> StreamEvent {
        StreamEvent::Error(Box::new(e))
    }
}

/// Per-request stream state: upstream bytes in, canonical events out.
pub trait StreamTranslator: Send {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>);
    /// The upstream body ended cleanly.
    fn finish(&mut self, out: &mut Vec<StreamEvent>);
    /// Usage reported so far.
    fn usage(&self) -> Option<&Usage>;
}

/// Credentials the gateway obtained for one call (the providers do no I/O):
/// a Vertex AI access token.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    pub bearer: Option<crate::types::Secret>,
    /// AWS credentials for SigV4 (Bedrock).
    pub aws: Option<AwsCredentials>,
}

#[derive(Debug, Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: crate::types::Secret,
    pub session_token: Option<crate::types::Secret>,
}

/// What the client asked for, as far as building the upstream call goes.
pub struct ChatCall<'a, 'b> {
    pub request: &'b RawChatRequest<'a>,
    /// The same request already typed, when the caller built it that way
    /// (a translated `/v1/messages` call): translating providers use it
    /// instead of parsing the body again.
    pub typed: Option<&'b ChatCompletionRequest>,
    /// `drop_params`: unsupported parameters are dropped, not refused.
    pub drop_params: bool,
}

impl ChatCall<'_, '_> {
    /// The whole request, typed: the caller's copy, or parsed once here.
    pub fn typed(&self) -> Result<std::borrow::Cow<'_, ChatCompletionRequest>, ApiError> {
        match self.typed {
            Some(t) => Ok(std::borrow::Cow::Borrowed(t)),
            None => self.request.to_typed().map(std::borrow::Cow::Owned),
        }
    }

    /// The client asked for JSON (`response_format` json_schema or
    /// json_object), which translating providers serve as a forced tool.
    pub fn wants_json(&self) -> bool {
        let is_json = |f: &serde_json::Value| {
            f.get("type")
                .and_then(|t| t.as_str())
                .is_some_and(|t| t == "json_schema" || t == "json_object")
        };
        match self.typed {
            Some(t) => t.response_format.as_ref().is_some_and(is_json),
            None => self
                .request
                .get_as::<serde_json::Value>("response_format")
                .ok()
                .flatten()
                .is_some_and(|f| is_json(&f)),
        }
    }
}

/// Where a translated stream's chunks come from: the same id, model and
/// time on every chunk of one response.
#[derive(Debug, Clone)]
pub struct ChunkSource {
    id: String,
    model: String,
    created: u64,
    /// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":`,
    /// the same for every chunk of a stream, serialized once (and again
    /// only if the id or model changes).
    head: Vec<u8>,
}

impl ChunkSource {
    pub fn new(id: String, model: String, created: u64) -> ChunkSource {
        let mut src = ChunkSource {
            id,
            model,
            created,
            head: Vec::new(),
        };
        src.write_head();
        src
    }

    /// The id chunks carry.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id chunks carry from now on (the provider's message id).
    pub fn set_id(&mut self, id: String) {
        if id != self.id {
            self.id = id;
            self.write_head();
        }
    }

    /// The model chunks name from now on (the provider's own name for it).
    pub fn set_model(&mut self, model: String) {
        if model != self.model {
            self.model = model;
            self.write_head();
        }
    }

    fn write_head(&mut self) {
        let head = &mut self.head;
        head.clear();
        head.reserve(96 + self.id.len() + self.model.len());
        head.extend_from_slice(b"{\"id\":");
        crate::json::write_str(head, &self.id);
        head.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        crate::json::write_u64(head, self.created);
        head.extend_from_slice(b",\"model\":");
        crate::json::write_str(head, &self.model);
        head.extend_from_slice(b",\"choices\":");
    }

    /// A chunk with one choice whose delta holds at most one string: the
    /// head, then `content` writing the delta's fields (`text_len` bytes or
    /// so), then the finish reason.
    fn text_chunk(
        &self,
        index: u32,
        text_len: usize,
        finish: Option<&str>,
        content: impl FnOnce(&mut Vec<u8>),
    ) -> StreamEvent {
        let mut out = Vec::with_capacity(self.head.len() + text_len + 64);
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b"[{\"index\":");
        crate::json::write_u64(&mut out, index.into());
        out.extend_from_slice(b",\"delta\":{");
        content(&mut out);
        out.extend_from_slice(b"},\"finish_reason\":");
        match finish {
            Some(reason) => crate::json::write_str(&mut out, reason),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]}");
        StreamEvent::Data(Bytes::from(out))
    }

    /// A text chunk whose content is `literal`, a JSON string as the
    /// provider wrote it, escapes and all: copied, not decoded and encoded
    /// again. The client reads the same text as from [`ChunkSource::chunk`].
    pub fn raw_text_chunk(&self, index: u32, literal: &str) -> StreamEvent {
        self.text_chunk(index, literal.len(), None, |out| {
            out.extend_from_slice(b"\"content\":");
            out.extend_from_slice(literal.as_bytes());
        })
    }

    /// A piece of tool call `tool`'s arguments, `literal` being a JSON
    /// string as the provider wrote it: copied, as in
    /// [`ChunkSource::raw_text_chunk`]. The chunk [`ChunkSource::chunk`]
    /// writes for a [`ToolCallDelta`](crate::types::ToolCallDelta) with only
    /// arguments, byte for byte
    /// when the provider escaped as serde does.
    pub fn raw_arguments_chunk(&self, index: u32, tool: u32, literal: &str) -> StreamEvent {
        self.text_chunk(index, literal.len() + 48, None, |out| {
            out.extend_from_slice(b"\"tool_calls\":[{\"index\":");
            crate::json::write_u64(out, tool.into());
            out.extend_from_slice(b",\"function\":{\"arguments\":");
            out.extend_from_slice(literal.as_bytes());
            out.extend_from_slice(b"}}]");
        })
    }

    /// A text chunk for a string as a provider sent it: copied when it
    /// came plain, written from the decoded text when not.
    pub fn text_piece(&self, index: u32, text: crate::json::JsonStr<'_>) -> StreamEvent {
        match text {
            crate::json::JsonStr::Raw(literal) => self.raw_text_chunk(index, literal),
            crate::json::JsonStr::Decoded(text) => self.chunk(
                index,
                Delta {
                    content: Some(text),
                    ..Default::default()
                },
                None,
            ),
        }
    }

    /// A piece of tool call `tool`'s arguments as a provider sent it, as
    /// [`ChunkSource::text_piece`] does text.
    pub fn arguments_piece(
        &self,
        index: u32,
        tool: u32,
        arguments: crate::json::JsonStr<'_>,
    ) -> StreamEvent {
        match arguments {
            crate::json::JsonStr::Raw(literal) => self.raw_arguments_chunk(index, tool, literal),
            crate::json::JsonStr::Decoded(arguments) => self.chunk(
                index,
                Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        index: tool,
                        function: Some(FunctionCallDelta {
                            name: None,
                            arguments: Some(arguments),
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                None,
            ),
        }
    }

    /// One OpenAI chunk with one choice.
    pub fn chunk(&self, index: u32, delta: Delta, finish: Option<String>) -> StreamEvent {
        // A piece of text, which most chunks of a stream are, and the
        // finish chunk are written directly: serde's derive checks every
        // optional field and escapes every key of every chunk. The same
        // JSON either way (tested).
        if let Delta {
            role: None,
            content,
            tool_calls: None,
            reasoning_content: None,
            thinking_blocks: None,
            images: None,
            provider_specific_fields: None,
        } = &delta
        {
            let text_len = content.as_ref().map_or(0, String::len);
            return self.text_chunk(index, text_len, finish.as_deref(), |out| {
                if let Some(text) = content {
                    out.extend_from_slice(b"\"content\":");
                    crate::json::write_str(out, text);
                }
            });
        }
        let choice = ChunkChoice {
            index,
            delta,
            finish_reason: finish,
            logprobs: None,
        };
        self.event(std::slice::from_ref(&choice), None)
    }

    /// A chunk with fields of its own beside `choices` (Gemini's grounding,
    /// as LiteLLM's `vertex_ai_grounding_metadata`).
    pub fn chunk_with_fields(
        &self,
        index: u32,
        delta: Delta,
        finish: Option<String>,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> StreamEvent {
        let choice = ChunkChoice {
            index,
            delta,
            finish_reason: finish,
            logprobs: None,
        };
        let mut out = Vec::with_capacity(self.head.len() + 512);
        out.extend_from_slice(&self.head);
        let _ = serde_json::to_writer(&mut out, std::slice::from_ref(&choice));
        let _ = crate::json::write_entries(&mut out, fields);
        out.push(b'}');
        StreamEvent::Data(Bytes::from(out))
    }

    /// The usage chunk that ends a stream: `choices: []`, as clients expect.
    pub fn usage(&self, usage: &Usage) -> StreamEvent {
        self.event(&[], Some(usage))
    }

    /// A `ChatCompletionChunk` as JSON (without `system_fingerprint`).
    fn event(&self, choices: &[ChunkChoice], usage: Option<&Usage>) -> StreamEvent {
        // Room for a choice, and for a usage object with its details.
        let room = if usage.is_some() { 512 } else { 160 };
        let mut out = Vec::with_capacity(self.head.len() + room);
        out.extend_from_slice(&self.head);
        let _ = serde_json::to_writer(&mut out, choices);
        if let Some(u) = usage {
            out.extend_from_slice(b",\"usage\":");
            u.write_json(&mut out);
        }
        out.push(b'}');
        StreamEvent::Data(Bytes::from(out))
    }
}

/// The deployment's `extra_headers` on top of a provider's own.
/// Request fields that steer the gateway (LiteLLM's names), never sent
/// upstream: `drop_params` and `num_retries`, which llmux reads, and
/// LiteLLM's fallback lists, which it does not serve (the config's are
/// reported at start) and no provider takes.
pub const GATEWAY_FIELDS: &[&str] = &[
    "drop_params",
    "num_retries",
    "fallbacks",
    "context_window_fallbacks",
    "mock_testing_fallbacks",
];

/// A tool-call id as Anthropic and Bedrock take them: `^[a-zA-Z0-9_-]+$`,
/// at most `max` characters. Ids from other models (`functions.read:0`,
/// `call|abc`) are rewritten, the same way every time, so a call and its
/// result still agree, and distinct ids stay distinct.
pub fn clean_tool_id(id: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if id.len() <= max && !id.is_empty() && id.chars().all(valid) {
        return std::borrow::Cow::Borrowed(id);
    }
    let clean: String = id.chars().map(|c| if valid(c) { c } else { '_' }).collect();
    // FNV-1a of the original keeps rewritten ids distinct.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let prefix: String = clean.chars().take(max.saturating_sub(17)).collect();
    std::borrow::Cow::Owned(format!("{prefix}_{h:016x}"))
}

/// A fresh `chatcmpl-…` id, for answers whose upstream gives none: 96
/// bits, random per process and counted per answer, so no two answers
/// share one.
pub fn completion_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    });
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write_u64(seed);
    h.write_u64(n);
    format!("chatcmpl-{:016x}{:08x}", h.finish(), n as u32)
}

pub fn apply_extra_headers(h: &mut HeaderMap, dep: &Deployment) {
    for (name, value) in &dep.extra_headers {
        if let (Ok(n), Ok(mut v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value.expose()),
        ) {
            v.set_sensitive(true);
            h.insert(n, v);
        }
    }
}

/// The API family a provider speaks: the one `match` that dispatches.
/// Exhaustive, so a new `ProviderKind` cannot compile without a translator.
enum Family {
    OpenAiCompat(&'static openai_compat::CompatSpec),
    Anthropic,
    Gemini,
    Bedrock,
}

/// Whether the provider takes an OpenAI request as the client wrote it
/// (OpenAI and the OpenAI-compatible ones), not translated.
pub fn passes_through(p: ProviderKind) -> bool {
    matches!(family(p), Family::OpenAiCompat(_))
}

fn family(p: ProviderKind) -> Family {
    match p {
        ProviderKind::OpenAi => Family::OpenAiCompat(&openai_compat::OPENAI),
        ProviderKind::Azure => Family::OpenAiCompat(&openai_compat::AZURE),
        ProviderKind::Groq => Family::OpenAiCompat(&openai_compat::GROQ),
        ProviderKind::DeepSeek => Family::OpenAiCompat(&openai_compat::DEEPSEEK),
        ProviderKind::OpenRouter => Family::OpenAiCompat(&openai_compat::OPENROUTER),
        ProviderKind::Anthropic => Family::Anthropic,
        ProviderKind::Gemini | ProviderKind::VertexAi => Family::Gemini,
        ProviderKind::Bedrock => Family::Bedrock,
    }
}

/// Builds the upstream request for a chat completion.
pub fn build_chat_request(
    dep: &Deployment,
    call: &ChatCall<'_, '_>,
    creds: &Credentials,
) -> Result<UpstreamRequest, ApiError> {
    match family(dep.provider) {
        Family::OpenAiCompat(spec) => Ok(openai_compat::build_chat_request(spec, dep, call)),
        Family::Anthropic => anthropic::build_chat_request(dep, call),
        Family::Gemini => gemini::build_chat_request(dep, call, creds),
        Family::Bedrock => bedrock::build_chat_request(dep, call, creds),
    }
}

/// Reads a non-streaming upstream response (any status).
pub fn chat_response(
    dep: &Deployment,
    call: &ChatCall<'_, '_>,
    status: u16,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<ChatResponse, ApiError> {
    let out = match family(dep.provider) {
        Family::OpenAiCompat(_) => {
            openai_compat::chat_response(status, headers, reasoning_named(dep, body))
        }
        Family::Anthropic => anthropic::chat_response(call, status, headers, body),
        Family::Gemini => gemini::chat_response(dep, status, headers, body),
        Family::Bedrock => bedrock::chat_response(dep, call, status, headers, body),
    };
    out.map_err(|e| redacted(dep, e))
}

/// Providers that name a message's reasoning `reasoning`, where LiteLLM's
/// clients read `reasoning_content`.
fn names_reasoning_reasoning(p: ProviderKind) -> bool {
    matches!(p, ProviderKind::OpenRouter | ProviderKind::Groq)
}

/// An OpenAI-compatible answer with its reasoning under LiteLLM's name,
/// for every route: the only place `reasoning` is renamed for a whole
/// answer (a stream's is in `PassthroughStream`).
fn reasoning_named(dep: &Deployment, body: Bytes) -> Bytes {
    if !names_reasoning_reasoning(dep.provider) {
        return body;
    }
    match openai_compat::reasoning_as_reasoning_content(&body) {
        Some(renamed) => Bytes::from(renamed),
        None => body,
    }
}

/// Reads an upstream error response.
pub fn error_response(dep: &Deployment, status: u16, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let err = match family(dep.provider) {
        Family::Anthropic => anthropic::error::error_response(status, headers, body),
        Family::Gemini => gemini::error::error_response(status, headers, body),
        Family::Bedrock => bedrock::error::error_response(status, headers, body),
        Family::OpenAiCompat(_) => openai_compat::error_response(status, headers, body),
    };
    redacted(dep, err)
}

/// Reads a non-streaming upstream response for a caller that needs the
/// answer typed (the Messages API): an OpenAI-compatible body is read
/// whole once, not checked for its usage and then read again; a
/// translated one is typed already.
pub fn typed_chat_response(
    dep: &Deployment,
    call: &ChatCall<'_, '_>,
    status: u16,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<ChatResponse, ApiError> {
    match family(dep.provider) {
        Family::OpenAiCompat(_) => {
            openai_compat::typed_chat_response(status, headers, reasoning_named(dep, body))
                .map_err(|e| redacted(dep, e))
        }
        _ => chat_response(dep, call, status, headers, body),
    }
}

fn redacted(dep: &Deployment, mut err: ApiError) -> ApiError {
    if let Some(key) = &dep.api_key {
        err.redact(key.expose());
    }
    err
}

/// A translator for one streaming response.
pub fn chat_stream(
    dep: &Deployment,
    call: &ChatCall<'_, '_>,
) -> Result<Box<dyn StreamTranslator>, ApiError> {
    match family(dep.provider) {
        Family::OpenAiCompat(_) => {
            let stream = openai_compat::PassthroughStream::new(call.request.include_usage());
            Ok(Box::new(if names_reasoning_reasoning(dep.provider) {
                stream.renaming_reasoning()
            } else {
                stream
            }))
        }
        Family::Anthropic => Ok(Box::new(anthropic::chat_stream(dep, call))),
        Family::Gemini => Ok(Box::new(gemini::chat_stream(dep, call))),
        Family::Bedrock => Ok(Box::new(bedrock::chat_stream(dep, call))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A translated answer reaches the chat route as the JSON it would have
    /// been written as, and the Messages route as the answer itself; a
    /// passed-through body is read for the Messages route, or refused with
    /// a 502.
    #[test]
    fn an_answer_is_written_or_handed_over_as_it_is() {
        let body = br#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"h\u00e9 \"q\""},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let typed: ChatCompletionResponse = serde_json::from_slice(body).unwrap();
        let translated = ChatResponse::typed(typed.clone(), body.len());
        assert_eq!(translated.usage, typed.usage);
        assert_eq!(translated.clone().into_typed().unwrap(), typed);
        assert_eq!(
            translated.into_body().unwrap(),
            serde_json::to_vec(&typed).unwrap()
        );
        let passed = ChatResponse {
            answer: Answer::Body(Bytes::from_static(body)),
            usage: None,
        };
        assert_eq!(passed.clone().into_typed().unwrap(), typed);
        assert_eq!(passed.into_body().unwrap(), &body[..]);
        let broken = ChatResponse {
            answer: Answer::Body(Bytes::from_static(b"{\"choices\":")),
            usage: None,
        };
        assert_eq!(broken.into_typed().unwrap_err().status, 502);
    }

    /// A forced JSON answer is asked for the same way whether the request
    /// came as a body or only typed (the Messages API translated).
    #[test]
    fn json_is_wanted_from_the_body_or_the_typed_request_alike() {
        for (format, wanted) in [
            (r#""response_format":{"type":"json_object"},"#, true),
            (
                r#""response_format":{"type":"json_schema","json_schema":{"name":"n"}},"#,
                true,
            ),
            (r#""response_format":{"type":"text"},"#, false),
            (r#""response_format":null,"#, false),
            ("", false),
        ] {
            let body = format!(r#"{{{format}"model":"m","messages":[]}}"#);
            let raw = RawChatRequest::parse(body.as_bytes()).unwrap();
            let typed = raw.to_typed().unwrap();
            let from_body = ChatCall {
                request: &raw,
                typed: None,
                drop_params: false,
            };
            let only_typed = RawChatRequest::from_typed(&typed, body.len());
            let from_typed = ChatCall {
                request: &only_typed,
                typed: Some(&typed),
                drop_params: false,
            };
            assert_eq!(from_body.wants_json(), wanted, "{body}");
            assert_eq!(from_typed.wants_json(), wanted, "{body}");
        }
    }

    #[test]
    fn text_and_finish_chunks_are_the_json_serde_writes() {
        let src = ChunkSource::new("msg_\"1".into(), "claude-\u{e9}".into(), 1_731_000_000);
        let texts = [
            None,
            Some(""),
            Some("Here"),
            Some("a\"b\\c\n\t\u{1}\u{7f} \u{e9} \u{1f980} </script>"),
        ];
        for (index, text, finish) in [0, 3, 12].into_iter().flat_map(|i| {
            texts.into_iter().flat_map(move |t| {
                [None, Some("stop"), Some("tool_calls"), Some("a\"b")]
                    .into_iter()
                    .map(move |f| (i, t, f))
            })
        }) {
            let delta = Delta {
                content: text.map(str::to_owned),
                ..Default::default()
            };
            let finish = finish.map(str::to_owned);
            let StreamEvent::Data(fast) = src.chunk(index, delta.clone(), finish.clone()) else {
                panic!("not data");
            };
            let choice = ChunkChoice {
                index,
                delta,
                finish_reason: finish.clone(),
                logprobs: None,
            };
            let StreamEvent::Data(general) = src.event(&[choice], None) else {
                panic!("not data");
            };
            assert_eq!(fast, general, "{text:?} {finish:?}");
            let v: serde_json::Value = serde_json::from_slice(&fast).unwrap();
            assert_eq!(
                v["choices"][0]["delta"]
                    .get("content")
                    .and_then(|c| c.as_str()),
                text
            );
            assert_eq!(v["choices"][0]["finish_reason"].as_str(), finish.as_deref());
        }
    }

    /// A text chunk written from the provider's own JSON string is the
    /// chunk written from the decoded text: byte for byte when the provider
    /// escaped as serde does, and the same text when it escaped otherwise.
    #[test]
    fn raw_text_chunks_carry_the_same_text() {
        let src = ChunkSource::new("msg_1".into(), "claude".into(), 1_731_000_000);
        let texts = [
            "",
            "Here",
            "a\"b\\c\n\t\u{1}\u{7f} \u{e9} \u{1f980} </script>",
        ];
        for (index, text) in [0, 7].into_iter().flat_map(|i| texts.map(|t| (i, t))) {
            let literal = serde_json::to_string(text).unwrap();
            let StreamEvent::Data(raw) = src.raw_text_chunk(index, &literal) else {
                panic!("not data");
            };
            let delta = Delta {
                content: Some(text.to_owned()),
                ..Default::default()
            };
            let StreamEvent::Data(decoded) = src.chunk(index, delta, None) else {
                panic!("not data");
            };
            assert_eq!(raw, decoded, "{text:?}");
        }
        // Escapes serde would not write: the same text all the same.
        let StreamEvent::Data(raw) = src.raw_text_chunk(0, r#""a\/b\u00e9\r""#) else {
            panic!("not data");
        };
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["choices"][0]["delta"]["content"], "a/b\u{e9}\r");
        assert_eq!(v["choices"][0]["finish_reason"], serde_json::Value::Null);
        assert_eq!(v["object"], "chat.completion.chunk");
    }

    /// A tool call's arguments written from the provider's JSON string are
    /// the chunk serde writes for the decoded arguments.
    #[test]
    fn raw_arguments_chunks_carry_the_same_arguments() {
        let src = ChunkSource::new("msg_1".into(), "claude".into(), 1_731_000_000);
        let pieces = [
            "",
            "{\"path\":",
            " \"src/a.rs\", \"content\": \"fn main() {\\n}\\n\"}",
            "\u{e9}\u{1f980}\t\u{1}</script>",
        ];
        for (tool, piece) in [0, 3].into_iter().flat_map(|t| pieces.map(|p| (t, p))) {
            let literal = serde_json::to_string(piece).unwrap();
            let StreamEvent::Data(raw) = src.raw_arguments_chunk(0, tool, &literal) else {
                panic!("not data");
            };
            let delta = Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index: tool,
                    id: None,
                    kind: None,
                    function: Some(FunctionCallDelta {
                        name: None,
                        arguments: Some(piece.to_owned()),
                    }),
                    provider_specific_fields: None,
                }]),
                ..Default::default()
            };
            let StreamEvent::Data(decoded) = src.chunk(0, delta, None) else {
                panic!("not data");
            };
            assert_eq!(raw, decoded, "{piece:?}");
        }
        // Escapes serde would not write: the same arguments all the same.
        let StreamEvent::Data(raw) = src.raw_arguments_chunk(0, 1, r#""{\/\u00e9\r""#) else {
            panic!("not data");
        };
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let call = &v["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(call["index"], 1);
        assert_eq!(call["function"]["arguments"], "{/\u{e9}\r");
        assert_eq!(v["choices"][0]["finish_reason"], serde_json::Value::Null);
    }

    #[test]
    fn splits_provider_prefixes() {
        assert_eq!(
            ProviderKind::split_model("openai/gpt-4o"),
            Some((ProviderKind::OpenAi, "gpt-4o"))
        );
        assert_eq!(
            ProviderKind::split_model("openrouter/anthropic/claude-sonnet-4"),
            Some((ProviderKind::OpenRouter, "anthropic/claude-sonnet-4"))
        );
        assert_eq!(
            ProviderKind::split_model("bedrock/converse/amazon.nova-pro-v1:0"),
            Some((ProviderKind::Bedrock, "amazon.nova-pro-v1:0"))
        );
        assert_eq!(
            ProviderKind::split_model("hosted_vllm/meta/llama"),
            Some((ProviderKind::OpenAi, "meta/llama"))
        );
        assert_eq!(ProviderKind::split_model("gpt-4o"), None);
        assert_eq!(ProviderKind::split_model("mystery/x"), None);
    }

    /// The chunk a `ChunkSource` writes is exactly a serialized
    /// `ChatCompletionChunk`, before and after its id and model change.
    #[test]
    fn chunks_are_chat_completion_chunks() {
        use crate::types::ChatCompletionChunk;
        let mut src = ChunkSource::new("gemini-1".into(), "gem\"ini".into(), 1_731_000_000);
        let expect = |id: &str, model: &str, choices: Vec<ChunkChoice>, usage: Option<Usage>| {
            serde_json::to_vec(&ChatCompletionChunk {
                id: id.into(),
                object: "chat.completion.chunk".into(),
                created: 1_731_000_000,
                model: model.into(),
                choices,
                usage,
                system_fingerprint: None,
            })
            .unwrap()
        };
        let delta = Delta {
            content: Some("a \"quoted\"\nline ✓".into()),
            ..Default::default()
        };
        let choice = ChunkChoice {
            index: 0,
            delta: delta.clone(),
            finish_reason: None,
            logprobs: None,
        };
        let data = |ev: StreamEvent| match ev {
            StreamEvent::Data(d) => d.to_vec(),
            _ => panic!("not a data event"),
        };
        assert_eq!(
            data(src.chunk(0, delta.clone(), None)),
            expect("gemini-1", "gem\"ini", vec![choice.clone()], None)
        );
        src.set_id("msg_01\\x".into());
        src.set_model("claude-sonnet-4-5".into());
        let usage = Usage {
            prompt_tokens: 3,
            completion_tokens: 4,
            total_tokens: 7,
            ..Default::default()
        };
        assert_eq!(
            data(src.usage(&usage)),
            expect("msg_01\\x", "claude-sonnet-4-5", vec![], Some(usage))
        );
        assert_eq!(
            data(src.chunk(0, delta, None)),
            expect("msg_01\\x", "claude-sonnet-4-5", vec![choice], None)
        );
    }
}
