//! The hardware watchdog feeder (`/dev/watchdog`): the backstop for a self-reboot
//! that hangs, as sbd uses it.
//!
//! Protocol (Linux `Documentation/watchdog/watchdog-api.rst`): opening the device
//! arms it; any write keeps it alive for another driver timeout; writing the magic
//! character `V` just before closing disarms it on drivers with Magic Close (unless
//! the kernel runs with `nowayout`). Closing without `V` leaves it counting down, so
//! a daemon that crashes or hangs gets its node reset. No ioctls are used: the
//! timeout is the driver's own (softdog: `soft_margin`, 60 s by default), and the
//! same code runs against a regular file in tests.
//!
//! The rule the daemon follows (it owns the timing; this module only writes):
//! - It feeds the device only while healthy, i.e. not isolated, and while isolated
//!   with the reboot not (yet) allowed.
//! - Once the node is isolated and the reboot is due, allowed by the ledger and
//!   recorded, it stops feeding, then runs the reboot command. If the command
//!   hangs, the hardware resets the node within one driver timeout.
//!   Stopping earlier, at the first sign of isolation, would reset the node behind
//!   the ledger's back: a node isolated in its first ten minutes would reboot in a
//!   loop, which is what the ledger exists to prevent.
//! - On a clean shutdown, [`HwWatchdog::close_disarm`].
//!
//! The file is opened without create (a mistyped path must not become a regular
//! file that is "fed" and protects nothing) and close-on-exec (the reboot command
//! must not inherit it).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Any byte keeps the watchdog alive; NUL is what the kernel's example feeder writes.
const KEEPALIVE: &[u8] = b"\0";
/// The Magic Close character.
const MAGIC_CLOSE: &[u8] = b"V";

#[derive(Debug, thiserror::Error)]
pub enum HwWatchdogError {
    #[error("open watchdog device {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("feed watchdog device {}: {source}", path.display())]
    Feed {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("disarm watchdog device {}: {source}", path.display())]
    Disarm {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// An open (so armed) watchdog device. Dropping it without
/// [`HwWatchdog::close_disarm`] leaves the watchdog running, on purpose.
#[derive(Debug)]
pub struct HwWatchdog {
    file: File,
    path: PathBuf,
}

impl HwWatchdog {
    /// Opens (and so arms) the device. Only one process may hold it: a second
    /// opener gets EBUSY, named in the error.
    pub fn open(path: &Path) -> Result<Self, HwWatchdogError> {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| HwWatchdogError::Open {
                path: path.to_owned(),
                source,
            })?;
        if let Ok(meta) = file.metadata()
            && !meta.file_type().is_char_device()
        {
            tracing::warn!(
                path = %path.display(),
                "watchdog path is not a character device: feeding it resets nothing"
            );
        }
        Ok(HwWatchdog {
            file,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the watchdog alive for another driver timeout.
    pub fn feed(&mut self) -> Result<(), HwWatchdogError> {
        self.write(KEEPALIVE)
            .map_err(|source| HwWatchdogError::Feed {
                path: self.path.clone(),
                source,
            })
    }

    /// Writes the Magic Close character and closes the device: a clean shutdown,
    /// after which the watchdog no longer counts (on drivers with Magic Close and
    /// without `nowayout`; others keep counting and reset the node).
    pub fn close_disarm(mut self) -> Result<(), HwWatchdogError> {
        self.write(MAGIC_CLOSE)
            .map_err(|source| HwWatchdogError::Disarm {
                path: self.path.clone(),
                source,
            })
        // `self.file` closes here.
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(dir: &tempfile::TempDir) -> PathBuf {
        let path = dir.path().join("watchdog");
        std::fs::write(&path, b"").expect("create stand-in device");
        path
    }

    #[test]
    fn feeds_then_magic_close_are_written_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = device(&dir);
        let mut wd = HwWatchdog::open(&path).expect("open");
        assert_eq!(wd.path(), path);
        for _ in 0..3 {
            wd.feed().expect("feed");
        }
        wd.close_disarm().expect("disarm");
        assert_eq!(std::fs::read(&path).expect("read"), b"\0\0\0V");
    }

    #[test]
    fn dropping_without_disarm_writes_no_magic_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = device(&dir);
        let mut wd = HwWatchdog::open(&path).expect("open");
        wd.feed().expect("feed");
        drop(wd);
        assert_eq!(std::fs::read(&path).expect("read"), b"\0");
    }

    #[test]
    fn a_missing_device_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nowatchdog");
        let err = HwWatchdog::open(&path).expect_err("missing");
        assert_eq!(
            err.to_string(),
            format!(
                "open watchdog device {}: No such file or directory (os error 2)",
                path.display()
            )
        );
        assert!(!path.exists());
    }
}
