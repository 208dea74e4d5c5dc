//! Recipe values that need more memory than the machine has fail validation, with `burnish check` and `burnish train`
//! alike, naming the key and where it was set, before anything is allocated; the shipped recipes all fit.

use std::path::{Path, PathBuf};

mod common;

use common::{burnish, text};

fn recipe(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes").join(rel)
}

/// Runs `burnish CMD quickstart.toml --set SET` in a fresh folder and checks it fails cleanly, naming `key`.
fn fails_naming(cmd: &str, set: &str, key: &str) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let quickstart = recipe("quickstart.toml");
    let out = burnish(&[cmd, quickstart.to_str().expect("utf-8 path"), "--set", set], tmp.path());
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{cmd} --set {set}: {msg}");
    assert!(msg.contains(&format!("error: --set {set}: {key}: the recipe needs at least")), "{cmd} --set {set}: {msg}");
    assert!(msg.contains("of memory but") && msg.contains("is available ("), "{msg}");
    assert!(!msg.contains("panicked") && !msg.contains("memory allocation"), "{msg}");
    assert!(!tmp.path().join("runs").exists(), "{cmd} --set {set}: a run folder was created");
}

#[test]
fn the_commands_from_the_issue_fail_naming_the_key() {
    // Both aborted the process ("memory allocation of … bytes failed", exit 134) before the budget existed.
    for cmd in ["check", "train"] {
        fails_naming(cmd, "data.batch_size=100000000", "data.batch_size");
        fails_naming(cmd, "data.synthetic_train_size=1000000000", "data.synthetic_train_size");
    }
}

#[test]
fn other_oversized_values_name_their_key() {
    let cases = [
        ("data.mu=1000000000", "data.mu"),
        ("data.prefetch=1000000000000", "data.prefetch"),
        ("data.synthetic_test_size=1000000000", "data.synthetic_test_size"),
        ("eval.batch_size=10000000000", "eval.batch_size"),
        ("model.arch=wrn-28-100000", "model.arch"),
    ];
    for (set, key) in cases {
        fails_naming("check", set, key);
    }
    // An image folder's size is only known from the recipe: the same rule applies before any file is read.
    let tmp = tempfile::tempdir().expect("temp dir");
    let quickstart = recipe("quickstart.toml");
    let args = ["--set", "data.dataset=image-folder", "--set", "data.image_size=1000000"];
    let out = burnish(&[&["check", quickstart.to_str().expect("utf-8 path")][..], &args[..]].concat(), tmp.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--set data.image_size=1000000: data.image_size: the recipe needs"), "{}", text(&out));
}

#[test]
fn a_value_written_in_the_file_is_named_with_its_line() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let quickstart = std::fs::read_to_string(recipe("quickstart.toml")).expect("quickstart recipe");
    let (line, _) =
        quickstart.lines().enumerate().find(|(_, l)| l.starts_with("batch_size")).expect("a batch_size line");
    let big = quickstart.replacen("batch_size = 16", "batch_size = 100000000", 1);
    assert_ne!(big, quickstart, "quickstart.toml sets batch_size = 16");
    std::fs::write(tmp.path().join("big.toml"), big).expect("write recipe");
    let out = burnish(&["check", "big.toml"], tmp.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let expected = format!("error: big.toml:{}:1: data.batch_size: the recipe needs at least", line + 1);
    assert!(text(&out).contains(&expected), "{}", text(&out));
}

#[test]
fn every_shipped_recipe_passes_check() {
    let mut recipes = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("recipes/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                recipes.push(path);
            }
        }
    }
    assert!(recipes.len() >= 10, "found only {recipes:?}");
    let tmp = tempfile::tempdir().expect("temp dir");
    for path in recipes {
        let out = burnish(&["check", path.to_str().expect("utf-8 path")], tmp.path());
        assert!(out.status.success(), "{}: {}", path.display(), text(&out));
    }
}
