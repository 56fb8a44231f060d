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

pub mod edit;
mod limits;
pub mod spend;
pub mod store;
pub mod time;

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
    settings: RwLock<Arc<KeySettings>>,
    spend: Mutex<limits::Spend>,
    window: Mutex<limits::Window>,
    in_flight: std::sync::atomic::AtomicU32,
}

impl KeyEntry {
    fn new(row: KeyRow) -> KeyEntry {
        let spend = limits::Spend {
            spend: row.spend,
            reset_at: row.budget_reset_at,
        };
        KeyEntry {
            settings: RwLock::new(Arc::new(row)),
            spend: Mutex::new(spend),
            window: Mutex::new(limits::Window::default()),
            in_flight: std::sync::atomic::AtomicU32::new(0),
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
    /// Random per process, so request ids do not repeat across restarts.
    id_prefix: u32,
    requests: std::sync::atomic::AtomicU64,
    /// One change of keys at a time: the database and the map agree.
    changing: tokio::sync::Mutex<()>,
}

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
        Ok(Arc::new(Keys {
            by_hash: RwLock::new(by_hash),
            store,
            spend,
            master_hash: master_hash.into(),
            id_prefix: getrandom::u32().unwrap_or(0),
            requests: std::sync::atomic::AtomicU64::new(0),
            changing: tokio::sync::Mutex::new(()),
        }))
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
    pub fn identify(
        &self,
        master: Option<&Secret>,
        headers: &http::HeaderMap,
    ) -> Result<Identity, ApiError> {
        if auth::authorized(master, headers) {
            return Ok(Identity::Master);
        }
        let entry = auth::presented_keys(headers).find_map(|k| self.get(&hash_key(k)));
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
    pub fn admit(
        &self,
        master: Option<&Secret>,
        headers: &http::HeaderMap,
        call_type: &'static str,
    ) -> Result<Arc<Admission>, ApiError> {
        match self.identify(master, headers)? {
            Identity::Master => Ok(Arc::new(Admission::master(self, call_type))),
            Identity::Key(entry) => Admission::key(self, entry, call_type).map(Arc::new),
        }
    }

    /// A new request id: this process's random prefix and a count.
    fn request_id(&self) -> String {
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("req_{:08x}{n:010x}", self.id_prefix)
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
            keys.map_mut().insert(s.token.clone(), entry);
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
            let (entry, row, budget) = keys.edited(&token, &body)?;
            keys.store
                .update(&row)
                .await
                .map_err(StoreError::into_api)?;
            entry.replace(row);
            keys.set_budget(&entry, budget);
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
    /// now, and in the database after the spend queued before, with the
    /// values as they are then (a charge or a reset meanwhile kept).
    fn set_budget(&self, entry: &KeyEntry, budget: edit::Budget) {
        if budget == edit::Budget::default() {
            return;
        }
        let mut s = lock(&entry.spend);
        if let Some(spend) = budget.spend {
            s.spend = spend;
        }
        if let Some(reset_at) = budget.reset_at {
            s.reset_at = reset_at;
        }
        self.spend.push(spend::Event::Budget {
            id: entry.settings().id,
            spend: s.spend,
            reset_at: s.reset_at,
        });
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
            let entry = keys.get(&old).ok_or_else(key_not_found)?;
            let mut row = KeySettings::clone(&entry.settings());
            row.token = hash_key(&new_key);
            row.key_name = abbreviate(&new_key);
            row.updated_at = time::now_secs();
            keys.check_free(&row, &old)?;
            if keys.get(&row.token).is_some() {
                return Err(ApiError::invalid_field("key", "This key already exists."));
            }
            keys.store.rekey(&row).await.map_err(StoreError::into_api)?;
            let token = row.token.clone();
            entry.replace(row);
            let mut map = keys.map_mut();
            map.remove(&old);
            map.insert(token, entry.clone());
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
        // Queued under the key's lock: the database sees charges and
        // spend set by a reset or an admin in the order they happened.
        let mut s = lock(&entry.spend);
        s.spend += record.spend;
        self.spend.push(spend::Event::Spend {
            record: Box::new(record),
            charge: Some(entry.settings().id),
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
        self.spend.flush(wait).await
    }
}

pub fn key_not_found() -> ApiError {
    ApiError::new(404, "Key not found.").with_kind(ErrorKind::NotFound)
}

#[cfg(test)]
mod tests;
