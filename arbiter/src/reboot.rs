//! The reboot ledger: whether an isolated node may reboot itself now. The pure core
//! [`RebootLedger::decide`] applies the limits (at most `max_per_window` reboots per
//! `window`, none while uptime is below `min_uptime`) to past reboots and an explicit
//! `now`; a small file store keeps the past reboots in the state directory.
//!
//! The limits exist because a reboot that does not cure the isolation (a dead switch
//! port) would otherwise loop: boot, find itself isolated, reboot, never staying up
//! long enough for anyone to log in.
//!
//! Use from the daemon, on `Verdict::RebootDue`:
//! 1. [`check`] with `SystemTime::now()` and [`uptime()`]. It **fails safe**: a
//!    ledger that cannot be read or parsed, or an unreadable uptime, is a
//!    `Deny` naming the problem, never an `Allow`. An operator who wants the reboot
//!    anyway repairs or deletes the file.
//! 2. On `Allow`, [`RebootLedger::record`] *before* running the reboot command: a
//!    reboot that happens must be on file. If recording fails, do not reboot.
//!
//! File format: JSON lines, one `{"at":"<RFC 3339 UTC>"}` per reboot, oldest first,
//! rewritten whole on every record (temp file, fsync, rename, fsync of the directory)
//! so a crash leaves the old or the new ledger, never half of one. A missing file is
//! an empty ledger. Clocks: an entry dated after `now` (the clock stepped back) counts
//! as recent, so stepping the clock back never buys an extra reboot.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};

/// The ledger's file name in the state directory.
pub const LEDGER_FILE: &str = "reboot-ledger.jsonl";
/// Where the kernel reports uptime.
const PROC_UPTIME: &str = "/proc/uptime";

/// How often a node may reboot itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebootLimits {
    /// Reboots allowed within any `window`; 0 forbids them.
    pub max_per_window: u32,
    pub window: Duration,
    /// No reboot while the node has been up for less than this.
    pub min_uptime: Duration,
}

impl Default for RebootLimits {
    /// At most one reboot per hour, none in the first ten minutes of uptime.
    fn default() -> Self {
        RebootLimits {
            max_per_window: 1,
            window: Duration::from_secs(3600),
            min_uptime: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebootDecision {
    Allow,
    Deny(DenyReason),
}

/// Why a reboot is refused; its `Display` is the sentence for logs and incidents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    UptimeBelowMinimum {
        uptime: Duration,
        minimum: Duration,
    },
    LimitReached {
        /// Reboots on file within the window (dated in the future included).
        count: u32,
        limit: u32,
        window: Duration,
        /// The most recent of them.
        latest: Option<SystemTime>,
    },
    LedgerUnreadable(String),
    UptimeUnreadable(String),
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::UptimeBelowMinimum { uptime, minimum } => write!(
                f,
                "uptime {} is below the minimum {}",
                Secs(*uptime),
                Secs(*minimum)
            ),
            DenyReason::LimitReached {
                count,
                limit,
                window,
                latest,
            } => {
                let noun = if *count == 1 { "reboot" } else { "reboots" };
                write!(f, "{count} {noun} already in the last {}", Secs(*window))?;
                match latest {
                    Some(at) if *count == 1 => write!(f, " (at {})", rfc3339(*at))?,
                    Some(at) => write!(f, " (latest at {})", rfc3339(*at))?,
                    None => {}
                }
                write!(f, ", at most {limit} allowed")
            }
            DenyReason::LedgerUnreadable(why) => write!(f, "ledger unreadable: {why}"),
            DenyReason::UptimeUnreadable(why) => write!(f, "uptime unreadable: {why}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("read reboot ledger {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reboot ledger {} line {line}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("write reboot ledger: {what}: {source}")]
    Write {
        what: String,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum UptimeError {
    #[error("read {PROC_UPTIME}: {0}")]
    Read(#[source] io::Error),
    #[error("{PROC_UPTIME} holds {0:?}, not seconds")]
    Parse(String),
}

/// One line of the file.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    at: String,
}

/// Past reboots, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebootLedger {
    reboots: Vec<SystemTime>,
}

impl RebootLedger {
    pub fn new(reboots: impl IntoIterator<Item = SystemTime>) -> Self {
        let mut reboots: Vec<SystemTime> = reboots.into_iter().collect();
        reboots.sort();
        RebootLedger { reboots }
    }

    pub fn reboots(&self) -> &[SystemTime] {
        &self.reboots
    }

    /// The rules, first refusal wins: uptime below the minimum, then the count of
    /// reboots within `window` before `now` (an entry exactly `window` old is out).
    pub fn decide(
        &self,
        now: SystemTime,
        uptime: Duration,
        limits: &RebootLimits,
    ) -> RebootDecision {
        if uptime < limits.min_uptime {
            return RebootDecision::Deny(DenyReason::UptimeBelowMinimum {
                uptime,
                minimum: limits.min_uptime,
            });
        }
        let recent: Vec<SystemTime> = self
            .reboots
            .iter()
            .copied()
            .filter(|at| in_window(*at, now, limits.window))
            .collect();
        let count = u32::try_from(recent.len()).unwrap_or(u32::MAX);
        if count >= limits.max_per_window {
            return RebootDecision::Deny(DenyReason::LimitReached {
                count,
                limit: limits.max_per_window,
                window: limits.window,
                latest: recent.last().copied(),
            });
        }
        RebootDecision::Allow
    }

    /// Reads the ledger at `path`; a missing file is an empty ledger.
    pub fn load(path: &Path) -> Result<Self, LedgerError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(LedgerError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut reboots = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let corrupt = |reason: String| LedgerError::Corrupt {
                path: path.to_owned(),
                line: i + 1,
                reason,
            };
            let entry: Entry = serde_json::from_str(line).map_err(|e| corrupt(json_reason(&e)))?;
            let at = DateTime::parse_from_rfc3339(&entry.at)
                .map_err(|e| corrupt(format!("\"at\" is not an RFC 3339 time: {e}")))?;
            reboots.push(SystemTime::from(at.with_timezone(&Utc)));
        }
        Ok(Self::new(reboots))
    }

    /// Adds a reboot at `at` to the ledger at `path` and writes it back atomically,
    /// dropping entries older than `limits.window` before `at` (they can no longer
    /// count). A ledger that cannot be read is an error and is left as it is.
    /// Returns the ledger as written.
    pub fn record(path: &Path, at: SystemTime, limits: &RebootLimits) -> Result<Self, LedgerError> {
        let old = Self::load(path)?;
        let ledger = Self::new(
            old.reboots
                .into_iter()
                .filter(|t| in_window(*t, at, limits.window))
                .chain([at]),
        );
        let mut text = String::new();
        for t in &ledger.reboots {
            let line = serde_json::to_string(&Entry {
                at: DateTime::<Utc>::from(*t).to_rfc3339_opts(SecondsFormat::Millis, true),
            })
            .map_err(|e| LedgerError::Write {
                what: "encode an entry".to_string(),
                source: io::Error::other(e),
            })?;
            text.push_str(&line);
            text.push('\n');
        }
        write_atomically(path, text.as_bytes())?;
        Ok(ledger)
    }
}

/// The daemon's whole check before a reboot: loads the ledger and applies the limits,
/// denying when the ledger or the uptime cannot be read (fail safe).
pub fn check(
    path: &Path,
    now: SystemTime,
    uptime: Result<Duration, UptimeError>,
    limits: &RebootLimits,
) -> RebootDecision {
    let ledger = match RebootLedger::load(path) {
        Ok(ledger) => ledger,
        Err(e) => return RebootDecision::Deny(DenyReason::LedgerUnreadable(e.to_string())),
    };
    match uptime {
        Ok(uptime) => ledger.decide(now, uptime, limits),
        Err(e) => RebootDecision::Deny(DenyReason::UptimeUnreadable(e.to_string())),
    }
}

/// Time since boot, from `/proc/uptime`.
pub fn uptime() -> Result<Duration, UptimeError> {
    parse_uptime(&fs::read_to_string(PROC_UPTIME).map_err(UptimeError::Read)?)
}

/// Parses `/proc/uptime` ("12345.67 23456.78\n": uptime, then idle time).
pub fn parse_uptime(text: &str) -> Result<Duration, UptimeError> {
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| UptimeError::Parse(text.chars().take(64).collect()))
}

/// Whether a reboot at `at` counts within `window` before `now`; later than `now`
/// counts too (see the module note on clocks).
fn in_window(at: SystemTime, now: SystemTime, window: Duration) -> bool {
    match now.checked_sub(window) {
        Some(start) => at > start,
        None => true,
    }
}

/// serde_json reports positions within the one line it was given; the file line is
/// named by the caller, so only the column is kept.
fn json_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((what, _)) if e.line() > 0 => format!("{what} (column {})", e.column()),
        _ => text,
    }
}

fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Whole seconds as `1h`, `10m`, `4m12s`, `0s`: what a person reads in a refusal.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        if s == 0 {
            return f.write_str("0s");
        }
        for (value, unit) in [(s / 3600, "h"), (s / 60 % 60, "m"), (s % 60, "s")] {
            if value != 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

/// Replaces `path` with `bytes` so that a crash at any point leaves either the old
/// file or the new one: write a temp file beside it, fsync it, rename it over, then
/// fsync the directory so the rename itself is durable.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    let err = |what: String| move |source| LedgerError::Write { what, source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| LedgerError::Write {
        what: format!("{} has no file name", path.display()),
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(err(format!("create {}", tmp.display())))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(err(format!("write {}", tmp.display())))?;
        fs::rename(&tmp, path).map_err(err(format!(
            "rename {} to {}",
            tmp.display(),
            path.display()
        )))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err(format!("sync directory {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// 2026-11-18T11:06:40Z: a fixed, simulated "now".
    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);
    /// Well past the 10-minute minimum.
    const UP: Duration = Duration::from_secs(86_400);

    fn deny(d: RebootDecision) -> DenyReason {
        match d {
            RebootDecision::Deny(r) => r,
            RebootDecision::Allow => panic!("expected a refusal"),
        }
    }

    #[test]
    fn defaults_are_one_per_hour_and_ten_minutes_of_uptime() {
        let l = RebootLimits::default();
        assert_eq!(
            (l.max_per_window, l.window, l.min_uptime),
            (1, HOUR, 10 * MIN)
        );
    }

    #[test]
    fn an_empty_ledger_allows_once_uptime_reaches_the_minimum() {
        let l = RebootLimits::default();
        let ledger = RebootLedger::default();
        assert_eq!(ledger.decide(t0(), UP, &l), RebootDecision::Allow);
        assert_eq!(ledger.decide(t0(), 10 * MIN, &l), RebootDecision::Allow);
        let r = deny(ledger.decide(t0(), Duration::from_millis(252_730), &l));
        assert_eq!(r.to_string(), "uptime 4m12s is below the minimum 10m");
    }

    #[test]
    fn one_reboot_within_the_hour_blocks_the_next() {
        let l = RebootLimits::default();
        let ledger = RebootLedger::new([t0() - 30 * MIN]);
        let r = deny(ledger.decide(t0(), UP, &l));
        assert_eq!(
            r.to_string(),
            "1 reboot already in the last 1h (at 2026-11-18T10:36:40Z), at most 1 allowed"
        );
        // An hour after it, exactly, it no longer counts.
        assert_eq!(
            ledger.decide(t0() + 30 * MIN, UP, &l),
            RebootDecision::Allow
        );
        assert!(matches!(
            ledger.decide(t0() + 30 * MIN - Duration::from_secs(1), UP, &l),
            RebootDecision::Deny(DenyReason::LimitReached { count: 1, .. })
        ));
    }

    #[test]
    fn the_limit_counts_only_reboots_inside_the_window() {
        let l = RebootLimits {
            max_per_window: 2,
            window: 24 * HOUR,
            min_uptime: MIN,
        };
        let old = t0() - 25 * HOUR;
        let ledger = RebootLedger::new([t0() - 2 * HOUR, old]);
        assert_eq!(ledger.decide(t0(), UP, &l), RebootDecision::Allow);
        let ledger = RebootLedger::new([t0() - 2 * HOUR, old, t0() - 3 * HOUR]);
        let r = deny(ledger.decide(t0(), UP, &l));
        assert_eq!(
            r,
            DenyReason::LimitReached {
                count: 2,
                limit: 2,
                window: 24 * HOUR,
                latest: Some(t0() - 2 * HOUR),
            }
        );
        assert_eq!(
            r.to_string(),
            "2 reboots already in the last 24h (latest at 2026-11-18T09:06:40Z), at most 2 allowed"
        );
    }

    #[test]
    fn uptime_is_checked_before_the_count() {
        let l = RebootLimits::default();
        let ledger = RebootLedger::new([t0() - MIN]);
        assert!(matches!(
            deny(ledger.decide(t0(), MIN, &l)),
            DenyReason::UptimeBelowMinimum { .. }
        ));
    }

    #[test]
    fn a_clock_stepped_back_does_not_buy_a_reboot() {
        let l = RebootLimits::default();
        // Recorded "in the future": the clock was later moved back by two hours.
        let ledger = RebootLedger::new([t0() + 2 * HOUR]);
        assert!(matches!(
            deny(ledger.decide(t0(), UP, &l)),
            DenyReason::LimitReached { count: 1, .. }
        ));
    }

    #[test]
    fn a_zero_limit_forbids_every_reboot() {
        let l = RebootLimits {
            max_per_window: 0,
            ..RebootLimits::default()
        };
        let r = deny(RebootLedger::default().decide(t0(), UP, &l));
        assert_eq!(
            r.to_string(),
            "0 reboots already in the last 1h, at most 0 allowed"
        );
    }

    #[test]
    fn uptime_is_parsed_or_refused() {
        assert_eq!(
            parse_uptime("252.73 1000.01\n").ok(),
            Some(Duration::from_millis(252_730))
        );
        for bad in ["", "\n", "abc 1", "-1.0 2", "NaN 1", "inf 1"] {
            assert!(
                matches!(parse_uptime(bad), Err(UptimeError::Parse(_))),
                "{bad:?}"
            );
        }
        // The machine's own: whatever it is, it reads.
        assert!(uptime().is_ok());
    }

    // ---- the file store (a temp dir per test) ---------------------------------

    fn ledger_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join(LEDGER_FILE)
    }

    #[test]
    fn a_missing_file_is_an_empty_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = ledger_path(&dir);
        assert_eq!(
            RebootLedger::load(&path).expect("load"),
            RebootLedger::default()
        );
        let l = RebootLimits::default();
        assert_eq!(check(&path, t0(), Ok(UP), &l), RebootDecision::Allow);
    }

    #[test]
    fn records_survive_a_reload_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = ledger_path(&dir);
        let l = RebootLimits::default();
        let first = t0() - 2 * HOUR;
        let second = t0() - 20 * MIN;
        RebootLedger::record(&path, first, &l).expect("record");
        let written = RebootLedger::record(&path, second, &l).expect("record");
        // The first is more than an hour older than the second: pruned.
        assert_eq!(written.reboots(), &[second]);
        assert_eq!(RebootLedger::load(&path).expect("load"), written);
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "{\"at\":\"2026-11-18T10:46:40.000Z\"}\n"
        );
        // Only the ledger is left in the directory: no temp file.
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [LEDGER_FILE]);
        assert!(matches!(
            check(&path, t0(), Ok(UP), &l),
            RebootDecision::Deny(DenyReason::LimitReached { count: 1, .. })
        ));

        // Within the window both are kept, in order, whatever order they came in.
        let two = RebootLimits {
            max_per_window: 2,
            ..l
        };
        let third = t0() - 40 * MIN;
        let written = RebootLedger::record(&path, third, &two).expect("record");
        assert_eq!(written.reboots(), &[third, second]);
        assert!(matches!(
            check(&path, t0(), Ok(UP), &two),
            RebootDecision::Deny(DenyReason::LimitReached { count: 2, .. })
        ));
    }

    #[test]
    fn a_corrupt_ledger_names_file_and_line_and_fails_safe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = ledger_path(&dir);
        let good = "{\"at\":\"2026-11-18T10:46:40.000Z\"}\n";
        for (bad, line, reason) in [
            ("{\"at\":", 2, "EOF while parsing"),
            ("{\"at\":\"yesterday\"}", 2, "not an RFC 3339 time"),
            ("{\"when\":\"2026-11-18T10:46:40Z\"}", 2, "unknown field"),
        ] {
            let text = format!("{good}{bad}\n");
            fs::write(&path, &text).expect("write");
            let err = RebootLedger::load(&path).expect_err("corrupt");
            let msg = err.to_string();
            let head = format!("reboot ledger {} line {line}: ", path.display());
            assert!(msg.starts_with(&head) && msg.contains(reason), "{msg}");
            assert!(!msg.contains("at line 1"), "{msg}");

            // Fail safe: unreadable means no reboot, even with uptime and count fine.
            let l = RebootLimits {
                max_per_window: 5,
                ..RebootLimits::default()
            };
            let r = deny(check(&path, t0(), Ok(UP), &l));
            assert_eq!(r, DenyReason::LedgerUnreadable(msg.clone()));
            assert!(
                r.to_string()
                    .starts_with("ledger unreadable: reboot ledger ")
            );

            // Recording refuses too, and leaves the evidence as it was.
            assert!(RebootLedger::record(&path, t0(), &l).is_err());
            assert_eq!(fs::read_to_string(&path).expect("read"), text);
        }
    }

    #[test]
    fn an_unreadable_uptime_fails_safe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = deny(check(
            &ledger_path(&dir),
            t0(),
            parse_uptime("garbage"),
            &RebootLimits::default(),
        ));
        assert_eq!(
            r.to_string(),
            "uptime unreadable: /proc/uptime holds \"garbage\", not seconds"
        );
    }

    #[test]
    fn write_errors_name_the_step() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing-dir").join(LEDGER_FILE);
        let err = RebootLedger::record(&path, t0(), &RebootLimits::default())
            .expect_err("no such directory");
        assert!(
            err.to_string().starts_with("write reboot ledger: create "),
            "{err}"
        );
    }
}
