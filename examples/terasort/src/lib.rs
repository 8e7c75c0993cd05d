//! `terasort`: the sort benchmark's TeraSort as one flare, and the
//! two-stage baseline that FaaS platforms run with storage between stages.
//!
//! Records are `gensort`'s: 100 bytes, a 10-byte key (`record.rs`). Input:
//! * `{"input": "/data/FILE"}`: worker `i` of `N` sorts records
//!   `[i·R/N, (i+1)·R/N)` of a file of `R` records; or
//! * `{"generate": {"records_per_worker": n, "seed": s}}`: worker `i`
//!   generates records `[i·n, (i+1)·n)` of the data set of `s`, which
//!   depend only on `s` and their index (the data is the same whatever `N`);
//! * `"output": "/out"` (optional): worker `i` writes its sorted records to
//!   `/out/part-NNNNN` (`i`, 5 digits).
//!
//! One flare: every worker samples its keys, the samples are all-gathered
//! and every worker chooses the same `N - 1` splitters; it partitions its
//! records, one all-to-all shuffles them, and it sorts what it got (by key,
//! then by the whole record). It returns how many records it holds, its
//! first and last key (lower-case hex, `null` when it holds none), the
//! `valsort` checksum of its records, whether it verified their order, and
//! the time of each phase.
//!
//! Two stages: `{"stage": "map", "input" | "generate": …, "output": "/out"}`
//! reads, samples and partitions the same way but writes one run per
//! destination, `/out/run-DDDDD-from-SSSSS`, instead of shuffling; then
//! `{"stage": "reduce", "input": "/data", "output": "/out"}` on a flare of
//! the same `N` whose `/data` is the map flare's output: worker `d` reads
//! every run for `d`, sorts, and returns and writes exactly what worker `d`
//! of the one flare would.
//!
//! `{"kernel": {"records": R, "seed": S, "parts": P}}` runs only the
//! partition and the sort, on one worker (`kernel.rs`).

mod files;
pub mod kernel;
mod plan;
mod record;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burst_guest_sdk::{Context, Error, export_work};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::record::{Key, Record};

/// What a worker is asked, as JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    stage: Option<Stage>,
    input: Option<PathBuf>,
    generate: Option<Generate>,
    output: Option<PathBuf>,
}

/// A stage of the two-stage baseline.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Stage {
    Map,
    Reduce,
}

/// A generated data set.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Generate {
    records_per_worker: u64,
    seed: u64,
}

/// Where a worker's records come from.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    File(PathBuf),
    Generate(Generate),
}

/// What a worker does, checked from its input.
#[derive(Debug, PartialEq, Eq)]
enum Job {
    /// The one-flare sort.
    Sort { source: Source, output: Option<PathBuf> },
    /// Map stage: partition into runs in `output`.
    Map { source: Source, output: PathBuf },
    /// Reduce stage: sort the runs in `runs`.
    Reduce { runs: PathBuf, output: Option<PathBuf> },
}

impl Input {
    fn job(self) -> Result<Job, String> {
        let source = || match (self.input.clone(), self.generate) {
            (Some(_), Some(_)) => Err("give either \"input\" or \"generate\", not both".to_string()),
            (Some(path), None) => Ok(Source::File(path)),
            (None, Some(generate)) => Ok(Source::Generate(generate)),
            (None, None) => Err("give \"input\" (a file of records under /data) or \"generate\"".to_string()),
        };
        match self.stage {
            None => Ok(Job::Sort { source: source()?, output: self.output.clone() }),
            Some(Stage::Map) => {
                let source = source()?;
                let output = self.output.ok_or("the map stage writes its runs to \"output\", which is missing")?;
                Ok(Job::Map { source, output })
            }
            Some(Stage::Reduce) => match (self.input, self.generate) {
                (_, Some(_)) => Err("\"generate\" is for the map stage; the reduce stage reads runs".into()),
                (None, None) => Err("the reduce stage needs \"input\": the directory of the map stage's runs".into()),
                (Some(runs), None) => Ok(Job::Reduce { runs, output: self.output }),
            },
        }
    }
}

/// Microseconds of each phase, in the order they ran.
struct Timings {
    phases: Vec<(&'static str, u64)>,
    since: Instant,
}

impl Timings {
    fn start() -> Self {
        Self { phases: Vec::new(), since: Instant::now() }
    }

    /// Ends `phase` now.
    fn lap(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.phases.push((phase, now.duration_since(self.since).as_micros() as u64));
        self.since = now;
    }
}

impl Serialize for Timings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.phases.len()))?;
        for (phase, us) in &self.phases {
            map.serialize_entry(phase, us)?;
        }
        map.end()
    }
}

/// What a sorting worker (one flare, or the reduce stage) returns.
#[derive(Serialize)]
struct Sorted {
    worker_id: u32,
    records: u64,
    first_key: Option<String>,
    last_key: Option<String>,
    checksum: u64,
    sorted: bool,
    timings_us: Timings,
}

/// What a map worker returns.
#[derive(Serialize)]
struct Mapped {
    worker_id: u32,
    /// Records it read.
    records: u64,
    /// Checksum of the records it read.
    checksum: u64,
    /// Bytes it wrote in runs.
    run_bytes: u64,
    timings_us: Timings,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Output {
    Sorted(Sorted),
    Mapped(Mapped),
}

/// This worker's share of `source`.
fn load(source: &Source, ctx: &Context) -> Result<Vec<Record>, String> {
    let (id, n) = (ctx.worker_id(), ctx.burst_size());
    match source {
        Source::File(path) => files::read_share(path, id, n),
        Source::Generate(Generate { records_per_worker, seed }) => {
            // Check the cap before the index arithmetic can overflow.
            files::check_count(*records_per_worker, || "\"generate.records_per_worker\"".into())?;
            let first = records_per_worker.checked_mul(u64::from(id)).ok_or("\"generate\": record ids overflow")?;
            Ok(record::generate_range(*seed, first, *records_per_worker))
        }
    }
}

/// The splitters every worker agrees on, from everyone's samples of their
/// `records`.
fn agree_on_splitters(records: &[Record], ctx: &Context) -> Result<Vec<Key>, Error> {
    let samples = ctx.all_gather_bytes(&plan::sample(records))?;
    plan::splitters(&samples, ctx.burst_size()).map_err(Error::work)
}

/// Sorts `records`, checks the order, writes them to `output` if asked.
fn finish(
    mut records: Vec<Record>,
    output: Option<&Path>,
    ctx: &Context,
    mut timings: Timings,
) -> Result<Sorted, Error> {
    records.sort_unstable();
    let sorted = record::is_sorted(&records);
    let checksum = record::checksum(&records);
    timings.lap("sort");
    if let Some(dir) = output {
        files::write(&files::part_path(dir, ctx.worker_id()), records.as_flattened()).map_err(Error::work)?;
        timings.lap("write");
    }
    let key = |record: Option<&Record>| record.map(|r| record::hex(&record::key_of(r)));
    Ok(Sorted {
        worker_id: ctx.worker_id(),
        records: records.len() as u64,
        first_key: key(records.first()),
        last_key: key(records.last()),
        checksum,
        sorted,
        timings_us: timings,
    })
}

fn sort(source: &Source, output: Option<&Path>, ctx: &Context) -> Result<Sorted, Error> {
    let mut timings = Timings::start();
    let records = load(source, ctx).map_err(Error::work)?;
    timings.lap("read");
    let splitters = agree_on_splitters(&records, ctx)?;
    timings.lap("sample");
    let parts = plan::partition(&records, &splitters, ctx.burst_size());
    drop(records);
    timings.lap("partition");
    let received = ctx.all_to_all_bytes(&parts)?;
    drop(parts);
    let records = files::from_parts(&received).map_err(Error::work)?;
    drop(received);
    timings.lap("shuffle");
    finish(records, output, ctx, timings)
}

fn map(source: &Source, output: &Path, ctx: &Context) -> Result<Mapped, Error> {
    let mut timings = Timings::start();
    let records = load(source, ctx).map_err(Error::work)?;
    let checksum = record::checksum(&records);
    timings.lap("read");
    let splitters = agree_on_splitters(&records, ctx)?;
    timings.lap("sample");
    let parts = plan::partition(&records, &splitters, ctx.burst_size());
    timings.lap("partition");
    let mut run_bytes = 0;
    for (dest, part) in (0..).zip(&parts) {
        files::write(&files::run_path(output, dest, ctx.worker_id()), part).map_err(Error::work)?;
        run_bytes += part.len() as u64;
    }
    timings.lap("write");
    Ok(Mapped { worker_id: ctx.worker_id(), records: records.len() as u64, checksum, run_bytes, timings_us: timings })
}

fn reduce(runs: &Path, output: Option<&Path>, ctx: &Context) -> Result<Sorted, Error> {
    let mut timings = Timings::start();
    let records = files::read_runs(runs, ctx.worker_id(), ctx.burst_size()).map_err(Error::work)?;
    timings.lap("read");
    finish(records, output, ctx, timings)
}

fn work(input: Input, ctx: &Context) -> Result<Output, Error> {
    match input.job().map_err(Error::work)? {
        Job::Sort { source, output } => sort(&source, output.as_deref(), ctx).map(Output::Sorted),
        Job::Map { source, output } => map(&source, &output, ctx).map(Output::Mapped),
        Job::Reduce { runs, output } => reduce(&runs, output.as_deref(), ctx).map(Output::Sorted),
    }
}

export_work!(work, kernel = kernel::run);

#[cfg(test)]
mod tests {
    use super::*;

    fn job(json: &str) -> Result<Job, String> {
        let input: Input = serde_json::from_str(json).map_err(|e| e.to_string())?;
        input.job()
    }

    const GENERATE: Generate = Generate { records_per_worker: 5, seed: 1 };

    #[test]
    fn inputs_name_their_job() {
        assert_eq!(
            job(r#"{"input": "/data/a"}"#),
            Ok(Job::Sort { source: Source::File("/data/a".into()), output: None })
        );
        assert_eq!(
            job(r#"{"generate": {"records_per_worker": 5, "seed": 1}, "output": "/out"}"#),
            Ok(Job::Sort { source: Source::Generate(GENERATE), output: Some("/out".into()) })
        );
        assert_eq!(
            job(r#"{"stage": "map", "generate": {"records_per_worker": 5, "seed": 1}, "output": "/out"}"#),
            Ok(Job::Map { source: Source::Generate(GENERATE), output: "/out".into() })
        );
        assert_eq!(
            job(r#"{"stage": "reduce", "input": "/data", "output": "/out"}"#),
            Ok(Job::Reduce { runs: "/data".into(), output: Some("/out".into()) })
        );
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        let both = r#"{"input": "/data/a", "generate": {"records_per_worker": 5, "seed": 1}}"#;
        assert_eq!(job(both), Err("give either \"input\" or \"generate\", not both".into()));
        assert_eq!(job("{}"), Err("give \"input\" (a file of records under /data) or \"generate\"".into()));
        assert_eq!(
            job(r#"{"stage": "map", "input": "/data/a"}"#),
            Err("the map stage writes its runs to \"output\", which is missing".into())
        );
        assert_eq!(
            job(r#"{"stage": "reduce"}"#),
            Err("the reduce stage needs \"input\": the directory of the map stage's runs".into())
        );
        let generate = r#"{"stage": "reduce", "generate": {"records_per_worker": 5, "seed": 1}}"#;
        assert_eq!(job(generate), Err("\"generate\" is for the map stage; the reduce stage reads runs".into()));
        assert!(job(r#"{"inptu": "/data/a"}"#).expect_err("unknown field").contains("inptu"));
        assert!(job(r#"{"stage": "sort", "input": "/data/a"}"#).expect_err("unknown stage").contains("sort"));
    }

    #[test]
    fn timings_keep_their_order() {
        let mut timings = Timings::start();
        timings.lap("read");
        timings.lap("sort");
        let json = serde_json::to_string(&timings).expect("serializes");
        assert!(json.starts_with("{\"read\":") && json.contains(",\"sort\":"), "{json}");
    }
}
