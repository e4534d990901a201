//! Probes sent by the runner itself (outside the cluster), for NodePorts: a plain HTTP/1.0 GET over a
//! fresh TCP connection, so that the local address the server should see is known.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::protocol::{Attempt, Identity, Outcome};

/// One GET of `/` from the runner; returns the attempt and the local address used.
pub async fn http_get(target: SocketAddr, timeout: Duration) -> (Attempt, Option<SocketAddr>) {
    let start = Instant::now();
    let (outcome, local) = match tokio::time::timeout(timeout, exchange(target)).await {
        Err(_) => (Outcome::Timeout, None),
        Ok(Err(e)) => (io_outcome(&e), None),
        Ok(Ok((outcome, local))) => (outcome, Some(local)),
    };
    let attempt = Attempt {
        target: target.to_string(),
        start_ms: 0,
        elapsed_us: start.elapsed().as_micros() as u64,
        retries: 0,
        outcome,
    };
    (attempt, local)
}

async fn exchange(target: SocketAddr) -> std::io::Result<(Outcome, SocketAddr)> {
    let mut stream = TcpStream::connect(target).await?;
    let local = stream.local_addr()?;
    stream.write_all(format!("GET / HTTP/1.0\r\nHost: {target}\r\n\r\n").as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let outcome = match serde_json::from_str::<Identity>(body) {
        Ok(identity) => Outcome::Answered { identity },
        Err(_) => Outcome::Unexpected { detail: text.lines().next().unwrap_or_default().to_string() },
    };
    Ok((outcome, local))
}

fn io_outcome(e: &std::io::Error) -> Outcome {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Outcome::Refused,
        std::io::ErrorKind::ConnectionReset => Outcome::Reset,
        std::io::ErrorKind::TimedOut => Outcome::Timeout,
        _ => Outcome::Error { detail: e.to_string() },
    }
}

/// Whether the runner can open a TCP connection to `target` within `timeout` (any answer counts, a
/// refusal too: the address is reachable).
pub async fn can_reach(target: SocketAddr, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Err(_) => Err(format!("connecting to {target} timed out after {} ms", timeout.as_millis())),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
        Ok(Err(e)) => Err(format!("connecting to {target}: {e}")),
    }
}
