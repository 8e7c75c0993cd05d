//! Message semantics: matching never mixes p2p and collectives, tags are
//! separate channels, sends to yourself work, reductions compose and fold
//! in worker-id order.

use serde_json::{Value, json};

use crate::support::{fixtures, hello, outputs, run};

#[tokio::test]
async fn hello_sums_the_ids_in_every_layout() {
    for (n, g) in [(1, 1), (8, 4), (8, 3), (17, 4), (17, 17)] {
        let outputs = outputs(&run(hello(), n, g, &Value::Null).await);
        for (id, output) in (0..).zip(&outputs) {
            let expected = json!({
                "worker_id": id,
                "burst_size": n,
                "pack_id": id / g,
                "received_from": (id + n - 1) % n,
                "sum_of_ids": n * (n - 1) / 2,
            });
            assert_eq!(output, &expected, "N={n} G={g}");
        }
    }
}

#[tokio::test]
async fn p2p_and_collectives_between_the_same_workers_never_mix() {
    for (n, g) in [(2, 1), (3, 3), (8, 3), (17, 4)] {
        let outputs = outputs(&run(fixtures(), n, g, &json!({ "scenario": "comm_interleaved" })).await);
        for (me, output) in (0..n).zip(&outputs) {
            let previous = (me + n - 1) % n;
            let everyone: Vec<u32> = (0..n).collect();
            let exchanged: Vec<u32> = (0..n).map(|s| s * 1000 + me).collect();
            let mut expected = vec![
                format!("\"p2p-1 from {previous}\""),
                format!("\"p2p-2 from {previous}\""),
                format!("\"all-gather {everyone:?}\""),
                "\"bcast\"".to_owned(),
            ];
            if me == n / 2 {
                let gathered: Vec<u32> = (0..n).map(|w| w * 10).collect();
                expected.push(format!("\"gathered {gathered:?}\""));
            }
            expected.push(format!("\"all-to-all {exchanged:?}\""));
            let got: Vec<String> = output.as_array().expect("list").iter().map(Value::to_string).collect();
            assert_eq!(got, expected, "N={n} G={g} worker {me}");
        }
    }
}

#[tokio::test]
async fn reductions_in_a_row_fold_in_worker_order() {
    for (n, g, root) in [(1, 1, 0), (3, 2, 2), (8, 3, 5), (17, 4, 16)] {
        let input = json!({ "scenario": "comm_reductions", "root": root });
        let outputs = outputs(&run(fixtures(), n, g, &input).await);
        let ids: Vec<u32> = (0..n).collect();
        let joined = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        for (me, output) in (0..n).zip(&outputs) {
            let mut expected = vec![json!(format!("sum {:?}", [n * (n - 1) / 2, n])), json!(format!("all {ids:?}"))];
            if me == root {
                expected.push(json!(format!("max {:?}", [f64::from(n - 1) * 1.5])));
                expected.push(json!(format!("joined {joined}")));
            }
            assert_eq!(output, &Value::Array(expected), "N={n} G={g} root={root} worker {me}");
        }
    }
}

#[tokio::test]
async fn tags_are_separate_channels_and_self_sends_work() {
    let outputs = outputs(&run(fixtures(), 4, 2, &json!({ "scenario": "comm_self_and_tags" })).await);
    for output in outputs {
        assert_eq!(output, json!(["tag two", "tag one", "0 bytes"]));
    }
}

#[tokio::test]
async fn a_pack_of_1000_workers_runs() {
    let outputs = outputs(&run(hello(), 1000, 1000, &Value::Null).await);
    assert_eq!(outputs.len(), 1000);
    assert!(outputs.iter().all(|o| o["sum_of_ids"] == 499_500));
}

#[tokio::test]
async fn stdout_and_stderr_are_captured_per_worker() {
    let result = run(fixtures(), 3, 2, &json!({ "scenario": "print_lines" })).await;
    outputs(&result);
    for w in &result.workers {
        assert_eq!(&w.stdout[..], format!("out from {}\n", w.worker_id).as_bytes());
        assert_eq!(&w.stderr[..], format!("err from {}\n", w.worker_id).as_bytes());
    }
}
