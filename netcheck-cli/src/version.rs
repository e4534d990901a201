//! `netcheck version`: this client's version and protocol, and with a cluster its server version
//! and whether every node already holds the agent image this client deploys.

use std::process::ExitCode;

use netcheck::runner::{self, inventory};

use crate::{ClusterArgs, fail_error};

/// The lines that need no cluster: the client and the image it deploys.
pub fn client_lines(image: &str) -> String {
    let default = if image == runner::DEFAULT_IMAGE { " (the default)" } else { "" };
    format!(
        "client   netcheck {} (protocol {})\nimage    {image}{default}\n",
        env!("CARGO_PKG_VERSION"),
        netcheck::protocol::PROTOCOL_VERSION,
    )
}

/// Which nodes' kubelets list `image`: the image matches when every node lists it.
pub fn nodes_line(image: &str, nodes: &[inventory::NodeInfo]) -> String {
    if nodes.is_empty() {
        return "nodes    none listed: nothing can hold the image\n".into();
    }
    let missing: Vec<&str> = nodes.iter().filter(|n| !n.lists_image(image)).map(|n| n.name.as_str()).collect();
    if missing.is_empty() {
        return format!("nodes    all {} list the image\n", nodes.len());
    }
    format!(
        "nodes    {} of {} do not list the image: {}; load or push it (README: On kind, On AKS). A kubelet lists at \
         most 50 images, so a node crowded with images may hold it unlisted\n",
        missing.len(),
        nodes.len(),
        missing.join(", ")
    )
}

/// Prints the client's version, then the server's and where the image is, unless `client_only`.
pub async fn version(cluster: &ClusterArgs, image: &str, client_only: bool) -> ExitCode {
    print!("{}", client_lines(image));
    if client_only {
        return ExitCode::SUCCESS;
    }
    let connected = match runner::connect(&cluster.options()).await {
        Ok(c) => c,
        Err(e) => return fail_error(&e),
    };
    match connected.client.apiserver_version().await {
        Ok(info) => println!("server   Kubernetes {}", info.git_version),
        Err(e) => return fail_error(&netcheck::Error::api("reading the server version", e)),
    }
    match inventory::nodes(&connected).await {
        Ok(nodes) => print!("{}", nodes_line(image, &nodes)),
        Err(e) => return fail_error(&e),
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_lines_name_the_version_protocol_and_image() {
        let lines = client_lines(runner::DEFAULT_IMAGE);
        assert!(lines.contains(&format!("netcheck {} (protocol ", env!("CARGO_PKG_VERSION"))), "{lines}");
        assert!(lines.contains(&format!("{} (the default)", runner::DEFAULT_IMAGE)), "{lines}");
        assert!(!client_lines("acr.io/netcheck/agent:1").contains("default"));
    }

    #[test]
    fn the_nodes_line_names_the_nodes_without_the_image() {
        let node = |name: &str, images: &[&str]| inventory::NodeInfo {
            name: name.into(),
            images: images.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let nodes = [node("a", &["img:1"]), node("b", &[])];
        assert!(nodes_line("img:1", &nodes).contains("1 of 2 do not list the image: b;"));
        assert_eq!(nodes_line("img:1", &nodes[..1]), "nodes    all 1 list the image\n");
        assert!(nodes_line("img:1", &[]).contains("none listed"), "no node is never \"all list it\"");
    }
}
