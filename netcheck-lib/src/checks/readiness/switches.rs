//! Removal and re-add: which server agents are switched, in what order, and how each ends ready.
//!
//! A DNS cache holds an answer for its TTL (30 s on CoreDNS as kubeadm, kind and AKS configure it),
//! so one name can show one change per TTL. Re-adding the removal's own victim would wait for the
//! removal to show in DNS first, and then for a second TTL. With three or more server agents the two
//! experiments run at once on two agents instead: the re-add's victim is switched not ready quietly
//! first and followed through a headless Service created for it, whose name no cache has seen, so
//! its first answer already lacks the victim and the re-add is the one change that name shows.

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};

use super::experiment::{Limits, experiment};
use super::judge::judge;
use super::{READD, REMOVAL};
use crate::protocol::Action;
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::manifests::{ECHO_SERVICE, HEADLESS_SERVICE, fresh_service};
use crate::runner::{AgentPod, Session, endpoints};

/// Name prefix of the headless Service the re-add is followed through in DNS.
const READD_HEADLESS: &str = "netcheck-readd-";

/// Which of the two checks to answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wanted {
    pub(super) removal: bool,
    pub(super) readd: bool,
}

/// Runs what `wanted` asks: at once on two server agents when there are three or more (one keeps
/// serving), else one after the other on the only one or two.
pub(super) async fn removal_and_readd(session: &Session, wanted: Wanted, limits: Limits) -> Vec<CheckResult> {
    match session.agents.servers.as_slice() {
        [] => vec![CheckResult::new(REMOVAL, Status::Skip, Subject::default(), "no server agent to switch")],
        [first, second, _, ..] => {
            let removal = async {
                if !wanted.removal {
                    return Vec::new();
                }
                let e = experiment(session, first, false, limits, HEADLESS_SERVICE).await;
                let mut results = judge(REMOVAL, first, &e, limits);
                results.extend(make_ready_again(session, first, REMOVAL, limits).await);
                results
            };
            let readd = async {
                if !wanted.readd {
                    return Vec::new();
                }
                readd_on_its_own_name(session, second, limits).await
            };
            let (mut results, readded) = tokio::join!(removal, readd);
            results.extend(readded);
            results
        }
        [victim, ..] => one_after_another(session, victim, wanted, limits).await,
    }
}

/// Removal, then re-add of the same agent: re-add needs a removed endpoint, and the victim ends ready.
async fn one_after_another(session: &Session, victim: &AgentPod, wanted: Wanted, limits: Limits) -> Vec<CheckResult> {
    let mut results = Vec::new();
    let removal = experiment(session, victim, false, limits, HEADLESS_SERVICE).await;
    if wanted.removal {
        results.extend(judge(REMOVAL, victim, &removal, limits));
    }
    let readd = experiment(session, victim, true, limits, HEADLESS_SERVICE).await;
    if wanted.readd {
        results.extend(judge(READD, victim, &readd, limits));
    }
    results
}

/// Switches `victim` not ready, waits until the API lists it so in the echo Service and in a new
/// headless Service, and `maxPropagationMs` more for the data plane and DNS, then times its re-add.
async fn readd_on_its_own_name(session: &Session, victim: &AgentPod, limits: Limits) -> Vec<CheckResult> {
    let services: Api<Service> = Api::namespaced(session.cluster.client.clone(), &session.namespace);
    let mut manifest = fresh_service(&session.namespace, READD_HEADLESS);
    if let Some(spec) = manifest.spec.as_mut() {
        spec.cluster_ip = Some("None".into());
    }
    let subject = || Subject::default().named(format!("pod/{}", victim.pod)).at(victim.ip.clone());
    let created = match services.create(&PostParams::default(), &manifest).await {
        Ok(created) => created.metadata.name.unwrap_or_default(),
        Err(e) => {
            return vec![CheckResult::new(
                READD,
                Status::Error,
                subject(),
                format!("cannot create its headless Service: {e}"),
            )];
        }
    };
    let results = match switch_off_quietly(session, victim, &created, limits).await {
        Ok(()) => judge(READD, victim, &experiment(session, victim, true, limits, &created).await, limits),
        // Whatever stopped the removal, the agent must not stay switched off for what runs next.
        Err(r) => std::iter::once(*r).chain(make_ready_again(session, victim, READD, limits).await).collect(),
    };
    services.delete(&created, &DeleteParams::default()).await.ok();
    results
}

/// The re-add's victim switched not ready, seen so by the API in both Services, and given the
/// propagation limit to leave the data plane and DNS. Err: the result that says why it was not.
async fn switch_off_quietly(
    session: &Session,
    victim: &AgentPod,
    headless: &str,
    limits: Limits,
) -> Result<(), Box<CheckResult>> {
    let subject = || Subject::default().named(format!("pod/{}", victim.pod)).at(victim.ip.clone());
    let error = |why: String| Box::new(CheckResult::new(READD, Status::Error, subject(), why));
    if let Err(e) = session.channel.send(victim, Action::SetReady { ready: false }).await {
        return Err(error(format!("the victim {} did not take the readiness order: {e}", victim.pod)));
    }
    let limit = limits.max_api + limits.max_propagation;
    for service in [ECHO_SERVICE, headless] {
        match endpoints::watch_until_ready_is(&session.cluster, &session.namespace, service, &victim.ip, false, limit)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => {
                let mut r = CheckResult::new(
                    READD,
                    Status::Fail,
                    subject(),
                    format!(
                        "the API never marked the endpoint not ready in service/{service} within {} ms of the \
                         readiness switch, so there was nothing to re-add",
                        limit.as_millis()
                    ),
                );
                r.diagnosis = Some(Diagnosis {
                    likely_cause: "the endpoints controller (kube-controller-manager) or the kubelet's readiness \
                                   report"
                        .into(),
                    evidence: vec![format!(
                        "{} was switched not ready by order; its endpoints never followed",
                        victim.pod
                    )],
                    next_step: Some("check kube-controller-manager and the kubelet on the pod's node".into()),
                });
                return Err(Box::new(r));
            }
            Err(e) => return Err(error(format!("cannot follow the endpoints of service/{service}: {e}"))),
        }
    }
    tokio::time::sleep(limits.max_propagation).await;
    Ok(())
}

/// Switches a victim ready again, so that whatever runs next has every server agent; an error result
/// of `check` when the API does not list it ready within the limits.
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
        Subject::default().named(format!("pod/{}", victim.pod)).at(victim.ip.clone()),
        format!("after the experiment, {} {why}; later checks see one backend fewer", victim.pod),
    ))
}
