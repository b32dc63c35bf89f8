//! Evaluation of open-set quality: how well a model's scores separate the
//! images of its labels ("known") from everything else ("unknown": other
//! animals, empty frames).
//!
//! Today: the metrics ([`metrics`]) and the data-set layouts ([`dataset`]).
//! The `camtrapd eval` and `calibrate` commands build on them.

pub mod dataset;
pub mod metrics;
