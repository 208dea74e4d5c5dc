//! A training run on disk: `runs/<name>-<timestamp>/` with the resolved recipe, `metrics.jsonl`, `metrics.csv`,
//! `checkpoints/` and `summary.json`; progress on the terminal; Ctrl-C and `--resume` handled exactly.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::iam::measure_classifier;
use crate::pipeline::seed::derive_seed;
use crate::pipeline::Pipeline;
use crate::plan;
use crate::probe::ProbeResult;
use crate::recipe::Recipe;
use crate::train::{accuracy, load_images, StepReport, Trainer};

/// Set by the Ctrl-C handler; the loop checkpoints and stops at the next step boundary.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How a run is started.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Folder under which `<name>-<timestamp>/` is created (default `runs`).
    pub runs_dir: PathBuf,
    /// Continue the run in this folder from its latest checkpoint.
    pub resume: Option<PathBuf>,
    /// Stop (with a checkpoint, as Ctrl-C does) once this many steps are done; the schedule is unchanged.
    pub stop_after: Option<u64>,
    /// Draw a progress bar.
    pub progress: bool,
}

/// What `summary.json` holds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Recipe name.
    pub name: String,
    /// Steps taken.
    pub steps: u64,
    /// Whether the run stopped before its last step (Ctrl-C or `--stop-after`).
    pub interrupted: bool,
    /// Test accuracy of the raw model.
    pub test_acc: f64,
    /// Test accuracy of the EMA model (equal to the raw one without EMA).
    pub test_acc_ema: f64,
    /// Linear-probe accuracy of the final encoder (only with `eval.probe_every > 0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_acc: Option<f64>,
    /// kNN accuracy of the final encoder (only with `eval.probe_every > 0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knn_acc: Option<f64>,
    /// Wall time of this invocation in seconds.
    pub wall_s: f64,
    /// The run folder.
    pub run_dir: PathBuf,
}

/// Trains `recipe` on `device`; returns the summary also written to `summary.json`.
pub fn train<B: AutodiffBackend>(recipe: &Recipe, options: &RunOptions, device: B::Device) -> Result<Summary> {
    let started = Instant::now();
    let run_dir = match &options.resume {
        Some(dir) => dir.clone(),
        None => new_run_dir(&options.runs_dir, &recipe.name)?,
    };
    let ckpt_dir = run_dir.join("checkpoints");
    fs::create_dir_all(&ckpt_dir).with_context(|| format!("cannot create {}", ckpt_dir.display()))?;
    let resolved = recipe.to_toml();
    let data = plan::data(recipe)?;
    let (channels, _, _) = data.dataset.shape();
    let net = plan::net(recipe, channels, data.dataset.num_classes);
    let model = Trainer::<B>::init_model(&net, recipe.seed, &device);
    let objective = plan::objective::<B>(recipe).map_err(anyhow::Error::msg)?;
    let mut trainer =
        Trainer::new(model, objective, plan::update_rule(recipe), plan::train_settings(recipe), device.clone());
    if options.resume.is_some() {
        let latest = latest_checkpoint(&ckpt_dir)?
            .with_context(|| format!("{} has no checkpoint to resume from", ckpt_dir.display()))?;
        let saved = trainer.load(&latest)?;
        if saved != resolved {
            bail!(
                "{} was written by a different recipe than the one given (compare with {}/recipe.toml)",
                latest.display(),
                run_dir.display()
            );
        }
    } else {
        fs::write(run_dir.join("recipe.toml"), &resolved).context("cannot write recipe.toml")?;
    }
    let start = trainer.step();
    let total = recipe.schedule.steps;
    let stop_at = options.stop_after.map_or(total, |s| s.min(total));
    let mut log = MetricsLog::open(&run_dir, start)?;
    let bar = progress_bar(options.progress, total, start);
    let mut pipeline = Pipeline::new(
        data.train.clone(),
        data.norm.clone(),
        data.streams.clone(),
        &plan::pipeline_config(recipe, start),
    )?;
    let eval = |trainer: &Trainer<B>| -> Result<(f64, f64)> {
        let raw = accuracy(
            &burn::module::AutodiffModule::valid(&trainer.model),
            &data.dataset.test,
            None,
            &data.norm,
            recipe.eval.batch_size,
            &device,
        )?;
        let ema = if trainer.has_ema() {
            accuracy(&trainer.eval_model(), &data.dataset.test, None, &data.norm, recipe.eval.batch_size, &device)?
        } else {
            raw
        };
        Ok((raw.value(), ema.value()))
    };
    let probe = |trainer: &Trainer<B>| -> Result<ProbeResult> {
        let ds = &data.dataset;
        let cfg = plan::probe_config(recipe);
        let (train, test, classes, batch) = (&ds.train, &ds.test, ds.num_classes, recipe.eval.batch_size);
        Ok(crate::probe::probe::<B>(
            &trainer.eval_model(),
            train,
            &data.labeled,
            test,
            classes,
            &data.norm,
            batch,
            &cfg,
        )?)
    };
    // Ŝ_ρ during training is measured on one fixed batch of training images, loaded once, so its curve compares
    // like with like.
    let measure_images = if recipe.eval.measure_every > 0 {
        let indices = plan::measure_indices(data.train.len(), recipe.eval.batch_size, recipe.seed);
        Some(load_images::<B>(&data.train, &indices, &data.norm, &device)?.0)
    } else {
        None
    };
    let measure_cfg = plan::inconsistency_settings(recipe);
    let measure = |trainer: &Trainer<B>, x: &Tensor<B, 4>| -> f64 {
        measure_classifier(&trainer.model, x.clone(), &measure_cfg, 1, derive_seed(&[recipe.seed, trainer.step()]))[0]
    };
    let ckpt_every = recipe.checkpoint.every;
    let mut last_probe = None;
    let mut measured = None;
    let mut interrupted = false;
    let mut last_eval = None;
    while trainer.step() < stop_at {
        let t0 = Instant::now();
        let batch = pipeline.next_batch()?;
        let waited = t0.elapsed().as_secs_f64();
        let images: usize = batch.streams.iter().map(|s| s.views.iter().map(|v| v.shape[0]).sum::<usize>()).sum();
        let report = trainer.train_step(&batch).map_err(anyhow::Error::msg)?;
        let secs = t0.elapsed().as_secs_f64();
        let done = trainer.step();
        let evaluate = recipe.eval.every > 0 && done % recipe.eval.every == 0 && done < total;
        let test = if evaluate { Some(eval(&trainer)?) } else { None };
        if test.is_some() {
            last_eval = test;
        }
        log.write(&report, images as f64 / secs, waited, test)?;
        let every = |n: u64| n > 0 && done % n == 0;
        if every(recipe.eval.probe_every) {
            let r = probe(&trainer)?;
            log.extra_row(done, &[("probe_acc", r.linear_acc), ("knn_acc", r.knn_acc)])?;
            last_probe = Some(r);
        }
        if let Some(x) = measure_images.as_ref().filter(|_| every(recipe.eval.measure_every)) {
            let s = measure(&trainer, x);
            log.extra_row(done, &[("s_rho_measured", s)])?;
            measured = Some(s);
        }
        update_bar(&bar, &report, images as f64 / secs, measured);
        if ckpt_every > 0 && done % ckpt_every == 0 && done < total {
            save(&trainer, &ckpt_dir, &resolved, recipe.checkpoint.keep)?;
        }
        if INTERRUPTED.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
    }
    interrupted |= trainer.step() < total;
    save(&trainer, &ckpt_dir, &resolved, recipe.checkpoint.keep)?;
    bar.finish_and_clear();
    let (test_acc, test_acc_ema) = if interrupted {
        last_eval.unwrap_or((f64::NAN, f64::NAN))
    } else {
        let r = eval(&trainer)?;
        log.extra_row(trainer.step(), &[(EVAL_COLUMNS[0], r.0), (EVAL_COLUMNS[1], r.1)])?;
        r
    };
    if recipe.eval.probe_every > 0
        && !interrupted
        && last_probe.is_none_or(|_| !total.is_multiple_of(recipe.eval.probe_every))
    {
        let r = probe(&trainer)?;
        log.extra_row(trainer.step(), &[("probe_acc", r.linear_acc), ("knn_acc", r.knn_acc)])?;
        last_probe = Some(r);
    }
    let summary = Summary {
        name: recipe.name.clone(),
        steps: trainer.step(),
        interrupted,
        test_acc,
        test_acc_ema,
        probe_acc: last_probe.map(|r| r.linear_acc),
        knn_acc: last_probe.map(|r| r.knn_acc),
        wall_s: started.elapsed().as_secs_f64(),
        run_dir: run_dir.clone(),
    };
    fs::write(run_dir.join("summary.json"), serde_json::to_string_pretty(&summary)? + "\n")
        .context("cannot write summary.json")?;
    Ok(summary)
}

fn new_run_dir(root: &Path, name: &str) -> Result<PathBuf> {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    // Two runs started within the same second get -1, -2, ... rather than sharing a folder.
    let mut k = 0;
    loop {
        let dir = root.join(if k == 0 { format!("{name}-{stamp}") } else { format!("{name}-{stamp}-{k}") });
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => k += 1,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
}

fn checkpoint_path(dir: &Path, step: u64) -> PathBuf {
    dir.join(format!("step-{step:09}.ckpt"))
}

/// The checkpoint with the highest step in `dir`.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<PathBuf>> {
    Ok(checkpoints(dir)?.pop())
}

fn checkpoints(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("step-") && n.ends_with(".ckpt"))
        })
        .collect();
    found.sort();
    Ok(found)
}

fn save<B: AutodiffBackend>(trainer: &Trainer<B>, dir: &Path, recipe: &str, keep: usize) -> Result<()> {
    trainer.save(&checkpoint_path(dir, trainer.step()), recipe)?;
    let all = checkpoints(dir)?;
    for old in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        fs::remove_file(old).with_context(|| format!("cannot remove {}", old.display()))?;
    }
    Ok(())
}

fn progress_bar(show: bool, total: u64, start: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}")
            .expect("a valid template"),
    );
    bar.set_position(start);
    bar
}

fn update_bar(bar: &ProgressBar, report: &StepReport, images_per_s: f64, measured: Option<f64>) {
    let get = |k: &str| report.metrics.iter().find(|(n, _)| n == k || n.ends_with(&format!("/{k}"))).map(|(_, v)| *v);
    let mut msg = format!("loss {:.4} lr {:.4}", get("loss").unwrap_or(f64::NAN), report.lr);
    if let Some(m) = get("mask_rate") {
        msg += &format!(" mask {m:.2}");
    }
    if let Some(s) = get("s_rho").or(measured) {
        msg += &format!(" Ŝρ {s:.2e}");
    }
    msg += &format!(" {images_per_s:.0} img/s");
    bar.set_message(msg);
    bar.set_position(report.step + 1);
}

/// `metrics.jsonl` (one object per step or evaluation) and `metrics.csv` (one row per step).
struct MetricsLog {
    jsonl: File,
    csv: File,
    columns: Option<Vec<String>>,
}

const EVAL_COLUMNS: [&str; 2] = ["test_acc", "test_acc_ema"];

impl MetricsLog {
    /// Opens the logs, dropping rows after step `start` (written by a run that crashed after its checkpoint).
    fn open(dir: &Path, start: u64) -> Result<Self> {
        let jsonl_path = dir.join("metrics.jsonl");
        let csv_path = dir.join("metrics.csv");
        // Rows carry the number of steps done, so a checkpoint at `start` covers rows up to and including `start`.
        let keep = |line: &str, step: Option<u64>| step.is_none_or(|s| s <= start) && !line.is_empty();
        let kept_json = read_lines(&jsonl_path)?
            .into_iter()
            .filter(|l| keep(l, serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["step"].as_u64())))
            .collect::<Vec<_>>();
        let csv_lines = read_lines(&csv_path)?;
        let columns = csv_lines.first().map(|h| h.split(',').map(str::to_string).collect::<Vec<_>>());
        let kept_csv: Vec<String> = csv_lines
            .into_iter()
            .enumerate()
            .filter(|(i, l)| *i == 0 || keep(l, l.split(',').next().and_then(|s| s.parse().ok())))
            .map(|(_, l)| l)
            .collect();
        let rewrite = |path: &Path, lines: &[String]| -> Result<File> {
            let mut f = File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
            for l in lines {
                writeln!(f, "{l}")?;
            }
            Ok(f)
        };
        Ok(Self { jsonl: rewrite(&jsonl_path, &kept_json)?, csv: rewrite(&csv_path, &kept_csv)?, columns })
    }

    fn write(&mut self, r: &StepReport, images_per_s: f64, data_wait_s: f64, test: Option<(f64, f64)>) -> Result<()> {
        let mut obj = serde_json::Map::new();
        obj.insert("step".into(), (r.step + 1).into());
        obj.insert("lr".into(), json_f64(r.lr));
        for (k, v) in &r.metrics {
            obj.insert(k.clone(), json_f64(*v));
        }
        obj.insert("images_per_s".into(), json_f64(images_per_s));
        obj.insert("data_wait_s".into(), json_f64(data_wait_s));
        if let Some((raw, ema)) = test {
            obj.insert(EVAL_COLUMNS[0].into(), json_f64(raw));
            obj.insert(EVAL_COLUMNS[1].into(), json_f64(ema));
        }
        writeln!(self.jsonl, "{}", serde_json::Value::Object(obj.clone()))?;
        let columns = self.columns.get_or_insert_with(|| {
            let mut c: Vec<String> = obj.keys().filter(|k| !EVAL_COLUMNS.contains(&k.as_str())).cloned().collect();
            c.retain(|k| k != "step");
            c.insert(0, "step".into());
            c.extend(EVAL_COLUMNS.iter().map(|s| s.to_string()));
            writeln!(self.csv, "{}", c.join(",")).ok();
            c
        });
        let row: Vec<String> = columns
            .iter()
            .map(|c| obj.get(c).map(|v| v.to_string().trim_matches('"').to_string()).unwrap_or_default())
            .collect();
        writeln!(self.csv, "{}", row.join(","))?;
        Ok(())
    }

    /// A `metrics.jsonl` row of measurements that are not per step (final test accuracy, probes, Ŝ_ρ).
    fn extra_row(&mut self, step: u64, values: &[(&str, f64)]) -> Result<()> {
        let mut obj = serde_json::Map::new();
        obj.insert("step".into(), step.into());
        for (k, v) in values {
            obj.insert(k.to_string(), json_f64(*v));
        }
        writeln!(self.jsonl, "{}", serde_json::Value::Object(obj))?;
        Ok(())
    }
}

fn json_f64(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    match File::open(path) {
        Ok(f) => BufReader::new(f)
            .lines()
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot read {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}
