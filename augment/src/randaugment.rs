//! The 14 RandAugment ops of FixMatch and how a level (out of 10) maps to each op's magnitude.

use crate::ops;
use crate::Image;

/// One RandAugment op of FixMatch's pool (docs/augmentations.md), applied at a discrete level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RandOp {
    /// Leaves the image unchanged.
    Identity,
    /// Per-channel min/max stretch.
    AutoContrast,
    /// Per-channel histogram equalization.
    Equalize,
    /// Rotation by ⌊30·level/10⌋ whole degrees, either way.
    Rotate,
    /// Inversion of bytes at or above 256 − ⌊256·level/10⌋: the higher the level, the more bytes are inverted.
    Solarize,
    /// Saturation factor 0.05 + 0.9·level/10.
    Color,
    /// Keeps 4 + ⌊4·level/10⌋ bits.
    Posterize,
    /// Contrast factor 0.05 + 0.9·level/10.
    Contrast,
    /// Brightness factor 0.05 + 0.9·level/10.
    Brightness,
    /// Sharpness factor 0.05 + 0.9·level/10.
    Sharpness,
    /// Horizontal shear by 0.3·level/10, either way.
    ShearX,
    /// Vertical shear by 0.3·level/10, either way.
    ShearY,
    /// Horizontal shift by 0.3·level/10 of the width (truncated to whole pixels), either way; leftwards unless
    /// negated, as the reference's translation matrix moves the content.
    TranslateX,
    /// Vertical shift by 0.3·level/10 of the height (truncated to whole pixels), either way; upwards unless negated.
    TranslateY,
}

impl RandOp {
    /// The pool, in the order docs/augmentations.md lists; RandAugment draws from it uniformly with replacement.
    pub const ALL: [RandOp; 14] = [
        RandOp::Identity,
        RandOp::AutoContrast,
        RandOp::Equalize,
        RandOp::Rotate,
        RandOp::Solarize,
        RandOp::Color,
        RandOp::Posterize,
        RandOp::Contrast,
        RandOp::Brightness,
        RandOp::Sharpness,
        RandOp::ShearX,
        RandOp::ShearY,
        RandOp::TranslateX,
        RandOp::TranslateY,
    ];

    /// The op's name as FixMatch's code spells it.
    pub fn name(self) -> &'static str {
        match self {
            RandOp::Identity => "Identity",
            RandOp::AutoContrast => "AutoContrast",
            RandOp::Equalize => "Equalize",
            RandOp::Rotate => "Rotate",
            RandOp::Solarize => "Solarize",
            RandOp::Color => "Color",
            RandOp::Posterize => "Posterize",
            RandOp::Contrast => "Contrast",
            RandOp::Brightness => "Brightness",
            RandOp::Sharpness => "Sharpness",
            RandOp::ShearX => "ShearX",
            RandOp::ShearY => "ShearY",
            RandOp::TranslateX => "TranslateX",
            RandOp::TranslateY => "TranslateY",
        }
    }

    /// True for the ops whose magnitude gets a random sign (rotate, shears, translations).
    pub fn is_signed(self) -> bool {
        matches!(self, RandOp::Rotate | RandOp::ShearX | RandOp::ShearY | RandOp::TranslateX | RandOp::TranslateY)
    }

    /// Applies the op at `level` of `max_level` (levels above the maximum count as the maximum), negated when
    /// `negate` is set and the op is signed. Magnitudes follow FixMatch's `fixmatch_augment_pool`, with
    /// `max_level` in the role of its `PARAMETER_MAX` (10).
    pub fn apply(self, img: &Image, level: u32, max_level: u32, negate: bool) -> Image {
        let max_level = max_level.max(1);
        let level = level.min(max_level);
        let sign = if negate && self.is_signed() { -1.0 } else { 1.0 };
        // The reference's `_float_parameter` (`float(v) * max_v / 10`), in its order of operations: 0.3 * (7 / 10)
        // and 7 * 0.3 / 10 are different doubles, and a pixel centre that lands on a sampling boundary would tell.
        let float_param = |max_v: f64| level as f64 * max_v / max_level as f64;
        // The reference's `_int_parameter` (`int(v * max_v / 10)`); integer division truncates the same way.
        let int_param = |max_v: u64| (level as u64 * max_v / max_level as u64) as u32;
        // PIL's `ImageEnhance` takes the factor as a double and blends with it as a C float.
        let enhance = (float_param(0.9) + 0.05) as f32;
        // PIL's matrix `(1, 0, v, 0, 1, 0)` samples `v` pixels to the right, so the content moves by `-v`.
        let shift = |side: u32| -((sign * float_param(0.3) * side as f64) as i32);
        match self {
            RandOp::Identity => ops::identity(img),
            RandOp::AutoContrast => ops::autocontrast(img),
            RandOp::Equalize => ops::equalize(img),
            RandOp::Rotate => ops::rotate(img, sign * int_param(30) as f64),
            RandOp::Solarize => ops::solarize(img, 256 - int_param(256)),
            RandOp::Color => ops::color(img, enhance),
            RandOp::Posterize => ops::posterize(img, (4 + int_param(4)) as u8),
            RandOp::Contrast => ops::contrast(img, enhance),
            RandOp::Brightness => ops::brightness(img, enhance),
            RandOp::Sharpness => ops::sharpness(img, enhance),
            RandOp::ShearX => ops::shear_x(img, sign * float_param(0.3)),
            RandOp::ShearY => ops::shear_y(img, sign * float_param(0.3)),
            RandOp::TranslateX => ops::translate_x(img, shift(img.width())),
            RandOp::TranslateY => ops::translate_y(img, shift(img.height())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Image {
        Image::from_raw(3, 32, 32, (0..3072u32).map(|i| (i * 7 % 256) as u8).collect()).expect("test image shape")
    }

    #[test]
    fn levels_map_to_fixmatch_magnitudes() {
        let img = ramp();
        assert_eq!(RandOp::Rotate.apply(&img, 10, 10, false), ops::rotate(&img, 30.0));
        assert_eq!(RandOp::Rotate.apply(&img, 5, 10, true), ops::rotate(&img, -15.0));
        assert_eq!(RandOp::Rotate.apply(&img, 9, 10, false), ops::rotate(&img, 27.0));
        assert_eq!(RandOp::ShearX.apply(&img, 10, 10, true), ops::shear_x(&img, -0.3));
        assert_eq!(RandOp::ShearY.apply(&img, 7, 10, false), ops::shear_y(&img, 7.0 * 0.3 / 10.0));
        // 0.3 * 32 = 9.6 -> 9 px; level 5: 4.8 -> 4 px; the content moves left (up) unless negated.
        assert_eq!(RandOp::TranslateX.apply(&img, 10, 10, false), ops::translate_x(&img, -9));
        assert_eq!(RandOp::TranslateY.apply(&img, 5, 10, true), ops::translate_y(&img, 4));
        // Posterize keeps 4 + int(4 level / 10) bits: 4 at levels 1-2, 7 at level 9, all 8 only at level 10.
        assert_eq!(RandOp::Posterize.apply(&img, 1, 10, false), ops::posterize(&img, 4));
        assert_eq!(RandOp::Posterize.apply(&img, 9, 10, false), ops::posterize(&img, 7));
        assert_eq!(RandOp::Posterize.apply(&img, 10, 10, false), img);
        // Solarize inverts from 256 - int(256 level / 10) up: 231 at level 1, 26 at level 9, everything at 10.
        assert_eq!(RandOp::Solarize.apply(&img, 1, 10, false), ops::solarize(&img, 231));
        assert_eq!(RandOp::Solarize.apply(&img, 5, 10, false), ops::solarize(&img, 128));
        assert_eq!(RandOp::Solarize.apply(&img, 9, 10, false), ops::solarize(&img, 26));
        assert_eq!(RandOp::Solarize.apply(&img, 10, 10, false), ops::solarize(&img, 0));
        assert_eq!(RandOp::Brightness.apply(&img, 10, 10, false), ops::brightness(&img, 0.95));
        assert_eq!(RandOp::Contrast.apply(&img, 5, 10, false), ops::contrast(&img, 0.5));
        // Unsigned ops ignore the sign.
        assert_eq!(RandOp::Color.apply(&img, 3, 10, true), RandOp::Color.apply(&img, 3, 10, false));
    }

    #[test]
    fn solarize_gets_stronger_with_the_level() {
        let img = ramp();
        let inverted = |out: &Image| img.as_raw().iter().zip(out.as_raw()).filter(|(a, b)| a != b).count();
        let counts: Vec<usize> = (1..=9).map(|l| inverted(&RandOp::Solarize.apply(&img, l, 10, false))).collect();
        assert!(counts.windows(2).all(|p| p[0] < p[1]), "{counts:?}");
    }

    #[test]
    fn every_op_keeps_shape_and_kind() {
        let img = ramp();
        let gray = Image::Gray(img.to_gray());
        for op in RandOp::ALL {
            for im in [&img, &gray] {
                let out = op.apply(im, 7, 10, true);
                assert_eq!((out.width(), out.height(), out.channels()), (32, 32, im.channels()), "{}", op.name());
            }
        }
    }
}
