//! The DNS answers the Kubernetes DNS specification requires, computed from API objects, and the
//! comparison of an answer with them. Pure: no I/O, tested against fixtures.
//!
//! Specification: <https://github.com/kubernetes/dns/blob/master/docs/specification.md>. Where the
//! specification leaves a choice to the server (SRV priority and weight, the name of a headless
//! endpoint without a hostname), the comparison accepts any conforming answer.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;

use crate::runner::endpoints::EndpointAddress;

/// What a correct answer looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Exactly these records (A: addresses; CNAME and PTR: absolute names, lowercase).
    Exactly(BTreeSet<String>),
    /// SRV records, compared on port and target only (priority and weight are the server's choice).
    /// `named` targets must appear as given; `anonymous` more records must each have a distinct
    /// target of one label under `suffix` (headless endpoints without a hostname).
    Srv {
        /// `port target.` pairs that must appear.
        named: BTreeSet<String>,
        /// How many further records, for endpoints without a hostname.
        anonymous: usize,
        /// The port of those further records.
        anonymous_port: u16,
        /// The parent name of those further records' targets (`svc.ns.svc.domain.`).
        suffix: String,
    },
    /// The name does not exist.
    NxDomain,
    /// Any answer with records (a name outside the cluster, whose records netcheck cannot know).
    AnyRecords,
}

impl Expected {
    /// Short text for reports.
    pub fn describe(&self) -> String {
        match self {
            Expected::Exactly(set) => join(set),
            Expected::Srv { named, anonymous, anonymous_port, suffix } => {
                let mut parts: Vec<String> = named.iter().cloned().collect();
                if *anonymous > 0 {
                    parts.push(format!("{anonymous} × {anonymous_port} <label>.{suffix}"));
                }
                parts.join(", ")
            }
            Expected::NxDomain => "NXDOMAIN".into(),
            Expected::AnyRecords => "any records".into(),
        }
    }

    /// Whether `records` (as the agent renders them) are a correct answer.
    pub fn matches(&self, records: &[String]) -> bool {
        match self {
            Expected::Exactly(set) => &normalize(records) == set,
            Expected::Srv { named, anonymous, anonymous_port, suffix } => {
                let got = srv_port_targets(records);
                if got.len() != records.len() || got.len() != named.len() + anonymous {
                    return false;
                }
                let rest: Vec<&String> = got.iter().filter(|r| !named.contains(*r)).collect();
                let prefix = format!("{anonymous_port} ");
                named.iter().all(|n| got.contains(n))
                    && rest.iter().all(|r| {
                        r.strip_prefix(&prefix)
                            .and_then(|target| target.strip_suffix(suffix.as_str()))
                            .and_then(|label| label.strip_suffix('.'))
                            .is_some_and(|label| !label.is_empty() && !label.contains('.'))
                    })
            }
            Expected::NxDomain => false,
            Expected::AnyRecords => !records.is_empty(),
        }
    }
}

/// `labels…svc.domain.`: the absolute, lowercase name under the cluster domain.
pub fn fqdn(labels: &[&str], domain: &str) -> String {
    let mut name = labels.join(".");
    name.push('.');
    name.push_str(domain.trim_matches('.'));
    name.push('.');
    name.to_ascii_lowercase()
}

/// `<svc>.<ns>.svc.<domain>.`
pub fn service_name(svc: &Service, domain: &str) -> String {
    fqdn(&[name_of(svc), ns_of(svc), "svc"], domain)
}

/// The A answer of a Service's name: its ClusterIP, or for a headless Service the ready endpoint
/// addresses (all of them with `publishNotReadyAddresses`). None for ExternalName Services and for a
/// headless Service with no address to publish (the name then does not exist).
pub fn service_a(svc: &Service, endpoints: &[EndpointAddress]) -> Option<Expected> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    match spec.cluster_ip.as_deref() {
        Some("None") => {
            let ips = published(svc, endpoints).map(|e| e.ip.clone()).filter(|ip| is_v4(ip)).collect::<BTreeSet<_>>();
            (!ips.is_empty()).then_some(Expected::Exactly(ips))
        }
        Some(ip) if is_v4(ip) => Some(Expected::Exactly(BTreeSet::from([ip.to_string()]))),
        _ => None,
    }
}

/// The SRV answers for each named port of a Service: `(query name, expected)`. A ClusterIP Service
/// answers its port and its own name; a headless Service one record per published endpoint, at the
/// endpoint's port (`endpoint_port`), targeting `<hostname>.<svc>.<ns>.svc.<domain>.`.
pub fn service_srv(
    svc: &Service,
    endpoints: &[EndpointAddress],
    endpoint_port: impl Fn(&str) -> Option<u16>,
    domain: &str,
) -> Vec<(String, Expected)> {
    let Some(spec) = &svc.spec else { return vec![] };
    if spec.type_.as_deref() == Some("ExternalName") {
        return vec![];
    }
    let own = service_name(svc, domain);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let mut out = Vec::new();
    for port in spec.ports.iter().flatten() {
        let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) else { continue };
        let proto = port.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
        let query = format!("_{port_name}._{proto}.{own}");
        if !headless {
            out.push((query, srv_exactly([format!("{} {own}", port.port)])));
            continue;
        }
        let Some(target_port) = endpoint_port(port_name) else { continue };
        let endpoints: Vec<&EndpointAddress> = published(svc, endpoints).collect();
        if endpoints.is_empty() {
            continue;
        }
        let named = endpoints
            .iter()
            .filter_map(|e| e.hostname.as_deref())
            .map(|h| format!("{target_port} {h}.{own}"))
            .collect::<BTreeSet<_>>();
        let anonymous = endpoints.iter().filter(|e| e.hostname.is_none()).count();
        out.push((query, Expected::Srv { named, anonymous, anonymous_port: target_port, suffix: own.clone() }));
    }
    out
}

/// `<hostname>.<svc>.<ns>.svc.<domain>.` → the pod's address, for each published endpoint of a
/// headless Service that carries a hostname (a pod with `hostname` and `subdomain: <svc>`).
pub fn pod_hostnames(svc: &Service, endpoints: &[EndpointAddress], domain: &str) -> Vec<(String, Expected)> {
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) != Some("None") {
        return vec![];
    }
    published(svc, endpoints)
        .filter_map(|e| {
            let host = e.hostname.as_deref()?;
            let name = fqdn(&[host, name_of(svc), ns_of(svc), "svc"], domain);
            Some((name, Expected::Exactly(BTreeSet::from([e.ip.clone()]))))
        })
        .collect()
}

/// The CNAME an ExternalName Service answers: its `externalName`, absolute.
pub fn external_cname(svc: &Service) -> Option<Expected> {
    let spec = svc.spec.as_ref().filter(|s| s.type_.as_deref() == Some("ExternalName"))?;
    let target = spec.external_name.as_deref()?.trim_end_matches('.').to_ascii_lowercase();
    Some(Expected::Exactly(BTreeSet::from([format!("{target}.")])))
}

/// The PTR query for a Service's IPv4 ClusterIP and the answer: the Service's name.
pub fn cluster_ip_ptr(svc: &Service, domain: &str) -> Option<(String, Expected)> {
    let ip: Ipv4Addr = svc.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok()?;
    Some((reverse_name(ip), Expected::Exactly(BTreeSet::from([service_name(svc, domain)]))))
}

/// `d.c.b.a.in-addr.arpa.` for `a.b.c.d`.
pub fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
}

/// `10.96.0.1`, `target.` or SRV `0 100 80 target.` as agents render them → lowercase, SRV reduced
/// to `port target.`.
fn normalize(records: &[String]) -> BTreeSet<String> {
    records.iter().map(|r| r.to_ascii_lowercase()).collect()
}

fn srv_port_targets(records: &[String]) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| {
            let fields: Vec<&str> = r.split_whitespace().collect();
            match fields.as_slice() {
                [_priority, _weight, port, target] => Some(format!("{port} {}", target.to_ascii_lowercase())),
                _ => None,
            }
        })
        .collect()
}

fn srv_exactly(items: impl IntoIterator<Item = String>) -> Expected {
    Expected::Srv { named: items.into_iter().collect(), anonymous: 0, anonymous_port: 0, suffix: String::new() }
}

fn published<'a>(svc: &Service, endpoints: &'a [EndpointAddress]) -> impl Iterator<Item = &'a EndpointAddress> {
    let all = svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    endpoints.iter().filter(move |e| all || e.ready)
}

fn name_of(svc: &Service) -> &str {
    svc.metadata.name.as_deref().unwrap_or_default()
}

fn ns_of(svc: &Service) -> &str {
    svc.metadata.namespace.as_deref().unwrap_or("default")
}

fn is_v4(ip: &str) -> bool {
    ip.parse::<Ipv4Addr>().is_ok()
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Endpoints;
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    use super::*;
    use crate::runner::endpoints::{from_endpoints, from_slice};

    fn services() -> Vec<Service> {
        serde_json::from_str(include_str!("../../../fixtures/dns/services.json")).unwrap()
    }

    fn service(name: &str) -> Service {
        services().into_iter().find(|s| s.metadata.name.as_deref() == Some(name)).unwrap()
    }

    /// The same headless backends as core/v1 Endpoints (Kubernetes 1.20) and as an EndpointSlice.
    fn headless_endpoints() -> [Vec<EndpointAddress>; 2] {
        let ep: Endpoints = serde_json::from_str(include_str!("../../../fixtures/dns/web-endpoints.json")).unwrap();
        let slice: EndpointSlice =
            serde_json::from_str(include_str!("../../../fixtures/dns/web-endpointslice.json")).unwrap();
        [from_endpoints(&ep).into_iter().collect(), from_slice(&slice)]
    }

    fn set(items: &[&str]) -> Expected {
        Expected::Exactly(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn cluster_ip_service_answers_its_cluster_ip_ptr_and_named_ports() {
        let svc = service("api");
        assert_eq!(service_a(&svc, &[]), Some(set(&["10.96.12.34"])));
        assert_eq!(service_name(&svc, "cluster.local"), "api.shop.svc.cluster.local.");
        let srv = service_srv(&svc, &[], |_| None, "cluster.local");
        assert_eq!(srv.len(), 1, "the unnamed port has no SRV: {srv:?}");
        assert_eq!(srv[0].0, "_http._tcp.api.shop.svc.cluster.local.");
        assert!(srv[0].1.matches(&["0 100 80 api.shop.svc.cluster.local.".into()]));
        assert!(srv[0].1.matches(&["10 50 80 API.shop.svc.cluster.local.".into()]), "priority, weight, case free");
        assert!(!srv[0].1.matches(&["0 100 8080 api.shop.svc.cluster.local.".into()]));
        let (ptr, answer) = cluster_ip_ptr(&svc, "cluster.local").unwrap();
        assert_eq!(ptr, "34.12.96.10.in-addr.arpa.");
        assert_eq!(answer, set(&["api.shop.svc.cluster.local."]));
    }

    #[test]
    fn headless_service_answers_exactly_the_ready_addresses_from_either_api() {
        for endpoints in headless_endpoints() {
            let svc = service("web");
            assert_eq!(service_a(&svc, &endpoints), Some(set(&["10.244.1.5", "10.244.2.7"])), "{endpoints:?}");
            let published_too = Service {
                spec: svc
                    .spec
                    .clone()
                    .map(|s| k8s_openapi::api::core::v1::ServiceSpec { publish_not_ready_addresses: Some(true), ..s }),
                ..svc.clone()
            };
            assert_eq!(service_a(&published_too, &endpoints), Some(set(&["10.244.1.5", "10.244.2.7", "10.244.2.9"])));
        }
    }

    #[test]
    fn headless_srv_has_one_record_per_ready_endpoint() {
        for endpoints in headless_endpoints() {
            let srv = service_srv(&service("web"), &endpoints, |p| (p == "http").then_some(8080), "cluster.local");
            let (name, expected) = &srv[0];
            assert_eq!(name, "_http._tcp.web.shop.svc.cluster.local.");
            let good =
                ["0 50 8080 web-0.web.shop.svc.cluster.local.", "0 50 8080 10-244-2-7.web.shop.svc.cluster.local."];
            assert!(expected.matches(&good.map(String::from)), "{expected:?}");
            let extra = [good[0], good[1], "0 50 8080 10-244-2-9.web.shop.svc.cluster.local."];
            assert!(!expected.matches(&extra.map(String::from)), "a not-ready endpoint must not be listed");
            let nested = [good[0], "0 50 8080 a.b.web.shop.svc.cluster.local."];
            assert!(!expected.matches(&nested.map(String::from)), "one label only");
        }
    }

    #[test]
    fn pod_hostname_and_subdomain_get_an_a_record() {
        for endpoints in headless_endpoints() {
            let names = pod_hostnames(&service("web"), &endpoints, "cluster.local");
            assert_eq!(names, vec![("web-0.web.shop.svc.cluster.local.".to_string(), set(&["10.244.1.5"]))]);
            assert!(pod_hostnames(&service("api"), &endpoints, "cluster.local").is_empty(), "not headless");
        }
    }

    #[test]
    fn external_name_answers_an_absolute_cname_and_no_a() {
        let svc = service("payments");
        assert_eq!(external_cname(&svc), Some(set(&["pay.example.com."])));
        assert_eq!(service_a(&svc, &[]), None);
        assert!(service_srv(&svc, &[], |_| None, "cluster.local").is_empty());
    }

    #[test]
    fn names_are_absolute_and_lowercase() {
        assert_eq!(fqdn(&["A", "b", "svc"], "Cluster.Local."), "a.b.svc.cluster.local.");
        assert_eq!(Expected::NxDomain.describe(), "NXDOMAIN");
        assert!(!Expected::NxDomain.matches(&[]));
    }
}
