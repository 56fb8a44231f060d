//! The master key: with one set, every route but liveness needs it. Keys are
//! read from every header LiteLLM clients use, compared in constant time.

use http::{HeaderMap, HeaderName};
use llmux_core::{ApiError, Secret};
use subtle::ConstantTimeEq;

/// Headers a client key may come in besides `Authorization`, as LiteLLM
/// accepts them.
static KEY_HEADERS: [HeaderName; 4] = [
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("api-key"),
    HeaderName::from_static("x-litellm-api-key"),
    HeaderName::from_static("x-goog-api-key"),
];

/// Every key the request carries, in one pass over its headers (a lookup
/// per key header would hash each name).
pub fn presented_keys(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            if name == http::header::AUTHORIZATION {
                let v = value.to_str().ok()?.trim();
                Some(match v.split_once(' ') {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                    _ => v,
                })
            } else if KEY_HEADERS.contains(name) {
                Some(value.to_str().ok()?.trim())
            } else {
                None
            }
        })
        .filter(|k| !k.is_empty())
}

/// The 401 for a request without a key llmux knows.
pub fn invalid_key() -> ApiError {
    ApiError::unauthorized(
        "Authentication error: invalid or missing API key. Send your llmux key as \
         `Authorization: Bearer <key>` (or in `x-api-key`, `api-key`, `x-litellm-api-key`).",
    )
}

/// Whether the request may pass: no master key set, or it presents it.
pub fn authorized(master: Option<&Secret>, headers: &HeaderMap) -> bool {
    let Some(master) = master else {
        return true;
    };
    let want = master.expose().as_bytes();
    let mut ok = subtle::Choice::from(0u8);
    for key in presented_keys(headers) {
        ok |= key.as_bytes().ct_eq(want);
    }
    bool::from(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accepts_the_master_key_from_every_header_clients_use() {
        let m = Secret::new("sk-master");
        for h in [
            ("authorization", "Bearer sk-master"),
            ("authorization", "bearer sk-master"),
            ("x-api-key", "sk-master"),
            ("api-key", "sk-master"),
            ("x-litellm-api-key", "sk-master"),
            ("x-goog-api-key", "sk-master"),
        ] {
            assert!(authorized(Some(&m), &headers(&[h])), "{h:?}");
        }
    }

    #[test]
    fn refuses_wrong_or_missing_keys() {
        let m = Secret::new("sk-master");
        assert!(!authorized(Some(&m), &headers(&[])));
        assert!(!authorized(
            Some(&m),
            &headers(&[("authorization", "Bearer sk-maste")])
        ));
        assert!(!authorized(
            Some(&m),
            &headers(&[("authorization", "Bearer sk-master-plus")])
        ));
        assert!(!authorized(
            Some(&m),
            &headers(&[("x-api-key", "dummy-key")])
        ));
        // The key in a header no client sends it in does not count.
        assert!(!authorized(
            Some(&m),
            &headers(&[("x-api-keys", "sk-master"), ("cookie", "sk-master")])
        ));
    }

    #[test]
    fn cline_sends_a_dummy_bearer_and_the_real_key_in_x_litellm_api_key() {
        let m = Secret::new("sk-master");
        let h = headers(&[
            ("authorization", "Bearer dummy"),
            ("x-litellm-api-key", "sk-master"),
        ]);
        assert!(authorized(Some(&m), &h));
    }

    #[test]
    fn without_a_master_key_everyone_passes() {
        assert!(authorized(
            None,
            &headers(&[("authorization", "Bearer dummy-key")])
        ));
    }
}
