//! The verdict of a watch: every node × path against the budget, and the timeline. Pure.
//!
//! Invariant: missing data is never a pass. A node without a record, a path without attempts in the
//! judged span, or a span nobody observed longer than the outage budget fails, and says so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::protocol::watch::{LATENCY_BUCKETS_MS, PathRecord, WatchRecord, Window};
use crate::report::{CheckResult, Status, Subject, TimelineEntry, WindowKind};

/// What a watch may cost, per node × path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// The longest outage allowed.
    pub max_outage_ms: u64,
    /// The longest span nobody observed (an agent restarting: its last write to its successor's
    /// first attempt) that still passes; longer, nothing can be said about the paths then.
    pub max_unobserved_ms: u64,
    /// The largest fraction of failed attempts allowed, 0–1.
    pub max_failed_fraction: f64,
    /// Whether a long-lived connection may be cut.
    pub allow_cuts: bool,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_outage_ms: 2_000, max_unobserved_ms: 10_000, max_failed_fraction: 0.01, allow_cuts: false }
    }
}

/// Attempts and failures of one path at the moment traffic flowed everywhere: the judged span's
/// figures are the record's minus these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Attempts.
    pub requests: u64,
    /// Failed attempts.
    pub failures: u64,
}

/// Where the judged span starts: the time traffic flowed on every path, and each node × path's
/// counts then.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    /// Epoch ms.
    pub flowing_ms: u64,
    /// Per node, per path.
    pub counts: BTreeMap<String, BTreeMap<String, Counts>>,
    /// The API server's version then, so that a report after an upgrade shows both.
    #[serde(default)]
    pub version: String,
}

impl Baseline {
    /// The baseline of `records` at `flowing_ms`.
    pub fn of(records: &BTreeMap<String, WatchRecord>, flowing_ms: u64) -> Baseline {
        let counts = records
            .iter()
            .map(|(node, r)| {
                let paths =
                    r.paths.iter().map(|(id, p)| (id.clone(), Counts { requests: p.requests, failures: p.failures }));
                (node.clone(), paths.collect())
            })
            .collect();
        Baseline { flowing_ms, counts, version: String::new() }
    }
}

/// Something the cluster reported about a node (an Event, or a condition seen at the end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeEvent {
    /// Epoch ms.
    pub at_ms: u64,
    /// The node.
    pub node: String,
    /// The event's reason, e.g. `NodeNotSchedulable`, `NodeNotReady`, `Starting`.
    pub reason: String,
}

/// The check id of a path id.
pub fn check_id(path: &str) -> String {
    let kind = path.split('/').next().unwrap_or(path);
    format!("watch/{kind}")
}

/// Everything the judge needs.
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    /// Records by node.
    pub records: &'a BTreeMap<String, WatchRecord>,
    /// Nodes that must have a record.
    pub nodes: &'a [String],
    /// Nodes no agent could run on, with why (a skip each).
    pub unhosted: &'a [(String, String)],
    /// The plan's path ids.
    pub paths: &'a [String],
    /// Where the judged span starts.
    pub baseline: &'a Baseline,
    /// Where it ends (epoch ms).
    pub end_ms: u64,
    /// The plan's flush period: a record older than three of them at the end has a gap.
    pub flush_ms: u64,
    /// Node events, any order.
    pub events: &'a [NodeEvent],
}

/// The results (one per node × path) and the timeline, oldest first.
pub fn judge(e: &Evidence, budget: &Budget) -> (Vec<CheckResult>, Vec<TimelineEntry>) {
    let mut results = Vec::new();
    let mut timeline = Vec::new();
    for (node, why) in e.unhosted {
        for path in e.paths {
            results.push(CheckResult::new(&check_id(path), Status::Skip, subject(node, path), why.clone()));
        }
    }
    for node in e.nodes {
        let Some(record) = e.records.get(node) else {
            for path in e.paths {
                results.push(CheckResult::new(
                    &check_id(path),
                    Status::Fail,
                    subject(node, path),
                    format!("no watch agent recorded anything on {node}: nothing is known about this path"),
                ));
            }
            continue;
        };
        let gaps = gaps_in_span(record, e);
        for gap in &gaps {
            timeline.push(entry(WindowKind::Unobserved, node, "*", gap, e.events));
        }
        for path in e.paths {
            let base = e.baseline.counts.get(node).and_then(|c| c.get(path)).copied().unwrap_or_default();
            let (result, windows) = judge_path(node, path, record.paths.get(path), base, &gaps, e, budget);
            timeline.extend(windows);
            results.push(result);
        }
    }
    timeline.sort_by(|a, b| (a.start_ms, &a.node, &a.path).cmp(&(b.start_ms, &b.node, &b.path)));
    (results, timeline)
}

fn subject(node: &str, path: &str) -> Subject {
    match path.strip_prefix("nodeport/") {
        Some(target) => Subject::from_node(node).to_node(target),
        None => Subject::from_node(node).named(path),
    }
}

/// Spans nobody observed on this node inside the judged span: the record's own gaps, and the time
/// since its last write when that is older than three flush periods.
fn gaps_in_span(record: &WatchRecord, e: &Evidence) -> Vec<Window> {
    let mut gaps = record.gaps.clone();
    if record.updated_ms + 3 * e.flush_ms < e.end_ms {
        gaps.push(Window {
            start_ms: record.updated_ms,
            end_ms: e.end_ms,
            failures: 0,
            detail: format!("the agent on {} ({}) stopped writing its record", record.node, record.pod),
        });
    }
    gaps.into_iter().filter_map(|w| clip(w, e.baseline.flowing_ms, e.end_ms)).collect()
}

fn clip(mut w: Window, from: u64, to: u64) -> Option<Window> {
    if w.end_ms <= from || w.start_ms >= to {
        return None;
    }
    w.start_ms = w.start_ms.max(from);
    w.end_ms = w.end_ms.min(to);
    Some(w)
}

fn judge_path(
    node: &str,
    path: &str,
    record: Option<&PathRecord>,
    base: Counts,
    gaps: &[Window],
    e: &Evidence,
    budget: &Budget,
) -> (CheckResult, Vec<TimelineEntry>) {
    let check = check_id(path);
    let Some(record) = record else {
        let message = format!("the agent on {node} recorded no attempt on {path}");
        return (CheckResult::new(&check, Status::Fail, subject(node, path), message), Vec::new());
    };
    let (from, to) = (e.baseline.flowing_ms, e.end_ms);
    let mut outages: Vec<Window> = record.windows.clone();
    if let Some(open) = &record.open {
        // Still failing when the record was last written: the outage lasts at least until then.
        let mut open = open.clone();
        open.end_ms = open.end_ms.max(record_end(e, node));
        outages.push(open);
    }
    let outages: Vec<Window> = outages.into_iter().filter_map(|w| clip(w, from, to)).collect();
    let cuts: Vec<_> = record.cuts.iter().filter(|c| c.at_ms >= from && c.at_ms <= to).collect();
    let requests = record.requests.saturating_sub(base.requests);
    let failures = record.failures.saturating_sub(base.failures);
    let fraction = if requests == 0 { 0.0 } else { failures as f64 / requests as f64 };
    let longest = outages.iter().max_by_key(|w| w.duration_ms());
    let longest_gap = gaps.iter().max_by_key(|w| w.duration_ms());

    let mut problems = Vec::new();
    if requests == 0 {
        problems.push(format!(
            "no attempt on {path} was recorded while watching ({} from {}; the agents write every {})",
            seconds(to.saturating_sub(from)),
            clock(from),
            seconds(e.flush_ms)
        ));
    }
    if let Some(w) = longest.filter(|w| w.duration_ms() > budget.max_outage_ms) {
        problems.push(format!(
            "longest outage {} (budget {}) from {} ({}, {} failed)",
            seconds(w.duration_ms()),
            seconds(budget.max_outage_ms),
            clock(w.start_ms),
            w.detail,
            w.failures
        ));
    }
    if fraction > budget.max_failed_fraction {
        problems.push(format!(
            "{failures} of {requests} attempts failed ({:.2} %, budget {:.2} %)",
            fraction * 100.0,
            budget.max_failed_fraction * 100.0
        ));
    }
    if !cuts.is_empty() && !budget.allow_cuts {
        let first = cuts[0];
        problems.push(format!(
            "{} long-lived connection(s) cut, the first at {} (to {}: {})",
            cuts.len(),
            clock(first.at_ms),
            if first.backend.is_empty() { "?" } else { &first.backend },
            first.detail
        ));
    }
    if let Some(g) = longest_gap.filter(|g| g.duration_ms() > budget.max_unobserved_ms) {
        problems.push(format!(
            "unobserved for {} (budget {}) from {}: {}",
            seconds(g.duration_ms()),
            seconds(budget.max_unobserved_ms),
            clock(g.start_ms),
            g.detail
        ));
    }
    let status = if problems.is_empty() { Status::Pass } else { Status::Fail };
    let message = if problems.is_empty() {
        format!(
            "{requests} attempts, {failures} failed; longest outage {} (budget {})",
            seconds(longest.map_or(0, Window::duration_ms)),
            seconds(budget.max_outage_ms)
        )
    } else {
        problems.join("; ")
    };
    let mut result = CheckResult::new(&check, status, subject(node, path), message)
        .measure("requests", requests)
        .measure("failures", failures)
        .measure("failedFraction", (fraction * 1e4).round() / 1e4)
        .measure("outages", outages.len() as u64)
        .measure("longestOutageMs", longest.map_or(0, Window::duration_ms))
        .measure("cuts", cuts.len() as u64)
        .measure("unobservedMs", gaps.iter().map(Window::duration_ms).sum::<u64>());
    if let Some(p99) = latency_quantile(&record.latency_buckets, 0.99) {
        result = result.measure("latencyP99MsAtMost", p99);
    }
    let mut entries: Vec<TimelineEntry> =
        outages.iter().map(|w| entry(WindowKind::Outage, node, path, w, e.events)).collect();
    for c in cuts {
        let w = Window {
            start_ms: c.at_ms,
            end_ms: c.at_ms,
            failures: 1,
            detail: format!("to {}: {}", if c.backend.is_empty() { "?" } else { &c.backend }, c.detail),
        };
        entries.push(entry(WindowKind::Cut, node, path, &w, e.events));
    }
    (result, entries)
}

/// When `node`'s record was last written (the judged end when there is none).
fn record_end(e: &Evidence, node: &str) -> u64 {
    e.records.get(node).map_or(e.end_ms, |r| r.updated_ms)
}

/// The upper bound of the bucket holding quantile `q` of the answered attempts.
fn latency_quantile(buckets: &[u64], q: f64) -> Option<u64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil() as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(LATENCY_BUCKETS_MS.get(i).copied().unwrap_or(u64::MAX));
        }
    }
    None
}

fn entry(kind: WindowKind, node: &str, path: &str, w: &Window, events: &[NodeEvent]) -> TimelineEntry {
    // What the cluster said about nodes from 30 s before the window until 2 s after it: a drain's
    // cordon or a NotReady usually comes a little before the traffic notices.
    let mut during: Vec<(u64, String)> = events
        .iter()
        .filter(|ev| ev.at_ms + 30_000 >= w.start_ms && ev.at_ms <= w.end_ms + 2_000)
        .map(|ev| {
            let offset = ev.at_ms as i64 - w.start_ms as i64;
            (ev.at_ms, format!("{} {} {:+.1} s", ev.node, ev.reason, offset as f64 / 1000.0))
        })
        .collect();
    during.sort();
    TimelineEntry {
        kind,
        node: node.into(),
        path: path.into(),
        start: clock(w.start_ms),
        start_ms: w.start_ms,
        end_ms: w.end_ms,
        duration_ms: w.duration_ms(),
        failures: w.failures,
        detail: w.detail.clone(),
        during: during.into_iter().map(|(_, s)| s).collect(),
    }
}

/// `12:01:02.345` style UTC time of an epoch ms, for messages; RFC 3339 when the time is invalid.
pub fn clock(ms: u64) -> String {
    match jiff::Timestamp::from_millisecond(ms as i64) {
        Ok(t) => t.strftime("%H:%M:%S%.3fZ").to_string(),
        Err(_) => ms.to_string(),
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::watch::{Cut, Observation};

    const T0: u64 = 1_800_000_000_000;

    /// A record of `node` whose `clusterip` path answered every 200 ms from T0 to T0+60 s, except in
    /// `[fail_from, fail_to)` (offsets in ms).
    fn record(node: &str, fail_from: u64, fail_to: u64) -> WatchRecord {
        let mut r = WatchRecord::new(node, &format!("c-{node}"), T0);
        let mut path = PathRecord::default();
        for i in 0..300u64 {
            let t = i * 200;
            let error = (t >= fail_from && t < fail_to).then(|| "timeout".to_string());
            path.observe(&Observation { start_ms: T0 + t, elapsed_ms: 2, error });
        }
        r.paths.insert("clusterip".into(), path);
        r.updated_ms = T0 + 60_000;
        r
    }

    fn run(records: BTreeMap<String, WatchRecord>, budget: Budget) -> (Vec<CheckResult>, Vec<TimelineEntry>) {
        let nodes = vec!["node-a".to_string(), "node-b".to_string()];
        let paths = vec!["clusterip".to_string()];
        let baseline = Baseline { flowing_ms: T0 + 1_000, ..Baseline::default() };
        let events = vec![NodeEvent { at_ms: T0 + 19_000, node: "node-b".into(), reason: "NodeNotReady".into() }];
        let e = Evidence {
            records: &records,
            nodes: &nodes,
            unhosted: &[],
            paths: &paths,
            baseline: &baseline,
            end_ms: T0 + 60_000,
            flush_ms: 2_000,
            events: &events,
        };
        judge(&e, &budget)
    }

    #[test]
    fn an_outage_longer_than_the_budget_fails_that_node_only_with_its_window() {
        let records = BTreeMap::from([
            ("node-a".to_string(), record("node-a", u64::MAX, u64::MAX)),
            ("node-b".to_string(), record("node-b", 20_000, 25_000)),
        ]);
        let (results, timeline) = run(records, Budget::default());
        let status: Vec<_> = results.iter().map(|r| (r.subject.source_node.clone().unwrap(), r.status)).collect();
        assert_eq!(status, [("node-a".into(), Status::Pass), ("node-b".into(), Status::Fail)]);
        assert!(results[1].message.contains("longest outage 5.0 s (budget 2.0 s)"), "{}", results[1].message);
        assert_eq!(results[1].measurements["longestOutageMs"], 5_000);
        assert_eq!(timeline.len(), 1);
        assert_eq!(
            (timeline[0].node.as_str(), timeline[0].start_ms - T0, timeline[0].duration_ms),
            ("node-b", 20_000, 5_000)
        );
        assert_eq!(timeline[0].during, ["node-b NodeNotReady -1.0 s"]);
    }

    #[test]
    fn a_short_outage_within_budget_passes_but_is_on_the_timeline() {
        let records = BTreeMap::from([
            ("node-a".to_string(), record("node-a", u64::MAX, u64::MAX)),
            ("node-b".to_string(), record("node-b", 20_000, 20_400)),
        ]);
        let budget = Budget { max_failed_fraction: 0.05, ..Budget::default() };
        let (results, timeline) = run(records, budget);
        assert!(results.iter().all(|r| r.status == Status::Pass), "{results:?}");
        assert_eq!(timeline.len(), 1);
        assert_eq!(timeline[0].duration_ms, 400);
    }

    #[test]
    fn a_missing_node_a_stale_record_and_a_cut_fail() {
        let mut stale = record("node-a", u64::MAX, u64::MAX);
        stale.updated_ms = T0 + 30_000;
        let (results, timeline) = run(BTreeMap::from([("node-a".to_string(), stale)]), Budget::default());
        assert!(results.iter().all(|r| r.status == Status::Fail), "{results:?}");
        assert!(results[0].message.contains("unobserved for 30.0 s (budget 10.0 s)"), "{}", results[0].message);
        assert!(results[1].message.contains("no watch agent recorded anything on node-b"));
        assert_eq!(timeline[0].kind, WindowKind::Unobserved);

        let mut cut = record("node-a", u64::MAX, u64::MAX);
        cut.paths.get_mut("clusterip").unwrap().cut(Cut {
            at_ms: T0 + 5_000,
            backend: "s-1".into(),
            detail: "reset".into(),
        });
        let records = BTreeMap::from([
            ("node-a".to_string(), cut.clone()),
            ("node-b".to_string(), record("node-b", u64::MAX, u64::MAX)),
        ]);
        let (results, _) = run(records.clone(), Budget::default());
        assert!(
            results[0].status == Status::Fail && results[0].message.contains("to s-1: reset"),
            "{}",
            results[0].message
        );
        let (results, _) = run(records, Budget { allow_cuts: true, ..Budget::default() });
        assert_eq!(results[0].status, Status::Pass);
    }

    #[test]
    fn failures_before_traffic_flowed_do_not_count() {
        // Warm-up failures at 0–800 ms, before traffic flowed at T0+1 s: 5 attempts, 4 failed then.
        let warm = record("node-a", 0, 800);
        let early = Baseline::of(&BTreeMap::from([("node-a".to_string(), record("node-a", 0, 800))]), T0);
        assert_eq!(early.counts["node-a"]["clusterip"], Counts { requests: 300, failures: 4 });
        let baseline = Baseline {
            flowing_ms: T0 + 1_000,
            counts: BTreeMap::from([(
                "node-a".to_string(),
                BTreeMap::from([("clusterip".to_string(), Counts { requests: 5, failures: 4 })]),
            )]),
            version: "v1.35.4".into(),
        };
        let records = BTreeMap::from([("node-a".to_string(), warm)]);
        let (nodes, paths) = (vec!["node-a".to_string()], vec!["clusterip".to_string()]);
        let e = Evidence {
            records: &records,
            nodes: &nodes,
            unhosted: &[("node-c".to_string(), "node node-c is cordoned (unschedulable)".to_string())],
            paths: &paths,
            baseline: &baseline,
            end_ms: T0 + 60_000,
            flush_ms: 2_000,
            events: &[],
        };
        let (results, timeline) = judge(&e, &Budget { max_failed_fraction: 0.0, ..Budget::default() });
        assert_eq!(results[0].status, Status::Skip, "the unhosted node is a skip, said first");
        assert_eq!(results[1].status, Status::Pass, "{}", results[1].message);
        assert_eq!(
            (results[1].measurements["requests"].as_u64(), results[1].measurements["failures"].as_u64()),
            (Some(295), Some(0))
        );
        assert!(timeline.is_empty(), "{timeline:?}");
        assert_eq!(latency_quantile(&records["node-a"].paths["clusterip"].latency_buckets, 0.99), Some(2));
        assert_eq!(check_id("nodeport/node-b"), "watch/nodeport");
        assert_eq!(clock(T0), "08:00:00.000Z");
    }
}
