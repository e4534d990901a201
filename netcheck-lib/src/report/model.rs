//! The report model: what a run found, independent of how it is rendered.
//!
//! Invariant: every result names its check, its status and its subject, so that a report always says
//! *which* node, address or name a failure is about. The JSON rendering is this model serialised, and
//! its shape is versioned by [`SCHEMA_VERSION`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Version of the JSON report schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Outcome of one check for one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The cluster behaved as expected.
    Pass,
    /// The cluster did not behave as expected.
    Fail,
    /// The check did not apply (a requirement was not met); the message says why.
    Skip,
    /// netcheck itself could not run the check; not the cluster's fault.
    Error,
}

impl Status {
    /// Lower-case name as used in JSON and JUnit.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Error => "error",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a result is about. Unset fields do not apply to the check.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// The node whose client agent sent the probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_node: Option<String>,
    /// The node the probes were aimed at (NodePort, pod on a node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_node: Option<String>,
    /// The address probed (`ip:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// A name: a DNS name, a backend pod, a Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Subject {
    /// A subject about one source node.
    pub fn from_node(node: impl Into<String>) -> Self {
        Subject { source_node: Some(node.into()), ..Default::default() }
    }

    /// Adds the target node.
    pub fn to_node(mut self, node: impl Into<String>) -> Self {
        self.target_node = Some(node.into());
        self
    }

    /// Adds the probed address.
    pub fn at(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// Adds a name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        match (&self.source_node, &self.target_node) {
            (Some(s), Some(t)) => parts.push(format!("{s} → {t}")),
            (Some(s), None) => parts.push(format!("from {s}")),
            (None, Some(t)) => parts.push(format!("to {t}")),
            (None, None) => {}
        }
        if let Some(a) = &self.address {
            parts.push(a.clone());
        }
        if let Some(n) = &self.name {
            parts.push(n.clone());
        }
        if parts.is_empty() { f.write_str("cluster") } else { f.write_str(&parts.join(" ")) }
    }
}

/// Where the evidence says a fault most likely is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    /// The component most likely at fault, e.g. "service proxy (kube-proxy) on node-b".
    pub likely_cause: String,
    /// The observations that point there.
    pub evidence: Vec<String>,
    /// What to look at or do next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step: Option<String>,
}

/// One check × subject outcome, with its measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// Stable check id, e.g. `clusterip/reachable`.
    pub check: String,
    /// Outcome.
    pub status: Status,
    /// What the result is about.
    pub subject: Subject,
    /// One sentence: what was seen (for a skip: why it did not apply).
    pub message: String,
    /// What the check expected, when it compares values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What the cluster showed, when it compares values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// Named figures: latencies in ms, counts, p-values, convergence times.
    #[serde(default)]
    pub measurements: BTreeMap<String, serde_json::Value>,
    /// The likely location of the fault, for failures where the evidence allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
}

impl CheckResult {
    /// A result with a status, subject and message and nothing else yet.
    pub fn new(check: &str, status: Status, subject: Subject, message: impl Into<String>) -> Self {
        CheckResult {
            check: check.to_string(),
            status,
            subject,
            message: message.into(),
            expected: None,
            observed: None,
            measurements: BTreeMap::new(),
            diagnosis: None,
        }
    }

    /// Records a measurement.
    pub fn measure(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.measurements.insert(name.to_string(), value.into());
        self
    }

    /// Records the expected and observed values of a comparison.
    pub fn compare(mut self, expected: impl Into<String>, observed: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self.observed = Some(observed.into());
        self
    }
}

/// How long one check took: the wall time of the work that produced its results (checks that share a
/// probe round share its time; checks run concurrently, so the times overlap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckTime {
    /// The check id.
    pub check: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// How long one phase of the run took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    /// `connect`, `deploy`, `ready`, `settle`, `probe`, `cleanup`.
    pub name: String,
    /// Wall time in milliseconds.
    pub millis: u64,
}

/// The cluster the run was against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// API server URL.
    pub server: String,
    /// API server version, e.g. `v1.36.3`.
    pub version: String,
    /// Node names the run saw.
    pub nodes: Vec<String>,
}

/// Counts of results per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Passed results.
    pub pass: usize,
    /// Failed results.
    pub fail: usize,
    /// Skipped results.
    pub skip: usize,
    /// Results netcheck could not produce.
    pub error: usize,
}

/// What a timeline entry is (`netcheck watch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WindowKind {
    /// Attempts failed from `start` until one succeeded at `end`.
    Outage,
    /// Nobody observed the path (an agent restarted, or stopped writing its record).
    Unobserved,
    /// A long-lived connection was cut (start = end).
    Cut,
}

/// One entry of a watch's timeline: an outage, a span nobody observed, or a cut connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// What happened.
    pub kind: WindowKind,
    /// The source node (whose agent saw it).
    pub node: String,
    /// The path id (`clusterip`, `nodeport/node-b`, …); for an unobserved span, `*`.
    pub path: String,
    /// Start, RFC 3339 and epoch ms.
    pub start: String,
    /// Epoch ms.
    pub start_ms: u64,
    /// Epoch ms.
    pub end_ms: u64,
    /// Length.
    pub duration_ms: u64,
    /// Failed attempts inside.
    pub failures: u64,
    /// The first error.
    pub detail: String,
    /// What the cluster reported about nodes around then (`node-b NodeNotSchedulable +0.4 s`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub during: Vec<String>,
}

/// Everything a run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`SCHEMA_VERSION`] of this document.
    pub schema_version: u32,
    /// netcheck's version.
    pub netcheck_version: String,
    /// The run id (also the namespace suffix).
    pub run_id: String,
    /// Scenario name.
    pub scenario: String,
    /// Cluster facts.
    pub cluster: ClusterInfo,
    /// Start time, RFC 3339.
    pub started_at: String,
    /// Total wall time in milliseconds.
    pub duration_millis: u64,
    /// Wall time per phase.
    pub phases: Vec<Phase>,
    /// Wall time per check, in scenario order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check_times: Vec<CheckTime>,
    /// Every check × subject outcome.
    pub results: Vec<CheckResult>,
    /// Counts per status.
    pub summary: Summary,
    /// What got worse against a baseline report (`--baseline`); empty without one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regressions: Vec<super::baseline::Regression>,
    /// `netcheck watch`: every outage, unobserved span and cut connection, oldest first, on the
    /// agents' clock; empty for other runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineEntry>,
}

impl Report {
    /// A report of `results`, started now, with no phases and a computed summary.
    ///
    /// ```should_panic
    /// use netcheck::report::{ClusterInfo, CheckResult, Report, Status, Subject};
    /// let failed = CheckResult::new("probe/http", Status::Fail, Subject::from_node("node-b"), "0 of 3 attempts got HTTP 200");
    /// let report = Report::from_results("abc123", "probe", ClusterInfo::default(), vec![failed]);
    /// assert_eq!((report.summary.fail, report.exit_code()), (1, 1));
    /// report.assert_passed(); // panics with the human report
    /// ```
    pub fn from_results(run_id: &str, scenario: &str, cluster: ClusterInfo, results: Vec<CheckResult>) -> Report {
        let mut report = Report {
            schema_version: SCHEMA_VERSION,
            netcheck_version: env!("CARGO_PKG_VERSION").to_string(),
            run_id: run_id.to_string(),
            scenario: scenario.to_string(),
            cluster,
            started_at: jiff::Timestamp::now().to_string(),
            duration_millis: 0,
            phases: Vec::new(),
            check_times: Vec::new(),
            results,
            summary: Summary::default(),
            regressions: Vec::new(),
            timeline: Vec::new(),
        };
        report.summarize();
        report
    }

    /// Recomputes [`Report::summary`] from the results.
    pub fn summarize(&mut self) {
        let mut s = Summary::default();
        for r in &self.results {
            match r.status {
                Status::Pass => s.pass += 1,
                Status::Fail => s.fail += 1,
                Status::Skip => s.skip += 1,
                Status::Error => s.error += 1,
            }
        }
        self.summary = s;
    }

    /// True when no result failed or errored.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| matches!(r.status, Status::Pass | Status::Skip))
    }

    /// Process exit code: 0 all passed or skipped, 1 a check failed or regressed against the baseline,
    /// 2 netcheck could not run a check.
    pub fn exit_code(&self) -> i32 {
        if self.results.iter().any(|r| r.status == Status::Fail) || !self.regressions.is_empty() {
            1
        } else if self.results.iter().any(|r| r.status == Status::Error) {
            2
        } else {
            0
        }
    }

    /// Panics with the human-readable report when something failed; for use in tests.
    pub fn assert_passed(&self) {
        if !self.passed() {
            panic!("netcheck found problems:\n{}", super::human::render(self, false));
        }
    }
}
