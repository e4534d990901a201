//! `netcheck diagnose`: walks a user's existing Service link by link — from the Service object through
//! its selector, pods, ports and endpoints to the data plane and DNS — and stops at the first broken
//! link with the evidence and a next step.
//!
//! The read-only links (`read_only.rs`) need only `get`/`list` on the Service's namespace. The active
//! links (`active/`) deploy one client agent per node in a temporary namespace (deleted on every exit
//! path, like a run's) and probe from there. A link after a broken one is not checked: its status is
//! `skip`, and it says which link stopped the walk.

pub(crate) mod active;
pub(crate) mod facts;
pub(crate) mod read_only;
pub mod render;

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::runner::{Cluster, Progress, Session, SessionOptions};

/// Version of the JSON shape of a [`Checklist`]; bumped on any incompatible change.
pub const CHECKLIST_SCHEMA_VERSION: u32 = 1;

/// Step id: the Service exists; its type and ports.
pub const SERVICE: &str = "service";
/// Step id: the selector matches pods.
pub const SELECTOR: &str = "selector";
/// Step id: the selected pods are Ready.
pub const PODS_READY: &str = "pods-ready";
/// Step id: each targetPort resolves to a port the pods declare.
pub const TARGET_PORT: &str = "target-port";
/// Step id: the endpoints list the Ready pods.
pub const ENDPOINTS: &str = "endpoints";
/// Step id: each endpoint's pod IP and port answers, from every node.
pub const POD_IP: &str = "pod-ip";
/// Step id: the ClusterIP and port answer, from every node.
pub const CLUSTER_IP: &str = "cluster-ip";
/// Step id: the Service's names resolve to what the API says, from every node.
pub const DNS: &str = "dns";
/// Step id: the node port answers on every node, from every node.
pub const NODE_PORT: &str = "node-port";
/// Step id: a LoadBalancer Service's ingress is assigned and answers from every node, and every node's
/// health-check node port agrees with the API (externalTrafficPolicy Local).
pub const LOAD_BALANCER: &str = "load-balancer";

/// Every step id, in walking order.
pub const STEP_IDS: &[&str] =
    &[SERVICE, SELECTOR, PODS_READY, TARGET_PORT, ENDPOINTS, POD_IP, CLUSTER_IP, DNS, NODE_PORT, LOAD_BALANCER];

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// The link holds.
    Pass,
    /// The link is broken.
    Fail,
    /// Not checked: it does not apply, `--read-only`, or an earlier link is broken (the summary says).
    Skip,
}

impl StepStatus {
    /// `✓`, `✗` or `–`.
    pub fn mark(self) -> &'static str {
        match self {
            StepStatus::Pass => "✓",
            StepStatus::Fail => "✗",
            StepStatus::Skip => "–",
        }
    }
}

/// One link of the walk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Stable id, one of [`STEP_IDS`].
    pub id: String,
    /// Outcome.
    pub status: StepStatus,
    /// One line: what was found.
    pub summary: String,
    /// The observations behind it, one per line.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// What to do about a broken link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Step {
    /// A step with a status and summary, no evidence yet.
    pub fn new(id: &str, status: StepStatus, summary: impl Into<String>) -> Step {
        Step { id: id.to_string(), status, summary: summary.into(), evidence: Vec::new(), fix: None }
    }

    /// Adds evidence lines.
    pub fn with_evidence(mut self, lines: impl IntoIterator<Item = String>) -> Step {
        self.evidence.extend(lines);
        self
    }

    /// Sets the suggested fix.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Step {
        self.fix = Some(fix.into());
        self
    }
}

/// The outcome of a walk: every step in order and the first broken one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checklist {
    /// [`CHECKLIST_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// netcheck's version.
    pub netcheck_version: String,
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// Whether only the read-only steps ran.
    pub read_only: bool,
    /// Every step, in [`STEP_IDS`] order.
    pub steps: Vec<Step>,
    /// The id of the first failing step, or None when no link is broken.
    pub first_broken: Option<String>,
    /// Wall time in milliseconds.
    pub duration_millis: u64,
}

impl Checklist {
    /// Builds a checklist from the steps walked so far; every id of [`STEP_IDS`] not among them is
    /// added as a skip that names the link that stopped the walk (or `not_reached`).
    pub fn from_steps(namespace: &str, service: &str, read_only: bool, mut steps: Vec<Step>) -> Checklist {
        let first_broken = steps.iter().find(|s| s.status == StepStatus::Fail).map(|s| s.id.clone());
        for id in STEP_IDS {
            if steps.iter().any(|s| s.id == *id) {
                continue;
            }
            let why = match &first_broken {
                Some(broken) => format!("not checked: the {broken} link is broken"),
                None if read_only => "not checked: --read-only".to_string(),
                None => "not checked".to_string(),
            };
            steps.push(Step::new(id, StepStatus::Skip, why));
        }
        steps.sort_by_key(|s| STEP_IDS.iter().position(|id| *id == s.id));
        Checklist {
            schema_version: CHECKLIST_SCHEMA_VERSION,
            netcheck_version: env!("CARGO_PKG_VERSION").to_string(),
            namespace: namespace.to_string(),
            service: service.to_string(),
            read_only,
            steps,
            first_broken,
            duration_millis: 0,
        }
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// 0 when no link is broken, 1 when one is.
    pub fn exit_code(&self) -> i32 {
        if self.first_broken.is_some() { 1 } else { 0 }
    }
}

/// What to diagnose, and how.
#[derive(Debug, Clone)]
pub struct DiagnoseOptions {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// Only this Service port (its number or name); None: every port.
    pub port: Option<String>,
    /// Only the read-only steps: nothing is created in the cluster.
    pub read_only: bool,
    /// How to deploy the client agents of the active steps (`servers` is forced to 0).
    pub session: SessionOptions,
}

/// Walks the Service's links in order and stops at the first broken one.
///
/// # Errors
/// Only when netcheck itself cannot run: the API refuses a read, the agents cannot be deployed, an
/// unknown `port`. A broken link is a [`Checklist`] with `first_broken` set, not an error.
pub async fn diagnose(cluster: &Cluster, options: &DiagnoseOptions, progress: &dyn Progress) -> Result<Checklist> {
    let started = Instant::now();
    progress.phase("read");
    let facts = facts::gather(cluster, &options.namespace, &options.service).await?;
    let mut steps = read_only::walk(&facts, options.port.as_deref())?;
    // A missing Service is a broken `service` step, so past this point the Service exists.
    let broken = steps.iter().any(|s| s.status == StepStatus::Fail);
    if !broken && !options.read_only {
        progress.phase("deploy");
        let session_options = SessionOptions { servers: 0, ..options.session.clone() };
        let session = crate::interrupt::interruptible(Session::start(cluster, session_options, progress)).await?;
        progress.phase("probe");
        let probed = crate::interrupt::interruptible(active::walk(&session, &facts, options.port.as_deref())).await;
        progress.phase("cleanup");
        session.finish(false).await?;
        steps.extend(probed?);
    }
    let mut checklist = Checklist::from_steps(&options.namespace, &options.service, options.read_only, steps);
    checklist.duration_millis = started.elapsed().as_millis() as u64;
    Ok(checklist)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_after_the_first_broken_one_are_skipped_and_say_why() {
        let steps =
            vec![Step::new(SERVICE, StepStatus::Pass, "ok"), Step::new(SELECTOR, StepStatus::Fail, "matches nothing")];
        let c = Checklist::from_steps("shop", "web", false, steps);
        assert_eq!(c.first_broken.as_deref(), Some(SELECTOR));
        assert_eq!(c.steps.len(), STEP_IDS.len());
        let ids: Vec<&str> = c.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, STEP_IDS);
        let pods = c.step(PODS_READY).unwrap();
        assert_eq!(pods.status, StepStatus::Skip);
        assert_eq!(pods.summary, "not checked: the selector link is broken");
        assert_eq!(c.exit_code(), 1);
    }

    #[test]
    fn the_json_form_matches_its_documented_schema() {
        use crate::schema_walk::{conformance, declared_properties};
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/checklist-schema.json")).expect("schema is JSON");
        let steps = vec![
            Step::new(SERVICE, StepStatus::Pass, "ok").with_evidence(["selector app=web".to_string()]),
            Step::new(SELECTOR, StepStatus::Fail, "matches nothing").with_fix("relabel"),
        ];
        let broken = serde_json::to_value(Checklist::from_steps("shop", "web", false, steps)).unwrap();
        let walk = conformance(&schema, &broken);
        assert_eq!(walk.problems, Vec::<String>::new());
        assert_eq!(walk.seen, declared_properties(&schema), "the sample uses every declared field");
        let healthy = serde_json::to_value(Checklist::from_steps("shop", "web", true, vec![])).unwrap();
        assert_eq!(conformance(&schema, &healthy).problems, Vec::<String>::new());
        let mut wrong = healthy.clone();
        wrong["steps"][0]["status"] = "passed".into();
        wrong["firstBroken"] = 3.into();
        assert_eq!(
            conformance(&schema, &wrong).problems,
            ["/firstBroken: 3 is not of type string or null", "/steps/0/status: \"passed\" not in enum"]
        );
    }

    #[test]
    fn a_read_only_walk_without_a_broken_link_passes_and_says_what_it_left_out() {
        let c = Checklist::from_steps("shop", "web", true, vec![Step::new(SERVICE, StepStatus::Pass, "ok")]);
        assert_eq!(c.first_broken, None);
        assert_eq!(c.exit_code(), 0);
        assert_eq!(c.step(DNS).unwrap().summary, "not checked: --read-only");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["firstBroken"], serde_json::Value::Null);
        assert_eq!(json["steps"][0]["status"], "pass");
    }
}
