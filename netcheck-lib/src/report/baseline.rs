//! Comparing a report with an earlier one (`netcheck run --baseline PREVIOUS.json`), e.g. from before a
//! cluster upgrade: a result that passed and no longer does (it failed, errored, was skipped, or is
//! missing from the current run, as when a node is gone), or a time that grew beyond a tolerance, is a
//! regression.
//!
//! Results are matched by check, source node, target node and name, with the run's own namespace
//! (`netcheck-<id>`) and its server agents' pod names (`netcheck-server-<hash>-<suffix>`) masked, since
//! each run has its own; addresses are not compared (ClusterIPs and node ports are new every run).
//! Results with the same key are matched in order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{CheckResult, Report, Status};

/// How much worse a measured time may get before it is a regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Allowed growth as a fraction of the baseline value (0.5: up to 1.5 × baseline).
    pub relative: f64,
    /// Growth in ms that is never a regression, however small the baseline (sub-ms latencies are
    /// noise at that scale).
    pub absolute_ms: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { relative: 0.5, absolute_ms: 10.0 }
    }
}

/// One way the current run is worse than the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Regression {
    /// The check id.
    pub check: String,
    /// The subject, as in the human report.
    pub subject: String,
    /// What got worse, e.g. `pass → fail` or `p50Ms 2.1 → 9.8`.
    pub what: String,
}

/// Every regression of `current` against `baseline`.
///
/// ```
/// use netcheck::report::{ClusterInfo, CheckResult, Report, Status, Subject};
/// let result = |status| CheckResult::new("clusterip/reachable", status, Subject::from_node("node-a"), "20 of 20 answered");
/// use netcheck::report::baseline::{Tolerance, compare};
/// let before = Report::from_results("r1", "quick", ClusterInfo::default(), vec![result(Status::Pass)]);
/// let after = Report::from_results("r2", "quick", ClusterInfo::default(), vec![result(Status::Fail)]);
/// let regressions = compare(&before, &after, Tolerance::default());
/// assert_eq!(regressions.len(), 1);
/// assert!(compare(&before, &before, Tolerance::default()).is_empty());
/// ```
pub fn compare(baseline: &Report, current: &Report, tolerance: Tolerance) -> Vec<Regression> {
    let earlier = keyed(baseline);
    let now_keyed = keyed(current);
    let mut regressions = Vec::new();
    // A pass whose subject the current run no longer has at all (a node gone, a check lost): what it
    // covered was not checked. Only the subject counts, not how many results share it: the server agents
    // land on the nodes anew each run, so node-a may host two of them in one run and one in the next.
    let present: std::collections::BTreeSet<&Key> = now_keyed.keys().map(|(key, _)| key).collect();
    for ((key, _), before) in &earlier {
        if before.status == Status::Pass && !present.contains(key) {
            let what = "pass → missing: the current run has no such result".to_string();
            regressions.push(Regression { check: before.check.clone(), subject: before.subject.to_string(), what });
        }
    }
    for ((key, nth), now) in now_keyed {
        let Some(before) = earlier.get(&(key.clone(), nth)) else { continue };
        let subject = now.subject.to_string();
        if before.status == Status::Pass && now.status != Status::Pass {
            let what = format!("{} → {}: {}", before.status.as_str(), now.status.as_str(), now.message);
            regressions.push(Regression { check: now.check.clone(), subject: subject.clone(), what });
        }
        for (name, value) in &now.measurements {
            let (Some(new), Some(old)) = (value.as_f64(), before.measurements.get(name).and_then(|v| v.as_f64()))
            else {
                continue;
            };
            if is_time(name) && new > old * (1.0 + tolerance.relative) && new - old > tolerance.absolute_ms {
                let what = format!("{name} {old} → {new} (more than {:.0}% worse)", tolerance.relative * 100.0);
                regressions.push(Regression { check: now.check.clone(), subject: subject.clone(), what });
            }
        }
    }
    regressions
}

/// Time-like measurements (lower is better) that are steady enough to compare: medians and
/// propagation times. Tail figures (p90, p99, max, slowest) swing with one slow request and would
/// make every comparison noisy.
fn is_time(name: &str) -> bool {
    name.ends_with("Ms") && !["p9", "max", "slowest"].iter().any(|tail| name.starts_with(tail))
}

type Key = (String, Option<String>, Option<String>, Option<String>);

fn keyed(report: &Report) -> BTreeMap<(Key, usize), &CheckResult> {
    let namespace = format!("netcheck-{}", report.run_id);
    let mut seen: BTreeMap<Key, usize> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for r in &report.results {
        let name = r.subject.name.as_ref().map(|n| mask_server_pods(&n.replace(&namespace, "netcheck-*")));
        let key = (r.check.clone(), r.subject.source_node.clone(), r.subject.target_node.clone(), name);
        let nth = seen.entry(key.clone()).or_insert(0);
        out.insert((key, *nth), r);
        *nth += 1;
    }
    out
}

/// `netcheck-server-7b6848c6bf-krccb` → `netcheck-server-*`, wherever it stands in a name: every run
/// names its server agents anew.
fn mask_server_pods(name: &str) -> String {
    const SERVER: &str = "netcheck-server-";
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find(SERVER) {
        out.push_str(&rest[..at + SERVER.len()]);
        out.push('*');
        rest = rest[at + SERVER.len()..].trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '-');
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::human::fixtures::sample_report;

    #[test]
    fn an_identical_report_has_no_regression() {
        let report = sample_report();
        assert_eq!(compare(&report, &report, Tolerance::default()), vec![]);
    }

    #[test]
    fn pass_to_fail_is_a_regression_and_fail_to_pass_is_not() {
        let before = sample_report();
        let mut after = before.clone();
        let i = after.results.iter().position(|r| r.status == Status::Pass).unwrap();
        after.results[i].status = Status::Fail;
        let j = after.results.iter().position(|r| r.status == Status::Fail && r.check != after.results[i].check);
        if let Some(j) = j {
            after.results[j].status = Status::Pass;
        }
        let found = compare(&before, &after, Tolerance::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].what.starts_with("pass → fail"), "{found:?}");
    }

    #[test]
    fn fewer_results_for_a_subject_are_not_missing_but_none_are() {
        let before = sample_report();
        let i = before.results.iter().position(|r| r.status == Status::Pass).unwrap();
        let mut twice = before.clone();
        twice.results.push(before.results[i].clone());
        assert_eq!(compare(&twice, &before, Tolerance::default()), vec![], "one result where there were two");
    }

    #[test]
    fn server_agent_pod_names_are_masked() {
        assert_eq!(mask_server_pods("netcheck-server-7b6848c6bf-krccb"), "netcheck-server-*");
        assert_eq!(mask_server_pods("pod/netcheck-server-7b6848c6bf-krccb"), "pod/netcheck-server-*");
        assert_eq!(mask_server_pods("service/netcheck-echo"), "service/netcheck-echo");
    }

    #[test]
    fn a_pass_that_is_skipped_or_missing_now_is_a_regression() {
        let before = sample_report();
        let i = before.results.iter().position(|r| r.status == Status::Pass).unwrap();
        let mut skipped = before.clone();
        skipped.results[i].status = Status::Skip;
        let found = compare(&before, &skipped, Tolerance::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].what.starts_with("pass → skip"), "{found:?}");

        let mut missing = before.clone();
        let gone = missing.results.remove(i);
        let found = compare(&before, &missing, Tolerance::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].check.as_str(), found[0].what.as_str()),
            (gone.check.as_str(), "pass → missing: the current run has no such result")
        );
        assert_eq!(found[0].subject, gone.subject.to_string());
    }

    #[test]
    fn times_regress_beyond_both_tolerances_only() {
        let mut before = sample_report();
        before.results[0].measurements.insert("p50Ms".into(), serde_json::json!(2.0));
        let mut after = before.clone();
        after.results[0].measurements.insert("p50Ms".into(), serde_json::json!(9.0));
        assert_eq!(compare(&before, &after, Tolerance::default()), vec![], "7 ms worse is under the 10 ms floor");
        after.results[0].measurements.insert("p50Ms".into(), serde_json::json!(40.0));
        let found = compare(&before, &after, Tolerance::default());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].what, "p50Ms 2 → 40 (more than 50% worse)");
    }

    #[test]
    fn tail_figures_are_not_compared() {
        let mut before = sample_report();
        before.results[0].measurements.insert("p99Ms".into(), serde_json::json!(2.0));
        before.results[0].measurements.insert("maxMs".into(), serde_json::json!(2.0));
        let mut after = before.clone();
        after.results[0].measurements.insert("p99Ms".into(), serde_json::json!(200.0));
        after.results[0].measurements.insert("maxMs".into(), serde_json::json!(200.0));
        assert_eq!(compare(&before, &after, Tolerance::default()), vec![]);
        assert!(is_time("dataPlaneMs") && is_time("p50Ms") && !is_time("p90Ms") && !is_time("requests"));
    }

    #[test]
    fn results_match_across_runs_despite_the_namespace() {
        let mut before = sample_report();
        before.run_id = "aaaaaa".into();
        before.results[0].subject.name = Some("A netcheck-echo.netcheck-aaaaaa.svc.cluster.local.".into());
        let mut after = before.clone();
        after.run_id = "bbbbbb".into();
        after.results[0].subject.name = Some("A netcheck-echo.netcheck-bbbbbb.svc.cluster.local.".into());
        after.results[0].status = Status::Fail;
        assert_eq!(compare(&before, &after, Tolerance::default()).len(), 1);
    }
}
