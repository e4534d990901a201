//! The DNS checks against a real cluster: a healthy cluster passes with exact answers and per-node
//! latency, a backend made not ready leaves the headless answer, and a stopped DNS server is named.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use netcheck::harness::{cluster, run_scenario};
use netcheck::protocol::Action;
use netcheck::runner::manifests::HEADLESS_SERVICE;
use netcheck::runner::{Cluster, NoProgress, endpoints};
use netcheck::scenario::{self, Scenario};
use netcheck::{CheckResult, Status};
use rstest::rstest;

fn scenario(ids: &[&str]) -> Scenario {
    scenario::from_check_ids(&ids.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn of<'a>(results: &'a [CheckResult], check: &str) -> Vec<&'a CheckResult> {
    results.iter().filter(|r| r.check == check).collect()
}

#[rstest]
#[tokio::test]
async fn healthy_cluster_passes_the_dns_scenario(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let report = run_scenario(&cluster, scenario::load("dns").unwrap()).await;
    report.assert_passed();
    let results = &report.results;
    let nodes = report.cluster.nodes.len();
    assert_eq!(of(results, "dns/service-a").len(), 2 * nodes, "UDP and TCP from every node");
    assert_eq!(of(results, "dns/search-path").len(), 4 * nodes, "three short forms and kubernetes.default");
    assert_eq!(of(results, "dns/pod-hostname").len(), nodes * nodes, "every client's name from every node");
    for r in of(results, "dns/service-a") {
        assert!(r.measurements["p50Ms"].as_f64().is_some(), "latency per node: {r:?}");
    }
    let fresh: Vec<_> =
        of(results, "dns/service-a").into_iter().filter_map(|r| r.measurements.get("newServiceMs")).collect();
    assert_eq!(fresh.len(), nodes, "time for a new Service to appear in DNS, per node");
    // The headless answer is the exact set of the three server agents' addresses.
    let headless = of(results, "dns/headless");
    assert!(headless.iter().all(|r| r.message.matches("10.").count() == 3), "{headless:#?}");
}

/// One server agent made not ready: the API lists it not ready, and the headless answer (computed
/// from the API and checked exactly) leaves it out on every node.
#[rstest]
#[tokio::test]
async fn a_not_ready_backend_leaves_the_headless_answer(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let session = common::session(&cluster).await;
    let victim = session.agents.servers[0].clone();
    session.channel.send(&victim, Action::SetReady { ready: false }).await.expect("the agent takes the order");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let eps = endpoints::of_service(&cluster, &session.namespace, HEADLESS_SERVICE).await.unwrap();
        if eps.iter().any(|e| e.ip == victim.ip && !e.ready) {
            break;
        }
        assert!(Instant::now() < deadline, "the API never marked {} not ready", victim.pod);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let results =
        netcheck::orchestrator::run_checks(&session, &scenario(&["dns/headless", "dns/srv"]), &NoProgress).await;
    let session_nodes = session.agents.clients.len();
    session.finish(false).await.unwrap();

    let headless = of(&results, "dns/headless");
    assert!(!headless.is_empty());
    for r in &headless {
        assert_eq!(r.status, Status::Pass, "{r:#?}");
        let answered: BTreeSet<&str> = r.message.split(" (").next().unwrap().split(", ").collect();
        if r.subject.name.as_deref().unwrap_or_default().contains("netcheck-headless-all.") {
            // publishNotReadyAddresses: the not-ready pod stays in the answer.
            assert_eq!(answered.len(), 3, "{r:#?}");
            assert!(answered.contains(victim.ip.as_str()), "{r:#?}");
        } else {
            assert_eq!(answered.len(), 2, "two ready backends remain: {r:#?}");
            assert!(!answered.contains(victim.ip.as_str()), "{} still answered: {r:#?}", victim.ip);
        }
    }
    assert_eq!(headless.len(), 2 * session_nodes, "both headless Services from every node");
    assert!(of(&results, "dns/srv").iter().all(|r| r.status == Status::Pass), "{results:#?}");
}

/// The DNS server stopped (CoreDNS scaled to zero): Service names get no answer (refused: the Service
/// has no endpoint) from every node, `dns/per-server` has no server to ask, and the diagnosis names the
/// DNS server.
#[rstest]
#[tokio::test]
async fn stopped_dns_server_is_named(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let session = common::session(&cluster).await;
    common::testbed("stop", &["dns"]);
    let restore = common::Restore(vec![("start", common::args(&["dns"]))]);
    let scenario = Scenario::from_yaml(
        "apiVersion: netcheck.dev/v1\nkind: Scenario\nmetadata: {name: dns-fault}\nspec:\n  checks:\n    - id: dns/service-a\n      params: {attempts: 2, timeoutMs: 500}\n    - id: dns/per-server\n      params: {attempts: 2, timeoutMs: 500}\n",
        "dns-fault.yaml",
    )
    .unwrap();
    let results = netcheck::orchestrator::run_checks(&session, &scenario, &NoProgress).await;
    drop(restore);
    session.finish(false).await.unwrap();

    assert!(!results.is_empty());
    for r in &results {
        assert_eq!(r.status, Status::Fail, "{r:#?}");
        let observed = r.observed.as_deref().unwrap_or_default();
        // CoreDNS scaled to zero: queries are refused (no endpoint), and there is no server to ask directly.
        let no_server = r.check == "dns/per-server" && observed == "no ready endpoint";
        assert!(observed.contains("timeout") || observed.contains("refused") || no_server, "no answer at all: {r:#?}");
        let cause = &r.diagnosis.as_ref().expect("a diagnosis").likely_cause;
        assert!(cause.starts_with("the cluster DNS server"), "{cause}");
    }
}

/// DNS traffic to the DNS Service dropped in node-b's namespace: only node-b's queries fail, and the
/// diagnosis names node-b's path to the cluster DNS, with node-a as the evidence that DNS works.
#[rstest]
#[tokio::test]
async fn dns_blocked_on_one_node_is_placed_on_that_node(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let session = common::session(&cluster).await;
    let restore = common::drop_packets("node-b", "10.96.0.10", "udp", "53");
    let scenario = Scenario::from_yaml(
        "apiVersion: netcheck.dev/v1\nkind: Scenario\nmetadata: {name: dns-node}\nspec:\n  checks:\n    - id: dns/service-a\n      params: {attempts: 2, timeoutMs: 500}\n",
        "dns-node.yaml",
    )
    .unwrap();
    let results = netcheck::orchestrator::run_checks(&session, &scenario, &NoProgress).await;
    drop(restore);
    session.finish(false).await.unwrap();

    for r in of(&results, "dns/service-a") {
        let from_b = r.subject.source_node.as_deref() == Some("node-b");
        let udp = !r.subject.name.as_deref().unwrap_or_default().ends_with("(tcp)");
        if from_b && udp {
            assert_eq!(r.status, Status::Fail, "{r:#?}");
            let cause = &r.diagnosis.as_ref().expect("a diagnosis").likely_cause;
            assert!(cause.starts_with("the path from node-b to the cluster DNS"), "{cause}");
        } else {
            assert_eq!(r.status, Status::Pass, "only UDP from node-b is blocked: {r:#?}");
        }
    }
}
