//! Malformed recipes and overrides: each must fail with a message that names the key path and, for file errors,
//! the `file:line:column` of that key.

use burnish::recipe::{Location, Recipe, RecipeError};

/// A valid recipe; the cases below edit single lines so the line numbers in the expectations stay put.
const BASE: &str = r#"name = "t"
seed = 1

[data]
dataset = "synthetic"
labels_per_class = 4
batch_size = 32
mu = 7

[model]
arch = "cnn-small"

[[stage]]
kind = "supervised"

[[stage]]
kind = "fixmatch"
threshold = 0.95

[[stage]]
kind = "iam-d"
rho = 0.05

[optimizer]
lr = 0.03

[schedule]
steps = 100
"#;

/// BASE with 1-based line `n` replaced by `text` (which may hold several lines).
fn edit(n: usize, text: &str) -> String {
    let mut lines: Vec<&str> = BASE.lines().collect();
    lines[n - 1] = text;
    lines.join("\n") + "\n"
}

/// BASE with `text` appended.
fn append(text: &str) -> String {
    format!("{BASE}{text}\n")
}

/// Which variant an error must be.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Syntax,
    UnknownKey,
    MissingKey,
    BadValue,
    Invalid,
    Override,
}

fn kind_matches(kind: Kind, err: &RecipeError) -> bool {
    matches!(
        (kind, err),
        (Kind::Syntax, RecipeError::Syntax { .. })
            | (Kind::UnknownKey, RecipeError::UnknownKey { .. })
            | (Kind::MissingKey, RecipeError::MissingKey { .. })
            | (Kind::BadValue, RecipeError::BadValue { .. })
            | (Kind::Invalid, RecipeError::Invalid { .. })
            | (Kind::Override, RecipeError::Override { .. })
    )
}

struct Case {
    what: &'static str,
    text: String,
    overrides: Vec<&'static str>,
    kind: Kind,
    /// The start of the message: `t.toml:L:C: key: ` for file errors, `--set ARG: key: ` for overrides.
    prefix: String,
    /// A fragment of the explanation.
    says: &'static str,
}

fn at(line: usize, column: usize, key: &str) -> String {
    format!("t.toml:{line}:{column}: {key}: ")
}

fn cases() -> Vec<Case> {
    let case = |what, text, kind, prefix: String, says| Case { what, text, overrides: vec![], kind, prefix, says };
    let set = |what, overrides: Vec<&'static str>, kind, prefix: &str, says| Case {
        what,
        text: BASE.to_string(),
        overrides,
        kind,
        prefix: prefix.to_string(),
        says,
    };
    vec![
        case(
            "unknown key",
            edit(6, "labels_per_clas = 4"),
            Kind::UnknownKey,
            at(6, 1, "data.labels_per_clas"),
            "unknown key (expected one of: dataset, path, labels_per_class, batch_size, mu,",
        ),
        case(
            "wrong type",
            edit(7, r#"batch_size = "32""#),
            Kind::BadValue,
            at(7, 1, "data.batch_size"),
            r#"invalid type: string "32", expected usize"#,
        ),
        case(
            "negative count",
            edit(7, "batch_size = -32"),
            Kind::BadValue,
            at(7, 1, "data.batch_size"),
            "invalid value: integer `-32`, expected usize",
        ),
        case(
            "unknown stage kind",
            edit(17, r#"kind = "fixmatch2""#),
            Kind::BadValue,
            at(17, 1, "stage.1.kind"),
            r#"unknown stage kind "fixmatch2" (expected one of: supervised, fixmatch, iam-d, ntxent, entropy, ggcr)"#,
        ),
        case(
            "unknown key in a stage",
            edit(18, "thresh = 0.9"),
            Kind::UnknownKey,
            at(18, 1, "stage.1.thresh"),
            "unknown key (expected one of: weight, threshold, pseudo_labels, temperature, normalize, start_step, ramp_steps)",
        ),
        case(
            "wrong type in a stage",
            edit(22, r#"rho = "small""#),
            Kind::BadValue,
            at(22, 1, "stage.2.rho"),
            r#"invalid type: string "small", expected f64"#,
        ),
        case(
            "negative learning rate",
            edit(25, "lr = -0.1"),
            Kind::Invalid,
            at(25, 1, "optimizer.lr"),
            "must be > 0, got -0.1",
        ),
        case(
            "missing dataset",
            edit(5, ""),
            Kind::MissingKey,
            // The missing key has no place; the error points at its section.
            at(4, 1, "data.dataset"),
            "required key is missing",
        ),
        case(
            "unknown dataset",
            edit(5, r#"dataset = "imagenet""#),
            Kind::BadValue,
            at(5, 1, "data.dataset"),
            r#"unknown data set "imagenet""#,
        ),
        case(
            "fixmatch without an unlabeled stream",
            edit(8, "mu = 0"),
            Kind::Invalid,
            at(8, 1, "data.mu"),
            "stage.1 (fixmatch) needs an unlabeled stream",
        ),
        case(
            "fixmatch without a strong view",
            edit(9, r#"unlabeled_views = ["weak", "weak"]"#),
            Kind::Invalid,
            at(9, 1, "data.unlabeled_views"),
            r#"must include "weak" and "strong""#,
        ),
        case(
            "threshold 1.5",
            edit(18, "threshold = 1.5"),
            Kind::Invalid,
            at(18, 1, "stage.1.threshold"),
            "must be in (0, 1], got 1.5",
        ),
        case("rho 0", edit(22, "rho = 0.0"), Kind::Invalid, at(22, 1, "stage.2.rho"), "must be > 0, got 0"),
        case(
            "ascent_fraction above 1",
            edit(22, "ascent_fraction = 1.5"),
            Kind::Invalid,
            at(22, 1, "stage.2.ascent_fraction"),
            "must be in (0, 1], got 1.5",
        ),
        case(
            "batch_fraction 0",
            edit(22, "batch_fraction = 0.0"),
            Kind::Invalid,
            at(22, 1, "stage.2.batch_fraction"),
            "must be in (0, 1], got 0",
        ),
        case(
            "projection source without a head",
            edit(22, r#"source = "projection""#),
            Kind::Invalid,
            at(22, 1, "stage.2.source"),
            "needs a projection head",
        ),
        case(
            "ntxent without a head",
            edit(17, r#"kind = "ntxent""#).replace("threshold = 0.95", "temperature = 0.5"),
            Kind::Invalid,
            at(10, 1, "model.projection"),
            "stage.1 (ntxent) needs a projection head",
        ),
        case(
            "supervised view not produced",
            edit(15, r#"view = "strong""#),
            Kind::Invalid,
            at(15, 1, "stage.0.view"),
            r#""strong" is not among data.labeled_views ["weak"]"#,
        ),
        case(
            "m does not divide the batch",
            append("[update]\nrule = \"sam\"\nm = 5"),
            Kind::Invalid,
            at(31, 1, "update.m"),
            "must divide data.batch_size (32), got 5",
        ),
        case(
            "warmup >= steps",
            append("warmup = 100"),
            Kind::Invalid,
            at(29, 1, "schedule.warmup"),
            "must be < schedule.steps (100), got 100",
        ),
        case(
            "bad arch string",
            edit(11, r#"arch = "wrn-27-2""#),
            Kind::BadValue,
            at(11, 1, "model.arch"),
            "(depth - 4) must be a positive multiple of 6",
        ),
        case(
            "bad view name",
            edit(9, r#"labeled_views = ["weak", "strang"]"#),
            Kind::BadValue,
            at(9, 1, "data.labeled_views"),
            r#"unknown augmentation view "strang""#,
        ),
        case(
            "unknown section",
            append("[optimiser]\nlr = 0.1"),
            Kind::UnknownKey,
            at(29, 1, "optimiser"),
            "unknown section (expected one of: name, description, seed, data, model, stage, update, optimizer,",
        ),
        case(
            "unknown enum name",
            append("[update]\nrule = \"sharp\""),
            Kind::BadValue,
            at(30, 1, "update.rule"),
            "unknown variant `sharp`, expected one of `plain`, `sam`, `asam`, `iam-s`",
        ),
        case(
            "duplicate key",
            edit(9, "mu = 8"),
            Kind::Syntax,
            at(9, 1, "data.mu"),
            "duplicate key `mu` in table `data`",
        ),
        case("not TOML", edit(8, "mu = = 7"), Kind::Syntax, "t.toml:8:6: ".to_string(), "invalid string"),
        case(
            "stage written as a single table",
            edit(13, "[stage]").replace("[[stage]]", "[[other]]"),
            Kind::BadValue,
            at(13, 1, "stage"),
            "must be an array of tables written [[stage]], got a table",
        ),
        case(
            "label smoothing 1",
            edit(15, "label_smoothing = 1.0"),
            Kind::Invalid,
            at(15, 1, "stage.0.label_smoothing"),
            "must be in [0, 1), got 1",
        ),
        case(
            "missing schedule",
            BASE.replace("[schedule]\nsteps = 100\n", ""),
            Kind::MissingKey,
            "t.toml: schedule: ".to_string(),
            "required section [schedule] is missing",
        ),
        set(
            "override path into a stage that does not exist",
            vec!["stage.9.beta=1"],
            Kind::Override,
            "--set stage.9.beta=1: stage.9: ",
            "no such stage: the recipe has 3 [[stage]] tables (indices 0 to 2)",
        ),
        set("override without '='", vec!["stage.1.beta"], Kind::Override, "--set stage.1.beta: ", "expected KEY=VALUE"),
        set(
            "override with a bad key",
            vec!["stage..beta=1"],
            Kind::Override,
            "--set stage..beta=1: ",
            r#"bad key "stage..beta""#,
        ),
        set(
            "override of the wrong type",
            vec!["stage.2.beta=abc"],
            Kind::BadValue,
            "--set stage.2.beta=abc: stage.2.beta: ",
            r#"invalid type: string "abc", expected f64"#,
        ),
        set(
            "override out of range",
            vec!["stage.1.threshold=0"],
            Kind::Invalid,
            "--set stage.1.threshold=0: stage.1.threshold: ",
            "must be in (0, 1], got 0",
        ),
        set(
            "override adding an unknown key",
            vec!["data.labels_per_clas=3"],
            Kind::UnknownKey,
            "--set data.labels_per_clas=3: data.labels_per_clas: ",
            "unknown key (expected one of: dataset,",
        ),
    ]
}

#[test]
fn every_malformed_recipe_is_rejected_with_its_key_and_place() {
    let cases = cases();
    assert!(cases.len() >= 15);
    for case in cases {
        let overrides: Vec<String> = case.overrides.iter().map(|s| s.to_string()).collect();
        let err = match Recipe::from_str(&case.text, "t.toml", &overrides) {
            Ok(_) => panic!("{}: accepted", case.what),
            Err(err) => err,
        };
        let msg = err.to_string();
        assert!(msg.starts_with(&case.prefix), "{}: {msg:?} should start with {:?}", case.what, case.prefix);
        assert!(msg.contains(case.says), "{}: {msg:?} should say {:?}", case.what, case.says);
        assert!(kind_matches(case.kind, &err), "{}: expected {:?}, got {err:?}", case.what, case.kind);
        assert!(!msg.contains('\n'), "{}: one line expected, got {msg:?}", case.what);
    }
}

#[test]
fn errors_expose_key_and_location() {
    let err = Recipe::from_str(&edit(18, "threshold = 1.5"), "recipes/x.toml", &[]).expect_err("threshold 1.5");
    assert_eq!(err.to_string(), "recipes/x.toml:18:1: stage.1.threshold: must be in (0, 1], got 1.5");
    assert_eq!(err.key(), Some("stage.1.threshold"));
    assert_eq!(err.location(), Some(&Location::Position { origin: "recipes/x.toml".into(), line: 18, column: 1 }));

    let err = Recipe::from_str(BASE, "t.toml", &["stage.1.threshold=2".to_string()]).expect_err("threshold 2");
    assert_eq!(err.location(), Some(&Location::Override { arg: "stage.1.threshold=2".into() }));
}

#[test]
fn a_later_override_fixes_an_earlier_one_and_the_file() {
    // The file's value is wrong, the first override is wrong, the last one is right: the recipe loads.
    let text = edit(18, "threshold = 1.5");
    let sets = ["stage.1.threshold=7".to_string(), "stage.1.threshold=0.5".to_string()];
    let r = Recipe::from_str(&text, "t.toml", &sets).expect("the last override wins");
    let burnish::recipe::StageSpec::FixMatch(f) = &r.stages[1] else { panic!("stage 1 is fixmatch") };
    assert_eq!(f.threshold, 0.5);
}

#[test]
fn a_missing_file_names_the_path() {
    let path = std::path::Path::new("/nonexistent/recipe-that-is-not-there.toml");
    let err = Recipe::from_file(path, &[]).expect_err("no such file");
    assert!(matches!(err, RecipeError::Read { .. }), "{err:?}");
    assert!(err.to_string().starts_with("/nonexistent/recipe-that-is-not-there.toml: cannot read recipe"), "{err}");
}

#[test]
fn file_errors_name_the_file_they_were_read_from() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, edit(25, "lr = 0")).expect("write recipe");
    let err = Recipe::from_file(&path, &[]).expect_err("lr 0");
    assert_eq!(err.to_string(), format!("{}:25:1: optimizer.lr: must be > 0, got 0", path.display()));
}
