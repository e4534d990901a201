//! Scenarios: Kubernetes-style YAML documents that select checks and set their parameters.
//!
//! ```yaml
//! apiVersion: netcheck.dev/v1
//! kind: Scenario
//! metadata:
//!   name: my-scenario
//!   description: optional
//! spec:
//!   checks:
//!     - id: clusterip/reachable
//!       params: {requests: 30}
//!     - pod/direct            # a bare id selects a check with its default parameters
//! ```
//!
//! Parsing happens in two steps: YAML into raw structs that keep source locations, then validation
//! against the [`catalog`](crate::catalog::checks). Every error names `FILE:LINE:COL` of the
//! offending item.

mod builtin;
mod params;
mod select;
mod validate;

use std::path::PathBuf;

use crate::catalog::CheckSpec;

pub use builtin::{builtin, builtin_names, load};
pub use params::Params;
pub use select::from_check_ids;

/// The `apiVersion` scenarios must declare.
pub const API_VERSION: &str = "netcheck.dev/v1";
/// The `kind` scenarios must declare.
pub const KIND: &str = "Scenario";

/// Why a scenario or a check selection is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The document is malformed or does not match the catalog.
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        /// The file (or built-in scenario) concerned.
        file: String,
        /// 1-based line of the offending item.
        line: u64,
        /// 1-based column of the offending item.
        column: u64,
        /// What is wrong.
        message: String,
    },
    /// The name is neither a built-in scenario nor an existing file.
    #[error("no built-in scenario and no file named `{name}` (built-in scenarios: {builtins})")]
    NotFound {
        /// The name or path given.
        name: String,
        /// Built-in scenario names, comma-separated.
        builtins: String,
    },
    /// The scenario file exists but could not be read.
    #[error("cannot read scenario file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A check id given outside a file (`--check`, `--skip`) is not in the catalog.
    #[error("unknown check id `{id}` (known checks: {known})")]
    UnknownCheck {
        /// The id given.
        id: String,
        /// Known check ids, comma-separated.
        known: String,
    },
    /// A selection by id named no checks at all.
    #[error("no checks selected")]
    NoChecks,
}

/// A validated scenario: which checks run, with which parameters.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.description`, empty when absent.
    pub description: String,
    /// The selected checks, in the order the scenario lists them.
    pub checks: Vec<SelectedCheck>,
}

/// One check of a scenario with its parameters.
#[derive(Debug, Clone)]
pub struct SelectedCheck {
    /// Catalog id of the check.
    pub id: &'static str,
    /// Its parameters, defaults filled in.
    pub params: Params,
}

impl SelectedCheck {
    /// The check's catalog entry.
    pub fn spec(&self) -> &'static CheckSpec {
        self.params.spec
    }
}
