//! Misuse of the comm interface is a typed `comm-error` for the guest,
//! never a trap and never a host panic; the flare goes on afterwards.

use serde_json::json;

use crate::support::{fixtures, outputs, run};

#[tokio::test]
async fn every_misuse_is_a_typed_error() {
    for (n, g) in [(1, 1), (3, 2), (8, 8)] {
        let outputs = outputs(&run(fixtures(), n, g, &json!({ "scenario": "comm_misuse" })).await);
        let expected = json!([
            format!("invalid-worker({n})"),
            format!("invalid-worker({})", n + 7),
            "invalid-argument",
            format!("invalid-worker({n})"),
            "invalid-argument",
            "invalid-argument",
            "invalid-argument",
            "invalid-argument",
            format!("invalid-worker({})", u32::MAX),
            "ok",
        ]);
        for output in outputs {
            assert_eq!(output, expected, "N={n} G={g}");
        }
    }
}

#[tokio::test]
async fn reduce_inputs_of_different_lengths_are_an_invalid_argument() {
    let outputs = outputs(&run(fixtures(), 3, 3, &json!({ "scenario": "comm_mismatched_reduce" })).await);
    for output in outputs {
        assert_eq!(output, json!(["invalid-argument"]));
    }
}
