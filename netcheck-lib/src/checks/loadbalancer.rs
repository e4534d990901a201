//! `loadbalancer/provision` and `loadbalancer/reachable`: a `type: LoadBalancer` Service over the
//! server agents gets an ingress address from whatever implements LoadBalancers in the cluster (a
//! cloud's controller, MetalLB, cloud-provider-kind), and that address answers from the runner and
//! from every node's client, reaching every ready backend.
//!
//! The Service is created only when one of these checks runs (on a cloud it is a real load balancer).
//! A cluster without an implementation is not a failure: when nothing acts on the Service (no event,
//! no address) within `noControllerMs`, both checks skip and say so. An implementation that acts but
//! assigns no address within `timeoutMs` fails, quoting its own events.
//!
//! From inside the cluster, kube-proxy answers the ingress address itself, so the clients prove the
//! Service's rules on every node; only the runner's traffic travels the way the implementation
//! announces (ARP, BGP, a cloud's load balancer). The verdict tells the two apart.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Event, Service};
use kube::api::{Api, ListParams, PostParams};
use serde::Deserialize;

use super::nodeport::RUNNER;
use super::{params, runner_probe, selected};
use crate::catalog::{CheckSpec, int, millis, parses_into};
use crate::protocol::{Action, Attempt, HttpProbe, OrderResult};
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::channel::OrderFailure;
use crate::runner::manifests::{self, ECHO_HTTP_PORT, LOADBALANCER_SERVICE};
use crate::runner::{FromRunner, Session};
use crate::scenario::Scenario;

const PROVISION: &str = "loadbalancer/provision";
const REACHABLE: &str = "loadbalancer/reachable";

/// The checks this round answers.
pub(crate) static SPECS: &[CheckSpec] = &[
    CheckSpec {
        id: PROVISION,
        title: "A LoadBalancer Service gets an address",
        description: "A type LoadBalancer Service over the server agents gets an ingress address from the \
                      cluster's LoadBalancer implementation (provisionMs measured); a skip when nothing acts on \
                      it, a fail with the implementation's events when it acts but assigns none.",
        params: &[
            millis(
                "noControllerMs",
                500,
                600_000,
                5_000,
                "With no event and no address by then, the cluster has no LoadBalancer implementation: skip.",
            ),
            millis(
                "timeoutMs",
                1_000,
                3_600_000,
                60_000,
                "Limit for an implementation that acts to assign the address (a cloud may take minutes).",
            ),
        ],
        parse_params: parses_into::<ProvisionParams>,
    },
    CheckSpec {
        id: REACHABLE,
        title: "The LoadBalancer address answers and reaches every backend",
        description: "The ingress address answers from the runner (when it can reach it) and from every \
                      client, and the answers come from every ready server agent.",
        params: &[
            int("requests", 1, 2_000, 30, "Requests per source."),
            millis("timeoutMs", 1, 60_000, 1_000, "How long one request may take before it counts as failed."),
        ],
        parse_params: parses_into::<ReachableParams>,
    },
];

/// `loadbalancer/provision`'s parameters.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProvisionParams {
    no_controller_ms: u64,
    timeout_ms: u64,
}

/// `loadbalancer/reachable`'s parameters.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReachableParams {
    requests: u32,
    timeout_ms: u64,
}

/// What the wait for an ingress address saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Provisioning {
    /// The first ingress IP, when one was assigned.
    address: Option<String>,
    /// A hostname ingress (clouds that front the Service with a DNS name), when that is all there is.
    hostname: Option<String>,
    /// From creation until the address, or until the wait ended.
    waited_ms: u64,
    /// The Service's events, as `Type Reason: message` (from the implementation's controller).
    events: Vec<String>,
}

/// How far the wait got: what the checks that need the address are told.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ingress {
    /// The address to probe.
    Address(IpAddr),
    /// No address to probe, and why (the reason a dependent check skips with).
    None(String),
}

/// Runs the selected LoadBalancer checks.
pub async fn run(session: &Session, scenario: &Scenario) -> Vec<CheckResult> {
    if selected(scenario, PROVISION).is_none() && selected(scenario, REACHABLE).is_none() {
        return vec![];
    }
    let p: ProvisionParams = params(scenario, PROVISION);
    let subject = || Subject::default().named(format!("service/{LOADBALANCER_SERVICE}"));
    let seen = match provision(session, p).await {
        Ok(seen) => seen,
        Err(e) => return super::errors(SPECS, scenario, &e),
    };
    let (verdict, ingress) = judge_provision(&seen, p);
    let mut results = Vec::new();
    if selected(scenario, PROVISION).is_some() {
        results.push(CheckResult { subject: subject(), ..verdict });
    }
    if let Some(check) = selected(scenario, REACHABLE) {
        let r: ReachableParams = check.params.typed();
        match ingress {
            Ingress::Address(ip) => results.extend(reachable(session, ip, r).await),
            Ingress::None(why) => results.push(CheckResult::new(
                REACHABLE,
                Status::Skip,
                subject(),
                format!("no address to probe: {why}"),
            )),
        }
    }
    results
}

/// Creates the Service and waits for its address, reading its events as they come.
async fn provision(session: &Session, p: ProvisionParams) -> Result<Provisioning, String> {
    let (client, ns) = (session.cluster.client.clone(), session.namespace.as_str());
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let events: Api<Event> = Api::namespaced(client, ns);
    services
        .create(&PostParams::default(), &manifests::loadbalancer_service(ns))
        .await
        .map_err(|e| format!("creating service/{LOADBALANCER_SERVICE}: {e}"))?;
    let started = Instant::now();
    let about = ListParams::default().fields(&format!("involvedObject.name={LOADBALANCER_SERVICE}"));
    let (no_controller, limit) = (Duration::from_millis(p.no_controller_ms), Duration::from_millis(p.timeout_ms));
    loop {
        let svc = services.get(LOADBALANCER_SERVICE).await.map_err(|e| format!("reading the Service: {e}"))?;
        let ingress = svc.status.and_then(|s| s.load_balancer).and_then(|lb| lb.ingress).unwrap_or_default();
        let listed = events.list(&about).await.map_err(|e| format!("listing the Service's events: {e}"))?;
        let seen = Provisioning {
            address: ingress.iter().find_map(|i| i.ip.clone()),
            hostname: ingress.iter().find_map(|i| i.hostname.clone()),
            waited_ms: started.elapsed().as_millis() as u64,
            events: listed.items.iter().map(event_line).collect(),
        };
        let acted = !seen.events.is_empty() || seen.hostname.is_some();
        if seen.address.is_some() || started.elapsed() >= limit || (!acted && started.elapsed() >= no_controller) {
            return Ok(seen);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn event_line(e: &Event) -> String {
    let text = format!(
        "{} {}: {}",
        e.type_.as_deref().unwrap_or("Normal"),
        e.reason.as_deref().unwrap_or_default(),
        e.message.as_deref().unwrap_or_default()
    );
    crate::diagnose::read_only::cut(&text)
}

/// The provision verdict (without its subject), and what `reachable` may probe.
fn judge_provision(seen: &Provisioning, p: ProvisionParams) -> (CheckResult, Ingress) {
    let result = |status, message: String| CheckResult::new(PROVISION, status, Subject::default(), message);
    if let Some(address) = &seen.address {
        return match address.parse::<IpAddr>() {
            Ok(ip) => (
                result(Status::Pass, format!("ingress {address} after {} ms", seen.waited_ms))
                    .measure("provisionMs", seen.waited_ms),
                Ingress::Address(ip),
            ),
            Err(_) => {
                let why = format!("the implementation assigned {address:?}, which is not an IP address");
                (result(Status::Fail, why.clone()), Ingress::None(why))
            }
        };
    }
    if let Some(hostname) = &seen.hostname {
        let why = format!("the ingress is the hostname {hostname}, with no IP; netcheck probes IP ingresses only");
        return (result(Status::Pass, why.clone()).measure("provisionMs", seen.waited_ms), Ingress::None(why));
    }
    if seen.events.is_empty() {
        let why = format!(
            "no LoadBalancer implementation acted on service/{LOADBALANCER_SERVICE} within {} ms (no event, no \
             address): the cluster has none (kind needs cloud-provider-kind or MetalLB)",
            p.no_controller_ms
        );
        return (result(Status::Skip, why.clone()), Ingress::None(why));
    }
    let why = format!("the LoadBalancer implementation acted but assigned no address within {} ms", p.timeout_ms);
    let mut failed = result(Status::Fail, why.clone());
    failed.diagnosis = Some(Diagnosis {
        likely_cause: "the LoadBalancer implementation (its address pool, quota or cloud permissions)".into(),
        evidence: seen.events.iter().take(8).cloned().collect(),
        next_step: Some(format!(
            "read the implementation's events above (kubectl describe service/{LOADBALANCER_SERVICE}) and its \
             controller's log"
        )),
    });
    (failed, Ingress::None(why))
}

/// Probes the address from the runner and every client.
async fn reachable(session: &Session, ip: IpAddr, p: ReachableParams) -> Vec<CheckResult> {
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
    };
    let runner_ok = runner_probes(session, target).await;
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
        .map(|(node, r): (String, Result<OrderResult, OrderFailure>)| (node, super::whole_attempts(r)))
        .collect();
    if let Some(attempts) = runner_attempts {
        sources.push((RUNNER.into(), Ok(attempts)));
    }
    let verdicts: Vec<(String, SourceVerdict)> =
        sources.into_iter().map(|(source, r)| (source, judge_source(r, &backends))).collect();
    let mut results = place_failures(&verdicts, ip);
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
async fn runner_probes(session: &Session, target: SocketAddr) -> Result<(), String> {
    match session.options.from_runner {
        FromRunner::Never => return Err("--from-runner never".to_string()),
        FromRunner::Always => return Ok(()),
        FromRunner::Auto => {}
    }
    let quick = Duration::from_secs(1);
    let Err(unreached) = runner_probe::can_reach(target, quick).await else { return Ok(()) };
    let node = session.nodes.iter().filter(|n| n.ready).find_map(|n| n.internal_ips.first()?.parse::<IpAddr>().ok());
    let port = super::nodeport::node_port(session, manifests::NODEPORT_SERVICE).await;
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
fn place_failures(verdicts: &[(String, SourceVerdict)], ip: IpAddr) -> Vec<CheckResult> {
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
                    let (likely_cause, next_step) = if source == RUNNER && failing_clients == 0 && clients > 0 {
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
                    r.diagnosis = Some(Diagnosis {
                        likely_cause,
                        evidence: vec![format!("failing sources: {}", failing.join(", "))],
                        next_step: Some(next_step),
                    });
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

    const P: ProvisionParams = ProvisionParams { no_controller_ms: 5_000, timeout_ms: 60_000 };

    #[test]
    fn an_address_passes_with_its_time_and_is_what_reachable_probes() {
        let seen = Provisioning { address: Some("10.250.0.200".into()), waited_ms: 312, ..Default::default() };
        let (r, ingress) = judge_provision(&seen, P);
        assert_eq!(r.status, Status::Pass);
        assert_eq!(r.measurements["provisionMs"], serde_json::json!(312));
        assert_eq!(ingress, Ingress::Address("10.250.0.200".parse().unwrap()));
    }

    #[test]
    fn nothing_acting_is_a_skip_that_the_other_checks_inherit() {
        let (r, ingress) = judge_provision(&Provisioning { waited_ms: 5_000, ..Default::default() }, P);
        assert_eq!(r.status, Status::Skip);
        assert!(r.message.contains("no LoadBalancer implementation acted") && r.message.contains("5000 ms"));
        assert!(matches!(ingress, Ingress::None(why) if why == r.message));
    }

    #[test]
    fn an_implementation_that_acts_but_assigns_nothing_fails_with_its_events() {
        let events =
            vec!["Warning AllocationFailed: Failed to allocate IP for \"ns/netcheck-lb\": no available IPs".into()];
        let (r, ingress) = judge_provision(&Provisioning { events, waited_ms: 60_000, ..Default::default() }, P);
        assert_eq!(r.status, Status::Fail);
        let d = r.diagnosis.unwrap();
        assert!(d.evidence[0].contains("AllocationFailed"), "{:?}", d.evidence);
        assert!(matches!(ingress, Ingress::None(_)));
        let bad = Provisioning { address: Some("lb.example".into()), ..Default::default() };
        assert_eq!(judge_provision(&bad, P).0.status, Status::Fail, "an address that is no IP is never probed");
    }

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
        let results = place_failures(&runner_only, ip);
        let runner = results.iter().find(|r| r.status == Status::Fail).unwrap();
        assert!(runner.diagnosis.as_ref().unwrap().likely_cause.contains("LoadBalancer implementation"));
        let one_node = [("node-a".into(), pass), ("node-b".into(), fail.clone()), (RUNNER.into(), fail)];
        let results = place_failures(&one_node, ip);
        let b = results.iter().find(|r| r.subject.source_node.as_deref() == Some("node-b")).unwrap();
        assert!(b.diagnosis.as_ref().unwrap().likely_cause.contains("node node-b's rules"), "{b:?}");
    }
}
