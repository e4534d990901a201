//! `endpoints/readiness-removal` and `endpoints/readiness-readd`: one server agent is switched not
//! ready (then ready again) by order while every client sends steady traffic through the ClusterIP
//! and asks DNS for the headless Service; three times are measured from the switch, on the runner's
//! clock: (a) the API lists the endpoint (not) ready, (b) each node's data plane stops (starts)
//! sending to it, (c) each node's DNS answer drops (regains) it.
//!
//! The data-plane and DNS timelines come from the agents' paced attempts: attempt i starts
//! `start_ms` after the agent began the order, which the runner places at its send time plus half an
//! order round trip (measured just before). The resolution is the sample interval plus that estimate.
//!
//! A DNS cache may serve the answer it had before the switch until that answer's TTL runs out
//! (CoreDNS's `cache 30` with `ttl 30` on kubeadm, kind and AKS), so (c) is allowed the largest TTL the
//! node was answered with on top of the propagation limit, and the DNS queries go on until the change
//! shows for `sustainedRequests` answers in a row or `maxDnsCacheMs` more has passed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::await_condition;

use serde::Deserialize;

use super::selected;
use crate::catalog::{CheckSpec, ParamSpec, int, millis, parses_into};
use crate::protocol::{
    Action, Attempt, DnsProbe, DnsQuery, HttpProbe, MAX_ATTEMPTS_PER_ORDER, OrderResult, PresenceWatch,
};
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::manifests::{ECHO_HTTP_PORT, HEADLESS_SERVICE};
use crate::runner::{AgentPod, Session, endpoints};
use crate::scenario::Scenario;

const REMOVAL: &str = "endpoints/readiness-removal";
const READD: &str = "endpoints/readiness-readd";
const UNREADY_AT_START: &str = "endpoints/unready-at-start";

/// The checks this round answers.
pub(crate) static SPECS: &[CheckSpec] = &[
    CheckSpec {
        id: REMOVAL,
        title: "A backend that turns not ready leaves the API, every node's data plane and DNS",
        description: "One server agent's readiness probe starts failing by order while every client sends paced \
                      requests through the ClusterIP and asks DNS for the headless Service. Measures, from the switch \
                      and per node: (a) the API lists the endpoint not ready, (b) the node's data plane stops sending \
                      to it for at least sustainedRequests answered requests, (c) the headless DNS answer drops it.",
        params: READINESS_PARAMS,
        parse_params: parses_into::<ReadinessParams>,
    },
    CheckSpec {
        id: READD,
        title: "A backend that turns ready again comes back everywhere",
        description: "The same agent turns ready again: the same three times, until the API lists it ready, it \
                      answers through the ClusterIP from every node, and the headless DNS answer has it again.",
        params: READINESS_PARAMS,
        parse_params: parses_into::<ReadinessParams>,
    },
    CheckSpec {
        id: UNREADY_AT_START,
        title: "A backend that starts not ready gets no traffic until it is ready",
        description: "A server agent is created with its readiness off: while it runs not ready, no request from \
                      any node reaches it through the ClusterIP; once switched ready, it is added (API, data plane, \
                      DNS times as for readiness-readd).",
        params: READINESS_PARAMS,
        parse_params: parses_into::<ReadinessParams>,
    },
];

/// Parameters of the readiness experiments (removal and re-add run as one experiment each).
const READINESS_PARAMS: &[ParamSpec] = &[
    millis("intervalMs", 5, 1_000, 20, "Pace of requests and DNS queries per client; the resolution of (b) and (c)."),
    int("sustainedRequests", 1, 10_000, 100, "Answered requests in a row without the removed pod that prove removal."),
    millis("maxApiMs", 100, 120_000, 4_000, "Limit for (a), from the switch (kubelet probe period 1 s included)."),
    millis("maxPropagationMs", 10, 120_000, 2_000, "Further limit for (b) and (c) beyond maxApiMs."),
    millis(
        "maxDnsCacheMs",
        0,
        300_000,
        30_000,
        "How long the cluster DNS may keep serving a cached answer: (c) may take the answer's TTL longer than \
         (b), up to this (CoreDNS as kubeadm, kind and AKS configure it: ttl 30, cache 30).",
    ),
];

/// The readiness experiments' parameters, as [`READINESS_PARAMS`] names them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReadinessParams {
    interval_ms: u64,
    sustained_requests: usize,
    max_api_ms: u64,
    max_propagation_ms: u64,
    max_dns_cache_ms: u64,
}
/// The pod of `endpoints/unready-at-start`.
const LATE_POD: &str = "netcheck-late";
/// Traffic while the late pod runs but is not ready, before the experiment's own lead.
const UNREADY_WINDOW: Duration = Duration::from_secs(2);

/// Traffic before the switch, so that the victim is seen in rotation first.
const LEAD: Duration = Duration::from_millis(1000);

/// The parameters of one experiment.
#[derive(Debug, Clone, Copy)]
struct Limits {
    interval: Duration,
    sustained: usize,
    max_api: Duration,
    max_propagation: Duration,
    max_dns_cache: Duration,
}

impl Limits {
    /// How long the clients send: the lead, the API limit, the propagation limit and the sustained
    /// window, so a healthy cluster converges well inside the traffic.
    fn traffic(&self) -> Duration {
        LEAD + self.max_api + self.max_propagation + self.interval * self.sustained as u32 + Duration::from_millis(500)
    }

    /// How long the clients may ask DNS: the traffic plus the longest a cache may hold the old answer.
    fn dns_window(&self) -> Duration {
        self.traffic() + self.max_dns_cache
    }
}

/// The number of paced requests that cover `window`, and their pace in ms: `interval`, or slower when
/// that many would not fit in one order's result ([`MAX_ATTEMPTS_PER_ORDER`]); a long window at a fine
/// pace is sampled more coarsely rather than cut short.
fn paced(window: Duration, interval: Duration) -> (u32, u64) {
    let interval_ms = (interval.as_millis() as u64)
        .max(1)
        .max((window.as_millis() as u64).div_ceil(u64::from(MAX_ATTEMPTS_PER_ORDER)));
    ((window.as_millis() as u64 / interval_ms) as u32, interval_ms)
}

/// Runs removal then re-add when either check is selected (re-add needs a removed endpoint, and the
/// victim must end ready for whatever runs next), and beside them the unready-at-start experiment: its
/// late pod is not the victim, and each experiment follows only its own pod's address, so neither
/// disturbs what the other measures while the DNS caches make both wait.
pub async fn run(session: &Session, scenario: &Scenario) -> Vec<CheckResult> {
    let unready = async {
        match selected(scenario, UNREADY_AT_START) {
            Some(check) => unready_at_start(session, limits_of(check)).await,
            None => Vec::new(),
        }
    };
    let (mut results, late) = tokio::join!(switch_back_and_forth(session, scenario), unready);
    results.extend(late);
    results
}

fn limits_of(check: &crate::scenario::SelectedCheck) -> Limits {
    let p: ReadinessParams = check.params.typed();
    Limits {
        interval: Duration::from_millis(p.interval_ms),
        sustained: p.sustained_requests,
        max_api: Duration::from_millis(p.max_api_ms),
        max_propagation: Duration::from_millis(p.max_propagation_ms),
        max_dns_cache: Duration::from_millis(p.max_dns_cache_ms),
    }
}

async fn switch_back_and_forth(session: &Session, scenario: &Scenario) -> Vec<CheckResult> {
    let Some(check) = selected(scenario, REMOVAL).or_else(|| selected(scenario, READD)) else { return vec![] };
    let limits = limits_of(check);
    let Some(victim) = session.agents.servers.first().cloned() else {
        return vec![CheckResult::new(REMOVAL, Status::Skip, Subject::default(), "no server agent to switch")];
    };
    let mut results = Vec::new();
    let removal = experiment(session, &victim, false, limits).await;
    if selected(scenario, REMOVAL).is_some() {
        results.extend(judge(REMOVAL, &victim, &removal, limits));
    }
    let readd = experiment(session, &victim, true, limits).await;
    if selected(scenario, READD).is_some() {
        results.extend(judge(READD, &victim, &readd, limits));
    }
    results
}

/// A server agent created not ready: while it stays so, no client may reach it through the ClusterIP;
/// once switched ready, the re-add times are measured as for `endpoints/readiness-readd`.
async fn unready_at_start(session: &Session, limits: Limits) -> Vec<CheckResult> {
    let subject = || Subject::default().named(format!("pod/{LATE_POD}"));
    let late = match start_late_pod(session).await {
        Ok(late) => late,
        Err(e) => {
            delete_late_pod(session).await;
            return vec![CheckResult::new(UNREADY_AT_START, Status::Error, subject(), e)];
        }
    };
    let http = HttpProbe {
        targets: vec![format!("{}:{ECHO_HTTP_PORT}", session.agents.cluster_ip)],
        path: "/".into(),
        attempts: paced(UNREADY_WINDOW, limits.interval).0,
        concurrency: 16,
        timeout_ms: 1000,
        interval_ms: paced(UNREADY_WINDOW, limits.interval).1,
        any_server: false,
        give_up_after: 0,
    };
    let late_ip = late.ip.as_str();
    // Per node: answers from the unready pod, or why the order brought nothing back.
    let while_unready: BTreeMap<String, Result<usize, String>> =
        join_all(session.agents.clients.iter().map(|(node, agent)| {
            let http = http.clone();
            async move {
                let r = session.channel.send(agent, Action::Http(http)).await;
                let reached = super::whole_attempts(r).map(|a| a.iter().filter(|a| answered_by(a, late_ip)).count());
                (node.clone(), reached)
            }
        }))
        .await
        .into_iter()
        .collect();
    let e = experiment(session, &late, true, limits).await;
    delete_late_pod(session).await;
    let mut results = judge(READD, &late, &e, limits);
    for r in &mut results {
        r.check = UNREADY_AT_START.into();
        let node = r.subject.source_node.clone().unwrap_or_default();
        let unready_answers = match while_unready.get(&node) {
            Some(Ok(n)) => *n,
            // No evidence from the unready window is not "0 answers".
            Some(Err(why)) => {
                *r = unready_window_lost(r, &format!("its traffic order did not come back: {why}"));
                continue;
            }
            None => {
                *r = unready_window_lost(r, "no traffic was sent from it");
                continue;
            }
        };
        let early = unready_answers
            + e.nodes.get(&node).map_or(0, |t| {
                t.requests.iter().filter(|(at, ip)| *at < 0 && ip.as_deref() == Some(late.ip.as_str())).count()
            });
        *r = r.clone().measure("answeredWhileUnready", early);
        if early > 0 {
            r.status = Status::Fail;
            r.message = format!("{LATE_POD} answered {early} requests from {node} before it was ready; {}", r.message);
            r.diagnosis = Some(Diagnosis {
                likely_cause: format!("the service proxy on {node} sends traffic to endpoints that are not ready"),
                evidence: vec![format!("{early} answers from {} while the API listed it not ready", late.ip)],
                next_step: Some(
                    "check which endpoints kube-proxy programs (notReadyAddresses must be left out)".into(),
                ),
            });
        }
    }
    results
}

/// The result for a node whose traffic during the unready window is unknown: an error, never a pass.
fn unready_window_lost(r: &CheckResult, why: &str) -> CheckResult {
    let mut lost = r.clone();
    lost.status = Status::Error;
    lost.message = format!("while {LATE_POD} was not ready, {why}; whether traffic reached it is unknown");
    lost.diagnosis = None;
    lost
}

fn answered_by(a: &Attempt, ip: &str) -> bool {
    a.outcome.identity().is_some_and(|i| i.pod_ip == ip)
}

/// Creates the not-ready server agent and waits until it runs (with an IP, its container started).
async fn start_late_pod(session: &Session) -> Result<AgentPod, String> {
    let pods: Api<Pod> = Api::namespaced(session.cluster.client.clone(), &session.namespace);
    let pod = crate::runner::manifests::unready_server_pod(&session.namespace, LATE_POD, &session.template);
    pods.create(&PostParams::default(), &pod).await.map_err(|e| format!("cannot create pod/{LATE_POD}: {e}"))?;
    let running = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()).is_some_and(|s| {
            s.pod_ip.is_some()
                && s.container_statuses
                    .iter()
                    .flatten()
                    .all(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
                && !s.container_statuses.as_ref().is_none_or(|c| c.is_empty())
        })
    };
    let pod = tokio::time::timeout(Duration::from_secs(60), await_condition(pods, LATE_POD, running))
        .await
        .map_err(|_| format!("pod/{LATE_POD} did not start within 60 s"))?
        .map_err(|e| format!("watching pod/{LATE_POD}: {e}"))?
        .ok_or_else(|| format!("pod/{LATE_POD} disappeared"))?;
    let status = pod.status.unwrap_or_default();
    Ok(AgentPod {
        pod: LATE_POD.into(),
        node: pod.spec.and_then(|s| s.node_name).unwrap_or_default(),
        ip: status.pod_ip.unwrap_or_default(),
    })
}

async fn delete_late_pod(session: &Session) {
    let pods: Api<Pod> = Api::namespaced(session.cluster.client.clone(), &session.namespace);
    pods.delete(LATE_POD, &DeleteParams::default()).await.ok();
}

/// What one switch produced.
struct Experiment {
    /// When the API showed the wanted state, from the switch; None: not within the limit.
    api: Option<Duration>,
    /// Per client node: the traffic and DNS timelines, already placed on the runner's clock.
    nodes: BTreeMap<String, NodeTimeline>,
    /// Error that stopped the experiment before it could observe anything.
    error: Option<String>,
}

#[derive(Default)]
struct NodeTimeline {
    /// (time from the switch, in ms — negative before it; the answering pod IP or None on failure).
    requests: Vec<(i64, Option<String>)>,
    /// (time from the switch in ms; whether the headless answer contained the victim's IP).
    dns: Vec<(i64, Option<bool>)>,
    /// The largest TTL the node's DNS answers carried, in seconds.
    dns_ttl_s: Option<u32>,
    delivery_ms: u64,
    failure: Option<String>,
}

async fn experiment(session: &Session, victim: &AgentPod, ready: bool, limits: Limits) -> Experiment {
    let ns = &session.namespace;
    let deliveries = delivery_estimates(session).await;
    let (attempts, http_interval_ms) = paced(limits.traffic(), limits.interval);
    let http = HttpProbe {
        targets: vec![format!("{}:{ECHO_HTTP_PORT}", session.agents.cluster_ip)],
        path: "/".into(),
        attempts,
        concurrency: 16,
        timeout_ms: 1000,
        interval_ms: http_interval_ms,
        any_server: false,
        give_up_after: 0,
    };
    let headless = crate::checks::dns_expect::fqdn(&[HEADLESS_SERVICE, ns, "svc"], &session.options.cluster_domain);
    let dns = DnsProbe {
        queries: vec![DnsQuery { name: headless, record_type: "A".into(), server: None, tcp: false }],
        attempts: paced(limits.dns_window(), limits.interval).0,
        timeout_ms: 1000,
        interval_ms: paced(limits.dns_window(), limits.interval).1,
        until_answered_ms: None,
        until_presence: Some(PresenceWatch {
            record: victim.ip.clone(),
            present: ready,
            sustained: limits.sustained as u32,
        }),
    };
    // The DNS sends of a query go one after another: when they time out, the schedule slips, and the
    // agent stops at the window's end (plus a timeout or two) with what it saw.
    let dns_deadline = limits.dns_window() + Duration::from_secs(3);
    let traffic = session.agents.clients.iter().map(|(node, agent)| {
        let (http, dns) = (http.clone(), dns.clone());
        async move {
            let sent = Instant::now();
            let (h, d) = tokio::join!(
                session.channel.send(agent, Action::Http(http)),
                session.channel.send_within(agent, Action::Dns(dns), dns_deadline),
            );
            (node.clone(), sent, h, d)
        }
    });
    let switch = async {
        tokio::time::sleep(LEAD).await;
        let at = Instant::now();
        if let Err(e) = session.channel.send(victim, Action::SetReady { ready }).await {
            return (at, Err(format!("the victim {} did not take the readiness order: {e}", victim.pod)));
        }
        let seen = endpoints::watch_until_ready_is(
            &session.cluster,
            ns,
            crate::runner::manifests::ECHO_SERVICE,
            &victim.ip,
            ready,
            limits.max_api + limits.max_propagation,
        )
        .await;
        match seen {
            Ok(seen) => (at, Ok(seen.map(|t| t.duration_since(at)))),
            Err(e) => (at, Err(format!("cannot follow the endpoints of the echo Service: {e}"))),
        }
    };
    let (sends, (switched_at, api)) = tokio::join!(join_all(traffic), switch);
    let api = match api {
        Ok(api) => api,
        Err(e) => return Experiment { api: None, nodes: BTreeMap::new(), error: Some(e) },
    };
    let mut nodes = BTreeMap::new();
    for (node, sent, h, d) in sends {
        let delivery_ms = deliveries.get(&node).copied().unwrap_or(0);
        let base = |a: &Attempt| signed_ms(sent, switched_at) + delivery_ms as i64 + a.start_ms as i64;
        let mut t = NodeTimeline { delivery_ms, ..Default::default() };
        match (h, d) {
            (Ok(h), Ok(d)) => {
                t.requests = timeline(&h, |a| a.outcome.identity().map(|i| i.pod_ip.clone()), base);
                t.dns = timeline(&d, |a| a.outcome.records().map(|r| r.contains(&victim.ip)), base);
                t.dns_ttl_s = d.attempts.iter().filter_map(|a| a.outcome.ttl_s()).max();
            }
            (Err(e), _) | (_, Err(e)) => t.failure = Some(e.to_string()),
        }
        nodes.insert(node, t);
    }
    Experiment { api, nodes, error: None }
}

fn timeline<T>(r: &OrderResult, value: impl Fn(&Attempt) -> T, at: impl Fn(&Attempt) -> i64) -> Vec<(i64, T)> {
    let mut out: Vec<(i64, T)> = r.attempts.iter().map(|a| (at(a), value(a))).collect();
    out.sort_by_key(|(t, _)| *t);
    out
}

/// Milliseconds from `b` to `a`, negative when `a` is earlier.
fn signed_ms(a: Instant, b: Instant) -> i64 {
    if a >= b { a.duration_since(b).as_millis() as i64 } else { -(b.duration_since(a).as_millis() as i64) }
}

/// Half the round trip of an empty order, per client: where the agent's order clock starts.
async fn delivery_estimates(session: &Session) -> BTreeMap<String, u64> {
    let per_client = session.agents.clients.iter().map(|(node, agent)| async move {
        let empty = HttpProbe {
            targets: vec![],
            path: "/".into(),
            attempts: 0,
            concurrency: 1,
            timeout_ms: 1,
            interval_ms: 0,
            any_server: false,
            give_up_after: 0,
        };
        let start = Instant::now();
        let r = session.channel.send(agent, Action::Http(empty)).await;
        (node.clone(), r.map(|_| start.elapsed().as_millis() as u64 / 2).unwrap_or(0))
    });
    join_all(per_client).await.into_iter().collect()
}

/// Removal: ms from the switch until the victim stopped answering, if it then stayed away for at
/// least `sustained` answered requests. Re-add: ms until it first answered again.
fn data_plane_ms(requests: &[(i64, Option<String>)], victim: &str, ready: bool, sustained: usize) -> DataPlane {
    let after: Vec<&(i64, Option<String>)> = requests.iter().filter(|(t, _)| *t >= 0).collect();
    let by_victim = |entry: &&(i64, Option<String>)| entry.1.as_deref() == Some(victim);
    if ready {
        return match after.iter().copied().find(by_victim) {
            Some((t, _)) => DataPlane::At(*t as u64),
            None => DataPlane::Never,
        };
    }
    let last_victim = after.iter().rposition(by_victim);
    let rest = &after[last_victim.map_or(0, |i| i + 1)..];
    let answered_since = rest.iter().filter(|(_, ip)| ip.is_some()).count();
    if answered_since < sustained {
        return DataPlane::NotSustained { answered_since, last_victim_ms: last_victim.map(|i| after[i].0) };
    }
    DataPlane::At(rest.first().map_or(0, |(t, _)| (*t).max(0) as u64))
}

#[derive(Debug, PartialEq)]
enum DataPlane {
    At(u64),
    Never,
    NotSustained { answered_since: usize, last_victim_ms: Option<i64> },
}

/// Removal: ms until every later DNS answer lacked the victim; re-add: until the first that had it,
/// after one that lacked it (an answer that never lacked it was cached from before: it times nothing).
fn dns_ms(answers: &[(i64, Option<bool>)], ready: bool) -> Option<u64> {
    // A failed query proves nothing either way: only answers count.
    let after: Vec<&(i64, Option<bool>)> = answers.iter().filter(|(t, has)| *t >= 0 && has.is_some()).collect();
    if ready {
        let first_without = answers.iter().position(|(_, has)| *has == Some(false))?;
        return answers[first_without..].iter().find(|(t, has)| *t >= 0 && *has == Some(true)).map(|(t, _)| *t as u64);
    }
    let last_with = after.iter().rposition(|(_, has)| *has == Some(true));
    let next = match last_with {
        None => after.first(),
        Some(i) => after.get(i + 1),
    };
    next.map(|(t, _)| *t as u64)
}

fn judge(check: &str, victim: &AgentPod, e: &Experiment, limits: Limits) -> Vec<CheckResult> {
    let ready = check == READD;
    let verb = if ready { "ready again" } else { "not ready" };
    let subject = |node: &str| Subject::from_node(node).named(format!("pod/{}", victim.pod)).at(victim.ip.clone());
    if let Some(error) = &e.error {
        return vec![CheckResult::new(
            check,
            Status::Error,
            Subject::default().named(format!("pod/{}", victim.pod)),
            error.clone(),
        )];
    }
    let Some(api) = e.api else {
        let cause = if ready {
            "the API never marked the endpoint ready again"
        } else {
            "the API never marked the endpoint not ready"
        };
        let mut r = CheckResult::new(
            check,
            Status::Fail,
            Subject::default().named(format!("pod/{}", victim.pod)).at(victim.ip.clone()),
            format!(
                "{cause} within {} ms of the readiness switch",
                (limits.max_api + limits.max_propagation).as_millis()
            ),
        );
        r.diagnosis = Some(Diagnosis {
            likely_cause: "the endpoints controller (kube-controller-manager) or the kubelet's readiness report".into(),
            evidence: vec![format!("{} was switched {verb} by order; its Endpoints never followed", victim.pod)],
            next_step: Some("check kube-controller-manager and the kubelet on the pod's node".into()),
        });
        return vec![r];
    };
    let api_ms = api.as_millis() as u64;
    let limit_ms = (limits.max_api + limits.max_propagation).as_millis() as u64;
    e.nodes
        .iter()
        .map(|(node, t)| {
            if let Some(f) = &t.failure {
                return CheckResult::new(check, Status::Error, subject(node), f.clone());
            }
            let plane = data_plane_ms(&t.requests, &victim.ip, ready, limits.sustained);
            let dns = dns_ms(&t.dns, ready);
            // A cache may keep the answer from before the switch for up to its TTL.
            let dns_limit_ms = limit_ms + u64::from(t.dns_ttl_s.unwrap_or(0)) * 1000;
            let listed_throughout = ready && !t.dns.is_empty() && t.dns.iter().all(|(_, has)| *has != Some(false));
            let failed = t.requests.iter().filter(|(_, ip)| ip.is_none()).count();
            let seen_before = t.requests.iter().any(|(at, ip)| *at < 0 && ip.as_deref() == Some(victim.ip.as_str()));
            let mut problems = Vec::new();
            if api > limits.max_api {
                problems.push(format!("the API took {api_ms} ms (limit {} ms)", limits.max_api.as_millis()));
            }
            match &plane {
                DataPlane::At(ms) if *ms <= limit_ms => {}
                DataPlane::At(ms) => problems.push(format!("the data plane took {ms} ms (limit {limit_ms} ms)")),
                DataPlane::Never => problems.push(format!("{} never answered through the ClusterIP again", victim.pod)),
                DataPlane::NotSustained { answered_since, last_victim_ms } => problems.push(format!(
                    "{} still answered at +{} ms; only {answered_since} answered requests after it (need {})",
                    victim.pod,
                    last_victim_ms.unwrap_or(0),
                    limits.sustained
                )),
            }
            let ttl_note = t.dns_ttl_s.map_or(String::new(), |s| format!(", the answers' TTL {s} s included"));
            match dns {
                Some(ms) if ms <= dns_limit_ms => {}
                Some(ms) => problems.push(format!("DNS took {ms} ms (limit {dns_limit_ms} ms{ttl_note})")),
                None if listed_throughout => problems.push(
                    "the headless DNS answer listed it throughout, also before it was switched ready: DNS never \
                     showed its removal"
                        .into(),
                ),
                None => problems.push(format!(
                    "the headless DNS answer never {} within {} ms{ttl_note}",
                    if ready { "regained it" } else { "dropped it" },
                    limits.dns_window().saturating_sub(LEAD).as_millis()
                )),
            }
            if !ready && !seen_before {
                problems.push(format!("{} never answered before the switch: nothing to remove", victim.pod));
            }
            let plane_text = match &plane {
                DataPlane::At(ms) => format!("{ms} ms"),
                _ => "never".into(),
            };
            let dns_text = dns.map_or("never".into(), |ms| format!("{ms} ms"));
            let summary = format!("API {api_ms} ms, data plane {plane_text}, DNS {dns_text} after the switch");
            let status = if problems.is_empty() { Status::Pass } else { Status::Fail };
            let message = if problems.is_empty() { summary } else { format!("{}; {summary}", problems.join("; ")) };
            let mut r = CheckResult::new(check, status, subject(node), message)
                .measure("apiMs", api_ms)
                .measure("failedRequests", failed)
                .measure("requests", t.requests.len())
                .measure("sampleIntervalMs", paced(limits.traffic(), limits.interval).1)
                .measure("deliveryEstimateMs", t.delivery_ms);
            if let DataPlane::At(ms) = plane {
                r = r.measure("dataPlaneMs", ms);
            }
            if let Some(ms) = dns {
                r = r.measure("dnsMs", ms);
            }
            if let Some(ttl) = t.dns_ttl_s {
                r = r.measure("dnsTtlS", ttl);
            }
            if status == Status::Fail {
                let (cause, next) = if matches!(plane, DataPlane::At(ms) if ms <= limit_ms) {
                    ("the cluster DNS's view of the endpoints".to_string(), "check the DNS server's watch of the API")
                } else {
                    (
                        format!("the service proxy (kube-proxy) on {node}"),
                        "check kube-proxy's logs and sync period on that node",
                    )
                };
                r.diagnosis = Some(Diagnosis { likely_cause: cause, evidence: problems, next_step: Some(next.into()) });
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reqs(items: &[(i64, Option<&str>)]) -> Vec<(i64, Option<String>)> {
        items.iter().map(|(t, ip)| (*t, ip.map(String::from))).collect()
    }

    #[test]
    fn a_long_window_at_a_fine_pace_is_sampled_more_coarsely_to_fit_one_order() {
        assert_eq!(paced(Duration::from_secs(10), Duration::from_millis(20)), (500, 20));
        let (attempts, interval_ms) = paced(Duration::from_secs(241), Duration::from_millis(5));
        assert!(attempts <= MAX_ATTEMPTS_PER_ORDER, "{attempts}");
        assert_eq!(interval_ms, 121);
        assert!(u64::from(attempts) * interval_ms >= 240_000, "the window stays covered");
    }

    #[test]
    fn removal_is_when_the_victim_stopped_answering_for_good() {
        let r = reqs(&[
            (-20, Some("v")),
            (0, Some("v")),
            (20, Some("a")),
            (40, Some("v")),
            (60, Some("a")),
            (80, Some("b")),
            (100, None),
            (120, Some("a")),
        ]);
        assert_eq!(data_plane_ms(&r, "v", false, 3), DataPlane::At(60));
        assert_eq!(
            data_plane_ms(&r, "v", false, 4),
            DataPlane::NotSustained { answered_since: 3, last_victim_ms: Some(40) },
            "failed requests do not count toward the sustained window"
        );
    }

    #[test]
    fn readd_is_the_first_answer_after_the_switch() {
        let r = reqs(&[(-20, Some("v")), (0, Some("a")), (20, None), (40, Some("v"))]);
        assert_eq!(data_plane_ms(&r, "v", true, 100), DataPlane::At(40));
        assert_eq!(data_plane_ms(&reqs(&[(0, Some("a"))]), "v", true, 100), DataPlane::Never);
    }

    #[test]
    fn dns_times_follow_the_last_and_first_answers() {
        let answers = vec![(-10, Some(true)), (0, Some(true)), (20, None), (40, Some(false)), (60, Some(false))];
        assert_eq!(dns_ms(&answers, false), Some(40), "a failed query is not proof that it dropped");
        assert_eq!(dns_ms(&[(0, Some(true)), (20, Some(false)), (40, None)], false), Some(20));
        let flapped = [(0, Some(false)), (20, Some(true)), (40, Some(false))];
        assert_eq!(dns_ms(&flapped, false), Some(40), "dropped for good at 40");
        assert_eq!(dns_ms(&[(0, Some(false)), (20, Some(true))], false), None, "came back: not dropped");
        assert_eq!(dns_ms(&[(0, Some(false)), (20, Some(true))], true), Some(20));
        let cached = [(-20, Some(true)), (0, Some(true)), (20, Some(true))];
        assert_eq!(dns_ms(&cached, true), None, "listed before the switch too: a cached answer times nothing");
        let dropped_then_back = [(-20, Some(false)), (0, None), (20, Some(false)), (40, Some(true))];
        assert_eq!(dns_ms(&dropped_then_back, true), Some(40));
    }

    #[test]
    fn an_unknown_unready_window_is_an_error_not_a_pass() {
        let passed = CheckResult::new(READD, Status::Pass, Subject::from_node("node-b"), "API 1 ms");
        let lost = unready_window_lost(&passed, "its traffic order did not come back: timed out");
        assert_eq!(lost.status, Status::Error);
        assert!(lost.message.contains("did not come back: timed out"), "{}", lost.message);
        assert_eq!(lost.subject, passed.subject);
    }

    #[test]
    fn signed_ms_is_negative_before_the_switch() {
        let a = Instant::now();
        let b = a + Duration::from_millis(30);
        assert_eq!(signed_ms(a, b), -30);
        assert_eq!(signed_ms(b, a), 30);
    }
}
