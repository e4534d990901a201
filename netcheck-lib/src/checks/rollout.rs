//! `endpoints/rollout`: a Deployment of agents behind its own Service is replaced by a rolling update
//! (surge 1, unavailable 0, graceful shutdown) while every client sends paced requests through the
//! ClusterIP; per node, the failed requests and the longest gap between answers are counted. This is
//! the signal an upgrade gate needs: does a routine rollout drop traffic?
//!
//! Traffic goes in consecutive orders of [`CHUNK`] until the rollout is complete, then one order of
//! [`TAIL`]; gaps are measured inside an order only, so the hand-over between orders is never counted
//! against the cluster. The Deployment is created as soon as the round starts, beside the `Alone`
//! round; the first request waits for [`AfterAlone`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;

use serde::Deserialize;

use super::{AfterAlone, selected};
use crate::catalog::{CheckSpec, int, millis, parses_into};
use crate::protocol::{Action, Attempt, HttpProbe};
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::manifests::{self, ECHO_HTTP_PORT, ROLLOUT_SERVICE};
use crate::runner::settle::{self, NodeSettle};
use crate::runner::{Session, services};
use crate::scenario::Scenario;

const ROLLOUT: &str = "endpoints/rollout";

/// The check this round answers.
pub(crate) static SPECS: &[CheckSpec] = &[CheckSpec {
    id: ROLLOUT,
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
    parse_params: parses_into::<RolloutParams>,
}];

/// `endpoints/rollout`'s parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RolloutParams {
    interval_ms: u64,
    max_failed_requests: usize,
    max_gap_ms: u64,
    rollout_timeout_ms: u64,
}
/// Replicas of the rolled Deployment.
const REPLICAS: i32 = 3;
/// Length of one traffic order.
const CHUNK: Duration = Duration::from_secs(4);
/// Traffic before the update starts, so that every node's data plane is seen serving first.
const LEAD: Duration = Duration::from_secs(2);
/// Traffic after the rollout is complete, so that every node is seen served by the new pods alone. The
/// chunk under way when it completed may have ended a moment later: a whole [`CHUNK`] again only
/// lengthened the run.
const TAIL: Duration = Duration::from_secs(1);

/// Runs the rollout experiment.
pub async fn run(session: &Session, scenario: &Scenario, after_alone: &AfterAlone) -> Vec<CheckResult> {
    let Some(check) = selected(scenario, ROLLOUT) else { return vec![] };
    let p: RolloutParams = check.params.typed();
    let (interval, max_failed) = (Duration::from_millis(p.interval_ms), p.max_failed_requests);
    let (max_gap, limit) = (Duration::from_millis(p.max_gap_ms), Duration::from_millis(p.rollout_timeout_ms));
    let subject = || Subject::default().named(format!("deployment/{ROLLOUT_SERVICE}"));
    let outcome = experiment(session, interval, limit, after_alone).await;
    delete_objects(session).await;
    let (rollout_ms, per_node) = match outcome {
        Ok(o) => o,
        Err(NotRun::Error(e)) => return vec![CheckResult::new(ROLLOUT, Status::Error, subject(), e)],
        Err(NotRun::NotListed { ready, want }) => return vec![unlisted_result(ready, want)],
        Err(NotRun::Unserved { served, unserved, target }) => return unserved_results(&served, &unserved, &target),
    };
    per_node
        .into_iter()
        .map(|(node, chunks)| {
            let subject = Subject::from_node(&node).named(format!("deployment/{ROLLOUT_SERVICE}"));
            // A chunk whose order did not come back is missing data, never "no failed requests".
            if let Some(missing) = missing_chunks(&chunks) {
                return CheckResult::new(ROLLOUT, Status::Error, subject, missing);
            }
            let chunks: Vec<Vec<Attempt>> = chunks.into_iter().flatten().collect();
            let tally = tally(&chunks);
            let pass = tally.failed <= max_failed && tally.longest_gap_ms <= max_gap.as_millis() as u64;
            let message = format!(
                "{} of {} requests failed, longest gap {} ms, during a {} ms rollout of {REPLICAS} pods",
                tally.failed, tally.sent, tally.longest_gap_ms, rollout_ms
            );
            let mut r = CheckResult::new(ROLLOUT, if pass { Status::Pass } else { Status::Fail }, subject, message)
                .measure("failedRequests", tally.failed)
                .measure("requests", tally.sent)
                .measure("longestGapMs", tally.longest_gap_ms)
                .measure("rolloutMs", rollout_ms)
                .measure("sampleIntervalMs", interval.as_millis() as u64);
            if !pass {
                r.diagnosis = Some(Diagnosis {
                    likely_cause: format!(
                        "traffic from {node} still went to pods that were leaving or not yet serving (endpoint \
                         removal slower than the pods' shutdown, or new pods listed before they answered)"
                    ),
                    evidence: tally.failures.iter().take(5).cloned().collect(),
                    next_step: Some(
                        "compare endpoints/readiness-removal's data-plane time with the pods' shutdown delay".into(),
                    ),
                });
            }
            r
        })
        .collect()
}

/// Per node, one entry per traffic chunk: its attempts, or why its order brought nothing back.
type Chunks = Vec<Result<Vec<Attempt>, String>>;

/// Why a node's chunks cannot be judged: an order that did not come back, or no request at all.
fn missing_chunks(chunks: &Chunks) -> Option<String> {
    let lost: Vec<(usize, &String)> =
        chunks.iter().enumerate().filter_map(|(i, c)| Some((i, c.as_ref().err()?))).collect();
    if let Some((i, why)) = lost.first() {
        return Some(format!(
            "{} of {} traffic chunks came back without results (chunk {}: {why}): the rollout's effect on this node is unknown",
            lost.len(),
            chunks.len(),
            i + 1
        ));
    }
    if chunks.iter().flatten().all(|attempts| attempts.is_empty()) {
        return Some("the client sent no request during the rollout: nothing to judge".into());
    }
    None
}

/// Why the rollout did not run.
#[derive(Debug)]
enum NotRun {
    /// What netcheck could not do or observe: no verdict on the cluster.
    Error(String),
    /// The API never listed every available rollout pod ready in the Service's endpoints: the endpoints
    /// controller is the finding.
    NotListed { ready: usize, want: usize },
    /// The new Service never reached every ready pod from some nodes: their data plane is the finding.
    Unserved { served: Vec<String>, unserved: Vec<String>, target: String },
}

/// The result when the endpoints never listed every available rollout pod ready: the rollout was not run.
fn unlisted_result(ready: usize, want: usize) -> CheckResult {
    let subject = Subject::default().named(format!("deployment/{ROLLOUT_SERVICE}"));
    let mut r = CheckResult::new(
        ROLLOUT,
        Status::Fail,
        subject,
        format!(
            "the endpoints of service/{ROLLOUT_SERVICE} listed {ready} of {want} available pods ready within {} s: the \
             rollout was not run",
            settle::SETTLE_TIMEOUT.as_secs()
        ),
    );
    r.diagnosis = Some(Diagnosis {
        likely_cause: "the endpoints controller (kube-controller-manager) did not list the Deployment's ready pods"
            .into(),
        evidence: vec![format!(
            "deployment/{ROLLOUT_SERVICE} reported {want} pods available; its Service's EndpointSlices listed {ready} \
             of them ready"
        )],
        next_step: Some("check kube-controller-manager's logs and that it runs".into()),
    });
    r
}

/// The results when some nodes never reached every rollout pod, which the API listed ready, through the
/// new Service: a failure on each such node's service proxy; the others are not judged (the rollout
/// did not run), never passed.
fn unserved_results(served: &[String], unserved: &[String], target: &str) -> Vec<CheckResult> {
    let subject = |node: &str| Subject::from_node(node).named(format!("deployment/{ROLLOUT_SERVICE}"));
    let failed = unserved.iter().map(|node| {
        let mut r = CheckResult::new(
            ROLLOUT,
            Status::Fail,
            subject(node),
            format!(
                "{node} never reached every rollout pod through {target}, although the API listed them ready: the \
                 rollout was not run"
            ),
        );
        r.diagnosis = Some(Diagnosis {
            likely_cause: format!("the service proxy (kube-proxy) on {node} did not program the new Service"),
            evidence: vec![format!(
                "{target} from {node}: not every pod the endpoints listed ready answered within {} s",
                settle::SETTLE_TIMEOUT.as_secs()
            )],
            next_step: Some("check kube-proxy's logs and that it runs on that node".into()),
        });
        r
    });
    let skipped = served.iter().map(|node| {
        let why = format!("not run: {} never reached every rollout pod", unserved.join(", "));
        CheckResult::new(ROLLOUT, Status::Skip, subject(node), why)
    });
    failed.chain(skipped).collect()
}

async fn experiment(
    session: &Session,
    interval: Duration,
    limit: Duration,
    after_alone: &AfterAlone,
) -> Result<(u64, BTreeMap<String, Chunks>), NotRun> {
    let client = &session.cluster.client;
    let ns = &session.namespace;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let (deployment, service) = manifests::rollout_objects(ns, REPLICAS, &session.template);
    let pp = PostParams::default();
    deployments
        .create(&pp, &deployment)
        .await
        .map_err(|e| NotRun::Error(format!("cannot create the rollout Deployment: {e}")))?;
    let svc = services
        .create(&pp, &service)
        .await
        .map_err(|e| NotRun::Error(format!("cannot create the rollout Service: {e}")))?;
    let cluster_ip =
        services::cluster_ip(&svc).ok_or_else(|| NotRun::Error("the rollout Service has no ClusterIP".into()))?;
    let target = format!("{cluster_ip}:{ECHO_HTTP_PORT}");
    wait_complete(&deployments, limit)
        .await
        .map_err(|e| NotRun::Error(format!("the rollout Deployment never became available: {e}")))?;
    after_alone.wait().await;
    served_everywhere(session, &target).await?;

    let rolling = async {
        tokio::time::sleep(LEAD).await;
        let started = Instant::now();
        let patch = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
            "netcheck.dev/restarted-at": jiff::Timestamp::now().to_string()
        }}}}});
        deployments
            .patch(ROLLOUT_SERVICE, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| format!("cannot start the rollout: {e}"))?;
        wait_complete(&deployments, limit).await?;
        Ok::<u64, String>(started.elapsed().as_millis() as u64)
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let traffic = async {
        let mut per_node: BTreeMap<String, Chunks> = BTreeMap::new();
        loop {
            // Read before the chunk: the chunk that starts after completion is the tail, and the last.
            let tail = done.load(std::sync::atomic::Ordering::SeqCst);
            for (node, r) in chunk(session, &target, interval, if tail { TAIL } else { CHUNK }).await {
                per_node.entry(node).or_default().push(r);
            }
            if tail {
                break per_node;
            }
        }
    };
    let rolled = async {
        let r = rolling.await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    };
    let (rollout_ms, per_node) = tokio::join!(rolled, traffic);
    let rollout_ms = rollout_ms.map_err(NotRun::Error)?;
    // The lead chunk(s) before the update count too: a pod must also be served steadily before it.
    Ok((rollout_ms, per_node))
}

/// Waits until the API lists every rollout pod ready and every client has seen each answer through the
/// Service, so that a new Service's programming is not counted as rollout loss.
async fn served_everywhere(session: &Session, target: &str) -> Result<(), NotRun> {
    let pods: Api<Pod> = Api::namespaced(session.cluster.client.clone(), &session.namespace);
    let lp = ListParams::default().labels(&format!("{}=rollout", manifests::COMPONENT_LABEL));
    let list = pods.list(&lp).await.map_err(|e| NotRun::Error(format!("cannot list the rollout pods: {e}")))?;
    let ips: Vec<String> = list.items.iter().filter_map(|p| p.status.as_ref()?.pod_ip.clone()).collect();
    if ips.len() != REPLICAS as usize {
        return Err(NotRun::Error(format!(
            "the API lists {} rollout pods with an IP, not {REPLICAS}, although the Deployment is available",
            ips.len()
        )));
    }
    let ips: BTreeSet<&str> = ips.iter().map(String::as_str).collect();
    let listed = settle::api_lists_ready(&session.cluster, &session.namespace, ROLLOUT_SERVICE, &ips)
        .await
        .map_err(|e| NotRun::Error(e.to_string()))?;
    if !settle::lists_all_ready(&listed, &ips) {
        let ready = listed.iter().filter(|e| e.ready && ips.contains(e.ip.as_str())).count();
        return Err(NotRun::NotListed { ready, want: ips.len() });
    }
    let converged = settle::data_plane_converged(
        &session.channel,
        &session.agents,
        &[(target.to_string(), true)],
        &ips,
        settle::GiveUp::AtTimeout,
    )
    .await;
    let (mut served, mut unserved) = (Vec::new(), Vec::new());
    for (node, how) in converged.per_node {
        match how {
            NodeSettle::Converged(_) => served.push(node),
            NodeSettle::NotConverged => unserved.push(node),
            NodeSettle::OrderFailed(why) => {
                return Err(NotRun::Error(format!(
                    "the agent on {node} brought no answer back while the new Service was being programmed: {why}"
                )));
            }
        }
    }
    if unserved.is_empty() {
        return Ok(());
    }
    Err(NotRun::Unserved { served, unserved, target: target.to_string() })
}

async fn chunk(
    session: &Session,
    target: &str,
    interval: Duration,
    length: Duration,
) -> Vec<(String, Result<Vec<Attempt>, String>)> {
    // At least one request, whatever the pace: a chunk without requests would judge nothing.
    let attempts = (length.as_millis() / interval.as_millis().max(1)).max(1) as u32;
    let probe = HttpProbe {
        targets: vec![target.to_string()],
        path: "/".into(),
        attempts,
        concurrency: 16,
        timeout_ms: 1000,
        interval_ms: interval.as_millis() as u64,
        any_server: false,
        keep_body: false,
        give_up_after: 0,
        until_answers: None,
    };
    let results = session.order_every_client(|_| Action::Http(probe.clone())).await;
    results.into_iter().map(|(node, r)| (node, super::whole_attempts(r))).collect()
}

/// Waits until the Deployment's newest template is fully rolled out and available.
async fn wait_complete(deployments: &Api<Deployment>, limit: Duration) -> Result<(), String> {
    let complete = |d: Option<&Deployment>| {
        d.is_some_and(|d| {
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let generation = d.metadata.generation.unwrap_or(0);
            d.status.as_ref().is_some_and(|s| {
                s.observed_generation.unwrap_or(0) >= generation
                    && s.updated_replicas.unwrap_or(0) == want
                    && s.available_replicas.unwrap_or(0) == want
                    && s.replicas.unwrap_or(0) == want
            })
        })
    };
    match tokio::time::timeout(limit, await_condition(deployments.clone(), ROLLOUT_SERVICE, complete)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("watching deployment/{ROLLOUT_SERVICE}: {e}")),
        Err(_) => Err(format!("deployment/{ROLLOUT_SERVICE} did not complete within {} ms", limit.as_millis())),
    }
}

async fn delete_objects(session: &Session) {
    let client = &session.cluster.client;
    let dp = DeleteParams::background();
    Api::<Deployment>::namespaced(client.clone(), &session.namespace).delete(ROLLOUT_SERVICE, &dp).await.ok();
    Api::<Service>::namespaced(client.clone(), &session.namespace).delete(ROLLOUT_SERVICE, &dp).await.ok();
}

/// Failed requests and the longest time without an answer, per node, over all chunks.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    sent: usize,
    failed: usize,
    longest_gap_ms: u64,
    failures: Vec<String>,
}

fn tally(chunks: &[Vec<Attempt>]) -> Tally {
    let mut t = Tally::default();
    for attempts in chunks {
        let mut sorted: Vec<&Attempt> = attempts.iter().collect();
        sorted.sort_by_key(|a| a.start_ms);
        t.sent += sorted.len();
        let mut last_answer: Option<u64> = None;
        for a in sorted {
            if a.outcome.identity().is_some() {
                let end = a.start_ms + a.elapsed_us / 1000;
                if let Some(prev) = last_answer {
                    t.longest_gap_ms = t.longest_gap_ms.max(end.saturating_sub(prev));
                }
                last_answer = Some(end);
            } else {
                t.failed += 1;
                t.failures.push(format!("+{} ms: {}", a.start_ms, a.outcome.label()));
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Identity, Outcome};

    fn at(start_ms: u64, ok: bool) -> Attempt {
        let outcome = if ok {
            Outcome::Answered {
                identity: Identity {
                    pod: "p".into(),
                    node: "n".into(),
                    pod_ip: "10.0.0.1".into(),
                    client: String::new(),
                },
            }
        } else {
            Outcome::Refused
        };
        Attempt { target: "t".into(), start_ms, elapsed_us: 1000, retries: 0, outcome }
    }

    #[test]
    fn a_node_that_never_reached_the_new_service_fails_and_the_others_are_not_passed() {
        let results = unserved_results(&["node-a".into()], &["node-b".into()], "10.96.8.82:80");
        let b = results.iter().find(|r| r.subject.source_node.as_deref() == Some("node-b")).unwrap();
        assert_eq!(b.status, Status::Fail);
        assert!(b.diagnosis.as_ref().unwrap().likely_cause.contains("kube-proxy) on node-b"), "{b:?}");
        let a = results.iter().find(|r| r.subject.source_node.as_deref() == Some("node-a")).unwrap();
        assert_eq!(a.status, Status::Skip, "the rollout did not run: nothing passed on node-a");
        assert!(a.message.contains("node-b"), "{}", a.message);
        assert_eq!(results.len(), 2);
    }

    #[test]
    fn endpoints_that_never_list_the_pods_ready_fail_on_the_endpoints_controller() {
        let r = unlisted_result(1, 3);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.subject.source_node, None, "no node's data plane is blamed");
        assert!(r.message.contains("listed 1 of 3 available pods ready"), "{}", r.message);
        assert!(r.diagnosis.unwrap().likely_cause.contains("kube-controller-manager"));
    }

    #[test]
    fn gaps_are_measured_inside_a_chunk_only() {
        let chunks =
            vec![vec![at(0, true), at(50, true), at(100, false), at(150, true)], vec![at(0, true), at(50, true)]];
        let t = tally(&chunks);
        assert_eq!((t.sent, t.failed, t.longest_gap_ms), (6, 1, 100));
        assert_eq!(t.failures, vec!["+100 ms: refused".to_string()]);
    }

    #[test]
    fn a_lost_chunk_or_no_request_at_all_is_missing_data() {
        let lost: Chunks = vec![Ok(vec![at(0, true)]), Err("timed out".into()), Ok(vec![at(0, true)])];
        let why = missing_chunks(&lost).expect("missing data");
        assert!(why.starts_with("1 of 3 traffic chunks came back without results (chunk 2: timed out)"), "{why}");
        assert!(missing_chunks(&vec![Ok(vec![]), Ok(vec![])]).is_some(), "no request is no evidence");
        assert!(missing_chunks(&vec![]).is_some(), "no chunk at all is no evidence");
        assert_eq!(missing_chunks(&vec![Ok(vec![at(0, true), at(20, false)])]), None);
    }

    #[test]
    fn steady_answers_have_the_interval_as_gap() {
        let t = tally(&[vec![at(0, true), at(20, true), at(40, true)]]);
        assert_eq!((t.failed, t.longest_gap_ms), (0, 20));
    }
}
