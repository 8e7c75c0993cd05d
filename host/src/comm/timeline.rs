//! What a worker's comm calls leave behind for the dashboard: the time it
//! spent inside them, how many calls of each primitive it made, and when it
//! was inside one, as a bounded list of spans.
//!
//! Pure bookkeeping, no I/O. The list is bounded per worker so that a worker
//! making millions of small calls costs the results document no more than
//! one making a few hundred: once it is full, spans whose gap is under a
//! resolution are merged and the resolution doubles until half the list is
//! free again. A merged gap is drawn as waiting, so the picture is exact up
//! to the resolution; the total stays exact.

/// The primitives counted, named as in the WIT contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Primitive {
    /// `send`.
    Send,
    /// `recv`, `recv-first`.
    Recv,
    /// `broadcast`, `broadcast-first`.
    Broadcast,
    /// `scatter`.
    Scatter,
    /// `gather`.
    Gather,
    /// `all-gather`, `all-gather-first`.
    AllGather,
    /// `all-to-all`, `all-to-all-first`.
    AllToAll,
    /// `reduce`.
    Reduce,
    /// `all-reduce`.
    AllReduce,
    /// `barrier`.
    Barrier,
}

impl Primitive {
    /// Number of primitives; sizes the call counters.
    pub const COUNT: usize = 10;

    /// Every primitive, in counter order.
    pub const ALL: [Primitive; Self::COUNT] = [
        Primitive::Send,
        Primitive::Recv,
        Primitive::Broadcast,
        Primitive::Scatter,
        Primitive::Gather,
        Primitive::AllGather,
        Primitive::AllToAll,
        Primitive::Reduce,
        Primitive::AllReduce,
        Primitive::Barrier,
    ];

    /// Its name in the contract and in results.
    pub fn name(self) -> &'static str {
        match self {
            Primitive::Send => "send",
            Primitive::Recv => "recv",
            Primitive::Broadcast => "broadcast",
            Primitive::Scatter => "scatter",
            Primitive::Gather => "gather",
            Primitive::AllGather => "all-gather",
            Primitive::AllToAll => "all-to-all",
            Primitive::Reduce => "reduce",
            Primitive::AllReduce => "all-reduce",
            Primitive::Barrier => "barrier",
        }
    }

    /// The primitive a call of the WIT function `function` is, if it starts
    /// one (`recv-more` continues a call and is not counted again).
    pub fn of_function(function: &str) -> Option<Primitive> {
        let base = function.strip_suffix("-first").unwrap_or(function);
        Self::ALL.into_iter().find(|p| p.name() == base)
    }
}

/// Most spans one worker keeps.
pub const MAX_COMM_SPANS: usize = 256;

/// One worker's time in comm calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommTime {
    /// Microseconds spent inside comm calls, in all.
    pub total_us: u64,
    /// Calls made, per primitive in [`Primitive::ALL`] order.
    pub calls: [u64; Primitive::COUNT],
    /// When the worker was inside calls: `(begin, end)` in microseconds
    /// since the Unix epoch, sorted and disjoint, gaps up to `resolution_us`
    /// merged.
    pub spans: Vec<(u64, u64)>,
    /// Gaps between calls up to this long are not kept.
    resolution_us: u64,
}

impl CommTime {
    /// Notes a call (or, with `None`, the continuation of one) that ran
    /// from `begin_us` to `end_us`.
    pub fn record(&mut self, primitive: Option<Primitive>, begin_us: u64, end_us: u64) {
        let end_us = end_us.max(begin_us);
        self.total_us += end_us - begin_us;
        if let Some(primitive) = primitive {
            self.calls[primitive as usize] += 1;
        }
        match self.spans.last_mut() {
            // The wall clock may step back; such a call joins the last span.
            Some(last) if begin_us.saturating_sub(last.1) <= self.resolution_us => last.1 = last.1.max(end_us),
            _ => self.spans.push((begin_us, end_us)),
        }
        if self.spans.len() > MAX_COMM_SPANS {
            self.coarsen();
        }
    }

    /// Number of calls, of every primitive.
    pub fn call_count(&self) -> u64 {
        self.calls.iter().sum()
    }

    fn coarsen(&mut self) {
        while self.spans.len() > MAX_COMM_SPANS / 2 {
            self.resolution_us = (self.resolution_us * 2).max(1);
            let resolution = self.resolution_us;
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.spans.len());
            for &(begin, end) in &self.spans {
                match merged.last_mut() {
                    Some(last) if begin.saturating_sub(last.1) <= resolution => last.1 = last.1.max(end),
                    _ => merged.push((begin, end)),
                }
            }
            self.spans = merged;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_map_to_their_primitive() {
        assert_eq!(Primitive::of_function("send"), Some(Primitive::Send));
        assert_eq!(Primitive::of_function("recv-first"), Some(Primitive::Recv));
        assert_eq!(Primitive::of_function("all-to-all-first"), Some(Primitive::AllToAll));
        assert_eq!(Primitive::of_function("all-reduce"), Some(Primitive::AllReduce));
        assert_eq!(Primitive::of_function("recv-more"), None);
        assert_eq!(Primitive::of_function("info"), None);
    }

    #[test]
    fn calls_are_counted_and_touching_spans_joined() {
        let mut time = CommTime::default();
        time.record(Some(Primitive::Send), 100, 110);
        time.record(None, 110, 115);
        time.record(Some(Primitive::Barrier), 200, 230);
        assert_eq!(time.total_us, 45);
        assert_eq!(time.call_count(), 2);
        assert_eq!(time.calls[Primitive::Barrier as usize], 1);
        assert_eq!(time.spans, vec![(100, 115), (200, 230)]);
    }

    #[test]
    fn many_calls_stay_bounded_and_the_total_exact() {
        let mut time = CommTime::default();
        // 10,000 calls of 3 µs, 7 µs apart, then one long compute gap and a
        // last call: the gap must survive every coarsening.
        for i in 0..10_000u64 {
            time.record(Some(Primitive::AllReduce), i * 10, i * 10 + 3);
        }
        time.record(Some(Primitive::Barrier), 1_000_000, 1_000_500);
        assert!(time.spans.len() <= MAX_COMM_SPANS, "{} spans", time.spans.len());
        assert_eq!(time.total_us, 10_000 * 3 + 500);
        assert_eq!(time.call_count(), 10_001);
        assert_eq!(time.spans.first().map(|s| s.0), Some(0));
        assert_eq!(time.spans.last(), Some(&(1_000_000, 1_000_500)));
        assert!(time.spans.windows(2).all(|w| w[0].1 < w[1].0), "sorted and disjoint");
    }

    #[test]
    fn a_clock_stepping_back_never_makes_a_negative_span() {
        let mut time = CommTime::default();
        time.record(Some(Primitive::Recv), 500, 400);
        time.record(Some(Primitive::Recv), 300, 350);
        assert_eq!(time.total_us, 50);
        assert_eq!(time.spans, vec![(500, 500)]);
    }
}
