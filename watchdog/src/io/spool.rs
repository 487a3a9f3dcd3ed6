//! The durable spool in the state directory: the engine's state (open incidents,
//! codes, acks) and the outbox of notifications not yet delivered. Everything is
//! written to a temporary file, fsynced, renamed into place and the directory
//! fsynced before a send may start, so an alert accepted survives SIGKILL and
//! power loss; a delivered notification's file is removed (and the directory
//! fsynced) before the next one on that channel goes, so it is sent once.
//! A crash between a successful send and that removal resends it on restart with
//! the same idempotency key (and Message-ID), which receivers can drop.
//!
//! The engine's state and the notifications it hands out change together
//! ([`Spool::commit`]): the state is saved first with the notifications listed
//! in it, then they are written to the outbox, then the state is saved again
//! without the list, and only then may they be sent. A crash between the
//! steps leaves the list in `engine.json`, and [`Spool::recover`] spools what
//! the outbox lacks at the next start. Saving the state and then spooling
//! (the earlier order) lost a page whose incident the saved state already
//! counted as paged, and a resolved notice whose incident it had closed.
//!
//! Layout: `<state_dir>/spool/engine.json`, `outbox/<seq>-<channel>.json`,
//! `failed/` (notifications a channel refused for good, kept for the operator),
//! `lock` (held while a daemon has the spool open: two daemons on one spool
//! would send every page twice, and one would delete the other's temporary
//! files). Holding the lock is also what makes it safe to delete the `*.tmp`
//! files a killed daemon left half-written.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::core::alert::Alert;
use crate::core::engine::{EngineState, UnspooledAlert};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("spool {path}: unreadable: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "spool {path}: held by another running splitguard (each daemon needs its own state_dir)"
    )]
    Busy { path: PathBuf },
}

fn io_err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> SpoolError {
    let path = path.to_owned();
    move |source| SpoolError::Io { path, what, source }
}

/// One notification waiting for its channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: u64,
    pub channel: String,
    pub alert: Alert,
    /// Failed attempts so far.
    pub attempts: u32,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    next_seq: AtomicU64,
    /// The open lock file: the kernel releases its lock when the process dies.
    _lock: File,
}

/// Writes `bytes` to `path` atomically and durably.
fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp, "create"))?;
        f.write_all(bytes).map_err(io_err(&tmp, "write"))?;
        f.sync_all().map_err(io_err(&tmp, "fsync"))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path, "rename into place"))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))
}

/// Removes the `*.tmp` files a daemon killed inside [`write_durable`] left:
/// the file they were to replace is intact (or absent, when the write had not
/// been committed), so they hold nothing anyone waits for. Only called with
/// the lock held, so no live writer owns them.
fn remove_stale_temporaries(dir: &Path) -> Result<(), SpoolError> {
    let mut removed = 0usize;
    for d in [dir.to_owned(), dir.join("outbox"), dir.join("failed")] {
        let before = removed;
        for ent in fs::read_dir(&d).map_err(io_err(&d, "list"))? {
            let path = ent.map_err(io_err(&d, "list"))?.path();
            if path.extension().is_some_and(|x| x == "tmp") {
                fs::remove_file(&path).map_err(io_err(&path, "remove stale temporary"))?;
                removed += 1;
            }
        }
        // Only a directory that changed needs its fsync.
        if removed > before {
            sync_dir(&d)?;
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %dir.display(), "removed half-written spool files a killed daemon left");
    }
    Ok(())
}

/// Channel names become file name parts: keep them tame.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Spool {
    /// Opens (creating, mode 0700) `<state_dir>/spool`.
    pub fn open(state_dir: &Path) -> Result<Spool, SpoolError> {
        let dir = state_dir.join("spool");
        for d in [dir.join("outbox"), dir.join("failed")] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .map_err(io_err(&d, "create directory"))?;
        }
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err(&lock_path, "open lock"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(SpoolError::Busy { path: dir }),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path, "lock")(e)),
        }
        remove_stale_temporaries(&dir)?;
        let spool = Spool {
            dir,
            next_seq: AtomicU64::new(1),
            _lock: lock,
        };
        let last = spool.pending()?.iter().map(|e| e.seq).max().unwrap_or(0);
        spool.next_seq.store(last + 1, Ordering::SeqCst);
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn engine_path(&self) -> PathBuf {
        self.dir.join("engine.json")
    }

    /// The engine state of the last run; None on a first start.
    pub fn load_engine(&self) -> Result<Option<EngineState>, SpoolError> {
        let path = self.engine_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, "read")(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| SpoolError::Corrupt {
                path,
                message: e.to_string(),
            })
    }

    pub fn save_engine(&self, state: &EngineState) -> Result<(), SpoolError> {
        let path = self.engine_path();
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| SpoolError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_durable(&path, &bytes)
    }

    /// Saves the engine's new `state` together with the notifications it
    /// handed out (`(channel, alert)`) so that a crash at any point loses none
    /// and doubles none: see the module comment. Returns the outbox entries to
    /// dispatch; nothing may be sent before this returns. A step that fails is
    /// logged and the rest still goes (an alert unsaved beats an alert unsent).
    pub fn commit(&self, state: &EngineState, out: Vec<(String, Alert)>) -> Vec<OutboxEntry> {
        let mut clean = state.clone();
        clean.unspooled.clear();
        if out.is_empty() {
            if let Err(e) = self.save_engine(&clean) {
                tracing::error!(error = %e, "engine state not saved; a restart would lose open incidents");
            }
            return Vec::new();
        }
        let mut staged = clean.clone();
        staged.unspooled = out
            .iter()
            .map(|(channel, alert)| UnspooledAlert {
                channel: channel.clone(),
                alert: alert.clone(),
            })
            .collect();
        if let Err(e) = self.save_engine(&staged) {
            tracing::error!(error = %e, "engine state not saved; a restart would lose open incidents");
        }
        let mut entries = Vec::new();
        for (channel, alert) in out {
            match self.put(&channel, alert) {
                Ok(entry) => entries.push(entry),
                Err(e) => tracing::error!(%channel, error = %e, "alert not spooled, so not sent"),
            }
        }
        if let Err(e) = self.save_engine(&clean) {
            tracing::error!(error = %e, "engine state not saved; a restart would lose open incidents");
        }
        entries
    }

    /// At start, after a crash inside [`Spool::commit`]: spools each
    /// notification `state` lists as handed out that the outbox does not hold
    /// (same channel and idempotency key; none of them was sent, since sending
    /// starts only after the list is cleared), saves the state without the
    /// list and returns it.
    pub fn recover(&self, mut state: EngineState) -> Result<EngineState, SpoolError> {
        let staged = std::mem::take(&mut state.unspooled);
        if staged.is_empty() {
            return Ok(state);
        }
        let have: Vec<(String, String)> = self
            .pending()?
            .into_iter()
            .map(|e| (e.channel, e.alert.idempotency_key))
            .collect();
        let mut added = 0;
        for u in staged {
            let k = (u.channel.clone(), u.alert.idempotency_key.clone());
            if !have.contains(&k) {
                self.put(&u.channel, u.alert)?;
                added += 1;
            }
        }
        if added > 0 {
            tracing::warn!(
                added,
                "spooled notifications a crash left out of the outbox"
            );
        }
        self.save_engine(&state)?;
        Ok(state)
    }

    /// Accepts a notification for `channel`: durable once this returns.
    pub fn put(&self, channel: &str, alert: Alert) -> Result<OutboxEntry, SpoolError> {
        let entry = OutboxEntry {
            seq: self.next_seq.fetch_add(1, Ordering::SeqCst),
            channel: channel.to_owned(),
            alert,
            attempts: 0,
        };
        self.write(&entry)?;
        Ok(entry)
    }

    fn entry_path(&self, sub: &str, e: &OutboxEntry) -> PathBuf {
        self.dir
            .join(sub)
            .join(format!("{:012}-{}.json", e.seq, file_safe(&e.channel)))
    }

    fn write(&self, e: &OutboxEntry) -> Result<(), SpoolError> {
        let path = self.entry_path("outbox", e);
        let bytes = serde_json::to_vec_pretty(e).map_err(|err| SpoolError::Corrupt {
            path: path.clone(),
            message: err.to_string(),
        })?;
        write_durable(&path, &bytes)
    }

    /// Records a failed attempt (the count survives restarts).
    pub fn retried(&self, e: &OutboxEntry) -> Result<(), SpoolError> {
        self.write(e)
    }

    /// Everything not yet delivered, oldest first. Unreadable files are skipped
    /// and reported, never deleted.
    pub fn pending(&self) -> Result<Vec<OutboxEntry>, SpoolError> {
        let dir = self.dir.join("outbox");
        let mut out = Vec::new();
        for ent in fs::read_dir(&dir).map_err(io_err(&dir, "list"))? {
            let ent = ent.map_err(io_err(&dir, "list"))?;
            let path = ent.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            match fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<OutboxEntry>(&t).map_err(|e| e.to_string()))
            {
                Ok(e) => out.push(e),
                Err(message) => {
                    tracing::error!(path = %path.display(), %message, "unreadable spool entry left in place")
                }
            }
        }
        out.sort_by_key(|e| e.seq);
        Ok(out)
    }

    /// Delivered: forget it, durably.
    pub fn done(&self, e: &OutboxEntry) -> Result<(), SpoolError> {
        let path = self.entry_path("outbox", e);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_err(&path, "remove")(err)),
        }
        sync_dir(&self.dir.join("outbox"))
    }

    /// Refused for good: moved to `failed/` with the reason beside it.
    pub fn failed(&self, e: &OutboxEntry, reason: &str) -> Result<(), SpoolError> {
        let from = self.entry_path("outbox", e);
        let to = self.entry_path("failed", e);
        fs::rename(&from, &to).map_err(io_err(&from, "move to failed/"))?;
        write_durable(&to.with_extension("reason"), reason.as_bytes())?;
        sync_dir(&self.dir.join("outbox"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::alert::AlertStatus;
    use crate::core::incident::{IncidentKind, Severity};

    fn alert(key: &str) -> Alert {
        let t = "2026-11-25T00:00:00Z".parse().unwrap();
        Alert {
            id: "lb02-1".into(),
            status: AlertStatus::Firing,
            kind: IncidentKind::SplitBrain,
            severity: Severity::Critical,
            node: "lb02".into(),
            instance: None,
            vip: None,
            owners: vec![],
            cause: "c".into(),
            code: "1234".into(),
            at: t,
            started_at: t,
            notification: 1,
            idempotency_key: key.into(),
            acked_by: None,
            missed: false,
        }
    }

    #[test]
    fn entries_survive_a_reopen_in_order_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        let a = s.put("hook", alert("a")).unwrap();
        let b = s.put("mail/x", alert("b")).unwrap();
        drop(s);
        let s = Spool::open(dir.path()).unwrap();
        let p = s.pending().unwrap();
        assert_eq!(p, vec![a.clone(), b.clone()]);
        s.done(&a).unwrap();
        s.done(&a).unwrap();
        let c = s.put("hook", alert("c")).unwrap();
        assert!(c.seq > b.seq, "sequence continues after a reopen");
        s.failed(&b, "HTTP 400").unwrap();
        assert_eq!(s.pending().unwrap(), vec![c]);
        assert!(dir.path().join("spool/failed").read_dir().unwrap().count() == 2);
    }

    #[test]
    fn engine_state_round_trips_and_corruption_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.load_engine().unwrap(), None);
        let st = EngineState {
            rng: 7,
            counter: 3,
            ..EngineState::default()
        };
        s.save_engine(&st).unwrap();
        assert_eq!(s.load_engine().unwrap(), Some(st));
        fs::write(dir.path().join("spool/engine.json"), "{nope").unwrap();
        let e = s.load_engine().unwrap_err().to_string();
        assert!(e.contains("engine.json") && e.contains("unreadable"), "{e}");
    }

    #[test]
    fn commit_spools_and_leaves_no_list_behind() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        let st = EngineState {
            counter: 1,
            ..EngineState::default()
        };
        let e = s.commit(
            &st,
            vec![("hook".into(), alert("a")), ("mail".into(), alert("b"))],
        );
        assert_eq!(e.len(), 2);
        assert_eq!(s.pending().unwrap(), e);
        assert_eq!(s.load_engine().unwrap(), Some(st));
    }

    /// A SIGKILL after the state was saved and before (or while) the outbox
    /// was written: the earlier order (save the state, then spool) lost these
    /// notifications for good; now the next start spools exactly the missing
    /// ones.
    #[test]
    fn a_crash_inside_commit_loses_and_doubles_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        let mut st = EngineState {
            counter: 2,
            ..EngineState::default()
        };
        st.unspooled = ["a", "b"]
            .iter()
            .map(|k| UnspooledAlert {
                channel: "hook".into(),
                alert: alert(k),
            })
            .collect();
        // The crash: state saved with the list, only "a" reached the outbox.
        s.save_engine(&st).unwrap();
        let a = s.put("hook", alert("a")).unwrap();
        drop(s);

        let s = Spool::open(dir.path()).unwrap();
        let loaded = s.load_engine().unwrap().unwrap();
        let restored = s.recover(loaded).unwrap();
        assert!(restored.unspooled.is_empty());
        assert_eq!(restored.counter, 2);
        let keys: Vec<String> = s
            .pending()
            .unwrap()
            .into_iter()
            .map(|e| e.alert.idempotency_key)
            .collect();
        assert_eq!(keys, ["a", "b"], "b spooled once, a not again");
        assert_eq!(s.pending().unwrap()[0], a);
        // Recovered once: the saved state no longer lists them.
        assert!(s.load_engine().unwrap().unwrap().unspooled.is_empty());
        let again = s.recover(s.load_engine().unwrap().unwrap()).unwrap();
        assert!(again.unspooled.is_empty());
        assert_eq!(s.pending().unwrap().len(), 2);
    }

    #[test]
    fn a_second_daemon_on_one_spool_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        let e = Spool::open(dir.path()).unwrap_err();
        assert!(matches!(e, SpoolError::Busy { .. }), "{e}");
        assert!(e.to_string().contains("another running splitguard"), "{e}");
        drop(s);
        Spool::open(dir.path()).unwrap();
    }

    #[test]
    fn half_written_files_of_a_killed_daemon_are_removed_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        let a = s.put("hook", alert("a")).unwrap();
        drop(s);
        let outbox = dir.path().join("spool/outbox");
        // Killed while rewriting `a` after a failed attempt, and while
        // writing the state.
        fs::write(outbox.join("000000000001-hook.tmp"), "{\"seq\":1,").unwrap();
        fs::write(dir.path().join("spool/engine.tmp"), "{").unwrap();
        let s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.pending().unwrap(), vec![a]);
        let mut left: Vec<String> = fs::read_dir(&outbox)
            .unwrap()
            .chain(fs::read_dir(dir.path().join("spool")).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["000000000001-hook.json", "failed", "lock", "outbox"]);
    }

    #[test]
    fn a_corrupt_outbox_file_is_reported_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        let bad = dir.path().join("spool/outbox/000000000009-x.json");
        fs::write(&bad, "garbage").unwrap();
        s.put("hook", alert("a")).unwrap();
        assert_eq!(s.pending().unwrap().len(), 1);
        assert!(bad.exists());
    }
}
