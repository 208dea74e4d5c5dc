//! One training step's inputs: the pipeline batch on the device ([`StepBatch`], keyed by [`Stream`] and
//! [`ViewKey`]) and the one clean forward over every view the stages read ([`Forward`]). The objective that sums the
//! stages over them is `crate::objective`; update rules (`crate::update`) evaluate it at θ and at θ + ε.

mod batch;
mod forward;

pub use batch::{StepBatch, Stream, ViewKey};
pub use forward::Forward;
