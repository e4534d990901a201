//! `diagnose` on the testbed: a namespace of deliberately broken Services (the mistakes users make),
//! each diagnosed with the right first broken link, a healthy one with every link passing, and the
//! temporary agent namespace removed after every walk.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use netcheck::diagnose::{self, Checklist, DiagnoseOptions, StepStatus};
use netcheck::harness::{agent_image, cluster};
use netcheck::runner::{Cluster, NoProgress, SessionOptions};
use rstest::rstest;
use serde_json::json;

const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.63";

/// A Deployment `name` of 2 replicas labelled `app=name` running `command` in the agnhost image.
fn deployment(name: &str, command: &[&str], ports: serde_json::Value, readiness: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{
                        "name": "app", "image": AGNHOST, "imagePullPolicy": "IfNotPresent",
                        "command": command, "ports": ports, "readinessProbe": readiness
                    }]
                }
            }
        }
    }))
    .unwrap()
}

fn service(name: &str, selector: &str, target_port: serde_json::Value, kind: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"type": kind, "selector": {"app": selector},
                 "ports": [{"name": "http", "port": 80, "targetPort": target_port, "protocol": "TCP"}]}
    }))
    .unwrap()
}

/// The user's namespace with its workloads, deleted when dropped.
struct Workloads {
    cluster: Cluster,
    namespace: String,
}

impl Drop for Workloads {
    fn drop(&mut self) {
        let name = self.namespace.clone();
        self.cluster.block_on_own_client(move |client| async move {
            Api::<Namespace>::all(client).delete(&name, &DeleteParams::default()).await.ok()
        });
    }
}

async fn create_workloads(cluster: &Cluster) -> Workloads {
    let namespace = format!("diagnose-test-{}", netcheck::runner::namespace::new_run_id());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    Api::<Namespace>::all(cluster.client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    let workloads = Workloads { cluster: cluster.clone(), namespace: namespace.clone() };
    let http = json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}]);
    let tcp_ready = json!({"tcpSocket": {"port": 8080}, "periodSeconds": 1});
    let netexec = ["/agnhost", "netexec", "--http-port=8080"];
    let exec_ready = json!({"exec": {"command": ["/bin/busybox", "true"]}, "periodSeconds": 1});
    let deployments = [
        deployment("web", &netexec, http.clone(), tcp_ready.clone()),
        deployment("never-ready", &netexec, http.clone(), json!({"tcpSocket": {"port": 9999}, "periodSeconds": 1})),
        // Ready by an exec probe, but listening on the loopback address only.
        deployment("loopback", &["/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:8080"], http, exec_ready),
    ];
    let deploys: Api<Deployment> = Api::namespaced(cluster.client.clone(), &namespace);
    for d in &deployments {
        deploys.create(&PostParams::default(), d).await.unwrap();
    }
    let services = [
        service("web", "web", json!("http"), "NodePort"),
        service("wrong-selector", "wbe", json!(8080), "ClusterIP"),
        service("wrong-port", "web", json!(8081), "ClusterIP"),
        service("wrong-port-name", "web", json!("web"), "ClusterIP"),
        service("never-ready", "never-ready", json!(8080), "ClusterIP"),
        service("loopback", "loopback", json!(8080), "ClusterIP"),
    ];
    let svcs: Api<Service> = Api::namespaced(cluster.client.clone(), &namespace);
    for s in &services {
        svcs.create(&PostParams::default(), s).await.unwrap();
    }
    wait_until_ready(cluster, &namespace, &["web", "loopback"], 4).await;
    workloads
}

/// Waits until `count` pods of the given apps are Ready, and the never-ready ones are Running.
async fn wait_until_ready(cluster: &Cluster, ns: &str, apps: &[&str], count: usize) {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let list = pods.list(&ListParams::default()).await.unwrap().items;
        let ready = list
            .iter()
            .filter(|p| {
                let app = p.metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str).unwrap_or_default();
                apps.contains(&app) && netcheck::runner::deploy::pod_ready(p)
            })
            .count();
        let running =
            list.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).count();
        if ready >= count && running == list.len() && list.len() == 6 {
            // Let the endpoints controller list the Ready pods.
            tokio::time::sleep(Duration::from_secs(2)).await;
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "workloads not up: {ready} ready, {running} running");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn walk(cluster: &Cluster, ns: &str, service: &str, read_only: bool) -> Checklist {
    let options = DiagnoseOptions {
        namespace: ns.to_string(),
        service: service.to_string(),
        port: None,
        read_only,
        session: SessionOptions { image: agent_image(), ..Default::default() },
    };
    // Compared with before the walk: a namespace that an earlier, killed process left is not ours.
    let before = live_netcheck_namespaces(cluster).await;
    let checklist = diagnose::diagnose(cluster, &options, &NoProgress).await.expect("diagnose runs");
    assert_eq!(live_netcheck_namespaces(cluster).await, before, "the agents' namespace was left behind");
    checklist
}

async fn live_netcheck_namespaces(cluster: &Cluster) -> Vec<String> {
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by=netcheck");
    let list = Api::<Namespace>::all(cluster.client.clone()).list(&lp).await.unwrap();
    list.items.into_iter().filter(|n| n.metadata.deletion_timestamp.is_none()).filter_map(|n| n.metadata.name).collect()
}

fn assert_first_broken(checklist: &Checklist, id: &str, summary_part: &str) {
    assert_eq!(checklist.first_broken.as_deref(), Some(id), "{checklist:#?}");
    let step = checklist.step(id).unwrap();
    assert!(step.summary.contains(summary_part), "{step:#?}");
    assert!(step.fix.is_some(), "a broken link comes with a fix: {step:#?}");
    let position = diagnose::STEP_IDS.iter().position(|s| *s == id).unwrap();
    for earlier in &checklist.steps[..position] {
        assert_ne!(earlier.status, StepStatus::Fail, "{checklist:#?}");
    }
    assert!(checklist.steps[position + 1..].iter().all(|s| s.status == StepStatus::Skip), "{checklist:#?}");
}

#[rstest]
#[tokio::test]
async fn each_broken_service_is_diagnosed_at_its_first_broken_link(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let workloads = create_workloads(&cluster).await;
    let ns = workloads.namespace.clone();

    let healthy = walk(&cluster, &ns, "web", false).await;
    assert_eq!(healthy.first_broken, None, "{healthy:#?}");
    for id in
        ["service", "selector", "pods-ready", "target-port", "endpoints", "pod-ip", "cluster-ip", "dns", "node-port"]
    {
        assert_eq!(healthy.step(id).unwrap().status, StepStatus::Pass, "{id}: {healthy:#?}");
    }
    let no_lb = healthy.step("load-balancer").unwrap();
    assert_eq!(
        (no_lb.status, no_lb.summary.as_str()),
        (StepStatus::Skip, "a NodePort Service has no load-balancer address")
    );

    assert_first_broken(&walk(&cluster, &ns, "wrong-selector", false).await, "selector", "matches no running pod");
    assert_first_broken(&walk(&cluster, &ns, "wrong-port", false).await, "target-port", "targetPort 8081/TCP");
    assert_first_broken(&walk(&cluster, &ns, "wrong-port-name", false).await, "target-port", "targetPort 'web'");
    let never = walk(&cluster, &ns, "never-ready", false).await;
    assert_first_broken(&never, "pods-ready", "none of the 2 selected pods is Ready");
    assert!(never.step("pods-ready").unwrap().evidence[0].contains("readiness probe failing"), "{never:#?}");
    let loopback = walk(&cluster, &ns, "loopback", false).await;
    assert_first_broken(&loopback, "pod-ip", "do not answer");
    assert!(loopback.step("pod-ip").unwrap().fix.as_deref().unwrap().contains("127.0.0.1"), "{loopback:#?}");
    assert_first_broken(&walk(&cluster, &ns, "web-typo", false).await, "service", "no Service named web-typo");

    // --read-only creates nothing and stops before the active links.
    let read_only = walk(&cluster, &ns, "loopback", true).await;
    assert_eq!(read_only.first_broken, None, "{read_only:#?}");
    assert_eq!(read_only.step("pod-ip").unwrap().summary, "not checked: --read-only");
}

/// kube-proxy stopped on node-b with its rules flushed: the pods still answer on their IPs, and the
/// walk stops at the ClusterIP, naming node-b's service proxy.
#[rstest]
#[tokio::test]
async fn a_stopped_service_proxy_is_the_broken_cluster_ip_link(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let workloads = create_workloads(&cluster).await;
    common::testbed("stop", &["kube-proxy", "node-b", "--flush-rules"]);
    let _restore = common::Restore(vec![("start", common::args(&["kube-proxy", "node-b"]))]);
    let checklist = walk(&cluster, &workloads.namespace, "web", false).await;
    assert_first_broken(&checklist, "cluster-ip", "does not answer from node-b");
    assert!(checklist.step("cluster-ip").unwrap().fix.as_deref().unwrap().contains("kube-proxy) on node-b"));
}

/// A LoadBalancer Service with externalTrafficPolicy Local (MetalLB on the testbed): the walk passes
/// the load-balancer link with every node's health check as the API says; with node-b's health-check
/// node port dropped silently, that link is the first broken one and names node-b.
#[rstest]
#[tokio::test]
async fn a_load_balancer_service_is_walked_to_every_nodes_health_check(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let workloads = create_workloads(&cluster).await;
    let ns = workloads.namespace.clone();
    let mut lb = service("web-lb", "web", json!("http"), "LoadBalancer");
    lb.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    let svcs: Api<Service> = Api::namespaced(cluster.client.clone(), &ns);
    svcs.create(&PostParams::default(), &lb).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let health_check_node_port = loop {
        let svc = svcs.get("web-lb").await.unwrap();
        let assigned = svc.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).is_some_and(|i| !i.is_empty());
        if assigned {
            break svc.spec.and_then(|s| s.health_check_node_port).expect("a Local Service has a health-check port");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no address from the testbed's MetalLB (testbed/up installs it)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let healthy = walk(&cluster, &ns, "web-lb", false).await;
    assert_eq!(healthy.first_broken, None, "{healthy:#?}");
    let step = healthy.step("load-balancer").unwrap();
    assert_eq!(step.status, StepStatus::Pass, "{step:#?}");
    assert_eq!(step.evidence.iter().filter(|e| e.starts_with("health check")).count(), 2, "{step:#?}");

    let _dropped = common::drop_packets("node-b", "10.250.0.12", "tcp", &health_check_node_port.to_string());
    let broken = walk(&cluster, &ns, "web-lb", false).await;
    assert_first_broken(&broken, "load-balancer", "health-check node port disagree");
    let evidence = &broken.step("load-balancer").unwrap().evidence[0];
    assert!(evidence.contains("(node-b)") && evidence.contains("no answer (timeout)"), "{evidence}");
}
