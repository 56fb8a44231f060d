//! `/models` and `/model/info`: built once at start, served as bytes.

use super::AppState;
use crate::config::Config;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use llmux_core::Deployment;
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub async fn list(who: super::Authorized, State(app): State<Arc<AppState>>) -> Response {
    json_bytes(only_allowed(&who, &app.models_json, "id"))
}

pub async fn info(who: super::Authorized, State(app): State<Arc<AppState>>) -> Response {
    json_bytes(only_allowed(&who, &app.model_info_json, "model_name"))
}

/// The list as built, or, for a virtual key limited to some models, the
/// entries (`data[].<name>`) it may use.
fn only_allowed(who: &super::Authorized, list: &Bytes, name: &str) -> Bytes {
    let Some(settings) = who.0.as_ref().map(|k| k.settings()) else {
        return list.clone();
    };
    let Ok(mut v) = serde_json::from_slice::<Value>(list) else {
        return list.clone();
    };
    if let Some(Value::Array(data)) = v.get_mut("data") {
        data.retain(|m| {
            m.get(name)
                .and_then(Value::as_str)
                .is_some_and(|n| settings.allows(n))
        });
    }
    Bytes::from(v.to_string())
}

fn json_bytes(b: Bytes) -> Response {
    let mut r = Response::new(axum::body::Body::from(b));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// What `/v1/models` and `/model/info` list: the named models, then those
/// the catalog knows that wildcard routes serve, then the aliases (unless
/// hidden) as their models' deployments under the alias's name.
pub fn listed(config: &Config) -> Vec<Deployment> {
    let names = config.model_names();
    let mut known = config.wildcards.known();
    // A name the config lists is served by its own entry.
    known.retain(|d| !names.contains(&d.model_name.as_str()));
    let mut listed: Vec<_> = config.deployments.iter().chain(&known).cloned().collect();
    // A model a wildcard route serves is built as a request for it would be.
    let models = listed.clone();
    let is_alias = |name: &str| config.aliases.iter().any(|a| a.name == name);
    // Not an alias of an alias (served one step only). An alias named
    // as a model is takes its place, as it does in routing.
    let shown = config
        .aliases
        .iter()
        .filter(|a| !a.hidden && !is_alias(&a.target));
    for a in shown {
        listed.retain(|d| d.model_name != a.name);
        let mut of: Vec<_> = models
            .iter()
            .filter(|d| d.model_name == a.target)
            .cloned()
            .collect();
        if of.is_empty() {
            if let Some(m) = config
                .wildcards
                .find(&a.target)
                .filter(|_| !a.target.contains('*'))
            {
                of = config
                    .wildcards
                    .deployments(&m, &a.target)
                    .unwrap_or_default();
            }
        }
        for mut d in of {
            d.model_name = a.name.clone();
            listed.push(d);
        }
    }
    listed
}

/// OpenAI's model list: one entry per public model name.
pub fn models_json(deployments: &[Deployment], created: u64) -> Bytes {
    let mut seen = std::collections::HashSet::new();
    let data: Vec<Value> = deployments
        .iter()
        .filter(|d| seen.insert(d.model_name.as_str()))
        .map(|d| {
            json!({
                "id": d.model_name,
                "object": "model",
                "created": created,
                "owned_by": d.provider.as_str(),
            })
        })
        .collect();
    Bytes::from(json!({"object": "list", "data": data}).to_string())
}

/// LiteLLM's `/model/info`: one entry per deployment; `litellm_params`
/// without any secret.
pub fn model_info_json(deployments: &[Deployment]) -> Bytes {
    let data: Vec<Value> = deployments
        .iter()
        .map(|d| {
            let mut info = d.info.0.clone();
            info.insert("id".into(), d.id.clone().into());
            info.insert("db_model".into(), false.into());
            json!({
                "model_name": d.model_name,
                "litellm_params": public_params(d),
                "model_info": info,
            })
        })
        .collect();
    Bytes::from(json!({ "data": data }).to_string())
}

/// A deployment's `litellm_params` as they may be shown (`/model/info`,
/// `/health`): what names and places it, never a secret.
pub fn public_params(d: &Deployment) -> Map<String, Value> {
    let mut params = Map::new();
    params.insert("model".into(), d.model.clone().into());
    params.insert("custom_llm_provider".into(), d.provider.as_str().into());
    if let Some(base) = &d.api_base {
        params.insert("api_base".into(), public_url(base).into());
    }
    if let Some(v) = &d.api_version {
        params.insert("api_version".into(), v.clone().into());
    }
    if let Some(rpm) = d.rpm {
        params.insert("rpm".into(), rpm.into());
    }
    if let Some(tpm) = d.tpm {
        params.insert("tpm".into(), tpm.into());
    }
    if let Some(w) = d.weight {
        params.insert("weight".into(), w.into());
    }
    if let Some(t) = d.timeout {
        params.insert("timeout".into(), json!(t.as_secs_f64()));
    }
    if let Some(t) = d.stream_timeout {
        params.insert("stream_timeout".into(), json!(t.as_secs_f64()));
    }
    params
}

/// A base URL as it may be shown: no userinfo, no query (either can carry
/// credentials).
pub fn public_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_strips_credentials() {
        assert_eq!(
            public_url("https://u:p@h.example/v1?key=s"),
            "https://h.example/v1"
        );
        assert_eq!(
            public_url("http://127.0.0.1:9000/v1"),
            "http://127.0.0.1:9000/v1"
        );
    }
}
