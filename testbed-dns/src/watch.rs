//! Reflectors for Services, Endpoints and Pods, and the debounce loop that turns their
//! change events into rebuilds.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::ListParams;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector::Lookup};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tracing::{info, warn};

/// Quiet period after the last event before rebuilding: coalesces bursts such as a
/// Deployment rollout (Pod + Endpoints events) into one zone write.
pub const DEBOUNCE: Duration = Duration::from_millis(20);

/// Upper bound on how long continuous churn may postpone a rebuild.
const MAX_DELAY: Duration = Duration::from_millis(500);

/// First retry delay when unbound did not accept a reload (e.g. not started yet); doubles
/// up to [`RETRY_RELOAD_MAX`] so a long outage does not flood the log.
const RETRY_RELOAD: Duration = Duration::from_secs(2);

/// Longest delay between reload retries.
const RETRY_RELOAD_MAX: Duration = Duration::from_secs(30);

/// Only Running pods get records, so let the API server filter the rest out; a pod that
/// stops running leaves the selector and arrives as a delete.
const POD_FIELD_SELECTOR: &str = "status.phase=Running";

/// A point-in-time copy of everything the records are built from.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// All Services in all namespaces.
    pub services: Vec<Arc<Service>>,
    /// All core/v1 Endpoints in all namespaces.
    pub endpoints: Vec<Arc<Endpoints>>,
    /// Running Pods in all namespaces.
    pub pods: Vec<Arc<Pod>>,
}

/// Lists everything once (for `--once`): no watch, no stores.
pub async fn list_once(client: Client) -> Result<Snapshot, kube::Error> {
    let lp = ListParams::default();
    let services = Api::<Service>::all(client.clone()).list(&lp).await?;
    let endpoints = Api::<Endpoints>::all(client.clone()).list(&lp).await?;
    let pods = Api::<Pod>::all(client).list(&lp.clone().fields(POD_FIELD_SELECTOR)).await?;
    Ok(Snapshot {
        services: services.items.into_iter().map(Arc::new).collect(),
        endpoints: endpoints.items.into_iter().map(Arc::new).collect(),
        pods: pods.items.into_iter().map(Arc::new).collect(),
    })
}

/// Starts one reflector task for `K`; it pokes `changed` whenever the store changed.
fn spawn_reflector<K>(api: Api<K>, config: watcher::Config, kind: &'static str, changed: Arc<Notify>) -> Store<K>
where
    K: Resource + Lookup + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    <K as Lookup>::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
    <K as Resource>::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    // default_backoff: on errors the watcher re-lists with exponential backoff instead of
    // ending the stream, so DNS keeps being served from the last good state meanwhile.
    let stream = reflector::reflector(writer, watcher::watcher(api, config).default_backoff());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                // Init/InitApply only fill a buffer; the store swaps at InitDone.
                Ok(Event::Apply(_) | Event::Delete(_) | Event::InitDone) => changed.notify_one(),
                Ok(Event::Init | Event::InitApply(_)) => {}
                Err(e) => warn!(kind, error = %e, "watch error; retrying with backoff"),
            }
        }
        warn!(kind, "watch stream ended");
    });
    reader
}

/// Watches the cluster forever, calling `rebuild` after the initial sync and after every
/// debounced burst of changes. `rebuild` returns `true` when it wants to be called again
/// soon even without changes (a reload to retry).
pub async fn run<F>(client: Client, mut rebuild: F) -> Result<(), reflector::store::WriterDropped>
where
    F: AsyncFnMut(Snapshot) -> bool,
{
    let changed = Arc::new(Notify::new());
    let services =
        spawn_reflector(Api::<Service>::all(client.clone()), watcher::Config::default(), "Service", changed.clone());
    let endpoints = spawn_reflector(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default(),
        "Endpoints",
        changed.clone(),
    );
    let pods = spawn_reflector(
        Api::<Pod>::all(client),
        watcher::Config::default().fields(POD_FIELD_SELECTOR),
        "Pod",
        changed.clone(),
    );

    // A zone built from a partial list would briefly NXDOMAIN real services.
    services.wait_until_ready().await?;
    endpoints.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    info!("initial sync complete");

    let snapshot = || Snapshot { services: services.state(), endpoints: endpoints.state(), pods: pods.state() };
    // The stores are already complete here: drop the permit their initial sync left so
    // the first rebuild is not immediately followed by an identical one.
    let _ = changed.notified().now_or_never();
    let mut retry = rebuild(snapshot()).await.then_some(RETRY_RELOAD);
    loop {
        match retry {
            // Either a change or the retry timer triggers the next rebuild.
            Some(delay) => {
                let _ = tokio::time::timeout(delay, changed.notified()).await;
            }
            None => changed.notified().await,
        }
        debounce(&changed).await;
        retry = rebuild(snapshot()).await.then(|| retry.map_or(RETRY_RELOAD, |d| (d * 2).min(RETRY_RELOAD_MAX)));
    }
}

/// Waits until no notification arrived for [`DEBOUNCE`], or [`MAX_DELAY`] passed.
async fn debounce(changed: &Notify) {
    let deadline = tokio::time::Instant::now() + MAX_DELAY;
    loop {
        tokio::select! {
            _ = changed.notified() => {
                if tokio::time::Instant::now() >= deadline {
                    return;
                }
            }
            _ = tokio::time::sleep(DEBOUNCE) => return,
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn debounce_waits_for_quiet_period() {
        let n = Arc::new(Notify::new());
        let start = tokio::time::Instant::now();
        let poker = {
            let n = n.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    n.notify_one();
                }
            })
        };
        debounce(&n).await;
        // Five pokes 10 ms apart, then 20 ms of quiet.
        assert_eq!(start.elapsed(), Duration::from_millis(70));
        poker.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn debounce_is_capped_under_constant_churn() {
        let n = Arc::new(Notify::new());
        let start = tokio::time::Instant::now();
        let poker = {
            let n = n.clone();
            tokio::spawn(async move {
                for _ in 0..200 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    n.notify_one();
                }
            })
        };
        debounce(&n).await;
        assert_eq!(start.elapsed(), MAX_DELAY);
        poker.abort();
    }
}
