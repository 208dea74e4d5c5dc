//! `synthetic`: a built-in, seeded generator of 32x32 RGB images in 10 shape classes.
//!
//! It is the quick-start and test data set, so it has to be a fair semi-supervised demo: learnable,
//! yet hard enough that 4 labels per class do not generalise while consistency training on the
//! unlabeled images (FixMatch) helps. The design:
//!
//! - **Class = shape family**, drawn anti-aliased: disk, ring, square, triangle, plus, stripes (a round
//!   patch of bars), checker (a square checkerboard patch), frame (hollow square), ellipse, and
//!   triangle outline. Several pairs differ only by filled vs hollow or by aspect, so the model has to
//!   learn shape, not colour or blob size. Every shape is mirror-symmetric, so a flipped image stays in
//!   its class.
//! - **The nuisance that separates the methods is one only strong views cover**: a rotation of up to
//!   ±15°. Weak views (flip, 4 px translation) never rotate, so 40 labelled images see a handful of
//!   angles; RandAugment rotates by up to ±27°, so FixMatch's strong-view consistency on the unlabeled
//!   images teaches the rotation invariance the labels cannot. Position, scale and a random light colour
//!   on a dark background vary too, covered by both views' translation and the strong colour ops.
//! - **Background and clutter** keep the task from being trivial: a random two-colour gradient, a
//!   low-frequency sinusoidal texture, per-pixel noise, and at most one small distractor (a dot or a
//!   thin line segment, smaller or thinner than any class shape) behind the shape.
//!
//! Image `i` of a split is drawn from its own RNG seeded by (seed, split, i) and its label is `i % 10`,
//! so the classes are balanced, the output is bit-identical for a seed whatever the number of threads,
//! and the train and test images are independent draws. Only IEEE-exact arithmetic is used (own sine
//! polynomial, no libm), so the bytes are the same on every platform.
//!
//! Normalisation constants: per-channel mean/std computed from the generated training images.

use super::{DataError, Dataset, Split};

/// Default number of training images.
pub const DEFAULT_TRAIN_SIZE: usize = 10_000;
/// Default number of test images.
pub const DEFAULT_TEST_SIZE: usize = 2_000;
/// Default generator seed.
pub const DEFAULT_SEED: u64 = 0;
/// Side of every image, in pixels.
pub const SIDE: usize = 32;
/// The class names, in label order.
pub const CLASS_NAMES: [&str; 10] =
    ["disk", "ring", "square", "triangle", "plus", "stripes", "checker", "frame", "ellipse", "triangle-outline"];

// Difficulty knobs, in pixels or u8 intensity units.
/// Shape radius range.
const SCALE: (f32, f32) = (9.0, 12.0);
/// Largest rotation of a shape either way, in radians (15°). Strong views rotate by up to 27° and weak views not at
/// all; measured on 4 labels per class at 300 steps, ±15° leaves supervised-only training at 80–87 % while FixMatch
/// reaches 96–99 %, whereas ±25° already stalls both near 60 % and a full turn near 35 %.
const ROTATION: f32 = 15.0 * std::f32::consts::PI / 180.0;
/// Shape centre range (both axes): shapes may be cut by the border, as after a random crop.
const CENTRE: (f32, f32) = (12.0, 20.0);
/// Channel-value ranges of the dark and the light side; shape and background take opposite sides.
const DARK: (f32, f32) = (0.0, 105.0);
const LIGHT: (f32, f32) = (150.0, 255.0);
/// Amplitude of the background's low-frequency texture.
const TEXTURE: f32 = 6.0;
/// Amplitude of the per-pixel noise shared by the channels, and of the per-channel part.
const NOISE: f32 = 6.0;
const CHROMA_NOISE: f32 = 3.0;
/// Number of distractors per image (inclusive range), and the share drawn over the shape.
const CLUTTER: (usize, usize) = (0, 1);
const CLUTTER_ON_TOP: f32 = 0.0;
/// Share of images drawn dark-on-light instead of light-on-dark.
const DARK_SHAPE_SHARE: f32 = 0.0;

/// Options of the synthetic data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticOptions {
    /// Number of training images (labels balanced: image `i` has label `i % 10`).
    pub train_size: usize,
    /// Number of test images.
    pub test_size: usize,
    /// Generator seed; the same seed gives the same bytes.
    pub seed: u64,
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        SyntheticOptions { train_size: DEFAULT_TRAIN_SIZE, test_size: DEFAULT_TEST_SIZE, seed: DEFAULT_SEED }
    }
}

/// Split tags mixed into the per-image seeds.
const TRAIN_TAG: u64 = 1;
const TEST_TAG: u64 = 2;

/// Generates the synthetic data set.
pub fn generate(options: &SyntheticOptions) -> Result<Dataset, DataError> {
    let train = generate_split(options.train_size, options.seed, TRAIN_TAG, "synthetic/train")?;
    let test = generate_split(options.test_size, options.seed, TEST_TAG, "synthetic/test")?;
    let (mean, std) = channel_stats(train.memory_pixels().unwrap_or(&[]), 3);
    Ok(Dataset {
        name: "synthetic".to_string(),
        train,
        test,
        num_classes: CLASS_NAMES.len(),
        class_names: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        mean,
        std,
    })
}

/// Generates `n` images of one split, in parallel over the available cores.
fn generate_split(n: usize, seed: u64, tag: u64, origin: &str) -> Result<Split, DataError> {
    const BYTES: usize = SIDE * SIDE * 3;
    let available = crate::memory::available();
    let size = n.checked_mul(BYTES).filter(|&size| size as u64 <= available.bytes).ok_or_else(|| {
        DataError::Invalid(format!(
            "{origin}: {n} images of 3x{SIDE}x{SIDE} need {} but only {} of memory is available ({})",
            crate::memory::format_bytes(n as u128 * BYTES as u128),
            crate::memory::format_bytes(available.bytes.into()),
            available.source
        ))
    })?;
    let mut pixels = vec![0u8; size];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get().min(16));
    let per_thread = n.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (chunk_index, chunk) in pixels.chunks_mut(per_thread * BYTES).enumerate() {
            scope.spawn(move || {
                for (k, image) in chunk.chunks_exact_mut(BYTES).enumerate() {
                    let i = chunk_index * per_thread + k;
                    render(seed, tag, i, i % CLASS_NAMES.len(), image);
                }
            });
        }
    });
    let labels = (0..n).map(|i| (i % CLASS_NAMES.len()) as u16).collect();
    Split::in_memory((3, SIDE, SIDE), labels, pixels, origin)
}

/// Per-channel mean and standard deviation of HWC pixels, in [0, 1] units.
pub(crate) fn channel_stats(pixels: &[u8], channels: usize) -> (Vec<f32>, Vec<f32>) {
    let mut sum = vec![0u64; channels];
    let mut sum_sq = vec![0u64; channels];
    for px in pixels.chunks_exact(channels) {
        for (c, &v) in px.iter().enumerate() {
            sum[c] += u64::from(v);
            sum_sq[c] += u64::from(v) * u64::from(v);
        }
    }
    let count = (pixels.len() / channels).max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|&s| s as f64 / count / 255.0).collect();
    let std = sum_sq
        .iter()
        .zip(&mean)
        .map(|(&sq, &m)| ((sq as f64 / count / 65025.0 - m * m).max(0.0).sqrt()) as f32)
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

/// Draws image `index` of split `tag` (class `class`) into `out` (32x32x3 HWC).
fn render(seed: u64, tag: u64, index: usize, class: usize, out: &mut [u8]) {
    let mut rng = Rng::new(seed, tag, index as u64);
    let mut canvas = Canvas::new();
    let light_shape = !rng.chance(DARK_SHAPE_SHARE);
    let (bg_range, fg_range) = if light_shape { (DARK, LIGHT) } else { (LIGHT, DARK) };
    canvas.background(&mut rng, bg_range);

    let clutter = CLUTTER.0 + rng.below(CLUTTER.1 - CLUTTER.0 + 1);
    let on_top: Vec<bool> = (0..clutter).map(|_| rng.chance(CLUTTER_ON_TOP)).collect();
    for _ in on_top.iter().filter(|&&t| !t) {
        canvas.distractor(&mut rng);
    }
    let shape = Shape::random(class, &mut rng);
    let colour = rng.colour(fg_range);
    canvas.draw(&shape, colour);
    for _ in on_top.iter().filter(|&&t| t) {
        canvas.distractor(&mut rng);
    }
    canvas.noise(&mut rng);
    canvas.write(out);
}

/// A class shape placed in the image: a signed-distance function in its own rotated frame.
struct Shape {
    kind: Kind,
    cx: f32,
    cy: f32,
    /// cos and sin of the rotation.
    cos: f32,
    sin: f32,
    /// Radius of the bounding circle (before the anti-aliasing margin).
    reach: f32,
}

/// The shape families, with their per-instance parameters (in pixels).
enum Kind {
    Disk { r: f32 },
    Ring { r: f32, half: f32 },
    Square { half: f32 },
    Triangle { half_side: f32 },
    Plus { arm: f32, half: f32 },
    Stripes { r: f32, period: f32, phase: f32 },
    Checker { half: f32, cell: f32 },
    Frame { half: f32, t: f32 },
    Ellipse { a: f32, b: f32 },
    TriangleOutline { half_side: f32, t: f32 },
}

impl Shape {
    fn random(class: usize, rng: &mut Rng) -> Shape {
        let r = rng.range(SCALE.0, SCALE.1);
        let line = rng.range((0.12 * r).max(1.0), (0.2 * r).max(1.3));
        let kind = match class {
            0 => Kind::Disk { r: 0.85 * r },
            1 => Kind::Ring { r: 0.85 * r - line, half: line },
            2 => Kind::Square { half: 0.75 * r },
            3 => Kind::Triangle { half_side: 0.95 * r },
            4 => Kind::Plus { arm: r, half: rng.range(0.2, 0.3) * r },
            5 => Kind::Stripes { r, period: (rng.range(0.5, 0.7) * r).max(3.5), phase: rng.range(0.0, 8.0) },
            6 => {
                let half = 0.8 * r;
                let cells = if rng.chance(0.5) { 3.0 } else { 4.0 };
                Kind::Checker { half, cell: (2.0 * half / cells).max(2.0) }
            }
            7 => Kind::Frame { half: 0.75 * r, t: line },
            8 => Kind::Ellipse { a: r, b: rng.range(0.3, 0.45) * r },
            _ => Kind::TriangleOutline { half_side: r, t: line },
        };
        let angle = rng.range(-ROTATION, ROTATION);
        Shape {
            kind,
            cx: rng.range(CENTRE.0, CENTRE.1),
            cy: rng.range(CENTRE.0, CENTRE.1),
            cos: cos(angle),
            sin: sin(angle),
            reach: 1.25 * r,
        }
    }

    /// Coverage in [0, 1] of the pixel whose centre is at image coordinates (x, y).
    fn coverage(&self, x: f32, y: f32) -> f32 {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let (u, v) = (self.cos * dx + self.sin * dy, -self.sin * dx + self.cos * dy);
        match self.kind {
            Kind::Disk { r } => cov(length(u, v) - r),
            Kind::Ring { r, half } => cov((length(u, v) - r).abs() - half),
            Kind::Square { half } => cov(sd_box(u, v, half, half)),
            Kind::Triangle { half_side } => cov(sd_triangle(u, v, half_side)),
            Kind::Plus { arm, half } => cov(sd_box(u, v, arm, half).min(sd_box(u, v, half, arm))),
            Kind::Stripes { r, period, phase } => {
                let w = (u + phase).rem_euclid(period);
                let bar = (w - 0.5 * period).abs() - 0.27 * period;
                cov((length(u, v) - r).max(bar))
            }
            Kind::Checker { half, cell } => {
                let odd = |t: f32| {
                    let w = (t + half).rem_euclid(2.0 * cell);
                    cov((w - 1.5 * cell).abs() - 0.5 * cell)
                };
                let (a, b) = (odd(u), odd(v));
                cov(sd_box(u, v, half, half)) * (a + b - 2.0 * a * b)
            }
            Kind::Frame { half, t } => cov(sd_box(u, v, half, half).abs() - t),
            Kind::Ellipse { a, b } => cov(sd_ellipse(u, v, a, b)),
            Kind::TriangleOutline { half_side, t } => cov(sd_triangle(u, v, half_side).abs() - t),
        }
    }
}

/// Anti-aliased coverage of a pixel at signed distance `d` (negative inside).
fn cov(d: f32) -> f32 {
    (0.5 - d).clamp(0.0, 1.0)
}

fn length(x: f32, y: f32) -> f32 {
    (x * x + y * y).sqrt()
}

/// Signed distance to an axis-aligned box of half-extents (hx, hy).
fn sd_box(x: f32, y: f32, hx: f32, hy: f32) -> f32 {
    let (dx, dy) = (x.abs() - hx, y.abs() - hy);
    length(dx.max(0.0), dy.max(0.0)) + dx.max(dy).min(0.0)
}

/// Signed distance to an equilateral triangle of half side `h` centred on its centroid
/// (Inigo Quilez's formula).
fn sd_triangle(x: f32, y: f32, h: f32) -> f32 {
    const K: f32 = 1.732_050_8;
    let (mut px, mut py) = (x.abs() - h, y + h / K);
    if px + K * py > 0.0 {
        (px, py) = ((px - K * py) / 2.0, (-K * px - py) / 2.0);
    }
    px -= px.clamp(-2.0 * h, 0.0);
    let d = length(px, py);
    if py > 0.0 {
        -d
    } else {
        d
    }
}

/// Approximate signed distance to an ellipse of semi-axes (a, b), good near the boundary.
fn sd_ellipse(x: f32, y: f32, a: f32, b: f32) -> f32 {
    let k0 = length(x / a, y / b);
    let k1 = length(x / (a * a), y / (b * b));
    if k1 == 0.0 {
        -a.min(b)
    } else {
        k0 * (k0 - 1.0) / k1
    }
}

/// sin(x) by range reduction to [-π, π] and an odd polynomial; exact IEEE ops only, so bit-identical
/// on every platform (libm's sin is not guaranteed to be). Absolute error below 1e-5, ample here.
fn sin(x: f32) -> f32 {
    use std::f32::consts::{FRAC_PI_2, PI, TAU};
    let mut t = x.rem_euclid(TAU);
    if t > PI {
        t -= TAU;
    }
    // Fold into [-π/2, π/2] using sin(π - t) = sin(t).
    if t > FRAC_PI_2 {
        t = PI - t;
    } else if t < -FRAC_PI_2 {
        t = -PI - t;
    }
    let t2 = t * t;
    t * (1.0 + t2 * (-1.0 / 6.0 + t2 * (1.0 / 120.0 + t2 * (-1.0 / 5040.0 + t2 / 362_880.0))))
}

fn cos(x: f32) -> f32 {
    sin(x + std::f32::consts::FRAC_PI_2)
}

/// A floating-point RGB canvas.
struct Canvas {
    px: [[f32; 3]; SIDE * SIDE],
}

impl Canvas {
    fn new() -> Canvas {
        Canvas { px: [[0.0; 3]; SIDE * SIDE] }
    }

    /// A two-colour linear gradient at a random angle plus a sum of two random sinusoids.
    fn background(&mut self, rng: &mut Rng, range: (f32, f32)) {
        let (c0, c1) = (rng.colour(range), rng.colour(range));
        let angle = rng.range(0.0, std::f32::consts::TAU);
        let (gx, gy) = (cos(angle) / SIDE as f32, sin(angle) / SIDE as f32);
        let waves: Vec<(f32, f32, f32)> = (0..2)
            .map(|_| {
                let a = rng.range(0.0, std::f32::consts::TAU);
                let k = std::f32::consts::TAU / rng.range(6.0, 20.0);
                (k * cos(a), k * sin(a), rng.range(0.0, std::f32::consts::TAU))
            })
            .collect();
        let amplitude = rng.range(0.3, 1.0) * TEXTURE / 2.0;
        for y in 0..SIDE {
            for x in 0..SIDE {
                let (fx, fy) = (x as f32 - 15.5, y as f32 - 15.5);
                let t = (0.5 + fx * gx + fy * gy).clamp(0.0, 1.0);
                let texture: f32 =
                    waves.iter().map(|&(kx, ky, phase)| sin(kx * fx + ky * fy + phase)).sum::<f32>() * amplitude;
                let p = &mut self.px[y * SIDE + x];
                for c in 0..3 {
                    p[c] = c0[c] + (c1[c] - c0[c]) * t + texture;
                }
            }
        }
    }

    /// A small dot or a thin line segment in a random colour anywhere in the image.
    fn distractor(&mut self, rng: &mut Rng) {
        let colour = rng.colour((0.0, 255.0));
        let (x0, y0) = (rng.range(0.0, SIDE as f32), rng.range(0.0, SIDE as f32));
        if rng.chance(0.5) {
            let r = rng.range(1.2, 2.8);
            self.blend_in_box(x0, y0, r + 1.0, colour, |x, y| cov(length(x - x0, y - y0) - r));
        } else {
            let angle = rng.range(0.0, std::f32::consts::TAU);
            let half_len = rng.range(3.0, 8.0);
            let half_width = rng.range(0.4, 0.65);
            let (c, s) = (cos(angle), sin(angle));
            self.blend_in_box(x0, y0, half_len + 1.0, colour, |x, y| {
                let (dx, dy) = (x - x0, y - y0);
                cov(sd_box(c * dx + s * dy, -s * dx + c * dy, half_len, half_width))
            });
        }
    }

    fn draw(&mut self, shape: &Shape, colour: [f32; 3]) {
        self.blend_in_box(shape.cx, shape.cy, shape.reach + 1.0, colour, |x, y| shape.coverage(x, y));
    }

    /// Blends `colour` with the given coverage into the pixels within `reach` (a square) of (cx, cy).
    fn blend_in_box(&mut self, cx: f32, cy: f32, reach: f32, colour: [f32; 3], coverage: impl Fn(f32, f32) -> f32) {
        let lo = |c: f32| (c - reach).floor().clamp(0.0, SIDE as f32) as usize;
        let hi = |c: f32| (c + reach).ceil().clamp(0.0, SIDE as f32) as usize;
        for y in lo(cy)..hi(cy) {
            for x in lo(cx)..hi(cx) {
                let a = coverage(x as f32 + 0.5, y as f32 + 0.5);
                if a > 0.0 {
                    let p = &mut self.px[y * SIDE + x];
                    for c in 0..3 {
                        p[c] += (colour[c] - p[c]) * a;
                    }
                }
            }
        }
    }

    /// Adds per-pixel noise: a triangular-distributed part shared by the channels plus a small
    /// per-channel part.
    fn noise(&mut self, rng: &mut Rng) {
        for p in self.px.iter_mut() {
            let a = rng.next_u64();
            let shared = ((a >> 32) as f32 + (a & 0xffff_ffff) as f32) / 4_294_967_295.0 - 1.0;
            let b = rng.next_u64();
            for (c, value) in p.iter_mut().enumerate() {
                let part = ((b >> (21 * c)) & 0x1f_ffff) as f32 / 2_097_151.0 * 2.0 - 1.0;
                *value += shared * NOISE + part * CHROMA_NOISE;
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        for (dst, p) in out.chunks_exact_mut(3).zip(self.px.iter()) {
            for c in 0..3 {
                // Rounded and clamped; `as` saturates, but clamp first to make the intent explicit.
                dst[c] = (p[c] + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// SplitMix64: tiny, fast and fully specified, so the data set never changes with a dependency's version.
struct Rng(u64);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// The RNG of image `index` of split `tag` for generator seed `seed`.
    fn new(seed: u64, tag: u64, index: u64) -> Rng {
        Rng(mix(mix(mix(seed) ^ tag) ^ index))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// A colour with every channel uniform in `range`.
    fn colour(&mut self, range: (f32, f32)) -> [f32; 3] {
        [self.range(range.0, range.1), self.range(range.0, range.1), self.range(range.0, range.1)]
    }
}
