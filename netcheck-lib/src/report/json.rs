//! The JSON rendering: the report model serialised, pretty-printed.
//!
//! The shape is documented as a JSON Schema in `docs/report-schema.json` and versioned by
//! [`SCHEMA_VERSION`](super::model::SCHEMA_VERSION); a unit test holds the two together.

use super::model::Report;

/// Renders `report` as pretty-printed JSON with a trailing newline.
///
/// # Panics
/// Never in practice: the model holds only strings, numbers, JSON values and string-keyed maps,
/// which always serialise.
///
/// ```
/// use netcheck::report::{ClusterInfo, CheckResult, Report, Status, Subject};
/// let result = |status| CheckResult::new("clusterip/reachable", status, Subject::from_node("node-a"), "20 of 20 answered");
/// let report = Report::from_results("abc123", "quick", ClusterInfo::default(), vec![result(Status::Fail)]);
/// let text = netcheck::report::json::render(&report);
/// assert!(text.contains(r#""schemaVersion": 1"#));
/// assert_eq!(netcheck::report::json::parse(&text).unwrap(), report);
/// ```
pub fn render(report: &Report) -> String {
    let mut text = serde_json::to_string_pretty(report).expect("a report always serialises");
    text.push('\n');
    text
}

/// Reads a report written by [`render`].
pub fn parse(text: &str) -> Result<Report, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Map, Value};

    use super::super::human::fixtures::sample_report;
    use super::super::model::{CheckResult, Status, Subject};
    use super::*;

    const SCHEMA: &str = include_str!("../../../docs/report-schema.json");

    #[test]
    fn round_trips() {
        let report = sample_report();
        let text = render(&report);
        assert!(text.ends_with("}\n"));
        assert_eq!(parse(&text).expect("parses"), report);
    }

    #[test]
    fn has_the_documented_keys() {
        let value: Value = serde_json::from_str(&render(&sample_report())).expect("json");
        for key in ["schemaVersion", "results", "summary", "cluster", "durationMillis"] {
            assert!(value.get(key).is_some(), "missing {key}");
        }
        let results = value["results"].as_array().expect("array");
        assert_eq!(results.len(), 5);
        for r in results {
            for key in ["check", "status", "subject", "message", "measurements"] {
                assert!(r.get(key).is_some(), "result lacks {key}: {r}");
            }
        }
        assert_eq!(results[1]["subject"]["targetNode"], "node-b");
        assert_eq!(results[2]["diagnosis"]["likelyCause"], "service proxy (kube-proxy) on node-b");
        assert_eq!(value["summary"]["fail"], 1);
    }

    #[test]
    fn parse_rejects_an_unknown_status() {
        let text = render(&sample_report()).replacen("\"pass\"", "\"passed\"", 1);
        assert!(parse(&text).is_err());
    }

    #[test]
    fn rendered_reports_match_the_schema() {
        let schema: Value = serde_json::from_str(SCHEMA).expect("schema is JSON");
        let mut full = sample_report();
        full.regressions = vec![super::super::baseline::Regression {
            check: "clusterip/reachable".into(),
            subject: "from node-a".into(),
            what: "pass → fail".into(),
        }];
        let full = serde_json::to_value(full).expect("json");
        let walk = conformance(&schema, &full);
        assert_eq!(walk.problems, Vec::<String>::new());
        // The sample sets every optional field, so the schema must declare nothing more.
        assert_eq!(walk.seen, declared_properties(&schema));
        // A minimal report: no phases, a result with nothing optional set.
        let mut minimal = sample_report();
        minimal.phases.clear();
        minimal.results = vec![CheckResult::new("c/x", Status::Skip, Subject::default(), "n/a")];
        let minimal = serde_json::to_value(minimal).expect("json");
        assert_eq!(conformance(&schema, &minimal).problems, Vec::<String>::new());
    }

    #[test]
    fn the_schema_walk_catches_violations() {
        let schema: Value = serde_json::from_str(SCHEMA).expect("schema is JSON");
        let mut doc = serde_json::to_value(sample_report()).expect("json");
        doc["results"][0]["status"] = "passed".into();
        doc["results"][1]["subject"]["node"] = "x".into();
        doc["cluster"].as_object_mut().expect("object").remove("version");
        doc["durationMillis"] = "soon".into();
        assert_eq!(
            conformance(&schema, &doc).problems,
            [
                "/cluster: missing required `version`",
                "/durationMillis: \"soon\" is not of type integer",
                "/results/0/status: \"passed\" not in enum",
                "/results/1/subject: unexpected key `node`",
            ]
        );
    }

    /// What a walk of a document against the schema found.
    #[derive(Default)]
    struct Walk {
        /// Where the document breaks the schema's `required`, `additionalProperties: false`,
        /// `enum`, `const` and `type` rules.
        problems: Vec<String>,
        /// Schema pointers of the properties the document used.
        seen: BTreeSet<String>,
    }

    /// Walks `doc` against `schema`, over the subset of JSON Schema that the report schema uses.
    fn conformance(schema: &Value, doc: &Value) -> Walk {
        let mut walk = Walk::default();
        walk.visit(schema, "", doc, "");
        walk
    }

    /// Schema pointers of every property the schema declares.
    fn declared_properties(schema: &Value) -> BTreeSet<String> {
        let mut declared = BTreeSet::new();
        let mut add = |loc: String, object: &Value| {
            for key in object["properties"].as_object().into_iter().flat_map(|p| p.keys()) {
                declared.insert(format!("{loc}/properties/{key}"));
            }
        };
        add(String::new(), schema);
        for (name, def) in schema["$defs"].as_object().expect("$defs") {
            add(format!("/$defs/{name}"), def);
        }
        declared
    }

    impl Walk {
        /// Checks `doc` (at document pointer `at`) against the schema node at pointer `loc`.
        fn visit(&mut self, root: &Value, loc: &str, doc: &Value, at: &str) {
            let schema = root.pointer(loc).expect("schema pointer resolves");
            if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
                let target = reference.strip_prefix('#').expect("local $ref");
                return self.visit(root, target, doc, at);
            }
            self.check_value(schema, doc, at);
            if let (Some(object), Some(_)) = (doc.as_object(), schema.get("properties")) {
                self.visit_object(root, loc, object, at);
            }
            if let (Some(items), Some(_)) = (doc.as_array(), schema.get("items")) {
                for (i, item) in items.iter().enumerate() {
                    self.visit(root, &format!("{loc}/items"), item, &format!("{at}/{i}"));
                }
            }
        }

        fn check_value(&mut self, schema: &Value, doc: &Value, at: &str) {
            if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
                && !allowed.contains(doc)
            {
                self.problems.push(format!("{at}: {doc} not in enum"));
            }
            if let Some(want) = schema.get("const")
                && want != doc
            {
                self.problems.push(format!("{at}: {doc} is not {want}"));
            }
            if let Some(ty) = schema.get("type").and_then(Value::as_str)
                && !has_type(doc, ty)
            {
                self.problems.push(format!("{at}: {doc} is not of type {ty}"));
            }
        }

        fn visit_object(&mut self, root: &Value, loc: &str, object: &Map<String, Value>, at: &str) {
            let schema = root.pointer(loc).expect("schema pointer resolves");
            let properties = schema["properties"].as_object().expect("properties object");
            let required = schema.get("required").and_then(Value::as_array);
            for key in required.into_iter().flatten().filter_map(Value::as_str) {
                if !object.contains_key(key) {
                    self.problems.push(format!("{at}: missing required `{key}`"));
                }
            }
            let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
            for (key, value) in object {
                let sub = format!("{loc}/properties/{key}");
                if properties.contains_key(key) {
                    self.seen.insert(sub.clone());
                    self.visit(root, &sub, value, &format!("{at}/{key}"));
                } else if closed {
                    self.problems.push(format!("{at}: unexpected key `{key}`"));
                }
            }
        }
    }

    fn has_type(doc: &Value, ty: &str) -> bool {
        match ty {
            "object" => doc.is_object(),
            "array" => doc.is_array(),
            "string" => doc.is_string(),
            "integer" => doc.is_i64() || doc.is_u64(),
            "number" => doc.is_number(),
            "boolean" => doc.is_boolean(),
            other => panic!("schema uses type {other}, which this walk does not know"),
        }
    }
}
