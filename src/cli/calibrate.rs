//! `camtrapd calibrate --data DIR --target-precision 0.95 [--score ...]`:
//! per-label thresholds from the user's own labelled images, written to a
//! thresholds file that the config names. Also the set-up shared with
//! `camtrapd eval` and `camtrapd bank` (model, labels, groups, data set,
//! cached model outputs).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Config;
use crate::decision::thresholds::{
    f32_for_file, groups_fingerprint, CalibrationInfo, HeldOutInfo, LabelCalibration,
};
use crate::decision::{Calibrated, Overrides, Policy, ScoreFn, Scorer, ThresholdsFile};
use crate::eval::calibrate::score_all;
use crate::eval::dataset::{self, Category, Item};
use crate::eval::outputs::{self, Cache, Outputs};
use crate::eval::unseen::{self, Achieved, Estimate, FoldData, FoldScores, Protocol, RecallCap};
use crate::exit;
use crate::model::Model;

use super::CodedError;

/// Fewer calibration photos of a label than this are warned about.
const MIN_PHOTOS: usize = 10;

/// The score functions `calibrate` uses unless told otherwise (and the
/// model is not a bundle trained with second opinions, whose own score is
/// used), first available wins: `knn` (fewest false accepts on zoo12 and on camera-trap
/// frames at calibrated thresholds; needs an embedding bank, `camtrapd
/// bank`), else `msp_temp` (best AUROC and FPR@95%TPR on zoo12). See
/// README.md, "Measuring and calibrating open-set rejection".
pub const RECOMMENDED_SCORES: [ScoreFn; 2] = [ScoreFn::Knn, ScoreFn::MspTemp];

/// Options shared by `calibrate`, `eval` and `bank`.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Labelled images: a folder with one sub-folder per label (named as
    /// `camtrapd labels` or the label groups spell them; nothing*/, empty*/,
    /// blank*/, background*/ hold empty frames, any other folder unknown
    /// animals), or a manifest CSV with the columns path, label[, split, kind].
    /// How each folder or label was read is printed first.
    #[arg(long, value_name = "DIR|CSV")]
    pub data: PathBuf,
    /// Use only the images of this split (the manifest's `split` column).
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,
    /// The daemon config: its model, label groups, score function and
    /// thresholds are used.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Model bundle folder (default: the config's, else the bundled model).
    #[arg(short, long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Cache folder for model outputs (default: $XDG_CACHE_HOME/camtrapd or ~/.cache/camtrapd).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Do not read or write the output cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Leave out manifest rows whose image does not exist (default: an error
    /// listing them); a summary of what was left out ends the run.
    #[arg(long)]
    pub allow_missing: bool,
}

/// Arguments of `camtrapd calibrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Precision (0..1) every label must reach on the data: the share of its
    /// published detections that are right.
    #[arg(long, default_value_t = 0.95, value_name = "P")]
    pub target_precision: f64,
    /// held-out (default): each label also keeps at most a share of its
    /// photos, chosen so that precision holds when each species and label is
    /// left out in turn (for animals nobody photographed); ordinary: the
    /// lowest threshold reaching the precision on these photos.
    #[arg(long, value_enum, default_value_t = Calibration::HeldOut)]
    pub calibration: Calibration,
    /// Score function: msp, msp_temp, max_logit, energy, sigmoid, knn
    /// (default: the config's, else knn when the model bundle has an embedding bank, else msp_temp).
    #[arg(long, value_name = "NAME")]
    pub score: Option<ScoreFn>,
    /// Where to write the thresholds (default: the config's thresholds_file,
    /// else thresholds.toml next to the config, else in the current folder).
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// How thresholds are fitted (`--calibration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Calibration {
    /// Held-out calibration ([`crate::eval::unseen`]).
    HeldOut,
    /// The lowest threshold per label reaching the target precision.
    Ordinary,
}

/// Readable items with their model outputs, and the unreadable ones with why.
pub(crate) type Scoring<'a> = (Vec<&'a Item>, Vec<Outputs>, Vec<(&'a Item, String)>);

/// Model, decision labels and data, ready for scoring.
pub(crate) struct Setup {
    pub model: Model,
    pub config: Option<Config>,
    pub overrides: Overrides,
    /// Decision labels (model labels or group names).
    pub labels: Vec<String>,
    /// Every item of the data set (all splits).
    pub items: Vec<Item>,
    pub cache: Cache,
    /// Leave out missing manifest paths (`--allow-missing`).
    allow_missing: bool,
    /// Per data set read: its path and the manifest paths left out.
    missing: Vec<(PathBuf, Vec<PathBuf>)>,
}

impl Setup {
    /// Loads config, model and data set. With `first_calibration`, a
    /// thresholds file that the config names but that does not exist yet is
    /// not an error (calibrate is about to write it).
    pub fn load(c: &Common, first_calibration: bool) -> anyhow::Result<Setup> {
        let config = c.config.as_deref().map(Config::from_path).transpose()?;
        let model_dir = match (&c.model, &config) {
            (Some(m), _) => m.clone(),
            (None, Some(cfg)) => cfg.model_dir(),
            (None, None) => super::default_model_dir(),
        };
        let model = Model::load(&model_dir)?;
        let overrides = match &config {
            Some(cfg)
                if first_calibration && cfg.thresholds_file().is_some_and(|p| !p.exists()) =>
            {
                let mut without = cfg.clone();
                without.decision.thresholds_file = None;
                without.overrides(model.manifest())?
            }
            Some(cfg) => cfg.overrides(model.manifest())?,
            None => Overrides {
                top_k: 1,
                ..Overrides::default()
            },
        };
        // The labels (and groups) only: no thresholds involved.
        let plain = Policy::new(
            model.manifest(),
            &Overrides {
                label_groups: overrides.label_groups.clone(),
                top_k: 1,
                ..Overrides::default()
            },
        )?;
        let labels = plain.labels().to_vec();
        let cache = if c.no_cache {
            Cache::disabled()
        } else {
            match c.cache.clone().or_else(outputs::default_cache_dir) {
                Some(dir) => Cache::open(&dir).unwrap_or_else(|e| {
                    log::warn!("cache {}: {e}; running without a cache", dir.display());
                    Cache::disabled()
                }),
                None => Cache::disabled(),
            }
        };
        let mut setup = Setup {
            model,
            config,
            overrides,
            labels,
            items: Vec::new(),
            cache,
            allow_missing: c.allow_missing,
            missing: Vec::new(),
        };
        setup.items = setup.read_data(&c.data)?;
        Ok(setup)
    }

    /// Reads a data set with the decision labels, prints how each folder or
    /// label was read (and warns about names close to a label), and keeps
    /// the list of missing manifest paths for [`Setup::finish`].
    pub fn read_data(&mut self, path: &Path) -> anyhow::Result<Vec<Item>> {
        if !path.exists() {
            return Err(CodedError(
                exit::NOINPUT,
                format!("data set {}: no such folder or file", path.display()),
            )
            .into());
        }
        let ds = dataset::read(path, &self.labels, self.allow_missing)?;
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{}", ds.summary(path));
        for w in ds.warnings() {
            let _ = writeln!(err, "warning: {w}");
        }
        if !ds.missing.is_empty() {
            self.missing.push((path.to_path_buf(), ds.missing));
        }
        Ok(ds.items)
    }

    /// Ends a run: a summary of the manifest rows left out by `--allow-missing`.
    pub fn finish(&self) {
        let mut err = std::io::stderr().lock();
        for (path, missing) in &self.missing {
            let _ = writeln!(
                err,
                "warning: {} of the images listed in {} do not exist and were left out (--allow-missing): {}{}",
                missing.len(),
                path.display(),
                missing
                    .iter()
                    .take(5)
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                if missing.len() > 5 {
                    format!(" and {} more", missing.len() - 5)
                } else {
                    String::new()
                }
            );
        }
    }

    /// Takes the data set's items out (so that they can be borrowed while
    /// the model runs).
    pub fn take_items(&mut self) -> Vec<Item> {
        std::mem::take(&mut self.items)
    }

    /// Items of `split` (all when `None`); an error naming the splits there are.
    pub fn split<'a>(all: &'a [Item], split: Option<&str>) -> anyhow::Result<Vec<&'a Item>> {
        let chosen: Vec<&Item> = all
            .iter()
            .filter(|i| split.is_none_or(|s| i.split == s))
            .collect();
        if chosen.is_empty() {
            let mut splits: Vec<&str> = all.iter().map(|i| i.split.as_str()).collect();
            splits.sort_unstable();
            splits.dedup();
            return Err(CodedError(
                exit::NOINPUT,
                match split {
                    Some(s) => format!(
                        "the data set has no images in split {s:?} (splits: {})",
                        splits
                            .iter()
                            .map(|s| if s.is_empty() { "none" } else { s })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => "the data set holds no images".into(),
                },
            )
            .into());
        }
        Ok(chosen)
    }

    /// The model's outputs for `items`; unreadable images are warned about and left out.
    pub fn outputs<'a>(&mut self, items: &[&'a Item]) -> anyhow::Result<Scoring<'a>> {
        let quiet = !std::io::IsTerminal::is_terminal(&std::io::stderr());
        let run = outputs::run(&mut self.model, items, &mut self.cache, quiet)?;
        log::info!(
            "{} images: {} from the cache, {} computed",
            items.len(),
            run.cached,
            run.computed
        );
        let (mut ok_items, mut ok, mut bad) = (Vec::new(), Vec::new(), Vec::new());
        for (item, o) in items.iter().zip(run.outputs) {
            match o {
                Ok(o) => {
                    ok_items.push(*item);
                    ok.push(o);
                }
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "warning: {}: skipped: {e}",
                        item.path.display()
                    );
                    bad.push((*item, e));
                }
            }
        }
        Ok((ok_items, ok, bad))
    }

    /// True decision label per item (`None` for unknown and empty images).
    pub fn truth(&self, items: &[&Item]) -> Vec<Option<usize>> {
        items
            .iter()
            .map(|i| {
                (i.category == Category::Known)
                    .then(|| self.labels.iter().position(|l| *l == i.label))
                    .flatten()
            })
            .collect()
    }

    /// A scorer for `f` (temperature `t` for `msp_temp`), or why there is none.
    pub fn scorer(&self, f: ScoreFn, t: f32) -> Result<Scorer, String> {
        let m = self.model.manifest();
        let bank = self.model.knn_bank();
        if let Some(why) = f.unavailable(m.output.kind, m.output.activation, bank.is_some()) {
            return Err(why);
        }
        let plain = Policy::new(
            m,
            &Overrides {
                label_groups: self.overrides.label_groups.clone(),
                top_k: 1,
                ..Overrides::default()
            },
        )
        .map_err(|e| e.to_string())?;
        let groups = plain.scorer().groups().map(<[Vec<usize>]>::to_vec);
        Ok(Scorer::new(
            f,
            m.output.kind,
            m.output.activation,
            groups,
            t,
            bank,
        ))
    }

    /// A scorer for `f` whose decision labels are the current ones without
    /// those in `drop` (their classes count as "none of my labels"); `None`
    /// for `knn`, whose bank has no labels to leave out.
    fn scorer_without(&self, f: ScoreFn, t: f32, drop: &[usize]) -> Option<Scorer> {
        if f == ScoreFn::Knn {
            return None;
        }
        let base = self.scorer(f, t).ok()?;
        let m = self.model.manifest();
        let groups: Vec<Vec<usize>> = match base.groups() {
            Some(g) => g.to_vec(),
            None => (0..self.labels.len()).map(|i| vec![i]).collect(),
        };
        let kept = groups
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !drop.contains(i))
            .map(|(_, g)| g)
            .collect();
        Some(Scorer::new(
            f,
            m.output.kind,
            m.output.activation,
            Some(kept),
            t,
            None,
        ))
    }

    /// The folds of the unseen-species estimate for a model that is not
    /// refitted (calibration only): species-out over the negative groups of
    /// `items` (data-set labels of unknown and empty images), and, with
    /// label groups, label-out (each group's classes made "none of my
    /// labels") unless the score is `knn`.
    pub fn fixed_folds(
        &self,
        f: ScoreFn,
        t: f32,
        items: &[&Item],
        outs: &[&Outputs],
    ) -> anyhow::Result<Vec<FoldData>> {
        let truth = self.truth(items);
        let full = FoldScores {
            n_labels: self.labels.len(),
            truth: truth.clone(),
            scored: score_all(
                &self.scorer(f, t).map_err(|e| CodedError(exit::USAGE, e))?,
                outs,
            ),
        };
        let mut folds: Vec<FoldData> = unseen::species_out_folds(items)
            .into_iter()
            .map(|(fold, held)| FoldData {
                fold,
                held,
                scores: full.clone(),
            })
            .collect();
        // Label-out without refitting is honest only when the decision labels
        // are groups of a larger model's classes (the held-out group's classes
        // then compete as "none of my labels", as an unlisted species would);
        // a classifier trained on the label itself would still reject it too
        // well: `camtrapd train` refits the head per fold instead.
        if self.labels.len() >= 2 && !self.overrides.label_groups.is_empty() {
            for held_out in unseen::group_folds(&self.labels, unseen::MAX_LABEL_FOLDS) {
                let drop: Vec<usize> = held_out
                    .iter()
                    .filter_map(|l| self.labels.iter().position(|x| x == l))
                    .collect();
                let Some(scorer) = self.scorer_without(f, t, &drop) else {
                    break;
                };
                let kept: Vec<usize> = (0..self.labels.len())
                    .filter(|i| !drop.contains(i))
                    .collect();
                folds.push(FoldData {
                    held: truth
                        .iter()
                        .map(|t| t.is_some_and(|t| drop.contains(&t)))
                        .collect(),
                    fold: unseen::Fold {
                        protocol: Protocol::LabelOut,
                        held_out,
                        empty: false,
                    },
                    scores: FoldScores {
                        n_labels: kept.len(),
                        truth: truth
                            .iter()
                            .map(|t| t.and_then(|t| kept.iter().position(|k| *k == t)))
                            .collect(),
                        scored: score_all(&scorer, outs),
                    },
                });
            }
        }
        Ok(folds)
    }

    /// Fits the temperature for `msp_temp` on the known images among `items`.
    pub fn fit_temperature(&self, items: &[&Item], outs: &[Outputs]) -> Option<f32> {
        let truth = self.truth(items);
        let (mut logits, mut labels) = (Vec::new(), Vec::new());
        for (o, t) in outs.iter().zip(&truth) {
            if let Some(t) = t {
                logits.push(o.scores.clone());
                labels.push(*t);
            }
        }
        let scorer = self.scorer(ScoreFn::MspTemp, 1.0).ok()?;
        crate::decision::score::fit_temperature(&logits, &labels, scorer.groups())
    }
}

/// The labels for an error message: all of them when there are at most 12,
/// else the first five and where to find the rest.
pub(crate) fn labels_hint(labels: &[String]) -> String {
    if labels.len() <= 12 {
        dataset::quoted(labels)
    } else {
        format!(
            "{}, ... ({} labels: `camtrapd labels` lists them)",
            dataset::quoted(&labels[..5]),
            labels.len()
        )
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

/// Formats a threshold for tables: 3 decimals, 3 significant digits below 0.1 (0.00398), 2 decimals from 10.
pub(crate) fn fmt_threshold(t: Option<f32>) -> String {
    match t {
        None => "-".into(),
        Some(t) if t != 0.0 && t.abs() < 0.1 => crate::text::sig3(t),
        Some(t) if t.abs() < 10.0 => format!("{t:.3}"),
        Some(t) => format!("{t:.2}"),
    }
}

pub(crate) fn calibrate(args: &Args) -> anyhow::Result<()> {
    if !(args.target_precision > 0.0 && args.target_precision <= 1.0) {
        return Err(CodedError(
            exit::USAGE,
            format!(
                "--target-precision {}: allowed 0 < P <= 1, e.g. 0.95",
                args.target_precision
            ),
        )
        .into());
    }
    let mut setup = Setup::load(&args.common, true)?;
    let m = setup.model.manifest().clone();
    let bank = setup.model.knn_bank().is_some();
    // A bundle trained with second opinions already folds the nearest
    // labelled photo and the ImageNet agreement into its logits: its own
    // score is the one to calibrate.
    let evidence = m
        .provenance
        .training
        .as_ref()
        .is_some_and(|t| t.decision.as_deref() == Some("evidence"));
    let score_fn = args.score.or(setup.overrides.score_fn).unwrap_or_else(|| {
        if evidence {
            return ScoreFn::head_default(m.output.activation);
        }
        RECOMMENDED_SCORES
            .into_iter()
            .find(|f| {
                f.unavailable(m.output.kind, m.output.activation, bank)
                    .is_none()
            })
            .unwrap_or(ScoreFn::head_default(m.output.activation))
    });
    if let Some(why) = score_fn.unavailable(
        m.output.kind,
        m.output.activation,
        setup.model.knn_bank().is_some(),
    ) {
        return Err(CodedError(exit::USAGE, format!("--score {score_fn}: {why}")).into());
    }
    refuse_other_score(args, &setup, score_fn)?;
    let all = setup.take_items();
    let has_splits = all.iter().any(|i| !i.split.is_empty());
    let split = args
        .common
        .split
        .clone()
        .or_else(|| has_splits.then(|| "calib".to_string()));
    let items = Setup::split(&all, split.as_deref())?;
    let (items, outs, _) = setup.outputs(&items)?;
    let truth = setup.truth(&items);
    let known = truth.iter().filter(|t| t.is_some()).count();
    if known == 0 {
        return Err(CodedError(
            exit::DATAERR,
            format!(
                "{}: no image of the model's labels (folder or label names must be labels: {}); nothing to calibrate",
                args.common.data.display(),
                labels_hint(&setup.labels)
            ),
        )
        .into());
    }
    let temperature = if score_fn == ScoreFn::MspTemp {
        setup.fit_temperature(&items, &outs).ok_or_else(|| {
            CodedError(
                exit::DATAERR,
                "could not fit a temperature on these images".into(),
            )
        })?
    } else {
        1.0
    };
    let scorer = setup
        .scorer(score_fn, temperature)
        .map_err(|e| CodedError(exit::USAGE, e))?;
    let refs: Vec<&Outputs> = outs.iter().collect();
    let scored = score_all(&scorer, &refs);
    let target = args.target_precision;
    let full = FoldScores {
        n_labels: setup.labels.len(),
        truth: truth.clone(),
        scored,
    };
    let folds = setup.fixed_folds(score_fn, temperature, &items, &refs)?;
    let n = items.len();
    let all = vec![true; n];
    let empty: Vec<bool> = items
        .iter()
        .map(|i| i.category == Category::Empty)
        .collect();
    let held_setup = unseen::Setup {
        full: &full,
        folds: &folds,
        calib: &all,
        countable: &all,
        target,
        empty: &empty,
    };
    let held_out = args.calibration == Calibration::HeldOut;
    let cap = if held_out {
        unseen::select_recall_cap(&held_setup)
    } else {
        RecallCap::ordinary()
    };
    let estimate = (!folds.is_empty()).then(|| unseen::estimate(&held_setup, held_out, FIXED_HOW));
    let fitted = unseen::fit(&full, &all, target, cap.cap);
    let ordinary = ordinary_figure(&full, &fitted, &items, &all, "on these calibration photos");
    let outcome = Outcome::new(
        score_fn,
        target,
        setup.labels.clone(),
        fitted,
        &full,
        &all,
        cap,
        estimate,
        ordinary,
    );
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{score_fn} thresholds for precision {target} on {} ({}{} known, {} unknown/empty images){}",
        args.common.data.display(),
        split.as_deref().map_or(String::new(), |s| format!("split {s}: ")),
        known,
        items.len() - known,
        if score_fn == ScoreFn::MspTemp {
            format!(", temperature {temperature:.3}")
        } else {
            String::new()
        }
    )?;
    let warnings = outcome.print(&mut out)?;
    if m.provenance.training.is_some() && outcome.cap.folds > 0 {
        writeln!(
            out,
            "note: this bundle was made by `camtrapd train`, which also held out each label (refitting the head without it) and so fits stricter thresholds; `calibrate` keeps the model as it is and holds out species only. To recalibrate on new photos, re-run `camtrapd train` with them"
        )?;
    }
    drop(out);
    for w in &warnings {
        let _ = writeln!(std::io::stderr(), "warning: {w}");
    }

    // The file.
    let config_path = args.common.config.as_deref();
    let out_path = match (&args.out, &setup.config) {
        (Some(p), _) => p.clone(),
        (None, Some(cfg)) => cfg
            .thresholds_file()
            .unwrap_or_else(|| cfg.base_dir().join("thresholds.toml")),
        (None, None) => PathBuf::from("thresholds.toml"),
    };
    let bank = setup.model.knn_bank();
    let file = ThresholdsFile {
        score: score_fn,
        model_sha256: setup.model.sha256().to_string(),
        label_groups_sha256: groups_fingerprint(&setup.overrides.label_groups),
        temperature: (score_fn == ScoreFn::MspTemp).then(|| f32_for_file(temperature)),
        knn_k: bank
            .as_ref()
            .filter(|_| score_fn == ScoreFn::Knn)
            .map(|b| b.k()),
        knn_bank_sha256: bank
            .as_ref()
            .filter(|_| score_fn == ScoreFn::Knn)
            .map(|b| b.sha256().to_string()),
        default: outcome.default_threshold(),
        labels: outcome.thresholds_map(),
        calibration: Some(outcome.calibration_info(
            args.common.data.display().to_string(),
            split.clone().unwrap_or_default(),
        )),
    };
    let header = format!(
        "camtrapd thresholds: written by `camtrapd calibrate` for model {} ({}).\nScores are {} ({}); re-run calibrate rather than editing by hand.\nName this file in the daemon config: [decision] thresholds_file = \"...\"",
        m.name,
        setup.model.dir().display(),
        score_fn,
        score_fn.title()
    );
    Calibrated::save(&out_path, &file, &header)
        .with_context(|| format!("writing {}", out_path.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nwrote {}", out_path.display())?;
    let named = setup
        .config
        .as_ref()
        .and_then(Config::thresholds_file)
        .is_some_and(|p| same_file(&p, &out_path));
    match config_path {
        Some(cfg) if named => writeln!(
            out,
            "{} already names it; `camtrapd check-config {}` shows the thresholds in use",
            cfg.display(),
            cfg.display()
        )?,
        Some(cfg) => writeln!(
            out,
            "to use it, add under [decision] in {}:\n  thresholds_file = {:?}",
            cfg.display(),
            relative_to(&out_path, cfg.parent().unwrap_or(Path::new(".")))
        )?,
        None => writeln!(
            out,
            "to use it, add under [decision] in your daemon config:\n  thresholds_file = {:?}",
            out_path.display().to_string()
        )?,
    }
    setup.finish();
    Ok(())
}

/// `--score X` without `--out` would overwrite the thresholds file the
/// config (and the running daemon) uses with thresholds of another score
/// function, or write X thresholds the config's `[decision] score` refuses:
/// a usage error that names both ways out.
fn refuse_other_score(args: &Args, setup: &Setup, score_fn: ScoreFn) -> anyhow::Result<()> {
    let (Some(_), None, Some(cfg_path)) = (args.score, &args.out, args.common.config.as_deref())
    else {
        return Ok(());
    };
    let why = match (setup.overrides.score_fn, &setup.overrides.calibrated) {
        (Some(s), _) if s != score_fn => format!(
            "{} sets [decision] score = \"{s}\", which would refuse {score_fn} thresholds",
            cfg_path.display()
        ),
        (None, Some(c)) if c.file.score != score_fn => format!(
            "the thresholds file {} that {} names holds {} thresholds, which the daemon uses; {score_fn} thresholds there would break it",
            c.path.display(),
            cfg_path.display(),
            c.file.score
        ),
        _ => return Ok(()),
    };
    Err(CodedError(
        exit::USAGE,
        format!(
            "--score {score_fn}: {why}. Pass --out other-thresholds.toml to write them to another file (to compare, or to switch later), or change [decision] score to \"{score_fn}\" in {} first",
            cfg_path.display()
        ),
    )
    .into())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `path` relative to `base` when it lies below it, else as given (absolute).
fn relative_to(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let (p, b) = (abs(path), abs(base));
    p.strip_prefix(&b)
        .map(|r| r.display().to_string())
        .unwrap_or_else(|_| p.display().to_string())
}

/// How the fold models of `calibrate` and `eval` are made.
pub(crate) const FIXED_HOW: &str =
    "model not refitted: each species (and each label group) left out of calibration only; label-out with the head refitted per label is in `camtrapd train`";

/// The ordinary figure: unknown animals (not empty frames) among the items
/// where `use_item` is true that `fitted` publishes, and where they are.
pub(crate) fn ordinary_figure(
    full: &FoldScores,
    fitted: &unseen::Fitted,
    items: &[&Item],
    use_item: &[bool],
    what: &str,
) -> Option<(usize, usize, String)> {
    let (mut published, mut images) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        if use_item[i] && item.category == Category::Unknown {
            images += 1;
            published += usize::from(unseen::published(&full.scored, &fitted.thresholds, i));
        }
    }
    (images > 0).then(|| (published, images, what.to_string()))
}

/// A finished calibration, as `calibrate` and `train` print and write it.
pub(crate) struct Outcome {
    pub score_fn: ScoreFn,
    pub target: f64,
    pub labels: Vec<String>,
    pub fitted: unseen::Fitted,
    /// Per label, at the final thresholds on the calibration photos.
    pub achieved: Vec<Achieved>,
    /// All labels together, each at its own threshold.
    pub pooled: Achieved,
    /// All labels together at the one default (pooled) threshold.
    pub default_achieved: Achieved,
    pub cap: RecallCap,
    pub estimate: Option<Estimate>,
    /// Unknown animals published at the thresholds: (published, images, where).
    pub ordinary: Option<(usize, usize, String)>,
    /// Known and unknown/empty calibration photos.
    pub known: usize,
    pub unknown: usize,
}

impl Outcome {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        score_fn: ScoreFn,
        target: f64,
        labels: Vec<String>,
        fitted: unseen::Fitted,
        full: &FoldScores,
        calib: &[bool],
        cap: RecallCap,
        estimate: Option<Estimate>,
        ordinary: Option<(usize, usize, String)>,
    ) -> Outcome {
        let (achieved, pooled) = unseen::achieved(full, calib, &fitted.thresholds);
        let one = fitted.pooled.threshold.unwrap_or(f32::INFINITY);
        let default_achieved = unseen::achieved(full, calib, &vec![one; fitted.thresholds.len()]).1;
        let known = (0..calib.len())
            .filter(|&i| calib[i] && full.truth[i].is_some())
            .count();
        let total = calib.iter().filter(|c| **c).count();
        Outcome {
            score_fn,
            target,
            labels,
            fitted,
            achieved,
            pooled,
            default_achieved,
            cap,
            estimate,
            ordinary,
            known,
            unknown: total - known,
        }
    }

    /// The pooled default threshold, for the file.
    pub fn default_threshold(&self) -> Option<f64> {
        self.fitted
            .pooled
            .threshold
            .filter(|t| t.is_finite())
            .map(|t| f32_for_file(self.bounded(t)))
    }

    fn bounded(&self, t: f32) -> f32 {
        if self.score_fn.bounded() {
            t.min(1.0)
        } else {
            t
        }
    }

    /// Per label: its own threshold (labels without calibration photos use the default).
    pub fn thresholds_map(&self) -> std::collections::BTreeMap<String, f64> {
        self.labels
            .iter()
            .zip(&self.fitted.thresholds)
            .zip(&self.fitted.fitted_by)
            .filter(|(_, by)| **by != unseen::FittedBy::Default)
            .filter(|((_, t), _)| t.is_finite())
            .map(|((l, t), _)| (l.clone(), f32_for_file(self.bounded(*t))))
            .collect()
    }

    /// The `[calibration]` table of the thresholds file.
    pub fn calibration_info(&self, data: String, split: String) -> CalibrationInfo {
        let u = self.estimate.as_ref().and_then(|e| e.unseen_animals);
        CalibrationInfo {
            target_precision: self.target,
            data,
            split,
            known_images: self.known,
            unknown_images: self.unknown,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            camtrapd: env!("CARGO_PKG_VERSION").to_string(),
            held_out: Some(HeldOutInfo {
                method: if self.cap.folds > 0 {
                    "held-out".into()
                } else {
                    "ordinary".into()
                },
                recall_cap: self.cap.cap,
                held_out_precision: self.cap.precision,
                folds: self.cap.folds,
                how: self
                    .estimate
                    .as_ref()
                    .map_or_else(String::new, |e| e.how.clone()),
                unseen_animals_published: u.map(|u| u.mean),
                unseen_min: u.map(|u| u.min),
                unseen_max: u.map(|u| u.max),
            }),
            per_label: self
                .labels
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let a = self.achieved[i];
                    (
                        l.clone(),
                        LabelCalibration {
                            reached: a.precision().is_some_and(|p| p >= self.target),
                            precision: a.precision(),
                            recall: a.recall(),
                            support: a.support,
                            fitted_by: Some(self.fitted.fitted_by[i].as_str().to_string()),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Prints the per-label table, how the thresholds were fitted and the
    /// unseen-species estimate; returns the warnings to print after it.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<Vec<String>> {
        let target = self.target;
        let width = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(9, 32);
        writeln!(
            out,
            "{:<width$} {:>10} {:>9} {:>7} {:>7}  {:<10}  NOTE",
            "LABEL", "THRESHOLD", "PRECISION", "RECALL", "SUPPORT", "FITTED BY"
        )?;
        let mut warnings = Vec::new();
        let default_txt = fmt_threshold(
            self.fitted
                .pooled
                .threshold
                .filter(|t| t.is_finite())
                .map(|t| self.bounded(t)),
        );
        for (i, l) in self.labels.iter().enumerate() {
            let search = &self.fitted.per_label[i];
            let a = self.achieved[i];
            let by = self.fitted.fitted_by[i];
            let reached = a.precision().is_some_and(|p| p >= target);
            let note = if a.support == 0 {
                warnings.push(format!("no calibration photos of {l}: it uses the pooled default threshold {default_txt}; add photos of it to calibrate it"));
                "no calibration photos: uses the default".to_string()
            } else if search.threshold.is_none() {
                "never the top label: uses the default".to_string()
            } else if reached || a.accepted == 0 && search.reached {
                String::new()
            } else if search.true_positives == 0 {
                warnings.push(format!("{l}: no calibration image is rightly taken for {l}; its threshold is set above every score (it will not be published). Add images of {l}, or check its label group."));
                "target not reached: silenced".into()
            } else {
                warnings.push(format!(
                    "{l}: precision {target} is out of reach on this data (best {:.3}, at recall {}); its threshold gives that best precision. Add more images of {l} and of what it is confused with, or lower --target-precision.",
                    a.precision().unwrap_or(0.0),
                    pct(a.recall())
                ));
                "target not reached".into()
            };
            let t = self.fitted.thresholds[i];
            writeln!(
                out,
                "{l:<width$} {:>10} {:>9} {:>7} {:>7}  {:<10}  {note}",
                fmt_threshold(
                    (t.is_finite() && by != unseen::FittedBy::Default).then(|| self.bounded(t))
                ),
                pct(a.precision()),
                pct(a.recall()),
                a.support,
                by.as_str()
            )?;
            if (1..MIN_PHOTOS).contains(&a.support) {
                warnings.push(format!(
                    "only {} calibration photo{} of {l}: its threshold rests on too few photos to be reliable; add photos of it ({MIN_PHOTOS} or more)",
                    a.support,
                    if a.support == 1 { "" } else { "s" }
                ));
            }
        }
        writeln!(
            out,
            "{:<width$} {:>10} {:>9} {:>7} {:>7}  {:<10}  for labels without their own",
            "(default)",
            default_txt,
            pct(self.default_achieved.precision()),
            pct(self.default_achieved.recall()),
            self.default_achieved.support,
            "pooled"
        )?;
        writeln!(
            out,
            "all labels at their thresholds: precision {}, recall {} on these {} photos",
            pct(self.pooled.precision()),
            pct(self.pooled.recall()),
            self.known + self.unknown
        )?;
        if self.unknown == 0 {
            warnings.push("thresholds were not tested against unknown animals or empty frames: add a folder of them (e.g. other_animals/ and nothing/) so that the thresholds learn what to reject".into());
        }
        writeln!(out)?;
        if self.cap.folds == 0 && !self.cap.too_few {
            writeln!(
                out,
                "fitted the ordinary way (--calibration ordinary): the lowest threshold per label reaching precision {target} on these photos"
            )?;
        } else if self.cap.folds == 0 {
            writeln!(
                out,
                "fitted the ordinary way (lowest threshold per label reaching precision {target}): fewer than {} species and labels to hold out",
                unseen::MIN_FOLDS
            )?;
            warnings.push(format!(
                "fewer than {} species (folders of other animals or empty frames) and labels to hold out: the thresholds were fitted the ordinary way and may let species nobody photographed through; add a folder per species of other animals you have photos of",
                unseen::MIN_FOLDS
            ));
        } else {
            writeln!(
                out,
                "held-out calibration: each label keeps at most {:.0}% of its calibration photos (recall cap {:.2}), chosen so that precision reaches {target} when each of {} species and labels is left out in turn{}",
                self.cap.cap * 100.0,
                self.cap.cap,
                self.cap.folds,
                match (self.cap.reached, self.cap.precision) {
                    (true, Some(p)) => format!(" (held-out precision {p:.3})"),
                    (false, Some(p)) => {
                        warnings.push(format!(
                            "even keeping half of each label's photos, precision on held-out species and labels is {p:.3}, below {target}: the thresholds use the cap with the best precision; expect more false alarms from animals nobody photographed, or lower --target-precision"
                        ));
                        format!(" (target not reached: {p:.3} at best)")
                    }
                    _ => String::new(),
                }
            )?;
        }
        if let Some(e) = &self.estimate {
            print_estimate(e, self.ordinary.as_ref(), out, &mut warnings)?;
        }
        Ok(warnings)
    }
}

/// Prints the unseen-species estimate beside the ordinary figure; adds the
/// plain-words warning when the two differ by more than 1.5×.
pub(crate) fn print_estimate(
    e: &Estimate,
    ordinary: Option<&(usize, usize, String)>,
    out: &mut dyn Write,
    warnings: &mut Vec<String>,
) -> std::io::Result<()> {
    let p = |v: f64| format!("{:.1}%", v * 100.0);
    if let Some((published, images, what)) = ordinary {
        writeln!(
            out,
            "unknown animals published {what}: {} ({published} of {images})",
            p(*published as f64 / (*images).max(1) as f64)
        )?;
    }
    match e.unseen_animals {
        Some(u) => {
            writeln!(
                out,
                "unseen animals published (estimated): {} (from {} to {} across {} held-out species and labels; {})",
                p(u.mean),
                p(u.min),
                p(u.max),
                u.folds,
                e.how
            )?;
            for (name, s) in [("species-out", e.species_out), ("label-out", e.label_out)] {
                if let Some(s) = s {
                    writeln!(
                        out,
                        "  {name}: {} over {} fold{} ({} photos)",
                        p(s.mean),
                        s.folds,
                        if s.folds == 1 { "" } else { "s" },
                        s.images
                    )?;
                }
            }
        }
        None => writeln!(
            out,
            "unseen animals published (estimated): not available (no species or label could be held out)"
        )?,
    }
    if let Some(s) = e.empty_out {
        writeln!(
            out,
            "  empty frames of a kind held out: {} published ({} fold{})",
            p(s.mean),
            s.folds,
            if s.folds == 1 { "" } else { "s" }
        )?;
    }
    if let Some(w) = e.warning(ordinary.map(|(a, b, _)| *a as f64 / (*b).max(1) as f64)) {
        warnings.push(w);
    }
    Ok(())
}
