//! Differential diagnosis: from which paths work and which fail, name the most likely broken link.
//!
//! Pure functions over per-node evidence, so that the reasoning is unit-tested without a cluster.

use crate::report::Diagnosis;

/// What one source node saw on the Service path and on the direct pod path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathEvidence {
    /// The source node.
    pub node: String,
    /// Requests to the ClusterIP that got an answer / were sent.
    pub cluster_ip: (usize, usize),
    /// Backends on the same node that answered directly / were probed.
    pub pods_same_node: (usize, usize),
    /// Backends on other nodes that answered directly / were probed.
    pub pods_other_nodes: (usize, usize),
    /// The nodes hosting a backend that did not answer directly from this node.
    pub unreachable_pod_nodes: std::collections::BTreeSet<String>,
}

/// Nodes whose backends no other source node reaches, while the node itself reaches them: the fault
/// is on the way into that node's pods, not on the sources' side.
fn unreachable_pod_nodes_everywhere<'a>(node: &'a PathEvidence, all: &'a [PathEvidence]) -> Vec<&'a str> {
    node.unreachable_pod_nodes
        .iter()
        .filter(|target| **target != node.node)
        .filter(|target| {
            let others_fail =
                all.iter().filter(|e| e.node != **target).all(|e| e.unreachable_pod_nodes.contains(*target));
            let itself_fine =
                all.iter().filter(|e| e.node == **target).all(|e| !e.unreachable_pod_nodes.contains(*target));
            others_fail && itself_fine
        })
        .map(String::as_str)
        .collect()
}

fn all_ok((ok, total): (usize, usize)) -> bool {
    ok == total
}

/// Explains a ClusterIP failure from `node`, given what every node saw.
pub fn service_failure(node: &PathEvidence, all: &[PathEvidence]) -> Diagnosis {
    let others_fine = all.iter().filter(|e| e.node != node.node).all(|e| all_ok(e.cluster_ip));
    let has_others = all.iter().any(|e| e.node != node.node);
    let mut evidence = vec![format!(
        "{} of {} requests to the ClusterIP from {} were answered",
        node.cluster_ip.0, node.cluster_ip.1, node.node
    )];
    evidence.push(format!(
        "pod IPs from {}: {}/{} on the same node, {}/{} on other nodes",
        node.node, node.pods_same_node.0, node.pods_same_node.1, node.pods_other_nodes.0, node.pods_other_nodes.1
    ));
    if has_others {
        evidence.push(if others_fine {
            "the ClusterIP works from every other node".to_string()
        } else {
            "the ClusterIP fails from other nodes too".to_string()
        });
    }
    let pods_fine = all_ok(node.pods_same_node) && all_ok(node.pods_other_nodes);
    let (likely_cause, next_step) = if pods_fine && (others_fine || !has_others) {
        (
            format!(
                "the service proxy on {} (kube-proxy or its replacement): pod IPs answer, the ClusterIP does not",
                node.node
            ),
            format!(
                "check kube-proxy on {0} (is it running, are its KUBE-SERVICES rules present: `iptables -t nat -L KUBE-SERVICES` on {0})",
                node.node
            ),
        )
    } else if pods_fine {
        (
            "the Service data plane on every node, or the Service itself: pod IPs answer everywhere, the ClusterIP nowhere".to_string(),
            "compare the Service's ports and selector with the pods, and check the service proxy on all nodes".to_string(),
        )
    } else if let (true, sinks) = (all_ok(node.pods_same_node), unreachable_pod_nodes_everywhere(node, all))
        && !sinks.is_empty()
    {
        let sinks = sinks.join(", ");
        (
            format!(
                "pod routing into {sinks}: its pods answer on their own node but from no other node (CNI, routes or a firewall on {sinks})"
            ),
            format!("check the routes to {sinks}'s pod CIDR and the firewall rules on {sinks}"),
        )
    } else if all_ok(node.pods_same_node) && !all_ok(node.pods_other_nodes) {
        (
            format!("pod routing between {} and other nodes (CNI, routes, a firewall between nodes)", node.node),
            format!("check the pod network routes from {} to the other nodes' pod CIDRs", node.node),
        )
    } else {
        (
            format!("the pod network on {}: even pods on the same node do not answer", node.node),
            format!("check the CNI on {} and the backends' readiness", node.node),
        )
    };
    Diagnosis { likely_cause, evidence, next_step: Some(next_step) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(node: &str, cip: (usize, usize), same: (usize, usize), other: (usize, usize)) -> PathEvidence {
        PathEvidence {
            node: node.into(),
            cluster_ip: cip,
            pods_same_node: same,
            pods_other_nodes: other,
            unreachable_pod_nodes: Default::default(),
        }
    }

    #[test]
    fn pods_of_one_node_unreachable_from_every_other_node_blame_that_node() {
        let unreachable = |nodes: &[&str]| nodes.iter().map(|n| n.to_string()).collect();
        // node-c's backend answers on node-c only; a and b reach each other's backends.
        let a = PathEvidence { unreachable_pod_nodes: unreachable(&["c"]), ..ev("a", (14, 20), (1, 1), (1, 2)) };
        let b = PathEvidence { unreachable_pod_nodes: unreachable(&["c"]), ..ev("b", (13, 20), (1, 1), (1, 2)) };
        let c = ev("c", (20, 20), (1, 1), (2, 2));
        let all = [a.clone(), b, c];
        let d = service_failure(&a, &all);
        assert!(d.likely_cause.starts_with("pod routing into c:"), "{}", d.likely_cause);
        // Only a fails to reach c, and b does: a's own routing is the suspect, not c.
        let b_fine = ev("b", (20, 20), (1, 1), (2, 2));
        let d = service_failure(&a, &[a.clone(), b_fine, all[2].clone()]);
        assert!(d.likely_cause.contains("between a and other nodes"), "{}", d.likely_cause);
    }

    #[test]
    fn clusterip_down_on_one_node_with_pods_up_blames_its_proxy() {
        let a = ev("a", (20, 20), (2, 2), (1, 1));
        let b = ev("b", (0, 20), (1, 1), (2, 2));
        let d = service_failure(&b, &[a, b.clone()]);
        assert!(d.likely_cause.contains("service proxy on b"), "{}", d.likely_cause);
        assert!(d.evidence.iter().any(|e| e.contains("works from every other node")));
    }

    #[test]
    fn clusterip_down_everywhere_blames_the_service_data_plane() {
        let a = ev("a", (0, 20), (2, 2), (1, 1));
        let b = ev("b", (0, 20), (1, 1), (2, 2));
        let d = service_failure(&a, &[a.clone(), b]);
        assert!(d.likely_cause.contains("every node"), "{}", d.likely_cause);
    }

    #[test]
    fn cross_node_pod_failure_blames_pod_routing() {
        let a = ev("a", (10, 20), (2, 2), (0, 1));
        let d = service_failure(&a, std::slice::from_ref(&a));
        assert!(d.likely_cause.contains("pod routing"), "{}", d.likely_cause);
    }

    #[test]
    fn same_node_pod_failure_blames_the_node_pod_network() {
        let a = ev("a", (0, 20), (0, 2), (0, 1));
        let d = service_failure(&a, std::slice::from_ref(&a));
        assert!(d.likely_cause.contains("pod network on a"), "{}", d.likely_cause);
    }
}
