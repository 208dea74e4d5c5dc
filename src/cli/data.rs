//! `burnish data get NAME` and `burnish data list`: fetch the public data sets and show where they are.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use clap::Subcommand;

use crate::data::download::{self, GetOptions, Source, Status, DOWNLOADABLE, MIRROR_ENV};
use crate::data::{default_data_root, DatasetKind, DATA_ENV, SYSTEM_DATA_DIR};

/// Arguments of `burnish data`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// The `burnish data` commands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download a data set's official files, check their published checksums and unpack them where burnish looks.
    ///
    /// The files go into DIR/NAME: by default $BURNISH_DATA/NAME, or ~/.local/share/burnish/data/NAME (the
    /// per-user data folder, $XDG_DATA_HOME/burnish/data when that is set) when BURNISH_DATA is unset; burnish
    /// looks in both. An interrupted download is resumed by running the command again; a data set that is already
    /// there and verifies is left alone.
    Get(GetArgs),
    /// Show which downloadable data sets are present, where, and whether they match the published checksums.
    List(ListArgs),
}

/// Arguments of `burnish data get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The data set.
    #[arg(value_parser = ["fashion-mnist", "mnist", "cifar10", "cifar100"])]
    pub name: String,
    /// Data root: the files go into DIR/NAME [default: $BURNISH_DATA, else ~/.local/share/burnish/data].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Base address that replaces the official one, with the same file names below it (a local mirror, or a proxy
    /// that rewrites addresses).
    #[arg(long, value_name = "URL", env = MIRROR_ENV)]
    pub mirror: Option<String>,
    /// No progress bar or messages while downloading.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `burnish data list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Also look in this data root (as `burnish data get --dir DIR` would have installed there).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Runs `burnish data`.
pub fn run(args: &DataArgs) -> Result<()> {
    match &args.command {
        DataCommand::Get(get) => run_get(get),
        DataCommand::List(list) => run_list(list),
    }
}

/// `$BURNISH_DATA` when set and non-empty.
fn env_root() -> Option<PathBuf> {
    std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn source_for(name: &str) -> Result<(DatasetKind, Source)> {
    let kind: DatasetKind = name.parse()?;
    let source =
        Source::official(kind).ok_or_else(|| download::DownloadError::NotDownloadable { name: name.into() })?;
    Ok((kind, source))
}

fn run_get(args: &GetArgs) -> Result<()> {
    let (_, mut source) = source_for(&args.name)?;
    if let Some(mirror) = args.mirror.as_deref().filter(|m| !m.is_empty()) {
        download::check_base_url(mirror).map_err(|e| anyhow!("--mirror / {MIRROR_ENV}: {e}"))?;
        source = source.with_base_url(mirror);
    }
    let root = match (&args.dir, env_root()) {
        (Some(dir), _) => dir.clone(),
        (None, Some(env)) => env,
        (None, None) => default_data_root().ok_or_else(|| {
            anyhow!("no home folder to put the default data root in: give --dir DIR or set {DATA_ENV}")
        })?,
    };
    let options = GetOptions { progress: !args.quiet, ..GetOptions::default() };
    let report = download::get(&source, &root, &options)?;
    if report.already_present {
        outln!("{}: already in {}, verified; nothing to do", source.name, report.dir.display())?;
    } else {
        outln!("{}: installed in {} (downloaded {})", source.name, report.dir.display(), report.downloaded.join(", "))?;
    }
    let looked_up = env_root().as_deref() == Some(root.as_path()) || default_data_root().as_deref() == Some(&root);
    if !looked_up {
        outln!(
            "burnish looks there when {DATA_ENV}={} is set, or with `path = \"{}\"` in the recipe's [data]",
            root.display(),
            report.dir.display()
        )?;
    }
    Ok(())
}

/// A place data sets may be in.
struct Root {
    path: PathBuf,
    /// How it is set: `$BURNISH_DATA`, `default`, `system` or `--dir`.
    what: String,
    /// Whether a recipe without `path` looks there.
    looked_up: bool,
}

/// `--dir` (when given), then the data roots in look-up order.
fn roots(extra: Option<&Path>) -> Vec<Root> {
    let mut lookup = Vec::new();
    if let Some(env) = env_root() {
        lookup.push((env, format!("${DATA_ENV}")));
    }
    if let Some(default) = default_data_root() {
        lookup.push((default, "default".to_string()));
    }
    lookup.push((PathBuf::from(SYSTEM_DATA_DIR), "system".to_string()));
    let mut roots: Vec<Root> = Vec::new();
    if let Some(dir) = extra.filter(|d| !lookup.iter().any(|(p, _)| p == d)) {
        roots.push(Root { path: dir.to_path_buf(), what: "--dir, not looked up".into(), looked_up: false });
    }
    for (path, what) in lookup {
        if !roots.iter().any(|r| r.path == path) {
            roots.push(Root { path, what, looked_up: true });
        }
    }
    roots
}

fn run_list(args: &ListArgs) -> Result<()> {
    let roots = roots(args.dir.as_deref());
    let described: Vec<String> = roots.iter().map(|r| format!("{} ({})", r.path.display(), r.what)).collect();
    outln!("data roots: {}", described.join(", "))?;
    if env_root().is_none() {
        outln!("{DATA_ENV} is unset: `burnish data get` installs into the default root")?;
    }
    for kind in DOWNLOADABLE {
        let (_, source) = source_for(kind.name())?;
        let mut lines = Vec::new();
        // A recipe without `path` reads the first folder that exists (see `crate::data::lookup`).
        let mut found = false;
        for root in &roots {
            let dir = source.dir(&root.path);
            let status = download::status(&source, &dir);
            if status != Status::Absent {
                let mark = if root.looked_up && !found { "  <- used" } else { "" };
                found |= root.looked_up;
                lines.push(format!("  {}: {status}{mark}", dir.display()));
            }
            if let Some((have, total)) = download::partial_download(&source, &root.path) {
                let dir_arg = if root.looked_up { String::new() } else { format!(" --dir {}", root.path.display()) };
                lines.push(format!(
                    "  {}: unfinished download, {} of {} MB; `burnish data get {}{dir_arg}` resumes it",
                    source.staging(&root.path).display(),
                    mb(have),
                    mb(total),
                    kind.name()
                ));
            }
        }
        if lines.is_empty() {
            lines.push(format!("  not present; `burnish data get {}` downloads it", kind.name()));
        }
        outln!("{}", kind.name())?;
        for line in lines {
            outln!("{line}")?;
        }
    }
    Ok(())
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}
