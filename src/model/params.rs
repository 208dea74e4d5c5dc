//! Counting and listing a module's tensors, with PyTorch-style names and a role per tensor
//! (weight decay exclusion, export, global norms over trainable tensors).

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Trainable scalars of a module, as PyTorch's `sum(p.numel() for p in parameters())`:
/// BatchNorm running statistics are state, not parameters, and are not counted.
///
/// Burn's own `Module::num_params` cannot be used: its `Option<T>` implementation counts every
/// float tensor it visits, running statistics included (the projection head, ResNet shortcuts).
pub fn num_params<B: Backend, M: Module<B>>(module: &M) -> usize {
    param_infos(module).iter().filter(|p| p.kind.is_trainable()).map(|p| p.shape.iter().product::<usize>()).sum()
}

/// The role of one tensor of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// Weight of a convolution or linear layer (weight decay applies by default).
    Weight,
    /// Bias of a convolution or linear layer.
    Bias,
    /// BatchNorm scale or shift.
    Norm,
    /// BatchNorm running mean or variance: saved and copied, never trained.
    Buffer,
}

impl ParamKind {
    /// Whether the optimiser updates tensors of this kind.
    pub fn is_trainable(self) -> bool {
        self != ParamKind::Buffer
    }

    /// Whether weight decay applies when `decay_bias_and_norm = false` (the default).
    pub fn is_decayed_by_default(self) -> bool {
        self == ParamKind::Weight
    }
}

/// One tensor of a model: its id, dotted path, role and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// The id gradients and optimiser state are keyed by.
    pub id: ParamId,
    /// Dotted path of field names, e.g. `backbone.block1.layer.0.conv1.weight` (enum variant
    /// names are left out, list indices kept, as in a PyTorch `state_dict`).
    pub name: String,
    /// Role of the tensor.
    pub kind: ParamKind,
    /// Shape in Burn's layout (a `Linear` weight is `[in, out]`, transposed from PyTorch).
    pub shape: Vec<usize>,
    /// Whether this is the weight of a `Linear`, stored `[in, out]` where PyTorch stores `[out, in]`.
    pub linear_weight: bool,
}

impl ParamInfo {
    /// Whether the tensor scales its input: a convolution or linear weight, or a BatchNorm γ (not biases, not β).
    /// ASAM's adaptive scale `T = |w| + η` applies to exactly these.
    pub fn is_scale(&self) -> bool {
        match self.kind {
            ParamKind::Weight => true,
            ParamKind::Norm => self.name == "weight" || self.name.ends_with(".weight"),
            ParamKind::Bias | ParamKind::Buffer => false,
        }
    }
}

/// Every float tensor of `module` (parameters and buffers) in visiting order.
pub fn param_infos<B: Backend, M: Module<B>>(module: &M) -> Vec<ParamInfo> {
    let mut collector = Collector { path: Vec::new(), infos: Vec::new(), values: None };
    module.visit(&mut collector);
    collector.infos
}

/// Every float tensor of `module` with its values in Burn's layout (row-major `f32`), in visiting order.
pub fn param_values<B: Backend, M: Module<B>>(module: &M) -> Vec<(ParamInfo, Result<Vec<f32>, String>)> {
    let mut collector = Collector { path: Vec::new(), infos: Vec::new(), values: Some(Vec::new()) };
    module.visit(&mut collector);
    collector.infos.into_iter().zip(collector.values.unwrap_or_default()).collect()
}

struct Collector {
    /// (field name, type of the container the field belongs to) from the root down.
    path: Vec<(String, String)>,
    infos: Vec<ParamInfo>,
    /// Read back every tensor's values too (only `param_values` pays for it).
    values: Option<Vec<Result<Vec<f32>, String>>>,
}

impl<B: Backend> ModuleVisitor<B> for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let name = self
            .path
            .iter()
            .filter(|(_, container)| !container.starts_with("Enum:"))
            .map(|(field, _)| field.as_str())
            .collect::<Vec<_>>()
            .join(".");
        let (field, container) = self.path.last().map(|(f, c)| (f.as_str(), c.as_str())).unwrap_or(("", ""));
        let kind = classify(field, container, D);
        let linear_weight = D == 2 && field == "weight" && container == "Struct:Linear";
        self.infos.push(ParamInfo { id: param.id, name, kind, shape: param.val().dims().to_vec(), linear_weight });
        if let Some(values) = &mut self.values {
            values.push(param.val().into_data().convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}")));
        }
    }
}

/// The role of a tensor from its field name, the type holding it and its rank.
fn classify(field: &str, container: &str, rank: usize) -> ParamKind {
    let in_batch_norm = container == "Struct:BatchNorm";
    match field {
        "running_mean" | "running_var" if in_batch_norm => ParamKind::Buffer,
        "weight" | "bias" if in_batch_norm => ParamKind::Norm,
        "weight" => ParamKind::Weight,
        "bias" => ParamKind::Bias,
        // Anything else: matrices and kernels decay like weights, vectors are exempt like biases.
        _ if rank >= 2 => ParamKind::Weight,
        _ => ParamKind::Bias,
    }
}
