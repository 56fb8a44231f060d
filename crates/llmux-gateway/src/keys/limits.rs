//! What a virtual key may spend and send: its budget (reset every
//! `budget_duration`), its requests and tokens a minute (on the whole, and
//! on a model: LiteLLM's `model_rpm_limit` and `model_tpm_limit`), its
//! requests at once, and its models.

use super::shared::{self, Shared, Verdict};
use super::{KeyEntry, Keys, lock, spend, time};
use llmux_core::types::ErrorKind;
use llmux_core::{ApiError, Usage};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A key's spend, and when its budget next resets.
pub(super) struct Spend {
    pub spend: f64,
    pub reset_at: Option<i64>,
    /// Charged here and not yet written: what a read of the database
    /// lacks of this process's spend.
    pub unwritten: f64,
    /// Spend set here (a reset, an admin) and not yet written: until it
    /// is, the database's value is older than this one.
    pub budgets_unwritten: u32,
}

/// A key's requests and tokens in the current minute (a fixed window, as
/// LiteLLM's limiter counts).
#[derive(Default)]
pub(super) struct Window {
    minute: i64,
    requests: u64,
    tokens: u64,
}

impl Window {
    fn roll(&mut self, minute: i64) {
        if self.minute != minute {
            *self = Window {
                minute,
                requests: 0,
                tokens: 0,
            };
        }
    }
}

impl KeyEntry {
    pub(super) fn count_tokens(&self, n: u64) {
        let mut w = lock(&self.window);
        w.roll(time::now_secs() / 60);
        w.tokens = w.tokens.saturating_add(n);
    }

    /// Counts `n` tokens against the key's limits on `model`.
    pub(super) fn count_model_tokens(&self, model: &str, n: u64) {
        let mut windows = lock(&self.model_windows);
        if let Some(w) = windows.get_mut(model) {
            w.roll(time::now_secs() / 60);
            w.tokens = w.tokens.saturating_add(n);
        }
    }

    /// Checks the key's limits on `model` as this process counts them,
    /// and counts the request if `count`: its requests and tokens on the
    /// model this minute.
    fn model_window(&self, model: &ModelLimits, count: bool) -> Result<Counted, ApiError> {
        let now = time::now_secs();
        let mut windows = lock(&self.model_windows);
        // One window per model the key limits: as many as its settings name.
        let w = match windows.get_mut(&*model.name) {
            Some(w) => w,
            None => windows.entry(model.name.clone()).or_default(),
        };
        w.roll(now / 60);
        let next_minute = (60 - now.rem_euclid(60)) as u64;
        if let Some(rpm) = model.rpm {
            if w.requests >= rpm {
                return Err(model_rpm_limited(&model.name, rpm, next_minute));
            }
        }
        if let Some(tpm) = model.tpm {
            if w.tokens >= tpm {
                return Err(model_tpm_limited(&model.name, tpm, w.tokens, next_minute));
            }
        }
        if count {
            w.requests += 1;
        }
        Ok(Counted {
            requests: w.requests,
            tokens: w.tokens,
        })
    }
}

/// A key's requests (a request let in counted) and tokens in this minute,
/// on the whole or on a model, as they were when a request was let in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub requests: u64,
    pub tokens: u64,
}

/// A key's limits on one model: the name they are set under in its
/// `model_rpm_limit` / `model_tpm_limit`, and each limit set there.
pub(super) struct ModelLimits {
    pub name: Arc<str>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

/// Where LiteLLM keeps a key's limits per model: in its metadata, each a
/// map of model name to a whole number.
pub const MODEL_RPM: &str = "model_rpm_limit";
pub const MODEL_TPM: &str = "model_tpm_limit";

/// A request let in: whose it is, when it started, and (for a virtual key)
/// one of the key's parallel slots, given back when this is dropped.
pub struct Admission {
    entry: Option<Arc<KeyEntry>>,
    token: Arc<str>,
    /// Unix milliseconds.
    pub started_ms: i64,
    /// The id its spend log row has.
    pub request_id: String,
    /// `acompletion` or `anthropic_messages`, as LiteLLM's logs name them.
    pub call_type: &'static str,
    /// About how many tokens the request's prompt is (virtual keys only):
    /// what a stream its client leaves before the upstream's usage is
    /// charged for.
    prompt_estimate: std::sync::atomic::AtomicU64,
    /// The key's requests in flight here, this one counted, when it came.
    parallel: u32,
    /// Where this request is counted in flight in Redis (by its id),
    /// taken out when this is dropped.
    shared_slot: Option<(Arc<Shared>, Arc<str>)>,
    /// The key's requests and tokens this minute, as its rate limits
    /// counted them when they let this request in (none without limits).
    pub(super) counted: Option<Counted>,
    /// The models whose limits (the key's `model_rpm_limit` or
    /// `model_tpm_limit`) let this request in, with their limits and
    /// counts then: its tokens count there too.
    pub(super) model_counted: std::sync::Mutex<Vec<(ModelLimits, Counted)>>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(e) = &self.entry {
            e.in_flight.fetch_sub(1, Ordering::Relaxed);
            if let Some((shared, inflight)) = self.shared_slot.take() {
                let id = std::mem::take(&mut self.request_id);
                lock(&e.shared_held).remove(&id);
                shared.release(inflight, id);
            }
        }
    }
}

impl Admission {
    pub(super) fn master(keys: &Keys, call_type: &'static str) -> Admission {
        Admission {
            entry: None,
            token: keys.master_hash().clone(),
            started_ms: time::now_ms(),
            request_id: keys.request_id(),
            call_type,
            prompt_estimate: Default::default(),
            parallel: 0,
            shared_slot: None,
            counted: None,
            model_counted: Default::default(),
        }
    }

    /// A request of `entry`'s, within the key's budget (its limits are
    /// checked next, here or in Redis), holding one of its parallel slots
    /// here from now on.
    pub(super) fn key(
        keys: &Keys,
        entry: Arc<KeyEntry>,
        call_type: &'static str,
    ) -> Result<Admission, ApiError> {
        let s = entry.settings();
        let now = time::now_secs();
        let parallel = entry.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        // From here the slot is given back when `admission` drops, whatever
        // check below stops the request.
        let admission = Admission {
            token: s.token.as_str().into(),
            entry: Some(entry.clone()),
            started_ms: time::now_ms(),
            request_id: keys.request_id(),
            call_type,
            prompt_estimate: Default::default(),
            parallel,
            shared_slot: None,
            counted: None,
            model_counted: Default::default(),
        };
        {
            let mut sp = lock(&entry.spend);
            if let (Some(every), Some(at)) = (s.budget_seconds(), sp.reset_at) {
                if at <= now {
                    sp.spend = 0.0;
                    let next = time::next_reset(at, every, now);
                    sp.reset_at = Some(next);
                    let queued = keys.queue().push(spend::Event::Budget {
                        entry: entry.clone(),
                        spend: Some(0.0),
                        reset_at: Some(Some(next)),
                        if_reset_at: Some(at),
                    });
                    sp.budgets_unwritten += u32::from(queued);
                }
            }
            if let Some(max) = s.max_budget {
                if sp.spend >= max {
                    return Err(ApiError::bad_request(format!(
                        "Budget has been exceeded! Current cost: {}, Max budget: {max}",
                        sp.spend
                    ))
                    .with_kind(ErrorKind::Other("budget_exceeded".into())));
                }
            }
        }
        Ok(admission)
    }

    /// Whether the key has a rate limit (rpm, tpm or parallel).
    pub(super) fn limited(&self) -> bool {
        self.entry.as_ref().is_some_and(|e| {
            let s = e.settings();
            s.rpm_limit.is_some() || s.tpm_limit.is_some() || s.max_parallel_requests.is_some()
        })
    }

    /// Checks the key's rate limits as this process counts them, and
    /// counts the request if `count`.
    pub(super) fn local_limits(&mut self, count: bool) -> Result<(), ApiError> {
        let Some(entry) = &self.entry else {
            return Ok(());
        };
        let s = entry.settings();
        if let Some(max) = s.max_parallel_requests {
            if self.parallel > max {
                return Err(parallel_limited(max));
            }
        }
        let now = time::now_secs();
        let mut w = lock(&entry.window);
        w.roll(now / 60);
        let next_minute = (60 - now.rem_euclid(60)) as u64;
        if let Some(rpm) = s.rpm_limit {
            if w.requests >= rpm {
                return Err(rpm_limited(rpm, next_minute));
            }
        }
        if let Some(tpm) = s.tpm_limit {
            if w.tokens >= tpm {
                return Err(tpm_limited(tpm, w.tokens, next_minute));
            }
        }
        if count {
            w.requests += 1;
            self.counted = Some(Counted {
                requests: w.requests,
                tokens: w.tokens,
            });
        }
        Ok(())
    }

    /// Checks and counts the key's rate limits in Redis, with every
    /// replica's requests; here if Redis does not answer in time.
    pub(super) async fn shared_limits(&mut self, shared: &Arc<Shared>) -> Result<(), ApiError> {
        let Some(entry) = self.entry.clone() else {
            return Ok(());
        };
        // This process's counts are a part of the shared ones: a request
        // they stop is stopped without asking (a request let in here
        // while Redis was away is in them only).
        self.local_limits(false)?;
        let s = entry.settings();
        let counts = shared.counts(&s.token);
        let inflight = shared::inflight(&counts);
        let verdict = shared
            .admit(
                (&counts, &inflight),
                &self.request_id,
                s.rpm_limit,
                s.tpm_limit,
                s.max_parallel_requests,
            )
            .await;
        match verdict {
            None => self.local_limits(true),
            Some(Verdict::Admit(requests, tokens)) => {
                // Counted here too: the count Redis failing falls back to.
                let mut w = lock(&entry.window);
                w.roll(time::now_secs() / 60);
                w.requests += 1;
                drop(w);
                self.counted = Some(Counted { requests, tokens });
                if s.max_parallel_requests.is_some() {
                    lock(&entry.shared_held).insert(self.request_id.clone(), inflight.clone());
                    self.shared_slot = Some((shared.clone(), inflight));
                }
                Ok(())
            }
            Some(Verdict::Parallel(_)) => Err(parallel_limited(
                s.max_parallel_requests.unwrap_or_default(),
            )),
            Some(Verdict::Requests(_, wait)) => {
                Err(rpm_limited(s.rpm_limit.unwrap_or_default(), wait))
            }
            Some(Verdict::Tokens(used, wait)) => {
                Err(tpm_limited(s.tpm_limit.unwrap_or_default(), used, wait))
            }
        }
    }

    /// Reads the request's body for its prompt's size, with a virtual key
    /// (whose budget a stream left early is charged to).
    pub fn estimate_prompt(&self, body: &[u8]) {
        if self.entry.is_some() {
            self.prompt_estimate
                .store(prompt_tokens(body), Ordering::Relaxed);
        }
    }

    /// What a stream its client left before the upstream said how much it
    /// used is charged as: the usage the upstream gave (Claude's input
    /// tokens, at the stream's start), else the prompt's estimate; and a
    /// completion token for each event relayed, if that is more than the
    /// upstream said. None without a virtual key.
    pub fn left_early(&self, known: Option<&Usage>, events: u64) -> Option<Usage> {
        self.entry.as_ref()?;
        let mut u = known.cloned().unwrap_or_else(|| Usage {
            prompt_tokens: self.prompt_estimate.load(Ordering::Relaxed),
            ..Default::default()
        });
        // Claude's start says one output token: the events relayed since
        // say more.
        u.completion_tokens = u.completion_tokens.max(events);
        u.total_tokens = u.prompt_tokens.saturating_add(u.completion_tokens);
        Some(u)
    }

    /// The virtual key, if the request has one (not the master key).
    pub fn entry(&self) -> Option<&Arc<KeyEntry>> {
        self.entry.as_ref()
    }

    /// The hash of the key the request came with.
    pub fn token(&self) -> &Arc<str> {
        &self.token
    }

    /// Whether the key may use the model the request names (`requested`,
    /// an alias or a model name), served by the group `group`.
    pub fn allows(&self, requested: &str, group: &str) -> Result<(), ApiError> {
        let Some(e) = &self.entry else {
            return Ok(());
        };
        let s = e.settings();
        if s.allows(requested) || s.allows(group) {
            return Ok(());
        }
        Err(model_denied(&s.models, requested))
    }

    /// Whether the key has limits on the model the request names
    /// (`requested`, served by the group `group`), or a budget on the
    /// model: then [`Admission::model_limits`] checks them.
    pub fn model_limited(&self, requested: &str, group: &str) -> bool {
        self.entry.as_ref().is_some_and(|e| {
            let s = e.settings();
            s.model_limits(requested, group).next().is_some() || s.model_budget(group).is_some()
        })
    }

    /// Checks the key's budget on the model (`group`; `model_max_budget`),
    /// then checks and counts its limits on the model the request names:
    /// those set under the name it used and those set under its group's
    /// (an alias's and its model's both hold). In Redis with every
    /// replica's requests when it is given and answers, else here. The
    /// request's tokens count against them from then on (a fallback's
    /// check, passed, takes them over). A request its model's limits
    /// refuse has still been counted against the key's own rpm (as in
    /// LiteLLM).
    pub async fn model_limits(
        &self,
        shared: Option<&Arc<Shared>>,
        requested: &str,
        group: &str,
    ) -> Result<(), ApiError> {
        let Some(entry) = &self.entry else {
            return Ok(());
        };
        let s = entry.settings();
        // Its budget on the model first, as its own budget comes first.
        entry.within_model_budget(&s, group)?;
        let limits: Vec<ModelLimits> = s.model_limits(requested, group).collect();
        // This process's counts are a part of the shared ones: what they
        // refuse is refused without asking.
        for model in &limits {
            entry.model_window(model, false)?;
        }
        let mut counted = Vec::with_capacity(limits.len());
        for model in limits {
            let c = self.model_admit(entry, &s.token, shared, &model).await?;
            counted.push((model, c));
        }
        *lock(&self.model_counted) = counted;
        Ok(())
    }

    /// Checks and counts one of the key's limits on a model.
    async fn model_admit(
        &self,
        entry: &KeyEntry,
        token: &str,
        shared: Option<&Arc<Shared>>,
        model: &ModelLimits,
    ) -> Result<Counted, ApiError> {
        let verdict = match shared.filter(|sh| sh.up()) {
            Some(shared) => {
                let counts = shared.model_counts(token, &model.name);
                let inflight = shared::inflight(&counts);
                shared
                    .admit(
                        (&counts, &inflight),
                        &self.request_id,
                        model.rpm,
                        model.tpm,
                        None,
                    )
                    .await
            }
            None => None,
        };
        match verdict {
            // No Redis, or it did not answer: counted here alone.
            None => entry.model_window(model, true),
            Some(Verdict::Requests(_, wait)) => Err(model_rpm_limited(
                &model.name,
                model.rpm.unwrap_or_default(),
                wait,
            )),
            Some(Verdict::Tokens(used, wait)) => Err(model_tpm_limited(
                &model.name,
                model.tpm.unwrap_or_default(),
                used,
                wait,
            )),
            // Let in: counted here too, the count Redis failing falls
            // back to (no parallel limit was asked of it).
            Some(Verdict::Admit(requests, tokens)) => {
                let mut windows = lock(&entry.model_windows);
                if let Some(w) = windows.get_mut(&*model.name) {
                    w.roll(time::now_secs() / 60);
                    w.requests += 1;
                }
                Ok(Counted { requests, tokens })
            }
            // Not asked of it (no parallel limit on a model).
            Some(Verdict::Parallel(_)) => Ok(Counted::default()),
        }
    }

    /// The models (names the key's limits are set under) this request's
    /// tokens also count against.
    pub fn model_counted(&self) -> Vec<Arc<str>> {
        lock(&self.model_counted)
            .iter()
            .map(|(m, _)| m.name.clone())
            .collect()
    }
}

impl super::KeySettings {
    /// `budget_duration` in seconds, if it has one that reads.
    pub fn budget_seconds(&self) -> Option<i64> {
        self.budget_duration
            .as_deref()
            .and_then(time::parse_duration)
    }

    /// The key's limit in `field` (`model_rpm_limit` or `model_tpm_limit`)
    /// on `model`, if it sets one. Checked where it is set; a value written
    /// past those checks (by hand in the database) is read as a number if
    /// it can be, as LiteLLM would.
    fn model_limit(&self, field: &str, model: &str) -> Option<u64> {
        let v = self.metadata.get(field)?.get(model)?;
        v.as_u64()
            .or_else(|| v.as_f64().filter(|n| *n >= 0.0).map(|n| n as u64))
            .or_else(|| v.as_str().and_then(|t| t.trim().parse().ok()))
    }

    /// Whether the key limits the tokens a minute of `model` (a name its
    /// limits are set under).
    pub(super) fn limits_model_tokens(&self, model: &str) -> bool {
        self.model_limit(MODEL_TPM, model).is_some()
    }

    /// The key's limits on the model a request names (`requested`, served
    /// by the group `group`): those set under the name the request used,
    /// and those under its group's when that is another.
    pub(super) fn model_limits<'a>(
        &'a self,
        requested: &'a str,
        group: &'a str,
    ) -> impl Iterator<Item = ModelLimits> + 'a {
        let any = self.metadata.contains_key(MODEL_RPM) || self.metadata.contains_key(MODEL_TPM);
        let names = std::iter::once(requested).chain((group != requested).then_some(group));
        names.filter(move |_| any).filter_map(|name| {
            let rpm = self.model_limit(MODEL_RPM, name);
            let tpm = self.model_limit(MODEL_TPM, name);
            (rpm.is_some() || tpm.is_some()).then(|| ModelLimits {
                name: name.into(),
                rpm,
                tpm,
            })
        })
    }

    /// Whether `model` is one of the key's: any model when its list is
    /// empty or has `all-proxy-models` or `*`; `openai/*` takes every
    /// model named so.
    pub fn allows(&self, model: &str) -> bool {
        self.models.is_empty()
            || self.models.iter().any(|m| {
                m == model
                    || m == "*"
                    || m == "all-proxy-models"
                    || m.strip_suffix('*')
                        .is_some_and(|prefix| model.starts_with(prefix))
            })
    }
}

/// Inline data this long or longer (base64) is an image or a document,
/// counted as [`INLINE_TOKENS`] rather than by its size.
const INLINE_BYTES: usize = 1_024;
const INLINE_TOKENS: u64 = 1_000;

/// About how many tokens a request's prompt is: a token for every four
/// bytes of its JSON, as text and code run, with inline data counted a
/// flat [`INLINE_TOKENS`] each: a `data:` URL's base64, or a `"data"`
/// string (Anthropic's and Gemini's images), when the run is base64 and
/// nothing else (text dressed as an image is counted as text).
pub fn prompt_tokens(body: &[u8]) -> u64 {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    // `;base64,` inside a string: the run to its closing quote.
    let finder = memchr::memmem::Finder::new(b";base64,");
    let mut from = 0;
    while let Some(i) = finder.find(&body[from..]) {
        let start = from + i + 8;
        let end = memchr::memchr(b'"', &body[start..]).map_or(body.len(), |n| start + n);
        runs.push((start, end));
        from = end;
    }
    // `"data"`, a colon and a string, with or without spaces between.
    let finder = memchr::memmem::Finder::new(b"\"data\"");
    let mut from = 0;
    while let Some(i) = finder.find(&body[from..]) {
        let mut at = from + i + 6;
        from = at;
        while body.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        if body.get(at) != Some(&b':') {
            continue;
        }
        at += 1;
        while body.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        if body.get(at) != Some(&b'"') {
            continue;
        }
        let start = at + 1;
        let end = memchr::memchr(b'"', &body[start..]).map_or(body.len(), |n| start + n);
        runs.push((start, end));
        from = end;
    }
    // A run found by both markers is counted once.
    runs.sort_unstable();
    let (mut inline_bytes, mut inline, mut last_end) = (0usize, 0u64, 0usize);
    for (start, end) in runs {
        let start = start.max(last_end);
        if end <= start {
            continue;
        }
        let run = &body[start..end];
        let base64 = run
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\\'));
        if run.len() >= INLINE_BYTES && base64 {
            inline_bytes += run.len();
            inline += 1;
            last_end = end;
        }
    }
    ((body.len() - inline_bytes.min(body.len())) as u64)
        .div_ceil(4)
        .saturating_add(inline.saturating_mul(INLINE_TOKENS))
}

pub fn model_denied(models: &[String], requested: &str) -> ApiError {
    ApiError::new(
        401,
        format!(
            "key not allowed to access model. This key can only access models={models:?}. \
         Tried to access {requested}"
        ),
    )
    .with_kind(ErrorKind::Other("key_model_access_denied".into()))
}

fn parallel_limited(max: u32) -> ApiError {
    rate_limited(
        format!("Max parallel request limit reached: this key allows {max} requests at once."),
        Duration::from_secs(1),
    )
}

fn rpm_limited(rpm: u64, wait_secs: u64) -> ApiError {
    rate_limited(
        format!("Rate limit reached for this key: {rpm} requests a minute (rpm_limit)."),
        Duration::from_secs(wait_secs.clamp(1, 60)),
    )
}

fn tpm_limited(tpm: u64, used: u64, wait_secs: u64) -> ApiError {
    rate_limited(
        format!("Rate limit reached for this key: {tpm} tokens a minute (tpm_limit); {used} used."),
        Duration::from_secs(wait_secs.clamp(1, 60)),
    )
}

fn model_rpm_limited(model: &str, rpm: u64, wait_secs: u64) -> ApiError {
    rate_limited(
        format!(
            "Rate limit reached for this key on model {model}: {rpm} requests a minute \
             (model_rpm_limit)."
        ),
        Duration::from_secs(wait_secs.clamp(1, 60)),
    )
}

fn model_tpm_limited(model: &str, tpm: u64, used: u64, wait_secs: u64) -> ApiError {
    rate_limited(
        format!(
            "Rate limit reached for this key on model {model}: {tpm} tokens a minute \
             (model_tpm_limit); {used} used."
        ),
        Duration::from_secs(wait_secs.clamp(1, 60)),
    )
}

fn rate_limited(message: String, retry_after: Duration) -> ApiError {
    ApiError::new(429, message)
        .with_retry_after(Some(retry_after))
        .retryable(false)
}
