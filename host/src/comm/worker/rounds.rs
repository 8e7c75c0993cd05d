//! The collectives whose local workers meet in one round of their pack, so
//! that the pack crosses to the other packs once rather than once per
//! worker: `broadcast`, `all-gather`, `reduce`, `all-reduce`, `barrier`.
//!
//! A round's results are [`SharedMessage`]s: what comes from another pack
//! is handed to the pack's workers as soon as it begins to arrive, and each
//! worker reads it for itself, piece by piece while it arrives (the `-first`
//! forms) or whole.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::try_join_all;

use super::WorkerComm;
use crate::comm::message::{Payload, Reading, SharedMessage};
use crate::comm::reduce::check_elements;
use crate::comm::{CommError, EVERY_PACK, Envelope, Kind, PackComm, fold};
use crate::{Dtype, ReduceOp};

impl WorkerComm {
    /// The root's data, on every worker.
    ///
    /// # Errors
    /// `InvalidWorker` for a bad root, `InvalidArgument` when the root passes
    /// no data or another worker passes some.
    pub async fn broadcast(&self, root: u32, data: Option<Bytes>) -> Result<Bytes, CommError> {
        let message = self.broadcast_message(root, data).await?;
        self.pack.read(Reading::shared(&message).rest()).await
    }

    /// [`broadcast`](Self::broadcast) as the result's length and first
    /// piece; [`recv_more(0)`](Self::recv_more) reads the rest while it
    /// arrives from the root's pack.
    ///
    /// # Errors
    /// As [`broadcast`](Self::broadcast).
    pub async fn broadcast_first(&self, root: u32, data: Option<Bytes>) -> Result<(u64, Bytes), CommError> {
        let message = self.broadcast_message(root, data).await?;
        let mut firsts = self.unread.begin(&self.pack, vec![Reading::shared(&message)]).await?;
        firsts.pop().ok_or_else(|| CommError::Protocol("a broadcast produced no result".into()))
    }

    /// The root's pack publishes the root's data once; every other pack
    /// takes it as it begins to arrive and shares it among its workers.
    async fn broadcast_message(&self, root: u32, data: Option<Bytes>) -> Result<SharedMessage, CommError> {
        self.check_worker(root)?;
        match (root == self.worker_id, data.is_some()) {
            (true, false) => {
                return Err(CommError::InvalidArgument("the root of a broadcast must pass data".into()));
            }
            (false, true) => {
                return Err(CommError::InvalidArgument(format!("only the root ({root}) passes data to a broadcast")));
            }
            _ => {}
        }
        self.check_size(data.as_ref().map(Bytes::len))?;
        let pack = &*self.pack;
        self.collective(Kind::Broadcast, Some(root), |seq| async move {
            let envelope = Envelope::collective(Kind::Broadcast, seq, root, EVERY_PACK);
            let output = pack
                .round((Kind::Broadcast, seq), self.local_index, data, |mut inputs| async move {
                    let root_index = root.checked_sub(pack.range().first).map(|i| i as usize);
                    let message = match root_index.and_then(|i| inputs.get_mut(i)).and_then(Option::take) {
                        Some(data) => {
                            pack.publish(envelope, data.clone()).await?;
                            SharedMessage::Whole(data)
                        }
                        None => SharedMessage::new(pack.take_message(envelope).await?),
                    };
                    pack.count_local(message.len() * u64::from(pack.range().count - 1));
                    Ok(Arc::new(vec![message]))
                })
                .await?;
            first(&output)
        })
        .await
    }

    /// Every worker's data, on every worker, indexed by sender.
    ///
    /// # Errors
    /// The flare's failure.
    pub async fn all_gather(&self, data: Bytes) -> Result<Vec<Bytes>, CommError> {
        let parts = self.all_gather_messages(data).await?;
        let mut all = Vec::with_capacity(parts.len());
        for part in parts.iter() {
            all.push(self.pack.read(Reading::shared(part).rest()).await?);
        }
        Ok(all)
    }

    /// [`all_gather`](Self::all_gather), each part as its length and first
    /// piece; [`recv_more`](Self::recv_more) with the sender's id reads the
    /// rest of a part from another pack while it arrives.
    ///
    /// # Errors
    /// As [`all_gather`](Self::all_gather).
    pub async fn all_gather_first(&self, data: Bytes) -> Result<Vec<(u64, Bytes)>, CommError> {
        let parts = self.all_gather_messages(data).await?;
        self.unread.begin(&self.pack, parts.iter().map(Reading::shared).collect()).await
    }

    /// Each pack publishes its workers' parts once and takes every other
    /// pack's as they begin to arrive.
    async fn all_gather_messages(&self, data: Bytes) -> Result<Arc<Vec<SharedMessage>>, CommError> {
        self.check_size([data.len()])?;
        let pack = &*self.pack;
        self.collective(Kind::AllGather, None, |seq| async move {
            pack.round((Kind::AllGather, seq), self.local_index, Some(data), |inputs| async move {
                let range = pack.range();
                let envelope = |source| Envelope::collective(Kind::AllGather, seq, source, EVERY_PACK);
                let own: Vec<Bytes> = inputs.into_iter().map(Option::unwrap_or_default).collect();
                try_join_all(
                    range.workers().zip(&own).map(|(source, part)| pack.publish(envelope(source), part.clone())),
                )
                .await?;
                let own_bytes: u64 = own.iter().map(|p| p.len() as u64).sum();
                let mut all = Vec::with_capacity(pack.layout().burst_size() as usize);
                for source in 0..range.first {
                    all.push(SharedMessage::new(pack.take_message(envelope(source)).await?));
                }
                all.extend(own.into_iter().map(SharedMessage::Whole));
                for source in range.workers().end..pack.layout().burst_size() {
                    all.push(SharedMessage::new(pack.take_message(envelope(source)).await?));
                }
                let all_bytes: u64 = all.iter().map(SharedMessage::len).sum();
                let count = u64::from(range.count);
                pack.count_local(own_bytes * (count - 1) + (all_bytes - own_bytes) * (count - 1));
                Ok(Arc::new(all))
            })
            .await
        })
        .await
    }

    /// Element-wise reduction of every worker's `data`, delivered to `root`.
    ///
    /// # Errors
    /// `InvalidWorker` for a bad root; `InvalidArgument` for data that is not
    /// whole elements of `ty` or inputs of different lengths.
    pub async fn reduce(&self, root: u32, data: Bytes, ty: Dtype, op: ReduceOp) -> Result<Option<Bytes>, CommError> {
        self.check_worker(root)?;
        check_elements(ty, data.len()).map_err(|e| CommError::InvalidArgument(e.to_string()))?;
        self.check_size([data.len()])?;
        let pack = &*self.pack;
        self.collective(Kind::Reduce, Some(root), |seq| async move {
            let output = pack
                .round((Kind::Reduce, seq), self.local_index, Some(data), |inputs| async move {
                    let layout = pack.layout();
                    let root_pack = layout.pack_of(root);
                    let partial = combine_pack(pack, &inputs, ty, op)?;
                    let envelope = |from_pack| {
                        Envelope::collective(Kind::Reduce, seq, layout.leader(from_pack), layout.leader(root_pack))
                    };
                    if pack.pack_id() != root_pack {
                        pack.route(envelope(pack.pack_id()), Payload::Shared(&partial)).await?;
                        return Ok(Arc::new(Vec::new()));
                    }
                    let mut partials = Vec::with_capacity(layout.pack_count() as usize);
                    for from_pack in 0..layout.pack_count() {
                        partials.push(if from_pack == root_pack {
                            partial.clone()
                        } else {
                            pack.take(envelope(from_pack)).await?
                        });
                    }
                    let result = fold(ty, op, &partials).map_err(|e| CommError::InvalidArgument(e.to_string()))?;
                    Ok(Arc::new(vec![SharedMessage::Whole(result)]))
                })
                .await?;
            if root != self.worker_id {
                return Ok(None);
            }
            whole(pack, first(&output)?).await.map(Some)
        })
        .await
    }

    /// Element-wise reduction of every worker's `data`, on every worker.
    ///
    /// # Errors
    /// `InvalidArgument` for data that is not whole elements of `ty` or
    /// inputs of different lengths.
    pub async fn all_reduce(&self, data: Bytes, ty: Dtype, op: ReduceOp) -> Result<Bytes, CommError> {
        check_elements(ty, data.len()).map_err(|e| CommError::InvalidArgument(e.to_string()))?;
        self.check_size([data.len()])?;
        self.reduce_everywhere(Kind::AllReduce, data, ty, op).await
    }

    /// Returns once every worker has entered the barrier.
    ///
    /// # Errors
    /// The flare's failure.
    pub async fn barrier(&self) -> Result<(), CommError> {
        self.reduce_everywhere(Kind::Barrier, Bytes::new(), Dtype::U8, ReduceOp::Sum).await.map(drop)
    }

    /// Reduces to pack 0, which publishes the result to every other pack.
    async fn reduce_everywhere(&self, kind: Kind, data: Bytes, ty: Dtype, op: ReduceOp) -> Result<Bytes, CommError> {
        let pack = &*self.pack;
        self.collective(kind, None, |seq| async move {
            let output = pack
                .round((kind, seq), self.local_index, Some(data), |inputs| async move {
                    let layout = pack.layout();
                    let partial = combine_pack(pack, &inputs, ty, op)?;
                    let result_envelope = Envelope::collective(kind, seq, 0, EVERY_PACK);
                    let result = if pack.pack_id() == 0 {
                        let mut partials = vec![partial];
                        for from_pack in 1..layout.pack_count() {
                            partials
                                .push(pack.take(Envelope::collective(kind, seq, layout.leader(from_pack), 0)).await?);
                        }
                        let result = fold(ty, op, &partials).map_err(|e| CommError::InvalidArgument(e.to_string()))?;
                        pack.publish(result_envelope, result.clone()).await?;
                        result
                    } else {
                        let envelope = Envelope::collective(kind, seq, layout.leader(pack.pack_id()), 0);
                        pack.route(envelope, Payload::Shared(&partial)).await?;
                        pack.take(result_envelope).await?
                    };
                    pack.count_local(result.len() as u64 * u64::from(pack.range().count - 1));
                    Ok(Arc::new(vec![SharedMessage::Whole(result)]))
                })
                .await?;
            whole(pack, first(&output)?).await
        })
        .await
    }
}

/// The one result a round hands every worker; a round that produced none
/// is a broken invariant, reported rather than a panic in the host.
fn first(output: &[SharedMessage]) -> Result<SharedMessage, CommError> {
    output.first().cloned().ok_or_else(|| CommError::Protocol("a collective round produced no result".into()))
}

/// A round's result in one buffer (itself, when it is whole).
async fn whole(pack: &PackComm, message: SharedMessage) -> Result<Bytes, CommError> {
    pack.read(Reading::shared(&message).rest()).await
}

/// Folds the inputs of a pack's round in worker-id order.
fn combine_pack(pack: &PackComm, inputs: &[Option<Bytes>], ty: Dtype, op: ReduceOp) -> Result<Bytes, CommError> {
    let parts: Vec<&Bytes> = inputs.iter().flatten().collect();
    pack.count_local(parts.iter().skip(1).map(|p| p.len() as u64).sum());
    fold(ty, op, parts).map_err(|e| CommError::InvalidArgument(e.to_string()))
}
