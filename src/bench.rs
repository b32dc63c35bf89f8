//! Per-stage latency benchmark: decode, resize+normalise, inference and
//! decision, each timed over many frames, with ratios against references
//! measured in the same run:
//!
//! * preprocess vs. the `image` crate's `imageops::resize` (Triangle filter,
//!   the same bilinear kernel) followed by the same normalisation;
//! * inference vs. a reference model bundle (e.g. the fp32 model against the
//!   int8 one), when one is given.

use std::path::Path;
use std::time::Instant;

use image::RgbImage;
use serde::Serialize;

use crate::decision::{Decision, Overrides, Policy};
use crate::decode::{decode_file, DecodeLimits};
use crate::model::{Model, ModelError};
use crate::preprocess::Preprocessor;

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A model bundle failed to load or run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Preprocessing failed.
    #[error(transparent)]
    Preprocess(#[from] crate::preprocess::PreprocessError),
    /// The decision settings do not fit the model.
    #[error(transparent)]
    Label(#[from] crate::decision::PolicyError),
    /// None of the given images could be decoded.
    #[error("none of the benchmark images could be decoded")]
    NoImages,
}

/// Latency summary of one stage, in ms.
#[derive(Debug, Clone, Serialize)]
pub struct StageStats {
    /// Stage name.
    pub stage: String,
    /// Number of samples.
    pub n: usize,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
}

impl StageStats {
    /// Summarises samples (ms).
    pub fn from_samples(stage: &str, mut v: Vec<f64>) -> StageStats {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let at = |p: f64| {
            if n == 0 {
                f64::NAN
            } else {
                v[((p * (n - 1) as f64).round() as usize).min(n - 1)]
            }
        };
        StageStats {
            stage: stage.to_string(),
            n,
            mean_ms: if n == 0 {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / n as f64
            },
            p50_ms: at(0.5),
            p95_ms: at(0.95),
        }
    }
}

/// A reference measured in the same run, and how we compare to it.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// What the reference is.
    pub reference: String,
    /// Reference stage latency.
    pub stats: StageStats,
    /// Reference median / our median (> 1: we are faster).
    pub speedup: f64,
}

/// The benchmark result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Model name.
    pub model: String,
    /// Frames measured.
    pub frames: usize,
    /// Our stages, in pipeline order.
    pub stages: Vec<StageStats>,
    /// References.
    pub comparisons: Vec<Comparison>,
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Measures each stage on `frames` frames cycling through `files` (after
/// `warmup` frames), for the model in `model_dir`, optionally against a
/// reference model bundle.
///
/// # Errors
/// Loading a model or inference failing; decoding failures skip the file.
pub fn run(
    model_dir: &Path,
    reference_model: Option<&Path>,
    files: &[std::path::PathBuf],
    frames: usize,
    warmup: usize,
) -> Result<Report, BenchError> {
    let limits = DecodeLimits::default();
    let mut model = Model::load(model_dir)?;
    let mut pre = Preprocessor::new(model.manifest());
    let policy = Policy::new(
        model.manifest(),
        &Overrides {
            top_k: 5,
            ..Overrides::default()
        },
    )?;
    let mut decision = Decision::default();
    // Decode up to `frames` files (cycling if there are fewer), timing each; keep at
    // most MAX_KEPT decoded images in memory for the later stages.
    const MAX_KEPT: usize = 32;
    let mut images: Vec<RgbImage> = Vec::new();
    let mut decode = Vec::new();
    for f in files
        .iter()
        .cycle()
        .take(frames.min(files.len() * 4).max(1))
    {
        let t = Instant::now();
        if let Ok(img) = decode_file(f, &limits) {
            decode.push(ms_since(t));
            if images.len() < MAX_KEPT.min(files.len()) {
                images.push(img);
            }
        }
    }
    if images.is_empty() {
        return Err(BenchError::NoImages);
    }
    let (mut prep, mut inf, mut dec) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..warmup + frames {
        let img = &images[i % images.len()];
        let t = Instant::now();
        pre.run(img, model.input_mut())?;
        let a = ms_since(t);
        let t = Instant::now();
        model.run()?;
        let b = ms_since(t);
        let t = Instant::now();
        policy.decide(model.scores_output()?, None, &mut decision);
        let c = ms_since(t);
        if i >= warmup {
            prep.push(a);
            inf.push(b);
            dec.push(c);
        }
    }
    let stages = vec![
        StageStats::from_samples("decode", decode),
        StageStats::from_samples("resize+normalise", prep),
        StageStats::from_samples("inference", inf),
        StageStats::from_samples("decision", dec),
    ];
    let mut comparisons = Vec::new();

    // Reference preprocessing: image::imageops (Triangle = bilinear), then the same normalisation loop.
    let m = model.manifest();
    let (w, h) = (m.input.width, m.input.height);
    let (scale, offset) = m.scale_offset();
    let mut buf = vec![0f32; (w * h * 3) as usize];
    let mut refp = Vec::new();
    for i in 0..warmup + frames {
        let img = &images[i % images.len()];
        let t = Instant::now();
        let r = image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle);
        let plane = (w * h) as usize;
        for (j, p) in r.pixels().enumerate() {
            for c in 0..3 {
                buf[c * plane + j] = f32::from(p.0[c]) * scale[c] + offset[c];
            }
        }
        std::hint::black_box(&buf);
        if i >= warmup {
            refp.push(ms_since(t));
        }
    }
    let ours = stages[1].p50_ms;
    let stats = StageStats::from_samples("resize+normalise", refp);
    comparisons.push(Comparison {
        reference: "image::imageops::resize (Triangle) + normalise".into(),
        speedup: stats.p50_ms / ours,
        stats,
    });

    if let Some(dir) = reference_model {
        let mut rm = Model::load(dir)?;
        let mut rpre = Preprocessor::new(rm.manifest());
        let mut rinf = Vec::new();
        for i in 0..warmup + frames {
            rpre.run(&images[i % images.len()], rm.input_mut())?;
            let t = Instant::now();
            rm.run()?;
            if i >= warmup {
                rinf.push(ms_since(t));
            }
        }
        let stats = StageStats::from_samples("inference", rinf);
        comparisons.push(Comparison {
            reference: format!("inference of {} ({})", rm.manifest().name, dir.display()),
            speedup: stats.p50_ms / stages[2].p50_ms,
            stats,
        });
    }
    Ok(Report {
        model: model.manifest().name.clone(),
        frames,
        stages,
        comparisons,
    })
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "model {}, {} frames (single thread)",
            self.model, self.frames
        )?;
        writeln!(
            f,
            "{:<18} {:>8} {:>8} {:>8}",
            "stage", "mean ms", "p50 ms", "p95 ms"
        )?;
        for s in &self.stages {
            writeln!(
                f,
                "{:<18} {:>8.2} {:>8.2} {:>8.2}",
                s.stage, s.mean_ms, s.p50_ms, s.p95_ms
            )?;
        }
        let total: f64 = self.stages.iter().map(|s| s.p50_ms).sum();
        writeln!(
            f,
            "{:<18} {:>8} {:>8.2}   ({:.1} frames/s)",
            "total (p50 sum)",
            "",
            total,
            1e3 / total
        )?;
        for c in &self.comparisons {
            writeln!(
                f,
                "reference: {}: p50 {:.2} ms -> ours is {:.2}x {}",
                c.reference,
                c.stats.p50_ms,
                if c.speedup >= 1.0 {
                    c.speedup
                } else {
                    1.0 / c.speedup
                },
                if c.speedup >= 1.0 { "faster" } else { "slower" }
            )?;
        }
        Ok(())
    }
}
