//! The `[schedule]` section: training length and learning-rate schedule (docs/data-flow.md, "Train").

use serde::{Deserialize, Serialize};

use crate::check::{above, count_at_least, in_open, in_open_closed, Check, Problem};

/// How long training runs and how the learning rate changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// The schedule's shape.
    #[serde(default)]
    pub kind: ScheduleKind,
    /// Total optimiser steps (required, ≥ 1).
    pub steps: u64,
    /// Linear warm-up steps (< steps).
    #[serde(default)]
    pub warmup: u64,
    /// multistep: fractions of `steps` in (0, 1), increasing, at which the rate is multiplied by `gamma`.
    #[serde(default = "default::milestones")]
    pub milestones: Vec<f64>,
    /// multistep: the factor applied at each milestone (> 0).
    #[serde(default = "default::gamma")]
    pub gamma: f64,
    /// Ends the run early, as finished, at the first evaluation whose training accuracy (on `eval.train_images`
    /// labelled images) reaches this share, in (0, 1]: "trained until it fits" (docs/study.md). `steps` stays the
    /// cap and the learning-rate schedule's length. Absent (the default): every run takes all `steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_at_train_acc: Option<f64>,
}

/// The learning-rate schedules in docs/data-flow.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// FixMatch's lr · cos(7πk / 16K).
    FixmatchCosine,
    /// Cosine decay to zero after the optional warm-up.
    #[default]
    Cosine,
    /// Step decay by `gamma` at the `milestones`.
    Multistep,
    /// The base rate throughout.
    Constant,
}

/// Defaults of the `[schedule]` keys.
mod default {
    pub(super) fn milestones() -> Vec<f64> {
        vec![0.5, 0.75]
    }
    pub(super) fn gamma() -> f64 {
        0.2
    }
}

impl ScheduleSection {
    /// Checks the ranges of the section's own keys.
    pub(crate) fn validate(&self) -> Check {
        count_at_least("schedule.steps", self.steps, 1)?;
        if self.warmup >= self.steps {
            return Err(Problem::new(
                "schedule.warmup",
                format!("must be < schedule.steps ({}), got {}", self.steps, self.warmup),
            ));
        }
        for (i, &m) in self.milestones.iter().enumerate() {
            in_open(&format!("schedule.milestones.{i}"), m, 0.0, 1.0)?;
            if i > 0 && m <= self.milestones[i - 1] {
                return Err(Problem::new(
                    format!("schedule.milestones.{i}"),
                    format!("milestones must increase, got {} after {}", m, self.milestones[i - 1]),
                ));
            }
        }
        if let Some(target) = self.stop_at_train_acc {
            in_open_closed("schedule.stop_at_train_acc", target, 0.0, 1.0)?;
        }
        above("schedule.gamma", self.gamma, 0.0)
    }
}
