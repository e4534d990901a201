//! `clusterip/session-affinity`, `clusterip/udp` and `service/no-endpoints`: how a Service behaves,
//! from every client agent.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

use super::selected;
use crate::catalog::{CheckSpec, int, millis, parses_into};
use crate::protocol::{Action, Attempt, HttpProbe, Outcome, UdpProbe};
use crate::report::{CheckResult, Status, Subject};
use crate::runner::Session;
use crate::runner::manifests::{AFFINITY_SERVICE, ECHO_HTTP_PORT, ECHO_SERVICE, ECHO_UDP_PORT, EMPTY_SERVICE};
use crate::scenario::Scenario;

const AFFINITY: &str = "clusterip/session-affinity";
const UDP: &str = "clusterip/udp";
const NO_ENDPOINTS: &str = "service/no-endpoints";

/// The checks this round answers.
pub(crate) static SPECS: &[CheckSpec] = &[
    CheckSpec {
        id: AFFINITY,
        title: "ClientIP session affinity pins a client to one backend",
        description: "With sessionAffinity ClientIP, every request of one client lands on one backend; \
                      with None, the same client's requests spread over several.",
        params: &[int("requests", 2, 1_000, 20, "Requests each client sends, one connection each.")],
        parse_params: parses_into::<AffinityParams>,
    },
    CheckSpec {
        id: UDP,
        title: "UDP through the ClusterIP from every node",
        description: "UDP request/response exchanges through the ClusterIP from every node; retries after a \
                      lost datagram are counted and reported as loss.",
        params: &[
            int("requests", 1, 1_000, 10, "Exchanges each client makes."),
            millis("timeoutMs", 1, 60_000, 500, "How long one try waits for the echo."),
            int("retries", 0, 10, 2, "Extra tries of an exchange after a timeout."),
        ],
        parse_params: parses_into::<UdpParams>,
    },
    CheckSpec {
        id: NO_ENDPOINTS,
        title: "A Service without endpoints is refused at once",
        description: "A ClusterIP whose selector matches nothing is actively rejected (connection refused), \
                      not left to time out.",
        params: &[millis("promptMs", 1, 60_000, 1_000, "A refusal must come within this time.")],
        parse_params: parses_into::<NoEndpointsParams>,
    },
];

/// `clusterip/session-affinity`'s parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AffinityParams {
    requests: u32,
}

/// `clusterip/udp`'s parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UdpParams {
    requests: u32,
    timeout_ms: u64,
    retries: u32,
}

/// `service/no-endpoints`' parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NoEndpointsParams {
    prompt_ms: u64,
}

/// Runs the selected checks of this module.
pub async fn run(session: &Session, scenario: &Scenario) -> Vec<CheckResult> {
    let mut results = Vec::new();
    if let Some(c) = selected(scenario, AFFINITY) {
        let p: AffinityParams = c.params.typed();
        results.extend(affinity(session, p.requests).await);
    }
    if let Some(c) = selected(scenario, UDP) {
        let p: UdpParams = c.params.typed();
        let probe = UdpProbe {
            targets: vec![format!("{}:{ECHO_UDP_PORT}", session.agents.cluster_ip)],
            attempts: p.requests,
            timeout_ms: p.timeout_ms,
            retries: p.retries,
        };
        results.extend(udp(session, &probe).await);
    }
    if let Some(c) = selected(scenario, NO_ENDPOINTS) {
        let p: NoEndpointsParams = c.params.typed();
        results.extend(no_endpoints(session, Duration::from_millis(p.prompt_ms)).await);
    }
    results
}

async fn cluster_ip(session: &Session, name: &str) -> Result<String, String> {
    crate::runner::services::read_cluster_ip(&session.cluster, &session.namespace, name).await
}

/// Sends one HTTP order to every client at once.
async fn http_from_every_client(
    session: &Session,
    target: &str,
    attempts: u32,
    timeout_ms: u64,
    interval_ms: u64,
) -> Vec<(String, Result<Vec<Attempt>, String>)> {
    let probe = HttpProbe {
        targets: vec![target.to_string()],
        path: "/".into(),
        attempts,
        concurrency: 4,
        timeout_ms,
        interval_ms,
        any_server: false,
        keep_body: false,
        give_up_after: 0,
        until_answers: None,
    };
    let results = session.order_every_client(|_| Action::Http(probe.clone())).await;
    results.into_iter().map(|(node, r)| (node, super::whole_attempts(r))).collect()
}

async fn affinity(session: &Session, requests: u32) -> Vec<CheckResult> {
    let (sticky_ip, spread_ip) =
        match (cluster_ip(session, AFFINITY_SERVICE).await, cluster_ip(session, ECHO_SERVICE).await) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return vec![CheckResult::new(AFFINITY, Status::Error, Subject::default(), e)],
        };
    let sticky_target = format!("{sticky_ip}:{ECHO_HTTP_PORT}");
    let spread_target = format!("{spread_ip}:{ECHO_HTTP_PORT}");
    let (sticky, spread) = tokio::join!(
        http_from_every_client(session, &sticky_target, requests, 2000, 0),
        http_from_every_client(session, &spread_target, requests, 2000, 0),
    );
    let servers = session.agents.servers.len();
    sticky
        .into_iter()
        .zip(spread)
        .map(|((node, sticky), (_, spread))| {
            let subject = Subject::from_node(&node).at(&sticky_target).named(format!("service/{AFFINITY_SERVICE}"));
            match (sticky, spread) {
                (Ok(sticky), Ok(spread)) => judge_affinity(subject, &sticky, &spread, servers),
                (Err(f), _) | (_, Err(f)) => CheckResult::new(AFFINITY, Status::Error, subject, f.to_string()),
            }
        })
        .collect()
}

fn backends(attempts: &[Attempt]) -> BTreeSet<String> {
    attempts.iter().filter_map(|a| a.outcome.identity()).map(|i| i.pod.clone()).collect()
}

fn judge_affinity(subject: Subject, sticky: &[Attempt], spread: &[Attempt], servers: usize) -> CheckResult {
    let pinned = backends(sticky);
    let spread_over = backends(spread);
    let answered = sticky.iter().filter(|a| a.outcome.identity().is_some()).count();
    let sticks = pinned.len() == 1 && answered == sticky.len();
    // With None, several backends must show up; a single backend cluster cannot show a spread.
    let spreads = servers < 2 || spread_over.len() >= 2;
    let status = if sticks && spreads { Status::Pass } else { Status::Fail };
    let message = match (sticks, spreads) {
        (true, true) => format!(
            "ClientIP: all {answered} requests on {}; None: spread over {} backends",
            pinned.iter().next().cloned().unwrap_or_default(),
            spread_over.len()
        ),
        (false, _) => {
            format!("ClientIP affinity broken: {answered}/{} answered, by {} backends", sticky.len(), pinned.len())
        }
        (true, false) => format!("without affinity all requests still reached only {} backend(s)", spread_over.len()),
    };
    CheckResult::new(AFFINITY, status, subject, message)
        .measure("affinityBackends", pinned.len())
        .measure("noAffinityBackends", spread_over.len())
}

async fn udp(session: &Session, probe: &UdpProbe) -> Vec<CheckResult> {
    session
        .order_every_client(|_| Action::Udp(probe.clone()))
        .await
        .into_iter()
        .map(|(node, r)| {
            let subject = Subject::from_node(&node).at(&probe.targets[0]).named(format!("service/{ECHO_SERVICE} udp"));
            match r {
                Err(f) => CheckResult::new(UDP, Status::Error, subject, f.to_string()),
                Ok(r) => super::capped_by_partial(judge_udp(subject, &r.attempts), &r),
            }
        })
        .collect()
}

fn judge_udp(subject: Subject, attempts: &[Attempt]) -> CheckResult {
    let answered = attempts.iter().filter(|a| a.outcome.identity().is_some()).count();
    let retries: u32 = attempts.iter().map(|a| a.retries).sum();
    let tries = attempts.len() as u32 + retries;
    let loss = if tries == 0 { 0.0 } else { f64::from(retries) / f64::from(tries) };
    let pass = answered == attempts.len() && !attempts.is_empty();
    let message = format!(
        "{answered}/{} exchanges answered, {retries} retries ({:.0}% datagram loss)",
        attempts.len(),
        loss * 100.0
    );
    CheckResult::new(UDP, if pass { Status::Pass } else { Status::Fail }, subject, message)
        .measure("answered", answered)
        .measure("retries", retries)
        .measure("loss", (loss * 1000.0).round() / 1000.0)
}

/// Time between the attempts of `service/no-endpoints`: the kernel's ICMP rate limit refills one token
/// a second per destination.
const REFUSAL_SPACING_MS: u64 = 1000;

async fn no_endpoints(session: &Session, prompt: Duration) -> Vec<CheckResult> {
    let ip = match cluster_ip(session, EMPTY_SERVICE).await {
        Ok(ip) => ip,
        Err(e) => return vec![CheckResult::new(NO_ENDPOINTS, Status::Error, Subject::default(), e)],
    };
    let target = format!("{ip}:{ECHO_HTTP_PORT}");
    let timeout_ms = (prompt.as_millis() as u64).max(1) * 3;
    // The settle wait's refusals may have spent the clients' ICMP tokens; one refills in a spacing.
    if let Some(refused) = session.settled.last_unanswered_at {
        tokio::time::sleep_until((refused + Duration::from_millis(REFUSAL_SPACING_MS)).into()).await;
    }
    // kube-proxy refuses with an ICMP error, and the kernel rate-limits those per destination (a token
    // a second, net.ipv4.icmp_ratelimit): attempts a second apart are each refused, a burst may not be.
    http_from_every_client(session, &target, 3, timeout_ms, REFUSAL_SPACING_MS)
        .await
        .into_iter()
        .map(|(node, r)| {
            let subject = Subject::from_node(&node).at(&target).named(format!("service/{EMPTY_SERVICE}"));
            match r {
                Err(f) => CheckResult::new(NO_ENDPOINTS, Status::Error, subject, f.to_string()),
                Ok(attempts) => judge_no_endpoints(subject, &attempts, prompt),
            }
        })
        .collect()
}

fn judge_no_endpoints(subject: Subject, attempts: &[Attempt], prompt: Duration) -> CheckResult {
    let refused_fast =
        attempts.iter().filter(|a| a.outcome == Outcome::Refused && a.elapsed_us <= prompt.as_micros() as u64).count();
    let slowest_ms = attempts.iter().map(|a| a.elapsed_us).max().unwrap_or(0) as f64 / 1000.0;
    let labels: BTreeSet<&str> = attempts.iter().map(|a| a.outcome.label()).collect();
    let pass = refused_fast == attempts.len() && !attempts.is_empty();
    let message = if pass {
        format!("refused at once ({} attempts, slowest {slowest_ms:.1} ms)", attempts.len())
    } else if refused_fast > 0 && labels.iter().all(|l| matches!(*l, "refused" | "timeout")) {
        format!(
            "expected an immediate refusal; got {} (slowest {slowest_ms:.0} ms): some refusals were lost, as when the node's kernel rate-limits the ICMP errors kube-proxy's REJECT sends (net.ipv4.icmp_ratelimit)",
            labels.iter().copied().collect::<Vec<_>>().join(", ")
        )
    } else {
        format!(
            "expected an immediate refusal; got {} (slowest {slowest_ms:.0} ms)",
            labels.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    CheckResult::new(NO_ENDPOINTS, if pass { Status::Pass } else { Status::Fail }, subject, message)
        .measure("slowestMs", crate::stats::round2(slowest_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Identity;

    fn by(pod: &str) -> Attempt {
        let identity = Identity { pod: pod.into(), node: "n".into(), pod_ip: "p".into(), client: String::new() };
        Attempt {
            target: "t".into(),
            start_ms: 0,
            elapsed_us: 900,
            retries: 0,
            outcome: Outcome::Answered { identity },
        }
    }

    fn ended(outcome: Outcome, elapsed_us: u64, retries: u32) -> Attempt {
        Attempt { target: "t".into(), start_ms: 0, elapsed_us, retries, outcome }
    }

    #[test]
    fn affinity_needs_one_backend_with_and_several_without() {
        let sticky = vec![by("a"); 5];
        let spread = vec![by("a"), by("b"), by("c")];
        assert_eq!(judge_affinity(Subject::default(), &sticky, &spread, 3).status, Status::Pass);
        let broken = vec![by("a"), by("b")];
        assert_eq!(judge_affinity(Subject::default(), &broken, &spread, 3).status, Status::Fail);
        assert_eq!(judge_affinity(Subject::default(), &sticky, &sticky, 3).status, Status::Fail);
    }

    #[test]
    fn udp_counts_retries_as_loss() {
        let attempts = vec![by("a"), Attempt { retries: 1, ..by("a") }];
        let r = judge_udp(Subject::default(), &attempts);
        assert_eq!(r.status, Status::Pass);
        assert_eq!(r.measurements["retries"], 1);
        assert_eq!(r.measurements["loss"], 0.333);
        let lost = judge_udp(Subject::default(), &[ended(Outcome::Timeout, 1_500_000, 2)]);
        assert_eq!(lost.status, Status::Fail);
    }

    #[test]
    fn no_endpoints_must_be_refused_promptly() {
        let prompt = Duration::from_millis(1000);
        let fast = [ended(Outcome::Refused, 800, 0), ended(Outcome::Refused, 1200, 0)];
        assert_eq!(judge_no_endpoints(Subject::default(), &fast, prompt).status, Status::Pass);
        let slow = [ended(Outcome::Timeout, 3_000_000, 0)];
        let r = judge_no_endpoints(Subject::default(), &slow, prompt);
        assert_eq!(r.status, Status::Fail);
        assert!(r.message.contains("timeout"), "{}", r.message);
        let late_refusal = [ended(Outcome::Refused, 2_000_000, 0)];
        assert_eq!(judge_no_endpoints(Subject::default(), &late_refusal, prompt).status, Status::Fail);
        let lost = [ended(Outcome::Refused, 300, 0), ended(Outcome::Timeout, 3_000_000, 0)];
        let r = judge_no_endpoints(Subject::default(), &lost, prompt);
        assert_eq!(r.status, Status::Fail);
        assert!(r.message.contains("icmp_ratelimit"), "{}", r.message);
    }
}
