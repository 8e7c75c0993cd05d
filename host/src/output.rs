//! Captured stdout and stderr of one worker.
//!
//! A guest may write without end; the host keeps the first
//! [`Limits::output_bytes`](crate::Limits::output_bytes) bytes, drops the
//! rest and remembers that it did. The guest never sees an error: a full
//! capture is the host's limit, not a failure of the guest's program (a Rust
//! `println!` panics on a write error, which would turn a chatty worker into
//! a trapped one).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// How much a guest may hand over in one write; the WASI stream contract
/// needs a finite permit, and anything past the capacity is dropped anyway.
const WRITE_PERMIT: usize = 64 << 10;

#[derive(Default)]
struct Captured {
    kept: BytesMut,
    truncated: bool,
}

/// A bounded, truncating capture of one output stream.
#[derive(Clone)]
pub struct CapturedOutput {
    capacity: usize,
    captured: Arc<Mutex<Captured>>,
}

impl CapturedOutput {
    /// A capture that keeps at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, captured: Arc::default() }
    }

    /// What was kept, and whether anything was dropped.
    pub fn contents(&self) -> (Bytes, bool) {
        let captured = self.lock();
        (Bytes::copy_from_slice(&captured.kept), captured.truncated)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        // Every step under the lock leaves `Captured` consistent.
        self.captured.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn keep(&self, bytes: &[u8]) {
        let mut captured = self.lock();
        let room = self.capacity.saturating_sub(captured.kept.len());
        let kept = bytes.len().min(room);
        captured.kept.extend_from_slice(&bytes[..kept]);
        captured.truncated |= kept < bytes.len();
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.keep(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_marks_the_rest_dropped() {
        let output = CapturedOutput::new(10);
        let mut stream = output.p2_stream();
        stream.write(Bytes::from_static(b"0123")).expect("never fails");
        assert_eq!(output.contents(), (Bytes::from_static(b"0123"), false));
        stream.write(Bytes::from_static(b"456789abc")).expect("never fails");
        stream.write(Bytes::from_static(b"def")).expect("never fails");
        assert_eq!(output.contents(), (Bytes::from_static(b"0123456789"), true));
        assert_eq!(stream.check_write().expect("never closes"), WRITE_PERMIT);
    }

    #[test]
    fn exactly_full_is_not_truncated() {
        let output = CapturedOutput::new(3);
        output.p2_stream().write(Bytes::from_static(b"abc")).expect("never fails");
        assert_eq!(output.contents(), (Bytes::from_static(b"abc"), false));
    }
}
