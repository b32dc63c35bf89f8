//! `camtrapd train`: the exported single ONNX graph computes what the
//! in-memory head computes (in tract, with the symbolic batch kept), and the
//! command end to end on a few dozen zoo12 photos writes a bundle the
//! daemon loads, deterministically for a seed.

mod common;

use std::path::{Path, PathBuf};

use camtrapd::decode::{decode_bytes, DecodeLimits};
use camtrapd::model::{Manifest, Model};
use camtrapd::preprocess::Preprocessor;
use camtrapd::train::export::export;
use camtrapd::train::{Head, Loss};
use common::{default_model, sample_photo};
use tract_onnx::prelude::*;

/// Preprocessed input `[1, 3, 224, 224]` of a real photo, as the daemon makes it.
fn input(manifest: &Manifest, path: &Path) -> Tensor {
    let img = decode_bytes(&std::fs::read(path).unwrap(), &DecodeLimits::default()).unwrap();
    let mut t = Tensor::zero::<f32>(&[1, 3, 224, 224]).unwrap();
    Preprocessor::new(manifest).run(&img, &mut t).unwrap();
    t
}

fn random_head(loss: Loss, labels: usize, dim: usize, seed: u64) -> Head {
    let mut rng = fastrand::Rng::with_seed(seed);
    let k = loss.outputs(labels);
    Head {
        loss,
        labels,
        dim,
        weight: (0..k * dim).map(|_| (rng.f32() - 0.5) * 0.2).collect(),
        bias: (0..k).map(|_| rng.f32() - 0.5).collect(),
    }
}

#[test]
fn exported_graph_gives_the_head_scores_in_tract_with_a_batch_of_two() {
    // Tolerance: 1e-4 absolute on logits (a few units; tract sums 1280 f32
    // products, the head sums them in f64) and on 0..1 probabilities.
    let backbone = default_model();
    let manifest = Manifest::from_path(&backbone.join("model.toml")).unwrap();
    let bytes = std::fs::read(backbone.join("model.onnx")).unwrap();
    let photos = [
        sample_photo("elephant/c101_image_0002.jpg"),
        sample_photo("nothing/c101_image_0001.jpg"),
    ];
    let x = Tensor::stack_tensors(
        0,
        &[input(&manifest, &photos[0]), input(&manifest, &photos[1])],
    )
    .unwrap();
    for (loss, labels) in [
        (Loss::Sigmoid, 4),
        (Loss::SoftmaxNothing, 4),
        (Loss::Entropic, 3),
    ] {
        let head = random_head(loss, labels, 1280, 5);
        let onnx = export(&bytes, "embedding", &head, None).unwrap();
        let model = tract_onnx::onnx()
            .model_for_read(&mut onnx.as_slice())
            .unwrap();
        // The declared outputs keep the backbone's symbolic batch dimension.
        {
            use prost::Message;
            use tract_onnx::pb;
            let proto = pb::ModelProto::decode(onnx.as_slice()).unwrap();
            let outs = &proto.graph.as_ref().unwrap().output;
            let names: Vec<&str> = outs.iter().map(|o| o.name.as_str()).collect();
            assert_eq!(names, ["logits", "probabilities", "embedding"]);
            for o in outs {
                let Some(pb::type_proto::Value::TensorType(t)) =
                    o.r#type.as_ref().and_then(|t| t.value.clone())
                else {
                    panic!("{loss}: output {} has no tensor type", o.name)
                };
                let batch = t.shape.unwrap().dim[0].value.clone();
                assert!(
                    matches!(
                        batch,
                        Some(pb::tensor_shape_proto::dimension::Value::DimParam(_))
                    ),
                    "{loss}: output {} batch {batch:?}",
                    o.name
                );
            }
        }
        let plan = model
            .with_input_fact(0, f32::fact([2, 3, 224, 224]).into())
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let out = plan.run(tvec![x.clone().into()]).unwrap();
        assert_eq!(out.len(), 3, "{loss}: logits, probabilities, embedding");
        let flat = |i: usize| -> (Vec<usize>, Vec<f32>) {
            let v = out[i].to_plain_array_view::<f32>().unwrap();
            (v.shape().to_vec(), v.iter().copied().collect())
        };
        let (k, n) = (loss.outputs(labels), labels);
        let ((ls, logits), (ps, probs), (es, emb)) = (flat(0), flat(1), flat(2));
        assert_eq!((ls, ps, es), (vec![2, k], vec![2, n], vec![2, 1280]));
        for row in 0..2 {
            let e = &emb[row * 1280..(row + 1) * 1280];
            let want_z = head.logits(e);
            let want_p = head.probabilities(e);
            for (a, b) in logits[row * k..(row + 1) * k].iter().zip(&want_z) {
                assert!((a - b).abs() < 1e-4, "{loss} logits: onnx {a} head {b}");
            }
            for (a, b) in probs[row * n..(row + 1) * n].iter().zip(&want_p) {
                assert!(
                    (a - b).abs() < 1e-4,
                    "{loss} probabilities: onnx {a} head {b}"
                );
            }
            let sum: f32 = want_p.iter().sum();
            match loss {
                Loss::Entropic => assert!((sum - 1.0).abs() < 1e-5),
                // The "nothing" column is left out: the labels share less than 1.
                Loss::SoftmaxNothing => assert!(sum < 1.0),
                Loss::Sigmoid => {}
            }
        }
        // The backbone's ImageNet classifier is gone (its int8 weights too).
        assert!(
            onnx.len() < bytes.len() - 1_000_000,
            "{loss}: {} vs {}",
            onnx.len(),
            bytes.len()
        );
    }
}

#[test]
fn exported_second_opinions_give_the_combined_logits_in_tract() {
    // The graph with second opinions (the backbone's ImageNet classifier
    // kept inside, the per-label nearest photo as MatMul + masked
    // ReduceMax) against the Rust definition in train::evidence on the
    // backbone's own outputs for the same two photos. Tolerance 1e-3 on
    // the combined logits (f32 sums of 1000 and 1280 products in tract, f64
    // in Rust; the nearest-photo term is weighted 10).
    use camtrapd::train::evidence::{Evidence, EvidenceParams};
    let backbone = default_model();
    let manifest = Manifest::from_path(&backbone.join("model.toml")).unwrap();
    let bytes = std::fs::read(backbone.join("model.onnx")).unwrap();
    let photos = [
        sample_photo("elephant/c101_image_0002.jpg"),
        sample_photo("nothing/c101_image_0001.jpg"),
        sample_photo("flamingo/c101_image_0004.jpg"),
        sample_photo("llama/c101_image_0001.jpg"),
    ];
    let x: Vec<Tensor> = photos.iter().map(|p| input(&manifest, p)).collect();
    let plan = |onnx: &[u8]| {
        tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])
            .unwrap()
            .with_input_fact(0, f32::fact([2, 3, 224, 224]).into())
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap()
    };
    let flat = |t: &TValue| -> Vec<f32> {
        t.to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    };
    // The backbone's own outputs (ImageNet logits, embedding) of all four photos.
    let bb = plan(&bytes);
    let mut imagenet = Vec::new();
    let mut embedding = Vec::new();
    for pair in x.chunks(2) {
        let out = bb
            .run(tvec![Tensor::stack_tensors(0, pair).unwrap().into()])
            .unwrap();
        let (l, e) = (flat(&out[0]), flat(&out[1]));
        imagenet.extend(l.chunks(1000).map(<[f32]>::to_vec));
        embedding.extend(e.chunks(1280).map(<[f32]>::to_vec));
    }
    // Two labels: "elephant" from photos 0 and 2, "llama" from photo 3.
    let params = EvidenceParams::default();
    let ev = Evidence::fit(
        2,
        params,
        [(0usize, 0usize), (0, 2), (1, 3)]
            .iter()
            .map(|&(l, i)| (l, embedding[i].as_slice(), imagenet[i].as_slice())),
    )
    .unwrap();
    let head = random_head(Loss::Sigmoid, 2, 1280, 9);
    let onnx = export(&bytes, "embedding", &head, Some((&ev, "logits"))).unwrap();
    let out = plan(&onnx)
        .run(tvec![Tensor::stack_tensors(0, &x[..2]).unwrap().into()])
        .unwrap();
    assert_eq!(out.len(), 3, "logits, probabilities, embedding");
    let (logits, probs) = (flat(&out[0]), flat(&out[1]));
    assert_eq!((logits.len(), probs.len()), (4, 4));
    for row in 0..2 {
        let z = head.logits(&embedding[row]);
        let mut want = Vec::new();
        ev.combine(&z, &embedding[row], &imagenet[row], &mut want);
        for (j, (a, b)) in logits[row * 2..row * 2 + 2].iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() < 1e-3,
                "photo {row} label {j}: onnx {a}, Rust {b}"
            );
            let p = probs[row * 2 + j];
            assert!((p - 1.0 / (1.0 + (-b).exp())).abs() < 1e-4);
        }
    }
    // Photo 0 is in the elephant bank: its nearest elephant photo is itself
    // (cosine 1), so the elephant logit carries the full nearest-photo weight.
    let z0 = head.logits(&embedding[0]);
    let mut s = Vec::new();
    ev.combine(&z0, &embedding[0], &imagenet[0], &mut s);
    assert!(s[0] > s[1], "{s:?}");
    // The ImageNet classifier stays in the graph: the file keeps its weights.
    let without = export(&bytes, "embedding", &head, None).unwrap();
    assert!(onnx.len() > without.len() + 1_000_000);
}

/// A small folder data set from zoo12 (under `zoo12`, the full data set's
/// folder): three labels of 12 photos and 20 background photos, as symlinks.
fn small_dataset(root: &Path, zoo12: &Path) -> PathBuf {
    let data = root.join("photos");
    for (src, dst, n) in [
        ("known/elephant", "elephant", 12),
        ("known/flamingo", "flamingo", 12),
        ("known/llama", "llama", 12),
        ("nothing/background", "nothing", 20),
    ] {
        let d = data.join(dst);
        std::fs::create_dir_all(&d).unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(zoo12.join(src))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files.into_iter().take(n) {
            std::os::unix::fs::symlink(&f, d.join(f.file_name().unwrap())).unwrap();
        }
    }
    data
}

fn train(data: &Path, out: &Path, cache: &Path, extra: &[&str]) -> std::process::Output {
    common::camtrapd_cmd()
        .args(["train", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .arg("--cache")
        .arg(cache)
        .arg("--report")
        .arg(out.with_extension("report"))
        .args(["--data-licence", "Caltech-101, CC BY 4.0"])
        .args(if extra.contains(&"--seed") {
            &[][..]
        } else {
            &["--seed", "7"][..]
        })
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn train_end_to_end_writes_a_bundle_the_daemon_runs_and_is_deterministic() {
    let Some(full) = common::full_data("56 photos of zoo12 (12 per label, 20 backgrounds)") else {
        return;
    };
    let zoo12 = full.join("zoo12");
    let t = tempfile::tempdir().unwrap();
    let data = small_dataset(t.path(), &zoo12);
    let cache = t.path().join("cache");
    let a = t.path().join("a");
    let out = train(&data, &a, &cache, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The folders were read as three labels and the negatives.
    assert!(stderr.contains("label \"llama\""), "{stderr}");
    assert!(stderr.contains("\"nothing\" (negative)"), "{stderr}");
    // Seeded splits per folder: 12 → 2 calib, 2 test, 8 train; 20 → 3, 3, 14.
    let split = std::fs::read_to_string(a.join("data-split.csv")).unwrap();
    let count = |label: &str, split_name: &str| {
        split
            .lines()
            .filter(|l| l.contains(&format!(",{label},")) && l.ends_with(&format!(",{split_name}")))
            .count()
    };
    assert_eq!(
        (
            count("llama", "calib"),
            count("llama", "test"),
            count("llama", "train")
        ),
        (2, 2, 8)
    );
    assert_eq!(
        (
            count("nothing", "calib"),
            count("nothing", "test"),
            count("nothing", "train")
        ),
        (3, 3, 14)
    );
    assert!(
        stdout.contains("on 24 labelled + 14 \"nothing\" images"),
        "{stdout}"
    );
    // Held-out calibration and the unseen-species estimate: one empty-frame
    // group and three labels held out in turn, each refitted.
    assert!(stdout.contains("4 folds refitted"), "{stdout}");
    assert!(
        stdout.contains("unseen animals published (estimated): "),
        "{stdout}"
    );
    assert!(stdout.contains("label-out: "), "{stdout}");
    let thresholds = std::fs::read_to_string(a.join("thresholds.toml")).unwrap();
    assert!(thresholds.contains("method = \"held-out\""), "{thresholds}");
    assert!(thresholds.contains("fitted_by = "), "{thresholds}");
    // The bundle loads as the daemon loads it, with the trained labels and
    // the sigmoid head, calibrated thresholds and a kNN bank of the 24
    // labelled training photos.
    let model = Model::load(&a).unwrap();
    let m = model.manifest();
    assert_eq!(m.labels, ["elephant", "flamingo", "llama"]);
    assert_eq!(m.output.name, "logits");
    assert_eq!(
        m.output.activation,
        camtrapd::model::manifest::Activation::Sigmoid
    );
    assert_eq!(
        m.thresholds.score,
        Some(camtrapd::decision::ScoreFn::Sigmoid)
    );
    assert!(m
        .thresholds
        .default
        .is_some_and(|d| (0.0..=1.0).contains(&d)));
    assert_eq!(model.knn_bank().unwrap().len(), 24);
    let training = m.provenance.training.as_ref().unwrap();
    assert_eq!((training.loss.as_str(), training.seed), ("sigmoid", 7));
    // eval reads this to fit its folds as the thresholds were fitted.
    assert_eq!(training.calibration.as_deref(), Some("held-out"));
    assert!(m.provenance.licence.contains("CC BY 4.0"));
    assert!(std::fs::read_to_string(a.join("LICENSE"))
        .unwrap()
        .contains("Apache License"));
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(a.with_extension("report").join("report.json")).unwrap(),
    )
    .unwrap();
    // 6 test photos of the labels, 3 of nothing.
    assert_eq!(report["counts"]["known"], 6, "{}", report["counts"]);
    assert_eq!(report["counts"]["empty"], 3, "{}", report["counts"]);
    // A photo of the labels is classified by the new bundle as one of them.
    let classify = common::camtrapd_cmd()
        .args(["classify", "--json", "--model"])
        .arg(&a)
        .arg(zoo12.join("known/flamingo"))
        .output()
        .unwrap();
    assert!(classify.status.success());
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&classify.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let flamingo = rows
        .iter()
        .filter(|r| r["top_k"][0]["label"] == "flamingo")
        .count();
    assert!(
        flamingo * 10 >= rows.len() * 8,
        "{flamingo} of {}",
        rows.len()
    );

    // The same seed gives the same model.onnx (the embeddings come from the cache).
    let b = t.path().join("b");
    let out = train(&data, &b, &cache, &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("from the cache, 0 computed"));
    assert_eq!(
        std::fs::read(a.join("model.onnx")).unwrap(),
        std::fs::read(b.join("model.onnx")).unwrap()
    );
    // Another seed: other splits and initial weights, another model.
    let c = t.path().join("c");
    let out = train(
        &data,
        &c,
        &cache,
        &["--seed", "8", "--loss", "softmax-nothing"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mc = Model::load(&c).unwrap();
    assert_eq!(mc.manifest().output.name, "probabilities");
    assert_ne!(
        std::fs::read(a.join("model.onnx")).unwrap(),
        std::fs::read(c.join("model.onnx")).unwrap()
    );
}

#[test]
fn train_refuses_data_without_labels() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("photos/nothing");
    std::fs::create_dir_all(&d).unwrap();
    std::os::unix::fs::symlink(sample_photo("nothing/c101_image_0001.jpg"), d.join("a.jpg"))
        .unwrap();
    let out = train(
        &t.path().join("photos"),
        &t.path().join("m"),
        &t.path().join("c"),
        &[],
    );
    assert_eq!(out.status.code(), Some(65));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("no label folder"), "{e}");
}

#[test]
fn shipped_zoo12_bundle_is_the_example_default_and_loads() {
    // models/zoo12 as `camtrapd train` wrote it: the 12 labels, a sigmoid
    // head with calibrated thresholds for the sigmoid score, a kNN bank of
    // the 452 labelled train photos; examples/zoo12.toml runs it.
    let dir = common::repo().join("models/zoo12");
    let model = Model::load(&dir).unwrap();
    let m = model.manifest();
    assert_eq!(m.labels.len(), 12);
    assert_eq!(m.labels[0], "beaver");
    assert_eq!(
        m.thresholds.score,
        Some(camtrapd::decision::ScoreFn::Sigmoid)
    );
    assert_eq!(m.thresholds.labels.len(), 12);
    assert_eq!(model.knn_bank().unwrap().len(), 452);
    let training = m.provenance.training.as_ref().unwrap();
    assert_eq!(
        (training.loss.as_str(), training.split.as_str()),
        ("sigmoid", "train")
    );
    assert_eq!(
        (
            training.decision.as_deref(),
            training.calibration.as_deref()
        ),
        (Some("evidence"), Some("held-out"))
    );
    let out = common::camtrapd_cmd()
        .arg("check-config")
        .arg(common::repo().join("examples/zoo12.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("zoo12 (12 labels)"), "{text}");
}
