//! One `model_list` entry (or one discovered model) → a resolved `Deployment`.

use super::ConfigError;
use super::env::Env;
use llmux_core::deployment::{AwsParams, VertexParams};
use llmux_core::providers::openai_compat;
use llmux_core::{Catalog, Deployment, ModelInfo, ProviderKind, Secret};
use serde_json::{Map, Value};
use std::time::Duration;

/// A deployment as written: LiteLLM's `litellm_params`, already resolved
/// (`os.environ/` values replaced).
#[derive(Debug, Default, Clone)]
pub struct DeploymentParams {
    pub model_name: String,
    pub model: String,
    pub api_key: Option<String>,
    pub api_base: Option<String>,
    pub api_version: Option<String>,
    pub organization: Option<String>,
    pub extra_headers: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub stream_timeout: Option<Duration>,
    pub weight: Option<f64>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub model_info: Map<String, Value>,
    pub vertex_project: Option<String>,
    pub vertex_location: Option<String>,
    /// A service-account key as JSON text, or the path of one.
    pub vertex_credentials: Option<String>,
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    pub aws_session_token: Option<String>,
    pub aws_region_name: Option<String>,
    pub aws_profile_name: Option<String>,
}

/// Environment variables holding each provider's key.
pub fn key_env(provider: ProviderKind) -> &'static [&'static str] {
    match openai_compat::spec(provider) {
        Some(spec) => spec.key_env,
        None => match provider {
            ProviderKind::Anthropic => &["ANTHROPIC_API_KEY"],
            ProviderKind::Gemini => &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
            _ => &[],
        },
    }
}

pub fn build(
    p: DeploymentParams,
    index: usize,
    catalog: &Catalog,
    env: &Env,
) -> Result<Deployment, ConfigError> {
    let where_ = || format!("model_list[{index}] (model_name `{}`)", p.model_name);
    let (provider, id) = resolve_provider(&p.model, catalog).ok_or_else(|| {
        ConfigError::Invalid(format!(
            "{}: cannot tell which provider serves `{}`; write it with a provider prefix \
             such as `openai/{}` (openai, azure, groq, deepseek, openrouter, anthropic, gemini, \
             vertex_ai, bedrock)",
            where_(),
            p.model,
            p.model
        ))
    })?;

    // Prices and limits: `model_info.base_model` names the catalog entry
    // when the deployment's own id does not (Azure deployments).
    let base_model = p.model_info.get("base_model").and_then(Value::as_str);
    let entry = base_model
        .and_then(|b| {
            ProviderKind::split_model(b)
                .and_then(|(bp, bid)| catalog.lookup(bp, bid))
                .or_else(|| catalog.by_name(b).map(|(_, e)| e))
        })
        .or_else(|| catalog.lookup(provider, id));

    // A short name or alias resolves to the catalog's upstream id; any
    // other id (a full id, a Bedrock inference profile `us.…`, an ARN) is
    // sent as written. Azure's id is a deployment name: never renamed.
    let upstream_model = match (provider, entry) {
        (ProviderKind::Azure, _) | (_, None) => id.to_owned(),
        (_, Some(e)) => {
            let short = e
                .name
                .strip_prefix(&format!("{}/", provider.as_str()))
                .unwrap_or(&e.name);
            // On Bedrock aliases are invocable ids themselves (dated ids,
            // inference profiles): only the short name resolves there.
            let alias = provider != ProviderKind::Bedrock && e.aliases.iter().any(|a| a == id);
            if id == short || id == e.name || alias {
                e.upstream.clone()
            } else {
                id.to_owned()
            }
        }
    };

    let spec = openai_compat::spec(provider);
    let api_key = p
        .api_key
        .clone()
        .or_else(|| env.first(key_env(provider)))
        .map(Secret::new);
    if let Some(k) = &api_key {
        if http::HeaderValue::from_str(k.expose()).is_err() {
            return Err(ConfigError::Invalid(format!(
                "{}: api_key contains characters that cannot be sent in an HTTP header",
                where_()
            )));
        }
    }
    let api_base = p
        .api_base
        .clone()
        .or_else(|| spec.and_then(|s| env.first(s.base_env)));
    if let Some(base) = &api_base {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "{}: api_base `{base}` must start with http:// or https://",
                where_()
            )));
        }
    }
    if provider == ProviderKind::Azure && api_base.is_none() {
        return Err(ConfigError::Invalid(format!(
            "{}: an azure deployment needs `api_base` (or AZURE_API_BASE), \
             e.g. https://<resource>.openai.azure.com",
            where_()
        )));
    }
    let api_version = p.api_version.clone().or_else(|| match provider {
        ProviderKind::Azure => env.get("AZURE_API_VERSION"),
        _ => None,
    });

    let mut extra_headers: Vec<(String, Secret)> = Vec::new();
    for (name, value) in &p.extra_headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            return Err(ConfigError::Invalid(format!(
                "{}: extra_headers `{name}` is not a valid HTTP header",
                where_()
            )));
        }
        extra_headers.push((name.clone(), Secret::new(value.clone())));
    }
    if provider == ProviderKind::OpenRouter {
        // OpenRouter's attribution, as LiteLLM reads it.
        for (var, header) in [("OR_SITE_URL", "http-referer"), ("OR_APP_NAME", "x-title")] {
            let set = extra_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(header));
            if let (false, Some(v)) = (set, env.get(var)) {
                if http::HeaderValue::from_str(&v).is_ok() {
                    extra_headers.push((header.to_owned(), Secret::new(v)));
                }
            }
        }
    }

    let mut info = match entry {
        Some(e) => ModelInfo::from_entry(provider, e),
        None => ModelInfo::unknown(provider, id),
    };
    info.apply_overrides(&p.model_info);
    let deployment_id = p
        .model_info
        .get("id")
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| stable_id(&p, index));
    info.0.insert("id".into(), deployment_id.clone().into());

    let vertex = match provider {
        ProviderKind::VertexAi => Some(vertex_params(&p, env, &where_)?),
        _ => None,
    };
    let aws = match provider {
        ProviderKind::Bedrock => Some(AwsParams {
            region: p
                .aws_region_name
                .clone()
                .or_else(|| env.first(&["AWS_REGION", "AWS_REGION_NAME", "AWS_DEFAULT_REGION"]))
                .unwrap_or_else(|| "us-east-1".to_owned()),
            access_key_id: p.aws_access_key_id.clone(),
            secret_access_key: p.aws_secret_access_key.clone().map(Secret::new),
            session_token: p.aws_session_token.clone().map(Secret::new),
            profile: p.aws_profile_name.clone(),
            // A Bedrock API key, from `api_key` or the environment.
            bearer_token: p
                .api_key
                .clone()
                .or_else(|| env.get("AWS_BEARER_TOKEN_BEDROCK"))
                .map(Secret::new),
        }),
        _ => None,
    };

    Ok(Deployment {
        id: deployment_id,
        model_name: p.model_name.clone(),
        provider,
        model: p.model.clone(),
        upstream_model,
        api_base,
        api_key,
        api_version,
        organization: p.organization.clone(),
        extra_headers,
        // An entry's routing fields belong to its served name only: a full
        // `openrouter/<vendor>/<model>` id that shares the upstream model
        // must not be pinned to one inference provider.
        extra_body: entry
            .filter(|e| e.name == id || e.name == format!("{}/{id}", provider.as_str()))
            .and_then(|e| e.extra_body.clone()),
        timeout: p.timeout,
        stream_timeout: p.stream_timeout,
        rpm: p.rpm,
        tpm: p.tpm,
        weight: p.weight,
        info,
        vertex,
        aws,
    })
}

/// Project, location and credentials of a Vertex AI deployment, from its
/// params or the environment Google's tools use.
fn vertex_params(
    p: &DeploymentParams,
    env: &Env,
    where_: &dyn Fn() -> String,
) -> Result<VertexParams, ConfigError> {
    let source = p
        .vertex_credentials
        .clone()
        .or_else(|| env.get("GOOGLE_APPLICATION_CREDENTIALS"))
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "{}: a vertex_ai deployment needs `vertex_credentials` (a service-account key file or its JSON) \
                 or GOOGLE_APPLICATION_CREDENTIALS",
                where_()
            ))
        })?;
    let json = if source.trim_start().starts_with('{') {
        source
    } else {
        std::fs::read_to_string(&source).map_err(|e| {
            ConfigError::Invalid(format!(
                "{}: cannot read the Vertex credentials file {source}: {e}",
                where_()
            ))
        })?
    };
    let key: Value = serde_json::from_str(&json).map_err(|_| {
        ConfigError::Invalid(format!(
            "{}: the Vertex credentials are not a JSON service-account key",
            where_()
        ))
    })?;
    for field in ["client_email", "private_key"] {
        if key.get(field).and_then(Value::as_str).is_none() {
            return Err(ConfigError::Invalid(format!(
                "{}: the Vertex credentials lack `{field}` (a service-account key is needed)",
                where_()
            )));
        }
    }
    let project = p
        .vertex_project
        .clone()
        .or_else(|| env.first(&["VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT"]))
        .or_else(|| {
            key.get("project_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "{}: a vertex_ai deployment needs `vertex_project`",
                where_()
            ))
        })?;
    let location = p
        .vertex_location
        .clone()
        .or_else(|| env.first(&["VERTEXAI_LOCATION", "VERTEX_LOCATION"]))
        .unwrap_or_else(|| "us-central1".to_owned());
    Ok(VertexParams {
        project,
        location,
        credentials: Some(Secret::new(json)),
    })
}

/// The provider of a `model`: its prefix, or for a bare name, the catalog
/// (`gpt-4o` → openai, `claude-3-5-sonnet-20241022` → anthropic), as LiteLLM
/// infers it.
pub(super) fn resolve_provider<'m>(
    model: &'m str,
    catalog: &Catalog,
) -> Option<(ProviderKind, &'m str)> {
    if let Some(split) = ProviderKind::split_model(model) {
        return Some(split);
    }
    if let Some((p, _)) = catalog.by_name(model) {
        return Some((p, model));
    }
    ProviderKind::ALL
        .into_iter()
        .find(|p| catalog.lookup(*p, model).is_some())
        .map(|p| (p, model))
}

/// A short id that stays the same across restarts for the same entry.
pub(super) fn stable_id(p: &DeploymentParams, index: usize) -> String {
    // FNV-1a: tiny, stable, good enough to tell deployments apart.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let parts = [
        p.model_name.as_str(),
        p.model.as_str(),
        p.api_base.as_deref().unwrap_or(""),
        &index.to_string(),
    ];
    for part in parts {
        for b in part.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::builtin().unwrap()
    }

    fn params(model_name: &str, model: &str) -> DeploymentParams {
        DeploymentParams {
            model_name: model_name.into(),
            model: model.into(),
            ..Default::default()
        }
    }

    #[test]
    fn short_provider_ids_resolve_through_the_catalog() {
        let env = Env::fixed(&[("GROQ_API_KEY", "gsk-1")]);
        let d = build(params("fast", "groq/llama3-70b"), 0, &catalog(), &env).unwrap();
        assert_eq!(d.provider, ProviderKind::Groq);
        assert_eq!(d.upstream_model, "llama3-70b-8192");
        assert_eq!(d.api_key.unwrap().expose(), "gsk-1");
        assert_eq!(d.info.0["litellm_provider"], "groq");
        assert!(d.info.u64("max_input_tokens").is_some());
    }

    #[test]
    fn full_ids_and_inference_profiles_are_sent_as_written() {
        let env = Env::fixed(&[]);
        let d = build(
            params("c", "bedrock/us.anthropic.claude-sonnet-4-20250514-v1:0"),
            0,
            &catalog(),
            &env,
        )
        .unwrap();
        assert_eq!(
            d.upstream_model,
            "us.anthropic.claude-sonnet-4-20250514-v1:0"
        );
        assert!(
            d.info.f64("input_cost_per_token").is_some(),
            "prices still come from the catalog"
        );
        let d = build(params("n", "bedrock/amazon.nova-pro"), 0, &catalog(), &env).unwrap();
        assert_eq!(d.upstream_model, "amazon.nova-pro-v1:0");
    }

    #[test]
    fn bare_names_infer_the_provider() {
        let d = build(params("x", "gpt-4o"), 0, &catalog(), &Env::fixed(&[])).unwrap();
        assert_eq!(
            (d.provider, d.upstream_model.as_str()),
            (ProviderKind::OpenAi, "gpt-4o")
        );
        let e = build(
            params("x", "mystery-model"),
            0,
            &catalog(),
            &Env::fixed(&[]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("openai/mystery-model"), "{e}");
    }

    #[test]
    fn unknown_models_behind_an_api_base_pass_through() {
        let mut p = params("local", "openai/Qwen/Qwen2.5-Coder-32B");
        p.api_base = Some("http://127.0.0.1:8001/v1".into());
        let d = build(p, 0, &catalog(), &Env::fixed(&[])).unwrap();
        assert_eq!(d.upstream_model, "Qwen/Qwen2.5-Coder-32B");
        assert!(d.info.0["max_input_tokens"].is_null());
    }

    #[test]
    fn azure_keeps_the_deployment_name_and_needs_a_base() {
        let env = Env::fixed(&[("AZURE_API_VERSION", "2024-06-01")]);
        let mut p = params("gpt-4", "azure/my-gpt4-deployment");
        p.model_info
            .insert("base_model".into(), "azure/gpt-4".into());
        assert!(build(p.clone(), 0, &catalog(), &env).is_err());
        p.api_base = Some("https://acme.openai.azure.com".into());
        let d = build(p, 0, &catalog(), &env).unwrap();
        assert_eq!(d.upstream_model, "my-gpt4-deployment");
        assert_eq!(d.api_version.as_deref(), Some("2024-06-01"));
        assert!(
            d.info.f64("input_cost_per_token").is_some(),
            "base_model gives prices"
        );
    }

    #[test]
    fn model_info_overrides_and_id() {
        let mut p = params("gpt-4o", "openai/gpt-4o");
        p.model_info.insert("id".into(), "my-id".into());
        p.model_info.insert("max_input_tokens".into(), 1000.into());
        let d = build(p, 0, &catalog(), &Env::fixed(&[])).unwrap();
        assert_eq!(d.id, "my-id");
        assert_eq!(d.info.u64("max_input_tokens"), Some(1000));
        assert_eq!(d.info.0["id"], "my-id");
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = stable_id(&params("a", "openai/x"), 0);
        assert_eq!(a, stable_id(&params("a", "openai/x"), 0));
        assert_ne!(a, stable_id(&params("a", "openai/x"), 1));
    }

    #[test]
    fn bad_keys_and_bases_are_rejected_without_echoing_the_key() {
        let mut p = params("x", "openai/gpt-4o");
        p.api_key = Some("sk-abc\ndef".into());
        let e = build(p, 0, &catalog(), &Env::fixed(&[]))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("sk-abc"), "{e}");
        let mut p = params("x", "openai/gpt-4o");
        p.api_base = Some("localhost:8000".into());
        assert!(build(p, 0, &catalog(), &Env::fixed(&[])).is_err());
    }

    #[test]
    fn routing_fields_apply_to_the_served_name_only() {
        let env = Env::fixed(&[("OPENROUTER_API_KEY", "k")]);
        let cat = catalog();
        let groq = build(params("g", "openrouter/groq"), 0, &cat, &env).unwrap();
        assert!(groq.extra_body.is_some(), "openrouter/groq routes to Groq");
        let full = format!("openrouter/{}", groq.upstream_model);
        let d = build(params("g", &full), 0, &cat, &env).unwrap();
        assert!(d.extra_body.is_none(), "a full id passes through as is");
        assert_eq!(d.upstream_model, groq.upstream_model);
    }

    #[test]
    fn openrouter_attribution_from_env() {
        let env = Env::fixed(&[("OR_APP_NAME", "my-agent"), ("OPENROUTER_API_KEY", "k")]);
        let d = build(params("x", "openrouter/anthropic"), 0, &catalog(), &env).unwrap();
        assert!(d.upstream_model.contains('/'));
        assert!(
            d.extra_headers
                .iter()
                .any(|(n, v)| n == "x-title" && v.expose() == "my-agent")
        );
    }
}
