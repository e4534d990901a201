//! Nodes the agent cannot run on, as a real cluster shows them: node-b labelled as another
//! architecture, as Windows, or as a virtual-kubelet node is a `skip` naming it in every check that
//! would have used it, while node-a is checked and the run exits 0; the agent image missing on node-b
//! ends the run at once, naming the node and how to load the image.
//!
//! Each test changes node-b and puts it back before asserting, so a failed assertion leaves the
//! cluster as it found it.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};

const BIN: &str = env!("CARGO_BIN_EXE_netcheck");
const NODE: &str = "node-b";
/// The testbed's image holds an amd64 binary only (image/build-oci on this machine).
const TESTBED_PLATFORMS: &str = "linux/amd64";
/// Checks that use every node as a source, and one (node ports) that also uses it as a target.
const CHECKS: [&str; 3] = ["clusterip/reachable", "pod/direct", "nodeport/every-node"];

/// Sets `key=value` on node-b and returns what it was (None: absent).
async fn label(nodes: &Api<Node>, key: &str, value: Option<&str>) -> Option<String> {
    let before = nodes.get(NODE).await.expect("node-b").metadata.labels.unwrap_or_default().get(key).cloned();
    let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
    nodes.patch(NODE, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("labelling node-b");
    before
}

fn run_checks() -> (Output, Duration) {
    let started = Instant::now();
    let mut args = vec!["run", "--image-platforms", TESTBED_PLATFORMS, "-o", "json"];
    for check in CHECKS {
        args.extend(["--check", check]);
    }
    let out = Command::new(BIN).args(&args).output().expect("netcheck runs");
    (out, started.elapsed())
}

/// Runs the checks with node-b labelled `key=value`, puts the label back, and returns the report.
async fn run_with_label(key: &str, value: &str) -> serde_json::Value {
    let client = common::client().await.expect("a cluster");
    let nodes: Api<Node> = Api::all(client);
    let before = label(&nodes, key, Some(value)).await;
    let (out, took) = tokio::task::spawn_blocking(run_checks).await.unwrap();
    label(&nodes, key, before.as_deref()).await;
    eprintln!("node-b as {key}={value}: exit {:?} in {:.1} s", out.status.code(), took.as_secs_f64());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("no report (exit {:?}): {}", out.status.code(), String::from_utf8_lossy(&out.stderr))
    });
    assert_eq!(out.status.code(), Some(0), "the other node passes, so the run does: {report:#}");
    report
}

/// Every check has a skip from node-b saying `why`, and node-a's own results pass.
fn assert_skipped_everywhere(report: &serde_json::Value, why: &str) {
    let results = report["results"].as_array().expect("results");
    for check in CHECKS {
        let from = |node: &'static str| {
            results.iter().filter(move |r| r["check"] == check && r["subject"]["sourceNode"] == node)
        };
        let skips: Vec<_> = from(NODE).collect();
        assert!(!skips.is_empty(), "{check}: no result from {NODE}: {report:#}");
        for skip in &skips {
            assert_eq!(skip["status"], "skip", "{check}: {skip}");
            let message = skip["message"].as_str().unwrap();
            assert!(message.contains(NODE) && message.contains(why), "{check}: {message}");
        }
        assert!(from("node-a").count() > 0, "{check}: node-a is still checked");
        assert!(from("node-a").all(|r| r["status"] == "pass"), "{check}: {report:#}");
    }
}

/// The node-port results that target node-b, by status.
fn node_port_targets(report: &serde_json::Value) -> Vec<String> {
    let results = report["results"].as_array().expect("results");
    results
        .iter()
        .filter(|r| r["check"] == "nodeport/every-node" && r["subject"]["targetNode"] == NODE)
        .map(|r| r["status"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_node_of_another_architecture_is_a_skip_and_still_a_node_port_target() {
    if !common::cluster_available() {
        return;
    }
    let report = run_with_label("kubernetes.io/arch", "arm64").await;
    assert_skipped_everywhere(&report, "is linux/arm64, and the agent image provides only linux/amd64");
    let targets = node_port_targets(&report);
    assert!(!targets.is_empty() && targets.iter().all(|s| s == "pass"), "its kube-proxy still serves: {targets:?}");
}

#[tokio::test]
async fn a_windows_node_is_a_skip_and_still_a_node_port_target() {
    if !common::cluster_available() {
        return;
    }
    let report = run_with_label("kubernetes.io/os", "windows").await;
    assert_skipped_everywhere(&report, "runs windows");
    let targets = node_port_targets(&report);
    assert!(!targets.is_empty() && targets.iter().all(|s| s == "pass"), "{targets:?}");
}

#[tokio::test]
async fn a_virtual_kubelet_node_is_a_skip_and_no_node_port_target() {
    if !common::cluster_available() {
        return;
    }
    let report = run_with_label("type", "virtual-kubelet").await;
    assert_skipped_everywhere(&report, "is a virtual node (virtual-kubelet)");
    let targets = node_port_targets(&report);
    assert!(!targets.is_empty() && targets.iter().all(|s| s == "skip"), "no kube-proxy to probe: {targets:?}");
}

fn testbed(script: &str) -> Command {
    Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testbed").join(script))
}

#[test]
fn the_agent_image_missing_on_one_node_fails_fast_naming_it_and_how_to_load_it() {
    if !common::cluster_available() {
        return;
    }
    let image = netcheck::runner::DEFAULT_IMAGE;
    let archive = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/netcheck-agent.tar");
    assert!(archive.exists(), "make image writes {} first", archive.display());
    let removed = testbed("node-ctr").args([NODE, "images", "rm", image]).status().expect("testbed/node-ctr");
    assert!(removed.success(), "cannot take {image} off {NODE}");
    let started = Instant::now();
    let out = Command::new(BIN).args(["run", "--check", "clusterip/reachable"]).output().expect("netcheck runs");
    let took = started.elapsed();
    let reloaded = testbed("load-image").arg(&archive).output().expect("testbed/load-image");
    assert!(reloaded.status.success(), "reloading the image: {}", String::from_utf8_lossy(&reloaded.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("image missing on {NODE}: exit {:?} in {:.1} s", out.status.code(), took.as_secs_f64());
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("the agent image {image} is not on node {NODE}")), "{stderr}");
    assert!(stderr.contains("kind load docker-image") && stderr.contains("--image"), "{stderr}");
    assert!(took < Duration::from_secs(60), "fails fast, not at --timeout: {took:?}");
}
