//! Stopping the packs of a failed flare that still run elsewhere.

use std::collections::HashSet;
use std::time::Duration;

use burst_host::Failure;
use burst_host::comm::frame::DEFAULT_CHUNK_BYTES;
use burst_host::comm::{self, BrokerKind, BrokerOptions};

use super::{Cluster, Job};
use crate::api::BackendChoice;

impl Cluster {
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
