//! A node with no room for a client agent (its CPU all requested) is a skip naming the scheduler's
//! reason, and the other nodes are still checked: a full node must not cost the whole run.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

const NODE: &str = "node-b";
const HOG_NAMESPACE: &str = "netcheck-test-cpu-hog";

/// A Kubernetes CPU quantity (`2`, `1.5`, `250m`) in millicores.
fn millicores(q: &str) -> u64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse().expect("millicores"),
        None => (q.parse::<f64>().expect("cores") * 1000.0) as u64,
    }
}

/// CPU requested on `node` by the pods that will keep holding it: not finished, not being deleted. A
/// terminating pod from an earlier test frees its request when it goes; counted, it left the hog too
/// small once it had gone, and the client agent fitted.
async fn requested_on(pods: &Api<Pod>, node: &str) -> u64 {
    let on_node = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let list = pods.list(&on_node).await.expect("pods listed");
    list.items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")))
        .flat_map(|p| p.spec.iter().flat_map(|s| s.containers.iter()))
        .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get("cpu").map(|q| millicores(&q.0)))
        .sum()
}

/// A pause pod on `node` requesting all of its CPU that is not yet requested but 5 millicores: less
/// than a client agent's 10.
async fn fill_node(client: &kube::Client, node: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // A namespace left by an earlier, interrupted run of this test goes first.
    namespaces.delete(HOG_NAMESPACE, &DeleteParams::default()).await.ok();
    let deadline = Instant::now() + Duration::from_secs(90);
    while namespaces.get_opt(HOG_NAMESPACE).await.expect("namespace read").is_some() {
        assert!(Instant::now() < deadline, "{HOG_NAMESPACE} from an earlier run is not going away");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let allocatable = Api::<Node>::all(client.clone()).get(node).await.expect("the node");
    let cpu = allocatable.status.and_then(|s| s.allocatable).and_then(|a| a.get("cpu").map(|q| millicores(&q.0)));
    let free = cpu.expect("allocatable cpu") - requested_on(&Api::all(client.clone()), node).await;
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": HOG_NAMESPACE}})).unwrap();
    namespaces.create(&PostParams::default(), &ns).await.expect("namespace");
    let hog: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "cpu-hog"},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10.2", "imagePullPolicy": "Never",
                "resources": {"requests": {"cpu": format!("{}m", free - 5)}}}],
        },
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), HOG_NAMESPACE);
    pods.create(&PostParams::default(), &hog).await.expect("the hog pod");
    let deadline = Instant::now() + Duration::from_secs(60);
    while pods.get("cpu-hog").await.ok().and_then(|p| p.spec?.node_name).is_none_or(|n| n != node) {
        assert!(Instant::now() < deadline, "the hog pod was never scheduled on {node}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_node_without_room_for_its_client_agent_is_skipped_and_the_others_are_checked() {
    let Some(client) = common::client().await else { return };
    fill_node(&client, NODE).await;
    let out = Command::new(env!("CARGO_BIN_EXE_netcheck"))
        .args(["run", "--check", "clusterip/reachable", "-o", "json"])
        .output()
        .expect("netcheck runs");
    Api::<Namespace>::all(client.clone()).delete(HOG_NAMESPACE, &DeleteParams::default()).await.ok();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("no report (exit {:?}): {}", out.status.code(), String::from_utf8_lossy(&out.stderr))
    });
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let results = report["results"].as_array().expect("results");
    let on = |node: &str| results.iter().find(|r| r["subject"]["sourceNode"] == node).expect("a result per node");
    let skipped = on(NODE);
    assert_eq!(skipped["status"], "skip", "{skipped}");
    let message = skipped["message"].as_str().unwrap();
    assert!(message.contains("Unschedulable") && message.contains("Insufficient cpu"), "{message}");
    assert_eq!(on("node-a")["status"], "pass", "the other node is still checked");
    // Wait for the hog to go, so later tests have the node's CPU back.
    let pods: Api<Pod> = Api::namespaced(client.clone(), HOG_NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(60);
    while pods.get_opt("cpu-hog").await.ok().flatten().is_some() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
