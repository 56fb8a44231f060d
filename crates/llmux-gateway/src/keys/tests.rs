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

fn admit(keys: &Keys, key: &str) -> Result<Arc<Admission>, ApiError> {
    keys.admit(Some(&Secret::new(MASTER)), &headers(key), "acompletion")
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
        let a = admit(&keys, key).unwrap();
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
    let err = |k: &str| admit(&keys, k).err().map(|e| (e.status, e.message));
    assert_eq!(err("sk-nobody").unwrap().0, 401);
    let (status, msg) = err("sk-blocked").unwrap();
    assert!(status == 401 && msg.contains("blocked"), "{msg}");
    let (status, msg) = err("sk-expired").unwrap();
    assert!(status == 401 && msg.contains("Expired"), "{msg}");
    assert!(admit(&keys, "sk-later").is_ok());
    let master = admit(&keys, MASTER).unwrap();
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
    let a = admit(&keys, "sk-budget").unwrap();
    keys.record_usage(&a, &deployment(), &usage(10), Some(0.6));
    // Under budget: still let in; this one takes it over.
    let b = admit(&keys, "sk-budget").unwrap();
    keys.record_usage(&b, &deployment(), &usage(10), Some(0.6));
    let e = admit(&keys, "sk-budget").err().unwrap();
    assert_eq!(e.status, 400);
    assert_eq!(e.kind.as_str(), "budget_exceeded");
    assert!(e.message.contains("1.2"), "{}", e.message);

    // The period ends: spend is 0 again, the next reset a period on.
    let entry = keys.get(&hash_key("sk-budget")).unwrap();
    let due = time::now_secs() - 5;
    lock(&entry.spend).reset_at = Some(due);
    // Read before any request: shown as the next request will find it.
    assert_eq!(entry.spend(), (0.0, Some(due + 30 * 86_400)));
    assert!(admit(&keys, "sk-budget").is_ok());
    let (spend, next) = entry.spend();
    assert_eq!(spend, 0.0);
    assert_eq!(next, Some(due + 30 * 86_400));
    keys.flush(std::time::Duration::from_secs(5)).await;
    let stored = keys.store().load().await.unwrap();
    assert_eq!(stored[0].spend, 0.0, "the reset is written");
    assert_eq!(stored[0].budget_reset_at, Some(due + 30 * 86_400));
}

#[tokio::test]
async fn rpm_tpm_and_parallel_limits_refuse_with_429_and_a_retry_after() {
    // The windows are calendar minutes: not across one's end.
    let into_minute = time::now_secs().rem_euclid(60);
    if into_minute > 55 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - into_minute) as u64)).await;
    }
    let keys = open("sqlite::memory:").await;
    let mut r = row("sk-rpm");
    r.rpm_limit = Some(2);
    keys.insert(r).await.unwrap();
    let _a = admit(&keys, "sk-rpm").unwrap();
    let _b = admit(&keys, "sk-rpm").unwrap();
    let e = admit(&keys, "sk-rpm").err().unwrap();
    assert_eq!(e.status, 429);
    assert!(!e.retryable, "a key's own limit is not the upstream's");
    let wait = e.retry_after.unwrap().as_secs();
    assert!((1..=60).contains(&wait), "{wait}");

    let mut r = row("sk-tpm");
    r.tpm_limit = Some(100);
    keys.insert(r).await.unwrap();
    let a = admit(&keys, "sk-tpm").unwrap();
    keys.record_usage(&a, &deployment(), &usage(100), None);
    let e = admit(&keys, "sk-tpm").err().unwrap();
    assert_eq!(e.status, 429);
    assert!(e.message.contains("tpm_limit"), "{}", e.message);

    let mut r = row("sk-parallel");
    r.max_parallel_requests = Some(1);
    keys.insert(r).await.unwrap();
    let first = admit(&keys, "sk-parallel").unwrap();
    let e = admit(&keys, "sk-parallel").err().unwrap();
    assert_eq!(e.status, 429);
    assert!(e.message.contains("parallel"), "{}", e.message);
    // Its slot comes back with the request, and a refused one held none.
    drop(first);
    let again = admit(&keys, "sk-parallel").unwrap();
    drop(again);
    assert!(admit(&keys, "sk-parallel").is_ok());
}

#[tokio::test]
async fn a_key_uses_only_its_models() {
    let keys = open("sqlite::memory:").await;
    let mut r = row("sk-models");
    r.models = vec!["gpt".into(), "anthropic/*".into()];
    keys.insert(r).await.unwrap();
    let a = admit(&keys, "sk-models").unwrap();
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
    assert_eq!(admit(&keys, "sk-aaaa").err().unwrap().status, 401);
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
    assert_eq!(admit(&keys, "sk-aaaa").err().unwrap().status, 401);
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
    let a = admit(&keys, "sk-keep").unwrap();
    keys.record_usage(&a, &deployment(), &usage(10), Some(1.5));
    // A period ended and was reset by a request (in memory, and queued).
    let due = time::now_secs() - 1;
    lock(&entry.spend).reset_at = Some(due);
    drop(admit(&keys, "sk-keep").unwrap());
    let b = admit(&keys, "sk-keep").unwrap();
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
    let c = admit(&keys, "sk-keep").unwrap();
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
    let a = admit(&keys, "sk-old-key").unwrap();
    keys.record_usage(&a, &deployment(), &usage(10), Some(1.0));
    // A request in flight on the old key when it is replaced.
    let in_flight = admit(&keys, "sk-old-key").unwrap();
    let s = keys
        .rekey(hash_key("sk-old-key"), "sk-new-key".into())
        .await
        .unwrap();
    assert_eq!(s.token, hash_key("sk-new-key"));
    assert_eq!(s.key_alias.as_deref(), Some("svc"));
    assert_eq!(admit(&keys, "sk-old-key").err().unwrap().status, 401);
    keys.record_usage(&in_flight, &deployment(), &usage(10), Some(0.5));
    let new = admit(&keys, "sk-new-key").unwrap();
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
    let m = admit(&keys, MASTER).unwrap();
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
        let a = admit(&keys, key).unwrap();
        keys.record_usage(&a, &deployment(), &usage(10), Some(0.5));
        if i == 20 {
            let e = keys.get(&hash_key("sk-batch-b")).unwrap();
            keys.set_budget(
                &e,
                edit::Budget {
                    spend: Some(100.0),
                    reset_at: None,
                },
            );
        }
    }
    // a: 30 requests; b: 7 before the change (i = 0, 3, …, 18), 8 after.
    assert_eq!(stored(&keys, "sk-batch-a").await.spend, 15.0);
    assert_eq!(stored(&keys, "sk-batch-b").await.spend, 104.0);
    assert_eq!(keys.get(&hash_key("sk-batch-b")).unwrap().spend().0, 104.0);
    let logs = keys
        .store()
        .spend_logs(&SpendQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(logs.len(), 45);
    let ids: std::collections::HashSet<_> = logs.iter().map(|r| r.request_id.clone()).collect();
    assert_eq!(ids.len(), 45, "every request has its own id");
}

#[tokio::test]
async fn a_new_budget_period_keeps_the_spend_and_a_set_spend_keeps_the_period() {
    let keys = open("sqlite::memory:").await;
    keys.insert(row("sk-period")).await.unwrap();
    let entry = keys.get(&hash_key("sk-period")).unwrap();
    let a = admit(&keys, "sk-period").unwrap();
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
    let a = admit(&keys, "sk-again").unwrap();
    // Charged, still queued, when the key is deleted and made again.
    keys.record_usage(&a, &deployment(), &usage(10), Some(5.0));
    keys.delete(vec![hash_key("sk-again")]).await.unwrap();
    keys.insert(row("sk-again")).await.unwrap();
    assert_eq!(keys.get(&hash_key("sk-again")).unwrap().spend().0, 0.0);
    assert_eq!(stored(&keys, "sk-again").await.spend, 0.0);
}
