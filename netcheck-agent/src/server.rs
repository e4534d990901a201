//! The server role: identity over HTTP and UDP, and the switchable readiness endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use super::Readiness;
use crate::{Error, Result};
use netcheck_protocol::{HTTP_PORT, Identity, UDP_PORT};

#[derive(Clone)]
struct ServerState {
    identity: Identity,
    readiness: Arc<Readiness>,
}

/// Serves `/` (identity JSON, with the client address seen) and `/readyz`.
pub(super) async fn serve_http(identity: Identity, readiness: Arc<Readiness>) -> Result<JoinHandle<()>> {
    let app = Router::new()
        .route("/", get(whoami))
        .route("/readyz", get(readyz))
        .with_state(ServerState { identity, readiness });
    let listener = TcpListener::bind(("0.0.0.0", HTTP_PORT))
        .await
        .map_err(|source| Error::Io { what: format!("binding HTTP port {HTTP_PORT}"), source })?;
    Ok(tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }))
}

async fn whoami(State(state): State<ServerState>, ConnectInfo(peer): ConnectInfo<SocketAddr>) -> String {
    let identity = Identity { client: peer.to_string(), ..state.identity };
    serde_json::to_string(&identity).unwrap_or_default()
}

async fn readyz(State(state): State<ServerState>) -> StatusCode {
    if state.readiness.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
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
