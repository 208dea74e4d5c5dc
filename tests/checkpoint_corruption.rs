//! Checkpoints refuse corruption (docs/checkpoints.md, "The checkpoint file"):
//! - a single flipped bit in any section of a real checkpoint (header, step, meta, model, optimizer, ema) is refused
//!   by `Checkpoint::read` with an error naming the file and the section whose CRC32C failed; so is a file cut at
//!   any section boundary or with a byte appended;
//! - `eval`, `export` and `measure` refuse such a file;
//! - `train --resume` skips a corrupt newest checkpoint for the newest good one, says so on stderr, and ends with the
//!   metrics of an uninterrupted run; with no good checkpoint left it stops with an error naming the corrupt ones
//!   and leaves the run folder as it was.
//!
//! The sections are located by parsing the documented layout here, independently of `src/checkpoint.rs`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use burnish::checkpoint::Checkpoint;
use rand::{Rng, SeedableRng};

mod common;

use common::{burnish, text, TINY_RECIPE};

/// Columns that differ between identical runs: wall-clock timings.
const TIMING: [&str; 2] = ["images_per_s", "data_wait_s"];

/// A temporary folder with the tiny recipe as `r.toml`.
fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("r.toml"), TINY_RECIPE).expect("write recipe");
    tmp
}

/// Trains `r.toml` in `cwd` under `runs` with `extra` arguments; returns the run folder.
fn train(cwd: &Path, runs: &str, extra: &[&str]) -> PathBuf {
    let out = burnish(&[&["train", "r.toml", "--quiet", "--runs-dir", runs], extra].concat(), cwd);
    assert!(out.status.success(), "{}", text(&out));
    the_run(&cwd.join(runs))
}

/// The only run folder under `runs`.
fn the_run(runs: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(runs).expect("runs").filter_map(|e| e.ok().map(|e| e.path())).collect();
    assert_eq!(dirs.len(), 1, "one run folder: {dirs:?}");
    dirs[0].clone()
}

/// The regions of a v2 checkpoint image, as docs/checkpoints.md lays it out: `header` (magic, section count, the
/// table of name length, name, data length and data CRC32C per section, and the header's CRC32C), then each
/// section's data under its name. Also checks each stored CRC32C against the data and that nothing follows.
fn layout(bytes: &[u8]) -> Vec<(String, Range<usize>)> {
    assert_eq!(&bytes[..16], b"burnish-ckpt-v2\n", "the current format's magic");
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let count = u32_at(16);
    let mut at = 20;
    let mut table = Vec::new();
    for _ in 0..count {
        let n = u32_at(at) as usize;
        let name = std::str::from_utf8(&bytes[at + 4..at + 4 + n]).expect("a UTF-8 name").to_string();
        at += 4 + n;
        let len = u64_at(at) as usize;
        let crc = u32_at(at + 8);
        at += 12;
        table.push((name, len, crc));
    }
    assert_eq!(u32_at(at), crc32c::crc32c(&bytes[..at]), "the header's CRC32C covers everything before it");
    at += 4;
    let mut regions = vec![("header".to_string(), 0..at)];
    for (name, len, crc) in table {
        assert_eq!(crc, crc32c::crc32c(&bytes[at..at + len]), "section `{name}`'s CRC32C");
        regions.push((name, at..at + len));
        at += len;
    }
    assert_eq!(at, bytes.len(), "nothing follows the last section");
    regions
}

/// `bytes` with bit `bit` (counted from the file's start) flipped.
fn flipped(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[bit / 8] ^= 1 << (bit % 8);
    b
}

/// What the error for a flipped bit in `region` must say.
fn expected_error(region: &str) -> String {
    if region == "header" {
        // A flip in the magic makes it no checkpoint or an unknown version; elsewhere the header's CRC32C fails,
        // or a corrupt length runs the table past the end of the file.
        "the header|not a burnish checkpoint|unknown checkpoint format".into()
    } else {
        format!("section `{region}` fails its CRC32C check (stored 0x")
    }
}

fn says(err: &str, expected: &str) -> bool {
    expected.split('|').any(|e| err.contains(e))
}

#[test]
fn single_bit_flips_and_truncations_in_every_section_are_refused() {
    let tmp = setup();
    let cwd = tmp.path();
    let dir = train(cwd, "runs", &[]);
    let ckpt = dir.join("checkpoints/step-000000020.ckpt");
    let image = std::fs::read(&ckpt).expect("checkpoint");
    let regions = layout(&image);
    let names: Vec<&str> = regions.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["header", "step", "meta", "model", "optimizer", "ema"]);
    let good = Checkpoint::read(&ckpt).expect("the written checkpoint reads");
    assert_eq!(good.step, 20);

    let path = cwd.join("bad.ckpt");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(30);
    let mut flips = 0;
    for (region, range) in &regions {
        let bits = range.start * 8..range.end * 8;
        // Every bit of the small regions; the first, the last and 40 seeded ones of the large ones.
        let chosen: Vec<usize> = if range.len() <= 256 {
            bits.collect()
        } else {
            [bits.start, bits.end - 1].into_iter().chain((0..40).map(|_| rng.random_range(bits.clone()))).collect()
        };
        let expected = expected_error(region);
        for bit in chosen {
            std::fs::write(&path, flipped(&image, bit)).expect("write");
            let err = match Checkpoint::read(&path) {
                Ok(c) => panic!("bit {bit} of the file (in `{region}`) flipped, yet it loads (at step {})", c.step),
                Err(e) => e.to_string(),
            };
            assert!(
                says(&err, &expected) && err.contains("bad.ckpt"),
                "bit {bit} of the file (in `{region}`): expected `{expected}`, got: {err}"
            );
            flips += 1;
        }
    }
    assert!(flips > 1000, "{flips} flips");

    // Cut at every section boundary (the file's end excepted), one byte before and one after.
    let mut cuts = vec![0, 1, 15, 16, 17, 20];
    for (_, range) in &regions[..regions.len() - 1] {
        cuts.extend([range.end - 1, range.end, range.end + 1]);
    }
    cuts.push(image.len() - 1);
    for cut in cuts {
        std::fs::write(&path, &image[..cut]).expect("write");
        let err = Checkpoint::read(&path).expect_err("a cut file is refused").to_string();
        assert!(err.contains("truncated") || err.contains("cut short"), "cut at {cut}: {err}");
    }
    std::fs::write(&path, [image.as_slice(), b"\0"].concat()).expect("write");
    let err = Checkpoint::read(&path).expect_err("a byte appended is refused").to_string();
    assert!(err.contains("1 bytes follow the last section"), "{err}");

    // The commands that read a checkpoint refuse one flipped bit in each region, naming the file and the region.
    for (region, range) in &regions {
        let bad = cwd.join(format!("bad-{region}.ckpt"));
        std::fs::write(&bad, flipped(&image, (range.start + range.len() / 2) * 8 + 3)).expect("write");
        let bad = bad.to_str().expect("utf-8");
        for args in [vec!["eval", bad], vec!["export", bad, "--out", "w.safetensors"], vec!["measure", bad]] {
            let out = burnish(&args, cwd);
            let message = text(&out);
            assert!(!out.status.success(), "{args:?} refuses a flipped bit in `{region}`: {message}");
            assert!(says(&message, &expected_error(region)) && message.contains(bad), "{args:?}: {message}");
        }
    }
    assert!(!cwd.join("w.safetensors").exists(), "no export of a corrupt checkpoint");
    // The same commands accept the intact file, so the refusals above are the corruption's.
    let out = burnish(&["eval", ckpt.to_str().expect("utf-8")], cwd);
    assert!(out.status.success(), "{}", text(&out));
}

/// `metrics.jsonl` without its timing fields, one string per row.
fn jsonl_rows(dir: &Path) -> Vec<String> {
    common::metric_rows(dir)
        .into_iter()
        .map(|mut v| {
            let obj = v.as_object_mut().expect("an object");
            TIMING.iter().for_each(|k| drop(obj.remove(*k)));
            v.to_string()
        })
        .collect()
}

#[test]
fn resume_skips_a_corrupt_newest_checkpoint_for_the_newest_good_one() {
    let tmp = setup();
    let cwd = tmp.path();
    let reference = train(cwd, "reference", &[]);
    let dir = train(cwd, "runs", &["--stop-after", "15"]);
    let newest = dir.join("checkpoints/step-000000015.ckpt");
    let older = dir.join("checkpoints/step-000000010.ckpt");
    assert!(older.exists(), "the recipe keeps two checkpoints");
    let image = std::fs::read(&newest).expect("checkpoint");
    let model = layout(&image).into_iter().find(|(n, _)| n == "model").expect("a model section").1;
    std::fs::write(&newest, flipped(&image, model.start * 8 + 1000)).expect("corrupt");

    let out = burnish(&["train", "r.toml", "--quiet", "--resume", dir.to_str().expect("utf-8")], cwd);
    let message = text(&out);
    assert!(out.status.success(), "{message}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let skipped = format!("skipping checkpoint {}: section `model` fails its CRC32C check", newest.display());
    assert!(stderr.contains(&skipped), "{stderr}");
    assert!(stderr.contains(&format!("resuming from {} (step 10)", older.display())), "{stderr}");
    // Steps 11..=15 were logged before the corrupt checkpoint was written; resuming from step 10 drops and retakes
    // them, so the run ends as one that was never interrupted.
    assert_eq!(jsonl_rows(&dir), jsonl_rows(&reference), "metrics.jsonl");
    assert!(Checkpoint::read(&newest).is_ok(), "the corrupt file was replaced by the resumed run's checkpoint");
}

#[test]
fn resume_with_no_good_checkpoint_is_an_error_naming_them() {
    let tmp = setup();
    let cwd = tmp.path();
    let dir = train(cwd, "runs", &["--stop-after", "10"]);
    let mut corrupted = Vec::new();
    for c in burnish::run::checkpoints_in(&dir.join("checkpoints")).expect("list") {
        let image = std::fs::read(&c).expect("checkpoint");
        let step = layout(&image).into_iter().find(|(n, _)| n == "step").expect("a step section").1;
        std::fs::write(&c, flipped(&image, step.start * 8)).expect("corrupt");
        corrupted.push(c);
    }
    assert_eq!(corrupted.len(), 2, "{corrupted:?}");
    let before = std::fs::read(dir.join("metrics.jsonl")).expect("metrics");

    let out = burnish(&["train", "r.toml", "--quiet", "--resume", dir.to_str().expect("utf-8")], cwd);
    let message = text(&out);
    assert!(!out.status.success(), "{message}");
    assert!(message.contains("can be loaded"), "{message}");
    for c in &corrupted {
        let reason = format!("checkpoint {}: section `step` fails its CRC32C check", c.display());
        assert!(message.contains(&reason), "{message}");
    }
    assert_eq!(std::fs::read(dir.join("metrics.jsonl")).expect("metrics"), before, "the metrics are untouched");
    assert_eq!(burnish::run::checkpoints_in(&dir.join("checkpoints")).expect("list"), corrupted, "nothing removed");
}
