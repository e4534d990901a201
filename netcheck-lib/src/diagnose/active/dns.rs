//! `dns`: the Service's names answer exactly the records the API implies, from every node.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;

use super::observations::silent_nodes;
use super::{ATTEMPTS, TIMEOUT};
use crate::diagnose::facts::Facts;
use crate::diagnose::read_only::is_headless;
use crate::diagnose::{DNS, Step, StepStatus};
use crate::protocol::{Action, Attempt, DnsProbe, DnsQuery, Outcome};
use crate::runner::Session;
use crate::{Error, Result};

/// The DNS questions and their exact expected answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Questions {
    /// (query, expected records sorted).
    pub queries: Vec<(DnsQuery, Vec<String>)>,
}

pub(super) fn dns_questions(facts: &Facts, svc: &Service, domain: &str) -> Option<Questions> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let ns = &facts.namespace;
    let spec = svc.spec.clone().unwrap_or_default();
    let fqdn = format!("{name}.{ns}.svc.{}.", domain.trim_end_matches('.'));
    let short = format!("{name}.{ns}");
    let ask = |name: &str, record_type: &str| DnsQuery {
        name: name.into(),
        record_type: record_type.into(),
        server: None,
        tcp: false,
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        let target = format!("{}.", spec.external_name.clone().unwrap_or_default().trim_end_matches('.'));
        return Some(Questions { queries: vec![(ask(&fqdn, "CNAME"), vec![target])] });
    }
    let expected: Vec<String> = if is_headless(svc) {
        let ips: BTreeSet<String> =
            facts.endpoints.iter().filter(|e| e.address.ready).map(|e| e.address.ip.clone()).collect();
        ips.into_iter().collect()
    } else {
        spec.cluster_ip.clone().into_iter().collect()
    };
    if expected.is_empty() {
        return None;
    }
    Some(Questions { queries: vec![(ask(&fqdn, "A"), expected.clone()), (ask(&short, "A"), expected)] })
}

pub(super) async fn ask_from_every_node(
    session: &Session,
    questions: &Questions,
) -> Result<BTreeMap<String, std::result::Result<Vec<Attempt>, String>>> {
    let probe = DnsProbe {
        queries: questions.queries.iter().map(|(q, _)| q.clone()).collect(),
        attempts: ATTEMPTS,
        timeout_ms: TIMEOUT.as_millis() as u64,
        interval_ms: 0,
        until_answered_ms: None,
        until_presence: None,
    };
    let results: BTreeMap<_, _> = session
        .order_every_client(|_| Action::Dns(probe.clone()))
        .await
        .into_iter()
        .map(|(node, r)| (node, crate::checks::whole_attempts(r)))
        .collect();
    if !results.is_empty() && results.values().all(|r| r.is_err()) {
        return Err(Error::Protocol("no client agent reported the DNS answers".into()));
    }
    Ok(results)
}

/// `dns`: every name answers exactly the expected records, from every node.
pub fn judge_dns(questions: &Questions, answers: &BTreeMap<String, std::result::Result<Vec<Attempt>, String>>) -> Step {
    let mut wrong = Vec::new();
    let mut evidence = Vec::new();
    let mut timeouts = 0;
    let mut nx = 0;
    let mut total = 0;
    let mut short_only = true;
    let mut failing_nodes = BTreeSet::new();
    let mut reporting = 0;
    for (node, result) in answers {
        let attempts = match result {
            Ok(a) => a,
            Err(e) => {
                evidence.push(format!("no result from the client on {node}: {e}"));
                continue;
            }
        };
        reporting += 1;
        for (i, (query, expected)) in questions.queries.iter().enumerate() {
            total += 1;
            let key = query.key();
            let mine: Vec<&Attempt> = attempts.iter().filter(|a| a.target == key).collect();
            let is_wrong = |a: &&&Attempt| {
                let mut got = a.outcome.records().map(<[String]>::to_vec).unwrap_or_default();
                got.sort();
                got != *expected
            };
            let got = match mine.iter().find(is_wrong) {
                None if !mine.is_empty() => continue,
                None => "no answer reported".to_string(),
                Some(bad) => match &bad.outcome {
                    Outcome::Records { records, .. } => records.join(", "),
                    other => {
                        timeouts += usize::from(*other == Outcome::Timeout);
                        nx += usize::from(*other == Outcome::NxDomain);
                        crate::probe::outcome_text(other)
                    }
                },
            };
            if i == 0 {
                short_only = false;
            }
            failing_nodes.insert(node.as_str());
            wrong.push(format!(
                "{node}: {} {} — expected {}, got {got}",
                query.record_type,
                query.name,
                expected.join(", ")
            ));
        }
    }
    let names: Vec<String> = questions.queries.iter().map(|(q, _)| q.name.clone()).collect();
    if wrong.is_empty() && !evidence.is_empty() {
        return silent_nodes(DNS, "the names answer as expected", evidence.len(), evidence);
    }
    if wrong.is_empty() {
        let expected = questions.queries.first().map(|(_, e)| e.join(", ")).unwrap_or_default();
        return Step::new(DNS, StepStatus::Pass, format!("{} answer {expected} from every node", names.join(" and ")))
            .with_evidence(evidence);
    }
    let failed = wrong.len();
    let summary = format!("{failed} of {total} name lookups give the wrong answer");
    evidence.splice(0..0, wrong);
    let step = Step::new(DNS, StepStatus::Fail, summary).with_evidence(evidence);
    let fix = if timeouts == failed && failing_nodes.len() < reporting {
        let nodes = failing_nodes.iter().copied().collect::<Vec<_>>().join(", ");
        format!(
            "only {nodes} get no DNS answer while the other nodes do: the path from {nodes} to the cluster DNS (kube-proxy's rules there for the kube-dns ClusterIP)"
        )
    } else if timeouts == failed {
        "the cluster DNS does not answer: check the DNS pods (kube-system, k8s-app=kube-dns) and that the kube-dns Service reaches them".to_string()
    } else if short_only {
        "the full name resolves but the short form does not: the search path in the pods' /etc/resolv.conf (kubelet's --cluster-domain)".to_string()
    } else if nx > 0 {
        "the DNS server says the name does not exist: it has no record for this Service (is it watching the API? is the cluster domain right, --cluster-domain?)".to_string()
    } else {
        "the DNS server's records differ from what the API says: it is serving stale or wrong records for this Service"
            .to_string()
    };
    step.with_fix(fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compares_the_exact_record_set_and_places_the_fault() {
        let q = |name: &str| DnsQuery { name: name.into(), record_type: "A".into(), server: None, tcp: false };
        let questions = Questions {
            queries: vec![
                (q("web.shop.svc.cluster.local."), vec!["10.96.0.20".into()]),
                (q("web.shop"), vec!["10.96.0.20".into()]),
            ],
        };
        let answer =
            |name: &str, outcome| Attempt { target: q(name).key(), start_ms: 0, elapsed_us: 1, retries: 0, outcome };
        let records = |ip: &str| Outcome::Records { records: vec![ip.into()], ttl_s: Some(30) };
        let good = BTreeMap::from([(
            "node-a".to_string(),
            Ok(vec![
                answer("web.shop.svc.cluster.local.", records("10.96.0.20")),
                answer("web.shop", records("10.96.0.20")),
            ]),
        )]);
        let step = judge_dns(&questions, &good);
        assert_eq!(step.status, StepStatus::Pass, "{step:?}");
        assert_eq!(step.summary, "web.shop.svc.cluster.local. and web.shop answer 10.96.0.20 from every node");

        let short_broken = BTreeMap::from([(
            "node-a".to_string(),
            Ok(vec![
                answer("web.shop.svc.cluster.local.", records("10.96.0.20")),
                answer("web.shop", Outcome::NxDomain),
            ]),
        )]);
        let step = judge_dns(&questions, &short_broken);
        assert_eq!(step.evidence[0], "node-a: A web.shop — expected 10.96.0.20, got NXDOMAIN");
        assert!(step.fix.unwrap().contains("search path"));

        let stale = BTreeMap::from([(
            "node-a".to_string(),
            Ok(vec![
                answer("web.shop.svc.cluster.local.", records("10.96.0.99")),
                answer("web.shop", records("10.96.0.99")),
            ]),
        )]);
        let step = judge_dns(&questions, &stale);
        assert_eq!(step.summary, "2 of 2 name lookups give the wrong answer");
        assert!(step.fix.unwrap().contains("stale or wrong"));

        let mut one_node_silent = good.clone();
        one_node_silent.insert(
            "node-b".to_string(),
            Ok(vec![answer("web.shop.svc.cluster.local.", Outcome::Timeout), answer("web.shop", Outcome::Timeout)]),
        );
        let step = judge_dns(&questions, &one_node_silent);
        assert_eq!(step.summary, "2 of 4 name lookups give the wrong answer");
        assert!(
            step.fix.unwrap().starts_with("only node-b get no DNS answer"),
            "{:?}",
            judge_dns(&questions, &one_node_silent)
        );
    }
}
