//! Host buffers for message payloads.
//!
//! Every payload that crosses the host is written once into a buffer of its
//! final size and then shared as `Bytes`. A large buffer is fresh memory, and
//! on a virtual machine faulting it in 4 KiB at a time costs more than
//! copying into it (a 256 MiB message: ~65,000 page faults, a third of a
//! second here). Buffers of [`HUGE_PAGE_THRESHOLD`] bytes and more are
//! therefore their own anonymous mappings advised to use transparent huge
//! pages (2 MiB at a time, 512 times fewer faults) and unmapped when the
//! last `Bytes` of them drops; smaller ones come from the allocator, which
//! reuses them.

use bytes::{Bytes, BytesMut};
use memmap2::{Advice, MmapMut};

/// Size from which a buffer is its own huge-page mapping: large enough that
/// mapping costs nothing next to filling it.
pub const HUGE_PAGE_THRESHOLD: usize = 4 << 20;

/// A buffer of a known final size, filled by appending.
pub struct MessageBuffer {
    storage: Storage,
    capacity: usize,
}

enum Storage {
    Heap(BytesMut),
    Mapped { map: MmapMut, len: usize },
}

impl MessageBuffer {
    /// An empty buffer for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let storage = if capacity >= HUGE_PAGE_THRESHOLD
            && let Ok(map) = MmapMut::map_anon(capacity)
        {
            // Advice only: where huge pages are off, the mapping still works.
            let _ = map.advise(Advice::HugePage);
            Storage::Mapped { map, len: 0 }
        } else {
            Storage::Heap(BytesMut::with_capacity(capacity))
        };
        Self { storage, capacity }
    }

    /// A buffer holding a copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> Bytes {
        let mut buffer = Self::with_capacity(bytes.len());
        buffer.extend_from_slice(bytes);
        buffer.freeze()
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        match &self.storage {
            Storage::Heap(bytes) => bytes.len(),
            Storage::Mapped { len, .. } => *len,
        }
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `bytes`; a buffer never grows past its capacity (callers
    /// check lengths first), and a write past it is cut off.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let room = self.capacity - self.len();
        let bytes = &bytes[..bytes.len().min(room)];
        match &mut self.storage {
            Storage::Heap(buffer) => buffer.extend_from_slice(bytes),
            Storage::Mapped { map, len } => {
                map[*len..*len + bytes.len()].copy_from_slice(bytes);
                *len += bytes.len();
            }
        }
    }

    /// The bytes written, shared.
    pub fn freeze(self) -> Bytes {
        match self.storage {
            Storage::Heap(bytes) => bytes.freeze(),
            Storage::Mapped { map, len } => Bytes::from_owner(map).slice(..len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 4093) as u8).collect()
    }

    #[test]
    fn small_and_large_buffers_hold_exactly_what_was_appended() {
        for len in [0, 1, 4095, HUGE_PAGE_THRESHOLD - 1, HUGE_PAGE_THRESHOLD, HUGE_PAGE_THRESHOLD + 12_345] {
            let data = pattern(len);
            let mut buffer = MessageBuffer::with_capacity(len);
            for piece in data.chunks(1 << 20) {
                buffer.extend_from_slice(piece);
            }
            assert_eq!(buffer.len(), len);
            let frozen = buffer.freeze();
            assert_eq!(&frozen[..], &data[..], "len {len}");
            assert_eq!(&MessageBuffer::copy_of(&data)[..], &data[..]);
        }
    }

    #[test]
    fn writes_past_the_capacity_are_cut_off() {
        for capacity in [10, HUGE_PAGE_THRESHOLD] {
            let mut buffer = MessageBuffer::with_capacity(capacity);
            buffer.extend_from_slice(&pattern(capacity + 7));
            assert_eq!(buffer.freeze().len(), capacity);
        }
    }
}
