//! Errors a communication call returns to the guest.
//!
//! This is the host-side mirror of the WIT `comm-error`; the linker converts
//! it at the boundary. A `CommError` is a value the guest sees and may
//! handle — never a trap.

use crate::bindings::WitCommError;

/// Why a communication call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommError {
    /// A worker id (destination, source or root) is not below the burst size.
    #[error("worker {0} does not exist in this flare")]
    InvalidWorker(u32),
    /// The arguments break a precondition of the call.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A message is larger than the host accepts.
    #[error("message of {0} bytes is too large")]
    TooLarge(u64),
    /// The flare's deadline passed while waiting.
    #[error("the flare's deadline passed")]
    Timeout,
    /// The flare was cancelled.
    #[error("the flare was cancelled")]
    Cancelled,
    /// Another worker of the flare failed.
    #[error("worker {0} of the flare failed")]
    PeerFailed(u32),
    /// The remote backend failed.
    #[error("backend: {0}")]
    Backend(String),
    /// A message from the backend broke the wire protocol.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl From<CommError> for WitCommError {
    fn from(error: CommError) -> Self {
        match error {
            CommError::InvalidWorker(w) => WitCommError::InvalidWorker(w),
            CommError::InvalidArgument(m) => WitCommError::InvalidArgument(m),
            CommError::TooLarge(n) => WitCommError::TooLarge(n),
            CommError::Timeout => WitCommError::Timeout,
            CommError::Cancelled => WitCommError::Cancelled,
            CommError::PeerFailed(w) => WitCommError::PeerFailed(w),
            CommError::Backend(m) => WitCommError::Backend(m),
            CommError::Protocol(m) => WitCommError::Protocol(m),
        }
    }
}
