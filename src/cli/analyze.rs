//! `burnish analyze SWEEP_DIR`: relates the measures of a sweep's checkpoints to their generalisation gap.
//!
//! Reads `SWEEP_DIR/sweep.csv` (written by `burnish sweep`), computes Kendall's τ-b, Spearman's ρ and the granulated
//! τ (ψ per hyper-parameter and their mean Ψ) of each measure against the gap over the runs that are done
//! ([`crate::analyze`]), prints the table and writes into `SWEEP_DIR/analysis/` (or `--out`):
//! - `table.md`: the printed table;
//! - `analysis.json`: every number, and the runs each measure used;
//! - `<measure>.png`: the gap against the measure, one point per run, coloured by the first hyper-parameter that is
//!   not the seed; the measure's axis is logarithmic when its values are all positive and span more than 100×.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use super::plot::{fmt_number, padded, register_font, save_png, FONT, HEIGHT, PALETTE, WIDTH};
use crate::analyze::{Analysis, MeasureStats, Point, Sweep, SEED};

/// A measure's axis turns logarithmic when its values are all positive and `max / min` exceeds this.
const LOG_SPAN: f64 = 100.0;

/// Arguments of `burnish analyze`.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeArgs {
    /// A folder written by `burnish sweep` (holds sweep.csv).
    #[arg(value_name = "SWEEP_DIR")]
    pub sweep_dir: PathBuf,
    /// The generalisation gap: `gap_acc` (train_acc − test_acc_ema), `gap_loss` (test_loss − train_loss) or any
    /// other numeric column of sweep.csv.
    #[arg(long, default_value = "gap_acc", value_name = "COLUMN")]
    pub gap: String,
    /// The measure columns, comma-separated [default: those of s_rho, lambda_max and sam_sharpness in sweep.csv].
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub measures: Vec<String>,
    /// Folder for table.md, analysis.json and the scatter plots (created if missing) [default: SWEEP_DIR/analysis].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `burnish analyze`.
pub fn run(args: &AnalyzeArgs) -> Result<()> {
    let path = args.sweep_dir.join("sweep.csv");
    anyhow::ensure!(
        path.is_file(),
        "{} does not exist: SWEEP_DIR must be a folder written by `burnish sweep`",
        path.display()
    );
    let sweep = Sweep::read(&path)?;
    let measures = sweep.measures(&args.measures)?;
    let analysis = Analysis::new(&sweep, &measures, &args.gap)?;
    let out = args.out.clone().unwrap_or_else(|| args.sweep_dir.join("analysis"));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let table = analysis.table();
    out!("{table}")?;
    let write = |name: &str, text: &str| {
        let file = out.join(name);
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
        eprintln!("wrote {}", file.display());
        anyhow::Ok(())
    };
    write("table.md", &table)?;
    write("analysis.json", &(serde_json::to_string_pretty(&analysis)? + "\n"))?;

    register_font()?;
    let colour = Colouring::new(&sweep);
    for stats in &analysis.measures {
        if stats.points.is_empty() {
            eprintln!("no plot for {}: no run that is done has both it and {}", stats.measure, analysis.gap);
            continue;
        }
        let file = out.join(format!("{}.png", stats.measure.replace(['/', '\\'], "_")));
        scatter(stats, &analysis.gap, &colour, &file)?;
        eprintln!("wrote {}", file.display());
    }
    Ok(())
}

/// The colour of each run: one per value of the first hyper-parameter that is not the seed.
struct Colouring {
    /// That hyper-parameter, or `None` when the grid varies only the seed.
    param: Option<String>,
    /// Its values, in legend order.
    values: Vec<String>,
    /// Each run's index into `values`.
    of_run: Vec<usize>,
}

impl Colouring {
    fn new(sweep: &Sweep) -> Colouring {
        let Some(k) = sweep.params.iter().position(|p| p != SEED) else {
            return Colouring { param: None, values: vec![String::new()], of_run: vec![0; sweep.runs.len()] };
        };
        let mut values: Vec<String> = Vec::new();
        for run in &sweep.runs {
            if !values.contains(&run.settings[k]) {
                values.push(run.settings[k].clone());
            }
        }
        // Numbers (learning rates, ρ) read best in order; other values keep the grid's order.
        if let Ok(numbers) = values.iter().map(|v| v.parse::<f64>()).collect::<Result<Vec<_>, _>>() {
            let mut by_number: Vec<(f64, String)> = numbers.into_iter().zip(values).collect();
            by_number.sort_by(|a, b| a.0.total_cmp(&b.0));
            values = by_number.into_iter().map(|(_, v)| v).collect();
        }
        let of_run = sweep.runs.iter().map(|r| values.iter().position(|v| *v == r.settings[k]).unwrap_or(0)).collect();
        Colouring { param: Some(sweep.params[k].clone()), values, of_run }
    }
}

/// Draws the gap against one measure's values, one point per run, and writes it to `path` as a PNG.
fn scatter(stats: &MeasureStats, gap: &str, colour: &Colouring, path: &Path) -> Result<()> {
    let (lo, hi) = min_max(stats.points.iter().map(|p| p.measure));
    let log = lo > 0.0 && hi / lo > LOG_SPAN;
    let corner = legend_corner(stats, log);
    if log {
        // The same 5 % margin as the linear axis, in decades.
        let pad = (hi / lo).powf(0.05);
        draw_scatter((lo / pad..hi * pad).log_scale(), stats, gap, colour, corner, path)
    } else {
        let (lo, hi) = padded(lo, hi);
        draw_scatter(lo..hi, stats, gap, colour, corner, path)
    }
}

/// The smallest and largest of `values`.
fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// The corner of the plot with the fewest points near it, for the legend to hide as few points as it can.
fn legend_corner(stats: &MeasureStats, log: bool) -> SeriesLabelPosition {
    let x = |p: &Point| if log { p.measure.ln() } else { p.measure };
    let (x_lo, x_hi) = min_max(stats.points.iter().map(x));
    let (y_lo, y_hi) = min_max(stats.points.iter().map(|p| p.gap));
    let unit = |v: f64, lo: f64, hi: f64| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
    let near = |right: bool, upper: bool| {
        let in_corner = |u: f64, high: bool| if high { u > 0.6 } else { u < 0.4 };
        let points = stats.points.iter();
        points.filter(|p| in_corner(unit(x(p), x_lo, x_hi), right) && in_corner(unit(p.gap, y_lo, y_hi), upper)).count()
    };
    // Ties go to the first: upper right, where a legend is looked for.
    [
        (SeriesLabelPosition::UpperRight, near(true, true)),
        (SeriesLabelPosition::UpperLeft, near(false, true)),
        (SeriesLabelPosition::LowerRight, near(true, false)),
        (SeriesLabelPosition::LowerLeft, near(false, false)),
    ]
    .into_iter()
    .min_by_key(|(_, n)| *n)
    .map_or(SeriesLabelPosition::UpperRight, |(corner, _)| corner)
}

/// [`scatter`] on a given measure axis, linear or logarithmic.
fn draw_scatter<X>(
    x_axis: X,
    stats: &MeasureStats,
    gap: &str,
    colour: &Colouring,
    corner: SeriesLabelPosition,
    path: &Path,
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let (y_lo, y_hi) = min_max(stats.points.iter().map(|p| p.gap));
    let (y_lo, y_hi) = padded(y_lo, y_hi);
    let tau = stats.kendall_tau.map_or_else(|| "n/a".to_string(), |t| format!("{t:.3}"));
    let title = format!("{} against {gap}: Kendall τ = {tau}, n = {}", stats.measure, stats.n);

    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let mut buffer = vec![255u8; w * h * 3];
    let err = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, (FONT, 22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(x_axis, y_lo..y_hi)
            .map_err(|e| err(&e))?;
        let fmt = |v: &f64| fmt_number(*v);
        chart
            .configure_mesh()
            .x_desc(stats.measure.as_str())
            .y_desc(gap)
            .x_label_formatter(&fmt)
            .y_label_formatter(&fmt)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| err(&e))?;

        for (i, value) in colour.values.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let points: Vec<(f64, f64)> =
                stats.points.iter().filter(|p| colour.of_run[p.row] == i).map(|p| (p.measure, p.gap)).collect();
            if points.is_empty() {
                continue;
            }
            let drawn = chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 5, color.filled())))
                .map_err(|e| err(&e))?;
            if let Some(param) = &colour.param {
                drawn
                    .label(format!("{param} = {value}"))
                    .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
            }
        }
        if colour.param.is_some() {
            chart
                .configure_series_labels()
                .position(corner)
                .label_font((FONT, 14))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(160, 160, 160))
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    save_png(buffer, path)
}
