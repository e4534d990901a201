//! `cluster-ip`: the ClusterIP answers on every selected port from every node.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;

use super::observations::{Failing, Observations, Seen, Target, failing, silent_nodes};
use crate::diagnose::{CLUSTER_IP, Step, StepStatus};

pub(super) fn cluster_ip_targets(svc: &Service, ports: &[k8s_openapi::api::core::v1::ServicePort]) -> Vec<Target> {
    let Some(ip) = crate::runner::services::cluster_ip(svc) else {
        return Vec::new();
    };
    ports
        .iter()
        .map(|p| {
            let address = format!("{ip}:{}", p.port);
            Target { label: address.clone(), address, node: None }
        })
        .collect()
}

/// `cluster-ip`: the ClusterIP answers on every selected port from every node (the pods answered).
pub fn judge_cluster_ip(targets: &[Target], observed: &Observations) -> Step {
    let (failing, silent) = failing(targets, observed);
    if failing.is_empty() && !silent.is_empty() {
        return silent_nodes(CLUSTER_IP, "the ClusterIP answers", silent.len(), silent);
    }
    if failing.is_empty() {
        let list: Vec<String> = targets.iter().map(|t| t.address.clone()).collect();
        return Step::new(CLUSTER_IP, StepStatus::Pass, format!("{} answers from every node", list.join(", ")))
            .with_evidence(silent);
    }
    let mut evidence: Vec<String> = failing.iter().map(Failing::evidence).collect();
    evidence.extend(silent);
    let bad_nodes: BTreeSet<&str> = failing.iter().flat_map(|f| f.bad.iter().map(|(n, _)| n.as_str())).collect();
    let everywhere = failing.iter().all(Failing::fails_from_every_source);
    let summary = if everywhere {
        "the ClusterIP does not answer from any node, although the pods answer on their IPs".to_string()
    } else {
        format!(
            "the ClusterIP does not answer from {}, although the pods answer on their IPs",
            bad_nodes.iter().copied().collect::<Vec<_>>().join(", ")
        )
    };
    let step = Step::new(CLUSTER_IP, StepStatus::Fail, summary).with_evidence(evidence);
    if !everywhere {
        let nodes = bad_nodes.iter().copied().collect::<Vec<_>>().join(", ");
        return step.with_fix(format!(
            "the service proxy (kube-proxy) on {nodes}: check that it runs there and has rules for this Service (iptables-save | grep the ClusterIP)"
        ));
    }
    if failing.iter().all(|f| f.all(&Seen::Refused)) {
        return step.with_fix(
            "every node's service proxy rejects the connection, which it does when it knows no endpoint for the port: \
             check that kube-proxy sees the endpoints (its log) and that the Service port maps to the endpoints' port",
        );
    }
    step.with_fix("the service proxy on every node: check that kube-proxy runs and has programmed this Service")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::active::observations::tests::observed;

    #[test]
    fn a_cluster_ip_failing_on_one_node_names_that_nodes_proxy() {
        let t = [Target { address: "10.96.0.20:80".into(), label: "10.96.0.20:80".into(), node: None }];
        let o = observed(&[
            ("node-a", &[("10.96.0.20:80", Seen::Connected)]),
            ("node-b", &[("10.96.0.20:80", Seen::Timeout)]),
        ]);
        let step = judge_cluster_ip(&t, &o);
        assert_eq!(step.summary, "the ClusterIP does not answer from node-b, although the pods answer on their IPs");
        assert!(step.fix.unwrap().starts_with("the service proxy (kube-proxy) on node-b"));
    }
}
