//! Keys a LiteLLM proxy made, taken from its database the first time llmux
//! opens it (PostgreSQL: LiteLLM's own tables sit beside llmux's), so the
//! keys people already hold go on working. Once per database: a marker
//! row says it was done, and deleting every key later brings none back.
//!
//! A key is taken with what llmux enforces of it (models, budget and its
//! period, spend so far, rpm / tpm / parallel limits, expiry, blocked,
//! alias, user, team, metadata). A key that LiteLLM also limits in ways
//! llmux does not (a team's or user's budget or limits, a budget table
//! entry, an organization or project, per-model budgets, allowed routes,
//! object permissions) is taken *blocked*, its reasons in its metadata
//! (`llmux_import_held`) and the log: serving it would give it more than
//! LiteLLM did; an admin unblocks it knowingly.

use super::limits::{MODEL_RPM, MODEL_TPM};
use super::model_budget::MODEL_BUDGET;
use super::store::KeyRow;
use super::time;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// LiteLLM's tables, as Prisma names them.
pub const KEYS_TABLE: &str = "LiteLLM_VerificationToken";
pub const TEAMS_TABLE: &str = "LiteLLM_TeamTable";
pub const USERS_TABLE: &str = "LiteLLM_UserTable";
pub const MEMBERSHIPS_TABLE: &str = "LiteLLM_TeamMembership";

/// What the import made of LiteLLM's keys.
#[derive(Debug, Default)]
pub struct Imported {
    /// Keys to store, held ones blocked.
    pub rows: Vec<KeyRow>,
    /// Held keys: their short name (or alias) and why.
    pub held: Vec<(String, Vec<String>)>,
    /// Rows that are not a key llmux can check (not a SHA-256 hash).
    pub skipped: usize,
}

/// The rows of LiteLLM's other tables a key's limits come from.
#[derive(Debug, Default)]
pub struct Related {
    /// `LiteLLM_TeamTable` by `team_id`.
    pub teams: HashMap<String, Map<String, Value>>,
    /// `LiteLLM_UserTable` by `user_id`.
    pub users: HashMap<String, Map<String, Value>>,
    /// `LiteLLM_TeamMembership` by (`team_id`, `user_id`).
    pub memberships: HashMap<(String, String), Map<String, Value>>,
}

/// LiteLLM's "no models" entry; in llmux a list of it matches no model.
const NO_MODELS: &str = "no-default-models";

/// LiteLLM's key rows (each `row_to_json` of a `LiteLLM_VerificationToken`
/// row, whatever columns its version has) as llmux's, with the rows their
/// limits come from.
///
/// An alias already taken (by a key llmux has, or an earlier row) is kept
/// in the key's metadata as `llmux_import_alias` instead: aliases are
/// unique in llmux.
pub fn convert(
    keys: Vec<Map<String, Value>>,
    related: &Related,
    mut taken_aliases: std::collections::HashSet<String>,
    now: i64,
) -> Imported {
    let (teams, users) = (&related.teams, &related.users);
    let mut out = Imported::default();
    for k in keys {
        let Some(token) = text(&k, "token").filter(|t| is_hash(t)) else {
            out.skipped += 1;
            continue;
        };
        let mut why = Vec::new();
        let mut row = KeyRow::new("", now);
        row.token = token.to_ascii_lowercase();
        row.key_name = text(&k, "key_name")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("sk-...{}", &row.token[60..]));
        row.key_alias = text(&k, "key_alias").map(str::to_owned);
        row.spend = k.get("spend").and_then(Value::as_f64).unwrap_or(0.0);
        row.max_budget = k.get("max_budget").and_then(Value::as_f64);
        row.budget_duration = text(&k, "budget_duration").map(str::to_owned);
        if row
            .budget_duration
            .as_deref()
            .is_some_and(|d| time::parse_duration(d).is_none())
        {
            why.push("a budget period llmux cannot read".to_owned());
        }
        row.budget_reset_at = text(&k, "budget_reset_at").and_then(time::parse_timestamp);
        if text(&k, "budget_reset_at").is_some() && row.budget_reset_at.is_none() {
            why.push("a budget reset time llmux cannot read".to_owned());
        }
        if row.budget_duration.is_some() && row.budget_reset_at.is_none() {
            row.budget_reset_at = row
                .budget_duration
                .as_deref()
                .and_then(time::parse_duration)
                .map(|d| now + d);
        }
        row.tpm_limit = count(&k, "tpm_limit");
        row.rpm_limit = count(&k, "rpm_limit");
        row.max_parallel_requests =
            count(&k, "max_parallel_requests").map(|n| n.min(u32::MAX as u64) as u32);
        row.metadata = match k.get("metadata") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        if let Some(alias) = row.key_alias.take() {
            if taken_aliases.insert(alias.clone()) {
                row.key_alias = Some(alias);
            } else {
                row.metadata
                    .insert("llmux_import_alias".into(), Value::String(alias));
            }
        }
        row.user_id = text(&k, "user_id").map(str::to_owned);
        row.team_id = text(&k, "team_id").map(str::to_owned);
        row.blocked = k.get("blocked").and_then(Value::as_bool).unwrap_or(false);
        row.expires = text(&k, "expires").and_then(time::parse_timestamp);
        if text(&k, "expires").is_some_and(|e| e != "infinity") && row.expires.is_none() {
            why.push("an expiry llmux cannot read".to_owned());
        }
        if row.blocked {
            row.metadata.insert(
                "llmux_import_blocked".into(),
                Value::from("blocked in LiteLLM"),
            );
        }
        row.created_at = text(&k, "created_at")
            .and_then(time::parse_timestamp)
            .unwrap_or(now);
        row.updated_at = text(&k, "updated_at")
            .and_then(time::parse_timestamp)
            .unwrap_or(row.created_at);
        let models = strings(&k, "models");

        // LiteLLM's limits llmux does not enforce.
        for (field, what) in [
            ("budget_id", "a budget from LiteLLM's budget table"),
            ("organization_id", "an organization"),
            ("project_id", "a project"),
            ("object_permission_id", "object permissions"),
        ] {
            if text(&k, field).is_some() {
                why.push(what.to_owned());
            }
        }
        // Its budgets per model, when they read as LiteLLM writes them.
        if let Some(v) = k.get(MODEL_BUDGET).filter(|v| !empty(Some(v))) {
            row.metadata.insert(MODEL_BUDGET.into(), v.clone());
        }
        if super::model_budget::check(&mut row.metadata).is_err() {
            why.push(format!("a `{MODEL_BUDGET}` llmux cannot read"));
        }
        for (field, what) in [
            ("budget_limits", "budgets per model"),
            ("allowed_routes", "allowed routes"),
            ("policies", "policies"),
        ] {
            if !empty(k.get(field)) && !why.iter().any(|w| w == what) {
                why.push(what.to_owned());
            }
        }
        // Its limits per model are enforced as LiteLLM sets them, when
        // they read as LiteLLM writes them.
        for field in [MODEL_RPM, MODEL_TPM] {
            if super::edit::check_model_limits(&mut row.metadata, field).is_err() {
                why.push(format!("a `{field}` llmux cannot read"));
            }
        }
        if !empty(row.metadata.get("tags")) {
            why.push("tags in its metadata (with budgets of their own)".to_owned());
        }
        let user = row.user_id.as_deref().and_then(|u| users.get(u));
        if let Some(user) = user {
            let id = row.user_id.as_deref().unwrap_or_default();
            if !unlimited(user) {
                why.push(format!("its user's budget or limits ({id})"));
            }
            if matches!(
                text(user, "user_role"),
                Some("proxy_admin" | "proxy_admin_viewer")
            ) || id == "default_user_id"
            {
                why.push("a LiteLLM admin's key (or LiteLLM's master key)".to_owned());
            }
        } else if row.user_id.as_deref() == Some("default_user_id") {
            why.push("a LiteLLM admin's key (or LiteLLM's master key)".to_owned());
        }
        row.models = match row.team_id.clone() {
            None => {
                // Without a team, `all-team-models` is kept: it matches no
                // model, as in LiteLLM. A user's models bound the key's.
                match user.map(|u| strings(u, "models")) {
                    Some(allowed) if !allowed.is_empty() => match bound(&models, &allowed) {
                        Some(m) => m,
                        None => {
                            why.push("no model its user allows".to_owned());
                            none_if_empty(models)
                        }
                    },
                    _ => models,
                }
            }
            Some(id) => match teams.get(&id) {
                None => {
                    why.push(format!("a team not found ({id})"));
                    none_if_empty(models)
                }
                Some(team) => {
                    if team
                        .get("blocked")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                    {
                        row.blocked = true;
                        row.metadata.insert(
                            "llmux_import_blocked".into(),
                            Value::from(format!("its team ({id}) is blocked in LiteLLM")),
                        );
                    }
                    if !unlimited(team) {
                        why.push(format!("its team's budget or limits ({id})"));
                    }
                    if text(team, "organization_id").is_some() {
                        why.push(format!("its team's organization ({id})"));
                    }
                    if let Some(m) = team.get("metadata").and_then(Value::as_object) {
                        if has_metadata_limits(m) {
                            why.push(format!("limits or tags in its team's metadata ({id})"));
                        }
                    }
                    let member = row
                        .user_id
                        .clone()
                        .and_then(|u| related.memberships.get(&(id.clone(), u)));
                    if member.is_some_and(|m| text(m, "budget_id").is_some()) {
                        why.push(format!("its budget as a member of its team ({id})"));
                    }
                    // The key's own models that its team allows; none of
                    // its own (or `all-team-models`) is the team's.
                    let own: Vec<String> = models
                        .into_iter()
                        .filter(|m| m != "all-team-models")
                        .collect();
                    match bound(&own, &strings(team, "models")) {
                        Some(m) => m,
                        None => {
                            why.push("no model its team allows".to_owned());
                            none_if_empty(own)
                        }
                    }
                }
            },
        };
        if !why.is_empty() {
            row.blocked = true;
            row.metadata
                .insert("llmux_import_held".into(), Value::from(why.clone()));
            out.held.push((
                row.key_alias
                    .clone()
                    .unwrap_or_else(|| row.key_name.clone()),
                why,
            ));
        }
        out.rows.push(row);
    }
    out
}

/// `own` models as a team's or user's list `allowed` bounds them: those
/// of its own allowed (exactly named), or the whole list when it has none
/// of its own; any, when the list is empty or has `all-proxy-models`.
/// None if that leaves no model.
fn bound(own: &[String], allowed: &[String]) -> Option<Vec<String>> {
    if allowed.is_empty() || allowed.iter().any(|m| m == "all-proxy-models") {
        return Some(own.to_vec());
    }
    let allowed: Vec<&String> = allowed.iter().filter(|m| *m != NO_MODELS).collect();
    let both: Vec<String> = if own.is_empty() {
        allowed.into_iter().cloned().collect()
    } else {
        own.iter()
            .filter(|m| allowed.contains(m))
            .cloned()
            .collect()
    };
    (!both.is_empty()).then_some(both)
}

/// A held key's models: its own, or none at all (never the empty list,
/// which would be every model were it unblocked).
fn none_if_empty(models: Vec<String>) -> Vec<String> {
    if models.is_empty() {
        vec![NO_MODELS.to_owned()]
    } else {
        models
    }
}

/// LiteLLM limits kept in a team's metadata: rpm / tpm per model, and tags
/// (whose budgets apply to the team's requests).
fn has_metadata_limits(m: &Map<String, Value>) -> bool {
    ["model_rpm_limit", "model_tpm_limit", "tags"]
        .iter()
        .any(|f| !empty(m.get(*f)))
}

fn is_hash(t: &str) -> bool {
    t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

fn text<'a>(m: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    m.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn count(m: &Map<String, Value>, field: &str) -> Option<u64> {
    m.get(field)
        .and_then(Value::as_f64)
        .map(|n| n.max(0.0) as u64)
}

fn strings(m: &Map<String, Value>, field: &str) -> Vec<String> {
    match m.get(field) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Null, `{}`, `[]` or `""`.
fn empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// A team or user without a budget or limits of its own.
fn unlimited(m: &Map<String, Value>) -> bool {
    [
        "max_budget",
        "tpm_limit",
        "rpm_limit",
        "max_parallel_requests",
    ]
    .iter()
    .all(|f| empty(m.get(*f)))
        && ["model_max_budget", "budget_limits"]
            .iter()
            .all(|f| empty(m.get(*f)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn hash(key: &str) -> String {
        super::super::hash_key(key)
    }

    #[test]
    fn takes_what_llmux_enforces_and_holds_what_it_does_not() {
        let teams = HashMap::from([
            (
                "t-open".to_owned(),
                obj(
                    json!({"team_id": "t-open", "models": ["gpt-4o", "claude"], "blocked": false,
                           "max_budget": null, "model_max_budget": {}}),
                ),
            ),
            (
                "t-budget".to_owned(),
                obj(json!({"team_id": "t-budget", "models": [], "max_budget": 50.0})),
            ),
            (
                "t-off".to_owned(),
                obj(json!({"team_id": "t-off", "models": [], "blocked": true})),
            ),
        ]);
        let mut teams = teams;
        teams.insert(
            "t-org".to_owned(),
            obj(json!({"team_id": "t-org", "organization_id": "o-1"})),
        );
        let users = HashMap::from([
            (
                "u-capped".to_owned(),
                obj(json!({"user_id": "u-capped", "max_budget": 5.0})),
            ),
            (
                "u-admin".to_owned(),
                obj(json!({"user_id": "u-admin", "user_role": "proxy_admin"})),
            ),
            (
                "u-narrow".to_owned(),
                obj(json!({"user_id": "u-narrow", "models": ["claude"]})),
            ),
            (
                "u-none".to_owned(),
                obj(json!({"user_id": "u-none", "models": ["no-default-models"]})),
            ),
        ]);
        let memberships = HashMap::from([(
            ("t-open".to_owned(), "u-member".to_owned()),
            obj(json!({"team_id": "t-open", "user_id": "u-member", "budget_id": "b-9"})),
        )]);
        let related = Related {
            teams,
            users,
            memberships,
        };
        let keys = vec![
            obj(json!({
                "token": hash("sk-plain"), "key_name": "sk-...lain", "key_alias": "alice",
                "spend": 1.25, "max_budget": 10.0, "budget_duration": "30d",
                "budget_reset_at": "2026-12-31T00:00:00", "expires": "2027-01-01T00:00:00.000",
                "models": ["gpt-4o"], "tpm_limit": 1000, "rpm_limit": 10,
                "max_parallel_requests": 2, "metadata": {"team": "x"}, "blocked": null,
                "user_id": "u-free", "model_max_budget": {}, "allowed_routes": [],
                "created_at": "2026-01-01T00:00:00", "updated_at": "2026-01-02T00:00:00"
            })),
            obj(json!({"token": hash("sk-team"), "team_id": "t-open", "models": []})),
            obj(json!({"token": hash("sk-team-narrow"), "team_id": "t-open",
                       "models": ["claude", "gpt-3.5"]})),
            obj(json!({"token": hash("sk-team-none"), "team_id": "t-open", "models": ["gpt-3.5"]})),
            obj(json!({"token": hash("sk-team-budget"), "team_id": "t-budget", "models": []})),
            obj(json!({"token": hash("sk-team-off"), "team_id": "t-off"})),
            obj(json!({"token": hash("sk-user"), "user_id": "u-capped"})),
            obj(json!({"token": hash("sk-per-model"), "key_alias": "pm",
                       "model_max_budget": {"gpt-4o": {"max_budget": 1}}, "budget_id": "b1"})),
            obj(json!({"token": hash("sk-lost-team"), "team_id": "t-gone"})),
            obj(json!({"token": "sk-not-hashed"})),
            obj(json!({"key_name": "no token"})),
            obj(json!({"token": hash("sk-same-alias"), "key_alias": "alice"})),
            obj(json!({"token": hash("sk-llmux-alias"), "key_alias": "bob"})),
        ];
        let more = [
            json!({"token": hash("sk-master"), "user_id": "default_user_id"}),
            json!({"token": hash("sk-admin"), "user_id": "u-admin"}),
            json!({"token": hash("sk-sentinel"), "models": ["all-team-models"]}),
            json!({"token": hash("sk-user-narrow"), "user_id": "u-narrow"}),
            json!({"token": hash("sk-user-none"), "user_id": "u-none", "models": []}),
            json!({"token": hash("sk-member"), "team_id": "t-open", "user_id": "u-member"}),
            json!({"token": hash("sk-org"), "team_id": "t-org"}),
            json!({"token": hash("sk-tags"), "metadata": {"tags": ["prod"]}}),
            json!({"token": hash("sk-model-limits"),
                   "metadata": {"model_rpm_limit": {"gpt-4o": 2}, "model_tpm_limit": {}}}),
            json!({"token": hash("sk-bad-model-rpm"),
                   "metadata": {"model_rpm_limit": {"gpt-4o": "two"}}}),
            json!({"token": hash("sk-forever"), "expires": "294276-12-31T23:59:59"}),
            json!({"token": hash("sk-was-blocked"), "blocked": true}),
        ];
        let mut keys = keys;
        keys.extend(more.into_iter().map(obj));
        let taken = std::collections::HashSet::from(["bob".to_owned()]);
        let out = convert(keys, &related, taken, 1_000);
        assert_eq!(out.skipped, 2);
        let by = |key: &str| out.rows.iter().find(|r| r.token == hash(key)).unwrap();

        let plain = by("sk-plain");
        assert!(!plain.blocked);
        assert_eq!(plain.key_alias.as_deref(), Some("alice"));
        assert_eq!(plain.key_name, "sk-...lain");
        assert_eq!(plain.models, vec!["gpt-4o"]);
        assert_eq!((plain.spend, plain.max_budget), (1.25, Some(10.0)));
        assert_eq!(plain.budget_reset_at, time::parse_date("2026-12-31"));
        assert_eq!(plain.expires, time::parse_date("2027-01-01"));
        assert_eq!(
            (
                plain.tpm_limit,
                plain.rpm_limit,
                plain.max_parallel_requests
            ),
            (Some(1000), Some(10), Some(2))
        );
        assert_eq!(plain.metadata["team"], "x");
        assert_eq!(plain.created_at, time::parse_date("2026-01-01").unwrap());

        // A team's models bound its keys': none listed is the team's.
        assert_eq!(by("sk-team").models, vec!["gpt-4o", "claude"]);
        assert!(!by("sk-team").blocked);
        assert_eq!(by("sk-team-narrow").models, vec!["claude"]);
        assert!(by("sk-team-none").blocked);
        assert_eq!(by("sk-team-none").models, vec!["gpt-3.5"]);
        assert!(by("sk-team-off").blocked);
        assert!(
            by("sk-team-off")
                .metadata
                .get("llmux_import_held")
                .is_none(),
            "blocked by its team, not held"
        );

        // Limits llmux does not enforce: taken blocked, with the reasons.
        for (key, reason) in [
            ("sk-team-budget", "its team's budget or limits (t-budget)"),
            ("sk-user", "its user's budget or limits (u-capped)"),
            ("sk-per-model", "a budget from LiteLLM's budget table"),
            ("sk-lost-team", "a team not found (t-gone)"),
            // What LiteLLM limits elsewhere: held too.
            (
                "sk-master",
                "a LiteLLM admin's key (or LiteLLM's master key)",
            ),
            (
                "sk-admin",
                "a LiteLLM admin's key (or LiteLLM's master key)",
            ),
            ("sk-user-none", "no model its user allows"),
            ("sk-member", "its budget as a member of its team (t-open)"),
            ("sk-org", "its team's organization (t-org)"),
            (
                "sk-tags",
                "tags in its metadata (with budgets of their own)",
            ),
            ("sk-bad-model-rpm", "a `model_rpm_limit` llmux cannot read"),
            ("sk-forever", "an expiry llmux cannot read"),
        ] {
            let r = by(key);
            assert!(r.blocked, "{key}");
            let why = r.metadata["llmux_import_held"].as_array().unwrap();
            assert!(why.iter().any(|w| w == reason), "{key}: {why:?}");
        }
        // A held key is never left with every model.
        assert_eq!(by("sk-user-none").models, vec![NO_MODELS]);
        assert_eq!(by("sk-lost-team").models, vec![NO_MODELS]);
        // `all-team-models` without a team matches no model, as in LiteLLM.
        assert_eq!(by("sk-sentinel").models, vec!["all-team-models"]);
        assert!(!by("sk-sentinel").blocked);
        // A user's models bound its keys'.
        assert_eq!(by("sk-user-narrow").models, vec!["claude"]);
        assert!(!by("sk-user-narrow").blocked);
        // Blocked in LiteLLM: blocked, and said so, not held.
        let was = by("sk-was-blocked");
        assert!(was.blocked && was.metadata.get("llmux_import_held").is_none());
        assert_eq!(was.metadata["llmux_import_blocked"], "blocked in LiteLLM");
        // Budgets per model are enforced: taken into the metadata.
        assert_eq!(
            by("sk-per-model").metadata["model_max_budget"],
            json!({"gpt-4o": {"max_budget": 1}})
        );
        // Limits per model are enforced: taken as they are.
        let limited = by("sk-model-limits");
        assert!(!limited.blocked);
        assert_eq!(limited.metadata["model_rpm_limit"], json!({"gpt-4o": 2}));
        assert!(limited.metadata.get("model_tpm_limit").is_none());
        assert_eq!(out.held.len(), 13);
        assert!(out.held.iter().any(|(name, _)| name == "pm"));
        // Aliases stay unique; a taken one is kept in the metadata.
        for (key, alias) in [("sk-same-alias", "alice"), ("sk-llmux-alias", "bob")] {
            assert_eq!(by(key).key_alias, None);
            assert_eq!(by(key).metadata["llmux_import_alias"], alias);
        }
        assert_eq!(out.rows.len(), 23);
    }
}
