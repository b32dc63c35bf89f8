//! Model manifest parsing (`camtrapd::model::manifest::Manifest::from_str`)
//! on arbitrary text: Ok or a ManifestError, never a panic.
#![no_main]

use std::path::Path;

use camtrapd::model::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Manifest::from_str(text, Path::new("/fuzz/model.toml")) {
        let _ = e.to_string();
    }
});
