//! A deployment: one concrete upstream model a public model name can be
//! served by (LiteLLM's `model_list` entry, resolved).

use crate::catalog::ModelInfo;
use crate::providers::ProviderKind;
use crate::types::Secret;
use serde_json::{Map, Value};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Deployment {
    /// Stable id (`model_info.id`).
    pub id: String,
    /// The public name clients ask for (`model_name`).
    pub model_name: String,
    pub provider: ProviderKind,
    /// As configured, provider prefix included (`openai/gpt-4o`).
    pub model: String,
    /// The id sent upstream (`gpt-4o`).
    pub upstream_model: String,
    pub api_base: Option<String>,
    pub api_key: Option<Secret>,
    pub api_version: Option<String>,
    pub organization: Option<String>,
    /// Sent with every request; values may be secrets and are never shown.
    pub extra_headers: Vec<(String, Secret)>,
    /// Fields added to the body when the client did not send them.
    pub extra_body: Option<Map<String, Value>>,
    /// Longest wait for a whole answer; for a stream, for its first byte
    /// and between its chunks, unless `stream_timeout` says otherwise.
    pub timeout: Option<Duration>,
    /// A stream's wait for its first byte and between chunks (LiteLLM's
    /// `stream_timeout`).
    pub stream_timeout: Option<Duration>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// Share of the group's traffic (LiteLLM's `weight`).
    pub weight: Option<f64>,
    /// Limits, prices and capability flags: catalog, then config overrides.
    pub info: ModelInfo,
    /// Vertex AI's project, location and credentials.
    pub vertex: Option<VertexParams>,
    /// Bedrock's region and credentials as configured.
    pub aws: Option<AwsParams>,
}

impl Deployment {
    /// A deployment of `upstream_model` on `provider`, served as
    /// `model_name`, with every setting at its default (no key, base,
    /// limits or catalog entry): what a config entry with only `model`
    /// gives, before the config fills it in.
    pub fn new(model_name: &str, provider: ProviderKind, upstream_model: &str) -> Deployment {
        Deployment {
            id: model_name.to_owned(),
            model_name: model_name.to_owned(),
            provider,
            model: format!("{provider}/{upstream_model}"),
            upstream_model: upstream_model.to_owned(),
            api_base: None,
            api_key: None,
            api_version: None,
            organization: None,
            extra_headers: Vec::new(),
            extra_body: None,
            timeout: None,
            stream_timeout: None,
            rpm: None,
            tpm: None,
            weight: None,
            info: ModelInfo::default(),
            vertex: None,
            aws: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AwsParams {
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    pub profile: Option<String>,
    /// A Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`), sent as a bearer token.
    pub bearer_token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct VertexParams {
    pub project: String,
    pub location: String,
    /// A service-account key (JSON text); `None`: the gateway's default
    /// credentials (`GOOGLE_APPLICATION_CREDENTIALS`).
    pub credentials: Option<Secret>,
}
