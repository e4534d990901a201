//! Long-lived paths: one kept-alive HTTP/1.1 connection, one GET at a time, to see whether
//! established connections survive (a rollout, a proxy restart, a conntrack flush).
//!
//! A request that fails or times out on an established connection is a cut. A response with
//! `Connection: close` (the server agent is shutting down gracefully) and a connection the server
//! closed while idle are not: the next attempt simply opens a new connection.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONNECTION, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use netcheck_protocol::Identity;
use netcheck_protocol::watch::{Cut, Observation};
use tokio::net::TcpStream;
use tokio::time::MissedTickBehavior;

use super::sequence::{Done, Sequencer};
use super::{Timing, describe, now_ms};

/// Follows a long-lived path to `target` (`ip:port`) forever: an attempt per tick, one at a time
/// (ticks that come while a request is in flight are skipped).
pub(super) async fn follow(target: String, timing: Timing, mut sink: Sequencer) {
    let mut path = LongLived::new(target, timing.timeout);
    let mut ticks = tokio::time::interval(timing.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let seq = sink.start();
        let done = path.attempt().await;
        sink.done(seq, done);
    }
}

/// The state of a long-lived path: its connection, when it has one.
pub(super) struct LongLived {
    target: String,
    timeout: Duration,
    connection: Option<Connection>,
}

impl LongLived {
    pub(super) fn new(target: String, timeout: Duration) -> LongLived {
        LongLived { target, timeout, connection: None }
    }

    /// One attempt: a GET on the connection, opened first if there is none.
    pub(super) async fn attempt(&mut self) -> Done {
        let (start_ms, started) = (now_ms(), Instant::now());
        let (error, cut) = self.exchange(start_ms).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        Done { observation: Observation { start_ms, elapsed_ms, error }, cut }
    }

    /// Whether the path holds an open connection now.
    #[cfg(test)]
    fn connected(&self) -> bool {
        self.connection.as_ref().is_some_and(|c| !c.is_closed())
    }

    async fn exchange(&mut self, start_ms: u64) -> (Option<String>, Option<Cut>) {
        // Closed by the server while idle: no request was lost, so no cut; open a new one.
        if self.connection.as_ref().is_some_and(Connection::is_closed) {
            self.connection = None;
        }
        // A second try only when the first request never left (the connection closed just then).
        for _ in 0..2 {
            let connection = match &mut self.connection {
                Some(c) => c,
                None => match tokio::time::timeout(self.timeout, Connection::open(&self.target)).await {
                    Ok(Ok(c)) => self.connection.insert(c),
                    Ok(Err(e)) => return (Some(e), None),
                    Err(_) => return (Some("connect timeout".into()), None),
                },
            };
            let ending = connection.request(self.timeout).await;
            let (error, fate) = judge(&ending);
            match fate {
                Fate::Keep => {
                    if let Ending::Answered { identity: Some(identity), .. } = ending {
                        connection.backend = identity.pod;
                    }
                }
                Fate::Close => self.connection = None,
                Fate::Cut => {
                    let backend = std::mem::take(&mut connection.backend);
                    self.connection = None;
                    let detail = error.clone().unwrap_or_default();
                    return (error, Some(Cut { at_ms: start_ms, backend, detail }));
                }
                Fate::Retry => {
                    self.connection = None;
                    continue;
                }
            }
            return (error, None);
        }
        (Some("the connection closed before the request was sent, twice".into()), None)
    }
}

/// How a request on an established connection ended.
#[derive(Debug)]
enum Ending {
    /// A response came back in full.
    Answered {
        status: StatusCode,
        /// The server said `Connection: close`.
        close: bool,
        /// The body, if it was an agent's identity.
        identity: Option<Identity>,
    },
    /// The connection closed before the request was written: nothing was lost on it.
    NotSent,
    /// No complete response within the timeout.
    Timeout,
    /// The connection failed under the request.
    Failed(String),
}

/// What becomes of the connection after a request.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// It carries the next request.
    Keep,
    /// The server closes it after answering: drop it, not a cut.
    Close,
    /// It failed under a request: drop it and record a cut.
    Cut,
    /// The request never left: drop it and send again on a new connection.
    Retry,
}

/// The attempt's failure, if any, and the connection's fate. Only a request lost on an established
/// connection is a cut; an answer that is not an agent's identity is a failure of the attempt, but
/// the connection itself is fine.
fn judge(ending: &Ending) -> (Option<String>, Fate) {
    match ending {
        Ending::Answered { status, close, identity } => {
            let error = match identity {
                _ if *status != StatusCode::OK => Some(format!("HTTP {}", status.as_u16())),
                None => Some("HTTP 200, not a netcheck agent".into()),
                Some(_) => None,
            };
            (error, if *close { Fate::Close } else { Fate::Keep })
        }
        Ending::NotSent => (None, Fate::Retry),
        Ending::Timeout => (Some("timeout".into()), Fate::Cut),
        Ending::Failed(detail) => (Some(detail.clone()), Fate::Cut),
    }
}

/// One kept-alive HTTP/1.1 connection and the task driving it.
struct Connection {
    host: String,
    sender: SendRequest<Empty<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
    /// The pod that answered last on this connection.
    backend: String,
}

impl Connection {
    /// Connects and shakes hands (the caller bounds the time).
    async fn open(target: &str) -> Result<Connection, String> {
        let stream = TcpStream::connect(target).await.map_err(|e| io_detail(&e))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| hyper_detail(&e))?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "long-lived connection ended with an error");
            }
        });
        Ok(Connection { host: target.to_string(), sender, driver, backend: String::new() })
    }

    /// Whether the connection has closed (its driver ended: the server closed it or it failed).
    fn is_closed(&self) -> bool {
        self.driver.is_finished() || self.sender.is_closed()
    }

    /// One GET / and its whole body, within `timeout`.
    async fn request(&mut self, timeout: Duration) -> Ending {
        let request = match Request::get("/").header(HOST, &self.host).body(Empty::new()) {
            Ok(r) => r,
            Err(e) => return Ending::Failed(e.to_string()),
        };
        let sender = &mut self.sender;
        let exchange = async move {
            if sender.ready().await.is_err() {
                return Ending::NotSent;
            }
            let response = match sender.try_send_request(request).await {
                Ok(r) => r,
                Err(e) if e.message().is_some() => return Ending::NotSent,
                Err(e) => return Ending::Failed(hyper_detail(&e.into_error())),
            };
            let status = response.status();
            let close = response
                .headers()
                .get_all(CONNECTION)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))));
            match response.into_body().collect().await {
                Ok(body) => Ending::Answered { status, close, identity: serde_json::from_slice(&body.to_bytes()).ok() },
                Err(e) => Ending::Failed(hyper_detail(&e)),
            }
        };
        tokio::time::timeout(timeout, exchange).await.unwrap_or(Ending::Timeout)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn io_detail(e: &std::io::Error) -> String {
    crate::probe::classify_io(e).map_or_else(|| e.to_string(), |o| describe(&o))
}

/// A short description of a hyper error: the io error under it when there is one.
fn hyper_detail(e: &hyper::Error) -> String {
    if e.is_incomplete_message() {
        return "connection closed before the answer".into();
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io_detail(io);
        }
        source = s.source();
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, close: bool, identity: bool) -> Ending {
        let identity = identity.then(|| Identity {
            pod: "s-1".into(),
            node: "node-b".into(),
            pod_ip: "10.244.1.5".into(),
            client: String::new(),
        });
        Ending::Answered { status: StatusCode::from_u16(status).unwrap(), close, identity }
    }

    #[test]
    fn only_a_request_lost_on_the_connection_is_a_cut() {
        assert_eq!(judge(&answered(200, false, true)), (None, Fate::Keep));
        assert_eq!(judge(&answered(200, true, true)), (None, Fate::Close), "a graceful close is no cut");
        assert_eq!(judge(&answered(503, false, false)), (Some("HTTP 503".into()), Fate::Keep));
        assert_eq!(judge(&answered(200, false, false)).1, Fate::Keep, "a foreign answer: the connection is fine");
        assert_eq!(judge(&Ending::Timeout), (Some("timeout".into()), Fate::Cut));
        assert_eq!(judge(&Ending::Failed("reset".into())), (Some("reset".into()), Fate::Cut));
        assert_eq!(judge(&Ending::NotSent), (None, Fate::Retry), "closed while idle: send again");
    }

    use crate::watch::test_server::{Reply, serve};

    const TIMEOUT: Duration = Duration::from_millis(500);

    /// Runs `n` attempts, a pause apart; returns (error, cut backend) per attempt.
    async fn attempts(path: &mut LongLived, n: usize) -> Vec<(Option<String>, Option<String>)> {
        let mut seen = Vec::new();
        for _ in 0..n {
            let done = path.attempt().await;
            seen.push((done.observation.error, done.cut.map(|c| c.backend)));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    }

    #[tokio::test]
    async fn one_connection_carries_every_request() {
        let server = serve(vec![Reply::Answer]).await;
        let mut path = LongLived::new(server.target.clone(), TIMEOUT);
        assert_eq!(attempts(&mut path, 3).await, vec![(None, None); 3]);
        assert_eq!(server.connections(), 1);
        assert!(path.connected());
    }

    #[tokio::test]
    async fn a_graceful_close_is_a_success_and_no_cut() {
        let server = serve(vec![Reply::AnswerAndClose]).await;
        let mut path = LongLived::new(server.target.clone(), TIMEOUT);
        assert_eq!(attempts(&mut path, 3).await, vec![(None, None); 3]);
        assert_eq!(server.connections(), 3, "a new connection after each close");
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_reopened_without_a_cut() {
        let server = serve(vec![Reply::AnswerThenCloseIdle, Reply::Answer]).await;
        let mut path = LongLived::new(server.target.clone(), TIMEOUT);
        assert_eq!(attempts(&mut path, 3).await, vec![(None, None); 3]);
        assert_eq!(server.connections(), 2);
    }

    #[tokio::test]
    async fn a_connection_dropped_under_a_request_is_a_cut_naming_the_backend() {
        let server = serve(vec![Reply::Answer, Reply::Drop, Reply::Answer]).await;
        let mut path = LongLived::new(server.target.clone(), TIMEOUT);
        let seen = attempts(&mut path, 3).await;
        assert_eq!(seen[0], (None, None));
        assert_eq!(seen[1], (Some("connection closed before the answer".into()), Some("server-c1".into())));
        assert_eq!(seen[2], (None, None), "the next attempt reconnects");
        assert_eq!(server.connections(), 2);
    }

    #[tokio::test]
    async fn a_request_unanswered_in_time_is_a_cut() {
        let server = serve(vec![Reply::Answer, Reply::Hang, Reply::Answer]).await;
        let mut path = LongLived::new(server.target.clone(), Duration::from_millis(200));
        let done = {
            path.attempt().await;
            path.attempt().await
        };
        assert_eq!(done.observation.error.as_deref(), Some("timeout"));
        let cut = done.cut.expect("a cut");
        assert_eq!((cut.at_ms, cut.backend.as_str()), (done.observation.start_ms, "server-c1"));
        assert!(done.observation.elapsed_ms >= 200);
    }

    #[tokio::test]
    async fn a_failed_connect_is_a_failure_but_no_cut() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap().to_string();
        drop(listener);
        let mut path = LongLived::new(target, TIMEOUT);
        assert_eq!(attempts(&mut path, 1).await, vec![(Some("refused".into()), None)]);
    }
}
