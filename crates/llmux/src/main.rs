//! The `llmux` command: `serve`, `check`, `mock`.

/// jemalloc rather than the system allocator: a request allocates about 40
/// times (hyper's buffers and header maps, the bodies), and jemalloc's
/// thread caches do that in about 5 % fewer instructions a request than
/// glibc's malloc, with no more memory a stream (`bench/README.md`).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod check;
mod mock;

use clap::{Parser, Subcommand};
use llmux_core::Catalog;
use llmux_gateway::{Config, Env};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "llmux",
    version,
    about = "A fast LLM gateway: the OpenAI API in front of many providers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// A LiteLLM config.yaml. Without one, providers are found from
        /// their API keys in the environment.
        #[arg(long, short = 'c', env = "LLMUX_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on. `localhost` listens on 127.0.0.1 and ::1;
        /// use 0.0.0.0 to accept connections from other machines.
        #[arg(long, default_value = "localhost", env = "LLMUX_HOST")]
        host: String,
        #[arg(long, short = 'p', default_value_t = 8000, env = "LLMUX_PORT")]
        port: u16,
        /// Worker threads, each serving its own connections; by default one
        /// per CPU core.
        #[arg(long, env = "LLMUX_WORKERS", alias = "num_workers")]
        workers: Option<usize>,
    },
    /// Validate a config file and print what it would serve.
    Check {
        /// The config file; without one, what the environment provides.
        config: Option<PathBuf>,
    },
    /// Run a fake OpenAI-compatible upstream for tests and trials.
    Mock(mock::MockArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    raise_open_file_limit();
    match cli.command {
        Command::Serve {
            config,
            host,
            port,
            workers,
        } => {
            let config = match load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let workers = workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            // The workers run their own runtimes; this one waits for signals.
            let runtime = tokio::runtime::Builder::new_current_thread();
            run(runtime, llmux_gateway::serve(config, &host, port, workers))
        }
        Command::Check { config } => check::run(config.as_deref()),
        Command::Mock(args) => run(tokio::runtime::Builder::new_multi_thread(), mock::run(args)),
    }
}

/// Runs `task` to completion on a runtime from `builder`; an error is
/// printed and becomes the exit status.
fn run<E: std::fmt::Display>(
    mut builder: tokio::runtime::Builder,
    task: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The config from a file, or from the environment.
pub fn load(path: Option<&std::path::Path>) -> Result<Config, String> {
    let catalog = Catalog::builtin().map_err(|e| e.to_string())?;
    let env = Env::process();
    match path {
        Some(p) => llmux_gateway::config::load_file(p, &catalog, &env).map_err(|e| e.to_string()),
        None => Config::from_env(&env, &catalog).map_err(|e| e.to_string()),
    }
}

/// Every open stream holds two sockets (client and upstream): lift the soft
/// limit on open files to the hard one, as servers that hold thousands of
/// connections must.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open file limit"),
        Err(e) => tracing::warn!("could not raise the open file limit: {e}"),
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LLMUX_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
