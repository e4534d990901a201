//! The client role: executes HTTP, TCP and UDP probe orders and times every attempt.

use std::error::Error as _;
use std::io;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::net::{TcpStream, UdpSocket};

use super::record::Recorder;
use netcheck_protocol::{Attempt, HttpProbe, Identity, MAX_KEPT_BODY, Outcome, TcpProbe, UdpProbe};

/// Runs `attempts` GETs per target with `concurrency` in flight, each on a fresh connection so that
/// every request is balanced anew by the Service proxy.
pub(super) async fn http(probe: &HttpProbe, record: &Recorder) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .no_proxy()
        .timeout(Duration::from_millis(probe.timeout_ms))
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))?;
    let origin = Instant::now();
    let jobs: Vec<String> =
        probe.targets.iter().flat_map(|t| std::iter::repeat_n(t.clone(), probe.attempts as usize)).collect();
    let interval = Duration::from_millis(probe.interval_ms);
    let silence = std::sync::Mutex::new(Silence::default());
    let silence = &silence;
    let watch = std::sync::Mutex::new(Watched::default());
    let watch = &watch;
    let (met_tx, met_rx) = tokio::sync::watch::channel(false);
    let (met_tx, met_rx) = (&met_tx, &met_rx);
    futures::stream::iter(jobs.into_iter().enumerate())
        .map(|(i, target)| {
            let client = client.clone();
            let url = format!("http://{target}{}", probe.path);
            async move {
                if !interval.is_zero() {
                    // A steady schedule per target: the i-th request of a target at i × interval; a
                    // watch that is met ends the wait (and the order) at once.
                    let nth = (i % probe.attempts.max(1) as usize) as u32;
                    let mut met = met_rx.clone();
                    tokio::select! {
                        () = tokio::time::sleep_until((origin + interval * nth).into()) => {}
                        _ = met.wait_for(|m| *m) => return,
                    }
                }
                if record.is_full()
                    || silence.lock().is_ok_and(|s| s.given_up(&target, probe.give_up_after))
                    || watch.lock().is_ok_and(|w| w.met)
                {
                    return;
                }
                let start = Instant::now();
                let outcome = http_once(&client, &url, probe.any_server, probe.keep_body).await;
                if let Ok(mut s) = silence.lock() {
                    s.record(&target, &outcome);
                }
                let start_ms = start.duration_since(origin).as_millis() as u64;
                if let (Some(w), Some(identity), Ok(mut watched)) =
                    (probe.until_answers.as_ref(), outcome.identity(), watch.lock())
                {
                    watched.answers.push((start_ms, identity.pod_ip.clone()));
                    let answers: Vec<(u64, &str)> = watched.answers.iter().map(|(t, ip)| (*t, ip.as_str())).collect();
                    watched.met = w.is_met(&answers);
                    met_tx.send_replace(watched.met);
                }
                record.push(Attempt {
                    target,
                    start_ms,
                    elapsed_us: start.elapsed().as_micros() as u64,
                    retries: 0,
                    outcome,
                });
            }
        })
        .buffer_unordered(probe.concurrency.max(1) as usize)
        .for_each(|()| std::future::ready(()))
        .await;
    Ok(())
}

/// The answers an [`HttpProbe::until_answers`] watch has seen (request start, answering pod), and
/// whether they show what it waits for.
#[derive(Default)]
struct Watched {
    answers: Vec<(u64, String)>,
    met: bool,
}

/// Per target: timeouts in a row, and whether it ever answered ([`HttpProbe::give_up_after`]).
#[derive(Default)]
struct Silence(std::collections::HashMap<String, (u32, bool)>);

impl Silence {
    fn record(&mut self, target: &str, outcome: &Outcome) {
        let (in_a_row, answered) = self.0.entry(target.to_string()).or_default();
        if *outcome == Outcome::Timeout {
            *in_a_row += 1;
        } else {
            *in_a_row = 0;
            *answered = true;
        }
    }

    fn given_up(&self, target: &str, limit: u32) -> bool {
        limit > 0 && self.0.get(target).is_some_and(|(in_a_row, answered)| !answered && *in_a_row >= limit)
    }
}

pub(super) async fn http_once(client: &reqwest::Client, url: &str, any_server: bool, keep_body: bool) -> Outcome {
    let response = match client.get(url).send().await {
        Ok(r) => r,
        Err(e) => return classify_http_error(&e),
    };
    let status = response.status();
    if any_server {
        let body = match keep_body {
            true => Some(body_start(response).await),
            false => None,
        };
        return Outcome::Http { status: status.as_u16(), body };
    }
    let body = match response.text().await {
        Ok(b) => b,
        Err(e) => return classify_http_error(&e),
    };
    if !status.is_success() {
        return Outcome::Unexpected { detail: format!("HTTP {status}") };
    }
    match serde_json::from_str::<Identity>(&body) {
        Ok(identity) => Outcome::Answered { identity },
        Err(_) => {
            Outcome::Unexpected { detail: format!("HTTP {status}, not a netcheck agent: {}", truncate(&body, 80)) }
        }
    }
}

fn classify_http_error(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        return Outcome::Timeout;
    }
    // The io::Error deep in the chain tells refused from reset from unreachable.
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>()
            && let Some(outcome) = classify_io(io)
        {
            return outcome;
        }
        let text = s.to_string();
        if text.contains("dns error") || text.contains("failed to lookup") || text.contains("no record found") {
            return Outcome::Unresolved { detail: text };
        }
        source = s.source();
    }
    Outcome::Error { detail: e.to_string() }
}

pub(super) fn classify_io(e: &io::Error) -> Option<Outcome> {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Some(Outcome::Refused),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
            Some(Outcome::Reset)
        }
        io::ErrorKind::TimedOut => Some(Outcome::Timeout),
        _ => match e.raw_os_error() {
            Some(code) if code == 113 || code == 101 => Some(Outcome::Error { detail: e.to_string() }),
            _ => None,
        },
    }
}

/// The first [`MAX_KEPT_BODY`] bytes of the body (cut at a character boundary); what could not be
/// read is left out: the status already says the server answered.
async fn body_start(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < MAX_KEPT_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(MAX_KEPT_BODY);
    let text = String::from_utf8_lossy(&kept);
    text.trim_end_matches('\u{fffd}').to_string()
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Opens `attempts` fresh TCP connections per target, one after the other, and closes each at once:
/// proves that something listens without knowing the application's protocol.
pub(super) async fn tcp(probe: &TcpProbe, record: &Recorder) -> Result<(), String> {
    let origin = Instant::now();
    let timeout = Duration::from_millis(probe.timeout_ms);
    let per_target = probe.targets.iter().map(|target| async move {
        for _ in 0..probe.attempts {
            let start = Instant::now();
            let outcome = match tokio::time::timeout(timeout, connect(target)).await {
                Err(_) => Outcome::Timeout,
                Ok(outcome) => outcome,
            };
            let room = record.push(Attempt {
                target: target.clone(),
                start_ms: start.duration_since(origin).as_millis() as u64,
                elapsed_us: start.elapsed().as_micros() as u64,
                retries: 0,
                outcome,
            });
            if !room {
                break;
            }
        }
    });
    futures::future::join_all(per_target).await;
    Ok(())
}

async fn connect(target: &str) -> Outcome {
    let addresses = match tokio::net::lookup_host(target).await {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => return Outcome::Unresolved { detail: e.to_string() },
    };
    let Some(address) = addresses.first() else {
        return Outcome::Unresolved { detail: format!("{target} has no address") };
    };
    match TcpStream::connect(address).await {
        Ok(_) => Outcome::Connected,
        Err(e) => classify_io(&e).unwrap_or(Outcome::Error { detail: e.to_string() }),
    }
}

/// Runs `attempts` request/response exchanges per target over UDP; a try that times out is retried up
/// to `retries` times and counted, so that loss is visible even when the exchange finally succeeds.
pub(super) async fn udp(probe: &UdpProbe, record: &Recorder) -> Result<(), String> {
    let origin = Instant::now();
    for target in &probe.targets {
        for _ in 0..probe.attempts {
            let start = Instant::now();
            let (outcome, retries) = udp_exchange(target, probe).await;
            let room = record.push(Attempt {
                target: target.clone(),
                start_ms: start.duration_since(origin).as_millis() as u64,
                elapsed_us: start.elapsed().as_micros() as u64,
                retries,
                outcome,
            });
            if !room {
                return Ok(());
            }
        }
    }
    Ok(())
}

async fn udp_exchange(target: &str, probe: &UdpProbe) -> (Outcome, u32) {
    // A fresh socket (and source port) per exchange: a new conntrack entry, balanced anew.
    let socket = match UdpSocket::bind("0.0.0.0:0").await {
        Ok(s) => s,
        Err(e) => return (Outcome::Error { detail: e.to_string() }, 0),
    };
    if let Err(e) = socket.connect(target).await {
        return (classify_io(&e).unwrap_or(Outcome::Error { detail: e.to_string() }), 0);
    }
    let mut buf = [0u8; 1024];
    for try_no in 0..=probe.retries {
        if let Err(e) = socket.send(b"netcheck").await {
            return (classify_io(&e).unwrap_or(Outcome::Error { detail: e.to_string() }), try_no);
        }
        match tokio::time::timeout(Duration::from_millis(probe.timeout_ms), socket.recv(&mut buf)).await {
            Err(_) => continue,
            Ok(Err(e)) => return (classify_io(&e).unwrap_or(Outcome::Error { detail: e.to_string() }), try_no),
            Ok(Ok(n)) => {
                let outcome = match serde_json::from_slice::<Identity>(&buf[..n]) {
                    Ok(identity) => Outcome::Answered { identity },
                    Err(_) => Outcome::Unexpected { detail: format!("{n} bytes, not a netcheck agent") },
                };
                return (outcome, try_no);
            }
        }
    }
    (Outcome::Timeout, probe.retries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_given_up_after_timeouts_only_if_it_never_answered() {
        let mut s = Silence::default();
        for _ in 0..3 {
            s.record("10.96.0.5:80", &Outcome::Timeout);
        }
        assert!(s.given_up("10.96.0.5:80", 3));
        assert!(!s.given_up("10.96.0.5:80", 0), "0: never give up");
        assert!(!s.given_up("10.96.0.5:80", 4));
        s.record("10.96.0.6:80", &Outcome::Refused);
        for _ in 0..5 {
            s.record("10.96.0.6:80", &Outcome::Timeout);
        }
        assert!(!s.given_up("10.96.0.6:80", 3), "a target that answered once is probed to the end");
    }
}
