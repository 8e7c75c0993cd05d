//! What a flare produces: per-worker outcomes and the flare's byte counts.
//!
//! These types are the results format shared by the CLI and (later) the
//! controller; they serialize with serde. Payloads stay opaque bytes here —
//! the SDK's JSON is interpreted only at the edges.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::comm::CommTime;

/// Flares of more packs than this record no pack-to-pack traffic (a
/// matrix of their packs would be too large to send and to read).
pub const MAX_TRAFFIC_PACKS: u32 = 128;

/// Why a worker (and so its flare) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The guest trapped (panic, unreachable, out-of-bounds, stack overflow…).
    Trap,
    /// The guest tried to grow its memory beyond its limit.
    MemoryLimit,
    /// The guest sent a message above the message limit, or more bytes
    /// were addressed to it than it may have buffered.
    MessageLimit,
    /// The guest's `work` returned an error.
    GuestError,
    /// The flare's deadline passed.
    Deadline,
    /// The worker was stopped because another worker of the flare failed.
    Cancelled,
    /// The remote backend failed.
    Backend,
    /// A message from the backend broke the wire protocol.
    Protocol,
    /// The component could not be instantiated for this worker.
    Instantiate,
}

impl FailureKind {
    /// Every kind, for documents that list them (the OpenAPI schema).
    pub const ALL: [FailureKind; 9] = [
        FailureKind::Trap,
        FailureKind::MemoryLimit,
        FailureKind::MessageLimit,
        FailureKind::GuestError,
        FailureKind::Deadline,
        FailureKind::Cancelled,
        FailureKind::Backend,
        FailureKind::Protocol,
        FailureKind::Instantiate,
    ];

    /// The name used in results (`trap`, `guest_error`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::MemoryLimit => "memory_limit",
            FailureKind::MessageLimit => "message_limit",
            FailureKind::GuestError => "guest_error",
            FailureKind::Deadline => "deadline",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Backend => "backend",
            FailureKind::Protocol => "protocol",
            FailureKind::Instantiate => "instantiate",
        }
    }
}

/// A failure with the worker it happened in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The worker that failed; `None` when no single worker is to blame
    /// (for example a backend that went away).
    pub worker_id: Option<u32>,
    /// What kind of failure.
    pub kind: FailureKind,
    /// Human-readable reason.
    pub message: String,
    /// When it happened, in microseconds since the Unix epoch.
    pub at_us: u64,
}

impl Failure {
    /// A failure happening now.
    pub fn new(worker_id: Option<u32>, kind: FailureKind, message: impl Into<String>) -> Self {
        Self { worker_id, kind, message: message.into(), at_us: now_us() }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = self.kind.as_str();
        match self.worker_id {
            Some(worker) => write!(f, "worker {worker}: {kind}: {}", self.message),
            None => write!(f, "{kind}: {}", self.message),
        }
    }
}

/// The outcome of one worker.
#[derive(Clone, Debug)]
pub struct WorkerResult {
    /// The worker's id.
    pub worker_id: u32,
    /// The pack it ran in.
    pub pack_id: u32,
    /// When its host began to set it up, in microseconds since the Unix
    /// epoch.
    pub placed_us: u64,
    /// When its component was instantiated (0 if it never was); it then
    /// waits for the rest of its pack.
    pub instantiated_us: u64,
    /// When `work` was entered.
    pub start_us: u64,
    /// When it returned (or was stopped).
    pub end_us: u64,
    /// Its time in comm calls.
    pub comm: CommTime,
    /// The bytes `work` returned, or why it failed.
    pub outcome: Result<Bytes, Failure>,
    /// What the guest wrote to stdout, up to the capture limit.
    pub stdout: Bytes,
    /// What the guest wrote to stderr, up to the capture limit.
    pub stderr: Bytes,
    /// Whether the guest wrote more to stdout than was kept.
    pub stdout_truncated: bool,
    /// Whether the guest wrote more to stderr than was kept.
    pub stderr_truncated: bool,
}

impl WorkerResult {
    /// A worker that failed before it could start, with nothing captured.
    pub fn failed(worker_id: u32, pack_id: u32, failure: Failure) -> Self {
        let now = now_us();
        Self {
            worker_id,
            pack_id,
            placed_us: now,
            instantiated_us: 0,
            start_us: now,
            end_us: now,
            comm: CommTime::default(),
            outcome: Err(failure),
            stdout: Bytes::new(),
            stderr: Bytes::new(),
            stdout_truncated: false,
            stderr_truncated: false,
        }
    }
}

/// Payload bytes moved by a flare, by path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteCounts {
    /// Delivered from one worker to another inside a pack (through memory).
    pub local: u64,
    /// Read from the remote backend by a pack (framing not included).
    pub remote: u64,
    /// Frame headers read from the remote backend, beyond `remote`.
    pub framing: u64,
    /// Written to the remote backend by a pack, frame headers included;
    /// a publish every other pack reads is written once.
    #[serde(default)]
    pub written: u64,
}

impl std::ops::AddAssign for ByteCounts {
    /// Saturating: counts may come from a report of another host.
    fn add_assign(&mut self, other: Self) {
        self.local = self.local.saturating_add(other.local);
        self.remote = self.remote.saturating_add(other.remote);
        self.framing = self.framing.saturating_add(other.framing);
        self.written = self.written.saturating_add(other.written);
    }
}

/// What one pack received, by the pack it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackTraffic {
    /// The receiving pack.
    pub pack_id: u32,
    /// Payload bytes it received from each pack of the flare, by pack id;
    /// its own entry is what moved inside it, through memory.
    pub from: Vec<u64>,
}

/// The outcome of a flare (or of the packs of it that ran here).
#[derive(Clone, Debug)]
pub struct FlareResult {
    /// The flare's id.
    pub flare_id: String,
    /// Results in worker-id order.
    pub workers: Vec<WorkerResult>,
    /// Payload bytes moved.
    pub bytes: ByteCounts,
    /// What each pack that ran received, by source pack, in pack order
    /// (empty above [`MAX_TRAFFIC_PACKS`] packs).
    pub traffic: Vec<PackTraffic>,
    /// The failure that failed the flare (the earliest), if any.
    pub failure: Option<Failure>,
}

impl FlareResult {
    /// Whether every worker succeeded.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none() && self.workers.iter().all(|w| w.outcome.is_ok())
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_match_the_serialized_names() {
        for kind in FailureKind::ALL {
            assert_eq!(serde_json::to_value(kind).expect("serializes"), kind.as_str());
        }
        let failure = Failure::new(Some(3), FailureKind::GuestError, "gave up");
        assert_eq!(failure.to_string(), "worker 3: guest_error: gave up");
    }
}
