//! The run's namespace: created first, deleted last (also on error, interrupt and panic), and
//! collected by `netcheck gc` when a run could not delete it.

use std::time::Duration;

use super::Cluster;
use super::manifests::{self, EXPIRES_ANNOTATION, MANAGED_BY};
use crate::{Error, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

/// A short random run id: lower-case letters and digits, valid in names.
pub fn new_run_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..6).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

/// Creates `netcheck-<run_id>`, expiring after `ttl`.
pub async fn create(client: &kube::Client, run_id: &str, ttl: Duration) -> Result<String> {
    let name = format!("netcheck-{run_id}");
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(ttl.as_secs() as i64);
    let ns = manifests::namespace(&name, &expires.to_string());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .map_err(|e| Error::api(format!("creating namespace {name}"), e))?;
    Ok(name)
}

/// Starts deleting a namespace (the API finishes it in the background).
pub async fn delete(client: &kube::Client, name: &str) -> Result<()> {
    match Api::<Namespace>::all(client.clone()).delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::api(format!("deleting namespace {name}"), e)),
    }
}

/// Deletes netcheck's namespaces: all of them, or only those whose expiry has passed. Returns the names.
pub async fn collect_garbage(client: &kube::Client, all: bool) -> Result<Vec<String>> {
    let api: Api<Namespace> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    let list = api.list(&lp).await.map_err(|e| Error::api("listing netcheck namespaces", e))?;
    let now = jiff::Timestamp::now();
    let mut deleted = Vec::new();
    for ns in list.items {
        let name = ns.metadata.name.clone().unwrap_or_default();
        if ns.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let expired = ns
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(EXPIRES_ANNOTATION))
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_none_or(|t| t <= now);
        if all || expired {
            delete(client, &name).await?;
            deleted.push(name);
        }
    }
    Ok(deleted)
}

/// Deletes the namespace when dropped unless disarmed: the last line of defence on panic.
pub struct NamespaceGuard {
    cluster: Cluster,
    name: Option<String>,
}

impl NamespaceGuard {
    /// Guards `name`.
    pub fn new(cluster: Cluster, name: String) -> Self {
        NamespaceGuard { cluster, name: Some(name) }
    }

    /// Stops guarding (the namespace was deleted, or is kept on purpose).
    pub fn disarm(&mut self) {
        self.name = None;
    }
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else { return };
        // Drop cannot await and may run inside the client's own runtime: a helper thread with a
        // client and runtime of its own does the deletion.
        self.cluster.block_on_own_client(move |client| async move {
            tokio::time::timeout(Duration::from_secs(10), delete(&client, &name)).await.ok()
        });
    }
}
