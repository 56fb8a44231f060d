//! `llmux check`: validate a config and print what would be served,
//! never a secret.

use llmux_gateway::routes::public_url;
use std::path::Path;
use std::process::ExitCode;

pub fn run(path: Option<&Path>) -> ExitCode {
    let config = match crate::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match path {
        Some(p) => println!("{}: ok", p.display()),
        None => println!("no config file: models from provider keys in the environment"),
    }
    println!(
        "master key: {}",
        if config.master_key.is_some() {
            "set (clients must send it)"
        } else {
            "not set (no key required)"
        }
    );
    if let Some(url) = &config.database_url {
        println!(
            "virtual keys: on, kept in {} (made at /key/generate with the master key)",
            llmux_gateway::keys::store::redacted(url.expose())
        );
    }
    if let Some(r) = &config.redis {
        println!(
            "shared across replicas: keys' rate limits, deployments' rpm/tpm and cooldowns, \
             in {} ({})",
            r.redacted(),
            r.from
        );
    }
    println!(
        "settings: num_retries={} request_timeout={}s drop_params={} max_request_size={} MB \
         routing_strategy={}",
        config.num_retries,
        config.request_timeout.as_secs_f64(),
        config.drop_params,
        config.max_request_bytes / (1024 * 1024),
        config.routing_strategy.name()
    );
    println!("models ({}):", config.model_names().len());
    for name in config.model_names() {
        println!("  {name}");
        for d in config.deployments.iter().filter(|d| d.model_name == name) {
            // A base URL may carry credentials (userinfo, a query key).
            let base = d
                .api_base
                .as_deref()
                .map_or("provider default".to_owned(), public_url);
            let key = match (&d.aws, &d.vertex) {
                (Some(a), _) if a.bearer_token.is_some() => {
                    format!("Bedrock API key, region {}", a.region)
                }
                (Some(a), _) if a.access_key_id.is_some() => {
                    format!("AWS keys set, region {}", a.region)
                }
                (Some(a), _) => format!(
                    "AWS credentials from the environment or a profile, region {}",
                    a.region
                ),
                (None, Some(v)) => {
                    format!("service account, project {} in {}", v.project, v.location)
                }
                _ if d.api_key.is_some() => "key set".to_owned(),
                _ => "no key".to_owned(),
            };
            let ctx = d
                .info
                .u64("max_input_tokens")
                .map_or("context unknown".to_owned(), |n| {
                    format!("{n} tokens context")
                });
            println!(
                "    -> {} `{}` at {base} ({key}, {ctx})",
                d.provider, d.upstream_model
            );
        }
    }
    if !config.wildcards.is_empty() {
        println!(
            "wildcard routes ({}), most specific first; a name the models above list wins:",
            config.wildcards.patterns().count()
        );
        for (pattern, model, base) in config.wildcards.entries() {
            println!(
                "  {pattern} -> `{model}` at {}",
                base.map_or("provider default".to_owned(), public_url)
            );
        }
        println!(
            "  ({} models the catalog knows are listed at /v1/models through them)",
            config.wildcards.known().len()
        );
    }
    if !config.aliases.is_empty() {
        println!("aliases ({}):", config.aliases.len());
        for a in &config.aliases {
            let hidden = if a.hidden {
                " (hidden from model lists)"
            } else {
                ""
            };
            println!("  {} -> {}{hidden}", a.name, a.target);
        }
    }
    for w in &config.warnings {
        println!("warning: {w}");
    }
    ExitCode::SUCCESS
}
