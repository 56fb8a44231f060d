use super::store::SpendQuery;
use super::*;
use http::HeaderMap;
use serde_json::{Map, json};

const MASTER: &str = "sk-master-test";

fn headers(key: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {key}").parse().unwrap(),
    );
    h
}

fn row(key: &str) -> KeyRow {
    KeyRow::new(key, time::now_secs())
}

async fn open(url: &str) -> Arc<Keys> {
    Keys::open(url, &Secret::new(MASTER)).await.unwrap()
}

async fn admit(keys: &Keys, key: &str) -> Result<Arc<Admission>, ApiError> {
    keys.admit(Some(&Secret::new(MASTER)), &headers(key), "acompletion")
        .await
}

/// A key's budget period as if it ended at `at`, here and (queued) in the
/// database.
async fn period_ends(keys: &Keys, entry: &Arc<KeyEntry>, at: i64) {
    keys.set_budget(
        entry,
        edit::Budget {
            spend: None,
            reset_at: Some(Some(at)),
        },
    )
    .await;
}

fn deployment() -> llmux_core::Deployment {
    llmux_core::Deployment {
        id: "dep-1".into(),
        ..llmux_core::Deployment::new("gpt", llmux_core::ProviderKind::OpenAi, "gpt-4o-mini")
    }
}

fn usage(total: u64) -> llmux_core::Usage {
    llmux_core::Usage {
        prompt_tokens: total / 2,
        completion_tokens: total - total / 2,
        total_tokens: total,
        ..Default::default()
    }
}

#[test]
fn keys_are_hashed_as_litellm_hashes_them() {
    // sha256("sk-1234"), as LiteLLM's hash_token gives it.
    assert_eq!(
        hash_key("sk-1234"),
        "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
    );
    assert_eq!(abbreviate("sk-abcdefgh"), "sk-...efgh");
    assert_eq!(abbreviate("abc"), "sk-...abc");
    assert_eq!(abbreviate("sk-ééééé"), "sk-...éééé");
    let (a, b) = (new_key().unwrap(), new_key().unwrap());
    assert!(a.starts_with("sk-") && a.len() == 35, "{a}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn a_key_is_stored_hashed_and_its_spend_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("llmux-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.db");
    let url = format!("sqlite://{}", path.display());
    let key = "sk-the-secret-key-value";
    {
        let keys = open(&url).await;
        let mut r = row(key);
        r.key_alias = Some("alice".into());
        r.models = vec!["gpt".into()];
        keys.insert(r).await.unwrap();
        let a = admit(&keys, key).await.unwrap();
        keys.record_usage(&a, &deployment(), &usage(10), Some(0.25));
        keys.flush(std::time::Duration::from_secs(5)).await;
    }
    let keys = open(&url).await;
    let entry = keys.get(&hash_key(key)).expect("the key is loaded again");
    assert_eq!(entry.spend().0, 0.25);
    assert_eq!(entry.settings().models, vec!["gpt".to_string()]);
    assert_eq!(keys.by_alias("alice").unwrap().token, hash_key(key));
    let logs = keys
        .store()
        .spend_logs(&SpendQuery {
            api_key: Some(hash_key(key)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!((logs[0].total_tokens, logs[0].spend), (10, 0.25));
    assert_eq!(logs[0].model_group, "gpt");
    assert_eq!(logs[0].key_alias.as_deref(), Some("alice"));
    // The key itself is nowhere in the database.
    drop(keys);
    let mut bytes = Vec::new();
    for f in std::fs::read_dir(&dir).unwrap() {
        bytes.extend(std::fs::read(f.unwrap().path()).unwrap());
    }
    assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()));
    assert!(bytes.windows(64).any(|w| w == hash_key(key).as_bytes()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn unknown_blocked_and_expired_keys_are_refused_the_master_passes() {
    let keys = open("sqlite::memory:").await;
    let mut blocked = row("sk-blocked");
    blocked.blocked = true;
    let mut expired = row("sk-expired");
    expired.expires = Some(time::now_secs() - 1);
    let mut later = row("sk-later");
    later.expires = Some(time::now_secs() + 3600);
    for r in [blocked, expired, later] {
        keys.insert(r).await.unwrap();
    }
    let err = async |k: &str| admit(&keys, k).await.err().map(|e| (e.status, e.message));
    assert_eq!(err("sk-nobody").await.unwrap().0, 401);
    let (status, msg) = err("sk-blocked").await.unwrap();
    assert!(status == 401 && msg.contains("blocked"), "{msg}");
    let (status, msg) = err("sk-expired").await.unwrap();
    assert!(status == 401 && msg.contains("Expired"), "{msg}");
    assert!(admit(&keys, "sk-later").await.is_ok());
    let master = admit(&keys, MASTER).await.unwrap();
    assert!(master.entry().is_none());
    assert_eq!(**master.token(), *hash_key(MASTER));
}

#[tokio::test]
async fn a_budget_stops_requests_once_spent_and_comes_back_when_it_resets() {
    let keys = open("sqlite::memory:").await;
    let mut r = row("sk-budget");
    r.max_budget = Some(1.0);
    r.budget_duration = Some("30d".into());
    r.budget_reset_at = Some(time::now_secs() + 30 * 86_400);
    keys.insert(r).await.unwrap();
    let a = admit(&keys, "sk-budget").await.unwrap();
    keys.record_usage(&a, &deployment(), &usage(10), Some(0.6));
    // Under budget: still let in; this one takes it over.
    let b = admit(&keys, "sk-budget").await.unwrap();
    keys.record_usage(&b, &deployment(), &usage(10), Some(0.6));
    let e = admit(&keys, "sk-budget").await.err().unwrap();
    assert_eq!(e.status, 400);
    assert_eq!(e.kind.as_str(), "budget_exceeded");
    assert!(e.message.contains("1.2"), "{}", e.message);

    // The period ends: spend is 0 again, the next reset a period on.
    let entry = keys.get(&hash_key("sk-budget")).unwrap();
    let due = time::now_secs() - 5;
    period_ends(&keys, &entry, due).await;
    // Read before any request: shown as the next request will find it.
    assert_eq!(entry.spend(), (0.0, Some(due + 30 * 86_400)));
    assert!(admit(&keys, "sk-budget").await.is_ok());
    let (spend, next) = entry.spend();
    assert_eq!(spend, 0.0);
    assert_eq!(next, Some(due + 30 * 86_400));
    keys.flush(std::time::Duration::from_secs(5)).await;
    let stored = keys.store().load().await.unwrap();
    assert_eq!(stored[0].spend, 0.0, "the reset is written");
    assert_eq!(stored[0].budget_reset_at, Some(due + 30 * 86_400));
}

/// Waits out a minute's last seconds: the windows are calendar minutes,
/// and a test's counts must not cross one's end.
async fn away_from_a_minute_edge() {
    let into_minute = time::now_secs().rem_euclid(60);
    if into_minute > 55 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - into_minute) as u64)).await;
    }
}

#[tokio::test]
async fn rpm_tpm_and_parallel_limits_refuse_with_429_and_a_retry_after() {
    away_from_a_minute_edge().await;
    let keys = open("sqlite::memory:").await;
    let mut r = row("sk-rpm");
    r.rpm_limit = Some(2);
    keys.insert(r).await.unwrap();
    let _a = admit(&keys, "sk-rpm").await.unwrap();
    let _b = admit(&keys, "sk-rpm").await.unwrap();
    let e = admit(&keys, "sk-rpm").await.err().unwrap();
    assert_eq!(e.status, 429);
    assert!(!e.retryable, "a key's own limit is not the upstream's");
    let wait = e.retry_after.unwrap().as_secs();
    assert!((1..=60).contains(&wait), "{wait}");

    let mut r = row("sk-tpm");
    r.tpm_limit = Some(100);
    keys.insert(r).await.unwrap();
    let a = admit(&keys, "sk-tpm").await.unwrap();
    keys.record_usage(&a, &deployment(), &usage(100), None);
    let e = admit(&keys, "sk-tpm").await.err().unwrap();
    assert_eq!(e.status, 429);
    assert!(e.message.contains("tpm_limit"), "{}", e.message);

    let mut r = row("sk-parallel");
    r.max_parallel_requests = Some(1);
    keys.insert(r).await.unwrap();
    let first = admit(&keys, "sk-parallel").await.unwrap();
    let e = admit(&keys, "sk-parallel").await.err().unwrap();
    assert_eq!(e.status, 429);
    assert!(e.message.contains("parallel"), "{}", e.message);
    // Its slot comes back with the request, and a refused one held none.
    drop(first);
    let again = admit(&keys, "sk-parallel").await.unwrap();
    drop(again);
    assert!(admit(&keys, "sk-parallel").await.is_ok());
}

/// A request of `key`'s for `requested` (an alias of `group`, or the
/// group's own name) through its key's limits on that model.
async fn model_request(
    keys: &Keys,
    key: &str,
    requested: &str,
    group: &str,
) -> Result<Arc<Admission>, ApiError> {
    let a = admit(keys, key).await?;
    a.model_limits(None, requested, group).await?;
    Ok(a)
}

#[tokio::test]
async fn limits_per_model_count_each_model_apart_by_the_name_they_are_set_under() {
    away_from_a_minute_edge().await;
    let keys = open("sqlite::memory:").await;
    let mut r = row("sk-per-model");
    r.rpm_limit = Some(100);
    let mut body = Map::new();
    body.insert("model_rpm_limit".into(), json!({"gpt": 2, "fast": 1}));
    body.insert("model_tpm_limit".into(), json!({"claude": 100}));
    edit::apply(
        &mut r,
        &mut edit::Budget::default(),
        &body,
        time::now_secs(),
    )
    .unwrap();
    assert_eq!(r.metadata["model_rpm_limit"], json!({"gpt": 2, "fast": 1}));
    keys.insert(r).await.unwrap();

    // Two requests a minute for `gpt`, by its name or an alias of it.
    let a = model_request(&keys, "sk-per-model", "gpt", "gpt")
        .await
        .unwrap();
    assert!(a.model_limited("gpt", "gpt") && !a.model_limited("other", "other"));
    model_request(&keys, "sk-per-model", "alias-of-gpt", "gpt")
        .await
        .unwrap();
    let e = model_request(&keys, "sk-per-model", "gpt", "gpt")
        .await
        .err()
        .unwrap();
    assert_eq!(e.status, 429);
    assert!(!e.retryable);
    assert!(
        e.message.contains("model gpt") && e.message.contains("model_rpm_limit"),
        "{}",
        e.message
    );
    assert!((1..=60).contains(&e.retry_after.unwrap().as_secs()));
    // An alias's limits and its model's both hold.
    let mut r = row("sk-alias-limits");
    r.metadata = serde_json::from_value(json!({
        "model_rpm_limit": {"fast": 1}, "model_tpm_limit": {"gpt": 100}
    }))
    .unwrap();
    keys.insert(r).await.unwrap();
    let f = model_request(&keys, "sk-alias-limits", "fast", "gpt")
        .await
        .unwrap();
    let both: Vec<Arc<str>> = vec!["fast".into(), "gpt".into()];
    assert_eq!(f.model_counted(), both);
    // Its answer says what is left under each name its limits are set
    // under, and of those limits only.
    let mut h = http::HeaderMap::new();
    f.key_headers(&mut h);
    assert_eq!(h["x-litellm-key-remaining-requests-fast"], "0");
    assert_eq!(h["x-litellm-key-remaining-tokens-gpt"], "100");
    assert!(!h.contains_key("x-litellm-key-remaining-tokens-fast"));
    assert!(!h.contains_key("x-litellm-key-remaining-requests-gpt"));
    assert!(!h.contains_key("x-ratelimit-remaining-requests"));
    let e = model_request(&keys, "sk-alias-limits", "fast", "gpt")
        .await
        .err()
        .unwrap();
    assert!(e.message.contains("model fast"), "{}", e.message);
    // The model's tokens, counted by a request for its alias, hold on
    // both names.
    keys.record_usage(&f, &deployment(), &usage(100), None);
    let e = model_request(&keys, "sk-alias-limits", "gpt", "gpt")
        .await
        .err()
        .unwrap();
    assert!(
        e.message.contains("model gpt") && e.message.contains("model_tpm_limit"),
        "{}",
        e.message
    );
    // Other models are not limited.
    for _ in 0..5 {
        model_request(&keys, "sk-per-model", "other", "other")
            .await
            .unwrap();
    }

    // Tokens count against the model the request was let in on.
    let c = model_request(&keys, "sk-per-model", "claude", "claude")
        .await
        .unwrap();
    assert_eq!(c.model_counted(), vec![Arc::<str>::from("claude")]);
    keys.record_usage(&c, &deployment(), &usage(60), None);
    model_request(&keys, "sk-per-model", "claude", "claude")
        .await
        .unwrap();
    keys.record_usage(&c, &deployment(), &usage(60), None);
    let e = model_request(&keys, "sk-per-model", "claude", "claude")
        .await
        .err()
        .unwrap();
    assert_eq!(e.status, 429);
    assert!(
        e.message.contains("model_tpm_limit") && e.message.contains("120 used"),
        "{}",
        e.message
    );
    // A request on another model counts no tokens there.
    let o = model_request(&keys, "sk-per-model", "other", "other")
        .await
        .unwrap();
    assert!(o.model_counted().is_empty());
}

#[tokio::test]
async fn a_budget_on_a_model_stops_that_model_and_is_read_again_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("llmux-model-budget-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("keys.db").display());
    let keys = open(&url).await;
    let mut r = row("sk-model-budget");
    let mut body = Map::new();
    body.insert(
        "model_max_budget".into(),
        json!({"gpt": {"budget_limit": "1.0", "time_period": "30d"}}),
    );
    edit::apply(
        &mut r,
        &mut edit::Budget::default(),
        &body,
        time::now_secs(),
    )
    .unwrap();
    keys.insert(r).await.unwrap();
    let a = model_request(&keys, "sk-model-budget", "gpt", "gpt")
        .await
        .unwrap();
    keys.record_usage(&a, &deployment(), &usage(10), Some(0.6));
    // Through an alias, the model's budget.
    let b = model_request(&keys, "sk-model-budget", "alias-of-gpt", "gpt")
        .await
        .unwrap();
    keys.record_usage(&b, &deployment(), &usage(10), Some(0.6));
    let e = model_request(&keys, "sk-model-budget", "gpt", "gpt")
        .await
        .err()
        .unwrap();
    assert_eq!((e.status, e.kind.as_str()), (400, "budget_exceeded"));
    assert!(
        e.message.contains("model gpt") && e.message.contains("Max budget: 1"),
        "{}",
        e.message
    );
    // Another model is not budgeted; the key's own budget is not spent.
    model_request(&keys, "sk-model-budget", "claude", "claude")
        .await
        .unwrap();

    // After a restart the spend log says what was spent this period.
    keys.flush(std::time::Duration::from_secs(5)).await;
    drop(keys);
    let keys = open(&url).await;
    let e = model_request(&keys, "sk-model-budget", "gpt", "gpt")
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind.as_str(), "budget_exceeded");
    // Raised, it serves again.
    let token = hash_key("sk-model-budget");
    let mut body = Map::new();
    body.insert("model_max_budget".into(), json!({"gpt": {"max_budget": 5}}));
    keys.update(token, body).await.unwrap();
    model_request(&keys, "sk-model-budget", "gpt", "gpt")
        .await
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_models_spend_counts_in_its_period_only() {
    let now = time::now_secs();
    let mut r = row("sk-periods");
    // Made 10.5 days ago, a budget a day: this period began half a day ago.
    r.created_at = now - 10 * 86_400 - 43_200;
    r.metadata = serde_json::from_value(
        json!({"model_max_budget": {"gpt": {"max_budget": 1, "budget_duration": "1d"}}}),
    )
    .unwrap();
    let entry = KeyEntry::new(r);
    let s = entry.settings();
    let b = s.model_budget("gpt").unwrap();
    let period = b.period_start(s.created_at, now);
    assert_eq!(period, now - 43_200);
    // What the log holds for an earlier period is not taken.
    entry.logged_model_spend("gpt", period - 86_400, 5.0);
    entry.charge_model("gpt", &b, s.created_at, 0.25);
    assert_eq!(entry.model_spent("gpt", &b, s.created_at), 0.25);
    // The log's larger sum for this period is (other replicas' charges).
    entry.logged_model_spend("gpt", period, 0.75);
    assert_eq!(entry.model_spent("gpt", &b, s.created_at), 0.75);
    entry.logged_model_spend("gpt", period, 0.5);
    assert_eq!(entry.model_spent("gpt", &b, s.created_at), 0.75);
    assert!(entry.within_model_budget(&s, "gpt").is_ok());
    entry.charge_model("gpt", &b, s.created_at, 0.25);
    assert!(entry.within_model_budget(&s, "gpt").is_err());

    // Its duration changed to 30 days: the period is the key's first
    // (it began at its making), and the log's sum for it is taken over
    // what was counted under the old one.
    let mut longer = KeySettings::clone(&s);
    longer.metadata = serde_json::from_value(
        json!({"model_max_budget": {"gpt": {"max_budget": 1, "budget_duration": "30d"}}}),
    )
    .unwrap();
    entry.replace(longer);
    let s = entry.settings();
    let b = s.model_budget("gpt").unwrap();
    assert_eq!(b.period_start(s.created_at, now), s.created_at);
    assert_eq!(entry.model_spent("gpt", &b, s.created_at), 0.0);
    entry.logged_model_spend("gpt", s.created_at, 0.4);
    assert_eq!(entry.model_spent("gpt", &b, s.created_at), 0.4);
}

#[test]
fn limits_per_model_are_checked_kept_and_taken_out_as_set() {
    let now = time::now_secs();
    let set = |r: &mut KeyRow, body: serde_json::Value| {
        let serde_json::Value::Object(body) = body else {
            unreachable!()
        };
        edit::apply(r, &mut edit::Budget::default(), &body, now)
    };
    let mut r = row("sk-edit");
    set(&mut r, json!({"model_rpm_limit": {"gpt": 3}})).unwrap();
    // A new metadata that does not name them keeps them.
    set(&mut r, json!({"metadata": {"team": "x"}})).unwrap();
    assert_eq!(r.metadata["model_rpm_limit"], json!({"gpt": 3}));
    assert_eq!(r.metadata["team"], "x");
    // Named in it, or at the top (which wins), they are what is named.
    set(&mut r, json!({"metadata": {"model_rpm_limit": {"gpt": 4}}})).unwrap();
    assert_eq!(r.metadata["model_rpm_limit"], json!({"gpt": 4}));
    set(
        &mut r,
        json!({"metadata": {"model_rpm_limit": {"gpt": 4}}, "model_rpm_limit": {"gpt": 5}}),
    )
    .unwrap();
    assert_eq!(r.metadata["model_rpm_limit"], json!({"gpt": 5}));
    // A null metadata keeps them too; null inside it takes them out.
    set(&mut r, json!({"metadata": null})).unwrap();
    assert_eq!(r.metadata["model_rpm_limit"], json!({"gpt": 5}));
    set(&mut r, json!({"metadata": {"model_rpm_limit": null}})).unwrap();
    assert!(r.metadata.get("model_rpm_limit").is_none());
    set(&mut r, json!({"model_rpm_limit": {"gpt": 5}})).unwrap();
    // Null or empty takes them out.
    set(&mut r, json!({"model_rpm_limit": null})).unwrap();
    assert!(r.metadata.get("model_rpm_limit").is_none());
    set(&mut r, json!({"model_tpm_limit": {}})).unwrap();
    assert!(r.metadata.get("model_tpm_limit").is_none());
    // What would not hold is refused, wherever it is set.
    for body in [
        json!({"model_rpm_limit": {"gpt": "two"}}),
        json!({"model_rpm_limit": {"gpt": -1}}),
        json!({"model_rpm_limit": {"gpt": 1.5}}),
        json!({"model_rpm_limit": [2]}),
        json!({"metadata": {"model_rpm_limit": 2}}),
    ] {
        let e = set(&mut row("sk-bad"), body.clone()).err().unwrap();
        assert_eq!(
            (e.status, e.param.as_deref()),
            (400, Some("model_rpm_limit")),
            "{body}"
        );
    }
    let e = set(
        &mut row("sk-bad"),
        json!({"model_tpm_limit": {"gpt": 2u64.pow(63)}}),
    )
    .err()
    .unwrap();
    assert_eq!(e.param.as_deref(), Some("model_tpm_limit"));
}

#[tokio::test]
async fn a_key_uses_only_its_models() {
    let keys = open("sqlite::memory:").await;
    let mut r = row("sk-models");
    r.models = vec!["gpt".into(), "anthropic/*".into()];
    keys.insert(r).await.unwrap();
    let a = admit(&keys, "sk-models").await.unwrap();
    assert!(a.allows("gpt", "gpt").is_ok());
    assert!(a.allows("anthropic/claude-x", "anthropic/*").is_ok());
    assert!(
        a.allows("alias-of-gpt", "gpt").is_ok(),
        "an alias of its model"
    );
    let e = a.allows("claude", "claude").err().unwrap();
    assert_eq!(
        (e.status, e.kind.as_str()),
        (401, "key_model_access_denied")
    );
    let mut open_row = row("sk-any");
    open_row.models = vec!["all-proxy-models".into()];
    keys.insert(open_row).await.unwrap();
    assert!(
        admit(&keys, "sk-any")
            .await
            .unwrap()
            .allows("claude", "claude")
            .is_ok()
    );
}

#[tokio::test]
async fn aliases_are_unique_and_updates_and_deletes_take_effect_at_once() {
    let keys = open("sqlite::memory:").await;
    let mut a = row("sk-aaaa");
    a.key_alias = Some("team".into());
    keys.insert(a).await.unwrap();
    let mut b = row("sk-bbbb");
    b.key_alias = Some("team".into());
    let e = keys.insert(b).await.err().unwrap();
    assert!(e.message.contains("already exists"), "{}", e.message);

    keys.update(hash_key("sk-aaaa"), body(json!({"blocked": true})))
        .await
        .unwrap();
    assert_eq!(admit(&keys, "sk-aaaa").await.err().unwrap().status, 401);
    assert!(keys.store().load().await.unwrap()[0].blocked);
    // Another key may not take the alias by update either.
    keys.insert(row("sk-bbbb")).await.unwrap();
    let e = keys
        .update(hash_key("sk-bbbb"), body(json!({"key_alias": "team"})))
        .await
        .err()
        .unwrap();
    assert_eq!(e.param.as_deref(), Some("key_alias"));

    // All named or none: one unknown hash deletes nothing.
    let e = keys
        .delete(vec![hash_key("sk-aaaa"), hash_key("sk-nobody")])
        .await
        .err()
        .unwrap();
    assert_eq!(e.status, 404);
    assert!(keys.get(&hash_key("sk-aaaa")).is_some());
    keys.delete(vec![hash_key("sk-aaaa")]).await.unwrap();
    assert!(keys.get(&hash_key("sk-aaaa")).is_none());
    assert_eq!(keys.store().load().await.unwrap().len(), 1);
    assert_eq!(admit(&keys, "sk-aaaa").await.err().unwrap().status, 401);
}

#[tokio::test]
async fn the_master_key_cannot_be_made_a_virtual_key() {
    let keys = open("sqlite::memory:").await;
    let e = keys.insert(row(MASTER)).await.err().unwrap();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("key")));
}

fn body(v: serde_json::Value) -> Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// Every spend-log row, newest first.
async fn all_logs(keys: &Keys) -> Vec<SpendRecord> {
    keys.store()
        .spend_logs(&SpendQuery {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
}

/// The key's row as the database has it once the writer caught up.
async fn stored(keys: &Keys, key: &str) -> KeyRow {
    assert!(keys.flush(std::time::Duration::from_secs(5)).await);
    keys.store()
        .load()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.token == hash_key(key))
        .expect("stored")
}

#[tokio::test]
async fn changing_a_key_keeps_its_spend_and_budget_period_in_memory_and_on_disk() {
    let keys = open("sqlite::memory:").await;
    let mut r = row("sk-keep");
    r.max_budget = Some(10.0);
    r.budget_duration = Some("1d".into());
    r.budget_reset_at = Some(time::now_secs() + 86_400);
    keys.insert(r).await.unwrap();
    let entry = keys.get(&hash_key("sk-keep")).unwrap();
    let a = admit(&keys, "sk-keep").await.unwrap();
    keys.record_usage(&a, &deployment(), &usage(10), Some(1.5));
    // A period ended and was reset by a request (in memory, and queued).
    let due = time::now_secs() - 1;
    period_ends(&keys, &entry, due).await;
    drop(admit(&keys, "sk-keep").await.unwrap());
    let b = admit(&keys, "sk-keep").await.unwrap();
    keys.record_usage(&b, &deployment(), &usage(10), Some(0.5));
    let before = entry.spend();
    assert_eq!(before, (0.5, Some(due + 86_400)));

    // Blocking, unblocking and changing metadata leave spend and period be.
    for change in [
        json!({"blocked": true}),
        json!({"blocked": false}),
        json!({"metadata": {"team": "x"}}),
    ] {
        keys.update(hash_key("sk-keep"), body(change))
            .await
            .unwrap();
        assert_eq!(entry.spend(), before);
    }
    let on_disk = stored(&keys, "sk-keep").await;
    assert_eq!((on_disk.spend, on_disk.budget_reset_at), before);
    assert_eq!(on_disk.metadata["team"], "x");

    // Setting spend sets it, once, after what was queued before.
    let c = admit(&keys, "sk-keep").await.unwrap();
    keys.record_usage(&c, &deployment(), &usage(10), Some(0.25));
    keys.update(hash_key("sk-keep"), body(json!({"spend": 2.0})))
        .await
        .unwrap();
    assert_eq!(entry.spend().0, 2.0);
    assert_eq!(stored(&keys, "sk-keep").await.spend, 2.0);
}

#[tokio::test]
async fn a_regenerated_key_keeps_the_record_and_what_was_still_queued() {
    let keys = open("sqlite::memory:").await;
    let mut r = row("sk-old-key");
    r.key_alias = Some("svc".into());
    r.max_budget = Some(5.0);
    keys.insert(r).await.unwrap();
    let a = admit(&keys, "sk-old-key").await.unwrap();
    keys.record_usage(&a, &deployment(), &usage(10), Some(1.0));
    // A request in flight on the old key when it is replaced.
    let in_flight = admit(&keys, "sk-old-key").await.unwrap();
    let s = keys
        .rekey(hash_key("sk-old-key"), "sk-new-key".into())
        .await
        .unwrap();
    assert_eq!(s.token, hash_key("sk-new-key"));
    assert_eq!(s.key_alias.as_deref(), Some("svc"));
    assert_eq!(admit(&keys, "sk-old-key").await.err().unwrap().status, 401);
    keys.record_usage(&in_flight, &deployment(), &usage(10), Some(0.5));
    let new = admit(&keys, "sk-new-key").await.unwrap();
    keys.record_usage(&new, &deployment(), &usage(10), Some(0.25));
    assert_eq!(keys.get(&hash_key("sk-new-key")).unwrap().spend().0, 1.75);
    let on_disk = stored(&keys, "sk-new-key").await;
    assert_eq!(on_disk.spend, 1.75);
    assert_eq!(keys.store().load().await.unwrap().len(), 1);
    // The log keeps the key each request came with.
    let logs = keys
        .store()
        .spend_logs(&SpendQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let by: Vec<&str> = logs.iter().map(|r| &*r.api_key).collect();
    assert_eq!(
        by.iter().filter(|k| **k == hash_key("sk-old-key")).count(),
        2
    );
    assert_eq!(
        by.iter().filter(|k| **k == hash_key("sk-new-key")).count(),
        1
    );
}

#[tokio::test]
async fn the_master_keys_spend_is_logged_and_charged_to_no_key() {
    let keys = open("sqlite::memory:").await;
    keys.insert(row("sk-other")).await.unwrap();
    let m = admit(&keys, MASTER).await.unwrap();
    keys.record_usage(&m, &deployment(), &usage(10), Some(3.0));
    assert_eq!(stored(&keys, "sk-other").await.spend, 0.0);
    let logs = keys
        .store()
        .spend_logs(&SpendQuery {
            api_key: Some(hash_key(MASTER)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].spend, 3.0);
}

#[tokio::test]
async fn a_batch_of_many_requests_is_logged_whole_and_charged_to_each_key() {
    let keys = open("sqlite::memory:").await;
    for k in ["sk-batch-a", "sk-batch-b"] {
        keys.insert(row(k)).await.unwrap();
    }
    // 45 requests queued at once: written as chunks of 32, 8, 4 and 1 rows,
    // with one budget change between them.
    for i in 0..45 {
        let key = if i % 3 == 0 {
            "sk-batch-b"
        } else {
            "sk-batch-a"
        };
        let a = admit(&keys, key).await.unwrap();
        keys.record_usage(&a, &deployment(), &usage(10), Some(0.5));
        if i == 20 {
            let e = keys.get(&hash_key("sk-batch-b")).unwrap();
            keys.set_budget(
                &e,
                edit::Budget {
                    spend: Some(100.0),
                    reset_at: None,
                },
            )
            .await;
        }
    }
    // a: 30 requests; b: 7 before the change (i = 0, 3, …, 18), 8 after.
    assert_eq!(stored(&keys, "sk-batch-a").await.spend, 15.0);
    assert_eq!(stored(&keys, "sk-batch-b").await.spend, 104.0);
    assert_eq!(keys.get(&hash_key("sk-batch-b")).unwrap().spend().0, 104.0);
    let logs = all_logs(&keys).await;
    assert_eq!(logs.len(), 45);
    let ids: std::collections::HashSet<_> = logs.iter().map(|r| r.request_id.clone()).collect();
    assert_eq!(ids.len(), 45, "every request has its own id");
}

#[tokio::test]
async fn a_new_budget_period_keeps_the_spend_and_a_set_spend_keeps_the_period() {
    let keys = open("sqlite::memory:").await;
    keys.insert(row("sk-period")).await.unwrap();
    let entry = keys.get(&hash_key("sk-period")).unwrap();
    let a = admit(&keys, "sk-period").await.unwrap();
    keys.record_usage(&a, &deployment(), &usage(10), Some(0.75));
    keys.update(
        hash_key("sk-period"),
        body(json!({"budget_duration": "1h", "max_budget": 2})),
    )
    .await
    .unwrap();
    let (spend, reset_at) = entry.spend();
    assert_eq!(spend, 0.75, "the spend so far stays");
    let due = reset_at.unwrap() - time::now_secs();
    assert!((3590..=3600).contains(&due), "{due}");
    keys.update(hash_key("sk-period"), body(json!({"spend": 0.1})))
        .await
        .unwrap();
    assert_eq!(entry.spend(), (0.1, reset_at), "the period stays");
    let on_disk = stored(&keys, "sk-period").await;
    assert_eq!((on_disk.spend, on_disk.budget_reset_at), (0.1, reset_at));
    assert_eq!(on_disk.max_budget, Some(2.0));
    // No more resets.
    keys.update(
        hash_key("sk-period"),
        body(json!({"budget_duration": null})),
    )
    .await
    .unwrap();
    assert_eq!(entry.spend(), (0.1, None));
    assert_eq!(stored(&keys, "sk-period").await.budget_reset_at, None);
}

#[tokio::test]
async fn a_deleted_and_remade_key_starts_from_nothing() {
    let keys = open("sqlite::memory:").await;
    keys.insert(row("sk-again")).await.unwrap();
    let a = admit(&keys, "sk-again").await.unwrap();
    // Charged, still queued, when the key is deleted and made again.
    keys.record_usage(&a, &deployment(), &usage(10), Some(5.0));
    keys.delete(vec![hash_key("sk-again")]).await.unwrap();
    keys.insert(row("sk-again")).await.unwrap();
    assert_eq!(keys.get(&hash_key("sk-again")).unwrap().spend().0, 0.0);
    assert_eq!(stored(&keys, "sk-again").await.spend, 0.0);
}

/// Two gateways on one database file, as replicas on one PostgreSQL.
async fn replicas(name: &str) -> (Arc<Keys>, Arc<Keys>) {
    let dir = std::env::temp_dir().join(format!("llmux-replicas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.db"));
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite://{}", path.display());
    (open(&url).await, open(&url).await)
}

async fn settle(a: &Arc<Keys>, b: &Arc<Keys>) {
    for k in [a, b] {
        assert!(k.flush(std::time::Duration::from_secs(5)).await);
    }
    for k in [a, b] {
        k.sync().await.unwrap();
    }
}

#[tokio::test]
async fn replicas_on_one_database_share_keys_changes_and_spend() {
    let (a, b) = replicas("share").await;
    let mut r = row("sk-shared");
    r.max_budget = Some(1.0);
    a.insert(r).await.unwrap();

    // Made on one, used on the other at once: looked up on its first use.
    let on_b = admit(&b, "sk-shared").await.unwrap();
    let on_a = admit(&a, "sk-shared").await.unwrap();
    a.record_usage(&on_a, &deployment(), &usage(10), Some(0.4));
    b.record_usage(&on_b, &deployment(), &usage(10), Some(0.5));
    settle(&a, &b).await;
    for k in [&a, &b] {
        let e = k.get(&hash_key("sk-shared")).unwrap();
        assert!((e.spend().0 - 0.9).abs() < 1e-9, "{}", e.spend().0);
    }
    assert!((stored(&a, "sk-shared").await.spend - 0.9).abs() < 1e-9);
    // What b spends next takes the key over its budget on a too.
    let c = admit(&b, "sk-shared").await.unwrap();
    b.record_usage(&c, &deployment(), &usage(10), Some(0.2));
    settle(&a, &b).await;
    let e = admit(&a, "sk-shared").await.err().unwrap();
    assert_eq!((e.status, e.kind.as_str()), (400, "budget_exceeded"));
    a.update(hash_key("sk-shared"), body(json!({"max_budget": 5.0})))
        .await
        .unwrap();
    settle(&a, &b).await;
    assert!(admit(&b, "sk-shared").await.is_ok());

    // Blocked on a: refused on b once it has read the keys again.
    a.update(hash_key("sk-shared"), body(json!({"blocked": true})))
        .await
        .unwrap();
    settle(&a, &b).await;
    let e = admit(&b, "sk-shared").await.err().unwrap();
    assert!(
        e.status == 401 && e.message.contains("blocked"),
        "{}",
        e.message
    );
    a.update(hash_key("sk-shared"), body(json!({"blocked": false})))
        .await
        .unwrap();

    // Regenerated on b: the old key stops on a, the new one works there,
    // with the record's spend.
    b.rekey(hash_key("sk-shared"), "sk-renewed".into())
        .await
        .unwrap();
    settle(&a, &b).await;
    assert_eq!(admit(&a, "sk-shared").await.err().unwrap().status, 401);
    assert!(admit(&a, "sk-renewed").await.is_ok());
    let e = a.get(&hash_key("sk-renewed")).unwrap();
    assert!((e.spend().0 - 1.1).abs() < 1e-9, "{}", e.spend().0);

    // Deleted on a: gone on b.
    a.delete(vec![hash_key("sk-renewed")]).await.unwrap();
    settle(&a, &b).await;
    assert_eq!(admit(&b, "sk-renewed").await.err().unwrap().status, 401);
    assert!(b.get(&hash_key("sk-renewed")).is_none());
    assert_eq!((a.count(), b.count()), (0, 0));
}

#[tokio::test]
async fn a_budget_period_is_reset_once_whichever_replica_comes_first() {
    let (a, b) = replicas("reset").await;
    let mut r = row("sk-period-shared");
    r.max_budget = Some(10.0);
    r.budget_duration = Some("1d".into());
    r.budget_reset_at = Some(time::now_secs() + 86_400);
    a.insert(r).await.unwrap();
    let x = admit(&a, "sk-period-shared").await.unwrap();
    a.record_usage(&x, &deployment(), &usage(10), Some(3.0));
    settle(&a, &b).await;
    // The period ends (on both, as they read it).
    let due = time::now_secs() - 1;
    period_ends(&a, &a.get(&hash_key("sk-period-shared")).unwrap(), due).await;
    settle(&a, &b).await;
    assert_eq!(stored(&b, "sk-period-shared").await.spend, 3.0);

    // a resets it and charges; b, not having read that, resets it too:
    // its reset finds the period already moved on and leaves a's charge.
    let y = admit(&a, "sk-period-shared").await.unwrap();
    a.record_usage(&y, &deployment(), &usage(10), Some(0.25));
    assert!(a.flush(std::time::Duration::from_secs(5)).await);
    let z = admit(&b, "sk-period-shared").await.unwrap();
    b.record_usage(&z, &deployment(), &usage(10), Some(0.5));
    settle(&a, &b).await;
    let on_disk = stored(&a, "sk-period-shared").await;
    assert_eq!(on_disk.spend, 0.75);
    assert_eq!(on_disk.budget_reset_at, Some(due + 86_400));
    for k in [&a, &b] {
        let e = k.get(&hash_key("sk-period-shared")).unwrap();
        assert_eq!(e.spend(), (0.75, Some(due + 86_400)));
    }
}

#[tokio::test]
async fn an_unknown_key_is_looked_up_once_a_second_and_the_master_key_never() {
    let (a, b) = replicas("unknown").await;
    assert_eq!(admit(&b, "sk-nobody").await.err().unwrap().status, 401);
    // Made on a just after b looked for it: b answers from what it
    // remembers, without asking again, while it remembers (a minute
    // here, not to depend on the clock).
    let miss = hash_key("sk-nobody");
    assert!(lock(&b.misses).contains_key(&miss));
    lock(&b.misses).insert(
        miss,
        std::time::Instant::now() + std::time::Duration::from_secs(60),
    );
    a.insert(row("sk-nobody")).await.unwrap();
    assert_eq!(admit(&b, "sk-nobody").await.err().unwrap().status, 401);
    // Once the keys are read again, it is served.
    b.sync().await.unwrap();
    assert!(admit(&b, "sk-nobody").await.is_ok());
    assert_eq!(
        b.find(hash_key(MASTER)).await.unwrap().map(|e| e.id()),
        None
    );
    assert!(!lock(&b.misses).contains_key(&hash_key(MASTER)));
}

#[tokio::test]
async fn an_admin_on_one_replica_changes_a_key_made_on_another_from_its_stored_state() {
    let (a, b) = replicas("admin").await;
    a.insert(row("sk-elsewhere")).await.unwrap();
    // b has not read the keys since: it finds the key for the admin.
    let entry = b.lookup(&hash_key("sk-elsewhere")).await.unwrap();
    assert_eq!(entry.settings().token, hash_key("sk-elsewhere"));
    // a blocks it; b, not synced, changes its metadata: from the stored
    // record, so the block stays.
    a.update(hash_key("sk-elsewhere"), body(json!({"blocked": true})))
        .await
        .unwrap();
    let s = b
        .update(
            hash_key("sk-elsewhere"),
            body(json!({"metadata": {"t": 1}})),
        )
        .await
        .unwrap();
    assert!(s.blocked && s.metadata["t"] == 1);
    assert!(stored(&a, "sk-elsewhere").await.blocked);
    // Only a budget period changed on b: the spend a charged stays.
    let x = admit(&a, "sk-elsewhere").await;
    assert_eq!(x.err().unwrap().status, 401, "blocked");
    a.update(hash_key("sk-elsewhere"), body(json!({"blocked": false})))
        .await
        .unwrap();
    let x = admit(&a, "sk-elsewhere").await.unwrap();
    a.record_usage(&x, &deployment(), &usage(10), Some(0.75));
    assert!(a.flush(std::time::Duration::from_secs(5)).await);
    b.update(
        hash_key("sk-elsewhere"),
        body(json!({"budget_duration": "30d"})),
    )
    .await
    .unwrap();
    assert_eq!(stored(&b, "sk-elsewhere").await.spend, 0.75);
    // Only its spend set on a, whose copy of the period is older than b's
    // change: the stored period stays b's.
    let period = stored(&b, "sk-elsewhere").await.budget_reset_at;
    assert!(period.is_some());
    a.update(hash_key("sk-elsewhere"), body(json!({"spend": 0.5})))
        .await
        .unwrap();
    let on_disk = stored(&a, "sk-elsewhere").await;
    assert_eq!((on_disk.spend, on_disk.budget_reset_at), (0.5, period));
    // Deleted on a: b's change is a 404, and b lets the key go.
    a.delete(vec![hash_key("sk-elsewhere")]).await.unwrap();
    let e = b
        .update(hash_key("sk-elsewhere"), body(json!({"blocked": true})))
        .await
        .err()
        .unwrap();
    assert_eq!(e.status, 404);
    assert!(b.get(&hash_key("sk-elsewhere")).is_none());
    let e = b
        .rekey(hash_key("sk-elsewhere"), "sk-new-one".into())
        .await
        .err()
        .unwrap();
    assert_eq!(e.status, 404);
}

#[tokio::test]
async fn a_batch_written_twice_charges_once() {
    let keys = open("sqlite::memory:").await;
    keys.insert(row("sk-twice")).await.unwrap();
    let entry = keys.get(&hash_key("sk-twice")).unwrap();
    let a = admit(&keys, "sk-twice").await.unwrap();
    let record = SpendRecord {
        request_id: a.request_id.clone(),
        call_type: "acompletion",
        api_key: a.token().clone(),
        key_alias: None,
        spend: 0.5,
        prompt_tokens: 1,
        completion_tokens: 1,
        total_tokens: 2,
        start_ms: 0,
        end_ms: 0,
        model: "m".into(),
        model_id: "d".into(),
        model_group: "g".into(),
        provider: "openai".into(),
        user_id: None,
        team_id: None,
    };
    let batch = vec![spend::Event::Spend {
        record: Box::new(record),
        charge: Some(entry.clone()),
    }];
    // As when a commit went through but its answer was lost: written again.
    keys.store().write(&batch, &[]).await.unwrap();
    keys.store().write(&batch, &[]).await.unwrap();
    assert_eq!(stored(&keys, "sk-twice").await.spend, 0.5);
}

#[tokio::test]
async fn charges_the_queue_had_no_room_for_are_written_with_the_next_batch() {
    let keys = open("sqlite::memory:").await;
    keys.insert(row("sk-flood")).await.unwrap();
    let entry = keys.get(&hash_key("sk-flood")).unwrap();
    // One thread: the writer cannot run while these are queued, so the
    // queue fills and the last ones find no room.
    let n = 16_384 + 10;
    for _ in 0..n {
        let a = admit(&keys, "sk-flood").await.unwrap();
        keys.record_usage(&a, &deployment(), &usage(2), Some(0.25));
    }
    assert_eq!(entry.spend().0, 0.25 * n as f64);
    let on_disk = stored(&keys, "sk-flood").await;
    // Every charge is in the record; the rows that found no room are not.
    assert_eq!(on_disk.spend, 0.25 * n as f64);
    let logs = all_logs(&keys).await;
    assert_eq!(logs.len(), 16_384);
    assert_eq!(lock(&entry.spend).unwritten, 0.0);
}

#[test]
fn a_prompt_is_estimated_by_its_text_and_its_images_counted_flat() {
    let text = format!(
        r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(3_957)
    );
    assert_eq!(limits::prompt_tokens(text.as_bytes()), 1_000);
    // A 100 KB image, as a data URL and as Anthropic's base64 source: a
    // thousand tokens each, not its size over four.
    let b64 = "QUJD".repeat(25_000);
    let openai = format!(
        r#"{{"messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{b64}"}}}}]}}]}}"#
    );
    let n = limits::prompt_tokens(openai.as_bytes());
    assert!((1_000..1_100).contains(&n), "{n}");
    let anthropic = format!(
        r#"{{"messages":[{{"role":"user","content":[{{"type":"image","source":{{"type":"base64","media_type":"image/png","data":"{b64}"}}}}]}}]}}"#
    );
    let n = limits::prompt_tokens(anthropic.as_bytes());
    assert!((1_000..1_100).contains(&n), "{n}");
    // With spaces, as some SDKs write JSON.
    let spaced = anthropic.replace(r#""data":""#, r#""data" : ""#);
    let n = limits::prompt_tokens(spaced.as_bytes());
    assert!((1_000..1_100).contains(&n), "{n}");
    // Short `data` strings are text.
    assert_eq!(limits::prompt_tokens(br#"{"data":"abcd"}"#), 4);
    // Text dressed as an image is text: no budget is dodged by it.
    let dodge = format!(
        r#"{{"messages":[{{"role":"user","content":"x;base64,{}"}}]}}"#,
        "lorem ipsum ".repeat(10_000)
    );
    assert!(limits::prompt_tokens(dodge.as_bytes()) > 29_000);
    // A data URL inside a `data` string is one image, not two.
    let both = format!(r#"{{"data":"data:image/png;base64,{b64}"}}"#);
    let n = limits::prompt_tokens(both.as_bytes());
    assert!((1_000..1_100).contains(&n), "{n}");
}

#[tokio::test]
async fn a_stream_left_early_is_charged_an_estimate_only_with_a_virtual_key() {
    let keys = open("sqlite::memory:").await;
    keys.insert(row("sk-leaver")).await.unwrap();
    let a = admit(&keys, "sk-leaver").await.unwrap();
    a.estimate_prompt(&[b'x'; 400]);
    let u = a.left_early(None, 7).unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (100, 7, 107)
    );
    // What the upstream said is kept: Claude's input tokens at the start.
    let known = llmux_core::Usage {
        prompt_tokens: 42,
        ..Default::default()
    };
    let u = a.left_early(Some(&known), 3).unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (42, 3, 45)
    );
    let master = admit(&keys, MASTER).await.unwrap();
    master.estimate_prompt(&[b'x'; 400]);
    assert!(master.left_early(None, 7).is_none());
}

#[tokio::test]
async fn spend_is_summed_by_utc_day_key_user_and_model() {
    let keys = open("sqlite::memory:").await;
    let day = 86_400_000;
    let log = |id: &str, key: &str, user: Option<&str>, model: &str, at: i64, spend: f64| {
        spend::Event::Spend {
            record: Box::new(SpendRecord {
                request_id: id.into(),
                call_type: "acompletion",
                api_key: key.into(),
                key_alias: None,
                spend,
                prompt_tokens: 1,
                completion_tokens: 1,
                total_tokens: 2,
                start_ms: at,
                end_ms: at,
                model: model.into(),
                model_id: "d".into(),
                model_group: model.into(),
                provider: "openai".into(),
                user_id: user.map(str::to_owned),
                team_id: None,
            }),
            charge: None,
        }
    };
    let batch = vec![
        // Day 20,000's last millisecond and the next day's first.
        log("r1", "k1", Some("u"), "a", 20_001 * day - 1, 1.0),
        log("r2", "k1", Some("u"), "a", 20_001 * day, 2.0),
        log("r3", "k1", Some("u"), "a", 20_001 * day + 5, 4.0),
        log("r4", "k1", None, "b", 20_001 * day + 6, 8.0),
        log("r5", "k2", Some("u"), "a", 20_001 * day + 7, 16.0),
    ];
    keys.store().write(&batch, &[]).await.unwrap();
    let mut q = SpendQuery {
        from_ms: Some(20_000 * day),
        to_ms: Some(20_002 * day),
        ..Default::default()
    };
    let mut got = keys.store().spend_by_day(&q).await.unwrap();
    got.sort_by(|a, b| (a.day, &a.api_key, &a.model).cmp(&(b.day, &b.api_key, &b.model)));
    let row = |day: i64, key: &str, user: Option<&str>, model: &str, spend: f64| store::DaySpend {
        day,
        api_key: key.into(),
        user_id: user.map(str::to_owned),
        model: model.into(),
        spend,
    };
    assert_eq!(
        got,
        vec![
            row(20_000, "k1", Some("u"), "a", 1.0),
            row(20_001, "k1", Some("u"), "a", 6.0),
            row(20_001, "k1", None, "b", 8.0),
            row(20_001, "k2", Some("u"), "a", 16.0),
        ]
    );
    // The same filters as the rows: one key, and the range's end excluded.
    q.api_key = Some("k2".into());
    q.to_ms = Some(20_001 * day + 7);
    assert!(keys.store().spend_by_day(&q).await.unwrap().is_empty());
}
