//! What each node saw of each target: the TCP connects, their attempts folded, and the targets and nodes that failed.

use std::collections::BTreeMap;

use super::{ATTEMPTS, TIMEOUT};
use crate::diagnose::{Step, StepStatus};
use crate::protocol::{Action, Attempt, Outcome, TcpProbe};
use crate::runner::Session;
use crate::{Error, Result};

/// Something to connect to, and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `ip:port`.
    pub address: String,
    /// How the report names it, e.g. `10.244.1.5:8080 (pod web-1 on node-a)`.
    pub label: String,
    /// The node it lives on (a pod's node, a node port's node), when known.
    pub node: Option<String>,
}

/// What the attempts from one source node to one target ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Every attempt connected.
    Connected,
    /// At least one was refused (and none timed out).
    Refused,
    /// At least one timed out.
    Timeout,
    /// Something else, e.g. `unresolved: …`.
    Other(String),
}

/// Per source node: per target address, what was seen; or why the node gave no result.
pub type Observations = BTreeMap<String, std::result::Result<BTreeMap<String, Seen>, String>>;

pub(super) async fn connect_from_every_node(session: &Session, targets: &[Target]) -> Result<Observations> {
    let probe = TcpProbe {
        targets: targets.iter().map(|t| t.address.clone()).collect(),
        attempts: ATTEMPTS,
        timeout_ms: TIMEOUT.as_millis() as u64,
    };
    let results = session.order_every_client(|_| Action::Tcp(probe.clone())).await;
    observations(results.into_iter().map(|(node, r)| (node, crate::checks::whole_attempts(r))))
}

/// Folds attempts into what each node saw of each target.
fn observations(
    results: impl IntoIterator<Item = (String, std::result::Result<Vec<Attempt>, String>)>,
) -> Result<Observations> {
    let mut out = Observations::new();
    for (node, result) in results {
        let folded = result.map(|attempts| {
            let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
            for a in attempts {
                let now = match &a.outcome {
                    Outcome::Connected => Seen::Connected,
                    Outcome::Refused => Seen::Refused,
                    Outcome::Timeout => Seen::Timeout,
                    other => Seen::Other(crate::probe::outcome_text(other)),
                };
                let entry = seen.entry(a.target.clone()).or_insert(Seen::Connected);
                *entry = worse(entry.clone(), now);
            }
            seen
        });
        out.insert(node, folded);
    }
    if !out.is_empty() && out.values().all(|r| r.is_err()) {
        let why: Vec<String> = out.iter().filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}"))).collect();
        return Err(Error::Protocol(format!("no client agent reported: {}", why.join("; "))));
    }
    Ok(out)
}

fn worse(a: Seen, b: Seen) -> Seen {
    fn rank(s: &Seen) -> u8 {
        match s {
            Seen::Connected => 0,
            Seen::Refused => 1,
            Seen::Other(_) => 2,
            Seen::Timeout => 3,
        }
    }
    if rank(&b) > rank(&a) { b } else { a }
}

fn seen_text(s: &Seen) -> String {
    match s {
        Seen::Connected => "connected".into(),
        Seen::Refused => "refused".into(),
        Seen::Timeout => format!("no answer within {} s", TIMEOUT.as_secs()),
        Seen::Other(t) => t.clone(),
    }
}

/// One target that did not connect from every node.
pub(super) struct Failing<'a> {
    pub(super) target: &'a Target,
    /// (source node, what it saw) for the sources that did not connect.
    pub(super) bad: Vec<(String, Seen)>,
    /// Sources that connected.
    pub(super) good: Vec<String>,
}

impl Failing<'_> {
    pub(super) fn fails_from_every_source(&self) -> bool {
        self.good.is_empty()
    }

    pub(super) fn all(&self, seen: &Seen) -> bool {
        self.bad.iter().all(|(_, s)| s == seen)
    }

    pub(super) fn evidence(&self) -> String {
        let bad: Vec<String> = self.bad.iter().map(|(n, s)| format!("{n}: {}", seen_text(s))).collect();
        let good =
            if self.good.is_empty() { String::new() } else { format!("; connected from {}", self.good.join(", ")) };
        format!("{}: {}{good}", self.target.label, bad.join(", "))
    }
}

pub(super) fn failing<'a>(targets: &'a [Target], observed: &Observations) -> (Vec<Failing<'a>>, Vec<String>) {
    let mut silent = Vec::new();
    for (node, r) in observed {
        if let Err(e) = r {
            silent.push(format!("no result from the client on {node}: {e}"));
        }
    }
    let failing = targets
        .iter()
        .filter_map(|t| {
            let mut bad = Vec::new();
            let mut good = Vec::new();
            for (node, r) in observed {
                let Ok(seen) = r else { continue };
                match seen.get(&t.address).cloned().unwrap_or(Seen::Other("not probed".into())) {
                    Seen::Connected => good.push(node.clone()),
                    s => bad.push((node.clone(), s)),
                }
            }
            (!bad.is_empty()).then_some(Failing { target: t, bad, good })
        })
        .collect();
    (failing, silent)
}

/// A step whose probes passed from the nodes that reported while some reported nothing: not a pass,
/// since "from every node" was not observed; the silent nodes are named in the evidence.
pub(super) fn silent_nodes(id: &'static str, what: &str, silent: usize, evidence: Vec<String>) -> Step {
    Step::new(
        id,
        StepStatus::Fail,
        format!("{what} from the nodes that reported, but {silent} node(s) reported nothing"),
    )
    .with_evidence(evidence)
    .with_fix(
        "a client agent that sends no result: check that node's path to the API server and the agent's logs \
         (kubectl logs -n <run namespace> netcheck-client-<node>)",
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::diagnose::active::{judge_cluster_ip, judge_pod_ips};

    pub(in crate::diagnose::active) fn target(address: &str, node: &str) -> Target {
        Target { address: address.into(), label: format!("{address} (pod p on {node})"), node: Some(node.into()) }
    }

    pub(in crate::diagnose::active) fn observed(rows: &[(&str, &[(&str, Seen)])]) -> Observations {
        rows.iter()
            .map(|(node, seen)| (node.to_string(), Ok(seen.iter().map(|(a, s)| (a.to_string(), s.clone())).collect())))
            .collect()
    }

    #[test]
    fn a_node_that_reported_nothing_is_named_not_passed_over() {
        let t = [Target { address: "10.96.0.20:80".into(), label: "10.96.0.20:80".into(), node: None }];
        let mut o = observed(&[("node-a", &[("10.96.0.20:80", Seen::Connected)])]);
        o.insert("node-b".into(), Err("timed out after 17 s".into()));
        let step = judge_cluster_ip(&t, &o);
        assert_eq!(step.status, StepStatus::Fail);
        assert_eq!(step.summary, "the ClusterIP answers from the nodes that reported, but 1 node(s) reported nothing");
        assert_eq!(step.evidence, ["no result from the client on node-b: timed out after 17 s"]);
        let pods = [target("10.244.1.5:8080", "node-a")];
        let mut o = observed(&[("node-a", &[("10.244.1.5:8080", Seen::Connected)])]);
        o.insert("node-b".into(), Err("timed out".into()));
        assert_eq!(judge_pod_ips(&pods, &o).status, StepStatus::Fail);
    }

    #[test]
    fn attempts_fold_to_the_worst_outcome() {
        let a = |outcome| Attempt { target: "t:1".into(), start_ms: 0, elapsed_us: 1, retries: 0, outcome };
        let o = observations([("n".to_string(), Ok(vec![a(Outcome::Connected), a(Outcome::Refused)]))]).unwrap();
        assert_eq!(o["n"].as_ref().unwrap()["t:1"], Seen::Refused);
        let err = observations([("n".to_string(), Err("did not report".to_string()))]).unwrap_err();
        assert!(err.to_string().contains("no client agent reported"), "{err}");
    }
}
