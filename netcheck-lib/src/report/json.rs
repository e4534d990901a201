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

    use serde_json::Value;

    use super::super::human::fixtures::sample_report;
    use super::super::model::{CheckResult, Status, Subject};
    use super::*;
    use crate::schema_walk::{conformance, declared_properties};

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
        full.timeline = super::super::human::fixtures::sample_timeline();
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
}
