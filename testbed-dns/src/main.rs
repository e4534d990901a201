//! `netcheck-testbed-dns`: keeps unbound's `cluster.local.` and `in-addr.arpa.` auth-zones
//! in line with the test cluster's Services, Endpoints and Pods (Kubernetes DNS spec 1.1.0).
//!
//! The test cluster runs no CoreDNS; unbound serves zone files written by this program.

mod records;
mod reload;
mod watch;
mod zone;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tracing::{error, info, warn};

use crate::records::RecordConfig;
use crate::reload::ZonePublisher;
use crate::watch::Snapshot;

/// Feeds the test cluster's unbound with Kubernetes DNS zone files.
#[derive(Debug, Parser)]
#[command(name = "netcheck-testbed-dns", version, about)]
struct Cli {
    /// Kubeconfig of the test cluster.
    #[arg(long)]
    kubeconfig: PathBuf,

    /// Directory receiving `<domain>.zone` and `in-addr.arpa.zone`.
    #[arg(long)]
    zone_dir: PathBuf,

    /// unbound config passed to `unbound-control -c`; without it zones are only written.
    #[arg(long)]
    unbound_conf: Option<PathBuf>,

    /// Cluster domain.
    #[arg(long, default_value = "cluster.local")]
    domain: String,

    /// TTL of every record (and the SOA minimum).
    #[arg(long, default_value_t = 5)]
    ttl: u32,

    /// Address of `ns.dns.<domain>.`, the target of the zones' NS records.
    #[arg(long, default_value = "10.250.0.1")]
    ns_address: Ipv4Addr,

    /// Write (and reload) the zones once, then exit.
    #[arg(long)]
    once: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only help a terminal; the testbed redirects logs to files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    let cfg = RecordConfig {
        domain: records::normalize_domain(&cli.domain).map_err(|e| format!("--domain {:?}: {e}", cli.domain))?,
        ns_address: cli.ns_address,
    };
    std::fs::create_dir_all(&cli.zone_dir).map_err(|e| format!("--zone-dir {}: {e}", cli.zone_dir.display()))?;

    let kubeconfig = Kubeconfig::read_from(&cli.kubeconfig)
        .map_err(|e| format!("--kubeconfig {}: {e}", cli.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(config)?;

    let mut publisher = ZonePublisher::new(cfg.clone(), cli.ttl, &cli.zone_dir, cli.unbound_conf.clone());

    if cli.once {
        let snapshot = watch::list_once(client).await?;
        rebuild(&cfg, &mut publisher, snapshot).await?;
        if publisher.reload_pending() {
            return Err("unbound did not accept the zone reload".into());
        }
        return Ok(());
    }

    let watching = watch::run(client, async |snapshot: Snapshot| {
        match rebuild(&cfg, &mut publisher, snapshot).await {
            Ok(()) => publisher.reload_pending(),
            Err(e) => {
                // Keep serving the last good files; a later change may succeed.
                error!("rebuild failed: {e}");
                true
            }
        }
    });
    tokio::select! {
        r = watching => r?,
        _ = shutdown_signal() => info!("shutting down"),
    }
    Ok(())
}

/// Rebuilds all records from `snapshot` and publishes them; logs one summary line.
async fn rebuild(
    cfg: &RecordConfig,
    publisher: &mut ZonePublisher,
    snapshot: Snapshot,
) -> Result<(), reload::ReloadError> {
    let started = Instant::now();
    let out = records::build(cfg, &snapshot.services, &snapshot.endpoints, &snapshot.pods);
    for s in &out.skipped {
        warn!("skipped: {s}");
    }
    let report = publisher.publish(&out.records).await?;
    info!(
        records = out.records.len(),
        services = snapshot.services.len(),
        endpoints = snapshot.endpoints.len(),
        pods = snapshot.pods.len(),
        written = ?report.written,
        reloaded = ?report.reloaded,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "rebuild"
    );
    Ok(())
}

/// Resolves on SIGINT or SIGTERM so a supervisor can stop us cleanly.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_defaults_match_brief() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["x", "--kubeconfig", "/k", "--zone-dir", "/z"]);
        assert_eq!(cli.domain, "cluster.local");
        assert_eq!(cli.ttl, 5);
        assert_eq!(cli.ns_address, Ipv4Addr::new(10, 250, 0, 1));
        assert!(!cli.once);
        assert!(cli.unbound_conf.is_none());
        assert!(Cli::try_parse_from(["x", "--zone-dir", "/z"]).is_err(), "--kubeconfig is required");
    }
}
