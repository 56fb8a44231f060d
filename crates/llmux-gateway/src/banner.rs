//! What `llmux serve` prints at start: where it listens, what it serves,
//! whether a key is needed, and how to point a client at it.

use crate::config::{Config, Source};
use std::fmt::Write;
use std::net::SocketAddr;

pub fn banner(config: &Config, addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
        "localhost".to_owned()
    } else {
        addr.ip().to_string()
    };
    let base = format!("http://{host}:{}", addr.port());
    let mut s = String::new();
    let _ = writeln!(
        s,
        "llmux {} listening on {base} ({addr})",
        env!("CARGO_PKG_VERSION")
    );
    match &config.source {
        Source::File(p) => {
            let _ = writeln!(
                s,
                "config: {} ({} deployments)",
                p.display(),
                config.deployments.len()
            );
        }
        Source::Environment { providers } if providers.is_empty() => {
            let _ = writeln!(
                s,
                "config: none, and no provider credentials in the environment.\n  \
                 Set OPENAI_API_KEY (or AZURE_API_KEY + AZURE_API_BASE, GROQ_API_KEY, DEEPSEEK_API_KEY, \
                 OPENROUTER_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, AWS credentials)\n  \
                 or run `llmux serve --config config.yaml`."
            );
        }
        Source::Environment { providers } => {
            let _ = writeln!(
                s,
                "config: from the environment (found: {})",
                providers.join(", ")
            );
        }
    }
    let names = config.model_names();
    let patterns: Vec<&str> = config.wildcards.patterns().collect();
    if !names.is_empty() {
        let _ = writeln!(s, "models ({}): {}", names.len(), names.join(", "));
    } else if patterns.is_empty() {
        let _ = writeln!(s, "models: none yet");
    }
    if !patterns.is_empty() {
        let _ = writeln!(s, "wildcard routes: {}", patterns.join(", "));
    }
    if config.routing_strategy != crate::config::RoutingStrategy::default() {
        let _ = writeln!(s, "routing: {}", config.routing_strategy.name());
    }
    if !config.aliases.is_empty() {
        let aliases: Vec<String> = config
            .aliases
            .iter()
            .map(|a| format!("{} -> {}", a.name, a.target))
            .collect();
        let _ = writeln!(s, "aliases: {}", aliases.join(", "));
    }
    let key = match &config.master_key {
        Some(_) if config.database_url.is_some() => {
            let _ = writeln!(
                s,
                "auth: a key is required (the master key, or a virtual key from /key/generate)"
            );
            "<your key>"
        }
        Some(_) => {
            let _ = writeln!(
                s,
                "auth: a key is required (the master key, as `Authorization: Bearer <key>`)"
            );
            "<your master key>"
        }
        None => {
            let _ = writeln!(
                s,
                "auth: no key required (no master key set; any key is accepted)"
            );
            "anything"
        }
    };
    let example = names.first().copied().unwrap_or("<model>");
    let _ = writeln!(s, "connect a client:");
    let _ = writeln!(
        s,
        "  Roo Code / Cline: provider \"LiteLLM\", base URL {base}, API key {key}, then pick a model"
    );
    let _ = writeln!(
        s,
        "  OpenAI SDKs: OPENAI_BASE_URL={base}/v1 OPENAI_API_KEY={key}"
    );
    let _ = writeln!(
        s,
        "  curl {base}/v1/chat/completions -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n    -d '{{\"model\":\"{example}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'"
    );
    for w in &config.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}
