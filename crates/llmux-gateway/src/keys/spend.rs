//! Spend, off the request path: a request's record goes into a bounded
//! queue, and one writer task takes whatever has gathered and writes it in
//! one transaction. A full queue (the database far behind) is counted and
//! logged, never waited on by a request.

use super::KeyEntry;
use super::store::{KeyRow, Store, StoreError};
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
    /// A request answered: its log row, and the key it is charged to (by
    /// its record's id, which a regenerated key keeps), if it came with a
    /// virtual key.
    Spend {
        record: Box<SpendRecord>,
        charge: Option<Arc<KeyEntry>>,
    },
    /// A key's spend and its next reset, each if set (spend 0 and the
    /// next reset when its budget period ends). A reset is written only if the stored period is still the
    /// one that ended (`if_reset_at`): another replica may have reset it
    /// first.
    Budget {
        entry: Arc<KeyEntry>,
        spend: Option<f64>,
        reset_at: Option<Option<i64>>,
        if_reset_at: Option<i64>,
    },
    /// Answered once everything queued before it is written: true, or
    /// false if that write failed.
    Flush(tokio::sync::oneshot::Sender<bool>),
    /// Reads every key and hands them to `apply`, between two writes: what
    /// this process has charged is then either in the rows read or still
    /// counted as unwritten, never both or neither.
    Sync(Box<dyn FnOnce(Result<Vec<KeyRow>, StoreError>) + Send + Sync>),
}

pub struct Queue {
    tx: mpsc::Sender<Event>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    dropped: AtomicU64,
    /// Charges not yet in the database whose requests' rows could not be
    /// (a full queue, a failed write): summed by key, written with the
    /// writer's next batch.
    debt: std::sync::Mutex<Debt>,
}

/// Charges owed to keys' records, by record id.
pub(super) type Debt = std::collections::HashMap<i64, (Arc<KeyEntry>, f64)>;

impl Counts {
    fn owe(&self, entry: &Arc<KeyEntry>, charge: f64) {
        if charge == 0.0 {
            return;
        }
        let mut debt = super::lock(&self.debt);
        debt.entry(entry.id())
            .or_insert_with(|| (entry.clone(), 0.0))
            .1 += charge;
    }

    fn take_debt(&self) -> Debt {
        std::mem::take(&mut *super::lock(&self.debt))
    }
}

impl Queue {
    /// The queue, and its writer on the current runtime.
    pub fn start(store: Store) -> Queue {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let counts = Arc::new(Counts::default());
        tokio::spawn(writer(store, rx, counts.clone()));
        Queue { tx, counts }
    }

    /// Queues `ev`, or drops it (counted and logged) if the queue is full;
    /// true if queued.
    pub fn push(&self, ev: Event) -> bool {
        let Err(e) = self.tx.try_send(ev) else {
            return true;
        };
        let (why, ev) = match e {
            mpsc::error::TrySendError::Full(ev) => ("the spend queue is full", ev),
            mpsc::error::TrySendError::Closed(ev) => ("the spend writer stopped", ev),
        };
        // The row is lost; the charge is owed, and written with the next
        // batch.
        if let Event::Spend {
            record,
            charge: Some(entry),
        } = &ev
        {
            self.counts.owe(entry, record.spend);
        }
        let n = self.counts.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 || n % 1000 == 0 {
            tracing::error!(
                dropped = n,
                "{why}: spend log rows not written to the database (the keys' charges are \
                 kept, and written later)"
            );
        }
        false
    }

    /// Queues `ev`, waiting for room: for background work, never a
    /// request.
    pub async fn send(&self, ev: Event) -> bool {
        self.tx.send(ev).await.is_ok()
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
        let mut ok = true;
        while let Some(ev) = next.take() {
            match ev {
                Event::Flush(tx) => waiting.push(tx),
                Event::Sync(apply) => {
                    // Whatever gathered so far is written first: the read
                    // must see it.
                    ok &= write(&store, &mut batch, &counts).await;
                    apply(store.load().await);
                }
                ev => batch.push(ev),
            }
            if batch.len() >= BATCH {
                break;
            }
            if let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                next = Some(ev);
            }
        }
        ok &= write(&store, &mut batch, &counts).await;
        for tx in waiting.drain(..) {
            let _ = tx.send(ok);
        }
    }
}

/// Writes a batch, and the charges owed from before (tried three times),
/// and empties it; false if it failed. Written charges stop counting as
/// the keys' unwritten spend; a failed batch's rows are lost, its charges
/// owed to the next.
async fn write(store: &Store, batch: &mut Vec<Event>, counts: &Counts) -> bool {
    let debt = counts.take_debt();
    if batch.is_empty() && debt.is_empty() {
        return true;
    }
    let owed: Vec<(i64, f64)> = debt.iter().map(|(id, (_, sum))| (*id, *sum)).collect();
    // A transaction another replica's deadlocked or a database briefly
    // away: tried three times, half a second and a second apart.
    let mut result = store.write(batch, &owed).await;
    for wait in [500, 1000] {
        let Err(e) = &result else { break };
        tracing::warn!("writing spend failed, trying again: {e}");
        tokio::time::sleep(Duration::from_millis(wait)).await;
        result = store.write(batch, &owed).await;
    }
    let ok = match result {
        Ok(()) => true,
        Err(e) => {
            let n = batch
                .iter()
                .filter(|ev| matches!(ev, Event::Spend { .. }))
                .count() as u64;
            counts.dropped.fetch_add(n, Ordering::Relaxed);
            tracing::error!(
                "{n} spend log rows not written to the database (the keys' charges are kept, \
                 and written later): {e}"
            );
            false
        }
    };
    for (entry, sum) in debt.into_values() {
        if ok {
            entry.written(sum);
        } else {
            counts.owe(&entry, sum);
        }
    }
    for ev in batch.drain(..) {
        match ev {
            Event::Spend {
                record,
                charge: Some(entry),
            } => {
                if ok {
                    entry.written(record.spend);
                } else {
                    counts.owe(&entry, record.spend);
                }
            }
            Event::Budget { entry, .. } => entry.budget_written(),
            _ => {}
        }
    }
    ok
}
