//! The "application" of the embed demo: a small HTTP Service (`hello`, two agnhost `netexec` pods)
//! that this crate deploys into a namespace of its own. Its test (`tests/hello_answers.rs`) asserts,
//! with netcheck's harness, that the Service answers from every node of the cluster.
//!
//! The image is the upstream e2e test image agnhost, which the netcheck testbed preloads on its
//! nodes; on another cluster, point `HELLO_IMAGE` at an image that serves HTTP on port 8080.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};

/// The deployed demo: its namespace and the URL its Service answers on, inside the cluster.
pub struct Hello {
    config: kube::Config,
    /// The namespace the demo created.
    pub namespace: String,
}

impl Hello {
    /// `http://hello.<namespace>:8080<path>`: the Service's name as other pods resolve it.
    pub fn url(&self, path: &str) -> String {
        format!("http://hello.{}:8080{path}", self.namespace)
    }
}

impl Drop for Hello {
    fn drop(&mut self) {
        let config = self.config.clone();
        let name = self.namespace.clone();
        // Drop cannot await, and may run inside the runtime that a shared client's connections live
        // on: delete from a helper thread, with a runtime and a client of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async move {
                let api: Api<Namespace> = Api::all(kube::Client::try_from(config).ok()?);
                api.delete(&name, &DeleteParams::default()).await.ok()
            })
        })
        .join();
    }
}

/// Creates namespace `namespace` with the `hello` Deployment and Service, and waits until the
/// Deployment is available. Dropping the returned [`Hello`] deletes the namespace.
pub async fn deploy(config: &kube::Config, namespace: &str) -> Result<Hello, kube::Error> {
    let client = &kube::Client::try_from(config.clone())?;
    let ns: Namespace = object(serde_json::json!({"metadata": {"name": namespace}}));
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await?;
    let hello = Hello { config: config.clone(), namespace: namespace.to_string() };
    let image = std::env::var("HELLO_IMAGE").unwrap_or_else(|_| "registry.k8s.io/e2e-test-images/agnhost:2.63".into());
    let deployment: Deployment = object(serde_json::json!({
        "metadata": {"name": "hello"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "hello"}},
            "template": {
                "metadata": {"labels": {"app": "hello"}},
                "spec": {"containers": [{
                    "name": "hello", "image": image, "imagePullPolicy": "IfNotPresent",
                    "args": ["netexec", "--http-port=8080"],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
                }]}
            }
        }
    }));
    let service: Service = object(serde_json::json!({
        "metadata": {"name": "hello"},
        "spec": {"selector": {"app": "hello"}, "ports": [{"port": 8080, "targetPort": "http"}]}
    }));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    deployments.create(&PostParams::default(), &deployment).await?;
    Api::<Service>::namespaced(client.clone(), namespace).create(&PostParams::default(), &service).await?;
    let available = await_condition(deployments, "hello", conditions::is_deployment_completed());
    let _ = tokio::time::timeout(Duration::from_secs(60), available).await;
    Ok(hello)
}

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("a valid manifest")
}
