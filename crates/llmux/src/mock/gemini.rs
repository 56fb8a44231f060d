//! Google's Gemini API on the mock (docs/mock.md, "Gemini and Vertex AI"):
//! AI Studio's `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent`, the same on Vertex AI's
//! `/v1/projects/{project}/locations/{location}/publishers/google/models/…`,
//! and the OAuth token endpoint a Vertex service account trades its signed
//! JWT at. Requests are checked the way Google checks them (API key in the
//! header only, unknown fields, schema fields Gemini lacks, function call and
//! response turns, Gemini 3 thought signatures) and answered and streamed in
//! Google's format, with the faults the other routes have.

use super::answer::{DEFAULT_CONTENT, MockOptions, example_for_schema, words};
use super::anthropic::{DEFAULT_THINKING, base64};
use super::{MockState, StreamGuard, event_stream, fault, raw, record};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The answer to a request carrying an API key in its URL: llmux must never
/// put keys there (they end up in logs), and tests rely on this refusal.
pub const KEY_IN_URL: &str = "mock: API keys must not be sent in the URL";

/// The thought signature clients send to skip Gemini 3's check.
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// The scope a Vertex service account must ask for.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const MAX_JWT_LIFETIME: u64 = 3600;
const CLOCK_SKEW: u64 = 300;
const VERTEX_DOCS: &str =
    "https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini";
const AUTH_HINT: &str = "Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

/// `GenerateContentRequest` fields, in snake_case (Google takes either
/// spelling).
const REQUEST_FIELDS: &[&str] = &[
    "model",
    "contents",
    "system_instruction",
    "tools",
    "tool_config",
    "generation_config",
    "safety_settings",
    "cached_content",
    "labels",
];
const CONTENT_FIELDS: &[&str] = &["role", "parts"];
const PART_FIELDS: &[&str] = &[
    "text",
    "inline_data",
    "file_data",
    "function_call",
    "function_response",
    "executable_code",
    "code_execution_result",
    "thought",
    "thought_signature",
    "video_metadata",
    "part_metadata",
    "media_resolution",
];
/// The part fields that carry data (the `data` oneof), plus `thought`.
const DATA_FIELDS: &[&str] = &[
    "text",
    "inline_data",
    "file_data",
    "function_call",
    "function_response",
    "executable_code",
    "code_execution_result",
    "thought",
    "thought_signature",
];
const TOOL_FIELDS: &[&str] = &[
    "function_declarations",
    "google_search_retrieval",
    "code_execution",
    "google_search",
    "computer_use",
    "url_context",
    "file_search",
    "google_maps",
    "retrieval",
    "enterprise_web_search",
];
const DECLARATION_FIELDS: &[&str] = &[
    "name",
    "description",
    "parameters",
    "parameters_json_schema",
    "response",
    "response_json_schema",
    "behavior",
];
/// `Schema` fields: no `$ref`, `$defs`, `additionalProperties`, `strict`,
/// `$schema`, `const`, `oneOf`, …
const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "max_items",
    "min_items",
    "properties",
    "required",
    "min_properties",
    "max_properties",
    "min_length",
    "max_length",
    "pattern",
    "example",
    "any_of",
    "property_ordering",
    "default",
    "items",
    "minimum",
    "maximum",
];
const SCHEMA_TYPES: &[&str] = &[
    "type_unspecified",
    "string",
    "number",
    "integer",
    "boolean",
    "array",
    "object",
];
const TOOL_CONFIG_FIELDS: &[&str] = &["function_calling_config", "retrieval_config"];
const CALLING_CONFIG_FIELDS: &[&str] = &["mode", "allowed_function_names"];
const CALLING_MODES: &[&str] = &["mode_unspecified", "auto", "any", "none", "validated"];
const GENERATION_FIELDS: &[&str] = &[
    "stop_sequences",
    "response_mime_type",
    "response_schema",
    "response_json_schema",
    "response_modalities",
    "candidate_count",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_logprobs",
    "logprobs",
    "enable_enhanced_civic_answers",
    "speech_config",
    "thinking_config",
    "image_config",
    "media_resolution",
    "audio_timestamp",
    "routing_config",
];
const THINKING_FIELDS: &[&str] = &["include_thoughts", "thinking_budget", "thinking_level"];
const THINKING_LEVELS: &[&str] = &[
    "thinking_level_unspecified",
    "minimal",
    "low",
    "medium",
    "high",
];
/// Finish reasons after which Google sends a candidate without content:
/// a blocked answer, or a function call the model failed to write.
const BLOCKED_FINISH: &[&str] = &[
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "MALFORMED_FUNCTION_CALL",
    "UNEXPECTED_TOOL_CALL",
    "TOO_MANY_TOOL_CALLS",
];

/// AI Studio (Generative Language API) or Vertex AI: same format, a few
/// different messages and proto names.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Api {
    Studio,
    Vertex,
}

impl Api {
    fn proto(self, name: &str) -> String {
        match self {
            Api::Studio => format!("google.ai.generativelanguage.v1beta.{name}"),
            Api::Vertex => format!("google.cloud.aiplatform.v1.{name}"),
        }
    }
}

pub async fn studio(
    State(s): State<Arc<MockState>>,
    Path(rest): Path<String>,
    req: Request,
) -> Response {
    handle(s, req, Api::Studio, &rest).await
}

pub async fn vertex(
    State(s): State<Arc<MockState>>,
    Path((_project, _location, rest)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    handle(s, req, Api::Vertex, &rest).await
}

async fn handle(s: Arc<MockState>, req: Request, api: Api, rest: &str) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return error(400, "could not read the body", vec![], None),
    };
    record(&s, &parts.method, &parts.uri, &parts.headers, &body);

    let query = form_pairs(parts.uri.query().unwrap_or(""));
    if query.iter().any(|(k, _)| k == "key") {
        return error(400, KEY_IN_URL, vec![], None);
    }
    let rest = rest.trim_start_matches('/');
    let Some((model, method)) = rest.rsplit_once(':').filter(|(m, _)| !m.contains('/')) else {
        return error(
            404,
            &format!(
                "The requested URL {} was not found on this server.",
                parts.uri.path()
            ),
            vec![],
            None,
        );
    };
    let streaming = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => {
            return error(
                404,
                &format!(
                    "Method not found: {method} (the mock serves generateContent and streamGenerateContent)."
                ),
                vec![],
                None,
            );
        }
    };
    if let Some(r) = auth_failure(&s, api, &parts.headers) {
        return r;
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return error(
                400,
                "Invalid JSON payload received. Expected an object.",
                vec![],
                None,
            );
        }
        Err(e) => {
            return error(
                400,
                &format!("Invalid JSON payload received. {e}"),
                vec![],
                None,
            );
        }
    };
    let opts = match MockOptions::read(None, &parts.headers, &request) {
        Ok(o) => o,
        Err(e) => return error(400, &format!("Invalid mock directive: {e}"), vec![], None),
    };
    if let Some(f) = fault(&s, &opts) {
        let message = f
            .message
            .unwrap_or_else(|| default_message(f.status, model, method).to_owned());
        return error(f.status, &message, vec![], f.retry_after);
    }
    if let Err(r) = validate(&request, api, model) {
        return error(400, &r.message, r.details, None);
    }

    let delay = opts.first_byte_delay_ms.unwrap_or(s.args.latency_ms);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let reply = Reply::new(&request, &opts, api, model, body.len());
    if streaming {
        let sse = query.iter().any(|(k, v)| k == "alt" && v == "sse");
        let tps = opts.tokens_per_sec.unwrap_or(s.args.tokens_per_sec);
        s.streams_started.fetch_add(1, Ordering::Relaxed);
        let guard = StreamGuard {
            state: s.clone(),
            completed: false,
        };
        let (events, content_type) = if sse {
            (reply.sse(&opts), "text/event-stream")
        } else {
            (reply.json_array(&opts), "application/json; charset=UTF-8")
        };
        return event_stream(events, opts.reset_after_chunks, tps, guard, content_type);
    }
    if opts.malformed {
        return raw(
            200,
            "application/json; charset=UTF-8",
            Bytes::from_static(b"{\"candidates\": [{\"content\": {\"parts\": [{"),
        );
    }
    json_response(&reply.response())
}

// ---------------------------------------------------------------------------
// Errors

/// The canonical `status` Google sends with an HTTP status.
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ if (400..500).contains(&status) => "FAILED_PRECONDITION",
        _ => "UNKNOWN",
    }
}

fn default_message(status: u16, model: &str, method: &str) -> String {
    match status {
        400 => "Request contains an invalid argument.".to_owned(),
        401 => format!("Request had invalid authentication credentials. {AUTH_HINT}"),
        403 => "The caller does not have permission".to_owned(),
        404 => format!(
            "models/{model} is not found for API version v1beta, or is not supported for {method}. Call ListModels to see the list of available models and their supported methods."
        ),
        429 => "Resource has been exhausted (e.g. check quota).".to_owned(),
        500 => "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting".to_owned(),
        503 => "The model is overloaded. Please try again later.".to_owned(),
        504 => "Deadline expired before operation could complete.".to_owned(),
        _ => "mock fault".to_owned(),
    }
}

/// Google's error object: `{"error": {"code", "message", "status", "details"?}}`.
pub fn error_body(status: u16, message: &str, details: Vec<Value>) -> Value {
    let mut e = json!({"code": status, "message": message, "status": status_name(status)});
    if !details.is_empty() {
        e["details"] = Value::Array(details);
    }
    json!({ "error": e })
}

/// An error the way Google sends one; with `retry_after`, a `Retry-After`
/// header and a `RetryInfo` detail.
fn error(
    status: u16,
    message: &str,
    mut details: Vec<Value>,
    retry_after: Option<u64>,
) -> Response {
    if let Some(secs) = retry_after {
        details.push(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{secs}s")}));
    }
    let body = error_body(status, message, details);
    let mut r = raw(
        status,
        "application/json; charset=UTF-8",
        Bytes::from(body.to_string()),
    );
    if let Some(secs) = retry_after {
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

fn json_response(v: &Value) -> Response {
    raw(
        200,
        "application/json; charset=UTF-8",
        Bytes::from(v.to_string()),
    )
}

fn error_info(reason: &str) -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {
            "service": "aiplatform.googleapis.com",
            "method": "google.cloud.aiplatform.v1.PredictionService.GenerateContent"
        }
    })
}

/// AI Studio: an `x-goog-api-key` header (403 without). Vertex: a bearer
/// token this mock issued and that has not expired (401 otherwise). The
/// error to answer with, if any.
fn auth_failure(s: &MockState, api: Api, headers: &HeaderMap) -> Option<Response> {
    match api {
        Api::Studio => {
            if headers.get("x-goog-api-key").is_none_or(|v| v.is_empty()) {
                return Some(error(
                    403,
                    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
                    vec![],
                    None,
                ));
            }
            None
        }
        Api::Vertex => {
            let token = headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty());
            let Some(token) = token else {
                return Some(error(
                    401,
                    &format!("Request is missing required authentication credential. {AUTH_HINT}"),
                    vec![error_info("CREDENTIALS_MISSING")],
                    None,
                ));
            };
            let expiry = s
                .tokens
                .lock()
                .map(|t| t.get(token).copied())
                .unwrap_or(None);
            let reason = match expiry {
                Some(at) if Instant::now() < at => return None,
                Some(_) => "ACCESS_TOKEN_EXPIRED",
                None => "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            };
            Some(error(
                401,
                &format!("Request had invalid authentication credentials. {AUTH_HINT}"),
                vec![error_info(reason)],
                None,
            ))
        }
    }
}

// ---------------------------------------------------------------------------
// Validation

/// Why a request is refused: the message, and `details` (a `BadRequest`
/// with the field violations when the JSON did not fit the proto).
#[derive(Debug, PartialEq)]
pub struct Rejection {
    pub message: String,
    pub details: Vec<Value>,
}

impl Rejection {
    fn new(message: impl Into<String>) -> Rejection {
        Rejection {
            message: message.into(),
            details: vec![],
        }
    }
}

/// `camelCase` → `snake_case` (`$ref` stays `$ref`).
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A field by its camelCase name or its snake_case one.
fn field<'a>(v: &'a Value, camel: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| v.get(snake(camel).as_str()))
}

fn has(v: &Value, camel: &str) -> bool {
    field(v, camel).is_some_and(|x| !x.is_null())
}

fn list(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// JSON that does not fit the request proto: Google reports every such
/// problem at once, each as `Invalid JSON payload received. …` or `Invalid
/// value at …`, with a `BadRequest` detail listing them.
#[derive(Default)]
struct Violations(Vec<(String, String)>);

impl Violations {
    fn unknown_fields(&mut self, v: &Value, known: &[&str], path: &str) {
        let Some(o) = v.as_object() else { return };
        for k in o.keys() {
            if !known.contains(&snake(k).as_str()) {
                let description = if path.is_empty() {
                    format!(
                        "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
                    )
                } else {
                    format!(
                        "Invalid JSON payload received. Unknown name \"{k}\" at '{path}': Cannot find field."
                    )
                };
                self.0.push((path.to_owned(), description));
            }
        }
    }

    fn invalid_value(&mut self, path: String, kind: &str, value: &Value) {
        let description = format!("Invalid value at '{path}' ({kind}), {value}");
        self.0.push((path, description));
    }

    fn enum_value(&mut self, v: Option<&Value>, allowed: &[&str], path: String, kind: &str) {
        match v {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if allowed.contains(&s.to_ascii_lowercase().as_str()) => {}
            Some(other) => self.invalid_value(path, kind, other),
        }
    }

    fn content(&mut self, c: &Value, path: &str) {
        self.unknown_fields(c, CONTENT_FIELDS, path);
        for (j, part) in list(field(c, "parts")).iter().enumerate() {
            let p = format!("{path}.parts[{j}]");
            self.unknown_fields(part, PART_FIELDS, &p);
            if let Some(d) = field(part, "inlineData").and_then(|d| field(d, "data")) {
                self.bytes(d, format!("{p}.inline_data.data"));
            }
            if let Some(d) = field(part, "thoughtSignature") {
                self.bytes(d, format!("{p}.thought_signature"));
            }
        }
    }

    /// A `bytes` field: base64 text.
    fn bytes(&mut self, v: &Value, path: String) {
        let text = v.as_str().unwrap_or_default();
        if v.is_string() && base64_decode(text).is_some() {
            return;
        }
        let shown: String = text.chars().take(64).collect();
        let description = format!(
            "Invalid value at '{path}' (TYPE_BYTES), Base64 decoding failed for \"{shown}\""
        );
        self.0.push((path, description));
    }

    /// A `Schema`: known fields only, `type` a single known name, `enum` of
    /// strings; then its `properties`, `items` and `anyOf`.
    fn schema(&mut self, api: Api, schema: &Value, path: &str) {
        if !schema.is_object() {
            return;
        }
        self.unknown_fields(schema, SCHEMA_FIELDS, path);
        match schema.get("type") {
            Some(Value::Array(_)) => self.0.push((
                path.to_owned(),
                format!("Invalid JSON payload received. Unknown name \"type\" at '{path}': Proto field is not repeating, cannot start list."),
            )),
            t => self.enum_value(t, SCHEMA_TYPES, format!("{path}.type"), &format!("type.googleapis.com/{}", api.proto("Type"))),
        }
        for (i, e) in list(schema.get("enum")).iter().enumerate() {
            if !e.is_string() {
                self.invalid_value(format!("{path}.enum[{i}]"), "TYPE_STRING", e);
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (i, v) in props.values().enumerate() {
                self.schema(api, v, &format!("{path}.properties[{i}].value"));
            }
        }
        if let Some(items) = schema.get("items") {
            self.schema(api, items, &format!("{path}.items"));
        }
        for (i, s) in list(field(schema, "anyOf")).iter().enumerate() {
            self.schema(api, s, &format!("{path}.any_of[{i}]"));
        }
    }

    fn rejection(self) -> Rejection {
        let message = self
            .0
            .iter()
            .map(|(_, d)| d.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let violations: Vec<Value> = self
            .0
            .iter()
            .map(|(f, d)| json!({"field": f, "description": d}))
            .collect();
        Rejection {
            message,
            details: vec![json!({
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": violations
            })],
        }
    }
}

/// The request's function declarations, across its tools.
fn declarations(req: &Value) -> Vec<&Value> {
    list(field(req, "tools"))
        .iter()
        .flat_map(|t| list(field(t, "functionDeclarations")))
        .collect()
}

fn role(c: &Value) -> &str {
    c.get("role").and_then(Value::as_str).unwrap_or("user")
}

fn parts(c: &Value) -> &[Value] {
    list(field(c, "parts"))
}

/// The names of the `functionCall` parts of a content.
fn call_names(c: &Value) -> Vec<&str> {
    parts(c)
        .iter()
        .filter_map(|p| field(p, "functionCall"))
        .map(|f| f.get("name").and_then(Value::as_str).unwrap_or(""))
        .collect()
}

/// The names of the `functionResponse` parts of a content.
fn response_names(c: &Value) -> Vec<&str> {
    parts(c)
        .iter()
        .filter_map(|p| field(p, "functionResponse"))
        .map(|f| f.get("name").and_then(Value::as_str).unwrap_or(""))
        .collect()
}

fn is_gemini_3(model: &str) -> bool {
    model.starts_with("gemini-3")
}

/// `^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$`
fn valid_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

/// Problems Google reports as `* GenerateContentRequest.<path>: <what>`:
/// `required` naming an undefined property, an `ARRAY` without `items`,
/// `enum` on a type other than `STRING`.
fn schema_semantics(schema: &Value, path: &str, out: &mut Vec<String>) {
    if !schema.is_object() {
        return;
    }
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let props = schema.get("properties").and_then(Value::as_object);
    for (i, r) in list(schema.get("required")).iter().enumerate() {
        let name = r.as_str().unwrap_or_default();
        if !props.is_some_and(|p| p.contains_key(name)) {
            out.push(format!("{path}.required[{i}]: property is not defined"));
        }
    }
    if kind.as_deref() == Some("array") && schema.get("items").is_none() {
        out.push(format!("{path}.items: missing field."));
    }
    if schema.get("enum").is_some() && kind.as_deref().is_some_and(|k| k != "string") {
        out.push(format!("{path}.enum: only allowed for STRING type"));
    }
    for (name, v) in props.into_iter().flatten() {
        schema_semantics(v, &format!("{path}.properties[{name}]"), out);
    }
    if let Some(items) = schema.get("items") {
        schema_semantics(items, &format!("{path}.items"), out);
    }
    for (i, s) in list(field(schema, "anyOf")).iter().enumerate() {
        schema_semantics(s, &format!("{path}.any_of[{i}]"), out);
    }
}

/// The first problem the real API would report with this request body.
pub fn validate(req: &Value, api: Api, model: &str) -> Result<(), Rejection> {
    // 1. The JSON must fit the proto.
    let mut v = Violations::default();
    v.unknown_fields(req, REQUEST_FIELDS, "");
    for (i, c) in list(field(req, "contents")).iter().enumerate() {
        v.content(c, &format!("contents[{i}]"));
    }
    if let Some(si) = field(req, "systemInstruction") {
        v.content(si, "system_instruction");
    }
    for (i, t) in list(field(req, "tools")).iter().enumerate() {
        let path = format!("tools[{i}]");
        v.unknown_fields(t, TOOL_FIELDS, &path);
        for (j, d) in list(field(t, "functionDeclarations")).iter().enumerate() {
            let path = format!("{path}.function_declarations[{j}]");
            v.unknown_fields(d, DECLARATION_FIELDS, &path);
            if let Some(p) = field(d, "parameters") {
                v.schema(api, p, &format!("{path}.parameters"));
            }
            if let Some(p) = field(d, "response") {
                v.schema(api, p, &format!("{path}.response"));
            }
        }
    }
    if let Some(tc) = field(req, "toolConfig") {
        v.unknown_fields(tc, TOOL_CONFIG_FIELDS, "tool_config");
        if let Some(fcc) = field(tc, "functionCallingConfig") {
            let path = "tool_config.function_calling_config";
            v.unknown_fields(fcc, CALLING_CONFIG_FIELDS, path);
            v.enum_value(
                fcc.get("mode"),
                CALLING_MODES,
                format!("{path}.mode"),
                &format!(
                    "type.googleapis.com/{}",
                    api.proto("FunctionCallingConfig.Mode")
                ),
            );
        }
    }
    if let Some(gc) = field(req, "generationConfig") {
        v.unknown_fields(gc, GENERATION_FIELDS, "generation_config");
        if let Some(tc) = field(gc, "thinkingConfig") {
            v.unknown_fields(tc, THINKING_FIELDS, "generation_config.thinking_config");
            v.enum_value(
                field(tc, "thinkingLevel"),
                THINKING_LEVELS,
                "generation_config.thinking_config.thinking_level".to_owned(),
                &format!(
                    "type.googleapis.com/{}",
                    api.proto("ThinkingConfig.ThinkingLevel")
                ),
            );
        }
        if let Some(s) = field(gc, "responseSchema") {
            v.schema(api, s, "generation_config.response_schema");
        }
    }
    if !v.0.is_empty() {
        return Err(v.rejection());
    }

    // 2. Then what it says must make sense.
    let contents = list(field(req, "contents"));
    if contents.is_empty() {
        return Err(Rejection::new(match api {
            Api::Studio => {
                "* GenerateContentRequest.contents: contents is not specified\n".to_owned()
            }
            Api::Vertex => format!(
                "Unable to submit request because it has an empty contents field. Learn more: {VERTEX_DOCS}"
            ),
        }));
    }
    if has(req, "cachedContent")
        && (has(req, "systemInstruction") || has(req, "tools") || has(req, "toolConfig"))
    {
        return Err(Rejection::new(
            "CachedContent can not be used with GenerateContent request setting system_instruction, tools or tool_config.\n\nProposed fix: move those values to CachedContent from GenerateContent request.",
        ));
    }
    for (i, c) in contents.iter().enumerate() {
        if !matches!(role(c), "user" | "model") {
            return Err(Rejection::new("Please use a valid role: user, model."));
        }
        if parts(c).is_empty() {
            return Err(Rejection::new(match api {
                Api::Studio => format!(
                    "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
                ),
                Api::Vertex => format!(
                    "Unable to submit request because it must include at least one parts field, which describes the prompt input. Learn more: {VERTEX_DOCS}"
                ),
            }));
        }
        for (j, p) in parts(c).iter().enumerate() {
            if !DATA_FIELDS.iter().any(|f| has(p, &camel(f))) {
                return Err(Rejection::new(format!(
                    "* GenerateContentRequest.contents[{i}].parts[{j}].data: required oneof field 'data' must have one initialized field\n"
                )));
            }
        }
    }

    let mut problems = Vec::new();
    for (i, t) in list(field(req, "tools")).iter().enumerate() {
        for (j, d) in list(field(t, "functionDeclarations")).iter().enumerate() {
            let path = format!("tools[{i}].function_declarations[{j}]");
            let name = d.get("name").and_then(Value::as_str).unwrap_or_default();
            if !valid_function_name(name) {
                problems.push(format!("{path}.name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:) or dashes (-), with a maximum length of 64."));
            }
            if let Some(p) = field(d, "parameters") {
                schema_semantics(p, &format!("{path}.parameters"), &mut problems);
            }
        }
    }
    if !problems.is_empty() {
        let message: String = problems
            .iter()
            .map(|p| format!("* GenerateContentRequest.{p}\n"))
            .collect();
        return Err(Rejection::new(message));
    }

    check_turns(contents)?;
    check_thinking(req, model)?;
    if is_gemini_3(model) {
        check_signatures(contents, api)?;
    }
    Ok(())
}

/// `snake_case` → `camelCase`.
fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut up = false;
    for c in name.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.push(c.to_ascii_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Function call turns come right after a user turn; function responses
/// answer the calls of the model turn just before them, as many as there
/// were calls, by name.
fn check_turns(contents: &[Value]) -> Result<(), Rejection> {
    for (i, c) in contents.iter().enumerate() {
        let prev = i.checked_sub(1).map(|k| &contents[k]);
        if role(c) == "model" && !call_names(c).is_empty() && prev.is_none_or(|p| role(p) != "user")
        {
            return Err(Rejection::new(
                "Please ensure that function call turn comes immediately after a user turn or after a function response turn.",
            ));
        }
        let responses = response_names(c);
        if role(c) == "user" && !responses.is_empty() {
            let calls = prev
                .filter(|p| role(p) == "model")
                .map(call_names)
                .unwrap_or_default();
            if calls.is_empty() {
                return Err(Rejection::new(
                    "Please ensure that function response turn comes immediately after a function call turn.",
                ));
            }
        }
        if role(c) == "model" {
            let calls = call_names(c);
            let Some(next) = contents.get(i + 1) else {
                continue;
            };
            if calls.is_empty() || role(next) != "user" {
                continue;
            }
            let responses = response_names(next);
            if responses.len() != calls.len() {
                return Err(Rejection::new(
                    "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.",
                ));
            }
            let mut a = calls.clone();
            let mut b = responses.clone();
            a.sort_unstable();
            b.sort_unstable();
            if a != b {
                return Err(Rejection::new(format!(
                    "Please ensure that the function response names match the function call names of the function call turn (calls: {}; responses: {}).",
                    calls.join(", "),
                    responses.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// `thinkingLevel` is for Gemini 3 only, never with `thinkingBudget`; 2.5
/// Pro cannot turn thinking off.
fn check_thinking(req: &Value, model: &str) -> Result<(), Rejection> {
    let Some(tc) = field(req, "generationConfig").and_then(|g| field(g, "thinkingConfig")) else {
        return Ok(());
    };
    let level = has(tc, "thinkingLevel");
    let budget = field(tc, "thinkingBudget").and_then(Value::as_i64);
    if level && budget.is_some() {
        return Err(Rejection::new(
            "You can only set only one of thinking budget and thinking level.",
        ));
    }
    if level && !is_gemini_3(model) {
        return Err(Rejection::new(
            "Thinking level is not supported for this model.",
        ));
    }
    if budget == Some(0) && model.starts_with("gemini-2.5-pro") {
        return Err(Rejection::new(
            "Budget 0 is invalid. This model only works in thinking mode.",
        ));
    }
    Ok(())
}

/// Gemini 3: in the current turn (the contents after the last user turn
/// that is not only function responses), the first `functionCall` part of
/// each model turn must carry its `thoughtSignature` (or the placeholder
/// that skips the check). Parallel calls after the first need none.
fn check_signatures(contents: &[Value], api: Api) -> Result<(), Rejection> {
    let start = contents
        .iter()
        .rposition(|c| {
            role(c) == "user"
                && parts(c)
                    .iter()
                    .any(|p| field(p, "functionResponse").is_none())
        })
        .map_or(0, |i| i + 1);
    for (i, c) in contents.iter().enumerate().skip(start) {
        if role(c) != "model" {
            continue;
        }
        let Some(first) = parts(c).iter().find(|p| field(p, "functionCall").is_some()) else {
            continue;
        };
        // Any signature passes (the placeholder `SKIP_SIGNATURE` included):
        // the mock cannot tell a real one from another.
        let signed = field(first, "thoughtSignature")
            .and_then(Value::as_str)
            .is_some_and(|s| s == SKIP_SIGNATURE || !s.is_empty());
        if signed {
            continue;
        }
        let name = field(first, "functionCall")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let position = i + 1;
        return Err(Rejection::new(match api {
            Api::Studio => format!(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:{name}` , position {position}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            ),
            Api::Vertex => format!(
                "Unable to submit request because function call `{name}` in the {position}. content block is missing a `thought_signature`. Learn more: https://docs.cloud.google.com/vertex-ai/generative-ai/docs/thought-signatures"
            ),
        }));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The answer

#[derive(Debug, Clone)]
enum Part {
    Thought(String),
    Text {
        text: String,
        signature: Option<String>,
    },
    Call {
        name: String,
        args: Value,
        signature: Option<String>,
    },
}

impl Part {
    fn json(&self) -> Value {
        match self {
            Part::Thought(t) => json!({"text": t, "thought": true}),
            Part::Text { text, signature } => {
                let mut p = json!({ "text": text });
                if let Some(s) = signature {
                    p["thoughtSignature"] = json!(s);
                }
                p
            }
            Part::Call {
                name,
                args,
                signature,
            } => {
                let mut p = json!({"functionCall": {"name": name, "args": args}});
                if let Some(s) = signature {
                    p["thoughtSignature"] = json!(s);
                }
                p
            }
        }
    }
}

/// Is thinking on, and are thoughts to be shown? Gemini 3 always thinks;
/// other models when `thinkingConfig` asks (`includeThoughts`, a non-zero
/// `thinkingBudget`, a `thinkingLevel`). Thought parts only with
/// `includeThoughts: true`, as Google does.
fn thinking(req: &Value, model: &str) -> (bool, bool) {
    let tc = field(req, "generationConfig").and_then(|g| field(g, "thinkingConfig"));
    let include = tc
        .and_then(|t| field(t, "includeThoughts"))
        .and_then(Value::as_bool)
        == Some(true);
    let budget = tc
        .and_then(|t| field(t, "thinkingBudget"))
        .and_then(Value::as_i64);
    let level = tc.is_some_and(|t| has(t, "thinkingLevel"));
    if is_gemini_3(model) {
        return (true, include);
    }
    if budget == Some(0) {
        return (false, false);
    }
    let on = include || level || budget.is_some();
    (on, include && on)
}

fn signature(model: &str, what: &str) -> String {
    base64(format!("llmux-mock-thought-signature:{model}:{what}").as_bytes())
}

/// The function calls to make: when the request declares functions, the
/// calling mode is not `NONE` and the last user turn is not function
/// responses.
fn calls(req: &Value, opts: &MockOptions, model: &str, sign: bool) -> Vec<Part> {
    let decls: Vec<&Value> = declarations(req)
        .into_iter()
        .filter(|d| d.get("name").and_then(Value::as_str).is_some())
        .collect();
    if decls.is_empty() {
        return vec![];
    }
    let fcc = field(req, "toolConfig").and_then(|t| field(t, "functionCallingConfig"));
    let mode = fcc
        .and_then(|f| f.get("mode"))
        .and_then(Value::as_str)
        .unwrap_or("AUTO")
        .to_ascii_uppercase();
    if mode == "NONE" {
        return vec![];
    }
    let contents = list(field(req, "contents"));
    let answering = contents
        .iter()
        .rev()
        .find(|c| role(c) == "user")
        .is_some_and(|c| {
            let p = parts(c);
            !p.is_empty() && p.iter().all(|p| field(p, "functionResponse").is_some())
        });
    if answering {
        return vec![];
    }
    let allowed: Vec<&str> = if mode == "ANY" {
        list(fcc.and_then(|f| field(f, "allowedFunctionNames")))
            .iter()
            .filter_map(Value::as_str)
            .collect()
    } else {
        vec![]
    };
    let name_of = |d: &Value| {
        d.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let n = opts.tool_calls.unwrap_or(1);
    (0..n)
        .map(|i| {
            let decl = if allowed.is_empty() {
                decls[i % decls.len()]
            } else {
                let want = allowed[i % allowed.len()];
                decls
                    .iter()
                    .find(|d| name_of(d) == want)
                    .copied()
                    .unwrap_or(decls[0])
            };
            let name = name_of(decl);
            let args = field(decl, "parameters")
                .or_else(|| field(decl, "parametersJsonSchema"))
                .map(example_for_schema)
                .unwrap_or_else(|| json!({}));
            Part::Call {
                signature: (sign && i == 0).then(|| signature(model, &name)),
                name,
                args,
            }
        })
        .collect()
}

/// A `GenerateContentResponse`, whole or as stream chunks.
pub struct Reply {
    api: Api,
    id: String,
    model: String,
    created: SystemTime,
    parts: Vec<Part>,
    candidates: usize,
    finish_reason: String,
    block_reason: Option<String>,
    prompt_tokens: u64,
    cached_tokens: u64,
    /// Per candidate.
    thoughts_tokens: Option<u64>,
    /// Per candidate.
    output_tokens: u64,
    /// Grounding with Google Search, on the last chunk of each candidate.
    grounding: Option<Value>,
}

/// When the request offers Google Search and no function is called: the
/// grounding of an answer that searched for the last user text, as Gemini
/// reports one (its query, one page, the text it supports).
fn grounding(req: &Value, text: &str) -> Option<Value> {
    let offered = list(field(req, "tools"))
        .iter()
        .filter_map(Value::as_object)
        .any(|t| t.keys().any(|k| snake(k) == "google_search"));
    if !offered {
        return None;
    }
    let query: Vec<&str> = list(field(req, "contents"))
        .iter()
        .rev()
        .find(|c| role(c) == "user")
        .map(|c| {
            parts(c)
                .iter()
                .filter_map(|p| field(p, "text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    Some(json!({
        "webSearchQueries": [query.join(" ")],
        "searchEntryPoint": {"renderedContent": "<div class=\"container\">llmux mock search</div>"},
        "groundingChunks": [{"web": {"uri": "https://example.com/llmux-mock", "title": "example.com"}}],
        "groundingSupports": [{"segment": {"startIndex": 0, "endIndex": text.len(), "text": text},
                               "groundingChunkIndices": [0]}]
    }))
}

fn word_count(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

impl Reply {
    pub fn new(req: &Value, opts: &MockOptions, api: Api, model: &str, body_len: usize) -> Reply {
        let (thinking_on, include_thoughts) = thinking(req, model);
        let thought = opts
            .thinking
            .clone()
            .unwrap_or_else(|| DEFAULT_THINKING.to_owned());
        let mut parts = Vec::new();
        if include_thoughts {
            parts.push(Part::Thought(thought.clone()));
        }
        let sign = thinking_on || is_gemini_3(model);
        let calls = calls(req, opts, model, sign);
        let mut grounded = None;
        let output_tokens = if calls.is_empty() {
            let gc = field(req, "generationConfig");
            let json_mime = gc
                .and_then(|g| field(g, "responseMimeType"))
                .and_then(Value::as_str)
                == Some("application/json");
            let text = opts.content.clone().unwrap_or_else(|| {
                if json_mime {
                    gc.and_then(|g| {
                        field(g, "responseSchema").or_else(|| field(g, "responseJsonSchema"))
                    })
                    .map(example_for_schema)
                    .unwrap_or_else(|| json!({}))
                    .to_string()
                } else {
                    DEFAULT_CONTENT.to_owned()
                }
            });
            let n = word_count(&text);
            grounded = grounding(req, &text);
            parts.push(Part::Text {
                text,
                signature: is_gemini_3(model).then(|| signature(model, "text")),
            });
            n
        } else {
            let n = 10 * calls.len() as u64;
            parts.extend(calls);
            n
        };
        let candidates = field(req, "generationConfig")
            .and_then(|g| field(g, "candidateCount"))
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .clamp(1, 8) as usize;
        let cached = opts.cached_tokens.unwrap_or(0);
        Reply {
            api,
            id: format!("mock-{}", next_id()),
            model: model.to_owned(),
            created: SystemTime::now(),
            parts,
            candidates,
            finish_reason: opts
                .finish_reason
                .clone()
                .unwrap_or_else(|| "STOP".to_owned()),
            block_reason: opts.block_reason.clone(),
            // Gemini counts cached tokens in the prompt.
            prompt_tokens: (body_len as u64 / 4).max(1) + cached,
            cached_tokens: cached,
            thoughts_tokens: thinking_on.then(|| word_count(&thought)),
            output_tokens,
            grounding: grounded,
        }
    }

    /// `usageMetadata` with these output and thought counts (per candidate).
    fn usage(&self, output: u64, thoughts: Option<u64>) -> Value {
        let n = self.candidates as u64;
        let mut u = Map::new();
        u.insert("promptTokenCount".into(), json!(self.prompt_tokens));
        if output > 0 {
            u.insert("candidatesTokenCount".into(), json!(output * n));
        }
        let thoughts = thoughts.map(|t| t * n).filter(|t| *t > 0);
        u.insert(
            "totalTokenCount".into(),
            json!(self.prompt_tokens + output * n + thoughts.unwrap_or(0)),
        );
        if self.cached_tokens > 0 {
            u.insert("cachedContentTokenCount".into(), json!(self.cached_tokens));
        }
        u.insert(
            "promptTokensDetails".into(),
            json!([{"modality": "TEXT", "tokenCount": self.prompt_tokens}]),
        );
        if self.cached_tokens > 0 {
            u.insert(
                "cacheTokensDetails".into(),
                json!([{"modality": "TEXT", "tokenCount": self.cached_tokens}]),
            );
        }
        if let Some(t) = thoughts {
            u.insert("thoughtsTokenCount".into(), json!(t));
        }
        if self.api == Api::Vertex {
            u.insert("trafficType".into(), json!("ON_DEMAND"));
        }
        Value::Object(u)
    }

    fn envelope(&self, mut body: Map<String, Value>) -> Value {
        body.insert("modelVersion".into(), json!(self.model));
        if self.api == Api::Vertex {
            body.insert("createTime".into(), json!(rfc3339(self.created)));
        }
        body.insert("responseId".into(), json!(self.id));
        Value::Object(body)
    }

    fn blocked(&self) -> bool {
        BLOCKED_FINISH.contains(&self.finish_reason.as_str())
    }

    /// A response with these parts in each candidate, `finishReason` when
    /// `last`.
    fn with_parts(&self, parts: &[Value], last: bool, usage: Value) -> Value {
        let candidates: Vec<Value> = (0..self.candidates)
            .map(|index| {
                let mut c = Map::new();
                if !(last && self.blocked() && parts.is_empty()) {
                    c.insert("content".into(), json!({"parts": parts, "role": "model"}));
                }
                if last {
                    c.insert("finishReason".into(), json!(self.finish_reason));
                    if let Some(g) = &self.grounding {
                        c.insert("groundingMetadata".into(), g.clone());
                    }
                }
                c.insert("index".into(), json!(index));
                Value::Object(c)
            })
            .collect();
        let mut body = Map::new();
        body.insert("candidates".into(), Value::Array(candidates));
        body.insert("usageMetadata".into(), usage);
        self.envelope(body)
    }

    fn prompt_feedback(&self) -> Option<Value> {
        let reason = self.block_reason.as_ref()?;
        let mut body = Map::new();
        body.insert("promptFeedback".into(), json!({ "blockReason": reason }));
        body.insert(
            "usageMetadata".into(),
            json!({
                "promptTokenCount": self.prompt_tokens,
                "totalTokenCount": self.prompt_tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}]
            }),
        );
        Some(self.envelope(body))
    }

    /// The non-streaming answer.
    pub fn response(&self) -> Value {
        if let Some(b) = self.prompt_feedback() {
            return b;
        }
        let parts: Vec<Value> = if self.blocked() {
            vec![]
        } else {
            self.parts.iter().map(Part::json).collect()
        };
        self.with_parts(
            &parts,
            true,
            self.usage(self.output_tokens, self.thoughts_tokens),
        )
    }

    /// The stream's chunks: thoughts and text word by word, each function
    /// call whole in its own chunk, a Gemini 3 text signature in a last
    /// empty text part; every chunk with the usage so far, the last with
    /// `finishReason` and the whole usage.
    pub fn chunks(&self) -> Vec<Value> {
        if let Some(b) = self.prompt_feedback() {
            return vec![b];
        }
        // (part, output tokens, thought tokens)
        let mut pieces: Vec<(Value, u64, u64)> = Vec::new();
        for p in &self.parts {
            match p {
                Part::Thought(t) => {
                    for w in words(t) {
                        let n = word_count(&w);
                        pieces.push((json!({"text": w, "thought": true}), 0, n));
                    }
                }
                Part::Text { text, signature } => {
                    for w in words(text) {
                        let n = word_count(&w);
                        pieces.push((json!({ "text": w }), n, 0));
                    }
                    if let Some(s) = signature {
                        pieces.push((json!({"text": "", "thoughtSignature": s}), 0, 0));
                    }
                }
                Part::Call { .. } => pieces.push((p.json(), 10, 0)),
            }
        }
        if self.blocked() {
            // Some text, then a last chunk without content.
            pieces.retain(|(p, _, _)| p.get("text").is_some_and(|t| t != ""));
            pieces.push((Value::Null, 0, 0));
        }
        if pieces.is_empty() {
            pieces.push((json!({"text": ""}), 0, 0));
        }
        let last = pieces.len() - 1;
        let (mut out_so_far, mut thoughts_so_far) = (0, 0);
        pieces
            .into_iter()
            .enumerate()
            .map(|(i, (part, out, thoughts))| {
                out_so_far += out;
                thoughts_so_far += thoughts;
                let parts: Vec<Value> = if part.is_null() { vec![] } else { vec![part] };
                if i == last {
                    self.with_parts(
                        &parts,
                        true,
                        self.usage(self.output_tokens, self.thoughts_tokens),
                    )
                } else {
                    let thoughts = self.thoughts_tokens.map(|_| thoughts_so_far);
                    self.with_parts(&parts, false, self.usage(out_so_far, thoughts))
                }
            })
            .collect()
    }

    /// The error a stream ends with under `error_event_after`.
    fn stream_error(opts: &MockOptions) -> Value {
        let message = opts
            .message
            .as_deref()
            .unwrap_or("The model is overloaded.");
        error_body(503, message, vec![])
    }

    /// `?alt=sse`: `data: {chunk}\r\n\r\n` events (no `[DONE]`), with the
    /// faults of `opts`.
    pub fn sse(&self, opts: &MockOptions) -> Vec<Bytes> {
        let mut events: Vec<Bytes> = self
            .chunks()
            .iter()
            .map(|c| Bytes::from(format!("data: {c}\r\n\r\n")))
            .collect();
        if opts.malformed {
            events.insert(
                1.min(events.len()),
                Bytes::from_static(b"data: {\"candidates\": [{\"content\": {\r\n\r\n"),
            );
        }
        if let Some(n) = opts.error_event_after {
            events.truncate(n);
            events.push(Bytes::from(format!(
                "data: {}\r\n\r\n",
                Self::stream_error(opts)
            )));
        }
        events
    }

    /// Without `alt=sse`: one JSON array, sent element by element.
    pub fn json_array(&self, opts: &MockOptions) -> Vec<Bytes> {
        let mut elements: Vec<String> = self.chunks().iter().map(Value::to_string).collect();
        if opts.malformed {
            elements.insert(1.min(elements.len()), "{\"candidates\": [{".to_owned());
        }
        if let Some(n) = opts.error_event_after {
            elements.truncate(n);
            elements.push(Self::stream_error(opts).to_string());
        }
        let mut out: Vec<Bytes> = elements
            .into_iter()
            .enumerate()
            .map(|(i, e)| Bytes::from(format!("{}{e}", if i == 0 { "[" } else { "\r\n," })))
            .collect();
        out.push(Bytes::from_static(b"]"));
        out
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{nanos:x}{:04}",
        NEXT_ID.fetch_add(1, Ordering::Relaxed) % 10_000
    )
}

/// `2025-01-02T03:04:05.678901Z`
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros()
    )
}

// ---------------------------------------------------------------------------
// The OAuth token endpoint (Vertex AI service accounts)

/// `POST /token`: a service account's signed JWT (`grant_type=urn:ietf:
/// params:oauth:grant-type:jwt-bearer&assertion=<JWT>`) for an access token.
/// The JWT's shape and claims are checked; its signature cannot be (the mock
/// has no public key), so tests verify it from the recorded request.
pub async fn token(State(s): State<Arc<MockState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return oauth_error(400, "invalid_request", "could not read the body"),
    };
    record(&s, &parts.method, &parts.uri, &parts.headers, &body);

    let opts = match MockOptions::read(None, &parts.headers, &Value::Null) {
        Ok(o) => o,
        Err(e) => {
            return oauth_error(
                400,
                "invalid_request",
                &format!("Invalid mock directive: {e}"),
            );
        }
    };
    if let Some(f) = opts.status.and_then(|_| fault(&s, &opts)) {
        let message = f.message.unwrap_or_else(|| "mock fault".to_owned());
        let kind = if f.status >= 500 {
            "internal_failure"
        } else {
            "invalid_grant"
        };
        let mut r = oauth_error(f.status, kind, &message);
        if let Some(secs) = f.retry_after {
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return r;
    }

    let form_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return oauth_error(
            400,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let form = form_pairs(&String::from_utf8_lossy(&body));
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("grant_type") {
        Some(JWT_BEARER) => {}
        Some(other) => {
            return oauth_error(
                400,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            );
        }
        None => {
            return oauth_error(
                400,
                "invalid_request",
                "Missing required parameter: grant_type",
            );
        }
    }
    let Some(assertion) = get("assertion") else {
        return oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let path = parts.uri.path();
    let audiences = [
        format!("http://{host}{path}"),
        format!("https://{host}{path}"),
    ];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Err((kind, description)) = check_assertion(assertion, &audiences, now) {
        return oauth_error(400, kind, &description);
    }

    let n = s.tokens_issued.fetch_add(1, Ordering::Relaxed) + 1;
    let ttl = s.args.token_ttl;
    let access_token = format!("ya29.mock-{n}");
    if let Ok(mut t) = s.tokens.lock() {
        t.insert(
            access_token.clone(),
            Instant::now() + Duration::from_secs(ttl),
        );
    }
    raw(
        200,
        "application/json; charset=utf-8",
        Bytes::from(
            json!({"access_token": access_token, "expires_in": ttl, "token_type": "Bearer"})
                .to_string(),
        ),
    )
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    raw(
        status,
        "application/json; charset=utf-8",
        Bytes::from(json!({"error": error, "error_description": description}).to_string()),
    )
}

/// A JWT part: base64url (padding tolerated) holding a JSON object.
fn jwt_json(part: &str) -> Option<Map<String, Value>> {
    let bytes = base64_decode(part)?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(o) => Some(o),
        _ => None,
    }
}

/// Checks a service account's JWT: three base64url parts, an RS256 header,
/// `iss`, a `scope` with cloud-platform, `aud` = this endpoint's URL, and
/// `iat`/`exp` at most an hour apart around now. The error kind and
/// description the token endpoint answers with otherwise.
pub fn check_assertion(
    jwt: &str,
    audiences: &[String],
    now: u64,
) -> Result<(), (&'static str, String)> {
    let invalid = |d: &str| ("invalid_grant", d.to_owned());
    let segments: Vec<&str> = jwt.split('.').collect();
    let [header, claims, sig] = segments.as_slice() else {
        return Err(invalid(
            "Invalid JWT: the assertion must be three base64url parts separated by dots.",
        ));
    };
    let Some(header) = jwt_json(header) else {
        return Err(invalid(
            "Invalid JWT: the header is not base64url-encoded JSON.",
        ));
    };
    match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => {}
        other => {
            return Err(invalid(&format!(
                "Invalid JWT: alg must be RS256, not {}.",
                other.unwrap_or("missing")
            )));
        }
    }
    let Some(claims) = jwt_json(claims) else {
        return Err(invalid(
            "Invalid JWT: the claim set is not base64url-encoded JSON.",
        ));
    };
    if base64_decode(sig).is_none_or(|s| s.is_empty()) {
        return Err(invalid("Invalid JWT Signature."));
    }
    if claims
        .get("iss")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(invalid("Invalid JWT: the iss claim is missing."));
    }
    let scoped = claims
        .get("scope")
        .and_then(Value::as_str)
        .is_some_and(|s| s.split_whitespace().any(|x| x == CLOUD_PLATFORM_SCOPE));
    if !scoped {
        return Err((
            "invalid_scope",
            format!(
                "Invalid OAuth scope or ID token audience provided: the scope claim must include {CLOUD_PLATFORM_SCOPE}."
            ),
        ));
    }
    let aud = claims.get("aud").and_then(Value::as_str).unwrap_or("");
    if !audiences.iter().any(|a| a == aud) {
        return Err(invalid(&format!(
            "Invalid JWT: Failed audience check. The right audience is {}",
            audiences.first().map(String::as_str).unwrap_or("")
        )));
    }
    let time = |k: &str| claims.get(k).and_then(Value::as_u64);
    let (Some(iat), Some(exp)) = (time("iat"), time("exp")) else {
        return Err(invalid(
            "Invalid JWT: the iat and exp claims are required (integers).",
        ));
    };
    if exp <= iat || exp - iat > MAX_JWT_LIFETIME || exp <= now || iat > now + CLOCK_SKEW {
        return Err(invalid(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Encodings

/// `a=b&c=d` pairs, percent-decoded (`+` is a space).
fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Base64, standard or URL-safe alphabet, padding optional.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    }

    fn with(mut v: Value, k: &str, x: Value) -> Value {
        v[k] = x;
        v
    }

    fn err(v: &Value) -> String {
        validate(v, Api::Studio, "gemini-2.5-flash")
            .expect_err("should be rejected")
            .message
    }

    fn ok(v: &Value) {
        assert_eq!(validate(v, Api::Studio, "gemini-2.5-flash"), Ok(()));
    }

    fn tool(parameters: Value) -> Value {
        json!([{"functionDeclarations": [{"name": "read_file", "parameters": parameters}]}])
    }

    fn weather_tools() -> Value {
        json!([{"functionDeclarations": [
            {"name": "get_weather", "parameters": {"type": "OBJECT", "properties": {
                "city": {"type": "STRING"}, "unit": {"type": "STRING", "enum": ["c", "f"]}}, "required": ["city"]}},
            {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}
        ]}])
    }

    #[test]
    fn rejects_unknown_fields_everywhere() {
        assert_eq!(
            err(&with(base(), "messages", json!([]))),
            "Invalid JSON payload received. Unknown name \"messages\": Cannot find field."
        );
        let r = validate(&with(base(), "stream", json!(true)), Api::Studio, "m").unwrap_err();
        assert_eq!(
            r.details[0]["@type"],
            "type.googleapis.com/google.rpc.BadRequest"
        );
        // snake_case spellings are the same fields.
        ok(&with(
            with(
                base(),
                "generation_config",
                json!({"max_output_tokens": 5, "thinking_config": {"thinking_budget": 10}}),
            ),
            "system_instruction",
            json!({"parts": [{"text": "be brief"}]}),
        ));
        assert_eq!(
            err(&with(base(), "generationConfig", json!({"maxTokens": 5}))),
            "Invalid JSON payload received. Unknown name \"maxTokens\" at 'generation_config': Cannot find field."
        );
        let typed = json!([{"role": "user", "parts": [{"type": "text", "text": "hi"}]}]);
        assert_eq!(
            err(&with(base(), "contents", typed)),
            "Invalid JSON payload received. Unknown name \"type\" at 'contents[0].parts[0]': Cannot find field."
        );
        let strict = json!([{"functionDeclarations": [{"name": "f", "strict": true, "parameters": {"type": "object"}}]}]);
        assert_eq!(
            err(&with(base(), "tools", strict)),
            "Invalid JSON payload received. Unknown name \"strict\" at 'tools[0].function_declarations[0]': Cannot find field."
        );
        let openai = json!([{"type": "function", "function": {"name": "f"}}]);
        assert!(err(&with(base(), "tools", openai)).starts_with(
            "Invalid JSON payload received. Unknown name \"type\" at 'tools[0]': Cannot find field.\n"
        ));
    }

    #[test]
    fn rejects_schema_fields_gemini_lacks() {
        let add = tool(
            json!({"type": "object", "properties": {"path": {"type": "string"}}, "additionalProperties": false}),
        );
        assert_eq!(
            err(&with(base(), "tools", add)),
            "Invalid JSON payload received. Unknown name \"additionalProperties\" at 'tools[0].function_declarations[0].parameters': Cannot find field."
        );
        let nested = tool(json!({"type": "object", "$defs": {}, "properties": {
            "a": {"type": "string"},
            "b": {"type": "array", "items": {"$ref": "#/$defs/x"}}}}));
        assert_eq!(
            err(&with(base(), "tools", nested)),
            "Invalid JSON payload received. Unknown name \"$defs\" at 'tools[0].function_declarations[0].parameters': Cannot find field.\nInvalid JSON payload received. Unknown name \"$ref\" at 'tools[0].function_declarations[0].parameters.properties[1].value.items': Cannot find field."
        );
        let listed =
            tool(json!({"type": "object", "properties": {"a": {"type": ["string", "null"]}}}));
        assert_eq!(
            err(&with(base(), "tools", listed)),
            "Invalid JSON payload received. Unknown name \"type\" at 'tools[0].function_declarations[0].parameters.properties[0].value': Proto field is not repeating, cannot start list."
        );
        let null = tool(
            json!({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}),
        );
        assert_eq!(
            err(&with(base(), "tools", null)),
            "Invalid value at 'tools[0].function_declarations[0].parameters.properties[0].value.any_of[1].type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), \"null\""
        );
        let v = validate(
            &with(base(), "tools", tool(json!({"type": "nul"}))),
            Api::Vertex,
            "m",
        );
        assert!(
            v.unwrap_err()
                .message
                .contains("(type.googleapis.com/google.cloud.aiplatform.v1.Type)")
        );
        for k in ["$schema", "strict"] {
            let t = tool(json!({"type": "object", k: true}));
            assert!(err(&with(base(), "tools", t)).contains(&format!("Unknown name \"{k}\"")));
        }
        let ints = tool(
            json!({"type": "object", "properties": {"n": {"type": "integer", "enum": [1, 2]}}}),
        );
        assert!(err(&with(base(), "tools", ints)).starts_with(
            "Invalid value at 'tools[0].function_declarations[0].parameters.properties[0].value.enum[0]' (TYPE_STRING), 1"
        ));
        // What Gemini does take: nullable, anyOf without null, any case.
        ok(&with(
            base(),
            "tools",
            tool(json!({"type": "OBJECT", "properties": {
            "a": {"type": "string", "nullable": true, "format": "date-time"},
            "b": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "c": {"type": "array", "items": {"type": "string"}}}, "required": ["a"]})),
        ));
        // parametersJsonSchema is full JSON Schema.
        let js = json!([{"functionDeclarations": [{"name": "f", "parametersJsonSchema":
            {"type": "object", "additionalProperties": false, "properties": {"a": {"type": ["string", "null"]}}}}]}]);
        ok(&with(base(), "tools", js));
    }

    #[test]
    fn checks_what_the_schema_says() {
        let undefined = tool(
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}),
        );
        assert_eq!(
            err(&with(base(), "tools", undefined)),
            "* GenerateContentRequest.tools[0].function_declarations[0].parameters.required[0]: property is not defined\n"
        );
        let no_items = tool(json!({"type": "object", "properties": {"tags": {"type": "array"}}}));
        assert_eq!(
            err(&with(base(), "tools", no_items)),
            "* GenerateContentRequest.tools[0].function_declarations[0].parameters.properties[tags].items: missing field.\n"
        );
        let bad_name = json!([{"functionDeclarations": [{"name": "read file"}]}]);
        assert!(err(&with(base(), "tools", bad_name))
            .starts_with("* GenerateContentRequest.tools[0].function_declarations[0].name: Invalid function name."));
    }

    #[test]
    fn checks_contents() {
        assert_eq!(
            err(&json!({})),
            "* GenerateContentRequest.contents: contents is not specified\n"
        );
        assert_eq!(
            err(&with(base(), "contents", json!([]))),
            "* GenerateContentRequest.contents: contents is not specified\n"
        );
        assert!(
            validate(&json!({"contents": []}), Api::Vertex, "m")
                .unwrap_err()
                .message
                .starts_with("Unable to submit request because it has an empty contents field.")
        );
        let assistant = json!([{"role": "assistant", "parts": [{"text": "hi"}]}]);
        assert_eq!(
            err(&with(base(), "contents", assistant)),
            "Please use a valid role: user, model."
        );
        let empty = json!([{"role": "user", "parts": [{"text": "a"}, {}]}]);
        assert_eq!(
            err(&with(base(), "contents", empty)),
            "* GenerateContentRequest.contents[0].parts[1].data: required oneof field 'data' must have one initialized field\n"
        );
        let no_parts = json!([{"role": "user", "parts": []}]);
        assert!(
            err(&with(base(), "contents", no_parts)).contains("contents.parts must not be empty")
        );
        let image = |data: &str| json!([{"role": "user", "parts": [{"text": "see"}, {"inlineData": {"mimeType": "image/png", "data": data}}]}]);
        ok(&with(base(), "contents", image("iVBORw0KGgo=")));
        assert!(err(&with(base(), "contents", image("data:image/png;base64,iVBOR"))).starts_with(
            "Invalid value at 'contents[0].parts[1].inline_data.data' (TYPE_BYTES), Base64 decoding failed for \"data:image/png;base64,"
        ));
        // No role: a user turn.
        ok(&json!({"contents": [{"parts": [{"text": "hi"}]}]}));
        let cached = with(
            with(base(), "cachedContent", json!("cachedContents/x")),
            "tools",
            weather_tools(),
        );
        assert!(err(&cached).starts_with("CachedContent can not be used"));
    }

    fn call(name: &str, sig: Option<&str>) -> Value {
        let mut p = json!({"functionCall": {"name": name, "args": {}}});
        if let Some(s) = sig {
            p["thoughtSignature"] = json!(s);
        }
        p
    }

    fn response(name: &str) -> Value {
        json!({"functionResponse": {"name": name, "response": {"content": "ok"}}})
    }

    fn history(calls: Vec<Value>, responses: Vec<Value>) -> Value {
        json!({"contents": [
            {"role": "user", "parts": [{"text": "weather and time?"}]},
            {"role": "model", "parts": calls},
            {"role": "user", "parts": responses}
        ], "tools": weather_tools()})
    }

    #[test]
    fn matches_function_responses_to_calls() {
        let sig = Some("c2ln");
        ok(&history(
            vec![call("get_weather", sig), call("get_time", None)],
            vec![response("get_time"), response("get_weather")],
        ));
        assert_eq!(
            err(&history(
                vec![call("get_weather", sig), call("get_time", None)],
                vec![response("get_weather")]
            )),
            "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn."
        );
        assert!(
            err(&history(
                vec![call("get_weather", sig)],
                vec![response("get_time")]
            ))
            .starts_with("Please ensure that the function response names match")
        );
        let orphan = json!({"contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "hello"}]},
            {"role": "user", "parts": [response("get_time")]}]});
        assert_eq!(
            err(&orphan),
            "Please ensure that function response turn comes immediately after a function call turn."
        );
        let after_model = json!({"contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "let me see"}]},
            {"role": "model", "parts": [call("get_time", sig)]}]});
        assert!(err(&after_model).starts_with(
            "Please ensure that function call turn comes immediately after a user turn"
        ));
        // An interrupted call, then the user speaks: the count is wrong.
        let interrupted = json!({"contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [call("get_time", sig)]},
            {"role": "user", "parts": [{"text": "never mind"}]}]});
        assert!(
            err(&interrupted)
                .starts_with("Please ensure that the number of function response parts")
        );
    }

    #[test]
    fn gemini_3_wants_thought_signatures_in_the_current_turn() {
        let g3 = |v: &Value, api| validate(v, api, "gemini-3-pro-preview");
        let unsigned = history(
            vec![call("get_weather", None)],
            vec![response("get_weather")],
        );
        assert_eq!(
            g3(&unsigned, Api::Studio).unwrap_err().message,
            "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:get_weather` , position 2. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
        );
        assert_eq!(
            g3(&unsigned, Api::Vertex).unwrap_err().message,
            "Unable to submit request because function call `get_weather` in the 2. content block is missing a `thought_signature`. Learn more: https://docs.cloud.google.com/vertex-ai/generative-ai/docs/thought-signatures"
        );
        // Gemini 2.5 does not check.
        ok(&unsigned);
        // The placeholder passes; parallel calls after the first need none.
        let skip = history(
            vec![
                call("get_weather", Some(SKIP_SIGNATURE)),
                call("get_time", None),
            ],
            vec![response("get_weather"), response("get_time")],
        );
        assert_eq!(g3(&skip, Api::Studio), Ok(()));
        // A signature must be base64 (a bytes field).
        let garbage = history(
            vec![call("get_weather", Some("not base64!"))],
            vec![response("get_weather")],
        );
        assert!(
            g3(&garbage, Api::Studio)
                .unwrap_err()
                .message
                .contains("thought_signature' (TYPE_BYTES)")
        );
        // Sequential steps: each needs its own signature.
        let mut steps = history(
            vec![call("get_weather", Some("c2ln"))],
            vec![response("get_weather")],
        );
        steps["contents"].as_array_mut().unwrap().extend([
            json!({"role": "model", "parts": [call("get_time", None)]}),
            json!({"role": "user", "parts": [response("get_time")]}),
        ]);
        assert!(
            g3(&steps, Api::Studio)
                .unwrap_err()
                .message
                .contains("position 4")
        );
        // Earlier turns are not checked.
        let mut later = unsigned.clone();
        later["contents"].as_array_mut().unwrap().extend([
            json!({"role": "model", "parts": [{"text": "sunny"}]}),
            json!({"role": "user", "parts": [{"text": "thanks"}]}),
        ]);
        assert_eq!(g3(&later, Api::Studio), Ok(()));
    }

    #[test]
    fn checks_thinking_config() {
        let tc = |c: Value| with(base(), "generationConfig", json!({ "thinkingConfig": c }));
        assert_eq!(
            err(&tc(json!({"thinkingLevel": "low"}))),
            "Thinking level is not supported for this model."
        );
        assert_eq!(
            validate(
                &tc(json!({"thinkingLevel": "LOW"})),
                Api::Studio,
                "gemini-3-flash-preview"
            ),
            Ok(())
        );
        assert!(
            err(&tc(json!({"thinkingLevel": "lots"})))
                .starts_with("Invalid value at 'generation_config.thinking_config.thinking_level'")
        );
        assert!(
            validate(
                &tc(json!({"thinkingBudget": 0})),
                Api::Studio,
                "gemini-2.5-pro"
            )
            .is_err()
        );
        assert!(
            validate(
                &tc(json!({"thinkingBudget": 9, "thinkingLevel": "high"})),
                Api::Studio,
                "gemini-3-pro-preview"
            )
            .is_err()
        );
    }

    fn reply(req: &Value, opts: &MockOptions, model: &str) -> Value {
        Reply::new(req, opts, Api::Studio, model, 40).response()
    }

    #[test]
    fn answers_text_with_usage() {
        let r = reply(&base(), &MockOptions::default(), "gemini-2.5-flash");
        let c = &r["candidates"][0];
        assert_eq!(
            c["content"],
            json!({"parts": [{"text": DEFAULT_CONTENT}], "role": "model"})
        );
        assert_eq!(c["finishReason"], "STOP");
        assert_eq!(c["index"], 0);
        assert_eq!(r["modelVersion"], "gemini-2.5-flash");
        assert!(r["responseId"].as_str().unwrap().starts_with("mock-"));
        let u = &r["usageMetadata"];
        assert_eq!(u["promptTokenCount"], 10);
        assert_eq!(u["candidatesTokenCount"], 4);
        assert_eq!(u["totalTokenCount"], 14);
        assert!(u.get("thoughtsTokenCount").is_none());
        assert!(u.get("cachedContentTokenCount").is_none());
        assert!(r.get("createTime").is_none());

        let opts = MockOptions {
            content: Some("a b".into()),
            cached_tokens: Some(6),
            finish_reason: Some("MAX_TOKENS".into()),
            ..Default::default()
        };
        let req = with(base(), "generationConfig", json!({"candidateCount": 2}));
        let r = reply(&req, &opts, "gemini-2.5-flash");
        assert_eq!(r["candidates"].as_array().unwrap().len(), 2);
        assert_eq!(r["candidates"][1]["index"], 1);
        assert_eq!(r["candidates"][1]["finishReason"], "MAX_TOKENS");
        assert_eq!(r["candidates"][1]["content"]["parts"][0]["text"], "a b");
        let u = &r["usageMetadata"];
        assert_eq!(u["promptTokenCount"], 16);
        assert_eq!(u["cachedContentTokenCount"], 6);
        assert_eq!(u["candidatesTokenCount"], 4);
        assert_eq!(u["totalTokenCount"], 20);

        let v = Reply::new(
            &base(),
            &MockOptions::default(),
            Api::Vertex,
            "gemini-2.5-flash",
            4,
        )
        .response();
        assert!(v["createTime"].as_str().unwrap().ends_with('Z'));
        assert_eq!(v["usageMetadata"]["trafficType"], "ON_DEMAND");
    }

    #[test]
    fn answers_json_for_a_response_schema() {
        let req = with(
            base(),
            "generationConfig",
            json!({"responseMimeType": "application/json",
            "responseSchema": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}}}),
        );
        let r = reply(&req, &MockOptions::default(), "gemini-2.5-flash");
        assert_eq!(
            r["candidates"][0]["content"]["parts"][0]["text"],
            "{\"n\":1}"
        );
    }

    #[test]
    fn blocks_and_filters() {
        let opts = MockOptions {
            block_reason: Some("SAFETY".into()),
            ..Default::default()
        };
        let r = reply(&base(), &opts, "gemini-2.5-flash");
        assert!(r.get("candidates").is_none());
        assert_eq!(r["promptFeedback"], json!({"blockReason": "SAFETY"}));
        assert_eq!(r["usageMetadata"]["promptTokenCount"], 10);
        let chunks = Reply::new(&base(), &opts, Api::Studio, "m", 40).chunks();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0]["promptFeedback"]["blockReason"], "SAFETY");

        let opts = MockOptions {
            finish_reason: Some("SAFETY".into()),
            ..Default::default()
        };
        let r = reply(&base(), &opts, "gemini-2.5-flash");
        assert_eq!(
            r["candidates"][0],
            json!({"finishReason": "SAFETY", "index": 0})
        );
        let chunks = Reply::new(&base(), &opts, Api::Studio, "m", 40).chunks();
        assert_eq!(
            chunks.last().unwrap()["candidates"][0],
            json!({"finishReason": "SAFETY", "index": 0})
        );
        assert_eq!(
            chunks[0]["candidates"][0]["content"]["parts"][0]["text"],
            "Hello"
        );
    }

    #[test]
    fn calls_functions() {
        let req = with(base(), "tools", weather_tools());
        let opts = MockOptions {
            tool_calls: Some(3),
            ..Default::default()
        };
        let r = reply(&req, &opts, "gemini-2.5-flash");
        let parts = r["candidates"][0]["content"]["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts[0],
            json!({"functionCall": {"name": "get_weather", "args": {"city": "mock", "unit": "c"}}})
        );
        assert_eq!(parts[1]["functionCall"]["name"], "get_time");
        assert_eq!(parts[2]["functionCall"]["name"], "get_weather");
        assert_eq!(r["candidates"][0]["finishReason"], "STOP");
        assert_eq!(r["usageMetadata"]["candidatesTokenCount"], 30);

        // Gemini 3: a signature on the first call only.
        let r = reply(&req, &opts, "gemini-3-pro-preview");
        let parts = r["candidates"][0]["content"]["parts"].as_array().unwrap();
        let sig = parts[0]["thoughtSignature"].as_str().unwrap();
        assert!(base64_decode(sig).is_some());
        assert!(parts[1].get("thoughtSignature").is_none());
        assert!(r["usageMetadata"]["thoughtsTokenCount"].is_u64());

        // ANY with allowed names.
        let forced = with(
            req.clone(),
            "toolConfig",
            json!({"functionCallingConfig":
            {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}),
        );
        let r = reply(&forced, &MockOptions::default(), "gemini-2.5-flash");
        assert_eq!(
            r["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
            "get_time"
        );

        // NONE, or answering function responses: text.
        let none = with(
            req.clone(),
            "toolConfig",
            json!({"functionCallingConfig": {"mode": "NONE"}}),
        );
        let r = reply(&none, &MockOptions::default(), "gemini-2.5-flash");
        assert_eq!(
            r["candidates"][0]["content"]["parts"][0]["text"],
            DEFAULT_CONTENT
        );
        let answering = history(
            vec![call("get_weather", None)],
            vec![response("get_weather")],
        );
        let r = reply(&answering, &MockOptions::default(), "gemini-2.5-flash");
        assert_eq!(
            r["candidates"][0]["content"]["parts"][0]["text"],
            DEFAULT_CONTENT
        );
    }

    #[test]
    fn thinks_when_asked() {
        let tc = |c: Value| with(base(), "generationConfig", json!({ "thinkingConfig": c }));
        let r = reply(
            &tc(json!({"includeThoughts": true, "thinkingBudget": 1024})),
            &MockOptions::default(),
            "gemini-2.5-flash",
        );
        let parts = r["candidates"][0]["content"]["parts"].as_array().unwrap();
        assert_eq!(parts[0], json!({"text": DEFAULT_THINKING, "thought": true}));
        assert_eq!(parts[1]["text"], DEFAULT_CONTENT);
        assert_eq!(r["usageMetadata"]["thoughtsTokenCount"], 5);
        assert_eq!(r["usageMetadata"]["totalTokenCount"], 10 + 4 + 5);
        // A budget without includeThoughts: thinking, but no thought part.
        let r = reply(
            &tc(json!({"thinkingBudget": 1024})),
            &MockOptions::default(),
            "gemini-2.5-flash",
        );
        assert_eq!(
            r["candidates"][0]["content"]["parts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(r["usageMetadata"]["thoughtsTokenCount"], 5);
        // Gemini 3 text answers carry a signature on the text part.
        let r = reply(&base(), &MockOptions::default(), "gemini-3-flash-preview");
        assert!(r["candidates"][0]["content"]["parts"][0]["thoughtSignature"].is_string());
    }

    #[test]
    fn streams_chunks_with_the_finish_on_the_last() {
        let req = with(
            base(),
            "generationConfig",
            json!({"thinkingConfig": {"includeThoughts": true}}),
        );
        let opts = MockOptions {
            content: Some("one two three".into()),
            ..Default::default()
        };
        let reply = Reply::new(&req, &opts, Api::Studio, "gemini-2.5-flash", 40);
        let chunks = reply.chunks();
        let (mut text, mut thought) = (String::new(), String::new());
        for c in &chunks {
            for p in c["candidates"][0]["content"]["parts"].as_array().unwrap() {
                let t = p["text"].as_str().unwrap();
                if p["thought"] == true {
                    thought.push_str(t)
                } else {
                    text.push_str(t)
                }
            }
            assert!(c["usageMetadata"]["promptTokenCount"].is_u64());
            assert_eq!(c["responseId"], chunks[0]["responseId"]);
        }
        assert_eq!(text, "one two three");
        assert_eq!(thought, DEFAULT_THINKING);
        assert_eq!(chunks.len(), 5 + 3);
        for c in &chunks[..chunks.len() - 1] {
            assert!(c["candidates"][0].get("finishReason").is_none());
        }
        let last = chunks.last().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(last["usageMetadata"], reply.response()["usageMetadata"]);
        // Counts so far, never more than the total.
        assert_eq!(chunks[5]["usageMetadata"]["candidatesTokenCount"], 1);
        assert_eq!(chunks[5]["usageMetadata"]["thoughtsTokenCount"], 5);

        let sse = reply.sse(&MockOptions::default());
        assert!(
            sse.iter()
                .all(|e| e.starts_with(b"data: {") && e.ends_with(b"}\r\n\r\n"))
        );
        assert!(!sse.iter().any(|e| e.windows(6).any(|w| w == b"[DONE]")));
    }

    #[test]
    fn streams_each_call_whole_and_gemini_3_text_signatures_last() {
        let req = with(base(), "tools", weather_tools());
        let opts = MockOptions {
            tool_calls: Some(2),
            ..Default::default()
        };
        let chunks = Reply::new(&req, &opts, Api::Studio, "gemini-3-pro-preview", 40).chunks();
        assert_eq!(chunks.len(), 2);
        let p0 = &chunks[0]["candidates"][0]["content"]["parts"][0];
        assert_eq!(
            p0["functionCall"]["args"],
            json!({"city": "mock", "unit": "c"})
        );
        assert!(p0["thoughtSignature"].is_string());
        assert_eq!(chunks[1]["candidates"][0]["finishReason"], "STOP");
        assert_eq!(chunks[1]["usageMetadata"]["candidatesTokenCount"], 20);

        let chunks = Reply::new(
            &base(),
            &MockOptions::default(),
            Api::Studio,
            "gemini-3-pro-preview",
            40,
        )
        .chunks();
        let last = &chunks.last().unwrap()["candidates"][0]["content"]["parts"][0];
        assert_eq!(last["text"], "");
        assert!(last["thoughtSignature"].is_string());
    }

    #[test]
    fn stream_faults() {
        let reply = Reply::new(&base(), &MockOptions::default(), Api::Studio, "m", 40);
        let opts = MockOptions {
            error_event_after: Some(2),
            ..Default::default()
        };
        let sse = reply.sse(&opts);
        assert_eq!(sse.len(), 3);
        assert_eq!(
            &sse[2][..],
            b"data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n"
        );
        let malformed = MockOptions {
            malformed: true,
            ..Default::default()
        };
        let sse = reply.sse(&malformed);
        assert!(serde_json::from_slice::<Value>(&sse[1][6..]).is_err());

        let array: Vec<u8> = reply.json_array(&MockOptions::default()).concat();
        let parsed: Value = serde_json::from_slice(&array).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), reply.chunks().len());
    }

    #[test]
    fn maps_statuses() {
        for (code, name) in [
            (400, "INVALID_ARGUMENT"),
            (401, "UNAUTHENTICATED"),
            (403, "PERMISSION_DENIED"),
            (404, "NOT_FOUND"),
            (429, "RESOURCE_EXHAUSTED"),
            (500, "INTERNAL"),
            (503, "UNAVAILABLE"),
            (504, "DEADLINE_EXCEEDED"),
        ] {
            assert_eq!(status_name(code), name);
            assert_eq!(error_body(code, "m", vec![])["error"]["code"], code);
        }
    }

    fn b64url(v: &Value) -> String {
        base64(v.to_string().as_bytes())
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_")
    }

    fn jwt(header: Value, claims: Value) -> String {
        format!("{}.{}.{}", b64url(&header), b64url(&claims), "c2lnbmF0dXJl")
    }

    #[test]
    fn checks_service_account_assertions() {
        let aud = "http://127.0.0.1:9000/token".to_owned();
        let auds = [aud.clone()];
        let now = 1_750_000_000;
        let claims = json!({"iss": "sa@p.iam.gserviceaccount.com", "scope": CLOUD_PLATFORM_SCOPE,
            "aud": aud, "iat": now, "exp": now + 3600});
        let rs = json!({"alg": "RS256", "typ": "JWT", "kid": "k1"});
        assert_eq!(
            check_assertion(&jwt(rs.clone(), claims.clone()), &auds, now + 10),
            Ok(())
        );
        let bad = |h: Value, c: Value| check_assertion(&jwt(h, c), &auds, now + 10).unwrap_err();
        assert!(
            bad(json!({"alg": "HS256"}), claims.clone())
                .1
                .contains("RS256")
        );
        let long = with(claims.clone(), "exp", json!(now + 7200));
        assert!(bad(rs.clone(), long).1.contains("short-lived token"));
        let other_aud = with(
            claims.clone(),
            "aud",
            json!("https://oauth2.googleapis.com/token"),
        );
        assert!(
            bad(rs.clone(), other_aud)
                .1
                .contains("Failed audience check")
        );
        let no_scope = with(
            claims.clone(),
            "scope",
            json!("https://www.googleapis.com/auth/userinfo.email"),
        );
        assert_eq!(bad(rs.clone(), no_scope).0, "invalid_scope");
        let mut no_iss = claims.clone();
        no_iss.as_object_mut().unwrap().remove("iss");
        assert_eq!(bad(rs.clone(), no_iss).0, "invalid_grant");
        assert!(check_assertion("a.b", &auds, now).is_err());
        assert!(
            check_assertion(&format!("{}.{}.", b64url(&rs), b64url(&claims)), &auds, now).is_err()
        );
        // Expired.
        assert!(check_assertion(&jwt(rs, claims), &auds, now + 4000).is_err());
    }

    #[test]
    fn decodes_forms_and_base64() {
        assert_eq!(
            form_pairs(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c&x=1+2"
            ),
            [
                ("grant_type".to_owned(), JWT_BEARER.to_owned()),
                ("assertion".to_owned(), "a.b.c".to_owned()),
                ("x".to_owned(), "1 2".to_owned())
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(base64_decode("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode("Zm8").unwrap(), b"fo");
        assert_eq!(base64_decode("-_8").unwrap(), base64_decode("+/8").unwrap());
        assert!(base64_decode("Z").is_none());
        assert!(base64_decode("a b").is_none());
        assert!(base64_decode(SKIP_SIGNATURE).is_some());
        assert!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400))
                .starts_with("2000-02-29T00:00:00")
        );
    }

    #[test]
    fn reads_directives_from_gemini_contents() {
        let req = json!({"contents": [
            {"role": "user", "parts": [{"text": "<mock>{\"content\": \"first\"}</mock>"}]},
            {"role": "model", "parts": [call("f", None)]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response":
                {"content": "x <mock>{\"finish_reason\": \"MAX_TOKENS\"}</mock>"}}}]}]});
        let o = MockOptions::read(None, &HeaderMap::new(), &req).unwrap();
        assert_eq!(o.finish_reason.as_deref(), Some("MAX_TOKENS"));
        assert_eq!(o.content, None);
    }
}
