//! `pod-ip`: every ready endpoint address answers on its port from every node.

use std::collections::BTreeSet;

use super::observations::{Failing, Observations, Seen, Target, failing, silent_nodes};
use crate::diagnose::facts::Facts;
use crate::diagnose::{POD_IP, Step, StepStatus};

/// Ready endpoint addresses × the selected TCP ports they serve.
pub fn pod_targets(facts: &Facts, ports: &[k8s_openapi::api::core::v1::ServicePort]) -> Vec<Target> {
    let names: BTreeSet<Option<&str>> = ports.iter().map(|p| p.name.as_deref().filter(|n| !n.is_empty())).collect();
    let node_of = |pod: &str| {
        facts
            .pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(pod))
            .and_then(|p| p.spec.as_ref()?.node_name.clone())
    };
    let mut targets = Vec::new();
    for e in facts.endpoints.iter().filter(|e| e.address.ready) {
        for p in e.ports.iter().filter(|p| p.protocol == "TCP" && names.contains(&p.name.as_deref())) {
            let node = e.address.pod.as_deref().and_then(node_of);
            let owner = match (&e.address.pod, &node) {
                (Some(pod), Some(node)) => format!(" (pod {pod} on {node})"),
                (Some(pod), None) => format!(" (pod {pod})"),
                _ => String::new(),
            };
            let address = format!("{}:{}", e.address.ip, p.port);
            targets.push(Target { label: format!("{address}{owner}"), address, node });
        }
    }
    targets.sort_by(|a, b| a.address.cmp(&b.address));
    targets.dedup();
    targets
}

/// `pod-ip`: every ready endpoint address answers on its port from every node.
pub fn judge_pod_ips(targets: &[Target], observed: &Observations) -> Step {
    let (failing, silent) = failing(targets, observed);
    let sources = observed.values().filter(|r| r.is_ok()).count();
    if failing.is_empty() && !silent.is_empty() {
        return silent_nodes(POD_IP, "the endpoint addresses answer", silent.len(), silent);
    }
    if failing.is_empty() {
        return Step::new(
            POD_IP,
            StepStatus::Pass,
            format!(
                "{} from every node ({sources} node{})",
                if targets.len() == 1 {
                    "the endpoint address answers".to_string()
                } else {
                    format!("{} endpoint addresses answer", targets.len())
                },
                if sources == 1 { "" } else { "s" }
            ),
        )
        .with_evidence(silent);
    }
    let mut evidence: Vec<String> = failing.iter().map(Failing::evidence).collect();
    evidence.extend(silent);
    let summary = format!("{} of {} endpoint addresses do not answer", failing.len(), targets.len());
    let step = Step::new(POD_IP, StepStatus::Fail, summary).with_evidence(evidence);
    if failing.iter().all(|f| f.fails_from_every_source() && f.all(&Seen::Refused)) {
        return step.with_fix(
            "the pods refuse connections on the target port while their containers run: the app is not listening there, or \
             listens only on 127.0.0.1/localhost; make it listen on 0.0.0.0 (all interfaces) on that port, or point the Service's \
             targetPort at the port it listens on",
        );
    }
    if failing
        .iter()
        .all(|f| f.bad.iter().all(|(source, _)| Some(source) != f.target.node.as_ref()) && !f.good.is_empty())
    {
        return step.with_fix(
            "the pods answer from their own node but not across nodes: pod routing between nodes (CNI, routes, a firewall between the nodes)",
        );
    }
    if failing.iter().all(|f| f.fails_from_every_source() && f.all(&Seen::Timeout)) {
        return step.with_fix(
            "no node gets an answer from these pods: the pod network on their node, or a NetworkPolicy that drops the traffic",
        );
    }
    step.with_fix("compare the failing sources above: the pod network between them and the pods")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::active::observations::tests::{observed, target};

    #[test]
    fn refused_from_every_node_points_at_the_bind_address() {
        let t = [target("10.244.1.5:8080", "node-a")];
        let o = observed(&[
            ("node-a", &[("10.244.1.5:8080", Seen::Refused)]),
            ("node-b", &[("10.244.1.5:8080", Seen::Refused)]),
        ]);
        let step = judge_pod_ips(&t, &o);
        assert_eq!(step.status, StepStatus::Fail);
        assert_eq!(step.summary, "1 of 1 endpoint addresses do not answer");
        assert_eq!(step.evidence[0], "10.244.1.5:8080 (pod p on node-a): node-a: refused, node-b: refused");
        assert!(step.fix.unwrap().contains("127.0.0.1"));
    }

    #[test]
    fn answering_only_on_its_own_node_points_at_pod_routing() {
        let t = [target("10.244.1.5:8080", "node-a")];
        let o = observed(&[
            ("node-a", &[("10.244.1.5:8080", Seen::Connected)]),
            ("node-b", &[("10.244.1.5:8080", Seen::Timeout)]),
        ]);
        let step = judge_pod_ips(&t, &o);
        assert_eq!(
            step.evidence[0],
            "10.244.1.5:8080 (pod p on node-a): node-b: no answer within 2 s; connected from node-a"
        );
        assert!(step.fix.unwrap().contains("across nodes"));
        let ok = observed(&[("node-a", &[("10.244.1.5:8080", Seen::Connected)])]);
        assert_eq!(judge_pod_ips(&t, &ok).status, StepStatus::Pass);
    }
}
