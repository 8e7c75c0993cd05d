//! The Redis backend: packs of a flare in different processes or machines
//! talk through one Redis server.
//!
//! Every pack has one inbox, a Redis list named
//! `burst:{flare_id}:inbox:{pack_id}`; a message is pushed to it as frames
//! (see [`frame`](super::frame)), up to [`SEND_WINDOW`] frames in flight at
//! once, counted over every message the pack is sending, so that large
//! messages (an all-to-all sends one to every other pack at once) stream
//! through a bounded amount of host memory while the connection stays
//! busy. A publish (broadcast, all-gather parts, results of a reduction)
//! is written to Redis once: its frames are
//! stored under `burst:{flare_id}:pub:{pack_id}:{n}:{index}` with a count of
//! the packs still to read them, and as each batch of frames is stored,
//! every other pack's inbox gets one small [`STORED`](super::frame::STORED)
//! frame pointing at it, so readers fetch one batch while the next is
//! written; the last reader deletes them. An abort is one frame to every other pack. The pack reads
//! its inbox with `BLPOP` on a connection of its own, so a blocked receive
//! can never hold up a send. Every key expires (the flare's deadline plus a
//! margin) as a backstop; a pack deletes its inbox when it closes, and what
//! it published and nobody read if the flare failed.
//!
//! A flare's *registry*, `burst:{flare_id}:packs`, says which packs have
//! joined and which have closed. A pack joins when it connects, and is
//! refused if its flare already has that pack (the flare id is in use, or
//! its state has not expired yet). Every write to an inbox is a script that
//! drops the frame once the destination closed, so nothing (an abort from a
//! pack that failed late, say) recreates a closed pack's inbox; the last
//! pack to close deletes the registry.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use redis::AsyncCommands as _;
use redis::aio::MultiplexedConnection;

mod registry;

pub use registry::{abort_flare, registry_key};

use super::frame::{self, Frame, FrameParts, MAX_FLARE_ID, Reassembler, Split};
use super::message::Payload;
use super::{Backend, BackendError, BoxFuture, BrokerOptions, Envelope, Inbound};
use crate::Failure;

/// How long one `BLPOP` waits before it is issued again; bounds how long a
/// cancelled receive keeps its connection busy.
const POLL_SECONDS: f64 = 1.0;

/// Frames taken with one `LPOP` after a `BLPOP` found the inbox non-empty,
/// and stored frames fetched with one pipeline: a large message costs one
/// round trip per batch, and the host holds at most a batch of frames it
/// has not yet put into their message.
const DRAIN_BATCH: usize = 16;

/// Frames a pack writes concurrently, over all the messages it is sending:
/// enough to keep its one sending connection and the server busy, few
/// enough that the host holds a bounded number of chunks whatever the
/// message sizes and however many destinations a collective has. (A window
/// per message let an all-to-all over 8 packs hold 56 frames, 56 MiB at the
/// default chunk size, for no extra throughput: they share one connection.)
const SEND_WINDOW: usize = 8;

/// Pause between attempts to clean up after the broker failed.
const CLEANUP_RETRY: Duration = Duration::from_millis(100);

/// Extra lifetime of a flare's keys beyond its deadline.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// One pack's endpoint on Redis.
pub struct RedisBackend {
    flare_id: String,
    pack_id: u32,
    pack_count: u32,
    options: BrokerOptions,
    client: redis::Client,
    sender: MultiplexedConnection,
    /// [`SEND_WINDOW`] permits, one per frame being written.
    send_window: tokio::sync::Semaphore,
    receiver: tokio::sync::Mutex<Receiver>,
    reassembler: Mutex<Reassembler>,
    framing_bytes: AtomicU64,
    written_bytes: AtomicU64,
    /// Key prefixes (and frame counts) of this pack's publishes.
    published: Mutex<Vec<(String, u32)>>,
}

/// The receiving side: its own connection, and frames popped but not yet
/// handed to the pack.
struct Receiver {
    connection: MultiplexedConnection,
    popped: VecDeque<Vec<u8>>,
}

/// The inbox key of `pack_id` in flare `flare_id`.
pub fn inbox_key(flare_id: &str, pack_id: u32) -> String {
    format!("burst:{flare_id}:inbox:{pack_id}")
}

/// The prefix of every key holding a publish of flare `flare_id`.
fn published_prefix(flare_id: &str) -> String {
    format!("burst:{flare_id}:pub:")
}

fn frame_key(prefix: &str, index: u32) -> String {
    format!("{prefix}:{index}")
}

fn readers_key(prefix: &str) -> String {
    format!("{prefix}:readers")
}

fn io_error(url: &str) -> impl Fn(redis::RedisError) -> BackendError + '_ {
    move |error| BackendError::Io(format!("redis at {url}: {error}"))
}

/// Checks that a flare id can name keys and frames: 1 to [`MAX_FLARE_ID`]
/// characters of `[A-Za-z0-9._-]`.
///
/// # Errors
/// [`BackendError::Protocol`] otherwise.
pub fn check_flare_id(flare_id: &str) -> Result<(), BackendError> {
    let valid = !flare_id.is_empty()
        && flare_id.len() <= MAX_FLARE_ID
        && flare_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(BackendError::Protocol(format!(
            "flare id {flare_id:?} must be 1 to {MAX_FLARE_ID} characters of letters, digits, '.', '_' or '-'"
        )))
    }
}

impl RedisBackend {
    /// Connects pack `pack_id` of a flare of `pack_count` packs.
    ///
    /// # Errors
    /// [`BackendError::Io`] naming the URL when Redis cannot be reached;
    /// [`BackendError::Protocol`] for an unusable flare id.
    pub async fn connect(
        flare_id: &str,
        pack_id: u32,
        pack_count: u32,
        options: BrokerOptions,
    ) -> Result<Self, BackendError> {
        check_flare_id(flare_id)?;
        let url = options.url.as_str();
        let client = redis::Client::open(url).map_err(io_error(url))?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        let sender = client.get_multiplexed_async_connection_with_config(&config).await.map_err(io_error(url))?;
        let mut receiver = client.get_multiplexed_async_connection_with_config(&config).await.map_err(io_error(url))?;
        let expiry = (options.deadline + EXPIRY_MARGIN).as_secs();
        let joined = registry::join(&mut receiver, flare_id, pack_id, expiry).await.map_err(io_error(url))?;
        if !joined {
            return Err(BackendError::InUse(format!(
                "flare {flare_id} already has a pack {pack_id} in redis at {url}: another run uses this flare id, or \
                 one that ended less than {expiry} s ago left state there"
            )));
        }
        let max_message = options.message_bytes;
        Ok(Self {
            flare_id: flare_id.to_owned(),
            pack_id,
            pack_count,
            options,
            client,
            sender,
            send_window: tokio::sync::Semaphore::new(SEND_WINDOW),
            receiver: tokio::sync::Mutex::new(Receiver { connection: receiver, popped: VecDeque::new() }),
            reassembler: Mutex::new(Reassembler::new(max_message)),
            framing_bytes: AtomicU64::new(0),
            written_bytes: AtomicU64::new(0),
            published: Mutex::default(),
        })
    }

    fn expiry(&self) -> u64 {
        (self.options.deadline + EXPIRY_MARGIN).as_secs()
    }

    fn failed(&self) -> impl Fn(redis::RedisError) -> BackendError + '_ {
        io_error(&self.options.url)
    }

    /// Runs `command(index, frame)` for every frame on the sending
    /// connection (which pipelines them), in order, each once it has one of
    /// the pack's [`SEND_WINDOW`] permits. Each frame is copied once, into
    /// its command, only when it has its permit.
    async fn write_frames<'s>(
        &self,
        frames: impl Iterator<Item = (usize, FrameParts<'s>)>,
        command: impl Fn(usize, FrameParts<'s>) -> redis::Pipeline,
    ) -> Result<(), BackendError> {
        let command = &command;
        let mut in_flight = FuturesOrdered::new();
        let mut written = 0;
        for (index, frame) in frames {
            written += frame.len() as u64;
            let mut connection = self.sender.clone();
            in_flight.push_back(async move {
                // The window is never closed: acquiring only waits for a
                // frame in flight, which the connection's response timeout
                // bounds.
                let _permit = self.send_window.acquire().await.map_err(|_| BackendError::Closed)?;
                command(index, frame).query_async::<()>(&mut connection).await.map_err(self.failed())
            });
            // The pack's window bounds the frames being copied and written;
            // this bounds the frames of one message waiting for it.
            if in_flight.len() == SEND_WINDOW
                && let Some(result) = in_flight.next().await
            {
                result?;
            }
        }
        while let Some(result) = in_flight.next().await {
            result?;
        }
        self.written_bytes.fetch_add(written, Ordering::Relaxed);
        Ok(())
    }

    /// Appends the frames of `split` to the inbox of `to_pack`, refreshing
    /// its expiry with the last one.
    ///
    /// Data frames are plain `RPUSH`es, not the registry's script: a script
    /// copies each megabyte-sized frame twice more inside Redis, which is
    /// the bottleneck of the path between packs. A pack sends nothing once
    /// its flare failed, and in a flare that succeeds no pack closes before
    /// every other pack has sent its last frame; only a frame already in
    /// flight when a failure is learned can reach a closed inbox, which it
    /// leaves to expire.
    async fn push(&self, to_pack: u32, split: &Split<'_>) -> Result<(), BackendError> {
        let key = inbox_key(&self.flare_id, to_pack);
        let (last, expiry) = (split.count() - 1, self.expiry());
        self.write_frames(split.frames().enumerate(), |index, frame| {
            let mut pipe = redis::pipe();
            pipe.rpush(&key, frame).ignore();
            if index == last {
                pipe.expire(&key, expiry as i64).ignore();
            }
            pipe
        })
        .await
    }

    fn push_command(&self, pipe: &mut redis::Pipeline, to_pack: u32, frame: impl redis::ToRedisArgs) {
        registry::push(pipe, &self.flare_id, to_pack, self.expiry(), frame);
    }

    /// Appends one small frame to every other pack's inbox, in one round trip.
    async fn push_to_others(&self, frame: Bytes) -> Result<(), BackendError> {
        let mut pipe = redis::pipe();
        for pack in self.others() {
            self.push_command(&mut pipe, pack, &frame[..]);
        }
        pipe.query_async::<()>(&mut self.sender.clone()).await.map_err(self.failed())?;
        self.written_bytes.fetch_add(frame.len() as u64 * u64::from(self.pack_count - 1), Ordering::Relaxed);
        Ok(())
    }

    fn others(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.pack_count).filter(move |&p| p != self.pack_id)
    }

    fn decode(&self, raw: Bytes) -> Result<Decoded, BackendError> {
        let protocol = |e: frame::FrameError| BackendError::Protocol(e.to_string());
        let raw_len = raw.len();
        match frame::decode(&raw, &self.flare_id).map_err(protocol)? {
            Frame::Abort(failure) => Ok(Decoded::Inbound(Inbound::Abort(failure))),
            Frame::Done { pack_id } => {
                self.framing_bytes.fetch_add(raw_len as u64, Ordering::Relaxed);
                Ok(Decoded::Inbound(Inbound::Done(pack_id)))
            }
            Frame::Stored { key, frames, total } => {
                if !key.starts_with(&published_prefix(&self.flare_id)) {
                    return Err(BackendError::Protocol(format!("a stored message names the key {key:?}")));
                }
                Ok(Decoded::Stored { key, frames, total })
            }
            Frame::Chunk(chunk) => {
                self.framing_bytes.fetch_add((raw_len - chunk.bytes.len()) as u64, Ordering::Relaxed);
                let mut reassembler = self.reassembler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let message = reassembler.add(chunk).map_err(protocol)?;
                Ok(message.map_or(Decoded::Nothing, |(envelope, message)| {
                    Decoded::Inbound(Inbound::Message(envelope, message))
                }))
            }
        }
    }

    /// Reads frames `frames` of the publish of `total` frames stored under
    /// `key`, a batch per round trip; once it read the last, deletes them
    /// if this pack is the last to read them. Returns the publish's
    /// message when these frames began it.
    async fn fetch_stored(
        &self,
        connection: &mut MultiplexedConnection,
        key: &str,
        frames: Range<u32>,
        total: u32,
    ) -> Result<Option<Inbound>, BackendError> {
        let mut message = None;
        // The range comes from the broker: walk it a batch at a time, never
        // allocating by it; a range beyond what is stored ends at the first
        // missing frame.
        for first in frames.clone().step_by(DRAIN_BATCH) {
            let batch = first..frames.end.min(first.saturating_add(DRAIN_BATCH as u32));
            let mut pipe = redis::pipe();
            for index in batch.clone() {
                pipe.get(frame_key(key, index));
            }
            let raws: Vec<Option<Vec<u8>>> = pipe.query_async(connection).await.map_err(self.failed())?;
            for (index, raw) in batch.zip(raws) {
                let raw =
                    raw.ok_or_else(|| BackendError::Protocol(format!("stored frame {key}:{index} is missing")))?;
                match self.decode(Bytes::from(raw))? {
                    Decoded::Nothing => {}
                    // A publish holds one message, which its frame 0 begins.
                    Decoded::Inbound(inbound @ Inbound::Message(..)) if index == 0 => message = Some(inbound),
                    _ => return Err(BackendError::Protocol(format!("stored frame {key}:{index} is not one chunk"))),
                }
            }
        }
        if frames.end == total {
            let left: i64 = connection.decr(readers_key(key), 1).await.map_err(self.failed())?;
            if left <= 0 {
                delete_publish(connection, key, total).await.map_err(self.failed())?;
            }
        }
        Ok(message)
    }
}

impl RedisBackend {
    /// Leaves the registry and deletes the inbox; after a failure, also
    /// what this pack published (the other packs may never read it; after
    /// a success they all have, and deleted it).
    async fn clean_up(&self, connection: &mut MultiplexedConnection, failed: bool) -> redis::RedisResult<()> {
        registry::close(&self.flare_id, self.pack_id, self.pack_count, self.expiry())
            .query_async::<()>(connection)
            .await?;
        if failed {
            let published = self.published.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            for (key, count) in published {
                delete_publish(connection, &key, count).await?;
            }
        }
        Ok(())
    }
}

/// What one frame from the inbox amounts to.
enum Decoded {
    /// A chunk of a message that is not complete yet.
    Nothing,
    /// A whole message, or an abort.
    Inbound(Inbound),
    /// A publish whose frames are stored under `key`.
    Stored { key: String, frames: Range<u32>, total: u32 },
}

async fn delete_publish(connection: &mut MultiplexedConnection, key: &str, count: u32) -> redis::RedisResult<()> {
    let mut keys: Vec<String> = (0..count).map(|index| frame_key(key, index)).collect();
    keys.push(readers_key(key));
    redis::cmd("UNLINK").arg(keys).query_async(connection).await
}

impl Backend for RedisBackend {
    fn send<'a>(
        &'a self,
        to_pack: u32,
        envelope: Envelope,
        payload: Payload<'a>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let split = Split::new(&self.flare_id, &envelope, payload.as_slice(), self.options.chunk_bytes);
            self.push(to_pack, &split).await
        })
    }

    fn publish(&self, envelope: Envelope, payload: Bytes) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let split = Split::new(&self.flare_id, &envelope, &payload, self.options.chunk_bytes);
            let total = split.count() as u32;
            let key = {
                let mut published = self.published.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let key = format!("{}{}:{}", published_prefix(&self.flare_id), self.pack_id, published.len());
                published.push((key.clone(), total));
                key
            };
            let expiry = self.expiry();
            // Readers are told of each batch of frames once it is stored, so
            // they fetch one batch while the next is being written.
            for first in (0..total).step_by(DRAIN_BATCH) {
                let frames = first..total.min(first + DRAIN_BATCH as u32);
                let batch = split.frames().enumerate().skip(first as usize).take(frames.len());
                self.write_frames(batch, |index, frame| {
                    let mut pipe = redis::pipe();
                    pipe.set_ex(frame_key(&key, index as u32), frame, expiry).ignore();
                    pipe
                })
                .await?;
                let pointer = frame::encode_stored(&self.flare_id, &envelope, frames, total, &key);
                let mut pipe = redis::pipe();
                if first == 0 {
                    // The count of readers before any pointer: a reader
                    // that read the last frame decrements it.
                    pipe.set_ex(readers_key(&key), self.pack_count - 1, expiry).ignore();
                }
                for pack in self.others() {
                    self.push_command(&mut pipe, pack, &pointer[..]);
                }
                pipe.query_async::<()>(&mut self.sender.clone()).await.map_err(self.failed())?;
            }
            Ok(())
        })
    }

    fn receive(&self) -> BoxFuture<'_, Result<Inbound, BackendError>> {
        Box::pin(async move {
            let key = inbox_key(&self.flare_id, self.pack_id);
            let mut receiver = self.receiver.lock().await;
            let receiver = &mut *receiver;
            loop {
                let raw = match receiver.popped.pop_front() {
                    Some(raw) => raw,
                    None => {
                        let popped: Option<(String, Vec<u8>)> =
                            receiver.connection.blpop(&key, POLL_SECONDS).await.map_err(self.failed())?;
                        let Some((_, raw)) = popped else { continue };
                        let more: Option<Vec<Vec<u8>>> = receiver
                            .connection
                            .lpop(&key, NonZeroUsize::new(DRAIN_BATCH))
                            .await
                            .map_err(self.failed())?;
                        receiver.popped.extend(more.unwrap_or_default());
                        raw
                    }
                };
                let inbound = match self.decode(Bytes::from(raw))? {
                    Decoded::Nothing => None,
                    Decoded::Inbound(inbound) => Some(inbound),
                    Decoded::Stored { key, frames, total } => {
                        self.fetch_stored(&mut receiver.connection, &key, frames, total).await?
                    }
                };
                if let Some(inbound) = inbound {
                    return Ok(inbound);
                }
            }
        })
    }

    fn abort(&self, failure: Failure) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.push_to_others(frame::encode_abort(&self.flare_id, &failure)))
    }

    fn done(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.push_to_others(frame::encode_done(&self.flare_id, self.pack_id)))
    }

    fn framing_bytes(&self) -> u64 {
        self.framing_bytes.load(Ordering::Relaxed)
    }

    fn written_bytes(&self) -> u64 {
        self.written_bytes.load(Ordering::Relaxed)
    }

    fn residue(&self) -> String {
        format!(
            "the keys {}, {} and {}{}:*, which expire within {} s",
            registry_key(&self.flare_id),
            inbox_key(&self.flare_id, self.pack_id),
            published_prefix(&self.flare_id),
            self.pack_id,
            self.expiry()
        )
    }

    fn close(&self, failed: bool) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            // The flare's own connection may be what failed, or the broker
            // may be back in a moment: cleanup (whose steps can all be
            // repeated) runs again on a fresh connection until it succeeds
            // or the caller's deadline ends it.
            let mut connection = self.sender.clone();
            loop {
                match self.clean_up(&mut connection, failed).await {
                    Ok(()) => return Ok(()),
                    Err(error) => tracing::debug!(flare_id = self.flare_id, %error, "cleanup failed; retrying"),
                }
                tokio::time::sleep(CLEANUP_RETRY).await;
                if let Ok(fresh) = self.client.get_multiplexed_async_connection().await {
                    connection = fresh;
                }
            }
        })
    }
}

/// A frame is written to Redis as one argument from its two parts, so the
/// payload is copied once, into the command's buffer.
impl redis::ToRedisArgs for FrameParts<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        use std::io::Write as _;
        let mut arg = out.writer_for_next_arg();
        // Writing into the connection's in-memory buffer cannot fail.
        let _ = arg.write_all(self.header);
        let _ = arg.write_all(self.body);
    }
}

impl redis::ToSingleRedisArg for FrameParts<'_> {}

#[cfg(test)]
mod tests;
