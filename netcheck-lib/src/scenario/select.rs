//! Selection by check id outside a file: `from_check_ids` (`--check`) and `Scenario::without` (`--skip`).

use super::{Params, Scenario, ScenarioError, SelectedCheck};
use crate::catalog::{self, CheckSpec};

impl Scenario {
    /// Removes the checks with these ids (`--skip`).
    ///
    /// An id that is not in the catalog is an error, so a typo does not silently run the check;
    /// a known id that this scenario does not select is fine.
    pub fn without(&mut self, ids: &[String]) -> Result<(), ScenarioError> {
        let mut skipped = Vec::with_capacity(ids.len());
        for id in ids {
            skipped.push(find_check(id)?.id);
        }
        self.checks.retain(|c| !skipped.contains(&c.id));
        Ok(())
    }
}

/// A scenario of exactly these checks with default parameters (`--check ID`), in the order
/// given; repeated ids are selected once.
///
/// ```
/// let s = netcheck::scenario::from_check_ids(&["clusterip/reachable".to_string()]).unwrap();
/// assert_eq!(s.checks[0].id, "clusterip/reachable");
/// assert!(netcheck::scenario::from_check_ids(&["no/such".to_string()]).is_err());
/// ```
pub fn from_check_ids(ids: &[String]) -> Result<Scenario, ScenarioError> {
    let mut checks: Vec<SelectedCheck> = Vec::with_capacity(ids.len());
    for id in ids {
        let spec = find_check(id)?;
        if !checks.iter().any(|c| c.id == spec.id) {
            checks.push(SelectedCheck { id: spec.id, params: Params::defaults(spec) });
        }
    }
    if checks.is_empty() {
        return Err(ScenarioError::NoChecks);
    }
    Ok(Scenario { name: "selected".to_string(), description: "Checks selected by id.".to_string(), checks })
}

fn find_check(id: &str) -> Result<&'static CheckSpec, ScenarioError> {
    catalog::find(id).ok_or_else(|| ScenarioError::UnknownCheck { id: id.to_string(), known: catalog::known_ids() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ParamValue;
    use crate::scenario::builtin;

    #[test]
    fn from_check_ids_selects_defaults_once_each() {
        let ids = ["pod/direct", "lb/distribution", "pod/direct"].map(String::from);
        let s = from_check_ids(&ids).expect("known ids");
        let got: Vec<&str> = s.checks.iter().map(|c| c.id).collect();
        assert_eq!(got, ["pod/direct", "lb/distribution"]);
        assert_eq!(s.checks[1].params.get("concurrency"), Some(ParamValue::Int(32)));
        assert!(matches!(from_check_ids(&[]), Err(ScenarioError::NoChecks)));
    }

    #[test]
    fn from_check_ids_rejects_unknown_and_lists_known() {
        let err = from_check_ids(&["dns/nope".to_string()]).unwrap_err();
        assert_eq!(err.to_string(), format!("unknown check id `dns/nope` (known checks: {})", catalog::known_ids()));
    }

    #[test]
    fn without_removes_known_ids_and_rejects_unknown() {
        let mut s = builtin("quick").expect("quick");
        s.without(&["pod/direct".to_string(), "lb/distribution".to_string()]).expect("known ids");
        let ids: Vec<&str> = s.checks.iter().map(|c| c.id).collect();
        assert_eq!(ids, ["clusterip/reachable", "clusterip/all-backends"]);
        // Known but not selected: nothing to remove, not an error.
        s.without(&["pod/direct".to_string()]).expect("known id");
        assert_eq!(s.checks.len(), 2);
        let err = s.without(&["pod/directt".to_string()]).unwrap_err();
        assert!(matches!(err, ScenarioError::UnknownCheck { ref id, .. } if id == "pod/directt"));
        assert_eq!(s.checks.len(), 2, "a failed --skip changes nothing");
    }
}
