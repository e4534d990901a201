//! The permissions netcheck needs (run, diagnose, gc, watch), as a manifest (`deploy/rbac.yaml`): a ClusterRole with one
//! commented rule per need, and a ServiceAccount bound to it. `netcheck rbac` prints it.

/// `deploy/rbac.yaml`: the ClusterRole `netcheck`, the namespace `netcheck-system`, the ServiceAccount
/// `netcheck` there and the ClusterRoleBinding between them, as YAML documents.
///
/// ```
/// assert!(netcheck::rbac::MANIFEST.contains("kind: ClusterRole\n"));
/// ```
pub const MANIFEST: &str = include_str!("../../deploy/rbac.yaml");

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::ClusterRole;

    fn documents() -> Vec<serde_json::Value> {
        MANIFEST
            .split("\n---\n")
            .map(|doc| serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("not YAML: {e}\n{doc}")))
            .collect()
    }

    #[test]
    fn the_manifest_holds_the_role_the_identity_and_the_binding() {
        let kinds: Vec<String> =
            documents().iter().map(|d| d["kind"].as_str().unwrap_or_default().to_string()).collect();
        assert_eq!(kinds, ["ClusterRole", "Namespace", "ServiceAccount", "ClusterRoleBinding"]);
    }

    #[test]
    fn the_runner_holds_every_verb_it_grants_the_agents() {
        // RBAC lets a user create a Role only with permissions it holds itself.
        let role: ClusterRole = serde_json::from_value(documents().remove(0)).expect("a ClusterRole");
        let (_, run_role, _) = crate::runner::manifests::agent_rbac("ns");
        let watch_role = crate::watch::manifests::agent_role("ns");
        let mut checked = 0;
        for granted in run_role.rules.into_iter().chain(watch_role.rules).flatten() {
            for resource in granted.resources.unwrap_or_default() {
                for verb in &granted.verbs {
                    let held = role.rules.iter().flatten().any(|r| {
                        r.api_groups == granted.api_groups
                            && r.resources.iter().flatten().any(|x| *x == resource)
                            && r.verbs.contains(verb)
                    });
                    assert!(held, "the agents get {verb} on {resource}, which the ClusterRole lacks");
                    checked += 1;
                }
            }
        }
        assert!(checked > 0, "the agents' Role grants nothing: the comparison proved nothing");
    }
}
