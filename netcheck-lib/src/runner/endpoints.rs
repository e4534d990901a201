//! The ready backends of a Service as the API sees them: EndpointSlices (discovery.k8s.io/v1) where
//! served, core/v1 Endpoints otherwise (Kubernetes 1.20 and older).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};

use super::Cluster;
use crate::{Error, Result};

/// One endpoint address of a Service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndpointAddress {
    /// The address.
    pub ip: String,
    /// The backing pod, when the endpoint names one.
    pub pod: Option<String>,
    /// Whether the endpoint is ready (receives traffic).
    pub ready: bool,
    /// The endpoint's hostname (a pod with `hostname` whose `subdomain` is this Service), which gives
    /// it a DNS name under a headless Service.
    pub hostname: Option<String>,
    /// The node the endpoint is on, when the API says (kube-proxy's health check for
    /// `externalTrafficPolicy: Local` counts the ready endpoints on its own node).
    pub node: Option<String>,
}

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

/// Every endpoint of `service` with the ports it serves, ready or not: the one read of a Service's
/// endpoints from the API (EndpointSlices where served, Endpoints otherwise).
pub async fn list(cluster: &Cluster, ns: &str, service: &str) -> Result<Vec<Endpoint>> {
    if cluster.has_endpoint_slices {
        let api: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), ns);
        let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
        let list = api.list(&lp).await.map_err(|e| Error::api("listing EndpointSlices", e))?;
        Ok(with_ports_from_slices(&list.items))
    } else {
        let api: Api<Endpoints> = Api::namespaced(cluster.client.clone(), ns);
        let ep = api.get_opt(service).await.map_err(|e| Error::api("reading Endpoints", e))?;
        Ok(ep.as_ref().map(with_ports_from_endpoints).unwrap_or_default())
    }
}

/// All endpoint addresses of `service`, ready or not, deduplicated and sorted.
pub async fn of_service(cluster: &Cluster, ns: &str, service: &str) -> Result<Vec<EndpointAddress>> {
    let addresses: BTreeSet<EndpointAddress> =
        list(cluster, ns, service).await?.into_iter().map(|e| e.address).collect();
    Ok(addresses.into_iter().collect())
}

/// Watches the Service's endpoints until `ip` is listed with readiness `ready`, and returns when the
/// watch saw that (None: not within `limit`). EndpointSlices where served, Endpoints otherwise.
///
/// A watch error is retried with backoff, not taken for "the endpoint never changed". The error is the
/// API's refusal (at once), or the watch's own failure when it was still failing at `limit`: then the
/// API, not the endpoints controller, is what could not be observed.
pub async fn watch_until_ready_is(
    cluster: &Cluster,
    ns: &str,
    service: &str,
    ip: &str,
    ready: bool,
    limit: std::time::Duration,
) -> std::result::Result<Option<std::time::Instant>, String> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};

    let matches = |addresses: &[EndpointAddress]| addresses.iter().any(|a| a.ip == ip && a.ready == ready);
    let mut failing: Option<String> = None;
    let seen = async {
        let mut addresses = if cluster.has_endpoint_slices {
            let api: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), ns);
            let config = watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
            watcher(api, config).default_backoff().applied_objects().map(|r| r.map(|s| from_slice(&s))).boxed()
        } else {
            let api: Api<Endpoints> = Api::namespaced(cluster.client.clone(), ns);
            let config = watcher::Config::default().fields(&format!("metadata.name={service}"));
            watcher(api, config)
                .default_backoff()
                .applied_objects()
                .map(|r| r.map(|e| from_endpoints(&e).into_iter().collect()))
                .boxed()
        };
        while let Some(item) = addresses.next().await {
            match item {
                Ok(listed) if matches(&listed) => return Ok(Some(std::time::Instant::now())),
                Ok(_) => failing = None,
                Err(e) => match super::watch_refusal(&e) {
                    Some(refused) => return Err(refused),
                    None => failing = Some(e.to_string()),
                },
            }
        }
        Ok(None)
    };
    match tokio::time::timeout(limit, seen).await {
        Ok(outcome) => outcome,
        Err(_) => match failing {
            Some(e) => Err(format!("the watch of the endpoints was still failing after {} s: {e}", limit.as_secs())),
            None => Ok(None),
        },
    }
}

/// The API server's own address (`https://ip:port`) from the `default/kubernetes` EndpointSlice (core/v1
/// Endpoints where slices are not served: that API is deprecated since v1.33), so that agents can reach
/// it without the Service data plane. None when it cannot be read.
pub async fn api_server_address(cluster: &Cluster) -> Option<String> {
    let (ip, port) = if cluster.has_endpoint_slices {
        let api = Api::<EndpointSlice>::namespaced(cluster.client.clone(), "default");
        let list = api.list(&ListParams::default().labels("kubernetes.io/service-name=kubernetes")).await.ok()?;
        list.items.iter().find_map(api_server_in_slice)?
    } else {
        let ep = Api::<Endpoints>::namespaced(cluster.client.clone(), "default").get_opt("kubernetes").await.ok()??;
        let subset = ep.subsets?.into_iter().next()?;
        let ip = subset.addresses?.into_iter().next()?.ip;
        let port = subset.ports?.into_iter().find(|p| p.name.as_deref() == Some("https"))?.port;
        (ip, port)
    };
    Some(if ip.contains(':') { format!("https://[{ip}]:{port}") } else { format!("https://{ip}:{port}") })
}

/// The first address and the `https` port of the `kubernetes` Service's EndpointSlice.
fn api_server_in_slice(slice: &EndpointSlice) -> Option<(String, i32)> {
    let port = slice.ports.iter().flatten().find(|p| p.name.as_deref() == Some("https"))?.port?;
    let ip = slice.endpoints.first()?.addresses.first()?.clone();
    Some((ip, port))
}

/// Endpoints with their ports from EndpointSlices.
pub fn with_ports_from_slices(slices: &[EndpointSlice]) -> Vec<Endpoint> {
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
            from_slice(slice).into_iter().map(move |address| Endpoint { address, ports: ports.clone() })
        })
        .collect()
}

/// Endpoints with their ports from a core/v1 Endpoints object (one subset at a time).
pub fn with_ports_from_endpoints(ep: &Endpoints) -> Vec<Endpoint> {
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
        out.extend(from_endpoints(&one).into_iter().map(|address| Endpoint { address, ports: ports.clone() }));
    }
    out
}

/// Addresses of one EndpointSlice. A missing `ready` condition means ready (API convention).
pub fn from_slice(slice: &EndpointSlice) -> Vec<EndpointAddress> {
    slice
        .endpoints
        .iter()
        .flat_map(|e| {
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            let pod = e.target_ref.as_ref().filter(|t| t.kind.as_deref() == Some("Pod")).and_then(|t| t.name.clone());
            let (hostname, node) = (e.hostname.clone(), e.node_name.clone());
            e.addresses.iter().map(move |ip| EndpointAddress {
                ip: ip.clone(),
                pod: pod.clone(),
                ready,
                hostname: hostname.clone(),
                node: node.clone(),
            })
        })
        .collect()
}

/// Addresses of a core/v1 Endpoints object: `addresses` are ready, `notReadyAddresses` are not.
pub fn from_endpoints(ep: &Endpoints) -> BTreeSet<EndpointAddress> {
    let mut out = BTreeSet::new();
    for subset in ep.subsets.iter().flatten() {
        for (list, ready) in [(&subset.addresses, true), (&subset.not_ready_addresses, false)] {
            for a in list.iter().flatten() {
                let pod =
                    a.target_ref.as_ref().filter(|t| t.kind.as_deref() == Some("Pod")).and_then(|t| t.name.clone());
                out.insert(EndpointAddress {
                    ip: a.ip.clone(),
                    pod,
                    ready,
                    hostname: a.hostname.clone(),
                    node: a.node_name.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_slice_ready_defaults_to_true() {
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s"}, "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "targetRef": {"kind": "Pod", "name": "a"}, "nodeName": "node-a"},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false}, "targetRef": {"kind": "Pod", "name": "b"}}
            ]
        }))
        .unwrap();
        let a = from_slice(&slice);
        assert_eq!(a.len(), 2);
        assert!(a[0].ready && a[0].pod.as_deref() == Some("a") && a[0].node.as_deref() == Some("node-a"));
        assert!(!a[1].ready && a[1].node.is_none());
    }

    #[test]
    fn endpoints_split_ready_and_not_ready() {
        let ep: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "e"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1", "targetRef": {"kind": "Pod", "name": "a"}}],
                         "notReadyAddresses": [{"ip": "10.0.0.2"}], "ports": [{"port": 80}]}]
        }))
        .unwrap();
        let a: Vec<_> = from_endpoints(&ep).into_iter().collect();
        assert_eq!(
            a,
            vec![
                EndpointAddress {
                    ip: "10.0.0.1".into(),
                    pod: Some("a".into()),
                    ready: true,
                    hostname: None,
                    node: None
                },
                EndpointAddress { ip: "10.0.0.2".into(), pod: None, ready: false, hostname: None, node: None },
            ]
        );
    }

    #[test]
    fn the_api_server_address_comes_from_the_kubernetes_slice() {
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.250.0.1"], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]
        }))
        .unwrap();
        assert_eq!(api_server_in_slice(&slice), Some(("10.250.0.1".to_string(), 6443)));
        let unnamed = EndpointSlice { ports: Some(vec![]), ..slice };
        assert_eq!(api_server_in_slice(&unnamed), None);
    }

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
        let mut a = with_ports_from_endpoints(&ep);
        let mut b = with_ports_from_slices(&[slice]);
        a.sort_by(|x, y| x.address.cmp(&y.address));
        b.sort_by(|x, y| x.address.cmp(&y.address));
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        assert!(a[0].address.ready && !a[1].address.ready);
        assert_eq!(a[0].ports, vec![EndpointPort { name: Some("http".into()), port: 8080, protocol: "TCP".into() }]);
    }
}
