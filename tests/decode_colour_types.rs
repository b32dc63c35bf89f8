//! Every colour type a camera or a user's photo folder produces becomes RGB8
//! with the right pixel values; bad files are refused with a reason.

mod common;

use camtrapd::decode::{decode_file, DecodeLimits};
use common::fixture;

fn decode(name: &str) -> image::RgbImage {
    decode_file(&fixture(name), &DecodeLimits::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn close(a: [u8; 3], b: [u8; 3], tol: i16) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (i16::from(*x) - i16::from(y)).abs() <= tol)
}

#[test]
fn greyscale_infrared_jpeg_becomes_grey_rgb() {
    let img = decode("grey_ir.jpg");
    assert_eq!(img.dimensions(), (32, 16));
    assert!(
        close(img.get_pixel(2, 8).0, [40, 40, 40], 3),
        "{:?}",
        img.get_pixel(2, 8)
    );
    assert!(
        close(img.get_pixel(29, 8).0, [200, 200, 200], 3),
        "{:?}",
        img.get_pixel(29, 8)
    );
}

#[test]
fn cmyk_jpeg_becomes_rgb() {
    let img = decode("cmyk.jpg");
    assert_eq!(img.dimensions(), (32, 16));
    // Pillow decodes the same file to (255, 0, 0) and (0, 0, 255).
    assert!(
        close(img.get_pixel(2, 8).0, [255, 0, 0], 12),
        "{:?}",
        img.get_pixel(2, 8)
    );
    assert!(
        close(img.get_pixel(29, 8).0, [0, 0, 255], 12),
        "{:?}",
        img.get_pixel(29, 8)
    );
}

#[test]
fn exif_orientation_is_applied() {
    // Stored 40x20 red|blue with Orientation = 6: upright it is 20x40, red on top.
    let img = decode("exif_rot6.jpg");
    assert_eq!(img.dimensions(), (20, 40));
    assert!(
        close(img.get_pixel(10, 3).0, [255, 0, 0], 12),
        "{:?}",
        img.get_pixel(10, 3)
    );
    assert!(
        close(img.get_pixel(10, 36).0, [0, 0, 255], 12),
        "{:?}",
        img.get_pixel(10, 36)
    );
}

#[test]
fn alpha_16bit_and_palette_pngs() {
    let img = decode("rgba.png");
    assert_eq!(img.get_pixel(0, 0).0, [0, 255, 0]); // alpha dropped
    assert_eq!(img.get_pixel(5, 5).0, [0, 255, 0]);
    assert_eq!(decode("grey_alpha.png").get_pixel(3, 3).0, [128, 128, 128]);
    assert_eq!(decode("grey16.png").get_pixel(3, 3).0, [128, 128, 128]);
    assert_eq!(decode("rgb16.png").get_pixel(3, 3).0, [255, 0, 128]);
    assert_eq!(decode("palette.png").get_pixel(3, 3).0, [10, 200, 30]);
    let one = decode("one_pixel.png");
    assert_eq!(
        (one.dimensions(), one.get_pixel(0, 0).0),
        ((1, 1), [255, 255, 0])
    );
}

#[test]
fn huge_header_is_refused_before_allocating() {
    let e = decode_file(&fixture("huge_header.png"), &DecodeLimits::default()).unwrap_err();
    assert_eq!(e.reason(), "too_large", "{e}");
    assert!(e.to_string().contains("100000"), "{e}");
}

#[test]
fn real_camera_trap_frames_decode_and_their_truncations_are_refused() {
    let Some(data) = common::full_data("the 30 camera-trap frames (camera_trap/)") else {
        return;
    };
    let manifest = std::fs::read_to_string(data.join("camera_trap/manifest.csv")).unwrap();
    let mut decoded = 0;
    for line in manifest.lines().skip(1) {
        let path = data
            .join("camera_trap")
            .join(line.split(',').next().unwrap());
        let img = decode_file(&path, &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            img.width() >= 640 && img.height() >= 480,
            "{}",
            path.display()
        );
        decoded += 1;
    }
    // All 30 frames (day colour and infrared night) decode.
    assert_eq!(decoded, 30);
    // A real night frame cut at several points (as a camera or a copy cut short would)
    // is refused as truncated, never decoded into a half-grey frame.
    let bytes =
        std::fs::read(data.join("camera_trap/unknown/american_black_bear/ena24_8786.jpg")).unwrap();
    for cut in [
        100,
        2_000,
        bytes.len() / 4,
        bytes.len() / 2,
        bytes.len() - 10,
    ] {
        let e =
            camtrapd::decode::decode_bytes(&bytes[..cut], &DecodeLimits::default()).unwrap_err();
        assert_eq!(e.reason(), "truncated", "cut at {cut}: {e}");
    }
}
