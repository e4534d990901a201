//! Test harness for `cargo test`: rstest fixtures that connect to a cluster and deploy netcheck's
//! agents, or skip clearly when there is no cluster.
//!
//! - [`agents`]: agents deployed **once per test binary** and shared by its tests (a client on every
//!   node and the server agents); the namespace is deleted when the test binary exits. Use it to
//!   run checks ([`check`]) or probe your own Service.
//! - [`clients`]: the same, with client agents only: lighter, for probing your own Service
//!   ([`http_ok`], [`crate::probe`]).
//! - [`cluster`]: just the connection; [`run_checks`] and [`run_scenario`] then deploy and remove
//!   agents per call.
//!
//! Without a reachable cluster a fixture prints why and yields `None`, and the test returns early;
//! with `NETCHECK_REQUIRE_CLUSTER=1` (CI sets it) a missing cluster fails the test instead, so CI can
//! never pass by skipping.
//!
//! Asserting that your Service answers, from every node:
//!
//! ```no_run
//! use netcheck::harness::clients;
//! use rstest::rstest;
//!
//! #[rstest]
//! #[tokio::test]
//! async fn my_service_answers(clients: Option<&'static netcheck::runner::Session>) {
//!     let Some(clients) = clients else { return };
//!     netcheck::harness::http_ok(clients, "http://my-svc.my-ns:8080/healthz").await.assert_passed();
//! }
//! ```
//!
//! Running netcheck's own checks on a fresh set of agents:
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

use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use rstest::fixture;

use crate::Report;
use crate::orchestrator::{self, RunOptions};
use crate::runner::{self, Cluster, ConnectOptions, NoProgress, Session, SessionOptions};
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
        Err(e) => skip_or_panic(&e.to_string()),
    }
}

fn skip_or_panic<T>(why: &str) -> Option<T> {
    if std::env::var(REQUIRE_CLUSTER_ENV).as_deref() == Ok("1") {
        panic!("{REQUIRE_CLUSTER_ENV}=1 but no cluster is usable: {why}")
    }
    eprintln!("skipped: no Kubernetes cluster ({why}); set KUBECONFIG to run this test");
    None
}

/// What the shared agents' first use left: the session, no cluster (skip), or why deploying failed.
enum Shared {
    Ready(Box<Session>),
    NoCluster(String),
    Failed(String),
}

/// The shared sessions: full agents, and client agents only.
static AGENTS: OnceLock<Shared> = OnceLock::new();
static CLIENTS: OnceLock<Shared> = OnceLock::new();

/// netcheck's agents (a client on every usable node and 3 server agents), deployed once per test
/// binary with [`agent_image`] and shared by every test that takes this fixture; their namespace is
/// deleted when the binary exits (and carries an expiry for `netcheck gc` should the process be
/// killed). `None` means: no cluster, skip. Use it to run netcheck's checks ([`check`]).
///
/// The session's client is made on a runtime of its own that lives as long as the binary, so the
/// tests' runtimes, each gone when its test ends, can all use it.
///
/// # Panics
/// When the cluster is reachable but the agents cannot be deployed, or when no cluster is reachable
/// and [`REQUIRE_CLUSTER_ENV`] is `1`.
#[fixture]
pub fn agents() -> Option<&'static Session> {
    shared(&AGENTS, 3)
}

/// Like [`agents`], but only the client agents, one per usable node: lighter and faster to deploy,
/// for tests that probe their own Services ([`http_ok`], [`crate::probe`]) and run no netcheck check.
///
/// # Panics
/// As [`agents`].
#[fixture]
pub fn clients() -> Option<&'static Session> {
    shared(&CLIENTS, 0)
}

fn shared(cell: &'static OnceLock<Shared>, servers: i32) -> Option<&'static Session> {
    match cell.get_or_init(|| deploy_shared(servers)) {
        Shared::Ready(session) => Some(session),
        Shared::NoCluster(why) => skip_or_panic(why),
        Shared::Failed(why) => panic!("netcheck could not deploy its agents: {why}"),
    }
}

fn deploy_shared(servers: i32) -> Shared {
    let (started_tx, started_rx) = mpsc::channel();
    let spawned = std::thread::Builder::new().name("netcheck-harness".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return started_tx.send(Shared::Failed(format!("cannot start a runtime: {e}"))).unwrap_or(()),
        };
        runtime.block_on(async move {
            let shared = match runner::connect(&ConnectOptions::default()).await {
                Err(e) => Shared::NoCluster(e.to_string()),
                Ok(cluster) => {
                    let options = SessionOptions { image: agent_image(), servers, ..Default::default() };
                    match Session::start(&cluster, options, &NoProgress).await {
                        Ok(session) => Shared::Ready(Box::new(session)),
                        Err(e) => Shared::Failed(e.to_string()),
                    }
                }
            };
            let _ = started_tx.send(shared);
            // The client's request queue runs on this runtime: keep it for the whole binary.
            std::future::pending::<()>().await
        })
    });
    if let Err(e) = spawned {
        return Shared::Failed(format!("cannot start the harness thread: {e}"));
    }
    let shared = started_rx.recv().unwrap_or_else(|_| Shared::Failed("the harness thread ended".into()));
    if matches!(shared, Shared::Ready(_)) {
        // SAFETY: registers a plain `extern "C" fn` without arguments, as atexit requires. Both
        // sessions may register; the handler deletes whichever exist, and deleting twice is harmless.
        unsafe { libc::atexit(delete_shared_namespaces) };
    }
    shared
}

/// Runs at process exit: deletes the shared namespaces with a client of their own (the tests'
/// runtimes, on which pooled connections lived, are gone), waiting at most 30 s each.
extern "C" fn delete_shared_namespaces() {
    for cell in [&AGENTS, &CLIENTS] {
        let Some(Shared::Ready(session)) = cell.get() else { continue };
        let namespace = session.namespace.clone();
        session.cluster.block_on_own_client(move |client| async move {
            tokio::time::timeout(Duration::from_secs(30), runner::namespace::delete(&client, &namespace)).await.ok()
        });
    }
}

/// From every client agent of `session`, GETs of `url` must answer HTTP 200 (see
/// [`crate::probe::http`] for the rules on names).
///
/// # Panics
/// When `url` is not an `http://` URL.
pub async fn http_ok(session: &Session, url: &str) -> Report {
    crate::probe::http(session, url, 200, &Default::default()).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the given checks, with their default parameters, on already deployed agents (for example
/// the shared [`agents`]), without deploying or removing anything.
///
/// # Panics
/// On an unknown check id.
pub async fn check(session: &Session, ids: &[&str]) -> Report {
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let scenario = scenario::from_check_ids(&ids).unwrap_or_else(|e| panic!("{e}"));
    let results = crate::orchestrator::run_checks(session, &scenario, &NoProgress).await;
    let nodes = session.nodes.iter().map(|n| n.name.clone()).collect();
    Report::from_results(&session.run_id, &scenario.name, session.cluster.info(nodes), results)
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
    match orchestrator::run_on(cluster, &options, &NoProgress).await {
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
