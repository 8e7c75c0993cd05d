//! Stopping flares: one a tenant cancels, and the packs of a failed flare
//! that still run elsewhere.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use burst_host::comm::frame::DEFAULT_CHUNK_BYTES;
use burst_host::comm::{self, BrokerKind, BrokerOptions};
use burst_host::{Failure, FailureKind};

use super::{Cluster, Job};
use crate::api::BackendChoice;
use crate::service::store::{FlareRecord, StoreError};

/// Why a flare was not cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// The tenant has no such flare.
    #[error("no flare `{0}`")]
    NotFound(String),
    /// It has already finished.
    #[error("flare `{0}` has already finished")]
    Finished(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Cluster {
    /// Cancels a queued or running flare of `tenant`: it fails at once with
    /// `cancelled` (its waiters wake, its results are stored), leaves the
    /// queue, and its packs are stopped — on the embedded host directly,
    /// elsewhere through the flare's broker; each host frees its slots when
    /// its packs have stopped. Answers the flare's final state.
    ///
    /// # Errors
    /// [`CancelError`] when the tenant has no such flare or it has finished.
    pub fn cancel(self: &Arc<Self>, tenant: &str, flare_id: &str) -> Result<FlareRecord, CancelError> {
        let mut state = self.lock();
        match state.live.get(flare_id) {
            Some(live) if live.job.record.tenant == tenant => live.cancel.cancel(),
            _ => {
                drop(state);
                return Err(match self.store.flare(flare_id)? {
                    Some(record) if record.tenant == tenant => CancelError::Finished(flare_id.to_owned()),
                    _ => CancelError::NotFound(flare_id.to_owned()),
                });
            }
        }
        let failure = Failure::new(None, FailureKind::Cancelled, "the flare was cancelled (DELETE /v1/flares/{id})");
        self.finish(&mut state, flare_id, Some(failure));
        self.pump(&mut state);
        drop(state);
        self.store.flare(flare_id)?.ok_or_else(|| CancelError::NotFound(flare_id.to_owned()))
    }

    /// Tells the packs of a failed flare that still run (on hosts whose
    /// reports are missing) that it failed, through the flare's broker:
    /// they stop within a second, report, and free their slots, instead of
    /// waiting for their deadline.
    pub(super) fn abort_running(&self, job: &Job, waiting_on: &HashSet<String>, id: &str, failure: Failure) {
        let url = match job.backend {
            BackendChoice::Memory => return,
            BackendChoice::Redis => self.config.redis_url.clone(),
            BackendChoice::Rabbitmq => self.config.rabbitmq_url.clone(),
        };
        let kind = if job.backend == BackendChoice::Redis { BrokerKind::Redis } else { BrokerKind::RabbitMq };
        let options = BrokerOptions {
            kind,
            url,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            deadline: Duration::from_millis(job.deadline_ms),
            message_bytes: job.limits.message_bytes,
        };
        let running: Vec<u32> = (job.record.doc.placement.iter().flatten())
            .filter(|pack| waiting_on.contains(&pack.host))
            .map(|pack| pack.pack_id)
            .collect();
        let flare_id = id.to_owned();
        tokio::spawn(async move {
            match comm::abort_flare(&options, &flare_id, &running, &failure).await {
                Ok(()) => tracing::info!(flare_id, "told the flare's running packs that it failed"),
                Err(error) => {
                    tracing::warn!(flare_id, %error, "could not tell the flare's running packs that it failed")
                }
            }
        });
    }
}
