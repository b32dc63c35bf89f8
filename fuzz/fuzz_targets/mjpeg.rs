//! Camera frames: the MJPEG repair and decode path
//! (`camtrapd::source::v4l2::mjpeg::decode_mjpeg`: Annex K Huffman tables
//! inserted into frames without DHT, truncation check, decode) on arbitrary
//! bytes: Ok or a DecodeError, never a panic.
#![no_main]

use camtrapd::decode::{DecodeLimits, DecodeTarget};
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
    };
    if let Ok(img) = decode_mjpeg(data, &limits, &target) {
        assert!(img.width() > 0 && img.height() > 0);
    }
});
