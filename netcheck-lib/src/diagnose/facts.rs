//! What the API says about a Service and what stands behind it, read once, without creating anything.

use k8s_openapi::api::core::v1::{Endpoints, Event, Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};

use crate::runner::Cluster;
use crate::runner::endpoints::{self, EndpointAddress};
use crate::runner::inventory::{self, NodeInfo};
use crate::{Error, Result};

/// One port of an endpoint, as the endpoints controller resolved the Service's targetPort.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndpointPort {
    /// The Service port's name (empty or None for an unnamed single port).
    pub name: Option<String>,
    /// The resolved port number on the pod.
    pub port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
}

/// One endpoint address with the ports it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Address, backing pod and readiness.
    pub address: EndpointAddress,
    /// Ports served at that address.
    pub ports: Vec<EndpointPort>,
}

/// Everything the read-only steps look at.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// Whether the namespace exists (None: not allowed to ask).
    pub namespace_exists: Option<bool>,
    /// The Service, if it exists.
    pub service: Option<Service>,
    /// Names of the other Services in the namespace (for "did you mean").
    pub service_names: Vec<String>,
    /// Every pod of the namespace.
    pub pods: Vec<Pod>,
    /// The namespace's pod events (probe failures, scheduling failures, back-offs).
    pub events: Vec<Event>,
    /// The Service's endpoints (EndpointSlices, or Endpoints where those are not served).
    pub endpoints: Vec<Endpoint>,
    /// The cluster's nodes.
    pub nodes: Vec<NodeInfo>,
}

/// Reads the facts about `ns/name`. A missing Service is a fact, not an error.
pub async fn gather(cluster: &Cluster, ns: &str, name: &str) -> Result<Facts> {
    let client = cluster.client.clone();
    let namespace_exists = Api::<Namespace>::all(client.clone()).get_opt(ns).await.ok().map(|n| n.is_some());
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let list =
        services.list(&ListParams::default()).await.map_err(|e| Error::api(format!("listing Services in {ns}"), e))?;
    let service = list.items.iter().find(|s| s.metadata.name.as_deref() == Some(name)).cloned();
    let service_names = list.items.iter().filter_map(|s| s.metadata.name.clone()).collect();
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::api(format!("listing pods in {ns}"), e))?
        .items;
    // Events are evidence, not essentials: a user who may not list them still gets a diagnosis.
    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default().fields("involvedObject.kind=Pod"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let endpoints = if service.is_some() { endpoints_of(cluster, ns, name).await? } else { Vec::new() };
    // Nodes matter only to the node-port step; a user who may not list them still gets the rest.
    let nodes = inventory::nodes(cluster).await.unwrap_or_default();
    Ok(Facts {
        namespace: ns.to_string(),
        name: name.to_string(),
        namespace_exists,
        service,
        service_names,
        pods,
        events,
        endpoints,
        nodes,
    })
}

async fn endpoints_of(cluster: &Cluster, ns: &str, name: &str) -> Result<Vec<Endpoint>> {
    if cluster.has_endpoint_slices {
        let api: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), ns);
        let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
        let list = api.list(&lp).await.map_err(|e| Error::api("listing EndpointSlices", e))?;
        Ok(from_slices(&list.items))
    } else {
        let api: Api<Endpoints> = Api::namespaced(cluster.client.clone(), ns);
        let ep = api.get_opt(name).await.map_err(|e| Error::api("reading Endpoints", e))?;
        Ok(ep.as_ref().map(from_endpoints).unwrap_or_default())
    }
}

/// Endpoints with their ports from EndpointSlices.
pub fn from_slices(slices: &[EndpointSlice]) -> Vec<Endpoint> {
    slices
        .iter()
        .flat_map(|slice| {
            let ports: Vec<EndpointPort> = slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    Some(EndpointPort {
                        name: p.name.clone().filter(|n| !n.is_empty()),
                        port: p.port?,
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    })
                })
                .collect();
            endpoints::from_slice(slice).into_iter().map(move |address| Endpoint { address, ports: ports.clone() })
        })
        .collect()
}

/// Endpoints with their ports from a core/v1 Endpoints object (one subset at a time).
pub fn from_endpoints(ep: &Endpoints) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                port: p.port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            })
            .collect();
        let one = Endpoints { subsets: Some(vec![subset.clone()]), ..Default::default() };
        out.extend(
            endpoints::from_endpoints(&one).into_iter().map(|address| Endpoint { address, ports: ports.clone() }),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_slices_give_the_same_addresses_and_ports() {
        let ep: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "subsets": [{
                "addresses": [{"ip": "10.244.1.5", "targetRef": {"kind": "Pod", "name": "web-1"}}],
                "notReadyAddresses": [{"ip": "10.244.2.6", "targetRef": {"kind": "Pod", "name": "web-2"}}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
            }]
        }))
        .unwrap();
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.244.1.5"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "web-1"}},
                {"addresses": ["10.244.2.6"], "conditions": {"ready": false}, "targetRef": {"kind": "Pod", "name": "web-2"}}
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }))
        .unwrap();
        let mut a = from_endpoints(&ep);
        let mut b = from_slices(&[slice]);
        a.sort_by(|x, y| x.address.cmp(&y.address));
        b.sort_by(|x, y| x.address.cmp(&y.address));
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        assert!(a[0].address.ready && !a[1].address.ready);
        assert_eq!(a[0].ports, vec![EndpointPort { name: Some("http".into()), port: 8080, protocol: "TCP".into() }]);
    }
}
