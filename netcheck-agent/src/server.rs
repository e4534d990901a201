//! The server role: identity over HTTP and UDP, and the switchable readiness endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use super::Readiness;
use crate::{Error, Result};
use netcheck_protocol::{HTTP_PORT, Identity, UDP_PORT};

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
                    let response = answer(request.uri().path(), &identity, &readiness, peer);
                    async move { Ok::<_, std::convert::Infallible>(response) }
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
