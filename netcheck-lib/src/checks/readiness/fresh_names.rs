//! Following a readiness switch in DNS through names that no cache has seen.
//!
//! A DNS cache (CoreDNS's `cache 30`, NodeLocal DNSCache) serves an answer it already holds until the
//! answer's TTL runs out, so asking one name over and over times the cache, not the DNS server: up to
//! 30 s of waiting that says nothing about the cluster. Each name here is a headless Service over the
//! server agents, created for one experiment and first asked only after the API has shown the switch,
//! so its first answer is the DNS server's view at that moment. Names are asked one after another on
//! a widening schedule ([`ASK_AFTER_API_MS`]): a server that follows the API at once shows the change
//! on the first; one that lags shows it on a later one.
//!
//! What a cached client sees on top of this is the record's TTL, which is configuration, not
//! propagation.

use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};

use crate::protocol::{Action, DnsProbe, DnsQuery, OrderResult};
use crate::runner::manifests::fresh_service;
use crate::runner::{AgentPod, Session, endpoints};

/// Name prefix of the headless Services a switch is followed through.
const PREFIX: &str = "netcheck-fresh-";

/// When each name is first asked, in ms after the runner saw the API show the switch: early names
/// catch a DNS server that follows the API at once, the later ones one that lags by seconds.
pub(super) const ASK_AFTER_API_MS: [u64; 8] = [0, 100, 250, 500, 1_000, 1_750, 2_750, 4_000];

/// Answers in a row, each from a name not asked before, that must show the change: a cluster DNS runs
/// as several replicas, and one answer shows only the one that was asked.
pub(super) const CONFIRMATIONS: usize = 2;

/// The headless Services of one experiment, deleted by [`FreshNames::delete`].
pub(super) struct FreshNames {
    services: Vec<String>,
}

impl FreshNames {
    /// Creates one headless Service per entry of [`ASK_AFTER_API_MS`] and waits up to `limit` until the
    /// API lists `ip` with readiness `listed_ready` in each (the state before the switch), so that the
    /// names start from the state the switch changes. A controller that does not list them is not
    /// judged here: the experiment's API stage names it. Deletes what it made when it fails.
    pub(super) async fn create(
        session: &Session,
        ip: &str,
        listed_ready: bool,
        limit: Duration,
    ) -> Result<Self, String> {
        let api: Api<Service> = Api::namespaced(session.cluster.client.clone(), &session.namespace);
        let mut manifest = fresh_service(&session.namespace, PREFIX);
        if let Some(spec) = manifest.spec.as_mut() {
            spec.cluster_ip = Some("None".into());
        }
        let pp = PostParams::default();
        let made = join_all(ASK_AFTER_API_MS.iter().map(|_| api.create(&pp, &manifest))).await;
        let mut names = FreshNames { services: Vec::new() };
        let mut failure = None;
        for made in made {
            match made {
                Ok(svc) => names.services.push(svc.metadata.name.unwrap_or_default()),
                Err(e) => failure = Some(format!("cannot create a headless Service to follow DNS through: {e}")),
            }
        }
        if failure.is_none() {
            failure = names.await_listed(session, ip, listed_ready, limit).await.err();
        }
        match failure {
            None => Ok(names),
            Some(why) => {
                names.delete(session).await;
                Err(why)
            }
        }
    }

    async fn await_listed(&self, session: &Session, ip: &str, ready: bool, limit: Duration) -> Result<(), String> {
        let watches = self.services.iter().map(|service| async move {
            endpoints::watch_until_ready_is(&session.cluster, &session.namespace, service, ip, ready, limit)
                .await
                .map(|_| ())
                .map_err(|e| format!("cannot follow the endpoints of service/{service}: {e}"))
        });
        join_all(watches).await.into_iter().collect()
    }

    /// Deletes the Services (the namespace's deletion would too; this keeps a long run's API lean).
    pub(super) async fn delete(self, session: &Session) {
        let api: Api<Service> = Api::namespaced(session.cluster.client.clone(), &session.namespace);
        let dp = DeleteParams::default();
        join_all(self.services.iter().map(|name| api.delete(name, &dp))).await;
    }

    /// Asks the names from `agent` on the schedule, from `api_seen` on, until [`CONFIRMATIONS`] answers
    /// in a row show `ip` with presence `ready`. Each answer is placed on the runner's clock, in ms
    /// from `switched`: (time, whether it had `ip`; None when it showed neither, such as a timeout).
    /// Err: an order that brought nothing back.
    pub(super) async fn follow(
        &self,
        session: &Session,
        agent: &AgentPod,
        ip: &str,
        ready: bool,
        times: FollowTimes,
    ) -> Result<super::experiment::DnsTimeline, String> {
        let mut answers = Vec::new();
        for (service, after_ms) in self.services.iter().zip(ASK_AFTER_API_MS) {
            let ask_at = times.api_seen + Duration::from_millis(after_ms);
            tokio::time::sleep_until(ask_at.into()).await;
            let name =
                crate::checks::dns_expect::fqdn(&[service, &session.namespace, "svc"], &session.options.cluster_domain);
            let probe = DnsProbe {
                queries: vec![DnsQuery { name, record_type: "A".into(), server: None, tcp: false }],
                attempts: 1,
                timeout_ms: 1000,
                interval_ms: 0,
                until_answered_ms: None,
                until_presence: None,
            };
            let sent = Instant::now();
            let result = session.channel.send(agent, Action::Dns(probe)).await.map_err(|e| e.to_string())?;
            let at = super::experiment::signed_ms(sent, times.switched) + times.delivery_ms as i64;
            answers.push((at, presence(first_records(&result), ip)));
            if shows(&answers, ready) {
                break;
            }
        }
        Ok(answers)
    }
}

/// The moments [`FreshNames::follow`] places its answers by.
#[derive(Debug, Clone, Copy)]
pub(super) struct FollowTimes {
    /// When the runner switched the victim.
    pub(super) switched: Instant,
    /// When the runner saw the API show the switch.
    pub(super) api_seen: Instant,
    /// Half an order's round trip to the agent: when, after the send, its query goes out.
    pub(super) delivery_ms: u64,
}

fn first_records(result: &OrderResult) -> Option<&[String]> {
    result.attempts.first()?.outcome.records()
}

/// Whether an answer had `ip`: Some(true) when it did, Some(false) when it had records and not `ip`,
/// None when it proves neither: no records (a DNS server that never learned of the name says
/// NXDOMAIN), a timeout, or no answer at all.
fn presence(records: Option<&[String]>, ip: &str) -> Option<bool> {
    let records = records.filter(|r| !r.is_empty())?;
    Some(records.iter().any(|r| r == ip))
}

/// Whether the last [`CONFIRMATIONS`] answers all showed the wanted presence.
fn shows(answers: &[(i64, Option<bool>)], ready: bool) -> bool {
    answers.len() >= CONFIRMATIONS
        && answers[answers.len() - CONFIRMATIONS..].iter().all(|(_, has)| *has == Some(ready))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_shows_only_when_the_last_answers_agree() {
        assert!(!shows(&[(100, Some(false))], false), "one answer is one replica");
        assert!(shows(&[(100, Some(true)), (200, Some(false)), (350, Some(false))], false));
        assert!(!shows(&[(100, Some(false)), (200, None)], false), "a timeout proves nothing");
        assert!(!shows(&[(100, Some(false)), (200, Some(true))], false), "a replica still has it");
        assert!(shows(&[(100, Some(true)), (200, Some(true))], true));
    }

    #[test]
    fn only_an_answer_with_records_can_lack_the_victim() {
        let rec = |ips: &[&str]| ips.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(presence(Some(&rec(&["10.0.0.1", "10.0.0.2"])), "10.0.0.2"), Some(true));
        assert_eq!(presence(Some(&rec(&["10.0.0.1"])), "10.0.0.2"), Some(false));
        assert_eq!(presence(Some(&rec(&[])), "10.0.0.2"), None, "an empty answer proves nothing");
        assert_eq!(presence(None, "10.0.0.2"), None, "NXDOMAIN or a timeout proves nothing");
    }

    #[test]
    fn the_schedule_widens_and_leaves_room_to_confirm() {
        assert!(ASK_AFTER_API_MS.windows(2).all(|w| w[0] < w[1]));
        assert!(ASK_AFTER_API_MS.len() > CONFIRMATIONS);
    }
}
