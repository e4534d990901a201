//! The watch role: with a [`WatchPlan`] in its environment, the agent probes every path of the plan
//! on its own schedule, with no orders, and keeps its [`WatchRecord`] in the ConfigMap
//! [`record_name`]`(node)`, so the runner may come and go without losing what was seen.
//!
//! A restarted agent continues its predecessor's record (the time nobody watched becomes a gap). The
//! record is written every `flush_ms` and once more when the agent stops; a failed write is retried
//! at the next flush and never stops the probing.

mod dns;
mod http;
mod long_lived;
mod pod_ips;
mod schedule;
mod sequence;
#[cfg(test)]
mod test_server;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use netcheck_protocol::Outcome;
use netcheck_protocol::watch::{WATCH_RECORD_KEY, WATCH_RECORD_LABEL, WatchPlan, WatchProbe, WatchRecord, record_name};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use sequence::Sequencer;

/// The field manager of the record's server-side apply.
const FIELD_MANAGER: &str = "netcheck-agent";
/// How long one write of the record may take: a hung API call must not stall the flushes.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The running watch role.
pub(super) struct Watch {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Who the agent is and where its record lives.
pub(super) struct Place {
    /// The namespace of the agent, its record and the Services it watches.
    pub(super) namespace: String,
    /// The node, which names the record.
    pub(super) node: String,
    /// The agent pod.
    pub(super) pod: String,
}

impl Watch {
    /// Starts following `plan` in the background.
    pub(super) fn start(client: kube::Client, place: Place, plan: WatchPlan) -> Watch {
        let (stop, stopped) = oneshot::channel();
        Watch { stop, task: tokio::spawn(run(client, place, plan, stopped)) }
    }

    /// Stops probing and writes the record one last time, waiting at most `within`.
    pub(super) async fn stop(self, within: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(within, self.task).await.is_err() {
            tracing::warn!(within_ms = within.as_millis() as u64, "the last write of the watch record did not finish");
        }
    }
}

/// The timing every path shares.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    /// Between attempts of a path.
    pub(super) interval: Duration,
    /// Per attempt.
    pub(super) timeout: Duration,
}

async fn run(client: kube::Client, place: Place, plan: WatchPlan, mut stopped: oneshot::Receiver<()>) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &place.namespace);
    let name = record_name(&place.node);
    let record = tokio::select! {
        record = load(&api, &name, &place) => record,
        _ = &mut stopped => return,
    };
    tracing::info!(record = %name, paths = plan.paths.len(), "watch started");
    let record = Arc::new(Mutex::new(record));
    let timing =
        Timing { interval: Duration::from_millis(plan.interval_ms), timeout: Duration::from_millis(plan.timeout_ms) };
    let paths: Vec<JoinHandle<()>> = plan
        .paths
        .iter()
        .map(|path| {
            let sink = Sequencer::new(&path.id, record.clone());
            tokio::spawn(follow(path.probe.clone(), timing, sink, client.clone(), place.namespace.clone()))
        })
        .collect();
    let flusher = Flusher { api, name, node: place.node.clone(), record };
    let mut ticks = tokio::time::interval(Duration::from_millis(plan.flush_ms));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                // A write that hangs must not hold back the last one at the stop.
                tokio::select! {
                    _ = flusher.flush() => {}
                    _ = &mut stopped => break,
                }
            }
            _ = &mut stopped => break,
        }
    }
    for path in paths {
        path.abort();
    }
    flusher.flush().await;
    tracing::info!("watch stopped; record written");
}

/// Follows one path forever, by its kind.
async fn follow(probe: WatchProbe, timing: Timing, sink: Sequencer, client: kube::Client, namespace: String) {
    match probe {
        WatchProbe::Http { target } => http::follow(target, timing, sink).await,
        WatchProbe::LongLived { target } => long_lived::follow(target, timing, sink).await,
        WatchProbe::Dns { server, name, expect } => dns::follow(server, name, expect, timing, sink).await,
        WatchProbe::PodIps { service, port } => pod_ips::follow(client, namespace, service, port, timing, sink).await,
    }
}

/// The record to continue: the predecessor's on this node if there is a readable one, else a new one.
/// Retries while the API server does not answer: starting afresh then would overwrite a record
/// that may well exist.
async fn load(api: &Api<ConfigMap>, name: &str, place: &Place) -> WatchRecord {
    let mut pause = Duration::from_millis(200);
    let existing = loop {
        match api.get_opt(name).await {
            Ok(found) => break found,
            Err(e) => {
                tracing::warn!(record = %name, error = %e, "cannot read the watch record; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    };
    let now = now_ms();
    let text = existing.and_then(|cm| cm.data).and_then(|mut data| data.remove(WATCH_RECORD_KEY));
    match text.map(|t| WatchRecord::parse(&t)) {
        Some(Ok(record)) => {
            tracing::info!(record = %name, previous_pod = %record.pod, "continuing the record of this node");
            record.resume(&place.pod, now)
        }
        Some(Err(e)) => {
            tracing::warn!(record = %name, error = %e, "replacing an unreadable watch record");
            WatchRecord::new(&place.node, &place.pod, now)
        }
        None => WatchRecord::new(&place.node, &place.pod, now),
    }
}

/// Writes the shared record to its ConfigMap.
struct Flusher {
    api: Api<ConfigMap>,
    name: String,
    node: String,
    record: Arc<Mutex<WatchRecord>>,
}

impl Flusher {
    /// One write, by server-side apply; a failure is logged and left to the next flush.
    async fn flush(&self) {
        let text = {
            let Ok(mut record) = self.record.lock() else { return };
            record.updated_ms = now_ms();
            serde_json::to_string(&*record).unwrap_or_default()
        };
        let config_map = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": self.name, "labels": { WATCH_RECORD_LABEL: self.node } },
            "data": { WATCH_RECORD_KEY: text },
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let patch = Patch::Apply(&config_map);
        let write = self.api.patch(&self.name, &params, &patch);
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(record = %self.name, error = %e, "writing the watch record failed; next flush retries")
            }
            Err(_) => tracing::warn!(record = %self.name, "writing the watch record timed out; next flush retries"),
        }
    }
}

/// Now, in milliseconds since the Unix epoch: the record's clock.
pub(super) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A failed attempt's outcome in a few words, as the record keeps it.
pub(super) fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Timeout => "timeout".into(),
        Outcome::Refused => "refused".into(),
        Outcome::Reset => "reset".into(),
        Outcome::NxDomain => "NXDOMAIN".into(),
        Outcome::NoRecords => "no records".into(),
        Outcome::Unresolved { detail } => format!("unresolved: {detail}"),
        Outcome::Unexpected { detail } | Outcome::Error { detail } => detail.clone(),
        Outcome::Http { status, .. } => format!("HTTP {status}"),
        Outcome::Answered { .. } | Outcome::Connected | Outcome::Records { .. } => "answered".into(),
    }
}
