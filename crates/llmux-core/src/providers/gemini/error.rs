//! Google's error JSON → `ApiError`, status and message kept.

use crate::providers::openai_compat::retry_after;
use crate::types::{ApiError, ErrorKind};
use http::HeaderMap;
use serde_json::Value;

/// The HTTP status a Google RPC status stands for.
pub fn status_for(status: &str) -> Option<u16> {
    Some(match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "RESOURCE_EXHAUSTED" => 429,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => 500,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => return None,
    })
}

/// An error object (`{"code", "message", "status"}`), from a response body
/// or a stream event.
pub fn from_error_object(http_status: u16, e: &Value) -> ApiError {
    let rpc = e.get("status").and_then(Value::as_str);
    let status = if (400..600).contains(&http_status) {
        http_status
    } else {
        rpc.and_then(status_for)
            .or_else(|| {
                e.get("code")
                    .and_then(Value::as_u64)
                    .and_then(|c| u16::try_from(c).ok())
            })
            .filter(|s| (400..600).contains(s))
            .unwrap_or(502)
    };
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("The upstream reported an error.")
        .to_owned();
    let mut err = ApiError::new(status, message);
    if let Some(rpc) = rpc {
        err = err.with_kind(ErrorKind::Other(rpc.to_owned()));
    }
    err
}

pub fn error_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ApiError {
    // Google answers a JSON object, or (from some proxies) a list of one.
    let parsed: Option<Value> = serde_json::from_slice::<Value>(body).ok().map(|v| match v {
        Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        other => other,
    });
    match parsed.as_ref().and_then(|v| v.get("error")) {
        Some(e) => from_error_object(status, e).with_retry_after(retry_after(headers)),
        None => crate::providers::openai_compat::error_response(status, headers, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_google_statuses_and_keeps_the_message() {
        for (code, rpc, want) in [
            (400, "INVALID_ARGUMENT", 400),
            (401, "UNAUTHENTICATED", 401),
            (403, "PERMISSION_DENIED", 403),
            (404, "NOT_FOUND", 404),
            (429, "RESOURCE_EXHAUSTED", 429),
            (500, "INTERNAL", 500),
            (503, "UNAVAILABLE", 503),
            (504, "DEADLINE_EXCEEDED", 504),
        ] {
            let body =
                format!(r#"{{"error":{{"code":{code},"message":"m {rpc}","status":"{rpc}"}}}}"#);
            let e = error_response(code, &HeaderMap::new(), body.as_bytes());
            assert_eq!(
                (e.status, e.message.as_str()),
                (want, format!("m {rpc}").as_str())
            );
            assert_eq!(e.kind.as_str(), rpc);
        }
        assert!(
            error_response(
                429,
                &HeaderMap::new(),
                br#"{"error":{"code":429,"message":"q","status":"RESOURCE_EXHAUSTED"}}"#
            )
            .retryable
        );
        let e = error_response(
            400,
            &HeaderMap::new(),
            br#"[{"error":{"code":400,"message":"list form","status":"INVALID_ARGUMENT"}}]"#,
        );
        assert_eq!(e.message, "list form");
    }
}
