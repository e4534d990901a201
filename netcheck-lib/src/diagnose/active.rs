//! The active links, probed from a client agent on every node: each endpoint's pod IP and port, the
//! ClusterIP and port, the Service's DNS names, and the node ports. The probes are TCP connects (the
//! application's protocol is unknown); UDP and SCTP ports are left out, and the step says so.
//!
//! Sending the orders is the only async part; judging the answers is pure and unit-tested.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;

use super::facts::Facts;
use super::read_only::{self, describe_port, is_headless, shorten};
use super::{CLUSTER_IP, DNS, NODE_PORT, POD_IP, Step, StepStatus};
use crate::protocol::{Action, Attempt, DnsProbe, DnsQuery, Outcome, TcpProbe};
use crate::runner::Session;
use crate::{Error, Result};

/// Connects per target and node.
const ATTEMPTS: u32 = 2;
/// Per-connect and per-query timeout.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Something to connect to, and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `ip:port`.
    pub address: String,
    /// How the report names it, e.g. `10.244.1.5:8080 (pod web-1 on node-a)`.
    pub label: String,
    /// The node it lives on (a pod's node, a node port's node), when known.
    pub node: Option<String>,
}

/// What the attempts from one source node to one target ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Every attempt connected.
    Connected,
    /// At least one was refused (and none timed out).
    Refused,
    /// At least one timed out.
    Timeout,
    /// Something else, e.g. `unresolved: …`.
    Other(String),
}

/// Per source node: per target address, what was seen; or why the node gave no result.
pub type Observations = BTreeMap<String, std::result::Result<BTreeMap<String, Seen>, String>>;

/// The active steps, in order, ending with the first broken one.
///
/// # Errors
/// [`Error::Protocol`] when no client agent reported at all (netcheck could not observe anything).
pub async fn walk(session: &Session, facts: &Facts, port: Option<&str>) -> Result<Vec<Step>> {
    let Some(svc) = facts.service.as_ref() else { return Ok(Vec::new()) };
    let external = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
    let mut steps = Vec::new();
    let ports = read_only::selected_ports(svc, port)?;
    let tcp_ports: Vec<_> = ports.iter().filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP").cloned().collect();
    let untested: Vec<String> = ports.iter().filter(|p| !tcp_ports.contains(p)).map(describe_port).collect();
    let not_tcp = |step: Step| {
        if untested.is_empty() {
            step
        } else {
            step.with_evidence([format!("not probed (TCP connects only): {}", untested.join(", "))])
        }
    };

    let pods = pod_targets(facts, &tcp_ports);
    let step = if external {
        Step::new(POD_IP, StepStatus::Skip, "ExternalName Service: no pods behind it")
    } else if pods.is_empty() {
        Step::new(POD_IP, StepStatus::Skip, "no ready endpoint with a TCP port to connect to")
    } else {
        judge_pod_ips(&pods, &connect_from_every_node(session, &pods).await?)
    };
    if push_and_stop(&mut steps, not_tcp(step)) {
        return Ok(steps);
    }

    let cluster = cluster_ip_targets(svc, &tcp_ports);
    let step = if external {
        Step::new(CLUSTER_IP, StepStatus::Skip, "ExternalName Service: no ClusterIP")
    } else if is_headless(svc) {
        Step::new(CLUSTER_IP, StepStatus::Skip, "headless Service: no ClusterIP, DNS answers the pod IPs")
    } else if cluster.is_empty() {
        Step::new(CLUSTER_IP, StepStatus::Skip, "no TCP port to connect to")
    } else {
        judge_cluster_ip(&cluster, &connect_from_every_node(session, &cluster).await?)
    };
    if push_and_stop(&mut steps, not_tcp(step)) {
        return Ok(steps);
    }

    let questions = dns_questions(facts, svc, &session.options.cluster_domain);
    let step = match &questions {
        None => Step::new(DNS, StepStatus::Skip, "the Service has no ready endpoint, so DNS has nothing to answer"),
        Some(q) => judge_dns(q, &ask_from_every_node(session, q).await?),
    };
    if push_and_stop(&mut steps, step) {
        return Ok(steps);
    }

    let (node_ports, expectation) = node_port_targets(facts, svc, &tcp_ports);
    let step = if node_ports.is_empty() {
        let kind = svc.spec.as_ref().and_then(|s| s.type_.clone()).unwrap_or_else(|| "ClusterIP".into());
        Step::new(NODE_PORT, StepStatus::Skip, format!("a {kind} Service has no node port"))
    } else {
        judge_node_ports(&node_ports, &expectation, &connect_from_every_node(session, &node_ports).await?)
    };
    steps.push(not_tcp(step));
    Ok(steps)
}

fn push_and_stop(steps: &mut Vec<Step>, step: Step) -> bool {
    let broken = step.status == StepStatus::Fail;
    steps.push(step);
    broken
}

/// Ready endpoint addresses × the selected TCP ports they serve.
pub fn pod_targets(facts: &Facts, ports: &[k8s_openapi::api::core::v1::ServicePort]) -> Vec<Target> {
    let names: BTreeSet<Option<&str>> = ports.iter().map(|p| p.name.as_deref().filter(|n| !n.is_empty())).collect();
    let node_of = |pod: &str| {
        facts
            .pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(pod))
            .and_then(|p| p.spec.as_ref()?.node_name.clone())
    };
    let mut targets = Vec::new();
    for e in facts.endpoints.iter().filter(|e| e.address.ready) {
        for p in e.ports.iter().filter(|p| p.protocol == "TCP" && names.contains(&p.name.as_deref())) {
            let node = e.address.pod.as_deref().and_then(node_of);
            let owner = match (&e.address.pod, &node) {
                (Some(pod), Some(node)) => format!(" (pod {pod} on {node})"),
                (Some(pod), None) => format!(" (pod {pod})"),
                _ => String::new(),
            };
            let address = format!("{}:{}", e.address.ip, p.port);
            targets.push(Target { label: format!("{address}{owner}"), address, node });
        }
    }
    targets.sort_by(|a, b| a.address.cmp(&b.address));
    targets.dedup();
    targets
}

fn cluster_ip_targets(svc: &Service, ports: &[k8s_openapi::api::core::v1::ServicePort]) -> Vec<Target> {
    let Some(ip) = crate::runner::services::cluster_ip(svc) else {
        return Vec::new();
    };
    ports
        .iter()
        .map(|p| {
            let address = format!("{ip}:{}", p.port);
            Target { label: address.clone(), address, node: None }
        })
        .collect()
}

/// Which target nodes must answer a node port: all, or (externalTrafficPolicy Local) only those
/// with a ready endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePortExpectation {
    /// Every node forwards.
    EveryNode,
    /// Only these nodes answer; the others must not forward.
    LocalOnly(BTreeSet<String>),
}

fn node_port_targets(
    facts: &Facts,
    svc: &Service,
    ports: &[k8s_openapi::api::core::v1::ServicePort],
) -> (Vec<Target>, NodePortExpectation) {
    let spec = svc.spec.clone().unwrap_or_default();
    if !matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")) {
        return (Vec::new(), NodePortExpectation::EveryNode);
    }
    let mut targets = Vec::new();
    for node in facts.nodes.iter().filter(|n| n.ready) {
        for p in ports {
            let Some(node_port) = p.node_port else { continue };
            for ip in node.internal_ips.iter().chain(&node.external_ips) {
                let address = format!("{ip}:{node_port}");
                targets.push(Target {
                    label: format!("{address} ({})", node.name),
                    address,
                    node: Some(node.name.clone()),
                });
            }
        }
    }
    let expectation = if spec.external_traffic_policy.as_deref() == Some("Local") {
        let hosting = pod_targets(facts, ports).into_iter().filter_map(|t| t.node).collect();
        NodePortExpectation::LocalOnly(hosting)
    } else {
        NodePortExpectation::EveryNode
    };
    (targets, expectation)
}

async fn connect_from_every_node(session: &Session, targets: &[Target]) -> Result<Observations> {
    let probe = TcpProbe {
        targets: targets.iter().map(|t| t.address.clone()).collect(),
        attempts: ATTEMPTS,
        timeout_ms: TIMEOUT.as_millis() as u64,
    };
    let results = session.order_every_client(|_| Action::Tcp(probe.clone())).await;
    observations(results.into_iter().map(|(node, r)| (node, crate::checks::whole_attempts(r))))
}

/// Folds attempts into what each node saw of each target.
fn observations(
    results: impl IntoIterator<Item = (String, std::result::Result<Vec<Attempt>, String>)>,
) -> Result<Observations> {
    let mut out = Observations::new();
    for (node, result) in results {
        let folded = result.map(|attempts| {
            let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
            for a in attempts {
                let now = match &a.outcome {
                    Outcome::Connected => Seen::Connected,
                    Outcome::Refused => Seen::Refused,
                    Outcome::Timeout => Seen::Timeout,
                    other => Seen::Other(crate::probe::outcome_text(other)),
                };
                let entry = seen.entry(a.target.clone()).or_insert(Seen::Connected);
                *entry = worse(entry.clone(), now);
            }
            seen
        });
        out.insert(node, folded);
    }
    if !out.is_empty() && out.values().all(|r| r.is_err()) {
        let why: Vec<String> = out.iter().filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}"))).collect();
        return Err(Error::Protocol(format!("no client agent reported: {}", why.join("; "))));
    }
    Ok(out)
}

fn worse(a: Seen, b: Seen) -> Seen {
    fn rank(s: &Seen) -> u8 {
        match s {
            Seen::Connected => 0,
            Seen::Refused => 1,
            Seen::Other(_) => 2,
            Seen::Timeout => 3,
        }
    }
    if rank(&b) > rank(&a) { b } else { a }
}

fn seen_text(s: &Seen) -> String {
    match s {
        Seen::Connected => "connected".into(),
        Seen::Refused => "refused".into(),
        Seen::Timeout => format!("no answer within {} s", TIMEOUT.as_secs()),
        Seen::Other(t) => t.clone(),
    }
}

/// One target that did not connect from every node.
struct Failing<'a> {
    target: &'a Target,
    /// (source node, what it saw) for the sources that did not connect.
    bad: Vec<(String, Seen)>,
    /// Sources that connected.
    good: Vec<String>,
}

impl Failing<'_> {
    fn fails_from_every_source(&self) -> bool {
        self.good.is_empty()
    }

    fn all(&self, seen: &Seen) -> bool {
        self.bad.iter().all(|(_, s)| s == seen)
    }

    fn evidence(&self) -> String {
        let bad: Vec<String> = self.bad.iter().map(|(n, s)| format!("{n}: {}", seen_text(s))).collect();
        let good =
            if self.good.is_empty() { String::new() } else { format!("; connected from {}", self.good.join(", ")) };
        format!("{}: {}{good}", self.target.label, bad.join(", "))
    }
}

fn failing<'a>(targets: &'a [Target], observed: &Observations) -> (Vec<Failing<'a>>, Vec<String>) {
    let mut silent = Vec::new();
    for (node, r) in observed {
        if let Err(e) = r {
            silent.push(format!("no result from the client on {node}: {e}"));
        }
    }
    let failing = targets
        .iter()
        .filter_map(|t| {
            let mut bad = Vec::new();
            let mut good = Vec::new();
            for (node, r) in observed {
                let Ok(seen) = r else { continue };
                match seen.get(&t.address).cloned().unwrap_or(Seen::Other("not probed".into())) {
                    Seen::Connected => good.push(node.clone()),
                    s => bad.push((node.clone(), s)),
                }
            }
            (!bad.is_empty()).then_some(Failing { target: t, bad, good })
        })
        .collect();
    (failing, silent)
}

/// A step whose probes passed from the nodes that reported while some reported nothing: not a pass,
/// since "from every node" was not observed; the silent nodes are named in the evidence.
fn silent_nodes(id: &'static str, what: &str, silent: usize, evidence: Vec<String>) -> Step {
    Step::new(
        id,
        StepStatus::Fail,
        format!("{what} from the nodes that reported, but {silent} node(s) reported nothing"),
    )
    .with_evidence(evidence)
    .with_fix(
        "a client agent that sends no result: check that node's path to the API server and the agent's logs \
         (kubectl logs -n <run namespace> netcheck-client-<node>)",
    )
}

/// `pod-ip`: every ready endpoint address answers on its port from every node.
pub fn judge_pod_ips(targets: &[Target], observed: &Observations) -> Step {
    let (failing, silent) = failing(targets, observed);
    let sources = observed.values().filter(|r| r.is_ok()).count();
    if failing.is_empty() && !silent.is_empty() {
        return silent_nodes(POD_IP, "the endpoint addresses answer", silent.len(), silent);
    }
    if failing.is_empty() {
        return Step::new(
            POD_IP,
            StepStatus::Pass,
            format!(
                "{} from every node ({sources} node{})",
                if targets.len() == 1 {
                    "the endpoint address answers".to_string()
                } else {
                    format!("{} endpoint addresses answer", targets.len())
                },
                if sources == 1 { "" } else { "s" }
            ),
        )
        .with_evidence(silent);
    }
    let mut evidence: Vec<String> = failing.iter().map(Failing::evidence).collect();
    evidence.extend(silent);
    let summary = format!("{} of {} endpoint addresses do not answer", failing.len(), targets.len());
    let step = Step::new(POD_IP, StepStatus::Fail, summary).with_evidence(evidence);
    if failing.iter().all(|f| f.fails_from_every_source() && f.all(&Seen::Refused)) {
        return step.with_fix(
            "the pods refuse connections on the target port while their containers run: the app is not listening there, or \
             listens only on 127.0.0.1/localhost; make it listen on 0.0.0.0 (all interfaces) on that port, or point the Service's \
             targetPort at the port it listens on",
        );
    }
    if failing
        .iter()
        .all(|f| f.bad.iter().all(|(source, _)| Some(source) != f.target.node.as_ref()) && !f.good.is_empty())
    {
        return step.with_fix(
            "the pods answer from their own node but not across nodes: pod routing between nodes (CNI, routes, a firewall between the nodes)",
        );
    }
    if failing.iter().all(|f| f.fails_from_every_source() && f.all(&Seen::Timeout)) {
        return step.with_fix(
            "no node gets an answer from these pods: the pod network on their node, or a NetworkPolicy that drops the traffic",
        );
    }
    step.with_fix("compare the failing sources above: the pod network between them and the pods")
}

/// `cluster-ip`: the ClusterIP answers on every selected port from every node (the pods answered).
pub fn judge_cluster_ip(targets: &[Target], observed: &Observations) -> Step {
    let (failing, silent) = failing(targets, observed);
    if failing.is_empty() && !silent.is_empty() {
        return silent_nodes(CLUSTER_IP, "the ClusterIP answers", silent.len(), silent);
    }
    if failing.is_empty() {
        let list: Vec<String> = targets.iter().map(|t| t.address.clone()).collect();
        return Step::new(CLUSTER_IP, StepStatus::Pass, format!("{} answers from every node", list.join(", ")))
            .with_evidence(silent);
    }
    let mut evidence: Vec<String> = failing.iter().map(Failing::evidence).collect();
    evidence.extend(silent);
    let bad_nodes: BTreeSet<&str> = failing.iter().flat_map(|f| f.bad.iter().map(|(n, _)| n.as_str())).collect();
    let everywhere = failing.iter().all(Failing::fails_from_every_source);
    let summary = if everywhere {
        "the ClusterIP does not answer from any node, although the pods answer on their IPs".to_string()
    } else {
        format!(
            "the ClusterIP does not answer from {}, although the pods answer on their IPs",
            bad_nodes.iter().copied().collect::<Vec<_>>().join(", ")
        )
    };
    let step = Step::new(CLUSTER_IP, StepStatus::Fail, summary).with_evidence(evidence);
    if !everywhere {
        let nodes = bad_nodes.iter().copied().collect::<Vec<_>>().join(", ");
        return step.with_fix(format!(
            "the service proxy (kube-proxy) on {nodes}: check that it runs there and has rules for this Service (iptables-save | grep the ClusterIP)"
        ));
    }
    if failing.iter().all(|f| f.all(&Seen::Refused)) {
        return step.with_fix(
            "every node's service proxy rejects the connection, which it does when it knows no endpoint for the port: \
             check that kube-proxy sees the endpoints (its log) and that the Service port maps to the endpoints' port",
        );
    }
    step.with_fix("the service proxy on every node: check that kube-proxy runs and has programmed this Service")
}

/// The DNS questions and their exact expected answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Questions {
    /// (query, expected records sorted).
    pub queries: Vec<(DnsQuery, Vec<String>)>,
}

fn dns_questions(facts: &Facts, svc: &Service, domain: &str) -> Option<Questions> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let ns = &facts.namespace;
    let spec = svc.spec.clone().unwrap_or_default();
    let fqdn = format!("{name}.{ns}.svc.{}.", domain.trim_end_matches('.'));
    let short = format!("{name}.{ns}");
    let ask = |name: &str, record_type: &str| DnsQuery {
        name: name.into(),
        record_type: record_type.into(),
        server: None,
        tcp: false,
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        let target = format!("{}.", spec.external_name.clone().unwrap_or_default().trim_end_matches('.'));
        return Some(Questions { queries: vec![(ask(&fqdn, "CNAME"), vec![target])] });
    }
    let expected: Vec<String> = if is_headless(svc) {
        let ips: BTreeSet<String> =
            facts.endpoints.iter().filter(|e| e.address.ready).map(|e| e.address.ip.clone()).collect();
        ips.into_iter().collect()
    } else {
        spec.cluster_ip.clone().into_iter().collect()
    };
    if expected.is_empty() {
        return None;
    }
    Some(Questions { queries: vec![(ask(&fqdn, "A"), expected.clone()), (ask(&short, "A"), expected)] })
}

async fn ask_from_every_node(
    session: &Session,
    questions: &Questions,
) -> Result<BTreeMap<String, std::result::Result<Vec<Attempt>, String>>> {
    let probe = DnsProbe {
        queries: questions.queries.iter().map(|(q, _)| q.clone()).collect(),
        attempts: ATTEMPTS,
        timeout_ms: TIMEOUT.as_millis() as u64,
        interval_ms: 0,
        until_answered_ms: None,
        until_presence: None,
    };
    let results: BTreeMap<_, _> = session
        .order_every_client(|_| Action::Dns(probe.clone()))
        .await
        .into_iter()
        .map(|(node, r)| (node, crate::checks::whole_attempts(r)))
        .collect();
    if !results.is_empty() && results.values().all(|r| r.is_err()) {
        return Err(Error::Protocol("no client agent reported the DNS answers".into()));
    }
    Ok(results)
}

/// `dns`: every name answers exactly the expected records, from every node.
pub fn judge_dns(questions: &Questions, answers: &BTreeMap<String, std::result::Result<Vec<Attempt>, String>>) -> Step {
    let mut wrong = Vec::new();
    let mut evidence = Vec::new();
    let mut timeouts = 0;
    let mut nx = 0;
    let mut total = 0;
    let mut short_only = true;
    let mut failing_nodes = BTreeSet::new();
    let mut reporting = 0;
    for (node, result) in answers {
        let attempts = match result {
            Ok(a) => a,
            Err(e) => {
                evidence.push(format!("no result from the client on {node}: {e}"));
                continue;
            }
        };
        reporting += 1;
        for (i, (query, expected)) in questions.queries.iter().enumerate() {
            total += 1;
            let key = query.key();
            let mine: Vec<&Attempt> = attempts.iter().filter(|a| a.target == key).collect();
            let is_wrong = |a: &&&Attempt| {
                let mut got = a.outcome.records().map(<[String]>::to_vec).unwrap_or_default();
                got.sort();
                got != *expected
            };
            let got = match mine.iter().find(is_wrong) {
                None if !mine.is_empty() => continue,
                None => "no answer reported".to_string(),
                Some(bad) => match &bad.outcome {
                    Outcome::Records { records, .. } => records.join(", "),
                    other => {
                        timeouts += usize::from(*other == Outcome::Timeout);
                        nx += usize::from(*other == Outcome::NxDomain);
                        crate::probe::outcome_text(other)
                    }
                },
            };
            if i == 0 {
                short_only = false;
            }
            failing_nodes.insert(node.as_str());
            wrong.push(format!(
                "{node}: {} {} — expected {}, got {got}",
                query.record_type,
                query.name,
                expected.join(", ")
            ));
        }
    }
    let names: Vec<String> = questions.queries.iter().map(|(q, _)| q.name.clone()).collect();
    if wrong.is_empty() && !evidence.is_empty() {
        return silent_nodes(DNS, "the names answer as expected", evidence.len(), evidence);
    }
    if wrong.is_empty() {
        let expected = questions.queries.first().map(|(_, e)| e.join(", ")).unwrap_or_default();
        return Step::new(DNS, StepStatus::Pass, format!("{} answer {expected} from every node", names.join(" and ")))
            .with_evidence(evidence);
    }
    let failed = wrong.len();
    let summary = format!("{failed} of {total} name lookups give the wrong answer");
    evidence.splice(0..0, wrong);
    let step = Step::new(DNS, StepStatus::Fail, summary).with_evidence(evidence);
    let fix = if timeouts == failed && failing_nodes.len() < reporting {
        let nodes = failing_nodes.iter().copied().collect::<Vec<_>>().join(", ");
        format!(
            "only {nodes} get no DNS answer while the other nodes do: the path from {nodes} to the cluster DNS (kube-proxy's rules there for the kube-dns ClusterIP)"
        )
    } else if timeouts == failed {
        "the cluster DNS does not answer: check the DNS pods (kube-system, k8s-app=kube-dns) and that the kube-dns Service reaches them".to_string()
    } else if short_only {
        "the full name resolves but the short form does not: the search path in the pods' /etc/resolv.conf (kubelet's --cluster-domain)".to_string()
    } else if nx > 0 {
        "the DNS server says the name does not exist: it has no record for this Service (is it watching the API? is the cluster domain right, --cluster-domain?)".to_string()
    } else {
        "the DNS server's records differ from what the API says: it is serving stale or wrong records for this Service"
            .to_string()
    };
    step.with_fix(fix)
}

/// `node-port`: every (expected) node answers on its addresses from every node.
pub fn judge_node_ports(targets: &[Target], expectation: &NodePortExpectation, observed: &Observations) -> Step {
    let expected = |t: &Target| match expectation {
        NodePortExpectation::EveryNode => true,
        NodePortExpectation::LocalOnly(nodes) => t.node.as_ref().is_some_and(|n| nodes.contains(n)),
    };
    let (failing, silent) = failing(targets, observed);
    let broken: Vec<&Failing> = failing.iter().filter(|f| expected(f.target)).collect();
    let mut evidence: Vec<String> = Vec::new();
    if let NodePortExpectation::LocalOnly(nodes) = expectation {
        let without: Vec<String> = targets.iter().filter(|t| !expected(t)).map(|t| t.label.clone()).collect();
        evidence.push(format!(
            "externalTrafficPolicy Local: nodes with a ready pod ({}) must answer; {} may not forward",
            nodes.iter().cloned().collect::<Vec<_>>().join(", "),
            if without.is_empty() { "no other node".to_string() } else { shorten(&without, 4) }
        ));
    }
    if broken.is_empty() && !silent.is_empty() {
        let count = silent.len();
        evidence.extend(silent);
        return silent_nodes(NODE_PORT, "the node ports answer", count, evidence);
    }
    evidence.extend(silent);
    if broken.is_empty() {
        let answering = targets.iter().filter(|t| expected(t)).count();
        return Step::new(
            NODE_PORT,
            StepStatus::Pass,
            format!("{answering} node addresses answer on the node port from every node"),
        )
        .with_evidence(evidence);
    }
    evidence.splice(0..0, broken.iter().map(|f| f.evidence()));
    let everywhere: Vec<&str> =
        broken.iter().filter(|f| f.fails_from_every_source()).map(|f| f.target.label.as_str()).collect();
    let summary = format!(
        "{} of {} node addresses do not answer on the node port",
        broken.len(),
        targets.iter().filter(|t| expected(t)).count()
    );
    let step = Step::new(NODE_PORT, StepStatus::Fail, summary).with_evidence(evidence);
    if everywhere.len() == broken.len() {
        return step.with_fix(format!(
            "{} fail from every node while the ClusterIP works: the NodePort path on that node (kube-proxy's NodePort rules, a host firewall, the address)",
            everywhere.join(", ")
        ));
    }
    step.with_fix("some sources reach the node port and others do not: the network path between those nodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(address: &str, node: &str) -> Target {
        Target { address: address.into(), label: format!("{address} (pod p on {node})"), node: Some(node.into()) }
    }

    fn observed(rows: &[(&str, &[(&str, Seen)])]) -> Observations {
        rows.iter()
            .map(|(node, seen)| (node.to_string(), Ok(seen.iter().map(|(a, s)| (a.to_string(), s.clone())).collect())))
            .collect()
    }

    #[test]
    fn refused_from_every_node_points_at_the_bind_address() {
        let t = [target("10.244.1.5:8080", "node-a")];
        let o = observed(&[
            ("node-a", &[("10.244.1.5:8080", Seen::Refused)]),
            ("node-b", &[("10.244.1.5:8080", Seen::Refused)]),
        ]);
        let step = judge_pod_ips(&t, &o);
        assert_eq!(step.status, StepStatus::Fail);
        assert_eq!(step.summary, "1 of 1 endpoint addresses do not answer");
        assert_eq!(step.evidence[0], "10.244.1.5:8080 (pod p on node-a): node-a: refused, node-b: refused");
        assert!(step.fix.unwrap().contains("127.0.0.1"));
    }

    #[test]
    fn answering_only_on_its_own_node_points_at_pod_routing() {
        let t = [target("10.244.1.5:8080", "node-a")];
        let o = observed(&[
            ("node-a", &[("10.244.1.5:8080", Seen::Connected)]),
            ("node-b", &[("10.244.1.5:8080", Seen::Timeout)]),
        ]);
        let step = judge_pod_ips(&t, &o);
        assert_eq!(
            step.evidence[0],
            "10.244.1.5:8080 (pod p on node-a): node-b: no answer within 2 s; connected from node-a"
        );
        assert!(step.fix.unwrap().contains("across nodes"));
        let ok = observed(&[("node-a", &[("10.244.1.5:8080", Seen::Connected)])]);
        assert_eq!(judge_pod_ips(&t, &ok).status, StepStatus::Pass);
    }

    #[test]
    fn a_cluster_ip_failing_on_one_node_names_that_nodes_proxy() {
        let t = [Target { address: "10.96.0.20:80".into(), label: "10.96.0.20:80".into(), node: None }];
        let o = observed(&[
            ("node-a", &[("10.96.0.20:80", Seen::Connected)]),
            ("node-b", &[("10.96.0.20:80", Seen::Timeout)]),
        ]);
        let step = judge_cluster_ip(&t, &o);
        assert_eq!(step.summary, "the ClusterIP does not answer from node-b, although the pods answer on their IPs");
        assert!(step.fix.unwrap().starts_with("the service proxy (kube-proxy) on node-b"));
    }

    #[test]
    fn a_node_that_reported_nothing_is_named_not_passed_over() {
        let t = [Target { address: "10.96.0.20:80".into(), label: "10.96.0.20:80".into(), node: None }];
        let mut o = observed(&[("node-a", &[("10.96.0.20:80", Seen::Connected)])]);
        o.insert("node-b".into(), Err("timed out after 17 s".into()));
        let step = judge_cluster_ip(&t, &o);
        assert_eq!(step.status, StepStatus::Fail);
        assert_eq!(step.summary, "the ClusterIP answers from the nodes that reported, but 1 node(s) reported nothing");
        assert_eq!(step.evidence, ["no result from the client on node-b: timed out after 17 s"]);
        let pods = [target("10.244.1.5:8080", "node-a")];
        let mut o = observed(&[("node-a", &[("10.244.1.5:8080", Seen::Connected)])]);
        o.insert("node-b".into(), Err("timed out".into()));
        assert_eq!(judge_pod_ips(&pods, &o).status, StepStatus::Fail);
    }

    #[test]
    fn attempts_fold_to_the_worst_outcome() {
        let a = |outcome| Attempt { target: "t:1".into(), start_ms: 0, elapsed_us: 1, retries: 0, outcome };
        let o = observations([("n".to_string(), Ok(vec![a(Outcome::Connected), a(Outcome::Refused)]))]).unwrap();
        assert_eq!(o["n"].as_ref().unwrap()["t:1"], Seen::Refused);
        let err = observations([("n".to_string(), Err("did not report".to_string()))]).unwrap_err();
        assert!(err.to_string().contains("no client agent reported"), "{err}");
    }

    #[test]
    fn dns_compares_the_exact_record_set_and_places_the_fault() {
        let q = |name: &str| DnsQuery { name: name.into(), record_type: "A".into(), server: None, tcp: false };
        let questions = Questions {
            queries: vec![
                (q("web.shop.svc.cluster.local."), vec!["10.96.0.20".into()]),
                (q("web.shop"), vec!["10.96.0.20".into()]),
            ],
        };
        let answer =
            |name: &str, outcome| Attempt { target: q(name).key(), start_ms: 0, elapsed_us: 1, retries: 0, outcome };
        let records = |ip: &str| Outcome::Records { records: vec![ip.into()], ttl_s: Some(30) };
        let good = BTreeMap::from([(
            "node-a".to_string(),
            Ok(vec![
                answer("web.shop.svc.cluster.local.", records("10.96.0.20")),
                answer("web.shop", records("10.96.0.20")),
            ]),
        )]);
        let step = judge_dns(&questions, &good);
        assert_eq!(step.status, StepStatus::Pass, "{step:?}");
        assert_eq!(step.summary, "web.shop.svc.cluster.local. and web.shop answer 10.96.0.20 from every node");

        let short_broken = BTreeMap::from([(
            "node-a".to_string(),
            Ok(vec![
                answer("web.shop.svc.cluster.local.", records("10.96.0.20")),
                answer("web.shop", Outcome::NxDomain),
            ]),
        )]);
        let step = judge_dns(&questions, &short_broken);
        assert_eq!(step.evidence[0], "node-a: A web.shop — expected 10.96.0.20, got NXDOMAIN");
        assert!(step.fix.unwrap().contains("search path"));

        let stale = BTreeMap::from([(
            "node-a".to_string(),
            Ok(vec![
                answer("web.shop.svc.cluster.local.", records("10.96.0.99")),
                answer("web.shop", records("10.96.0.99")),
            ]),
        )]);
        let step = judge_dns(&questions, &stale);
        assert_eq!(step.summary, "2 of 2 name lookups give the wrong answer");
        assert!(step.fix.unwrap().contains("stale or wrong"));

        let mut one_node_silent = good.clone();
        one_node_silent.insert(
            "node-b".to_string(),
            Ok(vec![answer("web.shop.svc.cluster.local.", Outcome::Timeout), answer("web.shop", Outcome::Timeout)]),
        );
        let step = judge_dns(&questions, &one_node_silent);
        assert_eq!(step.summary, "2 of 4 name lookups give the wrong answer");
        assert!(
            step.fix.unwrap().starts_with("only node-b get no DNS answer"),
            "{:?}",
            judge_dns(&questions, &one_node_silent)
        );
    }

    #[test]
    fn with_local_policy_only_nodes_with_a_pod_must_answer() {
        let t = [target("10.250.0.11:30080", "node-a"), target("10.250.0.12:30080", "node-b")];
        let o =
            observed(&[("node-a", &[("10.250.0.11:30080", Seen::Connected), ("10.250.0.12:30080", Seen::Timeout)])]);
        let local = NodePortExpectation::LocalOnly(BTreeSet::from(["node-a".to_string()]));
        assert_eq!(judge_node_ports(&t, &local, &o).status, StepStatus::Pass);
        let step = judge_node_ports(&t, &NodePortExpectation::EveryNode, &o);
        assert_eq!(step.status, StepStatus::Fail);
        assert!(step.fix.unwrap().starts_with("10.250.0.12:30080 (pod p on node-b) fail from every node"));
    }
}
