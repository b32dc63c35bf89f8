//! `camtrapd bench`: per-stage latency on real images (see [`crate::bench`]).

use std::io::Write;
use std::path::PathBuf;

/// Arguments of `camtrapd bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image files, folders or glob patterns to benchmark on.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Model bundle folder (default: the bundled model).
    #[arg(short, long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// A second model bundle whose inference time is reported as a ratio (e.g. the fp32 model).
    #[arg(long, value_name = "DIR")]
    pub reference_model: Option<PathBuf>,
    /// Frames to measure.
    #[arg(short = 'n', long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub frames: u32,
    /// Frames run before measuring.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(0..=10_000))]
    pub warmup: u16,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Pipelines (one thread and model each) for the all-cores throughput;
    /// default: the number of CPUs; 1 skips it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Write the first preprocessed input tensor as .npy (f32, [1, N]), for
    /// feeding onnxruntime the same input (scripts/bench_onnxruntime.py).
    #[arg(long, value_name = "FILE")]
    pub dump_input: Option<PathBuf>,
    /// Also time each node of the inference plan and print the time per
    /// operator (e.g. DepthWiseConv, OptMatMul) and the slowest nodes.
    #[arg(long)]
    pub profile: bool,
    /// Instead of timing: run each stage alone for -n frames, bracketing
    /// every frame with markers that the QEMU plugin of scripts/arm-cost.sh
    /// counts instructions between (ARM cost without an ARM machine), then
    /// print the markers as JSON. Outside qemu the markers do nothing.
    #[arg(long, conflicts_with_all = ["reference_model", "json", "threads", "dump_input", "profile"])]
    pub insn_markers: bool,
}

pub(crate) fn bench(args: &Args) -> anyhow::Result<()> {
    let dir = args.model.clone().unwrap_or_else(super::default_model_dir);
    let list = files_list(&args.paths)?;
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    if args.insn_markers {
        let legend = crate::bench::insn::run(&crate::bench::Options {
            model_dir: dir,
            reference_model: None,
            files: list,
            frames: args.frames as usize,
            warmup: usize::from(args.warmup),
            threads: 1,
            dump_input: None,
            profile: false,
        })?;
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&legend)?
        )?;
        return Ok(());
    }
    let report = crate::bench::run(&crate::bench::Options {
        model_dir: dir,
        reference_model: args.reference_model.clone(),
        files: list,
        frames: args.frames as usize,
        warmup: usize::from(args.warmup),
        threads,
        dump_input: args.dump_input.clone(),
        profile: args.profile,
    })?;
    if args.json {
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&report)?
        )?;
    } else {
        write!(std::io::stdout().lock(), "{report}")?;
    }
    Ok(())
}

fn files_list(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        out.extend(crate::source::files::list_images(p)?);
    }
    Ok(out)
}
