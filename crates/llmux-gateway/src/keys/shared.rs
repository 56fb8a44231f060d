//! A virtual key's rate limits counted in Redis, so that every replica
//! counts against the same limit: its requests and tokens this minute
//! (a fixed window by Redis's clock, as LiteLLM's limiter counts) and its
//! requests in flight.
//!
//! Each key with a limit has a hash, `llmux:limits:{<key hash>}` (the
//! minute, its requests, its tokens), one more for each model it limits
//! (`…:model:<name>`, the same counts), and a sorted set beside it
//! (`…:inflight`): each request in flight by its request id, scored by when
//! its replica last said it holds it. A request is let in by one script,
//! which drops entries silent for [`STALE`], checks and counts at once. A
//! request's entry is removed when it ends; every [`BEAT`] its replica says
//! again which it holds (only those still there), so a replica that stops
//! without giving its requests back loses them within [`STALE`]. Only keys
//! with a limit go to Redis, after the key's own counts here (which never
//! exceed the shared ones) have let the request pass; a request waits at
//! most [`WAIT`] for Redis. If Redis fails, limits are counted in this
//! process, as without Redis, and one request a second tries Redis again.

use crate::config::RedisSettings;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// How long a request waits for Redis before it is counted here.
const WAIT: Duration = Duration::from_millis(250);
/// How long Redis is left alone after it failed (then one request tries).
const DOWN_FOR: i64 = 1_000;
/// How often a replica says which requests it has in flight.
pub const BEAT: Duration = Duration::from_secs(10);
/// A request its replica has not said it holds for this long is over.
const STALE: u64 = 30;
/// A key's counts are dropped this long after they were last touched.
const TTL: u64 = 180;
/// Warnings about Redis failing, at most one this often (ms).
const WARN_EVERY: i64 = 30_000;

/// Lets a request in, or says which limit stops it. KEYS: the key's
/// counts, its requests in flight. ARGV: request id, rpm, tpm, parallel
/// (-1: no limit), stale, ttl. Returns {0, requests, tokens} to let in
/// (this minute's, the request counted), else {limit (1 parallel, 2 rpm,
/// 3 tpm), count, seconds until it may pass}.
const ADMIT: &str = r"
local now = tonumber(redis.call('TIME')[1])
local minute = math.floor(now / 60)
local k, f, id = KEYS[1], KEYS[2], ARGV[1]
local rpm, tpm, par = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local stale, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
-- Run again after a lost answer: already let in.
if par >= 0 and redis.call('ZSCORE', f, id) then
  return {0, tonumber(redis.call('HGET', k, 'requests') or 0),
    tonumber(redis.call('HGET', k, 'tokens') or 0)}
end
if tonumber(redis.call('HGET', k, 'minute') or -1) ~= minute then
  redis.call('HSET', k, 'minute', minute, 'requests', 0, 'tokens', 0)
  redis.call('EXPIRE', k, ttl)
end
local wait = 60 - now % 60
if par >= 0 then
  redis.call('ZREMRANGEBYSCORE', f, '-inf', now - stale)
  local live = redis.call('ZCARD', f)
  if live >= par then return {1, live, 1} end
end
local requests = tonumber(redis.call('HGET', k, 'requests') or 0)
if rpm >= 0 and requests >= rpm then return {2, requests, wait} end
local tokens = tonumber(redis.call('HGET', k, 'tokens') or 0)
if tpm >= 0 and tokens >= tpm then return {3, tokens, wait} end
requests = redis.call('HINCRBY', k, 'requests', 1)
redis.call('EXPIRE', k, ttl)
if par >= 0 then
  redis.call('ZADD', f, now, id)
  redis.call('EXPIRE', f, ttl)
end
return {0, requests, tokens}
";

/// Counts a finished request's tokens in this minute. ARGV: tokens, ttl.
const TOKENS: &str = r"
local now = tonumber(redis.call('TIME')[1])
local minute = math.floor(now / 60)
local k = KEYS[1]
if tonumber(redis.call('HGET', k, 'minute') or -1) ~= minute then
  redis.call('HSET', k, 'minute', minute, 'requests', 0, 'tokens', 0)
end
redis.call('HINCRBY', k, 'tokens', ARGV[1])
redis.call('EXPIRE', k, ARGV[2])
return 0
";

/// Says this replica still holds the requests named (those not already
/// ended or dropped as stale: never added back). KEYS: a key's requests in
/// flight. ARGV: request ids…, ttl.
const BEAT_SCRIPT: &str = r"
local now = tonumber(redis.call('TIME')[1])
for i = 1, #ARGV - 1 do
  redis.call('ZADD', KEYS[1], 'XX', now, ARGV[i])
end
redis.call('EXPIRE', KEYS[1], ARGV[#ARGV])
return 0
";

/// What Redis said of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let in: the key's requests this minute (this one counted) and its
    /// tokens.
    Admit(u64, u64),
    /// The key's requests in flight, on every replica.
    Parallel(u64),
    /// Its requests this minute; seconds to the next.
    Requests(u64, u64),
    /// Its tokens this minute; seconds to the next.
    Tokens(u64, u64),
}

/// Work done after a request, off its path: in order, batched, on the
/// runtime that lives longest (so the last requests' are done at
/// shutdown too).
enum Job {
    /// Takes a request id out of a key's requests in flight.
    Release(Arc<str>, String),
    /// Adds tokens to a key's counts.
    Tokens(String, u64),
    /// Says when every job before it is done.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Jobs waiting at most; past that, one is dropped (a release then goes
/// stale by itself).
const JOBS: usize = 65_536;

pub struct Shared {
    /// Which of the process's clients this is (their connections are kept
    /// per thread by it).
    id: usize,
    jobs: tokio::sync::mpsc::Sender<Job>,
    client: crate::config::RedisClient,
    prefix: String,
    admit: redis::Script,
    /// Unix ms until which Redis is not asked (it failed); 0 while it
    /// answers.
    down_until: AtomicI64,
    warned_at: AtomicI64,
    /// Where, for messages: no user or password.
    pub place: String,
}

impl Shared {
    /// A client for `settings`' Redis, its jobs run on the current runtime;
    /// it connects on first use, and again whenever the connection is lost.
    pub fn start(settings: &RedisSettings) -> redis::RedisResult<Arc<Shared>> {
        let (tx, rx) = tokio::sync::mpsc::channel(JOBS);
        let shared = Arc::new(Shared::new(settings, tx)?);
        tokio::spawn(run_jobs(Arc::downgrade(&shared), rx));
        Ok(shared)
    }

    fn new(
        settings: &RedisSettings,
        jobs: tokio::sync::mpsc::Sender<Job>,
    ) -> redis::RedisResult<Shared> {
        let client = settings.client()?;
        let prefix = settings.key("llmux:limits:");
        static IDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        Ok(Shared {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            jobs,
            client,
            prefix,
            admit: redis::Script::new(ADMIT),
            down_until: AtomicI64::new(0),
            warned_at: AtomicI64::new(i64::MIN / 2),
            place: settings.redacted(),
        })
    }

    /// This thread's connection: each worker thread (a runtime of its
    /// own) talks to Redis on its own connection, so a call and its answer
    /// never wait on another thread. Made on first use, on this thread's
    /// runtime; it connects again by itself whenever it is lost.
    fn conn(&self) -> redis::RedisResult<ConnectionManager> {
        CONNS.with_borrow_mut(|conns| {
            if let Some((_, c)) = conns.iter().find(|(id, _)| *id == self.id) {
                return Ok(c.clone());
            }
            let c = self.client.connect()?;
            conns.push((self.id, c.clone()));
            Ok(c)
        })
    }

    /// Drops this thread's connection, so the next call makes a new one: a
    /// connection that timed out or failed may never recover by itself
    /// (a silent peer, a failed AUTH kept as its error).
    fn reset_conn(&self) {
        CONNS.with_borrow_mut(|conns| conns.retain(|(id, _)| *id != self.id));
    }

    /// The name of a key's counts. Its requests in flight are beside
    /// them ([`inflight`]), in one cluster slot: the key's hash is their
    /// hash tag.
    pub fn counts(&self, token: &str) -> String {
        format!("{}{{{token}}}", self.prefix)
    }

    /// The name of a key's counts on one model (its `model_rpm_limit`,
    /// `model_tpm_limit`), in the key's cluster slot.
    pub fn model_counts(&self, token: &str, model: &str) -> String {
        format!("{}{{{token}}}:model:{model}", self.prefix)
    }

    /// Whether to ask Redis now: yes while it answers; after it failed,
    /// no for a second, then yes for one caller, whose answer decides.
    pub fn up(&self) -> bool {
        let until = self.down_until.load(Ordering::Relaxed);
        if until == 0 {
            return true;
        }
        let now = super::time::now_ms();
        now >= until
            && self
                .down_until
                .compare_exchange(until, now + DOWN_FOR, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    fn answered(&self) {
        if self.down_until.load(Ordering::Relaxed) != 0 {
            self.down_until.store(0, Ordering::Relaxed);
        }
    }

    fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        self.reset_conn();
        let now = super::time::now_ms();
        self.down_until.store(now + DOWN_FOR, Ordering::Relaxed);
        let last = self.warned_at.load(Ordering::Relaxed);
        if now - last >= WARN_EVERY
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                redis = %self.place,
                "{what} in Redis failed ({e}); rate limits are counted per process until it answers"
            );
        }
    }

    /// Checks and counts request `id` of the key whose counts are
    /// `counts` (and requests in flight `inflight`). None if Redis did not
    /// answer in time (count it here); a request it may have let in
    /// meanwhile is taken out again.
    pub async fn admit(
        self: &Arc<Self>,
        (counts, inflight): (&str, &Arc<str>),
        id: &str,
        rpm: Option<u64>,
        tpm: Option<u64>,
        parallel: Option<u32>,
    ) -> Option<Verdict> {
        let limit = |n: Option<u64>| n.map_or(-1, |n| n.min(i64::MAX as u64) as i64);
        // Until Redis has answered: a request it counted in flight and
        // this one never learned of (the wait ran out, the client left)
        // is removed.
        let mut pending = Pending {
            shared: self,
            inflight,
            id,
            armed: parallel.is_some(),
        };
        let mut conn = match self.conn() {
            Ok(c) => c,
            Err(e) => {
                self.failed("counting a request", &e);
                return None;
            }
        };
        let mut invocation = self.admit.key(counts);
        invocation
            .key(&**inflight)
            .arg(id)
            .arg(limit(rpm))
            .arg(limit(tpm))
            .arg(limit(parallel.map(u64::from)))
            .arg(STALE)
            .arg(TTL);
        // A connection Redis dropped (it restarted) fails the call that
        // finds it so, and is made again: that call is tried once more.
        let call = async {
            match invocation.invoke_async::<Vec<i64>>(&mut conn).await {
                Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                    invocation.invoke_async::<Vec<i64>>(&mut conn).await
                }
                answer => answer,
            }
        };
        let answer = match tokio::time::timeout(WAIT, call).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                self.failed("counting a request", &e);
                return None;
            }
            Err(_) => {
                self.failed("counting a request", &"no answer in 250 ms");
                return None;
            }
        };
        pending.armed = false;
        self.answered();
        let n = |i: usize| answer.get(i).copied().unwrap_or(0).max(0) as u64;
        Some(match answer.first() {
            Some(1) => Verdict::Parallel(n(1)),
            Some(2) => Verdict::Requests(n(1), n(2)),
            Some(3) => Verdict::Tokens(n(1), n(2)),
            _ => Verdict::Admit(n(1), n(2)),
        })
    }

    /// Counts a finished request's tokens, in the background.
    pub fn count_tokens(&self, counts: String, tokens: u64) {
        if tokens > 0 {
            let _ = self.jobs.try_send(Job::Tokens(counts, tokens));
        }
    }

    /// Takes request `id` out of the key's requests in flight, in the
    /// background (if this is lost, it goes stale).
    pub fn release(&self, inflight: Arc<str>, id: String) {
        let _ = self.jobs.try_send(Job::Release(inflight, id));
    }

    /// Waits (up to `wait`) for the jobs queued so far to be done: at
    /// shutdown, so the other replicas are not left counting this one's
    /// last requests.
    pub async fn flush(&self, wait: Duration) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = tokio::time::timeout(wait, self.jobs.send(Job::Flush(tx))).await;
        if matches!(queued, Ok(Ok(()))) {
            let _ = tokio::time::timeout(wait, rx).await;
        }
    }

    /// Says which requests this replica still has in flight, for each key
    /// (by its requests-in-flight name), so they do not go stale.
    pub async fn beat(&self, held: Vec<(Arc<str>, Vec<String>)>) {
        if held.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (inflight, ids) in &held {
            pipe.cmd("EVAL")
                .arg(BEAT_SCRIPT)
                .arg(1)
                .arg(&**inflight)
                .arg(ids)
                .arg(TTL)
                .ignore();
        }
        // Scripts run by body here: one call a beat, and Redis may have
        // been restarted since (its cached scripts gone).
        let mut conn = match self.conn() {
            Ok(c) => c,
            Err(e) => return self.failed("saying which requests are in flight", &e),
        };
        let r = tokio::time::timeout(Duration::from_secs(5), pipe.query_async::<()>(&mut conn));
        match r.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.failed("saying which requests are in flight", &e),
            Err(_) => self.failed("saying which requests are in flight", &"no answer in 5 s"),
        }
    }

    /// Whether Redis answers within `wait`, and if not, why.
    pub async fn ping(&self, wait: Duration) -> Result<(), String> {
        let mut conn = self.conn().map_err(|e| e.to_string())?;
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(wait, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer in {} ms", wait.as_millis())),
        }
    }
}

thread_local! {
    /// Each client's connection on this thread, by the client's id.
    static CONNS: std::cell::RefCell<Vec<(usize, ConnectionManager)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The name of the requests in flight beside the counts `counts`.
pub fn inflight(counts: &str) -> Arc<str> {
    format!("{counts}:inflight").into()
}

/// A request Redis may have counted in flight before this process knew
/// it had: removed again unless disarmed.
struct Pending<'a> {
    shared: &'a Arc<Shared>,
    inflight: &'a Arc<str>,
    id: &'a str,
    armed: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared
                .release(self.inflight.clone(), self.id.to_owned());
        }
    }
}

/// Runs the jobs queued, a batch (what is waiting, up to 512) a round
/// trip, until the client is dropped.
async fn run_jobs(shared: std::sync::Weak<Shared>, mut rx: tokio::sync::mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(512);
    while rx.recv_many(&mut batch, 512).await > 0 {
        let Some(shared) = shared.upgrade() else {
            break;
        };
        let mut pipe = redis::pipe();
        let mut calls = 0;
        let mut flushed = Vec::new();
        for job in batch.drain(..) {
            match job {
                Job::Release(inflight, id) => {
                    pipe.cmd("ZREM").arg(&*inflight).arg(id).ignore();
                    calls += 1;
                }
                Job::Tokens(counts, tokens) => {
                    pipe.cmd("EVAL")
                        .arg(TOKENS)
                        .arg(1)
                        .arg(counts)
                        .arg(tokens.min(i64::MAX as u64))
                        .arg(TTL)
                        .ignore();
                    calls += 1;
                }
                Job::Flush(done) => flushed.push(done),
            }
        }
        if calls > 0 {
            let r = match shared.conn() {
                Ok(mut conn) => {
                    match tokio::time::timeout(
                        Duration::from_secs(5),
                        pipe.query_async::<()>(&mut conn),
                    )
                    .await
                    {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(_) => Err("no answer in 5 s".to_owned()),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            match r {
                Ok(()) => shared.answered(),
                Err(e) => shared.failed("counting tokens and ending requests", &e),
            }
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}
