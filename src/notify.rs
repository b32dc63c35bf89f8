//! systemd service notifications (`Type=notify`, see sd_notify(3)):
//! `READY=1` once the model, source and sinks are up, `STATUS=` lines,
//! `RELOADING=1` on SIGHUP, `STOPPING=1` on shutdown, and `WATCHDOG=1`
//! keep-alives for `WatchdogSec=`.
//!
//! Watchdog pings come from pipeline progress (a frame processed or
//! skipped) and from the source's pacing sleep (an idle heartbeat while the
//! source legitimately waits), never from a free-running timer: if the
//! pipeline hangs, the pings stop and systemd restarts the service. Pings are
//! rate-limited to one per quarter of the watchdog interval. Outside systemd
//! (`NOTIFY_SOCKET` unset) every call is a no-op.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `CLOCK_MONOTONIC` in µs, for `MONOTONIC_USEC=` (sd_notify(3)); `None`
/// if the clock cannot be read.
///
/// Not sd-notify 0.5's `NotifyState::monotonic_usec_now`: it multiplies the
/// seconds by 10⁶ in `time_t`, which is 32 bits on 32-bit Raspberry Pi OS
/// (armv7), so once the machine has been up for 2,147 s (36 min) the value
/// overflows: a panic in debug builds, a wrong timestamp in release builds.
fn monotonic_usec() -> Option<i128> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
    Some(usec(i128::from(t.tv_sec()), i128::from(t.tv_nsec())))
}

/// Seconds and nanoseconds to µs, without overflow for any `time_t`.
fn usec(sec: i128, nsec: i128) -> i128 {
    sec * 1_000_000 + nsec / 1_000
}

/// Sends notifications to the service manager.
#[derive(Debug)]
pub struct Notifier {
    /// Minimum time between two `WATCHDOG=1`, in µs (0 = watchdog off).
    every_us: u64,
    /// When the last ping was sent, µs since [`epoch`].
    last_us: AtomicU64,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier::from_env()
    }
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` / `WATCHDOG_USEC` / `WATCHDOG_PID` from the environment.
    pub fn from_env() -> Notifier {
        let every_us = sd_notify::watchdog_enabled()
            .map(|d| (d.as_micros() / 4) as u64)
            .unwrap_or(0);
        Notifier {
            every_us,
            last_us: AtomicU64::new(0),
        }
    }

    /// The watchdog interval systemd asked for, if any.
    pub fn watchdog(&self) -> Option<Duration> {
        (self.every_us > 0).then(|| Duration::from_micros(self.every_us * 4))
    }

    fn send(&self, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(states) {
            log::debug!("sd_notify: {e}");
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
        self.ping_now();
    }

    /// `STATUS=...`.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// `RELOADING=1` (with the monotonic timestamp systemd 253+ wants).
    pub fn reloading(&self) {
        match monotonic_usec() {
            Some(now) => self.send(&[NotifyState::Reloading, NotifyState::MonotonicUsec(now)]),
            None => self.send(&[NotifyState::Reloading]),
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    fn ping_now(&self) {
        if self.every_us > 0 {
            self.last_us
                .store(epoch().elapsed().as_micros() as u64, Ordering::Relaxed);
            self.send(&[NotifyState::Watchdog]);
        }
    }

    /// Progress was made: sends `WATCHDOG=1` if a quarter of the watchdog
    /// interval has passed since the last one. Cheap when the watchdog is off.
    pub fn alive(&self) {
        if self.every_us == 0 {
            return;
        }
        let now = epoch().elapsed().as_micros() as u64;
        let last = self.last_us.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= self.every_us
            && self
                .last_us
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.send(&[NotifyState::Watchdog]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_usec_does_not_overflow_after_36_minutes_of_uptime() {
        // 3,000 s of uptime: 3·10⁹ µs, beyond a 32-bit time_t's range.
        assert_eq!(usec(3_000, 999_999_999), 3_000_999_999);
        assert_eq!(usec(10 * 365 * 86_400, 0), 315_360_000_000_000);
        // The clock itself: positive, never going back, and in µs (a
        // 20 ms sleep moves it by 20 ms or more, far less than a second).
        let a = monotonic_usec().expect("CLOCK_MONOTONIC readable");
        std::thread::sleep(Duration::from_millis(20));
        let b = monotonic_usec().expect("CLOCK_MONOTONIC readable");
        assert!(a > 0, "{a}");
        assert!((20_000..1_000_000).contains(&(b - a)), "{a} -> {b}");
    }
}
