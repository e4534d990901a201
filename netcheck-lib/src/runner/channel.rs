//! The control channel of a session: orders out to the agents and results back, through ConfigMaps
//! in the run's namespace.
//!
//! Invariants:
//! - One kube-runtime watcher per session observes every order ConfigMap of the namespace and hands
//!   each result to the waiter of its order. It resumes after watch expiry and stream errors (with
//!   backoff), so a broken watch while the network is under test never becomes an error result; only
//!   a refusal (401, 403) ends it, and every waiter then learns why at once.
//! - A waiter is registered before its order is created, so no result can come back unseen.
//! - One deadline policy: the agent stops an order at [`Order::deadline`] (the action's budget, or
//!   the caller's window) and writes back what it saw; the runner waits that long plus the margin
//!   [`Channel::margin`] derived from the orders' measured round trips. No report within that is
//!   [`OrderFailure::NoReport`]: the agent's path to the API server, never the data plane.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::oneshot;

use super::deploy::AgentPod;
use crate::Error;
use crate::protocol::{self, AGENT_LABEL, Action, ORDER_KEY, ORDER_LABEL, Order, OrderResult, RESULT_KEY};

/// The margin over an order's deadline before any order of the session came back.
const FIRST_MARGIN: Duration = Duration::from_secs(15);
/// The least margin over an order's deadline, however fast the round trips were: an agent's order
/// watch resuming after an error (with backoff) delays one delivery by seconds, which the round
/// trips measured before do not show. Seen once in 10 healthy `full` runs with a 3 s floor.
const MIN_MARGIN: Duration = Duration::from_secs(10);

/// Why an order produced no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderFailure {
    /// The agent did not answer in time: the pod → API server path, or the agent itself.
    NoReport {
        /// The agent.
        agent: String,
        /// Its node.
        node: String,
        /// How long the runner waited.
        waited: Duration,
    },
    /// The agent answered that it could not execute the order.
    Refused(String),
    /// The runner could not send the order, or the API refused to show its result.
    Api(String),
}

impl std::fmt::Display for OrderFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrderFailure::NoReport { agent, node, waited } => write!(
                f,
                "agent {agent} on node {node} did not report within {} s (control plane: the pod cannot reach the API server, or the agent is stuck)",
                waited.as_secs()
            ),
            OrderFailure::Refused(e) => write!(f, "the agent could not execute the order: {e}"),
            OrderFailure::Api(e) => write!(f, "could not send the order: {e}"),
        }
    }
}

/// Maps an [`OrderFailure`] that means netcheck itself could not run into an [`Error`].
pub fn into_error(f: OrderFailure) -> Error {
    Error::Protocol(f.to_string())
}

/// What the watcher hands a waiter: the answered ConfigMap, or the API's refusal to show it.
type Delivery = std::result::Result<ConfigMap, String>;

struct Shared {
    waiters: Mutex<HashMap<String, oneshot::Sender<Delivery>>>,
    /// Set once the API refused the watch; later orders fail at once with it.
    refused: Mutex<Option<String>>,
    /// The slowest round trip seen, less the agent's own execution time, in ms (0: none yet).
    slowest_overhead_ms: AtomicU64,
    sequence: AtomicU64,
}

/// Aborts the watcher task when the last handle of the channel goes.
struct WatchTask(tokio::task::JoinHandle<()>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends orders to a session's agents and hands their results back; cheap to clone.
#[derive(Clone)]
pub struct Channel {
    api: Api<ConfigMap>,
    /// Stamped on every order: the agents refuse any other run's.
    run_id: String,
    shared: Arc<Shared>,
    _watch: Arc<WatchTask>,
}

impl Channel {
    /// Starts the session's watcher on the order ConfigMaps of `namespace`, for the agents of run `run_id`.
    pub fn open(client: &kube::Client, namespace: &str, run_id: &str) -> Channel {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let shared = Arc::new(Shared {
            waiters: Mutex::new(HashMap::new()),
            refused: Mutex::new(None),
            slowest_overhead_ms: AtomicU64::new(0),
            sequence: AtomicU64::new(0),
        });
        let task = tokio::spawn(deliver_results(api.clone(), shared.clone()));
        Channel { api, run_id: run_id.to_string(), shared, _watch: Arc::new(WatchTask(task)) }
    }

    /// Sends `action` to `agent` with the action's own budget as the deadline, and waits for the result.
    /// An action too large for one result ([`Action::split`]) goes as several orders, one after the
    /// other, whose attempts are joined.
    pub async fn send(&self, agent: &AgentPod, action: Action) -> std::result::Result<OrderResult, OrderFailure> {
        let mut parts = action.split().into_iter();
        let Some(first) = parts.next() else { return Err(OrderFailure::Api("an order with nothing to do".into())) };
        let mut joined = self.send_order(agent, Order::new(first)).await?;
        for part in parts {
            let next = self.send_order(agent, Order::new(part)).await?;
            joined.attempts.extend(next.attempts);
            joined.elapsed_ms += next.elapsed_ms;
            joined.partial = joined.partial.or(next.partial);
        }
        Ok(joined)
    }

    /// Sends `action` to `agent` with `deadline` (a paced window that ends on its own terms), and waits.
    pub async fn send_within(
        &self,
        agent: &AgentPod,
        action: Action,
        deadline: Duration,
    ) -> std::result::Result<OrderResult, OrderFailure> {
        let mut order = Order::new(action);
        order.deadline_ms = deadline.as_millis().max(1) as u64;
        self.send_order(agent, order).await
    }

    /// Sends an order to every client at once (`action` gets the client's node name) and waits for
    /// each; results come back by node, in node-name order.
    pub async fn to_every_client(
        &self,
        clients: &BTreeMap<String, AgentPod>,
        action: impl Fn(&str) -> Action,
    ) -> Vec<(String, std::result::Result<OrderResult, OrderFailure>)> {
        let per_client = clients.iter().map(|(node, agent)| {
            let action = action(node);
            async move { (node.clone(), self.send(agent, action).await) }
        });
        futures::future::join_all(per_client).await
    }

    /// How long the runner waits beyond an order's deadline: twice the slowest round trip seen in
    /// this session (less the agents' execution time), at least `MIN_MARGIN`; `FIRST_MARGIN`
    /// before any order came back.
    pub fn margin(&self) -> Duration {
        margin_after(self.shared.slowest_overhead_ms.load(Ordering::SeqCst))
    }

    async fn send_order(&self, agent: &AgentPod, mut order: Order) -> std::result::Result<OrderResult, OrderFailure> {
        order.run.clone_from(&self.run_id);
        if let Some(refused) = self.shared.refused.lock().ok().and_then(|r| r.clone()) {
            return Err(OrderFailure::Api(format!("watching order results: {refused}")));
        }
        let name = format!("order-{}-{}", self.shared.sequence.fetch_add(1, Ordering::SeqCst), std::process::id());
        let wait = order.deadline() + self.margin();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiters) = self.shared.waiters.lock() {
            waiters.insert(name.clone(), tx);
        }
        let sent = Instant::now();
        let created = self.api.create(&PostParams::default(), &order_config_map(&name, agent, &order)).await;
        if let Err(e) = created {
            self.forget(&name);
            return Err(OrderFailure::Api(e.to_string()));
        }
        let mut answered = tokio::time::timeout(wait, rx).await;
        self.forget(&name);
        if answered.is_err() {
            // Before blaming the agent, read the order itself: a result the watch has not delivered
            // yet (the watch resuming after an error) is still a result.
            if let Ok(Some(cm)) = self.api.get_opt(&name).await
                && cm.data.as_ref().is_some_and(|d| d.contains_key(RESULT_KEY))
            {
                tracing::warn!(order = %name, "the order watch had not delivered a written result; read it directly");
                answered = Ok(Ok(Ok(cm)));
            }
        }
        // Orders are evidence only while they run; the namespace deletion would remove them anyway.
        let api = self.api.clone();
        tokio::spawn(async move { api.delete(&name, &Default::default()).await.ok() });
        let cm = match answered {
            Err(_) | Ok(Err(_)) => {
                return Err(OrderFailure::NoReport {
                    agent: agent.pod.clone(),
                    node: agent.node.clone(),
                    waited: wait,
                });
            }
            Ok(Ok(Err(refused))) => return Err(OrderFailure::Api(format!("watching order results: {refused}"))),
            Ok(Ok(Ok(cm))) => cm,
        };
        let text = cm.data.and_then(|mut d| d.remove(RESULT_KEY)).unwrap_or_default();
        let result = protocol::parse_result(&text).map_err(OrderFailure::Refused)?;
        let overhead = (sent.elapsed().as_millis() as u64).saturating_sub(result.elapsed_ms);
        self.shared.slowest_overhead_ms.fetch_max(overhead.max(1), Ordering::SeqCst);
        match &result.error {
            Some(e) => Err(OrderFailure::Refused(e.clone())),
            None => Ok(result),
        }
    }

    fn forget(&self, name: &str) {
        if let Ok(mut waiters) = self.shared.waiters.lock() {
            waiters.remove(name);
        }
    }
}

fn margin_after(slowest_overhead_ms: u64) -> Duration {
    match slowest_overhead_ms {
        0 => FIRST_MARGIN,
        ms => MIN_MARGIN.max(Duration::from_millis(2 * ms)),
    }
}

fn order_config_map(name: &str, agent: &AgentPod, order: &Order) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([
                (AGENT_LABEL.to_string(), agent.pod.clone()),
                (ORDER_LABEL.to_string(), "true".to_string()),
                (super::manifests::MANAGED_BY.0.to_string(), super::manifests::MANAGED_BY.1.to_string()),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(ORDER_KEY.to_string(), serde_json::to_string(order).unwrap_or_default())])),
        ..Default::default()
    }
}

/// The session's one watcher: every order ConfigMap that carries a result goes to its waiter. A
/// watch that fails or ends is resumed with backoff; a refusal (401, 403) is final and told to every
/// waiter, since waiting would not grant the permission.
async fn deliver_results(api: Api<ConfigMap>, shared: Arc<Shared>) {
    let config = watcher::Config::default().labels(&format!("{ORDER_LABEL}=true"));
    let mut stream = watcher(api, config).default_backoff().applied_objects().boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(cm) if cm.data.as_ref().is_some_and(|d| d.contains_key(RESULT_KEY)) => {
                let name = cm.metadata.name.clone().unwrap_or_default();
                let waiter = shared.waiters.lock().ok().and_then(|mut w| w.remove(&name));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(Ok(cm));
                }
            }
            Ok(_) => {}
            Err(e) => {
                if let Some(refused) = super::watch_refusal(&e) {
                    if let Ok(mut r) = shared.refused.lock() {
                        *r = Some(refused.clone());
                    }
                    let waiters: Vec<_> = shared.waiters.lock().map(|mut w| w.drain().collect()).unwrap_or_default();
                    for (_, waiter) in waiters {
                        let _ = waiter.send(Err(refused.clone()));
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_follows_the_slowest_round_trip_and_never_drops_below_its_floor() {
        assert_eq!(margin_after(0), FIRST_MARGIN, "nothing measured yet");
        assert_eq!(margin_after(40), MIN_MARGIN, "a fast API still gets the floor");
        assert_eq!(margin_after(2500), MIN_MARGIN);
        assert_eq!(margin_after(7000), Duration::from_secs(14));
    }

    #[test]
    fn an_order_config_map_names_its_agent_and_carries_the_order_with_its_deadline() {
        let agent = AgentPod { pod: "netcheck-client-node-b".into(), node: "node-b".into(), ip: "10.244.2.3".into() };
        let order = Order::new(Action::SetReady { ready: false });
        let cm = order_config_map("order-7-1", &agent, &order);
        let labels = cm.metadata.labels.unwrap();
        assert_eq!(labels[AGENT_LABEL], "netcheck-client-node-b");
        assert_eq!(labels[ORDER_LABEL], "true");
        let text = &cm.data.unwrap()[ORDER_KEY];
        assert_eq!(protocol::parse_order(text).unwrap(), order);
        assert!(text.contains(r#""deadlineMs":1000"#), "{text}");
    }
}
