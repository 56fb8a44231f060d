//! LiteLLM's key and spend routes: `/key/generate`, `/key/update`,
//! `/key/delete`, `/key/block`, `/key/unblock`, `/key/regenerate`,
//! `/key/info`, `/key/list` and `/spend/logs`, with LiteLLM's request and
//! answer shapes. All but `/key/info` on a key's own record take the
//! master key.

use super::AppState;
use super::error::ErrorResponse;
use crate::keys::store::SpendQuery;
use crate::keys::{self, KeyRow, KeySettings, Keys, time};
use axum::Json;
use axum::extract::{Query, State};
use llmux_core::ApiError;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type Answer = Result<Json<Value>, ErrorResponse>;

/// The key registry, when the gateway has a database; else the error that
/// says how to give it one.
fn registry(app: &AppState) -> Result<&Arc<Keys>, ApiError> {
    app.keys.as_ref().ok_or_else(no_database)
}

fn no_database() -> ApiError {
    ApiError::bad_request(
        "Virtual keys need a database: set general_settings.database_url \
         (sqlite:///path/to/llmux.db) and a master_key.",
    )
}

/// The master key, or a 401 (403 for a virtual key asking for another's
/// business).
async fn require_master<'a>(
    app: &'a AppState,
    headers: &http::HeaderMap,
) -> Result<&'a Arc<Keys>, ApiError> {
    let Some(keys) = &app.keys else {
        // Who asks is checked first: the answer says how the gateway is set.
        if !crate::auth::authorized(app.master_key.as_ref(), headers) {
            return Err(crate::auth::invalid_key());
        }
        return Err(no_database());
    };
    match keys.identify(app.master_key.as_ref(), headers).await? {
        keys::Identity::Master => Ok(keys),
        keys::Identity::Key(_) => Err(ApiError::new(
            403,
            "Only the master key may manage keys and read spend logs.",
        )),
    }
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(ApiError::bad_request(format!("Invalid JSON body: {e}"))),
    }
}

/// A key as a request names it: the key itself (`sk-…`) or its hash.
fn token_of(key: &str) -> String {
    if key.starts_with("sk-") {
        keys::hash_key(key)
    } else {
        key.to_owned()
    }
}

/// A key's record as `/key/info` and the others answer it.
fn info_json(keys: &Keys, s: &KeySettings) -> Value {
    let entry = keys.get(&s.token);
    let (spend, reset_at) = entry
        .as_ref()
        .map_or((s.spend, s.budget_reset_at), |e| e.spend());
    // LiteLLM's `model_spend`: this period's, for each model budgeted.
    let model_spend: serde_json::Map<String, Value> = s
        .model_budgets()
        .into_iter()
        .map(|(model, b)| {
            let spent = entry
                .as_ref()
                .map_or(0.0, |e| e.model_spent(&model, &b, s.created_at));
            (model, json!(spent))
        })
        .collect();
    json!({
        "token": s.token,
        "key_name": s.key_name,
        "key_alias": s.key_alias,
        "spend": spend,
        "max_budget": s.max_budget,
        "budget_duration": s.budget_duration,
        "budget_reset_at": reset_at.map(time::iso8601),
        "expires": s.expires.map(time::iso8601),
        "models": s.models,
        "tpm_limit": s.tpm_limit,
        "rpm_limit": s.rpm_limit,
        "max_parallel_requests": s.max_parallel_requests,
        "model_max_budget": s.metadata.get(keys::model_budget::MODEL_BUDGET).cloned().unwrap_or_else(|| json!({})),
        "model_spend": model_spend,
        "metadata": s.metadata,
        "user_id": s.user_id,
        "team_id": s.team_id,
        "blocked": s.blocked,
        "created_at": time::iso8601(s.created_at),
        "updated_at": time::iso8601(s.updated_at),
    })
}

/// `POST /key/generate`.
pub async fn generate(State(app): State<Arc<AppState>>, req: axum::extract::Request) -> Answer {
    let (parts, body) = req.into_parts();
    let keys = require_master(&app, &parts.headers).await?;
    let mut body = body_object(&super::read_body(body, app.max_request_bytes).await?)?;
    app.key_params.fill(&mut body)?;
    let key = match body.get("key") {
        None | Some(Value::Null) => keys::new_key()?,
        Some(Value::String(k)) if k.starts_with("sk-") && k.len() >= 8 => k.clone(),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "key",
                "A key you choose must be a string starting with `sk-`, 8 characters or more.",
            )
            .into());
        }
    };
    let now = time::now_secs();
    let mut row = KeyRow::new(&key, now);
    let mut budget = keys::edit::Budget::default();
    budgets_name_models(&app, &body)?;
    keys::edit::apply(&mut row, &mut budget, &body, now)?;
    row.spend = budget.spend.unwrap_or(0.0);
    row.budget_reset_at = budget.reset_at.flatten();
    let s = keys.insert(row).await?;
    tracing::info!(key = %s.key_name, alias = ?s.key_alias, "key generated");
    let mut out = info_json(keys, &s);
    if let Some(o) = out.as_object_mut() {
        o.insert("key".into(), Value::String(key));
        o.insert("token_id".into(), Value::String(s.token.clone()));
        // As LiteLLM's answer echoes them (they are kept in the metadata).
        for field in [keys::limits::MODEL_RPM, keys::limits::MODEL_TPM] {
            let v = s.metadata.get(field).cloned().unwrap_or(Value::Null);
            o.insert(field.into(), v);
        }
    }
    Ok(Json(out))
}

/// The hash of the stored key a body's `key` names (held here, or made by
/// another replica).
async fn named(keys: &Keys, body: &Map<String, Value>) -> Result<String, ApiError> {
    let Some(k) = body.get("key").and_then(Value::as_str) else {
        return Err(ApiError::invalid_field("key", "`key` is required."));
    };
    let token = token_of(k);
    keys.lookup(&token).await?;
    Ok(token)
}

/// `POST /key/update`: the fields sent change; the others stay.
pub async fn update(State(app): State<Arc<AppState>>, req: axum::extract::Request) -> Answer {
    let (parts, body) = req.into_parts();
    let keys = require_master(&app, &parts.headers).await?;
    let body = body_object(&super::read_body(body, app.max_request_bytes).await?)?;
    let token = named(keys, &body).await?;
    budgets_name_models(&app, &body)?;
    app.key_params.check(&body)?;
    let s = keys.update(token, body).await?;
    Ok(Json(info_json(keys, &s)))
}

/// Refuses a budget per model (`model_max_budget`, at the top of a body or
/// in its `metadata`) set under an alias: spend is counted by the model an
/// alias stands for, so a budget under the alias would never hold.
fn budgets_name_models(app: &AppState, body: &Map<String, Value>) -> Result<(), ApiError> {
    let field = keys::model_budget::MODEL_BUDGET;
    let sets = [
        body.get(field),
        body.get("metadata").and_then(|m| m.get(field)),
    ];
    for name in sets
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|m| m.keys())
    {
        if app.router.alias(name).is_some() {
            let model = app
                .router
                .group(name)
                .map(|g| g.name.clone())
                .unwrap_or_default();
            return Err(ApiError::invalid_field(
                field,
                format!(
                    "`{name}` is an alias of `{model}`: a budget per model names the model as \
                     model_list does (a request through the alias counts toward it)."
                ),
            ));
        }
    }
    Ok(())
}

async fn set_blocked(
    app: &AppState,
    parts: &http::request::Parts,
    body: axum::body::Body,
    blocked: bool,
) -> Answer {
    let keys = require_master(app, &parts.headers).await?;
    let body = body_object(&super::read_body(body, app.max_request_bytes).await?)?;
    let token = named(keys, &body).await?;
    let change = Map::from_iter([("blocked".to_owned(), Value::Bool(blocked))]);
    let s = keys.update(token, change).await?;
    Ok(Json(info_json(keys, &s)))
}

/// `POST /key/block`.
pub async fn block(State(app): State<Arc<AppState>>, req: axum::extract::Request) -> Answer {
    let (parts, body) = req.into_parts();
    set_blocked(&app, &parts, body, true).await
}

/// `POST /key/unblock`.
pub async fn unblock(State(app): State<Arc<AppState>>, req: axum::extract::Request) -> Answer {
    let (parts, body) = req.into_parts();
    set_blocked(&app, &parts, body, false).await
}

/// `POST /key/regenerate` (`{"key": …}`) and `POST /key/{key}/regenerate`:
/// a new key with the old one's settings and spend; the old key stops
/// working at once.
pub async fn regenerate(State(app): State<Arc<AppState>>, req: axum::extract::Request) -> Answer {
    let (parts, body) = req.into_parts();
    let keys = require_master(&app, &parts.headers).await?;
    let mut body = body_object(&super::read_body(body, app.max_request_bytes).await?)?;
    let token = named(keys, &body).await?;
    body.remove("key");
    app.key_params.check(&body)?;
    rekey(keys, token, body).await
}

/// `POST /key/{key}/regenerate`.
pub async fn regenerate_path(
    State(app): State<Arc<AppState>>,
    axum::extract::Path(key): axum::extract::Path<String>,
    req: axum::extract::Request,
) -> Answer {
    let (parts, body) = req.into_parts();
    let keys = require_master(&app, &parts.headers).await?;
    let bytes = super::read_body(body, app.max_request_bytes).await?;
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        body_object(&bytes)?
    };
    let token = token_of(&key);
    keys.lookup(&token).await?;
    app.key_params.check(&body)?;
    rekey(keys, token, body).await
}

/// A new key for the record, with the body's other fields (as
/// `/key/update` takes them) applied to it, as LiteLLM's regenerate does.
async fn rekey(keys: &Arc<Keys>, token: String, changes: Map<String, Value>) -> Answer {
    // Checked before the key changes: an answer that refuses them must
    // not have replaced the key it does not show.
    keys.check_update(&token, &changes)?;
    let key = keys::new_key()?;
    let mut s = keys.rekey(token, key.clone()).await?;
    if !changes.is_empty() {
        s = keys.update(s.token.clone(), changes).await?;
    }
    tracing::info!(new = %s.key_name, "key regenerated");
    let mut out = info_json(keys, &s);
    if let Some(o) = out.as_object_mut() {
        o.insert("key".into(), Value::String(key));
        o.insert("token_id".into(), Value::String(s.token.clone()));
    }
    Ok(Json(out))
}

/// `POST /key/delete`: `{"keys": [...]}` (keys or hashes) and/or
/// `{"key_aliases": [...]}`. All must exist, or none is deleted.
pub async fn delete(State(app): State<Arc<AppState>>, req: axum::extract::Request) -> Answer {
    let (parts, body) = req.into_parts();
    let keys = require_master(&app, &parts.headers).await?;
    let body = body_object(&super::read_body(body, app.max_request_bytes).await?)?;
    let list = |field: &str| -> Result<Vec<String>, ApiError> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    ApiError::invalid_field(field, format!("`{field}` must be a list of strings."))
                }),
            Some(_) => Err(ApiError::invalid_field(
                field,
                format!("`{field}` must be a list of strings."),
            )),
        }
    };
    let (named_keys, aliases) = (list("keys")?, list("key_aliases")?);
    if named_keys.is_empty() && aliases.is_empty() {
        return Err(
            ApiError::bad_request("Name the keys to delete in `keys` or `key_aliases`.").into(),
        );
    }
    let mut tokens = Vec::new();
    let mut missing = 0;
    for k in &named_keys {
        let t = token_of(k);
        match keys.lookup(&t).await {
            Ok(_) => tokens.push(t),
            Err(e) if e.status == 404 => missing += 1,
            Err(e) => return Err(e.into()),
        }
    }
    if aliases.iter().any(|a| keys.by_alias(a).is_none()) {
        // Made on another replica since the keys were last read, perhaps.
        keys.sync().await.map_err(keys::StoreError::into_api)?;
    }
    for a in &aliases {
        match keys.by_alias(a) {
            Some(s) => tokens.push(s.token.clone()),
            None => missing += 1,
        }
    }
    if missing > 0 {
        return Err(ApiError::new(
            404,
            format!("{missing} of the keys named were not found; none was deleted."),
        )
        .into());
    }
    keys.delete(tokens).await?;
    let mut deleted: Vec<String> = named_keys;
    deleted.extend(aliases);
    Ok(Json(json!({"deleted_keys": deleted})))
}

/// `GET /key/info?key=…`: any key's record for the master key; a virtual
/// key's own (with or without `key`).
pub async fn info(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: http::HeaderMap,
) -> Answer {
    let keys = registry(&app)?;
    let caller = keys.identify(app.master_key.as_ref(), &headers).await?;
    let asked = q.get("key").map(|k| token_of(k));
    let token = match (&caller, asked) {
        (_, Some(t)) => t,
        (keys::Identity::Key(e), None) => e.settings().token.clone(),
        (keys::Identity::Master, None) => {
            return Err(
                ApiError::invalid_field("key", "Name the key: /key/info?key=sk-...").into(),
            );
        }
    };
    if let keys::Identity::Key(e) = &caller {
        if e.settings().token != token {
            return Err(ApiError::new(403, "A key may only read its own record.").into());
        }
    }
    let s = keys.lookup(&token).await?.settings();
    Ok(Json(json!({
        "key": q.get("key").cloned().unwrap_or_else(|| token.clone()),
        "info": info_json(keys, &s),
    })))
}

/// `GET /key/list`: the keys' hashes (or, with `return_full_object=true`,
/// their records), a page at a time; `key_alias`, `user_id` and `team_id`
/// filter.
pub async fn list(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: http::HeaderMap,
) -> Answer {
    let keys = require_master(&app, &headers).await?;
    let number = |name: &str, default: usize, max: usize| -> Result<usize, ApiError> {
        match q.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_field(name, format!("`{name}` must be 1 to {max}."))
                }),
        }
    };
    let page = number("page", 1, usize::MAX)?;
    let size = number("size", 10, 100)?;
    let full = q.get("return_full_object").is_some_and(|v| v == "true");
    let matches = |want: Option<&String>, have: &Option<String>| {
        want.is_none_or(|w| have.as_ref() == Some(w))
    };
    let all: Vec<_> = keys
        .all()
        .into_iter()
        .filter(|s| {
            matches(q.get("key_alias"), &s.key_alias)
                && matches(q.get("user_id"), &s.user_id)
                && matches(q.get("team_id"), &s.team_id)
        })
        .collect();
    let total = all.len();
    let shown: Vec<Value> = all
        .iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|s| {
            if full {
                info_json(keys, s)
            } else {
                Value::String(s.token.clone())
            }
        })
        .collect();
    Ok(Json(json!({
        "keys": shown,
        "total_count": total,
        "current_page": page,
        "total_pages": total.div_ceil(size),
    })))
}

/// `GET /spend/logs`: requests answered, newest first, filtered by
/// `api_key` (a key or its hash), `user_id`, `request_id`, and
/// `start_date` / `end_date` (`YYYY-MM-DD`, both days included); at most
/// `limit` (100; up to 1,000).
pub async fn spend_logs(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: http::HeaderMap,
) -> Answer {
    let keys = require_master(&app, &headers).await?;
    let date = |name: &str| -> Result<Option<i64>, ApiError> {
        q.get(name)
            .map(|d| {
                time::parse_date(d).ok_or_else(|| {
                    ApiError::invalid_field(name, format!("`{name}` must be a date, YYYY-MM-DD."))
                })
            })
            .transpose()
    };
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::invalid_field("limit", "`limit` must be 1 to 1000."))?,
    };
    let query = SpendQuery {
        api_key: q.get("api_key").map(|k| token_of(k)),
        user_id: q.get("user_id").cloned(),
        request_id: q.get("request_id").cloned(),
        from_ms: date("start_date")?.map(|s| s * 1000),
        to_ms: date("end_date")?.map(|s| (s + 86_400) * 1000),
        limit,
    };
    // What was answered a moment ago is in the log when this is read.
    keys.flush(std::time::Duration::from_secs(2)).await;
    // A date range is summed by day, as LiteLLM answers it, unless
    // `summarize=false` asks for its rows.
    let summarize = match q.get("summarize").map(|v| v.to_ascii_lowercase()) {
        None => true,
        Some(v) if v == "true" || v == "1" => true,
        Some(v) if v == "false" || v == "0" => false,
        Some(_) => {
            return Err(
                ApiError::invalid_field("summarize", "`summarize` must be true or false.").into(),
            );
        }
    };
    if let (true, Some(from), Some(to)) = (summarize, query.from_ms, query.to_ms) {
        return Ok(Json(Value::Array(
            spend_by_day(keys, &query, from, to).await?,
        )));
    }
    let rows = keys
        .store()
        .spend_logs(&query)
        .await
        .map_err(keys::StoreError::into_api)?;
    Ok(Json(Value::Array(
        rows.iter().map(|r| r.to_json()).collect(),
    )))
}

/// The most days a summary covers.
const MAX_SUMMARY_DAYS: i64 = 3_660;

/// `/spend/logs` for a date range, summed: a row for every day from
/// `start_date` to `end_date` (both whole UTC days), each with its
/// `spend`, the spend of each key (by hash) under its own name, and
/// `users` and `models` maps, as LiteLLM's summary has them.
async fn spend_by_day(
    keys: &Keys,
    query: &SpendQuery,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Value>, ApiError> {
    let (first, end) = (from_ms.div_euclid(86_400_000), to_ms.div_euclid(86_400_000));
    if end - first > MAX_SUMMARY_DAYS {
        return Err(ApiError::invalid_field(
            "end_date",
            format!(
                "A summary covers at most {MAX_SUMMARY_DAYS} days; ask for rows with `summarize=false`, or a shorter range."
            ),
        ));
    }
    if end <= first {
        return Err(ApiError::invalid_field(
            "end_date",
            "`end_date` must not be before `start_date`.",
        ));
    }
    let rows = keys
        .store()
        .spend_by_day(query)
        .await
        .map_err(keys::StoreError::into_api)?;
    let mut days: Vec<Map<String, Value>> = (first..end)
        .map(|day| {
            let date: String = time::iso8601(day * 86_400).chars().take(10).collect();
            Map::from_iter([
                ("startTime".to_owned(), Value::String(date)),
                ("spend".to_owned(), json!(0.0)),
                ("users".to_owned(), json!({})),
                ("models".to_owned(), json!({})),
            ])
        })
        .collect();
    let add = |m: &mut Map<String, Value>, name: &str, spend: f64| {
        let was = m.get(name).and_then(Value::as_f64).unwrap_or(0.0);
        m.insert(name.to_owned(), json!(was + spend));
    };
    for r in rows {
        let Some(day) = usize::try_from(r.day - first)
            .ok()
            .and_then(|i| days.get_mut(i))
        else {
            continue;
        };
        add(day, "spend", r.spend);
        add(day, &r.api_key, r.spend);
        for (map, name) in [
            ("users", r.user_id.as_deref().unwrap_or_default()),
            ("models", &r.model),
        ] {
            if let Some(Value::Object(m)) = day.get_mut(map) {
                add(m, name, r.spend);
            }
        }
    }
    Ok(days.into_iter().map(Value::Object).collect())
}
