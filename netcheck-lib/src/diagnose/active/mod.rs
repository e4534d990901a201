//! The active links, probed from a client agent on every node: each endpoint's pod IP and port, the
//! ClusterIP and port, the Service's DNS names, the node ports, and a LoadBalancer's ingress with
//! every node's health-check node port. The probes are TCP connects (the
//! application's protocol is unknown); UDP and SCTP ports are left out, and the step says so.
//!
//! Sending the orders is the only async part; judging the answers is pure and unit-tested.

mod cluster_ip;
mod dns;
mod load_balancer;
mod node_port;
mod observations;
mod pod_ip;

use std::time::Duration;

use super::facts::Facts;
use super::read_only::{self, describe_port, is_headless};
use super::{CLUSTER_IP, DNS, NODE_PORT, POD_IP, Step, StepStatus};
use crate::Result;
use crate::runner::Session;

pub use cluster_ip::judge_cluster_ip;
pub use dns::judge_dns;
pub use node_port::judge_node_ports;
pub use pod_ip::{judge_pod_ips, pod_targets};

use cluster_ip::cluster_ip_targets;
use dns::{ask_from_every_node, dns_questions};
use load_balancer::{Ingress, judge_ingress, judge_load_balancer};
use node_port::node_port_targets;
use observations::connect_from_every_node;

/// Connects per target and node.
const ATTEMPTS: u32 = 2;
/// Per-connect and per-query timeout.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The active steps, in order, ending with the first broken one.
///
/// # Errors
/// [`Error::Protocol`](crate::Error::Protocol) when no client agent reported at all (netcheck could not
/// observe anything).
pub async fn walk(session: &Session, facts: &Facts, port: Option<&str>) -> Result<Vec<Step>> {
    let Some(svc) = facts.service.as_ref() else { return Ok(Vec::new()) };
    let external = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
    let mut steps = Vec::new();
    let ports = read_only::selected_ports(svc, port)?;
    let tcp_ports: Vec<_> = ports.iter().filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP").cloned().collect();
    let untested: Vec<String> = ports.iter().filter(|p| !tcp_ports.contains(p)).map(describe_port).collect();
    let not_tcp = |step: Step| {
        if untested.is_empty() {
            step
        } else {
            step.with_evidence([format!("not probed (TCP connects only): {}", untested.join(", "))])
        }
    };

    let pods = pod_targets(facts, &tcp_ports);
    let step = if external {
        Step::new(POD_IP, StepStatus::Skip, "ExternalName Service: no pods behind it")
    } else if pods.is_empty() {
        Step::new(POD_IP, StepStatus::Skip, "no ready endpoint with a TCP port to connect to")
    } else {
        judge_pod_ips(&pods, &connect_from_every_node(session, &pods).await?)
    };
    if push_and_stop(&mut steps, not_tcp(step)) {
        return Ok(steps);
    }

    let cluster = cluster_ip_targets(svc, &tcp_ports);
    let step = if external {
        Step::new(CLUSTER_IP, StepStatus::Skip, "ExternalName Service: no ClusterIP")
    } else if is_headless(svc) {
        Step::new(CLUSTER_IP, StepStatus::Skip, "headless Service: no ClusterIP, DNS answers the pod IPs")
    } else if cluster.is_empty() {
        Step::new(CLUSTER_IP, StepStatus::Skip, "no TCP port to connect to")
    } else {
        judge_cluster_ip(&cluster, &connect_from_every_node(session, &cluster).await?)
    };
    if push_and_stop(&mut steps, not_tcp(step)) {
        return Ok(steps);
    }

    let questions = dns_questions(facts, svc, &session.options.cluster_domain);
    let step = match &questions {
        None => Step::new(DNS, StepStatus::Skip, "the Service has no ready endpoint, so DNS has nothing to answer"),
        Some(q) => judge_dns(q, &ask_from_every_node(session, q).await?),
    };
    if push_and_stop(&mut steps, step) {
        return Ok(steps);
    }

    let (node_ports, expectation) = node_port_targets(facts, svc, &tcp_ports);
    let step = if node_ports.is_empty() {
        let kind = svc.spec.as_ref().and_then(|s| s.type_.clone()).unwrap_or_else(|| "ClusterIP".into());
        Step::new(NODE_PORT, StepStatus::Skip, format!("a {kind} Service has no node port"))
    } else {
        judge_node_ports(&node_ports, &expectation, &connect_from_every_node(session, &node_ports).await?)
    };
    if push_and_stop(&mut steps, not_tcp(step)) {
        return Ok(steps);
    }

    let is_load_balancer = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
    let events = if is_load_balancer { load_balancer::service_events(session, facts).await } else { Vec::new() };
    let step = match judge_ingress(svc, &events) {
        Ingress::Decided(step) => step,
        Ingress::Addresses(ips) => {
            let targets = load_balancer::ingress_targets(&ips, &tcp_ports);
            let observed = connect_from_every_node(session, &targets).await?;
            let health = match load_balancer::health_targets(facts, svc) {
                Some(expected) => {
                    let seen = load_balancer::ask_health(session, &expected).await;
                    Some((expected, seen))
                }
                None => None,
            };
            judge_load_balancer(&targets, &observed, health.as_ref().map(|(e, s)| (e.as_slice(), s.clone())))
        }
    };
    steps.push(not_tcp(step));
    Ok(steps)
}

fn push_and_stop(steps: &mut Vec<Step>, step: Step) -> bool {
    let broken = step.status == StepStatus::Fail;
    steps.push(step);
    broken
}
