//! Connecting to a cluster: kubeconfig and context as kubectl chooses them, with a bounded wait.

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::{Error, Result};

/// How to reach the cluster. Empty fields follow kubectl: `KUBECONFIG`, then `~/.kube/config`, then
/// the in-cluster service account.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// A kubeconfig file (`--kubeconfig`).
    pub kubeconfig: Option<PathBuf>,
    /// A context of that kubeconfig (`--context`).
    pub context: Option<String>,
}

/// A connected cluster and the facts every check needs about its API.
#[derive(Clone)]
pub struct Cluster {
    /// The API client.
    pub client: kube::Client,
    /// The configuration the client was made from: code that must reach the API outside the
    /// client's runtime (a drop guard) makes a client of its own from it.
    pub config: std::sync::Arc<kube::Config>,
    /// API server URL.
    pub server: String,
    /// API server version (`v1.36.3`).
    pub version: String,
    /// Whether `discovery.k8s.io/v1` EndpointSlices are served (Kubernetes ≥ 1.21); otherwise
    /// endpoints are read from core/v1 Endpoints.
    pub has_endpoint_slices: bool,
}

impl Cluster {
    /// Runs `work` with a fresh client on a runtime of its own, on a helper thread, and waits for it.
    ///
    /// For code that cannot await, such as `Drop`: the shared client does its I/O on the runtime it
    /// was made on, which a blocking wait inside that runtime (a current-thread `#[tokio::test]`)
    /// would starve.
    pub fn block_on_own_client<T: Send + 'static, F: std::future::Future<Output = T> + Send + 'static>(
        &self,
        work: impl FnOnce(kube::Client) -> F + Send + 'static,
    ) -> Option<T> {
        let config = kube::Config::clone(&self.config);
        let helper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async move {
                let client = kube::Client::try_from(config).ok()?;
                Some(work(client).await)
            })
        });
        helper.join().ok().flatten()
    }

    /// The cluster facts a report carries, with the given node names.
    pub fn info(&self, nodes: Vec<String>) -> crate::report::ClusterInfo {
        crate::report::ClusterInfo { server: self.server.clone(), version: self.version.clone(), nodes }
    }
}

/// How long the API server may take to answer the first request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects and verifies that the API server answers within a few seconds.
pub async fn connect(options: &ConnectOptions) -> Result<Cluster> {
    let config = load_config(options).await?;
    let server = config.cluster_url.to_string();
    let mut config = config;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(Duration::from_secs(60));
    let client = kube::Client::try_from(config.clone())
        .map_err(|e| Error::Kubeconfig { path: shown_path(options), reason: e.to_string() })?;
    let version = match tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version()).await {
        Err(_) => {
            return Err(Error::Unreachable {
                server,
                reason: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            });
        }
        Ok(Err(e)) => return Err(Error::Unreachable { server, reason: e.to_string() }),
        Ok(Ok(info)) => info.git_version,
    };
    let has_endpoint_slices = client.list_api_group_resources("discovery.k8s.io/v1").await.is_ok();
    Ok(Cluster { client, config: std::sync::Arc::new(config), server, version, has_endpoint_slices })
}

async fn load_config(options: &ConnectOptions) -> Result<kube::Config> {
    let kc_options = KubeConfigOptions { context: options.context.clone(), ..Default::default() };
    let result = match &options.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| Error::Kubeconfig { path: path.clone(), reason: e.to_string() })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &kc_options).await
        }
        None if options.context.is_some() => kube::Config::from_kubeconfig(&kc_options).await,
        None => {
            return kube::Config::infer()
                .await
                .map_err(|e| Error::Kubeconfig { path: shown_path(options), reason: e.to_string() });
        }
    };
    result.map_err(|e| Error::Kubeconfig { path: shown_path(options), reason: e.to_string() })
}

fn shown_path(options: &ConnectOptions) -> PathBuf {
    options
        .kubeconfig
        .clone()
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("~/.kube/config"))
}
