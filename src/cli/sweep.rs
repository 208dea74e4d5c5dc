//! `burnish sweep RECIPE --grid KEY=V1,V2,…`: trains every point of a grid of overrides, `--jobs` at a time, each
//! run a `burnish train` child process on its share of the cores, then (with `--measures`) a `burnish measure` of
//! its final checkpoint; `sweep.csv` gathers every run. Child processes keep a failing run from taking the others
//! down and give each run its own thread pool. docs/study.md describes the folder and how to continue a sweep.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::ckpt::SplitChoice;
use super::measure::Measure;
use super::RecipeArgs;
use crate::recipe::Recipe;
use crate::run::Signal;
use crate::sweep::{self, Axis, Definition, Point, Progress, Row, Status};

/// Arguments of `burnish sweep`.
#[derive(Debug, Clone, clap::Args)]
pub struct SweepArgs {
    #[command(flatten)]
    /// The recipe and the overrides every run shares.
    pub recipe: RecipeArgs,
    /// A key and the values it takes, e.g. `--grid optimizer.lr=0.03,0.1`; several `--grid`s make the cartesian
    /// product. Commas inside brackets or quotes stay in their value.
    #[arg(long = "grid", value_name = "KEY=V1,V2,…")]
    pub grid: Vec<String>,
    /// Train every point with seeds 0 to N − 1 (the recipe key `seed`); without it, the recipe's seed.
    #[arg(long, value_name = "N")]
    pub seeds: Option<usize>,
    /// Runs at a time; the cores (`--threads`, else one per core) are split evenly between them.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// The sweep's folder (default: runs/sweep-<recipe file stem>); running the same command again continues it.
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
    /// Measure every run's final checkpoint (`burnish measure --measures`), e.g. `s_rho,lambda_max,sam`; the
    /// values become columns of sweep.csv. The EMA weights are measured when the recipe keeps an EMA, as the gap is
    /// evaluated on them.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub measures: Vec<Measure>,
    /// Images the measures use (`burnish measure --split`).
    #[arg(long, value_enum, default_value_t = SplitChoice::Train)]
    pub measure_split: SplitChoice,
    /// Images in the measures' batch (`burnish measure --batch`).
    #[arg(long, default_value_t = 256)]
    pub measure_batch: usize,
    /// Restarts of Ŝ_ρ (`burnish measure --restarts`).
    #[arg(long, default_value_t = 3)]
    pub measure_restarts: usize,
    /// One radius for Ŝ_ρ and the SAM sharpness (`burnish measure --rho R --sam-rho R`), so the two perturb the
    /// weights equally far; without it each takes `burnish measure`'s default.
    #[arg(long, value_name = "R")]
    pub measure_rho: Option<f64>,
    /// No progress bars (one line per finished run is still printed).
    #[arg(long)]
    pub quiet: bool,
}

/// The column names of the measures, in the order `--measures` gives them.
fn measure_columns(measures: &[Measure]) -> Vec<&'static str> {
    measures
        .iter()
        .map(|m| match m {
            Measure::SRho => "s_rho",
            Measure::LambdaMax => "lambda_max",
            Measure::Sam => "sam_sharpness",
        })
        .collect()
}

/// The `--measures` value of a child `burnish measure`.
fn measure_arg(measures: &[Measure]) -> String {
    let names: Vec<&str> = measures
        .iter()
        .map(|m| match m {
            Measure::SRho => "s_rho",
            Measure::LambdaMax => "lambda_max",
            Measure::Sam => "sam",
        })
        .collect();
    names.join(",")
}

/// The settings a run's `measures.json` must have been taken with (`sweep::progress`): changing them re-measures.
fn measure_settings(args: &SweepArgs) -> Vec<(&'static str, serde_json::Value)> {
    if args.measures.is_empty() {
        return Vec::new();
    }
    let mut s = vec![("split", args.measure_split.name().into())];
    if args.measures.contains(&Measure::SRho) {
        s.push(("restarts", args.measure_restarts.into()));
    }
    if let Some(rho) = args.measure_rho {
        if args.measures.contains(&Measure::SRho) {
            s.push(("rho", rho.into()));
        }
        if args.measures.contains(&Measure::Sam) {
            s.push(("sam_rho", rho.into()));
        }
    }
    s
}

/// Everything a worker needs to run a point.
struct Plan {
    exe: PathBuf,
    args: SweepArgs,
    dir: PathBuf,
    threads: usize,
    /// What `measures.json` must record.
    settings: Vec<(&'static str, serde_json::Value)>,
    /// Steps and whether an EMA is measured, per point (from its resolved recipe).
    recipes: Vec<(u64, bool)>,
}

/// Runs `burnish sweep`: 0 when every run is done, 1 when some failed, 130/143 when a signal stopped the sweep.
pub fn run(args: &SweepArgs) -> Result<ExitCode> {
    anyhow::ensure!(args.jobs >= 1, "--jobs must be at least 1");
    anyhow::ensure!(args.seeds != Some(0), "--seeds must be at least 1");
    let mut axes: Vec<Axis> = args.seeds.map(Axis::seeds).into_iter().collect();
    for g in &args.grid {
        axes.push(Axis::parse(g)?);
    }
    let points = sweep::expand(&axes)?;
    // Every point is validated before anything trains, so a bad value fails the sweep now, not hours in.
    let mut recipes = Vec::with_capacity(points.len());
    for p in &points {
        let mut overrides = args.recipe.overrides.clone();
        overrides.extend(p.overrides.iter().map(|(k, v)| format!("{k}={v}")));
        let r = Recipe::from_file(&args.recipe.recipe, &overrides).with_context(|| format!("sweep run {}", p.id))?;
        recipes.push((r.schedule.steps, r.ema.enabled));
    }
    let dir = args.runs_dir.clone().unwrap_or_else(|| {
        let stem = args.recipe.recipe.file_stem().map_or_else(|| "recipe".into(), |s| s.to_string_lossy());
        PathBuf::from("runs").join(format!("sweep-{stem}"))
    });
    Definition { recipe: args.recipe.recipe.clone(), overrides: args.recipe.overrides.clone(), axes: axes.clone() }
        .claim(&dir)?;
    crate::run::signal::install()?;
    let threads = (rayon::current_num_threads() / args.jobs).max(1);
    let plan = Plan {
        exe: std::env::current_exe().context("cannot find the burnish executable to start runs with")?,
        args: args.clone(),
        dir: dir.clone(),
        threads,
        settings: measure_settings(args),
        recipes,
    };
    let columns = measure_columns(&args.measures);
    // Rows of runs finished in earlier invocations are known before anything starts.
    let mut rows: BTreeMap<usize, Row> = BTreeMap::new();
    let mut todo = Vec::new();
    for p in &points {
        match sweep::progress(&dir.join(&p.id), &columns, &plan.settings)? {
            Progress::Done(_) => {
                rows.insert(p.index, row_on_disk(p, &dir.join(&p.id), Status::Done, String::new())?);
            }
            _ => todo.push(p.clone()),
        }
    }
    outln!(
        "sweep {}: {} runs ({} already done), {} at a time on {threads} thread(s) each",
        dir.display(),
        points.len(),
        rows.len(),
        args.jobs.min(todo.len().max(1))
    )
    .ok();
    let table = Mutex::new(rows);
    write(&dir, &axes, &columns, &table)?;

    let bars = if args.quiet {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let overall = bars.add(ProgressBar::new(points.len() as u64));
    overall.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} runs  {elapsed_precise}  {msg}")
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .progress_chars("=> "),
    );
    overall.set_prefix("sweep");
    overall.set_position((points.len() - todo.len()) as u64);
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(points.len() - todo.len());
    let failures: Mutex<Vec<anyhow::Error>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(todo.len()) {
            scope.spawn(|| {
                let bar = bars.insert_before(&overall, ProgressBar::new(1));
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} steps  {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                loop {
                    if crate::run::signal::received().is_some() {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(point) = todo.get(i) else { break };
                    bar.set_prefix(format!("{:03}", point.index));
                    bar.set_message(point.id.clone());
                    bar.set_length(plan.recipes[point.index].0);
                    bar.set_position(0);
                    let row = run_point(&plan, point, &columns, &bar);
                    let row = match row {
                        Ok(row) => row,
                        Err(e) => {
                            failures.lock().map(|mut f| f.push(e)).ok();
                            break;
                        }
                    };
                    let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
                    let line =
                        format!("[{n}/{}] {} {}{}", points.len(), row.point.id, row.status.name(), describe(&row));
                    // A closed stdout must not stop the runs: the line is then dropped.
                    bars.suspend(|| outln!("{line}")).ok();
                    if row.status != Status::Stopped {
                        overall.inc(1);
                    }
                    if let Ok(mut t) = table.lock() {
                        t.insert(point.index, row);
                    }
                    if let Err(e) = write(&dir, &axes, &columns, &table) {
                        failures.lock().map(|mut f| f.push(e)).ok();
                        break;
                    }
                }
                bar.finish_and_clear();
            });
        }
    });
    overall.finish_and_clear();
    if let Some(e) = failures.into_inner().ok().and_then(|mut f| f.pop()) {
        return Err(e);
    }
    let rows = table.into_inner().map_err(|_| anyhow::anyhow!("a sweep worker panicked"))?;
    let count = |s: Status| rows.values().filter(|r| r.status == s).count();
    outln!(
        "sweep {}: {} done, {} failed, {} not finished; table: {}",
        dir.display(),
        count(Status::Done),
        count(Status::Failed),
        points.len() - count(Status::Done) - count(Status::Failed),
        dir.join("sweep.csv").display()
    )
    .ok();
    if let Some(sig) = crate::run::signal::received() {
        outln!("stopped by {}; run the same command again to continue the sweep", sig.name()).ok();
        return Ok(ExitCode::from(sig.exit_code()));
    }
    Ok(if count(Status::Failed) > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Rewrites `sweep.csv` from the rows known so far.
fn write(dir: &Path, axes: &[Axis], columns: &[&str], table: &Mutex<BTreeMap<usize, Row>>) -> Result<()> {
    let rows = table.lock().map_err(|_| anyhow::anyhow!("a sweep worker panicked"))?;
    let rows: Vec<&Row> = rows.values().collect();
    sweep::write_table(dir, axes, columns, &rows)
}

/// The end of a finished run's progress line: its accuracy and gap, or its error.
fn describe(row: &Row) -> String {
    match row.status {
        Status::Failed => format!(": {}", row.error),
        Status::Stopped => " (resumes from its checkpoint next time)".to_string(),
        Status::Done => {
            let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
            format!(" test_acc_ema={} gap_acc={}", f(row.summary.test_acc_ema), f(row.summary.gap_acc))
        }
    }
}

/// The row of a run as its folder holds it (summary, wall time and measures so far), with how it ended.
fn row_on_disk(point: &Point, home: &Path, status: Status, error: String) -> Result<Row> {
    let summary = match sweep::run_folder(home)? {
        Some(run) => sweep::read_summary(&run)?.unwrap_or_default(),
        None => Default::default(),
    };
    Ok(Row {
        point: point.clone(),
        status,
        error,
        summary,
        wall_s: sweep::recorded_wall(home),
        measures: sweep::read_measures(home)?,
    })
}

/// Trains (or resumes) and measures one point; a failure of the run itself is a `Failed` row, an error here is
/// the sweep's own (its folder cannot be written).
fn run_point(plan: &Plan, point: &Point, columns: &[&str], bar: &ProgressBar) -> Result<Row> {
    let home = plan.dir.join(&point.id);
    wait_for_leftover(&home);
    let row = |status, error| row_on_disk(point, &home, status, error);
    let mut state = sweep::progress(&home, columns, &plan.settings)?;
    if matches!(state, Progress::Fresh) && home.exists() {
        // A run that died before its first checkpoint starts over in a clean folder.
        fs::remove_dir_all(&home).with_context(|| format!("cannot remove {}", home.display()))?;
    }
    fs::create_dir_all(&home).with_context(|| format!("cannot create {}", home.display()))?;
    if let Progress::Fresh | Progress::Resumable(_) = state {
        let mut cmd = plan.child("train");
        cmd.arg(&plan.args.recipe.recipe);
        for o in &plan.args.recipe.overrides {
            cmd.arg("--set").arg(o);
        }
        for (k, v) in &point.overrides {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        cmd.arg("--runs-dir").arg(&home).arg("--quiet");
        if let Progress::Resumable(run) = &state {
            cmd.arg("--resume").arg(run);
        }
        let status = plan.supervise(cmd, &home, Some(bar))?;
        match ended(status) {
            Ended::Ok => {}
            Ended::Signalled => return row(Status::Stopped, String::new()),
            Ended::Failed(code) => return row(Status::Failed, last_error(&home, code)),
        }
        state = sweep::progress(&home, columns, &plan.settings)?;
    }
    if let Progress::Trained(run) = &state {
        let Some(ckpt) = crate::run::RunFolder::open(run.clone())?.latest_checkpoint()? else {
            return row(Status::Failed, format!("{} has no checkpoint to measure", run.display()));
        };
        let a = &plan.args;
        let mut cmd = plan.child("measure");
        cmd.arg(&ckpt)
            .arg("--measures")
            .arg(measure_arg(&a.measures))
            .arg("--split")
            .arg(a.measure_split.name())
            .arg("--batch")
            .arg(a.measure_batch.to_string())
            .arg("--restarts")
            .arg(a.measure_restarts.to_string())
            .arg("--json")
            .arg(home.join("measures.json"));
        if plan.recipes[point.index].1 {
            cmd.arg("--ema");
        }
        if let Some(rho) = a.measure_rho {
            cmd.arg("--rho").arg(rho.to_string()).arg("--sam-rho").arg(rho.to_string());
        }
        bar.set_message(format!("{}: measuring", point.id));
        match ended(plan.supervise(cmd, &home, None)?) {
            Ended::Ok => {}
            Ended::Signalled => return row(Status::Stopped, String::new()),
            Ended::Failed(code) => return row(Status::Failed, last_error(&home, code)),
        }
        state = sweep::progress(&home, columns, &plan.settings)?;
    }
    match state {
        Progress::Done(_) => row(Status::Done, String::new()),
        // A run that stopped without a signal of ours (another process signalled it) continues next time.
        _ => row(Status::Stopped, String::new()),
    }
}

impl Plan {
    /// A `burnish <command>` child on this sweep's share of the cores.
    fn child(&self, command: &str) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--threads").arg(self.threads.to_string()).arg(command);
        cmd
    }

    /// Runs `cmd` with its output appended to `home/sweep.log`, in a process group of its own (so a Ctrl-C at the
    /// terminal reaches the sweep, which passes one signal on, rather than signalling the child twice) and told to
    /// stop when the sweep dies (`run::signal::PARENT_ENV`), updating
    /// `bar` from the run's metrics while it trains. Records its wall time.
    fn supervise(&self, mut cmd: Command, home: &Path, bar: Option<&ProgressBar>) -> Result<ExitStatus> {
        use std::os::unix::process::CommandExt;
        let log_path = home.join("sweep.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot write {}", log_path.display()))?;
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
        // A killed sweep's runs then checkpoint and stop rather than train on as orphans.
        cmd.env(crate::run::signal::PARENT_ENV, std::process::id().to_string());
        let started = Instant::now();
        let mut child: Child = cmd.spawn().with_context(|| format!("cannot start {}", self.exe.display()))?;
        let pid_file = home.join("child.pid");
        fs::write(&pid_file, child.id().to_string()).with_context(|| format!("cannot write {}", pid_file.display()))?;
        let mut forwarded = false;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if let (Some(sig), false) = (crate::run::signal::received(), forwarded) {
                forward(child.id(), sig);
                forwarded = true;
            }
            if let Some(bar) = bar {
                if let Some(step) = sweep::run_folder(home).ok().flatten().and_then(|d| last_step(&d)) {
                    bar.set_position(step);
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        sweep::record_wall(home, started.elapsed().as_secs_f64())?;
        let _ = fs::remove_file(&pid_file);
        Ok(status)
    }
}

/// Waits while a child that a killed sweep left behind (its pid in `home/child.pid`) is still writing its
/// checkpoint, so this invocation does not resume the run under it.
fn wait_for_leftover(home: &Path) {
    let Ok(pid) = fs::read_to_string(home.join("child.pid")) else { return };
    let proc_dir = Path::new("/proc").join(pid.trim());
    let is_ours = || fs::read(proc_dir.join("cmdline")).is_ok_and(|c| c.windows(7).any(|w| w == b"burnish"));
    let deadline = Instant::now() + Duration::from_secs(600);
    while is_ours() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = fs::remove_file(home.join("child.pid"));
}

/// Sends `sig` to process `pid` (through `kill`, which every Unix has, rather than unsafe FFI).
fn forward(pid: u32, sig: Signal) {
    let name = match sig {
        Signal::Interrupt => "-INT",
        Signal::Terminate => "-TERM",
    };
    let _ = Command::new("kill").arg(name).arg(pid.to_string()).status();
}

/// How a child ended, as the sweep sees it.
enum Ended {
    Ok,
    Signalled,
    Failed(Option<i32>),
}

fn ended(status: ExitStatus) -> Ended {
    match status.code() {
        Some(0) => Ended::Ok,
        Some(130 | 143) => Ended::Signalled,
        code if code.is_none() && crate::run::signal::received().is_some() => Ended::Signalled,
        code => Ended::Failed(code),
    }
}

/// The last `error: …` line a child wrote to `home/sweep.log`, else its exit code.
fn last_error(home: &Path, code: Option<i32>) -> String {
    let text = fs::read_to_string(home.join("sweep.log")).unwrap_or_default();
    text.lines().rev().find_map(|l| l.strip_prefix("error: ")).map_or_else(
        || match code {
            Some(c) => format!("exited with code {c} (see {})", home.join("sweep.log").display()),
            None => format!("killed by a signal (see {})", home.join("sweep.log").display()),
        },
        str::to_string,
    )
}

/// The `step` of the last complete row of a run folder's `metrics.jsonl`, read from its tail.
fn last_step(run: &Path) -> Option<u64> {
    let mut f = File::open(run.join("metrics.jsonl")).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024))).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["step"].as_u64())
}
