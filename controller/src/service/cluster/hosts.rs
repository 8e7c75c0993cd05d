//! The hosts' side of the cluster: registering, polling for work, reports,
//! and marking silent hosts down.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burst_host::comm::{MAX_COMM_SPANS, Primitive};
use burst_host::{Failure, FailureKind};
use tokio::sync::Notify;

use super::{Cluster, Host, Live, Remote, State, UnknownHost};
use crate::api::Work;
use crate::report::PackReport;

/// Host timeouts after which a host that went down leaves the host list.
pub const FORGET_AFTER: u32 = 10;

impl Cluster {
    /// Whether `token` is the credential of the live remote host `host_id`.
    ///
    /// # Errors
    /// [`UnknownHost`] when no such host is up.
    pub fn is_host(&self, host_id: &str, token: &str) -> Result<bool, UnknownHost> {
        let state = self.lock();
        let host = state.hosts.iter().find(|h| h.id == host_id && h.up).ok_or(UnknownHost)?;
        Ok(host.remote.as_ref().is_some_and(|remote| crate::service::auth::same_secret(&remote.token, token)))
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
            self.changed(flare_id);
        }
        self.pump(&mut state);
        Ok(())
    }

    /// Registers a remote host; answers its id.
    pub fn register(self: &Arc<Self>, name: String, slots: u32, datasets: BTreeSet<String>, token: String) -> String {
        let mut state = self.lock();
        state.registered += 1;
        let id = format!("host-{}", state.registered);
        tracing::info!(host_id = id, name, slots, "host registered");
        let remote = Remote {
            token,
            last_seen: Instant::now(),
            inbox: Vec::new(),
            cancel: Vec::new(),
            wake: Arc::new(Notify::new()),
        };
        state.hosts.push(Host {
            id: id.clone(),
            name,
            slots,
            reserved: HashMap::new(),
            up: true,
            datasets,
            remote: Some(remote),
        });
        self.pump(&mut state);
        id
    }

    /// A remote host's poll (and heartbeat): its new assignments and the
    /// flares whose packs it must stop, waiting up to `wait` for either.
    ///
    /// # Errors
    /// [`UnknownHost`] when the host is not registered or is down.
    pub async fn poll(&self, host_id: &str, wait: Duration) -> Result<Work, UnknownHost> {
        let wake = {
            let mut state = self.lock();
            let work = take_work(&mut state, host_id)?;
            if !work.is_empty() {
                work.assignments.iter().for_each(|a| self.changed(&a.flare_id));
                return Ok(work);
            }
            let host = state.hosts.iter().find(|h| h.id == host_id);
            host.and_then(|h| h.remote.as_ref()).map(|r| Arc::clone(&r.wake)).ok_or(UnknownHost)?
        };
        let _ = tokio::time::timeout(wait, wake.notified()).await;
        let work = take_work(&mut self.lock(), host_id)?;
        work.assignments.iter().for_each(|a| self.changed(&a.flare_id));
        Ok(work)
    }

    /// Marks down the remote hosts that stopped polling and fails their
    /// flares; forgets hosts down for [`FORGET_AFTER`] host timeouts; fails
    /// flares whose reports are overdue. Called periodically.
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
                remote.cancel.clear();
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
        // A host that went down never comes back (a daemon that polls again
        // registers anew), so the list would only grow: it shows a down
        // host for a while, then forgets it.
        let forget = timeout * FORGET_AFTER;
        state.hosts.retain(|host| host.up || host.remote.as_ref().is_none_or(|r| r.last_seen.elapsed() <= forget));
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
}

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
        return check_records(live, host_id, reports).map_err(ReportError::Workers);
    }
    let placement = live.job.record.doc.placement.iter().flatten();
    let mut expected: Vec<u32> =
        placement.filter(|p| p.host == host_id).flat_map(|p| p.first..p.first + p.count).collect();
    let mut reported: Vec<u32> = reports.iter().flat_map(|r| r.workers.iter().map(|w| w.worker_id)).collect();
    expected.sort_unstable();
    reported.sort_unstable();
    if expected == reported {
        check_records(live, host_id, reports).map_err(ReportError::Workers)
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

/// What a report records beyond its workers must fit the flare: traffic
/// only of the host's own packs, once each, one entry per pack of the
/// flare; spans and call counts within what a host records.
fn check_records(live: &Live, host_id: &str, reports: &[PackReport]) -> Result<(), String> {
    let placement = live.job.record.doc.placement.as_deref().unwrap_or_default();
    let pack_count = placement.len();
    let mut seen = BTreeSet::new();
    for traffic in reports.iter().flat_map(|r| &r.traffic) {
        let ours = placement.iter().any(|p| p.pack_id == traffic.pack_id && p.host == host_id);
        if !ours || !seen.insert(traffic.pack_id) {
            return Err(format!(
                "traffic of pack {} is not this host's to report, or is reported twice",
                traffic.pack_id
            ));
        }
        if traffic.from.len() != pack_count {
            return Err(format!(
                "traffic of pack {} has {} entries; the flare has {pack_count} packs",
                traffic.pack_id,
                traffic.from.len()
            ));
        }
    }
    for worker in reports.iter().flat_map(|r| &r.workers) {
        if worker.comm_spans.len() > MAX_COMM_SPANS {
            return Err(format!(
                "worker {} has {} comm spans; a host keeps at most {MAX_COMM_SPANS}",
                worker.worker_id,
                worker.comm_spans.len()
            ));
        }
    }
    for name in reports.iter().flat_map(|r| r.calls.keys()) {
        if Primitive::ALL.iter().all(|p| p.name() != name) {
            return Err(format!("calls of `{name}`, which is no primitive"));
        }
    }
    Ok(())
}

/// Takes a host's pending assignments, noting it was seen.
fn take_work(state: &mut State, host_id: &str) -> Result<Work, UnknownHost> {
    let host = state.hosts.iter_mut().find(|h| h.id == host_id && h.up).ok_or(UnknownHost)?;
    let remote = host.remote.as_mut().ok_or(UnknownHost)?;
    remote.last_seen = Instant::now();
    let work = Work { assignments: std::mem::take(&mut remote.inbox), cancel: std::mem::take(&mut remote.cancel) };
    for assignment in &work.assignments {
        if let Some(live) = state.live.get_mut(&assignment.flare_id) {
            live.job.record.doc.workers_started += assignment.inputs.len() as u32;
        }
    }
    Ok(work)
}
