//! Choosing and connecting the broker that carries a flare between packs.

use std::sync::Arc;
use std::time::Duration;

use super::{Backend, BackendError, RabbitBackend, RedisBackend, within};
use crate::Failure;

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

/// How long [`abort_flare`] may take.
const ABORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Tells the packs `packs` of flare `flare_id` through its broker that the
/// flare failed, from outside the flare: the controller, when it fails a
/// flare whose packs still run on other hosts, so that they stop within a
/// second instead of at their deadline. Packs that already closed are not
/// recreated.
///
/// # Errors
/// [`BackendError`] naming the broker, or a timeout.
pub async fn abort_flare(
    options: &BrokerOptions,
    flare_id: &str,
    packs: &[u32],
    failure: &Failure,
) -> Result<(), BackendError> {
    let what = || format!("telling the packs of flare {flare_id} at {} that it failed", options.url);
    let abort = async {
        match options.kind {
            BrokerKind::Redis => super::redis::abort_flare(options, flare_id, packs, failure).await,
            BrokerKind::RabbitMq => super::rabbitmq::abort_flare(options, flare_id, packs, failure).await,
        }
    };
    within(what, ABORT_TIMEOUT, abort).await
}
