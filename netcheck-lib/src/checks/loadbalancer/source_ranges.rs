//! `loadbalancer/source-ranges`: `loadBalancerSourceRanges` is enforced. The Service (policy Local, so
//! that its answers show the address the cluster sees for the runner) first has no range; then a range
//! that excludes the runner must block it, and one that holds only the runner's address must let it
//! through again. Each change is timed from the API's acknowledgement until the runner sees it take
//! effect for several requests in a row.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde::Deserialize;

use super::SOURCE_RANGES;
use crate::checks::nodeport::RUNNER;
use crate::checks::runner_probe;
use crate::protocol::Attempt;
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::Session;
use crate::runner::manifests::{ECHO_HTTP_PORT, LOADBALANCER_RANGES_SERVICE};

/// `loadbalancer/source-ranges`' parameters.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SourceRangesParams {
    requests: u32,
    timeout_ms: u64,
    converge_ms: u64,
}

/// Requests in a row that show a change has taken effect (before the confirming batch).
const IN_A_ROW: u32 = 3;
/// Pause between two requests while waiting for a change.
const PAUSE: Duration = Duration::from_millis(100);

/// A range that holds no address the runner can have (documentation prefixes, RFC 5737 / RFC 3849).
fn excluding(runner: IpAddr) -> &'static str {
    match runner {
        IpAddr::V4(_) => "198.51.100.0/24",
        IpAddr::V6(_) => "2001:db8::/32",
    }
}

/// The range of the runner's address alone.
fn only(runner: IpAddr) -> String {
    match runner {
        IpAddr::V4(ip) => format!("{ip}/32"),
        IpAddr::V6(ip) => format!("{ip}/128"),
    }
}

/// How waiting for one change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    /// The ranges set.
    ranges: String,
    /// From the API's acknowledgement to the first of `IN_A_ROW` requests that showed the change.
    took_ms: Option<u64>,
    /// Of the confirming batch (or of the last requests when the change never showed): answered, sent.
    answered: usize,
    sent: usize,
    /// How the requests that were not answered ended, deduplicated.
    failures: Vec<String>,
}

/// Runs the check on the Service whose address is `ip`.
pub(super) async fn source_ranges(session: &Session, ip: IpAddr, p: SourceRangesParams) -> Vec<CheckResult> {
    let target = SocketAddr::new(ip, ECHO_HTTP_PORT as u16);
    let subject =
        Subject::from_node(RUNNER).at(target.to_string()).named(format!("service/{LOADBALANCER_RANGES_SERVICE}"));
    let result = |status, message: String| vec![CheckResult::new(SOURCE_RANGES, status, subject.clone(), message)];
    if let Err(reason) = super::reachable::runner_probes(session, target).await {
        return result(Status::Skip, format!("not probing from the runner: {reason}"));
    }
    let timeout = Duration::from_millis(p.timeout_ms);
    let limit = Duration::from_millis(p.converge_ms);
    // The address the Service sees for the runner: what a range must hold to let it in.
    let Some(runner) = seen_address(target, timeout, limit).await else {
        return result(
            Status::Skip,
            format!(
                "{target} did not answer the runner with no range set within {} ms, so a block could not be told \
                 from that failure (loadbalancer/reachable reports it)",
                p.converge_ms
            ),
        );
    };
    let services: Api<Service> = Api::namespaced(session.cluster.client.clone(), &session.namespace);
    let mut changes = Vec::new();
    for (ranges, want_answers) in [(excluding(runner).to_string(), false), (only(runner), true)] {
        let patch = serde_json::json!({"spec": {"loadBalancerSourceRanges": [ranges]}});
        if let Err(e) =
            services.patch(LOADBALANCER_RANGES_SERVICE, &PatchParams::default(), &Patch::Merge(&patch)).await
        {
            return result(Status::Error, format!("setting loadBalancerSourceRanges to {ranges}: {e}"));
        }
        changes.push(wait_for_change(target, ranges, want_answers, timeout, limit, p.requests).await);
    }
    vec![judge(&changes, runner, subject, p)]
}

/// The client address of the first answer from the runner's requests, within `limit`.
async fn seen_address(target: SocketAddr, timeout: Duration, limit: Duration) -> Option<IpAddr> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let (attempt, _) = runner_probe::http_get(target, timeout).await;
        if let Some(identity) = attempt.outcome.identity() {
            return identity.client.parse::<SocketAddr>().ok().map(|a| a.ip());
        }
        tokio::time::sleep(PAUSE).await;
    }
    None
}

/// Sends requests until `IN_A_ROW` of them show the change (answered when `want_answers`, not
/// answered otherwise) or `limit` passes, then a confirming batch of `requests` at once.
async fn wait_for_change(
    target: SocketAddr,
    ranges: String,
    want_answers: bool,
    timeout: Duration,
    limit: Duration,
    requests: u32,
) -> Change {
    let started = Instant::now();
    let mut first_of_row: Option<u64> = None;
    let mut row = 0;
    let mut last = Vec::new();
    while row < IN_A_ROW && started.elapsed() < limit {
        let at = started.elapsed().as_millis() as u64;
        let (attempt, _) = runner_probe::http_get(target, timeout).await;
        let shows = attempt.outcome.identity().is_some() == want_answers;
        if shows {
            first_of_row.get_or_insert(at);
            row += 1;
        } else {
            (first_of_row, row) = (None, 0);
            tokio::time::sleep(PAUSE).await;
        }
        last.push(attempt);
        if last.len() > requests as usize {
            last.remove(0);
        }
    }
    let batch = if row >= IN_A_ROW {
        join_all((0..requests).map(|_| async { runner_probe::http_get(target, timeout).await.0 })).await
    } else {
        last
    };
    let took_ms = if row >= IN_A_ROW { first_of_row } else { None };
    summarize(ranges, took_ms, &batch)
}

fn summarize(ranges: String, took_ms: Option<u64>, batch: &[Attempt]) -> Change {
    let answered = batch.iter().filter(|a| a.outcome.identity().is_some()).count();
    let mut failures: Vec<String> =
        batch.iter().filter(|a| a.outcome.identity().is_none()).map(|a| a.outcome.label().to_string()).collect();
    failures.sort();
    failures.dedup();
    Change { ranges, took_ms, answered, sent: batch.len(), failures }
}

fn judge(changes: &[Change], runner: IpAddr, subject: Subject, p: SourceRangesParams) -> CheckResult {
    let fail = |message: String, likely_cause: &str| {
        let mut r = CheckResult::new(SOURCE_RANGES, Status::Fail, subject.clone(), message);
        r.diagnosis = Some(Diagnosis {
            likely_cause: likely_cause.to_string(),
            evidence: vec![format!("the Service saw the runner as {runner}")],
            next_step: Some(format!(
                "kubectl get service/{LOADBALANCER_RANGES_SERVICE} -o yaml, then kube-proxy's rules on the node the \
                 address is announced from (MetalLB: the nodeAssigned event), or the cloud load balancer's rules"
            )),
        });
        r
    };
    let [block, allow] = changes else {
        return CheckResult::new(SOURCE_RANGES, Status::Error, subject, "the check ended before both changes");
    };
    let blocked = block.took_ms.is_some() && block.answered == 0 && block.sent > 0;
    if !blocked {
        return fail(
            format!(
                "loadBalancerSourceRanges {} excludes the runner ({runner}) but did not block it: {}/{} requests \
                 answered {} ms after the change",
                block.ranges, block.answered, block.sent, p.converge_ms
            ),
            "the source ranges are not enforced where the runner's traffic enters: kube-proxy's firewall rules for \
             the Service on that node, or the cloud load balancer's",
        );
    }
    let allowed = allow.took_ms.is_some() && allow.answered == allow.sent && allow.sent > 0;
    if !allowed {
        return fail(
            format!(
                "loadBalancerSourceRanges {} holds the runner's address but still blocked it: {}/{} requests \
                 answered {} ms after the change (failed: {})",
                allow.ranges,
                allow.answered,
                allow.sent,
                p.converge_ms,
                allow.failures.join(", ")
            ),
            "the firewall rules for the Service drop an allowed source (kube-proxy), or they were not updated \
             after the change",
        );
    }
    let (block_ms, allow_ms) = (block.took_ms.unwrap_or_default(), allow.took_ms.unwrap_or_default());
    CheckResult::new(
        SOURCE_RANGES,
        Status::Pass,
        subject,
        format!(
            "{} blocked the runner after {block_ms} ms ({}/{} requests failed: {}); {} let it through after \
             {allow_ms} ms ({}/{} answered)",
            block.ranges,
            block.sent,
            block.sent,
            block.failures.join(", "),
            allow.ranges,
            allow.answered,
            allow.sent
        ),
    )
    .measure("blockMs", block_ms)
    .measure("allowMs", allow_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: SourceRangesParams = SourceRangesParams { requests: 10, timeout_ms: 500, converge_ms: 15_000 };
    const RUNNER_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 250, 0, 1));

    fn change(ranges: &str, took_ms: Option<u64>, answered: usize) -> Change {
        let failures = if answered < 10 { vec!["timeout".to_string()] } else { vec![] };
        Change { ranges: ranges.into(), took_ms, answered, sent: 10, failures }
    }

    #[test]
    fn ranges_are_documentation_prefixes_or_the_runner_alone() {
        assert_eq!(excluding(RUNNER_IP), "198.51.100.0/24");
        assert_eq!(only(RUNNER_IP), "10.250.0.1/32");
        assert_eq!(only("fd00::1".parse().unwrap()), "fd00::1/128");
    }

    #[test]
    fn both_changes_must_take_effect_for_a_pass() {
        let ok = [change("198.51.100.0/24", Some(700), 0), change("10.250.0.1/32", Some(400), 10)];
        let r = judge(&ok, RUNNER_IP, Subject::from_node(RUNNER), P);
        assert_eq!(r.status, Status::Pass, "{}", r.message);
        assert_eq!(r.measurements["blockMs"], serde_json::json!(700));

        let open = [change("198.51.100.0/24", None, 10), change("10.250.0.1/32", Some(0), 10)];
        let r = judge(&open, RUNNER_IP, Subject::from_node(RUNNER), P);
        assert_eq!(r.status, Status::Fail);
        assert!(r.message.contains("did not block it: 10/10"), "{}", r.message);

        let shut = [change("198.51.100.0/24", Some(500), 0), change("10.250.0.1/32", None, 0)];
        let r = judge(&shut, RUNNER_IP, Subject::from_node(RUNNER), P);
        assert!(r.status == Status::Fail && r.message.contains("still blocked it"), "{}", r.message);

        let partly = [change("198.51.100.0/24", Some(500), 0), change("10.250.0.1/32", Some(300), 9)];
        assert_eq!(judge(&partly, RUNNER_IP, Subject::from_node(RUNNER), P).status, Status::Fail);
        let none = [change("198.51.100.0/24", Some(500), 0), Change { sent: 0, ..change("x", Some(1), 0) }];
        assert_eq!(judge(&none, RUNNER_IP, Subject::from_node(RUNNER), P).status, Status::Fail, "nothing sent");
        assert_eq!(judge(&ok[..1], RUNNER_IP, Subject::from_node(RUNNER), P).status, Status::Error);
    }
}
