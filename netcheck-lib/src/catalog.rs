//! The catalog of checks: their stable ids, what they prove, and the parameters a scenario may set.
//!
//! Adding a check to the catalog is one entry in [`CHECKS`]; scenario validation, defaults and
//! `--check`/`--skip` all read from here.

/// One order's attempts travel back in one ConfigMap: the request counts are bounded by it.
use crate::protocol::MAX_ATTEMPTS_PER_ORDER as MAX_ATTEMPTS;
use std::fmt;
use std::time::Duration;

/// A check as the catalog describes it.
#[derive(Debug)]
pub struct CheckSpec {
    /// Stable id, `area/name`, e.g. `clusterip/reachable`.
    pub id: &'static str,
    /// Short title for listings.
    pub title: &'static str,
    /// What a pass proves, in one or two sentences.
    pub description: &'static str,
    /// Parameters a scenario may set, with their defaults.
    pub params: &'static [ParamSpec],
}

impl CheckSpec {
    /// The parameter called `name`, if this check has one.
    pub fn param(&self, name: &str) -> Option<&'static ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Names of this check's parameters, comma-separated, for error messages.
    pub fn param_names(&self) -> String {
        let names: Vec<&str> = self.params.iter().map(|p| p.name).collect();
        names.join(", ")
    }
}

/// One parameter of a check.
#[derive(Debug)]
pub struct ParamSpec {
    /// camelCase name as written in scenarios.
    pub name: &'static str,
    /// Type and allowed range.
    pub kind: ParamKind,
    /// Value used when a scenario does not set the parameter.
    pub default: ParamValue,
    /// One sentence: what the parameter controls.
    pub doc: &'static str,
}

/// Type and inclusive range of a parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamKind {
    /// A whole number.
    Int {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A real number.
    Float {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// `true` or `false`.
    Bool,
    /// A duration written as whole milliseconds.
    DurationMs {
        /// Shortest allowed duration in ms.
        min: u64,
        /// Longest allowed duration in ms.
        max: u64,
    },
}

impl ParamKind {
    /// What a value of this kind looks like, for error messages ("an integer", …).
    pub fn expected(&self) -> &'static str {
        match self {
            ParamKind::Int { .. } => "an integer",
            ParamKind::Float { .. } => "a number",
            ParamKind::Bool => "true or false",
            ParamKind::DurationMs { .. } => "a whole number of milliseconds",
        }
    }

    /// Whether `value` has this kind and lies within its range.
    pub fn admits(&self, value: ParamValue) -> bool {
        match (*self, value) {
            (ParamKind::Int { min, max }, ParamValue::Int(v)) => (min..=max).contains(&v),
            (ParamKind::Float { min, max }, ParamValue::Float(v)) => (min..=max).contains(&v),
            (ParamKind::Bool, ParamValue::Bool(_)) => true,
            (ParamKind::DurationMs { min, max }, ParamValue::Duration(d)) => {
                (u128::from(min)..=u128::from(max)).contains(&d.as_millis())
            }
            _ => false,
        }
    }

    /// The allowed range, e.g. `between 1 and 10000`; `None` for kinds without one.
    pub fn range(&self) -> Option<String> {
        match self {
            ParamKind::Int { min, max } => Some(format!("between {min} and {max}")),
            ParamKind::Float { min, max } => Some(format!("between {min} and {max}")),
            ParamKind::Bool => None,
            ParamKind::DurationMs { min, max } => Some(format!("between {min} and {max} ms")),
        }
    }
}

/// A parameter's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamValue {
    /// For [`ParamKind::Int`].
    Int(i64),
    /// For [`ParamKind::Float`].
    Float(f64),
    /// For [`ParamKind::Bool`].
    Bool(bool),
    /// For [`ParamKind::DurationMs`].
    Duration(Duration),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Bool(v) => write!(f, "{v}"),
            ParamValue::Duration(d) => write!(f, "{} ms", d.as_millis()),
        }
    }
}

const fn int(name: &'static str, min: i64, max: i64, default: i64, doc: &'static str) -> ParamSpec {
    ParamSpec { name, kind: ParamKind::Int { min, max }, default: ParamValue::Int(default), doc }
}

const fn float(name: &'static str, min: f64, max: f64, default: f64, doc: &'static str) -> ParamSpec {
    ParamSpec { name, kind: ParamKind::Float { min, max }, default: ParamValue::Float(default), doc }
}

const fn millis(name: &'static str, min: u64, max: u64, default: u64, doc: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        kind: ParamKind::DurationMs { min, max },
        default: ParamValue::Duration(Duration::from_millis(default)),
        doc,
    }
}

/// Per-request timeout shared by the probing checks.
const TIMEOUT_MS: ParamSpec =
    millis("timeoutMs", 1, 60_000, 2_000, "How long one request may take before it counts as failed.");

/// Every check netcheck knows, in the order reports list them.
pub static CHECKS: &[CheckSpec] = &[
    CheckSpec {
        id: "clusterip/reachable",
        title: "ClusterIP reachable from every node",
        description: "From each node's client, N requests to the ClusterIP succeed.",
        params: &[
            int("requests", 1, MAX_ATTEMPTS as i64, 20, "Requests each client sends to the ClusterIP."),
            TIMEOUT_MS,
        ],
    },
    CheckSpec {
        id: "clusterip/all-backends",
        title: "ClusterIP reaches every ready backend",
        description: "From each node, the set of backends that answered equals the set of ready \
                      endpoints from the API.",
        params: &[],
    },
    CheckSpec {
        id: "pod/direct",
        title: "Pod IPs reachable from every node",
        description: "Each client reaches each backend pod IP directly, bypassing the Service.",
        params: &[
            int(
                "requestsPerBackend",
                1,
                MAX_ATTEMPTS as i64 / 3,
                3,
                "Requests each client sends to each backend pod IP.",
            ),
            TIMEOUT_MS,
        ],
    },
    CheckSpec {
        id: "lb/distribution",
        title: "Load spread evenly over backends",
        description: "A fresh connection per request; a chi-square test of evenness over the \
                      backends that answered.",
        params: &[
            int("requests", 10, MAX_ATTEMPTS as i64, 300, "Requests each client sends, one connection each."),
            float("minPValue", 0.0, 1.0, 0.001, "Fail when the chi-square p-value of an even split falls below this."),
            float(
                "minShareOfFair",
                0.0,
                1.0,
                0.5,
                "Fail when the least-served backend gets less than this share of its fair count.",
            ),
            int("concurrency", 1, 256, 32, "Requests in flight at once per client."),
        ],
    },
    CheckSpec {
        id: "nodeport/every-node",
        title: "NodePort answers on every node address",
        description: "From every client (and from the runner when it can reach the nodes), every node's \
                      InternalIP and ExternalIP on the node port answers: one result per source × target × address.",
        params: &[
            int("requests", 1, 1_000, 3, "Requests per source, target node and address."),
            TIMEOUT_MS,
            int("targetNodes", 0, 100_000, 0, "Probe only the first N Ready nodes (by name) as targets; 0: all."),
        ],
    },
    CheckSpec {
        id: "nodeport/local-policy",
        title: "externalTrafficPolicy Local keeps the source and the node",
        description: "From the runner, a NodePort with externalTrafficPolicy Local answers on nodes with a \
                      ready backend, the backend sees the runner's own address, and nodes without one do not forward.",
        params: &[
            int("requests", 1, 1_000, 5, "Requests per node."),
            millis("timeoutMs", 1, 60_000, 1_000, "How long one request may take before it counts as failed."),
        ],
    },
    CheckSpec {
        id: "clusterip/session-affinity",
        title: "ClientIP session affinity pins a client to one backend",
        description: "With sessionAffinity ClientIP, every request of one client lands on one backend; \
                      with None, the same client's requests spread over several.",
        params: &[int("requests", 2, 1_000, 20, "Requests each client sends, one connection each.")],
    },
    CheckSpec {
        id: "clusterip/udp",
        title: "UDP through the ClusterIP from every node",
        description: "UDP request/response exchanges through the ClusterIP from every node; retries after a \
                      lost datagram are counted and reported as loss.",
        params: &[
            int("requests", 1, 1_000, 10, "Exchanges each client makes."),
            millis("timeoutMs", 1, 60_000, 500, "How long one try waits for the echo."),
            int("retries", 0, 10, 2, "Extra tries of an exchange after a timeout."),
        ],
    },
    CheckSpec {
        id: "service/no-endpoints",
        title: "A Service without endpoints is refused at once",
        description: "A ClusterIP whose selector matches nothing is actively rejected (connection refused), \
                      not left to time out.",
        params: &[millis("promptMs", 1, 60_000, 1_000, "A refusal must come within this time.")],
    },
    CheckSpec {
        id: "dns/service-a",
        title: "A Service's name answers exactly its ClusterIP, over UDP and TCP",
        description: "From every client, `<svc>.<ns>.svc.<domain>` asked of the cluster DNS Service over UDP and \
                      over TCP answers exactly the ClusterIP; latency percentiles per node, and the time a new \
                      Service took to appear in DNS.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
    },
    CheckSpec {
        id: "dns/search-path",
        title: "Short names resolve through the pod's search path",
        description: "`<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc` and `kubernetes.default` resolve through the pod's own \
                      resolv.conf (search list, ndots), as an application sees them, to the right ClusterIP.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
    },
    CheckSpec {
        id: "dns/headless",
        title: "A headless Service answers exactly its ready pod IPs",
        description: "A headless Service's name answers exactly the set of ready backend addresses the API lists \
                      (not-ready ones only with publishNotReadyAddresses).",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
    },
    CheckSpec {
        id: "dns/srv",
        title: "SRV records for named ports",
        description: "`_<port>._<proto>.<svc>.<ns>.svc.<domain>` answers the port and the Service's name; for a \
                      headless Service one record per ready endpoint at the endpoint's port.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
    },
    CheckSpec {
        id: "dns/pod-hostname",
        title: "A pod with hostname and subdomain has its own name",
        description: "Each client agent sets `hostname` and `subdomain` (a headless Service); \
                      `<hostname>.<subdomain>.<ns>.svc.<domain>` answers exactly that pod's IP.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
    },
    CheckSpec {
        id: "dns/externalname",
        title: "An ExternalName Service answers a CNAME",
        description: "An ExternalName Service's name answers a CNAME to its externalName (asked as CNAME; the \
                      target, under .invalid, need not resolve).",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
    },
    CheckSpec {
        id: "dns/negative",
        title: "A name that does not exist answers NXDOMAIN promptly",
        description: "A name under the run's namespace that no object defines answers NXDOMAIN, within promptMs, \
                      rather than timing out or answering something.",
        params: &[DNS_ATTEMPTS, millis("promptMs", 1, 60_000, 1_000, "NXDOMAIN must come within this time.")],
    },
    CheckSpec {
        id: "dns/ptr",
        title: "A ClusterIP's reverse name answers the Service's name",
        description: "The in-addr.arpa name of the ClusterIP answers a PTR to `<svc>.<ns>.svc.<domain>`; skipped \
                      with the reason when the server serves no PTR for ClusterIPs at all.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
    },
    CheckSpec {
        id: "dns/per-server",
        title: "Every DNS endpoint answers on its own",
        description: "The Service name query sent to each endpoint behind the cluster DNS Service directly, so \
                      that one broken replica is named even when the Service IP mostly works.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
    },
    CheckSpec {
        id: "dns/external",
        title: "A name outside the cluster resolves (opt-in)",
        description: "Only with --external-name NAME: that name resolves through the pod's resolv.conf from every \
                      node. Skipped otherwise; netcheck never picks an outside name on its own.",
        params: &[DNS_ATTEMPTS, DNS_TIMEOUT_MS],
    },
    CheckSpec {
        id: "endpoints/readiness-removal",
        title: "A backend that turns not ready leaves the API, every node's data plane and DNS",
        description: "One server agent's readiness probe starts failing by order while every client sends paced \
                      requests through the ClusterIP and asks DNS for the headless Service. Measures, from the switch \
                      and per node: (a) the API lists the endpoint not ready, (b) the node's data plane stops sending \
                      to it for at least sustainedRequests answered requests, (c) the headless DNS answer drops it.",
        params: READINESS_PARAMS,
    },
    CheckSpec {
        id: "endpoints/readiness-readd",
        title: "A backend that turns ready again comes back everywhere",
        description: "The same agent turns ready again: the same three times, until the API lists it ready, it \
                      answers through the ClusterIP from every node, and the headless DNS answer has it again.",
        params: READINESS_PARAMS,
    },
    CheckSpec {
        id: "endpoints/unready-at-start",
        title: "A backend that starts not ready gets no traffic until it is ready",
        description: "A server agent is created with its readiness off: while it runs not ready, no request from \
                      any node reaches it through the ClusterIP; once switched ready, it is added (API, data plane, \
                      DNS times as for readiness-readd).",
        params: READINESS_PARAMS,
    },
    CheckSpec {
        id: "endpoints/rollout",
        title: "A rolling update drops no traffic",
        description: "A Deployment of 3 agents behind its own Service is replaced by a rolling update (surge 1, \
                      unavailable 0, graceful shutdown) while every client sends paced requests through its \
                      ClusterIP; per node, failed requests and the longest gap between answers must stay in budget.",
        params: &[
            millis("intervalMs", 5, 1_000, 50, "Pace of requests per client; the resolution of the gap."),
            int("maxFailedRequests", 0, 1_000_000, 0, "Failed requests per node the rollout may cause."),
            millis("maxGapMs", 1, 600_000, 1_000, "Longest time per node without an answer."),
            millis("rolloutTimeoutMs", 1_000, 3_600_000, 120_000, "Limit for the rollout to complete."),
        ],
    },
];

/// Parameters of the readiness experiments (removal and re-add run as one experiment each).
const READINESS_PARAMS: &[ParamSpec] = &[
    millis("intervalMs", 5, 1_000, 20, "Pace of requests and DNS queries per client; the resolution of (b) and (c)."),
    int("sustainedRequests", 1, 10_000, 100, "Answered requests in a row without the removed pod that prove removal."),
    millis("maxApiMs", 100, 120_000, 4_000, "Limit for (a), from the switch (kubelet probe period 1 s included)."),
    millis("maxPropagationMs", 10, 120_000, 2_000, "Further limit for (b) and (c) beyond maxApiMs."),
    millis(
        "maxDnsCacheMs",
        0,
        300_000,
        30_000,
        "How long the cluster DNS may keep serving a cached answer: (c) may take the answer's TTL longer than \
         (b), up to this (CoreDNS as kubeadm, kind and AKS configure it: ttl 30, cache 30).",
    ),
];

/// Sends of each DNS query per client.
const DNS_ATTEMPTS: ParamSpec = int("attempts", 1, 100, 3, "Sends of each query from each client.");
/// How long one DNS query may take.
const DNS_TIMEOUT_MS: ParamSpec =
    millis("timeoutMs", 1, 60_000, 2_000, "How long one query may take before it counts as failed.");

/// The check with this id.
///
/// ```
/// assert!(netcheck::catalog::find("dns/headless").is_some());
/// assert!(netcheck::catalog::find("dns/nope").is_none());
/// ```
pub fn find(id: &str) -> Option<&'static CheckSpec> {
    CHECKS.iter().find(|c| c.id == id)
}

/// All check ids, comma-separated, for error messages that list the known checks.
pub fn known_ids() -> String {
    let ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
    ids.join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut seen = BTreeSet::new();
        for check in CHECKS {
            assert!(seen.insert(check.id), "duplicate check id {}", check.id);
            let (area, name) = check.id.split_once('/').expect("id is area/name");
            let ok =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            assert!(ok(area) && ok(name), "malformed id {}", check.id);
        }
    }

    #[test]
    fn defaults_have_their_kind_and_lie_in_range() {
        for check in CHECKS {
            let mut names = BTreeSet::new();
            for p in check.params {
                assert!(names.insert(p.name), "{}: duplicate {}", check.id, p.name);
                assert!(
                    p.kind.admits(p.default),
                    "{}: default of {} is {:?}, not admitted by {:?}",
                    check.id,
                    p.name,
                    p.default,
                    p.kind
                );
                assert!(p.name.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
                assert!(!p.name.contains(['-', '_']), "{} is not camelCase", p.name);
            }
        }
    }

    #[test]
    fn find_returns_the_spec_with_its_params() {
        let check = find("lb/distribution").expect("in catalog");
        assert_eq!(check.param_names(), "requests, minPValue, minShareOfFair, concurrency");
        assert_eq!(check.param("minPValue").map(|p| p.default), Some(ParamValue::Float(0.001)));
        assert_eq!(
            find("clusterip/reachable").and_then(|c| c.param("timeoutMs")).map(|p| p.default),
            Some(ParamValue::Duration(Duration::from_millis(2000)))
        );
        assert!(find("clusterip/all-backends").expect("in catalog").params.is_empty());
        assert!(find("clusterip/nope").is_none());
    }

    #[test]
    fn kinds_reject_wrong_types_and_out_of_range() {
        let requests = ParamKind::Int { min: 1, max: 10 };
        assert!(requests.admits(ParamValue::Int(10)));
        assert!(!requests.admits(ParamValue::Int(0)));
        assert!(!requests.admits(ParamValue::Float(5.0)));
        let share = ParamKind::Float { min: 0.0, max: 1.0 };
        assert!(!share.admits(ParamValue::Float(1.5)));
        assert!(!share.admits(ParamValue::Float(f64::NAN)));
        let timeout = ParamKind::DurationMs { min: 1, max: 100 };
        assert!(!timeout.admits(ParamValue::Duration(Duration::ZERO)));
        assert!(timeout.admits(ParamValue::Duration(Duration::from_millis(100))));
        assert_eq!(timeout.range().as_deref(), Some("between 1 and 100 ms"));
    }

    #[test]
    fn known_ids_lists_every_check() {
        let ids = known_ids();
        for id in ["clusterip/reachable", "lb/distribution", "nodeport/every-node", "service/no-endpoints"] {
            assert!(ids.contains(id), "{ids}");
        }
        assert_eq!(ids.matches(", ").count() + 1, CHECKS.len());
    }
}
