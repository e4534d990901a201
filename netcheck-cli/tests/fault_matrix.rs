//! The fault matrix: each path broken on node-b alone, once as a refusal (REJECT) and once as a silent
//! drop (DROP), through `netcheck run` as a user runs it. Every case must exit 1, every result that is
//! not a pass or skip must name node-b (as source or target), and the run must end in bounded time:
//! a silent drop is an observation (`fail`), never `error`, never a hang. Wall times are printed for the
//! note; the bound asserted is a hang guard, not a speed goal.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netcheck");
const NODE: &str = "node-b";
const NODE_POD_CIDR: &str = "10.244.2.0/24";
/// Far above the figures measured (see the README): only a hang or an unbounded wait reaches it.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn node_exec(args: &[&str]) -> bool {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testbed/node-exec");
    Command::new(&path).arg(NODE).args(args).status().expect("testbed/node-exec runs").success()
}

/// An iptables rule in node-b's namespace for as long as it lives: (table, chain, rule).
struct Rule(String, String, Vec<String>);

impl Rule {
    fn insert(table: &str, chain: &str, matches: &[&str], target: &[&str]) -> Rule {
        let rule = Rule(table.into(), chain.into(), matches.iter().chain(target).map(|s| s.to_string()).collect());
        assert!(rule.apply("-I"), "cannot insert {table} {chain} {:?}", rule.2);
        rule
    }

    fn apply(&self, op: &str) -> bool {
        let mut args = vec!["iptables", "-t", &self.0, op, &self.1];
        args.extend(self.2.iter().map(String::as_str));
        node_exec(&args)
    }
}

impl Drop for Rule {
    fn drop(&mut self) {
        self.apply("-D");
    }
}

/// REJECT answers a TCP connection with a reset and anything else with ICMP port unreachable.
fn reject(proto: &str) -> Vec<&'static str> {
    if proto == "tcp" { vec!["-j", "REJECT", "--reject-with", "tcp-reset"] } else { vec!["-j", "REJECT"] }
}

/// Runs netcheck with `args` (JSON output) and returns its exit code, report and wall time.
fn run(args: &[&str]) -> (Option<i32>, serde_json::Value, Duration) {
    let started = Instant::now();
    let out = Command::new(BIN).arg("run").args(args).args(["-o", "json"]).output().unwrap();
    let took = started.elapsed();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no JSON report: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report, took)
}

/// The case's verdict: exit 1, failures only on node-b, at least one of them from `check`, in bounded time.
fn assert_placed_on_node_b(case: &str, check: &str, (code, report, took): (Option<i32>, serde_json::Value, Duration)) {
    eprintln!("fault matrix: {case}: exit {code:?} in {:.1} s", took.as_secs_f64());
    let results = report["results"].as_array().expect("results");
    let bad: Vec<&serde_json::Value> =
        results.iter().filter(|r| !matches!(r["status"].as_str(), Some("pass" | "skip"))).collect();
    // As source or target; or, for a result from another node, in its diagnosis or message (a request
    // through the ClusterIP from node-a that a backend on node-b did not answer).
    let names_node = |r: &serde_json::Value| {
        r["subject"]["sourceNode"].as_str() == Some(NODE)
            || r["subject"]["targetNode"].as_str() == Some(NODE)
            || r["diagnosis"]["likelyCause"].as_str().is_some_and(|c| c.contains(NODE))
            || r["message"].as_str().is_some_and(|m| m.contains(NODE))
    };
    let summary: Vec<String> =
        bad.iter().map(|r| format!("{} {} {}: {}", r["check"], r["status"], r["subject"], r["message"])).collect();
    assert_eq!(code, Some(1), "{case}: {summary:#?}");
    assert!(bad.iter().all(|r| r["status"] == "fail"), "{case}: only fail, never error: {summary:#?}");
    assert!(bad.iter().all(|r| names_node(r)), "{case}: every failure names {NODE}: {summary:#?}");
    assert!(bad.iter().any(|r| r["check"] == check), "{case}: {check} fails: {summary:#?}");
    assert!(took < HANG_GUARD, "{case}: took {took:?}");
}

#[test]
fn a_broken_cluster_ip_path_from_one_node_is_placed_on_it() {
    if !common::cluster_available() {
        return;
    }
    // Pods on node-b → the echo Service's ClusterIP (port 80), after kube-proxy's DNAT: conntrack
    // still knows the original destination.
    let matches =
        ["-s", NODE_POD_CIDR, "-p", "tcp", "-m", "conntrack", "--ctorigdst", "10.96.0.0/16", "--ctorigdstport", "80"];
    for (how, target) in [("REJECT", reject("tcp")), ("DROP", vec!["-j", "DROP"])] {
        let _rule = Rule::insert("filter", "FORWARD", &matches, &target);
        let case = format!("ClusterIP from {NODE}, {how}");
        assert_placed_on_node_b(&case, "clusterip/reachable", run(&["--scenario", "quick"]));
    }
}

#[test]
fn pods_on_one_node_unreachable_from_other_nodes_are_placed_on_it() {
    if !common::cluster_available() {
        return;
    }
    // Other nodes → node-b's pods on the agents' port, as they are forwarded into node-b's pod network.
    let matches = ["-d", NODE_POD_CIDR, "!", "-s", NODE_POD_CIDR, "-p", "tcp", "--dport", "8080"];
    for (how, target) in [("REJECT", reject("tcp")), ("DROP", vec!["-j", "DROP"])] {
        let _rule = Rule::insert("filter", "FORWARD", &matches, &target);
        let case = format!("pod IPs on {NODE} from other nodes, {how}");
        assert_placed_on_node_b(&case, "pod/direct", run(&["--scenario", "quick"]));
    }
}

#[test]
fn a_broken_node_port_on_one_node_is_placed_on_it() {
    if !common::cluster_available() {
        return;
    }
    // Connections to node-b's own address on the node-port range. DROP as they arrive (raw, before
    // kube-proxy's DNAT); REJECT is a filter target, so it matches after the DNAT by the original
    // destination that conntrack keeps.
    let ports = "30000:32767";
    let drop = ["-d", "10.250.0.12", "-p", "tcp", "--dport", ports];
    let refuse = ["-p", "tcp", "-m", "conntrack", "--ctorigdst", "10.250.0.12", "--ctorigdstport", ports];
    for how in ["REJECT", "DROP"] {
        let _rule = if how == "DROP" {
            Rule::insert("raw", "PREROUTING", &drop, &["-j", "DROP"])
        } else {
            Rule::insert("filter", "FORWARD", &refuse, &reject("tcp"))
        };
        let case = format!("NodePort on {NODE}, {how}");
        assert_placed_on_node_b(
            &case,
            "nodeport/every-node",
            run(&["--check", "nodeport/every-node", "--from-runner", "never"]),
        );
    }
}

#[test]
fn a_silent_or_refusing_health_check_node_port_on_one_node_is_placed_on_it() {
    if !common::cluster_available() {
        return;
    }
    // kube-proxy's health-check node port for externalTrafficPolicy Local on node-b (a port in the node
    // port range, served by kube-proxy itself): what a cloud load balancer probes. Needs the testbed's
    // LoadBalancer implementation (testbed/up installs MetalLB).
    let ports = "30000:32767";
    let on_node_b = ["-d", "10.250.0.12", "-p", "tcp", "--dport", ports];
    for how in ["REJECT", "DROP"] {
        let _rule = if how == "DROP" {
            Rule::insert("raw", "PREROUTING", &on_node_b, &["-j", "DROP"])
        } else {
            Rule::insert("filter", "INPUT", &on_node_b, &reject("tcp"))
        };
        let case = format!("health-check node port on {NODE}, {how}");
        let outcome = run(&["--check", "loadbalancer/local-policy", "--from-runner", "never"]);
        let health = outcome.1["results"]
            .as_array()
            .expect("results")
            .iter()
            .find(|r| r["subject"]["targetNode"] == NODE)
            .cloned()
            .expect("a result for node-b's health check");
        let cause = health["diagnosis"]["likelyCause"].as_str().unwrap_or_default().to_string();
        assert_placed_on_node_b(&case, "loadbalancer/local-policy", outcome);
        let expected = if how == "DROP" { "is dropped" } else { "nothing serves" };
        assert!(cause.contains(expected), "{case}: {cause}");
    }
}

#[test]
fn a_broken_path_to_the_cluster_dns_from_one_node_is_placed_on_it() {
    if !common::cluster_available() {
        return;
    }
    // node-b's pods → any DNS server (the Service address and the CoreDNS pods behind it), UDP and TCP.
    for (how, udp, tcp) in [("REJECT", reject("udp"), reject("tcp")), ("DROP", vec!["-j", "DROP"], vec!["-j", "DROP"])]
    {
        let _udp = Rule::insert("filter", "FORWARD", &["-s", NODE_POD_CIDR, "-p", "udp", "--dport", "53"], &udp);
        let _tcp = Rule::insert("filter", "FORWARD", &["-s", NODE_POD_CIDR, "-p", "tcp", "--dport", "53"], &tcp);
        let case = format!("cluster DNS from {NODE}, {how}");
        assert_placed_on_node_b(
            &case,
            "dns/service-a",
            run(&["--check", "dns/service-a", "--check", "dns/per-server", "--check", "clusterip/reachable"]),
        );
    }
}

#[test]
fn agents_that_cannot_reach_the_api_server_are_named_as_such() {
    if !common::cluster_available() {
        return;
    }
    // node-b's pods → the API server, at its own address and through the kubernetes Service. This is
    // netcheck's own control channel: the one fault that is an error (exit 2), naming the node.
    let _direct = Rule::insert(
        "filter",
        "FORWARD",
        &["-s", NODE_POD_CIDR, "-d", "10.250.0.1", "-p", "tcp", "--dport", "6443"],
        &["-j", "DROP"],
    );
    let _service = Rule::insert(
        "filter",
        "FORWARD",
        &["-s", NODE_POD_CIDR, "-d", "10.96.0.1", "-p", "tcp", "--dport", "443"],
        &["-j", "DROP"],
    );
    let started = Instant::now();
    let out = Command::new(BIN).args(["run", "--scenario", "quick", "--timeout", "20s"]).output().unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "fault matrix: API server from {NODE}, DROP: exit {:?} in {:.1} s",
        out.status.code(),
        took.as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("netcheck-client-{NODE} on {NODE}")), "{stderr}");
    assert!(stderr.contains("cannot reach the API server") || stderr.contains("cannot reach it"), "{stderr}");
    assert!(took < HANG_GUARD, "took {took:?}");
}
