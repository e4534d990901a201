//! The run's namespace: created first, deleted last (also on error, interrupt and panic), and
//! collected by `netcheck gc` when a run could not delete it.

use std::time::Duration;

use super::Cluster;
use super::manifests::{self, EXPIRES_ANNOTATION, MANAGED_BY, RUN_ID_LABEL};
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
    let name = manifests::namespace_name(run_id);
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(ttl.as_secs() as i64);
    let ns = manifests::namespace(run_id, &expires.to_string());
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

/// What `netcheck gc` decided about one namespace labelled as managed by netcheck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    /// The namespace.
    pub name: String,
    /// Whether it is (or, in a dry run, would be) deleted.
    pub deleted: bool,
    /// Why: expired when, `--all`, not expired until when, or why it is not netcheck's own.
    pub why: String,
}

/// Deletes netcheck's own namespaces: all of them (`all`), or those whose expiry has passed; with
/// `dry_run`, only says what it would delete. Returns a decision for every namespace labelled
/// `managed-by=netcheck`, deleted or not, with the reason.
///
/// A namespace is netcheck's own only when it carries the run id label, is named after that run id,
/// and has a readable expiry: the generic `managed-by` label alone may be anyone's (see [`judge`]).
pub async fn collect_garbage(client: &kube::Client, all: bool, dry_run: bool) -> Result<Vec<Collected>> {
    let api: Api<Namespace> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    let list = api.list(&lp).await.map_err(|e| Error::api("listing netcheck namespaces", e))?;
    let now = jiff::Timestamp::now();
    let mut decisions = Vec::new();
    for ns in list.items.iter().filter(|ns| ns.metadata.deletion_timestamp.is_none()) {
        let decision = judge(ns, all, now);
        if decision.deleted && !dry_run {
            delete(client, &decision.name).await?;
        }
        decisions.push(decision);
    }
    Ok(decisions)
}

/// Whether `gc` deletes `ns` at `now`, and why. Pure.
pub fn judge(ns: &Namespace, all: bool, now: jiff::Timestamp) -> Collected {
    let name = ns.metadata.name.clone().unwrap_or_default();
    let run_id = ns.metadata.labels.as_ref().and_then(|l| l.get(RUN_ID_LABEL));
    let expiry = ns.metadata.annotations.as_ref().and_then(|a| a.get(EXPIRES_ANNOTATION));
    let keep = |why: String| Collected { name: name.clone(), deleted: false, why };
    let Some(run_id) = run_id else {
        return keep(format!(
            "left alone: not recognised as a netcheck run namespace (no {RUN_ID_LABEL} label; a run of a netcheck \
             before that label: delete it with kubectl)"
        ));
    };
    if manifests::namespace_name(run_id) != name {
        return keep(format!(
            "left alone: not recognised as a netcheck run namespace (run {run_id}'s is named {})",
            manifests::namespace_name(run_id)
        ));
    }
    let Some(expires) = expiry.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return keep(format!(
            "left alone: not recognised as a netcheck run namespace (no readable {EXPIRES_ANNOTATION} annotation)"
        ));
    };
    match (all, expires <= now) {
        (_, true) => Collected { name, deleted: true, why: format!("run {run_id}, expired at {expires}") },
        (true, false) => Collected { name, deleted: true, why: format!("run {run_id}, expires at {expires}; --all") },
        (false, false) => keep(format!("run {run_id}, expires at {expires}")),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> jiff::Timestamp {
        t.parse().expect("a timestamp")
    }

    #[test]
    fn gc_takes_its_own_expired_namespaces_and_all_of_its_own_with_all() {
        let own = manifests::namespace("ab12cd", "2026-12-04T10:00:00Z");
        let early = at("2026-12-04T09:00:00Z");
        let late = at("2026-12-04T11:00:00Z");
        let kept = judge(&own, false, early);
        assert_eq!((kept.name.as_str(), kept.deleted), ("netcheck-ab12cd", false));
        assert!(kept.why.contains("expires at 2026-12-04T10:00:00Z"), "{}", kept.why);
        assert!(judge(&own, true, early).deleted, "--all");
        let expired = judge(&own, false, late);
        assert!(expired.deleted && expired.why.contains("expired at"), "{}", expired.why);
    }

    #[test]
    fn gc_leaves_a_namespace_that_only_carries_the_managed_by_label() {
        let late = at("2030-01-01T00:00:00Z");
        let mut decoy = manifests::namespace("ab12cd", "2026-12-04T10:00:00Z");
        decoy.metadata.labels.as_mut().expect("labels").remove(RUN_ID_LABEL);
        let verdict = judge(&decoy, true, late);
        assert!(!verdict.deleted && verdict.why.contains("not recognised as a netcheck run"), "{}", verdict.why);

        let mut renamed = manifests::namespace("ab12cd", "2026-12-04T10:00:00Z");
        renamed.metadata.name = Some("team-payments".into());
        assert!(!judge(&renamed, true, late).deleted, "the name must be the run's");

        let mut no_expiry = manifests::namespace("ab12cd", "2026-12-04T10:00:00Z");
        no_expiry.metadata.annotations = None;
        assert!(!judge(&no_expiry, true, late).deleted, "no expiry: not netcheck's");
    }
}
