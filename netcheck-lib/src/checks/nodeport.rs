//! `nodeport/every-node` and `nodeport/local-policy`: the node port of a NodePort Service on every
//! node address, from every client agent and (when it can reach the nodes) from the runner.
//!
//! All cells of the matrix are probed at once: one order per client carries every target address, and
//! the runner's probes run concurrently, so wall time does not grow with the number of nodes.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::future::join_all;

use serde::Deserialize;

use super::{runner_probe, selected};
use crate::catalog::{CheckSpec, TIMEOUT_MS, int, millis, parses_into};
use crate::protocol::{Action, Attempt, HttpProbe, OrderResult};
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::channel::OrderFailure;
use crate::runner::manifests::{LOCAL_SERVICE, NODEPORT_SERVICE};
use crate::runner::{FromRunner, NodeInfo, Session, services};
use crate::scenario::Scenario;

const EVERY_NODE: &str = "nodeport/every-node";
const LOCAL_POLICY: &str = "nodeport/local-policy";

/// The checks this round answers.
pub(crate) static SPECS: &[CheckSpec] = &[
    CheckSpec {
        id: EVERY_NODE,
        title: "NodePort answers on every node address",
        description: "From every client (and from the runner when it can reach the nodes), every node's \
                      InternalIP and ExternalIP on the node port answers: one result per source × target × address.",
        params: &[
            int("requests", 1, 1_000, 3, "Requests per source, target node and address."),
            TIMEOUT_MS,
            int("targetNodes", 0, 100_000, 0, "Probe only the first N Ready nodes (by name) as targets; 0: all."),
        ],
        parse_params: parses_into::<EveryNodeParams>,
    },
    CheckSpec {
        id: LOCAL_POLICY,
        title: "externalTrafficPolicy Local keeps the source and the node",
        description: "From the runner, a NodePort with externalTrafficPolicy Local answers on nodes with a \
                      ready backend, the backend sees the runner's own address, and nodes without one do not forward.",
        params: &[
            int("requests", 1, 1_000, 5, "Requests per node."),
            millis("timeoutMs", 1, 60_000, 1_000, "How long one request may take before it counts as failed."),
        ],
        parse_params: parses_into::<LocalPolicyParams>,
    },
];

/// `nodeport/every-node`'s parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EveryNodeParams {
    requests: u32,
    timeout_ms: u64,
    target_nodes: usize,
}

/// `nodeport/local-policy`'s parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LocalPolicyParams {
    requests: u32,
    timeout_ms: u64,
}
/// The source name of probes sent by the runner itself.
pub const RUNNER: &str = "runner";

/// One address of one node (IPv4 or IPv6).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Target {
    /// The node.
    pub(crate) node: String,
    /// One of its addresses.
    pub(crate) ip: IpAddr,
}

impl Target {
    /// `ip:port`, with brackets for IPv6.
    fn socket(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip, port)
    }
}

/// Runs the selected NodePort checks.
pub async fn run(session: &Session, scenario: &Scenario) -> Vec<CheckResult> {
    let mut results = Vec::new();
    if let Some(check) = selected(scenario, EVERY_NODE) {
        let p: EveryNodeParams = check.params.typed();
        results.extend(every_node(session, p.requests, Duration::from_millis(p.timeout_ms), p.target_nodes).await);
    }
    if let Some(check) = selected(scenario, LOCAL_POLICY) {
        let p: LocalPolicyParams = check.params.typed();
        results.extend(local_policy(session, p.requests, Duration::from_millis(p.timeout_ms)).await);
    }
    results
}

pub(crate) async fn node_port(session: &Session, service: &str) -> Result<u16, String> {
    let svc = services::read(&session.cluster, &session.namespace, service).await.map_err(|e| e.to_string())?;
    let svc = svc.ok_or_else(|| format!("service/{service} does not exist"))?;
    services::first_node_port(&svc).ok_or_else(|| format!("service/{service} has no node port"))
}

/// Every address of every Ready node, and a skip result for each node that is not Ready.
pub(crate) fn targets(nodes: &[NodeInfo], check: &str) -> (Vec<Target>, Vec<CheckResult>) {
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    for node in nodes {
        // Nothing to connect to is not the same as nothing failed: such a node is said, not left out.
        let not_a_target = if !node.ready {
            Some(format!("node {} is NotReady", node.name))
        } else if node.virtual_node {
            Some(format!(
                "node {} is a virtual node (virtual-kubelet): it runs no kube-proxy, so no node port",
                node.name
            ))
        } else if node.internal_ips.is_empty() && node.external_ips.is_empty() {
            Some(format!(
                "node {} lists no InternalIP or ExternalIP address, so its node port has no address to reach",
                node.name
            ))
        } else {
            None
        };
        if let Some(why) = not_a_target {
            skipped.push(CheckResult::new(check, Status::Skip, Subject::default().to_node(&node.name), why));
            continue;
        }
        for ip in node.internal_ips.iter().chain(&node.external_ips) {
            match ip.parse::<IpAddr>() {
                Ok(ip) => targets.push(Target { node: node.name.clone(), ip }),
                Err(_) => skipped.push(CheckResult::new(
                    check,
                    Status::Skip,
                    Subject::default().to_node(&node.name).at(ip.clone()),
                    format!("node {} lists {ip:?} as an address, which is not an IP address", node.name),
                )),
            }
        }
    }
    (targets, skipped)
}

/// Decides whether the runner probes too; the reason is reported either way.
async fn runner_reaches(session: &Session, probe: SocketAddr) -> Result<(), String> {
    match session.options.from_runner {
        FromRunner::Never => Err("--from-runner never".into()),
        FromRunner::Always => Ok(()),
        FromRunner::Auto => runner_probe::can_reach(probe, Duration::from_secs(1)).await,
    }
}

async fn every_node(session: &Session, requests: u32, timeout: Duration, target_nodes: usize) -> Vec<CheckResult> {
    let port = match node_port(session, NODEPORT_SERVICE).await {
        Ok(p) => p,
        Err(e) => return vec![CheckResult::new(EVERY_NODE, Status::Error, Subject::default(), e)],
    };
    let (mut targets, mut results) = targets(&session.nodes, EVERY_NODE);
    if target_nodes > 0 {
        let mut names: Vec<&str> = targets.iter().map(|t| t.node.as_str()).collect();
        names.sort();
        names.dedup();
        let kept: Vec<String> = names.into_iter().take(target_nodes).map(String::from).collect();
        targets.retain(|t| kept.contains(&t.node));
    }
    let Some(first) = targets.first() else { return results };
    let addr = |t: &Target| t.socket(port).to_string();

    let runner_ok = runner_reaches(session, first.socket(port)).await;
    let probe = HttpProbe {
        targets: targets.iter().map(addr).collect(),
        path: "/".into(),
        attempts: requests,
        concurrency: 16,
        timeout_ms: timeout.as_millis() as u64,
        interval_ms: 0,
        any_server: false,
        keep_body: false,
        give_up_after: 0,
        until_answers: None,
    };
    let clients = session.order_every_client(|_| Action::Http(probe.clone()));
    let from_runner = async {
        if runner_ok.is_err() {
            return None;
        }
        let jobs = targets
            .iter()
            .flat_map(|t| std::iter::repeat_n(t, requests as usize))
            .map(|t| async { Some(runner_probe::http_get(t.socket(port), timeout).await.0) });
        Some(join_all(jobs).await.into_iter().flatten().collect::<Vec<Attempt>>())
    };
    let (client_results, runner_attempts) = tokio::join!(clients, from_runner);

    let mut sources: Vec<(String, Result<OrderResult, OrderFailure>)> = client_results;
    if let Err(reason) = &runner_ok {
        results.push(CheckResult::new(
            EVERY_NODE,
            Status::Skip,
            Subject::from_node(RUNNER),
            format!("not probing from the runner: {reason}"),
        ));
    }
    if let Some(attempts) = runner_attempts {
        let runner = crate::protocol::Identity {
            pod: RUNNER.into(),
            node: RUNNER.into(),
            pod_ip: String::new(),
            client: String::new(),
        };
        sources.push((RUNNER.into(), Ok(OrderResult { attempts, ..OrderResult::new(runner) })));
    }

    let mut cells: BTreeMap<(String, Target), (usize, usize, Vec<Attempt>)> = BTreeMap::new();
    for (source, outcome) in &sources {
        let Ok(r) = outcome else { continue };
        for t in &targets {
            let mine: Vec<Attempt> = r.attempts.iter().filter(|a| a.target == addr(t)).cloned().collect();
            let ok = mine.iter().filter(|a| a.outcome.identity().is_some()).count();
            cells.insert((source.clone(), t.clone()), (ok, mine.len(), mine));
        }
    }
    let failing: Vec<(String, Target)> =
        cells.iter().filter(|(_, (ok, n, _))| ok < n || *n == 0).map(|(k, _)| k.clone()).collect();
    let source_names: Vec<String> = sources.iter().map(|(s, _)| s.clone()).collect();

    for (source, outcome) in &sources {
        for t in &targets {
            let subject = Subject::from_node(source).to_node(&t.node).at(addr(t));
            let order = match outcome {
                Ok(order) => order,
                Err(e) => {
                    results.push(CheckResult::new(EVERY_NODE, Status::Error, subject, e.to_string()));
                    continue;
                }
            };
            let (ok, n, attempts) = &cells[&(source.clone(), t.clone())];
            let pass = ok == n && *n > 0;
            let mut result = CheckResult::new(
                EVERY_NODE,
                if pass { Status::Pass } else { Status::Fail },
                subject,
                format!("{ok}/{n} requests answered{}", failure_note(attempts)),
            )
            .measure("answered", *ok)
            .measure("requests", *n);
            if !pass {
                result.diagnosis = Some(nodeport_diagnosis(source, t, &failing, &source_names));
            }
            results.push(super::capped_by_partial(result, order));
        }
    }
    results
}

fn failure_note(attempts: &[Attempt]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in attempts.iter().filter(|a| a.outcome.identity().is_none()) {
        *counts.entry(a.outcome.label()).or_insert(0) += 1;
    }
    if counts.is_empty() {
        String::new()
    } else {
        format!(" ({})", counts.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "))
    }
}

/// Places a failing NodePort cell: the target node, the source, or the runner's network.
fn nodeport_diagnosis(source: &str, target: &Target, failing: &[(String, Target)], sources: &[String]) -> Diagnosis {
    let failing_sources: Vec<&str> = failing.iter().filter(|(_, t)| t == target).map(|(s, _)| s.as_str()).collect();
    let pod_sources: Vec<&String> = sources.iter().filter(|s| s.as_str() != RUNNER).collect();
    let all_fail = sources.iter().all(|s| failing_sources.contains(&s.as_str()));
    let only_runner = failing_sources == [RUNNER] && !pod_sources.is_empty();
    let evidence = vec![format!(
        "{} of {} sources fail to reach {}:{} on {} ({})",
        failing_sources.len(),
        sources.len(),
        target.ip,
        "nodePort",
        target.node,
        failing_sources.join(", ")
    )];
    let (likely_cause, next_step) = if only_runner {
        (
            "the network between the runner and the nodes (every pod source reaches this node port)".to_string(),
            format!("check routes and firewalls between this machine and {}", target.ip),
        )
    } else if all_fail {
        (
            format!(
                "node {} itself: its NodePort rules (kube-proxy), a host firewall, or the address {}",
                target.node, target.ip
            ),
            format!("check kube-proxy on {} and the node's firewall for the node port", target.node),
        )
    } else {
        (
            format!("the path from {source} to node {} (other sources reach it)", target.node),
            format!("compare the routes and firewalls of {source} with those of the working sources"),
        )
    };
    Diagnosis { likely_cause, evidence, next_step: Some(next_step) }
}

async fn local_policy(session: &Session, requests: u32, timeout: Duration) -> Vec<CheckResult> {
    let port = match node_port(session, LOCAL_SERVICE).await {
        Ok(p) => p,
        Err(e) => return vec![CheckResult::new(LOCAL_POLICY, Status::Error, Subject::default(), e)],
    };
    let (targets, mut results) = targets(&session.nodes, LOCAL_POLICY);
    let targets: Vec<Target> = targets
        .into_iter()
        .filter(|t| session.nodes.iter().any(|n| n.name == t.node && n.internal_ips.contains(&t.ip.to_string())))
        .collect();
    let Some(first) = targets.first() else { return results };
    // A node without a local backend must stay silent; the Cluster-policy node port tells a silent
    // node from an unreachable one.
    let reference_port = node_port(session, NODEPORT_SERVICE).await.ok();
    if let Err(reason) = runner_reaches(session, first.socket(port)).await {
        results.push(CheckResult::new(
            LOCAL_POLICY,
            Status::Skip,
            Subject::from_node(RUNNER),
            format!("needs a client outside the cluster; the runner cannot reach the nodes: {reason}"),
        ));
        return results;
    }
    let per_node = targets.iter().map(|t| async move {
        let attempts = join_all((0..requests).map(|_| runner_probe::http_get(t.socket(port), timeout))).await;
        let has_local = session.agents.servers.iter().any(|s| s.node == t.node);
        let reachable = match reference_port {
            Some(reference) if !has_local => {
                let probes = join_all((0..3).map(|_| runner_probe::http_get(t.socket(reference), timeout))).await;
                Some(probes.iter().any(|(a, _)| a.outcome.identity().is_some()))
            }
            _ => None,
        };
        (t.clone(), attempts, reachable)
    });
    for (t, attempts, reachable) in join_all(per_node).await {
        let local_backends: Vec<&str> =
            session.agents.servers.iter().filter(|s| s.node == t.node).map(|s| s.pod.as_str()).collect();
        results.push(judge_local(&t, port, &local_backends, &attempts, reachable));
    }
    results
}

/// `reachable`: whether the node answered on the Cluster-policy node port (asked only of nodes without
/// a local backend; None when it could not be asked).
fn judge_local(
    t: &Target,
    port: u16,
    local_backends: &[&str],
    attempts: &[(Attempt, Option<SocketAddr>)],
    reachable: Option<bool>,
) -> CheckResult {
    let subject = Subject::from_node(RUNNER).to_node(&t.node).at(t.socket(port).to_string());
    let answered: Vec<(&crate::protocol::Identity, Option<SocketAddr>)> =
        attempts.iter().filter_map(|(a, local)| a.outcome.identity().map(|i| (i, *local))).collect();
    if local_backends.is_empty() {
        let pass = answered.is_empty() && reachable == Some(true);
        let message = if pass {
            format!(
                "no local backend, and the node did not forward ({} requests unanswered, while its Cluster-policy \
                 node port answered)",
                attempts.len()
            )
        } else if answered.is_empty() {
            let why = if reachable == Some(false) {
                "its Cluster-policy node port did not answer either: the node is unreachable"
            } else {
                "the Cluster-policy node port could not be asked"
            };
            format!(
                "no local backend and no answer, but {why}, so a node that does not forward cannot be told from \
                 one that cannot be reached"
            )
        } else {
            format!(
                "no local backend, yet {} of {} requests were forwarded to another node",
                answered.len(),
                attempts.len()
            )
        };
        return CheckResult::new(LOCAL_POLICY, if pass { Status::Pass } else { Status::Fail }, subject, message)
            .measure("localBackends", 0)
            .measure("answered", answered.len());
    }
    let all_answered = answered.len() == attempts.len();
    let stayed_local = answered.iter().all(|(i, _)| local_backends.contains(&i.pod.as_str()));
    let source_kept = answered.iter().all(|(i, local)| {
        let seen = i.client.rsplit_once(':').map(|(ip, _)| ip).unwrap_or_default();
        local.is_some_and(|l| l.ip().to_string() == seen)
    });
    let seen: Vec<String> = answered.iter().map(|(i, _)| i.client.clone()).collect();
    let pass = all_answered && stayed_local && source_kept;
    let message = if pass {
        format!("{} requests answered by local backends, source address preserved", answered.len())
    } else if !all_answered {
        format!("{}/{} requests answered on a node with a local backend", answered.len(), attempts.len())
    } else if !stayed_local {
        "requests left the node although it has a local backend".to_string()
    } else {
        "the backend saw a translated source address: the client address was not preserved".to_string()
    };
    let expected = attempts.iter().filter_map(|(_, l)| l.map(|l| l.ip().to_string())).next().unwrap_or_default();
    CheckResult::new(LOCAL_POLICY, if pass { Status::Pass } else { Status::Fail }, subject, message)
        .measure("localBackends", local_backends.len())
        .measure("answered", answered.len())
        .compare(format!("source {expected}"), seen.first().cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Identity, Outcome};

    fn t(node: &str, ip: &str) -> Target {
        Target { node: node.into(), ip: ip.parse().unwrap() }
    }

    #[test]
    fn failing_from_every_source_blames_the_target_node() {
        let sources = vec!["a".to_string(), "b".to_string(), RUNNER.to_string()];
        let failing: Vec<(String, Target)> = sources.iter().map(|s| (s.clone(), t("b", "10.0.0.2"))).collect();
        let d = nodeport_diagnosis("a", &t("b", "10.0.0.2"), &failing, &sources);
        assert!(d.likely_cause.starts_with("node b itself"), "{}", d.likely_cause);
    }

    #[test]
    fn failing_only_from_the_runner_blames_the_runner_network() {
        let sources = vec!["a".to_string(), "b".to_string(), RUNNER.to_string()];
        let failing = vec![(RUNNER.to_string(), t("b", "10.0.0.2"))];
        let d = nodeport_diagnosis(RUNNER, &t("b", "10.0.0.2"), &failing, &sources);
        assert!(d.likely_cause.contains("between the runner and the nodes"), "{}", d.likely_cause);
    }

    #[test]
    fn failing_from_one_source_blames_that_path() {
        let sources = vec!["a".to_string(), "b".to_string()];
        let failing = vec![("a".to_string(), t("b", "10.0.0.2"))];
        let d = nodeport_diagnosis("a", &t("b", "10.0.0.2"), &failing, &sources);
        assert!(d.likely_cause.contains("path from a to node b"), "{}", d.likely_cause);
    }

    fn answer(pod: &str, client: &str) -> (Attempt, Option<SocketAddr>) {
        let identity = Identity { pod: pod.into(), node: "n".into(), pod_ip: "p".into(), client: client.into() };
        let a = Attempt {
            target: "t".into(),
            start_ms: 0,
            elapsed_us: 1,
            retries: 0,
            outcome: Outcome::Answered { identity },
        };
        (a, Some("10.250.0.1:40000".parse().unwrap()))
    }

    #[test]
    fn local_policy_requires_the_preserved_source() {
        let ok = judge_local(&t("a", "10.0.0.1"), 30000, &["s1"], &[answer("s1", "10.250.0.1:40000")], None);
        assert_eq!(ok.status, Status::Pass);
        let snat = judge_local(&t("a", "10.0.0.1"), 30000, &["s1"], &[answer("s1", "10.244.1.1:5000")], None);
        assert_eq!(snat.status, Status::Fail);
        assert!(snat.message.contains("source address"), "{}", snat.message);
    }

    #[test]
    fn a_node_without_local_backend_must_not_forward() {
        let silent =
            (Attempt { target: "t".into(), start_ms: 0, elapsed_us: 1, retries: 0, outcome: Outcome::Timeout }, None);
        let quiet = std::slice::from_ref(&silent);
        assert_eq!(judge_local(&t("b", "10.0.0.2"), 30000, &[], quiet, Some(true)).status, Status::Pass);
        assert_eq!(
            judge_local(&t("b", "10.0.0.2"), 30000, &[], &[answer("s1", "x:1")], Some(true)).status,
            Status::Fail
        );
    }

    #[test]
    fn a_silent_node_that_is_unreachable_is_not_a_pass() {
        let silent =
            (Attempt { target: "t".into(), start_ms: 0, elapsed_us: 1, retries: 0, outcome: Outcome::Timeout }, None);
        let quiet = std::slice::from_ref(&silent);
        let unreachable = judge_local(&t("b", "10.0.0.2"), 30000, &[], quiet, Some(false));
        assert_eq!(unreachable.status, Status::Fail);
        assert!(unreachable.message.contains("unreachable"), "{}", unreachable.message);
        assert_eq!(judge_local(&t("b", "10.0.0.2"), 30000, &[], quiet, None).status, Status::Fail);
    }

    #[test]
    fn ipv6_and_dual_stack_addresses_are_targets_not_panics() {
        let node = |ips: &[&str]| NodeInfo {
            name: "n".into(),
            ready: true,
            internal_ips: ips.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let (targets, skipped) = targets(&[node(&["10.0.0.2", "fd00::2", "not-an-ip"])], EVERY_NODE);
        assert_eq!(
            targets.iter().map(|t| t.socket(30000).to_string()).collect::<Vec<_>>(),
            ["10.0.0.2:30000", "[fd00::2]:30000"]
        );
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].status, Status::Skip);
    }

    #[test]
    fn an_ipv6_only_node_is_a_target_and_a_node_without_addresses_is_said_not_dropped() {
        let v6_only =
            NodeInfo { name: "six".into(), ready: true, internal_ips: vec!["fd00::6".into()], ..Default::default() };
        let bare = NodeInfo { name: "bare".into(), ready: true, ..Default::default() };
        let (targets, skipped) = targets(&[v6_only, bare], EVERY_NODE);
        assert_eq!(targets.iter().map(|t| t.socket(30000).to_string()).collect::<Vec<_>>(), ["[fd00::6]:30000"]);
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert_eq!(skipped[0].status, Status::Skip);
        assert_eq!(skipped[0].subject.target_node.as_deref(), Some("bare"));
        assert!(skipped[0].message.contains("no InternalIP or ExternalIP"), "{}", skipped[0].message);
    }

    #[test]
    fn a_virtual_node_is_no_node_port_target_and_says_why() {
        let real =
            NodeInfo { name: "a".into(), ready: true, internal_ips: vec!["10.0.0.1".into()], ..Default::default() };
        let aci = NodeInfo { virtual_node: true, name: "virtual-node-aci".into(), ..real.clone() };
        let (targets, skipped) = targets(&[real, aci], EVERY_NODE);
        assert_eq!(targets.iter().map(|t| t.node.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].message.contains("node virtual-node-aci is a virtual node"), "{}", skipped[0].message);
    }
}
