//! Watches the orders addressed to this agent, executes each once and writes back its result.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use std::time::{Duration, Instant};

use super::record::Recorder;
use super::{Readiness, probe};
use netcheck_protocol::{self as protocol, AGENT_LABEL, Action, Identity, ORDER_KEY, OrderResult, RESULT_KEY};

pub(super) async fn execute_orders(
    client: kube::Client,
    namespace: String,
    run: String,
    me: Identity,
    readiness: Arc<Readiness>,
) {
    let run: Arc<str> = run.into();
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
                readiness.set_connected();
                tracing::info!("order watch established");
            }
            Event::Apply(cm) | Event::InitApply(cm) => {
                let Some(name) = cm.metadata.name.clone() else { continue };
                let data = cm.data.unwrap_or_default();
                if data.contains_key(RESULT_KEY) || !seen.insert(name.clone()) {
                    continue;
                }
                let Some(order) = data.get(ORDER_KEY).cloned() else { continue };
                tokio::spawn(execute(api.clone(), name, order, run.clone(), me.clone(), readiness.clone()));
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

async fn execute(
    api: Api<ConfigMap>,
    name: String,
    order: String,
    run: Arc<str>,
    me: Identity,
    readiness: Arc<Readiness>,
) {
    let started = Instant::now();
    let mut result = OrderResult::new(me);
    match protocol::parse_order_for_run(&order, &run) {
        Err(e) => result.error = Some(e),
        Ok(parsed) => {
            let record = Recorder::for_order(order.len());
            let deadline = parsed.deadline();
            let work = async {
                match &parsed.action {
                    Action::Http(p) => probe::http(p, &record).await,
                    Action::Udp(p) => probe::udp(p, &record).await,
                    Action::Tcp(p) => probe::tcp(p, &record).await,
                    Action::Dns(p) => super::dns::run(p, &record).await,
                    Action::SetReady { ready } => {
                        readiness.wanted.store(*ready, Ordering::SeqCst);
                        Ok(())
                    }
                }
            };
            let outcome = tokio::time::timeout(deadline, work).await;
            let (attempts, bytes) = record.take();
            result.partial = match &outcome {
                Err(_) => Some(format!(
                    "the agent stopped at the order's deadline of {} ms, after {} attempts",
                    deadline.as_millis(),
                    attempts.len()
                )),
                Ok(_) if record.is_full() => Some(format!(
                    "the agent stopped after {} attempts: the result reached the {bytes} bytes its ConfigMap has room for",
                    attempts.len()
                )),
                Ok(_) => None,
            };
            if let Ok(Err(e)) = outcome {
                result.error = Some(e);
            }
            result.attempts = attempts;
        }
    }
    result.elapsed_ms = started.elapsed().as_millis() as u64;
    let text = serde_json::to_string(&result).unwrap_or_default();
    let patch = serde_json::json!({ "data": { RESULT_KEY: text } });
    // A result the runner never sees is an order lost: retry a failed write (a busy or briefly
    // unreachable API server) for as long as the runner could still be waiting, but not for a
    // refusal or an order that is gone.
    let mut pause = Duration::from_millis(200);
    for _ in 0..WRITE_TRIES {
        match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if matches!(s.code, 401 | 403 | 404 | 422) => {
                tracing::error!(order = %name, error = %s, "cannot write result");
                return;
            }
            Err(e) => {
                tracing::warn!(order = %name, error = %e, "writing the result failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
    tracing::error!(order = %name, "cannot write result: gave up after {WRITE_TRIES} tries");
}

/// Tries to write a result: with the pauses between them (0.2 s doubling to 2 s), about 15 s.
const WRITE_TRIES: u32 = 10;
