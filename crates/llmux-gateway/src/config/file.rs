//! Reading LiteLLM's `config.yaml` as it is.

use super::Wildcards;
use super::deployments::{self, DeploymentParams};
use super::env::Env;
use super::{
    Config, ConfigError, DEFAULT_MAX_REQUEST_MB, DEFAULT_NUM_RETRIES, DEFAULT_TIMEOUT, Source,
};
use llmux_core::{Catalog, Secret};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// `litellm_params` keys llmux implements.
const PARAMS: &[&str] = &[
    "model",
    "api_key",
    "api_base",
    "base_url",
    "api_version",
    "rpm",
    "tpm",
    "weight",
    "timeout",
    "stream_timeout",
    "extra_headers",
    "organization",
    "vertex_project",
    "vertex_location",
    "vertex_credentials",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_region_name",
    "aws_profile_name",
    "aws_bedrock_runtime_endpoint",
    "input_cost_per_token",
    "output_cost_per_token",
];

pub fn load_file(path: &Path, catalog: &Catalog, env: &Env) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut config = parse(&text, catalog, env).map_err(|e| match e {
        ConfigError::Yaml { source, .. } => ConfigError::Yaml {
            path: path.to_owned(),
            source,
        },
        other => other,
    })?;
    config.source = Source::File(path.to_owned());
    Ok(config)
}

/// Parses config text; `os.environ/NAME` values come from `env` plus the
/// file's own `environment_variables`.
pub fn parse(text: &str, catalog: &Catalog, env: &Env) -> Result<Config, ConfigError> {
    let root: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_yaml_ng::from_str(text).map_err(|source| ConfigError::Yaml {
            path: Default::default(),
            source,
        })?
    };
    let root = match root {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        _ => {
            return Err(ConfigError::Invalid(
                "the config file must be a YAML mapping".into(),
            ));
        }
    };
    let mut warnings = Vec::new();
    let mut env = env.clone();

    if let Some(vars) = root.get("environment_variables") {
        let vars = vars.as_object().ok_or_else(|| {
            ConfigError::Invalid("`environment_variables` must be a mapping".into())
        })?;
        for (k, v) in vars {
            match scalar(v) {
                Some(s) => env.set(k.clone(), s),
                None => warnings.push(format!("environment_variables.{k}: not a string, ignored")),
            }
        }
    }

    for key in root.keys() {
        match key.as_str() {
            "model_list" | "litellm_settings" | "general_settings" | "environment_variables" => {}
            "router_settings" => {}
            other => warnings.push(format!("{other}: unknown top-level key, ignored")),
        }
    }

    // litellm_settings, and the router_settings that say the same
    // (`num_retries`, `timeout`); litellm_settings wins where both do.
    let ls = section(&root, "litellm_settings")?;
    let mut drop_params = false;
    let mut num_retries = DEFAULT_NUM_RETRIES;
    let mut request_timeout = DEFAULT_TIMEOUT;
    let mut fallbacks = super::Fallbacks::default();
    let mut read_fallbacks = |k: &str, v: &Value, path: &str| -> Result<bool, ConfigError> {
        let map = match k {
            "fallbacks" => &mut fallbacks.any,
            "context_window_fallbacks" => &mut fallbacks.context_window,
            "content_policy_fallbacks" => &mut fallbacks.content_policy,
            // LiteLLM's `default_fallbacks: [m, …]` is `fallbacks: [{"*": [m, …]}]`.
            "default_fallbacks" => {
                let names = match v {
                    Value::Array(a) => a.iter().map(|n| n.as_str().map(str::to_owned)).collect(),
                    Value::String(n) => Some(vec![n.clone()]),
                    _ => None,
                };
                let names = names.ok_or_else(|| {
                    ConfigError::Invalid(format!("{path} must be a list of model names"))
                })?;
                // An explicit `*` list wins, whichever is read first.
                fallbacks.any.entry("*".to_owned()).or_insert(names);
                return Ok(true);
            }
            _ => return Ok(false),
        };
        map.extend(fallback_list(v, path)?);
        Ok(true)
    };
    let mut aliases = Vec::new();
    let mut routing_strategy = super::RoutingStrategy::default();
    let mut cooldowns = super::Cooldowns::default();
    let mut router_redis = super::redis::Parts::default();
    for (k, v) in &section(&root, "router_settings")? {
        let path = format!("router_settings.{k}");
        match k.as_str() {
            "cooldown_time" => cooldowns.time = duration_value(v, &path)?,
            "allowed_fails" => cooldowns.allowed_fails = Some(u64_value(v, &path)?),
            "disable_cooldowns" => cooldowns.disabled = bool_value(v, &path)?,
            "routing_strategy" => {
                let name = scalar(v).unwrap_or_default();
                routing_strategy = super::RoutingStrategy::parse(&name).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "{path}: `{name}` is not a routing strategy; one of {}",
                        super::RoutingStrategy::NAMES.join(", ")
                    ))
                })?;
            }
            "num_retries" => num_retries = u64_value(v, &path)? as u32,
            "timeout" => request_timeout = duration_value(v, &path)?,
            "model_group_alias" => aliases = alias_map(v, &path)?,
            "redis_host" => router_redis.host = resolve(v, &env, &path, &mut warnings)?,
            "redis_port" => router_redis.port = resolve(v, &env, &path, &mut warnings)?,
            "redis_password" => router_redis.password = resolve(v, &env, &path, &mut warnings)?,
            "redis_username" => router_redis.username = resolve(v, &env, &path, &mut warnings)?,
            "redis_url" => router_redis.url = resolve(v, &env, &path, &mut warnings)?,
            _ if read_fallbacks(k, v, &path)? => {}
            _ => warnings.push(format!("{path}: not implemented yet, ignored")),
        }
    }
    let mut prometheus = false;
    let mut metrics_auth = false;
    let mut cache = None;
    let mut cache_params = None;
    let mut key_defaults = None;
    let mut key_bounds = None;
    for (k, v) in &ls {
        let path = format!("litellm_settings.{k}");
        match k.as_str() {
            "drop_params" => drop_params = bool_value(v, &path)?,
            // LiteLLM's logging integrations: Prometheus is served here;
            // the others are named as not implemented.
            "callbacks" | "success_callback" | "failure_callback" => {
                let names: Vec<String> = match v {
                    Value::Array(a) => a.iter().filter_map(scalar).collect(),
                    Value::Null => vec![],
                    other => scalar(other).into_iter().collect(),
                };
                for name in names {
                    if name == "prometheus" {
                        prometheus = true;
                    } else {
                        warnings.push(format!("{path}: `{name}` is not implemented yet, ignored"));
                    }
                }
            }
            "require_auth_for_metrics_endpoint" => metrics_auth = bool_value(v, &path)?,
            // Older configs write `cache: {type: redis, …}`.
            "cache" => match v {
                Value::Object(_) => cache = Some(v.clone()),
                Value::Null => {}
                _ if bool_value(v, &path)? => cache = Some(Value::Object(Map::new())),
                _ => {}
            },
            "cache_params" => cache_params = Some(v.clone()),
            "default_key_generate_params" => key_defaults = Some(v.clone()),
            "upperbound_key_generate_params" => key_bounds = Some(v.clone()),
            "num_retries" => num_retries = u64_value(v, &path)? as u32,
            "request_timeout" => request_timeout = duration_value(v, &path)?,
            _ if read_fallbacks(k, v, &path)? => {}
            _ => warnings.push(format!("{path}: not implemented yet, ignored")),
        }
    }

    // general_settings
    let gs = section(&root, "general_settings")?;
    let mut master_key = None;
    let mut master_key_unresolved = None;
    let mut database_url = None;
    let mut key_sync = super::DEFAULT_KEY_SYNC;
    let mut max_request_mb = DEFAULT_MAX_REQUEST_MB;
    let mut fetch_image_urls = false;
    let mut fetch_image_urls_allow_private = false;
    for (k, v) in &gs {
        let path = format!("general_settings.{k}");
        match k.as_str() {
            "master_key" => match resolve(v, &env, &path, &mut warnings)? {
                Some(s) if !s.is_empty() => master_key = Some(Secret::new(s)),
                _ if !v.is_null() => master_key_unresolved = Some(path),
                _ => {}
            },
            "database_url" => database_url = resolve(v, &env, &path, &mut warnings)?,
            "key_sync_interval" => {
                key_sync = duration_value(v, &path)?;
                if !(0.05..=86_400.0).contains(&key_sync.as_secs_f64()) {
                    return Err(ConfigError::Invalid(format!(
                        "{path} must be between 0.05 and 86400 seconds"
                    )));
                }
            }
            "fetch_image_urls" => fetch_image_urls = bool_value(v, &path)?,
            "fetch_image_urls_allow_private" => {
                fetch_image_urls_allow_private = bool_value(v, &path)?
            }
            "max_request_size_mb" => {
                max_request_mb = number_value(v, &path)?;
                if max_request_mb <= 0.0 {
                    return Err(ConfigError::Invalid(format!("{path} must be positive")));
                }
            }
            _ => warnings.push(format!("{path}: not implemented yet, ignored")),
        }
    }
    let master_key = master_key.or_else(|| super::master_key_from_env(&env));
    let database_url =
        super::database_url(database_url, &env, master_key.is_some(), &mut warnings)?;
    let redis = redis(cache, cache_params, router_redis, &env, &mut warnings)?;
    if prometheus && !metrics_auth && master_key.is_some() {
        // Open as LiteLLM's is; said, since every other route needs the key.
        warnings.push(
            "litellm_settings.callbacks: /metrics is readable without the master key \
             (model names, deployments' hosts, spend); set \
             litellm_settings.require_auth_for_metrics_endpoint: true to require it"
                .to_owned(),
        );
    }
    if let (None, Some(path)) = (&master_key, master_key_unresolved) {
        // A key was asked for and none was found (an unset variable, a
        // secret that did not mount): serving without one would open the
        // gateway, and the providers' keys, to anyone.
        return Err(ConfigError::Invalid(format!(
            "{path} is set but resolves to no key (is its environment variable set?); \
             refusing to serve without the master key"
        )));
    }

    // model_list
    let mut deployments = Vec::new();
    let list = match root.get("model_list") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(ConfigError::Invalid("`model_list` must be a list".into())),
    };
    let mut wildcards = Wildcards::default();
    for (i, item) in list.iter().enumerate() {
        let params = model_entry(item, i, &env, &mut warnings)?;
        if params.model_name.contains('*') {
            // LiteLLM's wildcard routes (`anthropic/*`).
            if wildcards.is_empty() {
                wildcards = Wildcards::new(Arc::new(catalog.clone()), env.clone(), request_timeout);
            }
            wildcards.add(params, i, &mut warnings)?;
            continue;
        }
        if params.model.contains('*') {
            warnings.push(format!(
                "model_list[{i}]: `litellm_params.model` `{}` has a `*` but `model_name` `{}` \
                 has none to fill it; entry skipped",
                params.model, params.model_name
            ));
            continue;
        }
        let mut d = deployments::build(params, i, catalog, &env)?;
        d.timeout = d.timeout.or(Some(request_timeout));
        deployments.push(d);
    }

    // A fallback to a model this config does not serve cannot be taken.
    let served: std::collections::HashSet<&str> =
        deployments.iter().map(|d| d.model_name.as_str()).collect();
    for (kind, map) in [
        ("fallbacks", &fallbacks.any),
        ("context_window_fallbacks", &fallbacks.context_window),
        ("content_policy_fallbacks", &fallbacks.content_policy),
    ] {
        // A list may be keyed by a model, a wildcard route or `*` (every
        // model); what it names must be models.
        let serves = |m: &str| {
            served.contains(m)
                || aliases.iter().any(|a| a.name == m)
                || (!m.contains('*') && wildcards.find(m).is_some())
        };
        let keys = map
            .keys()
            .map(String::as_str)
            .filter(|m| *m != "*" && !wildcards.patterns().any(|p| p == *m) && !serves(m));
        let targets = map
            .values()
            .flatten()
            .map(String::as_str)
            .filter(|m| !serves(m));
        let mut unknown: Vec<&str> = keys.chain(targets).collect();
        unknown.sort_unstable();
        unknown.dedup();
        for m in unknown {
            warnings.push(format!("{kind}: `{m}` is not a model_name of this config"));
        }
    }

    // An alias stands for one model this config serves (not for another
    // alias: LiteLLM resolves one step).
    for a in &aliases {
        let serves = served.contains(a.target.as_str())
            || (!a.target.contains('*') && wildcards.find(&a.target).is_some());
        if aliases.iter().any(|b| b.name == a.target) {
            warnings.push(format!(
                "router_settings.model_group_alias.{}: `{}` is itself an alias; aliases resolve one step",
                a.name, a.target
            ));
        } else if !serves {
            warnings.push(format!(
                "router_settings.model_group_alias.{}: `{}` is not a model_name of this config",
                a.name, a.target
            ));
        }
    }

    let key_params = crate::keys::KeyParams::from_config(
        key_defaults.as_ref(),
        key_bounds.as_ref(),
        &mut warnings,
    )
    .map_err(ConfigError::Invalid)?;

    Ok(Config {
        fallbacks,
        aliases,
        routing_strategy,
        cooldowns,
        source: Source::Environment { providers: vec![] },
        deployments,
        wildcards,
        master_key,
        database_url,
        key_sync,
        redis,
        drop_params,
        num_retries,
        request_timeout,
        max_request_bytes: (max_request_mb * 1024.0 * 1024.0) as usize,
        warnings,
        env,
        fetch_image_urls,
        fetch_image_urls_allow_private,
        metrics: prometheus.then_some(super::MetricsSettings {
            require_auth: metrics_auth,
        }),
        key_params,
    })
}

/// LiteLLM's `model_group_alias`: `{alias: model}` or
/// `{alias: {model: …, hidden: true}}`.
fn alias_map(v: &Value, path: &str) -> Result<Vec<super::Alias>, ConfigError> {
    let bad = |name: &str| {
        ConfigError::Invalid(format!(
            "{path}.{name} must be a model name, or a mapping with `model` (and `hidden`)"
        ))
    };
    let Value::Object(m) = v else {
        return if v.is_null() {
            Ok(vec![])
        } else {
            Err(ConfigError::Invalid(format!(
                "{path} must be a mapping from an alias to a model name"
            )))
        };
    };
    m.iter()
        .map(|(name, to)| {
            let (target, hidden) = match to {
                Value::String(t) => (t.clone(), false),
                Value::Object(o) => (
                    o.get("model")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad(name))?
                        .to_owned(),
                    match o.get("hidden") {
                        None | Some(Value::Null) => false,
                        Some(h) => bool_value(h, &format!("{path}.{name}.hidden"))?,
                    },
                ),
                _ => return Err(bad(name)),
            };
            Ok(super::Alias {
                name: name.clone(),
                target,
                hidden,
            })
        })
        .collect()
}

/// LiteLLM's fallback list: `[{"gpt-4o": ["claude-sonnet-4", …]}, …]`.
fn fallback_list(v: &Value, path: &str) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let bad = || {
        ConfigError::Invalid(format!(
            "{path} must be a list of mappings from a model name to a list of model names, \
             like [{{\"gpt-4o\": [\"claude-sonnet-4\"]}}]"
        ))
    };
    let Value::Array(items) = v else {
        return if v.is_null() { Ok(vec![]) } else { Err(bad()) };
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Object(m) = item else {
            return Err(bad());
        };
        for (from, to) in m {
            let to = match to {
                Value::Array(names) => names
                    .iter()
                    .map(|n| n.as_str().map(str::to_owned).ok_or_else(bad))
                    .collect::<Result<Vec<_>, _>>()?,
                Value::String(n) => vec![n.clone()],
                _ => return Err(bad()),
            };
            out.push((from.clone(), to));
        }
    }
    Ok(out)
}

fn model_entry(
    item: &Value,
    i: usize,
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<DeploymentParams, ConfigError> {
    let at = format!("model_list[{i}]");
    let obj = item
        .as_object()
        .ok_or_else(|| ConfigError::Invalid(format!("{at} must be a mapping")))?;
    let model_name = obj
        .get("model_name")
        .and_then(scalar)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConfigError::Invalid(format!("{at}: `model_name` is required")))?;
    let lp = obj
        .get("litellm_params")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "{at} (`{model_name}`): `litellm_params` is required"
            ))
        })?;
    for k in obj.keys() {
        if !matches!(k.as_str(), "model_name" | "litellm_params" | "model_info") {
            warnings.push(format!("{at}.{k}: unknown key, ignored"));
        }
    }
    let mut p = DeploymentParams {
        model_name: model_name.clone(),
        ..Default::default()
    };
    let model = lp.get("model").and_then(scalar).unwrap_or_default();
    if model.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "{at} (`{model_name}`): `litellm_params.model` is required, e.g. openai/gpt-4o"
        )));
    }
    p.model = model;
    let mut prices = Map::new();
    for (k, v) in lp {
        let path = format!("{at}.litellm_params.{k}");
        match k.as_str() {
            "model" => {}
            "api_key" => p.api_key = resolve(v, env, &path, warnings)?,
            "api_base" | "base_url" => p.api_base = resolve(v, env, &path, warnings)?,
            "api_version" => p.api_version = resolve(v, env, &path, warnings)?,
            "organization" => p.organization = resolve(v, env, &path, warnings)?,
            "vertex_project" => p.vertex_project = resolve(v, env, &path, warnings)?,
            "aws_access_key_id" => p.aws_access_key_id = resolve(v, env, &path, warnings)?,
            "aws_secret_access_key" => p.aws_secret_access_key = resolve(v, env, &path, warnings)?,
            "aws_session_token" => p.aws_session_token = resolve(v, env, &path, warnings)?,
            "aws_region_name" => p.aws_region_name = resolve(v, env, &path, warnings)?,
            "aws_profile_name" => p.aws_profile_name = resolve(v, env, &path, warnings)?,
            "aws_bedrock_runtime_endpoint" => p.api_base = resolve(v, env, &path, warnings)?,
            "vertex_location" => p.vertex_location = resolve(v, env, &path, warnings)?,
            "vertex_credentials" => {
                // A path, JSON text, or (as YAML lets one write it) a mapping.
                p.vertex_credentials = match v {
                    Value::Object(_) => Some(v.to_string()),
                    _ => resolve(v, env, &path, warnings)?,
                }
            }
            "rpm" => p.rpm = Some(u64_value(v, &path)?),
            "tpm" => p.tpm = Some(u64_value(v, &path)?),
            "weight" => {
                let w = number_value(v, &path)?;
                if w < 0.0 || !w.is_finite() {
                    return Err(ConfigError::Invalid(format!(
                        "{path} must be a number, 0 or more"
                    )));
                }
                p.weight = Some(w);
            }
            // A deployment's own prices (LiteLLM's custom pricing): as
            // `model_info` gives them, which wins where both do.
            "input_cost_per_token" | "output_cost_per_token" => {
                prices.insert(k.clone(), number_value(v, &path)?.into());
            }
            "timeout" => p.timeout = Some(duration_value(v, &path)?),
            "stream_timeout" => p.stream_timeout = Some(duration_value(v, &path)?),
            "extra_headers" => {
                let headers = v
                    .as_object()
                    .ok_or_else(|| ConfigError::Invalid(format!("{path} must be a mapping")))?;
                for (name, hv) in headers {
                    if let Some(value) = resolve(hv, env, &format!("{path}.{name}"), warnings)? {
                        p.extra_headers.push((name.clone(), value));
                    }
                }
            }
            _ => {
                debug_assert!(!PARAMS.contains(&k.as_str()));
                warnings.push(format!("{path}: not implemented yet, ignored"));
            }
        }
    }
    if let Some(info) = obj.get("model_info") {
        p.model_info = info
            .as_object()
            .cloned()
            .ok_or_else(|| ConfigError::Invalid(format!("{at}.model_info must be a mapping")))?;
    }
    for (k, v) in prices {
        p.model_info.entry(k).or_insert(v);
    }
    Ok(p)
}

/// The Redis replicas share state in (the virtual keys' rate limits, the
/// deployments' usage and cooldowns): `litellm_settings.cache_params` with
/// `cache: true` (as LiteLLM's proxy counts its limits in its cache's
/// Redis), else `router_settings.redis_*`. Response caching itself is not
/// served.
fn redis(
    cache: Option<Value>,
    cache_params: Option<Value>,
    router: super::redis::Parts,
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<Option<super::RedisSettings>, ConfigError> {
    let from_router = router.url.is_some() || router.host.is_some();
    let mut chosen = None;
    match (cache, cache_params) {
        (None, Some(_)) => warnings.push(
            "litellm_settings.cache_params: read only with litellm_settings.cache: true; ignored"
                .to_owned(),
        ),
        (None, None) => {}
        (Some(inline), params) => {
            let mut p = match inline {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            match params {
                Some(Value::Object(m)) => p.extend(m),
                None | Some(Value::Null) => {}
                Some(_) => {
                    return Err(ConfigError::Invalid(
                        "litellm_settings.cache_params must be a mapping".into(),
                    ));
                }
            }
            let kind = p
                .get("type")
                .and_then(scalar)
                .unwrap_or_else(|| "redis".into());
            let cluster = ["redis_startup_nodes", "sentinel_nodes", "service_name"]
                .into_iter()
                .find(|k| p.get(*k).is_some_and(|v| !v.is_null()));
            if kind != "redis" {
                warnings.push(format!(
                    "litellm_settings.cache: `{kind}` caching is not implemented yet, ignored"
                ));
            } else if let Some(k) = cluster {
                warnings.push(format!(
                    "litellm_settings.cache_params.{k}: Redis Cluster and Sentinel are not \
                     implemented yet; rate limits are counted per process"
                ));
            } else {
                let mut parts = super::redis::Parts::default();
                for (k, v) in &p {
                    let path = format!("litellm_settings.cache_params.{k}");
                    let slot = match k.as_str() {
                        "url" | "redis_url" => &mut parts.url,
                        "host" => &mut parts.host,
                        "port" => &mut parts.port,
                        "username" => &mut parts.username,
                        "password" => &mut parts.password,
                        "ssl" => &mut parts.ssl,
                        "db" => &mut parts.db,
                        "namespace" => &mut parts.namespace,
                        // The response cache's own settings (ttl, call
                        // types, …): it is not served.
                        _ => continue,
                    };
                    *slot = resolve(v, env, &path, warnings)?;
                }
                warnings.push(
                    "litellm_settings.cache: response caching is not implemented yet; its Redis \
                     is where replicas share rate limits, usage and cooldowns"
                        .to_owned(),
                );
                chosen =
                    super::redis::settings(parts, "litellm_settings.cache_params", env, warnings)?;
            }
        }
    }
    if from_router {
        let theirs = super::redis::settings(router, "router_settings.redis_host", env, warnings)?;
        match (&chosen, theirs) {
            (None, Some(r)) => chosen = Some(r),
            (Some(c), Some(r)) if c.redacted() != r.redacted() => warnings.push(format!(
                "router_settings.redis_host: rate limits are counted in the Redis of \
                 litellm_settings.cache_params ({}); {} is not used",
                c.redacted(),
                r.redacted()
            )),
            _ => {}
        }
    }
    Ok(chosen)
}

fn section(root: &Map<String, Value>, name: &str) -> Result<Map<String, Value>, ConfigError> {
    match root.get(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(ConfigError::Invalid(format!("`{name}` must be a mapping"))),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A string value, with `os.environ/NAME` read from the environment. A
/// missing variable is reported (by name, never by value) and leaves the
/// value unset.
fn resolve(
    v: &Value,
    env: &Env,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, ConfigError> {
    let Some(s) = scalar(v) else {
        if v.is_null() {
            return Ok(None);
        }
        return Err(ConfigError::Invalid(format!("{path} must be a string")));
    };
    match s.strip_prefix("os.environ/") {
        Some(name) => {
            let value = env.get(name);
            if value.is_none() {
                warnings.push(format!("{path}: environment variable {name} is not set"));
            }
            Ok(value)
        }
        None => Ok(Some(s)),
    }
}

fn bool_value(v: &Value, path: &str) -> Result<bool, ConfigError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ConfigError::Invalid(format!(
            "{path} must be true or false"
        ))),
    }
}

fn number_value(v: &Value, path: &str) -> Result<f64, ConfigError> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| ConfigError::Invalid(format!("{path} must be a non-negative number")))
}

fn u64_value(v: &Value, path: &str) -> Result<u64, ConfigError> {
    number_value(v, path).map(|n| n as u64)
}

fn duration_value(v: &Value, path: &str) -> Result<Duration, ConfigError> {
    let secs = number_value(v, path)?;
    if secs == 0.0 {
        return Err(ConfigError::Invalid(format!(
            "{path} must be more than 0 seconds"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmux_core::ProviderKind;

    const LITELLM_CONFIG: &str = r#"
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/MY_OPENAI_KEY
      rpm: 500
      timeout: 30
      organization: org-123
      extra_headers: {X-Team: platform}
    model_info:
      max_input_tokens: 64000
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt4o-eastus
      api_base: https://acme-eastus.openai.azure.com
      api_key: os.environ/AZURE_KEY_EAST
      api_version: "2024-06-01"
      tpm: 100000
    model_info: {base_model: azure/gpt-4o}
  - model_name: local-coder
    litellm_params:
      model: openai/qwen2.5-coder
      api_base: http://127.0.0.1:11434/v1
      api_key: "none"
      weird_param: 1
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-20250514
  - model_name: gem
    litellm_params:
      model: bedrock/amazon.nova-pro-v1:0
      aws_region_name: us-east-1
litellm_settings:
  drop_params: true
  num_retries: 3
  request_timeout: 120
  callbacks: ["langfuse"]
general_settings:
  master_key: os.environ/PROXY_KEY
  database_url: postgres://x
  max_request_size_mb: 5
router_settings:
  routing_strategy: usage-based-routing
  redis_host: redis.internal
environment_variables:
  AZURE_KEY_EAST: az-from-file
  PROXY_KEY: sk-proxy
"#;

    #[test]
    fn reads_a_litellm_config_as_it_is() {
        let env = Env::fixed(&[("MY_OPENAI_KEY", "sk-openai")]);
        let c = parse(LITELLM_CONFIG, &Catalog::builtin().unwrap(), &env).unwrap();
        assert_eq!(c.deployments.len(), 5);
        assert_eq!(
            c.model_names(),
            vec!["gpt-4o", "local-coder", "claude", "gem"]
        );
        assert!(c.drop_params);
        assert_eq!(c.num_retries, 3);
        assert_eq!(c.request_timeout, Duration::from_secs(120));
        assert_eq!(c.max_request_bytes, 5 * 1024 * 1024);
        assert_eq!(c.master_key.as_ref().unwrap().expose(), "sk-proxy");
        assert_eq!(
            c.database_url.as_ref().map(Secret::expose),
            Some("postgres://x")
        );

        let oa = &c.deployments[0];
        assert_eq!(oa.api_key.as_ref().unwrap().expose(), "sk-openai");
        assert_eq!(
            (oa.rpm, oa.timeout),
            (Some(500), Some(Duration::from_secs(30)))
        );
        assert_eq!(oa.organization.as_deref(), Some("org-123"));
        assert_eq!(oa.info.u64("max_input_tokens"), Some(64000));
        assert_eq!(oa.extra_headers[0].0, "X-Team");

        let az = &c.deployments[1];
        assert_eq!(az.provider, ProviderKind::Azure);
        assert_eq!(az.api_key.as_ref().unwrap().expose(), "az-from-file");
        assert_eq!(az.upstream_model, "gpt4o-eastus");
        assert_eq!(az.tpm, Some(100000));
        assert_eq!(
            az.timeout,
            Some(Duration::from_secs(120)),
            "request_timeout is the default"
        );

        assert_eq!(c.deployments[3].provider, ProviderKind::Anthropic);
    }

    #[test]
    fn names_every_key_it_does_not_implement() {
        let env = Env::fixed(&[("MY_OPENAI_KEY", "sk-openai")]);
        let c = parse(LITELLM_CONFIG, &Catalog::builtin().unwrap(), &env).unwrap();
        let w = c.warnings.join("\n");
        for key in [
            "litellm_settings.callbacks",
            "model_list[2].litellm_params.weird_param",
        ] {
            assert!(w.contains(key), "no warning for {key}:\n{w}");
        }
        assert!(
            !w.contains("not supported"),
            "every provider is served:\n{w}"
        );
        assert!(!w.contains("routing_strategy"), "{w}");
        assert_eq!(
            c.routing_strategy,
            super::super::RoutingStrategy::UsageBased
        );
        // The router's Redis is read: replicas share usage through it.
        assert!(!w.contains("router_settings.redis_host"), "{w}");
        assert_eq!(
            c.redis.as_ref().map(|r| r.redacted()).as_deref(),
            Some("redis://redis.internal:6379/0")
        );
        let bedrock = &c.deployments[4];
        assert_eq!(bedrock.aws.as_ref().unwrap().region, "us-east-1");
        assert!(!w.contains("sk-"), "warnings never carry secrets:\n{w}");
    }

    #[test]
    fn a_missing_environment_variable_is_reported_by_name() {
        let c = parse(
            LITELLM_CONFIG,
            &Catalog::builtin().unwrap(),
            &Env::fixed(&[("PROXY_KEY", "sk-proxy")]),
        )
        .unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("MY_OPENAI_KEY is not set"))
        );
        assert!(c.deployments[0].api_key.is_none());
    }

    #[test]
    fn router_settings_retries_and_timeout_are_read() {
        let cat = Catalog::builtin().unwrap();
        let env = Env::fixed(&[]);
        let c = parse(
            "router_settings: {num_retries: 5, timeout: 30, routing_strategy: simple-shuffle}",
            &cat,
            &env,
        )
        .unwrap();
        assert_eq!(c.num_retries, 5);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        for (name, strategy) in [
            ("least-busy", super::super::RoutingStrategy::LeastBusy),
            (
                "usage-based-routing-v2",
                super::super::RoutingStrategy::UsageBased,
            ),
            (
                "latency-based-routing",
                super::super::RoutingStrategy::LatencyBased,
            ),
            (
                "cost-based-routing",
                super::super::RoutingStrategy::CostBased,
            ),
        ] {
            let c = parse(
                &format!("router_settings: {{routing_strategy: {name}}}"),
                &cat,
                &env,
            )
            .unwrap();
            assert_eq!(c.routing_strategy, strategy, "{name}");
        }
        let c = parse(
            "router_settings: {cooldown_time: 30, allowed_fails: 3, disable_cooldowns: false}",
            &cat,
            &env,
        )
        .unwrap();
        assert_eq!(
            c.cooldowns,
            super::super::Cooldowns {
                time: Duration::from_secs(30),
                allowed_fails: Some(3),
                disabled: false
            }
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let c = parse("router_settings: {disable_cooldowns: true}", &cat, &env).unwrap();
        assert!(c.cooldowns.disabled);
        let e = parse("router_settings: {routing_strategy: fastest}", &cat, &env).unwrap_err();
        assert!(
            e.to_string()
                .contains("`fastest` is not a routing strategy; one of simple-shuffle"),
            "{e}"
        );

        let c = parse(
            "router_settings: {num_retries: 5}\nlitellm_settings: {num_retries: 1}",
            &cat,
            &env,
        )
        .unwrap();
        assert_eq!(c.num_retries, 1, "litellm_settings wins");
    }

    #[test]
    fn default_fallbacks_are_the_list_for_every_model() {
        let cat = Catalog::builtin().unwrap();
        let env = Env::fixed(&[]);
        let models = "model_list:\n  - model_name: a\n    litellm_params: {model: openai/gpt-4o, api_key: k}\n";
        let c = parse(
            &format!("{models}router_settings: {{default_fallbacks: [a]}}"),
            &cat,
            &env,
        )
        .unwrap();
        assert_eq!(c.fallbacks.any["*"], ["a"]);
        // An explicit `*` list wins over it, in either section.
        let c = parse(
            &format!(
                "{models}router_settings: {{default_fallbacks: [a]}}\nlitellm_settings: {{fallbacks: [{{\"*\": [b]}}]}}"
            ),
            &cat,
            &env,
        )
        .unwrap();
        assert_eq!(c.fallbacks.any["*"], ["b"]);
        let e = parse(
            &format!("{models}router_settings: {{default_fallbacks: 3}}"),
            &cat,
            &env,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("default_fallbacks must be a list"),
            "{e}"
        );
    }

    #[test]
    fn fallbacks_are_read_from_either_section_and_unknown_names_reported() {
        let cat = Catalog::builtin().unwrap();
        let env = Env::fixed(&[]);
        let config = r#"
model_list:
  - model_name: a
    litellm_params: {model: openai/gpt-4o, api_key: k}
  - model_name: b
    litellm_params: {model: openai/gpt-4o-mini, api_key: k}
litellm_settings:
  fallbacks: [{"a": ["b", "ghost"]}]
  context_window_fallbacks: [{"b": ["a"]}]
router_settings:
  content_policy_fallbacks: [{"a": "b"}]
"#;
        let c = parse(config, &cat, &env).unwrap();
        assert_eq!(c.fallbacks.any["a"], ["b", "ghost"]);
        assert_eq!(c.fallbacks.context_window["b"], ["a"]);
        assert_eq!(c.fallbacks.content_policy["a"], ["b"]);
        let w = c.warnings.join("\n");
        assert!(w.contains("fallbacks: `ghost` is not a model_name"), "{w}");
        assert!(!w.contains("not implemented"), "{w}");
        let e = parse("litellm_settings: {fallbacks: [\"a\"]}", &cat, &env).unwrap_err();
        assert!(e.to_string().contains("litellm_settings.fallbacks"), "{e}");
    }

    #[test]
    fn wildcard_entries_are_routes_not_models() {
        let cat = Catalog::builtin().unwrap();
        let config = r#"
model_list:
  - model_name: "*"
    litellm_params: {model: "*"}
  - model_name: "anthropic/*"
    litellm_params: {model: "anthropic/*", api_key: k}
  - model_name: a
    litellm_params: {model: openai/gpt-4o, api_key: k}
  - model_name: b
    litellm_params: {model: "openai/*", api_key: k}
litellm_settings:
  fallbacks: [{"*": ["a"]}, {"anthropic/*": ["anthropic/claude-sonnet-4"]}, {"a": ["ghost"]}]
"#;
        let c = parse(config, &cat, &Env::fixed(&[])).unwrap();
        assert_eq!(c.model_names(), vec!["a"]);
        let patterns: Vec<&str> = c.wildcards.patterns().collect();
        assert_eq!(patterns, vec!["anthropic/*", "*"]);
        let w = c.warnings.join("\n");
        // A `*` in the model with none in the name fills nothing.
        assert!(
            w.contains("model_list[3]: `litellm_params.model` `openai/*` has a `*`"),
            "{w}"
        );
        // With a `*` route every name is served, so any fallback is.
        assert!(!w.contains("is not a model_name"), "{w}");
        // The `*` entry's key would go to any provider: said.
        assert!(!w.contains("sets an api_key"), "{w}");

        // Without one: lists may be keyed by a model, by the name without
        // its provider prefix, by a route, or by `*`; what they name must
        // be models.
        let config = r#"
model_list:
  - model_name: "anthropic/*"
    litellm_params: {model: "anthropic/*", api_key: k}
  - model_name: "any/*"
    litellm_params: {model: "*", api_key: k}
  - model_name: a
    litellm_params: {model: openai/gpt-4o, api_key: k}
litellm_settings:
  fallbacks:
    - {"*": ["a"]}
    - {"anthropic/*": ["anthropic/claude-sonnet-4"]}
    - {"claude-sonnet-4": ["a"]}
    - {"a": ["ghost", "anthropic/*", "*"]}
    - {"nobody": ["a"]}
"#;
        let c = parse(config, &cat, &Env::fixed(&[])).unwrap();
        let w = c.warnings.join("\n");
        for unknown in ["ghost", "anthropic/*", "*", "nobody"] {
            assert!(
                w.contains(&format!("`{unknown}` is not a model_name")),
                "{unknown}: {w}"
            );
        }
        assert_eq!(w.matches("is not a model_name").count(), 4, "{w}");
        assert!(
            w.contains("model_list[1]: `any/*` sets an api_key but no provider"),
            "{w}"
        );
    }

    #[test]
    fn model_group_aliases_are_read_and_checked() {
        let cat = Catalog::builtin().unwrap();
        let config = r#"
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: k}
  - model_name: "anthropic/*"
    litellm_params: {model: "anthropic/*", api_key: k}
router_settings:
  model_group_alias:
    gpt-4: gpt-4o
    haiku: {model: anthropic/claude-3-5-haiku-20241022, hidden: true}
    ghost: nowhere
    twice: gpt-4
litellm_settings:
  fallbacks: [{"gpt-4o": ["haiku"]}]
"#;
        let c = parse(config, &cat, &Env::fixed(&[])).unwrap();
        let alias = |name: &str| c.aliases.iter().find(|a| a.name == name).unwrap();
        assert_eq!(
            (alias("gpt-4").target.as_str(), alias("gpt-4").hidden),
            ("gpt-4o", false)
        );
        assert_eq!(
            (alias("haiku").target.as_str(), alias("haiku").hidden),
            ("anthropic/claude-3-5-haiku-20241022", true)
        );
        let w = c.warnings.join("\n");
        assert!(
            w.contains("model_group_alias.ghost: `nowhere` is not a model_name"),
            "{w}"
        );
        assert!(
            w.contains("model_group_alias.twice: `gpt-4` is itself an alias"),
            "{w}"
        );
        assert!(!w.contains("not implemented"), "{w}");
        // A fallback may name an alias.
        assert!(!w.contains("`haiku` is not"), "{w}");
        let e = parse(
            "router_settings: {model_group_alias: {a: [b]}}",
            &cat,
            &Env::fixed(&[]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("model_group_alias.a"), "{e}");
    }

    #[test]
    fn a_master_key_that_resolves_to_nothing_stops_the_start() {
        let cat = Catalog::builtin().unwrap();
        let config = "general_settings: {master_key: os.environ/PROXY_KEY}";
        let e = parse(config, &cat, &Env::fixed(&[])).unwrap_err();
        assert!(e.to_string().contains("general_settings.master_key"), "{e}");
        let e = parse(config, &cat, &Env::fixed(&[("PROXY_KEY", "")])).unwrap_err();
        assert!(e.to_string().contains("refusing"), "{e}");
        // The environment's own master key still serves.
        let c = parse(config, &cat, &Env::fixed(&[("LLMUX_MASTER_KEY", "sk-env")])).unwrap();
        assert_eq!(c.master_key.unwrap().expose(), "sk-env");
        // No key asked for: none needed.
        assert!(
            parse("", &cat, &Env::fixed(&[]))
                .unwrap()
                .master_key
                .is_none()
        );
    }

    #[test]
    fn the_prometheus_callback_turns_metrics_on() {
        let cat = Catalog::builtin().unwrap();
        let env = Env::fixed(&[]);
        let c = parse(
            "litellm_settings:\n  success_callback: [prometheus, langfuse]\n  require_auth_for_metrics_endpoint: true",
            &cat,
            &env,
        )
        .unwrap();
        assert_eq!(
            c.metrics,
            Some(super::super::MetricsSettings { require_auth: true })
        );
        let w = c.warnings.join("\n");
        assert!(w.contains("`langfuse` is not implemented"), "{w}");
        assert!(!w.contains("prometheus"), "{w}");
        // Open metrics beside a master key are said at start.
        let open = parse(
            "litellm_settings: {callbacks: [prometheus]}\ngeneral_settings: {master_key: sk-m}",
            &cat,
            &env,
        )
        .unwrap();
        assert!(
            open.warnings
                .join("\n")
                .contains("/metrics is readable without the master key")
        );
        assert!(!w.contains("/metrics is readable"), "{w}");
        let off = parse("litellm_settings: {callbacks: [langfuse]}", &cat, &env).unwrap();
        assert_eq!(off.metrics, None);
    }

    #[test]
    fn clear_errors_for_broken_files() {
        let cat = Catalog::builtin().unwrap();
        let env = Env::fixed(&[]);
        let e = parse(
            "model_list:\n  - litellm_params: {model: openai/x}",
            &cat,
            &env,
        )
        .unwrap_err();
        assert!(e.to_string().contains("model_name"), "{e}");
        let e = parse(
            "model_list:\n  - model_name: a\n    litellm_params: {}",
            &cat,
            &env,
        )
        .unwrap_err();
        assert!(e.to_string().contains("litellm_params.model"), "{e}");
        let e = parse("litellm_settings: {num_retries: many}", &cat, &env).unwrap_err();
        assert!(e.to_string().contains("num_retries"), "{e}");
        assert!(matches!(
            parse("model_list: [", &cat, &env),
            Err(ConfigError::Yaml { .. })
        ));
        // An empty file is a valid (empty) config.
        assert!(parse("", &cat, &env).unwrap().deployments.is_empty());
    }

    #[test]
    fn a_sqlite_database_url_turns_virtual_keys_on_with_the_master_key() {
        let cat = Catalog::builtin().unwrap();
        let none = Env::fixed(&[]);
        let c = parse(
            "general_settings: {master_key: sk-m, database_url: os.environ/DB}",
            &cat,
            &Env::fixed(&[("DB", "sqlite:///var/lib/llmux.db")]),
        )
        .unwrap();
        assert_eq!(
            c.database_url.as_ref().map(Secret::expose),
            Some("sqlite:///var/lib/llmux.db")
        );
        assert!(!c.warnings.join("\n").contains("database_url"));
        // LiteLLM's DATABASE_URL, when the file names none.
        let from_env = parse(
            "general_settings: {master_key: sk-m}",
            &cat,
            &Env::fixed(&[("DATABASE_URL", "sqlite::memory:")]),
        )
        .unwrap();
        assert_eq!(
            from_env.database_url.as_ref().map(Secret::expose),
            Some("sqlite::memory:")
        );
        // Keys without a master key to manage them: the start stops.
        let e = parse(
            "general_settings: {database_url: 'sqlite::memory:'}",
            &cat,
            &none,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("master key"), "{e}");
        // PostgreSQL, as LiteLLM's configs name it, is taken.
        let pg = parse(
            "general_settings: {master_key: sk-m, database_url: 'postgresql://u:pw-secret@db/x'}",
            &cat,
            &none,
        )
        .unwrap();
        assert_eq!(
            pg.database_url.as_ref().map(Secret::expose),
            Some("postgresql://u:pw-secret@db/x")
        );
        assert_eq!(pg.key_sync, crate::config::DEFAULT_KEY_SYNC);
        // Another database is said to be unsupported, without the URL (a
        // password).
        let my = parse(
            "general_settings: {master_key: sk-m, database_url: 'mysql://u:pw-secret@db/x', \
             key_sync_interval: 0.5}",
            &cat,
            &none,
        )
        .unwrap();
        assert!(my.database_url.is_none());
        // The URL, a secret, is not in the config's debug form.
        assert!(!format!("{pg:?}").contains("pw-secret"));
        for bad in ["0.001", "1e-10", "100000"] {
            let e = parse(
                &format!("general_settings: {{key_sync_interval: {bad}}}"),
                &cat,
                &none,
            )
            .err()
            .unwrap();
            assert!(e.to_string().contains("key_sync_interval"), "{e}");
        }
        assert_eq!(my.key_sync, Duration::from_millis(500));
        let w = my.warnings.join("\n");
        assert!(w.contains("only SQLite") && w.contains("PostgreSQL"), "{w}");
        assert!(!w.contains("pw-secret"), "{w}");
        assert_eq!(parse("", &cat, &none).unwrap().database_url, None);
    }

    #[test]
    fn a_redis_is_read_as_litellm_names_it_for_the_keys_rate_limits() {
        let cat = Catalog::builtin().unwrap();
        let env = Env::fixed(&[("REDIS_PW", "pw-from-env")]);
        let keys = "general_settings: {master_key: sk-m, database_url: 'sqlite:///tmp/k.db'}\n";
        let read = |text: &str| {
            let c = parse(&format!("{keys}{text}"), &cat, &env).unwrap();
            (c.redis.map(|r| r.redacted()), c.warnings.join("\n"))
        };
        // LiteLLM's cache settings: the Redis is used; its response cache
        // is said not to be.
        let (r, w) = read(
            "litellm_settings: {cache: true, cache_params: {type: redis, host: r1, port: 6380, \
             password: os.environ/REDIS_PW, ttl: 60}}",
        );
        assert_eq!(r.as_deref(), Some("redis://r1:6380/0"));
        assert!(w.contains("response caching is not implemented"), "{w}");
        assert!(!w.contains("pw-from-env"), "{w}");
        // The router's, when the cache names none.
        let (r, w) = read("router_settings: {redis_host: r2, redis_password: x}");
        assert_eq!(r.as_deref(), Some("redis://r2:6379/0"));
        assert!(!w.contains("router_settings.redis"), "{w}");
        // Both, differing: the cache's, and the other named as unused.
        let (r, w) = read(
            "litellm_settings: {cache: true, cache_params: {host: r1}}\n\
             router_settings: {redis_host: r2}",
        );
        assert_eq!(r.as_deref(), Some("redis://r1:6379/0"));
        assert!(w.contains("redis://r2:6379/0 is not used"), "{w}");
        // Not a Redis, Redis Cluster, cache_params alone, no keys: none,
        // each said.
        for (text, says) in [
            (
                "litellm_settings: {cache: true, cache_params: {type: s3}}",
                "`s3` caching is not implemented",
            ),
            (
                "litellm_settings: {cache: true, cache_params: {redis_startup_nodes: [{host: a}]}}",
                "Cluster and Sentinel are not",
            ),
            (
                "litellm_settings: {cache_params: {type: redis, host: r1}}",
                "read only with litellm_settings.cache: true",
            ),
        ] {
            let (r, w) = read(text);
            assert_eq!(r, None, "{text}");
            assert!(w.contains(says), "{text}: {w}");
        }
        // Without keys too: the deployments' counts and cooldowns are shared.
        let c = parse("router_settings: {redis_host: r2}", &cat, &env).unwrap();
        assert_eq!(
            c.redis.map(|r| r.redacted()).as_deref(),
            Some("redis://r2:6379/0")
        );
    }
}
