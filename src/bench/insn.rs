//! Instruction-count mode of the benchmark (`camtrapd bench --insn-markers`):
//! runs each stage of the frame path on its own for a number of frames and
//! brackets every frame of every stage (and, in a second pass, every node of
//! tract's inference plan) with a *marker*: a system call with a number no
//! kernel uses ([`MARK_SYSCALL`]), which the QEMU TCG plugin
//! `scripts/arm-cost/insnmark.c` sees and turns into the guest instructions
//! executed between the two markers of each region.
//!
//! This is how `scripts/arm-cost.sh` measures the cost per frame of each
//! stage on a Raspberry Pi's cores without one: `qemu-aarch64 -cpu
//! cortex-a72` (Pi 4) or `-cpu cortex-a76` (Pi 5) runs the aarch64 build, and
//! tract picks the kernels that core would run. Instructions are a proxy for
//! cost: exact and repeatable, but blind to caches, memory bandwidth and
//! instruction latency (docs/benchmarks.md, "ARM").
//!
//! Outside the emulator the markers are plain failing system calls (ENOSYS)
//! and cost nothing worth counting; they are only ever issued in this mode.
//! The report printed on stdout ([`Legend`]) names each marker, so that the
//! script can join it with the plugin's counts.

use serde::Serialize;

use super::{jpeg_at, sink_json, yuyv_from_rgb, BenchError};
use crate::decision::{Decision, ModelRef, Overrides, Policy};
use crate::decode::{decode_bytes_for, decode_bytes_into, decode_file, DecodeLimits, DecodeTarget};
use crate::model::{Model, NodePhase};
use crate::motion::{MotionConfig, MotionGate};
use crate::preprocess::Preprocessor;
use crate::source::v4l2::yuyv::yuyv_to_rgb_region;

/// The system call number of a marker: above every number Linux assigns on
/// aarch64, armv7 (below its private 0x0f0000 range) and x86_64, so a kernel
/// answers ENOSYS and qemu-user passes it to plugins untouched.
pub const MARK_SYSCALL: libc::c_long = 0xCA77;

/// First marker id of the per-node pass: node `step` of the plan is
/// `NODE_MARK_BASE + step`.
pub const NODE_MARK_BASE: u32 = 1000;

/// Issues marker `id`: `end = false` opens the region, `end = true` closes it.
#[inline(never)]
pub fn mark(id: u32, end: bool) {
    // `c_long` is 32 bits on armv7; ids are below 8192 (the plugin ignores
    // larger ones), so the cast never changes the value.
    let id = id as libc::c_long;
    // SAFETY: a system call with integer arguments and no pointers; every
    // kernel refuses the number with ENOSYS and changes nothing.
    unsafe {
        libc::syscall(MARK_SYSCALL, id, libc::c_long::from(end));
    }
}

/// One marked region.
#[derive(Debug, Clone, Serialize)]
pub struct Marker {
    /// Marker id (the plugin's `mark ID …` lines).
    pub id: u32,
    /// `stage` (one frame of a frame-path stage per region) or `node` (one
    /// node of tract's inference plan per region).
    pub kind: &'static str,
    /// Stage name, or the node's name in the plan.
    pub name: String,
    /// For nodes: tract's operator name (e.g. `Conv`, `OptMatMul`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// For nodes: tract's description of the node (kernel, shapes).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub info: String,
}

/// What `--insn-markers` prints on stdout (JSON): the markers it issued and
/// what the counts are divided by.
#[derive(Debug, Clone, Serialize)]
pub struct Legend {
    /// Model name.
    pub model: String,
    /// Multiply-accumulates of one inference ([`Model::macs`]).
    pub macs: u64,
    /// Input tensor shape and datum type, e.g. `[1, 3, 224, 224] f32`.
    pub input: String,
    /// Marked frames per stage (each stage region is one frame).
    pub frames: usize,
    /// Frames of the per-node pass (each node region appears once per frame).
    pub node_frames: usize,
    /// Every marker issued.
    pub markers: Vec<Marker>,
}

/// Stage markers, in frame-path order.
const STAGES: [&str; 8] = [
    "decode 640x480",
    "yuyv→rgb 640x480",
    "motion gate 640x480 (JPEG luma at 1/4)",
    "motion gate 640x480 (YUYV, Y in place)",
    "resize+normalise",
    "inference",
    "decision",
    "sink (JSON)",
];

fn stage_id(name: &str) -> u32 {
    STAGES
        .iter()
        .position(|s| *s == name)
        .map_or(0, |i| i as u32 + 1)
}

/// Runs `f` `warmup` times unmarked, then `frames` times, each run
/// bracketed by marker `id`.
fn marked<E>(
    id: u32,
    warmup: usize,
    frames: usize,
    mut f: impl FnMut() -> Result<(), E>,
) -> Result<(), E> {
    for i in 0..warmup + frames {
        let on = i >= warmup;
        if on {
            mark(id, false);
        }
        let r = f();
        if on {
            mark(id, true);
        }
        r?;
    }
    Ok(())
}

/// Runs every stage `frames` times (after `warmup` unmarked runs) on a
/// 640×480 JPEG made from the first decodable image of `files`, as the
/// daemon runs it, then inference again with one marker per plan node.
///
/// # Errors
/// The model failing to load or run; [`BenchError::NoImages`] when no file
/// decodes.
pub fn run(o: &super::Options) -> Result<Legend, BenchError> {
    let (frames, warmup) = (o.frames.max(1), o.warmup);
    let limits = DecodeLimits::default();
    let mut model = Model::load(&o.model_dir)?;
    let image = o
        .files
        .iter()
        .find_map(|f| decode_file(f, &limits).ok())
        .ok_or(BenchError::NoImages)?;
    let vga = jpeg_at(&image, 640, 480)?;
    let mut pre = Preprocessor::new(model.manifest());
    let target = DecodeTarget::model(pre.geometry());
    let overrides = Overrides::default();
    let policy = Policy::new(model.manifest(), &overrides)?;
    let mref = ModelRef {
        name: model.manifest().name.clone(),
        sha256: model.sha256()[..12].to_string(),
    };
    let mut decision = Decision::default();

    // Decode as the daemon decodes for this model (DCT scaling, crop), into
    // the previous frame's buffer.
    let mut spare = Vec::new();
    marked(stage_id("decode 640x480"), warmup, frames, || {
        let d = decode_bytes_into(&vga, &limits, &target, std::mem::take(&mut spare))
            .map_err(|e| BenchError::Io(e.to_string()))?;
        spare = d.image.into_raw();
        Ok::<_, BenchError>(())
    })?;
    let whole = DecodeTarget {
        crop: false,
        ..target
    };
    let vga_img = decode_bytes_for(&vga, &limits, &whole)
        .map_err(|e| BenchError::Io(e.to_string()))?
        .image;
    let yuyv = yuyv_from_rgb(&vga_img);
    let region = if crate::decode::crop_enabled() {
        pre.geometry().read_region(640, 480, 0)
    } else {
        None
    };
    let mut spare_rgb = Vec::new();
    marked(stage_id("yuyv→rgb 640x480"), warmup, frames, || {
        let (img, _) = yuyv_to_rgb_region(
            &yuyv,
            640,
            480,
            640 * 2,
            region,
            std::mem::take(&mut spare_rgb),
        )
        .map_err(|e| BenchError::Io(e.to_string()))?;
        spare_rgb = img.into_raw();
        Ok::<_, BenchError>(())
    })?;
    let cfg = MotionConfig {
        enabled: true,
        ..MotionConfig::default()
    };
    let t0 = chrono::Utc::now();
    let (mut gate, mut luma, mut i) = (MotionGate::new(&cfg), Vec::new(), 0i64);
    marked(
        stage_id("motion gate 640x480 (JPEG luma at 1/4)"),
        warmup,
        frames,
        || {
            i += 1;
            let now = t0 + chrono::Duration::milliseconds(i);
            std::hint::black_box(gate.check_jpeg(&vga, &limits, &mut luma, now));
            Ok::<_, BenchError>(())
        },
    )?;
    let (mut gate, mut i) = (MotionGate::new(&cfg), 0i64);
    marked(
        stage_id("motion gate 640x480 (YUYV, Y in place)"),
        warmup,
        frames,
        || {
            i += 1;
            let now = t0 + chrono::Duration::milliseconds(i);
            let l = crate::motion::Luma {
                data: &yuyv,
                width: 640,
                height: 480,
                stride: 640 * 2,
                step: 2,
                limited_range: true,
            };
            std::hint::black_box(gate.check_luma(&l, 640, 480, now));
            Ok::<_, BenchError>(())
        },
    )?;
    // Resize + normalise of the decoded (cropped, scaled) frame into the
    // model's input, as the daemon feeds it.
    let d = decode_bytes_for(&vga, &limits, &target).map_err(|e| BenchError::Io(e.to_string()))?;
    marked(stage_id("resize+normalise"), warmup, frames, || {
        pre.run_window(&d.image, d.window, model.input_mut())
    })?;
    marked(stage_id("inference"), warmup, frames, || model.run())?;
    marked(stage_id("decision"), warmup, frames, || {
        model
            .scores_output()
            .map(|s| policy.decide(s, None, &mut decision))
    })?;
    let mut buf = Vec::with_capacity(2048);
    marked(stage_id("sink (JSON)"), warmup, frames, || {
        sink_json(&policy, &decision, &mref, &mut buf);
        std::hint::black_box(&buf);
        Ok::<_, BenchError>(())
    })?;

    // Inference again, one marker per node of the plan.
    let nodes = model.plan_nodes();
    let node_frames = frames.min(3);
    for _ in 0..node_frames {
        model.run_observed(|step, phase| {
            mark(NODE_MARK_BASE + step as u32, phase == NodePhase::End)
        })?;
    }

    let mut markers: Vec<Marker> = STAGES
        .iter()
        .map(|s| Marker {
            id: stage_id(s),
            kind: "stage",
            name: (*s).to_string(),
            op: String::new(),
            info: String::new(),
        })
        .collect();
    markers.extend(nodes.into_iter().enumerate().map(|(step, n)| Marker {
        id: NODE_MARK_BASE + step as u32,
        kind: "node",
        name: n.node,
        op: n.op,
        info: n.info,
    }));
    let shape = model.input_shape();
    Ok(Legend {
        model: model.manifest().name.clone(),
        macs: model.macs(),
        input: format!("{shape:?} {:?}", model.manifest().input.datum_type),
        frames,
        node_frames,
        markers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_ids_are_distinct_from_node_ids_and_start_at_one() {
        let ids: Vec<u32> = STAGES.iter().map(|s| stage_id(s)).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(ids.iter().all(|&i| i < NODE_MARK_BASE));
        assert_eq!(stage_id("no such stage"), 0);
    }

    #[test]
    fn a_marker_outside_the_emulator_is_a_refused_system_call() {
        // The kernel refuses the number; nothing else happens.
        mark(1, false);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOSYS)
        );
    }
}
