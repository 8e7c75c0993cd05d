//! Records in and out of files: a worker's share of an input file, the part
//! file it writes at the end, and the runs the two-stage baseline keeps in
//! storage between its map and reduce flares. Every error names its file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::record::{RECORD_BYTES, Record, share};

/// Most records one worker may hold: about twice its share is live at the
/// peak of a sort (the records and the parts being sent, or the parts
/// received and the records they become), and a worker's memory is at
/// most 4 GiB.
pub const MAX_RECORDS_PER_WORKER: u64 = 10_000_000;

/// Refuses `count` records, described by `what`, when a worker may not
/// hold that many.
pub fn check_count(count: u64, what: impl FnOnce() -> String) -> Result<(), String> {
    if count > MAX_RECORDS_PER_WORKER {
        return Err(format!("{} is {count} records, above the cap of {MAX_RECORDS_PER_WORKER} per worker", what()));
    }
    Ok(())
}

/// `count` records as a zeroed vector, refusing more than a worker may hold.
fn zeroed(count: u64, what: impl FnOnce() -> String) -> Result<Vec<Record>, String> {
    check_count(count, what)?;
    Ok(vec![[0; RECORD_BYTES]; count as usize])
}

/// Records in a file of `size` bytes at `path`, when it holds whole records.
fn record_count(path: &Path, size: u64) -> Result<u64, String> {
    if size.is_multiple_of(RECORD_BYTES as u64) {
        Ok(size / RECORD_BYTES as u64)
    } else {
        Err(format!("{}: {size} bytes is not a whole number of {RECORD_BYTES}-byte records", path.display()))
    }
}

/// Opens `path` and returns it with its size.
fn open(path: &Path) -> Result<(File, u64), String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let size = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?.len();
    Ok((file, size))
}

/// Worker `worker` of `workers`'s share of the records of the file at
/// `path`: records `[i·R/N, (i+1)·R/N)` of its `R`.
pub fn read_share(path: &Path, worker: u32, workers: u32) -> Result<Vec<Record>, String> {
    let (mut file, size) = open(path)?;
    let (start, end) = share(record_count(path, size)?, worker, workers);
    let mut records = zeroed(end - start, || format!("the share of worker {worker} of {}", path.display()))?;
    file.seek(SeekFrom::Start(start * RECORD_BYTES as u64))
        .and_then(|_| file.read_exact(records.as_flattened_mut()))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(records)
}

/// The records of `parts` (one per sender), in sender order.
pub fn from_parts(parts: &[Vec<u8>]) -> Result<Vec<Record>, String> {
    let mut total = 0;
    for (sender, part) in parts.iter().enumerate() {
        if !part.len().is_multiple_of(RECORD_BYTES) {
            return Err(format!("worker {sender} sent {} bytes, not whole records", part.len()));
        }
        total += (part.len() / RECORD_BYTES) as u64;
    }
    let mut records = zeroed(total, || "what the other workers sent".into())?;
    let mut at = 0;
    let flat = records.as_flattened_mut();
    for part in parts {
        flat[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    Ok(records)
}

/// The part file of worker `worker` in `dir`: `part-NNNNN`.
pub fn part_path(dir: &Path, worker: u32) -> PathBuf {
    dir.join(format!("part-{worker:05}"))
}

/// The run from map worker `source` for reduce worker `dest` in `dir`:
/// `run-DDDDD-from-SSSSS`.
pub fn run_path(dir: &Path, dest: u32, source: u32) -> PathBuf {
    dir.join(format!("run-{dest:05}-from-{source:05}"))
}

/// Writes `bytes` to the file at `path`.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every run for reduce worker `dest` in `dir` (one from each of `workers`
/// map workers), in source order.
pub fn read_runs(dir: &Path, dest: u32, workers: u32) -> Result<Vec<Record>, String> {
    let mut runs = Vec::new();
    let mut total = 0;
    for source in 0..workers {
        let path = run_path(dir, dest, source);
        let (file, size) = open(&path)?;
        total += record_count(&path, size)?;
        runs.push((path, file, size));
    }
    let mut records = zeroed(total, || format!("the runs for worker {dest} in {}", dir.display()))?;
    let mut at = 0;
    let flat = records.as_flattened_mut();
    for (path, mut file, size) in runs {
        let end = at + size as usize;
        file.read_exact(&mut flat[at..end]).map_err(|e| format!("{}: {e}", path.display()))?;
        at = end;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::generate_range;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("terasort-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        dir
    }

    #[test]
    fn shares_of_a_file_read_back_the_file() {
        let dir = temp_dir("shares");
        let path = dir.join("in.dat");
        let bytes = generate_range(1, 0, 23).concat();
        write(&path, &bytes).expect("writes");
        let mut all = Vec::new();
        for worker in 0..4 {
            all.extend(read_share(&path, worker, 4).expect("reads"));
        }
        assert_eq!(all.as_flattened(), &bytes[..]);
        std::fs::remove_dir_all(dir).expect("cleans up");
    }

    #[test]
    fn a_file_of_partial_records_is_refused_by_name() {
        let dir = temp_dir("partial");
        let path = dir.join("bad.dat");
        write(&path, &[0; 150]).expect("writes");
        let error = read_share(&path, 0, 1).expect_err("refused");
        assert_eq!(error, format!("{}: 150 bytes is not a whole number of 100-byte records", path.display()));
        let missing = read_share(&dir.join("none"), 0, 1).expect_err("refused");
        assert!(missing.starts_with(&format!("{}: ", dir.join("none").display())), "{missing}");
        std::fs::remove_dir_all(dir).expect("cleans up");
    }

    #[test]
    fn runs_read_back_in_source_order() {
        let dir = temp_dir("runs");
        write(&run_path(&dir, 1, 0), &generate_range(2, 0, 3).concat()).expect("writes");
        write(&run_path(&dir, 1, 1), &[]).expect("writes");
        write(&run_path(&dir, 1, 2), &generate_range(2, 3, 2).concat()).expect("writes");
        let records = read_runs(&dir, 1, 3).expect("reads");
        assert_eq!(records, generate_range(2, 0, 5));
        let missing = read_runs(&dir, 0, 3).expect_err("no runs for 0");
        assert!(missing.contains("run-00000-from-00000"), "{missing}");
        std::fs::remove_dir_all(dir).expect("cleans up");
    }

    #[test]
    fn parts_join_in_sender_order() {
        let parts = vec![generate_range(4, 0, 2).concat(), vec![], generate_range(4, 2, 1).concat()];
        assert_eq!(from_parts(&parts).expect("whole"), generate_range(4, 0, 3));
        assert_eq!(from_parts(&[vec![0; 100], vec![0; 5]]), Err("worker 1 sent 5 bytes, not whole records".into()));
    }

    #[test]
    fn too_many_records_are_refused() {
        let error = zeroed(MAX_RECORDS_PER_WORKER + 1, || "x".into()).expect_err("refused");
        assert_eq!(
            error,
            format!(
                "x is {} records, above the cap of {MAX_RECORDS_PER_WORKER} per worker",
                MAX_RECORDS_PER_WORKER + 1
            )
        );
        assert_eq!(part_path(Path::new("/out"), 3), Path::new("/out/part-00003"));
    }
}
