//! burnish: semi- and self-supervised image training with Inconsistency-Aware Minimization, on Burn.
//!
//! Data flow: [`recipe`] → [`plan`] → [`pipeline`] → step ([`step`] inputs, [`objective`] of [`stage`]s, [`update`] rule) →
//! [`train`] (optimiser, EMA, checkpoints) → [`run`] (metrics files, progress). [`iam`] holds Algorithm 1, shared
//! by the `iam-d` stage, the `iam-s` rule and `burnish measure`. [`track`] writes TensorBoard event files of a run's
//! metrics; [`data::download`] fetches the public data sets (`burnish data get`).
#![warn(missing_docs)]

pub mod analyze;
pub mod backend;
pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod devices;
pub mod iam;
pub mod kernels;
pub mod memory;
pub mod model;
pub(crate) mod named;
pub mod objective;
pub mod params;
pub mod pipeline;
pub mod plan;
pub mod probe;
pub mod profile;
pub mod recipe;
pub mod run;
pub mod seed;
pub mod sharpness;
pub mod stage;
pub mod step;
pub mod sweep;
pub mod track;
pub mod train;
pub mod update;
