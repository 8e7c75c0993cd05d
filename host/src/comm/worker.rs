//! The communication calls of one worker: the host side of `burst:bcm/comm`.
//!
//! Each call validates its arguments first (misuse is a [`CommError`] and
//! consumes no sequence number, so a guest may correct itself), then takes
//! the next sequence number of its kind and runs the collective's locality
//! plan:
//!
//! - `scatter`, `gather`, `all-to-all`: every part goes straight to its
//!   destination; only parts for other packs cross the backend.
//! - `broadcast`: the root's pack publishes once; every other pack reads it
//!   once, as it arrives, and shares its pieces among its workers.
//! - `all-gather`: each pack publishes its workers' parts once.
//! - `reduce`, `all-reduce`, `barrier`: each pack combines its workers'
//!   inputs first (in worker-id order); pack partials cross the backend, to
//!   the root's pack, or to pack 0 which publishes the result.
//!
//! The last three meet in a round of their pack ([`rounds`]).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::message::{Message, Payload, Reading};
use super::timeline::{CommTime, Primitive};
use super::unread::Unread;
use super::{CommError, Envelope, Kind, PackComm};
use crate::bindings::{BurstInfo, WitPackRange};
use crate::result::now_us;

mod rounds;

#[derive(Default)]
struct Counters {
    sent: HashMap<(u32, u32), u64>,
    received: HashMap<(u32, u32), u64>,
    /// Collective calls so far, of every kind: call `n` of every worker
    /// must be the same collective with the same root.
    collective: u64,
}

/// Distinct (peer, tag) channels one worker may send on, and as many it
/// may receive on: each costs the host a counter for the rest of the flare,
/// so a guest cycling through tags cannot grow the host without end.
pub const MAX_CHANNELS: usize = 1 << 16;

fn next(counter: &mut u64) -> u64 {
    let seq = *counter;
    *counter += 1;
    seq
}

/// The next sequence number on channel `(peer, tag)`.
fn next_on(channels: &mut HashMap<(u32, u32), u64>, peer: u32, tag: u32) -> Result<u64, CommError> {
    let open = channels.len();
    match channels.entry((peer, tag)) {
        Entry::Occupied(counter) => Ok(next(counter.into_mut())),
        Entry::Vacant(counter) if open < MAX_CHANNELS => Ok(next(counter.insert(0))),
        Entry::Vacant(_) => Err(CommError::InvalidArgument(format!(
            "a worker may use at most {MAX_CHANNELS} distinct (worker, tag) channels each way"
        ))),
    }
}

/// One worker's end of the communication middleware.
pub struct WorkerComm {
    pack: Arc<PackComm>,
    worker_id: u32,
    local_index: usize,
    counters: Mutex<Counters>,
    /// What `recv-more` continues.
    unread: Unread,
    in_call: AtomicBool,
    /// Its time in calls so far; locked twice per call, only by this
    /// worker's own calls, so never contended.
    time: Mutex<CommTime>,
}

/// Marks its worker as inside a comm call until dropped, and then records
/// the call.
pub(crate) struct InCall<'a> {
    comm: &'a WorkerComm,
    primitive: Option<Primitive>,
    begin_us: u64,
}

impl Drop for InCall<'_> {
    fn drop(&mut self) {
        self.comm.in_call.store(false, Ordering::Relaxed);
        let mut time = self.comm.time.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        time.record(self.primitive, self.begin_us, now_us());
    }
}

impl WorkerComm {
    /// The comm of worker `worker_id`, which must belong to `pack`.
    pub fn new(pack: Arc<PackComm>, worker_id: u32) -> Self {
        let range = pack.range();
        debug_assert!(range.workers().contains(&worker_id));
        let local_index = (worker_id - range.first) as usize;
        Self {
            pack,
            worker_id,
            local_index,
            counters: Mutex::default(),
            unread: Unread::default(),
            in_call: AtomicBool::new(false),
            time: Mutex::default(),
        }
    }

    /// Marks the worker as inside a call of `primitive` (or the
    /// continuation of one: `None`), waiting on its peers rather than
    /// computing, for as long as the guard lives.
    pub(crate) fn enter_call(&self, primitive: Option<Primitive>) -> InCall<'_> {
        self.in_call.store(true, Ordering::Relaxed);
        InCall { comm: self, primitive, begin_us: now_us() }
    }

    /// The worker's time in calls so far.
    pub fn comm_time(&self) -> CommTime {
        self.time.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether the worker is inside a comm call now.
    pub fn in_call(&self) -> bool {
        self.in_call.load(Ordering::Relaxed)
    }

    /// The pack this worker belongs to.
    pub fn pack(&self) -> &Arc<PackComm> {
        &self.pack
    }

    /// This worker's id.
    pub fn worker_id(&self) -> u32 {
        self.worker_id
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `body` as this worker's next collective call, of `kind` with
    /// `root`: the pack checks that its other workers make the same call,
    /// and learns when this worker has finished it.
    async fn collective<T, F, Fut>(&self, kind: Kind, root: Option<u32>, body: F) -> Result<T, CommError>
    where
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = Result<T, CommError>>,
    {
        let seq = next(&mut self.counters().collective);
        self.pack.enter_collective(seq, kind, root, self.local_index)?;
        let output = body(seq).await?;
        self.pack.leave_collective(seq, self.local_index)?;
        Ok(output)
    }

    fn burst_size(&self) -> u32 {
        self.pack.layout().burst_size()
    }

    fn check_worker(&self, worker_id: u32) -> Result<(), CommError> {
        if worker_id < self.burst_size() { Ok(()) } else { Err(CommError::InvalidWorker(worker_id)) }
    }

    fn check_parts<T>(&self, what: &str, parts: &[T]) -> Result<(), CommError> {
        let burst_size = self.burst_size() as usize;
        if parts.len() == burst_size {
            Ok(())
        } else {
            Err(CommError::InvalidArgument(format!(
                "{what} needs exactly {burst_size} parts (one per worker), got {}",
                parts.len()
            )))
        }
    }

    /// Every message this worker sends passes here: above the message
    /// limit, the flare fails (see [`PackComm::check_message`]).
    fn check_size(&self, lengths: impl IntoIterator<Item = usize>) -> Result<(), CommError> {
        let largest = lengths.into_iter().max().unwrap_or(0);
        self.pack.check_message(self.worker_id, largest)
    }

    /// Who this worker is.
    pub fn info(&self) -> BurstInfo {
        let layout = self.pack.layout();
        BurstInfo {
            flare_id: self.pack.flare_id().to_owned(),
            worker_id: self.worker_id,
            burst_size: layout.burst_size(),
            pack_id: self.pack.pack_id(),
            packs: layout.packs().iter().map(|p| WitPackRange { first: p.first, count: p.count }).collect(),
        }
    }

    /// Buffered send to `dest` on channel `tag`.
    ///
    /// # Errors
    /// `InvalidWorker` for a destination outside the burst; the flare's
    /// failure state otherwise.
    pub async fn send(&self, dest: u32, tag: u32, data: Payload<'_>) -> Result<(), CommError> {
        self.check_worker(dest)?;
        self.check_size([data.len()])?;
        let seq = next_on(&mut self.counters().sent, dest, tag)?;
        self.pack.route(Envelope::direct(tag, seq, self.worker_id, dest), data).await
    }

    /// The next message from `source` on channel `tag`.
    ///
    /// # Errors
    /// `InvalidWorker`, `Timeout`, or the flare's failure.
    pub async fn recv(&self, source: u32, tag: u32) -> Result<Bytes, CommError> {
        self.check_worker(source)?;
        let seq = next_on(&mut self.counters().received, source, tag)?;
        self.pack.take(Envelope::direct(tag, seq, source, self.worker_id)).await
    }

    /// Begins receiving the next message from `source` on channel `tag`:
    /// its length, and its first piece as soon as that is here. A message
    /// from another pack comes a frame at a time ([`recv_more`](Self::recv_more)
    /// reads the rest), so it never has to be whole in the host; one that
    /// arrived whole is one piece.
    ///
    /// # Errors
    /// `InvalidWorker`, `Timeout`, or the flare's failure.
    pub async fn recv_first(&self, source: u32, tag: u32) -> Result<(u64, Bytes), CommError> {
        self.check_worker(source)?;
        let seq = next_on(&mut self.counters().received, source, tag)?;
        let message = self.pack.take_message(Envelope::direct(tag, seq, source, self.worker_id)).await?;
        let mut firsts = self.unread.begin(&self.pack, vec![Reading::new(message)]).await?;
        firsts.pop().ok_or_else(|| CommError::Protocol("a receive produced no result".into()))
    }

    /// The next piece of result `index` of the last `-first` call
    /// ([`recv_first`](Self::recv_first), [`broadcast_first`](Self::broadcast_first):
    /// 0; [`all_to_all_first`](Self::all_to_all_first),
    /// [`all_gather_first`](Self::all_gather_first): the sender).
    ///
    /// # Errors
    /// `InvalidArgument` when that result has nothing left to read;
    /// `Timeout`, or the flare's failure.
    pub async fn recv_more(&self, index: u32) -> Result<Bytes, CommError> {
        self.unread.more(&self.pack, index).await
    }

    /// Part `worker_id` of the root's parts.
    ///
    /// # Errors
    /// `InvalidWorker` for a bad root; `InvalidArgument` when the root does
    /// not pass exactly `burst_size` parts or another worker passes some.
    pub async fn scatter(&self, root: u32, parts: Option<Vec<Payload<'_>>>) -> Result<Bytes, CommError> {
        self.check_worker(root)?;
        match (root == self.worker_id, &parts) {
            (true, None) => {
                return Err(CommError::InvalidArgument("the root of a scatter must pass its parts".into()));
            }
            (true, Some(parts)) => {
                self.check_parts("scatter", parts)?;
                self.check_size(parts.iter().map(Payload::len))?;
            }
            (false, Some(_)) => {
                return Err(CommError::InvalidArgument(format!("only the root ({root}) passes parts to a scatter")));
            }
            (false, None) => {}
        }
        self.collective(Kind::Scatter, Some(root), |seq| async move {
            let Some(parts) = parts else {
                return self.pack.take(Envelope::collective(Kind::Scatter, seq, root, self.worker_id)).await;
            };
            let own = parts.get(self.worker_id as usize).map(Payload::to_bytes).unwrap_or_default();
            let others = (0..).zip(parts).filter(|&(dest, _)| dest != self.worker_id);
            self.pack
                .route_all(others.map(|(dest, part)| (Envelope::collective(Kind::Scatter, seq, root, dest), part)))
                .await?;
            Ok(own)
        })
        .await
    }

    /// Every worker's data, at the root, indexed by sender.
    ///
    /// # Errors
    /// `InvalidWorker` for a bad root; the flare's failure.
    pub async fn gather(&self, root: u32, data: Payload<'_>) -> Result<Option<Vec<Bytes>>, CommError> {
        self.check_worker(root)?;
        self.check_size([data.len()])?;
        self.collective(Kind::Gather, Some(root), |seq| async move {
            if root != self.worker_id {
                self.pack.route(Envelope::collective(Kind::Gather, seq, self.worker_id, root), data).await?;
                return Ok(None);
            }
            let mut gathered = Vec::with_capacity(self.burst_size() as usize);
            for source in 0..self.burst_size() {
                gathered.push(if source == root {
                    data.to_bytes()
                } else {
                    self.pack.take(Envelope::collective(Kind::Gather, seq, source, root)).await?
                });
            }
            Ok(Some(gathered))
        })
        .await
    }

    /// Part `j` goes to worker `j`; the result is indexed by sender.
    ///
    /// # Errors
    /// `InvalidArgument` unless exactly `burst_size` parts are passed.
    pub async fn all_to_all(&self, parts: Vec<Payload<'_>>) -> Result<Vec<Bytes>, CommError> {
        let messages = self.all_to_all_messages(parts).await?;
        let mut received = Vec::with_capacity(messages.len());
        for message in messages {
            received.push(self.pack.read(Reading::new(message).rest()).await?);
        }
        Ok(received)
    }

    /// [`all_to_all`](Self::all_to_all), each result as its length and
    /// first piece; [`recv_more`](Self::recv_more) with the sender's id
    /// reads the rest of a part from another pack while it arrives.
    ///
    /// # Errors
    /// As [`all_to_all`](Self::all_to_all).
    pub async fn all_to_all_first(&self, parts: Vec<Payload<'_>>) -> Result<Vec<(u64, Bytes)>, CommError> {
        let messages = self.all_to_all_messages(parts).await?;
        self.unread.begin(&self.pack, messages.into_iter().map(Reading::new).collect()).await
    }

    /// Sends the parts and takes each sender's message as it begins.
    async fn all_to_all_messages(&self, parts: Vec<Payload<'_>>) -> Result<Vec<Message>, CommError> {
        self.check_parts("all-to-all", &parts)?;
        self.check_size(parts.iter().map(Payload::len))?;
        let me = self.worker_id;
        self.collective(Kind::AllToAll, None, |seq| async move {
            let mut own = parts.get(me as usize).map(Payload::to_bytes).unwrap_or_default();
            let others = (0..).zip(parts).filter(|&(dest, _)| dest != me);
            self.pack
                .route_all(others.map(|(dest, part)| (Envelope::collective(Kind::AllToAll, seq, me, dest), part)))
                .await?;
            let mut received = Vec::with_capacity(self.burst_size() as usize);
            for source in 0..self.burst_size() {
                received.push(if source == me {
                    Message::Whole(std::mem::take(&mut own))
                } else {
                    self.pack.take_message(Envelope::collective(Kind::AllToAll, seq, source, me)).await?
                });
            }
            Ok(received)
        })
        .await
    }
}
