//! The run's namespace is removed on Ctrl-C, kept with --keep, and collected by `netcheck gc`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};

const BIN: &str = env!("CARGO_BIN_EXE_netcheck");

async fn live_namespaces(client: &kube::Client) -> Vec<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    let list = api.list(&ListParams::default().labels("app.kubernetes.io/managed-by=netcheck")).await.unwrap();
    list.items.into_iter().filter(|n| n.metadata.deletion_timestamp.is_none()).filter_map(|n| n.metadata.name).collect()
}

#[tokio::test]
async fn interrupt_deletes_the_namespace() {
    let Some(client) = common::client().await else { return };
    // Ctrl-C, a CI runner's cancel, a closed terminal: each stops the run, cleans up, and exits as a
    // shell reports that signal.
    for (signal, code) in [("INT", 130), ("TERM", 143), ("HUP", 129)] {
        let before = live_namespaces(&client).await;
        let child = Command::new(BIN)
            .args(["run", "--scenario", "quick"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the run has created its namespace, then send the signal.
        let deadline = Instant::now() + Duration::from_secs(30);
        let created = loop {
            let now = live_namespaces(&client).await;
            if let Some(ns) = now.into_iter().find(|n| !before.contains(n)) {
                break ns;
            }
            assert!(Instant::now() < deadline, "the run never created its namespace");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let status = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "SIG{signal}: {stderr}");
        assert!(stderr.contains(&format!("interrupted by SIG{signal}")), "{stderr}");
        assert!(!live_namespaces(&client).await.contains(&created), "{created} is being deleted");
    }
}

#[tokio::test]
async fn keep_leaves_the_namespace_and_gc_collects_it() {
    let Some(client) = common::client().await else { return };
    let before = live_namespaces(&client).await;
    let out = Command::new(BIN).args(["run", "--check", "pod/direct", "--keep", "-o", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kept = format!("netcheck-{}", report["runId"].as_str().unwrap());
    assert!(live_namespaces(&client).await.contains(&kept), "--keep keeps {kept}");
    assert!(!before.contains(&kept));

    // A decoy: someone else's namespace with only the generic managed-by label. gc never takes it.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let decoy_name = format!("decoy-{}", std::process::id());
    let decoy: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": decoy_name, "labels": {"app.kubernetes.io/managed-by": "netcheck"}}
    }))
    .unwrap();
    namespaces.create(&PostParams::default(), &decoy).await.unwrap();

    // Not expired yet: plain gc leaves it, a dry run names it and deletes nothing, gc --all deletes it.
    let gc = Command::new(BIN).arg("gc").output().unwrap();
    assert_eq!(gc.status.code(), Some(0));
    assert!(live_namespaces(&client).await.contains(&kept));
    let dry = Command::new(BIN).args(["gc", "--all", "--dry-run"]).output().unwrap();
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(dry.status.code(), Some(0));
    assert!(dry_out.contains(&format!("would delete namespace {kept}: run ")), "{dry_out}");
    assert!(live_namespaces(&client).await.contains(&kept), "a dry run deletes nothing");
    let gc_all = Command::new(BIN).args(["gc", "--all"]).output().unwrap();
    let gc_out = String::from_utf8_lossy(&gc_all.stdout);
    assert_eq!(gc_all.status.code(), Some(0));
    assert!(gc_out.contains(&format!("deleted namespace {kept}")), "{gc_out}");
    assert!(
        gc_out
            .contains(&format!("kept namespace {decoy_name}: left alone: not recognised as a netcheck run namespace")),
        "{gc_out}"
    );
    let live = live_namespaces(&client).await;
    namespaces.delete(&decoy_name, &Default::default()).await.unwrap();
    assert!(!live.contains(&kept));
    assert!(live.contains(&decoy_name), "gc --all took a namespace it did not create");
}
