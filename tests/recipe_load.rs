//! Loading valid recipes: defaults are filled in, `--set` overrides change exactly what they name, and the
//! resolved TOML reads back to the same recipe.

use burnish::data::DatasetKind;
use burnish::recipe::{
    Arch, AsamSpec, CheckpointSection, EmaSection, EvalSection, FixMatchNormalize, FixMatchSpec, GgcrSpec,
    IamDDistribution, IamDSource, IamDSpec, IamSSpec, NtXentSpec, OptimizerKind, OptimizerSection, PerturbedLossKind,
    PlainSpec, ProbeOptimizer, ProjectionSection, PseudoLabelKind, Recipe, SamSpec, ScheduleKind, StageSpec,
    SupervisedSpec, UnlabeledPool, UpdateSection,
};
use burnish_augment::View;

const MINIMAL: &str = r#"
name = "minimal"
seed = 7

[data]
dataset = "synthetic"
labels_per_class = 4
mu = 7

[model]
arch = "cnn-small"

[[stage]]
kind = "supervised"

[[stage]]
kind = "fixmatch"

[[stage]]
kind = "iam-d"

[schedule]
steps = 100
"#;

fn load(text: &str, sets: &[&str]) -> Recipe {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Recipe::from_str(text, "test.toml", &sets).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn defaults_are_filled_in() {
    let r = load(MINIMAL, &[]);
    assert_eq!(r.name, "minimal");
    assert_eq!(r.description, "");
    assert_eq!(r.seed, 7);

    let d = &r.data;
    assert_eq!(d.dataset, DatasetKind::Synthetic);
    assert_eq!(d.path, None);
    assert_eq!(d.labels_per_class, Some(4));
    assert_eq!(d.batch_size, 64);
    assert_eq!(d.mu, 7);
    assert_eq!(d.unlabeled, UnlabeledPool::All);
    assert_eq!(d.labeled_views, vec![View::Weak]);
    assert_eq!(d.unlabeled_views, vec![View::Weak, View::Strong]);
    assert_eq!((d.workers, d.prefetch), (2, 4));
    assert_eq!((d.image_size, d.image_channels), (32, 3));
    assert_eq!((d.synthetic_train_size, d.synthetic_test_size), (10_000, 2_000));
    // Absent split seed = the run seed, written out so a saved recipe is explicit.
    assert_eq!(d.split_seed, Some(7));
    assert_eq!(r.split_seed(), 7);

    assert_eq!(r.model.arch, Arch::CnnSmall);
    assert_eq!(r.model.projection, None);

    assert_eq!(
        r.stages,
        vec![
            StageSpec::Supervised(SupervisedSpec {
                weight: 1.0,
                view: View::Weak,
                label_smoothing: 0.0,
                start_step: 0,
                ramp_steps: 0
            }),
            StageSpec::FixMatch(FixMatchSpec {
                weight: 1.0,
                threshold: 0.95,
                pseudo_labels: PseudoLabelKind::Hard,
                temperature: 1.0,
                normalize: FixMatchNormalize::All,
                start_step: 0,
                ramp_steps: 0
            }),
            StageSpec::IamD(IamDSpec {
                beta: 1.0,
                rho: 0.1,
                sigma: 1e-3,
                steps: 1,
                source: IamDSource::Batch,
                distribution: IamDDistribution::Ntxent,
                ascent_fraction: 1.0,
                batch_fraction: 1.0,
                start_step: 0,
                ramp_steps: 0
            }),
        ]
    );
    assert_eq!(r.update, UpdateSection::Plain(PlainSpec {}));
    assert_eq!(
        r.optimizer,
        OptimizerSection {
            kind: OptimizerKind::Sgd,
            lr: 0.03,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            decay_bias_and_norm: false,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    );
    assert_eq!(r.schedule.kind, ScheduleKind::Cosine);
    assert_eq!(r.schedule.steps, 100);
    assert_eq!(r.schedule.warmup, 0);
    assert_eq!(r.schedule.milestones, vec![0.5, 0.75]);
    assert_eq!(r.schedule.gamma, 0.2);
    assert_eq!(r.ema, EmaSection { decay: 0.999, enabled: true });
    assert_eq!(
        r.eval,
        EvalSection {
            every: 0,
            batch_size: 256,
            train_images: 1024,
            probe_every: 0,
            measure_every: 0,
            probe_epochs: 100,
            probe_batch_size: 256,
            probe_lr: 0.1,
            probe_optimizer: ProbeOptimizer::Sgd,
            knn_k: 200,
            knn_temperature: 0.1,
        }
    );
    assert_eq!(r.checkpoint, CheckpointSection { every: 1000, keep: 2 });
}

#[test]
fn overrides_change_what_they_name_and_nothing_else() {
    let base = load(MINIMAL, &[]);
    let r = load(
        MINIMAL,
        &[
            "data.labels_per_class=25",
            "stage.2.beta=10",
            "model.arch=wrn-28-2",
            "update.rule=sam",
            "update.m=16",
            r#"data.unlabeled_views = ["weak", "strong", "simclr"]"#,
            "stage.1.normalize=confident",
            "description=a b c",
            "seed=3",
            "seed=4",
        ],
    );
    assert_eq!(r.data.labels_per_class, Some(25));
    let StageSpec::IamD(iam) = &r.stages[2] else { panic!("stage 2 is iam-d") };
    assert_eq!(iam.beta, 10.0);
    assert_eq!(r.model.arch, Arch::Wrn { depth: 28, widen: 2 });
    assert_eq!(r.update, UpdateSection::Sam(SamSpec { rho: 0.05, loss: PerturbedLossKind::All, m: Some(16) }));
    assert_eq!(r.data.unlabeled_views, vec![View::Weak, View::Strong, View::SimClr]);
    let StageSpec::FixMatch(fm) = &r.stages[1] else { panic!("stage 1 is fixmatch") };
    assert_eq!(fm.normalize, FixMatchNormalize::Confident);
    // A value that is not TOML is taken as a plain string.
    assert_eq!(r.description, "a b c");
    // The last override of a key wins; the split seed follows the run seed when the file does not set it.
    assert_eq!((r.seed, r.data.split_seed), (4, Some(4)));

    // Everything not named is as before.
    let mut expected = base.clone();
    expected.data.labels_per_class = Some(25);
    expected.stages[2] = StageSpec::IamD(IamDSpec { beta: 10.0, ..iam.clone() });
    expected.model.arch = Arch::Wrn { depth: 28, widen: 2 };
    expected.update = r.update.clone();
    expected.data.unlabeled_views = vec![View::Weak, View::Strong, View::SimClr];
    expected.stages[1] = StageSpec::FixMatch(FixMatchSpec { normalize: FixMatchNormalize::Confident, ..fm.clone() });
    expected.description = "a b c".into();
    expected.seed = 4;
    expected.data.split_seed = Some(4);
    assert_eq!(r, expected);
}

/// A recipe that sets every key to something other than its default.
const EVERYTHING: &str = r#"
name = "everything"
description = "every key set"
seed = 11

[data]
dataset = "cifar10"
path = "/data/cifar10"
batch_size = 48
mu = 3
unlabeled = "rest"
labeled_views = ["none", "weak"]
unlabeled_views = ["simclr", "simclr"]
workers = 3
prefetch = 5
image_size = 28
image_channels = 1
synthetic_train_size = 100
synthetic_test_size = 20
split_seed = 99

[model]
arch = "resnet18-cifar"

[model.projection]
hidden = 256
dim = 64

[[stage]]
kind = "ntxent"
weight = 0.5
temperature = 0.2

[[stage]]
kind = "iam-d"
beta = 10.0
rho = 0.2
sigma = 0.0
steps = 3
source = "projection"
distribution = "components"

[[stage]]
kind = "supervised"
view = "none"
weight = 2.0
label_smoothing = 0.1

[[stage]]
kind = "ggcr"
weight = 0.3
h = 0.01

[update]
rule = "iam-s"
rho = 0.5
sigma = 0.01
steps = 2
m = 12

[optimizer]
kind = "adamw"
lr = 0.001
momentum = 0.0
nesterov = false
weight_decay = 0.0
decay_bias_and_norm = true
beta1 = 0.8
beta2 = 0.99
epsilon = 1e-6

[schedule]
kind = "multistep"
steps = 5000
warmup = 10
milestones = [0.3, 0.6, 0.9]
gamma = 0.1

[ema]
decay = 0.99
enabled = false

[eval]
every = 500
batch_size = 100
probe_every = 1000
measure_every = 250

[checkpoint]
every = 0
keep = 5
"#;

#[test]
fn a_recipe_can_set_every_key() {
    let r = load(EVERYTHING.replace("[[stage]]\nkind = \"ggcr\"\nweight = 0.3\nh = 0.01\n", "").as_str(), &[]);
    assert_eq!(r.data.path.as_deref(), Some(std::path::Path::new("/data/cifar10")));
    assert_eq!(r.data.labels_per_class, None);
    assert_eq!(r.split_seed(), 99);
    assert_eq!(r.model.projection, Some(ProjectionSection { hidden: 256, dim: 64 }));
    assert_eq!(r.stages.iter().map(StageSpec::kind).collect::<Vec<_>>(), ["ntxent", "iam-d", "supervised"]);
    assert_eq!(r.stages.iter().map(StageSpec::weight).collect::<Vec<_>>(), [0.5, 10.0, 2.0]);
    assert_eq!(r.stages[0], StageSpec::NtXent(NtXentSpec { weight: 0.5, temperature: 0.2, ..NtXentSpec::default() }));
    assert!(r.has_stage("iam-d") && !r.has_stage("fixmatch"));
    assert_eq!(r.optimizer.kind, OptimizerKind::AdamW);
    assert_eq!(r.schedule.kind, ScheduleKind::Multistep);
}

#[test]
fn ggcr_needs_the_plain_rule_and_weak_and_strong_unlabeled_views() {
    let err = Recipe::from_str(EVERYTHING, "e.toml", &[]).expect_err("ggcr in a SimCLR recipe with iam-s");
    assert!(err.to_string().contains("update.rule: stage.3 (ggcr) computes its gradient by extra passes"), "{err}");
    let ggcr = MINIMAL.replace("kind = \"iam-d\"", "kind = \"ggcr\"\nh = 0.5");
    let r = load(&ggcr, &[]);
    assert_eq!(r.stages[2], StageSpec::Ggcr(GgcrSpec { h: 0.5, ..GgcrSpec::default() }));
    let err = Recipe::from_str(&ggcr, "g.toml", &["data.unlabeled_views=[\"weak\", \"weak\"]".into()])
        .expect_err("no strong view");
    assert!(err.to_string().contains("must include \"weak\" and \"strong\": stage.1 (fixmatch)"), "{err}");
}

#[test]
fn update_keys_belong_to_their_rule() {
    let r = load(MINIMAL, &["update.rule=asam", "update.eta=0.1"]);
    assert_eq!(r.update, UpdateSection::Asam(AsamSpec { eta: 0.1, ..AsamSpec::default() }));
    let r = load(MINIMAL, &["update.rule=iam-s", "update.steps=3"]);
    assert_eq!(r.update, UpdateSection::IamS(IamSSpec { steps: 3, ..IamSSpec::default() }));
    // A key of another rule is an error at its own path, not silently ignored; [update] without a rule is plain.
    let refused = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Recipe::from_str(MINIMAL, "m.toml", &sets).expect_err("a key the rule does not have").to_string()
    };
    let err = refused(&["update.rule=sam", "update.sigma=0.1"]);
    assert!(err.contains("update.sigma: does not apply to rule = \"sam\" (it is a key of iam-s)"), "{err}");
    let err = refused(&["update.m=4"]);
    assert!(err.contains("update.m: does not apply to rule = \"plain\" (it is a key of sam, asam, iam-s)"), "{err}");
    let err = refused(&["update.rule=sam", "update.rhoo=0.1"]);
    assert!(err.contains("update.rhoo: unknown key (expected one of: rho, loss, m)"), "{err}");
}

#[test]
fn to_toml_round_trips() {
    let everything = EVERYTHING.replace("[[stage]]\nkind = \"ggcr\"\nweight = 0.3\nh = 0.01\n", "");
    for text in [MINIMAL, everything.as_str()] {
        let r = load(text, &[]);
        let written = r.to_toml();
        let back = Recipe::from_str(&written, "written.toml", &[]).unwrap_or_else(|e| panic!("{e}\n{written}"));
        assert_eq!(back, r, "{written}");
        // Writing again gives the same text, and plain serde reads it too.
        assert_eq!(back.to_toml(), written);
        assert_eq!(toml::from_str::<Recipe>(&written).expect("serde reads the resolved recipe"), r);
    }
    // The resolved recipe spells defaults out.
    let written = load(MINIMAL, &[]).to_toml();
    for line in ["batch_size = 64", "threshold = 0.95", "split_seed = 7", "kind = \"iam-d\"", "keep = 2"] {
        assert!(written.lines().any(|l| l == line), "{line:?} missing from\n{written}");
    }
}

#[test]
fn stage_keys_may_come_before_kind() {
    let text = MINIMAL.replace("kind = \"fixmatch\"", "threshold = 0.5\nkind = \"fixmatch\"");
    let r = load(&text, &[]);
    let StageSpec::FixMatch(fm) = &r.stages[1] else { panic!("stage 1 is fixmatch") };
    assert_eq!(fm.threshold, 0.5);
}

#[test]
fn fully_supervised_recipes_need_no_unlabeled_stream() {
    let text = r#"
name = "sup"
[data]
dataset = "fashion-mnist"
[model]
arch = "wrn-16-8"
[[stage]]
kind = "supervised"
[[stage]]
kind = "iam-d"
beta = 1.0
[schedule]
steps = 10
"#;
    let r = load(text, &[]);
    assert_eq!(r.data.labels_per_class, None);
    assert!(!r.data.has_unlabeled_stream());
    assert_eq!(r.model.arch, Arch::Wrn { depth: 16, widen: 8 });
    // iam-d's batch source then needs the weak view on the labelled side.
    let err =
        Recipe::from_str(text, "s.toml", &["data.labeled_views=[\"strong\"]".into(), "stage.0.view=strong".into()])
            .expect_err("no weak view anywhere");
    assert!(err.to_string().contains("stage.1.source: \"batch\" needs a \"weak\" view"), "{err}");
}
