//! `load-balancer`: a `type: LoadBalancer` Service has an ingress address (the implementation's events
//! when it has none), the address answers on every selected port from every node, and with
//! `externalTrafficPolicy: Local` every node's health-check node port (what a cloud load balancer
//! probes to pick its backend nodes) agrees with where the API lists ready endpoints.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::{Service, ServicePort};

use super::observations::{Failing, Observations, Target, failing, silent_nodes};
use crate::checks::loadbalancer::health::{Health, disagreement};
use crate::checks::loadbalancer::provision;
use crate::diagnose::facts::Facts;
use crate::diagnose::{LOAD_BALANCER, Step, StepStatus};
use crate::protocol::{Action, HttpProbe};
use crate::runner::Session;

/// Where the step stands before any probe: nothing to probe (the finished step), or the addresses.
pub(super) enum Ingress {
    /// The step is decided without probing.
    Decided(Step),
    /// The ingress IPs.
    Addresses(Vec<IpAddr>),
}

/// The ingress IPs of a LoadBalancer Service; a skip for other types and hostname ingresses, a fail
/// quoting the Service's `events` when no address was assigned.
pub(super) fn judge_ingress(svc: &Service, events: &[String]) -> Ingress {
    let kind = svc.spec.as_ref().and_then(|s| s.type_.clone()).unwrap_or_else(|| "ClusterIP".into());
    if kind != "LoadBalancer" {
        return Ingress::Decided(Step::new(
            LOAD_BALANCER,
            StepStatus::Skip,
            format!("a {kind} Service has no load-balancer address"),
        ));
    }
    let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.clone());
    let ingress = ingress.unwrap_or_default();
    let ips: Vec<IpAddr> = ingress.iter().filter_map(|i| i.ip.as_deref()?.parse().ok()).collect();
    if !ips.is_empty() {
        return Ingress::Addresses(ips);
    }
    if let Some(hostname) = ingress.iter().find_map(|i| i.hostname.clone()) {
        return Ingress::Decided(Step::new(
            LOAD_BALANCER,
            StepStatus::Skip,
            format!("the ingress is the hostname {hostname}, with no IP: netcheck probes IP ingresses only"),
        ));
    }
    let step = Step::new(LOAD_BALANCER, StepStatus::Fail, "no ingress address has been assigned");
    if events.is_empty() {
        return Ingress::Decided(step.with_evidence(["no event about the Service".to_string()]).with_fix(
            "no LoadBalancer implementation acted on the Service: install one (kind: cloud-provider-kind or MetalLB) \
             or check that the cloud controller manager runs",
        ));
    }
    Ingress::Decided(step.with_evidence(events.iter().take(8).cloned()).with_fix(
        "the LoadBalancer implementation acted but assigned nothing: read its events above and its controller's \
         log (address pool, quota, cloud permissions)",
    ))
}

/// The Service's events, as `Type Reason: message` (empty when they may not be read).
pub(super) async fn service_events(session: &Session, facts: &Facts) -> Vec<String> {
    match provision::service_events(&session.cluster.client, &facts.namespace, &facts.name).await {
        Ok(events) => events.iter().map(provision::event_line).collect(),
        Err(_) => Vec::new(),
    }
}

/// Every ingress IP on every selected port.
pub(super) fn ingress_targets(ips: &[IpAddr], ports: &[ServicePort]) -> Vec<Target> {
    let mut targets = Vec::new();
    for ip in ips {
        for p in ports {
            let Ok(port) = u16::try_from(p.port) else { continue };
            let address = SocketAddr::new(*ip, port).to_string();
            targets.push(Target { label: format!("{address} (load balancer)"), address, node: None });
        }
    }
    targets
}

/// One node's health-check node port and what the API says it must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HealthTarget {
    /// The node.
    pub(super) node: String,
    /// Its address and the Service's health-check node port.
    pub(super) address: SocketAddr,
    /// The ready endpoints the API lists on the node.
    pub(super) ready_here: u64,
}

/// What the nodes' health checks answered, by node; or why they could not be asked.
pub(super) type HealthSeen = std::result::Result<BTreeMap<String, Health>, String>;

/// Per node: the address of its health-check node port and the ready endpoints the API lists there;
/// None when the Service is not `externalTrafficPolicy: Local` (no health check to judge).
pub(super) fn health_targets(facts: &Facts, svc: &Service) -> Option<Vec<HealthTarget>> {
    let spec = svc.spec.as_ref()?;
    if spec.external_traffic_policy.as_deref() != Some("Local") {
        return None;
    }
    let port = u16::try_from(spec.health_check_node_port?).ok()?;
    let targets = facts
        .nodes
        .iter()
        .filter(|n| n.ready && !n.virtual_node)
        .filter_map(|n| {
            let ip: IpAddr = n.internal_ips.iter().chain(&n.external_ips).find_map(|ip| ip.parse().ok())?;
            let ready_here = facts
                .endpoints
                .iter()
                .filter(|e| e.address.ready && e.address.node.as_deref() == Some(n.name.as_str()))
                .map(|e| &e.address.ip)
                .collect::<std::collections::BTreeSet<_>>()
                .len() as u64;
            Some(HealthTarget { node: n.name.clone(), address: SocketAddr::new(ip, port), ready_here })
        })
        .collect();
    Some(targets)
}

/// Asks every node's health-check node port once, from one client agent.
pub(super) async fn ask_health(session: &Session, targets: &[HealthTarget]) -> HealthSeen {
    let Some(prober) = session.agents.clients.values().next() else {
        return Err("no client agent runs to ask the health checks".into());
    };
    let probe = HttpProbe {
        targets: targets.iter().map(|t| t.address.to_string()).collect(),
        path: "/".into(),
        attempts: 1,
        concurrency: targets.len().max(1) as u32,
        timeout_ms: super::TIMEOUT.as_millis() as u64,
        interval_ms: 0,
        any_server: true,
        keep_body: true,
        give_up_after: 0,
        until_answers: None,
    };
    let attempts = crate::checks::whole_attempts(session.channel.send(prober, Action::Http(probe)).await)?;
    let mut seen = BTreeMap::new();
    for t in targets {
        let Some(a) = attempts.iter().find(|a| a.target == t.address.to_string()) else {
            return Err(format!("no answer recorded for {}", t.address));
        };
        seen.insert(t.node.clone(), Health::of(&a.outcome));
    }
    Ok(seen)
}

/// `load-balancer`: the ingress answers from every node, and every node's health check agrees with
/// the API (when the Service has one).
pub(super) fn judge_load_balancer(
    targets: &[Target],
    observed: &Observations,
    health: Option<(&[HealthTarget], HealthSeen)>,
) -> Step {
    let (failing, silent) = failing(targets, observed);
    if !failing.is_empty() {
        let mut evidence: Vec<String> = failing.iter().map(Failing::evidence).collect();
        evidence.extend(silent);
        let everywhere = failing.iter().all(Failing::fails_from_every_source);
        let summary = if everywhere {
            "the load-balancer address does not answer from any node, although the ClusterIP does".to_string()
        } else {
            "the load-balancer address does not answer from some nodes, although the ClusterIP does".to_string()
        };
        return Step::new(LOAD_BALANCER, StepStatus::Fail, summary).with_evidence(evidence).with_fix(
            "kube-proxy's rules for the load-balancer address on the failing nodes (it answers the address inside \
             the cluster itself): check that it runs there and has programmed this Service",
        );
    }
    let mut evidence = Vec::new();
    let answered: Vec<String> = targets.iter().map(|t| t.address.clone()).collect();
    // A Local Service's health checks are half of what this step proves: none asked is no pass.
    if health.as_ref().is_some_and(|(expected, _)| expected.is_empty()) {
        return Step::new(
            LOAD_BALANCER,
            StepStatus::Fail,
            format!(
                "{} answers from every node, but no node's health-check node port could be asked: no Ready node \
                 with an address is listed",
                answered.join(", ")
            ),
        )
        .with_fix(
            "check that some node is Ready and lists an InternalIP or ExternalIP (kubectl get nodes -o wide), and that \
             netcheck may list nodes (`netcheck rbac`)",
        );
    }
    let health_judged = health.is_some();
    if let Some((expected, seen)) = health {
        let seen = match seen {
            Ok(seen) => seen,
            Err(e) => {
                return Step::new(LOAD_BALANCER, StepStatus::Fail, "the nodes' health checks could not be asked")
                    .with_evidence([e])
                    .with_fix("netcheck's client agent did not report: run again, or check that agent's pod");
            }
        };
        let mut lying = Vec::new();
        for HealthTarget { node, address, ready_here } in expected {
            let answer = seen.get(node).cloned().unwrap_or(Health::Silent("not asked".into()));
            match disagreement(*ready_here, &answer) {
                None => evidence.push(format!("health check {address} ({node}): {}", answer.describe())),
                Some(why) => lying.push(format!("health check {address} ({node}): {why}")),
            }
        }
        if !lying.is_empty() {
            let count = lying.len();
            lying.extend(evidence);
            return Step::new(
                LOAD_BALANCER,
                StepStatus::Fail,
                format!("{count} node(s)' health-check node port disagree with the API's endpoints"),
            )
            .with_evidence(lying)
            .with_fix(
                "kube-proxy on those nodes (its log; --healthz-bind-address; a host firewall on the node port range): \
                 a cloud load balancer picks its backend nodes by these answers",
            );
        }
    }
    if !silent.is_empty() {
        let count = silent.len();
        evidence.extend(silent);
        return silent_nodes(LOAD_BALANCER, "the load-balancer address answers", count, evidence);
    }
    let with_health = if health_judged { ", and every node's health check agrees with the API" } else { "" };
    Step::new(LOAD_BALANCER, StepStatus::Pass, format!("{} answers from every node{with_health}", answered.join(", ")))
        .with_evidence(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::active::observations::Seen;
    use crate::diagnose::active::observations::tests::observed;
    use crate::protocol::Outcome;

    fn lb(status: serde_json::Value, local: bool) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "healthCheckNodePort": 32000,
                     "externalTrafficPolicy": if local { "Local" } else { "Cluster" }},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn no_address_fails_with_the_events_or_says_no_implementation_acted() {
        let pending = lb(serde_json::json!({}), false);
        let Ingress::Decided(step) = judge_ingress(&pending, &[]) else { panic!("decided") };
        assert_eq!(step.status, StepStatus::Fail);
        assert!(step.fix.unwrap().contains("no LoadBalancer implementation acted"));
        let events = ["Warning AllocationFailed: no available IPs".to_string()];
        let Ingress::Decided(step) = judge_ingress(&pending, &events) else { panic!("decided") };
        assert_eq!(step.evidence, events);
        let ready = lb(serde_json::json!({"loadBalancer": {"ingress": [{"ip": "10.250.0.200"}]}}), false);
        assert!(matches!(judge_ingress(&ready, &[]), Ingress::Addresses(ips) if ips.len() == 1));
        let mut cluster_ip = ready.clone();
        cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert!(matches!(judge_ingress(&cluster_ip, &[]), Ingress::Decided(s) if s.status == StepStatus::Skip));
    }

    #[test]
    fn a_node_whose_health_check_disagrees_with_the_api_is_named() {
        let targets =
            ingress_targets(&["10.250.0.200".parse().unwrap()], &[ServicePort { port: 80, ..Default::default() }]);
        let all_connect = observed(&[
            ("node-a", &[("10.250.0.200:80", Seen::Connected)]),
            ("node-b", &[("10.250.0.200:80", Seen::Connected)]),
        ]);
        let target = |node: &str, address: &str, ready_here| HealthTarget {
            node: node.into(),
            address: address.parse().unwrap(),
            ready_here,
        };
        let expected = vec![target("node-a", "10.250.0.11:32000", 1), target("node-b", "10.250.0.12:32000", 0)];
        let answer =
            |status, n| Health::of(&Outcome::Http { status, body: Some(format!("{{\"localEndpoints\":{n}}}")) });
        let good = BTreeMap::from([("node-a".to_string(), answer(200, 1)), ("node-b".to_string(), answer(503, 0))]);
        let step = judge_load_balancer(&targets, &all_connect, Some((&expected, Ok(good))));
        assert_eq!(step.status, StepStatus::Pass, "{step:?}");
        assert!(step.summary.contains("every node's health check agrees"));
        let stale = BTreeMap::from([("node-a".to_string(), answer(200, 1)), ("node-b".to_string(), answer(200, 1))]);
        let step = judge_load_balancer(&targets, &all_connect, Some((&expected, Ok(stale))));
        assert_eq!(step.status, StepStatus::Fail);
        assert!(step.evidence[0].contains("(node-b)"), "{:?}", step.evidence);
        let dark = observed(&[
            ("node-a", &[("10.250.0.200:80", Seen::Connected)]),
            ("node-b", &[("10.250.0.200:80", Seen::Timeout)]),
        ]);
        let step = judge_load_balancer(&targets, &dark, None);
        assert_eq!(step.status, StepStatus::Fail);
        assert!(step.evidence[0].contains("node-b"), "{:?}", step.evidence);
    }

    #[test]
    fn a_local_service_whose_health_checks_no_node_could_answer_is_no_pass() {
        let targets =
            ingress_targets(&["10.250.0.200".parse().unwrap()], &[ServicePort { port: 80, ..Default::default() }]);
        let connect = observed(&[("node-a", &[("10.250.0.200:80", Seen::Connected)])]);
        let step = judge_load_balancer(&targets, &connect, Some((&[], Ok(BTreeMap::new()))));
        assert_eq!(step.status, StepStatus::Fail, "{step:?}");
        assert!(step.summary.contains("no node's health-check node port could be asked"), "{}", step.summary);
    }
}
