//! The compute kernel (see `burst_guest_sdk::kernel`): one worker's
//! records partitioned by splitters from their sample, put back together
//! and sorted, as a flare's worker does around its all-to-all.

use burst_guest_sdk::kernel::{Report, measure};
use serde::Deserialize;

use crate::{files, plan, record};

/// Most destinations the records may be partitioned for.
const MAX_PARTS: u32 = 4096;

/// The `kernel` input (built from JSON on either side, so that both
/// builds are given the same).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Records generated (gensort's, from `seed`).
    records: u64,
    seed: u64,
    /// Destinations they are partitioned for, as if for that many workers.
    parts: u32,
}

/// Partitions and sorts; the digest is of each part's length, the records'
/// checksum and whether they came out sorted.
pub fn run(spec: Spec) -> Result<Report, String> {
    files::check_count(spec.records, || "kernel.records".into())?;
    if !(1..=MAX_PARTS).contains(&spec.parts) {
        return Err(format!("kernel.parts must be in 1..={MAX_PARTS}, got {}", spec.parts));
    }
    let records = record::generate_range(spec.seed, 0, spec.records);
    let splitters = plan::splitters(&[plan::sample(&records)], spec.parts)?;
    measure(|| {
        let parts = plan::partition(&records, &splitters, spec.parts);
        let mut sorted = files::from_parts(&parts)?;
        sorted.sort_unstable();
        let lengths: Vec<u64> = parts.iter().map(|p| p.len() as u64).collect();
        Ok(lengths.into_iter().chain([record::checksum(&sorted), u64::from(record::is_sorted(&sorted))]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(records: u64, parts: u32) -> Spec {
        Spec { records, seed: 7, parts }
    }

    #[test]
    fn the_kernel_digests_the_sort_and_checks_its_input() {
        let once = run(spec(2_000, 4)).expect("runs");
        assert_eq!(once.digest, run(spec(2_000, 4)).expect("runs").digest);
        assert_ne!(once.digest, run(spec(2_000, 5)).expect("runs").digest);
        assert_eq!(run(spec(10, 0)).expect_err("no parts"), format!("kernel.parts must be in 1..={MAX_PARTS}, got 0"));
        let error = run(spec(files::MAX_RECORDS_PER_WORKER + 1, 1)).expect_err("too many");
        assert!(error.starts_with("kernel.records is "), "{error}");
    }
}
