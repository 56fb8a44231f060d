//! Anthropic errors → `ApiError`, status and message kept.

use crate::providers::openai_compat::retry_after;
use crate::types::{ApiError, ErrorKind};
use http::HeaderMap;
use serde::Deserialize;

#[derive(Deserialize)]
struct Envelope {
    error: Inner,
}

#[derive(Deserialize)]
struct Inner {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

/// The status an Anthropic error type stands for.
pub fn status_for_type(kind: &str) -> Option<u16> {
    Some(match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "overloaded_error" => 529,
        "timeout_error" => 504,
        _ => return None,
    })
}

/// An error from its type and message (HTTP error bodies and `error`
/// stream events alike).
pub fn from_parts(status: u16, kind: &str, message: &str) -> ApiError {
    // 529 (overloaded) is not a status clients know: 503, retryable.
    let status = if status == 529 { 503 } else { status };
    let kind = match kind {
        "invalid_request_error" => ErrorKind::InvalidRequest,
        "authentication_error" => ErrorKind::Authentication,
        "permission_error" => ErrorKind::Permission,
        "not_found_error" => ErrorKind::NotFound,
        "rate_limit_error" => ErrorKind::RateLimit,
        "api_error" => ErrorKind::Server,
        other => ErrorKind::Other(other.to_owned()),
    };
    ApiError::new(status, message).with_kind(kind)
}

pub fn error_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let err = match serde_json::from_slice::<Envelope>(body) {
        Ok(env) => {
            let status = if (400..600).contains(&status) {
                status
            } else {
                status_for_type(&env.error.kind).unwrap_or(502)
            };
            from_parts(status, &env.error.kind, &env.error.message)
        }
        Err(_) => crate::providers::openai_compat::error_response(status, headers, body),
    };
    err.with_retry_after(retry_after(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn maps_every_documented_error_type() {
        let cases = [
            (400, "invalid_request_error", 400),
            (401, "authentication_error", 401),
            (403, "permission_error", 403),
            (404, "not_found_error", 404),
            (413, "request_too_large", 413),
            (429, "rate_limit_error", 429),
            (500, "api_error", 500),
            (529, "overloaded_error", 503),
        ];
        for (status, kind, want) in cases {
            let body =
                format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"msg {kind}"}}}}"#);
            let e = error_response(status, &HeaderMap::new(), body.as_bytes());
            assert_eq!(e.status, want, "{kind}");
            assert_eq!(e.message, format!("msg {kind}"));
        }
    }

    #[test]
    fn overloaded_is_retryable_and_retry_after_is_kept() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        let e = error_response(
            529,
            &h,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert!(e.retryable);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(3)));
        let e = error_response(
            429,
            &h,
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert!(e.retryable);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(3)));
    }
}
