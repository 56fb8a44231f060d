//! LiteLLM's response headers about the virtual key a request came with:
//! its spend, budget and limits, and what is left of its limits this
//! minute, in OpenAI's `x-ratelimit-*` names for the key's own rpm / tpm
//! and in LiteLLM's `x-litellm-key-remaining-*-<model>` for its limits on
//! a model.

use super::limits::Admission;
use super::lock;
use http::{HeaderMap, HeaderName, HeaderValue};

static KEY_SPEND: HeaderName = HeaderName::from_static("x-litellm-key-spend");
static KEY_MAX_BUDGET: HeaderName = HeaderName::from_static("x-litellm-key-max-budget");
static KEY_RPM_LIMIT: HeaderName = HeaderName::from_static("x-litellm-key-rpm-limit");
static KEY_TPM_LIMIT: HeaderName = HeaderName::from_static("x-litellm-key-tpm-limit");
static LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
static REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
static LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
static REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");

impl Admission {
    /// The key's headers on an answer (nothing for the master key):
    /// `x-litellm-key-spend` (its spend as the answer's head is written:
    /// a JSON answer's own cost in it, a stream's not yet known), and
    /// those of `x-litellm-key-max-budget`, `-rpm-limit` and `-tpm-limit`
    /// it sets. With an rpm or tpm limit, `x-ratelimit-limit-requests` /
    /// `-tokens` and `x-ratelimit-remaining-requests` / `-tokens`: what
    /// is left this minute once this request is counted (its tokens are
    /// not known yet). With limits on the model the request asked for,
    /// `x-litellm-key-remaining-requests-<model>` / `-tokens-<model>`, the
    /// model named as its limit is set, `/` (and any character a header
    /// name cannot hold) written `-`, as LiteLLM writes it.
    pub fn key_headers(&self, h: &mut HeaderMap) {
        let Some(entry) = self.entry() else {
            return;
        };
        let s = entry.settings();
        h.insert(KEY_SPEND.clone(), float(entry.spend().0));
        if let Some(b) = s.max_budget {
            h.insert(KEY_MAX_BUDGET.clone(), float(b));
        }
        let used = |tokens: bool| {
            self.counted
                .map(|c| if tokens { c.tokens } else { c.requests })
        };
        for (limit, used, names) in [
            (
                s.rpm_limit,
                used(false),
                [&KEY_RPM_LIMIT, &LIMIT_REQUESTS, &REMAINING_REQUESTS],
            ),
            (
                s.tpm_limit,
                used(true),
                [&KEY_TPM_LIMIT, &LIMIT_TOKENS, &REMAINING_TOKENS],
            ),
        ] {
            let Some(limit) = limit else { continue };
            let [key_limit, limit_name, remaining_name] = names;
            h.insert(key_limit.clone(), HeaderValue::from(limit));
            h.insert(limit_name.clone(), HeaderValue::from(limit));
            if let Some(used) = used {
                h.insert(
                    remaining_name.clone(),
                    HeaderValue::from(limit.saturating_sub(used)),
                );
            }
        }
        for (model, c) in lock(&self.model_counted).iter() {
            for (limit, used, what) in [
                (model.rpm, c.requests, "requests"),
                (model.tpm, c.tokens, "tokens"),
            ] {
                let Some(limit) = limit else { continue };
                if let Some(name) = model_header(what, &model.name) {
                    h.insert(name, HeaderValue::from(limit.saturating_sub(used)));
                }
            }
        }
    }
}

/// A float as Python's `str` would give it for LiteLLM's readers: with a
/// point or an exponent, never a bare integer.
fn float(v: f64) -> HeaderValue {
    HeaderValue::try_from(format!("{v:?}")).unwrap_or(HeaderValue::from_static("0.0"))
}

/// `x-litellm-key-remaining-<what>-<model>`, the model's name written as a
/// header name may hold it.
fn model_header(what: &str, model: &str) -> Option<HeaderName> {
    let mut name = format!("x-litellm-key-remaining-{what}-");
    name.extend(model.chars().map(|c| {
        if c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c) {
            c.to_ascii_lowercase()
        } else {
            '-'
        }
    }));
    HeaderName::try_from(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_models_name_is_written_as_litellm_writes_it_in_a_header_name() {
        let n = |m| model_header("requests", m).map(|h| h.as_str().to_owned());
        assert_eq!(
            n("openrouter/google/gemini-2.0-flash-001").as_deref(),
            Some("x-litellm-key-remaining-requests-openrouter-google-gemini-2.0-flash-001")
        );
        assert_eq!(
            n("Claude Sonnet@4:1").as_deref(),
            Some("x-litellm-key-remaining-requests-claude-sonnet-4-1")
        );
    }

    #[test]
    fn a_float_header_reads_as_python_writes_floats() {
        assert_eq!(float(0.0), "0.0");
        assert_eq!(float(25.0), "25.0");
        assert_eq!(float(0.000123), "0.000123");
    }
}
