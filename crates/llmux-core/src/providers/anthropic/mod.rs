//! Anthropic's Messages API (`anthropic/…` models and the catalog's Claude
//! names): OpenAI chat → `POST /v1/messages` and back. Split by concern:
//! request, response, stream, error.

pub mod error;
pub mod passthrough;
pub mod request;
pub mod response;
pub mod stream;

use crate::deployment::Deployment;
use crate::providers::{ChatCall, ChatResponse, UpstreamRequest};
use crate::types::anthropic::{API_VERSION, MessagesResponse};
use crate::types::{ApiError, Secret};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

pub const DEFAULT_BASE: &str = "https://api.anthropic.com";

/// `{api_base}/v1/messages`, whether or not the base already ends in `/v1`
/// (or names the endpoint itself).
pub fn messages_url(api_base: Option<&str>, endpoint: &str) -> String {
    let base = api_base.unwrap_or(DEFAULT_BASE).trim_end_matches('/');
    let base = base.strip_suffix("/v1/messages").unwrap_or(base);
    let base = base.strip_suffix("/v1").unwrap_or(base);
    format!("{base}/v1/{endpoint}")
}

/// Auth and version headers, the deployment's `extra_headers` on top.
pub fn headers(dep: &Deployment, version: Option<&str>, betas: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(5 + dep.extra_headers.len());
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(key) = dep.api_key.as_ref().filter(|k| !k.is_empty()) {
        if let Ok(mut v) = HeaderValue::from_str(key.expose()) {
            v.set_sensitive(true);
            h.insert(HeaderName::from_static("x-api-key"), v);
        }
    }
    let version = version
        .and_then(|v| HeaderValue::from_str(v).ok())
        .unwrap_or(HeaderValue::from_static(API_VERSION));
    h.insert(HeaderName::from_static("anthropic-version"), version);
    if !betas.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&betas.join(",")) {
            h.insert(HeaderName::from_static("anthropic-beta"), v);
        }
    }
    for (name, value) in &dep.extra_headers {
        add_header(&mut h, name, value);
    }
    h
}

fn add_header(h: &mut HeaderMap, name: &str, value: &Secret) {
    let Ok(n) = HeaderName::from_bytes(name.as_bytes()) else {
        return;
    };
    // Betas from config join the request's own.
    let merged = match (n.as_str(), h.get(&n).and_then(|v| v.to_str().ok())) {
        ("anthropic-beta", Some(existing)) => format!("{existing},{}", value.expose()),
        _ => value.expose().to_owned(),
    };
    if let Ok(mut v) = HeaderValue::from_str(&merged) {
        v.set_sensitive(true);
        h.insert(n, v);
    }
}

pub fn build_chat_request(
    dep: &Deployment,
    call: &ChatCall<'_, '_>,
) -> Result<UpstreamRequest, ApiError> {
    let req = call.typed()?;
    let built = request::build(
        &req,
        &dep.upstream_model,
        dep.info.u64("max_output_tokens"),
        call.drop_params,
    )?;
    let size = crate::json::translated_size(call.request.body_len());
    Ok(UpstreamRequest {
        url: messages_url(dep.api_base.as_deref(), "messages"),
        headers: headers(dep, None, &built.betas),
        body: crate::json::written_body(&built.body, size)?,
    })
}

pub fn chat_response(
    call: &ChatCall<'_, '_>,
    status: u16,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<ChatResponse, ApiError> {
    if !(200..300).contains(&status) {
        return Err(error::error_response(status, headers, &body));
    }
    let resp: MessagesResponse = crate::json::from_bytes(&body).map_err(|e| {
        ApiError::bad_gateway(format!(
            "The upstream returned a malformed Messages response: {e}"
        ))
        .retryable(true)
    })?;
    let out = response::to_openai(resp, call.wants_json(), now());
    Ok(ChatResponse::typed(out, body.len()))
}

pub fn chat_stream(dep: &Deployment, call: &ChatCall<'_, '_>) -> stream::AnthropicStream {
    stream::AnthropicStream::new(
        call.request.include_usage(),
        call.wants_json(),
        &dep.upstream_model,
        now(),
    )
}

/// `role: "system"` entries inside `messages` (some clients send them;
/// Anthropic refuses them) moved into the top-level `system`, in order
/// after what `system` already held. `None` when there are none, so the
/// request passes through untouched. Returns the new `messages` and
/// `system` as JSON text.
pub fn hoist_system(
    messages: &serde_json::value::RawValue,
    system: Option<&serde_json::value::RawValue>,
) -> Option<(String, String)> {
    use serde_json::{Value, json};
    if !messages.get().contains("\"system\"") {
        return None;
    }
    let mut list: Vec<Value> = serde_json::from_str(messages.get()).ok()?;
    if !list
        .iter()
        .any(|m| m.get("role").and_then(Value::as_str) == Some("system"))
    {
        return None;
    }
    let as_blocks = |content: Value| -> Vec<Value> {
        match content {
            Value::String(t) => vec![json!({"type": "text", "text": t})],
            Value::Array(blocks) => blocks,
            _ => vec![],
        }
    };
    let mut blocks: Vec<Value> = system
        .and_then(|s| serde_json::from_str::<Value>(s.get()).ok())
        .map(as_blocks)
        .unwrap_or_default();
    list.retain_mut(|m| {
        if m.get("role").and_then(Value::as_str) == Some("system") {
            blocks.extend(as_blocks(
                m.get_mut("content").map(Value::take).unwrap_or_default(),
            ));
            false
        } else {
            true
        }
    });
    Some((
        Value::Array(list).to_string(),
        Value::Array(blocks).to_string(),
    ))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_entries_inside_messages_move_to_the_top_level_system() {
        let raw = |s: &str| serde_json::value::RawValue::from_string(s.to_owned()).unwrap();
        let m = raw(
            r#"[{"role":"system","content":"rule 2"},{"role":"user","content":"hi"},{"role":"system","content":[{"type":"text","text":"rule 3","cache_control":{"type":"ephemeral"}}]}]"#,
        );
        let (messages, system) = hoist_system(&m, Some(&raw(r#""rule 1""#))).unwrap();
        assert_eq!(messages, r#"[{"role":"user","content":"hi"}]"#);
        let system: serde_json::Value = serde_json::from_str(&system).unwrap();
        let texts: Vec<&str> = system
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["rule 1", "rule 2", "rule 3"]);
        assert_eq!(system[2]["cache_control"]["type"], "ephemeral");
        // Nothing to move: untouched.
        assert!(
            hoist_system(
                &raw(r#"[{"role":"user","content":"the system is down"}]"#),
                None
            )
            .is_none()
        );
    }

    #[test]
    fn messages_url_accepts_every_spelling_of_the_base() {
        for base in [
            "http://127.0.0.1:9/",
            "http://127.0.0.1:9/v1",
            "http://127.0.0.1:9/v1/messages",
        ] {
            assert_eq!(
                messages_url(Some(base), "messages"),
                "http://127.0.0.1:9/v1/messages"
            );
        }
        assert_eq!(
            messages_url(None, "messages/count_tokens"),
            "https://api.anthropic.com/v1/messages/count_tokens"
        );
    }
}

#[cfg(test)]
mod fixtures;
