//! The address of a message.
//!
//! `(kind, tag, seq, source, dest)` is unique within a flare:
//! point-to-point messages count `seq` per (source, dest, tag); collectives
//! count `seq` per call, across kinds (all workers call collectives in the
//! same order, so call `seq` is the same call everywhere). Pack-level messages use a pack's leader as `source`/`dest`, and a
//! message published to every pack uses [`EVERY_PACK`] as `dest`.

/// `dest` of a message published once for every other pack.
pub const EVERY_PACK: u32 = u32::MAX;

/// Which primitive a message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// Point-to-point `send`/`recv`.
    Direct = 1,
    /// `broadcast`.
    Broadcast = 2,
    /// `scatter`.
    Scatter = 3,
    /// `gather`.
    Gather = 4,
    /// `all-gather`.
    AllGather = 5,
    /// `all-to-all`.
    AllToAll = 6,
    /// `reduce`.
    Reduce = 7,
    /// `all-reduce`.
    AllReduce = 8,
    /// `barrier`.
    Barrier = 9,
}

impl Kind {
    /// Number of kinds; sizes per-kind counter tables.
    pub const COUNT: usize = 9;

    /// Every kind, in wire order.
    pub const ALL: [Kind; Self::COUNT] = [
        Kind::Direct,
        Kind::Broadcast,
        Kind::Scatter,
        Kind::Gather,
        Kind::AllGather,
        Kind::AllToAll,
        Kind::Reduce,
        Kind::AllReduce,
        Kind::Barrier,
    ];

    /// The kind with wire code `code`, if any.
    pub fn from_code(code: u8) -> Option<Kind> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

/// The unique address of one message of a flare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Envelope {
    /// Which primitive.
    pub kind: Kind,
    /// User channel of a point-to-point message; 0 for collectives.
    pub tag: u32,
    /// Sequence number (per pair and tag, or per collective call).
    pub seq: u64,
    /// Sending worker (or pack leader).
    pub source: u32,
    /// Receiving worker, pack leader, or [`EVERY_PACK`].
    pub dest: u32,
}

impl Envelope {
    /// A point-to-point message.
    pub fn direct(tag: u32, seq: u64, source: u32, dest: u32) -> Self {
        Self { kind: Kind::Direct, tag, seq, source, dest }
    }

    /// A message of a collective call.
    pub fn collective(kind: Kind, seq: u64, source: u32, dest: u32) -> Self {
        Self { kind, tag: 0, seq, source, dest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_codes_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_code(kind as u8), Some(kind));
        }
        assert_eq!(Kind::from_code(0), None);
        assert_eq!(Kind::from_code(10), None);
    }
}
