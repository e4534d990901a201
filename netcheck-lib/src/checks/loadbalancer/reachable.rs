//! `loadbalancer/reachable`: the ingress address answers from the runner and from every node's
//! client, and the answers come from every ready backend. From inside the cluster kube-proxy answers
//! the address itself, so the clients prove each node's Service rules; only the runner's traffic
//! travels the way the implementation announces (ARP, BGP, a cloud's load balancer), and the verdict
//! tells the two apart.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Deserialize;

use super::REACHABLE;
use crate::checks::nodeport::RUNNER;
use crate::checks::runner_probe;
use crate::protocol::{Action, Attempt, HttpProbe, OrderResult};
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::channel::OrderFailure;
use crate::runner::manifests::{self, ECHO_HTTP_PORT, LOADBALANCER_SERVICE};
use crate::runner::{FromRunner, Session};

/// `loadbalancer/reachable`'s parameters.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ReachableParams {
    requests: u32,
    timeout_ms: u64,
    converge_ms: u64,
}

/// Pause between two tries while waiting for a source's first answer.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// Per source: how long after the address was assigned its first request was answered (None: not
/// within `limit`). kube-proxy programs an address only once it is in the Service's status, so the
/// first second may be refused or dropped on a healthy cluster; the counted requests come after this.
async fn first_answers(
    session: &Session,
    target: SocketAddr,
    runner: bool,
    limit: Duration,
) -> BTreeMap<String, Option<u64>> {
    let started = Instant::now();
    let timeout = Duration::from_millis(500);
    let from_runner = async {
        if !runner {
            return None;
        }
        while started.elapsed() < limit {
            if runner_probe::http_get(target, timeout).await.0.outcome.identity().is_some() {
                return Some((RUNNER.to_string(), Some(started.elapsed().as_millis() as u64)));
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
        Some((RUNNER.to_string(), None))
    };
    let one = HttpProbe {
        targets: vec![target.to_string()],
        path: "/".into(),
        attempts: 1,
        concurrency: 1,
        timeout_ms: timeout.as_millis() as u64,
        interval_ms: 0,
        any_server: false,
        keep_body: false,
        give_up_after: 0,
        until_answers: None,
    };
    let from_clients = join_all(session.agents.clients.iter().map(|(node, agent)| {
        let one = one.clone();
        async move {
            while started.elapsed() < limit {
                let answer = session.channel.send(agent, Action::Http(one.clone())).await;
                let answered = answer.is_ok_and(|r| r.attempts.iter().any(|a| a.outcome.identity().is_some()));
                if answered {
                    return (node.clone(), Some(started.elapsed().as_millis() as u64));
                }
                tokio::time::sleep(RETRY_AFTER).await;
            }
            (node.clone(), None)
        }
    }));
    let (runner_first, clients_first) = tokio::join!(from_runner, from_clients);
    clients_first.into_iter().chain(runner_first).collect()
}

/// Probes the address from the runner and every client.
pub(super) async fn reachable(session: &Session, ip: IpAddr, p: ReachableParams) -> Vec<CheckResult> {
    let target = SocketAddr::new(ip, ECHO_HTTP_PORT as u16);
    let timeout = Duration::from_millis(p.timeout_ms);
    let probe = HttpProbe {
        targets: vec![target.to_string()],
        path: "/".into(),
        attempts: p.requests,
        concurrency: 8,
        timeout_ms: p.timeout_ms,
        interval_ms: 0,
        any_server: false,
        keep_body: false,
        give_up_after: 0,
        until_answers: None,
    };
    let runner_ok = runner_probes(session, target).await;
    let first = first_answers(session, target, runner_ok.is_ok(), Duration::from_millis(p.converge_ms)).await;
    let clients = session.order_every_client(|_| Action::Http(probe.clone()));
    let from_runner = async {
        if runner_ok.is_err() {
            return None;
        }
        let jobs = (0..p.requests).map(|_| async { runner_probe::http_get(target, timeout).await.0 });
        Some(join_all(jobs).await)
    };
    let (client_results, runner_attempts) = tokio::join!(clients, from_runner);
    let backends: BTreeSet<String> = session.agents.servers.iter().map(|s| s.pod.clone()).collect();
    let mut sources: Vec<(String, Result<Vec<Attempt>, String>)> = client_results
        .into_iter()
        .map(|(node, r): (String, Result<OrderResult, OrderFailure>)| (node, crate::checks::whole_attempts(r)))
        .collect();
    if let Some(attempts) = runner_attempts {
        sources.push((RUNNER.into(), Ok(attempts)));
    }
    let verdicts: Vec<(String, SourceVerdict)> =
        sources.into_iter().map(|(source, r)| (source, judge_source(r, &backends))).collect();
    let runner_failed = verdicts.iter().any(|(s, v)| s == RUNNER && matches!(v, SourceVerdict::Fail { .. }));
    let announcers = match runner_failed {
        true => super::provision::announcing_nodes(session, LOADBALANCER_SERVICE).await,
        false => Vec::new(),
    };
    let mut results = place_failures(&verdicts, ip, &announcers);
    for r in &mut results {
        let source = r.subject.source_node.clone().unwrap_or_default();
        match first.get(&source) {
            Some(Some(ms)) => r.measurements.insert("firstAnswerMs".into(), (*ms).into()),
            Some(None) => {
                let waited = format!("; no answer at all within {} ms of the address", p.converge_ms);
                r.message.push_str(&waited);
                None
            }
            None => None,
        };
    }
    if let Err(reason) = runner_ok {
        results.push(CheckResult::new(
            REACHABLE,
            Status::Skip,
            Subject::from_node(RUNNER).at(target.to_string()),
            format!("not probing from the runner: {reason}"),
        ));
    }
    for r in &mut results {
        if r.subject.address.is_none() {
            r.subject = r.subject.clone().at(target.to_string());
        }
    }
    results
}

/// Whether the runner probes the address. With `--from-runner auto` it does when the address accepts
/// a connection, and also when a node does: an address announced on the nodes' network that the
/// runner cannot reach while it reaches the nodes is a failure to report, not a reason to skip.
pub(super) async fn runner_probes(session: &Session, target: SocketAddr) -> Result<(), String> {
    match session.options.from_runner {
        FromRunner::Never => return Err("--from-runner never".to_string()),
        FromRunner::Always => return Ok(()),
        FromRunner::Auto => {}
    }
    let quick = Duration::from_secs(1);
    let Err(unreached) = runner_probe::can_reach(target, quick).await else { return Ok(()) };
    let node = session.nodes.iter().filter(|n| n.ready).find_map(|n| n.internal_ips.first()?.parse::<IpAddr>().ok());
    let port = crate::checks::nodeport::node_port(session, manifests::NODEPORT_SERVICE).await;
    match (node, port) {
        (Some(ip), Ok(port)) => match runner_probe::can_reach(SocketAddr::new(ip, port), quick).await {
            Ok(()) => Ok(()),
            Err(e) => Err(format!("{unreached}, and the nodes are out of reach too ({e})")),
        },
        _ => Err(unreached),
    }
}

/// One source's attempts, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SourceVerdict {
    /// Every request answered, from every backend.
    Pass { answered: usize, backends: usize },
    /// Some requests failed or some backends never answered.
    Fail { answered: usize, requests: usize, missing: Vec<String>, failures: Vec<String> },
    /// The order did not come back (netcheck's own failure).
    Error(String),
}

fn judge_source(attempts: Result<Vec<Attempt>, String>, backends: &BTreeSet<String>) -> SourceVerdict {
    let attempts = match attempts {
        Ok(a) => a,
        Err(e) => return SourceVerdict::Error(e),
    };
    let answered: BTreeSet<String> =
        attempts.iter().filter_map(|a| a.outcome.identity()).map(|i| i.pod.clone()).collect();
    let ok = attempts.iter().filter(|a| a.outcome.identity().is_some()).count();
    let missing: Vec<String> = backends.difference(&answered).cloned().collect();
    if ok == attempts.len() && !attempts.is_empty() && missing.is_empty() {
        return SourceVerdict::Pass { answered: ok, backends: answered.len() };
    }
    let failures = attempts.iter().filter(|a| a.outcome.identity().is_none()).map(|a| a.outcome.label().to_string());
    let mut failures: Vec<String> = failures.collect();
    failures.sort();
    failures.dedup();
    SourceVerdict::Fail { answered: ok, requests: attempts.len(), missing, failures }
}

/// One result per source, with a diagnosis that tells the implementation's announcement (only the
/// runner fails) from a node's Service rules (some clients fail) and from the Service itself (all do).
/// `announcers` are the nodes the implementation says it announces the address from (may be empty).
fn place_failures(verdicts: &[(String, SourceVerdict)], ip: IpAddr, announcers: &[String]) -> Vec<CheckResult> {
    let failing: Vec<&str> =
        verdicts.iter().filter(|(_, v)| matches!(v, SourceVerdict::Fail { .. })).map(|(s, _)| s.as_str()).collect();
    let clients = verdicts.iter().filter(|(s, _)| s != RUNNER).count();
    let failing_clients = failing.iter().filter(|s| **s != RUNNER).count();
    verdicts
        .iter()
        .map(|(source, verdict)| {
            let subject = Subject::from_node(source);
            match verdict {
                SourceVerdict::Pass { answered, backends } => CheckResult::new(
                    REACHABLE,
                    Status::Pass,
                    subject,
                    format!("{answered}/{answered} requests answered, by all {backends} backends"),
                )
                .measure("answered", *answered)
                .measure("backends", *backends),
                SourceVerdict::Error(e) => CheckResult::new(REACHABLE, Status::Error, subject, e.clone()),
                SourceVerdict::Fail { answered, requests, missing, failures } => {
                    let mut message = format!("{answered}/{requests} requests answered");
                    if !failures.is_empty() {
                        message.push_str(&format!(" (failed: {})", failures.join(", ")));
                    }
                    if !missing.is_empty() && *answered > 0 {
                        message.push_str(&format!("; never answered by {}", missing.join(", ")));
                    }
                    let mut evidence = vec![format!("failing sources: {}", failing.join(", "))];
                    let (likely_cause, next_step) = if source == RUNNER && !announcers.is_empty() {
                        let nodes = announcers.join(", ");
                        evidence.push(format!("the implementation announces {ip} from node {nodes} (its events)"));
                        let own_client_fails = announcers.iter().any(|n| failing.contains(&n.as_str()));
                        let cause = if own_client_fails {
                            format!(
                                "node {nodes}, which the implementation announces {ip} from: its own client fails \
                                 too, so its Service rules (kube-proxy) drop what the announcement brings"
                            )
                        } else {
                            format!(
                                "the way {ip} is announced from node {nodes}: the implementation's speaker there, \
                                 or the Service rules on {nodes} for traffic from outside the cluster"
                            )
                        };
                        (cause, format!("check the speaker and kube-proxy on {nodes}"))
                    } else if source == RUNNER && failing_clients == 0 && clients > 0 {
                        (
                            format!(
                                "the LoadBalancer implementation's announcement of {ip} (every node's client \
                                 reaches it through kube-proxy, the runner does not): its speaker or cloud load \
                                 balancer, or the network between the runner and it"
                            ),
                            "check the implementation's speaker or cloud load balancer (MetalLB: the speaker \
                             pods and their logs; a cloud: the load balancer's health and backend pool)"
                                .to_string(),
                        )
                    } else if source != RUNNER && failing_clients < clients {
                        (
                            format!(
                                "node {source}'s rules for the load-balancer address (kube-proxy): other nodes \
                                 reach {ip}"
                            ),
                            format!("check kube-proxy on {source}"),
                        )
                    } else {
                        (
                            format!("service/{LOADBALANCER_SERVICE} itself: no source reaches every backend at {ip}"),
                            "check the Service's endpoints and the ClusterIP checks".to_string(),
                        )
                    };
                    let mut r = CheckResult::new(REACHABLE, Status::Fail, subject, message)
                        .measure("answered", *answered)
                        .measure("requests", *requests);
                    r.diagnosis = Some(Diagnosis { likely_cause, evidence, next_step: Some(next_step) });
                    r
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Identity, Outcome};

    fn answered(pod: &str) -> Attempt {
        let identity = Identity { pod: pod.into(), node: "n".into(), pod_ip: String::new(), client: String::new() };
        Attempt { target: "t".into(), start_ms: 0, elapsed_us: 1, retries: 0, outcome: Outcome::Answered { identity } }
    }

    fn timed_out() -> Attempt {
        Attempt { outcome: Outcome::Timeout, ..answered("x") }
    }

    #[test]
    fn a_source_passes_only_when_every_request_and_every_backend_answered() {
        let backends: BTreeSet<String> = ["s1", "s2"].map(String::from).into();
        let all = judge_source(Ok(vec![answered("s1"), answered("s2")]), &backends);
        assert_eq!(all, SourceVerdict::Pass { answered: 2, backends: 2 });
        assert!(matches!(judge_source(Ok(vec![answered("s1"), answered("s1")]), &backends),
            SourceVerdict::Fail { missing, .. } if missing == ["s2"]));
        assert!(matches!(
            judge_source(Ok(vec![answered("s1"), answered("s2"), timed_out()]), &backends),
            SourceVerdict::Fail { answered: 2, requests: 3, .. }
        ));
        assert!(
            matches!(judge_source(Ok(vec![]), &backends), SourceVerdict::Fail { requests: 0, .. }),
            "none is no pass"
        );
        assert!(matches!(judge_source(Err("lost".into()), &backends), SourceVerdict::Error(_)));
    }

    #[test]
    fn only_the_runner_failing_points_at_the_implementation_and_one_node_at_its_rules() {
        let ip: IpAddr = "10.250.0.200".parse().unwrap();
        let pass = SourceVerdict::Pass { answered: 3, backends: 3 };
        let fail = SourceVerdict::Fail { answered: 0, requests: 3, missing: vec![], failures: vec!["timeout".into()] };
        let runner_only =
            [("node-a".into(), pass.clone()), ("node-b".into(), pass.clone()), (RUNNER.into(), fail.clone())];
        let results = place_failures(&runner_only, ip, &[]);
        let runner = results.iter().find(|r| r.status == Status::Fail).unwrap();
        assert!(runner.diagnosis.as_ref().unwrap().likely_cause.contains("LoadBalancer implementation"));
        let results = place_failures(&runner_only, ip, &["node-b".to_string()]);
        let runner = results.iter().find(|r| r.status == Status::Fail).unwrap();
        assert!(runner.diagnosis.as_ref().unwrap().likely_cause.contains("announced from node node-b"));
        let one_node = [("node-a".into(), pass), ("node-b".into(), fail.clone()), (RUNNER.into(), fail)];
        let results = place_failures(&one_node, ip, &[]);
        let b = results.iter().find(|r| r.subject.source_node.as_deref() == Some("node-b")).unwrap();
        assert!(b.diagnosis.as_ref().unwrap().likely_cause.contains("node node-b's rules"), "{b:?}");
        let results = place_failures(&one_node, ip, &["node-b".to_string()]);
        let runner = results.iter().find(|r| r.subject.source_node.as_deref() == Some(RUNNER)).unwrap();
        assert!(runner.diagnosis.as_ref().unwrap().likely_cause.contains("its own client fails too"), "{runner:?}");
    }
}
