//! Evaluation of open-set quality: how well a model's scores separate the
//! images of its labels ("known") from everything else ("unknown": other
//! animals, empty frames).
//!
//! Today: the metrics ([`metrics`]). The `camtrapd eval` and `calibrate`
//! commands build on them.

pub mod metrics;
