//! What one worker of a flare may use.
//!
//! Every limit has a default that is safe for untrusted code and can be set
//! per deployment and per flare; the `MAX_*` constants are hard caps that no
//! setting can raise, because they bound what a hostile guest can make the
//! host allocate.

use serde::{Deserialize, Serialize};

/// Hard cap on one worker's linear memory.
pub const MAX_MEMORY_PER_WORKER: u64 = 4 << 30;

/// Hard cap on one message (a `send`, one part of a collective, or what a
/// root broadcasts). Equal to what one frame header can describe.
pub const MAX_MESSAGE_BYTES: u64 = crate::comm::frame::MAX_MESSAGE_BYTES;

/// Hard cap on the bytes of stdout (and of stderr) kept per worker.
pub const MAX_CAPTURED_OUTPUT: u64 = 16 << 20;

/// Bytes a flare may write to its output directory unless it asks for
/// another quota.
pub const DEFAULT_OUTPUT_QUOTA: u64 = 1 << 30;

/// Largest output quota a flare may ask for.
pub const MAX_OUTPUT_QUOTA: u64 = 256 << 30;

/// Hard cap on the instances, tables and memories one worker may create.
pub const MAX_INSTANCES_PER_WORKER: u32 = 64;

/// Hard cap on the elements of one table.
pub const MAX_TABLE_ELEMENTS: u32 = 1 << 20;

/// Limits of each worker of a flare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest linear memory of one worker, in bytes.
    pub memory_bytes: u64,
    /// Largest message a worker may send or contribute to a collective.
    pub message_bytes: u64,
    /// Most bytes addressed to one worker that the host holds for it before
    /// it receives them.
    pub buffered_bytes: u64,
    /// Bytes of stdout, and of stderr, kept per worker; the rest is dropped
    /// and the result says it was truncated.
    pub output_bytes: u64,
    /// Core and component instances one worker may create.
    pub instances: u32,
    /// Tables one worker may create.
    pub tables: u32,
    /// Elements of one table.
    pub table_elements: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            message_bytes: 256 << 20,
            buffered_bytes: 1 << 30,
            output_bytes: 64 << 10,
            instances: 32,
            tables: 32,
            table_elements: 100_000,
        }
    }
}

/// A limit out of its range.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    /// Set above its hard cap.
    #[error("limit `{name}` is {value}, above its cap of {cap}")]
    AboveCap {
        /// The limit's field name.
        name: &'static str,
        /// The value asked for.
        value: u64,
        /// Its hard cap.
        cap: u64,
    },
    /// Set to zero, which no worker can run with.
    #[error("limit `{0}` must not be 0")]
    Zero(&'static str),
}

impl Limits {
    /// Checks every limit against its hard cap, and that none that every
    /// worker needs is zero.
    ///
    /// # Errors
    /// [`LimitError`] naming the first limit out of range.
    pub fn check(&self) -> Result<(), LimitError> {
        let fields: [(&'static str, u64, u64); 7] = [
            ("memory_bytes", self.memory_bytes, MAX_MEMORY_PER_WORKER),
            ("message_bytes", self.message_bytes, MAX_MESSAGE_BYTES),
            ("buffered_bytes", self.buffered_bytes, u64::MAX),
            ("output_bytes", self.output_bytes, MAX_CAPTURED_OUTPUT),
            ("instances", self.instances.into(), MAX_INSTANCES_PER_WORKER.into()),
            ("tables", self.tables.into(), MAX_INSTANCES_PER_WORKER.into()),
            ("table_elements", self.table_elements.into(), MAX_TABLE_ELEMENTS.into()),
        ];
        for (name, value, cap) in fields {
            if value > cap {
                return Err(LimitError::AboveCap { name, value, cap });
            }
        }
        for (name, value) in [("memory_bytes", self.memory_bytes), ("instances", self.instances.into())] {
            if value == 0 {
                return Err(LimitError::Zero(name));
            }
        }
        Ok(())
    }
}

/// A limit a running worker hit; the error that traps it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Exceeded {
    /// Linear memory would grow past [`Limits::memory_bytes`].
    #[error("linear memory would grow to {desired} bytes, above the limit of {limit}")]
    Memory {
        /// Size asked for.
        desired: u64,
        /// The limit.
        limit: u64,
    },
    /// A table would grow past [`Limits::table_elements`].
    #[error("a table would grow to {desired} elements, above the limit of {limit}")]
    Table {
        /// Elements asked for.
        desired: u64,
        /// The limit.
        limit: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_within_their_caps_and_out_of_range_limits_are_named() {
        assert_eq!(Limits::default().check(), Ok(()));
        let above = Limits { output_bytes: MAX_CAPTURED_OUTPUT + 1, ..Limits::default() };
        let error =
            LimitError::AboveCap { name: "output_bytes", value: MAX_CAPTURED_OUTPUT + 1, cap: MAX_CAPTURED_OUTPUT };
        assert_eq!(above.check(), Err(error));
        assert_eq!(Limits { memory_bytes: 0, ..Limits::default() }.check(), Err(LimitError::Zero("memory_bytes")));
        assert_eq!(Limits { instances: 0, ..Limits::default() }.check(), Err(LimitError::Zero("instances")));
    }

    #[test]
    fn limits_read_from_json_keep_the_defaults_for_what_is_not_given() {
        let limits: Limits = serde_json::from_str(r#"{"memory_bytes": 1048576}"#).expect("valid");
        assert_eq!(limits, Limits { memory_bytes: 1 << 20, ..Limits::default() });
        assert!(serde_json::from_str::<Limits>(r#"{"memory": 1}"#).is_err(), "unknown fields are refused");
    }
}
