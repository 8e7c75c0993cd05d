//! Load: 100 concurrent flares of 16 workers through HTTP against one
//! `burst serve`, packs talking through Redis. Every output is checked,
//! nothing of any flare is left in the broker, and the controller still
//! answers afterwards.

use std::time::{Duration, Instant};

use burst_host::comm::BrokerKind;
use serde_json::json;

use crate::brokers::leftovers;
use crate::controller::{Controller, check_hello};

const FLARES: usize = 100;
const WORKERS: u64 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_flares_of_sixteen_workers_all_succeed() {
    // 128 slots: eight flares run at once, the rest wait in the queue.
    let controller = Controller::start(&["--slots", "128"], &[]);
    let api = controller.api(None);
    api.deploy_guest("hello", "hello").await;
    let started = Instant::now();
    let flares: Vec<_> = (0..FLARES)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                let request =
                    json!({"definition": "hello", "burst_size": WORKERS, "granularity": 4, "backend": "redis"});
                api.flare_wait(request).await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for flare in flares {
        let results = flare.await.expect("the flare task");
        check_hello(&results, WORKERS, |id| id / 4);
        ids.push(results["flare_id"].as_str().expect("id").to_owned());
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(300), "{took:?}");
    for id in &ids {
        assert_eq!(leftovers(BrokerKind::Redis, id, 4).await, Vec::<String>::new(), "{id}");
    }
    let (status, health) = api.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!((health["free_slots"].as_u64(), health["queued"].as_u64()), (Some(128), Some(0)), "{health}");
    assert_eq!(api.get("/v1/flares").await.1.as_array().map(Vec::len), Some(FLARES));
    eprintln!("{FLARES} flares of {WORKERS} workers in {took:?}");
}
