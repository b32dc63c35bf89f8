//! `camtrapd eval --data DIR [--split test]`: how well the model rejects
//! what it does not know, for every score function side by side, and what
//! the configured thresholds would publish. Writes report.html and
//! report.json (see [`crate::eval::report`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::decision::{Decision, Policy, ScoreFn, Verdict};
use crate::eval::calibrate::score_all;
use crate::eval::dataset::Category;
use crate::eval::outputs::Outputs;
use crate::eval::report::{
    calibrated_point, calibrated_thresholds, markdown_table, render_html, score_metrics, Confusion,
    Counts, FalseAccept, ImageRow, LabelPoint, Mistake, OperatingPoint, Report, ScoreRow,
    Unreadable,
};
use crate::eval::unseen::{self, Estimate, FoldScores};
use crate::exit;

use super::calibrate::{Common, Setup};
use super::CodedError;

/// Arguments of `camtrapd eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// For the side-by-side table, calibrate every score function on this
    /// split (default: `calib` when the data has it and it is not the
    /// evaluated split) and report precision, recall and false accepts at
    /// those thresholds.
    #[arg(long, value_name = "NAME")]
    pub calib_split: Option<String>,
    /// Calibrate on the images of another data set (folder or manifest),
    /// e.g. evaluate camera-trap frames at thresholds from zoo photos; with
    /// --calib-split, only that split of it.
    #[arg(long, value_name = "DIR|CSV")]
    pub calib_data: Option<PathBuf>,
    /// Target precision of those thresholds.
    #[arg(long, default_value_t = 0.95, value_name = "P")]
    pub target_precision: f64,
    /// Folder for report.html and report.json.
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub out: PathBuf,
    /// An unseen-species estimate made elsewhere (by `camtrapd train`, with
    /// the head retrained per fold) to report instead of the one `eval`
    /// makes with the model as it is.
    #[arg(skip)]
    pub estimate: Option<Estimate>,
}

fn share(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

pub(crate) fn eval(args: &Args) -> anyhow::Result<()> {
    if !(args.target_precision > 0.0 && args.target_precision <= 1.0) {
        return Err(CodedError(
            exit::USAGE,
            format!(
                "--target-precision {}: allowed 0 < P <= 1",
                args.target_precision
            ),
        )
        .into());
    }
    let mut setup = Setup::load(&args.common, false)?;
    // The configured decision: refused here exactly as the daemon would refuse it.
    let policy = Policy::with_model(
        setup.model.manifest(),
        &setup.overrides,
        Some(setup.model.sha256()),
        setup.model.knn_bank(),
    )?;
    let all = setup.take_items();
    let calib_all = match &args.calib_data {
        Some(p) => Some(setup.read_data(p)?),
        None => None,
    };
    let split = args.common.split.clone();
    let calib_source: &[crate::eval::dataset::Item] = calib_all.as_deref().unwrap_or(&all);
    let calib_split = args.calib_split.clone().or_else(|| {
        ((calib_all.is_some() || split.as_deref() != Some("calib"))
            && calib_source.iter().any(|i| i.split == "calib"))
        .then(|| "calib".to_string())
    });
    let calibrate_on_other = calib_all.is_some();
    if !calibrate_on_other && calib_split.is_some() && calib_split == split {
        return Err(CodedError(
            exit::USAGE,
            "--calib-split is the evaluated split: thresholds fitted on the images they are judged on look better than they are; name another split".into(),
        )
        .into());
    }
    let eval_items = Setup::split(&all, split.as_deref())?;
    let calib_items = if calibrate_on_other && calib_split.is_none() {
        Some(Setup::split(calib_source, None)?)
    } else {
        calib_split
            .as_deref()
            .map(|s| Setup::split(calib_source, Some(s)))
            .transpose()?
    };
    let has_known =
        |items: &[&crate::eval::dataset::Item]| items.iter().any(|i| i.category == Category::Known);
    if !has_known(&eval_items) && !calib_items.as_deref().is_some_and(has_known) {
        return Err(CodedError(
            exit::DATAERR,
            format!(
                "{}{}: no image of the model's labels (folder or label names must be labels: {}); nothing to evaluate. To measure only what unknown animals and empty frames would publish, pass --calib-data with photos of your labels",
                args.common.data.display(),
                split.as_deref().map_or(String::new(), |s| format!(" (split {s})")),
                super::calibrate::labels_hint(&setup.labels)
            ),
        )
        .into());
    }
    let (items, outs, bad) = setup.outputs(&eval_items)?;
    if items.is_empty() {
        return Err(CodedError(exit::DATAERR, "no image could be read".into()).into());
    }
    let calib = match &calib_items {
        Some(ci) => {
            let (ci, co, _) = setup.outputs(ci)?;
            Some((ci, co))
        }
        None => None,
    };
    let truth = setup.truth(&items);
    let cats: Vec<Category> = items.iter().map(|i| i.category).collect();
    let refs: Vec<&Outputs> = outs.iter().collect();
    let n_labels = setup.labels.len();

    // Temperature: fitted on the calibration split, else (optimistically) on these images.
    let (temperature, t_note) = match &calib {
        Some((ci, co)) => (setup.fit_temperature(ci, co), None),
        None => (
            setup.fit_temperature(&items, &outs),
            Some(
                "T fitted on the evaluated images themselves (no calibration split): optimistic"
                    .to_string(),
            ),
        ),
    };

    let mut rows = Vec::new();
    let mut per_image: Vec<BTreeMap<ScoreFn, f32>> = vec![BTreeMap::new(); items.len()];
    for f in ScoreFn::ALL {
        let mut row = ScoreRow {
            score_fn: f,
            title: f.title().to_string(),
            note: None,
            temperature: None,
            auroc: None,
            auroc_unknown: None,
            auroc_empty: None,
            fpr_at_95_tpr: None,
            aupr: None,
            oscr: None,
            calibrated: None,
        };
        let t = if f == ScoreFn::MspTemp {
            match temperature {
                Some(t) => {
                    row.temperature = Some(t);
                    row.note.clone_from(&t_note);
                    t
                }
                None => {
                    row.note = Some("no known image to fit the temperature on".into());
                    rows.push(row);
                    continue;
                }
            }
        } else {
            1.0
        };
        let scorer = match setup.scorer(f, t) {
            Ok(s) => s,
            Err(why) => {
                row.note = Some(why);
                rows.push(row);
                continue;
            }
        };
        let scored = score_all(&scorer, &refs);
        for (m, v) in per_image.iter_mut().zip(&scored.score) {
            if v.is_finite() {
                m.insert(f, *v);
            }
        }
        score_metrics(&mut row, &scored, &truth, &cats);
        if row.auroc.is_none() && row.note.is_none() {
            row.note = Some(if cats.iter().all(|c| *c != Category::Known) {
                "ranking metrics undefined: the data has no images of the labels".into()
            } else {
                "ranking metrics undefined: the data has no unknown or empty images".into()
            });
        }
        if let Some((ci, co)) = &calib {
            let crefs: Vec<&Outputs> = co.iter().collect();
            let cs = score_all(&scorer, &crefs);
            let ctruth = setup.truth(ci);
            let (thr, reached) =
                calibrated_thresholds(n_labels, &ctruth, &cs, args.target_precision);
            let night: Vec<bool> = items
                .iter()
                .map(|i| i.lighting.starts_with("night"))
                .collect();
            row.calibrated = Some(calibrated_point(
                &thr, reached, &scored, &truth, &cats, &night,
            ));
        }
        rows.push(row);
    }
    // Highest AUROC; ties: lower FPR@95%TPR, then the first in the table.
    let best = rows
        .iter()
        .filter_map(|r| Some((r.score_fn, r.auroc?, r.fpr_at_95_tpr.unwrap_or(1.0))))
        .fold(None::<(ScoreFn, f64, f64)>, |b, r| match b {
            Some(b) if b.1 > r.1 || (b.1 == r.1 && b.2 <= r.2) => Some(b),
            _ => Some(r),
        })
        .map(|b| b.0);

    // The configured operating point, decided as the daemon does.
    let labels = policy.labels().to_vec();
    let mut d = Decision::default();
    let mut images = Vec::with_capacity(items.len());
    let mut lp: Vec<LabelPoint> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| LabelPoint {
            label: l.clone(),
            threshold: policy.threshold(i),
            publishable: policy.publishable(i),
            support: truth.iter().filter(|t| **t == Some(i)).count(),
            published: 0,
            correct: 0,
            precision: None,
            recall: None,
        })
        .collect();
    let (mut right_top, mut known, mut published, mut correct) = (0, 0, 0, 0);
    let mut fa: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut conf: BTreeMap<(String, String), usize> = BTreeMap::new();
    for ((item, o), (t, scores)) in items.iter().zip(&outs).zip(truth.iter().zip(per_image)) {
        let emb = (!o.embedding.is_empty()).then_some(o.embedding.as_slice());
        policy.decide(&o.scores, emb, &mut d);
        let top = d.top();
        let is_pub = d.verdict == Verdict::Detection;
        if item.category == Category::Known {
            known += 1;
            right_top += usize::from(top.is_some() && top == *t);
        }
        if let (true, Some(top)) = (is_pub, top) {
            published += 1;
            lp[top].published += 1;
            if *t == Some(top) {
                correct += 1;
                lp[top].correct += 1;
            }
        }
        if item.category != Category::Known {
            let mut groups = vec![item.category.as_str().to_string()];
            if !item.lighting.is_empty() && item.lighting != "unknown" {
                groups.push(format!("unknown+empty, {}", item.lighting));
            }
            for g in groups {
                let e = fa.entry(g).or_default();
                e.0 += 1;
                e.1 += usize::from(is_pub);
            }
            if let (true, Some(top)) = (is_pub, top) {
                *conf
                    .entry((item.label.clone(), labels[top].clone()))
                    .or_default() += 1;
            }
        }
        images.push(ImageRow {
            path: item.path.display().to_string(),
            label: item.label.clone(),
            category: item.category,
            lighting: item.lighting.clone(),
            top: top.map_or(String::new(), |t| labels[t].clone()),
            published: is_pub,
            scores,
        });
    }
    for p in &mut lp {
        p.precision = share(p.correct, p.published);
        p.recall = share(p.correct, p.support);
    }
    let mut confusions: Vec<Confusion> = conf
        .into_iter()
        .map(|((truth, published_as), count)| Confusion {
            truth,
            published_as,
            count,
        })
        .collect();
    confusions.sort_by(|a, b| b.count.cmp(&a.count).then(a.truth.cmp(&b.truth)));
    let mut false_accepts: Vec<FalseAccept> = fa
        .into_iter()
        .map(|(group, (n, p))| FalseAccept {
            group,
            images: n,
            published: p,
            share: share(p, n),
        })
        .collect();
    // unknown, empty first, then the lighting groups.
    false_accepts.sort_by_key(|f| (f.group.contains(','), f.group != "unknown", f.group.clone()));
    let thresholds_from = match policy.thresholds_source() {
        Some(p) => p.display().to_string(),
        None if args.common.config.is_some() => "the config (no thresholds file)".into(),
        None => "the model's defaults (no config)".into(),
    };
    let mut caveats = Vec::new();
    if calib.is_none() && temperature.is_some() {
        caveats.push("msp_temp's temperature T is optimistic: fitted on the evaluated photos; pass --calib-data DIR (other photos of your labels, e.g. photos/calib) or use a manifest with a calib split".to_string());
    }
    let data_s = args.common.data.display().to_string();
    if let Some(ci) = setup
        .overrides
        .calibrated
        .as_ref()
        .and_then(|c| c.file.calibration.as_ref())
        .filter(|ci| ci.data == data_s && ci.split == split.clone().unwrap_or_default())
    {
        caveats.push(format!(
            "the configured thresholds are optimistic: fitted on the evaluated photos ({}{}); calibrate on other photos (`camtrapd calibrate --data photos/calib`) and evaluate on these",
            ci.data,
            if ci.split.is_empty() { String::new() } else { format!(", split {}", ci.split) }
        ));
    }
    // How the figures hold on species nobody photographed.
    let ordinary = false_accepts
        .iter()
        .find(|f| f.group == "unknown")
        .and_then(|f| f.share);
    // Fit each fold's thresholds the way the configured ones were fitted:
    // the thresholds file says how; without one, the bundle's own
    // thresholds say it in `[provenance.training] calibration`.
    let held_out = match setup.overrides.calibrated.as_ref() {
        Some(c) => c
            .file
            .calibration
            .as_ref()
            .and_then(|c| c.held_out.as_ref())
            .is_some_and(|h| h.method == "held-out"),
        None => {
            setup
                .model
                .manifest()
                .provenance
                .training
                .as_ref()
                .and_then(|t| t.calibration.as_deref())
                == Some("held-out")
        }
    };
    let estimate = match &args.estimate {
        Some(e) => Some(e.clone()),
        None => fixed_estimate(
            &setup,
            &policy,
            (&items, &outs),
            calib
                .as_ref()
                .map(|(ci, co)| (ci.as_slice(), co.as_slice())),
            args.target_precision,
            held_out,
        )?,
    };
    let unseen = estimate.map(|estimate| crate::eval::report::Unseen {
        warning: estimate.warning(ordinary),
        calibration: if args.estimate.is_some() || held_out {
            "held-out".into()
        } else {
            "ordinary".into()
        },
        estimate,
        ordinary,
    });
    let mistakes = mistakes(&images, &labels, &policy);
    let report = Report {
        camtrapd: env!("CARGO_PKG_VERSION").to_string(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        model: setup.model.manifest().name.clone(),
        model_sha256: setup.model.sha256().to_string(),
        data: args.common.data.display().to_string(),
        split: split.clone(),
        calib_split: match (&args.calib_data, &calib_split) {
            (Some(d), s) => Some(format!(
                "{}{}",
                d.display(),
                s.as_deref()
                    .map_or(String::new(), |s| format!(" (split {s})"))
            )),
            (None, s) => s.clone(),
        },
        target_precision: args.target_precision,
        caveats: caveats.clone(),
        labels: labels.clone(),
        counts: Counts {
            known,
            empty: cats.iter().filter(|c| **c == Category::Empty).count(),
            unknown: cats.iter().filter(|c| **c == Category::Unknown).count(),
            unreadable: bad.len(),
        },
        closed_set_accuracy: share(right_top, known),
        best,
        scores: rows,
        operating_point: OperatingPoint {
            score_fn: policy.score_fn(),
            thresholds_from,
            precision: share(correct, published),
            recall: share(correct, known),
            per_label: lp,
            false_accepts,
            confusions,
        },
        unreadable: bad
            .iter()
            .map(|(i, e)| Unreadable {
                path: i.path.display().to_string(),
                error: e.clone(),
            })
            .collect(),
        images,
        unseen,
        mistakes,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let json_path = args.out.join("report.json");
    let html_path = args.out.join("report.html");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&html_path, render_html(&report))
        .with_context(|| format!("writing {}", html_path.display()))?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}{}: {} known, {} unknown, {} empty images{}; closed-set accuracy {}",
        args.common.data.display(),
        split
            .as_deref()
            .map_or(String::new(), |s| format!(" (split {s})")),
        report.counts.known,
        report.counts.unknown,
        report.counts.empty,
        if bad.is_empty() {
            String::new()
        } else {
            format!(", {} unreadable", bad.len())
        },
        report
            .closed_set_accuracy
            .map_or("-".into(), |a| format!("{:.1}%", a * 100.0))
    )?;
    if let Some(c) = &report.calib_split {
        writeln!(
            out,
            "precision/recall/published columns: thresholds calibrated on {c} for precision {}",
            args.target_precision
        )?;
    }
    writeln!(out, "\n{}", markdown_table(&report))?;
    for c in &caveats {
        writeln!(out, "caution: {c}")?;
    }
    if let Some(b) = best {
        writeln!(out, "best separation (AUROC): {b}")?;
    }
    let op = &report.operating_point;
    writeln!(
        out,
        "\nat the configured thresholds ({}, from {}): precision {}, recall {}",
        op.score_fn,
        op.thresholds_from,
        op.precision.map_or("-".into(), |v| format!("{v:.3}")),
        op.recall.map_or("-".into(), |v| format!("{v:.3}"))
    )?;
    for f in &op.false_accepts {
        writeln!(
            out,
            "  {:<28} {:>4} of {:>4} published ({})",
            f.group,
            f.published,
            f.images,
            f.share.map_or("-".into(), |s| format!("{:.1}%", s * 100.0))
        )?;
    }
    for c in op.confusions.iter().take(5) {
        writeln!(
            out,
            "  {} taken for {}: {}",
            c.truth, c.published_as, c.count
        )?;
    }
    if let Some(u) = &report.unseen {
        writeln!(out)?;
        let mut warnings = Vec::new();
        let ordinary = u.ordinary.map(|o| {
            let n = report.counts.unknown;
            (
                (o * n as f64).round() as usize,
                n,
                format!(
                    "here{}",
                    split
                        .as_deref()
                        .map_or(String::new(), |s| format!(" (split {s})"))
                ),
            )
        });
        super::calibrate::print_estimate(&u.estimate, ordinary.as_ref(), &mut out, &mut warnings)?;
        if args.estimate.is_none() {
            writeln!(
                out,
                "  (thresholds of each fold fitted by {} calibration{})",
                u.calibration,
                if u.calibration == "ordinary" {
                    ", as the configured ones were; `camtrapd calibrate` now calibrates held-out"
                } else {
                    ""
                }
            )?;
        }
        for w in warnings {
            writeln!(out, "caution: {w}")?;
        }
    }
    writeln!(
        out,
        "\nwrote {} and {}",
        html_path.display(),
        json_path.display()
    )?;
    setup.finish();
    Ok(())
}

/// The unseen-species estimate for a model as it is (calibration only, see
/// [`super::calibrate::FIXED_HOW`]): the calibration photos (when there are
/// any) and the evaluated ones, folds over their species and labels, fold
/// thresholds fitted on the calibration photos without the fold (on the
/// evaluated photos without it when there is no calibration split).
fn fixed_estimate(
    setup: &Setup,
    policy: &Policy,
    eval: (&[&crate::eval::dataset::Item], &[Outputs]),
    calib: Option<(&[&crate::eval::dataset::Item], &[Outputs])>,
    target: f64,
    held_out: bool,
) -> anyhow::Result<Option<Estimate>> {
    let f = policy.score_fn();
    let t = policy.scorer().temperature();
    let mut items: Vec<&crate::eval::dataset::Item> = Vec::new();
    let mut outs: Vec<&Outputs> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let n_calib = calib.map_or(0, |(ci, _)| ci.len());
    for (i, o) in calib
        .into_iter()
        .flat_map(|(ci, co)| ci.iter().zip(co))
        .chain(eval.0.iter().zip(eval.1))
    {
        if seen.insert(i.path.clone()) {
            items.push(*i);
            outs.push(o);
        }
    }
    let folds = setup.fixed_folds(f, t, &items, &outs)?;
    if folds.is_empty() {
        return Ok(None);
    }
    let scorer = setup.scorer(f, t).map_err(|e| CodedError(exit::USAGE, e))?;
    let full = FoldScores {
        n_labels: setup.labels.len(),
        truth: setup.truth(&items),
        scored: score_all(&scorer, &outs),
    };
    let calib_mask: Vec<bool> = (0..items.len())
        .map(|i| n_calib == 0 || i < n_calib)
        .collect();
    let countable = vec![true; items.len()];
    let empty: Vec<bool> = items
        .iter()
        .map(|i| i.category == Category::Empty)
        .collect();
    Ok(Some(unseen::estimate(
        &unseen::Setup {
            full: &full,
            folds: &folds,
            calib: &calib_mask,
            countable: &countable,
            target,
            empty: &empty,
        },
        held_out,
        super::calibrate::FIXED_HOW,
    )))
}

/// At most this many thumbnails of each kind of mistake in report.html.
const MAX_THUMBNAILS: usize = 60;

/// The mistakes at the configured thresholds (unknown and empty photos
/// published; photos of a label not published with it), with thumbnails.
fn mistakes(images: &[ImageRow], labels: &[String], policy: &Policy) -> Vec<Mistake> {
    let f = policy.score_fn();
    let mut out = Vec::new();
    let (mut published, mut missed) = (0, 0);
    for im in images {
        let kind = match (im.category, im.published) {
            (Category::Known, true) if im.top == im.label => continue,
            (Category::Known, _) => "missed",
            (_, true) => "published",
            (_, false) => continue,
        };
        let n = if kind == "missed" {
            &mut missed
        } else {
            &mut published
        };
        *n += 1;
        if *n > MAX_THUMBNAILS {
            continue;
        }
        let threshold = labels
            .iter()
            .position(|l| *l == im.top)
            .map_or(f32::NAN, |i| policy.threshold(i));
        out.push(Mistake {
            kind,
            path: im.path.clone(),
            label: im.label.clone(),
            top: im.top.clone(),
            score: im.scores.get(&f).copied().unwrap_or(f32::NAN),
            threshold,
            thumbnail: crate::eval::report::thumbnail_data_uri(std::path::Path::new(&im.path), 160),
        });
    }
    out
}
