//! Pod IP paths: a GET to the ready endpoints of a Service in turn, straight to the pod IPs, so the
//! pod network is watched without the Service proxy. The ready endpoints are kept up to date by a
//! watch on the Service's EndpointSlices.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

use super::Timing;
use super::http::{client, get_identity};
use super::schedule::every_interval;
use super::sequence::Sequencer;

/// How long the path waits for the EndpointSlice watch before probing anyway: without it every
/// attempt would fail with "no ready endpoint" and draw an outage that is not there.
const LIST_WAIT: Duration = Duration::from_secs(10);

/// Follows the pod IPs of `service` (in `namespace`) on `port` forever.
pub(super) async fn follow(
    client_api: kube::Client,
    namespace: String,
    service: String,
    port: u16,
    timing: Timing,
    sink: Sequencer,
) {
    let api: Api<EndpointSlice> = Api::namespaced(client_api, &namespace);
    let config = watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
    let (store, writer) = reflector::store();
    let slices = reflector::reflector(writer, watcher::watcher(api, config)).default_backoff();
    let _watch = AbortOnDrop(tokio::spawn(slices.for_each(move |event| {
        if let Err(e) = event {
            tracing::warn!(error = %e, "EndpointSlice watch failed; retrying");
        }
        std::future::ready(())
    })));
    if tokio::time::timeout(LIST_WAIT, store.wait_until_ready()).await.is_err() {
        tracing::warn!(%service, "EndpointSlices not listed yet; probing anyway");
    }
    let http = client(timing.timeout);
    let mut turn = 0usize;
    every_interval(timing, sink, move || {
        let next = next_target(&store, port, &mut turn);
        let http = http.clone();
        async move {
            let target = next?;
            get_identity(&http?, &target.to_string()).await.map(|_| ()).map_err(|e| format!("{}: {e}", target.ip()))
        }
    })
    .await
}

/// The next ready endpoint in turn, or why there is none.
fn next_target(store: &Store<EndpointSlice>, port: u16, turn: &mut usize) -> Result<SocketAddr, String> {
    let ips = ready_ips(&store.state());
    if ips.is_empty() {
        return Err(if listed(store) {
            "no ready endpoint"
        } else {
            "no ready endpoint known (EndpointSlices not listed)"
        }
        .into());
    }
    let ip = ips[*turn % ips.len()];
    *turn = turn.wrapping_add(1);
    Ok(SocketAddr::new(ip, port))
}

/// Whether the EndpointSlices have been listed at least once.
fn listed(store: &Store<EndpointSlice>) -> bool {
    store.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok())
}

/// The addresses of the endpoints that are ready (unset counts as ready) and not terminating, sorted
/// so that the turn goes round them in a stable order.
fn ready_ips(slices: &[Arc<EndpointSlice>]) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| {
            let conditions = e.conditions.as_ref();
            conditions.and_then(|c| c.ready) != Some(false) && conditions.and_then(|c| c.terminating) != Some(true)
        })
        .flat_map(|e| e.addresses.iter())
        .filter_map(|a| a.parse().ok())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// Aborts the task when the path stops (a dropped `JoinHandle` would leave it running).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};

    fn endpoint(ip: &str, ready: Option<bool>, terminating: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec![ip.into()],
            conditions: Some(EndpointConditions { ready, terminating, serving: None }),
            ..Default::default()
        }
    }

    #[test]
    fn only_ready_endpoints_that_are_not_terminating_are_probed() {
        let slice = EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: vec![
                endpoint("10.244.1.9", Some(true), None),
                endpoint("10.244.1.7", None, None),
                endpoint("10.244.2.3", Some(false), None),
                endpoint("10.244.2.4", Some(true), Some(true)),
                Endpoint { addresses: vec!["10.244.2.5".into()], conditions: None, ..Default::default() },
            ],
            ..Default::default()
        };
        let ips: Vec<String> = ready_ips(&[Arc::new(slice)]).iter().map(|ip| ip.to_string()).collect();
        assert_eq!(ips, ["10.244.1.7", "10.244.1.9", "10.244.2.5"]);
    }
}
