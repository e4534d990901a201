//! The server role: identity over HTTP and UDP, and the switchable readiness endpoint. An agent that
//! is shutting down or switched unready closes kept-alive connections after each answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONNECTION, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use super::Readiness;
use crate::{Error, Result};
use netcheck_protocol::{HTTP_PORT, Identity, UDP_PORT};

/// How long `/readyz` waits for the order watch: under the kubelet's 1 s probe timeout, so a
/// watch that is not up by then still gets a 503, not a timed-out probe.
const READYZ_WAIT: Duration = Duration::from_millis(800);

/// Serves `/` (identity JSON, with the client address seen) and `/readyz`, one HTTP/1 connection per
/// task; every other path is 404.
pub(super) async fn serve_http(identity: Identity, readiness: Arc<Readiness>) -> Result<JoinHandle<()>> {
    let listener = TcpListener::bind(("0.0.0.0", HTTP_PORT))
        .await
        .map_err(|source| Error::Io { what: format!("binding HTTP port {HTTP_PORT}"), source })?;
    Ok(tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    continue;
                }
            };
            let (identity, readiness) = (identity.clone(), readiness.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (identity, readiness) = (identity.clone(), readiness.clone());
                    async move {
                        let path = request.uri().path();
                        if path == "/readyz" {
                            readiness.wait_connected(READYZ_WAIT).await;
                        }
                        Ok::<_, std::convert::Infallible>(answer(path, &identity, &readiness, peer))
                    }
                });
                let connection =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, %peer, "HTTP connection ended with an error");
                }
            });
        }
    }))
}

fn answer(path: &str, identity: &Identity, readiness: &Readiness, peer: SocketAddr) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/" => {
            let seen = Identity { client: peer.to_string(), ..identity.clone() };
            (StatusCode::OK, serde_json::to_vec(&seen).unwrap_or_default())
        }
        "/readyz" if readiness.ready() => (StatusCode::OK, Vec::new()),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, Vec::new()),
        _ => (StatusCode::NOT_FOUND, Vec::new()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if path == "/" && !readiness.wanted.load(Ordering::SeqCst) {
        // Shutting down or switched unready: close kept-alive connections after this answer, so
        // that their clients move to another backend without losing a request (no cut).
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Answers every datagram with the identity JSON (including the sender's address).
pub(super) async fn serve_udp(identity: Identity) -> Result<JoinHandle<()>> {
    let socket = UdpSocket::bind(("0.0.0.0", UDP_PORT))
        .await
        .map_err(|source| Error::Io { what: format!("binding UDP port {UDP_PORT}"), source })?;
    Ok(tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let Ok((_, peer)) = socket.recv_from(&mut buf).await else { continue };
            let answer = Identity { client: peer.to_string(), ..identity.clone() };
            let text = serde_json::to_vec(&answer).unwrap_or_default();
            let _ = socket.send_to(&text, peer).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn identity() -> Identity {
        Identity { pod: "s-1".into(), node: "node-b".into(), pod_ip: "10.244.1.5".into(), client: String::new() }
    }

    #[test]
    fn an_agent_that_is_not_wanted_ready_closes_connections_after_answering() {
        let peer: SocketAddr = "10.244.2.9:40000".parse().unwrap();
        let ready = Readiness::new(true);
        ready.set_connected();
        let response = answer("/", &identity(), &ready, peer);
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get(CONNECTION).is_none());
        ready.wanted.store(false, Ordering::SeqCst);
        let response = answer("/", &identity(), &ready, peer);
        assert_eq!(response.status(), StatusCode::OK, "still answers");
        assert_eq!(response.headers().get(CONNECTION).unwrap(), "close");
        assert!(answer("/readyz", &identity(), &ready, peer).headers().get(CONNECTION).is_none());
    }

    #[tokio::test]
    async fn readyz_waits_for_the_order_watch_instead_of_failing_the_first_probe() {
        let ready = Arc::new(Readiness::new(true));
        let connecting = ready.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            connecting.set_connected();
        });
        let start = Instant::now();
        ready.wait_connected(Duration::from_secs(5)).await;
        assert!(ready.ready(), "ready once the watch is up");
        assert!(start.elapsed() < Duration::from_secs(4), "returned when the watch came up, not at the bound");
    }

    #[tokio::test]
    async fn readyz_gives_up_at_its_bound_and_never_waits_for_an_agent_switched_unready() {
        let ready = Readiness::new(true);
        ready.wait_connected(Duration::from_millis(20)).await;
        assert!(!ready.ready(), "no watch: still not ready after the bound");
        let unready = Readiness::new(false);
        let start = Instant::now();
        unready.wait_connected(Duration::from_secs(5)).await;
        assert!(start.elapsed() < Duration::from_secs(4), "an agent not wanted ready answers at once");
    }
}
