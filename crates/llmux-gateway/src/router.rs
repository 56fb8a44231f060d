//! Model groups: the deployments serving one public model name, picked in
//! turn. A deployment that just failed (429, 5xx, unreachable) cools down
//! briefly while others serve; `rpm` / `tpm` limits per deployment are
//! counted in one-minute windows. A name the config does not list may be
//! served by a wildcard route (`anthropic/*`): its group is built at its
//! first request and kept, so its cooldowns and limits last like a named
//! model's. With Redis, replicas tell each other their counts and
//! cooldowns every second ([`crate::router_sync`]); windows are calendar
//! minutes so that theirs line up.

use crate::config::{Cooldowns, RoutingStrategy, Wildcards};
use llmux_core::{ApiError, Deployment, ProviderKind};
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long a response time is kept, routing by latency, without a new one.
const LATENCY_KEPT_MS: u64 = 60_000;

/// How many names wildcard routes keep groups for. Clients choose these
/// names, so they are bounded: a new name past this takes the place of
/// one kept (any one), and a name longer than [`MATCHED_NAME_MAX`] gets a
/// group for its request only (served the same, without cooldowns
/// carried over).
const MATCHED_KEPT: usize = 1024;
const MATCHED_NAME_MAX: usize = 256;

pub struct Router {
    /// By model name. Its keys come from the config, so a client's name can
    /// only be looked up, never inserted: a fast hash is safe.
    groups: HashMap<String, ModelGroup, foldhash::fast::RandomState>,
    /// Other names for models (`model_group_alias`), from the config too.
    aliases: HashMap<String, String, foldhash::fast::RandomState>,
    strategy: RoutingStrategy,
    cooldowns: Cooldowns,
    /// The providers of each model's deployments, each distinct set once.
    provider_sets: Vec<Vec<ProviderKind>>,
    /// Some wildcard route's provider is known only per request (`*`).
    open_provider: bool,
    wildcards: Wildcards,
    /// The `rpm` / `tpm` counts of each wildcard entry, by its id.
    entry_windows: HashMap<String, Arc<Mutex<Window>>>,
    /// Groups built for names wildcard routes matched (keys chosen by
    /// clients: the standard, DoS-resistant hash).
    matched: RwLock<HashMap<String, Arc<ModelGroup>>>,
    /// Where each new matched group starts its turns, so groups built
    /// anew (a long name's, one that replaced another) do not all begin
    /// with the same deployment.
    matched_turn: AtomicUsize,
    started: Instant,
    /// Unix milliseconds at `started`: windows are calendar minutes, and
    /// cooldowns are told to other replicas in Unix time. Set again from
    /// the clock as replicas talk ([`Router::reanchor`]), so a clock step
    /// does not leave this one in another minute than the others.
    started_unix_ms: AtomicU64,
}

pub struct ModelGroup {
    pub name: String,
    /// The wildcard route that serves it, for a group built from one.
    pub pattern: Option<Arc<str>>,
    pub deployments: Vec<Arc<DeploymentState>>,
    next: AtomicUsize,
    /// Running sums of the deployments' shares, when every one of them
    /// has a `weight` (else an `rpm`, else a `tpm`), as LiteLLM's
    /// simple-shuffle weighs them; else the deployments take turns.
    shares: Option<Vec<f64>>,
}

/// A group found by name: one the config lists, or one a wildcard route
/// built.
pub enum GroupRef<'r> {
    Listed(&'r ModelGroup),
    Matched(Arc<ModelGroup>),
}

impl Deref for GroupRef<'_> {
    type Target = ModelGroup;
    fn deref(&self) -> &ModelGroup {
        match self {
            GroupRef::Listed(g) => g,
            GroupRef::Matched(g) => g,
        }
    }
}

impl ModelGroup {
    fn new(name: String) -> ModelGroup {
        ModelGroup {
            name,
            pattern: None,
            deployments: Vec::new(),
            next: AtomicUsize::new(0),
            shares: None,
        }
    }

    /// Each deployment's share of the traffic, by the first key every
    /// deployment of the group sets, as running sums.
    fn weigh(&mut self) {
        let keys: [fn(&Deployment) -> Option<f64>; 3] = [
            |d| d.weight,
            |d| d.rpm.map(|n| n as f64),
            |d| d.tpm.map(|n| n as f64),
        ];
        self.shares = keys.iter().find_map(|key| {
            let shares: Option<Vec<f64>> = self
                .deployments
                .iter()
                .map(|d| key(&d.deployment))
                .collect();
            let shares = shares?;
            let total: f64 = shares.iter().sum();
            (self.deployments.len() > 1 && total > 0.0).then(|| {
                shares
                    .iter()
                    .scan(0.0, |sum, w| {
                        *sum += w;
                        Some(*sum)
                    })
                    .collect()
            })
        });
    }

    /// Where this request's search for a deployment starts: the next in
    /// turn, or one drawn by the shares.
    fn start(&self) -> usize {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(sums) = &self.shares else {
            return n;
        };
        let total = sums.last().copied().unwrap_or(0.0);
        // A well-spread draw from the request's number (splitmix64).
        let mut z = (n as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let r = (z >> 11) as f64 / (1u64 << 53) as f64 * total;
        sums.iter().position(|&s| r < s).unwrap_or(sums.len() - 1)
    }
}

impl ModelGroup {
    /// Whether some deployment of the group speaks a provider `of`.
    pub fn serves_any(&self, of: impl Fn(llmux_core::ProviderKind) -> bool) -> bool {
        self.deployments.iter().any(|d| of(d.deployment.provider))
    }
}

/// A wildcard route's health check: its pattern, the model it is checked
/// with, its entry's id, and the deployment for that model (or why none).
pub struct WildcardCheck {
    pub pattern: Arc<str>,
    pub model: String,
    pub id: String,
    pub found: Result<Arc<DeploymentState>, ApiError>,
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
    /// Its `rpm` / `tpm` counts: shared by every model a wildcard entry
    /// serves, as LiteLLM counts them by deployment id.
    window: Arc<Mutex<Window>>,
    /// Requests in flight (counted routing by `least-busy`).
    in_flight: AtomicU32,
    /// Recent response time in µs, 0 before the first (routing by
    /// latency), and when it was last measured (ms since the router
    /// started).
    latency_us: AtomicU64,
    latency_at_ms: AtomicU64,
    /// Input plus output price a token (routing by cost).
    cost: f64,
    /// Its Prometheus labels, built at its first call when metrics are on.
    pub metric_labels: std::sync::OnceLock<[String; 4]>,
}

#[derive(Default)]
struct Window {
    minute: u64,
    requests: u64,
    tokens: u64,
    /// Failures (counted for `allowed_fails`).
    fails: u64,
    /// The other replicas' requests and tokens this minute, as last heard
    /// (with Redis).
    others_requests: u64,
    others_tokens: u64,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Unix milliseconds now. The unit tests start their routers on a
/// minute's first millisecond, so that their windows never roll under
/// them.
fn start_unix_ms() -> u64 {
    let ms = unix_ms();
    if cfg!(test) { ms / 60_000 * 60_000 } else { ms }
}

/// One window's counts to tell the other replicas: the deployment (or
/// wildcard entry) id, and what this process has counted this minute.
pub struct Told {
    pub id: String,
    window: Arc<Mutex<Window>>,
    pub requests: u64,
    pub tokens: u64,
}

/// Why no deployment could take a request right now.
#[derive(Debug, Clone, PartialEq)]
pub enum Unavailable {
    /// Every deployment is at its rpm/tpm limit.
    RateLimited { retry_after: Duration },
}

impl Router {
    pub fn new(deployments: Vec<Deployment>) -> Router {
        Router::with_wildcards(deployments, Wildcards::default())
    }

    pub fn with_wildcards(deployments: Vec<Deployment>, wildcards: Wildcards) -> Router {
        let mut groups: HashMap<String, ModelGroup, _> = HashMap::default();
        for d in deployments {
            let state = DeploymentState::new(d);
            groups
                .entry(state.deployment.model_name.clone())
                .or_insert_with(|| ModelGroup::new(state.deployment.model_name.clone()))
                .deployments
                .push(state);
        }
        for g in groups.values_mut() {
            g.weigh();
        }
        let mut sets: Vec<Vec<ProviderKind>> = groups
            .values()
            .map(|g| {
                g.deployments
                    .iter()
                    .map(|d| d.deployment.provider)
                    .collect()
            })
            .collect();
        let mut open_provider = false;
        for route in wildcards.providers() {
            match route {
                Some(set) => sets.push(set),
                None => open_provider = true,
            }
        }
        let mut provider_sets: Vec<Vec<ProviderKind>> = Vec::new();
        for mut set in sets {
            set.sort_unstable_by_key(|p| p.as_str());
            set.dedup();
            if !provider_sets.contains(&set) {
                provider_sets.push(set);
            }
        }
        let entry_windows = wildcards
            .entry_ids()
            .map(|id| (id.to_owned(), Arc::default()))
            .collect();
        Router {
            groups,
            aliases: HashMap::default(),
            strategy: RoutingStrategy::default(),
            cooldowns: Cooldowns::default(),
            provider_sets,
            open_provider,
            wildcards,
            entry_windows,
            matched: RwLock::new(HashMap::new()),
            matched_turn: AtomicUsize::new(0),
            started: Instant::now(),
            started_unix_ms: AtomicU64::new(start_unix_ms()),
        }
    }

    /// Whether some deployment of some model speaks a provider `of`.
    pub fn serves_any(&self, of: impl Fn(ProviderKind) -> bool) -> bool {
        self.open_provider || self.provider_sets.iter().flatten().any(|&p| of(p))
    }

    /// Whether some model has no deployment that speaks a provider `of`.
    pub fn some_model_lacks(&self, of: impl Fn(ProviderKind) -> bool) -> bool {
        self.open_provider
            || self
                .provider_sets
                .iter()
                .any(|set| !set.iter().any(|&p| of(p)))
    }

    /// Other names for models: a request for an alias is served as one
    /// for its model (one step, as LiteLLM resolves them; an alias wins
    /// over a model of the same name, as there).
    pub fn with_aliases(mut self, aliases: &[crate::config::Alias]) -> Router {
        self.aliases = aliases
            .iter()
            .map(|a| (a.name.clone(), a.target.clone()))
            .collect();
        self
    }

    /// Every deployment of the models the config lists, by model name.
    pub fn listed(&self) -> Vec<&Arc<DeploymentState>> {
        let mut all: Vec<_> = self.groups.values().flat_map(|g| &g.deployments).collect();
        all.sort_by(|a, b| {
            (&a.deployment.model_name, &a.deployment.id)
                .cmp(&(&b.deployment.model_name, &b.deployment.id))
        });
        all
    }

    /// The alias `name` is, as the config writes it.
    pub fn alias(&self, name: &str) -> Option<&str> {
        if self.aliases.is_empty() {
            return None;
        }
        self.aliases.get_key_value(name).map(|(k, _)| k.as_str())
    }

    /// How each model's deployments share its requests.
    pub fn with_strategy(mut self, strategy: RoutingStrategy) -> Router {
        self.strategy = strategy;
        self
    }

    pub fn strategy(&self) -> RoutingStrategy {
        self.strategy
    }

    /// When a failing deployment rests.
    pub fn with_cooldowns(mut self, cooldowns: Cooldowns) -> Router {
        self.cooldowns = cooldowns;
        self
    }

    /// The deployments that check the health of wildcard routes: for each
    /// entry with a `health_check_model`, its deployment for that model
    /// (or why there is none).
    pub fn wildcard_health(&self) -> Vec<WildcardCheck> {
        self.wildcards
            .health_checks()
            .into_iter()
            .map(|(pattern, model, id)| {
                let found = self.group(&model).and_then(|g| {
                    g.deployments
                        .iter()
                        .find(|d| d.deployment.id == id)
                        .cloned()
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "health_check_model `{model}` is served by another route"
                            ))
                        })
                });
                WildcardCheck {
                    pattern,
                    model,
                    id,
                    found,
                }
            })
            .collect()
    }

    /// The group serving model `name`: the config's, else one a wildcard
    /// route serves it with. A name nothing serves is a 404; one a route
    /// matches but cannot serve (its provider cannot be told) a 400.
    pub fn group(&self, name: &str) -> Result<GroupRef<'_>, ApiError> {
        // No hashing for configs without aliases (most).
        let name = if self.aliases.is_empty() {
            name
        } else {
            self.aliases.get(name).map_or(name, String::as_str)
        };
        if let Some(g) = self.groups.get(name) {
            return Ok(GroupRef::Listed(g));
        }
        if self.wildcards.is_empty() {
            return Err(ApiError::model_not_found(name));
        }
        self.matched_group(name).map(GroupRef::Matched)
    }

    fn matched_group(&self, name: &str) -> Result<Arc<ModelGroup>, ApiError> {
        if let Some(g) = self.matched.read().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(g);
        }
        // A pattern itself (`anthropic/*`) is not a model.
        let m = (!name.contains('*'))
            .then(|| self.wildcards.find(name))
            .flatten()
            .ok_or_else(|| ApiError::model_not_found(name))?;
        let mut group = ModelGroup::new(name.to_owned());
        group.pattern = Some(m.route.pattern.clone());
        group.next = AtomicUsize::new(self.matched_turn.fetch_add(1, Ordering::Relaxed));
        for d in self.wildcards.deployments(&m, name)? {
            let window = self.entry_windows.get(&d.id).cloned().unwrap_or_default();
            group
                .deployments
                .push(DeploymentState::counted_in(d, window));
        }
        group.weigh();
        let group = Arc::new(group);
        if name.len() > MATCHED_NAME_MAX {
            return Ok(group);
        }
        let Ok(mut kept) = self.matched.write() else {
            return Ok(group);
        };
        if kept.len() >= MATCHED_KEPT && !kept.contains_key(name) {
            // Any one makes room (the hash's order is random per process).
            if let Some(old) = kept.keys().next().cloned() {
                kept.remove(&old);
            }
        }
        // Two first requests may race: the first kept serves both.
        Ok(kept.entry(name.to_owned()).or_insert(group).clone())
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn unix_now(&self) -> u64 {
        self.started_unix_ms.load(Ordering::Relaxed) + self.now_ms()
    }

    /// The calendar minute (Unix minutes) now.
    pub fn minute(&self) -> u64 {
        self.unix_now() / 60_000
    }

    /// Reads the clock again for the Unix time `started` was at.
    pub fn reanchor(&self) {
        let at = unix_ms().saturating_sub(self.now_ms());
        self.started_unix_ms.store(at, Ordering::Relaxed);
    }

    /// Every window that counts (an `rpm` or `tpm` set, or every one
    /// routing by usage) once, with its id (a wildcard entry's is one,
    /// shared by the models it serves).
    fn windows(&self) -> Vec<(String, Arc<Mutex<Window>>)> {
        let usage = self.strategy == RoutingStrategy::UsageBased;
        let mut out: Vec<(String, Arc<Mutex<Window>>)> = Vec::new();
        let listed = self.groups.values().flat_map(|g| g.deployments.iter());
        for d in listed {
            if usage || d.deployment.rpm.is_some() || d.deployment.tpm.is_some() {
                out.push((d.deployment.id.clone(), d.window.clone()));
            }
        }
        for (id, limited) in self.wildcards.entry_limits() {
            if let (true, Some(w)) = (usage || limited, self.entry_windows.get(id)) {
                out.push((id.to_owned(), w.clone()));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| Arc::ptr_eq(&a.1, &b.1));
        out
    }

    /// What this process has counted this `minute` in every window that
    /// counts: told as it is (not as what changed), so telling it twice
    /// counts it once.
    pub fn to_tell(&self, minute: u64) -> Vec<Told> {
        self.windows()
            .into_iter()
            .map(|(id, window)| {
                let (requests, tokens) = window.lock().map_or((0, 0), |mut w| {
                    w.roll(minute);
                    if w.minute == minute {
                        (w.requests, w.tokens)
                    } else {
                        (0, 0)
                    }
                });
                Told {
                    id,
                    window,
                    requests,
                    tokens,
                }
            })
            .collect()
    }

    /// The other replicas were told `told` and answered with every
    /// replica's totals for that `minute` (requests, tokens, in turn).
    pub fn told(&self, minute: u64, told: &[Told], totals: &[(u64, u64)]) {
        for (t, &(requests, tokens)) in told.iter().zip(totals) {
            let Ok(mut w) = t.window.lock() else { continue };
            if w.minute != minute {
                continue;
            }
            w.others_requests = requests.saturating_sub(t.requests);
            w.others_tokens = tokens.saturating_sub(t.tokens);
        }
    }

    /// Every deployment this process has, listed and matched (wildcards'),
    /// with its model's name.
    fn states(&self) -> Vec<(String, Arc<DeploymentState>)> {
        let mut out: Vec<(String, Arc<DeploymentState>)> = Vec::new();
        let mut add = |g: &ModelGroup| {
            for d in &g.deployments {
                out.push((g.name.clone(), d.clone()));
            }
        };
        self.groups.values().for_each(&mut add);
        if let Ok(m) = self.matched.read() {
            m.values().for_each(|g| add(g));
        }
        out
    }

    /// The deployments cooling down now, each by its model and id
    /// ([`cooldown_name`]), with until when (Unix ms).
    pub fn cooling(&self) -> Vec<(String, u64)> {
        let now = self.now_ms();
        let start = self.started_unix_ms.load(Ordering::Relaxed);
        let mut out: Vec<(String, u64)> = self
            .states()
            .iter()
            .filter_map(|(group, d)| {
                let until = d.cooldown_until_ms.load(Ordering::Relaxed);
                (until > now).then(|| (cooldown_name(group, &d.deployment.id), start + until))
            })
            .collect();
        // The latest of each.
        out.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }

    /// Cooldowns other replicas began (by [`cooldown_name`], until when in
    /// Unix ms): this process rests those deployments of those models as
    /// long.
    pub fn cool_as_told(&self, cooling: &[(String, u64)]) {
        if cooling.is_empty() {
            return;
        }
        let start = self.started_unix_ms.load(Ordering::Relaxed);
        let until: HashMap<&str, u64> = cooling.iter().map(|(n, u)| (n.as_str(), *u)).collect();
        for (group, d) in self.states() {
            if let Some(&u) = until.get(cooldown_name(&group, &d.deployment.id).as_str()) {
                d.cooldown_until_ms
                    .fetch_max(u.saturating_sub(start), Ordering::Relaxed);
            }
        }
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
        let start = group.start();
        let now = self.now_ms();
        let unix_now = self.started_unix_ms.load(Ordering::Relaxed) + now;
        let minute = unix_now / 60_000;
        let mut fallback: Option<usize> = None;
        // The strategy's choice among those that may serve: the lowest
        // load, the first in turn among equals.
        let mut best: Option<(usize, f64)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let d = &group.deployments[i];
            if !d.has_capacity(minute) {
                continue;
            }
            let cooling = d.cooldown_until_ms.load(Ordering::Relaxed) > now;
            if !cooling && !tried.contains(&i) {
                if self.strategy == RoutingStrategy::SimpleShuffle {
                    d.count_request(minute);
                    return Ok((i, d.clone()));
                }
                let load = d.load(self.strategy, now, minute);
                if best.is_none_or(|(_, b)| load < b) {
                    best = Some((i, load));
                }
                continue;
            }
            fallback.get_or_insert(i);
        }
        // Else everyone is cooling down or was tried: better a second try
        // than no answer.
        if let Some(i) = best.map(|(i, _)| i).or(fallback) {
            let d = &group.deployments[i];
            d.count_request(minute);
            return Ok((i, d.clone()));
        }
        let into_minute = Duration::from_millis(unix_now % 60_000);
        Err(Unavailable::RateLimited {
            retry_after: Duration::from_secs(60).saturating_sub(into_minute),
        })
    }

    /// A deployment failed: it rests for the cooldown time while its
    /// group's others serve (at its first failure, or, with
    /// `allowed_fails`, past that many in the minute).
    /// Whether it rests now.
    pub fn cool_down(&self, group: &ModelGroup, d: &DeploymentState) -> bool {
        let c = &self.cooldowns;
        if group.deployments.len() < 2 || c.disabled || c.time.is_zero() {
            return false;
        }
        let now = self.now_ms();
        if let Some(allowed) = c.allowed_fails {
            let minute = self.minute();
            let fails = d.window.lock().map_or(u64::MAX, |mut w| {
                w.roll(minute);
                w.fails += 1;
                w.fails
            });
            if fails <= allowed {
                return false;
            }
        }
        d.cooldown_until_ms
            .store(now + c.time.as_millis() as u64, Ordering::Relaxed);
        true
    }

    /// Whether the deployment rests now after failing (cooling down).
    pub fn resting(&self, d: &DeploymentState) -> bool {
        d.cooldown_until_ms.load(Ordering::Relaxed) > self.now_ms()
    }

    /// Counts tokens against the deployment's `tpm` (and, routing by
    /// usage, for every deployment).
    pub fn record_tokens(&self, d: &DeploymentState, tokens: u64) {
        if d.deployment.tpm.is_none() && self.strategy != RoutingStrategy::UsageBased {
            return;
        }
        let minute = self.minute();
        if let Ok(mut w) = d.window.lock() {
            w.roll(minute);
            w.tokens += tokens;
        }
    }
}

/// What a routing strategy measures of one attempt: the time it takes
/// (`latency-based-routing`), and that it is in flight (`least-busy`) until
/// dropped, a stream's at its end. Boxed, so the default strategy's
/// requests carry only an empty pointer's room through their awaits.
pub struct Tracked(Box<Measure>);

struct Measure {
    state: Arc<DeploymentState>,
    began: Option<std::time::Instant>,
    busy: bool,
}

impl Tracked {
    /// Whether it counts a request in flight (so must live as long as the
    /// answer).
    pub fn is_busy(&self) -> bool {
        self.0.busy
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.0.busy {
            self.0.state.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Router {
    /// Starts measuring an attempt on `d`, when the strategy reads it.
    pub fn track(&self, d: &Arc<DeploymentState>) -> Option<Tracked> {
        let busy = self.strategy == RoutingStrategy::LeastBusy;
        let timed = self.strategy == RoutingStrategy::LatencyBased;
        if !busy && !timed {
            return None;
        }
        if busy {
            d.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        Some(Tracked(Box::new(Measure {
            state: d.clone(),
            began: timed.then(std::time::Instant::now),
            busy,
        })))
    }

    /// The attempt has its answer (`failed`: its error's status): its time
    /// is recorded, a whole answer's or a stream's to its first byte; of
    /// failures only a timeout's (its whole wait), since one that fails
    /// fast is not fast.
    pub fn answered(&self, t: &Tracked, failed: Option<u16>) {
        if let Some(began) = t.0.began {
            if failed.is_none_or(|status| status == 504) {
                self.record_latency(&t.0.state, began.elapsed());
            }
        }
    }

    /// A response time of `d`'s: a moving average of the last few
    /// (each new one a quarter of it), forgotten after a minute without
    /// one, so a deployment once slow is measured again.
    pub fn record_latency(&self, d: &DeploymentState, took: Duration) {
        let us = (took.as_micros() as u64).max(1);
        let now = self.now_ms();
        let old = d.latency_now(now);
        let new = if old == 0 { us } else { (old * 3 + us) / 4 };
        d.latency_us.store(new, Ordering::Relaxed);
        d.latency_at_ms.store(now, Ordering::Relaxed);
    }
}

/// A cooldown's name between replicas: the model it rests a deployment
/// of, and the deployment's id (a wildcard entry's serves many models,
/// each resting on its own).
fn cooldown_name(model: &str, id: &str) -> String {
    format!("{model}\u{0}{id}")
}

impl Window {
    /// To `minute`, if it is later: counts of a minute past (a late
    /// reader's) never wipe the current one's.
    fn roll(&mut self, minute: u64) {
        if minute > self.minute {
            *self = Window {
                minute,
                ..Window::default()
            };
        }
    }
}

impl DeploymentState {
    fn new(d: Deployment) -> Arc<DeploymentState> {
        DeploymentState::counted_in(d, Arc::default())
    }

    fn counted_in(d: Deployment, window: Arc<Mutex<Window>>) -> Arc<DeploymentState> {
        // Each price it does not know at $1 a token, as LiteLLM's cost
        // routing counts a model it does not know.
        let price = |key| {
            d.info
                .f64(key)
                .filter(|p| p.is_finite() && *p >= 0.0)
                .unwrap_or(1.0)
        };
        let cost = price("input_cost_per_token") + price("output_cost_per_token");
        Arc::new(DeploymentState {
            id_header: http::HeaderValue::from_str(&d.id).ok(),
            prices: llmux_core::cost::Prices::of(&d.info),
            deployment: d,
            cooldown_until_ms: AtomicU64::new(0),
            window,
            metric_labels: std::sync::OnceLock::new(),
            in_flight: AtomicU32::new(0),
            latency_us: AtomicU64::new(0),
            latency_at_ms: AtomicU64::new(0),
            cost,
        })
    }

    /// Its recent response time, 0 when unmeasured for a minute.
    fn latency_now(&self, now_ms: u64) -> u64 {
        let at = self.latency_at_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(at) > LATENCY_KEPT_MS {
            0
        } else {
            self.latency_us.load(Ordering::Relaxed)
        }
    }

    /// How loaded the deployment is, by the strategy's measure (lower
    /// serves first).
    fn load(&self, strategy: RoutingStrategy, now_ms: u64, minute: u64) -> f64 {
        match strategy {
            RoutingStrategy::SimpleShuffle => 0.0,
            RoutingStrategy::LeastBusy => f64::from(self.in_flight.load(Ordering::Relaxed)),
            RoutingStrategy::UsageBased => self.window.lock().map_or(0.0, |mut w| {
                w.roll(minute);
                (w.tokens + w.others_tokens) as f64
            }),
            RoutingStrategy::LatencyBased => self.latency_now(now_ms) as f64,
            RoutingStrategy::CostBased => self.cost,
        }
    }

    fn has_capacity(&self, minute: u64) -> bool {
        let d = &self.deployment;
        if d.rpm.is_none() && d.tpm.is_none() {
            return true;
        }
        let Ok(mut w) = self.window.lock() else {
            return true;
        };
        w.roll(minute);
        d.rpm.is_none_or(|rpm| w.requests + w.others_requests < rpm)
            && d.tpm.is_none_or(|tpm| w.tokens + w.others_tokens < tpm)
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
    use llmux_core::ProviderKind;

    fn dep(name: &str, id: &str, rpm: Option<u64>) -> Deployment {
        Deployment {
            id: id.into(),
            rpm,
            ..Deployment::new(name, ProviderKind::OpenAi, "m")
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
        let g = &*r.group("g").unwrap();
        let picks: Vec<String> = (0..4)
            .map(|_| r.pick(g, &[]).unwrap().1.deployment.id.clone())
            .collect();
        assert_eq!(picks, vec!["a", "b", "a", "b"]);
        assert_eq!(r.group("nope").err().unwrap().status, 404);
    }

    #[test]
    fn a_retry_goes_to_another_deployment_and_failures_cool_down() {
        let r = Router::new(vec![dep("g", "a", None), dep("g", "b", None)]);
        let g = &*r.group("g").unwrap();
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
        let g = &*r.group("g").unwrap();
        let (i, d) = r.pick(g, &[]).unwrap();
        r.cool_down(g, &d);
        assert_eq!(r.pick(g, &[i]).unwrap().1.deployment.id, "a");
    }

    #[test]
    fn rpm_limits_move_traffic_then_refuse() {
        let r = Router::new(vec![dep("g", "a", Some(1)), dep("g", "b", Some(1))]);
        let g = &*r.group("g").unwrap();
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

    #[test]
    fn weights_then_rpm_share_the_traffic_when_every_deployment_sets_them() {
        let count = |r: &Router| {
            let g = &*r.group("g").unwrap();
            let mut a = 0;
            for _ in 0..2_000 {
                if r.pick(g, &[]).unwrap().1.deployment.id == "a" {
                    a += 1;
                }
            }
            a
        };
        let weighted = |wa: Option<f64>, wb: Option<f64>| {
            let mut a = dep("g", "a", None);
            let mut b = dep("g", "b", None);
            a.weight = wa;
            b.weight = wb;
            Router::new(vec![a, b])
        };
        // 9 to 1: about 1,800 of 2,000.
        let a = count(&weighted(Some(9.0), Some(1.0)));
        assert!((1_700..=1_900).contains(&a), "{a}");
        // rpm weighs too (limits far off).
        let r = Router::new(vec![
            dep("g", "a", Some(90_000)),
            dep("g", "b", Some(10_000)),
        ]);
        let a = count(&r);
        assert!((1_700..=1_900).contains(&a), "{a}");
        // One deployment without a weight: they take turns.
        assert_eq!(count(&weighted(Some(9.0), None)), 1_000);
        // A weight of 0 serves only when the others cannot.
        assert_eq!(count(&weighted(Some(1.0), Some(0.0))), 2_000);
    }
}

#[cfg(test)]
mod wildcard_tests {
    use super::*;
    use crate::config::{Env, parse};
    use llmux_core::Catalog;

    fn router(config: &str) -> Router {
        let c = parse(config, &Catalog::builtin().unwrap(), &Env::fixed(&[])).unwrap();
        Router::with_wildcards(c.deployments, c.wildcards)
    }

    const CONFIG: &str = r#"
model_list:
  - model_name: "anthropic/*"
    litellm_params: {model: "anthropic/*", api_key: k, rpm: 2}
  - model_name: anthropic/claude-sonnet-4
    litellm_params: {model: "openrouter/anthropic/claude-sonnet-4", api_key: k}
"#;

    #[test]
    fn a_listed_name_wins_and_a_matched_group_is_kept() {
        let r = router(CONFIG);
        let listed = r.group("anthropic/claude-sonnet-4").unwrap();
        assert!(matches!(listed, GroupRef::Listed(_)));
        assert_eq!(
            listed.deployments[0].deployment.provider,
            ProviderKind::OpenRouter
        );
        let GroupRef::Matched(a) = r.group("anthropic/claude-3-5-sonnet").unwrap() else {
            panic!("not matched");
        };
        let GroupRef::Matched(b) = r.group("anthropic/claude-3-5-sonnet").unwrap() else {
            panic!("not matched");
        };
        // The same group, so a cooldown lasts.
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.pattern.as_deref(), Some("anthropic/*"));
        assert_eq!(
            a.deployments[0].deployment.provider,
            ProviderKind::Anthropic
        );
        // A pattern is not a model; nor is a name nothing matches.
        assert_eq!(r.group("anthropic/*").err().unwrap().status, 404);
        assert_eq!(r.group("openai/gpt-4o").err().unwrap().status, 404);
    }

    #[test]
    fn an_alias_is_served_by_its_models_group() {
        let c = parse(
            r#"
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: k}
  - model_name: gpt-4
    litellm_params: {model: openai/gpt-4, api_key: k}
  - model_name: "anthropic/*"
    litellm_params: {model: "anthropic/*", api_key: k}
router_settings:
  model_group_alias: {gpt-4: gpt-4o, haiku: anthropic/claude-3-5-haiku-20241022}
"#,
            &Catalog::builtin().unwrap(),
            &Env::fixed(&[]),
        )
        .unwrap();
        let r = Router::with_wildcards(c.deployments, c.wildcards).with_aliases(&c.aliases);
        // An alias wins over a model of its name, as in LiteLLM.
        assert_eq!(r.group("gpt-4").unwrap().name, "gpt-4o");
        let haiku = r.group("haiku").unwrap();
        assert_eq!(haiku.name, "anthropic/claude-3-5-haiku-20241022");
        assert_eq!(
            haiku.deployments[0].deployment.provider,
            ProviderKind::Anthropic
        );
        assert_eq!(r.group("gpt-4o").unwrap().name, "gpt-4o");
    }

    #[test]
    fn an_entrys_rpm_counts_every_model_it_serves() {
        let r = router(CONFIG);
        let a = r.group("anthropic/claude-3-5-sonnet").unwrap();
        let b = r.group("anthropic/claude-3-5-haiku").unwrap();
        assert!(r.pick(&a, &[]).is_ok());
        assert!(r.pick(&b, &[]).is_ok());
        assert!(matches!(
            r.pick(&a, &[]),
            Err(Unavailable::RateLimited { .. })
        ));
    }

    #[test]
    fn kept_names_are_bounded_and_new_ones_still_take_turns() {
        let r = router(
            r#"
model_list:
  - model_name: "team/*"
    litellm_params: {model: "openai/*", api_key: k, api_base: "http://a.example"}
  - model_name: "team/*"
    litellm_params: {model: "openai/*", api_key: k, api_base: "http://b.example"}
"#,
        );
        // A name too long to keep is served, not kept.
        let long = format!("team/{}", "x".repeat(MATCHED_NAME_MAX));
        assert_eq!(r.group(&long).unwrap().name, long);
        assert!(r.matched.read().unwrap().is_empty());
        // Past the bound a new name takes an old one's place.
        for i in 0..MATCHED_KEPT + 10 {
            r.group(&format!("team/model-{i}")).unwrap();
        }
        assert_eq!(r.matched.read().unwrap().len(), MATCHED_KEPT);
        assert!(
            r.matched
                .read()
                .unwrap()
                .contains_key(&format!("team/model-{}", MATCHED_KEPT + 9))
        );
        // Groups built anew do not all start with the same deployment.
        let firsts: std::collections::HashSet<String> = (0..8)
            .map(|i| {
                let g = r.group(&format!("team/fresh-{i}")).unwrap();
                let (_, d) = r.pick(&g, &[]).unwrap();
                d.deployment.api_base.clone().unwrap()
            })
            .collect();
        assert_eq!(firsts.len(), 2, "{firsts:?}");
    }
}

#[cfg(test)]
mod strategy_tests {
    use super::*;
    use llmux_core::ProviderKind;

    fn router(strategy: RoutingStrategy, deps: Vec<Deployment>) -> Router {
        Router::new(deps).with_strategy(strategy)
    }

    fn dep(id: &str) -> Deployment {
        Deployment {
            id: id.into(),
            ..Deployment::new("g", ProviderKind::OpenAi, "m")
        }
    }

    fn picks(r: &Router, n: usize) -> Vec<String> {
        let g = &*r.group("g").unwrap();
        (0..n)
            .map(|_| r.pick(g, &[]).unwrap().1.deployment.id.clone())
            .collect()
    }

    #[test]
    fn least_busy_counts_requests_until_their_answers_are_done() {
        let r = router(RoutingStrategy::LeastBusy, vec![dep("a"), dep("b")]);
        let g = &*r.group("g").unwrap();
        let (_, first) = r.pick(g, &[]).unwrap();
        let held = r.track(&first);
        assert!(held.as_ref().is_some_and(Tracked::is_busy));
        // While it is in flight, the other serves.
        let other = if first.deployment.id == "a" { "b" } else { "a" };
        assert_eq!(picks(&r, 3), [other; 3]);
        drop(held);
        // Both idle: in turn.
        let mut both = picks(&r, 2);
        both.sort();
        assert_eq!(both, ["a", "b"]);
        // Nothing is counted under another strategy.
        let r = router(RoutingStrategy::SimpleShuffle, vec![dep("a")]);
        let (_, d) = r.pick(&r.group("g").unwrap(), &[]).unwrap();
        assert!(r.track(&d).is_none());
    }

    #[test]
    fn latency_based_tries_the_unmeasured_then_the_fastest() {
        let r = router(RoutingStrategy::LatencyBased, vec![dep("a"), dep("b")]);
        let g = &*r.group("g").unwrap();
        let state = |id: &str| {
            g.deployments
                .iter()
                .find(|d| d.deployment.id == id)
                .unwrap()
                .clone()
        };
        r.record_latency(&state("a"), Duration::from_millis(300));
        // b was never measured: it goes first.
        assert_eq!(picks(&r, 1), ["b"]);
        r.record_latency(&state("b"), Duration::from_millis(40));
        assert_eq!(picks(&r, 4), ["b"; 4]);
        // b slows down: a takes over once b's average passes a's.
        for _ in 0..6 {
            r.record_latency(&state("b"), Duration::from_millis(900));
        }
        assert_eq!(picks(&r, 2), ["a"; 2]);
        // A deployment cooling down is skipped however fast it is.
        r.cool_down(g, &state("a"));
        assert_eq!(picks(&r, 1), ["b"]);
    }

    #[test]
    fn a_response_time_is_forgotten_after_a_minute_without_a_new_one() {
        let r = router(RoutingStrategy::LatencyBased, vec![dep("a")]);
        let g = &*r.group("g").unwrap();
        let a = &g.deployments[0];
        r.record_latency(a, Duration::from_secs(600));
        let now = r.now_ms();
        let minute = r.minute();
        assert_eq!(
            a.load(RoutingStrategy::LatencyBased, now, minute),
            600_000_000.0
        );
        // A minute on, it is unmeasured again, so it is tried again.
        assert_eq!(
            a.load(
                RoutingStrategy::LatencyBased,
                now + LATENCY_KEPT_MS + 1,
                minute
            ),
            0.0
        );
    }

    #[test]
    fn cost_based_reads_prices_set_in_litellm_params() {
        let c = crate::config::parse(
            r#"
model_list:
  - model_name: g
    litellm_params: {model: openai/my-big, api_base: "http://a.example/v1", input_cost_per_token: 0.00001, output_cost_per_token: 0.00003}
  - model_name: g
    litellm_params: {model: openai/my-small, api_base: "http://b.example/v1", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
  - model_name: g
    litellm_params: {model: openai/my-unpriced, api_base: "http://c.example/v1"}
router_settings: {routing_strategy: cost-based-routing}
"#,
            &llmux_core::Catalog::builtin().unwrap(),
            &crate::config::Env::fixed(&[]),
        )
        .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let r = Router::new(c.deployments).with_strategy(c.routing_strategy);
        let g = &*r.group("g").unwrap();
        for _ in 0..3 {
            let (_, d) = r.pick(g, &[]).unwrap();
            assert_eq!(d.deployment.upstream_model, "my-small");
        }
        // The price reaches the cost of an answer too.
        let small = g
            .deployments
            .iter()
            .find(|d| d.deployment.upstream_model == "my-small")
            .unwrap();
        assert!(small.prices.is_some());
    }

    #[test]
    fn usage_based_sends_to_the_fewest_tokens_this_minute() {
        let r = router(RoutingStrategy::UsageBased, vec![dep("a"), dep("b")]);
        let g = &*r.group("g").unwrap();
        // Counted without a tpm limit, routing by usage.
        r.record_tokens(&g.deployments[0], 5_000);
        assert_eq!(picks(&r, 3), ["b"; 3]);
        r.record_tokens(&g.deployments[1], 9_000);
        assert_eq!(picks(&r, 2), ["a"; 2]);
    }

    #[test]
    fn cost_based_sends_to_the_cheapest_that_can_serve() {
        let priced = |id: &str, input: f64, output: f64| {
            let mut d = dep(id);
            d.info.0.insert("input_cost_per_token".into(), input.into());
            d.info
                .0
                .insert("output_cost_per_token".into(), output.into());
            d
        };
        let r = router(
            RoutingStrategy::CostBased,
            vec![
                priced("dear", 2.5e-6, 1e-5),
                priced("cheap", 1.5e-7, 6e-7),
                dep("unknown"),
            ],
        );
        assert_eq!(picks(&r, 3), ["cheap"; 3]);
        // A retry goes to the next cheapest; a price unknown counts as $1.
        let g = &*r.group("g").unwrap();
        let (i, _) = r.pick(g, &[]).unwrap();
        assert_eq!(r.pick(g, &[i]).unwrap().1.deployment.id, "dear");
        let (j, _) = r.pick(g, &[i]).unwrap();
        assert_eq!(r.pick(g, &[i, j]).unwrap().1.deployment.id, "unknown");
    }
}

#[cfg(test)]
mod cooldown_tests {
    use super::*;
    use llmux_core::ProviderKind;

    fn router(c: Cooldowns) -> Router {
        let dep = |id: &str| Deployment {
            id: id.into(),
            ..Deployment::new("g", ProviderKind::OpenAi, "m")
        };
        Router::new(vec![dep("a"), dep("b")]).with_cooldowns(c)
    }

    fn resting(r: &Router, id: &str) -> bool {
        let g = &*r.group("g").unwrap();
        (0..4).all(|_| r.pick(g, &[]).unwrap().1.deployment.id != id)
    }

    fn fail(r: &Router, id: &str) {
        let g = &*r.group("g").unwrap();
        let d = g
            .deployments
            .iter()
            .find(|d| d.deployment.id == id)
            .unwrap();
        r.cool_down(g, d);
    }

    #[test]
    fn a_failure_rests_a_deployment_for_the_cooldown_time() {
        let r = router(Cooldowns::default());
        fail(&r, "a");
        assert!(resting(&r, "a"));
        // A cooldown time of nothing, or cooldowns off: it serves on.
        for c in [
            Cooldowns {
                time: Duration::ZERO,
                ..Cooldowns::default()
            },
            Cooldowns {
                disabled: true,
                ..Cooldowns::default()
            },
        ] {
            let r = router(c);
            fail(&r, "a");
            assert!(!resting(&r, "a"), "{c:?}");
        }
    }

    #[test]
    fn allowed_fails_are_counted_in_the_minute_before_a_rest() {
        let r = router(Cooldowns {
            allowed_fails: Some(2),
            ..Cooldowns::default()
        });
        fail(&r, "a");
        fail(&r, "a");
        assert!(!resting(&r, "a"));
        fail(&r, "a");
        assert!(resting(&r, "a"));
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;
    use llmux_core::ProviderKind;

    fn dep(id: &str, rpm: Option<u64>) -> Deployment {
        Deployment {
            id: id.into(),
            rpm,
            ..Deployment::new("g", ProviderKind::OpenAi, "m")
        }
    }

    #[test]
    fn a_deployments_rpm_counts_the_other_replicas_requests() {
        let r = Router::new(vec![dep("a", Some(3))]);
        let g = &*r.group("g").unwrap();
        r.pick(g, &[]).unwrap();
        // Told as it is, however often.
        let minute = r.minute();
        let told = r.to_tell(minute);
        assert_eq!(told[0].requests, 1);
        r.told(minute, &told, &[(1, 0)]);
        assert_eq!(r.to_tell(minute)[0].requests, 1);
        // Two more elsewhere (Redis answers every replica's total): the
        // limit of 3 is reached here.
        let told = r.to_tell(minute);
        r.told(minute, &told, &[(3, 0)]);
        assert!(matches!(
            r.pick(g, &[]),
            Err(Unavailable::RateLimited { .. })
        ));
        // Counts a minute old are not this minute's.
        let next = r.minute() + 1;
        assert_eq!(r.to_tell(next)[0].requests, 0);
    }

    #[test]
    fn usage_routing_weighs_every_replicas_tokens() {
        let r = Router::new(vec![dep("a", None), dep("b", None)])
            .with_strategy(RoutingStrategy::UsageBased);
        let g = &*r.group("g").unwrap();
        r.record_tokens(&g.deployments[0], 100);
        // Elsewhere, "b" served far more.
        let minute = r.minute();
        let told = r.to_tell(minute);
        let totals: Vec<(u64, u64)> = told
            .iter()
            .map(|t| {
                let more = if t.id == "b" { 10_000 } else { 0 };
                (t.requests, t.tokens + more)
            })
            .collect();
        r.told(minute, &told, &totals);
        for _ in 0..3 {
            assert_eq!(r.pick(g, &[]).unwrap().1.deployment.id, "a");
        }
    }

    #[test]
    fn a_cooldown_begun_on_one_replica_rests_the_deployment_on_another() {
        let one = Router::new(vec![dep("a", None), dep("b", None)]);
        let two = Router::new(vec![dep("a", None), dep("b", None)]);
        let g = &*one.group("g").unwrap();
        let a = g
            .deployments
            .iter()
            .find(|d| d.deployment.id == "a")
            .unwrap();
        assert!(one.cool_down(g, a));
        let cooling = one.cooling();
        assert_eq!(cooling.len(), 1);
        assert_eq!(cooling[0].0, cooldown_name("g", "a"));
        two.cool_as_told(&cooling);
        let g2 = &*two.group("g").unwrap();
        for _ in 0..4 {
            assert_eq!(two.pick(g2, &[]).unwrap().1.deployment.id, "b");
        }
        // One already over is not taken, nor one of another model's.
        let three = Router::new(vec![dep("a", None), dep("b", None)]);
        three.cool_as_told(&[(cooldown_name("g", "a"), 1)]);
        three.cool_as_told(&[(cooldown_name("other", "b"), u64::MAX / 2)]);
        assert!(three.cooling().is_empty());
    }
}
