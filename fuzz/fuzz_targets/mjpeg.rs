//! Camera frames: the MJPEG repair and decode path
//! (`camtrapd::source::v4l2::mjpeg::decode_mjpeg`: Annex K Huffman tables
//! inserted into frames without DHT, truncation check, decode) on arbitrary
//! bytes: Ok or a DecodeError, never a panic.
#![no_main]

use camtrapd::decode::{DecodeLimits, DecodeTarget};
use camtrapd::model::manifest::ResizeMode;
use camtrapd::preprocess::InputGeometry;
use camtrapd::source::v4l2::mjpeg::decode_mjpeg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits {
        max_file_bytes: 16 << 20,
        max_dimension: 4096,
        max_alloc_bytes: 256 << 20,
    };
    // Shrinking while decoding (DCT scaling) down to a 64-pixel longest side.
    let target = DecodeTarget {
        input: None,
        min_longest_side: 64,
        crop: false,
    };
    if let Ok(d) = decode_mjpeg(data, &limits, &target) {
        assert!(d.image.width() > 0 && d.image.height() > 0);
    }
    // Cropped to what a 32×32 centre crop reads.
    let target = DecodeTarget::model(InputGeometry {
        width: 32,
        height: 32,
        mode: ResizeMode::CenterCrop,
        crop_fraction: 0.875,
    });
    if let Ok(d) = decode_mjpeg(data, &limits, &target) {
        let w = d.window;
        assert!(d.image.width() > 0 && d.image.height() > 0);
        assert!(w.x + d.image.width() <= w.full_width);
        assert!(w.y + d.image.height() <= w.full_height);
    }
});
