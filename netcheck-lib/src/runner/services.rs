//! A Service's own addresses as the API lists them: the one reader of ClusterIPs and node ports, for
//! the session, the checks and `diagnose`.

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;

use super::Cluster;
use crate::{Error, Result};

/// The Service's ClusterIP; None while none is assigned and for a headless Service (`None`).
pub fn cluster_ip(svc: &Service) -> Option<&str> {
    svc.spec.as_ref()?.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None")
}

/// The node port of the Service's first port; None when it has none (not a NodePort Service).
pub fn first_node_port(svc: &Service) -> Option<u16> {
    let port = svc.spec.as_ref()?.ports.as_ref()?.first()?.node_port?;
    u16::try_from(port).ok()
}

/// The Service `ns/name`; None when it does not exist.
pub async fn read(cluster: &Cluster, ns: &str, name: &str) -> Result<Option<Service>> {
    Api::<Service>::namespaced(cluster.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| Error::api(format!("reading service/{name} in {ns}"), e))
}

/// The ClusterIP of the Service `ns/name`, or why there is none (missing, headless, not assigned, or
/// the API's error), in words for a result's message.
pub async fn read_cluster_ip(cluster: &Cluster, ns: &str, name: &str) -> std::result::Result<String, String> {
    match read(cluster, ns, name).await {
        Ok(Some(svc)) => cluster_ip(&svc).map(str::to_string).ok_or_else(|| format!("service/{name} has no ClusterIP")),
        Ok(None) => Err(format!("service/{name} does not exist")),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};

    fn service(cluster_ip: Option<&str>, node_port: Option<i32>) -> Service {
        Service {
            spec: Some(ServiceSpec {
                cluster_ip: cluster_ip.map(str::to_string),
                ports: Some(vec![ServicePort { port: 80, node_port, ..Default::default() }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_headless_or_unassigned_service_has_no_cluster_ip() {
        assert_eq!(cluster_ip(&service(Some("10.96.0.10"), None)), Some("10.96.0.10"));
        assert_eq!(cluster_ip(&service(Some("None"), None)), None);
        assert_eq!(cluster_ip(&service(Some(""), None)), None);
        assert_eq!(cluster_ip(&service(None, None)), None);
        assert_eq!(cluster_ip(&Service::default()), None);
    }

    #[test]
    fn the_first_port_gives_the_node_port() {
        assert_eq!(first_node_port(&service(Some("10.96.0.1"), Some(30080))), Some(30080));
        assert_eq!(first_node_port(&service(Some("10.96.0.1"), None)), None);
        assert_eq!(first_node_port(&service(Some("10.96.0.1"), Some(-1))), None);
    }
}
