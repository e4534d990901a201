//! The LoadBalancer checks: a `type: LoadBalancer` Service gets an ingress address from whatever
//! implements LoadBalancers in the cluster (a cloud's controller, MetalLB, cloud-provider-kind)
//! ([`provision`]); the address answers from the runner and every node, reaching every backend
//! ([`reachable`]); with `externalTrafficPolicy: Local` the client's address is kept and every node's
//! health-check node port, which cloud load balancers probe, says what the API's endpoints say
//! ([`local_policy`]); `loadBalancerSourceRanges` is enforced ([`source_ranges`]).
//!
//! Each check has its own Service, created only when the check runs (on a cloud, each is a real load
//! balancer that takes time and money), and all are provisioned at once. A cluster without an
//! implementation is not a failure: when nothing acts on a Service (no event, no address) within
//! `noControllerMs`, its checks skip and say so.

pub(crate) mod health;
mod local_policy;
pub(crate) mod provision;
mod reachable;
mod source_ranges;

use std::future::Future;

use super::{params, selected};
use crate::catalog::{CheckSpec, int, millis, parses_into};
use crate::report::CheckResult;
use crate::runner::Session;
use crate::runner::manifests::LOADBALANCER_SERVICES;
use crate::scenario::Scenario;

use provision::{Ingress, ProvisionParams, address_for, judge_provision};

const PROVISION: &str = "loadbalancer/provision";
const REACHABLE: &str = "loadbalancer/reachable";
const LOCAL_POLICY: &str = "loadbalancer/local-policy";
const SOURCE_RANGES: &str = "loadbalancer/source-ranges";

/// The checks this round answers.
pub(crate) static SPECS: &[CheckSpec] = &[
    CheckSpec {
        id: PROVISION,
        title: "A LoadBalancer Service gets an address",
        description: "A type LoadBalancer Service over the server agents gets an ingress address from the \
                      cluster's LoadBalancer implementation (provisionMs measured); a skip when nothing acts on \
                      it, a fail with the implementation's events when it acts but assigns none. The other \
                      LoadBalancer checks wait for their own Services with the same limits.",
        params: &[
            millis(
                "noControllerMs",
                500,
                600_000,
                5_000,
                "With no event and no address by then, the cluster has no LoadBalancer implementation: skip.",
            ),
            millis(
                "timeoutMs",
                1_000,
                3_600_000,
                60_000,
                "Limit for an implementation that acts to assign the address (a cloud may take minutes).",
            ),
        ],
        parse_params: parses_into::<ProvisionParams>,
    },
    CheckSpec {
        id: REACHABLE,
        title: "The LoadBalancer address answers and reaches every backend",
        description: "The ingress address answers from the runner (when it can reach it) and from every \
                      client, and the answers come from every ready server agent. Each source first waits for \
                      one answer (firstAnswerMs, from the address), then sends the counted requests.",
        params: &[
            int("requests", 1, 2_000, 30, "Requests per source."),
            millis("timeoutMs", 1, 60_000, 1_000, "How long one request may take before it counts as failed."),
            millis(
                "convergeMs",
                500,
                300_000,
                10_000,
                "Limit for each source's first answer after the address is assigned (kube-proxy programs the \
                 address only once it is in the Service's status); the counted requests follow it.",
            ),
        ],
        parse_params: parses_into::<reachable::ReachableParams>,
    },
    CheckSpec {
        id: LOCAL_POLICY,
        title: "externalTrafficPolicy Local: the client's address is kept and every node's health check is true",
        description: "A LoadBalancer Service with externalTrafficPolicy Local over one pod: the runner's requests \
                      arrive from its own address, and on every node the healthCheckNodePort answers as \
                      kube-proxy documents (200 and localEndpoints = the node's ready endpoints in the API, 503 \
                      with 0 elsewhere), also after the pod turns not ready and ready again (the time until \
                      every node agrees measured). Cloud load balancers pick their backend nodes by it.",
        params: &[
            int("requests", 1, 2_000, 10, "Requests from the runner to the address."),
            millis("timeoutMs", 1, 60_000, 1_000, "How long one request or health check may take."),
            millis(
                "convergeMs",
                500,
                300_000,
                15_000,
                "Limit for every node's health check to agree with the API after a change (the kubelet's \
                 probe period, the endpoints controller and kube-proxy's sync included).",
            ),
        ],
        parse_params: parses_into::<local_policy::LocalPolicyParams>,
    },
    CheckSpec {
        id: SOURCE_RANGES,
        title: "loadBalancerSourceRanges is enforced",
        description: "A LoadBalancer Service first without ranges (the address the cluster sees for the runner is \
                      read from the answers), then with a range that excludes the runner (it must be blocked), then \
                      with one that includes only the runner's address (it must get through again); the time each \
                      change takes is measured. A skip when the runner cannot reach the address.",
        params: &[
            int("requests", 1, 2_000, 10, "Requests that must all answer (or all fail) once a change has taken."),
            millis("timeoutMs", 1, 60_000, 500, "How long one request may take before it counts as blocked."),
            millis("convergeMs", 500, 300_000, 15_000, "Limit for a change of the ranges to take effect."),
        ],
        parse_params: parses_into::<source_ranges::SourceRangesParams>,
    },
];

/// Runs the selected LoadBalancer checks, each on its own Service, all at once.
pub async fn run(session: &Session, scenario: &Scenario) -> Vec<CheckResult> {
    let wanted = |id: &str| selected(scenario, id).is_some();
    let p: ProvisionParams = params(scenario, PROVISION);
    let [main, local, ranges] = LOADBALANCER_SERVICES;
    let main_round = when(wanted(PROVISION) || wanted(REACHABLE), async {
        let seen = match provision::provision(session, main, p).await {
            Ok(seen) => seen,
            Err(e) => return super::errors(&SPECS[..2], scenario, &e),
        };
        let (verdict, ingress) = judge_provision(&seen, p);
        let mut results = Vec::new();
        if wanted(PROVISION) {
            results.push(verdict.clone());
        }
        if wanted(REACHABLE) {
            let r = params(scenario, REACHABLE);
            match ingress {
                Ingress::Address(ip) => results.extend(reachable::reachable(session, ip, r).await),
                Ingress::None(why) => results.push(CheckResult::new(
                    REACHABLE,
                    crate::report::Status::Skip,
                    verdict.subject,
                    format!("no address to probe: {why}"),
                )),
            }
        }
        results
    });
    let local_round = when(wanted(LOCAL_POLICY), async {
        let (pod, seen) = tokio::join!(local_policy::start_pod(session), provision::provision(session, local, p));
        match (pod, address_for(LOCAL_POLICY, seen, p)) {
            (_, Err(result)) => vec![*result],
            (Err(result), _) => vec![*result],
            (Ok(pod), Ok((ip, seen))) => {
                local_policy::local_policy(session, &pod, ip, &seen, params(scenario, LOCAL_POLICY)).await
            }
        }
    });
    let ranges_round = when(wanted(SOURCE_RANGES), async {
        match address_for(SOURCE_RANGES, provision::provision(session, ranges, p).await, p) {
            Err(result) => vec![*result],
            Ok((ip, _)) => source_ranges::source_ranges(session, ip, params(scenario, SOURCE_RANGES)).await,
        }
    });
    let (mut results, local_results, ranges_results) = tokio::join!(main_round, local_round, ranges_round);
    results.extend(local_results);
    results.extend(ranges_results);
    results
}

/// The round's results when `wanted`, nothing otherwise (the round does not start).
async fn when(wanted: bool, round: impl Future<Output = Vec<CheckResult>>) -> Vec<CheckResult> {
    if wanted { round.await } else { Vec::new() }
}
