//! The bad-input corpus (tests/fixtures/bad/, made by
//! `scripts/make_test_images.py`): every file has a documented outcome,
//! either decoded into the right pixels or refused with a stable reason that
//! the daemon counts, and the daemon gets through the whole folder without
//! stopping. Colour types, EXIF rotation and real truncated camera frames are
//! in tests/decode_colour_types.rs.

mod common;

use camtrapd::decode::{decode_file, DecodeLimits};

/// What decoding a corpus file must give.
enum Outcome {
    /// Decoded to `w`×`h`; each `(x, y, rgb)` pixel within ±6 per channel.
    Decoded(u32, u32, &'static [(u32, u32, [u8; 3])]),
    /// Refused with this `DecodeError::reason()`.
    Refused(&'static str),
}
use Outcome::{Decoded, Refused};

/// The four bars of `bars.jpg`: red, green, blue, white, 16 px wide each.
const BARS: &[(u32, u32, [u8; 3])] = &[
    (8, 24, [255, 0, 0]),
    (24, 24, [0, 255, 0]),
    (40, 24, [0, 0, 255]),
    (56, 24, [255, 255, 255]),
];

/// Every file of tests/fixtures/bad/ and its outcome (docs/robustness.md, "The bad-input corpus").
const CORPUS: &[(&str, Outcome)] = &[
    ("bars.jpg", Decoded(64, 48, BARS)),
    ("bars_cut_10.jpg", Refused("truncated")),
    ("bars_cut_50.jpg", Refused("truncated")),
    ("bars_cut_90.jpg", Refused("truncated")),
    ("bars_cut_eoi.jpg", Refused("truncated")),
    ("bars_progressive_cut_50.jpg", Refused("truncated")),
    // Junk between segments is skipped, as libjpeg does (with a warning).
    ("bars_garbage_between_markers.jpg", Decoded(64, 48, BARS)),
    // Baseline JPEG has no checksum: damaged entropy-coded data decodes to
    // wrong pixels without any error (the frame then goes through the
    // decision like any other; it is not counted as unreadable).
    ("bars_bad_huffman.jpg", Decoded(64, 48, &[])),
    // No Huffman tables (DHT): libjpeg-turbo falls back on the standard
    // tables of T.81 Annex K, as MJPEG webcams expect of their frames.
    ("bars_no_dht.jpg", Decoded(64, 48, BARS)),
    ("one_pixel.jpg", Decoded(1, 1, &[(0, 0, [255, 255, 0])])),
    ("huge_header.jpg", Refused("too_large")),
    ("empty.jpg", Refused("empty")),
    ("text.jpg", Refused("unknown_format")),
    ("html.png", Refused("unknown_format")),
    ("png_bad_crc.png", Refused("corrupt")),
    ("png_cut.png", Refused("corrupt")),
    // A palette of 7 bytes: the png crate 0.18.1 panics on it; refused first.
    ("png_short_palette.png", Refused("corrupt")),
    // An animated GIF gives its first frame.
    (
        "gif_anim.gif",
        Decoded(8, 8, &[(0, 0, [255, 0, 0]), (7, 7, [255, 0, 0])]),
    ),
    (
        "webp_lossless.webp",
        Decoded(8, 8, &[(3, 3, [0, 128, 255])]),
    ),
    ("tiff_rgb.tif", Decoded(8, 8, &[(3, 3, [200, 100, 50])])),
    ("bmp_rgb.bmp", Decoded(8, 8, &[(3, 3, [1, 2, 3])])),
];

#[test]
fn every_bad_input_has_its_documented_outcome() {
    let dir = common::fixture("bad");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "tests/fixtures/bad/ and CORPUS differ");
    for (name, outcome) in CORPUS {
        let got = decode_file(&dir.join(name), &DecodeLimits::default());
        match (outcome, got) {
            (Decoded(w, h, pixels), Ok(img)) => {
                assert_eq!((img.width(), img.height()), (*w, *h), "{name}");
                for (x, y, want) in *pixels {
                    let p = img.get_pixel(*x, *y).0;
                    let close = p.iter().zip(want).all(|(a, b)| a.abs_diff(*b) <= 6);
                    assert!(close, "{name} at ({x}, {y}): {p:?}, want {want:?}");
                }
            }
            (Refused(reason), Err(e)) => assert_eq!(e.reason(), *reason, "{name}: {e}"),
            (Decoded(..), Err(e)) => panic!("{name}: refused ({e}), want decoded"),
            (Refused(reason), Ok(_)) => panic!("{name}: decoded, want refused as {reason}"),
        }
    }
    // Damaged entropy-coded data decodes, but not to the original bars.
    let bad = decode_file(&dir.join("bars_bad_huffman.jpg"), &DecodeLimits::default()).unwrap();
    assert_ne!(bad.get_pixel(8, 24).0, [254, 0, 0]);
}

/// The daemon reads the whole corpus, skips and counts each refused file by
/// its reason, classifies the rest, and exits 0.
#[test]
fn daemon_counts_every_bad_input_and_carries_on() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = common::files_config(
        tmp.path(),
        &common::fixture("bad"),
        &common::default_model(),
        "",
    );
    let out = common::camtrapd_cmd()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let decoded = CORPUS
        .iter()
        .filter(|(_, o)| matches!(o, Decoded(..)))
        .count();
    let refused = CORPUS.len() - decoded;
    assert_eq!((decoded, refused), (9, 12));
    assert!(
        err.contains("final stats: frames 21 classified 9 detections 0 rejected {below_threshold: 9, unreadable: 12} unreadable {corrupt: 3, empty: 1, too_large: 1, truncated: 5, unknown_format: 2}"),
        "{err}"
    );
}

/// Runs the daemon over `files` (name, bytes) with `RUST_BACKTRACE=1`;
/// returns its stderr, after checking it exited 0 with no panic text.
fn run_daemon_over(files: &[(&str, &[u8])]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let frames = tmp.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    for (name, bytes) in files {
        std::fs::write(frames.join(name), bytes).unwrap();
    }
    let cfg = common::files_config(tmp.path(), &frames, &common::default_model(), "");
    let out = common::camtrapd_cmd()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    err
}

/// The 557-byte JPEG fuzzing found (issue 21; `regressions/` of the full
/// data sets). libjpeg-turbo only warns about its header, but camtrapd took
/// the warning for a refusal and handed the file to the `image` crate,
/// whose zune-jpeg 0.5.15 panics on it (`src/idct/avx2.rs:246`). Now
/// libjpeg-turbo, the only JPEG decoder, decodes it with its warning, to
/// the pixels Pillow 11.3.0 gives (the same libjpeg-turbo; byte sum
/// 824436), and the daemon classifies it: no panic text, no warning.
#[test]
fn the_jpeg_that_panicked_zune_jpeg_decodes_as_in_pillow() {
    let Some(data) = common::full_data("regressions/zune_jpeg_idct_avx2_panic.jpg") else {
        return;
    };
    let file = data.join("regressions/zune_jpeg_idct_avx2_panic.jpg");
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(bytes.len(), 557);
    let img = decode_file(&file, &DecodeLimits::default()).unwrap();
    assert_eq!(img.dimensions(), (64, 48));
    assert_eq!(img.get_pixel(0, 0).0, [44, 44, 44]);
    assert_eq!(img.get_pixel(4, 0).0, [49, 49, 49]);
    let sum: u64 = img.as_raw().iter().map(|&b| u64::from(b)).sum();
    assert_eq!(sum, 824_436, "Pillow 11.3.0's decode of the same file");
    let err = run_daemon_over(&[("bad.jpg", &bytes)]);
    assert!(!err.contains(" WARN "), "{err}");
    assert!(err.contains("final stats: frames 1 classified 1 "), "{err}");
}

/// A JPEG libjpeg-turbo refuses (a component with sampling factor 0 in the
/// frame header, as the fuzzers make them) is `corrupt` with
/// libjpeg-turbo's message, is not tried with another decoder, and costs
/// the daemon one warning line.
#[test]
fn a_jpeg_libjpeg_turbo_refuses_is_one_corrupt_frame_and_one_line() {
    let mut bytes = std::fs::read(common::fixture("bad/bars.jpg")).unwrap();
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline frame header");
    // Marker, length, precision, height, width, Nf, then the first
    // component's id and its sampling factors.
    bytes[sof + 2 + 2 + 6 + 1] = 0x01;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad_sampling.jpg");
    std::fs::write(&file, &bytes).unwrap();
    let e = decode_file(&file, &DecodeLimits::default()).unwrap_err();
    assert_eq!(e.reason(), "corrupt", "{e}");
    assert_eq!(e.to_string(), REFUSED);
    let err = run_daemon_over(&[("bad_sampling.jpg", &bytes)]);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("bad_sampling.jpg"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(" WARN "), "{}", lines[0]);
    assert!(
        lines[0].ends_with(&format!("bad_sampling.jpg: skipped: {REFUSED}")),
        "{}",
        lines[0]
    );
    assert!(err.contains("unreadable {corrupt: 1}"), "{err}");
}

/// What camtrapd says about that file: libjpeg-turbo's own message.
const REFUSED: &str = "corrupt image: Bogus sampling factors";
