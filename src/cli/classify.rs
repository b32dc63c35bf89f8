//! `camtrapd classify PATH...`: one-shot classification of image files,
//! with the same decision the daemon makes, as a table or JSON lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::decision::{LabelScore, Latency, Overrides, RejectReason, Verdict};
use crate::decode::DecodeLimits;
use crate::exit;
use crate::model::Model;
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;
use crate::source::files::FilesSource;
use crate::source::{FrameSource, SourceEvent};

use super::CodedError;

/// Arguments of `camtrapd classify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image files, folders (searched recursively) or glob patterns.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Model bundle folder (default: the config's, else the bundled
    /// EfficientNet-Lite0 ImageNet model).
    #[arg(short, long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Decide as the daemon with this config does: its model, label groups,
    /// score function, calibrated thresholds and publish_labels (--threshold
    /// and --publish still override them).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON object per image (JSON Lines) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Score (0..1) every label must reach to count as a detection; default: the
    /// model's thresholds (0.5 where it has none).
    #[arg(short, long, value_name = "SCORE", allow_hyphen_values = true)]
    pub threshold: Option<f32>,
    /// Only these labels count as detections (repeat the option for several).
    #[arg(short, long = "publish", value_name = "LABEL")]
    pub publish: Vec<String>,
    /// How many best labels to show per image.
    #[arg(short = 'k', long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=100))]
    pub top_k: u16,
}

#[derive(Serialize)]
struct Row<'a> {
    source: &'a str,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    top_k: Vec<LabelScore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<Latency>,
}

pub(crate) fn classify(args: &Args) -> anyhow::Result<()> {
    if let Some(t) = args.threshold {
        crate::decision::check_threshold(t)
            .map_err(|m| CodedError(exit::USAGE, format!("--threshold: {m}")))?;
    }
    let config = args
        .config
        .as_deref()
        .map(crate::config::Config::from_path)
        .transpose()?;
    let model_dir = match (&args.model, &config) {
        (Some(m), _) => m.clone(),
        (None, Some(cfg)) => cfg.model_dir(),
        (None, None) => super::default_model_dir(),
    };
    let model = Model::load(&model_dir)?;
    let mut overrides = match &config {
        Some(cfg) => cfg.overrides(model.manifest())?,
        None => Overrides::default(),
    };
    overrides.top_k = usize::from(args.top_k);
    if let Some(t) = args.threshold {
        // --threshold applies to every label, also those with a threshold of their own.
        let labels: Vec<String> = if overrides.label_groups.is_empty() {
            model.labels().to_vec()
        } else {
            overrides.label_groups.iter().map(|g| g.0.clone()).collect()
        };
        overrides.default_threshold = Some(t);
        overrides.thresholds = labels.into_iter().map(|l| (l, t)).collect();
    }
    if !args.publish.is_empty() {
        overrides.publish_labels = Some(args.publish.clone());
    }
    if let Some(cfg) = &args.config {
        let _ = writeln!(
            std::io::stderr(),
            "deciding as {} does: score {}, thresholds from {}",
            cfg.display(),
            overrides
                .score_fn
                .or(overrides.calibrated.as_ref().map(|c| c.file.score))
                .unwrap_or(crate::decision::ScoreFn::head_default(
                    model.manifest().output.activation
                )),
            overrides
                .calibrated
                .as_ref()
                .map_or("the config".to_string(), |c| c.path.display().to_string())
        );
    }
    let mut pipeline =
        Pipeline::new(model, &overrides, Vec::new(), "classify".into()).map_err(|e| match e {
            crate::pipeline::PipelineError::Policy(crate::decision::PolicyError::Label(e)) => {
                CodedError(exit::USAGE, format!("--publish: {e}"))
            }
            e => CodedError(exit::CONFIG, e.to_string()),
        })?;
    let mut source =
        FilesSource::from_paths(&args.paths, DecodeLimits::default(), Shutdown::new())?;
    // Decode as the daemon does for this model (a daemon with large MQTT
    // snapshots may keep more pixels; see eval/outputs.rs).
    source.set_decode_target(pipeline.decode_target());
    let bar = indicatif::ProgressBar::new(source.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} images, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if !args.json && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        // The table itself shows progress on a terminal.
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let labels: Vec<String> = pipeline.policy().labels().to_vec();
    let mut stdout = std::io::stdout().lock();
    let mut label_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut detections = 0u64;
    let width = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, 32);
    if !args.json {
        writeln!(
            stdout,
            "{:<19} {:>5}  {:<width$} FILE",
            "RESULT", "SCORE", "LABEL"
        )?;
    }
    loop {
        let line = match source.next_event() {
            SourceEvent::End | SourceEvent::Lost(_) => break,
            SourceEvent::Status { .. } | SourceEvent::Still { .. } => continue,
            SourceEvent::Unreadable { source_id, error } => {
                pipeline.unreadable(&source_id, &error);
                if args.json {
                    let row = Row {
                        source: &source_id,
                        result: "rejected",
                        reason: Some(RejectReason::Unreadable.as_str()),
                        error: Some(error.to_string()),
                        label: None,
                        score: None,
                        threshold: None,
                        top_k: Vec::new(),
                        latency_ms: None,
                    };
                    serde_json::to_string(&row)?
                } else {
                    format!(
                        "{:<19} {:>5}  {:<width$} {source_id}  ({error})",
                        "unreadable", "-", "-"
                    )
                }
            }
            SourceEvent::Frame(frame) => {
                let c = pipeline.classify(&frame)?;
                let d = c.decision;
                let top = d.top();
                if let Some(t) = top {
                    *label_counts.entry(labels[t].clone()).or_insert(0) += 1;
                }
                let (result, reason) = match d.verdict {
                    Verdict::Detection => {
                        detections += 1;
                        ("detection", None)
                    }
                    Verdict::Rejected(r) => ("rejected", Some(r.as_str())),
                };
                if args.json {
                    let row = Row {
                        source: &frame.source_id,
                        result,
                        reason,
                        error: None,
                        label: top.map(|t| labels[t].as_str()),
                        score: top.map(|_| d.confidence),
                        threshold: top.map(|_| d.threshold),
                        top_k: d.top_k_scores(&labels),
                        latency_ms: Some(c.latency),
                    };
                    serde_json::to_string(&row)?
                } else {
                    let shown = reason.map_or("detection".to_string(), |r| r.replace('_', " "));
                    let (score, label) = match top {
                        Some(t) => (format!("{:.3}", d.confidence), labels[t].as_str()),
                        None => ("-".to_string(), "-"),
                    };
                    let mut s = format!(
                        "{shown:<19} {score:>5}  {label:<width$} {}",
                        frame.source_id
                    );
                    let rest = d.top_k_scores(&labels);
                    if rest.len() > 1 {
                        let rest: Vec<String> = rest[1..]
                            .iter()
                            .map(|l| format!("{} {:.3}", l.label, l.score))
                            .collect();
                        s.push_str(&format!("  (next: {})", rest.join(", ")));
                    }
                    s
                }
            }
        };
        bar.suspend(|| writeln!(stdout, "{line}"))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    stdout.flush()?;
    drop(stdout);

    let snap = pipeline.stats_mut().snapshot();
    let classified = snap.classified;
    let count = |r: RejectReason| snap.rejected.get(r.as_str()).copied().unwrap_or(0);
    let mut summary = format!(
        "{} images: {detections} detections, {} below threshold, {} label not published, {} unreadable",
        snap.frames_in,
        count(RejectReason::BelowThreshold),
        count(RejectReason::LabelNotPublished),
        count(RejectReason::Unreadable),
    );
    if count(RejectReason::InvalidOutput) > 0 {
        summary.push_str(&format!(
            ", {} invalid model output",
            count(RejectReason::InvalidOutput)
        ));
    }
    let mut counts: Vec<(&String, &usize)> = label_counts.iter().collect();
    counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if !counts.is_empty() {
        let top: Vec<String> = counts
            .iter()
            .take(5)
            .map(|(l, n)| format!("{l} {n}"))
            .collect();
        summary.push_str(&format!("\ntop-1 labels: {}", top.join(", ")));
    }
    if let (Some(p50), Some(p95)) = (snap.inference_ms_p50, snap.inference_ms_p95) {
        summary.push_str(&format!("\ninference: p50 {p50:.1} ms, p95 {p95:.1} ms"));
    }
    if args.json {
        // Like every message on stderr: a closed or full stderr must not panic.
        let _ = writeln!(std::io::stderr(), "{summary}");
    } else {
        writeln!(std::io::stdout().lock(), "\n{summary}")?;
    }
    if classified == 0 {
        return Err(CodedError(exit::DATAERR, "no input image could be decoded".into()).into());
    }
    Ok(())
}
