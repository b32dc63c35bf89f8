//! Refitting the head without a fold's held-out part, for the unseen-species
//! estimate and the held-out calibration ([`crate::eval::unseen`]).
//!
//! Every image's backbone outputs (ImageNet logits and embedding) are
//! computed once; a fold then trains a head (and fits the second opinions,
//! [`super::evidence`]) on the training split without its held-out labels
//! and negative groups, and scores every image the way the exported bundle
//! would: its `logits` (or `probabilities`) output through the decision's
//! own [`Scorer`]. A head trains in seconds, so a fold costs seconds.

use crate::decision::{ScoreFn, Scorer};
use crate::eval::calibrate::score_all;
use crate::eval::dataset::{Category, Item};
use crate::eval::outputs::Outputs;
use crate::eval::unseen::FoldScores;
use crate::model::manifest::{Activation, OutputKind};

use super::evidence::{Evidence, EvidenceParams};
use super::head::{train, Examples, Head, Loss, TrainConfig, TrainError, TrainReport};

/// What the folds share: the images, their backbone outputs and the
/// training settings.
#[derive(Debug, Clone, Copy)]
pub struct Prepared<'a> {
    /// Every readable image of the data set (all splits).
    pub items: &'a [&'a Item],
    /// Their backbone outputs: `scores` = ImageNet logits `[C]`, `embedding` `[D]`.
    pub outputs: &'a [Outputs],
    /// The labels, in head output order.
    pub labels: &'a [String],
    /// The training split's name.
    pub train_split: &'a str,
    /// Training settings (the L2 strength already chosen).
    pub cfg: &'a TrainConfig,
    /// Share of the training images held out for early stopping.
    pub val_fraction: f64,
    /// Second opinions, or `None` for the head alone.
    pub evidence: Option<EvidenceParams>,
}

/// A head (and its second opinions) fitted on some labels.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The labels it has, in output order.
    pub labels: Vec<String>,
    /// The head.
    pub head: Head,
    /// What training did.
    pub report: TrainReport,
    /// The second opinions, if used.
    pub evidence: Option<Evidence>,
}

impl Prepared<'_> {
    /// Trains on the training split without the labels in `drop_labels`
    /// (their images are left out, not turned into negatives) and without
    /// the negative groups (data-set labels of unknown and empty images) in
    /// `drop_groups`. Deterministic for the config's seed.
    ///
    /// # Errors
    /// [`TrainError`] as [`train`] (e.g. a label without training images).
    pub fn fit(
        &self,
        drop_labels: &[String],
        drop_groups: &[String],
    ) -> Result<Fitted, TrainError> {
        let labels: Vec<String> = self
            .labels
            .iter()
            .filter(|l| !drop_labels.contains(l))
            .cloned()
            .collect();
        let target = |i: &Item| -> Option<Option<usize>> {
            match i.category {
                Category::Known => labels.iter().position(|l| *l == i.label).map(Some),
                _ if drop_groups.contains(&i.label) => None,
                _ => Some(None),
            }
        };
        let mut chosen: Vec<(&Item, &Outputs, Option<usize>)> = Vec::new();
        for (item, o) in self.items.iter().zip(self.outputs) {
            if item.split != self.train_split {
                continue;
            }
            if let Some(t) = target(item) {
                chosen.push((item, o, t));
            }
        }
        let refs: Vec<&Item> = chosen.iter().map(|c| c.0).collect();
        let (tr_ix, va_ix) = super::hold_out(&refs, self.val_fraction, self.cfg.seed);
        let dim = self.outputs.first().map_or(0, |o| o.embedding.len());
        let (mut tr, mut va) = (Examples::new(dim), Examples::new(dim));
        for &i in &tr_ix {
            tr.push(&chosen[i].1.embedding, chosen[i].2);
        }
        for &i in &va_ix {
            va.push(&chosen[i].1.embedding, chosen[i].2);
        }
        let (head, report) = train(&tr, &va, labels.len(), self.cfg)?;
        let evidence = match self.evidence {
            Some(params) if self.cfg.loss != Loss::SoftmaxNothing => Some(
                Evidence::fit(
                    labels.len(),
                    params,
                    chosen.iter().filter_map(|(_, o, t)| {
                        Some((
                            t.as_ref().copied()?,
                            o.embedding.as_slice(),
                            o.scores.as_slice(),
                        ))
                    }),
                )
                .map_err(|e| TrainError::Data(e.to_string()))?,
            ),
            _ => None,
        };
        Ok(Fitted {
            labels,
            head,
            report,
            evidence,
        })
    }
}

impl Fitted {
    /// The bundle's scores output kind and activation.
    pub fn output(&self) -> (OutputKind, Activation) {
        match (self.head.loss, &self.evidence) {
            (_, Some(_)) | (Loss::Sigmoid, None) => (OutputKind::Logits, Activation::Sigmoid),
            (Loss::Entropic, None) => (OutputKind::Logits, Activation::Softmax),
            (Loss::SoftmaxNothing, None) => (OutputKind::Probabilities, Activation::Softmax),
        }
    }

    /// What the exported bundle's scores output holds for one image with
    /// backbone outputs `o`: the combined logits with second opinions, else
    /// the head's logits (its probabilities for `softmax-nothing`).
    pub fn raw(&self, o: &Outputs) -> Vec<f32> {
        match &self.evidence {
            Some(ev) => {
                let z = self.head.logits(&o.embedding);
                let mut s = Vec::with_capacity(self.labels.len());
                ev.combine(&z, &o.embedding, &o.scores, &mut s);
                s
            }
            None if self.head.loss == Loss::SoftmaxNothing => self.head.probabilities(&o.embedding),
            None => self.head.logits(&o.embedding),
        }
    }

    /// The score function the bundle's thresholds are for (the head's own
    /// 0..1 score: `sigmoid`, or `msp` for softmax heads).
    pub fn score_fn(&self) -> ScoreFn {
        ScoreFn::head_default(self.output().1)
    }

    /// Scores every image (backbone outputs `outputs`, aligned with
    /// `items`) as the daemon would score the exported bundle; truth in this
    /// fit's label indices.
    pub fn scores(&self, items: &[&Item], outputs: &[Outputs]) -> FoldScores {
        let (kind, activation) = self.output();
        let scorer = Scorer::new(self.score_fn(), kind, activation, None, 1.0, None);
        let raws: Vec<Outputs> = outputs
            .iter()
            .map(|o| Outputs {
                scores: self.raw(o),
                embedding: Vec::new(),
            })
            .collect();
        let refs: Vec<&Outputs> = raws.iter().collect();
        FoldScores {
            n_labels: self.labels.len(),
            truth: items
                .iter()
                .map(|i| {
                    (i.category == Category::Known)
                        .then(|| self.labels.iter().position(|l| *l == i.label))
                        .flatten()
                })
                .collect(),
            scored: score_all(&scorer, &refs),
        }
    }
}
