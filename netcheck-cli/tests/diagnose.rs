//! `netcheck diagnose` as a user runs it: the checklist on stdout (human and JSON), exit code 0 for a
//! healthy Service, 1 for a broken link, 2 when it could not run.

mod common;

use std::process::{Command, Output};

fn netcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netcheck")).args(args).env_remove("RUST_LOG").output().expect("netcheck runs")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn a_non_service_target_is_refused_before_connecting() {
    let out = netcheck(&["diagnose", "deployment/web", "--kubeconfig", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("netcheck: invalid input: 'deployment/web': diagnose takes a Service"), "{err}");
}

/// The API server's own Service: no selector, endpoints written by the API server, reachable from
/// every node. Every link holds (the pod links do not apply).
#[test]
fn the_kubernetes_service_is_healthy_in_json() {
    if !common::cluster_available() {
        return;
    }
    let out = netcheck(&["diagnose", "service/kubernetes", "-n", "default", "-o", "json", "--image", &image()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let checklist = json(&out);
    assert_eq!(checklist["firstBroken"], serde_json::Value::Null);
    let statuses: Vec<(String, String)> = checklist["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s["status"].as_str().unwrap().to_string()))
        .collect();
    let expected = [
        ("service", "pass"),
        ("selector", "skip"),
        ("pods-ready", "skip"),
        ("target-port", "skip"),
        ("endpoints", "pass"),
        ("pod-ip", "pass"),
        ("cluster-ip", "pass"),
        ("dns", "pass"),
        ("node-port", "skip"),
        ("load-balancer", "skip"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(statuses, expected, "{checklist:#}");
}

#[test]
fn a_missing_service_is_the_first_broken_link_and_exits_1() {
    if !common::cluster_available() {
        return;
    }
    let out = netcheck(&["diagnose", "kubernets", "-n", "default", "--read-only"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("✗ service        no Service named kubernets in namespace default   ← first broken link"),
        "{text}"
    );
    assert!(text.contains("did you mean service/kubernetes?"), "{text}");
}

#[test]
fn an_unknown_port_is_bad_input() {
    if !common::cluster_available() {
        return;
    }
    let out = netcheck(&["diagnose", "service/kubernetes", "-n", "default", "--port", "9999", "--read-only"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("service/kubernetes has no port '9999' (its ports: https 443→6443/TCP)"), "{err}");
}

fn image() -> String {
    std::env::var("NETCHECK_IMAGE")
        .unwrap_or_else(|_| concat!("localhost/netcheck/agent:", env!("CARGO_PKG_VERSION")).to_string())
}
