//! What crosses the broker equals the traffic model on both sides of it: a
//! publish of B bytes over P packs is written to the broker once (B) and
//! read once by each other pack (B × (P − 1)), and a RabbitMQ publish is
//! never delivered back to its publisher. Measured by the packs' own
//! counters and cross-checked with the broker's.

use std::time::Duration;

use burst_host::comm::BrokerKind;
use bytes::Bytes;
use serde_json::json;

use crate::brokers::{PrivateRedis, connect_all, leftovers, options};
use crate::support::{microbench, outputs, runtime};

/// A broadcast payload of several chunks (chunks of 1 MiB).
const B: u64 = 3 * (1 << 20) + 12_345;

/// Room for protocol bytes around the payload: frame headers, Redis
/// commands and replies, the microbench's barrier and input.
const OVERHEAD: u64 = 64 << 10;

async fn net_bytes(connection: &mut redis::aio::MultiplexedConnection) -> (u64, u64) {
    let info: String = redis::cmd("INFO").arg("stats").query_async(connection).await.expect("INFO");
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':')?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("INFO stats has {name}"))
    };
    (field("total_net_input_bytes"), field("total_net_output_bytes"))
}

#[tokio::test]
async fn a_redis_broadcast_is_written_once_and_read_once_per_other_pack() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    // A broker of its own: nothing else moves bytes through it.
    let server = PrivateRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let mut probe = redis::Client::open(url.as_str())
        .expect("URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the private redis answers");
    let (n, g, packs) = (8, 2, 4);
    let (mut spec, backends) = connect_all(&server.options(), n, g).await;
    spec.inputs = vec![Bytes::from(json!({"primitive": "broadcast", "size": B, "root": 3}).to_string()); n as usize];
    let (input_before, output_before) = net_bytes(&mut probe).await;
    let result = burst_host::run_flare_over(runtime(), microbench(), &spec, backends).await.expect("valid spec");
    let (input_after, output_after) = net_bytes(&mut probe).await;
    for output in outputs(&result) {
        assert_eq!(output["checked_bytes"], B);
    }
    assert_eq!(result.bytes.remote, B * (packs - 1), "read once by each other pack");
    let written = result.bytes.written;
    assert!((B..B + OVERHEAD).contains(&written), "the packs wrote {written} bytes for a broadcast of {B}");
    let (into_redis, out_of_redis) = (input_after - input_before, output_after - output_before);
    assert!((B..B + OVERHEAD).contains(&into_redis), "redis received {into_redis} bytes for a broadcast of {B}");
    let read = B * (packs - 1);
    assert!((read..read + OVERHEAD).contains(&out_of_redis), "redis sent {out_of_redis} bytes, the model says {read}");
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut probe).await.expect("KEYS");
    assert_eq!(keys, Vec::<String>::new(), "the private redis holds nothing after the flare");
}

#[tokio::test]
async fn a_rabbitmq_broadcast_is_written_once_and_never_comes_back_to_its_publisher() {
    let (n, g, packs) = (8, 2, 4);
    let options = options(BrokerKind::RabbitMq, BrokerKind::RabbitMq.default_url(), 1 << 20, Duration::from_secs(60));
    let (mut spec, backends) = connect_all(&options, n, g).await;
    spec.inputs = vec![Bytes::from(json!({"primitive": "broadcast", "size": B, "root": 3}).to_string()); n as usize];
    let result = burst_host::run_flare_over(runtime(), microbench(), &spec, backends).await.expect("valid spec");
    outputs(&result);
    // A pack reads and counts whatever reaches its queue: a publish
    // delivered back to the root's pack would make this B × packs.
    assert_eq!(result.bytes.remote, B * (packs - 1));
    let written = result.bytes.written;
    assert!((B..B + OVERHEAD).contains(&written), "the packs wrote {written} bytes for a broadcast of {B}");
    assert_eq!(leftovers(BrokerKind::RabbitMq, &spec.flare_id, packs as u32).await, Vec::<String>::new());
}
