//! A run, end to end: connect, start a [`Session`], run the scenario's checks on it (the registry of rounds,
//! by phase), clean up, report. This is the only module that knows both the session and the checks:
//! the session knows nothing of checks, and checks only use a session.

use std::time::Instant;

use crate::Result;
use crate::checks::{self, AfterAlone, Phase, Round};
use crate::interrupt::interruptible;
use crate::report::{CheckResult, CheckTime, Phase as ReportPhase, Report, Status, Subject};
use crate::runner::{Cluster, ConnectOptions, Progress, Session, SessionOptions, connect};
use crate::scenario::Scenario;

/// Everything `netcheck run` needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where the cluster is.
    pub connect: ConnectOptions,
    /// Which checks, with which parameters.
    pub scenario: Scenario,
    /// How to deploy agents.
    pub session: SessionOptions,
    /// Keep the namespace after the run.
    pub keep: bool,
}

/// Runs a scenario end to end. Errors mean netcheck could not run; check failures are in the report.
pub async fn run(options: &RunOptions, progress: &dyn Progress) -> Result<Report> {
    progress.phase("connect");
    let started = Instant::now();
    let cluster = connect(&options.connect).await?;
    let connect_phase = ReportPhase { name: "connect".into(), millis: started.elapsed().as_millis() as u64 };
    let mut report = run_on(&cluster, options, progress).await?;
    report.phases.insert(0, connect_phase);
    report.duration_millis = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Runs a scenario on an already connected cluster (`options.connect` is not used).
pub async fn run_on(cluster: &Cluster, options: &RunOptions, progress: &dyn Progress) -> Result<Report> {
    let started_at = jiff::Timestamp::now();
    let start = Instant::now();
    let mut phases = Vec::new();
    let mut clock;

    progress.phase("deploy");
    // Only the Services the scenario's checks use: fewer objects for the endpoints controller and the
    // service proxies to program before the data plane settles.
    let session_options =
        SessionOptions { service_groups: checks::service_groups(&options.scenario), ..options.session.clone() };
    let session = interruptible(Session::start(cluster, session_options, progress)).await?;
    phases.push(ReportPhase { name: "deploy".into(), millis: session.deployed_in.as_millis() as u64 });
    phases.push(ReportPhase { name: "ready".into(), millis: session.ready_in.as_millis() as u64 });
    phases.push(ReportPhase { name: "settle".into(), millis: session.settled_in.as_millis() as u64 });
    clock = Instant::now();

    progress.phase("probe");
    let results = interruptible(async { Ok(run_checks_timed(&session, &options.scenario, progress).await) }).await;
    lap("probe", &mut clock, &mut phases);

    progress.phase("cleanup");
    let nodes = session.nodes.iter().map(|n| n.name.clone()).collect();
    let run_id = session.run_id.clone();
    session.finish(options.keep).await?;
    lap("cleanup", &mut clock, &mut phases);
    let (results, check_times) = results?;

    let mut report = Report::from_results(&run_id, &options.scenario.name, cluster.info(nodes), results);
    report.check_times = check_times;
    report.started_at = started_at.to_string();
    report.duration_millis = start.elapsed().as_millis() as u64;
    report.phases = phases;
    Ok(report)
}

/// Records the time since `clock` as phase `name` and restarts the clock.
fn lap(name: &str, clock: &mut Instant, phases: &mut Vec<ReportPhase>) {
    phases.push(ReportPhase { name: name.to_string(), millis: clock.elapsed().as_millis() as u64 });
    *clock = Instant::now();
}

/// Runs the scenario's checks on a session and returns every result, in scenario order.
pub async fn run_checks(session: &Session, scenario: &Scenario, progress: &dyn Progress) -> Vec<CheckResult> {
    run_checks_timed(session, scenario, progress).await.0
}

/// Runs the scenario's checks and returns every result, in scenario order, and each check's wall time.
///
/// The registry's rounds that the scenario wants run by phase: the rounds of one phase at once; the
/// `Alone` phase first, then `Probe` and `Experiments` one after the other; the `Beside` rounds beside
/// all of them, holding their traffic until the `Alone` phase is over.
pub async fn run_checks_timed(
    session: &Session,
    scenario: &Scenario,
    progress: &dyn Progress,
) -> (Vec<CheckResult>, Vec<CheckTime>) {
    let wanted: Vec<&Round> = checks::ROUNDS.iter().filter(|r| r.is_wanted(scenario)).collect();
    let in_phase = |phase: Phase| -> Vec<&Round> { wanted.iter().copied().filter(|r| r.phase == phase).collect() };
    let (alone_over, after_alone) = AfterAlone::new();
    let in_order = async {
        let mut done = run_rounds(session, scenario, progress, &in_phase(Phase::Alone), &after_alone).await;
        alone_over.send_replace(true);
        for phase in [Phase::Probe, Phase::Experiments] {
            done.extend(run_rounds(session, scenario, progress, &in_phase(phase), &after_alone).await);
        }
        done
    };
    let beside = in_phase(Phase::Beside);
    let (mut timed_results, beside) =
        tokio::join!(in_order, run_rounds(session, scenario, progress, &beside, &after_alone));
    timed_results.extend(beside);
    let mut results = Vec::new();
    let mut times: Vec<CheckTime> = Vec::new();
    for (round, took) in timed_results {
        record_times(&mut times, &round, took);
        results.extend(round);
    }
    results.extend(without_results(scenario, &results));
    results.extend(unhosted_nodes(scenario, &session.nodes, &session.options.placement(), &session.agents.unscheduled));
    let order = |check: &str| scenario.checks.iter().position(|c| c.id == check).unwrap_or(usize::MAX);
    results.sort_by_key(|r| order(&r.check));
    times.sort_by_key(|t| order(&t.check));
    (results, times)
}

/// Runs `rounds` at once (after noting each), and returns each one's results and wall time.
async fn run_rounds(
    session: &Session,
    scenario: &Scenario,
    progress: &dyn Progress,
    rounds: &[&Round],
    after_alone: &AfterAlone,
) -> Vec<(Vec<CheckResult>, std::time::Duration)> {
    for round in rounds {
        progress.note(round.note);
    }
    futures::future::join_all(rounds.iter().map(|round| timed((round.run)(session, scenario, after_alone)))).await
}

async fn timed(round: impl std::future::Future<Output = Vec<CheckResult>>) -> (Vec<CheckResult>, std::time::Duration) {
    let started = std::time::Instant::now();
    let results = round.await;
    (results, started.elapsed())
}

/// Gives every check with results in `round` the round's wall time.
fn record_times(times: &mut Vec<CheckTime>, round: &[CheckResult], took: std::time::Duration) {
    for r in round {
        if !times.iter().any(|t| t.check == r.check) {
            times.push(CheckTime { check: r.check.clone(), duration_ms: took.as_millis() as u64 });
        }
    }
}

/// A `skip` per selected check and per node that could not host a client agent (NotReady, cordoned,
/// tainted, or its agent could not be scheduled), naming the node and why: such a node was not checked,
/// and the report must say so rather than leave it out.
fn unhosted_nodes(
    scenario: &Scenario,
    nodes: &[crate::runner::inventory::NodeInfo],
    placement: &crate::runner::Placement,
    unscheduled: &std::collections::BTreeMap<String, String>,
) -> Vec<CheckResult> {
    let mut unusable: Vec<(&str, String)> =
        nodes.iter().filter_map(|n| Some((n.name.as_str(), n.unusable_reason(placement)?))).collect();
    unusable.extend(unscheduled.iter().map(|(node, why)| (node.as_str(), why.clone())));
    scenario
        .checks
        .iter()
        .flat_map(|c| {
            unusable.iter().map(move |(node, why)| {
                CheckResult::new(
                    c.id,
                    Status::Skip,
                    Subject::from_node(*node),
                    format!("no client agent could run on {node} ({why}): nothing was checked from it"),
                )
            })
        })
        .collect()
}

/// An `error` result for each selected check that produced none: a check that looked at nothing has
/// proven nothing, and an empty set of results must never read as a pass.
fn without_results(scenario: &Scenario, results: &[CheckResult]) -> Vec<CheckResult> {
    scenario
        .checks
        .iter()
        .filter(|c| !results.iter().any(|r| r.check == c.id))
        .map(|c| {
            CheckResult::new(
                c.id,
                Status::Error,
                Subject::default(),
                "the check produced no result: nothing was observed, so nothing was proven",
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::NodeInfo;

    const NO_TAINTS: crate::runner::Placement<'static> =
        crate::runner::Placement { platforms: &[], tolerate_taints: false };

    #[test]
    fn a_selected_check_without_results_is_an_error() {
        let scenario =
            crate::scenario::from_check_ids(&["clusterip/reachable".into(), "dns/service-a".into()]).unwrap();
        let one = CheckResult::new("clusterip/reachable", Status::Pass, Subject::from_node("node-a"), "20 of 20");
        let added = without_results(&scenario, std::slice::from_ref(&one));
        assert_eq!(added.len(), 1);
        assert_eq!((added[0].check.as_str(), added[0].status), ("dns/service-a", Status::Error));
        assert!(
            without_results(&scenario, &[one.clone(), CheckResult { check: "dns/service-a".into(), ..one }]).is_empty()
        );
    }

    #[test]
    fn a_node_that_could_not_host_an_agent_is_a_skip_per_check_naming_it() {
        let scenario =
            crate::scenario::from_check_ids(&["clusterip/reachable".into(), "dns/service-a".into()]).unwrap();
        let node =
            |name: &str, ready: bool| NodeInfo { name: name.into(), ready, schedulable: true, ..Default::default() };
        let none = std::collections::BTreeMap::new();
        let skips = unhosted_nodes(&scenario, &[node("node-a", true), node("node-b", false)], &NO_TAINTS, &none);
        assert_eq!(skips.len(), 2, "{skips:#?}");
        for s in &skips {
            assert_eq!((s.status, s.subject.source_node.as_deref()), (Status::Skip, Some("node-b")));
            assert!(s.message.contains("NotReady"), "{}", s.message);
        }
        assert!(unhosted_nodes(&scenario, &[node("node-a", true)], &NO_TAINTS, &none).is_empty());
        let full = std::collections::BTreeMap::from([(
            "node-a".to_string(),
            "Unschedulable: 0/2 nodes are available: 1 Insufficient cpu".to_string(),
        )]);
        let skips = unhosted_nodes(&scenario, &[node("node-a", true)], &NO_TAINTS, &full);
        assert_eq!(skips.len(), 2, "{skips:#?}");
        assert!(skips.iter().all(|s| s.status == Status::Skip && s.message.contains("Insufficient cpu")));
    }
}
