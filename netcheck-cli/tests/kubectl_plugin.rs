//! netcheck as a kubectl plugin: `kubectl-netcheck` on the PATH makes `kubectl netcheck …` work,
//! with the kubeconfig kubectl's environment names; and `netcheck version` against the cluster.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_netcheck");

/// kubectl: $KUBECTL (the Makefile points it at the testbed's), else the one on the PATH.
fn kubectl() -> PathBuf {
    std::env::var_os("KUBECTL").map_or_else(|| PathBuf::from("kubectl"), PathBuf::from)
}

/// Runs `kubectl ARGS` with a PATH whose first entry holds `kubectl-netcheck` (a link to this build).
fn kubectl_with_plugin(args: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("netcheck-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("kubectl-netcheck");
    if !link.exists() {
        std::os::unix::fs::symlink(BIN, &link).unwrap();
    }
    let path = std::env::join_paths(
        std::iter::once(dir.clone()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let out = Command::new(kubectl()).args(args).env("PATH", path).output().expect("kubectl runs");
    std::fs::remove_dir_all(&dir).ok();
    out
}

#[test]
fn kubectl_netcheck_lists_and_runs_through_kubectls_plugin_mechanism() {
    if !common::cluster_available() {
        return;
    }
    let list = kubectl_with_plugin(&["netcheck", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert!(listed.contains("clusterip/reachable") && listed.contains("quick"), "{listed}");
    let help = kubectl_with_plugin(&["netcheck", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: kubectl netcheck"), "usage as the user typed it");
    let run = kubectl_with_plugin(&["netcheck", "run", "--scenario", "quick", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|_| panic!("no report: {}", String::from_utf8_lossy(&run.stderr)));
    assert_eq!(run.status.code(), Some(0), "{report:#}");
    assert!(report["results"].as_array().is_some_and(|r| !r.is_empty()), "{report:#}");
}

#[test]
fn version_names_client_server_and_whether_every_node_holds_the_image() {
    if !common::cluster_available() {
        return;
    }
    let out = Command::new(BIN).arg("version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("client   netcheck {}", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains("server   Kubernetes v1."), "{text}");
    assert!(text.contains(&format!("image    {} (the default)", netcheck::runner::DEFAULT_IMAGE)), "{text}");
    assert!(text.contains("nodes    all 2 list the image"), "{text}");
    let missing =
        Command::new(BIN).args(["version", "--image", "localhost/netcheck/agent:0.0.0-none"]).output().unwrap();
    let text = String::from_utf8_lossy(&missing.stdout);
    assert!(text.contains("2 of 2 do not list the image: node-a, node-b"), "{text}");
    let client_only = Command::new(BIN).args(["version", "--client", "--kubeconfig", "/nonexistent"]).output().unwrap();
    assert!(client_only.status.success(), "--client needs no cluster");
    assert_eq!(Command::new(BIN).arg("--version").output().unwrap().status.code(), Some(0));
}
