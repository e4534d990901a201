//! The `dns/*` checks: every client agent asks the cluster DNS the questions whose answers the
//! Kubernetes DNS specification fixes, and each answer is compared exactly with what the API says
//! (see [`super::dns_expect`]).
//!
//! Order of work: read the API facts; create a fresh Service and time until every node's DNS answers
//! it (so the DNS server has caught up with every object before it: no race of our own making is
//! judged); then one order per client carries every question, so one round answers all selected
//! checks.

mod appearance;
mod diagnose;
mod facts;
mod judge;
mod plan;

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

use super::{params, selected};
use crate::catalog::{CheckSpec, ParamSpec, int, millis, parses_into};
use crate::protocol::{Action, DnsProbe, OrderResult};
use crate::report::{CheckResult, Status, Subject};
use crate::runner::Session;
use crate::runner::channel::OrderFailure;
use crate::scenario::Scenario;

use appearance::new_service_appearance;
use diagnose::{diagnose, no_dns_server};
use facts::read_facts;
use judge::{judge, of_query, skip_ptr_if_unserved, subject};
use plan::plan;

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

fn is_udp(name: &str) -> bool {
    !name.ends_with("(tcp)")
}

async fn ask_every_client(session: &Session, probe: &DnsProbe) -> Vec<(String, Result<OrderResult, OrderFailure>)> {
    session.order_every_client(|_| Action::Dns(probe.clone())).await
}

fn errors(scenario: &Scenario, message: &str) -> Vec<CheckResult> {
    super::errors(SPECS, scenario, message)
}
