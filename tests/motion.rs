//! The motion gate on real camera-trap frames (../shared/data/camera_trap):
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

fn load(rel: &str) -> RgbImage {
    let p = common::shared_data().join("camera_trap").join(rel);
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
    let blank = load("empty/empty/speciesnet_blank.jpg");
    let bear = load("unknown/american_black_bear/speciesnet_american_black_bear.jpg");
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
