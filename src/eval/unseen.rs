//! How figures hold on species nobody photographed: the unseen-species
//! estimate and the calibration that holds on it.
//!
//! A threshold fitted on photos of some unknown species rejects *those*
//! species well; the animals that matter are the ones nobody photographed.
//! So the data set is cut into groups, and each group in turn is hidden
//! from training and calibration, then counted:
//!
//! * **species-out**: each negative folder (or manifest label: one species
//!   of unknown animal, one kind of empty frame), or 1/k of them when there
//!   are many, is left out; its photos are judged at thresholds fitted
//!   without it ([`Protocol::SpeciesOut`]).
//! * **label-out**: each known label in turn is treated as an animal the
//!   user never listed; the model (head) is refitted without it and its
//!   photos stand in for "an animal that looks like one of yours"
//!   ([`Protocol::LabelOut`]).
//!
//! A fold's *rate* is the share of its held-out photos that would be
//! published. The estimate "unseen animals published" is the mean rate over
//! the animal folds (species-out folds of unknown animals, and label-out
//! folds: one species each, equally weighted), with its spread (min, max).
//!
//! **Held-out calibration** ([`select_recall_cap`]): per-label thresholds
//! at a target precision ([`super::calibrate`]) are as low as the
//! calibration photos allow, and a label that no calibration negative
//! resembles gets a threshold at its weakest photo, which lets a look-alike
//! species through. Each label's threshold is therefore also kept at or
//! above the score that keeps a share `r` of its own calibration photos (a
//! *recall cap*), and `r` is the highest value at which the precision still
//! reaches the target when every negative calibration photo is counted at
//! the estimated unseen rate:
//!
//! `precision(r) = TP(r) / (TP(r) + FP_known(r) + N_animal · A(r) + N_empty · E(r))`
//!
//! where `TP` and `FP_known` count calibration photos of the labels
//! published with the right and a wrong label, `N_animal` and `N_empty` are
//! the unknown-animal and empty-frame calibration photos (`N_animal` is the
//! number of known ones when there are no negatives at all), and `A(r)` and
//! `E(r)` are the mean rates of the animal folds and of the empty-frame
//! folds, each fold's rate taken at thresholds fitted without it. For the estimate itself, fold `f`'s cap is chosen from the other
//! folds only, so that no fold grades the choice it helped make.
//!
//! Sources: grouped (leave-one-group-out) cross-validation (e.g. Roberts et
//! al. 2017, "Cross-validation strategies for data with temporal, spatial,
//! hierarchical, or phylogenetic structure", Ecography 40); the open-set
//! protocol of holding out known classes as unknowns (Neal et al. 2018,
//! "Open Set Learning with Counterfactual Images"; Vaze et al. 2022, "Open-
//! Set Recognition: a Good Closed-Set Classifier is All You Need?").

use serde::Serialize;

use super::dataset::{Category, Item};

use super::calibrate::{calibrate_labels, calibrate_pooled, LabelThreshold, Scored};

/// Species-out folds at most (groups are dealt round-robin beyond that).
pub const MAX_SPECIES_FOLDS: usize = 10;
/// Label-out folds at most (labels are dealt round-robin beyond that).
pub const MAX_LABEL_FOLDS: usize = 12;
/// Folds needed for held-out calibration; with fewer, calibration is the
/// ordinary per-label precision search.
pub const MIN_FOLDS: usize = 3;
/// The estimate is flagged when it exceeds the ordinary figure by this factor.
pub const OPTIMISM_FACTOR: f64 = 1.5;

/// The recall caps tried, highest first: 1.00, 0.99, …, 0.50.
pub fn recall_grid() -> Vec<f64> {
    (0..=50).map(|i| 1.0 - f64::from(i) / 100.0).collect()
}

/// What a fold hides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Negative groups (unknown species, kinds of empty frame) left out.
    SpeciesOut,
    /// Known labels treated as unlisted animals.
    LabelOut,
}

impl Protocol {
    /// `species-out` or `label-out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::SpeciesOut => "species-out",
            Protocol::LabelOut => "label-out",
        }
    }
}

/// One fold: what it hides from training and calibration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fold {
    /// The protocol.
    pub protocol: Protocol,
    /// Group names (species-out) or labels (label-out) held out.
    pub held_out: Vec<String>,
    /// Whether the held-out photos are empty frames (no animal).
    pub empty: bool,
}

/// Deals `groups` (names, each once) into at most `max_folds` folds: one
/// group per fold when there are few enough, else round-robin in name
/// order. Every group lands in exactly one fold; no fold is empty.
pub fn group_folds(groups: &[String], max_folds: usize) -> Vec<Vec<String>> {
    let mut names: Vec<String> = groups.to_vec();
    names.sort();
    names.dedup();
    let k = names.len().min(max_folds.max(1));
    let mut folds = vec![Vec::new(); k];
    for (i, n) in names.into_iter().enumerate() {
        folds[i % k].push(n);
    }
    folds
}

/// The species-out folds of a data set: the data-set labels of its unknown
/// images dealt into at most [`MAX_SPECIES_FOLDS`] folds, then those of its
/// empty images the same way. Each fold comes with its mask over `items`
/// (`true`: the item is held out by the fold).
pub fn species_out_folds(items: &[&Item]) -> Vec<(Fold, Vec<bool>)> {
    let mut folds = Vec::new();
    for category in [Category::Unknown, Category::Empty] {
        let groups: Vec<String> = items
            .iter()
            .filter(|i| i.category == category)
            .map(|i| i.label.clone())
            .collect();
        for held_out in group_folds(&groups, MAX_SPECIES_FOLDS) {
            let held = items
                .iter()
                .map(|i| i.category == category && held_out.contains(&i.label))
                .collect();
            folds.push((
                Fold {
                    protocol: Protocol::SpeciesOut,
                    held_out,
                    empty: category == Category::Empty,
                },
                held,
            ));
        }
    }
    folds
}

/// The scores of one model variant (the final model, or one refitted
/// without a fold's held-out part) on every item of the data set.
#[derive(Debug, Clone, Default)]
pub struct FoldScores {
    /// Decision labels of this variant.
    pub n_labels: usize,
    /// Per item: its true label in this variant's label indices (`None`:
    /// unknown, empty, or a held-out label).
    pub truth: Vec<Option<usize>>,
    /// Per item: top label and confidence.
    pub scored: Scored,
}

/// How one label's threshold was fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FittedBy {
    /// The lowest threshold reaching the target precision.
    Precision,
    /// Raised to keep only the recall cap's share of the label's photos.
    RecallCap,
    /// No photos of its own: the pooled threshold.
    Default,
}

impl FittedBy {
    /// `precision`, `recall-cap` or `default`.
    pub fn as_str(self) -> &'static str {
        match self {
            FittedBy::Precision => "precision",
            FittedBy::RecallCap => "recall-cap",
            FittedBy::Default => "default",
        }
    }
}

/// Thresholds fitted on a subset of the items.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// Per label, as the precision search found it (before the cap).
    pub per_label: Vec<LabelThreshold>,
    /// The pooled (default) threshold, capped too.
    pub pooled: LabelThreshold,
    /// The threshold in use per label (NaN-free; `+inf` publishes nothing).
    pub thresholds: Vec<f32>,
    /// How each was fitted.
    pub fitted_by: Vec<FittedBy>,
}

/// The score that keeps a share `r` of `scores` (at or above it), written
/// halfway to the next lower score; `None` without scores.
fn cap_threshold(scores: &mut [f32], r: f64) -> Option<f32> {
    if scores.is_empty() {
        return None;
    }
    scores.sort_by(f32::total_cmp);
    let n = scores.len();
    let keep = ((r * n as f64).ceil() as usize).clamp(1, n);
    let i = n - keep;
    let at = scores[i];
    Some(match i.checked_sub(1).map(|j| scores[j]) {
        Some(below) if below < at => {
            let mid = ((f64::from(at) + f64::from(below)) / 2.0) as f32;
            if mid > below && mid <= at {
                mid
            } else {
                at
            }
        }
        _ => at,
    })
}

/// Fits per-label thresholds on the items where `use_item` is true: the
/// precision search of [`calibrate_labels`] (and [`calibrate_pooled`] for
/// labels without photos), each raised to at least the score that keeps a
/// share `recall_cap` of the label's own rightly-labelled photos (`1.0`:
/// no cap, the ordinary calibration).
pub fn fit(s: &FoldScores, use_item: &[bool], target: f64, recall_cap: f64) -> Fitted {
    let pick = |v: &[Option<usize>]| -> Vec<Option<usize>> {
        v.iter()
            .zip(use_item)
            .filter(|(_, u)| **u)
            .map(|(t, _)| *t)
            .collect()
    };
    let truth = pick(&s.truth);
    let sub = Scored {
        top: s
            .scored
            .top
            .iter()
            .zip(use_item)
            .filter(|(_, u)| **u)
            .map(|(t, _)| *t)
            .collect(),
        score: s
            .scored
            .score
            .iter()
            .zip(use_item)
            .filter(|(_, u)| **u)
            .map(|(t, _)| *t)
            .collect(),
    };
    let per_label = calibrate_labels(s.n_labels, &truth, &sub, target);
    let mut pooled = calibrate_pooled(&truth, &sub, target);
    let right = |label: Option<usize>| -> Vec<f32> {
        sub.top
            .iter()
            .zip(&sub.score)
            .zip(&truth)
            .filter(|((top, sc), t)| {
                **t == Some(**top) && !sc.is_nan() && label.is_none_or(|l| **top == l)
            })
            .map(|((_, sc), _)| *sc)
            .collect()
    };
    let capped = |t: Option<f32>, scores: &mut Vec<f32>| -> (Option<f32>, bool) {
        if recall_cap >= 1.0 {
            return (t, false);
        }
        match (t, cap_threshold(scores, recall_cap)) {
            (Some(t), Some(c)) if c > t => (Some(c), true),
            (None, Some(c)) => (Some(c), true),
            (t, _) => (t, false),
        }
    };
    let (pooled_t, _) = capped(pooled.threshold, &mut right(None));
    pooled.threshold = pooled_t;
    let mut thresholds = Vec::with_capacity(s.n_labels);
    let mut fitted_by = Vec::with_capacity(s.n_labels);
    for (l, t) in per_label.iter().enumerate() {
        let own = if t.support == 0 { None } else { t.threshold };
        let (v, by) = match own {
            Some(_) => {
                let (v, raised) = capped(own, &mut right(Some(l)));
                (
                    v,
                    if raised {
                        FittedBy::RecallCap
                    } else {
                        FittedBy::Precision
                    },
                )
            }
            None => (pooled.threshold, FittedBy::Default),
        };
        thresholds.push(v.unwrap_or(f32::INFINITY));
        fitted_by.push(by);
    }
    Fitted {
        per_label,
        pooled,
        thresholds,
        fitted_by,
    }
}

/// Whether item `i` would be published at `thresholds` (its confidence
/// reaches its top label's threshold).
pub fn published(s: &Scored, thresholds: &[f32], i: usize) -> bool {
    let (Some(&top), Some(&score)) = (s.top.get(i), s.score.get(i)) else {
        return false;
    };
    thresholds.get(top).is_some_and(|t| score >= *t)
}

/// What thresholds achieve on some photos, for one label or all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Achieved {
    /// Photos of the label (all labels: every known photo).
    pub support: usize,
    /// Photos published as the label.
    pub accepted: usize,
    /// Of those, rightly.
    pub right: usize,
}

impl Achieved {
    /// `right / accepted` (`None` when nothing is published).
    pub fn precision(&self) -> Option<f64> {
        (self.accepted > 0).then(|| self.right as f64 / self.accepted as f64)
    }

    /// `right / support` (`None` without photos of the label).
    pub fn recall(&self) -> Option<f64> {
        (self.support > 0).then(|| self.right as f64 / self.support as f64)
    }
}

/// Per label and over all labels, what `thresholds` achieve on the items
/// where `use_item` is true.
pub fn achieved(
    s: &FoldScores,
    use_item: &[bool],
    thresholds: &[f32],
) -> (Vec<Achieved>, Achieved) {
    let mut per = vec![Achieved::default(); s.n_labels];
    for (i, &u) in use_item.iter().enumerate() {
        if !u {
            continue;
        }
        let truth = s.truth.get(i).copied().flatten();
        if let Some(a) = truth.and_then(|t| per.get_mut(t)) {
            a.support += 1;
        }
        if published(&s.scored, thresholds, i) {
            let top = s.scored.top[i];
            if let Some(a) = per.get_mut(top) {
                a.accepted += 1;
                a.right += usize::from(truth == Some(top));
            }
        }
    }
    let all = per.iter().fold(Achieved::default(), |a, b| Achieved {
        support: a.support + b.support,
        accepted: a.accepted + b.accepted,
        right: a.right + b.right,
    });
    (per, all)
}

/// One fold's model variant and which items it holds out.
#[derive(Debug, Clone)]
pub struct FoldData {
    /// What it hides.
    pub fold: Fold,
    /// Per item: held out in this fold (left out of calibration).
    pub held: Vec<bool>,
    /// The variant's scores (refitted without the held-out part where the
    /// model can be refitted).
    pub scores: FoldScores,
}

/// Everything the held-out calibration and the estimate need.
#[derive(Debug, Clone)]
pub struct Setup<'a> {
    /// The final model's scores on every item.
    pub full: &'a FoldScores,
    /// The folds.
    pub folds: &'a [FoldData],
    /// Per item: a calibration photo.
    pub calib: &'a [bool],
    /// Per item: may be counted when held out (e.g. not a photo the final
    /// model trained on, when it could not be refitted).
    pub countable: &'a [bool],
    /// Target precision.
    pub target: f64,
    /// Per item: an empty frame (no animal); the other negatives are
    /// unknown animals. Empty frames count at the rate of the folds that
    /// hold out empty frames, unknown animals at the animal folds' rate.
    pub empty: &'a [bool],
}

/// One fold's published share at one recall cap.
#[derive(Debug, Clone, Copy)]
struct Rate {
    published: usize,
    images: usize,
}

/// The rates of every fold at every cap of [`recall_grid`] (`rates[f][g]`),
/// and the full model's known-photo counts per cap.
struct Grid {
    caps: Vec<f64>,
    rates: Vec<Vec<Rate>>,
    /// Per cap: (right, wrong-label) published calibration photos of the labels.
    known: Vec<(usize, usize)>,
    /// Unknown-animal calibration photos (known ones when there are no
    /// negatives at all), counted at the animal folds' rate.
    n_animal: usize,
    /// Empty-frame calibration photos, counted at the empty folds' rate.
    n_empty: usize,
    /// Per fold: whether it holds out empty frames.
    empty: Vec<bool>,
}

impl Setup<'_> {
    fn grid(&self) -> Grid {
        let caps = recall_grid();
        let n = self.calib.len();
        let rates = self
            .folds
            .iter()
            .map(|f| {
                let use_item: Vec<bool> = (0..n).map(|i| self.calib[i] && !f.held[i]).collect();
                caps.iter()
                    .map(|&r| {
                        let fit = fit(&f.scores, &use_item, self.target, r);
                        let mut rate = Rate {
                            published: 0,
                            images: 0,
                        };
                        for i in 0..n {
                            if f.held[i] && self.countable[i] {
                                rate.images += 1;
                                rate.published +=
                                    usize::from(published(&f.scores.scored, &fit.thresholds, i));
                            }
                        }
                        rate
                    })
                    .collect()
            })
            .collect();
        let known = caps
            .iter()
            .map(|&r| {
                let fit = fit(self.full, self.calib, self.target, r);
                let (mut right, mut wrong) = (0, 0);
                for i in 0..n {
                    if !self.calib[i] {
                        continue;
                    }
                    let Some(t) = self.full.truth[i] else {
                        continue;
                    };
                    if published(&self.full.scored, &fit.thresholds, i) {
                        if self.full.scored.top[i] == t {
                            right += 1;
                        } else {
                            wrong += 1;
                        }
                    }
                }
                (right, wrong)
            })
            .collect();
        let count = |want: Option<bool>| {
            (0..n)
                .filter(|&i| {
                    self.calib[i]
                        && match want {
                            None => self.full.truth[i].is_some(),
                            Some(e) => {
                                self.full.truth[i].is_none() && self.empty.get(i) == Some(&e)
                            }
                        }
                })
                .count()
        };
        let (n_animal, n_empty, knowns) = (count(Some(false)), count(Some(true)), count(None));
        Grid {
            caps,
            rates,
            known,
            n_animal: if n_animal + n_empty > 0 {
                n_animal
            } else {
                knowns
            },
            n_empty,
            empty: self.folds.iter().map(|f| f.fold.empty).collect(),
        }
    }
}

impl Grid {
    /// Held-out precision at cap index `g` over the folds in `folds`.
    fn precision(&self, g: usize, folds: &[usize]) -> Option<f64> {
        let mean = |empty: Option<bool>| -> Option<f64> {
            let v: Vec<f64> = folds
                .iter()
                .filter(|&&f| empty.is_none_or(|e| self.empty[f] == e))
                .filter_map(|&f| {
                    let r = self.rates[f][g];
                    (r.images > 0).then(|| r.published as f64 / r.images as f64)
                })
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let all = mean(None)?;
        let animal = mean(Some(false)).unwrap_or(all);
        let empty = mean(Some(true)).unwrap_or(animal);
        let unseen = self.n_animal as f64 * animal + self.n_empty as f64 * empty;
        let (tp, fp) = self.known[g];
        let denom = tp as f64 + fp as f64 + unseen;
        Some(if denom > 0.0 { tp as f64 / denom } else { 0.0 })
    }

    /// The highest cap reaching `target` over `folds`, else the one with the
    /// best precision (ties: the higher cap); (cap index, precision, reached).
    fn select(&self, folds: &[usize], target: f64) -> (usize, Option<f64>, bool) {
        let mut best: Option<(usize, f64)> = None;
        for g in 0..self.caps.len() {
            let Some(p) = self.precision(g, folds) else {
                return (0, None, false);
            };
            if p >= target {
                return (g, Some(p), true);
            }
            if best.is_none_or(|b| p > b.1) {
                best = Some((g, p));
            }
        }
        best.map_or((0, None, false), |(g, p)| (g, Some(p), false))
    }
}

/// The held-out calibration's choice.
#[derive(Debug, Clone, Serialize)]
pub struct RecallCap {
    /// The cap (1.0: none; the ordinary calibration).
    pub cap: f64,
    /// Held-out precision at the cap (`None` when folds could not be used).
    pub precision: Option<f64>,
    /// Whether it reaches the target.
    pub reached: bool,
    /// Folds used (0: ordinary calibration).
    pub folds: usize,
    /// Ordinary calibration because fewer than [`MIN_FOLDS`] folds could be used.
    pub too_few: bool,
}

impl RecallCap {
    /// No cap: the ordinary calibration, as asked for.
    pub fn ordinary() -> RecallCap {
        RecallCap {
            cap: 1.0,
            precision: None,
            reached: false,
            folds: 0,
            too_few: false,
        }
    }
}

/// Chooses the recall cap for the final thresholds (see the module docs).
/// With fewer than [`MIN_FOLDS`] usable folds, the cap is 1.0 (ordinary
/// calibration) and `folds` is 0.
pub fn select_recall_cap(setup: &Setup) -> RecallCap {
    let usable = setup
        .folds
        .iter()
        .filter(|f| (0..setup.calib.len()).any(|i| f.held[i] && setup.countable[i]))
        .count();
    if usable < MIN_FOLDS {
        return RecallCap {
            too_few: true,
            ..RecallCap::ordinary()
        };
    }
    let grid = setup.grid();
    let all: Vec<usize> = (0..setup.folds.len()).collect();
    let (g, precision, reached) = grid.select(&all, setup.target);
    RecallCap {
        cap: grid.caps[g],
        precision,
        reached,
        folds: usable,
        too_few: false,
    }
}

/// One fold's result in the estimate.
#[derive(Debug, Clone, Serialize)]
pub struct FoldResult {
    /// What it held out.
    pub fold: Fold,
    /// Held-out photos counted.
    pub images: usize,
    /// Of those, published.
    pub published: usize,
    /// `published / images`.
    pub share: f64,
    /// The recall cap its thresholds used (chosen without it).
    pub cap: f64,
}

/// Mean and spread of fold shares.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    /// Mean share over the folds.
    pub mean: f64,
    /// Lowest fold share.
    pub min: f64,
    /// Highest fold share.
    pub max: f64,
    /// Folds.
    pub folds: usize,
    /// Photos counted over the folds.
    pub images: usize,
}

impl Spread {
    fn of<'a>(results: impl Iterator<Item = &'a FoldResult>) -> Option<Spread> {
        let v: Vec<&FoldResult> = results.filter(|r| r.images > 0).collect();
        if v.is_empty() {
            return None;
        }
        let shares: Vec<f64> = v.iter().map(|r| r.share).collect();
        Some(Spread {
            mean: shares.iter().sum::<f64>() / shares.len() as f64,
            min: shares.iter().copied().fold(f64::INFINITY, f64::min),
            max: shares.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            folds: v.len(),
            images: v.iter().map(|r| r.images).sum(),
        })
    }
}

/// The unseen-species estimate.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// "Unseen animals published (estimated)": species-out folds of unknown
    /// animals and label-out folds together.
    pub unseen_animals: Option<Spread>,
    /// Species-out folds of unknown animals only.
    pub species_out: Option<Spread>,
    /// Label-out folds only.
    pub label_out: Option<Spread>,
    /// Species-out folds of empty frames (kinds of empty scene held out).
    pub empty_out: Option<Spread>,
    /// Every fold.
    pub folds: Vec<FoldResult>,
    /// How the fold models were made (e.g. "head retrained per fold").
    pub how: String,
}

/// The estimate: each fold's held-out photos judged at thresholds fitted
/// without it, with the recall cap chosen from the other folds (1.0, the
/// ordinary calibration, when `held_out_calibration` is off or fewer than
/// [`MIN_FOLDS`] other folds can be used).
pub fn estimate(setup: &Setup, held_out_calibration: bool, how: &str) -> Estimate {
    let grid = setup.grid();
    let n_folds = setup.folds.len();
    let usable: Vec<usize> = (0..n_folds)
        .filter(|&f| grid.rates[f].first().is_some_and(|r| r.images > 0))
        .collect();
    let mut folds = Vec::new();
    for (f, fd) in setup.folds.iter().enumerate() {
        let others: Vec<usize> = usable.iter().copied().filter(|&o| o != f).collect();
        let g = if held_out_calibration && others.len() >= MIN_FOLDS {
            grid.select(&others, setup.target).0
        } else {
            0
        };
        let r = grid.rates[f][g];
        if r.images == 0 {
            continue;
        }
        folds.push(FoldResult {
            fold: fd.fold.clone(),
            images: r.images,
            published: r.published,
            share: r.published as f64 / r.images as f64,
            cap: grid.caps[g],
        });
    }
    let animal = |r: &&FoldResult| !r.fold.empty;
    Estimate {
        unseen_animals: Spread::of(folds.iter().filter(animal)),
        species_out: Spread::of(
            folds
                .iter()
                .filter(animal)
                .filter(|r| r.fold.protocol == Protocol::SpeciesOut),
        ),
        label_out: Spread::of(
            folds
                .iter()
                .filter(|r| r.fold.protocol == Protocol::LabelOut),
        ),
        empty_out: Spread::of(folds.iter().filter(|r| r.fold.empty)),
        folds,
        how: how.to_string(),
    }
}

impl Estimate {
    /// A plain-words warning when the estimate exceeds `ordinary` (the
    /// share of unknown animals published among the photos evaluated) by
    /// more than [`OPTIMISM_FACTOR`].
    pub fn warning(&self, ordinary: Option<f64>) -> Option<String> {
        let u = self.unseen_animals?;
        let o = ordinary?;
        let ratio_ok = if o > 0.0 {
            u.mean <= OPTIMISM_FACTOR * o
        } else {
            u.mean <= 0.0
        };
        (!ratio_ok).then(|| {
            format!(
                "the {:.1}% of unknown animals published here holds only for species like those in your photos: for species that were in neither training nor calibration, about {:.1}% (between {:.0}% and {:.0}% across {} held-out species and labels) would be published. Expect the second figure at your camera; add photos of the animals it confuses, or raise --target-precision",
                o * 100.0,
                u.mean * 100.0,
                u.min * 100.0,
                u.max * 100.0,
                u.folds
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_group_lands_in_exactly_one_fold() {
        for (n, k) in [(1, 10), (3, 10), (10, 10), (11, 10), (68, 10), (25, 4)] {
            let groups: Vec<String> = (0..n).map(|i| format!("g{i:02}")).collect();
            // Duplicates in the input are one group.
            let mut input = groups.clone();
            input.extend(groups.iter().take(3).cloned());
            let folds = group_folds(&input, k);
            assert_eq!(folds.len(), n.min(k), "n {n} k {k}");
            assert!(folds.iter().all(|f| !f.is_empty()));
            for g in &groups {
                assert_eq!(
                    folds.iter().filter(|f| f.contains(g)).count(),
                    1,
                    "{g} in n {n} k {k}"
                );
            }
            let total: usize = folds.iter().map(Vec::len).sum();
            assert_eq!(total, n);
            // Balanced: sizes differ by at most one.
            let (lo, hi) = (
                folds.iter().map(Vec::len).min().unwrap(),
                folds.iter().map(Vec::len).max().unwrap(),
            );
            assert!(hi - lo <= 1);
        }
        assert_eq!(
            group_folds(&names(&["b", "a", "c"]), 2),
            vec![names(&["a", "c"]), names(&["b"])]
        );
    }

    #[test]
    fn cap_threshold_keeps_the_share_asked_for() {
        let mut s = vec![0.9, 0.1, 0.5, 0.7, 0.3];
        // keep 100%: the lowest score.
        assert_eq!(cap_threshold(&mut s, 1.0), Some(0.1));
        // keep 80% = 4 of 5: halfway between 0.1 and 0.3.
        assert_eq!(cap_threshold(&mut s, 0.8), Some(0.2));
        // keep 50% = ceil(2.5) = 3 of 5: halfway between 0.3 and 0.5.
        assert_eq!(cap_threshold(&mut s, 0.5), Some(0.4));
        assert_eq!(cap_threshold(&mut [], 0.5), None);
    }

    /// One label: 20 known calibration photos scoring 0.51, 0.52, …, 0.70,
    /// and 10 photos per negative group at the given score, every photo's
    /// top label 0. The model is fixed: every fold sees the same scores.
    fn synthetic(groups: &[(&str, f32)]) -> (FoldScores, Vec<String>) {
        let mut s = FoldScores {
            n_labels: 1,
            ..FoldScores::default()
        };
        let mut group = Vec::new();
        for k in 0..20 {
            s.truth.push(Some(0));
            s.scored.top.push(0);
            s.scored.score.push(0.51 + k as f32 * 0.01);
            group.push("label".to_string());
        }
        for (g, score) in groups {
            for _ in 0..10 {
                s.truth.push(None);
                s.scored.top.push(0);
                s.scored.score.push(*score);
                group.push(g.to_string());
            }
        }
        (s, group)
    }

    fn species_folds(full: &FoldScores, group: &[String], groups: &[&str]) -> Vec<FoldData> {
        groups
            .iter()
            .map(|g| FoldData {
                fold: Fold {
                    protocol: Protocol::SpeciesOut,
                    held_out: vec![g.to_string()],
                    empty: false,
                },
                held: group.iter().map(|x| x == g).collect(),
                scores: full.clone(),
            })
            .collect()
    }

    #[test]
    fn the_estimate_on_a_synthetic_set_has_the_known_answer() {
        // "a" looks like the label (0.6025, among its photos); b, c, d do
        // not (below every photo of the label). Held out, "a" is judged at
        // thresholds fitted on b, c, d, which sit below the label: all 10
        // of its photos are published (rate 1). Held out, b, c or d are
        // judged at thresholds that "a" pushed above 0.6025: none is
        // published (rate 0). Mean 1/4, spread 0..1.
        let groups = [("a", 0.6025), ("b", 0.305), ("c", 0.405), ("d", 0.205)];
        let (full, group) = synthetic(&groups);
        let names: Vec<&str> = groups.iter().map(|g| g.0).collect();
        let folds = species_folds(&full, &group, &names);
        let n = full.truth.len();
        let (calib, countable, empty) = (vec![true; n], vec![true; n], vec![false; n]);
        let setup = Setup {
            full: &full,
            folds: &folds,
            calib: &calib,
            countable: &countable,
            target: 0.95,
            empty: &empty,
        };
        for held_out_calibration in [false, true] {
            let e = estimate(&setup, held_out_calibration, "fixed model");
            let shares: Vec<(String, usize, usize)> = e
                .folds
                .iter()
                .map(|r| (r.fold.held_out[0].clone(), r.images, r.published))
                .collect();
            assert_eq!(
                shares,
                vec![
                    ("a".to_string(), 10, 10),
                    ("b".to_string(), 10, 0),
                    ("c".to_string(), 10, 0),
                    ("d".to_string(), 10, 0)
                ]
            );
            let u = e.unseen_animals.unwrap();
            assert_eq!(
                (u.mean, u.min, u.max, u.folds, u.images),
                (0.25, 0.0, 1.0, 4, 40)
            );
            assert!(e.label_out.is_none() && e.empty_out.is_none());
        }
        // The ordinary figure on the calibration photos is 0: the warning says so.
        let e = estimate(&setup, true, "fixed model");
        let w = e.warning(Some(0.0)).unwrap();
        assert!(w.contains("about 25.0%"), "{w}");
        assert!(e.warning(Some(0.2)).is_none());
        assert!(e.warning(Some(0.1)).is_some());
    }

    /// Precision of `thresholds` when fold `f`'s held-out photos are the negatives.
    fn held_out_precision(full: &FoldScores, f: &FoldData, thresholds: &[f32]) -> f64 {
        let (mut tp, mut fp) = (0, 0);
        for i in 0..full.truth.len() {
            let p = published(&full.scored, thresholds, i);
            match full.truth[i] {
                Some(_) if p => tp += 1,
                None if p && f.held[i] => fp += 1,
                _ => {}
            }
        }
        tp as f64 / (tp + fp) as f64
    }

    #[test]
    fn held_out_calibration_reaches_its_target_on_the_held_out_groups() {
        // Three look-alike species near the label's middle photos and one
        // unlike it. Ordinary calibration, fitted without a look-alike,
        // stops just above the other two and publishes the held-out one.
        let groups = [("a1", 0.6025), ("a2", 0.5925), ("a3", 0.5825), ("b", 0.305)];
        let (full, group) = synthetic(&groups);
        let names: Vec<&str> = groups.iter().map(|g| g.0).collect();
        let folds = species_folds(&full, &group, &names);
        let n = full.truth.len();
        let (calib, countable, empty) = (vec![true; n], vec![true; n], vec![false; n]);
        let setup = Setup {
            full: &full,
            folds: &folds,
            calib: &calib,
            countable: &countable,
            target: 0.95,
            empty: &empty,
        };
        let cap = select_recall_cap(&setup);
        // Only keeping the 10 best photos (r = 0.50) clears 0.6025.
        assert_eq!((cap.cap, cap.reached, cap.folds), (0.5, true, 4));
        let mut ordinary_misses = 0;
        for f in &folds {
            let use_item: Vec<bool> = (0..n).map(|i| !f.held[i]).collect();
            let held = fit(&f.scores, &use_item, 0.95, cap.cap);
            let p = held_out_precision(&full, f, &held.thresholds);
            assert!(p >= 0.95, "{:?}: held-out precision {p}", f.fold.held_out);
            let ordinary = fit(&f.scores, &use_item, 0.95, 1.0);
            if held_out_precision(&full, f, &ordinary.thresholds) < 0.95 {
                ordinary_misses += 1;
            }
        }
        // Ordinary calibration misses the target on the look-alike a1
        // (fitted on a2, a3 it stops at 0.59625 < 0.6025).
        assert!(ordinary_misses >= 1);
        // With every group, the precision search alone clears a1 (halfway
        // between 0.6025 and 0.61); without a1, the cap raises label 0 from
        // halfway between 0.5925 and 0.60 to halfway between 0.60 and 0.61.
        let f = fit(&full, &calib, 0.95, cap.cap);
        assert_eq!(f.fitted_by, vec![FittedBy::Precision]);
        assert!(
            (f.thresholds[0] - 0.60625).abs() < 1e-6,
            "{:?}",
            f.thresholds
        );
        let without_a1: Vec<bool> = (0..n).map(|i| !folds[0].held[i]).collect();
        let f = fit(&full, &without_a1, 0.95, cap.cap);
        assert_eq!(f.fitted_by, vec![FittedBy::RecallCap]);
        assert!((f.thresholds[0] - 0.605).abs() < 1e-6, "{:?}", f.thresholds);
        assert!((f.per_label[0].threshold.unwrap() - 0.59625).abs() < 1e-6);
        // Too few groups: ordinary calibration, and it says so (folds 0).
        let two = select_recall_cap(&Setup {
            folds: &folds[..2],
            ..setup.clone()
        });
        assert_eq!((two.cap, two.folds, two.too_few), (1.0, 0, true));
    }
}
