//! Seeded clusters of points, for runs without a file: point `i` depends
//! only on the seed and `i`, so the data set is the same whatever the
//! burst size and each worker makes just its own rows.
//!
//! The layout, so that anyone can make the same points: `mix` is
//! SplitMix64's finaliser and `Stream(s)` the SplitMix64 sequence from
//! state `s` (each draw adds `0x9e3779b97f4a7c15` to the state, then
//! mixes it); `unit()` is a draw's top 53 bits over 2⁵³, in `[0, 1)`.
//! * Centre `c` draws from `Stream(seed ^ mix(!c))`: its coordinates, in
//!   order, are `SPREAD · (2·unit() − 1)` with `SPREAD` = 10.
//! * Point `i` draws from `Stream(seed ^ mix(i))`: its centre is the first
//!   draw modulo `clusters`, then coordinate `j`, in order, is that
//!   centre's coordinate `j` plus `(unit() + … + unit()) − 6` (twelve
//!   draws added left to right from 0: an Irwin–Hall draw, about a unit
//!   normal, in plain arithmetic so that every platform gets the same bits,
//!   which `ln`/`cos` of a Box–Muller draw would not promise).

use std::ops::Range;

use serde::Deserialize;

use crate::{MAX_DIMENSIONS, MAX_WORKER_CELLS};

/// Half the side of the cube the centres are drawn in.
const SPREAD: f64 = 10.0;
/// Uniform draws added for one noise draw.
const NOISE_TERMS: u32 = 12;
/// Most generated points.
pub const MAX_POINTS: u64 = 1 << 40;
/// Most generated clusters: the centres are a table every worker holds.
pub const MAX_CLUSTERS: u32 = 1 << 16;

/// The `generate` input.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Number of points.
    pub points: u64,
    /// Coordinates of each point.
    pub dimensions: u32,
    /// Number of centres the points are drawn around.
    pub clusters: u32,
    /// Seed of everything.
    #[serde(default)]
    pub seed: u64,
}

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A SplitMix64 sequence.
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `[0, 1)`, from the top 53 bits.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Spec {
    /// Checks the spec for a flare of `burst_size` workers; the message
    /// names the field. The same on every worker.
    pub fn validate(&self, burst_size: u32) -> Result<(), String> {
        if !(1..=MAX_POINTS).contains(&self.points) {
            return Err(format!("generate.points must be in 1..={MAX_POINTS}, got {}", self.points));
        }
        if !(1..=MAX_DIMENSIONS).contains(&(self.dimensions as usize)) {
            return Err(format!("generate.dimensions must be in 1..={MAX_DIMENSIONS}, got {}", self.dimensions));
        }
        if !(1..=MAX_CLUSTERS).contains(&self.clusters) {
            return Err(format!("generate.clusters must be in 1..={MAX_CLUSTERS}, got {}", self.clusters));
        }
        // The largest share, so that every worker reaches the same verdict.
        let share = self.points.div_ceil(u64::from(burst_size));
        if share.saturating_mul(u64::from(self.dimensions)) > MAX_WORKER_CELLS as u64 {
            return Err(format!(
                "generate: {} points of {} dimensions give a worker more than {MAX_WORKER_CELLS} numbers; \
                 use more workers",
                self.points, self.dimensions
            ));
        }
        Ok(())
    }

    /// The rows worker `worker_id` of `burst_size` makes:
    /// `[i·R/N, (i+1)·R/N)`.
    pub fn share(&self, worker_id: u32, burst_size: u32) -> Range<u64> {
        // u128: `points * burst_size` may not fit in 64 bits.
        let at = |i: u32| (u128::from(self.points) * u128::from(i) / u128::from(burst_size)) as u64;
        at(worker_id)..at(worker_id + 1)
    }

    /// The points of `rows`, row-major (`validate` passed).
    pub fn points(&self, rows: Range<u64>) -> Vec<f64> {
        let d = self.dimensions as usize;
        let centres: Vec<f64> = (0..self.clusters)
            .flat_map(|c| {
                let mut stream = Stream(self.seed ^ mix(!u64::from(c)));
                (0..d).map(move |_| SPREAD * (2.0 * stream.unit() - 1.0))
            })
            .collect();
        let mut points = Vec::with_capacity((rows.end - rows.start) as usize * d);
        for i in rows {
            let mut stream = Stream(self.seed ^ mix(i));
            let c = (stream.next() % u64::from(self.clusters)) as usize;
            for j in 0..d {
                let mut noise = 0.0;
                for _ in 0..NOISE_TERMS {
                    noise += stream.unit();
                }
                points.push(centres[c * d + j] + (noise - f64::from(NOISE_TERMS) / 2.0));
            }
        }
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec { points: 1000, dimensions: 3, clusters: 4, seed: 5 };

    #[test]
    fn a_point_depends_only_on_the_seed_and_its_index() {
        let whole = SPEC.points(0..SPEC.points);
        assert_eq!(whole.len(), 3000);
        for n in [1, 3, 7, 1000, 1500] {
            let mut joined = Vec::new();
            for id in 0..n {
                let rows = SPEC.share(id, n);
                joined.extend(SPEC.points(rows));
            }
            assert_eq!(joined, whole, "{n} workers");
        }
        assert_eq!(SPEC.points(10..12), whole[30..36]);
        assert_ne!(Spec { seed: 6, ..SPEC }.points(0..1), whole[..3]);
    }

    /// The sample under `data/`: this spec's points, each number written
    /// in its shortest form that reads back to the same bits.
    const SAMPLE: Spec = Spec { points: 2000, dimensions: 3, clusters: 4, seed: 10 };

    #[test]
    fn the_sample_file_is_the_generated_sample() {
        let d = SAMPLE.dimensions as usize;
        let mut expected = String::from("x,y,z\n");
        for row in SAMPLE.points(0..SAMPLE.points).chunks_exact(d) {
            let cells: Vec<String> = row.iter().map(f64::to_string).collect();
            expected += &(cells.join(",") + "\n");
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sample.csv");
        if std::env::var_os("KMEANS_WRITE_SAMPLE").is_some() {
            std::fs::write(path, &expected).expect("writes the sample");
        }
        assert_eq!(std::fs::read_to_string(path).expect("the sample exists"), expected);
    }

    #[test]
    fn points_lie_around_the_centres() {
        // Irwin–Hall noise of twelve terms is within ±6 of the centre.
        let points = SPEC.points(0..SPEC.points);
        assert!(points.iter().all(|x| x.abs() < SPREAD + 6.0));
        let mean = points.iter().sum::<f64>() / points.len() as f64;
        assert!(mean.abs() < SPREAD, "{mean}");
    }

    #[test]
    fn bad_specs_name_the_field() {
        let cases = [
            (Spec { points: 0, ..SPEC }, "generate.points must be in 1..=1099511627776, got 0"),
            (Spec { dimensions: 0, ..SPEC }, "generate.dimensions must be in 1..=1024, got 0"),
            (Spec { clusters: 0, ..SPEC }, "generate.clusters must be in 1..=65536, got 0"),
            (
                Spec { points: 1 << 30, ..SPEC },
                "generate: 1073741824 points of 3 dimensions give a worker more than 33554432 numbers; \
                 use more workers",
            ),
        ];
        for (spec, message) in cases {
            assert_eq!(spec.validate(4), Err(message.to_owned()), "{spec:?}");
        }
        assert_eq!(Spec { points: 1 << 30, ..SPEC }.validate(128), Ok(()));
    }
}
