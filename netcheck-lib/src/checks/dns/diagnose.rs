//! Where each failure lies: one node's path, the DNS Service, the DNS server, or its records.

use super::PER_SERVER;
use super::facts::{DNS_NAMESPACE, DNS_SERVICE, Facts};
use super::judge::{of_query, subject};
use super::plan::Question;
use crate::protocol::{OrderResult, Outcome};
use crate::report::{CheckResult, Diagnosis, Status, Subject};
use crate::runner::channel::OrderFailure;

/// `dns/per-server` when the DNS Service has no ready endpoint: there is no server to ask, which is the
/// fault itself (every DNS server stopped or unready), not a check with nothing to say.
pub(super) fn no_dns_server(node: &str) -> CheckResult {
    let mut r = CheckResult::new(
        PER_SERVER,
        Status::Fail,
        Subject::from_node(node).named(format!("service/{DNS_SERVICE} in {DNS_NAMESPACE}")),
        "the cluster DNS Service has no ready endpoint: there is no DNS server to ask",
    )
    .compare("every ready DNS server endpoint answers", "no ready endpoint");
    r.diagnosis = Some(Diagnosis {
        likely_cause: "the cluster DNS server: none of its pods is ready (scaled to zero, crashing, or failing its \
                       readiness probe)"
            .into(),
        evidence: vec![format!("{DNS_NAMESPACE}/{DNS_SERVICE} lists no ready endpoint")],
        next_step: Some(format!("kubectl -n {DNS_NAMESPACE} get pods -l k8s-app=kube-dns")),
    });
    r
}

/// Places each failure: one node's path, the DNS Service, the DNS server, or its data.
pub(super) fn diagnose(
    results: &mut [CheckResult],
    rounds: &[(String, Result<OrderResult, OrderFailure>)],
    questions: &[Question],
    f: &Facts,
) {
    // No answer at all (timeout, or refused: nothing listening) as against a wrong answer.
    let unanswered = |node: &str, q: &Question| -> bool {
        rounds.iter().any(|(n, r)| {
            n == node
                && r.as_ref().is_ok_and(|r| {
                    of_query(r, &q.query).iter().any(|a| matches!(a.outcome, Outcome::Timeout | Outcome::Refused))
                })
        })
    };
    let passes = |node: &str, q: &Question| -> bool {
        results.iter().any(|r| {
            r.status == Status::Pass
                && r.subject.source_node.as_deref() == Some(node)
                && r.check == q.check
                && r.subject.name == subject(node, q).name
        })
    };
    let nodes: Vec<&str> = rounds.iter().map(|(n, _)| n.as_str()).collect();
    let direct_answers = |node: &str| {
        questions.iter().filter(|q| q.check == PER_SERVER).any(|q| {
            rounds.iter().any(|(n, r)| {
                n == node
                    && r.as_ref().is_ok_and(|r| of_query(r, &q.query).iter().any(|a| a.outcome.records().is_some()))
            })
        })
    };
    let mut diagnoses = Vec::new();
    for (i, r) in results.iter().enumerate() {
        if r.status != Status::Fail {
            continue;
        }
        let Some(node) = r.subject.source_node.as_deref() else { continue };
        let Some(q) = questions.iter().find(|q| q.check == r.check && subject(node, q).name == r.subject.name) else {
            continue;
        };
        let name = &q.query.name;
        let diagnosis = if unanswered(node, q) {
            let others_ok: Vec<&str> = nodes.iter().copied().filter(|n| *n != node && passes(n, q)).collect();
            if !others_ok.is_empty() {
                Diagnosis {
                    likely_cause: format!(
                        "the path from {node} to the cluster DNS (kube-proxy on {node}, or its route)"
                    ),
                    evidence: vec![format!(
                        "{name} gets no answer from {node} but is answered from {}",
                        others_ok.join(", ")
                    )],
                    next_step: Some(format!("check kube-proxy on {node} and its rules for {}", f.dns_ip)),
                }
            } else if q.check != PER_SERVER && direct_answers(node) {
                Diagnosis {
                    likely_cause: format!(
                        "the DNS Service {}: its endpoints answer directly, the Service does not",
                        f.dns_ip
                    ),
                    evidence: vec![format!(
                        "{name} gets no answer through {} from every node; a DNS endpoint ({}) answers {node} directly",
                        f.dns_ip,
                        f.dns_endpoints.join(", ")
                    )],
                    next_step: Some("check the kube-dns Service's ports and kube-proxy's rules for it".into()),
                }
            } else {
                Diagnosis {
                    likely_cause: "the cluster DNS server: neither the DNS Service nor its endpoints answer".into(),
                    evidence: vec![format!(
                        "{name} gets no answer (timeout or refused) from every node, through {} and directly at its endpoints ({})",
                        f.dns_ip,
                        if f.dns_endpoints.is_empty() { "none ready".to_string() } else { f.dns_endpoints.join(", ") }
                    )],
                    next_step: Some("check the DNS pods (or server) in kube-system and their logs".into()),
                }
            }
        } else {
            Diagnosis {
                likely_cause: format!("the cluster DNS's records for {name}"),
                evidence: vec![format!(
                    "expected {}, got {}",
                    r.expected.as_deref().unwrap_or("?"),
                    r.observed.as_deref().unwrap_or("?")
                )],
                next_step: Some(
                    "compare with `kubectl get svc,endpoints`; a stale answer points at the DNS server's watch of the API"
                        .into(),
                ),
            }
        };
        diagnoses.push((i, diagnosis));
    }
    for (i, d) in diagnoses {
        results[i].diagnosis = Some(d);
    }
}
