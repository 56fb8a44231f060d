//! The OpenAI-compatible family: OpenAI, Azure OpenAI, Groq, DeepSeek,
//! OpenRouter and any OpenAI-compatible `api_base` (vLLM, Ollama, LM Studio,
//! another gateway). One module driven by a table: providers differ in base
//! URL, auth header, URL shape and a few quirks, nothing else. The request
//! body passes through with only `model` rewritten; stream bytes pass
//! through with only the usage read.

mod request;
mod response;
mod stream;

pub use request::{build_chat_request, chat_url};
pub use response::{chat_response, error_response, retry_after, typed_chat_response};
pub use stream::{PassthroughStream, reasoning_as_reasoning_content};

use super::ProviderKind;

/// How a provider wants its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <key>`
    Bearer,
    /// A header carrying the bare key (`api-key` for Azure).
    Header(&'static str),
}

/// Where the chat endpoint lives under the base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlStyle {
    /// `{base}/chat/completions`
    OpenAi,
    /// `{base}/openai/deployments/{deployment}/chat/completions?api-version=…`
    AzureDeployment,
}

#[derive(Debug, Clone, Copy)]
pub struct CompatSpec {
    pub provider: ProviderKind,
    /// `None`: the deployment must give `api_base`.
    pub default_base: Option<&'static str>,
    /// Environment variables holding the key, first found wins.
    pub key_env: &'static [&'static str],
    /// Environment variables that may override the base URL.
    pub base_env: &'static [&'static str],
    pub auth: Auth,
    pub url: UrlStyle,
    /// Accepts `stream_options.include_usage`, so llmux can always ask for
    /// the usage of a stream (for accounting) even when the client did not.
    pub stream_usage: bool,
    /// Headers sent unless the deployment's `extra_headers` set them
    /// (lowercase: `HeaderName::from_static` requires it).
    pub default_headers: &'static [(&'static str, &'static str)],
}

pub const OPENAI: CompatSpec = CompatSpec {
    provider: ProviderKind::OpenAi,
    default_base: Some("https://api.openai.com/v1"),
    key_env: &["OPENAI_API_KEY"],
    base_env: &["OPENAI_API_BASE", "OPENAI_BASE_URL"],
    auth: Auth::Bearer,
    url: UrlStyle::OpenAi,
    stream_usage: true,
    default_headers: &[],
};

pub const AZURE: CompatSpec = CompatSpec {
    provider: ProviderKind::Azure,
    default_base: None,
    key_env: &["AZURE_API_KEY", "AZURE_OPENAI_API_KEY"],
    base_env: &["AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"],
    auth: Auth::Header("api-key"),
    url: UrlStyle::AzureDeployment,
    stream_usage: true,
    default_headers: &[],
};

pub const GROQ: CompatSpec = CompatSpec {
    provider: ProviderKind::Groq,
    default_base: Some("https://api.groq.com/openai/v1"),
    key_env: &["GROQ_API_KEY"],
    base_env: &["GROQ_API_BASE"],
    auth: Auth::Bearer,
    url: UrlStyle::OpenAi,
    stream_usage: true,
    default_headers: &[],
};

pub const DEEPSEEK: CompatSpec = CompatSpec {
    provider: ProviderKind::DeepSeek,
    default_base: Some("https://api.deepseek.com/v1"),
    key_env: &["DEEPSEEK_API_KEY"],
    base_env: &["DEEPSEEK_API_BASE"],
    auth: Auth::Bearer,
    url: UrlStyle::OpenAi,
    stream_usage: true,
    default_headers: &[],
};

pub const OPENROUTER: CompatSpec = CompatSpec {
    provider: ProviderKind::OpenRouter,
    default_base: Some("https://openrouter.ai/api/v1"),
    key_env: &["OPENROUTER_API_KEY", "OR_API_KEY"],
    base_env: &["OPENROUTER_API_BASE", "OR_API_BASE"],
    auth: Auth::Bearer,
    url: UrlStyle::OpenAi,
    stream_usage: true,
    // OpenRouter's app attribution; `OR_SITE_URL` / `OR_APP_NAME` or
    // `extra_headers` replace them.
    default_headers: &[
        ("http-referer", "https://github.com/llmux/llmux"),
        ("x-title", "llmux"),
    ],
};

/// Default Azure OpenAI API version when neither config nor env gives one:
/// LiteLLM's, which the reasoning models (o1, o3-mini, …) need (they
/// answer 400 below 2024-12-01-preview).
pub const AZURE_DEFAULT_API_VERSION: &str = "2025-02-01-preview";

/// The table entry of an OpenAI-compatible provider.
pub fn spec(provider: ProviderKind) -> Option<&'static CompatSpec> {
    match provider {
        ProviderKind::OpenAi => Some(&OPENAI),
        ProviderKind::Azure => Some(&AZURE),
        ProviderKind::Groq => Some(&GROQ),
        ProviderKind::DeepSeek => Some(&DEEPSEEK),
        ProviderKind::OpenRouter => Some(&OPENROUTER),
        _ => None,
    }
}
