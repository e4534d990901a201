//! Removal and re-add: one server agent is switched not ready, then ready again, and ends ready.
//!
//! Each experiment's traffic ends once its outcome is known (`AnswerWatch`), and DNS is followed through
//! fresh names, so the two run one after the other in a few seconds: the re-add starts from an
//! endpoint that the removal showed gone from every node's data plane and DNS.

use super::experiment::{Experiment, Limits, experiment};
use super::judge::judge;
use super::{READD, REMOVAL, victim_subject};
use crate::protocol::Action;
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::manifests::ECHO_SERVICE;
use crate::runner::{AgentPod, Session, endpoints};

/// Which of the two checks to answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wanted {
    pub(super) removal: bool,
    pub(super) readd: bool,
}

impl Wanted {
    fn ids(self) -> impl Iterator<Item = &'static str> {
        [(self.removal, REMOVAL), (self.readd, READD)].into_iter().filter(|(on, _)| *on).map(|(_, id)| id)
    }
}

/// Runs what `wanted` asks on the first server agent: removal, then re-add. It ends ready.
pub(super) async fn removal_and_readd(session: &Session, wanted: Wanted, limits: Limits) -> Vec<CheckResult> {
    match session.agents.servers.first() {
        None => wanted
            .ids()
            .map(|id| CheckResult::new(id, Status::Skip, Subject::default(), "no server agent to switch"))
            .collect(),
        Some(victim) => one_after_another(session, victim, wanted, limits).await,
    }
}

/// Removal, then re-add of the same agent: re-add needs a removed endpoint, and the victim ends ready.
async fn one_after_another(session: &Session, victim: &AgentPod, wanted: Wanted, limits: Limits) -> Vec<CheckResult> {
    let mut results = Vec::new();
    let removal = experiment(session, victim, false, limits).await;
    if wanted.removal {
        results.extend(judge(REMOVAL, victim, &removal, limits));
    }
    if let Some(why) = not_removed(victim, &removal, ECHO_SERVICE, limits) {
        if wanted.readd {
            results.push(why);
        }
        results.extend(make_ready_again(session, victim, READD, limits).await);
        return results;
    }
    let readd = experiment(session, victim, true, limits).await;
    if wanted.readd {
        results.extend(judge(READD, victim, &readd, limits));
    }
    results.extend(make_ready_again(session, victim, READD, limits).await);
    results
}

/// The re-add's result when its victim's removal did not happen: nothing to re-add, and why.
fn not_removed(victim: &AgentPod, removal: &Experiment, service: &str, limits: Limits) -> Option<CheckResult> {
    let subject = victim_subject(victim);
    if let Some(error) = &removal.error {
        return Some(CheckResult::new(READD, Status::Error, subject, format!("{error}; nothing to re-add")));
    }
    removal.api.is_none().then(|| never_listed_not_ready(victim, service, limits))
}

/// The re-add's failure when the API never listed its victim not ready in `service`.
fn never_listed_not_ready(victim: &AgentPod, service: &str, limits: Limits) -> CheckResult {
    let mut r = CheckResult::new(
        READD,
        Status::Fail,
        victim_subject(victim),
        format!(
            "the API never marked the endpoint not ready in service/{service} within {} ms of the readiness switch, \
             so there was nothing to re-add",
            (limits.max_api + limits.max_propagation).as_millis()
        ),
    );
    r.diagnosis = Some(Diagnosis {
        likely_cause: "the endpoints controller (kube-controller-manager) or the kubelet's readiness report".into(),
        evidence: vec![format!("{} was switched not ready by order; its Endpoints never followed", victim.pod)],
        next_step: Some("check kube-controller-manager and the kubelet on the pod's node".into()),
    });
    r
}

/// Switches a victim ready again, so that whatever runs next has every server agent (at once when it
/// is listed ready already); an error result of `check` when the API does not list it ready within
/// the limits.
async fn make_ready_again(session: &Session, victim: &AgentPod, check: &str, limits: Limits) -> Option<CheckResult> {
    let limit = limits.max_api + limits.max_propagation;
    let why = match session.channel.send(victim, Action::SetReady { ready: true }).await {
        Err(e) => format!("did not take the order to turn ready again: {e}"),
        Ok(_) => {
            match endpoints::watch_until_ready_is(
                &session.cluster,
                &session.namespace,
                ECHO_SERVICE,
                &victim.ip,
                true,
                limit,
            )
            .await
            {
                Ok(Some(_)) => return None,
                Ok(None) => format!("was not listed ready again within {} ms", limit.as_millis()),
                Err(e) => format!("could not be followed back to ready: {e}"),
            }
        }
    };
    Some(CheckResult::new(
        check,
        Status::Error,
        victim_subject(victim),
        format!("after its readiness switches, {} {why}; later checks see one backend fewer", victim.pod),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;

    fn limits() -> Limits {
        Limits {
            interval: Duration::from_millis(20),
            sustained: 100,
            max_api: Duration::from_secs(4),
            max_propagation: Duration::from_secs(2),
        }
    }

    #[test]
    fn a_removal_that_never_happened_leaves_nothing_to_readd() {
        let victim = AgentPod { pod: "server-0".into(), node: "node-a".into(), ip: "10.244.1.5".into() };
        let removed = Experiment { api: Some(Duration::from_millis(900)), nodes: BTreeMap::new(), error: None };
        assert!(not_removed(&victim, &removed, ECHO_SERVICE, limits()).is_none());
        let stuck = Experiment { api: None, nodes: BTreeMap::new(), error: None };
        let r = not_removed(&victim, &stuck, ECHO_SERVICE, limits()).expect("a result");
        assert_eq!((r.check.as_str(), r.status), (READD, Status::Fail));
        assert!(r.message.contains("service/netcheck-echo within 6000 ms") && r.message.contains("nothing to re-add"));
        assert!(r.diagnosis.expect("a diagnosis").likely_cause.contains("kube-controller-manager"));
        let broken = Experiment { api: None, nodes: BTreeMap::new(), error: Some("the victim did not take it".into()) };
        let r = not_removed(&victim, &broken, ECHO_SERVICE, limits()).expect("a result");
        assert_eq!(r.status, Status::Error, "no observation is no verdict on the cluster");
    }

    #[test]
    fn with_no_server_agent_each_wanted_check_gets_its_own_skip() {
        let ids: Vec<&str> = Wanted { removal: false, readd: true }.ids().collect();
        assert_eq!(ids, [READD]);
        assert_eq!(Wanted { removal: true, readd: true }.ids().count(), 2);
    }
}
