//! LoadBalancer Services on the testbed, as a user runs them (`netcheck run --scenario loadbalancer`):
//! without an implementation both checks skip within the short limit; with MetalLB both pass; with
//! MetalLB's speakers frozen (the address is no longer announced, silently) the address still is
//! provisioned, every node's client still reaches it through kube-proxy, and the runner's failure is
//! placed on the load-balancer implementation. With kube-proxy stopped on node-b, node-b's health-check
//! node port fails and every failure names node-b.
//!
//! The test leaves MetalLB as it found it.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netcheck");
/// Far above what the runs take: only a hang or an unbounded wait reaches it.
const HANG_GUARD: Duration = Duration::from_secs(90);

fn testbed(args: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testbed").join(args[0]);
    let out = Command::new(&script).args(&args[1..]).output().expect("the testbed script runs");
    assert!(
        out.status.success(),
        "testbed/{} exited {:?}\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn metallb_installed() -> bool {
    let kubectl = std::env::var_os("KUBECTL").map_or_else(|| PathBuf::from("kubectl"), PathBuf::from);
    let out = Command::new(kubectl).args(["get", "namespace", "metallb-system"]).output().expect("kubectl runs");
    out.status.success()
}

/// Waits until the earlier runs' namespaces are gone, and then for a kube-proxy sync: stopped before
/// it removed an earlier run's rules, kube-proxy leaves them behind, and the next run's Service, given
/// the same load-balancer address, can reach new pods through them when pod IPs are reused.
/// Runs a command in a testbed node's network namespace and returns its standard output.
fn node_output(node: &str, command: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testbed/node-exec");
    let out = Command::new(&script).arg(node).args(command).output().expect("testbed/node-exec runs");
    assert!(out.status.success(), "node-exec {node} {command:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The link-layer address of `node`'s eth0. Read with `ip`, not from `/sys/class/net`: the node's
/// namespaces share the host's sysfs, which shows the host's own eth0.
fn link_address(node: &str) -> String {
    let link = node_output(node, &["ip", "-o", "link", "show", "dev", "eth0"]);
    word_after(&link, "link/ether").expect("eth0 has a link-layer address")
}

/// The word that follows `key` in `ip`'s output (`lladdr 0a:…`, `link/ether 0a:…`).
fn word_after(text: &str, key: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == key).and_then(|_| words.next()).map(str::to_string)
}

/// The link-layer address that `node` sends packets for `ip` to (its neighbour entry), if it has one.
/// A LoadBalancer address announced in layer 2 is reached through whichever node answered ARP for it:
/// a neighbour entry learnt while another node announced it keeps the traffic going there.
fn neighbour_of(node: &str, ip: &str) -> Option<String> {
    word_after(&node_output(node, &["ip", "neigh", "show", ip, "dev", "eth0"]), "lladdr")
}

fn run_loadbalancer_scenario(case: &str) -> (Option<i32>, serde_json::Value) {
    let started = Instant::now();
    let out = Command::new(BIN).args(["run", "--scenario", "loadbalancer", "-o", "json"]).output().unwrap();
    let took = started.elapsed();
    eprintln!("{case}: exit {:?} in {:.1} s", out.status.code(), took.as_secs_f64());
    assert!(took < HANG_GUARD, "{case}: took {took:?}");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{case}: no report: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

fn results<'a>(report: &'a serde_json::Value, check: &str) -> Vec<&'a serde_json::Value> {
    report["results"].as_array().expect("results").iter().filter(|r| r["check"] == check).collect()
}

fn from<'a>(results: &[&'a serde_json::Value], source: &str) -> &'a serde_json::Value {
    results.iter().find(|r| r["subject"]["sourceNode"] == source).unwrap_or_else(|| panic!("no result from {source}"))
}

fn on<'a>(results: &[&'a serde_json::Value], target: &str) -> &'a serde_json::Value {
    results.iter().find(|r| r["subject"]["targetNode"] == target).unwrap_or_else(|| panic!("no result for {target}"))
}

#[test]
fn skips_without_an_implementation_passes_with_metallb_and_names_it_when_its_speakers_stop() {
    if !common::cluster_available() {
        return;
    }
    let had_metallb = metallb_installed();

    if had_metallb {
        testbed(&["up", "--no-loadbalancer"]);
    }
    let (code, report) = run_loadbalancer_scenario("no implementation");
    assert_eq!(code, Some(0), "{report:#}");
    let provision = results(&report, "loadbalancer/provision");
    assert_eq!(provision.len(), 1);
    assert_eq!(provision[0]["status"], "skip", "{report:#}");
    assert!(provision[0]["message"].as_str().unwrap().contains("no LoadBalancer implementation acted"));
    for check in ["loadbalancer/reachable", "loadbalancer/local-policy", "loadbalancer/source-ranges"] {
        let skipped = results(&report, check);
        assert!(!skipped.is_empty(), "{check}");
        assert!(
            skipped.iter().all(|r| r["status"] == "skip" && r["message"].as_str().unwrap().contains("no address")),
            "{check}: {report:#}"
        );
    }

    testbed(&["up"]);
    let (code, report) = run_loadbalancer_scenario("MetalLB");
    assert_eq!(code, Some(0), "{report:#}");
    let provision = results(&report, "loadbalancer/provision");
    assert_eq!(provision[0]["status"], "pass");
    eprintln!("provisionMs {}", provision[0]["measurements"]["provisionMs"]);
    let reachable = results(&report, "loadbalancer/reachable");
    for source in ["node-a", "node-b", "runner"] {
        assert_eq!(from(&reachable, source)["status"], "pass", "{source}: {report:#}");
    }
    let local = results(&report, "loadbalancer/local-policy");
    assert_eq!(from(&local, "runner")["status"], "pass", "the runner's address is kept: {report:#}");
    for node in ["node-a", "node-b"] {
        let health = on(&local, node);
        assert_eq!(health["status"], "pass", "{node}: {report:#}");
        eprintln!("{node}'s health check: {} {}", health["message"], health["measurements"]);
    }
    let ranges = results(&report, "loadbalancer/source-ranges");
    assert_eq!(ranges[0]["status"], "pass", "{report:#}");
    eprintln!("source ranges: {}", ranges[0]["message"]);

    testbed(&["stop", "loadbalancer"]);
    let (code, report) = run_loadbalancer_scenario("speakers frozen");
    testbed(&["start", "loadbalancer"]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(results(&report, "loadbalancer/provision")[0]["status"], "pass", "the address stays assigned");
    let reachable = results(&report, "loadbalancer/reachable");
    let runner = from(&reachable, "runner");
    assert_eq!(runner["status"], "fail", "{report:#}");
    let cause = runner["diagnosis"]["likelyCause"].as_str().unwrap();
    assert!(cause.contains("LoadBalancer implementation's announcement"), "{cause}");
    for node in ["node-a", "node-b"] {
        assert_eq!(from(&reachable, node)["status"], "pass", "kube-proxy still answers on {node}");
    }

    // kube-proxy stopped on node-b: its health-check server is gone (refused) and the rules for this
    // run's Services never reach node-b.
    testbed(&["stop", "kube-proxy", "node-b"]);
    let (code, report) = run_loadbalancer_scenario("kube-proxy stopped on node-b");
    testbed(&["start", "kube-proxy", "node-b"]);
    assert_eq!(code, Some(1), "{report:#}");
    let health = on(&results(&report, "loadbalancer/local-policy"), "node-b");
    assert_eq!(health["status"], "fail", "{report:#}");
    let cause = health["diagnosis"]["likelyCause"].as_str().unwrap();
    assert!(cause.contains("nothing serves the health-check node port on node-b"), "{cause}");
    // node-b's own requests fail, unless node-b sends them to another node's link-layer address (it
    // learnt that node as the announcer in an earlier run): then that node's kube-proxy serves them and a
    // pass is the truth.
    let from_b = from(&results(&report, "loadbalancer/reachable"), "node-b");
    if from_b["status"] == "pass" {
        let ip = from_b["subject"]["address"].as_str().unwrap().split(':').next().unwrap();
        let node_a = link_address("node-a");
        let next_hop = neighbour_of("node-b", ip);
        assert_eq!(
            next_hop.as_deref(),
            Some(node_a.as_str()),
            "node-b reached {ip} without its kube-proxy, so it must send it to node-a: {report:#}"
        );
        eprintln!("node-b sends {ip} to node-a ({node_a}): its pass is right");
    } else {
        assert_eq!(from_b["status"], "fail", "{report:#}");
    }
    for r in report["results"].as_array().unwrap().iter().filter(|r| r["status"] != "pass" && r["status"] != "skip") {
        assert_eq!(r["status"], "fail", "{r:#}");
        assert!(r.to_string().contains("node-b"), "every failure names node-b: {r:#}");
    }

    if !had_metallb {
        testbed(&["up", "--no-loadbalancer"]);
    }
}
