//! `burnish data get` against a loopback HTTP server started by each test (no other network): small archives and
//! IDX files the tests make, served whole, cut short, with a wrong checksum, or by a server that drops the
//! connection midway; resuming with Range requests; `--mirror`; the no-op when the data is there and verified.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burnish::data::download::{
    get, md5_of, partial_download, status, DownloadError, GetOptions, Packing, RemoteFile, Source, Status, MANIFEST,
};
use burnish::data::{find_dataset_dir_with, load_with_env, DataError, DatasetKind, LoadOptions};

// ---------------------------------------------------------------- a loopback HTTP server

/// How the server answers one connection.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// The file, or the requested range of it (206 with Content-Range).
    Whole,
    /// Announces the full length (or range) but closes the connection after this many body bytes.
    DropAfter(usize),
    /// No Content-Length: sends this many body bytes and closes, so the client cannot tell it was cut short.
    TruncateAfter(usize),
    /// Always the whole file with 200, whatever Range asks for.
    IgnoreRange,
}

/// One request the server saw.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    path: String,
    range: Option<String>,
}

struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// Serves `files` (by path, e.g. `/m/a.gz`) on 127.0.0.1; connection k gets `script[k]` (the last entry
    /// repeats). It stops by itself after 64 connections or 60 seconds.
    fn start(files: HashMap<String, Vec<u8>>, script: Vec<Answer>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut served = 0;
            while served < 64 && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let answer = script[served.min(script.len() - 1)];
                        served += 1;
                        let _ = handle(stream, &files, answer, &log);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        });
        Server { base, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }
}

fn handle(
    mut stream: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    answer: Answer,
    log: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    log.lock().expect("log").push(Seen { path: path.clone(), range: range.clone() });
    let Some(body) = files.get(&path) else {
        return stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    };
    let start = range
        .as_deref()
        .filter(|_| answer != Answer::IgnoreRange)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|s| s.parse::<usize>().ok());
    let (status, part) = match start {
        Some(s) if s >= body.len() => {
            let head = format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", body.len());
            return stream.write_all(head.as_bytes());
        }
        Some(s) => {
            (format!("206 Partial Content\r\nContent-Range: bytes {s}-{}/{}", body.len() - 1, body.len()), &body[s..])
        }
        None => ("200 OK".to_string(), &body[..]),
    };
    let (length, send) = match answer {
        Answer::Whole | Answer::IgnoreRange => (Some(part.len()), part.len()),
        Answer::DropAfter(n) => (Some(part.len()), n.min(part.len())),
        Answer::TruncateAfter(n) => (None, n.min(part.len())),
    };
    let length = length.map_or(String::new(), |l| format!("Content-Length: {l}\r\n"));
    stream.write_all(format!("HTTP/1.1 {status}\r\n{length}Connection: close\r\n\r\n").as_bytes())?;
    stream.write_all(&part[..send])?;
    stream.flush()?;
    // Closing without sending the rest is the dropped connection.
    stream.shutdown(std::net::Shutdown::Both)
}

// ---------------------------------------------------------------- test data

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

/// The four gzipped IDX files of a tiny MNIST-like set (3 training and 2 test images of 4x4), by name. The training
/// images are made of varied bytes so that their gzip stream is a few hundred bytes long (room to cut it midway).
fn idx_files() -> Vec<(String, Vec<u8>)> {
    let noise: Vec<u8> = (0..3 * 16).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    vec![
        ("train-images-idx3-ubyte.gz".into(), gzip(&idx(0x803, &[3, 4, 4], &noise))),
        ("train-labels-idx1-ubyte.gz".into(), gzip(&idx(0x801, &[3], &[1, 2, 3]))),
        ("t10k-images-idx3-ubyte.gz".into(), gzip(&idx(0x803, &[2, 4, 4], &[7; 32]))),
        ("t10k-labels-idx1-ubyte.gz".into(), gzip(&idx(0x801, &[2], &[4, 5]))),
    ]
}

fn md5_hex(bytes: &[u8]) -> String {
    format!("{:x}", md5::compute(bytes))
}

/// A source named `mnist` for `files`, below `base` + `/m/`.
fn plain_source(base: &str, files: &[(String, Vec<u8>)]) -> Source {
    Source {
        name: "mnist".into(),
        base_url: format!("{base}/m/"),
        files: files.iter().map(|(n, b)| RemoteFile::new(n, b.len() as u64, &md5_hex(b))).collect(),
        packing: Packing::Plain,
        needs: Vec::new(),
    }
}

fn served(prefix: &str, files: &[(String, Vec<u8>)]) -> HashMap<String, Vec<u8>> {
    files.iter().map(|(n, b)| (format!("{prefix}{n}"), b.clone())).collect()
}

fn quick() -> GetOptions {
    GetOptions {
        attempts: 1,
        retry_delay: Duration::ZERO,
        timeout: Duration::from_secs(10),
        progress: false,
        proxy_from_env: false,
    }
}

/// One CIFAR-10 binary record: label, then 3 planes of 32x32.
fn cifar_record(label: u8, fill: u8) -> Vec<u8> {
    let mut r = vec![label];
    r.extend(std::iter::repeat_n(fill, 3072));
    r
}

/// A `cifar-10-binary.tar.gz` like the official one (one image per batch), minus the files named in `leave_out`.
fn cifar_archive(leave_out: &[&str]) -> Vec<u8> {
    let mut entries: Vec<(String, Vec<u8>)> =
        (1..=5u8).map(|k| (format!("cifar-10-batches-bin/data_batch_{k}.bin"), cifar_record(k, 10 * k))).collect();
    entries.push(("cifar-10-batches-bin/test_batch.bin".into(), cifar_record(9, 200)));
    entries.push(("cifar-10-batches-bin/batches.meta.txt".into(), b"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n".to_vec()));
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in entries.iter().filter(|(n, _)| !leave_out.iter().any(|l| n.ends_with(l))) {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, data.as_slice()).expect("tar entry");
    }
    gzip(&builder.into_inner().expect("tar"))
}

/// The official CIFAR-10 source with the test's archive in place of the real one, below `base` + `/c/`.
fn cifar_source(base: &str, archive: &[u8]) -> Source {
    let mut source =
        Source::official(DatasetKind::Cifar10).expect("cifar10 is downloadable").with_base_url(&format!("{base}/c"));
    source.files[0] = RemoteFile::new("cifar-10-binary.tar.gz", archive.len() as u64, &md5_hex(archive));
    source
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.expect("entry").file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

// ---------------------------------------------------------------- tests

#[test]
fn md5_of_a_file_is_the_known_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("abc");
    std::fs::write(&path, b"abc").expect("write");
    // RFC 1321's test vector.
    assert_eq!(md5_of(&path).expect("md5"), "900150983cd24fb0d6963f7d28e17f72");
}

#[test]
fn official_sources_and_mirrors_keep_the_file_names() {
    let cifar = Source::official(DatasetKind::Cifar10).expect("cifar10");
    assert_eq!(cifar.url(&cifar.files[0]), "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz");
    assert_eq!(cifar.files[0].md5, "c32a1d4ab5d03f1284b67883e8d87530");
    let fashion = Source::official(DatasetKind::FashionMnist).expect("fashion-mnist");
    assert_eq!(fashion.files.len(), 4);
    assert_eq!(fashion.files[0].md5, "8d4fb7e6c68d591d4c3dfef9ec88bf0d");
    let mirrored = Source::official(DatasetKind::Mnist).expect("mnist").with_base_url("http://mirror.local/data");
    assert_eq!(mirrored.url(&mirrored.files[1]), "http://mirror.local/data/train-labels-idx1-ubyte.gz");
    assert!(Source::official(DatasetKind::Synthetic).is_none());
    assert!(Source::official(DatasetKind::ImageFolder).is_none());
}

#[test]
fn get_installs_where_lookup_looks_and_is_then_a_noop() {
    let files = idx_files();
    let server = Server::start(served("/m/", &files), vec![Answer::Whole]);
    let root = tempfile::tempdir().expect("tempdir");
    let source = plain_source(&server.base, &files);

    let report = get(&source, root.path(), &quick()).expect("download");
    assert!(!report.already_present);
    assert_eq!(report.dir, root.path().join("mnist"));
    assert_eq!(report.downloaded, files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
    for (name, bytes) in &files {
        assert_eq!(&std::fs::read(root.path().join("mnist").join(name)).expect("installed"), bytes, "{name}");
    }
    assert_eq!(listing(root.path()), vec!["mnist"], "the staging folder is gone");
    assert_eq!(status(&source, &report.dir), Status::Verified);
    // The reader finds and reads it under the data root, as under $BURNISH_DATA.
    let d =
        load_with_env(DatasetKind::Mnist, None, &LoadOptions::default(), Some(root.path().as_os_str())).expect("loads");
    assert_eq!((d.train.len(), d.test.len()), (3, 2));
    assert_eq!(d.train.labels(), &[1, 2, 3]);

    // Already there and verified: nothing is requested.
    let before = server.seen().len();
    assert_eq!(before, 4);
    let again = get(&source, root.path(), &quick()).expect("no-op");
    assert!(again.already_present);
    assert!(again.downloaded.is_empty());
    assert_eq!(server.seen().len(), before);

    // One installed file damaged: only that one is fetched again.
    let damaged = root.path().join("mnist").join(&files[2].0);
    std::fs::write(&damaged, b"not the published file").expect("damage");
    assert!(matches!(status(&source, &report.dir), Status::Unverified(_)));
    let repair = get(&source, root.path(), &quick()).expect("repair");
    assert_eq!(repair.downloaded, vec![files[2].0.clone()]);
    assert_eq!(std::fs::read(&damaged).expect("read"), files[2].1);
    assert_eq!(server.seen().len(), before + 1);
}

#[test]
fn a_connection_dropped_midway_is_resumed_with_a_range_request() {
    let files = idx_files();
    let (name, bytes) = files[0].clone();
    let half = bytes.len() / 2;
    let server = Server::start(served("/m/", &files), vec![Answer::DropAfter(half), Answer::Whole]);
    let root = tempfile::tempdir().expect("tempdir");
    let source = plain_source(&server.base, &files);
    let options = GetOptions { attempts: 3, ..quick() };
    get(&source, root.path(), &options).expect("the second attempt finishes the file");
    let seen = server.seen();
    assert_eq!(seen[0], Seen { path: format!("/m/{name}"), range: None });
    assert_eq!(seen[1], Seen { path: format!("/m/{name}"), range: Some(format!("bytes={half}-")) });
    assert_eq!(seen.len(), 5, "one extra request: {seen:?}");
    assert_eq!(std::fs::read(root.path().join("mnist").join(&name)).expect("installed"), bytes);
}

#[test]
fn a_transfer_that_stops_short_is_kept_and_resumed_by_the_next_run() {
    let files = idx_files();
    let (name, bytes) = files[0].clone();
    let cut = bytes.len() / 3;
    let root = tempfile::tempdir().expect("tempdir");

    // A server that always sends a third and closes (without Content-Length the client cannot tell).
    let short = Server::start(served("/m/", &files), vec![Answer::TruncateAfter(cut)]);
    let options = GetOptions { attempts: 2, ..quick() };
    let err = get(&plain_source(&short.base, &files), root.path(), &options).expect_err("cannot finish");
    match &err {
        DownloadError::Interrupted { got, size, part, url, .. } => {
            assert_eq!((*got, *size), (cut as u64 * 2, bytes.len() as u64), "two attempts, a third each");
            assert_eq!(std::fs::read(part).expect("partial file").as_slice(), &bytes[..2 * cut]);
            assert!(url.ends_with(&format!("/m/{name}")), "{url}");
        }
        other => panic!("expected Interrupted, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("run the same command again to resume"), "{msg}");
    assert_eq!(short.seen()[1].range, Some(format!("bytes={cut}-")), "the second attempt continued the first");
    // Nothing under the data set's own name, so look-up does not take a half download for the data set.
    assert!(!root.path().join("mnist").exists());
    let source = plain_source(&short.base, &files);
    assert_eq!(
        partial_download(&source, root.path()),
        Some((2 * cut as u64, files.iter().map(|(_, b)| b.len() as u64).sum()))
    );

    // The next run, against a server that works, asks only for the rest.
    let good = Server::start(served("/m/", &files), vec![Answer::Whole]);
    let report = get(&plain_source(&good.base, &files), root.path(), &quick()).expect("resumed");
    assert_eq!(good.seen()[0], Seen { path: format!("/m/{name}"), range: Some(format!("bytes={}-", 2 * cut)) });
    assert_eq!(std::fs::read(report.dir.join(&name)).expect("installed"), bytes);
    assert_eq!(partial_download(&source, root.path()), None);
}

#[test]
fn a_server_ignoring_the_range_sends_the_file_again_from_the_start() {
    let files = idx_files();
    let (name, bytes) = files[0].clone();
    let server = Server::start(served("/m/", &files), vec![Answer::DropAfter(10), Answer::IgnoreRange]);
    let root = tempfile::tempdir().expect("tempdir");
    let options = GetOptions { attempts: 2, ..quick() };
    let report = get(&plain_source(&server.base, &files), root.path(), &options).expect("downloaded");
    assert_eq!(server.seen()[1].range, Some("bytes=10-".into()));
    assert_eq!(std::fs::read(report.dir.join(&name)).expect("installed"), bytes, "not the prefix twice");
}

#[test]
fn a_wrong_checksum_is_a_clear_error_and_installs_nothing() {
    let files = idx_files();
    let mut wrong = files.clone();
    let last = wrong[1].1.len() - 1;
    wrong[1].1[last] ^= 0xff; // same size, other bytes
    let server = Server::start(served("/m/", &wrong), vec![Answer::Whole]);
    let root = tempfile::tempdir().expect("tempdir");
    let source = plain_source(&server.base, &files);
    let err = get(&source, root.path(), &quick()).expect_err("checksum mismatch");
    match &err {
        DownloadError::Checksum { url, expected, actual } => {
            assert_eq!(url, &format!("{}/m/{}", server.base, files[1].0));
            assert_eq!(expected, &md5_hex(&files[1].1));
            assert_eq!(actual, &md5_hex(&wrong[1].1));
        }
        other => panic!("expected Checksum, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("does not match the published") && msg.contains("nothing was installed"), "{msg}");
    assert!(!root.path().join("mnist").exists(), "no data-set folder");
    let staging = root.path().join(".mnist.download");
    assert!(
        !listing(&staging).iter().any(|n| n.starts_with(&files[1].0)),
        "the bad file is deleted: {:?}",
        listing(&staging)
    );

    // A file of another size is refused from its Content-Length, before its body is read.
    let mut longer = files.clone();
    longer[0].1.push(0);
    let server = Server::start(served("/m/", &longer), vec![Answer::Whole]);
    let root = tempfile::tempdir().expect("tempdir");
    let err = get(&plain_source(&server.base, &files), root.path(), &quick()).expect_err("wrong size");
    assert!(matches!(err, DownloadError::WrongSize { expected, actual, .. } if actual == expected + 1), "{err}");
    assert!(listing(root.path()).is_empty(), "nothing left behind: {:?}", listing(root.path()));

    // A missing file is the server's 404, named with its address.
    let server = Server::start(HashMap::new(), vec![Answer::Whole]);
    let root = tempfile::tempdir().expect("tempdir");
    let err = get(&plain_source(&server.base, &files), root.path(), &quick()).expect_err("404");
    assert!(matches!(err, DownloadError::Status { status: 404, .. }), "{err}");
    assert!(err.to_string().contains(&format!("{}/m/{}", server.base, files[0].0)), "{err}");
}

#[test]
fn a_cifar_archive_is_verified_unpacked_and_recorded_in_a_manifest() {
    let archive = cifar_archive(&[]);
    let server =
        Server::start(HashMap::from([("/c/cifar-10-binary.tar.gz".to_string(), archive.clone())]), vec![Answer::Whole]);
    let root = tempfile::tempdir().expect("tempdir");
    let source = cifar_source(&server.base, &archive);
    let report = get(&source, root.path(), &quick()).expect("installed");
    assert_eq!(report.dir, root.path().join("cifar10"));
    assert_eq!(listing(root.path()), vec!["cifar10"]);
    assert_eq!(listing(&report.dir), vec!["MD5SUMS", "cifar-10-batches-bin"], "the archive itself is deleted");
    let manifest = std::fs::read_to_string(report.dir.join(MANIFEST)).expect("manifest");
    let batch1 = cifar_record(1, 10);
    assert!(manifest.contains(&format!("{}  cifar-10-batches-bin/data_batch_1.bin\n", md5_hex(&batch1))), "{manifest}");
    assert_eq!(manifest.lines().count(), 7);
    assert_eq!(status(&source, &report.dir), Status::Verified);

    // burnish reads it where it was installed.
    let d = load_with_env(DatasetKind::Cifar10, None, &LoadOptions::default(), Some(root.path().as_os_str()))
        .expect("loads");
    assert_eq!(d.train.labels(), &[1, 2, 3, 4, 5]);
    assert_eq!(d.test.labels(), &[9]);
    assert_eq!(d.class_names[0], "a");

    // Again: a no-op. With a file changed: re-downloaded and reinstalled.
    assert!(get(&source, root.path(), &quick()).expect("no-op").already_present);
    assert_eq!(server.seen().len(), 1);
    let test_batch = report.dir.join("cifar-10-batches-bin/test_batch.bin");
    std::fs::write(&test_batch, cifar_record(0, 0)).expect("tamper");
    assert_eq!(
        status(&source, &report.dir),
        Status::Unverified(format!("cifar-10-batches-bin/test_batch.bin differs from its checksum in {MANIFEST}"))
    );
    let again = get(&source, root.path(), &quick()).expect("reinstalled");
    assert!(!again.already_present);
    assert_eq!(std::fs::read(&test_batch).expect("read"), cifar_record(9, 200));
    assert_eq!(server.seen().len(), 2);
}

#[test]
fn an_archive_without_the_files_the_reader_needs_is_refused() {
    let archive = cifar_archive(&["test_batch.bin"]);
    let server =
        Server::start(HashMap::from([("/c/cifar-10-binary.tar.gz".to_string(), archive.clone())]), vec![Answer::Whole]);
    let root = tempfile::tempdir().expect("tempdir");
    let err = get(&cifar_source(&server.base, &archive), root.path(), &quick()).expect_err("incomplete archive");
    assert!(matches!(err, DownloadError::Archive { .. }), "{err}");
    assert!(err.to_string().contains("lacks cifar-10-batches-bin/test_batch.bin"), "{err}");
    assert!(!root.path().join("cifar10").exists());
}

#[test]
fn not_found_names_the_command_that_fetches_the_data_set() {
    let root = tempfile::tempdir().expect("tempdir");
    let default = root.path().join("default-root");
    let err = find_dataset_dir_with("cifar10", None, None, Some(&default)).expect_err("absent");
    assert!(matches!(err, DataError::NotFound { .. }));
    let msg = err.to_string();
    assert!(msg.contains(&default.join("cifar10").display().to_string()), "the default root is looked in: {msg}");
    assert!(
        msg.ends_with(&format!("`burnish data get cifar10` downloads it into {}", default.join("cifar10").display())),
        "{msg}"
    );
    // With $BURNISH_DATA set, that is where it would go.
    let env = root.path().join("env");
    let msg =
        find_dataset_dir_with("mnist", None, Some(env.as_os_str()), Some(&default)).expect_err("absent").to_string();
    assert!(
        msg.ends_with(&format!("`burnish data get mnist` downloads it into {}", env.join("mnist").display())),
        "{msg}"
    );
    // Data sets that cannot be downloaded get no such advice.
    let msg = find_dataset_dir_with("image-folder", None, None, Some(&default)).expect_err("absent").to_string();
    assert!(!msg.contains("burnish data get"), "{msg}");
}

// ---------------------------------------------------------------- the command line

/// Runs `burnish` with a clean environment for data look-up: HOME (and so the default root) inside `home`, no
/// proxy, `BURNISH_DATA` and the mirror variable only as given.
fn burnish(args: &[&str], home: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_burnish"));
    cmd.args(args).current_dir(home).env("HOME", home);
    for var in ["XDG_DATA_HOME", "BURNISH_DATA", "BURNISH_DATA_MIRROR", "http_proxy", "https_proxy", "all_proxy"] {
        cmd.env_remove(var).env_remove(var.to_uppercase());
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn the_cli_honours_the_mirror_and_checks_the_published_sizes() {
    // The mirror serves the official names, but not the official files: the first one is refused by its size.
    let files = idx_files();
    let server = Server::start(served("/mirror/", &files), vec![Answer::Whole]);
    let home = tempfile::tempdir().expect("tempdir");
    let root = home.path().join("data");
    let mirror = format!("{}/mirror", server.base);
    let root_arg = root.to_str().expect("utf-8");
    let out = burnish(&["data", "get", "mnist", "--dir", root_arg, "--mirror", &mirror, "--quiet"], home.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains(&format!("{mirror}/train-images-idx3-ubyte.gz is {} bytes", files[0].1.len())), "{msg}");
    assert!(msg.contains("9912422"), "the published size is named: {msg}");
    assert!(!root.join("mnist").exists());
    assert_eq!(server.seen()[0], Seen { path: "/mirror/train-images-idx3-ubyte.gz".into(), range: None });

    // BURNISH_DATA_MIRROR does the same; BURNISH_DATA is the default root.
    let out = burnish(
        &["data", "get", "fashion-mnist", "--quiet"],
        home.path(),
        &[("BURNISH_DATA_MIRROR", mirror.as_str()), ("BURNISH_DATA", root_arg)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(server.seen()[1], Seen { path: "/mirror/train-images-idx3-ubyte.gz".into(), range: None });
    assert!(text(&out).contains("26421880"), "{}", text(&out));
    assert!(!root.join("fashion-mnist").exists());

    // Bad input is named, never a panic.
    let out = burnish(&["data", "get", "mnist", "--mirror", "ftp://x/", "--dir", root_arg], home.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("ftp://x/") && !text(&out).contains("panicked"), "{}", text(&out));
    let out = burnish(&["data", "get", "synthetic"], home.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "clap lists the data sets: {}", text(&out));
    assert!(text(&out).contains("cifar100"), "{}", text(&out));
}

#[test]
fn data_list_shows_what_is_where_and_train_says_how_to_get_what_is_missing() {
    let home = tempfile::tempdir().expect("tempdir");
    let default = home.path().join(".local/share/burnish/data");
    // An MNIST copy made by hand in the default root: present, but not the published files.
    for (name, bytes) in idx_files() {
        let path = default.join("mnist").join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }
    // An unfinished CIFAR-100 download under $BURNISH_DATA.
    let env_root = home.path().join("env");
    std::fs::create_dir_all(env_root.join(".cifar100.download")).expect("mkdir");
    std::fs::write(env_root.join(".cifar100.download/cifar-100-binary.tar.gz.part"), vec![0u8; 2_000_000])
        .expect("write");
    let env = [("BURNISH_DATA", env_root.to_str().expect("utf-8"))];
    let out = burnish(&["data", "list"], home.path(), &env);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let roots = format!(
        "data roots: {} ($BURNISH_DATA), {} (default), /usr/share/datasets (system)",
        env_root.display(),
        default.display()
    );
    assert_eq!(stdout.lines().next(), Some(roots.as_str()), "{stdout}");
    let block = |name: &str| -> Vec<String> {
        let lines: Vec<&str> = stdout.lines().collect();
        let at = lines.iter().position(|l| *l == name).unwrap_or_else(|| panic!("{name} missing: {stdout}"));
        lines[at + 1..].iter().take_while(|l| l.starts_with("  ")).map(|l| l.to_string()).collect()
    };
    assert_eq!(
        block("mnist"),
        vec![format!(
            "  {}: present, not verified: train-images-idx3-ubyte.gz is not the published file; \
             train-labels-idx1-ubyte.gz is not the published file; t10k-images-idx3-ubyte.gz is not the published \
             file; t10k-labels-idx1-ubyte.gz is not the published file  <- used",
            default.join("mnist").display()
        )]
    );
    assert_eq!(
        block("cifar100"),
        vec![format!(
            "  {}: unfinished download, 2.0 of 168.5 MB; `burnish data get cifar100` resumes it",
            env_root.join(".cifar100.download").display()
        )]
    );
    assert_eq!(block("cifar10"), vec!["  not present; `burnish data get cifar10` downloads it".to_string()]);

    // The first try, on a machine without CIFAR-10: the error names the command that fetches it.
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/cifar10/fixmatch-250.toml");
    let out = burnish(&["train", recipe.to_str().expect("utf-8"), "--quiet"], home.path(), &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains(&format!("`burnish data get cifar10` downloads it into {}", env_root.join("cifar10").display())),
        "{msg}"
    );
    assert!(msg.contains(&default.join("cifar10").display().to_string()), "{msg}");
}
