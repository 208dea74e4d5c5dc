//! Vectors in parameter space (gradients, perturbations δ and ε) and the perturbed copies of a model built from them.
//!
//! A vector is a [`GradientsParams`]: inner-backend tensors keyed by [`ParamId`], exactly what `backward` yields and
//! what an optimiser consumes, so a perturbation and a gradient share one representation. Only trainable
//! parameters (those that require a gradient) take part; BatchNorm running statistics are not parameters.
//!
//! Two kinds of perturbed copy exist because they answer different questions (docs/burn.md):
//! - [`fresh_leaf_copy`]: θ+δ as new leaves, for "the gradient at θ+δ" (SAM, ASAM, IAM-S, Algorithm 1's ascent).
//!   Its gradients carry the original's `ParamId`s, so they go straight into the original's optimiser.
//! - [`linked_copy`]: θ + sg(δ) built on the original's leaves, for "the gradient of a loss evaluated at θ+δ with
//!   respect to θ" (IAM-D's perturbed branch), which then flows back into θ together with the clean branch.

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};

/// The inner (non-autodiff) backend of `B`, where gradients and perturbations live.
pub type Inner<B> = <B as AutodiffBackend>::InnerBackend;

/// Number of trainable scalars `n` of a model.
pub fn num_trainable<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M) -> usize {
    struct Count(usize);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if param.is_require_grad() {
                self.0 += param.shape().num_elements();
            }
        }
    }
    let mut c = Count(0);
    model.visit(&mut c);
    c.0
}

/// How many trainable parameter tensors of `model` have an entry in `v` (tests assert this, because a vector
/// collected from the wrong module is silently empty).
pub fn coverage<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M, v: &GradientsParams) -> (usize, usize) {
    struct Cover<'a> {
        v: &'a GradientsParams,
        found: usize,
        total: usize,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Cover<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if param.is_require_grad() {
                self.total += 1;
                self.found += usize::from(self.v.get::<Inner<B>, D>(param.id).is_some());
            }
        }
    }
    let mut c = Cover { v, found: 0, total: 0 };
    model.visit(&mut c);
    (c.found, c.total)
}

/// The global L2 norm of `v` over the trainable parameters of `model`, as a one-element tensor (no host sync).
pub fn global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M, v: &GradientsParams) -> Tensor<Inner<B>, 1> {
    struct SumSq<'a, B: AutodiffBackend> {
        v: &'a GradientsParams,
        acc: Option<Tensor<Inner<B>, 1>>,
        device: Option<burn::tensor::Device<Inner<B>>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for SumSq<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if self.device.is_none() {
                self.device = Some(param.val().inner().device());
            }
            if let Some(t) = self.v.get::<Inner<B>, D>(param.id) {
                let s = t.square().sum();
                self.acc = Some(match self.acc.take() {
                    Some(a) => a + s,
                    None => s,
                });
            }
        }
    }
    let mut s = SumSq::<B> { v, acc: None, device: None };
    model.visit(&mut s);
    match (s.acc, s.device) {
        (Some(acc), _) => acc.sqrt(),
        (None, device) => Tensor::zeros([1], &device.unwrap_or_default()),
    }
}

/// Whether every float tensor of `model` (parameters and BatchNorm running statistics, all that a checkpoint saves)
/// is finite, with one read back to the host: `Σ sum(θ · 0)` is 0 exactly when no element is NaN or ±∞ (∞ · 0 is
/// NaN), and unlike a sum of θ it cannot overflow.
pub fn all_finite<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M) -> bool {
    struct Zeroed<B: AutodiffBackend>(Option<Tensor<Inner<B>, 1>>);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Zeroed<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let s = param.val().inner().mul_scalar(0.0).sum();
            self.0 = Some(match self.0.take() {
                Some(a) => a + s,
                None => s,
            });
        }
    }
    let mut z = Zeroed::<B>(None);
    model.visit(&mut z);
    z.0.is_none_or(|t| t.into_data().convert::<f64>().to_vec::<f64>().is_ok_and(|v| v.iter().all(|x| x.is_finite())))
}

/// Applies `f` to every entry of `v` that belongs to a trainable parameter of `model`, giving a new vector.
pub fn map_vector<B, M, F>(model: &M, v: &GradientsParams, f: F) -> GradientsParams
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    F: FnMut(ParamIdTensor<B>) -> ParamIdTensor<B>,
{
    struct Map<'a, B: AutodiffBackend, F> {
        v: &'a GradientsParams,
        out: GradientsParams,
        f: F,
        _b: core::marker::PhantomData<B>,
    }
    impl<B: AutodiffBackend, F: FnMut(ParamIdTensor<B>) -> ParamIdTensor<B>> ModuleVisitor<B> for Map<'_, B, F> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(t) = self.v.get::<Inner<B>, D>(param.id) {
                let shape = t.shape();
                let theta = param.val().inner().flatten(0, D - 1);
                let entry = ParamIdTensor { id: param.id, weight_like: D > 1, theta, flat: t.flatten(0, D - 1) };
                let flat = (self.f)(entry);
                self.out.register::<Inner<B>, D>(param.id, flat.flat.reshape(shape));
            }
        }
    }
    let mut m = Map::<B, F> { v, out: GradientsParams::new(), f, _b: core::marker::PhantomData };
    model.visit(&mut m);
    m.out
}

/// One parameter's entry of a vector, flattened, handed to [`map_vector`]'s closure.
pub struct ParamIdTensor<B: AutodiffBackend> {
    /// Which parameter.
    pub id: ParamId,
    /// Whether it is a weight tensor (conv kernel or linear matrix) rather than a bias or BatchNorm scale/shift.
    pub weight_like: bool,
    /// The parameter's current value θ, flattened.
    pub theta: Tensor<Inner<B>, 1>,
    /// The vector's entry for it, flattened.
    pub flat: Tensor<Inner<B>, 1>,
}

/// `a + b` for two vectors over the same model.
pub fn add<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    a: &GradientsParams,
    b: &GradientsParams,
) -> GradientsParams {
    let b = flat_by_id::<B, M>(model, b);
    map_vector(model, a, |mut e| {
        if let Some(other) = b.get(&e.id) {
            e.flat = e.flat + other.clone();
        }
        e
    })
}

/// `a − b + c` for three vectors over the same model: a gradient with one term's value at θ (`b`) swapped for its
/// value at θ + ε (`c`).
pub fn swap_term<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    a: &GradientsParams,
    b: &GradientsParams,
    c: &GradientsParams,
) -> GradientsParams {
    let _t = crate::profile::scope(crate::profile::Class::Gradients);
    let (b, c) = (flat_by_id::<B, M>(model, b), flat_by_id::<B, M>(model, c));
    map_vector(model, a, |mut e| {
        if let (Some(bv), Some(cv)) = (b.get(&e.id), c.get(&e.id)) {
            e.flat = e.flat - bv.clone() + cv.clone();
        }
        e
    })
}

fn flat_by_id<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    v: &GradientsParams,
) -> std::collections::HashMap<ParamId, Tensor<Inner<B>, 1>> {
    let mut out = std::collections::HashMap::new();
    map_vector(model, v, |e| {
        out.insert(e.id, e.flat.clone());
        e
    });
    out
}

/// `ρ · v / (‖v‖ + 1e-12)` with the global norm: the normalised ascent step of SAM and Algorithm 1.
pub fn scale_to_radius<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    v: &GradientsParams,
    rho: f64,
) -> GradientsParams {
    let _t = crate::profile::scope(crate::profile::Class::Perturb);
    let factor = global_norm(model, v).add_scalar(1e-12).recip().mul_scalar(rho);
    map_vector(model, v, |mut e| {
        e.flat = e.flat * factor.clone();
        e
    })
}

/// A Gaussian vector with i.i.d. entries of standard deviation `std` per trainable scalar, drawn from `rng` on the
/// host, so that it depends on the caller's seed only (the backends' own generators are global and shared by threads).
pub fn gaussian<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    std: f64,
    rng: &mut dyn rand::RngCore,
) -> GradientsParams {
    struct Noise<'a> {
        std: f64,
        rng: &'a mut dyn rand::RngCore,
        out: GradientsParams,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Noise<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if param.is_require_grad() {
                let t = param.val().inner();
                let shape = t.shape();
                let values: Vec<f32> = (0..shape.num_elements())
                    .map(|_| {
                        (rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, self.rng) * self.std)
                            as f32
                    })
                    .collect();
                let noise = Tensor::<Inner<B>, D>::from_data(TensorData::new(values, shape), &t.device());
                self.out.register::<Inner<B>, D>(param.id, noise);
            }
        }
    }
    let _t = crate::profile::scope(crate::profile::Class::Perturb);
    let mut n = Noise { std, rng, out: GradientsParams::new() };
    model.visit(&mut n);
    n.out
}

/// θ + δ as fresh leaves: gradients taken on the copy are gradients at θ + δ, keyed by the original's ids.
pub fn fresh_leaf_copy<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M, delta: &GradientsParams) -> M {
    detached_copy(model, delta, true)
}

/// θ + δ as untracked constants: a forward on it builds no graph (for measuring, not training).
pub fn constant_copy<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M, delta: &GradientsParams) -> M {
    detached_copy(model, delta, false)
}

fn detached_copy<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M, delta: &GradientsParams, leaves: bool) -> M {
    let _t = crate::profile::scope(crate::profile::Class::Perturb);
    struct Detached<'a> {
        delta: &'a GradientsParams,
        leaves: bool,
    }
    impl<B: AutodiffBackend> ModuleMapper<B> for Detached<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, t, mapper) = param.consume();
            let trainable = t.is_require_grad();
            let mut inner = t.inner();
            if let Some(d) = self.delta.get::<Inner<B>, D>(id) {
                inner = inner + d;
            }
            let mut value = Tensor::from_inner(inner);
            if trainable && self.leaves {
                value = value.require_grad();
            }
            Param::from_mapped_value(id, value, mapper)
        }
    }
    model.clone().map(&mut Detached { delta, leaves })
}

/// θ + sg(δ) on the original's leaves: a loss on the copy back-propagates into θ itself.
pub fn linked_copy<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M, delta: &GradientsParams) -> M {
    let _t = crate::profile::scope(crate::profile::Class::Perturb);
    struct Linked<'a>(&'a GradientsParams);
    impl<B: AutodiffBackend> ModuleMapper<B> for Linked<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, t, mapper) = param.consume();
            let t = match self.0.get::<Inner<B>, D>(id) {
                Some(d) => t + Tensor::from_inner(d),
                None => t,
            };
            Param::from_mapped_value(id, t, mapper)
        }
    }
    model.clone().map(&mut Linked(delta))
}

/// `a · b` over the trainable parameters of `model`, read back to the host.
pub fn dot<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M, a: &GradientsParams, b: &GradientsParams) -> f64 {
    let b = flat_by_id::<B, M>(model, b);
    let mut sum: Option<Tensor<Inner<B>, 1>> = None;
    map_vector(model, a, |e| {
        if let Some(other) = b.get(&e.id) {
            let term = (e.flat.clone() * other.clone()).sum();
            sum = Some(match sum.take() {
                Some(s) => s + term,
                None => term,
            });
        }
        e
    });
    sum.map_or(0.0, |s| s.into_data().convert::<f64>().to_vec::<f64>().map_or(f64::NAN, |v| v[0]))
}

/// `a + s · b` for two vectors over the same model.
pub fn axpy<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    a: &GradientsParams,
    s: f64,
    b: &GradientsParams,
) -> GradientsParams {
    let b = flat_by_id::<B, M>(model, b);
    map_vector(model, a, |mut e| {
        if let Some(other) = b.get(&e.id) {
            e.flat = e.flat + other.clone().mul_scalar(s);
        }
        e
    })
}

/// `s · v`.
pub fn scale<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M, v: &GradientsParams, s: f64) -> GradientsParams {
    map_vector(model, v, |mut e| {
        e.flat = e.flat.mul_scalar(s);
        e
    })
}

/// ‖θ‖ over the trainable parameters that `like` has entries for.
pub fn parameter_norm<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M, like: &GradientsParams) -> f64 {
    let mut sum = 0.0;
    map_vector(model, like, |e| {
        let sq = e.theta.clone().powf_scalar(2.0).sum().into_data().convert::<f64>().to_vec::<f64>();
        sum += sq.map_or(f64::NAN, |v| v[0]);
        e
    });
    sum.sqrt()
}

/// The gradient of `loss` at θ + δ, keyed by `model`'s parameter ids (an empty δ is θ itself).
pub fn gradient_at<B, M, F>(model: &M, delta: &GradientsParams, mut loss: F) -> GradientsParams
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    F: FnMut(&M) -> Tensor<B, 1>,
{
    let copy = fresh_leaf_copy::<B, M>(model, delta);
    // GGCR's gradients and Hessian products are gradients of the objective: averaged on several devices.
    crate::devices::gradients(loss(&copy), &copy, crate::devices::Pass::Objective)
}

/// The Hessian-vector product `H v` of `loss` at θ by central differences of gradients (Burn cannot differentiate
/// twice): `(∇L(θ + h v) − ∇L(θ − h v)) / 2h`, with h chosen so that the step `h v` has norm `h_rel · max(‖θ‖, 1)`.
/// Two forward + backward passes; the error is O(h²) times the third derivative (docs/stages.md, `ggcr`).
pub fn hessian_vector<B, M, F>(model: &M, v: &GradientsParams, h_rel: f64, mut loss: F) -> GradientsParams
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    F: FnMut(&M) -> Tensor<B, 1>,
{
    let v_norm = dot(model, v, v).sqrt();
    if v_norm == 0.0 || !v_norm.is_finite() {
        return scale(model, v, 0.0);
    }
    let h = h_rel * parameter_norm(model, v).max(1.0) / v_norm;
    let plus = gradient_at(model, &scale(model, v, h), &mut loss);
    let minus = gradient_at(model, &scale(model, v, -h), &mut loss);
    scale(model, &axpy(model, &plus, -1.0, &minus), 1.0 / (2.0 * h))
}
