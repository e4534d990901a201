//! The read-only links, judged from [`Facts`] alone: the Service, its selector, the pods' readiness,
//! the target ports and the endpoints. Pure: unit-tested on fixture objects.
//!
//! Why `target-port` comes before `endpoints`: the endpoints controller resolves each targetPort in
//! each pod, and a named targetPort that no pod defines leaves the endpoints empty. The empty list is
//! the symptom; the port is the cause, so the port is judged first.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ContainerPort, Event, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::facts::Facts;
use super::{ENDPOINTS, PODS_READY, SELECTOR, SERVICE, Step, StepStatus, TARGET_PORT};
use crate::runner::deploy::pod_ready;
use crate::{Error, Result};

/// The read-only steps, in order, ending with the first broken one (if any).
///
/// # Errors
/// [`Error::NoSuchPort`] when `port` names no port of the Service.
pub fn walk(facts: &Facts, port: Option<&str>) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let service = service_step(facts);
    let broken = service.status == StepStatus::Fail;
    steps.push(service);
    let Some(svc) = facts.service.as_ref().filter(|_| !broken) else { return Ok(steps) };
    let ports = selected_ports(svc, port)?;
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        let why = "ExternalName Service: no pods stand behind it, DNS answers a CNAME";
        steps.extend([SELECTOR, PODS_READY, TARGET_PORT, ENDPOINTS].map(|id| Step::new(id, StepStatus::Skip, why)));
        return Ok(steps);
    }
    let selector = spec.selector.clone().unwrap_or_default();
    if selector.is_empty() {
        let why = "the Service has no selector: its endpoints are written by hand or by another controller";
        steps.extend([SELECTOR, PODS_READY, TARGET_PORT].map(|id| Step::new(id, StepStatus::Skip, why)));
        steps.push(endpoints_step(facts, &[]));
        return Ok(steps);
    }
    let selected: Vec<&Pod> = facts.pods.iter().filter(|p| matches(p, &selector)).collect();
    let ready: Vec<&Pod> = selected.iter().copied().filter(|p| pod_ready(p)).collect();
    let walkers: [&dyn Fn() -> Step; 4] = [
        &|| selector_step(facts, &selector, &selected),
        &|| pods_ready_step(&selected, &ready, &facts.events),
        &|| target_port_step(&ports, &ready),
        &|| endpoints_step(facts, &ready),
    ];
    for step in walkers {
        let step = step();
        let broken = step.status == StepStatus::Fail;
        steps.push(step);
        if broken {
            break;
        }
    }
    Ok(steps)
}

/// The Service ports the walk looks at: all, or the one `port` names (by name or number).
pub fn selected_ports(svc: &Service, port: Option<&str>) -> Result<Vec<ServicePort>> {
    let all = svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let Some(wanted) = port else { return Ok(all) };
    let found: Vec<ServicePort> =
        all.iter().filter(|p| p.name.as_deref() == Some(wanted) || p.port.to_string() == wanted).cloned().collect();
    if found.is_empty() {
        let name = svc.metadata.name.clone().unwrap_or_default();
        let list = if all.is_empty() {
            "none".to_string()
        } else {
            all.iter().map(describe_port).collect::<Vec<_>>().join(", ")
        };
        return Err(Error::NoSuchPort { service: name, wanted: wanted.to_string(), ports: list });
    }
    Ok(found)
}

/// `http 80→8080/TCP (nodePort 30080)`.
pub fn describe_port(p: &ServicePort) -> String {
    let name = p.name.as_deref().map(|n| format!("{n} ")).unwrap_or_default();
    let target = match &p.target_port {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => format!("'{s}'"),
        None => p.port.to_string(),
    };
    let protocol = p.protocol.as_deref().unwrap_or("TCP");
    let node_port = p.node_port.map(|n| format!(" (nodePort {n})")).unwrap_or_default();
    format!("{name}{}→{target}/{protocol}{node_port}", p.port)
}

fn service_step(facts: &Facts) -> Step {
    let ns = &facts.namespace;
    let Some(svc) = &facts.service else {
        if facts.namespace_exists == Some(false) {
            return Step::new(SERVICE, StepStatus::Fail, format!("namespace {ns} does not exist"))
                .with_fix("check the namespace (-n NAMESPACE); `kubectl get namespaces` lists them");
        }
        return missing_service_step(facts);
    };
    let name = svc.metadata.name.clone().unwrap_or_default();
    let spec = svc.spec.clone().unwrap_or_default();
    let kind = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let ports = spec.ports.clone().unwrap_or_default();
    let port_text = shorten(&ports.iter().map(describe_port).collect::<Vec<_>>(), MAX_LISTED);
    let summary = if kind == "ExternalName" {
        format!("service/{name} is an ExternalName Service for {}", spec.external_name.clone().unwrap_or_default())
    } else if is_headless(svc) {
        format!("service/{name}: headless (clusterIP None), ports {port_text}")
    } else {
        format!("service/{name}: {kind} {}, ports {port_text}", spec.cluster_ip.clone().unwrap_or_default())
    };
    let mut evidence = Vec::new();
    if let Some(sel) = &spec.selector {
        evidence.push(format!("selector {}", labels_text(sel)));
    }
    let forwarded: Vec<(i32, i32)> = ports
        .iter()
        .filter_map(|p| match &p.target_port {
            Some(IntOrString::Int(t)) if *t != p.port => Some((p.port, *t)),
            _ => None,
        })
        .collect();
    for (port, t) in forwarded.iter().take(MAX_LISTED) {
        evidence.push(format!(
            "clients connect to the Service port {port}, which forwards to port {t} (targetPort) on the endpoints; connecting to {t} on the Service gets nothing"
        ));
    }
    if forwarded.len() > MAX_LISTED {
        evidence.push(format!("and {} more ports forward to another targetPort", forwarded.len() - MAX_LISTED));
    }
    if spec.session_affinity.as_deref() == Some("ClientIP") {
        evidence.push("sessionAffinity ClientIP: one client always lands on the same pod".into());
    }
    if spec.external_traffic_policy.as_deref() == Some("Local") {
        evidence.push("externalTrafficPolicy Local: a node port answers only on nodes with a Ready pod".into());
    }
    Step::new(SERVICE, StepStatus::Pass, summary).with_evidence(evidence)
}

fn missing_service_step(facts: &Facts) -> Step {
    let ns = &facts.namespace;
    let mut step = Step::new(SERVICE, StepStatus::Fail, format!("no Service named {} in namespace {ns}", facts.name));
    if facts.service_names.is_empty() {
        step.evidence.push(format!("namespace {ns} has no Services"));
    } else {
        let mut names = facts.service_names.clone();
        names.sort();
        step.evidence.push(format!("Services in {ns}: {}", shorten(&names, 12)));
    }
    let similar = similar_names(&facts.name, &facts.service_names);
    match similar.first() {
        Some(best) => step.with_fix(format!(
            "did you mean {}? (netcheck diagnose service/{best} -n {ns})",
            similar.iter().map(|s| format!("service/{s}")).collect::<Vec<_>>().join(" or ")
        )),
        None => step.with_fix("check the Service's name and namespace (-n NAMESPACE)"),
    }
}

fn selector_step(facts: &Facts, selector: &BTreeMap<String, String>, selected: &[&Pod]) -> Step {
    let ns = &facts.namespace;
    let live: Vec<&&Pod> = selected.iter().filter(|p| !is_finished(p)).collect();
    if !live.is_empty() {
        let names: Vec<String> = live.iter().map(|p| pod_name(p)).collect();
        let mut step = Step::new(
            SELECTOR,
            StepStatus::Pass,
            format!("selector {} matches {} pod{}", labels_text(selector), live.len(), plural(live.len())),
        )
        .with_evidence([format!("pods: {}", shorten(&names, 10))]);
        let finished = selected.len() - live.len();
        if finished > 0 {
            step.evidence
                .push(format!("{finished} more matching pods have finished (Succeeded/Failed) and never serve"));
        }
        return step;
    }
    let mut step = Step::new(
        SELECTOR,
        StepStatus::Fail,
        format!("selector {} matches no running pod in {ns}", labels_text(selector)),
    );
    if facts.pods.is_empty() {
        step.evidence.push(format!("namespace {ns} has no pods at all"));
        return step.with_fix("deploy the workload into this namespace, or check -n NAMESPACE");
    }
    for (pod, differences) in nearest_pods(&facts.pods, selector).into_iter().take(3) {
        step.evidence.push(format!("nearest pod {}: {}", pod_name(pod), differences.join(", ")));
    }
    let fix = format!(
        "make the Service's spec.selector and the pods' labels agree (kubectl get pods -n {ns} --show-labels shows the labels)"
    );
    step.with_fix(fix)
}

fn pods_ready_step(selected: &[&Pod], ready: &[&Pod], events: &[Event]) -> Step {
    let not_ready: Vec<&&Pod> = selected.iter().filter(|p| !pod_ready(p) && !is_finished(p)).collect();
    let evidence: Vec<String> =
        not_ready.iter().take(5).map(|p| format!("{}: {}", pod_name(p), not_ready_reason(p, events))).collect();
    let total = selected.iter().filter(|p| !is_finished(p)).count();
    if !ready.is_empty() {
        return Step::new(PODS_READY, StepStatus::Pass, format!("{} of {total} selected pods are Ready", ready.len()))
            .with_evidence(evidence);
    }
    let first_reason = not_ready.first().map(|p| not_ready_reason(p, events)).unwrap_or_default();
    let fix = if first_reason.contains("readiness probe") {
        "fix what the readiness probe checks, or the probe itself (kubectl describe pod shows its last failures)"
    } else if first_reason.contains("not scheduled") {
        "make room for the pods or relax their constraints (resources, nodeSelector, affinity, tolerations)"
    } else if first_reason.contains("CrashLoopBackOff") || first_reason.contains("exit code") {
        "read why the container exits: kubectl logs --previous POD"
    } else if first_reason.contains("Image") || first_reason.contains("image") {
        "fix the image reference, or make the image pullable from the nodes"
    } else {
        "kubectl describe pod POD shows what the pod waits for"
    };
    Step::new(PODS_READY, StepStatus::Fail, format!("none of the {total} selected pods is Ready"))
        .with_evidence(evidence)
        .with_fix(fix)
}

fn target_port_step(ports: &[ServicePort], ready: &[&Pod]) -> Step {
    let mut evidence = Vec::new();
    for port in ports {
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        let declared: BTreeSet<String> = ready
            .iter()
            .flat_map(|p| container_ports(p))
            .filter(|c| protocol_of(c) == protocol)
            .map(|c| describe_container_port(&c))
            .collect();
        let declared_text = if declared.is_empty() {
            "none".to_string()
        } else {
            shorten(&declared.into_iter().collect::<Vec<_>>(), 6)
        };
        let label = port.name.clone().unwrap_or_else(|| port.port.to_string());
        match port.target_port.clone().unwrap_or(IntOrString::Int(port.port)) {
            IntOrString::String(name) => {
                let resolving: Vec<String> = ready
                    .iter()
                    .filter_map(|p| {
                        container_ports(p)
                            .into_iter()
                            .find(|c| c.name.as_deref() == Some(name.as_str()) && protocol_of(c) == protocol)
                            .map(|c| format!("{} → {}", pod_name(p), c.container_port))
                    })
                    .collect();
                if resolving.is_empty() {
                    return Step::new(
                        TARGET_PORT,
                        StepStatus::Fail,
                        format!("port {label}: targetPort '{name}' is not the name of a {protocol} containerPort of any Ready pod"),
                    )
                    .with_evidence([format!("the pods declare: {declared_text}"), "without it the endpoints controller lists no address for this port".into()])
                    .with_fix(format!(
                        "set the Service port's targetPort to a port the pods declare (a number, or one of their port names), or name a containerPort '{name}'"
                    ));
                }
                evidence.push(format!("port {label}: targetPort '{name}' resolves on {}", shorten(&resolving, 6)));
                let missing = ready.len() - resolving.len();
                if missing > 0 {
                    evidence.push(format!("{missing} Ready pods do not define '{name}' and get no traffic on it"));
                }
            }
            IntOrString::Int(number) => {
                let any_declared = ready.iter().any(|p| !container_ports(p).is_empty());
                let matching = ready.iter().any(|p| {
                    container_ports(p).iter().any(|c| c.container_port == number && protocol_of(c) == protocol)
                });
                if any_declared && !matching {
                    return Step::new(
                        TARGET_PORT,
                        StepStatus::Fail,
                        format!("port {label}: targetPort {number}/{protocol} is not a containerPort of the Ready pods"),
                    )
                    .with_evidence([format!("the pods declare: {declared_text}")])
                    .with_fix(format!(
                        "set targetPort to the port the app listens on (one of: {declared_text}); if the app really listens on {number}, declare it as a containerPort"
                    ));
                }
                evidence.push(if matching {
                    format!("port {label}: targetPort {number}/{protocol} is a containerPort of the pods")
                } else {
                    format!(
                        "port {label}: the pods declare no containerPorts; the pod-ip step checks that {number} answers"
                    )
                });
            }
        }
    }
    let summary = if ports.is_empty() {
        "the Service has no ports".to_string()
    } else {
        "every targetPort resolves in the Ready pods".to_string()
    };
    Step::new(TARGET_PORT, StepStatus::Pass, summary).with_evidence(evidence)
}

fn endpoints_step(facts: &Facts, ready_pods: &[&Pod]) -> Step {
    let ready: Vec<&super::facts::Endpoint> = facts.endpoints.iter().filter(|e| e.address.ready).collect();
    let not_ready = facts.endpoints.len() - ready.len();
    let listed: BTreeSet<&str> = ready.iter().filter_map(|e| e.address.pod.as_deref()).collect();
    let unlisted: Vec<String> =
        ready_pods.iter().map(|p| pod_name(p)).filter(|n| !listed.contains(n.as_str())).collect();
    let addresses: Vec<String> = ready
        .iter()
        .map(|e| {
            let ports: Vec<String> = e.ports.iter().map(|p| p.port.to_string()).collect();
            let pod = e.address.pod.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
            format!("{}:{}{pod}", e.address.ip, ports.join(","))
        })
        .collect();
    let mut evidence = Vec::new();
    if not_ready > 0 {
        evidence.push(format!("{not_ready} endpoint addresses are listed as not ready"));
    }
    let controller_fix = "the endpoints controller (kube-controller-manager) writes them: check that it runs; kubectl get endpoints NAME -n NS shows what it wrote";
    if ready.is_empty() {
        let summary = if ready_pods.is_empty() {
            "the Service has no ready endpoint".to_string()
        } else {
            format!("the endpoints list none of the {} Ready pods", ready_pods.len())
        };
        return Step::new(ENDPOINTS, StepStatus::Fail, summary).with_evidence(evidence).with_fix(controller_fix);
    }
    if !unlisted.is_empty() {
        evidence.push(format!("Ready pods not listed: {}", shorten(&unlisted, 6)));
        return Step::new(
            ENDPOINTS,
            StepStatus::Fail,
            format!("{} Ready pods are missing from the endpoints", unlisted.len()),
        )
        .with_evidence(evidence)
        .with_fix(controller_fix);
    }
    evidence.insert(0, format!("ready: {}", shorten(&addresses, 8)));
    Step::new(
        ENDPOINTS,
        StepStatus::Pass,
        format!("{} ready endpoint address{}", ready.len(), if ready.len() == 1 { "" } else { "es" }),
    )
    .with_evidence(evidence)
}

/// Why a pod is not Ready, in one line, from its status and its latest events.
pub fn not_ready_reason(pod: &Pod, events: &[Event]) -> String {
    if pod.metadata.deletion_timestamp.is_some() {
        return "terminating".into();
    }
    let status = pod.status.clone().unwrap_or_default();
    for c in status.conditions.iter().flatten() {
        if c.type_ == "PodScheduled" && c.status == "False" {
            return format!(
                "Pending, not scheduled: {}: {}",
                c.reason.clone().unwrap_or_default(),
                cut(&c.message.clone().unwrap_or_default())
            );
        }
    }
    for cs in status.container_statuses.iter().flatten() {
        let state = cs.state.clone().unwrap_or_default();
        if let Some(w) = state.waiting {
            let reason = w.reason.unwrap_or_default();
            if reason == "CrashLoopBackOff" {
                let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                let exit = last
                    .map(|t| format!("; last exit code {} ({})", t.exit_code, t.reason.clone().unwrap_or_default()))
                    .unwrap_or_default();
                return format!("container {} in CrashLoopBackOff ({} restarts{exit})", cs.name, cs.restart_count);
            }
            return format!("container {} waiting: {reason} {}", cs.name, cut(&w.message.unwrap_or_default()))
                .trim_end()
                .to_string();
        }
        if let Some(t) = state.terminated {
            return format!(
                "container {} exited with code {} ({})",
                cs.name,
                t.exit_code,
                t.reason.unwrap_or_default()
            );
        }
    }
    let name = pod_name(pod);
    let probe_failure = events
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name.as_str()))
        .filter(|e| e.reason.as_deref() == Some("Unhealthy"))
        .filter(|e| e.message.as_deref().is_some_and(|m| m.starts_with("Readiness probe")))
        .max_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0)));
    if let Some(e) = probe_failure {
        let count = e.count.map(|c| format!(" ({c} times)")).unwrap_or_default();
        return format!(
            "Running, readiness probe failing{count}: {}",
            cut(e.message.clone().unwrap_or_default().trim())
        );
    }
    let ready_message = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.message.as_deref().map(cut))
        .unwrap_or_else(|| "not Ready".into());
    format!("{}: {ready_message}", status.phase.unwrap_or_else(|| "Unknown".into()))
}

/// Pods whose labels share the most pairs with the selector, with what differs, best first.
fn nearest_pods<'a>(pods: &'a [Pod], selector: &BTreeMap<String, String>) -> Vec<(&'a Pod, Vec<String>)> {
    let mut scored: Vec<(usize, &Pod, Vec<String>)> = pods
        .iter()
        .filter(|p| !is_finished(p))
        .map(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            let mut differences = Vec::new();
            let mut same = 0;
            for (k, v) in selector {
                match labels.get(k) {
                    Some(have) if have == v => same += 1,
                    Some(have) => differences.push(format!("has {k}={have}, the selector wants {k}={v}")),
                    None => differences.push(format!("has no label {k} (the selector wants {k}={v})")),
                }
            }
            (same, p, differences)
        })
        .collect();
    let best = scored.iter().map(|(s, _, _)| *s).max().unwrap_or(0);
    scored.retain(|(s, _, _)| *s == best);
    scored.sort_by_key(|(_, p, d)| (d.len(), pod_name(p)));
    scored.into_iter().map(|(_, p, d)| (p, d)).collect()
}

/// Names among `names` close to `wanted`: a small edit distance, or one containing the other.
fn similar_names(wanted: &str, names: &[String]) -> Vec<String> {
    let mut close: Vec<(usize, String)> = names
        .iter()
        .filter(|n| n.as_str() != wanted)
        .filter_map(|n| {
            let d = edit_distance(wanted, n);
            (d <= 2.max(wanted.len() / 4) || n.contains(wanted) || wanted.contains(n.as_str())).then(|| (d, n.clone()))
        })
        .collect();
    close.sort();
    close.into_iter().take(3).map(|(_, n)| n).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Whether the pod's labels carry every pair of the selector.
pub fn matches(pod: &Pod, selector: &BTreeMap<String, String>) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn is_finished(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Whether the Service has no ClusterIP (`clusterIP: None`).
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

fn container_ports(pod: &Pod) -> Vec<ContainerPort> {
    pod.spec.iter().flat_map(|s| s.containers.iter()).flat_map(|c| c.ports.clone().unwrap_or_default()).collect()
}

fn protocol_of(c: &ContainerPort) -> String {
    c.protocol.clone().unwrap_or_else(|| "TCP".into())
}

fn describe_container_port(c: &ContainerPort) -> String {
    match &c.name {
        Some(n) => format!("{n} {}/{}", c.container_port, protocol_of(c)),
        None => format!("{}/{}", c.container_port, protocol_of(c)),
    }
}

/// The pod's name.
pub fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// How many ports, pods or lines a step lists before it says "and N more".
const MAX_LISTED: usize = 8;
/// The longest text a step quotes from the cluster (an event's or a condition's message): whoever can
/// write those objects decides their length, the report must not grow with it.
const MAX_QUOTED_CHARS: usize = 300;

/// `text`, cut to [`MAX_QUOTED_CHARS`] with a note of how much was left out.
pub(crate) fn cut(text: &str) -> String {
    let total = text.chars().count();
    if total <= MAX_QUOTED_CHARS {
        return text.to_string();
    }
    let kept: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    format!("{kept}… ({} more characters)", total - MAX_QUOTED_CHARS)
}

/// `a, b, c and 4 more`.
pub fn shorten(items: &[String], keep: usize) -> String {
    if items.len() <= keep {
        return items.join(", ");
    }
    format!("{} and {} more", items[..keep].join(", "), items.len() - keep)
}

#[cfg(test)]
mod tests;
