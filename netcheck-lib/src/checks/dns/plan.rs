//! The questions of the selected checks, each with the answer the API facts require.

use super::facts::{DNS_PORT, Facts};
use super::{EXTERNAL, EXTERNALNAME, HEADLESS, NEGATIVE, PER_SERVER, POD_HOSTNAME, PTR, SEARCH_PATH, SERVICE_A, SRV};
use crate::checks::dns_expect::{self, Expected};
use crate::checks::selected;
use crate::protocol::{DnsQuery, HTTP_PORT, UDP_PORT};
use crate::runner::manifests::ECHO_SERVICE;
use crate::scenario::Scenario;

/// One question for every client, and the answer it must get.
#[derive(Debug, Clone)]
pub(super) struct Question {
    pub(super) check: &'static str,
    pub(super) query: DnsQuery,
    pub(super) expected: Expected,
}

/// The questions of the selected checks.
pub(super) fn plan(f: &Facts, scenario: &Scenario, external_name: Option<&str>) -> Vec<Question> {
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
