//! The communication middleware: matching, collectives and the two data paths.
//!
//! Every worker has a [`WorkerComm`]; the workers of one pack in this process
//! share a [`PackComm`]. A message is addressed by an [`Envelope`] (kind,
//! tag, sequence number, source, destination) that is unique within a flare,
//! so matching is a map lookup and a collective can never consume a
//! point-to-point message or the reverse. Messages to a worker of the same
//! pack go straight into the pack's [`Mailbox`]; messages to another pack go
//! through the pack's [`Backend`], whose receiving side feeds the destination
//! pack's mailbox.
//!
//! Pure logic (envelopes, matching, numeric reduction kernels, the routing
//! plan) lives in modules that do no I/O and are unit-tested on their own.

mod backend;
#[cfg(test)]
mod backend_tests;
mod broker;
mod envelope;
mod error;
pub mod frame;
mod mailbox;
mod memory;
mod message;
mod pack;
pub mod plan;
pub mod rabbitmq;
pub mod redis;
mod reduce;
pub mod timeline;
mod unread;
mod worker;

pub use backend::{Backend, BackendError, BoxFuture, Inbound, within};
pub use broker::{BrokerKind, BrokerOptions, abort_flare, connect};
pub use envelope::{EVERY_PACK, Envelope, Kind};
pub use error::CommError;
pub use mailbox::{Account, Delivered, MESSAGE_OVERHEAD, Mailbox, Take};
pub use memory::MemoryBroker;
pub use message::{Arriving, Incomplete, Message, Payload, Pieces, Reading};
pub use pack::{CLEANUP_TIMEOUT, CONCLUDE_SLACK, PackComm};
pub use rabbitmq::RabbitBackend;
pub use redis::RedisBackend;
pub use reduce::{ReduceError, fold};
pub use timeline::{CommTime, MAX_COMM_SPANS, Primitive};
pub use worker::{MAX_CHANNELS, WorkerComm};
