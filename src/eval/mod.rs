//! Evaluation of open-set quality: how well a model's scores separate the
//! images of its labels ("known") from everything else ("unknown": other
//! animals, empty frames).
//!
//! * [`dataset`]: the data-set layouts users have (folder per label, manifest CSV);
//! * [`outputs`]: running the model over a data set, with a cache;
//! * [`metrics`]: AUROC, FPR@95%TPR, AUPR, OSCR;
//! * [`calibrate`]: per-label thresholds at a target precision;
//! * [`unseen`]: the unseen-species estimate (species-out and label-out
//!   folds) and the calibration that holds on it;
//! * [`report`]: the side-by-side evaluation of every score function, as
//!   JSON and as a self-contained HTML page with plots.

pub mod calibrate;
pub mod dataset;
pub mod metrics;
pub mod outputs;
pub mod report;
pub mod unseen;
