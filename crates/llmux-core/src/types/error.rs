//! The one error shape llmux answers with: OpenAI's
//! `{"error": {"message", "type", "param", "code"}}`, plus the HTTP status and
//! whether a retry (same or another deployment) may help.

use serde::Serialize;
use std::time::Duration;

/// An error as a client sees it. Every layer's error ends up here, once, at
/// the HTTP edge.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {kind}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub kind: ErrorKind,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<String>,
    /// Seconds the upstream asked us to wait (`Retry-After`), kept for the client.
    pub retry_after: Option<Duration>,
    /// Whether another attempt may succeed (429, 5xx, timeouts, resets).
    pub retryable: bool,
}

/// OpenAI's `error.type` values, plus the few LiteLLM clients know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    RateLimit,
    Upstream,
    Timeout,
    NotImplemented,
    Server,
    /// Keeps an upstream's own type string when it is none of the above.
    Other(String),
}

impl ErrorKind {
    pub fn as_str(&self) -> &str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::NotImplemented => "not_implemented_error",
            ErrorKind::Server => "api_error",
            ErrorKind::Other(s) => s.as_str(),
        }
    }

    /// The type that fits an HTTP status when the upstream gave none.
    pub fn for_status(status: u16) -> ErrorKind {
        match status {
            400 | 404 | 413 | 422 => {
                if status == 404 {
                    ErrorKind::NotFound
                } else {
                    ErrorKind::InvalidRequest
                }
            }
            401 => ErrorKind::Authentication,
            403 => ErrorKind::Permission,
            408 | 504 => ErrorKind::Timeout,
            429 => ErrorKind::RateLimit,
            501 => ErrorKind::NotImplemented,
            502 | 503 => ErrorKind::Upstream,
            _ => ErrorKind::Server,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a status is worth another attempt.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529)
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind: ErrorKind::for_status(status),
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
            retryable: is_retryable_status(status),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, message)
    }

    /// A 400 that names the offending request field.
    pub fn invalid_field(param: &str, message: impl Into<String>) -> Self {
        ApiError::new(400, message).with_param(param)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(401, message).with_code("invalid_api_key")
    }

    pub fn model_not_found(model: &str) -> Self {
        ApiError::new(
            404,
            format!(
                "The model `{model}` is not served by this llmux. \
                 GET /v1/models (or /v1/model/info) lists the models you can use."
            ),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    pub fn payload_too_large(limit_bytes: usize) -> Self {
        ApiError::new(
            413,
            format!("Request body is larger than the limit of {limit_bytes} bytes."),
        )
        .with_code("request_too_large")
    }

    /// The upstream could not be reached or broke the connection.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        ApiError::new(502, message)
    }

    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        ApiError::new(504, message).with_code("timeout")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, message)
    }

    pub fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.to_owned());
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Removes a secret from the message (an upstream may echo a key back).
    pub fn redact(&mut self, secret: &str) {
        if secret.len() >= 4 && self.message.contains(secret) {
            self.message = self.message.replace(secret, "[redacted]");
        }
    }

    /// The OpenAI error body.
    pub fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            param: Option<&'a str>,
            code: Option<&'a str>,
        }
        let body = Body {
            error: Inner {
                message: &self.message,
                kind: self.kind.as_str(),
                param: self.param.as_deref(),
                code: self.code.as_deref(),
            },
        };
        // Serializing plain strings cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_in_openai_shape() {
        let err = ApiError::invalid_field("messages", "`messages` must be an array");
        let v: serde_json::Value = serde_json::from_slice(&err.to_json()).unwrap();
        assert_eq!(v["error"]["message"], "`messages` must be an array");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "messages");
        assert!(v["error"]["code"].is_null());
    }

    #[test]
    fn unknown_model_names_the_model_and_the_list() {
        let err = ApiError::model_not_found("gpt-9");
        assert_eq!(err.status, 404);
        assert!(err.message.contains("gpt-9"));
        assert!(err.message.contains("/v1/models"));
    }

    #[test]
    fn retryable_statuses() {
        assert!(ApiError::new(429, "x").retryable);
        assert!(ApiError::new(503, "x").retryable);
        assert!(!ApiError::new(400, "x").retryable);
        assert!(!ApiError::new(401, "x").retryable);
    }
}
