//! netcheck under exactly the RBAC it documents (`netcheck rbac`): the full scenario, diagnose, a watch
//! (foreground, then start and stop) and gc pass as that ServiceAccount, and a role missing one rule gives a clear message within seconds,
//! naming what was refused, instead of waiting for a timeout.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

const BIN: &str = env!("CARGO_BIN_EXE_netcheck");
const SYSTEM: &str = "netcheck-system";

/// The documents of `netcheck rbac`, as printed.
fn manifest() -> Vec<serde_json::Value> {
    let out = Command::new(BIN).arg("rbac").output().expect("netcheck rbac runs");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    text.split("\n---\n").map(|doc| serde_saphyr::from_str(doc).expect("YAML")).collect()
}

async fn apply<K>(api: &Api<K>, doc: &serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = doc["metadata"]["name"].as_str().expect("a name");
    api.patch(name, &PatchParams::apply("netcheck-test").force(), &Patch::Apply(doc)).await.expect("applied");
}

/// Applies `netcheck rbac`'s documents, the ClusterRole under `role_name` and the ServiceAccount as
/// `account`, bound to each other; `edit` changes the ClusterRole first.
async fn install(client: &kube::Client, role_name: &str, account: &str, edit: impl Fn(&mut serde_json::Value)) {
    let mut docs = manifest();
    edit(&mut docs[0]);
    docs[0]["metadata"]["name"] = role_name.into();
    docs[2]["metadata"]["name"] = account.into();
    docs[3]["metadata"]["name"] = role_name.into();
    docs[3]["roleRef"]["name"] = role_name.into();
    docs[3]["subjects"][0]["name"] = account.into();
    apply(&Api::<ClusterRole>::all(client.clone()), &docs[0]).await;
    apply(&Api::<Namespace>::all(client.clone()), &docs[1]).await;
    apply(&Api::<ServiceAccount>::namespaced(client.clone(), SYSTEM), &docs[2]).await;
    apply(&Api::<ClusterRoleBinding>::all(client.clone()), &docs[3]).await;
}

/// A kubeconfig for the same cluster that authenticates as `account` with a short-lived token.
async fn kubeconfig_as(client: &kube::Client, account: &str) -> std::path::PathBuf {
    let request = TokenRequest {
        spec: TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() },
        ..Default::default()
    };
    let token = Api::<ServiceAccount>::namespaced(client.clone(), SYSTEM)
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .expect("a token")
        .status
        .expect("a token status")
        .token;
    let own = kube::config::Kubeconfig::read().expect("the test's kubeconfig");
    let context = own.current_context.clone().expect("a current context");
    let cluster_name =
        own.contexts.iter().find(|c| c.name == context).and_then(|c| c.context.clone()).expect("the context").cluster;
    let cluster =
        own.clusters.iter().find(|c| c.name == cluster_name).and_then(|c| c.cluster.clone()).expect("cluster");
    let ca = match (&cluster.certificate_authority, &cluster.certificate_authority_data) {
        (Some(path), _) => format!("certificate-authority: {path:?}"),
        (None, Some(data)) => format!("certificate-authority-data: {data:?}"),
        (None, None) => "insecure-skip-tls-verify: true".into(),
    };
    let server = cluster.server.expect("a server");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: {server:?}, {ca}}}\nusers:\n- name: \
         {account}\n  user: {{token: {token:?}}}\ncontexts:\n- name: as-{account}\n  context: {{cluster: c, user: \
         {account}}}\ncurrent-context: as-{account}\n"
    );
    let path = std::env::temp_dir().join(format!("netcheck-{account}-{}.kubeconfig", std::process::id()));
    std::fs::write(&path, text).expect("kubeconfig written");
    path
}

fn netcheck_as(kubeconfig: &std::path::Path, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RUST_LOG")
        .output()
        .expect("netcheck runs");
    (out, started.elapsed())
}

#[tokio::test]
async fn the_documented_role_runs_the_full_scenario_diagnose_watch_and_gc() {
    let Some(client) = common::client().await else { return };
    install(&client, "netcheck", "netcheck", |_| {}).await;
    let kubeconfig = kubeconfig_as(&client, "netcheck").await;
    for args in [
        &["run", "--scenario", "full", "-o", "json"][..],
        &["watch", "--", "sleep", "3"][..],
        // The watch records on its own between these two, while the others run.
        &["watch", "start"][..],
        &["diagnose", "service/kubernetes", "-n", "default"][..],
        &["gc", "--dry-run"][..],
        &["watch", "stop"][..],
    ] {
        let (out, took) = netcheck_as(&kubeconfig, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} as the documented role ({took:?}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn a_missing_rule_is_named_within_seconds() {
    let Some(client) = common::client().await else { return };
    // The documented role without `create` on pods.
    install(&client, "netcheck-no-pod-create", "netcheck-no-pod-create", |role| {
        for rule in role["rules"].as_array_mut().expect("rules") {
            if rule["resources"].as_array().is_some_and(|r| r.iter().any(|x| x == "pods")) {
                rule["verbs"] = serde_json::json!(["delete", "get", "list", "watch"]);
            }
        }
    })
    .await;
    let kubeconfig = kubeconfig_as(&client, "netcheck-no-pod-create").await;
    let (out, took) = netcheck_as(&kubeconfig, &["run", "--timeout", "120s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    Api::<ClusterRoleBinding>::all(client.clone())
        .delete("netcheck-no-pod-create", &DeleteParams::default())
        .await
        .ok();
    Api::<ClusterRole>::all(client.clone()).delete("netcheck-no-pod-create", &DeleteParams::default()).await.ok();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("forbidden") && err.contains("cannot create resource \"pods\""), "{err}");
    assert!(took < Duration::from_secs(20), "named in {took:?}, not at the 120 s timeout");
}
