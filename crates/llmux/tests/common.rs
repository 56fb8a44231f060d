//! Running the real `llmux` binary in tests: `llmux mock` as the upstream,
//! `llmux serve` as the gateway, each on a port the OS picks.

#![allow(dead_code)]
// Test support: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const UPSTREAM_KEY: &str = "sk-upstream-secret-42";
pub const MASTER_KEY: &str = "sk-master-test";

/// A child process, killed when dropped.
pub struct Proc {
    child: Child,
    pub addr: String,
    pub stderr_path: PathBuf,
    _dir: TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM, as a service manager stopping llmux does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The exit status, if the process ends within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("llmux-test-{}-{tag}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_llmux")
}

/// Environment variables that would change what the gateway serves.
const SCRUB: &[&str] = &[
    "LLMUX_MASTER_KEY",
    "DATABASE_URL",
    "LITELLM_MASTER_KEY",
    "LLMUX_CONFIG",
    "LLMUX_HOST",
    "LLMUX_PORT",
    "OPENAI_API_KEY",
    "OPENAI_API_BASE",
    "OPENAI_BASE_URL",
    "AZURE_API_KEY",
    "AZURE_API_BASE",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_API_VERSION",
    "GROQ_API_KEY",
    "DEEPSEEK_API_KEY",
    "OPENROUTER_API_KEY",
    "OR_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_PROFILE",
    "AWS_BEARER_TOKEN_BEDROCK",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
];

fn start(args: &[&str], env: &[(&str, &str)], tag: &str) -> Proc {
    let dir = TempDir::new(tag);
    let stderr_path = dir.0.join("stderr.log");
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()))
        .stdin(Stdio::null());
    for k in SCRUB {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("llmux starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut sent = false;
        while let Some(Ok(line)) = lines.next() {
            if !sent && line.contains("listening on") {
                let _ = tx.send(line);
                sent = true;
            }
        }
    });
    let line = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(l) => l,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "llmux {args:?} did not start: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
    };
    // "… listening on http://localhost:P (127.0.0.1:P)" or "… on http://127.0.0.1:P/v1"
    let addr = match line.rfind('(').filter(|_| line.ends_with(')')) {
        Some(i) => line[i + 1..].trim_end_matches(')').to_owned(),
        None => line
            .rsplit("http://")
            .next()
            .unwrap()
            .trim_end_matches("/v1")
            .to_owned(),
    };
    Proc {
        child,
        addr,
        stderr_path,
        _dir: dir,
    }
}

pub fn mock(extra: &[&str]) -> Proc {
    let mut args = vec!["mock", "--port", "0"];
    args.extend_from_slice(extra);
    start(&args, &[], "mock")
}

/// A gateway with this config text.
pub fn gateway(config: &str, env: &[(&str, &str)]) -> Proc {
    let dir = TempDir::new("cfg");
    let path = dir.0.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let p = path.to_str().unwrap().to_owned();
    let proc = start(
        &[
            "serve",
            "--config",
            &p,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        env,
        "gw",
    );
    // The config is read at start; the directory may go.
    drop(dir);
    proc
}

/// A gateway configured from the environment alone.
pub fn gateway_from_env(env: &[(&str, &str)]) -> Proc {
    start(
        &["serve", "--host", "127.0.0.1", "--port", "0"],
        env,
        "gw-env",
    )
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap()
}

/// POSTs `body` as JSON to `path` on `to`; the response, whatever its status.
pub async fn post_json(to: &Proc, path: &str, body: &serde_json::Value) -> reqwest::Response {
    client().post(to.url(path)).json(body).send().await.unwrap()
}

/// GETs `path` on `to` (no key) and reads the answer as JSON.
pub async fn get_json(to: &Proc, path: &str) -> serde_json::Value {
    client()
        .get(to.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The ids `/v1/models` lists.
pub async fn model_ids(gw: &Proc) -> Vec<String> {
    get_json(gw, "/v1/models").await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn mock_requests(mock: &Proc) -> Vec<serde_json::Value> {
    serde_json::from_value(get_json(mock, "/mock/requests").await).unwrap()
}

pub async fn mock_stats(mock: &Proc) -> serde_json::Value {
    get_json(mock, "/mock/stats").await
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

pub fn chat(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}
