//! The systemd watchdog is fed by pipeline progress, not by a timer: when
//! the source stalls (stops delivering without closing, like a hung camera),
//! `WATCHDOG=1` stops, so systemd restarts the service. Runs the real
//! pipeline and model; the stalled source is the only stand-in. In its own
//! test binary because it sets NOTIFY_SOCKET/WATCHDOG_USEC for the process.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camtrapd::decision::Overrides;
use camtrapd::decode::{decode_file, DecodeLimits, Window};
use camtrapd::frame::Frame;
use camtrapd::model::Model;
use camtrapd::pipeline::{self, Pipeline};
use camtrapd::shutdown::Shutdown;
use camtrapd::source::{FrameSource, SourceEvent};

/// Delivers real frames at 10 fps, then blocks (without closing) until released.
struct Stalling {
    frames: Vec<Frame>,
    next: usize,
    release: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
}

impl FrameSource for Stalling {
    fn next_event(&mut self) -> SourceEvent {
        if let Some(f) = self.frames.get(self.next) {
            self.next += 1;
            std::thread::sleep(Duration::from_millis(100));
            return SourceEvent::Frame(f.clone());
        }
        self.stalled.store(true, Ordering::SeqCst);
        while !self.release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        SourceEvent::End
    }
    fn describe(&self) -> String {
        "stalling test source".into()
    }
}

#[test]
fn watchdog_pings_follow_progress_and_stop_when_the_source_stalls() {
    let tmp = tempfile::tempdir().unwrap();
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let got: Arc<Mutex<Vec<(Instant, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            let s = String::from_utf8_lossy(&buf[..n]).to_string();
            g.lock().unwrap().push((Instant::now(), s));
        }
    });
    // Only this test binary's process sees these.
    std::env::set_var("NOTIFY_SOCKET", &sock_path);
    std::env::set_var("WATCHDOG_USEC", "200000");
    let shutdown = Shutdown::new();
    assert_eq!(
        shutdown.notifier().watchdog(),
        Some(Duration::from_millis(200))
    );

    let photos = camtrapd::source::files::list_images(&common::sample_photos()).unwrap();
    let frames: Vec<Frame> = (1..=10)
        .zip(&photos)
        .map(|(i, p)| {
            let image = decode_file(p, &DecodeLimits::default()).unwrap();
            Frame {
                seq: i,
                source_id: p.display().to_string(),
                captured_at: chrono::Utc::now(),
                window: Window::whole(&image),
                image,
                decode_ms: 0.0,
            }
        })
        .collect();
    let model = Model::load(&common::default_model()).unwrap();
    let mut p = Pipeline::new(model, &Overrides::default(), Vec::new(), "wd".into()).unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let stalled = Arc::new(AtomicBool::new(false));
    let mut src = Stalling {
        frames,
        next: 0,
        release: release.clone(),
        stalled: stalled.clone(),
    };
    let sd = shutdown.clone();
    let run = std::thread::spawn(move || {
        pipeline::run(&mut p, &mut src, &sd, Duration::ZERO, &mut |_| {}).unwrap();
        p.stats().classified
    });
    let end = Instant::now() + Duration::from_secs(60);
    while !stalled.load(Ordering::SeqCst) {
        assert!(Instant::now() < end, "the source never stalled");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stall_start = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    let pings: Vec<Instant> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, s)| s.contains("WATCHDOG=1"))
        .map(|(t, _)| *t)
        .collect();
    // While frames flowed (10 frames, ~1.5 s), at most one ping per 50 ms.
    let before: Vec<&Instant> = pings.iter().filter(|t| **t < stall_start).collect();
    assert!(
        before.len() >= 5,
        "only {} pings while frames flowed",
        before.len()
    );
    // Stalled for 1 s (five watchdog intervals): not a single ping.
    let during = pings.iter().filter(|t| **t >= stall_start).count();
    assert_eq!(during, 0, "WATCHDOG=1 must stop when the pipeline stalls");
    release.store(true, Ordering::SeqCst);
    assert_eq!(run.join().unwrap(), 10);
    std::thread::sleep(Duration::from_millis(100));
    assert!(got
        .lock()
        .unwrap()
        .iter()
        .any(|(_, s)| s.contains("STOPPING=1")));
}
