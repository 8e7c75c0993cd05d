//! Whether the workers of a flare agree on their collective calls.
//!
//! Every worker must call the same collectives in the same order with the
//! same root. Collective calls are numbered across kinds; the first local
//! worker to enter call `n` fixes what it is for the pack, and a worker
//! that enters it differently fails the flare. Between packs, a message of
//! a call that every local worker finished without taking it is an orphan
//! (see [`Mailbox`](super::super::Mailbox)): its sender called something
//! else. A worker that returns from `work` while its pack waits for it in a
//! call is named. And a pack whose workers all returned waits, before it
//! reports, until every other pack says it is done too, so that a stray
//! message cannot arrive after the pack has declared success.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{EVERY_PACK, Envelope, Failure, FailureKind, Kind, PackComm, lock};
use crate::comm::CommError;

/// How long after the deadline a pack whose workers all returned still
/// waits to hear that the other packs finished: the worker to blame fails
/// at the deadline (or just after) in its own pack, and that failure must
/// have time to arrive so that it, not this wait, is what the flare reports.
pub const CONCLUDE_SLACK: Duration = Duration::from_secs(1);

/// The rule a disagreement between workers breaks.
const SAME_CALLS: &str = "every worker must call the same collectives in the same order with the same root";

/// The collective calls of a pack's workers, as far as they agree so far.
#[derive(Default)]
pub(super) struct Calls {
    /// Calls some local worker entered and some has not, by number.
    open: HashMap<u64, Call>,
    /// Local workers that returned from `work`, and how many calls each made.
    returned: Vec<(u32, u64)>,
}

/// How many collective calls each local worker has finished, and how many
/// workers stand at each count, so the pack's watermark (the fewest any
/// worker finished) is a lookup, not a scan of the pack per call.
pub(super) struct Progress {
    finished: Vec<u64>,
    workers_at: BTreeMap<u64, u32>,
}

impl Progress {
    /// `workers` local workers, none of which finished a call.
    pub(super) fn new(workers: usize) -> Self {
        Self { finished: vec![0; workers], workers_at: BTreeMap::from([(0, workers as u32)]) }
    }

    /// Calls local worker `local_index` has finished.
    fn made(&self, local_index: usize) -> u64 {
        self.finished[local_index]
    }

    /// Records that local worker `local_index` finished call `seq`;
    /// returns the new watermark.
    fn finish(&mut self, local_index: usize, seq: u64) -> u64 {
        let before = std::mem::replace(&mut self.finished[local_index], seq + 1);
        if let Some(count) = self.workers_at.get_mut(&before) {
            *count -= 1;
            if *count == 0 {
                self.workers_at.remove(&before);
            }
        }
        *self.workers_at.entry(seq + 1).or_default() += 1;
        self.workers_at.first_key_value().map_or(0, |(&fewest, _)| fewest)
    }
}

/// A collective call as the first local worker to enter it made it.
struct Call {
    kind: Kind,
    root: Option<u32>,
    first: u32,
    entered: u32,
}

impl PackComm {
    /// Local worker `local_index` enters collective call `seq`, of `kind`
    /// with `root`. Every worker must call collectives in the same order
    /// with the same root: a worker of this pack that disagrees with the
    /// first one to enter the call fails the flare, named.
    pub(crate) fn enter_collective(
        &self,
        seq: u64,
        kind: Kind,
        root: Option<u32>,
        local_index: usize,
    ) -> Result<(), CommError> {
        let size = self.range().count;
        let worker_id = self.range().first + local_index as u32;
        let mut calls = lock(&self.calls);
        let call = calls.open.entry(seq).or_insert(Call { kind, root, first: worker_id, entered: 0 });
        let (first_kind, first_root, first) = (call.kind, call.root, call.first);
        call.entered += 1;
        if call.entered == size {
            calls.open.remove(&seq);
        }
        let disagreement = if (first_kind, first_root) != (kind, root) {
            Some((
                worker_id,
                format!(
                    "worker {worker_id} called {} as collective call #{seq}, worker {first} called {}: {SAME_CALLS}",
                    describe(kind, root),
                    describe(first_kind, first_root),
                ),
            ))
        } else {
            calls.returned.iter().find(|(_, made)| *made <= seq).map(|&(gone, _)| {
                (gone, format!("worker {gone} returned without calling {} (collective call #{seq}), which worker {worker_id} called", describe(kind, root)))
            })
        };
        drop(calls);
        match disagreement {
            None => Ok(()),
            Some((culprit, message)) => {
                self.fail(Failure::new(Some(culprit), FailureKind::Protocol, message.clone()));
                Err(if culprit == worker_id { CommError::InvalidArgument(message) } else { self.cancellation_error() })
            }
        }
    }

    /// Local worker `local_index` finished collective call `seq`: once every
    /// local worker has, a message of that call nobody took is an orphan.
    pub(crate) fn leave_collective(&self, seq: u64, local_index: usize) -> Result<(), CommError> {
        let watermark = lock(&self.finished).finish(local_index, seq);
        let orphan = lock(&self.mailbox).advance(watermark);
        match orphan {
            Some(envelope) => {
                self.orphaned(&envelope);
                Err(self.cancellation_error())
            }
            None => Ok(()),
        }
    }

    /// Local worker `local_index` returned from `work`: a collective call
    /// another local worker entered, or enters later, and it did not will
    /// never complete; the flare fails naming the worker that returned.
    pub fn worker_returned(&self, local_index: usize) {
        let made = lock(&self.finished).made(local_index);
        let worker_id = self.range().first + local_index as u32;
        let mut calls = lock(&self.calls);
        calls.returned.push((worker_id, made));
        let missed =
            calls.open.iter().filter(|(seq, _)| **seq >= made).min_by_key(|(seq, _)| **seq).map(|(seq, call)| {
                format!(
                    "worker {worker_id} returned without calling {} (collective call #{seq}), which worker {} called",
                    describe(call.kind, call.root),
                    call.first
                )
            });
        drop(calls);
        if let Some(message) = missed {
            self.fail(Failure::new(Some(worker_id), FailureKind::Protocol, message));
        }
    }

    /// Once every local worker has returned: tells the other packs this
    /// pack sends nothing more and waits (until the deadline) to hear the
    /// same from each of them, so that everything they sent here has
    /// arrived; then a collective message still unread is an orphan. A
    /// flare whose packs called different collectives fails here, in
    /// every pack, instead of returning divergent results.
    pub async fn conclude(&self) {
        let others = self.layout.pack_count() - 1;
        if others == 0 || self.failure().is_some() {
            return;
        }
        let told_and_heard = async {
            self.backend.done().await?;
            loop {
                let changed = self.done_changed.notified();
                if lock(&self.done).len() as u32 >= others {
                    return Ok(());
                }
                changed.await;
            }
        };
        tokio::select! {
            told = told_and_heard => {
                if let Err(error) = told {
                    self.backend_failed(&error);
                    return;
                }
            }
            () = self.cancel.cancelled() => return,
            () = tokio::time::sleep_until(self.deadline + CONCLUDE_SLACK) => {
                let done = lock(&self.done).clone();
                let missing: Vec<String> =
                    (0..self.layout.pack_count()).filter(|p| *p != self.pack_id && !done.contains(p)).map(|p| p.to_string()).collect();
                let message = format!("the deadline passed before pack(s) {} finished", missing.join(", "));
                self.fail(Failure::new(None, FailureKind::Deadline, message));
                return;
            }
        }
        let orphan = lock(&self.mailbox).orphan_below(u64::MAX);
        if let Some(envelope) = orphan {
            self.orphaned(&envelope);
        }
    }

    /// Fails the flare over a collective message nobody will take.
    pub(super) fn orphaned(&self, envelope: &Envelope) {
        let dest = if envelope.dest == EVERY_PACK {
            format!("pack {}", self.pack_id)
        } else {
            format!("worker {}", envelope.dest)
        };
        let message = format!(
            "worker {} sent {dest} a message of {:?} (collective call #{}) that no worker of pack {} takes: {SAME_CALLS}",
            envelope.source, envelope.kind, envelope.seq, self.pack_id
        );
        self.fail(Failure::new(Some(envelope.source), FailureKind::Protocol, message));
    }
}

/// A collective as a person reads it: its kind, and its root if it has one.
fn describe(kind: Kind, root: Option<u32>) -> String {
    match root {
        Some(root) => format!("{kind:?} with root {root}"),
        None => format!("{kind:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::Progress;

    #[test]
    fn the_watermark_is_the_fewest_calls_any_worker_finished() {
        let mut progress = Progress::new(3);
        assert_eq!(progress.finish(0, 0), 0);
        assert_eq!(progress.finish(1, 0), 0);
        assert_eq!(progress.finish(2, 0), 1, "all three finished call 0");
        assert_eq!(progress.finish(0, 1), 1);
        assert_eq!(progress.finish(0, 2), 1, "one worker may run ahead");
        assert_eq!(progress.finish(1, 1), 1);
        assert_eq!(progress.finish(2, 1), 2);
        assert_eq!((progress.made(0), progress.made(2)), (3, 2));
    }
}
