//! The controller's live state: hosts and their slots, the admission queue,
//! and the flares that are queued or running.
//!
//! Everything sits behind one mutex that is never held across an await.
//! Admission is [`admission::decide`]: a flare whose packs fit the free
//! slots now reserves every one of them at once and starts; one that fits
//! only later waits in a bounded FIFO queue, whose head blocks the rest (no
//! overtaking, so a large flare is not starved by small ones); one that can
//! never fit is refused. A flare's state is written to the store before it
//! becomes visible, so what a client saw survives a restart.
//!
//! Hosts: the embedded host (`local`) runs its packs as tasks of this
//! process; a remote host receives its packs when it polls, and each poll
//! is its heartbeat. A remote host that has not polled for the host timeout
//! is marked down and every flare with packs on it fails.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use burst_host::result::now_us;
use burst_host::{Failure, FailureKind, Limits};
use serde_json::Value;
use tokio::sync::{Notify, watch};

use super::admission::{self, Decision, HostSlots, Shape};
use super::programs::Programs;
use super::store::{FlareRecord, Store, StoreError};
use crate::api::{Assignment, BackendChoice, FlareDoc, FlareStatus, Health, HostDoc, PackPlacement};
use crate::execute::execute;
use crate::report::{PackReport, ResultDoc};

mod abort;

/// The id of the controller's embedded host.
pub const EMBEDDED_HOST: &str = "local";

/// How long after its deadline a running flare may wait for its hosts'
/// reports before it fails: covers a host's connect and report round trip.
const REPORT_GRACE: Duration = Duration::from_secs(30);

/// Settings of the cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Slots of the embedded host (0: none, only remote hosts run packs).
    pub embedded_slots: u32,
    /// Most flares waiting for slots.
    pub queue_limit: usize,
    /// A remote host that has not polled for this long is down.
    pub host_timeout: Duration,
    /// Broker URLs given to hosts for flares through Redis / RabbitMQ.
    pub redis_url: String,
    /// See `redis_url`.
    pub rabbitmq_url: String,
}

/// A validated flare request, ready for admission.
pub struct Job {
    /// Who asked, and the flare's initial state (`queued`).
    pub record: FlareRecord,
    /// Its shape for admission.
    pub shape: Shape,
    /// The component to run.
    pub digest: String,
    /// One input per worker.
    pub inputs: Vec<Arc<Value>>,
    /// Deadline in milliseconds.
    pub deadline_ms: u64,
    /// Per-worker limits.
    pub limits: Limits,
    /// Backend between packs.
    pub backend: BackendChoice,
}

/// Why a flare was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// It cannot fit even an idle cluster.
    #[error("the flare can never fit: {0}")]
    Never(String),
    /// The queue is full.
    #[error("{0} flares are already waiting for slots; try again later")]
    QueueFull(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A remote host's answer to a poll: nothing is known of it (it was never
/// registered, or it was marked down and must register again).
#[derive(Debug)]
pub struct UnknownHost;

struct Host {
    id: String,
    name: String,
    slots: u32,
    /// Slots held per flare.
    reserved: HashMap<String, u32>,
    up: bool,
    remote: Option<Remote>,
}

struct Remote {
    /// The credential issued at registration.
    token: String,
    last_seen: Instant,
    inbox: Vec<Assignment>,
    wake: Arc<Notify>,
}

impl Host {
    fn free(&self) -> u32 {
        self.slots.saturating_sub(self.reserved.values().sum())
    }
}

struct Live {
    job: Job,
    /// Hosts whose reports are still missing.
    waiting_on: HashSet<String>,
    reports: Vec<PackReport>,
    /// When to stop waiting for reports.
    expires: Option<Instant>,
    status: watch::Sender<FlareStatus>,
}

#[derive(Default)]
struct State {
    hosts: Vec<Host>,
    queue: VecDeque<String>,
    live: HashMap<String, Live>,
    registered: u64,
}

/// The cluster: hosts, queue, live flares.
pub struct Cluster {
    state: Mutex<State>,
    store: Arc<Store>,
    programs: Arc<Programs>,
    config: ClusterConfig,
    next_flare: AtomicU64,
}

impl Cluster {
    pub fn new(store: Arc<Store>, programs: Arc<Programs>, config: ClusterConfig) -> Arc<Self> {
        let mut state = State::default();
        if config.embedded_slots > 0 {
            state.hosts.push(Host {
                id: EMBEDDED_HOST.into(),
                name: "embedded".into(),
                slots: config.embedded_slots,
                reserved: HashMap::new(),
                up: true,
                remote: None,
            });
        }
        Arc::new(Self { state: Mutex::new(state), store, programs, config, next_flare: AtomicU64::new(0) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh flare id; ids sort in creation order across restarts.
    pub fn new_flare_id(&self) -> String {
        format!("f-{:013x}-{}", now_us(), self.next_flare.fetch_add(1, Ordering::Relaxed))
    }

    /// Admits a flare: starts it, queues it, or refuses it. Answers the
    /// status it has now and a watch that sees every change.
    ///
    /// # Errors
    /// [`SubmitError`] when it can never fit, the queue is full, or the
    /// store fails; nothing is stored then.
    pub fn submit(self: &Arc<Self>, job: Job) -> Result<(FlareStatus, watch::Receiver<FlareStatus>), SubmitError> {
        let mut state = self.lock();
        let decision = match decide(&state.hosts, &job.shape) {
            // Behind a queue, a flare waits its turn even when it would fit.
            Decision::Start(_) if !state.queue.is_empty() => Decision::Wait,
            decision => decision,
        };
        let id = job.record.doc.flare_id.clone();
        match decision {
            Decision::Never(reason) => return Err(SubmitError::Never(reason)),
            Decision::Wait if state.queue.len() >= self.config.queue_limit => {
                return Err(SubmitError::QueueFull(state.queue.len()));
            }
            _ => {}
        }
        self.store.put_flare(&job.record, None)?;
        let (status, watch) = watch::channel(FlareStatus::Queued);
        state
            .live
            .insert(id.clone(), Live { job, waiting_on: HashSet::new(), reports: Vec::new(), expires: None, status });
        match decision {
            Decision::Start(placement) => self.start(&mut state, &id, placement),
            _ => state.queue.push_back(id.clone()),
        }
        let now = state.live.get(&id).map_or(FlareStatus::Failed, |live| *live.status.borrow());
        Ok((now, watch))
    }

    /// Reserves the placement's slots and hands out the packs.
    fn start(self: &Arc<Self>, state: &mut State, id: &str, placement: Vec<PackPlacement>) {
        let Some(live) = state.live.get_mut(id) else { return };
        let mut by_host: HashMap<&str, Vec<&PackPlacement>> = HashMap::new();
        for pack in &placement {
            by_host.entry(pack.host.as_str()).or_default().push(pack);
        }
        let pack_sizes: Vec<u32> = placement.iter().map(|p| p.count).collect();
        let job = &live.job;
        let mut assignments = Vec::new();
        for (host_id, packs) in by_host {
            let inputs = packs.iter().flat_map(|p| &job.inputs[p.first as usize..(p.first + p.count) as usize]);
            assignments.push((
                host_id.to_owned(),
                packs.iter().map(|p| p.count).sum::<u32>(),
                Assignment {
                    flare_id: id.to_owned(),
                    digest: job.digest.clone(),
                    pack_sizes: pack_sizes.clone(),
                    packs: packs.iter().map(|p| p.pack_id).collect(),
                    inputs: inputs.cloned().collect(),
                    deadline_ms: job.deadline_ms,
                    limits: job.limits,
                    backend: job.backend,
                    broker_url: match job.backend {
                        BackendChoice::Memory => None,
                        BackendChoice::Redis => Some(self.config.redis_url.clone()),
                        BackendChoice::Rabbitmq => Some(self.config.rabbitmq_url.clone()),
                    },
                },
            ));
        }
        live.waiting_on = assignments.iter().map(|(host, ..)| host.clone()).collect();
        live.expires = Some(Instant::now() + Duration::from_millis(job.deadline_ms) + REPORT_GRACE);
        let doc = &mut live.job.record.doc;
        doc.status = FlareStatus::Running;
        doc.started_us = Some(now_us());
        doc.placement = Some(placement);
        if let Err(error) = self.store.put_flare(&live.job.record, None) {
            tracing::error!(flare_id = id, %error, "could not store that the flare started");
        }
        live.status.send_replace(FlareStatus::Running);
        for (host_id, workers, assignment) in assignments {
            let Some(host) = state.hosts.iter_mut().find(|h| h.id == host_id) else { continue };
            host.reserved.insert(id.to_owned(), workers);
            match &mut host.remote {
                Some(remote) => {
                    remote.inbox.push(assignment);
                    remote.wake.notify_one();
                }
                None => {
                    if let Some(live) = state.live.get_mut(id) {
                        live.job.record.doc.workers_started += workers;
                    }
                    self.run_embedded(assignment);
                }
            }
        }
        tracing::info!(flare_id = id, "flare started");
    }

    fn run_embedded(self: &Arc<Self>, assignment: Assignment) {
        let cluster = Arc::clone(self);
        tokio::spawn(async move {
            let reports = match cluster.programs.get(&assignment.digest).await {
                Ok(program) => execute(cluster.programs.runtime(), &program, &assignment).await,
                Err(message) => {
                    vec![PackReport::failed(
                        &assignment.flare_id,
                        Failure::new(None, FailureKind::Instantiate, message),
                    )]
                }
            };
            if let Err(error) = cluster.report(EMBEDDED_HOST, &assignment.flare_id, reports) {
                tracing::error!(flare_id = assignment.flare_id, %error, "the embedded host's report was refused");
            }
        });
    }

    /// Whether `token` is the credential of the live remote host `host_id`.
    ///
    /// # Errors
    /// [`UnknownHost`] when no such host is up.
    pub fn is_host(&self, host_id: &str, token: &str) -> Result<bool, UnknownHost> {
        let state = self.lock();
        let host = state.hosts.iter().find(|h| h.id == host_id && h.up).ok_or(UnknownHost)?;
        Ok(host.remote.as_ref().is_some_and(|remote| remote.token == token))
    }

    /// A host's reports for the packs of a flare it ran; frees its slots.
    /// Accepted only for a flare that has packs on that host, and, while
    /// the flare runs, only with exactly the workers of those packs.
    ///
    /// # Errors
    /// [`ReportError`] naming what does not match; nothing changes then.
    pub fn report(
        self: &Arc<Self>,
        host_id: &str,
        flare_id: &str,
        mut reports: Vec<PackReport>,
    ) -> Result<(), ReportError> {
        let mut state = self.lock();
        let host = state.hosts.iter_mut().find(|h| h.id == host_id).ok_or(ReportError::NotAssigned)?;
        if !host.reserved.contains_key(flare_id) {
            return Err(ReportError::NotAssigned);
        }
        if let Some(live) = state.live.get(flare_id) {
            check_workers(live, host_id, &reports)?;
        }
        if let Some(host) = state.hosts.iter_mut().find(|h| h.id == host_id) {
            host.reserved.remove(flare_id);
        }
        // Packs that could not start at all (no broker, no component) leave
        // their peers waiting until the deadline: fail the flare now.
        let could_not_run = reports.iter().any(|r| r.workers.is_empty() && r.failure.is_some());
        if let Some(live) = state.live.get_mut(flare_id)
            && live.waiting_on.remove(host_id)
        {
            for report in &mut reports {
                for worker in &mut report.workers {
                    worker.host = Some(host_id.to_owned());
                }
                live.job.record.doc.workers_finished += report.workers.len() as u32;
            }
            live.reports.extend(reports);
            if live.waiting_on.is_empty() || could_not_run {
                self.finish(&mut state, flare_id, None);
            }
        }
        self.pump(&mut state);
        Ok(())
    }

    /// Ends a live flare: merges its reports (plus `failure`, when the
    /// controller failed it), stores the results, wakes its waiters, and
    /// takes back packs not yet handed to a host.
    fn finish(&self, state: &mut State, id: &str, failure: Option<Failure>) {
        let Some(mut live) = state.live.remove(id) else { return };
        state.queue.retain(|queued| queued != id);
        if let Some(failure) = failure {
            live.reports.push(PackReport::failed(id, failure));
        }
        let doc = &mut live.job.record.doc;
        let mut result = ResultDoc::new(id, doc.burst_size, doc.granularity, live.reports);
        result.placement = doc.placement.clone();
        doc.status = result.status;
        doc.finished_us = Some(now_us());
        doc.failure = result.failure.clone();
        if let Err(error) = self.store.put_flare(&live.job.record, Some(&result)) {
            tracing::error!(flare_id = id, %error, "could not store the flare's results");
        }
        if let Some(failure) = &result.failure
            && !live.waiting_on.is_empty()
        {
            self.abort_running(&live.job, &live.waiting_on, id, failure.clone());
        }
        for host in &mut state.hosts {
            if let Some(remote) = &mut host.remote
                && remote.inbox.iter().any(|a| a.flare_id == id)
            {
                remote.inbox.retain(|a| a.flare_id != id);
                host.reserved.remove(id);
            }
        }
        tracing::info!(flare_id = id, status = result.status.as_str(), "flare finished");
        live.status.send_replace(result.status);
    }

    /// Starts queued flares, in order, while the head fits.
    fn pump(self: &Arc<Self>, state: &mut State) {
        while let Some(head) = state.queue.front().cloned() {
            let Some(live) = state.live.get(&head) else {
                state.queue.pop_front();
                continue;
            };
            match decide(&state.hosts, &live.job.shape) {
                Decision::Start(placement) => {
                    state.queue.pop_front();
                    self.start(state, &head, placement);
                }
                Decision::Wait => break,
                Decision::Never(reason) => {
                    let failure =
                        Failure::new(None, FailureKind::Backend, format!("the flare can no longer fit: {reason}"));
                    self.finish(state, &head, Some(failure));
                }
            }
        }
    }

    /// Registers a remote host; answers its id.
    pub fn register(self: &Arc<Self>, name: String, slots: u32, token: String) -> String {
        let mut state = self.lock();
        state.registered += 1;
        let id = format!("host-{}", state.registered);
        tracing::info!(host_id = id, name, slots, "host registered");
        let remote = Remote { token, last_seen: Instant::now(), inbox: Vec::new(), wake: Arc::new(Notify::new()) };
        state.hosts.push(Host {
            id: id.clone(),
            name,
            slots,
            reserved: HashMap::new(),
            up: true,
            remote: Some(remote),
        });
        self.pump(&mut state);
        id
    }

    /// A remote host's poll (and heartbeat): its new assignments, waiting
    /// up to `wait` for one.
    ///
    /// # Errors
    /// [`UnknownHost`] when the host is not registered or is down.
    pub async fn poll(&self, host_id: &str, wait: Duration) -> Result<Vec<Assignment>, UnknownHost> {
        let wake = {
            let mut state = self.lock();
            let work = take_work(&mut state, host_id)?;
            if !work.is_empty() {
                return Ok(work);
            }
            let host = state.hosts.iter().find(|h| h.id == host_id);
            host.and_then(|h| h.remote.as_ref()).map(|r| Arc::clone(&r.wake)).ok_or(UnknownHost)?
        };
        let _ = tokio::time::timeout(wait, wake.notified()).await;
        take_work(&mut self.lock(), host_id)
    }

    /// Marks down the remote hosts that stopped polling and fails their
    /// flares; fails flares whose reports are overdue. Called periodically.
    pub fn check(self: &Arc<Self>) {
        let mut state = self.lock();
        let timeout = self.config.host_timeout;
        let mut failures = Vec::new();
        for host in &mut state.hosts {
            let Some(remote) = &mut host.remote else { continue };
            if host.up && remote.last_seen.elapsed() > timeout {
                tracing::warn!(host_id = host.id, "host stopped polling; marking it down");
                host.up = false;
                remote.inbox.clear();
                let message = format!(
                    "host {} ({}) stopped polling the controller for {} ms and was marked down",
                    host.id,
                    host.name,
                    timeout.as_millis()
                );
                for flare_id in host.reserved.drain().map(|(id, _)| id) {
                    failures.push((flare_id, message.clone()));
                }
            }
        }
        let now = Instant::now();
        for (id, live) in &state.live {
            if live.expires.is_some_and(|at| at < now) {
                let hosts: Vec<&str> = live.waiting_on.iter().map(String::as_str).collect();
                failures.push((id.clone(), format!("no report from host(s) {} after the deadline", hosts.join(", "))));
            }
        }
        for (id, message) in failures {
            self.finish(&mut state, &id, Some(Failure::new(None, FailureKind::Backend, message)));
        }
        self.pump(&mut state);
    }

    /// The state of a flare, live or stored.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn flare(&self, flare_id: &str) -> Result<Option<FlareRecord>, StoreError> {
        if let Some(live) = self.lock().live.get(flare_id) {
            return Ok(Some(live.job.record.clone()));
        }
        self.store.flare(flare_id)
    }

    /// How many queued or running flares of `tenant` run definition `name`.
    pub fn live_flares_of(&self, tenant: &str, name: &str) -> usize {
        let state = self.lock();
        state
            .live
            .values()
            .filter(|live| live.job.record.tenant == tenant && live.job.record.doc.definition == name)
            .count()
    }

    /// Every flare of a tenant, in creation order.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn flares(&self, tenant: &str) -> Result<Vec<FlareDoc>, StoreError> {
        let stored = self.store.flares()?;
        let state = self.lock();
        Ok(stored
            .into_iter()
            .filter(|r| r.tenant == tenant)
            .map(|r| state.live.get(&r.doc.flare_id).map_or(r.doc, |live| live.job.record.doc.clone()))
            .collect())
    }

    /// Hosts, slots and flares.
    pub fn health(&self) -> Health {
        let state = self.lock();
        let hosts: Vec<HostDoc> = state
            .hosts
            .iter()
            .map(|h| HostDoc {
                host_id: h.id.clone(),
                name: h.name.clone(),
                slots: h.slots,
                free_slots: h.free(),
                state: if h.up { "up" } else { "down" }.into(),
            })
            .collect();
        let up = state.hosts.iter().filter(|h| h.up);
        let queued = state.queue.len() as u32;
        Health {
            status: "ok".into(),
            slots: up.clone().map(|h| h.slots).sum(),
            free_slots: up.map(Host::free).sum(),
            queued,
            running: state.live.len() as u32 - queued,
            hosts,
        }
    }
}

fn decide(hosts: &[Host], shape: &Shape) -> Decision {
    let slots: Vec<HostSlots<'_>> =
        hosts.iter().filter(|h| h.up).map(|h| HostSlots { host: &h.id, slots: h.slots, free: h.free() }).collect();
    admission::decide(&slots, shape)
}

/// Takes a host's pending assignments, noting it was seen.
/// Why a host's report was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The flare has no packs on this host (or never existed).
    #[error("this host runs no packs of that flare")]
    NotAssigned,
    /// The reported workers are not exactly those of the host's packs.
    #[error("{0}")]
    Workers(String),
}

/// The reports of a running flare's host must hold exactly the workers of
/// its packs, each once, unless they say it could not run them at all.
fn check_workers(live: &Live, host_id: &str, reports: &[PackReport]) -> Result<(), ReportError> {
    if reports.is_empty() {
        return Err(ReportError::Workers("a report must hold at least one pack".into()));
    }
    if reports.iter().all(|r| r.workers.is_empty() && r.failure.is_some()) {
        return Ok(());
    }
    let placement = live.job.record.doc.placement.iter().flatten();
    let mut expected: Vec<u32> =
        placement.filter(|p| p.host == host_id).flat_map(|p| p.first..p.first + p.count).collect();
    let mut reported: Vec<u32> = reports.iter().flat_map(|r| r.workers.iter().map(|w| w.worker_id)).collect();
    expected.sort_unstable();
    reported.sort_unstable();
    if expected == reported {
        Ok(())
    } else {
        Err(ReportError::Workers(format!(
            "the report holds {} workers; this host ran {} (workers {}..={})",
            reported.len(),
            expected.len(),
            expected.first().copied().unwrap_or(0),
            expected.last().copied().unwrap_or(0)
        )))
    }
}

fn take_work(state: &mut State, host_id: &str) -> Result<Vec<Assignment>, UnknownHost> {
    let host = state.hosts.iter_mut().find(|h| h.id == host_id && h.up).ok_or(UnknownHost)?;
    let remote = host.remote.as_mut().ok_or(UnknownHost)?;
    remote.last_seen = Instant::now();
    let work = std::mem::take(&mut remote.inbox);
    for assignment in &work {
        if let Some(live) = state.live.get_mut(&assignment.flare_id) {
            live.job.record.doc.workers_started += assignment.inputs.len() as u32;
        }
    }
    Ok(work)
}
