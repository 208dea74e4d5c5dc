//! Grayscale input is first class: every op keeps gray images gray, and on a gray image it gives exactly the
//! channel that it gives on the RGB image whose three channels equal that gray image.

mod common;

use burnish_augment::{ops, Image};

type Op = (&'static str, fn(&Image) -> Image);

fn all_ops() -> Vec<Op> {
    vec![
        ("identity", ops::identity),
        ("autocontrast", ops::autocontrast),
        ("equalize", ops::equalize),
        ("rotate", |im| ops::rotate(im, 17.0)),
        ("rotate90", |im| ops::rotate(im, 90.0)),
        ("solarize", |im| ops::solarize(im, 100)),
        ("color", |im| ops::color(im, 0.3)),
        ("saturation", |im| ops::saturation(im, 1.7)),
        ("posterize", |im| ops::posterize(im, 3)),
        ("contrast", |im| ops::contrast(im, 0.4)),
        ("brightness", |im| ops::brightness(im, 1.3)),
        ("sharpness", |im| ops::sharpness(im, 0.2)),
        ("shear_x", |im| ops::shear_x(im, -0.25)),
        ("shear_y", |im| ops::shear_y(im, 0.25)),
        ("translate_x", |im| ops::translate_x(im, 5)),
        ("translate_y", |im| ops::translate_y(im, -5)),
        ("cutout", |im| ops::cutout(im, 3.0, 20.5, 14, ops::CUTOUT_FILL)),
        ("hflip", ops::hflip),
        ("reflect_pad_crop", |im| ops::reflect_pad_crop(im, 3, 3, 1, 5)),
        ("resized_crop", |im| ops::resized_crop(im, 2, 3, 13, 17, 28, 28)),
        ("grayscale", ops::grayscale),
        ("hue_shift", |im| ops::hue_shift(im, 0.2)),
        ("gaussian_blur", |im| ops::gaussian_blur(im, 3, 0.8)),
    ]
}

#[test]
fn every_op_on_gray_equals_its_rgb_result_on_equal_channels() {
    let gray = common::noise(1, 28, 28, 5, 0, 255);
    let rgb = Image::Rgb(gray.to_rgb());
    for (name, op) in all_ops() {
        let g = op(&gray);
        let c = op(&rgb);
        assert_eq!((g.width(), g.height(), g.channels()), (28, 28, 1), "{name}");
        assert_eq!(c.channels(), 3, "{name}");
        assert_eq!(Image::Rgb(g.to_rgb()), c, "{name} differs between gray and equal-channel RGB");
    }
}

#[test]
fn colour_ops_are_the_identity_on_gray() {
    let gray = common::noise(1, 28, 28, 9, 0, 255);
    assert_eq!(ops::color(&gray, 0.0), gray);
    assert_eq!(ops::saturation(&gray, 1.8), gray);
    assert_eq!(ops::hue_shift(&gray, -0.4), gray);
    assert_eq!(ops::grayscale(&gray), gray);
}

#[test]
fn luminance_ops_change_gray_images_as_expected() {
    let gray = common::noise(1, 28, 28, 11, 60, 180);
    // Brightness 0.5 halves (truncating), autocontrast stretches to the full range, solarize 0 inverts.
    let half = ops::brightness(&gray, 0.5);
    for (&a, &b) in gray.as_raw().iter().zip(half.as_raw()) {
        assert_eq!(b, a / 2);
    }
    let stretched = ops::autocontrast(&gray);
    assert_eq!(stretched.as_raw().iter().min(), Some(&0));
    assert_eq!(stretched.as_raw().iter().max(), Some(&255));
    let inverted = ops::solarize(&gray, 0);
    for (&a, &b) in gray.as_raw().iter().zip(inverted.as_raw()) {
        assert_eq!(b, 255 - a);
    }
}
