//! `clusterip/reachable`, `clusterip/all-backends`, `lb/distribution` and `pod/direct`: one probe round
//! from every client agent to the echo Service's ClusterIP and to every server pod IP.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;

use serde::Deserialize;

use super::diagnosis::{self, PathEvidence};
use super::{capped_by_partial, params, selected};
use crate::catalog::{CheckSpec, NoParams, TIMEOUT_MS, float, int, parses_into};
/// One order's attempts travel back in one ConfigMap: the request counts are bounded by it.
use crate::protocol::MAX_ATTEMPTS_PER_ORDER as MAX_ATTEMPTS;
use crate::protocol::{Action, Attempt, HTTP_PORT, HttpProbe, OrderResult};
use crate::report::{CheckResult, Status, Subject};
use crate::runner::channel::OrderFailure;
use crate::runner::endpoints::EndpointAddress;
use crate::runner::manifests::{ECHO_HTTP_PORT, ECHO_SERVICE};
use crate::runner::{AgentPod, Session};
use crate::scenario::Scenario;
use crate::stats;
use crate::stats::round2;

const REACHABLE: &str = "clusterip/reachable";
const ALL_BACKENDS: &str = "clusterip/all-backends";
const DISTRIBUTION: &str = "lb/distribution";
const POD_DIRECT: &str = "pod/direct";

/// The checks this round answers.
pub(crate) static SPECS: &[CheckSpec] = &[
    CheckSpec {
        id: REACHABLE,
        title: "ClusterIP reachable from every node",
        description: "From each node's client, N requests to the ClusterIP succeed.",
        params: &[
            int("requests", 1, MAX_ATTEMPTS as i64, 20, "Requests each client sends to the ClusterIP."),
            TIMEOUT_MS,
        ],
        parse_params: parses_into::<ReachableParams>,
    },
    CheckSpec {
        id: ALL_BACKENDS,
        title: "ClusterIP reaches every ready backend",
        description: "From each node, the set of backends that answered equals the set of ready \
                      endpoints from the API.",
        params: &[],
        parse_params: parses_into::<NoParams>,
    },
    CheckSpec {
        id: POD_DIRECT,
        title: "Pod IPs reachable from every node",
        description: "Each client reaches each backend pod IP directly, bypassing the Service.",
        params: &[
            int(
                "requestsPerBackend",
                1,
                MAX_ATTEMPTS as i64 / 3,
                3,
                "Requests each client sends to each backend pod IP.",
            ),
            TIMEOUT_MS,
        ],
        parse_params: parses_into::<DirectParams>,
    },
    CheckSpec {
        id: DISTRIBUTION,
        title: "Load spread evenly over backends",
        description: "A fresh connection per request; a chi-square test of evenness over the \
                      backends that answered.",
        params: &[
            int("requests", 10, MAX_ATTEMPTS as i64, 300, "Requests each client sends, one connection each."),
            float("minPValue", 0.0, 1.0, 0.001, "Fail when the chi-square p-value of an even split falls below this."),
            float(
                "minShareOfFair",
                0.0,
                1.0,
                0.5,
                "Fail when the least-served backend gets less than this share of its fair count.",
            ),
            int("concurrency", 1, 256, 32, "Requests in flight at once per client."),
        ],
        parse_params: parses_into::<DistributionParams>,
    },
];

/// `clusterip/reachable`'s parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReachableParams {
    requests: u32,
    timeout_ms: u64,
}

/// `pod/direct`'s parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DirectParams {
    requests_per_backend: u32,
    timeout_ms: u64,
}

/// `lb/distribution`'s parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DistributionParams {
    requests: u32,
    min_p_value: f64,
    min_share_of_fair: f64,
    concurrency: u32,
}

/// The probe parameters derived from the selected checks.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Plan {
    service_requests: u32,
    concurrency: u32,
    timeout_ms: u64,
    per_backend: u32,
    direct_timeout_ms: u64,
    min_p_value: f64,
    min_share: f64,
}

/// One round serves every selected check: the ClusterIP gets as many requests as the most demanding
/// of them asks; an unselected check's parameters are its defaults.
fn plan(scenario: &Scenario) -> Plan {
    let reachable: ReachableParams = params(scenario, REACHABLE);
    let dist: DistributionParams = params(scenario, DISTRIBUTION);
    let direct: DirectParams = params(scenario, POD_DIRECT);
    let wanted = |id| selected(scenario, id).is_some();
    let requests = [wanted(REACHABLE).then_some(reachable.requests), wanted(DISTRIBUTION).then_some(dist.requests)];
    Plan {
        service_requests: requests.into_iter().flatten().max().unwrap_or(reachable.requests),
        concurrency: dist.concurrency,
        timeout_ms: reachable.timeout_ms,
        per_backend: direct.requests_per_backend,
        direct_timeout_ms: direct.timeout_ms,
        min_p_value: dist.min_p_value,
        min_share: dist.min_share_of_fair,
    }
}

/// What one client saw.
struct NodeRound {
    node: String,
    service: Result<OrderResult, OrderFailure>,
    direct: Result<OrderResult, OrderFailure>,
}

/// Runs the round and produces the results of the selected checks among [`SPECS`].
pub async fn run(session: &Session, scenario: &Scenario) -> Vec<CheckResult> {
    let plan = plan(scenario);
    let service_target = format!("{}:{ECHO_HTTP_PORT}", session.agents.cluster_ip);
    let expected = &session.settled.echo_endpoints;
    if expected.is_empty() {
        return errors(scenario, "the echo Service has no endpoints");
    }
    let rounds = join_all(
        session.agents.clients.iter().map(|(node, agent)| probe_node(session, node, agent, &service_target, &plan)),
    )
    .await;
    let evidence: Vec<PathEvidence> = rounds.iter().map(|r| path_evidence(r, &session.agents.servers)).collect();

    let mut results = Vec::new();
    for round in &rounds {
        let subject = Subject::from_node(&round.node).at(&service_target).named(format!("service/{ECHO_SERVICE}"));
        match &round.service {
            Err(f) => {
                for id in [REACHABLE, ALL_BACKENDS, DISTRIBUTION] {
                    if selected(scenario, id).is_some() {
                        results.push(CheckResult::new(id, Status::Error, subject.clone(), f.to_string()));
                    }
                }
            }
            Ok(r) => {
                let ev = evidence.iter().find(|e| e.node == round.node).expect("evidence per round");
                if selected(scenario, REACHABLE).is_some() {
                    results.push(capped_by_partial(reachable(subject.clone(), &r.attempts, ev, &evidence), r));
                }
                if selected(scenario, ALL_BACKENDS).is_some() {
                    let result = all_backends(subject.clone(), &r.attempts, expected, &session.agents.servers);
                    let result = match session.settled.data_plane.get(&round.node).and_then(|s| s.converged_in()) {
                        Some(t) => result.measure("convergenceMs", t.as_millis() as u64),
                        None => result,
                    };
                    results.push(capped_by_partial(result, r));
                }
                if selected(scenario, DISTRIBUTION).is_some() {
                    let result = distribution(subject.clone(), &r.attempts, expected, &session.agents.servers, &plan);
                    results.push(capped_by_partial(result, r));
                }
            }
        }
        if selected(scenario, POD_DIRECT).is_some() {
            results.extend(pod_direct(&round.node, &round.direct, &session.agents.servers));
        }
    }
    // A second batch settles chance, not loss: from a node whose requests through the ClusterIP were
    // lost, the uneven spread is the loss itself, and re-sampling would only wait out the timeouts again.
    let lossy: BTreeSet<&str> = rounds
        .iter()
        .filter(|r| r.service.as_ref().is_ok_and(|o| answered(&o.attempts) < o.attempts.len()))
        .map(|r| r.node.as_str())
        .collect();
    for r in results.iter_mut().filter(|r| r.check == DISTRIBUTION && r.status == Status::Fail) {
        if r.subject.source_node.as_deref().is_some_and(|n| lossy.contains(n)) {
            r.message.push_str("; not re-sampled: requests through the ClusterIP were lost from this node");
        }
    }
    let confirmations = results.iter().enumerate().filter(|(_, r)| {
        r.check == DISTRIBUTION
            && r.status == Status::Fail
            && !r.subject.source_node.as_deref().is_some_and(|n| lossy.contains(n))
    });
    let pending: Vec<(usize, CheckResult)> = confirmations.map(|(i, r)| (i, r.clone())).collect();
    let (target, plan) = (&service_target, &plan);
    let confirmed = join_all(pending.into_iter().map(|(i, r)| async move {
        let node = r.subject.source_node.clone().unwrap_or_default();
        (i, confirm_distribution(session, &node, r, target, plan).await)
    }))
    .await;
    for (i, r) in confirmed {
        results[i] = r;
    }
    results
}

fn errors(scenario: &Scenario, message: &str) -> Vec<CheckResult> {
    super::errors(SPECS, scenario, message)
}

/// The requests through the ClusterIP that the reachability and distribution checks judge.
fn service_probe(service_target: &str, plan: &Plan) -> HttpProbe {
    HttpProbe {
        targets: vec![service_target.to_string()],
        path: "/".into(),
        attempts: plan.service_requests,
        concurrency: plan.concurrency,
        timeout_ms: plan.timeout_ms,
        interval_ms: 0,
        any_server: false,
        keep_body: false,
        // A silently dropped ClusterIP: a few timeouts tell it; the other attempts would only add waiting.
        give_up_after: plan.concurrency * 2,
        until_answers: None,
    }
}

/// A second, independent batch from `node` for a distribution that looked uneven: only when both
/// batches are uneven does `lb/distribution` fail, so one unlucky batch (about 1 in 1/minPValue per
/// node on a healthy cluster) is not a false alarm.
async fn confirm_distribution(
    session: &Session,
    node: &str,
    first: CheckResult,
    service_target: &str,
    plan: &Plan,
) -> CheckResult {
    let Some(agent) = session.agents.clients.get(node) else { return first };
    let second = session.channel.send(agent, Action::Http(service_probe(service_target, plan))).await;
    let second = match second {
        Ok(r) => capped_by_partial(
            distribution(
                first.subject.clone(),
                &r.attempts,
                &session.settled.echo_endpoints,
                &session.agents.servers,
                plan,
            ),
            &r,
        ),
        Err(e) => {
            let mut r = first;
            r.message = format!("{}; the confirming batch did not come back ({e}): not confirmed", r.message);
            r.status = Status::Error;
            return r;
        }
    };
    confirmed(first, second)
}

/// Joins the first batch's result with the confirming batch's: fail only when both are uneven.
fn confirmed(first: CheckResult, second: CheckResult) -> CheckResult {
    // Only an even confirming batch clears the first; one with no answers (a skip) proves nothing.
    let mut r = if second.status == Status::Pass { second.clone() } else { first.clone() };
    r.status = if second.status == Status::Pass { Status::Pass } else { Status::Fail };
    r.message = format!("first batch: {}; confirming batch: {}", first.message, second.message);
    let p = |c: &CheckResult| c.measurements.get("pValue").cloned().unwrap_or_default();
    r.measurements.insert("pValue".into(), p(&first));
    r.measurements.insert("confirmPValue".into(), p(&second));
    r
}

async fn probe_node(session: &Session, node: &str, agent: &AgentPod, service_target: &str, plan: &Plan) -> NodeRound {
    let service = service_probe(service_target, plan);
    let direct = HttpProbe {
        targets: session.agents.servers.iter().map(|s| format!("{}:{HTTP_PORT}", s.ip)).collect(),
        path: "/".into(),
        attempts: plan.per_backend,
        concurrency: plan.concurrency,
        timeout_ms: plan.direct_timeout_ms,
        interval_ms: 0,
        any_server: false,
        keep_body: false,
        give_up_after: 0,
        until_answers: None,
    };
    let (service, direct) = tokio::join!(
        session.channel.send(agent, Action::Http(service)),
        session.channel.send(agent, Action::Http(direct)),
    );
    NodeRound { node: node.to_string(), service, direct }
}

fn answered(attempts: &[Attempt]) -> usize {
    attempts.iter().filter(|a| a.outcome.identity().is_some()).count()
}

fn path_evidence(round: &NodeRound, servers: &[AgentPod]) -> PathEvidence {
    let cluster_ip = match &round.service {
        Ok(r) => (answered(&r.attempts), r.attempts.len()),
        Err(_) => (0, 0),
    };
    let mut same = (0, 0);
    let mut other = (0, 0);
    let mut unreachable_pod_nodes = std::collections::BTreeSet::new();
    if let Ok(r) = &round.direct {
        for server in servers {
            let target = format!("{}:{HTTP_PORT}", server.ip);
            let mine: Vec<&Attempt> = r.attempts.iter().filter(|a| a.target == target).collect();
            let ok = !mine.is_empty() && mine.iter().all(|a| a.outcome.identity().is_some_and(|i| i.pod == server.pod));
            let slot = if server.node == round.node { &mut same } else { &mut other };
            slot.1 += 1;
            slot.0 += usize::from(ok);
            if !ok {
                unreachable_pod_nodes.insert(server.node.clone());
            }
        }
    }
    PathEvidence {
        node: round.node.clone(),
        cluster_ip,
        pods_same_node: same,
        pods_other_nodes: other,
        unreachable_pod_nodes,
    }
}

fn latency_ms(attempts: &[Attempt]) -> Vec<f64> {
    attempts.iter().filter(|a| a.outcome.identity().is_some()).map(|a| a.elapsed_us as f64 / 1000.0).collect()
}

/// Counts of failure outcomes, e.g. `timeout: 3, refused: 1`.
fn failure_breakdown(attempts: &[Attempt]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for a in attempts.iter().filter(|a| a.outcome.identity().is_none()) {
        *counts.entry(a.outcome.label()).or_insert(0) += 1;
    }
    counts
}

fn describe(counts: &BTreeMap<&'static str, usize>) -> String {
    counts.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
}

fn reachable(subject: Subject, attempts: &[Attempt], ev: &PathEvidence, all: &[PathEvidence]) -> CheckResult {
    let ok = answered(attempts);
    let total = attempts.len();
    let status = if ok == total && total > 0 { Status::Pass } else { Status::Fail };
    let message = if status == Status::Pass {
        format!("{ok}/{total} requests answered")
    } else {
        format!("{ok}/{total} requests answered ({})", describe(&failure_breakdown(attempts)))
    };
    let mut result =
        CheckResult::new(REACHABLE, status, subject, message).measure("requests", total).measure("answered", ok);
    if let Some(p) = stats::percentiles(&latency_ms(attempts)) {
        result = result.measure("p50Ms", round2(p.p50)).measure("p90Ms", round2(p.p90)).measure("p99Ms", round2(p.p99));
    }
    if status == Status::Fail {
        result.diagnosis = Some(diagnosis::service_failure(ev, all));
    }
    result
}

fn pod_label(ip: &str, servers: &[AgentPod], endpoints: &[EndpointAddress]) -> String {
    servers
        .iter()
        .find(|s| s.ip == ip)
        .map(|s| format!("{} ({ip}, {})", s.pod, s.node))
        .or_else(|| endpoints.iter().find(|e| e.ip == ip).and_then(|e| e.pod.clone()).map(|p| format!("{p} ({ip})")))
        .unwrap_or_else(|| ip.to_string())
}

fn all_backends(
    subject: Subject,
    attempts: &[Attempt],
    endpoints: &[EndpointAddress],
    servers: &[AgentPod],
) -> CheckResult {
    let expected: BTreeSet<String> = endpoints.iter().filter(|e| e.ready).map(|e| e.ip.clone()).collect();
    let seen: BTreeSet<String> =
        attempts.iter().filter_map(|a| a.outcome.identity()).map(|i| i.pod_ip.clone()).collect();
    let missing: Vec<String> = expected.difference(&seen).map(|ip| pod_label(ip, servers, endpoints)).collect();
    let extra: Vec<String> = seen.difference(&expected).map(|ip| pod_label(ip, servers, endpoints)).collect();
    let list = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
    let (status, message) = if expected.is_empty() {
        (Status::Fail, "the API lists no ready endpoint for the Service".to_string())
    } else if missing.is_empty() && extra.is_empty() {
        (Status::Pass, format!("all {} ready endpoints answered", expected.len()))
    } else {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("never answered: {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            parts.push(format!("answered but not a ready endpoint: {}", extra.join(", ")));
        }
        (Status::Fail, parts.join("; "))
    };
    CheckResult::new(ALL_BACKENDS, status, subject, message)
        .compare(list(&expected), list(&seen))
        .measure("expected", expected.len())
        .measure("seen", seen.len())
}

fn distribution(
    subject: Subject,
    attempts: &[Attempt],
    endpoints: &[EndpointAddress],
    servers: &[AgentPod],
    plan: &Plan,
) -> CheckResult {
    let mut counts: BTreeMap<String, u64> =
        endpoints.iter().filter(|e| e.ready).map(|e| (pod_name(&e.ip, servers), 0)).collect();
    for identity in attempts.iter().filter_map(|a| a.outcome.identity()) {
        *counts.entry(identity.pod.clone()).or_insert(0) += 1;
    }
    let Some(d) = stats::evenness(&counts) else {
        return CheckResult::new(
            DISTRIBUTION,
            Status::Skip,
            subject,
            "needs at least 2 ready backends and some answers",
        );
    };
    let even = d.p_value >= plan.min_p_value && d.min_share_of_fair >= plan.min_share;
    let counts_text = d.counts.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
    let mut message = format!(
        "{} answers over {} backends: {counts_text}; chi-square p={:.3}, smallest share {:.0}% of fair",
        d.total,
        d.counts.len(),
        d.p_value,
        d.min_share_of_fair * 100.0
    );
    // Where the short backend runs: an uneven spread from one node is often a path into another.
    if !even && let Some((pod, _)) = d.counts.iter().min_by_key(|(_, n)| **n) {
        let node = servers.iter().find(|s| &s.pod == pod).map_or("an unknown node", |s| s.node.as_str());
        message.push_str(&format!("; fewest answers from {pod} on {node}"));
    }
    let mut result = CheckResult::new(DISTRIBUTION, if even { Status::Pass } else { Status::Fail }, subject, message)
        .measure("counts", serde_json::to_value(&d.counts).unwrap_or_default())
        .measure("chiSquare", round2(d.chi_square))
        .measure("pValue", (d.p_value * 10_000.0).round() / 10_000.0)
        .measure("minShareOfFair", round2(d.min_share_of_fair));
    if !even {
        result = result.compare(
            format!("p ≥ {} and every backend ≥ {:.0}% of its fair share", plan.min_p_value, plan.min_share * 100.0),
            format!("p = {:.5}, smallest share {:.0}%", d.p_value, d.min_share_of_fair * 100.0),
        );
    }
    result
}

fn pod_name(ip: &str, servers: &[AgentPod]) -> String {
    servers.iter().find(|s| s.ip == ip).map(|s| s.pod.clone()).unwrap_or_else(|| ip.to_string())
}

fn pod_direct(node: &str, direct: &Result<OrderResult, OrderFailure>, servers: &[AgentPod]) -> Vec<CheckResult> {
    servers
        .iter()
        .map(|server| {
            let target = format!("{}:{HTTP_PORT}", server.ip);
            let subject = Subject::from_node(node).to_node(&server.node).at(&target).named(&server.pod);
            let r = match direct {
                Err(f) => return CheckResult::new(POD_DIRECT, Status::Error, subject, f.to_string()),
                Ok(r) => r,
            };
            let mine: Vec<Attempt> = r.attempts.iter().filter(|a| a.target == target).cloned().collect();
            let right = mine.iter().filter(|a| a.outcome.identity().is_some_and(|i| i.pod == server.pod)).count();
            let status = if right == mine.len() && right > 0 { Status::Pass } else { Status::Fail };
            let mut message = format!("{right}/{} requests answered by {}", mine.len(), server.pod);
            if status == Status::Fail {
                message.push_str(&format!(" ({})", describe(&failure_breakdown(&mine))));
            }
            let mut result = CheckResult::new(POD_DIRECT, status, subject, message)
                .measure("answered", right)
                .measure("requests", mine.len());
            if let Some(p) = stats::percentiles(&latency_ms(&mine)) {
                result = result.measure("p50Ms", round2(p.p50));
            }
            capped_by_partial(result, r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Identity, Outcome};

    fn server(pod: &str, node: &str, ip: &str) -> AgentPod {
        AgentPod { pod: pod.into(), node: node.into(), ip: ip.into() }
    }

    fn answer(target: &str, pod: &str, ip: &str) -> Attempt {
        let identity = Identity { pod: pod.into(), node: "n".into(), pod_ip: ip.into(), client: String::new() };
        Attempt {
            target: target.into(),
            start_ms: 0,
            elapsed_us: 1500,
            retries: 0,
            outcome: Outcome::Answered { identity },
        }
    }

    fn failed(target: &str, outcome: Outcome) -> Attempt {
        Attempt { target: target.into(), start_ms: 0, elapsed_us: 2_000_000, retries: 0, outcome }
    }

    fn ready(ip: &str) -> EndpointAddress {
        EndpointAddress { ip: ip.into(), pod: None, ready: true, hostname: None, node: None }
    }

    #[test]
    fn all_backends_names_the_backend_that_never_answered() {
        let servers = [server("s1", "a", "10.0.0.1"), server("s2", "b", "10.0.0.2")];
        let attempts = vec![answer("c", "s1", "10.0.0.1"); 5];
        let r = all_backends(Subject::default(), &attempts, &[ready("10.0.0.1"), ready("10.0.0.2")], &servers);
        assert_eq!(r.status, Status::Fail);
        assert!(r.message.contains("never answered: s2 (10.0.0.2, b)"), "{}", r.message);
        let ok = all_backends(
            Subject::default(),
            &[answer("c", "s1", "10.0.0.1"), answer("c", "s2", "10.0.0.2")],
            &[ready("10.0.0.1"), ready("10.0.0.2")],
            &servers,
        );
        assert_eq!(ok.status, Status::Pass);
    }

    #[test]
    fn traffic_to_a_not_ready_endpoint_fails_all_backends() {
        let servers = [server("s1", "a", "10.0.0.1"), server("s2", "b", "10.0.0.2")];
        let not_ready = EndpointAddress { ip: "10.0.0.2".into(), pod: None, ready: false, hostname: None, node: None };
        let attempts = [answer("c", "s1", "10.0.0.1"), answer("c", "s2", "10.0.0.2")];
        let r = all_backends(Subject::default(), &attempts, &[ready("10.0.0.1"), not_ready], &servers);
        assert_eq!(r.status, Status::Fail);
        assert!(r.message.contains("not a ready endpoint: s2"), "{}", r.message);
    }

    #[test]
    fn distribution_fails_only_when_the_confirming_batch_is_uneven_too() {
        let batch = |status, p: f64| {
            CheckResult::new(DISTRIBUTION, status, Subject::from_node("node-b"), format!("p={p}")).measure("pValue", p)
        };
        let chance = confirmed(batch(Status::Fail, 0.0008), batch(Status::Pass, 0.41));
        assert_eq!(chance.status, Status::Pass, "one unlucky batch is not a verdict");
        assert_eq!(chance.measurements["pValue"], serde_json::json!(0.0008));
        assert_eq!(chance.measurements["confirmPValue"], serde_json::json!(0.41));
        assert!(chance.message.starts_with("first batch: p=0.0008; confirming batch: p=0.41"), "{}", chance.message);
        let real = confirmed(batch(Status::Fail, 0.0001), batch(Status::Fail, 0.0002));
        assert_eq!(real.status, Status::Fail);
        assert_eq!(real.measurements["confirmPValue"], serde_json::json!(0.0002));
        let silent = CheckResult::new(DISTRIBUTION, Status::Skip, Subject::from_node("node-b"), "no answers");
        assert_eq!(confirmed(batch(Status::Fail, 0.0001), silent).status, Status::Fail, "no answers clear nothing");
    }

    #[test]
    fn a_backend_with_no_share_fails_distribution() {
        let servers = [server("s1", "a", "10.0.0.1"), server("s2", "b", "10.0.0.2"), server("s3", "b", "10.0.0.3")];
        let mut attempts = vec![answer("c", "s1", "10.0.0.1"); 150];
        attempts.extend(vec![answer("c", "s2", "10.0.0.2"); 150]);
        let plan = Plan {
            service_requests: 300,
            concurrency: 8,
            timeout_ms: 1000,
            per_backend: 1,
            direct_timeout_ms: 1000,
            min_p_value: 0.001,
            min_share: 0.5,
        };
        let eps = [ready("10.0.0.1"), ready("10.0.0.2"), ready("10.0.0.3")];
        let r = distribution(Subject::default(), &attempts, &eps, &servers, &plan);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.measurements["counts"]["s3"], 0);
        let mut even = vec![answer("c", "s1", "10.0.0.1"); 100];
        even.extend(vec![answer("c", "s2", "10.0.0.2"); 95]);
        even.extend(vec![answer("c", "s3", "10.0.0.3"); 105]);
        assert_eq!(distribution(Subject::default(), &even, &eps, &servers, &plan).status, Status::Pass);
    }

    #[test]
    fn reachable_reports_the_failure_breakdown() {
        let mut attempts = vec![answer("c", "s1", "10.0.0.1"); 3];
        attempts.push(failed("c", Outcome::Timeout));
        attempts.push(failed("c", Outcome::Refused));
        let ev = PathEvidence {
            node: "a".into(),
            cluster_ip: (3, 5),
            pods_same_node: (1, 1),
            pods_other_nodes: (1, 1),
            unreachable_pod_nodes: Default::default(),
        };
        let r = reachable(Subject::from_node("a"), &attempts, &ev, std::slice::from_ref(&ev));
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.message.contains("3/5") && r.message.contains("timeout: 1") && r.message.contains("refused: 1"),
            "{}",
            r.message
        );
        assert!(r.diagnosis.unwrap().likely_cause.contains("service proxy on a"));
    }

    #[test]
    fn pod_direct_requires_the_right_pod_to_answer() {
        let servers = [server("s1", "a", "10.0.0.1")];
        let wrong = OrderResult {
            attempts: vec![answer("10.0.0.1:8080", "someone-else", "10.0.0.1")],
            ..OrderResult::new(Identity {
                pod: "c".into(),
                node: "a".into(),
                pod_ip: "x".into(),
                client: String::new(),
            })
        };
        let r = pod_direct("a", &Ok(wrong), &servers);
        assert_eq!(r[0].status, Status::Fail);
    }
}
