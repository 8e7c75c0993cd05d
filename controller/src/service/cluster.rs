//! The controller's live state: hosts and their slots, the admission queue,
//! and the flares that are queued or running.
//!
//! Everything sits behind one mutex that is never held across an await.
//! Admission is [`admission::decide`]: a flare whose packs fit the free
//! slots now reserves every one of them at once and starts; one that fits
//! only later waits in a bounded queue where tenants take turns
//! ([`queue`]), and the flare whose turn it is blocks the rest (no
//! overtaking, so a large flare is not starved by small ones); one that can
//! never fit is refused. A tenant may also be bounded in the workers it
//! runs at once: its flares then wait for its own, and others pass them. A flare's state is written to the store before it
//! becomes visible, so what a client saw survives a restart.
//!
//! Hosts: the embedded host (`local`) runs its packs as tasks of this
//! process; a remote host receives its packs when it polls, and each poll
//! is its heartbeat. A remote host that has not polled for the host timeout
//! is marked down and every flare with packs on it fails.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use burst_host::result::now_us;
use burst_host::{CancellationToken, Failure, FailureKind, Limits, OutputDir};
use serde_json::Value;
use tokio::sync::{Notify, broadcast, watch};

use super::admission::{self, Decision, HostSlots, Shape};
use super::programs::Programs;
use super::store::{FlareRecord, Store, StoreError};
use crate::api::{Assignment, BackendChoice, FlareDoc, FlareStatus, Health, HostDoc, PackPlacement};
use crate::datasets::Datasets;
use crate::execute::{Grants, execute};
use crate::outputs;
use crate::report::{PackReport, ResultDoc};

mod abort;
mod hosts;
mod queue;

pub use abort::CancelError;
pub use hosts::ReportError;
use queue::Queue;

/// The id of the controller's embedded host.
pub const EMBEDDED_HOST: &str = "local";

/// A dataset named `flare/ID` is the output directory of finished flare
/// `ID`, kept in the store: only the embedded host has it.
pub const FLARE_OUTPUTS_DATASET: &str = "flare/";

/// Changes a follower may fall behind by before it is told to catch up.
const CHANGE_BACKLOG: usize = 1024;

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
    /// Most flares of one tenant waiting for slots, so that one tenant
    /// cannot fill the queue for everyone.
    pub tenant_queue_limit: usize,
    /// Most workers one tenant's running flares may hold (`u32::MAX`: as
    /// many as there are slots).
    pub tenant_worker_limit: u32,
    /// A remote host that has not polled for this long is down.
    pub host_timeout: Duration,
    /// Broker URLs given to hosts for flares through Redis / RabbitMQ.
    pub redis_url: String,
    /// See `redis_url`.
    pub rabbitmq_url: String,
    /// The embedded host's datasets.
    pub datasets: Datasets,
    /// Where flares' output directories are kept (`<flare_id>/` each).
    pub outputs_dir: PathBuf,
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
    /// The dataset its workers read.
    pub dataset: Option<String>,
    /// With an output directory: its quota in bytes.
    pub output_quota: Option<u64>,
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
    /// The tenant's share of the queue is full.
    #[error("{0} of your flares are already waiting for slots; try again once one has started")]
    TenantQueueFull(usize),
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
    /// The datasets it has.
    datasets: BTreeSet<String>,
    remote: Option<Remote>,
}

struct Remote {
    /// The credential issued at registration.
    token: String,
    last_seen: Instant,
    inbox: Vec<Assignment>,
    /// Flares whose packs here must stop: they ended elsewhere.
    cancel: Vec<String>,
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
    /// Stops its packs on the embedded host.
    cancel: CancellationToken,
    /// Its output directory in the store, once it started; every host's
    /// writes are charged to its one quota.
    output: Option<OutputDir>,
}

#[derive(Default)]
struct State {
    hosts: Vec<Host>,
    queue: Queue,
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
    /// The ids of flares whose state changed, for those who follow them
    /// live.
    changes: broadcast::Sender<Arc<str>>,
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
                datasets: config.datasets.names(),
                remote: None,
            });
        }
        Arc::new(Self {
            state: Mutex::new(state),
            store,
            programs,
            config,
            next_flare: AtomicU64::new(0),
            changes: broadcast::Sender::new(CHANGE_BACKLOG),
        })
    }

    /// The id of every flare that is created, starts, progresses or ends
    /// from now on.
    pub fn changes(&self) -> broadcast::Receiver<Arc<str>> {
        self.changes.subscribe()
    }

    fn changed(&self, flare_id: &str) {
        // Nobody may be following; that is no error.
        let _ = self.changes.send(flare_id.into());
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
        let tenant = job.record.tenant.clone();
        if job.shape.burst_size > self.config.tenant_worker_limit {
            return Err(SubmitError::Never(format!(
                "{} workers are more than a tenant may run at once ({})",
                job.shape.burst_size, self.config.tenant_worker_limit
            )));
        }
        let decision = match decide(&state.hosts, &job) {
            // It waits its turn behind a queued flare that may start, behind
            // its tenant's own queued flares, and for its tenant's bound.
            Decision::Start(_)
                if self.next_in_turn(&state).is_some()
                    || state.queue.len_of(&tenant) > 0
                    || !self.within_tenant_bound(&state, &tenant, job.shape.burst_size) =>
            {
                Decision::Wait
            }
            decision => decision,
        };
        let id = job.record.doc.flare_id.clone();
        match decision {
            Decision::Never(reason) => return Err(SubmitError::Never(reason)),
            Decision::Wait if state.queue.len() >= self.config.queue_limit => {
                return Err(SubmitError::QueueFull(state.queue.len()));
            }
            Decision::Wait if state.queue.len_of(&tenant) >= self.config.tenant_queue_limit => {
                return Err(SubmitError::TenantQueueFull(state.queue.len_of(&tenant)));
            }
            _ => {}
        }
        self.store.put_flare(&job.record, None)?;
        let (status, watch) = watch::channel(FlareStatus::Queued);
        let live = Live {
            job,
            waiting_on: HashSet::new(),
            reports: Vec::new(),
            expires: None,
            status,
            cancel: CancellationToken::new(),
            output: None,
        };
        state.live.insert(id.clone(), live);
        match decision {
            Decision::Start(placement) => self.start(&mut state, &id, placement),
            _ => state.queue.push(&tenant, id.clone()),
        }
        let now = state.live.get(&id).map_or(FlareStatus::Failed, |live| *live.status.borrow());
        self.changed(&id);
        Ok((now, watch))
    }

    /// Whether `tenant` may start `workers` more next to its running flares.
    fn within_tenant_bound(&self, state: &State, tenant: &str, workers: u32) -> bool {
        let running: u32 = (state.live.values())
            .filter(|live| live.job.record.tenant == tenant && live.job.record.doc.status == FlareStatus::Running)
            .map(|live| live.job.shape.burst_size)
            .sum();
        running.saturating_add(workers) <= self.config.tenant_worker_limit
    }

    /// The queued flare whose turn it is: the oldest of the first tenant in
    /// turn order that its own bound does not hold back.
    fn next_in_turn(&self, state: &State) -> Option<String> {
        state.queue.heads().find_map(|(tenant, id)| {
            let workers = state.live.get(id).map_or(0, |live| live.job.shape.burst_size);
            self.within_tenant_bound(state, tenant, workers).then(|| id.to_owned())
        })
    }

    /// Reserves the placement's slots and hands out the packs.
    fn start(self: &Arc<Self>, state: &mut State, id: &str, placement: Vec<PackPlacement>) {
        let Some(live) = state.live.get_mut(id) else { return };
        let mut by_host: HashMap<&str, Vec<&PackPlacement>> = HashMap::new();
        for pack in &placement {
            by_host.entry(pack.host.as_str()).or_default().push(pack);
        }
        let pack_sizes: Vec<u32> = placement.iter().map(|p| p.count).collect();
        if let Some(quota) = live.job.output_quota {
            match outputs::flare_dir(&self.config.outputs_dir, id).and_then(|dir| {
                std::fs::create_dir_all(&dir)
                    .map_err(|source| outputs::OutputError::Io { path: dir.display().to_string(), source })?;
                Ok(dir)
            }) {
                Ok(dir) => live.output = Some(OutputDir::new(dir, quota)),
                Err(error) => {
                    let failure = Failure::new(None, FailureKind::Backend, format!("no output directory: {error}"));
                    self.finish(state, id, Some(failure));
                    return;
                }
            }
        }
        let job = &live.job;
        let cancel = live.cancel.clone();
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
                    dataset: job.dataset.clone(),
                    output_quota_bytes: job.output_quota,
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
        let output = live.output.clone();
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
                    self.run_embedded(assignment, output.clone(), cancel.clone());
                }
            }
        }
        tracing::info!(flare_id = id, "flare started");
        self.changed(id);
    }

    fn run_embedded(self: &Arc<Self>, assignment: Assignment, output: Option<OutputDir>, cancel: CancellationToken) {
        let cluster = Arc::clone(self);
        // Admission placed the flare here only if this host has its dataset.
        let data = assignment.dataset.as_deref().and_then(|name| match name.strip_prefix(FLARE_OUTPUTS_DATASET) {
            Some(flare_id) => outputs::flare_dir(&self.config.outputs_dir, flare_id).ok(),
            None => self.config.datasets.dir(name).map(Into::into),
        });
        let grants = Grants { data, output };
        tokio::spawn(async move {
            let reports = match cluster.programs.get(&assignment.digest).await {
                Ok(program) => execute(cluster.programs.runtime(), &program, &assignment, grants, cancel).await,
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

    /// Ends a live flare: merges its reports (plus `failure`, when the
    /// controller failed it), stores the results, wakes its waiters, and
    /// takes back packs not yet handed to a host.
    fn finish(&self, state: &mut State, id: &str, failure: Option<Failure>) {
        let Some(mut live) = state.live.remove(id) else { return };
        state.queue.remove(id);
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
            // Hosts also stop the packs directly, whatever the backend: a
            // `memory` flare has no broker to carry the abort.
            for host in state.hosts.iter_mut().filter(|h| live.waiting_on.contains(&h.id)) {
                if let Some(remote) = &mut host.remote {
                    remote.cancel.push(id.to_owned());
                    remote.wake.notify_one();
                }
            }
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
        self.changed(id);
    }

    /// Starts queued flares in turn order while the one whose turn it is
    /// fits.
    fn pump(self: &Arc<Self>, state: &mut State) {
        while let Some(next) = self.next_in_turn(state) {
            let Some(live) = state.live.get(&next) else {
                state.queue.remove(&next);
                continue;
            };
            match decide(&state.hosts, &live.job) {
                Decision::Start(placement) => {
                    state.queue.remove(&next);
                    self.start(state, &next, placement);
                }
                Decision::Wait => break,
                Decision::Never(reason) => {
                    let failure =
                        Failure::new(None, FailureKind::Backend, format!("the flare can no longer fit: {reason}"));
                    self.finish(state, &next, Some(failure));
                }
            }
        }
    }

    /// Whether a host that is up has dataset `name`.
    pub fn has_dataset(&self, name: &str) -> bool {
        self.lock().hosts.iter().any(|h| h.up && h.datasets.contains(name))
    }

    /// The output directory of live flare `flare_id`, while `host_id` still
    /// owes it a report.
    pub fn output_for(&self, host_id: &str, flare_id: &str) -> Option<OutputDir> {
        let state = self.lock();
        let live = state.live.get(flare_id).filter(|live| live.waiting_on.contains(host_id))?;
        live.output.clone()
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

    /// The queued and running flares of `tenant`, oldest first.
    pub fn live_flares(&self, tenant: &str) -> Vec<FlareDoc> {
        let state = self.lock();
        let mut docs: Vec<FlareDoc> = state
            .live
            .values()
            .filter(|live| live.job.record.tenant == tenant)
            .map(|live| live.job.record.doc.clone())
            .collect();
        docs.sort_by(|a, b| a.flare_id.cmp(&b.flare_id));
        docs
    }

    /// A watch of a live flare's status; `None` once it has finished.
    pub fn watch(&self, flare_id: &str) -> Option<watch::Receiver<FlareStatus>> {
        self.lock().live.get(flare_id).map(|live| live.status.subscribe())
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

    /// Up to `limit` flares of a tenant after flare `after`, in creation
    /// order, live ones as they are now.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub fn flares(&self, tenant: &str, after: Option<&str>, limit: usize) -> Result<Vec<FlareDoc>, StoreError> {
        let stored = self.store.flares_of(tenant, after, limit)?;
        let state = self.lock();
        Ok(stored
            .into_iter()
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

/// Admission over the hosts that are up and have the job's dataset.
fn decide(hosts: &[Host], job: &Job) -> Decision {
    let slots: Vec<HostSlots<'_>> = hosts
        .iter()
        .filter(|h| {
            h.up && job.dataset.as_ref().is_none_or(|name| {
                h.datasets.contains(name) || (h.remote.is_none() && name.starts_with(FLARE_OUTPUTS_DATASET))
            })
        })
        .map(|h| HostSlots { host: &h.id, slots: h.slots, free: h.free() })
        .collect();
    if slots.is_empty()
        && let Some(name) = &job.dataset
    {
        return Decision::Never(format!("no host that is up has dataset `{name}`"));
    }
    admission::decide(&slots, &job.shape)
}
