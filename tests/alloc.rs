//! Allocations per frame on the decode → motion gate → preprocess →
//! inference → decision → events path, counted with a counting global
//! allocator (a count, not a time). After warm-up our own stages must not
//! allocate at all; what the JPEG decoder and tract allocate is counted
//! exactly and must not grow from frame to frame (see docs/benchmarks.md,
//! "Allocations per frame").
//!
//! Only the measuring thread's allocations count (the frame path runs on
//! the calling thread): the test harness's own threads, e.g. its "has been
//! running for over 60 seconds" notice under an emulator, are left out.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use camtrapd::decision::events::Hit;
use camtrapd::decision::{Decision, EventTracker, EventsConfig, Overrides, Policy};
use camtrapd::decode::{decode_bytes, decode_bytes_into, DecodeLimits, DecodeTarget, Window};
use camtrapd::frame::Frame;
use camtrapd::model::{Model, NodePhase};
use camtrapd::motion::{MotionConfig, MotionGate};
use camtrapd::pipeline::Pipeline;
use camtrapd::preprocess::Preprocessor;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the thread that measures.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn note(bytes: usize) {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// (allocations, bytes) made by `f`.
fn count<R>(f: impl FnOnce() -> R) -> (R, (u64, u64)) {
    let (a, b) = (ALLOCS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst));
    let r = f();
    (
        r,
        (
            ALLOCS.load(Ordering::SeqCst) - a,
            BYTES.load(Ordering::SeqCst) - b,
        ),
    )
}

#[test]
fn the_frame_path_allocates_nothing_of_ours_after_warm_up() {
    COUNTED.with(|c| c.set(true));
    let path = common::sample_photo("elephant/c101_image_0001.jpg");
    let bytes = std::fs::read(&path).unwrap();
    let limits = DecodeLimits::default();
    let model = Model::load(&common::default_model()).unwrap();
    let mut pipeline =
        Pipeline::new(model, &Overrides::default(), Vec::new(), "alloc".into()).unwrap();
    // The same stages one by one, to attribute what allocates.
    let mut model = Model::load(&common::default_model()).unwrap();
    let mut pre = Preprocessor::new(model.manifest());
    let policy = Policy::new(model.manifest(), &Overrides::default()).unwrap();
    let mut decision = Decision {
        scores: Vec::with_capacity(model.labels().len()),
        top_k: Vec::with_capacity(8),
        ..Decision::default()
    };
    let labels = pipeline.policy().labels().to_vec();
    let mut gate = MotionGate::new(&MotionConfig {
        enabled: true,
        ..MotionConfig::default()
    });
    let mut events = EventTracker::new(
        &EventsConfig::default(),
        "alloc".into(),
        labels,
        pipeline.policy().score_fn(),
        camtrapd::decision::ModelRef {
            name: "m".into(),
            sha256: "0".into(),
        },
    );
    // The gate as the sources run it on a JPEG: its luma at reduced scale.
    let mut luma_gate = MotionGate::new(&MotionConfig {
        enabled: true,
        ..MotionConfig::default()
    });
    let mut luma = Vec::new();
    let mut luma_counts = Vec::new();
    let mut out = Vec::with_capacity(8);
    let t0 = chrono::Utc::now();
    let image = decode_bytes(&bytes, &limits).unwrap();
    let mut frame = Frame {
        seq: 0,
        source_id: path.display().to_string(),
        captured_at: t0,
        window: Window::whole(&image),
        image,
        decode_ms: 0.0,
    };
    // Per stage and frame: (decode, gate, classify = preprocess + inference + decision, events).
    let mut per_frame = Vec::new();
    let mut stages = Vec::new();
    for i in 0..8u64 {
        // Decoded into the previous frame's pixel buffer, as the camera
        // source does (FrameSource::recycle).
        let spare = std::mem::take(&mut frame.image).into_raw();
        let (d, decode) =
            count(|| decode_bytes_into(&bytes, &limits, &DecodeTarget::full(), spare).unwrap());
        // Moving the decoded image into the frame does not allocate.
        frame.image = d.image;
        frame.seq = i;
        frame.captured_at = t0 + chrono::Duration::milliseconds(100 * i as i64);
        let (_, gate_n) = count(|| gate.check(&frame.image, frame.captured_at));
        let (g, luma_n) =
            count(|| luma_gate.check_jpeg(&bytes, &limits, &mut luma, frame.captured_at));
        assert!(g.is_some(), "frame {i}: the JPEG was not read as luma");
        luma_counts.push(luma_n);
        let (verdict, classify) = count(|| {
            let c = pipeline.classify(&frame).unwrap();
            c.decision.verdict
        });
        // A rejected frame, as most frames of a camera trap are.
        let _ = verdict;
        let (_, ev) = count(|| {
            events.observe(
                None::<Hit>,
                frame.captured_at,
                &frame.source_id,
                frame.seq,
                &frame.image,
                &mut out,
            )
        });
        per_frame.push((decode, gate_n, classify, ev));
        let (_, p) = count(|| pre.run(&frame.image, model.input_mut()).unwrap());
        let (_, m) = count(|| model.run().unwrap());
        let (_, d) = count(|| policy.decide(model.scores_output().unwrap(), None, &mut decision));
        stages.push((p, m, d));
    }
    eprintln!("preprocess, inference, decision:");
    for (i, f) in stages.iter().enumerate() {
        eprintln!("  frame {i}: {f:?}");
    }
    eprintln!("allocations (count, bytes) per frame: decode, motion gate, classify, events:");
    for (i, f) in per_frame.iter().enumerate() {
        eprintln!("  frame {i}: {f:?}");
    }
    // After three warm-up frames (the gate sizes its buffers on the first,
    // tract its scratch space):
    for (i, (decode, gate_n, classify, ev)) in per_frame.iter().enumerate().skip(3) {
        assert_eq!(gate_n.0, 0, "frame {i}: the motion gate allocated");
        assert_eq!(
            luma_counts[i].0, 0,
            "frame {i}: the motion gate on JPEG luma allocated"
        );
        assert_eq!(ev.0, 0, "frame {i}: the event tracker allocated");
        assert_eq!(
            *classify, per_frame[3].2,
            "frame {i}: preprocess + inference + decision allocations changed"
        );
        assert_eq!(
            *decode, per_frame[3].0,
            "frame {i}: decode allocations changed"
        );
    }
    // Inference, node by node: which of tract's operators allocate, and how
    // much of it is the executor's own (inputs, outputs, turn reset).
    let nodes = model.plan_nodes();
    let mut per_node = vec![0u64; nodes.len()];
    let mut start = 0u64;
    let ((), (observed, _)) = count(|| {
        model
            .run_observed(|step, phase| {
                let now = ALLOCS.load(Ordering::SeqCst);
                match phase {
                    NodePhase::Start => start = now,
                    NodePhase::End => per_node[step] += now - start,
                }
            })
            .unwrap()
    });
    let mut by_op: Vec<(String, u64, u64)> = Vec::new();
    for (n, a) in nodes.iter().zip(&per_node) {
        match by_op.iter_mut().find(|(op, _, _)| *op == n.op) {
            Some(e) => {
                e.1 += 1;
                e.2 += a;
            }
            None => by_op.push((n.op.clone(), 1, *a)),
        }
    }
    let in_nodes: u64 = per_node.iter().sum();
    eprintln!("inference allocations by operator (nodes, allocations):");
    for (op, n, a) in &by_op {
        eprintln!("  {op}: {n} nodes, {a}");
    }
    eprintln!(
        "  executor (inputs, outputs, turn reset): {}",
        observed - in_nodes
    );
    assert_eq!(
        observed, stages[7].1 .0,
        "an observed run allocates as a plain one"
    );
    // Our own operator (src/model/kernels/depthwise_fused.rs, AVX-512 only) keeps
    // its output tensor and scratch plane from frame to frame.
    let fused_on = camtrapd::model::kernels::matmul_x86::available()
        && std::env::var_os(camtrapd::model::kernels::depthwise_fused::DISABLE_ENV).is_none()
        && std::env::var_os(camtrapd::model::kernels::matmul_x86::DISABLE_ENV).is_none();
    let fused = by_op
        .iter()
        .find(|(op, _, _)| op == camtrapd::model::kernels::depthwise_fused::OP_NAME);
    if fused_on {
        assert_eq!(
            fused.map(|f| (f.1, f.2)),
            Some((16, 0)),
            "16 FusedDepthwiseClip nodes, allocating nothing"
        );
    }

    // Exact counts of what remains, all in third-party code (docs/benchmarks.md,
    // "Allocations per frame", explains each). They depend on the image size
    // and on tract's kernel choice for this CPU (x86-64 here).
    let (p, m, d) = stages[7];
    assert_eq!(d.0, 0, "the decision allocated");
    assert_eq!(
        (per_frame[7].0 .0, p.0),
        (EXPECTED_DECODE_ALLOCS, EXPECTED_PREPROCESS_ALLOCS),
        "allocations per frame (decode, preprocess) changed: {:?}",
        (per_frame[7].0, p)
    );
    // tract picks its kernels for the CPU at run time, so the exact count
    // differs on another CPU; it is the same every frame (asserted above) and
    // bounded: one output tensor per node plus a little scratch. On AVX-512
    // CPUs (where our fused depthwise operator runs) it is exact for the
    // kernels tract picks on the machines we measured (AMD EPYC, AVX-512).
    if fused_on {
        assert_eq!(
            m.0, MEASURED_INFERENCE_ALLOCS,
            "inference allocations per frame on x86-64 AVX-512: {m:?}"
        );
    }
    assert!(
        (1..=MAX_INFERENCE_ALLOCS).contains(&m.0),
        "inference allocations per frame: {m:?} (measured {MEASURED_INFERENCE_ALLOCS} on x86-64 AVX-512)"
    );
    assert_eq!(
        per_frame[7].2 .0,
        p.0 + m.0 + d.0,
        "Pipeline::classify adds none"
    );
}

/// libjpeg-turbo decodes this 300×225 photo straight into the previous
/// frame's RGB8 buffer (202 500 bytes), so decoding allocates nothing in
/// Rust. libjpeg-turbo's own per-image working memory (its `JPOOL_IMAGE`
/// pool) comes from C `malloc`, which this Rust global allocator does not
/// see. With a fresh buffer per frame it was 1; the `image` crate's path
/// (zune-jpeg) made 25 (≈ 295 KB).
const EXPECTED_DECODE_ALLOCS: u64 = 0;
/// fast_image_resize computes the filter coefficients of every resize call
/// anew (small vectors, ≈ 30 KB in all); it has no API to keep them. Its
/// aarch64 (NEON) path makes one more than the x86 one.
const EXPECTED_PREPROCESS_ALLOCS: u64 = if cfg!(target_arch = "aarch64") {
    455
} else {
    454
};
/// tract 0.23's `SimpleState::run`: each node of the plan allocates its
/// output tensor (freed when the last consumer ran) for
/// EfficientNet-Lite0. tract has no arena or output reuse for this.
/// With the depthwise convolutions channel-last (our x86 kernel,
/// src/model/kernels/depthwise_x86.rs, or tract's own on ARM), tract's
/// `eval_c_inner` also collects each padding zone's taps into two small
/// vectors per call (heap-allocated above 4 taps): 686 → 1109. Folding the
/// int8 weights' dequantisation at load (src/model/fold_dequantize.rs)
/// removed the classifier's per-frame cast: 1109 → 1100 (≈ 41 MB a frame).
/// On AVX-512 CPUs our fused depthwise + ReLU6 operator
/// (src/model/kernels/depthwise_fused.rs) replaces tract's depthwise nodes and their
/// per-call tap vectors, and one output tensor per pair (block 0's also
/// takes in the stem's clamp): 1100 → 365. That operator now keeps its
/// output tensor and scratch plane from frame to frame (`OutputReuse`) and
/// takes in the reshape after it: 365 → 316 (≈ 32 MB a frame, from 41).
/// What is left, by tract operator (printed by this test): the pointwise
/// convolutions' input packing (`OptMatMulPack`, 33 nodes) 198, their
/// matrix products (`OptMatMul`, 34) 84, reshapes (`IntoShape`, 18) 18,
/// the stem's `Pad` 5 and `LazyIm2col` 3, the global average pool
/// (`Reduce<Sum>`) 6, its scale 1, the executor 1.
const MEASURED_INFERENCE_ALLOCS: u64 = 316;
/// Upper bound for other CPUs' kernel choices.
const MAX_INFERENCE_ALLOCS: u64 = 1500;
