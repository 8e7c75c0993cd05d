//! Shared setup: guests built once per test process, one wasmtime runtime,
//! and helpers to run a flare and read its outputs.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use burst_host::{FlareResult, FlareSpec, PackLayout, Program, Runtime, RuntimeConfig};
use bytes::Bytes;
use serde_json::Value;

#[path = "../guests.rs"]
mod guests;
pub use guests::{guest_path, python_guest_path, workspace_root};

pub fn runtime() -> &'static Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let config = RuntimeConfig { max_workers: 2048, ..RuntimeConfig::default() };
        Arc::new(Runtime::new(config).expect("the runtime starts"))
    })
}

fn load(name: &str) -> Program {
    let wasm = std::fs::read(guest_path(name)).expect("the guest was built");
    runtime().load(&wasm, None).expect("the guest loads")
}

pub fn hello() -> &'static Program {
    static P: OnceLock<Program> = OnceLock::new();
    P.get_or_init(|| load("hello"))
}

pub fn microbench() -> &'static Program {
    static P: OnceLock<Program> = OnceLock::new();
    P.get_or_init(|| load("microbench"))
}

pub fn fixtures() -> &'static Program {
    static P: OnceLock<Program> = OnceLock::new();
    P.get_or_init(|| load("burst_fixtures"))
}

/// Runs a flare of `program` with the same JSON input on every worker.
pub async fn run(program: &Program, workers: u32, granularity: u32, input: &Value) -> FlareResult {
    run_with_deadline(program, workers, granularity, input, Duration::from_secs(60)).await
}

pub async fn run_with_deadline(
    program: &Program,
    workers: u32,
    granularity: u32,
    input: &Value,
    deadline: Duration,
) -> FlareResult {
    let layout = Arc::new(PackLayout::homogeneous(workers, granularity).expect("valid layout"));
    let input = Bytes::from(serde_json::to_vec(input).expect("JSON"));
    let spec = FlareSpec::new(format!("test-{workers}-{granularity}"), layout, vec![input; workers as usize], deadline);
    burst_host::run_flare(runtime(), program, &spec).await.expect("the spec is valid")
}

/// The JSON outputs of a flare that must have succeeded.
pub fn outputs(result: &FlareResult) -> Vec<Value> {
    if let Some(failure) = &result.failure {
        panic!("flare failed: {failure}");
    }
    result
        .workers
        .iter()
        .map(|w| match &w.outcome {
            Ok(bytes) => serde_json::from_slice(bytes).expect("outputs are JSON"),
            Err(failure) => panic!("worker {} failed: {failure}", w.worker_id),
        })
        .collect()
}
