//! The composed views: determinism under a seed, shapes, and what each composition is made of.

mod common;

use burnish_augment::{ops, ColorJitter, Image, RandOp, RandomResizedCrop, SimClr, Strong, Transform, View, Weak};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn samples() -> Vec<Image> {
    vec![common::noise(3, 32, 32, 1, 0, 255), common::noise(1, 28, 28, 2, 0, 255)]
}

/// Eight consecutive views of `img` from one RNG seeded with `seed`.
fn run(t: &dyn Transform, img: &Image, seed: u64) -> Vec<Image> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..8).map(|_| t.apply(img, &mut rng)).collect()
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let transforms: Vec<(&str, Box<dyn Transform>)> = vec![
        ("weak", Box::new(Weak::default())),
        ("strong", Box::new(Strong::default())),
        ("simclr", Box::new(SimClr::default())),
        ("simclr+blur", Box::new(SimClr { blur: true, ..SimClr::default() })),
    ];
    for img in samples() {
        for (name, t) in &transforms {
            let a = run(t.as_ref(), &img, 7);
            assert_eq!(a, run(t.as_ref(), &img, 7), "{name} is not deterministic");
            assert_ne!(a, run(t.as_ref(), &img, 8), "{name} ignores its seed");
            for out in &a {
                let shape = (out.width(), out.height(), out.channels());
                assert_eq!(shape, (img.width(), img.height(), img.channels()), "{name}");
            }
        }
    }
}

#[test]
fn views_parse_build_and_keep_shapes() {
    for img in samples() {
        for view in View::ALL {
            let t = view.name().parse::<View>().expect("own name parses").transform();
            let out = t.apply(&img, &mut ChaCha8Rng::seed_from_u64(123));
            assert_eq!((out.width(), out.height(), out.channels()), (img.width(), img.height(), img.channels()));
        }
        assert_eq!(View::Original.transform().apply(&img, &mut ChaCha8Rng::seed_from_u64(0)), img);
    }
}

#[test]
fn views_never_panic_on_tiny_or_empty_images() {
    let tiny = [
        Image::filled(3, 0, 0, 0).expect("empty rgb"),
        Image::filled(1, 1, 1, 9).expect("1x1 gray"),
        Image::filled(3, 2, 5, 9).expect("2x5 rgb"),
        Image::filled(1, 7, 1, 9).expect("7x1 gray"),
    ];
    for img in &tiny {
        for view in View::ALL {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            for _ in 0..20 {
                let out = view.transform().apply(img, &mut rng);
                assert_eq!((out.width(), out.height()), (img.width(), img.height()), "{view}");
            }
        }
    }
}

#[test]
fn weak_is_a_flip_then_a_reflect_shift_of_at_most_four_pixels() {
    let img = common::noise(3, 32, 32, 3, 0, 255);
    let flipped = ops::hflip(&img);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (mut flips, mut shifts) = (0, std::collections::HashSet::new());
    for _ in 0..64 {
        let out = Weak::default().apply(&img, &mut rng);
        let found = (0..=8u32).flat_map(|l| (0..=8u32).map(move |t| (l, t))).find_map(|(l, t)| {
            if ops::reflect_pad_crop(&img, 4, 4, l, t) == out {
                Some((false, l, t))
            } else if ops::reflect_pad_crop(&flipped, 4, 4, l, t) == out {
                Some((true, l, t))
            } else {
                None
            }
        });
        let (flip, l, t) = found.expect("every weak view is a flip + reflect shift");
        flips += flip as u32;
        shifts.insert((l, t));
    }
    assert!((16..=48).contains(&flips), "{flips} flips in 64");
    assert!(shifts.len() > 20, "only {} distinct shifts", shifts.len());
}

#[test]
fn strong_ends_with_one_gray_cutout_square_of_half_the_side_plus_its_end_pixel() {
    // As the reference's CutoutAbs(img, 16) at 32 px: PIL's rectangle includes its end point, so the square is
    // 17 px a side; a centre near the left or top moves it to the border, one near the right or bottom clips it.
    // At 28 px the size is 14, so 15 px. Values below 100 so the 127 square is the only 127 in the image.
    let no_ops = Strong { num_ops: 0, ..Strong::default() };
    for (channels, side) in [(3, 32usize), (1, 28)] {
        let img = common::noise(channels, side as u32, side as u32, 4, 0, 100);
        let full = side / 2 + 1;
        let mut unclipped = 0;
        for seed in 0..40 {
            let weak = Weak::default().apply(&img, &mut ChaCha8Rng::seed_from_u64(seed));
            let strong = no_ops.apply(&img, &mut ChaCha8Rng::seed_from_u64(seed));
            let px = |im: &Image, i: usize| im.as_raw()[i * channels..(i + 1) * channels].to_vec();
            let changed: Vec<(usize, usize)> =
                (0..side * side).filter(|&i| px(&strong, i) != px(&weak, i)).map(|i| (i % side, i / side)).collect();
            let (x0, x1) = (changed.iter().map(|p| p.0).min(), changed.iter().map(|p| p.0).max());
            let (y0, y1) = (changed.iter().map(|p| p.1).min(), changed.iter().map(|p| p.1).max());
            let (x0, x1, y0, y1) = (x0.expect("cutout"), x1.expect("cutout"), y0.expect("cutout"), y1.expect("cutout"));
            let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
            assert_eq!(changed.len(), w * h, "the changed pixels form a full rectangle");
            assert!(w == full || (x1 == side - 1 && w < full), "{w}x{h} at ({x0}, {y0}), {side} px");
            assert!(h == full || (y1 == side - 1 && h < full), "{w}x{h} at ({x0}, {y0}), {side} px");
            assert!(w > side / 4 && h > side / 4, "{w}x{h}: the centre is inside the image");
            unclipped += (w == full && h == full) as u32;
            for &(x, y) in &changed {
                assert!(px(&strong, y * side + x).iter().all(|&v| v == 127));
            }
        }
        // Unclipped on an axis when the corner is at most side / 2 - 1, i.e. for centres below 3/4 of the side:
        // (3/4)^2 of the squares, 22.5 of 40 expected.
        assert!((12..=33).contains(&unclipped), "{unclipped} of 40 squares were {full}x{full} at {side} px");
    }
}

#[test]
fn strong_applies_about_one_op_per_image_on_average() {
    // Two draws at p = 0.5; ops with a visible effect on noise change the weak+cutout result in most images.
    let img = common::noise(3, 32, 32, 5, 0, 255);
    // With p = 0 the same draws are made (same weak shift and Cutout), only no op is applied.
    let plain = Strong { op_probability: 0.0, ..Strong::default() };
    let mut changed = 0;
    for seed in 0..100 {
        let a = Strong::default().apply(&img, &mut ChaCha8Rng::seed_from_u64(seed));
        let b = plain.apply(&img, &mut ChaCha8Rng::seed_from_u64(seed));
        changed += (a != b) as u32;
    }
    // P(at least one of two ops applied) = 0.75; Identity and no-op levels (translate by 0.3 level / 10 of 32 px =
    // 0 px at level 1) lower it to about 0.7.
    assert!((55..=90).contains(&changed), "{changed} of 100 strong views had an op");
}

#[test]
fn strong_draws_levels_and_signs_for_its_ops() {
    // A pool of TranslateX only, always applied, no flip/shift/Cutout: every view is a shift by
    // trunc(0.3 * level / 10 * 32) columns in either direction, and every (level, sign) outcome shows up.
    let img = common::noise(1, 32, 32, 8, 0, 255);
    let only_translate = Strong {
        weak: Weak { flip_probability: 0.0, pad_fraction: 0.0 },
        ops: vec![RandOp::TranslateX],
        num_ops: 1,
        op_probability: 1.0,
        cutout_fraction: 0.0,
        ..Strong::default()
    };
    let candidates: Vec<(i32, Image)> = (-9..=9).map(|px| (px, ops::translate_x(&img, px))).collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..400 {
        let out = only_translate.apply(&img, &mut rng);
        let (px, _) = candidates.iter().find(|(_, c)| *c == out).expect("a translation of 0..=9 columns");
        seen.insert(*px);
    }
    // Levels 1..=9 give trunc(0.96 level) = 0, 1, ..., 8 columns, each with both signs (level 10's 9 never).
    let expect: std::collections::BTreeSet<i32> = (-8..=8).collect();
    assert_eq!(seen, expect);
    // An empty pool applies nothing.
    let none = Strong { ops: Vec::new(), ..only_translate };
    assert_eq!(none.apply(&img, &mut rng), img);
}

#[test]
fn strong_levels_are_exactly_1_to_9_of_10() {
    // The reference draws numpy's randint(1, 10). A pool of Rotate only, always applied: the view is a rotation by
    // 3 level degrees either way, which tells every level 1..=10 apart.
    let img = common::noise(3, 32, 32, 12, 0, 255);
    let only_rotate = Strong {
        weak: Weak { flip_probability: 0.0, pad_fraction: 0.0 },
        ops: vec![RandOp::Rotate],
        num_ops: 1,
        op_probability: 1.0,
        cutout_fraction: 0.0,
        ..Strong::default()
    };
    let candidates: Vec<(i32, Image)> =
        (1..=10).flat_map(|l| [l, -l]).map(|l| (l, ops::rotate(&img, 3.0 * l as f64))).collect();
    let mut counts = std::collections::BTreeMap::new();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for _ in 0..900 {
        let out = only_rotate.apply(&img, &mut rng);
        let (signed_level, _) = candidates.iter().find(|(_, c)| *c == out).expect("a rotation by 3 level degrees");
        *counts.entry(signed_level.abs()).or_insert(0u32) += 1;
    }
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), (1..=9).collect::<Vec<_>>(), "{counts:?}");
    // Uniform: 100 expected per level.
    assert!(counts.values().all(|&n| (60..=140).contains(&n)), "{counts:?}");
}

#[test]
fn simclr_composes_crop_flip_jitter_grayscale() {
    let img = common::noise(3, 32, 32, 6, 0, 255);
    let whole = RandomResizedCrop { scale: (1.0, 1.0), ratio: (1.0, 1.0) };
    let gray_only = SimClr {
        crop: whole.clone(),
        flip_probability: 0.0,
        jitter_probability: 0.0,
        grayscale_probability: 1.0,
        ..SimClr::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    assert_eq!(gray_only.apply(&img, &mut rng), ops::grayscale(&img));
    let flip_only = SimClr { flip_probability: 1.0, grayscale_probability: 0.0, ..gray_only.clone() };
    assert_eq!(flip_only.apply(&img, &mut rng), ops::hflip(&img));
    let zero_jitter =
        SimClr { strength: 0.0, jitter_probability: 1.0, grayscale_probability: 0.0, ..gray_only.clone() };
    assert_eq!(zero_jitter.apply(&img, &mut rng), img);
    // Default SimCLR: about 20 % of views are gray (R = G = B everywhere), and most views are colour-jittered.
    let mut grays = 0;
    for _ in 0..200 {
        let out = SimClr::default().apply(&img, &mut rng);
        grays += out.as_raw().chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]) as u32;
    }
    assert!((20..=65).contains(&grays), "{grays} gray views in 200");
}

#[test]
fn color_jitter_factors_stay_in_their_ranges() {
    // Brightness only, amount 0.5: factors in [0.5, 1.5], so a 100 pixel lands in 50..=150.
    let img = Image::filled(1, 4, 4, 100).expect("flat gray");
    let jitter = ColorJitter { brightness: 0.5, contrast: 0.0, saturation: 0.0, hue: 0.0 };
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let values: Vec<u8> = (0..200).map(|_| jitter.apply(&img, &mut rng).as_raw()[0]).collect();
    assert!(values.iter().all(|v| (50..=150).contains(v)));
    assert!(values.iter().any(|&v| v < 70) && values.iter().any(|&v| v > 130));
}
