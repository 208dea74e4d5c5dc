//! Checks that types cannot express: ranges (delegated to each section) and rules that tie sections together
//! (a stage's needs against the data streams, the model and the other stages).

use burnish_augment::View;

use super::budget;
use super::check::{Check, Problem};
use super::stage::{IamDSource, StageSpec};
use super::update::PerturbedLossKind;
use super::Recipe;

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
    if r.update.loss == PerturbedLossKind::Labeled && !r.stages.iter().any(|s| matches!(s, StageSpec::Supervised(_))) {
        return Err(Problem::new(
            "update.loss",
            "\"labeled\" perturbs the labelled loss, but no stage computes one: add a [[stage]] kind = \"supervised\"",
        ));
    }
    if let Some(m) = r.update.m {
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

/// What the `i`-th stage needs from the rest of the recipe.
fn stage_needs(r: &Recipe, i: usize, stage: &StageSpec) -> Check {
    let data = &r.data;
    let kind = stage.kind();
    let needs_unlabeled = || {
        if data.has_unlabeled_stream() {
            Ok(())
        } else {
            Err(Problem::new("data.mu", format!("must be > 0: stage.{i} ({kind}) needs an unlabeled stream, got 0")))
        }
    };
    let needs_weak_and_strong = || {
        if data.unlabeled_views.contains(&View::Weak) && data.unlabeled_views.contains(&View::Strong) {
            Ok(())
        } else {
            Err(Problem::new(
                "data.unlabeled_views",
                format!(
                    "must include \"weak\" and \"strong\": stage.{i} ({kind}) compares them, got {}",
                    list(&data.unlabeled_views)
                ),
            ))
        }
    };
    let needs_projection = |key: String| {
        if r.model.projection.is_some() {
            Ok(())
        } else {
            Err(Problem::new(
                key,
                format!("stage.{i} ({kind}) needs a projection head: add a [model.projection] table"),
            ))
        }
    };
    match stage {
        StageSpec::Supervised(s) => {
            if data.labels_per_class == Some(0) {
                return Err(Problem::new(
                    "data.labels_per_class",
                    format!("must be >= 1 (or absent for all labels): stage.{i} (supervised) needs labels, got 0"),
                ));
            }
            if !data.labeled_views.contains(&s.view) {
                return Err(Problem::new(
                    format!("stage.{i}.view"),
                    format!("{:?} is not among data.labeled_views {}", s.view.name(), list(&data.labeled_views)),
                ));
            }
            Ok(())
        }
        StageSpec::FixMatch(_) | StageSpec::Ggcr(_) => {
            needs_unlabeled()?;
            needs_weak_and_strong()
        }
        StageSpec::NtXent(_) => {
            needs_projection("model.projection".to_string())?;
            needs_unlabeled()?;
            if data.unlabeled_views.len() != 2 {
                return Err(Problem::new(
                    "data.unlabeled_views",
                    format!(
                        "must list exactly two views for stage.{i} (ntxent), e.g. [\"simclr\", \"simclr\"], got {}",
                        list(&data.unlabeled_views)
                    ),
                ));
            }
            Ok(())
        }
        StageSpec::IamD(s) => match s.source {
            IamDSource::Projection => {
                needs_projection(format!("stage.{i}.source"))?;
                if !r.stages.iter().any(|s| matches!(s, StageSpec::NtXent(_))) {
                    return Err(Problem::new(
                        format!("stage.{i}.source"),
                        "\"projection\" needs an ntxent stage (its logits define the distribution)",
                    ));
                }
                Ok(())
            }
            IamDSource::Batch => {
                let weak_unlabeled = data.has_unlabeled_stream() && data.unlabeled_views.contains(&View::Weak);
                if data.labeled_views.contains(&View::Weak) || weak_unlabeled {
                    Ok(())
                } else {
                    Err(Problem::new(
                        format!("stage.{i}.source"),
                        "\"batch\" needs a \"weak\" view in data.labeled_views or (with data.mu > 0) data.unlabeled_views",
                    ))
                }
            }
        },
    }
}
