//! Recorded fingerprints of seeded training: every recipe shape runs a few steps on the CPU backend and the bits of
//! the resulting parameters, buffers and logged metrics are hashed. A refactor that claims to change no behaviour
//! must leave every fingerprint as recorded in `tests/fingerprints.txt`.
//!
//! Floating-point results depend on the vector instructions the kernels run with and on the gemm crate's blocking,
//! so the recorded values hold for the instruction set named in the file; on another one the test recomputes and
//! prints the fingerprints (to be recorded there) instead of comparing. `BURNISH_RECORD_FINGERPRINTS=1` rewrites
//! the file.

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burnish::pipeline::Pipeline;
use burnish::plan;
use burnish::recipe::Recipe;
use burnish::train::Trainer;

type AD = Autodiff<Flex>;

mod common;

const STEPS: u64 = 3;

/// The recipe shapes fingerprinted: a name and the `--set` overrides on the tiny FixMatch + IAM-D recipe.
const SHAPES: &[(&str, &[&str])] = &[
    ("fixmatch-iam-d", &[]),
    ("sam", &["update.rule=sam"]),
    ("hard-low-threshold", &["stage.1.threshold=0.12"]),
    ("sam-labeled-m4", &["update.rule=sam", "update.loss=labeled", "update.m=4"]),
    ("asam", &["update.rule=asam"]),
    ("iam-s", &["update.rule=iam-s"]),
    ("ascent-fraction", &["stage.2.ascent_fraction=0.5"]),
    (
        "soft-confident",
        &[
            "stage.1.threshold=0.12",
            "stage.1.pseudo_labels=soft",
            "stage.1.temperature=0.5",
            "stage.1.normalize=confident",
        ],
    ),
    ("adamw-multistep-no-ema", &["optimizer.kind=adamw", "schedule.kind=multistep", "ema.enabled=false"]),
];

/// SimCLR + IAM-D on projection outputs, on the same synthetic data.
const SIMCLR: &str = r#"
name = "fingerprint-simclr"
seed = 3
[data]
dataset = "synthetic"
labels_per_class = 2
batch_size = 8
mu = 1
workers = 2
unlabeled_views = ["simclr", "simclr"]
synthetic_train_size = 200
synthetic_test_size = 50
[model]
arch = "cnn-small"
[model.projection]
hidden = 32
dim = 16
[[stage]]
kind = "ntxent"
temperature = 0.5
[[stage]]
kind = "iam-d"
source = "projection"
[schedule]
steps = 20
"#;

/// FNV-1a, 64 bits: small, stable across Rust versions (unlike `DefaultHasher`).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn hash_module<B: Backend, M: Module<B>>(m: &M, h: &mut Fnv) {
    struct Visit<'a>(&'a mut Fnv);
    impl<B: Backend> ModuleVisitor<B> for Visit<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            for v in p.val().into_data().convert::<f32>().to_vec::<f32>().expect("f32 data") {
                self.0.bytes(&v.to_bits().to_le_bytes());
            }
        }
    }
    m.visit(&mut Visit(h));
}

fn fingerprint(r: &Recipe) -> u64 {
    let data = plan::data(r).expect("synthetic data");
    let net = plan::net(r, 3, data.dataset.num_classes);
    let model = Trainer::<AD>::init_model(&net, r.seed, &Default::default());
    let objective = plan::objective::<AD>(r).expect("runnable stages");
    let mut t = Trainer::new(model, objective, plan::update_rule(r), plan::train_settings(r), Default::default());
    let mut p =
        Pipeline::new(data.train.clone(), data.norm.clone(), data.streams.clone(), &plan::pipeline_config(r, 0))
            .expect("valid pipeline");
    let mut h = Fnv::new();
    for _ in 0..STEPS {
        let report = t.train_step(&p.next_batch().expect("in-memory data")).expect("a step");
        for (name, value) in &report.metrics {
            h.bytes(name.as_bytes());
            h.bytes(&value.to_bits().to_le_bytes());
        }
    }
    hash_module(&t.model, &mut h);
    hash_module(&t.eval_model(), &mut h);
    h.0
}

fn current() -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (name, sets) in SHAPES {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let r = Recipe::from_str(common::TINY_RECIPE, "tiny.toml", &sets).expect("a valid recipe");
        out.push((name.to_string(), fingerprint(&r)));
    }
    let r = Recipe::from_str(SIMCLR, "simclr.toml", &[]).expect("a valid recipe");
    out.push(("simclr-iam-d".to_string(), fingerprint(&r)));
    out
}

#[test]
fn seeded_training_matches_the_recorded_fingerprints() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fingerprints.txt");
    let isa = burnish::kernels::simd_level();
    let now = current();
    let written: String =
        std::iter::once(format!("isa {isa}\n")).chain(now.iter().map(|(n, h)| format!("{n} {h:016x}\n"))).collect();
    if std::env::var_os("BURNISH_RECORD_FINGERPRINTS").is_some() {
        std::fs::write(&path, &written).expect("write tests/fingerprints.txt");
        return;
    }
    let recorded = std::fs::read_to_string(&path).expect("tests/fingerprints.txt is checked in");
    let recorded_isa = recorded.lines().next().and_then(|l| l.strip_prefix("isa ")).unwrap_or("");
    if recorded_isa != isa {
        eprintln!("fingerprints were recorded with {recorded_isa:?}, this machine runs {isa:?}; now:\n{written}");
        return;
    }
    assert_eq!(recorded, written, "seeded training no longer produces the recorded numbers");
}
