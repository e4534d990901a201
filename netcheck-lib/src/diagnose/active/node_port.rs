//! `node-port`: every node that must forward answers on its addresses, from every node.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::Service;

use super::observations::{Failing, Observations, Target, failing, silent_nodes};
use super::pod_ip::pod_targets;
use crate::diagnose::facts::Facts;
use crate::diagnose::read_only::shorten;
use crate::diagnose::{NODE_PORT, Step, StepStatus};

/// Which target nodes must answer a node port: all, or (externalTrafficPolicy Local) only those
/// with a ready endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePortExpectation {
    /// Every node forwards.
    EveryNode,
    /// Only these nodes answer; the others must not forward.
    LocalOnly(BTreeSet<String>),
}

pub(super) fn node_port_targets(
    facts: &Facts,
    svc: &Service,
    ports: &[k8s_openapi::api::core::v1::ServicePort],
) -> (Vec<Target>, NodePortExpectation) {
    let spec = svc.spec.clone().unwrap_or_default();
    if !matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")) {
        return (Vec::new(), NodePortExpectation::EveryNode);
    }
    let mut targets = Vec::new();
    // A virtual node has no kube-proxy: its node port is nothing the Service promises.
    for node in facts.nodes.iter().filter(|n| n.ready && !n.virtual_node) {
        for p in ports {
            let Some(node_port) = p.node_port else { continue };
            // An address that is not an IP cannot be dialled; an IPv6 one needs brackets before the port.
            let ips = node.internal_ips.iter().chain(&node.external_ips).filter_map(|ip| ip.parse::<IpAddr>().ok());
            for ip in ips {
                let Ok(port) = u16::try_from(node_port) else { continue };
                let address = SocketAddr::new(ip, port).to_string();
                targets.push(Target {
                    label: format!("{address} ({})", node.name),
                    address,
                    node: Some(node.name.clone()),
                });
            }
        }
    }
    let expectation = if spec.external_traffic_policy.as_deref() == Some("Local") {
        let hosting = pod_targets(facts, ports).into_iter().filter_map(|t| t.node).collect();
        NodePortExpectation::LocalOnly(hosting)
    } else {
        NodePortExpectation::EveryNode
    };
    (targets, expectation)
}

/// `node-port`: every (expected) node answers on its addresses from every node.
pub fn judge_node_ports(targets: &[Target], expectation: &NodePortExpectation, observed: &Observations) -> Step {
    let expected = |t: &Target| match expectation {
        NodePortExpectation::EveryNode => true,
        NodePortExpectation::LocalOnly(nodes) => t.node.as_ref().is_some_and(|n| nodes.contains(n)),
    };
    let (mut failing, mut silent) = failing(targets, observed);
    if let NodePortExpectation::LocalOnly(_) = expectation {
        for t in targets.iter().filter(|t| expected(t)) {
            let node = t.node.as_deref().unwrap_or_default();
            if !matches!(observed.get(node), Some(Ok(_))) {
                silent
                    .push(format!("{}: no result from a client on {node}, the one source that can judge it", t.label));
            }
        }
        // From a pod, kube-proxy sends a Local Service's node-port traffic to any endpoint without
        // source NAT: through another node, the answer skips the node that translated the request and
        // is dropped. Only a source on the target node itself has a symmetric path to judge by.
        for f in &mut failing {
            let node = f.target.node.clone();
            f.bad.retain(|(source, _)| Some(source) == node.as_ref());
        }
        failing.retain(|f| !f.bad.is_empty());
    }
    let broken: Vec<&Failing> = failing.iter().filter(|f| expected(f.target)).collect();
    let mut evidence: Vec<String> = Vec::new();
    if let NodePortExpectation::LocalOnly(nodes) = expectation {
        let without: Vec<String> = targets.iter().filter(|t| !expected(t)).map(|t| t.label.clone()).collect();
        evidence.push(format!(
            "externalTrafficPolicy Local: nodes with a ready pod ({}) must answer, judged from a client on the same \
             node; {} may not forward",
            nodes.iter().cloned().collect::<Vec<_>>().join(", "),
            if without.is_empty() { "no other node".to_string() } else { shorten(&without, 4) }
        ));
    }
    if broken.is_empty() && !silent.is_empty() {
        let count = silent.len();
        evidence.extend(silent);
        return silent_nodes(NODE_PORT, "the node ports answer", count, evidence);
    }
    evidence.extend(silent);
    if broken.is_empty() {
        let answering = targets.iter().filter(|t| expected(t)).count();
        return Step::new(
            NODE_PORT,
            StepStatus::Pass,
            format!("{answering} node addresses answer on the node port from every node"),
        )
        .with_evidence(evidence);
    }
    evidence.splice(0..0, broken.iter().map(|f| f.evidence()));
    let everywhere: Vec<&str> =
        broken.iter().filter(|f| f.fails_from_every_source()).map(|f| f.target.label.as_str()).collect();
    let summary = format!(
        "{} of {} node addresses do not answer on the node port",
        broken.len(),
        targets.iter().filter(|t| expected(t)).count()
    );
    let step = Step::new(NODE_PORT, StepStatus::Fail, summary).with_evidence(evidence);
    if everywhere.len() == broken.len() {
        return step.with_fix(format!(
            "{} fail from every node while the ClusterIP works: the NodePort path on that node (kube-proxy's NodePort rules, a host firewall, the address)",
            everywhere.join(", ")
        ));
    }
    step.with_fix("some sources reach the node port and others do not: the network path between those nodes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::active::observations::Seen;
    use crate::diagnose::active::observations::tests::{observed, target};

    #[test]
    fn with_local_policy_only_nodes_with_a_pod_must_answer() {
        let t = [target("10.250.0.11:30080", "node-a"), target("10.250.0.12:30080", "node-b")];
        let o =
            observed(&[("node-a", &[("10.250.0.11:30080", Seen::Connected), ("10.250.0.12:30080", Seen::Timeout)])]);
        let local = NodePortExpectation::LocalOnly(BTreeSet::from(["node-a".to_string()]));
        assert_eq!(judge_node_ports(&t, &local, &o).status, StepStatus::Pass);
        let both = NodePortExpectation::LocalOnly(BTreeSet::from(["node-a".to_string(), "node-b".to_string()]));
        let crossed = observed(&[
            ("node-a", &[("10.250.0.11:30080", Seen::Connected), ("10.250.0.12:30080", Seen::Timeout)]),
            ("node-b", &[("10.250.0.11:30080", Seen::Timeout), ("10.250.0.12:30080", Seen::Connected)]),
        ]);
        assert_eq!(
            judge_node_ports(&t, &both, &crossed).status,
            StepStatus::Pass,
            "cross-node pod paths are asymmetric"
        );
        let own = observed(&[("node-b", &[("10.250.0.12:30080", Seen::Refused)])]);
        let step = judge_node_ports(&t, &both, &own);
        assert_eq!(step.status, StepStatus::Fail, "a node that refuses its own client is broken");
        let unjudged = observed(&[("node-b", &[("10.250.0.12:30080", Seen::Connected)])]);
        let step = judge_node_ports(&t, &both, &unjudged);
        assert_ne!(step.status, StepStatus::Pass, "node-a was judged from nowhere: {step:?}");
        assert!(step.evidence.iter().any(|e| e.contains("no result from a client on node-a")), "{step:?}");
        let step = judge_node_ports(&t, &NodePortExpectation::EveryNode, &o);
        assert_eq!(step.status, StepStatus::Fail);
        assert!(step.fix.unwrap().starts_with("10.250.0.12:30080 (pod p on node-b) fail from every node"));
    }

    #[test]
    fn ipv6_node_addresses_are_bracketed_and_what_is_not_an_ip_is_not_dialled() {
        use crate::runner::inventory::NodeInfo;
        let node = |name: &str, ips: &[&str]| NodeInfo {
            name: name.into(),
            ready: true,
            internal_ips: ips.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}
        }))
        .unwrap();
        let facts = Facts {
            namespace: "shop".into(),
            name: "web".into(),
            namespace_exists: Some(true),
            service: Some(svc.clone()),
            service_names: vec![],
            pods: vec![],
            events: vec![],
            endpoints: vec![],
            nodes: vec![node("six", &["fd00::6"]), node("bare", &[]), node("four", &["10.0.0.4", "node-four.local"])],
        };
        let ports = svc.spec.clone().unwrap().ports.unwrap();
        let (targets, _) = node_port_targets(&facts, &svc, &ports);
        let addresses: Vec<&str> = targets.iter().map(|t| t.address.as_str()).collect();
        assert_eq!(addresses, ["[fd00::6]:30080", "10.0.0.4:30080"]);
    }
}
