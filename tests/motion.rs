//! The motion gate on real camera-trap frames (`camera_trap/` of the full
//! data sets, `$CAMTRAPD_DATA`; skipped, saying so, without them):
//! JPEG re-compression noise and an exposure change are not motion, an
//! animal walking in is, and a mask hides it.

mod common;

use camtrapd::decode::{decode_bytes, decode_file, DecodeLimits};
use camtrapd::motion::{Gate, Mask, MotionConfig, MotionGate};
use chrono::{TimeZone, Utc};
use image::RgbImage;

fn at(s: i64) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 6, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

/// The blank camera-trap frame and the same camera's frame with a black
/// bear, from the full data sets; `None` (the test is skipped, saying so)
/// without them.
fn blank_and_bear() -> Option<(RgbImage, RgbImage)> {
    let data = common::full_data("two camera-trap frames (camera_trap/)")?;
    Some((
        load(&data, "empty/empty/speciesnet_blank.jpg"),
        load(
            &data,
            "unknown/american_black_bear/speciesnet_american_black_bear.jpg",
        ),
    ))
}

fn load(data: &std::path::Path, rel: &str) -> RgbImage {
    let p = data.join("camera_trap").join(rel);
    let img = decode_file(&p, &DecodeLimits::default()).unwrap();
    // A camera's VGA stream.
    image::imageops::resize(&img, 640, 480, image::imageops::FilterType::Triangle)
}

/// `img` through a JPEG encoder at `quality` and back.
fn recompress(img: &RgbImage, quality: u8) -> RgbImage {
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .unwrap();
    decode_bytes(&out.into_inner(), &DecodeLimits::default()).unwrap()
}

/// `img` with `patch` (scaled to `w`×`h`) pasted at (x, y).
fn paste(img: &RgbImage, patch: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> RgbImage {
    let mut out = img.clone();
    let p = image::imageops::resize(patch, w, h, image::imageops::FilterType::Triangle);
    image::imageops::overlay(&mut out, &p, i64::from(x), i64::from(y));
    out
}

#[test]
fn a_real_empty_scene_is_still_an_animal_walking_in_is_motion() {
    let Some((blank, bear)) = blank_and_bear() else {
        return;
    };
    let cfg = MotionConfig {
        enabled: true,
        heartbeat_secs: 0.0,
        ..MotionConfig::default()
    };
    let mut g = MotionGate::new(&cfg);
    assert_eq!(g.check(&blank, at(0)), Gate::Motion(1.0), "first frame");
    // The same scene through the camera's encoder again, twice: noise only.
    for (i, q) in [(1, 70u8), (2, 85)] {
        let r = g.check(&recompress(&blank, q), at(i));
        assert!(!r.classify(), "JPEG q{q} noise: {r:?}");
    }
    // Exposure +15 grey levels on every pixel (a cloud moves away).
    let mut bright = blank.clone();
    for p in bright.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = c.saturating_add(15);
        }
    }
    let r = g.check(&bright, at(3));
    assert!(!r.classify(), "global brightness change: {r:?}");
    // An animal of 160×120 px (6 % of the frame) walks in.
    let walk_in = paste(&blank, &bear, 300, 250, 160, 120);
    let r = g.check(&walk_in, at(4));
    assert!(matches!(r, Gate::Motion(c) if c > 0.02), "animal: {r:?}");

    // The same animal inside a masked area (a bush at the bottom right) is ignored.
    let mut masked = MotionGate::new(&MotionConfig {
        masks: vec![Mask {
            rect: None,
            polygon: Some(vec![[0.45, 0.5], [0.75, 0.5], [0.75, 0.8], [0.45, 0.8]]),
        }],
        ..cfg
    });
    masked.check(&blank, at(0));
    let r = masked.check(&walk_in, at(1));
    assert_eq!(r, Gate::Still(0.0), "masked: {r:?}");
}

/// `img` as the JPEG a camera would send (q85).
fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(img)
        .unwrap();
    out.into_inner()
}

/// The scene of the test above as JPEG frames: the gate reading only their
/// luma at 1/4 scale decides as it does on the decoded RGB frames.
#[test]
fn the_gate_on_jpeg_luma_decides_as_on_the_decoded_frame() {
    let Some((blank, bear)) = blank_and_bear() else {
        return;
    };
    let mut bright = blank.clone();
    for p in bright.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = c.saturating_add(15);
        }
    }
    let frames = [
        jpeg(&blank),
        jpeg(&recompress(&blank, 70)),
        jpeg(&bright),
        jpeg(&paste(&blank, &bear, 300, 250, 160, 120)),
        jpeg(&paste(&blank, &bear, 20, 40, 200, 150)),
    ];
    let cfg = MotionConfig {
        enabled: true,
        heartbeat_secs: 0.0,
        ..MotionConfig::default()
    };
    let (mut on_rgb, mut on_luma) = (MotionGate::new(&cfg), MotionGate::new(&cfg));
    let limits = DecodeLimits::default();
    let mut buf = Vec::new();
    let mut decisions = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let rgb = on_rgb.check(&decode_bytes(f, &limits).unwrap(), at(i as i64));
        let luma = on_luma
            .check_jpeg(f, &limits, &mut buf, at(i as i64))
            .expect("a camera JPEG is read as luma");
        // 640×480 at 1/4: the 96×72 compared image needs 96 columns.
        assert_eq!(buf.len(), 160 * 120, "frame {i}: decoded at 1/4");
        assert_eq!(
            rgb.classify(),
            luma.classify(),
            "frame {i}: {rgb:?} vs {luma:?}"
        );
        assert!(
            (rgb.changed() - luma.changed()).abs() < 0.003,
            "frame {i}: {rgb:?} vs {luma:?}"
        );
        decisions.push(luma.classify());
    }
    assert_eq!(decisions, [true, false, false, true, true]);
    // Not JPEG luma: the caller decodes the frame and gates on its pixels.
    assert_eq!(
        on_luma.check_jpeg(b"\x89PNG\r\n", &limits, &mut buf, at(9)),
        None
    );
    let truncated = &frames[0][..frames[0].len() / 2];
    assert_eq!(
        on_luma.check_jpeg(truncated, &limits, &mut buf, at(9)),
        None
    );
}

/// A gated files source: a frame the gate skips is never decoded for the
/// model; one it lets through is, cropped to what the model reads, as it
/// would be without the gate; a PNG is decoded whole and gated on its pixels.
#[test]
fn a_gated_source_decodes_for_the_model_only_what_the_gate_lets_through() {
    use camtrapd::decode::DecodeTarget;
    use camtrapd::model::manifest::ResizeMode;
    use camtrapd::preprocess::InputGeometry;
    use camtrapd::shutdown::Shutdown;
    use camtrapd::source::files::{FilesConfig, FilesSource};
    use camtrapd::source::{FrameSource, SourceEvent};

    let Some((blank, bear)) = blank_and_bear() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("f1.jpg"), jpeg(&blank)).unwrap();
    std::fs::write(t.path().join("f2.jpg"), jpeg(&recompress(&blank, 70))).unwrap();
    std::fs::write(
        t.path().join("f3.jpg"),
        jpeg(&paste(&blank, &bear, 300, 250, 160, 120)),
    )
    .unwrap();
    blank.save(t.path().join("f4.png")).unwrap();
    blank.save(t.path().join("f5.png")).unwrap();
    let cfg = FilesConfig {
        path: t.path().display().to_string(),
        fps: None,
        repeat: false,
    };
    let mut src = FilesSource::open(
        &cfg,
        std::path::Path::new("."),
        DecodeLimits::default(),
        Shutdown::new(),
    )
    .unwrap();
    src.set_decode_target(DecodeTarget::model(InputGeometry {
        width: 224,
        height: 224,
        mode: ResizeMode::CenterCrop,
        crop_fraction: 0.875,
    }));
    let mut gate = MotionGate::new(&MotionConfig {
        enabled: true,
        heartbeat_secs: 0.0,
        ..MotionConfig::default()
    });
    let mut seen = Vec::new();
    loop {
        match src.next_event_gated(&mut gate) {
            SourceEvent::Frame(f) => {
                assert_eq!((f.window.full_width, f.window.full_height), (640, 480));
                let name = f.source_id.rsplit('/').next().unwrap().to_string();
                if name.ends_with(".jpg") {
                    // Cropped for the 224 centre crop: 420×420 of 640×480 plus
                    // the filter's reach, left edge on an MCU boundary.
                    assert!(f.window.x > 0 && f.image.width() < 640, "{:?}", f.window);
                } else {
                    assert_eq!(f.image.dimensions(), (640, 480));
                }
                seen.push(format!("frame {name}"));
            }
            SourceEvent::Still {
                source_id, gate, ..
            } => {
                assert!(gate.changed() < 0.005, "{gate:?}");
                seen.push(format!("still {}", source_id.rsplit('/').next().unwrap()));
            }
            SourceEvent::End => break,
            other => panic!("{other:?}"),
        }
    }
    // f4.png is the still scene again, but read whole (no luma decode for a
    // PNG): the gate's blocks change, so its background restarts (classified);
    // the same PNG again is still.
    assert_eq!(
        seen,
        [
            "frame f1.jpg",
            "still f2.jpg",
            "frame f3.jpg",
            "frame f4.png",
            "still f5.png"
        ]
    );
}
