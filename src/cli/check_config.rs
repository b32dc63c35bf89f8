//! `camtrapd check-config FILE`: everything `run` checks at start-up, without running.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::config::Config;
use crate::shutdown::Shutdown;

pub(crate) fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = Config::from_path(path)?;
    let (pipeline, src, sinks) = super::run::start(&config, &Shutdown::new(), true)?;
    let m = pipeline.model().manifest();
    let policy = pipeline.policy();
    // Decision labels: the model's labels, or the configured label groups.
    let labels = policy.labels();
    let n = labels.len();
    let publishable: Vec<&str> = (0..n)
        .filter(|&i| policy.publishable(i))
        .map(|i| labels[i].as_str())
        .collect();
    // Threshold -> how many publishable labels use it.
    let mut thresholds: BTreeMap<String, usize> = BTreeMap::new();
    for i in (0..n).filter(|&i| policy.publishable(i)) {
        *thresholds
            .entry(crate::text::sig3(policy.threshold(i)))
            .or_insert(0) += 1;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}: OK", path.display())?;
    writeln!(out, "  camera_id:  {}", config.camera_id())?;
    writeln!(out, "  source:     {}", src.describe())?;
    writeln!(
        out,
        "  model:      {} ({} labels) in {}",
        m.name,
        m.labels.len(),
        config.model_dir().display()
    )?;
    writeln!(out, "  input:      {}", m.input_summary())?;
    let o = config.overrides(m)?;
    for (group, members) in &o.label_groups {
        writeln!(out, "  group:      {group} = {}", members.join(" + "))?;
    }
    if publishable.len() == n {
        writeln!(out, "  publishes:  all {n} labels")?;
    } else {
        writeln!(
            out,
            "  publishes:  {} of {n} labels: {}",
            publishable.len(),
            publishable.join(", ")
        )?;
    }
    let t: Vec<String> = thresholds
        .iter()
        .map(|(t, k)| format!("{t} ({k} label{})", if *k == 1 { "" } else { "s" }))
        .collect();
    let sf = policy.score_fn();
    writeln!(
        out,
        "  score:      {sf} ({}{})",
        sf.title(),
        if sf.bounded() {
            ", 0..1"
        } else {
            ", in its own units"
        }
    )?;
    writeln!(
        out,
        "  thresholds: a detection needs a score of at least {} (of the published labels){}",
        t.join(", "),
        policy
            .thresholds_source()
            .map_or(String::new(), |p| format!(
                "; calibrated, from {}",
                p.display()
            ))
    )?;
    for s in &sinks {
        writeln!(out, "  sink:       {s}")?;
    }
    Ok(())
}
