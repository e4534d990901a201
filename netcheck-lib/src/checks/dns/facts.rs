//! What the API says, read once: the cluster DNS Service and its ready endpoints, the run's Services and endpoints.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;

use crate::runner::endpoints::{self, EndpointAddress};
use crate::runner::manifests::{
    CLIENTS_SERVICE, ECHO_SERVICE, EXTERNAL_SERVICE, HEADLESS_ALL_SERVICE, HEADLESS_SERVICE,
};
use crate::runner::{Session, settle};

/// The cluster DNS Service, by the name every Kubernetes distribution keeps for compatibility.
pub(super) const DNS_NAMESPACE: &str = "kube-system";
pub(super) const DNS_SERVICE: &str = "kube-dns";
pub(super) const DNS_PORT: u16 = 53;

/// What the API says, read once.
pub(super) struct Facts {
    pub(super) domain: String,
    pub(super) namespace: String,
    pub(super) dns_ip: String,
    pub(super) dns_endpoints: Vec<String>,
    pub(super) echo: Service,
    pub(super) kubernetes: Service,
    pub(super) headless: Service,
    pub(super) headless_endpoints: Vec<EndpointAddress>,
    pub(super) headless_all: Service,
    pub(super) headless_all_endpoints: Vec<EndpointAddress>,
    pub(super) clients: Service,
    pub(super) client_endpoints: Vec<EndpointAddress>,
    pub(super) external: Service,
}

pub(super) async fn read_facts(session: &Session) -> Result<Facts, String> {
    let cluster = &session.cluster;
    let ns = &session.namespace;
    let get = |namespace: &str, name: &str| {
        let api: Api<Service> = Api::namespaced(cluster.client.clone(), namespace);
        let what = format!("service/{name} in {namespace}");
        let name = name.to_string();
        async move {
            match api.get_opt(&name).await {
                Ok(Some(s)) => Ok(s),
                Ok(None) => Err(format!("{what} does not exist")),
                Err(e) => Err(format!("cannot read {what}: {e}")),
            }
        }
    };
    let dns = get(DNS_NAMESPACE, DNS_SERVICE).await.map_err(|e| format!("no cluster DNS Service: {e}"))?;
    let dns_ip = crate::runner::services::cluster_ip(&dns).map(str::to_string);
    let dns_ip = dns_ip.ok_or("service kube-system/kube-dns has no ClusterIP")?;
    let dns_endpoints = endpoints::of_service(cluster, DNS_NAMESPACE, DNS_SERVICE)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|e| e.ready)
        .map(|e| e.ip)
        .collect();
    let servers: BTreeSet<&str> = session.agents.servers.iter().map(|s| s.ip.as_str()).collect();
    let clients: BTreeSet<&str> = session.agents.clients.values().map(|c| c.ip.as_str()).collect();
    let headless_endpoints =
        settle::api_lists_ready(cluster, ns, HEADLESS_SERVICE, &servers).await.map_err(|e| e.to_string())?;
    let headless_all_endpoints =
        settle::api_lists_ready(cluster, ns, HEADLESS_ALL_SERVICE, &servers).await.map_err(|e| e.to_string())?;
    let client_endpoints =
        settle::api_lists_ready(cluster, ns, CLIENTS_SERVICE, &clients).await.map_err(|e| e.to_string())?;
    Ok(Facts {
        domain: session.options.cluster_domain.clone(),
        namespace: ns.clone(),
        dns_ip,
        dns_endpoints,
        echo: get(ns, ECHO_SERVICE).await?,
        kubernetes: get("default", "kubernetes").await?,
        headless: get(ns, HEADLESS_SERVICE).await?,
        headless_endpoints,
        headless_all: get(ns, HEADLESS_ALL_SERVICE).await?,
        headless_all_endpoints,
        clients: get(ns, CLIENTS_SERVICE).await?,
        client_endpoints,
        external: get(ns, EXTERNAL_SERVICE).await?,
    })
}
