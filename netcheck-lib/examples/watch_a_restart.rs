//! Embeds a watch in an upgrade test written in Rust: starts a watch against the cluster of
//! `KUBECONFIG`, restarts the cluster DNS (a rollout of `kube-system/coredns`, as an upgrade of
//! CoreDNS would), reads a snapshot while it goes on, then judges the disruption and exits with
//! netcheck's exit code.
//!
//! ```text
//! KUBECONFIG=/var/lib/netcheck-testbed/kubeconfig cargo run -p netcheck --example watch_a_restart
//! ```

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use netcheck::report::human;
use netcheck::runner::{self, ConnectOptions, NoProgress};
use netcheck::watch::{Watch, WatchOptions};

#[tokio::main]
async fn main() {
    if let Err(e) = watch_a_restart().await {
        eprintln!("netcheck could not run: {e}");
        std::process::exit(2);
    }
}

async fn watch_a_restart() -> netcheck::Result<()> {
    let cluster = runner::connect(&ConnectOptions::default()).await?;
    let options = WatchOptions {
        image: std::env::var("NETCHECK_IMAGE").unwrap_or_else(|_| runner::DEFAULT_IMAGE.into()),
        ..Default::default()
    };
    let watch = Watch::start(&cluster, &options, &NoProgress).await?;
    println!("watching from {} nodes in {}", watch.nodes.len(), watch.namespace);

    // What `kubectl rollout restart` does: a new pod template, so the Deployment replaces its pods.
    let restart = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
        "netcheck.dev/restarted-at": jiff::Timestamp::now().to_string()
    }}}}});
    let coredns: Api<Deployment> = Api::namespaced(cluster.client.clone(), "kube-system");
    coredns
        .patch("coredns", &PatchParams::default(), &Patch::Merge(&restart))
        .await
        .map_err(|e| netcheck::Error::api("restarting kube-system/coredns", e))?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let records = watch.snapshot().await?;
    let attempts: u64 = records.values().flat_map(|r| r.paths.values()).map(|p| p.requests).sum();
    println!("so far: {attempts} attempts recorded by {} agents", records.len());
    // The restart is over when the controller has seen the new template and every replica is new and
    // available (the status right after the patch still describes the previous rollout).
    let rolled_out = |d: Option<&Deployment>| {
        d.is_some_and(|d| {
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            d.status.as_ref().is_some_and(|s| {
                s.observed_generation >= d.metadata.generation
                    && s.updated_replicas == Some(want)
                    && s.replicas == Some(want)
                    && s.available_replicas == Some(want)
            })
        })
    };
    let complete = await_condition(coredns, "coredns", rolled_out);
    tokio::time::timeout(Duration::from_secs(120), complete)
        .await
        .map_err(|_| netcheck::Error::Timeout { what: "the CoreDNS rollout".into(), seconds: 120 })?
        .map_err(|e| netcheck::Error::Input(format!("watching the CoreDNS rollout: {e}")))?;
    println!("the CoreDNS rollout completed");
    watch.wait_settled(options.settle_limit, &NoProgress).await?;

    let report = watch.stop(&options.budget, false, &NoProgress).await?;
    print!("{}", human::render(&report, false));
    std::process::exit(report.exit_code());
}
