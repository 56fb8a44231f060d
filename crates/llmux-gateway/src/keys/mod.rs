//! Virtual keys, as LiteLLM's proxy issues them: keys the master key makes
//! at `/key/generate`, each with its own models, budget, rate limits and
//! expiry, stored hashed (SHA-256, as LiteLLM stores them) in the database
//! `general_settings.database_url` names, and their spend.
//!
//! Every key lives in memory, loaded at start and changed only through this
//! registry, one change at a time, database first: a request's key check is
//! a hash and a map lookup, never a query. Spend is counted in memory at
//! once (a budget holds from the next request) and written by a background
//! writer through a bounded queue ([`spend`]); whatever else changes a
//! key's spend (a budget reset, an admin setting it) goes through the same
//! queue, so the database applies them in the order they happened. Spend
//! is charged to a key's record by its id, which a regenerated key keeps.
//!
//! Replicas may share the database (PostgreSQL; or one SQLite file on one
//! machine). Spend is written as increments; each process reads every key
//! again on an interval ([`Keys::sync`], through the spend writer so its
//! own unwritten charges are counted once), and looks a key it does not
//! hold up on its first use. Rate limits are counted per process, or in
//! Redis when one is configured ([`shared`]), so replicas share them.

pub mod edit;
pub mod generate_params;
mod headers;
pub(crate) mod limits;
pub mod litellm;
pub mod model_budget;
pub mod shared;
pub mod spend;
pub mod store;
pub mod time;

pub use generate_params::KeyParams;
pub use limits::{Admission, model_denied};
pub use spend::SpendRecord;
pub use store::{KeyRow, Store, StoreError};

use crate::auth;
use llmux_core::types::ErrorKind;
use llmux_core::{ApiError, Secret};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// A key as issued: what it may do. Replaced whole on update; its running
/// counts live beside it in [`KeyEntry`].
pub type KeySettings = KeyRow;

/// One virtual key in memory: its settings, its spend and its limits'
/// running counts.
pub struct KeyEntry {
    /// The record's id: kept when the key is regenerated.
    id: i64,
    settings: RwLock<Arc<KeySettings>>,
    spend: Mutex<limits::Spend>,
    window: Mutex<limits::Window>,
    /// The same, for each model the key limits (`model_rpm_limit`,
    /// `model_tpm_limit`), by the name the limit is set under.
    model_windows: Mutex<HashMap<Arc<str>, limits::Window>>,
    /// Its spend this period on each model it budgets (`model_max_budget`).
    model_spend: Mutex<HashMap<Arc<str>, model_budget::ModelSpend>>,
    in_flight: std::sync::atomic::AtomicU32,
    /// Of those, the requests counted in flight in Redis: request id, and
    /// the name of the set they are in there.
    shared_held: Mutex<HashMap<String, Arc<str>>>,
}

impl KeyEntry {
    fn new(row: KeyRow) -> KeyEntry {
        let spend = limits::Spend {
            spend: row.spend,
            reset_at: row.budget_reset_at,
            unwritten: 0.0,
            budgets_unwritten: 0,
        };
        KeyEntry {
            id: row.id,
            settings: RwLock::new(Arc::new(row)),
            spend: Mutex::new(spend),
            window: Mutex::new(limits::Window::default()),
            model_windows: Mutex::new(HashMap::new()),
            model_spend: Mutex::new(HashMap::new()),
            in_flight: std::sync::atomic::AtomicU32::new(0),
            shared_held: Mutex::new(HashMap::new()),
        }
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    /// A charge the spend writer has written.
    pub(super) fn written(&self, charge: f64) {
        let mut s = lock(&self.spend);
        s.unwritten -= charge;
        if s.unwritten.abs() < 1e-12 {
            s.unwritten = 0.0;
        }
    }

    /// A spend set here that the writer has written (or given up on).
    pub(super) fn budget_written(&self) {
        let mut s = lock(&self.spend);
        s.budgets_unwritten = s.budgets_unwritten.saturating_sub(1);
    }

    /// The key's spend as the database has it now, every replica's charges
    /// in it, and what this process has charged and not written; unless a
    /// spend set here is still on its way there. Only between two of the
    /// spend writer's writes (`Event::Sync`): a charge is then either in
    /// the row or still unwritten.
    fn sync_spend(&self, row: &KeyRow) {
        let mut s = lock(&self.spend);
        if s.budgets_unwritten == 0 {
            s.spend = row.spend + s.unwritten;
            s.reset_at = row.budget_reset_at;
        }
    }

    /// The key's settings as stored, if they differ from these.
    fn sync_settings(&self, row: KeyRow) {
        let current = self.settings();
        let same = KeyRow {
            spend: current.spend,
            budget_reset_at: current.budget_reset_at,
            ..row.clone()
        } == *current;
        if !same {
            self.replace(row);
        }
    }

    pub fn settings(&self) -> Arc<KeySettings> {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// New settings; spend and its period are kept apart ([`Keys::set_budget`]).
    fn replace(&self, row: KeyRow) {
        match self.settings.write() {
            Ok(mut s) => *s = Arc::new(row),
            Err(p) => *p.into_inner() = Arc::new(row),
        }
    }

    /// The spend so far, and when the budget next resets, as the key's
    /// next request will find them: a period that has ended shows as reset
    /// (the request writes the reset).
    pub fn spend(&self) -> (f64, Option<i64>) {
        let (spend, reset_at) = {
            let s = lock(&self.spend);
            (s.spend, s.reset_at)
        };
        let now = time::now_secs();
        match (reset_at, self.settings().budget_seconds()) {
            (Some(at), Some(every)) if at <= now => (0.0, Some(time::next_reset(at, every, now))),
            _ => (spend, reset_at),
        }
    }
}

/// A poisoned lock's value is still sound here: counts, not invariants.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The hash a key is stored and logged by: SHA-256 in hex, as LiteLLM's
/// `hash_token`.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A key's short form for lists and logs: `sk-...` and its last four
/// characters, as LiteLLM's `key_name`.
pub fn abbreviate(key: &str) -> String {
    let start = key.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
    format!("sk-...{}", &key[start..])
}

/// A new key: `sk-` and 32 URL-safe characters from the system's random
/// source (192 bits).
pub fn new_key() -> Result<String, ApiError> {
    use base64::Engine;
    let mut buf = [0u8; 24];
    getrandom::fill(&mut buf)
        .map_err(|e| ApiError::internal(format!("No randomness for a new key: {e}")))?;
    Ok(format!(
        "sk-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
    ))
}

/// Who a request comes from.
pub enum Identity {
    Master,
    Key(Arc<KeyEntry>),
}

/// The gateway's keys: the registry in memory, its database, and the spend
/// writer's queue.
pub struct Keys {
    by_hash: RwLock<HashMap<String, Arc<KeyEntry>>>,
    store: Store,
    spend: spend::Queue,
    /// The master key's hash: its requests' spend is logged under it.
    master_hash: Arc<str>,
    /// Random per process (64 bits), so request ids do not repeat across
    /// restarts and replicas.
    id_prefix: u64,
    requests: std::sync::atomic::AtomicU64,
    /// One change of keys at a time: the database and the map agree.
    changing: tokio::sync::Mutex<()>,
    /// Keys looked up in the database and not found there, until when:
    /// a client repeating an unknown key costs one query a second.
    misses: Mutex<HashMap<String, std::time::Instant>>,
    /// Lookups of unknown keys waiting at once, at most.
    lookups: tokio::sync::Semaphore,
    /// Counts changes to the map: a key read from the database is put in
    /// only if nothing changed the map while it was read.
    generation: std::sync::atomic::AtomicU64,
    /// Where rate limits are counted across replicas, if anywhere.
    shared: std::sync::OnceLock<Arc<shared::Shared>>,
}

/// How long a key not found in the database is answered 401 without
/// asking it again.
const MISS_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Unknown keys remembered at most (then forgotten all at once).
const MISSES_HELD: usize = 10_000;
/// Lookups of unknown keys that may run at once; more wait their turn.
const LOOKUPS: usize = 4;
/// How long a request waits for its key to be looked up before a 503.
const LOOKUP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Keys {
    /// Opens the database, creates its tables if new, loads every key and
    /// starts the spend writer on the current runtime.
    pub async fn open(url: &str, master: &Secret) -> Result<Arc<Keys>, StoreError> {
        let store = Store::open(url).await?;
        let rows = store.load().await?;
        let master_hash = hash_key(master.expose());
        let by_hash = rows
            .into_iter()
            .filter(|r| {
                // The master key is checked first: this key's holder would
                // have the master's rights.
                let same = r.token == master_hash;
                if same {
                    tracing::warn!(key = %r.key_name, "a stored virtual key is the master key; not served");
                }
                !same
            })
            .map(|r| (r.token.clone(), Arc::new(KeyEntry::new(r))))
            .collect();
        let spend = spend::Queue::start(store.clone());
        let keys = Arc::new(Keys {
            by_hash: RwLock::new(by_hash),
            store,
            spend,
            master_hash: master_hash.into(),
            id_prefix: getrandom::u64().unwrap_or_else(|_| fallback_prefix()),
            requests: std::sync::atomic::AtomicU64::new(0),
            changing: tokio::sync::Mutex::new(()),
            misses: Mutex::new(HashMap::new()),
            lookups: tokio::sync::Semaphore::new(LOOKUPS),
            generation: std::sync::atomic::AtomicU64::new(0),
            shared: std::sync::OnceLock::new(),
        });
        keys.read_model_spend().await;
        Ok(keys)
    }

    /// Counts the keys' rate limits in `redis` from now on, shared with
    /// every replica that does, and says every [`shared::BEAT`] which
    /// requests this one has in flight. Connects on first use.
    pub fn share_limits(
        self: &Arc<Self>,
        redis: &crate::config::RedisSettings,
    ) -> Result<Arc<shared::Shared>, String> {
        let shared = shared::Shared::start(redis).map_err(|e| e.to_string())?;
        if self.shared.set(shared.clone()).is_err() {
            return Err("rate limits are already counted in Redis".to_owned());
        }
        let keys = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(shared::BEAT);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(keys) = keys.upgrade() else { break };
                let Some(shared) = keys.shared.get().cloned() else {
                    break;
                };
                // Each set named, with the requests this process holds in it.
                let mut held: HashMap<Arc<str>, Vec<String>> = HashMap::new();
                for e in keys.map().values() {
                    for (id, set) in lock(&e.shared_held).iter() {
                        held.entry(set.clone()).or_default().push(id.clone());
                    }
                }
                drop(keys);
                shared.beat(held.into_iter().collect()).await;
            }
        });
        Ok(shared)
    }

    /// The Redis rate limits are counted in, if any.
    pub fn shared(&self) -> Option<&Arc<shared::Shared>> {
        self.shared.get()
    }

    /// Reads the database's keys every `every`, for what other replicas
    /// changed: keys made, changed, regenerated or deleted there, and the
    /// spend they charged. Stops when the registry is dropped.
    pub fn sync_every(self: &Arc<Self>, every: std::time::Duration) {
        let keys = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(keys) = keys.upgrade() else { break };
                if let Err(e) = keys.sync().await {
                    tracing::warn!("reading the keys from the database failed: {e}");
                }
                // Then the spend per model budgeted (one query a budget),
                // which no other change waits on.
                keys.read_model_spend().await;
            }
        });
    }

    /// Makes the keys in memory what the database holds: settings, keys
    /// added and removed, and spend (stored, plus what this process has
    /// charged and not yet written). Runs between two of the spend
    /// writer's writes, and not during a change made here.
    pub async fn sync(self: &Arc<Self>) -> Result<(), StoreError> {
        // In a task of its own: a caller that goes away (an admin's
        // request) must not free the change lock while the writer still
        // applies rows read before a change it would then let in.
        let keys = self.clone();
        let task = tokio::spawn(async move {
            let _one = keys.changing.lock().await;
            let (tx, rx) = tokio::sync::oneshot::channel();
            let apply_to = keys.clone();
            let apply = Box::new(move |rows: Result<Vec<KeyRow>, StoreError>| {
                let _ = tx.send(rows.map(|rows| apply_to.apply(rows)));
            });
            if !keys.spend.send(spend::Event::Sync(apply)).await {
                return Ok(());
            }
            rx.await.unwrap_or(Ok(()))
        });
        task.await.unwrap_or(Ok(()))
    }

    /// Each key's spend this period on each model it budgets, as the
    /// spend log has it: every replica's written charges (and a process's
    /// before it restarted), taken where they are more than this process
    /// counted. A query that fails is logged and the rest go on: those
    /// budgets count this process's charges until the next read.
    pub async fn read_model_spend(&self) {
        let now = time::now_secs();
        let wanted: Vec<(Arc<KeyEntry>, String, String, i64)> = self
            .map()
            .values()
            .flat_map(|e| {
                let s = e.settings();
                s.model_budgets()
                    .into_iter()
                    .map(|(model, b)| {
                        let period = b.period_start(s.created_at, now);
                        (e.clone(), s.token.clone(), model, period)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut failed = None;
        for (entry, token, model, period) in wanted {
            let read = self
                .store
                .model_spend(&token, &model, period.saturating_mul(1000))
                .await;
            match read {
                Ok(logged) => entry.logged_model_spend(&model, period, logged),
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            tracing::warn!("reading spend per model from the spend log failed: {e}");
        }
    }

    /// The map rebuilt from every stored key: entries kept (with their
    /// running counts) by record id, whatever their key is now. Built
    /// beside the map, which requests go on reading, and swapped in.
    fn apply(&self, rows: Vec<KeyRow>) {
        let mut by_id: HashMap<i64, Arc<KeyEntry>> =
            self.map().values().map(|e| (e.id, e.clone())).collect();
        let mut next = HashMap::with_capacity(rows.len());
        for row in rows {
            if *row.token == *self.master_hash {
                continue;
            }
            let entry = match by_id.remove(&row.id) {
                Some(e) => {
                    e.sync_spend(&row);
                    e.sync_settings(row);
                    e
                }
                None => Arc::new(KeyEntry::new(row)),
            };
            next.insert(entry.settings().token.clone(), entry);
        }
        let mut map = self.map_mut();
        *map = next;
        self.changed();
    }

    /// Marks the map changed; called with its write lock held.
    fn changed(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// A stored record put in the map under its key: the entry its id
    /// already has (moved, if the key was regenerated elsewhere, its
    /// settings updated and its spend left to the next sync), or a new one.
    fn adopt(&self, map: &mut HashMap<String, Arc<KeyEntry>>, row: KeyRow) -> Arc<KeyEntry> {
        let was = map
            .iter()
            .find(|(_, e)| e.id == row.id)
            .map(|(t, e)| (t.clone(), e.clone()));
        let entry = match was {
            Some((old, e)) => {
                map.remove(&old);
                e.sync_settings(row);
                e
            }
            None => Arc::new(KeyEntry::new(row)),
        };
        map.insert(entry.settings().token.clone(), entry.clone());
        self.changed();
        entry
    }

    /// A key this process does not hold, from the database: one another
    /// replica made since the last sync. Not found is remembered a while;
    /// a few lookups run at once, and a request waits at most
    /// [`LOOKUP_WAIT`] for its own (then a 503, as for a database error).
    async fn find(&self, hash: String) -> Result<Option<Arc<KeyEntry>>, ApiError> {
        if *hash == *self.master_hash {
            return Ok(None);
        }
        if lock(&self.misses)
            .get(&hash)
            .is_some_and(|until| std::time::Instant::now() < *until)
        {
            return Ok(None);
        }
        let deadline = tokio::time::Instant::now() + LOOKUP_WAIT;
        let _turn = tokio::time::timeout_at(deadline, self.lookups.acquire())
            .await
            .map_err(|_| database_unavailable())?
            .map_err(|_| database_unavailable())?;
        // A change here while the row was read (a delete, a new key for
        // the record) may have made it stale: then it is read again.
        for _ in 0..3 {
            let seen = self.generation.load(std::sync::atomic::Ordering::Acquire);
            let row = match tokio::time::timeout_at(deadline, self.store.find(&hash)).await {
                Ok(Ok(row)) => row,
                Ok(Err(e)) => {
                    tracing::warn!("looking a key up in the database failed: {e}");
                    return Err(database_unavailable());
                }
                Err(_) => return Err(database_unavailable()),
            };
            let Some(row) = row else {
                let mut misses = lock(&self.misses);
                if misses.len() >= MISSES_HELD {
                    misses.clear();
                }
                misses.insert(hash, std::time::Instant::now() + MISS_TTL);
                return Ok(None);
            };
            let mut map = self.map_mut();
            if self.generation.load(std::sync::atomic::Ordering::Acquire) == seen {
                return Ok(Some(self.adopt(&mut map, row)));
            }
        }
        Ok(self.get(&hash))
    }

    /// The key stored under `token` now, for a change or an admin's read:
    /// the database asked (another replica may have made, changed or
    /// deleted it), the map made to agree. A 404 if it is not there.
    async fn fresh(&self, token: &str) -> Result<Arc<KeyEntry>, ApiError> {
        match self.store.find(token).await.map_err(StoreError::into_api)? {
            Some(row) if *row.token != *self.master_hash => {
                let mut map = self.map_mut();
                Ok(self.adopt(&mut map, row))
            }
            _ => {
                let mut map = self.map_mut();
                if map.remove(token).is_some() {
                    self.changed();
                }
                Err(key_not_found())
            }
        }
    }

    /// A key's entry for the admin routes: held here, or stored (made by
    /// another replica). A 404 if neither.
    pub async fn lookup(&self, token: &str) -> Result<Arc<KeyEntry>, ApiError> {
        match self.get(token) {
            Some(e) => Ok(e),
            None => self.fresh(token).await,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn master_hash(&self) -> &Arc<str> {
        &self.master_hash
    }

    pub fn count(&self) -> usize {
        self.map().len()
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<KeyEntry>>> {
        match self.by_hash.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        }
    }

    fn map_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<KeyEntry>>> {
        match self.by_hash.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        }
    }

    pub fn get(&self, hash: &str) -> Option<Arc<KeyEntry>> {
        self.map().get(hash).cloned()
    }

    /// Every key's settings, newest first.
    pub fn all(&self) -> Vec<Arc<KeySettings>> {
        let mut v: Vec<_> = self.map().values().map(|e| e.settings()).collect();
        v.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.token.cmp(&b.token)));
        v
    }

    /// Who the request's key belongs to: the master, or a virtual key that
    /// is neither blocked nor expired. Errors are 401s.
    /// A key not held here is looked up in the database (another
    /// replica may have made it).
    pub async fn identify(
        &self,
        master: Option<&Secret>,
        headers: &http::HeaderMap,
    ) -> Result<Identity, ApiError> {
        if auth::authorized(master, headers) {
            return Ok(Identity::Master);
        }
        let mut entry = auth::presented_keys(headers).find_map(|k| self.get(&hash_key(k)));
        if entry.is_none() {
            if let Some(k) = auth::presented_keys(headers).next() {
                entry = self.find(hash_key(k)).await?;
            }
        }
        let Some(entry) = entry else {
            return Err(auth::invalid_key());
        };
        let s = entry.settings();
        if s.blocked {
            return Err(ApiError::unauthorized(
                "Authentication Error - Key is blocked. Update via `/key/unblock` if you're an admin.",
            ));
        }
        // Whole seconds, rounded down at making: a key lives at least its
        // duration.
        if s.expires.is_some_and(|e| e < time::now_secs()) {
            return Err(ApiError::unauthorized(format!(
                "Authentication Error - Expired Key. Key Expiry time {}",
                s.expires.map(time::iso8601).unwrap_or_default()
            ))
            .with_kind(ErrorKind::Other("expired_key".into())));
        }
        Ok(Identity::Key(entry))
    }

    /// A model request may start: its key identified, within its budget,
    /// its rpm and tpm, and its parallel requests. The admission holds a
    /// parallel slot until dropped (with the response, or the stream's end).
    pub async fn admit(
        &self,
        master: Option<&Secret>,
        headers: &http::HeaderMap,
        call_type: &'static str,
    ) -> Result<Arc<Admission>, ApiError> {
        match self.identify(master, headers).await? {
            Identity::Master => Ok(Arc::new(Admission::master(self, call_type))),
            Identity::Key(entry) => {
                let mut admission = Admission::key(self, entry, call_type)?;
                match self.shared.get() {
                    // A probe of a Redis that failed is taken only by a
                    // request that calls it.
                    Some(shared) if admission.limited() && shared.up() => {
                        // Boxed: only requests with limits and Redis carry
                        // its future.
                        Box::pin(admission.shared_limits(shared)).await?
                    }
                    _ => admission.local_limits(true)?,
                }
                Ok(Arc::new(admission))
            }
        }
    }

    /// A new request id: this process's random prefix and a count.
    fn request_id(&self) -> String {
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("req_{:016x}{n:010x}", self.id_prefix)
    }

    /// Runs a change of keys one at a time, and to its end even if the
    /// client that asked goes away: a database written and a map not
    /// would disagree until the next start.
    async fn change<T, F, Fut>(self: &Arc<Self>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Keys>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        let keys = self.clone();
        tokio::spawn(async move {
            let _one = keys.changing.lock().await;
            f(keys.clone()).await
        })
        .await
        .map_err(|e| ApiError::internal(format!("A key change stopped: {e}")))?
    }

    /// Refuses an alias another key has (the record `row` replaces, `was`,
    /// aside), or a key that is the master key.
    fn check_free(&self, row: &KeyRow, was: &str) -> Result<(), ApiError> {
        if *row.token == *self.master_hash {
            return Err(ApiError::invalid_field(
                "key",
                "A key may not be the master key.",
            ));
        }
        if let Some(alias) = &row.key_alias {
            if self.by_alias(alias).is_some_and(|s| s.token != was) {
                return Err(ApiError::invalid_field(
                    "key_alias",
                    format!("Key with alias '{alias}' already exists."),
                ));
            }
        }
        Ok(())
    }

    /// Adds a new key; its alias, if it has one, must be free.
    pub async fn insert(self: &Arc<Self>, row: KeyRow) -> Result<Arc<KeySettings>, ApiError> {
        self.change(move |keys| async move {
            keys.check_free(&row, &row.token)?;
            if keys.get(&row.token).is_some() {
                return Err(ApiError::invalid_field("key", "This key already exists."));
            }
            let mut row = row;
            row.id = keys
                .store
                .insert(&row)
                .await
                .map_err(StoreError::into_api)?;
            let entry = Arc::new(KeyEntry::new(row));
            let s = entry.settings();
            let mut map = keys.map_mut();
            map.insert(s.token.clone(), entry);
            keys.changed();
            Ok(s)
        })
        .await
    }

    /// Changes a key as a `/key/update` body says (`{"blocked": true}` for
    /// `/key/block`).
    pub async fn update(
        self: &Arc<Self>,
        token: String,
        body: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Arc<KeySettings>, ApiError> {
        self.change(move |keys| async move {
            // From the record as stored: another replica's change since
            // the last sync is kept, not written over.
            keys.fresh(&token).await?;
            let (entry, row, budget) = keys.edited(&token, &body)?;
            let found = keys
                .store
                .update(&row)
                .await
                .map_err(StoreError::into_api)?;
            if !found {
                return Err(keys.gone(&token));
            }
            {
                let _map = keys.map_mut();
                entry.replace(row);
                keys.changed();
            }
            keys.set_budget(&entry, budget).await;
            Ok(entry.settings())
        })
        .await
    }

    /// Whether a `/key/update` body would be taken, without taking it.
    pub fn check_update(
        &self,
        token: &str,
        body: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), ApiError> {
        self.edited(token, body).map(drop)
    }

    /// A key's settings as `body` changes them, checked.
    fn edited(
        &self,
        token: &str,
        body: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(Arc<KeyEntry>, KeyRow, edit::Budget), ApiError> {
        let entry = self.get(token).ok_or_else(key_not_found)?;
        let mut row = KeySettings::clone(&entry.settings());
        let mut budget = edit::Budget::default();
        edit::apply(&mut row, &mut budget, body, time::now_secs())?;
        self.check_free(&row, token)?;
        Ok((entry, row, budget))
    }

    /// Sets what `budget` sets of a key's spend and next reset: in memory
    /// now, and in the database after the spend queued before. Only the
    /// spend given is written: other replicas' charges stay.
    async fn set_budget(&self, entry: &Arc<KeyEntry>, budget: edit::Budget) {
        if budget == edit::Budget::default() {
            return;
        }
        let ev = {
            let mut s = lock(&entry.spend);
            if let Some(spend) = budget.spend {
                s.spend = spend;
            }
            if let Some(reset_at) = budget.reset_at {
                s.reset_at = reset_at;
            }
            // Counted before it is queued: the writer may write it at once.
            s.budgets_unwritten += 1;
            spend::Event::Budget {
                entry: entry.clone(),
                spend: budget.spend,
                reset_at: budget.reset_at,
                if_reset_at: None,
            }
        };
        // Waited for room (an admin's change, not a request): the writer
        // applies it after the charges queued before it.
        if !self.spend.send(ev).await {
            entry.budget_written();
        }
    }

    /// A key found gone from the database in a change: out of the map too.
    fn gone(&self, token: &str) -> ApiError {
        let mut map = self.map_mut();
        if map.remove(token).is_some() {
            self.changed();
        }
        key_not_found()
    }

    /// A new key for an existing record: its settings, spend and running
    /// counts carry over, and the old key stops at once. The database
    /// first; spend queued for the record follows it by its id.
    pub async fn rekey(
        self: &Arc<Self>,
        old: String,
        new_key: String,
    ) -> Result<Arc<KeySettings>, ApiError> {
        self.change(move |keys| async move {
            let entry = keys.fresh(&old).await?;
            let mut row = KeySettings::clone(&entry.settings());
            row.token = hash_key(&new_key);
            row.key_name = abbreviate(&new_key);
            row.updated_at = time::now_secs();
            keys.check_free(&row, &old)?;
            if keys.get(&row.token).is_some() {
                return Err(ApiError::invalid_field("key", "This key already exists."));
            }
            if !keys.store.rekey(&row).await.map_err(StoreError::into_api)? {
                return Err(keys.gone(&old));
            }
            let token = row.token.clone();
            let mut map = keys.map_mut();
            entry.replace(row);
            map.remove(&old);
            map.insert(token, entry.clone());
            keys.changed();
            drop(map);
            Ok(entry.settings())
        })
        .await
    }

    /// Removes keys by hash, all or none: a hash not there is a 404.
    pub async fn delete(self: &Arc<Self>, hashes: Vec<String>) -> Result<(), ApiError> {
        self.change(move |keys| async move {
            let found: Vec<Arc<KeyEntry>> = hashes.iter().filter_map(|h| keys.get(h)).collect();
            let missing = hashes.len() - found.len();
            if missing > 0 {
                return Err(ApiError::new(
                    404,
                    format!("{missing} of the keys named were not found; none was deleted."),
                ));
            }
            let ids: Vec<i64> = found.iter().map(|e| e.settings().id).collect();
            keys.store
                .delete(&ids)
                .await
                .map_err(StoreError::into_api)?;
            let mut map = keys.map_mut();
            for h in &hashes {
                map.remove(h);
            }
            keys.changed();
            Ok(())
        })
        .await
    }

    pub fn by_alias(&self, alias: &str) -> Option<Arc<KeySettings>> {
        self.map()
            .values()
            .map(|e| e.settings())
            .find(|s| s.key_alias.as_deref() == Some(alias))
    }

    /// A finished request's usage, against its key's budget and tpm, and
    /// into the spend log.
    pub fn record(&self, admission: &Admission, record: SpendRecord) {
        let Some(entry) = admission.entry() else {
            self.spend.push(spend::Event::Spend {
                record: Box::new(record),
                charge: None,
            });
            return;
        };
        entry.count_tokens(record.total_tokens);
        let models = admission.model_counted();
        for model in &models {
            entry.count_model_tokens(model, record.total_tokens);
        }
        let s = entry.settings();
        if let Some(budget) = s.model_budget(&record.model_group) {
            entry.charge_model(&record.model_group, &budget, s.created_at, record.spend);
        }
        if let Some(shared) = self.shared.get() {
            if record.total_tokens > 0 && shared.up() {
                if s.tpm_limit.is_some() {
                    shared.count_tokens(shared.counts(&s.token), record.total_tokens);
                }
                for model in models.iter().filter(|m| s.limits_model_tokens(m)) {
                    shared.count_tokens(shared.model_counts(&s.token, model), record.total_tokens);
                }
            }
        }
        // Queued under the key's lock: the database sees charges and
        // spend set by a reset or an admin in the order they happened.
        let mut s = lock(&entry.spend);
        s.spend += record.spend;
        // Unwritten until the writer says so; a charge the queue has no
        // room for is still written, later, with the writer's next batch.
        s.unwritten += record.spend;
        self.spend.push(spend::Event::Spend {
            record: Box::new(record),
            charge: Some(entry.clone()),
        });
    }

    /// A request's usage and cost: counted against its key and queued for
    /// the spend log.
    pub fn record_usage(
        &self,
        admission: &Admission,
        deployment: &llmux_core::Deployment,
        usage: &llmux_core::Usage,
        cost: Option<f64>,
    ) {
        let settings = admission.entry().map(|e| e.settings());
        let settings = settings.as_deref();
        self.record(
            admission,
            SpendRecord {
                request_id: admission.request_id.clone(),
                call_type: admission.call_type,
                api_key: admission.token().clone(),
                key_alias: settings.and_then(|s| s.key_alias.clone()),
                spend: cost.unwrap_or(0.0),
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                total_tokens: usage.total_tokens,
                start_ms: admission.started_ms,
                end_ms: time::now_ms(),
                model: deployment.upstream_model.clone(),
                model_id: deployment.id.clone(),
                model_group: deployment.model_name.clone(),
                provider: deployment.provider.as_str().to_owned(),
                user_id: settings.and_then(|s| s.user_id.clone()),
                team_id: settings.and_then(|s| s.team_id.clone()),
            },
        );
    }

    /// The writer's queue, for a budget reset to be written in turn.
    pub(crate) fn queue(&self) -> &spend::Queue {
        &self.spend
    }

    /// Waits (up to `wait`) for queued spend to be written: at shutdown.
    pub async fn flush(&self, wait: std::time::Duration) -> bool {
        if let Some(shared) = self.shared.get() {
            // Requests still open (past the shutdown's grace) end here:
            // the other replicas are not left counting them.
            for e in self.map().values() {
                for (id, set) in lock(&e.shared_held).drain() {
                    shared.release(set, id);
                }
            }
            shared.flush(wait).await;
        }
        self.spend.flush(wait).await
    }
}

/// A 503 for a request whose key could not be looked up.
fn database_unavailable() -> ApiError {
    ApiError::new(
        503,
        "The key database did not answer in time; try again shortly.",
    )
    .with_retry_after(Some(std::time::Duration::from_secs(1)))
}

/// A request-id prefix without the system's randomness: the clock and the
/// process id.
fn fallback_prefix() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

pub fn key_not_found() -> ApiError {
    ApiError::new(404, "Key not found.").with_kind(ErrorKind::NotFound)
}

#[cfg(test)]
mod tests;
