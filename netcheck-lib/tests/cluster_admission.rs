//! The agents pass admission where clusters are strict: a namespace whose ResourceQuota requires
//! requests and limits admits them, and a run's namespace enforces the `restricted` Pod Security
//! profile (a pod that breaks it is refused there).

use k8s_openapi::api::core::v1::{Namespace, Pod, ResourceQuota};
use kube::api::{Api, DeleteParams, PostParams};
use netcheck::harness::cluster;
use netcheck::runner::manifests::{self, AgentTemplate};
use netcheck::runner::{Cluster, inventory};
use rstest::rstest;

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("a valid object")
}

fn template() -> AgentTemplate {
    AgentTemplate {
        run_id: "admission".into(),
        image: netcheck::harness::agent_image(),
        tolerate_taints: false,
        platforms: netcheck::runner::Platform::dockerfile_defaults(),
        api_server: None,
    }
}

/// A pod without requests or limits, or with root and privileges: what strict namespaces refuse.
fn careless_pod(privileged: bool) -> Pod {
    object(serde_json::json!({
        "metadata": {"name": if privileged { "privileged" } else { "no-resources" }},
        "spec": {"containers": [{
            "name": "c", "image": netcheck::harness::agent_image(),
            "securityContext": {"privileged": privileged}
        }]}
    }))
}

#[rstest]
#[tokio::test]
async fn agents_meet_a_resource_quota_that_requires_requests_and_limits(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let ns = format!("quota-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    namespaces.create(&PostParams::default(), &object(serde_json::json!({"metadata": {"name": ns}}))).await.unwrap();
    let quota: ResourceQuota = object(serde_json::json!({
        "metadata": {"name": "requires-resources"},
        "spec": {"hard": {"requests.cpu": "1", "requests.memory": "256Mi", "limits.cpu": "4", "limits.memory": "512Mi"}}
    }));
    let quotas = Api::<ResourceQuota>::namespaced(cluster.client.clone(), &ns);
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    // Admission enforces what the quota's status lists, which the quota controller fills in a moment later.
    let counted = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let q = quotas.get("requires-resources").await.unwrap();
            if q.status.and_then(|s| s.hard) == q.spec.and_then(|s| s.hard) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(counted.is_ok(), "the quota controller never counted the quota");
    let (sa, role, binding) = manifests::agent_rbac(&ns);
    let pp = PostParams::default();
    kube::Api::namespaced(cluster.client.clone(), &ns).create(&pp, &sa).await.unwrap();
    kube::Api::namespaced(cluster.client.clone(), &ns).create(&pp, &role).await.unwrap();
    kube::Api::namespaced(cluster.client.clone(), &ns).create(&pp, &binding).await.unwrap();
    let node = inventory::nodes(&cluster).await.unwrap()[0].name.clone();
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);

    let agent = pods.create(&pp, &manifests::client_pod(&ns, &node, &template())).await;
    let careless = pods.create(&pp, &careless_pod(false)).await;
    namespaces.delete(&ns, &DeleteParams::background()).await.unwrap();

    agent.unwrap_or_else(|e| panic!("the quota refused the agent: {e}"));
    let refused = careless.expect_err("the quota must refuse a pod without resources, or it proves nothing");
    assert!(refused.to_string().contains("must specify"), "{refused}");
}

#[rstest]
#[tokio::test]
async fn a_run_namespace_enforces_the_restricted_profile(#[future] cluster: Option<Cluster>) {
    let Some(cluster) = cluster.await else { return };
    let run_id = netcheck::runner::namespace::new_run_id();
    let ns = netcheck::runner::namespace::create(&cluster.client, &run_id, std::time::Duration::from_secs(600))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
    let refused = pods.create(&PostParams::default(), &careless_pod(true)).await;
    netcheck::runner::namespace::delete(&cluster.client, &ns).await.unwrap();
    let refused = refused.expect_err("a privileged pod in a run namespace");
    assert!(refused.to_string().contains("violates PodSecurity \"restricted"), "{refused}");
}
