//! Parsing a scenario: YAML into raw structs that keep source locations, then validation against the catalog.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::{API_VERSION, KIND, Params, Scenario, ScenarioError, SelectedCheck};
use crate::catalog::{self, CheckSpec, ParamKind, ParamSpec, ParamValue};

impl Scenario {
    /// Parses and validates a scenario document; `file` names it in error messages.
    ///
    /// ```
    /// use netcheck::scenario::Scenario;
    /// let yaml = "apiVersion: netcheck.dev/v1\nkind: Scenario\nmetadata: {name: mine}\nspec:\n  checks:\n    - id: clusterip/reachable\n      params: {requests: 5}\n";
    /// let s = Scenario::from_yaml(yaml, "mine.yaml").unwrap();
    /// assert_eq!(s.checks[0].params.get("requests"), Some(netcheck::catalog::ParamValue::Int(5)));
    /// let bad = Scenario::from_yaml(&yaml.replace("requests", "reqests"), "mine.yaml").unwrap_err();
    /// assert!(bad.to_string().starts_with("mine.yaml:7:"), "{bad}");
    /// ```
    pub fn from_yaml(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
        let raw: RawDocument = serde_saphyr::from_str(text).map_err(|e| yaml_error(&e, file))?;
        Validator { file }.document(raw)
    }
}

/// Turns a YAML or shape error into `FILE:LINE:COL: message`.
fn yaml_error(e: &serde_saphyr::Error, file: &str) -> ScenarioError {
    let plain = e.without_snippet().render_with_options(serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    });
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    // The plain rendering appends the location, which our prefix already gives.
    let suffix = format!(" at line {line}, column {column}");
    let message = plain.strip_suffix(&suffix).unwrap_or(&plain);
    // Advice addressed to programmers using serde-saphyr, not to people writing scenarios.
    let message = message.split(", set DuplicateKeyPolicy").next().unwrap_or(message).to_string();
    ScenarioError::Invalid { file: file.to_string(), line, column, message }
}

// ---- raw documents, as written, with source locations ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDocument {
    api_version: Spanned<String>,
    kind: Spanned<String>,
    metadata: RawMetadata,
    spec: RawSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetadata {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    /// `None` when written as `checks:` with nothing after it.
    checks: Spanned<Option<Vec<Spanned<RawCheck>>>>,
}

/// A list entry: a bare id or `{id, params}`.
#[derive(Debug)]
enum RawCheck {
    Bare(String),
    Full { id: Spanned<String>, params: RawParams },
}

/// `params` as written, keys in order, each key and value with its location.
#[derive(Debug, Default)]
struct RawParams(Vec<(Spanned<String>, Spanned<Value>)>);

// Hand-written rather than `#[serde(untagged)]`: untagged enums buffer their content, which loses
// the source locations that error messages need.
impl<'de> Deserialize<'de> for RawCheck {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawCheckVisitor)
    }
}

struct RawCheckVisitor;

impl<'de> Visitor<'de> for RawCheckVisitor {
    type Value = RawCheck;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a check id, or a mapping with `id` and optional `params`")
    }

    fn visit_str<E: de::Error>(self, id: &str) -> Result<RawCheck, E> {
        Ok(RawCheck::Bare(id.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawCheck, A::Error> {
        let mut id = None;
        let mut params = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "id" => id = Some(map.next_value()?),
                "params" => params = map.next_value::<Option<RawParams>>()?,
                other => return Err(de::Error::unknown_field(other, &["id", "params"])),
            }
        }
        Ok(RawCheck::Full { id: id.ok_or_else(|| de::Error::missing_field("id"))?, params: params.unwrap_or_default() })
    }
}

impl<'de> Deserialize<'de> for RawParams {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any` so a non-mapping gets this visitor's "expected …" message.
        deserializer.deserialize_any(RawParamsVisitor)
    }
}

struct RawParamsVisitor;

impl<'de> Visitor<'de> for RawParamsVisitor {
    type Value = RawParams;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of parameter names to values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawParams, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            entries.push((key, map.next_value::<Spanned<Value>>()?));
        }
        Ok(RawParams(entries))
    }
}

// ---- validation against the catalog ----

struct Validator<'a> {
    file: &'a str,
}

impl Validator<'_> {
    fn error(&self, at: Location, message: String) -> ScenarioError {
        ScenarioError::Invalid { file: self.file.to_string(), line: at.line(), column: at.column(), message }
    }

    fn document(&self, raw: RawDocument) -> Result<Scenario, ScenarioError> {
        self.expect_literal("apiVersion", &raw.api_version, API_VERSION)?;
        self.expect_literal("kind", &raw.kind, KIND)?;
        if raw.metadata.name.value.trim().is_empty() {
            let message = "metadata.name must not be empty".to_string();
            return Err(self.error(raw.metadata.name.referenced, message));
        }
        Ok(Scenario {
            name: raw.metadata.name.value,
            description: raw.metadata.description.unwrap_or_default(),
            checks: self.checks(raw.spec.checks)?,
        })
    }

    fn expect_literal(&self, field: &str, found: &Spanned<String>, want: &str) -> Result<(), ScenarioError> {
        if found.value == want {
            return Ok(());
        }
        let message = format!("{field} must be `{want}`, found `{}`", found.value);
        Err(self.error(found.referenced, message))
    }

    fn checks(&self, raw: Spanned<Option<Vec<Spanned<RawCheck>>>>) -> Result<Vec<SelectedCheck>, ScenarioError> {
        let entries = raw.value.unwrap_or_default();
        if entries.is_empty() {
            let message = "spec.checks must select at least one check".to_string();
            return Err(self.error(raw.referenced, message));
        }
        let mut selected: Vec<(SelectedCheck, Location)> = Vec::new();
        for entry in entries {
            let (check, at) = self.check(entry)?;
            if let Some((_, first)) = selected.iter().find(|(c, _)| c.id == check.id) {
                let message = format!("check `{}` is selected twice (first at line {})", check.id, first.line());
                return Err(self.error(at, message));
            }
            selected.push((check, at));
        }
        Ok(selected.into_iter().map(|(c, _)| c).collect())
    }

    fn check(&self, entry: Spanned<RawCheck>) -> Result<(SelectedCheck, Location), ScenarioError> {
        let (id, at, raw_params) = match entry.value {
            RawCheck::Bare(id) => (id, entry.referenced, RawParams::default()),
            RawCheck::Full { id, params } => (id.value, id.referenced, params),
        };
        let spec = catalog::find(&id).ok_or_else(|| {
            let message = format!("unknown check id `{id}` (known checks: {})", catalog::known_ids());
            self.error(at, message)
        })?;
        let mut params = Params::defaults(spec);
        for (name, value) in raw_params.0 {
            let param = self.param_spec(spec, &name)?;
            let typed =
                typed_value(spec, param, &value.value).map_err(|message| self.error(value.referenced, message))?;
            params.set.insert(param.name, typed);
        }
        Ok((SelectedCheck { id: spec.id, params }, at))
    }

    fn param_spec(
        &self,
        spec: &'static CheckSpec,
        name: &Spanned<String>,
    ) -> Result<&'static ParamSpec, ScenarioError> {
        spec.param(&name.value).ok_or_else(|| {
            let known = if spec.params.is_empty() {
                "it takes no parameters".to_string()
            } else {
                format!("parameters: {}", spec.param_names())
            };
            let message = format!("check `{}` has no parameter `{}` ({known})", spec.id, name.value);
            self.error(name.referenced, message)
        })
    }
}

/// Converts a YAML value to the parameter's type and checks its range.
fn typed_value(check: &CheckSpec, param: &ParamSpec, value: &Value) -> Result<ParamValue, String> {
    let what = format!("parameter `{}` of check `{}`", param.name, check.id);
    let out_of_range = || {
        let range = param.kind.range().unwrap_or_default();
        format!("{what} must be {range}, found {value}")
    };
    // A whole number that does not convert (-5 ms, 2^63) has the right type but is out of range.
    let whole = value.is_i64() || value.is_u64();
    match convert(param.kind, value) {
        Some(v) if param.kind.admits(v) => Ok(v),
        Some(_) => Err(out_of_range()),
        None if whole && param.kind != ParamKind::Bool => Err(out_of_range()),
        None => Err(format!("{what} must be {}, found {}", param.kind.expected(), describe(value))),
    }
}

/// The value as `kind`'s type, if it has that type; an integer is also a fine float.
fn convert(kind: ParamKind, value: &Value) -> Option<ParamValue> {
    match kind {
        ParamKind::Int { .. } => value.as_i64().map(ParamValue::Int),
        ParamKind::Float { .. } => value.as_f64().map(ParamValue::Float),
        ParamKind::Bool => value.as_bool().map(ParamValue::Bool),
        ParamKind::DurationMs { .. } => value.as_u64().map(|ms| ParamValue::Duration(Duration::from_millis(ms))),
    }
}

/// A YAML value as an error message shows it.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::scenario) const GOOD: &str = "\
apiVersion: netcheck.dev/v1
kind: Scenario
metadata:
  name: mine
  description: Mine.
spec:
  checks:
    - id: clusterip/reachable
      params:
        requests: 30
        timeoutMs: 500
    - pod/direct
    - id: lb/distribution
      params: {minPValue: 0.01, minShareOfFair: 1}
    - id: clusterip/all-backends
";

    /// `GOOD` with line `line` (1-based) replaced.
    fn good_with(line: usize, replacement: &str) -> String {
        let mut lines: Vec<&str> = GOOD.lines().collect();
        lines[line - 1] = replacement;
        lines.join("\n") + "\n"
    }

    fn invalid(text: &str) -> (u64, u64, String) {
        match Scenario::from_yaml(text, "s.yaml") {
            Err(ScenarioError::Invalid { file, line, column, message }) => {
                assert_eq!(file, "s.yaml");
                (line, column, message)
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn parses_ids_params_and_defaults() {
        let s = Scenario::from_yaml(GOOD, "s.yaml").expect("valid");
        assert_eq!(s.name, "mine");
        assert_eq!(s.description, "Mine.");
        let ids: Vec<&str> = s.checks.iter().map(|c| c.id).collect();
        assert_eq!(ids, ["clusterip/reachable", "pod/direct", "lb/distribution", "clusterip/all-backends"]);
        let reach = &s.checks[0].params;
        assert_eq!(reach.get("requests"), Some(ParamValue::Int(30)));
        assert_eq!(reach.get("timeoutMs"), Some(ParamValue::Duration(Duration::from_millis(500))));
        assert!(reach.is_set("requests"));
        let direct = &s.checks[1].params;
        assert_eq!(direct.get("requestsPerBackend"), Some(ParamValue::Int(3)));
        assert!(!direct.is_set("requestsPerBackend"));
        let lb = &s.checks[2].params;
        assert_eq!(lb.get("minPValue"), Some(ParamValue::Float(0.01)));
        // An integer is a fine value for a float parameter.
        assert_eq!(lb.get("minShareOfFair"), Some(ParamValue::Float(1.0)));
        assert_eq!(lb.get("requests"), Some(ParamValue::Int(300)));
        assert_eq!(s.checks[3].spec().title, "ClusterIP reaches every ready backend");
    }

    #[test]
    fn unknown_check_id_points_at_the_id() {
        let (line, column, message) = invalid(&good_with(12, "    - pod/indirect"));
        assert_eq!((line, column), (12, 7));
        assert!(message.starts_with("unknown check id `pod/indirect` (known checks: "));
        assert!(message.contains("pod/direct"), "{message}");

        let (line, _, _) = invalid(&good_with(8, "    - id: clusterip/reachabl"));
        assert_eq!(line, 8);
    }

    #[test]
    fn unknown_param_points_at_the_key() {
        let (line, column, message) = invalid(&good_with(10, "        reqests: 30"));
        assert_eq!((line, column), (10, 9));
        assert_eq!(
            message,
            "check `clusterip/reachable` has no parameter `reqests` (parameters: requests, \
             timeoutMs)"
        );
    }

    #[test]
    fn param_of_check_without_params() {
        let text = format!("{GOOD}      params:\n        requests: 1\n");
        let (line, _, message) = invalid(&text);
        assert_eq!(line, 17);
        assert!(message.ends_with("(it takes no parameters)"), "{message}");
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let (line, column, message) = invalid(&good_with(10, "        requests: '30'"));
        assert_eq!((line, column), (10, 19));
        assert_eq!(
            message,
            "parameter `requests` of check `clusterip/reachable` must be an integer, found \
             string \"30\""
        );
        let (line, _, message) = invalid(&good_with(11, "        timeoutMs: 1.5"));
        assert_eq!(line, 11);
        assert!(message.ends_with("must be a whole number of milliseconds, found number 1.5"));
    }

    #[test]
    fn out_of_range_points_at_the_value() {
        let (line, column, message) = invalid(&good_with(10, "        requests: 0"));
        assert_eq!((line, column), (10, 19));
        assert_eq!(
            message,
            "parameter `requests` of check `clusterip/reachable` must be between 1 and 2000, \
             found 0"
        );
        let (line, _, message) = invalid(&good_with(14, "      params: {minPValue: 0.01, minShareOfFair: 2}"));
        assert_eq!(line, 14);
        assert!(message.ends_with("must be between 0 and 1, found 2"), "{message}");
        let (_, _, message) = invalid(&good_with(11, "        timeoutMs: -5"));
        assert!(message.ends_with("must be between 1 and 60000 ms, found -5"), "{message}");
    }

    #[test]
    fn wrong_api_version_or_kind() {
        let (line, column, message) = invalid(&good_with(1, "apiVersion: netcheck.dev/v2"));
        assert_eq!((line, column), (1, 13));
        assert_eq!(message, "apiVersion must be `netcheck.dev/v1`, found `netcheck.dev/v2`");
        let (line, _, message) = invalid(&good_with(2, "kind: Deployment"));
        assert_eq!(line, 2);
        assert_eq!(message, "kind must be `Scenario`, found `Deployment`");
    }

    #[test]
    fn malformed_yaml_reports_its_position() {
        let (line, column, message) = invalid(&good_with(10, "        requests: 30: 40"));
        assert_eq!((line, column), (10, 21));
        assert_eq!(message, "mapping values are not allowed in this context");
        let (line, column, message) = invalid(&good_with(10, "\trequests: 30"));
        assert_eq!((line, column), (10, 2));
        assert!(message.starts_with("tabs disallowed"), "{message}");
        let (line, column, message) = invalid(&good_with(11, "        requests: 5"));
        assert_eq!((line, column), (11, 9));
        assert_eq!(message, "duplicate mapping key: requests");
        let (line, column, message) = invalid(&good_with(7, "  chcks:"));
        assert_eq!((line, column), (7, 3));
        assert!(message.contains("unknown field `chcks`"), "{message}");
        // The location is given once, as the prefix, not repeated at the end.
        assert!(!message.contains("line 7"), "{message}");
    }

    #[test]
    fn shape_errors() {
        let (line, _, message) = invalid(&good_with(12, "    - 42"));
        assert_eq!(line, 12);
        assert!(message.contains("a check id, or a mapping"), "{message}");
        let (line, _, message) = invalid(&good_with(14, "      params: 5"));
        assert_eq!(line, 14);
        assert!(message.ends_with("expected a mapping of parameter names to values"));
        let (line, _, message) = invalid(&good_with(12, "    - params: {}"));
        assert_eq!(line, 12);
        assert_eq!(message, "missing field `id`");
        let (line, _, message) = invalid(&good_with(4, "  name: ''"));
        assert_eq!(line, 4);
        assert_eq!(message, "metadata.name must not be empty");
        let (line, _, message) = invalid(&good_with(15, "    - id: pod/direct"));
        assert_eq!(line, 15);
        assert_eq!(message, "check `pod/direct` is selected twice (first at line 12)");
        let empty = "apiVersion: netcheck.dev/v1\nkind: Scenario\nmetadata: {name: e}\nspec:\n  \
                     checks: []\n";
        let (line, _, message) = invalid(empty);
        assert_eq!(line, 5);
        assert_eq!(message, "spec.checks must select at least one check");
    }

    #[test]
    fn error_display_is_file_line_column_message() {
        let err = Scenario::from_yaml(&good_with(2, "kind: Pod"), "dir/s.yaml").unwrap_err();
        assert_eq!(err.to_string(), "dir/s.yaml:2:7: kind must be `Scenario`, found `Pod`");
    }
}
