//! The built-in scenarios (`scenarios/*.yaml`, compiled in) and `load`: a built-in name first, then a file path.

use std::path::PathBuf;

use super::{Scenario, ScenarioError};

/// A scenario compiled into the binary.
struct Builtin {
    name: &'static str,
    yaml: &'static str,
}

static BUILTINS: &[Builtin] = &[
    Builtin { name: "quick", yaml: include_str!("../../../scenarios/quick.yaml") },
    Builtin { name: "full", yaml: include_str!("../../../scenarios/full.yaml") },
    Builtin { name: "dns", yaml: include_str!("../../../scenarios/dns.yaml") },
    Builtin { name: "readiness", yaml: include_str!("../../../scenarios/readiness.yaml") },
    Builtin { name: "upgrade-gate", yaml: include_str!("../../../scenarios/upgrade-gate.yaml") },
    Builtin { name: "loadbalancer", yaml: include_str!("../../../scenarios/loadbalancer.yaml") },
];

/// Same order as [`BUILTINS`]; a unit test keeps the two in step.
static BUILTIN_NAMES: &[&str] = &["quick", "full", "dns", "readiness", "upgrade-gate", "loadbalancer"];

/// Names of the built-in scenarios.
pub fn builtin_names() -> &'static [&'static str] {
    BUILTIN_NAMES
}

/// The built-in scenario called `name`.
///
/// # Panics
/// If the compiled-in YAML is invalid; unit tests parse every built-in, so this cannot ship.
pub fn builtin(name: &str) -> Option<Scenario> {
    let b = BUILTINS.iter().find(|b| b.name == name)?;
    let file = format!("<builtin>/{}.yaml", b.name);
    match Scenario::from_yaml(b.yaml, &file) {
        Ok(s) => Some(s),
        Err(e) => panic!("built-in scenario is invalid: {e}"),
    }
}

/// A built-in scenario by name, else a scenario file by path.
///
/// ```
/// let quick = netcheck::scenario::load("quick").unwrap();
/// assert!(quick.checks.iter().any(|c| c.id == "lb/distribution"));
/// let err = netcheck::scenario::load("/nonexistent/scenario.yaml").unwrap_err();
/// assert!(err.to_string().contains("quick"), "the error lists the built-ins: {err}");
/// ```
pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
    if let Some(s) = builtin(name_or_path) {
        return Ok(s);
    }
    match std::fs::read_to_string(name_or_path) {
        Ok(text) => Scenario::from_yaml(&text, name_or_path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ScenarioError::NotFound { name: name_or_path.to_string(), builtins: BUILTIN_NAMES.join(", ") })
        }
        Err(source) => Err(ScenarioError::Read { path: PathBuf::from(name_or_path), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::validate::tests::GOOD;

    #[test]
    fn every_builtin_parses_and_is_named_after_itself() {
        assert_eq!(BUILTINS.len(), BUILTIN_NAMES.len());
        for (b, name) in BUILTINS.iter().zip(builtin_names()) {
            assert_eq!(b.name, *name);
            let s = builtin(name).expect("listed built-in exists");
            assert_eq!(s.name, *name);
            assert!(!s.checks.is_empty());
        }
        let quick = builtin("quick").expect("quick");
        let ids: Vec<&str> = quick.checks.iter().map(|c| c.id).collect();
        assert_eq!(ids, ["clusterip/reachable", "clusterip/all-backends", "pod/direct", "lb/distribution"]);
        assert!(builtin("slow").is_none());
    }

    #[test]
    fn load_prefers_builtins_then_files() {
        assert_eq!(load("quick").expect("built-in").name, "quick");
        let path = std::env::temp_dir().join(format!("netcheck-scenario-{}.yaml", std::process::id()));
        std::fs::write(&path, GOOD).expect("write temp file");
        let loaded = load(path.to_str().expect("utf-8 path"));
        std::fs::remove_file(&path).expect("remove temp file");
        assert_eq!(loaded.expect("valid file").name, "mine");
    }

    #[test]
    fn load_of_missing_file_names_the_builtins() {
        let err = load("/nonexistent/netcheck.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no built-in scenario and no file named `/nonexistent/netcheck.yaml` (built-in \
             scenarios: quick, full, dns, readiness, upgrade-gate, loadbalancer)"
        );
    }
}
