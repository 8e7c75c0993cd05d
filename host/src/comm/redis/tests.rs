//! The Redis backend against the real server on 127.0.0.1:6379.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::try_join_all;
use redis::AsyncCommands as _;

use super::*;
use crate::comm::{BrokerKind, Envelope, Message, Reading};

const URL: &str = "redis://127.0.0.1:6379";

fn options() -> BrokerOptions {
    BrokerOptions {
        kind: BrokerKind::Redis,
        url: URL.to_owned(),
        chunk_bytes: 1024,
        deadline: Duration::from_secs(30),
        message_bytes: 1 << 20,
    }
}

fn unique_flare(what: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("unit-{what}-{}-{nanos}", std::process::id())
}

/// A payload that differs for every destination and every byte position.
fn payload(dest: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(dest * 101) as u8).collect()
}

/// The bytes of `message`, receiving on `pack` meanwhile: the frames after
/// a message's first reach it only through the pack's receive loop.
async fn message_bytes(pack: &RedisBackend, message: Message) -> Vec<u8> {
    let rest = Reading::new(message).rest();
    let read = async {
        tokio::select! {
            rest = rest => rest.expect("the message arrives whole"),
            inbound = pack.receive() => panic!("a second message: {inbound:?}"),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("the message is read in time").to_vec()
}

/// Messages to several packs at once share one window: with every permit
/// taken nothing is written, and once they are given back every message
/// arrives byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_the_pack_send_window() {
    let flare = unique_flare("window");
    let mut packs = Vec::new();
    for pack_id in 0..4 {
        packs.push(RedisBackend::connect(&flare, pack_id, 4, options()).await.expect("redis on 127.0.0.1:6379"));
    }
    // 20 frames per message: each message alone fills the window twice over.
    let messages: Vec<Vec<u8>> = (1..4).map(|dest| payload(dest, 20 * 1024 - 7)).collect();
    let held = packs[0].send_window.acquire_many(SEND_WINDOW as u32).await.expect("the window is open");
    let sends = try_join_all(
        (1..4u32)
            .zip(&messages)
            .map(|(dest, data)| packs[0].send(dest, Envelope::direct(5, 0, 0, dest), Payload::Borrowed(data))),
    );
    tokio::pin!(sends);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut sends).await.is_err(),
        "the sends finished without a permit"
    );
    let mut connection =
        redis::Client::open(URL).expect("a redis URL").get_multiplexed_async_connection().await.expect("redis answers");
    for dest in 1..4 {
        let frames: u64 = connection.llen(inbox_key(&flare, dest)).await.expect("LLEN answers");
        assert_eq!(frames, 0, "pack {dest}'s inbox got frames while the pack's window was taken");
    }
    drop(held);
    tokio::time::timeout(Duration::from_secs(10), sends).await.expect("the sends finish").expect("the sends succeed");
    assert_eq!(packs[0].send_window.available_permits(), SEND_WINDOW);
    for (dest, expected) in (1..4).zip(&messages) {
        let inbound = tokio::time::timeout(Duration::from_secs(10), packs[dest as usize].receive())
            .await
            .expect("a message arrives")
            .expect("the receive succeeds");
        let Inbound::Message(envelope, message) = inbound else { panic!("pack {dest} got {inbound:?}") };
        assert_eq!((envelope.tag, envelope.source, envelope.dest), (5, 0, dest));
        assert_eq!(&message_bytes(&packs[dest as usize], message).await, expected, "the message to pack {dest}");
    }
    for pack in &packs {
        tokio::time::timeout(Duration::from_secs(10), pack.close(false))
            .await
            .expect("the pack closes in time")
            .expect("the pack closes");
    }
    let left: Vec<String> = connection.keys(format!("burst:{flare}:*")).await.expect("KEYS answers");
    assert_eq!(left, Vec::<String>::new(), "keys left by flare {flare}");
}
