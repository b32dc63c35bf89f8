//! `camtrapd train --data DIR --out models/NAME`: trains a head on the
//! backbone's embeddings of the user's labelled images and "nothing"
//! images, writes a complete model bundle (one ONNX graph = backbone +
//! head, manifest, kNN bank, calibrated thresholds), then calibrates it
//! (`calibrate`) and evaluates it on the held-out test split (`eval`).
//! See [`crate::train`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use crate::decision::Calibrated;
use crate::eval::dataset::{self, Category, Item};
use crate::eval::outputs::{self, Cache, Outputs};
use crate::eval::unseen::{self, Fold, FoldData, Protocol};
use crate::exit;
use crate::model::manifest::{Activation, OutputKind};
use crate::model::Model;
use crate::train::evidence::EvidenceParams;
use crate::train::folds::{Fitted, Prepared};
use crate::train::{self, export, Loss, TrainConfig};

use super::calibrate::{Calibration, Outcome};
use super::CodedError;

/// Arguments of `camtrapd train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training images: a folder with one sub-folder per label plus one or
    /// more "nothing" folders (named nothing*, _nothing, empty*, blank*,
    /// background*, none, or listed with --negatives: empty habitat and
    /// other animals, taught as "none of the labels"), or a manifest CSV
    /// with the columns path, label, kind (known | nothing | unknown),
    /// split (train | calib | test). Repeat for several folders (e.g. your
    /// own photos and the review dashboard's sorted folder): folders of the
    /// same name are one label, and a manifest CSV must be the only --data.
    #[arg(long, value_name = "DIR|CSV", required = true)]
    pub data: Vec<PathBuf>,
    /// The new model bundle folder.
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// The backbone bundle whose `embedding` output feeds the head (default:
    /// the bundled EfficientNet-Lite0 ImageNet model).
    #[arg(long, value_name = "DIR")]
    pub backbone: Option<PathBuf>,
    /// Training loss: sigmoid (one-vs-rest, "nothing" images get an all-zero
    /// target; recommended), softmax-nothing (softmax with an extra "nothing"
    /// class; a baseline), entropic (Entropic Open-Set loss: "nothing" images
    /// get a uniform softmax target).
    #[arg(long, value_enum, default_value_t = Loss::Sigmoid)]
    pub loss: Loss,
    /// How the bundle decides: evidence (the head's logit plus two second
    /// opinions of the backbone, ImageNet agreement with the label's photos
    /// and the nearest photo of the label; rejects far more unseen species,
    /// see docs/open-set.md) or head (the head's own score only).
    #[arg(long, value_enum, default_value_t = Decision::Evidence)]
    pub decision: Decision,
    /// A folder (or manifest label) that holds "nothing" images although its
    /// name is not nothing*/empty*/...; repeat for several.
    #[arg(long = "negatives", value_name = "NAME")]
    pub negatives: Vec<String>,
    /// Split to train on (data with a split column).
    #[arg(long, default_value = "train", value_name = "NAME")]
    pub train_split: String,
    /// Split to calibrate the thresholds on.
    #[arg(long, default_value = "calib", value_name = "NAME")]
    pub calib_split: String,
    /// Split to evaluate on.
    #[arg(long, default_value = "test", value_name = "NAME")]
    pub test_split: String,
    /// Share of the training images held out for early stopping.
    #[arg(long, default_value_t = 0.15, value_name = "F")]
    pub val_fraction: f64,
    /// L2 regularisation strength (on the weights of standardised
    /// embeddings); default: the one of 0.001, 0.01, 0.1, 1, 10 with the
    /// lowest held-out loss.
    #[arg(long, value_name = "λ")]
    pub l2: Option<f64>,
    /// At most this many full-batch L-BFGS iterations.
    #[arg(long, default_value_t = 300, value_name = "N")]
    pub max_epochs: usize,
    /// Stop after this many iterations without a better held-out loss.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub patience: usize,
    /// Seed of the initial weights and of the splits: the same seed and
    /// data give the same model.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Weigh every image the same instead of every label (and the "nothing"
    /// images together) the same.
    #[arg(long)]
    pub no_class_weights: bool,
    /// Neighbour of the kNN score (`score = "knn"`); 0 writes no embedding bank.
    #[arg(long, default_value_t = 5, value_name = "K")]
    pub knn_k: usize,
    /// held-out (default) or ordinary calibration of the thresholds (see
    /// `camtrapd calibrate --help`).
    #[arg(long, value_enum, default_value_t = Calibration::HeldOut)]
    pub calibration: Calibration,
    /// Precision the calibrated thresholds aim for.
    #[arg(long, default_value_t = 0.95, value_name = "P")]
    pub target_precision: f64,
    /// Folder for the evaluation report (default: NAME-report in the current folder).
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Model name in the manifest and in detections (default: the --out folder's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Licence and credit of the training images, written into the bundle's
    /// LICENSE and manifest (e.g. "Caltech-101 (Fei-Fei, Fergus, Perona 2004), CC BY 4.0").
    #[arg(long, value_name = "TEXT")]
    pub data_licence: Option<String>,
    /// Cache folder for embeddings (default: $XDG_CACHE_HOME/camtrapd or ~/.cache/camtrapd).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Do not read or write the embedding cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Leave out manifest rows whose image does not exist.
    #[arg(long)]
    pub allow_missing: bool,
}

/// How a trained bundle decides (`--decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Decision {
    /// The head's logit combined with the second opinions ([`crate::train::evidence`]).
    Evidence,
    /// The head's own score.
    Head,
}

impl Decision {
    /// `evidence` or `head`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Evidence => "evidence",
            Decision::Head => "head",
        }
    }
}

/// L2 strengths tried when `--l2` is not given; the one with the lowest
/// held-out loss is kept.
const L2_GRID: [f64; 5] = [1e-3, 1e-2, 1e-1, 1.0, 10.0];

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

pub(crate) fn train(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let usage = |m: String| -> anyhow::Error { CodedError(exit::USAGE, m).into() };
    if !(0.0..0.9).contains(&args.val_fraction) {
        return Err(usage(format!(
            "--val-fraction {}: allowed 0 <= F < 0.9, e.g. 0.15",
            args.val_fraction
        )));
    }
    if !(args.target_precision > 0.0 && args.target_precision <= 1.0) {
        return Err(usage(format!(
            "--target-precision {}: allowed 0 < P <= 1",
            args.target_precision
        )));
    }
    if !(args.l2.is_none_or(|l| l >= 0.0) && args.max_epochs > 0) {
        return Err(usage("--l2 must be >= 0 and --max-epochs > 0".into()));
    }
    let backbone_dir = args
        .backbone
        .clone()
        .unwrap_or_else(super::default_model_dir);
    let mut backbone = Model::load(&backbone_dir)?;
    let Some(embedding_name) = backbone.manifest().output.embedding.clone() else {
        return Err(CodedError(
            exit::CONFIG,
            format!(
                "backbone {}: no embedding output (output.embedding in model.toml); the head is trained on it",
                backbone_dir.display()
            ),
        )
        .into());
    };
    if backbone_dir.canonicalize().ok() == args.out.canonicalize().ok() {
        return Err(usage(
            "--out is the backbone bundle itself; name a new folder".into(),
        ));
    }
    for d in &args.data {
        if !d.exists() {
            return Err(CodedError(
                exit::NOINPUT,
                format!("data set {}: no such folder or file", d.display()),
            )
            .into());
        }
    }
    if args.data.len() > 1 {
        if let Some(f) = args.data.iter().find(|d| !d.is_dir()) {
            return Err(usage(format!(
                "--data {}: with several --data each must be a folder of label folders; a manifest CSV carries its own splits, pass it as the only --data",
                f.display()
            )));
        }
    }
    // Every --data, as one name for messages and the manifest.
    let data_name = args
        .data
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ");

    // The labels and the images.
    let labels = dataset::label_names_of(&args.data, &args.negatives)?;
    if labels.is_empty() {
        return Err(CodedError(
            exit::DATAERR,
            format!(
                "{data_name}: no label folder (or kind=known row) besides the \"nothing\" images; add one folder per label"
            ),
        )
        .into());
    }
    let ds = dataset::read_all(&args.data, &labels, args.allow_missing)?;
    {
        let mut err = std::io::stderr().lock();
        let w = ds
            .groups
            .iter()
            .map(|g| g.name.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(6, 40);
        let _ = writeln!(
            err,
            "{data_name} read as {}:\n  {:<w$}  {:<24} {:>6}",
            if ds.manifest {
                "a manifest"
            } else {
                "a folder per label"
            },
            if ds.manifest { "LABEL" } else { "FOLDER" },
            "COUNTS AS",
            "IMAGES"
        );
        for g in &ds.groups {
            let what = match g.category {
                Category::Known => format!("label {:?}", g.name),
                _ => "\"nothing\" (negative)".into(),
            };
            let _ = writeln!(err, "  {:<w$}  {what:<24} {:>6}", g.name, g.images);
        }
        let _ = writeln!(
            err,
            "  (\"nothing\": {}{}; in a manifest, kind=nothing|unknown; every other folder is a label)",
            dataset::EMPTY_NAMES,
            if args.negatives.is_empty() {
                String::new()
            } else {
                format!(", and {}", dataset::quoted(&args.negatives))
            }
        );
    }
    let mut items = ds.items;
    let has_splits = items.iter().any(|i| !i.split.is_empty());
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.out
            .file_name()
            .map_or("trained".into(), |n| n.to_string_lossy().into_owned())
    });
    // Data without splits: seeded splits, written next to the bundle so that
    // calibrate and eval see the same ones.
    let (splits_data, data_sha256) = if has_splits {
        // Splits come from a manifest, which is then the only --data.
        let manifest = &args.data[0];
        (
            manifest.clone(),
            train::sha256_hex(&if manifest.is_file() {
                std::fs::read(manifest)?
            } else {
                Vec::new()
            }),
        )
    } else {
        train::assign_splits(&mut items, args.seed, 0.15, 0.15);
        let p = args.out.join("data-split.csv");
        let sha = train::write_split_manifest(&p, &items)?;
        println!(
            "{data_name} has no split column: wrote the seeded split (70% train, 15% calib, 15% test per folder) to {}",
            p.display()
        );
        (p, sha)
    };
    let train_items: Vec<&Item> = items
        .iter()
        .filter(|i| i.split == args.train_split)
        .collect();
    for l in &labels {
        if !train_items
            .iter()
            .any(|i| i.category == Category::Known && &i.label == l)
        {
            return Err(CodedError(
                exit::DATAERR,
                format!(
                    "label {l:?} has no image in split {:?}; add training images of it",
                    args.train_split
                ),
            )
            .into());
        }
    }
    let negatives = train_items
        .iter()
        .filter(|i| i.category != Category::Known)
        .count();
    if negatives == 0 {
        log::warn!("no \"nothing\" images in the training split: the head never learns what to ignore; add a folder nothing/ of empty frames and other animals");
        eprintln!("warning: no \"nothing\" images among the training images: the head never learns what to ignore; add a folder nothing/ of empty frames and other animals");
    }

    // Backbone outputs of every image, all splits (cached by content hash):
    // the embedding trains the head, the ImageNet logits feed the second
    // opinions, and the calib and test images are scored from them for the
    // held-out calibration and the unseen-species estimate.
    let mut cache = if args.no_cache {
        Cache::disabled()
    } else {
        match args.cache.clone().or_else(outputs::default_cache_dir) {
            Some(dir) => Cache::open(&dir).unwrap_or_else(|e| {
                log::warn!("cache {}: {e}; running without a cache", dir.display());
                Cache::disabled()
            }),
            None => Cache::disabled(),
        }
    };
    let t_embed = Instant::now();
    let quiet = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let all_items: Vec<&Item> = items.iter().collect();
    let run = outputs::run(&mut backbone, &all_items, &mut cache, quiet)?;
    let embed_secs = t_embed.elapsed().as_secs_f64();
    println!(
        "embedded {} images ({} training) in {embed_secs:.1} s ({} from the cache, {} computed)",
        all_items.len(),
        train_items.len(),
        run.cached,
        run.computed
    );
    let mut ok_items: Vec<&Item> = Vec::new();
    let mut backbone_outs = Vec::new();
    for (item, o) in all_items.iter().zip(run.outputs) {
        match o {
            Ok(o) => {
                ok_items.push(*item);
                backbone_outs.push(o);
            }
            Err(e) => eprintln!("warning: {}: skipped: {e}", item.path.display()),
        }
    }
    let evidence = (args.decision == Decision::Evidence).then(EvidenceParams::default);
    if evidence.is_some() && args.loss == Loss::SoftmaxNothing {
        eprintln!("warning: --loss softmax-nothing has no per-label logits for the second opinions: the bundle decides with the head alone (--decision head)");
    }
    let evidence = evidence.filter(|_| args.loss != Loss::SoftmaxNothing);
    if evidence.is_some()
        && backbone_outs
            .first()
            .is_some_and(|o| o.scores.len() < 2 || o.embedding.is_empty())
    {
        return Err(CodedError(
            exit::CONFIG,
            format!(
                "backbone {}: the second opinions need its ImageNet logits and its embedding; pass --decision head for a backbone without a classifier output",
                backbone_dir.display()
            ),
        )
        .into());
    }
    let cfg = TrainConfig {
        loss: args.loss,
        l2: args.l2.unwrap_or(0.0),
        max_epochs: args.max_epochs,
        patience: args.patience,
        seed: args.seed,
        class_balanced: !args.no_class_weights,
    };
    let base = Prepared {
        items: &ok_items,
        outputs: &backbone_outs,
        labels: &labels,
        train_split: &args.train_split,
        cfg: &cfg,
        val_fraction: args.val_fraction,
        evidence,
    };
    let t_train = Instant::now();
    let has_val = args.val_fraction > 0.0;
    let grid: Vec<f64> = match args.l2 {
        Some(l) => vec![l],
        None if !has_val => vec![TrainConfig::default().l2],
        None => L2_GRID.to_vec(),
    };
    let mut best: Option<(Fitted, f64)> = None;
    for l2 in grid {
        let c = TrainConfig { l2, ..cfg.clone() };
        let f = Prepared { cfg: &c, ..base }
            .fit(&[], &[])
            .map_err(|e| CodedError(exit::DATAERR, e.to_string()))?;
        if args.l2.is_none() && has_val {
            println!(
                "  L2 {l2:<6}: held-out loss {:.4} (epoch {} of {})",
                f.report.val_loss, f.report.best_epoch, f.report.epochs
            );
        }
        if best
            .as_ref()
            .is_none_or(|b| f.report.val_loss < b.0.report.val_loss)
        {
            best = Some((f, l2));
        }
    }
    let Some((mut fitted, l2)) = best else {
        return Err(CodedError(exit::FAILURE, "no head was trained".into()).into());
    };
    // The offset of the combined logit: 85% of the calibration photos of the
    // labels score above sigmoid 0.5 for their own label, so that scores
    // and thresholds read like probabilities. A constant shift changes no
    // decision and no ranking.
    if fitted.evidence.is_some() {
        let mut own = Vec::new();
        for (item, o) in ok_items.iter().zip(&backbone_outs) {
            if item.split != args.calib_split || item.category != Category::Known {
                continue;
            }
            if let Some(l) = labels.iter().position(|x| *x == item.label) {
                own.push(fitted.raw(o)[l]);
            }
        }
        own.sort_by(f32::total_cmp);
        if let (Some(ev), Some(&q)) = (
            fitted.evidence.as_mut(),
            own.get((own.len() as f64 * 0.15) as usize),
        ) {
            ev.params.offset -= q;
        }
    }
    let evidence = fitted.evidence.as_ref().map(|e| e.params);
    let (head, rep) = (&fitted.head, &fitted.report);
    let train_secs = t_train.elapsed().as_secs_f64();
    let train_known = ok_items
        .iter()
        .filter(|i| i.split == args.train_split && i.category == Category::Known)
        .count();
    let train_neg = ok_items
        .iter()
        .filter(|i| i.split == args.train_split && i.category != Category::Known)
        .count();
    println!(
        "trained a head with the {} loss ({} labels, {} outputs, L2 {l2}) on {train_known} labelled + {train_neg} \"nothing\" images in {train_secs:.1} s: {} epochs, kept epoch {} (held-out loss {:.4}, training objective {:.4}){}",
        args.loss,
        labels.len(),
        head.outputs(),
        rep.epochs,
        rep.best_epoch,
        rep.val_loss,
        rep.train_loss,
        if fitted.evidence.is_some() {
            "; decides with second opinions (ImageNet agreement, nearest photo of the label)"
        } else {
            ""
        }
    );

    // Held-out calibration and the unseen-species estimate: a head refitted
    // without each species (negative group) and each label in turn.
    let t_folds = Instant::now();
    let final_cfg = TrainConfig { l2, ..cfg.clone() };
    let prep = Prepared {
        cfg: &final_cfg,
        evidence,
        ..base
    };
    let full = fitted.scores(&ok_items, &backbone_outs);
    let folds = retrained_folds(&prep, &ok_items, &backbone_outs, quiet)?;
    let calib_mask: Vec<bool> = ok_items
        .iter()
        .map(|i| i.split == args.calib_split)
        .collect();
    let test_mask: Vec<bool> = ok_items
        .iter()
        .map(|i| i.split == args.test_split)
        .collect();
    if !calib_mask.iter().any(|c| *c) {
        return Err(CodedError(
            exit::DATAERR,
            format!(
                "no image in the calibration split {:?}; thresholds are fitted on it",
                args.calib_split
            ),
        )
        .into());
    }
    let countable = vec![true; ok_items.len()];
    let empty: Vec<bool> = ok_items
        .iter()
        .map(|i| i.category == Category::Empty)
        .collect();
    let held_setup = unseen::Setup {
        full: &full,
        folds: &folds,
        calib: &calib_mask,
        countable: &countable,
        target: args.target_precision,
        empty: &empty,
    };
    let held_out = args.calibration == Calibration::HeldOut;
    let cap = if held_out {
        unseen::select_recall_cap(&held_setup)
    } else {
        unseen::RecallCap::ordinary()
    };
    // What `[provenance.training] calibration` records, so that `eval`
    // fits its folds the way these thresholds were fitted.
    let calibration_method = if cap.folds > 0 {
        "held-out"
    } else {
        "ordinary"
    };
    let estimate =
        (!folds.is_empty()).then(|| unseen::estimate(&held_setup, held_out, RETRAINED_HOW));
    let thresholds = unseen::fit(&full, &calib_mask, args.target_precision, cap.cap);
    let folds_secs = t_folds.elapsed().as_secs_f64();
    let ordinary = super::calibrate::ordinary_figure(
        &full,
        &thresholds,
        &ok_items,
        &test_mask,
        &format!("on the {} split", args.test_split),
    );
    let score = fitted.score_fn();
    let outcome = Outcome::new(
        score,
        args.target_precision,
        labels.clone(),
        thresholds,
        &full,
        &calib_mask,
        cap,
        estimate,
        ordinary,
    );
    println!(
        "\n{score} thresholds for precision {} on split {:?} ({} known, {} unknown/empty images); {} folds refitted in {folds_secs:.1} s",
        args.target_precision,
        args.calib_split,
        outcome.known,
        outcome.unknown,
        folds.len()
    );
    let warnings = outcome.print(&mut std::io::stdout().lock())?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }

    // The bundle: one ONNX graph, the bank, the manifest.
    let backbone_onnx = std::fs::read(backbone_dir.join("model.onnx"))
        .with_context(|| format!("reading {}", backbone_dir.join("model.onnx").display()))?;
    let imagenet_output = backbone.manifest().output.name.clone();
    let bytes = export::export(
        &backbone_onnx,
        &embedding_name,
        head,
        fitted
            .evidence
            .as_ref()
            .map(|e| (e, imagenet_output.as_str())),
    )
    .map_err(|e| {
        CodedError(
            exit::CONFIG,
            format!("backbone {}: {e}", backbone_dir.display()),
        )
    })?;
    std::fs::write(args.out.join("model.onnx"), &bytes)?;
    let onnx_sha = train::sha256_hex(&bytes);
    let bank_rows: Vec<Vec<f32>> = ok_items
        .iter()
        .zip(&backbone_outs)
        .filter(|(i, _)| i.category == Category::Known && i.split == args.train_split)
        .map(|(_, o)| o.embedding.clone())
        .collect();
    let knn = if args.knn_k > 0 {
        let _ = std::fs::remove_file(args.out.join("knn-bank.npy"));
        let sha = crate::decision::knn::write_npy(&args.out.join("knn-bank.npy"), &bank_rows)?;
        Some(format!(
            "\n# kNN embedding bank: the {} labelled training images (score = \"knn\")\n[knn]\nbank = \"knn-bank.npy\"\nsha256 = \"{sha}\"\nk = {}\n",
            bank_rows.len(),
            args.knn_k
        ))
    } else {
        let _ = std::fs::remove_file(args.out.join("knn-bank.npy"));
        None
    };
    let bm = backbone.manifest();
    let backbone_text = std::fs::read_to_string(backbone_dir.join("model.toml"))?;
    let backbone_toml: toml::Table = toml::from_str(&backbone_text)?;
    let input = backbone_toml
        .get("input")
        .cloned()
        .context("backbone model.toml has no [input]")?;
    let mut input_table = toml::Table::new();
    input_table.insert("input".into(), input);
    let (out_name, kind, activation) = match fitted.output() {
        (OutputKind::Logits, Activation::Sigmoid) => (export::LOGITS, "logits", "sigmoid"),
        (OutputKind::Logits, Activation::Softmax) => (export::LOGITS, "logits", "softmax"),
        (OutputKind::Probabilities, _) => (export::PROBABILITIES, "probabilities", "softmax"),
    };
    let command = std::env::args()
        .enumerate()
        .map(|(i, a)| if i == 0 { "camtrapd".to_string() } else { a })
        .map(|a| if a.contains(' ') { format!("{a:?}") } else { a })
        .collect::<Vec<_>>()
        .join(" ");
    let data_licence = args.data_licence.clone().unwrap_or_else(|| {
        "the licence of the training images (not recorded: pass --data-licence)".into()
    });
    let licence = format!(
        "{} (backbone {}); the head was trained on {data_name}: {data_licence}",
        bm.provenance.licence, bm.name,
    );
    let manifest_head = format!(
        "# camtrapd model bundle manifest (see docs/models.md, 'The manifest: model.toml').\n# Written by `camtrapd train`: re-run it rather than editing by hand.\nname = {}\ndescription = {}\n# Labels in the order of the head's outputs.\nlabels = [{}]\n\n{}\n[output]\n# {}\nname = \"{out_name}\"\nkind = \"{kind}\"\nactivation = \"{activation}\"\nembedding = {}\n",
        quote(&name),
        quote(&format!(
            "{} labels, {} head trained by `camtrapd train` on the embeddings of {} ({data_name})",
            labels.len(),
            args.loss,
            bm.name,
        )),
        labels.iter().map(|l| quote(l)).collect::<Vec<_>>().join(", "),
        toml::to_string(&input_table)?,
        match args.loss {
            _ if fitted.evidence.is_some() => "per-label logits = the head's logit (\"nothing\" images taught as all-zero) combined with two second opinions of the backbone: ImageNet agreement with the label's photos and the nearest photo of the label (see docs/open-set.md). Outputs: logits [batch, N], probabilities = sigmoid(logits), embedding.",
            Loss::Sigmoid => "one-vs-rest sigmoid head: \"nothing\" images were taught to score low on every label. Outputs: logits [batch, N], probabilities = sigmoid(logits), embedding.",
            Loss::Entropic => "softmax head trained with the Entropic Open-Set loss (\"nothing\" images: uniform target). Outputs: logits [batch, N], probabilities = softmax(logits), embedding.",
            Loss::SoftmaxNothing => "softmax head with an extra \"nothing\" class: logits [batch, N + 1]; probabilities [batch, N] = softmax(logits) without the \"nothing\" column, so they sum to 1 - P(nothing) and \"nothing\" is never a label.",
        },
        quote(&embedding_name),
    );
    let provenance = format!(
        "\n[provenance]\nsource = {}\nlicence = {}\nsha256 = \"{onnx_sha}\"\n{}\n[provenance.training]\ncommand = {}\nloss = \"{}\"\nbackbone = {}\nbackbone_sha256 = \"{}\"\ndata = {}\ndata_sha256 = \"{data_sha256}\"\nsplit = {}\nseed = {}\nimages = {}\nepochs = {}\nl2 = {l2:?}\ndecision = \"{}\"\ncalibration = \"{calibration_method}\"\n{}",
        quote(&format!(
            "camtrapd {} train: backbone {} (sha256 {}) up to its output {embedding_name:?}, plus a linear head (Gemm) trained on it; one ONNX graph",
            env!("CARGO_PKG_VERSION"),
            bm.name,
            backbone.sha256()
        )),
        quote(&licence),
        bm.provenance
            .quantisation
            .as_ref()
            .map_or(String::new(), |q| format!("quantisation = {}\n", quote(&format!("backbone: {q}; head: float32")))),
        quote(&command),
        args.loss,
        quote(&bm.name),
        backbone.sha256(),
        quote(&data_name),
        quote(&args.train_split),
        args.seed,
        quote(&format!(
            "{train_known} labelled + {train_neg} nothing in the training split, {}% held out of them for early stopping",
            (args.val_fraction * 100.0).round()
        )),
        quote(&format!("{} run, kept {}", rep.epochs, rep.best_epoch)),
        args.decision.as_str(),
        fitted.evidence.as_ref().map_or(String::new(), |e| format!(
            "evidence = {{ head_weight = {}, knn_weight = {}, imagenet_temperature = {}, offset = {} }}\n",
            e.params.head_weight, e.params.knn_weight, e.params.temperature, e.params.offset
        )),
    );
    let write_manifest = |thresholds: &str| -> anyhow::Result<()> {
        std::fs::write(
            args.out.join("model.toml"),
            format!(
                "{manifest_head}{thresholds}{}{provenance}",
                knn.as_deref().unwrap_or("")
            ),
        )?;
        Ok(())
    };
    write_manifest("")?;
    let licence_text = std::fs::read_to_string(backbone_dir.join("LICENSE")).unwrap_or_default();
    std::fs::write(
        args.out.join("LICENSE"),
        format!(
            "{licence_text}\n\nThe head (the last Gemm of model.onnx) and knn-bank.npy were derived by\n`camtrapd train` from the images of {data_name}:\n{data_licence}\n",
        ),
    )?;

    // The bundle as the daemon loads it; the graph's scores equal the head's.
    let mut model = Model::load(&args.out)?;
    check_export(
        &mut model,
        &fitted,
        ok_items.first().map(|i| i.path.as_path()),
        backbone_outs.first(),
    )?;
    println!(
        "wrote {} (model.onnx {} bytes{})",
        args.out.display(),
        bytes.len(),
        if knn.is_some() {
            format!(", kNN bank of {} embeddings", bank_rows.len())
        } else {
            String::new()
        }
    );
    drop(model);

    // The thresholds fitted above, into thresholds.toml and the manifest.
    let thresholds_path = args.out.join("thresholds.toml");
    let file = crate::decision::ThresholdsFile {
        score,
        model_sha256: onnx_sha.clone(),
        label_groups_sha256: None,
        temperature: None,
        knn_k: None,
        knn_bank_sha256: None,
        default: outcome.default_threshold(),
        labels: outcome.thresholds_map(),
        calibration: Some(
            outcome.calibration_info(splits_data.display().to_string(), args.calib_split.clone()),
        ),
    };
    Calibrated::save(
        &thresholds_path,
        &file,
        &format!(
            "camtrapd thresholds: written by `camtrapd train` for model {name} ({}).\nScores are {score} ({}); they are also in model.toml, [thresholds].",
            args.out.display(),
            score.title()
        ),
    )
    .with_context(|| format!("writing {}", thresholds_path.display()))?;
    let mut t = format!(
        "\n# Calibrated by `camtrapd train` on split {:?} for precision {}, {} (details: thresholds.toml)\n[thresholds]\nscore = \"{score}\"\n",
        args.calib_split,
        args.target_precision,
        if outcome.cap.folds > 0 {
            format!("held-out calibration, recall cap {:.2}", outcome.cap.cap)
        } else {
            "ordinary calibration".to_string()
        }
    );
    if let Some(d) = file.default {
        t.push_str(&format!("default = {d}\n"));
    }
    t.push_str("[thresholds.labels]\n");
    for (l, v) in &file.labels {
        t.push_str(&format!("{} = {v}\n", quote(l)));
    }
    write_manifest(&t)?;
    Model::load(&args.out)?;
    println!(
        "wrote the thresholds to {} and {} ([thresholds], score {score}): the daemon uses them with [model] path = {:?} and no thresholds_file",
        thresholds_path.display(),
        args.out.join("model.toml").display(),
        args.out.display().to_string()
    );
    let common = |split: &str| super::calibrate::Common {
        data: splits_data.clone(),
        split: Some(split.to_string()),
        config: None,
        model: Some(args.out.clone()),
        cache: args.cache.clone(),
        no_cache: args.no_cache,
        allow_missing: args.allow_missing,
    };

    // Evaluation on the test split (eval).
    let report = args
        .report
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}-report")));
    println!();
    super::eval::eval(&super::eval::Args {
        common: common(&args.test_split),
        calib_split: Some(args.calib_split.clone()),
        calib_data: None,
        target_precision: args.target_precision,
        out: report.clone(),
        estimate: outcome.estimate.clone(),
    })?;
    println!(
        "\ntraining took {:.0} s in all (embedding {embed_secs:.1} s, head {train_secs:.1} s, held-out folds {folds_secs:.1} s); the bundle {} is ready: [model] path = {:?}",
        started.elapsed().as_secs_f64(),
        args.out.display(),
        args.out.display().to_string()
    );
    Ok(())
}

/// Runs the bundle on one training image and compares its scores with the
/// in-memory head (and second opinions) on the same backbone outputs
/// `backbone`: the export must not change them (|difference| ≤ 1e-3 on
/// logits or probabilities).
fn check_export(
    model: &mut Model,
    fitted: &Fitted,
    image: Option<&Path>,
    backbone: Option<&Outputs>,
) -> anyhow::Result<()> {
    let (Some(path), Some(backbone)) = (image, backbone) else {
        return Ok(());
    };
    let item = Item {
        path: path.to_path_buf(),
        label: String::new(),
        known: false,
        split: String::new(),
        category: Category::Unknown,
        lighting: String::new(),
    };
    let run = outputs::run(model, &[&item], &mut Cache::disabled(), true)?;
    let Some(Ok(o)) = run.outputs.into_iter().next() else {
        return Ok(());
    };
    let want = fitted.raw(backbone);
    let diff = want
        .iter()
        .zip(&o.scores)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    // All within tolerance (a NaN is not).
    let close = want
        .iter()
        .zip(&o.scores)
        .all(|(a, b)| (a - b).abs() <= 1e-3);
    if want.len() != o.scores.len() || !close {
        return Err(CodedError(
            exit::FAILURE,
            format!(
                "the exported model.onnx disagrees with the trained head on {} (max |difference| {diff}); this is a bug, please report it",
                path.display()
            ),
        )
        .into());
    }
    Ok(())
}

/// How [`retrained_folds`] makes its fold models.
const RETRAINED_HOW: &str = "head and second opinions retrained per fold";

/// The folds of the unseen-species estimate with the head retrained per
/// fold: species-out over the negative groups (data-set labels of unknown
/// and empty images, kept apart), label-out over the labels (with two or
/// more). Every image of a held-out group or label is held out, whatever
/// its split: no fold model ever saw it.
fn retrained_folds(
    prep: &Prepared,
    items: &[&Item],
    outs: &[Outputs],
    quiet: bool,
) -> anyhow::Result<Vec<FoldData>> {
    let mut specs: Vec<(Fold, Vec<bool>)> = unseen::species_out_folds(items);
    if prep.labels.len() >= 2 {
        for held_out in unseen::group_folds(prep.labels, unseen::MAX_LABEL_FOLDS) {
            let held = items
                .iter()
                .map(|i| i.category == Category::Known && held_out.contains(&i.label))
                .collect();
            specs.push((
                Fold {
                    protocol: Protocol::LabelOut,
                    held_out,
                    empty: false,
                },
                held,
            ));
        }
    }
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(specs.len() as u64).with_style(
            indicatif::ProgressStyle::with_template("refitting folds {bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    };
    let mut folds = Vec::with_capacity(specs.len());
    for (fold, held) in specs {
        bar.set_message(format!(
            "{} {}",
            fold.protocol.as_str(),
            fold.held_out.join(",")
        ));
        let (drop_labels, drop_groups): (&[String], &[String]) = match fold.protocol {
            Protocol::LabelOut => (&fold.held_out, &[]),
            Protocol::SpeciesOut => (&[], &fold.held_out),
        };
        let fitted = prep.fit(drop_labels, drop_groups).map_err(|e| {
            CodedError(
                exit::DATAERR,
                format!(
                    "fold {} {}: {e}",
                    fold.protocol.as_str(),
                    fold.held_out.join(", ")
                ),
            )
        })?;
        folds.push(FoldData {
            fold,
            held,
            scores: fitted.scores(items, outs),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(folds)
}
