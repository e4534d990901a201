//! The read-only walk on fixture objects: `fixtures/diagnose/service-web.json` is a healthy Service;
//! each test breaks one link the way users do and checks that exactly that link is named.

use serde_json::{Value, json};

use super::*;
use crate::diagnose::facts::Facts;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/diagnose/service-web.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn facts_of(doc: &Value) -> Facts {
    let service: Option<Service> = serde_json::from_value(doc["service"].clone()).ok();
    let mut service_names: Vec<String> = serde_json::from_value(doc["otherServices"].clone()).unwrap();
    service_names.extend(service.as_ref().and_then(|s| s.metadata.name.clone()));
    Facts {
        namespace: "shop".into(),
        name: "web".into(),
        namespace_exists: Some(true),
        service,
        service_names,
        pods: serde_json::from_value(doc["pods"].clone()).unwrap(),
        events: serde_json::from_value(doc["events"].clone()).unwrap(),
        endpoints: crate::runner::endpoints::with_ports_from_endpoints(
            &serde_json::from_value(doc["endpoints"].clone()).unwrap(),
        ),
        nodes: Vec::new(),
    }
}

fn walk_of(doc: &Value) -> Vec<Step> {
    walk(&facts_of(doc), None).unwrap()
}

/// The id of the failing step, which must also be the last one walked.
fn broken(steps: &[Step]) -> &Step {
    let failed: Vec<&Step> = steps.iter().filter(|s| s.status == StepStatus::Fail).collect();
    assert_eq!(failed.len(), 1, "{steps:#?}");
    assert_eq!(steps.last().unwrap().id, failed[0].id, "the walk goes on after a broken link: {steps:#?}");
    failed[0]
}

#[test]
fn a_healthy_service_passes_every_read_only_step() {
    let steps = walk_of(&fixture());
    let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [SERVICE, SELECTOR, PODS_READY, TARGET_PORT, ENDPOINTS]);
    assert!(steps.iter().all(|s| s.status == StepStatus::Pass), "{steps:#?}");
    assert_eq!(steps[0].summary, "service/web: ClusterIP 10.96.40.7, ports http 80→8080/TCP");
    assert_eq!(steps[1].summary, "selector app=web,tier=front matches 2 pods");
    assert_eq!(steps[4].evidence[0], "ready: 10.244.1.21:8080 (web-6d9f-a1), 10.244.2.22:8080 (web-6d9f-b2)");
    assert!(
        steps[0].evidence.iter().any(|e| e.contains("Service port 80") && e.contains("port 8080 (targetPort)")),
        "{:?}",
        steps[0]
    );
}

#[test]
fn a_missing_service_suggests_similar_names() {
    let mut doc = fixture();
    doc["service"] = Value::Null;
    let mut facts = facts_of(&doc);
    facts.name = "web-admn".into();
    let steps = walk(&facts, None).unwrap();
    let step = broken(&steps);
    assert_eq!(step.id, SERVICE);
    assert_eq!(step.summary, "no Service named web-admn in namespace shop");
    let fix = step.fix.as_deref().unwrap();
    assert!(fix.starts_with("did you mean service/web-admin"), "{fix}");
    assert!(!fix.contains("db"), "{fix}");
}

#[test]
fn a_missing_namespace_is_named_as_such() {
    let mut doc = fixture();
    doc["service"] = Value::Null;
    let mut facts = facts_of(&doc);
    facts.namespace_exists = Some(false);
    let steps = walk(&facts, None).unwrap();
    assert_eq!(broken(&steps).summary, "namespace shop does not exist");
}

#[test]
fn a_selector_that_matches_nothing_names_the_label_that_differs() {
    let mut doc = fixture();
    doc["service"]["spec"]["selector"] = json!({"app": "web", "tier": "frontend"});
    let steps = walk_of(&doc);
    let step = broken(&steps);
    assert_eq!(step.id, SELECTOR);
    assert_eq!(step.summary, "selector app=web,tier=frontend matches no running pod in shop");
    assert!(
        step.evidence[0].starts_with("nearest pod web-6d9f-a1: has tier=front, the selector wants tier=frontend"),
        "{:?}",
        step.evidence
    );
    assert!(step.evidence.iter().all(|e| !e.contains("db-0")), "db-0 shares no label: {:?}", step.evidence);
}

/// `doc` with both pods of the Service not Ready, and their addresses moved to notReadyAddresses.
fn never_ready(mut doc: Value) -> Value {
    for i in 0..2 {
        doc["pods"][i]["status"]["conditions"][1]["status"] = json!("False");
        doc["pods"][i]["status"]["containerStatuses"][0]["ready"] = json!(false);
    }
    doc["endpoints"]["subsets"][0]["notReadyAddresses"] = doc["endpoints"]["subsets"][0]["addresses"].clone();
    doc["endpoints"]["subsets"][0]["addresses"] = json!([]);
    doc
}

#[test]
fn pods_that_never_turn_ready_show_the_readiness_probe_message() {
    let doc = never_ready(fixture());
    let steps = walk_of(&doc);
    let step = broken(&steps);
    assert_eq!(step.id, PODS_READY);
    assert_eq!(step.summary, "none of the 2 selected pods is Ready");
    assert_eq!(
        step.evidence[0],
        "web-6d9f-a1: Running, readiness probe failing (7 times): Readiness probe failed: HTTP probe failed with statuscode: 503"
    );
    assert!(step.fix.as_deref().unwrap().contains("readiness probe"));
}

#[test]
fn crash_loops_and_unschedulable_pods_say_so() {
    let mut doc = fixture();
    let crash = &mut doc["pods"][0]["status"];
    crash["conditions"][1]["status"] = json!("False");
    crash["containerStatuses"][0]["restartCount"] = json!(4);
    crash["containerStatuses"][0]["state"] = json!({"waiting": {"reason": "CrashLoopBackOff"}});
    crash["containerStatuses"][0]["lastState"] =
        json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": null, "finishedAt": null}});
    let pod: Pod = serde_json::from_value(doc["pods"][0].clone()).unwrap();
    assert_eq!(not_ready_reason(&pod, &[]), "container web in CrashLoopBackOff (4 restarts; last exit code 1 (Error))");
    let pending: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": "0/2 nodes are available: 2 Insufficient memory."}]}}))
    .unwrap();
    assert_eq!(
        not_ready_reason(&pending, &[]),
        "Pending, not scheduled: Unschedulable: 0/2 nodes are available: 2 Insufficient memory."
    );
}

#[test]
fn a_numeric_target_port_the_pods_do_not_declare_is_named() {
    let mut doc = fixture();
    doc["service"]["spec"]["ports"][0]["targetPort"] = json!(8081);
    doc["endpoints"]["subsets"][0]["ports"][0]["port"] = json!(8081);
    let steps = walk_of(&doc);
    let step = broken(&steps);
    assert_eq!(step.id, TARGET_PORT);
    assert_eq!(step.summary, "port http: targetPort 8081/TCP is not a containerPort of the Ready pods");
    assert_eq!(step.evidence, ["the pods declare: http 8080/TCP"]);
}

#[test]
fn a_named_target_port_the_pods_do_not_define_is_the_cause_not_the_empty_endpoints() {
    let mut doc = fixture();
    doc["service"]["spec"]["ports"][0]["targetPort"] = json!("web");
    // What the endpoints controller then writes: the pods, but no address for the unresolvable port.
    doc["endpoints"]["subsets"] = json!([]);
    let steps = walk_of(&doc);
    let step = broken(&steps);
    assert_eq!(step.id, TARGET_PORT);
    assert_eq!(step.summary, "port http: targetPort 'web' is not the name of a TCP containerPort of any Ready pod");
}

#[test]
fn pods_without_declared_ports_leave_the_port_to_the_active_steps() {
    let mut doc = fixture();
    for i in 0..2 {
        doc["pods"][i]["spec"]["containers"][0]["ports"] = Value::Null;
    }
    let steps = walk_of(&doc);
    assert!(steps.iter().all(|s| s.status == StepStatus::Pass), "{steps:#?}");
    let target = steps.iter().find(|s| s.id == TARGET_PORT).unwrap();
    assert!(target.evidence[0].contains("the pod-ip step checks that 8080 answers"), "{target:?}");
}

#[test]
fn ready_pods_missing_from_the_endpoints_point_at_the_endpoints_controller() {
    let mut doc = fixture();
    doc["endpoints"]["subsets"][0]["addresses"].as_array_mut().unwrap().pop();
    let steps = walk_of(&doc);
    let step = broken(&steps);
    assert_eq!(step.id, ENDPOINTS);
    assert_eq!(step.evidence.last().unwrap(), "Ready pods not listed: web-6d9f-b2");
    assert!(step.fix.as_deref().unwrap().contains("kube-controller-manager"));
}

#[test]
fn external_name_and_selectorless_services_skip_the_pod_links() {
    let mut doc = fixture();
    doc["service"]["spec"] = json!({"type": "ExternalName", "externalName": "db.example.invalid"});
    let steps = walk_of(&doc);
    assert_eq!(steps[0].summary, "service/web is an ExternalName Service for db.example.invalid");
    assert!(steps[1..].iter().all(|s| s.status == StepStatus::Skip), "{steps:#?}");

    let mut doc = fixture();
    doc["service"]["spec"]["selector"] = Value::Null;
    let steps = walk_of(&doc);
    let ids: Vec<(&str, StepStatus)> = steps.iter().map(|s| (s.id.as_str(), s.status)).collect();
    assert_eq!(
        ids,
        [
            (SERVICE, StepStatus::Pass),
            (SELECTOR, StepStatus::Skip),
            (PODS_READY, StepStatus::Skip),
            (TARGET_PORT, StepStatus::Skip),
            (ENDPOINTS, StepStatus::Pass)
        ]
    );
}

#[test]
fn an_unknown_port_is_an_input_error_listing_the_ports() {
    let facts = facts_of(&fixture());
    let err = walk(&facts, Some("9090")).unwrap_err().to_string();
    assert_eq!(err, "service/web has no port '9090' (its ports: http 80→8080/TCP)");
    assert_eq!(walk(&facts, Some("http")).unwrap().len(), 5);
    assert_eq!(walk(&facts, Some("80")).unwrap().len(), 5);
}

#[test]
fn edit_distance_counts_single_character_edits() {
    assert_eq!(edit_distance("web", "web"), 0);
    assert_eq!(edit_distance("webb", "web"), 1);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(similar_names("frontend", &["frontend-v2".into(), "backend".into(), "zzz".into()]), ["frontend-v2"]);
}

/// Hostile cluster data: whatever the API holds, the walk ends with a result of bounded size.
fn assert_bounded(steps: &[Step]) {
    for s in steps {
        assert!(s.summary.chars().count() <= 500, "summary of {} has {} chars", s.id, s.summary.chars().count());
        for e in &s.evidence {
            assert!(e.chars().count() <= 1000, "evidence of {} has {} chars", s.id, e.chars().count());
        }
    }
}

#[test]
fn a_service_with_a_hundred_ports_is_walked_and_said_briefly() {
    let mut doc = fixture();
    let ports: Vec<Value> = (1..=100)
        .map(|i| json!({"name": format!("p{i}"), "port": 1000 + i, "targetPort": 9000 + i, "protocol": "TCP"}))
        .collect();
    doc["service"]["spec"]["ports"] = json!(ports);
    let steps = walk_of(&doc);
    assert_bounded(&steps);
    let step = broken(&steps);
    assert_eq!(step.id, TARGET_PORT, "no pod declares ports 9001-9100: {step:#?}");
}

#[test]
fn an_event_with_a_huge_message_is_cut() {
    let mut doc = never_ready(fixture());
    doc["events"][0]["message"] = json!(format!("Readiness probe failed: {}", "x".repeat(1 << 20)));
    let steps = walk_of(&doc);
    assert_bounded(&steps);
    let step = broken(&steps);
    assert_eq!(step.id, PODS_READY);
    assert!(
        step.evidence[0]
            .starts_with("web-6d9f-a1: Running, readiness probe failing (7 times): Readiness probe failed: xxx")
    );
}
