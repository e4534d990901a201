//! The objects a watch creates, built as typed API objects. Pure: no API calls here.
//!
//! Invariant: the agents must survive a correct rolling upgrade. Clients are a DaemonSet (a drain
//! leaves DaemonSet pods in place, and they tolerate the taints a node gets while it is cordoned or
//! NotReady); servers are a Deployment spread over the nodes, guarded by a PodDisruptionBudget, that
//! stop taking traffic before they stop answering.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment};
use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::protocol::watch::{WATCH_PLAN_ENV, WatchPath, WatchPlan, WatchProbe};
use crate::protocol::{HTTP_PORT, PROTOCOL_VERSION};
use crate::runner::manifests::{self, AgentTemplate, COMPONENT_LABEL};

/// Label on a watch's namespace (besides the run-id label every netcheck namespace has), so that
/// `watch stop` finds it.
pub const WATCH_LABEL: &str = "netcheck.dev/watch";
/// Annotation on a watch's namespace: when traffic flowed on every path (epoch ms); the budget is
/// judged from then on.
pub const FLOWING_ANNOTATION: &str = "netcheck.dev/watch-flowing-ms";
/// The Service the watch probes (ClusterIP, node ports, DNS name, pod IPs).
pub const WATCH_SERVICE: &str = "netcheck-watch";
/// The client DaemonSet.
pub const CLIENT_DAEMONSET: &str = "netcheck-watch-client";
/// The server Deployment and its PodDisruptionBudget.
pub const SERVER_DEPLOYMENT: &str = "netcheck-watch-server";
/// How long a server agent keeps answering, not ready, after SIGTERM: longer than endpoint removal
/// takes to reach every node's Service proxy, so that a drained server never costs a request.
pub const SERVER_SHUTDOWN_DELAY_MS: u64 = 5_000;

/// The agents' Role: the run's own (orders) plus reading the endpoints of the watched Service (the
/// pod-IP path follows its ready endpoints) and creating the record ConfigMaps.
pub fn agent_role(ns: &str) -> Role {
    let (_, mut role, _) = manifests::agent_rbac(ns);
    let rules = role.rules.get_or_insert_with(Vec::new);
    for rule in rules.iter_mut() {
        if rule.resources.as_deref().is_some_and(|r| r.iter().any(|r| r == "configmaps")) {
            rule.verbs.push("create".into());
        }
    }
    rules.push(PolicyRule {
        api_groups: Some(vec!["discovery.k8s.io".into()]),
        resources: Some(vec!["endpointslices".into()]),
        verbs: vec!["list".into(), "watch".into()],
        ..Default::default()
    });
    role
}

/// The server agents: `replicas` pods spread over the nodes, shutting down gracefully.
pub fn server_deployment(ns: &str, replicas: i32, template: &AgentTemplate) -> Deployment {
    let mut deployment = manifests::agent_deployment(ns, SERVER_DEPLOYMENT, "watch-server", replicas, template);
    if let Some(pod) = deployment.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        pod.termination_grace_period_seconds = Some((SERVER_SHUTDOWN_DELAY_MS / 1000) as i64 + 5);
        for container in &mut pod.containers {
            for env in container.env.iter_mut().flatten() {
                if env.name == "NETCHECK_SHUTDOWN_DELAY_MS" {
                    env.value = Some(SERVER_SHUTDOWN_DELAY_MS.to_string());
                }
            }
        }
    }
    deployment
}

/// At most one server agent may be evicted at a time: a drain then keeps the others serving.
pub fn server_budget(ns: &str) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: manifests::meta(SERVER_DEPLOYMENT, ns, &[]),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(server_selector()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn server_selector() -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(COMPONENT_LABEL.to_string(), "watch-server".to_string())])),
        ..Default::default()
    }
}

/// The watched Service: a NodePort Service over the server agents (its ClusterIP, node ports, DNS
/// name and endpoints are the paths).
pub fn service(ns: &str) -> Service {
    Service {
        metadata: manifests::meta(WATCH_SERVICE, ns, &[]),
        spec: Some(ServiceSpec {
            type_: Some("NodePort".into()),
            selector: server_selector().match_labels,
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The client agents: one per node (those the template's taint rule admits), each following `plan`.
pub fn client_daemonset(ns: &str, plan: &WatchPlan, template: &AgentTemplate) -> DaemonSet {
    let plan_env = EnvVar {
        name: WATCH_PLAN_ENV.into(),
        value: Some(serde_json::to_string(plan).unwrap_or_default()),
        ..Default::default()
    };
    let selector = BTreeMap::from([(COMPONENT_LABEL.to_string(), "watch-client".to_string())]);
    DaemonSet {
        metadata: manifests::meta(CLIENT_DAEMONSET, ns, &[(COMPONENT_LABEL, "watch-client")]),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector { match_labels: Some(selector), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(manifests::labels(&[(COMPONENT_LABEL, "watch-client")])),
                    ..Default::default()
                }),
                spec: Some(manifests::agent_pod_spec(template, vec![plan_env])),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The addresses a plan is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// The watched Service's ClusterIP.
    pub cluster_ip: String,
    /// Its node port.
    pub node_port: u16,
    /// Per node: its name and the address its node port is probed on.
    pub nodes: Vec<(String, String)>,
    /// The cluster DNS Service (`ip:53`), if it has a ClusterIP.
    pub dns_server: Option<String>,
    /// The watched Service's fully qualified name.
    pub service_name: String,
}

/// Path ids of a plan: `clusterip`, `long-lived`, `nodeport/<node>`, `dns`, `pod-ip`.
pub fn plan(targets: &Targets, interval_ms: u64, timeout_ms: u64, flush_ms: u64) -> WatchPlan {
    let service = format!("{}:80", targets.cluster_ip);
    let mut paths = vec![
        WatchPath { id: "clusterip".into(), probe: WatchProbe::Http { target: service.clone() } },
        WatchPath { id: "long-lived".into(), probe: WatchProbe::LongLived { target: service } },
    ];
    for (node, address) in &targets.nodes {
        paths.push(WatchPath {
            id: format!("nodeport/{node}"),
            probe: WatchProbe::Http { target: format!("{address}:{}", targets.node_port) },
        });
    }
    if let Some(server) = &targets.dns_server {
        paths.push(WatchPath {
            id: "dns".into(),
            probe: WatchProbe::Dns {
                server: server.clone(),
                name: targets.service_name.clone(),
                expect: targets.cluster_ip.clone(),
            },
        });
    }
    paths.push(WatchPath {
        id: "pod-ip".into(),
        probe: WatchProbe::PodIps { service: WATCH_SERVICE.into(), port: HTTP_PORT },
    });
    WatchPlan { version: PROTOCOL_VERSION, interval_ms, timeout_ms, flush_ms, paths }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> AgentTemplate {
        AgentTemplate {
            run_id: "w1".into(),
            image: "img".into(),
            tolerate_taints: false,
            platforms: vec![],
            api_server: None,
        }
    }

    #[test]
    fn the_plan_has_every_path_and_rides_in_the_client_pods() {
        let targets = Targets {
            cluster_ip: "10.96.4.5".into(),
            node_port: 31000,
            nodes: vec![("node-a".into(), "10.250.0.11".into()), ("node-b".into(), "10.250.0.12".into())],
            dns_server: Some("10.96.0.10:53".into()),
            service_name: "netcheck-watch.netcheck-x.svc.cluster.local.".into(),
        };
        let plan = plan(&targets, 200, 1000, 2000);
        let ids: Vec<&str> = plan.paths.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["clusterip", "long-lived", "nodeport/node-a", "nodeport/node-b", "dns", "pod-ip"]);
        assert_eq!(plan.paths[3].probe, WatchProbe::Http { target: "10.250.0.12:31000".into() });
        let ds = client_daemonset("netcheck-x", &plan, &template());
        let env = ds.spec.unwrap().template.spec.unwrap().containers[0].env.clone().unwrap();
        let carried = env.iter().find(|e| e.name == WATCH_PLAN_ENV).and_then(|e| e.value.clone()).unwrap();
        assert_eq!(WatchPlan::parse(&carried).unwrap(), plan);
    }

    #[test]
    fn servers_outlast_their_endpoint_removal_and_one_at_a_time_may_go() {
        let d = server_deployment("netcheck-x", 3, &template());
        let pod = d.spec.unwrap().template.spec.unwrap();
        let env = pod.containers[0].env.clone().unwrap();
        let delay = env.iter().find(|e| e.name == "NETCHECK_SHUTDOWN_DELAY_MS").and_then(|e| e.value.clone());
        assert_eq!(delay.as_deref(), Some("5000"));
        assert!(pod.termination_grace_period_seconds.unwrap() * 1000 > SERVER_SHUTDOWN_DELAY_MS as i64);
        let pdb = server_budget("netcheck-x").spec.unwrap();
        assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
        let role = agent_role("netcheck-x");
        let rules = role.rules.unwrap();
        assert!(rules.iter().any(|r| r.resources.as_ref().unwrap()[0] == "endpointslices"));
        assert!(rules.iter().any(|r| r.verbs.contains(&"create".to_string())));
    }
}
