//! Command-line flags for what each worker may use: the flare's [`Limits`]
//! and the host directories it may read and write. Shared by every
//! subcommand that starts a flare.

use std::path::PathBuf;

use burst_host::Limits;
use clap::Args;

/// Per-worker limits and grants; unset flags keep the safe defaults.
#[derive(Args, Clone, Debug, Default)]
pub struct SandboxArgs {
    /// Largest linear memory of one worker, in bytes [default: 512 MiB].
    #[arg(long, value_name = "BYTES")]
    pub memory_limit: Option<u64>,
    /// Largest message a worker may send, in bytes [default: 256 MiB].
    #[arg(long, value_name = "BYTES")]
    pub message_limit: Option<u64>,
    /// Most bytes the host holds for one worker before it receives them
    /// [default: 1 GiB].
    #[arg(long, value_name = "BYTES")]
    pub buffered_limit: Option<u64>,
    /// Bytes of stdout, and of stderr, kept per worker; the rest is dropped
    /// and marked as truncated [default: 64 KiB].
    #[arg(long, value_name = "BYTES")]
    pub output_limit: Option<u64>,
    /// A host directory every worker may read (not write), as `/data`.
    #[arg(long, value_name = "DIR")]
    pub read_only_dir: Option<PathBuf>,
    /// A host directory every worker may write, as `/out` (it must exist).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Bytes the flare may write under `/out` in all (with `--output-dir`,
    /// or `--output` of `burst flare`); a write past it fails in the guest
    /// [default: 1 GiB].
    #[arg(long, value_name = "BYTES")]
    pub output_quota: Option<u64>,
}

impl SandboxArgs {
    /// `base` with the limits given on the command line.
    pub fn limits(&self, base: Limits) -> Limits {
        Limits {
            memory_bytes: self.memory_limit.unwrap_or(base.memory_bytes),
            message_bytes: self.message_limit.unwrap_or(base.message_bytes),
            buffered_bytes: self.buffered_limit.unwrap_or(base.buffered_bytes),
            output_bytes: self.output_limit.unwrap_or(base.output_bytes),
            ..base
        }
    }
}
