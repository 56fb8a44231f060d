//! Amazon Bedrock Runtime's Converse API on the mock (docs/mock.md, "Amazon
//! Bedrock"): `POST /model/{modelId}/converse` answers JSON,
//! `POST /model/{modelId}/converse-stream` the binary
//! `application/vnd.amazon.eventstream`, encoded with
//! `aws-smithy-eventstream`. Requests are checked the way Bedrock checks
//! them (the shape of the SigV4 or bearer authorization, then the body),
//! and the shared directives steer the answer and its faults, plus
//! exception frames mid-stream and frames split across writes.

use super::answer::{DEFAULT_CONTENT, MockOptions, example_for_schema, words};
use super::anthropic::{DEFAULT_THINKING, base64, pieces};
use super::{MockState, StreamGuard, fault, paced_stream, raw, record_with};
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue as FrameValue, Message};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The namespace after the exception name in `x-amzn-ErrorType`.
const BEDROCK_NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";
/// The namespace of the authentication failures, which AWS's front door
/// (not Bedrock) sends.
const CORAL_NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazon.coral.service/";

pub const EVENT_STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// Top-level fields of `ConverseRequest` / `ConverseStreamRequest` (the
/// model id is in the path).
const DUPLICATE_DOCUMENT_NAMES: &str =
    "The model returned the following errors: Messages can't contain duplicate document names";
const REQUEST_FIELDS: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "guardrailConfig",
    "promptVariables",
    "requestMetadata",
    "performanceConfig",
    "serviceTier",
    "outputConfig",
];

/// The members of the `ContentBlock` union.
const CONTENT_MEMBERS: &[&str] = &[
    "text",
    "image",
    "document",
    "video",
    "audio",
    "toolUse",
    "toolResult",
    "guardContent",
    "cachePoint",
    "reasoningContent",
    "citationsContent",
    "searchResult",
];

/// The members of the `ToolResultContentBlock` union.
const TOOL_RESULT_MEMBERS: &[&str] =
    &["json", "text", "image", "document", "video", "searchResult"];

/// The members of the `SystemContentBlock` union.
const SYSTEM_MEMBERS: &[&str] = &["text", "guardContent", "cachePoint"];

/// The members of the `Tool` union.
const TOOL_MEMBERS: &[&str] = &["toolSpec", "systemTool", "cachePoint"];

const INFERENCE_FIELDS: &[&str] = &["maxTokens", "temperature", "topP", "stopSequences"];
const IMAGE_FORMATS: &[&str] = &["png", "jpeg", "gif", "webp"];
const DOCUMENT_FORMATS: &[&str] = &[
    "pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md",
];

/// The tool-use id pattern the mock holds llmux to: Bedrock's original
/// `[a-zA-Z0-9_-]+` (its model now also allows `.` and `:`; ids that fit
/// the stricter one pass everywhere).
const TOOL_USE_ID_PATTERN: &str = "[a-zA-Z0-9_-]+";
const MAX_ID_LEN: usize = 64;
const MIN_THINKING_BUDGET: u64 = 1024;

pub const TOOL_CONFIG_REQUIRED: &str =
    "The toolConfig field must be defined when using toolUse and toolResult content blocks.";
pub const CACHING_UNSUPPORTED: &str = "You invoked an unsupported model or your request did not allow prompt caching. See the documentation for more information.";
const FIRST_MESSAGE_USER: &str = "A conversation must start with a user message. Try again with a conversation that starts with a user message.";
const ALTERNATE_ROLES: &str = "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.";

pub async fn converse(
    State(s): State<Arc<MockState>>,
    Path(model_id): Path<String>,
    req: Request,
) -> Response {
    handle(s, req, model_id, false).await
}

pub async fn converse_stream(
    State(s): State<Arc<MockState>>,
    Path(model_id): Path<String>,
    req: Request,
) -> Response {
    handle(s, req, model_id, true).await
}

async fn handle(s: Arc<MockState>, req: Request, model_id: String, streaming: bool) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return validation_error("could not read the body"),
    };
    // `path` is the path as received, as for the other routes (so the
    // model id stays percent-encoded there); `raw_path` says so explicitly,
    // and `model_id` is the decoded id.
    let mut extra = Map::new();
    extra.insert("raw_path".to_owned(), json!(parts.uri.path()));
    extra.insert("model_id".to_owned(), json!(model_id));
    record_with(&s, &parts.method, &parts.uri, &parts.headers, &body, extra);

    if let Err(message) = check_auth(&parts.headers) {
        return error(
            403,
            "UnrecognizedClientException",
            CORAL_NAMESPACE,
            &message,
            None,
        );
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return validation_error("Malformed input request: the body must be a JSON object.");
        }
        Err(e) => {
            return validation_error(&format!(
                "Malformed input request: {e}, please reformat your input and try again."
            ));
        }
    };
    let opts = match MockOptions::read(None, &parts.headers, &request) {
        Ok(o) => o,
        Err(e) => return validation_error(&format!("Invalid mock directive: {e}")),
    };
    if let Some(f) = fault(&s, &opts) {
        let name = opts
            .error_type
            .clone()
            .unwrap_or_else(|| exception_name(f.status).to_owned());
        let message = f
            .message
            .unwrap_or_else(|| default_message(&name).to_owned());
        return error(f.status, &name, BEDROCK_NAMESPACE, &message, f.retry_after);
    }
    if let Err(message) = validate(&request, &model_id) {
        return validation_error(&message);
    }

    let delay = opts.first_byte_delay_ms.unwrap_or(s.args.latency_ms);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let reply = Reply::new(&request, &opts, body.len());
    if streaming {
        let tps = opts.tokens_per_sec.unwrap_or(s.args.tokens_per_sec);
        s.streams_started.fetch_add(1, Ordering::Relaxed);
        let guard = StreamGuard {
            state: s.clone(),
            completed: false,
        };
        let mut r = paced_stream(
            reply.frames(&opts),
            opts.reset_after_chunks,
            tps,
            guard,
            EVENT_STREAM_CONTENT_TYPE,
            opts.split_frames,
        );
        r.headers_mut().remove(http::header::CACHE_CONTROL);
        r.headers_mut().insert("x-amzn-requestid", request_id());
        return r;
    }
    if opts.malformed {
        let mut r = raw(
            200,
            "application/json",
            Bytes::from_static(b"{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{"),
        );
        r.headers_mut().insert("x-amzn-requestid", request_id());
        return r;
    }
    let mut r = raw(
        200,
        "application/json",
        Bytes::from(reply.converse().to_string()),
    );
    r.headers_mut().insert("x-amzn-requestid", request_id());
    r
}

// ---------------------------------------------------------------------------
// Errors

/// The Bedrock exception for an HTTP status.
fn exception_name(status: u16) -> &'static str {
    match status {
        400 => "ValidationException",
        401 => "UnrecognizedClientException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        500..=599 => "InternalServerException",
        _ => "ValidationException",
    }
}

fn default_message(exception: &str) -> &'static str {
    match exception {
        "AccessDeniedException" => {
            "You don't have access to the model with the specified model ID."
        }
        "ResourceNotFoundException" => "The requested resource could not be found.",
        "ModelTimeoutException" => {
            "Model has timed out in processing the request. Try your request again."
        }
        "ModelErrorException" => "The model returned an error. Try your request again.",
        "ThrottlingException" => "Too many requests, please wait before trying again.",
        "InternalServerException" => {
            "The server encountered an internal error while processing the request."
        }
        "ServiceUnavailableException" => "Bedrock is unable to process your request.",
        "ModelNotReadyException" => {
            "Model is not ready for inference. Wait and try your request again."
        }
        "UnrecognizedClientException" => "The security token included in the request is invalid.",
        _ => "mock fault",
    }
}

/// An error the way Bedrock sends one: the exception in `x-amzn-ErrorType`
/// and `{"message": …}`.
fn error(
    status: u16,
    exception: &str,
    namespace: &str,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    let body = json!({ "message": message });
    let mut r = raw(status, "application/json", Bytes::from(body.to_string()));
    if let Ok(v) = HeaderValue::from_str(&format!("{exception}:{namespace}")) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r.headers_mut().insert("x-amzn-requestid", request_id());
    if let Some(secs) = retry_after {
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

fn validation_error(message: &str) -> Response {
    error(400, "ValidationException", BEDROCK_NAMESPACE, message, None)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A request id shaped like AWS's (a UUID).
fn request_id() -> HeaderValue {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (nanos >> 32) as u32,
        (nanos >> 16) as u16,
        nanos & 0xfff,
        n & 0xfff,
        n & 0xffff_ffff_ffff
    );
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("mock-request"))
}

// ---------------------------------------------------------------------------
// Authentication (its shape only: signatures are checked elsewhere)

/// `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
/// Signature=…` with `x-amz-date`, or `Authorization: Bearer <key>`.
pub fn check_auth(headers: &HeaderMap) -> Result<(), String> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err("Missing Authentication Token".to_owned());
    };
    let Ok(auth) = value.to_str() else {
        return Err("The Authorization header is not valid text.".to_owned());
    };
    if let Some(token) = auth.strip_prefix("Bearer ") {
        if token.trim().is_empty() {
            return Err("Bearer token is empty.".to_owned());
        }
        return Ok(());
    }
    if let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") {
        return check_sigv4(rest, headers);
    }
    Err(format!(
        "Authorization header must be 'AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…' or 'Bearer <API key>', got '{}…'",
        auth.chars().take(16).collect::<String>()
    ))
}

fn check_sigv4(params: &str, headers: &HeaderMap) -> Result<(), String> {
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in params.split(',') {
        let part = part.trim();
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!(
                "Authorization header parameter '{part}' is not of the form key=value."
            ));
        };
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {
                return Err(format!(
                    "Authorization header has an unknown parameter '{k}'."
                ));
            }
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.".to_owned());
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = scope[..] else {
        return Err(format!(
            "Credential should be scoped to a valid region, not '{credential}': <access key>/<YYYYMMDD>/<region>/bedrock/aws4_request."
        ));
    };
    if akid.is_empty() || !akid.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("The access key id '{akid}' is not valid."));
    }
    if date.len() != 8 || !date.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "Credential should be scoped to a valid date (YYYYMMDD), not '{date}'."
        ));
    }
    if region.is_empty()
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "Credential should be scoped to a valid region, not '{region}'."
        ));
    }
    if service != "bedrock" {
        return Err(format!(
            "Credential should be scoped to correct service: 'bedrock', not '{service}'."
        ));
    }
    if terminator != "aws4_request" {
        return Err(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        ));
    }
    let names: Vec<&str> = signed.split(';').collect();
    for name in &names {
        if name.is_empty() || *name != name.to_ascii_lowercase() {
            return Err(format!(
                "SignedHeaders must be lowercase header names separated by ';', not '{signed}'."
            ));
        }
        if headers.get(*name).is_none() {
            return Err(format!(
                "SignedHeaders lists '{name}', which the request does not have."
            ));
        }
    }
    for required in ["host", "x-amz-date"] {
        if !names.contains(&required) {
            return Err(format!("'{required}' must be a signed header."));
        }
    }
    if signature.len() != 64
        || !signature
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        return Err("Signature must be 64 lowercase hexadecimal characters.".to_owned());
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let b = amz_date.as_bytes();
    let well_formed = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if !well_formed {
        return Err(format!(
            "X-Amz-Date must be of the form YYYYMMDD'T'HHMMSS'Z', not '{amz_date}'."
        ));
    }
    if &amz_date[..8] != date {
        return Err(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{date}' != '{}', from '{amz_date}'.",
            &amz_date[..8]
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Validation

/// "1 validation error detected" the way AWS reports a constraint, at a
/// path with 1-based `.member` list indexes.
fn constraint(value: Option<&Value>, at: &str, what: &str) -> String {
    let v = match value {
        None | Some(Value::Null) => "null".to_owned(),
        Some(Value::String(s)) => format!("'{s}'"),
        Some(v) => format!("'{v}'"),
    };
    format!("1 validation error detected: Value {v} at '{at}' failed to satisfy constraint: {what}")
}

fn extraneous(key: &str) -> String {
    format!(
        "Malformed input request: extraneous key [{key}] is not permitted, please reformat your input and try again."
    )
}

/// The known members a union value sets; an unknown key, none or more than
/// one is an error.
fn union_member<'a>(
    v: &'a Value,
    members: &[&str],
    union: &str,
    at: &str,
) -> Result<(&'a str, &'a Value), String> {
    let Some(o) = v.as_object() else {
        return Err(format!(
            "The {union} at {at} must be an object with one of: {}.",
            members.join(", ")
        ));
    };
    if let Some(k) = o.keys().find(|k| !members.contains(&k.as_str())) {
        return Err(extraneous(k));
    }
    let mut set = o.iter().filter(|(_, v)| !v.is_null());
    match (set.next(), set.next()) {
        (Some((k, v)), None) => Ok((k.as_str(), v)),
        (None, _) => Err(format!(
            "The {union} at {at} has none of its members set: set exactly one of {}.",
            members.join(", ")
        )),
        (Some((a, _)), Some((b, _))) => Err(format!(
            "The {union} at {at} sets both {a} and {b}: set exactly one member."
        )),
    }
}

fn list(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn role(m: &Value) -> &str {
    m.get("role").and_then(Value::as_str).unwrap_or("")
}

fn blocks(m: &Value) -> &[Value] {
    list(m.get("content"))
}

/// Standard base64, padded, as AWS's JSON protocols carry blobs.
fn is_base64(s: &str) -> bool {
    if s.len() % 4 != 0 {
        return false;
    }
    let body = s.trim_end_matches('=');
    s.len() - body.len() <= 2
        && body
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

fn valid_tool_use_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Does the model take `cachePoint` blocks? Claude and Nova do.
pub fn supports_caching(model_id: &str) -> bool {
    let m = model_id.to_ascii_lowercase();
    m.contains("claude") || m.contains("nova")
}

/// The enabled thinking configuration in `additionalModelRequestFields`:
/// Claude's `thinking` (or `reasoning_config`), Nova's `reasoningConfig`,
/// with `type` `enabled` (or `adaptive`).
fn thinking_config(req: &Value) -> Option<&Value> {
    let fields = req.get("additionalModelRequestFields")?;
    ["thinking", "reasoning_config", "reasoningConfig"]
        .iter()
        .filter_map(|k| fields.get(*k))
        .find(|t| {
            matches!(
                t.get("type").and_then(Value::as_str),
                Some("enabled" | "adaptive")
            )
        })
}

/// The first problem Bedrock would report with this request body, as the
/// `message` of its `ValidationException`.
pub fn validate(req: &Value, model_id: &str) -> Result<(), String> {
    let Some(obj) = req.as_object() else {
        return Err("Malformed input request: the body must be a JSON object.".to_owned());
    };
    if let Some(k) = obj.keys().find(|k| !REQUEST_FIELDS.contains(&k.as_str())) {
        return Err(extraneous(k));
    }
    let messages = match obj.get("messages") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(v) => {
            return Err(constraint(Some(v), "messages", "Member must be a list"));
        }
    };
    if messages.is_empty() {
        return Err(FIRST_MESSAGE_USER.to_owned());
    }
    let mut cache_points = 0usize;
    let mut tool_blocks = false;
    for (i, m) in messages.iter().enumerate() {
        check_message(m, i, &mut cache_points, &mut tool_blocks)?;
    }
    if role(&messages[0]) != "user" {
        return Err(FIRST_MESSAGE_USER.to_owned());
    }
    if messages.windows(2).any(|w| role(&w[0]) == role(&w[1])) {
        return Err(ALTERNATE_ROLES.to_owned());
    }
    check_system(obj.get("system"), &mut cache_points)?;
    check_inference(obj.get("inferenceConfig"))?;
    let tool_config = obj.get("toolConfig").filter(|v| !v.is_null());
    if let Some(tc) = tool_config {
        check_tool_config(tc, &mut cache_points)?;
    }
    if tool_blocks && tool_config.is_none() {
        return Err(TOOL_CONFIG_REQUIRED.to_owned());
    }
    check_tool_pairs(messages)?;
    // Document names are unique in a request, every turn's files counted.
    let mut names = std::collections::HashSet::new();
    for m in messages {
        for b in blocks(m) {
            if let Some(name) = b.pointer("/document/name").and_then(Value::as_str) {
                if !names.insert(name) {
                    return Err(DUPLICATE_DOCUMENT_NAMES.to_owned());
                }
            }
        }
    }
    if cache_points > 0 && !supports_caching(model_id) {
        return Err(CACHING_UNSUPPORTED.to_owned());
    }
    check_thinking(req, model_id, messages)
}

fn check_message(
    m: &Value,
    i: usize,
    cache_points: &mut usize,
    tool_blocks: &mut bool,
) -> Result<(), String> {
    let at = format!("messages.{}.member", i + 1);
    if !m.is_object() {
        return Err(constraint(Some(m), &at, "Member must be a Message object"));
    }
    if let Some(k) = m.as_object().and_then(|o| {
        o.keys()
            .find(|k| !["role", "content"].contains(&k.as_str()))
    }) {
        return Err(extraneous(k));
    }
    match m.get("role") {
        Some(Value::String(r)) if r == "user" || r == "assistant" => {}
        v => {
            let what = if v.is_none_or(Value::is_null) {
                "Member must not be null"
            } else {
                "Member must satisfy enum value set: [user, assistant]"
            };
            return Err(constraint(v, &format!("{at}.role"), what));
        }
    }
    let content = match m.get("content") {
        Some(Value::Array(a)) => a,
        v => {
            return Err(constraint(
                v,
                &format!("{at}.content"),
                "Member must not be null",
            ));
        }
    };
    if content.is_empty() {
        return Err(format!(
            "The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again."
        ));
    }
    for (j, b) in content.iter().enumerate() {
        let here = format!("messages.{i}.content.{j}");
        let bat = format!("{at}.content.{}.member", j + 1);
        let (kind, v) = union_member(b, CONTENT_MEMBERS, "ContentBlock", &here)?;
        match kind {
            "text" => check_text(v, &here)?,
            "image" => check_image(v, &format!("{bat}.image"))?,
            "document" => check_document(v, &format!("{bat}.document"))?,
            "toolUse" => {
                *tool_blocks = true;
                check_tool_use(v, &format!("{bat}.toolUse"))?;
            }
            "toolResult" => {
                *tool_blocks = true;
                check_tool_result(v, &here, &format!("{bat}.toolResult"))?;
            }
            "cachePoint" => {
                *cache_points += 1;
                check_cache_point(v, &format!("{bat}.cachePoint"))?;
            }
            "reasoningContent" => {
                union_member(
                    v,
                    &["reasoningText", "redactedContent"],
                    "ReasoningContentBlock",
                    &format!("{here}.reasoningContent"),
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_text(v: &Value, here: &str) -> Result<(), String> {
    match v.as_str() {
        Some(t) if !t.trim().is_empty() => Ok(()),
        Some(_) => Err(format!(
            "The text field in the ContentBlock object at {here} is blank. Add text to the text field, and try again."
        )),
        None => Err(format!("The text field at {here} must be a string.")),
    }
}

fn check_bytes_source(
    source: Option<&Value>,
    at: &str,
    members: &[&str],
    union: &str,
) -> Result<(), String> {
    let Some(source) = source else {
        return Err(constraint(
            None,
            &format!("{at}.source"),
            "Member must not be null",
        ));
    };
    let (kind, v) = union_member(source, members, union, &format!("{at}.source"))?;
    if kind == "bytes" {
        let ok = v.as_str().is_some_and(|s| !s.is_empty() && is_base64(s));
        if !ok {
            return Err(format!(
                "Malformed input request: the value at {at}.source.bytes is not valid base64, please reformat your input and try again."
            ));
        }
    }
    Ok(())
}

fn check_image(v: &Value, at: &str) -> Result<(), String> {
    let format = v.get("format");
    if !format
        .and_then(Value::as_str)
        .is_some_and(|f| IMAGE_FORMATS.contains(&f))
    {
        let what = if format.is_none_or(Value::is_null) {
            "Member must not be null".to_owned()
        } else {
            format!(
                "Member must satisfy enum value set: [{}]",
                IMAGE_FORMATS.join(", ")
            )
        };
        return Err(constraint(format, &format!("{at}.format"), &what));
    }
    check_bytes_source(v.get("source"), at, &["bytes", "s3Location"], "ImageSource")
}

fn check_document(v: &Value, at: &str) -> Result<(), String> {
    if let Some(format) = v.get("format").filter(|f| !f.is_null()) {
        if !format
            .as_str()
            .is_some_and(|f| DOCUMENT_FORMATS.contains(&f))
        {
            return Err(constraint(
                Some(format),
                &format!("{at}.format"),
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    DOCUMENT_FORMATS.join(", ")
                ),
            ));
        }
    }
    if v.get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(constraint(
            v.get("name"),
            &format!("{at}.name"),
            "Member must not be null",
        ));
    }
    check_bytes_source(
        v.get("source"),
        at,
        &["bytes", "s3Location", "text", "content"],
        "DocumentSource",
    )
}

fn check_id(v: Option<&Value>, at: &str) -> Result<(), String> {
    let id = v.and_then(Value::as_str);
    match id {
        None => Err(constraint(v, at, "Member must not be null")),
        Some(id) if id.chars().count() > MAX_ID_LEN => Err(constraint(
            v,
            at,
            &format!("Member must have length less than or equal to {MAX_ID_LEN}"),
        )),
        Some(id) if !valid_tool_use_id(id) => Err(constraint(
            v,
            at,
            &format!("Member must satisfy regular expression pattern: {TOOL_USE_ID_PATTERN}"),
        )),
        Some(_) => Ok(()),
    }
}

fn check_tool_name(v: Option<&Value>, at: &str) -> Result<(), String> {
    let name = v.and_then(Value::as_str);
    match name {
        None => Err(constraint(v, at, "Member must not be null")),
        Some(n) if n.is_empty() || n.chars().count() > MAX_ID_LEN => Err(constraint(
            v,
            at,
            &format!("Member must have length between 1 and {MAX_ID_LEN}"),
        )),
        Some(n) if !valid_tool_use_id(n) => Err(constraint(
            v,
            at,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
        )),
        Some(_) => Ok(()),
    }
}

fn check_tool_use(v: &Value, at: &str) -> Result<(), String> {
    check_id(v.get("toolUseId"), &format!("{at}.toolUseId"))?;
    check_tool_name(v.get("name"), &format!("{at}.name"))?;
    if v.get("input").is_none_or(Value::is_null) {
        return Err(constraint(
            None,
            &format!("{at}.input"),
            "Member must not be null",
        ));
    }
    Ok(())
}

fn check_tool_result(v: &Value, here: &str, at: &str) -> Result<(), String> {
    check_id(v.get("toolUseId"), &format!("{at}.toolUseId"))?;
    let content = match v.get("content") {
        Some(Value::Array(a)) => a,
        c => {
            return Err(constraint(
                c,
                &format!("{at}.content"),
                "Member must not be null",
            ));
        }
    };
    match v.get("status") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "success" || s == "error" => {}
        s => {
            return Err(constraint(
                s,
                &format!("{at}.status"),
                "Member must satisfy enum value set: [success, error]",
            ));
        }
    }
    if content.is_empty() && v.get("status").and_then(Value::as_str) == Some("error") {
        return Err(format!(
            "The content field at {here}.toolResult cannot be empty when status value is error."
        ));
    }
    for (k, c) in content.iter().enumerate() {
        let cat = format!("{at}.content.{}.member", k + 1);
        let (kind, inner) = union_member(
            c,
            TOOL_RESULT_MEMBERS,
            "ToolResultContentBlock",
            &format!("{here}.toolResult.content.{k}"),
        )?;
        match kind {
            "image" => check_image(inner, &format!("{cat}.image"))?,
            "document" => check_document(inner, &format!("{cat}.document"))?,
            "text" if !inner.is_string() => {
                return Err(constraint(
                    Some(inner),
                    &format!("{cat}.text"),
                    "Member must be a string",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_cache_point(v: &Value, at: &str) -> Result<(), String> {
    if let Some(o) = v.as_object() {
        if let Some(k) = o.keys().find(|k| !["type", "ttl"].contains(&k.as_str())) {
            return Err(extraneous(k));
        }
    }
    match v.get("type") {
        Some(Value::String(t)) if t == "default" => Ok(()),
        t => Err(constraint(
            t,
            &format!("{at}.type"),
            "Member must satisfy enum value set: [default]",
        )),
    }
}

fn check_system(system: Option<&Value>, cache_points: &mut usize) -> Result<(), String> {
    let list = match system {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(a)) => a,
        Some(v) => return Err(constraint(Some(v), "system", "Member must be a list")),
    };
    for (i, b) in list.iter().enumerate() {
        let (kind, v) = union_member(
            b,
            SYSTEM_MEMBERS,
            "SystemContentBlock",
            &format!("system.{i}"),
        )?;
        match kind {
            "text" if v.as_str().is_none_or(str::is_empty) => {
                return Err(constraint(
                    Some(v),
                    &format!("system.{}.member.text", i + 1),
                    "Member must have length greater than or equal to 1",
                ));
            }
            "cachePoint" => {
                *cache_points += 1;
                check_cache_point(v, &format!("system.{}.member.cachePoint", i + 1))?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_inference(config: Option<&Value>) -> Result<(), String> {
    let Some(c) = config.filter(|c| !c.is_null()) else {
        return Ok(());
    };
    let Some(o) = c.as_object() else {
        return Err(constraint(
            Some(c),
            "inferenceConfig",
            "Member must be an object",
        ));
    };
    if let Some(k) = o.keys().find(|k| !INFERENCE_FIELDS.contains(&k.as_str())) {
        return Err(extraneous(k));
    }
    if let Some(v) = o.get("maxTokens").filter(|v| !v.is_null()) {
        if v.as_u64().is_none_or(|n| n < 1) {
            return Err(constraint(
                Some(v),
                "inferenceConfig.maxTokens",
                "Member must have value greater than or equal to 1",
            ));
        }
    }
    for k in ["temperature", "topP"] {
        if let Some(v) = o.get(k).filter(|v| !v.is_null()) {
            if !v.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)) {
                return Err(constraint(
                    Some(v),
                    &format!("inferenceConfig.{k}"),
                    "Member must have value between 0 and 1",
                ));
            }
        }
    }
    if let Some(v) = o.get("stopSequences").filter(|v| !v.is_null()) {
        let ok = v
            .as_array()
            .is_some_and(|a| a.iter().all(|s| s.as_str().is_some_and(|s| !s.is_empty())));
        if !ok {
            return Err(constraint(
                Some(v),
                "inferenceConfig.stopSequences",
                "Member must be a list of non-empty strings",
            ));
        }
    }
    Ok(())
}

fn check_tool_config(tc: &Value, cache_points: &mut usize) -> Result<(), String> {
    let Some(o) = tc.as_object() else {
        return Err(constraint(
            Some(tc),
            "toolConfig",
            "Member must be an object",
        ));
    };
    if let Some(k) = o
        .keys()
        .find(|k| !["tools", "toolChoice"].contains(&k.as_str()))
    {
        return Err(extraneous(k));
    }
    let tools = match o.get("tools") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        t => {
            let what = if t.is_none_or(Value::is_null) {
                "Member must not be null"
            } else {
                "Member must have length greater than or equal to 1"
            };
            return Err(constraint(t, "toolConfig.tools", what));
        }
    };
    for (i, t) in tools.iter().enumerate() {
        let at = format!("toolConfig.tools.{}.member", i + 1);
        let (kind, v) = union_member(t, TOOL_MEMBERS, "Tool", &format!("toolConfig.tools.{i}"))?;
        match kind {
            "toolSpec" => {
                let at = format!("{at}.toolSpec");
                if let Some(k) = v.as_object().and_then(|s| {
                    s.keys().find(|k| {
                        !["name", "description", "inputSchema", "strict"].contains(&k.as_str())
                    })
                }) {
                    return Err(extraneous(k));
                }
                check_tool_name(v.get("name"), &format!("{at}.name"))?;
                let Some(schema) = v.get("inputSchema").filter(|s| !s.is_null()) else {
                    return Err(constraint(
                        None,
                        &format!("{at}.inputSchema"),
                        "Member must not be null",
                    ));
                };
                let (_, json) = union_member(
                    schema,
                    &["json"],
                    "ToolInputSchema",
                    &format!("toolConfig.tools.{i}.toolSpec.inputSchema"),
                )?;
                if !json.is_object() {
                    return Err(format!(
                        "The value at toolConfig.tools.{i}.toolSpec.inputSchema.json must be a JSON schema object."
                    ));
                }
            }
            "cachePoint" => {
                *cache_points += 1;
                check_cache_point(v, &format!("{at}.cachePoint"))?;
            }
            _ => {}
        }
    }
    if let Some(choice) = o.get("toolChoice").filter(|c| !c.is_null()) {
        let (kind, v) = union_member(
            choice,
            &["auto", "any", "tool"],
            "ToolChoice",
            "toolConfig.toolChoice",
        )?;
        if kind == "tool" {
            check_tool_name(v.get("name"), "toolConfig.toolChoice.tool.name")?;
        }
    }
    Ok(())
}

fn tool_use_ids(m: &Value) -> Vec<&str> {
    blocks(m)
        .iter()
        .filter_map(|b| b.get("toolUse")?.get("toolUseId")?.as_str())
        .collect()
}

/// The `toolUseId`s of the `toolResult` blocks of a message, with the
/// blocks' indexes.
fn tool_result_ids(m: &Value) -> Vec<(usize, &str)> {
    blocks(m)
        .iter()
        .enumerate()
        .filter_map(|(j, b)| Some((j, b.get("toolResult")?.get("toolUseId")?.as_str()?)))
        .collect()
}

/// Tool results answer the tool uses of the assistant message just before,
/// and every tool use is answered in the user message just after.
fn check_tool_pairs(messages: &[Value]) -> Result<(), String> {
    for (i, m) in messages.iter().enumerate() {
        let results = tool_result_ids(m);
        if !results.is_empty() {
            let prev = if i > 0 && role(&messages[i - 1]) == "assistant" {
                tool_use_ids(&messages[i - 1])
            } else {
                vec![]
            };
            if results.len() > prev.len() {
                return Err(format!(
                    "The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks of previous turn."
                ));
            }
            if let Some((j, id)) = results.iter().find(|(_, id)| !prev.contains(id)) {
                return Err(format!(
                    "messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                ));
            }
        }
    }
    for (i, m) in messages.iter().enumerate() {
        if role(m) == "assistant" && i + 1 < messages.len() {
            let answered: Vec<&str> = tool_result_ids(&messages[i + 1])
                .into_iter()
                .map(|(_, id)| id)
                .collect();
            let missing: Vec<&str> = tool_use_ids(m)
                .into_iter()
                .filter(|id| !answered.contains(id))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "Expected toolResult blocks at messages.{}.content for the following Ids: {}",
                    i + 1,
                    missing.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// The reasoning efforts of the models that take one: gpt-oss reads
/// OpenAI's `reasoning_effort` (others refuse the key), Nova 2 a
/// `reasoningConfig` with a `maxReasoningEffort`; each `low`, `medium` or
/// `high`.
fn check_effort(req: &Value, model_id: &str) -> Result<(), String> {
    let Some(fields) = req.get("additionalModelRequestFields") else {
        return Ok(());
    };
    let id = model_id.to_ascii_lowercase();
    let level =
        |v: Option<&Value>| matches!(v.and_then(Value::as_str), Some("low" | "medium" | "high"));
    if let Some(effort) = fields.get("reasoning_effort") {
        if !id.contains("gpt-oss") {
            return Err("The model returned the following errors: extraneous key [reasoning_effort] is not permitted".to_owned());
        }
        if !level(Some(effort)) {
            return Err(format!(
                "The model returned the following errors: reasoning_effort: Input should be 'low', 'medium' or 'high', got {effort}"
            ));
        }
    }
    if let Some(config) = fields.get("reasoningConfig") {
        let enabled = config.get("type").and_then(Value::as_str) == Some("enabled");
        if id.contains("nova-2") && enabled && !level(config.get("maxReasoningEffort")) {
            return Err(
                "reasoningConfig.maxReasoningEffort must be one of: low, medium, high".to_owned(),
            );
        }
    }
    Ok(())
}

/// Claude's checks of extended thinking, as Bedrock passes them on: the
/// budget, and, in the current tool loop, the assistant turn starting with
/// its (signed) reasoning.
fn check_thinking(req: &Value, model_id: &str, messages: &[Value]) -> Result<(), String> {
    let claude = model_id.to_ascii_lowercase().contains("claude");
    if claude {
        for (i, m) in messages.iter().enumerate() {
            for (j, b) in blocks(m).iter().enumerate() {
                let text = b
                    .get("reasoningContent")
                    .and_then(|r| r.get("reasoningText"));
                let unsigned = text.is_some_and(|t| {
                    t.get("signature")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                });
                if unsigned {
                    return Err(format!(
                        "messages.{i}.content.{j}.thinking.signature: Field required"
                    ));
                }
            }
        }
    }
    check_effort(req, model_id)?;
    let Some(thinking) = thinking_config(req) else {
        return Ok(());
    };
    if !claude {
        return Ok(());
    }
    let on = matches!(
        thinking.get("type").and_then(Value::as_str),
        Some("enabled" | "adaptive")
    );
    let choice = req.pointer("/toolConfig/toolChoice");
    if on && choice.is_some_and(|c| c.get("any").is_some() || c.get("tool").is_some()) {
        return Err(
            "The model returned the following errors: Thinking may not be enabled when tool_choice forces tool use."
                .to_owned(),
        );
    }
    if thinking.get("type").and_then(Value::as_str) == Some("enabled") {
        let budget = thinking.get("budget_tokens").and_then(Value::as_u64);
        let Some(budget) = budget.filter(|b| *b >= MIN_THINKING_BUDGET) else {
            return Err(format!(
                "The model returned the following errors: thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}"
            ));
        };
        let max_tokens = req
            .get("inferenceConfig")
            .and_then(|c| c.get("maxTokens"))
            .and_then(Value::as_u64);
        if max_tokens.is_some_and(|max| budget >= max) {
            return Err("The model returned the following errors: `max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size".to_owned());
        }
    }
    // The current tool loop: an assistant turn with tool uses, answered by
    // the last message, must start with its reasoning.
    let n = messages.len();
    if n >= 2 && role(&messages[n - 2]) == "assistant" && !tool_use_ids(&messages[n - 2]).is_empty()
    {
        let first = blocks(&messages[n - 2]).first();
        if first.is_none_or(|b| b.get("reasoningContent").is_none()) {
            return Err(format!(
                "The model returned the following errors: messages.{}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking",
                n - 2
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The answer

#[derive(Debug)]
enum Block {
    Reasoning {
        text: String,
        signature: String,
    },
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

impl Block {
    /// The block in `output.message.content`.
    fn json(&self) -> Value {
        match self {
            Block::Reasoning { text, signature } => {
                json!({"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}})
            }
            Block::Text(text) => json!({ "text": text }),
            Block::ToolUse { id, name, input } => {
                json!({"toolUse": {"toolUseId": id, "name": name, "input": input}})
            }
        }
    }

    /// The `start` of its `contentBlockStart` event: only tool uses have
    /// one (AWS sends none for text and reasoning).
    fn start(&self) -> Option<Value> {
        match self {
            Block::ToolUse { id, name, .. } => {
                Some(json!({"toolUse": {"toolUseId": id, "name": name}}))
            }
            _ => None,
        }
    }

    /// The `delta`s of its `contentBlockDelta` events.
    fn deltas(&self) -> Vec<Value> {
        match self {
            Block::Reasoning { text, signature } => {
                let mut out: Vec<Value> = words(text)
                    .into_iter()
                    .map(|w| json!({"reasoningContent": {"text": w}}))
                    .collect();
                out.push(json!({"reasoningContent": {"signature": signature}}));
                out
            }
            Block::Text(text) => words(text)
                .into_iter()
                .map(|w| json!({ "text": w }))
                .collect(),
            Block::ToolUse { input, .. } => {
                let json = input.to_string();
                pieces(&json, 3)
                    .into_iter()
                    .map(|p| json!({"toolUse": {"input": p}}))
                    .collect()
            }
        }
    }
}

/// A Converse answer: its blocks, stop reason and usage.
pub struct Reply {
    blocks: Vec<Block>,
    stop_reason: String,
    input_tokens: u64,
    output_tokens: u64,
    cache_read: u64,
    cache_write: u64,
}

impl Reply {
    pub fn new(req: &Value, opts: &MockOptions, body_len: usize) -> Reply {
        let mut blocks = Vec::new();
        let mut output_tokens = 0;
        let effort = req.pointer("/additionalModelRequestFields/reasoning_effort");
        if thinking_config(req).is_some() || effort.is_some() {
            let text = opts
                .thinking
                .clone()
                .unwrap_or_else(|| DEFAULT_THINKING.to_owned());
            output_tokens += text.split_whitespace().count() as u64;
            blocks.push(Block::Reasoning {
                signature: base64(format!("llmux-mock-signature:{text}").as_bytes()),
                text,
            });
        }
        let calls = tool_uses(req, opts);
        let default_stop = if calls.is_empty() {
            let text = opts
                .content
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTENT.to_owned());
            output_tokens += text.split_whitespace().count() as u64;
            blocks.push(Block::Text(text));
            "end_turn"
        } else {
            output_tokens += 10 * calls.len() as u64;
            blocks.extend(calls);
            "tool_use"
        };
        Reply {
            blocks,
            stop_reason: opts
                .stop_reason
                .clone()
                .unwrap_or_else(|| default_stop.to_owned()),
            input_tokens: (body_len as u64 / 4).max(1),
            output_tokens: output_tokens.max(1),
            cache_read: opts.cached_tokens.unwrap_or(0),
            cache_write: opts.cache_creation_tokens.unwrap_or(0),
        }
    }

    /// `usage`: `inputTokens` excludes the cache reads and writes, which
    /// `totalTokens` includes, as Bedrock counts them.
    fn usage(&self) -> Value {
        json!({
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.output_tokens + self.cache_read + self.cache_write,
            "cacheReadInputTokens": self.cache_read,
            "cacheWriteInputTokens": self.cache_write
        })
    }

    /// The Converse answer.
    pub fn converse(&self) -> Value {
        json!({
            "output": {"message": {"role": "assistant",
                "content": self.blocks.iter().map(Block::json).collect::<Vec<_>>()}},
            "stopReason": self.stop_reason,
            "usage": self.usage(),
            "metrics": {"latencyMs": 1}
        })
    }

    /// The ConverseStream events, as (`:event-type`, payload).
    pub fn events(&self) -> Vec<(&'static str, Value)> {
        let mut out = vec![("messageStart", json!({"role": "assistant"}))];
        for (i, block) in self.blocks.iter().enumerate() {
            if let Some(start) = block.start() {
                out.push((
                    "contentBlockStart",
                    json!({"contentBlockIndex": i, "start": start}),
                ));
            }
            for delta in block.deltas() {
                out.push((
                    "contentBlockDelta",
                    json!({"contentBlockIndex": i, "delta": delta}),
                ));
            }
            out.push(("contentBlockStop", json!({ "contentBlockIndex": i })));
        }
        out.push(("messageStop", json!({"stopReason": self.stop_reason})));
        out.push((
            "metadata",
            json!({"usage": self.usage(), "metrics": {"latencyMs": 1}}),
        ));
        out
    }

    /// The stream as binary frames, with the faults of `opts` applied: a
    /// frame with a bad CRC after `messageStart` (`malformed`), or an
    /// exception frame after `exception_after` (or `error_event_after`)
    /// frames.
    pub fn frames(&self, opts: &MockOptions) -> Vec<Bytes> {
        let mut frames: Vec<Bytes> = self
            .events()
            .into_iter()
            .enumerate()
            .map(|(k, (name, payload))| event_frame(name, &padded(payload, k)))
            .collect();
        if opts.malformed {
            let broken = event_frame(
                "contentBlockDelta",
                &json!({"contentBlockIndex": 0, "delta": {"text": "broken"}}),
            );
            frames.insert(1.min(frames.len()), corrupt(broken));
        }
        if let Some(n) = opts.exception_after.or(opts.error_event_after) {
            frames.truncate(n);
            let name = exception_event_name(opts.exception.as_deref());
            let message = opts
                .message
                .clone()
                .unwrap_or_else(|| default_stream_message(&name).to_owned());
            frames.push(exception_frame(&name, &message));
        }
        frames
    }
}

/// The payload with AWS's `p` field, padding of varying length that hides
/// the size of the content.
fn padded(mut payload: Value, k: usize) -> Value {
    const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let len = (k * 17 + 5) % ALPHABET.len() + 1;
    if let Some(o) = payload.as_object_mut() {
        o.insert("p".to_owned(), json!(&ALPHABET[..len]));
    }
    payload
}

/// `throttlingException` for `ThrottlingException` or nothing: stream
/// exceptions are named in lower camel case.
fn exception_event_name(name: Option<&str>) -> String {
    let name = name.unwrap_or("throttlingException");
    let mut chars = name.chars();
    match chars.next() {
        Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
        None => "throttlingException".to_owned(),
    }
}

fn default_stream_message(exception: &str) -> &'static str {
    match exception {
        "throttlingException" => "Too many requests, please wait before trying again.",
        "modelStreamErrorException" => {
            "The model encountered an error while streaming its response."
        }
        "validationException" => {
            "The input fails to satisfy the constraints specified by Amazon Bedrock."
        }
        "serviceUnavailableException" => "Bedrock is unable to process your request.",
        "internalServerException" => {
            "The server encountered an internal error while processing the request."
        }
        _ => "mock exception",
    }
}

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, FrameValue::String(value.to_owned().into()))
}

fn encode(message: &Message) -> Bytes {
    let mut buf: Vec<u8> = Vec::new();
    // Fails only for frames over 16 MiB, which the mock never makes.
    match write_message_to(message, &mut buf) {
        Ok(()) => Bytes::from(buf),
        Err(_) => Bytes::new(),
    }
}

/// An event frame: `:event-type`, `:content-type` and `:message-type`
/// headers and the JSON payload.
pub fn event_frame(event_type: &str, payload: &Value) -> Bytes {
    let message = Message::new(Bytes::from(payload.to_string()))
        .add_header(string_header(":event-type", event_type))
        .add_header(string_header(":content-type", "application/json"))
        .add_header(string_header(":message-type", "event"));
    encode(&message)
}

/// An exception frame: `:exception-type`, `:content-type` and
/// `:message-type: exception`, and `{"message": …}`.
pub fn exception_frame(exception: &str, message: &str) -> Bytes {
    let m = Message::new(Bytes::from(json!({ "message": message }).to_string()))
        .add_header(string_header(":exception-type", exception))
        .add_header(string_header(":content-type", "application/json"))
        .add_header(string_header(":message-type", "exception"));
    encode(&m)
}

/// The frame with its message CRC (the last 4 bytes) broken.
fn corrupt(frame: Bytes) -> Bytes {
    let mut v = frame.to_vec();
    if let Some(last) = v.last_mut() {
        *last ^= 0xff;
    }
    Bytes::from(v)
}

/// `toolUse` blocks when the request offers tools and the last user turn
/// is not only tool results, unless the `toolConfig` only re-declares the
/// tools the history already used, without `toolChoice` (what a client
/// sends because Bedrock wants a `toolConfig` whenever the messages hold
/// tool blocks, while offering no tools): then text, as a model would
/// answer. An explicit `tool_calls` directive calls tools all the same.
fn tool_uses(req: &Value, opts: &MockOptions) -> Vec<Block> {
    let tool_config = req.get("toolConfig");
    let specs: Vec<&Value> = list(tool_config.and_then(|t| t.get("tools")))
        .iter()
        .filter_map(|t| t.get("toolSpec"))
        .filter(|s| s.get("name").and_then(Value::as_str).is_some())
        .collect();
    if specs.is_empty() {
        return vec![];
    }
    let messages = list(req.get("messages"));
    let answering = messages
        .iter()
        .rev()
        .find(|m| role(m) == "user")
        .is_some_and(|m| {
            let b = blocks(m);
            !b.is_empty() && b.iter().all(|b| b.get("toolResult").is_some())
        });
    if answering {
        return vec![];
    }
    let choice = tool_config.and_then(|t| t.get("toolChoice"));
    if opts.tool_calls.is_none() && choice.is_none_or(Value::is_null) {
        let used: Vec<&str> = messages
            .iter()
            .flat_map(|m| blocks(m).iter())
            .filter_map(|b| b.get("toolUse")?.get("name")?.as_str())
            .collect();
        let only_history = specs.iter().all(|s| {
            s.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| used.contains(&n))
        });
        if only_history {
            return vec![];
        }
    }
    let forced = tool_config
        .and_then(|t| t.get("toolChoice"))
        .and_then(|c| c.get("tool"))
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str);
    let name_of = |s: &Value| {
        s.get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let n = opts.tool_calls.unwrap_or(1);
    (0..n)
        .map(|i| {
            let spec = forced
                .and_then(|f| specs.iter().find(|s| name_of(s) == f))
                .unwrap_or(&specs[i % specs.len()]);
            Block::ToolUse {
                id: format!("tooluse_mock_{i}"),
                name: name_of(spec),
                input: spec
                    .get("inputSchema")
                    .and_then(|s| s.get("json"))
                    .map(example_for_schema)
                    .unwrap_or_else(|| json!({})),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};

    const CLAUDE: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";
    const LLAMA: &str = "meta.llama3-1-70b-instruct-v1:0";

    fn base() -> Value {
        json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
    }

    fn with(mut v: Value, k: &str, x: Value) -> Value {
        v[k] = x;
        v
    }

    fn err(v: &Value) -> String {
        validate(v, CLAUDE).expect_err("should be rejected")
    }

    fn tools() -> Value {
        json!({"tools": [
            {"toolSpec": {"name": "read_file", "description": "read", "inputSchema": {"json":
                {"type": "object", "properties": {"path": {"type": "string"}, "line": {"type": "integer"}}}}}},
            {"toolSpec": {"name": "ls", "inputSchema": {"json": {"type": "object", "properties": {"all": {"type": "boolean"}}}}}}
        ]})
    }

    /// A tool loop: the user asks, the assistant calls `ids`, the user
    /// answers `answers`.
    fn tool_loop(ids: &[&str], answers: &[&str]) -> Value {
        let uses: Vec<Value> = ids
            .iter()
            .map(|id| json!({"toolUse": {"toolUseId": id, "name": "ls", "input": {}}}))
            .collect();
        let results: Vec<Value> = answers
            .iter()
            .map(|id| json!({"toolResult": {"toolUseId": id, "content": [{"text": "a b"}]}}))
            .collect();
        json!({"messages": [
            {"role": "user", "content": [{"text": "list"}]},
            {"role": "assistant", "content": uses},
            {"role": "user", "content": results}
        ], "toolConfig": tools()})
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const SIG: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250102/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

    #[test]
    fn checks_the_shape_of_the_authorization() {
        let signed = |auth: &str, date: &str| {
            check_auth(&headers(&[
                ("authorization", auth),
                ("x-amz-date", date),
                ("host", "localhost"),
                ("content-type", "application/json"),
            ]))
        };
        assert_eq!(signed(SIG, "20250102T030405Z"), Ok(()));
        assert!(
            signed(SIG, "20250103T030405Z")
                .unwrap_err()
                .contains("Date in Credential scope")
        );
        assert!(
            signed(SIG, "2025-01-02")
                .unwrap_err()
                .contains("X-Amz-Date")
        );
        assert!(
            signed(&SIG.replace("/bedrock/", "/s3/"), "20250102T030405Z")
                .unwrap_err()
                .contains("'bedrock', not 's3'")
        );
        assert!(
            signed(
                &SIG.replace("Signature=5d", "Signature=zz"),
                "20250102T030405Z"
            )
            .is_err()
        );
        assert!(
            signed(
                &SIG.replace("content-type;host;x-amz-date", "content-type;x-amz-date"),
                "20250102T030405Z"
            )
            .unwrap_err()
            .contains("'host' must be a signed header")
        );
        assert!(
            signed(
                &SIG.replace("x-amz-date", "x-amz-date;x-amz-security-token"),
                "20250102T030405Z"
            )
            .unwrap_err()
            .contains("x-amz-security-token")
        );
        // Without x-amz-date.
        assert!(check_auth(&headers(&[("authorization", SIG), ("host", "h")])).is_err());
        assert_eq!(
            check_auth(&headers(&[("authorization", "Bearer ABSKexample")])),
            Ok(())
        );
        assert!(check_auth(&headers(&[("authorization", "Bearer ")])).is_err());
        assert_eq!(
            check_auth(&HeaderMap::new()).unwrap_err(),
            "Missing Authentication Token"
        );
        assert!(check_auth(&headers(&[("authorization", "Basic abc")])).is_err());
    }

    #[test]
    fn accepts_a_full_request() {
        let req = json!({
            "messages": [
                {"role": "user", "content": [
                    {"text": "what is this?"},
                    {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                    {"document": {"format": "pdf", "name": "doc", "source": {"bytes": "JVBERi0="}}},
                    {"cachePoint": {"type": "default"}}]},
                {"role": "assistant", "content": [
                    {"reasoningContent": {"reasoningText": {"text": "hm", "signature": "c2ln"}}},
                    {"text": "let me look"},
                    {"toolUse": {"toolUseId": "tooluse_abc-1", "name": "ls", "input": {"all": true}}}]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "tooluse_abc-1", "status": "error", "content": [{"json": {"x": 1}}, {"text": "t"}]}}]}
            ],
            "system": [{"text": "be brief"}, {"cachePoint": {"type": "default"}}],
            "inferenceConfig": {"maxTokens": 4096, "temperature": 0.5, "topP": 1, "stopSequences": ["END"]},
            "toolConfig": {"tools": [
                {"toolSpec": {"name": "ls", "inputSchema": {"json": {"type": "object"}}}},
                {"cachePoint": {"type": "default"}}], "toolChoice": {"auto": {}}},
            "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            "additionalModelResponseFieldPaths": ["/stop_sequence"],
            "requestMetadata": {"a": "b"}
        });
        assert_eq!(validate(&req, CLAUDE), Ok(()));
        assert_eq!(validate(&req, "us.amazon.nova-pro-v1:0"), Ok(()));
    }

    #[test]
    fn rejects_bad_conversations() {
        assert_eq!(
            err(&with(base(), "messages", json!([]))),
            FIRST_MESSAGE_USER
        );
        assert_eq!(err(&json!({})), FIRST_MESSAGE_USER);
        let assistant_first = json!([{"role": "assistant", "content": [{"text": "hi"}]}]);
        assert_eq!(
            err(&with(base(), "messages", assistant_first)),
            FIRST_MESSAGE_USER
        );
        let twice = json!([{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}]);
        assert_eq!(err(&with(base(), "messages", twice)), ALTERNATE_ROLES);
        let system_role = json!([{"role": "system", "content": [{"text": "a"}]}]);
        assert!(
            err(&with(base(), "messages", system_role))
                .contains("Member must satisfy enum value set: [user, assistant]")
        );
        let string_content = json!([{"role": "user", "content": "hi"}]);
        assert!(
            err(&with(base(), "messages", string_content)).contains("messages.1.member.content")
        );
        let empty = json!([{"role": "user", "content": []}]);
        assert!(
            err(&with(base(), "messages", empty))
                .starts_with("The content field in the Message object at messages.0 is empty.")
        );
        let blank = json!([{"role": "user", "content": [{"text": " \n"}]}]);
        assert!(err(&with(base(), "messages", blank)).starts_with(
            "The text field in the ContentBlock object at messages.0.content.0 is blank."
        ));
    }

    #[test]
    fn rejects_unknown_fields_and_blocks() {
        assert_eq!(
            err(&with(base(), "max_tokens", json!(10))),
            "Malformed input request: extraneous key [max_tokens] is not permitted, please reformat your input and try again."
        );
        assert!(err(&with(base(), "stream", json!(true))).contains("[stream]"));
        let openai_block = json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]);
        assert!(err(&with(base(), "messages", openai_block)).contains("extraneous key [type]"));
        let nothing = json!([{"role": "user", "content": [{}]}]);
        assert!(
            err(&with(base(), "messages", nothing)).starts_with(
                "The ContentBlock at messages.0.content.0 has none of its members set"
            )
        );
        let two = json!([{"role": "user", "content": [{"text": "a", "image": {"format": "png", "source": {"bytes": "AAAA"}}}]}]);
        assert!(err(&with(base(), "messages", two)).contains("sets both"));
        assert!(
            err(&with(base(), "inferenceConfig", json!({"max_tokens": 5})))
                .contains("[max_tokens]")
        );
        assert!(
            err(&with(base(), "inferenceConfig", json!({"maxTokens": 0})))
                .contains("inferenceConfig.maxTokens")
        );
        assert!(
            err(&with(
                base(),
                "inferenceConfig",
                json!({"temperature": 1.5})
            ))
            .contains("inferenceConfig.temperature")
        );
    }

    #[test]
    fn checks_images_and_documents() {
        let image = |format: &str, bytes: &str| json!([{"role": "user", "content": [{"image": {"format": format, "source": {"bytes": bytes}}}]}]);
        assert_eq!(
            validate(&with(base(), "messages", image("webp", "AAAA")), CLAUDE),
            Ok(())
        );
        assert_eq!(
            err(&with(base(), "messages", image("bmp", "AAAA"))),
            "1 validation error detected: Value 'bmp' at 'messages.1.member.content.1.member.image.format' failed to satisfy constraint: Member must satisfy enum value set: [png, jpeg, gif, webp]"
        );
        assert!(
            err(&with(
                base(),
                "messages",
                image("png", "data:image/png;base64,AAAA")
            ))
            .contains("not valid base64")
        );
        assert!(err(&with(base(), "messages", image("png", "AAA"))).contains("not valid base64"));
        let url = json!([{"role": "user", "content": [{"image": {"format": "png", "source": {"url": "https://x"}}}]}]);
        assert!(err(&with(base(), "messages", url)).contains("extraneous key [url]"));
        let doc = json!([{"role": "user", "content": [{"document": {"format": "pdf", "source": {"bytes": "AAAA"}}}]}]);
        assert!(err(&with(base(), "messages", doc)).contains("document.name"));
    }

    #[test]
    fn checks_tool_ids_and_pairs() {
        assert_eq!(
            validate(
                &tool_loop(&["tooluse_1", "t-2"], &["t-2", "tooluse_1"]),
                CLAUDE
            ),
            Ok(())
        );
        assert_eq!(
            err(&tool_loop(&["call.1"], &["call.1"])),
            "1 validation error detected: Value 'call.1' at 'messages.2.member.content.1.member.toolUse.toolUseId' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+"
        );
        let long = "a".repeat(65);
        assert!(
            err(&tool_loop(&[&long], &[&long]))
                .contains("Member must have length less than or equal to 64")
        );
        let ok64 = "a".repeat(64);
        assert_eq!(validate(&tool_loop(&[&ok64], &[&ok64]), CLAUDE), Ok(()));
        assert_eq!(
            err(&tool_loop(&["t1"], &["t1", "t2"])),
            "The number of toolResult blocks at messages.2.content exceeds the number of toolUse blocks of previous turn."
        );
        assert!(err(&tool_loop(&["t1"], &["t9"])).starts_with(
            "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: t9."
        ));
        assert_eq!(
            err(&tool_loop(&["t1", "t2"], &["t1"])),
            "Expected toolResult blocks at messages.2.content for the following Ids: t2"
        );
        let mut no_config = tool_loop(&["t1"], &["t1"]);
        no_config.as_object_mut().unwrap().remove("toolConfig");
        assert_eq!(err(&no_config), TOOL_CONFIG_REQUIRED);
        let mut bad = tool_loop(&["t1"], &["t1"]);
        bad["messages"][2]["content"][0]["toolResult"]["status"] = json!("error");
        bad["messages"][2]["content"][0]["toolResult"]["content"] = json!([]);
        assert!(err(&bad).contains("cannot be empty when status value is error"));
    }

    #[test]
    fn checks_tool_config() {
        let spec = |s: Value| with(base(), "toolConfig", json!({"tools": [{"toolSpec": s}]}));
        assert!(err(&spec(json!({"inputSchema": {"json": {}}}))).contains("toolConfig.tools.1.member.toolSpec.name' failed to satisfy constraint: Member must not be null"));
        assert!(err(&spec(json!({"name": "f"}))).contains(
            "toolSpec.inputSchema' failed to satisfy constraint: Member must not be null"
        ));
        assert!(err(&spec(json!({"name": "f", "inputSchema": {}}))).contains("ToolInputSchema"));
        assert!(
            err(&spec(
                json!({"name": "f", "inputSchema": {"type": "object"}})
            ))
            .contains("extraneous key [type]")
        );
        assert!(
            err(&spec(
                json!({"name": "read file", "inputSchema": {"json": {}}})
            ))
            .contains("regular expression")
        );
        assert!(
            err(&with(base(), "toolConfig", json!({"tools": []})))
                .contains("Member must have length greater than or equal to 1")
        );
        let openai = json!({"tools": [{"type": "function", "function": {"name": "f"}}]});
        assert!(err(&with(base(), "toolConfig", openai)).contains("extraneous key [type]"));
        let none_choice = json!({"tools": tools()["tools"], "toolChoice": {"none": {}}});
        assert!(err(&with(base(), "toolConfig", none_choice)).contains("extraneous key [none]"));
    }

    #[test]
    fn allows_cache_points_on_claude_and_nova_only() {
        let req = with(
            base(),
            "system",
            json!([{"text": "s"}, {"cachePoint": {"type": "default"}}]),
        );
        assert_eq!(validate(&req, CLAUDE), Ok(()));
        assert_eq!(validate(&req, "amazon.nova-lite-v1:0"), Ok(()));
        assert_eq!(validate(&req, LLAMA), Err(CACHING_UNSUPPORTED.to_owned()));
        let in_message = json!([{"role": "user", "content": [{"text": "a"}, {"cachePoint": {"type": "default"}}]}]);
        assert_eq!(
            validate(&with(base(), "messages", in_message), LLAMA),
            Err(CACHING_UNSUPPORTED.to_owned())
        );
        let bad_type = json!([{"text": "s"}, {"cachePoint": {"type": "ephemeral"}}]);
        assert!(err(&with(base(), "system", bad_type)).contains("[default]"));
    }

    #[test]
    fn checks_the_reasoning_efforts_of_gpt_oss_and_nova_2() {
        let with_fields = |fields: Value| with(base(), "additionalModelRequestFields", fields);
        let oss = "openai.gpt-oss-120b-1:0";
        let nova2 = "us.amazon.nova-2-lite-v1:0";
        assert_eq!(
            validate(&with_fields(json!({"reasoning_effort": "high"})), oss),
            Ok(())
        );
        let bad = validate(&with_fields(json!({"reasoning_effort": "max"})), oss).unwrap_err();
        assert!(bad.contains("reasoning_effort"), "{bad}");
        let other = validate(&with_fields(json!({"reasoning_effort": "low"})), nova2).unwrap_err();
        assert!(
            other.contains("extraneous key [reasoning_effort]"),
            "{other}"
        );
        let config = |level: &str| json!({"reasoningConfig": {"type": "enabled", "maxReasoningEffort": level}});
        assert_eq!(validate(&with_fields(config("medium")), nova2), Ok(()));
        assert!(validate(&with_fields(config("xhigh")), nova2).is_err());
    }

    #[test]
    fn checks_thinking_on_claude() {
        let thinking = |budget: u64| {
            with(
                base(),
                "additionalModelRequestFields",
                json!({"thinking": {"type": "enabled", "budget_tokens": budget}}),
            )
        };
        assert_eq!(validate(&thinking(1024), CLAUDE), Ok(()));
        assert!(
            err(&thinking(1000))
                .contains("budget_tokens: Input should be greater than or equal to 1024")
        );
        let over = with(
            thinking(2048),
            "inferenceConfig",
            json!({"maxTokens": 2048}),
        );
        assert!(err(&over).contains("`max_tokens` must be greater than `thinking.budget_tokens`"));
        // In a tool loop, the assistant turn starts with its reasoning.
        let mut lp = tool_loop(&["t1"], &["t1"]);
        lp["additionalModelRequestFields"] =
            json!({"thinking": {"type": "enabled", "budget_tokens": 1024}});
        assert!(
            err(&lp).contains("Expected `thinking` or `redacted_thinking`, but found `tool_use`")
        );
        let content = lp["messages"][1]["content"].as_array_mut().unwrap();
        content.insert(
            0,
            json!({"reasoningContent": {"reasoningText": {"text": "hm"}}}),
        );
        assert_eq!(
            err(&lp),
            "messages.1.content.0.thinking.signature: Field required"
        );
        lp["messages"][1]["content"][0]["reasoningContent"]["reasoningText"]["signature"] =
            json!("c2ln");
        assert_eq!(validate(&lp, CLAUDE), Ok(()));
    }

    #[test]
    fn answers_text_with_usage() {
        let opts = MockOptions {
            cached_tokens: Some(100),
            cache_creation_tokens: Some(50),
            ..Default::default()
        };
        let c = Reply::new(&base(), &opts, 400).converse();
        assert_eq!(
            c,
            json!({
                "output": {"message": {"role": "assistant", "content": [{"text": DEFAULT_CONTENT}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 100, "outputTokens": 4, "totalTokens": 254,
                          "cacheReadInputTokens": 100, "cacheWriteInputTokens": 50},
                "metrics": {"latencyMs": 1}
            })
        );
        let stop = MockOptions {
            stop_reason: Some("guardrail_intervened".into()),
            content: Some("blocked".into()),
            ..Default::default()
        };
        let c = Reply::new(&base(), &stop, 4).converse();
        assert_eq!(c["stopReason"], "guardrail_intervened");
        assert_eq!(
            c["output"]["message"]["content"],
            json!([{"text": "blocked"}])
        );
        assert_eq!(c["usage"]["cacheReadInputTokens"], 0);
    }

    #[test]
    fn calls_tools_with_inputs_from_their_schema() {
        let mut req = with(base(), "toolConfig", tools());
        let opts = MockOptions {
            tool_calls: Some(3),
            ..Default::default()
        };
        let c = Reply::new(&req, &opts, 10).converse();
        assert_eq!(c["stopReason"], "tool_use");
        let content = c["output"]["message"]["content"].as_array().unwrap();
        assert_eq!(content.len(), 3);
        assert_eq!(
            content[0],
            json!({"toolUse": {"toolUseId": "tooluse_mock_0", "name": "read_file", "input": {"path": "mock", "line": 1}}})
        );
        assert_eq!(content[1]["toolUse"]["input"], json!({"all": true}));
        assert_eq!(content[2]["toolUse"]["name"], "read_file");
        assert_eq!(c["usage"]["outputTokens"], 30);

        req["toolConfig"]["toolChoice"] = json!({"tool": {"name": "ls"}});
        let c = Reply::new(&req, &MockOptions::default(), 10).converse();
        assert_eq!(
            c["output"]["message"]["content"][0]["toolUse"]["name"],
            "ls"
        );

        // Answering tool results, or told to make no calls: text.
        let c = Reply::new(&tool_loop(&["t1"], &["t1"]), &opts, 10).converse();
        assert_eq!(
            c["output"]["message"]["content"],
            json!([{"text": DEFAULT_CONTENT}])
        );
        let zero = MockOptions {
            tool_calls: Some(0),
            ..Default::default()
        };
        assert_eq!(
            Reply::new(&req, &zero, 10).converse()["stopReason"],
            "end_turn"
        );
    }

    #[test]
    fn answers_text_when_the_tool_config_only_redeclares_the_history() {
        let mut req = tool_loop(&["t1"], &["t1"]);
        let msgs = req["messages"].as_array_mut().unwrap();
        msgs.push(json!({"role": "assistant", "content": [{"text": "done"}]}));
        msgs.push(json!({"role": "user", "content": [{"text": "thanks, summarize"}]}));
        req["toolConfig"] = json!({"tools": [{"toolSpec": {"name": "ls",
            "inputSchema": {"json": {"type": "object", "properties": {}}}}}]});
        assert_eq!(validate(&req, CLAUDE), Ok(()));
        let c = Reply::new(&req, &MockOptions::default(), 10).converse();
        assert_eq!(c["stopReason"], "end_turn");
        // Told to, or given a tool choice or a new tool, it calls.
        let told = MockOptions {
            tool_calls: Some(1),
            ..Default::default()
        };
        assert_eq!(
            Reply::new(&req, &told, 10).converse()["stopReason"],
            "tool_use"
        );
        let mut chosen = req.clone();
        chosen["toolConfig"]["toolChoice"] = json!({"any": {}});
        assert_eq!(
            Reply::new(&chosen, &MockOptions::default(), 10).converse()["stopReason"],
            "tool_use"
        );
        req["toolConfig"] = tools();
        assert_eq!(
            Reply::new(&req, &MockOptions::default(), 10).converse()["stopReason"],
            "tool_use"
        );
    }

    #[test]
    fn reasons_first_when_thinking_is_on() {
        for field in ["thinking", "reasoning_config", "reasoningConfig"] {
            let req = with(
                base(),
                "additionalModelRequestFields",
                json!({field: {"type": "enabled", "budget_tokens": 1024}}),
            );
            let c = Reply::new(&req, &MockOptions::default(), 10).converse();
            let first = &c["output"]["message"]["content"][0]["reasoningContent"]["reasoningText"];
            assert_eq!(first["text"], DEFAULT_THINKING);
            assert!(is_base64(first["signature"].as_str().unwrap()));
            assert_eq!(
                c["output"]["message"]["content"][1]["text"],
                DEFAULT_CONTENT
            );
            assert_eq!(c["usage"]["outputTokens"], 5 + 4);
        }
        let off = with(
            base(),
            "additionalModelRequestFields",
            json!({"thinking": {"type": "disabled"}}),
        );
        let c = Reply::new(&off, &MockOptions::default(), 10).converse();
        assert_eq!(
            c["output"]["message"]["content"].as_array().unwrap().len(),
            1
        );
    }

    fn decode_all(bytes: &[u8], chunk: usize) -> Vec<Result<Message, String>> {
        let mut decoder = MessageFrameDecoder::new();
        let mut buf = bytes::BytesMut::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode_frame(&mut buf) {
                    Ok(DecodedFrame::Complete(m)) => out.push(Ok(m)),
                    Ok(DecodedFrame::Incomplete) => break,
                    Err(e) => {
                        out.push(Err(e.to_string()));
                        return out;
                    }
                }
            }
        }
        out
    }

    fn header<'a>(m: &'a Message, name: &str) -> &'a str {
        m.headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str())
            .unwrap_or("")
    }

    #[test]
    fn frames_round_trip_through_the_decoder() {
        let req = with(
            with(base(), "toolConfig", tools()),
            "additionalModelRequestFields",
            json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
        );
        let reply = Reply::new(
            &req,
            &MockOptions {
                tool_calls: Some(2),
                ..Default::default()
            },
            10,
        );
        let events = reply.events();
        let stream: Vec<u8> = reply.frames(&MockOptions::default()).concat();
        // Fed whole, byte by byte, or in odd pieces: the same messages.
        for chunk in [stream.len(), 1, 7] {
            let decoded = decode_all(&stream, chunk);
            assert_eq!(decoded.len(), events.len());
            for ((name, payload), m) in events.iter().zip(decoded) {
                let m = m.unwrap();
                assert_eq!(header(&m, ":event-type"), *name);
                assert_eq!(header(&m, ":content-type"), "application/json");
                assert_eq!(header(&m, ":message-type"), "event");
                let mut got: Value = serde_json::from_slice(m.payload()).unwrap();
                let p = got.as_object_mut().unwrap().remove("p").unwrap();
                assert!(!p.as_str().unwrap().is_empty());
                assert_eq!(&got, payload);
            }
        }
    }

    #[test]
    fn streams_events_in_order_and_rebuilds_the_message() {
        let req = with(
            with(base(), "toolConfig", tools()),
            "additionalModelRequestFields",
            json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
        );
        let reply = Reply::new(
            &req,
            &MockOptions {
                tool_calls: Some(2),
                ..Default::default()
            },
            10,
        );
        let events = reply.events();
        let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
        assert_eq!(names[0], "messageStart");
        assert_eq!(events[0].1, json!({"role": "assistant"}));
        assert_eq!(names[names.len() - 2..], ["messageStop", "metadata"]);
        assert_eq!(events[names.len() - 2].1, json!({"stopReason": "tool_use"}));
        assert_eq!(
            events[names.len() - 1].1["usage"],
            reply.converse()["usage"]
        );
        assert_eq!(
            events[names.len() - 1].1["metrics"],
            json!({"latencyMs": 1})
        );

        // Blocks: [start], deltas, stop, with increasing indexes; put back
        // together they give the Converse content.
        let mut rebuilt: Vec<Value> = Vec::new();
        let mut open: Option<u64> = None;
        let mut input = String::new();
        for (name, e) in &events[1..events.len() - 2] {
            let i = e["contentBlockIndex"].as_u64().unwrap();
            match *name {
                "contentBlockStart" => {
                    assert_eq!(open, None);
                    assert_eq!(i as usize, rebuilt.len());
                    let t = &e["start"]["toolUse"];
                    rebuilt
                        .push(json!({"toolUse": {"toolUseId": t["toolUseId"], "name": t["name"]}}));
                    open = Some(i);
                    input.clear();
                }
                "contentBlockDelta" => {
                    if open.is_none() {
                        assert_eq!(i as usize, rebuilt.len());
                        rebuilt.push(json!({}));
                        open = Some(i);
                    }
                    assert_eq!(open, Some(i));
                    let d = &e["delta"];
                    let b = rebuilt.last_mut().unwrap();
                    if let Some(t) = d["text"].as_str() {
                        let s = format!("{}{t}", b["text"].as_str().unwrap_or(""));
                        b["text"] = json!(s);
                    } else if let Some(r) = d.get("reasoningContent") {
                        let rt = &mut b["reasoningContent"]["reasoningText"];
                        if let Some(t) = r["text"].as_str() {
                            let s = format!("{}{t}", rt["text"].as_str().unwrap_or(""));
                            rt["text"] = json!(s);
                        } else {
                            rt["signature"] = r["signature"].clone();
                        }
                    } else {
                        input.push_str(d["toolUse"]["input"].as_str().unwrap());
                    }
                }
                "contentBlockStop" => {
                    assert_eq!(open, Some(i));
                    let b = rebuilt.last_mut().unwrap();
                    if b.get("toolUse").is_some() {
                        b["toolUse"]["input"] = serde_json::from_str(&input).unwrap();
                    }
                    open = None;
                }
                other => panic!("unexpected event {other}"),
            }
        }
        assert_eq!(
            json!(rebuilt),
            reply.converse()["output"]["message"]["content"]
        );
        assert_eq!(rebuilt.len(), 3);
        // Reasoning and text have no contentBlockStart; tool input comes in
        // 2-3 pieces.
        assert_eq!(
            names.iter().filter(|n| **n == "contentBlockStart").count(),
            2
        );
        let pieces = events
            .iter()
            .filter(|(_, e)| e["contentBlockIndex"] == 1 && e["delta"].get("toolUse").is_some())
            .count();
        assert!((2..=3).contains(&pieces), "{pieces} pieces");
    }

    #[test]
    fn streams_text_word_by_word() {
        let opts = MockOptions {
            content: Some("a b c".into()),
            ..Default::default()
        };
        let events = Reply::new(&base(), &opts, 1).events();
        let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        let texts: Vec<&str> = events
            .iter()
            .filter_map(|(_, e)| e["delta"]["text"].as_str())
            .collect();
        assert_eq!(texts, ["a", " b", " c"]);
        assert_eq!(events[4].1, json!({"contentBlockIndex": 0}));
    }

    #[test]
    fn ends_with_an_exception_frame_when_told() {
        let opts = MockOptions {
            exception_after: Some(2),
            ..Default::default()
        };
        let frames = Reply::new(&base(), &opts, 1).frames(&opts);
        assert_eq!(frames.len(), 3);
        let decoded = decode_all(&frames.concat(), 5);
        let last = decoded.last().unwrap().as_ref().unwrap();
        assert_eq!(header(last, ":message-type"), "exception");
        assert_eq!(header(last, ":exception-type"), "throttlingException");
        assert_eq!(header(last, ":content-type"), "application/json");
        let payload: Value = serde_json::from_slice(last.payload()).unwrap();
        assert_eq!(
            payload,
            json!({"message": "Too many requests, please wait before trying again."})
        );

        let opts = MockOptions {
            exception_after: Some(0),
            exception: Some("ModelStreamErrorException".into()),
            message: Some("boom".into()),
            ..Default::default()
        };
        let frames = Reply::new(&base(), &opts, 1).frames(&opts);
        assert_eq!(frames.len(), 1);
        let m = aws_smithy_eventstream::frame::read_message_from(&frames[0][..]).unwrap();
        assert_eq!(header(&m, ":exception-type"), "modelStreamErrorException");
        assert_eq!(&m.payload()[..], b"{\"message\":\"boom\"}");
    }

    #[test]
    fn malformed_inserts_a_frame_with_a_bad_crc() {
        let opts = MockOptions {
            malformed: true,
            ..Default::default()
        };
        let frames = Reply::new(&base(), &opts, 1).frames(&opts);
        let decoded = decode_all(&frames.concat(), 3);
        assert_eq!(decoded.len(), 2);
        assert!(decoded[0].is_ok());
        assert!(
            decoded[1]
                .as_ref()
                .unwrap_err()
                .to_lowercase()
                .contains("checksum")
        );
    }

    #[test]
    fn maps_statuses_to_exceptions() {
        assert_eq!(exception_name(429), "ThrottlingException");
        assert_eq!(exception_name(400), "ValidationException");
        assert_eq!(exception_name(403), "AccessDeniedException");
        assert_eq!(exception_name(404), "ResourceNotFoundException");
        assert_eq!(exception_name(408), "ModelTimeoutException");
        assert_eq!(exception_name(500), "InternalServerException");
        assert_eq!(exception_name(503), "ServiceUnavailableException");
        assert_eq!(exception_name(502), "InternalServerException");
        assert_eq!(exception_event_name(None), "throttlingException");
        assert_eq!(
            exception_event_name(Some("ThrottlingException")),
            "throttlingException"
        );
    }

    #[test]
    fn reads_directives_from_text_and_tool_results() {
        let req = json!({"messages": [
            {"role": "user", "content": [{"text": "hi <mock>{\"content\": \"first\"}</mock>"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": [
                {"json": {"out": "<mock>{\"tool_calls\": 2}</mock>"}}]}}]}
        ]});
        let o = MockOptions::read(None, &HeaderMap::new(), &req).unwrap();
        assert_eq!(o.tool_calls, Some(2));
        let req = json!({"messages": [{"role": "user", "content": [
            {"text": "<mock>{\"split_frames\": true, \"exception_after\": 3, \"exception\": \"modelStreamErrorException\"}</mock>"}]}]});
        let o = MockOptions::read(None, &HeaderMap::new(), &req).unwrap();
        assert!(o.split_frames);
        assert_eq!(o.exception_after, Some(3));
        assert_eq!(o.exception.as_deref(), Some("modelStreamErrorException"));
    }
}
