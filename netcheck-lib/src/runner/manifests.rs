//! The objects a run creates, built as typed API objects. Pure: no API calls here.
//!
//! Invariant: every object carries [`MANAGED_BY`] and lives in the run's namespace; agent pods satisfy
//! the `restricted` Pod Security profile.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace, NodeAffinity,
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector, Pod, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Service, ServiceAccount,
    ServicePort, ServiceSpec, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject as RbacSubject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::inventory::{ARCH_LABEL, OS_LABEL, VIRTUAL_NODE_LABEL};
use crate::protocol::{HTTP_PORT, UDP_PORT};

/// Label key/value on every object netcheck creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "netcheck");
/// Label of a run's namespace carrying the run id (the namespace is named `netcheck-<run id>`): with
/// the name and [`EXPIRES_ANNOTATION`], what tells `netcheck gc` that netcheck created it.
pub const RUN_ID_LABEL: &str = "netcheck.dev/run-id";
/// Annotation with the RFC 3339 time after which `netcheck gc` may delete a run's namespace.
pub const EXPIRES_ANNOTATION: &str = "netcheck.dev/expires-at";
/// Label telling agent roles apart.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Label naming the node a client agent is pinned to.
pub const CLIENT_NODE_LABEL: &str = "netcheck.dev/node";
/// The agents' service account.
pub const AGENT_SERVICE_ACCOUNT: &str = "netcheck-agent";
/// The server agents' Deployment.
pub const SERVER_DEPLOYMENT: &str = "netcheck-server";
/// The ClusterIP Service over the server agents.
pub const ECHO_SERVICE: &str = "netcheck-echo";
/// Service port for HTTP (→ agent port [`HTTP_PORT`]).
pub const ECHO_HTTP_PORT: i32 = 80;
/// Service port for UDP (→ agent port [`UDP_PORT`]).
pub const ECHO_UDP_PORT: i32 = 81;

/// Settings shared by all agent pods of a run.
#[derive(Debug, Clone)]
pub struct AgentTemplate {
    /// The run the agents serve (`NETCHECK_RUN_ID`): they refuse orders of any other.
    pub run_id: String,
    /// Agent image reference.
    pub image: String,
    /// Tolerate every taint (`--tolerate-taints`).
    pub tolerate_taints: bool,
    /// The platforms the image provides: agents run only on Linux nodes of these architectures,
    /// never on virtual-kubelet nodes.
    pub platforms: Vec<super::Platform>,
    /// The API server's direct address for the agents' control channel, if known.
    pub api_server: Option<String>,
}

pub(crate) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    map.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    map
}

pub(crate) fn meta(name: &str, namespace: &str, extra_labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        labels: Some(labels(extra_labels)),
        ..Default::default()
    }
}

/// The namespace of run `run_id`, `netcheck-<run_id>`, labelled with the run id and annotated with its
/// expiry.
pub fn namespace(run_id: &str, expires_at: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(namespace_name(run_id)),
            // Every pod netcheck creates meets the `restricted` profile; the namespace makes the API
            // server hold it to that.
            labels: Some(labels(&[
                (RUN_ID_LABEL, run_id),
                ("pod-security.kubernetes.io/enforce", "restricted"),
                ("pod-security.kubernetes.io/enforce-version", "latest"),
            ])),
            annotations: Some(BTreeMap::from([(EXPIRES_ANNOTATION.to_string(), expires_at.to_string())])),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Requests and limits of every agent container, so that a namespace whose ResourceQuota or policy
/// requires them admits the agents. Measured on the testbed under the full scenario (72 results,
/// 66 s): a client agent used 2.9 s of CPU (45 millicores on average, bursts of requests above that)
/// and at most 11.7 MiB resident; a server agent 0.5 s and 7 MiB; every probe parameter at its
/// maximum took a client agent to 27.6 MiB. The CPU request is kept small (a
/// node whose CPU is almost all requested must still host a client agent, or the node is not
/// checked), the memory limit is five times the peak, and the CPU limit leaves bursts unthrottled, so
/// that latencies are the network's, not the quota's.
fn agent_resources() -> ResourceRequirements {
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([("cpu".to_string(), Quantity(cpu.into())), ("memory".to_string(), Quantity(memory.into()))])
    };
    ResourceRequirements {
        requests: Some(quantities("10m", "16Mi")),
        limits: Some(quantities("1", "64Mi")),
        ..Default::default()
    }
}

/// The name of run `run_id`'s namespace.
pub fn namespace_name(run_id: &str) -> String {
    format!("netcheck-{run_id}")
}

/// Service account, role and binding: agents may only read and answer the ConfigMaps (orders) of their
/// own namespace.
pub fn agent_rbac(ns: &str) -> (ServiceAccount, Role, RoleBinding) {
    let sa = ServiceAccount { metadata: meta(AGENT_SERVICE_ACCOUNT, ns, &[]), ..Default::default() };
    let role = Role {
        metadata: meta(AGENT_SERVICE_ACCOUNT, ns, &[]),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into(), "patch".into()],
            ..Default::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: meta(AGENT_SERVICE_ACCOUNT, ns, &[]),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: AGENT_SERVICE_ACCOUNT.into(),
        },
        subjects: Some(vec![RbacSubject {
            kind: "ServiceAccount".into(),
            name: AGENT_SERVICE_ACCOUNT.into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }]),
    };
    (sa, role, binding)
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn agent_container(template: &AgentTemplate, extra_env: Vec<EnvVar>) -> Container {
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("NODE_NAME", "spec.nodeName"),
        field_env("POD_IP", "status.podIP"),
        EnvVar { name: crate::protocol::RUN_ID_ENV.into(), value: Some(template.run_id.clone()), ..Default::default() },
        EnvVar { name: "RUST_LOG".into(), value: Some("info".into()), ..Default::default() },
    ];
    if let Some(url) = &template.api_server {
        env.push(EnvVar {
            name: crate::protocol::API_SERVER_ENV.into(),
            value: Some(url.clone()),
            ..Default::default()
        });
    }
    env.extend(extra_env);
    Container {
        name: "agent".into(),
        image: Some(template.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(env),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: HTTP_PORT.into(),
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                name: Some("udp".into()),
                container_port: UDP_PORT.into(),
                protocol: Some("UDP".into()),
                ..Default::default()
            },
        ]),
        resources: Some(agent_resources()),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/readyz".into()),
                port: IntOrString::Int(HTTP_PORT.into()),
                ..Default::default()
            }),
            period_seconds: Some(1),
            failure_threshold: Some(1),
            success_threshold: Some(1),
            timeout_seconds: Some(1),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The nodes an agent may run on: Linux (the image holds a Linux binary), one of the image's
/// architectures, and not a virtual-kubelet node. Without this, a pod pinned to a Windows or arm64
/// node fails there and the run reads as netcheck's own failure; such nodes are skips instead.
fn platform_affinity(template: &AgentTemplate) -> Affinity {
    let mut expressions = vec![NodeSelectorRequirement {
        key: VIRTUAL_NODE_LABEL.0.into(),
        operator: "NotIn".into(),
        values: Some(vec![VIRTUAL_NODE_LABEL.1.into()]),
    }];
    if !template.platforms.is_empty() {
        expressions.push(NodeSelectorRequirement {
            key: ARCH_LABEL.into(),
            operator: "In".into(),
            values: Some(template.platforms.iter().map(|p| p.arch.clone()).collect()),
        });
    }
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(expressions),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn agent_pod_spec(template: &AgentTemplate, extra_env: Vec<EnvVar>) -> PodSpec {
    PodSpec {
        node_selector: Some(BTreeMap::from([(OS_LABEL.to_string(), "linux".to_string())])),
        affinity: Some(platform_affinity(template)),
        containers: vec![agent_container(template, extra_env)],
        service_account_name: Some(AGENT_SERVICE_ACCOUNT.into()),
        termination_grace_period_seconds: Some(5),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            run_as_group: Some(65532),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
            ..Default::default()
        }),
        tolerations: template
            .tolerate_taints
            .then(|| vec![Toleration { operator: Some("Exists".into()), ..Default::default() }]),
        ..Default::default()
    }
}

/// A server agent (it joins the echo and headless Services) whose readiness starts false
/// (`NETCHECK_START_READY=false`) until an order switches it: `endpoints/unready-at-start`.
pub fn unready_server_pod(ns: &str, name: &str, template: &AgentTemplate) -> Pod {
    let start = EnvVar { name: "NETCHECK_START_READY".into(), value: Some("false".into()), ..Default::default() };
    Pod {
        metadata: meta(name, ns, &[(COMPONENT_LABEL, "server")]),
        spec: Some(agent_pod_spec(template, vec![start])),
        ..Default::default()
    }
}

/// Name of the client agent pod on `node`.
pub fn client_pod_name(node: &str) -> String {
    // Pod names are DNS subdomains; node names are too, but may be long.
    let mut name = format!("netcheck-client-{node}");
    name.truncate(253);
    name
}

/// The `hostname` of the client agent on `node`: a DNS label (the node name with dots turned into
/// dashes, at most 63 characters). With `subdomain` [`CLIENTS_SERVICE`] it gets a DNS name of its own.
pub fn client_hostname(node: &str) -> String {
    let label: String = node.to_ascii_lowercase().replace('.', "-").chars().take(63).collect();
    label.trim_matches('-').to_string()
}

/// A client agent pinned to `node` (through the scheduler, so that taints and admission apply), by the
/// node's name itself (`matchFields metadata.name`, as DaemonSets pin): the `kubernetes.io/hostname`
/// label need not equal the name (cloud providers set it to the host's name).
pub fn client_pod(ns: &str, node: &str, template: &AgentTemplate) -> Pod {
    let mut spec = agent_pod_spec(template, vec![]);
    let pinned = NodeSelectorRequirement {
        key: "metadata.name".into(),
        operator: "In".into(),
        values: Some(vec![node.to_string()]),
    };
    // The same term as every agent's, narrowed to the node: both must hold.
    let terms = spec
        .affinity
        .iter_mut()
        .filter_map(|a| a.node_affinity.as_mut()?.required_during_scheduling_ignored_during_execution.as_mut());
    for selector in terms {
        for term in &mut selector.node_selector_terms {
            term.match_fields = Some(vec![pinned.clone()]);
        }
    }
    spec.hostname = Some(client_hostname(node));
    spec.subdomain = Some(CLIENTS_SERVICE.into());
    Pod {
        metadata: meta(
            &client_pod_name(node),
            ns,
            &[(COMPONENT_LABEL, "client"), (CLIENT_NODE_LABEL, &label_value(node))],
        ),
        spec: Some(spec),
        ..Default::default()
    }
}

fn label_value(s: &str) -> String {
    s.chars().take(63).collect()
}

/// The server agents: `replicas` pods spread evenly over nodes, shutting down gracefully.
pub fn server_deployment(ns: &str, replicas: i32, template: &AgentTemplate) -> Deployment {
    agent_deployment(ns, SERVER_DEPLOYMENT, "server", replicas, template)
}

/// The Deployment and ClusterIP Service that `endpoints/rollout` replaces while clients send traffic:
/// agents labelled `component: rollout`, surging one new pod before an old one goes (the usual
/// zero-downtime settings), separate from the server agents so that other checks are not disturbed.
pub fn rollout_objects(ns: &str, replicas: i32, template: &AgentTemplate) -> (Deployment, Service) {
    let mut deployment = agent_deployment(ns, ROLLOUT_SERVICE, "rollout", replicas, template);
    if let Some(spec) = deployment.spec.as_mut() {
        spec.strategy = Some(DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        });
    }
    let mut service = fresh_service(ns, ROLLOUT_SERVICE);
    service.metadata.name = Some(ROLLOUT_SERVICE.into());
    service.metadata.generate_name = None;
    if let Some(spec) = service.spec.as_mut() {
        spec.selector = Some(component_selector("rollout"));
    }
    (deployment, service)
}

/// How long a Deployment's agent keeps serving, not ready, after SIGTERM: the time every node's data
/// plane has to drop it before it stops. 2 s was too short for a loaded two-core testbed (a CI
/// rehearsal saw node-b's kube-proxy still send to a leaving pod after it), and applications are
/// advised a preStop delay of several seconds for the same reason.
pub const SHUTDOWN_DELAY_MS: u64 = 4_000;

/// Agents as a Deployment labelled `component`, spread over nodes, shutting down gracefully (not
/// ready, still serving, for [`SHUTDOWN_DELAY_MS`] after SIGTERM, so that endpoints drop them before
/// they stop).
pub(crate) fn agent_deployment(
    ns: &str,
    name: &str,
    component: &str,
    replicas: i32,
    template: &AgentTemplate,
) -> Deployment {
    let selector = component_selector(component);
    let delay = EnvVar {
        name: "NETCHECK_SHUTDOWN_DELAY_MS".into(),
        value: Some(SHUTDOWN_DELAY_MS.to_string()),
        ..Default::default()
    };
    let mut spec = agent_pod_spec(template, vec![delay]);
    // The kubelet's SIGKILL must not cut the delay short.
    spec.termination_grace_period_seconds = Some((SHUTDOWN_DELAY_MS / 1000) as i64 + 5);
    spec.topology_spread_constraints = Some(vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "kubernetes.io/hostname".into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(LabelSelector { match_labels: Some(selector.clone()), ..Default::default() }),
        ..Default::default()
    }]);
    Deployment {
        metadata: meta(name, ns, &[(COMPONENT_LABEL, component)]),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: Some(selector.clone()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&[(COMPONENT_LABEL, component)])),
                    ..Default::default()
                }),
                spec: Some(spec),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ClusterIP Service over the server agents: HTTP on [`ECHO_HTTP_PORT`], UDP on [`ECHO_UDP_PORT`].
pub fn echo_service(ns: &str) -> Service {
    Service {
        metadata: meta(ECHO_SERVICE, ns, &[]),
        spec: Some(ServiceSpec {
            selector: Some(component_selector("server")),
            ports: Some(vec![
                ServicePort {
                    name: Some("http".into()),
                    port: ECHO_HTTP_PORT,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
                ServicePort {
                    name: Some("udp".into()),
                    port: ECHO_UDP_PORT,
                    target_port: Some(IntOrString::String("udp".into())),
                    protocol: Some("UDP".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// NodePort Service over the server agents (externalTrafficPolicy Cluster).
pub const NODEPORT_SERVICE: &str = "netcheck-nodeport";
/// NodePort Service over the server agents with externalTrafficPolicy Local.
pub const LOCAL_SERVICE: &str = "netcheck-local";
/// LoadBalancer Service over the server agents (`loadbalancer/provision`, `loadbalancer/reachable`),
/// created only when those checks run: on a cloud, each one is a real load balancer that takes time
/// and money.
pub const LOADBALANCER_SERVICE: &str = "netcheck-lb";
/// LoadBalancer Service with `externalTrafficPolicy: Local` over the one pod
/// [`LOADBALANCER_LOCAL_POD`] (`loadbalancer/local-policy`): one node has a local endpoint, the others
/// none, so every node's health-check node port has a known answer.
pub const LOADBALANCER_LOCAL_SERVICE: &str = "netcheck-lb-local";
/// The server agent behind [`LOADBALANCER_LOCAL_SERVICE`] (its own pod, so that switching its
/// readiness disturbs no other check).
pub const LOADBALANCER_LOCAL_POD: &str = "netcheck-lb-local";
/// The component label value of [`LOADBALANCER_LOCAL_POD`].
const LOADBALANCER_LOCAL_COMPONENT: &str = "lb-local";
/// LoadBalancer Service with `externalTrafficPolicy: Local` over the server agents whose
/// `loadBalancerSourceRanges` `loadbalancer/source-ranges` changes.
pub const LOADBALANCER_RANGES_SERVICE: &str = "netcheck-lb-ranges";

/// A `type: LoadBalancer` Service named `name`, HTTP over the pods of `component`, with
/// `externalTrafficPolicy: Local` when `local` (the client's address preserved, and a health-check
/// node port allocated).
pub fn loadbalancer_service(ns: &str, name: &str, component: &str, local: bool) -> Service {
    let mut service = fresh_service(ns, name);
    service.metadata.name = Some(name.into());
    service.metadata.generate_name = None;
    if let Some(spec) = service.spec.as_mut() {
        spec.type_ = Some("LoadBalancer".into());
        spec.selector = Some(component_selector(component));
        if local {
            spec.external_traffic_policy = Some("Local".into());
        }
    }
    service
}

/// The three LoadBalancer Services of the `loadbalancer/*` checks, by name: (name, component, local).
pub const LOADBALANCER_SERVICES: [(&str, &str, bool); 3] = [
    (LOADBALANCER_SERVICE, "server", false),
    (LOADBALANCER_LOCAL_SERVICE, LOADBALANCER_LOCAL_COMPONENT, true),
    (LOADBALANCER_RANGES_SERVICE, "server", true),
];

/// The server agent behind [`LOADBALANCER_LOCAL_SERVICE`]: ready from the start, in no other Service.
pub fn loadbalancer_local_pod(ns: &str, template: &AgentTemplate) -> Pod {
    Pod {
        metadata: meta(LOADBALANCER_LOCAL_POD, ns, &[(COMPONENT_LABEL, LOADBALANCER_LOCAL_COMPONENT)]),
        spec: Some(agent_pod_spec(template, vec![])),
        ..Default::default()
    }
}

/// ClusterIP Service over the server agents with sessionAffinity ClientIP.
pub const AFFINITY_SERVICE: &str = "netcheck-affinity";
/// ClusterIP Service whose selector matches no pod.
pub const EMPTY_SERVICE: &str = "netcheck-empty";
/// Headless Service over the server agents (DNS answers the ready pod IPs).
pub const HEADLESS_SERVICE: &str = "netcheck-headless";
/// Headless Service over the server agents with `publishNotReadyAddresses` (DNS answers every pod IP).
pub const HEADLESS_ALL_SERVICE: &str = "netcheck-headless-all";
/// Headless Service over the client agents, whose pods set `subdomain` to it (pod hostname records).
pub const CLIENTS_SERVICE: &str = "netcheck-clients";
/// Deployment and Service replaced by `endpoints/rollout`.
pub const ROLLOUT_SERVICE: &str = "netcheck-rollout";
/// ExternalName Service (DNS answers a CNAME).
pub const EXTERNAL_SERVICE: &str = "netcheck-external";
/// The `externalName` of [`EXTERNAL_SERVICE`]: under `.invalid` (RFC 2606), so it never resolves
/// and no query for it leaves the cluster's DNS for a real name.
pub const EXTERNAL_TARGET: &str = "netcheck-target.invalid";

/// A plain ClusterIP Service over the server agents, created during a check (DNS appearance time),
/// named by the API server from `prefix` so that every call gets a name never asked before.
pub fn fresh_service(ns: &str, prefix: &str) -> Service {
    Service {
        metadata: ObjectMeta { name: None, generate_name: Some(prefix.into()), ..meta(prefix, ns, &[]) },
        spec: Some(ServiceSpec {
            selector: Some(component_selector("server")),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: ECHO_HTTP_PORT,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The selector (and pod labels) of the agents of one `component`: `server`, `client`, `rollout`, ...
fn component_selector(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(COMPONENT_LABEL.to_string(), component.to_string())])
}

/// A group of the Services over the server agents that some checks use beside the echo Service. A
/// session creates only the groups its checks use: every Service is one more object for the endpoints
/// controller and every node's service proxy to program before the data plane settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceGroup {
    /// [`NODEPORT_SERVICE`] and [`LOCAL_SERVICE`]: the NodePort checks, and the LoadBalancer checks'
    /// test of whether the runner reaches the nodes at all.
    NodePort,
    /// [`AFFINITY_SERVICE`] and [`EMPTY_SERVICE`]: session affinity and a Service without endpoints.
    Behaviour,
    /// [`HEADLESS_SERVICE`], [`HEADLESS_ALL_SERVICE`], [`CLIENTS_SERVICE`] and [`EXTERNAL_SERVICE`]:
    /// the DNS checks.
    Dns,
}

impl ServiceGroup {
    /// Every group: what a session creates when its checks are not known in advance.
    pub const ALL: [ServiceGroup; 3] = [ServiceGroup::NodePort, ServiceGroup::Behaviour, ServiceGroup::Dns];
}

/// The Services of `groups` (of the NodePort, affinity, no-endpoint and DNS checks); HTTP only, port
/// [`ECHO_HTTP_PORT`].
pub fn check_services(ns: &str, groups: &BTreeSet<ServiceGroup>) -> Vec<Service> {
    let http_only = |name: &str, spec: ServiceSpec| {
        let port = ServicePort {
            name: Some("http".into()),
            port: ECHO_HTTP_PORT,
            target_port: Some(IntOrString::String("http".into())),
            protocol: Some("TCP".into()),
            ..Default::default()
        };
        let selector = spec.selector.clone().or_else(|| Some(component_selector("server")));
        Service {
            metadata: meta(name, ns, &[]),
            spec: Some(ServiceSpec { ports: Some(vec![port]), selector, ..spec }),
            ..Default::default()
        }
    };
    let external = Service {
        metadata: meta(EXTERNAL_SERVICE, ns, &[]),
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some(EXTERNAL_TARGET.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let headless = || ServiceSpec { cluster_ip: Some("None".into()), ..Default::default() };
    let node_port = |policy: Option<&str>| ServiceSpec {
        type_: Some("NodePort".into()),
        external_traffic_policy: policy.map(str::to_string),
        ..Default::default()
    };
    use ServiceGroup::{Behaviour, Dns, NodePort};
    [
        (NodePort, http_only(NODEPORT_SERVICE, node_port(None))),
        (NodePort, http_only(LOCAL_SERVICE, node_port(Some("Local")))),
        (
            Behaviour,
            http_only(
                AFFINITY_SERVICE,
                ServiceSpec { session_affinity: Some("ClientIP".into()), ..Default::default() },
            ),
        ),
        (
            Behaviour,
            http_only(
                EMPTY_SERVICE,
                ServiceSpec { selector: Some(component_selector("nothing-matches")), ..Default::default() },
            ),
        ),
        (Dns, http_only(HEADLESS_SERVICE, headless())),
        (Dns, http_only(HEADLESS_ALL_SERVICE, ServiceSpec { publish_not_ready_addresses: Some(true), ..headless() })),
        (Dns, http_only(CLIENTS_SERVICE, ServiceSpec { selector: Some(component_selector("client")), ..headless() })),
        (Dns, external),
    ]
    .into_iter()
    .filter(|(group, _)| groups.contains(group))
    .map(|(_, service)| service)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> AgentTemplate {
        AgentTemplate {
            run_id: "k3x9q".into(),
            image: "netcheck/agent:test".into(),
            tolerate_taints: false,
            platforms: vec![crate::runner::Platform { arch: "amd64".into() }],
            api_server: None,
        }
    }

    #[test]
    fn agent_pods_meet_the_restricted_profile() {
        let pod = client_pod("ns", "node-a", &template());
        let spec = pod.spec.unwrap();
        let psc = spec.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let sc = spec.containers[0].security_context.clone().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.capabilities.unwrap().drop.unwrap(), vec!["ALL"]);
        let terms = spec.affinity.unwrap().node_affinity.unwrap().required_during_scheduling_ignored_during_execution;
        let term = &terms.unwrap().node_selector_terms[0];
        let field = &term.match_fields.clone().unwrap()[0];
        assert_eq!((field.key.as_str(), field.operator.as_str()), ("metadata.name", "In"));
        assert_eq!(field.values.as_deref(), Some(&["node-a".to_string()][..]));
        let arch = term.match_expressions.clone().unwrap().into_iter().find(|e| e.key == "kubernetes.io/arch").unwrap();
        assert_eq!(arch.values.as_deref(), Some(&["amd64".to_string()][..]), "pinned and of the image's architecture");
        let only_os = BTreeMap::from([("kubernetes.io/os".to_string(), "linux".to_string())]);
        assert_eq!(spec.node_selector, Some(only_os), "the hostname label may differ from the node's name");
        let resources = spec.containers[0].resources.clone().unwrap();
        for kind in [resources.requests.unwrap(), resources.limits.unwrap()] {
            assert!(kind.contains_key("cpu") && kind.contains_key("memory"), "{kind:?}");
        }
        assert_eq!(spec.tolerations, None);
    }

    #[test]
    fn every_object_is_labelled_managed_by_netcheck() {
        let (sa, role, rb) = agent_rbac("ns");
        let objects = [
            sa.metadata,
            role.metadata,
            rb.metadata,
            server_deployment("ns", 3, &template()).metadata,
            echo_service("ns").metadata,
            namespace("netcheck-x", "2030-01-01T00:00:00Z").metadata,
        ];
        for m in objects {
            assert_eq!(m.labels.unwrap()[MANAGED_BY.0], MANAGED_BY.1);
        }
    }

    #[test]
    fn a_session_creates_only_the_service_groups_asked_for() {
        let names = |groups: &[ServiceGroup]| -> Vec<String> {
            check_services("ns", &groups.iter().copied().collect())
                .into_iter()
                .filter_map(|s| s.metadata.name)
                .collect()
        };
        assert!(names(&[]).is_empty());
        assert_eq!(names(&[ServiceGroup::NodePort]), [NODEPORT_SERVICE, LOCAL_SERVICE]);
        assert_eq!(names(&[ServiceGroup::Behaviour]), [AFFINITY_SERVICE, EMPTY_SERVICE]);
        assert_eq!(
            names(&[ServiceGroup::Dns]),
            [HEADLESS_SERVICE, HEADLESS_ALL_SERVICE, CLIENTS_SERVICE, EXTERNAL_SERVICE]
        );
        assert_eq!(names(&ServiceGroup::ALL).len(), 8);
    }

    #[test]
    fn check_services_have_their_policies() {
        let services = check_services("ns", &ServiceGroup::ALL.into());
        let spec = |name: &str| {
            services.iter().find(|s| s.metadata.name.as_deref() == Some(name)).unwrap().spec.clone().unwrap()
        };
        assert_eq!(spec(NODEPORT_SERVICE).type_.as_deref(), Some("NodePort"));
        assert_eq!(spec(LOCAL_SERVICE).external_traffic_policy.as_deref(), Some("Local"));
        assert_eq!(spec(AFFINITY_SERVICE).session_affinity.as_deref(), Some("ClientIP"));
        assert_eq!(spec(EMPTY_SERVICE).selector.unwrap()[COMPONENT_LABEL], "nothing-matches");
        assert_eq!(spec(AFFINITY_SERVICE).selector.unwrap()[COMPONENT_LABEL], "server");
        assert_eq!(spec(HEADLESS_SERVICE).cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec(HEADLESS_ALL_SERVICE).publish_not_ready_addresses, Some(true));
        assert_eq!(spec(CLIENTS_SERVICE).selector.unwrap()[COMPONENT_LABEL], "client");
        let external = spec(EXTERNAL_SERVICE);
        assert_eq!(
            (external.type_.as_deref(), external.external_name.as_deref()),
            (Some("ExternalName"), Some(EXTERNAL_TARGET))
        );
        assert!(external.selector.is_none() && external.ports.is_none());
    }

    #[test]
    fn rollout_objects_surge_before_removing_and_select_only_their_pods() {
        let (deployment, service) = rollout_objects("ns", 3, &template());
        let spec = deployment.spec.unwrap();
        let rolling = spec.strategy.unwrap().rolling_update.unwrap();
        assert_eq!(
            (rolling.max_surge, rolling.max_unavailable),
            (Some(IntOrString::Int(1)), Some(IntOrString::Int(0)))
        );
        assert_eq!(spec.template.metadata.unwrap().labels.unwrap()[COMPONENT_LABEL], "rollout");
        assert_eq!(service.metadata.name.as_deref(), Some(ROLLOUT_SERVICE));
        assert_eq!(service.spec.unwrap().selector.unwrap()[COMPONENT_LABEL], "rollout");
        assert_eq!(deployment.metadata.labels.unwrap()[MANAGED_BY.0], MANAGED_BY.1);
    }

    #[test]
    fn client_hostnames_are_dns_labels_under_the_clients_service() {
        assert_eq!(client_hostname("node-a"), "node-a");
        assert_eq!(client_hostname("Ip-10-0-0-1.ec2.internal"), "ip-10-0-0-1-ec2-internal");
        assert_eq!(client_hostname(&"x".repeat(80)).len(), 63);
        let pod = client_pod("ns", "node-a", &template());
        let spec = pod.spec.unwrap();
        assert_eq!(spec.subdomain.as_deref(), Some(CLIENTS_SERVICE));
        assert_eq!(spec.hostname.as_deref(), Some("node-a"));
    }

    #[test]
    fn agents_may_only_touch_configmaps() {
        let (_, role, _) = agent_rbac("ns");
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].resources.clone().unwrap(), vec!["configmaps"]);
        assert!(!rules[0].verbs.contains(&"delete".to_string()));
    }

    #[test]
    fn tolerating_taints_adds_a_blanket_toleration() {
        let t = AgentTemplate { tolerate_taints: true, ..template() };
        let spec = client_pod("ns", "n", &t).spec.unwrap();
        assert_eq!(spec.tolerations.unwrap()[0].operator.as_deref(), Some("Exists"));
    }

    #[test]
    fn every_agent_stays_off_other_platforms_and_virtual_nodes() {
        let two = AgentTemplate {
            platforms: crate::runner::inventory::parse_platforms("linux/amd64,linux/arm64").unwrap(),
            ..template()
        };
        let server = server_deployment("ns", 3, &two).spec.unwrap().template.spec.unwrap();
        assert_eq!(server.node_selector.unwrap()["kubernetes.io/os"], "linux");
        let terms = server
            .affinity
            .unwrap()
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap();
        let expressions = terms.node_selector_terms[0].match_expressions.clone().unwrap();
        let rule = |key: &str| {
            expressions.iter().find(|e| e.key == key).map(|e| (e.operator.clone(), e.values.clone().unwrap()))
        };
        assert_eq!(rule("kubernetes.io/arch"), Some(("In".into(), vec!["amd64".into(), "arm64".into()])));
        assert_eq!(rule("type"), Some(("NotIn".into(), vec!["virtual-kubelet".into()])));
        assert_eq!(terms.node_selector_terms[0].match_fields, None, "servers are not pinned");
    }

    #[test]
    fn the_load_balancer_services_are_named_typed_and_over_their_pods() {
        let local = loadbalancer_service("ns", LOADBALANCER_LOCAL_SERVICE, LOADBALANCER_LOCAL_COMPONENT, true);
        let spec = local.spec.unwrap();
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
        let pod = loadbalancer_local_pod("ns", &template());
        assert_eq!(spec.selector.unwrap()[COMPONENT_LABEL], pod.metadata.labels.unwrap()[COMPONENT_LABEL]);
        let svc = loadbalancer_service("ns", LOADBALANCER_SERVICE, "server", false);
        assert_eq!(svc.metadata.name.as_deref(), Some(LOADBALANCER_SERVICE));
        assert_eq!(svc.metadata.namespace.as_deref(), Some("ns"));
        let spec = svc.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.selector.unwrap()[COMPONENT_LABEL], "server");
        assert_eq!(spec.ports.unwrap()[0].port, ECHO_HTTP_PORT);
    }
}
