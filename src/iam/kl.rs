//! The divergence IAM measures: `KL(p ‖ q)` averaged over the batch (docs/iam.md).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Smallest probability taken into a log, so that `p · log p` stays finite where the model is certain.
pub const P_FLOOR: f64 = 1e-6;

/// `mean_rows Σ_c p_c (log max(p_c, 1e-6) − log q_c)`, given `p` as probabilities and `q` as log-probabilities.
pub fn kl_batchmean<B: Backend>(p: Tensor<B, 2>, log_q: Tensor<B, 2>) -> Tensor<B, 1> {
    let [rows, _] = p.dims();
    let log_p = p.clone().clamp_min(P_FLOOR).log();
    (p * (log_p - log_q)).sum().div_scalar(rows as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn known_value_and_zero_on_equal_distributions() {
        let dev = Default::default();
        let p = Tensor::<Flex, 2>::from_data(TensorData::from([[0.5f32, 0.5], [0.9, 0.1]]), &dev);
        let q = Tensor::<Flex, 2>::from_data(TensorData::from([[0.25f32, 0.75], [0.9, 0.1]]), &dev);
        let kl: f32 = kl_batchmean(p.clone(), q.log()).into_scalar();
        // Row 1: 0.5 ln 2 + 0.5 ln(2/3); row 2: 0; batchmean over 2 rows.
        let expect = (0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln()) / 2.0;
        assert!((kl as f64 - expect).abs() < 1e-6, "{kl} vs {expect}");
        let same: f32 = kl_batchmean(p.clone(), p.log()).into_scalar();
        assert!(same.abs() < 1e-7);
    }

    #[test]
    fn zero_probabilities_are_clamped_not_nan() {
        let dev = Default::default();
        let p = Tensor::<Flex, 2>::from_data(TensorData::from([[1.0f32, 0.0]]), &dev);
        let q = Tensor::<Flex, 2>::from_data(TensorData::from([[0.5f32, 0.5]]), &dev);
        let kl: f32 = kl_batchmean(p, q.log()).into_scalar();
        assert!((kl as f64 - 2f64.ln()).abs() < 1e-6, "{kl}");
    }
}
