//! A failing worker fails its flare naming it; every other worker is
//! released within a second; the runtime goes on running flares.

use std::time::Duration;

use burst_host::{FailureKind, FlareResult};
use serde_json::{Value, json};

use crate::support::{fixtures, hello, outputs, run, run_with_deadline};

/// Asserts the flare failed because of `worker` with `kind`, and that every
/// worker ended within a second of that failure.
pub fn assert_failed(result: &FlareResult, worker: Option<u32>, kind: FailureKind, message: &str) {
    let failure = result.failure.as_ref().expect("the flare failed");
    assert_eq!((failure.worker_id, failure.kind), (worker, kind), "{failure}");
    assert!(failure.message.contains(message), "{failure}");
    for w in &result.workers {
        assert!(w.outcome.is_err(), "worker {} cannot succeed without its peer", w.worker_id);
        assert!(
            w.end_us <= failure.at_us + 1_000_000,
            "worker {} ended {} µs after the failure",
            w.worker_id,
            w.end_us.saturating_sub(failure.at_us)
        );
    }
}

pub async fn still_healthy() {
    let outputs = outputs(&run(hello(), 4, 2, &Value::Null).await);
    assert_eq!(outputs[3]["sum_of_ids"], 6);
}

#[tokio::test]
async fn a_panic_in_a_collective_names_the_worker_and_releases_the_others() {
    let result = run(fixtures(), 8, 3, &json!({ "scenario": "fail_panic_in_collective", "victim": 5 })).await;
    assert_failed(&result, Some(5), FailureKind::Trap, "worker 5 panics on purpose");
    let peer = result.workers[0].outcome.as_ref().expect_err("peer fails");
    assert_eq!(peer.kind, FailureKind::GuestError);
    assert_eq!(peer.message, "worker 5 of the flare failed");
    still_healthy().await;
}

#[tokio::test]
async fn a_trap_while_others_wait_in_recv_releases_them() {
    let result = run(fixtures(), 4, 2, &json!({ "scenario": "fail_trap_in_recv", "victim": 1 })).await;
    assert_failed(&result, Some(1), FailureKind::Trap, "unreachable");
    still_healthy().await;
}

#[tokio::test]
async fn a_guest_error_fails_the_flare_with_its_message() {
    let result = run(fixtures(), 5, 2, &json!({ "scenario": "fail_guest_error", "victim": 2 })).await;
    assert_failed(&result, Some(2), FailureKind::GuestError, "worker 2 gives up");
    still_healthy().await;
}

#[tokio::test]
async fn waiting_past_the_deadline_fails_the_flare_with_timeout() {
    let input = json!({ "scenario": "fail_wait_forever" });
    let result = run_with_deadline(fixtures(), 6, 4, &input, Duration::from_millis(300)).await;
    let failure = result.failure.as_ref().expect("the flare failed");
    assert_eq!(failure.kind, FailureKind::Deadline, "{failure}");
    for w in &result.workers {
        let error = w.outcome.as_ref().expect_err("nobody gets a message");
        assert!(error.message.contains("deadline"), "worker {}: {error}", w.worker_id);
    }
    still_healthy().await;
}

#[tokio::test]
async fn a_cancelled_flare_stops_every_worker_computing_or_waiting() {
    // Worker 1 computes without calling the host; the others wait for it
    // in a barrier. Cancelling stops them all long before the deadline.
    let layout = std::sync::Arc::new(burst_host::PackLayout::homogeneous(4, 2).expect("valid layout"));
    let input = bytes::Bytes::from(json!({ "scenario": "hostile_spin", "victim": 1 }).to_string());
    let spec = burst_host::FlareSpec::new("test-cancel", layout, vec![input; 4], Duration::from_secs(120));
    let cancel = spec.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let result = burst_host::run_flare(crate::support::runtime(), fixtures(), &spec).await.expect("a valid spec");
    let failure = result.failure.as_ref().expect("the flare failed");
    assert_eq!((failure.kind, failure.worker_id), (FailureKind::Cancelled, None), "{failure}");
    assert_eq!(result.workers.len(), 4);
    for w in &result.workers {
        // The spinning worker is stopped; the waiting ones get `cancelled`
        // from their barrier, which the guest returns as its error.
        let error = w.outcome.as_ref().expect_err("every worker was stopped");
        assert!(error.message.contains("the flare was cancelled"), "worker {}: {error}", w.worker_id);
    }
    let victim = result.workers[1].outcome.as_ref().expect_err("stopped");
    assert_eq!(victim.kind, FailureKind::Cancelled, "{victim}");
    still_healthy().await;
}

#[tokio::test]
async fn workers_of_a_pack_that_disagree_on_a_root_fail_the_flare_naming_one() {
    // Worker 2 reduces to itself, every other worker to worker 0: the pack
    // of workers 2 and 3 sees the disagreement in its round.
    let layout = std::sync::Arc::new(burst_host::PackLayout::homogeneous(4, 2).expect("valid"));
    let input = |root: u32| {
        bytes::Bytes::from(json!({"primitive": "reduce", "size": 64, "root": root, "iterations": 2}).to_string())
    };
    let spec = burst_host::FlareSpec::new(
        "disagreeing-roots",
        layout,
        vec![input(0), input(0), input(2), input(0)],
        Duration::from_secs(60),
    );
    let result = burst_host::run_flare(crate::support::runtime(), crate::support::microbench(), &spec)
        .await
        .expect("valid spec");
    let failure = result.failure.as_ref().expect("the flare failed");
    assert_eq!(failure.kind, FailureKind::Protocol, "{failure}");
    assert!(matches!(failure.worker_id, Some(2 | 3)), "{failure}");
    assert!(failure.message.contains("with root 2") && failure.message.contains("with root 0"), "{failure}");
    for w in &result.workers {
        assert!(w.end_us <= failure.at_us + 1_000_000, "worker {} ended late", w.worker_id);
    }
    still_healthy().await;
}

/// Runs microbench with one input per worker, in packs of 2, in memory.
async fn run_microbench(inputs: &[Value]) -> FlareResult {
    let n = inputs.len() as u32;
    let layout = std::sync::Arc::new(burst_host::PackLayout::homogeneous(n, 2).expect("valid"));
    let inputs = inputs.iter().map(|i| bytes::Bytes::from(i.to_string())).collect();
    let spec = burst_host::FlareSpec::new("mismatched", layout, inputs, Duration::from_secs(60));
    burst_host::run_flare(crate::support::runtime(), crate::support::microbench(), &spec).await.expect("valid spec")
}

#[tokio::test]
async fn packs_that_call_different_collectives_fail_the_flare_instead_of_diverging() {
    let bench = |primitive: &str, root: u32| json!({"primitive": primitive, "size": 96, "root": root});
    for (inputs, culprits) in [
        // Each pack broadcasts from a root of its own.
        (vec![bench("broadcast", 0), bench("broadcast", 0), bench("broadcast", 3), bench("broadcast", 3)], vec![0, 3]),
        // One pack scatters from worker 0, the other gathers to it: worker
        // 0's parts are orphans in pack 1, and workers 2's and 3's
        // gathered data orphans in pack 0; whichever pack concludes first
        // names its orphan's sender.
        (vec![bench("scatter", 0), bench("scatter", 0), bench("gather", 0), bench("gather", 0)], vec![0, 2, 3]),
    ] {
        let result = run_microbench(&inputs).await;
        let failure = result.failure.as_ref().expect("the flare failed");
        assert_eq!(failure.kind, FailureKind::Protocol, "{failure}");
        assert!(failure.worker_id.is_some_and(|w| culprits.contains(&w)), "{failure}");
        assert!(failure.message.contains("every worker must call the same collectives"), "{failure}");
    }
    still_healthy().await;
}

#[tokio::test]
async fn a_worker_that_returns_before_a_collective_its_pack_waits_in_is_named() {
    // Worker 1 runs one iteration, the others two: worker 0 waits for it in
    // the second iteration's collectives.
    let bench = |iterations: u32| json!({"primitive": "all-reduce", "size": 64, "root": 0, "iterations": iterations});
    let result = run_microbench(&[bench(2), bench(1), bench(2), bench(2)]).await;
    let failure = result.failure.as_ref().expect("the flare failed");
    assert_eq!((failure.worker_id, failure.kind), (Some(1), FailureKind::Protocol), "{failure}");
    assert!(failure.message.contains("worker 1 returned without calling"), "{failure}");
    for w in &result.workers {
        assert!(w.end_us <= failure.at_us + 1_000_000, "worker {} ended late", w.worker_id);
    }
}
