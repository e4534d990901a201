//! Turning an experiment's observations into results: the API, data-plane and DNS times against their limits.

use super::experiment::{Experiment, Limits, paced};
use super::fresh_names::{ASK_AFTER_API_MS, CONFIRMATIONS};
use super::{READD, REMOVAL, victim_subject};
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::AgentPod;

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

/// Removal: ms from the switch until the DNS answers lacked the victim for good; re-add: until they
/// had it for good. Each answer is from a name first asked then ([`super::fresh_names`]); for good
/// means the last [`CONFIRMATIONS`] answers or more, which end the timeline, agree. A failed query
/// proves nothing either way: only answers count.
fn dns_ms(answers: &[(i64, Option<bool>)], ready: bool) -> Option<u64> {
    let answered: Vec<(i64, bool)> = answers.iter().filter_map(|(t, has)| Some((*t, (*has)?))).collect();
    let run = answered.iter().rev().take_while(|(_, has)| *has == ready).count();
    if run < CONFIRMATIONS {
        return None;
    }
    answered.get(answered.len() - run).map(|(t, _)| (*t).max(0) as u64)
}

pub(super) fn judge(check: &str, victim: &AgentPod, e: &Experiment, limits: Limits) -> Vec<CheckResult> {
    // Re-add and unready-at-start both time an endpoint turning ready.
    let ready = check != REMOVAL;
    let verb = if ready { "ready again" } else { "not ready" };
    let subject = |node: &str| Subject { source_node: Some(node.to_string()), ..victim_subject(victim) };
    if let Some(error) = &e.error {
        return vec![CheckResult::new(check, Status::Error, victim_subject(victim), error.clone())];
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
            victim_subject(victim),
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
    let limit_ms = limits.propagation().as_millis() as u64;
    e.nodes
        .iter()
        .map(|(node, t)| {
            if let Some(f) = &t.failure {
                return CheckResult::new(check, Status::Error, subject(node), f.clone());
            }
            let plane = data_plane_ms(&t.requests, &victim.ip, ready, limits.sustained);
            let dns = dns_ms(&t.dns, ready);
            let unanswered = t.dns.iter().all(|(_, has)| has.is_none());
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
            match dns {
                Some(ms) if ms <= limit_ms => {}
                Some(ms) => problems.push(format!("DNS took {ms} ms (limit {limit_ms} ms)")),
                None if unanswered => problems.push(format!(
                    "none of the {} DNS queries, each for a name first asked after the API showed the switch, was \
                     answered with records",
                    t.dns.len()
                )),
                None => problems.push(format!(
                    "DNS answers for {} names first asked up to {} ms after the API showed the switch never {} for \
                     good ({} answers in a row)",
                    t.dns.len(),
                    ASK_AFTER_API_MS[ASK_AFTER_API_MS.len() - 1],
                    if ready { "had it" } else { "lacked it" },
                    CONFIRMATIONS
                )),
            }
            if !ready && !seen_before {
                problems.push(format!("{} never answered before the switch: nothing to remove", victim.pod));
            }
            // A re-add is timed from a removed endpoint: one still answering then makes the time meaningless.
            // (Unready-at-start counts such answers itself, as answers while not ready.)
            let answered_before = check == READD && seen_before;
            if answered_before {
                let last = t.requests.iter().filter(|(at, ip)| *at < 0 && ip.as_deref() == Some(victim.ip.as_str()));
                problems.push(format!(
                    "{} answered through the ClusterIP at {} ms, before it was switched ready",
                    victim.pod,
                    last.map(|(at, _)| *at).max().unwrap_or(0)
                ));
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
            if status == Status::Fail {
                let plane_ok = matches!(plane, DataPlane::At(ms) if ms <= limit_ms) && !answered_before;
                let (cause, next) = if plane_ok && unanswered {
                    (
                        format!("the path from {node} to the cluster DNS, or the DNS server itself"),
                        "compare with the other nodes' results and dns/per-server; check the DNS pods",
                    )
                } else if plane_ok {
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
    fn dns_times_the_first_of_the_agreeing_answers_that_end_the_timeline() {
        let dropped = [(100, Some(true)), (250, None), (400, Some(false)), (550, Some(false))];
        assert_eq!(dns_ms(&dropped, false), Some(400), "a failed query is not proof either way");
        let one = [(100, Some(true)), (250, Some(false))];
        assert_eq!(dns_ms(&one, false), None, "one answer shows one replica: not for good");
        let flapped = [(100, Some(false)), (200, Some(true)), (300, Some(false)), (400, Some(false))];
        assert_eq!(dns_ms(&flapped, false), Some(300), "dropped for good at 300");
        assert_eq!(dns_ms(&[(100, Some(false)), (200, Some(false)), (300, Some(true))], false), None, "came back");
        assert_eq!(dns_ms(&[(120, Some(true)), (230, Some(true))], true), Some(120), "re-add: the first of them");
        assert_eq!(dns_ms(&[], true), None, "no answer is no evidence");
        assert_eq!(dns_ms(&[(100, None), (200, None)], true), None, "timeouts are no evidence");
    }

    #[test]
    fn a_node_whose_dns_queries_all_go_unanswered_is_placed_on_its_path_to_dns() {
        let victim = AgentPod { pod: "server-0".into(), node: "node-a".into(), ip: "v".into() };
        let requests = reqs(&[(-20, Some("v")), (0, Some("a")), (20, Some("a")), (40, Some("b"))]);
        let timeline = super::super::experiment::NodeTimeline {
            requests,
            dns: vec![(200, None), (300, None), (450, None)],
            ..Default::default()
        };
        let e = Experiment {
            api: Some(std::time::Duration::from_millis(150)),
            nodes: [("node-b".to_string(), timeline)].into_iter().collect(),
            error: None,
        };
        let results = judge(REMOVAL, &victim, &e, limits());
        assert_eq!(results[0].status, Status::Fail, "{:?}", results[0]);
        assert!(results[0].message.contains("none of the 3 DNS queries"), "{}", results[0].message);
        let cause = &results[0].diagnosis.as_ref().unwrap().likely_cause;
        assert!(cause.contains("path from node-b to the cluster DNS"), "{cause}");
    }

    fn limits() -> Limits {
        Limits {
            interval: std::time::Duration::from_millis(20),
            sustained: 2,
            max_api: std::time::Duration::from_secs(4),
            max_propagation: std::time::Duration::from_secs(2),
        }
    }

    fn readd_of(requests: Vec<(i64, Option<String>)>) -> Vec<CheckResult> {
        let victim = AgentPod { pod: "server-1".into(), node: "node-b".into(), ip: "v".into() };
        let timeline = super::super::experiment::NodeTimeline {
            requests,
            dns: vec![(300, Some(true)), (420, Some(true))],
            ..Default::default()
        };
        let e = Experiment {
            api: Some(std::time::Duration::from_millis(900)),
            nodes: [("node-a".to_string(), timeline)].into_iter().collect(),
            error: None,
        };
        judge(READD, &victim, &e, limits())
    }

    #[test]
    fn a_readd_whose_victim_still_answered_before_the_switch_fails_on_the_data_plane() {
        let healthy = readd_of(reqs(&[(-400, Some("a")), (-200, Some("a")), (100, Some("v"))]));
        assert_eq!(healthy[0].status, Status::Pass, "{}", healthy[0].message);
        let early = readd_of(reqs(&[(-400, Some("v")), (-200, Some("a")), (100, Some("v"))]));
        assert_eq!(early[0].status, Status::Fail);
        assert!(
            early[0].message.contains("server-1 answered through the ClusterIP at -400 ms"),
            "{}",
            early[0].message
        );
        let cause = &early[0].diagnosis.as_ref().expect("a diagnosis").likely_cause;
        assert!(cause.contains("kube-proxy") && cause.contains("node-a"), "{cause}");
    }
}
