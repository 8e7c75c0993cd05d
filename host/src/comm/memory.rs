//! An in-process broker: the backend of a flare whose packs all run in this
//! process (`burst run --granularity`).
//!
//! Each pack has an unbounded inbox; payloads move as refcounted `Bytes`, so
//! nothing is copied (but a payload read in place from a sender's memory,
//! once), yet every message still takes the remote path and is
//! counted as remote by the pack that reads it — the byte counts of a flare
//! are the same here as through a real broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{Mutex, mpsc};

use super::message::{Message, Payload};
use super::{Backend, BackendError, BoxFuture, Envelope, Inbound};
use crate::Failure;

/// The broker shared by every pack of one flare.
pub struct MemoryBroker {
    inboxes: Vec<mpsc::UnboundedSender<Inbound>>,
    receivers: std::sync::Mutex<Vec<Option<mpsc::UnboundedReceiver<Inbound>>>>,
}

impl MemoryBroker {
    /// A broker for `pack_count` packs.
    pub fn new(pack_count: u32) -> Arc<Self> {
        let (inboxes, receivers) =
            (0..pack_count).map(|_| mpsc::unbounded_channel()).map(|(s, r)| (s, Some(r))).unzip();
        Arc::new(Self { inboxes, receivers: std::sync::Mutex::new(receivers) })
    }

    /// The endpoint of pack `pack_id`; each pack's endpoint can be taken once.
    ///
    /// # Errors
    /// [`BackendError::Closed`] if the pack does not exist or its endpoint
    /// was already taken.
    pub fn endpoint(self: &Arc<Self>, pack_id: u32) -> Result<Arc<dyn Backend>, BackendError> {
        let inbox = self
            .receivers
            .lock()
            .map_err(|_| BackendError::Closed)?
            .get_mut(pack_id as usize)
            .and_then(Option::take)
            .ok_or(BackendError::Closed)?;
        Ok(Arc::new(Endpoint {
            broker: Arc::clone(self),
            pack_id,
            inbox: Mutex::new(inbox),
            written: AtomicU64::new(0),
        }))
    }

    fn post(&self, to_pack: u32, inbound: Inbound) -> Result<(), BackendError> {
        let inbox = self.inboxes.get(to_pack as usize).ok_or(BackendError::Closed)?;
        // A pack whose workers all finished has dropped its inbox; what is
        // still sent to it has no receiver, exactly as with a real broker.
        let _ = inbox.send(inbound);
        Ok(())
    }

    fn others(&self, pack_id: u32) -> impl Iterator<Item = u32> + '_ {
        (0..self.inboxes.len() as u32).filter(move |&p| p != pack_id)
    }
}

struct Endpoint {
    broker: Arc<MemoryBroker>,
    pack_id: u32,
    inbox: Mutex<mpsc::UnboundedReceiver<Inbound>>,
    written: AtomicU64,
}

impl Backend for Endpoint {
    fn send<'a>(
        &'a self,
        to_pack: u32,
        envelope: Envelope,
        payload: Payload<'a>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.written.fetch_add(payload.len() as u64, Ordering::Relaxed);
            self.broker.post(to_pack, Inbound::Message(envelope, Message::Whole(payload.to_bytes())))
        })
    }

    fn publish(&self, envelope: Envelope, payload: Bytes) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            // One refcounted buffer every other pack reads: written once.
            self.written.fetch_add(payload.len() as u64, Ordering::Relaxed);
            for pack in self.broker.others(self.pack_id) {
                self.broker.post(pack, Inbound::Message(envelope, Message::Whole(payload.clone())))?;
            }
            Ok(())
        })
    }

    fn receive(&self) -> BoxFuture<'_, Result<Inbound, BackendError>> {
        Box::pin(async move { self.inbox.lock().await.recv().await.ok_or(BackendError::Closed) })
    }

    fn written_bytes(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn close(&self, _failed: bool) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async { Ok(()) })
    }

    fn done(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            for pack in self.broker.others(self.pack_id) {
                self.broker.post(pack, Inbound::Done(self.pack_id))?;
            }
            Ok(())
        })
    }

    fn abort(&self, failure: Failure) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            for pack in self.broker.others(self.pack_id) {
                self.broker.post(pack, Inbound::Abort(failure.clone()))?;
            }
            Ok(())
        })
    }
}
