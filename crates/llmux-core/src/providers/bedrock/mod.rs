//! Amazon Bedrock Runtime: Converse and ConverseStream. Requests are
//! signed with SigV4 (`aws-sigv4`) from credentials the gateway resolved,
//! or carry a Bedrock API key as a bearer token. Streams are AWS binary
//! event streams (`aws-smithy-eventstream`).

pub mod error;
pub mod request;
pub mod response;
pub mod stream;

use crate::deployment::Deployment;
use crate::providers::{AwsCredentials, ChatCall, ChatResponse, Credentials, UpstreamRequest};
use crate::types::ApiError;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use request::ModelTraits;
use std::time::SystemTime;

/// The model id as one path segment: everything but unreserved characters
/// percent-encoded (`:` in `…-v1:0`, `:` and `/` in ARNs), as the AWS SDKs do.
pub fn encode_model_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len() + 8);
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn region(dep: &Deployment) -> &str {
    dep.aws
        .as_ref()
        .map(|a| a.region.as_str())
        .unwrap_or("us-east-1")
}

pub fn url(dep: &Deployment, stream: bool) -> String {
    let base = match dep.api_base.as_deref() {
        Some(b) => b.trim_end_matches('/').to_owned(),
        None => format!("https://bedrock-runtime.{}.amazonaws.com", region(dep)),
    };
    let op = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    format!("{base}/model/{}/{op}", encode_model_id(&dep.upstream_model))
}

/// Whether the deployment runs a Claude model (by its id or its catalog
/// entry's).
pub fn is_claude(dep: &Deployment) -> bool {
    traits(dep).claude
}

fn traits(dep: &Deployment) -> ModelTraits {
    // The id sent, and the catalog entry's: an application inference
    // profile's or a provisioned model's ARN names no model, and
    // `model_info.base_model` says which one it runs.
    let id = dep.upstream_model.to_ascii_lowercase();
    let base = dep
        .info
        .0
        .get("key")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let is = |name: &str| id.contains(name) || base.contains(name);
    let effort = if is("openai.gpt-oss") {
        request::Effort::OpenAi
    } else if is("amazon.nova-2") {
        request::Effort::Nova2
    } else {
        request::Effort::None
    };
    ModelTraits {
        claude: is("claude"),
        nova: is("amazon.nova"),
        prompt_caching: dep.info.flag("supports_prompt_caching") || is("claude") || is("nova"),
        effort,
    }
}

/// SigV4 for the `bedrock` service; adds `x-amz-date`, `authorization`
/// (and `x-amz-security-token`) to `headers`.
pub fn sign_request(
    url: &str,
    body: &[u8],
    headers: &mut HeaderMap,
    creds: &AwsCredentials,
    region: &str,
    time: SystemTime,
) -> Result<(), ApiError> {
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.expose().to_owned(),
        creds.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "llmux",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| ApiError::internal(format!("SigV4 parameters: {e}")))?
        .into();
    let pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let signable = SignableRequest::new(
        "POST",
        url,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| ApiError::internal(format!("SigV4 request: {e}")))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| ApiError::internal(format!("SigV4 signing failed: {e}")))?
        .into_parts();
    for (name, value) in instructions.headers() {
        if let (Ok(n), Ok(mut v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            v.set_sensitive(true);
            headers.insert(n, v);
        }
    }
    Ok(())
}

pub fn build_chat_request(
    dep: &Deployment,
    call: &ChatCall<'_, '_>,
    creds: &Credentials,
) -> Result<UpstreamRequest, ApiError> {
    let req = call.typed()?;
    let built = request::build(&req, traits(dep), call.drop_params)?;
    let body = crate::json::written_body(
        &built.body,
        crate::json::translated_size(call.request.body_len()),
    )?;
    let url = url(dep, req.is_stream());
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    crate::providers::apply_extra_headers(&mut headers, dep);
    match (&creds.bearer, &creds.aws) {
        (Some(token), _) => {
            let mut v =
                HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                    ApiError::internal("The Bedrock API key is not a valid header value.")
                })?;
            v.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, v);
        }
        (None, Some(aws)) => sign_request(
            &url,
            &body,
            &mut headers,
            aws,
            region(dep),
            SystemTime::now(),
        )?,
        (None, None) => {
            return Err(ApiError::unauthorized(format!(
                "No AWS credentials for `{}`: set aws_access_key_id/aws_secret_access_key, AWS_* variables, \
                 a profile, or AWS_BEARER_TOKEN_BEDROCK.",
                dep.model_name
            )));
        }
    }
    Ok(UpstreamRequest { url, headers, body })
}

pub fn chat_response(
    dep: &Deployment,
    call: &ChatCall<'_, '_>,
    status: u16,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<ChatResponse, ApiError> {
    if !(200..300).contains(&status) {
        return Err(error::error_response(status, headers, &body));
    }
    let v: serde_json::Value = crate::json::from_bytes(&body).map_err(|e| {
        ApiError::bad_gateway(format!(
            "The upstream returned a malformed Converse response: {e}"
        ))
        .retryable(true)
    })?;
    let out = response::to_openai(
        &v,
        &dep.upstream_model,
        call.wants_json(),
        crate::providers::anthropic::now(),
    );
    Ok(ChatResponse::typed(out, body.len()))
}

pub fn chat_stream(dep: &Deployment, call: &ChatCall<'_, '_>) -> stream::BedrockStream {
    stream::BedrockStream::new(
        call.request.include_usage(),
        call.wants_json(),
        &dep.upstream_model,
        crate::providers::anthropic::now(),
    )
}

#[cfg(test)]
mod fixtures;
