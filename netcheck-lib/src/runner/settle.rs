//! Waiting, after the agents are Ready, until the cluster serves the run's Services: the endpoints
//! controller lists a Ready pod a moment later, and each node's service proxy programs it a moment
//! after that. A check that measured inside that window would blame the cluster for our own race.
//!
//! The data-plane side probes each Service's ClusterIP from every client until every ready endpoint
//! has answered. kube-proxy writes a Service's ClusterIP and NodePort rules in the same sync, so a
//! converged ClusterIP on a node also means that node's node ports are programmed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::channel::Channel;
use super::endpoints::{self, EndpointAddress};
use super::manifests::{AFFINITY_SERVICE, ECHO_HTTP_PORT, ECHO_SERVICE, LOCAL_SERVICE, NODEPORT_SERVICE};
use super::{Agents, Cluster};
use crate::Result;
use crate::protocol::{Action, HttpProbe, Outcome};

/// How long the API and then the data plane may each take to settle.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a node that has had no answer at all is waited for once another node has converged: the
/// service proxies of one cluster program a Service within about a second of each other, so a node
/// still silent by then has a broken path, which the checks will report without the full wait.
const SILENT_GRACE: Duration = Duration::from_secs(4);

/// The per-attempt timeout of a node's first settle round. An attempt here only asks "served yet?", and
/// the answer "not yet" is often a refusal that the kernel's ICMP rate limit turned into silence (kube-proxy
/// REJECTs a Service it has not programmed with endpoints; past a burst of 6, the senders time out): a
/// second-long timeout made such a round last a second when the next one would already have converged.
const FIRST_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(250);
/// The longest per-attempt timeout, reached by doubling after every fourth round in a row whose
/// attempts timed out without showing a new backend (after 1 s, then 2 s more): a slow but working path
/// is still seen. A few such rounds are common: while a service proxy has not programmed a Service,
/// every attempt is refused or, past the ICMP burst, dropped, and an attempt begun then waits for its
/// SYN's retransmission even once the Service is programmed.
const LONGEST_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// The Services over the server agents that must be programmed before checks measure, and whether
/// every backend must answer (false for ClientIP affinity, which pins a client to one backend).
const SERVED: &[(&str, bool)] =
    &[(ECHO_SERVICE, true), (NODEPORT_SERVICE, true), (LOCAL_SERVICE, true), (AFFINITY_SERVICE, false)];

/// What the settle step observed.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    /// The echo Service's endpoints once every Ready server agent was listed (or the timeout passed).
    pub echo_endpoints: Vec<EndpointAddress>,
    /// Per client node: how its data plane settled.
    pub data_plane: BTreeMap<String, NodeSettle>,
    /// When the last round in which some attempt went unanswered ended (None: every round was answered,
    /// or there was nothing to wait for). A Service not yet programmed is refused with ICMP errors, which
    /// spend the kernel's rate-limit tokens for the client agent: a check that counts refusals waits a
    /// token's time past this.
    pub last_unanswered_at: Option<Instant>,
}

/// What [`data_plane_converged`] observed.
#[derive(Debug)]
pub(crate) struct Convergence {
    /// Per client node: how its data plane settled.
    pub(crate) per_node: BTreeMap<String, NodeSettle>,
    /// When the last round in which some attempt went unanswered ended, on any node.
    pub(crate) last_unanswered_at: Option<Instant>,
}

/// How one client node's data plane settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSettle {
    /// Every target answered from every ready endpoint this long after the wait started.
    Converged(Duration),
    /// Some target never answered from every ready endpoint: a finding about the node's data plane.
    NotConverged,
    /// An order to the node's agent brought nothing back, so nothing is known of its data plane.
    OrderFailed(String),
}

impl NodeSettle {
    /// The time to converge, when the node converged.
    pub fn converged_in(&self) -> Option<Duration> {
        match self {
            NodeSettle::Converged(t) => Some(*t),
            _ => None,
        }
    }
}

/// When [`data_plane_converged`] stops waiting for a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    /// [`SILENT_GRACE`] after another node converged, when this one is silent or stalled: the checks
    /// that follow judge the node, so the session need not wait the whole timeout for it.
    EarlyAfterOthers,
    /// Only at [`SETTLE_TIMEOUT`]: the caller's verdict is this wait itself, so a slow but working
    /// service proxy must have the whole time.
    AtTimeout,
}

/// Waits for the API, then for every node's data plane. A node that does not converge is recorded,
/// not an error: the checks then report what is wrong there.
pub async fn wait(cluster: &Cluster, channel: &Channel, ns: &str, agents: &Agents) -> Result<Settled> {
    let servers: BTreeSet<&str> = agents.servers.iter().map(|s| s.ip.as_str()).collect();
    let mut echo_endpoints = Vec::new();
    let mut targets = Vec::new();
    for (service, all_backends) in SERVED {
        let Some(ip) = cluster_ip(cluster, ns, service).await? else { continue };
        let listed = api_lists_ready(cluster, ns, service, &servers).await?;
        tracing::debug!(service, "the API lists the servers");
        if *service == ECHO_SERVICE {
            echo_endpoints = listed;
        }
        targets.push((format!("{ip}:{ECHO_HTTP_PORT}"), *all_backends));
    }
    let converged = data_plane_converged(channel, agents, &targets, &servers, GiveUp::EarlyAfterOthers).await;
    Ok(Settled { echo_endpoints, data_plane: converged.per_node, last_unanswered_at: converged.last_unanswered_at })
}

/// The Service's ClusterIP; None when the Service does not exist (a session without it).
async fn cluster_ip(cluster: &Cluster, ns: &str, service: &str) -> Result<Option<String>> {
    let svc = super::services::read(cluster, ns, service).await?;
    Ok(svc.as_ref().and_then(super::services::cluster_ip).map(str::to_string))
}

/// Reads the Service's endpoints until every address in `servers` is listed as ready, or [`SETTLE_TIMEOUT`].
pub(crate) async fn api_lists_ready(
    cluster: &Cluster,
    ns: &str,
    service: &str,
    servers: &BTreeSet<&str>,
) -> Result<Vec<EndpointAddress>> {
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    loop {
        let eps = endpoints::of_service(cluster, ns, service).await?;
        if lists_all_ready(&eps, servers) || tokio::time::Instant::now() >= deadline {
            return Ok(eps);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether every address in `servers` is listed, and listed ready.
pub(crate) fn lists_all_ready(eps: &[EndpointAddress], servers: &BTreeSet<&str>) -> bool {
    let ready: BTreeSet<&str> = eps.iter().filter(|e| e.ready).map(|e| e.ip.as_str()).collect();
    servers.iter().all(|s| ready.contains(s))
}

/// Probes every target from every client until each has answered from every server (or, for a
/// target that pins clients, answered at all).
pub(crate) async fn data_plane_converged(
    channel: &Channel,
    agents: &Agents,
    targets: &[(String, bool)],
    servers: &BTreeSet<&str>,
    give_up: GiveUp,
) -> Convergence {
    let start = tokio::time::Instant::now();
    let last_unanswered_at = std::sync::Mutex::new(None::<Instant>);
    let last_unanswered_at = &last_unanswered_at;
    // When the first node converged, in ms from `start` (0: none yet).
    let first_converged = std::sync::atomic::AtomicU64::new(0);
    let first_converged = &first_converged;
    let per_node = agents.clients.iter().map(|(node, agent)| async move {
        let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        // When this node last saw a backend it had not seen before.
        let mut last_progress = start.elapsed();
        // Rounds in a row whose attempts timed out and showed no new backend.
        let mut silent_rounds = 0;
        while start.elapsed() < SETTLE_TIMEOUT {
            let since_first = match first_converged.load(std::sync::atomic::Ordering::SeqCst) {
                0 => None,
                at => Some(start.elapsed().saturating_sub(Duration::from_millis(at))),
            };
            let stalled_for = start.elapsed().saturating_sub(last_progress);
            if stop_waiting(give_up, !seen.is_empty(), stalled_for, since_first) {
                return (node.clone(), NodeSettle::NotConverged);
            }
            let attempts = (servers.len() as u32 * 4).max(8);
            let attempt_timeout = attempt_timeout(silent_rounds);
            let probe = HttpProbe {
                targets: targets.iter().map(|(t, _)| t.clone()).collect(),
                path: "/".into(),
                attempts,
                // All at once: attempts that time out then cost one timeout, not one per wave.
                concurrency: attempts * targets.len() as u32,
                timeout_ms: attempt_timeout.as_millis() as u64,
                interval_ms: 0,
                any_server: false,
                keep_body: false,
                give_up_after: 0,
                until_answers: None,
            };
            let r = match channel.send(agent, Action::Http(probe)).await {
                Ok(r) => r,
                Err(e) => return (node.clone(), NodeSettle::OrderFailed(e.to_string())),
            };
            let timeouts = r.attempts.iter().filter(|a| a.outcome == Outcome::Timeout).count();
            if r.attempts.iter().any(|a| a.outcome.identity().is_none()) {
                let now = Instant::now();
                let mut last = last_unanswered_at.lock().unwrap_or_else(|e| e.into_inner());
                *last = Some(last.map_or(now, |t| t.max(now)));
            }
            tracing::debug!(
                %node,
                at_ms = start.elapsed().as_millis() as u64,
                answered = r.attempts.iter().filter(|a| a.outcome.identity().is_some()).count(),
                timeouts,
                attempts = r.attempts.len(),
                timeout_ms = attempt_timeout.as_millis() as u64,
                "data-plane round"
            );
            let mut progressed = false;
            for a in &r.attempts {
                if let (Some(id), Some((t, _))) = (a.outcome.identity(), targets.iter().find(|(t, _)| *t == a.target))
                    && seen.entry(t.as_str()).or_default().insert(id.pod_ip.clone())
                {
                    last_progress = start.elapsed();
                    progressed = true;
                }
            }
            silent_rounds = if timeouts > 0 && !progressed { silent_rounds + 1 } else { 0 };
            if converged(targets, servers, &seen) {
                let at = (start.elapsed().as_millis() as u64).max(1);
                let _ = first_converged.compare_exchange(
                    0,
                    at,
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                );
                return (node.clone(), NodeSettle::Converged(start.elapsed()));
            }
        }
        (node.clone(), NodeSettle::NotConverged)
    });
    let per_node = join_all(per_node).await.into_iter().collect();
    Convergence { per_node, last_unanswered_at: *last_unanswered_at.lock().unwrap_or_else(|e| e.into_inner()) }
}

/// Whether to stop waiting for a node before [`SETTLE_TIMEOUT`]: never with [`GiveUp::AtTimeout`];
/// otherwise once another node converged at least [`SILENT_GRACE`] ago, when this one has had no answer
/// at all, or has seen no new backend for [`SILENT_GRACE`] either (some backends answer it, others
/// never do: a path into another node). A node still making progress is waited for up to the cap (it
/// may be slow).
fn stop_waiting(
    give_up: GiveUp,
    any_answer: bool,
    stalled_for: Duration,
    since_another_converged: Option<Duration>,
) -> bool {
    give_up == GiveUp::EarlyAfterOthers
        && since_another_converged.is_some_and(|d| d >= SILENT_GRACE)
        && (!any_answer || stalled_for >= SILENT_GRACE)
}

/// A round's per-attempt timeout after `silent_rounds` rounds in a row of timeouts without a new
/// backend: doubled every fourth such round, up to [`LONGEST_ATTEMPT_TIMEOUT`], since a long silence
/// may be a slow path rather than a refusal the rate limit swallowed.
fn attempt_timeout(silent_rounds: u32) -> Duration {
    (FIRST_ATTEMPT_TIMEOUT * 2u32.saturating_pow(silent_rounds / 4)).min(LONGEST_ATTEMPT_TIMEOUT)
}

fn converged(targets: &[(String, bool)], servers: &BTreeSet<&str>, seen: &BTreeMap<&str, BTreeSet<String>>) -> bool {
    targets.iter().all(|(t, all_backends)| {
        let answered = seen.get(t.as_str());
        match (answered, all_backends) {
            (None, _) => false,
            (Some(ips), true) => servers.iter().all(|s| ips.contains(*s)),
            (Some(ips), false) => !ips.is_empty(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(ip: &str, ready: bool) -> EndpointAddress {
        EndpointAddress { ip: ip.into(), pod: None, ready, hostname: None, node: None }
    }

    #[test]
    fn the_attempt_timeout_doubles_every_fourth_silent_round_up_to_a_second() {
        let ms = |rounds| attempt_timeout(rounds).as_millis();
        assert_eq!([ms(0), ms(3), ms(4), ms(7), ms(8), ms(12)], [250, 250, 500, 500, 1000, 1000]);
        assert_eq!(attempt_timeout(40), LONGEST_ATTEMPT_TIMEOUT, "capped, and no overflow");
    }

    #[test]
    fn api_settles_only_when_every_server_is_ready() {
        let servers = BTreeSet::from(["10.0.0.1", "10.0.0.2"]);
        assert!(!lists_all_ready(&[ep("10.0.0.1", true)], &servers));
        assert!(!lists_all_ready(&[ep("10.0.0.1", true), ep("10.0.0.2", false)], &servers));
        assert!(lists_all_ready(&[ep("10.0.0.1", true), ep("10.0.0.2", true), ep("10.0.0.9", false)], &servers));
    }

    #[test]
    fn data_plane_needs_every_backend_except_on_pinned_targets() {
        let servers = BTreeSet::from(["10.0.0.1", "10.0.0.2"]);
        let targets = vec![("svc:80".to_string(), true), ("sticky:80".to_string(), false)];
        let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        seen.insert("svc:80", BTreeSet::from(["10.0.0.1".to_string()]));
        seen.insert("sticky:80", BTreeSet::from(["10.0.0.2".to_string()]));
        assert!(!converged(&targets, &servers, &seen), "svc has not shown 10.0.0.2");
        seen.get_mut("svc:80").unwrap().insert("10.0.0.2".into());
        assert!(converged(&targets, &servers, &seen));
        seen.remove("sticky:80");
        assert!(!converged(&targets, &servers, &seen), "sticky never answered");
    }

    #[test]
    fn a_silent_or_stalled_node_is_given_up_only_after_another_converged_and_a_grace() {
        let (zero, one, ten) = (Duration::ZERO, Duration::from_secs(1), Duration::from_secs(10));
        let early = GiveUp::EarlyAfterOthers;
        assert!(!stop_waiting(early, false, ten, None), "nobody converged: wait");
        assert!(!stop_waiting(early, false, ten, Some(one)), "within the grace");
        assert!(stop_waiting(early, false, zero, Some(SILENT_GRACE)), "silent");
        assert!(!stop_waiting(early, true, one, Some(ten)), "some answers, and a new backend lately: maybe slow");
        assert!(stop_waiting(early, true, SILENT_GRACE, Some(ten)), "some backends answer, the rest never do");
    }

    #[test]
    fn a_verdict_on_the_wait_itself_waits_the_whole_timeout() {
        let ten = Duration::from_secs(10);
        assert!(!stop_waiting(GiveUp::AtTimeout, false, ten, Some(ten)), "silent, but may be slow");
        assert!(!stop_waiting(GiveUp::AtTimeout, true, ten, Some(ten)), "stalled, but may be slow");
    }
}
