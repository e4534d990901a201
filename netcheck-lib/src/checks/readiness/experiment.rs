//! One readiness experiment: paced traffic around a switch, the API watch, DNS through fresh names once
//! the API shows the switch, timelines on the runner's clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::fresh_names::{FollowTimes, FreshNames};
use crate::protocol::{Action, AnswerWatch, Attempt, HttpProbe, MAX_ATTEMPTS_PER_ORDER, OrderResult};
use crate::runner::manifests::{ECHO_HTTP_PORT, ECHO_SERVICE};
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
}

impl Limits {
    /// How long the clients send: the lead, the API limit, the propagation limit and the sustained
    /// window, so a healthy cluster converges well inside the traffic.
    pub(super) fn traffic(&self) -> Duration {
        LEAD + self.max_api + self.max_propagation + self.interval * self.sustained as u32 + Duration::from_millis(500)
    }

    /// The limit for the data plane and DNS, from the switch.
    pub(super) fn propagation(&self) -> Duration {
        self.max_api + self.max_propagation
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

/// (time from the switch in ms; whether the answer had the victim, None when it showed neither).
pub(super) type DnsTimeline = Vec<(i64, Option<bool>)>;

#[derive(Default)]
pub(super) struct NodeTimeline {
    /// (time from the switch, in ms — negative before it; the answering pod IP or None on failure).
    pub(super) requests: Vec<(i64, Option<String>)>,
    /// (time from the switch in ms; whether a fresh name's answer contained the victim's IP), from the
    /// moment the API showed the switch on.
    pub(super) dns: DnsTimeline,
    pub(super) delivery_ms: u64,
    pub(super) failure: Option<String>,
}

/// Switches `victim` to `ready` after [`LEAD`] of traffic and follows it in the API (the echo
/// Service), in every node's data plane and in DNS, through names made for this experiment
/// ([`FreshNames`]) and deleted after it.
pub(super) async fn experiment(session: &Session, victim: &AgentPod, ready: bool, limits: Limits) -> Experiment {
    let names = match FreshNames::create(session, &victim.ip, !ready, limits.propagation()).await {
        Ok(names) => names,
        Err(e) => return Experiment { api: None, nodes: BTreeMap::new(), error: Some(e) },
    };
    let e = observe(session, victim, ready, limits, &names).await;
    names.delete(session).await;
    e
}

async fn observe(session: &Session, victim: &AgentPod, ready: bool, limits: Limits, names: &FreshNames) -> Experiment {
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
        // The traffic ends once the victim is gone for `sustained` answers (or is back); the window
        // only bounds a switch that never shows.
        until_answers: Some(AnswerWatch {
            pod_ip: victim.ip.clone(),
            answering: ready,
            sustained: limits.sustained as u32,
            from_ms: LEAD.as_millis() as u64,
        }),
    };
    let traffic = session.agents.clients.iter().map(|(node, agent)| {
        let http = http.clone();
        async move {
            let sent = Instant::now();
            (node.clone(), sent, session.channel.send(agent, Action::Http(http)).await)
        }
    });
    let switch = async {
        tokio::time::sleep(LEAD).await;
        let at = Instant::now();
        if let Err(e) = session.channel.send(victim, Action::SetReady { ready }).await {
            return Err(format!("the victim {} did not take the readiness order: {e}", victim.pod));
        }
        let seen = endpoints::watch_until_ready_is(
            &session.cluster,
            &session.namespace,
            ECHO_SERVICE,
            &victim.ip,
            ready,
            limits.propagation(),
        )
        .await
        .map_err(|e| format!("cannot follow the endpoints of the echo Service: {e}"))?;
        let Some(api_seen) = seen else { return Ok((at, None, BTreeMap::new())) };
        let dns = session.agents.clients.iter().map(|(node, agent)| {
            let delivery_ms = deliveries.get(node).copied().unwrap_or(0);
            let times = FollowTimes { switched: at, api_seen, delivery_ms };
            async move { (node.clone(), names.follow(session, agent, &victim.ip, ready, times).await) }
        });
        let dns: BTreeMap<String, Result<DnsTimeline, String>> = join_all(dns).await.into_iter().collect();
        Ok((at, Some(api_seen.duration_since(at)), dns))
    };
    let (sends, switched) = tokio::join!(join_all(traffic), switch);
    let (switched_at, api, mut dns) = match switched {
        Ok(switched) => switched,
        Err(e) => return Experiment { api: None, nodes: BTreeMap::new(), error: Some(e) },
    };
    let mut nodes = BTreeMap::new();
    for (node, sent, h) in sends {
        let delivery_ms = deliveries.get(&node).copied().unwrap_or(0);
        let base = |a: &Attempt| signed_ms(sent, switched_at) + delivery_ms as i64 + a.start_ms as i64;
        let mut t = NodeTimeline { delivery_ms, ..Default::default() };
        match (h, dns.remove(&node).unwrap_or(Ok(Vec::new()))) {
            (Ok(h), Ok(d)) => {
                t.requests = timeline(&h, |a| a.outcome.identity().map(|i| i.pod_ip.clone()), base);
                t.dns = d;
            }
            (Err(e), _) => t.failure = Some(e.to_string()),
            (_, Err(e)) => t.failure = Some(e),
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
pub(super) fn signed_ms(a: Instant, b: Instant) -> i64 {
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
            until_answers: None,
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
