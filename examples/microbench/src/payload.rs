//! The microbench's payloads, free of any SDK so that the same code builds
//! natively (the compute baseline of `controller/benches/compute.rs`) and
//! for `wasm32-wasip2`.

/// splitmix64: a cheap, well-mixed stream, seeded per (sender, receiver, size).
pub fn pattern(sender: u32, receiver: u32, size: usize) -> Vec<u8> {
    let mut state =
        (u64::from(sender) << 32 | u64::from(receiver)) ^ (size as u64).rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Where `got` first differs from the payload of (sender, receiver) of its
/// length, if anywhere.
pub fn first_mismatch(got: &[u8], sender: u32, receiver: u32) -> Option<usize> {
    let expected = pattern(sender, receiver, got.len());
    got.iter().zip(&expected).position(|(a, b)| a != b)
}
