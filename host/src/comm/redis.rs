//! The Redis backend: packs of a flare in different processes or machines
//! talk through one Redis server.
//!
//! Every pack has one inbox, a Redis list named
//! `burst:{flare_id}:inbox:{pack_id}`; a message is pushed to it as frames
//! (see [`frame`](super::frame)), a publish is pushed once to every other
//! pack's inbox (each pack reads it once), an abort is one frame to every
//! other pack. The pack reads its inbox with `BLPOP` on a connection of its
//! own, so a blocked receive can never hold up a send. Every push refreshes
//! the key's expiry (the flare's deadline plus a margin) as a backstop; a
//! pack deletes its inbox when it closes.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use redis::AsyncCommands as _;
use redis::aio::MultiplexedConnection;

use super::frame::{self, Frame, FrameParts, MAX_FLARE_ID, Reassembler};
use super::{Backend, BackendError, BoxFuture, BrokerOptions, Envelope, Inbound};
use crate::Failure;

/// How long one `BLPOP` waits before it is issued again; bounds how long a
/// cancelled receive keeps its connection busy.
const POLL_SECONDS: f64 = 1.0;

/// Frames taken with one `LPOP` after a `BLPOP` found the inbox non-empty:
/// a large message then costs one round trip per batch, not per frame.
const DRAIN_BATCH: usize = 64;

/// Extra lifetime of a flare's keys beyond its deadline.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// One pack's endpoint on Redis.
pub struct RedisBackend {
    flare_id: String,
    pack_id: u32,
    pack_count: u32,
    options: BrokerOptions,
    sender: MultiplexedConnection,
    receiver: tokio::sync::Mutex<Receiver>,
    reassembler: Mutex<Reassembler>,
    framing_bytes: AtomicU64,
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
        let receiver = client.get_multiplexed_async_connection_with_config(&config).await.map_err(io_error(url))?;
        Ok(Self {
            flare_id: flare_id.to_owned(),
            pack_id,
            pack_count,
            options,
            sender,
            receiver: tokio::sync::Mutex::new(Receiver { connection: receiver, popped: VecDeque::new() }),
            reassembler: Mutex::default(),
            framing_bytes: AtomicU64::new(0),
        })
    }

    async fn push(&self, to_pack: u32, frames: &[FrameParts]) -> Result<(), BackendError> {
        let key = inbox_key(&self.flare_id, to_pack);
        let expiry = (self.options.deadline + EXPIRY_MARGIN).as_secs() as i64;
        let mut pipe = redis::pipe();
        for frame in frames {
            pipe.rpush(&key, frame).ignore();
        }
        pipe.expire(&key, expiry).ignore();
        let mut connection = self.sender.clone();
        pipe.query_async::<()>(&mut connection).await.map_err(io_error(&self.options.url))
    }

    fn others(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.pack_count).filter(move |&p| p != self.pack_id)
    }

    fn decode(&self, raw: Vec<u8>) -> Result<Option<Inbound>, BackendError> {
        let protocol = |e: frame::FrameError| BackendError::Protocol(e.to_string());
        let raw_len = raw.len();
        match frame::decode(&Bytes::from(raw), &self.flare_id).map_err(protocol)? {
            Frame::Abort(failure) => Ok(Some(Inbound::Abort(failure))),
            Frame::Chunk(chunk) => {
                self.framing_bytes.fetch_add((raw_len - chunk.bytes.len()) as u64, Ordering::Relaxed);
                let mut reassembler = self.reassembler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let message = reassembler.add(chunk).map_err(protocol)?;
                Ok(message.map(|(envelope, payload)| Inbound::Message(envelope, payload)))
            }
        }
    }
}

impl Backend for RedisBackend {
    fn send(&self, to_pack: u32, envelope: Envelope, payload: Bytes) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let frames = frame::split_message(&self.flare_id, &envelope, &payload, self.options.chunk_bytes);
            self.push(to_pack, &frames).await
        })
    }

    fn publish(&self, envelope: Envelope, payload: Bytes) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let frames = frame::split_message(&self.flare_id, &envelope, &payload, self.options.chunk_bytes);
            for pack in self.others() {
                self.push(pack, &frames).await?;
            }
            Ok(())
        })
    }

    fn receive(&self) -> BoxFuture<'_, Result<Inbound, BackendError>> {
        Box::pin(async move {
            let key = inbox_key(&self.flare_id, self.pack_id);
            let mut receiver = self.receiver.lock().await;
            let failed = io_error(&self.options.url);
            loop {
                let raw = match receiver.popped.pop_front() {
                    Some(raw) => raw,
                    None => {
                        let popped: Option<(String, Vec<u8>)> =
                            receiver.connection.blpop(&key, POLL_SECONDS).await.map_err(&failed)?;
                        let Some((_, raw)) = popped else { continue };
                        let more: Option<Vec<Vec<u8>>> =
                            receiver.connection.lpop(&key, NonZeroUsize::new(DRAIN_BATCH)).await.map_err(&failed)?;
                        receiver.popped.extend(more.unwrap_or_default());
                        raw
                    }
                };
                if let Some(inbound) = self.decode(raw)? {
                    return Ok(inbound);
                }
            }
        })
    }

    fn abort(&self, failure: Failure) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let frames = [FrameParts { header: frame::encode_abort(&self.flare_id, &failure), body: Bytes::new() }];
            for pack in self.others() {
                self.push(pack, &frames).await?;
            }
            Ok(())
        })
    }

    fn framing_bytes(&self) -> u64 {
        self.framing_bytes.load(Ordering::Relaxed)
    }

    fn close(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let mut connection = self.sender.clone();
            let key = inbox_key(&self.flare_id, self.pack_id);
            connection.del::<_, ()>(&key).await.map_err(io_error(&self.options.url))
        })
    }
}

/// A frame is written to Redis as one argument from its two parts, so the
/// payload is copied once, into the connection's buffer.
impl redis::ToRedisArgs for FrameParts {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        use std::io::Write as _;
        let mut arg = out.writer_for_next_arg();
        // Writing into the connection's in-memory buffer cannot fail.
        let _ = arg.write_all(&self.header);
        let _ = arg.write_all(&self.body);
    }
}
