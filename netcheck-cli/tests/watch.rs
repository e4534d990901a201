//! `netcheck watch` against the testbed, as a user runs it: a disruption injected while a watch runs
//! must be found with the right node, path and duration; the two-step form must lose nothing while no
//! runner is connected; Ctrl-C must leave nothing behind. Durations are printed for the note.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netcheck");
const NODE: &str = "node-b";

fn netcheck(args: &[&str]) -> Output {
    Command::new(BIN).args(args).stdin(Stdio::null()).output().expect("netcheck runs")
}

fn report_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("no JSON report (exit {:?}): {}", out.status.code(), String::from_utf8_lossy(&out.stderr))
    })
}

fn results(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["results"].as_array().expect("results").clone()
}

fn is(r: &serde_json::Value, check: &str, source: &str) -> bool {
    r["check"] == check && r["subject"]["sourceNode"] == source
}

fn longest_outage_s(r: &serde_json::Value) -> f64 {
    r["measurements"]["longestOutageMs"].as_u64().expect("longestOutageMs") as f64 / 1000.0
}

fn summary(report: &serde_json::Value) -> Vec<String> {
    results(report)
        .iter()
        .filter(|r| r["status"] != "pass")
        .map(|r| format!("{} {} {}: {}", r["check"], r["status"], r["subject"], r["message"]))
        .collect()
}

/// kube-proxy stopped on node-b with its rules flushed for 5 s: Service traffic from node-b's pods
/// (ClusterIP, node ports, the DNS Service) and node-b's node port fail with a ~5 s outage; pod IPs,
/// which need no Service proxy, and node-a's own Service paths pass.
fn assert_kube_proxy_fault_found(report: &serde_json::Value, code: Option<i32>) {
    let all = results(report);
    let bad = summary(report);
    assert_eq!(code, Some(1), "{bad:#?}");
    for r in all.iter().filter(|r| r["status"] != "pass") {
        let names_node = r["subject"]["sourceNode"] == NODE || r["subject"]["targetNode"] == NODE;
        assert!(names_node && r["status"] == "fail", "only fail, naming {NODE}: {bad:#?}");
    }
    let clusterip = all.iter().find(|r| is(r, "watch/clusterip", NODE)).expect("clusterip from node-b");
    eprintln!("watch: kube-proxy fault on {NODE}: {bad:#?}");
    assert_eq!(clusterip["status"], "fail");
    for source in ["node-a", NODE] {
        let pod_ip = all.iter().find(|r| is(r, "watch/pod-ip", source)).expect("pod-ip");
        assert_eq!(pod_ip["status"], "pass", "pod IPs need no kube-proxy: {pod_ip}");
    }
    let from_a = all.iter().find(|r| is(r, "watch/clusterip", "node-a")).expect("clusterip from node-a");
    assert_eq!(from_a["status"], "pass", "{from_a}");
    let timeline = report["timeline"].as_array().expect("a timeline");
    assert!(timeline.iter().any(|w| w["node"] == NODE && w["path"] == "clusterip" && w["kind"] == "outage"));
}

/// The fault, with epoch-ms marks on its output: before the stop, once the rules are flushed, before the
/// restart, and once the restarted kube-proxy has synced (its /healthz answers).
const KUBE_PROXY_FAULT: &str = "mark() { echo \"fault-mark $1 $(date +%s%3N)\"; }; mark begin && \
    testbed/stop kube-proxy node-b --flush-rules && mark sure && sleep 5 && mark restart && \
    testbed/start kube-proxy node-b && \
    until curl -fsS -o /dev/null http://10.250.0.12:10256/healthz; do sleep 0.1; done && mark back";

/// The marks the fault printed, by name.
fn fault_marks(output: &[u8]) -> BTreeMap<String, u64> {
    String::from_utf8_lossy(output)
        .lines()
        .filter_map(|l| l.strip_prefix("fault-mark "))
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(name, ms)| Some((name.to_string(), ms.trim().parse().ok()?)))
        .collect()
}

/// The outage of `check` from `source` lies between the fault's sure part (`sure_from` → `restart`) and
/// its whole span (`begin` → `back`), give or take 0.5 s (one attempt interval and some scheduling).
fn assert_outage_matches(report: &serde_json::Value, check: &str, source: &str, marks: &BTreeMap<String, u64>) {
    let span = |a: &str, b: &str| (marks[b] - marks[a]) as f64 / 1000.0;
    let (sure, whole) = (span("sure", "restart"), span("begin", "back"));
    let result = results(report).into_iter().find(|r| is(r, check, source)).expect("the result");
    let outage = longest_outage_s(&result);
    eprintln!("watch: fault {sure:.1} s for sure, {whole:.1} s in all; {check} outage from {source} {outage:.1} s");
    assert!(outage >= sure - 0.5 && outage <= whole + 0.5, "outage {outage} s outside [{sure}, {whole}] ± 0.5 s");
}

fn in_repo(script: &str) -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    vec!["sh".into(), "-c".into(), format!("cd {} && {script}", root.display())]
}

#[test]
fn a_kube_proxy_outage_during_a_watch_is_placed_on_its_node_with_its_duration() {
    if !common::cluster_available() {
        return;
    }
    let started = Instant::now();
    let mut args = vec!["watch", "-o", "json", "--"];
    let command = in_repo(KUBE_PROXY_FAULT);
    args.extend(command.iter().map(String::as_str));
    let out = netcheck(&args);
    eprintln!("watch with a kube-proxy fault took {:.1} s", started.elapsed().as_secs_f64());
    let report = report_of(&out);
    assert_kube_proxy_fault_found(&report, out.status.code());
    assert_outage_matches(&report, "watch/clusterip", NODE, &fault_marks(&out.stderr));
}

#[test]
fn a_healthy_watch_passes_and_serves_its_metrics_while_it_runs() {
    if !common::cluster_available() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let scraped = std::env::temp_dir().join(format!("netcheck-watch-metrics-{}", std::process::id()));
    // The watched command scrapes the metrics itself, after two record writes.
    let command = format!("sleep 5 && curl -fsS http://127.0.0.1:{port}/metrics > {}", scraped.display());
    let addr = format!("127.0.0.1:{port}");
    let out = netcheck(&["watch", "-o", "json", "--metrics-addr", &addr, "--", "sh", "-c", &command]);
    let report = report_of(&out);
    assert_eq!(out.status.code(), Some(0), "{:#?}", summary(&report));
    assert_eq!(results(&report).len(), 12, "6 paths from each of 2 nodes");
    let text = std::fs::read_to_string(&scraped).expect("the command scraped the metrics");
    for node in ["node-a", NODE] {
        let requests = format!("netcheck_watch_requests_total{{node=\"{node}\",path=\"clusterip\"}} ");
        let line =
            text.lines().find(|l| l.starts_with(&requests)).unwrap_or_else(|| panic!("no {requests} in\n{text}"));
        let count: u64 = line[requests.len()..].parse().expect("a count");
        assert!(count > 0, "{line}");
        let outage = format!("netcheck_watch_outage_seconds{{node=\"{node}\",path=\"dns\"}} 0.0");
        assert!(text.lines().any(|l| l == outage), "no {outage} in\n{text}");
    }
}

#[test]
fn a_failing_command_fails_the_watch_and_says_so() {
    if !common::cluster_available() {
        return;
    }
    let out = netcheck(&["watch", "-o", "json", "--", "sh", "-c", "sleep 2; exit 3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the watched command failed: `sh -c sleep 2; exit 3` failed (exit status: 3)"), "{err}");
    let report = report_of(&out);
    assert!(
        results(&report).iter().all(|r| r["status"] == "pass"),
        "the network itself was fine: {:#?}",
        summary(&report)
    );
}

#[test]
fn coredns_scaled_to_zero_fails_only_the_dns_path_on_every_node() {
    if !common::cluster_available() {
        return;
    }
    // `stop dns` returns once the CoreDNS pods are gone, `start dns` once the cluster DNS answers.
    let command = in_repo(
        "mark() { echo \"fault-mark $1 $(date +%s%3N)\"; }; mark begin && testbed/stop dns && mark sure && sleep 5 \
         && mark restart && testbed/start dns && mark back",
    );
    let mut args = vec!["watch", "-o", "json", "--"];
    args.extend(command.iter().map(String::as_str));
    let out = netcheck(&args);
    let report = report_of(&out);
    let bad = summary(&report);
    assert_eq!(out.status.code(), Some(1), "{bad:#?}");
    for r in results(&report) {
        let dns = r["check"] == "watch/dns";
        assert_eq!(r["status"] == "fail", dns, "only DNS fails, on every node: {bad:#?}");
        if dns {
            let source = r["subject"]["sourceNode"].as_str().unwrap();
            assert_outage_matches(&report, "watch/dns", source, &fault_marks(&out.stderr));
        }
    }
}

#[test]
fn a_watch_started_and_stopped_by_different_processes_keeps_what_happened_between() {
    if !common::cluster_available() {
        return;
    }
    let start = netcheck(&["watch", "start"]);
    assert!(start.status.success(), "{}", String::from_utf8_lossy(&start.stderr));
    let namespace = String::from_utf8_lossy(&start.stdout).trim().to_string();
    assert!(namespace.starts_with("netcheck-"), "prints the namespace: {namespace}");
    // node-a's agent restarts (its pod is deleted; the DaemonSet replaces it): the span nobody watched
    // is reported, and short enough to pass.
    let restarted = Instant::now();
    delete_client_pod(&namespace, "node-a");
    let fault = Command::new("sh").args(&in_repo(KUBE_PROXY_FAULT)[1..]).output().expect("fault injected");
    assert!(fault.status.success());
    // Let the agents see node-b answer again and write it down.
    std::thread::sleep(Duration::from_secs(6));
    let stop = netcheck(&["watch", "stop", "-n", &namespace, "-o", "json"]);
    let report = report_of(&stop);
    assert_kube_proxy_fault_found(&report, stop.status.code());
    assert_outage_matches(&report, "watch/clusterip", NODE, &fault_marks(&fault.stdout));
    let timeline = report["timeline"].as_array().expect("a timeline");
    let gap = timeline.iter().find(|w| w["kind"] == "unobserved" && w["node"] == "node-a").expect("the restart's gap");
    let gap_s = gap["durationMs"].as_u64().unwrap() as f64 / 1000.0;
    eprintln!("watch: node-a's agent restarted; unobserved {gap_s:.1} s ({})", gap["detail"]);
    assert!(gap_s > 0.0 && gap_s < restarted.elapsed().as_secs_f64(), "{gap}");
    let again = netcheck(&["watch", "stop", "-n", &namespace]);
    assert_eq!(again.status.code(), Some(2), "a stopped watch is gone");
}

/// Deletes the watch client pod on `node` and waits until its deletion is accepted.
fn delete_client_pod(namespace: &str, node: &str) {
    use k8s_openapi::api::core::v1::Pod;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = common::client().await.expect("a cluster");
        let api: kube::Api<Pod> = kube::Api::namespaced(client, namespace);
        let lp = kube::api::ListParams::default()
            .labels("app.kubernetes.io/component=watch-client")
            .fields(&format!("spec.nodeName={node}"));
        let pods = api.list(&lp).await.expect("pods listed");
        let name = pods.items.first().and_then(|p| p.metadata.name.clone()).expect("a client pod on the node");
        api.delete(&name, &Default::default()).await.expect("deleted");
    });
}

/// Starts `netcheck watch -o json -- sleep 600` and returns it once the watch runs its command (traffic
/// flowed on every path), with the command's pid.
#[expect(clippy::zombie_processes, reason = "the child is returned, and every caller waits for it")]
fn watching_sleep() -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .args(["watch", "-o", "json", "--", "sleep", "600"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netcheck runs");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        // The command is spawned from one of the runtime's threads: look at every thread's children.
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.flatten().collect::<Vec<_>>());
        let command = tasks.unwrap_or_default().iter().find_map(|t| {
            let children = std::fs::read_to_string(t.path().join("children")).ok()?;
            children.split_whitespace().next().map(str::to_string)
        });
        if let Some(pid) = command {
            return (child, pid);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            let out = child.wait_with_output().expect("netcheck ended");
            panic!("the watch never started its command: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn signal(child: &std::process::Child, name: &str) {
    let sent = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().expect("kill runs");
    assert!(sent.success());
}

#[test]
fn a_watch_whose_runner_was_killed_is_judged_by_watch_stop() {
    if !common::cluster_available() {
        return;
    }
    let (mut child, command) = watching_sleep();
    signal(&child, "KILL");
    child.wait().ok();
    Command::new("kill").arg(&command).status().ok(); // the orphaned `sleep`
    let fault = Command::new("sh").args(&in_repo(KUBE_PROXY_FAULT)[1..]).output().expect("fault injected");
    assert!(fault.status.success());
    std::thread::sleep(Duration::from_secs(6));
    // The killed runner deleted nothing: the only running watch is its own.
    let stop = netcheck(&["watch", "stop", "-o", "json"]);
    let report = report_of(&stop);
    assert_kube_proxy_fault_found(&report, stop.status.code());
    assert_outage_matches(&report, "watch/clusterip", NODE, &fault_marks(&fault.stdout));
}

#[test]
fn ctrl_c_during_a_watch_prints_a_partial_report_and_removes_the_agents() {
    if !common::cluster_available() {
        return;
    }
    let (child, _) = watching_sleep();
    std::thread::sleep(Duration::from_secs(3));
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let report = report_of(&out);
    assert!(!results(&report).is_empty(), "a partial report");
    let namespace = format!("netcheck-{}", report["runId"].as_str().unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let gone = runtime.block_on(async {
        let client = common::client().await.expect("a cluster");
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
        match api.get_opt(&namespace).await.unwrap() {
            None => true,
            Some(ns) => ns.metadata.deletion_timestamp.is_some(),
        }
    });
    assert!(gone, "{namespace} is deleted");
}
