//! The names of the score functions and the units of their thresholds:
//! plain data that the model bundle's manifest (`[thresholds] score`), the
//! config (`[decision] score`), the calibrated thresholds file and the
//! detection JSON (`score_fn`) all name.
//!
//! This module holds only the names, the units and which model outputs each
//! needs; how each score is computed from the model's output is
//! [`crate::decision::score`] (definitions and sources are listed there).
//! It sits below both so that the manifest can name a score function
//! without depending on the decision that reads it.

use serde::{Deserialize, Serialize};

use super::manifest::{Activation, OutputKind};

/// A score function: how a frame's confidence is computed (definitions and
/// sources in [`crate::decision::score`]). The names are those of the config
/// (`[decision] score`), the command line (`--score`) and the detection JSON
/// (`score_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreFn {
    /// Maximum softmax probability (Hendrycks & Gimpel 2017), 0..1.
    Msp,
    /// MSP after temperature scaling with a T fitted on calibration data (Guo et al. 2017), 0..1.
    MspTemp,
    /// The top label's logit (Vaze et al. 2022), unbounded.
    MaxLogit,
    /// Negative energy `log Σ_j exp(z_j)` (Liu et al. 2020), unbounded.
    Energy,
    /// The top label's sigmoid score, for one-vs-rest heads, 0..1.
    Sigmoid,
    /// Minus the distance to the k-th nearest training embedding (Sun et al. 2022), -2..0.
    Knn,
}

impl ScoreFn {
    /// Every score function, in the order of reports.
    pub const ALL: [ScoreFn; 6] = [
        ScoreFn::Msp,
        ScoreFn::MspTemp,
        ScoreFn::MaxLogit,
        ScoreFn::Energy,
        ScoreFn::Sigmoid,
        ScoreFn::Knn,
    ];

    /// The name used in config files, on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreFn::Msp => "msp",
            ScoreFn::MspTemp => "msp_temp",
            ScoreFn::MaxLogit => "max_logit",
            ScoreFn::Energy => "energy",
            ScoreFn::Sigmoid => "sigmoid",
            ScoreFn::Knn => "knn",
        }
    }

    /// A short human description for tables.
    pub fn title(self) -> &'static str {
        match self {
            ScoreFn::Msp => "max softmax probability (MSP)",
            ScoreFn::MspTemp => "MSP + temperature scaling",
            ScoreFn::MaxLogit => "max-logit",
            ScoreFn::Energy => "energy score",
            ScoreFn::Sigmoid => "sigmoid (one-vs-rest)",
            ScoreFn::Knn => "kNN embedding distance",
        }
    }

    /// Whether scores (and thresholds) are 0..1 probabilities; the others
    /// are in their own units and need calibrated thresholds.
    pub fn bounded(self) -> bool {
        matches!(self, ScoreFn::Msp | ScoreFn::MspTemp | ScoreFn::Sigmoid)
    }

    /// The score used when nothing chooses one: the head's own 0..1 score
    /// (`msp` for softmax heads, `sigmoid` for one-vs-rest heads).
    pub fn head_default(activation: Activation) -> ScoreFn {
        match activation {
            Activation::Softmax => ScoreFn::Msp,
            Activation::Sigmoid => ScoreFn::Sigmoid,
        }
    }

    /// Why this score function cannot be used with a model whose scores
    /// output is `kind`/`activation` (and which has a kNN bank or not);
    /// `None` when it can.
    pub fn unavailable(
        self,
        kind: OutputKind,
        activation: Activation,
        has_bank: bool,
    ) -> Option<String> {
        let logits = kind == OutputKind::Logits;
        match self {
            ScoreFn::Msp if !logits && activation == Activation::Sigmoid => Some(
                "the model outputs sigmoid probabilities, not softmax ones; use score = \"sigmoid\"".into(),
            ),
            ScoreFn::MspTemp | ScoreFn::MaxLogit | ScoreFn::Energy if !logits => Some(format!(
                "{} needs raw logits, and the model's output already holds probabilities (output.kind = \"probabilities\")",
                self.as_str()
            )),
            ScoreFn::Sigmoid if activation != Activation::Sigmoid => Some(
                "needs a one-vs-rest (sigmoid) head; this model's head is softmax (output.activation = \"softmax\")".into(),
            ),
            ScoreFn::Knn if !has_bank => Some(
                "needs an embedding bank in the model bundle ([knn] in model.toml); build one with `camtrapd bank`".into(),
            ),
            _ => None,
        }
    }
}

impl std::fmt::Display for ScoreFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ScoreFn {
    type Err = String;
    fn from_str(s: &str) -> Result<ScoreFn, String> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        ScoreFn::ALL
            .into_iter()
            .find(|f| f.as_str() == norm)
            .ok_or_else(|| {
                format!(
                    "unknown score function {s:?}; allowed: {}",
                    ScoreFn::ALL.map(ScoreFn::as_str).join(", ")
                )
            })
    }
}

/// Checks a threshold is a finite score in 0..=1.
///
/// # Errors
/// A message saying what is allowed.
pub fn check_threshold(t: f32) -> Result<(), String> {
    if t.is_finite() && (0.0..=1.0).contains(&t) {
        Ok(())
    } else {
        Err(format!("{t} is not a score; allowed 0.0..=1.0"))
    }
}

/// Checks a threshold for a score function: 0..=1 when its scores are
/// `bounded` (probabilities, [`ScoreFn::bounded`]), any finite number
/// otherwise (max-logit, energy, kNN distances are in their own units).
///
/// # Errors
/// The message for the config or manifest error.
pub fn check_threshold_for(t: f32, bounded: bool) -> Result<(), String> {
    if bounded {
        check_threshold(t)
    } else if t.is_finite() {
        Ok(())
    } else {
        Err(format!("{t} is not a finite number"))
    }
}
