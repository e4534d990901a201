//! Test harness for `cargo test`: rstest fixtures that connect to a cluster, or skip clearly when
//! there is none.
//!
//! A test that needs a cluster takes the [`cluster`] fixture. Without a reachable cluster it prints why
//! and returns early; with `NETCHECK_REQUIRE_CLUSTER=1` (CI sets it) a missing cluster fails the test
//! instead, so CI can never pass by skipping.
//!
//! ```no_run
//! use netcheck::harness::cluster;
//! use rstest::rstest;
//!
//! #[rstest]
//! #[tokio::test]
//! async fn my_service_answers(#[future] cluster: Option<netcheck::runner::Cluster>) {
//!     let Some(cluster) = cluster.await else { return };
//!     let report = netcheck::harness::run_checks(&cluster, &["clusterip/reachable"]).await;
//!     report.assert_passed();
//! }
//! ```

use rstest::fixture;

use crate::Report;
use crate::runner::{self, Cluster, ConnectOptions, NoProgress, RunOptions, SessionOptions};
use crate::scenario::{self, Scenario};

/// Environment variable that turns a missing cluster from a skip into a failure.
pub const REQUIRE_CLUSTER_ENV: &str = "NETCHECK_REQUIRE_CLUSTER";

/// Connects to the cluster from the environment (KUBECONFIG, as kubectl). `None` means: skip.
///
/// # Panics
/// When no cluster is reachable and [`REQUIRE_CLUSTER_ENV`] is `1`.
#[fixture]
pub async fn cluster() -> Option<Cluster> {
    match runner::connect(&ConnectOptions::default()).await {
        Ok(cluster) => Some(cluster),
        Err(e) if std::env::var(REQUIRE_CLUSTER_ENV).as_deref() == Ok("1") => {
            panic!("{REQUIRE_CLUSTER_ENV}=1 but no cluster is usable: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no Kubernetes cluster ({e}); set KUBECONFIG to run this test");
            None
        }
    }
}

/// The agent image tests deploy: `NETCHECK_IMAGE`, else the default for this version.
pub fn agent_image() -> String {
    std::env::var("NETCHECK_IMAGE").unwrap_or_else(|_| runner::DEFAULT_IMAGE.to_string())
}

/// Runs a scenario on `cluster` with test defaults (agent image from [`agent_image`]).
///
/// # Panics
/// When netcheck cannot run at all (the cluster's checks failing is a report, not a panic).
pub async fn run_scenario(cluster: &Cluster, scenario: Scenario) -> Report {
    let options = RunOptions {
        connect: ConnectOptions::default(),
        scenario,
        session: SessionOptions { image: agent_image(), ..Default::default() },
        keep: false,
    };
    match runner::run_on(cluster, &options, &NoProgress).await {
        Ok(report) => report,
        Err(e) => panic!("netcheck could not run: {e}"),
    }
}

/// Runs the given checks with their default parameters.
///
/// # Panics
/// On an unknown check id, or when netcheck cannot run.
pub async fn run_checks(cluster: &Cluster, ids: &[&str]) -> Report {
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let scenario = scenario::from_check_ids(&ids).unwrap_or_else(|e| panic!("{e}"));
    run_scenario(cluster, scenario).await
}
