//! A `burst serve` process for the service tests: a free port on loopback,
//! its own data directory (removed at the end), and a small JSON client.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Longest a test waits for a flare to finish.
const FLARE_WAIT: Duration = Duration::from_secs(120);

fn unique(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{what}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(what));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `burst ARGS` with `envs`.
pub fn burst_command(args: &[String], envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_burst"));
    command.args(args).envs(envs.iter().copied());
    command
}

/// Starts `burst ARGS` and returns it with the first line it printed.
pub fn spawn_burst(args: &[String], envs: &[(&str, &str)]) -> (Child, String) {
    spawn_first_line(burst_command(args, envs))
}

/// Starts a command and returns it with the first line it printed.
pub fn spawn_first_line(mut command: Command) -> (Child, String) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("the command starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
        // Keep reading so the process never blocks on a full pipe.
        for _ in lines {}
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).expect("the command prints its first line within 60 s");
    (child, line)
}

/// A running controller.
pub struct Controller {
    child: Child,
    pub url: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    data: TempDir,
}

impl Controller {
    /// `burst serve` with `args` (after its listen address and data dir).
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let data = TempDir::new("burst-serve");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let envs: Vec<(String, String)> = envs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (child, url) = Self::spawn(&data, &args, &envs);
        Self { child, url, args, envs, data }
    }

    fn spawn(data: &TempDir, args: &[String], envs: &[(String, String)]) -> (Child, String) {
        let mut all = vec!["serve".into(), "--listen".into(), "127.0.0.1:0".into(), "--data-dir".into()];
        all.push(data.0.display().to_string());
        all.extend(args.iter().cloned());
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (child, line) = spawn_burst(&all, &envs);
        let url = line.strip_prefix("burst serve: listening on ").unwrap_or_else(|| panic!("unexpected: {line}"));
        (child, url.to_owned())
    }

    /// Kills the process and starts it again on the same data directory.
    pub fn restart(&mut self) {
        self.stop();
        let (child, url) = Self::spawn(&self.data, &self.args, &self.envs);
        self.child = child;
        self.url = url;
    }

    /// The controller's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data.0
    }

    /// The controller's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the process to exit on its own.
    pub fn exited_within(&mut self, limit: Duration) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A client with `token` (none: no Authorization header).
    pub fn api(&self, token: Option<&str>) -> Api {
        // A fresh connection per request: the controller refuses some uploads
        // before reading their body and then closes the connection, which a
        // pooled client could pick up again just as it closes.
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("an HTTP client");
        Api { http, url: self.url.clone(), token: token.map(str::to_owned) }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A JSON client of the controller.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    pub url: String,
    token: Option<String>,
}

impl Api {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.url)).timeout(Duration::from_secs(180));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Status and JSON body (`null` when empty).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("the controller answers");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("a body");
        let value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).expect("a JSON body") };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.request(reqwest::Method::POST, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// Deploys raw bytes; `query` like `?granularity=2` or empty.
    pub async fn deploy(&self, name: &str, wasm: Vec<u8>, query: &str) -> (u16, Value) {
        let request = self
            .request(reqwest::Method::POST, &format!("/v1/definitions/{name}{query}"))
            .header("content-type", "application/wasm")
            .body(wasm);
        self.send(request).await
    }

    /// Deploys a guest built for the tests and checks it was accepted.
    pub async fn deploy_guest(&self, name: &str, guest: &str) -> Value {
        let wasm = std::fs::read(crate::support::guest_path(guest)).expect("the guest was built");
        let (status, body) = self.deploy(name, wasm, "").await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Starts a flare with `wait` and returns its results.
    pub async fn flare_wait(&self, request: Value) -> Value {
        let mut request = request;
        request["wait"] = json!(true);
        let (status, body) = self.post("/v1/flares", &request).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Polls a flare until it has finished; returns its state.
    pub async fn wait_final(&self, flare_id: &str) -> Value {
        let started = Instant::now();
        loop {
            let (status, doc) = self.get(&format!("/v1/flares/{flare_id}")).await;
            assert_eq!(status, 200, "{doc}");
            if doc["status"] == "succeeded" || doc["status"] == "failed" {
                return doc;
            }
            assert!(started.elapsed() < FLARE_WAIT, "flare {flare_id} did not finish: {doc}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The `sum_of_ids` every `hello` worker of a burst of `n` must report,
/// checked with worker ids and packs against `pack_of`.
pub fn check_hello(results: &Value, n: u64, pack_of: impl Fn(u64) -> u64) {
    assert_eq!(results["status"], "succeeded", "{results}");
    let outputs = results["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len() as u64, n);
    for (id, output) in (0..n).zip(outputs) {
        assert_eq!(output["worker_id"], id, "{output}");
        assert_eq!(output["burst_size"], n);
        assert_eq!(output["sum_of_ids"], n * (n - 1) / 2);
        assert_eq!(output["pack_id"], pack_of(id));
        assert_eq!(results["workers"][id as usize]["worker_id"], id);
        assert_eq!(results["workers"][id as usize]["pack_id"], pack_of(id));
    }
}
