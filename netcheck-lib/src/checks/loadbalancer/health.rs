//! kube-proxy's health-check node port for `externalTrafficPolicy: Local` Services: what it answers
//! (200 with `localEndpoints` > 0 on a node with a ready local endpoint, 503 with 0 elsewhere) and how
//! an answer is judged against the API's endpoints. Shared by `loadbalancer/local-policy` and the
//! `load-balancer` step of `netcheck diagnose`.

use crate::protocol::Outcome;

/// What one node's health-check node port said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    /// An HTTP answer; `local_endpoints` is None when the body was not kube-proxy's document.
    Answer {
        /// The HTTP status.
        status: u16,
        /// The document's `localEndpoints`.
        local_endpoints: Option<u64>,
    },
    /// No HTTP answer (refused, timeout, reset): the outcome's label.
    Silent(String),
}

impl Health {
    /// What an HTTP probe's outcome (with its body kept) says.
    pub(crate) fn of(outcome: &Outcome) -> Health {
        match outcome {
            Outcome::Http { status, body } => {
                let document: Option<serde_json::Value> = body.as_deref().and_then(|b| serde_json::from_str(b).ok());
                let local_endpoints = document.as_ref().and_then(|d| d["localEndpoints"].as_u64());
                Health::Answer { status: *status, local_endpoints }
            }
            other => Health::Silent(other.label().to_string()),
        }
    }

    /// The answer, as a message says it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Health::Answer { status, local_endpoints: Some(n) } => format!("answered {status} with localEndpoints {n}"),
            Health::Answer { status, local_endpoints: None } => {
                format!("answered {status} without kube-proxy's document")
            }
            Health::Silent(label) => format!("no answer ({label})"),
        }
    }
}

/// Why a node's answer disagrees with the `expected` ready endpoints the API lists on it, if it does.
pub(crate) fn disagreement(expected: u64, seen: &Health) -> Option<String> {
    let want = if expected > 0 { 200 } else { 503 };
    match seen {
        Health::Answer { status, local_endpoints: Some(n) } if *status == want && *n == expected => None,
        other => Some(format!(
            "{}, but the API lists {expected} ready endpoint(s) on the node: kube-proxy documents {want} with \
             localEndpoints {expected}",
            other.describe()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, body: &str) -> Health {
        Health::of(&Outcome::Http { status, body: Some(body.into()) })
    }

    #[test]
    fn a_health_check_agrees_only_with_kube_proxys_status_and_the_apis_count() {
        let ok = http(200, r#"{"service":{"namespace":"n","name":"s"},"localEndpoints":1,"serviceProxyHealthy":true}"#);
        assert_eq!(disagreement(1, &ok), None);
        assert!(disagreement(0, &ok).unwrap().contains("503 with localEndpoints 0"), "a stale 200 is named");
        let none = http(503, r#"{"localEndpoints":0}"#);
        assert_eq!(disagreement(0, &none), None);
        assert!(disagreement(2, &http(200, r#"{"localEndpoints":1}"#)).is_some(), "the count must be exact");
        assert!(disagreement(1, &http(200, "<html>")).unwrap().contains("without kube-proxy's document"));
        assert!(disagreement(0, &Health::of(&Outcome::Timeout)).unwrap().contains("no answer"));
    }
}
