//! The human rendering: a summary header, one table row per result, the diagnosis of each failure,
//! and a totals line.

use std::ffi::OsStr;
use std::fmt::Write as _;

use serde_json::Value;

use super::model::{CheckResult, Report, Status, TimelineEntry, WindowKind};

/// Measurements that best summarise a result, most telling first.
const KEY_MEASUREMENTS: &[&str] = &["p50Ms", "pValue", "convergenceMs", "longestOutageMs"];

/// Renders `report` for a terminal or a log; `color` adds ANSI colours to statuses.
///
/// ```
/// use netcheck::report::{ClusterInfo, CheckResult, Report, Status, Subject};
/// let result = |status| CheckResult::new("clusterip/reachable", status, Subject::from_node("node-a"), "20 of 20 answered");
/// let report = Report::from_results("abc123", "quick", ClusterInfo::default(), vec![result(Status::Pass)]);
/// let text = netcheck::report::human::render(&report, false);
/// assert!(text.contains("clusterip/reachable") && text.contains("node-a"), "{text}");
/// ```
pub fn render(report: &Report, color: bool) -> String {
    let mut out = header(report);
    out.push('\n');
    out.push_str(&table(&report.results, color));
    push_section(&mut out, "Failures", &failures(&report.results, color));
    push_section(&mut out, "Skipped", &skips(&report.results));
    let regressions: Vec<String> =
        report.regressions.iter().map(|r| format!("{} {}: {}\n", r.check, r.subject, r.what)).collect();
    push_section(&mut out, "Regressions against the baseline", &regressions.concat());
    push_section(&mut out, "Timeline (agents' clock, UTC)", &timeline(&report.timeline));
    out.push('\n');
    out.push_str(&totals(&report.results));
    out.push('\n');
    out
}

/// Whether to colour output: only on a terminal, and not when `NO_COLOR` is set
/// (<https://no-color.org>).
pub fn color_wanted(is_terminal: bool) -> bool {
    color_wanted_given(is_terminal, std::env::var_os("NO_COLOR").as_deref())
}

/// [`color_wanted`] with the value of `NO_COLOR` passed in: present and non-empty disables colour.
pub fn color_wanted_given(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// The detail of one failed or errored result, without its heading: message, expected and
/// observed values, and the diagnosis. Shared with the JUnit rendering so both say the same.
pub(crate) fn failure_text(result: &CheckResult) -> String {
    let mut lines = vec![result.message.clone()];
    if let Some(expected) = &result.expected {
        lines.push(format!("expected: {expected}"));
    }
    if let Some(observed) = &result.observed {
        lines.push(format!("observed: {observed}"));
    }
    if let Some(d) = &result.diagnosis {
        lines.push(format!("likely cause: {}", d.likely_cause));
        lines.extend(d.evidence.iter().map(|e| format!("  - {e}")));
        if let Some(next) = &d.next_step {
            lines.push(format!("next: {next}"));
        }
    }
    lines.join("\n")
}

/// One line per timeline entry: when, how long, what, where, and what the nodes did around then.
fn timeline(entries: &[TimelineEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        let what = match e.kind {
            WindowKind::Outage => format!("outage, {} failed: {}", e.failures, e.detail),
            WindowKind::Unobserved => format!("unobserved: {}", e.detail),
            WindowKind::Cut => format!("connection cut {}", e.detail),
        };
        let _ = write!(out, "{}  {:>7}  {} {}  {what}", e.start, duration(e.duration_ms), e.node, e.path);
        if !e.during.is_empty() {
            let _ = write!(out, "  [nodes: {}]", e.during.join(", "));
        }
        out.push('\n');
    }
    out
}

fn header(report: &Report) -> String {
    let c = &report.cluster;
    let phases: Vec<String> = report.phases.iter().map(|p| format!("{} {}", p.name, duration(p.millis))).collect();
    let mut out = format!("netcheck {} — scenario {}\n", report.netcheck_version, report.scenario);
    let _ = writeln!(out, "cluster   {} ({})", c.server, c.version);
    let _ = writeln!(out, "nodes     {} ({})", c.nodes.join(", "), c.nodes.len());
    let _ = writeln!(
        out,
        "run       {}, started {}, took {}",
        report.run_id,
        report.started_at,
        duration(report.duration_millis)
    );
    if !phases.is_empty() {
        let _ = writeln!(out, "phases    {}", phases.join(", "));
    }
    let checks: Vec<String> =
        report.check_times.iter().map(|t| format!("{} {}", t.check, duration(t.duration_ms))).collect();
    if !checks.is_empty() {
        let _ = writeln!(out, "checks    {} (concurrent rounds overlap)", checks.join(", "));
    }
    out
}

/// Milliseconds as a person reads them: `850 ms`, `12.3 s`, `2m05s`.
fn duration(millis: u64) -> String {
    match millis {
        0..=999 => format!("{millis} ms"),
        1_000..=59_999 => format!("{:.1} s", millis as f64 / 1000.0),
        _ => {
            let secs = millis / 1000;
            format!("{}m{:02}s", secs / 60, secs % 60)
        }
    }
}

fn table(results: &[CheckResult], color: bool) -> String {
    if results.is_empty() {
        return "no results\n".to_string();
    }
    let mut rows = vec![["CHECK".to_string(), "SUBJECT".to_string(), "STATUS".to_string(), "KEY FIGURE".to_string()]];
    rows.extend(results.iter().map(|r| [r.check.clone(), r.subject.to_string(), r.status.to_string(), key_figure(r)]));
    let widths: Vec<usize> = (0..4).map(|i| rows.iter().map(|row| width(&row[i])).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        // Row 0 is the heading; its STATUS cell is not a status.
        let status = n.checked_sub(1).map(|i| results[i].status);
        out.push_str(&table_row(row, &widths, status.filter(|_| color)));
        out.push('\n');
    }
    out
}

fn table_row(cells: &[String; 4], widths: &[usize], colored: Option<Status>) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        let text = match (i, colored) {
            (2, Some(status)) => paint(status, cell),
            _ => cell.clone(),
        };
        line.push_str(&text);
        // Pad by visible characters: subjects contain '→', and colour codes take no room.
        line.push_str(&" ".repeat(widths[i] - width(cell) + 2));
    }
    line.trim_end().to_string()
}

fn width(text: &str) -> usize {
    text.chars().count()
}

fn paint(status: Status, text: &str) -> String {
    let code = match status {
        Status::Pass => "32",
        Status::Fail => "31",
        Status::Skip => "33",
        Status::Error => "35",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// The one measurement that best summarises a result, formatted compactly.
fn key_figure(result: &CheckResult) -> String {
    let m = &result.measurements;
    let chosen = KEY_MEASUREMENTS.iter().find_map(|k| m.get_key_value(*k)).or_else(|| m.iter().next());
    let Some((name, value)) = chosen else {
        return String::new();
    };
    match (name.as_str(), value.as_f64()) {
        ("p50Ms", Some(ms)) => format!("p50 {} ms", number(ms)),
        ("pValue", Some(p)) => format!("p-value {}", number(p)),
        ("convergenceMs", Some(ms)) => format!("converged in {} ms", number(ms)),
        _ => format!("{name} {}", value_text(value)),
    }
}

/// A number, compactly: whole numbers as they are, fewer decimals the larger the value, no
/// trailing zeros, and scientific notation for tiny values (p-values span many magnitudes).
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    if v.abs() < 0.001 {
        return format!("{v:.1e}");
    }
    let decimals = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 1.0 {
        1
    } else {
        3
    };
    let text = format!("{v:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), number),
        Value::String(s) => s.clone(),
        other => {
            let text = other.to_string();
            if width(&text) > 40 {
                let short: String = text.chars().take(39).collect();
                format!("{short}…")
            } else {
                text
            }
        }
    }
}

/// One entry per failed or errored result, separated by blank lines.
fn failures(results: &[CheckResult], color: bool) -> String {
    let entries: Vec<String> = results
        .iter()
        .filter(|r| matches!(r.status, Status::Fail | Status::Error))
        .map(|r| failure_entry(r, color))
        .collect();
    entries.join("\n")
}

fn failure_entry(result: &CheckResult, color: bool) -> String {
    let status = if color { paint(result.status, result.status.as_str()) } else { result.status.to_string() };
    let mut out = format!("[{status}] {} {}\n", result.check, result.subject);
    for line in failure_text(result).lines() {
        let _ = writeln!(out, "    {line}");
    }
    out
}

fn skips(results: &[CheckResult]) -> String {
    results
        .iter()
        .filter(|r| r.status == Status::Skip)
        .map(|r| format!("{} {}: {}\n", r.check, r.subject, r.message))
        .collect()
}

/// Appends a titled section, or nothing when `body` is empty.
fn push_section(out: &mut String, title: &str, body: &str) {
    if !body.is_empty() {
        let _ = write!(out, "\n{title}\n\n{body}");
    }
}

/// Counted from the results rather than read from `Report::summary`, so the line adds up even
/// when the summary was not recomputed.
fn totals(results: &[CheckResult]) -> String {
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let errors = count(Status::Error);
    format!(
        "{} passed, {} failed, {} skipped, {errors} {}",
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skip),
        if errors == 1 { "error" } else { "errors" }
    )
}

/// A hand-built report with every kind of result, shared by the renderers' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::report::model::*;

    /// A watch's timeline: one 5.2 s outage of node-b's ClusterIP path while node-b was cordoned.
    pub(crate) fn sample_timeline() -> Vec<TimelineEntry> {
        vec![TimelineEntry {
            kind: WindowKind::Outage,
            node: "node-b".into(),
            path: "clusterip".into(),
            start: "10:01:02.345Z".into(),
            start_ms: 1_000,
            end_ms: 6_200,
            duration_ms: 5_200,
            failures: 26,
            detail: "timeout".into(),
            during: vec!["node-b NodeNotSchedulable -0.4 s".into()],
        }]
    }

    /// Two passes, a diagnosed failure, an error and a skip.
    pub(crate) fn sample_report() -> Report {
        let mut results = vec![
            CheckResult::new(
                "clusterip/reachable",
                Status::Pass,
                Subject::from_node("node-a").at("10.96.0.10:80"),
                "20 of 20 requests answered",
            )
            .measure("p50Ms", 1.234)
            .measure("p99Ms", 9.5),
            CheckResult::new(
                "pod/direct",
                Status::Pass,
                Subject::from_node("node-a").to_node("node-b").at("10.244.1.5:8080").named("web-1"),
                "3 of 3 requests answered",
            )
            .measure("answered", 3),
            CheckResult::new(
                "lb/distribution",
                Status::Fail,
                Subject::from_node("node-b").at("10.96.0.10:80"),
                "backend web-2 answered 5 of 300 requests",
            )
            .compare("p-value ≥ 0.001", "p-value 1.2e-118")
            .measure("pValue", 1.2e-118),
            CheckResult::new(
                "clusterip/all-backends",
                Status::Error,
                Subject::from_node("node-b"),
                "the client agent on node-b did not report within 30 s",
            ),
            CheckResult::new(
                "nodeport/every-node",
                Status::Skip,
                Subject::default(),
                "needs 2 schedulable nodes, found 1",
            ),
        ];
        results[2].diagnosis = Some(Diagnosis {
            likely_cause: "service proxy (kube-proxy) on node-b".to_string(),
            evidence: vec![
                "pod IPs of all backends answer from node-b".to_string(),
                "node-a spreads evenly (p-value 0.42)".to_string(),
            ],
            next_step: Some("read kube-proxy's log on node-b".to_string()),
        });
        let mut report = Report {
            schema_version: SCHEMA_VERSION,
            netcheck_version: "0.1.0".to_string(),
            run_id: "r4nd0m".to_string(),
            scenario: "quick".to_string(),
            cluster: ClusterInfo {
                server: "https://10.0.0.1:6443".to_string(),
                version: "v1.20.2".to_string(),
                nodes: vec!["node-a".to_string(), "node-b".to_string()],
            },
            started_at: "2024-05-01T12:00:00Z".to_string(),
            duration_millis: 83_400,
            phases: vec![
                Phase { name: "deploy".to_string(), millis: 12_345 },
                Phase { name: "probe".to_string(), millis: 870 },
            ],
            check_times: vec![
                CheckTime { check: "clusterip/reachable".to_string(), duration_ms: 850 },
                CheckTime { check: "nodeport/every-node".to_string(), duration_ms: 1_200 },
            ],
            results,
            summary: Default::default(),
            regressions: Vec::new(),
            timeline: Vec::new(),
        };
        report.summarize();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::sample_report;
    use super::*;
    use crate::report::model::Subject;

    const EXPECTED: &str = "\
netcheck 0.1.0 — scenario quick
cluster   https://10.0.0.1:6443 (v1.20.2)
nodes     node-a, node-b (2)
run       r4nd0m, started 2024-05-01T12:00:00Z, took 1m23s
phases    deploy 12.3 s, probe 870 ms
checks    clusterip/reachable 850 ms, nodeport/every-node 1.2 s (concurrent rounds overlap)

CHECK                   SUBJECT                                STATUS  KEY FIGURE
clusterip/reachable     from node-a 10.96.0.10:80              pass    p50 1.2 ms
pod/direct              node-a → node-b 10.244.1.5:8080 web-1  pass    answered 3
lb/distribution         from node-b 10.96.0.10:80              fail    p-value 1.2e-118
clusterip/all-backends  from node-b                            error
nodeport/every-node     cluster                                skip

Failures

[fail] lb/distribution from node-b 10.96.0.10:80
    backend web-2 answered 5 of 300 requests
    expected: p-value ≥ 0.001
    observed: p-value 1.2e-118
    likely cause: service proxy (kube-proxy) on node-b
      - pod IPs of all backends answer from node-b
      - node-a spreads evenly (p-value 0.42)
    next: read kube-proxy's log on node-b

[error] clusterip/all-backends from node-b
    the client agent on node-b did not report within 30 s

Skipped

nodeport/every-node cluster: needs 2 schedulable nodes, found 1

2 passed, 1 failed, 1 skipped, 1 error
";

    #[test]
    fn renders_the_whole_report() {
        let text = render(&sample_report(), false);
        assert_eq!(text, EXPECTED, "got:\n{text}");
    }

    #[test]
    fn a_watch_timeline_says_when_how_long_where_and_what_the_nodes_did() {
        let mut report = sample_report();
        report.timeline = super::fixtures::sample_timeline();
        let text = render(&report, false);
        assert!(
            text.contains("Timeline (agents' clock, UTC)\n\n10:01:02.345Z    5.2 s  node-b clusterip  outage, 26 failed: timeout  [nodes: node-b NodeNotSchedulable -0.4 s]\n"),
            "{text}"
        );
    }

    #[test]
    fn all_pass_report_has_no_failure_section() {
        let mut report = sample_report();
        report.results.truncate(2);
        report.phases.clear();
        let text = render(&report, false);
        assert!(!text.contains("Failures") && !text.contains("Skipped"));
        assert!(!text.contains("phases"));
        assert!(text.ends_with("\n\n2 passed, 0 failed, 0 skipped, 0 errors\n"), "{text}");
    }

    #[test]
    fn empty_report_says_so() {
        let mut report = sample_report();
        report.results.clear();
        let text = render(&report, false);
        assert!(text.contains("\nno results\n"), "{text}");
    }

    #[test]
    fn colour_only_when_asked() {
        let report = sample_report();
        assert!(!render(&report, false).contains('\x1b'));
        let colored = render(&report, true);
        assert!(colored.contains("\x1b[32mpass\x1b[0m"));
        assert!(colored.contains("\x1b[31mfail\x1b[0m"));
        assert!(colored.contains("\x1b[33mskip\x1b[0m"));
        assert!(colored.contains("\x1b[35merror\x1b[0m"));
        // Colour must not shift columns: strip it and the plain text remains.
        let stripped = colored
            .replace("\x1b[0m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[33m", "")
            .replace("\x1b[35m", "");
        assert_eq!(stripped, EXPECTED);
    }

    #[test]
    fn no_color_disables_colour_when_present_and_non_empty() {
        assert!(color_wanted_given(true, None));
        assert!(color_wanted_given(true, Some(OsStr::new(""))));
        assert!(!color_wanted_given(true, Some(OsStr::new("1"))));
        assert!(!color_wanted_given(false, None));
    }

    #[test]
    fn key_figure_prefers_known_measurements_then_the_first() {
        let base = CheckResult::new("c/x", Status::Pass, Subject::default(), "m");
        let r = base.clone().measure("alpha", "x").measure("convergenceMs", 850);
        assert_eq!(key_figure(&r), "converged in 850 ms");
        let r = r.measure("pValue", 0.18454);
        assert_eq!(key_figure(&r), "p-value 0.185");
        let r = base.clone().measure("zeta", 2).measure("beta", 0.5);
        assert_eq!(key_figure(&r), "beta 0.5");
        assert_eq!(key_figure(&base), "");
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(number(1234.56), "1235");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(0.1234), "0.123");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.00005), "5.0e-5");
        assert_eq!(number(-12.34), "-12.3");
        assert_eq!(duration(999), "999 ms");
        assert_eq!(duration(1_000), "1.0 s");
        assert_eq!(duration(125_000), "2m05s");
    }
}
