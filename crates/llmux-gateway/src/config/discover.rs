//! No config file: serve the catalog's models for every provider whose
//! credentials are in the environment.

use super::deployments::{self, DeploymentParams};
use super::env::Env;
use super::{
    Config, ConfigError, DEFAULT_MAX_REQUEST_MB, DEFAULT_NUM_RETRIES, DEFAULT_TIMEOUT, Source,
};
use llmux_core::{Catalog, ProviderKind};

/// Whether the environment holds credentials for a provider.
fn has_credentials(p: ProviderKind, env: &Env) -> bool {
    match p {
        ProviderKind::Azure => {
            env.first(deployments::key_env(p)).is_some()
                && env
                    .first(&["AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"])
                    .is_some()
        }
        ProviderKind::Bedrock => {
            (env.get("AWS_ACCESS_KEY_ID").is_some() && env.get("AWS_SECRET_ACCESS_KEY").is_some())
                || env.get("AWS_BEARER_TOKEN_BEDROCK").is_some()
                || env.get("AWS_PROFILE").is_some()
        }
        // Vertex AI needs a project and location: a config file names them.
        ProviderKind::VertexAi => false,
        _ => env.first(deployments::key_env(p)).is_some(),
    }
}

pub fn from_env(env: &Env, catalog: &Catalog) -> Result<Config, ConfigError> {
    let mut deployments = Vec::new();
    let mut providers = Vec::new();
    for p in ProviderKind::ALL {
        if !has_credentials(p, env) {
            continue;
        }
        providers.push(p.as_str());
        for entry in catalog.for_provider(p) {
            let params = DeploymentParams {
                model_name: entry.name.clone(),
                model: format!("{}/{}", p.as_str(), entry.upstream),
                ..Default::default()
            };
            let i = deployments.len();
            let mut d = deployments::build(params, i, catalog, env)?;
            d.timeout = Some(DEFAULT_TIMEOUT);
            deployments.push(d);
        }
    }
    let master_key = super::master_key_from_env(env);
    let mut warnings = Vec::new();
    let database_url = super::database_url(None, env, master_key.is_some(), &mut warnings)?;
    Ok(Config {
        source: Source::Environment { providers },
        deployments,
        wildcards: Default::default(),
        aliases: Vec::new(),
        routing_strategy: Default::default(),
        cooldowns: Default::default(),
        master_key,
        database_url,
        key_sync: super::DEFAULT_KEY_SYNC,
        redis: None,
        drop_params: false,
        num_retries: DEFAULT_NUM_RETRIES,
        request_timeout: DEFAULT_TIMEOUT,
        max_request_bytes: (DEFAULT_MAX_REQUEST_MB * 1024.0 * 1024.0) as usize,
        warnings,
        env: env.clone(),
        fetch_image_urls: false,
        fetch_image_urls_allow_private: false,
        metrics: None,
        key_params: Default::default(),
        fallbacks: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_catalog_for_each_provider_found() {
        let env = Env::fixed(&[
            ("OPENAI_API_KEY", "sk-o"),
            ("GROQ_API_KEY", "gsk"),
            ("AZURE_API_KEY", "az"),
            ("LLMUX_MASTER_KEY", "sk-master"),
        ]);
        let c = from_env(&env, &Catalog::builtin().unwrap()).unwrap();
        let Source::Environment { providers } = &c.source else {
            panic!()
        };
        // Azure without AZURE_API_BASE is not usable, so it is not served.
        assert_eq!(providers, &vec!["openai", "groq"]);
        let names = c.model_names();
        assert!(names.contains(&"gpt-4o") && names.contains(&"llama3-70b"));
        assert!(!names.contains(&"azure/gpt-4"));
        let llama = c
            .deployments
            .iter()
            .find(|d| d.model_name == "llama3-70b")
            .unwrap();
        assert_eq!(llama.upstream_model, "llama3-70b-8192");
        assert_eq!(llama.api_key.as_ref().unwrap().expose(), "gsk");
        assert_eq!(c.master_key.unwrap().expose(), "sk-master");
    }

    #[test]
    fn azure_and_every_other_provider_from_env() {
        let env = Env::fixed(&[
            ("AZURE_API_KEY", "az"),
            ("AZURE_API_BASE", "https://acme.openai.azure.com"),
            ("ANTHROPIC_API_KEY", "sk-ant"),
            ("GEMINI_API_KEY", "gm"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ]);
        let c = from_env(&env, &Catalog::builtin().unwrap()).unwrap();
        let az = c
            .deployments
            .iter()
            .find(|d| d.model_name == "azure/gpt-4")
            .unwrap();
        assert_eq!(
            az.api_base.as_deref(),
            Some("https://acme.openai.azure.com")
        );
        assert!(c.model_names().contains(&"claude-sonnet-4"));
        assert!(c.model_names().contains(&"gemini-1.5-pro"));
        assert!(c.model_names().contains(&"amazon.nova-pro"));
        assert!(!c.warnings.iter().any(|w| w.contains("not supported")));
    }

    #[test]
    fn nothing_found_serves_nothing() {
        let c = from_env(&Env::fixed(&[]), &Catalog::builtin().unwrap()).unwrap();
        assert!(c.deployments.is_empty());
        assert!(c.master_key.is_none());
    }
}
