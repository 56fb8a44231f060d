//! Model groups: the deployments serving one public model name, picked in
//! turn. A deployment that just failed (429, 5xx, unreachable) cools down
//! briefly while others serve; `rpm` / `tpm` limits per deployment are
//! counted in one-minute windows.

use llmux_core::Deployment;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a failing deployment is skipped when its group has others.
const COOLDOWN: Duration = Duration::from_secs(5);

pub struct Router {
    /// By model name. Its keys come from the config, so a client's name can
    /// only be looked up, never inserted: a fast hash is safe.
    groups: HashMap<String, ModelGroup, foldhash::fast::RandomState>,
    /// The providers of each model's deployments, each distinct set once.
    provider_sets: Vec<Vec<llmux_core::ProviderKind>>,
    started: Instant,
}

pub struct ModelGroup {
    pub name: String,
    pub deployments: Vec<Arc<DeploymentState>>,
    next: AtomicUsize,
}

impl ModelGroup {
    /// Whether some deployment of the group speaks a provider `of`.
    pub fn serves_any(&self, of: impl Fn(llmux_core::ProviderKind) -> bool) -> bool {
        self.deployments.iter().any(|d| of(d.deployment.provider))
    }
}

pub struct DeploymentState {
    pub deployment: Deployment,
    /// The deployment id as a response header value (`x-litellm-model-id`),
    /// built once.
    pub id_header: Option<http::HeaderValue>,
    /// The deployment's prices, read from its model info once.
    pub prices: Option<llmux_core::cost::Prices>,
    /// Milliseconds since the router started until which it is skipped.
    cooldown_until_ms: AtomicU64,
    window: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    minute: u64,
    requests: u64,
    tokens: u64,
}

/// Why no deployment could take a request right now.
#[derive(Debug, Clone, PartialEq)]
pub enum Unavailable {
    /// Every deployment is at its rpm/tpm limit.
    RateLimited { retry_after: Duration },
}

impl Router {
    pub fn new(deployments: Vec<Deployment>) -> Router {
        let mut groups: HashMap<String, ModelGroup, _> = HashMap::default();
        for d in deployments {
            let state = Arc::new(DeploymentState {
                id_header: http::HeaderValue::from_str(&d.id).ok(),
                prices: llmux_core::cost::Prices::of(&d.info),
                deployment: d,
                cooldown_until_ms: AtomicU64::new(0),
                window: Mutex::new(Window::default()),
            });
            groups
                .entry(state.deployment.model_name.clone())
                .or_insert_with(|| ModelGroup {
                    name: state.deployment.model_name.clone(),
                    deployments: Vec::new(),
                    next: AtomicUsize::new(0),
                })
                .deployments
                .push(state);
        }
        let mut provider_sets: Vec<Vec<llmux_core::ProviderKind>> = Vec::new();
        for g in groups.values() {
            let mut set = Vec::new();
            for d in &g.deployments {
                if !set.contains(&d.deployment.provider) {
                    set.push(d.deployment.provider);
                }
            }
            set.sort_unstable_by_key(|p| p.as_str());
            if !provider_sets.contains(&set) {
                provider_sets.push(set);
            }
        }
        Router {
            groups,
            provider_sets,
            started: Instant::now(),
        }
    }

    /// Whether some deployment of some model speaks a provider `of`.
    pub fn serves_any(&self, of: impl Fn(llmux_core::ProviderKind) -> bool) -> bool {
        self.provider_sets.iter().flatten().any(|&p| of(p))
    }

    /// Whether some model has no deployment that speaks a provider `of`.
    pub fn some_model_lacks(&self, of: impl Fn(llmux_core::ProviderKind) -> bool) -> bool {
        self.provider_sets
            .iter()
            .any(|set| !set.iter().any(|&p| of(p)))
    }

    pub fn group(&self, name: &str) -> Option<&ModelGroup> {
        self.groups.get(name)
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The deployment for attempt `attempt` of a request: the next in turn
    /// that is neither cooling down nor at its limits, skipping `tried`
    /// when another is available.
    pub fn pick(
        &self,
        group: &ModelGroup,
        tried: &[usize],
    ) -> Result<(usize, Arc<DeploymentState>), Unavailable> {
        let n = group.deployments.len();
        let start = group.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let minute = now / 60_000;
        let mut fallback: Option<usize> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let d = &group.deployments[i];
            if !d.has_capacity(minute) {
                continue;
            }
            let cooling = d.cooldown_until_ms.load(Ordering::Relaxed) > now;
            if !cooling && !tried.contains(&i) {
                d.count_request(minute);
                return Ok((i, d.clone()));
            }
            fallback.get_or_insert(i);
        }
        if let Some(i) = fallback {
            // Everyone is cooling down or was tried: better a second try
            // than no answer.
            let d = &group.deployments[i];
            d.count_request(minute);
            return Ok((i, d.clone()));
        }
        let into_minute = Duration::from_millis(now % 60_000);
        Err(Unavailable::RateLimited {
            retry_after: Duration::from_secs(60).saturating_sub(into_minute),
        })
    }

    /// Marks a deployment as failing, so its group's others serve for a while.
    pub fn cool_down(&self, group: &ModelGroup, d: &DeploymentState) {
        if group.deployments.len() > 1 {
            d.cooldown_until_ms.store(
                self.now_ms() + COOLDOWN.as_millis() as u64,
                Ordering::Relaxed,
            );
        }
    }

    /// Counts tokens against the deployment's `tpm`.
    pub fn record_tokens(&self, d: &DeploymentState, tokens: u64) {
        if d.deployment.tpm.is_none() {
            return;
        }
        let minute = self.now_ms() / 60_000;
        if let Ok(mut w) = d.window.lock() {
            w.roll(minute);
            w.tokens += tokens;
        }
    }
}

impl Window {
    fn roll(&mut self, minute: u64) {
        if self.minute != minute {
            *self = Window {
                minute,
                ..Window::default()
            };
        }
    }
}

impl DeploymentState {
    fn has_capacity(&self, minute: u64) -> bool {
        let d = &self.deployment;
        if d.rpm.is_none() && d.tpm.is_none() {
            return true;
        }
        let Ok(mut w) = self.window.lock() else {
            return true;
        };
        w.roll(minute);
        d.rpm.is_none_or(|rpm| w.requests < rpm) && d.tpm.is_none_or(|tpm| w.tokens < tpm)
    }

    fn count_request(&self, minute: u64) {
        if self.deployment.rpm.is_none() {
            return;
        }
        if let Ok(mut w) = self.window.lock() {
            w.roll(minute);
            w.requests += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmux_core::{ModelInfo, ProviderKind};

    fn dep(name: &str, id: &str, rpm: Option<u64>) -> Deployment {
        Deployment {
            id: id.into(),
            model_name: name.into(),
            provider: ProviderKind::OpenAi,
            model: "openai/m".into(),
            upstream_model: "m".into(),
            api_base: None,
            api_key: None,
            api_version: None,
            organization: None,
            extra_headers: vec![],
            extra_body: None,
            timeout: None,
            stream_timeout: None,
            rpm,
            tpm: None,
            info: ModelInfo::default(),
            vertex: None,
            aws: None,
        }
    }

    #[test]
    fn knows_which_providers_serve_some_model_and_which_every_model() {
        let with = |name: &str, id: &str, provider| Deployment {
            provider,
            ..dep(name, id, None)
        };
        let openai = |p| p == ProviderKind::OpenAi;
        let claude = |p| p == ProviderKind::Anthropic;
        // Every model has an OpenAI deployment; one also has Claude.
        let r = Router::new(vec![
            with("gpt", "a", ProviderKind::OpenAi),
            with("mixed", "b", ProviderKind::Anthropic),
            with("mixed", "c", ProviderKind::OpenAi),
        ]);
        assert!(r.serves_any(claude) && r.serves_any(openai));
        assert!(!r.some_model_lacks(openai));
        assert!(r.some_model_lacks(claude));
        // One model is Gemini only.
        let r = Router::new(vec![
            with("gpt", "a", ProviderKind::OpenAi),
            with("gemini", "b", ProviderKind::Gemini),
        ]);
        assert!(r.some_model_lacks(openai));
        assert!(!r.serves_any(claude) && r.some_model_lacks(claude));
    }

    #[test]
    fn balances_a_group_in_turn() {
        let r = Router::new(vec![
            dep("g", "a", None),
            dep("g", "b", None),
            dep("other", "c", None),
        ]);
        let g = r.group("g").unwrap();
        let picks: Vec<String> = (0..4)
            .map(|_| r.pick(g, &[]).unwrap().1.deployment.id.clone())
            .collect();
        assert_eq!(picks, vec!["a", "b", "a", "b"]);
        assert!(r.group("nope").is_none());
    }

    #[test]
    fn a_retry_goes_to_another_deployment_and_failures_cool_down() {
        let r = Router::new(vec![dep("g", "a", None), dep("g", "b", None)]);
        let g = r.group("g").unwrap();
        let (i, first) = r.pick(g, &[]).unwrap();
        let (_, second) = r.pick(g, &[i]).unwrap();
        assert_ne!(first.deployment.id, second.deployment.id);
        r.cool_down(g, &first);
        for _ in 0..4 {
            assert_eq!(
                r.pick(g, &[]).unwrap().1.deployment.id,
                second.deployment.id
            );
        }
    }

    #[test]
    fn a_single_deployment_is_retried_rather_than_refused() {
        let r = Router::new(vec![dep("g", "a", None)]);
        let g = r.group("g").unwrap();
        let (i, d) = r.pick(g, &[]).unwrap();
        r.cool_down(g, &d);
        assert_eq!(r.pick(g, &[i]).unwrap().1.deployment.id, "a");
    }

    #[test]
    fn rpm_limits_move_traffic_then_refuse() {
        let r = Router::new(vec![dep("g", "a", Some(1)), dep("g", "b", Some(1))]);
        let g = r.group("g").unwrap();
        let mut ids: Vec<String> = (0..2)
            .map(|_| r.pick(g, &[]).unwrap().1.deployment.id.clone())
            .collect();
        ids.sort();
        assert_eq!(ids, vec!["a", "b"]);
        assert!(matches!(
            r.pick(g, &[]),
            Err(Unavailable::RateLimited { .. })
        ));
    }
}
