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
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// Distinct `requested_model` values kept as labels.
pub const MAX_MODEL_LABELS: usize = 1000;

/// LiteLLM's latency buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
    5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 15.0, 20.0, 25.0, 30.0, 60.0, 120.0, 180.0,
    240.0, 300.0,
];

const DEPLOYMENT: &[&str] = &["litellm_model_name", "model_id", "api_base", "api_provider"];

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
    /// `requested_model` values seen, at most [`MAX_MODEL_LABELS`].
    models: Mutex<HashSet<String>>,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = registry.register(Box::new(c.clone()));
    c
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    let h = HistogramVec::new(opts, labels).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = registry.register(Box::new(h.clone()));
    h
}

/// The deployment's labels: its model as configured, id, base URL without
/// credentials, and provider; built once.
fn deployment_labels(d: &DeploymentState) -> &[String; 4] {
    d.metric_labels.get_or_init(|| {
        let dep = &d.deployment;
        [
            dep.model.clone(),
            dep.id.clone(),
            dep.api_base
                .as_deref()
                .map(crate::routes::public_url)
                .unwrap_or_default(),
            dep.provider.as_str().to_owned(),
        ]
    })
}

impl Metrics {
    pub fn new() -> Metrics {
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
            &["model", "requested_model"],
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
                &["requested_model", "status_code"],
            ),
            failed_requests: counter(
                &r,
                "litellm_proxy_failed_requests_metric_total",
                "Requests the proxy answered with an error",
                &["requested_model", "exception_status"],
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
                &["model", "requested_model"],
            ),
            output_tokens: counter(
                &r,
                "litellm_output_tokens_metric_total",
                "Completion tokens",
                &["model", "requested_model"],
            ),
            total_tokens: counter(
                &r,
                "litellm_total_tokens_metric_total",
                "Prompt and completion tokens",
                &["model", "requested_model"],
            ),
            spend,
            deployment_state,
            registry: r,
            models: Mutex::new(HashSet::new()),
        }
    }

    /// The `requested_model` label for `name`: itself while fewer than
    /// [`MAX_MODEL_LABELS`] names have been seen, else `other`.
    fn model_label<'a>(&self, name: &'a str) -> &'a str {
        let Ok(mut seen) = self.models.lock() else {
            return "other";
        };
        if seen.contains(name) {
            return name;
        }
        if seen.len() < MAX_MODEL_LABELS {
            seen.insert(name.to_owned());
            return name;
        }
        "other"
    }

    /// A request the proxy answered: its status and how long the answer
    /// took to start.
    pub fn request(&self, requested_model: &str, status: u16, took: Duration) {
        let model = self.model_label(requested_model);
        let status = status.to_string();
        self.requests.with_label_values(&[model, &status]).inc();
        if status.as_bytes()[0] >= b'4' {
            self.failed_requests
                .with_label_values(&[model, &status])
                .inc();
        }
        self.request_latency
            .with_label_values(&[model])
            .observe(took.as_secs_f64());
    }

    /// One call to a deployment: answered, or failed with `failed`.
    pub fn call(
        &self,
        d: &DeploymentState,
        requested_model: &str,
        failed: Option<u16>,
        took: Duration,
    ) {
        let model = self.model_label(requested_model);
        let [name, id, base, provider] = deployment_labels(d);
        let labels = [name.as_str(), id, base, provider, model];
        self.deployment_requests.with_label_values(&labels).inc();
        match failed {
            None => {
                self.deployment_successes.with_label_values(&labels).inc();
                self.api_latency
                    .with_label_values(&[name.as_str(), id, model])
                    .observe(took.as_secs_f64());
            }
            Some(status) => {
                let status = status.to_string();
                let [a, b, c, d, e] = labels;
                self.deployment_failures
                    .with_label_values(&[a, b, c, d, e, &status])
                    .inc();
            }
        }
    }

    /// A deployment set to rest after failing with `status`.
    pub fn cooled_down(&self, d: &DeploymentState, status: u16) {
        let [name, id, base, provider] = deployment_labels(d);
        let status = status.to_string();
        self.cooled_down
            .with_label_values(&[name.as_str(), id, base, provider, &status])
            .inc();
    }

    /// Tokens and spend of an answer.
    pub fn usage(&self, d: &DeploymentState, input: u64, output: u64, cost: Option<f64>) {
        let model = d.deployment.model.as_str();
        let requested = self.model_label(&d.deployment.model_name);
        let labels = [model, requested];
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
    pub fn render(&self, router: &Router) -> Vec<u8> {
        for d in router.listed() {
            let [name, id, base, provider] = deployment_labels(d);
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

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Metrics) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn client_chosen_names_are_capped() {
        let m = Metrics::new();
        for i in 0..MAX_MODEL_LABELS + 5 {
            m.request(&format!("model-{i}"), 200, Duration::from_millis(1));
        }
        // Names seen before the cap keep their label.
        m.request("model-0", 500, Duration::from_millis(1));
        let t = text(&m);
        assert!(t.contains(r#"litellm_proxy_total_requests_metric_total{requested_model="other",status_code="200"} 5"#), "{t}");
        assert!(!t.contains(&format!("model-{}\"", MAX_MODEL_LABELS)));
        assert!(t.contains(r#"litellm_proxy_failed_requests_metric_total{exception_status="500",requested_model="model-0"} 1"#));
        assert!(t.contains("litellm_request_total_latency_metric_bucket"));
    }
}
