//! The JUnit XML rendering for CI: one test suite per check, one test case per check × subject.

use quick_junit::{NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestSuite};

use super::human::failure_text;
use super::model::{CheckResult, Report, Status};

/// Renders `report` as JUnit XML. Suites appear in the order their check first appears among the
/// results; test cases keep the results' order.
///
/// # Panics
/// Never in practice: writing to an in-memory buffer cannot fail, and quick-junit drops
/// characters that XML cannot carry.
///
/// ```
/// use netcheck::report::{ClusterInfo, CheckResult, Report, Status, Subject};
/// let result = |status| CheckResult::new("clusterip/reachable", status, Subject::from_node("node-a"), "20 of 20 answered");
/// let report = Report::from_results("abc123", "quick", ClusterInfo::default(), vec![result(Status::Fail)]);
/// let xml = netcheck::report::junit::render(&report);
/// assert!(xml.contains("<testsuite name=\"clusterip/reachable\"") && xml.contains("<failure"), "{xml}");
/// ```
pub fn render(report: &Report) -> String {
    let mut junit = JunitReport::new(format!("netcheck {}", report.scenario));
    junit.set_time(std::time::Duration::from_millis(report.duration_millis));
    junit.add_test_suites(suites(&report.results));
    junit.to_string().expect("JUnit XML serialises")
}

fn suites(results: &[CheckResult]) -> Vec<TestSuite> {
    let mut suites: Vec<TestSuite> = Vec::new();
    for r in results {
        let case = test_case(r);
        match suites.iter_mut().find(|s| s.name.as_str() == r.check) {
            Some(suite) => {
                suite.add_test_case(case);
            }
            None => {
                let mut suite = TestSuite::new(r.check.as_str());
                suite.add_test_case(case);
                suites.push(suite);
            }
        }
    }
    suites
}

fn test_case(result: &CheckResult) -> TestCase {
    let status = match result.status {
        Status::Pass => TestCaseStatus::success(),
        Status::Fail => non_success(NonSuccessKind::Failure, result),
        Status::Error => non_success(NonSuccessKind::Error, result),
        Status::Skip => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(result.message.as_str());
            status
        }
    };
    let mut case = TestCase::new(result.subject.to_string(), status);
    case.set_classname(result.check.as_str());
    case
}

fn non_success(kind: NonSuccessKind, result: &CheckResult) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    status.set_message(result.message.as_str());
    status.set_description(failure_text(result));
    status
}

#[cfg(test)]
mod tests {
    use super::super::human::fixtures::sample_report;
    use super::super::model::Subject;
    use super::*;

    #[test]
    fn one_suite_per_check_and_one_case_per_result() {
        let xml = render(&sample_report());
        assert!(xml.starts_with("<?xml"));
        assert!(xml.contains("<testsuites name=\"netcheck quick\" tests=\"5\""), "{xml}");
        assert_eq!(xml.matches("<testsuite ").count(), 5);
        assert_eq!(xml.matches("<testcase ").count(), 5);
        assert_eq!(xml.matches("<failure").count(), 1);
        assert_eq!(xml.matches("<error").count(), 1);
        assert_eq!(xml.matches("<skipped").count(), 1);
        assert!(xml.contains("<testcase name=\"node-a → node-b 10.244.1.5:8080 web-1\" classname=\"pod/direct\""));
        assert!(xml.contains("<skipped message=\"needs 2 schedulable nodes, found 1\""));
    }

    #[test]
    fn results_of_one_check_share_a_suite() {
        let mut report = sample_report();
        let mut second = report.results[0].clone();
        second.subject = Subject::from_node("node-b").at("10.96.0.10:80");
        report.results.push(second);
        let xml = render(&report);
        assert_eq!(xml.matches("<testsuite ").count(), 5);
        assert_eq!(xml.matches("<testcase ").count(), 6);
        assert!(xml.contains("<testsuite name=\"clusterip/reachable\" tests=\"2\""), "{xml}");
    }

    #[test]
    fn failure_text_is_the_human_one() {
        let xml = render(&sample_report());
        assert!(xml.contains("<failure message=\"backend web-2 answered 5 of 300 requests\""));
        // The text node carries the same detail the human report prints, escaped.
        assert!(xml.contains("expected: p-value ≥ 0.001\nobserved: p-value 1.2e-118"));
        assert!(xml.contains("likely cause: service proxy (kube-proxy) on node-b\n"));
        assert!(xml.contains("next: read kube-proxy&apos;s log on node-b</failure>"), "{xml}");
    }

    #[test]
    fn escapes_xml_special_characters() {
        let mut report = sample_report();
        report.results[2].message = "got <html> & \"quotes\" instead of JSON".to_string();
        let xml = render(&report);
        assert!(!xml.contains("<html>"));
        assert!(xml.contains("got &lt;html&gt; &amp; &quot;quotes&quot; instead of JSON"), "{xml}");
    }
}
