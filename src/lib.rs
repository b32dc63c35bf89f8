//! camtrapd: an edge daemon for camera traps and zoo-enclosure cameras.
//!
//! Frames flow through the pipeline in one direction:
//!
//! ```text
//! source (files, V4L2 camera) ─► decode ─► preprocess (resize + normalise)
//!        ─► model (ONNX run by tract) ─► decision (open-set: a score function
//!        such as MSP, energy or kNN, per-label calibrated thresholds) ─► sinks (stdout, later MQTT)
//! ```
//!
//! Each stage is a module named after it:
//!
//! | module | role |
//! | --- | --- |
//! | [`config`] | the daemon's TOML configuration and its validation |
//! | [`source`] | where frames come from ([`source::FrameSource`]) |
//! | [`frame`] | one decoded frame with its source and capture time |
//! | [`decode`] | bytes → RGB8 image, safely (limits, EXIF, every colour type) |
//! | [`preprocess`] | RGB8 image → the model's input tensor |
//! | [`motion`] | motion gating: skip the model when nothing in the frame changed |
//! | [`model`] | the model bundle (`model.onnx` + `model.toml`) and inference |
//! | [`decision`] | score functions, thresholds (and the calibrated thresholds file), detections and rejections |
//! | [`sink`] | where detections go ([`sink::Sink`]) |
//! | [`pipeline`] | wires one frame through all of the above, with counters |
//! | [`stats`] | the counters and latency figures of a running pipeline |
//! | [`live`] | what the running pipeline shows the dashboard (counters, events, latest frame) |
//! | [`review`] | review capture: frames kept for the review queue, written off the frame path, quota, sorting into a data set |
//! | [`web`] | the web dashboard: status, events and review pages, `/metrics`, `/api/` |
//! | [`read`] | reading user-named files: regular files only, size-capped |
//! | [`shutdown`] | SIGTERM/SIGINT/SIGHUP handling and interruptible waits |
//! | [`notify`] | systemd notifications: READY, STATUS, RELOADING, STOPPING, WATCHDOG |
//! | [`train`] | `camtrapd train`: a linear head (sigmoid, softmax-nothing or entropic loss) on the backbone's embeddings, exported as one ONNX graph |
//! | [`eval`] | open-set quality: data sets, cached model outputs, metrics (AUROC, FPR@95%TPR, AUPR, OSCR), calibration, reports |
//! | [`bench`](mod@bench) | per-stage latency benchmark |
//! | [`exit`] | process exit codes (sysexits) |
//! | [`cli`] | the `camtrapd` command line |

#![deny(missing_docs)]
// Nothing from outside (frames, files, configs, the broker) may panic the
// daemon: no unwrap/expect/panic in non-test code (issue 8).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod bench;
pub mod cli;
pub mod config;
pub mod decision;
pub mod decode;
pub mod eval;
pub mod exit;
pub mod frame;
pub mod live;
pub mod model;
pub mod motion;
pub mod notify;
pub mod pipeline;
pub mod preprocess;
pub mod read;
pub mod review;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod stats;
mod text;
mod toml_errors;
pub mod train;
pub mod web;

// The unit tests' photos: the full data sets, skipped with a message when
// missing (shared with the integration tests).
#[cfg(test)]
#[path = "../tests/common/data.rs"]
mod test_data;

pub use config::Config;
pub use frame::Frame;
