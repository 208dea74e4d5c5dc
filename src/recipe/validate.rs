//! Checks that types cannot express: ranges (delegated to each section) and rules that tie sections together
//! (a stage's needs against the data streams, the model and the other stages).

use burnish_augment::View;

use super::budget;
use super::Recipe;
use crate::check::{Check, Problem};
use crate::stage::StageSpec;
use crate::step::Stream;
use crate::update::PerturbedLossKind;

/// Every rule a loaded recipe must satisfy; the first broken one is returned.
pub(crate) fn recipe(r: &Recipe) -> Check {
    name(&r.name)?;
    if r.description.contains('\n') {
        return Err(Problem::new("description", "must be a single line (it is listed by `burnish recipes`)"));
    }
    r.data.validate()?;
    r.model.validate()?;
    if r.stages.is_empty() {
        return Err(Problem::new(
            "stage",
            format!("at least one [[stage]] table is required (kinds: {})", StageSpec::KINDS.join(", ")),
        ));
    }
    for (i, stage) in r.stages.iter().enumerate() {
        stage.validate(i)?;
        stage_needs(r, i, stage)?;
    }
    r.update.validate()?;
    if r.update.perturbed_loss() == PerturbedLossKind::Labeled
        && !r.stages.iter().any(|s| matches!(s, StageSpec::Supervised(_)))
    {
        return Err(Problem::new(
            "update.loss",
            "\"labeled\" perturbs the labelled loss, but no stage computes one: add a [[stage]] kind = \"supervised\"",
        ));
    }
    if let Some(m) = r.update.m() {
        if !r.data.batch_size.is_multiple_of(m) {
            return Err(Problem::new(
                "update.m",
                format!("must divide data.batch_size ({}), got {m}", r.data.batch_size),
            ));
        }
    }
    r.optimizer.validate()?;
    r.schedule.validate()?;
    r.ema.validate()?;
    r.eval.validate()?;
    // The target is checked against the training accuracy that evaluations measure, so some must run.
    if r.schedule.stop_at_train_acc.is_some() && r.eval.every == 0 {
        return Err(Problem::new(
            "schedule.stop_at_train_acc",
            "needs eval.every > 0: training accuracy is checked at each evaluation, and eval.every is 0",
        ));
    }
    r.checkpoint.validate()?;
    r.train.validate()?;
    // Last, once every value it multiplies has passed its own range check.
    budget::check(r)
}

/// Recipe names become run-folder names, so they are kept to characters that are safe in paths.
fn name(name: &str) -> Check {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.starts_with('.') || !name.chars().all(safe) {
        return Err(Problem::new(
            "name",
            format!("must be letters, digits, '-', '_' and '.' (not first), as it names run folders; got {name:?}"),
        ));
    }
    Ok(())
}

fn list(views: &[View]) -> String {
    let names: Vec<String> = views.iter().map(|v| format!("{:?}", v.name())).collect();
    format!("[{}]", names.join(", "))
}

/// Checks the `i`-th stage's declared [`Needs`] against what the recipe supplies: one rule set for every kind.
fn stage_needs(r: &Recipe, i: usize, stage: &StageSpec) -> Check {
    let supply = r.supply();
    let needs = stage.needs(i, &supply)?;
    let kind = stage.kind();
    let who = format!("stage.{i} ({kind})");
    // An unmet need caused by one of the stage's own keys is reported at that key.
    let own = |fallback: &str| needs.chosen_by.map_or(fallback.to_string(), |k| format!("stage.{i}.{k}"));
    if needs.projection && !supply.projection {
        return Err(Problem::new(
            own("model.projection"),
            format!("{who} needs a projection head: add a [model.projection] table"),
        ));
    }
    if needs.own_gradient && r.update.name() != "plain" {
        return Err(Problem::new(
            "update.rule",
            format!(
                "{who} computes its gradient by extra passes that a {:?} step cannot repeat at θ + ε: use \"plain\"",
                r.update.name()
            ),
        ));
    }
    for other in &needs.stages {
        if !r.stages.iter().any(|s| s.kind() == *other) {
            return Err(Problem::new(own("stage"), format!("{who} builds on a [[stage]] kind = {other:?}: add one")));
        }
    }
    if needs.labels && supply.labels_per_class == Some(0) {
        return Err(Problem::new(
            "data.labels_per_class",
            format!("must be >= 1 (or absent for all labels): {who} needs labels, got 0"),
        ));
    }
    let unlabeled = needs.of(Stream::Unlabeled);
    if !unlabeled.is_empty() && !supply.unlabeled_stream {
        return Err(Problem::new("data.mu", format!("must be > 0: {who} needs an unlabeled stream, got 0")));
    }
    for (stream, wanted, listed) in
        [("labeled", needs.of(Stream::Labeled), supply.labeled_views), ("unlabeled", unlabeled, supply.unlabeled_views)]
    {
        // A view wanted n times (SimCLR's two copies) must be listed at least n times.
        let short = |v: &View| wanted.iter().filter(|w| *w == v).count() > listed.iter().filter(|l| *l == v).count();
        let Some(missing) = wanted.iter().find(|v| short(v)) else { continue };
        let key = format!("data.{stream}_views");
        return Err(match needs.chosen_by {
            Some(k) if wanted.len() == 1 => Problem::new(
                format!("stage.{i}.{k}"),
                format!("{:?} is not among {key} {}", missing.name(), list(listed)),
            ),
            _ => {
                let names: Vec<String> = wanted.iter().map(|v| format!("{:?}", v.name())).collect();
                Problem::new(
                    key,
                    format!("must include {}: {who} reads them, got {}", names.join(" and "), list(listed)),
                )
            }
        });
    }
    Ok(())
}
