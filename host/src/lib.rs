//! The pack runtime of burst.
//!
//! A *flare* runs `burst_size` workers of one WebAssembly component; workers
//! are grouped into *packs* that share a process. This crate instantiates the
//! workers of a pack (one wasmtime `Store` each, every worker an async task),
//! links the `burst:bcm/comm` interface they call, and moves their messages:
//! inside a pack through refcounted buffers in memory, between packs through a
//! [`Backend`](comm::Backend).
//!
//! Entry points: [`Runtime`] (one per process; owns the wasmtime engine),
//! [`Runtime::load`] (compile a component once into a [`Program`]), and
//! [`run_flare`] / [`run_pack`] (run a whole flare in this process, or one pack
//! of a flare whose other packs run elsewhere).

mod bindings;
pub mod comm;
mod engine;
mod flare;
pub mod layout;
pub mod limits;
mod linker;
mod output;
mod program;
pub mod result;

pub use bindings::{Dtype, ReduceOp};
pub use engine::{
    DEFAULT_EPOCH_TICK, GUEST_DATA_DIR, GUEST_OUTPUT_DIR, OutputDir, OutputQuota, Runtime, RuntimeConfig,
};
pub use flare::{FlareSpec, SpecError, run_flare, run_flare_over, run_pack};
pub use layout::{LayoutError, PackLayout, PackRange};
pub use limits::{LimitError, Limits};
pub use program::{LoadError, Program, write_atomically};
pub use result::{ByteCounts, Failure, FailureKind, FlareResult, MAX_TRAFFIC_PACKS, PackTraffic, WorkerResult};
pub use tokio_util::sync::CancellationToken;
