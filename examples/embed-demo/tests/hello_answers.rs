//! The whole point of the demo: an outside crate asserting its own Service with netcheck's harness.
//! The `agents` fixture deploys netcheck's agents once for this test binary (or skips without a
//! cluster; with NETCHECK_REQUIRE_CLUSTER=1 it fails instead) and removes them when the binary ends.

use netcheck::harness::{agents, http_ok};
use netcheck::runner::Session;
use rstest::rstest;

#[rstest]
#[tokio::test]
async fn hello_answers_from_every_node(agents: Option<&'static Session>) {
    let Some(agents) = agents else { return };
    let hello = embed_demo::deploy(&agents.cluster.config, &format!("hello-{}", agents.run_id)).await.unwrap();
    http_ok(agents, &hello.url("/hostname")).await.assert_passed();
}

/// The same harness finds a Service that does not answer: the report fails, naming each node.
#[rstest]
#[tokio::test]
async fn a_port_nobody_listens_on_fails_on_every_node(agents: Option<&'static Session>) {
    let Some(agents) = agents else { return };
    let hello = embed_demo::deploy(&agents.cluster.config, &format!("hello-bad-{}", agents.run_id)).await.unwrap();
    let options = netcheck::probe::ProbeOptions { settle: std::time::Duration::ZERO, ..Default::default() };
    let url = format!("http://hello.{}:8081/", hello.namespace);
    let report = netcheck::probe::http(agents, &url, 200, &options).await.unwrap();
    assert!(!report.passed());
    assert_eq!(report.results.len(), agents.agents.clients.len());
    assert!(report.results.iter().all(|r| r.message.starts_with("0 of 3 attempts got HTTP 200")), "{report:#?}");
}
