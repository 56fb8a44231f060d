//! LiteLLM's `litellm_settings.default_key_generate_params` and
//! `upperbound_key_generate_params`: what `/key/generate` fills in where a
//! body leaves a field out, and the most a key may be given there, at
//! `/key/update` and at `/key/regenerate`.

use super::{KeyRow, edit, time};
use llmux_core::ApiError;
use serde_json::{Map, Value};

const DEFAULTS: &str = "litellm_settings.default_key_generate_params";
const BOUNDS: &str = "litellm_settings.upperbound_key_generate_params";

/// The fields a default may be set for, as LiteLLM fills them: each when
/// a body leaves it out (or null), `models` when empty, `metadata` when
/// `{}`.
const DEFAULTED: [&str; 10] = [
    "max_budget",
    "user_id",
    "team_id",
    "max_parallel_requests",
    "tpm_limit",
    "rpm_limit",
    "budget_duration",
    "duration",
    "models",
    "metadata",
];
/// The fields an upper bound may be set on: numbers…
const BOUNDED_NUMBERS: [&str; 4] = [
    "max_budget",
    "max_parallel_requests",
    "tpm_limit",
    "rpm_limit",
];
/// …and durations (compared in seconds).
const BOUNDED_DURATIONS: [&str; 2] = ["budget_duration", "duration"];

/// The config's defaults and upper bounds for keys made at the key routes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyParams {
    defaults: Map<String, Value>,
    /// Each bound: its field, its value as written, and as a number
    /// (seconds for a duration).
    bounds: Vec<(&'static str, Value, f64)>,
}

impl KeyParams {
    /// From the config's two mappings. A field llmux neither fills nor
    /// bounds is a warning; a value it cannot read, or a default over its
    /// bound, an error.
    pub fn from_config(
        defaults: Option<&Value>,
        bounds: Option<&Value>,
        warnings: &mut Vec<String>,
    ) -> Result<KeyParams, String> {
        let mut out = KeyParams::default();
        for (k, v) in mapping(defaults, DEFAULTS)? {
            if DEFAULTED.contains(&k.as_str()) {
                out.defaults.insert(k.clone(), v.clone());
            } else {
                warnings.push(format!("{DEFAULTS}.{k}: not implemented yet, ignored"));
            }
        }
        // Read as `/key/generate` reads them: a default it would refuse is
        // refused at start, not at the first key.
        let mut row = KeyRow::new("sk-default-key-params", 0);
        edit::apply(&mut row, &mut edit::Budget::default(), &out.defaults, 0)
            .map_err(|e| format!("{DEFAULTS}: {}", e.message))?;
        for (k, v) in mapping(bounds, BOUNDS)? {
            let number = BOUNDED_NUMBERS.iter().find(|f| **f == k);
            let duration = BOUNDED_DURATIONS.iter().find(|f| **f == k);
            let (field, n) = match (number, duration) {
                (Some(f), _) => (*f, v.as_f64().filter(|n| n.is_finite() && *n >= 0.0)),
                (_, Some(f)) => (*f, seconds(v).filter(|s| s.is_finite())),
                _ => {
                    warnings.push(format!("{BOUNDS}.{k}: not implemented yet, ignored"));
                    continue;
                }
            };
            let n = n.ok_or_else(|| {
                format!("{BOUNDS}.{k} must be a number, 0 or more, or a duration such as \"30d\"")
            })?;
            out.bounds.push((field, v.clone(), n));
        }
        // A default over its bound could never be given.
        out.check(&out.defaults)
            .map_err(|e| format!("{DEFAULTS}: {}", e.message))?;
        Ok(out)
    }

    /// A `/key/generate` body with the config's defaults, then its bounds,
    /// set where it leaves a field out; refused if it gives more than a
    /// bound allows.
    pub fn fill(&self, body: &mut Map<String, Value>) -> Result<(), ApiError> {
        for (k, v) in &self.defaults {
            let missing = match body.get(k) {
                None | Some(Value::Null) => true,
                Some(Value::Array(a)) => k == "models" && a.is_empty(),
                Some(Value::Object(m)) => k == "metadata" && m.is_empty(),
                Some(_) => false,
            };
            if missing {
                body.insert(k.clone(), v.clone());
            }
        }
        for (k, v, _) in &self.bounds {
            if body.get(*k).is_none_or(Value::is_null) {
                body.insert((*k).to_owned(), v.clone());
            }
        }
        self.check(body)
    }

    /// Refuses a value a body gives over its bound, and a bounded field
    /// cleared (null: no limit at all). A value that cannot be read is
    /// left to the key's own checks, which refuse it.
    pub fn check(&self, body: &Map<String, Value>) -> Result<(), ApiError> {
        for (k, bound, max) in &self.bounds {
            let Some(v) = body.get(*k) else { continue };
            let given = match v {
                Value::Null => f64::INFINITY,
                _ if BOUNDED_DURATIONS.contains(k) => match seconds(v) {
                    Some(s) => s,
                    None => continue,
                },
                _ => match v.as_f64() {
                    Some(n) => n,
                    None => continue,
                },
            };
            if given > *max {
                return Err(ApiError::invalid_field(
                    k,
                    format!(
                        "{k} is over max limit set in config - user_value={}; max_value={}",
                        shown(v),
                        shown(bound)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A config mapping's entries (none when it is absent or null).
fn mapping<'a>(v: Option<&'a Value>, path: &str) -> Result<Vec<(&'a String, &'a Value)>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => Ok(m.iter().collect()),
        Some(_) => Err(format!("{path} must be a mapping")),
    }
}

/// A duration's seconds: `"30d"`, `"1h"`, a number of seconds; LiteLLM's
/// `"-1"` (no end) is longer than any bound.
fn seconds(v: &Value) -> Option<f64> {
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if text == "-1" {
        return Some(f64::INFINITY);
    }
    time::parse_duration(&text).map(|s| s as f64)
}

/// A value as an error message shows it: a string without its quotes.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(defaults: Value, bounds: Value) -> Result<(KeyParams, Vec<String>), String> {
        let mut warnings = Vec::new();
        let p = KeyParams::from_config(Some(&defaults), Some(&bounds), &mut warnings)?;
        Ok((p, warnings))
    }

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_body_gets_the_defaults_then_the_bounds_where_it_leaves_a_field_out() {
        let (p, warnings) = params(
            json!({"max_budget": 5, "models": ["gpt-4o-mini"], "metadata": {"team": "a"},
                   "budget_duration": "30d", "soft_budget": 4}),
            json!({"max_budget": 100, "rpm_limit": 60, "duration": "90d"}),
        )
        .unwrap();
        assert_eq!(
            warnings,
            vec![format!(
                "{DEFAULTS}.soft_budget: not implemented yet, ignored"
            )]
        );
        let mut b = body(json!({"models": [], "metadata": {}, "rpm_limit": null}));
        p.fill(&mut b).unwrap();
        assert_eq!(
            Value::Object(b),
            json!({"max_budget": 5, "models": ["gpt-4o-mini"], "metadata": {"team": "a"},
                   "budget_duration": "30d", "rpm_limit": 60, "duration": "90d"})
        );
        // What a body gives is kept, within the bounds.
        let mut b = body(
            json!({"max_budget": 50, "models": ["gpt-4o"], "rpm_limit": 10, "duration": "7d"}),
        );
        p.fill(&mut b).unwrap();
        assert_eq!(b["max_budget"], 50);
        assert_eq!(b["models"], json!(["gpt-4o"]));
        assert_eq!(b["rpm_limit"], 10);
        assert_eq!(b["duration"], "7d");
    }

    #[test]
    fn more_than_a_bound_allows_is_refused_naming_the_field() {
        let (p, _) = params(
            json!({}),
            json!({"max_budget": 100, "tpm_limit": 1000, "budget_duration": "30d", "duration": "1h"}),
        )
        .unwrap();
        for (field, given) in [
            ("max_budget", json!(100.5)),
            ("tpm_limit", json!(1001)),
            ("budget_duration", json!("31d")),
            ("duration", json!("2h")),
            ("duration", json!("-1")),
            ("tpm_limit", Value::Null),
        ] {
            let b = body(json!({ field: given }));
            let e = p.check(&b).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.param.as_deref(), Some(field));
            assert!(
                e.message.starts_with(&format!(
                    "{field} is over max limit set in config - user_value="
                )),
                "{}",
                e.message
            );
        }
        // At the bound, and in other words for the same time, is allowed.
        let b = body(
            json!({"max_budget": 100, "tpm_limit": 1000, "budget_duration": "720h", "duration": "60m"}),
        );
        p.check(&b).unwrap();
    }

    #[test]
    fn the_config_is_refused_where_it_cannot_be_read_or_contradicts_itself() {
        for (defaults, bounds) in [
            (json!({"max_budget": "lots"}), json!({})),
            (json!({"budget_duration": "monthly-ish"}), json!({})),
            (json!({}), json!({"rpm_limit": -1})),
            (json!({}), json!({"duration": "forever"})),
            (json!({"rpm_limit": 100}), json!({"rpm_limit": 60})),
            (json!(["max_budget"]), json!({})),
        ] {
            assert!(
                params(defaults.clone(), bounds.clone()).is_err(),
                "{defaults} {bounds}"
            );
        }
    }
}
