//! Exact values of the losses on hand-built inputs: FixMatch's mask, pseudo-labels and loss, and NT-Xent.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use burnish::stage::{ntxent_logits, ntxent_loss, FixMatch, FixMatchTerms, Normalization, PseudoLabels};

type B = Flex;

fn matrix(rows: &[&[f32]]) -> Tensor<B, 2> {
    let cols = rows[0].len();
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), cols]), &Default::default())
}

fn floats<const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec::<f64>().expect("f64 data")
}

fn ints(t: Tensor<B, 1, burn::tensor::Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().to_vec::<i64>().expect("i64 data")
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

/// Four unlabeled samples, three classes. Weak logits are logs of chosen probabilities, so the confidences are
/// known: 0.96 (class 0), 1/3 (a tie, argmax 0), 0.90 (class 1), 0.97 (class 2).
fn batch() -> (Tensor<B, 2>, Tensor<B, 2>) {
    let ln = |p: f32| p.ln();
    let weak = matrix(&[
        &[ln(0.96), ln(0.02), ln(0.02)],
        &[0.0, 0.0, 0.0],
        &[ln(0.05), ln(0.90), ln(0.05)],
        &[ln(0.01), ln(0.02), ln(0.97)],
    ]);
    // Strong-view probabilities: row 0 gives its pseudo-label 0.5, row 3 gives 0.25; rows 1 and 2 must not count.
    let strong = matrix(&[
        &[ln(0.5), ln(0.25), ln(0.25)],
        &[ln(0.1), ln(0.1), ln(0.8)],
        &[ln(0.9), ln(0.05), ln(0.05)],
        &[ln(0.5), ln(0.25), ln(0.25)],
    ]);
    (weak, strong)
}

#[test]
fn fixmatch_mask_pseudo_labels_and_loss_are_exact() {
    let (weak, strong) = batch();
    let all = FixMatch { threshold: 0.95, labels: PseudoLabels::Hard, normalize: Normalization::All };
    let FixMatchTerms { loss, mask, pseudo } = all.terms(weak.clone(), strong.clone());
    assert_eq!(floats(mask), vec![1.0, 0.0, 0.0, 1.0]);
    assert_eq!(ints(pseudo), vec![0, 0, 1, 2]);
    // Σ mask · CE / μB = (−ln 0.5 − ln 0.25) / 4.
    let expected = (-(0.5f64.ln()) - 0.25f64.ln()) / 4.0;
    let got = floats(loss)[0];
    assert!(close(got, expected, 1e-5), "normalize = all: {got} vs {expected}");

    let confident = FixMatch { normalize: Normalization::Confident, ..all.clone() };
    let got = floats(confident.terms(weak.clone(), strong.clone()).loss)[0];
    assert!(close(got, expected * 2.0, 1e-5), "normalize = confident divides by the 2 confident samples: {got}");

    // A lower threshold lets row 2 (confidence 0.90) in: its strong view gives class 1 probability 0.05.
    let lower = FixMatch { threshold: 0.9 - 1e-4, ..all.clone() };
    let t = lower.terms(weak.clone(), strong.clone());
    assert_eq!(floats(t.mask), vec![1.0, 0.0, 1.0, 1.0]);
    let got = floats(t.loss)[0];
    let expected3 = (-(0.5f64.ln()) - 0.25f64.ln() - 0.05f64.ln()) / 4.0;
    assert!(close(got, expected3, 1e-5), "threshold 0.9: {got} vs {expected3}");

    // The mask is taken at temperature 1 whatever the temperature: T = 2 would flatten row 0 to
    // 0.96^½ / (0.96^½ + 2·0.02^½) ≈ 0.776 < 0.95, yet the mask keeps it.
    let soft = FixMatch { labels: PseudoLabels::Soft { temperature: 2.0 }, ..all };
    let t = soft.terms(weak.clone(), strong.clone());
    assert_eq!(floats(t.mask), vec![1.0, 0.0, 0.0, 1.0]);
    // Soft targets are softmax(f(u_w) / 2): rows 0 and 3 of the weak view sharpened by T = 2, i.e. sqrt-probabilities.
    let sharpened = |p: [f64; 3]| {
        let r: Vec<f64> = p.iter().map(|v| v.sqrt()).collect();
        let z: f64 = r.iter().sum();
        r.into_iter().map(|v| v / z).collect::<Vec<f64>>()
    };
    let soft_ce =
        |q: Vec<f64>, strong: [f64; 3]| -> f64 { -q.iter().zip(strong).map(|(q, s)| q * s.ln()).sum::<f64>() };
    let expected = (soft_ce(sharpened([0.96, 0.02, 0.02]), [0.5, 0.25, 0.25])
        + soft_ce(sharpened([0.01, 0.02, 0.97]), [0.5, 0.25, 0.25]))
        / 4.0;
    let got = floats(t.loss)[0];
    assert!(close(got, expected, 1e-5), "soft targets at T = 2: {got} vs {expected}");
}

#[test]
fn fixmatch_gradient_flows_through_the_strong_view_only() {
    use burn::backend::Autodiff;
    type AD = Autodiff<Flex>;
    let (weak, strong) = batch();
    let weak = Tensor::<AD, 2>::from_inner(weak).require_grad();
    let strong = Tensor::<AD, 2>::from_inner(strong).require_grad();
    let t = FixMatch::default().terms(weak.clone(), strong.clone());
    let grads = t.loss.backward();
    assert!(weak.grad(&grads).is_none(), "pseudo-labels are a stop-gradient target");
    let g = strong.grad(&grads).expect("strong view gets gradient");
    let g: Vec<f64> = g.into_data().convert::<f64>().to_vec().expect("f64");
    // d/dz CE(z, y) = softmax(z) − onehot(y), divided by μB = 4; masked rows have zero gradient.
    let expected = [
        (0.5 - 1.0) / 4.0,
        0.25 / 4.0,
        0.25 / 4.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.5 / 4.0,
        0.25 / 4.0,
        (0.25 - 1.0) / 4.0,
    ];
    for (i, (a, b)) in g.iter().zip(expected).enumerate() {
        assert!(close(*a, b, 1e-5), "grad[{i}] = {a}, expected {b}");
    }
}

#[test]
fn ntxent_matches_a_hand_computed_two_pair_example() {
    // Two pairs; the inputs are not unit length, so the loss must normalise them first.
    // Normalised: a0 = (1, 0), a1 = (0, 1), b0 = (1, 1)/√2, b1 = (0, −1); τ = 0.5 doubles every cosine.
    let z1 = matrix(&[&[3.0, 0.0], &[0.0, 2.0]]);
    let z2 = matrix(&[&[1.0, 1.0], &[0.0, -5.0]]);
    let r2 = std::f64::consts::SQRT_2;
    let e = f64::exp;
    // Row by row: log Σ_{j≠i} exp(s_ij) − s_i,positive.
    let rows = [
        (2.0 + e(r2)).ln() - r2,             // a0: others a1, b0, b1 = 0, √2, 0; positive b0
        (1.0 + e(r2) + e(-2.0)).ln() + 2.0,  // a1: others a0, b0, b1 = 0, √2, −2; positive b1
        (2.0 * e(r2) + e(-r2)).ln() - r2,    // b0: others a0, a1, b1 = √2, √2, −√2; positive a0
        (1.0 + e(-2.0) + e(-r2)).ln() + 2.0, // b1: others a0, a1, b0 = 0, −2, −√2; positive a1
    ];
    let expected = rows.iter().sum::<f64>() / 4.0;
    let got = floats(ntxent_loss(z1.clone(), z2.clone(), 0.5))[0];
    assert!(close(got, expected, 1e-5), "NT-Xent {got} vs hand-computed {expected}");

    // The logits leave out the self-similarity: 4 rows of 3, and each row's target is its partner's column.
    let (logits, targets) = ntxent_logits(z1, z2, 0.5);
    assert_eq!(logits.dims(), [4, 3]);
    assert_eq!(ints(targets), vec![1, 2, 0, 1]);
    let l = floats(logits);
    let want = [0.0, r2, 0.0, 0.0, r2, -2.0, r2, r2, -r2, 0.0, -2.0, -r2];
    for (i, (a, b)) in l.iter().zip(want).enumerate() {
        assert!(close(*a, b, 1e-5), "logit {i}: {a} vs {b}");
    }
}
