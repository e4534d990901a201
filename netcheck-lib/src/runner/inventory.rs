//! The nodes of the cluster and which of them can host a client agent.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use super::Cluster;
use crate::{Error, Result};

/// What netcheck needs to know about a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// InternalIP addresses.
    pub internal_ips: Vec<String>,
    /// ExternalIP addresses.
    pub external_ips: Vec<String>,
    /// The Ready condition is True.
    pub ready: bool,
    /// Not cordoned.
    pub schedulable: bool,
    /// NoSchedule/NoExecute taints, as `key=value:effect`.
    pub taints: Vec<String>,
}

impl NodeInfo {
    /// Why no client agent can run here, if it cannot.
    pub fn unusable_reason(&self, tolerate_taints: bool) -> Option<String> {
        if !self.ready {
            Some(format!("node {} is NotReady", self.name))
        } else if !self.schedulable {
            Some(format!("node {} is cordoned (unschedulable)", self.name))
        } else if !self.taints.is_empty() && !tolerate_taints {
            Some(format!("node {} has taints {} (use --tolerate-taints)", self.name, self.taints.join(", ")))
        } else {
            None
        }
    }
}

/// Lists the nodes.
pub async fn nodes(cluster: &Cluster) -> Result<Vec<NodeInfo>> {
    let api: Api<Node> = Api::all(cluster.client.clone());
    let list = api.list(&ListParams::default()).await.map_err(|e| Error::api("listing nodes", e))?;
    let mut nodes: Vec<NodeInfo> = list.items.iter().map(node_info).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

fn node_info(node: &Node) -> NodeInfo {
    let status = node.status.clone().unwrap_or_default();
    let addresses = status.addresses.unwrap_or_default();
    let of_type = |t: &str| addresses.iter().filter(|a| a.type_ == t).map(|a| a.address.clone()).collect();
    let ready = status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True");
    let spec = node.spec.clone().unwrap_or_default();
    let taints = spec
        .taints
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .map(|t| format!("{}={}:{}", t.key, t.value.unwrap_or_default(), t.effect))
        .collect();
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        internal_ips: of_type("InternalIP"),
        external_ips: of_type("ExternalIP"),
        ready,
        schedulable: !spec.unschedulable.unwrap_or(false),
        taints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(json: serde_json::Value) -> NodeInfo {
        node_info(&serde_json::from_value(json).unwrap())
    }

    #[test]
    fn reads_addresses_readiness_and_taints() {
        let n = node(serde_json::json!({
            "metadata": {"name": "n1"},
            "spec": {"unschedulable": true, "taints": [
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                {"key": "soft", "effect": "PreferNoSchedule"}]},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "ExternalIP", "address": "1.2.3.4"},
                              {"type": "Hostname", "address": "n1"}],
                "conditions": [{"type": "Ready", "status": "True"}]}
        }));
        assert_eq!(n.internal_ips, vec!["10.0.0.1"]);
        assert_eq!(n.external_ips, vec!["1.2.3.4"]);
        assert!(n.ready);
        assert!(!n.schedulable);
        assert_eq!(n.taints, vec!["dedicated=gpu:NoSchedule"]);
        assert!(n.unusable_reason(true).unwrap().contains("cordoned"));
    }

    #[test]
    fn not_ready_and_tainted_nodes_say_why() {
        let n = node(
            serde_json::json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        assert!(n.unusable_reason(false).unwrap().contains("NotReady"));
        let t = node(
            serde_json::json!({"metadata": {"name": "n3"}, "spec": {"taints": [{"key": "k", "effect": "NoExecute"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert!(t.unusable_reason(false).unwrap().contains("--tolerate-taints"));
        assert_eq!(t.unusable_reason(true), None);
    }
}
