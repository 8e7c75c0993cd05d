//! Admission and packing: where the packs of a flare go, decided without I/O.
//!
//! A flare starts only when every one of its workers gets a slot at once
//! (all-or-nothing over every host), so its workers run simultaneously.
//! [`decide`] answers `Start` with a placement that fits the free slots
//! now, `Wait` when it would fit the hosts' slots once others finish, and
//! `Never` with a reason when it could not fit even an idle cluster. The
//! caller owns the hosts' state and applies a placement by reserving it.

use std::str::FromStr;

use crate::api::PackPlacement;

/// How workers are grouped into packs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// Fixed packs of `granularity` workers (the last holds the rest).
    Homogeneous,
    /// One pack per host, as large as that host's free slots.
    Heterogeneous,
    /// Fixed packs, merged when neighbours land on the same host.
    Mixed,
}

impl Packing {
    /// The name in requests and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Packing::Homogeneous => "homogeneous",
            Packing::Heterogeneous => "heterogeneous",
            Packing::Mixed => "mixed",
        }
    }
}

impl FromStr for Packing {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "homogeneous" => Ok(Packing::Homogeneous),
            "heterogeneous" => Ok(Packing::Heterogeneous),
            "mixed" => Ok(Packing::Mixed),
            other => Err(format!("unknown packing `{other}` (use homogeneous, heterogeneous or mixed)")),
        }
    }
}

/// A host's slots as admission sees them.
#[derive(Clone, Copy, Debug)]
pub struct HostSlots<'a> {
    /// The host's id.
    pub host: &'a str,
    /// Slots it offers.
    pub slots: u32,
    /// Slots not reserved now.
    pub free: u32,
}

/// What a flare asks for.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Workers.
    pub burst_size: u32,
    /// Workers per pack (homogeneous and mixed packing).
    pub granularity: u32,
    /// How packs are formed.
    pub packing: Packing,
    /// Every pack must be on one host (the in-process backend).
    pub one_host: bool,
}

/// What to do with a flare.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Reserve these packs' slots and start.
    Start(Vec<PackPlacement>),
    /// Fits the cluster, not its free slots now.
    Wait,
    /// Cannot fit even when every slot is free; the reason says why.
    Never(String),
}

/// Decides where a flare's packs go. Hosts are tried in the order given.
pub fn decide(hosts: &[HostSlots<'_>], shape: &Shape) -> Decision {
    let free: Vec<(&str, u32)> = hosts.iter().map(|h| (h.host, h.free)).collect();
    if let Some(placement) = place(&free, shape) {
        return Decision::Start(placement);
    }
    let idle: Vec<(&str, u32)> = hosts.iter().map(|h| (h.host, h.slots)).collect();
    match place(&idle, shape) {
        Some(_) => Decision::Wait,
        None => Decision::Never(why_never(hosts, shape)),
    }
}

fn place(free: &[(&str, u32)], shape: &Shape) -> Option<Vec<PackPlacement>> {
    if shape.one_host { free.iter().find_map(|host| place_on(&[*host], shape)) } else { place_on(free, shape) }
}

/// Packs (size, host) in worker order over `free`, or `None` if they do not fit.
fn place_on(free: &[(&str, u32)], shape: &Shape) -> Option<Vec<PackPlacement>> {
    let mut free = free.to_vec();
    let mut packs: Vec<(u32, &str)> = Vec::new();
    match shape.packing {
        Packing::Heterogeneous => {
            // Largest holes first: fewest packs, so least broker traffic.
            free.sort_by_key(|host| std::cmp::Reverse(host.1));
            let mut left = shape.burst_size;
            for (host, slots) in free {
                if left == 0 {
                    break;
                }
                let take = slots.min(left);
                if take > 0 {
                    packs.push((take, host));
                    left -= take;
                }
            }
            if left > 0 {
                return None;
            }
        }
        Packing::Homogeneous | Packing::Mixed => {
            let g = shape.granularity.max(1);
            let mut first = 0;
            while first < shape.burst_size {
                let size = g.min(shape.burst_size - first);
                let host = free.iter_mut().find(|(_, slots)| *slots >= size)?;
                host.1 -= size;
                packs.push((size, host.0));
                first += size;
            }
            if shape.packing == Packing::Mixed {
                packs.dedup_by(|next, kept| {
                    let same = next.1 == kept.1;
                    if same {
                        kept.0 += next.0;
                    }
                    same
                });
            }
        }
    }
    let mut first = 0;
    Some(
        packs
            .into_iter()
            .enumerate()
            .map(|(pack_id, (count, host))| {
                let pack = PackPlacement { pack_id: pack_id as u32, first, count, host: host.to_owned() };
                first += count;
                pack
            })
            .collect(),
    )
}

fn why_never(hosts: &[HostSlots<'_>], shape: &Shape) -> String {
    let total: u64 = hosts.iter().map(|h| u64::from(h.slots)).sum();
    let largest = hosts.iter().map(|h| h.slots).max().unwrap_or(0);
    let n = shape.burst_size;
    if shape.one_host && n > largest {
        format!(
            "the memory backend runs every pack on one host, and no host has {n} slots (the largest has {largest}); \
             use the redis or rabbitmq backend to span hosts"
        )
    } else if u64::from(n) > total {
        format!("burst size {n} is above the {total} worker slots of all hosts")
    } else if shape.packing != Packing::Heterogeneous && shape.granularity > largest {
        format!("granularity {} is above the {largest} slots of the largest host", shape.granularity)
    } else {
        format!("packs of {} workers cannot be placed on hosts of these sizes", shape.granularity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts<'a>(spec: &[(&'a str, u32, u32)]) -> Vec<HostSlots<'a>> {
        spec.iter().map(|&(host, slots, free)| HostSlots { host, slots, free }).collect()
    }

    fn shape(burst_size: u32, granularity: u32, packing: Packing) -> Shape {
        Shape { burst_size, granularity, packing, one_host: false }
    }

    /// (first, count, host) of each pack.
    fn packs(decision: Decision) -> Vec<(u32, u32, String)> {
        match decision {
            Decision::Start(placement) => placement
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    assert_eq!(p.pack_id, i as u32);
                    (p.first, p.count, p.host)
                })
                .collect(),
            other => panic!("expected a placement, got {other:?}"),
        }
    }

    fn p(first: u32, count: u32, host: &str) -> (u32, u32, String) {
        (first, count, host.to_owned())
    }

    #[test]
    fn homogeneous_packs_fill_hosts_in_order() {
        let cluster = hosts(&[("a", 4, 4), ("b", 4, 4)]);
        assert_eq!(packs(decide(&cluster, &shape(8, 4, Packing::Homogeneous))), [p(0, 4, "a"), p(4, 4, "b")]);
        assert_eq!(
            packs(decide(&cluster, &shape(7, 2, Packing::Homogeneous))),
            [p(0, 2, "a"), p(2, 2, "a"), p(4, 2, "b"), p(6, 1, "b")]
        );
    }

    #[test]
    fn mixed_merges_neighbouring_packs_on_one_host() {
        let cluster = hosts(&[("a", 4, 4), ("b", 4, 4)]);
        assert_eq!(packs(decide(&cluster, &shape(7, 2, Packing::Mixed))), [p(0, 4, "a"), p(4, 3, "b")]);
    }

    #[test]
    fn heterogeneous_takes_the_largest_holes_first() {
        let cluster = hosts(&[("a", 8, 2), ("b", 8, 5), ("c", 8, 3)]);
        assert_eq!(
            packs(decide(&cluster, &shape(9, 1, Packing::Heterogeneous))),
            [p(0, 5, "b"), p(5, 3, "c"), p(8, 1, "a")]
        );
    }

    #[test]
    fn a_flare_that_fits_only_an_idle_cluster_waits() {
        let cluster = hosts(&[("a", 4, 3), ("b", 4, 4)]);
        assert_eq!(decide(&cluster, &shape(8, 4, Packing::Homogeneous)), Decision::Wait);
        assert_eq!(decide(&cluster, &shape(8, 1, Packing::Heterogeneous)), Decision::Wait);
        // Free slots add up to 7 but no host has 4 free.
        let fragmented = hosts(&[("a", 4, 3), ("b", 4, 3)]);
        assert_eq!(decide(&fragmented, &shape(4, 4, Packing::Homogeneous)), Decision::Wait);
    }

    #[test]
    fn what_can_never_fit_is_refused_with_its_reason() {
        let cluster = hosts(&[("a", 4, 4), ("b", 4, 4)]);
        let cases = [
            (shape(9, 1, Packing::Heterogeneous), "burst size 9 is above the 8 worker slots of all hosts"),
            (shape(6, 5, Packing::Homogeneous), "granularity 5 is above the 4 slots of the largest host"),
            (shape(6, 5, Packing::Mixed), "granularity 5 is above the 4 slots of the largest host"),
            (
                Shape { one_host: true, ..shape(5, 1, Packing::Homogeneous) },
                "the memory backend runs every pack on one host, and no host has 5 slots (the largest has 4)",
            ),
        ];
        for (shape, reason) in cases {
            match decide(&cluster, &shape) {
                Decision::Never(message) => assert!(message.starts_with(reason), "{shape:?}: {message}"),
                other => panic!("{shape:?}: expected Never, got {other:?}"),
            }
        }
        assert!(matches!(decide(&[], &shape(1, 1, Packing::Homogeneous)), Decision::Never(_)));
    }

    #[test]
    fn one_host_flares_go_to_the_first_host_that_holds_them_all() {
        let cluster = hosts(&[("a", 4, 2), ("b", 8, 8)]);
        let one_host = Shape { one_host: true, ..shape(6, 3, Packing::Homogeneous) };
        assert_eq!(packs(decide(&cluster, &one_host)), [p(0, 3, "b"), p(3, 3, "b")]);
    }

    #[test]
    fn packing_names_round_trip() {
        for packing in [Packing::Homogeneous, Packing::Heterogeneous, Packing::Mixed] {
            assert_eq!(packing.as_str().parse::<Packing>(), Ok(packing));
        }
        assert!("dense".parse::<Packing>().is_err());
    }
}
