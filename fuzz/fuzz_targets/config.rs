//! Config parsing (`camtrapd::config::Config::from_str`) on arbitrary text:
//! Ok or a ConfigError with a position, never a panic.
#![no_main]

use std::path::Path;

use camtrapd::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_str(text, Path::new("/fuzz/camtrapd.toml")) {
        Ok(_) => {}
        Err(ConfigError::Invalid { line, column, .. }) => {
            assert!(line >= 1 && column >= 1);
            assert!(line <= text.lines().count().max(1) + 1);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
