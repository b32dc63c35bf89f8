//! The evaluation report: every score function side by side, the
//! configured operating point in detail, as JSON ([`Report`]) and as a
//! self-contained HTML page with SVG plots drawn by plotters
//! ([`render_html`]).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::decision::ScoreFn;

use super::calibrate::{calibrate_labels, calibrate_pooled, Scored};
use super::dataset::Category;
use super::metrics;

/// The whole report (`report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// camtrapd version.
    pub camtrapd: String,
    /// When (RFC 3339, UTC).
    pub created: String,
    /// Model name.
    pub model: String,
    /// SHA-256 of `model.onnx`.
    pub model_sha256: String,
    /// The data set, as given.
    pub data: String,
    /// The evaluated split (`None`: every image).
    pub split: Option<String>,
    /// The split thresholds were calibrated on for the side-by-side table.
    pub calib_split: Option<String>,
    /// Target precision of those thresholds.
    pub target_precision: f64,
    /// Figures fitted on the evaluated photos themselves, which look better
    /// than they are (shown above the tables).
    pub caveats: Vec<String>,
    /// Decision labels (model labels or label groups).
    pub labels: Vec<String>,
    /// Image counts.
    pub counts: Counts,
    /// Share of known images whose top label is right (closed-set accuracy).
    pub closed_set_accuracy: Option<f64>,
    /// The score function with the highest AUROC.
    pub best: Option<ScoreFn>,
    /// One row per score function.
    pub scores: Vec<ScoreRow>,
    /// The configured score function and thresholds, in detail.
    pub operating_point: OperatingPoint,
    /// Images that could not be read.
    pub unreadable: Vec<Unreadable>,
    /// Per image: label, top label, every score, published or not.
    pub images: Vec<ImageRow>,
    /// How the figures hold on species nobody photographed.
    pub unseen: Option<Unseen>,
    /// The mistakes at the configured thresholds, with thumbnails (HTML only).
    #[serde(skip)]
    pub mistakes: Vec<Mistake>,
}

/// The unseen-species estimate beside the ordinary figure.
#[derive(Debug, Clone, Serialize)]
pub struct Unseen {
    /// The estimate, fold by fold.
    pub estimate: super::unseen::Estimate,
    /// Share of the unknown animals among the evaluated photos published at
    /// the configured thresholds (the ordinary figure).
    pub ordinary: Option<f64>,
    /// How the fold thresholds were fitted: `held-out` or `ordinary`.
    pub calibration: String,
    /// The plain-words warning when the estimate exceeds the ordinary figure by more than 1.5×.
    pub warning: Option<String>,
}

/// One mistake at the configured thresholds, for the report's thumbnails.
#[derive(Debug, Clone)]
pub struct Mistake {
    /// `published` (an unknown or empty photo published) or `missed` (a
    /// photo of a label not published with its label).
    pub kind: &'static str,
    /// The file.
    pub path: String,
    /// What it shows (data-set label).
    pub label: String,
    /// The top label.
    pub top: String,
    /// Its confidence under the configured score function.
    pub score: f32,
    /// The top label's threshold.
    pub threshold: f32,
    /// A small JPEG as a `data:` URI, if the file could be read.
    pub thumbnail: Option<String>,
}

/// A thumbnail of an image file as a `data:image/jpeg;base64,...` URI:
/// decoded as the daemon decodes (limits, EXIF orientation), shrunk to fit
/// `size`×`size` pixels, JPEG quality 75. `None` when it cannot be read.
pub fn thumbnail_data_uri(path: &std::path::Path, size: u32) -> Option<String> {
    use base64::Engine;
    let img = crate::decode::decode_file(path, &crate::decode::DecodeLimits::default()).ok()?;
    let (w, h) = (img.width().max(1), img.height().max(1));
    let scale = (f64::from(size) / f64::from(w.max(h))).min(1.0);
    let thumb = image::imageops::thumbnail(
        &img,
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 75)
        .encode_image(&thumb)
        .ok()?;
    Some(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jpeg)
    ))
}

/// Image counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Images of the labels.
    pub known: usize,
    /// Empty frames (no animal).
    pub empty: usize,
    /// Other unknowns (animals that are not labels, people, vehicles).
    pub unknown: usize,
    /// Images that could not be read (left out of everything else).
    pub unreadable: usize,
}

/// One score function's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreRow {
    /// The score function.
    pub score_fn: ScoreFn,
    /// Its description.
    pub title: String,
    /// Why it is missing, or a caveat.
    pub note: Option<String>,
    /// The temperature (`msp_temp`).
    pub temperature: Option<f32>,
    /// Known vs unknown+empty AUROC.
    pub auroc: Option<f64>,
    /// Known vs other unknowns only.
    pub auroc_unknown: Option<f64>,
    /// Known vs empty frames only.
    pub auroc_empty: Option<f64>,
    /// Share of unknown+empty images scoring above the threshold that keeps 95% of known images.
    pub fpr_at_95_tpr: Option<f64>,
    /// Average precision, known images as positives (AUPR-In).
    pub aupr: Option<f64>,
    /// Open-set classification rate.
    pub oscr: Option<f64>,
    /// At thresholds calibrated on the calibration split.
    pub calibrated: Option<CalibratedPoint>,
}

/// Figures at thresholds calibrated on another split.
#[derive(Debug, Clone, Serialize)]
pub struct CalibratedPoint {
    /// Share of published images whose label is right.
    pub precision: Option<f64>,
    /// Share of known images published with the right label.
    pub recall: Option<f64>,
    /// Share of other unknowns published (false accepts).
    pub unknown_published: Option<f64>,
    /// Share of empty frames published (false accepts).
    pub empty_published: Option<f64>,
    /// Share of unknown and empty night (infrared) frames published.
    pub night_published: Option<f64>,
    /// Labels whose calibration reached the target precision.
    pub labels_reached: usize,
}

/// The configured decision on the evaluated images.
#[derive(Debug, Clone, Serialize)]
pub struct OperatingPoint {
    /// Score function.
    pub score_fn: ScoreFn,
    /// Where the thresholds came from.
    pub thresholds_from: String,
    /// Share of published images whose label is right.
    pub precision: Option<f64>,
    /// Share of known images published with the right label.
    pub recall: Option<f64>,
    /// Per label.
    pub per_label: Vec<LabelPoint>,
    /// Per kind of image that should never be published.
    pub false_accepts: Vec<FalseAccept>,
    /// Which unknown images were taken for which label.
    pub confusions: Vec<Confusion>,
}

/// One label at the operating point.
#[derive(Debug, Clone, Serialize)]
pub struct LabelPoint {
    /// The label.
    pub label: String,
    /// Its threshold.
    pub threshold: f32,
    /// Whether it is published at all.
    pub publishable: bool,
    /// Its images.
    pub support: usize,
    /// Images published as it.
    pub published: usize,
    /// Of those, right.
    pub correct: usize,
    /// `correct / published`.
    pub precision: Option<f64>,
    /// `correct / support`.
    pub recall: Option<f64>,
}

/// Published share of one group of images that should never be published.
#[derive(Debug, Clone, Serialize)]
pub struct FalseAccept {
    /// `unknown`, `empty`, or `unknown+empty, <lighting>`.
    pub group: String,
    /// Images in the group.
    pub images: usize,
    /// Of those, published.
    pub published: usize,
    /// `published / images`.
    pub share: Option<f64>,
}

/// Unknown images with one true label published as one label.
#[derive(Debug, Clone, Serialize)]
pub struct Confusion {
    /// What the images show (data-set label).
    pub truth: String,
    /// The label they were published as.
    pub published_as: String,
    /// How many.
    pub count: usize,
}

/// An image that could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    /// The file.
    pub path: String,
    /// Why.
    pub error: String,
}

/// One evaluated image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageRow {
    /// The file.
    pub path: String,
    /// Its data-set label.
    pub label: String,
    /// Known, empty or unknown.
    pub category: Category,
    /// Lighting (manifest `day_night`), if given.
    pub lighting: String,
    /// The top label at the operating point.
    pub top: String,
    /// Whether the configured decision publishes it.
    pub published: bool,
    /// Confidence under every available score function.
    pub scores: BTreeMap<ScoreFn, f32>,
}

/// Ranking metrics of one score function (`truth[i]`: true label of image
/// `i` or `None`; `cats[i]`: its category).
pub fn score_metrics(row: &mut ScoreRow, s: &Scored, truth: &[Option<usize>], cats: &[Category]) {
    let (mut known, mut unknown, mut empty, mut oscr_known) = (vec![], vec![], vec![], vec![]);
    for i in 0..s.score.len() {
        let v = s.score[i];
        if v.is_nan() {
            continue;
        }
        match cats[i] {
            Category::Known => {
                known.push(v);
                oscr_known.push((v, truth[i] == Some(s.top[i])));
            }
            Category::Empty => empty.push(v),
            Category::Unknown => unknown.push(v),
        }
    }
    let neg: Vec<f32> = unknown.iter().chain(&empty).copied().collect();
    row.auroc = metrics::auroc(&known, &neg);
    row.auroc_unknown = metrics::auroc(&known, &unknown);
    row.auroc_empty = metrics::auroc(&known, &empty);
    row.fpr_at_95_tpr = metrics::fpr_at_tpr(&known, &neg, 0.95);
    row.aupr = metrics::average_precision(&known, &neg);
    row.oscr = metrics::oscr(&oscr_known, &neg);
}

/// Thresholds (per label, with the pooled default) calibrated on one set of
/// images at `target` precision.
pub fn calibrated_thresholds(
    n_labels: usize,
    truth: &[Option<usize>],
    s: &Scored,
    target: f64,
) -> (Vec<f32>, usize) {
    let per = calibrate_labels(n_labels, truth, s, target);
    let pooled = calibrate_pooled(truth, s, target);
    let default = pooled.threshold.unwrap_or(f32::INFINITY);
    let reached = per.iter().filter(|t| t.reached).count();
    (
        per.iter().map(|t| t.threshold.unwrap_or(default)).collect(),
        reached,
    )
}

/// Figures on `s` at `thresholds` (every label published).
/// `night[i]`: whether image `i` is a night (infrared) frame.
pub fn calibrated_point(
    thresholds: &[f32],
    reached: usize,
    s: &Scored,
    truth: &[Option<usize>],
    cats: &[Category],
    night: &[bool],
) -> CalibratedPoint {
    let (mut published, mut correct, mut known, mut unk, mut unk_pub, mut emp, mut emp_pub) =
        (0, 0, 0, 0, 0, 0, 0);
    let (mut nights, mut night_pub) = (0, 0);
    for i in 0..s.score.len() {
        let p = !s.score[i].is_nan() && thresholds.get(s.top[i]).is_some_and(|t| s.score[i] >= *t);
        if cats[i] != Category::Known && night.get(i).copied().unwrap_or(false) {
            nights += 1;
            night_pub += usize::from(p);
        }
        match cats[i] {
            Category::Known => known += 1,
            Category::Empty => {
                emp += 1;
                emp_pub += usize::from(p);
            }
            Category::Unknown => {
                unk += 1;
                unk_pub += usize::from(p);
            }
        }
        if p {
            published += 1;
            correct += usize::from(truth[i] == Some(s.top[i]));
        }
    }
    let share = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    CalibratedPoint {
        precision: share(correct, published),
        recall: share(correct, known),
        unknown_published: share(unk_pub, unk),
        empty_published: share(emp_pub, emp),
        night_published: share(night_pub, nights),
        labels_reached: reached,
    }
}

fn f3(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}%", v * 100.0))
}

/// The side-by-side table as Markdown (for the terminal and README).
pub fn markdown_table(r: &Report) -> String {
    let mut t = String::new();
    let cal = r.calib_split.is_some();
    let ranked = r.scores.iter().any(|s| s.auroc.is_some());
    if !ranked && cal {
        return open_set_only_table(r);
    }
    t.push_str("| score function | AUROC ↑ | AUROC vs unknown animals | AUROC vs empty | FPR@95%TPR ↓ | AUPR ↑ | OSCR ↑ |");
    if cal {
        t.push_str(" precision | recall | unknown published | empty published |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    } else {
        t.push_str("\n|---|---|---|---|---|---|---|\n");
    }
    for row in &r.scores {
        let name = match row.temperature {
            Some(tt) if row.score_fn == ScoreFn::MspTemp => {
                format!("`{}` (T = {tt:.2})", row.score_fn)
            }
            _ => format!("`{}`", row.score_fn),
        };
        let best = if r.best == Some(row.score_fn) {
            " **best**"
        } else {
            ""
        };
        if row.auroc.is_none() {
            t.push_str(&format!(
                "| {name} | n/a: {} |{}\n",
                row.note.as_deref().unwrap_or("unavailable"),
                // The n/a cell spans the first metric; one empty cell per other column.
                if cal {
                    " | | | | | | | | |"
                } else {
                    " | | | | |"
                }
            ));
            continue;
        }
        t.push_str(&format!(
            "| {name}{best} | {} | {} | {} | {} | {} | {} |",
            f3(row.auroc),
            f3(row.auroc_unknown),
            f3(row.auroc_empty),
            pct(row.fpr_at_95_tpr),
            f3(row.aupr),
            f3(row.oscr)
        ));
        if cal {
            match &row.calibrated {
                Some(c) => t.push_str(&format!(
                    " {} | {} | {} | {} |",
                    f3(c.precision),
                    f3(c.recall),
                    pct(c.unknown_published),
                    pct(c.empty_published)
                )),
                None => t.push_str(" – | – | – | – |"),
            }
        }
        t.push('\n');
    }
    t
}

/// For data without known images (e.g. only empty frames and other
/// animals): what calibrated thresholds would publish, per score function.
fn open_set_only_table(r: &Report) -> String {
    let mut t = String::from("| score function | unknown published ↓ | empty published ↓ | night (infrared) published ↓ |\n|---|---|---|---|\n");
    for row in &r.scores {
        match &row.calibrated {
            Some(c) => t.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                row.score_fn,
                pct(c.unknown_published),
                pct(c.empty_published),
                pct(c.night_published)
            )),
            None => t.push_str(&format!(
                "| `{}` | n/a: {} | | |\n",
                row.score_fn,
                row.note.as_deref().unwrap_or("unavailable")
            )),
        }
    }
    t
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLOURS: [plotters::style::RGBColor; 6] = [
    plotters::style::RGBColor(31, 119, 180),
    plotters::style::RGBColor(255, 127, 14),
    plotters::style::RGBColor(44, 160, 44),
    plotters::style::RGBColor(214, 39, 40),
    plotters::style::RGBColor(148, 103, 189),
    plotters::style::RGBColor(140, 86, 75),
];

/// ROC curves of every available score function, with the operating point.
fn roc_svg(r: &Report) -> String {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        // Good score functions hug the top-left corner: zoom into it when
        // every curve has reached 90% TPR by 30% FPR.
        let mut curves = Vec::new();
        for row in &r.scores {
            let (mut pos, mut neg) = (Vec::new(), Vec::new());
            for im in &r.images {
                if let Some(v) = im.scores.get(&row.score_fn) {
                    if im.category == Category::Known {
                        pos.push(*v);
                    } else {
                        neg.push(*v);
                    }
                }
            }
            if let Some(points) = metrics::roc_points(&pos, &neg) {
                curves.push((row, points));
            }
        }
        let zoom = !curves.is_empty()
            && curves
                .iter()
                .all(|(_, c)| c.iter().any(|p| p.0 <= 0.3 && p.1 >= 0.9));
        let (xmax, ymin) = if zoom { (0.3, 0.5) } else { (1.0, 0.0) };
        let root = SVGBackend::with_string(&mut svg, (560, 440)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let caption = if zoom {
            "ROC: known vs unknown + empty (zoomed: FPR 0-30%, TPR 50-100%)"
        } else {
            "ROC: known vs unknown + empty"
        };
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..xmax, ymin..1f64)
        else {
            return svg_fallback();
        };
        let clamp = move |p: (f64, f64)| (p.0.min(xmax), p.1.max(ymin));
        let _ = chart
            .configure_mesh()
            .x_desc("false-positive rate (unknown/empty accepted)")
            .y_desc("true-positive rate (known accepted)")
            .draw();
        if !zoom {
            let _ = chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.2)));
        }
        for (i, (row, points)) in curves.into_iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            let points: Vec<(f64, f64)> = points.into_iter().map(clamp).collect();
            if let Ok(series) = chart.draw_series(LineSeries::new(points, c.stroke_width(2))) {
                series
                    .label(format!("{} (AUROC {})", row.score_fn, f3(row.auroc)))
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2))
                    });
            }
        }
        // The operating point: all known vs all unknown/empty images published.
        let (mut k, mut kp, mut u, mut up) = (0usize, 0usize, 0usize, 0usize);
        for im in &r.images {
            if im.category == Category::Known {
                k += 1;
                kp += usize::from(im.published);
            } else {
                u += 1;
                up += usize::from(im.published);
            }
        }
        if k > 0 && u > 0 {
            let p = clamp((up as f64 / u as f64, kp as f64 / k as f64));
            if let Ok(series) = chart.draw_series([Circle::new(p, 6, BLACK.filled())]) {
                series
                    .label(format!(
                        "configured thresholds ({})",
                        r.operating_point.score_fn
                    ))
                    .legend(|(x, y)| Circle::new((x + 8, y), 4, BLACK.filled()));
            }
        }
        let _ = chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw();
        let _ = root.present();
    }
    svg
}

fn svg_fallback() -> String {
    "<p>(plot unavailable)</p>".into()
}

/// Histogram of one label's scores: images taken for it that truly show it
/// against those that do not, with its threshold.
fn label_hist_svg(r: &Report, label: usize) -> Option<String> {
    use plotters::prelude::*;
    let op = &r.operating_point;
    let name = r.labels.get(label)?;
    let (mut right, mut wrong) = (Vec::new(), Vec::new());
    for im in &r.images {
        if im.top != *name {
            continue;
        }
        let Some(v) = im
            .scores
            .get(&op.score_fn)
            .copied()
            .filter(|v| v.is_finite())
        else {
            continue;
        };
        if im.category == Category::Known && im.label == *name {
            right.push(v);
        } else {
            wrong.push(v);
        }
    }
    if right.is_empty() && wrong.is_empty() {
        return None;
    }
    let thr = op.per_label.get(label).map(|p| p.threshold)?;
    let all = right.iter().chain(&wrong).copied().chain([thr]);
    let (mut lo, mut hi) = all.fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if op.score_fn.bounded() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.02;
    let (lo, hi) = (f64::from(lo - pad), f64::from(hi + pad));
    const BINS: usize = 20;
    let w = (hi - lo) / BINS as f64;
    let count = |v: &[f32]| {
        let mut c = [0usize; BINS];
        for &x in v {
            let b = (((f64::from(x) - lo) / w) as usize).min(BINS - 1);
            c[b] += 1;
        }
        c
    };
    let (cr, cw) = (count(&right), count(&wrong));
    // Counts are whole images: an integer axis (ticks 0, 2, 4, not 2.0, 4.0).
    let most = cr.iter().chain(&cw).copied().max().unwrap_or(1).max(1);
    let ymax = u32::try_from(most + most.div_ceil(7)).unwrap_or(u32::MAX);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (360, 220)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(name, ("sans-serif", 14))
            .margin(6)
            .x_label_area_size(28)
            .y_label_area_size(30)
            .build_cartesian_2d(lo..hi, 0u32..ymax)
        else {
            return None;
        };
        let _ = chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(5)
            .y_labels(4)
            .draw();
        for (counts, colour, label) in [
            (cr, COLOURS[0].mix(0.6), format!("right ({})", right.len())),
            (
                cw,
                COLOURS[3].mix(0.6),
                format!("wrong/unknown ({})", wrong.len()),
            ),
        ] {
            if let Ok(s) =
                chart.draw_series(counts.iter().enumerate().filter(|(_, n)| **n > 0).map(
                    |(b, n)| {
                        let x0 = lo + b as f64 * w;
                        Rectangle::new(
                            [(x0, 0), (x0 + w, u32::try_from(*n).unwrap_or(u32::MAX))],
                            colour.filled(),
                        )
                    },
                ))
            {
                s.label(label).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 4), (x + 10, y + 4)], colour.filled())
                });
            }
        }
        let t = f64::from(thr);
        if let Ok(s) =
            chart.draw_series(LineSeries::new([(t, 0), (t, ymax)], BLACK.stroke_width(2)))
        {
            s.label(format!("threshold {thr:.3}"))
                .legend(|(x, y)| PathElement::new([(x, y), (x + 10, y)], BLACK.stroke_width(2)));
        }
        let _ = chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 10))
            .background_style(WHITE.mix(0.8))
            .draw();
        let _ = root.present();
    }
    Some(svg)
}

/// The self-contained HTML report.
pub fn render_html(r: &Report) -> String {
    let mut h = String::new();
    let op = &r.operating_point;
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>camtrapd evaluation</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.best{background:#e8f5e9}.bad{background:#fdecea}.grid{display:flex;flex-wrap:wrap;gap:4px}details{margin:.5em 0}code{background:#f4f4f4;padding:0 3px}.note{color:#555;font-size:90%}</style></head><body>\n");
    h.push_str(&format!(
        "<h1>camtrapd evaluation</h1><p>Model <b>{}</b> (<code>{}</code>) on <code>{}</code>{}. {} known images (of the labels), {} unknown (other animals, people, vehicles), {} empty frames{}. camtrapd {}, {}.</p>\n",
        esc(&r.model),
        esc(r.model_sha256.get(..12).unwrap_or("")),
        esc(&r.data),
        r.split.as_deref().map_or(String::new(), |s| format!(", split <b>{}</b>", esc(s))),
        r.counts.known,
        r.counts.unknown,
        r.counts.empty,
        if r.counts.unreadable > 0 { format!(", {} unreadable (left out)", r.counts.unreadable) } else { String::new() },
        esc(&r.camtrapd),
        esc(&r.created)
    ));
    h.push_str("<h2>How to read this</h2><ul>\
<li>A <b>score function</b> turns the model's output into one confidence per frame; a frame is published when the confidence of its top label reaches that label's threshold. A good score function gives images of your labels (<i>known</i>) high scores and everything else (<i>unknown</i>: other animals, people; <i>empty</i>: no animal) low scores.</li>\
<li><b>AUROC</b>: the chance that a random known image scores higher than a random unknown/empty one (1 = perfect, 0.5 = coin flip). <b>FPR@95%TPR</b>: the share of unknown/empty images still accepted at the threshold that keeps 95% of known images (lower is better). <b>AUPR</b>: average precision with known images as positives. <b>OSCR</b>: like AUROC, but a known image only counts when its label is also right.</li>\
<li><b>precision</b>: of the published frames, the share with the right label. <b>recall</b>: of the known images, the share published with the right label. <b>unknown/empty published</b>: false accepts, the share of those images that would wrongly become detections.</li></ul>\n");
    for c in &r.caveats {
        h.push_str(&format!(
            "<p style=\"background:#fff3cd;padding:.4em\"><b>Caution</b>: {}</p>\n",
            esc(c)
        ));
    }
    if let Some(u) = &r.unseen {
        h.push_str(&unseen_html(u));
    }
    h.push_str(&format!(
        "<h2>Score functions side by side</h2><p>Closed-set accuracy (top label right, known images only): <b>{}</b>.{}</p>\n<table><tr><th>score function</th><th>AUROC</th><th>AUROC vs unknown animals</th><th>AUROC vs empty</th><th>FPR@95%TPR</th><th>AUPR</th><th>OSCR</th>",
        pct(r.closed_set_accuracy),
        r.calib_split.as_deref().map_or(String::new(), |c| format!(
            " The last four columns use thresholds calibrated on split <b>{}</b> for precision {} per label, applied to this split.",
            esc(c),
            r.target_precision
        ))
    ));
    if r.calib_split.is_some() {
        h.push_str(
            "<th>precision</th><th>recall</th><th>unknown published</th><th>empty published</th>",
        );
    }
    h.push_str("</tr>\n");
    for row in &r.scores {
        let cls = if r.best == Some(row.score_fn) {
            " class=\"best\""
        } else {
            ""
        };
        let temp = row
            .temperature
            .filter(|_| row.score_fn == ScoreFn::MspTemp)
            .map_or(String::new(), |t| format!(" (T = {t:.2})"));
        h.push_str(&format!(
            "<tr{cls}><td><code>{}</code>{temp}<br><span class=\"note\">{}</span></td>",
            row.score_fn,
            esc(&row.title)
        ));
        if row.auroc.is_none() {
            h.push_str(&format!(
                "<td colspan=\"{}\" style=\"text-align:left\">n/a: {}</td></tr>\n",
                if r.calib_split.is_some() { 10 } else { 6 },
                esc(row.note.as_deref().unwrap_or("unavailable"))
            ));
            continue;
        }
        h.push_str(&format!(
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            f3(row.auroc),
            f3(row.auroc_unknown),
            f3(row.auroc_empty),
            pct(row.fpr_at_95_tpr),
            f3(row.aupr),
            f3(row.oscr)
        ));
        if r.calib_split.is_some() {
            match &row.calibrated {
                Some(c) => h.push_str(&format!(
                    "<td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                    f3(c.precision),
                    f3(c.recall),
                    pct(c.unknown_published),
                    pct(c.empty_published)
                )),
                None => h.push_str("<td>–</td><td>–</td><td>–</td><td>–</td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    if let Some(b) = r.best {
        h.push_str(&format!("<p>Best separation on these images: <b><code>{b}</code></b> (highest AUROC). Calibrate with it: <code>camtrapd calibrate --score {b} --data DIR</code>.</p>\n"));
    }
    h.push_str(&roc_svg(r));
    h.push_str(&format!(
        "\n<h2>At the configured thresholds</h2><p>Score function <code>{}</code>, thresholds from {}. Precision <b>{}</b>, recall <b>{}</b>.</p>\n<h3>What would be published that should not</h3><table><tr><th>images</th><th>count</th><th>published</th><th>share</th></tr>\n",
        op.score_fn,
        esc(&op.thresholds_from),
        f3(op.precision),
        f3(op.recall)
    ));
    for fa in &op.false_accepts {
        let cls = if fa.published > 0 {
            " class=\"bad\""
        } else {
            ""
        };
        h.push_str(&format!(
            "<tr{cls}><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&fa.group),
            fa.images,
            fa.published,
            pct(fa.share)
        ));
    }
    h.push_str("</table>\n");
    if !op.confusions.is_empty() {
        h.push_str("<h3>Unknown images taken for a label</h3><table><tr><th>what the image shows</th><th>published as</th><th>count</th></tr>\n");
        for c in &op.confusions {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(&c.truth),
                esc(&c.published_as),
                c.count
            ));
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h3>Per label</h3><table><tr><th>label</th><th>threshold</th><th>support</th><th>published</th><th>right</th><th>precision</th><th>recall</th></tr>\n");
    for p in &op.per_label {
        h.push_str(&format!(
            "<tr><td>{}{}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&p.label),
            if p.publishable { "" } else { " (not published)" },
            p.threshold, p.support, p.published, p.correct, f3(p.precision), f3(p.recall)
        ));
    }
    h.push_str("</table>\n<h3>Score histograms per label</h3><p class=\"note\">Images whose top label is this label: blue = they truly show it, red = they do not (unknown, empty or another label). The black line is the threshold: everything right of it is published. A good threshold has most blue right of it and red left of it.</p><div class=\"grid\">\n");
    for i in 0..r.labels.len() {
        if let Some(svg) = label_hist_svg(r, i) {
            h.push_str(&svg);
            h.push('\n');
        }
    }
    h.push_str("</div>\n");
    h.push_str(&mistakes_html(&r.mistakes));
    if !r.unreadable.is_empty() {
        h.push_str("<h2>Unreadable images</h2><ul>");
        for u in &r.unreadable {
            h.push_str(&format!(
                "<li><code>{}</code>: {}</li>",
                esc(&u.path),
                esc(&u.error)
            ));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("<p class=\"note\">Per-image scores are in report.json. Sources: MSP (Hendrycks &amp; Gimpel 2017), temperature scaling (Guo et al. 2017), max-logit (Vaze et al. 2022), energy (Liu et al. 2020), kNN (Sun et al. 2022), OSCR (Dhamija et al. 2018).</p></body></html>\n");
    h
}

fn share(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// The "animals nobody photographed" section.
fn unseen_html(u: &Unseen) -> String {
    let e = &u.estimate;
    let mut h = String::from("<h2>Animals nobody photographed</h2>\n");
    match e.unseen_animals {
        Some(s) => h.push_str(&format!(
            "<p style=\"font-size:120%\">Unseen animals published (estimated): <b>{}</b> (from {} to {} across {} held-out species and labels){}</p>\n",
            share(s.mean),
            share(s.min),
            share(s.max),
            s.folds,
            u.ordinary.map_or(String::new(), |o| format!(
                "; unknown animals published among these photos: <b>{}</b>",
                share(o)
            ))
        )),
        None => h.push_str("<p>Unseen animals published (estimated): not available: no species or label could be held out.</p>\n"),
    }
    if let Some(w) = &u.warning {
        h.push_str(&format!(
            "<p style=\"background:#fff3cd;padding:.4em\"><b>Expect more at your camera</b>: {}</p>\n",
            esc(w)
        ));
    }
    h.push_str(&format!(
        "<p class=\"note\">The ordinary figure counts unknown animals of the species in your photos, at thresholds fitted on photos of the same species: it is optimistic for the animals that matter most, the ones nobody photographed. The estimate hides one species (a folder of other animals or of empty frames) or one of your labels at a time from {}, fits the thresholds without it ({} calibration), and counts how many of its photos would be published. A held-out label stands for an animal that looks like one of yours. Expect the estimate at your camera.</p>\n<details><summary>Fold by fold</summary><table><tr><th>protocol</th><th>held out</th><th>photos</th><th>published</th><th>share</th><th>recall cap</th></tr>\n",
        esc(&e.how),
        esc(&u.calibration)
    ));
    for f in &e.folds {
        h.push_str(&format!(
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>\n",
            f.fold.protocol.as_str(),
            if f.fold.empty { " (empty frames)" } else { "" },
            esc(&f.fold.held_out.join(", ")),
            f.images,
            f.published,
            share(f.share),
            f.cap
        ));
    }
    h.push_str("</table></details>\n");
    h
}

/// Thumbnails of the mistakes at the configured thresholds.
fn mistakes_html(m: &[Mistake]) -> String {
    if m.is_empty() {
        return String::new();
    }
    let mut h = String::from("<h2>The mistakes, photo by photo</h2>\n");
    for (kind, title, what) in [
        (
            "published",
            "Published, but not one of your labels",
            "unknown animals and empty frames that would become detections",
        ),
        (
            "missed",
            "Photos of your labels that were missed",
            "not published, or published with another label",
        ),
    ] {
        let v: Vec<&Mistake> = m.iter().filter(|x| x.kind == kind).collect();
        if v.is_empty() {
            continue;
        }
        h.push_str(&format!(
            "<h3>{title} ({})</h3><p class=\"note\">{what}; score and threshold under the configured score function.</p><div class=\"grid\">\n",
            v.len()
        ));
        for x in v {
            let img = x.thumbnail.as_deref().map_or_else(
                || "<div style=\"width:160px;height:120px;background:#eee\"></div>".to_string(),
                |src| {
                    format!(
                        "<img src=\"{src}\" alt=\"\" style=\"max-width:160px;max-height:160px\">"
                    )
                },
            );
            let file = std::path::Path::new(&x.path)
                .file_name()
                .map_or_else(|| x.path.clone(), |f| f.to_string_lossy().into_owned());
            h.push_str(&format!(
                "<figure style=\"margin:4px;width:164px;font-size:80%\">{img}<figcaption><b>{}</b> taken for <b>{}</b><br>score {:.3} (threshold {:.3})<br><span class=\"note\" title=\"{}\">{}</span></figcaption></figure>\n",
                esc(&x.label),
                esc(if x.top.is_empty() { "-" } else { &x.top }),
                x.score,
                x.threshold,
                esc(&x.path),
                esc(&file)
            ));
        }
        h.push_str("</div>\n");
    }
    h
}
