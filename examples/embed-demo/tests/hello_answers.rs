//! The whole point of the demo: an outside crate asserting its own Service with netcheck's harness.
//! The `clients` fixture deploys netcheck's client agents once for this test binary (or skips without a
//! cluster; with NETCHECK_REQUIRE_CLUSTER=1 it fails instead) and removes them when the binary ends.

use netcheck::harness::{clients, http_ok};
use netcheck::runner::Session;
use rstest::rstest;

#[rstest]
#[tokio::test]
async fn hello_answers_from_every_node(clients: Option<&'static Session>) {
    let Some(clients) = clients else { return };
    let hello = embed_demo::deploy(&clients.cluster.config, &format!("hello-{}", clients.run_id)).await.unwrap();
    http_ok(clients, &hello.url("/hostname")).await.assert_passed();
}

/// The same harness finds a Service that does not answer: the report fails, naming each node.
#[rstest]
#[tokio::test]
async fn a_port_nobody_listens_on_fails_on_every_node(clients: Option<&'static Session>) {
    let Some(clients) = clients else { return };
    let hello = embed_demo::deploy(&clients.cluster.config, &format!("hello-bad-{}", clients.run_id)).await.unwrap();
    let options = netcheck::probe::ProbeOptions { settle: std::time::Duration::ZERO, ..Default::default() };
    let url = format!("http://hello.{}:8081/", hello.namespace);
    let report = netcheck::probe::http(clients, &url, 200, &options).await.unwrap();
    assert!(!report.passed());
    assert_eq!(report.results.len(), clients.agents.clients.len());
    assert!(report.results.iter().all(|r| r.message.starts_with("0 of 3 attempts got HTTP 200")), "{report:#?}");
}
