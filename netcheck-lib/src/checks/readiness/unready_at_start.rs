//! `endpoints/unready-at-start`: a late server agent created not ready gets no traffic, then is re-added.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::await_condition;

use super::UNREADY_AT_START;
use super::experiment::{Limits, experiment, paced};
use super::judge::judge;
use crate::protocol::{Action, Attempt, HttpProbe};
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::manifests::ECHO_HTTP_PORT;
use crate::runner::{AgentPod, Session};

/// The pod of `endpoints/unready-at-start`.
const LATE_POD: &str = "netcheck-late";
/// Traffic while the late pod runs but is not ready, before the experiment's own lead.
const UNREADY_WINDOW: Duration = Duration::from_secs(2);

/// A server agent created not ready: while it stays so, no client may reach it through the ClusterIP;
/// once switched ready, the re-add times are measured as for `endpoints/readiness-readd`. The late pod
/// is left running, ready; [`delete_late_pod`] removes it.
pub(super) async fn unready_at_start(session: &Session, limits: Limits) -> Vec<CheckResult> {
    let subject = || Subject::default().named(format!("pod/{LATE_POD}"));
    let late = match start_late_pod(session).await {
        Ok(late) => late,
        Err(e) => {
            delete_late_pod(session).await;
            return vec![CheckResult::new(UNREADY_AT_START, Status::Error, subject(), e)];
        }
    };
    let http = HttpProbe {
        targets: vec![format!("{}:{ECHO_HTTP_PORT}", session.agents.cluster_ip)],
        path: "/".into(),
        attempts: paced(UNREADY_WINDOW, limits.interval).0,
        concurrency: 16,
        timeout_ms: 1000,
        interval_ms: paced(UNREADY_WINDOW, limits.interval).1,
        any_server: false,
        keep_body: false,
        give_up_after: 0,
        until_answers: None,
    };
    let late_ip = late.ip.as_str();
    // Per node: answers from the unready pod, or why the order brought nothing back.
    let while_unready: BTreeMap<String, Result<usize, String>> =
        join_all(session.agents.clients.iter().map(|(node, agent)| {
            let http = http.clone();
            async move {
                let r = session.channel.send(agent, Action::Http(http)).await;
                let reached =
                    crate::checks::whole_attempts(r).map(|a| a.iter().filter(|a| answered_by(a, late_ip)).count());
                (node.clone(), reached)
            }
        }))
        .await
        .into_iter()
        .collect();
    // The late pod is deleted by the caller once no experiment sends traffic through the echo Service:
    // deleted now, it would drop the requests still routed to it.
    let e = experiment(session, &late, true, limits).await;
    let mut results = judge(UNREADY_AT_START, &late, &e, limits);
    for r in &mut results {
        let node = r.subject.source_node.clone().unwrap_or_default();
        let unready_answers = match while_unready.get(&node) {
            Some(Ok(n)) => *n,
            // No evidence from the unready window is not "0 answers".
            Some(Err(why)) => {
                *r = unready_window_lost(r, &format!("its traffic order did not come back: {why}"));
                continue;
            }
            None => {
                *r = unready_window_lost(r, "no traffic was sent from it");
                continue;
            }
        };
        let early = unready_answers
            + e.nodes.get(&node).map_or(0, |t| {
                t.requests.iter().filter(|(at, ip)| *at < 0 && ip.as_deref() == Some(late.ip.as_str())).count()
            });
        *r = r.clone().measure("answeredWhileUnready", early);
        if early > 0 {
            r.status = Status::Fail;
            r.message = format!("{LATE_POD} answered {early} requests from {node} before it was ready; {}", r.message);
            r.diagnosis = Some(Diagnosis {
                likely_cause: format!("the service proxy on {node} sends traffic to endpoints that are not ready"),
                evidence: vec![format!("{early} answers from {} while the API listed it not ready", late.ip)],
                next_step: Some(
                    "check which endpoints kube-proxy programs (notReadyAddresses must be left out)".into(),
                ),
            });
        }
    }
    results
}

/// The result for a node whose traffic during the unready window is unknown: an error, never a pass.
fn unready_window_lost(r: &CheckResult, why: &str) -> CheckResult {
    let mut lost = r.clone();
    lost.status = Status::Error;
    lost.message = format!("while {LATE_POD} was not ready, {why}; whether traffic reached it is unknown");
    lost.diagnosis = None;
    lost
}

fn answered_by(a: &Attempt, ip: &str) -> bool {
    a.outcome.identity().is_some_and(|i| i.pod_ip == ip)
}

/// Creates the not-ready server agent and waits until it runs (with an IP, its container started).
async fn start_late_pod(session: &Session) -> Result<AgentPod, String> {
    let pods: Api<Pod> = Api::namespaced(session.cluster.client.clone(), &session.namespace);
    let pod = crate::runner::manifests::unready_server_pod(&session.namespace, LATE_POD, &session.template);
    pods.create(&PostParams::default(), &pod).await.map_err(|e| format!("cannot create pod/{LATE_POD}: {e}"))?;
    let running = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()).is_some_and(|s| {
            s.pod_ip.is_some()
                && s.container_statuses
                    .iter()
                    .flatten()
                    .all(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
                && !s.container_statuses.as_ref().is_none_or(|c| c.is_empty())
        })
    };
    let pod = tokio::time::timeout(Duration::from_secs(60), await_condition(pods, LATE_POD, running))
        .await
        .map_err(|_| format!("pod/{LATE_POD} did not start within 60 s"))?
        .map_err(|e| format!("watching pod/{LATE_POD}: {e}"))?
        .ok_or_else(|| format!("pod/{LATE_POD} disappeared"))?;
    let status = pod.status.unwrap_or_default();
    Ok(AgentPod {
        pod: LATE_POD.into(),
        node: pod.spec.and_then(|s| s.node_name).unwrap_or_default(),
        ip: status.pod_ip.unwrap_or_default(),
    })
}

/// Deletes the late pod (when it exists).
pub(super) async fn delete_late_pod(session: &Session) {
    let pods: Api<Pod> = Api::namespaced(session.cluster.client.clone(), &session.namespace);
    pods.delete(LATE_POD, &DeleteParams::default()).await.ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_unready_window_is_an_error_not_a_pass() {
        let passed = CheckResult::new(UNREADY_AT_START, Status::Pass, Subject::from_node("node-b"), "API 1 ms");
        let lost = unready_window_lost(&passed, "its traffic order did not come back: timed out");
        assert_eq!(lost.status, Status::Error);
        assert!(lost.message.contains("did not come back: timed out"), "{}", lost.message);
        assert_eq!(lost.subject, passed.subject);
    }
}
