//! The path between packs.
//!
//! A [`Backend`] is one pack's endpoint on the medium that connects the packs
//! of a flare (an in-process broker, Redis, RabbitMQ). It moves opaque
//! payloads addressed by [`Envelope`]s; matching, collectives and locality
//! are done above it, by the pack. Failure contract: any error is final for
//! the flare — the pack fails the flare with a `backend` failure and every
//! blocked worker is released.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

use super::Envelope;
use super::message::{Message, Payload};
use crate::Failure;

/// A boxed future, so that backends can be chosen at run time.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that arrived for this pack.
#[derive(Debug)]
pub enum Inbound {
    /// A message for a worker (or the leader) of this pack, possibly still
    /// arriving.
    Message(Envelope, Message),
    /// Another pack failed the flare.
    Abort(Failure),
    /// Pack `.0`'s workers have all returned: it sends nothing more.
    Done(u32),
}

/// Why the backend failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum BackendError {
    /// The medium is gone (broker closed, connection lost).
    #[error("the backend closed")]
    Closed,
    /// The medium reported an error.
    #[error("{0}")]
    Io(String),
    /// Something arrived that breaks the wire protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The flare id is taken: the medium holds a pack of that flare already.
    #[error("{0}")]
    InUse(String),
    /// The medium did not answer in time.
    #[error("{what}: no answer within {limit:?}")]
    Timeout {
        /// What was asked of it, and of which broker.
        what: String,
        /// How long it had.
        limit: Duration,
    },
}

/// Runs one operation on the medium, giving up after `limit`: no broker
/// call may hang its caller, whatever the broker does.
///
/// # Errors
/// The operation's own error, or [`BackendError::Timeout`] naming `what`.
pub async fn within<T>(
    what: impl FnOnce() -> String,
    limit: Duration,
    operation: impl Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    tokio::time::timeout(limit, operation).await.unwrap_or_else(|_| Err(BackendError::Timeout { what: what(), limit }))
}

/// One pack's endpoint on the path between packs.
pub trait Backend: Send + Sync + 'static {
    /// Sends a message to pack `to_pack`. A borrowed payload is read only
    /// while the returned future runs, a chunk at a time.
    fn send<'a>(
        &'a self,
        to_pack: u32,
        envelope: Envelope,
        payload: Payload<'a>,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Publishes a message that every *other* pack receives exactly once.
    fn publish(&self, envelope: Envelope, payload: Bytes) -> BoxFuture<'_, Result<(), BackendError>>;

    /// Waits for the next message or abort addressed to this pack.
    /// Called by one task per pack only.
    fn receive(&self) -> BoxFuture<'_, Result<Inbound, BackendError>>;

    /// Tells every other pack that the flare failed.
    fn abort(&self, failure: Failure) -> BoxFuture<'_, Result<(), BackendError>>;

    /// Tells every other pack that this pack's workers have all returned:
    /// it sends nothing more. Written after everything the pack sent, so a
    /// pack that has heard this from every other pack has received all
    /// its messages (each pack's inbox is first in, first out).
    fn done(&self) -> BoxFuture<'_, Result<(), BackendError>>;

    /// Bytes of framing (headers) this endpoint has read, beyond payloads.
    fn framing_bytes(&self) -> u64 {
        0
    }

    /// Bytes this endpoint has written to the medium: payloads once per
    /// write, with their framing.
    fn written_bytes(&self) -> u64 {
        0
    }

    /// Deletes what this pack holds in the medium; called when the pack's
    /// workers have all ended, on success and on failure (`failed`: the
    /// other packs may never read what this pack left for them).
    fn close(&self, failed: bool) -> BoxFuture<'_, Result<(), BackendError>>;

    /// What this pack may have left in the medium when `close` could not
    /// finish, and when it goes away on its own; for the warning that says so.
    fn residue(&self) -> String {
        String::from("nothing")
    }
}
