//! The catalog of checks: their stable ids, what they prove, and the parameters a scenario may set.
//!
//! Each check's [`CheckSpec`] lives beside its code, in its round's module under `netcheck-lib/src/checks/`,
//! next to the typed struct its parameters deserialize into; [`checks`] lists them all. Scenario
//! validation, defaults, `--check`/`--skip` and `netcheck list` all read from here.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;

/// A check as the catalog describes it.
#[derive(Debug)]
pub struct CheckSpec {
    /// Stable id, `area/name`, e.g. `clusterip/reachable`.
    pub id: &'static str,
    /// Short title for listings.
    pub title: &'static str,
    /// What a pass proves, in one or two sentences.
    pub description: &'static str,
    /// Parameters a scenario may set, with their defaults.
    pub params: &'static [ParamSpec],
    /// Deserializes a complete parameter set (see [`crate::scenario::Params`]) into the check's own
    /// typed struct, to prove that [`params`](Self::params) and that struct agree: a unit test runs it
    /// on every check's defaults, so a name or type that differs fails the build's tests, not a run.
    #[cfg_attr(not(test), allow(dead_code))] // only the unit test calls it
    pub(crate) parse_params: fn(serde_json::Value) -> Result<(), serde_json::Error>,
}

impl CheckSpec {
    /// The parameter called `name`, if this check has one.
    pub fn param(&self, name: &str) -> Option<&'static ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Names of this check's parameters, comma-separated, for error messages.
    pub fn param_names(&self) -> String {
        let names: Vec<&str> = self.params.iter().map(|p| p.name).collect();
        names.join(", ")
    }
}

/// One parameter of a check.
#[derive(Debug)]
pub struct ParamSpec {
    /// camelCase name as written in scenarios.
    pub name: &'static str,
    /// Type and allowed range.
    pub kind: ParamKind,
    /// Value used when a scenario does not set the parameter.
    pub default: ParamValue,
    /// One sentence: what the parameter controls.
    pub doc: &'static str,
}

/// Type and inclusive range of a parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamKind {
    /// A whole number.
    Int {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A real number.
    Float {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// `true` or `false`.
    Bool,
    /// A duration written as whole milliseconds.
    DurationMs {
        /// Shortest allowed duration in ms.
        min: u64,
        /// Longest allowed duration in ms.
        max: u64,
    },
}

impl ParamKind {
    /// What a value of this kind looks like, for error messages ("an integer", …).
    pub fn expected(&self) -> &'static str {
        match self {
            ParamKind::Int { .. } => "an integer",
            ParamKind::Float { .. } => "a number",
            ParamKind::Bool => "true or false",
            ParamKind::DurationMs { .. } => "a whole number of milliseconds",
        }
    }

    /// Whether `value` has this kind and lies within its range.
    pub fn admits(&self, value: ParamValue) -> bool {
        match (*self, value) {
            (ParamKind::Int { min, max }, ParamValue::Int(v)) => (min..=max).contains(&v),
            (ParamKind::Float { min, max }, ParamValue::Float(v)) => (min..=max).contains(&v),
            (ParamKind::Bool, ParamValue::Bool(_)) => true,
            (ParamKind::DurationMs { min, max }, ParamValue::Duration(d)) => {
                (u128::from(min)..=u128::from(max)).contains(&d.as_millis())
            }
            _ => false,
        }
    }

    /// The allowed range, e.g. `between 1 and 10000`; `None` for kinds without one.
    pub fn range(&self) -> Option<String> {
        match self {
            ParamKind::Int { min, max } => Some(format!("between {min} and {max}")),
            ParamKind::Float { min, max } => Some(format!("between {min} and {max}")),
            ParamKind::Bool => None,
            ParamKind::DurationMs { min, max } => Some(format!("between {min} and {max} ms")),
        }
    }
}

/// A parameter's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamValue {
    /// For [`ParamKind::Int`].
    Int(i64),
    /// For [`ParamKind::Float`].
    Float(f64),
    /// For [`ParamKind::Bool`].
    Bool(bool),
    /// For [`ParamKind::DurationMs`].
    Duration(Duration),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Bool(v) => write!(f, "{v}"),
            ParamValue::Duration(d) => write!(f, "{} ms", d.as_millis()),
        }
    }
}

/// A [`CheckSpec::parse_params`] for checks whose parameters deserialize into `T`.
pub(crate) fn parses_into<T: DeserializeOwned>(params: serde_json::Value) -> Result<(), serde_json::Error> {
    serde_json::from_value::<T>(params).map(drop)
}

/// The parameters of a check that has none.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoParams {}

pub(crate) const fn int(name: &'static str, min: i64, max: i64, default: i64, doc: &'static str) -> ParamSpec {
    ParamSpec { name, kind: ParamKind::Int { min, max }, default: ParamValue::Int(default), doc }
}

pub(crate) const fn float(name: &'static str, min: f64, max: f64, default: f64, doc: &'static str) -> ParamSpec {
    ParamSpec { name, kind: ParamKind::Float { min, max }, default: ParamValue::Float(default), doc }
}

pub(crate) const fn millis(name: &'static str, min: u64, max: u64, default: u64, doc: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        kind: ParamKind::DurationMs { min, max },
        default: ParamValue::Duration(Duration::from_millis(default)),
        doc,
    }
}

/// Per-request timeout shared by the probing checks.
pub(crate) const TIMEOUT_MS: ParamSpec =
    millis("timeoutMs", 1, 60_000, 2_000, "How long one request may take before it counts as failed.");

/// Every check netcheck knows, in the order reports list them: the specs of each round of the
/// check registry (`ROUNDS` in `netcheck-lib/src/checks/mod.rs`), in registry order.
///
/// ```
/// let ids: Vec<&str> = netcheck::catalog::checks().map(|c| c.id).collect();
/// assert_eq!(ids[0], "clusterip/reachable");
/// assert!(ids.contains(&"endpoints/rollout"));
/// ```
pub fn checks() -> impl Iterator<Item = &'static CheckSpec> {
    crate::checks::ROUNDS.iter().flat_map(|round| round.specs.iter())
}

/// The check with this id.
///
/// ```
/// assert!(netcheck::catalog::find("dns/headless").is_some());
/// assert!(netcheck::catalog::find("dns/nope").is_none());
/// ```
pub fn find(id: &str) -> Option<&'static CheckSpec> {
    checks().find(|c| c.id == id)
}

/// All check ids, comma-separated, for error messages that list the known checks.
pub fn known_ids() -> String {
    let ids: Vec<&str> = checks().map(|c| c.id).collect();
    ids.join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut seen = BTreeSet::new();
        for check in checks() {
            assert!(seen.insert(check.id), "duplicate check id {}", check.id);
            let (area, name) = check.id.split_once('/').expect("id is area/name");
            let ok =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            assert!(ok(area) && ok(name), "malformed id {}", check.id);
        }
    }

    #[test]
    fn defaults_have_their_kind_and_lie_in_range() {
        for check in checks() {
            let mut names = BTreeSet::new();
            for p in check.params {
                assert!(names.insert(p.name), "{}: duplicate {}", check.id, p.name);
                assert!(
                    p.kind.admits(p.default),
                    "{}: default of {} is {:?}, not admitted by {:?}",
                    check.id,
                    p.name,
                    p.default,
                    p.kind
                );
                assert!(p.name.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
                assert!(!p.name.contains(['-', '_']), "{} is not camelCase", p.name);
            }
        }
    }

    #[test]
    fn find_returns_the_spec_with_its_params() {
        let check = find("lb/distribution").expect("in catalog");
        assert_eq!(check.param_names(), "requests, minPValue, minShareOfFair, concurrency");
        assert_eq!(check.param("minPValue").map(|p| p.default), Some(ParamValue::Float(0.001)));
        assert_eq!(
            find("clusterip/reachable").and_then(|c| c.param("timeoutMs")).map(|p| p.default),
            Some(ParamValue::Duration(Duration::from_millis(2000)))
        );
        assert!(find("clusterip/all-backends").expect("in catalog").params.is_empty());
        assert!(find("clusterip/nope").is_none());
    }

    #[test]
    fn kinds_reject_wrong_types_and_out_of_range() {
        let requests = ParamKind::Int { min: 1, max: 10 };
        assert!(requests.admits(ParamValue::Int(10)));
        assert!(!requests.admits(ParamValue::Int(0)));
        assert!(!requests.admits(ParamValue::Float(5.0)));
        let share = ParamKind::Float { min: 0.0, max: 1.0 };
        assert!(!share.admits(ParamValue::Float(1.5)));
        assert!(!share.admits(ParamValue::Float(f64::NAN)));
        let timeout = ParamKind::DurationMs { min: 1, max: 100 };
        assert!(!timeout.admits(ParamValue::Duration(Duration::ZERO)));
        assert!(timeout.admits(ParamValue::Duration(Duration::from_millis(100))));
        assert_eq!(timeout.range().as_deref(), Some("between 1 and 100 ms"));
    }

    #[test]
    fn known_ids_lists_every_check() {
        let ids = known_ids();
        for id in ["clusterip/reachable", "lb/distribution", "nodeport/every-node", "service/no-endpoints"] {
            assert!(ids.contains(id), "{ids}");
        }
        assert_eq!(ids.matches(", ").count() + 1, checks().count());
    }
}
