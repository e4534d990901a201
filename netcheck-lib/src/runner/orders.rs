//! Sending an order to an agent and awaiting its result, through a ConfigMap in the run's namespace.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

use super::deploy::AgentPod;
use crate::protocol::{
    self, AGENT_LABEL, Action, ORDER_KEY, ORDER_LABEL, Order, OrderResult, PROTOCOL_VERSION, RESULT_KEY,
};
use crate::{Error, Result};

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

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
    /// The runner could not send the order.
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

/// Sends `action` to `agent` and waits up to `timeout` for its result.
pub async fn send(
    client: &kube::Client,
    ns: &str,
    agent: &AgentPod,
    action: Action,
    timeout: Duration,
) -> Result<OrderResult, OrderFailure> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let name = format!("order-{}-{}", SEQUENCE.fetch_add(1, Ordering::SeqCst), std::process::id());
    let order = Order { version: PROTOCOL_VERSION, action };
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([
                (AGENT_LABEL.to_string(), agent.pod.clone()),
                (ORDER_LABEL.to_string(), "true".to_string()),
                (super::manifests::MANAGED_BY.0.to_string(), super::manifests::MANAGED_BY.1.to_string()),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(ORDER_KEY.to_string(), serde_json::to_string(&order).unwrap_or_default())])),
        ..Default::default()
    };
    api.create(&PostParams::default(), &cm).await.map_err(|e| OrderFailure::Api(e.to_string()))?;
    let answered = tokio::time::timeout(timeout, result_written(&api, &name)).await;
    // Orders are evidence only while they run; the namespace deletion would remove them anyway.
    let cleanup = api.clone();
    let cleanup_name = name.clone();
    tokio::spawn(async move { cleanup.delete(&cleanup_name, &Default::default()).await.ok() });
    let cm = match answered {
        Err(_) => {
            return Err(OrderFailure::NoReport { agent: agent.pod.clone(), node: agent.node.clone(), waited: timeout });
        }
        Ok(Err(refused)) => return Err(OrderFailure::Api(format!("watching its ConfigMap: {refused}"))),
        Ok(Ok(cm)) => cm,
    };
    let text = cm.data.and_then(|mut d| d.remove(RESULT_KEY)).unwrap_or_default();
    let result = protocol::parse_result(&text).map_err(OrderFailure::Refused)?;
    match &result.error {
        Some(e) => Err(OrderFailure::Refused(e.clone())),
        None => Ok(result),
    }
}

/// Waits until the order ConfigMap `name` carries a result. A watch that fails or ends (the API
/// server closing it, a broken connection while the network is under test) is resumed with backoff:
/// only the caller's deadline ends the wait, so a lost watch is never mistaken for a lost agent. A
/// refusal (403, 401) is final: waiting would not grant the permission.
async fn result_written(api: &Api<ConfigMap>, name: &str) -> std::result::Result<ConfigMap, String> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api.clone(), config).default_backoff().applied_objects().boxed();
    loop {
        match stream.next().await {
            Some(Ok(cm)) if cm.data.as_ref().is_some_and(|d| d.contains_key(RESULT_KEY)) => return Ok(cm),
            Some(Err(e)) => {
                if let Some(refused) = super::watch_refusal(&e) {
                    return Err(refused);
                }
            }
            Some(_) => continue,
            // The watcher stream does not end on its own; should it, wait for the deadline.
            None => std::future::pending::<()>().await,
        }
    }
}

/// Maps an [`OrderFailure`] that means netcheck itself could not run into an [`Error`].
pub fn into_error(f: OrderFailure) -> Error {
    Error::Protocol(f.to_string())
}
