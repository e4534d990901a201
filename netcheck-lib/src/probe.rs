//! Probing a Service that is not netcheck's own (a user's application) from every node's client
//! agent: "from every node, GET `http://my-svc.my-ns:8080/healthz` answers 200".
//!
//! The probes run in a [`Session`]; one with `servers: 0` (see [`crate::runner::SessionOptions`])
//! deploys only the client agents. The outcome is an ordinary [`Report`], one result per source node,
//! so [`Report::assert_passed`] and the renderings work on it.
//!
//! ```no_run
//! # async fn demo(session: &netcheck::runner::Session) -> netcheck::Result<()> {
//! let report = netcheck::probe::http(session, "http://my-svc.my-ns:8080/healthz", 200, &Default::default()).await?;
//! report.assert_passed();
//! # Ok(()) }
//! ```

use std::time::{Duration, Instant};

use crate::protocol::{Action, Attempt, HttpProbe, Outcome, TcpProbe};
use crate::report::{CheckResult, Report, Status, Subject};
use crate::runner::Session;
use crate::{Error, Result, stats};

/// Check id of the results of [`http`].
pub const HTTP_CHECK: &str = "probe/http";
/// Check id of the results of [`tcp`].
pub const TCP_CHECK: &str = "probe/tcp";

/// How many requests each node sends, how long each may take, and how long a node may take to start
/// answering.
#[derive(Debug, Clone, Copy)]
pub struct ProbeOptions {
    /// Measured requests (or connects) per node.
    pub attempts: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Before measuring, each node retries single requests until one gets the wanted answer, for at
    /// most this long: a Service created a moment ago is not judged before kube-proxy and DNS have
    /// caught up. The time it took is reported as `settledMs`. Zero: measure at once.
    pub settle: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions { attempts: 3, timeout: Duration::from_secs(2), settle: Duration::from_secs(10) }
    }
}

/// From every client agent, `attempts` GETs of `url` (plain `http://`, host a name or an IP) must each
/// answer `status`. Names resolve through the agents' resolv.conf, as the user's own pods resolve them;
/// the agents live in the session's namespace, so give `svc.namespace` rather than a bare `svc`.
///
/// # Errors
/// [`Error::Input`] when `url` is not an `http://` URL with a host.
pub async fn http(session: &Session, url: &str, status: u16, options: &ProbeOptions) -> Result<Report> {
    let (target, path) = split_http_url(url)?;
    let probe = |attempts| {
        Action::Http(HttpProbe {
            targets: vec![target.clone()],
            path: path.clone(),
            attempts,
            concurrency: 1,
            timeout_ms: options.timeout.as_millis() as u64,
            interval_ms: 0,
            any_server: true,
            keep_body: false,
            give_up_after: 0,
            until_answers: None,
        })
    };
    let wanted = Outcome::Http { status, body: None };
    let results = probe_every_node(session, probe, &wanted, options, |node, attempts| {
        judge(HTTP_CHECK, Subject::from_node(node).at(url), attempts, &wanted, &format!("HTTP {status}"))
    })
    .await;
    Ok(session_report(session, "probe", results))
}

/// From every client agent, `attempts` TCP connects to `address` (`host:port`) must each succeed:
/// for Services whose protocol netcheck does not speak.
///
/// # Errors
/// [`Error::Input`] when `address` has no port.
pub async fn tcp(session: &Session, address: &str, options: &ProbeOptions) -> Result<Report> {
    if address.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
        return Err(Error::Input(format!("'{address}' is not host:port")));
    }
    let probe = |attempts| {
        Action::Tcp(TcpProbe {
            targets: vec![address.to_string()],
            attempts,
            timeout_ms: options.timeout.as_millis() as u64,
        })
    };
    let results = probe_every_node(session, probe, &Outcome::Connected, options, |node, attempts| {
        judge(TCP_CHECK, Subject::from_node(node).at(address), attempts, &Outcome::Connected, "a connection")
    })
    .await;
    Ok(session_report(session, "probe", results))
}

/// Per node, at once: settle (single attempts until one gets `wanted`), then the measured order.
async fn probe_every_node(
    session: &Session,
    probe: impl Fn(u32) -> Action,
    wanted: &Outcome,
    options: &ProbeOptions,
    judge: impl Fn(&str, &[Attempt]) -> CheckResult,
) -> Vec<CheckResult> {
    let check = match probe(1) {
        Action::Tcp(_) => TCP_CHECK,
        _ => HTTP_CHECK,
    };
    let per_node = session.agents.clients.iter().map(|(node, agent)| {
        let (probe, judge) = (&probe, &judge);
        async move {
            let send = |action| session.channel.send(agent, action);
            let started = Instant::now();
            while started.elapsed() < options.settle {
                match send(probe(1)).await {
                    Ok(r) if r.attempts.iter().all(|a| &a.outcome == wanted) => break,
                    Ok(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                    Err(_) => break,
                }
            }
            let settled_ms = started.elapsed().as_millis() as u64;
            match send(probe(options.attempts)).await {
                Ok(r) => {
                    crate::checks::capped_by_partial(judge(node, &r.attempts), &r).measure("settledMs", settled_ms)
                }
                Err(e) => CheckResult::new(check, Status::Error, Subject::from_node(node), e.to_string()),
            }
        }
    });
    futures::future::join_all(per_node).await
}

/// Pass when every attempt ended as `wanted`; otherwise counts what happened instead.
fn judge(check: &str, subject: Subject, attempts: &[Attempt], wanted: &Outcome, wanted_text: &str) -> CheckResult {
    let good = attempts.iter().filter(|a| &a.outcome == wanted).count();
    let latencies: Vec<f64> = attempts.iter().map(|a| a.elapsed_us as f64 / 1000.0).collect();
    let mut result = if good == attempts.len() && good > 0 {
        CheckResult::new(
            check,
            Status::Pass,
            subject,
            format!("{good} of {} attempts got {wanted_text}", attempts.len()),
        )
    } else {
        let observed = describe_outcomes(attempts);
        let message = format!("{good} of {} attempts got {wanted_text}; observed {observed}", attempts.len());
        CheckResult::new(check, Status::Fail, subject, message).compare(wanted_text, observed)
    };
    if let Some(p) = stats::percentiles(&latencies) {
        result = result.measure("p50Ms", stats::round2(p.p50)).measure("maxMs", stats::round2(p.max));
    }
    result.measure("attempts", attempts.len()).measure("succeeded", good)
}

/// `3 × HTTP 200, 1 × refused`: what the attempts ended in, most frequent first.
pub(crate) fn describe_outcomes(attempts: &[Attempt]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for a in attempts {
        let label = outcome_text(&a.outcome);
        match counts.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => counts.push((label, 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    if counts.is_empty() {
        return "no attempt".into();
    }
    counts.iter().map(|(l, n)| format!("{n} × {l}")).collect::<Vec<_>>().join(", ")
}

/// One outcome in a few words: `HTTP 503`, `refused`, `unresolved: …`.
pub(crate) fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Http { status, .. } => format!("HTTP {status}"),
        Outcome::Unresolved { detail } | Outcome::Error { detail } | Outcome::Unexpected { detail } => {
            format!("{}: {detail}", outcome.label())
        }
        other => other.label().to_string(),
    }
}

/// `http://host[:port]/path?query` → (`host:port`, `/path?query`).
fn split_http_url(url: &str) -> Result<(String, String)> {
    let bad = |why: &str| {
        Error::Input(format!("'{url}' is not a URL to probe: {why} (e.g. http://my-svc.my-ns:8080/healthz)"))
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if parsed.scheme() != "http" {
        return Err(bad("only http:// is probed"));
    }
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let mut path = parsed.path().to_string();
    if let Some(q) = parsed.query() {
        path = format!("{path}?{q}");
    }
    Ok((format!("{host}:{port}"), path))
}

fn session_report(session: &Session, scenario: &str, results: Vec<CheckResult>) -> Report {
    let nodes = session.nodes.iter().map(|n| n.name.clone()).collect();
    Report::from_results(&session.run_id, scenario, session.cluster.info(nodes), results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(outcome: Outcome) -> Attempt {
        Attempt { target: "t".into(), start_ms: 0, elapsed_us: 1500, retries: 0, outcome }
    }

    #[test]
    fn urls_split_into_target_and_path() {
        assert_eq!(
            split_http_url("http://my-svc.my-ns:8080/healthz?x=1").unwrap(),
            ("my-svc.my-ns:8080".into(), "/healthz?x=1".into())
        );
        assert_eq!(split_http_url("http://web.shop").unwrap(), ("web.shop:80".into(), "/".into()));
        assert!(split_http_url("https://web.shop/").unwrap_err().to_string().contains("only http://"));
        assert!(split_http_url("web.shop:80").is_err());
        assert!(split_http_url("not a url").is_err());
    }

    #[test]
    fn every_attempt_must_get_the_wanted_status() {
        let wanted = Outcome::Http { status: 200, body: None };
        let all =
            [attempt(Outcome::Http { status: 200, body: None }), attempt(Outcome::Http { status: 200, body: None })];
        let r = judge(HTTP_CHECK, Subject::from_node("a"), &all, &wanted, "HTTP 200");
        assert_eq!(r.status, Status::Pass, "{}", r.message);
        assert_eq!(r.measurements["succeeded"], serde_json::json!(2));

        let mixed = [
            attempt(Outcome::Http { status: 200, body: None }),
            attempt(Outcome::Http { status: 503, body: None }),
            attempt(Outcome::Refused),
        ];
        let r = judge(HTTP_CHECK, Subject::from_node("a"), &mixed, &wanted, "HTTP 200");
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.message, "1 of 3 attempts got HTTP 200; observed 1 × HTTP 200, 1 × HTTP 503, 1 × refused");

        let none: [Attempt; 0] = [];
        assert_eq!(
            judge(TCP_CHECK, Subject::default(), &none, &Outcome::Connected, "a connection").status,
            Status::Fail
        );
    }
}
