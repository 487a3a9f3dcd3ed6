//! Notify scripts (keepalived's `notify_master|backup|fault|stop` and `notify`) run from
//! one ordered queue per instance, and the JSON-lines event stream for tools
//! ([`events`]).
//!
//! keepalived runs notifies asynchronously and unordered, so a quick BACKUP→MASTER→
//! BACKUP can reach an external system out of order and leave it wrong
//! (acassen/keepalived#1884). Here each instance has one task that runs its notifies
//! strictly in the order the state changes happened:
//!
//! 1. the state-specific script, argv as configured, no extra arguments;
//! 2. the generic `notify`, with keepalived's four arguments appended:
//!    `INSTANCE <name> <MASTER|BACKUP|FAULT|STOP> <priority>`.
//!
//! Each run is bounded by [`NotifySpec::timeout`] (the process group is killed on
//! expiry). Failures and timeouts are logged (fields `instance`, `state`) and the queue
//! goes on. [`NotifyHandle::transition`] never waits: the queue is unbounded because
//! dropping a notify is exactly the bug above, and its growth is paced by the VRRP
//! timers (a few state changes a second at worst, a few bytes each).
//!
//! The queues of one daemon share a [`ScriptLimit`]: at a mass takeover hundreds of
//! instances change state in one step, and hundreds of scripts forked at once
//! (on the loop's thread, which also sends the adverts) would stall it. Past the
//! limit a script waits for a slot; each queue still runs in order.

pub mod events;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::config::format_duration;
use crate::track::command::{self, describe_status};

/// Per-run bound when the config gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One instance's notify scripts, as the daemon maps them from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySpec {
    /// The instance name, passed to `notify` after `INSTANCE`.
    pub instance: String,
    /// Generic script; gets `INSTANCE <name> <STATE> <priority>` appended.
    pub notify: Option<Vec<String>>,
    pub notify_master: Option<Vec<String>>,
    pub notify_backup: Option<Vec<String>>,
    pub notify_fault: Option<Vec<String>>,
    pub notify_stop: Option<Vec<String>>,
    /// Per run (each script separately).
    pub timeout: Duration,
}

impl NotifySpec {
    /// No scripts, [`DEFAULT_TIMEOUT`].
    pub fn new(instance: impl Into<String>) -> Self {
        NotifySpec {
            instance: instance.into(),
            notify: None,
            notify_master: None,
            notify_backup: None,
            notify_fault: None,
            notify_stop: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// True if no script is configured (the queue then only counts).
    pub fn is_empty(&self) -> bool {
        self.notify.is_none()
            && self.notify_master.is_none()
            && self.notify_backup.is_none()
            && self.notify_fault.is_none()
            && self.notify_stop.is_none()
    }

    fn specific(&self, state: NotifyState) -> Option<&Vec<String>> {
        match state {
            NotifyState::Master => self.notify_master.as_ref(),
            NotifyState::Backup => self.notify_backup.as_ref(),
            NotifyState::Fault => self.notify_fault.as_ref(),
            NotifyState::Stop => self.notify_stop.as_ref(),
        }
    }
}

/// The states notifies are run for, by keepalived's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyState {
    Master,
    Backup,
    Fault,
    Stop,
}

impl NotifyState {
    /// `MASTER|BACKUP|FAULT|STOP` (what `Action::notify_word` returns).
    pub fn from_word(word: &str) -> Option<Self> {
        match word {
            "MASTER" => Some(NotifyState::Master),
            "BACKUP" => Some(NotifyState::Backup),
            "FAULT" => Some(NotifyState::Fault),
            "STOP" => Some(NotifyState::Stop),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyState::Master => "MASTER",
            NotifyState::Backup => "BACKUP",
            NotifyState::Fault => "FAULT",
            NotifyState::Stop => "STOP",
        }
    }

    /// The config key of the state-specific script, for logs.
    fn key(self) -> &'static str {
        match self {
            NotifyState::Master => "notify_master",
            NotifyState::Backup => "notify_backup",
            NotifyState::Fault => "notify_fault",
            NotifyState::Stop => "notify_stop",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NotifyError {
    #[error("no notify state {word:?} (expected MASTER, BACKUP, FAULT or STOP)")]
    UnknownState { word: String },
    #[error("the notify queue of instance {instance} is gone")]
    Closed { instance: String },
    #[error("notifies of instance {instance} not done within {}; {pending} abandoned", format_duration(*.within))]
    DrainTimedOut {
        instance: String,
        within: Duration,
        pending: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Job {
    state: NotifyState,
    priority: u8,
}

/// Scripts one daemon runs at once by default (all instances together).
pub const MAX_CONCURRENT_SCRIPTS: usize = 16;

/// How many notify scripts may run at once across the queues that share it.
#[derive(Debug, Clone)]
pub struct ScriptLimit(Arc<Semaphore>);

impl ScriptLimit {
    /// At least one at a time, whatever `n` says.
    pub fn new(n: usize) -> Self {
        ScriptLimit(Arc::new(Semaphore::new(n.max(1))))
    }
}

impl Default for ScriptLimit {
    fn default() -> Self {
        ScriptLimit::new(MAX_CONCURRENT_SCRIPTS)
    }
}

/// Starts per-instance notify queues.
#[derive(Debug)]
pub enum Notifier {}

impl Notifier {
    /// Starts the instance's queue task, with a limit of its own; needs a tokio
    /// runtime.
    pub fn spawn(spec: NotifySpec) -> NotifyHandle {
        Notifier::spawn_limited(spec, ScriptLimit::default())
    }

    /// Starts the instance's queue task, its scripts counted against `limit`
    /// (shared by the daemon's instances); needs a tokio runtime.
    pub fn spawn_limited(spec: NotifySpec, limit: ScriptLimit) -> NotifyHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let instance = spec.instance.clone();
        let task = tokio::spawn(work(spec, rx, Arc::clone(&pending), limit));
        NotifyHandle {
            instance,
            tx,
            pending,
            task,
        }
    }
}

/// The daemon's end of one instance's queue. Dropping it lets the queued notifies
/// finish in the background; [`NotifyHandle::drain`] waits for them, bounded.
#[derive(Debug)]
pub struct NotifyHandle {
    instance: String,
    tx: mpsc::UnboundedSender<Job>,
    pending: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl NotifyHandle {
    /// Queues the notifies for a change to `to` (`MASTER|BACKUP|FAULT|STOP`) at
    /// `priority`. Never waits.
    pub fn transition(&self, to: &str, priority: u8) -> Result<(), NotifyError> {
        let state = NotifyState::from_word(to).ok_or_else(|| NotifyError::UnknownState {
            word: to.to_owned(),
        })?;
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.tx.send(Job { state, priority }).map_err(|_| {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            NotifyError::Closed {
                instance: self.instance.clone(),
            }
        })
    }

    /// Transitions queued and not yet fully run.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Closes the queue and waits up to `within` for the queued notifies (on shutdown,
    /// so the STOP notify runs before exit). Past the bound the rest is abandoned and a
    /// script still running is killed.
    pub async fn drain(self, within: Duration) -> Result<(), NotifyError> {
        let NotifyHandle {
            instance,
            tx,
            pending,
            mut task,
        } = self;
        drop(tx);
        match tokio::time::timeout(within, &mut task).await {
            Ok(_) => Ok(()),
            Err(_) => {
                task.abort();
                // Aborting drops the running script's future, which kills it.
                let _ = task.await;
                let pending = pending.load(Ordering::SeqCst);
                warn!(%instance, pending, "notify queue not drained in time");
                Err(NotifyError::DrainTimedOut {
                    instance,
                    within,
                    pending,
                })
            }
        }
    }
}

async fn work(
    spec: NotifySpec,
    mut rx: mpsc::UnboundedReceiver<Job>,
    pending: Arc<AtomicUsize>,
    limit: ScriptLimit,
) {
    while let Some(job) = rx.recv().await {
        // One slot for the job's scripts; the semaphore is never closed, so an
        // error cannot happen, and if it did the scripts would run unbounded
        // rather than not at all.
        let _slot = limit.0.acquire().await.ok();
        let state = job.state.as_str();
        if let Some(argv) = spec.specific(job.state) {
            run_one(&spec, state, job.state.key(), argv).await;
        }
        if let Some(base) = &spec.notify {
            let mut argv = base.clone();
            argv.extend([
                "INSTANCE".to_owned(),
                spec.instance.clone(),
                state.to_owned(),
                job.priority.to_string(),
            ]);
            run_one(&spec, state, "notify", &argv).await;
        }
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn run_one(spec: &NotifySpec, state: &str, key: &str, argv: &[String]) {
    let instance = spec.instance.as_str();
    let script = argv.first().map(String::as_str).unwrap_or("");
    match command::run(argv, spec.timeout).await {
        Ok(status) if status.success() => {
            debug!(instance, state, key, script, "notify ran");
        }
        Ok(status) => warn!(
            instance,
            state,
            key,
            script,
            detail = %describe_status(status),
            "notify script failed"
        ),
        Err(error) => warn!(instance, state, key, script, %error, "notify script failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for s in [
            NotifyState::Master,
            NotifyState::Backup,
            NotifyState::Fault,
            NotifyState::Stop,
        ] {
            assert_eq!(NotifyState::from_word(s.as_str()), Some(s));
        }
        assert_eq!(NotifyState::from_word("INIT"), None);
    }

    #[tokio::test]
    async fn unknown_word_is_refused_and_not_counted() {
        let handle = Notifier::spawn(NotifySpec::new("VI_1"));
        assert_eq!(
            handle.transition("DELETED", 100),
            Err(NotifyError::UnknownState {
                word: "DELETED".into()
            })
        );
        assert_eq!(handle.pending(), 0);
        handle
            .transition("MASTER", 100)
            .expect("queue open with no scripts");
        handle
            .drain(Duration::from_secs(5))
            .await
            .expect("nothing to run");
    }
}
