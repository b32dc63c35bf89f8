//! Golden outputs of the bundled models on real photos: top-1 label and its
//! softmax score (maximum softmax probability) within a tolerance, through
//! the same decode → preprocess → tract → decision path the daemon uses.
//! Values were recorded with `camtrapd classify --json` and agree with
//! onnxruntime (see models/README.md). Re-recorded when JPEG decoding moved
//! from the `image` crate's zune-jpeg to libjpeg-turbo (the decoder PIL
//! uses): the three Caltech photos moved by up to 0.02, the camera-trap ones
//! by under 0.004. The int8 scores were re-recorded when the default bundle
//! became the bias-corrected weight-only form (scripts/quantize_int8.py
//! --form weight-only): each now lies within 0.015 of fp32's (the plain
//! rounding before it was 0.17 away on the kangaroo).
//!
//! Frames are decoded as the daemon decodes them for this pipeline (no
//! snapshots, no motion gate: only the part the centre crop reads), and the
//! scores must equal those of the whole decoded frame exactly.

mod common;

use std::path::Path;

use camtrapd::decision::{Overrides, RejectReason, Verdict};
use camtrapd::decode::{decode_file, decode_file_for, DecodeLimits, Window};
use camtrapd::frame::Frame;
use camtrapd::model::Model;
use camtrapd::pipeline::Pipeline;

/// Sample photos shipped in examples/photos (from zoo12): (file, top-1
/// label, int8 score, fp32 score).
const GOLDEN: &[(&str, &str, f32, f32)] = &[
    (
        "elephant/c101_image_0004.jpg",
        "African elephant",
        0.7363,
        0.7317,
    ),
    ("kangaroo/c101_image_0001.jpg", "wallaby", 0.5711, 0.5836),
    ("llama/c101_image_0001.jpg", "llama", 0.7806, 0.7808),
];

/// Camera-trap frames of the full data sets (`camera_trap/` under
/// `$CAMTRAPD_DATA`), as [`GOLDEN`].
const GOLDEN_CAMERA_TRAP: &[(&str, &str, f32, f32)] = &[
    // An empty camera-trap frame gets a label anyway (the problem camtrapd exists for) ...
    (
        "camera_trap/empty/empty/speciesnet_blank.jpg",
        "platypus",
        0.2906,
        0.2762,
    ),
    // ... and so does an infrared night frame.
    (
        "camera_trap/unknown/american_black_bear/ena24_8786.jpg",
        "American black bear",
        0.2714,
        0.2792,
    ),
];

const TOLERANCE: f32 = 0.01;

/// Checks the golden outputs of `golden` (paths under `dir`); returns how
/// many were below the 0.5 threshold.
fn check(model_dir: &Path, fp32: bool, dir: &Path, golden: &[(&str, &str, f32, f32)]) -> u64 {
    let model = Model::load(model_dir).unwrap();
    let overrides = Overrides {
        default_threshold: Some(0.5),
        top_k: 3,
        ..Overrides::default()
    };
    let mut p = Pipeline::new(model, &overrides, Vec::new(), "test".into()).unwrap();
    let mut below = 0;
    for (i, (file, label, s8, s32)) in golden.iter().enumerate() {
        let path = dir.join(file);
        let limits = DecodeLimits::default();
        let decoded = decode_file_for(&path, &limits, &p.decode_target()).unwrap();
        let whole = decode_file(&path, &limits).unwrap();
        assert_eq!(
            (decoded.window.full_width, decoded.window.full_height),
            whole.dimensions(),
            "{file}"
        );
        assert!(
            decoded.image.len() < whole.len(),
            "{file}: the decoder should crop to the centre {:?}",
            decoded.window
        );
        let frame = |image, window| Frame {
            seq: i as u64,
            source_id: path.display().to_string(),
            captured_at: chrono::Utc::now(),
            image,
            window,
            decode_ms: 0.0,
        };
        let whole_scores = {
            let w = Window::whole(&whole);
            p.classify(&frame(whole, w))
                .unwrap()
                .decision
                .scores
                .clone()
        };
        let frame = frame(decoded.image, decoded.window);
        let want = if fp32 { *s32 } else { *s8 };
        let labels = p.model().labels().to_vec();
        let c = p.classify(&frame).unwrap();
        let top = c.decision.top().unwrap();
        assert_eq!(labels[top], *label, "{file}");
        let got = c.decision.top_score();
        assert!(
            (got - want).abs() <= TOLERANCE,
            "{file}: score {got}, golden {want}"
        );
        assert_eq!(
            c.decision.scores, whole_scores,
            "{file}: cropped decode gives other scores than the whole frame"
        );
        let sum: f32 = c.decision.scores.iter().sum();
        assert!((sum - 1.0).abs() < 1e-3, "softmax scores sum to {sum}");
        let expected = if want >= 0.5 {
            Verdict::Detection
        } else {
            below += 1;
            Verdict::Rejected(RejectReason::BelowThreshold)
        };
        assert_eq!(c.decision.verdict, expected, "{file}");
    }
    // Each photo twice: cropped and whole.
    assert_eq!(p.stats().classified, 2 * golden.len() as u64);
    assert_eq!(p.stats().rejected(RejectReason::BelowThreshold), 2 * below);
    below
}

#[test]
fn int8_model_golden_outputs() {
    let m = common::default_model();
    assert_eq!(check(&m, false, &common::sample_photos(), GOLDEN), 0);
}

#[test]
fn fp32_model_golden_outputs() {
    let m = common::fp32_model();
    assert_eq!(check(&m, true, &common::sample_photos(), GOLDEN), 0);
}

/// The golden outputs of the camera-trap frames (both below 0.5), when the
/// full data sets are there.
fn check_camera_trap(model_dir: &Path, fp32: bool) {
    let Some(data) = common::full_data("two camera-trap frames (camera_trap/)") else {
        return;
    };
    assert_eq!(check(model_dir, fp32, &data, GOLDEN_CAMERA_TRAP), 2);
}

#[test]
fn int8_model_golden_outputs_on_camera_trap_frames() {
    check_camera_trap(&common::default_model(), false);
}

#[test]
fn fp32_model_golden_outputs_on_camera_trap_frames() {
    check_camera_trap(&common::fp32_model(), true);
}
