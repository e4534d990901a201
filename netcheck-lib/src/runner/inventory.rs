//! The nodes of the cluster and which of them can host a client agent.

use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use super::Cluster;
use crate::{Error, Result};

/// The node label naming its operating system (set by the kubelet).
pub const OS_LABEL: &str = "kubernetes.io/os";
/// The node label naming its CPU architecture (set by the kubelet).
pub const ARCH_LABEL: &str = "kubernetes.io/arch";
/// The label virtual-kubelet nodes carry (`type: virtual-kubelet`), AKS virtual nodes (ACI) among them.
pub const VIRTUAL_NODE_LABEL: (&str, &str) = ("type", "virtual-kubelet");
/// The taint key virtual-kubelet providers put on their nodes.
const VIRTUAL_NODE_TAINT: &str = "virtual-kubelet.io/provider";

/// The platforms `image/Dockerfile` builds the agent image for, one `os/arch` per line: the
/// default of `--image-platforms`, read from the same file the image build reads.
const DOCKERFILE_PLATFORMS: &str = include_str!("../../../image/platforms");

/// A platform the agent image provides: always Linux (the agent is a Linux binary), on one CPU
/// architecture, written `linux/amd64` as Docker and the node labels name them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// The architecture, as the `kubernetes.io/arch` label names it (`amd64`, `arm64`).
    pub arch: String,
}

impl Platform {
    /// The platforms of the image as `image/Dockerfile` builds it (linux/amd64 and linux/arm64).
    pub fn dockerfile_defaults() -> Vec<Platform> {
        parse_platforms(&DOCKERFILE_PLATFORMS.replace('\n', ","))
            .expect("image/platforms lists valid platforms (a unit test reads it)")
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (os, arch) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("'{text}' is not a platform like linux/amd64 (os/architecture)"))?;
        if os != "linux" {
            return Err(format!("'{text}': the agent is a Linux binary, so its image provides only linux/… platforms"));
        }
        let valid =
            !arch.is_empty() && arch.len() <= 16 && arch.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !valid {
            return Err(format!("'{text}': '{arch}' is not an architecture name like amd64 or arm64"));
        }
        Ok(Platform { arch: arch.to_string() })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "linux/{}", self.arch)
    }
}

/// A comma-separated platform list (`linux/amd64,linux/arm64`), sorted and without repeats; at least one.
pub fn parse_platforms(text: &str) -> std::result::Result<Vec<Platform>, String> {
    let mut platforms = text
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect::<std::result::Result<Vec<Platform>, _>>()?;
    platforms.sort();
    platforms.dedup();
    if platforms.is_empty() {
        return Err("no platform given: name at least one, like linux/amd64".into());
    }
    Ok(platforms)
}

/// Where client agents may run: the image's platforms, and whether they tolerate taints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement<'a> {
    /// The platforms the agent image provides.
    pub platforms: &'a [Platform],
    /// Agents tolerate every taint (`--tolerate-taints`).
    pub tolerate_taints: bool,
}

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
    /// The pressure conditions that are True (`DiskPressure`, `MemoryPressure`, `PIDPressure`): the
    /// kubelet refuses new pods then, whatever they tolerate.
    pub pressure: Vec<String>,
    /// Operating system (`kubernetes.io/os`, else the kubelet's report); None when neither says.
    pub os: Option<String>,
    /// CPU architecture (`kubernetes.io/arch`, else the kubelet's report); None when neither says.
    pub arch: Option<String>,
    /// A virtual-kubelet node (AKS virtual nodes, ACI): it accepts pods but has no node network or
    /// kube-proxy of its own, so it is no node for Service networking.
    pub virtual_node: bool,
    /// The image references the kubelet lists as present (at most its `nodeStatusMaxImages`, 50 by
    /// default, largest first).
    pub images: Vec<String>,
}

impl NodeInfo {
    /// Whether the kubelet lists `image` as present, also in the `docker.io/` form a bare name takes.
    pub fn lists_image(&self, image: &str) -> bool {
        // As Docker reads a reference: a first part before a `/` names a registry when it has a dot or
        // a port or is localhost; otherwise the reference is short for one on docker.io.
        let registry =
            image.split_once('/').is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost");
        let mut forms = vec![image.to_string()];
        if !registry {
            forms.push(format!("docker.io/{image}"));
            if !image.contains('/') {
                forms.push(format!("docker.io/library/{image}"));
            }
        }
        self.images.iter().any(|listed| forms.iter().any(|f| f == listed))
    }

    /// Why no client agent can run here, if it cannot.
    pub fn unusable_reason(&self, placement: &Placement) -> Option<String> {
        let platforms = || placement.platforms.iter().map(Platform::to_string).collect::<Vec<_>>().join(", ");
        if self.virtual_node {
            Some(format!(
                "node {} is a virtual node (virtual-kubelet), with no node network or kube-proxy to check",
                self.name
            ))
        } else if !self.ready {
            Some(format!("node {} is NotReady", self.name))
        } else if let Some(os) = self.os.as_deref().filter(|os| *os != "linux") {
            Some(format!("node {} runs {os}, and the agent image is Linux only ({})", self.name, platforms()))
        } else if let Some(arch) = self.arch.as_deref().filter(|a| !placement.platforms.iter().any(|p| p.arch == *a)) {
            Some(format!(
                "node {} is linux/{arch}, and the agent image provides only {}; build it for linux/{arch} and pass \
                 --image-platforms",
                self.name,
                platforms()
            ))
        } else if !self.pressure.is_empty() {
            Some(format!(
                "node {} reports {}: its kubelet admits no new pod, whatever it tolerates; free what it lacks on the \
                 node",
                self.name,
                self.pressure.join(", ")
            ))
        } else if !self.schedulable {
            Some(format!("node {} is cordoned (unschedulable)", self.name))
        } else if !self.taints.is_empty() && !placement.tolerate_taints {
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
    let conditions = status.conditions.unwrap_or_default();
    let ready = conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    let pressure = conditions
        .iter()
        .filter(|c| c.type_.ends_with("Pressure") && c.status == "True")
        .map(|c| c.type_.clone())
        .collect();
    let spec = node.spec.clone().unwrap_or_default();
    let all_taints = spec.taints.unwrap_or_default();
    let taints = all_taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .map(|t| format!("{}={}:{}", t.key, t.value.clone().unwrap_or_default(), t.effect))
        .collect();
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let reported = status.node_info.clone();
    let os = labels.get(OS_LABEL).cloned().or_else(|| reported.as_ref().map(|i| i.operating_system.clone()));
    let arch = labels.get(ARCH_LABEL).cloned().or_else(|| reported.as_ref().map(|i| i.architecture.clone()));
    let virtual_node = labels.get(VIRTUAL_NODE_LABEL.0).is_some_and(|v| v == VIRTUAL_NODE_LABEL.1)
        || all_taints.iter().any(|t| t.key == VIRTUAL_NODE_TAINT);
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        internal_ips: of_type("InternalIP"),
        external_ips: of_type("ExternalIP"),
        ready,
        schedulable: !spec.unschedulable.unwrap_or(false),
        taints,
        pressure,
        os: os.filter(|s| !s.is_empty()),
        arch: arch.filter(|s| !s.is_empty()),
        virtual_node,
        images: status.images.unwrap_or_default().into_iter().flat_map(|i| i.names.unwrap_or_default()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amd64() -> &'static [Platform] {
        Box::leak(vec![Platform { arch: "amd64".into() }].into_boxed_slice())
    }

    fn placement(tolerate_taints: bool) -> Placement<'static> {
        Placement { platforms: amd64(), tolerate_taints }
    }

    fn ready_node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> NodeInfo {
        node(serde_json::json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"operatingSystem": "linux", "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "",
                                    "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "",
                                    "osImage": "", "systemUUID": ""}}
        }))
    }

    #[test]
    fn os_and_arch_come_from_the_labels_else_from_the_kubelets_report() {
        let labelled = ready_node(
            "n1",
            serde_json::json!({"kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux"}),
            serde_json::json!([]),
        );
        assert_eq!((labelled.os.as_deref(), labelled.arch.as_deref()), (Some("linux"), Some("arm64")));
        let unlabelled = ready_node("n2", serde_json::json!({}), serde_json::json!([]));
        assert_eq!((unlabelled.os.as_deref(), unlabelled.arch.as_deref()), (Some("linux"), Some("amd64")));
        assert_eq!(unlabelled.unusable_reason(&placement(false)), None);
    }

    #[test]
    fn a_node_of_another_architecture_or_os_says_which_and_what_the_image_has() {
        let arm = ready_node("arm-1", serde_json::json!({"kubernetes.io/arch": "arm64"}), serde_json::json!([]));
        let why = arm.unusable_reason(&placement(true)).expect("amd64 only");
        assert!(why.contains("node arm-1 is linux/arm64, and the agent image provides only linux/amd64"), "{why}");
        assert!(why.contains("--image-platforms"), "{why}");
        let both = parse_platforms("linux/arm64,linux/amd64").unwrap();
        assert_eq!(arm.unusable_reason(&Placement { platforms: &both, tolerate_taints: false }), None);
        let windows = ready_node("win-1", serde_json::json!({"kubernetes.io/os": "windows"}), serde_json::json!([]));
        let why = windows.unusable_reason(&Placement { platforms: &both, tolerate_taints: true }).expect("not Linux");
        assert!(why.contains("node win-1 runs windows"), "{why}");
    }

    #[test]
    fn a_virtual_kubelet_node_is_never_a_place_for_an_agent() {
        let by_label = ready_node("vk", serde_json::json!({"type": "virtual-kubelet"}), serde_json::json!([]));
        assert!(by_label.virtual_node);
        let why = by_label.unusable_reason(&placement(true)).expect("virtual");
        assert!(why.contains("node vk is a virtual node (virtual-kubelet)"), "{why}");
        let by_taint = ready_node(
            "aci",
            serde_json::json!({}),
            serde_json::json!([{"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}]),
        );
        assert!(by_taint.virtual_node, "even --tolerate-taints does not make it a node to check");
        assert!(by_taint.unusable_reason(&placement(true)).unwrap().contains("virtual node"));
    }

    #[test]
    fn an_image_is_listed_by_its_reference_or_the_docker_io_form_of_a_bare_name() {
        let n = NodeInfo {
            images: vec![
                "localhost/netcheck/agent:0.1.0".into(),
                "docker.io/netcheck/agent:0.2.0".into(),
                "docker.io/library/busybox:1".into(),
            ],
            ..Default::default()
        };
        assert!(n.lists_image("localhost/netcheck/agent:0.1.0"));
        assert!(n.lists_image("netcheck/agent:0.2.0"), "kind load stores a bare name under docker.io");
        assert!(n.lists_image("busybox:1"));
        assert!(!n.lists_image("localhost/netcheck/agent:0.2.0"));
        assert!(!n.lists_image("myacr.azurecr.io/netcheck/agent:0.1.0"));
    }

    #[test]
    fn platform_lists_parse_strictly() {
        let list = parse_platforms("linux/arm64, linux/amd64,linux/arm64").unwrap();
        assert_eq!(list.iter().map(Platform::to_string).collect::<Vec<_>>(), ["linux/amd64", "linux/arm64"]);
        assert!(parse_platforms("windows/amd64").unwrap_err().contains("Linux binary"));
        assert!(parse_platforms("amd64").unwrap_err().contains("not a platform like linux/amd64"));
        assert!(parse_platforms("linux/ARM64").unwrap_err().contains("not an architecture name"));
        assert!(parse_platforms("linux/").is_err());
        assert!(parse_platforms(" , ").unwrap_err().contains("no platform given"));
    }

    #[test]
    fn the_default_platforms_are_those_the_dockerfile_builds() {
        let defaults: Vec<String> = Platform::dockerfile_defaults().iter().map(Platform::to_string).collect();
        assert_eq!(defaults, ["linux/amd64", "linux/arm64"]);
        let dockerfile = include_str!("../../../image/Dockerfile");
        assert!(dockerfile.contains("image/rust-target \"$TARGETARCH\""), "one place maps the architecture");
        let rust_target = |arch: &str| {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../image/rust-target");
            std::process::Command::new(script).arg(arch).output().expect("image/rust-target runs")
        };
        for platform in Platform::dockerfile_defaults() {
            let out = rust_target(&platform.arch);
            let triple = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert!(out.status.success() && triple.ends_with("-unknown-linux-gnu"), "{platform}: {triple}");
        }
        assert_eq!(String::from_utf8_lossy(&rust_target("arm64").stdout).trim(), "aarch64-unknown-linux-gnu");
        assert_eq!(rust_target("s390x").status.code(), Some(2), "an architecture without a target is refused");
    }

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
        assert!(n.unusable_reason(&placement(true)).unwrap().contains("cordoned"));
    }

    #[test]
    fn not_ready_and_tainted_nodes_say_why() {
        let n = node(
            serde_json::json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        assert!(n.unusable_reason(&placement(false)).unwrap().contains("NotReady"));
        let t = node(
            serde_json::json!({"metadata": {"name": "n3"}, "spec": {"taints": [{"key": "k", "effect": "NoExecute"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert!(t.unusable_reason(&placement(false)).unwrap().contains("--tolerate-taints"));
        assert_eq!(t.unusable_reason(&placement(true)), None);
    }

    #[test]
    fn a_node_under_pressure_is_unusable_even_when_taints_are_tolerated() {
        // As the kubelet marks a node whose disk is nearly full: the condition and its taint.
        let n = node(serde_json::json!({"metadata": {"name": "n4"},
            "spec": {"taints": [{"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "True"},
                                      {"type": "MemoryPressure", "status": "False"}]}}));
        assert_eq!(n.pressure, vec!["DiskPressure"]);
        let why = n.unusable_reason(&placement(true)).expect("under pressure");
        assert!(why.contains("node n4 reports DiskPressure"), "{why}");
    }

    #[test]
    fn no_usable_node_names_every_nodes_reason() {
        let reasons = vec!["node a is NotReady".to_string(), "node b is cordoned (unschedulable)".to_string()];
        let e = crate::Error::NoUsableNode { reasons };
        assert_eq!(
            e.to_string(),
            "no node can run a client agent: node a is NotReady; node b is cordoned (unschedulable)"
        );
        assert!(crate::Error::NoUsableNode { reasons: vec![] }.to_string().ends_with("the cluster lists no node"));
    }
}
