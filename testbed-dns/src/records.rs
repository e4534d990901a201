//! Pure translation of Services, Endpoints and Pods into DNS records, following the
//! Kubernetes DNS-based service discovery specification, version 1.1.0.
//!
//! Nothing here touches the network or the file system, so the whole record logic is
//! unit-testable with hand-built objects.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, Endpoints, Pod, Service};

/// The specification version published in the `dns-version` TXT record.
pub const SPEC_VERSION: &str = "1.1.0";

/// Longest textual domain name (without the trailing dot) that still fits in 255 wire octets.
const MAX_NAME_LEN: usize = 253;

/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// The data of one resource record; the owner name lives in [`Record`].
///
/// Variant order is part of the deterministic sort order of a zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RData {
    /// IPv4 address.
    A(Ipv4Addr),
    /// Authoritative name server (absolute name).
    Ns(String),
    /// Alias (absolute name).
    Cname(String),
    /// Reverse pointer (absolute name).
    Ptr(String),
    /// Service location.
    Srv {
        /// Priority: lower is preferred.
        priority: u16,
        /// Relative weight among equal priorities.
        weight: u16,
        /// Port number.
        port: u16,
        /// Target host (absolute name).
        target: String,
    },
    /// One text string, written quoted.
    Txt(String),
}

impl RData {
    /// The record type mnemonic as it appears in a zone file.
    pub fn rtype(&self) -> &'static str {
        match self {
            RData::A(_) => "A",
            RData::Ns(_) => "NS",
            RData::Cname(_) => "CNAME",
            RData::Ptr(_) => "PTR",
            RData::Srv { .. } => "SRV",
            RData::Txt(_) => "TXT",
        }
    }
}

impl fmt::Display for RData {
    /// Formats the RDATA part of a zone file line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RData::A(ip) => write!(f, "{ip}"),
            RData::Ns(n) | RData::Cname(n) | RData::Ptr(n) => f.write_str(n),
            RData::Srv { priority, weight, port, target } => write!(f, "{priority} {weight} {port} {target}"),
            // Only ever built from SPEC_VERSION, which holds no quote or backslash.
            RData::Txt(t) => write!(f, "\"{t}\""),
        }
    }
}

/// One resource record: absolute, lowercase owner name plus data. TTL and class are
/// the same for every record and are added when rendering.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Record {
    /// Absolute owner name with trailing dot, e.g. `kubernetes.default.svc.cluster.local.`.
    pub name: String,
    /// Record data.
    pub data: RData,
}

impl Record {
    fn new(name: impl Into<String>, data: RData) -> Self {
        Record { name: name.into(), data }
    }
}

/// Settings that shape the record set.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// Cluster domain without trailing dot, lowercase, already validated (see [`normalize_domain`]).
    pub domain: String,
    /// Address for the `ns.dns.<domain>.` glue record the NS records point at.
    pub ns_address: Ipv4Addr,
}

impl RecordConfig {
    /// The absolute name every NS record points at.
    pub fn ns_name(&self) -> String {
        format!("ns.dns.{}.", self.domain)
    }

    /// The absolute mailbox name used in SOA records.
    pub fn hostmaster(&self) -> String {
        format!("hostmaster.{}.", self.domain)
    }
}

/// Result of a build: the records plus a description of each object part that was skipped
/// because it would not form a valid name (the caller logs these).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOutput {
    /// Sorted, duplicate-free records for both zones.
    pub records: Vec<Record>,
    /// Human-readable reasons for skipped objects.
    pub skipped: Vec<String>,
}

/// Builds the complete, sorted record set of both zones (`<domain>.` and `in-addr.arpa.`).
///
/// Accepts anything that borrows as the k8s object so reflector snapshots (`Arc<K>`) and
/// plain test values both work.
pub fn build<S, E, P>(cfg: &RecordConfig, services: &[S], endpoints: &[E], pods: &[P]) -> BuildOutput
where
    S: Borrow<Service>,
    E: Borrow<Endpoints>,
    P: Borrow<Pod>,
{
    let mut b = Builder { cfg, records: BTreeSet::new(), skipped: Vec::new() };
    b.apex();

    let by_name: HashMap<(&str, &str), &Endpoints> = endpoints
        .iter()
        .map(Borrow::borrow)
        .filter_map(|ep: &Endpoints| Some(((ep.metadata.namespace.as_deref()?, ep.metadata.name.as_deref()?), ep)))
        .collect();

    for svc in services.iter().map(Borrow::borrow) {
        let (Some(ns), Some(name)) = (svc.metadata.namespace.as_deref(), svc.metadata.name.as_deref()) else {
            continue;
        };
        b.service(ns, name, svc, by_name.get(&(ns, name)).copied());
    }
    for pod in pods.iter().map(Borrow::borrow) {
        b.pod(pod);
    }

    let mut skipped = b.skipped;
    // Stable order so repeated rebuilds log the same way.
    skipped.sort();
    skipped.dedup();
    BuildOutput { records: b.records.into_iter().collect(), skipped }
}

/// Accumulates records; a BTreeSet gives sorting and de-duplication for free, which is
/// what makes an unchanged cluster render a byte-identical zone.
struct Builder<'a> {
    cfg: &'a RecordConfig,
    records: BTreeSet<Record>,
    skipped: Vec<String>,
}

impl Builder<'_> {
    fn add(&mut self, name: String, data: RData) {
        self.records.insert(Record::new(name, data));
    }

    /// Absolute name `<labels...>.<domain>.`, or a skip note if any label is invalid.
    fn name(&mut self, labels: &[&str], what: &str) -> Option<String> {
        match absolute_name(labels, &self.cfg.domain) {
            Ok(n) => Some(n),
            Err(e) => {
                self.skipped.push(format!("{what}: {e}"));
                None
            }
        }
    }

    /// Fixed records: NS for both zones, the NS glue, and the spec version.
    fn apex(&mut self) {
        let d = self.cfg.domain.clone();
        let ns = self.cfg.ns_name();
        self.add(format!("{d}."), RData::Ns(ns.clone()));
        self.add("in-addr.arpa.".to_string(), RData::Ns(ns.clone()));
        self.add(ns, RData::A(self.cfg.ns_address));
        self.add(format!("dns-version.{d}."), RData::Txt(SPEC_VERSION.to_string()));
    }

    fn service(&mut self, ns: &str, name: &str, svc: &Service, ep: Option<&Endpoints>) {
        let Some(spec) = svc.spec.as_ref() else {
            return;
        };
        let what = format!("service {ns}/{name}");
        let Some(svc_name) = self.name(&[name, ns, "svc"], &what) else {
            return;
        };

        // ExternalName first: such services carry no cluster IP at all.
        if spec.type_.as_deref() == Some("ExternalName") {
            let Some(target) = spec.external_name.as_deref() else {
                self.skipped.push(format!("{what}: ExternalName without externalName"));
                return;
            };
            match external_target(target) {
                Ok(t) => self.add(svc_name, RData::Cname(t)),
                Err(e) => self.skipped.push(format!("{what}: externalName: {e}")),
            }
            return;
        }

        match spec.cluster_ip.as_deref() {
            Some("None") => {
                let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
                if let Some(ep) = ep {
                    self.headless(ns, name, &svc_name, ep, publish_not_ready);
                }
            }
            Some(ip) if !ip.is_empty() => {
                // Dual-stack services list every family in clusterIPs; a v1.20 single-stack
                // one may only set clusterIP. Take IPv4 from either.
                let ips: BTreeSet<Ipv4Addr> = std::iter::once(ip)
                    .chain(spec.cluster_ips.iter().flatten().map(String::as_str))
                    .filter_map(parse_v4)
                    .collect();
                if ips.is_empty() {
                    return; // IPv6-only: nothing to publish in an A/in-addr.arpa world.
                }
                for ip in &ips {
                    self.add(svc_name.clone(), RData::A(*ip));
                    self.add(reverse_name(*ip), RData::Ptr(svc_name.clone()));
                }
                for port in spec.ports.iter().flatten() {
                    let pname = port.name.as_deref().unwrap_or("");
                    self.srv(&[name, ns, "svc"], pname, port.protocol.as_deref(), port.port, &svc_name, &what);
                }
            }
            // No cluster IP allocated (yet): nothing to publish.
            _ => {}
        }
    }

    fn headless(&mut self, ns: &str, name: &str, svc_name: &str, ep: &Endpoints, publish_not_ready: bool) {
        let what = format!("service {ns}/{name}");
        for subset in ep.subsets.iter().flatten() {
            let ready = subset.addresses.iter().flatten();
            let not_ready = subset.not_ready_addresses.iter().flatten().filter(|_| publish_not_ready);
            let addrs: Vec<&EndpointAddress> = ready.chain(not_ready).collect();
            for addr in addrs {
                let Some(ip) = parse_v4(&addr.ip) else {
                    continue; // IPv6 or garbage: not representable here.
                };
                self.add(svc_name.to_string(), RData::A(ip));

                let explicit = addr.hostname.as_deref().filter(|h| !h.is_empty());
                let host = explicit.map(str::to_ascii_lowercase).unwrap_or_else(|| dashed(ip));
                let Some(host_name) = self.name(&[&host, name, ns, "svc"], &what) else {
                    continue;
                };
                self.add(host_name.clone(), RData::A(ip));
                // Spec: PTR only for endpoints that have a real hostname.
                if explicit.is_some() {
                    self.add(reverse_name(ip), RData::Ptr(host_name.clone()));
                }
                for port in subset.ports.iter().flatten() {
                    self.endpoint_srv(name, ns, port, &host_name, &what);
                }
            }
        }
    }

    fn endpoint_srv(&mut self, svc: &str, ns: &str, port: &EndpointPort, target: &str, what: &str) {
        let pname = port.name.as_deref().unwrap_or("");
        self.srv(&[svc, ns, "svc"], pname, port.protocol.as_deref(), port.port, target, what);
    }

    /// `_<port>._<proto>.<base>. SRV 0 100 <port> <target>` for a named port.
    fn srv(&mut self, base: &[&str], port_name: &str, protocol: Option<&str>, port: i32, target: &str, what: &str) {
        if port_name.is_empty() {
            return; // Spec: SRV records exist only for named ports.
        }
        let Ok(port_num) = u16::try_from(port) else {
            self.skipped.push(format!("{what}: port {port_name} number {port} out of range"));
            return;
        };
        // The API defaults protocol to TCP; an absent field means TCP.
        let proto = protocol.unwrap_or("TCP").to_ascii_lowercase();
        let port_label = format!("_{}", port_name.to_ascii_lowercase());
        let proto_label = format!("_{proto}");
        let mut labels = vec![port_label.as_str(), proto_label.as_str()];
        labels.extend_from_slice(base);
        let Some(owner) = self.name(&labels, what) else {
            return;
        };
        self.add(owner, RData::Srv { priority: 0, weight: 100, port: port_num, target: target.to_string() });
    }

    /// `pods verified`: `<a-b-c-d>.<ns>.pod.<domain>.` for each Running pod's IPv4 address.
    fn pod(&mut self, pod: &Pod) {
        let Some(ns) = pod.metadata.namespace.as_deref() else {
            return;
        };
        let Some(status) = pod.status.as_ref() else {
            return;
        };
        if status.phase.as_deref() != Some("Running") {
            return;
        }
        let pod_name = pod.metadata.name.as_deref().unwrap_or("?");
        let what = format!("pod {ns}/{pod_name}");
        let ips: BTreeSet<Ipv4Addr> = status
            .pod_ip
            .iter()
            .map(String::as_str)
            .chain(status.pod_ips.iter().flatten().map(|p| p.ip.as_str()))
            .filter_map(parse_v4)
            .collect();
        for ip in ips {
            let host = dashed(ip);
            if let Some(n) = self.name(&[&host, ns, "pod"], &what) {
                self.add(n, RData::A(ip));
            }
        }
    }
}

/// Parses an IPv4 address; IPv6 and malformed strings give `None` (both are skipped).
fn parse_v4(s: &str) -> Option<Ipv4Addr> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => Some(v4),
        _ => None,
    }
}

/// `10.244.1.5` -> `10-244-1-5`, the system-assigned endpoint / pod hostname.
pub fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

/// `10.96.0.1` -> `1.0.96.10.in-addr.arpa.`.
pub fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
}

/// Why a name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A label has characters or a shape DNS (RFC 1123) does not allow.
    #[error("invalid DNS label {0:?}")]
    Label(String),
    /// The whole name exceeds 253 characters.
    #[error("name {0:?} is longer than {MAX_NAME_LEN} characters")]
    TooLong(String),
}

/// RFC 1123 hostname label, lowercase only; SRV's service and protocol labels get one
/// leading underscore (RFC 2782).
fn label_ok(label: &str) -> bool {
    let body = label.strip_prefix('_').unwrap_or(label);
    let bytes = body.as_bytes();
    !body.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && bytes.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Joins labels and the domain into an absolute name, validating every label.
///
/// Labels are lowercased first because DNS is case-insensitive and the zone must be
/// canonical; anything still invalid afterwards is rejected rather than escaped.
pub fn absolute_name(labels: &[&str], domain: &str) -> Result<String, NameError> {
    let mut out = String::new();
    for l in labels {
        let l = l.to_ascii_lowercase();
        if !label_ok(&l) {
            return Err(NameError::Label(l));
        }
        out.push_str(&l);
        out.push('.');
    }
    out.push_str(domain);
    if out.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(out));
    }
    out.push('.');
    Ok(out)
}

/// Validates and lowercases a cluster domain such as `cluster.local` (a trailing dot is
/// accepted and removed). Returns it without the trailing dot.
pub fn normalize_domain(domain: &str) -> Result<String, NameError> {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() {
        return Err(NameError::Label(d));
    }
    for l in d.split('.') {
        if l.starts_with('_') || !label_ok(l) {
            return Err(NameError::Label(l.to_string()));
        }
    }
    if d.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(d));
    }
    Ok(d)
}

/// An ExternalName target as an absolute name. The API only requires a DNS-1123
/// subdomain, so underscores (seen in the wild in CNAME targets) are accepted too.
fn external_target(target: &str) -> Result<String, NameError> {
    let t = target.strip_suffix('.').unwrap_or(target).to_ascii_lowercase();
    if t.is_empty() || t.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(t));
    }
    for l in t.split('.') {
        let ok = !l.is_empty()
            && l.len() <= MAX_LABEL_LEN
            && l.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-');
        if !ok {
            return Err(NameError::Label(l.to_string()));
        }
    }
    Ok(format!("{t}."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> RecordConfig {
        RecordConfig { domain: "cluster.local".into(), ns_address: Ipv4Addr::new(10, 250, 0, 1) }
    }

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).expect("service json")
    }

    fn eps(v: serde_json::Value) -> Endpoints {
        serde_json::from_value(v).expect("endpoints json")
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod json")
    }

    fn a(ip: [u8; 4]) -> RData {
        RData::A(Ipv4Addr::from(ip))
    }

    fn srv(port: u16, target: &str) -> RData {
        RData::Srv { priority: 0, weight: 100, port, target: target.into() }
    }

    /// Records whose owner name is `name`.
    fn at<'a>(out: &'a BuildOutput, name: &str) -> Vec<&'a RData> {
        out.records.iter().filter(|r| r.name == name).map(|r| &r.data).collect()
    }

    fn build_only(services: &[Service], endpoints: &[Endpoints], pods: &[Pod]) -> BuildOutput {
        build(&cfg(), services, endpoints, pods)
    }

    /// The four fixed records every build has.
    const APEX: usize = 4;

    fn cluster_ip_svc() -> Service {
        svc(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.12.34",
                "clusterIPs": ["10.96.12.34"],
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "Sig", "port": 9999, "protocol": "SCTP"},
                    {"port": 8080, "protocol": "TCP"}
                ]
            }
        }))
    }

    #[test]
    fn apex_records_present_for_empty_cluster() {
        let out = build_only(&[], &[], &[]);
        assert_eq!(out.records.len(), APEX);
        assert_eq!(at(&out, "cluster.local."), vec![&RData::Ns("ns.dns.cluster.local.".into())]);
        assert_eq!(at(&out, "in-addr.arpa."), vec![&RData::Ns("ns.dns.cluster.local.".into())]);
        assert_eq!(at(&out, "ns.dns.cluster.local."), vec![&a([10, 250, 0, 1])]);
        assert_eq!(at(&out, "dns-version.cluster.local."), vec![&RData::Txt("1.1.0".into())]);
    }

    #[test]
    fn cluster_ip_service_gets_a_ptr_and_srv_per_named_port() {
        let out = build_only(&[cluster_ip_svc()], &[], &[]);
        let name = "web.shop.svc.cluster.local.";
        assert_eq!(at(&out, name), vec![&a([10, 96, 12, 34])]);
        assert_eq!(at(&out, "34.12.96.10.in-addr.arpa."), vec![&RData::Ptr(name.into())]);
        assert_eq!(at(&out, "_http._tcp.web.shop.svc.cluster.local."), vec![&srv(80, name)]);
        assert_eq!(at(&out, "_dns._udp.web.shop.svc.cluster.local."), vec![&srv(53, name)]);
        // Port names are lowercased; SCTP maps to _sctp.
        assert_eq!(at(&out, "_sig._sctp.web.shop.svc.cluster.local."), vec![&srv(9999, name)]);
        // A + PTR + 3 SRV (the unnamed 8080 port gets none).
        assert_eq!(out.records.len(), APEX + 5);
        assert!(out.skipped.is_empty());
    }

    #[test]
    fn port_without_protocol_defaults_to_tcp() {
        let s = svc(json!({
            "metadata": {"name": "api", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "https", "port": 443}]}
        }));
        let out = build_only(&[s], &[], &[]);
        assert_eq!(
            at(&out, "_https._tcp.api.default.svc.cluster.local."),
            vec![&srv(443, "api.default.svc.cluster.local.")]
        );
    }

    #[test]
    fn ipv6_cluster_ip_is_ignored_but_dual_stack_v4_is_used() {
        let v6_only = svc(json!({
            "metadata": {"name": "six", "namespace": "default"},
            "spec": {"clusterIP": "fd00::10", "clusterIPs": ["fd00::10"],
                     "ports": [{"name": "http", "port": 80}]}
        }));
        let dual = svc(json!({
            "metadata": {"name": "dual", "namespace": "default"},
            "spec": {"clusterIP": "fd00::11", "clusterIPs": ["fd00::11", "10.96.0.11"]}
        }));
        let out = build_only(&[v6_only, dual], &[], &[]);
        assert!(at(&out, "six.default.svc.cluster.local.").is_empty());
        assert!(at(&out, "_http._tcp.six.default.svc.cluster.local.").is_empty());
        assert_eq!(at(&out, "dual.default.svc.cluster.local."), vec![&a([10, 96, 0, 11])]);
        // Only dual's A + PTR beyond the apex: nothing with an IPv6 address leaked in.
        assert_eq!(out.records.len(), APEX + 2);
    }

    fn headless_svc(publish_not_ready: bool) -> Service {
        svc(json!({
            "metadata": {"name": "db", "namespace": "data"},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": publish_not_ready,
                "ports": [{"name": "pg", "port": 5432}]
            }
        }))
    }

    fn headless_eps() -> Endpoints {
        eps(json!({
            "metadata": {"name": "db", "namespace": "data"},
            "subsets": [{
                "addresses": [
                    {"ip": "10.244.1.5"},
                    {"ip": "10.244.2.7", "hostname": "db-0"},
                    {"ip": "fd00::5"}
                ],
                "notReadyAddresses": [{"ip": "10.244.3.9", "hostname": "db-1"}],
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]
            }]
        }))
    }

    #[test]
    fn headless_ready_addresses_only_by_default() {
        let out = build_only(&[headless_svc(false)], &[headless_eps()], &[]);
        let svc_name = "db.data.svc.cluster.local.";
        assert_eq!(at(&out, svc_name), vec![&a([10, 244, 1, 5]), &a([10, 244, 2, 7])]);
        // System-assigned hostname for the address without one.
        assert_eq!(at(&out, "10-244-1-5.db.data.svc.cluster.local."), vec![&a([10, 244, 1, 5])]);
        // StatefulSet-style hostname.
        assert_eq!(at(&out, "db-0.db.data.svc.cluster.local."), vec![&a([10, 244, 2, 7])]);
        // PTR only for the address with an explicit hostname.
        assert_eq!(at(&out, "7.2.244.10.in-addr.arpa."), vec![&RData::Ptr("db-0.db.data.svc.cluster.local.".into())]);
        assert!(at(&out, "5.1.244.10.in-addr.arpa.").is_empty());
        // One SRV per address, each targeting that address's hostname.
        assert_eq!(
            at(&out, "_pg._tcp.db.data.svc.cluster.local."),
            vec![&srv(5432, "10-244-1-5.db.data.svc.cluster.local."), &srv(5432, "db-0.db.data.svc.cluster.local."),]
        );
        // The not-ready db-1 is absent.
        assert!(at(&out, "db-1.db.data.svc.cluster.local.").is_empty());
        assert!(at(&out, "9.3.244.10.in-addr.arpa.").is_empty());
        // 2 service A + 2 host A + 1 PTR + 2 SRV.
        assert_eq!(out.records.len(), APEX + 7);
    }

    #[test]
    fn headless_publish_not_ready_includes_not_ready_addresses() {
        let out = build_only(&[headless_svc(true)], &[headless_eps()], &[]);
        assert_eq!(
            at(&out, "db.data.svc.cluster.local."),
            vec![&a([10, 244, 1, 5]), &a([10, 244, 2, 7]), &a([10, 244, 3, 9])]
        );
        assert_eq!(at(&out, "db-1.db.data.svc.cluster.local."), vec![&a([10, 244, 3, 9])]);
        assert_eq!(at(&out, "9.3.244.10.in-addr.arpa."), vec![&RData::Ptr("db-1.db.data.svc.cluster.local.".into())]);
        assert_eq!(at(&out, "_pg._tcp.db.data.svc.cluster.local.").len(), 3);
    }

    #[test]
    fn headless_without_endpoints_or_ready_addresses_has_no_a() {
        let none = build_only(&[headless_svc(false)], &[], &[]);
        assert_eq!(none.records.len(), APEX);

        let only_not_ready = eps(json!({
            "metadata": {"name": "db", "namespace": "data"},
            "subsets": [{"notReadyAddresses": [{"ip": "10.244.3.9"}]}]
        }));
        let out = build_only(&[headless_svc(false)], &[only_not_ready], &[]);
        assert_eq!(out.records.len(), APEX);
    }

    #[test]
    fn endpoints_of_other_namespace_do_not_leak() {
        let mut other = headless_eps();
        other.metadata.namespace = Some("elsewhere".into());
        let out = build_only(&[headless_svc(false)], &[other], &[]);
        assert_eq!(out.records.len(), APEX);
    }

    #[test]
    fn external_name_is_absolute_cname_without_a() {
        let s = svc(json!({
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "Example.COM",
                     "ports": [{"name": "http", "port": 80}]}
        }));
        let out = build_only(&[s], &[], &[]);
        assert_eq!(at(&out, "ext.default.svc.cluster.local."), vec![&RData::Cname("example.com.".into())]);
        // CNAME must be alone at its name and ExternalName gets no SRV.
        assert_eq!(out.records.len(), APEX + 1);
    }

    #[test]
    fn external_name_with_trailing_dot_is_not_doubled() {
        let s = svc(json!({
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "db.example.org."}
        }));
        let out = build_only(&[s], &[], &[]);
        assert_eq!(at(&out, "ext.default.svc.cluster.local."), vec![&RData::Cname("db.example.org.".into())]);
    }

    #[test]
    fn running_pods_get_dashed_a_records() {
        let running = pod(json!({
            "metadata": {"name": "p1", "namespace": "shop"},
            "status": {"phase": "Running", "podIP": "10.244.1.20",
                       "podIPs": [{"ip": "10.244.1.20"}, {"ip": "fd00::20"}]}
        }));
        let pending = pod(json!({
            "metadata": {"name": "p2", "namespace": "shop"},
            "status": {"phase": "Pending", "podIP": "10.244.1.21"}
        }));
        let v6 = pod(json!({
            "metadata": {"name": "p3", "namespace": "shop"},
            "status": {"phase": "Running", "podIP": "fd00::22"}
        }));
        let no_ip = pod(json!({
            "metadata": {"name": "p4", "namespace": "shop"},
            "status": {"phase": "Running"}
        }));
        let out = build_only(&[], &[], &[running, pending, v6, no_ip]);
        assert_eq!(at(&out, "10-244-1-20.shop.pod.cluster.local."), vec![&a([10, 244, 1, 20])]);
        assert_eq!(out.records.len(), APEX + 1);
    }

    #[test]
    fn invalid_names_are_skipped_and_reported() {
        let bad_port = svc(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.5", "ports": [{"name": "bad_name", "port": 80}]}
        }));
        let bad_host = eps(json!({
            "metadata": {"name": "db", "namespace": "data"},
            "subsets": [{"addresses": [{"ip": "10.244.0.9", "hostname": "-nope"}]}]
        }));
        let out = build_only(&[bad_port, headless_svc(false)], &[bad_host], &[]);
        // The service A/PTR survive; only the bad SRV and the bad hostname are dropped.
        assert_eq!(at(&out, "web.shop.svc.cluster.local."), vec![&a([10, 96, 0, 5])]);
        assert_eq!(at(&out, "db.data.svc.cluster.local."), vec![&a([10, 244, 0, 9])]);
        assert!(out.records.iter().all(|r| !r.name.contains("nope")));
        assert!(out.records.iter().all(|r| !r.name.contains("bad")));
        assert_eq!(out.skipped.len(), 2, "{:?}", out.skipped);
        assert!(out.skipped.iter().any(|s| s.contains("service shop/web")));
        assert!(out.skipped.iter().any(|s| s.contains("service data/db")));
    }

    #[test]
    fn output_is_sorted_deduplicated_and_input_order_independent() {
        let s1 = cluster_ip_svc();
        let s2 = headless_svc(true);
        let e = headless_eps();
        // Duplicated subset: identical records must collapse.
        let mut e_dup = e.clone();
        let subset = e_dup.subsets.as_ref().unwrap()[0].clone();
        e_dup.subsets.as_mut().unwrap().push(subset);

        let fwd = build_only(&[s1.clone(), s2.clone()], std::slice::from_ref(&e), &[]);
        let rev = build_only(&[s2, s1], &[e_dup], &[]);
        assert_eq!(fwd, rev);
        let mut sorted = fwd.records.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(fwd.records, sorted);
    }

    #[test]
    fn names_and_reverse_helpers() {
        assert_eq!(reverse_name(Ipv4Addr::new(10, 96, 0, 1)), "1.0.96.10.in-addr.arpa.");
        assert_eq!(dashed(Ipv4Addr::new(10, 244, 1, 5)), "10-244-1-5");
        assert_eq!(absolute_name(&["A", "b"], "cluster.local").unwrap(), "a.b.cluster.local.");
        assert!(absolute_name(&["a.b"], "cluster.local").is_err());
        assert!(absolute_name(&[""], "cluster.local").is_err());
        assert!(absolute_name(&[&"x".repeat(64)], "cluster.local").is_err());
        let long = "x".repeat(63);
        assert!(matches!(absolute_name(&[&long, &long, &long, &long], "cluster.local"), Err(NameError::TooLong(_))));
        assert_eq!(normalize_domain("Cluster.Local.").unwrap(), "cluster.local");
        assert!(normalize_domain("bad..domain").is_err());
        assert!(normalize_domain("").is_err());
    }

    #[test]
    fn custom_domain_is_used_everywhere() {
        let c = RecordConfig { domain: "k8s.test".into(), ns_address: Ipv4Addr::new(192, 0, 2, 53) };
        let out = build(&c, &[cluster_ip_svc()], &[] as &[Endpoints], &[] as &[Pod]);
        assert!(
            out.records.iter().all(|r| {
                r.name == "k8s.test." || r.name.ends_with(".k8s.test.") || r.name.ends_with("in-addr.arpa.")
            })
        );
        assert!(out.records.iter().any(|r| r.name == "web.shop.svc.k8s.test."));
        assert_eq!(c.ns_name(), "ns.dns.k8s.test.");
    }
}
