//! Where the tests find their photos. Shared by the integration tests
//! (`tests/common`) and the library's unit tests (`src/lib.rs` includes
//! this file as `test_data`).
//!
//! * [`sample_photos`]: the ~30 photos shipped in `examples/photos/`, always
//!   there, so the tests that need a few real photos run on any clone.
//! * [`full_data`]: the full data sets (zoo12's 1,655 photos and manifest,
//!   the camera-trap frames), which are not in the repository. They are read
//!   from `$CAMTRAPD_DATA`, else from `../shared/data` beside the checkout.
//!   A test that needs them and does not find them prints one line saying
//!   what it did not run and why, and returns without asserting anything.
//!   When `CAMTRAPD_DATA` is set (`.ci/run` sets it), a missing folder is a
//!   failure instead, so CI never skips.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// The environment variable naming the full data sets' folder.
pub const DATA_ENV: &str = "CAMTRAPD_DATA";

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `examples/photos/`: sample photos from zoo12 (Caltech-101, CC BY 4.0),
/// shipped with the repository (see its ATTRIBUTION.md).
pub fn sample_photos() -> PathBuf {
    let p = root().join("examples/photos");
    assert!(
        p.join("elephant").is_dir(),
        "{} is part of the repository and must hold elephant/, llama/, nothing/, ...",
        p.display()
    );
    p
}

/// One shipped sample photo, e.g. `sample_photo("elephant/c101_image_0004.jpg")`.
pub fn sample_photo(rel: &str) -> PathBuf {
    let p = sample_photos().join(rel);
    assert!(p.is_file(), "sample photo {} is missing", p.display());
    p
}

/// The full data sets' folder: `$CAMTRAPD_DATA` (relative to the
/// repository root), else `../shared/data` beside the checkout. It holds
/// `zoo12/` and `camera_trap/`.
///
/// Returns `None` when the folder is missing and `CAMTRAPD_DATA` is not
/// set, after printing one line to stderr (bypassing the test harness's
/// capture, so `cargo test` shows it) that names the running test and
/// `needs`, what it would have used. The caller then returns: the test
/// is skipped, and says so.
///
/// # Panics
/// When `CAMTRAPD_DATA` is set and the folder does not hold `zoo12/`: a
/// run that asked for the data (CI) must not skip.
pub fn full_data(needs: &str) -> Option<PathBuf> {
    let set = std::env::var_os(DATA_ENV).filter(|v| !v.is_empty());
    let dir = match &set {
        Some(v) => root().join(v),
        None => root().join("../shared/data"),
    };
    if dir.join("zoo12/known").is_dir() {
        return Some(dir);
    }
    if set.is_some() {
        panic!(
            "{DATA_ENV}={} does not hold the full data sets (zoo12/known is missing)",
            dir.display()
        );
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs {needs} from the full data sets; ../shared/data is not beside the checkout (set {DATA_ENV} to their folder to run it)"
    );
    None
}
