//! Feeds arbitrary bytes to the frame decoder, and every chunk it accepts to
//! one reassembler: neither may panic, and nothing accepted may announce a
//! message above the cap.

#![no_main]

use burst_host::comm::frame::{Frame, MAX_MESSAGE_BYTES, Reassembler, decode};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

const FLARE: &str = "fuzz";

fuzz_target!(|data: &[u8]| {
    let mut reassembler = Reassembler::new(MAX_MESSAGE_BYTES);
    // The input is read as a sequence of frames, each preceded by its
    // one-byte length, so that the fuzzer can build multi-chunk messages.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let (frame, next) = tail.split_at(usize::from(len).min(tail.len()));
        rest = next;
        if let Ok(Frame::Chunk(chunk)) = decode(&Bytes::copy_from_slice(frame), FLARE) {
            assert!(chunk.total_len <= MAX_MESSAGE_BYTES);
            assert!(chunk.bytes.len() as u64 <= chunk.total_len);
            let _ = reassembler.add(chunk);
        }
    }
});
