//! Spend, off the request path: a request's record goes into a bounded
//! queue, and one writer task takes whatever has gathered and writes it in
//! one transaction. A full queue (the database far behind) is counted and
//! logged, never waited on by a request.

use super::store::Store;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Records the queue holds before it refuses more.
const CAPACITY: usize = 16_384;
/// Records written in one transaction at most.
const BATCH: usize = 512;
/// How long the writer waits after a record for others to join it.
const LINGER: Duration = Duration::from_millis(20);

/// One request answered, as `/spend/logs` lists it (LiteLLM's
/// `LiteLLM_SpendLogs` row).
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRecord {
    pub request_id: String,
    /// `acompletion` (`/chat/completions`) or `anthropic_messages`.
    pub call_type: &'static str,
    /// The hash of the key the request came with.
    pub api_key: Arc<str>,
    pub key_alias: Option<String>,
    pub spend: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Unix milliseconds.
    pub start_ms: i64,
    pub end_ms: i64,
    /// The provider's model name.
    pub model: String,
    /// The deployment's id.
    pub model_id: String,
    /// The model name clients ask for.
    pub model_group: String,
    pub provider: String,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
}

impl SpendRecord {
    /// The row in LiteLLM's field names.
    pub fn to_json(&self) -> Value {
        json!({
            "request_id": self.request_id,
            "call_type": self.call_type,
            "api_key": &*self.api_key,
            "spend": self.spend,
            "total_tokens": self.total_tokens,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "startTime": super::time::iso8601_ms(self.start_ms),
            "endTime": super::time::iso8601_ms(self.end_ms),
            "model": self.model,
            "model_id": self.model_id,
            "model_group": self.model_group,
            "custom_llm_provider": self.provider,
            "user": self.user_id.clone().unwrap_or_default(),
            "team_id": self.team_id,
            "metadata": {"user_api_key_alias": self.key_alias},
        })
    }
}

pub enum Event {
    /// A request answered: its log row, and the key (by hash) it is
    /// charged to, if it came with a virtual key.
    Spend {
        record: Box<SpendRecord>,
        charge: Option<String>,
    },
    /// A key's spend set (0 when its budget period ends) and its next
    /// reset.
    Budget {
        token: String,
        spend: f64,
        reset_at: Option<i64>,
    },
    /// A key's record moved to a new key's hash.
    Rekey {
        old: String,
        new: String,
        key_name: String,
        updated_at: i64,
    },
}

pub struct Queue {
    tx: mpsc::Sender<Event>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
}

impl Queue {
    /// The queue, and its writer on the current runtime.
    pub fn start(store: Store) -> Queue {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let counts = Arc::new(Counts::default());
        tokio::spawn(writer(store, rx, counts.clone()));
        Queue { tx, counts }
    }

    pub fn push(&self, ev: Event) {
        match self.tx.try_send(ev) {
            Ok(()) => {
                self.counts.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let n = self.counts.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n % 1000 == 0 {
                    let why = match e {
                        mpsc::error::TrySendError::Full(_) => "the spend queue is full",
                        mpsc::error::TrySendError::Closed(_) => "the spend writer stopped",
                    };
                    tracing::error!(
                        dropped = n,
                        "{why}: spend records not written to the database \
                         (budgets still count them in memory)"
                    );
                }
            }
        }
    }

    /// Records not written, ever (queue full, writer stopped, database
    /// errors).
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// Waits until everything queued so far has been handled (written, or
    /// given up on and logged), or `wait` passes; false if it passed.
    pub async fn flush(&self, wait: Duration) -> bool {
        let target = self.counts.queued.load(Ordering::Relaxed);
        let done = async {
            while self.counts.written.load(Ordering::Relaxed) < target {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(wait, done).await.is_ok()
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Event>, counts: Arc<Counts>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(ev) = rx.recv().await {
        batch.push(ev);
        // What arrives meanwhile joins the same transaction: under load a
        // batch a linger, not a transaction a request.
        tokio::time::sleep(LINGER).await;
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(_) => break,
            }
        }
        let mut result = store.write(&batch).await;
        if let Err(e) = &result {
            tracing::warn!("writing spend failed, retrying once: {e}");
            tokio::time::sleep(Duration::from_millis(500)).await;
            result = store.write(&batch).await;
        }
        if let Err(e) = result {
            let n = batch.len() as u64;
            counts.dropped.fetch_add(n, Ordering::Relaxed);
            tracing::error!("{n} spend records not written to the database: {e}");
        }
        counts
            .written
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
    }
}
