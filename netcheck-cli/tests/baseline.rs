//! `--baseline` against a real cluster: a report from a healthy run, then the same run with a fault
//! injected on purpose (kube-proxy stopped on node-b and its rules flushed) lists the regressions
//! and exits 1; the healthy run compared with itself exits 0.

mod common;

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_netcheck");

fn testbed(script: &str, args: &[&str]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testbed").join(script);
    let out = Command::new(&path).args(args).output().expect("testbed script runs");
    assert!(out.status.success(), "{script} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_fault_after_the_baseline_is_a_regression() {
    if !common::cluster_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("netcheck-baseline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let before = dir.join("before.json");
    let args = ["run", "--check", "clusterip/reachable", "--check", "pod/direct"];
    let out = Command::new(BIN).args(args).args(["-o", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&before, &out.stdout).unwrap();

    // Latency on a busy 2-core testbed swings; this test is about pass → fail, so times get a wide margin.
    let compare = ["--baseline", before.to_str().unwrap(), "--tolerance", "2000"];
    let same = Command::new(BIN).args(args).args(compare).output().unwrap();
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stdout));

    testbed("stop", &["kube-proxy", "node-b", "--flush-rules"]);
    let after = Command::new(BIN).args(args).args(compare).output();
    testbed("start", &["kube-proxy", "node-b"]);
    let after = after.unwrap();
    let text = String::from_utf8_lossy(&after.stdout);
    assert_eq!(after.status.code(), Some(1), "{text}");
    assert!(text.contains("Regressions against the baseline"), "{text}");
    assert!(text.contains("clusterip/reachable from node-b") && text.contains("pass → fail"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}
