//! The strong view's ops against fixtures computed with Pillow from the FixMatch reference's formulas
//! (`tests/fixtures/gen_strong_fixtures.py`): every RandAugment op at every level the reference draws (1..=9 of 10),
//! both signs, on RGB and gray ramps, and Cutout's painted box for given centre draws. Byte for byte.

use std::path::PathBuf;

use burnish_augment::{ops, Image, RandOp};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn read_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A fixture PNG as an [`Image`] of its own kind (8-bit gray or RGB).
fn read_png(name: &str) -> Image {
    let img = image::open(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (w, h) = (img.width(), img.height());
    match img {
        image::DynamicImage::ImageLuma8(g) => Image::from_raw(1, w, h, g.into_raw()),
        image::DynamicImage::ImageRgb8(c) => Image::from_raw(3, w, h, c.into_raw()),
        other => panic!("{name}: unexpected PNG kind {:?}", other.color()),
    }
    .expect("PNG sizes are consistent")
}

/// Tile `i` of a sheet of `tile_h`-row tiles stacked downwards.
fn tile(sheet: &Image, i: usize, tile_h: u32) -> Image {
    let row = (sheet.width() as usize) * sheet.channels();
    let start = i * tile_h as usize * row;
    let bytes = sheet.as_raw()[start..start + tile_h as usize * row].to_vec();
    Image::from_raw(sheet.channels(), sheet.width(), tile_h, bytes).expect("tile shape")
}

/// The fixture's cases: op, level, negated.
fn pool_cases() -> Vec<(RandOp, u32, bool)> {
    read_text("pool_cases.txt")
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let op = RandOp::ALL.into_iter().find(|op| op.name() == f[0]).unwrap_or_else(|| panic!("op in {line}"));
            (op, f[1].parse().expect("level"), f[2] == "-")
        })
        .collect()
}

#[test]
fn every_op_at_every_drawn_level_matches_the_reference_formulas() {
    let cases = pool_cases();
    // 3 level-free ops, 6 unsigned ops x 9 levels, 5 signed ops x 9 levels x 2 signs.
    assert_eq!(cases.len(), 3 + 6 * 9 + 5 * 9 * 2);
    for kind in ["rgb32", "gray28"] {
        let input = read_png(&format!("ramp_{kind}.png"));
        let sheet = read_png(&format!("pool_{kind}.png"));
        assert_eq!(sheet.height(), input.height() * cases.len() as u32, "{kind}");
        let mut wrong = Vec::new();
        for (i, &(op, level, negate)) in cases.iter().enumerate() {
            let expect = tile(&sheet, i, input.height());
            let got = op.apply(&input, level, 10, negate);
            if got != expect {
                let diff = got.as_raw().iter().zip(expect.as_raw()).filter(|(a, b)| a != b).count();
                wrong.push(format!(
                    "{} level {level}{} ({diff} bytes)",
                    op.name(),
                    if negate { " negated" } else { "" }
                ));
            }
        }
        assert!(wrong.is_empty(), "{kind}: {} cases differ from Pillow: {wrong:#?}", wrong.len());
    }
}

#[test]
fn solarize_and_posterize_fixtures_cover_every_byte_value() {
    // Solarize and Posterize are lookup tables, so the ramps checking them must hold all 256 values.
    for kind in ["rgb32", "gray28"] {
        let input = read_png(&format!("ramp_{kind}.png"));
        let c = input.channels();
        let mut seen = [false; 256];
        input.as_raw().iter().step_by(c).for_each(|&v| seen[v as usize] = true);
        assert!(seen.iter().all(|&s| s), "{kind}");
    }
}

#[test]
fn cutout_paints_the_box_that_pil_paints() {
    let lines = read_text("cutout.txt");
    let mut count = 0;
    for line in lines.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f[i].parse::<u32>().unwrap_or_else(|_| panic!("field {i} of {line}"));
        let (w, h, size) = (num(0), num(1), num(2));
        let (x, y): (f64, f64) = (f[3].parse().expect("x"), f[4].parse().expect("y"));
        let bbox = (f[5] != "-").then(|| (num(5), num(6), num(7), num(8)));
        for channels in [1, 3] {
            // A ramp below 127, so that the box is exactly the pixels that change.
            let data: Vec<u8> = (0..(w * h) as usize * channels).map(|i| (i % 120) as u8).collect();
            let img = Image::from_raw(channels, w, h, data).expect("test image shape");
            let mut expect = img.clone();
            if let Some((x0, y0, x1, y1)) = bbox {
                let row = w as usize * channels;
                for yy in y0 as usize..=y1 as usize {
                    expect.as_raw_mut()[yy * row + x0 as usize * channels..yy * row + (x1 as usize + 1) * channels]
                        .fill(ops::CUTOUT_FILL);
                }
            }
            assert_eq!(ops::cutout(&img, x, y, size, ops::CUTOUT_FILL), expect, "{line} ({channels} channels)");
        }
        count += 1;
    }
    assert!(count > 100, "only {count} cutout cases");
}
