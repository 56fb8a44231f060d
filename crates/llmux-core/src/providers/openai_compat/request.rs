//! The upstream request: the client's body with `model` rewritten, plus auth.

use super::{AZURE_DEFAULT_API_VERSION, Auth, CompatSpec, UrlStyle};
use crate::deployment::Deployment;
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
    // Ask for usage on every stream (for accounting); the stream translator
    // hides the usage chunk from clients that did not ask for it.
    let stream_options;
    let set: &[(&str, &str)] = if req.is_stream() && spec.stream_usage && !req.include_usage() {
        let mut opts: Map<String, Value> = req
            .get_as::<Map<String, Value>>("stream_options")
            .ok()
            .flatten()
            .unwrap_or_default();
        opts.insert("include_usage".into(), Value::Bool(true));
        stream_options = Value::Object(opts).to_string();
        &[("stream_options", stream_options.as_str())]
    } else {
        &[]
    };
    let body = req.write(&Rewrite {
        model: &dep.upstream_model,
        remove: GATEWAY_FIELDS,
        set,
        defaults: dep.extra_body.as_ref(),
    });
    UpstreamRequest {
        url: chat_url(spec, dep),
        headers: headers(spec, dep),
        body: Bytes::from(body),
    }
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
            let version = dep
                .api_version
                .as_deref()
                .unwrap_or(AZURE_DEFAULT_API_VERSION);
            let base = base.trim_end_matches("/chat/completions");
            if base.contains("/openai/deployments/") {
                format!("{base}/chat/completions?api-version={version}")
            } else {
                format!(
                    "{base}/openai/deployments/{}/chat/completions?api-version={version}",
                    dep.upstream_model
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
    use crate::catalog::ModelInfo;
    use crate::providers::ProviderKind;
    use crate::providers::openai_compat::{AZURE, OPENROUTER, spec};
    use crate::types::{RawChatRequest, Secret};

    fn dep(provider: ProviderKind, upstream: &str) -> Deployment {
        Deployment {
            id: "d1".into(),
            model_name: "public".into(),
            provider,
            model: format!("{provider}/{upstream}"),
            upstream_model: upstream.into(),
            api_base: None,
            api_key: Some(Secret::new("sk-up")),
            api_version: None,
            organization: None,
            extra_headers: vec![],
            extra_body: None,
            timeout: None,
            rpm: None,
            tpm: None,
            info: ModelInfo::default(),
            vertex: None,
            aws: None,
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
        assert!(chat_url(&AZURE, &d).ends_with("?api-version=2024-10-21"));
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
