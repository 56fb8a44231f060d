//! The keys' and spend's database: SQLite (a file, or `sqlite::memory:`),
//! through sqlx. Two tables: `llmux_keys`, a row per virtual key by its
//! hash (the key itself is never stored), and `llmux_spend_logs`, a row per
//! request answered.

use super::spend::SpendRecord;
use llmux_core::ApiError;
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "database_url `{0}` is not a SQLite URL (sqlite://path/to/llmux.db or sqlite::memory:)"
    )]
    Url(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    /// The error a client sees: a taken alias or key as a 400, anything
    /// else as a 500 whose details are in the gateway's log only.
    pub fn into_api(self) -> ApiError {
        if let StoreError::Db(sqlx::Error::Database(e)) = &self {
            if e.is_unique_violation() {
                return ApiError::bad_request("A key with this key or key_alias already exists.");
            }
        }
        tracing::error!("{self}");
        ApiError::internal("The key database failed; the gateway's log has the details.")
    }
}

/// One virtual key's settings as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    /// The record's own id: stays when the key is regenerated, so spend
    /// queued for it lands on it whatever its key is by then.
    pub id: i64,
    /// The key's SHA-256, hex.
    pub token: String,
    /// `sk-...` and its last four characters.
    pub key_name: String,
    pub key_alias: Option<String>,
    /// Models it may use; none listed: all.
    pub models: Vec<String>,
    /// Spend as of the last write; the running spend is in memory.
    pub spend: f64,
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    /// Unix seconds.
    pub budget_reset_at: Option<i64>,
    pub tpm_limit: Option<u64>,
    pub rpm_limit: Option<u64>,
    pub max_parallel_requests: Option<u32>,
    pub metadata: Map<String, Value>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub blocked: bool,
    /// Unix seconds.
    pub expires: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl KeyRow {
    /// A new key's record: no limits, all models, nothing spent.
    pub fn new(key: &str, now: i64) -> KeyRow {
        KeyRow {
            id: 0,
            token: super::hash_key(key),
            key_name: super::abbreviate(key),
            key_alias: None,
            models: Vec::new(),
            spend: 0.0,
            max_budget: None,
            budget_duration: None,
            budget_reset_at: None,
            tpm_limit: None,
            rpm_limit: None,
            max_parallel_requests: None,
            metadata: Map::new(),
            user_id: None,
            team_id: None,
            blocked: false,
            expires: None,
            created_at: now,
            updated_at: now,
        }
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS llmux_keys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token TEXT NOT NULL UNIQUE,
        key_name TEXT NOT NULL,
        key_alias TEXT UNIQUE,
        models TEXT NOT NULL DEFAULT '[]',
        spend REAL NOT NULL DEFAULT 0,
        max_budget REAL,
        budget_duration TEXT,
        budget_reset_at INTEGER,
        tpm_limit INTEGER,
        rpm_limit INTEGER,
        max_parallel_requests INTEGER,
        metadata TEXT NOT NULL DEFAULT '{}',
        user_id TEXT,
        team_id TEXT,
        blocked INTEGER NOT NULL DEFAULT 0,
        expires INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS llmux_spend_logs (
        request_id TEXT PRIMARY KEY,
        call_type TEXT NOT NULL,
        api_key TEXT NOT NULL,
        key_alias TEXT,
        spend REAL NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        total_tokens INTEGER NOT NULL,
        start_time INTEGER NOT NULL,
        end_time INTEGER NOT NULL,
        model TEXT NOT NULL,
        model_id TEXT NOT NULL,
        model_group TEXT NOT NULL,
        custom_llm_provider TEXT NOT NULL,
        user_id TEXT,
        team_id TEXT
    )",
    "CREATE INDEX IF NOT EXISTS llmux_spend_logs_by_key ON llmux_spend_logs (api_key, start_time)",
    "CREATE INDEX IF NOT EXISTS llmux_spend_logs_by_time ON llmux_spend_logs (start_time)",
];

const KEY_COLUMNS: &str = "id, token, key_name, key_alias, models, spend, max_budget, budget_duration, \
     budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, metadata, user_id, team_id, \
     blocked, expires, created_at, updated_at";

/// What `/spend/logs` may filter by.
#[derive(Debug, Default)]
pub struct SpendQuery {
    pub api_key: Option<String>,
    pub user_id: Option<String>,
    pub request_id: Option<String>,
    /// Unix milliseconds, inclusive.
    pub from_ms: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub to_ms: Option<i64>,
    pub limit: u32,
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::Url(url.to_owned()));
        }
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(5));
        let options = if memory {
            options
        } else {
            // WAL with `synchronous = NORMAL`: a commit is not an fsync
            // (the database stays sound; a power cut may lose the last
            // moments of spend logs).
            options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        };
        // An in-memory database lives as long as its one connection.
        let pool = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(4)
        };
        let pool = pool.connect_with(options).await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        Ok(Store { pool })
    }

    pub async fn load(&self) -> Result<Vec<KeyRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM llmux_keys"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(key_row).collect())
    }

    /// Adds a key's record; returns the id the database gave it.
    pub async fn insert(&self, k: &KeyRow) -> Result<i64, StoreError> {
        let sql = format!(
            "INSERT INTO llmux_keys ({KEY_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let done = bind_key(sqlx::query(&sql), k).execute(&self.pool).await?;
        Ok(done.last_insert_rowid())
    }

    /// Writes a key's settings; not its spend or its next budget reset,
    /// which only the spend writer writes, in turn.
    pub async fn update(&self, k: &KeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE llmux_keys SET key_name = ?, key_alias = ?, models = ?, max_budget = ?, \
             budget_duration = ?, tpm_limit = ?, rpm_limit = ?, max_parallel_requests = ?, \
             metadata = ?, user_id = ?, team_id = ?, blocked = ?, expires = ?, updated_at = ? \
             WHERE id = ?",
        )
        .bind(&k.key_name)
        .bind(&k.key_alias)
        .bind(Value::from(k.models.clone()).to_string())
        .bind(k.max_budget)
        .bind(&k.budget_duration)
        .bind(k.tpm_limit.map(|n| n as i64))
        .bind(k.rpm_limit.map(|n| n as i64))
        .bind(k.max_parallel_requests.map(i64::from))
        .bind(Value::Object(k.metadata.clone()).to_string())
        .bind(&k.user_id)
        .bind(&k.team_id)
        .bind(k.blocked)
        .bind(k.expires)
        .bind(k.updated_at)
        .bind(k.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives a record a new key (its hash and short name).
    pub async fn rekey(&self, k: &KeyRow) -> Result<(), StoreError> {
        sqlx::query("UPDATE llmux_keys SET token = ?, key_name = ?, updated_at = ? WHERE id = ?")
            .bind(&k.token)
            .bind(&k.key_name)
            .bind(k.updated_at)
            .bind(k.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete(&self, ids: &[i64]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for t in ids {
            sqlx::query("DELETE FROM llmux_keys WHERE id = ?")
                .bind(t)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes a batch the spend writer gathered, in one transaction: the
    /// log rows in multi-row inserts, and each key's charges summed into
    /// one update, between the budget changes and re-keys they must come
    /// before or after.
    pub(super) async fn write(&self, batch: &[super::spend::Event]) -> Result<(), StoreError> {
        use super::spend::Event;
        let mut tx = self.pool.begin().await?;
        let mut rows: Vec<&SpendRecord> = Vec::new();
        let mut charges: Vec<(i64, f64)> = Vec::new();
        for ev in batch {
            if let Event::Spend { record, charge } = ev {
                rows.push(record);
                if let (Some(id), true) = (*charge, record.spend != 0.0) {
                    match charges.iter_mut().find(|(k, _)| *k == id) {
                        Some((_, sum)) => *sum += record.spend,
                        None => charges.push((id, record.spend)),
                    }
                }
                continue;
            }
            flush_charges(&mut tx, &mut charges).await?;
            if let Event::Budget {
                id,
                spend,
                reset_at,
            } = ev
            {
                sqlx::query("UPDATE llmux_keys SET spend = ?, budget_reset_at = ? WHERE id = ?")
                    .bind(spend)
                    .bind(reset_at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        flush_charges(&mut tx, &mut charges).await?;
        // Chunks of 32, 16, …, 1 rows: six statement shapes at most, each
        // prepared once per connection.
        let mut rest = &rows[..];
        while !rest.is_empty() {
            let n = [32, 16, 8, 4, 2, 1]
                .into_iter()
                .find(|n| *n <= rest.len())
                .unwrap_or(1);
            let (chunk, tail) = rest.split_at(n);
            insert_logs(&mut tx, chunk).await?;
            rest = tail;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Spend log rows, newest first.
    pub async fn spend_logs(&self, q: &SpendQuery) -> Result<Vec<SpendRecord>, StoreError> {
        let mut sql = String::from(
            "SELECT request_id, call_type, api_key, key_alias, spend, prompt_tokens, \
             completion_tokens, total_tokens, start_time, end_time, model, model_id, model_group, \
             custom_llm_provider, user_id, team_id FROM llmux_spend_logs WHERE 1 = 1",
        );
        for (cond, on) in [
            (" AND api_key = ?", q.api_key.is_some()),
            (" AND user_id = ?", q.user_id.is_some()),
            (" AND request_id = ?", q.request_id.is_some()),
            (" AND start_time >= ?", q.from_ms.is_some()),
            (" AND start_time < ?", q.to_ms.is_some()),
        ] {
            if on {
                sql.push_str(cond);
            }
        }
        sql.push_str(" ORDER BY start_time DESC, request_id DESC LIMIT ?");
        let mut query = sqlx::query(&sql);
        for s in [&q.api_key, &q.user_id, &q.request_id]
            .into_iter()
            .flatten()
        {
            query = query.bind(s);
        }
        for t in [q.from_ms, q.to_ms].into_iter().flatten() {
            query = query.bind(t);
        }
        let rows = query.bind(q.limit as i64).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(spend_row).collect())
    }
}

const LOG_COLUMNS: &str = "request_id, call_type, api_key, key_alias, spend, prompt_tokens, \
     completion_tokens, total_tokens, start_time, end_time, model, model_id, model_group, \
     custom_llm_provider, user_id, team_id";

async fn insert_logs(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    rows: &[&SpendRecord],
) -> Result<(), StoreError> {
    let one = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let values = vec![one; rows.len()].join(", ");
    let sql = format!("INSERT OR IGNORE INTO llmux_spend_logs ({LOG_COLUMNS}) VALUES {values}");
    let mut q = sqlx::query(&sql);
    for r in rows {
        q = q
            .bind(&r.request_id)
            .bind(r.call_type)
            .bind(&*r.api_key)
            .bind(&r.key_alias)
            .bind(r.spend)
            .bind(r.prompt_tokens as i64)
            .bind(r.completion_tokens as i64)
            .bind(r.total_tokens as i64)
            .bind(r.start_ms)
            .bind(r.end_ms)
            .bind(&r.model)
            .bind(&r.model_id)
            .bind(&r.model_group)
            .bind(&r.provider)
            .bind(&r.user_id)
            .bind(&r.team_id);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Each key's summed charges, in one update a key.
async fn flush_charges(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    charges: &mut Vec<(i64, f64)>,
) -> Result<(), StoreError> {
    for (id, sum) in charges.drain(..) {
        sqlx::query("UPDATE llmux_keys SET spend = spend + ? WHERE id = ?")
            .bind(sum)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn bind_key<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    k: &'q KeyRow,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    // A new record's id is the database's to give.
    q.bind(Some(k.id).filter(|id| *id > 0))
        .bind(&k.token)
        .bind(&k.key_name)
        .bind(&k.key_alias)
        .bind(Value::from(k.models.clone()).to_string())
        .bind(k.spend)
        .bind(k.max_budget)
        .bind(&k.budget_duration)
        .bind(k.budget_reset_at)
        .bind(k.tpm_limit.map(|n| n as i64))
        .bind(k.rpm_limit.map(|n| n as i64))
        .bind(k.max_parallel_requests.map(i64::from))
        .bind(Value::Object(k.metadata.clone()).to_string())
        .bind(&k.user_id)
        .bind(&k.team_id)
        .bind(k.blocked)
        .bind(k.expires)
        .bind(k.created_at)
        .bind(k.updated_at)
}

fn key_row(r: &SqliteRow) -> KeyRow {
    let text = |c: &str| r.try_get::<Option<String>, _>(c).ok().flatten();
    let int = |c: &str| r.try_get::<Option<i64>, _>(c).ok().flatten();
    let models = text("models")
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let metadata = text("metadata")
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    KeyRow {
        id: int("id").unwrap_or(0),
        token: text("token").unwrap_or_default(),
        key_name: text("key_name").unwrap_or_default(),
        key_alias: text("key_alias"),
        models,
        spend: r.try_get::<f64, _>("spend").unwrap_or(0.0),
        max_budget: r.try_get::<Option<f64>, _>("max_budget").ok().flatten(),
        budget_duration: text("budget_duration"),
        budget_reset_at: int("budget_reset_at"),
        tpm_limit: int("tpm_limit").map(|n| n.max(0) as u64),
        rpm_limit: int("rpm_limit").map(|n| n.max(0) as u64),
        max_parallel_requests: int("max_parallel_requests")
            .map(|n| n.clamp(0, u32::MAX as i64) as u32),
        metadata,
        user_id: text("user_id"),
        team_id: text("team_id"),
        blocked: int("blocked").unwrap_or(0) != 0,
        expires: int("expires"),
        created_at: int("created_at").unwrap_or(0),
        updated_at: int("updated_at").unwrap_or(0),
    }
}

fn spend_row(r: &SqliteRow) -> SpendRecord {
    let text = |c: &str| r.try_get::<Option<String>, _>(c).ok().flatten();
    let int = |c: &str| r.try_get::<Option<i64>, _>(c).ok().flatten().unwrap_or(0);
    SpendRecord {
        request_id: text("request_id").unwrap_or_default(),
        call_type: match text("call_type").as_deref() {
            Some("anthropic_messages") => "anthropic_messages",
            _ => "acompletion",
        },
        api_key: text("api_key").unwrap_or_default().into(),
        key_alias: text("key_alias"),
        spend: r.try_get::<f64, _>("spend").unwrap_or(0.0),
        prompt_tokens: int("prompt_tokens").max(0) as u64,
        completion_tokens: int("completion_tokens").max(0) as u64,
        total_tokens: int("total_tokens").max(0) as u64,
        start_ms: int("start_time"),
        end_ms: int("end_time"),
        model: text("model").unwrap_or_default(),
        model_id: text("model_id").unwrap_or_default(),
        model_group: text("model_group").unwrap_or_default(),
        provider: text("custom_llm_provider").unwrap_or_default(),
        user_id: text("user_id"),
        team_id: text("team_id"),
    }
}
