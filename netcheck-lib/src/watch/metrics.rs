//! A watch's records as Prometheus metrics (OpenMetrics text, with prometheus-client), so that a
//! dashboard can follow an upgrade while it runs. Pure: rendered from a snapshot of the records.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::protocol::watch::{LATENCY_BUCKETS_MS, WatchRecord};

/// The labels of a node × path series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    node: String,
    path: String,
}

/// The labels of a per-node series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

/// A histogram whose buckets were counted elsewhere (by the agents): prometheus-client's own
/// histogram only observes values one by one.
#[derive(Debug, Default)]
struct CountedHistogram(Mutex<Counted>);

/// A histogram's sum, count, and per-bucket counts with their upper bounds.
type Counted = (f64, u64, Vec<(f64, u64)>);

impl TypedMetric for CountedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for CountedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = &*self.0.lock().map_err(|_| std::fmt::Error)?;
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(*sum, *count, buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The records as OpenMetrics text at `now_ms`: attempts, failures and cut connections per node ×
/// path, answered latencies as a histogram, the outage in progress (seconds, 0 when answering) and
/// each record's age.
pub fn render(records: &BTreeMap<String, WatchRecord>, now_ms: u64) -> String {
    let requests = Family::<PathLabels, Counter>::default();
    let failures = Family::<PathLabels, Counter>::default();
    let cuts = Family::<PathLabels, Counter>::default();
    let outage = Family::<PathLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let latency = Family::<PathLabels, CountedHistogram>::default();
    let age = Family::<NodeLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for (node, record) in records {
        age.get_or_create(&NodeLabels { node: node.clone() })
            .set(now_ms.saturating_sub(record.updated_ms) as f64 / 1000.0);
        for (path, p) in &record.paths {
            let labels = PathLabels { node: node.clone(), path: path.clone() };
            requests.get_or_create(&labels).inc_by(p.requests);
            failures.get_or_create(&labels).inc_by(p.failures);
            cuts.get_or_create(&labels).inc_by(p.cuts.len() as u64);
            let open = p.open.as_ref().map_or(0.0, |w| record.updated_ms.saturating_sub(w.start_ms) as f64 / 1000.0);
            outage.get_or_create(&labels).set(open);
            let bounds = LATENCY_BUCKETS_MS.iter().map(|ms| *ms as f64 / 1000.0).chain([f64::INFINITY]);
            let buckets: Vec<(f64, u64)> = bounds.zip(p.latency_buckets.iter().copied()).collect();
            let count = buckets.iter().map(|(_, n)| n).sum();
            if let Ok(mut h) = latency.get_or_create(&labels).0.lock() {
                *h = (p.latency_sum_ms as f64 / 1000.0, count, buckets);
            }
        }
    }
    let mut registry = Registry::with_prefix("netcheck_watch");
    registry.register("requests", "Attempts per source node and path", requests);
    registry.register("failures", "Failed attempts per source node and path", failures);
    registry.register("cuts", "Long-lived connections cut per source node and path", cuts);
    registry.register("outage_seconds", "How long the path has been failing (0: answering)", outage);
    registry.register("latency_seconds", "Latency of answered attempts", latency);
    registry.register("record_age_seconds", "Time since the node's agent last wrote its record", age);
    let mut text = String::new();
    // Encoding into a String cannot fail but for a poisoned lock, which leaves a partial text.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::watch::{Observation, PathRecord};

    #[test]
    fn a_failing_path_shows_its_counts_latency_and_open_outage() {
        let mut record = WatchRecord::new("node-b", "c-1", 1_000);
        let mut path = PathRecord::default();
        path.observe(&Observation { start_ms: 1_000, elapsed_ms: 3, error: None });
        path.observe(&Observation { start_ms: 1_200, elapsed_ms: 1_000, error: Some("timeout".into()) });
        record.paths.insert("clusterip".into(), path);
        record.updated_ms = 4_200;
        let text = render(&BTreeMap::from([("node-b".to_string(), record)]), 5_200);
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        has(r#"netcheck_watch_requests_total{node="node-b",path="clusterip"} 2"#);
        has(r#"netcheck_watch_failures_total{node="node-b",path="clusterip"} 1"#);
        has(r#"netcheck_watch_outage_seconds{node="node-b",path="clusterip"} 3.0"#);
        has(r#"netcheck_watch_latency_seconds_bucket{le="0.005",node="node-b",path="clusterip"} 1"#);
        has(r#"netcheck_watch_latency_seconds_count{node="node-b",path="clusterip"} 1"#);
        has(r#"netcheck_watch_latency_seconds_bucket{le="+Inf",node="node-b",path="clusterip"} 1"#);
        has(r#"netcheck_watch_record_age_seconds{node="node-b"} 1.0"#);
        assert!(text.ends_with("# EOF\n"));
    }
}
