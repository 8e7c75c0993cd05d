//! The byte quota of a flare's output directory.
//!
//! WASI gives a guest a directory, not a budget: a worker granted `/out`
//! could fill the host's disk. wasmtime-wasi has no quota of its own, so
//! the four ways a guest can grow a file are linked again over WASI's own
//! implementation (`write`, `write-via-stream`, `append-via-stream`,
//! `set-size`): each charges the flare's [`OutputQuota`] before the bytes
//! reach the file, and a write past it fails with WASI's `quota` error
//! with nothing written: a descriptor call (`write`, `set-size`) answers
//! `quota` (`EDQUOT`, "Disk quota exceeded" in the guest); a stream write,
//! which is how Rust's `std::fs` writes, fails the stream, and wasi-libc
//! reports that as `EIO` ("I/O error").
//! Every byte written counts, overwrites included: the quota bounds the
//! I/O a flare may do as well as what it leaves on disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::WasiFilesystemView as _;
use wasmtime_wasi::p2::bindings::filesystem::types::{Descriptor, ErrorCode, Host as _, HostDescriptor as _};
use wasmtime_wasi::p2::{DynOutputStream, FsResult, OutputStream, Pollable, StreamError, StreamResult};

use super::WorkerState;

/// The WASI filesystem interface as wasmtime-wasi 48 links it (guests
/// importing an older 0.2 version are matched to it by semver).
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// What a flare may still write to its output directory, shared by all its
/// workers on this host.
#[derive(Debug)]
pub struct OutputQuota {
    limit: u64,
    used: AtomicU64,
}

impl OutputQuota {
    /// A quota of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self { limit, used: AtomicU64::new(0) })
    }

    /// The bytes it allows.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The bytes charged so far.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the quota; takes nothing and answers `false`
    /// when they do not fit.
    pub fn try_charge(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    /// [`Self::try_charge`] as WASI's error.
    fn charge(&self, bytes: u64) -> Result<(), ErrorCode> {
        if self.try_charge(bytes) { Ok(()) } else { Err(ErrorCode::Quota) }
    }

    /// Gives back what a write that failed, or a file that was removed,
    /// was charged.
    pub fn refund(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// A stream write refused by the quota.
#[derive(Debug, thiserror::Error)]
#[error("the flare's output quota is used up")]
struct QuotaExceeded;

/// The stream error a guest reads back as `quota`.
fn quota_exceeded() -> StreamError {
    StreamError::LastOperationFailed(QuotaExceeded.into())
}

/// An output stream of a file under the quota.
struct Charged {
    inner: DynOutputStream,
    quota: Arc<OutputQuota>,
}

impl Charged {
    fn charge(&self, bytes: usize) -> StreamResult<()> {
        self.quota.charge(bytes as u64).map_err(|_| quota_exceeded())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Charged {
    async fn ready(&mut self) {
        self.inner.ready().await;
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Charged {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.charge(bytes.len())?;
        self.inner.write(bytes)
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.charge(bytes.len())?;
        self.inner.blocking_write_and_flush(bytes).await
    }

    fn write_zeroes(&mut self, nelem: usize) -> StreamResult<()> {
        self.charge(nelem)?;
        self.inner.write_zeroes(nelem)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await;
    }
}

/// A WASI result as the guest receives it.
fn lower<T>(state: &mut WorkerState, result: FsResult<T>) -> wasmtime::Result<Result<T, ErrorCode>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(error) => Ok(Err(state.filesystem().convert_error_code(error)?)),
    }
}

/// Wraps a stream WASI just opened, when the flare has a quota.
fn charged(
    state: &mut WorkerState,
    stream: FsResult<Resource<DynOutputStream>>,
) -> wasmtime::Result<Result<Resource<DynOutputStream>, ErrorCode>> {
    let (Ok(stream), Some(quota)) = (&stream, state.output_quota.clone()) else { return lower(state, stream) };
    let table = state.filesystem().table;
    let inner = table.delete(Resource::<DynOutputStream>::new_own(stream.rep()))?;
    let wrapped: DynOutputStream = Box::new(Charged { inner, quota });
    Ok(Ok(table.push(wrapped)?))
}

/// Links the four ways to grow a file again, charging the quota first.
pub(crate) fn add_output_quota(linker: &mut Linker<WorkerState>) -> anyhow::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    types.func_wrap_async(
        "[method]descriptor.write",
        |mut store: StoreContextMut<'_, WorkerState>, (fd, buf, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                let (bytes, quota) = (buf.len() as u64, state.output_quota.clone());
                if let Some(quota) = &quota
                    && let Err(code) = quota.charge(bytes)
                {
                    return Ok((Err(code),));
                }
                let result = state.filesystem().write(fd, buf, offset).await;
                if let (Err(_), Some(quota)) = (&result, &quota) {
                    quota.refund(bytes);
                }
                Ok((lower(state, result)?,))
            })
        },
    )?;
    types.func_wrap(
        "[method]descriptor.write-via-stream",
        |mut store: StoreContextMut<'_, WorkerState>, (fd, offset): (Resource<Descriptor>, u64)| {
            let state = store.data_mut();
            let stream = state.filesystem().write_via_stream(fd, offset);
            Ok((charged(state, stream)?,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.append-via-stream",
        |mut store: StoreContextMut<'_, WorkerState>, (fd,): (Resource<Descriptor>,)| {
            let state = store.data_mut();
            let stream = state.filesystem().append_via_stream(fd);
            Ok((charged(state, stream)?,))
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.set-size",
        |mut store: StoreContextMut<'_, WorkerState>, (fd, size): (Resource<Descriptor>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                let Some(quota) = state.output_quota.clone() else {
                    let result = state.filesystem().set_size(fd, size).await;
                    return Ok((lower(state, result)?,));
                };
                // Growing a file by `set-size` takes disk like a write.
                let borrowed = Resource::<Descriptor>::new_borrow(fd.rep());
                let current = match state.filesystem().stat(borrowed).await {
                    Ok(stat) => stat.size,
                    Err(error) => return Ok((lower(state, Err(error))?,)),
                };
                let growth = size.saturating_sub(current);
                if let Err(code) = quota.charge(growth) {
                    return Ok((Err(code),));
                }
                let result = state.filesystem().set_size(fd, size).await;
                if result.is_err() {
                    quota.refund(growth);
                }
                Ok((lower(state, result)?,))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
