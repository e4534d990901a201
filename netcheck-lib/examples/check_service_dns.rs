//! Embeds netcheck in a program: runs the DNS checks and the ClusterIP check against the cluster of
//! `KUBECONFIG` (or `~/.kube/config`), prints the report and exits with netcheck's exit code.
//!
//! ```text
//! KUBECONFIG=/var/lib/netcheck-testbed/kubeconfig cargo run -p netcheck --example check_service_dns
//! ```

use netcheck::orchestrator::{self, RunOptions};
use netcheck::report::human;
use netcheck::runner::{self, ConnectOptions, NoProgress, SessionOptions};
use netcheck::scenario;

#[tokio::main]
async fn main() {
    let ids = ["clusterip/reachable", "dns/service-a", "dns/headless", "dns/negative"].map(String::from);
    let options = RunOptions {
        connect: ConnectOptions::default(),
        scenario: scenario::from_check_ids(&ids).expect("known check ids"),
        session: SessionOptions {
            image: std::env::var("NETCHECK_IMAGE").unwrap_or_else(|_| runner::DEFAULT_IMAGE.into()),
            ..Default::default()
        },
        keep: false,
    };
    match orchestrator::run(&options, &NoProgress).await {
        Ok(report) => {
            print!("{}", human::render(&report, false));
            std::process::exit(report.exit_code());
        }
        Err(e) => {
            eprintln!("netcheck could not run: {e}");
            std::process::exit(2);
        }
    }
}
