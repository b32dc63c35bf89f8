//! The `camtrapd` command line (clap). Each subcommand lives in its own
//! module; this one parses arguments, sets up logging and maps errors to
//! exit codes (see [`crate::exit`]).

mod bank;
mod bench;
mod calibrate;
mod check_config;
mod classify;
mod devices;
mod eval;
mod labels;
mod run;
mod snapshot;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::config::ConfigError;
use crate::exit;
use crate::model::ModelError;
use crate::source::SourceError;

const ABOUT: &str = "Camera-trap classifier daemon: runs an ONNX image classifier on camera frames or image files \
and reports only confident detections of the labels you care about. Frames that show none of the model's \
labels (empty habitat, other animals) are rejected instead of getting a wrong label.";

/// How a frame is decided, for the help texts.
const DECISION: &str =
    "How a frame is decided: the best label's score must reach its threshold (default 0.5 on the
0..1 softmax score, or the thresholds `camtrapd calibrate` wrote for the chosen score function)
and the label must be one you publish; otherwise the frame is rejected as 'below threshold'
(unsure: often an empty frame or an animal the model does not know) or 'label not published'
(confident, but not a label you asked for).";

const AFTER: &str = "Examples:
  camtrapd classify photos/                        label every image in a folder (table)
  camtrapd classify --json photos/*.jpg            the same as JSON lines
  camtrapd check-config /etc/camtrapd/camtrapd.toml
  camtrapd run --config examples/files.toml        run the daemon
  camtrapd labels                                  list the model's labels
  camtrapd devices                                 list cameras, their formats and sizes
  camtrapd calibrate -c camtrapd.toml --data photos/   thresholds from your labelled photos
  camtrapd eval -c camtrapd.toml --data photos/        how well unknowns are rejected (report.html)
  camtrapd train --data photos/ --out models/mine      a model of your labels that ignores nothing*/ folders

Default model: $CAMTRAPD_MODEL, else models/efficientnet-lite0-imagenet (ImageNet, 1000 labels).
Logging: RUST_LOG=error|warn|info|debug; RUST_LOG=camtrapd=debug logs one line per frame.
Exit codes: 0 ok, 1 runtime failure, 2 bad arguments, 65 no input could be decoded,
66 input missing, 73 MQTT spool (state directory) unusable, 74 output failed,
75 configured camera not there yet (the systemd unit retries), 78 bad configuration
or model bundle. Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads the configuration.
Docs: README.md and docs/ (installed in /usr/share/doc/camtrapd/).";

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "camtrapd", version, about = ABOUT, after_help = format!("{DECISION}\n\n{AFTER}"))]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: read frames from the configured source, classify them,
    /// and publish confident detections to the configured sinks until stopped
    /// (SIGTERM/Ctrl-C) or the source ends.
    Run {
        /// The configuration file (TOML).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Classify image files once and print what the daemon would decide for each.
    #[command(after_help = DECISION)]
    Classify(classify::Args),
    /// Check a configuration file and the model bundle it names, without running.
    CheckConfig {
        /// The configuration file (TOML).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List the labels of a model bundle, one per line in output order (names as
    /// `publish_labels` and `[decision.thresholds]` expect them).
    Labels {
        /// Model bundle folder (default: the bundled EfficientNet-Lite0 ImageNet model).
        #[arg(short, long, value_name = "DIR")]
        model: Option<PathBuf>,
        /// Prefix each label with its output index.
        #[arg(long)]
        index: bool,
    },
    /// Measure per-stage latency (decode, resize+normalise, inference, decision) on image files.
    Bench(bench::Args),
    /// Pick per-label thresholds from your own labelled images: for each label,
    /// the lowest threshold at which its precision reaches the target (unknown
    /// animals and empty frames count as mistakes), kept high enough that the
    /// precision also holds when each species is left out in turn (held-out
    /// calibration). Writes a thresholds file for the config and prints a
    /// per-label table and the estimate for species nobody photographed.
    Calibrate(calibrate::Args),
    /// Measure how well the model rejects what it does not know: closed-set
    /// accuracy, known-vs-unknown AUROC, FPR@95%TPR, AUPR, OSCR for every score
    /// function side by side, and at the configured thresholds per-label
    /// precision/recall and the share of unknown and empty images that would be
    /// published. Writes report.html and report.json.
    Eval(Box<eval::Args>),
    /// Build the kNN embedding bank from training images into a copy of the
    /// model bundle (for score = "knn").
    Bank(bank::Args),
    /// Teach the model your labels and what to ignore: trains a head on the
    /// backbone's embeddings of your label folders and "nothing" folders
    /// (empty frames, other animals), writes a complete model bundle
    /// (one model.onnx, thresholds calibrated on the calib split, kNN bank)
    /// and evaluates it on the test split.
    Train(Box<train::Args>),
    /// List the V4L2 cameras with their pixel formats, frame sizes and frame
    /// rates (like `v4l2-ctl --list-formats-ext`), to choose `[source]` settings.
    Devices {
        /// Device nodes to show (default: every /dev/video*).
        #[arg(value_name = "DEVICE")]
        devices: Vec<PathBuf>,
    },
    /// Save one frame from the configured source (a camera: after its
    /// warm-up, in the negotiated format) as an image file (.png, .jpg,
    /// .bmp), to check framing, exposure and colours.
    Snapshot {
        /// The configuration file (TOML).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// The image file to write; the format follows the extension.
        #[arg(short, long, value_name = "FILE")]
        out: PathBuf,
        /// Frames to skip first (beyond the camera's warm-up).
        #[arg(long, default_value_t = 0)]
        skip: u32,
    },
}

/// Finds the default model bundle: `$CAMTRAPD_MODEL`, then
/// `models/efficientnet-lite0-imagenet` under the current folder, next to the
/// executable's `../share/camtrapd`, and in the source tree it was built from.
pub fn default_model_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("CAMTRAPD_MODEL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let rel = PathBuf::from("models/efficientnet-lite0-imagenet");
    let mut candidates = vec![rel.clone()];
    if let Ok(exe) = std::env::current_exe() {
        if let Some(bin) = exe.parent() {
            candidates.push(bin.join("../share/camtrapd").join(&rel));
        }
    }
    candidates.push(PathBuf::from("/usr/share/camtrapd").join(&rel));
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(&rel));
    candidates
        .iter()
        .find(|p| p.join("model.toml").is_file())
        .cloned()
        .unwrap_or(rel)
}

/// Exit code for an error, by the first recognised error in its chain.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<ConfigError>()
            || cause.is::<ModelError>()
            || cause.is::<crate::model::ManifestError>()
            || cause.is::<crate::decision::PolicyError>()
            || cause.is::<crate::decision::ThresholdsError>()
            || cause.is::<crate::decision::knn::KnnError>()
        {
            return exit::CONFIG;
        }
        if let Some(s) = cause.downcast_ref::<SourceError>() {
            return match s {
                SourceError::Invalid(_) | SourceError::BadPattern(..) => exit::CONFIG,
                SourceError::Unavailable(_) => exit::TEMPFAIL,
                _ => exit::NOINPUT,
            };
        }
        if let Some(d) = cause.downcast_ref::<crate::eval::dataset::DatasetError>() {
            return match d {
                crate::eval::dataset::DatasetError::Manifest { .. } => exit::DATAERR,
                _ => exit::NOINPUT,
            };
        }
        if let Some(c) = cause.downcast_ref::<CodedError>() {
            return c.0;
        }
        match cause.downcast_ref::<crate::sink::SinkError>() {
            Some(crate::sink::SinkError::Config(_)) => return exit::CONFIG,
            Some(crate::sink::SinkError::Spool(_)) => return exit::CANTCREAT,
            _ => {}
        }
        match cause.downcast_ref::<crate::pipeline::PipelineError>() {
            Some(crate::pipeline::PipelineError::SinkClosed { .. }) => return exit::IOERR,
            Some(crate::pipeline::PipelineError::SourceLost(_)) => return exit::NOINPUT,
            Some(crate::pipeline::PipelineError::Policy(_)) => return exit::CONFIG,
            _ => {}
        }
        if cause.is::<std::io::Error>() {
            return exit::IOERR;
        }
        if let Some(b) = cause.downcast_ref::<crate::bench::BenchError>() {
            return match b {
                crate::bench::BenchError::NoImages => exit::DATAERR,
                crate::bench::BenchError::Model(ModelError::Inference(_)) => exit::FAILURE,
                _ => exit::CONFIG,
            };
        }
    }
    exit::FAILURE
}

pub use crate::exit::CodedError;

fn init_logging(default: &str) {
    let env = env_logger::Env::default().default_filter_or(default);
    let _ = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .try_init();
}

/// Entry point of the binary: parses arguments, runs, maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Run { .. } => "info",
        _ => "warn",
    };
    init_logging(default_log);
    // A panic inside an image decoder becomes the frame's one log line.
    crate::decode::quiet_decoder_panics();
    let daemon = matches!(
        cli.command,
        Command::Run { .. } | Command::CheckConfig { .. }
    );
    let result = match cli.command {
        Command::Run { config } => run::run(&config),
        Command::Classify(args) => classify::classify(&args),
        Command::CheckConfig { file } => check_config::check_config(&file),
        Command::Labels { model, index } => labels::labels(model.as_deref(), index),
        Command::Bench(args) => bench::bench(&args),
        Command::Calibrate(args) => calibrate::calibrate(&args),
        Command::Eval(args) => eval::eval(&args),
        Command::Bank(args) => bank::bank(&args),
        Command::Train(args) => train::train(&args),
        Command::Devices { devices } => devices::devices(&devices),
        Command::Snapshot { config, out, skip } => snapshot::snapshot(&config, &out, skip),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            let code = exit_code(&e);
            let broken_pipe = e
                .chain()
                .filter_map(|c| c.downcast_ref::<std::io::Error>())
                .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
            if !broken_pipe {
                // A closed pipe (`camtrapd labels | head`) is not worth a message.
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "error: {e:#}");
                if code == exit::CONFIG && daemon {
                    let _ = writeln!(
                        err,
                        "(exit code 78: fix the file named above; restarting will not help)"
                    );
                }
                if code == exit::TEMPFAIL && daemon {
                    let _ = writeln!(
                        err,
                        "(exit code 75: the camera is not there; under systemd camtrapd is restarted until it appears)"
                    );
                }
            }
            ExitCode::from(code)
        }
    }
}
