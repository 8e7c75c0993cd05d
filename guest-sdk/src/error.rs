//! Errors of the SDK: a communication error from the host, or a message that
//! could not be encoded or decoded.

use crate::wit::burst::bcm::types::CommError as WitCommError;

/// Why a communication call failed (the WIT `comm-error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommError {
    /// A worker id (destination, source or root) is not below the burst size.
    InvalidWorker(u32),
    /// The arguments break a precondition of the call.
    InvalidArgument(String),
    /// A message is larger than the host accepts.
    TooLarge(u64),
    /// The flare's deadline passed while waiting.
    Timeout,
    /// The flare was cancelled.
    Cancelled,
    /// Another worker of the flare failed.
    PeerFailed(u32),
    /// The remote backend failed.
    Backend(String),
    /// A message from the backend broke the wire protocol.
    Protocol(String),
}

impl std::fmt::Display for CommError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommError::InvalidWorker(w) => write!(f, "worker {w} does not exist in this flare"),
            CommError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            CommError::TooLarge(n) => write!(f, "message of {n} bytes is too large"),
            CommError::Timeout => write!(f, "the flare's deadline passed"),
            CommError::Cancelled => write!(f, "the flare was cancelled"),
            CommError::PeerFailed(w) => write!(f, "worker {w} of the flare failed"),
            CommError::Backend(m) => write!(f, "backend: {m}"),
            CommError::Protocol(m) => write!(f, "protocol: {m}"),
        }
    }
}

impl std::error::Error for CommError {}

impl From<WitCommError> for CommError {
    fn from(error: WitCommError) -> Self {
        match error {
            WitCommError::InvalidWorker(w) => CommError::InvalidWorker(w),
            WitCommError::InvalidArgument(m) => CommError::InvalidArgument(m),
            WitCommError::TooLarge(n) => CommError::TooLarge(n),
            WitCommError::Timeout => CommError::Timeout,
            WitCommError::Cancelled => CommError::Cancelled,
            WitCommError::PeerFailed(w) => CommError::PeerFailed(w),
            WitCommError::Backend(m) => CommError::Backend(m),
            WitCommError::Protocol(m) => CommError::Protocol(m),
        }
    }
}

/// An error of a [`Context`](crate::Context) call.
#[derive(Debug)]
pub enum Error {
    /// The host refused or could not complete the call.
    Comm(CommError),
    /// A typed message could not be encoded or decoded.
    Codec(String),
    /// The work function's own error.
    Work(String),
}

impl Error {
    /// A work function's own error, with a message.
    pub fn work(message: impl Into<String>) -> Self {
        Error::Work(message.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Comm(e) => write!(f, "{e}"),
            Error::Codec(m) => write!(f, "message codec: {m}"),
            Error::Work(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<CommError> for Error {
    fn from(error: CommError) -> Self {
        Error::Comm(error)
    }
}

impl From<WitCommError> for Error {
    fn from(error: WitCommError) -> Self {
        Error::Comm(error.into())
    }
}
