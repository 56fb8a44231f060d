//! Replicas sharing their deployments' state through Redis, as LiteLLM's
//! router does with `router_settings.redis_host`: every [`EVERY`], each
//! replica writes what it counted against its deployments' `rpm` / `tpm`
//! this minute into one hash per minute (its own fields) and reads back
//! every replica's totals (so a deployment's limit holds across replicas,
//! and `usage-based-routing` sees all traffic), and adds the cooldowns it
//! began to one hash, reading back the others' (so a deployment one
//! replica saw failing rests on all, for that model). One script call a second; nothing
//! on a request's path. If Redis fails, each replica goes on with its own
//! counts, and tries again at the next tick.

use crate::config::RedisSettings;
use crate::routes::AppState;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often replicas tell each other.
pub const EVERY: Duration = Duration::from_secs(1);
/// Warnings about Redis failing, at most one this often.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// KEYS: this minute's counts, the cooldowns. ARGV: now (Unix ms), this
/// replica (16 characters), the number of windows, then each window's id
/// and this replica's requests and tokens in it this minute (all of them:
/// set, not added, so a call repeated after a lost answer counts once);
/// the number of cooldowns, then each one's name and until when. Returns
/// {every replica's totals (requests, tokens in turn, by window), the
/// cooldowns still on (name, until in turn)}.
const SYNC: &str = r"
local u, c = KEYS[1], KEYS[2]
local now, rep = tonumber(ARGV[1]), ARGV[2]
local i = 3
local n = tonumber(ARGV[i]); i = i + 1
local ids = {}
for j = 1, n do
  local id = ARGV[i]
  ids[j] = id
  redis.call('HSET', u, 'r' .. rep .. id, ARGV[i + 1], 't' .. rep .. id, ARGV[i + 2])
  i = i + 3
end
local totals = {}
if n > 0 then
  redis.call('EXPIRE', u, 180)
  local sums = {}
  local all = redis.call('HGETALL', u)
  for k = 1, #all, 2 do
    local f = all[k]
    local key = string.sub(f, 1, 1) .. string.sub(f, 18)
    sums[key] = (sums[key] or 0) + tonumber(all[k + 1])
  end
  for j = 1, n do
    totals[#totals + 1] = sums['r' .. ids[j]] or 0
    totals[#totals + 1] = sums['t' .. ids[j]] or 0
  end
end
local m = tonumber(ARGV[i]); i = i + 1
for _ = 1, m do
  local name, untl = ARGV[i], ARGV[i + 1]
  i = i + 2
  if tonumber(untl) > tonumber(redis.call('HGET', c, name) or 0) then
    redis.call('HSET', c, name, untl)
  end
end
local cooling = {}
local all = redis.call('HGETALL', c)
for k = 1, #all, 2 do
  if tonumber(all[k + 1]) > now then
    cooling[#cooling + 1] = all[k]
    cooling[#cooling + 1] = all[k + 1]
  else
    redis.call('HDEL', c, all[k])
  end
end
return {totals, cooling}
";

/// Starts telling other replicas this gateway's deployments' counts and
/// cooldowns through `redis`, and taking theirs, until `app` is dropped.
pub fn start(app: Weak<AppState>, redis: &RedisSettings) -> redis::RedisResult<()> {
    let client = redis.client()?;
    let mut conn = Some(client.connect()?);
    // One slot in a cluster: the braces are the keys' hash tag.
    let prefix = redis.key("{llmux:router}");
    let place = redis.redacted();
    let script = redis::Script::new(SYNC);
    // This process in the counts: 16 characters, random per start.
    let replica = format!(
        "{:016x}",
        getrandom::u64().unwrap_or_else(|_| std::process::id().into())
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            let Some(app) = app.upgrade() else { break };
            let done = match conn.take().map_or_else(|| client.connect(), Ok) {
                Ok(mut c) => {
                    let done = once(&app, &mut c, &script, &prefix, &replica).await;
                    // A connection that failed may never recover: made
                    // anew at the next tick.
                    if done.is_ok() {
                        conn = Some(c);
                    }
                    done
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = done {
                if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    warned = Some(tokio::time::Instant::now());
                    tracing::warn!(
                        redis = %place,
                        "sharing deployments' counts and cooldowns through Redis failed ({e}); \
                         each replica counts its own until it answers"
                    );
                }
            }
        }
    });
    Ok(())
}

async fn once(
    app: &Arc<AppState>,
    conn: &mut redis::aio::ConnectionManager,
    script: &redis::Script,
    prefix: &str,
    replica: &str,
) -> Result<(), String> {
    let router = &app.router;
    router.reanchor();
    let minute = router.minute();
    let told = router.to_tell(minute);
    let cooling = router.cooling();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut call = script.key(format!("{prefix}:usage:{minute}"));
    call.key(format!("{prefix}:cooldowns"))
        .arg(now_ms)
        .arg(replica)
        .arg(told.len());
    for t in &told {
        call.arg(&t.id).arg(t.requests).arg(t.tokens);
    }
    call.arg(cooling.len());
    for (id, until) in &cooling {
        call.arg(id).arg(*until);
    }
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        call.invoke_async::<(Vec<i64>, Vec<String>)>(conn),
    )
    .await
    .map_err(|_| "no answer in 5 s".to_owned())?
    .map_err(|e| e.to_string())?;
    let (totals, others) = answer;
    let totals: Vec<(u64, u64)> = totals
        .chunks_exact(2)
        .map(|p| (p[0].max(0) as u64, p[1].max(0) as u64))
        .collect();
    router.told(minute, &told, &totals);
    let others: Vec<(String, u64)> = others
        .chunks_exact(2)
        .filter_map(|p| Some((p[0].clone(), p[1].parse().ok()?)))
        .collect();
    router.cool_as_told(&others);
    Ok(())
}
