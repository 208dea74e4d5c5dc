//! `burnish analyze`: how well measures of trained checkpoints (Ŝ_ρ, λ_max, SAM sharpness) rank a sweep's runs by
//! their generalisation gap. Reads the `sweep.csv` that `burnish sweep` writes and computes Kendall's τ-b,
//! Spearman's ρ and the granulated τ of Jiang et al. 2020 (docs/study.md, "burnish analyze").

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

// sweep.rs writes sweep.csv and owns its layout: the override prefix, the summary columns and the status words.
use crate::sweep::{Status, SET_PREFIX, SUMMARY_COLUMNS};

/// The columns that name a run and say how it ended: neither hyper-parameters nor numbers.
const ID_COLUMNS: [&str; 3] = ["run", "status", "error"];
/// The measures analysed when none are named: those of them the file has.
pub const DEFAULT_MEASURES: [&str; 3] = ["s_rho", "lambda_max", "sam_sharpness"];
/// The hyper-parameter `--seeds` varies: part of every group's key, never given a ψ of its own.
pub use crate::sweep::SEED_KEY as SEED;

/// One run's row of a sweep.csv.
#[derive(Debug, Clone)]
pub struct Run {
    /// The run's id: its folder under the sweep folder.
    pub id: String,
    /// How the run ended: `done`, `failed` or `stopped`.
    pub status: String,
    /// The run's value of each hyper-parameter, in [`Sweep::params`] order.
    pub settings: Vec<String>,
    /// The run's value of each numeric column, in [`Sweep::columns`] order; `None` when empty or not finite.
    pub values: Vec<Option<f64>>,
}

/// A sweep.csv read into memory.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The file it was read from, for messages.
    pub path: PathBuf,
    /// The keys of the `set:` columns, without the prefix, in file (grid) order.
    pub params: Vec<String>,
    /// The names of the numeric columns, in file order.
    pub columns: Vec<String>,
    /// The rows, in file order.
    pub runs: Vec<Run>,
}

/// One run an analysis used.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// The run's id.
    pub run: String,
    /// The run's index in [`Sweep::runs`].
    #[serde(skip)]
    pub row: usize,
    /// The measure's value.
    pub measure: f64,
    /// The gap's value.
    pub gap: f64,
}

/// ψ_K of one hyper-parameter K for one measure.
#[derive(Debug, Clone, Serialize)]
pub struct Granulated {
    /// The hyper-parameter K.
    pub param: String,
    /// The mean τ over the groups of runs that differ only in K; `None` when no group has a defined τ.
    pub psi: Option<f64>,
    /// The groups whose τ went into the mean.
    pub groups: usize,
}

/// How one measure relates to the gap.
#[derive(Debug, Clone, Serialize)]
pub struct MeasureStats {
    /// The measure's column.
    pub measure: String,
    /// The runs used: status `done`, measure and gap both finite.
    pub n: usize,
    /// Kendall's τ-b between measure and gap over those runs.
    pub kendall_tau: Option<f64>,
    /// Spearman's ρ between measure and gap over those runs.
    pub spearman: Option<f64>,
    /// ψ_K of each hyper-parameter, in [`Analysis::hyper_params`] order.
    pub granulated: Vec<Granulated>,
    /// Ψ: the mean of the defined ψ_K.
    pub psi: Option<f64>,
    /// The runs used, in file order.
    pub points: Vec<Point>,
}

/// How each measure of a sweep relates to the generalisation gap.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// The sweep.csv analysed.
    pub sweep: PathBuf,
    /// The gap's column.
    pub gap: String,
    /// Rows in the file.
    pub runs: usize,
    /// Rows with status `done`.
    pub done: usize,
    /// The hyper-parameters that get a ψ: every `set:` key but the seed, in grid order.
    pub hyper_params: Vec<String>,
    /// One entry per measure, in the order asked.
    pub measures: Vec<MeasureStats>,
}

impl Sweep {
    /// Reads `path`, refusing a cell of a numeric column that is neither empty nor a number.
    pub fn read(path: &Path) -> Result<Sweep> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .with_context(|| format!("{}: cannot read the header row", path.display()))?
            .iter()
            .map(str::to_string)
            .collect();
        for (i, name) in header.iter().enumerate() {
            if header[..i].contains(name) {
                bail!("{}: the column `{name}` appears twice", path.display());
            }
        }
        let find = |name: &str| header.iter().position(|h| h == name);
        let id =
            find("run").ok_or_else(|| anyhow!("{}: no `run` column (header: {})", path.display(), header.join(",")))?;
        let status = find("status")
            .ok_or_else(|| anyhow!("{}: no `status` column (header: {})", path.display(), header.join(",")))?;
        let params: Vec<usize> = (0..header.len()).filter(|&i| header[i].starts_with(SET_PREFIX)).collect();
        let numeric: Vec<usize> = (0..header.len())
            .filter(|&i| !header[i].starts_with(SET_PREFIX) && !ID_COLUMNS.contains(&header[i].as_str()))
            .collect();
        let mut runs = Vec::new();
        for record in reader.records() {
            let record = record.with_context(|| format!("{}: malformed CSV", path.display()))?;
            let cell = |i: usize| record.get(i).unwrap_or("");
            let run_id = cell(id).to_string();
            let values = numeric
                .iter()
                .map(|&i| match cell(i) {
                    "" => Ok(None),
                    text => text.parse::<f64>().map(|v| Some(v).filter(|v| v.is_finite())).map_err(|_| {
                        anyhow!("{}: run `{run_id}`, column `{}`: `{text}` is not a number", path.display(), header[i])
                    }),
                })
                .collect::<Result<Vec<_>>>()?;
            let settings = params.iter().map(|&i| cell(i).to_string()).collect();
            runs.push(Run { id: run_id, status: cell(status).to_string(), settings, values });
        }
        Ok(Sweep {
            path: path.to_path_buf(),
            params: params.iter().map(|&i| header[i][SET_PREFIX.len()..].to_string()).collect(),
            columns: numeric.iter().map(|&i| header[i].clone()).collect(),
            runs,
        })
    }

    /// The index of numeric column `name` in [`Sweep::columns`], or an error naming the column and the file.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| {
            anyhow!(
                "{}: no numeric column `{name}` (numeric columns: {})",
                self.path.display(),
                self.columns.join(", ")
            )
        })
    }

    /// The measures to analyse: `asked` when given (each must be a numeric column), else the default ones present.
    pub fn measures(&self, asked: &[String]) -> Result<Vec<String>> {
        if !asked.is_empty() {
            return asked.iter().map(|m| self.column(m.trim()).map(|_| m.trim().to_string())).collect();
        }
        let found: Vec<String> =
            DEFAULT_MEASURES.iter().filter(|m| self.columns.iter().any(|c| c == *m)).map(|m| m.to_string()).collect();
        if found.is_empty() {
            let others: Vec<&str> =
                self.columns.iter().map(String::as_str).filter(|c| !SUMMARY_COLUMNS.contains(c)).collect();
            bail!(
                "{}: none of the default measures ({}) is a column; name measure columns with --measures (other \
                 columns: {})",
                self.path.display(),
                DEFAULT_MEASURES.join(", "),
                if others.is_empty() { "none".to_string() } else { others.join(", ") }
            );
        }
        Ok(found)
    }

    /// The runs with status `done` and finite values in both numeric columns `x` and `y`, in file order.
    pub fn points(&self, x: usize, y: usize) -> Vec<Point> {
        self.runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.status == Status::Done.name())
            .filter_map(|(row, r)| Some(Point { run: r.id.clone(), row, measure: r.values[x]?, gap: r.values[y]? }))
            .collect()
    }
}

impl Analysis {
    /// Relates each column of `measures` to column `gap` over the `done` runs of `sweep`.
    pub fn new(sweep: &Sweep, measures: &[String], gap: &str) -> Result<Analysis> {
        let gap_col = sweep.column(gap)?;
        let done = sweep.runs.iter().filter(|r| r.status == Status::Done.name()).count();
        if done == 0 {
            bail!("{}: no run has status `{}` ({} rows)", sweep.path.display(), Status::Done.name(), sweep.runs.len());
        }
        let hyper: Vec<usize> = (0..sweep.params.len()).filter(|&k| sweep.params[k] != SEED).collect();
        let stats = measures
            .iter()
            .map(|measure| {
                let points = sweep.points(sweep.column(measure)?, gap_col);
                let x: Vec<f64> = points.iter().map(|p| p.measure).collect();
                let y: Vec<f64> = points.iter().map(|p| p.gap).collect();
                let settings: Vec<Vec<String>> = points.iter().map(|p| sweep.runs[p.row].settings.clone()).collect();
                let granulated: Vec<Granulated> = hyper
                    .iter()
                    .map(|&k| {
                        let (psi, groups) = granulated_tau(&x, &y, &settings, k);
                        Granulated { param: sweep.params[k].clone(), psi, groups }
                    })
                    .collect();
                let psi = mean(&granulated.iter().filter_map(|g| g.psi).collect::<Vec<_>>());
                Ok(MeasureStats {
                    measure: measure.clone(),
                    n: points.len(),
                    kendall_tau: kendall_tau_b(&x, &y),
                    spearman: spearman(&x, &y),
                    granulated,
                    psi,
                    points,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Analysis {
            sweep: sweep.path.clone(),
            gap: gap.to_string(),
            runs: sweep.runs.len(),
            done,
            hyper_params: hyper.iter().map(|&k| sweep.params[k].clone()).collect(),
            measures: stats,
        })
    }

    /// The results as a markdown paragraph and table: one row per measure, ψ cells with their group counts.
    pub fn table(&self) -> String {
        let mut s = format!(
            "`{}` against each measure over the runs of {} that are done ({} of {}). n: runs with both values; \
             ψ K: mean Kendall τ over the groups of runs that differ only in K (groups used in parentheses); Ψ: mean \
             of the ψ.\n\n",
            self.gap,
            self.sweep.display(),
            self.done,
            self.runs
        );
        s.push_str("| measure | n | Kendall τ | Spearman ρ |");
        for p in &self.hyper_params {
            let _ = write!(s, " ψ {p} |");
        }
        s.push_str(" Ψ |\n|---|--:|--:|--:|");
        s.push_str(&"--:|".repeat(self.hyper_params.len() + 1));
        s.push('\n');
        for m in &self.measures {
            let _ = write!(s, "| {} | {} | {} | {} |", m.measure, m.n, fmt(m.kendall_tau), fmt(m.spearman));
            for g in &m.granulated {
                let _ = write!(s, " {} ({}) |", fmt(g.psi), g.groups);
            }
            let _ = writeln!(s, " {} |", fmt(m.psi));
        }
        s
    }
}

/// A statistic with three decimals, or `n/a` when undefined.
fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

/// The mean of `v`, `None` when empty.
fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Kendall's τ-b of paired samples; `None` under 2 pairs, when either side is all ties, or on NaN.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    assert_eq!(x.len(), y.len(), "kendall_tau_b needs paired samples");
    let (mut concordant, mut discordant, mut tied_x, mut tied_y) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            let dx = x[i].partial_cmp(&x[j])?;
            let dy = y[i].partial_cmp(&y[j])?;
            // A pair tied on both sides counts in both tie totals, as τ-b's denominator wants.
            tied_x += u64::from(dx.is_eq());
            tied_y += u64::from(dy.is_eq());
            if dx.is_ne() && dy.is_ne() {
                if dx == dy {
                    concordant += 1;
                } else {
                    discordant += 1;
                }
            }
        }
    }
    let pairs = (x.len() * x.len().saturating_sub(1) / 2) as u64;
    let denominator = ((pairs - tied_x) as f64 * (pairs - tied_y) as f64).sqrt();
    (denominator > 0.0).then(|| (concordant as f64 - discordant as f64) / denominator)
}

/// Spearman's ρ: Pearson's correlation of the average ranks; `None` under 2 pairs, when either side is all ties.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    assert_eq!(x.len(), y.len(), "spearman needs paired samples");
    if x.iter().chain(y).any(|v| v.is_nan()) {
        return None;
    }
    pearson(&ranks(x), &ranks(y))
}

/// 1-based ranks, tied values sharing the mean of the ranks they span.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let end = (start..order.len()).find(|&e| v[order[e]] != v[order[start]]).unwrap_or(order.len());
        // Positions start..end hold 1-based ranks start+1 ..= end, whose mean is this.
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Pearson's correlation; `None` under 2 pairs or when either side is constant.
fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let (mx, my) = (mean(x)?, mean(y)?);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// ψ_K for hyper-parameter column `k` of `settings` (one row per pair): the mean τ-b and the number of groups used.
pub fn granulated_tau(x: &[f64], y: &[f64], settings: &[Vec<String>], k: usize) -> (Option<f64>, usize) {
    assert!(x.len() == y.len() && y.len() == settings.len(), "granulated_tau needs one settings row per pair");
    // Runs that agree on every other hyper-parameter (seed included) isolate K's effect: Jiang et al.'s eq. 4.
    let mut groups: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
    for (i, row) in settings.iter().enumerate() {
        let key = row.iter().enumerate().filter(|&(j, _)| j != k).map(|(_, v)| v.as_str()).collect();
        groups.entry(key).or_default().push(i);
    }
    let taus: Vec<f64> = groups
        .values()
        .filter(|g| g.len() >= 2)
        .filter_map(|g| {
            let gx: Vec<f64> = g.iter().map(|&i| x[i]).collect();
            let gy: Vec<f64> = g.iter().map(|&i| y[i]).collect();
            kendall_tau_b(&gx, &gy)
        })
        .collect();
    (mean(&taus), taus.len())
}
