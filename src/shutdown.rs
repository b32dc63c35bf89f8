//! Signals: SIGTERM/SIGINT set a shutdown flag that the pipeline checks
//! between frames and that interrupts pacing sleeps, so the daemon finishes
//! the current frame and exits cleanly within a bounded time (a second
//! SIGTERM/SIGINT exits at once with code 130). SIGHUP sets a reload flag:
//! the daemon re-reads its config and model between frames. The flags also
//! carry the systemd [`Notifier`], so waiting counts as liveness.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::notify::Notifier;

/// Cloneable shutdown and reload flags.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    notifier: Arc<Notifier>,
}

impl Shutdown {
    /// Flags that are not yet triggered; the notifier reads systemd's environment.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Installs the handlers: SIGTERM/SIGINT request shutdown (the second
    /// one exits with code 130), SIGHUP requests a reload.
    ///
    /// # Errors
    /// When a handler cannot be installed.
    pub fn install_signal_handlers(&self) -> std::io::Result<()> {
        for sig in [SIGTERM, SIGINT] {
            // Registered first, so it sees the flag as the previous signal left it.
            signal_hook::flag::register_conditional_shutdown(sig, 130, self.flag.clone())?;
            signal_hook::flag::register(sig, self.flag.clone())?;
        }
        signal_hook::flag::register(SIGHUP, self.reload.clone())?;
        Ok(())
    }

    /// Requests shutdown.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown was requested.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Requests a reload (as SIGHUP does).
    pub fn request_reload(&self) {
        self.reload.store(true, Ordering::SeqCst);
    }

    /// Whether a reload was requested since the last call (clears the flag).
    pub fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::SeqCst)
    }

    /// The systemd notifier.
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Sleeps for `d`, waking early (within 50 ms) on shutdown or a reload
    /// request; tells the watchdog the daemon is alive while it waits.
    /// Returns `false` if shutdown was requested.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.is_triggered() {
                return false;
            }
            self.notifier.alive();
            let now = Instant::now();
            if now >= end || self.reload.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }
}
