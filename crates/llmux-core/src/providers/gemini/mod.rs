//! Google Gemini: AI Studio (`gemini/…`, key in the `x-goog-api-key`
//! header, never in the URL) and Vertex AI (`vertex_ai/…`, a bearer token
//! the gateway obtains from service-account credentials). Both take
//! `generateContent` / `streamGenerateContent?alt=sse`.

pub mod error;
pub mod request;
pub mod response;
pub mod schema;
pub mod stream;

use crate::deployment::Deployment;
use crate::providers::{ChatCall, ChatResponse, Credentials, ProviderKind, UpstreamRequest};
use crate::types::ApiError;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

pub const AI_STUDIO_BASE: &str = "https://generativelanguage.googleapis.com";

fn model_id(dep: &Deployment) -> &str {
    dep.upstream_model
        .strip_prefix("models/")
        .unwrap_or(&dep.upstream_model)
}

/// The endpoint for one call; no credential is ever part of it.
pub fn url(dep: &Deployment, stream: bool) -> Result<String, ApiError> {
    let method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    let model = model_id(dep);
    match dep.provider {
        ProviderKind::VertexAi => {
            let v = dep.vertex.as_ref().ok_or_else(|| {
                ApiError::internal(format!(
                    "Deployment `{}` has no vertex_project.",
                    dep.model_name
                ))
            })?;
            let base = match dep.api_base.as_deref() {
                Some(b) => b.trim_end_matches('/').trim_end_matches("/v1").to_owned(),
                None if v.location == "global" => "https://aiplatform.googleapis.com".to_owned(),
                None => format!("https://{}-aiplatform.googleapis.com", v.location),
            };
            Ok(format!(
                "{base}/v1/projects/{}/locations/{}/publishers/google/models/{model}:{method}",
                v.project, v.location
            ))
        }
        _ => {
            let base = dep
                .api_base
                .as_deref()
                .unwrap_or(AI_STUDIO_BASE)
                .trim_end_matches('/');
            let base = base.strip_suffix("/models").unwrap_or(base);
            let base = base.strip_suffix("/v1beta").unwrap_or(base);
            Ok(format!("{base}/v1beta/models/{model}:{method}"))
        }
    }
}

fn headers(dep: &Deployment, creds: &Credentials) -> Result<HeaderMap, ApiError> {
    let mut h = HeaderMap::with_capacity(3 + dep.extra_headers.len());
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (name, value) = match dep.provider {
        ProviderKind::VertexAi => {
            let token = creds.bearer.as_ref().ok_or_else(|| {
                ApiError::internal(format!(
                    "No Vertex AI access token for `{}`.",
                    dep.model_name
                ))
            })?;
            (
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            )
        }
        _ => {
            let key = dep.api_key.as_ref().ok_or_else(|| {
                ApiError::unauthorized(format!(
                    "No Gemini API key for `{}`: set GEMINI_API_KEY or the deployment's api_key.",
                    dep.model_name
                ))
            })?;
            (
                HeaderName::from_static("x-goog-api-key"),
                key.expose().to_owned(),
            )
        }
    };
    if let Ok(mut v) = HeaderValue::from_str(&value) {
        v.set_sensitive(true);
        h.insert(name, v);
    }
    crate::providers::apply_extra_headers(&mut h, dep);
    Ok(h)
}

pub fn build_chat_request(
    dep: &Deployment,
    call: &ChatCall<'_, '_>,
    creds: &Credentials,
) -> Result<UpstreamRequest, ApiError> {
    let req = call.typed()?;
    let body = request::build(&req, model_id(dep), call.drop_params)?;
    Ok(UpstreamRequest {
        url: url(dep, req.is_stream())?,
        headers: headers(dep, creds)?,
        body: crate::json::written_body(
            &body,
            crate::json::translated_size(call.request.body_len()),
        )?,
    })
}

pub fn chat_response(
    dep: &Deployment,
    status: u16,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<ChatResponse, ApiError> {
    if !(200..300).contains(&status) {
        return Err(error::error_response(status, headers, &body));
    }
    let resp: response::GenerateResponse = crate::json::from_bytes(&body).map_err(|e| {
        ApiError::bad_gateway(format!(
            "The upstream returned a malformed Gemini response: {e}"
        ))
        .retryable(true)
    })?;
    let out = response::to_openai(resp, model_id(dep), crate::providers::anthropic::now())?;
    Ok(ChatResponse::typed(out, body.len()))
}

pub fn chat_stream(dep: &Deployment, call: &ChatCall<'_, '_>) -> stream::GeminiStream {
    stream::GeminiStream::new(
        call.request.include_usage(),
        model_id(dep),
        crate::providers::anthropic::now(),
    )
}

#[cfg(test)]
mod fixtures;
