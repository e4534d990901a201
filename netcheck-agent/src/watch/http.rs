//! HTTP paths: a GET on a new connection per attempt, answered by a netcheck agent's identity.
//! Shared by [`WatchProbe::Http`](netcheck_protocol::watch::WatchProbe::Http) (through a Service
//! address) and the pod IP paths.

use std::time::Duration;

use netcheck_protocol::{Identity, Outcome};

use super::Timing;
use super::describe;
use super::schedule::every_interval;
use super::sequence::Sequencer;

/// A client that opens a new connection per request (no idle pool, no proxy), so that every attempt
/// is balanced anew by the Service proxy and sees a broken path at once.
pub(super) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .no_proxy()
        .timeout(timeout)
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

/// One GET of `http://{target}/`: the identity of the agent that answered, or why none did.
pub(super) async fn get_identity(client: &reqwest::Client, target: &str) -> Result<Identity, String> {
    match crate::probe::http_once(client, &format!("http://{target}/"), false, false).await {
        Outcome::Answered { identity } => Ok(identity),
        other => Err(describe(&other)),
    }
}

/// Follows an HTTP path to `target` (`ip:port`) forever.
pub(super) async fn follow(target: String, timing: Timing, sink: Sequencer) {
    let client = client(timing.timeout);
    every_interval(timing, sink, move || {
        let (client, target) = (client.clone(), target.clone());
        async move { get_identity(&client?, &target).await.map(|_| ()) }
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use netcheck_protocol::watch::WatchRecord;

    use super::*;
    use crate::watch::test_server::{Reply, serve};

    #[tokio::test]
    async fn an_agent_answer_succeeds_and_anything_else_is_described() {
        let client = client(Duration::from_millis(500)).unwrap();
        let server = serve(vec![Reply::Answer, Reply::Status(503)]).await;
        assert_eq!(get_identity(&client, &server.target).await.unwrap().pod, "server-c1");
        let failure = get_identity(&client, &server.target).await.unwrap_err();
        assert!(failure.starts_with("HTTP 503"), "{failure}");
        assert_eq!(server.connections(), 2, "a new connection per attempt");
        let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = gone.local_addr().unwrap().to_string();
        drop(gone);
        assert_eq!(get_identity(&client, &target).await.unwrap_err(), "refused");
    }

    #[tokio::test]
    async fn slow_attempts_do_not_hold_back_the_schedule() {
        // Every attempt hangs until its 300 ms timeout; they start every 50 ms regardless.
        let server = serve(vec![Reply::Hang]).await;
        let record = Arc::new(Mutex::new(WatchRecord::new("node-a", "c-1", 0)));
        let timing = Timing { interval: Duration::from_millis(50), timeout: Duration::from_millis(300) };
        let path = tokio::spawn(follow(server.target.clone(), timing, Sequencer::new("clusterip", record.clone())));
        tokio::time::sleep(Duration::from_millis(900)).await;
        path.abort();
        let r = record.lock().unwrap();
        let p = &r.paths["clusterip"];
        assert!(p.requests >= 8, "{} attempts folded", p.requests);
        assert_eq!(p.failures, p.requests);
        let open = p.open.as_ref().expect("an open outage");
        assert_eq!(open.detail, "timeout");
        assert!(server.connections() >= 12, "{} connections", server.connections());
    }
}
