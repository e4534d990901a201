//! netcheck proves that a Kubernetes cluster's Service networking works, and says precisely what is
//! broken when it does not.
//!
//! The library is the product; the `netcheck` CLI is a thin shell over it. See ARCHITECTURE.md at the
//! repository root for the codemap.

#![warn(missing_docs)]

pub mod catalog;
pub(crate) mod checks;
pub mod diagnose;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "harness")]
pub mod harness;
mod interrupt;
pub mod orchestrator;
pub mod probe;
pub mod rbac;
pub mod report;
pub mod runner;
pub mod scenario;
#[cfg(test)]
mod schema_walk;
pub(crate) mod stats;
pub mod watch;

pub use error::{Error, Result};
/// The orders and results exchanged with the agents (the `netcheck-protocol` crate, which the
/// `netcheck-agent` binary shares).
pub use netcheck_protocol as protocol;
pub use report::{CheckResult, Report, Status, Subject};
