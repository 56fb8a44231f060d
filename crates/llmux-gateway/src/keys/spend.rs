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
    /// A request answered: its log row, and the key record (by id) it is
    /// charged to, if it came with a virtual key.
    Spend {
        record: Box<SpendRecord>,
        charge: Option<i64>,
    },
    /// A key's spend set (0 when its budget period ends) and its next
    /// reset.
    Budget {
        id: i64,
        spend: f64,
        reset_at: Option<i64>,
    },
    /// Answered once everything queued before it is written: true, or
    /// false if that write failed.
    Flush(tokio::sync::oneshot::Sender<bool>),
}

pub struct Queue {
    tx: mpsc::Sender<Event>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
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
        if let Err(e) = self.tx.try_send(ev) {
            {
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

    /// Waits until everything queued before this call is written, or
    /// `wait` passes; false if it passed or the write failed.
    pub async fn flush(&self, wait: Duration) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done =
            async { self.tx.send(Event::Flush(tx)).await.is_ok() && rx.await.unwrap_or(false) };
        tokio::time::timeout(wait, done).await.unwrap_or(false)
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Event>, counts: Arc<Counts>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiting = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // What arrives within the linger joins the same transaction: under
        // load a batch is full at once, with no wait.
        let deadline = tokio::time::Instant::now() + LINGER;
        while let Some(ev) = next.take() {
            match ev {
                Event::Flush(tx) => waiting.push(tx),
                ev => batch.push(ev),
            }
            if batch.len() >= BATCH {
                break;
            }
            if let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                next = Some(ev);
            }
        }
        let mut ok = true;
        if !batch.is_empty() {
            let mut result = store.write(&batch).await;
            if let Err(e) = &result {
                tracing::warn!("writing spend failed, retrying once: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                result = store.write(&batch).await;
            }
            if let Err(e) = result {
                ok = false;
                let n = batch.len() as u64;
                counts.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!("{n} spend records not written to the database: {e}");
            }
        }
        for tx in waiting.drain(..) {
            let _ = tx.send(ok);
        }
        batch.clear();
    }
}
