//! The RabbitMQ backend: packs of a flare talk through one RabbitMQ broker.
//!
//! Every pack has one queue, `burst.{flare_id}.pack.{pack_id}`, reached
//! through the default (direct) exchange by its name, and bound to the
//! flare's fanout exchange `burst.{flare_id}.all`, which carries what is
//! published to every pack (broadcasts, all-gather parts, aborts) as one
//! message per frame; a pack drops the copies of its own publishes (tagged
//! with its pack id as `app-id`) unread. A publisher declares and binds a
//! destination queue before its first message to it (declaration is
//! idempotent), so nothing is lost when the receiving process starts later.
//! Publishes wait for the broker's confirms; the pack consumes its queue on a
//! channel of its own with a bounded prefetch and acks a frame only after the
//! reassembler has stored it. Queues expire when unused for the flare's
//! deadline plus a margin (`x-expires`) as a backstop, a pack deletes its
//! queue when it closes, and the fanout exchange (auto-delete) goes with the
//! last queue bound to it.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};

use super::frame::{self, Frame, Reassembler};
use super::redis::check_flare_id;
use super::{Backend, BackendError, BoxFuture, BrokerOptions, Envelope, Inbound};
use crate::Failure;

/// Unacknowledged frames the broker may push to a pack at once; bounds the
/// memory a pack spends on frames it has not stored yet.
const PREFETCH: u16 = 64;

/// Extra lifetime of a flare's queues beyond its deadline.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// One pack's endpoint on RabbitMQ.
pub struct RabbitBackend {
    flare_id: String,
    pack_id: u32,
    pack_count: u32,
    options: BrokerOptions,
    connection: Connection,
    publisher: Channel,
    declared: tokio::sync::Mutex<HashSet<u32>>,
    consumer: tokio::sync::Mutex<Consumer>,
    reassembler: Mutex<Reassembler>,
    framing_bytes: AtomicU64,
}

/// The fanout exchange of flare `flare_id`.
pub fn exchange_name(flare_id: &str) -> String {
    format!("burst.{flare_id}.all")
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
        let url = options.url.clone();
        let failed = io_error(&url);
        let connect = Connection::connect(&url, ConnectionProperties::default());
        let connection = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| BackendError::Io(format!("rabbitmq at {url}: no answer within 10 s")))?
            .map_err(&failed)?;
        let publisher = connection.create_channel().await.map_err(&failed)?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await.map_err(&failed)?;
        let receiving = connection.create_channel().await.map_err(&failed)?;
        receiving.basic_qos(PREFETCH, BasicQosOptions::default()).await.map_err(&failed)?;
        let backend_queue = queue_name(flare_id, pack_id);
        declare(&receiving, flare_id, pack_id, options.deadline).await.map_err(&failed)?;
        let consumer = receiving
            .basic_consume(
                backend_queue.as_str().into(),
                format!("pack-{pack_id}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(&failed)?;
        Ok(Self {
            flare_id: flare_id.to_owned(),
            pack_id,
            pack_count,
            options,
            connection,
            publisher,
            declared: tokio::sync::Mutex::new(HashSet::from([pack_id])),
            consumer: tokio::sync::Mutex::new(consumer),
            reassembler: Mutex::default(),
            framing_bytes: AtomicU64::new(0),
        })
    }

    /// Declares (and binds) the queue of `pack_id` unless this endpoint
    /// already did.
    async fn ensure_declared(&self, pack_id: u32) -> Result<(), BackendError> {
        let mut declared = self.declared.lock().await;
        if !declared.contains(&pack_id) {
            declare(&self.publisher, &self.flare_id, pack_id, self.options.deadline)
                .await
                .map_err(io_error(&self.options.url))?;
            declared.insert(pack_id);
        }
        Ok(())
    }

    /// Publishes frames to `exchange` with `routing_key` and waits for the
    /// broker to confirm every one.
    async fn publish_frames(&self, exchange: &str, routing_key: &str, frames: &[Bytes]) -> Result<(), BackendError> {
        let failed = io_error(&self.options.url);
        let properties = BasicProperties::default().with_app_id(self.pack_id.to_string().as_str().into());
        let mut confirms = Vec::with_capacity(frames.len());
        for frame in frames {
            let confirm = self
                .publisher
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    frame,
                    properties.clone(),
                )
                .await
                .map_err(&failed)?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            if !confirm.await.map_err(&failed)?.is_ack() {
                return Err(BackendError::Io(format!(
                    "rabbitmq at {}: a frame to {exchange}/{routing_key} was refused",
                    self.options.url
                )));
            }
        }
        Ok(())
    }

    /// Publishes frames that every other pack receives once, through the
    /// fanout exchange.
    async fn fan_out(&self, frames: &[Bytes]) -> Result<(), BackendError> {
        for pack in self.others() {
            self.ensure_declared(pack).await?;
        }
        self.publish_frames(&exchange_name(&self.flare_id), "", frames).await
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

/// Declares the queue of `pack_id` (not durable, expiring once unused for
/// the deadline plus a margin) and the flare's fanout exchange, and binds
/// the one to the other. Every declarer passes the same arguments.
async fn declare(channel: &Channel, flare_id: &str, pack_id: u32, deadline: Duration) -> Result<(), lapin::Error> {
    let queue = queue_name(flare_id, pack_id);
    let exchange = exchange_name(flare_id);
    let mut arguments = FieldTable::default();
    let expires_ms = (deadline + EXPIRY_MARGIN).as_millis().min(i32::MAX as u128) as i32;
    arguments.insert("x-expires".into(), AMQPValue::LongInt(expires_ms));
    channel.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), arguments).await?;
    let auto_delete = ExchangeDeclareOptions { auto_delete: true, ..ExchangeDeclareOptions::default() };
    channel
        .exchange_declare(exchange.as_str().into(), ExchangeKind::Fanout, auto_delete, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

impl Backend for RabbitBackend {
    fn send(&self, to_pack: u32, envelope: Envelope, payload: Bytes) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let frames = frame::encode_message(&self.flare_id, &envelope, &payload, self.options.chunk_bytes);
            self.ensure_declared(to_pack).await?;
            self.publish_frames("", &queue_name(&self.flare_id, to_pack), &frames).await
        })
    }

    fn publish(&self, envelope: Envelope, payload: Bytes) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let frames = frame::encode_message(&self.flare_id, &envelope, &payload, self.options.chunk_bytes);
            self.fan_out(&frames).await
        })
    }

    fn receive(&self) -> BoxFuture<'_, Result<Inbound, BackendError>> {
        Box::pin(async move {
            let mut consumer = self.consumer.lock().await;
            loop {
                let mut delivery =
                    consumer.next().await.ok_or(BackendError::Closed)?.map_err(io_error(&self.options.url))?;
                let own =
                    delivery.properties.app_id().as_ref().is_some_and(|id| id.as_str() == self.pack_id.to_string());
                let inbound = if own { Ok(None) } else { self.decode(std::mem::take(&mut delivery.data)) };
                // Acked once stored (or found malformed, or our own
                // publish): the broker keeps a frame until the pack has it.
                delivery.ack(BasicAckOptions::default()).await.map_err(io_error(&self.options.url))?;
                if let Some(inbound) = inbound? {
                    return Ok(inbound);
                }
            }
        })
    }

    fn abort(&self, failure: Failure) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move { self.fan_out(&[frame::encode_abort(&self.flare_id, &failure)]).await })
    }

    fn framing_bytes(&self) -> u64 {
        self.framing_bytes.load(Ordering::Relaxed)
    }

    fn close(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let failed = io_error(&self.options.url);
            let queue = queue_name(&self.flare_id, self.pack_id);
            self.publisher.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.map_err(&failed)?;
            self.connection.close(200, "flare over".into()).await.map_err(&failed)
        })
    }
}
