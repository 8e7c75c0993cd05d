//! The RabbitMQ backend against the real broker on 127.0.0.1:5672.

use std::time::Duration;

use futures_util::future::try_join_all;

use super::*;
use crate::comm::backend_tests::{self, message_bytes, payload, unique_flare};
use crate::comm::{BrokerKind, Envelope};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn options() -> BrokerOptions {
    backend_tests::options(BrokerKind::RabbitMq, URL)
}

/// Frames waiting in `queue`, or `None` when the queue does not exist (a
/// passive declare fails, and closes its channel, for a missing queue).
async fn queued(connection: &Connection, queue: &str) -> Option<u32> {
    let channel = connection.create_channel().await.expect("a channel");
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let declared = channel.queue_declare(queue.into(), passive, FieldTable::default()).await.ok()?;
    Some(declared.message_count())
}

/// Messages to several packs at once share one window: with every permit
/// taken nothing is published, and once they are given back every message
/// arrives byte for byte and every permit comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_the_pack_publish_window() {
    let flare = unique_flare("window");
    let mut packs = Vec::new();
    for pack_id in 0..4 {
        packs.push(RabbitBackend::connect(&flare, pack_id, 4, options()).await.expect("rabbitmq on 127.0.0.1:5672"));
    }
    // 70 frames per message: each message alone fills the window twice over.
    let messages: Vec<Vec<u8>> = (1..4).map(|dest| payload(dest, 70 * 1024 - 7)).collect();
    let held = packs[0].publish_window.acquire_many(PUBLISH_WINDOW as u32).await.expect("the window is open");
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
    let observer = open_connection(URL).await.expect("rabbitmq answers");
    for dest in 1..4 {
        // The consumer has a prefetch, so a published frame may already be
        // delivered: the pack's receive must also find nothing.
        assert_eq!(queued(&observer, &queue_name(&flare, dest)).await, Some(0), "pack {dest}'s queue got frames");
        let early = tokio::time::timeout(Duration::from_millis(100), packs[dest as usize].receive()).await;
        assert!(early.is_err(), "pack {dest} received {early:?} while the window was taken");
    }
    drop(held);
    tokio::time::timeout(Duration::from_secs(10), sends).await.expect("the sends finish").expect("the sends succeed");
    assert_eq!(packs[0].publish_window.available_permits(), PUBLISH_WINDOW);
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
    for pack_id in 0..4 {
        assert_eq!(queued(&observer, &queue_name(&flare, pack_id)).await, None, "pack {pack_id}'s queue is left");
    }
    let _ = observer.close(200, "test over".into()).await;
}
