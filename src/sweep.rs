//! Grids of recipe overrides (`burnish sweep`): parsing `--grid KEY=V1,V2,…`, expanding the cartesian product into
//! numbered runs, where each run's results live on disk, and the rows of `sweep.csv`. The processes that train and
//! measure are `cli/sweep.rs`'s; docs/study.md describes the whole sweep.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The recipe key `--seeds N` varies.
pub const SEED_KEY: &str = "seed";

/// One `--grid KEY=V1,V2,…`: a recipe key and the values it takes, as `--set` would write them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Axis {
    /// The recipe key, e.g. `optimizer.lr` or `stage.1.rho`.
    pub key: String,
    /// Its values, in the order given.
    pub values: Vec<String>,
}

impl Axis {
    /// Parses `KEY=V1,V2,…`. Commas inside brackets or quotes belong to a value, so a list value such as
    /// `model.widths=[16,32]` is one value.
    pub fn parse(text: &str) -> Result<Self> {
        let Some((key, values)) = text.split_once('=') else {
            bail!("--grid {text:?}: expected KEY=V1,V2,… (e.g. --grid optimizer.lr=0.03,0.1)");
        };
        let key = key.trim();
        if key.is_empty() {
            bail!("--grid {text:?}: the key before `=` is empty");
        }
        let values = split_top_level(values);
        if let Some(i) = values.iter().position(|v| v.is_empty()) {
            bail!("--grid {text:?}: value {} is empty", i + 1);
        }
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                bail!("--grid {text:?}: the value {v:?} is given twice");
            }
        }
        Ok(Axis { key: key.to_string(), values })
    }

    /// The axis `--seeds n` adds: seeds 0 to n − 1.
    pub fn seeds(n: usize) -> Self {
        Axis { key: SEED_KEY.to_string(), values: (0..n).map(|s| s.to_string()).collect() }
    }
}

/// Splits at commas that are outside brackets, braces and quotes, trimming each piece.
fn split_top_level(text: &str) -> Vec<String> {
    let (mut pieces, mut current, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, None);
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                pieces.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    pieces.push(current.trim().to_string());
    pieces
}

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// Position in the sweep, from 0.
    pub index: usize,
    /// Its folder name under the sweep folder: the index, then the overrides (e.g. `003-optimizer.lr=0.1_seed=1`).
    pub id: String,
    /// `(key, value)` per axis, in the order of the axes.
    pub overrides: Vec<(String, String)>,
}

/// The cartesian product of `axes`, numbered with the first axis varying slowest and the last fastest. Callers put
/// the seed axis first, so that every setting's first seed comes before any second seed: a sweep cut short still
/// covers the whole grid.
pub fn expand(axes: &[Axis]) -> Result<Vec<Point>> {
    for (i, a) in axes.iter().enumerate() {
        if axes[..i].iter().any(|b| b.key == a.key) {
            bail!("the key {:?} is varied twice (once per --grid, and --seeds varies `seed`)", a.key);
        }
    }
    let total: usize = axes.iter().map(|a| a.values.len()).product();
    let mut points = Vec::with_capacity(total);
    for index in 0..total {
        let mut rest = index;
        let mut overrides = vec![(String::new(), String::new()); axes.len()];
        for (slot, axis) in overrides.iter_mut().zip(axes).rev() {
            let n = axis.values.len();
            *slot = (axis.key.clone(), axis.values[rest % n].clone());
            rest /= n;
        }
        let named: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={}", file_safe(v))).collect();
        let id = if named.is_empty() { format!("{index:03}") } else { format!("{index:03}-{}", named.join("_")) };
        points.push(Point { index, id, overrides });
    }
    Ok(points)
}

/// `text` with every character that is awkward in a folder name replaced by `-`.
fn file_safe(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+') { c } else { '-' }).collect()
}

/// What the sweep was started with, kept in `sweep.json` so that a later invocation in the same folder continues
/// the same sweep and refuses a different one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// The recipe file as given.
    pub recipe: PathBuf,
    /// `--set` overrides every run shares.
    pub overrides: Vec<String>,
    /// The axes, the seed axis (if any) first.
    pub axes: Vec<Axis>,
}

impl Definition {
    /// Writes `sweep.json` into `dir`, or checks that the one there describes this sweep.
    pub fn claim(&self, dir: &Path) -> Result<()> {
        let path = dir.join("sweep.json");
        if path.exists() {
            let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let saved: Definition =
                serde_json::from_str(&text).with_context(|| format!("{} is not a sweep definition", path.display()))?;
            if saved != *self {
                bail!(
                    "{} holds a different sweep (recipe {}, overrides {:?}, grid {}); continue it with the same \
                     arguments, or give another --runs-dir",
                    dir.display(),
                    saved.recipe.display(),
                    saved.overrides,
                    saved
                        .axes
                        .iter()
                        .map(|a| format!("{}={}", a.key, a.values.join(",")))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            return Ok(());
        }
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        crate::run::replace_file(&path, (serde_json::to_string_pretty(self)? + "\n").as_bytes())
    }
}

/// How far one run of the sweep got, read from its folder.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Nothing to continue from.
    Fresh,
    /// A run folder with a checkpoint and no final summary: `--resume` it.
    Resumable(PathBuf),
    /// Trained to its last step (summary in the run folder), measures still missing.
    Trained(PathBuf),
    /// Trained and measured.
    Done(PathBuf),
}

/// The state of the run whose `burnish train --runs-dir` is `home`, when `measures` (names of `measures.json`'s
/// fields) must be present for it to be done, taken with `settings` (fields such as `split` or `rho` that
/// `measures.json` must hold with these values; measures taken otherwise are taken again).
pub fn progress(home: &Path, measures: &[&str], settings: &[(&str, serde_json::Value)]) -> Result<Progress> {
    let Some(dir) = run_folder(home)? else { return Ok(Progress::Fresh) };
    match read_summary(&dir)? {
        Some(s) if !s.interrupted => {
            let measured = read_measures(home)?;
            let same = |(k, v): &(&str, serde_json::Value)| measured.get(*k).is_some_and(|m| same_value(m, v));
            Ok(if measures.iter().all(|m| measured.get(*m).is_some()) && settings.iter().all(same) {
                Progress::Done(dir)
            } else {
                Progress::Trained(dir)
            })
        }
        _ if crate::run::checkpoints_in(&dir.join("checkpoints")).is_ok_and(|c| !c.is_empty()) => {
            Ok(Progress::Resumable(dir))
        }
        _ => Ok(Progress::Fresh),
    }
}

/// Whether two JSON values are equal, numbers compared as numbers (`256` and `256.0` alike).
fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The run folder `burnish train` created under `home` (it creates exactly one), if any.
pub fn run_folder(home: &Path) -> Result<Option<PathBuf>> {
    if !home.exists() {
        return Ok(None);
    }
    let mut dirs: Vec<PathBuf> = fs::read_dir(home)
        .with_context(|| format!("cannot list {}", home.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs.pop())
}

/// The fields of a run's `summary.json` the sweep reports (NaN is written as null, hence the options).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunSummary {
    /// Whether the run stopped before its last step.
    #[serde(default)]
    pub interrupted: bool,
    /// Test accuracy of the raw weights.
    pub test_acc: Option<f64>,
    /// Test accuracy of the EMA weights.
    pub test_acc_ema: Option<f64>,
    /// Test cross-entropy of the evaluation model.
    pub test_loss: Option<f64>,
    /// Accuracy on the fixed subset of labelled training images.
    pub train_acc: Option<f64>,
    /// Cross-entropy on them.
    pub train_loss: Option<f64>,
    /// `train_acc − test_acc_ema`.
    pub gap_acc: Option<f64>,
    /// `test_loss − train_loss`.
    pub gap_loss: Option<f64>,
    /// Steps trained (fewer than the schedule's when `schedule.stop_at_train_acc` ended the run early).
    pub steps: Option<f64>,
    /// Wall time of the invocation that wrote it.
    pub wall_s: Option<f64>,
}

/// The summary in run folder `dir`, if it has one.
pub fn read_summary(dir: &Path) -> Result<Option<RunSummary>> {
    let path = dir.join("summary.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(serde_json::from_str(&text).with_context(|| format!("{} is not a run summary", path.display()))?))
}

/// The `measures.json` that `burnish measure --json` wrote into `home` (empty when there is none).
pub fn read_measures(home: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    let path = home.join("measures.json");
    if !path.exists() {
        return Ok(serde_json::Map::new());
    }
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => bail!("{} is not the JSON object `burnish measure --json` writes", path.display()),
    }
}

/// How a run of the sweep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Trained (and measured, when measures were asked for).
    Done,
    /// Training or measuring failed; the row has the error.
    Failed,
    /// Stopped by a signal with a checkpoint; the next invocation resumes it.
    Stopped,
}

impl Status {
    /// The word `sweep.csv` uses.
    pub fn name(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
        }
    }
}

/// The prefix of the `sweep.csv` columns that hold a run's grid overrides (`set:data.labels_per_class`).
pub const SET_PREFIX: &str = "set:";

/// The summary columns of `sweep.csv`, after the overrides: the numbers copied from each run's summary, candidates
/// for the gap in `burnish analyze`, never its default measures.
pub const SUMMARY_COLUMNS: [&str; 9] =
    ["test_acc", "test_acc_ema", "test_loss", "train_acc", "train_loss", "gap_acc", "gap_loss", "steps", "wall_s"];

/// One row of `sweep.csv`.
#[derive(Debug, Clone)]
pub struct Row {
    /// The run.
    pub point: Point,
    /// How it ended.
    pub status: Status,
    /// The error of a failed run.
    pub error: String,
    /// Its summary (default when it has none).
    pub summary: RunSummary,
    /// Wall seconds over every invocation that trained or measured it.
    pub wall_s: f64,
    /// The measures of `measures.json`.
    pub measures: serde_json::Map<String, serde_json::Value>,
}

/// Writes `sweep.csv` into `dir`: one row per run in `rows` (in sweep order), the overrides as `set:KEY` columns,
/// the summary columns, and one column per name in `measures`; missing numbers are empty cells.
pub fn write_table(dir: &Path, axes: &[Axis], measures: &[&str], rows: &[&Row]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = vec!["run".into(), "status".into(), "error".into()];
    header.extend(axes.iter().map(|a| format!("{}{}", SET_PREFIX, a.key)));
    header.extend(SUMMARY_COLUMNS.iter().map(|c| c.to_string()));
    header.extend(measures.iter().map(|m| m.to_string()));
    w.write_record(&header)?;
    let cell = |v: Option<f64>| v.filter(|v| v.is_finite()).map_or_else(String::new, |v| format!("{v}"));
    for row in rows {
        let s = &row.summary;
        let mut record = vec![row.point.id.clone(), row.status.name().to_string(), row.error.clone()];
        record.extend(row.point.overrides.iter().map(|(_, v)| v.clone()));
        record.extend(
            [s.test_acc, s.test_acc_ema, s.test_loss, s.train_acc, s.train_loss, s.gap_acc, s.gap_loss, s.steps]
                .into_iter()
                .map(cell),
        );
        record.push(cell((row.wall_s > 0.0).then_some(row.wall_s)));
        record.extend(measures.iter().map(|m| cell(row.measures.get(*m).and_then(serde_json::Value::as_f64))));
        w.write_record(&record)?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("cannot write sweep.csv: {e}"))?;
    crate::run::replace_file(&dir.join("sweep.csv"), &bytes)
}

/// The wall seconds recorded for the run at `home` so far (one line per invocation in `home/wall_s`).
pub fn recorded_wall(home: &Path) -> f64 {
    fs::read_to_string(home.join("wall_s"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse::<f64>().ok()).sum())
        .unwrap_or(0.0)
}

/// Adds one invocation's `seconds` to `home/wall_s`.
pub fn record_wall(home: &Path, seconds: f64) -> Result<()> {
    use std::io::Write;
    let path = home.join("wall_s");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(f, "{seconds:.3}").with_context(|| format!("cannot write {}", path.display()))
}
