//! `burnish plot RUN_DIR…`: PNG figures of a run's `metrics.jsonl`, or of several runs overlaid.
//!
//! One run: figures (each written only when it has data; `loss`, `accuracy` and `lr` are the ones every run has)
//! into `RUN_DIR/plots/` by default:
//! - `loss.png`: the total `loss` and every `<stage>/loss` against the step;
//! - `accuracy.png`: `test_acc`, `test_acc_ema` and any other top-level `*_acc` series (`probe_acc`, `knn_acc`;
//!   not the per-step training accuracies of stages such as `fixmatch/pseudo_acc`);
//! - `mask_rate.png`: every `*mask_rate` series (FixMatch's confident fraction);
//! - `s_rho.png`: every `*s_rho` series (the local inconsistency IAM measures);
//! - `lr.png`: the learning rate.
//!
//! Several runs (`burnish plot RUN_A RUN_B … --out DIR`; `--out` is required, since the comparison belongs to no one
//! run): one figure per metric that those figures show, named after it (`loss.png`, `fixmatch_loss.png`,
//! `test_acc_ema.png`, `fixmatch_mask_rate.png`, `lr.png`, …: `/` becomes `_`), with one line per run that logs it,
//! one colour per run (in the order given; ten colours, then they repeat) and the run folders' names in the legend.
//!
//! Per-step series are noisy: a loss, mask-rate or Ŝ_ρ series of `n ≥ 50` points is drawn faint, with its centred
//! moving average over about `n / 25` points (odd) on top in full colour; series of at most 30 points (evaluations) mark every point. Null, missing
//! and non-finite values are skipped.
//!
//! Text is drawn with DejaVu Sans embedded in the binary (crate `dejavu`) through plotters' `ab_glyph` renderer, so
//! plotting needs no system fonts; figures are rendered into an RGB buffer and encoded with `image`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Width of every figure in pixels.
pub const WIDTH: u32 = 960;
/// Height of every figure in pixels.
pub const HEIGHT: u32 = 540;

/// A series of `n` points is smoothed over a window of about `n / SMOOTH_DIV` points (when that is at least 3).
const SMOOTH_DIV: usize = 25;
/// Series with at most this many points (evaluations) get a marker on every point.
const MARK_UP_TO: usize = 30;

/// The font family every text of a figure uses; registered with the embedded font.
pub(super) const FONT: &str = "sans-serif";

/// Line colours, in order of the series of a figure (matplotlib's tab10).
pub(super) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Arguments of `burnish plot`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlotArgs {
    /// Run folders written by `burnish train` (each holds metrics.jsonl); several are overlaid, one colour per run.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub run_dirs: Vec<PathBuf>,
    /// Folder to write the PNG figures into (created if missing) [default: RUN_DIR/plots for one run; required
    /// for several].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Every numeric series of a metrics file: key → (step, value) points in file order.
type Metrics = BTreeMap<String, Vec<(f64, f64)>>;

/// What one figure shows.
struct Figure {
    file: &'static str,
    title: &'static str,
    y_desc: &'static str,
    /// The series shown, in legend order.
    keys: Vec<String>,
    /// A fixed y range (fractions), or `None` to fit the data.
    y_range: Option<(f64, f64)>,
    /// Whether long series get a moving average (not for smooth series such as the learning rate).
    smooth: bool,
}

/// Runs `burnish plot`.
pub fn run(args: &PlotArgs) -> Result<()> {
    match args.run_dirs.as_slice() {
        [] => anyhow::bail!("give at least one run folder"),
        [run_dir] => plot_one(run_dir, args.out.as_deref()),
        runs => {
            let out = args.out.as_deref().ok_or_else(|| {
                anyhow!(
                    "plotting {} runs together needs --out DIR: the overlaid figures belong to no one run",
                    runs.len()
                )
            })?;
            plot_overlay(runs, out)
        }
    }
}

/// One run: its figures, into `out` or `RUN_DIR/plots`.
fn plot_one(run_dir: &Path, out: Option<&Path>) -> Result<()> {
    let path = run_dir.join("metrics.jsonl");
    let metrics = read_metrics(&path)?;
    let out = out.map_or_else(|| run_dir.join("plots"), Path::to_path_buf);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    register_font()?;
    let mut written = 0;
    for figure in figures(&metrics) {
        let series: Vec<Series> = figure
            .keys
            .iter()
            .filter_map(|k| metrics.get(k).filter(|p| !p.is_empty()).map(|p| (k.clone(), p.as_slice())))
            .enumerate()
            .map(|(i, (name, points))| Series { name, points, color: PALETTE[i % PALETTE.len()] })
            .collect();
        if series.is_empty() {
            continue;
        }
        let file = out.join(figure.file);
        draw(&figure.style(figure.title.to_string()), &series, &file)?;
        outln!("wrote {}", file.display())?;
        written += 1;
    }
    anyhow::ensure!(written > 0, "{}: no series to plot (no loss, accuracy or lr values)", path.display());
    Ok(())
}

/// Several runs: one figure per metric, one line per run, into `out`.
fn plot_overlay(run_dirs: &[PathBuf], out: &Path) -> Result<()> {
    let runs = run_dirs
        .iter()
        .map(|dir| read_metrics(&dir.join("metrics.jsonl")).map(|m| (dir.clone(), m)))
        .collect::<Result<Vec<_>>>()?;
    let names = run_names(run_dirs);
    // The figures of all runs together decide which metrics are drawn.
    let mut union = Metrics::new();
    for (_, metrics) in &runs {
        for (key, points) in metrics {
            union.entry(key.clone()).or_default().extend_from_slice(points);
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    register_font()?;
    let mut written = 0;
    for figure in figures(&union) {
        for key in &figure.keys {
            // A run keeps its colour in every figure, also where another run lacks the metric.
            let series: Vec<Series> = runs
                .iter()
                .zip(&names)
                .enumerate()
                .filter_map(|(i, ((_, m), name))| {
                    let points = m.get(key).filter(|p| !p.is_empty())?;
                    Some(Series { name: name.clone(), points, color: PALETTE[i % PALETTE.len()] })
                })
                .collect();
            if series.is_empty() {
                continue;
            }
            let file = out.join(format!("{}.png", key.replace('/', "_")));
            draw(&figure.style(format!("{}: {key}", figure.title)), &series, &file)?;
            outln!("wrote {}", file.display())?;
            written += 1;
        }
    }
    anyhow::ensure!(written > 0, "none of the runs has a series to plot (no loss, accuracy or lr values)");
    Ok(())
}

/// The legend name of each run: its folder's name, or the path as given when two folders share a name.
fn run_names(run_dirs: &[PathBuf]) -> Vec<String> {
    let base = |dir: &PathBuf| {
        dir.canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| dir.display().to_string())
    };
    let bases: Vec<String> = run_dirs.iter().map(base).collect();
    bases
        .iter()
        .zip(run_dirs)
        .map(
            |(b, dir)| if bases.iter().filter(|o| *o == b).count() > 1 { dir.display().to_string() } else { b.clone() },
        )
        .collect()
}

/// One line of a figure.
struct Series<'a> {
    /// Legend name.
    name: String,
    points: &'a [(f64, f64)],
    color: RGBColor,
}

/// How a figure is drawn, whatever its series.
struct Style {
    title: String,
    y_desc: &'static str,
    y_range: Option<(f64, f64)>,
    smooth: bool,
}

impl Figure {
    fn style(&self, title: String) -> Style {
        Style { title, y_desc: self.y_desc, y_range: self.y_range, smooth: self.smooth }
    }
}

/// Reads `path` (one JSON object per line, each with a numeric `step`) into series.
fn read_metrics(path: &Path) -> Result<Metrics> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut metrics = Metrics::new();
    let mut rows = 0;
    for (i, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: not valid JSON", at()))?;
        let obj = value.as_object().ok_or_else(|| anyhow!("{}: expected a JSON object, got {line}", at()))?;
        let step = obj
            .get("step")
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| anyhow!("{}: the record has no numeric `step`", at()))?;
        for (key, v) in obj {
            if key == "step" {
                continue;
            }
            if let Some(v) = v.as_f64().filter(|v| v.is_finite()) {
                metrics.entry(key.clone()).or_default().push((step, v));
            }
        }
        rows += 1;
    }
    anyhow::ensure!(rows > 0, "{} is empty: the run has not logged a step yet", path.display());
    Ok(metrics)
}

/// The figures a run can have, with the keys of `metrics` each one shows.
fn figures(metrics: &Metrics) -> Vec<Figure> {
    let keys = |pred: &dyn Fn(&str) -> bool| metrics.keys().filter(|k| pred(k)).cloned().collect::<Vec<_>>();
    let mut loss = keys(&|k| k == "loss");
    loss.extend(keys(&|k| k.ends_with("/loss")));
    let mut accuracy: Vec<String> =
        ["test_acc_ema", "test_acc"].iter().filter(|k| metrics.contains_key(**k)).map(|k| k.to_string()).collect();
    accuracy.extend(keys(&|k| {
        (k.ends_with("_acc") || k.ends_with("_acc_ema")) && !k.contains('/') && !k.starts_with("test_acc")
    }));
    vec![
        Figure { file: "loss.png", title: "Training loss", y_desc: "loss", keys: loss, y_range: None, smooth: true },
        Figure {
            file: "accuracy.png",
            title: "Accuracy",
            y_desc: "accuracy",
            keys: accuracy,
            y_range: Some((0.0, 1.0)),
            smooth: false,
        },
        Figure {
            file: "mask_rate.png",
            title: "Pseudo-label mask rate",
            y_desc: "fraction above threshold",
            keys: keys(&|k| k.ends_with("mask_rate")),
            y_range: Some((0.0, 1.0)),
            smooth: true,
        },
        Figure {
            file: "s_rho.png",
            title: "Local inconsistency Ŝ_ρ",
            y_desc: "Ŝ_ρ",
            keys: keys(&|k| k.ends_with("s_rho")),
            y_range: None,
            smooth: true,
        },
        Figure {
            file: "lr.png",
            title: "Learning rate",
            y_desc: "lr",
            keys: keys(&|k| k == "lr"),
            y_range: None,
            smooth: false,
        },
    ]
}

/// Registers the embedded DejaVu Sans as the font plotters draws text with (once per process).
pub(super) fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        [FontStyle::Normal, FontStyle::Bold]
            .into_iter()
            .all(|style| plotters::style::register_font(FONT, style, dejavu::sans::regular()).is_ok())
    });
    anyhow::ensure!(ok, "the embedded DejaVu Sans font could not be loaded");
    Ok(())
}

/// Centred moving average over `window` points (shorter at both ends).
fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let mut prefix = Vec::with_capacity(points.len() + 1);
    prefix.push(0.0);
    for &(_, v) in points {
        prefix.push(prefix[prefix.len() - 1] + v);
    }
    let half = window / 2;
    (0..points.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + window - half).min(points.len());
            (points[i].0, (prefix[hi] - prefix[lo]) / (hi - lo) as f64)
        })
        .collect()
}

/// A short axis label: fixed point for ordinary magnitudes, scientific for tiny or huge ones.
pub(super) fn fmt_number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// `(lo, hi)` widened so that a flat series still gets a visible range, plus a 5 % margin.
pub(super) fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = if hi.abs() > 0.0 { hi.abs() * 0.1 } else { 1.0 };
        (lo - pad, hi + pad)
    } else {
        (lo - 0.05 * span, hi + 0.05 * span)
    }
}

/// Renders `series` into an RGB buffer and writes it to `path` as a PNG.
fn draw(figure: &Style, series: &[Series], path: &Path) -> Result<()> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x_lo, x_hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(x, _)| (lo.min(x), hi.max(x)));
    let (x_lo, x_hi) = if x_hi > x_lo { (x_lo, x_hi) } else { (x_lo - 1.0, x_hi + 1.0) };
    let (y_lo, y_hi) = match figure.y_range {
        Some(range) => range,
        None => {
            let (lo, hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, y)| (lo.min(y), hi.max(y)));
            padded(lo, hi)
        }
    };

    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let mut buffer = vec![255u8; w * h * 3];
    let err = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&figure.title, (FONT, 22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .map_err(|e| err(&e))?;
        let x_fmt = |v: &f64| format!("{v:.0}");
        let y_fmt = |v: &f64| fmt_number(*v);
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(figure.y_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| err(&e))?;

        for Series { name, points, color } in series {
            let (points, color) = (*points, *color);
            // An odd window, so the centred average does not shift the curve by half a step.
            let window = (points.len() / SMOOTH_DIV) | 1;
            let smooth = figure.smooth && window >= 3;
            let raw_style = if smooth { color.mix(0.25).stroke_width(1) } else { color.stroke_width(2) };
            let raw = chart.draw_series(LineSeries::new(points.iter().copied(), raw_style)).map_err(|e| err(&e))?;
            let label = if smooth {
                chart
                    .draw_series(LineSeries::new(moving_average(points, window), color.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(format!("{name} (moving average of {window})"))
            } else if points.len() <= MARK_UP_TO {
                // Few points (evaluations): mark each one, so a single evaluation still shows.
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| err(&e))?
                    .label(name.to_string())
            } else {
                raw.label(name.to_string())
            };
            label.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    save_png(buffer, path)
}

/// Encodes a figure's RGB buffer (`WIDTH` × `HEIGHT`) as a PNG file at `path`.
pub(super) fn save_png(buffer: Vec<u8>, path: &Path) -> Result<()> {
    let image = image::RgbImage::from_raw(WIDTH, HEIGHT, buffer)
        .ok_or_else(|| anyhow!("cannot draw {}: wrong buffer size", path.display()))?;
    image.save_with_format(path, image::ImageFormat::Png).with_context(|| format!("cannot write {}", path.display()))
}
