//! `endpoints/readiness-removal` and `endpoints/readiness-readd`: a server agent is switched not
//! ready, then ready again ([`switches`]), by order while every client sends steady traffic through
//! the ClusterIP; three times are measured from the switch, on the runner's clock:
//! (a) the API lists the endpoint (not) ready, (b) each node's data plane stops (starts) sending to
//! it, (c) each node's DNS answers drop (regain) it.
//!
//! The data-plane and DNS timelines come from the agents' attempts: attempt i starts `start_ms` after
//! the agent began the order, which the runner places at its send time plus half an order round trip
//! (measured just before). The resolution is the sample interval plus that estimate.
//!
//! (c) is asked through names no DNS cache has seen ([`fresh_names`]), first asked once the API shows
//! the switch: it times the DNS server following the API, not a cache's TTL running out (up to 30 s
//! on kubeadm, kind and AKS, which is configuration and would make every run wait for it).

mod experiment;
mod fresh_names;
mod judge;
mod switches;
mod unready_at_start;

use std::time::Duration;

use serde::Deserialize;

use super::selected;
use crate::catalog::{CheckSpec, ParamSpec, int, millis, parses_into};
use crate::report::{CheckResult, Subject};
use crate::runner::AgentPod;
use crate::runner::Session;
use crate::scenario::Scenario;

use experiment::Limits;
use switches::{Wanted, removal_and_readd};
use unready_at_start::unready_at_start;

const REMOVAL: &str = "endpoints/readiness-removal";
const READD: &str = "endpoints/readiness-readd";
const UNREADY_AT_START: &str = "endpoints/unready-at-start";

/// The checks this round answers.
pub(crate) static SPECS: &[CheckSpec] = &[
    CheckSpec {
        id: REMOVAL,
        title: "A backend that turns not ready leaves the API, every node's data plane and DNS",
        description: "One server agent's readiness probe starts failing by order while every client sends paced \
                      requests through the ClusterIP. Measures, from the switch and per node: (a) the API lists the \
                      endpoint not ready, (b) the node's data plane stops sending to it for at least sustainedRequests \
                      answered requests, (c) DNS answers for headless names first asked after (a) drop it.",
        params: READINESS_PARAMS,
        parse_params: parses_into::<ReadinessParams>,
    },
    CheckSpec {
        id: READD,
        title: "A backend that turns ready again comes back everywhere",
        description: "The removal's agent, once removal has shown on every node, turns ready again: the same \
                      three times, until the API lists it ready, it answers through the ClusterIP from every node, \
                      and DNS answers for headless names first asked after the API listed it have it again.",
        params: READINESS_PARAMS,
        parse_params: parses_into::<ReadinessParams>,
    },
    CheckSpec {
        id: UNREADY_AT_START,
        title: "A backend that starts not ready gets no traffic until it is ready",
        description: "A server agent is created with its readiness off: while it runs not ready, no request from \
                      any node reaches it through the ClusterIP; once switched ready, it is added (API, data plane, \
                      DNS times as for readiness-readd).",
        params: READINESS_PARAMS,
        parse_params: parses_into::<ReadinessParams>,
    },
];

/// Parameters of the readiness experiments (removal and re-add run as one experiment each).
const READINESS_PARAMS: &[ParamSpec] = &[
    millis("intervalMs", 5, 1_000, 20, "Pace of requests and DNS queries per client; the resolution of (b) and (c)."),
    int("sustainedRequests", 1, 10_000, 100, "Answered requests in a row without the removed pod that prove removal."),
    millis("maxApiMs", 100, 120_000, 4_000, "Limit for (a), from the switch (kubelet probe period 1 s included)."),
    millis("maxPropagationMs", 10, 120_000, 2_000, "Further limit for (b) and (c) beyond maxApiMs."),
];

/// The readiness experiments' parameters, as [`READINESS_PARAMS`] names them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReadinessParams {
    interval_ms: u64,
    sustained_requests: usize,
    max_api_ms: u64,
    max_propagation_ms: u64,
}

/// Runs removal and re-add as [`switches`] arranges them, and beside them the unready-at-start
/// experiment: its late pod is no victim, and each experiment follows only its own pod's address, so
/// none disturbs what another measures.
pub async fn run(session: &Session, scenario: &Scenario) -> Vec<CheckResult> {
    let unready = async {
        match selected(scenario, UNREADY_AT_START) {
            Some(check) => unready_at_start(session, limits_of(check)).await,
            None => Vec::new(),
        }
    };
    let (mut results, late) = tokio::join!(switch_back_and_forth(session, scenario), unready);
    if selected(scenario, UNREADY_AT_START).is_some() {
        unready_at_start::delete_late_pod(session).await;
    }
    results.extend(late);
    results
}

fn limits_of(check: &crate::scenario::SelectedCheck) -> Limits {
    let p: ReadinessParams = check.params.typed();
    Limits {
        interval: Duration::from_millis(p.interval_ms),
        sustained: p.sustained_requests,
        max_api: Duration::from_millis(p.max_api_ms),
        max_propagation: Duration::from_millis(p.max_propagation_ms),
    }
}

async fn switch_back_and_forth(session: &Session, scenario: &Scenario) -> Vec<CheckResult> {
    let Some(check) = selected(scenario, REMOVAL).or_else(|| selected(scenario, READD)) else { return vec![] };
    let wanted = Wanted { removal: selected(scenario, REMOVAL).is_some(), readd: selected(scenario, READD).is_some() };
    removal_and_readd(session, wanted, limits_of(check)).await
}

/// What a result about a switched agent names: `pod/NAME` at its IP.
fn victim_subject(victim: &AgentPod) -> Subject {
    Subject::default().named(format!("pod/{}", victim.pod)).at(victim.ip.clone())
}
