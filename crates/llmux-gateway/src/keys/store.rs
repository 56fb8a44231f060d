//! The keys' and spend's database, through sqlx's `Any` driver: SQLite (a
//! file, or `sqlite::memory:`) for one gateway process, PostgreSQL for
//! many replicas sharing one database. Two tables: `llmux_keys`, a row per
//! virtual key by its hash (the key itself is never stored), and
//! `llmux_spend_logs`, a row per request answered. Statements are written
//! once, with `?` placeholders that become `$n` for PostgreSQL.

use super::spend::SpendRecord;
use llmux_core::ApiError;
use serde_json::{Map, Value};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// The databases keys and spend may be kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A file (`sqlite:///path/to/llmux.db`) or `sqlite::memory:`: one
    /// gateway process.
    Sqlite,
    /// `postgresql://user:password@host:5432/db` (or `postgres://`): one
    /// database for every replica.
    Postgres,
}

impl Backend {
    /// The backend a database URL names, if it is one llmux keeps keys in.
    pub fn of(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A database URL fit to print: for PostgreSQL, only the host, port and
/// database, as sqlx reads them from the URL (its user, password and
/// parameters, which may hold one, left out).
pub fn redacted(url: &str) -> String {
    use std::str::FromStr;
    if Backend::of(url) != Some(Backend::Postgres) {
        return url.to_owned();
    }
    match sqlx::postgres::PgConnectOptions::from_str(&prisma_params(url).0) {
        Ok(o) => format!(
            "postgresql://{}:{}/{}",
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or_default()
        ),
        Err(_) => "a PostgreSQL URL that does not parse".to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL itself is not shown: it may carry a password.
    #[error(
        "not a database llmux can keep keys in: use sqlite:///path/to/llmux.db, sqlite::memory: \
         or postgresql://user:password@host:5432/db"
    )]
    Url,
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

/// The tables, in types both databases read alike (SQLite takes `BIGINT`
/// as an integer and `DOUBLE PRECISION` as a real), `{ID}` the id column
/// each spells its own way (`Store::create_tables`).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS llmux_keys (
        id {ID},
        token TEXT NOT NULL UNIQUE,
        key_name TEXT NOT NULL,
        key_alias TEXT UNIQUE,
        models TEXT NOT NULL DEFAULT '[]',
        spend DOUBLE PRECISION NOT NULL DEFAULT 0,
        max_budget DOUBLE PRECISION,
        budget_duration TEXT,
        budget_reset_at BIGINT,
        tpm_limit BIGINT,
        rpm_limit BIGINT,
        max_parallel_requests BIGINT,
        metadata TEXT NOT NULL DEFAULT '{}',
        user_id TEXT,
        team_id TEXT,
        blocked BIGINT NOT NULL DEFAULT 0,
        expires BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS llmux_spend_logs (
        request_id TEXT PRIMARY KEY,
        call_type TEXT NOT NULL,
        api_key TEXT NOT NULL,
        key_alias TEXT,
        spend DOUBLE PRECISION NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        total_tokens BIGINT NOT NULL,
        start_time BIGINT NOT NULL,
        end_time BIGINT NOT NULL,
        model TEXT NOT NULL,
        model_id TEXT NOT NULL,
        model_group TEXT NOT NULL,
        custom_llm_provider TEXT NOT NULL,
        user_id TEXT,
        team_id TEXT
    )",
    "CREATE INDEX IF NOT EXISTS llmux_spend_logs_by_key ON llmux_spend_logs (api_key, start_time)",
    "CREATE INDEX IF NOT EXISTS llmux_spend_logs_by_time ON llmux_spend_logs (start_time)",
    "CREATE TABLE IF NOT EXISTS llmux_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
];

const KEY_COLUMNS: &str = "id, token, key_name, key_alias, models, spend, max_budget, budget_duration, \
     budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, metadata, user_id, team_id, \
     blocked, expires, created_at, updated_at";

/// One key's spend on one model for one user in one UTC day.
#[derive(Debug, Clone, PartialEq)]
pub struct DaySpend {
    /// Days since 1970-01-01.
    pub day: i64,
    pub api_key: String,
    pub user_id: Option<String>,
    pub model: String,
    pub spend: f64,
}

/// The `WHERE` of a spend log query for `q`'s filters.
fn spend_filter(sql: &mut String, q: &SpendQuery) {
    sql.push_str(" WHERE 1 = 1");
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
}

/// `q`'s filters bound in [`spend_filter`]'s order.
fn bind_spend_filter<'q>(
    mut query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    q: &'q SpendQuery,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for s in [&q.api_key, &q.user_id, &q.request_id]
        .into_iter()
        .flatten()
    {
        query = query.bind(s);
    }
    for t in [q.from_ms, q.to_ms].into_iter().flatten() {
        query = query.bind(t);
    }
    query
}

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
    pool: AnyPool,
    backend: Backend,
    /// PostgreSQL: the schema the URL names (Prisma's `?schema=`).
    schema: Option<String>,
}

/// Whether a statement binding an `Option<f64>` may be kept prepared:
/// sqlx's `Any` driver sends a `None` f64 to PostgreSQL as a `real`, and a
/// statement prepared with that type then refuses a `double precision`
/// value. Such statements are prepared afresh each time, with the types
/// their values have then.
const NULLABLE_FLOAT: bool = false;

/// A session-level lock number: one replica creates the tables at a time.
const SCHEMA_LOCK: i64 = 0x006c_6c6d_7578; // "llmux"

impl Store {
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let backend = Backend::of(url).ok_or(StoreError::Url)?;
        sqlx::any::install_default_drivers();
        let pool = match backend {
            Backend::Sqlite => open_sqlite(url).await?,
            Backend::Postgres => open_postgres(url).await?,
        };
        let schema = prisma_params(url).1.schema;
        let store = Store {
            pool,
            backend,
            schema,
        };
        store.create_tables().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers a trivial query within `wait`.
    pub async fn ping(&self, wait: Duration) -> bool {
        let q = sqlx::query("SELECT 1 AS one").fetch_one(&self.pool);
        matches!(tokio::time::timeout(wait, q).await, Ok(Ok(_)))
    }

    /// A statement in the backend's placeholders: SQLite's `?` as written,
    /// PostgreSQL's `$1`, `$2`, ….
    fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        if self.backend == Backend::Sqlite {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    async fn create_tables(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = match self.backend {
            // SQLite's row id, numbered by the database; only this exact
            // spelling makes the column it.
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => {
                // Replicas starting together would race to create the same
                // tables; the lock lasts until this transaction ends.
                sqlx::query("SELECT 1 AS one FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                    .bind(SCHEMA_LOCK)
                    .fetch_one(&mut *tx)
                    .await?;
                if let Some(schema) = &self.schema {
                    // Made if missing (as Prisma does), and only then: a
                    // role without the right to create one may use it.
                    let there = sqlx::query("SELECT 1 AS one FROM pg_namespace WHERE nspname = $1")
                        .bind(schema)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if there.is_none() {
                        let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
                        sqlx::query(&sql).execute(&mut *tx).await?;
                    }
                    // This connection's search path was set before the
                    // schema was there: set again.
                    let sql = format!("SET LOCAL search_path TO {}", quote_ident(schema));
                    sqlx::query(&sql).execute(&mut *tx).await?;
                }
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
            }
        };
        // Tables already there are left alone: a role allowed to use them
        // but not to create any (PostgreSQL checks that even for `IF NOT
        // EXISTS`) still starts.
        let mut all_there = self.backend == Backend::Postgres;
        for table in ["llmux_keys", "llmux_spend_logs", "llmux_meta"] {
            all_there = all_there && self.has_table(&mut tx, table).await?;
        }
        if !all_there {
            for statement in SCHEMA {
                let statement = statement.replace("{ID}", id);
                sqlx::query(&statement).execute(&mut *tx).await?;
            }
        }
        if self.backend == Backend::Postgres {
            // Under the same lock: one replica takes LiteLLM's keys. In a
            // savepoint: an import that fails (LiteLLM's tables unreadable
            // to this role, say) is said and undone, and llmux starts
            // without it, to try again at the next start.
            let mut import = sqlx::Connection::begin(&mut *tx).await?;
            match self.import_litellm(&mut import).await {
                Ok(()) => import.commit().await?,
                Err(e) => {
                    import.rollback().await?;
                    tracing::error!("taking LiteLLM's keys from this database failed: {e}");
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// LiteLLM's keys, if the database has LiteLLM's tables and they were
    /// not taken before ([`super::litellm`]): stored beside any llmux
    /// has (a key llmux has already is left as it is), once.
    async fn import_litellm(&self, tx: &mut sqlx::Transaction<'_, Any>) -> Result<(), StoreError> {
        use super::litellm;
        let done = sqlx::query("SELECT value FROM llmux_meta WHERE name = 'litellm_import'")
            .fetch_optional(&mut **tx)
            .await?;
        if done.is_some() || !self.has_table(tx, litellm::KEYS_TABLE).await? {
            return Ok(());
        }
        let keys = self.json_rows(tx, litellm::KEYS_TABLE).await?;
        let by_id = |rows: Vec<Map<String, Value>>, id: &str| {
            rows.into_iter()
                .filter_map(|r| Some((r.get(id)?.as_str()?.to_owned(), r)))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let mut related = litellm::Related::default();
        if self.has_table(tx, litellm::TEAMS_TABLE).await? {
            related.teams = by_id(self.json_rows(tx, litellm::TEAMS_TABLE).await?, "team_id");
        }
        if self.has_table(tx, litellm::USERS_TABLE).await? {
            related.users = by_id(self.json_rows(tx, litellm::USERS_TABLE).await?, "user_id");
        }
        if self.has_table(tx, litellm::MEMBERSHIPS_TABLE).await? {
            related.memberships = self
                .json_rows(tx, litellm::MEMBERSHIPS_TABLE)
                .await?
                .into_iter()
                .filter_map(|r| {
                    let team = r.get("team_id")?.as_str()?.to_owned();
                    let user = r.get("user_id")?.as_str()?.to_owned();
                    Some(((team, user), r))
                })
                .collect();
        }
        let found = keys.len();
        let aliases = sqlx::query("SELECT key_alias FROM llmux_keys WHERE key_alias IS NOT NULL")
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .filter_map(|r| r.try_get::<String, _>("key_alias").ok())
            .collect();
        let imported = litellm::convert(keys, &related, aliases, super::time::now_secs());
        let sql = format!(
            "INSERT INTO llmux_keys ({INSERT_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (token) DO NOTHING"
        );
        let sql = self.sql(&sql);
        let mut taken = 0;
        for row in &imported.rows {
            let done = bind_key(sqlx::query(&sql).persistent(NULLABLE_FLOAT), row)
                .execute(&mut **tx)
                .await?;
            taken += done.rows_affected();
        }
        let summary = serde_json::json!({
            "at": super::time::iso8601(super::time::now_secs()),
            "found": found,
            "imported": taken,
            "held": imported.held.len(),
            "skipped": imported.skipped,
        });
        sqlx::query(&self.sql("INSERT INTO llmux_meta (name, value) VALUES ('litellm_import', ?)"))
            .bind(summary.to_string())
            .execute(&mut **tx)
            .await?;
        tracing::info!(
            found,
            imported = taken,
            held = imported.held.len(),
            skipped = imported.skipped,
            "took the keys of LiteLLM's database ({})",
            litellm::KEYS_TABLE
        );
        for (name, why) in imported.held.iter().take(100) {
            tracing::warn!(
                key = %name,
                "a LiteLLM key was taken blocked, for {}: served, it could do more than \
                 LiteLLM let it; check it, and /key/unblock it to serve it so",
                why.join(", ")
            );
        }
        if imported.held.len() > 100 {
            tracing::warn!(
                "… and {} more LiteLLM keys taken blocked",
                imported.held.len() - 100
            );
        }
        Ok(())
    }

    async fn has_table(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
        table: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT CAST(to_regclass($1) AS TEXT) AS t")
            .bind(format!("\"{table}\""))
            .fetch_one(&mut **tx)
            .await?;
        Ok(row.try_get::<Option<String>, _>("t")?.is_some())
    }

    /// A table's rows, each as a JSON object of whatever columns it has.
    async fn json_rows(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
        table: &str,
    ) -> Result<Vec<Map<String, Value>>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT CAST(row_to_json(t) AS TEXT) AS r FROM \"{table}\" t"
        ))
        .fetch_all(&mut **tx)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>("r").ok())
            .filter_map(|r| serde_json::from_str(&r).ok())
            .collect())
    }

    pub async fn load(&self) -> Result<Vec<KeyRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM llmux_keys"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(key_row).collect())
    }

    /// The key stored under `token` (its hash), if there is one: for a key
    /// another replica made since this one last read them all.
    pub async fn find(&self, token: &str) -> Result<Option<KeyRow>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM llmux_keys WHERE token = ?");
        let row = sqlx::query(&self.sql(&sql))
            .bind(token)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(key_row))
    }

    /// Adds a key's record; returns the id the database gave it.
    pub async fn insert(&self, k: &KeyRow) -> Result<i64, StoreError> {
        let sql = format!(
            "INSERT INTO llmux_keys ({INSERT_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
        );
        let sql = self.sql(&sql);
        let row = bind_key(sqlx::query(&sql).persistent(NULLABLE_FLOAT), k)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("id")?)
    }

    /// Writes a key's settings; not its spend or its next budget reset,
    /// which only the spend writer writes, in turn. False if the record is
    /// gone (deleted by another replica).
    pub async fn update(&self, k: &KeyRow) -> Result<bool, StoreError> {
        let sql = self.sql(
            "UPDATE llmux_keys SET key_name = ?, key_alias = ?, models = ?, max_budget = ?, \
             budget_duration = ?, tpm_limit = ?, rpm_limit = ?, max_parallel_requests = ?, \
             metadata = ?, user_id = ?, team_id = ?, blocked = ?, expires = ?, updated_at = ? \
             WHERE id = ?",
        );
        let done = sqlx::query(&sql)
            .persistent(NULLABLE_FLOAT)
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
            .bind(i64::from(k.blocked))
            .bind(k.expires)
            .bind(k.updated_at)
            .bind(k.id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a record a new key (its hash and short name). False if the
    /// record is gone.
    pub async fn rekey(&self, k: &KeyRow) -> Result<bool, StoreError> {
        let sql =
            self.sql("UPDATE llmux_keys SET token = ?, key_name = ?, updated_at = ? WHERE id = ?");
        let done = sqlx::query(&sql)
            .bind(&k.token)
            .bind(&k.key_name)
            .bind(k.updated_at)
            .bind(k.id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete(&self, ids: &[i64]) -> Result<(), StoreError> {
        let sql = self.sql("DELETE FROM llmux_keys WHERE id = ?");
        // In id order, as every writer locks rows: two replicas' writes
        // cannot each hold a row the other waits for.
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        let mut tx = self.pool.begin().await?;
        for t in ids {
            sqlx::query(&sql).bind(t).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes a batch the spend writer gathered, and charges `owed` from
    /// before, in one transaction: the log rows in multi-row inserts,
    /// then the keys' changes in id order (as every replica's writer takes
    /// their rows, so two cannot deadlock), each key's own in the order
    /// they happened, its charges between two budget changes summed into
    /// one update. A request's charge counts only if its row went in: a
    /// batch written again (a commit whose answer was lost) charges
    /// nothing twice.
    pub(super) async fn write(
        &self,
        batch: &[super::spend::Event],
        owed: &[(i64, f64)],
    ) -> Result<(), StoreError> {
        use super::spend::Event;
        let rows: Vec<&SpendRecord> = batch
            .iter()
            .filter_map(|ev| match ev {
                Event::Spend { record, .. } => Some(&**record),
                _ => None,
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        // Chunks of 32, 16, …, 1 rows: six statement shapes at most, each
        // prepared once per connection.
        let mut inserted = std::collections::HashSet::new();
        let mut rest = &rows[..];
        while !rest.is_empty() {
            let n = [32, 16, 8, 4, 2, 1]
                .into_iter()
                .find(|n| *n <= rest.len())
                .unwrap_or(1);
            let (chunk, tail) = rest.split_at(n);
            inserted.extend(self.insert_logs(&mut tx, chunk).await?);
            rest = tail;
        }
        let mut ops: Vec<(i64, KeyOp)> = owed
            .iter()
            .map(|(id, sum)| (*id, KeyOp::Charge(*sum)))
            .collect();
        for ev in batch {
            match ev {
                Event::Spend {
                    record,
                    charge: Some(entry),
                } if record.spend != 0.0 && inserted.contains(record.request_id.as_str()) => {
                    ops.push((entry.id(), KeyOp::Charge(record.spend)))
                }
                Event::Budget {
                    entry,
                    spend,
                    reset_at,
                    if_reset_at,
                } => ops.push((
                    entry.id(),
                    KeyOp::Set {
                        spend: *spend,
                        reset_at: *reset_at,
                        if_reset_at: *if_reset_at,
                    },
                )),
                _ => {}
            }
        }
        // Stable: each key's changes keep their order.
        ops.sort_by_key(|(id, _)| *id);
        let mut i = 0;
        while i < ops.len() {
            let (id, op) = &ops[i];
            i += 1;
            match op {
                KeyOp::Charge(first) => {
                    let mut sum = *first;
                    while let Some((next, KeyOp::Charge(c))) = ops.get(i) {
                        if next != id {
                            break;
                        }
                        sum += c;
                        i += 1;
                    }
                    let sql = self.sql("UPDATE llmux_keys SET spend = spend + ? WHERE id = ?");
                    sqlx::query(&sql)
                        .bind(sum)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                KeyOp::Set {
                    spend,
                    reset_at,
                    if_reset_at,
                } => {
                    self.set(&mut tx, *id, *spend, *reset_at, *if_reset_at)
                        .await?
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// A key's spend and next reset, each if given. A period's reset
    /// (`if_reset_at`) is made once, by whichever replica comes first:
    /// another's reset (and the charges after it) already there is left
    /// alone.
    async fn set(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
        id: i64,
        spend: Option<f64>,
        reset_at: Option<Option<i64>>,
        if_reset_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut sets = Vec::new();
        if spend.is_some() {
            sets.push("spend = ?");
        }
        if reset_at.is_some() {
            sets.push("budget_reset_at = ?");
        }
        if sets.is_empty() {
            return Ok(());
        }
        let mut sql = format!("UPDATE llmux_keys SET {} WHERE id = ?", sets.join(", "));
        if if_reset_at.is_some() {
            sql.push_str(" AND budget_reset_at = ?");
        }
        let sql = self.sql(&sql);
        let mut q = sqlx::query(&sql);
        if let Some(spend) = spend {
            q = q.bind(spend);
        }
        if let Some(reset_at) = reset_at {
            q = q.bind(reset_at);
        }
        q = q.bind(id);
        if let Some(was) = if_reset_at {
            q = q.bind(was);
        }
        q.execute(&mut **tx).await?;
        Ok(())
    }

    /// What the key `token` spent on the model `model_group` from
    /// `from_ms` (Unix milliseconds) on, by the spend log.
    pub async fn model_spend(
        &self,
        token: &str,
        model_group: &str,
        from_ms: i64,
    ) -> Result<f64, StoreError> {
        let sql = self.sql(
            "SELECT COALESCE(SUM(spend), 0.0) AS spent FROM llmux_spend_logs \
             WHERE api_key = ? AND model_group = ? AND start_time >= ?",
        );
        let row = sqlx::query(&sql)
            .bind(token)
            .bind(model_group)
            .bind(from_ms)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<f64, _>("spent")?)
    }

    /// Spend log rows, newest first.
    pub async fn spend_logs(&self, q: &SpendQuery) -> Result<Vec<SpendRecord>, StoreError> {
        let mut sql = format!("SELECT {LOG_COLUMNS} FROM llmux_spend_logs");
        spend_filter(&mut sql, q);
        sql.push_str(" ORDER BY start_time DESC, request_id DESC LIMIT ?");
        let sql = self.sql(&sql);
        let query = bind_spend_filter(sqlx::query(&sql), q);
        let rows = query.bind(q.limit as i64).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(spend_row).collect())
    }

    /// The spend of the rows `q` picks, summed by UTC day, key, user and
    /// model (`q.limit` is not used).
    pub async fn spend_by_day(&self, q: &SpendQuery) -> Result<Vec<DaySpend>, StoreError> {
        // Whole days since the epoch: integer division on both databases.
        let mut sql = "SELECT start_time / 86400000 AS day, api_key, user_id, model, \
             SUM(spend) AS spent FROM llmux_spend_logs"
            .to_owned();
        spend_filter(&mut sql, q);
        sql.push_str(" GROUP BY start_time / 86400000, api_key, user_id, model");
        let sql = self.sql(&sql);
        let rows = bind_spend_filter(sqlx::query(&sql), q)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DaySpend {
                    day: r.try_get::<i64, _>("day")?,
                    api_key: r.try_get::<String, _>("api_key")?,
                    user_id: r.try_get::<Option<String>, _>("user_id")?,
                    model: r.try_get::<String, _>("model")?,
                    spend: r.try_get::<Option<f64>, _>("spent")?.unwrap_or(0.0),
                })
            })
            .collect()
    }

    /// The rows' request ids that went in (not one already there).
    async fn insert_logs(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
        rows: &[&SpendRecord],
    ) -> Result<Vec<String>, StoreError> {
        let one = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        let values = vec![one; rows.len()].join(", ");
        let sql = format!(
            "INSERT INTO llmux_spend_logs ({LOG_COLUMNS}) VALUES {values} \
             ON CONFLICT DO NOTHING RETURNING request_id"
        );
        let sql = self.sql(&sql);
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
        let done = q.fetch_all(&mut **tx).await?;
        Ok(done
            .iter()
            .filter_map(|r| r.try_get::<String, _>("request_id").ok())
            .collect())
    }
}

/// A change to a key's record the spend writer makes.
enum KeyOp {
    Charge(f64),
    Set {
        spend: Option<f64>,
        reset_at: Option<Option<i64>>,
        if_reset_at: Option<i64>,
    },
}

/// The parameters Prisma (LiteLLM's database client) takes in a URL that
/// sqlx does not: `schema` (the tables' schema, created if missing),
/// `connection_limit` (the pool's size), and ones that mean nothing here
/// (`pool_timeout`, `socket_timeout`, `pgbouncer`, …), taken out rather
/// than warned about.
#[derive(Debug, Default, PartialEq)]
struct Prisma {
    schema: Option<String>,
    connection_limit: Option<u32>,
    /// `pgbouncer=true`: behind a transaction-mode pooler.
    pgbouncer: bool,
    /// Parameters taken out that llmux does not act on (names only).
    dropped: Vec<String>,
}

fn prisma_params(url: &str) -> (String, Prisma) {
    let mut prisma = Prisma::default();
    let Ok(mut u) = reqwest::Url::parse(url) else {
        return (url.to_owned(), prisma);
    };
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut strict = false;
    for (k, v) in u.query_pairs() {
        match &*k {
            "schema" if !v.is_empty() => prisma.schema = Some(v.into_owned()),
            "connection_limit" => prisma.connection_limit = v.parse().ok().filter(|n| *n > 0),
            "pgbouncer" => prisma.pgbouncer = v == "true",
            // Prisma's `strict`: the certificate is verified.
            "sslaccept" => strict = v == "strict",
            // Prisma's `sslcert` is the server's root certificate.
            "sslcert" => kept.push(("sslrootcert".into(), v.into_owned())),
            "pool_timeout" | "socket_timeout" | "connect_timeout" | "statement_cache_size" => {}
            "sslidentity" | "sslpassword" => prisma.dropped.push(k.into_owned()),
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    if prisma.pgbouncer {
        // No named prepared statements: a transaction-mode pooler may run
        // the next one on another server connection.
        kept.push(("statement-cache-capacity".into(), "0".into()));
    }
    if strict {
        for (k, v) in &mut kept {
            if k == "sslmode" && v == "require" {
                *v = "verify-full".into();
            }
        }
    }
    if kept.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(kept);
    }
    (u.to_string(), prisma)
}

/// `name` as a PostgreSQL identifier, quoted.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL pool, on the URL's schema if it names one (Prisma's
/// `?schema=`): LiteLLM's tables and llmux's are both looked for and made
/// there.
async fn open_postgres(url: &str) -> Result<AnyPool, StoreError> {
    let (url, prisma) = prisma_params(url);
    if !prisma.dropped.is_empty() {
        tracing::warn!(
            "general_settings.database_url: {} not supported (a client certificate in a \
             PKCS#12 file); use sslcert and sslkey as libpq names them",
            prisma.dropped.join(", ")
        );
    }
    if prisma.pgbouncer && prisma.schema.is_some() {
        tracing::warn!(
            "general_settings.database_url: a schema behind a transaction-mode pooler \
             (pgbouncer=true) is not kept from one transaction to the next; connect directly, \
             or keep the tables in the pooler's default schema"
        );
    }
    let mut options = AnyPoolOptions::new()
        .max_connections(prisma.connection_limit.unwrap_or(8))
        .acquire_timeout(Duration::from_secs(10));
    if let Some(schema) = &prisma.schema {
        let ident = quote_ident(schema);
        let setup: Arc<str> = format!("SET search_path TO {ident}").into();
        options = options.after_connect(move |conn, _| {
            let setup = setup.clone();
            Box::pin(async move {
                conn.execute(&*setup).await?;
                Ok(())
            })
        });
    }
    Ok(options.connect(&url).await?)
}

/// A SQLite pool: the file created if new, in WAL mode with
/// `synchronous = NORMAL` (a commit is not an fsync: the database stays
/// sound; a power cut may lose the last moments of spend logs). An
/// in-memory database lives as long as its one connection.
async fn open_sqlite(url: &str) -> Result<AnyPool, StoreError> {
    let memory = url.contains(":memory:") || url.contains("mode=memory");
    if memory {
        return Ok(AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect(url)
            .await?);
    }
    // `mode=rwc`: created if missing, unless the URL says otherwise.
    let url = if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    };
    Ok(AnyPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 5000",
                )
                .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await?)
}

const LOG_COLUMNS: &str = "request_id, call_type, api_key, key_alias, spend, prompt_tokens, \
     completion_tokens, total_tokens, start_time, end_time, model, model_id, model_group, \
     custom_llm_provider, user_id, team_id";

/// Every column but the id, which the database gives.
const INSERT_COLUMNS: &str = "token, key_name, key_alias, models, spend, max_budget, \
     budget_duration, budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, metadata, \
     user_id, team_id, blocked, expires, created_at, updated_at";

fn bind_key<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    k: &'q KeyRow,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    q.bind(&k.token)
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
        .bind(i64::from(k.blocked))
        .bind(k.expires)
        .bind(k.created_at)
        .bind(k.updated_at)
}

fn key_row(r: &AnyRow) -> KeyRow {
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

fn spend_row(r: &AnyRow) -> SpendRecord {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prisma_url_parameters_are_taken_out_and_read() {
        let (url, p) = prisma_params(
            "postgresql://u:p%40ss@db:5432/litellm?schema=team_a&connection_limit=5&pool_timeout=10&sslmode=require",
        );
        assert_eq!(url, "postgresql://u:p%40ss@db:5432/litellm?sslmode=require");
        assert_eq!(
            p,
            Prisma {
                schema: Some("team_a".into()),
                connection_limit: Some(5),
                ..Prisma::default()
            }
        );
        let (url, p) = prisma_params("postgres://u:p@db/x?pgbouncer=true");
        assert_eq!(
            url.as_str(),
            "postgres://u:p@db/x?statement-cache-capacity=0"
        );
        assert!(p.pgbouncer);
        // Prisma's TLS words, as sqlx reads them.
        let (url, p) = prisma_params(
            "postgres://u:p@db/x?sslmode=require&sslaccept=strict&sslcert=/ca.pem&sslidentity=id.p12",
        );
        assert_eq!(
            url.as_str(),
            "postgres://u:p@db/x?sslmode=verify-full&sslrootcert=%2Fca.pem"
        );
        assert_eq!(p.dropped, vec!["sslidentity"]);
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
    }

    #[test]
    fn a_printed_url_has_no_user_or_password() {
        assert_eq!(
            redacted("postgresql://u:secret@db:6543/litellm?password=other&schema=s"),
            "postgresql://db:6543/litellm"
        );
        assert_eq!(
            redacted("sqlite:///var/lib/llmux.db"),
            "sqlite:///var/lib/llmux.db"
        );
    }
}
