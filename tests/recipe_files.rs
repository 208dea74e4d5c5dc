//! Every recipe shipped under `recipes/` parses, validates and round-trips.

use std::path::{Path, PathBuf};

use burnish::recipe::Recipe;

fn toml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            toml_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "toml") {
            found.push(path);
        }
    }
}

fn shipped() -> Vec<PathBuf> {
    let mut found = Vec::new();
    toml_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes"), &mut found);
    found.sort();
    found
}

#[test]
fn every_shipped_recipe_loads_and_round_trips() {
    let files = shipped();
    let names: Vec<String> = files.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into()).collect();
    for required in ["quickstart.toml", "quickstart-supervised.toml"] {
        assert!(names.iter().any(|n| n == required), "recipes/{required} is missing (found {names:?})");
    }
    for path in files {
        let r = Recipe::from_file(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!r.description.is_empty(), "{}: needs a description", path.display());
        let back = Recipe::from_str(&r.to_toml(), "resolved", &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, r, "{}", path.display());
    }
}

#[test]
fn quickstart_trio_shares_its_labelled_split() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let load = |name: &str| Recipe::from_file(&dir.join(name), &[]).unwrap_or_else(|e| panic!("{e}"));
    let (semi, fixmatch, sup) =
        (load("quickstart.toml"), load("quickstart-fixmatch.toml"), load("quickstart-supervised.toml"));
    let kinds = |r: &Recipe| r.stages.iter().map(|s| s.kind()).collect::<Vec<_>>();
    assert_eq!(kinds(&semi), ["supervised", "fixmatch", "iam-d"]);
    assert_eq!(kinds(&fixmatch), ["supervised", "fixmatch"]);
    assert_eq!(kinds(&sup), ["supervised"]);
    assert_eq!(sup.data.mu, 0);
    assert!(semi.data.mu > 0);
    // The IAM-D ablation differs from the quick start by its last stage only.
    assert_eq!(fixmatch.stages[..], semi.stages[..2]);
    assert_eq!(
        (&fixmatch.data, &fixmatch.optimizer, &fixmatch.schedule),
        (&semi.data, &semi.optimizer, &semi.schedule)
    );
    // Same data set, labels and split seed: the same labelled images, so the comparison is fair.
    for other in [&fixmatch, &sup] {
        assert_eq!(semi.data.dataset, other.data.dataset);
        assert_eq!(semi.data.labels_per_class, other.data.labels_per_class);
        assert_eq!(semi.split_seed(), other.split_seed());
        assert_eq!(semi.data.batch_size, other.data.batch_size);
        assert_eq!(semi.model, other.model);
    }
}
