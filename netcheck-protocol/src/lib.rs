//! The orders/results protocol between the runner and its agents, shared by both sides.
//!
//! Transport: one ConfigMap per order in the run's namespace, labelled with the agent that must execute
//! it. The agent watches its orders, executes each once and writes the result into the same ConfigMap
//! under [`RESULT_KEY`]. Only the Kubernetes API carries orders: no exec, no port-forward, no proxy.
//!
//! Invariant: every message carries [`PROTOCOL_VERSION`]; a side that reads another version refuses
//! the message with a protocol error instead of guessing.

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

pub mod watch;

/// Version of this protocol. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 8;
/// The most bytes of an HTTP body an attempt keeps ([`HttpProbe::keep_body`]): a kube-proxy health
/// check document is about 120.
pub const MAX_KEPT_BODY: usize = 512;
/// The most attempts one order may ask of an agent: its result travels back in a ConfigMap, which the
/// API server caps at 1 MiB, and this many attempts with the longest identities fit with room to
/// spare (a unit test holds it). The catalog's ranges are derived from it.
pub const MAX_ATTEMPTS_PER_ORDER: u32 = 2000;
/// What one ConfigMap may hold (the API server's limit).
pub const CONFIGMAP_LIMIT_BYTES: usize = 1024 * 1024;
/// Room kept free in an order's ConfigMap for its metadata and the result's envelope: the agent stops
/// recording attempts once the order, the attempts so far and this would exceed
/// [`CONFIGMAP_LIMIT_BYTES`], so that it can always write its result back.
pub const CONFIGMAP_HEADROOM_BYTES: usize = 32 * 1024;
/// The longest text an outcome's `detail` carries; longer error texts are cut, so that one attempt's
/// size is bounded.
pub const MAX_DETAIL_CHARS: usize = 200;
/// Label on an order ConfigMap naming the agent pod that must execute it.
pub const AGENT_LABEL: &str = "netcheck.dev/agent";
/// Label on every order ConfigMap.
pub const ORDER_LABEL: &str = "netcheck.dev/order";
/// ConfigMap data key holding the [`Order`] JSON.
pub const ORDER_KEY: &str = "order";
/// ConfigMap data key holding the [`OrderResult`] JSON, written by the agent.
pub const RESULT_KEY: &str = "result";
/// Environment variable of an agent's pod with the API server's own address (`https://ip:port`), set by
/// the runner so that the control channel does not depend on the Service data plane under test.
pub const API_SERVER_ENV: &str = "NETCHECK_API_SERVER";
/// The environment variable that tells an agent the id of the run it serves; it refuses orders of
/// any other run.
pub const RUN_ID_ENV: &str = "NETCHECK_RUN_ID";
/// Port of the agents' HTTP server (identity at `/`, readiness at `/readyz`).
pub const HTTP_PORT: u16 = 8080;
/// Port of the agents' UDP echo server.
pub const UDP_PORT: u16 = 8081;

/// Who answered: what a server agent reports about itself and its client.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Pod name.
    pub pod: String,
    /// Node the pod runs on.
    pub node: String,
    /// The pod's IP.
    pub pod_ip: String,
    /// The client address (`ip:port`) the server saw; tells SNAT from preserved source.
    #[serde(default)]
    pub client: String,
}

/// An order for one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Must equal [`PROTOCOL_VERSION`].
    pub version: u32,
    /// What to do.
    pub action: Action,
    /// The agent stops executing after this many milliseconds and writes back what it observed so far,
    /// marked [`OrderResult::partial`]. 0: the action's own [`Action::budget`].
    #[serde(default)]
    pub deadline_ms: u64,
    /// The id of the run that sent the order; an agent of another run refuses it
    /// ([`parse_order_for_run`]). The runner's control channel sets it on every order it sends.
    #[serde(default)]
    pub run: String,
}

impl Order {
    /// An order of this protocol version for `action`, with the action's own budget as its deadline.
    pub fn new(action: Action) -> Order {
        let deadline_ms = action.budget().as_millis() as u64;
        Order { version: PROTOCOL_VERSION, action, deadline_ms, run: String::new() }
    }

    /// How long the agent may execute this order.
    pub fn deadline(&self) -> std::time::Duration {
        match self.deadline_ms {
            0 => self.action.budget(),
            ms => std::time::Duration::from_millis(ms),
        }
    }
}

impl Action {
    /// This action as orders whose results each fit in a ConfigMap: an unpaced probe of more than
    /// [`MAX_ATTEMPTS_PER_ORDER`] attempts over all its targets (or queries) is split by target, in
    /// order. A paced probe is one timeline and is never split (its callers bound it instead).
    pub fn split(self) -> Vec<Action> {
        fn per_order(attempts: u32) -> usize {
            (MAX_ATTEMPTS_PER_ORDER / attempts.max(1)).max(1) as usize
        }
        match self {
            Action::Http(p) if p.interval_ms == 0 && p.targets.len() > per_order(p.attempts) => p
                .targets
                .chunks(per_order(p.attempts))
                .map(|t| Action::Http(HttpProbe { targets: t.to_vec(), ..p.clone() }))
                .collect(),
            Action::Tcp(p) if p.targets.len() > per_order(p.attempts) => p
                .targets
                .chunks(per_order(p.attempts))
                .map(|t| Action::Tcp(TcpProbe { targets: t.to_vec(), ..p.clone() }))
                .collect(),
            Action::Udp(p) if p.targets.len() > per_order(p.attempts) => p
                .targets
                .chunks(per_order(p.attempts))
                .map(|t| Action::Udp(UdpProbe { targets: t.to_vec(), ..p.clone() }))
                .collect(),
            Action::Dns(p)
                if p.interval_ms == 0 && p.until_answered_ms.is_none() && p.queries.len() > per_order(p.attempts) =>
            {
                p.queries
                    .chunks(per_order(p.attempts))
                    .map(|q| Action::Dns(DnsProbe { queries: q.to_vec(), ..p.clone() }))
                    .collect()
            }
            action => vec![action],
        }
    }

    /// The longest executing this action can take when every attempt runs into its timeout, at the
    /// order's pace and concurrency, plus a little for scheduling: the one deadline policy of orders.
    /// The agent enforces it ([`Order::deadline`]); the runner waits this plus the orders' measured
    /// round trip.
    pub fn budget(&self) -> std::time::Duration {
        let ms = match self {
            Action::Http(p) => {
                let requests = u64::from(p.attempts) * p.targets.len() as u64;
                let waves = requests.div_ceil(u64::from(p.concurrency.max(1)));
                p.interval_ms * u64::from(p.attempts.saturating_sub(1)) + waves * p.timeout_ms
            }
            // Targets in parallel, the connects of one target in sequence.
            Action::Tcp(p) => u64::from(p.attempts) * p.timeout_ms,
            // Everything in sequence, every try of an exchange timing out.
            Action::Udp(p) => p.targets.len() as u64 * u64::from(p.attempts) * u64::from(p.retries + 1) * p.timeout_ms,
            // Queries in parallel, the sends of one query in sequence.
            Action::Dns(p) => match p.until_answered_ms {
                Some(limit) => limit + p.timeout_ms,
                None => {
                    let sends = u64::from(p.attempts.max(1));
                    p.interval_ms * (sends - 1) + sends * p.timeout_ms
                }
            },
            Action::SetReady { .. } => 0,
        };
        // Scheduling slack: 10 % and one second.
        std::time::Duration::from_millis(ms + ms / 10 + 1000)
    }
}

/// What an order asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Action {
    /// HTTP GET requests to each target.
    Http(HttpProbe),
    /// UDP request/response exchanges with each target.
    Udp(UdpProbe),
    /// TCP connects to each target (any listener counts: the application's protocol is unknown).
    Tcp(TcpProbe),
    /// DNS queries.
    Dns(DnsProbe),
    /// Switch the agent's readiness endpoint.
    SetReady {
        /// Whether `/readyz` answers 200.
        ready: bool,
    },
}

/// HTTP probing parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpProbe {
    /// `host:port` targets; hosts may be IPs or DNS names (resolved through the pod's resolv.conf).
    pub targets: Vec<String>,
    /// Path to request, e.g. `/`.
    pub path: String,
    /// Requests per target.
    pub attempts: u32,
    /// Requests in flight at once (over all targets).
    pub concurrency: u32,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// When non-zero, request i starts at i × this many ms after the order starts (a steady rate,
    /// so that a timeline of the data plane can be read from the attempts); 0: as fast as allowed.
    #[serde(default)]
    pub interval_ms: u64,
    /// The targets are not netcheck agents (a user's own Service): every HTTP answer is reported
    /// as [`Outcome::Http`] with its status, instead of being read as an agent's identity.
    #[serde(default)]
    pub any_server: bool,
    /// With `any_server`: each [`Outcome::Http`] also carries the start of the body (at most
    /// [`MAX_KEPT_BODY`] bytes), for small status documents such as kube-proxy's health checks.
    #[serde(default)]
    pub keep_body: bool,
    /// When non-zero, a target is given up (no more requests sent to it) once this many of its requests
    /// in a row timed out and none was ever answered: a silently dropped path is then reported in a
    /// few timeouts instead of `attempts` of them. 0: send every attempt.
    #[serde(default)]
    pub give_up_after: u32,
    /// When set, no further request is started once the watched pod's answers show what the watch
    /// waits for: a readiness experiment's traffic then ends when its outcome is known instead of at
    /// the end of the window that bounds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_answers: Option<AnswerWatch>,
}

/// A pod whose answers a paced HTTP order follows (see [`HttpProbe::until_answers`]). Only answers to
/// requests started at or after `from_ms` count, and requests are ordered by their start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerWatch {
    /// The pod's IP, as its answers' identity gives it.
    pub pod_ip: String,
    /// true: done once the pod answered; false: done once `sustained` requests started after its
    /// last answer were answered by other pods.
    pub answering: bool,
    /// Answers from other pods in a row that mean the pod is gone (with `answering` false).
    pub sustained: u32,
    /// Milliseconds after the order's start before which answers do not count (the lead before a
    /// switch).
    pub from_ms: u64,
}

impl AnswerWatch {
    /// Whether the answers so far, as (request start in ms, answering pod IP), show what the watch
    /// waits for.
    pub fn is_met(&self, answers: &[(u64, &str)]) -> bool {
        let counted = answers.iter().filter(|(start, _)| *start >= self.from_ms);
        if self.answering {
            return counted.clone().any(|(_, ip)| *ip == self.pod_ip);
        }
        let last = counted.clone().filter(|(_, ip)| *ip == self.pod_ip).map(|(start, _)| *start).max();
        let after = counted.filter(|(start, ip)| *ip != self.pod_ip && last.is_none_or(|l| *start > l)).count();
        after >= self.sustained.max(1) as usize
    }
}

/// TCP connect probing: each attempt opens a fresh connection and closes it at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpProbe {
    /// `host:port` targets; hosts may be IPs or names (resolved through the pod's resolv.conf).
    pub targets: Vec<String>,
    /// Connects per target.
    pub attempts: u32,
    /// Per-connect timeout.
    pub timeout_ms: u64,
}

/// UDP probing parameters: each attempt sends one datagram and waits for the echo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UdpProbe {
    /// `ip:port` targets.
    pub targets: Vec<String>,
    /// Exchanges per target.
    pub attempts: u32,
    /// Per-try timeout.
    pub timeout_ms: u64,
    /// Extra tries of an exchange after a timeout; used tries are reported as loss.
    pub retries: u32,
}

/// DNS query parameters: each query is sent `attempts` times (no resolver retries, no cache).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsProbe {
    /// The queries.
    pub queries: Vec<DnsQuery>,
    /// Sends of each query.
    pub attempts: u32,
    /// Per-send timeout.
    pub timeout_ms: u64,
    /// When non-zero, send i of each query starts at i × this many ms after the order starts.
    #[serde(default)]
    pub interval_ms: u64,
    /// When set, each query is repeated (every 20 ms) until it returns records or this many
    /// milliseconds pass, instead of being sent `attempts` times: used to time when a name appears.
    /// A server that never answered is given up after 3 timeouts or refusals in a row.
    #[serde(default)]
    pub until_answered_ms: Option<u64>,
    /// When set, a paced query stops before its `attempts` are used up once the watched record's
    /// presence has been as wanted for the watch's number of answers in a row: used to follow a change
    /// that a DNS cache may hold back for up to a record's TTL without always waiting that long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_presence: Option<PresenceWatch>,
}

/// A record whose presence in the answer a paced DNS query follows (see [`DnsProbe::until_presence`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceWatch {
    /// The record, as [`Outcome::Records`] renders it (an address for A records).
    pub record: String,
    /// Whether the record is wanted present (true) or absent (false).
    pub present: bool,
    /// Answers in a row that must show it so; failed queries neither count nor break the run.
    pub sustained: u32,
}

/// One DNS question and where to send it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsQuery {
    /// The name; a name without a trailing dot goes through the search list when `server` is None.
    pub name: String,
    /// `A`, `AAAA`, `SRV`, `PTR` or `CNAME`.
    pub record_type: String,
    /// `ip:port` of the server to ask; None: the pod's own resolv.conf (search list, ndots), as an
    /// application sees it.
    #[serde(default)]
    pub server: Option<String>,
    /// Ask over TCP instead of UDP.
    #[serde(default)]
    pub tcp: bool,
}

impl DnsQuery {
    /// The key that names this query in [`Attempt::target`].
    pub fn key(&self) -> String {
        let server = self.server.as_deref().unwrap_or("resolv.conf");
        let transport = if self.tcp { "tcp" } else { "udp" };
        format!("{} {} @{server}/{transport}", self.record_type, self.name)
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// An answer came back from a netcheck server agent.
    Answered {
        /// Who answered.
        identity: Identity,
    },
    /// A TCP connection was established (a [`TcpProbe`]).
    Connected,
    /// An HTTP answer from a server that is not a netcheck agent (a [`HttpProbe`] with `any_server`).
    Http {
        /// The HTTP status code.
        status: u16,
        /// The start of the body, when the probe asked to keep it ([`HttpProbe::keep_body`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// Something answered, but not as a netcheck agent would (a foreign server, an HTTP error).
    Unexpected {
        /// What came back.
        detail: String,
    },
    /// The connection was actively refused (RST / ICMP unreachable).
    Refused,
    /// No answer within the timeout.
    Timeout,
    /// The connection was reset after it was established.
    Reset,
    /// A DNS answer with records, each rendered in zone-file form without name, class and TTL
    /// (`10.96.0.1`; SRV `0 100 80 target.`; CNAME and PTR `target.`).
    Records {
        /// The answer records of the asked type.
        records: Vec<String>,
        /// The smallest TTL of those records, in seconds: how long a cache may keep serving this
        /// answer (a cached answer's TTL counts down).
        #[serde(default, rename = "ttlS", skip_serializing_if = "Option::is_none")]
        ttl_s: Option<u32>,
    },
    /// The server said the name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no record of the asked type (NOERROR, empty answer).
    NoRecords,
    /// The target name did not resolve.
    Unresolved {
        /// The resolver's error.
        detail: String,
    },
    /// Any other error.
    Error {
        /// The error text.
        detail: String,
    },
}

impl Outcome {
    /// The DNS records, if the attempt got an answer with records.
    pub fn records(&self) -> Option<&[String]> {
        match self {
            Outcome::Records { records, .. } => Some(records),
            _ => None,
        }
    }

    /// The smallest TTL of a DNS answer's records, in seconds, if the attempt got records with one.
    pub fn ttl_s(&self) -> Option<u32> {
        match self {
            Outcome::Records { ttl_s, .. } => *ttl_s,
            _ => None,
        }
    }

    /// The answering identity, if any.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Outcome::Answered { identity } => Some(identity),
            _ => None,
        }
    }

    /// Short label for reports: `answered`, `refused`, `timeout`, ….
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Answered { .. } => "answered",
            Outcome::Connected => "connected",
            Outcome::Http { .. } => "HTTP answer",
            Outcome::Unexpected { .. } => "unexpected answer",
            Outcome::Refused => "refused",
            Outcome::Timeout => "timeout",
            Outcome::Reset => "reset",
            Outcome::Records { .. } => "records",
            Outcome::NxDomain => "NXDOMAIN",
            Outcome::NoRecords => "no records",
            Outcome::Unresolved { .. } => "unresolved",
            Outcome::Error { .. } => "error",
        }
    }
}

/// One request/exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// The target as given in the order.
    pub target: String,
    /// Start, in ms since the agent began executing the order.
    pub start_ms: u64,
    /// Duration in microseconds.
    pub elapsed_us: u64,
    /// Extra tries used (UDP).
    #[serde(default)]
    pub retries: u32,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// An agent's answer to an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderResult {
    /// Must equal [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The executing agent.
    pub agent: Identity,
    /// Per-attempt outcomes, in completion order.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// Set when the agent could not execute the order at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set when the agent stopped before the order was done (its deadline passed, or the result
    /// reached the size a ConfigMap can hold): why. `attempts` holds what it observed until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
    /// How long the agent took to execute the order, in ms; the rest of an order's round trip is the
    /// control channel's own.
    #[serde(default)]
    pub elapsed_ms: u64,
}

impl OrderResult {
    /// A result of this protocol version from `agent`, before any attempt.
    pub fn new(agent: Identity) -> OrderResult {
        OrderResult {
            version: PROTOCOL_VERSION,
            agent,
            attempts: Vec::new(),
            error: None,
            partial: None,
            elapsed_ms: 0,
        }
    }
}

/// Parses an order, refusing other protocol versions.
pub fn parse_order(text: &str) -> Result<Order, String> {
    let order: Order = serde_json::from_str(text).map_err(|e| format!("unreadable order: {e}"))?;
    check_version(order.version)?;
    Ok(order)
}

/// Parses an order for an agent of run `run`, refusing other protocol versions and other runs' orders
/// (a runner of another run, or an order left from one, must not make this agent send traffic).
pub fn parse_order_for_run(text: &str, run: &str) -> Result<Order, String> {
    let order = parse_order(text)?;
    if order.run != run {
        return Err(format!("refused an order of run {:?}: this agent serves run {run:?} only", order.run));
    }
    Ok(order)
}

/// Parses a result, refusing other protocol versions.
pub fn parse_result(text: &str) -> Result<OrderResult, String> {
    let result: OrderResult = serde_json::from_str(text).map_err(|e| format!("unreadable result: {e}"))?;
    check_version(result.version)?;
    Ok(result)
}

fn check_version(version: u32) -> Result<(), String> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(format!(
            "protocol version {version} is not supported (this netcheck speaks {PROTOCOL_VERSION}); use the same netcheck version for the runner and the agent image"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            pod: "s-1".into(),
            node: "node-a".into(),
            pod_ip: "10.244.1.5".into(),
            client: "10.244.2.3:4000".into(),
        }
    }

    #[test]
    fn order_round_trips_with_its_kind_tag() {
        let order = Order::new(Action::Http(HttpProbe {
            targets: vec!["10.96.0.20:80".into()],
            path: "/".into(),
            attempts: 3,
            concurrency: 2,
            timeout_ms: 500,
            interval_ms: 0,
            any_server: false,
            keep_body: false,
            give_up_after: 0,
            until_answers: None,
        }));
        let text = serde_json::to_string(&order).unwrap();
        assert!(text.contains(r#""kind":"http""#), "{text}");
        assert!(text.contains(r#""timeoutMs":500"#), "{text}");
        assert_eq!(parse_order(&text).unwrap(), order);
    }

    #[test]
    fn result_attempt_outcome_is_flattened() {
        let result = OrderResult {
            version: PROTOCOL_VERSION,
            agent: identity(),
            attempts: vec![
                Attempt {
                    target: "t".into(),
                    start_ms: 1,
                    elapsed_us: 20,
                    retries: 0,
                    outcome: Outcome::Answered { identity: identity() },
                },
                Attempt { target: "t".into(), start_ms: 2, elapsed_us: 30, retries: 1, outcome: Outcome::Refused },
            ],
            error: None,
            partial: None,
            elapsed_ms: 0,
        };
        let text = serde_json::to_string(&result).unwrap();
        assert!(text.contains(r#""outcome":"refused""#), "{text}");
        assert!(text.contains(r#""podIp":"10.244.1.5""#), "{text}");
        assert_eq!(parse_result(&text).unwrap(), result);
    }

    #[test]
    fn other_protocol_versions_are_refused() {
        let text = r#"{"version":4,"action":{"kind":"setReady","ready":true}}"#;
        let err = parse_order(text).unwrap_err();
        assert!(err.contains("protocol version 4"), "{err}");
        let current = format!(r#"{{"version":{PROTOCOL_VERSION},"action":{{"kind":"setReady","ready":false}}}}"#);
        assert!(parse_order(&current).is_ok());
    }

    #[test]
    fn an_agent_refuses_orders_of_another_run_and_takes_its_own() {
        let mut order = Order::new(Action::SetReady { ready: false });
        order.run = "r1".into();
        let text = serde_json::to_string(&order).unwrap();
        assert_eq!(parse_order_for_run(&text, "r1").unwrap(), order);
        let err = parse_order_for_run(&text, "r2").unwrap_err();
        assert!(err.contains(r#"run "r1""#) && err.contains(r#"serves run "r2""#), "{err}");
        let unstamped = format!(r#"{{"version":{PROTOCOL_VERSION},"action":{{"kind":"setReady","ready":false}}}}"#);
        assert!(parse_order_for_run(&unstamped, "r2").is_err(), "an order without a run is not this run's");
        let old = text.replace(&format!(r#""version":{PROTOCOL_VERSION}"#), r#""version":6"#);
        assert!(parse_order_for_run(&old, "r1").unwrap_err().contains("protocol version 6"));
    }

    #[test]
    fn dns_orders_and_outcomes_round_trip() {
        let query =
            DnsQuery { name: "a.b.svc.cluster.local.".into(), record_type: "A".into(), server: None, tcp: true };
        assert_eq!(query.key(), "A a.b.svc.cluster.local. @resolv.conf/tcp");
        let order = Order::new(Action::Dns(DnsProbe {
            queries: vec![query],
            attempts: 2,
            timeout_ms: 500,
            until_answered_ms: None,
            interval_ms: 0,
            until_presence: Some(PresenceWatch { record: "10.244.1.5".into(), present: false, sustained: 3 }),
        }));
        assert_eq!(parse_order(&serde_json::to_string(&order).unwrap()).unwrap(), order);
        let records = Outcome::Records { records: vec!["10.96.0.1".into()], ttl_s: Some(30) };
        let text = serde_json::to_string(&records).unwrap();
        assert_eq!(text, r#"{"outcome":"records","records":["10.96.0.1"],"ttlS":30}"#);
        assert_eq!(records.records(), Some(&["10.96.0.1".to_string()][..]));
        assert_eq!(Outcome::NxDomain.label(), "NXDOMAIN");
    }

    #[test]
    fn an_answer_watch_counts_by_request_start_from_its_lead() {
        let gone = AnswerWatch { pod_ip: "v".into(), answering: false, sustained: 2, from_ms: 100 };
        assert!(!gone.is_met(&[(0, "a"), (20, "b"), (40, "a")]), "before the lead nothing counts");
        assert!(!gone.is_met(&[(100, "a"), (140, "v"), (120, "b")]), "one answer since its last");
        assert!(gone.is_met(&[(100, "a"), (140, "v"), (160, "b"), (180, "a")]));
        assert!(!gone.is_met(&[(160, "b"), (180, "a"), (170, "v")]), "a later-started answer from it resets");
        let back = AnswerWatch { pod_ip: "v".into(), answering: true, sustained: 0, from_ms: 100 };
        assert!(!back.is_met(&[(60, "v"), (120, "a")]), "before the lead it does not count");
        assert!(back.is_met(&[(120, "a"), (140, "v")]));
    }

    #[test]
    fn tcp_orders_and_http_status_outcomes_round_trip() {
        let order =
            Order::new(Action::Tcp(TcpProbe { targets: vec!["10.244.1.5:8080".into()], attempts: 2, timeout_ms: 300 }));
        let text = serde_json::to_string(&order).unwrap();
        assert!(text.contains(r#""kind":"tcp""#), "{text}");
        assert_eq!(parse_order(&text).unwrap(), order);
        let http = Outcome::Http { status: 404, body: None };
        assert_eq!(serde_json::to_string(&http).unwrap(), r#"{"outcome":"http","status":404}"#);
        assert_eq!(serde_json::to_string(&Outcome::Connected).unwrap(), r#"{"outcome":"connected"}"#);
        // An order that leaves out `anyServer` and `keepBody` still reads, as an agent probe.
        let old = format!(
            r#"{{"version":{PROTOCOL_VERSION},"action":{{"kind":"http","targets":[],"path":"/","attempts":1,"concurrency":1,"timeoutMs":1}}}}"#
        );
        let Action::Http(p) = parse_order(&old).unwrap().action else { panic!("not http") };
        assert!(!p.any_server && !p.keep_body);
        let kept = Outcome::Http { status: 200, body: Some(r#"{"localEndpoints":1}"#.into()) };
        let text = serde_json::to_string(&kept).unwrap();
        assert_eq!(serde_json::from_str::<Outcome>(&text).unwrap(), kept);
    }

    #[test]
    fn an_orders_budget_is_every_attempt_timing_out_at_its_pace_and_concurrency() {
        let http = |attempts, targets: usize, concurrency, interval_ms| {
            Action::Http(HttpProbe {
                targets: vec!["10.96.0.20:80".into(); targets],
                path: "/".into(),
                attempts,
                concurrency,
                timeout_ms: 1000,
                interval_ms,
                any_server: false,
                keep_body: false,
                give_up_after: 0,
                until_answers: None,
            })
        };
        let ms = |a: Action| a.budget().as_millis();
        // 20 requests, 4 at a time: 5 waves of 1 s, plus 10 % and 1 s of slack.
        assert_eq!(ms(http(10, 2, 4, 0)), 5000 + 500 + 1000);
        // Paced: the last of 11 requests starts at 1 s, and may take its 1 s timeout.
        assert_eq!(ms(http(11, 1, 16, 100)), 2000 + 200 + 1000);
        let dns = |until_answered_ms, attempts, interval_ms| {
            Action::Dns(DnsProbe {
                queries: vec![],
                attempts,
                timeout_ms: 500,
                interval_ms,
                until_answered_ms,
                until_presence: None,
            })
        };
        assert_eq!(ms(dns(Some(35_000), 1, 0)), 35_500 + 3550 + 1000);
        assert_eq!(ms(dns(None, 3, 100)), 200 + 1500 + 170 + 1000);
        let udp = Action::Udp(UdpProbe { targets: vec!["a:1".into(); 2], attempts: 3, timeout_ms: 100, retries: 1 });
        assert_eq!(ms(udp), 1200 + 120 + 1000);
        assert_eq!(ms(Action::SetReady { ready: true }), 1000);
        // An order without its own deadline gets the action's budget.
        let mut order = Order::new(http(1, 1, 1, 0));
        assert_eq!(order.deadline_ms, 2100);
        order.deadline_ms = 0;
        assert_eq!(order.deadline().as_millis(), 2100);
        order.deadline_ms = 50;
        assert_eq!(order.deadline().as_millis(), 50);
    }

    #[test]
    fn an_action_too_large_for_one_result_is_split_by_target_and_a_paced_one_never() {
        let probe = |targets: usize, attempts, interval_ms| HttpProbe {
            targets: (0..targets).map(|i| format!("10.0.{}.{}:30080", i / 250, i % 250)).collect(),
            path: "/".into(),
            attempts,
            concurrency: 16,
            timeout_ms: 1000,
            interval_ms,
            any_server: false,
            keep_body: false,
            give_up_after: 0,
            until_answers: None,
        };
        // 1500 node addresses × 3 requests: 4500 attempts, in orders of at most 666 targets.
        let parts = Action::Http(probe(1500, 3, 0)).split();
        assert_eq!(parts.len(), 3);
        let targets: Vec<String> =
            parts.iter().flat_map(|a| if let Action::Http(p) = a { p.targets.clone() } else { vec![] }).collect();
        assert_eq!(targets, probe(1500, 3, 0).targets, "every target once, in order");
        assert_eq!(Action::Http(probe(2, 1000, 0)).split().len(), 1, "2000 attempts fit in one");
        assert_eq!(Action::Http(probe(3, 2000, 20)).split().len(), 1, "a paced probe is one timeline");
        let tcp = Action::Tcp(TcpProbe { targets: vec!["a:1".into(); 5], attempts: 1000, timeout_ms: 1 });
        assert_eq!(tcp.split().len(), 3);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_result("{").unwrap_err().starts_with("unreadable result"));
    }

    #[test]
    fn the_largest_allowed_result_fits_in_one_config_map() {
        // The longest names Kubernetes allows, IPv6 addresses, and the slowest timings.
        let identity = Identity {
            pod: "p".repeat(63),
            node: "n".repeat(63),
            pod_ip: "fd00:1234:5678:9abc:def0:1234:5678:9abc".into(),
            client: "[fd00:1234:5678:9abc:def0:1234:5678:9abd]:65535".into(),
        };
        let attempt = Attempt {
            target: "[fd00:1234:5678:9abc:def0:1234:5678:9abe]:65535".into(),
            start_ms: 999_999,
            elapsed_us: 99_999_999,
            retries: 0,
            outcome: Outcome::Answered { identity: identity.clone() },
        };
        let result = OrderResult {
            version: PROTOCOL_VERSION,
            agent: identity,
            attempts: vec![attempt; MAX_ATTEMPTS_PER_ORDER as usize],
            error: None,
            partial: None,
            elapsed_ms: 0,
        };
        let size = serde_json::to_string(&result).unwrap().len();
        assert!(size < CONFIGMAP_LIMIT_BYTES, "{size} bytes do not fit in a ConfigMap");
    }
}
