//! Recorded fingerprints of seeded training: every recipe shape runs a few steps on the CPU backend and the bits of
//! the resulting parameters, buffers and logged metrics are hashed. A refactor that claims to change no behaviour
//! must leave every fingerprint as recorded in `tests/fingerprints.txt`.
//!
//! Floating-point results depend on the vector instructions the arithmetic runs with. Flex picks its level at run
//! time through macerator (x86-64-v4 where the CPU has AVX-512, else v3, v2 or scalar; NEON on aarch64), so the file
//! holds one section per flex level, headed `isa flex=<level>`, plus ` gemm=avx512` where gemm's AVX-512 kernels run
//! (the `avx512` feature, on by default, on a CPU with avx512f); a run compares the section of its combination and
//! fails when there is none. burnish's own kernels (`burnish::kernels::simd_level`, `BURNISH_NO_SIMD` forcing the
//! baseline) are written to give the same bits at every level they dispatch to, so their level is not part of the
//! heading: on a machine whose kernels use SIMD the test runs itself again with `BURNISH_NO_SIMD=1` and must match
//! the same section, which checks that claim wherever the test runs. The tensor-math pool is fixed at [`THREADS`]
//! threads, as the thread count changes how flex splits its sums.
//!
//! `BURNISH_RECORD_FINGERPRINTS=1 cargo test --test fingerprint` (re)writes the sections of this machine's
//! combinations and keeps the others; record only after checking that the change is meant to change results.

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

/// Threads of the tensor-math pool while fingerprinting (the count changes float sums).
const THREADS: usize = 2;

/// The instruction-set level flex's element-wise and reduction kernels run with here (macerator's run-time choice,
/// without its nightly-only FP16 level).
fn flex_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! all {
            ($($f:tt),+) => { true $(&& std::is_x86_feature_detected!($f))+ };
        }
        let v2 = all!("sse3", "ssse3", "sse4.1", "sse4.2", "popcnt");
        let v3 = v2 && all!("avx", "avx2", "f16c", "bmi1", "bmi2", "fma", "lzcnt");
        let v4 = v3 && all!("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl");
        if v4 {
            "x86-64-v4"
        } else if v3 {
            "x86-64-v3"
        } else if v2 {
            "x86-64-v2"
        } else {
            "scalar"
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH
    }
}

/// The section heading of this process's combination of levels.
fn isa() -> String {
    // gemm runs its AVX-512 kernels only when they are built (the default `avx512` feature) and the CPU has avx512f;
    // anywhere else it runs the kernels it ran without the feature, whose bits the plain heading records.
    #[cfg(target_arch = "x86_64")]
    let avx512 = cfg!(feature = "avx512") && std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let avx512 = false;
    let gemm = if avx512 { " gemm=avx512" } else { "" };
    format!("isa flex={}{gemm}", flex_level())
}

/// The recorded sections: heading and the lines under it.
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with("isa ") {
            out.push((line.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        } else {
            panic!("tests/fingerprints.txt: {line:?} comes before any `isa` heading");
        }
    }
    out
}

#[test]
fn seeded_training_matches_the_recorded_fingerprints() {
    rayon::ThreadPoolBuilder::new().num_threads(THREADS).build_global().expect("the test sizes the pool first");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fingerprints.txt");
    let isa = isa();
    let now: String = current().iter().map(|(n, h)| format!("{n} {h:016x}\n")).collect();
    let recorded = std::fs::read_to_string(&path).expect("tests/fingerprints.txt is checked in");
    let mut all = sections(&recorded);
    let record = std::env::var_os("BURNISH_RECORD_FINGERPRINTS").is_some();
    if record {
        match all.iter_mut().find(|(h, _)| *h == isa) {
            Some((_, body)) => body.clone_from(&now),
            None => all.push((isa.clone(), now.clone())),
        }
        let text: String = all.iter().map(|(h, b)| format!("{h}\n{b}")).collect();
        std::fs::write(&path, text).expect("write tests/fingerprints.txt");
    } else {
        let Some((_, body)) = all.iter().find(|(h, _)| *h == isa) else {
            panic!(
                "tests/fingerprints.txt has no section `{isa}` for this machine. Fingerprints now:\n{now}\
                 If the code is known to be right, record them with BURNISH_RECORD_FINGERPRINTS=1 cargo test --test \
                 fingerprint"
            );
        };
        assert_eq!(*body, now, "seeded training no longer produces the numbers recorded under `{isa}`");
    }
    // The baseline kernels, once, from the process whose own kernels use SIMD.
    if burnish::kernels::simd_level() != "baseline" {
        let exe = std::env::current_exe().expect("the test binary");
        let out = std::process::Command::new(exe)
            .args(["--exact", "seeded_training_matches_the_recorded_fingerprints", "--nocapture"])
            .env("BURNISH_NO_SIMD", "1")
            .output()
            .expect("the test binary runs again");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "with BURNISH_NO_SIMD=1:\n{text}");
        assert!(text.contains("1 passed"), "the baseline run ran the test:\n{text}");
    }
}
