//! The event stream: one JSON object per line, appended to a file, in the order the
//! daemon emitted them. For tools (`tail -F | jq`, log shippers), not for people.
//!
//! Schema (the frame keys `at_ms`, `instance`, `vrid`, `event` come first, then the
//! event's own keys in alphabetical order):
//!
//! ```json
//! {"at_ms":1767225600123,"instance":"VI_1","vrid":51,"event":"state_changed",
//!  "cause":"master_silent","from":"BACKUP","priority":150,"to":"MASTER"}
//! ```
//!
//! - `at_ms`: when the event was emitted, in Unix milliseconds (UTC). Integers sort and
//!   diff without a date parser, and the crate needs no date library for them.
//! - `instance`, `vrid`: present for instance events, absent for node-wide ones.
//! - `event` and its keys:
//!   - `state_changed`: `from`, `to` (`INIT|BACKUP|MASTER|FAULT`; `INIT` is before
//!     startup and after shutdown), `priority` (effective, as notify scripts get it),
//!     `cause` (`startup`, `master_silent`, `master_released`, `preempted_lower`,
//!     `gate_opened`, `higher_priority` + `peer` and `peer_priority`, `tracker_down` +
//!     `tracker`, `trackers_up`, `shutdown`, `released`, `yielded`, `held`,
//!     `early_takeover` + `peer`: the master the arbiter confirmed dead).
//!   - `claim_withheld`: `reason` (a sentence).
//!   - `vip_added`, `vip_removed`: `vip`.
//!   - `events_dropped`: `count`, written by the sink itself when its queue overflowed.
//!   - anything else built with [`Event::new`] and [`Event::field`].
//!
//! The file is created with mode 0640 (less any umask bits) and opened for append; each
//! line is written with one write and flushed. [`EventSink::emit`] only queues: a
//! writer task does the I/O, so a slow disk never stalls the VRRP loop. If
//! [`EVENT_QUEUE`] events are waiting, further ones are dropped and counted, and an
//! `events_dropped` line says so once the writer catches up.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::config::format_duration;
use splitguard_vrrp::instance::{Action, Cause, State};

/// Events waiting for the writer before new ones are dropped.
pub const EVENT_QUEUE: usize = 4096;

/// Keys the line's frame owns; [`Event::field`] ignores them.
const RESERVED: [&str; 4] = ["at_ms", "instance", "vrid", "event"];

/// One line of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    at_ms: u64,
    instance: Option<String>,
    vrid: Option<u8>,
    event: String,
    fields: Map<String, Value>,
}

#[derive(Serialize)]
struct Line<'a> {
    at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vrid: Option<u8>,
    event: &'a str,
    #[serde(flatten)]
    fields: &'a Map<String, Value>,
}

impl Event {
    /// A node-wide event of kind `event`, stamped now.
    pub fn new(event: impl Into<String>) -> Self {
        Event {
            at_ms: unix_ms(SystemTime::now()),
            instance: None,
            vrid: None,
            event: event.into(),
            fields: Map::new(),
        }
    }

    /// Ties the event to an instance.
    pub fn instance(mut self, name: impl Into<String>, vrid: u8) -> Self {
        self.instance = Some(name.into());
        self.vrid = Some(vrid);
        self
    }

    /// Adds a key; the frame's own keys (`at_ms`, `instance`, `vrid`, `event`) are
    /// refused so a line never carries one twice.
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        if RESERVED.contains(&key) {
            warn!(key, event = %self.event, "reserved event key ignored");
        } else {
            self.fields.insert(key.to_owned(), value.into());
        }
        self
    }

    /// Overrides the timestamp (tests, replays).
    pub fn at(mut self, at: SystemTime) -> Self {
        self.at_ms = unix_ms(at);
        self
    }

    pub fn at_ms(&self) -> u64 {
        self.at_ms
    }

    pub fn kind(&self) -> &str {
        &self.event
    }

    /// `state_changed` with `from`, `to`, `priority`, `cause` (and the cause's details).
    pub fn state_changed(
        instance: impl Into<String>,
        vrid: u8,
        from: State,
        to: State,
        priority: u8,
        cause: &Cause,
    ) -> Self {
        let ev = Event::new("state_changed")
            .instance(instance, vrid)
            .field("from", from.as_str())
            .field("to", to.as_str())
            .field("priority", priority);
        match cause {
            Cause::Startup => ev.field("cause", "startup"),
            Cause::MasterSilent => ev.field("cause", "master_silent"),
            Cause::MasterReleased => ev.field("cause", "master_released"),
            Cause::PreemptedLower => ev.field("cause", "preempted_lower"),
            Cause::GateOpened => ev.field("cause", "gate_opened"),
            Cause::HigherPriority { src, priority } => ev
                .field("cause", "higher_priority")
                .field("peer", src.to_string())
                .field("peer_priority", *priority),
            Cause::TrackerDown { name } => ev
                .field("cause", "tracker_down")
                .field("tracker", name.as_str()),
            Cause::TrackersUp => ev.field("cause", "trackers_up"),
            Cause::Shutdown => ev.field("cause", "shutdown"),
            Cause::Released => ev.field("cause", "released"),
            Cause::Yielded => ev.field("cause", "yielded"),
            Cause::Held => ev.field("cause", "held"),
            Cause::WitnessLost => ev.field("cause", "witness_lost"),
            Cause::EarlyTakeover { master } => ev
                .field("cause", "early_takeover")
                .field("peer", master.to_string()),
        }
    }

    /// `claim_withheld` with `reason`.
    pub fn claim_withheld(
        instance: impl Into<String>,
        vrid: u8,
        reason: impl fmt::Display,
    ) -> Self {
        Event::new("claim_withheld")
            .instance(instance, vrid)
            .field("reason", reason.to_string())
    }

    /// `vip_added` with `vip`.
    pub fn vip_added(instance: impl Into<String>, vrid: u8, vip: impl fmt::Display) -> Self {
        Event::new("vip_added")
            .instance(instance, vrid)
            .field("vip", vip.to_string())
    }

    /// `vip_removed` with `vip`.
    pub fn vip_removed(instance: impl Into<String>, vrid: u8, vip: impl fmt::Display) -> Self {
        Event::new("vip_removed")
            .instance(instance, vrid)
            .field("vip", vip.to_string())
    }

    /// The event for a state machine action, if it is one worth a line
    /// (`StateChanged`, `ClaimWithheld`).
    pub fn from_action(instance: &str, vrid: u8, action: &Action) -> Option<Self> {
        match action {
            Action::StateChanged {
                from,
                to,
                priority,
                cause,
            } => Some(Event::state_changed(
                instance, vrid, *from, *to, *priority, cause,
            )),
            Action::ClaimWithheld { reason } => Some(Event::claim_withheld(instance, vrid, reason)),
            _ => None,
        }
    }

    /// The line, without the newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&Line {
            at_ms: self.at_ms,
            instance: self.instance.as_deref(),
            vrid: self.vrid,
            event: &self.event,
            fields: &self.fields,
        })
    }
}

pub fn unix_ms(at: SystemTime) -> u64 {
    // A clock before 1970 is a broken clock; 0 marks it rather than failing the event.
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[derive(Debug, Error)]
pub enum EventError {
    #[error("cannot open event file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("event queue full; event dropped")]
    Full,
    #[error("event writer is gone")]
    Closed,
    #[error("event writer not done within {}", format_duration(*.within))]
    CloseTimedOut { within: Duration },
}

/// Appends events to a file through a writer task.
#[derive(Debug)]
pub struct EventSink {
    path: PathBuf,
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl EventSink {
    /// Opens (creating with 0640) `path` for append and starts the writer task.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, EventError> {
        let path = path.as_ref().to_path_buf();
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&path)
            .await
            .map_err(|source| EventError::Open {
                path: path.clone(),
                source,
            })?;
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(write_all(path.clone(), file, rx, Arc::clone(&dropped)));
        Ok(EventSink {
            path,
            tx,
            dropped,
            task,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one event; never waits. `Full` means it was dropped (and counted).
    pub fn emit(&self, event: Event) -> Result<(), EventError> {
        self.tx.try_send(event).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                EventError::Full
            }
            mpsc::error::TrySendError::Closed(_) => EventError::Closed,
        })
    }

    /// Stops accepting events and waits up to `within` for the queued ones to be
    /// written.
    pub async fn close(self, within: Duration) -> Result<(), EventError> {
        let EventSink { tx, mut task, .. } = self;
        drop(tx);
        match tokio::time::timeout(within, &mut task).await {
            Ok(_) => Ok(()),
            Err(_) => {
                task.abort();
                Err(EventError::CloseTimedOut { within })
            }
        }
    }
}

async fn write_all(
    path: PathBuf,
    mut file: tokio::fs::File,
    mut rx: mpsc::Receiver<Event>,
    dropped: Arc<AtomicU64>,
) {
    while let Some(event) = rx.recv().await {
        write_line(&path, &mut file, &event).await;
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let note = Event::new("events_dropped").field("count", lost);
            write_line(&path, &mut file, &note).await;
        }
    }
}

async fn write_line(path: &Path, file: &mut tokio::fs::File, event: &Event) {
    let mut line = match event.to_json() {
        Ok(line) => line,
        Err(error) => {
            warn!(path = %path.display(), event = event.kind(), %error, "event not serializable");
            return;
        }
    };
    line.push('\n');
    // A failed write (disk full, say) loses this line only; the next one is tried anew.
    let result = match file.write_all(line.as_bytes()).await {
        Ok(()) => file.flush().await,
        Err(e) => Err(e),
    };
    if let Err(error) = result {
        warn!(path = %path.display(), event = event.kind(), %error, "event not written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn state_changed_line() {
        let at = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        let ev = Event::state_changed(
            "VI_1",
            51,
            State::Backup,
            State::Master,
            150,
            &Cause::MasterSilent,
        )
        .at(at);
        assert_eq!(
            ev.to_json().expect("serializes"),
            r#"{"at_ms":1767225600123,"instance":"VI_1","vrid":51,"event":"state_changed","cause":"master_silent","from":"BACKUP","priority":150,"to":"MASTER"}"#
        );
    }

    #[test]
    fn cause_details_and_reserved_keys() {
        let ev = Event::state_changed(
            "VI_1",
            51,
            State::Master,
            State::Backup,
            100,
            &Cause::HigherPriority {
                src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 6)),
                priority: 200,
            },
        )
        .field("event", "spoofed")
        .field("vrid", 9);
        let v: Value = serde_json::from_str(&ev.to_json().expect("serializes")).expect("json");
        assert_eq!(v["event"], "state_changed");
        assert_eq!(v["vrid"], 51);
        assert_eq!(v["cause"], "higher_priority");
        assert_eq!(v["peer"], "192.0.2.6");
        assert_eq!(v["peer_priority"], 200);
    }

    #[test]
    fn node_events_have_no_instance() {
        let ev = Event::new("isolated").field("reachable", 0);
        let v: Value = serde_json::from_str(&ev.to_json().expect("serializes")).expect("json");
        assert!(v.get("instance").is_none() && v.get("vrid").is_none());
        assert!(v["at_ms"].as_u64().is_some_and(|ms| ms > 1_600_000_000_000));
    }

    #[test]
    fn actions_map_to_events() {
        let withheld = Action::ClaimWithheld {
            reason: splitguard_vrrp::gate::WithholdReason::ManualHold,
        };
        let ev = Event::from_action("VI_1", 51, &withheld).expect("an event");
        assert_eq!(ev.kind(), "claim_withheld");
        assert!(Event::from_action("VI_1", 51, &Action::AddVips).is_none());
    }
}
