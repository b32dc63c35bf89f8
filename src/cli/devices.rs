//! `camtrapd devices [DEVICE...]`: the V4L2 cameras on this machine with
//! their formats, frame sizes and frame rates (like `v4l2-ctl
//! --list-formats-ext`), and which `device` path to put in the config.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::exit::CodedError;
use crate::source::v4l2::{capture, negotiate};

/// `/dev/video*` in numeric order.
fn video_nodes() -> Vec<PathBuf> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    let n = name.strip_prefix("video")?.parse().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// Stable links (`/dev/v4l/by-id/*`, `/dev/v4l/by-path/*`) pointing at `node`.
fn stable_links(node: &Path) -> Vec<PathBuf> {
    let Ok(target) = node.canonicalize() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for dir in ["/dev/v4l/by-id", "/dev/v4l/by-path"] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut links: Vec<PathBuf> = rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.canonicalize().ok().as_deref() == Some(target.as_path()))
                .collect();
            links.sort();
            out.extend(links);
        }
    }
    out
}

pub(crate) fn devices(paths: &[PathBuf]) -> anyhow::Result<()> {
    let nodes = if paths.is_empty() {
        video_nodes()
    } else {
        paths.to_vec()
    };
    if nodes.is_empty() {
        return Err(CodedError(
            crate::exit::NOINPUT,
            "no V4L2 devices (/dev/video*): is the camera plugged in, and its driver loaded (`lsmod`, `dmesg`)?".into(),
        )
        .into());
    }
    let mut out = std::io::stdout().lock();
    let mut cameras = 0;
    for node in &nodes {
        let name = node.display().to_string();
        let dev = match v4l::Device::with_path(node) {
            Ok(d) => d,
            Err(e) => {
                writeln!(out, "{}\n", capture::OpenError::Open(e).describe(&name))?;
                continue;
            }
        };
        let caps = match capture::guarded(|| dev.query_caps()) {
            Ok(c) => c,
            Err(e) => {
                writeln!(out, "{name}: not a V4L2 device (VIDIOC_QUERYCAP: {e})\n")?;
                continue;
            }
        };
        let capture = caps
            .capabilities
            .contains(v4l::capability::Flags::VIDEO_CAPTURE);
        writeln!(
            out,
            "{name}: {} (driver {}, bus {})",
            caps.card, caps.driver, caps.bus
        )?;
        for l in stable_links(node) {
            writeln!(out, "  also: {}", l.display())?;
        }
        if !capture {
            writeln!(
                out,
                "  not a video capture node (metadata or output); not usable as a camera\n"
            )?;
            continue;
        }
        cameras += 1;
        match capture::guarded(|| negotiate::enumerate(&dev)) {
            Ok(modes) => write!(out, "{}", negotiate::list(&modes))?,
            Err(e) => writeln!(out, "  listing formats failed: {e}")?,
        }
        writeln!(out)?;
    }
    if cameras == 0 {
        return Err(CodedError(
            crate::exit::NOINPUT,
            "no video capture device among the devices above".into(),
        )
        .into());
    }
    writeln!(
        out,
        "Use a device in [source]: kind = \"v4l2\", device = \"...\" (an /dev/v4l/by-id path survives reboots and replugging); format \"MJPG\" or \"YUYV\" with one of the sizes listed."
    )?;
    Ok(())
}
