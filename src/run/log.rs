//! A run's metrics files: `metrics.jsonl` (one object per step, plus rows of evaluations, probes and Ŝ_ρ
//! measurements), `metrics.csv` (one row per step) and a TensorBoard event file per invocation (the same rows as
//! scalars under the same names), each step logged once even across crashes and resumes.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::{Context, Result};

use super::eval::Evaluated;
use crate::track::EventWriter;
use crate::train::StepReport;

/// The evaluation columns (test accuracy, and the evaluation model's test and training loss and accuracy, for the
/// generalisation gap), last in `metrics.csv` because they are only filled at evaluation steps.
pub const EVAL_COLUMNS: [&str; 5] = ["test_acc", "test_acc_ema", "test_loss", "train_acc", "train_loss"];

/// Timing columns: they differ between otherwise identical runs.
pub const TIMING_COLUMNS: [&str; 2] = ["images_per_s", "data_wait_s"];

/// The metrics files of a run folder, open for appending.
pub struct MetricsLog {
    jsonl: File,
    csv: File,
    tensorboard: EventWriter,
    columns: Option<Vec<String>>,
    skipped_steps: u64,
    /// The kept `metrics.jsonl` rows of step `start`, newest first, where a resumed run that had already ended finds
    /// its final evaluation and probe.
    at_start: Vec<serde_json::Value>,
}

/// What a step row holds besides the step's own metrics.
pub struct StepRow<'a> {
    /// The step's report.
    pub report: &'a StepReport,
    /// Images of the step per second of wall time.
    pub images_per_s: f64,
    /// Seconds spent waiting for the pipeline.
    pub data_wait_s: f64,
    /// Steps dropped so far for non-finite values.
    pub skipped_steps: u64,
    /// (raw, EMA) test accuracy, at evaluation steps.
    pub test: Option<Evaluated>,
}

impl MetricsLog {
    /// Opens the logs of `dir`, keeping only rows of steps up to `start` (a resumed run's checkpoint): rows a crash
    /// left after its last checkpoint, and a line a kill cut short, are dropped, so each step is logged once. The
    /// new TensorBoard file tells TensorBoard to drop those steps too, and a new run's file holds `recipe`.
    pub fn open(dir: &Path, start: u64, recipe: &str) -> Result<Self> {
        let jsonl_path = dir.join("metrics.jsonl");
        let csv_path = dir.join("metrics.csv");
        // Rows carry the number of steps done, so a checkpoint at `start` covers rows up to and including `start`.
        let json_step = |l: &str| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["step"].as_u64());
        let kept_json: Vec<String> =
            read_lines(&jsonl_path)?.into_iter().filter(|l| json_step(l).is_some_and(|s| s <= start)).collect();
        // The count of dropped steps carries over a resume: it is in the last kept step row.
        let skipped_steps = kept_json
            .iter()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["skipped_steps"].as_u64())
            .unwrap_or(0);
        // Newest first, read from the end only: a long run's log is not parsed whole again.
        let at_start = kept_json
            .iter()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .take_while(|v| v["step"].as_u64() == Some(start))
            .collect();
        let csv_lines = read_lines(&csv_path)?;
        let columns = csv_lines.first().map(|h| h.split(',').map(str::to_string).collect::<Vec<_>>());
        let width = columns.as_ref().map_or(0, Vec::len);
        let kept_csv: Vec<String> = csv_lines
            .into_iter()
            .enumerate()
            .filter(|(i, l)| {
                // A row cut short by a kill has fewer fields than the header.
                let step = l.split(',').next().and_then(|s| s.parse::<u64>().ok());
                *i == 0 || (l.split(',').count() == width && step.is_some_and(|s| s <= start))
            })
            .map(|(_, l)| l)
            .collect();
        let rewrite = |path: &Path, lines: &[String]| -> Result<File> {
            let mut f = File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
            for l in lines {
                writeln!(f, "{l}")?;
            }
            Ok(f)
        };
        let (jsonl, csv) = (rewrite(&jsonl_path, &kept_json)?, rewrite(&csv_path, &kept_csv)?);
        let tensorboard = EventWriter::for_session(dir, start, recipe)?;
        Ok(Self { jsonl, csv, tensorboard, columns, skipped_steps, at_start })
    }

    /// Steps dropped for non-finite values before this invocation (from the rows kept at opening).
    pub fn skipped_steps(&self) -> u64 {
        self.skipped_steps
    }

    /// The last evaluation logged at the step the log was opened at.
    pub fn evaluation_at_start(&self) -> Option<Evaluated> {
        self.at_start.iter().find_map(|v| {
            let c = EVAL_COLUMNS.map(|k| logged_f64(v, k));
            Some(Evaluated {
                test_acc: c[0]?,
                test_acc_ema: c[1]?,
                test_loss: c[2]?,
                train_acc: c[3]?,
                train_loss: c[4]?,
            })
        })
    }

    /// The last linear-probe and kNN accuracy logged at the step the log was opened at.
    pub fn probe_at_start(&self) -> Option<(f64, f64)> {
        self.at_start.iter().find_map(|v| Some((logged_f64(v, "probe_acc")?, logged_f64(v, "knn_acc")?)))
    }

    /// Appends a step's row to both files.
    pub fn step(&mut self, row: &StepRow<'_>) -> Result<()> {
        let r = row.report;
        let mut obj = serde_json::Map::new();
        obj.insert("step".into(), (r.step + 1).into());
        obj.insert("lr".into(), json_f64(r.lr));
        for (k, v) in &r.metrics {
            obj.insert(k.clone(), json_f64(*v));
        }
        obj.insert("skipped_steps".into(), row.skipped_steps.into());
        obj.insert(TIMING_COLUMNS[0].into(), json_f64(row.images_per_s));
        obj.insert(TIMING_COLUMNS[1].into(), json_f64(row.data_wait_s));
        if let Some(test) = row.test {
            for (k, v) in test.columns() {
                obj.insert(k.into(), json_f64(v));
            }
        }
        // One write call per line, so a kill cuts at most the line being written.
        self.jsonl.write_all(format!("{}\n", serde_json::Value::Object(obj.clone())).as_bytes())?;
        self.tensorboard.json_row(&obj)?;
        let columns = match &self.columns {
            Some(c) => c.clone(),
            None => {
                let mut c: Vec<String> =
                    obj.keys().filter(|k| !EVAL_COLUMNS.contains(&k.as_str()) && *k != "step").cloned().collect();
                c.insert(0, "step".into());
                c.extend(EVAL_COLUMNS.iter().map(|s| s.to_string()));
                self.csv.write_all(format!("{}\n", c.join(",")).as_bytes())?;
                self.columns = Some(c.clone());
                c
            }
        };
        let cells: Vec<String> = columns
            .iter()
            .map(|c| obj.get(c).map(|v| v.to_string().trim_matches('"').to_string()).unwrap_or_default())
            .collect();
        self.csv.write_all(format!("{}\n", cells.join(",")).as_bytes())?;
        Ok(())
    }

    /// A `metrics.jsonl` row of measurements that are not per step (final test accuracy, probes, Ŝ_ρ).
    pub fn extra(&mut self, step: u64, values: &[(&str, f64)]) -> Result<()> {
        let mut obj = serde_json::Map::new();
        obj.insert("step".into(), step.into());
        for (k, v) in values {
            obj.insert(k.to_string(), json_f64(*v));
        }
        self.tensorboard.json_row(&obj)?;
        self.jsonl.write_all(format!("{}\n", serde_json::Value::Object(obj)).as_bytes())?;
        Ok(())
    }
}

/// A JSON number, or `null` for NaN and infinities (which JSON cannot hold).
fn json_f64(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// The number a row holds under `key`, with the `null` that [`json_f64`] writes for NaN read back as NaN.
fn logged_f64(row: &serde_json::Value, key: &str) -> Option<f64> {
    row.get(key).map(|x| x.as_f64().unwrap_or(f64::NAN))
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
