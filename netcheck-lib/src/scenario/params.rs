//! `Params`: the values a scenario set for one check, read with the catalog's defaults filled in.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::catalog::{CheckSpec, ParamValue};

/// Typed parameters of one selected check; unset parameters read as their catalog default.
#[derive(Debug, Clone)]
pub struct Params {
    pub(super) spec: &'static CheckSpec,
    pub(super) set: BTreeMap<&'static str, ParamValue>,
}

impl Params {
    /// All-default parameters of `spec`.
    pub fn defaults(spec: &'static CheckSpec) -> Self {
        Params { spec, set: BTreeMap::new() }
    }

    /// The value of `name` (set or default); `None` if the check has no such parameter.
    pub fn get(&self, name: &str) -> Option<ParamValue> {
        let param = self.spec.param(name)?;
        Some(self.set.get(param.name).copied().unwrap_or(param.default))
    }

    /// Whether the scenario set `name` explicitly.
    pub fn is_set(&self, name: &str) -> bool {
        self.set.contains_key(name)
    }

    /// Every parameter (set or default) as a JSON object with the scenario's camelCase names;
    /// durations are whole milliseconds.
    pub(crate) fn to_json(&self) -> Value {
        let value = |v: ParamValue| match v {
            ParamValue::Int(v) => Value::from(v),
            ParamValue::Float(v) => Value::from(v),
            ParamValue::Bool(v) => Value::from(v),
            ParamValue::Duration(d) => Value::from(d.as_millis() as u64),
        };
        let fields = self
            .spec
            .params
            .iter()
            .map(|p| (p.name.to_string(), value(self.set.get(p.name).copied().unwrap_or(p.default))));
        Value::Object(fields.collect())
    }

    /// The parameters as the check's own typed struct (see [`CheckSpec::parse_params`]).
    ///
    /// # Panics
    /// When `T` does not match the check's parameter specs: a bug that the unit tests
    /// `every_check_parses_its_default_parameters_into_its_typed_struct` and
    /// `every_parameter_parses_at_both_ends_of_its_range` (in `checks`) find for every check, so no
    /// validated scenario can reach it.
    pub(crate) fn typed<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.to_json()).unwrap_or_else(|e| {
            panic!("check `{}`: its parameter specs and its typed parameters disagree: {e}", self.spec.id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use crate::scenario::Scenario;

    #[test]
    fn typed_parameters_carry_set_values_and_defaults_with_durations_in_ms() {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Reachable {
            requests: u32,
            timeout_ms: u64,
        }
        let yaml = "apiVersion: netcheck.dev/v1\nkind: Scenario\nmetadata: {name: t}\nspec:\n  checks:\n    - id: clusterip/reachable\n      params: {requests: 7}\n";
        let s = Scenario::from_yaml(yaml, "t.yaml").expect("valid");
        let typed: Reachable = s.checks[0].params.typed();
        assert_eq!((typed.requests, typed.timeout_ms), (7, 2000));
        assert_eq!(s.checks[0].params.to_json(), serde_json::json!({"requests": 7, "timeoutMs": 2000}));
    }

    #[test]
    #[should_panic(expected = "its parameter specs and its typed parameters disagree")]
    fn typed_parameters_that_disagree_with_the_specs_panic() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wrong {}
        let spec = catalog::find("lb/distribution").expect("in catalog");
        let _: Wrong = Params::defaults(spec).typed();
    }
}
