//! The inspection commands end to end: `preview` (a PNG grid of a recipe's augmented views), `plot` (PNG figures of
//! a run's metrics) and `export` (a checkpoint as a safetensors file with PyTorch-style names).

use std::path::{Path, PathBuf};
use std::process::Output;

use burnish::recipe::Recipe;

mod common;

use common::{burnish, latest_checkpoint, run_dir, summary, text, TINY_RECIPE as RECIPE};

/// White pixels between the cells of a preview grid (documented in `burnish preview`).
const GAP: u32 = 4;
/// Height of the band of column names above the cells of a preview grid (documented in `burnish preview`).
const BAND: u32 = 36;

fn fails_naming(out: &Output, what: &str) {
    let msg = text(out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains(what), "the error should name {what}: {msg}");
    assert!(!msg.contains("panicked"), "{msg}");
}

/// A tempdir holding the tiny recipe as `r.toml`.
fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("r.toml"), RECIPE).expect("write recipe");
    tmp
}

/// Trains the tiny recipe for 4 steps (evaluating every 2) and returns its run folder.
fn tiny_run(cwd: &Path) -> PathBuf {
    let out = burnish(
        &[
            "train",
            "r.toml",
            "--quiet",
            "--set",
            "schedule.steps=4",
            "--set",
            "eval.every=2",
            "--set",
            "checkpoint.every=2",
        ],
        cwd,
    );
    assert!(out.status.success(), "{}", text(&out));
    cwd.join(run_dir(&out))
}

#[test]
fn eval_reproduces_the_final_accuracy_and_recipes_lists_the_shipped_ones() {
    let tmp = setup();
    let dir = tiny_run(tmp.path());
    let out = burnish(&["eval", latest_checkpoint(&dir).to_str().expect("utf-8")], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let summary = summary(&dir);
    let expected = format!(
        "test_acc_ema={:.4} test_acc={:.4}",
        summary["test_acc_ema"].as_f64().expect("ema"),
        summary["test_acc"].as_f64().expect("raw")
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(stdout.lines().last(), Some(expected.as_str()), "the checkpoint at the last step scores as the run did");

    // Run from the source tree: `recipes` lists every shipped recipe with its description.
    let out = burnish(&["recipes"], Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(out.status.success(), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    for (file, words) in [
        ("quickstart.toml", "FixMatch + IAM-D"),
        ("fashion-mnist/fixmatch-iam.toml", "FixMatch + IAM-D"),
        ("cifar10/simclr-iam.toml", "SimCLR + IAM-D"),
    ] {
        let line = listing.lines().find(|l| l.starts_with(file)).unwrap_or_else(|| panic!("{file} missing: {listing}"));
        assert!(line.contains(words), "{line}");
    }
    assert!(!listing.contains("INVALID"), "{listing}");
    let bad = burnish(&["recipes", "--dir", "no-such-dir"], tmp.path());
    fails_naming(&bad, "no-such-dir");
}

#[test]
fn preview_draws_the_original_and_every_view() {
    let tmp = setup();
    let (samples, scale) = (3u32, 2u32);
    let args = ["preview", "r.toml", "--out", "grid.png", "--samples", "3", "--scale", "2"];
    let out = burnish(&args, tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let columns: Vec<String> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("columns: "))
        .expect("columns line")
        .split(", ")
        .map(str::to_string)
        .collect();
    assert_eq!(columns, ["original", "labeled/weak", "unlabeled/weak", "unlabeled/strong"], "{stdout}");
    let indices: Vec<usize> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("rows (training image indices): "))
        .expect("rows line")
        .split(", ")
        .map(|s| s.split(' ').next().expect("index").parse().expect("a number"))
        .collect();
    assert_eq!(indices.len(), samples as usize);

    let recipe = Recipe::from_str(RECIPE, "r.toml", &[]).expect("recipe");
    assert_eq!(columns.len(), 1 + recipe.data.labeled_views.len() + recipe.data.unlabeled_views.len());
    let data = burnish::plan::data(&recipe).expect("data");
    let (c, h, w) = data.dataset.train.shape();
    let (h, w) = (h as u32, w as u32);
    let grid = image::open(tmp.path().join("grid.png")).expect("a PNG").to_rgb8();
    let cols = columns.len() as u32;
    assert_eq!(grid.width(), cols * w * scale + (cols + 1) * GAP);
    assert_eq!(grid.height(), BAND + samples * h * scale + (samples + 1) * GAP);

    // The first column is each training image, upscaled by nearest neighbour, exactly.
    let mut pixels = Vec::new();
    for (row, &index) in indices.iter().enumerate() {
        data.dataset.train.read_pixels(index, &mut pixels).expect("pixels");
        let y0 = BAND + GAP + row as u32 * (h * scale + GAP);
        for y in 0..h * scale {
            for x in 0..w * scale {
                let at = ((y / scale) * w + x / scale) as usize * c;
                let want = if c == 1 { [pixels[at]; 3] } else { [pixels[at], pixels[at + 1], pixels[at + 2]] };
                assert_eq!(grid.get_pixel(GAP + x, y0 + y).0, want, "row {row}, pixel ({x}, {y})");
            }
        }
    }
    // Gaps are white; the augmented cells differ from the original somewhere.
    assert_eq!(grid.get_pixel(0, BAND).0, [255, 255, 255]);
    assert_eq!(grid.get_pixel(GAP + w * scale, BAND + GAP).0, [255, 255, 255]);
    let cell = |col: u32, row: u32| {
        let (x0, y0) = (GAP + col * (w * scale + GAP), BAND + GAP + row * (h * scale + GAP));
        (0..h * scale)
            .flat_map(|y| (0..w * scale).map(move |x| (x, y)))
            .map(|(x, y)| grid.get_pixel(x0 + x, y0 + y).0)
            .collect::<Vec<_>>()
    };
    assert!((0..samples).any(|r| cell(3, r) != cell(0, r)), "the strong view changes the image");

    // The band above the cells names every column: dark text over each column, white gaps between them, and
    // different names look different ("labeled/weak" and "unlabeled/weak" differ in their first line).
    let band = |col: u32| {
        let x0 = GAP + col * (w * scale + GAP);
        (0..BAND)
            .flat_map(|y| (0..w * scale).map(move |x| (x, y)))
            .map(|(x, y)| grid.get_pixel(x0 + x, y).0)
            .collect::<Vec<_>>()
    };
    for col in 0..cols {
        let dark = band(col).iter().filter(|p| p.iter().all(|&v| v < 128)).count();
        assert!(dark > 10, "column {col} ({}) has a name: {dark} dark pixels", columns[col as usize]);
    }
    for y in 0..BAND {
        assert_eq!(grid.get_pixel(GAP + w * scale + 1, y).0, [255, 255, 255], "the gap between names is white");
    }
    assert_ne!(band(1), band(2));
    assert_ne!(band(0), band(1));

    // The same recipe gives the same grid.
    let again = burnish(&["preview", "r.toml", "--out", "again.png", "--samples", "3", "--scale", "2"], tmp.path());
    assert!(again.status.success(), "{}", text(&again));
    let read = |f: &str| std::fs::read(tmp.path().join(f)).expect("png");
    assert_eq!(read("grid.png"), read("again.png"));

    // Errors name the file, never panic.
    fails_naming(&burnish(&["preview", "r.toml", "--out", "no/such/dir/grid.png"], tmp.path()), "no/such/dir/grid.png");
    fails_naming(&burnish(&["preview", "missing.toml", "--out", "g.png"], tmp.path()), "missing.toml");
}

#[test]
fn plot_draws_the_figures_of_a_run() {
    let tmp = setup();
    let dir = tiny_run(tmp.path());
    let out = burnish(&["plot", dir.to_str().expect("utf-8")], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    for name in ["loss.png", "accuracy.png", "mask_rate.png", "s_rho.png", "lr.png"] {
        let path = dir.join("plots").join(name);
        assert!(stdout.contains(&path.display().to_string()), "{name} not reported: {stdout}");
        let img = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
        assert_eq!((img.width(), img.height()), (960, 540), "{name}");
        let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(colours.len() > 10, "{name} has {} colours: it should show axes, text and lines", colours.len());
    }

    // --out picks the folder.
    let out = burnish(&["plot", dir.to_str().expect("utf-8"), "--out", "figs"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(tmp.path().join("figs/loss.png").exists());

    // A bad line, an empty file and a missing file are errors naming the file (and the line).
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).expect("mkdir");
    std::fs::write(bad.join("metrics.jsonl"), "{\"step\": 1, \"loss\": 2.0}\n{\"step\": 2, \"loss\": \n")
        .expect("write");
    fails_naming(&burnish(&["plot", "bad"], tmp.path()), "metrics.jsonl:2");
    std::fs::write(bad.join("metrics.jsonl"), "{\"loss\": 2.0}\n").expect("write");
    fails_naming(&burnish(&["plot", "bad"], tmp.path()), "metrics.jsonl:1");
    std::fs::write(bad.join("metrics.jsonl"), "").expect("write");
    fails_naming(&burnish(&["plot", "bad"], tmp.path()), "metrics.jsonl");
    fails_naming(&burnish(&["plot", "nowhere"], tmp.path()), "nowhere");
}

/// Writes `dir/metrics.jsonl` with `steps` rows of loss and lr, an evaluation every 5 steps, and the extra keys;
/// `loss_scale` sets every value, so that two runs' lines do not cover each other.
fn synthetic_run(dir: &Path, steps: u32, loss_scale: f64, extra: &[&str]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut text = String::new();
    for step in 1..=steps {
        let mut row = serde_json::json!({"step": step, "loss": loss_scale / f64::from(step), "lr": 0.1 * loss_scale});
        for key in extra {
            row[*key] = serde_json::json!(f64::from(step) / f64::from(steps));
        }
        text.push_str(&format!("{row}\n"));
        if step % 5 == 0 {
            let acc =
                serde_json::json!({"step": step, "test_acc": 0.25 * loss_scale, "test_acc_ema": 0.3 * loss_scale});
            text.push_str(&format!("{acc}\n"));
        }
    }
    std::fs::write(dir.join("metrics.jsonl"), text).expect("write");
}

/// How many pixels of `img` have exactly `rgb`.
fn count(img: &image::RgbImage, rgb: [u8; 3]) -> usize {
    img.pixels().filter(|p| p.0 == rgb).count()
}

#[test]
fn plot_overlays_several_runs_one_colour_per_run() {
    let tmp = tempfile::tempdir().expect("temp dir");
    synthetic_run(&tmp.path().join("runs/fixmatch-a"), 20, 2.0, &[]);
    synthetic_run(&tmp.path().join("runs/fixmatch-b"), 20, 1.0, &["fixmatch/mask_rate"]);
    let out = burnish(&["plot", "runs/fixmatch-a", "runs/fixmatch-b", "--out", "cmp"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    // matplotlib's tab10 blue and orange: the first and second run.
    let (first, second) = ([31, 119, 180], [255, 127, 14]);
    for name in ["loss.png", "lr.png", "test_acc.png", "test_acc_ema.png", "fixmatch_mask_rate.png"] {
        let path = tmp.path().join("cmp").join(name);
        let img = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
        assert_eq!((img.width(), img.height()), (960, 540), "{name}");
        let (a, b) = (count(&img, first), count(&img, second));
        if name == "fixmatch_mask_rate.png" {
            // Only the second run logs it; it keeps its colour.
            assert!(a == 0 && b > 100, "{name}: {a} blue and {b} orange pixels");
        } else {
            assert!(a > 100 && b > 100, "{name}: {a} blue and {b} orange pixels, one line per run");
        }
    }
    assert!(!tmp.path().join("cmp/accuracy.png").exists(), "overlays are one figure per metric");
    // One run alone keeps its figures and folder.
    let out = burnish(&["plot", "runs/fixmatch-a"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let single = image::open(tmp.path().join("runs/fixmatch-a/plots/loss.png")).expect("png").to_rgb8();
    assert!(count(&single, first) > 100 && count(&single, second) == 0);
    // Several runs need --out; a missing run is named.
    fails_naming(&burnish(&["plot", "runs/fixmatch-a", "runs/fixmatch-b"], tmp.path()), "--out");
    fails_naming(&burnish(&["plot", "runs/fixmatch-a", "runs/nowhere", "--out", "cmp"], tmp.path()), "runs/nowhere");
}

#[test]
fn export_writes_pytorch_named_safetensors() {
    use burnish::backend::{device, Train};

    let tmp = setup();
    let dir = tiny_run(tmp.path());
    let ckpt = latest_checkpoint(&dir);
    let out = burnish(&["export", ckpt.to_str().expect("utf-8"), "--out", "m.safetensors"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let bytes = std::fs::read(tmp.path().join("m.safetensors")).expect("written");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("a safetensors file");

    // The model the checkpoint holds, read with the library.
    let checkpoint = burnish::checkpoint::Checkpoint::read(&ckpt).expect("checkpoint");
    let recipe = Recipe::from_str(&checkpoint.recipe, "meta", &[]).expect("recipe");
    let data = burnish::plan::data(&recipe).expect("data");
    let (channels, _, _) = data.dataset.shape();
    let config = burnish::plan::net(&recipe, channels, data.dataset.num_classes);
    let dev = device();
    let model = burnish::train::Trainer::<Train>::init_model(&config, recipe.seed, &dev);
    let model = burnish::train::load_model_bytes(model, checkpoint.model, &dev).expect("load");

    // Names: exactly the model's tensors, plus one `num_batches_tracked` per BatchNorm.
    let infos = burnish::model::param_infos(&model);
    let mut want: Vec<String> = infos.iter().map(|p| p.name.clone()).collect();
    let mut got: Vec<String> =
        st.names().into_iter().filter(|n| !n.ends_with(".num_batches_tracked")).map(str::to_string).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    let counters = st.names().into_iter().filter(|n| n.ends_with(".num_batches_tracked")).count();
    assert_eq!(counters, infos.iter().filter(|p| p.name.ends_with(".running_var")).count());
    assert!(want.contains(&"backbone.layers.0.conv.weight".to_string()), "{want:?}");
    assert!(want.contains(&"backbone.layers.0.bn.running_mean".to_string()), "{want:?}");

    let f32s = |name: &str| -> (Vec<usize>, Vec<f32>) {
        let t = st.tensor(name).expect(name);
        assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
        let values = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        (t.shape().to_vec(), values)
    };
    let burn_values = |t: burn::tensor::Tensor<Train, 2>| t.into_data().convert::<f32>().to_vec::<f32>().expect("f32");

    // The classifier weight: Burn's [features, classes], written as PyTorch's [classes, features], values transposed.
    let classes = data.dataset.num_classes;
    let features = config.feature_dim();
    let (shape, exported) = f32s("classifier.weight");
    assert_eq!(shape, [classes, features]);
    let burn_weight = burn_values(model.classifier.weight.val());
    for o in 0..classes {
        for i in 0..features {
            assert_eq!(exported[o * features + i], burn_weight[i * classes + o], "classifier.weight[{o}, {i}]");
        }
    }
    // Every other tensor keeps its shape and values.
    let first_conv = infos.iter().find(|p| p.name == "backbone.layers.0.conv.weight").expect("conv");
    let (shape, _) = f32s(&first_conv.name);
    assert_eq!(shape, first_conv.shape);
    let (_, bias) = f32s("classifier.bias");
    let burn_bias =
        model.classifier.bias.as_ref().expect("bias").val().into_data().convert::<f32>().to_vec::<f32>().expect("f32");
    assert_eq!(bias, burn_bias);

    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
    let metadata = metadata.metadata().clone().expect("__metadata__");
    assert_eq!(metadata.get("name").map(String::as_str), Some("cli-test"));
    assert_eq!(metadata.get("arch").map(String::as_str), Some("cnn-small"));
    assert_eq!(metadata.get("step").map(String::as_str), Some("4"));

    // --ema exports the EMA weights under the same names.
    let out = burnish(&["export", ckpt.to_str().expect("utf-8"), "--out", "ema.safetensors", "--ema"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let ema_bytes = std::fs::read(tmp.path().join("ema.safetensors")).expect("written");
    let ema = safetensors::SafeTensors::deserialize(&ema_bytes).expect("a safetensors file");
    let mut ema_names = ema.names();
    let mut names = st.names();
    ema_names.sort();
    names.sort();
    assert_eq!(ema_names, names);

    // A bad checkpoint path or output path fails naming it.
    fails_naming(&burnish(&["export", "missing.ckpt", "--out", "x.safetensors"], tmp.path()), "missing.ckpt");
    std::fs::write(tmp.path().join("junk.ckpt"), b"not a checkpoint").expect("write");
    fails_naming(&burnish(&["export", "junk.ckpt", "--out", "x.safetensors"], tmp.path()), "junk.ckpt");
    fails_naming(
        &burnish(&["export", ckpt.to_str().expect("utf-8"), "--out", "no/dir/x.safetensors"], tmp.path()),
        "no/dir/x.safetensors",
    );
}

#[test]
fn a_closed_stdout_ends_a_listing_quietly() {
    use std::process::{Command, Stdio};
    let tmp = setup();
    for args in [&["recipes"][..], &["check", "r.toml"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_burnish"))
            .args(args)
            .current_dir(tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        // The reader goes before the command has written a line, as `| head -0` would make it.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("the binary ends");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "burnish {args:?} with stdout closed: {:?}, {err}", out.status);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "burnish {args:?}: {err}");
    }
}
