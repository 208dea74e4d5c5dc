//! The perturbations ε of SAM and ASAM, as plain functions of the gradient (docs/rules.md).

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;

use crate::backend::TrainBackend;
use crate::params::{global_norm, map_vector, scale_to_radius};

/// SAM: `ε = ρ g / ‖g‖` (global norm).
pub fn sam_perturbation<B: TrainBackend, M: AutodiffModule<B>>(
    model: &M,
    g: &GradientsParams,
    rho: f64,
) -> GradientsParams {
    scale_to_radius(model, g, rho)
}

/// ASAM: `ε = ρ T² g / ‖T g‖` with `T = |w| + η` on every weight (convolution and linear weights and BatchNorm γ)
/// and `T = 1` on biases and BatchNorm β, so that `‖T⁻¹ ε‖ = ρ`.
pub fn asam_perturbation<B: TrainBackend, M: AutodiffModule<B>>(
    model: &M,
    g: &GradientsParams,
    rho: f64,
    eta: f64,
) -> GradientsParams {
    let _t = crate::profile::scope(crate::profile::Class::Perturb);
    let scaled: std::collections::HashSet<_> =
        crate::model::param_infos(model).into_iter().filter(|p| p.is_scale()).map(|p| p.id).collect();
    let scale = |e: &crate::params::ParamIdTensor<B>| {
        if scaled.contains(&e.id) {
            Some(e.theta.clone().abs().add_scalar(eta))
        } else {
            None
        }
    };
    let tg = map_vector(model, g, |mut e| {
        if let Some(t) = scale(&e) {
            e.flat = e.flat * t;
        }
        e
    });
    let factor = global_norm(model, &tg).add_scalar(1e-12).recip().mul_scalar(rho);
    map_vector(model, &tg, |mut e| {
        if let Some(t) = scale(&e) {
            e.flat = e.flat * t;
        }
        e.flat = e.flat * factor.clone();
        e
    })
}
