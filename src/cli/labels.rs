//! `camtrapd labels [--model DIR]`: the model's labels in output order.

use std::io::Write;
use std::path::Path;

use crate::model::Manifest;

pub(crate) fn labels(model: Option<&Path>, index: bool) -> anyhow::Result<()> {
    let dir = model.map_or_else(super::default_model_dir, Path::to_path_buf);
    let m = Manifest::from_path(&dir.join("model.toml"))?;
    let mut out = std::io::stdout().lock();
    for (i, l) in m.labels.iter().enumerate() {
        if index {
            writeln!(out, "{i}\t{l}")?;
        } else {
            writeln!(out, "{l}")?;
        }
    }
    Ok(())
}
