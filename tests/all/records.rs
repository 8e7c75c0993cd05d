//! What the results record about how a flare ran, for the dashboard: each
//! worker's phases and time in comm calls, calls per primitive, and the
//! pack-to-pack traffic matrix, which must add up to the byte counts.

use serde_json::json;

use crate::support::{microbench, outputs, run};

#[tokio::test]
async fn every_worker_records_its_phases_and_its_calls_and_the_matrix_adds_up() {
    // An all-to-all of S bytes per pair at N = 6 in three packs of two: every
    // pack receives 2 × 2 × S from each other pack.
    const S: u64 = 40_000;
    let result = run(microbench(), 6, 2, &json!({"primitive": "all-to-all", "size": S})).await;
    outputs(&result);
    for w in &result.workers {
        let id = w.worker_id;
        assert!(w.placed_us > 0 && w.placed_us <= w.instantiated_us, "worker {id}: placed then instantiated");
        assert!(w.instantiated_us <= w.start_us && w.start_us <= w.end_us, "worker {id}: started, then ended");
        // The microbench's opening barrier, one all-to-all, and nothing else.
        let made: Vec<(&str, u64)> = burst_host::comm::Primitive::ALL
            .iter()
            .map(|p| p.name())
            .zip(w.comm.calls)
            .filter(|&(_, n)| n > 0)
            .collect();
        assert_eq!(made, [("all-to-all", 1), ("barrier", 1)], "worker {id}");
        assert!(!w.comm.spans.is_empty() && w.comm.spans.len() <= 2, "worker {id}: {:?}", w.comm.spans);
        let spanned: u64 = w.comm.spans.iter().map(|(b, e)| e - b).sum();
        assert!(spanned >= w.comm.total_us, "worker {id}: spans cover the time in calls");
        let (first, last) = (w.comm.spans[0].0, w.comm.spans[w.comm.spans.len() - 1].1);
        assert!(w.start_us <= first && last <= w.end_us, "worker {id}: calls inside `work`");
    }
    assert_eq!(result.traffic.iter().map(|t| t.pack_id).collect::<Vec<_>>(), [0, 1, 2]);
    let mut local = 0;
    for t in &result.traffic {
        assert_eq!(t.from.len(), 3);
        for (q, &bytes) in t.from.iter().enumerate() {
            if q as u32 == t.pack_id {
                local += bytes;
            } else {
                assert_eq!(bytes, 4 * S, "pack {} from pack {q}", t.pack_id);
            }
        }
    }
    assert_eq!(local, result.bytes.local);
    assert_eq!(6 * 4 * S, result.bytes.remote, "the matrix off the diagonal is what crossed the broker");
}

#[tokio::test]
async fn a_flare_of_many_packs_records_no_matrix() {
    let packs = burst_host::MAX_TRAFFIC_PACKS + 1;
    let result = run(microbench(), packs, 1, &json!({"primitive": "barrier"})).await;
    outputs(&result);
    assert!(result.traffic.is_empty());
    assert!(result.workers.iter().all(|w| w.comm.calls.iter().sum::<u64>() == 2), "two barriers each");
}
