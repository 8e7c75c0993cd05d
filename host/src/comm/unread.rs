//! What a worker reads of its results a piece at a time.
//!
//! A call's `-first` form (`recv-first`, `broadcast-first`,
//! `all-gather-first`, `all-to-all-first`) answers with each result's length
//! and first piece as soon as that is here; the rest of result `i` is read
//! with `recv-more(i)`, while it is still arriving from other packs. The
//! next such call drops whatever was left unread.

use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use super::message::Reading;
use super::{CommError, PackComm};

/// The results of a worker's last `-first` call that still have bytes to
/// read, indexed as the call returned them.
#[derive(Default)]
pub(crate) struct Unread(Mutex<Vec<Option<Reading>>>);

impl Unread {
    fn lock(&self) -> MutexGuard<'_, Vec<Option<Reading>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops what was left unread and begins `readings`: each one's length
    /// and first piece.
    pub(crate) async fn begin(&self, pack: &PackComm, readings: Vec<Reading>) -> Result<Vec<(u64, Bytes)>, CommError> {
        self.lock().clear();
        let mut firsts = Vec::with_capacity(readings.len());
        let mut unread = Vec::with_capacity(readings.len());
        for mut reading in readings {
            firsts.push((reading.total(), pack.read(reading.next()).await?));
            unread.push((!reading.is_done()).then_some(reading));
        }
        *self.lock() = unread;
        Ok(firsts)
    }

    /// The next piece of result `index`.
    ///
    /// # Errors
    /// `InvalidArgument` when that result has nothing left to read; the
    /// flare's failure.
    pub(crate) async fn more(&self, pack: &PackComm, index: u32) -> Result<Bytes, CommError> {
        let taken = self.lock().get_mut(index as usize).and_then(Option::take);
        let mut reading = taken.ok_or_else(|| {
            CommError::InvalidArgument(format!(
                "recv-more({index}): no result {index} is being read (begin with a -first call)"
            ))
        })?;
        let piece = pack.read(reading.next()).await?;
        if !reading.is_done()
            && let Some(slot) = self.lock().get_mut(index as usize)
        {
            *slot = Some(reading);
        }
        Ok(piece)
    }
}
