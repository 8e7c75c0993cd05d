//! The Redis backend against the real server on 127.0.0.1:6379.

use std::time::Duration;

use futures_util::future::try_join_all;
use redis::AsyncCommands as _;

use super::*;
use crate::comm::backend_tests::{self, message_bytes, payload, unique_flare};
use crate::comm::{BrokerKind, Envelope};

const URL: &str = "redis://127.0.0.1:6379";

fn options() -> BrokerOptions {
    backend_tests::options(BrokerKind::Redis, URL)
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
