//! `netcheck watch`: Service networking measured continuously while something changes the cluster
//! (an upgrade), and judged against a disruption budget.
//!
//! A watch deploys agents that record on their own (see [`crate::protocol::watch`]): the runner only
//! starts them, reads their records and removes them. [`Watch::start`] returns once traffic flows on
//! every path from every node; [`Watch::snapshot`] reads the records at any time; [`Watch::stop`]
//! judges them and deletes the namespace. [`Watch::detach`] leaves the agents running (`watch start`)
//! and [`Watch::attach`] finds them again from another process (`watch stop`).
//!
//! ```no_run
//! # async fn demo() -> netcheck::Result<()> {
//! use netcheck::runner::{ConnectOptions, NoProgress, connect};
//! use netcheck::watch::{Watch, WatchOptions};
//! let cluster = connect(&ConnectOptions::default()).await?;
//! let watch = Watch::start(&cluster, &WatchOptions::default(), &NoProgress).await?;
//! // … upgrade the cluster …
//! let report = watch.stop(&WatchOptions::default().budget, false, &NoProgress).await?;
//! assert_eq!(report.exit_code(), 0, "{}", netcheck::report::human::render(&report, false));
//! # Ok(()) }
//! ```

mod events;
pub mod judge;
pub mod manifests;
pub mod metrics;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

pub use judge::{Baseline, Budget};

use crate::protocol::watch::{WATCH_PLAN_ENV, WATCH_RECORD_KEY, WATCH_RECORD_LABEL, WatchPlan, WatchRecord};
use crate::report::Report;
use crate::runner::manifests::{AgentTemplate, RUN_ID_LABEL};
use crate::runner::{Cluster, DEFAULT_IMAGE, Placement, Platform, Progress, endpoints, inventory, namespace, services};
use crate::{Error, Result};

/// The ConfigMap holding the [`Baseline`] (key `baseline`), written once traffic flows.
const BASELINE_CONFIGMAP: &str = "watch-baseline";

/// How a watch is deployed and paced.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Agent image.
    pub image: String,
    /// Run client agents on tainted nodes too.
    pub tolerate_taints: bool,
    /// The platforms the agent image provides (see [`SessionOptions`](crate::runner::SessionOptions)).
    pub image_platforms: Vec<Platform>,
    /// How long the namespace may live before `netcheck gc` collects it (a `watch start` that is never
    /// stopped).
    pub ttl: Duration,
    /// One attempt per path per node this often.
    pub interval: Duration,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// The agents write their records this often: what a lost agent or runner can cost at most.
    pub flush: Duration,
    /// Limit for traffic to flow on every path before the watch begins.
    pub ready_timeout: Duration,
    /// After the watched command: limit for every node to be Ready and every path to answer again.
    pub settle_limit: Duration,
    /// The cluster's DNS domain.
    pub cluster_domain: String,
    /// What the watch may cost.
    pub budget: Budget,
}

impl WatchOptions {
    /// Where the watch's client agents may run.
    pub fn placement(&self) -> Placement<'_> {
        Placement { platforms: &self.image_platforms, tolerate_taints: self.tolerate_taints }
    }
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            image: DEFAULT_IMAGE.into(),
            tolerate_taints: false,
            image_platforms: Platform::dockerfile_defaults(),
            ttl: Duration::from_secs(6 * 3600),
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(1000),
            flush: Duration::from_secs(2),
            ready_timeout: Duration::from_secs(120),
            settle_limit: Duration::from_secs(120),
            cluster_domain: "cluster.local".into(),
            budget: Budget::default(),
        }
    }
}

/// A running watch: its namespace and what it follows.
pub struct Watch {
    cluster: Cluster,
    /// The watch's namespace, `netcheck-<run id>`.
    pub namespace: String,
    /// The run id.
    pub run_id: String,
    /// What every client agent follows.
    pub plan: WatchPlan,
    /// Nodes that must have a record.
    pub nodes: Vec<String>,
    /// Nodes no client agent runs on, with why.
    pub unhosted: Vec<(String, String)>,
    /// Where the judged span starts.
    pub baseline: Baseline,
    guard: Option<namespace::NamespaceGuard>,
}

/// Epoch milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Watch {
    /// Deploys the watch agents and waits until traffic flows on every path from every node. On
    /// failure nothing is left.
    pub async fn start(cluster: &Cluster, options: &WatchOptions, progress: &dyn Progress) -> Result<Watch> {
        validate(options)?;
        let all_nodes = inventory::nodes(cluster).await?;
        let mut nodes = Vec::new();
        let mut unhosted = Vec::new();
        for n in &all_nodes {
            match n.unusable_reason(&options.placement()) {
                None => nodes.push(n.name.clone()),
                Some(why) => unhosted.push((n.name.clone(), why)),
            }
        }
        if nodes.is_empty() {
            return Err(Error::NoUsableNode { reasons: unhosted.into_iter().map(|(_, why)| why).collect() });
        }
        let run_id = namespace::new_run_id();
        progress.phase("deploy");
        let ns = create_namespace(cluster, &run_id, options.ttl).await?;
        let guard = namespace::NamespaceGuard::new(cluster.clone(), ns.clone());
        let mut watch = Watch {
            cluster: cluster.clone(),
            namespace: ns,
            run_id,
            plan: WatchPlan { version: 0, interval_ms: 0, timeout_ms: 0, flush_ms: 0, paths: Vec::new() },
            nodes,
            unhosted,
            baseline: Baseline::default(),
            guard: Some(guard),
        };
        let node_addresses: Vec<(String, String)> = all_nodes
            .iter()
            .filter(|n| watch.nodes.contains(&n.name))
            .filter_map(|n| n.internal_ips.first().map(|ip| (n.name.clone(), ip.clone())))
            .collect();
        watch.deploy(options, &node_addresses, progress).await?;
        progress.phase("ready");
        watch.wait_flowing(options.ready_timeout, progress).await?;
        Ok(watch)
    }

    async fn deploy(&mut self, o: &WatchOptions, nodes: &[(String, String)], progress: &dyn Progress) -> Result<()> {
        let (client, ns) = (&self.cluster.client, self.namespace.as_str());
        let template = AgentTemplate {
            run_id: self.run_id.clone(),
            image: o.image.clone(),
            tolerate_taints: o.tolerate_taints,
            platforms: o.image_platforms.clone(),
            api_server: endpoints::api_server_address(&self.cluster).await,
        };
        let (sa, _, binding) = crate::runner::manifests::agent_rbac(ns);
        let pp = PostParams::default();
        let create_err = |what: &str| {
            let what = what.to_string();
            move |e| Error::api(format!("creating {what} in {ns}"), e)
        };
        Api::namespaced(client.clone(), ns).create(&pp, &sa).await.map_err(create_err("serviceaccount"))?;
        Api::namespaced(client.clone(), ns)
            .create(&pp, &manifests::agent_role(ns))
            .await
            .map_err(create_err("role"))?;
        Api::namespaced(client.clone(), ns).create(&pp, &binding).await.map_err(create_err("rolebinding"))?;
        let svc: Service = Api::namespaced(client.clone(), ns)
            .create(&pp, &manifests::service(ns))
            .await
            .map_err(create_err("service"))?;
        let cluster_ip = services::cluster_ip(&svc).map(str::to_string);
        let (Some(cluster_ip), Some(node_port)) = (cluster_ip, services::first_node_port(&svc)) else {
            return Err(Error::Input(format!("service/{} got no ClusterIP or node port", manifests::WATCH_SERVICE)));
        };
        let dns_server = services::read_cluster_ip(&self.cluster, "kube-system", "kube-dns").await.ok();
        if dns_server.is_none() {
            progress.note("kube-system/kube-dns has no ClusterIP: the DNS path is not watched");
        }
        let targets = manifests::Targets {
            cluster_ip,
            node_port,
            nodes: nodes.to_vec(),
            dns_server: dns_server.map(|ip| format!("{ip}:53")),
            service_name: format!("{}.{ns}.svc.{}.", manifests::WATCH_SERVICE, o.cluster_domain.trim_end_matches('.')),
        };
        self.plan = manifests::plan(
            &targets,
            o.interval.as_millis() as u64,
            o.timeout.as_millis() as u64,
            o.flush.as_millis() as u64,
        );
        let servers = (self.nodes.len() as i32).max(2);
        Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
            .create(&pp, &manifests::server_budget(ns))
            .await
            .map_err(create_err("poddisruptionbudget"))?;
        Api::<Deployment>::namespaced(client.clone(), ns)
            .create(&pp, &manifests::server_deployment(ns, servers, &template))
            .await
            .map_err(create_err("deployment"))?;
        Api::<DaemonSet>::namespaced(client.clone(), ns)
            .create(&pp, &manifests::client_daemonset(ns, &self.plan, &template))
            .await
            .map_err(create_err("daemonset"))?;
        progress.note(&format!(
            "namespace {ns}: client agents on {} nodes, {servers} server agents, {} paths per node every {} ms",
            self.nodes.len(),
            self.plan.paths.len(),
            self.plan.interval_ms
        ));
        Ok(())
    }

    /// Waits until every node's agent has answered on every path and none is failing, then records
    /// the baseline the budget is judged from.
    async fn wait_flowing(&mut self, limit: Duration, progress: &dyn Progress) -> Result<()> {
        let started = Instant::now();
        loop {
            let records = self.snapshot().await?;
            let waiting = self.not_flowing(&records);
            if waiting.is_empty() {
                self.baseline = Baseline { version: self.cluster.version.clone(), ..Baseline::of(&records, now_ms()) };
                self.write_baseline().await?;
                progress.note(&format!("traffic flows on every path ({:.1} s)", started.elapsed().as_secs_f64()));
                return Ok(());
            }
            if started.elapsed() > limit {
                let pods = self.pod_states().await.unwrap_or_default();
                return Err(Error::Timeout {
                    what: format!(
                        "traffic to flow on every path; still waiting for {}{}",
                        waiting.join(", "),
                        if pods.is_empty() { String::new() } else { format!(" (pods: {})", pods.join("; ")) }
                    ),
                    seconds: limit.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// `node path` pairs that are not answering (yet), and nodes without a record.
    fn not_flowing(&self, records: &BTreeMap<String, WatchRecord>) -> Vec<String> {
        let mut waiting = Vec::new();
        for node in &self.nodes {
            let Some(record) = records.get(node) else {
                waiting.push(format!("{node} (no record yet)"));
                continue;
            };
            for path in &self.plan.paths {
                let flowing = record.paths.get(&path.id).is_some_and(|p| p.last_ok_ms.is_some() && p.open.is_none());
                if !flowing {
                    waiting.push(format!("{node} {}", path.id));
                }
            }
        }
        waiting
    }

    /// Waits until every node is Ready and every path answers again (or `limit`); returns whether it
    /// settled.
    pub async fn wait_settled(&self, limit: Duration, progress: &dyn Progress) -> Result<bool> {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < limit {
            let nodes = inventory::nodes(&self.cluster).await?;
            let not_ready: Vec<String> =
                nodes.iter().filter(|n| self.nodes.contains(&n.name) && !n.ready).map(|n| n.name.clone()).collect();
            let records = self.snapshot().await?;
            // A record written after the last flush must show the path answering.
            let mut waiting = self.not_flowing(&records);
            waiting.extend(not_ready.iter().map(|n| format!("{n} NotReady")));
            if waiting.is_empty() {
                return Ok(true);
            }
            let now = waiting.join(", ");
            if now != last {
                progress.note(&format!("settling: waiting for {now}"));
                last = now;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(false)
    }

    /// The agents' records as last written, by node.
    pub async fn snapshot(&self) -> Result<BTreeMap<String, WatchRecord>> {
        let api: Api<ConfigMap> = Api::namespaced(self.cluster.client.clone(), &self.namespace);
        let list = api
            .list(&ListParams::default().labels(WATCH_RECORD_LABEL))
            .await
            .map_err(|e| Error::api(format!("reading the watch records in {}", self.namespace), e))?;
        let mut records = BTreeMap::new();
        for cm in list.items {
            let Some(text) = cm.data.as_ref().and_then(|d| d.get(WATCH_RECORD_KEY)) else { continue };
            let record = WatchRecord::parse(text).map_err(Error::Protocol)?;
            records.insert(record.node.clone(), record);
        }
        Ok(records)
    }

    /// Leaves the agents recording (until [`WatchOptions::ttl`]) and returns the namespace, for a
    /// later [`Watch::attach`].
    pub fn detach(mut self) -> String {
        if let Some(mut guard) = self.guard.take() {
            guard.disarm();
        }
        self.namespace.clone()
    }

    /// Finds a running watch: `namespace`, or the only watch namespace there is.
    pub async fn attach(cluster: &Cluster, namespace: Option<&str>) -> Result<Watch> {
        let api: Api<Namespace> = Api::all(cluster.client.clone());
        let ns = match namespace {
            Some(ns) => api
                .get_opt(ns)
                .await
                .map_err(|e| Error::api(format!("reading namespace {ns}"), e))?
                .filter(|n| n.metadata.labels.as_ref().is_some_and(|l| l.contains_key(manifests::WATCH_LABEL)))
                .filter(|n| n.metadata.deletion_timestamp.is_none())
                .ok_or_else(|| {
                    Error::Input(format!(
                        "namespace {ns} is not a running netcheck watch (stopped, collected, or never one; see \
                         `netcheck watch start`)"
                    ))
                })?,
            None => {
                let list = api
                    .list(&ListParams::default().labels(manifests::WATCH_LABEL))
                    .await
                    .map_err(|e| Error::api("listing watch namespaces", e))?;
                let mut live: Vec<Namespace> =
                    list.items.into_iter().filter(|n| n.metadata.deletion_timestamp.is_none()).collect();
                match live.len() {
                    1 => live.remove(0),
                    0 => {
                        return Err(Error::Input(
                            "no netcheck watch is running (start one with `netcheck watch start`)".into(),
                        ));
                    }
                    _ => {
                        let names: Vec<String> = live.iter().filter_map(|n| n.metadata.name.clone()).collect();
                        return Err(Error::Input(format!(
                            "{} watches are running ({}): name one with --namespace",
                            names.len(),
                            names.join(", ")
                        )));
                    }
                }
            }
        };
        let name = ns.metadata.name.clone().unwrap_or_default();
        let run_id = ns.metadata.labels.as_ref().and_then(|l| l.get(RUN_ID_LABEL)).cloned().unwrap_or_default();
        let ds = Api::<DaemonSet>::namespaced(cluster.client.clone(), &name)
            .get(manifests::CLIENT_DAEMONSET)
            .await
            .map_err(|e| Error::api(format!("reading the watch's DaemonSet in {name}"), e))?;
        let plan_text = ds
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.env)
            .and_then(|env| env.into_iter().find(|e| e.name == WATCH_PLAN_ENV))
            .and_then(|e| e.value)
            .ok_or_else(|| Error::Protocol(format!("the watch in {name} has no plan")))?;
        let plan = WatchPlan::parse(&plan_text).map_err(Error::Protocol)?;
        let baseline = read_baseline(cluster, &name).await?;
        let nodes = baseline.counts.keys().cloned().collect();
        Ok(Watch {
            cluster: cluster.clone(),
            namespace: name.clone(),
            run_id,
            plan,
            nodes,
            unhosted: Vec::new(),
            baseline,
            guard: Some(namespace::NamespaceGuard::new(cluster.clone(), name)),
        })
    }

    /// Reads the records, judges them against `budget` up to now, and deletes the namespace (unless
    /// `keep`).
    pub async fn stop(mut self, budget: &Budget, keep: bool, progress: &dyn Progress) -> Result<Report> {
        progress.phase("collect");
        self.wait_for_writes_after(now_ms()).await;
        let report = self.judge_now(budget).await;
        progress.phase("cleanup");
        if let Some(mut guard) = self.guard.take() {
            guard.disarm();
        }
        if !keep {
            namespace::delete(&self.cluster.client, &self.namespace).await?;
        }
        report
    }

    /// Waits until every node's record was written at `since` (epoch ms) or later, for at most two flush
    /// periods and a second. The agents write every flush period, so without the wait the judged span
    /// ends at each agent's previous write: a watch shorter than one period would have seen nothing,
    /// and a longer one would miss its last seconds. A node whose agent does not write by then is judged
    /// on what it wrote (the verdict names its gap).
    async fn wait_for_writes_after(&self, since: u64) {
        let limit = Duration::from_millis(2 * self.plan.flush_ms + 1_000);
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(records) = self.snapshot().await
                && self.nodes.iter().all(|n| records.get(n).is_some_and(|r| r.updated_ms >= since))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The verdict on the records as they are now, without stopping.
    pub async fn judge_now(&self, budget: &Budget) -> Result<Report> {
        let records = self.snapshot().await?;
        let end_ms = now_ms();
        let events = events::node_events(&self.cluster, self.baseline.flowing_ms.saturating_sub(60_000)).await;
        let paths: Vec<String> = self.plan.paths.iter().map(|p| p.id.clone()).collect();
        let evidence = judge::Evidence {
            records: &records,
            nodes: &self.nodes,
            unhosted: &self.unhosted,
            paths: &paths,
            baseline: &self.baseline,
            end_ms,
            flush_ms: self.plan.flush_ms,
            events: &events,
        };
        let (results, timeline) = judge::judge(&evidence, budget);
        let mut nodes = self.nodes.clone();
        nodes.extend(self.unhosted.iter().map(|(n, _)| n.clone()));
        let mut info = self.cluster.info(nodes);
        // The version when the watch began, and now: an upgrade's report shows both.
        let now = self.cluster.client.apiserver_version().await.map(|v| v.git_version).unwrap_or_default();
        let before = &self.baseline.version;
        info.version = match (before.is_empty(), now.is_empty()) {
            (false, false) if *before != now => format!("{before} → {now}"),
            (false, _) => before.clone(),
            (true, false) => now,
            (true, true) => info.version,
        };
        let mut report = Report::from_results(&self.run_id, "watch", info, results);
        report.started_at = jiff::Timestamp::from_millisecond(self.baseline.flowing_ms as i64)
            .map(|t| t.to_string())
            .unwrap_or_default();
        report.duration_millis = end_ms.saturating_sub(self.baseline.flowing_ms);
        report.timeline = timeline;
        Ok(report)
    }

    async fn write_baseline(&self) -> Result<()> {
        let text = serde_json::to_string(&self.baseline).unwrap_or_default();
        let cm = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": BASELINE_CONFIGMAP, "namespace": self.namespace},
            "data": {"baseline": text},
        });
        Api::<ConfigMap>::namespaced(self.cluster.client.clone(), &self.namespace)
            .patch(BASELINE_CONFIGMAP, &PatchParams::apply("netcheck").force(), &Patch::Apply(cm))
            .await
            .map_err(|e| Error::api(format!("writing the watch baseline in {}", self.namespace), e))?;
        Ok(())
    }

    /// One line per watch pod that is not running and ready, with the reason.
    async fn pod_states(&self) -> Result<Vec<String>> {
        let pods = Api::<Pod>::namespaced(self.cluster.client.clone(), &self.namespace)
            .list(&ListParams::default())
            .await
            .map_err(|e| Error::api("listing the watch pods", e))?;
        Ok(pods
            .items
            .iter()
            .filter(|p| !crate::runner::deploy::pod_ready(p))
            .map(|p| {
                let name = p.metadata.name.clone().unwrap_or_default();
                let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_else(|| "no node".into());
                let waiting = p
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|c| c.first())
                    .and_then(|c| c.state.as_ref())
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.clone())
                    .unwrap_or_else(|| "not ready".into());
                format!("{name} on {node}: {waiting}")
            })
            .collect())
    }
}

async fn create_namespace(cluster: &Cluster, run_id: &str, ttl: Duration) -> Result<String> {
    let name = crate::runner::manifests::namespace_name(run_id);
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(ttl.as_secs() as i64);
    let mut ns = crate::runner::manifests::namespace(run_id, &expires.to_string());
    ns.metadata.labels.get_or_insert_with(Default::default).insert(manifests::WATCH_LABEL.into(), "true".into());
    Api::<Namespace>::all(cluster.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .map_err(|e| Error::api(format!("creating namespace {name}"), e))?;
    Ok(name)
}

async fn read_baseline(cluster: &Cluster, ns: &str) -> Result<Baseline> {
    let cm = Api::<ConfigMap>::namespaced(cluster.client.clone(), ns)
        .get_opt(BASELINE_CONFIGMAP)
        .await
        .map_err(|e| Error::api(format!("reading the watch baseline in {ns}"), e))?
        .ok_or_else(|| Error::Protocol(format!("the watch in {ns} never had traffic flowing on every path")))?;
    let text = cm.data.and_then(|d| d.get("baseline").cloned()).unwrap_or_default();
    serde_json::from_str(&text).map_err(|e| Error::Protocol(format!("unreadable watch baseline in {ns}: {e}")))
}

/// Refuses options a watch cannot run with.
fn validate(o: &WatchOptions) -> Result<()> {
    let ms = |d: Duration| d.as_millis();
    if ms(o.interval) < 20 || ms(o.interval) > 60_000 {
        return Err(Error::Input(format!("--interval must be 20 ms to 60 s (got {} ms)", ms(o.interval))));
    }
    if ms(o.timeout) < 10 || o.timeout > Duration::from_secs(30) {
        return Err(Error::Input(format!("--timeout must be 10 ms to 30 s (got {} ms)", ms(o.timeout))));
    }
    if o.flush < Duration::from_millis(500) || o.flush > Duration::from_secs(60) {
        return Err(Error::Input(format!("--flush must be 0.5 s to 60 s (got {} ms)", ms(o.flush))));
    }
    if !(0.0..=1.0).contains(&o.budget.max_failed_fraction) {
        return Err(Error::Input("--max-failed must be a fraction from 0 to 1".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_outside_their_ranges_are_refused() {
        assert!(validate(&WatchOptions::default()).is_ok());
        let bad = [
            WatchOptions { interval: Duration::from_millis(5), ..Default::default() },
            WatchOptions { timeout: Duration::from_secs(31), ..Default::default() },
            WatchOptions { flush: Duration::from_millis(100), ..Default::default() },
            WatchOptions { budget: Budget { max_failed_fraction: 1.5, ..Budget::default() }, ..Default::default() },
        ];
        for o in bad {
            assert!(matches!(validate(&o), Err(Error::Input(_))), "{o:?}");
        }
    }
}
