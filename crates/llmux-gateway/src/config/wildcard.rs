//! LiteLLM's wildcard routes: a `model_list` entry whose `model_name` has a
//! `*` serves every model name it matches. What the `*`s matched fills the
//! `*`s of its `litellm_params.model`, in order: `anthropic/*` →
//! `anthropic/*` serves `anthropic/claude-sonnet-4` as
//! `anthropic/claude-sonnet-4`; `my-org/*` → `openai/*` serves
//! `my-org/gpt-4o` as `openai/gpt-4o`; `*` → `*` serves any model whose
//! provider can be told from its name. A model named exactly in the
//! config wins; among patterns the longest wins (LiteLLM's order); a bare
//! name no pattern matches is tried again under its provider's prefix
//! (`claude-sonnet-4` matches `anthropic/*`), as LiteLLM does.
//!
//! The deployment a matched name gets is built exactly as a named entry's
//! is ([`deployments::build`]), so its prices, limits and credentials are
//! the same as if the config had listed it; it keeps its entry's id, so
//! the entry's credentials serve every model it matches.

use super::ConfigError;
use super::deployments::{self, DeploymentParams};
use super::env::Env;
use llmux_core::{ApiError, Catalog, Deployment, ProviderKind};
use std::sync::Arc;
use std::time::Duration;

/// Every wildcard route of a config, most specific first, with what is
/// needed to build their deployments.
#[derive(Debug, Clone, Default)]
pub struct Wildcards {
    routes: Vec<Route>,
    catalog: Arc<Catalog>,
    env: Env,
    /// The timeout a deployment without its own gets (`request_timeout`).
    timeout: Duration,
}

/// One pattern and the entries that serve it (several: load-balanced, as
/// named entries sharing a `model_name` are).
#[derive(Debug, Clone)]
pub struct Route {
    pub pattern: Arc<str>,
    regex: regex::Regex,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    params: DeploymentParams,
    index: usize,
    id: String,
}

/// A name a route matched: the route, and what its `*`s matched.
pub struct Match<'w> {
    pub route: &'w Route,
    segments: Vec<String>,
}

impl Wildcards {
    pub fn new(catalog: Arc<Catalog>, env: Env, timeout: Duration) -> Wildcards {
        Wildcards {
            routes: Vec::new(),
            catalog,
            env,
            timeout,
        }
    }

    /// Adds entry `index` (its `model_name` has a `*`). It is built once
    /// with its `*`s filled, so a mistake in it (a bad key, an Azure entry
    /// without a base) stops the start as a named entry's would. A Vertex
    /// AI key file is read now, once, not at each new model's first request.
    pub fn add(
        &mut self,
        mut params: DeploymentParams,
        index: usize,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        let provider = ProviderKind::split_model(&params.model).map(|(p, _)| p);
        if matches!(provider, None | Some(ProviderKind::VertexAi)) {
            let source = params
                .vertex_credentials
                .clone()
                .or_else(|| self.env.get("GOOGLE_APPLICATION_CREDENTIALS"));
            if let Some(path) = source.filter(|s| !s.trim_start().starts_with('{')) {
                match std::fs::read_to_string(&path) {
                    Ok(json) => params.vertex_credentials = Some(json),
                    // Only a Vertex entry needs it (its probe says why).
                    Err(_) if provider.is_none() => {}
                    Err(e) => {
                        return Err(ConfigError::Invalid(format!(
                            "model_list[{index}] (model_name `{}`): cannot read the Vertex \
                             credentials file {path}: {e}",
                            params.model_name
                        )));
                    }
                }
            }
        }
        if provider.is_none() && params.api_key.is_some() {
            warnings.push(format!(
                "model_list[{index}]: `{}` sets an api_key but no provider: the key goes to \
                 whichever provider a request's model names",
                params.model_name
            ));
        }
        let probe = self.probe(&params, index)?;
        let entry = Entry {
            id: probe.id,
            params,
            index,
        };
        if let Some(r) = self
            .routes
            .iter_mut()
            .find(|r| *r.pattern == entry.params.model_name)
        {
            r.entries.push(entry);
            return Ok(());
        }
        let pattern = entry.params.model_name.as_str();
        let regex = regex::Regex::new(&format!(
            "^{}$",
            regex::escape(pattern).replace(r"\*", "(.*)")
        ))
        .map_err(|e| ConfigError::Invalid(format!("model_list[{index}]: `{pattern}`: {e}")))?;
        self.routes.push(Route {
            pattern: pattern.into(),
            regex,
            entries: vec![entry],
        });
        // Longest pattern first, then the one with more `*`s; else in
        // the config's order.
        self.routes
            .sort_by_key(|r| std::cmp::Reverse((r.pattern.len(), r.pattern.matches('*').count())));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| &*r.pattern)
    }

    /// Each entry's id, the one every deployment it builds carries.
    /// Each entry's id, and whether it sets an `rpm` or `tpm`.
    pub fn entry_limits(&self) -> impl Iterator<Item = (&str, bool)> {
        self.routes.iter().flat_map(|r| {
            r.entries.iter().map(|e| {
                (
                    e.id.as_str(),
                    e.params.rpm.is_some() || e.params.tpm.is_some(),
                )
            })
        })
    }

    pub fn entry_ids(&self) -> impl Iterator<Item = &str> {
        self.routes
            .iter()
            .flat_map(|r| r.entries.iter().map(|e| e.id.as_str()))
    }

    /// Each entry that names a model to check its health with (LiteLLM's
    /// `model_info.health_check_model`): `(pattern, that model, the
    /// entry's id)`.
    pub fn health_checks(&self) -> Vec<(Arc<str>, String, String)> {
        self.routes
            .iter()
            .flat_map(|r| r.entries.iter().map(move |e| (r, e)))
            .filter_map(|(r, e)| {
                let model = e.params.model_info.get("health_check_model")?.as_str()?;
                Some((r.pattern.clone(), model.to_owned(), e.id.clone()))
            })
            .collect()
    }

    /// Each entry as `(pattern, litellm model, api_base)`, in match order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, Option<&str>)> {
        self.routes.iter().flat_map(|r| {
            r.entries.iter().map(|e| {
                (
                    &*r.pattern,
                    e.params.model.as_str(),
                    e.params.api_base.as_deref(),
                )
            })
        })
    }

    /// Each route's providers, or `None` where a route's provider is
    /// known only per request (its model has no provider prefix: `*`).
    pub fn providers(&self) -> impl Iterator<Item = Option<Vec<ProviderKind>>> + '_ {
        self.routes.iter().map(|r| {
            r.entries
                .iter()
                .map(|e| ProviderKind::split_model(&e.params.model).map(|(p, _)| p))
                .collect()
        })
    }

    /// The route serving `model`, if one does: the first pattern that
    /// matches it, else the first that matches it under its provider's
    /// prefix.
    pub fn find(&self, model: &str) -> Option<Match<'_>> {
        let matched = |name: &str| {
            self.routes.iter().find_map(|route| {
                let caps = route.regex.captures(name)?;
                let segments = caps
                    .iter()
                    .skip(1)
                    .map(|m| m.map_or(String::new(), |m| m.as_str().to_owned()))
                    .collect();
                Some(Match { route, segments })
            })
        };
        if let Some(m) = matched(model) {
            return Some(m);
        }
        if ProviderKind::split_model(model).is_some() {
            return None;
        }
        let (provider, _) = deployments::resolve_provider(model, &self.catalog)?;
        matched(&format!("{}/{model}", provider.as_str())).or_else(|| {
            // Vertex AI serves Gemini's models too (LiteLLM names bare
            // Gemini models Vertex AI's).
            (provider == ProviderKind::Gemini)
                .then(|| matched(&format!("vertex_ai/{model}")))
                .flatten()
        })
    }

    /// The deployments serving `model` through the route `m` matched:
    /// those of its entries that can (one whose provider the name does
    /// not tell cannot); a 400 saying why when none can.
    pub fn deployments(&self, m: &Match<'_>, model: &str) -> Result<Vec<Deployment>, ApiError> {
        let mut out = Vec::new();
        let mut first_err = None;
        for e in &m.route.entries {
            let mut p = e.params.clone();
            p.model = fill(&e.params.model, &m.segments, model);
            p.model_name = model.to_owned();
            match self.build(p, e) {
                Ok(d) => out.push(d),
                Err(err) => {
                    first_err.get_or_insert(err);
                }
            }
        }
        match first_err {
            Some(err) if out.is_empty() => {
                // The reason without the entry's place in the file.
                let err = err.to_string();
                let why = err.split_once("): ").map_or(err.as_str(), |(_, why)| why);
                Err(ApiError::bad_request(format!(
                    "model `{model}` matches `{}`, but {why}",
                    m.route.pattern
                )))
            }
            _ => Ok(out),
        }
    }

    /// One deployment per model the catalog knows that a route serves, by
    /// the name a client would ask for it: for `anthropic/*`, every
    /// Anthropic model as `anthropic/<id>`; for `my-org/*` → `openai/*`,
    /// every OpenAI model as `my-org/<id>`. Routes whose provider is only
    /// known per request (`*`) list none, as LiteLLM lists none.
    pub fn known(&self) -> Vec<Deployment> {
        let mut out: Vec<Deployment> = Vec::new();
        for route in &self.routes {
            if route.pattern.matches('*').count() != 1 {
                continue;
            }
            for e in &route.entries {
                let template = e.params.model.as_str();
                let Some((before, after)) = template.split_once('*') else {
                    continue;
                };
                if after.contains('*') {
                    continue;
                }
                let Some((provider, id_start)) = ProviderKind::split_model(before) else {
                    continue;
                };
                // Vertex AI serves the catalog's Gemini models.
                let source = match provider {
                    ProviderKind::VertexAi => ProviderKind::Gemini,
                    p => p,
                };
                for model in self.catalog.for_provider(source) {
                    let id = model.upstream.as_str();
                    let Some(middle) = id
                        .strip_prefix(id_start)
                        .and_then(|rest| rest.strip_suffix(after))
                    else {
                        continue;
                    };
                    let name = route.pattern.replacen('*', middle, 1);
                    if out.iter().any(|d| d.model_name == name) {
                        continue;
                    }
                    // Listed only where a request for it would go.
                    let Some(m) = self.find(&name).filter(|m| std::ptr::eq(m.route, route)) else {
                        continue;
                    };
                    if let Ok(ds) = self.deployments(&m, &name) {
                        out.extend(ds);
                    }
                }
            }
        }
        out
    }

    /// The deployments that stand for each entry when credentials are set
    /// up (by entry id): the entry built with its `*`s filled, and for an
    /// entry whose provider is known only per request, a Bedrock and a
    /// Vertex AI one too, where the entry's keys or the environment have
    /// their credentials.
    pub fn credential_probes(&self) -> Vec<Deployment> {
        let mut out = Vec::new();
        for e in self.routes.iter().flat_map(|r| &r.entries) {
            if let Ok(d) = self.probe(&e.params, e.index) {
                out.push(d);
            }
            if ProviderKind::split_model(&e.params.model).is_none() {
                for model in ["bedrock/probe", "vertex_ai/probe"] {
                    let mut p = e.params.clone();
                    p.model = model.to_owned();
                    if let Ok(d) = self.build(p, e) {
                        out.push(d);
                    }
                }
            }
        }
        out
    }

    /// The entry built with `probe` for its `*`s; an entry whose provider
    /// is known only per request is checked as an OpenAI one (its key,
    /// base and headers are checked the same for every provider).
    fn probe(&self, params: &DeploymentParams, index: usize) -> Result<Deployment, ConfigError> {
        let mut p = params.clone();
        p.model = params.model.replace('*', "probe");
        if ProviderKind::split_model(&p.model).is_none() {
            p.model = format!("openai/{}", p.model);
        }
        let mut d = deployments::build(p, index, &self.catalog, &self.env)?;
        // The entry's id: from its own `model_info.id`, or from the entry
        // as written (not from the probe).
        if params.model_info.get("id").is_none() {
            d.id = deployments::stable_id(params, index);
        }
        Ok(d)
    }

    fn build(&self, p: DeploymentParams, e: &Entry) -> Result<Deployment, ConfigError> {
        let mut d = deployments::build(p, e.index, &self.catalog, &self.env)?;
        d.id = e.id.clone();
        d.info.0.insert("id".into(), e.id.clone().into());
        d.timeout = d.timeout.or(Some(self.timeout));
        Ok(d)
    }
}

/// A route's `litellm_params.model` with its `*`s filled by what the
/// pattern's `*`s matched, in order (LiteLLM's rule): a model without `*`
/// is used as written, and one with fewer `*`s than were matched takes
/// the requested name itself.
fn fill(template: &str, segments: &[String], requested: &str) -> String {
    let stars = template.matches('*').count();
    if stars == 0 {
        return template.to_owned();
    }
    if segments.len() > stars {
        return requested.to_owned();
    }
    let mut out = template.to_owned();
    for s in segments {
        out = out.replacen('*', s, 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wildcards(entries: &[(&str, &str)]) -> Wildcards {
        let mut w = Wildcards::new(
            Arc::new(Catalog::builtin().unwrap()),
            Env::fixed(&[("ANTHROPIC_API_KEY", "sk-ant"), ("OPENAI_API_KEY", "sk-oa")]),
            Duration::from_secs(600),
        );
        for (i, (name, model)) in entries.iter().enumerate() {
            let p = DeploymentParams {
                model_name: (*name).into(),
                model: (*model).into(),
                ..Default::default()
            };
            w.add(p, i, &mut Vec::new()).unwrap();
        }
        w
    }

    fn served(w: &Wildcards, model: &str) -> Option<(String, ProviderKind, String)> {
        let m = w.find(model)?;
        let d = w.deployments(&m, model).unwrap().remove(0);
        Some((m.route.pattern.to_string(), d.provider, d.upstream_model))
    }

    #[test]
    fn a_pattern_fills_its_models_stars_and_the_longest_pattern_wins() {
        let w = wildcards(&[
            ("*", "*"),
            ("anthropic/*", "anthropic/*"),
            ("my-org/*", "openai/*"),
            ("fo::*::static::*", "openai/fo::*::static::*"),
            (
                "anthropic/claude-opus-*",
                "openrouter/anthropic/claude-opus-*",
            ),
        ]);
        let got = |m| served(&w, m).unwrap();
        assert_eq!(
            got("anthropic/claude-sonnet-4"),
            (
                "anthropic/*".into(),
                ProviderKind::Anthropic,
                "claude-sonnet-4-20250514".into()
            )
        );
        assert_eq!(
            got("anthropic/claude-opus-4-1"),
            (
                "anthropic/claude-opus-*".into(),
                ProviderKind::OpenRouter,
                "anthropic/claude-opus-4-1".into()
            )
        );
        assert_eq!(
            got("my-org/gpt-4o"),
            ("my-org/*".into(), ProviderKind::OpenAi, "gpt-4o".into())
        );
        assert_eq!(
            got("fo::hi::static::there"),
            (
                "fo::*::static::*".into(),
                ProviderKind::OpenAi,
                "fo::hi::static::there".into()
            )
        );
        // `*` serves what no longer pattern does, by the provider its
        // name tells.
        assert_eq!(
            got("groq/llama3-8b"),
            ("*".into(), ProviderKind::Groq, "llama3-8b-8192".into())
        );
        assert_eq!(
            got("gpt-4o-mini"),
            ("*".into(), ProviderKind::OpenAi, "gpt-4o-mini".into())
        );
    }

    #[test]
    fn a_bare_name_is_tried_under_its_providers_prefix() {
        let w = wildcards(&[("anthropic/*", "anthropic/*")]);
        let (route, provider, model) = served(&w, "claude-sonnet-4-20250514").unwrap();
        assert_eq!(route, "anthropic/*");
        assert_eq!(provider, ProviderKind::Anthropic);
        assert_eq!(model, "claude-sonnet-4-20250514");
        // The served name is the one asked for.
        let m = w.find("claude-sonnet-4-20250514").unwrap();
        let d = &w.deployments(&m, "claude-sonnet-4-20250514").unwrap()[0];
        assert_eq!(d.model_name, "claude-sonnet-4-20250514");
        // No pattern, no provider: not served.
        assert!(w.find("gpt-4o").is_none());
        assert!(w.find("openai/gpt-4o").is_none());
        assert!(w.find("no-such-model").is_none());
    }

    #[test]
    fn a_name_whose_provider_cannot_be_told_is_a_clear_400() {
        let w = wildcards(&[("*", "*")]);
        let m = w.find("mystery-model").unwrap();
        let e = w.deployments(&m, "mystery-model").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.contains("`mystery-model` matches `*`"),
            "{}",
            e.message
        );
        assert!(e.message.contains("provider prefix"), "{}", e.message);
    }

    #[test]
    fn matched_deployments_keep_their_entrys_id_credentials_and_prices() {
        let w = wildcards(&[("anthropic/*", "anthropic/*")]);
        let m = w.find("anthropic/claude-sonnet-4").unwrap();
        let a = w
            .deployments(&m, "anthropic/claude-sonnet-4")
            .unwrap()
            .remove(0);
        let m = w.find("anthropic/claude-3-5-sonnet").unwrap();
        let b = w
            .deployments(&m, "anthropic/claude-3-5-sonnet")
            .unwrap()
            .remove(0);
        assert_eq!(a.id, b.id);
        assert_eq!(a.info.0["id"], a.id.as_str());
        assert_eq!(a.api_key.as_ref().unwrap().expose(), "sk-ant");
        assert!(a.info.f64("input_cost_per_token").unwrap() > 0.0);
        assert_eq!(a.timeout, Some(Duration::from_secs(600)));
    }

    #[test]
    fn known_models_are_listed_by_the_names_that_route_to_them() {
        let w = wildcards(&[
            ("anthropic/*", "anthropic/*"),
            (
                "anthropic/claude-opus-*",
                "openrouter/anthropic/claude-opus-*",
            ),
            ("team/*", "groq/*"),
            ("*", "*"),
        ]);
        let known = w.known();
        let names: Vec<&str> = known.iter().map(|d| d.model_name.as_str()).collect();
        assert!(
            names.contains(&"anthropic/claude-sonnet-4-20250514"),
            "{names:?}"
        );
        assert!(names.contains(&"team/llama3-8b-8192"), "{names:?}");
        // Every listed name is served by the route that listed it.
        for d in &known {
            let m = w.find(&d.model_name).unwrap();
            let again = w.deployments(&m, &d.model_name).unwrap().remove(0);
            assert_eq!(
                (again.provider, &again.upstream_model),
                (d.provider, &d.upstream_model)
            );
        }
        // No duplicates; nothing for `*`.
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        assert!(known.iter().all(|d| d.provider != ProviderKind::OpenAi));
    }

    #[test]
    fn fill_follows_litellms_rule() {
        let segs = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(fill("openai/*", &segs(&["x"]), "r"), "openai/x");
        assert_eq!(fill("openai/gpt-4o", &segs(&["x"]), "r"), "openai/gpt-4o");
        assert_eq!(fill("openai/*", &segs(&["a", "b"]), "my/a/b"), "my/a/b");
        assert_eq!(fill("a/*-*", &segs(&["x", "y"]), "r"), "a/x-y");
    }

    #[test]
    fn a_broken_entry_stops_the_start() {
        let mut w = wildcards(&[]);
        let p = DeploymentParams {
            model_name: "azure/*".into(),
            model: "azure/*".into(),
            ..Default::default()
        };
        let e = w.add(p, 3, &mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("model_list[3]") && e.contains("api_base"), "{e}");
    }
}
