//! The `dns/*` checks: every client agent asks the cluster DNS the questions whose answers the
//! Kubernetes DNS specification fixes, and each answer is compared exactly with what the API says
//! (see [`super::dns_expect`]).
//!
//! Order of work: read the API facts; create a fresh Service and time until every node's DNS answers
//! it (so the DNS server has caught up with every object before it: no race of our own making is
//! judged); then one order per client carries every question, so one round answers all selected
//! checks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};

use serde::Deserialize;

use super::dns_expect::{self, Expected};
use super::{params, selected};
use crate::catalog::{CheckSpec, ParamSpec, int, millis, parses_into};
use crate::protocol::{Action, Attempt, DnsProbe, DnsQuery, HTTP_PORT, OrderResult, Outcome, UDP_PORT};
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::channel::OrderFailure;
use crate::runner::endpoints::{self, EndpointAddress};
use crate::runner::manifests::{
    self, CLIENTS_SERVICE, ECHO_SERVICE, EXTERNAL_SERVICE, HEADLESS_ALL_SERVICE, HEADLESS_SERVICE,
};
use crate::runner::{Session, settle};
use crate::scenario::Scenario;
use crate::stats;
use crate::stats::round2;

const SERVICE_A: &str = "dns/service-a";
const SEARCH_PATH: &str = "dns/search-path";
const HEADLESS: &str = "dns/headless";
const SRV: &str = "dns/srv";
const POD_HOSTNAME: &str = "dns/pod-hostname";
const EXTERNALNAME: &str = "dns/externalname";
const NEGATIVE: &str = "dns/negative";
const PTR: &str = "dns/ptr";
const PER_SERVER: &str = "dns/per-server";
const EXTERNAL: &str = "dns/external";

/// The checks this round answers.
pub(crate) static SPECS: &[CheckSpec] = &[
    CheckSpec {
        id: SERVICE_A,
        title: "A Service's name answers exactly its ClusterIP, over UDP and TCP",
        description: "From every client, `<svc>.<ns>.svc.<domain>` asked of the cluster DNS Service over UDP and \
                      over TCP answers exactly the ClusterIP; latency percentiles per node, and the time a new \
                      Service took to appear in DNS.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
        parse_params: parses_into::<DnsParams>,
    },
    CheckSpec {
        id: SEARCH_PATH,
        title: "Short names resolve through the pod's search path",
        description: "`<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc` and `kubernetes.default` resolve through the pod's own \
                      resolv.conf (search list, ndots), as an application sees them, to the right ClusterIP.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
        parse_params: parses_into::<DnsParams>,
    },
    CheckSpec {
        id: HEADLESS,
        title: "A headless Service answers exactly its ready pod IPs",
        description: "A headless Service's name answers exactly the set of ready backend addresses the API lists \
                      (not-ready ones only with publishNotReadyAddresses).",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
        parse_params: parses_into::<DnsParams>,
    },
    CheckSpec {
        id: SRV,
        title: "SRV records for named ports",
        description: "`_<port>._<proto>.<svc>.<ns>.svc.<domain>` answers the port and the Service's name; for a \
                      headless Service one record per ready endpoint at the endpoint's port.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
        parse_params: parses_into::<DnsParams>,
    },
    CheckSpec {
        id: POD_HOSTNAME,
        title: "A pod with hostname and subdomain has its own name",
        description: "Each client agent sets `hostname` and `subdomain` (a headless Service); \
                      `<hostname>.<subdomain>.<ns>.svc.<domain>` answers exactly that pod's IP.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
        parse_params: parses_into::<DnsParams>,
    },
    CheckSpec {
        id: EXTERNALNAME,
        title: "An ExternalName Service answers a CNAME",
        description: "An ExternalName Service's name answers a CNAME to its externalName (asked as CNAME; the \
                      target, under .invalid, need not resolve).",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
        parse_params: parses_into::<DnsParams>,
    },
    CheckSpec {
        id: NEGATIVE,
        title: "A name that does not exist answers NXDOMAIN promptly",
        description: "A name under the run's namespace that no object defines answers NXDOMAIN, within promptMs, \
                      rather than timing out or answering something.",
        params: &[DNS_ATTEMPTS, millis("promptMs", 1, 60_000, 1_000, "NXDOMAIN must come within this time.")],
        parse_params: parses_into::<NegativeParams>,
    },
    CheckSpec {
        id: PTR,
        title: "A ClusterIP's reverse name answers the Service's name",
        description: "The in-addr.arpa name of the ClusterIP answers a PTR to `<svc>.<ns>.svc.<domain>`; skipped \
                      with the reason when the server serves no PTR for ClusterIPs at all.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
        parse_params: parses_into::<DnsParams>,
    },
    CheckSpec {
        id: PER_SERVER,
        title: "Every DNS endpoint answers on its own",
        description: "The Service name query sent to each endpoint behind the cluster DNS Service directly, so \
                      that one broken replica is named even when the Service IP mostly works.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
        parse_params: parses_into::<DnsParams>,
    },
    CheckSpec {
        id: EXTERNAL,
        title: "A name outside the cluster resolves (opt-in)",
        description: "Only with --external-name NAME: that name resolves through the pod's resolv.conf from every \
                      node. Skipped otherwise; netcheck never picks an outside name on its own.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
        parse_params: parses_into::<DnsParams>,
    },
];

/// Sends of each DNS query per client.
const DNS_ATTEMPTS: ParamSpec = int("attempts", 1, 100, 3, "Sends of each query from each client.");
/// How long one DNS query may take.
const DNS_TIMEOUT_MS: ParamSpec =
    millis("timeoutMs", 1, 60_000, 2_000, "How long one query may take before it counts as failed.");

/// The parameters of every DNS check but `dns/negative`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DnsParams {
    attempts: u32,
    timeout_ms: u64,
}

/// `dns/negative`'s parameters: its limit is how promptly NXDOMAIN comes.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NegativeParams {
    attempts: u32,
    prompt_ms: u64,
}

/// The cluster DNS Service, by the name every Kubernetes distribution keeps for compatibility.
const DNS_NAMESPACE: &str = "kube-system";
const DNS_SERVICE: &str = "kube-dns";
const DNS_PORT: u16 = 53;
/// Name prefix of the Service created during the check to time how long DNS takes to answer a new name.
const FRESH_SERVICE: &str = "netcheck-dns-fresh-";
/// How long a new Service may take to appear in DNS before that is reported as not seen: longer than
/// CoreDNS's negative cache (30 s as kubeadm, kind and AKS configure it), which keeps an NXDOMAIN given
/// before the server saw the Service.
const APPEARANCE_LIMIT: Duration = Duration::from_secs(35);

/// What the API says, read once.
struct Facts {
    domain: String,
    namespace: String,
    dns_ip: String,
    dns_endpoints: Vec<String>,
    echo: Service,
    kubernetes: Service,
    headless: Service,
    headless_endpoints: Vec<EndpointAddress>,
    headless_all: Service,
    headless_all_endpoints: Vec<EndpointAddress>,
    clients: Service,
    client_endpoints: Vec<EndpointAddress>,
    external: Service,
}

/// One question for every client, and the answer it must get.
#[derive(Debug, Clone)]
struct Question {
    check: &'static str,
    query: DnsQuery,
    expected: Expected,
}

/// Runs the selected DNS checks.
pub async fn run(session: &Session, scenario: &Scenario) -> Vec<CheckResult> {
    let facts = match read_facts(session).await {
        Ok(f) => f,
        Err(e) => return errors(scenario, &e),
    };
    // Also the DNS counterpart of the settle phase: once a Service created now is answered, the DNS
    // server has caught up with every object created or changed before it.
    let appearance = new_service_appearance(session, &facts).await;
    let questions = plan(&facts, scenario, session.options.external_name.as_deref());
    // One probe asks every question: as many times as the most demanding check, as long as the most
    // patient one waits.
    let defaults: DnsParams = params(scenario, SERVICE_A);
    let negative: NegativeParams = params(scenario, NEGATIVE);
    let chosen = SPECS.iter().filter_map(|spec| selected(scenario, spec.id));
    let (attempts, timeouts): (Vec<u32>, Vec<Option<u64>>) = chosen
        .map(|c| match c.id {
            NEGATIVE => (negative.attempts, None),
            _ => {
                let own: DnsParams = c.params.typed();
                (own.attempts, Some(own.timeout_ms))
            }
        })
        .unzip();
    let timeout = Duration::from_millis(timeouts.into_iter().flatten().max().unwrap_or(defaults.timeout_ms));
    let probe = DnsProbe {
        queries: questions.iter().map(|q| q.query.clone()).collect::<BTreeSet<_>>().into_iter().collect(),
        attempts: attempts.into_iter().max().unwrap_or(defaults.attempts),
        timeout_ms: timeout.as_millis() as u64,
        until_answered_ms: None,
        until_presence: None,
        interval_ms: 0,
    };
    let rounds = ask_every_client(session, &probe).await;
    let prompt = match selected(scenario, NEGATIVE) {
        Some(_) => Duration::from_millis(negative.prompt_ms),
        None => timeout,
    };

    let mut results = Vec::new();
    if selected(scenario, EXTERNAL).is_some() && session.options.external_name.is_none() {
        results.push(CheckResult::new(
            EXTERNAL,
            Status::Skip,
            Subject::default(),
            "opt-in: pass --external-name NAME (a name the cluster's DNS can resolve) to check outside names",
        ));
    }
    for (node, round) in &rounds {
        for q in &questions {
            let subject = subject(node, q);
            let result = match round {
                Err(f) => CheckResult::new(q.check, Status::Error, subject, f.to_string()),
                Ok(r) => super::capped_by_partial(judge(q, subject, &of_query(r, &q.query), prompt), r),
            };
            results.push(result);
        }
    }
    if selected(scenario, PER_SERVER).is_some() && facts.dns_endpoints.is_empty() {
        results.extend(rounds.iter().map(|(node, _)| no_dns_server(node)));
    }
    skip_ptr_if_unserved(&mut results, &questions);
    diagnose(&mut results, &rounds, &questions, &facts);
    for r in results.iter_mut().filter(|r| r.check == SERVICE_A && r.subject.name.as_deref().is_some_and(is_udp)) {
        if let Some(Some(ms)) = r.subject.source_node.as_ref().and_then(|n| appearance.get(n)) {
            let ms = *ms;
            *r = r.clone().measure("newServiceMs", ms);
        }
    }
    results
}

/// `dns/per-server` when the DNS Service has no ready endpoint: there is no server to ask, which is the
/// fault itself (every DNS server stopped or unready), not a check with nothing to say.
fn no_dns_server(node: &str) -> CheckResult {
    let mut r = CheckResult::new(
        PER_SERVER,
        Status::Fail,
        Subject::from_node(node).named(format!("service/{DNS_SERVICE} in {DNS_NAMESPACE}")),
        "the cluster DNS Service has no ready endpoint: there is no DNS server to ask",
    )
    .compare("every ready DNS server endpoint answers", "no ready endpoint");
    r.diagnosis = Some(Diagnosis {
        likely_cause: "the cluster DNS server: none of its pods is ready (scaled to zero, crashing, or failing its \
                       readiness probe)"
            .into(),
        evidence: vec![format!("{DNS_NAMESPACE}/{DNS_SERVICE} lists no ready endpoint")],
        next_step: Some(format!("kubectl -n {DNS_NAMESPACE} get pods -l k8s-app=kube-dns")),
    });
    r
}

fn is_udp(name: &str) -> bool {
    !name.ends_with("(tcp)")
}

async fn read_facts(session: &Session) -> Result<Facts, String> {
    let cluster = &session.cluster;
    let ns = &session.namespace;
    let get = |namespace: &str, name: &str| {
        let api: Api<Service> = Api::namespaced(cluster.client.clone(), namespace);
        let what = format!("service/{name} in {namespace}");
        let name = name.to_string();
        async move {
            match api.get_opt(&name).await {
                Ok(Some(s)) => Ok(s),
                Ok(None) => Err(format!("{what} does not exist")),
                Err(e) => Err(format!("cannot read {what}: {e}")),
            }
        }
    };
    let dns = get(DNS_NAMESPACE, DNS_SERVICE).await.map_err(|e| format!("no cluster DNS Service: {e}"))?;
    let dns_ip = crate::runner::services::cluster_ip(&dns).map(str::to_string);
    let dns_ip = dns_ip.ok_or("service kube-system/kube-dns has no ClusterIP")?;
    let dns_endpoints = endpoints::of_service(cluster, DNS_NAMESPACE, DNS_SERVICE)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|e| e.ready)
        .map(|e| e.ip)
        .collect();
    let servers: BTreeSet<&str> = session.agents.servers.iter().map(|s| s.ip.as_str()).collect();
    let clients: BTreeSet<&str> = session.agents.clients.values().map(|c| c.ip.as_str()).collect();
    let headless_endpoints =
        settle::api_lists_ready(cluster, ns, HEADLESS_SERVICE, &servers).await.map_err(|e| e.to_string())?;
    let headless_all_endpoints =
        settle::api_lists_ready(cluster, ns, HEADLESS_ALL_SERVICE, &servers).await.map_err(|e| e.to_string())?;
    let client_endpoints =
        settle::api_lists_ready(cluster, ns, CLIENTS_SERVICE, &clients).await.map_err(|e| e.to_string())?;
    Ok(Facts {
        domain: session.options.cluster_domain.clone(),
        namespace: ns.clone(),
        dns_ip,
        dns_endpoints,
        echo: get(ns, ECHO_SERVICE).await?,
        kubernetes: get("default", "kubernetes").await?,
        headless: get(ns, HEADLESS_SERVICE).await?,
        headless_endpoints,
        headless_all: get(ns, HEADLESS_ALL_SERVICE).await?,
        headless_all_endpoints,
        clients: get(ns, CLIENTS_SERVICE).await?,
        client_endpoints,
        external: get(ns, EXTERNAL_SERVICE).await?,
    })
}

/// The questions of the selected checks.
fn plan(f: &Facts, scenario: &Scenario, external_name: Option<&str>) -> Vec<Question> {
    let dns = format!("{}:{DNS_PORT}", f.dns_ip);
    let at = |name: &str, rtype: &str, tcp: bool| DnsQuery {
        name: name.to_string(),
        record_type: rtype.into(),
        server: Some(dns.clone()),
        tcp,
    };
    let via_resolv_conf =
        |name: &str| DnsQuery { name: name.to_string(), record_type: "A".into(), server: None, tcp: false };
    let echo_name = dns_expect::service_name(&f.echo, &f.domain);
    let echo_a = dns_expect::service_a(&f.echo, &[]);
    let mut out = Vec::new();
    let mut add = |check: &'static str, query: DnsQuery, expected: Option<Expected>| {
        if let (Some(_), Some(expected)) = (selected(scenario, check), expected) {
            out.push(Question { check, query, expected });
        }
    };
    add(SERVICE_A, at(&echo_name, "A", false), echo_a.clone());
    add(SERVICE_A, at(&echo_name, "A", true), echo_a.clone());
    let svc = ECHO_SERVICE;
    let ns = &f.namespace;
    for short in [svc.to_string(), format!("{svc}.{ns}"), format!("{svc}.{ns}.svc")] {
        add(SEARCH_PATH, via_resolv_conf(&short), echo_a.clone());
    }
    add(SEARCH_PATH, via_resolv_conf("kubernetes.default"), dns_expect::service_a(&f.kubernetes, &[]));
    let headless_name = dns_expect::service_name(&f.headless, &f.domain);
    add(HEADLESS, at(&headless_name, "A", false), dns_expect::service_a(&f.headless, &f.headless_endpoints));
    let all_name = dns_expect::service_name(&f.headless_all, &f.domain);
    add(HEADLESS, at(&all_name, "A", false), dns_expect::service_a(&f.headless_all, &f.headless_all_endpoints));
    let agent_port = |port_name: &str| match port_name {
        "http" => Some(HTTP_PORT),
        "udp" => Some(UDP_PORT),
        _ => None,
    };
    for (svc, eps) in [(&f.echo, &[][..]), (&f.headless, &f.headless_endpoints[..])] {
        for (name, expected) in dns_expect::service_srv(svc, eps, agent_port, &f.domain) {
            add(SRV, at(&name, "SRV", false), Some(expected));
        }
    }
    for (name, expected) in dns_expect::pod_hostnames(&f.clients, &f.client_endpoints, &f.domain) {
        add(POD_HOSTNAME, at(&name, "A", false), Some(expected));
    }
    let external_svc = dns_expect::service_name(&f.external, &f.domain);
    add(EXTERNALNAME, at(&external_svc, "CNAME", false), dns_expect::external_cname(&f.external));
    let missing = dns_expect::fqdn(&["netcheck-no-such-service", ns, "svc"], &f.domain);
    add(NEGATIVE, at(&missing, "A", false), Some(Expected::NxDomain));
    for svc in [&f.echo, &f.kubernetes] {
        if let Some((name, expected)) = dns_expect::cluster_ip_ptr(svc, &f.domain) {
            add(PTR, at(&name, "PTR", false), Some(expected));
        }
    }
    for ip in &f.dns_endpoints {
        let query = DnsQuery { server: Some(format!("{ip}:{DNS_PORT}")), ..at(&echo_name, "A", false) };
        add(PER_SERVER, query, echo_a.clone());
    }
    if let Some(name) = external_name {
        add(EXTERNAL, via_resolv_conf(name), Some(Expected::AnyRecords));
    }
    out
}

async fn ask_every_client(session: &Session, probe: &DnsProbe) -> Vec<(String, Result<OrderResult, OrderFailure>)> {
    session.order_every_client(|_| Action::Dns(probe.clone())).await
}

/// Creates a Service and measures, per client node, the time from its creation until DNS answers
/// its name with its ClusterIP (an upper bound: it includes the order's delivery, a few ms).
async fn new_service_appearance(session: &Session, f: &Facts) -> BTreeMap<String, Option<u64>> {
    let api: Api<Service> = Api::namespaced(session.cluster.client.clone(), &session.namespace);
    let Ok(created) =
        api.create(&PostParams::default(), &manifests::fresh_service(&session.namespace, FRESH_SERVICE)).await
    else {
        return BTreeMap::new();
    };
    let t0 = Instant::now();
    let Some(expected) = dns_expect::service_a(&created, &[]) else { return BTreeMap::new() };
    let name = dns_expect::service_name(&created, &f.domain);
    let probe = DnsProbe {
        queries: vec![DnsQuery {
            name,
            record_type: "A".into(),
            server: Some(format!("{}:{DNS_PORT}", f.dns_ip)),
            tcp: false,
        }],
        attempts: 1,
        timeout_ms: 1000,
        interval_ms: 0,
        until_answered_ms: Some(APPEARANCE_LIMIT.as_millis() as u64),
        until_presence: None,
    };
    let sent_after = t0.elapsed().as_millis() as u64;
    ask_every_client(session, &probe)
        .await
        .into_iter()
        .map(|(node, r)| {
            let first = r.ok().and_then(|r| {
                r.attempts.into_iter().find(|a| a.outcome.records().is_some_and(|rs| expected.matches(rs)))
            });
            (node, first.map(|a| sent_after + a.start_ms + a.elapsed_us / 1000))
        })
        .collect()
}

fn of_query<'a>(r: &'a OrderResult, q: &DnsQuery) -> Vec<&'a Attempt> {
    let key = q.key();
    r.attempts.iter().filter(|a| a.target == key).collect()
}

fn subject(node: &str, q: &Question) -> Subject {
    let transport = if q.query.tcp { " (tcp)" } else { "" };
    Subject::from_node(node)
        .at(q.query.server.clone().unwrap_or_else(|| "resolv.conf".into()))
        .named(format!("{} {}{transport}", q.query.record_type, q.query.name))
}

/// Pass when every attempt got the expected answer (NXDOMAIN: within `prompt`).
fn judge(q: &Question, subject: Subject, attempts: &[&Attempt], prompt: Duration) -> CheckResult {
    let good = |a: &&&Attempt| match &q.expected {
        Expected::NxDomain => a.outcome == Outcome::NxDomain && a.elapsed_us <= prompt.as_micros() as u64,
        expected => a.outcome.records().is_some_and(|r| expected.matches(r)),
    };
    let ok = attempts.iter().filter(good).count();
    let n = attempts.len();
    let latencies: Vec<f64> = attempts.iter().map(|a| a.elapsed_us as f64 / 1000.0).collect();
    let observed = observed(attempts);
    let pass = n > 0 && ok == n;
    let message = if pass {
        format!("{} ({n}/{n})", q.expected.describe())
    } else if n == 0 {
        "the agent returned no attempt for this query".into()
    } else {
        format!("{ok}/{n} correct; got {observed}")
    };
    let mut result = CheckResult::new(q.check, if pass { Status::Pass } else { Status::Fail }, subject, message)
        .measure("correct", ok)
        .measure("attempts", n);
    if let Some(p) = stats::percentiles(&latencies) {
        result = result.measure("p50Ms", round2(p.p50)).measure("p90Ms", round2(p.p90)).measure("maxMs", round2(p.max));
    }
    if !pass {
        result = result.compare(q.expected.describe(), observed);
    }
    result
}

/// Distinct outcomes of the attempts, e.g. `10.96.0.5 ×2, timeout ×1`.
fn observed(attempts: &[&Attempt]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for a in attempts {
        let text = match &a.outcome {
            Outcome::Records { records, .. } => records.join(", "),
            Outcome::Error { detail } => format!("error: {detail}"),
            other => other.label().to_string(),
        };
        *counts.entry(text).or_insert(0) += 1;
    }
    counts.iter().map(|(t, c)| format!("{t} ×{c}")).collect::<Vec<_>>().join("; ")
}

/// When no PTR question got any answer but NXDOMAIN or an empty one, the server does not serve PTR
/// records for ClusterIPs at all: that is a skip with the reason, not a failure per name.
fn skip_ptr_if_unserved(results: &mut [CheckResult], questions: &[Question]) {
    if !questions.iter().any(|q| q.check == PTR) {
        return;
    }
    let ptr: Vec<&CheckResult> = results.iter().filter(|r| r.check == PTR).collect();
    let unserved = !ptr.is_empty()
        && ptr.iter().all(|r| {
            r.observed.as_deref().is_some_and(|o| {
                o.split("; ").all(|part| part.starts_with("NXDOMAIN") || part.starts_with("no records"))
            })
        });
    if unserved {
        for r in results.iter_mut().filter(|r| r.check == PTR) {
            r.status = Status::Skip;
            r.message = "the cluster DNS serves no PTR records for ClusterIPs (not even for the kubernetes \
                         Service); the specification requires them"
                .into();
        }
    }
}

/// Places each failure: one node's path, the DNS Service, the DNS server, or its data.
fn diagnose(
    results: &mut [CheckResult],
    rounds: &[(String, Result<OrderResult, OrderFailure>)],
    questions: &[Question],
    f: &Facts,
) {
    // No answer at all (timeout, or refused: nothing listening) as against a wrong answer.
    let unanswered = |node: &str, q: &Question| -> bool {
        rounds.iter().any(|(n, r)| {
            n == node
                && r.as_ref().is_ok_and(|r| {
                    of_query(r, &q.query).iter().any(|a| matches!(a.outcome, Outcome::Timeout | Outcome::Refused))
                })
        })
    };
    let passes = |node: &str, q: &Question| -> bool {
        results.iter().any(|r| {
            r.status == Status::Pass
                && r.subject.source_node.as_deref() == Some(node)
                && r.check == q.check
                && r.subject.name == subject(node, q).name
        })
    };
    let nodes: Vec<&str> = rounds.iter().map(|(n, _)| n.as_str()).collect();
    let direct_answers = |node: &str| {
        questions.iter().filter(|q| q.check == PER_SERVER).any(|q| {
            rounds.iter().any(|(n, r)| {
                n == node
                    && r.as_ref().is_ok_and(|r| of_query(r, &q.query).iter().any(|a| a.outcome.records().is_some()))
            })
        })
    };
    let mut diagnoses = Vec::new();
    for (i, r) in results.iter().enumerate() {
        if r.status != Status::Fail {
            continue;
        }
        let Some(node) = r.subject.source_node.as_deref() else { continue };
        let Some(q) = questions.iter().find(|q| q.check == r.check && subject(node, q).name == r.subject.name) else {
            continue;
        };
        let name = &q.query.name;
        let diagnosis = if unanswered(node, q) {
            let others_ok: Vec<&str> = nodes.iter().copied().filter(|n| *n != node && passes(n, q)).collect();
            if !others_ok.is_empty() {
                Diagnosis {
                    likely_cause: format!(
                        "the path from {node} to the cluster DNS (kube-proxy on {node}, or its route)"
                    ),
                    evidence: vec![format!(
                        "{name} gets no answer from {node} but is answered from {}",
                        others_ok.join(", ")
                    )],
                    next_step: Some(format!("check kube-proxy on {node} and its rules for {}", f.dns_ip)),
                }
            } else if q.check != PER_SERVER && direct_answers(node) {
                Diagnosis {
                    likely_cause: format!(
                        "the DNS Service {}: its endpoints answer directly, the Service does not",
                        f.dns_ip
                    ),
                    evidence: vec![format!(
                        "{name} gets no answer through {} from every node; a DNS endpoint ({}) answers {node} directly",
                        f.dns_ip,
                        f.dns_endpoints.join(", ")
                    )],
                    next_step: Some("check the kube-dns Service's ports and kube-proxy's rules for it".into()),
                }
            } else {
                Diagnosis {
                    likely_cause: "the cluster DNS server: neither the DNS Service nor its endpoints answer".into(),
                    evidence: vec![format!(
                        "{name} gets no answer (timeout or refused) from every node, through {} and directly at its endpoints ({})",
                        f.dns_ip,
                        if f.dns_endpoints.is_empty() { "none ready".to_string() } else { f.dns_endpoints.join(", ") }
                    )],
                    next_step: Some("check the DNS pods (or server) in kube-system and their logs".into()),
                }
            }
        } else {
            Diagnosis {
                likely_cause: format!("the cluster DNS's records for {name}"),
                evidence: vec![format!(
                    "expected {}, got {}",
                    r.expected.as_deref().unwrap_or("?"),
                    r.observed.as_deref().unwrap_or("?")
                )],
                next_step: Some(
                    "compare with `kubectl get svc,endpoints`; a stale answer points at the DNS server's watch of the API"
                        .into(),
                ),
            }
        };
        diagnoses.push((i, diagnosis));
    }
    for (i, d) in diagnoses {
        results[i].diagnosis = Some(d);
    }
}

fn errors(scenario: &Scenario, message: &str) -> Vec<CheckResult> {
    super::errors(SPECS, scenario, message)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn question(check: &'static str, expected: Expected) -> Question {
        let query =
            DnsQuery { name: "a.ns.svc.cluster.local.".into(), record_type: "A".into(), server: None, tcp: false };
        Question { check, query, expected }
    }

    fn attempt(outcome: Outcome, elapsed_us: u64) -> Attempt {
        Attempt { target: String::new(), start_ms: 0, elapsed_us, retries: 0, outcome }
    }

    fn records(items: &[&str]) -> Outcome {
        Outcome::Records { records: items.iter().map(|s| s.to_string()).collect(), ttl_s: Some(30) }
    }

    #[test]
    fn exact_answers_pass_and_wrong_ones_show_expected_and_got() {
        let q = question(SERVICE_A, Expected::Exactly(BTreeSet::from(["10.96.0.5".to_string()])));
        let good = [attempt(records(&["10.96.0.5"]), 900), attempt(records(&["10.96.0.5"]), 1100)];
        let r = judge(&q, Subject::from_node("n"), &good.iter().collect::<Vec<_>>(), Duration::from_secs(1));
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.measurements["p50Ms"], serde_json::json!(0.9));

        let bad = [attempt(records(&["10.96.0.5", "10.96.0.6"]), 900), attempt(Outcome::Timeout, 2_000_000)];
        let r = judge(&q, Subject::from_node("n"), &bad.iter().collect::<Vec<_>>(), Duration::from_secs(1));
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.expected.as_deref(), Some("10.96.0.5"));
        assert_eq!(r.observed.as_deref(), Some("10.96.0.5, 10.96.0.6 ×1; timeout ×1"));
    }

    #[test]
    fn nxdomain_must_be_prompt() {
        let q = question(NEGATIVE, Expected::NxDomain);
        let prompt = Duration::from_millis(1000);
        let fast = [attempt(Outcome::NxDomain, 2_000)];
        assert_eq!(judge(&q, Subject::default(), &fast.iter().collect::<Vec<_>>(), prompt).status, Status::Pass);
        let slow = [attempt(Outcome::NxDomain, 1_500_000)];
        assert_eq!(judge(&q, Subject::default(), &slow.iter().collect::<Vec<_>>(), prompt).status, Status::Fail);
        let answered = [attempt(records(&["10.0.0.1"]), 2_000)];
        assert_eq!(judge(&q, Subject::default(), &answered.iter().collect::<Vec<_>>(), prompt).status, Status::Fail);
    }

    #[test]
    fn no_attempt_is_a_failure_not_a_pass() {
        let q = question(HEADLESS, Expected::AnyRecords);
        assert_eq!(judge(&q, Subject::default(), &[], Duration::from_secs(1)).status, Status::Fail);
    }

    #[test]
    fn ptr_is_skipped_only_when_no_ptr_is_served_at_all() {
        let q = question(PTR, Expected::Exactly(BTreeSet::from(["a.ns.svc.cluster.local.".to_string()])));
        let nx = [attempt(Outcome::NxDomain, 1000)];
        let failed = judge(&q, Subject::from_node("n"), &nx.iter().collect::<Vec<_>>(), Duration::from_secs(1));
        let mut results = vec![failed.clone(), failed.clone()];
        skip_ptr_if_unserved(&mut results, std::slice::from_ref(&q));
        assert!(results.iter().all(|r| r.status == Status::Skip));

        let wrong = [attempt(records(&["b.ns.svc.cluster.local."]), 1000)];
        let mut results =
            vec![failed, judge(&q, Subject::from_node("n"), &wrong.iter().collect::<Vec<_>>(), Duration::from_secs(1))];
        skip_ptr_if_unserved(&mut results, std::slice::from_ref(&q));
        assert!(results.iter().all(|r| r.status == Status::Fail), "a wrong PTR means PTR is served");
    }
}
