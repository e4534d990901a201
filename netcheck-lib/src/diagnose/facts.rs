//! What the API says about a Service and what stands behind it, read once, without creating anything.

use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Service};
use kube::api::{Api, ListParams};

use crate::runner::Cluster;
use crate::runner::endpoints;
pub(crate) use crate::runner::endpoints::Endpoint;
use crate::runner::inventory::{self, NodeInfo};
use crate::{Error, Result};

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
    let endpoints = if service.is_some() { endpoints::list(cluster, ns, name).await? } else { Vec::new() };
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
