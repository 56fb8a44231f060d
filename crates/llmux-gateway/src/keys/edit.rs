//! A key's settings from a `/key/generate` or `/key/update` body, field by
//! field as LiteLLM names them. A field llmux does not act on is refused
//! when set, so a limit a client asked for is never silently absent.

use super::limits::{MODEL_RPM, MODEL_TPM};
use super::model_budget::{self, MODEL_BUDGET};
use super::{KeyRow, time};

/// What a key sets per model, kept in its metadata.
const PER_MODEL: [&str; 3] = [MODEL_RPM, MODEL_TPM, MODEL_BUDGET];
use llmux_core::ApiError;
use serde_json::{Map, Value};

/// What a body sets of a key's spend and budget period (each `None` when
/// it does not): written apart from its other settings, in turn with the
/// spend the writer adds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    pub spend: Option<f64>,
    /// The next reset, Unix seconds (`Some(None)`: no more resets).
    pub reset_at: Option<Option<i64>>,
}

/// Fields LiteLLM's key routes take that llmux does not act on: refused
/// when set, so a limit a client asked for is never silently absent.
fn unsupported(field: &str, v: &Value) -> Result<(), ApiError> {
    let empty = match v {
        Value::Null | Value::Bool(false) => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if empty {
        return Ok(());
    }
    Err(ApiError::invalid_field(
        field,
        format!("`{field}` is not supported by llmux's key routes yet."),
    ))
}

fn opt_string(field: &str, v: &Value) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(ApiError::invalid_field(
            field,
            format!("`{field}` must be a string."),
        )),
    }
}

fn opt_u64(field: &str, v: &Value) -> Result<Option<u64>, ApiError> {
    match v {
        Value::Null => Ok(None),
        // Stored as SQLite's signed 64-bit integers.
        _ => v
            .as_u64()
            .filter(|n| i64::try_from(*n).is_ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid_field(
                    field,
                    format!("`{field}` must be a whole number, 0 to 2^63 - 1."),
                )
            }),
    }
}

fn opt_f64(field: &str, v: &Value) -> Result<Option<f64>, ApiError> {
    match v {
        Value::Null => Ok(None),
        _ => v
            .as_f64()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid_field(field, format!("`{field}` must be a number, 0 or more."))
            }),
    }
}

fn duration(field: &str, v: &Value) -> Result<Option<(String, i64)>, ApiError> {
    let text = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    match time::parse_duration(&text) {
        Some(secs) => Ok(Some((text, secs))),
        None => Err(ApiError::invalid_field(
            field,
            format!(
                "`{field}` must be a duration such as \"30s\", \"10m\", \"1h\", \"30d\" or \"1mo\"."
            ),
        )),
    }
}

/// Sets `row` from a `/key/generate` or `/key/update` body. `key`, taken
/// by the caller, is skipped.
pub fn apply(
    row: &mut KeyRow,
    budget: &mut Budget,
    body: &Map<String, Value>,
    now: i64,
) -> Result<(), ApiError> {
    // Limits and budgets per model live in the metadata (as LiteLLM keeps
    // its limits): a new `metadata` that does not name them keeps the key's.
    let kept: Vec<(&str, Value)> = PER_MODEL
        .into_iter()
        .filter_map(|f| Some((f, row.metadata.get(f)?.clone())))
        .collect();
    for (field, v) in body {
        let f = field.as_str();
        match f {
            "key" => {}
            "key_alias" => row.key_alias = opt_string(f, v)?,
            "user_id" => row.user_id = opt_string(f, v)?,
            "team_id" => row.team_id = opt_string(f, v)?,
            "models" => {
                row.models = match v {
                    Value::Null => Vec::new(),
                    Value::Array(a) => a
                        .iter()
                        .map(|m| m.as_str().map(str::to_owned))
                        .collect::<Option<_>>()
                        .ok_or_else(|| {
                            ApiError::invalid_field(f, "`models` must be a list of model names.")
                        })?,
                    _ => {
                        return Err(ApiError::invalid_field(
                            f,
                            "`models` must be a list of model names.",
                        ));
                    }
                }
            }
            "max_budget" => row.max_budget = opt_f64(f, v)?,
            "spend" => budget.spend = Some(opt_f64(f, v)?.unwrap_or(0.0)),
            "budget_duration" => match duration(f, v)? {
                Some((text, secs)) => {
                    row.budget_duration = Some(text);
                    budget.reset_at = Some(Some(now + secs));
                }
                None => {
                    row.budget_duration = None;
                    budget.reset_at = Some(None);
                }
            },
            "duration" => row.expires = duration(f, v)?.map(|(_, secs)| now + secs),
            "tpm_limit" => row.tpm_limit = opt_u64(f, v)?,
            "rpm_limit" => row.rpm_limit = opt_u64(f, v)?,
            "max_parallel_requests" => {
                row.max_parallel_requests =
                    opt_u64(f, v)?.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            }
            "metadata" => {
                row.metadata = match v {
                    Value::Null => Map::new(),
                    Value::Object(m) => m.clone(),
                    _ => return Err(ApiError::invalid_field(f, "`metadata` must be an object.")),
                };
                for (name, limits) in &kept {
                    if !row.metadata.contains_key(*name) {
                        row.metadata.insert((*name).to_owned(), limits.clone());
                    }
                }
            }
            // Set after the rest: over what `metadata` says of them.
            MODEL_RPM | MODEL_TPM | MODEL_BUDGET => {}
            "blocked" => {
                row.blocked = match v {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    _ => {
                        return Err(ApiError::invalid_field(
                            f,
                            "`blocked` must be true or false.",
                        ));
                    }
                }
            }
            _ => unsupported(f, v)?,
        }
    }
    // Checked where the body sets them: a key's own, kept, are not in the
    // way of blocking it (or any other change).
    let in_metadata = body.get("metadata").and_then(Value::as_object);
    for name in PER_MODEL {
        let top = body.get(name);
        if let Some(v) = top {
            row.metadata.insert(name.to_owned(), v.clone());
        }
        if top.is_some() || in_metadata.is_some_and(|m| m.contains_key(name)) {
            if name == MODEL_BUDGET {
                model_budget::check(&mut row.metadata)?;
            } else {
                check_model_limits(&mut row.metadata, name)?;
            }
        }
    }
    row.updated_at = now;
    Ok(())
}

/// A key's limit per model in `metadata` (`model_rpm_limit` or
/// `model_tpm_limit`): a map of model name to a whole number, or nothing
/// (null or `{}`, then taken out). Anything else is refused: a limit the
/// gateway could not read would not hold.
pub fn check_model_limits(metadata: &mut Map<String, Value>, field: &str) -> Result<(), ApiError> {
    let whole = |n: &Value| n.as_u64().is_some_and(|n| i64::try_from(n).is_ok());
    match per_model(metadata, field) {
        Ok(None) => Ok(()),
        Ok(Some(m)) if m.values().all(whole) => Ok(()),
        _ => Err(ApiError::invalid_field(
            field,
            format!(
                "`{field}` must map model names to whole numbers, 0 to 2^63 - 1, \
                 as {{\"gpt-4o\": 10}}."
            ),
        )),
    }
}

/// A key's settings per model in `metadata[field]`: none when it has
/// none (null and `{}` are taken out), `Err` when it is not a map.
pub(super) fn per_model<'a>(
    metadata: &'a mut Map<String, Value>,
    field: &str,
) -> Result<Option<&'a Map<String, Value>>, ()> {
    let empty = match metadata.get(field) {
        None => return Ok(None),
        Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(_) => return Err(()),
    };
    if empty {
        metadata.remove(field);
        return Ok(None);
    }
    Ok(metadata.get(field).and_then(Value::as_object))
}
