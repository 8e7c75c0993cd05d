//! What the broker backends' unit tests share: options with tiny chunks,
//! unique flare ids, non-uniform payloads and reading a message whole.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Backend, BrokerKind, BrokerOptions, Message, Reading};

/// Options for a backend at `url`: 1 KiB chunks, so small messages span
/// many frames.
pub fn options(kind: BrokerKind, url: &str) -> BrokerOptions {
    BrokerOptions {
        kind,
        url: url.to_owned(),
        chunk_bytes: 1024,
        deadline: Duration::from_secs(30),
        message_bytes: 1 << 20,
    }
}

/// A flare id no other test or run uses.
pub fn unique_flare(what: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("unit-{what}-{}-{nanos}", std::process::id())
}

/// A payload that differs for every destination and every byte position.
pub fn payload(dest: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(dest * 101) as u8).collect()
}

/// The bytes of `message`, receiving on `pack` meanwhile: the frames after
/// a message's first reach it only through the pack's receive loop.
pub async fn message_bytes(pack: &impl Backend, message: Message) -> Vec<u8> {
    let rest = Reading::new(message).rest();
    let read = async {
        tokio::select! {
            rest = rest => rest.expect("the message arrives whole"),
            inbound = pack.receive() => panic!("a second message: {inbound:?}"),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("the message is read in time").to_vec()
}
