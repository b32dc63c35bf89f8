//! Benchmark of the frame path, never a timed test: per-stage latency
//! (p50/p95 over many frames) of JPEG decode at 640×480 and 1280×720 (made
//! by resizing a real frame and encoding it at quality 90, 4:2:2 as UVC
//! cameras send MJPEG), YUYV 4:2:2 → RGB
//! conversion at the same sizes (a USB camera's uncompressed format), the motion
//! gate, resize + normalise, inference, decision and the sink's
//! serialisation; end-to-end frames per second on one thread and with one
//! pipeline per core; peak RSS; time from start to the first decision; the
//! pipeline overhead (everything but inference) as a share of inference;
//! and ratios against references measured in the same run:
//!
//! * decode (cropped to what the model reads) vs. the whole frame with
//!   libjpeg-turbo and vs. the `image` crate's zune-jpeg;
//! * preprocess vs. the `image` crate's `imageops::resize` (Triangle filter,
//!   the same bilinear kernel) followed by the same normalisation;
//! * inference vs. a reference model bundle (e.g. the fp32 model against the
//!   int8 one), when one is given.
//!
//! [`insn`] is the instruction-count mode (`--insn-markers`), for
//! `scripts/arm-cost.sh`: cost per stage on ARM cores under qemu.
//!
//! onnxruntime is compared by `scripts/bench_onnxruntime.py`, which runs
//! this benchmark with `--json --dump-input` and feeds onnxruntime the same
//! preprocessed tensor. The machine this runs on is usually shared: compare
//! ratios from one run, not times from different runs.

pub mod insn;

use std::path::PathBuf;
use std::time::Instant;

use image::RgbImage;
use serde::Serialize;

use crate::decision::{Decision, Detection, Latency, ModelRef, Overrides, Policy};
use crate::decode::{decode_bytes_for, decode_bytes_into, decode_file, DecodeLimits, DecodeTarget};
use crate::model::{Model, ModelError};
use crate::motion::{MotionConfig, MotionGate};
use crate::preprocess::Preprocessor;
use crate::source::v4l2::yuyv::yuyv_to_rgb_region;

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
    /// The test JPEGs could not be made, or the input tensor not written.
    #[error("{0}")]
    Io(String),
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

impl Comparison {
    /// `reference`'s latencies `stats` against our median `ours_p50_ms`.
    fn new(reference: impl Into<String>, stats: StageStats, ours_p50_ms: f64) -> Comparison {
        Comparison {
            reference: reference.into(),
            speedup: stats.p50_ms / ours_p50_ms,
            stats,
        }
    }
}

/// Frames per second of the whole frame path (decode of the 640×480 JPEG,
/// preprocess, inference, decision, sink serialisation).
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Pipelines run in parallel, one thread each (each with its own model).
    pub threads: usize,
    /// Frames processed in all.
    pub frames: usize,
    /// Frames per second, all pipelines together.
    pub fps: f64,
}

/// The benchmark result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Model name.
    pub model: String,
    /// Frames measured per stage.
    pub frames: usize,
    /// Our stages, in pipeline order.
    pub stages: Vec<StageStats>,
    /// References.
    pub comparisons: Vec<Comparison>,
    /// Throughput on one thread, and with one pipeline per thread.
    pub throughput: Vec<Throughput>,
    /// Everything but inference (decode 640×480 as the daemon decodes for
    /// this model, preprocess, decision, sink), p50 sum, as a fraction of
    /// inference p50.
    pub overhead_share: f64,
    /// The same for a frame the motion gate lets through: the gate (the
    /// JPEG's luma decoded at 1/4) on top of it.
    pub overhead_share_with_gate: f64,
    /// Pipeline overhead as a fraction of inference frame by frame in the
    /// single-thread end-to-end loop (median of the per-frame ratios; decode,
    /// preprocess, decision and sink against the inference of the same
    /// frame, so the machine's drift cancels).
    pub overhead_share_per_frame: f64,
    /// Peak resident set size (VmHWM) after the single-thread measurement,
    /// before any reference model or extra pipeline was loaded, in MiB.
    pub peak_rss_mib: Option<f64>,
    /// From the start of the benchmark to the first decision: model load
    /// (with its self-test), first decode, preprocess, inference, decision, ms.
    pub first_decision_ms: f64,
    /// Model load alone, ms.
    pub model_load_ms: f64,
    /// Where inference time goes (with `--profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

/// Inference time per operator and per node of tract's optimised plan,
/// averaged over the profiled frames (`camtrapd bench --profile`).
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// Frames profiled.
    pub frames: usize,
    /// Sum over all nodes, ms per frame (a little above the unprofiled
    /// inference time: each node is timed).
    pub total_ms: f64,
    /// Per operator, largest first.
    pub by_op: Vec<OpShare>,
    /// The nodes that take longest, largest first (at most 15), ms per frame.
    pub top_nodes: Vec<crate::model::NodeTime>,
    /// Every node of the plan, largest first, ms per frame (JSON output;
    /// the text report prints `top_nodes`).
    pub nodes: Vec<crate::model::NodeTime>,
}

/// One operator's share of inference time.
#[derive(Debug, Clone, Serialize)]
pub struct OpShare {
    /// tract's operator name, e.g. `DepthWiseConv`.
    pub op: String,
    /// Nodes of this operator in the plan.
    pub nodes: usize,
    /// ms per frame.
    pub ms: f64,
    /// Share of the total, 0..1.
    pub share: f64,
}

impl Profile {
    /// Aggregates per-node times summed over `frames` runs.
    pub fn from_nodes(mut nodes: Vec<crate::model::NodeTime>, frames: usize) -> Profile {
        let n = frames.max(1) as f64;
        for t in &mut nodes {
            t.ms /= n;
        }
        let total_ms: f64 = nodes.iter().map(|t| t.ms).sum();
        let mut by: std::collections::BTreeMap<&str, (usize, f64)> = Default::default();
        for t in &nodes {
            let e = by.entry(t.op.as_str()).or_default();
            e.0 += 1;
            e.1 += t.ms;
        }
        let mut by_op: Vec<OpShare> = by
            .into_iter()
            .map(|(op, (count, ms))| OpShare {
                op: op.to_string(),
                nodes: count,
                ms,
                share: if total_ms > 0.0 { ms / total_ms } else { 0.0 },
            })
            .collect();
        by_op.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        nodes.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Profile {
            frames,
            total_ms,
            by_op,
            top_nodes: nodes.iter().take(15).cloned().collect(),
            nodes,
        }
    }
}

/// What [`run`] measures.
#[derive(Debug, Clone)]
pub struct Options {
    /// The model bundle.
    pub model_dir: PathBuf,
    /// A second bundle whose inference is compared (e.g. the fp32 model).
    pub reference_model: Option<PathBuf>,
    /// Images (the first decodable one makes the 640×480 and 1280×720 JPEGs).
    pub files: Vec<PathBuf>,
    /// Frames measured per stage.
    pub frames: usize,
    /// Frames run before measuring.
    pub warmup: usize,
    /// Pipelines for the all-cores throughput (0: skip it).
    pub threads: usize,
    /// Write the first preprocessed input tensor here (`.npy`, f32, shape
    /// `[1, N]` with N = the tensor's element count, in the model's layout).
    pub dump_input: Option<PathBuf>,
    /// Also time every node of the inference plan ([`Report::profile`]).
    pub profile: bool,
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Peak resident set size of this process in MiB (`VmHWM` in
/// `/proc/self/status`; Linux only, else None).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// `img` resized to `w`×`h` (Triangle) and encoded by libjpeg-turbo as JPEG
/// quality 90, 4:2:2 (what a UVC camera sends as MJPEG).
fn jpeg_at(img: &RgbImage, w: u32, h: u32) -> Result<Vec<u8>, BenchError> {
    let r = image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle);
    // 4:2:2 chroma subsampling, as USB (UVC) cameras send MJPEG.
    let out = turbojpeg::compress(
        turbojpeg::Image {
            pixels: r.as_raw().as_slice(),
            width: w as usize,
            pitch: w as usize * 3,
            height: h as usize,
            format: turbojpeg::PixelFormat::RGB,
        },
        90,
        turbojpeg::Subsamp::Sub2x1,
    )
    .map_err(|e| BenchError::Io(format!("encoding a {w}×{h} test JPEG: {e}")))?;
    Ok(out.to_vec())
}

/// The per-frame work of the sink: the detection built and serialised to JSON.
/// Packs an RGB image (even width) as YUYV 4:2:2, BT.601 limited range
/// (the forward transform of [`crate::source::v4l2::yuyv::yuyv_to_rgb`]; chroma from the pair's first
/// pixel), as a camera would send it.
fn yuyv_from_rgb(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::with_capacity(img.width() as usize * img.height() as usize * 2);
    let y = |p: &image::Rgb<u8>| {
        let [r, g, b] = p.0.map(f32::from);
        (16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0).round() as u8
    };
    for row in img.rows() {
        let px: Vec<&image::Rgb<u8>> = row.collect();
        for pair in px.chunks_exact(2) {
            let [r, g, b] = pair[0].0.map(f32::from);
            let u = (128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0).round() as u8;
            let v = (128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0).round() as u8;
            out.extend_from_slice(&[y(pair[0]), u, y(pair[1]), v]);
        }
    }
    out
}

fn sink_json(policy: &Policy, d: &Decision, model: &ModelRef, buf: &mut Vec<u8>) {
    let labels = policy.labels();
    let det = Detection {
        id: uuid::Uuid::now_v7().to_string(),
        camera: "bench".into(),
        label: labels[d.top().unwrap_or(0)].clone(),
        score: d.confidence,
        score_fn: policy.score_fn(),
        threshold: d.threshold,
        top_k: d.top_k_scores(labels),
        source: "bench.jpg".into(),
        frame_seq: 0,
        captured_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        model: model.clone(),
        latency_ms: Latency::default(),
    };
    buf.clear();
    // Serialising our own plain struct into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, &det);
}

/// Times `f`, which converts into the recycled buffer it is given (taken
/// from `spare`) and returns the image, whose buffer goes back to `spare`;
/// the time (ms) goes into `samples` when `keep` and `f` succeeded.
fn time_into(
    spare: &mut Vec<u8>,
    samples: &mut Vec<f64>,
    keep: bool,
    f: impl FnOnce(Vec<u8>) -> Option<RgbImage>,
) {
    let t = Instant::now();
    let img = f(std::mem::take(spare));
    let ms = ms_since(t);
    if let Some(img) = img {
        *spare = std::hint::black_box(img).into_raw();
        if keep {
            samples.push(ms);
        }
    }
}

/// The whole frame path on `n` frames of the 640×480 JPEG: returns frames
/// done. With `shares`, pushes each frame's pipeline overhead (decode,
/// preprocess, decision, sink) as a fraction of its inference time: a ratio
/// within one frame, which a machine's drifting speed leaves alone.
fn frame_loop(
    model: &mut Model,
    jpeg: &[u8],
    n: usize,
    overrides: &Overrides,
    mut shares: Option<&mut Vec<f64>>,
) -> Result<usize, BenchError> {
    let limits = DecodeLimits::default();
    let mut pre = Preprocessor::new(model.manifest());
    let target = DecodeTarget::model(pre.geometry());
    let policy = Policy::new(model.manifest(), overrides)?;
    let mut decision = Decision::default();
    let mref = ModelRef {
        name: model.manifest().name.clone(),
        sha256: String::new(),
    };
    let mut buf = Vec::with_capacity(2048);
    let mut done = 0;
    // The previous frame's pixel buffer, decoded into (as the camera source does).
    let mut spare = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let Ok(d) = decode_bytes_into(jpeg, &limits, &target, std::mem::take(&mut spare)) else {
            continue;
        };
        pre.run_window(&d.image, d.window, model.input_mut())?;
        spare = d.image.into_raw();
        let t1 = Instant::now();
        model.run()?;
        let t2 = Instant::now();
        policy.decide(model.scores_output()?, None, &mut decision);
        sink_json(&policy, &decision, &mref, &mut buf);
        std::hint::black_box(&buf);
        if let Some(s) = shares.as_deref_mut() {
            let inference = (t2 - t1).as_secs_f64();
            s.push(((t1 - t0) + t2.elapsed()).as_secs_f64() / inference);
        }
        done += 1;
    }
    Ok(done)
}

/// Runs the benchmark (see the module docs and [`Options`]).
///
/// # Errors
/// Loading a model or inference failing; decoding failures skip the file.
pub fn run(o: &Options) -> Result<Report, BenchError> {
    let start = Instant::now();
    let (frames, warmup) = (o.frames.max(1), o.warmup);
    let limits = DecodeLimits::default();
    let mut model = Model::load(&o.model_dir)?;
    let model_load_ms = ms_since(start);
    let mut pre = Preprocessor::new(model.manifest());
    let overrides = Overrides {
        top_k: 5,
        ..Overrides::default()
    };
    let policy = Policy::new(model.manifest(), &overrides)?;
    let mref = ModelRef {
        name: model.manifest().name.clone(),
        sha256: model.sha256()[..12].to_string(),
    };
    let mut decision = Decision::default();
    // Decode up to `frames` files (cycling if there are fewer), timing each; keep at
    // most MAX_KEPT decoded images in memory for the later stages.
    const MAX_KEPT: usize = 32;
    let mut images: Vec<RgbImage> = Vec::new();
    let mut decode = Vec::new();
    let mut first_decision_ms = None;
    for f in o
        .files
        .iter()
        .cycle()
        .take(frames.min(o.files.len() * 4).max(1))
    {
        let t = Instant::now();
        if let Ok(img) = decode_file(f, &limits) {
            decode.push(ms_since(t));
            if first_decision_ms.is_none() {
                pre.run(&img, model.input_mut())?;
                model.run()?;
                policy.decide(model.scores_output()?, None, &mut decision);
                first_decision_ms = Some(ms_since(start));
                if let Some(path) = &o.dump_input {
                    pre.run(&img, model.input_mut())?;
                    let v: Vec<f32> = model
                        .input_mut()
                        .try_as_plain_ram()
                        .and_then(|t| t.as_slice::<f32>())
                        .map_err(|e| {
                            BenchError::Io(format!("--dump-input needs an f32 input: {e}"))
                        })?
                        .to_vec();
                    crate::decision::knn::write_npy(path, &[v])
                        .map_err(|e| BenchError::Io(e.to_string()))?;
                }
            }
            if images.len() < MAX_KEPT.min(o.files.len()) {
                images.push(img);
            }
        }
    }
    if images.is_empty() {
        return Err(BenchError::NoImages);
    }
    let first_decision_ms = first_decision_ms.unwrap_or(f64::NAN);
    // Camera-sized JPEGs made from the first image.
    let vga = jpeg_at(&images[0], 640, 480)?;
    let hd = jpeg_at(&images[0], 1280, 720)?;
    let mut stages = Vec::new();
    // As the daemon decodes for this model (no snapshots):
    // libjpeg-turbo, shrunk in the DCT domain where the model's input allows
    // and cropped to what a centre crop reads. References on the same run:
    // the whole frame (what snapshots need), and the
    // `image` crate's decoder (zune-jpeg) at full size.
    let target = DecodeTarget::model(pre.geometry());
    let whole_target = DecodeTarget {
        crop: false,
        ..target
    };
    let mut decode_refs = Vec::new();
    for (name, jpeg) in [("decode 640x480", &vga), ("decode 1280x720", &hd)] {
        let (mut v, mut r) = (Vec::with_capacity(frames), Vec::with_capacity(frames));
        let mut whole = Vec::with_capacity(frames);
        // Each into the previous frame's pixel buffer, as the camera source does.
        let (mut spare, mut spare_whole) = (Vec::new(), Vec::new());
        for i in 0..warmup + frames {
            let keep = i >= warmup;
            time_into(&mut spare, &mut v, keep, |b| {
                decode_bytes_into(jpeg, &limits, &target, b)
                    .ok()
                    .map(|d| d.image)
            });
            time_into(&mut spare_whole, &mut whole, keep, |b| {
                decode_bytes_into(jpeg, &limits, &whole_target, b)
                    .ok()
                    .map(|d| d.image)
            });
            let t = Instant::now();
            let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
                .map(image::DynamicImage::into_rgb8);
            let ms = ms_since(t);
            std::hint::black_box(&img);
            if i >= warmup && img.is_ok() {
                r.push(ms);
            }
        }
        let ours = StageStats::from_samples(name, v);
        let stats = StageStats::from_samples(name, whole);
        decode_refs.push(Comparison::new(
            format!("{name}, whole frame (snapshots on)"),
            stats,
            ours.p50_ms,
        ));
        let stats = StageStats::from_samples(name, r);
        decode_refs.push(Comparison::new(
            format!("{name}, image crate (zune-jpeg), full size"),
            stats,
            ours.p50_ms,
        ));
        stages.push(ours);
    }
    // YUYV 4:2:2 → RGB8, what a USB camera in YUYV mode costs per frame,
    // on buffers made from the same photo at camera sizes.
    for (name, w, h) in [
        ("yuyv→rgb 640x480", 640, 480),
        ("yuyv→rgb 1280x720", 1280, 720),
    ] {
        let yuyv = yuyv_from_rgb(&image::imageops::resize(
            &images[0],
            w,
            h,
            image::imageops::FilterType::Triangle,
        ));
        // As the camera source converts for this model: only the part the
        // centre crop reads, into the previous frame's buffer; the whole
        // frame (snapshots on) as the reference.
        let region = if crate::decode::crop_enabled() {
            pre.geometry().read_region(w, h, 0)
        } else {
            None
        };
        let (mut v, mut whole) = (Vec::with_capacity(frames), Vec::with_capacity(frames));
        let (mut spare, mut spare_whole) = (Vec::new(), Vec::new());
        for i in 0..warmup + frames {
            let keep = i >= warmup;
            let stride = w as usize * 2;
            time_into(&mut spare, &mut v, keep, |b| {
                yuyv_to_rgb_region(&yuyv, w, h, stride, region, b)
                    .ok()
                    .map(|r| r.0)
            });
            time_into(&mut spare_whole, &mut whole, keep, |b| {
                yuyv_to_rgb_region(&yuyv, w, h, stride, None, b)
                    .ok()
                    .map(|r| r.0)
            });
        }
        let ours = StageStats::from_samples(name, v);
        let stats = StageStats::from_samples(name, whole);
        decode_refs.push(Comparison::new(
            format!("{name}, whole frame (snapshots on)"),
            stats,
            ours.p50_ms,
        ));
        stages.push(ours);
    }
    let vga_img = decode_bytes_for(&vga, &limits, &whole_target)
        .map_err(|e| BenchError::Io(e.to_string()))?
        .image;
    {
        // The gate on a static 640×480 scene (the common case it exists for),
        // as the sources run it: on the JPEG's luma decoded at 1/4 (DCT
        // scaling; no chroma), and on a YUYV frame's Y samples in place.
        // Reference on the same run: the gate on the whole decoded RGB frame
        // (what it cost before it read the luma, and still costs for PNGs).
        let cfg = MotionConfig {
            enabled: true,
            ..MotionConfig::default()
        };
        let (mut luma_gate, mut yuyv_gate, mut rgb_gate) = (
            MotionGate::new(&cfg),
            MotionGate::new(&cfg),
            MotionGate::new(&cfg),
        );
        let vga_yuyv = yuyv_from_rgb(&vga_img);
        let t0 = chrono::Utc::now();
        let (mut v, mut y, mut r, mut ry) = (
            Vec::with_capacity(frames),
            Vec::with_capacity(frames),
            Vec::with_capacity(frames),
            Vec::with_capacity(frames),
        );
        let mut yuyv_rgb_gate = MotionGate::new(&cfg);
        let (mut luma, mut spare, mut spare_yuyv) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..warmup + frames {
            let now = t0 + chrono::Duration::milliseconds(i as i64);
            let t = Instant::now();
            let g = luma_gate.check_jpeg(&vga, &limits, &mut luma, now);
            let a = ms_since(t);
            std::hint::black_box(g);
            let t = Instant::now();
            let g = yuyv_gate.check_luma(
                &crate::motion::Luma {
                    data: &vga_yuyv,
                    width: 640,
                    height: 480,
                    stride: 640 * 2,
                    step: 2,
                    limited_range: true,
                },
                640,
                480,
                now,
            );
            let b = ms_since(t);
            std::hint::black_box(g);
            let t = Instant::now();
            let img = decode_bytes_into(&vga, &limits, &whole_target, std::mem::take(&mut spare));
            if let Ok(d) = img {
                std::hint::black_box(rgb_gate.check(&d.image, now));
                spare = d.image.into_raw();
            }
            let c = ms_since(t);
            let t = Instant::now();
            let rgb = yuyv_to_rgb_region(
                &vga_yuyv,
                640,
                480,
                640 * 2,
                None,
                std::mem::take(&mut spare_yuyv),
            );
            if let Ok((img, _)) = rgb {
                std::hint::black_box(yuyv_rgb_gate.check(&img, now));
                spare_yuyv = img.into_raw();
            }
            let d = ms_since(t);
            if i >= warmup {
                v.push(a);
                y.push(b);
                r.push(c);
                ry.push(d);
            }
        }
        let ours = StageStats::from_samples("motion gate 640x480 (JPEG luma at 1/4)", v);
        decode_refs.push(Comparison::new(
            "motion gate 640x480 on the whole decoded RGB frame (decode + gate)",
            StageStats::from_samples("motion gate 640x480 whole RGB", r),
            ours.p50_ms,
        ));
        stages.push(ours);
        let ours = StageStats::from_samples("motion gate 640x480 (YUYV, Y in place)", y);
        decode_refs.push(Comparison::new(
            "motion gate 640x480 YUYV on the whole converted RGB frame (convert + gate)",
            StageStats::from_samples("motion gate 640x480 YUYV whole RGB", ry),
            ours.p50_ms,
        ));
        stages.push(ours);
    }
    let (mut prep, mut inf, mut dec, mut sink) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut buf = Vec::with_capacity(2048);
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
        let t = Instant::now();
        sink_json(&policy, &decision, &mref, &mut buf);
        let d = ms_since(t);
        if i >= warmup {
            prep.push(a);
            inf.push(b);
            dec.push(c);
            sink.push(d);
        }
    }
    stages.push(StageStats::from_samples("resize+normalise", prep));
    stages.push(StageStats::from_samples("inference", inf));
    stages.push(StageStats::from_samples("decision", dec));
    stages.push(StageStats::from_samples("sink (JSON)", sink));
    let p50 = |name: &str| {
        stages
            .iter()
            .find(|s| s.stage == name)
            .map_or(f64::NAN, |s| s.p50_ms)
    };
    let inference = p50("inference");
    let overhead =
        p50("decode 640x480") + p50("resize+normalise") + p50("decision") + p50("sink (JSON)");
    let overhead_share = overhead / inference;
    // With the gate on, a frame it lets through costs the gate (the JPEG's
    // luma at 1/4) on top of the usual (cropped) decode.
    let overhead_share_with_gate =
        (overhead + p50("motion gate 640x480 (JPEG luma at 1/4)")) / inference;

    // End to end on one thread.
    let mut throughput = Vec::new();
    frame_loop(&mut model, &vga, warmup.min(3), &overrides, None)?;
    let mut shares = Vec::with_capacity(frames);
    let t = Instant::now();
    let n = frame_loop(&mut model, &vga, frames, &overrides, Some(&mut shares))?;
    let overhead_share_per_frame = StageStats::from_samples("", shares).p50_ms;
    throughput.push(Throughput {
        threads: 1,
        frames: n,
        fps: n as f64 / t.elapsed().as_secs_f64(),
    });
    let peak_rss_mib = peak_rss_mib();

    let mut comparisons = decode_refs;
    // Reference preprocessing: image::imageops (Triangle = bilinear), then the same normalisation loop.
    let m = model.manifest();
    let (w, h) = (m.input.width, m.input.height);
    let (scale, offset) = m.scale_offset();
    let mut fbuf = vec![0f32; (w * h * 3) as usize];
    let mut refp = Vec::new();
    for i in 0..warmup + frames {
        let img = &images[i % images.len()];
        let t = Instant::now();
        let r = image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle);
        let plane = (w * h) as usize;
        for (j, p) in r.pixels().enumerate() {
            for c in 0..3 {
                fbuf[c * plane + j] = f32::from(p.0[c]) * scale[c] + offset[c];
            }
        }
        std::hint::black_box(&fbuf);
        if i >= warmup {
            refp.push(ms_since(t));
        }
    }
    let ours = p50("resize+normalise");
    let stats = StageStats::from_samples("resize+normalise", refp);
    comparisons.push(Comparison::new(
        "image::imageops::resize (Triangle) + normalise",
        stats,
        ours,
    ));

    let profile = if o.profile {
        let mut nodes = Vec::new();
        for i in 0..warmup + frames {
            pre.run(&images[i % images.len()], model.input_mut())?;
            if i < warmup {
                model.run()?;
            } else {
                model.run_profiled(&mut nodes)?;
            }
        }
        Some(Profile::from_nodes(nodes, frames))
    } else {
        None
    };

    if let Some(dir) = &o.reference_model {
        let mut rm = Model::load(dir)?;
        let mut rpre = Preprocessor::new(rm.manifest());
        // Interleave the two models frame by frame, so that load changes on
        // a shared machine hit both alike.
        let (mut ours, mut rinf) = (Vec::new(), Vec::new());
        for i in 0..warmup + frames {
            let img = &images[i % images.len()];
            rpre.run(img, rm.input_mut())?;
            pre.run(img, model.input_mut())?;
            let t = Instant::now();
            rm.run()?;
            let r = ms_since(t);
            let t = Instant::now();
            model.run()?;
            let a = ms_since(t);
            if i >= warmup {
                rinf.push(r);
                ours.push(a);
            }
        }
        let ours = StageStats::from_samples("inference", ours);
        let stats = StageStats::from_samples("inference", rinf);
        comparisons.push(Comparison::new(
            format!(
                "inference of {} ({}), interleaved",
                rm.manifest().name,
                dir.display()
            ),
            stats,
            ours.p50_ms,
        ));
    }

    if o.threads > 1 {
        // One pipeline (own model) per thread, all started together.
        let barrier = std::sync::Barrier::new(o.threads + 1);
        let per = frames.div_ceil(o.threads).max(1);
        let result: Result<(usize, f64), BenchError> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..o.threads)
                .map(|_| {
                    let (barrier, vga, overrides) = (&barrier, &vga, &overrides);
                    let dir = &o.model_dir;
                    s.spawn(move || -> Result<usize, BenchError> {
                        let loaded = Model::load(dir);
                        barrier.wait();
                        let mut m = loaded?;
                        frame_loop(&mut m, vga, per, overrides, None)
                    })
                })
                .collect();
            barrier.wait();
            let t = Instant::now();
            let mut n = 0;
            for h in handles {
                n += h
                    .join()
                    .map_err(|_| BenchError::Io("a benchmark thread panicked".into()))??;
            }
            Ok((n, t.elapsed().as_secs_f64()))
        });
        let (n, secs) = result?;
        throughput.push(Throughput {
            threads: o.threads,
            frames: n,
            fps: n as f64 / secs,
        });
    }
    Ok(Report {
        model: model.manifest().name.clone(),
        frames,
        stages,
        comparisons,
        throughput,
        overhead_share,
        overhead_share_with_gate,
        overhead_share_per_frame,
        peak_rss_mib,
        first_decision_ms,
        model_load_ms,
        profile,
    })
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "model {}, {} frames per stage (single thread)",
            self.model, self.frames
        )?;
        writeln!(
            f,
            "{:<20} {:>8} {:>8} {:>8}",
            "stage", "mean ms", "p50 ms", "p95 ms"
        )?;
        for s in &self.stages {
            writeln!(
                f,
                "{:<20} {:>8.2} {:>8.2} {:>8.2}",
                s.stage, s.mean_ms, s.p50_ms, s.p95_ms
            )?;
        }
        writeln!(
            f,
            "pipeline overhead (decode 640x480, resize+normalise, decision, sink) = {:.1} % of inference ({:.1} % with the motion gate); frame by frame end to end, median: {:.1} %",
            self.overhead_share * 100.0,
            self.overhead_share_with_gate * 100.0,
            self.overhead_share_per_frame * 100.0
        )?;
        for t in &self.throughput {
            writeln!(
                f,
                "end to end (640x480 JPEG → sink): {:.1} frames/s with {} pipeline(s) on {} thread(s)",
                t.fps, t.threads, t.threads
            )?;
        }
        if let Some(r) = self.peak_rss_mib {
            writeln!(f, "peak RSS (one pipeline): {r:.1} MiB")?;
        }
        writeln!(
            f,
            "start to first decision: {:.0} ms (model load and self-test {:.0} ms)",
            self.first_decision_ms, self.model_load_ms
        )?;
        if let Some(p) = &self.profile {
            writeln!(
                f,
                "inference profile ({} frames, {:.2} ms per frame with per-node timing):",
                p.frames, p.total_ms
            )?;
            writeln!(
                f,
                "  {:<28} {:>5} {:>8} {:>6}",
                "operator", "nodes", "ms", "share"
            )?;
            for o in &p.by_op {
                writeln!(
                    f,
                    "  {:<28} {:>5} {:>8.3} {:>5.1}%",
                    o.op,
                    o.nodes,
                    o.ms,
                    o.share * 100.0
                )?;
            }
            writeln!(f, "  slowest nodes:")?;
            for t in &p.top_nodes {
                writeln!(
                    f,
                    "  {:>8.3} ms  {:<20} {} -> [{}] {}",
                    t.ms, t.op, t.node, t.output_shape, t.info
                )?;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::Profile;
    use crate::model::NodeTime;

    fn node(name: &str, op: &str, ms: f64) -> NodeTime {
        NodeTime {
            node: name.into(),
            op: op.into(),
            info: String::new(),
            output_shape: String::new(),
            ms,
        }
    }

    #[test]
    fn profile_averages_per_frame_and_groups_by_operator() {
        // Times summed over 4 frames.
        let p = Profile::from_nodes(
            vec![
                node("a", "OptMatMul", 8.0),
                node("b", "DepthWiseConv", 24.0),
                node("c", "OptMatMul", 8.0),
            ],
            4,
        );
        assert_eq!(p.total_ms, 10.0);
        let ops: Vec<(&str, usize, f64, f64)> = p
            .by_op
            .iter()
            .map(|o| (o.op.as_str(), o.nodes, o.ms, o.share))
            .collect();
        assert_eq!(
            ops,
            [("DepthWiseConv", 1, 6.0, 0.6), ("OptMatMul", 2, 4.0, 0.4)]
        );
        let top: Vec<&str> = p.top_nodes.iter().map(|t| t.node.as_str()).collect();
        assert_eq!(top, ["b", "a", "c"]);
    }
}
