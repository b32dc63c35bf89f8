//! Frame decoding (`camtrapd::decode::decode_bytes`) on arbitrary bytes: must
//! return Ok or a DecodeError, never panic, hang or allocate without bound.
#![no_main]

use camtrapd::decode::{decode_bytes, DecodeLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Limits below libFuzzer's 2 GB RSS cap: a claimed huge image must be
    // refused from its header, not allocated.
    let limits = DecodeLimits {
        max_file_bytes: 16 << 20,
        max_dimension: 4096,
        max_alloc_bytes: 256 << 20,
    };
    if let Ok(img) = decode_bytes(data, &limits) {
        assert!(img.width() > 0 && img.height() > 0);
        assert!(img.width() <= 4096 && img.height() <= 4096);
    }
});
