//! The fuzz targets' bodies (`fuzz/`, run by `scripts/fuzz.sh`): each takes one input of arbitrary
//! text, drives the code that reads untrusted data with it, and panics only where that code would.
//! They live here, not in `fuzz/`, for two reasons: the DNS comparison and the diagnose walk are
//! crate-private, and the unit test below replays every kept input (`fixtures/fuzz/TARGET/`) on the
//! stable toolchain in `make unit`, so what a fuzzer once found stays fixed without nightly.
//!
//! Not a stable API: hidden from the documentation, for `fuzz/` and the replay test only.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Endpoints, Event, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::checks::dns_expect::{self, Expected};
use crate::diagnose::facts::Facts;
use crate::diagnose::read_only;
use crate::protocol::watch::{Observation, WatchPlan, WatchRecord};
use crate::protocol::{parse_order, parse_result};
use crate::runner::endpoints::{self, EndpointAddress};
use crate::scenario::Scenario;

/// The agent protocol's decoders: an order, a result, a watch plan and a watch record are each
/// refused with a message or decoded, and what decodes survives its own arithmetic (an order's budget
/// and split, a record's resume and observations at the ends of the clock). Returns how many of the
/// four decoders accepted the input.
pub fn protocol(text: &str) -> usize {
    let mut accepted = 0;
    if let Ok(order) = parse_order(text) {
        let _ = order.deadline();
        let _ = order.action.split();
        accepted += 1;
    }
    accepted += usize::from(parse_result(text).is_ok());
    accepted += usize::from(WatchPlan::parse(text).is_ok());
    if let Ok(record) = WatchRecord::parse(text) {
        accepted += 1;
        let mut resumed = record.resume("fuzz", u64::MAX / 2);
        for path in resumed.paths.values_mut() {
            path.observe(&Observation { start_ms: u64::MAX / 2, elapsed_ms: u64::MAX / 4, error: None });
            path.observe(&Observation { start_ms: 0, elapsed_ms: u64::MAX / 4, error: Some("x".into()) });
        }
    }
    accepted
}

/// The scenario parser: a document is accepted, or refused with an error that starts with the file's
/// name (`FILE:LINE:COL: message`). Returns whether it was accepted.
pub fn scenario(text: &str) -> bool {
    match Scenario::from_yaml(text, "fuzz.yaml") {
        Ok(_) => true,
        Err(e) => {
            assert!(e.to_string().starts_with("fuzz.yaml"), "an error that does not say where: {e}");
            false
        }
    }
}

/// The DNS answer comparison on a JSON document `{"service": Service, "slices": [EndpointSlice],
/// "domain": "...", "records": ["..."]}` (any field may be missing or wrong): every answer the
/// specification requires for that Service is computed, described and compared with `records`.
/// Returns how many expectations were computed, or None when the input is not a JSON object.
pub fn dns_answers(text: &str) -> Option<usize> {
    let doc: Value = serde_json::from_str(text).ok()?;
    let svc: Service = field(&doc, "service");
    let slices: Vec<EndpointSlice> = field(&doc, "slices");
    let domain: String = field(&doc, "domain");
    let records: Vec<String> = field(&doc, "records");
    let addresses: Vec<EndpointAddress> = slices.iter().flat_map(endpoints::from_slice).collect();
    let ports: BTreeMap<String, u16> = endpoints::with_ports_from_slices(&slices)
        .iter()
        .flat_map(|e| e.ports.iter())
        .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.port).ok()?)))
        .collect();

    let mut expected: Vec<Expected> = Vec::new();
    expected.extend(dns_expect::service_a(&svc, &addresses));
    expected.extend(dns_expect::external_cname(&svc));
    expected.extend(dns_expect::cluster_ip_ptr(&svc, &domain).map(|(_, e)| e));
    expected.extend(
        dns_expect::service_srv(&svc, &addresses, |name| ports.get(name).copied(), &domain).into_iter().map(|(_, e)| e),
    );
    expected.extend(dns_expect::pod_hostnames(&svc, &addresses, &domain).into_iter().map(|(_, e)| e));
    for e in &expected {
        let _ = e.describe();
        let _ = e.matches(&records);
    }
    Some(expected.len())
}

/// Diagnose's read-only walk on a JSON document shaped like `fixtures/diagnose/service-web.json`
/// (`service`, `pods`, `events`, `endpoints` or `slices`, `port`; any field may be missing or wrong).
/// Returns how many steps were walked, or None when the input is not JSON or names no port of the
/// Service (an input error, as the CLI reports it).
pub fn diagnose_read_only(text: &str) -> Option<usize> {
    let doc: Value = serde_json::from_str(text).ok()?;
    let service: Option<Service> = field(&doc, "service");
    let slices: Vec<EndpointSlice> = field(&doc, "slices");
    let mut found = endpoints::with_ports_from_slices(&slices);
    found.extend(endpoints::with_ports_from_endpoints(&field::<Endpoints>(&doc, "endpoints")));
    let facts = Facts {
        namespace: "fuzz".into(),
        name: service.as_ref().and_then(|s| s.metadata.name.clone()).unwrap_or_default(),
        namespace_exists: Some(true),
        service_names: field(&doc, "otherServices"),
        service,
        pods: field::<Vec<Pod>>(&doc, "pods"),
        events: field::<Vec<Event>>(&doc, "events"),
        endpoints: found,
        nodes: Vec::new(),
    };
    let port: Option<String> = field(&doc, "port");
    let steps = read_only::walk(&facts, port.as_deref()).ok()?;
    Some(steps.len())
}

/// `doc[name]` as a `T`, or `T`'s default when it is missing or not a `T`: a fuzzer's document is
/// mostly wrong, and one wrong field must not stop the rest from being tried.
fn field<T: DeserializeOwned + Default>(doc: &Value, name: &str) -> T {
    doc.get(name).and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn kept_inputs(target: &str) -> Vec<(PathBuf, String)> {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/fuzz")).join(target);
        let mut inputs: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter_map(|path| {
                let bytes = std::fs::read(&path).unwrap();
                // libFuzzer's inputs are bytes; the targets skip what is not UTF-8, as here.
                String::from_utf8(bytes).ok().map(|text| (path, text))
            })
            .collect();
        inputs.sort();
        inputs
    }

    #[test]
    fn every_kept_protocol_input_replays_and_the_seeds_decode() {
        let inputs = kept_inputs("protocol");
        assert!(inputs.len() >= 3, "the seeds are missing");
        let accepted: usize = inputs.iter().map(|(_, text)| protocol(text)).sum();
        for seed in ["order-http.json", "plan.json", "record.json"] {
            let (_, text) = inputs.iter().find(|(p, _)| p.ends_with(seed)).expect(seed);
            assert_eq!(protocol(text), 1, "{seed} should decode as exactly one message kind");
        }
        assert!(accepted >= 3);
    }

    #[test]
    fn every_kept_scenario_input_replays_and_the_shipped_scenarios_parse() {
        let inputs = kept_inputs("scenario");
        for (path, text) in &inputs {
            let accepted = scenario(text);
            if path.extension().is_some_and(|e| e == "yaml") {
                assert!(accepted, "{} is a seed and must parse", path.display());
            }
        }
    }

    #[test]
    fn every_kept_dns_input_replays_and_the_seed_yields_each_kind_of_answer() {
        let inputs = kept_inputs("dns");
        for (_, text) in &inputs {
            let _ = dns_answers(text);
        }
        let (_, seed) = inputs.iter().find(|(p, _)| p.ends_with("headless.json")).expect("the seed");
        // A for the Service, one SRV for its named port, one name per pod hostname.
        assert_eq!(dns_answers(seed), Some(3));
    }

    #[test]
    fn every_kept_diagnose_input_replays_and_the_healthy_fixture_walks_every_step() {
        for (_, text) in &kept_inputs("diagnose") {
            let _ = diagnose_read_only(text);
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/diagnose/service-web.json");
        let healthy = std::fs::read_to_string(path).unwrap();
        assert_eq!(diagnose_read_only(&healthy), Some(5));
        assert_eq!(diagnose_read_only("not json"), None);
        assert_eq!(diagnose_read_only(r#"{"service": 7}"#), Some(1), "no Service: the walk stops at the first step");
    }
}
