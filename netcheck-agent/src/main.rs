//! The in-cluster agent (`netcheck-agent`, the agent image's only binary): one binary for both roles.
//!
//! Every agent serves its identity over HTTP and UDP (the server role) and executes the probe orders
//! addressed to it (the client role). The run decides roles by where it sends traffic and orders.
//! An agent given a watch plan ([`WATCH_PLAN_ENV`]) also probes on its own and keeps a record (the
//! watch role, [`watch`]).
//! Readiness (`/readyz`) is true only once the agent's order watch is established and no order has
//! switched it off, so a pod that cannot reach the API server never becomes Ready and the runner can
//! name it.

mod dns;
mod orders;
mod probe;
mod record;
mod server;
mod watch;

use std::process::ExitCode;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use netcheck_protocol::watch::{WATCH_PLAN_ENV, WatchPlan};
use netcheck_protocol::{API_SERVER_ENV, Identity};

/// Why the agent cannot run.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// The pod spec did not give the agent what it needs.
    #[error("environment variable {0} is not set (the agent runs inside a pod created by netcheck)")]
    MissingEnv(&'static str),
    /// The agent could not open a port it serves on.
    #[error("{what}: {source}")]
    Io {
        /// What the agent was doing.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The watch plan in the environment cannot be followed.
    #[error("{WATCH_PLAN_ENV}: {0}")]
    Plan(String),
    /// The API server cannot be reached from this pod.
    #[error("cannot reach the in-cluster API server: {0}")]
    Unreachable(String),
}

type Result<T> = std::result::Result<T, Error>;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_client::client::builder=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let outcome = AgentConfig::from_env().and_then(|config| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Io { what: "starting the async runtime".into(), source })?;
        runtime.block_on(run(config))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netcheck-agent: {e}");
            ExitCode::from(2)
        }
    }
}

/// Settings of one agent process, normally from the downward API environment.
#[derive(Debug, Clone)]
struct AgentConfig {
    /// Pod name (`POD_NAME`).
    pod: String,
    /// Namespace whose orders the agent executes (`POD_NAMESPACE`).
    namespace: String,
    /// Node name (`NODE_NAME`).
    node: String,
    /// Pod IP (`POD_IP`).
    pod_ip: String,
    /// The run this agent serves (`NETCHECK_RUN_ID`): orders of any other run are refused.
    run: String,
    /// Whether `/readyz` starts out ready (`NETCHECK_START_READY`, default true).
    start_ready: bool,
    /// How long to keep serving, not ready, after SIGTERM (`NETCHECK_SHUTDOWN_DELAY_MS`), so that
    /// endpoints drop the pod before it stops answering.
    shutdown_delay: Duration,
    /// The watch plan (`NETCHECK_WATCH_PLAN`), for a watch client agent.
    watch: Option<WatchPlan>,
}

impl AgentConfig {
    /// Reads the configuration from the environment the agent's pod spec sets.
    fn from_env() -> Result<Self> {
        fn var(name: &'static str) -> Result<String> {
            std::env::var(name).map_err(|_| Error::MissingEnv(name))
        }
        let start_ready = std::env::var("NETCHECK_START_READY").map(|v| v != "false").unwrap_or(true);
        let delay_ms = std::env::var("NETCHECK_SHUTDOWN_DELAY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let watch = match std::env::var(WATCH_PLAN_ENV) {
            Ok(text) => Some(WatchPlan::parse(&text).map_err(Error::Plan)?),
            Err(_) => None,
        };
        Ok(AgentConfig {
            pod: var("POD_NAME")?,
            namespace: var("POD_NAMESPACE")?,
            node: var("NODE_NAME")?,
            pod_ip: var("POD_IP")?,
            run: var(netcheck_protocol::RUN_ID_ENV)?,
            start_ready,
            shutdown_delay: Duration::from_millis(delay_ms),
            watch,
        })
    }

    fn identity(&self) -> Identity {
        Identity { pod: self.pod.clone(), node: self.node.clone(), pod_ip: self.pod_ip.clone(), client: String::new() }
    }
}

/// Readiness as the agent reports it at `/readyz`.
#[derive(Debug)]
struct Readiness {
    /// Switched by `SetReady` orders.
    wanted: AtomicBool,
    /// True once the order watch has listed its orders.
    connected: tokio::sync::watch::Sender<bool>,
}

impl Readiness {
    fn new(wanted: bool) -> Self {
        Self { wanted: AtomicBool::new(wanted), connected: tokio::sync::watch::Sender::new(false) }
    }

    fn ready(&self) -> bool {
        self.wanted.load(Ordering::SeqCst) && *self.connected.borrow()
    }

    /// Records that the order watch has listed its orders.
    fn set_connected(&self) {
        self.connected.send_replace(true);
    }

    /// Waits, at most `bound`, for the order watch of an agent that is wanted ready. The kubelet
    /// probes once at container start, usually before the watch is up; answering that probe late
    /// instead of 503 saves the whole probe period (1 s) on every agent's start.
    async fn wait_connected(&self, bound: Duration) {
        if !self.wanted.load(Ordering::SeqCst) {
            return;
        }
        let mut connected = self.connected.subscribe();
        let _ = tokio::time::timeout(bound, connected.wait_for(|up| *up)).await;
    }
}

/// How long a stopping agent waits for the last write of its watch record.
const LAST_WRITE_WAIT: Duration = Duration::from_secs(2);

/// Runs the agent until SIGTERM/SIGINT.
async fn run(config: AgentConfig) -> Result<()> {
    let identity = config.identity();
    let readiness = Arc::new(Readiness::new(config.start_ready));

    let http = server::serve_http(identity.clone(), readiness.clone()).await?;
    let udp = server::serve_udp(identity.clone()).await?;
    let client = api_client().await?;
    let watch = config.watch.clone().map(|plan| {
        let place =
            watch::Place { namespace: config.namespace.clone(), node: config.node.clone(), pod: config.pod.clone() };
        watch::Watch::start(client.clone(), place, plan)
    });
    let orders = tokio::spawn(orders::execute_orders(
        client,
        config.namespace.clone(),
        config.run.clone(),
        identity,
        readiness.clone(),
    ));

    wait_for_termination().await;
    tracing::info!(delay_ms = config.shutdown_delay.as_millis() as u64, "terminating: not ready, still serving");
    readiness.wanted.store(false, Ordering::SeqCst);
    tokio::time::sleep(config.shutdown_delay).await;
    // The watch keeps probing through the delay (this agent still works), then writes what it saw.
    if let Some(watch) = watch {
        watch.stop(LAST_WRITE_WAIT).await;
    }
    orders.abort();
    http.abort();
    udp.abort();
    Ok(())
}

/// Connects to the API server, preferring its direct address over the `kubernetes` Service: the
/// control channel must not depend on the Service data plane that the run is testing (with kube-proxy
/// broken on a node, the ClusterIP 10.96.0.1 is unreachable from that node's pods too).
async fn api_client() -> Result<kube::Client> {
    let unreachable = Error::Unreachable;
    if let Ok(url) = std::env::var(API_SERVER_ENV) {
        match direct_client(&url).await {
            Ok(client) => return Ok(client),
            Err(e) => tracing::warn!(%url, error = %e, "direct API address unusable; using the kubernetes Service"),
        }
    }
    kube::Client::try_default().await.map_err(|e| unreachable(e.to_string()))
}

async fn direct_client(url: &str) -> std::result::Result<kube::Client, String> {
    let mut config = kube::Config::incluster().map_err(|e| e.to_string())?;
    config.cluster_url = url.parse().map_err(|e| format!("{e}"))?;
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(3), client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 3 s".into()),
    }
}

async fn wait_for_termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
