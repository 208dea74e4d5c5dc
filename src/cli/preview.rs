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
//! [`GAP`] white pixels, so the grid is `cols·w·scale + (cols + 1)·GAP` wide and `rows·h·scale + (rows + 1)·GAP`
//! high. Grayscale images are drawn as RGB with equal channels.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burnish_augment::{Image, Transform};
use image::{Rgb, RgbImage};

use super::RecipeArgs;
use crate::data::Split;
use crate::seed::{domain, rng_for};

/// White pixels between cells and around the grid.
pub const GAP: u32 = 4;

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
                format!("{}/{}#{}", stream.name, view.name(), stream.views[..=vid].iter().filter(same).count())
            } else {
                format!("{}/{}", stream.name, view.name())
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

    let grid = compose(&rows, args.scale);
    write_png(&grid, &args.out)?;
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    println!("columns: {}", names.join(", "));
    let described: Vec<String> = indices
        .iter()
        .map(|&i| match data.dataset.class_names.get(split.label(i)) {
            Some(class) => format!("{i} ({class})"),
            None => i.to_string(),
        })
        .collect();
    println!("rows (training image indices): {}", described.join(", "));
    println!("wrote {} ({}x{})", args.out.display(), grid.width(), grid.height());
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
    let height = rows.len() as u32 * cell_h + (rows.len() as u32 + 1) * GAP;
    let mut grid = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (r, cells) in rows.iter().enumerate() {
        for (c, cell) in cells.iter().enumerate() {
            let rgb = cell.to_rgb();
            let x0 = GAP + c as u32 * (cell_w + GAP);
            let y0 = GAP + r as u32 * (cell_h + GAP);
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

/// Writes `grid` as a PNG at `path`, whatever its extension.
fn write_png(grid: &RgbImage, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    grid.write_to(&mut writer, image::ImageFormat::Png).with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::flush(&mut writer).with_context(|| format!("cannot write {}", path.display()))
}
