//! A virtual key's budgets per model (LiteLLM's `model_max_budget`): what
//! the key may spend on one model in USD, each with its own period.
//!
//! Set as LiteLLM takes it, `{"gpt-4o": {"max_budget": 5, "budget_duration":
//! "30d"}}` (or the older `budget_limit` / `time_period`), and kept in the
//! key's metadata. A budget names a model as `model_list` names it: a
//! request through an alias counts toward its model's, and so does a
//! fallback that answers for it. Its periods are whole durations counted
//! from the key's making, so every replica and restart agrees on them
//! without storing a reset; without a duration the budget is for the
//! key's life.
//!
//! Spend is counted in memory as requests end (the next request sees it),
//! and read from the spend log (the rows of the key's requests on that
//! model this period) when the keys are loaded and at each sync: a
//! process takes the larger of the two, so the charges of every replica
//! (and of a process before a restart) count once they are written.

use super::{KeyEntry, KeySettings, lock, time};
use llmux_core::ApiError;
use llmux_core::types::ErrorKind;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Where a key's budgets per model are kept in its metadata.
pub const MODEL_BUDGET: &str = "model_max_budget";

/// One model's budget: USD, and its period in seconds (none: the key's
/// life).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelBudget {
    pub max: f64,
    pub every: Option<i64>,
}

impl ModelBudget {
    /// A budget as LiteLLM writes one: `max_budget` (or `budget_limit`), a
    /// number or a number in a string, and an optional `budget_duration`
    /// (or `time_period`). None if it does not read so.
    fn read(v: &Value) -> Option<ModelBudget> {
        let m = v.as_object()?;
        let field = |a: &str, b: &str| m.get(a).or_else(|| m.get(b)).filter(|v| !v.is_null());
        let max = match field("max_budget", "budget_limit")? {
            Value::Number(n) => n.as_f64()?,
            Value::String(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        if !max.is_finite() || max < 0.0 {
            return None;
        }
        let every = match field("budget_duration", "time_period") {
            None => None,
            Some(Value::String(s)) => Some(time::parse_duration(s)?),
            Some(_) => return None,
        };
        Some(ModelBudget { max, every })
    }

    /// When the period `now` falls in began, Unix seconds: whole periods
    /// on from the key's making, or its making for a budget without one.
    pub fn period_start(&self, created_at: i64, now: i64) -> i64 {
        match self.every {
            Some(every) if now > created_at => created_at + (now - created_at) / every * every,
            _ => created_at,
        }
    }
}

/// A model's spend in one budget period.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ModelSpend {
    /// When the period began, Unix seconds.
    period: i64,
    spend: f64,
}

impl KeySettings {
    /// The key's budget on `model`, if it sets one that reads.
    pub fn model_budget(&self, model: &str) -> Option<ModelBudget> {
        ModelBudget::read(self.metadata.get(MODEL_BUDGET)?.get(model)?)
    }

    /// Every model the key budgets, with its budget.
    pub fn model_budgets(&self) -> Vec<(String, ModelBudget)> {
        let Some(Value::Object(m)) = self.metadata.get(MODEL_BUDGET) else {
            return Vec::new();
        };
        m.iter()
            .filter_map(|(name, v)| Some((name.clone(), ModelBudget::read(v)?)))
            .collect()
    }
}

impl KeyEntry {
    /// What the key has spent on `model` this period of `budget`'s.
    pub fn model_spent(&self, model: &str, budget: &ModelBudget, created_at: i64) -> f64 {
        let period = budget.period_start(created_at, time::now_secs());
        lock(&self.model_spend)
            .get(model)
            .filter(|s| s.period == period)
            .map_or(0.0, |s| s.spend)
    }

    /// Adds `charge` to the key's spend on `model` this period.
    pub(super) fn charge_model(
        &self,
        model: &str,
        budget: &ModelBudget,
        created_at: i64,
        charge: f64,
    ) {
        let period = budget.period_start(created_at, time::now_secs());
        let mut spends = lock(&self.model_spend);
        let s = spends.entry(Arc::from(model)).or_default();
        if s.period != period {
            *s = ModelSpend { period, spend: 0.0 };
        }
        s.spend += charge;
    }

    /// The spend the log holds for `model` in the period that began at
    /// `period`: taken if it is more than this process counted (other
    /// replicas' charges, or charges from before a restart). A read of a
    /// period that is no longer the key's current one (it ended while the
    /// log was read, or the budget's duration changed) is dropped.
    pub(super) fn logged_model_spend(&self, model: &str, period: i64, logged: f64) {
        let s = self.settings();
        let Some(budget) = s.model_budget(model) else {
            return;
        };
        if budget.period_start(s.created_at, time::now_secs()) != period {
            return;
        }
        let mut spends = lock(&self.model_spend);
        let spent = spends.entry(Arc::from(model)).or_default();
        if spent.period != period {
            // Counted here under another period: one that ended, or one
            // the budget's old duration made.
            *spent = ModelSpend { period, spend: 0.0 };
        }
        if logged > spent.spend {
            spent.spend = logged;
        }
    }

    /// Whether the key is within its budget on `model` (a model as
    /// `model_list` names it), if it has one: a 400 `budget_exceeded`,
    /// as for its own budget, if not.
    pub fn within_model_budget(&self, s: &KeySettings, model: &str) -> Result<(), ApiError> {
        let Some(budget) = s.model_budget(model) else {
            return Ok(());
        };
        let spent = self.model_spent(model, &budget, s.created_at);
        if spent >= budget.max {
            return Err(ApiError::bad_request(format!(
                "Budget has been exceeded for model {model}! Current cost: {spent}, Max budget: {} \
                 (model_max_budget)",
                budget.max
            ))
            .with_kind(ErrorKind::Other("budget_exceeded".into())));
        }
        Ok(())
    }
}

/// A key's `model_max_budget` in `metadata`: a map of model name to a
/// budget that reads ([`ModelBudget::read`]), or nothing (null or `{}`,
/// then taken out). Anything else is refused, as are names with `*`
/// (patterns are LiteLLM's, not llmux's): a budget the gateway could not
/// read would not hold.
pub fn check(metadata: &mut Map<String, Value>) -> Result<(), ApiError> {
    let refuse = |why: &str| {
        ApiError::invalid_field(
            MODEL_BUDGET,
            format!(
                "`{MODEL_BUDGET}` must map model names to budgets, as \
                 {{\"gpt-4o\": {{\"max_budget\": 10, \"budget_duration\": \"30d\"}}}}: {why}"
            ),
        )
    };
    match super::edit::per_model(metadata, MODEL_BUDGET) {
        Ok(None) => Ok(()),
        Ok(Some(m)) => {
            for (name, v) in m {
                if name.contains('*') {
                    return Err(refuse(&format!(
                        "`{name}` is a pattern; name each model as model_list names it"
                    )));
                }
                if ModelBudget::read(v).is_none() {
                    return Err(refuse(&format!(
                        "the budget of `{name}` is not a max_budget (0 or more) with an optional \
                         budget_duration such as \"1d\" or \"30d\""
                    )));
                }
            }
            Ok(())
        }
        Err(()) => Err(refuse("it is not an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn budgets_read_as_litellm_writes_them() {
        let read = |v: Value| ModelBudget::read(&v);
        assert_eq!(
            read(json!({"max_budget": 5, "budget_duration": "30d"})),
            Some(ModelBudget {
                max: 5.0,
                every: Some(30 * 86_400)
            })
        );
        assert_eq!(
            read(json!({"budget_limit": "0.0000001", "time_period": "1d"})),
            Some(ModelBudget {
                max: 0.0000001,
                every: Some(86_400)
            })
        );
        assert_eq!(
            read(json!({"max_budget": 2})),
            Some(ModelBudget {
                max: 2.0,
                every: None
            })
        );
        for bad in [
            json!(5),
            json!({"max_budget": -1}),
            json!({"max_budget": "lots"}),
            json!({"budget_duration": "1d"}),
            json!({"max_budget": 1, "budget_duration": "soon"}),
            json!({"max_budget": 1, "budget_duration": 86400}),
        ] {
            assert_eq!(read(bad.clone()), None, "{bad}");
        }
    }

    #[test]
    fn periods_are_whole_durations_from_the_keys_making() {
        let day = ModelBudget {
            max: 1.0,
            every: Some(86_400),
        };
        let made = 1_000_000;
        assert_eq!(day.period_start(made, made), made);
        assert_eq!(day.period_start(made, made + 86_399), made);
        assert_eq!(day.period_start(made, made + 86_400), made + 86_400);
        assert_eq!(
            day.period_start(made, made + 3 * 86_400 + 5),
            made + 3 * 86_400
        );
        let life = ModelBudget {
            max: 1.0,
            every: None,
        };
        assert_eq!(life.period_start(made, made + 10 * 86_400), made);
    }

    #[test]
    fn budgets_that_would_not_hold_are_refused() {
        let mut m = Map::new();
        m.insert(MODEL_BUDGET.into(), json!({"gpt-4o": {"max_budget": 1}}));
        assert!(check(&mut m).is_ok());
        for bad in [
            json!({"gpt-4o": 1}),
            json!({"openai/*": {"max_budget": 1}}),
            json!([1]),
        ] {
            m.insert(MODEL_BUDGET.into(), bad.clone());
            let e = check(&mut m).err().unwrap();
            assert_eq!(
                (e.status, e.param.as_deref()),
                (400, Some(MODEL_BUDGET)),
                "{bad}"
            );
        }
        m.insert(MODEL_BUDGET.into(), json!({}));
        check(&mut m).unwrap();
        assert!(m.get(MODEL_BUDGET).is_none());
    }
}
