//! Daemons started inside lab hosts (splitguard, keepalived, servers): each is a
//! guard that stops its process when dropped, and keeps its log in a file the test
//! can read and print on failure.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::netns::{Lab, LabError};

/// A process running in a lab host. Dropping it sends SIGTERM, waits a bounded
/// time, then SIGKILLs; the namespace teardown would kill it anyway, but tests
/// often stop one daemon while the lab lives on.
pub struct LabProcess {
    child: Option<Child>,
    pub log: PathBuf,
    pub name: String,
}

impl LabProcess {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The process's output so far (stdout and stderr interleaved).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log under a header naming the process, for a
    /// failure report.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n    ");
        format!("\n  --- {} (last lines) ---\n    {tail}", self.name)
    }

    /// Sends `signal` (e.g. libc::SIGTERM) without waiting.
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe {
                libc::kill(pid as i32, signal);
            }
        }
    }

    /// Waits up to `within` for the process to exit; returns its exit code (None if
    /// killed by a signal or still running).
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The exit status if the process has exited, without waiting (None while it
    /// runs, or when it was already reaped).
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        if let Some(s) = self.wait_exit(grace) {
            return Some(s);
        }
        self.kill()
    }

    /// SIGKILL at once (a crash, as far as the daemon can tell).
    pub fn kill(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop(Duration::from_secs(3));
        }
    }
}

impl Lab {
    /// A scratch directory for this lab's files (configs, logs, pid files); removed
    /// when the lab is dropped.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `text` to `name` in the lab directory, mode 0600, and returns the
    /// path. Private because lab configs hold secrets (auth_pass, tokens), which
    /// splitguard refuses to read from a file others may read; a file another
    /// user must read is opened up by the test that needs it.
    pub fn write_file(&self, name: &str, text: &str) -> Result<PathBuf, LabError> {
        use std::io::Write as _;
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let path = self.dir.join(name);
        let error = |source| LabError::Spawn {
            command: format!("write {}", path.display()),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(error)?;
        // `mode` applies only to a new file; a rewritten one is made private too.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(error)?;
        file.write_all(text.as_bytes()).map_err(error)?;
        Ok(path)
    }

    /// Starts `argv` in `host`, output to `<name>.log` in the lab directory.
    pub fn spawn(&self, host: &str, name: &str, argv: &[&str]) -> Result<LabProcess, LabError> {
        let log = self.dir.join(format!("{name}.log"));
        let out = File::create(&log).map_err(|source| LabError::Spawn {
            command: format!("create {}", log.display()),
            source,
        })?;
        let err = out.try_clone().map_err(|source| LabError::Spawn {
            command: format!("dup {}", log.display()),
            source,
        })?;
        let (program, args) = argv.split_first().ok_or_else(|| LabError::Spawn {
            command: "spawn".into(),
            source: std::io::Error::other("empty argv"),
        })?;
        let mut cmd: Command = self.command(host, program)?;
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            command: argv.join(" "),
            source,
        })?;
        Ok(LabProcess {
            child: Some(child),
            log,
            name: name.to_string(),
        })
    }
}
