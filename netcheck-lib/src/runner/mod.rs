//! A session on the cluster: connect, create the namespace, deploy agents, wait until they and the
//! data plane are ready, send them orders, clean up. It knows nothing of checks; the
//! [`orchestrator`](crate::orchestrator) runs checks on a session.
//!
//! Invariant: once the namespace exists, every exit path deletes it (unless `keep`): the normal end,
//! an error, SIGINT/SIGTERM (the orchestrator runs the work interruptibly), and a panic ([`namespace::NamespaceGuard`]).

pub mod channel;
pub mod connect;
pub mod deploy;
pub mod endpoints;
pub mod inventory;
pub mod manifests;
pub mod namespace;
pub mod services;
pub(crate) mod settle;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

pub use connect::{Cluster, ConnectOptions, connect};
pub use deploy::{AgentPod, Agents};
pub use inventory::{NodeInfo, Placement, Platform};
pub use manifests::ServiceGroup;

use crate::protocol::{Action, OrderResult};
use crate::{Error, Result};

/// The agent image this version of netcheck deploys unless told otherwise.
pub const DEFAULT_IMAGE: &str = concat!("localhost/netcheck/agent:", env!("CARGO_PKG_VERSION"));

/// Receives progress while a run waits on the cluster; the CLI draws it, tests ignore it.
pub trait Progress: Send + Sync {
    /// A new phase starts (`connect`, `deploy`, `ready`, `settle`, `probe`, `cleanup`).
    fn phase(&self, name: &str);
    /// A finer-grained note within the phase.
    fn note(&self, message: &str);
}

/// Progress sink that discards everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _: &str) {}
    fn note(&self, _: &str) {}
}

/// Whether the runner itself probes node addresses (NodePort checks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FromRunner {
    /// When a quick connect test to a node address succeeds.
    #[default]
    Auto,
    /// Always (unreachable nodes then fail).
    Always,
    /// Never: only the in-cluster clients probe.
    Never,
}

/// How to deploy the agents of a session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Agent image.
    pub image: String,
    /// Limit for agents to become Ready.
    pub ready_timeout: Duration,
    /// Number of server agents; 0 deploys client agents only (no echo Services), for probing
    /// Services that are not netcheck's own.
    pub servers: i32,
    /// Run client agents on tainted nodes too.
    pub tolerate_taints: bool,
    /// The platforms the agent image provides: a node of another OS or architecture is a skip
    /// naming it (default: what `image/Dockerfile` builds).
    pub image_platforms: Vec<Platform>,
    /// How long the namespace may live before `netcheck gc` collects it.
    pub ttl: Duration,
    /// Whether the runner probes node addresses too.
    pub from_runner: FromRunner,
    /// The cluster's DNS domain (`cluster.local` unless the cluster was set up otherwise).
    pub cluster_domain: String,
    /// A name outside the cluster that must resolve (`dns/external`); None: that check is skipped.
    pub external_name: Option<String>,
    /// The check Services created beside the echo Service (default: every group). The orchestrator
    /// asks only for the groups its scenario's checks use.
    pub service_groups: BTreeSet<ServiceGroup>,
}

impl SessionOptions {
    /// Where this session's client agents may run.
    pub fn placement(&self) -> Placement<'_> {
        Placement { platforms: &self.image_platforms, tolerate_taints: self.tolerate_taints }
    }
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            image: DEFAULT_IMAGE.to_string(),
            ready_timeout: Duration::from_secs(60),
            servers: 3,
            tolerate_taints: false,
            image_platforms: Platform::dockerfile_defaults(),
            ttl: Duration::from_secs(3600),
            from_runner: FromRunner::Auto,
            cluster_domain: "cluster.local".into(),
            external_name: None,
            service_groups: ServiceGroup::ALL.into(),
        }
    }
}

/// Deployed agents in a run namespace, ready to execute checks.
pub struct Session {
    /// The cluster.
    pub cluster: Cluster,
    /// All nodes.
    pub nodes: Vec<NodeInfo>,
    /// The run namespace.
    pub namespace: String,
    /// The run id.
    pub run_id: String,
    /// The agents.
    pub agents: Agents,
    /// Orders to the agents and their results.
    pub channel: channel::Channel,
    /// Options the session was started with.
    pub options: SessionOptions,
    /// The pod settings of this session's agents, for checks that deploy more of them.
    pub template: manifests::AgentTemplate,
    /// Time to create the namespace and agents.
    pub deployed_in: Duration,
    /// Time from creation until every agent was Ready.
    pub ready_in: Duration,
    /// What the wait for the API and data plane to serve the run's Services observed.
    pub settled: settle::Settled,
    /// Time from Ready until the data plane served every Service (or the settle timeout).
    pub settled_in: Duration,
    guard: namespace::NamespaceGuard,
}

impl Session {
    /// Creates the namespace and agents and waits until they are Ready. On failure nothing is left.
    pub async fn start(cluster: &Cluster, options: SessionOptions, progress: &dyn Progress) -> Result<Session> {
        let nodes = inventory::nodes(cluster).await?;
        let usable: Vec<String> = nodes
            .iter()
            .filter(|n| n.unusable_reason(&options.placement()).is_none())
            .map(|n| n.name.clone())
            .collect();
        if usable.is_empty() {
            let reasons = nodes.iter().filter_map(|n| n.unusable_reason(&options.placement())).collect();
            return Err(Error::NoUsableNode { reasons });
        }
        let started = Instant::now();
        let run_id = namespace::new_run_id();
        let ns = namespace::create(&cluster.client, &run_id, options.ttl).await?;
        let mut guard = namespace::NamespaceGuard::new(cluster.clone(), ns.clone());
        let channel = channel::Channel::open(&cluster.client, &ns, &run_id);
        progress.note(&format!("namespace {ns}: {} client agents, {} server agents", usable.len(), options.servers));
        let template = manifests::AgentTemplate {
            run_id: run_id.clone(),
            image: options.image.clone(),
            tolerate_taints: options.tolerate_taints,
            platforms: options.image_platforms.clone(),
            api_server: endpoints::api_server_address(cluster).await,
        };
        let mut deployed_in = Duration::ZERO;
        let deployed = async {
            deploy::create(cluster, &ns, &usable, options.servers, &options.service_groups, &template).await?;
            deployed_in = started.elapsed();
            progress.phase("ready");
            let agents =
                deploy::wait_ready(cluster, &ns, &usable, options.servers as usize, options.ready_timeout).await?;
            let ready_at = started.elapsed();
            let settled = if options.servers == 0 {
                settle::Settled::default()
            } else {
                progress.phase("settle");
                let settled = settle::wait(cluster, &channel, &ns, &agents).await?;
                for (node, how) in &settled.data_plane {
                    match how {
                        settle::NodeSettle::Converged(_) => {}
                        settle::NodeSettle::NotConverged => progress.note(&format!(
                            "not every backend answered through the run's Services from {node}; the checks report it"
                        )),
                        settle::NodeSettle::OrderFailed(why) => progress.note(&format!(
                            "the agent on {node} brought no answer back while settling ({why}); the checks report it"
                        )),
                    }
                }
                settled
            };
            Ok((agents, settled, ready_at))
        }
        .await;
        match deployed {
            Ok((agents, settled, ready_at)) => Ok(Session {
                cluster: cluster.clone(),
                nodes,
                namespace: ns,
                run_id,
                agents,
                channel,
                options,
                template,
                guard,
                deployed_in,
                ready_in: ready_at.saturating_sub(deployed_in),
                settled,
                settled_in: started.elapsed().saturating_sub(ready_at),
            }),
            Err(e) => {
                guard.disarm();
                namespace::delete(&cluster.client, &ns).await.ok();
                Err(e)
            }
        }
    }

    /// Sends an order to every client agent at once (`action` gets the client's node name) and
    /// waits for each result (see [`channel`] for how long); results come back by node, in node-name
    /// order.
    pub async fn order_every_client(
        &self,
        action: impl Fn(&str) -> Action,
    ) -> Vec<(String, std::result::Result<OrderResult, channel::OrderFailure>)> {
        self.channel.to_every_client(&self.agents.clients, action).await
    }

    /// Deletes the namespace, or keeps it (`keep`) for inspection.
    pub async fn finish(mut self, keep: bool) -> Result<()> {
        self.guard.disarm();
        if keep { Ok(()) } else { namespace::delete(&self.cluster.client, &self.namespace).await }
    }
}

/// The API's refusal behind a watch error (401 or 403), said with the verb and resource it names;
/// None for errors a retry may cure (a broken connection, an expired watch).
pub(crate) fn watch_refusal(e: &kube::runtime::watcher::Error) -> Option<String> {
    use kube::runtime::watcher::Error as W;
    let status = match e {
        W::InitialListFailed(kube::Error::Api(s)) | W::WatchStartFailed(kube::Error::Api(s)) => s.as_ref(),
        W::WatchError(s) => s.as_ref(),
        _ => return None,
    };
    matches!(status.code, 401 | 403).then(|| format!("the API refused ({}): {}", status.code, status.message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use kube::runtime::watcher::Error as W;

    #[test]
    fn a_forbidden_watch_is_a_refusal_and_a_broken_one_is_not() {
        let status = |code| Status {
            code,
            message: "configmaps is forbidden: User \"ci\" cannot watch resource \"configmaps\"".into(),
            ..Default::default()
        };
        let refused = watch_refusal(&W::WatchError(Box::new(status(403)))).expect("a refusal");
        assert!(refused.starts_with("the API refused (403): configmaps is forbidden"), "{refused}");
        assert!(watch_refusal(&W::InitialListFailed(kube::Error::Api(Box::new(status(401))))).is_some());
        assert_eq!(watch_refusal(&W::WatchError(Box::new(status(410)))), None, "an expired watch is resumed");
        assert_eq!(watch_refusal(&W::NoResourceVersion), None);
    }
}
