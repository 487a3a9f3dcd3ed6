//! systemd integration for `run` and `watch` (`Type=notify`): READY once the
//! daemon serves, STOPPING on the way out, and WATCHDOG pings from the main loop
//! itself when the unit sets `WatchdogSec=`, so a wedged loop gets restarted.
//! Outside systemd (no NOTIFY_SOCKET) all of this does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::warn;

fn notify(state: NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        warn!(error = %e, "systemd notification not sent");
    }
}

pub fn ready() {
    notify(NotifyState::Ready);
}

pub fn stopping() {
    notify(NotifyState::Stopping);
}

pub fn watchdog_ping() {
    notify(NotifyState::Watchdog);
}

/// How often to ping: half of `WatchdogSec=`, or never.
pub fn watchdog_every() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

/// A tick for the main loop's `select!`: fires every `watchdog_every()`, or
/// never when no watchdog is set.
pub async fn watchdog_tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

pub fn watchdog_ticker() -> Option<tokio::time::Interval> {
    watchdog_every().map(|every| {
        let mut t = tokio::time::interval(every.max(Duration::from_millis(100)));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    })
}
