//! What a flare leaves in a broker: nothing of a closed pack is recreated
//! by a late abort or message, an abort reaches every pack, and a flare id
//! whose state is still in the broker is refused rather than mixed.

use std::time::Duration;

use burst_host::comm::frame::encode_abort;
use burst_host::comm::{self, BackendError};
use burst_host::{Failure, FailureKind};
use bytes::Bytes;

use crate::brokers::{BROKERS, connect_all, inject, leftovers, options, unique_flare_id};
use crate::support::{fixtures, runtime};

#[tokio::test]
async fn an_abort_to_a_closed_pack_does_not_recreate_it() {
    for kind in BROKERS {
        let options = options(kind, kind.default_url(), 1024, Duration::from_secs(30));
        let (spec, backends) = connect_all(&options, 2, 1).await;
        backends[1].close(true).await.expect("pack 1 closes");
        let failure = Failure::new(Some(0), FailureKind::Trap, "late");
        backends[0].abort(failure).await.expect("the abort is written");
        let left = leftovers(kind, &spec.flare_id, 2).await;
        let of_pack_1 = left.iter().filter(|name| name.ends_with('1')).count();
        assert_eq!(of_pack_1, 0, "{kind:?}: pack 1's state came back: {left:?}");
        backends[0].close(true).await.expect("pack 0 closes");
        assert_eq!(leftovers(kind, &spec.flare_id, 2).await, Vec::<String>::new(), "{kind:?}");
    }
}

#[tokio::test]
async fn a_flare_id_in_use_is_refused() {
    for kind in BROKERS {
        let options = options(kind, kind.default_url(), 1024, Duration::from_secs(30));
        let flare_id = unique_flare_id("reused");
        let first = comm::connect(&options, &flare_id, 0, 2).await.expect("the first pack 0 joins");
        let again = comm::connect(&options, &flare_id, 0, 2).await.err().expect("a second pack 0 is refused");
        assert!(matches!(&again, BackendError::InUse(m) if m.contains(&flare_id)), "{kind:?}: {again}");
        let second = comm::connect(&options, &flare_id, 1, 2).await.expect("pack 1 joins");
        first.close(false).await.expect("closes");
        second.close(false).await.expect("closes");
        assert_eq!(leftovers(kind, &flare_id, 2).await, Vec::<String>::new(), "{kind:?}");
        let reused = comm::connect(&options, &flare_id, 0, 1).await.expect("once all closed, the id is free");
        reused.close(false).await.expect("closes");
        assert_eq!(leftovers(kind, &flare_id, 1).await, Vec::<String>::new(), "{kind:?}");
    }
}

#[tokio::test]
async fn an_abort_that_reaches_one_pack_reaches_every_pack() {
    for kind in BROKERS {
        let options = options(kind, kind.default_url(), 1024, Duration::from_secs(30));
        let (mut spec, backends) = connect_all(&options, 3, 1).await;
        spec.inputs = vec![Bytes::from_static(br#"{"scenario": "fail_wait_forever"}"#); 3];
        let failure = Failure::new(Some(9), FailureKind::GuestError, "told to pack 0 only");
        let flare_id = spec.flare_id.clone();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            inject(kind, &flare_id, 0, &encode_abort(&flare_id, &failure)).await;
        });
        let result = burst_host::run_flare_over(runtime(), fixtures(), &spec, backends).await.expect("valid spec");
        writer.await.expect("writer");
        let failure = result.failure.as_ref().expect("the flare failed");
        assert_eq!((failure.worker_id, failure.kind), (Some(9), FailureKind::GuestError), "{kind:?}: {failure}");
        for w in &result.workers {
            assert!(w.end_us <= failure.at_us + 1_000_000, "{kind:?}: worker {} waited for the deadline", w.worker_id);
        }
        assert_eq!(leftovers(kind, &spec.flare_id, 3).await, Vec::<String>::new(), "{kind:?}");
    }
}
