//! Learning-rate schedules (docs/data-flow.md, "Train"): the learning rate as a pure function of the step, so resuming needs no state.

use std::f64::consts::PI;

/// A learning-rate schedule over `total` steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `lr` throughout.
    Constant,
    /// FixMatch's `lr · cos(7πk / 16K)`.
    FixMatchCosine,
    /// Linear warm-up over `warmup` steps, then cosine decay to zero at the last step.
    Cosine {
        /// Warm-up steps (0 for none).
        warmup: u64,
    },
    /// `lr · 0.2^j` after the j-th of the given fractions of training.
    MultiStep {
        /// Fractions of `total` (each in (0, 1)) at which the rate is multiplied by `gamma`.
        milestones: Vec<f64>,
        /// The factor (default 0.2).
        gamma: f64,
    },
}

impl Schedule {
    /// The learning rate at step `k` (0-based) of `total` for base rate `lr`.
    pub fn lr(&self, lr: f64, k: u64, total: u64) -> f64 {
        let total = total.max(1);
        let (k, t) = (k as f64, total as f64);
        match self {
            Schedule::Constant => lr,
            Schedule::FixMatchCosine => lr * (7.0 * PI * k / (16.0 * t)).cos(),
            Schedule::Cosine { warmup } => {
                let w = *warmup as f64;
                if k < w {
                    lr * (k + 1.0) / w
                } else {
                    let progress = ((k - w) / (t - w).max(1.0)).min(1.0);
                    lr * 0.5 * (1.0 + (PI * progress).cos())
                }
            }
            Schedule::MultiStep { milestones, gamma } => {
                let passed = milestones.iter().filter(|m| k >= (**m * t).round()).count();
                lr * gamma.powi(passed as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        close(Schedule::Constant.lr(0.1, 50, 100), 0.1);
        close(Schedule::FixMatchCosine.lr(0.03, 0, 100), 0.03);
        close(Schedule::FixMatchCosine.lr(0.03, 100, 100), 0.03 * (7.0 * PI / 16.0).cos());
        let c = Schedule::Cosine { warmup: 10 };
        close(c.lr(1.0, 0, 110), 0.1);
        close(c.lr(1.0, 9, 110), 1.0);
        close(c.lr(1.0, 10, 110), 1.0);
        close(c.lr(1.0, 60, 110), 0.5);
        close(c.lr(1.0, 110, 110), 0.0);
        let m = Schedule::MultiStep { milestones: vec![0.5, 0.75], gamma: 0.2 };
        close(m.lr(1.0, 49, 100), 1.0);
        close(m.lr(1.0, 50, 100), 0.2);
        close(m.lr(1.0, 80, 100), 0.2 * 0.2);
    }
}
