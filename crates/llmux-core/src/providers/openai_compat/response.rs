//! Upstream responses: a success passes through as it is (only the usage is
//! read, which also checks the body is JSON); an error keeps its status and
//! message in OpenAI's shape.

use crate::providers::{Answer, ChatResponse};
use crate::types::{ApiError, ChatCompletionResponse, ErrorKind, Usage};
use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use std::time::Duration;

pub fn chat_response(
    status: u16,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<ChatResponse, ApiError> {
    if !(200..300).contains(&status) {
        return Err(error_response(status, headers, &body));
    }
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        usage: Option<Usage>,
        #[serde(default)]
        choices: Option<IgnoredAny>,
        #[serde(default)]
        error: Option<Value>,
    }
    let env: Envelope = crate::json::from_bytes(&body).map_err(|e| {
        ApiError::bad_gateway(format!(
            "The upstream returned a malformed response body: {e}"
        ))
        .retryable(true)
    })?;
    if env.choices.is_none() {
        // Some providers (OpenRouter among them) report errors with a 200.
        if env.error.is_some() {
            return Err(error_response(status, headers, &body));
        }
        return Err(ApiError::bad_gateway(
            "The upstream returned a response without `choices`.",
        ));
    }
    Ok(ChatResponse {
        answer: Answer::Body(body),
        usage: env.usage,
    })
}

/// A success read whole into the canonical answer, for the Messages API,
/// which needs it typed. Anything that does not read as one (an error
/// inside a 200, a body without `choices`, a malformed one) goes the way
/// of [`chat_response`], which says what is wrong.
pub fn typed_chat_response(
    status: u16,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<ChatResponse, ApiError> {
    if (200..300).contains(&status) {
        if let Ok(answer) = crate::json::from_bytes::<ChatCompletionResponse>(&body) {
            return Ok(ChatResponse::typed(answer, body.len()));
        }
    }
    chat_response(status, headers, body)
}

/// An upstream error in OpenAI's shape, status and message kept.
pub fn error_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let (message, kind, param, code, inner_status) = parse_error_body(body);
    let status = match (status, inner_status) {
        // A 200 carrying an error: the error's own code, if it is a status.
        (s, Some(inner)) if !(400..600).contains(&s) && (400..600).contains(&inner) => inner,
        (s, _) if !(400..600).contains(&s) => 502,
        // 529 (overloaded) is not a status clients know.
        (529, _) => 503,
        (s, _) => s,
    };
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            format!("The upstream answered HTTP {status} with no body.")
        } else {
            format!(
                "The upstream answered HTTP {status}: {}",
                truncate(text, 500)
            )
        }
    });
    let mut err = ApiError::new(status, message).with_retry_after(retry_after(headers));
    if let Some(kind) = kind {
        err = err.with_kind(kind);
    }
    err.param = param;
    err.code = code;
    err
}

/// `Retry-After` (seconds) or `retry-after-ms`.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_millis(ms as u64));
        }
    }
    get("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

type ParsedError = (
    Option<String>,
    Option<ErrorKind>,
    Option<String>,
    Option<String>,
    Option<u16>,
);

fn parse_error_body(body: &[u8]) -> ParsedError {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (None, None, None, None, None);
    };
    let as_text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    // OpenAI: {"error": {...}}; some servers: {"error": "text"};
    // FastAPI-style servers (vLLM): {"detail": ...} or {"message": ...}.
    let obj = match v.get("error") {
        Some(Value::String(s)) => return (Some(s.clone()), None, None, None, None),
        Some(e @ Value::Object(_)) => e,
        _ => &v,
    };
    let message = obj
        .get("message")
        .or_else(|| obj.get("detail"))
        .and_then(as_text);
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .map(|t| ErrorKind::Other(t.to_owned()));
    let param = obj.get("param").and_then(as_text);
    let code = obj.get("code").and_then(as_text);
    let inner_status = obj
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok());
    (message, kind, param, code, inner_status)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn success_passes_through_and_usage_is_read() {
        let body = Bytes::from_static(
            br#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06",
                "choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],
                "usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,
                         "prompt_tokens_details":{"cached_tokens":8}}}"#,
        );
        let r = chat_response(200, &HeaderMap::new(), body.clone()).unwrap();
        let u = r.usage.clone().unwrap();
        assert_eq!(r.into_body().unwrap(), body);
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens()),
            (12, 3, 8)
        );
    }

    /// Read whole for the Messages API, an answer gives what checking it
    /// and reading it again gave: the same answer and usage, or the same
    /// error.
    #[test]
    fn a_typed_read_gives_what_the_check_and_a_second_read_gave() {
        let cases: [(u16, &str); 6] = [
            (
                200,
                r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"h\u00e9"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":2}}}"#,
            ),
            (
                200,
                r#"{"error":{"message":"Provider returned error","code":429}}"#,
            ),
            (200, r#"{"id":"c","object":"chat.completion""#),
            (200, r#"{"id":"c","model":"m"}"#),
            (200, r#"{"id":"c","created":1,"model":"m","choices":{}}"#),
            (
                503,
                r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            ),
        ];
        for (status, body) in cases {
            let h = HeaderMap::new();
            let body = Bytes::from_static(body.as_bytes());
            let once = typed_chat_response(status, &h, body.clone())
                .and_then(|r| Ok((r.usage.clone(), r.into_typed()?)));
            let twice = chat_response(status, &h, body.clone())
                .and_then(|r| Ok((r.usage.clone(), r.into_typed()?)));
            match (once, twice) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => {
                    assert_eq!((a.status, a.message), (b.status, b.message))
                }
                (a, b) => panic!("{body:?}: {a:?} against {b:?}"),
            }
        }
        let r = typed_chat_response(
            200,
            &HeaderMap::new(),
            Bytes::from_static(cases[0].1.as_bytes()),
        )
        .unwrap();
        assert_eq!(r.usage.as_ref().map(|u| u.cached_tokens()), Some(2));
        assert!(matches!(r.answer, Answer::Typed { .. }));
    }

    #[test]
    fn malformed_success_body_is_a_502() {
        let e = chat_response(
            200,
            &HeaderMap::new(),
            Bytes::from_static(b"{\"id\": \"x\", \"choi"),
        )
        .unwrap_err();
        assert_eq!(e.status, 502);
        assert!(e.message.contains("malformed"));
    }

    #[test]
    fn upstream_error_keeps_status_message_type_and_code() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        let e = error_response(
            429,
            &h,
            br#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(e.status, 429);
        assert!(e.message.starts_with("Rate limit reached for gpt-4o"));
        assert_eq!(e.kind.as_str(), "tokens");
        assert_eq!(e.code.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert!(e.retryable);
    }

    #[test]
    fn other_error_shapes_are_understood() {
        let e = error_response(
            400,
            &HeaderMap::new(),
            br#"{"detail":"max_tokens is too large"}"#,
        );
        assert_eq!(
            (e.status, e.message.as_str()),
            (400, "max_tokens is too large")
        );
        let e = error_response(503, &HeaderMap::new(), b"<html>Service Unavailable</html>");
        assert_eq!(e.status, 503);
        assert!(e.message.contains("Service Unavailable"));
        let e = error_response(529, &HeaderMap::new(), br#"{"error":"Overloaded"}"#);
        assert_eq!((e.status, e.message.as_str()), (503, "Overloaded"));
        assert!(e.retryable);
    }

    #[test]
    fn an_error_inside_a_200_is_an_error() {
        let e = chat_response(
            200,
            &HeaderMap::new(),
            Bytes::from_static(br#"{"error":{"message":"No endpoints found","code":404}}"#),
        )
        .unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (404, "No endpoints found"));
    }

    #[test]
    fn retry_after_ms_wins() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
    }
}
