//! One readiness experiment: paced traffic and DNS around a switch, the API watch, timelines on the runner's clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;

use crate::protocol::{
    Action, Attempt, DnsProbe, DnsQuery, HttpProbe, MAX_ATTEMPTS_PER_ORDER, OrderResult, PresenceWatch,
};
use crate::runner::manifests::ECHO_HTTP_PORT;
use crate::runner::{AgentPod, Session, endpoints};

/// Traffic before the switch, so that the victim is seen in rotation first.
pub(super) const LEAD: Duration = Duration::from_millis(1000);

/// The parameters of one experiment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) interval: Duration,
    pub(super) sustained: usize,
    pub(super) max_api: Duration,
    pub(super) max_propagation: Duration,
    pub(super) max_dns_cache: Duration,
}

impl Limits {
    /// How long the clients send: the lead, the API limit, the propagation limit and the sustained
    /// window, so a healthy cluster converges well inside the traffic.
    pub(super) fn traffic(&self) -> Duration {
        LEAD + self.max_api + self.max_propagation + self.interval * self.sustained as u32 + Duration::from_millis(500)
    }

    /// How long the clients may ask DNS: the traffic plus the longest a cache may hold the old answer.
    pub(super) fn dns_window(&self) -> Duration {
        self.traffic() + self.max_dns_cache
    }
}

/// The number of paced requests that cover `window`, and their pace in ms: `interval`, or slower when
/// that many would not fit in one order's result ([`MAX_ATTEMPTS_PER_ORDER`]); a long window at a fine
/// pace is sampled more coarsely rather than cut short.
pub(super) fn paced(window: Duration, interval: Duration) -> (u32, u64) {
    let interval_ms = (interval.as_millis() as u64)
        .max(1)
        .max((window.as_millis() as u64).div_ceil(u64::from(MAX_ATTEMPTS_PER_ORDER)));
    ((window.as_millis() as u64 / interval_ms) as u32, interval_ms)
}

/// What one switch produced.
pub(super) struct Experiment {
    /// When the API showed the wanted state, from the switch; None: not within the limit.
    pub(super) api: Option<Duration>,
    /// Per client node: the traffic and DNS timelines, already placed on the runner's clock.
    pub(super) nodes: BTreeMap<String, NodeTimeline>,
    /// Error that stopped the experiment before it could observe anything.
    pub(super) error: Option<String>,
}

#[derive(Default)]
pub(super) struct NodeTimeline {
    /// (time from the switch, in ms — negative before it; the answering pod IP or None on failure).
    pub(super) requests: Vec<(i64, Option<String>)>,
    /// (time from the switch in ms; whether the headless answer contained the victim's IP).
    pub(super) dns: Vec<(i64, Option<bool>)>,
    /// The largest TTL the node's DNS answers carried, in seconds.
    pub(super) dns_ttl_s: Option<u32>,
    pub(super) delivery_ms: u64,
    pub(super) failure: Option<String>,
}

/// Switches `victim` to `ready` after [`LEAD`] of traffic and follows it in the API (the echo
/// Service), in every node's data plane and in the DNS answer for `headless`, a headless Service over
/// the server agents.
pub(super) async fn experiment(
    session: &Session,
    victim: &AgentPod,
    ready: bool,
    limits: Limits,
    headless: &str,
) -> Experiment {
    let ns = &session.namespace;
    let deliveries = delivery_estimates(session).await;
    let (attempts, http_interval_ms) = paced(limits.traffic(), limits.interval);
    let http = HttpProbe {
        targets: vec![format!("{}:{ECHO_HTTP_PORT}", session.agents.cluster_ip)],
        path: "/".into(),
        attempts,
        concurrency: 16,
        timeout_ms: 1000,
        interval_ms: http_interval_ms,
        any_server: false,
        keep_body: false,
        give_up_after: 0,
    };
    let headless = crate::checks::dns_expect::fqdn(&[headless, ns, "svc"], &session.options.cluster_domain);
    let dns = DnsProbe {
        queries: vec![DnsQuery { name: headless, record_type: "A".into(), server: None, tcp: false }],
        attempts: paced(limits.dns_window(), limits.interval).0,
        timeout_ms: 1000,
        interval_ms: paced(limits.dns_window(), limits.interval).1,
        until_answered_ms: None,
        until_presence: Some(PresenceWatch {
            record: victim.ip.clone(),
            present: ready,
            sustained: limits.sustained as u32,
        }),
    };
    // The DNS sends of a query go one after another: when they time out, the schedule slips, and the
    // agent stops at the window's end (plus a timeout or two) with what it saw.
    let dns_deadline = limits.dns_window() + Duration::from_secs(3);
    let traffic = session.agents.clients.iter().map(|(node, agent)| {
        let (http, dns) = (http.clone(), dns.clone());
        async move {
            let sent = Instant::now();
            let (h, d) = tokio::join!(
                session.channel.send(agent, Action::Http(http)),
                session.channel.send_within(agent, Action::Dns(dns), dns_deadline),
            );
            (node.clone(), sent, h, d)
        }
    });
    let switch = async {
        tokio::time::sleep(LEAD).await;
        let at = Instant::now();
        if let Err(e) = session.channel.send(victim, Action::SetReady { ready }).await {
            return (at, Err(format!("the victim {} did not take the readiness order: {e}", victim.pod)));
        }
        let seen = endpoints::watch_until_ready_is(
            &session.cluster,
            ns,
            crate::runner::manifests::ECHO_SERVICE,
            &victim.ip,
            ready,
            limits.max_api + limits.max_propagation,
        )
        .await;
        match seen {
            Ok(seen) => (at, Ok(seen.map(|t| t.duration_since(at)))),
            Err(e) => (at, Err(format!("cannot follow the endpoints of the echo Service: {e}"))),
        }
    };
    let (sends, (switched_at, api)) = tokio::join!(join_all(traffic), switch);
    let api = match api {
        Ok(api) => api,
        Err(e) => return Experiment { api: None, nodes: BTreeMap::new(), error: Some(e) },
    };
    let mut nodes = BTreeMap::new();
    for (node, sent, h, d) in sends {
        let delivery_ms = deliveries.get(&node).copied().unwrap_or(0);
        let base = |a: &Attempt| signed_ms(sent, switched_at) + delivery_ms as i64 + a.start_ms as i64;
        let mut t = NodeTimeline { delivery_ms, ..Default::default() };
        match (h, d) {
            (Ok(h), Ok(d)) => {
                t.requests = timeline(&h, |a| a.outcome.identity().map(|i| i.pod_ip.clone()), base);
                t.dns = timeline(&d, |a| a.outcome.records().map(|r| r.contains(&victim.ip)), base);
                t.dns_ttl_s = d.attempts.iter().filter_map(|a| a.outcome.ttl_s()).max();
            }
            (Err(e), _) | (_, Err(e)) => t.failure = Some(e.to_string()),
        }
        nodes.insert(node, t);
    }
    Experiment { api, nodes, error: None }
}

fn timeline<T>(r: &OrderResult, value: impl Fn(&Attempt) -> T, at: impl Fn(&Attempt) -> i64) -> Vec<(i64, T)> {
    let mut out: Vec<(i64, T)> = r.attempts.iter().map(|a| (at(a), value(a))).collect();
    out.sort_by_key(|(t, _)| *t);
    out
}

/// Milliseconds from `b` to `a`, negative when `a` is earlier.
fn signed_ms(a: Instant, b: Instant) -> i64 {
    if a >= b { a.duration_since(b).as_millis() as i64 } else { -(b.duration_since(a).as_millis() as i64) }
}

/// Half the round trip of an empty order, per client: where the agent's order clock starts.
async fn delivery_estimates(session: &Session) -> BTreeMap<String, u64> {
    let per_client = session.agents.clients.iter().map(|(node, agent)| async move {
        let empty = HttpProbe {
            targets: vec![],
            path: "/".into(),
            attempts: 0,
            concurrency: 1,
            timeout_ms: 1,
            interval_ms: 0,
            any_server: false,
            keep_body: false,
            give_up_after: 0,
        };
        let start = Instant::now();
        let r = session.channel.send(agent, Action::Http(empty)).await;
        (node.clone(), r.map(|_| start.elapsed().as_millis() as u64 / 2).unwrap_or(0))
    });
    join_all(per_client).await.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_window_at_a_fine_pace_is_sampled_more_coarsely_to_fit_one_order() {
        assert_eq!(paced(Duration::from_secs(10), Duration::from_millis(20)), (500, 20));
        let (attempts, interval_ms) = paced(Duration::from_secs(241), Duration::from_millis(5));
        assert!(attempts <= MAX_ATTEMPTS_PER_ORDER, "{attempts}");
        assert_eq!(interval_ms, 121);
        assert!(u64::from(attempts) * interval_ms >= 240_000, "the window stays covered");
    }

    #[test]
    fn signed_ms_is_negative_before_the_switch() {
        let a = Instant::now();
        let b = a + Duration::from_millis(30);
        assert_eq!(signed_ms(a, b), -30);
        assert_eq!(signed_ms(b, a), 30);
    }
}
