//! Helpers shared by the cluster tests: starting agents and driving the testbed's fault-injection
//! scripts.

// Each test binary compiles this module on its own and uses a part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use netcheck::harness::agent_image;
use netcheck::runner::{Cluster, NoProgress, Session, SessionOptions};

/// Runs `testbed/<script> args…` and panics with its output when it fails.
pub fn testbed(script: &str, args: &[&str]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testbed").join(script);
    let out = Command::new(&path).args(args).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Undoes a fault when dropped, so that a failing assertion cannot leave the testbed broken.
pub struct Restore(pub Vec<(&'static str, Vec<String>)>);

impl Drop for Restore {
    fn drop(&mut self) {
        for (script, args) in &self.0 {
            testbed(script, &args.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}

/// Owned arguments for [`Restore`].
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Starts a session with the test agent image (`NETCHECK_IMAGE`, else this version's default).
pub async fn session(cluster: &Cluster) -> Session {
    let options = SessionOptions { image: agent_image(), ..Default::default() };
    Session::start(cluster, options, &NoProgress).await.expect("agents deploy")
}

/// Drops `proto` packets for `dest:port` as they enter `node`'s namespace (raw PREROUTING), until the
/// returned guard is dropped.
pub fn drop_packets(node: &str, dest: &str, proto: &str, port: &str) -> Restore {
    let rule = |op: &str| {
        args(&[node, "iptables", "-t", "raw", op, "PREROUTING", "-d", dest, "-p", proto, "--dport", port, "-j", "DROP"])
    };
    testbed("node-exec", &rule("-I").iter().map(String::as_str).collect::<Vec<_>>());
    Restore(vec![("node-exec", rule("-D"))])
}
