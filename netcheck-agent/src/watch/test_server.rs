//! A scripted HTTP/1.1 server on 127.0.0.1 for the probes' tests: each request gets the next reply
//! of the script (the last one repeats), on whichever connection it comes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with a request.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reply {
    /// 200 with the identity of pod `server-c<connection number>`, connection kept.
    Answer,
    /// The same with `Connection: close`, then closes the connection (a server shutting down).
    AnswerAndClose,
    /// Answers, then closes the connection without saying so (an idle close).
    AnswerThenCloseIdle,
    /// Closes the connection without answering (a cut).
    Drop,
    /// Never answers.
    Hang,
    /// An answer with this status and an empty body.
    Status(u16),
}

/// A running test server.
pub(super) struct TestServer {
    /// `127.0.0.1:port`.
    pub(super) target: String,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Connections accepted so far.
    pub(super) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a server that follows `script`.
pub(super) async fn serve(script: Vec<Reply>) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let script = Arc::new(script);
    let counter = connections.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let number = counter.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(connection(stream, number, script.clone(), requests.clone()));
        }
    });
    TestServer { target, connections, task }
}

async fn connection(mut stream: TcpStream, number: usize, script: Arc<Vec<Reply>>, requests: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    loop {
        // Read one request's head (GETs have no body).
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.clear();
        let n = requests.fetch_add(1, Ordering::SeqCst);
        let reply = script[n.min(script.len() - 1)];
        let body = format!(r#"{{"pod":"server-c{number}","node":"node-b","podIp":"127.0.0.1","client":""}}"#);
        let answer = |extra: &str| {
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
                body.len()
            )
        };
        match reply {
            Reply::Answer => {
                let _ = stream.write_all(answer("").as_bytes()).await;
            }
            Reply::AnswerAndClose => {
                let _ = stream.write_all(answer("connection: close\r\n").as_bytes()).await;
                return;
            }
            Reply::AnswerThenCloseIdle => {
                let _ = stream.write_all(answer("").as_bytes()).await;
                return;
            }
            Reply::Drop => return,
            Reply::Hang => std::future::pending::<()>().await,
            Reply::Status(code) => {
                let head = format!("HTTP/1.1 {code} Whatever\r\ncontent-length: 0\r\n\r\n");
                let _ = stream.write_all(head.as_bytes()).await;
            }
        }
    }
}
