//! Judging one node's answers to one question against the expected answer; PTR skipped when none is served.

use std::collections::BTreeMap;
use std::time::Duration;

use super::PTR;
use super::plan::Question;
use crate::checks::dns_expect::Expected;
use crate::protocol::{Attempt, DnsQuery, OrderResult, Outcome};
use crate::report::{CheckResult, Status, Subject};
use crate::stats;
use crate::stats::round2;

pub(super) fn of_query<'a>(r: &'a OrderResult, q: &DnsQuery) -> Vec<&'a Attempt> {
    let key = q.key();
    r.attempts.iter().filter(|a| a.target == key).collect()
}

pub(super) fn subject(node: &str, q: &Question) -> Subject {
    let transport = if q.query.tcp { " (tcp)" } else { "" };
    Subject::from_node(node)
        .at(q.query.server.clone().unwrap_or_else(|| "resolv.conf".into()))
        .named(format!("{} {}{transport}", q.query.record_type, q.query.name))
}

/// Pass when every attempt got the expected answer (NXDOMAIN: within `prompt`).
pub(super) fn judge(q: &Question, subject: Subject, attempts: &[&Attempt], prompt: Duration) -> CheckResult {
    let good = |a: &&&Attempt| match &q.expected {
        Expected::NxDomain => a.outcome == Outcome::NxDomain && a.elapsed_us <= prompt.as_micros() as u64,
        expected => a.outcome.records().is_some_and(|r| expected.matches(r)),
    };
    let ok = attempts.iter().filter(good).count();
    let n = attempts.len();
    let latencies: Vec<f64> = attempts.iter().map(|a| a.elapsed_us as f64 / 1000.0).collect();
    let observed = observed(attempts);
    let pass = n > 0 && ok == n;
    let message = if pass {
        format!("{} ({n}/{n})", q.expected.describe())
    } else if n == 0 {
        "the agent returned no attempt for this query".into()
    } else {
        format!("{ok}/{n} correct; got {observed}")
    };
    let mut result = CheckResult::new(q.check, if pass { Status::Pass } else { Status::Fail }, subject, message)
        .measure("correct", ok)
        .measure("attempts", n);
    if let Some(p) = stats::percentiles(&latencies) {
        result = result.measure("p50Ms", round2(p.p50)).measure("p90Ms", round2(p.p90)).measure("maxMs", round2(p.max));
    }
    if !pass {
        result = result.compare(q.expected.describe(), observed);
    }
    result
}

/// Distinct outcomes of the attempts, e.g. `10.96.0.5 ×2, timeout ×1`.
fn observed(attempts: &[&Attempt]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for a in attempts {
        let text = match &a.outcome {
            Outcome::Records { records, .. } => records.join(", "),
            Outcome::Error { detail } => format!("error: {detail}"),
            other => other.label().to_string(),
        };
        *counts.entry(text).or_insert(0) += 1;
    }
    counts.iter().map(|(t, c)| format!("{t} ×{c}")).collect::<Vec<_>>().join("; ")
}

/// When no PTR question got any answer but NXDOMAIN or an empty one, the server does not serve PTR
/// records for ClusterIPs at all: that is a skip with the reason, not a failure per name.
pub(super) fn skip_ptr_if_unserved(results: &mut [CheckResult], questions: &[Question]) {
    if !questions.iter().any(|q| q.check == PTR) {
        return;
    }
    let ptr: Vec<&CheckResult> = results.iter().filter(|r| r.check == PTR).collect();
    let unserved = !ptr.is_empty()
        && ptr.iter().all(|r| {
            r.observed.as_deref().is_some_and(|o| {
                o.split("; ").all(|part| part.starts_with("NXDOMAIN") || part.starts_with("no records"))
            })
        });
    if unserved {
        for r in results.iter_mut().filter(|r| r.check == PTR) {
            r.status = Status::Skip;
            r.message = "the cluster DNS serves no PTR records for ClusterIPs (not even for the kubernetes \
                         Service); the specification requires them"
                .into();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::checks::dns::{HEADLESS, NEGATIVE, SERVICE_A};

    fn question(check: &'static str, expected: Expected) -> Question {
        let query =
            DnsQuery { name: "a.ns.svc.cluster.local.".into(), record_type: "A".into(), server: None, tcp: false };
        Question { check, query, expected }
    }

    fn attempt(outcome: Outcome, elapsed_us: u64) -> Attempt {
        Attempt { target: String::new(), start_ms: 0, elapsed_us, retries: 0, outcome }
    }

    fn records(items: &[&str]) -> Outcome {
        Outcome::Records { records: items.iter().map(|s| s.to_string()).collect(), ttl_s: Some(30) }
    }

    #[test]
    fn exact_answers_pass_and_wrong_ones_show_expected_and_got() {
        let q = question(SERVICE_A, Expected::Exactly(BTreeSet::from(["10.96.0.5".to_string()])));
        let good = [attempt(records(&["10.96.0.5"]), 900), attempt(records(&["10.96.0.5"]), 1100)];
        let r = judge(&q, Subject::from_node("n"), &good.iter().collect::<Vec<_>>(), Duration::from_secs(1));
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.measurements["p50Ms"], serde_json::json!(0.9));

        let bad = [attempt(records(&["10.96.0.5", "10.96.0.6"]), 900), attempt(Outcome::Timeout, 2_000_000)];
        let r = judge(&q, Subject::from_node("n"), &bad.iter().collect::<Vec<_>>(), Duration::from_secs(1));
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.expected.as_deref(), Some("10.96.0.5"));
        assert_eq!(r.observed.as_deref(), Some("10.96.0.5, 10.96.0.6 ×1; timeout ×1"));
    }

    #[test]
    fn nxdomain_must_be_prompt() {
        let q = question(NEGATIVE, Expected::NxDomain);
        let prompt = Duration::from_millis(1000);
        let fast = [attempt(Outcome::NxDomain, 2_000)];
        assert_eq!(judge(&q, Subject::default(), &fast.iter().collect::<Vec<_>>(), prompt).status, Status::Pass);
        let slow = [attempt(Outcome::NxDomain, 1_500_000)];
        assert_eq!(judge(&q, Subject::default(), &slow.iter().collect::<Vec<_>>(), prompt).status, Status::Fail);
        let answered = [attempt(records(&["10.0.0.1"]), 2_000)];
        assert_eq!(judge(&q, Subject::default(), &answered.iter().collect::<Vec<_>>(), prompt).status, Status::Fail);
    }

    #[test]
    fn no_attempt_is_a_failure_not_a_pass() {
        let q = question(HEADLESS, Expected::AnyRecords);
        assert_eq!(judge(&q, Subject::default(), &[], Duration::from_secs(1)).status, Status::Fail);
    }

    #[test]
    fn ptr_is_skipped_only_when_no_ptr_is_served_at_all() {
        let q = question(PTR, Expected::Exactly(BTreeSet::from(["a.ns.svc.cluster.local.".to_string()])));
        let nx = [attempt(Outcome::NxDomain, 1000)];
        let failed = judge(&q, Subject::from_node("n"), &nx.iter().collect::<Vec<_>>(), Duration::from_secs(1));
        let mut results = vec![failed.clone(), failed.clone()];
        skip_ptr_if_unserved(&mut results, std::slice::from_ref(&q));
        assert!(results.iter().all(|r| r.status == Status::Skip));

        let wrong = [attempt(records(&["b.ns.svc.cluster.local."]), 1000)];
        let mut results =
            vec![failed, judge(&q, Subject::from_node("n"), &wrong.iter().collect::<Vec<_>>(), Duration::from_secs(1))];
        skip_ptr_if_unserved(&mut results, std::slice::from_ref(&q));
        assert!(results.iter().all(|r| r.status == Status::Fail), "a wrong PTR means PTR is served");
    }
}
