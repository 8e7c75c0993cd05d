//! `terasort`: checked against an independent computation.
//!
//! The test writes its own records (its own generator, not the guest's)
//! into a temp dir seen as `/data`, sorts them itself, and checks that the
//! one-flare sort is sorted within and across workers, keeps every record
//! (counts and CRC-32 checksums add up to the input's) and writes part
//! files whose concatenation is the test's sort byte for byte; and that the
//! two-stage baseline (map flare, runs on disk, reduce flare) writes the
//! same part files and returns the same results.

use std::path::Path;

use burst_host::FailureKind;
use burst_host::comm::BrokerKind;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::{Run, Stream, workload};
use crate::support::outputs;

const RECORD: usize = 100;
const KEY: usize = 10;

/// Phases a worker of the one-flare sort times (in name order, as a JSON
/// object comes out of `serde_json`).
const SORT_PHASES: [&str; 6] = ["partition", "read", "sample", "shuffle", "sort", "write"];

/// Where a flare runs.
#[derive(Clone, Copy, Debug)]
struct Layout {
    workers: u32,
    granularity: u32,
    broker: Option<BrokerKind>,
}

const fn in_memory(workers: u32, granularity: u32) -> Layout {
    Layout { workers, granularity, broker: None }
}

/// `count` records of random bytes.
fn random_records(seed: u64, count: usize) -> Vec<u8> {
    let mut bytes = vec![0; count * RECORD];
    Stream(seed | 1).fill(&mut bytes);
    bytes
}

/// `count` records whose keys are mostly one of three values, a tenth of
/// them exact copies of one record.
fn skewed_records(count: usize) -> Vec<u8> {
    let mut stream = Stream(0xDEAD_BEEF);
    let hot = [[0x42; KEY], [0x00; KEY], [0xFF; KEY]];
    let copied = random_records(7, 1);
    let mut bytes = random_records(11, count);
    for record in bytes.chunks_exact_mut(RECORD) {
        match stream.next() % 10 {
            0 => record.copy_from_slice(&copied),
            1 => {}
            k => record[..KEY].copy_from_slice(&hot[k as usize % 3]),
        }
    }
    bytes
}

/// Record `index` of the guest's generated data set of `seed`, written
/// from its documented layout.
fn documented_record(seed: u64, index: u64) -> Vec<u8> {
    fn finalise(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let w0 = finalise(seed ^ finalise(2 * index));
    let w1 = finalise(seed ^ finalise(2 * index + 1));
    let mut record = Vec::with_capacity(RECORD);
    record.extend_from_slice(&w0.to_be_bytes());
    record.extend_from_slice(&w1.to_be_bytes()[..2]);
    record.extend_from_slice(&[0x00, 0x11]);
    record.extend_from_slice(format!("{index:032X}").as_bytes());
    record.extend_from_slice(&[0x88, 0x99, 0xAA, 0xBB]);
    for m in 0..12 {
        let digit = format!("{:X}", (w1 >> (4 * m)) & 0xF);
        record.extend_from_slice(digit.repeat(4).as_bytes());
    }
    record.extend_from_slice(&[0xCC, 0xDD, 0xEE, 0xFF]);
    assert_eq!(record.len(), RECORD);
    record
}

/// The wrapping sum of the CRC-32 of every record, as `valsort` sums them.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.chunks_exact(RECORD).fold(0u64, |sum, r| sum.wrapping_add(u64::from(crc32fast::hash(r))))
}

/// `bytes` with its records in byte order.
fn sorted(bytes: &[u8]) -> Vec<u8> {
    let mut records: Vec<&[u8]> = bytes.chunks_exact(RECORD).collect();
    records.sort();
    records.concat()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The part files `part-00000`… of `workers` in `dir`, the only files there.
fn part_files(dir: &Path, workers: u32) -> Vec<Vec<u8>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("lists")
        .map(|e| e.expect("entry").file_name().into_string().expect("UTF-8"))
        .collect();
    names.sort();
    let expected: Vec<String> = (0..workers).map(|w| format!("part-{w:05}")).collect();
    assert_eq!(names, expected, "the files in {}", dir.display());
    expected.iter().map(|name| std::fs::read(dir.join(name)).expect("reads a part")).collect()
}

/// A flare of `terasort` with `input`, seeing `data` and `output`.
async fn flare(layout: Layout, data: &Path, output: &Path, input: &Value) -> Vec<Value> {
    let mut run = Run::new(layout.workers, layout.granularity);
    run.broker = layout.broker;
    run.data = Some(data);
    run.output = Some(output);
    outputs(&run.flare(workload("terasort"), input).await)
}

/// `outputs` without their timings.
fn untimed(outputs: &[Value]) -> Vec<Value> {
    let mut outputs = outputs.to_vec();
    for output in &mut outputs {
        output.as_object_mut().expect("an object").remove("timings_us");
    }
    outputs
}

/// Checks a sort of the records of `input` by `layout.workers` workers
/// that returned `outputs` and wrote `parts`.
fn check_sort(layout: Layout, input: &[u8], outputs: &[Value], parts: &[Vec<u8>]) {
    let total: u64 = outputs.iter().map(|o| o["records"].as_u64().expect("records")).sum();
    assert_eq!(total, (input.len() / RECORD) as u64, "{layout:?}");
    let sum = outputs.iter().fold(0u64, |s, o| s.wrapping_add(o["checksum"].as_u64().expect("checksum")));
    assert_eq!(sum, checksum(input), "{layout:?}");
    let mut previous_last: Option<String> = None;
    for (worker, (output, part)) in outputs.iter().zip(parts).enumerate() {
        assert_eq!(output["worker_id"], worker as u64, "{layout:?}");
        assert_eq!(output["sorted"], true, "{layout:?} worker {worker}");
        assert_eq!(output["records"], (part.len() / RECORD) as u64, "{layout:?} worker {worker}");
        assert_eq!(output["checksum"], checksum(part), "{layout:?} worker {worker}");
        if part.is_empty() {
            assert_eq!((&output["first_key"], &output["last_key"]), (&Value::Null, &Value::Null));
            continue;
        }
        let first = output["first_key"].as_str().expect("a first key").to_owned();
        let last = output["last_key"].as_str().expect("a last key").to_owned();
        assert_eq!(first, hex(&part[..KEY]), "{layout:?} worker {worker}");
        assert_eq!(last, hex(&part[part.len() - RECORD..][..KEY]), "{layout:?} worker {worker}");
        assert!(first <= last, "{layout:?} worker {worker}: {first} > {last}");
        if let Some(previous) = &previous_last {
            assert!(previous <= &first, "{layout:?}: worker {worker} starts at {first}, before {previous}");
        }
        previous_last = Some(last);
    }
    assert!(parts.concat() == sorted(input), "{layout:?}: the part files are not the test's sort of the input");
}

/// Sorts `file` (in `data`) in one flare, then with the two-stage baseline,
/// and checks both; returns the one flare's part files.
async fn sort_both_ways(layout: Layout, data: &Path, file: &str, input: &[u8]) -> Vec<Vec<u8>> {
    let path = format!("/data/{file}");
    let (one, map, reduce) = (TempDir::new().expect("dir"), TempDir::new().expect("dir"), TempDir::new().expect("dir"));

    let sorted_outputs = flare(layout, data, one.path(), &json!({ "input": path, "output": "/out" })).await;
    let parts = part_files(one.path(), layout.workers);
    check_sort(layout, input, &sorted_outputs, &parts);
    for output in &sorted_outputs {
        let mut phases: Vec<&String> = output["timings_us"].as_object().expect("timings").keys().collect();
        phases.sort();
        assert_eq!(phases, SORT_PHASES, "{layout:?}");
    }

    let mapped = flare(layout, data, map.path(), &json!({ "stage": "map", "input": path, "output": "/out" })).await;
    let read: u64 = mapped.iter().map(|o| o["records"].as_u64().expect("records")).sum();
    let written: u64 = mapped.iter().map(|o| o["run_bytes"].as_u64().expect("run bytes")).sum();
    let sum = mapped.iter().fold(0u64, |s, o| s.wrapping_add(o["checksum"].as_u64().expect("checksum")));
    assert_eq!(
        (read, written, sum),
        ((input.len() / RECORD) as u64, input.len() as u64, checksum(input)),
        "{layout:?}"
    );
    let runs = std::fs::read_dir(map.path()).expect("lists").count();
    assert_eq!(runs, (layout.workers * layout.workers) as usize, "{layout:?}: one run per (source, destination)");

    let reduced =
        flare(layout, map.path(), reduce.path(), &json!({ "stage": "reduce", "input": "/data", "output": "/out" }))
            .await;
    assert_eq!(untimed(&reduced), untimed(&sorted_outputs), "{layout:?}: the baseline returns what the one flare does");
    assert!(part_files(reduce.path(), layout.workers) == parts, "{layout:?}: the baseline wrote other part files");
    parts
}

/// A temp dir holding `bytes` as `name`.
fn data_dir(name: &str, bytes: &[u8]) -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join(name), bytes).expect("writes the input");
    dir
}

#[tokio::test]
async fn sorts_a_file_in_one_flare_and_in_two_stages() {
    // 1003 records: no burst size below divides it.
    let input = random_records(1, 1003);
    let data = data_dir("in.dat", &input);
    for layout in [in_memory(1, 1), in_memory(6, 4), in_memory(7, 3)] {
        sort_both_ways(layout, data.path(), "in.dat", &input).await;
    }
}

#[tokio::test]
async fn sorts_through_redis() {
    let input = random_records(2, 600);
    let data = data_dir("in.dat", &input);
    let layout = Layout { workers: 5, granularity: 2, broker: Some(BrokerKind::Redis) };
    sort_both_ways(layout, data.path(), "in.dat", &input).await;
}

#[tokio::test]
async fn sorts_skewed_keys() {
    let input = skewed_records(800);
    let data = data_dir("skewed.dat", &input);
    let parts = sort_both_ways(in_memory(6, 4), data.path(), "skewed.dat", &input).await;
    // Every record of one key is on one worker.
    for key in [[0x42; KEY], [0x00; KEY], [0xFF; KEY]] {
        let holders = parts.iter().filter(|p| p.chunks_exact(RECORD).any(|r| r[..KEY] == key)).count();
        assert_eq!(holders, 1, "key {}", hex(&key));
    }
}

#[tokio::test]
async fn generated_data_is_the_same_whatever_the_burst_size() {
    let expected: Vec<u8> = (0..300).flat_map(|index| documented_record(77, index)).collect();
    let empty = TempDir::new().expect("dir");
    for (layout, per_worker) in [(in_memory(6, 4), 50), (in_memory(4, 3), 75)] {
        let out = TempDir::new().expect("dir");
        let input = json!({ "generate": { "records_per_worker": per_worker, "seed": 77 }, "output": "/out" });
        let outputs = flare(layout, empty.path(), out.path(), &input).await;
        check_sort(layout, &expected, &outputs, &part_files(out.path(), layout.workers));
    }
}

#[tokio::test]
async fn sorts_the_sample_file() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/terasort/data");
    let input = std::fs::read(data.join("sample.dat")).expect("the sample file");
    assert_eq!(input.len(), 500 * RECORD);
    let out = TempDir::new().expect("dir");
    let layout = in_memory(4, 2);
    let outputs = flare(layout, &data, out.path(), &json!({ "input": "/data/sample.dat", "output": "/out" })).await;
    check_sort(layout, &input, &outputs, &part_files(out.path(), layout.workers));
}

#[tokio::test]
async fn a_file_of_partial_records_is_refused_by_name() {
    let data = data_dir("bad.dat", &[7; 150]);
    let mut run = Run::new(3, 2);
    run.data = Some(data.path());
    let result = run.flare(workload("terasort"), &json!({ "input": "/data/bad.dat" })).await;
    let message = "/data/bad.dat: 150 bytes is not a whole number of 100-byte records";
    let failure = result.failure.as_ref().expect("the flare failed");
    assert_eq!((failure.kind, failure.message.as_str()), (FailureKind::GuestError, message), "{failure}");
    for worker in &result.workers {
        let error = worker.outcome.as_ref().expect_err("no worker sorts a broken file");
        assert!(
            error.message == message || error.kind == FailureKind::Cancelled,
            "worker {}: {error}",
            worker.worker_id
        );
    }
}
