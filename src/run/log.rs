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
        let mut csv_rows = read_csv(&csv_path)?.into_iter();
        let columns = csv_rows.next();
        let width = columns.as_ref().map_or(0, Vec::len);
        // A row cut short by a kill has fewer fields than the header (and `read_csv` drops an unterminated last line).
        let kept_csv: Vec<Vec<String>> = columns
            .iter()
            .cloned()
            .chain(csv_rows.filter(|r| {
                r.len() == width && r.first().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s <= start)
            }))
            .collect();
        let create = |path: &Path| File::create(path).with_context(|| format!("cannot write {}", path.display()));
        let mut jsonl = create(&jsonl_path)?;
        for l in &kept_json {
            writeln!(jsonl, "{l}")?;
        }
        let mut csv = create(&csv_path)?;
        for r in &kept_csv {
            csv.write_all(&csv_line(r)?)?;
        }
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
                self.csv.write_all(&csv_line(&c)?)?;
                self.columns = Some(c.clone());
                c
            }
        };
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match obj.get(c) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            })
            .collect();
        self.csv.write_all(&csv_line(&cells)?)?;
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

/// One CSV record with its line end, encoded by the csv crate (which quotes a field holding a comma or quote), so it
/// can be written with one write call: a kill cuts at most the line being written.
fn csv_line<S: AsRef<[u8]>>(fields: &[S]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(fields)?;
    w.into_inner().map_err(|e| anyhow::anyhow!("cannot encode a metrics.csv row: {e}"))
}

/// The records of a `metrics.csv`, header first; none when the file does not exist. A last line without its line
/// end was cut short by a kill and is dropped, even where the cut left the right number of fields.
fn read_csv(path: &Path) -> Result<Vec<Vec<String>>> {
    let mut bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    bytes.truncate(bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1));
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes.as_slice());
    let mut rows = Vec::new();
    for record in reader.records() {
        // A field a kill cut in the middle of its quotes makes the rest unreadable; what came before stays.
        let Ok(record) = record else { break };
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok(rows)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_round_trip_with_quoted_fields_and_drop_a_cut_last_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("metrics.csv");
        let header = ["step", "a,b", "say \"hi\""];
        let row = ["1", "0.5", "null"];
        let mut bytes = [csv_line(&header).expect("header"), csv_line(&row).expect("row")].concat();
        assert_eq!(String::from_utf8_lossy(&bytes), "step,\"a,b\",\"say \"\"hi\"\"\"\n1,0.5,null\n");
        // A kill in the middle of the next row leaves all its fields but a short last one, and no line end.
        bytes.extend_from_slice(b"2,0.25,nu");
        std::fs::write(&path, &bytes).expect("write");
        let rows = read_csv(&path).expect("read");
        assert_eq!(rows, vec![header.map(String::from).to_vec(), row.map(String::from).to_vec()]);
        assert!(read_csv(&dir.path().join("absent.csv")).expect("absent is empty").is_empty());
    }
}
