//! Shutdown signalling: SIGTERM/SIGINT set a flag that the pipeline checks
//! between frames and that interrupts pacing sleeps, so the daemon finishes
//! the current frame and exits cleanly within a bounded time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A cloneable shutdown flag.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
}

impl Shutdown {
    /// A flag that is not yet triggered.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Installs SIGTERM/SIGINT (and SIGHUP, until reload is implemented) handlers that trigger this flag.
    ///
    /// # Errors
    /// When a handler is already installed in this process.
    pub fn install_signal_handlers(&self) -> Result<(), ctrlc::Error> {
        let s = self.clone();
        ctrlc::set_handler(move || {
            if s.is_triggered() {
                // Second signal: the user insists.
                std::process::exit(130);
            }
            s.trigger();
        })
    }

    /// Requests shutdown.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown was requested.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sleeps for `d`, waking early (within 50 ms) on shutdown. Returns
    /// `false` if shutdown was requested.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.is_triggered() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }
}
