//! The script tracker task (keepalived's `vrrp_script`): runs a check command every
//! `interval`, debounces the results with rise/fall, and sends a [`TrackerUpdate`] only
//! when the debounced state changes. The daemon feeds those into
//! `Instance::handle_tracker`.
//!
//! - Runs never overlap: the next run starts `interval` after the previous one started,
//!   or right after it finished if it took longer.
//! - Exit status 0 is success; anything else is a failure: a non-zero status, a signal,
//!   a timeout (the process group is killed and reaped), or a command that cannot be
//!   started (missing or not executable). None of them stops the tracker.
//! - `interval` and `timeout` are raised to [`MIN_INTERVAL`] / [`MIN_TIMEOUT`], so a
//!   zero in the config cannot turn a failing check into a busy loop.
//! - The task ends when the update receiver is dropped, or when it is aborted; either
//!   way a run in progress is killed.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::command::{self, describe_status};
use super::debounce::Debouncer;

/// The shortest interval between two runs' starts.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The shortest timeout a run gets.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(10);

/// One script tracker, as the daemon maps it from `[[track_script]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSpec {
    /// The tracker's name, as instances list it in `track_scripts`.
    pub name: String,
    /// Program and arguments, run without a shell.
    pub argv: Vec<String>,
    pub interval: Duration,
    /// Per run; a run that takes longer counts as a failure.
    pub timeout: Duration,
    /// Successes in a row that bring a down tracker up (0 counts as 1).
    pub rise: u32,
    /// Failures in a row that bring an up tracker down (0 counts as 1).
    pub fall: u32,
}

/// A debounced change of one tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerUpdate {
    pub name: String,
    pub up: bool,
    /// What the run that caused the change did, e.g. `exit status 1`,
    /// `timed out after 2s`, `could not start /x: No such file or directory (os error 2)`.
    pub detail: String,
}

/// Starts the tracker task. Trackers start up (keepalived's default), so the first
/// update, if any, says "down".
pub fn spawn(spec: ScriptSpec, tx: mpsc::Sender<TrackerUpdate>) -> JoinHandle<()> {
    tokio::spawn(track(spec, tx))
}

async fn track(spec: ScriptSpec, tx: mpsc::Sender<TrackerUpdate>) {
    let interval = spec.interval.max(MIN_INTERVAL);
    let timeout = spec.timeout.max(MIN_TIMEOUT);
    let mut debouncer = Debouncer::new(spec.rise, spec.fall);
    let name = spec.name.as_str();
    loop {
        let started = Instant::now();
        let (ok, detail) = tokio::select! {
            // Nobody listens any more: stop (dropping the run kills it).
            () = tx.closed() => break,
            result = command::run(&spec.argv, timeout) => match result {
                Ok(status) => (status.success(), describe_status(status)),
                Err(error) => (false, error.to_string()),
            },
        };
        debug!(tracker = name, ok, %detail, "check ran");
        if let Some(up) = debouncer.record(ok) {
            if up {
                info!(tracker = name, %detail, "tracker up");
            } else {
                warn!(tracker = name, %detail, "tracker down");
            }
            let update = TrackerUpdate {
                name: spec.name.clone(),
                up,
                detail,
            };
            if tx.send(update).await.is_err() {
                break;
            }
        }
        tokio::select! {
            () = tx.closed() => break,
            () = tokio::time::sleep_until(started + interval) => {}
        }
    }
    debug!(tracker = name, "update receiver gone; tracker stopped");
}

/// All script trackers of a daemon, aborted together on shutdown or drop.
#[derive(Debug, Default)]
pub struct ScriptTrackers {
    tasks: JoinSet<()>,
}

impl ScriptTrackers {
    /// Starts one task per spec, all sending to `tx`.
    pub fn spawn(
        specs: impl IntoIterator<Item = ScriptSpec>,
        tx: &mpsc::Sender<TrackerUpdate>,
    ) -> Self {
        let mut tasks = JoinSet::new();
        for spec in specs {
            tasks.spawn(track(spec, tx.clone()));
        }
        ScriptTrackers { tasks }
    }

    /// How many trackers are running.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Stops every tracker and waits until they are gone, so any check still running
    /// has been killed when this returns.
    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
    }
}
