//! How the workers of a flare are grouped into packs.
//!
//! Packs cover worker ids `0..burst_size` in order with contiguous ranges, so
//! a worker's pack is found by binary search and a pack's *leader* (the
//! address its pack-level messages use) is its first worker. Pure data: no
//! I/O, safe to build from a hostile request (sizes are capped).

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Largest burst a flare may ask for; bounds every per-worker table the
/// runtime allocates from a request's numbers.
pub const MAX_BURST_SIZE: u32 = 100_000;

/// A contiguous range of worker ids that share one pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRange {
    /// First worker id of the pack.
    pub first: u32,
    /// Number of workers in the pack (at least 1).
    pub count: u32,
}

impl PackRange {
    /// The worker ids of this pack.
    pub fn workers(self) -> Range<u32> {
        self.first..self.first + self.count
    }
}

/// Why a layout cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// The burst size is zero.
    #[error("burst size must be at least 1")]
    EmptyBurst,
    /// The burst size is above [`MAX_BURST_SIZE`].
    #[error("burst size {0} is above the maximum of {MAX_BURST_SIZE}")]
    BurstTooLarge(u64),
    /// The granularity is zero or above the burst size.
    #[error("granularity {granularity} must be between 1 and the burst size {burst_size}")]
    BadGranularity {
        /// The requested granularity.
        granularity: u32,
        /// The burst size it was applied to.
        burst_size: u32,
    },
    /// A pack of a heterogeneous layout is empty.
    #[error("pack {0} is empty")]
    EmptyPack(usize),
}

/// The packs of one flare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackLayout {
    burst_size: u32,
    packs: Vec<PackRange>,
}

impl PackLayout {
    /// Fixed packs of `granularity` workers; the last pack holds the rest
    /// when `granularity` does not divide `burst_size`.
    ///
    /// ```
    /// let layout = burst_host::PackLayout::homogeneous(10, 4).unwrap();
    /// let sizes: Vec<u32> = layout.packs().iter().map(|p| p.count).collect();
    /// assert_eq!(sizes, [4, 4, 2]);
    /// assert_eq!(layout.pack_of(9), 2);
    /// assert_eq!(layout.leader(1), 4);
    /// ```
    ///
    /// # Errors
    /// [`LayoutError`] when the burst is empty or too large, or the
    /// granularity is 0 or above the burst size.
    pub fn homogeneous(burst_size: u32, granularity: u32) -> Result<Self, LayoutError> {
        check_burst_size(u64::from(burst_size))?;
        if granularity == 0 || granularity > burst_size {
            return Err(LayoutError::BadGranularity { granularity, burst_size });
        }
        let packs = (0..burst_size)
            .step_by(granularity as usize)
            .map(|first| PackRange { first, count: granularity.min(burst_size - first) })
            .collect();
        Ok(Self { burst_size, packs })
    }

    /// Packs of the given sizes, in order.
    ///
    /// # Errors
    /// [`LayoutError`] when a size is 0 or the total is empty or too large.
    pub fn from_sizes(sizes: &[u32]) -> Result<Self, LayoutError> {
        let total: u64 = sizes.iter().map(|&s| u64::from(s)).sum();
        check_burst_size(total)?;
        let mut packs = Vec::with_capacity(sizes.len());
        let mut first = 0;
        for (index, &count) in sizes.iter().enumerate() {
            if count == 0 {
                return Err(LayoutError::EmptyPack(index));
            }
            packs.push(PackRange { first, count });
            first += count;
        }
        Ok(Self { burst_size: first, packs })
    }

    /// Number of workers in the flare.
    pub fn burst_size(&self) -> u32 {
        self.burst_size
    }

    /// Number of packs.
    pub fn pack_count(&self) -> u32 {
        self.packs.len() as u32
    }

    /// Every pack, indexed by pack id.
    pub fn packs(&self) -> &[PackRange] {
        &self.packs
    }

    /// The pack with id `pack_id`; panics if it does not exist, which is a
    /// bug of the caller (pack ids come from this layout).
    pub fn pack(&self, pack_id: u32) -> PackRange {
        self.packs[pack_id as usize]
    }

    /// The pack that holds `worker_id` (which must be below the burst size).
    pub fn pack_of(&self, worker_id: u32) -> u32 {
        debug_assert!(worker_id < self.burst_size);
        (self.packs.partition_point(|p| p.first <= worker_id) - 1) as u32
    }

    /// The worker whose id addresses pack-level messages of `pack_id`.
    pub fn leader(&self, pack_id: u32) -> u32 {
        self.pack(pack_id).first
    }
}

fn check_burst_size(size: u64) -> Result<(), LayoutError> {
    match size {
        0 => Err(LayoutError::EmptyBurst),
        s if s > u64::from(MAX_BURST_SIZE) => Err(LayoutError::BurstTooLarge(s)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homogeneous_packs_keep_the_remainder_last() {
        let layout = PackLayout::homogeneous(17, 4).expect("valid layout");
        let counts: Vec<u32> = layout.packs().iter().map(|p| p.count).collect();
        assert_eq!(counts, [4, 4, 4, 4, 1]);
        assert_eq!(layout.pack_of(0), 0);
        assert_eq!(layout.pack_of(3), 0);
        assert_eq!(layout.pack_of(4), 1);
        assert_eq!(layout.pack_of(16), 4);
        assert_eq!(layout.leader(2), 8);
    }

    #[test]
    fn every_worker_is_in_the_pack_that_lists_it() {
        let layout = PackLayout::from_sizes(&[3, 1, 5, 2]).expect("valid layout");
        for (pack_id, pack) in layout.packs().iter().enumerate() {
            for worker in pack.workers() {
                assert_eq!(layout.pack_of(worker), pack_id as u32);
            }
        }
        assert_eq!(layout.burst_size(), 11);
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert_eq!(PackLayout::homogeneous(0, 1), Err(LayoutError::EmptyBurst));
        assert_eq!(PackLayout::homogeneous(4, 5), Err(LayoutError::BadGranularity { granularity: 5, burst_size: 4 }));
        assert_eq!(PackLayout::homogeneous(4, 0), Err(LayoutError::BadGranularity { granularity: 0, burst_size: 4 }));
        assert_eq!(
            PackLayout::homogeneous(MAX_BURST_SIZE + 1, 1),
            Err(LayoutError::BurstTooLarge(u64::from(MAX_BURST_SIZE) + 1))
        );
        assert_eq!(PackLayout::from_sizes(&[2, 0]), Err(LayoutError::EmptyPack(1)));
        assert_eq!(
            PackLayout::from_sizes(&[u32::MAX, u32::MAX]),
            Err(LayoutError::BurstTooLarge(2 * u64::from(u32::MAX)))
        );
    }
}
