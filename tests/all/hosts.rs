//! Host daemons: a controller without an embedded host and two `burst host`
//! processes on loopback; one flare spans both through Redis and through
//! RabbitMQ, and a host
//! that stops polling is marked down and fails its flare.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use burst_host::comm::BrokerKind;
use serde_json::{Value, json};

use crate::brokers::leftovers;
use crate::controller::{Api, Controller, TempDir, burst_command, check_hello, spawn_first_line};

const CLUSTER_TOKEN: &str = "cluster-secret";

pub const CLUSTER_TOKEN_ENV: (&str, &str) = ("BURST_CLUSTER_TOKEN", CLUSTER_TOKEN);

pub struct HostDaemon {
    child: Child,
    cache: TempDir,
}

impl HostDaemon {
    fn start(url: &str, slots: u32, name: &str) -> Self {
        Self::start_in(None, url, slots, name)
    }

    /// A host daemon with `extra` arguments.
    pub fn start_with(url: &str, slots: u32, name: &str, extra: &[&str]) -> Self {
        let cache = TempDir::new("burst-host-cache");
        let dir = cache.0.display().to_string();
        Self::start_with_cache(None, url, slots, name, &dir, cache, extra)
    }

    /// Files left under the host's output directories.
    pub fn outputs_left(&self) -> Vec<String> {
        crate::datasets::files_under(&self.cache.0.join("outputs"))
    }

    /// A host daemon, in network namespace `netns` when given.
    pub fn start_in(netns: Option<&str>, url: &str, slots: u32, name: &str) -> Self {
        let cache = TempDir::new("burst-host-cache");
        let dir = cache.0.display().to_string();
        Self::start_with_cache(netns, url, slots, name, &dir, cache, &[])
    }

    fn start_with_cache(
        netns: Option<&str>,
        url: &str,
        slots: u32,
        name: &str,
        dir: &str,
        cache: TempDir,
        extra: &[&str],
    ) -> Self {
        let args: Vec<String> =
            ["host", "--controller", url, "--slots", &slots.to_string(), "--name", name, "--cache-dir", dir]
                .iter()
                .chain(extra)
                .map(|s| s.to_string())
                .collect();
        let command = match netns {
            None => burst_command(&args, &[CLUSTER_TOKEN_ENV]),
            Some(netns) => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", netns, env!("CARGO_BIN_EXE_burst")])
                    .args(&args)
                    .envs([CLUSTER_TOKEN_ENV]);
                command
            }
        };
        let (child, line) = spawn_first_line(command);
        assert!(line.starts_with("burst host: registered as host-"), "{line}");
        Self { child, cache }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HostDaemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn cluster(host_timeout_ms: &str) -> (Controller, Vec<HostDaemon>) {
    let controller = Controller::start(&["--slots", "0", "--host-timeout-ms", host_timeout_ms], &[CLUSTER_TOKEN_ENV]);
    let hosts = vec![HostDaemon::start(&controller.url, 4, "alpha"), HostDaemon::start(&controller.url, 4, "beta")];
    (controller, hosts)
}

async fn health_of(api: &Api) -> Value {
    api.get("/health").await.1
}

/// Waits until the cluster has `free` free slots: the packs of a failed
/// flare on the surviving hosts were told, stopped and reported long
/// before their deadline (at least 30 s in these tests). The bound is
/// loose because the whole suite shares two cores; alone it takes ~1 s.
async fn slots_freed(api: &Api, free: u64) {
    const SLOTS_FREED_WITHIN: Duration = Duration::from_secs(20);
    let failed = Instant::now();
    loop {
        let health = health_of(api).await;
        if health["free_slots"] == free {
            return;
        }
        assert!(failed.elapsed() < SLOTS_FREED_WITHIN, "slots still held: {health}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_flare_spans_two_host_daemons_through_each_broker() {
    let (controller, _hosts) = cluster("10000");
    let api = controller.api(None);
    let health = health_of(&api).await;
    assert_eq!((health["slots"].as_u64(), health["hosts"].as_array().map(Vec::len)), (Some(8), Some(2)), "{health}");
    api.deploy_guest("hello", "hello").await;
    for (backend, kind) in [("redis", BrokerKind::Redis), ("rabbitmq", BrokerKind::RabbitMq)] {
        let request = json!({"definition": "hello", "burst_size": 8, "granularity": 4, "backend": backend});
        let results = api.flare_wait(request).await;
        check_hello(&results, 8, |id| id / 4);
        let placement = results["placement"].as_array().expect("placement");
        let (first, second) = (&placement[0]["host"], &placement[1]["host"]);
        assert!(first.as_str().is_some_and(|h| h.starts_with("host-")) && first != second, "{placement:?}");
        for (id, worker) in results["workers"].as_array().expect("workers").iter().enumerate() {
            assert_eq!(&worker["host"], if id < 4 { first } else { second });
        }
        assert_eq!(results["bytes"]["remote"], 2 + 2 * 8);
        let flare_id = results["flare_id"].as_str().expect("id");
        assert_eq!(leftovers(kind, flare_id, 2).await, Vec::<String>::new(), "{backend}");
    }
    // The second flare uses the hosts' cached components.
    let again = api
        .flare_wait(json!({"definition": "hello", "burst_size": 6, "packing": "heterogeneous", "backend": "redis"}))
        .await;
    check_hello(&again, 6, |id| id / 4);
    assert_eq!(health_of(&api).await["free_slots"], 8);
}

#[tokio::test]
async fn a_host_that_stops_polling_is_marked_down_and_its_flare_fails() {
    let (controller, mut hosts) = cluster("1500");
    let api = controller.api(None);
    api.deploy_guest("fixtures", "burst_fixtures").await;
    let request = json!({
        "definition": "fixtures", "burst_size": 8, "granularity": 4, "backend": "redis",
        "input": {"scenario": "fail_wait_forever"}, "deadline_ms": 30000,
    });
    let (status, accepted) = api.post("/v1/flares", &request).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["flare_id"].as_str().expect("id");
    let started = Instant::now();
    while api.get(&format!("/v1/flares/{id}")).await.1["workers_started"] != 8 {
        assert!(started.elapsed() < Duration::from_secs(30), "the hosts never took their packs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hosts[0].kill();
    let killed = Instant::now();
    let failed = api.wait_final(id).await;
    assert_eq!(failed["status"], "failed");
    let message = failed["failure"]["message"].as_str().expect("a message");
    assert!(message.contains("(alpha) stopped polling the controller"), "{message}");
    // Within the host timeout and a check, long before the flare's deadline.
    assert!(killed.elapsed() < Duration::from_secs(10), "{:?}", killed.elapsed());
    let health = health_of(&api).await;
    let states: Vec<&str> =
        health["hosts"].as_array().expect("hosts").iter().filter_map(|h| h["state"].as_str()).collect();
    assert_eq!(states, ["down", "up"]);
    assert_eq!(health["slots"], 4);
    slots_freed(&api, 4).await;
    // What the surviving pack held is gone; the lost pack's keys expire.
    let left = leftovers(BrokerKind::Redis, id, 2).await;
    assert!(left.iter().all(|key| !key.ends_with(":inbox:1")), "{left:?}");
    // Ten host timeouts after its last poll, the down host leaves the list.
    let forgotten = async {
        while health_of(&api).await["hosts"].as_array().map(Vec::len) != Some(1) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), forgotten).await.expect("the down host is forgotten");
    assert_eq!(health_of(&api).await["hosts"][0]["state"], "up");
}

#[tokio::test]
async fn a_host_that_cannot_run_its_packs_fails_the_flare_at_once() {
    let controller = Controller::start(&["--slots", "0"], &[CLUSTER_TOKEN_ENV]);
    let _working = HostDaemon::start(&controller.url, 4, "alpha");
    // Its cache directory cannot be created, so it cannot fetch the component.
    let _broken = HostDaemon::start_with_cache(
        None,
        &controller.url,
        4,
        "beta",
        "/dev/null/burst",
        TempDir::new("burst-unused"),
        &[],
    );
    let api = controller.api(None);
    api.deploy_guest("hello", "hello").await;
    let started = Instant::now();
    let request =
        json!({"definition": "hello", "burst_size": 8, "granularity": 4, "backend": "redis", "deadline_ms": 60000});
    let results = api.flare_wait(request).await;
    assert_eq!(results["status"], "failed");
    assert_eq!(results["failure"]["kind"], "instantiate");
    let message = results["failure"]["message"].as_str().expect("a message");
    assert!(message.contains("/dev/null/burst"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    slots_freed(&api, 8).await;
}

#[tokio::test]
async fn a_cancelled_memory_flare_stops_on_its_host_daemon() {
    // A `memory` flare has no broker to carry the abort: its packs on a
    // host daemon once ran on to their deadline, holding the slots.
    let controller = Controller::start(&["--slots", "0"], &[CLUSTER_TOKEN_ENV]);
    let _host = HostDaemon::start(&controller.url, 4, "alpha");
    let api = controller.api(None);
    api.deploy_guest("fixtures", "burst_fixtures").await;
    let request = json!({
        "definition": "fixtures", "burst_size": 4, "input": {"scenario": "fail_wait_forever"}, "deadline_ms": 120000,
    });
    let (status, accepted) = api.post("/v1/flares", &request).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["flare_id"].as_str().expect("id");
    let started = Instant::now();
    while api.get(&format!("/v1/flares/{id}")).await.1["workers_started"] != 4 {
        assert!(started.elapsed() < Duration::from_secs(30), "the host never took its pack");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, cancelled) = api.delete(&format!("/v1/flares/{id}")).await;
    assert_eq!((status, cancelled["failure"]["kind"].as_str()), (200, Some("cancelled")), "{cancelled}");
    slots_freed(&api, 4).await;
    // The host runs the next flare on those slots.
    api.deploy_guest("hello", "hello").await;
    let results = api.flare_wait(json!({"definition": "hello", "burst_size": 4})).await;
    check_hello(&results, 4, |_| 0);
}
