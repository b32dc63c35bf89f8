//! The capture thread: opens the camera, streams mmap buffers, and keeps
//! only the newest frame in a single slot for the pipeline (the backlog is
//! dropped and counted, so a detection is never seconds old). Waits for a
//! frame with `poll` and a timeout, never a blocking read: no frame within
//! `timeout_secs`, or ENODEV (unplugged), closes the device, reports the
//! camera offline and reopens it with back-off until it is back.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use v4l::buffer::Flags;
use v4l::io::traits::CaptureStream;

use super::config::V4l2Config;
use super::negotiate::{self, Negotiated};
use crate::stats::CameraStats;

/// The newest captured frame, not yet taken by the pipeline.
#[derive(Debug)]
pub struct Captured {
    /// The buffer's bytes (`bytesused` of them).
    pub bytes: Vec<u8>,
    /// The format they are in.
    pub format: Negotiated,
    /// The driver's frame sequence number.
    pub sequence: u32,
    /// When it was dequeued, UTC.
    pub captured_at: DateTime<Utc>,
    /// When it was dequeued, monotonic.
    pub at: Instant,
}

/// A change of the camera's state, for the log and the sinks.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    /// Whether frames arrive.
    pub online: bool,
    /// Why, e.g. "YUYV 640x480 at 30 fps" or "no frame within 5 s".
    pub detail: String,
}

/// State shared by the capture thread and the pipeline side.
#[derive(Debug)]
pub struct State {
    /// The newest frame, if not yet taken.
    pub latest: Option<Captured>,
    /// A buffer to reuse for the next frame.
    pub spare: Vec<u8>,
    /// Online/offline changes not yet reported.
    pub events: VecDeque<StatusChange>,
    /// The counters.
    pub stats: CameraStats,
    /// Frames captured at or after this instant are due for classification:
    /// replacing one of those unclassified counts as a drop.
    pub due: Instant,
    /// Last sign of life of the capture thread (a frame, a poll timeout, a
    /// reopen attempt).
    pub heartbeat: Instant,
    /// Set by the pipeline side to end the thread.
    pub stop: bool,
}

/// The slot and its condition variable.
#[derive(Debug)]
pub struct Shared {
    /// The state.
    pub state: Mutex<State>,
    /// Signalled on a new frame or status change.
    pub cond: Condvar,
}

impl Shared {
    /// Fresh state.
    pub fn new() -> Shared {
        let now = Instant::now();
        Shared {
            state: Mutex::new(State {
                latest: None,
                spare: Vec::new(),
                events: VecDeque::new(),
                stats: CameraStats::default(),
                due: now,
                heartbeat: now,
                stop: false,
            }),
            cond: Condvar::new(),
        }
    }

    /// Locks the state (a poisoned lock is still usable: the state is plain counters and buffers).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new()
    }
}

/// Why the camera could not be opened or configured.
#[derive(Debug)]
pub enum OpenError {
    /// The device node could not be opened.
    Open(io::Error),
    /// Enumeration, format negotiation or buffer setup failed.
    Setup(String),
    /// No format fits the config (the message lists what the camera offers).
    NoFit(String),
}

impl OpenError {
    /// Whether the camera is simply not there (ENOENT: no device node;
    /// ENODEV/ENXIO: a node without a camera behind it), as opposed to one
    /// that is there but unusable. An absent camera may still appear.
    pub fn is_absent(&self) -> bool {
        matches!(self, OpenError::Open(e)
            if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV | libc::ENXIO)))
    }

    /// A one-line description.
    pub fn describe(&self, device: &str) -> String {
        match self {
            OpenError::Open(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                permission_message(device)
            }
            OpenError::Open(e) if e.raw_os_error() == Some(libc::ENOENT) => format!(
                "{device}: no such device (unplugged? `camtrapd devices` lists the cameras)"
            ),
            OpenError::Open(e) if matches!(e.raw_os_error(), Some(libc::ENODEV | libc::ENXIO)) => {
                format!("{device}: the device node exists but no camera answers (unplugged, or its driver is not loaded): {e}")
            }
            OpenError::Open(e) => format!("{device}: cannot open: {e}"),
            OpenError::Setup(m) | OpenError::NoFit(m) => format!("{device}: {m}"),
        }
    }
}

/// Runs a call into the `v4l` crate, turning a panic (it `unwrap`s driver
/// strings as UTF-8 and some enum values) into an error: a camera with an
/// odd card name must cost a message, not the daemon.
pub fn guarded<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(io::Error::other(
            "the driver returned data the v4l crate cannot read",
        ))
    })
}

/// Opens the device and negotiates the format.
///
/// # Errors
/// [`OpenError`].
pub fn open(cfg: &V4l2Config) -> Result<(v4l::Device, Negotiated), OpenError> {
    let dev = v4l::Device::with_path(&cfg.device).map_err(OpenError::Open)?;
    let caps = guarded(|| dev.query_caps())
        .map_err(|e| OpenError::Setup(format!("not a V4L2 device (VIDIOC_QUERYCAP: {e})")))?;
    let cap = v4l::capability::Flags::VIDEO_CAPTURE;
    if !caps.capabilities.contains(cap) {
        return Err(OpenError::NoFit(format!(
            "{} ({}) is not a video capture device (a metadata or output node?); `camtrapd devices` lists the capture devices",
            caps.card, caps.driver
        )));
    }
    if !caps
        .capabilities
        .contains(v4l::capability::Flags::STREAMING)
    {
        return Err(OpenError::NoFit(format!(
            "{} ({}) does not support streaming I/O (mmap), which camtrapd needs",
            caps.card, caps.driver
        )));
    }
    let offered = guarded(|| negotiate::enumerate(&dev))
        .map_err(|e| OpenError::Setup(format!("listing formats (VIDIOC_ENUM_FMT): {e}")))?;
    let (req, note) = negotiate::choose(cfg, &offered).map_err(OpenError::NoFit)?;
    if let Some(n) = note {
        log::warn!("{}: {n}", cfg.device);
    }
    let neg = negotiate::apply(&dev, req, cfg.fps).map_err(OpenError::Setup)?;
    if (neg.width, neg.height, neg.fourcc) != (req.width, req.height, req.fourcc) {
        log::warn!(
            "{}: asked for {} {}x{}, the driver set {neg}; using that",
            cfg.device,
            negotiate::fourcc_str(&req.fourcc),
            req.width,
            req.height
        );
    }
    Ok((dev, neg))
}

/// The message for EACCES on the device: who we run as, our groups, the
/// device's group, and the fix.
pub fn permission_message(device: &str) -> String {
    use nix::unistd::{getegid, geteuid, getgroups, Group, User};
    let uid = geteuid();
    let user = User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name);
    let group_name = |g: nix::unistd::Gid| {
        Group::from_gid(g)
            .ok()
            .flatten()
            .map_or_else(|| g.to_string(), |g| g.name)
    };
    let mut gids = getgroups().unwrap_or_default();
    gids.insert(0, getegid());
    gids.dedup();
    let groups: Vec<String> = gids.into_iter().map(group_name).collect();
    let dev_group = nix::sys::stat::stat(device)
        .ok()
        .map(|st| group_name(nix::unistd::Gid::from_raw(st.st_gid)));
    let owner = dev_group.as_deref().unwrap_or("video");
    format!(
        "{device}: permission denied: user {user} (groups: {}) may not open it; the device belongs to group {owner}. \
Fix: `sudo usermod -aG {owner} {user}` and log in again, or in the systemd unit `SupplementaryGroups={owner}` (systemd/camtrapd.service has it)",
        groups.join(", ")
    )
}

/// The capture thread's body: streams until `stop`, reopening as needed.
/// `first` is the device opened (and checked) at start-up.
pub fn run(cfg: V4l2Config, shared: Arc<Shared>, first: (v4l::Device, Negotiated)) {
    let timeout = cfg.timeout();
    let max_backoff = cfg.reconnect_max();
    let mut backoff = Duration::from_secs(1);
    let mut opened = Some(first);
    // None: not known yet (start-up); reported on every change.
    let mut online: Option<bool> = None;
    let mut ever_offline = false;
    let set_status = |online: &mut Option<bool>, now_online: bool, detail: String| {
        if *online != Some(now_online) {
            *online = Some(now_online);
            let mut st = shared.lock();
            st.stats.online = now_online;
            st.events.push_back(StatusChange {
                online: now_online,
                detail,
            });
            drop(st);
            shared.cond.notify_all();
        }
    };
    loop {
        if shared.lock().stop {
            return;
        }
        let (dev, neg) = match opened.take() {
            Some(d) => d,
            None => match open(&cfg) {
                Ok(d) => d,
                Err(e) => {
                    let msg = e.describe(&cfg.device);
                    // The pipeline logs the change; repeated failures only here.
                    log::debug!("reopening failed: {msg}");
                    set_status(&mut online, false, msg);
                    ever_offline = true;
                    if !wait(&shared, backoff) {
                        return;
                    }
                    backoff = (backoff * 2).min(max_backoff);
                    continue;
                }
            },
        };
        let outcome = stream(&cfg, &shared, &dev, neg, timeout, |detail| {
            if ever_offline {
                shared.lock().stats.reconnects += 1;
            }
            log::debug!("{}: streaming {detail}", cfg.device);
            set_status(&mut online, true, detail);
            backoff = Duration::from_secs(1);
        });
        drop(dev);
        match outcome {
            Ok(()) => return,
            Err(msg) => {
                log::debug!("{}: {msg}; closing it and reopening", cfg.device);
                set_status(&mut online, false, msg);
                ever_offline = true;
                if !wait(&shared, backoff) {
                    return;
                }
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

/// Sleeps `d` unless stopped first; keeps the heartbeat fresh. Returns
/// `false` if stopped.
fn wait(shared: &Shared, d: Duration) -> bool {
    let end = Instant::now() + d;
    let mut st = shared.lock();
    loop {
        st.heartbeat = Instant::now();
        if st.stop {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        st = shared
            .cond
            .wait_timeout(st, (end - now).min(Duration::from_millis(500)))
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

/// Streams from an open device until stopped (`Ok`) or until it fails
/// (`Err` with the reason). `on_first` runs at the first frame.
fn stream(
    cfg: &V4l2Config,
    shared: &Shared,
    dev: &v4l::Device,
    neg: Negotiated,
    timeout: Duration,
    mut on_first: impl FnMut(String),
) -> Result<(), String> {
    let mut s =
        v4l::io::mmap::Stream::with_buffers(dev, v4l::buffer::Type::VideoCapture, cfg.buffers)
            .map_err(|e| {
                format!(
                    "allocating {} mmap buffers (VIDIOC_REQBUFS): {e}",
                    cfg.buffers
                )
            })?;
    s.set_timeout(timeout);
    let mut warmup = cfg.warmup_frames;
    let mut first = true;
    let result = loop {
        if shared.lock().stop {
            break Ok(());
        }
        let (buf, meta) = match s.next() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                break Err(format!("no frame within {:.1} s", timeout.as_secs_f64()))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                break Err(format!("the device is gone (unplugged?): {e}"))
            }
            Err(e) => break Err(format!("capture failed: {e}")),
        };
        let now = Instant::now();
        if first {
            first = false;
            on_first(neg.to_string());
        }
        let used = (meta.bytesused as usize).min(buf.len());
        let mut st = shared.lock();
        st.heartbeat = now;
        st.stats.captured += 1;
        if meta.flags.contains(Flags::ERROR) || used == 0 {
            // The driver says the buffer is corrupt (or it is empty): drop it.
            st.stats.corrupt += 1;
            continue;
        }
        if warmup > 0 {
            warmup -= 1;
            st.stats.warmup_skipped += 1;
            continue;
        }
        let mut bytes = std::mem::take(&mut st.spare);
        bytes.clear();
        bytes.extend_from_slice(&buf[..used]);
        let frame = Captured {
            bytes,
            format: neg,
            sequence: meta.sequence,
            captured_at: Utc::now(),
            at: now,
        };
        if let Some(old) = st.latest.replace(frame) {
            if old.at >= st.due {
                // It was due for classification, but the pipeline was busy.
                st.stats.dropped += 1;
            }
            st.spare = old.bytes;
        }
        drop(st);
        shared.cond.notify_all();
    };
    // STREAMOFF on drop; v4l panics if that fails with anything but ENODEV:
    // it must cost a reopen, not the daemon.
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(s))).is_err() {
        log::warn!("{}: stopping the stream failed", cfg.device);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(cmd: &str, arg: &[&str]) -> String {
        let o = std::process::Command::new(cmd).args(arg).output().unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn permission_message_names_user_groups_device_group_and_fix() {
        // /dev/null stands in for a camera node: the message reads its group.
        let m = permission_message("/dev/null");
        let user = sh("id", &["-un"]);
        let group = sh("stat", &["-c", "%G", "/dev/null"]);
        let first_group = sh("id", &["-gn"]);
        assert!(m.starts_with("/dev/null: permission denied: "), "{m}");
        assert!(
            m.contains(&format!("user {user} (groups: {first_group}")),
            "{m}"
        );
        assert!(m.contains(&format!("belongs to group {group}")), "{m}");
        assert!(
            m.contains(&format!("sudo usermod -aG {group} {user}")),
            "{m}"
        );
        assert!(m.contains(&format!("SupplementaryGroups={group}")), "{m}");
    }

    #[test]
    fn open_errors_name_the_device_and_what_to_do() {
        let cfg = V4l2Config {
            device: "/nonexistent/video9".into(),
            ..V4l2Config::default()
        };
        let Err(e) = open(&cfg) else {
            panic!("opened a device that does not exist")
        };
        assert_eq!(
            e.describe(&cfg.device),
            "/nonexistent/video9: no such device (unplugged? `camtrapd devices` lists the cameras)"
        );
        // A file that is not a V4L2 device.
        let cfg = V4l2Config {
            device: "/dev/null".into(),
            ..V4l2Config::default()
        };
        let Err(e) = open(&cfg) else {
            panic!("opened /dev/null as a camera")
        };
        let e = e.describe("/dev/null");
        assert!(
            e.starts_with("/dev/null: not a V4L2 device (VIDIOC_QUERYCAP: "),
            "{e}"
        );
    }
}
