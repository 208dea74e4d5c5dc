//! The progress bar of a run: steps done, and the step's loss, learning rate, FixMatch mask rate, Ŝ_ρ and speed.

use indicatif::{ProgressBar, ProgressStyle};

use crate::train::StepReport;

/// Metric of the IAM-S update rule; stage metrics carry their stage's prefix instead.
const RULE_S_RHO: &str = "s_rho";

/// The bar, and the exact metric names its message reads (fixed at run start, so no step guesses at names).
pub(super) struct Progress {
    bar: ProgressBar,
    /// `<stage>/mask_rate` of every stage, in the order the step reports them; the first one reported is shown.
    mask_rate: Vec<String>,
    /// `<stage>/s_rho` of every stage (IAM-D), then the update rule's (IAM-S): the first one reported is shown.
    s_rho: Vec<String>,
}

impl Progress {
    /// A bar at step `start` of `total` (hidden unless `show`), for an objective whose stages report their metrics
    /// under `stage_names` (see `Objective::stage_names`).
    pub(super) fn new(show: bool, total: u64, start: u64, stage_names: &[String]) -> Self {
        let bar = if show {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}")
                    .expect("a valid template"),
            );
            bar.set_position(start);
            bar
        } else {
            ProgressBar::hidden()
        };
        let of_stages = |metric: &str| stage_names.iter().map(|s| format!("{s}/{metric}")).collect::<Vec<_>>();
        let mut s_rho = of_stages("s_rho");
        s_rho.push(RULE_S_RHO.to_string());
        Self { bar, mask_rate: of_stages("mask_rate"), s_rho }
    }

    /// Shows the step just taken; `measured` is the latest Ŝ_ρ of the fixed batch, for objectives without one.
    pub(super) fn update(&self, report: &StepReport, images_per_s: f64, measured: Option<f64>) {
        let get = |k: &str| report.metrics.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        let first = |names: &[String]| names.iter().find_map(|n| get(n));
        let mut msg = format!("loss {:.4} lr {:.4}", get("loss").unwrap_or(f64::NAN), report.lr);
        if let Some(m) = first(&self.mask_rate) {
            msg += &format!(" mask {m:.2}");
        }
        if let Some(s) = first(&self.s_rho).or(measured) {
            msg += &format!(" Ŝρ {s:.2e}");
        }
        msg += &format!(" {images_per_s:.0} img/s");
        self.bar.set_message(msg);
        self.bar.set_position(report.step + 1);
    }

    /// Removes the bar, before the run's last messages.
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(metrics: &[(&str, f64)]) -> StepReport {
        StepReport {
            step: 4,
            lr: 0.5,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            nonfinite: None,
        }
    }

    fn message(stages: &[&str], metrics: &[(&str, f64)], measured: Option<f64>) -> String {
        let names: Vec<String> = stages.iter().map(|s| s.to_string()).collect();
        let p = Progress::new(false, 10, 0, &names);
        p.update(&report(metrics), 100.0, measured);
        p.bar.message()
    }

    #[test]
    fn the_loss_is_the_total_and_stage_metrics_are_found_by_their_exact_names() {
        let m = message(
            &["supervised", "fixmatch", "iam-d"],
            &[
                ("supervised/loss", 2.0),
                ("fixmatch/loss", 3.0),
                ("fixmatch/mask_rate", 0.25),
                ("iam-d/loss", 4.0),
                ("iam-d/s_rho", 0.5),
                ("loss", 1.0),
                ("grad_norm", 9.0),
            ],
            Some(7.0),
        );
        assert_eq!(m, "loss 1.0000 lr 0.5000 mask 0.25 Ŝρ 5.00e-1 100 img/s");
    }

    #[test]
    fn repeated_kinds_and_the_rule_s_rho_are_found() {
        let m = message(
            &["fixmatch.0", "fixmatch.1"],
            &[("fixmatch.0/mask_rate", 0.5), ("fixmatch.1/mask_rate", 0.75), ("loss", 1.0), ("s_rho", 0.125)],
            None,
        );
        assert_eq!(m, "loss 1.0000 lr 0.5000 mask 0.50 Ŝρ 1.25e-1 100 img/s");
    }

    #[test]
    fn names_that_only_end_like_a_shown_metric_are_not_shown() {
        let m = message(&["supervised"], &[("other/mask_rate", 0.5), ("other/s_rho", 0.5), ("loss", 1.0)], Some(2.0));
        assert_eq!(m, "loss 1.0000 lr 0.5000 Ŝρ 2.00e0 100 img/s");
    }
}
