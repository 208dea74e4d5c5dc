//! `burnish recipes`: the shipped recipes, one line each with its description.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::recipe::Recipe;

/// Arguments of `burnish recipes`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecipesArgs {
    /// Folder to list (default: ./recipes, else the recipes folder of the burnish source tree this binary was built from).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Every `*.toml` under `dir`, sorted by path.
fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry.with_context(|| format!("cannot list {}", dir.display()))?.path();
        if path.is_dir() {
            toml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// Runs `burnish recipes`: prints `path  description` per recipe; a recipe that does not load says why.
pub fn run(args: &RecipesArgs) -> Result<()> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None if Path::new("recipes").is_dir() => PathBuf::from("recipes"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes"),
    };
    let mut files = Vec::new();
    toml_files(&dir, &mut files)?;
    anyhow::ensure!(!files.is_empty(), "{} holds no .toml recipes", dir.display());
    let shown: Vec<String> = files.iter().map(|f| f.strip_prefix(&dir).unwrap_or(f).display().to_string()).collect();
    let width = shown.iter().map(String::len).max().unwrap_or(0);
    for (file, name) in files.iter().zip(&shown) {
        let line = match Recipe::from_file(file, &[]) {
            Ok(r) if r.description.is_empty() => format!("({})", r.name),
            Ok(r) => r.description,
            Err(e) => format!("INVALID: {e}"),
        };
        outln!("{name:width$}  {line}")?;
    }
    Ok(())
}
