//! Experiment 1, start-up against granularity (the paper's worker start
//! latency for bursts of 48 and 960): flares of `hello` workers through a
//! real `burst serve`, the time from the request to each worker entering
//! `work`, as a distribution per granularity; next to it the same burst as
//! one-worker flares started as fast as the API takes them (the FaaS way),
//! and the controller's peak RSS.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use burst_host::result::now_us;
use indicatif::ProgressBar;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::plot::{Chart, Series, save};
use crate::report::{Section, table};
use crate::stats::{Spread, cdf, quantile};

/// One-worker flares in flight at once in the FaaS comparison (below the
/// controller's 256 concurrent requests, so none waits for a turn).
const FAAS_IN_FLIGHT: usize = 128;

/// A `burst serve` of this checkout on a free loopback port, its store in
/// a directory of its own; stopped and removed on drop.
struct Serve {
    child: Child,
    url: String,
    data: std::path::PathBuf,
    http: reqwest::Client,
}

impl Serve {
    fn start(burst: &Path, slots: u32) -> anyhow::Result<Self> {
        let data = std::env::temp_dir().join(format!("burst-bench-serve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let slots = slots.to_string();
        let mut child = Command::new(burst)
            .args(["serve", "--listen", "127.0.0.1:0", "--slots", &slots])
            .args(["--queue-limit", "100000", "--tenant-queue-limit", "100000"])
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", burst.display()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let url = line.trim().strip_prefix("burst serve: listening on ").map(str::to_owned);
        let http = reqwest::Client::builder().timeout(Duration::from_secs(1800)).build()?;
        let serve = Self { child, url: url.unwrap_or_default(), data, http };
        ensure!(!serve.url.is_empty(), "burst serve did not say where it listens: {line:?}");
        Ok(serve)
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self.http.post(format!("{}{path}", self.url)).json(body).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(status.is_success(), "POST {path}: {status} {body}");
        Ok(body)
    }

    /// The controller's peak resident set.
    fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).context("no VmHWM")?;
        Ok(kib.trim().trim_end_matches("kB").trim().parse::<u64>()? * 1024)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// Milliseconds from `sent_us` to each worker of `results` entering `work`,
/// after checking every worker said hello correctly.
fn start_latencies(results: &Value, sent_us: u64, burst_size: u64) -> anyhow::Result<Vec<f64>> {
    ensure!(results["status"] == "succeeded", "flare failed: {results}");
    let expected = burst_size * burst_size.saturating_sub(1) / 2;
    for output in results["outputs"].as_array().context("outputs")? {
        ensure!(output["sum_of_ids"] == expected, "wrong hello: {output}");
    }
    let workers = results["workers"].as_array().context("workers")?;
    workers
        .iter()
        .map(|w| Ok(w["start_us"].as_u64().context("start_us")?.saturating_sub(sent_us) as f64 / 1000.0))
        .collect()
}

/// What one burst size was measured at.
struct Burst {
    workers: u32,
    /// (label, every worker's start latency over every repeat, spread of the p50).
    curves: Vec<(String, Vec<f64>, Spread, Spread)>,
}

/// Runs the experiment; `sizes` pairs a burst size with its granularities.
pub async fn run(
    burst: &Path,
    hello: &[u8],
    sizes: &[(u32, Vec<u32>)],
    repeats: usize,
    out: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<Section> {
    let slots = sizes.iter().map(|(n, _)| *n).max().unwrap_or(1);
    let serve = Arc::new(Serve::start(burst, slots)?);
    let deployed = serve.http.post(format!("{}/v1/definitions/hello", serve.url));
    let response = deployed.header("content-type", "application/wasm").body(hello.to_vec()).send().await?;
    if !response.status().is_success() {
        bail!("deploying hello: {} {}", response.status(), response.text().await?);
    }
    let mut bursts = Vec::new();
    for (workers, granularities) in sizes {
        let n = *workers;
        let mut curves = Vec::new();
        for &g in granularities {
            let (mut all, mut p50, mut spread) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..repeats {
                bar.set_message(format!("N={n} G={g}"));
                let sent = now_us();
                let request = json!({"definition": "hello", "burst_size": n, "granularity": g, "wait": true});
                let latencies = start_latencies(&serve.post("/v1/flares", &request).await?, sent, u64::from(n))?;
                let mut sorted = latencies.clone();
                sorted.sort_by(f64::total_cmp);
                p50.push(quantile(&sorted, 0.5));
                spread.push(sorted[sorted.len() - 1] - sorted[0]);
                all.extend(latencies);
                bar.inc(1);
            }
            curves.push((format!("G={g}"), all, Spread::of(p50).context("repeats")?, Spread::of(spread).context("x")?));
        }
        let (mut all, mut p50, mut spread) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..repeats {
            bar.set_message(format!("N={n} one-worker flares"));
            let latencies = faas(&serve, n).await?;
            let mut sorted = latencies.clone();
            sorted.sort_by(f64::total_cmp);
            p50.push(quantile(&sorted, 0.5));
            spread.push(sorted[sorted.len() - 1] - sorted[0]);
            all.extend(latencies);
            bar.inc(1);
        }
        curves.push((
            format!("{n} one-worker flares"),
            all,
            Spread::of(p50).context("r")?,
            Spread::of(spread).context("s")?,
        ));
        bursts.push(Burst { workers: n, curves });
    }
    let rss = serve.peak_rss_bytes()?;
    section(&bursts, rss, repeats, out)
}

/// `n` one-worker flares, all requested at once (at most
/// [`FAAS_IN_FLIGHT`] in flight): each worker's start after the first request.
async fn faas(serve: &Arc<Serve>, n: u32) -> anyhow::Result<Vec<f64>> {
    let permits = Arc::new(Semaphore::new(FAAS_IN_FLIGHT));
    let sent = now_us();
    let mut flares = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (serve, permits) = (Arc::clone(serve), Arc::clone(&permits));
        flares.spawn(async move {
            let _permit = permits.acquire().await?;
            let request = json!({"definition": "hello", "burst_size": 1, "wait": true});
            start_latencies(&serve.post("/v1/flares", &request).await?, sent, 1)
        });
    }
    let mut latencies = Vec::with_capacity(n as usize);
    while let Some(joined) = flares.join_next().await {
        latencies.extend(joined??);
    }
    Ok(latencies)
}

fn section(bursts: &[Burst], rss: u64, repeats: usize, out: &Path) -> anyhow::Result<Section> {
    let mut rows = Vec::new();
    let mut plots = Vec::new();
    let mut data = Vec::new();
    for burst in bursts {
        let mut series = Vec::new();
        for (label, all, p50, spread) in &burst.curves {
            let mut sorted = all.clone();
            sorted.sort_by(f64::total_cmp);
            rows.push(vec![
                burst.workers.to_string(),
                label.clone(),
                p50.show(1),
                format!("{:.1}", quantile(&sorted, 0.99)),
                spread.show(1),
            ]);
            series.push(Series { name: label.clone(), points: cdf(all, 200) });
            data.push(
                json!({"workers": burst.workers, "flare": label, "p50_ms": p50, "p99_ms": quantile(&sorted, 0.99),
                "spread_ms": spread, "start_ms": all}),
            );
        }
        let title = format!("Start latency, {} hello workers (CDF)", burst.workers);
        let chart = Chart {
            title: &title,
            x_label: "ms from the request to entering work",
            y_label: "share of workers",
            log_x: true,
            log_y: false,
        };
        plots.push(save(out, &format!("startup-{}.svg", burst.workers), &chart.svg(&series)?)?);
    }
    let text = format!(
        "Each flare is one `POST /v1/flares` with `wait` to a `burst serve` on loopback (embedded host, \
         `memory` backend); a worker's latency is from the request to its entering `work` (its `start_us`). \
         The last row of each size is the same burst as one-worker flares, all requested at once \
         ({FAAS_IN_FLIGHT} in flight), the way a FaaS platform starts it. Peak RSS of the controller \
         over the whole experiment: {:.0} MiB.",
        rss as f64 / f64::from(1u32 << 20)
    );
    Ok(Section {
        title: "1. Start-up against granularity".into(),
        text,
        settings: json!({"repeats": repeats, "sizes": bursts.iter().map(|b| b.workers).collect::<Vec<_>>()}),
        tables: vec![table(&["N", "flare", "p50 start (ms)", "p99 (ms)", "first-to-last spread (ms)"], &rows)],
        plots,
        data: json!({"points": data, "controller_peak_rss_bytes": rss}),
    })
}
