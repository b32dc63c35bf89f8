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

use crate::decision::{Calibrated, ScoreFn};
use crate::eval::dataset::{self, Category, Item};
use crate::eval::outputs::{self, Cache};
use crate::exit;
use crate::model::Model;
use crate::train::{self, export, Examples, Loss, TrainConfig};

use super::CodedError;

/// Arguments of `camtrapd train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training images: a folder with one sub-folder per label plus one or
    /// more "nothing" folders (named nothing*, _nothing, empty*, blank*,
    /// background*, none, or listed with --negatives: empty habitat and
    /// other animals, taught as "none of the labels"), or a manifest CSV
    /// with the columns path, label, kind (known | nothing | unknown),
    /// split (train | calib | test).
    #[arg(long, value_name = "DIR|CSV")]
    pub data: PathBuf,
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
    if !args.data.exists() {
        return Err(CodedError(
            exit::NOINPUT,
            format!("data set {}: no such folder or file", args.data.display()),
        )
        .into());
    }

    // The labels and the images.
    let labels = dataset::label_names(&args.data, &args.negatives)?;
    if labels.is_empty() {
        return Err(CodedError(
            exit::DATAERR,
            format!(
                "{}: no label folder (or kind=known row) besides the \"nothing\" images; add one folder per label",
                args.data.display()
            ),
        )
        .into());
    }
    let ds = dataset::read(&args.data, &labels, args.allow_missing)?;
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
            "{} read as {}:\n  {:<w$}  {:<24} {:>6}",
            args.data.display(),
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
        (
            args.data.clone(),
            train::sha256_hex(&if args.data.is_file() {
                std::fs::read(&args.data)?
            } else {
                Vec::new()
            }),
        )
    } else {
        train::assign_splits(&mut items, args.seed, 0.15, 0.15);
        let p = args.out.join("data-split.csv");
        let sha = train::write_split_manifest(&p, &items)?;
        println!(
            "{} has no split column: wrote the seeded split (70% train, 15% calib, 15% test per folder) to {}",
            args.data.display(),
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

    // Embeddings (cached by content hash).
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
    let run = outputs::run(&mut backbone, &train_items, &mut cache, quiet)?;
    let embed_secs = t_embed.elapsed().as_secs_f64();
    println!(
        "embedded {} training images in {embed_secs:.1} s ({} from the cache, {} computed)",
        train_items.len(),
        run.cached,
        run.computed
    );
    let mut ok_items = Vec::new();
    let mut embeddings = Vec::new();
    for (item, o) in train_items.iter().zip(run.outputs) {
        match o {
            Ok(o) => {
                ok_items.push(*item);
                embeddings.push(o.embedding);
            }
            Err(e) => eprintln!("warning: {}: skipped: {e}", item.path.display()),
        }
    }
    let dim = backbone.embedding_dim().unwrap_or(0);
    let target = |i: &Item| {
        (i.category == Category::Known)
            .then(|| labels.iter().position(|l| *l == i.label))
            .flatten()
    };
    let (tr_ix, va_ix) = train::hold_out(&ok_items, args.val_fraction, args.seed);
    let mut tr = Examples::new(dim);
    let mut va = Examples::new(dim);
    for &i in &tr_ix {
        tr.push(&embeddings[i], target(ok_items[i]));
    }
    for &i in &va_ix {
        va.push(&embeddings[i], target(ok_items[i]));
    }
    let cfg = TrainConfig {
        loss: args.loss,
        l2: args.l2.unwrap_or(0.0),
        max_epochs: args.max_epochs,
        patience: args.patience,
        seed: args.seed,
        class_balanced: !args.no_class_weights,
    };
    let t_train = Instant::now();
    let grid: Vec<f64> = match args.l2 {
        Some(l) => vec![l],
        None if va.is_empty() => vec![TrainConfig::default().l2],
        None => L2_GRID.to_vec(),
    };
    let mut best: Option<(Head, train::TrainReport, f64)> = None;
    for l2 in grid {
        let (head, rep) =
            train::head::train(&tr, &va, labels.len(), &TrainConfig { l2, ..cfg.clone() })
                .map_err(|e| CodedError(exit::DATAERR, e.to_string()))?;
        if args.l2.is_none() && !va.is_empty() {
            println!(
                "  L2 {l2:<6}: held-out loss {:.4} (epoch {} of {})",
                rep.val_loss, rep.best_epoch, rep.epochs
            );
        }
        if best.as_ref().is_none_or(|b| rep.val_loss < b.1.val_loss) {
            best = Some((head, rep, l2));
        }
    }
    let Some((head, rep, l2)) = best else {
        return Err(CodedError(exit::FAILURE, "no head was trained".into()).into());
    };
    let train_secs = t_train.elapsed().as_secs_f64();
    let count = |ex: &Examples| {
        let neg = ex.targets.iter().filter(|t| t.is_none()).count();
        (ex.len() - neg, neg)
    };
    let ((tk, tn), (vk, vn)) = (count(&tr), count(&va));
    println!(
        "trained a head with the {} loss ({} labels, {} outputs, L2 {l2}) on {tk} labelled + {tn} \"nothing\" embeddings in {train_secs:.1} s: {} epochs, kept epoch {} (held-out loss {:.4} on {vk} + {vn} images, training objective {:.4})",
        args.loss,
        labels.len(),
        head.outputs(),
        rep.epochs,
        rep.best_epoch,
        rep.val_loss,
        rep.train_loss
    );

    // The bundle: one ONNX graph, the bank, the manifest.
    let backbone_onnx = std::fs::read(backbone_dir.join("model.onnx"))
        .with_context(|| format!("reading {}", backbone_dir.join("model.onnx").display()))?;
    let bytes = export::export(&backbone_onnx, &embedding_name, &head).map_err(|e| {
        CodedError(
            exit::CONFIG,
            format!("backbone {}: {e}", backbone_dir.display()),
        )
    })?;
    std::fs::write(args.out.join("model.onnx"), &bytes)?;
    let onnx_sha = train::sha256_hex(&bytes);
    let bank_rows: Vec<Vec<f32>> = ok_items
        .iter()
        .zip(&embeddings)
        .filter(|(i, _)| i.category == Category::Known)
        .map(|(_, e)| e.clone())
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
    let (out_name, kind, activation) = match args.loss {
        Loss::Sigmoid => (export::LOGITS, "logits", "sigmoid"),
        Loss::Entropic => (export::LOGITS, "logits", "softmax"),
        Loss::SoftmaxNothing => (export::PROBABILITIES, "probabilities", "softmax"),
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
        "{} (backbone {}); the head was trained on {}: {data_licence}",
        bm.provenance.licence,
        bm.name,
        args.data.display()
    );
    let manifest_head = format!(
        "# camtrapd model bundle manifest (see README.md, 'Model bundle format').\n# Written by `camtrapd train`: re-run it rather than editing by hand.\nname = {}\ndescription = {}\n# Labels in the order of the head's outputs.\nlabels = [{}]\n\n{}\n[output]\n# {}\nname = \"{out_name}\"\nkind = \"{kind}\"\nactivation = \"{activation}\"\nembedding = {}\n",
        quote(&name),
        quote(&format!(
            "{} labels, {} head trained by `camtrapd train` on the embeddings of {} ({})",
            labels.len(),
            args.loss,
            bm.name,
            args.data.display()
        )),
        labels.iter().map(|l| quote(l)).collect::<Vec<_>>().join(", "),
        toml::to_string(&input_table)?,
        match args.loss {
            Loss::Sigmoid => "one-vs-rest sigmoid head: \"nothing\" images were taught to score low on every label. Outputs: logits [batch, N], probabilities = sigmoid(logits), embedding.",
            Loss::Entropic => "softmax head trained with the Entropic Open-Set loss (\"nothing\" images: uniform target). Outputs: logits [batch, N], probabilities = softmax(logits), embedding.",
            Loss::SoftmaxNothing => "softmax head with an extra \"nothing\" class: logits [batch, N + 1]; probabilities [batch, N] = softmax(logits) without the \"nothing\" column, so they sum to 1 - P(nothing) and \"nothing\" is never a label.",
        },
        quote(&embedding_name),
    );
    let provenance = format!(
        "\n[provenance]\nsource = {}\nlicence = {}\nsha256 = \"{onnx_sha}\"\n{}\n[provenance.training]\ncommand = {}\nloss = \"{}\"\nbackbone = {}\nbackbone_sha256 = \"{}\"\ndata = {}\ndata_sha256 = \"{data_sha256}\"\nsplit = {}\nseed = {}\nimages = {}\nepochs = {}\nl2 = {l2:?}\n",
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
        quote(&args.data.display().to_string()),
        quote(&args.train_split),
        args.seed,
        quote(&format!(
            "{tk} labelled + {tn} nothing trained, {vk} + {vn} held out for early stopping"
        )),
        quote(&format!("{} run, kept {}", rep.epochs, rep.best_epoch)),
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
            "{licence_text}\n\nThe head (the last Gemm of model.onnx) and knn-bank.npy were derived by\n`camtrapd train` from the images of {}:\n{data_licence}\n",
            args.data.display()
        ),
    )?;

    // The bundle as the daemon loads it; the graph's scores equal the head's.
    let mut model = Model::load(&args.out)?;
    check_export(
        &mut model,
        &head,
        ok_items.first().map(|i| i.path.as_path()),
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

    // Thresholds on the calibration split (calibrate), into the manifest.
    let score = ScoreFn::head_default(match activation {
        "sigmoid" => crate::model::manifest::Activation::Sigmoid,
        _ => crate::model::manifest::Activation::Softmax,
    });
    let common = |split: &str| super::calibrate::Common {
        data: splits_data.clone(),
        split: Some(split.to_string()),
        config: None,
        model: Some(args.out.clone()),
        cache: args.cache.clone(),
        no_cache: args.no_cache,
        allow_missing: args.allow_missing,
    };
    let thresholds_path = args.out.join("thresholds.toml");
    println!();
    super::calibrate::calibrate(&super::calibrate::Args {
        common: common(&args.calib_split),
        target_precision: args.target_precision,
        score: Some(score),
        out: Some(thresholds_path.clone()),
    })?;
    let cal = Calibrated::load(&thresholds_path)?;
    let mut t = format!(
        "\n# Calibrated by `camtrapd calibrate` on split {:?} for precision {} (details: thresholds.toml)\n[thresholds]\nscore = \"{score}\"\n",
        args.calib_split, args.target_precision
    );
    if let Some(d) = cal.file.default {
        t.push_str(&format!("default = {d}\n"));
    }
    t.push_str("[thresholds.labels]\n");
    for (l, v) in &cal.file.labels {
        t.push_str(&format!("{} = {v}\n", quote(l)));
    }
    write_manifest(&t)?;
    Model::load(&args.out)?;
    println!(
        "and into {} ([thresholds], score {score}): the daemon uses them with [model] path = {:?} and no thresholds_file",
        args.out.join("model.toml").display(),
        args.out.display().to_string()
    );

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
    })?;
    println!(
        "\ntraining took {:.0} s in all (embedding {embed_secs:.1} s, head {train_secs:.1} s); the bundle {} is ready: [model] path = {:?}",
        started.elapsed().as_secs_f64(),
        args.out.display(),
        args.out.display().to_string()
    );
    Ok(())
}

/// Runs the bundle on one training image and compares its scores with the
/// in-memory head on the same embedding: the export must not change them
/// (|difference| ≤ 1e-3 on logits or probabilities).
fn check_export(model: &mut Model, head: &Head, image: Option<&Path>) -> anyhow::Result<()> {
    let Some(path) = image else { return Ok(()) };
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
    let want = match head.loss {
        Loss::SoftmaxNothing => head.probabilities(&o.embedding),
        _ => head.logits(&o.embedding),
    };
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

use crate::train::Head;
