//! Checks: each has a stable id (see [`crate::catalog`]) and produces results per subject.
//!
//! Checks that need the same traffic share one probe round: `clusterip/*`, `lb/distribution` and
//! `pod/direct` are all answered by [`service_path`], which sends each client's requests once.

pub mod diagnosis;
pub mod dns;
pub mod dns_expect;
pub mod nodeport;
pub mod readiness;
pub mod rollout;
pub mod runner_probe;
pub mod service_behaviour;
pub mod service_path;

use crate::protocol::{Attempt, OrderResult};
use crate::report::{CheckResult, CheckTime, Status, Subject};
use crate::runner::channel::OrderFailure;
use crate::runner::{Progress, Session};
use crate::scenario::{Scenario, SelectedCheck};

/// Runs the scenario's checks on a session and returns every result, in scenario order.
pub async fn run(session: &Session, scenario: &Scenario, progress: &dyn Progress) -> Vec<CheckResult> {
    run_timed(session, scenario, progress).await.0
}

/// Runs the scenario's checks and returns every result, in scenario order, and each check's wall time.
///
/// The rounds run in three phases. First the probe rounds, concurrently: each uses its own Services,
/// and none changes what another observes. Then `service/no-endpoints` and its module alone: it counts
/// the ICMP errors kube-proxy's REJECT sends, which the kernel rate-limits, and beside other rounds a
/// refusal arrived a second late in 1 of 10 runs (and in 1 of 1 beside the rollout, whose probes of its
/// not-yet-programmed Service are refused too). Last, concurrently, the readiness experiments, which
/// switch a server agent behind the echo Service that the probe rounds count as a backend, and the
/// rollout.
///
/// Each module's future is boxed: together they are large, and a debug build's test thread (2 MiB of
/// stack) overflowed holding them inline.
pub async fn run_timed(
    session: &Session,
    scenario: &Scenario,
    progress: &dyn Progress,
) -> (Vec<CheckResult>, Vec<CheckTime>) {
    type Round<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Vec<CheckResult>> + Send + 'a>>;
    let wanted = |ids: &[&str]| scenario.checks.iter().any(|c| ids.contains(&c.id));
    // The rounds of a phase run at once; the phases one after another.
    let mut phases: [Vec<(&str, Round)>; 3] = Default::default();
    if wanted(service_path::IDS) {
        phases[0].push((
            "probing the ClusterIP and pod IPs from every node",
            Box::pin(service_path::run(session, scenario)),
        ));
    }
    if wanted(nodeport::IDS) {
        phases[0].push(("probing node ports on every node address", Box::pin(nodeport::run(session, scenario))));
    }
    if wanted(dns::IDS) {
        phases[0].push(("asking the cluster DNS from every node", Box::pin(dns::run(session, scenario))));
    }
    if wanted(service_behaviour::IDS) {
        phases[1].push((
            "probing session affinity, UDP and a Service without endpoints",
            Box::pin(service_behaviour::run(session, scenario)),
        ));
    }
    if wanted(readiness::IDS) {
        phases[2].push((
            "switching a backend's readiness while every node sends traffic (about 20 s, and until the DNS caches expire: up to 30 s more on CoreDNS)",
            Box::pin(readiness::run(session, scenario)),
        ));
    }
    if wanted(rollout::IDS) {
        phases[2].push((
            "rolling a Deployment of 3 agents while every node sends traffic",
            Box::pin(rollout::run(session, scenario)),
        ));
    }
    let mut results = Vec::new();
    let mut times: Vec<CheckTime> = Vec::new();
    for phase in phases {
        for (note, _) in &phase {
            progress.note(note);
        }
        for (round, took) in futures::future::join_all(phase.into_iter().map(|(_, round)| timed(round))).await {
            record_times(&mut times, &round, took);
            results.extend(round);
        }
    }
    results.extend(without_results(scenario, &results));
    results.extend(unhosted_nodes(scenario, &session.nodes, session.options.tolerate_taints));
    let order = |check: &str| scenario.checks.iter().position(|c| c.id == check).unwrap_or(usize::MAX);
    results.sort_by_key(|r| order(&r.check));
    times.sort_by_key(|t| order(&t.check));
    (results, times)
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
/// tainted), naming the node and why: such a node was not checked, and the report must say so rather
/// than leave it out.
fn unhosted_nodes(
    scenario: &Scenario,
    nodes: &[crate::runner::inventory::NodeInfo],
    tolerate_taints: bool,
) -> Vec<CheckResult> {
    let unusable: Vec<(&str, String)> =
        nodes.iter().filter_map(|n| Some((n.name.as_str(), n.unusable_reason(tolerate_taints)?))).collect();
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

/// A result judged from an order the agent cut short ([`OrderResult::partial`]) may fail, since what
/// it saw is real, but may not pass: the attempts it never made are missing data.
pub(crate) fn capped_by_partial(mut result: CheckResult, order: &OrderResult) -> CheckResult {
    if let Some(why) = &order.partial
        && result.status == Status::Pass
    {
        result.status = Status::Error;
        result.message = format!("{}; but {why}: too little was observed to pass", result.message);
    }
    result
}

/// The attempts of an order that ran to its end; a failed order or one the agent cut short is the
/// reason why not, for checks that judge a whole order at once.
pub(crate) fn whole_attempts(r: Result<OrderResult, OrderFailure>) -> Result<Vec<Attempt>, String> {
    match r {
        Ok(r) => match r.partial {
            Some(why) => Err(format!("{why}: too little was observed to judge")),
            None => Ok(r.attempts),
        },
        Err(f) => Err(f.to_string()),
    }
}

/// The selected check `id`, if the scenario has it.
pub(crate) fn selected<'a>(scenario: &'a Scenario, id: &str) -> Option<&'a SelectedCheck> {
    scenario.checks.iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_cut_short_can_fail_but_not_pass() {
        let identity = crate::protocol::Identity {
            pod: "c".into(),
            node: "node-a".into(),
            pod_ip: "10.244.1.2".into(),
            client: String::new(),
        };
        let mut order = OrderResult::new(identity);
        let pass = CheckResult::new("clusterip/reachable", Status::Pass, Subject::from_node("node-a"), "5 of 5");
        let fail = CheckResult { status: Status::Fail, ..pass.clone() };
        assert_eq!(capped_by_partial(pass.clone(), &order).status, Status::Pass, "a whole order passes");
        assert!(whole_attempts(Ok(order.clone())).is_ok());
        order.partial = Some("the agent stopped at the order's deadline of 9000 ms, after 5 attempts".into());
        let capped = capped_by_partial(pass, &order);
        assert_eq!(capped.status, Status::Error);
        assert!(capped.message.contains("deadline of 9000 ms"), "{}", capped.message);
        assert_eq!(capped_by_partial(fail, &order).status, Status::Fail, "what it saw fail is real");
        assert!(whole_attempts(Ok(order)).unwrap_err().contains("too little was observed"));
    }

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
        use crate::runner::inventory::NodeInfo;
        let scenario =
            crate::scenario::from_check_ids(&["clusterip/reachable".into(), "dns/service-a".into()]).unwrap();
        let node =
            |name: &str, ready: bool| NodeInfo { name: name.into(), ready, schedulable: true, ..Default::default() };
        let skips = unhosted_nodes(&scenario, &[node("node-a", true), node("node-b", false)], false);
        assert_eq!(skips.len(), 2, "{skips:#?}");
        for s in &skips {
            assert_eq!((s.status, s.subject.source_node.as_deref()), (Status::Skip, Some("node-b")));
            assert!(s.message.contains("NotReady"), "{}", s.message);
        }
        assert!(unhosted_nodes(&scenario, &[node("node-a", true)], false).is_empty());
    }
}
