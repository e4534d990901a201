//! Creating a LoadBalancer Service and waiting for its ingress address: what `loadbalancer/provision`
//! judges, and what every other LoadBalancer check needs before it can probe.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Service};
use kube::api::{Api, ListParams, PostParams};
use serde::Deserialize;

use super::PROVISION;
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::Session;
use crate::runner::manifests;

/// `loadbalancer/provision`'s parameters; the other LoadBalancer checks wait for their own
/// Service's address with the same limits.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ProvisionParams {
    pub(super) no_controller_ms: u64,
    pub(super) timeout_ms: u64,
}

/// What the wait for an ingress address saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Provisioning {
    /// The Service's name.
    pub(super) service: String,
    /// The first ingress IP, when one was assigned.
    pub(super) address: Option<String>,
    /// A hostname ingress (clouds that front the Service with a DNS name), when that is all there is.
    pub(super) hostname: Option<String>,
    /// From creation until the address, or until the wait ended.
    pub(super) waited_ms: u64,
    /// The Service's events, as `Type Reason: message` (from the implementation's controller).
    pub(super) events: Vec<String>,
    /// The health-check node port the API server allocated (`externalTrafficPolicy: Local` only).
    pub(super) health_check_node_port: Option<u16>,
}

/// How far the wait got: what the checks that need the address are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ingress {
    /// The address to probe.
    Address(IpAddr),
    /// No address to probe, and why (the reason a dependent check skips with).
    None(String),
}

/// Creates the LoadBalancer Service `name` over the pods of `component` and waits for its address,
/// reading its events as they come.
pub(super) async fn provision(
    session: &Session,
    (name, component, local): (&str, &str, bool),
    p: ProvisionParams,
) -> Result<Provisioning, String> {
    let (client, ns) = (session.cluster.client.clone(), session.namespace.as_str());
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let created = services
        .create(&PostParams::default(), &manifests::loadbalancer_service(ns, name, component, local))
        .await
        .map_err(|e| format!("creating service/{name}: {e}"))?;
    let health_check_node_port =
        created.spec.and_then(|s| s.health_check_node_port).and_then(|port| u16::try_from(port).ok());
    let started = Instant::now();
    let (no_controller, limit) = (Duration::from_millis(p.no_controller_ms), Duration::from_millis(p.timeout_ms));
    loop {
        let svc = services.get(name).await.map_err(|e| format!("reading service/{name}: {e}"))?;
        let ingress = svc.status.and_then(|s| s.load_balancer).and_then(|lb| lb.ingress).unwrap_or_default();
        let listed =
            service_events(&client, ns, name).await.map_err(|e| format!("listing service/{name}'s events: {e}"))?;
        let seen = Provisioning {
            service: name.to_string(),
            address: ingress.iter().find_map(|i| i.ip.clone()),
            hostname: ingress.iter().find_map(|i| i.hostname.clone()),
            waited_ms: started.elapsed().as_millis() as u64,
            events: listed.iter().map(event_line).collect(),
            health_check_node_port,
        };
        let acted = !seen.events.is_empty() || seen.hostname.is_some();
        if seen.address.is_some() || started.elapsed() >= limit || (!acted && started.elapsed() >= no_controller) {
            return Ok(seen);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The nodes the implementation says it announces `service`'s address from, as its newest event that
/// names a node says (MetalLB: `announcing from node "node-b" with protocol "layer2"`); empty when no
/// event names one (a cloud's load balancer, or the events could not be read).
pub(super) async fn announcing_nodes(session: &Session, service: &str) -> Vec<String> {
    let Ok(listed) = service_events(&session.cluster.client, &session.namespace, service).await else {
        return Vec::new();
    };
    let names: Vec<&str> = session.nodes.iter().map(|n| n.name.as_str()).collect();
    let messages: Vec<String> = listed.iter().filter_map(|e| e.message.clone()).collect();
    nodes_named(&messages, &names)
}

/// The nodes (of `names`) that the last message naming any of them names, in quotes.
fn nodes_named(messages: &[String], names: &[&str]) -> Vec<String> {
    messages
        .iter()
        .rev()
        .map(|m| names.iter().filter(|n| m.contains(&format!("\"{n}\""))).map(|n| n.to_string()).collect::<Vec<_>>())
        .find(|found| !found.is_empty())
        .unwrap_or_default()
}

/// The events about Service `name` in `ns` (only the Service's: a pod of the same name is not the
/// LoadBalancer implementation).
pub(crate) async fn service_events(client: &kube::Client, ns: &str, name: &str) -> kube::Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let about = ListParams::default().fields(&format!("involvedObject.kind=Service,involvedObject.name={name}"));
    Ok(events.list(&about).await?.items)
}

/// An event as `Type Reason: message`, cut to a line.
pub(crate) fn event_line(e: &Event) -> String {
    let text = format!(
        "{} {}: {}",
        e.type_.as_deref().unwrap_or("Normal"),
        e.reason.as_deref().unwrap_or_default(),
        e.message.as_deref().unwrap_or_default()
    );
    crate::diagnose::read_only::cut(&text)
}

/// The provision verdict (subject: the Service), and what a check that needs the address may probe.
pub(super) fn judge_provision(seen: &Provisioning, p: ProvisionParams) -> (CheckResult, Ingress) {
    let service = &seen.service;
    let result = |status, message: String| {
        CheckResult::new(PROVISION, status, Subject::default().named(format!("service/{service}")), message)
    };
    if let Some(address) = &seen.address {
        return match address.parse::<IpAddr>() {
            Ok(ip) => (
                result(Status::Pass, format!("ingress {address} after {} ms", seen.waited_ms))
                    .measure("provisionMs", seen.waited_ms),
                Ingress::Address(ip),
            ),
            Err(_) => {
                let why = format!("the implementation assigned {address:?}, which is not an IP address");
                (result(Status::Fail, why.clone()), Ingress::None(why))
            }
        };
    }
    if let Some(hostname) = &seen.hostname {
        let why = format!("the ingress is the hostname {hostname}, with no IP; netcheck probes IP ingresses only");
        return (result(Status::Pass, why.clone()).measure("provisionMs", seen.waited_ms), Ingress::None(why));
    }
    if seen.events.is_empty() {
        let why = format!(
            "no LoadBalancer implementation acted on service/{service} within {} ms (no event, no address): the \
             cluster has none (kind needs cloud-provider-kind or MetalLB)",
            p.no_controller_ms
        );
        return (result(Status::Skip, why.clone()), Ingress::None(why));
    }
    let why = format!(
        "the LoadBalancer implementation acted on service/{service} but assigned no address within {} ms",
        p.timeout_ms
    );
    let mut failed = result(Status::Fail, why.clone());
    failed.diagnosis = Some(Diagnosis {
        likely_cause: "the LoadBalancer implementation (its address pool, quota or cloud permissions)".into(),
        evidence: seen.events.iter().take(8).cloned().collect(),
        next_step: Some(format!(
            "read the implementation's events above (kubectl describe service/{service}) and its controller's log"
        )),
    });
    (failed, Ingress::None(why))
}

/// For a check that probes the address of its own Service: the address, or the check's result when
/// there is none. A cluster without an implementation is a skip; an implementation that failed this
/// Service is that check's failure too (with the implementation's events), never a pass.
pub(super) fn address_for(
    check: &str,
    seen: Result<Provisioning, String>,
    p: ProvisionParams,
) -> Result<(IpAddr, Provisioning), Box<CheckResult>> {
    let seen = match seen {
        Ok(seen) => seen,
        Err(e) => return Err(Box::new(CheckResult::new(check, Status::Error, Subject::default(), e))),
    };
    let (verdict, ingress) = judge_provision(&seen, p);
    match ingress {
        Ingress::Address(ip) => Ok((ip, seen)),
        Ingress::None(why) => {
            let status = if verdict.status == Status::Fail { Status::Fail } else { Status::Skip };
            let mut r = CheckResult::new(check, status, verdict.subject, format!("no address to probe: {why}"));
            r.diagnosis = verdict.diagnosis;
            Err(Box::new(r))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ProvisionParams = ProvisionParams { no_controller_ms: 5_000, timeout_ms: 60_000 };

    fn seen(address: Option<&str>, events: Vec<String>, waited_ms: u64) -> Provisioning {
        Provisioning {
            service: "netcheck-lb".into(),
            address: address.map(String::from),
            waited_ms,
            events,
            ..Default::default()
        }
    }

    #[test]
    fn the_announcing_node_is_the_one_the_newest_event_names() {
        let messages = [
            "announcing from node \"node-a\" with protocol \"layer2\"".to_string(),
            "Assigned IP [\"10.250.0.200\"]".to_string(),
            "announcing from node \"node-b\" with protocol \"layer2\"".to_string(),
        ];
        assert_eq!(nodes_named(&messages, &["node-a", "node-b"]), ["node-b"]);
        assert_eq!(nodes_named(&messages[1..2], &["node-a"]), Vec::<String>::new());
        assert_eq!(nodes_named(&["on \"node-a2\"".to_string()], &["node-a"]), Vec::<String>::new(), "whole names");
    }

    #[test]
    fn an_address_passes_with_its_time_and_is_what_the_other_checks_probe() {
        let (r, ingress) = judge_provision(&seen(Some("10.250.0.200"), vec![], 312), P);
        assert_eq!(r.status, Status::Pass);
        assert_eq!(r.measurements["provisionMs"], serde_json::json!(312));
        assert_eq!(ingress, Ingress::Address("10.250.0.200".parse().unwrap()));
        assert_eq!(r.subject.name.as_deref(), Some("service/netcheck-lb"));
    }

    #[test]
    fn nothing_acting_is_a_skip_that_the_other_checks_inherit() {
        let (r, ingress) = judge_provision(&seen(None, vec![], 5_000), P);
        assert_eq!(r.status, Status::Skip);
        assert!(r.message.contains("no LoadBalancer implementation acted") && r.message.contains("5000 ms"));
        assert!(matches!(ingress, Ingress::None(why) if why == r.message));
        let dependent = address_for("loadbalancer/local-policy", Ok(seen(None, vec![], 5_000)), P).unwrap_err();
        assert_eq!((dependent.check.as_str(), dependent.status), ("loadbalancer/local-policy", Status::Skip));
    }

    #[test]
    fn an_implementation_that_acts_but_assigns_nothing_fails_with_its_events_here_and_in_dependents() {
        let events =
            vec!["Warning AllocationFailed: Failed to allocate IP for \"ns/netcheck-lb\": no available IPs".into()];
        let (r, ingress) = judge_provision(&seen(None, events.clone(), 60_000), P);
        assert_eq!(r.status, Status::Fail);
        let d = r.diagnosis.unwrap();
        assert!(d.evidence[0].contains("AllocationFailed"), "{:?}", d.evidence);
        assert!(matches!(ingress, Ingress::None(_)));
        let dependent = address_for("loadbalancer/source-ranges", Ok(seen(None, events, 60_000)), P).unwrap_err();
        assert_eq!(dependent.status, Status::Fail, "a pool that ran dry is no skip");
        assert!(dependent.diagnosis.is_some());
        let bad = seen(Some("lb.example"), vec![], 1);
        assert_eq!(judge_provision(&bad, P).0.status, Status::Fail, "an address that is no IP is never probed");
        let lost = address_for("loadbalancer/reachable", Err("reading service/x: gone".into()), P).unwrap_err();
        assert_eq!(lost.status, Status::Error);
    }
}
