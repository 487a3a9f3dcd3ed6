//! Runs one external command for a tracker or a notify: argv executed directly (no
//! shell), stdin/stdout/stderr on `/dev/null`, in its own process group, bounded by a
//! timeout. On timeout, or if the caller drops the future, the whole group gets
//! SIGKILL and the leader is reaped, so neither a stuck check nor a `sleep` it started
//! outlives its run, and no zombie is left behind.
//!
//! Output is discarded rather than captured: a grandchild that inherits a pipe would
//! keep the read open past the timeout, and keepalived discards it too.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use thiserror::Error;

use crate::config::format_duration;
use tokio::process::{Child, Command};
use tracing::debug;

/// How long to wait for a SIGKILLed leader to be reaped before leaving it to tokio's
/// background reaper (only a process stuck in uninterruptible sleep takes this long).
const REAP_BOUND: Duration = Duration::from_secs(5);

/// A run that produced no exit status.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("empty command")]
    Empty,
    #[error("could not start {program}: {source}")]
    Start {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("timed out after {}", format_duration(*.after))]
    TimedOut { after: Duration },
    #[error("could not wait for {program}: {source}")]
    Wait {
        program: String,
        #[source]
        source: io::Error,
    },
}

/// Runs `argv` to completion or until `timeout`; `Ok` carries the exit status (which
/// may be a failure). Cancel-safe: dropping the future kills the process group.
pub async fn run(argv: &[String], timeout: Duration) -> Result<ExitStatus, RunError> {
    let (program, args) = argv.split_first().ok_or(RunError::Empty)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own group, so a timeout can kill what the script started as well.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| RunError::Start {
        program: program.clone(),
        source,
    })?;
    // Declared after `child`, so on cancellation it drops first and kills the group
    // while the leader is still unreaped (its pid, hence the group id, cannot be reused).
    let mut group = GroupKiller::new(&child);
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            // Reaped: the group id may be reused from now on, so never signal it.
            group.disarm();
            Ok(status)
        }
        Ok(Err(source)) => Err(RunError::Wait {
            program: program.clone(),
            source,
        }),
        Err(_) => {
            group.kill();
            reap(&mut child, program).await;
            Err(RunError::TimedOut { after: timeout })
        }
    }
}

/// Waits (bounded) for a killed leader so it does not linger as a zombie.
async fn reap(child: &mut Child, program: &str) {
    // The group kill may have missed a leader that left the group; kill it by pid.
    let _ = child.start_kill();
    match tokio::time::timeout(REAP_BOUND, child.wait()).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => debug!(%program, %error, "wait after kill failed"),
        // Dropping the child hands it to tokio's orphan reaper.
        Err(_) => debug!(%program, "killed process not reaped yet; left to the reaper"),
    }
}

/// SIGKILLs a child's process group on drop unless disarmed.
struct GroupKiller {
    pgid: Option<libc::pid_t>,
}

impl GroupKiller {
    fn new(child: &Child) -> Self {
        // A pid of 0 or 1 would signal our own group or everything: never use those.
        let pgid = child
            .id()
            .and_then(|id| libc::pid_t::try_from(id).ok())
            .filter(|&pid| pid > 1);
        GroupKiller { pgid }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }

    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: kill(2) takes plain integers and touches no memory of ours. The
            // group is the child's own (`process_group(0)`), and its leader is not reaped
            // yet, so the id still names that group.
            let rc = unsafe { libc::kill(-pgid, libc::SIGKILL) };
            if rc != 0 {
                // ESRCH: the whole group is already gone; nothing to do.
                debug!(pgid, error = %io::Error::last_os_error(), "killpg failed");
            }
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `exit status 1` or `killed by signal 9`, for log lines and tracker details.
pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn exit_statuses() {
        let t = Duration::from_secs(10);
        let ok = run(&argv(&["/bin/true"]), t).await.expect("true runs");
        assert!(ok.success());
        let bad = run(&argv(&["/bin/false"]), t).await.expect("false runs");
        assert_eq!(describe_status(bad), "exit status 1");
        let sig = run(&argv(&["/bin/sh", "-c", "kill -9 $$"]), t)
            .await
            .expect("sh runs");
        assert_eq!(describe_status(sig), "killed by signal 9");
    }

    #[tokio::test]
    async fn errors_read_well() {
        let t = Duration::from_secs(10);
        assert!(matches!(run(&[], t).await, Err(RunError::Empty)));
        let missing = run(&argv(&["/nonexistent/check"]), t).await;
        let text = missing.expect_err("missing program").to_string();
        assert!(
            text.starts_with("could not start /nonexistent/check: No such file"),
            "{text}"
        );
        let slow = run(&argv(&["sleep", "5"]), Duration::from_millis(100)).await;
        assert_eq!(
            slow.expect_err("times out").to_string(),
            "timed out after 100ms"
        );
    }
}
