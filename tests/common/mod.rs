//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

mod data;
#[allow(unused_imports)]
pub use data::{full_data, sample_photo, sample_photos};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

/// The emulator to run [`bin`] through, from `CAMTRAPD_TEST_RUNNER`
/// (scripts/test-aarch64.sh sets `qemu-aarch64 -L /usr/aarch64-linux-gnu`),
/// split on whitespace; empty when the binary runs natively.
#[allow(dead_code)]
pub fn runner() -> Vec<String> {
    std::env::var("CAMTRAPD_TEST_RUNNER")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// How much longer the tests that bound a time wait for the binary under
/// test: 1 natively; under an emulator ([`runner`]) `CAMTRAPD_TEST_SLOWDOWN`
/// or 10 (qemu-user runs the model ≈ 50× slower than native, and the
/// tests' bounds have headroom).
#[allow(dead_code)]
pub fn slowdown() -> u32 {
    if runner().is_empty() {
        return 1;
    }
    std::env::var("CAMTRAPD_TEST_SLOWDOWN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// A `Command` that runs the camtrapd binary under test, through
/// [`runner`] when one is set, so that the tests that start the daemon
/// also run on a cross-built binary. qemu-user runs the program inside its
/// own process, so the child's pid gets the signals the tests send.
#[allow(dead_code)]
pub fn camtrapd_cmd() -> std::process::Command {
    let r = runner();
    match r.split_first() {
        Some((prog, args)) => {
            let mut c = std::process::Command::new(prog);
            c.args(args).arg(bin());
            c
        }
        None => std::process::Command::new(bin()),
    }
}

/// Writes `<dir>/camtrapd.toml`: a files source over `frames`, the model
/// bundle `model`, then `extra` (more TOML); returns its path.
pub fn files_config(
    dir: &std::path::Path,
    frames: &std::path::Path,
    model: &std::path::Path,
    extra: &str,
) -> PathBuf {
    let cfg = dir.join("camtrapd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"files\"\npath = \"{}\"\n[model]\npath = \"{}\"\n{extra}",
            frames.display(),
            model.display()
        ),
    )
    .unwrap();
    cfg
}

/// Runs `camtrapd check-config cfg`: its exit code and its stderr.
pub fn check_config(cfg: &std::path::Path) -> (Option<i32>, String) {
    let out = camtrapd_cmd()
        .arg("check-config")
        .arg(cfg)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
pub mod broker;
pub mod dashboard;
