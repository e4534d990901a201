//! Watches the orders addressed to this agent, executes each once and writes back its result.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use super::{Readiness, probe};
use crate::protocol::{self, AGENT_LABEL, Action, Identity, ORDER_KEY, OrderResult, PROTOCOL_VERSION, RESULT_KEY};

pub(super) async fn execute_orders(client: kube::Client, namespace: String, me: Identity, readiness: Arc<Readiness>) {
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().labels(&format!("{AGENT_LABEL}={}", me.pod));
    let mut seen = HashSet::new();
    let mut events = watcher::watcher(api.clone(), config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "order watch failed; retrying");
                continue;
            }
        };
        match event {
            Event::InitDone => {
                readiness.connected.store(true, Ordering::SeqCst);
                tracing::info!("order watch established");
            }
            Event::Apply(cm) | Event::InitApply(cm) => {
                let Some(name) = cm.metadata.name.clone() else { continue };
                let data = cm.data.unwrap_or_default();
                if data.contains_key(RESULT_KEY) || !seen.insert(name.clone()) {
                    continue;
                }
                let Some(order) = data.get(ORDER_KEY).cloned() else { continue };
                tokio::spawn(execute(api.clone(), name, order, me.clone(), readiness.clone()));
            }
            Event::Delete(cm) => {
                if let Some(name) = cm.metadata.name {
                    seen.remove(&name);
                }
            }
            Event::Init => {}
        }
    }
}

async fn execute(api: Api<ConfigMap>, name: String, order: String, me: Identity, readiness: Arc<Readiness>) {
    let mut result = OrderResult { version: PROTOCOL_VERSION, agent: me, attempts: Vec::new(), error: None };
    match protocol::parse_order(&order) {
        Err(e) => result.error = Some(e),
        Ok(order) => match order.action {
            Action::Http(p) => absorb(&mut result, probe::http(&p).await),
            Action::Udp(p) => absorb(&mut result, probe::udp(&p).await),
            Action::Tcp(p) => absorb(&mut result, probe::tcp(&p).await),
            Action::Dns(p) => absorb(&mut result, super::dns::run(&p).await),
            Action::SetReady { ready } => readiness.wanted.store(ready, Ordering::SeqCst),
        },
    }
    let text = serde_json::to_string(&result).unwrap_or_default();
    let patch = serde_json::json!({ "data": { RESULT_KEY: text } });
    if let Err(e) = api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        tracing::error!(order = %name, error = %e, "cannot write result");
    }
}

fn absorb(result: &mut OrderResult, outcome: Result<Vec<protocol::Attempt>, String>) {
    match outcome {
        Ok(attempts) => result.attempts = attempts,
        Err(e) => result.error = Some(e),
    }
}
