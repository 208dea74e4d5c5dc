//! `burnish data get`: fetches a public data set's official files, checks them against their published sizes and MD5
//! checksums, and installs them where [`crate::data::lookup`] looks (`<root>/<name>/`).
//!
//! Files are downloaded into a staging folder beside the data-set folder, `<root>/.<name>.download/`, as
//! `<file>.part`. A transfer that breaks off (a dropped connection, a short body) keeps its `.part` and is continued
//! with an HTTP `Range` request, a few times within one run and again by the next run; a server that ignores the
//! range gets the file from the start. A finished file is checked against the published size and MD5 and only then
//! renamed to its own name; a mismatch deletes it. Only when every file is verified is anything moved into
//! `<root>/<name>/`, so that folder never holds a half download (look-up takes the first data-set folder that
//! exists, complete or not).
//!
//! - MNIST and Fashion-MNIST: the four gzipped IDX files, installed as they are (the IDX reader gunzips them; this is
//!   also the layout of Debian's `dataset-fashion-mnist`). They are verified against the published checksums
//!   whenever they are looked at.
//! - CIFAR-10 and CIFAR-100: the binary-version archive is verified, unpacked (its `cifar-10-batches-bin/` or
//!   `cifar-100-binary/` folder, which the CIFAR reader looks into) and deleted. An `MD5SUMS` file (the format of
//!   `md5sum -c`) records the checksum of every unpacked file, taken from the verified archive, so that a later run
//!   can verify the installed files without the archive.
//!
//! A data set that is already installed and verifies is left alone: `get` is then a no-op.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::DatasetKind;

/// The environment variable that replaces the official base address (what `--mirror` sets).
pub const MIRROR_ENV: &str = "BURNISH_DATA_MIRROR";

/// The manifest of unpacked archive contents, in a data-set folder.
pub const MANIFEST: &str = "MD5SUMS";

/// The data sets `burnish data get` can download, in the order `burnish data list` shows them.
pub const DOWNLOADABLE: [DatasetKind; 4] =
    [DatasetKind::FashionMnist, DatasetKind::Mnist, DatasetKind::Cifar10, DatasetKind::Cifar100];

/// Whether `name` is a data set `burnish data get` can download.
pub fn is_downloadable(name: &str) -> bool {
    DOWNLOADABLE.iter().any(|k| k.name() == name)
}

/// One file of a data set on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name, below the base address, and the name it is installed (or unpacked) from.
    pub name: String,
    /// Published size in bytes.
    pub size: u64,
    /// Published MD5 checksum, lower-case hex.
    pub md5: String,
}

impl RemoteFile {
    /// A file with its published size and MD5.
    pub fn new(name: &str, size: u64, md5: &str) -> Self {
        RemoteFile { name: name.to_string(), size, md5: md5.to_ascii_lowercase() }
    }
}

/// How the downloaded files become a data-set folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// Every file is installed as it is (the gzipped IDX files).
    Plain,
    /// Every file is a `.tar.gz` archive, unpacked into the folder (CIFAR); see [`MANIFEST`].
    TarGz,
}

/// Where a data set's files are, how to check them and how to install them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The data-set folder's name (the recipe's `dataset`).
    pub name: String,
    /// Address the file names are appended to (ends with `/`).
    pub base_url: String,
    /// The files to download.
    pub files: Vec<RemoteFile>,
    /// How they are installed.
    pub packing: Packing,
    /// For [`Packing::TarGz`]: the unpacked files the reader needs, relative to the data-set folder, to check that
    /// an archive was the right one and to tell whether an installation is complete.
    pub needs: Vec<String>,
}

impl Source {
    /// The official files of `kind`, or `None` for data sets that are not downloaded (`synthetic`, `image-folder`).
    pub fn official(kind: DatasetKind) -> Option<Source> {
        let plain = |base: &str, files: [(&str, u64, &str); 4]| Source {
            name: kind.name().to_string(),
            base_url: base.to_string(),
            files: files.iter().map(|&(n, s, m)| RemoteFile::new(n, s, m)).collect(),
            packing: Packing::Plain,
            needs: Vec::new(),
        };
        let archive = |file: RemoteFile, needs: Vec<String>| Source {
            name: kind.name().to_string(),
            base_url: "https://www.cs.toronto.edu/~kriz/".to_string(),
            files: vec![file],
            packing: Packing::TarGz,
            needs,
        };
        Some(match kind {
            // Address and MD5s: torchvision's `FashionMNIST` (torchvision/datasets/mnist.py), the same as the table
            // in the README of github.com/zalandoresearch/fashion-mnist. Sizes: the published files (Debian's
            // package re-gzips them 24 bytes shorter, without the original file name, so its MD5s differ).
            DatasetKind::FashionMnist => plain(
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                [
                    ("train-images-idx3-ubyte.gz", 26_421_880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                    ("train-labels-idx1-ubyte.gz", 29_515, "25c81989df183df01b3e8a0aad5dffbe"),
                    ("t10k-images-idx3-ubyte.gz", 4_422_102, "bef4ecab320f06d8554ea6380940ec79"),
                    ("t10k-labels-idx1-ubyte.gz", 5_148, "bb300cfdad3c16e7a12a480ee83cd310"),
                ],
            ),
            // MD5s: torchvision's `MNIST.resources` (torchvision/datasets/mnist.py). The address is torchvision's
            // mirror of yann.lecun.com/exdb/mnist/, which now refuses plain downloads; the files are the same.
            // Sizes: those the original site served (TensorFlow's MNIST tutorial logs them).
            DatasetKind::Mnist => plain(
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                [
                    ("train-images-idx3-ubyte.gz", 9_912_422, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                    ("train-labels-idx1-ubyte.gz", 28_881, "d53e105ee54ea40749a09fcbcd1e9432"),
                    ("t10k-images-idx3-ubyte.gz", 1_648_877, "9fb629c4189551a2d022fa330f9573f3"),
                    ("t10k-labels-idx1-ubyte.gz", 4_542, "ec29112dd5afa0611ce80d1b7f02629c"),
                ],
            ),
            // Address and MD5: the CIFAR page, www.cs.toronto.edu/~kriz/cifar.html ("CIFAR-10 binary version
            // (suitable for C programs)"); torchvision only lists the Python version. Size: the published archive.
            DatasetKind::Cifar10 => archive(
                RemoteFile::new("cifar-10-binary.tar.gz", 170_052_171, "c32a1d4ab5d03f1284b67883e8d87530"),
                (1..=5)
                    .map(|k| format!("cifar-10-batches-bin/data_batch_{k}.bin"))
                    .chain(["cifar-10-batches-bin/test_batch.bin".to_string()])
                    .collect(),
            ),
            // Same page, "CIFAR-100 binary version (suitable for C programs)".
            DatasetKind::Cifar100 => archive(
                RemoteFile::new("cifar-100-binary.tar.gz", 168_513_733, "03b5dce01913d631647c71ecec9e9cb8"),
                vec!["cifar-100-binary/train.bin".to_string(), "cifar-100-binary/test.bin".to_string()],
            ),
            DatasetKind::ImageFolder | DatasetKind::Synthetic => return None,
        })
    }

    /// The same files below another base address (`--mirror`); a missing final `/` is added.
    pub fn with_base_url(mut self, base: &str) -> Self {
        self.base_url = if base.ends_with('/') { base.to_string() } else { format!("{base}/") };
        self
    }

    /// The address of `file`.
    pub fn url(&self, file: &RemoteFile) -> String {
        format!("{}{}", self.base_url, file.name)
    }

    /// `<root>/<name>`: the data-set folder.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(&self.name)
    }

    /// `<root>/.<name>.download`: the staging folder of unfinished downloads.
    pub fn staging(&self, root: &Path) -> PathBuf {
        root.join(format!(".{}.download", self.name))
    }
}

/// Checks that `url` is an address `burnish data get` can use as a base: `http://` or `https://` and a host.
pub fn check_base_url(url: &str) -> Result<(), DownloadError> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(DownloadError::BadUrl {
            url: url.to_string(),
            message: "expected an http:// or https:// address with a host, e.g. http://mirror.example/cifar/".into(),
        }),
    }
}

/// Everything that can go wrong while downloading or installing a data set.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// A base address that is not an HTTP(S) URL.
    #[error("{url}: {message}")]
    BadUrl {
        /// The address.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The connection failed or the server did not answer (after every attempt).
    #[error("cannot download {url}: {message}")]
    Http {
        /// The file's address.
        url: String,
        /// The client's message.
        message: String,
    },
    /// The server answered with an HTTP status other than 200 or 206.
    #[error("{url}: the server answered HTTP {status}{}", if *status == 404 { " (not found; with --mirror, the mirror must serve the official file names below its address)" } else { "" })]
    Status {
        /// The file's address.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The transfer broke off (after every attempt); the partial file is kept for the next run.
    #[error("download of {url} stopped at {got} of {size} bytes ({reason}); {} is kept: run the same command again to resume", part.display())]
    Interrupted {
        /// The file's address.
        url: String,
        /// Bytes downloaded so far.
        got: u64,
        /// The published size.
        size: u64,
        /// Why it stopped.
        reason: String,
        /// The partial file.
        part: PathBuf,
    },
    /// The server announced or sent a size other than the published one; nothing was installed.
    #[error("{url} is {actual} bytes but the published file is {expected} bytes: not the official file; nothing was installed")]
    WrongSize {
        /// The file's address.
        url: String,
        /// The published size.
        expected: u64,
        /// What the server announced or sent.
        actual: u64,
    },
    /// The downloaded file's MD5 differs from the published one; it was deleted and nothing was installed.
    #[error("{url}: MD5 {actual} does not match the published {expected}; the download was deleted and nothing was installed (a corrupted transfer, or a mirror serving another file)")]
    Checksum {
        /// The file's address.
        url: String,
        /// The published MD5.
        expected: String,
        /// The MD5 of what arrived.
        actual: String,
    },
    /// A local file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A verified archive that cannot be unpacked or lacks a file the reader needs.
    #[error("{}: {message}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A data set that is not downloaded (`synthetic` is generated, image folders are the user's own).
    #[error("{name:?} cannot be downloaded; `burnish data get` knows {}", DOWNLOADABLE.map(|k| k.name()).join(", "))]
    NotDownloadable {
        /// The name asked for.
        name: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io { path: path.to_path_buf(), source }
}

/// How [`get`] downloads.
#[derive(Debug, Clone)]
pub struct GetOptions {
    /// Attempts per file within one run; each continues where the previous one stopped.
    pub attempts: u32,
    /// Pause before a new attempt.
    pub retry_delay: Duration,
    /// Longest wait for the connection, the response head, and each read of the body.
    pub timeout: Duration,
    /// Draw a progress bar per file (on stderr, only on a terminal) and say what is happening.
    pub progress: bool,
    /// Use the proxy named by `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` (and `NO_PROXY`).
    pub proxy_from_env: bool,
}

impl Default for GetOptions {
    fn default() -> Self {
        GetOptions {
            attempts: 5,
            retry_delay: Duration::from_secs(2),
            timeout: Duration::from_secs(60),
            progress: true,
            proxy_from_env: true,
        }
    }
}

/// What [`get`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetReport {
    /// The data-set folder.
    pub dir: PathBuf,
    /// Whether the data set was already installed and verified (nothing was downloaded or changed).
    pub already_present: bool,
    /// The files that were downloaded in this run.
    pub downloaded: Vec<String>,
}

/// Downloads `source` into `<root>/<name>/` (see the module documentation); a no-op when it is there and verifies.
pub fn get(source: &Source, root: &Path, options: &GetOptions) -> Result<GetReport, DownloadError> {
    let dir = source.dir(root);
    if status(source, &dir) == Status::Verified {
        return Ok(GetReport { dir, already_present: true, downloaded: Vec::new() });
    }
    check_base_url(&source.base_url)?;
    let staging = source.staging(root);
    fs::create_dir_all(&staging).map_err(io_err(&staging))?;
    let result = download_and_install(source, &dir, &staging, options);
    if result.is_err() {
        // A staging folder with nothing in it is no download to resume; `remove_dir` leaves one that has files.
        let _ = fs::remove_dir(&staging);
    }
    result
}

fn download_and_install(
    source: &Source,
    dir: &Path,
    staging: &Path,
    options: &GetOptions,
) -> Result<GetReport, DownloadError> {
    let agent = agent(options);
    let mut downloaded = Vec::new();
    let mut fetched = Vec::new();
    for file in &source.files {
        if source.packing == Packing::Plain && md5_matches(&dir.join(&file.name), file)? {
            continue;
        }
        let done = staging.join(&file.name);
        // A file verified by an earlier run that stopped before installing it needs no new download.
        if !md5_matches(&done, file)? {
            fetch(&agent, &source.url(file), staging, file, options)?;
            downloaded.push(file.name.clone());
        }
        fetched.push(done);
    }
    match source.packing {
        Packing::Plain => {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
            for path in &fetched {
                let name = path.file_name().unwrap_or_default();
                let target = dir.join(name);
                fs::rename(path, &target).map_err(io_err(&target))?;
            }
        }
        Packing::TarGz => {
            for archive in &fetched {
                install_archive(source, archive, staging, dir)?;
            }
        }
    }
    fs::remove_dir_all(staging).map_err(io_err(staging))?;
    Ok(GetReport { dir: dir.to_path_buf(), already_present: false, downloaded })
}

fn agent(options: &GetOptions) -> ureq::Agent {
    let timeout = Some(options.timeout);
    let mut config = ureq::Agent::config_builder()
        .timeout_connect(timeout)
        .timeout_recv_response(timeout)
        .timeout_per_read(timeout)
        // Statuses are answers to interpret (206, 416, 404), not transport errors.
        .http_status_as_error(false)
        .user_agent(concat!("burnish/", env!("CARGO_PKG_VERSION")));
    if !options.proxy_from_env {
        config = config.proxy(None);
    }
    config.build().into()
}

/// Why one attempt at a transfer ended without the whole file.
enum Attempt {
    /// Worth another attempt (connection trouble, a short body); the partial file is kept.
    Retry(String),
    /// Another attempt would fail the same way.
    Fail(DownloadError),
}

/// Downloads `file` into `<staging>/<name>.part`, continuing a partial file, then verifies it and renames it to
/// `<staging>/<name>`.
fn fetch(
    agent: &ureq::Agent,
    url: &str,
    staging: &Path,
    file: &RemoteFile,
    options: &GetOptions,
) -> Result<(), DownloadError> {
    let part = staging.join(format!("{}.part", file.name));
    let bar = progress_bar(options.progress, file);
    say(options, &bar, format!("downloading {url}"));
    let mut reason = String::new();
    for attempt in 0..options.attempts.max(1) {
        if attempt > 0 {
            std::thread::sleep(options.retry_delay);
        }
        match transfer(agent, url, &part, file, &bar) {
            Ok(()) => {
                reason.clear();
                break;
            }
            Err(Attempt::Fail(e)) => {
                bar.abandon();
                return Err(e);
            }
            Err(Attempt::Retry(why)) => {
                say(options, &bar, format!("{url}: {why}; resuming"));
                reason = why;
            }
        }
    }
    bar.finish_and_clear();
    let got = file_len(&part);
    if !reason.is_empty() {
        if got == 0 {
            // Nothing arrived at all: a connection problem, not a partial download.
            let _ = fs::remove_file(&part);
            return Err(DownloadError::Http { url: url.to_string(), message: reason });
        }
        return Err(DownloadError::Interrupted { url: url.to_string(), got, size: file.size, reason, part });
    }
    let actual = md5_of(&part)?;
    if actual != file.md5 {
        fs::remove_file(&part).map_err(io_err(&part))?;
        return Err(DownloadError::Checksum { url: url.to_string(), expected: file.md5.clone(), actual });
    }
    let done = staging.join(&file.name);
    fs::rename(&part, &done).map_err(io_err(&done))
}

/// One request: asks for the rest of `part` (or all of it), appends what arrives, stops at the published size.
fn transfer(agent: &ureq::Agent, url: &str, part: &Path, file: &RemoteFile, bar: &ProgressBar) -> Result<(), Attempt> {
    let mut have = file_len(part);
    if have > file.size {
        // Longer than the published file: not a prefix of it; start over.
        fs::remove_file(part).map_err(|e| Attempt::Fail(io_err(part)(e)))?;
        have = 0;
    }
    bar.set_position(have);
    if have == file.size {
        return Ok(());
    }
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| Attempt::Retry(e.to_string()))?;
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let append = match status {
        206 if have > 0 => {
            let range = header("content-range").unwrap_or_default();
            match parse_content_range(&range) {
                Some((start, total)) if start == have && total.is_none_or(|t| t == file.size) => true,
                Some((_, Some(total))) if total != file.size => {
                    return Err(Attempt::Fail(DownloadError::WrongSize {
                        url: url.to_string(),
                        expected: file.size,
                        actual: total,
                    }))
                }
                // A range other than the one asked for: take the whole file again.
                _ => {
                    fs::remove_file(part).map_err(|e| Attempt::Fail(io_err(part)(e)))?;
                    return Err(Attempt::Retry(format!("the server sent the range {range:?}, not bytes {have}-")));
                }
            }
        }
        200 | 206 => {
            if let Some(len) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
                if len != file.size {
                    return Err(Attempt::Fail(DownloadError::WrongSize {
                        url: url.to_string(),
                        expected: file.size,
                        actual: len,
                    }));
                }
            }
            // The server ignored the range (or there was none): the body is the whole file.
            false
        }
        416 => {
            // The partial file is not a prefix the server can continue: start over.
            fs::remove_file(part).map_err(|e| Attempt::Fail(io_err(part)(e)))?;
            return Err(Attempt::Retry("the server cannot continue the partial file (HTTP 416)".into()));
        }
        s if (500..600).contains(&s) || s == 408 || s == 429 => {
            return Err(Attempt::Retry(format!("the server answered HTTP {s}")))
        }
        s => return Err(Attempt::Fail(DownloadError::Status { url: url.to_string(), status: s })),
    };
    let mut out = if append {
        OpenOptions::new().append(true).open(part)
    } else {
        have = 0;
        bar.set_position(0);
        File::create(part)
    }
    .map_err(|e| Attempt::Fail(io_err(part)(e)))?;
    let mut body = response.into_body().into_with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 1 << 16];
    let result = loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(Attempt::Retry(format!("the connection broke: {e}"))),
        };
        if have + n as u64 > file.size {
            drop(out);
            let _ = fs::remove_file(part);
            return Err(Attempt::Fail(DownloadError::WrongSize {
                url: url.to_string(),
                expected: file.size,
                actual: have + n as u64,
            }));
        }
        out.write_all(&buf[..n]).map_err(|e| Attempt::Fail(io_err(part)(e)))?;
        have += n as u64;
        bar.set_position(have);
    };
    // What arrived is kept, even when the connection broke, so that the next attempt continues after it.
    out.sync_all().map_err(|e| Attempt::Fail(io_err(part)(e)))?;
    result?;
    if have < file.size {
        return Err(Attempt::Retry(format!("the server closed the connection after {have} of {} bytes", file.size)));
    }
    Ok(())
}

/// `bytes START-END/TOTAL` → (START, TOTAL), TOTAL `None` for `*`.
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = if total.trim() == "*" { None } else { Some(total.trim().parse().ok()?) };
    Some((start.trim().parse().ok()?, total))
}

/// A line on stderr (not only on a terminal, so that logs show it too), above the progress bar.
fn say(options: &GetOptions, bar: &ProgressBar, line: String) {
    if options.progress {
        bar.suspend(|| eprintln!("{line}"));
    }
}

fn progress_bar(show: bool, file: &RemoteFile) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(file.size), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} [{elapsed_precise}<{eta_precise}]",
    ) {
        bar.set_style(style);
    }
    bar.set_message(file.name.clone());
    bar
}

/// Unpacks a verified archive in the staging folder, checks that it holds what the reader needs, moves its
/// top-level entries into `dir` (replacing older ones), writes [`MANIFEST`] and deletes the archive.
fn install_archive(source: &Source, archive: &Path, staging: &Path, dir: &Path) -> Result<(), DownloadError> {
    let unpacked = staging.join("unpacked");
    if unpacked.exists() {
        fs::remove_dir_all(&unpacked).map_err(io_err(&unpacked))?;
    }
    fs::create_dir_all(&unpacked).map_err(io_err(&unpacked))?;
    let file = File::open(archive).map_err(io_err(archive))?;
    let archive_err = |message: String| DownloadError::Archive { path: archive.to_path_buf(), message };
    // `unpack` refuses entries that would land outside `unpacked` (absolute paths, `..`).
    tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
        .unpack(&unpacked)
        .map_err(|e| archive_err(format!("cannot unpack: {e}")))?;
    let mut sums = BTreeMap::new();
    hash_tree(&unpacked, &unpacked, &mut sums)?;
    let missing: Vec<&String> = source.needs.iter().filter(|n| !sums.contains_key(n.as_str())).collect();
    if !missing.is_empty() {
        let missing = missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        return Err(archive_err(format!("the archive lacks {missing}")));
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    // The manifest of an older installation no longer describes the folder once its files are replaced.
    let manifest = dir.join(MANIFEST);
    if manifest.exists() {
        fs::remove_file(&manifest).map_err(io_err(&manifest))?;
    }
    for entry in fs::read_dir(&unpacked).map_err(io_err(&unpacked))? {
        let entry = entry.map_err(io_err(&unpacked))?;
        let target = dir.join(entry.file_name());
        if target.is_dir() {
            fs::remove_dir_all(&target).map_err(io_err(&target))?;
        } else if target.exists() {
            fs::remove_file(&target).map_err(io_err(&target))?;
        }
        fs::rename(entry.path(), &target).map_err(io_err(&target))?;
    }
    let mut text = String::new();
    for (name, md5) in &sums {
        text.push_str(&format!("{md5}  {name}\n"));
    }
    // Written last, under a temporary name: its presence says the installation is complete.
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    fs::write(&tmp, text).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &manifest).map_err(io_err(&manifest))?;
    fs::remove_file(archive).map_err(io_err(archive))
}

/// The MD5 of every regular file below `dir`, by path relative to `base` with `/` separators.
fn hash_tree(base: &Path, dir: &Path, sums: &mut BTreeMap<String, String>) -> Result<(), DownloadError> {
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        if meta.is_dir() {
            hash_tree(base, &path, sums)?;
        } else if meta.is_file() {
            let rel = path.strip_prefix(base).unwrap_or(&path);
            let name = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            sums.insert(name, md5_of(&path)?);
        }
    }
    Ok(())
}

/// The MD5 of a file, lower-case hex.
pub fn md5_of(path: &Path) -> Result<String, DownloadError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut ctx = md5::Context::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        ctx.consume(&buf[..n]);
    }
    Ok(format!("{:x}", ctx.finalize()))
}

/// Whether `path` is a file of the published size and MD5 (false when it does not exist).
fn md5_matches(path: &Path, file: &RemoteFile) -> Result<bool, DownloadError> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() == file.size => Ok(md5_of(path)? == file.md5),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

/// What a data-set folder holds, compared with the official files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Every file matches the published checksum (or, for archives, the [`MANIFEST`] of the verified archive).
    Verified,
    /// The files the reader needs are there but cannot be verified (the reason says why); burnish reads them.
    Unverified(String),
    /// Some files the reader needs are missing.
    Incomplete(Vec<String>),
    /// The folder does not exist.
    Absent,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Verified => f.write_str("verified"),
            Status::Unverified(why) => write!(f, "present, not verified: {why}"),
            Status::Incomplete(missing) => write!(f, "incomplete: missing {}", missing.join(", ")),
            Status::Absent => f.write_str("absent"),
        }
    }
}

/// What `dir` holds of `source` (I/O errors while checking count as unverified, with the error as the reason).
pub fn status(source: &Source, dir: &Path) -> Status {
    if !dir.is_dir() {
        return Status::Absent;
    }
    match source.packing {
        Packing::Plain => plain_status(source, dir),
        Packing::TarGz => archive_status(source, dir),
    }
}

fn plain_status(source: &Source, dir: &Path) -> Status {
    let mut missing = Vec::new();
    let mut unverified = Vec::new();
    for file in &source.files {
        let path = dir.join(&file.name);
        let raw = file.name.strip_suffix(".gz").map(|n| dir.join(n));
        if path.is_file() {
            match md5_matches(&path, file) {
                Ok(true) => {}
                Ok(false) => unverified.push(format!("{} is not the published file", file.name)),
                Err(e) => unverified.push(e.to_string()),
            }
        } else if let Some(raw) = raw.filter(|r| r.is_file()) {
            unverified.push(format!("{} is uncompressed", raw.file_name().unwrap_or_default().to_string_lossy()));
        } else {
            missing.push(file.name.clone());
        }
    }
    if !missing.is_empty() {
        Status::Incomplete(missing)
    } else if !unverified.is_empty() {
        Status::Unverified(unverified.join("; "))
    } else {
        Status::Verified
    }
}

fn archive_status(source: &Source, dir: &Path) -> Status {
    // The reader takes the files from the archive's folder or straight from the data-set folder.
    let present = |need: &str| {
        dir.join(need).is_file() || Path::new(need).file_name().is_some_and(|base| dir.join(base).is_file())
    };
    let missing: Vec<String> = source.needs.iter().filter(|n| !present(n)).cloned().collect();
    if !missing.is_empty() {
        return Status::Incomplete(missing);
    }
    let manifest = dir.join(MANIFEST);
    let text = match fs::read_to_string(&manifest) {
        Ok(text) => text,
        Err(_) => return Status::Unverified(format!("no {MANIFEST} (not installed by `burnish data get`)")),
    };
    let mut listed = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((md5, name)) = line.split_once("  ") else {
            return Status::Unverified(format!("{}: unreadable line {line:?}", manifest.display()));
        };
        match md5_of(&dir.join(name)) {
            Ok(actual) if actual == md5 => listed.push(name.to_string()),
            Ok(_) => return Status::Unverified(format!("{name} differs from its checksum in {MANIFEST}")),
            Err(e) => return Status::Unverified(e.to_string()),
        }
    }
    match source.needs.iter().find(|n| !listed.contains(n)) {
        Some(n) => Status::Unverified(format!("{n} is not listed in {MANIFEST}")),
        None => Status::Verified,
    }
}

/// Bytes already downloaded into the staging folder by an unfinished `get` (finished and partial files), and the
/// total of the data set's files; `None` when there is no unfinished download.
pub fn partial_download(source: &Source, root: &Path) -> Option<(u64, u64)> {
    let staging = source.staging(root);
    if !staging.is_dir() {
        return None;
    }
    let total = source.files.iter().map(|f| f.size).sum();
    let have = source
        .files
        .iter()
        .map(|f| file_len(&staging.join(&f.name)).max(file_len(&staging.join(format!("{}.part", f.name)))))
        .sum();
    Some((have, total))
}
