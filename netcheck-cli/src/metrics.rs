//! `netcheck watch --metrics-addr`: the watch's records as Prometheus metrics over HTTP while it runs
//! (rendered by `netcheck::watch::metrics`), so that a dashboard can follow an upgrade live.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The latest metrics text, replaced at every snapshot.
pub type Latest = Arc<Mutex<String>>;

/// Binds `addr` (before anything is deployed, so that a taken address costs nothing).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/metrics` from `latest` on `listener` until the process ends.
pub fn serve(listener: TcpListener, latest: Latest) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let latest = latest.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = answer(request.uri().path(), &latest);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
}

fn answer(path: &str, latest: &Latest) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/metrics" => (StatusCode::OK, latest.lock().map(|t| t.clone()).unwrap_or_default()),
        _ => (StatusCode::NOT_FOUND, "see /metrics\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
