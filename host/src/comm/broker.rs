//! Choosing and connecting the broker that carries a flare between packs.

use std::sync::Arc;
use std::time::Duration;

use super::{Backend, BackendError, RabbitBackend, RedisBackend};

/// A message broker the packs of a flare share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerKind {
    /// Redis lists.
    Redis,
    /// RabbitMQ queues.
    RabbitMq,
}

impl BrokerKind {
    /// The URL of a broker of this kind on this machine's loopback.
    pub fn default_url(self) -> &'static str {
        match self {
            BrokerKind::Redis => "redis://127.0.0.1:6379",
            BrokerKind::RabbitMq => "amqp://guest:guest@127.0.0.1:5672/%2f",
        }
    }
}

/// How a pack reaches its broker.
#[derive(Clone, Debug)]
pub struct BrokerOptions {
    /// Which broker.
    pub kind: BrokerKind,
    /// Its URL (`redis://…` or `amqp://…`).
    pub url: String,
    /// Payload bytes per frame.
    pub chunk_bytes: usize,
    /// The flare's deadline; the flare's keys or queues expire this long
    /// (plus a margin) after their last use, as a backstop to cleanup.
    pub deadline: Duration,
    /// The flare's message limit ([`Limits::message_bytes`]): a peer that
    /// announces a larger message breaks the protocol.
    ///
    /// [`Limits::message_bytes`]: crate::Limits::message_bytes
    pub message_bytes: u64,
}

/// Connects pack `pack_id` of flare `flare_id` (of `pack_count` packs).
///
/// # Errors
/// [`BackendError`] naming the URL when the broker cannot be reached, or
/// saying why the flare id is unusable.
pub async fn connect(
    options: &BrokerOptions,
    flare_id: &str,
    pack_id: u32,
    pack_count: u32,
) -> Result<Arc<dyn Backend>, BackendError> {
    Ok(match options.kind {
        BrokerKind::Redis => Arc::new(RedisBackend::connect(flare_id, pack_id, pack_count, options.clone()).await?),
        BrokerKind::RabbitMq => Arc::new(RabbitBackend::connect(flare_id, pack_id, pack_count, options.clone()).await?),
    })
}
