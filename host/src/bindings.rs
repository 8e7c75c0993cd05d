//! The one place where the `burst:bcm` WIT package becomes Rust types.
//!
//! `bindgen!` gives us the WIT records and enums and the typed `work` export.
//! The `comm` imports are *not* linked through the generated `Host` trait:
//! [`crate::linker`] links them by hand so that message payloads cross the
//! boundary as `bytes::Bytes` (one refcounted buffer shared by every local
//! receiver) instead of fresh `Vec<u8>` copies.

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "worker",
    exports: { default: async },
});

pub use burst::bcm::types::{BurstInfo, CommError as WitCommError, Dtype, PackRange as WitPackRange, ReduceOp};

impl Dtype {
    /// Size in bytes of one element of this type.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::U64 | Dtype::F64 => 8,
        }
    }
}
