//! State shared by the workers of one pack in this process.
//!
//! A `PackComm` owns the pack's [`Mailbox`], its endpoint on the remote
//! [`Backend`] (read by one pump task that feeds the mailbox), the
//! *rounds* of collectives in progress (where local workers meet so that the
//! pack crosses to other packs once, not once per worker), the byte counters,
//! and the flare's failure state: the first failure cancels every wait of the
//! pack and is told to the other packs through the backend.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::try_join_all;
use tokio::sync::{Barrier, Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::message::{Incomplete, Message, Payload, Reading, SharedMessage};
use super::{
    Account, Backend, BackendError, CommError, Delivered, EVERY_PACK, Envelope, Inbound, Kind, Mailbox, Take, within,
};
use crate::{ByteCounts, Failure, FailureKind, Limits, MAX_TRAFFIC_PACKS, PackLayout, PackRange, PackTraffic};

/// How long telling the other packs of a failure, and deleting what the
/// pack holds in the broker, may each take once the workers have ended: a
/// broker that stops answering delays the end of a flare by at most twice
/// this, and what could not be deleted is left to expire.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(3);

/// What every local worker of a collective round gets: the pack-level
/// results, which each worker reads for itself (a result from another pack
/// as it arrives).
pub(crate) type RoundOutput = Result<Arc<Vec<SharedMessage>>, CommError>;

struct Round {
    inputs: Vec<Option<Bytes>>,
    arrived: usize,
    waiters: Vec<oneshot::Sender<RoundOutput>>,
}

/// The communication state of one pack of a flare.
pub struct PackComm {
    flare_id: Arc<str>,
    layout: Arc<PackLayout>,
    pack_id: u32,
    deadline: Instant,
    limits: Limits,
    backend: Arc<dyn Backend>,
    mailbox: Mutex<Mailbox>,
    rounds: Mutex<HashMap<(Kind, u64), Round>>,
    /// Collective calls some local worker has entered and some has not.
    calls: Mutex<Calls>,
    /// Per local worker, the collective calls it has finished.
    finished: Mutex<Progress>,
    /// The other packs that said they will send nothing more.
    done: Mutex<HashSet<u32>>,
    done_changed: Notify,
    cancel: CancellationToken,
    failure: OnceLock<Failure>,
    local_bytes: AtomicU64,
    remote_bytes: AtomicU64,
    /// Payload bytes read from each other pack's workers, when the flare
    /// has at most [`MAX_TRAFFIC_PACKS`] packs (else empty).
    received_from: Box<[AtomicU64]>,
    start_gate: Barrier,
    abort_task: Mutex<Option<JoinHandle<()>>>,
}

mod agreement;

pub use agreement::CONCLUDE_SLACK;
use agreement::{Calls, Progress};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps are left consistent at every await-free step, so a
    // panic elsewhere while holding the lock does not invalidate them.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PackComm {
    /// The pack `pack_id` of `layout`, talking to other packs through
    /// `backend`, its workers bound by `limits`.
    pub fn new(
        flare_id: Arc<str>,
        layout: Arc<PackLayout>,
        pack_id: u32,
        backend: Arc<dyn Backend>,
        deadline: Instant,
        limits: Limits,
    ) -> Arc<Self> {
        Arc::new(Self {
            flare_id,
            layout: Arc::clone(&layout),
            pack_id,
            deadline,
            limits,
            backend,
            mailbox: Mutex::new(Mailbox::new(limits.buffered_bytes)),
            rounds: Mutex::default(),
            calls: Mutex::default(),
            finished: Mutex::new(Progress::new(layout.pack(pack_id).count as usize)),
            done: Mutex::default(),
            done_changed: Notify::new(),
            cancel: CancellationToken::new(),
            failure: OnceLock::new(),
            local_bytes: AtomicU64::new(0),
            remote_bytes: AtomicU64::new(0),
            received_from: if layout.pack_count() <= MAX_TRAFFIC_PACKS {
                (0..layout.pack_count()).map(|_| AtomicU64::new(0)).collect()
            } else {
                Box::default()
            },
            start_gate: Barrier::new(layout.pack(pack_id).count as usize),
            abort_task: Mutex::default(),
        })
    }

    /// The flare's id.
    pub fn flare_id(&self) -> &str {
        &self.flare_id
    }

    /// The flare's pack layout.
    pub fn layout(&self) -> &PackLayout {
        &self.layout
    }

    /// This pack's id.
    pub fn pack_id(&self) -> u32 {
        self.pack_id
    }

    /// This pack's workers.
    pub fn range(&self) -> PackRange {
        self.layout.pack(self.pack_id)
    }

    /// The flare's deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Payload bytes this pack moved so far.
    pub fn bytes(&self) -> ByteCounts {
        ByteCounts {
            local: self.local_bytes.load(Ordering::Relaxed),
            remote: self.remote_bytes.load(Ordering::Relaxed),
            framing: self.backend.framing_bytes(),
            written: self.backend.written_bytes(),
        }
    }

    /// The bytes this pack received from each pack of the flare, its own
    /// entry being what moved inside it; `None` when the flare has more
    /// than [`MAX_TRAFFIC_PACKS`] packs.
    pub fn traffic(&self) -> Option<PackTraffic> {
        if self.received_from.is_empty() {
            return None;
        }
        let mut from: Vec<u64> = self.received_from.iter().map(|bytes| bytes.load(Ordering::Relaxed)).collect();
        from[self.pack_id as usize] = self.local_bytes.load(Ordering::Relaxed);
        Some(PackTraffic { pack_id: self.pack_id, from })
    }

    /// The first failure of the flare seen by this pack.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.get()
    }

    /// Resolves once the flare has failed.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Returns once every worker of the pack is instantiated, so that the
    /// pack's workers enter `work` together; `false` if the flare failed
    /// first (a worker could not be instantiated).
    pub async fn ready_to_start(&self) -> bool {
        tokio::select! {
            _ = self.start_gate.wait() => true,
            _ = self.cancel.cancelled() => false,
        }
    }

    /// Records a failure that happened in this pack, releases every wait of
    /// the pack, and tells the other packs.
    pub fn fail(&self, failure: Failure) {
        let first = self.failure.set(failure.clone()).is_ok();
        self.cancel.cancel();
        if first && self.layout.pack_count() > 1 {
            let backend = Arc::clone(&self.backend);
            let flare_id = Arc::clone(&self.flare_id);
            let task = tokio::spawn(async move {
                if let Err(error) = backend.abort(failure).await {
                    tracing::warn!(flare_id = %flare_id, %error, "could not tell the other packs that the flare failed");
                }
            });
            *lock(&self.abort_task) = Some(task);
        }
    }

    /// The error a wait returns once the flare has failed.
    pub fn cancellation_error(&self) -> CommError {
        let Some(failure) = self.failure.get() else {
            return CommError::Cancelled;
        };
        match (failure.kind, failure.worker_id) {
            (FailureKind::Deadline, _) => CommError::Timeout,
            (FailureKind::Backend, _) => CommError::Backend(failure.message.clone()),
            (FailureKind::Protocol, _) => CommError::Protocol(failure.message.clone()),
            (_, Some(worker_id)) => CommError::PeerFailed(worker_id),
            (_, None) => CommError::Cancelled,
        }
    }

    /// Waits for `future` unless the flare fails first. The deadline is
    /// enforced per worker, by whoever runs it (see `flare::run_worker`).
    pub(crate) async fn wait<T>(
        &self,
        future: impl Future<Output = Result<T, oneshot::error::RecvError>>,
    ) -> Result<T, CommError> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(self.cancellation_error()),
            received = future => received.map_err(|_| self.cancellation_error()),
        }
    }

    /// Refuses a message above the message limit from worker `worker_id`:
    /// the flare fails with `message_limit` naming it, and the call that
    /// tried gets `too-large`.
    pub(crate) fn check_message(&self, worker_id: u32, len: usize) -> Result<(), CommError> {
        let limit = self.limits.message_bytes;
        if len as u64 <= limit {
            return Ok(());
        }
        let message = format!("tried to send a message of {len} bytes; the limit is {limit}");
        self.fail(Failure::new(Some(worker_id), FailureKind::MessageLimit, message));
        Err(CommError::TooLarge(len as u64))
    }

    /// Stores or hands over a message that reached this pack. A message
    /// that would put its account over the buffered-bytes limit fails the
    /// flare, naming the worker that sent it.
    fn deliver(&self, envelope: Envelope, message: Message) -> Result<(), CommError> {
        let delivered = lock(&self.mailbox).deliver(envelope, message);
        if delivered == Delivered::Orphan {
            self.orphaned(&envelope);
            return Err(self.cancellation_error());
        }
        let Delivered::OverLimit { account, buffered } = delivered else { return Ok(()) };
        let limit = self.limits.buffered_bytes;
        let message = match account {
            Account::To(dest) => format!(
                "sent worker {dest} more than it received: {buffered} bytes would wait in the host, the limit is {limit}"
            ),
            Account::From(_) => format!(
                "ran collective calls ahead of pack {}: {buffered} bytes of its messages would wait there, the limit \
                 is {limit}",
                self.pack_id
            ),
        };
        self.fail(Failure::new(Some(envelope.source), FailureKind::MessageLimit, message));
        Err(self.cancellation_error())
    }

    /// Adds `bytes` to the local byte count.
    pub(crate) fn count_local(&self, bytes: u64) {
        self.local_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Delivers a message to the worker (or pack leader) `envelope.dest`:
    /// through memory when it is in this pack (a borrowed payload is copied
    /// into a host buffer of its size), through the backend otherwise.
    pub(crate) async fn route(&self, envelope: Envelope, payload: Payload<'_>) -> Result<(), CommError> {
        if self.cancel.is_cancelled() {
            // Nothing more leaves a failed pack: its peers may have closed.
            return Err(self.cancellation_error());
        }
        let to_pack = self.layout.pack_of(envelope.dest);
        if to_pack == self.pack_id {
            self.count_local(payload.len() as u64);
            return self.deliver(envelope, Message::Whole(payload.to_bytes()));
        }
        let sent = self.backend.send(to_pack, envelope, payload).await;
        sent.map_err(|error| self.backend_failed(&error))
    }

    /// Routes several messages at once: local ones are delivered at once,
    /// remote ones are all in flight together rather than one round trip
    /// after another.
    pub(crate) async fn route_all(
        &self,
        messages: impl IntoIterator<Item = (Envelope, Payload<'_>)>,
    ) -> Result<(), CommError> {
        try_join_all(messages.into_iter().map(|(envelope, payload)| self.route(envelope, payload))).await.map(drop)
    }

    /// Publishes a pack-level message that every other pack reads once.
    pub(crate) async fn publish(&self, envelope: Envelope, payload: Bytes) -> Result<(), CommError> {
        debug_assert_eq!(envelope.dest, EVERY_PACK);
        if self.layout.pack_count() == 1 {
            return Ok(());
        }
        let published = self.backend.publish(envelope, payload).await;
        published.map_err(|error| self.backend_failed(&error))
    }

    /// Takes the message addressed by `envelope`, whole, waiting for it if
    /// needed.
    pub(crate) async fn take(&self, envelope: Envelope) -> Result<Bytes, CommError> {
        let message = self.take_message(envelope).await?;
        self.read(Reading::new(message).rest()).await
    }

    /// Takes the message addressed by `envelope` as soon as it begins to
    /// arrive.
    pub(crate) async fn take_message(&self, envelope: Envelope) -> Result<Message, CommError> {
        let take = lock(&self.mailbox).take(envelope);
        match take {
            Take::Ready(message) => Ok(message),
            Take::Pending(receiver) => self.wait(receiver).await,
        }
    }

    /// Waits for more of a message unless the flare fails first. A message
    /// that stops before its end fails the flare: its backend broke.
    pub(crate) async fn read<T>(&self, reading: impl Future<Output = Result<T, Incomplete>>) -> Result<T, CommError> {
        let read = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Err(self.cancellation_error()),
            read = reading => read,
        };
        read.map_err(|incomplete| {
            self.fail(Failure::new(None, FailureKind::Protocol, incomplete.to_string()));
            self.cancellation_error()
        })
    }

    /// Runs one collective round of this pack: every local worker brings its
    /// input; the last to arrive runs `drive` on all inputs (indexed by
    /// local position) and every worker gets its output.
    pub(crate) async fn round<F, Fut>(
        &self,
        (kind, seq): (Kind, u64),
        local_index: usize,
        input: Option<Bytes>,
        drive: F,
    ) -> RoundOutput
    where
        F: FnOnce(Vec<Option<Bytes>>) -> Fut,
        Fut: Future<Output = RoundOutput>,
    {
        enum Joined {
            Drive(Vec<Option<Bytes>>, Vec<oneshot::Sender<RoundOutput>>),
            Wait(oneshot::Receiver<RoundOutput>),
        }
        let joined = {
            let size = self.range().count as usize;
            let mut rounds = lock(&self.rounds);
            let round = rounds.entry((kind, seq)).or_insert_with(|| Round {
                inputs: vec![None; size],
                arrived: 0,
                waiters: Vec::new(),
            });
            round.inputs[local_index] = input;
            round.arrived += 1;
            if round.arrived < size {
                let (sender, receiver) = oneshot::channel();
                round.waiters.push(sender);
                Joined::Wait(receiver)
            } else {
                let round = rounds.remove(&(kind, seq)).ok_or(CommError::Cancelled)?;
                Joined::Drive(round.inputs, round.waiters)
            }
        };
        let (inputs, waiters) = match joined {
            Joined::Wait(receiver) => return self.wait(receiver).await?,
            Joined::Drive(inputs, waiters) => (inputs, waiters),
        };
        let output = drive(inputs).await;
        for waiter in waiters {
            // A waiter whose worker was stopped no longer needs the result.
            let _ = waiter.send(output.clone());
        }
        output
    }

    /// Waits until the other packs have been told of this pack's failure, if
    /// any. Call it for every pack of a flare before closing any: telling a
    /// pack can recreate what it has already deleted.
    /// Gives up after [`CLEANUP_TIMEOUT`].
    pub async fn settle(&self) {
        let task = lock(&self.abort_task).take();
        if let Some(mut task) = task
            && tokio::time::timeout(CLEANUP_TIMEOUT, &mut task).await.is_err()
        {
            task.abort();
            tracing::warn!(
                flare_id = %self.flare_id,
                pack_id = self.pack_id,
                "the broker did not take the news of the failure within {CLEANUP_TIMEOUT:?}; the other packs fail at their deadline"
            );
        }
    }

    /// Deletes what this pack holds in the backend. Called once every
    /// worker of the pack has ended (and, in-process, every pack settled);
    /// gives up after [`CLEANUP_TIMEOUT`], leaving what remains to expire.
    pub async fn close(&self) {
        let failed = self.failure.get().is_some();
        let what = || format!("closing pack {} of flare {}", self.pack_id, self.flare_id);
        if let Err(error) = within(what, CLEANUP_TIMEOUT, self.backend.close(failed)).await {
            tracing::warn!(
                flare_id = %self.flare_id,
                pack_id = self.pack_id,
                %error,
                "could not clean up the broker; left there: {}",
                self.backend.residue()
            );
        }
    }

    /// Starts the task that moves what the backend receives into the mailbox.
    /// It ends when the flare fails or when the returned handle is aborted.
    pub fn spawn_pump(self: &Arc<Self>) -> JoinHandle<()> {
        let pack = Arc::clone(self);
        tokio::spawn(async move { pack.pump().await })
    }

    async fn pump(&self) {
        loop {
            let inbound = tokio::select! {
                _ = self.cancel.cancelled() => return,
                inbound = self.backend.receive() => inbound,
            };
            match inbound {
                Ok(Inbound::Message(envelope, message)) => {
                    if let Err(reason) = self.check_inbound(&envelope) {
                        self.fail(Failure::new(None, FailureKind::Protocol, reason));
                        return;
                    }
                    self.remote_bytes.fetch_add(message.len(), Ordering::Relaxed);
                    // `check_inbound` vouched for the source.
                    let from = self.layout.pack_of(envelope.source) as usize;
                    if let Some(bytes) = self.received_from.get(from) {
                        bytes.fetch_add(message.len(), Ordering::Relaxed);
                    }
                    if self.deliver(envelope, message).is_err() {
                        return;
                    }
                }
                Ok(Inbound::Abort(failure)) => {
                    // Passed on, so that every pack hears of it even if its
                    // sender could not reach them all.
                    self.fail(failure);
                    return;
                }
                Ok(Inbound::Done(pack_id)) => {
                    if pack_id >= self.layout.pack_count() || pack_id == self.pack_id {
                        let reason = format!("pack {pack_id} of {} says it is done", self.layout.pack_count());
                        self.fail(Failure::new(None, FailureKind::Protocol, reason));
                        return;
                    }
                    lock(&self.done).insert(pack_id);
                    self.done_changed.notify_waiters();
                }
                Err(error) => {
                    self.backend_failed(&error);
                    return;
                }
            }
        }
    }

    /// An envelope from another pack must come from a worker of the flare
    /// and be addressed to this pack; anything else is a protocol violation.
    fn check_inbound(&self, envelope: &Envelope) -> Result<(), String> {
        let burst_size = self.layout.burst_size();
        if envelope.source >= burst_size {
            return Err(format!("message from worker {} of a burst of {burst_size}", envelope.source));
        }
        let ours = envelope.dest == EVERY_PACK
            || (envelope.dest < burst_size && self.layout.pack_of(envelope.dest) == self.pack_id);
        if !ours {
            return Err(format!("message for worker {} reached pack {}", envelope.dest, self.pack_id));
        }
        Ok(())
    }

    fn backend_failed(&self, error: &BackendError) -> CommError {
        let (kind, comm_error) = match error {
            BackendError::Protocol(reason) => (FailureKind::Protocol, CommError::Protocol(reason.clone())),
            other => (FailureKind::Backend, CommError::Backend(other.to_string())),
        };
        tracing::warn!(flare_id = %self.flare_id, pack_id = self.pack_id, %error, "backend failed");
        self.fail(Failure::new(None, kind, error.to_string()));
        comm_error
    }
}
