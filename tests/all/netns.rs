//! The multi-host test with each host daemon in a network namespace of its
//! own: the namespaces hang off a bridge, and the controller and Redis
//! (which listen on loopback) are reached through forwarders on the
//! bridge's address. Skipped, saying so, where `ip netns` is not usable.

use std::net::SocketAddr;
use std::process::Command;

use burst_host::comm::BrokerKind;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::brokers::leftovers;
use crate::controller::{Controller, check_hello};
use crate::hosts::{CLUSTER_TOKEN_ENV, HostDaemon};

fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).output().is_ok_and(|out| out.status.success())
}

/// Two namespaces on a bridge; removed on drop.
struct Namespaces {
    names: [String; 2],
    bridge: String,
    gateway: String,
}

impl Namespaces {
    /// `None` when namespaces or bridges cannot be made here.
    fn create() -> Option<Self> {
        let id = std::process::id();
        // Names and subnet per test process, so concurrent runs do not meet.
        let subnet = format!("10.77.{}", id % 200 + 20);
        let this = Self {
            names: [format!("burst-{id}-a"), format!("burst-{id}-b")],
            bridge: format!("bbr{id}"),
            gateway: format!("{subnet}.1"),
        };
        let gateway = format!("{}/24", this.gateway);
        let mut ok = ip(&["link", "add", &this.bridge, "type", "bridge"])
            && ip(&["addr", "add", &gateway, "dev", &this.bridge])
            && ip(&["link", "set", &this.bridge, "up"]);
        for (index, name) in this.names.iter().enumerate() {
            let veth = format!("bv{id}{index}");
            let address = format!("{subnet}.{}/24", index + 2);
            ok = ok
                && ip(&["netns", "add", name])
                && ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", name])
                && ip(&["link", "set", &veth, "master", &this.bridge, "up"])
                && ip(&["-n", name, "addr", "add", &address, "dev", "eth0"])
                && ip(&["-n", name, "link", "set", "eth0", "up"])
                && ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        ok.then_some(this)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and so the pair.
        for name in &self.names {
            ip(&["netns", "del", name]);
        }
        ip(&["link", "del", &self.bridge]);
    }
}

/// Accepts on `ip` (any port) and forwards each connection to `to`.
struct Forwarder {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Forwarder {
    async fn start(ip: &str, to: SocketAddr) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind on the bridge");
        let addr = listener.local_addr().expect("bound");
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flare_spans_two_hosts_in_their_own_network_namespaces() {
    let Some(net) = Namespaces::create() else {
        eprintln!("skipped: `ip netns` and bridges are not usable here");
        return;
    };
    let redis_port = BrokerKind::Redis.default_url().rsplit(':').next().expect("a port");
    let redis = Forwarder::start(&net.gateway, format!("127.0.0.1:{redis_port}").parse().expect("addr")).await;
    let redis_url = format!("redis://{}", redis.addr);
    let controller = Controller::start(&["--slots", "0", "--redis-url", &redis_url], &[CLUSTER_TOKEN_ENV]);
    let to: SocketAddr = controller.url.trim_start_matches("http://").parse().expect("controller address");
    let front = Forwarder::start(&net.gateway, to).await;
    let url = format!("http://{}", front.addr);
    let _hosts = [
        HostDaemon::start_in(Some(&net.names[0]), &url, 4, "ns-a"),
        HostDaemon::start_in(Some(&net.names[1]), &url, 4, "ns-b"),
    ];
    let api = controller.api(None);
    api.deploy_guest("hello", "hello").await;
    let results =
        api.flare_wait(json!({"definition": "hello", "burst_size": 8, "granularity": 4, "backend": "redis"})).await;
    check_hello(&results, 8, |id| id / 4);
    let hosts: Vec<&str> =
        results["placement"].as_array().expect("placement").iter().filter_map(|p| p["host"].as_str()).collect();
    assert_eq!(hosts, ["host-1", "host-2"]);
    let flare_id = results["flare_id"].as_str().expect("id");
    assert_eq!(leftovers(BrokerKind::Redis, flare_id, 2).await, Vec::<String>::new());
}
