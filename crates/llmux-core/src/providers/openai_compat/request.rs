//! The upstream request: the client's body with `model` rewritten, plus auth.

use super::{AZURE_DEFAULT_API_VERSION, Auth, CompatSpec, UrlStyle};
use crate::deployment::Deployment;
use crate::providers::ProviderKind;
use crate::providers::{ChatCall, UpstreamRequest};
use crate::types::raw::Rewrite;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::providers::GATEWAY_FIELDS;

pub fn build_chat_request(
    spec: &CompatSpec,
    dep: &Deployment,
    call: &ChatCall<'_, '_>,
) -> UpstreamRequest {
    let req = call.request;
    // At most three fields set, kept on the stack: most requests set none,
    // a stream one.
    let mut set_buf: [(&str, &str); 3] = [("", ""); 3];
    let mut n_set = 0;
    // Ask for usage on every stream (for accounting); the stream translator
    // hides the usage chunk from clients that did not ask for it.
    let stream_options;
    if req.is_stream() && spec.stream_usage && !req.include_usage() && stream_usage_known(spec, dep)
    {
        let mut opts: Map<String, Value> = req
            .get_as::<Map<String, Value>>("stream_options")
            .ok()
            .flatten()
            .unwrap_or_default();
        opts.insert("include_usage".into(), Value::Bool(true));
        stream_options = Value::Object(opts).to_string();
        set_buf[n_set] = ("stream_options", stream_options.as_str());
        n_set += 1;
    }
    // OpenRouter reports what a call cost when asked, as LiteLLM asks.
    if spec.provider == ProviderKind::OpenRouter && req.get("usage").is_none() {
        set_buf[n_set] = ("usage", r#"{"include":true}"#);
        n_set += 1;
    }
    let mut remove: Vec<&str> = Vec::new();
    if reasoning_model(spec, dep) {
        // OpenAI's reasoning models take `max_completion_tokens` only, as
        // LiteLLM sends it; and with `drop_params`, the sampling knobs
        // they refuse are left out (without it, OpenAI's own 400 names
        // them).
        if let (Some(max), None) = (req.get("max_tokens"), req.get("max_completion_tokens")) {
            remove.push("max_tokens");
            set_buf[n_set] = ("max_completion_tokens", max.get());
            n_set += 1;
        }
        if call.drop_params {
            for name in REASONING_REFUSES {
                let refused = match (*name, req.get(name)) {
                    (_, None) => false,
                    // Only the default temperature is taken.
                    ("temperature", Some(t)) => t.get().trim() != "1" && t.get().trim() != "1.0",
                    _ => true,
                };
                if refused {
                    remove.push(name);
                }
            }
        }
    }
    let removed: Vec<&str>;
    let remove: &[&str] = if remove.is_empty() {
        GATEWAY_FIELDS
    } else {
        removed = GATEWAY_FIELDS.iter().copied().chain(remove).collect();
        &removed
    };
    let body = req.write(&Rewrite {
        model: &dep.upstream_model,
        remove,
        set: &set_buf[..n_set],
        defaults: dep.extra_body.as_ref(),
    });
    UpstreamRequest {
        url: chat_url(spec, dep),
        headers: headers(spec, dep),
        body: Bytes::from(body),
    }
}

/// Sampling parameters OpenAI's reasoning models refuse (`temperature`
/// other than 1 included).
const REASONING_REFUSES: &[&str] = &[
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
];

/// An OpenAI reasoning model (o1, o3, o4-mini, gpt-5, …) on OpenAI or
/// Azure, by its id or, for an Azure deployment of any name, the catalog
/// entry `model_info.base_model` names.
fn reasoning_model(spec: &CompatSpec, dep: &Deployment) -> bool {
    if !matches!(spec.provider, ProviderKind::OpenAi | ProviderKind::Azure) {
        return false;
    }
    // Read in place, no copy: this runs on every OpenAI request.
    let is = |id: &str| {
        let id = id.as_bytes();
        let id = match id.iter().rposition(|&b| b == b'/') {
            Some(slash) => &id[slash + 1..],
            None => id,
        };
        match id {
            [o, digit, ..] if (o | 0x20) == b'o' && digit.is_ascii_digit() => true,
            [g, p, t, b'-', b'5', ..] if [g | 0x20, p | 0x20, t | 0x20] == *b"gpt" => {
                !id.windows(4).any(|w| w.eq_ignore_ascii_case(b"chat"))
            }
            _ => false,
        }
    };
    // An Azure deployment's name says nothing; a series marker or its base
    // model does.
    if spec.provider == ProviderKind::Azure
        && AZURE_SERIES
            .iter()
            .any(|p| dep.upstream_model.starts_with(p))
    {
        return true;
    }
    is(&dep.upstream_model)
        || (spec.provider == ProviderKind::Azure
            && dep
                .info
                .0
                .get("key")
                .and_then(Value::as_str)
                .is_some_and(is))
}

/// LiteLLM's markers of an Azure deployment's model family
/// (`azure/o_series/my-deployment`), not part of the deployment's name.
const AZURE_SERIES: &[&str] = &["o_series/", "gpt5_series/"];

/// The Azure deployment name in a model id, without a series marker.
fn azure_deployment(id: &str) -> &str {
    AZURE_SERIES
        .iter()
        .find_map(|p| id.strip_prefix(p))
        .unwrap_or(id)
}

/// Whether the upstream takes `stream_options`: every provider here does,
/// but Azure only from API version 2024-09-01-preview (older versions
/// answer 400 "Unknown parameter").
fn stream_usage_known(spec: &CompatSpec, dep: &Deployment) -> bool {
    if spec.provider != ProviderKind::Azure {
        return true;
    }
    azure_api_version(dep) >= "2024-09-01-preview"
}

/// An Azure deployment's API version: the config's, else the one in a
/// whole-URL `api_base`, else the default.
fn azure_api_version(dep: &Deployment) -> &str {
    let from_base = dep
        .api_base
        .as_deref()
        .and_then(|b| b.split_once('?'))
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("api-version=")))
        .filter(|v| !v.is_empty());
    dep.api_version
        .as_deref()
        .or(from_base)
        .unwrap_or(AZURE_DEFAULT_API_VERSION)
}

/// The chat completions URL of a deployment.
pub fn chat_url(spec: &CompatSpec, dep: &Deployment) -> String {
    let base = dep
        .api_base
        .as_deref()
        .or(spec.default_base)
        .unwrap_or_default()
        .trim_end_matches('/');
    match spec.url {
        UrlStyle::OpenAi => {
            if base.ends_with("/chat/completions") {
                base.to_owned()
            } else {
                [base, "/chat/completions"].concat()
            }
        }
        UrlStyle::AzureDeployment => {
            // An `api_base` may be the whole URL, query and all, as
            // LiteLLM's docs show it.
            let base = base.split_once('?').map_or(base, |(b, _)| b);
            let version = azure_api_version(dep);
            let base = base
                .trim_end_matches('/')
                .trim_end_matches("/chat/completions");
            if base.contains("/openai/deployments/") {
                format!("{base}/chat/completions?api-version={version}")
            } else {
                format!(
                    "{base}/openai/deployments/{}/chat/completions?api-version={version}",
                    azure_deployment(&dep.upstream_model)
                )
            }
        }
    }
}

fn headers(spec: &CompatSpec, dep: &Deployment) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(4 + dep.extra_headers.len());
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(key) = dep.api_key.as_ref().filter(|k| !k.is_empty()) {
        let (name, value) = match spec.auth {
            Auth::Bearer => (AUTHORIZATION, ["Bearer ", key.expose()].concat()),
            Auth::Header(name) => (HeaderName::from_static(name), key.expose().to_owned()),
        };
        // Keys are checked to be valid header values when the config loads.
        if let Ok(mut v) = HeaderValue::try_from(value) {
            v.set_sensitive(true);
            h.insert(name, v);
        }
    }
    if let Some(org) = dep
        .organization
        .as_deref()
        .and_then(|o| HeaderValue::from_str(o).ok())
    {
        h.insert(HeaderName::from_static("openai-organization"), org);
    }
    for (name, value) in spec.default_headers {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    crate::providers::apply_extra_headers(&mut h, dep);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ProviderKind;
    use crate::providers::openai_compat::{AZURE, OPENROUTER, spec};
    use crate::types::{RawChatRequest, Secret};

    fn dep(provider: ProviderKind, upstream: &str) -> Deployment {
        Deployment {
            id: "d1".into(),
            api_key: Some(Secret::new("sk-up")),
            ..Deployment::new("public", provider, upstream)
        }
    }

    fn build(d: &Deployment, body: &str) -> UpstreamRequest {
        let req = RawChatRequest::parse(body.as_bytes()).unwrap();
        build_chat_request(
            spec(d.provider).unwrap(),
            d,
            &ChatCall {
                request: &req,
                typed: None,
                drop_params: false,
            },
        )
    }

    #[test]
    fn openai_gets_bearer_auth_and_the_upstream_model() {
        let d = dep(ProviderKind::OpenAi, "gpt-4o");
        let r = build(
            &d,
            r#"{"model":"public","messages":[{"role":"user","content":"hi"}],"drop_params":true}"#,
        );
        assert_eq!(r.url, "https://api.openai.com/v1/chat/completions");
        assert_eq!(r.headers["authorization"], "Bearer sk-up");
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#
        );
    }

    #[test]
    fn every_provider_honours_api_base() {
        for p in [
            ProviderKind::OpenAi,
            ProviderKind::Groq,
            ProviderKind::DeepSeek,
            ProviderKind::OpenRouter,
        ] {
            let mut d = dep(p, "m");
            d.api_base = Some("http://127.0.0.1:9000/v1/".into());
            assert_eq!(
                chat_url(spec(p).unwrap(), &d),
                "http://127.0.0.1:9000/v1/chat/completions"
            );
        }
    }

    #[test]
    fn azure_uses_the_deployment_url_version_and_api_key_header() {
        let mut d = dep(ProviderKind::Azure, "my-gpt4");
        d.api_base = Some("https://acme.openai.azure.com/".into());
        d.api_version = Some("2024-06-01".into());
        let r = build(&d, r#"{"model":"public","messages":[]}"#);
        assert_eq!(
            r.url,
            "https://acme.openai.azure.com/openai/deployments/my-gpt4/chat/completions?api-version=2024-06-01"
        );
        assert_eq!(r.headers["api-key"], "sk-up");
        assert!(r.headers.get("authorization").is_none());
        d.api_version = None;
        assert!(chat_url(&AZURE, &d).ends_with("?api-version=2025-02-01-preview"));
        // A series marker is no part of the deployment's name.
        let mut o = dep(ProviderKind::Azure, "o_series/my-o3");
        o.api_base = Some("https://acme.openai.azure.com".into());
        assert_eq!(
            chat_url(&AZURE, &o),
            "https://acme.openai.azure.com/openai/deployments/my-o3/chat/completions?api-version=2025-02-01-preview"
        );
        // The whole URL as api_base, its version kept.
        o.api_base = Some(
            "https://acme.openai.azure.com/openai/deployments/o1/chat/completions?api-version=2025-01-01-preview"
                .into(),
        );
        assert_eq!(
            chat_url(&AZURE, &o),
            "https://acme.openai.azure.com/openai/deployments/o1/chat/completions?api-version=2025-01-01-preview"
        );
        o.api_version = Some("2025-04-01-preview".into());
        assert!(chat_url(&AZURE, &o).ends_with("?api-version=2025-04-01-preview"));
    }

    #[test]
    fn reasoning_models_get_max_completion_tokens_and_drop_what_they_refuse() {
        let body = r#"{"model":"public","messages":[],"max_tokens":4096,"temperature":0,"top_p":0.9,"stream":false}"#;
        let sent = |d: &Deployment, drop_params: bool| -> Value {
            let req = RawChatRequest::parse(body.as_bytes()).unwrap();
            let r = build_chat_request(
                spec(d.provider).unwrap(),
                d,
                &ChatCall {
                    request: &req,
                    typed: None,
                    drop_params,
                },
            );
            serde_json::from_slice(&r.body).unwrap()
        };
        for (provider, id) in [
            (ProviderKind::OpenAi, "o3-mini"),
            (ProviderKind::OpenAi, "gpt-5"),
            (ProviderKind::Azure, "o_series/my-o3"),
        ] {
            let d = dep(provider, id);
            let b = sent(&d, false);
            assert_eq!(b["max_completion_tokens"], 4096, "{id}: {b}");
            assert!(b.get("max_tokens").is_none(), "{id}: {b}");
            assert_eq!(b["temperature"], 0, "without drop_params OpenAI names it");
            let b = sent(&d, true);
            assert!(
                b.get("temperature").is_none() && b.get("top_p").is_none(),
                "{id}: {b}"
            );
            assert_eq!(b["max_completion_tokens"], 4096);
        }
        // Other models keep what they were sent.
        for (provider, id) in [
            (ProviderKind::OpenAi, "gpt-4o"),
            (ProviderKind::OpenAi, "gpt-5-chat-latest"),
            (ProviderKind::Groq, "o3-lookalike"),
        ] {
            let b = sent(&dep(provider, id), true);
            assert_eq!(b["max_tokens"], 4096, "{id}: {b}");
            assert_eq!(b["temperature"], 0, "{id}: {b}");
        }
        // An Azure deployment named freely is a reasoning model when its
        // base model is.
        let mut d = dep(ProviderKind::Azure, "prod-reasoner");
        d.info.0.insert("key".into(), "o4-mini".into());
        assert_eq!(sent(&d, false)["max_completion_tokens"], 4096);
    }

    #[test]
    fn old_azure_versions_are_not_sent_stream_options() {
        let body = r#"{"model":"public","messages":[],"stream":true}"#;
        let req = RawChatRequest::parse(body.as_bytes()).unwrap();
        let mut d = dep(ProviderKind::Azure, "gpt4o");
        d.api_base = Some("https://acme.openai.azure.com".into());
        for (version, sent) in [
            ("2024-06-01", false),
            ("2024-10-21", true),
            ("2025-02-01-preview", true),
        ] {
            d.api_version = Some(version.into());
            let r = build_chat_request(
                &AZURE,
                &d,
                &ChatCall {
                    request: &req,
                    typed: None,
                    drop_params: false,
                },
            );
            let b: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(b.get("stream_options").is_some(), sent, "{version}: {b}");
        }
    }

    #[test]
    fn openrouter_sends_attribution_headers_that_config_can_override() {
        let mut d = dep(ProviderKind::OpenRouter, "anthropic/claude-sonnet-4");
        let r = build(&d, r#"{"model":"public","messages":[]}"#);
        assert_eq!(r.headers["x-title"], "llmux");
        assert!(r.headers.contains_key("http-referer"));
        d.extra_headers = vec![("X-Title".into(), Secret::new("my-app"))];
        let r = build(&d, r#"{"model":"public","messages":[]}"#);
        assert_eq!(r.headers["x-title"], "my-app");
        assert_eq!(
            chat_url(&OPENROUTER, &d),
            "https://openrouter.ai/api/v1/chat/completions"
        );
    }

    #[test]
    fn streams_always_ask_for_usage_keeping_other_stream_options() {
        let d = dep(ProviderKind::OpenAi, "gpt-4o");
        let r = build(
            &d,
            r#"{"model":"p","messages":[],"stream":true,"stream_options":{"include_obfuscation":false}}"#,
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["include_obfuscation"], false);
        // A client that asked already: the body is left as it was.
        let body =
            r#"{"model":"p","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#;
        let r = build(&d, body);
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            body.replace("\"p\"", "\"gpt-4o\"")
        );
    }

    #[test]
    fn organization_header_and_extra_body_defaults() {
        let mut d = dep(
            ProviderKind::OpenRouter,
            "meta-llama/llama-3.3-70b-instruct",
        );
        d.organization = Some("org-1".into());
        let mut extra = Map::new();
        extra.insert("provider".into(), serde_json::json!({"order": ["Groq"]}));
        d.extra_body = Some(extra);
        let r = build(&d, r#"{"model":"p","messages":[]}"#);
        assert_eq!(r.headers["openai-organization"], "org-1");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["provider"]["order"][0], "Groq");
    }
}
