//! The watch protocol: autonomous agents that probe continuously and keep their own records.
//!
//! A watch (`netcheck watch`) gives each client agent a [`WatchPlan`] in its pod spec ([`WATCH_PLAN_ENV`]).
//! The agent probes every path of the plan on its own schedule, with no orders, and every
//! [`WatchPlan::flush_ms`] writes its [`WatchRecord`] into the ConfigMap [`record_name`]`(node)`. The
//! runner only reads those ConfigMaps, so it may disconnect, crash or be replaced (`watch start` /
//! `watch stop`) without losing more than the last flush interval.
//!
//! Every time is milliseconds since the Unix epoch on the agent's clock, so records of different
//! nodes share one clock as far as the nodes' clocks agree.
//!
//! Invariant: a [`PathRecord`] is folded from attempts in the order they started
//! ([`PathRecord::observe`]); an outage window starts at the first failed attempt's start and ends
//! at the start of the next attempt that succeeded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::PROTOCOL_VERSION;

/// Environment variable of a watch client agent's pod holding its [`WatchPlan`] as JSON.
pub const WATCH_PLAN_ENV: &str = "NETCHECK_WATCH_PLAN";
/// Label on every watch record ConfigMap (value: the node).
pub const WATCH_RECORD_LABEL: &str = "netcheck.dev/watch-record";
/// ConfigMap data key holding the [`WatchRecord`] JSON.
pub const WATCH_RECORD_KEY: &str = "record";
/// Upper bounds (inclusive, ms) of the latency histogram's buckets; one more bucket counts the rest.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000];
/// The most outage windows, and cuts, one path keeps; further ones are merged into the last, so a
/// record stays far below a ConfigMap's 1 MiB however long the watch.
pub const MAX_WINDOWS_PER_PATH: usize = 200;

/// The name of the ConfigMap holding `node`'s record.
pub fn record_name(node: &str) -> String {
    format!("watch-record-{node}")
}

/// What a watch client agent probes, and how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchPlan {
    /// Must equal [`PROTOCOL_VERSION`].
    pub version: u32,
    /// One attempt per path every this many milliseconds.
    pub interval_ms: u64,
    /// Per-attempt timeout.
    pub timeout_ms: u64,
    /// The record is written to the API this often.
    pub flush_ms: u64,
    /// The paths, each probed on its own schedule.
    pub paths: Vec<WatchPath>,
}

impl WatchPlan {
    /// Parses a plan, refusing other protocol versions and a plan that could not run.
    pub fn parse(text: &str) -> Result<WatchPlan, String> {
        let plan: WatchPlan = serde_json::from_str(text).map_err(|e| format!("unreadable watch plan: {e}"))?;
        crate::check_version(plan.version)?;
        if plan.interval_ms == 0 || plan.timeout_ms == 0 || plan.flush_ms == 0 {
            return Err("a watch plan needs a non-zero interval, timeout and flush period".into());
        }
        Ok(plan)
    }
}

/// One path a watch agent follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchPath {
    /// Stable id within the plan, e.g. `clusterip` or `nodeport/node-b`; the record's key.
    pub id: String,
    /// How the path is probed.
    pub probe: WatchProbe,
}

/// How a watched path is probed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum WatchProbe {
    /// An HTTP GET on a new connection per attempt (`ip:port`): every attempt is balanced anew.
    Http {
        /// `ip:port`.
        target: String,
    },
    /// An HTTP GET per attempt over one kept-alive connection (`ip:port`). A connection that fails
    /// under a request is a [`Cut`]; one the server closes after an answer (it is shutting down) is
    /// not, and the next attempt opens a new one.
    LongLived {
        /// `ip:port`.
        target: String,
    },
    /// A DNS query for an A record, sent to `server`, whose answer must contain `expect`.
    Dns {
        /// `ip:port` of the DNS server (the cluster DNS Service).
        server: String,
        /// Fully qualified name.
        name: String,
        /// An address the answer must contain.
        expect: String,
    },
    /// An HTTP GET to the pod IP of a ready endpoint of `service` (in the agent's namespace), in turn:
    /// the pod network without the Service proxy. Endpoints that are not ready are not probed.
    PodIps {
        /// The Service whose endpoints are probed.
        service: String,
        /// The port on the pods.
        port: u16,
    },
}

/// A span of time, in epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// Start.
    pub start_ms: u64,
    /// End (for a window still open: the end of the last failed attempt so far).
    pub end_ms: u64,
    /// Failed attempts inside it.
    pub failures: u64,
    /// The first failure's error, as the agent classified it.
    pub detail: String,
}

impl Window {
    /// Length in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.end_ms.saturating_sub(self.start_ms)
    }
}

/// A long-lived connection that failed under a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cut {
    /// When the failing request started.
    pub at_ms: u64,
    /// The server agent the connection had reached (pod name), when known.
    pub backend: String,
    /// How it failed.
    pub detail: String,
}

/// One attempt, as the agent hands it to [`PathRecord::observe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Start, epoch ms.
    pub start_ms: u64,
    /// Time to the answer or the failure.
    pub elapsed_ms: u64,
    /// None: answered as expected; Some: the failure's description.
    pub error: Option<String>,
}

/// What one agent saw on one path since the watch began.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathRecord {
    /// Attempts.
    pub requests: u64,
    /// Failed attempts.
    pub failures: u64,
    /// Answered attempts per latency bucket ([`LATENCY_BUCKETS_MS`], then one for the rest).
    pub latency_buckets: Vec<u64>,
    /// The sum of the answered attempts' latencies, in ms (a histogram's sum).
    #[serde(default)]
    pub latency_sum_ms: u64,
    /// Closed outage windows, oldest first.
    pub windows: Vec<Window>,
    /// The outage in progress, if the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<Window>,
    /// Cut long-lived connections, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cuts: Vec<Cut>,
    /// Start of the last attempt that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ok_ms: Option<u64>,
}

impl PathRecord {
    /// Folds in one attempt; attempts must come in the order they started.
    pub fn observe(&mut self, o: &Observation) {
        self.requests += 1;
        match &o.error {
            None => {
                if self.latency_buckets.len() != LATENCY_BUCKETS_MS.len() + 1 {
                    self.latency_buckets = vec![0; LATENCY_BUCKETS_MS.len() + 1];
                }
                let bucket =
                    LATENCY_BUCKETS_MS.iter().position(|&b| o.elapsed_ms <= b).unwrap_or(LATENCY_BUCKETS_MS.len());
                self.latency_buckets[bucket] += 1;
                self.latency_sum_ms += o.elapsed_ms;
                self.last_ok_ms = Some(o.start_ms);
                if let Some(mut open) = self.open.take() {
                    // The path answered again by the time this attempt started; a failure's own
                    // timeout running past that is not outage.
                    open.end_ms = o.start_ms.max(open.start_ms);
                    push_bounded(&mut self.windows, open, merge_windows);
                }
            }
            Some(detail) => {
                self.failures += 1;
                let end = o.start_ms + o.elapsed_ms;
                match &mut self.open {
                    Some(open) => {
                        open.failures += 1;
                        open.end_ms = open.end_ms.max(end);
                    }
                    None => {
                        self.open =
                            Some(Window { start_ms: o.start_ms, end_ms: end, failures: 1, detail: cut_detail(detail) })
                    }
                }
            }
        }
    }

    /// Records a cut long-lived connection (the failed request itself goes through [`observe`](Self::observe)).
    pub fn cut(&mut self, cut: Cut) {
        let cut = Cut { detail: cut_detail(&cut.detail), ..cut };
        push_bounded(&mut self.cuts, cut, |_, _| {});
    }
}

/// One agent's record of a watch: what it saw on every path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchRecord {
    /// Must equal [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The node the agent runs on.
    pub node: String,
    /// The agent pod (the latest, after a restart).
    pub pod: String,
    /// When the first agent on this node started probing.
    pub started_ms: u64,
    /// When this record was written.
    pub updated_ms: u64,
    /// Spans nobody observed: from an agent's last write to its successor's first probe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Window>,
    /// Per path id.
    pub paths: BTreeMap<String, PathRecord>,
}

impl WatchRecord {
    /// Parses a record, refusing other protocol versions.
    pub fn parse(text: &str) -> Result<WatchRecord, String> {
        let record: WatchRecord = serde_json::from_str(text).map_err(|e| format!("unreadable watch record: {e}"))?;
        crate::check_version(record.version)?;
        Ok(record)
    }

    /// A new, empty record.
    pub fn new(node: &str, pod: &str, now_ms: u64) -> WatchRecord {
        WatchRecord {
            version: PROTOCOL_VERSION,
            node: node.into(),
            pod: pod.into(),
            started_ms: now_ms,
            updated_ms: now_ms,
            gaps: Vec::new(),
            paths: BTreeMap::new(),
        }
    }

    /// Continues a predecessor's record from `now_ms` (a restarted agent): the time since its last
    /// write becomes a gap, and an outage it left open is closed there (what followed is unknown).
    pub fn resume(mut self, pod: &str, now_ms: u64) -> WatchRecord {
        if now_ms > self.updated_ms {
            let gap = Window {
                start_ms: self.updated_ms,
                end_ms: now_ms,
                failures: 0,
                detail: format!("no agent recorded on this node (pod {} stopped writing)", self.pod),
            };
            push_bounded(&mut self.gaps, gap, merge_windows);
        }
        for path in self.paths.values_mut() {
            if let Some(open) = path.open.take() {
                push_bounded(&mut path.windows, open, merge_windows);
            }
        }
        self.pod = pod.into();
        self.updated_ms = now_ms;
        self
    }
}

/// Appends `item`, or when the list is full merges it into the last entry.
fn push_bounded<T>(list: &mut Vec<T>, item: T, merge: impl Fn(&mut T, T)) {
    let full = list.len() >= MAX_WINDOWS_PER_PATH;
    match list.last_mut() {
        Some(last) if full => merge(last, item),
        _ => list.push(item),
    }
}

fn merge_windows(last: &mut Window, next: Window) {
    last.end_ms = last.end_ms.max(next.end_ms);
    last.failures += next.failures;
}

fn cut_detail(detail: &str) -> String {
    detail.chars().take(crate::MAX_DETAIL_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(start_ms: u64) -> Observation {
        Observation { start_ms, elapsed_ms: 3, error: None }
    }

    fn failed(start_ms: u64, elapsed_ms: u64) -> Observation {
        Observation { start_ms, elapsed_ms, error: Some("timeout".into()) }
    }

    #[test]
    fn an_outage_runs_from_the_first_failure_to_the_next_success() {
        let mut path = PathRecord::default();
        for o in [ok(0), failed(200, 1000), failed(400, 1000), ok(600)] {
            path.observe(&o);
        }
        assert_eq!((path.requests, path.failures), (4, 2));
        assert_eq!(path.windows.len(), 1);
        let w = &path.windows[0];
        // Opened at 200; closed when the success started at 600, though the last timeout ran to 1400.
        assert_eq!((w.start_ms, w.end_ms, w.failures, w.detail.as_str()), (200, 600, 2, "timeout"));
        assert!(path.open.is_none());
        assert_eq!(path.latency_buckets.iter().sum::<u64>(), 2);
        assert_eq!(path.latency_buckets[2], 2, "3 ms falls in the ≤ 5 ms bucket");
        assert_eq!(path.latency_sum_ms, 6);
    }

    #[test]
    fn a_failure_at_the_end_stays_open() {
        let mut path = PathRecord::default();
        path.observe(&ok(0));
        path.observe(&failed(200, 50));
        assert!(path.windows.is_empty());
        assert_eq!(path.open.as_ref().map(|w| (w.start_ms, w.end_ms)), Some((200, 250)));
    }

    #[test]
    fn windows_beyond_the_cap_merge_into_the_last() {
        let mut path = PathRecord::default();
        for i in 0..(MAX_WINDOWS_PER_PATH as u64 + 10) {
            path.observe(&failed(i * 100, 10));
            path.observe(&ok(i * 100 + 50));
        }
        assert_eq!(path.windows.len(), MAX_WINDOWS_PER_PATH);
        let last = path.windows.last().unwrap();
        assert_eq!(last.failures, 11);
        assert_eq!(last.end_ms, (MAX_WINDOWS_PER_PATH as u64 + 9) * 100 + 50);
    }

    #[test]
    fn a_resumed_record_has_a_gap_and_closes_open_windows() {
        let mut record = WatchRecord::new("node-b", "c-1", 1_000);
        let mut path = PathRecord::default();
        path.observe(&failed(1_500, 100));
        record.paths.insert("clusterip".into(), path);
        record.updated_ms = 2_000;
        let resumed = record.resume("c-2", 5_000);
        assert_eq!(resumed.pod, "c-2");
        assert_eq!((resumed.gaps[0].start_ms, resumed.gaps[0].end_ms), (2_000, 5_000));
        assert!(resumed.gaps[0].detail.contains("c-1"));
        let path = &resumed.paths["clusterip"];
        assert!(path.open.is_none());
        assert_eq!((path.windows[0].start_ms, path.windows[0].end_ms), (1_500, 1_600));
    }

    #[test]
    fn plans_of_another_version_or_zero_periods_are_refused() {
        let plan = WatchPlan {
            version: PROTOCOL_VERSION,
            interval_ms: 200,
            timeout_ms: 1000,
            flush_ms: 2000,
            paths: vec![WatchPath {
                id: "clusterip".into(),
                probe: WatchProbe::Http { target: "10.96.0.9:80".into() },
            }],
        };
        let text = serde_json::to_string(&plan).unwrap();
        assert_eq!(WatchPlan::parse(&text).unwrap(), plan);
        let old = text.replace(&format!("\"version\":{PROTOCOL_VERSION}"), "\"version\":1");
        assert!(WatchPlan::parse(&old).unwrap_err().contains("protocol version 1"));
        let zero = text.replace("\"intervalMs\":200", "\"intervalMs\":0");
        assert!(WatchPlan::parse(&zero).unwrap_err().contains("non-zero"));
    }
}
