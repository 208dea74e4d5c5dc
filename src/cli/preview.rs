//! `burnish preview RECIPE --out grid.png`: a PNG grid of training images and the augmented views a recipe's
//! pipeline makes of them, to check by eye what the model is trained on.
//!
//! One row per sample, drawn from the training split by the recipe seed (the same recipe gives the same rows).
//! Columns: the original image, then every view of every stream the pipeline draws, in pipeline order (the
//! labelled stream's `data.labeled_views`, then the unlabeled stream's `data.unlabeled_views`; a recipe whose stages
//! read no labelled view, such as SimCLR alone, draws no labelled stream and shows none). Each view is made
//! by the transform the pipeline uses, seeded like the pipeline's first step (run seed, step 0, stream, row, view).
//!
//! Every cell is the image upscaled `scale` times (nearest neighbour); cells are separated, and the grid framed, by
//! [`GAP`] white pixels. Above the cells, a band of [`LABEL_BAND`] pixels names each column (`original`, then the
//! stream and the view on two lines: `labeled` / `weak`, `unlabeled` / `strong`, …), in the largest size up to 14 px
//! at which the names fit the cell width (8 px at least; a name wider than its cell even then is cut at the cell's
//! edge). So the grid is `cols·w·scale + (cols + 1)·GAP` wide and `LABEL_BAND + rows·h·scale + (rows + 1)·GAP`
//! high, and the cell of row r and column c starts at `(GAP + c·(w·scale + GAP), LABEL_BAND + GAP + r·(h·scale +
//! GAP))`. Grayscale images are drawn as RGB with equal channels; text is drawn with the font embedded for
//! `burnish plot`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burnish_augment::{Image, Transform};
use image::{Rgb, RgbImage};

use super::RecipeArgs;
use crate::data::Split;
use crate::seed::{domain, rng_for};

/// White pixels between cells and around the grid.
pub const GAP: u32 = 4;

/// Height of the band of column names above the cells, in pixels (two lines of text).
pub const LABEL_BAND: u32 = 36;

/// Largest and smallest text size of the column names, in pixels.
const LABEL_SIZES: (u32, u32) = (14, 8);

/// Domain tag of the generator that picks the preview's images (apart from the pipeline's own streams).
const PICK_DOMAIN: u64 = 0x0070_7265_7669_6577; // "preview" in ASCII

/// Arguments of `burnish preview`.
#[derive(Debug, Clone, clap::Args)]
pub struct PreviewArgs {
    /// The recipe and its overrides.
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Where to write the grid (a PNG file; its folder must exist).
    #[arg(long, value_name = "PNG")]
    pub out: PathBuf,
    /// Rows: how many training images to show (at most the size of the training split).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub samples: u64,
    /// Upscale factor of every cell, nearest neighbour.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub scale: u32,
}

/// One column of the grid: its name and the transform that makes it (`None` for the original image).
struct Column {
    name: String,
    /// (stream index in the pipeline, view index in the stream, transform).
    view: Option<(u64, u64, Box<dyn Transform>)>,
}

/// Runs `burnish preview`.
pub fn run(args: &PreviewArgs) -> Result<()> {
    let recipe = args.recipe.load()?;
    let data = crate::plan::data(&recipe)?;
    let split = &data.dataset.train;
    anyhow::ensure!(!split.is_empty(), "the training split of {} is empty", args.recipe.recipe.display());

    let mut columns = vec![Column { name: "original".into(), view: None }];
    for (sid, stream) in data.streams.iter().enumerate() {
        for (vid, view) in stream.views.iter().enumerate() {
            // A view listed twice (SimCLR's two crops) is numbered: `unlabeled/simclr#1`, `unlabeled/simclr#2`.
            let same = |v: &&burnish_augment::View| *v == view;
            let name = if stream.views.iter().filter(same).count() > 1 {
                format!("{}/{}#{}", stream.stream.name(), view.name(), stream.views[..=vid].iter().filter(same).count())
            } else {
                format!("{}/{}", stream.stream.name(), view.name())
            };
            columns.push(Column { name, view: Some((sid as u64, vid as u64, view.transform())) });
        }
    }

    let indices = pick(recipe.seed, split.len(), args.samples);
    let mut rows = Vec::with_capacity(indices.len());
    let mut pixels = Vec::new();
    for (row, &index) in indices.iter().enumerate() {
        split.read_pixels(index, &mut pixels).with_context(|| format!("cannot read training image {index}"))?;
        let image = to_image(split, std::mem::take(&mut pixels))?;
        let cells = columns
            .iter()
            .map(|c| match &c.view {
                None => image.clone(),
                Some((sid, vid, t)) => {
                    let mut rng = rng_for(&[recipe.seed, domain::VIEW, 0, *sid, row as u64, *vid]);
                    t.apply(&image, &mut rng)
                }
            })
            .collect::<Vec<_>>();
        rows.push(cells);
    }

    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let mut grid = compose(&rows, args.scale);
    draw_labels(&mut grid, &names)?;
    write_png(&grid, &args.out)?;
    outln!("columns: {}", names.join(", "))?;
    let described: Vec<String> = indices
        .iter()
        .map(|&i| match data.dataset.class_names.get(split.label(i)) {
            Some(class) => format!("{i} ({class})"),
            None => i.to_string(),
        })
        .collect();
    outln!("rows (training image indices): {}", described.join(", "))?;
    outln!("wrote {} ({}x{})", args.out.display(), grid.width(), grid.height())?;
    Ok(())
}

/// `samples` distinct training indices (all of them if the split is smaller), drawn by the run seed.
fn pick(seed: u64, len: usize, samples: u64) -> Vec<usize> {
    let amount = usize::try_from(samples).unwrap_or(usize::MAX).min(len);
    let mut rng = rng_for(&[seed, PICK_DOMAIN]);
    rand::seq::index::sample(&mut rng, len, amount).into_vec()
}

/// Wraps HWC bytes of `split`'s shape as an augmentation image.
fn to_image(split: &Split, pixels: Vec<u8>) -> Result<Image> {
    let (c, h, w) = split.shape();
    let (w32, h32) = (u32::try_from(w)?, u32::try_from(h)?);
    Image::from_raw(c, w32, h32, pixels).with_context(|| format!("images of shape {c}x{h}x{w} cannot be shown"))
}

/// The grid of `rows` (each a list of same-sized cells), every cell upscaled `scale` times.
fn compose(rows: &[Vec<Image>], scale: u32) -> RgbImage {
    let (cw, ch) = rows.first().and_then(|r| r.first()).map_or((0, 0), |im| (im.width(), im.height()));
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let (cell_w, cell_h) = (cw * scale, ch * scale);
    let width = cols * cell_w + (cols + 1) * GAP;
    let height = LABEL_BAND + rows.len() as u32 * cell_h + (rows.len() as u32 + 1) * GAP;
    let mut grid = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (r, cells) in rows.iter().enumerate() {
        for (c, cell) in cells.iter().enumerate() {
            let rgb = cell.to_rgb();
            let x0 = GAP + c as u32 * (cell_w + GAP);
            let y0 = LABEL_BAND + GAP + r as u32 * (cell_h + GAP);
            for (x, y, p) in rgb.enumerate_pixels() {
                for dy in 0..scale {
                    for dx in 0..scale {
                        grid.put_pixel(x0 + x * scale + dx, y0 + y * scale + dy, *p);
                    }
                }
            }
        }
    }
    grid
}

/// Writes the column names into the band above the cells of `grid` (composed by [`compose`] for `names.len()`
/// columns), each centred over its column and cut at the column's edges.
fn draw_labels(grid: &mut RgbImage, names: &[&str]) -> Result<()> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};

    let cols = names.len() as u32;
    if cols == 0 {
        return Ok(());
    }
    let cell_w = (grid.width() - (cols + 1) * GAP) / cols;
    if cell_w == 0 {
        return Ok(());
    }
    super::plot::register_font()?;
    // `unlabeled/strong` → two lines, `unlabeled` above `strong`.
    let lines: Vec<Vec<&str>> = names.iter().map(|n| n.splitn(2, '/').collect()).collect();
    let fits = |size: u32| {
        let font = (super::plot::FONT, size).into_font();
        lines.iter().flatten().all(|l| font.box_size(l).is_ok_and(|(w, _)| w <= cell_w))
    };
    let (largest, smallest) = LABEL_SIZES;
    let size = (smallest..=largest).rev().find(|&s| fits(s)).unwrap_or(smallest);
    let line_h = LABEL_BAND / 2;
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot draw the column names: {e}");
    for (c, label) in lines.iter().enumerate() {
        // Drawn into a buffer of the cell's width, so that a name too wide for its cell is cut at the cell's edges.
        let mut band = vec![255u8; (cell_w * LABEL_BAND * 3) as usize];
        {
            let area = BitMapBackend::with_buffer(&mut band, (cell_w, LABEL_BAND)).into_drawing_area();
            let style = TextStyle::from((super::plot::FONT, size).into_font())
                .color(&RGBColor(40, 40, 40))
                .pos(Pos::new(HPos::Center, VPos::Center));
            // One line sits in the middle of the band, two share it.
            let first = if label.len() == 1 { LABEL_BAND / 2 } else { line_h / 2 + 1 };
            for (k, text) in label.iter().enumerate() {
                let y = first + k as u32 * line_h;
                area.draw_text(text, &style, ((cell_w / 2) as i32, y as i32)).map_err(|e| err(&e))?;
            }
            area.present().map_err(|e| err(&e))?;
        }
        let x0 = GAP + c as u32 * (cell_w + GAP);
        for y in 0..LABEL_BAND {
            for x in 0..cell_w {
                let at = ((y * cell_w + x) * 3) as usize;
                grid.put_pixel(x0 + x, y, Rgb([band[at], band[at + 1], band[at + 2]]));
            }
        }
    }
    Ok(())
}

/// Writes `grid` as a PNG at `path`, whatever its extension.
fn write_png(grid: &RgbImage, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    grid.write_to(&mut writer, image::ImageFormat::Png).with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::flush(&mut writer).with_context(|| format!("cannot write {}", path.display()))
}
