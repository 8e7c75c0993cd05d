//! How a flare's result is shown: a readable summary or one JSON document.
//!
//! Worker outputs are the JSON the SDK produced; an output that is not JSON
//! is shown as a string, so a result is always printable.

use std::fmt::Write as _;
use std::time::Duration;

use burst_host::{Failure, FlareResult};
use serde_json::{Value, json};

/// Workers listed one per line in a summary before it abbreviates.
const SUMMARY_WORKERS: usize = 16;

pub struct Report<'a> {
    result: &'a FlareResult,
    burst_size: u32,
    granularity: u32,
    elapsed: Duration,
}

fn output_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn text(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes).into_owned())
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

impl<'a> Report<'a> {
    /// A report of `result`, which may hold only the workers of one pack.
    pub fn new(result: &'a FlareResult, burst_size: u32, granularity: u32, elapsed: Duration) -> Self {
        Self { result, burst_size, granularity, elapsed }
    }

    /// The failure that failed the flare: the earliest recorded, or the
    /// first failed worker.
    pub fn failure(&self) -> Option<&Failure> {
        self.result.failure.as_ref().or_else(|| self.result.workers.iter().find_map(|w| w.outcome.as_ref().err()))
    }

    pub fn to_json(&self) -> Value {
        let r = self.result;
        let outputs: Vec<Value> =
            r.workers.iter().map(|w| w.outcome.as_ref().map_or(Value::Null, |o| output_json(o))).collect();
        let workers: Vec<Value> = r
            .workers
            .iter()
            .map(|w| {
                let mut entry = json!({
                    "worker_id": w.worker_id,
                    "pack_id": w.pack_id,
                    "start_us": w.start_us,
                    "end_us": w.end_us,
                });
                if let Err(failure) = &w.outcome {
                    entry["error"] = json!({ "kind": failure.kind, "message": failure.message });
                }
                if let Some(stdout) = text(&w.stdout) {
                    entry["stdout"] = json!(stdout);
                }
                if let Some(stderr) = text(&w.stderr) {
                    entry["stderr"] = json!(stderr);
                }
                // Present only when the capture limit dropped output.
                if w.stdout_truncated {
                    entry["stdout_truncated"] = json!(true);
                }
                if w.stderr_truncated {
                    entry["stderr_truncated"] = json!(true);
                }
                entry
            })
            .collect();
        let mut doc = json!({
            "flare_id": r.flare_id,
            "burst_size": self.burst_size,
            "granularity": self.granularity,
            "status": if self.failure().is_some() { "failed" } else { "succeeded" },
            "outputs": outputs,
            "workers": workers,
            "bytes": r.bytes,
        });
        if let Some(failure) = self.failure() {
            doc["failure"] = json!(failure);
        }
        doc
    }

    pub fn summary(&self) -> String {
        let r = self.result;
        let packs = self.burst_size.div_ceil(self.granularity);
        let status = if self.failure().is_some() { "FAILED" } else { "succeeded" };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "flare {}: {} of {} workers in {packs} packs of up to {} {status} in {:.1} ms",
            r.flare_id,
            r.workers.len(),
            self.burst_size,
            self.granularity,
            self.elapsed.as_secs_f64() * 1e3
        );
        let _ = writeln!(
            out,
            "bytes moved: {} inside packs, {} between packs",
            human_bytes(r.bytes.local),
            human_bytes(r.bytes.remote)
        );
        for w in r.workers.iter().take(SUMMARY_WORKERS) {
            let took = w.end_us.saturating_sub(w.start_us) as f64 / 1e3;
            let shown = match &w.outcome {
                Ok(output) => output_json(output).to_string(),
                Err(failure) => format!("error: {failure}"),
            };
            let _ = writeln!(out, "  worker {:>4} (pack {:>3}, {took:>8.2} ms): {shown}", w.worker_id, w.pack_id);
        }
        if r.workers.len() > SUMMARY_WORKERS {
            let _ = writeln!(out, "  ... {} more workers (use --json for all)", r.workers.len() - SUMMARY_WORKERS);
        }
        out
    }
}
