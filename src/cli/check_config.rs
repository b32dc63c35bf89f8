//! `camtrapd check-config FILE`: everything `run` checks at start-up, without running.

use std::path::Path;

use crate::config::Config;
use crate::shutdown::Shutdown;

pub(crate) fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = Config::from_path(path)?;
    let (pipeline, src) = super::run::start(&config, &Shutdown::new())?;
    let m = pipeline.model().manifest();
    println!("{}: OK", path.display());
    println!("  camera_id: {}", config.camera_id());
    println!("  source:    {}", src.describe());
    println!(
        "  model:     {} ({} labels) in {}",
        m.name,
        m.labels.len(),
        config.model_dir().display()
    );
    let policy = pipeline.policy();
    let publishable = (0..m.labels.len())
        .filter(|&i| policy.publishable(i))
        .count();
    println!("  publish:   {publishable} of {} labels", m.labels.len());
    let mut thresholds: Vec<f32> = (0..m.labels.len()).map(|i| policy.threshold(i)).collect();
    thresholds.sort_by(f32::total_cmp);
    thresholds.dedup();
    println!(
        "  thresholds: {}",
        thresholds
            .iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  sinks:     {}", config.sinks.len());
    Ok(())
}
