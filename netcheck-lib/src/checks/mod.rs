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

use crate::report::CheckResult;
use crate::runner::{Progress, Session};
use crate::scenario::{Scenario, SelectedCheck};

/// Runs the scenario's checks on a session and returns every result, in scenario order.
///
/// Each module's future is boxed: together they are large, and a debug build's test thread (2 MiB of
/// stack) overflowed holding them inline.
pub async fn run(session: &Session, scenario: &Scenario, progress: &dyn Progress) -> Vec<CheckResult> {
    let mut results = Vec::new();
    if scenario.checks.iter().any(|c| service_path::IDS.contains(&c.id)) {
        progress.note("probing the ClusterIP and pod IPs from every node");
        results.extend(Box::pin(service_path::run(session, scenario)).await);
    }
    if scenario.checks.iter().any(|c| nodeport::IDS.contains(&c.id)) {
        progress.note("probing node ports on every node address");
        results.extend(Box::pin(nodeport::run(session, scenario)).await);
    }
    if scenario.checks.iter().any(|c| service_behaviour::IDS.contains(&c.id)) {
        progress.note("probing session affinity, UDP and a Service without endpoints");
        results.extend(Box::pin(service_behaviour::run(session, scenario)).await);
    }
    if scenario.checks.iter().any(|c| dns::IDS.contains(&c.id)) {
        progress.note("asking the cluster DNS from every node");
        results.extend(Box::pin(dns::run(session, scenario)).await);
    }
    // Last: it switches a server agent's readiness (and restores it).
    if scenario.checks.iter().any(|c| readiness::IDS.contains(&c.id)) {
        progress.note("switching a backend's readiness while every node sends traffic (about 20 s, and until the DNS caches expire: up to 30 s more on CoreDNS)");
        results.extend(Box::pin(readiness::run(session, scenario)).await);
    }
    if scenario.checks.iter().any(|c| rollout::IDS.contains(&c.id)) {
        progress.note("rolling a Deployment of 3 agents while every node sends traffic");
        results.extend(Box::pin(rollout::run(session, scenario)).await);
    }
    let order = |r: &CheckResult| scenario.checks.iter().position(|c| c.id == r.check).unwrap_or(usize::MAX);
    results.sort_by_key(order);
    results
}

/// The selected check `id`, if the scenario has it.
pub(crate) fn selected<'a>(scenario: &'a Scenario, id: &str) -> Option<&'a SelectedCheck> {
    scenario.checks.iter().find(|c| c.id == id)
}
