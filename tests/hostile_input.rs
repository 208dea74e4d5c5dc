//! Hostile input: the recipe parser with `--set` overrides, and the data readers (IDX raw and gzipped, CIFAR binary,
//! PNG/JPEG files of an image folder), fed arbitrary bytes, return errors: they never panic, never abort, and never
//! allocate in proportion to what a header claims rather than to the input's size.
//!
//! Each target first replays its checked-in corpus (`tests/corpus/<target>/`; the recipe target also every shipped
//! recipe under `recipes/`), then runs [`arbtest`] on generated inputs, many of them mutations of corpus entries,
//! for a time budget: `ARBTEST_BUDGET_MS` per target (default 2 s, so that `cargo test` stays quick; CI gives each
//! target 60 s). A failure prints the seed; `ARBTEST_SEED=0x… cargo test --test hostile_input TARGET` replays it.
//! An abort (a stack overflow, or an allocation over [`HARD_LIMIT`]) ends the binary before the seed can be printed,
//! but still fails the run. An input that once failed goes into the corpus with a test of its own at the end.
//!
//! These are `arbtest` targets rather than `cargo fuzz` ones because cargo-fuzz needs nightly flags and its own
//! sanitizer-instrumented release build of Burn: 35 CPU-minutes measured, over 17 minutes of CI's two cores before
//! the first input. They run in the ordinary test build.
//!
//! Allocation is measured by this binary's global allocator, per thread: each check asserts the peak the call
//! reached against a bound proportional to its input, and any single request above [`HARD_LIMIT`] is refused,
//! which aborts the test binary rather than let it swap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};

use arbtest::arbitrary::{Result as ArbResult, Unstructured};
use burnish::data::{
    cifar_split_from_bytes, decode_image, idx_split_from_bytes, load_with_env, DataError, DatasetKind, LoadOptions,
    Split,
};
use burnish::recipe::{Recipe, RecipeError};

// ---------------------------------------------------------------- allocation tracking

/// No single allocation made by the code under test may be larger: far above any bound below, far below the memory
/// of any machine the tests run on.
const HARD_LIMIT: usize = 1 << 30;

/// The system allocator, counting each thread's live bytes and their peak.
struct Tracking;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    // `try_with`: allocations also happen while thread-locals are being torn down.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated besides.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_LIMIT {
            return std::ptr::null_mut();
        }
        let p = System.alloc(layout);
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_LIMIT {
            return std::ptr::null_mut();
        }
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        note(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > HARD_LIMIT {
            return std::ptr::null_mut();
        }
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f`; returns its result and the most bytes it held allocated at once (on this thread) beyond what was live
/// before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as usize)
}

/// Asserts that `f`'s peak allocation stays within `bound` bytes; `what` describes the input for the message.
fn bounded<T>(what: &dyn Fn() -> String, bound: usize, f: impl FnOnce() -> T) -> T {
    let (out, peak) = peak_of(f);
    assert!(peak <= bound, "{}: allocated {peak} bytes at once, more than the bound of {bound}", what());
    out
}

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------- budget and corpus

/// Milliseconds of generated inputs per target.
fn budget_ms() -> u64 {
    std::env::var("ARBTEST_BUDGET_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000)
}

/// Counts a target's generated inputs and how many of them were accepted, and prints them when dropped (visible with
/// `--nocapture`, as in CI), so that a target whose inputs all fail early shows.
struct Tally {
    target: &'static str,
    inputs: u64,
    accepted: u64,
    started: std::time::Instant,
}

impl Tally {
    fn new(target: &'static str) -> Self {
        Tally { target, inputs: 0, accepted: 0, started: std::time::Instant::now() }
    }

    fn count(&mut self, accepted: bool) {
        self.inputs += 1;
        self.accepted += u64::from(accepted);
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        let (target, inputs, accepted) = (self.target, self.inputs, self.accepted);
        let secs = self.started.elapsed().as_secs_f64();
        eprintln!("{target}: {inputs} generated inputs in {secs:.1} s, {accepted} of them accepted");
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir` and its sub-directories, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The corpus of one target: (file name, bytes).
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let files = files_under(&root().join("tests/corpus").join(target));
    assert!(!files.is_empty(), "the {target} corpus is empty");
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().expect("a file name").to_string_lossy().into_owned();
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, bytes)
        })
        .collect()
}

/// `bytes`, possibly mutated: truncated, extended, with bytes overwritten or with a run spliced in.
fn mutate(u: &mut Unstructured, mut bytes: Vec<u8>) -> ArbResult<Vec<u8>> {
    for _ in 0..u.int_in_range(0..=4)? {
        match u.int_in_range(0..=4)? {
            0 if !bytes.is_empty() => {
                let at = u.choose_index(bytes.len())?;
                bytes.truncate(at);
            }
            1 => {
                let extra: Vec<u8> = u.arbitrary()?;
                bytes.extend(extra);
            }
            2 if !bytes.is_empty() => {
                let at = u.choose_index(bytes.len())?;
                bytes[at] = u.arbitrary()?;
            }
            3 if !bytes.is_empty() => {
                let at = u.choose_index(bytes.len())?;
                let run: Vec<u8> = u.arbitrary()?;
                bytes.splice(at..at, run);
            }
            _ => {
                // A 32-bit word overwritten with an extreme value: sizes in headers are u32s.
                if bytes.len() >= 4 {
                    let at = u.choose_index(bytes.len() - 3)?;
                    let word: u32 = *u.choose(&[0, 1, 0xff, 0x7fff_ffff, 0xffff_ffff, 1_000_000_000])?;
                    bytes[at..at + 4].copy_from_slice(&word.to_be_bytes());
                }
            }
        }
    }
    Ok(bytes)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

// ---------------------------------------------------------------- recipe target

/// Keys `--set` is aimed at: every key of the format and a few that do not exist.
const KEYS: &[&str] = &[
    "name",
    "description",
    "seed",
    "data",
    "data.dataset",
    "data.path",
    "data.labels_per_class",
    "data.batch_size",
    "data.mu",
    "data.unlabeled",
    "data.labeled_views",
    "data.unlabeled_views",
    "data.workers",
    "data.prefetch",
    "data.image_size",
    "data.image_channels",
    "data.synthetic_train_size",
    "data.synthetic_test_size",
    "data.split_seed",
    "model.arch",
    "model.projection",
    "model.projection.hidden",
    "model.projection.dim",
    "stage",
    "stage.0",
    "stage.0.kind",
    "stage.0.view",
    "stage.1.threshold",
    "stage.1.beta",
    "stage.2.rho",
    "stage.2.source",
    "stage.7.weight",
    "update.rule",
    "update.rho",
    "update.m",
    "update.steps",
    "optimizer.kind",
    "optimizer.lr",
    "schedule.kind",
    "schedule.steps",
    "schedule.warmup",
    "ema.decay",
    "ema.enabled",
    "eval.batch_size",
    "eval.every",
    "eval.knn_k",
    "checkpoint.every",
    "checkpoint.keep",
    "data.nope",
    "x.y.z",
];

/// Values worth trying at any key: limits of every type TOML has, and the names recipes use.
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "25",
    "100000000",
    "1000000000",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e308",
    "-0.0",
    "nan",
    "inf",
    "0.5",
    "true",
    "\"\"",
    "\"weak\"",
    "[]",
    "[\"weak\", \"strong\"]",
    "[\"simclr\", \"simclr\"]",
    "{}",
    "{hidden = 100000000000}",
    "[{kind = \"supervised\"}]",
    "wrn-28-2",
    "wrn-28-100000",
    "wrn-9223372036854775804-2",
    "cnn-small",
    "resnet18-cifar",
    "synthetic",
    "image-folder",
    "fashion-mnist",
    "sam",
    "iam-s",
    "projection",
    "cosine",
    "1979-05-27T07:32:00Z",
    "a\nb = 1",
    "\"\\u0000\"",
    "é",
];

/// Loads `text` with `overrides`; a recipe that loads must write itself out and read back equal (run folders keep the
/// resolved recipe and `--resume` compares it), and an error must say something.
fn check_recipe(text: &str, overrides: &[String]) -> bool {
    let what = || format!("recipe {text:?} with --set {overrides:?}");
    let bound = 16 * MIB + 256 * (text.len() + overrides.iter().map(String::len).sum::<usize>());
    bounded(&what, bound, || match Recipe::from_str(text, "fuzz.toml", overrides) {
        Ok(r) => {
            let resolved = r.to_toml();
            let back = Recipe::from_str(&resolved, "resolved.toml", &[])
                .unwrap_or_else(|e| panic!("{}: the resolved recipe does not load: {e}\n{resolved}", what()));
            assert_eq!(back, r, "{}: the resolved recipe reads back different", what());
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty(), "{}: an empty error", what());
            false
        }
    })
}

/// The shipped recipes and the recipe corpus.
fn recipe_seeds() -> Vec<(String, String)> {
    let mut seeds: Vec<(String, String)> = files_under(&root().join("recipes"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).expect("a shipped recipe")))
        .collect();
    for (name, bytes) in corpus("recipe") {
        if name.ends_with(".toml") {
            seeds.push((name, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    seeds
}

/// The `--set` arguments of the corpus: the lines of `overrides.txt` (`\n` stands for a newline) and each `*.set`
/// file (one argument, too long for a line).
fn override_seeds() -> Vec<String> {
    let mut seeds = Vec::new();
    for (name, bytes) in corpus("recipe") {
        let text = String::from_utf8_lossy(&bytes);
        if name == "overrides.txt" {
            seeds.extend(text.lines().map(|l| l.replace("\\n", "\n")));
        } else if name.ends_with(".set") {
            seeds.push(text.trim_end_matches('\n').to_string());
        }
    }
    seeds
}

fn arbitrary_override(u: &mut Unstructured, seeds: &[String]) -> ArbResult<String> {
    Ok(match u.int_in_range(0..=4)? {
        0 => u.choose(seeds)?.clone(),
        1 => format!("{}={}", u.choose(KEYS)?, u.choose(VALUES)?),
        2 => format!("{}={}", u.choose(KEYS)?, u.arbitrary::<String>()?),
        // Keys as deep as a command line allows.
        3 => format!("{}b={}", "a.".repeat(u.int_in_range(0..=40_000)?), u.choose(VALUES)?),
        _ => u.arbitrary()?,
    })
}

#[test]
fn recipe_corpus_loads_or_fails_cleanly() {
    let overrides = override_seeds();
    for (_, text) in recipe_seeds() {
        check_recipe(&text, &[]);
        for o in &overrides {
            check_recipe(&text, std::slice::from_ref(o));
        }
    }
}

#[test]
fn recipe_parser_survives_arbitrary_text_and_overrides() {
    let seeds = recipe_seeds();
    let overrides = override_seeds();
    let mut tally = Tally::new("recipe");
    arbtest::arbtest(|u| {
        let text = match u.int_in_range(0..=3)? {
            0 => u.choose(&seeds)?.1.clone(),
            1 | 2 => {
                let seed = u.choose(&seeds)?.1.clone().into_bytes();
                String::from_utf8_lossy(&mutate(u, seed)?).into_owned()
            }
            _ => u.arbitrary()?,
        };
        let mut set = Vec::new();
        for _ in 0..u.int_in_range(0..=4)? {
            set.push(arbitrary_override(u, &overrides)?);
        }
        tally.count(check_recipe(&text, &set));
        Ok(())
    })
    .budget_ms(budget_ms());
}

// ---------------------------------------------------------------- IDX target

const IMAGES_MAGIC: u32 = 0x803;
const LABELS_MAGIC: u32 = 0x801;

fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

/// A valid pair: 3 images of 2x3 and their labels.
fn valid_idx_pair() -> (Vec<u8>, Vec<u8>) {
    (idx(IMAGES_MAGIC, &[3, 2, 3], &[7; 18]), idx(LABELS_MAGIC, &[3], &[0, 9, 4]))
}

/// How many bytes `bytes` named `name` stand for once read: gunzipped, at most 1032 times its size.
fn idx_read_bound(name: &Path, bytes: &[u8]) -> usize {
    if name.extension().is_some_and(|e| e == "gz") {
        1032 * bytes.len()
    } else {
        bytes.len()
    }
}

/// Every image of a split that loaded must read back at its size.
fn read_all_pixels(split: &Split, what: &dyn Fn() -> String) {
    let mut buf = Vec::new();
    for i in 0..split.len() {
        split.read_pixels(i, &mut buf).unwrap_or_else(|e| panic!("{}: image {i} does not read: {e}", what()));
        assert_eq!(buf.len(), split.image_bytes(), "{}: image {i}", what());
    }
}

fn check_idx(images: (&Path, &[u8]), labels: (&Path, &[u8])) -> bool {
    let what = || {
        format!(
            "IDX {} ({} bytes) + {} ({} bytes)",
            images.0.display(),
            images.1.len(),
            labels.0.display(),
            labels.1.len()
        )
    };
    // Gunzipped data, its buffer growing by doubling, kept as u8 pixels and u16 labels, plus a MiB reserved ahead.
    let read = idx_read_bound(images.0, images.1) + idx_read_bound(labels.0, labels.1);
    bounded(&what, 4 * MIB + 4 * read, || match idx_split_from_bytes(images, labels, 10) {
        Ok(split) => {
            read_all_pixels(&split, &what);
            true
        }
        Err(_) => false,
    })
}

/// An IDX file as a fuzzer would write it: arbitrary, or a header (right or wrong magic, any dimensions) and a body.
fn arbitrary_idx(u: &mut Unstructured, magic: u32, ndims: usize) -> ArbResult<Vec<u8>> {
    if u.ratio(1, 4)? {
        return u.arbitrary();
    }
    let magic = if u.ratio(1, 8)? { u.arbitrary()? } else { magic };
    let mut dims = Vec::new();
    for _ in 0..ndims {
        dims.push(match u.int_in_range(0..=3)? {
            0 => *u.choose(&[0, 1_000_000_000, u32::MAX])?,
            1 => u.arbitrary()?,
            _ => u.int_in_range(0..=5)?,
        });
    }
    let exact = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d as usize)).filter(|&n| n <= 4096);
    let body = match exact {
        Some(n) if u.ratio(3, 4)? => (0..n).map(|_| u.int_in_range(0..=12)).collect::<ArbResult<Vec<u8>>>()?,
        _ => u.arbitrary()?,
    };
    mutate(u, idx(magic, &dims, &body))
}

#[test]
fn idx_corpus_reads_or_fails_cleanly() {
    let (valid_images, valid_labels) = valid_idx_pair();
    let images_name = Path::new("train-images-idx3-ubyte");
    let labels_name = Path::new("train-labels-idx1-ubyte");
    for (name, bytes) in corpus("idx") {
        // `*.idx3[.gz]` files stand in for the image file, `*.idx1[.gz]` ones for the label file.
        let gz = name.ends_with(".gz");
        let (images, labels) = if name.contains(".idx3") {
            (
                (images_name.with_extension(if gz { "gz" } else { "" }), bytes.clone()),
                (labels_name.to_path_buf(), valid_labels.clone()),
            )
        } else {
            (
                (images_name.to_path_buf(), valid_images.clone()),
                (labels_name.with_extension(if gz { "gz" } else { "" }), bytes.clone()),
            )
        };
        check_idx((&images.0, &images.1), (&labels.0, &labels.1));
        // The path API, through files on disk, gives the same verdict.
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |path: &Path, b: &[u8]| std::fs::write(dir.path().join(path), b).expect("write");
        write(&images.0, &images.1);
        write(&labels.0, &labels.1);
        let (test_images, test_labels) = (Path::new("t10k-images-idx3-ubyte"), Path::new("t10k-labels-idx1-ubyte"));
        write(test_images, &valid_images);
        write(test_labels, &valid_labels);
        let in_memory = idx_split_from_bytes((&images.0, &images.1), (&labels.0, &labels.1), 10).map(|s| s.len());
        let on_disk = load_with_env(DatasetKind::FashionMnist, Some(dir.path()), &LoadOptions::default(), None);
        match (in_memory, on_disk) {
            (Ok(n), Ok(d)) => assert_eq!(n, d.train.len(), "{name}"),
            (Err(a), Err(b)) => assert_eq!(kind_of(&a), kind_of(&b), "{name}: {a} / {b}"),
            (a, b) => panic!("{name}: from memory {a:?}, from disk {:?}", b.map(|d| d.train.len())),
        }
    }
}

/// The variant of an error, to compare verdicts whose paths differ.
fn kind_of(e: &DataError) -> String {
    format!("{e:?}").split([' ', '(', '{']).next().unwrap_or_default().to_string()
}

#[test]
fn idx_reader_survives_arbitrary_files() {
    let corpus = corpus("idx");
    let (valid_images, valid_labels) = valid_idx_pair();
    let mut tally = Tally::new("idx");
    arbtest::arbtest(|u| {
        let mut images = if u.ratio(1, 4)? { valid_images.clone() } else { arbitrary_idx(u, IMAGES_MAGIC, 3)? };
        let mut labels = if u.ratio(1, 4)? { valid_labels.clone() } else { arbitrary_idx(u, LABELS_MAGIC, 1)? };
        if u.ratio(1, 4)? {
            let seed = u.choose(&corpus)?.1.clone();
            images = mutate(u, seed)?;
        }
        let images_gz = u.arbitrary()?;
        let labels_gz = u.arbitrary()?;
        let name = |base: &str, gz: bool| PathBuf::from(if gz { format!("{base}.gz") } else { base.to_string() });
        if images_gz {
            images = gzip(&images);
            if u.ratio(1, 8)? {
                images = mutate(u, images)?;
            }
        }
        if labels_gz {
            labels = gzip(&labels);
        }
        let (images_name, labels_name) =
            (name("train-images-idx3-ubyte", images_gz), name("train-labels-idx1-ubyte", labels_gz));
        tally.count(check_idx((&images_name, &images), (&labels_name, &labels)));
        Ok(())
    })
    .budget_ms(budget_ms());
}

// ---------------------------------------------------------------- CIFAR target

fn check_cifar(files: &[(PathBuf, Vec<u8>)], kind: DatasetKind) -> bool {
    let what = || format!("{kind:?} files of {:?} bytes", files.iter().map(|f| f.1.len()).collect::<Vec<_>>());
    let total: usize = files.iter().map(|f| f.1.len()).sum();
    let borrowed: Vec<(&Path, &[u8])> = files.iter().map(|(p, b)| (p.as_path(), b.as_slice())).collect();
    bounded(&what, 4 * MIB + 4 * total, || match cifar_split_from_bytes(&borrowed, kind) {
        Ok(split) => {
            read_all_pixels(&split, &what);
            true
        }
        Err(_) => false,
    })
}

fn arbitrary_cifar_file(u: &mut Unstructured, label_bytes: usize) -> ArbResult<Vec<u8>> {
    if u.ratio(1, 3)? {
        return u.arbitrary();
    }
    let mut bytes = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        for _ in 0..label_bytes {
            bytes.push(*u.choose(&[0, 9, 10, 99, 100, 255])?);
        }
        let fill: u8 = u.arbitrary()?;
        bytes.extend(std::iter::repeat_n(fill, 3072));
    }
    mutate(u, bytes)
}

#[test]
fn cifar_corpus_reads_or_fails_cleanly() {
    for (name, bytes) in corpus("cifar") {
        for kind in [DatasetKind::Cifar10, DatasetKind::Cifar100] {
            check_cifar(&[(PathBuf::from(&name), bytes.clone())], kind);
        }
    }
}

#[test]
fn cifar_reader_survives_arbitrary_files() {
    let corpus = corpus("cifar");
    let mut tally = Tally::new("cifar");
    arbtest::arbtest(|u| {
        let kind = *u.choose(&[DatasetKind::Cifar10, DatasetKind::Cifar100, DatasetKind::Mnist])?;
        let label_bytes = if kind == DatasetKind::Cifar100 { 2 } else { 1 };
        let mut files = Vec::new();
        for k in 0..u.int_in_range(0..=3)? {
            let bytes = if u.ratio(1, 4)? {
                let seed = u.choose(&corpus)?.1.clone();
                mutate(u, seed)?
            } else {
                arbitrary_cifar_file(u, label_bytes)?
            };
            files.push((PathBuf::from(format!("data_batch_{k}.bin")), bytes));
        }
        tally.count(check_cifar(&files, kind));
        Ok(())
    })
    .budget_ms(budget_ms());
}

// ---------------------------------------------------------------- image target

/// Decoded bytes a file of `len` bytes may stand for, as `decode_image` allows (see `src/data/split.rs`).
fn decoded_bound(len: usize) -> usize {
    (len * 32 * 1032).clamp(64 << 10, 256 * MIB)
}

fn check_image(name: &str, bytes: &[u8], shape: (usize, usize, usize)) -> bool {
    let what = || format!("image {name} of {} bytes as {shape:?}", bytes.len());
    // The decoder's buffer, a converted copy and the resized output.
    let bound = 8 * MIB + 3 * decoded_bound(bytes.len()) + shape.0 * shape.1 * shape.2;
    bounded(&what, bound, || match decode_image(Path::new(name), bytes, shape) {
        Ok(pixels) => {
            assert_eq!(pixels.len(), shape.0 * shape.1 * shape.2, "{}", what());
            true
        }
        Err(_) => false,
    })
}

/// A small valid PNG or JPEG of arbitrary pixels, as a starting point for mutation.
fn arbitrary_encoded_image(u: &mut Unstructured) -> ArbResult<Vec<u8>> {
    let (w, h): (u32, u32) = (u.int_in_range(1..=12)?, u.int_in_range(1..=12)?);
    let gray = u.arbitrary::<bool>()?;
    let channels = if gray { 1 } else { 3 };
    let pixels: Vec<u8> = (0..(w * h) as usize * channels).map(|_| u.arbitrary()).collect::<ArbResult<_>>()?;
    let color = if gray { image::ExtendedColorType::L8 } else { image::ExtendedColorType::Rgb8 };
    let mut out = Vec::new();
    let written = if u.arbitrary()? {
        image::ImageEncoder::write_image(image::codecs::png::PngEncoder::new(&mut out), &pixels, w, h, color)
    } else {
        let quality = u.int_in_range(1..=100)?;
        let jpeg = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
        image::ImageEncoder::write_image(jpeg, &pixels, w, h, color)
    };
    written.expect("encoding a small image in memory");
    Ok(out)
}

/// Sets the size a PNG's IHDR or a JPEG's SOF claims, keeping the PNG chunk's CRC right so that the decoder gets as
/// far as believing it.
fn claim_size(bytes: &mut [u8], w: u32, h: u32) {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() >= 33 && &bytes[12..16] == b"IHDR" {
        bytes[16..20].copy_from_slice(&w.to_be_bytes());
        bytes[20..24].copy_from_slice(&h.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    } else if let Some(sof) = bytes.windows(2).position(|m| m[0] == 0xff && matches!(m[1], 0xc0..=0xc2)) {
        // SOF: marker, length (2), precision (1), height (2), width (2).
        if bytes.len() >= sof + 9 {
            bytes[sof + 5..sof + 7].copy_from_slice(&(h.min(0xffff) as u16).to_be_bytes());
            bytes[sof + 7..sof + 9].copy_from_slice(&(w.min(0xffff) as u16).to_be_bytes());
        }
    }
}

#[test]
fn image_corpus_decodes_or_fails_cleanly() {
    for (name, bytes) in corpus("image") {
        for shape in [(1, 4, 4), (3, 4, 4), (3, 32, 32)] {
            check_image(&name, &bytes, shape);
        }
    }
    // The path API, through an image folder on disk, gives the same verdict.
    let dir = tempfile::tempdir().expect("tempdir");
    let names: Vec<String> = corpus("image")
        .into_iter()
        .map(|(name, bytes)| {
            for split in ["train", "test"] {
                let class = dir.path().join(split).join("c");
                std::fs::create_dir_all(&class).expect("mkdir");
                std::fs::write(class.join(&name), &bytes).expect("write");
            }
            name
        })
        .collect();
    let options = LoadOptions { image_size: 8, image_channels: 3, ..LoadOptions::default() };
    let d = load_with_env(DatasetKind::ImageFolder, Some(dir.path()), &options, None).expect("listing decodes nothing");
    let mut buf = Vec::new();
    for i in 0..d.train.len() {
        let source = d.train.source_name(i);
        let name = names.iter().find(|n| source.ends_with(n.as_str())).expect("a corpus file");
        let bytes = std::fs::read(&source).expect("read back");
        let from_disk = d.train.read_pixels(i, &mut buf).map(|()| buf.clone());
        let from_memory = decode_image(Path::new(name), &bytes, (3, 8, 8));
        match (from_disk, from_memory) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{name}"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("{name}: from disk {:?}, from memory {:?}", a.map(|p| p.len()), b.map(|p| p.len())),
        }
    }
}

#[test]
fn image_decoder_survives_arbitrary_files() {
    let corpus = corpus("image");
    let mut tally = Tally::new("image");
    arbtest::arbtest(|u| {
        let mut bytes = match u.int_in_range(0..=3)? {
            0 => u.arbitrary()?,
            1 => u.choose(&corpus)?.1.clone(),
            _ => arbitrary_encoded_image(u)?,
        };
        if u.ratio(1, 3)? {
            let big = [0, 1, 65_535, 100_000, 1 << 24, u32::MAX];
            let (w, h) = (*u.choose(&big)?, *u.choose(&big)?);
            claim_size(&mut bytes, w, h);
        }
        let bytes = mutate(u, bytes)?;
        let name = *u.choose(&["x.png", "x.jpg", "x.jpeg", "x.PNG"])?;
        let shape = (*u.choose(&[1, 3])?, u.int_in_range(1..=40)?, u.int_in_range(1..=40)?);
        tally.count(check_image(name, &bytes, shape));
        Ok(())
    })
    .budget_ms(budget_ms());
}

// ---------------------------------------------------------------- what the targets found, and what the issue asks

fn corpus_file(rel: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/corpus").join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Found by the recipe target: `--set` with a key of 30,000 dotted parts aborted the process with a stack overflow
/// (the nested tables the override created were read and dropped recursively). Now a `--set` error.
#[test]
fn regression_a_deep_override_key_is_an_error() {
    let arg = String::from_utf8(corpus_file("recipe/deep-key-30000-parts.set")).expect("utf-8");
    let arg = arg.trim_end().to_string();
    let text = std::fs::read_to_string(root().join("recipes/quickstart.toml")).expect("quickstart recipe");
    match Recipe::from_str(&text, "quickstart.toml", &[arg]) {
        Err(e @ RecipeError::Override { .. }) => {
            assert!(e.to_string().contains("bad key: 30001 dotted parts, at most 16"), "{}", &e.to_string()[..200])
        }
        other => panic!("expected an Override error, got {:?}", other.map(|r| r.name)),
    }
}

/// Found by the image target: a 120-byte PNG whose IHDR (with a valid CRC) claims 8000 x 8000 RGB pixels made the
/// decoder allocate 192 MB before failing, within the `image` crate's default 512 MiB limit. Now refused from the
/// header, against what a file of its length can hold.
#[test]
fn regression_a_png_claiming_more_than_its_file_holds_is_refused_before_decoding() {
    let bytes = corpus_file("image/lying-8000x8000.png");
    let (result, peak) = peak_of(|| decode_image(Path::new("lying.png"), &bytes, (3, 32, 32)));
    match result {
        Err(e @ DataError::CorruptImage { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("lying.png") && msg.contains("claims 8000x8000 pixels"), "{msg}");
        }
        other => panic!("expected CorruptImage, got {:?}", other.map(|p| p.len())),
    }
    assert!(peak < MIB, "allocated {peak} bytes");
}

/// Found by the budget's saturation test: a Wide ResNet widen factor of 2^58 made `64·K` overflow (a panic in debug
/// builds) once training built the model; `burnish check` accepted it. Now the memory budget refuses it.
#[test]
fn regression_a_huge_widen_factor_is_a_budget_error() {
    let text = std::fs::read_to_string(root().join("recipes/quickstart.toml")).expect("quickstart recipe");
    let arg = "model.arch=wrn-28-288230376151711744".to_string();
    assert!(override_seeds().contains(&arg), "the argument is in overrides.txt");
    match Recipe::from_str(&text, "quickstart.toml", &[arg]) {
        Err(e) => {
            assert_eq!(e.key(), Some("model.arch"), "{e}");
            assert!(e.to_string().contains("of memory but"), "{e}");
        }
        Ok(_) => panic!("a widen factor of 2^58 was accepted"),
    }
}

/// The case: a 16-byte IDX header claiming 10⁹ images of 28x28 (784 GB) is an error before anything in
/// proportion to the claim is allocated, raw (its length gives it away) and gzipped (the claim exceeds the memory).
#[test]
fn a_header_claiming_a_billion_images_allocates_nothing_for_them() {
    let labels = idx(LABELS_MAGIC, &[1], &[0]);
    let labels_path = Path::new("train-labels-idx1-ubyte");
    let raw = corpus_file("idx/lying-count-1e9-images.idx3");
    let path = Path::new("train-images-idx3-ubyte");
    let (result, peak) = peak_of(|| idx_split_from_bytes((path, &raw), (labels_path, &labels), 10));
    match result {
        Err(DataError::Truncated { expected, actual, .. }) => {
            assert_eq!((expected, actual), (16 + 784_000_000_000, 16))
        }
        other => panic!("expected Truncated, got {:?}", other.map(|s| s.len())),
    }
    assert!(peak < MIB, "allocated {peak} bytes");

    let gz = corpus_file("idx/lying-count-1e9-images.idx3.gz");
    let path = Path::new("train-images-idx3-ubyte.gz");
    let (result, peak) = peak_of(|| idx_split_from_bytes((path, &gz), (labels_path, &labels), 10));
    match result {
        Err(e @ DataError::TooLarge { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("train-images-idx3-ubyte.gz claims 730.2 GiB of data"), "{msg}");
        }
        // A machine with more than 730 GiB available reads on and finds the stream ends early.
        Err(DataError::Truncated { actual: 16, .. }) => {}
        other => panic!("expected TooLarge, got {:?}", other.map(|s| s.len())),
    }
    assert!(peak < 2 * MIB, "allocated {peak} bytes");
}

/// Data after the claimed body of a gzipped file is counted, not kept: 64 MiB of zeros behind a valid 3-image file
/// (64 KiB compressed) are reported exactly without being held.
#[test]
fn trailing_data_in_a_gzipped_file_is_counted_not_kept() {
    let gz = corpus_file("idx/zeros-after-body.idx3.gz");
    let path = Path::new("train-images-idx3-ubyte.gz");
    let labels = idx(LABELS_MAGIC, &[3], &[0, 1, 2]);
    let (result, peak) =
        peak_of(|| idx_split_from_bytes((path, &gz), (Path::new("train-labels-idx1-ubyte"), &labels), 10));
    match result {
        Err(DataError::TrailingData { expected, actual, .. }) => assert_eq!((expected, actual), (34, 34 + (64 << 20))),
        other => panic!("expected TrailingData, got {:?}", other.map(|s| s.len())),
    }
    assert!(peak < 2 * MIB, "allocated {peak} bytes");
}

/// The refusal above must not catch real images: a flat 1-bit palette PNG with transparency is about as compressed
/// as PNG gets (597 bytes for 2000 x 2000 RGBA, 26,800:1) and decodes.
#[test]
fn a_png_compressed_to_the_formats_limit_still_decodes() {
    let bytes = corpus_file("image/flat-1bit-palette-2000x2000.png");
    let pixels = decode_image(Path::new("flat.png"), &bytes, (3, 8, 8)).expect("a valid PNG decodes");
    assert_eq!(pixels.len(), 3 * 8 * 8);
    assert!(pixels.chunks(3).all(|p| p == [0x10, 0x20, 0x30]), "{pixels:?}");
}
