//! Typed errors of the library. Each variant says what went wrong and, where it helps, what to do.

use std::path::PathBuf;

/// Errors that stop netcheck from running (as opposed to check failures, which are results).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read or understood.
    #[error("cannot use kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The file, or `<default>` when none was given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The API server did not answer.
    #[error("cannot reach the Kubernetes API server at {server}: {reason}")]
    Unreachable {
        /// API server URL.
        server: String,
        /// What happened.
        reason: String,
    },
    /// A Kubernetes API call failed.
    #[error("Kubernetes API call failed while {action}: {source}")]
    Api {
        /// What netcheck was doing.
        action: String,
        /// The underlying error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Deploying netcheck's agents failed for a reason the cluster reported.
    #[error("deploying agents failed: {object}: {reason}")]
    Deploy {
        /// The object concerned, e.g. `pod/netcheck-client-node-a`.
        object: String,
        /// The cause the cluster reported (ImagePullBackOff, Unschedulable, an admission denial).
        reason: String,
    },
    /// A node has no copy of the agent image and cannot pull it (ErrImagePull, ImagePullBackOff,
    /// ErrImageNeverPull): the image was not loaded into that node or pushed where it can pull from.
    #[error("the agent image {image} is not on node {node} and the node cannot pull it: {reason}")]
    ImageUnavailable {
        /// The image reference.
        image: String,
        /// The node whose container runtime could not get it.
        node: String,
        /// The kubelet's reason and message.
        reason: String,
    },
    /// Waiting for something took longer than allowed.
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The limit.
        seconds: u64,
    },
    /// A scenario file or check selection is invalid.
    #[error("{0}")]
    Scenario(#[from] crate::scenario::ScenarioError),
    /// No node can host a client agent: every node is NotReady, cordoned, tainted, virtual, or of an
    /// OS or architecture the image does not provide. Each node's reason is named, so that a taint the
    /// kubelet set (disk or memory pressure) is told apart from a cordon.
    #[error("no node can run a client agent: {}", no_usable_node_reasons(.reasons))]
    NoUsableNode {
        /// Why each node cannot host one (`node X is NotReady`, `node Y has taints …`); empty when the
        /// cluster lists no node.
        reasons: Vec<String>,
    },
    /// The Service has no port by the name or number given (`diagnose --port`).
    #[error("service/{service} has no port '{wanted}' (its ports: {ports})")]
    NoSuchPort {
        /// The Service.
        service: String,
        /// The port asked for.
        wanted: String,
        /// The Service's ports, comma-separated.
        ports: String,
    },
    /// Invalid input that is not a scenario (an unknown check id on the command line, a bad flag value).
    #[error("invalid input: {0}")]
    Input(String),
    /// The agent protocol was violated (a version mismatch or an unreadable message).
    #[error("agent protocol error: {0}")]
    Protocol(String),
    /// Local I/O failed.
    #[error("{what}: {source}")]
    Io {
        /// What netcheck was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The run was interrupted by a signal (SIGINT, SIGTERM or SIGHUP); its namespace is deleted.
    #[error("interrupted by {}", signal_name(*.signal))]
    Interrupted {
        /// The signal's number (2 SIGINT, 15 SIGTERM, 1 SIGHUP); a shell reports 128 + it.
        signal: i32,
    },
}

/// The name of the signals netcheck stops on.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a kube error with what netcheck was doing.
    pub fn api(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Api { action: action.into(), source: Box::new(source) }
    }

    /// Whether the API refused the call for lack of permission (HTTP 403).
    ///
    /// ```
    /// let status = kube::core::Status { code: 403, ..Default::default() };
    /// let e = netcheck::Error::api("creating pods", kube::Error::Api(Box::new(status)));
    /// assert!(e.is_forbidden());
    /// assert!(!netcheck::Error::NoUsableNode { reasons: vec![] }.is_forbidden());
    /// ```
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Error::Api { source, .. } if matches!(source.as_ref(), kube::Error::Api(s) if s.code == 403))
    }
}

fn no_usable_node_reasons(reasons: &[String]) -> String {
    if reasons.is_empty() { "the cluster lists no node".to_string() } else { reasons.join("; ") }
}
