//! One Lloyd step, cut where the workers meet: each worker adds its points
//! into per-cluster sums and counts ([`accumulate`]); once the all-reduce
//! has added up every worker's, [`update`] makes the new centroids, the
//! same on every worker.
//!
//! Points and centroids are row-major `f64` slices of `d` coordinates a
//! row. The sums are one vector of `k·(d+1)`: cluster `c`'s coordinate
//! sums at `c·(d+1)..c·(d+1)+d`, then its count.

/// The index of the centroid nearest to `point` by squared Euclidean
/// distance; ties go to the lowest index.
pub fn nearest(point: &[f64], centroids: &[f64]) -> usize {
    let (mut best, mut best_distance) = (0, f64::INFINITY);
    for (c, centroid) in centroids.chunks_exact(point.len()).enumerate() {
        let distance: f64 = point.iter().zip(centroid).map(|(x, m)| (x - m) * (x - m)).sum();
        // Strictly less: an equal distance keeps the lower index.
        if distance < best_distance {
            (best, best_distance) = (c, distance);
        }
    }
    best
}

/// The per-cluster sums and counts of `points` (in row order) assigned to
/// their nearest of `centroids`.
pub fn accumulate(points: &[f64], centroids: &[f64], d: usize) -> Vec<f64> {
    let k = centroids.len() / d;
    let mut sums = vec![0.0; k * (d + 1)];
    for point in points.chunks_exact(d) {
        let at = nearest(point, centroids) * (d + 1);
        for (sum, x) in sums[at..at + d].iter_mut().zip(point) {
            *sum += x;
        }
        sums[at + d] += 1.0;
    }
    sums
}

/// The outcome of one step.
pub struct Step {
    /// The new centroids.
    pub centroids: Vec<f64>,
    /// Points assigned to each cluster.
    pub sizes: Vec<u64>,
    /// The largest Euclidean distance a centroid moved.
    pub movement: f64,
}

/// The centroids after a step whose summed [`accumulate`] vectors are
/// `totals`: each cluster's mean, except that an empty cluster keeps its
/// centroid.
pub fn update(totals: &[f64], centroids: &[f64], d: usize) -> Step {
    let mut next = Vec::with_capacity(centroids.len());
    let (mut sizes, mut movement) = (Vec::new(), 0.0_f64);
    for (sums, old) in totals.chunks_exact(d + 1).zip(centroids.chunks_exact(d)) {
        let count = sums[d];
        // Counts are whole numbers below 2⁵³, so exact in an f64.
        sizes.push(count as u64);
        if count == 0.0 {
            next.extend_from_slice(old);
            continue;
        }
        let moved: f64 = sums[..d]
            .iter()
            .zip(old)
            .map(|(sum, x)| {
                let mean = sum / count;
                next.push(mean);
                (mean - x) * (mean - x)
            })
            .sum();
        movement = movement.max(moved.sqrt());
    }
    Step { centroids: next, sizes, movement }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_lowest_index() {
        let centroids = [0.0, 0.0, 2.0, 0.0, 2.0, 0.0];
        assert_eq!(nearest(&[1.0, 0.0], &centroids), 0);
        assert_eq!(nearest(&[1.5, 0.0], &centroids), 1);
        assert_eq!(nearest(&[3.0, 1.0], &centroids), 1);
    }

    #[test]
    fn sums_and_counts_add_up_per_cluster() {
        let points = [0.0, 1.0, 10.0, 10.0, 1.0, 0.0, 9.0, 11.0];
        let centroids = [0.0, 0.0, 10.0, 10.0, 50.0, 50.0];
        assert_eq!(accumulate(&points, &centroids, 2), [1.0, 1.0, 2.0, 19.0, 21.0, 2.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn an_empty_cluster_keeps_its_centroid() {
        let totals = [1.0, 1.0, 2.0, 19.0, 21.0, 2.0, 0.0, 0.0, 0.0];
        let centroids = [0.0, 0.0, 10.0, 10.0, 50.0, 50.0];
        let step = update(&totals, &centroids, 2);
        assert_eq!(step.centroids, [0.5, 0.5, 9.5, 10.5, 50.0, 50.0]);
        assert_eq!(step.sizes, [2, 2, 0]);
        assert_eq!(step.movement, 0.5_f64.sqrt());
        let still = update(&[1.0, 1.0, 2.0], &[0.5, 0.5], 2);
        assert_eq!((still.centroids, still.movement), (vec![0.5, 0.5], 0.0));
    }
}
