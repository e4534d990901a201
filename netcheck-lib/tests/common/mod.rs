//! Helpers shared by the cluster tests: driving the testbed's fault-injection scripts.

use std::path::PathBuf;
use std::process::Command;

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
