//! The model bundle and inference.
//!
//! A bundle is a folder `models/<name>/` holding `model.onnx` and its manifest
//! `model.toml` ([`manifest::Manifest`]). [`Model::load`] reads both, checks
//! the manifest against the ONNX graph (input name, rank, layout, datum type,
//! size; output names; label count; SHA-256), pins the batch dimension to 1,
//! lets tract optimise the graph, and runs one self-test inference so that a
//! broken model fails at start-up rather than on the first frame.
//!
//! | module | role |
//! | --- | --- |
//! | [`manifest`] | `model.toml`: labels, input geometry, output kind, thresholds, provenance (data only) |
//! | [`score_fn`] | the names and units of the score functions that thresholds are for (data only; computed in `crate::decision::score`) |
//! | [`knn_bank`] | the bundle's kNN embedding bank (`knn-bank.npy`) and its k-th-nearest-neighbour query |
//! | [`fold_dequantize`] | load-time rewrite: int8 weights dequantised once, not on every frame |
//! | [`kernels`] | x86_64 SIMD kernels camtrapd adds to tract, and how to switch them off |

pub mod fold_dequantize;
pub mod kernels;
pub mod knn_bank;
pub mod manifest;
pub mod score_fn;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::prelude::*;

use kernels::{depthwise_fused, depthwise_x86, matmul_x86, quantize_u8, zero_point};
use manifest::{InputDatum, Layout};

/// Largest `model.onnx` accepted: 2 GiB (protobuf's own limit).
const ONNX_MAX_BYTES: u64 = 2 << 30;
pub use manifest::{Manifest, ManifestError};

/// Errors loading or running a model. All of them are configuration errors
/// (exit code 78) when they happen at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The bundle folder or one of its files is missing.
    #[error("model bundle {dir}: {what}; a bundle is a folder with model.onnx and model.toml (see docs/models.md, 'The manifest')")]
    Missing {
        /// The bundle folder.
        dir: PathBuf,
        /// What is missing, e.g. "no such folder" or "model.onnx not found".
        what: String,
    },
    /// `model.toml` is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// `model.onnx` is unreadable, not ONNX, or uses something tract cannot run.
    #[error("model {path}: {message}")]
    Onnx {
        /// The ONNX file.
        path: PathBuf,
        /// What went wrong, with tract's explanation.
        message: String,
    },
    /// The manifest does not describe the ONNX graph.
    #[error("model bundle {dir}: manifest {field} does not match model.onnx: {message}")]
    Mismatch {
        /// The bundle folder.
        dir: PathBuf,
        /// Manifest field, e.g. `labels` or `input.layout`.
        field: String,
        /// What the manifest says and what the graph has.
        message: String,
    },
    /// Inference failed (start-up self-test or a frame).
    #[error("inference failed: {0}")]
    Inference(String),
}

/// A loaded, optimised model ready to classify frames.
///
/// Inference is single-threaded and reuses its input tensor: fill it through
/// [`Model::input_mut`] (shape [`Model::input_shape`], datum type per the
/// manifest), then call [`Model::run`] and read [`Model::scores_output`].
pub struct Model {
    manifest: Manifest,
    dir: PathBuf,
    sha256: String,
    state: TypedSimpleState,
    input: Option<Tensor>,
    input_shape: [usize; 4],
    outputs: TVec<TValue>,
    /// The scores output on the start-up self-test's grey image.
    self_test_scores: Vec<f32>,
    embedding_dim: Option<usize>,
    knn: Option<std::sync::Arc<knn_bank::KnnBank>>,
    /// Multiply-accumulates of one inference (see [`Model::macs`]).
    macs: u64,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.manifest.name)
            .field("dir", &self.dir)
            .field("sha256", &self.sha256)
            .finish()
    }
}

fn onnx_err(path: &Path, e: impl std::fmt::Display, hint: &str) -> ModelError {
    ModelError::Onnx {
        path: path.to_path_buf(),
        message: format!("{e:#}{hint}"),
    }
}

/// Element type name of an ONNX `TensorProto.DataType` code.
fn onnx_type_name(code: i32) -> String {
    pb::tensor_proto::DataType::try_from(code)
        .map(|d| format!("{d:?}").to_lowercase())
        .unwrap_or_else(|_| format!("type #{code}"))
}

/// The manifest's spelling of a datum type (`f32`, `u8`).
fn datum_name(d: InputDatum) -> &'static str {
    match d {
        InputDatum::F32 => "f32",
        InputDatum::U8 => "u8",
    }
}

/// Declared dims of a value: `Some(n)` for a fixed size, `None` for a symbolic one.
fn declared_dims(v: &pb::ValueInfoProto) -> Option<(i32, Vec<Option<i64>>)> {
    let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_ref().and_then(|t| t.value.clone())
    else {
        return None;
    };
    let dims = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(n)) if n > 0 => Some(n),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some((t.elem_type, dims))
}

impl Model {
    /// Loads the bundle in `dir` (`model.toml` + `model.onnx`), checks the
    /// manifest against the graph, pins batch to 1, optimises, and runs a
    /// self-test inference on a mid-grey image.
    ///
    /// # Errors
    /// [`ModelError::Missing`] for a missing folder or file,
    /// [`ModelError::Manifest`] for an invalid manifest,
    /// [`ModelError::Onnx`] for a file that is not ONNX or uses an operator
    /// tract does not support, [`ModelError::Mismatch`] when manifest and
    /// graph disagree (e.g. "manifest lists 12 labels, output 'logits' has
    /// 1000"), [`ModelError::Inference`] when the self-test fails.
    pub fn load(dir: &Path) -> Result<Model, ModelError> {
        let missing = |what: &str| ModelError::Missing {
            dir: dir.to_path_buf(),
            what: what.to_string(),
        };
        if dir.is_file() {
            return Err(ModelError::Missing {
                dir: dir.to_path_buf(),
                what: "a folder at that path (it is a file; name the folder that holds model.onnx)"
                    .into(),
            });
        }
        if !dir.is_dir() {
            return Err(missing("no such folder"));
        }
        let manifest_path = dir.join("model.toml");
        let onnx_path = dir.join("model.onnx");
        if !manifest_path.is_file() {
            return Err(missing("model.toml not found"));
        }
        if !onnx_path.is_file() {
            return Err(missing("model.onnx not found"));
        }
        let manifest = Manifest::from_path(&manifest_path)?;
        let bytes = crate::read::read_capped(&onnx_path, ONNX_MAX_BYTES)
            .map_err(|e| onnx_err(&onnx_path, e, ""))?;
        let sha256 = hex(&Sha256::digest(&bytes));
        if !sha256.eq_ignore_ascii_case(&manifest.provenance.sha256) {
            return Err(ModelError::Mismatch {
                dir: dir.to_path_buf(),
                field: "provenance.sha256".into(),
                message: format!(
                    "model.onnx has sha256 {sha256}, the manifest says {}; if you replaced model.onnx on purpose, put its `sha256sum` in the manifest",
                    manifest.provenance.sha256
                ),
            });
        }
        let onnx = tract_onnx::onnx();
        let mut proto = onnx
            .proto_model_for_read(&mut bytes.as_slice())
            .map_err(|e| onnx_err(&onnx_path, e, " (is this an ONNX file? re-export it, or check it with `python -m onnx.checker`)"))?;
        let input_shape = Self::check_declared(&manifest, dir, &proto)?;
        // Intermediate shape annotations (`value_info`, e.g. written by onnxruntime's
        // quant_pre_process) may carry the symbolic batch and then clash with the
        // batch pinned to 1 below; they are optional hints, so drop them.
        if let Some(g) = proto.graph.as_mut() {
            g.value_info.clear();
            // Weight-only int8: dequantise constant weights once, here, rather
            // than on every frame (see fold_dequantize).
            let n = fold_dequantize::fold_constant_dequantize(g);
            if n > 0 {
                log::debug!("folded {n} DequantizeLinear nodes over constant weights into f32");
            }
        }

        let mut model = onnx
            .model_for_proto_model(&proto)
            .map_err(|e| onnx_err(&onnx_path, &e, &op_hint(&e)))?;
        // Keep only the scores (and embedding) outputs, pin the input shape (batch = 1).
        let mut outputs = vec![manifest.output.name.clone()];
        outputs.extend(manifest.output.embedding.clone());
        model
            .select_outputs_by_name(&outputs)
            .map_err(|e| onnx_err(&onnx_path, e, ""))?;
        let input_ix = model
            .input_outlets()
            .map_err(|e| onnx_err(&onnx_path, e, ""))?
            .iter()
            .position(|o| model.node(o.node).name == manifest.input.name)
            .ok_or_else(|| ModelError::Mismatch {
                dir: dir.to_path_buf(),
                field: "input.name".into(),
                message: format!("the graph has no input named {:?}", manifest.input.name),
            })?;
        let dt = match manifest.input.datum_type {
            InputDatum::F32 => f32::datum_type(),
            InputDatum::U8 => u8::datum_type(),
        };
        model
            .set_input_fact(input_ix, InferenceFact::dt_shape(dt, input_shape))
            .map_err(|e| onnx_err(&onnx_path, e, ""))?;
        let typed = model
            .into_typed()
            .map_err(|e| onnx_err(&onnx_path, &e, &op_hint(&e)))?;
        // Check output shapes now that the input is pinned.
        let scores_dim = Self::output_dim(&typed, 0).map_err(|e| onnx_err(&onnx_path, e, ""))?;
        if scores_dim != Some(manifest.labels.len()) {
            return Err(ModelError::Mismatch {
                dir: dir.to_path_buf(),
                field: "labels".into(),
                message: format!(
                    "manifest lists {} labels, output '{}' has {}",
                    manifest.labels.len(),
                    manifest.output.name,
                    scores_dim.map_or("a shape that is not [1, N]".to_string(), |n| n.to_string())
                ),
            });
        }
        let embedding_dim = if manifest.output.embedding.is_some() {
            let d = Self::output_dim(&typed, 1).map_err(|e| onnx_err(&onnx_path, e, ""))?;
            if d.is_none() {
                return Err(ModelError::Mismatch {
                    dir: dir.to_path_buf(),
                    field: "output.embedding".into(),
                    message: "the embedding output is not of shape [1, D]".into(),
                });
            }
            d
        } else {
            None
        };
        let macs = multiply_accumulates(&typed);
        // Our x86 channel-inner depthwise kernel (if the CPU has one) must be
        // registered before tract lays the graph out.
        log::debug!(
            "channel-inner depthwise kernel: {}",
            depthwise_x86::selected().unwrap_or("none (depthwise convolutions stay NCHW)")
        );
        log::debug!(
            "short-K matmul kernel {}: {}",
            matmul_x86::KERNEL_NAME,
            if matmul_x86::available() {
                "available"
            } else {
                "not on this CPU"
            }
        );
        let optimised = move || -> TractResult<_> {
            let mut m = typed;
            m.declutter()?;
            // Vectorisable f32 -> u8 quantisers, without a clamp the
            // quantiser makes redundant (int8 models; all architectures).
            let (q, c) = quantize_u8::rewrite(&mut m)?;
            log::debug!("{q} quantisers made vectorisable, {c} redundant clamps dropped");
            // tract's codegen, plus our pass that drops the zero-point terms
            // of int8 products with symmetric weights (all architectures).
            m.optimize_with_session(&mut zero_point::optimizer().session())?;
            // Depthwise convolution + ReLU6 in one pass (x86 AVX-512).
            let n = depthwise_fused::fuse(&mut m, &proto)?;
            log::debug!("fused {n} depthwise convolutions with their clamp");
            m.into_runnable()
        };
        let plan = optimised().map_err(|e| onnx_err(&onnx_path, &e, &op_hint(&e)))?;
        let state = TypedSimpleState::new(&plan).map_err(|e| onnx_err(&onnx_path, e, ""))?;
        let input = match manifest.input.datum_type {
            InputDatum::F32 => Tensor::zero::<f32>(&input_shape),
            InputDatum::U8 => Tensor::zero::<u8>(&input_shape),
        }
        .map_err(|e| onnx_err(&onnx_path, e, ""))?;
        let mut m = Model {
            manifest,
            dir: dir.to_path_buf(),
            sha256,
            state,
            input: Some(input),
            input_shape,
            outputs: tvec![],
            self_test_scores: Vec::new(),
            embedding_dim,
            knn: None,
            macs,
        };
        m.self_test()?;
        if let Some(spec) = &m.manifest.knn {
            let bank = knn_bank::KnnBank::load(&dir.join(&spec.bank), Some(&spec.sha256), spec.k)
                .map_err(|e| ModelError::Mismatch {
                dir: dir.to_path_buf(),
                field: "knn".into(),
                message: e.to_string(),
            })?;
            if Some(bank.dim()) != m.embedding_dim {
                return Err(ModelError::Mismatch {
                    dir: dir.to_path_buf(),
                    field: "knn.bank".into(),
                    message: format!(
                        "the bank holds {}-wide embeddings, the model's embedding output is {}",
                        bank.dim(),
                        m.embedding_dim
                            .map_or("missing".to_string(), |d| format!("{d}-wide"))
                    ),
                });
            }
            m.knn = Some(std::sync::Arc::new(bank));
        }
        Ok(m)
    }

    /// Checks the manifest's input and outputs against the graph's declared
    /// ones; returns the concrete input shape to pin (batch = 1).
    fn check_declared(
        m: &Manifest,
        dir: &Path,
        proto: &pb::ModelProto,
    ) -> Result<[usize; 4], ModelError> {
        let mismatch = |field: &str, message: String| ModelError::Mismatch {
            dir: dir.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let graph = proto.graph.as_ref().ok_or_else(|| ModelError::Onnx {
            path: dir.join("model.onnx"),
            message: "the file holds no graph (empty, or not an ONNX model)".into(),
        })?;
        let inits: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|i| i.name.as_str()).collect();
        let inputs: Vec<&pb::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !inits.contains(i.name.as_str()))
            .collect();
        let names = |v: &[&pb::ValueInfoProto]| {
            v.iter()
                .map(|i| format!("{:?}", i.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let input = inputs
            .iter()
            .find(|i| i.name == m.input.name)
            .ok_or_else(|| {
                mismatch(
                    "input.name",
                    format!(
                        "the graph has no input {:?}; its inputs are: {}",
                        m.input.name,
                        names(&inputs)
                    ),
                )
            })?;
        let (w, h) = (m.input.width as usize, m.input.height as usize);
        let shape = match m.input.layout {
            Layout::NCHW => [1, 3, h, w],
            Layout::NHWC => [1, h, w, 3],
        };
        if let Some((elem, dims)) = declared_dims(input) {
            // Every way the input differs, each with its fix in the
            // manifest's spelling, in one message.
            let mut problems: Vec<(&str, String)> = Vec::new();
            let graph_datum = if elem == pb::tensor_proto::DataType::Float as i32 {
                Some(InputDatum::F32)
            } else if elem == pb::tensor_proto::DataType::Uint8 as i32 {
                Some(InputDatum::U8)
            } else {
                None
            };
            match graph_datum {
                Some(d) if d == m.input.datum_type => {}
                Some(d) => {
                    let extra = match (d, &m.input.normalisation) {
                        (InputDatum::U8, Some(_)) => {
                            " and remove normalisation (a u8 input takes raw 0..255 pixels)"
                        }
                        (InputDatum::F32, None) => {
                            " and give the normalisation the model was trained with, if any"
                        }
                        _ => "",
                    };
                    problems.push((
                        "input.datum_type",
                        format!(
                            "the manifest says \"{}\", the graph takes {}: set datum_type = \"{}\"{extra}",
                            datum_name(m.input.datum_type),
                            datum_name(d),
                            datum_name(d)
                        ),
                    ));
                }
                None => problems.push((
                    "input.datum_type",
                    format!(
                        "the graph takes {}, which camtrapd cannot feed (it feeds f32 or u8): re-export the model with a float32 or uint8 input",
                        onnx_type_name(elem)
                    ),
                )),
            }
            let show = dims
                .iter()
                .map(|d| d.map_or("?".to_string(), |n| n.to_string()))
                .collect::<Vec<_>>()
                .join("×");
            if !dims.is_empty() && dims.len() != 4 {
                problems.push((
                    "input.layout",
                    format!("it has rank {}; an image input has rank 4", dims.len()),
                ));
            } else if !dims.is_empty() {
                if let Some(b) = dims[0] {
                    if b != 1 {
                        return Err(ModelError::Onnx {
                            path: dir.join("model.onnx"),
                            message: format!("input {:?} has a fixed batch of {b}; re-export the model with batch 1 or a symbolic batch dimension", m.input.name),
                        });
                    }
                }
                let (other, other_shape) = match m.input.layout {
                    Layout::NCHW => (Layout::NHWC, [1, h, w, 3]),
                    Layout::NHWC => (Layout::NCHW, [1, 3, h, w]),
                };
                let matches = |want: &[usize; 4]| {
                    dims.iter()
                        .zip(want.iter())
                        .skip(1)
                        .all(|(d, w)| d.is_none_or(|d| d as usize == *w))
                };
                // The channel position says which layout the graph has.
                let graph_layout = match (
                    dims.get(1).copied().flatten(),
                    dims.get(3).copied().flatten(),
                ) {
                    (Some(3), Some(c)) if c != 3 => Some(Layout::NCHW),
                    (Some(c), Some(3)) if c != 3 => Some(Layout::NHWC),
                    _ if matches(&other_shape) && !matches(&shape) => Some(other),
                    _ => None,
                };
                let layout = match graph_layout {
                    Some(l) if l != m.input.layout => {
                        problems.push((
                            "input.layout",
                            format!(
                                "the manifest says \"{:?}\", the graph's input is {l:?}: set layout = \"{l:?}\"",
                                m.input.layout
                            ),
                        ));
                        l
                    }
                    _ => m.input.layout,
                };
                // Height and width, at the graph's layout's positions.
                let (hi, wi, ci) = match layout {
                    Layout::NCHW => (2, 3, 1),
                    Layout::NHWC => (1, 2, 3),
                };
                for (field, ix, want) in [("height", hi, h), ("width", wi, w)] {
                    if let Some(Some(d)) = dims.get(ix) {
                        if *d as usize != want {
                            problems.push((
                                if field == "height" { "input.height" } else { "input.width" },
                                format!("the manifest says {want}, the graph's input is {d} pixels: set {field} = {d}"),
                            ));
                        }
                    }
                }
                if let Some(Some(c)) = dims.get(ci) {
                    if *c != 3 && graph_layout.is_none() {
                        let alt = match m.input.layout {
                            Layout::NCHW => "NHWC",
                            Layout::NHWC => "NCHW",
                        };
                        problems.push((
                            "input.layout",
                            format!("the graph has {c} channels where layout = \"{:?}\" puts them (an RGB input has 3; is the layout {alt}?)", m.input.layout),
                        ));
                    }
                }
            }
            if !problems.is_empty() {
                let fields = problems
                    .iter()
                    .map(|(f, _)| *f)
                    .collect::<Vec<_>>()
                    .join(", ");
                let shown = if show.is_empty() {
                    String::new()
                } else {
                    format!(" {show}")
                };
                return Err(mismatch(
                    &fields,
                    format!(
                        "input {:?} is {}{shown}; {}",
                        m.input.name,
                        graph_datum
                            .map_or_else(|| onnx_type_name(elem), |d| datum_name(d).to_string()),
                        problems
                            .iter()
                            .map(|(f, p)| format!("{}: {p}", f.trim_start_matches("input.")))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                ));
            }
        }
        let outputs: Vec<&pb::ValueInfoProto> = graph.output.iter().collect();
        let mut wanted = vec![("output.name", &m.output.name)];
        if let Some(e) = &m.output.embedding {
            wanted.push(("output.embedding", e));
        }
        for (field, name) in wanted {
            if !outputs.iter().any(|o| &o.name == name) {
                return Err(mismatch(
                    field,
                    format!(
                        "the graph has no output {name:?}; its outputs are: {}",
                        names(&outputs)
                    ),
                ));
            }
        }
        Ok(shape)
    }

    /// `Some(N)` if output `ix` has the concrete shape `[1, N]` (or `[N]`).
    fn output_dim(model: &TypedModel, ix: usize) -> TractResult<Option<usize>> {
        let fact = model.output_fact(ix)?;
        let Some(shape) = fact.shape.as_concrete() else {
            return Ok(None);
        };
        Ok(match shape {
            [n] => Some(*n),
            [1, n] => Some(*n),
            _ => None,
        })
    }

    fn self_test(&mut self) -> Result<(), ModelError> {
        if let Some(t) = self.input.as_mut() {
            match self.manifest.input.datum_type {
                InputDatum::F32 => {
                    let (scale, offset) = self.manifest.scale_offset();
                    let v = 128.0 * scale[0] + offset[0];
                    t.try_as_plain_ram_mut()
                        .and_then(|mut p| p.as_slice_mut::<f32>().map(|s| s.fill(v)))
                        .map_err(|e| ModelError::Inference(e.to_string()))?;
                }
                InputDatum::U8 => t
                    .try_as_plain_ram_mut()
                    .and_then(|mut p| p.as_slice_mut::<u8>().map(|s| s.fill(128)))
                    .map_err(|e| ModelError::Inference(e.to_string()))?,
            }
        }
        let onnx = self.dir.join("model.onnx");
        self.run().map_err(|e| ModelError::Onnx {
            path: onnx.clone(),
            message: format!("the start-up self-test inference failed: {e}"),
        })?;
        let scores = self.scores_output()?.to_vec();
        if scores.len() != self.manifest.labels.len() || scores.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::Onnx {
                path: onnx,
                message: "the start-up self-test produced non-finite or mis-shaped scores; the model file is probably broken".into(),
            });
        }
        let (lo, hi) = scores
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let sum: f32 = scores.iter().sum();
        self.self_test_scores = scores.clone();
        if self.manifest.output.kind == manifest::OutputKind::Logits
            && self.manifest.output.activation == manifest::Activation::Softmax
            && scores.len() >= 3
            && lo >= 0.0
            && hi <= 1.0
            && (sum - 1.0).abs() < 1e-3
        {
            // Softmax over probabilities squashes every score to about 1/N:
            // every frame would be silently rejected.
            return Err(ModelError::Mismatch {
                dir: self.dir.clone(),
                field: "output.kind".into(),
                message: format!(
                    "the manifest says logits, but output '{}' already holds probabilities (0..1, sum {sum:.3}); set kind = \"probabilities\"",
                    self.manifest.output.name
                ),
            });
        }
        if self.manifest.output.kind == manifest::OutputKind::Probabilities {
            // Probabilities must be 0..1 (and sum to at most 1 after a softmax: a
            // head may leave out its "nothing" class, as `camtrapd train --loss
            // softmax-nothing` does); otherwise they are logits and clamping them
            // would make every frame "confident".
            let softmax = self.manifest.output.activation == manifest::Activation::Softmax;
            let in_unit = lo >= -1e-4 && hi <= 1.0 + 1e-4;
            if in_unit && softmax && sum > 1.02 {
                // Every value is a probability, but together they are not
                // one distribution: not logits (issue 21: that hint squashed
                // every score to about 1/N).
                return Err(ModelError::Mismatch {
                    dir: self.dir.clone(),
                    field: "output.activation".into(),
                    message: format!(
                        "the manifest says probabilities from a softmax, but on a grey test image the {} values of output '{}' are all in 0..1 and sum to {sum:.3}, not 1: a softmax over the wrong axis (e.g. one distribution per row of a reshaped output; fix the export), or independent sigmoid scores: then set activation = \"sigmoid\"",
                        scores.len(),
                        self.manifest.output.name
                    ),
                });
            }
            if !in_unit {
                return Err(ModelError::Mismatch {
                    dir: self.dir.clone(),
                    field: "output.kind".into(),
                    message: format!(
                        "the manifest says probabilities, but on a grey test image output '{}' ranges {lo:.3}..{hi:.3} (sum {sum:.3}); these look like logits: set kind = \"logits\"",
                        self.manifest.output.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// The scores output on the start-up self-test's grey image (mid-grey
    /// 128 in every pixel, through the manifest's normalisation).
    pub fn self_test_scores(&self) -> &[f32] {
        &self.self_test_scores
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The bundle folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Hex SHA-256 of `model.onnx` (64 chars).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Labels in output order.
    pub fn labels(&self) -> &[String] {
        &self.manifest.labels
    }

    /// Input tensor shape with batch 1: `[1, 3, H, W]` (NCHW) or `[1, H, W, 3]` (NHWC).
    pub fn input_shape(&self) -> [usize; 4] {
        self.input_shape
    }

    /// Embedding width D, when the manifest names an embedding output.
    pub fn embedding_dim(&self) -> Option<usize> {
        self.embedding_dim
    }

    /// The kNN embedding bank of the bundle (`[knn]` in model.toml), if any.
    pub fn knn_bank(&self) -> Option<std::sync::Arc<knn_bank::KnnBank>> {
        self.knn.clone()
    }

    /// The reusable input tensor, to be filled before [`Model::run`]
    /// (f32 or u8 per the manifest, shape [`Model::input_shape`]).
    pub fn input_mut(&mut self) -> &mut Tensor {
        self.input.get_or_insert_with(Tensor::default)
    }

    /// Runs the model on the current input tensor. The input tensor is moved
    /// into tract and taken back afterwards without a copy.
    ///
    /// # Errors
    /// [`ModelError::Inference`] with tract's message.
    pub fn run(&mut self) -> Result<(), ModelError> {
        let input = self.input.take().unwrap_or_default().into_tvalue();
        self.outputs.clear();
        let result = self.state.run(tvec![input.clone()]);
        self.input = Some(input.into_tensor());
        self.outputs = result.map_err(|e| ModelError::Inference(format!("{e:#}")))?;
        Ok(())
    }

    /// Multiply-accumulates (MACs) of one inference at the pinned input
    /// shape: the sum of tract's `Cost::FMA` over every node of the typed
    /// graph before optimisation (convolutions: output points × output
    /// channels × input channels per group × kernel surface; matrix products:
    /// m × k × n), whatever the datum type (f32 or int8). For instructions
    /// per MAC against a kernel's bound (`camtrapd bench --insn-markers`,
    /// scripts/arm-cost.sh). 0 when tract cannot cost the graph.
    pub fn macs(&self) -> u64 {
        self.macs
    }

    /// The nodes of tract's optimised plan, in the order [`Model::run`]
    /// evaluates them: the `step` that [`Model::run_observed`] reports is an
    /// index into this list. `ms` is 0.
    pub fn plan_nodes(&self) -> Vec<NodeTime> {
        let plan = self.state.plan();
        let model = plan.model();
        plan.order_without_consts()
            .iter()
            .map(|&id| {
                let node = model.node(id);
                NodeTime {
                    node: node.name.clone(),
                    op: node.op().name().to_string(),
                    info: node.op().info().unwrap_or_default().join("; "),
                    output_shape: node
                        .outputs
                        .first()
                        .map(|o| format!("{:?}", o.fact.shape))
                        .unwrap_or_default(),
                    ms: 0.0,
                }
            })
            .collect()
    }

    /// Like [`Model::run`], but calls `observe(step, NodePhase::Start)` just
    /// before and `observe(step, NodePhase::End)` just after tract evaluates
    /// each node of the plan (`step` indexes [`Model::plan_nodes`]). For
    /// per-node measurements: time (`camtrapd bench --profile`) or
    /// allocations (`tests/alloc.rs`). Nothing is allocated on our side
    /// around the calls, so `observe` sees only what tract's operators do.
    ///
    /// # Errors
    /// [`ModelError::Inference`] with tract's message.
    pub fn run_observed(
        &mut self,
        mut observe: impl FnMut(usize, NodePhase),
    ) -> Result<(), ModelError> {
        let input = self.input.take().unwrap_or_default().into_tvalue();
        self.outputs.clear();
        let mut step = 0usize;
        let result =
            self.state
                .run_plan_with_eval(tvec![input.clone()], |ctx, st, node, inputs| {
                    observe(step, NodePhase::Start);
                    let r = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
                    observe(step, NodePhase::End);
                    step += 1;
                    r
                });
        self.input = Some(input.into_tensor());
        self.outputs = result.map_err(|e| ModelError::Inference(format!("{e:#}")))?;
        Ok(())
    }

    /// Like [`Model::run`], but times every node of tract's plan and adds
    /// the wall-clock time (ms) to `profile`, keyed by the node's position in
    /// the plan (filled from [`Model::plan_nodes`] when empty). For
    /// `camtrapd bench --profile`: where inference time goes, per operator
    /// (e.g. `DepthWiseConv`, `OptMatMul`) and per node. Timing each node
    /// adds a little overhead, so use [`Model::run`] for latency.
    ///
    /// # Errors
    /// [`ModelError::Inference`] with tract's message.
    pub fn run_profiled(&mut self, profile: &mut Vec<NodeTime>) -> Result<(), ModelError> {
        if profile.is_empty() {
            *profile = self.plan_nodes();
        }
        let mut started = std::time::Instant::now();
        self.run_observed(|step, phase| match phase {
            NodePhase::Start => started = std::time::Instant::now(),
            NodePhase::End => {
                if let Some(n) = profile.get_mut(step) {
                    n.ms += started.elapsed().as_secs_f64() * 1e3;
                }
            }
        })
    }

    /// The scores output of the last [`Model::run`] (logits or probabilities
    /// per the manifest), one f32 per label, in label order.
    ///
    /// # Errors
    /// [`ModelError::Inference`] if no run happened or the output is not f32.
    pub fn scores_output(&self) -> Result<&[f32], ModelError> {
        self.output_slice(0)
    }

    /// The embedding output of the last [`Model::run`], `[D]` f32, if the manifest names one.
    ///
    /// # Errors
    /// [`ModelError::Inference`] if no run happened or the output is not f32.
    pub fn embedding_output(&self) -> Result<Option<&[f32]>, ModelError> {
        if self.embedding_dim.is_none() {
            return Ok(None);
        }
        self.output_slice(1).map(Some)
    }

    fn output_slice(&self, ix: usize) -> Result<&[f32], ModelError> {
        let v = self
            .outputs
            .get(ix)
            .ok_or_else(|| ModelError::Inference("no output yet: run the model first".into()))?;
        v.try_as_plain_ram()
            .and_then(|p| p.as_slice::<f32>())
            .map_err(|e| ModelError::Inference(format!("output {ix} is not f32: {e}")))
    }
}

/// Time spent in one node of tract's optimised plan, summed over the runs
/// of [`Model::run_profiled`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeTime {
    /// The node's name (from the ONNX graph, with tract's suffixes).
    pub node: String,
    /// tract's operator name after optimisation, e.g. `DepthWiseConv`,
    /// `OptMatMul`, `Pad`.
    pub op: String,
    /// tract's description of the operator (kernel geometry, strides, ...).
    pub info: String,
    /// The shape of the node's first output, e.g. `1,112,112,32`.
    pub output_shape: String,
    /// Wall-clock time summed over the profiled runs, ms.
    pub ms: f64,
}

/// Where [`Model::run_observed`] is in the evaluation of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodePhase {
    /// tract is about to evaluate the node.
    Start,
    /// tract has evaluated the node (its output tensors exist).
    End,
}

/// Extra advice for errors mentioning operators tract does not implement.
fn op_hint(e: &impl std::fmt::Display) -> String {
    let s = format!("{e:#}");
    if s.contains("QLinear")
        || s.contains("com.microsoft")
        || s.contains("nimplemented")
        || s.contains("not implemented")
    {
        " (the graph uses an operator tract cannot run; for int8 models export in QDQ form (QuantizeLinear/DequantizeLinear around float ops) instead of onnxruntime's QOperator form)".into()
    } else {
        String::new()
    }
}

/// Sum of tract's `Cost::FMA` over the nodes of `model` (see [`Model::macs`]);
/// 0 if a node's cost cannot be computed or is not a plain number.
fn multiply_accumulates(model: &TypedModel) -> u64 {
    use tract_onnx::tract_core::ops::Cost;
    let mut total = 0u64;
    for node in model.nodes() {
        let Ok(facts) = model.node_input_facts(node.id) else {
            return 0;
        };
        let Ok(costs) = node.op.cost(&facts) else {
            return 0;
        };
        for (cost, n) in costs {
            if let Cost::FMA(_) = cost {
                match n.to_i64() {
                    Ok(n) if n >= 0 => total += n as u64,
                    _ => return 0,
                }
            }
        }
    }
    total
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Hex SHA-256 of a file (for `camtrapd` tools and tests).
///
/// # Errors
/// The I/O error reading the file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(hex(&Sha256::digest(std::fs::read(path)?)))
}
