//! Bad input gives one clear message, exit code 2, and leaves no namespace behind.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

fn netcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netcheck")).args(args).env_remove("RUST_LOG").output().expect("netcheck runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(name: &str, content: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netcheck-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn missing_kubeconfig_file_is_named() {
    let out = netcheck(&["run", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn garbage_kubeconfig_is_rejected() {
    let path = write("garbage", "this: [is not a kubeconfig");
    let out = netcheck(&["run", "--kubeconfig", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot use kubeconfig"), "{}", stderr(&out));
}

const UNREACHABLE: &str = "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: \"https://127.0.0.1:1\", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: x}
contexts:
- name: here
  context: {cluster: c, user: u}
current-context: here
";

#[test]
fn unknown_context_is_named() {
    let path = write("ctx", UNREACHABLE);
    let out = netcheck(&["run", "--kubeconfig", path.to_str().unwrap(), "--context", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
}

#[test]
fn unreachable_api_server_answers_within_seconds() {
    let path = write("unreachable", UNREACHABLE);
    let start = Instant::now();
    let out = netcheck(&["run", "--kubeconfig", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot reach the Kubernetes API server"), "{}", stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(15), "took {:?}", start.elapsed());
}

#[test]
fn unknown_check_id_lists_the_known_ones() {
    let out = netcheck(&["run", "--check", "clusterip/nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("clusterip/nope") && err.contains("clusterip/reachable"), "{err}");
}

async fn live_netcheck_namespaces(client: &kube::Client) -> Vec<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    let list = api.list(&ListParams::default().labels("app.kubernetes.io/managed-by=netcheck")).await.unwrap();
    list.items.into_iter().filter(|n| n.metadata.deletion_timestamp.is_none()).filter_map(|n| n.metadata.name).collect()
}

/// Needs a cluster: an image that does not exist fails fast, naming the pull error, and the namespace
/// is gone (or being deleted) afterwards.
#[tokio::test]
async fn missing_image_fails_fast_and_cleans_up() {
    let Ok(client) = kube::Client::try_default().await else {
        assert_ne!(
            std::env::var("NETCHECK_REQUIRE_CLUSTER").as_deref(),
            Ok("1"),
            "NETCHECK_REQUIRE_CLUSTER=1 but no cluster"
        );
        eprintln!("skipped: no cluster");
        return;
    };
    let before = live_netcheck_namespaces(&client).await;
    let start = Instant::now();
    let out = tokio::task::spawn_blocking(|| {
        netcheck(&["run", "--image", "registry.invalid/netcheck/none:0", "--timeout", "120s"])
    })
    .await
    .unwrap();
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("ErrImagePull") || err.contains("ImagePullBackOff"), "{err}");
    assert!(err.contains("is not on node node-"), "names the node: {err}");
    assert!(err.contains("kind load docker-image") && err.contains("--image"), "says how to load or push it: {err}");
    assert!(took < Duration::from_secs(60), "failed fast, not at the 120 s timeout: {took:?}");
    assert_eq!(live_netcheck_namespaces(&client).await, before, "no namespace left behind");
}

#[test]
fn unreadable_or_foreign_baseline_is_named_before_anything_runs() {
    let out = netcheck(&["run", "--baseline", "/nonexistent/before.json", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read the baseline /nonexistent/before.json"), "{}", stderr(&out));

    let path = write("foreign.json", r#"{"items": []}"#);
    let out = netcheck(&["run", "--baseline", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("is not a netcheck JSON report"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out = netcheck(&["run", "--baseline", path.to_str().unwrap(), "--tolerance=-5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--tolerance -5 is not a percentage"), "{}", stderr(&out));
}

#[test]
fn flag_values_are_validated_before_anything_runs() {
    for (args, expected) in [
        (&["run", "--timeout", "0"][..], "is zero"),
        (&["run", "--timeout", "99999999999999999999m"][..], "not a duration"),
        (&["run", "--timeout", "25h"][..], "longer than a day"),
        (&["run", "--cluster-domain", "cluster local"][..], "is not a DNS name"),
        (&["run", "--external-name=-bad.example"][..], "is not a DNS name"),
        (&["diagnose", "service/web", "--cluster-domain", "a..b"][..], "is not a DNS name"),
    ] {
        let out = netcheck(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn watch_input_is_refused_before_anything_is_deployed() {
    // A metrics address already taken: refused before connecting, so no kubeconfig is even read.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = netcheck(&["watch", "--kubeconfig", "/nonexistent", "--metrics-addr", &addr, "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("cannot serve metrics on {addr}")), "{}", stderr(&out));
    for (args, says) in [
        (&["watch", "--max-failed", "2", "--", "true"][..], "not a fraction"),
        (&["watch", "--interval", "0s", "--", "true"][..], "zero"),
        (&["watch"][..], "COMMAND"),
        (&["watch", "stop", "--max-outage", "soon"][..], "not a duration"),
    ] {
        let out = netcheck(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}
