//! A guest's compute kernel: the part of its job that only computes, run
//! on one worker without communicating, timed from inside.
//!
//! The evaluation compares a kernel built for `wasm32-wasip2` (run by the
//! pack host, asked with a `"kernel"` input) with the same source built
//! natively (linked into the benchmark as a library): the ratio of their
//! times is what WebAssembly costs that workload. Both report a digest of
//! the result, so a comparison that is not of the same computation shows.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// What a kernel reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Seconds spent computing (data generation excluded).
    pub seconds: f64,
    /// FNV-1a over the result's words, in hex: equal on both builds when
    /// they computed the same bits.
    pub digest: String,
}

/// Times `compute` and digests the words it answers (an iterator that is
/// still lazy when `compute` returns is digested outside the time).
pub fn measure<W: IntoIterator<Item = u64>>(compute: impl FnOnce() -> Result<W, String>) -> Result<Report, String> {
    let started = Instant::now();
    let words = compute()?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Report { seconds, digest: format!("{:016x}", digest(words)) })
}

/// 64-bit FNV-1a over the little-endian bytes of `words`.
fn digest(words: impl IntoIterator<Item = u64>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    words.into_iter().flat_map(u64::to_le_bytes).fold(OFFSET, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_fnv1a_of_the_little_endian_bytes() {
        // FNV-1a of no bytes is its offset basis; of the byte 0x61 ("a"),
        // the published test vector.
        assert_eq!(digest([]), 0xcbf2_9ce4_8422_2325);
        let a = u64::from(b'a');
        let report = measure(|| Ok([a])).expect("measures");
        // "a" then seven zero bytes.
        let expected = (1..8).fold(0xaf63_dc4c_8601_ec8c_u64, |h, _| h.wrapping_mul(0x0000_0100_0000_01b3));
        assert_eq!(report.digest, format!("{expected:016x}"));
        assert!(report.seconds >= 0.0);
        let words = |w: [u64; 2]| measure(|| Ok(w)).expect("measures").digest;
        assert_ne!(words([1, 2]), words([2, 1]));
        assert_eq!(measure::<[u64; 0]>(|| Err("no".into())), Err("no".to_owned()));
    }
}
