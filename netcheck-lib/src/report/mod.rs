//! Reports: one model ([`model`]), three renderings ([`human`], [`json`], [`junit`]), and the comparison
//! with an earlier report ([`baseline`]).

pub mod baseline;
pub mod human;
pub mod json;
pub mod junit;
pub mod model;

pub use model::*;
