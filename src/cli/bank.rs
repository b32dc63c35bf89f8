//! `camtrapd bank --data DIR --out NEW_BUNDLE`: builds the kNN embedding
//! bank (Sun et al. 2022) from the training images of the labels and writes
//! a copy of the model bundle that holds it (`knn-bank.npy` and a `[knn]`
//! section in `model.toml`). The original bundle is not touched.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::decision::knn::write_npy;
use crate::eval::dataset::Category;
use crate::exit;

use super::calibrate::{Common, Setup};
use super::CodedError;

/// Arguments of `camtrapd bank`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// The new model bundle folder to write (a copy of the model with the bank).
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// Which neighbour's distance is the score (1 = the nearest); about 1% of
    /// the bank's size works well, 5 for a few hundred images.
    #[arg(short, long, default_value_t = 5, value_name = "K")]
    pub k: usize,
}

pub(crate) fn bank(args: &Args) -> anyhow::Result<()> {
    let mut setup = Setup::load(&args.common, true)?;
    if setup.model.embedding_dim().is_none() {
        return Err(CodedError(
            exit::CONFIG,
            format!(
                "model {} has no embedding output (output.embedding in model.toml); the kNN score needs one",
                setup.model.dir().display()
            ),
        )
        .into());
    }
    let all = setup.take_items();
    let has_splits = all.iter().any(|i| !i.split.is_empty());
    let split = args
        .common
        .split
        .clone()
        .or_else(|| has_splits.then(|| "train".to_string()));
    let items: Vec<_> = Setup::split(&all, split.as_deref())?
        .into_iter()
        .filter(|i| i.category == Category::Known)
        .collect();
    if items.len() < args.k.max(1) {
        return Err(CodedError(
            exit::DATAERR,
            format!(
                "{} images of the model's labels in {}{}; the bank needs at least k = {}",
                items.len(),
                args.common.data.display(),
                split
                    .as_deref()
                    .map_or(String::new(), |s| format!(" (split {s})")),
                args.k
            ),
        )
        .into());
    }
    if args.k == 0 {
        return Err(CodedError(exit::USAGE, "--k: must be at least 1".into()).into());
    }
    let (_, outs, _) = setup.outputs(&items)?;
    let rows: Vec<Vec<f32>> = outs.into_iter().map(|o| o.embedding).collect();
    let src = setup.model.dir().to_path_buf();
    if src.canonicalize().ok() == args.out.canonicalize().ok() {
        return Err(CodedError(
            exit::USAGE,
            "--out is the model bundle itself; name a new folder (the original stays as shipped)"
                .into(),
        )
        .into());
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for entry in std::fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if entry.path().is_file() && name != "model.toml" && name != "knn-bank.npy" {
            std::fs::copy(entry.path(), args.out.join(&name))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    let sha = write_npy(&args.out.join("knn-bank.npy"), &rows)?;
    let manifest = std::fs::read_to_string(src.join("model.toml"))?;
    // Drop an existing [knn] table, then append the new one.
    let mut text = String::new();
    let mut skipping = false;
    for line in manifest.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            skipping = t.starts_with("[knn]");
        }
        if !skipping {
            text.push_str(line);
            text.push('\n');
        }
    }
    text.push_str(&format!(
        "\n# kNN embedding bank (written by `camtrapd bank`): {} training images of {}{}\n[knn]\nbank = \"knn-bank.npy\"\nsha256 = \"{sha}\"\nk = {}\n",
        rows.len(),
        args.common.data.display(),
        split.as_deref().map_or(String::new(), |s| format!(", split {s}")),
        args.k
    ));
    std::fs::write(args.out.join("model.toml"), text)?;
    // Load it back: the same checks as the daemon.
    crate::model::Model::load(&args.out)?;
    writeln!(
        std::io::stdout().lock(),
        "wrote {} with a kNN bank of {} embeddings (k = {}); use it with [model] path = {:?} and score = \"knn\" after `camtrapd calibrate --score knn`",
        args.out.display(),
        rows.len(),
        args.k,
        args.out.display().to_string()
    )?;
    setup.finish();
    Ok(())
}
