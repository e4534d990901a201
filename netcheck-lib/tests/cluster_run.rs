//! `netcheck run` against a real cluster (the testbed in CI): a healthy cluster passes, and an injected
//! fault is detected on the right node with the right diagnosis.

mod common;

use netcheck::harness::{cluster, run_scenario};
use netcheck::runner::Cluster;
use netcheck::scenario::Scenario;
use netcheck::{Report, Status};
use rstest::rstest;

fn results<'a>(report: &'a Report, check: &str) -> Vec<&'a netcheck::CheckResult> {
    report.results.iter().filter(|r| r.check == check).collect()
}

#[rstest]
#[tokio::test]
async fn healthy_cluster_passes_the_quick_scenario(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let report = run_scenario(&cluster, netcheck::scenario::load("quick").unwrap()).await;
    report.assert_passed();
    let nodes = report.cluster.nodes.len();
    for check in ["clusterip/reachable", "clusterip/all-backends", "lb/distribution"] {
        assert_eq!(results(&report, check).len(), nodes, "{check}: one result per source node");
    }
    // 3 server agents, probed from every node.
    assert_eq!(results(&report, "pod/direct").len(), 3 * nodes);
    let dist = results(&report, "lb/distribution");
    assert!(dist.iter().all(|r| r.measurements["pValue"].as_f64().is_some()), "distribution carries its p-value");
}

/// kube-proxy stopped on node-b and its rules flushed: the ClusterIP fails from node-b only, pod IPs
/// still answer from everywhere, and the diagnosis names the service proxy on node-b.
#[rstest]
#[tokio::test]
async fn stopped_kube_proxy_is_found_on_its_node(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let scenario = Scenario::from_yaml(
        "apiVersion: netcheck.dev/v1\nkind: Scenario\nmetadata: {name: fault}\nspec:\n  checks:\n    - id: clusterip/reachable\n      params: {requests: 10, timeoutMs: 1000}\n    - pod/direct\n",
        "fault.yaml",
    )
    .unwrap();
    common::testbed("stop", &["kube-proxy", "node-b", "--flush-rules"]);
    let _restore = common::Restore(vec![("start", common::args(&["kube-proxy", "node-b"]))]);

    let report = run_scenario(&cluster, scenario).await;

    let reachable = results(&report, "clusterip/reachable");
    let failed: Vec<_> = reachable.iter().filter(|r| r.status == Status::Fail).collect();
    assert_eq!(failed.len(), 1, "exactly one node fails: {reachable:#?}");
    assert_eq!(failed[0].subject.source_node.as_deref(), Some("node-b"));
    let cause = &failed[0].diagnosis.as_ref().expect("a diagnosis").likely_cause;
    assert!(cause.contains("service proxy on node-b"), "{cause}");
    assert!(reachable.iter().any(|r| r.status == Status::Pass && r.subject.source_node.as_deref() == Some("node-a")));
    assert!(results(&report, "pod/direct").iter().all(|r| r.status == Status::Pass), "pod IPs still answer");
    assert_eq!(report.exit_code(), 1);
}
