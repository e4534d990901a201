//! NodePort, externalTrafficPolicy Local, session affinity, UDP and no-endpoint checks against a real
//! cluster: a healthy cluster passes, and a node port dropped on one node fails exactly that node.
//!
//! Both tests use the harness's shared `agents` (deployed once for this binary); each fault is
//! undone before the next test.

mod common;

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use netcheck::harness::agents;
use netcheck::runner::manifests::NODEPORT_SERVICE;
use netcheck::runner::{Cluster, NoProgress, Session};
use netcheck::scenario::{self, Scenario};
use netcheck::{CheckResult, Status};
use rstest::rstest;

fn scenario(ids: &[&str]) -> Scenario {
    scenario::from_check_ids(&ids.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn of<'a>(results: &'a [CheckResult], check: &str) -> Vec<&'a CheckResult> {
    results.iter().filter(|r| r.check == check).collect()
}

#[rstest]
#[tokio::test]
async fn healthy_cluster_passes_the_service_behaviour_checks(agents: Option<&'static Session>) {
    let Some(session) = agents else { return };
    let cluster = &session.cluster;
    let ids = [
        "nodeport/every-node",
        "nodeport/local-policy",
        "clusterip/session-affinity",
        "clusterip/udp",
        "service/no-endpoints",
    ];
    let results = netcheck::orchestrator::run_checks(session, &scenario(&ids), &NoProgress).await;

    let bad: Vec<_> = results.iter().filter(|r| r.status != Status::Pass).collect();
    assert!(bad.is_empty(), "all pass on a healthy cluster: {bad:#?}");
    let nodes = cluster_nodes(cluster).await;
    // every client source plus the runner (the testbed's nodes are reachable from this machine)
    assert_eq!(of(&results, "nodeport/every-node").len(), (nodes + 1) * nodes, "source × target matrix");
    assert!(of(&results, "nodeport/every-node").iter().any(|r| r.subject.source_node.as_deref() == Some("runner")));
    let local = of(&results, "nodeport/local-policy");
    assert_eq!(local.len(), nodes);
    assert!(
        local.iter().any(|r| r.message.contains("source address preserved")),
        "a node with a local backend shows the runner's own address: {local:#?}"
    );
    for id in ["clusterip/session-affinity", "clusterip/udp", "service/no-endpoints"] {
        assert_eq!(of(&results, id).len(), nodes, "{id}: one result per node");
    }
}

async fn cluster_nodes(cluster: &Cluster) -> usize {
    netcheck::runner::inventory::nodes(cluster).await.unwrap().len()
}

/// A DROP for the node port on node-b's address, in node-b's namespace, fails every cell aimed at node-b, and only those,
/// and the diagnosis places the fault on node-b itself.
#[rstest]
#[tokio::test]
async fn dropped_node_port_is_placed_on_its_node(agents: Option<&'static Session>) {
    let Some(session) = agents else { return };
    let cluster = &session.cluster;
    let svc =
        Api::<Service>::namespaced(cluster.client.clone(), &session.namespace).get(NODEPORT_SERVICE).await.unwrap();
    let port = svc.spec.unwrap().ports.unwrap()[0].node_port.unwrap().to_string();
    // Only packets for node-b's own address: node-b's pods still reach the other nodes' ports.
    let nodes = netcheck::runner::inventory::nodes(cluster).await.unwrap();
    let node_b = nodes.iter().find(|n| n.name == "node-b").expect("the testbed has node-b");
    let node_b_ip = node_b.internal_ips[0].clone();
    let restore = common::drop_packets("node-b", &node_b_ip, "tcp", &port);

    let results = netcheck::orchestrator::run_checks(session, &scenario(&["nodeport/every-node"]), &NoProgress).await;
    drop(restore);

    let cells = of(&results, "nodeport/every-node");
    assert!(!cells.is_empty());
    for cell in &cells {
        let to_b = cell.subject.target_node.as_deref() == Some("node-b");
        assert_eq!(cell.status, if to_b { Status::Fail } else { Status::Pass }, "{cell:#?}");
        if to_b {
            let cause = &cell.diagnosis.as_ref().expect("diagnosis").likely_cause;
            assert!(cause.starts_with("node node-b itself"), "{cause}");
        }
    }
}
