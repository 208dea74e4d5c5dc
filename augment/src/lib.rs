//! Image augmentations for burnish, with the pixel semantics of PIL / torchvision (what FixMatch, SimCLR and
//! lightly users compare against). No Burn dependency: images in, images out.
//!
//! # Image type
//! [`Image`] is an 8-bit grayscale or RGB image (HWC bytes). Grayscale input is first class: colour ops reduce to
//! their luminance meaning (colour, saturation, hue and grayscale are the identity on a gray image).
//!
//! # Ops ([`ops`]): plain functions of an image and a magnitude
//! - histogram/LUT: [`ops::autocontrast`], [`ops::equalize`], [`ops::posterize`] (bits), [`ops::solarize`] (threshold)
//! - PIL `ImageEnhance` (factor 1 = identity): [`ops::color`], [`ops::saturation`], [`ops::contrast`],
//!   [`ops::brightness`], [`ops::sharpness`]
//! - affine, nearest neighbour, fill [`ops::AFFINE_FILL`] = 128: [`ops::rotate`] (degrees, counter-clockwise),
//!   [`ops::shear_x`], [`ops::shear_y`], [`ops::translate_x`], [`ops::translate_y`] (pixels),
//!   [`ops::affine_nearest`] (any PIL matrix); and [`ops::hflip`]
//! - crops: [`ops::pad_reflect`], [`ops::crop`], [`ops::reflect_pad_crop`], [`ops::resized_crop`] (PIL bilinear)
//! - colour: [`ops::grayscale`], [`ops::hue_shift`]; blur: [`ops::gaussian_blur`], [`ops::blur_kernel_size`]
//! - [`ops::cutout`] (fill [`ops::CUTOUT_FILL`] = 127), [`ops::identity`]
//!
//! # Transforms ([`Transform`]): every random draw comes from the RNG passed in
//! - [`Identity`]: no augmentation (evaluation / original view)
//! - [`Weak`]: horizontal flip p = 0.5, reflect-pad 12.5 % of the side and random crop back
//! - [`Strong`]: [`Weak`], then FixMatch RandAugment (2 of the 14 [`RandOp`]s, each with p = 0.5 at a level
//!   uniform in 1..=9 of 10), then Cutout of half the shorter side (plus PIL's end pixel) filled with 127
//! - [`SimClr`]: [`RandomResizedCrop`], flip, [`ColorJitter`] (p = 0.8), grayscale (p = 0.2), optional blur
//!
//! [`View`] names them for recipes ("none", "weak", "strong", "simclr"); the caller seeds the RNG each sample's view
//! draws from (burnish keys it by run seed, step, stream, sample and view, so batches do not depend on threads).
//!
//! ```
//! use burnish_augment::{Image, View};
//! use rand::SeedableRng;
//!
//! let img = Image::from_raw(3, 32, 32, vec![100; 32 * 32 * 3]).expect("32x32 RGB");
//! let view: View = "strong".parse().expect("a known view");
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let out = view.transform().apply(&img, &mut rng);
//! assert_eq!((out.width(), out.height(), out.channels()), (32, 32, 3));
//! ```
#![warn(missing_docs)]

mod color_jitter;
mod image_data;
pub mod ops;
mod randaugment;
mod random_resized_crop;
mod rng;
mod simclr;
mod strong;
mod transform;
mod view;
mod weak;

pub use color_jitter::ColorJitter;
pub use image_data::Image;
pub use randaugment::RandOp;
pub use random_resized_crop::RandomResizedCrop;
pub use simclr::SimClr;
pub use strong::Strong;
pub use transform::{Identity, Transform};
pub use view::{ParseViewError, View};
pub use weak::Weak;
