//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data` beside the checkout. Panics loudly when it is missing:
/// these tests need the real images and must not pass vacuously.
pub fn shared_data() -> PathBuf {
    let p = repo().join("../shared/data");
    assert!(
        p.join("zoo12/known").is_dir(),
        "test data missing: {} must hold zoo12/ and camera_trap/ (the read-only shared/ folder beside the checkout)",
        p.display()
    );
    p
}

/// A file in tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// The default (int8) model bundle.
pub fn default_model() -> PathBuf {
    repo().join("models/efficientnet-lite0-imagenet")
}

/// The fp32 reference bundle.
pub fn fp32_model() -> PathBuf {
    repo().join("models/efficientnet-lite0-imagenet-fp32")
}

/// The camtrapd binary built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_camtrapd"))
}
pub mod broker;
