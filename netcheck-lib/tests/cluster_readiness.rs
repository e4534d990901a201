//! Readiness-driven endpoint removal and re-add against a real cluster: a healthy cluster passes with
//! all three times per node; with kube-controller-manager stopped removal and re-add fail at the API,
//! and with kube-proxy stopped on one node they fail on that node's data plane only.

mod common;

use k8s_openapi::api::core::v1::Service;
use netcheck::harness::cluster;
use netcheck::runner::manifests::ECHO_SERVICE;
use netcheck::runner::{Cluster, NoProgress, endpoints};
use netcheck::scenario::{self, Scenario};
use netcheck::{CheckResult, Status};
use rstest::rstest;

fn of<'a>(results: &'a [CheckResult], check: &str) -> Vec<&'a CheckResult> {
    results.iter().filter(|r| r.check == check).collect()
}

/// The one result of `check` from `node`'s client.
fn on<'a>(results: &'a [CheckResult], check: &str, node: &str) -> &'a CheckResult {
    let found: Vec<&CheckResult> =
        of(results, check).into_iter().filter(|r| r.subject.source_node.as_deref() == Some(node)).collect();
    assert_eq!(found.len(), 1, "{check} on {node}: {results:#?}");
    found[0]
}

/// Removal, then re-add of the same server agent: it ends ready, and the headless Services created to
/// follow the switches in DNS are gone.
#[rstest]
#[tokio::test]
async fn healthy_cluster_removes_and_readds_within_limits(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let session = common::session(&cluster).await;
    let results =
        netcheck::orchestrator::run_checks(&session, &scenario::load("readiness").unwrap(), &NoProgress).await;
    let echo = endpoints::of_service(&cluster, &session.namespace, ECHO_SERVICE).await.unwrap();
    let services: kube::Api<Service> = kube::Api::namespaced(cluster.client.clone(), &session.namespace);
    let fresh_services: Vec<String> = services
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter_map(|s| s.metadata.name)
        .filter(|n| n.starts_with("netcheck-fresh-"))
        .collect();
    let servers: Vec<String> = session.agents.servers.iter().map(|s| s.ip.clone()).collect();
    let nodes = session.agents.clients.len();
    session.finish(false).await.unwrap();

    for r in &results {
        // Skip: a node that could host no client agent (none on the testbed).
        assert!(matches!(r.status, Status::Pass | Status::Skip), "{r:#?}");
    }
    for check in ["endpoints/readiness-removal", "endpoints/readiness-readd", "endpoints/unready-at-start"] {
        let results: Vec<&CheckResult> = of(&results, check).into_iter().filter(|r| r.status == Status::Pass).collect();
        assert_eq!(results.len(), nodes, "{check}: one result per node with a client agent");
        for r in results {
            for m in ["apiMs", "dataPlaneMs", "dnsMs", "sampleIntervalMs"] {
                assert!(r.measurements.get(m).and_then(|v| v.as_u64()).is_some(), "{check} reports {m}: {r:#?}");
            }
            if check == "endpoints/unready-at-start" {
                assert_eq!(r.measurements["answeredWhileUnready"], 0, "{r:#?}");
            }
            let api = r.measurements["apiMs"].as_u64().unwrap();
            // The pod's readiness flips through a 1 s probe period before the API can follow.
            assert!(api > 0, "{r:#?}");
        }
    }
    let removed = &of(&results, "endpoints/readiness-removal")[0].subject.address;
    let readded = &of(&results, "endpoints/readiness-readd")[0].subject.address;
    assert_eq!(removed, readded, "the removed agent is the one re-added");
    for ip in &servers {
        assert!(echo.iter().any(|a| &a.ip == ip && a.ready), "server {ip} ends ready: {echo:?}");
    }
    assert!(fresh_services.is_empty(), "the experiments' headless Services are deleted: {fresh_services:?}");
}

/// With the endpoints controller stopped, the switched pods stay listed ready: the removal fails and
/// names the API stage, and so does the re-add, whose victim could not be removed first.
#[rstest]
#[tokio::test]
async fn stopped_controller_manager_fails_removal_at_the_api(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let session = common::session(&cluster).await;
    common::testbed("stop", &["kube-controller-manager"]);
    let restore = common::Restore(vec![("start", common::args(&["kube-controller-manager"]))]);
    let scenario = Scenario::from_yaml(
        "apiVersion: netcheck.dev/v1\nkind: Scenario\nmetadata: {name: kcm}\nspec:\n  checks:\n    - id: endpoints/readiness-removal\n      params: {maxApiMs: 2000, maxPropagationMs: 1000, sustainedRequests: 20}\n    - id: endpoints/readiness-readd\n      params: {maxApiMs: 2000, maxPropagationMs: 1000, sustainedRequests: 20}\n",
        "kcm.yaml",
    )
    .unwrap();
    let results = netcheck::orchestrator::run_checks(&session, &scenario, &NoProgress).await;
    drop(restore);
    session.finish(false).await.unwrap();

    for check in ["endpoints/readiness-removal", "endpoints/readiness-readd"] {
        let found = of(&results, check);
        assert_eq!(found.len(), 1, "{results:#?}");
        assert_eq!(found[0].status, Status::Fail, "{:#?}", found[0]);
        assert!(found[0].message.starts_with("the API never marked the endpoint not ready"), "{:#?}", found[0]);
        let cause = &found[0].diagnosis.as_ref().expect("a diagnosis").likely_cause;
        assert!(cause.contains("kube-controller-manager"), "{cause}");
    }
}

fn removal_only() -> Scenario {
    Scenario::from_yaml(
        "apiVersion: netcheck.dev/v1\nkind: Scenario\nmetadata: {name: dns-path}\nspec:\n  checks:\n    - id: endpoints/readiness-removal\n      params: {sustainedRequests: 20}\n",
        "dns-path.yaml",
    )
    .unwrap()
}

/// DNS queries from node-b silently dropped (timeouts) after the session started: the removal fails on
/// node-b only, placed on node-b's path to the cluster DNS, with its data plane measured; node-a passes.
#[rstest]
#[tokio::test]
async fn dns_dropped_on_one_node_fails_the_removal_there_only(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let session = common::session(&cluster).await;
    let restore = common::drop_packets("node-b", "10.96.0.10", "udp", "53");
    let started = std::time::Instant::now();
    let results = netcheck::orchestrator::run_checks(&session, &removal_only(), &NoProgress).await;
    eprintln!("removal with DNS dropped on node-b: {:.1} s", started.elapsed().as_secs_f64());
    drop(restore);
    session.finish(false).await.unwrap();

    let removal = "endpoints/readiness-removal";
    let (a, b) = (on(&results, removal, "node-a"), on(&results, removal, "node-b"));
    assert_eq!(a.status, Status::Pass, "{a:#?}");
    assert_eq!(b.status, Status::Fail, "{b:#?}");
    assert!(b.message.contains("was answered with records"), "{b:#?}");
    assert!(b.measurements.contains_key("dataPlaneMs"), "the data plane is still measured: {b:#?}");
    let cause = &b.diagnosis.as_ref().expect("a diagnosis").likely_cause;
    assert!(cause.contains("path from node-b to the cluster DNS"), "{cause}");
}

/// CoreDNS scaled to zero after the session started (its Service refuses): the removal fails on every
/// node, each placed on the path to the cluster DNS or the DNS server, never an error.
#[rstest]
#[tokio::test]
async fn stopped_dns_fails_the_removal_on_every_node(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let session = common::session(&cluster).await;
    common::testbed("stop", &["dns"]);
    let restore = common::Restore(vec![("start", common::args(&["dns"]))]);
    let results = netcheck::orchestrator::run_checks(&session, &removal_only(), &NoProgress).await;
    drop(restore);
    let nodes = session.agents.clients.len();
    session.finish(false).await.unwrap();

    let found = of(&results, "endpoints/readiness-removal");
    assert_eq!(found.len(), nodes, "{results:#?}");
    for r in found {
        assert_eq!(r.status, Status::Fail, "{r:#?}");
        let cause = &r.diagnosis.as_ref().expect("a diagnosis").likely_cause;
        assert!(cause.contains("the cluster DNS") && cause.contains("DNS server"), "{cause}");
    }
}

/// With kube-proxy stopped on node-b its rules go stale: node-b's data plane keeps sending to the
/// removed pod, which still answers there before its re-add, so removal and re-add fail
/// there, naming kube-proxy on node-b, while node-a passes both; the rollout's new Service never
/// reaches node-b, which fails the rollout there (not an error), and node-a is not judged.
#[rstest]
#[tokio::test]
async fn stale_kube_proxy_fails_removal_and_readd_on_its_node_only(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let session = common::session(&cluster).await;
    common::testbed("stop", &["kube-proxy", "node-b"]);
    let restore = common::Restore(vec![("start", common::args(&["kube-proxy", "node-b"]))]);
    let ids = ["endpoints/readiness-removal", "endpoints/readiness-readd", "endpoints/rollout"];
    let scenario = scenario::from_check_ids(&ids.map(String::from)).unwrap();
    let started = std::time::Instant::now();
    let results = netcheck::orchestrator::run_checks(&session, &scenario, &NoProgress).await;
    eprintln!("removal and re-add with kube-proxy stopped on node-b: {:.1} s", started.elapsed().as_secs_f64());
    drop(restore);
    session.finish(false).await.unwrap();

    for check in ids {
        let (a, b) = (on(&results, check, "node-a"), on(&results, check, "node-b"));
        // The rollout's new Service is never programmed on node-b, so the rollout does not run at all.
        let on_a = if check == "endpoints/rollout" { Status::Skip } else { Status::Pass };
        assert_eq!(a.status, on_a, "{a:#?}");
        assert_eq!(b.status, Status::Fail, "{b:#?}");
        let cause = &b.diagnosis.as_ref().expect("a diagnosis").likely_cause;
        assert!(cause.contains("kube-proxy") && cause.contains("node-b"), "{check}: {cause}");
    }
    let readd = of(&results, "endpoints/readiness-readd");
    let on_b = readd.iter().find(|r| r.subject.source_node.as_deref() == Some("node-b")).unwrap();
    assert!(on_b.message.contains("before it was switched ready"), "the victim still answered on node-b: {on_b:#?}");
}

/// A rolling update of 3 agents with surge 1, unavailable 0 and a graceful shutdown drops nothing on a
/// healthy cluster, and the rolled objects are gone afterwards.
#[rstest]
#[tokio::test]
async fn healthy_rollout_drops_no_request(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let session = common::session(&cluster).await;
    let scenario = scenario::from_check_ids(&["endpoints/rollout".to_string()]).unwrap();
    let results = netcheck::orchestrator::run_checks(&session, &scenario, &NoProgress).await;
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(cluster.client.clone(), &session.namespace);
    let left = deployments.get_opt("netcheck-rollout").await.unwrap();
    let nodes = session.agents.clients.len();
    session.finish(false).await.unwrap();

    let rollout = of(&results, "endpoints/rollout");
    assert_eq!(rollout.len(), nodes, "one result per node: {results:#?}");
    for r in rollout {
        assert_eq!(r.status, Status::Pass, "{r:#?}");
        // Steady traffic through the whole rollout: at one request per interval, the requests span it. (A
        // fixed count would say nothing: a faster rollout needs fewer.)
        let m = |key: &str| r.measurements[key].as_u64().unwrap();
        assert!(m("rolloutMs") > 0);
        assert!(m("requests") * m("sampleIntervalMs") >= m("rolloutMs"), "steady traffic during the rollout: {r:#?}");
    }
    assert!(left.is_none_or(|d| d.metadata.deletion_timestamp.is_some()), "the rollout Deployment is removed");
}
