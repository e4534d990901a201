//! What the cluster said about its nodes during a watch: the Events on Node objects (cordon,
//! NotReady, kubelet and kube-proxy starts), placed beside the outages they may explain.

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

use super::judge::NodeEvent;
use crate::runner::Cluster;

/// Node events since `since_ms`, oldest first. Reading events is optional: a user who may not list
/// them gets a timeline without them (logged), never a failed watch.
pub(super) async fn node_events(cluster: &Cluster, since_ms: u64) -> Vec<NodeEvent> {
    let api: Api<Event> = Api::all(cluster.client.clone());
    let list = match api.list(&ListParams::default().fields("involvedObject.kind=Node")).await {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list node events; the timeline will not show them");
            return Vec::new();
        }
    };
    let mut events: Vec<NodeEvent> = list.items.iter().filter_map(node_event).filter(|e| e.at_ms >= since_ms).collect();
    events.sort_by(|a, b| (a.at_ms, &a.node).cmp(&(b.at_ms, &b.node)));
    events
}

/// The reasons that say what a node went through (cordon, readiness, restarts of its components);
/// the rest (pressure conditions, allocatable updates) would bury them.
const TELLING_REASONS: &[&str] = &[
    "NodeNotSchedulable",
    "NodeSchedulable",
    "NodeNotReady",
    "NodeReady",
    "Starting",
    "Rebooted",
    "Shutdown",
    "RemovingNode",
    "DeletingNode",
];

/// The event's node, reason (with the component that reported it) and latest time (an event repeated
/// with a count keeps its last time); None for events that do not say what the node went through.
fn node_event(e: &Event) -> Option<NodeEvent> {
    let reason = e.reason.clone().filter(|r| TELLING_REASONS.contains(&r.as_str()))?;
    let time = e
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
    Some(NodeEvent {
        at_ms: time.as_millisecond().max(0) as u64,
        node: e.involved_object.name.clone()?,
        reason: match reporter(e) {
            Some(component) => format!("{reason} ({component})"),
            None => reason,
        },
    })
}

/// Who reported the event: kubelet, kube-proxy, node-controller, …
fn reporter(e: &Event) -> Option<String> {
    let from_source = e.source.as_ref().and_then(|s| s.component.clone());
    from_source.or_else(|| e.reporting_component.clone()).filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn an_event_is_placed_at_its_last_time() {
        let first: jiff::Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
        let last: jiff::Timestamp = "2026-12-04T10:00:05Z".parse().unwrap();
        let e = Event {
            involved_object: ObjectReference {
                kind: Some("Node".into()),
                name: Some("node-b".into()),
                ..Default::default()
            },
            reason: Some("NodeNotSchedulable".into()),
            first_timestamp: Some(Time(first)),
            last_timestamp: Some(Time(last)),
            ..Default::default()
        };
        let seen = node_event(&e).unwrap();
        assert_eq!((seen.node.as_str(), seen.reason.as_str()), ("node-b", "NodeNotSchedulable"));
        assert_eq!(seen.at_ms, last.as_millisecond() as u64);
        let proxy = Event {
            reason: Some("Starting".into()),
            source: Some(EventSource { component: Some("kube-proxy".into()), ..Default::default() }),
            ..e.clone()
        };
        assert_eq!(node_event(&proxy).unwrap().reason, "Starting (kube-proxy)");
        let noise = Event { reason: Some("NodeHasSufficientMemory".into()), ..e };
        assert!(node_event(&noise).is_none(), "pressure conditions are left out");
        assert!(node_event(&Event::default()).is_none(), "no reason or time: no event");
    }
}
