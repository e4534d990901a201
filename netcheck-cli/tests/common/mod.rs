//! Helpers shared by the CLI's cluster tests.

// Each test binary compiles this module on its own and uses a part of it.
#![allow(dead_code)]

/// Whether KUBECONFIG names a cluster to test against. Without one the test skips, unless
/// NETCHECK_REQUIRE_CLUSTER=1 (CI), where a missing cluster fails it.
pub fn cluster_available() -> bool {
    let usable = std::env::var_os("KUBECONFIG").is_some_and(|p| std::path::Path::new(&p).exists());
    if !usable {
        assert_ne!(std::env::var("NETCHECK_REQUIRE_CLUSTER").as_deref(), Ok("1"), "no cluster (KUBECONFIG)");
        eprintln!("skipped: no cluster (set KUBECONFIG)");
    }
    usable
}

/// A client for the test's cluster; None (the test skips) without one, unless
/// NETCHECK_REQUIRE_CLUSTER=1, where a missing cluster fails the test.
pub async fn client() -> Option<kube::Client> {
    match kube::Client::try_default().await {
        Ok(c) => Some(c),
        Err(e) => {
            assert_ne!(std::env::var("NETCHECK_REQUIRE_CLUSTER").as_deref(), Ok("1"), "no cluster: {e}");
            eprintln!("skipped: no cluster ({e})");
            None
        }
    }
}
