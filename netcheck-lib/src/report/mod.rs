//! Reports: one model ([`model`]), three renderings ([`human`], [`json`], [`junit`]).

pub mod human;
pub mod json;
pub mod junit;
pub mod model;

pub use model::*;
