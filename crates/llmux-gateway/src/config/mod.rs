//! Configuration: a LiteLLM `config.yaml` read as it is, or, with no file,
//! provider credentials found in the environment. Keys llmux does not
//! implement yet are reported by name (never ignored silently, never fatal).

mod deployments;
mod discover;
pub mod env;
mod file;
pub mod redis;
mod wildcard;

pub use env::Env;
pub use file::{load_file, parse};
pub use redis::{RedisClient, RedisSettings};
pub use wildcard::Wildcards;

use llmux_core::{Deployment, Secret};
use std::path::PathBuf;
use std::time::Duration;

/// Default for `litellm_settings.request_timeout` (LiteLLM's is 600 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Default for `litellm_settings.num_retries`.
pub const DEFAULT_NUM_RETRIES: u32 = 2;
/// Default for `general_settings.max_request_size_mb`.
pub const DEFAULT_MAX_REQUEST_MB: f64 = 32.0;

#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    /// No file: providers found in the environment.
    Environment {
        providers: Vec<&'static str>,
    },
}

/// The gateway's settings, resolved and validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    pub deployments: Vec<Deployment>,
    /// `model_list` entries whose `model_name` has a `*`.
    pub wildcards: Wildcards,
    /// `router_settings.model_group_alias`: other names for models.
    pub aliases: Vec<Alias>,
    /// `router_settings.routing_strategy`.
    pub routing_strategy: RoutingStrategy,
    /// `router_settings.cooldown_time`, `allowed_fails`, `disable_cooldowns`.
    pub cooldowns: Cooldowns,
    pub master_key: Option<Secret>,
    /// Where virtual keys and spend logs are kept
    /// (`general_settings.database_url`, else `DATABASE_URL`): a SQLite
    /// or PostgreSQL URL (a secret: it may hold a password). None: no
    /// virtual keys.
    pub database_url: Option<Secret>,
    /// How often the keys are read again from the database, for what
    /// other replicas changed (`general_settings.key_sync_interval`).
    pub key_sync: Duration,
    /// Where the virtual keys' rate limits are counted across replicas
    /// (LiteLLM's `cache_params` or `router_settings.redis_*`). None: per
    /// process.
    pub redis: Option<RedisSettings>,
    pub drop_params: bool,
    pub num_retries: u32,
    pub request_timeout: Duration,
    pub max_request_bytes: usize,
    /// Things the user should know: unimplemented keys, missing variables.
    pub warnings: Vec<String>,
    /// The environment the config was read with (credential sources).
    pub env: Env,
    /// Fetch http(s) image URLs for providers that need images inline.
    pub fetch_image_urls: bool,
    /// …including from private, loopback and link-local addresses.
    pub fetch_image_urls_allow_private: bool,
    /// LiteLLM's fallbacks: the model names to try, in order, when a model
    /// fails after its retries.
    pub fallbacks: Fallbacks,
    /// Prometheus metrics at `/metrics` (LiteLLM's `callbacks:
    /// ["prometheus"]`), and whether reading them takes the master key
    /// (`require_auth_for_metrics_endpoint`).
    pub metrics: Option<MetricsSettings>,
    /// LiteLLM's `default_key_generate_params` and
    /// `upperbound_key_generate_params`, for the key routes.
    pub key_params: crate::keys::KeyParams,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSettings {
    pub require_auth: bool,
}

/// How a model's deployments share its requests (LiteLLM's
/// `routing_strategy`). Each picks among the deployments that may serve
/// now (not cooling down, under their rpm/tpm, not yet tried for this
/// request); ties go in turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RoutingStrategy {
    /// In turn, or drawn by `weight` / `rpm` / `tpm` when every deployment
    /// has one (`simple-shuffle`, the default).
    #[default]
    SimpleShuffle,
    /// The fewest requests in flight, a stream counting until its end
    /// (`least-busy`).
    LeastBusy,
    /// The fewest tokens this minute (`usage-based-routing`,
    /// `usage-based-routing-v2`).
    UsageBased,
    /// The shortest recent response time: the whole answer, or a stream's
    /// first byte; one never measured first (`latency-based-routing`).
    LatencyBased,
    /// The lowest catalog price a token (`cost-based-routing`; a price
    /// unknown counts as $1, as in LiteLLM).
    CostBased,
}

impl RoutingStrategy {
    pub const NAMES: &[&str] = &[
        "simple-shuffle",
        "least-busy",
        "usage-based-routing",
        "usage-based-routing-v2",
        "latency-based-routing",
        "cost-based-routing",
    ];

    /// The name LiteLLM's config gives it.
    pub fn name(self) -> &'static str {
        match self {
            RoutingStrategy::SimpleShuffle => "simple-shuffle",
            RoutingStrategy::LeastBusy => "least-busy",
            RoutingStrategy::UsageBased => "usage-based-routing-v2",
            RoutingStrategy::LatencyBased => "latency-based-routing",
            RoutingStrategy::CostBased => "cost-based-routing",
        }
    }

    pub fn parse(name: &str) -> Option<RoutingStrategy> {
        Some(match name {
            "simple-shuffle" => RoutingStrategy::SimpleShuffle,
            "least-busy" => RoutingStrategy::LeastBusy,
            "usage-based-routing" | "usage-based-routing-v2" => RoutingStrategy::UsageBased,
            "latency-based-routing" => RoutingStrategy::LatencyBased,
            "cost-based-routing" => RoutingStrategy::CostBased,
            _ => return None,
        })
    }
}

/// When a failing deployment rests while the others of its model serve
/// (LiteLLM's `cooldown_time`, `allowed_fails`, `disable_cooldowns`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cooldowns {
    /// How long it rests (5 s).
    pub time: std::time::Duration,
    /// Failures a minute it may have before it rests; none set: it rests
    /// at its first.
    pub allowed_fails: Option<u64>,
    /// Never rest.
    pub disabled: bool,
}

impl Default for Cooldowns {
    fn default() -> Cooldowns {
        Cooldowns {
            time: std::time::Duration::from_secs(5),
            allowed_fails: None,
            disabled: false,
        }
    }
}

/// Another name for a model (LiteLLM's `model_group_alias`): a request
/// for `name` is served as one for `target`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    pub name: String,
    pub target: String,
    /// Served, but not listed at `/v1/models` and `/model/info`.
    pub hidden: bool,
}

/// Model name → the model names that stand in for it, in order.
pub type FallbackMap = std::collections::HashMap<String, Vec<String>>;

/// LiteLLM's three fallback lists.
#[derive(Debug, Clone, Default)]
pub struct Fallbacks {
    /// Any failure that retries did not mend (`fallbacks`).
    pub any: FallbackMap,
    /// A prompt too long for the model (`context_window_fallbacks`).
    pub context_window: FallbackMap,
    /// A refusal by the provider's content policy (`content_policy_fallbacks`).
    pub content_policy: FallbackMap,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Catalog(#[from] llmux_core::catalog::CatalogError),
}

impl Config {
    /// Settings from the environment alone.
    pub fn from_env(env: &Env, catalog: &llmux_core::Catalog) -> Result<Config, ConfigError> {
        discover::from_env(env, catalog)
    }

    pub fn model_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for d in &self.deployments {
            if !names.contains(&d.model_name.as_str()) {
                names.push(&d.model_name);
            }
        }
        names
    }
}

/// `LLMUX_MASTER_KEY`, or LiteLLM's `LITELLM_MASTER_KEY`.
fn master_key_from_env(env: &Env) -> Option<Secret> {
    env.first(&["LLMUX_MASTER_KEY", "LITELLM_MASTER_KEY"])
        .map(Secret::new)
}

/// How often keys are read again from the database by default.
pub const DEFAULT_KEY_SYNC: Duration = Duration::from_secs(5);

/// The database for virtual keys: `general_settings.database_url`, else
/// `DATABASE_URL`: SQLite or PostgreSQL. Another database is named as not
/// supported, and the gateway serves without virtual keys. Keys need the
/// master key to be managed by.
fn database_url(
    from_file: Option<String>,
    env: &Env,
    has_master_key: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<Secret>, ConfigError> {
    let (url, path) = match from_file {
        Some(u) => (u, "general_settings.database_url"),
        None => match env.get("DATABASE_URL") {
            Some(u) => (u, "DATABASE_URL"),
            None => return Ok(None),
        },
    };
    if url.trim().is_empty() {
        return Ok(None);
    }
    if crate::keys::store::Backend::of(&url).is_none() {
        // Not echoed: a database URL may carry a password.
        warnings.push(format!(
            "{path}: only SQLite (sqlite:///path/to/llmux.db) and PostgreSQL \
             (postgresql://user:password@host:5432/db) are supported; virtual keys and spend \
             logs are off"
        ));
        return Ok(None);
    }
    if !has_master_key && path == "DATABASE_URL" {
        // Set for something else, perhaps: said, not fatal.
        warnings.push(
            "DATABASE_URL: virtual keys need a master key (general_settings.master_key or \
             LLMUX_MASTER_KEY); they are off"
                .to_owned(),
        );
        return Ok(None);
    }
    if !has_master_key {
        return Err(ConfigError::Invalid(format!(
            "{path} is set for virtual keys, which need a master key to manage them: \
             set general_settings.master_key (or LLMUX_MASTER_KEY)"
        )));
    }
    Ok(Some(Secret::new(url)))
}
