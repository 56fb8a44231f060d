//! Bedrock errors (`x-amzn-ErrorType` + `{"message"}`) → `ApiError`.

use crate::providers::openai_compat::retry_after;
use crate::types::{ApiError, ErrorKind};
use http::HeaderMap;
use serde_json::Value;

/// The status an exception name stands for, and whether to retry it.
pub fn status_for(exception: &str) -> Option<(u16, bool)> {
    Some(match exception {
        "ThrottlingException" | "throttlingException" => (429, true),
        "ValidationException" | "validationException" => (400, false),
        "AccessDeniedException" | "UnrecognizedClientException" => (403, false),
        "ResourceNotFoundException" => (404, false),
        "ModelTimeoutException" | "modelTimeoutException" => (408, true),
        "ModelNotReadyException"
        | "ServiceUnavailableException"
        | "serviceUnavailableException" => (503, true),
        "InternalServerException" | "internalServerException" => (500, true),
        "ModelStreamErrorException" | "modelStreamErrorException" | "ModelErrorException" => {
            (502, true)
        }
        "ServiceQuotaExceededException" => (429, false),
        _ => return None,
    })
}

/// An exception by name and message (HTTP errors and stream exceptions).
pub fn from_exception(http_status: u16, name: &str, message: &str) -> ApiError {
    let (mapped, retryable) = status_for(name).unwrap_or((
        if (400..600).contains(&http_status) {
            http_status
        } else {
            502
        },
        http_status >= 500,
    ));
    let status = if (400..600).contains(&http_status) && status_for(name).is_none() {
        http_status
    } else {
        mapped
    };
    ApiError::new(status, message)
        .with_kind(ErrorKind::Other(name.to_owned()))
        .retryable(retryable)
}

pub fn error_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let name = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_owned());
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("Message")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    match (name, message) {
        (Some(n), Some(m)) => from_exception(status, &n, &m).with_retry_after(retry_after(headers)),
        (Some(n), None) => from_exception(status, &n, &format!("Bedrock answered {n}."))
            .with_retry_after(retry_after(headers)),
        (None, _) => crate::providers::openai_compat::error_response(status, headers, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn maps_exceptions_by_header_and_keeps_the_message() {
        for (name, status, want) in [
            ("ThrottlingException", 429, 429),
            ("ValidationException", 400, 400),
            ("AccessDeniedException", 403, 403),
            ("ResourceNotFoundException", 404, 404),
            ("ModelNotReadyException", 429, 503),
            ("ServiceUnavailableException", 503, 503),
            ("ModelTimeoutException", 408, 408),
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                "x-amzn-errortype",
                HeaderValue::from_str(&format!(
                    "{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"
                ))
                .unwrap(),
            );
            let e = error_response(
                status,
                &h,
                br#"{"message":"Too many requests, please wait."}"#,
            );
            assert_eq!(
                (e.status, e.message.as_str()),
                (want, "Too many requests, please wait."),
                "{name}"
            );
            assert_eq!(e.kind.as_str(), name);
        }
    }
}
