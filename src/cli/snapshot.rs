//! `camtrapd snapshot -c FILE -o OUT`: one frame from the configured source
//! (for a camera: after its warm-up frames, in the negotiated format),
//! written as an image file; to check framing, exposure and colours before
//! deploying.

use std::path::Path;

use anyhow::Context;

use crate::config::Config;
use crate::exit::CodedError;
use crate::shutdown::Shutdown;
use crate::source::{self, SourceEvent};

pub(crate) fn snapshot(config: &Path, out: &Path, skip: u32) -> anyhow::Result<()> {
    let config = Config::from_path(config)?;
    let shutdown = Shutdown::new();
    shutdown
        .install_signal_handlers()
        .context("installing signal handlers")?;
    let mut src = source::open(
        &config.source,
        &config.base_dir(),
        config.limits,
        shutdown.clone(),
    )
    .with_context(|| format!("config {}: [source]", config.file.display()))?;
    eprintln!("source: {}", src.describe());
    let mut skipped = 0;
    let frame = loop {
        match src.next_event() {
            SourceEvent::Frame(f) if skipped >= skip => break f,
            SourceEvent::Frame(_) => skipped += 1,
            SourceEvent::Unreadable { source_id, error } => {
                eprintln!("{source_id}: skipped: {error}")
            }
            SourceEvent::Status { online, detail } => eprintln!(
                "camera {}: {detail}",
                if online { "online" } else { "offline" }
            ),
            SourceEvent::Still { .. } => skipped += 1,
            SourceEvent::End | SourceEvent::Lost(_) => {
                return Err(CodedError(
                    crate::exit::NOINPUT,
                    "the source ended before delivering a frame".into(),
                )
                .into())
            }
        }
    };
    if let Some(c) = src.camera_stats() {
        eprintln!(
            "camera: captured {} corrupt {} warm-up skipped {}",
            c.captured, c.corrupt, c.warmup_skipped
        );
    }
    frame
        .image
        .save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: {}x{} from {}",
        out.display(),
        frame.image.width(),
        frame.image.height(),
        frame.source_id
    );
    Ok(())
}
