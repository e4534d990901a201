//! Creating the agents and waiting until they are Ready, failing fast on the causes that never heal.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;

use super::Cluster;
use super::manifests::{self, AgentTemplate, COMPONENT_LABEL, ServiceGroup};
use super::services;
use crate::{Error, Result};

/// A running agent as the runner addresses it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AgentPod {
    /// Pod name.
    pub pod: String,
    /// Node it runs on.
    pub node: String,
    /// Pod IP.
    pub ip: String,
}

/// The deployed agents of a run.
#[derive(Debug, Clone)]
pub struct Agents {
    /// One client per usable node, by node name.
    pub clients: BTreeMap<String, AgentPod>,
    /// The server agents behind the echo Service.
    pub servers: Vec<AgentPod>,
    /// The echo Service's ClusterIP.
    pub cluster_ip: String,
    /// Nodes whose client agent the scheduler could not place (a full node, a policy), with the
    /// scheduler's message: they are reported as skips, the other nodes are checked.
    pub unscheduled: BTreeMap<String, String>,
}

/// Container waiting reasons that do not heal by waiting.
const FATAL_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
];

/// The waiting reasons that say the node has no copy of the image and cannot get one.
const IMAGE_UNAVAILABLE: &[&str] = &["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"];

/// Creates RBAC, one client per node in `nodes`, `servers` server agents and the echo Service with
/// the check Services of `groups`; with `servers` 0, only RBAC and the clients.
pub async fn create(
    cluster: &Cluster,
    ns: &str,
    nodes: &[String],
    servers: i32,
    groups: &BTreeSet<ServiceGroup>,
    template: &AgentTemplate,
) -> Result<()> {
    let client = cluster.client.clone();
    let pp = PostParams::default();
    let (sa, role, binding) = manifests::agent_rbac(ns);
    let fail = |what: &str| {
        let what = what.to_string();
        move |e| Error::api(format!("creating {what}"), e)
    };
    // The RBAC first: a pod naming a service account that does not exist yet is refused. The binding
    // after its Role: a user without the `bind` verb may bind only a Role whose permissions it holds, and
    // the API checks that on the Role itself (a binding sent beside its Role was refused, 404, under the
    // documented ClusterRole). Then every agent and Service at once: one round trip, not one per object.
    let sa = async {
        Api::<ServiceAccount>::namespaced(client.clone(), ns).create(&pp, &sa).await.map_err(fail("service account"))
    };
    let role_then_binding = async {
        Api::<Role>::namespaced(client.clone(), ns).create(&pp, &role).await.map_err(fail("role"))?;
        Api::<RoleBinding>::namespaced(client.clone(), ns).create(&pp, &binding).await.map_err(fail("role binding"))
    };
    tokio::try_join!(sa, role_then_binding)?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let clients = nodes.iter().map(|node| {
        let pods = pods.clone();
        async move {
            let pod = manifests::client_pod(ns, node, template);
            create_pod(&pods, &pod)
                .await
                .map(drop)
                .map_err(|e| admission_or_api(format!("pod/{}", manifests::client_pod_name(node)), e))
        }
    });
    // At most 16 pods in flight: one POST per node at once would meet API Priority and Fairness on a
    // large cluster.
    let clients = futures::stream::iter(clients).buffer_unordered(16).try_collect::<Vec<()>>();
    if servers == 0 {
        // A clients-only session (`diagnose`, probing a user's own Service): no echo Services either.
        return clients.await.map(drop);
    }
    let deployment = manifests::server_deployment(ns, servers, template);
    let deployment = async {
        Api::<Deployment>::namespaced(client.clone(), ns)
            .create(&pp, &deployment)
            .await
            .map(drop)
            .map_err(fail("server deployment"))
    };
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let services =
        std::iter::once(manifests::echo_service(ns)).chain(manifests::check_services(ns, groups)).map(|svc| {
            let services = services.clone();
            async move {
                let name = svc.metadata.name.clone().unwrap_or_default();
                services.create(&PostParams::default(), &svc).await.map(drop).map_err(fail(&format!("service/{name}")))
            }
        });
    tokio::try_join!(clients, deployment, futures::future::try_join_all(services)).map(drop)
}

/// Creates a pod, retrying while the API asks to: a 429 from API Priority and Fairness after the delay
/// it gives, and (before Kubernetes 1.24) the 500 a pod that uses a new service account gets until the
/// token controller has created its token secret.
async fn create_pod(pods: &Api<Pod>, pod: &Pod) -> Result<Pod, kube::Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let wait = match pods.create(&PostParams::default(), pod).await {
            Err(kube::Error::Api(s)) if tokio::time::Instant::now() < deadline => match (s.code, s.reason.as_str()) {
                (429, _) => {
                    let after = s.details.as_ref().map_or(1, |d| d.retry_after_seconds.max(1));
                    Duration::from_secs(u64::from(after))
                }
                (500, "ServerTimeout") => Duration::from_millis(100),
                _ => return Err(kube::Error::Api(s)),
            },
            other => return other,
        };
        tokio::time::sleep(wait).await;
    }
}

/// A Forbidden/Invalid answer on create is an admission decision: report it as a deploy failure.
fn admission_or_api(object: String, e: kube::Error) -> Error {
    match &e {
        kube::Error::Api(status) if status.code == 403 || status.code == 422 => {
            Error::Deploy { object, reason: status.message.clone() }
        }
        _ => Error::api(format!("creating {object}"), e),
    }
}

/// Waits until every client and `servers` server agents are Ready; fails at once on an image pull
/// error, an unschedulable server, a crash loop or a ReplicaSet that admission refuses. A client the
/// scheduler cannot place leaves its node out ([`Agents::unscheduled`]) unless no client can be placed.
pub async fn wait_ready(
    cluster: &Cluster,
    ns: &str,
    nodes: &[String],
    servers: usize,
    timeout: Duration,
) -> Result<Agents> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), ns);
    let mut pod_stream = watcher::watcher(pods, watcher::Config::default()).default_backoff().applied_objects().boxed();
    let mut event_stream =
        watcher::watcher(events, watcher::Config::default()).default_backoff().applied_objects().boxed();
    let mut seen: BTreeMap<String, Pod> = BTreeMap::new();
    let mut unscheduled: BTreeMap<String, String> = BTreeMap::new();
    let mut wanted: Vec<String> = nodes.to_vec();
    // The pod watch's error while it is failing (it resumes with backoff): told at the timeout, since
    // then the API, not the pods, is what could not be observed.
    let mut failing: Option<String> = None;
    let mut events_refused = false;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        tokio::select! {
            pod = pod_stream.next() => {
                // A refused watch would otherwise wait out the timeout and blame the pods.
                if let Some(Err(e)) = &pod {
                    if let Some(refused) = super::watch_refusal(e) {
                        return Err(Error::Deploy { object: "pods".into(), reason: format!("cannot watch them: {refused}") });
                    }
                    failing = Some(e.to_string());
                }
                let Some(Ok(pod)) = pod else { continue };
                failing = None;
                if let Some((node, why)) = unschedulable_client(&pod, nodes) {
                    tracing::warn!(%node, %why, "the client agent cannot be scheduled; its node is skipped");
                    wanted.retain(|n| *n != node);
                    unscheduled.insert(node, why);
                    if wanted.is_empty() {
                        let why: Vec<String> = unscheduled.iter().map(|(n, w)| format!("{n}: {w}")).collect();
                        return Err(Error::Deploy {
                            object: "client agents".into(),
                            reason: format!("no client agent can be scheduled ({})", why.join("; ")),
                        });
                    }
                } else if let Some(err) = fatal_pod_state(&pod) {
                    return Err(err);
                }
                if pod_ready(&pod) {
                    tracing::debug!(pod = pod.metadata.name.as_deref().unwrap_or_default(), "agent ready");
                }
                seen.insert(pod.metadata.name.clone().unwrap_or_default(), pod);
                if let Some(agents) = agents_if_ready(&seen, &wanted, servers) {
                    let agents = Agents { unscheduled: unscheduled.clone(), ..agents };
                    if servers == 0 { return Ok(agents); }
                    let cluster_ip = echo_cluster_ip(cluster, ns).await?;
                    return Ok(Agents { cluster_ip, ..agents });
                }
            }
            // Events only speed up the diagnosis of a failed creation: a user who may not watch them
            // still gets the run, and the pods' own state still fails fast.
            event = event_stream.next(), if !events_refused => {
                if let Some(Err(e)) = &event && super::watch_refusal(e).is_some() {
                    tracing::warn!(error = %e, "cannot watch events; creation failures show only through the pods");
                    events_refused = true;
                }
                let Some(Ok(event)) = event else { continue };
                if let Some(err) = fatal_event(&event) { return Err(err); }
            }
            _ = tokio::time::sleep_until(deadline) => {
                if let Some(e) = failing {
                    return Err(Error::Timeout {
                        what: format!("agents to become Ready: the watch of the run's pods kept failing ({e})"),
                        seconds: timeout.as_secs(),
                    });
                }
                return Err(not_ready_error(&seen, &wanted, servers, timeout));
            }
        }
    }
}

/// The scheduler's message when it could not place the pod.
fn unschedulable(pod: &Pod) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
        .map(|c| format!("Unschedulable: {}", c.message.clone().unwrap_or_default()))
}

/// The node and the scheduler's message when `pod` is the client agent of one of `nodes` and cannot
/// be placed there.
fn unschedulable_client(pod: &Pod, nodes: &[String]) -> Option<(String, String)> {
    let name = pod.metadata.name.as_deref()?;
    let node = nodes.iter().find(|n| manifests::client_pod_name(n) == name)?;
    Some((node.clone(), unschedulable(pod)?))
}

fn fatal_pod_state(pod: &Pod) -> Option<Error> {
    let name = format!("pod/{}", pod.metadata.name.clone().unwrap_or_default());
    if let Some(reason) = unschedulable(pod) {
        return Some(Error::Deploy { object: name, reason });
    }
    let status = pod.status.as_ref()?;
    for cs in status.container_statuses.iter().flatten() {
        let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else { continue };
        let reason = waiting.reason.clone().unwrap_or_default();
        if FATAL_WAITING.contains(&reason.as_str()) {
            let message = waiting.message.clone().unwrap_or_default();
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
            if let (true, Some(node)) = (IMAGE_UNAVAILABLE.contains(&reason.as_str()), node) {
                return Some(Error::ImageUnavailable {
                    image: cs.image.clone(),
                    node,
                    reason: format!("{reason}: {message}"),
                });
            }
            return Some(Error::Deploy { object: name, reason: format!("{reason}: {message}") });
        }
    }
    None
}

fn fatal_event(event: &Event) -> Option<Error> {
    let reason = event.reason.as_deref()?;
    if event.type_.as_deref() != Some("Warning") || reason != "FailedCreate" {
        return None;
    }
    let object = format!(
        "{}/{}",
        event.involved_object.kind.clone().unwrap_or_default().to_lowercase(),
        event.involved_object.name.clone().unwrap_or_default()
    );
    Some(Error::Deploy { object, reason: format!("FailedCreate: {}", event.message.clone().unwrap_or_default()) })
}

/// Whether the pod's Ready condition is True and it is not terminating.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn agent_pod(pod: &Pod) -> AgentPod {
    AgentPod {
        pod: pod.metadata.name.clone().unwrap_or_default(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
        ip: pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
    }
}

fn role(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref()?.get(COMPONENT_LABEL).map(String::as_str)
}

fn agents_if_ready(seen: &BTreeMap<String, Pod>, nodes: &[String], servers: usize) -> Option<Agents> {
    let mut clients = BTreeMap::new();
    for node in nodes {
        let pod = seen.get(&manifests::client_pod_name(node))?;
        if !pod_ready(pod) {
            return None;
        }
        clients.insert(node.clone(), agent_pod(pod));
    }
    let ready_servers: Vec<AgentPod> =
        seen.values().filter(|p| role(p) == Some("server") && pod_ready(p)).map(agent_pod).collect();
    (ready_servers.len() >= servers).then(|| Agents {
        clients,
        servers: ready_servers,
        cluster_ip: String::new(),
        unscheduled: BTreeMap::new(),
    })
}

fn not_ready_error(seen: &BTreeMap<String, Pod>, nodes: &[String], servers: usize, timeout: Duration) -> Error {
    let expected: BTreeSet<String> = nodes.iter().map(|n| manifests::client_pod_name(n)).collect();
    let mut running_not_ready = Vec::new();
    let mut missing = Vec::new();
    for name in &expected {
        match seen.get(name) {
            None => missing.push(name.clone()),
            Some(p) if !pod_ready(p) => {
                let phase = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
                running_not_ready.push(format!("{name} on {} ({phase})", agent_pod(p).node));
            }
            Some(_) => {}
        }
    }
    let ready_servers = seen.values().filter(|p| role(p) == Some("server") && pod_ready(p)).count();
    let mut reason = Vec::new();
    if !running_not_ready.is_empty() {
        reason.push(format!(
            "agents not Ready: {} (an agent turns Ready once it reaches the API server; a Running agent that stays unready cannot reach it)",
            running_not_ready.join(", ")
        ));
    }
    if !missing.is_empty() {
        reason.push(format!("pods never created: {}", missing.join(", ")));
    }
    if ready_servers < servers {
        reason.push(format!("{ready_servers} of {servers} server agents Ready"));
    }
    Error::Timeout { what: format!("agents to become Ready: {}", reason.join("; ")), seconds: timeout.as_secs() }
}

async fn echo_cluster_ip(cluster: &Cluster, ns: &str) -> Result<String> {
    let svc = services::read(cluster, ns, manifests::ECHO_SERVICE).await?;
    let reason = if svc.is_some() { "no ClusterIP assigned" } else { "it does not exist" };
    svc.as_ref()
        .and_then(services::cluster_ip)
        .map(str::to_string)
        .ok_or_else(|| Error::Deploy { object: format!("service/{}", manifests::ECHO_SERVICE), reason: reason.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn image_pull_backoff_is_fatal_and_named() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "netcheck-client-a"},
            "status": {"containerStatuses": [{"name": "agent", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope\""}}}]}
        }));
        let err = fatal_pod_state(&p).unwrap().to_string();
        assert!(err.contains("pod/netcheck-client-a"), "{err}");
        assert!(err.contains("ImagePullBackOff"), "{err}");
    }

    #[test]
    fn an_image_a_node_cannot_pull_names_the_node_and_the_image() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "netcheck-client-b"},
            "spec": {"nodeName": "node-b", "containers": [{"name": "agent", "image": "localhost/netcheck/agent:1"}]},
            "status": {"containerStatuses": [{"name": "agent", "image": "localhost/netcheck/agent:1", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull", "message": "failed to resolve reference"}}}]}
        }));
        match fatal_pod_state(&p) {
            Some(Error::ImageUnavailable { image, node, reason }) => {
                assert_eq!((image.as_str(), node.as_str()), ("localhost/netcheck/agent:1", "node-b"));
                assert!(reason.starts_with("ErrImagePull: failed to resolve"), "{reason}");
            }
            other => panic!("expected ImageUnavailable, got {other:?}"),
        }
    }

    #[test]
    fn unschedulable_is_fatal_but_container_creating_is_not() {
        let p = pod(serde_json::json!({"metadata": {"name": "p"}, "status": {"conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes are available"}]}}));
        assert!(fatal_pod_state(&p).unwrap().to_string().contains("Unschedulable: 0/2 nodes"));
        let q = pod(
            serde_json::json!({"metadata": {"name": "q"}, "status": {"containerStatuses": [{"name": "agent", "image": "x",
            "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}}),
        );
        assert!(fatal_pod_state(&q).is_none());
    }

    #[test]
    fn an_unschedulable_client_names_its_node_and_a_server_does_not() {
        let status = serde_json::json!({"conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/2 nodes are available: 1 Insufficient cpu"}]});
        let nodes = ["node-a".to_string(), "node-b".to_string()];
        let client =
            pod(serde_json::json!({"metadata": {"name": manifests::client_pod_name("node-b")}, "status": status}));
        let (node, why) = unschedulable_client(&client, &nodes).expect("a client of node-b");
        assert_eq!(node, "node-b");
        assert!(why.contains("Insufficient cpu"), "{why}");
        let server = pod(serde_json::json!({"metadata": {"name": "netcheck-server-abc-1"}, "status": status}));
        assert!(unschedulable_client(&server, &nodes).is_none(), "a server stays fatal");
        assert!(fatal_pod_state(&server).is_some());
        let scheduled = pod(serde_json::json!({"metadata": {"name": manifests::client_pod_name("node-a")}}));
        assert!(unschedulable_client(&scheduled, &nodes).is_none());
    }

    #[test]
    fn failed_create_warning_names_the_owner() {
        let e: Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "e"}, "type": "Warning", "reason": "FailedCreate",
            "message": "pods \"x\" is forbidden: violates PodSecurity",
            "involvedObject": {"kind": "ReplicaSet", "name": "netcheck-server-abc"}
        }))
        .unwrap();
        let err = fatal_event(&e).unwrap().to_string();
        assert!(err.contains("replicaset/netcheck-server-abc") && err.contains("forbidden"), "{err}");
    }
}
