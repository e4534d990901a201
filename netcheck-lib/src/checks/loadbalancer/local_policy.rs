//! `loadbalancer/local-policy`: a LoadBalancer Service with `externalTrafficPolicy: Local` over one
//! pod of its own. A cloud load balancer sends traffic only to the nodes whose health-check node port
//! answers 200, and kube-proxy answers 200 exactly where the node has a ready local endpoint (503
//! elsewhere), with the count in `localEndpoints`. A health check that lies sends traffic to a node
//! that drops it, and nothing inside the cluster says so; this check compares every node's answer with
//! the API's endpoints, at rest and after the pod turns not ready and ready again, and times how long
//! every node takes to agree. The runner's requests must reach the pod with the runner's own address.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use serde::Deserialize;

use super::LOCAL_POLICY;
use super::health::{Health, disagreement};
use super::provision::Provisioning;
use crate::checks::nodeport::{RUNNER, targets};
use crate::checks::runner_probe;
use crate::protocol::{Action, HttpProbe};
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::deploy::pod_ready;
use crate::runner::manifests::{self, ECHO_HTTP_PORT, LOADBALANCER_LOCAL_POD, LOADBALANCER_LOCAL_SERVICE};
use crate::runner::{AgentPod, Session, endpoints};

/// `loadbalancer/local-policy`'s parameters.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct LocalPolicyParams {
    requests: u32,
    timeout_ms: u64,
    converge_ms: u64,
}

/// How long the pod may take to start and turn ready.
const POD_START_LIMIT: Duration = Duration::from_secs(60);
/// Pause between two looks at every node's health check.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// Creates the Service's one backend and waits until it is ready.
pub(super) async fn start_pod(session: &Session) -> Result<AgentPod, Box<CheckResult>> {
    let error = |message: String| {
        let subject = Subject::default().named(format!("pod/{LOADBALANCER_LOCAL_POD}"));
        Box::new(CheckResult::new(LOCAL_POLICY, Status::Error, subject, message))
    };
    let pods: Api<Pod> = Api::namespaced(session.cluster.client.clone(), &session.namespace);
    let pod = manifests::loadbalancer_local_pod(&session.namespace, &session.template);
    pods.create(&PostParams::default(), &pod)
        .await
        .map_err(|e| error(format!("cannot create pod/{LOADBALANCER_LOCAL_POD}: {e}")))?;
    let ready = |p: Option<&Pod>| p.is_some_and(pod_ready);
    let pod = tokio::time::timeout(POD_START_LIMIT, await_condition(pods, LOADBALANCER_LOCAL_POD, ready))
        .await
        .map_err(|_| {
            error(format!("pod/{LOADBALANCER_LOCAL_POD} was not ready within {} s", POD_START_LIMIT.as_secs()))
        })?
        .map_err(|e| error(format!("watching pod/{LOADBALANCER_LOCAL_POD}: {e}")))?
        .ok_or_else(|| error(format!("pod/{LOADBALANCER_LOCAL_POD} disappeared")))?;
    Ok(AgentPod {
        pod: LOADBALANCER_LOCAL_POD.into(),
        node: pod.spec.and_then(|s| s.node_name).unwrap_or_default(),
        ip: pod.status.and_then(|s| s.pod_ip).unwrap_or_default(),
    })
}

/// One look at the API and at every node's health check.
#[derive(Debug, Clone, Default)]
struct Look {
    /// The pod's readiness in the Service's endpoints (None: not listed).
    api_ready: Option<bool>,
    /// Per node: ready endpoints the API lists there, and the health check's answer.
    nodes: BTreeMap<String, (u64, Health)>,
}

/// The nodes' health checks against the API, through one order to the prober.
async fn look(
    session: &Session,
    prober: &AgentPod,
    targets: &[(String, SocketAddr)],
    timeout_ms: u64,
) -> Result<Look, String> {
    let probe = HttpProbe {
        targets: targets.iter().map(|(_, a)| a.to_string()).collect(),
        path: "/".into(),
        attempts: 1,
        concurrency: targets.len().max(1) as u32,
        timeout_ms,
        interval_ms: 0,
        any_server: true,
        keep_body: true,
        give_up_after: 0,
        until_answers: None,
    };
    let (answers, listed) = tokio::join!(
        session.channel.send(prober, Action::Http(probe)),
        endpoints::of_service(&session.cluster, &session.namespace, LOADBALANCER_LOCAL_SERVICE)
    );
    let attempts = crate::checks::whole_attempts(answers)?;
    let listed = listed.map_err(|e| e.to_string())?;
    let api_ready = listed.iter().find(|e| e.pod.as_deref() == Some(LOADBALANCER_LOCAL_POD)).map(|e| e.ready);
    let mut nodes = BTreeMap::new();
    for (node, address) in targets {
        let expected = listed.iter().filter(|e| e.ready && e.node.as_deref() == Some(node.as_str())).count() as u64;
        let target = address.to_string();
        let Some(attempt) = attempts.iter().find(|a| a.target == target) else {
            return Err(format!("the order to {} brought no answer for {target}", prober.pod));
        };
        nodes.insert(node.clone(), (expected, Health::of(&attempt.outcome)));
    }
    Ok(Look { api_ready, nodes })
}

/// One stretch of looking: until the API lists the pod `want_ready` and every node agrees, or the limit.
#[derive(Debug, Clone)]
struct Stretch {
    /// What the stretch waits for, as said in a message.
    label: &'static str,
    /// When the API first listed the pod as wanted, in ms from the stretch's start.
    api_ms: Option<u64>,
    /// Per node: when it agreed with the API for good (after the API changed), in ms from the start.
    agreed_ms: BTreeMap<String, u64>,
    /// The last look.
    last: Look,
}

async fn stretch(
    session: &Session,
    prober: &AgentPod,
    targets: &[(String, SocketAddr)],
    p: LocalPolicyParams,
    (label, want_ready): (&'static str, bool),
) -> Result<Stretch, String> {
    let started = Instant::now();
    let mut s = Stretch { label, api_ms: None, agreed_ms: BTreeMap::new(), last: Look::default() };
    loop {
        let look = look(session, prober, targets, p.timeout_ms).await?;
        let at = started.elapsed().as_millis() as u64;
        if look.api_ready == Some(want_ready) {
            s.api_ms.get_or_insert(at);
            for (node, (expected, seen)) in &look.nodes {
                match disagreement(*expected, seen) {
                    None => {
                        s.agreed_ms.entry(node.clone()).or_insert(at);
                    }
                    Some(_) => {
                        s.agreed_ms.remove(node);
                    }
                }
            }
        }
        s.last = look;
        let all_agree = s.agreed_ms.len() == targets.len();
        if all_agree || started.elapsed() >= Duration::from_millis(p.converge_ms) {
            return Ok(s);
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// Runs the check on the pod's Service, whose address is `ip`.
pub(super) async fn local_policy(
    session: &Session,
    pod: &AgentPod,
    ip: IpAddr,
    seen: &Provisioning,
    p: LocalPolicyParams,
) -> Vec<CheckResult> {
    let service = || Subject::default().named(format!("service/{LOADBALANCER_LOCAL_SERVICE}"));
    let error = |message: String| vec![CheckResult::new(LOCAL_POLICY, Status::Error, service(), message)];
    let Some(port) = seen.health_check_node_port else {
        return error(
            "the API server allocated no healthCheckNodePort to the externalTrafficPolicy Local Service".into(),
        );
    };
    let (nodes, mut results) = targets(&session.nodes, LOCAL_POLICY);
    // One address per node: a cloud load balancer probes a node's primary address.
    let mut per_node: Vec<(String, SocketAddr)> = Vec::new();
    for t in nodes {
        if !per_node.iter().any(|(n, _)| *n == t.node) {
            per_node.push((t.node.clone(), SocketAddr::new(t.ip, port)));
        }
    }
    let Some(prober) = session.agents.clients.values().next() else {
        return error("no client agent runs to ask the nodes' health checks".into());
    };
    if per_node.is_empty() {
        return error("no node has an address to ask its health check at".into());
    }
    let mut stretches = Vec::new();
    let switches =
        [("at rest", true), ("after the pod turned not ready", false), ("after it turned ready again", true)];
    for (i, (label, ready)) in switches.into_iter().enumerate() {
        if i > 0
            && let Err(e) = session.channel.send(pod, Action::SetReady { ready }).await
        {
            return error(format!("{} did not take the readiness order: {e}", pod.pod));
        }
        let s = match stretch(session, prober, &per_node, p, (label, ready)).await {
            Ok(s) => s,
            Err(e) => return error(format!("looking at the health checks {label}: {e}")),
        };
        let settled = s.agreed_ms.len() == per_node.len();
        stretches.push(s);
        if i == 0 {
            // The runner's requests while every node agrees that only the pod's node has an endpoint.
            results.extend(source_kept(session, ip, &pod.node, p).await);
        }
        if !settled {
            break; // Later switches would be judged against a state that never held.
        }
    }
    results.extend(judge_nodes(&per_node, &stretches, pod, prober, p));
    results
}

/// One result per node: its health check agreed with the API in every stretch, and when.
fn judge_nodes(
    per_node: &[(String, SocketAddr)],
    stretches: &[Stretch],
    pod: &AgentPod,
    prober: &AgentPod,
    p: LocalPolicyParams,
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    let switched = ["notReadyMs", "readyAgainMs"];
    for (node, address) in per_node {
        let subject = Subject::from_node(&prober.node).to_node(node).at(address.to_string());
        let mut said = Vec::new();
        let mut verdict = None;
        for (i, s) in stretches.iter().enumerate() {
            let (expected, seen) = s.last.nodes.get(node).cloned().unwrap_or((0, Health::Silent("not asked".into())));
            match (s.api_ms, s.agreed_ms.get(node)) {
                (None, _) => {
                    verdict = Some((
                        format!(
                            "{}: the API did not list pod/{} {} within {} ms, so the health check could not be \
                             judged",
                            s.label,
                            pod.pod,
                            if i == 1 { "not ready" } else { "ready" },
                            p.converge_ms
                        ),
                        "the kubelet's readiness probe or the endpoints controller (the API never showed the change)"
                            .to_string(),
                    ));
                    break;
                }
                (Some(_), None) => {
                    let why = disagreement(expected, &seen).unwrap_or_else(|| "agreed too late".into());
                    let cause = match &seen {
                        Health::Silent(label) if label.contains("refused") => format!(
                            "nothing serves the health-check node port on {node}: kube-proxy there is not running \
                             or does not serve health checks"
                        ),
                        Health::Silent(_) => format!(
                            "node {node}'s health-check node port is dropped (a firewall on the node or the path to \
                             it) or kube-proxy there hangs"
                        ),
                        _ => format!(
                            "kube-proxy on {node} serves a health check that disagrees with the API: a cloud load \
                             balancer would send traffic to a node that drops it, or keep it from one with a backend"
                        ),
                    };
                    verdict = Some((format!("{} (waited {} ms): {why}", s.label, p.converge_ms), cause));
                    break;
                }
                (Some(_), Some(ms)) => {
                    said.push(format!("{} {}", s.label, seen.describe()));
                    if i > 0 {
                        said.last_mut().expect("pushed").push_str(&format!(" after {ms} ms"));
                    }
                }
            }
        }
        let mut r = match verdict {
            None if said.len() == 3 => CheckResult::new(
                LOCAL_POLICY,
                Status::Pass,
                subject,
                format!("health check as the API's endpoints: {}", said.join("; ")),
            ),
            None => {
                let stopped_by: Vec<&str> = per_node
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .filter(|n| stretches.last().is_some_and(|s| !s.agreed_ms.contains_key(*n)))
                    .collect();
                CheckResult::new(
                    LOCAL_POLICY,
                    Status::Skip,
                    subject,
                    format!(
                        "agreed with the API {} but was not judged after every switch: the check stopped when {} did not agree",
                        said.join("; "),
                        stopped_by.join(", ")
                    ),
                )
            }
            Some((message, likely_cause)) => {
                let mut r = CheckResult::new(LOCAL_POLICY, Status::Fail, subject, message);
                let mut evidence = said.clone();
                evidence.push(format!("pod/{} runs on {}", pod.pod, pod.node));
                r.diagnosis = Some(Diagnosis {
                    likely_cause,
                    evidence,
                    next_step: Some(format!(
                        "curl http://{address}/ from a node, and check kube-proxy on {node} (its log and \
                         --healthz-bind-address)"
                    )),
                });
                r
            }
        };
        for (s, name) in stretches.iter().skip(1).zip(switched) {
            if let Some(ms) = s.agreed_ms.get(node) {
                r = r.measure(name, *ms);
            }
        }
        results.push(r);
    }
    results
}

/// The runner's requests reach the pod with the runner's own address (when the runner probes at all).
async fn source_kept(session: &Session, ip: IpAddr, pod_node: &str, p: LocalPolicyParams) -> Vec<CheckResult> {
    let target = SocketAddr::new(ip, ECHO_HTTP_PORT as u16);
    let subject = Subject::from_node(RUNNER).at(target.to_string());
    if let Err(reason) = super::reachable::runner_probes(session, target).await {
        return vec![CheckResult::new(
            LOCAL_POLICY,
            Status::Skip,
            subject,
            format!("not probing from the runner: {reason}"),
        )];
    }
    let mut answers = Vec::new();
    for _ in 0..p.requests {
        answers.push(runner_probe::http_get(target, Duration::from_millis(p.timeout_ms)).await);
    }
    vec![judge_source_kept(&answers, subject, pod_node)]
}

fn judge_source_kept(
    answers: &[(crate::protocol::Attempt, Option<SocketAddr>)],
    subject: Subject,
    pod_node: &str,
) -> CheckResult {
    let requests = answers.len();
    let mut kept = 0;
    let mut replaced = Vec::new();
    let mut failed = Vec::new();
    for (attempt, local) in answers {
        match (attempt.outcome.identity(), local) {
            (Some(identity), Some(local)) => {
                let seen = identity.client.parse::<SocketAddr>().map(|a| a.ip()).ok();
                if seen == Some(local.ip()) {
                    kept += 1;
                } else {
                    replaced.push(format!("{} saw {} instead of {}", identity.pod, identity.client, local.ip()));
                }
            }
            _ => failed.push(attempt.outcome.label().to_string()),
        }
    }
    failed.sort();
    failed.dedup();
    replaced.dedup();
    if kept == requests && requests > 0 {
        return CheckResult::new(
            LOCAL_POLICY,
            Status::Pass,
            subject,
            format!("{kept}/{requests} requests answered, each seeing the runner's own address"),
        )
        .measure("answered", kept);
    }
    let (message, likely_cause) = if !replaced.is_empty() {
        (
            format!("the client's address was replaced in {}/{requests} answers: {}", replaced.len(), replaced[0]),
            "source NAT on the way in: the node that received the traffic masqueraded it although the policy is \
             Local (kube-proxy), or a NAT between the runner and the load balancer"
                .to_string(),
        )
    } else {
        (
            format!("{kept}/{requests} requests answered (failed: {})", failed.join(", ")),
            format!(
                "with externalTrafficPolicy Local only node {pod_node}, which runs pod/{LOADBALANCER_LOCAL_POD}, may \
                 take the traffic: the implementation announces the address from another node, or kube-proxy on \
                 {pod_node} drops it"
            ),
        )
    };
    let mut r = CheckResult::new(LOCAL_POLICY, Status::Fail, subject, message).measure("answered", kept);
    r.diagnosis = Some(Diagnosis {
        likely_cause,
        evidence: replaced.into_iter().take(3).collect(),
        next_step: Some(
            "check which node the implementation announces the address from (MetalLB: the Service's \
                         nodeAssigned event)"
                .into(),
        ),
    });
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Attempt, Identity, Outcome};

    fn http(status: u16, body: &str) -> Health {
        Health::of(&Outcome::Http { status, body: Some(body.into()) })
    }

    fn stretch_of(label: &'static str, api_ms: Option<u64>, nodes: &[(&str, u64, Health, Option<u64>)]) -> Stretch {
        Stretch {
            label,
            api_ms,
            agreed_ms: nodes.iter().filter_map(|(n, _, _, at)| Some((n.to_string(), (*at)?))).collect(),
            last: Look {
                api_ready: None,
                nodes: nodes.iter().map(|(n, e, h, _)| (n.to_string(), (*e, h.clone()))).collect(),
            },
        }
    }

    fn agent(node: &str) -> AgentPod {
        AgentPod { pod: LOADBALANCER_LOCAL_POD.into(), node: node.into(), ip: "10.244.0.9".into() }
    }

    const P: LocalPolicyParams = LocalPolicyParams { requests: 10, timeout_ms: 1_000, converge_ms: 15_000 };

    #[test]
    fn every_node_passes_with_its_times_or_the_lying_one_is_named() {
        let per_node: Vec<(String, SocketAddr)> = vec![
            ("node-a".into(), "10.250.0.11:31000".parse().unwrap()),
            ("node-b".into(), "10.250.0.12:31000".parse().unwrap()),
        ];
        let (up, down) = (http(200, r#"{"localEndpoints":1}"#), http(503, r#"{"localEndpoints":0}"#));
        let healthy = [
            stretch_of("at rest", Some(0), &[("node-a", 1, up.clone(), Some(0)), ("node-b", 0, down.clone(), Some(0))]),
            stretch_of(
                "not ready",
                Some(900),
                &[("node-a", 0, down.clone(), Some(1300)), ("node-b", 0, down.clone(), Some(900))],
            ),
            stretch_of(
                "ready",
                Some(800),
                &[("node-a", 1, up.clone(), Some(1100)), ("node-b", 0, down.clone(), Some(800))],
            ),
        ];
        let results = judge_nodes(&per_node, &healthy, &agent("node-a"), &agent("node-b"), P);
        assert!(results.iter().all(|r| r.status == Status::Pass), "{results:#?}");
        assert_eq!(results[0].measurements["notReadyMs"], serde_json::json!(1300));
        assert_eq!(results[0].subject.target_node.as_deref(), Some("node-a"));

        let stale = [
            healthy[0].clone(),
            stretch_of(
                "not ready",
                Some(900),
                &[("node-a", 0, up.clone(), None), ("node-b", 0, down.clone(), Some(900))],
            ),
        ];
        let results = judge_nodes(&per_node, &stale, &agent("node-a"), &agent("node-b"), P);
        let a = &results[0];
        assert_eq!(a.status, Status::Fail);
        assert!(a.message.contains("200 with localEndpoints 1"), "{}", a.message);
        assert!(a.diagnosis.as_ref().unwrap().likely_cause.contains("kube-proxy on node-a"));
        assert_eq!(results[1].status, Status::Skip, "node-b was not judged after every switch: no pass");
        assert!(results[1].message.contains("when node-a did not agree"), "{}", results[1].message);

        let refused = [stretch_of(
            "at rest",
            Some(0),
            &[("node-a", 1, up, Some(0)), ("node-b", 0, Health::of(&Outcome::Refused), None)],
        )];
        let results = judge_nodes(&per_node, &refused, &agent("node-a"), &agent("node-b"), P);
        assert_eq!(results[1].status, Status::Fail);
        assert!(results[1].diagnosis.as_ref().unwrap().likely_cause.contains("nothing serves"));

        let api_stuck = [
            healthy[0].clone(),
            stretch_of("not ready", None, &[("node-a", 1, down.clone(), None), ("node-b", 0, down, None)]),
        ];
        let results = judge_nodes(&per_node, &api_stuck, &agent("node-a"), &agent("node-b"), P);
        assert!(results.iter().all(|r| r.status == Status::Fail && r.message.contains("the API did not list")));
    }

    fn answered(client: &str) -> (Attempt, Option<SocketAddr>) {
        let identity = Identity {
            pod: LOADBALANCER_LOCAL_POD.into(),
            node: "node-a".into(),
            pod_ip: "10.244.0.9".into(),
            client: client.into(),
        };
        let attempt = Attempt {
            target: "t".into(),
            start_ms: 0,
            elapsed_us: 1,
            retries: 0,
            outcome: Outcome::Answered { identity },
        };
        (attempt, Some("10.250.0.1:40000".parse().unwrap()))
    }

    #[test]
    fn the_runner_must_be_seen_with_its_own_address() {
        let subject = Subject::from_node(RUNNER);
        let kept = [answered("10.250.0.1:40000"), answered("10.250.0.1:40000")];
        assert_eq!(judge_source_kept(&kept, subject.clone(), "node-a").status, Status::Pass);
        let snat = [answered("10.250.0.11:5000")];
        let r = judge_source_kept(&snat, subject.clone(), "node-a");
        assert_eq!(r.status, Status::Fail);
        assert!(r.message.contains("replaced"), "{}", r.message);
        let (mut lost, _) = answered("x");
        lost.outcome = Outcome::Timeout;
        let r = judge_source_kept(&[(lost, None)], subject.clone(), "node-a");
        assert!(r.status == Status::Fail && r.message.contains("0/1"), "{}", r.message);
        assert!(r.diagnosis.unwrap().likely_cause.contains("only node node-a"));
        assert_eq!(judge_source_kept(&[], subject, "node-a").status, Status::Fail, "nothing sent is no pass");
    }
}
