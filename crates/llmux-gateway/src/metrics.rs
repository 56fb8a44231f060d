//! Prometheus metrics at `GET /metrics`, named and labelled as LiteLLM's
//! `prometheus` callback names them, so its dashboards and alerts read
//! llmux unchanged. Off unless the config lists the callback; when off, a
//! request pays one `None` check.
//!
//! Counters are named with the `_total` suffix the Python client adds to
//! LiteLLM's counters. Label values that a client chooses (the model it
//! asked for) are kept to [`MAX_MODEL_LABELS`] distinct values, the rest
//! counted as `other`, so a client cannot grow the series without bound.

use crate::router::{DeploymentState, Router};
use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::RwLock;
use std::time::Duration;

/// Distinct model names kept as labels (`requested_model`, and the model
/// names of deployments, which a wildcard route takes from the client).
pub const MAX_MODEL_LABELS: usize = 1000;

/// A model name longer than this is counted as `other`.
const MAX_MODEL_LABEL_BYTES: usize = 256;

/// LiteLLM's latency buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
    5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 15.0, 20.0, 25.0, 30.0, 60.0, 120.0, 180.0,
    240.0, 300.0,
];

const DEPLOYMENT: &[&str] = &["litellm_model_name", "model_id", "api_base", "api_provider"];

/// Who a request came from, as LiteLLM labels it: a virtual key's hash,
/// alias, team and user (all empty for the master key, whose hash is not
/// shown).
const KEY: &[&str] = &["hashed_api_key", "api_key_alias", "team", "user"];

/// The key labels' values for a request.
pub type KeyLabels<'a> = [&'a str; 4];

/// The master key's, or no key's.
pub const NO_KEY: KeyLabels<'static> = ["", "", "", ""];

/// A virtual key's labels.
pub fn key_labels(s: &crate::keys::KeySettings) -> KeyLabels<'_> {
    [
        &s.token,
        s.key_alias.as_deref().unwrap_or(""),
        s.team_id.as_deref().unwrap_or(""),
        s.user_id.as_deref().unwrap_or(""),
    ]
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    failed_requests: IntCounterVec,
    request_latency: HistogramVec,
    api_latency: HistogramVec,
    deployment_requests: IntCounterVec,
    deployment_successes: IntCounterVec,
    deployment_failures: IntCounterVec,
    cooled_down: IntCounterVec,
    deployment_state: IntGaugeVec,
    input_tokens: IntCounterVec,
    output_tokens: IntCounterVec,
    total_tokens: IntCounterVec,
    spend: CounterVec,
    time_to_first_token: HistogramVec,
    fallbacks_ok: IntCounterVec,
    fallbacks_failed: IntCounterVec,
    remaining_budget: prometheus::GaugeVec,
    max_budget: prometheus::GaugeVec,
    /// Model names used as labels, at most `max_models`.
    models: RwLock<HashSet<String>>,
    max_models: usize,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = registry.register(Box::new(c.clone()));
    c
}

/// The key labels, then `rest`.
fn keyed(rest: &[&'static str]) -> Vec<&'static str> {
    KEY.iter().chain(rest).copied().collect()
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::GaugeVec {
    let g = prometheus::GaugeVec::new(Opts::new(name, help), &["hashed_api_key", "api_key_alias"])
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = registry.register(Box::new(g.clone()));
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    let h = HistogramVec::new(opts, labels).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = registry.register(Box::new(h.clone()));
    h
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::with_model_cap(MAX_MODEL_LABELS)
    }

    fn with_model_cap(max_models: usize) -> Metrics {
        let r = Registry::new();
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            DEPLOYMENT
                .iter()
                .copied()
                .chain(extra.iter().copied())
                .collect()
        };
        let spend = CounterVec::new(
            Opts::new("litellm_spend_metric_total", "Spend in USD"),
            &keyed(&["model", "requested_model"]),
        )
        .unwrap_or_else(|e| unreachable!("metric spend: {e}"));
        let _ = r.register(Box::new(spend.clone()));
        let deployment_state = IntGaugeVec::new(
            Opts::new(
                "litellm_deployment_state",
                "The deployment's state: 0 healthy, 2 resting after failures (cooling down)",
            ),
            DEPLOYMENT,
        )
        .unwrap_or_else(|e| unreachable!("metric deployment_state: {e}"));
        let _ = r.register(Box::new(deployment_state.clone()));
        Metrics {
            requests: counter(
                &r,
                "litellm_proxy_total_requests_metric_total",
                "Requests to the proxy, by the model asked for and the status answered",
                &keyed(&["requested_model", "status_code"]),
            ),
            failed_requests: counter(
                &r,
                "litellm_proxy_failed_requests_metric_total",
                "Requests the proxy answered with an error",
                &keyed(&["requested_model", "exception_status"]),
            ),
            request_latency: histogram(
                &r,
                "litellm_request_total_latency_metric",
                "Seconds from a request's arrival to its answer's head (a stream's first byte)",
                &["requested_model"],
            ),
            api_latency: histogram(
                &r,
                "litellm_llm_api_latency_metric",
                "Seconds an upstream call took to answer (a stream: to its first byte)",
                &["model", "model_id", "requested_model"],
            ),
            deployment_requests: counter(
                &r,
                "litellm_deployment_total_requests_total",
                "Calls to a deployment",
                &with(&["requested_model"]),
            ),
            deployment_successes: counter(
                &r,
                "litellm_deployment_success_responses_total",
                "Calls a deployment answered",
                &with(&["requested_model"]),
            ),
            deployment_failures: counter(
                &r,
                "litellm_deployment_failure_responses_total",
                "Calls a deployment failed",
                &with(&["requested_model", "exception_status"]),
            ),
            cooled_down: counter(
                &r,
                "litellm_deployment_cooled_down_total",
                "Times a deployment was set to rest after failing",
                &with(&["exception_status"]),
            ),
            input_tokens: counter(
                &r,
                "litellm_input_tokens_metric_total",
                "Prompt tokens",
                &keyed(&["model", "requested_model"]),
            ),
            output_tokens: counter(
                &r,
                "litellm_output_tokens_metric_total",
                "Completion tokens",
                &keyed(&["model", "requested_model"]),
            ),
            total_tokens: counter(
                &r,
                "litellm_total_tokens_metric_total",
                "Prompt and completion tokens",
                &keyed(&["model", "requested_model"]),
            ),
            time_to_first_token: histogram(
                &r,
                "litellm_llm_api_time_to_first_token_metric",
                "Seconds a streamed upstream call took to its first byte",
                &["model", "model_id", "requested_model"],
            ),
            fallbacks_ok: counter(
                &r,
                "litellm_deployment_successful_fallbacks_total",
                "Fallbacks that answered, by the model that failed and the one that answered",
                &["requested_model", "fallback_model", "exception_status"],
            ),
            fallbacks_failed: counter(
                &r,
                "litellm_deployment_failed_fallbacks_total",
                "Fallbacks that failed too",
                &["requested_model", "fallback_model", "exception_status"],
            ),
            remaining_budget: gauge(
                &r,
                "litellm_remaining_api_key_budget_metric",
                "A virtual key's budget left, USD (keys with a max_budget)",
            ),
            max_budget: gauge(
                &r,
                "litellm_api_key_max_budget_metric",
                "A virtual key's max_budget, USD",
            ),
            spend,
            deployment_state,
            registry: r,
            models: RwLock::new(HashSet::new()),
            max_models,
        }
    }

    /// A deployment's labels: its model as configured (capped, as a
    /// wildcard route's comes from the client), id, base URL without
    /// credentials, and provider; built at its first call.
    fn deployment_labels<'d>(&self, d: &'d DeploymentState) -> &'d [String; 4] {
        d.metric_labels.get_or_init(|| {
            let dep = &d.deployment;
            [
                self.model_label(&dep.model).to_owned(),
                dep.id.clone(),
                dep.api_base
                    .as_deref()
                    .map(crate::routes::public_url)
                    .unwrap_or_default(),
                dep.provider.as_str().to_owned(),
            ]
        })
    }

    /// The label for a model name: itself while fewer than the cap of
    /// names have been seen (and it is not over-long), else `other`, so a
    /// client cannot grow the series without bound.
    fn model_label<'a>(&self, name: &'a str) -> &'a str {
        if name.len() > MAX_MODEL_LABEL_BYTES {
            return "other";
        }
        if self.models.read().is_ok_and(|seen| seen.contains(name)) {
            return name;
        }
        let Ok(mut seen) = self.models.write() else {
            return "other";
        };
        if seen.contains(name) || seen.len() < self.max_models {
            seen.insert(name.to_owned());
            return name;
        }
        "other"
    }

    /// A request the proxy answered: its status, and for an answer (not a
    /// stream, whose end is not waited for) how long it took.
    pub fn request(
        &self,
        requested_model: &str,
        status: u16,
        stream: bool,
        took: Duration,
        key: KeyLabels<'_>,
    ) {
        let model = self.model_label(requested_model);
        let status = status_label(status);
        let [k0, k1, k2, k3] = key;
        let labels = [k0, k1, k2, k3, model, &status];
        self.requests.with_label_values(&labels).inc();
        if !status.starts_with('2') {
            self.failed_requests.with_label_values(&labels).inc();
        } else if !stream {
            self.request_latency
                .with_label_values(&[model])
                .observe(took.as_secs_f64());
        }
    }

    /// One call to a deployment: answered (a whole answer, or a stream's
    /// head), or failed with `failed`.
    pub fn call(
        &self,
        d: &DeploymentState,
        requested_model: &str,
        failed: Option<u16>,
        stream: bool,
        took: Duration,
    ) {
        let model = self.model_label(requested_model);
        let [name, id, base, provider] = self.deployment_labels(d);
        let labels = [name.as_str(), id, base, provider, model];
        self.deployment_requests.with_label_values(&labels).inc();
        match failed {
            None => {
                self.deployment_successes.with_label_values(&labels).inc();
                let latency = if stream {
                    &self.time_to_first_token
                } else {
                    &self.api_latency
                };
                latency
                    .with_label_values(&[name.as_str(), id, model])
                    .observe(took.as_secs_f64());
            }
            Some(status) => {
                let [a, b, c, d, e] = labels;
                self.deployment_failures
                    .with_label_values(&[a, b, c, d, e, &status_label(status)])
                    .inc();
            }
        }
    }

    /// A fallback from `requested_model`, which failed with `status`, to
    /// `fallback_model`: answered, or not.
    pub fn fallback(&self, requested_model: &str, fallback_model: &str, status: u16, ok: bool) {
        let labels = [
            self.model_label(requested_model),
            self.model_label(fallback_model),
            &status_label(status),
        ];
        let counter = if ok {
            &self.fallbacks_ok
        } else {
            &self.fallbacks_failed
        };
        counter.with_label_values(&labels).inc();
    }

    /// A deployment set to rest after failing with `status`.
    pub fn cooled_down(&self, d: &DeploymentState, status: u16) {
        let [name, id, base, provider] = self.deployment_labels(d);
        self.cooled_down
            .with_label_values(&[name.as_str(), id, base, provider, &status_label(status)])
            .inc();
    }

    /// Tokens and spend of an answer.
    pub fn usage(
        &self,
        d: &DeploymentState,
        input: u64,
        output: u64,
        cost: Option<f64>,
        key: KeyLabels<'_>,
    ) {
        let model = self.deployment_labels(d)[0].as_str();
        let requested = self.model_label(&d.deployment.model_name);
        let [k0, k1, k2, k3] = key;
        let labels = [k0, k1, k2, k3, model, requested];
        self.input_tokens.with_label_values(&labels).inc_by(input);
        self.output_tokens.with_label_values(&labels).inc_by(output);
        self.total_tokens
            .with_label_values(&labels)
            .inc_by(input + output);
        if let Some(c) = cost.filter(|c| c.is_finite() && *c > 0.0) {
            self.spend.with_label_values(&labels).inc_by(c);
        }
    }

    /// The exposition text: every metric, the deployments' states read now.
    pub fn render(&self, router: &Router, keys: Option<&crate::keys::Keys>) -> Vec<u8> {
        // Keys' budgets as they are now; a deleted key's series goes.
        self.remaining_budget.reset();
        self.max_budget.reset();
        for s in keys.map(|k| k.all()).unwrap_or_default() {
            let Some(max) = s.max_budget else {
                continue;
            };
            let spent = keys
                .and_then(|k| k.get(&s.token))
                .map_or(s.spend, |e| e.spend().0);
            let labels = [s.token.as_str(), s.key_alias.as_deref().unwrap_or("")];
            self.max_budget.with_label_values(&labels).set(max);
            self.remaining_budget
                .with_label_values(&labels)
                .set(max - spent);
        }
        for d in router.listed() {
            let [name, id, base, provider] = self.deployment_labels(d);
            let state = if router.resting(d) { 2 } else { 0 };
            self.deployment_state
                .with_label_values(&[name.as_str(), id, base, provider])
                .set(state);
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// A status as a label, without allocating for the common ones.
fn status_label(status: u16) -> Cow<'static, str> {
    Cow::Borrowed(match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        408 => "408",
        413 => "413",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return Cow::Owned(other.to_string()),
    })
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmux_core::ProviderKind;

    fn text(m: &Metrics) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn state(model: &str) -> std::sync::Arc<DeploymentState> {
        let d = llmux_core::Deployment::new("w/*", ProviderKind::OpenAi, model);
        crate::router::Router::new(vec![d]).listed()[0].clone()
    }

    #[test]
    fn client_chosen_names_are_capped() {
        let m = Metrics::with_model_cap(3);
        for i in 0..5 {
            m.request(
                &format!("model-{i}"),
                200,
                false,
                Duration::from_millis(1),
                NO_KEY,
            );
        }
        // A name seen before the cap keeps its label; a long one never gets one.
        m.request("model-0", 500, false, Duration::from_millis(1), NO_KEY);
        m.request(
            &"x".repeat(300),
            200,
            false,
            Duration::from_millis(1),
            NO_KEY,
        );
        let t = text(&m);
        let line = |l: &str| t.lines().any(|x| x == l);
        assert!(
            line(
                r#"litellm_proxy_total_requests_metric_total{api_key_alias="",hashed_api_key="",requested_model="other",status_code="200",team="",user=""} 3"#
            ),
            "{t}"
        );
        assert!(
            line(
                r#"litellm_proxy_total_requests_metric_total{api_key_alias="",hashed_api_key="",requested_model="model-2",status_code="200",team="",user=""} 1"#
            ),
            "{t}"
        );
        assert!(!t.contains("model-3"), "{t}");
        assert!(
            line(
                r#"litellm_proxy_failed_requests_metric_total{api_key_alias="",exception_status="500",hashed_api_key="",requested_model="model-0",team="",user=""} 1"#
            ),
            "{t}"
        );
        // Latency is an answer's: not a failure's.
        assert!(
            line(r#"litellm_request_total_latency_metric_count{requested_model="model-0"} 1"#),
            "{t}"
        );
    }

    #[test]
    fn deployment_models_from_wildcard_routes_are_capped_too() {
        let m = Metrics::with_model_cap(2);
        // A wildcard route's deployment takes its model from the client.
        for i in 0..4 {
            let d = state(&format!("random-{i}"));
            m.call(&d, "w/*", Some(404), false, Duration::from_millis(1));
            m.usage(&d, 1, 1, Some(0.5), NO_KEY);
        }
        let t = text(&m);
        assert!(!t.contains("random-2") && !t.contains("random-3"), "{t}");
        assert!(t.contains(r#"litellm_model_name="other""#), "{t}");
        // The first name seen, the route's own, and one model fill the cap.
        assert!(
            t.contains(
                r#"litellm_spend_metric_total{api_key_alias="",hashed_api_key="",model="openai/random-0",requested_model="w/*",team="",user=""} 0.5"#
            ),
            "{t}"
        );
        assert!(
            t.contains(r#"litellm_spend_metric_total{api_key_alias="",hashed_api_key="",model="other",requested_model="w/*",team="",user=""} 1.5"#),
            "{t}"
        );
    }

    #[test]
    fn fallbacks_are_counted_by_outcome() {
        let m = Metrics::new();
        m.fallback("gpt-4o", "claude", 503, false);
        m.fallback("gpt-4o", "gemini", 503, true);
        let t = text(&m);
        assert!(t.contains(r#"litellm_deployment_failed_fallbacks_total{exception_status="503",fallback_model="claude",requested_model="gpt-4o"} 1"#), "{t}");
        assert!(t.contains(r#"litellm_deployment_successful_fallbacks_total{exception_status="503",fallback_model="gemini",requested_model="gpt-4o"} 1"#), "{t}");
    }

    #[test]
    fn a_stream_counts_its_first_byte_not_its_length() {
        let m = Metrics::new();
        let d = state("openai/gpt-4o");
        m.call(&d, "gpt-4o", None, true, Duration::from_millis(20));
        m.request("gpt-4o", 200, true, Duration::from_millis(25), NO_KEY);
        let t = text(&m);
        assert!(
            t.contains("litellm_llm_api_time_to_first_token_metric_count"),
            "{t}"
        );
        assert!(!t.contains("litellm_llm_api_latency_metric_count"), "{t}");
        assert!(
            !t.contains("litellm_request_total_latency_metric_count"),
            "{t}"
        );
    }
}
