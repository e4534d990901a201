//! The checks, as a registry of rounds.
//!
//! A check is one [`CheckSpec`] (id, what a pass proves, parameters with ranges and defaults) beside
//! a typed parameter struct and a judge, in the module of the round that observes for it. A round is
//! traffic several checks share, sent once: `clusterip/*`, `lb/distribution` and `pod/direct` are all
//! answered by [`service_path`], which sends each client's requests once. [`ROUNDS`] lists the rounds,
//! and with them every check: the catalog ([`crate::catalog::checks`]) is derived from it.

pub(crate) mod diagnosis;
pub(crate) mod dns;
pub(crate) mod dns_expect;
pub(crate) mod loadbalancer;
pub(crate) mod nodeport;
pub(crate) mod readiness;
pub(crate) mod rollout;
pub(crate) mod runner_probe;
pub(crate) mod service_behaviour;
pub(crate) mod service_path;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use serde::de::DeserializeOwned;

use crate::catalog::{self, CheckSpec};
use crate::protocol::{Attempt, OrderResult};
use crate::report::{CheckResult, Status, Subject};
use crate::runner::channel::OrderFailure;
use crate::runner::{ServiceGroup, Session};
use crate::scenario::{Params, Scenario, SelectedCheck};

/// When a round runs: the rounds of one phase run at once, the phases one after another in this order,
/// except [`Phase::Beside`], which starts with [`Phase::Alone`] and runs beside every phase, sending
/// traffic only once [`AfterAlone::wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// `service/no-endpoints` counts the ICMP errors kube-proxy's REJECT sends, which the kernel
    /// rate-limits: beside other rounds a refusal arrived a second late in 1 of 10 runs (and in 1 of 1
    /// beside the rollout, whose probes of its not-yet-programmed Service are refused too). First, so
    /// that nothing runs beside it.
    Alone,
    /// Probe rounds: each uses its own Services, and none changes what another observes.
    Probe,
    /// The readiness experiments switch a server agent behind the echo Service that the probe rounds
    /// count as a backend: after the probe rounds.
    Experiments,
    /// The rollout: its own Deployment and Service, and traffic from the client agents only, so it
    /// changes nothing another round observes. It starts its pods while the `Alone` round runs (pods
    /// starting send no traffic) and its traffic with the probe rounds, beside them and the experiments.
    Beside,
}

/// Opens when the [`Phase::Alone`] rounds are over: a [`Phase::Beside`] round may prepare before that,
/// but sends traffic only after, so that nothing it sends meets the `Alone` round's traffic.
#[derive(Debug, Clone)]
pub(crate) struct AfterAlone(tokio::sync::watch::Receiver<bool>);

impl AfterAlone {
    /// A gate and the sender that opens it (by sending `true`, or by being dropped).
    pub(crate) fn new() -> (tokio::sync::watch::Sender<bool>, AfterAlone) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, AfterAlone(rx))
    }

    /// Returns once the `Alone` rounds are over.
    pub(crate) async fn wait(&self) {
        // A dropped sender means the orchestrator is past the Alone phase (or gone): open either way.
        let _ = self.0.clone().wait_for(|over| *over).await;
    }
}

/// A future of a round's results. Boxed: together the rounds are large, and a debug build's test
/// thread (2 MiB of stack) overflowed holding them inline.
pub(crate) type RoundFuture<'a> = Pin<Box<dyn Future<Output = Vec<CheckResult>> + Send + 'a>>;

/// Traffic that answers one or more checks at once.
pub(crate) struct Round {
    /// The checks it answers; it produces results only for those the scenario selects.
    pub(crate) specs: &'static [CheckSpec],
    /// When it runs.
    pub(crate) phase: Phase,
    /// What the progress line says while it runs.
    pub(crate) note: &'static str,
    /// The session's check Services its traffic uses, beside the echo Service.
    pub(crate) services: &'static [ServiceGroup],
    /// Sends the traffic and judges it.
    pub(crate) run: for<'a> fn(&'a Session, &'a Scenario, &'a AfterAlone) -> RoundFuture<'a>,
}

impl Round {
    /// Whether the scenario selects any of this round's checks.
    pub(crate) fn is_wanted(&self, scenario: &Scenario) -> bool {
        self.specs.iter().any(|spec| selected(scenario, spec.id).is_some())
    }
}

/// The check Services the scenario's rounds use: all that a session for it needs to create.
pub(crate) fn service_groups(scenario: &Scenario) -> BTreeSet<ServiceGroup> {
    ROUNDS.iter().filter(|round| round.is_wanted(scenario)).flat_map(|round| round.services.iter().copied()).collect()
}

/// Every round, in catalog order. Adding a check is a spec and a judge in its round's module; adding a
/// round is one entry here.
pub(crate) static ROUNDS: &[Round] = &[
    Round {
        specs: service_path::SPECS,
        phase: Phase::Probe,
        note: "probing the ClusterIP and pod IPs from every node",
        services: &[],
        run: |session, scenario, _| Box::pin(service_path::run(session, scenario)),
    },
    Round {
        specs: nodeport::SPECS,
        phase: Phase::Probe,
        note: "probing node ports on every node address",
        services: &[ServiceGroup::NodePort],
        run: |session, scenario, _| Box::pin(nodeport::run(session, scenario)),
    },
    Round {
        specs: loadbalancer::SPECS,
        phase: Phase::Probe,
        note: "provisioning a LoadBalancer Service and probing its address",
        services: &[ServiceGroup::NodePort],
        run: |session, scenario, _| Box::pin(loadbalancer::run(session, scenario)),
    },
    Round {
        specs: service_behaviour::SPECS,
        phase: Phase::Alone,
        note: "probing session affinity, UDP and a Service without endpoints",
        services: &[ServiceGroup::Behaviour],
        run: |session, scenario, _| Box::pin(service_behaviour::run(session, scenario)),
    },
    Round {
        specs: dns::SPECS,
        phase: Phase::Probe,
        note: "asking the cluster DNS from every node",
        services: &[ServiceGroup::Dns],
        run: |session, scenario, _| Box::pin(dns::run(session, scenario)),
    },
    Round {
        specs: readiness::SPECS,
        phase: Phase::Experiments,
        note: "switching a backend's readiness off and on while every node sends traffic and asks DNS (about 8 s)",
        services: &[],
        run: |session, scenario, _| Box::pin(readiness::run(session, scenario)),
    },
    Round {
        specs: rollout::SPECS,
        phase: Phase::Beside,
        note: "rolling a Deployment of 3 agents while every node sends traffic",
        services: &[],
        run: |session, scenario, after_alone| Box::pin(rollout::run(session, scenario, after_alone)),
    },
];

/// The typed parameters of check `id`: the scenario's when it selects the check, else its defaults.
/// A round that serves several checks reads an unselected one's defaults.
pub(crate) fn params<T: DeserializeOwned>(scenario: &Scenario, id: &str) -> T {
    match selected(scenario, id) {
        Some(check) => check.params.typed(),
        None => Params::defaults(catalog::find(id).expect("a round reads only its own checks")).typed(),
    }
}

/// An `error` result, with no subject, for each of `specs` that the scenario selects: the round could
/// not observe anything for them.
pub(crate) fn errors(specs: &[CheckSpec], scenario: &Scenario, message: &str) -> Vec<CheckResult> {
    specs
        .iter()
        .filter(|spec| selected(scenario, spec.id).is_some())
        .map(|spec| CheckResult::new(spec.id, Status::Error, Subject::default(), message))
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
    fn every_check_parses_its_default_parameters_into_its_typed_struct() {
        for spec in catalog::checks() {
            let defaults = Params::defaults(spec).to_json();
            (spec.parse_params)(defaults.clone())
                .unwrap_or_else(|e| panic!("{}: specs and typed parameters disagree: {e} ({defaults})", spec.id));
        }
    }

    #[test]
    fn every_parameter_parses_at_both_ends_of_its_range() {
        use crate::catalog::ParamKind;
        for spec in catalog::checks() {
            for p in spec.params {
                let ends: Vec<serde_json::Value> = match p.kind {
                    ParamKind::Int { min, max } => vec![min.into(), max.into()],
                    ParamKind::Float { min, max } => vec![min.into(), max.into()],
                    ParamKind::Bool => vec![false.into(), true.into()],
                    ParamKind::DurationMs { min, max } => vec![min.into(), max.into()],
                };
                for end in ends {
                    let mut params = Params::defaults(spec).to_json();
                    params[p.name] = end.clone();
                    (spec.parse_params)(params).unwrap_or_else(|e| {
                        panic!("{}: {} = {end} does not fit its typed field: {e}", spec.id, p.name)
                    });
                }
            }
        }
    }

    #[test]
    fn a_typed_struct_missing_a_specified_parameter_is_caught() {
        let spec = catalog::find("clusterip/reachable").expect("in catalog");
        let mut params = Params::defaults(spec).to_json();
        params.as_object_mut().expect("an object").remove("requests");
        assert!((spec.parse_params)(params.clone()).is_err(), "missing field");
        params.as_object_mut().expect("an object").insert("requests".into(), 5.into());
        params.as_object_mut().expect("an object").insert("extra".into(), 1.into());
        assert!((spec.parse_params)(params).is_err(), "unknown field");
    }

    #[test]
    fn no_check_is_in_two_rounds_and_a_round_is_wanted_only_for_its_own_checks() {
        let mut seen = std::collections::BTreeSet::new();
        for round in ROUNDS {
            assert!(!round.specs.is_empty(), "{}: a round without checks", round.note);
            for spec in round.specs {
                assert!(seen.insert(spec.id), "{} is in two rounds", spec.id);
            }
        }
        let scenario = crate::scenario::from_check_ids(&["dns/srv".into()]).expect("known id");
        let wanted: Vec<&str> = ROUNDS.iter().filter(|r| r.is_wanted(&scenario)).map(|r| r.note).collect();
        assert_eq!(wanted, ["asking the cluster DNS from every node"]);
    }

    #[test]
    fn a_session_for_a_scenario_creates_only_the_services_its_checks_use() {
        let groups = |name: &str| service_groups(&crate::scenario::builtin(name).expect("built in"));
        assert!(groups("quick").is_empty(), "quick's checks use the echo Service only");
        assert_eq!(groups("full"), ServiceGroup::ALL.into());
        let ids = |ids: &[&str]| {
            let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
            service_groups(&crate::scenario::from_check_ids(&ids).expect("known ids"))
        };
        assert_eq!(ids(&["nodeport/every-node"]), [ServiceGroup::NodePort].into());
        assert_eq!(
            ids(&["dns/srv", "clusterip/session-affinity"]),
            [ServiceGroup::Behaviour, ServiceGroup::Dns].into()
        );
    }
}
