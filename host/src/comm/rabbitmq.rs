//! The RabbitMQ backend: packs of a flare talk through one RabbitMQ broker.
//!
//! Every pack has one queue, `burst.{flare_id}.pack.{pack_id}`, reached
//! through the default (direct) exchange by its name. A message is published
//! as one AMQP message per frame. What every other pack reads (broadcasts,
//! all-gather parts, aborts) is published once, with RabbitMQ's
//! sender-selected distribution: routed to the first other pack's queue and
//! blind-copied (`BCC`) to the rest, so the broker receives it once, stores
//! one copy for all of them and never delivers it back to its publisher.
//! Every pack declares every pack's queue when it connects (declaration is
//! idempotent), so nothing is lost when a receiving process starts later,
//! and never after: a message for a pack that closed and deleted its queue
//! is dropped by the broker instead of recreating the queue. Publishes wait
//! for the broker's confirms, at most [`PUBLISH_WINDOW`] frames unconfirmed
//! at once over every message the pack is sending; the pack consumes its
//! queue on a channel of its own with a bounded prefetch and acks a frame
//! only after the reassembler has stored it. Publishing and consuming use
//! separate connections, as RabbitMQ advises: a publisher that the broker
//! blocks (flow control, a resource alarm) never holds up the acks and
//! deliveries of the consumer. Queues expire after [`QUEUE_EXPIRY`] unused
//! as a backstop (the same for every process of a flare, whatever its own
//! deadline: a queue's arguments must agree between all its declarers), and
//! a pack deletes its queue when it closes. While it runs, a pack holds an
//! exclusive queue `burst.{flare_id}.member.{pack_id}` (deleted with its
//! connection), so a second process claiming the same pack of the same
//! flare is refused.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};

use super::frame::{self, Frame, Reassembler, Split};
use super::message::Payload;
use super::redis::check_flare_id;
use super::{Backend, BackendError, BoxFuture, BrokerOptions, Envelope, Inbound, within};
use crate::Failure;

/// Unacknowledged frames the broker may push to a pack at once; bounds the
/// memory a pack spends on frames it has not stored yet.
const PREFETCH: u16 = 32;

/// Frames a pack may have published and not yet seen confirmed, over all
/// the messages it is sending: bounds the frames held in host memory while
/// the broker catches up, however many destinations a collective has. (A
/// window per message let an all-to-all over 8 packs hold 224 frames,
/// 224 MiB at the default chunk size; they share one channel.)
const PUBLISH_WINDOW: usize = 32;

/// How long a flare's queue may stay unused (no consumer, no declaration)
/// before the broker deletes it: a backstop for a pack that never started
/// or never closed. A constant, not derived from a process's deadline,
/// because every declarer of a queue must pass the same arguments.
pub const QUEUE_EXPIRY: Duration = Duration::from_secs(15 * 60);

/// Pause between attempts to clean up after the broker failed.
const CLEANUP_RETRY: Duration = Duration::from_millis(100);

/// How long connecting (both connections, channels, the pack's queue and
/// its consumer) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One pack's endpoint on RabbitMQ.
pub struct RabbitBackend {
    flare_id: String,
    pack_id: u32,
    pack_count: u32,
    options: BrokerOptions,
    /// Carries publishes only.
    publishing: Connection,
    /// Carries the pack's consumer only.
    consuming: Connection,
    publisher: Channel,
    /// [`PUBLISH_WINDOW`] permits, one per frame published and not yet
    /// confirmed.
    publish_window: tokio::sync::Semaphore,
    consumer: tokio::sync::Mutex<Consumer>,
    reassembler: Mutex<Reassembler>,
    framing_bytes: AtomicU64,
    written_bytes: AtomicU64,
}

/// The queue of `pack_id` in flare `flare_id`.
pub fn queue_name(flare_id: &str, pack_id: u32) -> String {
    format!("burst.{flare_id}.pack.{pack_id}")
}

fn io_error(url: &str) -> impl Fn(lapin::Error) -> BackendError + '_ {
    move |error| BackendError::Io(format!("rabbitmq at {url}: {error}"))
}

impl RabbitBackend {
    /// Connects pack `pack_id` of a flare of `pack_count` packs, declares its
    /// queue and starts consuming it.
    ///
    /// # Errors
    /// [`BackendError::Io`] naming the URL when the broker cannot be reached;
    /// [`BackendError::Protocol`] for an unusable flare id.
    pub async fn connect(
        flare_id: &str,
        pack_id: u32,
        pack_count: u32,
        options: BrokerOptions,
    ) -> Result<Self, BackendError> {
        check_flare_id(flare_id)?;
        let what = || format!("rabbitmq at {}: connecting pack {pack_id} of flare {flare_id}", options.url);
        within(what, CONNECT_TIMEOUT, Self::open(flare_id, pack_id, pack_count, options.clone())).await
    }

    async fn open(flare_id: &str, pack_id: u32, pack_count: u32, options: BrokerOptions) -> Result<Self, BackendError> {
        let url = options.url.clone();
        let failed = io_error(&url);
        let publishing = open_connection(&url).await?;
        let consuming = open_connection(&url).await?;
        let publisher = publishing.create_channel().await.map_err(&failed)?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await.map_err(&failed)?;
        let receiving = consuming.create_channel().await.map_err(&failed)?;
        // Membership: an exclusive queue lives as long as this connection,
        // and a second pack of the same flare and id cannot declare it.
        let member = format!("burst.{flare_id}.member.{pack_id}");
        let exclusive = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        receiving.queue_declare(member.as_str().into(), exclusive, FieldTable::default()).await.map_err(|error| {
            if error.to_string().contains("RESOURCE_LOCKED") {
                BackendError::InUse(format!(
                    "flare {flare_id} already has a pack {pack_id} connected to rabbitmq at {url}: another run uses \
                     this flare id"
                ))
            } else {
                failed(error)
            }
        })?;
        receiving.basic_qos(PREFETCH, BasicQosOptions::default()).await.map_err(&failed)?;
        let backend_queue = queue_name(flare_id, pack_id);
        for pack in 0..pack_count {
            declare(&publisher, flare_id, pack).await.map_err(&failed)?;
        }
        let consumer = receiving
            .basic_consume(
                backend_queue.as_str().into(),
                format!("pack-{pack_id}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(&failed)?;
        let max_message = options.message_bytes;
        Ok(Self {
            flare_id: flare_id.to_owned(),
            pack_id,
            pack_count,
            options,
            publishing,
            consuming,
            publisher,
            publish_window: tokio::sync::Semaphore::new(PUBLISH_WINDOW),
            consumer: tokio::sync::Mutex::new(consumer),
            reassembler: Mutex::new(Reassembler::new(max_message)),
            framing_bytes: AtomicU64::new(0),
            written_bytes: AtomicU64::new(0),
        })
    }

    /// Publishes frames once for the packs `to`: routed to the first one's
    /// queue and blind-copied to the others'. Waits for the broker to
    /// confirm every frame.
    async fn publish_frames(
        &self,
        to: &[u32],
        frames: impl IntoIterator<Item = impl AsRef<[u8]>>,
    ) -> Result<(), BackendError> {
        let failed = io_error(&self.options.url);
        let Some((&first, copies)) = to.split_first() else { return Ok(()) };
        let routing_key = queue_name(&self.flare_id, first);
        let mut properties = BasicProperties::default();
        if !copies.is_empty() {
            let bcc: Vec<AMQPValue> =
                copies.iter().map(|&p| AMQPValue::LongString(queue_name(&self.flare_id, p).into())).collect();
            let mut headers = FieldTable::default();
            headers.insert("BCC".into(), AMQPValue::FieldArray(FieldArray::from(bcc)));
            properties = properties.with_headers(headers);
        }
        let routing_key = routing_key.as_str();
        // Each frame's permit is given back when the broker confirms it.
        let mut unconfirmed = FuturesOrdered::new();
        for frame in frames {
            let frame = frame.as_ref();
            // While it waits for a permit, the message settles its own
            // confirms, so messages that each hold part of the window never
            // wait on each other; the one acquire keeps its place in the
            // semaphore's queue.
            let acquire = self.publish_window.acquire();
            tokio::pin!(acquire);
            let permit = loop {
                tokio::select! {
                    permit = &mut acquire => break permit.map_err(|_| BackendError::Closed)?,
                    Some(confirmed) = unconfirmed.next() => confirmed?,
                }
            };
            let confirm = self
                .publisher
                .basic_publish("".into(), routing_key.into(), BasicPublishOptions::default(), frame, properties.clone())
                .await
                .map_err(&failed)?;
            self.written_bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
            unconfirmed.push_back(async move {
                let confirmed = self.check_confirm(confirm, routing_key).await;
                drop(permit);
                confirmed
            });
        }
        while let Some(confirmed) = unconfirmed.next().await {
            confirmed?;
        }
        Ok(())
    }

    async fn check_confirm(&self, confirm: lapin::PublisherConfirm, to: &str) -> Result<(), BackendError> {
        if confirm.await.map_err(io_error(&self.options.url))?.is_ack() {
            Ok(())
        } else {
            Err(BackendError::Io(format!("rabbitmq at {}: a frame to {to} was refused", self.options.url)))
        }
    }

    fn others(&self) -> Vec<u32> {
        (0..self.pack_count).filter(|&p| p != self.pack_id).collect()
    }

    fn decode(&self, raw: Vec<u8>) -> Result<Option<Inbound>, BackendError> {
        let protocol = |e: frame::FrameError| BackendError::Protocol(e.to_string());
        let raw_len = raw.len();
        match frame::decode(&Bytes::from(raw), &self.flare_id).map_err(protocol)? {
            Frame::Abort(failure) => Ok(Some(Inbound::Abort(failure))),
            Frame::Done { pack_id } => {
                self.framing_bytes.fetch_add(raw_len as u64, Ordering::Relaxed);
                Ok(Some(Inbound::Done(pack_id)))
            }
            Frame::Stored { key, .. } => {
                Err(BackendError::Protocol(format!("a pointer to a stored message ({key:?}) reached RabbitMQ")))
            }
            Frame::Chunk(chunk) => {
                self.framing_bytes.fetch_add((raw_len - chunk.bytes.len()) as u64, Ordering::Relaxed);
                let mut reassembler = self.reassembler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let message = reassembler.add(chunk).map_err(protocol)?;
                Ok(message.map(|(envelope, message)| Inbound::Message(envelope, message)))
            }
        }
    }
}

/// Tells the packs `packs` of flare `flare_id` that the flare failed, from
/// outside it (see
/// [`redis::abort_flare`](super::redis::abort_flare)). Queues are not
/// declared: a pack that closed and deleted its queue is not recreated.
///
/// # Errors
/// [`BackendError::Io`] naming the URL.
pub async fn abort_flare(
    options: &BrokerOptions,
    flare_id: &str,
    packs: &[u32],
    failure: &Failure,
) -> Result<(), BackendError> {
    check_flare_id(flare_id)?;
    let failed = io_error(&options.url);
    let connection = open_connection(&options.url).await?;
    let channel = connection.create_channel().await.map_err(&failed)?;
    channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(&failed)?;
    let frame = frame::encode_abort(flare_id, failure);
    for &pack in packs {
        let queue = queue_name(flare_id, pack);
        let options = BasicPublishOptions::default();
        let confirm = channel
            .basic_publish("".into(), queue.as_str().into(), options, &frame, BasicProperties::default())
            .await
            .map_err(&failed)?;
        confirm.await.map_err(&failed)?;
    }
    connection.close(200, "flare aborted".into()).await.map_err(&failed)
}

/// Opens one connection to the broker at `url`.
async fn open_connection(url: &str) -> Result<Connection, BackendError> {
    Connection::connect(url, ConnectionProperties::default()).await.map_err(io_error(url))
}

/// Declares the queue of `pack_id`: not durable, expiring once unused for
/// [`QUEUE_EXPIRY`]. Every declarer passes the same arguments.
async fn declare(channel: &Channel, flare_id: &str, pack_id: u32) -> Result<(), lapin::Error> {
    let queue = queue_name(flare_id, pack_id);
    let mut arguments = FieldTable::default();
    arguments.insert("x-expires".into(), AMQPValue::LongInt(QUEUE_EXPIRY.as_millis() as i32));
    channel.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), arguments).await?;
    Ok(())
}

impl Backend for RabbitBackend {
    fn send<'a>(
        &'a self,
        to_pack: u32,
        envelope: Envelope,
        payload: Payload<'a>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let split = Split::new(&self.flare_id, &envelope, payload.as_slice(), self.options.chunk_bytes);
            self.publish_frames(&[to_pack], split.contiguous_frames()).await
        })
    }

    fn publish(&self, envelope: Envelope, payload: Bytes) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let split = Split::new(&self.flare_id, &envelope, &payload, self.options.chunk_bytes);
            self.publish_frames(&self.others(), split.contiguous_frames()).await
        })
    }

    fn receive(&self) -> BoxFuture<'_, Result<Inbound, BackendError>> {
        Box::pin(async move {
            let mut consumer = self.consumer.lock().await;
            loop {
                let mut delivery =
                    consumer.next().await.ok_or(BackendError::Closed)?.map_err(io_error(&self.options.url))?;
                let inbound = self.decode(std::mem::take(&mut delivery.data));
                // Acked once stored (or found malformed): the broker keeps a
                // frame until the pack has it.
                delivery.ack(BasicAckOptions::default()).await.map_err(io_error(&self.options.url))?;
                if let Some(inbound) = inbound? {
                    return Ok(inbound);
                }
            }
        })
    }

    fn abort(&self, failure: Failure) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(
            async move { self.publish_frames(&self.others(), [frame::encode_abort(&self.flare_id, &failure)]).await },
        )
    }

    fn done(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.publish_frames(&self.others(), [frame::encode_done(&self.flare_id, self.pack_id)]).await
        })
    }

    fn framing_bytes(&self) -> u64 {
        self.framing_bytes.load(Ordering::Relaxed)
    }

    fn written_bytes(&self) -> u64 {
        self.written_bytes.load(Ordering::Relaxed)
    }

    fn residue(&self) -> String {
        format!(
            "the queue {}, which the broker deletes after {} s unused",
            queue_name(&self.flare_id, self.pack_id),
            QUEUE_EXPIRY.as_secs()
        )
    }

    fn close(&self, _failed: bool) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let failed = io_error(&self.options.url);
            let queue = queue_name(&self.flare_id, self.pack_id);
            let delete = QueueDeleteOptions::default();
            let deleted = self.publisher.queue_delete(queue.as_str().into(), delete).await;
            // Connections that failed have nothing left to close.
            let _ = self.consuming.close(200, "flare over".into()).await;
            let _ = self.publishing.close(200, "flare over".into()).await;
            if deleted.is_ok() {
                return Ok(());
            }
            // The flare's own connection may be what failed, or the broker
            // may be back in a moment: deleting runs again on a fresh
            // connection until it succeeds or the caller's deadline ends it.
            loop {
                tokio::time::sleep(CLEANUP_RETRY).await;
                let attempt = async {
                    let fresh = open_connection(&self.options.url).await?;
                    let channel = fresh.create_channel().await.map_err(&failed)?;
                    channel.queue_delete(queue.as_str().into(), delete).await.map_err(&failed)?;
                    fresh.close(200, "flare over".into()).await.map_err(&failed)
                };
                match attempt.await {
                    Ok(()) => return Ok(()),
                    Err(error) => tracing::debug!(flare_id = self.flare_id, %error, "cleanup failed; retrying"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
