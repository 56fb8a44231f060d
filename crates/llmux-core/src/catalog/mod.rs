//! The built-in model catalog: context windows, prices, capability flags and
//! the upstream id each short name resolves to. The data lives in
//! `catalog/models.yaml` (public facts from the providers' pages) and is
//! compiled into the binary.

use crate::providers::ProviderKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

const BUILTIN: &str = include_str!("../../catalog/models.yaml");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the model catalog is not valid YAML: {0}")]
    Parse(#[from] serde_yaml_ng::Error),
    #[error("catalog entry `{name}`: unknown provider `{provider}`")]
    UnknownProvider { name: String, provider: String },
    #[error("catalog entry `{0}` appears twice")]
    Duplicate(String),
}

/// One catalog entry, as written in `models.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    pub provider: String,
    pub upstream: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub max_input_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    #[serde(default)]
    pub cache_creation_input_token_cost: Option<f64>,
    #[serde(default)]
    pub cache_read_input_token_cost: Option<f64>,
    /// USD a web search the provider runs for the model (its own search
    /// tool); set, the model supports web search.
    #[serde(default)]
    pub web_search_cost_per_query: Option<f64>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub supports_vision: bool,
    #[serde(default)]
    pub supports_function_calling: bool,
    #[serde(default)]
    pub supports_tool_choice: bool,
    #[serde(default)]
    pub supports_parallel_function_calling: bool,
    #[serde(default)]
    pub supports_prompt_caching: bool,
    #[serde(default)]
    pub supports_reasoning: bool,
    #[serde(default)]
    pub supports_computer_use: bool,
    #[serde(default)]
    pub supports_response_schema: bool,
    #[serde(default)]
    pub supports_pdf_input: bool,
    /// The provider's own search tool works with the model (set too by a
    /// `web_search_cost_per_query`).
    #[serde(default)]
    pub supports_web_search: bool,
    /// Body fields added when the client did not set them (OpenRouter routing).
    #[serde(default)]
    pub extra_body: Option<Map<String, Value>>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
struct Indexed {
    entry: ModelEntry,
    provider: ProviderKind,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Vec<Indexed>,
    by_name: HashMap<String, usize>,
    by_id: HashMap<(ProviderKind, String), usize>,
}

impl Catalog {
    /// The catalog compiled into the binary.
    pub fn builtin() -> Result<Catalog, CatalogError> {
        Catalog::from_yaml(BUILTIN)
    }

    pub fn from_yaml(text: &str) -> Result<Catalog, CatalogError> {
        #[derive(Deserialize)]
        struct File {
            models: Vec<ModelEntry>,
        }
        let file: File = serde_yaml_ng::from_str(text)?;
        let mut catalog = Catalog {
            entries: Vec::with_capacity(file.models.len()),
            by_name: HashMap::new(),
            by_id: HashMap::new(),
        };
        for entry in file.models {
            let provider = ProviderKind::from_prefix(&entry.provider).ok_or_else(|| {
                CatalogError::UnknownProvider {
                    name: entry.name.clone(),
                    provider: entry.provider.clone(),
                }
            })?;
            let i = catalog.entries.len();
            if catalog.by_name.insert(entry.name.clone(), i).is_some() {
                return Err(CatalogError::Duplicate(entry.name));
            }
            let short = entry
                .name
                .strip_prefix(&format!("{}/", entry.provider))
                .unwrap_or(&entry.name)
                .to_owned();
            let ids = [entry.upstream.clone(), short, entry.name.clone()]
                .into_iter()
                .chain(entry.aliases.iter().cloned());
            for id in ids {
                // The first entry to claim an id keeps it.
                catalog.by_id.entry((provider, id)).or_insert(i);
            }
            catalog.entries.push(Indexed { entry, provider });
        }
        Ok(catalog)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// An entry by the name llmux serves it under (`gpt-4o`, `azure/gpt-4`).
    pub fn by_name(&self, name: &str) -> Option<(ProviderKind, &ModelEntry)> {
        self.by_name
            .get(name)
            .map(|&i| (self.entries[i].provider, &self.entries[i].entry))
    }

    /// An entry for a provider's model id: upstream id, alias or short name.
    pub fn lookup(&self, provider: ProviderKind, id: &str) -> Option<&ModelEntry> {
        let find = |p: ProviderKind, id: &str| {
            self.by_id
                .get(&(p, id.to_owned()))
                .map(|&i| &self.entries[i].entry)
        };
        find(provider, id).or_else(|| match provider {
            // Vertex AI serves the same Gemini models.
            ProviderKind::VertexAi => find(ProviderKind::Gemini, id),
            // Cross-region inference profiles: `us.anthropic.claude-…`.
            ProviderKind::Bedrock => ["us.", "eu.", "apac.", "global.", "us-gov."]
                .iter()
                .find_map(|p| id.strip_prefix(p))
                .and_then(|rest| find(provider, rest)),
            _ => None,
        })
    }

    /// The entries of one provider, in file order.
    pub fn for_provider(&self, provider: ProviderKind) -> impl Iterator<Item = &ModelEntry> {
        self.entries
            .iter()
            .filter(move |e| e.provider == provider)
            .map(|e| &e.entry)
    }

    pub fn iter(&self) -> impl Iterator<Item = (ProviderKind, &ModelEntry)> {
        self.entries.iter().map(|e| (e.provider, &e.entry))
    }
}

/// A deployment's model info as `/model/info` shows it (LiteLLM's keys):
/// the catalog entry, then the config's `model_info` overrides on top.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelInfo(pub Map<String, Value>);

const FLAGS: [&str; 10] = [
    "supports_vision",
    "supports_function_calling",
    "supports_tool_choice",
    "supports_parallel_function_calling",
    "supports_prompt_caching",
    "supports_reasoning",
    "supports_computer_use",
    "supports_response_schema",
    "supports_pdf_input",
    "supports_web_search",
];

impl ModelInfo {
    pub fn from_entry(provider: ProviderKind, e: &ModelEntry) -> ModelInfo {
        let mut m = Map::new();
        let num = |v: Option<f64>| v.map_or(Value::Null, Value::from);
        let int = |v: Option<u64>| v.map_or(Value::Null, Value::from);
        m.insert("key".into(), e.upstream.clone().into());
        m.insert("max_tokens".into(), int(e.max_output_tokens));
        m.insert("max_input_tokens".into(), int(e.max_input_tokens));
        m.insert("max_output_tokens".into(), int(e.max_output_tokens));
        m.insert("input_cost_per_token".into(), num(e.input_cost_per_token));
        m.insert("output_cost_per_token".into(), num(e.output_cost_per_token));
        m.insert(
            "cache_creation_input_token_cost".into(),
            num(e.cache_creation_input_token_cost),
        );
        m.insert(
            "cache_read_input_token_cost".into(),
            num(e.cache_read_input_token_cost),
        );
        // LiteLLM's shape: a price by search context size. Claude's and
        // Gemini's searches have one price whatever the size.
        m.insert(
            "search_context_cost_per_query".into(),
            e.web_search_cost_per_query.map_or(Value::Null, |p| {
                serde_json::json!({
                    "search_context_size_low": p,
                    "search_context_size_medium": p,
                    "search_context_size_high": p,
                })
            }),
        );
        m.insert("litellm_provider".into(), provider.as_str().into());
        m.insert(
            "mode".into(),
            e.mode.clone().unwrap_or_else(|| "chat".into()).into(),
        );
        let flags = [
            e.supports_vision,
            e.supports_function_calling,
            e.supports_tool_choice,
            e.supports_parallel_function_calling,
            e.supports_prompt_caching,
            e.supports_reasoning,
            e.supports_computer_use,
            e.supports_response_schema,
            e.supports_pdf_input,
            e.supports_web_search || e.web_search_cost_per_query.is_some(),
        ];
        for (name, on) in FLAGS.iter().zip(flags) {
            m.insert((*name).into(), on.into());
        }
        m.insert("supports_system_messages".into(), true.into());
        ModelInfo(m)
    }

    /// A model the catalog does not know: limits and prices unknown.
    pub fn unknown(provider: ProviderKind, key: &str) -> ModelInfo {
        let mut m = Map::new();
        m.insert("key".into(), key.into());
        for k in [
            "max_tokens",
            "max_input_tokens",
            "max_output_tokens",
            "input_cost_per_token",
            "output_cost_per_token",
            "cache_creation_input_token_cost",
            "cache_read_input_token_cost",
            "search_context_cost_per_query",
        ] {
            m.insert(k.into(), Value::Null);
        }
        m.insert("litellm_provider".into(), provider.as_str().into());
        m.insert("mode".into(), "chat".into());
        for name in FLAGS {
            m.insert(name.into(), false.into());
        }
        m.insert("supports_system_messages".into(), true.into());
        ModelInfo(m)
    }

    /// Config `model_info` wins over the catalog, key by key.
    pub fn apply_overrides(&mut self, overrides: &Map<String, Value>) {
        for (k, v) in overrides {
            self.0.insert(k.clone(), v.clone());
        }
        // LiteLLM treats `max_tokens` as the output limit; keep both in step
        // when only one is overridden.
        if overrides.contains_key("max_output_tokens") && !overrides.contains_key("max_tokens") {
            if let Some(v) = overrides.get("max_output_tokens") {
                self.0.insert("max_tokens".into(), v.clone());
            }
        }
    }

    pub fn f64(&self, key: &str) -> Option<f64> {
        self.0.get(key).and_then(Value::as_f64)
    }

    pub fn u64(&self, key: &str) -> Option<u64> {
        self.0.get(key).and_then(Value::as_u64)
    }

    pub fn flag(&self, key: &str) -> bool {
        self.0.get(key).and_then(Value::as_bool).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every model name the product promises to serve.
    const REQUIRED: &[&str] = &[
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-3.5-turbo",
        "gpt-4",
        "gpt-4-32k",
        "gpt-3.5-turbo-16k",
        "claude-opus-4",
        "claude-sonnet-4",
        "claude-3-5-sonnet",
        "claude-3-haiku",
        "claude-3-opus",
        "claude-3-sonnet",
        "gemini-pro",
        "gemini-pro-vision",
        "gemini-1.5-pro",
        "gemini-1.5-flash",
        "amazon.nova-pro",
        "amazon.nova-lite",
        "anthropic.claude-opus-4",
        "anthropic.claude-sonnet-4",
        "anthropic.claude-3-5-sonnet",
        "anthropic.claude-3-haiku",
        "anthropic.claude-3-opus",
        "anthropic.claude-3-sonnet",
        "azure/gpt-4",
        "azure/gpt-4-32k",
        "azure/gpt-3.5-turbo",
        "azure/gpt-3.5-turbo-16k",
        "llama3-70b",
        "llama3-8b",
        "mixtral-8x7b",
        "gemma-7b",
        "deepseek-chat",
        "deepseek-coder",
        "openrouter/qwen",
        "openrouter/deepseek",
        "openrouter/anthropic",
        "openrouter/openai",
        "openrouter/google",
        "openrouter/mistral",
        "openrouter/meta",
        "openrouter/nous",
        "openrouter/codestral",
        "openrouter/perplexity",
        "openrouter/groq",
        "openrouter/qwen-4",
        "openrouter/deepseek-4",
        "openrouter/anthropic-4",
        "openrouter/openai-4",
        "openrouter/google-4",
        "openrouter/mistral-4",
        "openrouter/meta-4",
        "openrouter/nous-4",
        "openrouter/codestral-4",
        "openrouter/perplexity-4",
        "openrouter/groq-4",
    ];

    #[test]
    fn builtin_catalog_loads_and_serves_every_promised_name() {
        let c = Catalog::builtin().unwrap();
        for name in REQUIRED {
            let (_, e) = c
                .by_name(name)
                .unwrap_or_else(|| panic!("{name} missing from catalog"));
            assert!(!e.upstream.is_empty(), "{name} has no upstream id");
            assert!(
                e.max_input_tokens.unwrap_or(0) > 0,
                "{name} has no context window"
            );
            assert!(
                e.max_output_tokens.unwrap_or(0) > 0,
                "{name} has no max output"
            );
            assert!(
                e.input_cost_per_token.is_some() && e.output_cost_per_token.is_some(),
                "{name} has no prices"
            );
        }
    }

    #[test]
    fn short_names_resolve_to_upstream_ids() {
        let c = Catalog::builtin().unwrap();
        let up = |n: &str| c.by_name(n).unwrap().1.upstream.clone();
        assert!(up("claude-sonnet-4").starts_with("claude-sonnet-4-2025"));
        assert_eq!(up("amazon.nova-pro"), "amazon.nova-pro-v1:0");
        assert_eq!(up("llama3-70b"), "llama3-70b-8192");
        assert_eq!(c.by_name("azure/gpt-4").unwrap().0, ProviderKind::Azure);
        assert_eq!(
            c.by_name("openrouter/anthropic").unwrap().0,
            ProviderKind::OpenRouter
        );
        // OpenRouter families resolve to full vendor/model ids.
        for (_, e) in c.iter().filter(|(p, _)| *p == ProviderKind::OpenRouter) {
            assert!(e.upstream.contains('/'), "{} -> {}", e.name, e.upstream);
            assert!(e.note.is_some(), "{} needs a note saying why", e.name);
        }
    }

    #[test]
    fn lookup_by_upstream_id_alias_and_prefixed_bedrock_profile() {
        let c = Catalog::builtin().unwrap();
        let sonnet = c.by_name("claude-sonnet-4").unwrap().1;
        assert_eq!(
            c.lookup(ProviderKind::Anthropic, &sonnet.upstream)
                .unwrap()
                .name,
            "claude-sonnet-4"
        );
        assert_eq!(
            c.lookup(ProviderKind::Groq, "llama3-70b").unwrap().name,
            "llama3-70b"
        );
        assert_eq!(
            c.lookup(ProviderKind::Azure, "gpt-4").unwrap().name,
            "azure/gpt-4"
        );
        let nova = c
            .lookup(ProviderKind::Bedrock, "us.amazon.nova-pro-v1:0")
            .unwrap();
        assert_eq!(nova.name, "amazon.nova-pro");
        assert!(c.lookup(ProviderKind::VertexAi, "gemini-1.5-pro").is_some());
        assert!(c.lookup(ProviderKind::OpenAi, "no-such-model").is_none());
    }

    #[test]
    fn overrides_win_and_keep_max_tokens_in_step() {
        let c = Catalog::builtin().unwrap();
        let (p, e) = c.by_name("gpt-4o").unwrap();
        let mut info = ModelInfo::from_entry(p, e);
        assert_eq!(info.0["litellm_provider"], "openai");
        assert!(info.flag("supports_vision"));
        let overrides: Map<String, Value> =
            serde_json::from_str(r#"{"max_output_tokens": 1000, "input_cost_per_token": 0.0}"#)
                .unwrap();
        info.apply_overrides(&overrides);
        assert_eq!(info.u64("max_tokens"), Some(1000));
        assert_eq!(info.f64("input_cost_per_token"), Some(0.0));
    }

    #[test]
    fn rejects_bad_catalog_data() {
        assert!(matches!(
            Catalog::from_yaml("models:\n - {name: a, provider: nope, upstream: a}"),
            Err(CatalogError::UnknownProvider { .. })
        ));
        let twice = "models:\n - {name: a, provider: openai, upstream: a}\n - {name: a, provider: openai, upstream: b}";
        assert!(matches!(
            Catalog::from_yaml(twice),
            Err(CatalogError::Duplicate(_))
        ));
    }
}
