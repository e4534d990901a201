//! How long a Service created now takes until every node's DNS answers its name (`newServiceMs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};

use super::ask_every_client;
use super::facts::{DNS_PORT, Facts};
use crate::checks::dns_expect;
use crate::protocol::{DnsProbe, DnsQuery};
use crate::runner::{Session, manifests};

/// Name prefix of the Service created during the check to time how long DNS takes to answer a new name.
const FRESH_SERVICE: &str = "netcheck-dns-fresh-";
/// How long a new Service may take to appear in DNS before that is reported as not seen: longer than
/// CoreDNS's negative cache (30 s as kubeadm, kind and AKS configure it), which keeps an NXDOMAIN given
/// before the server saw the Service.
const APPEARANCE_LIMIT: Duration = Duration::from_secs(35);

/// Creates a Service and measures, per client node, the time from its creation until DNS answers
/// its name with its ClusterIP (an upper bound: it includes the order's delivery, a few ms).
pub(super) async fn new_service_appearance(session: &Session, f: &Facts) -> BTreeMap<String, Option<u64>> {
    let api: Api<Service> = Api::namespaced(session.cluster.client.clone(), &session.namespace);
    let Ok(created) =
        api.create(&PostParams::default(), &manifests::fresh_service(&session.namespace, FRESH_SERVICE)).await
    else {
        return BTreeMap::new();
    };
    let t0 = Instant::now();
    let Some(expected) = dns_expect::service_a(&created, &[]) else { return BTreeMap::new() };
    let name = dns_expect::service_name(&created, &f.domain);
    let probe = DnsProbe {
        queries: vec![DnsQuery {
            name,
            record_type: "A".into(),
            server: Some(format!("{}:{DNS_PORT}", f.dns_ip)),
            tcp: false,
        }],
        attempts: 1,
        timeout_ms: 1000,
        interval_ms: 0,
        until_answered_ms: Some(APPEARANCE_LIMIT.as_millis() as u64),
        until_presence: None,
    };
    let sent_after = t0.elapsed().as_millis() as u64;
    ask_every_client(session, &probe)
        .await
        .into_iter()
        .map(|(node, r)| {
            let first = r.ok().and_then(|r| {
                r.attempts.into_iter().find(|a| a.outcome.records().is_some_and(|rs| expected.matches(rs)))
            });
            (node, first.map(|a| sent_after + a.start_ms + a.elapsed_us / 1000))
        })
        .collect()
}
