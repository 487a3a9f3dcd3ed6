//! Runs a standard fence agent (Debian's `fence-agents`) with its stdin
//! protocol: `action=<op>` and one `key=value` line per option, then EOF.
//! Credentials go only to the agent's stdin, never to its argv or
//! environment, and are masked wherever a call is shown. The agent runs in
//! a process group of its own, which is SIGKILLed at the device's timeout
//! (fence_redfish has no request timeout and waits forever on a stalled BMC)
//! or when the caller gives up; its output is read concurrently and kept
//! bounded. Exit codes follow the fence-agents convention: for `status`, 0
//! is on and 2 is off; for an action, 0 is done; anything else failed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use super::{AgentSpec, FenceError, Op, OptionValue, PowerState};

/// How much of each of the agent's stdout and stderr is kept (the last bytes:
/// an agent's error comes at the end).
pub const OUTPUT_LIMIT: usize = 64 * 1024;
/// Where a bare agent name is looked for before the PATH.
const AGENT_DIRS: [&str; 2] = ["/usr/sbin", "/sbin"];
/// The longest a failure's detail gets, in characters.
const DETAIL_LIMIT: usize = 300;
/// How many of the last meaningful stderr lines a failure's detail shows.
const DETAIL_LINES: usize = 3;
/// How long the output is still read after the agent exited: a grandchild
/// (ipmitool) that inherited the pipes must not hold the answer up.
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// How long a killed group's leader is waited for (it is SIGKILLed: at once).
const REAP_GRACE: Duration = Duration::from_secs(2);

/// Whether an option's plain value must be masked anyway: fence agents'
/// password-like options (`password`, `passwd`, `password_script`,
/// `snmp_priv_passwd`, …), and SNMP communities, which are passwords too.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    k.contains("passw")
        || k.contains("secret")
        || k.contains("token")
        || k == "community"
        || k.ends_with("_community")
}

/// Whether `spec` can be written to an agent's stdin as meant: a non-empty
/// agent name (a bare name or an absolute path), option keys of
/// `[A-Za-z0-9_-]` other than `action` (which [`run`] writes), and values
/// without a line break or NUL, which would inject a key of their own.
pub fn validate(spec: &AgentSpec) -> Result<(), String> {
    let agent = spec.agent.as_str();
    if agent.is_empty() || agent.chars().any(char::is_control) {
        return Err(format!("fence agent {agent:?}: not a program name"));
    }
    if agent.contains('/') && !Path::new(agent).is_absolute() {
        return Err(format!(
            "fence agent {agent:?}: give a bare name (found in /usr/sbin, /sbin or the PATH) or an absolute path"
        ));
    }
    for (key, value) in &spec.options {
        let ok_key = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok_key {
            return Err(format!(
                "fence agent {agent}: option key {key:?} must be [A-Za-z0-9_-]+"
            ));
        }
        if key == "action" {
            return Err(format!(
                "fence agent {agent}: `action` is set by splitguard for each call, not an option"
            ));
        }
        let value = match value {
            OptionValue::Plain(v) => v.as_str(),
            OptionValue::Secret(s) => s.expose(),
        };
        if value.contains(['\n', '\r', '\0']) {
            // Never the value itself: it may be a secret.
            return Err(format!(
                "fence agent {agent}: the value of option {key} contains a line break or NUL"
            ));
        }
    }
    Ok(())
}

/// The call [`run`] makes, one line, secrets as `***`.
pub fn describe(spec: &AgentSpec, op: Op) -> String {
    let mut line = format!("{} action={}", spec.agent, op.as_str());
    for (key, value) in &spec.options {
        let shown = match value {
            OptionValue::Plain(v) if !is_secret_key(key) => v.as_str(),
            _ => "***",
        };
        line.push_str(&format!(" {key}={shown}"));
    }
    line
}

/// Carries out `op` with the agent, bounded by `timeout`.
pub async fn run(
    spec: &AgentSpec,
    op: Op,
    timeout: Duration,
) -> Result<Option<PowerState>, FenceError> {
    let what = format!("{} action={}", spec.agent, op.as_str());
    validate(spec).map_err(|detail| FenceError::Invalid { detail })?;
    let program = resolve(&spec.agent).ok_or_else(|| FenceError::Spawn {
        agent: spec.agent.clone(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not found in /usr/sbin, /sbin or the PATH (is fence-agents installed?)",
        ),
    })?;
    let started = Instant::now();
    tracing::debug!(agent = %program.display(), action = op.as_str(), ?timeout, "running fence agent");
    let mut child = tokio::process::Command::new(&program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a timeout kills ipmitool or curl under it too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| FenceError::Spawn {
            agent: spec.agent.clone(),
            source,
        })?;
    // Armed until the agent is reaped: a timeout, or the caller dropping this
    // future, kills the whole group.
    let mut group = GroupGuard(child.id().and_then(|p| i32::try_from(p).ok()));
    let input = stdin_text(spec, op);
    let stdin = child.stdin.take();
    let writer = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            // An agent that exits without reading gives EPIPE: its exit code
            // tells what happened.
            let _ = stdin.write_all(input.as_bytes()).await;
            let _ = stdin.shutdown().await;
        }
    });
    let out = tokio::spawn(read_tail(child.stdout.take()));
    let err = tokio::spawn(read_tail(child.stderr.take()));
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            group.disarm();
            status
        }
        Ok(Err(source)) => {
            group.kill();
            writer.abort();
            out.abort();
            err.abort();
            return Err(FenceError::Spawn {
                agent: spec.agent.clone(),
                source,
            });
        }
        Err(_) => {
            group.kill();
            let _ = tokio::time::timeout(REAP_GRACE, child.wait()).await;
            writer.abort();
            out.abort();
            err.abort();
            tracing::debug!(agent = %program.display(), action = op.as_str(), ?timeout, "fence agent killed at its timeout");
            return Err(FenceError::Timeout {
                what,
                after: timeout,
            });
        }
    };
    writer.abort();
    let stdout = collect(out).await;
    let stderr = collect(err).await;
    let code = status.code();
    tracing::debug!(
        agent = %program.display(),
        action = op.as_str(),
        code,
        elapsed = ?started.elapsed(),
        "fence agent exited"
    );
    map_exit(&what, op, code, &stdout, &stderr)
}

/// What the agent reads on stdin.
fn stdin_text(spec: &AgentSpec, op: Op) -> String {
    let mut text = format!("action={}\n", op.as_str());
    for (key, value) in &spec.options {
        let value = match value {
            OptionValue::Plain(v) => v.as_str(),
            OptionValue::Secret(s) => s.expose(),
        };
        text.push_str(key);
        text.push('=');
        text.push_str(value);
        text.push('\n');
    }
    text
}

/// The program for `agent`: an absolute path as is, a bare name from
/// [`AGENT_DIRS`] then the PATH. The daemon checks it at its start, so a
/// missing agent fails the start, not the first fence.
pub fn resolve(agent: &str) -> Option<PathBuf> {
    if agent.contains('/') {
        return Some(PathBuf::from(agent));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    AGENT_DIRS
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(agent))
        .find(|p| p.is_file())
}

/// Kills a process group when dropped, unless disarmed.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }

    fn kill(&mut self) {
        if let Some(pgid) = self.0.take()
            && pgid > 0
        {
            // SAFETY: killpg(2) has no memory effects; the group is the
            // agent's own (process_group(0)), its leader not yet reaped.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `pipe` to its end, keeping the last [`OUTPUT_LIMIT`] bytes.
async fn read_tail<R: AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * OUTPUT_LIMIT {
                    kept.drain(..kept.len() - OUTPUT_LIMIT);
                }
            }
        }
    }
    if kept.len() > OUTPUT_LIMIT {
        kept.drain(..kept.len() - OUTPUT_LIMIT);
    }
    kept
}

/// A reader's bytes, or what it had not finished within [`DRAIN_GRACE`]
/// (nothing: a grandchild holds the pipe).
async fn collect(task: tokio::task::JoinHandle<Vec<u8>>) -> Vec<u8> {
    let mut task = task;
    match tokio::time::timeout(DRAIN_GRACE, &mut task).await {
        Ok(Ok(bytes)) => bytes,
        _ => {
            task.abort();
            Vec::new()
        }
    }
}

/// The answer for `op` from the agent's exit code (fence-agents: `status`
/// exits 0 for on, 2 for off; actions exit 0 when done).
pub fn map_exit(
    what: &str,
    op: Op,
    code: Option<i32>,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<Option<PowerState>, FenceError> {
    match (op, code) {
        (Op::Status, Some(0)) => Ok(Some(PowerState::On)),
        (Op::Status, Some(2)) => Ok(Some(PowerState::Off)),
        (Op::Off | Op::On | Op::Reboot, Some(0)) => Ok(None),
        _ => {
            let mut detail = clean_detail(stderr);
            if detail.is_empty() {
                detail = clean_detail(stdout);
            }
            if detail.is_empty() {
                detail = match code {
                    Some(_) => "no output".to_string(),
                    None => "killed by a signal, no output".to_string(),
                };
            }
            Err(FenceError::Failed {
                what: what.to_string(),
                code,
                detail,
            })
        }
    }
}

/// The last meaningful lines of an agent's output, one line of at most
/// [`DETAIL_LIMIT`] characters: Python warnings (every agent prints a
/// `DeprecationWarning` with its source line on stderr), blank lines and
/// the logging's timestamps dropped, control characters replaced.
pub fn clean_detail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let mut lines: Vec<&str> = Vec::new();
    let mut in_warning = false;
    for line in text.lines() {
        if is_python_warning(line) {
            in_warning = true;
            continue;
        }
        // A warning's source line (and any traceback under it) is indented.
        if in_warning && line.starts_with([' ', '\t']) {
            continue;
        }
        in_warning = false;
        let line = strip_timestamp(line.trim());
        if !line.is_empty() {
            lines.push(line);
        }
    }
    let tail = lines[lines.len().saturating_sub(DETAIL_LINES)..].join(" | ");
    let one_line: String = tail
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() > DETAIL_LIMIT {
        let cut: String = one_line.chars().take(DETAIL_LIMIT).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// `path:line: SomethingWarning: message`, what Python's warnings print.
fn is_python_warning(line: &str) -> bool {
    let Some(at) = line.find("Warning: ") else {
        return false;
    };
    let head = &line[..at];
    // `…:<digits>: <Category>` before the category name.
    let Some(colon) = head.rfind(": ") else {
        return false;
    };
    let category = &head[colon + 2..];
    let location = &head[..colon];
    let lineno = location.rsplit(':').next().unwrap_or("");
    !category.is_empty()
        && category.bytes().all(|b| b.is_ascii_alphanumeric())
        && !lineno.is_empty()
        && lineno.bytes().all(|b| b.is_ascii_digit())
}

/// Drops the `2024-01-31 12:00:00,123 ` the agents' logging puts first.
fn strip_timestamp(line: &str) -> &str {
    let b = line.as_bytes();
    let shape = b"dddd-dd-dd dd:dd:dd,ddd ";
    if b.len() > shape.len()
        && shape.iter().zip(b).all(|(s, c)| match s {
            b'd' => c.is_ascii_digit(),
            s => s == c,
        })
    {
        line[shape.len()..].trim_start()
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitguard_watchdog::core::secret::Secret;

    fn spec() -> AgentSpec {
        AgentSpec {
            agent: "fence_ipmilan".into(),
            options: vec![
                ("ip".into(), OptionValue::Plain("192.0.2.205".into())),
                ("username".into(), OptionValue::Plain("admin".into())),
                (
                    "password".into(),
                    OptionValue::Secret(Secret::new("s3cret")),
                ),
                ("lanplus".into(), OptionValue::Plain("1".into())),
            ],
        }
    }

    #[test]
    fn describe_masks_secrets_and_password_keys() {
        assert_eq!(
            describe(&spec(), Op::Off),
            "fence_ipmilan action=off ip=192.0.2.205 username=admin password=*** lanplus=1"
        );
        let mut s = spec();
        s.options = vec![
            ("passwd".into(), OptionValue::Plain("pw1".into())),
            (
                "password_script".into(),
                OptionValue::Plain("/bin/pw".into()),
            ),
            ("snmp_priv_passwd".into(), OptionValue::Plain("pw2".into())),
            ("community".into(), OptionValue::Plain("private".into())),
            ("token".into(), OptionValue::Secret(Secret::new("t"))),
            (
                "port".into(),
                OptionValue::Secret(Secret::new("secret-port")),
            ),
        ];
        let shown = describe(&s, Op::Status);
        for secret in ["pw1", "/bin/pw", "pw2", "private", "secret-port"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!(shown.matches("***").count(), 6, "{shown}");
    }

    #[test]
    fn stdin_carries_action_then_options() {
        assert_eq!(
            stdin_text(&spec(), Op::Status),
            "action=status\nip=192.0.2.205\nusername=admin\npassword=s3cret\nlanplus=1\n"
        );
    }

    #[test]
    fn validation_refuses_injection_and_bad_keys() {
        assert!(validate(&spec()).is_ok());
        let with = |key: &str, value: OptionValue| {
            let mut s = spec();
            s.options.push((key.into(), value));
            validate(&s)
        };
        let err = with(
            "password",
            OptionValue::Secret(Secret::new("x\naction=off")),
        )
        .unwrap_err();
        assert!(
            err.contains("line break") && !err.contains("action=off"),
            "{err}"
        );
        assert!(with("ip", OptionValue::Plain("a\rb".into())).is_err());
        assert!(with("ip", OptionValue::Plain("a\0b".into())).is_err());
        assert!(with("action", OptionValue::Plain("off".into())).is_err());
        assert!(with("a=b", OptionValue::Plain("x".into())).is_err());
        assert!(with("", OptionValue::Plain("x".into())).is_err());
        assert!(with("systems-uri", OptionValue::Plain("/x".into())).is_ok());
        let mut s = spec();
        s.agent = "sbin/fence_x".into();
        assert!(validate(&s).is_err());
        s.agent = "/usr/sbin/fence_x".into();
        assert!(validate(&s).is_ok());
        s.agent = String::new();
        assert!(validate(&s).is_err());
    }

    #[test]
    fn exit_codes_follow_fence_agents() {
        let m = |op, code| map_exit("w", op, code, b"", b"");
        assert_eq!(m(Op::Status, Some(0)).unwrap(), Some(PowerState::On));
        assert_eq!(m(Op::Status, Some(2)).unwrap(), Some(PowerState::Off));
        assert!(matches!(
            m(Op::Status, Some(1)),
            Err(FenceError::Failed { code: Some(1), .. })
        ));
        for op in [Op::Off, Op::On, Op::Reboot] {
            assert_eq!(m(op, Some(0)).unwrap(), None);
            assert!(m(op, Some(2)).is_err());
            assert!(m(op, Some(1)).is_err());
        }
        assert!(matches!(
            m(Op::Status, None),
            Err(FenceError::Failed { code: None, .. })
        ));
    }

    #[test]
    fn details_drop_python_warnings_and_timestamps() {
        let stderr = b"/usr/sbin/fence_ipmilan:5: DeprecationWarning: 'pipes' is deprecated and slated for removal in Python 3.13\n  from pipes import quote\n2026-12-07 05:07:30,336 ERROR: Failed: Unable to obtain correct plug status or plug is not available\n\n\n";
        assert_eq!(
            clean_detail(stderr),
            "ERROR: Failed: Unable to obtain correct plug status or plug is not available"
        );
        let only_warning = b"/usr/sbin/fence_redfish:9: DeprecationWarning: x\n  import y\n";
        assert_eq!(clean_detail(only_warning), "");
        let e = map_exit("w", Op::Off, Some(1), b"Failed: on stdout\n", only_warning).unwrap_err();
        assert!(e.to_string().contains("Failed: on stdout"), "{e}");
    }

    #[test]
    fn details_are_bounded_single_lines_of_any_bytes() {
        let mut noisy = vec![0xff, 0xfe, b'\x1b', b'['];
        noisy.extend(std::iter::repeat_n(b'x', 5000));
        noisy.extend(b"\nline two\twith tab\nline three\nline four\n");
        let d = clean_detail(&noisy);
        assert!(
            !d.contains('\n') && !d.contains('\t') && !d.contains('\x1b'),
            "{d}"
        );
        assert!(d.chars().count() <= DETAIL_LIMIT + 1);
        let d = clean_detail(b"one\ntwo\nthree\nfour\n");
        assert_eq!(d, "two | three | four");
    }

    #[test]
    fn bare_names_resolve_in_sbin_and_paths_stay() {
        assert_eq!(resolve("/opt/fence_x"), Some(PathBuf::from("/opt/fence_x")));
        assert_eq!(resolve("sh").map(|p| p.is_file()), Some(true));
        assert_eq!(resolve("no-such-fence-agent-here"), None);
    }

    #[tokio::test]
    async fn a_missing_agent_is_a_spawn_error() {
        let mut s = spec();
        s.agent = "no-such-fence-agent-here".into();
        let e = run(&s, Op::Status, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, FenceError::Spawn { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_hanging_agent_and_its_children_are_killed_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fence_hang");
        let marker = dir.path().join("child.pid");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncat >/dev/null\nsleep 600 &\necho $! > {}\nwait\n",
                marker.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut s = spec();
        s.agent = script.to_string_lossy().into_owned();
        let t = Instant::now();
        let e = run(&s, Op::Off, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(matches!(e, FenceError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let pid: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild went with the group (a zombie until init reaps it).
        let gone = (0..100).any(|_| {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let dead =
                state.is_empty() || state.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'));
            if !dead {
                std::thread::sleep(Duration::from_millis(20));
            }
            dead
        });
        assert!(gone, "sleep {pid} survived the timeout");
    }

    #[tokio::test]
    async fn stdin_reaches_the_agent_and_exit_codes_map() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fence_echo");
        let seen = dir.path().join("seen");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncat > {}\necho 'x.py:1: DeprecationWarning: old' >&2\necho '  import old' >&2\necho 'ERROR: BMC said no' >&2\nexit 2\n",
                seen.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut s = spec();
        s.agent = script.to_string_lossy().into_owned();
        let state = run(&s, Op::Status, Duration::from_secs(10)).await.unwrap();
        assert_eq!(state, Some(PowerState::Off));
        assert_eq!(
            std::fs::read_to_string(&seen).unwrap(),
            stdin_text(&s, Op::Status)
        );
        let e = run(&s, Op::Off, Duration::from_secs(10)).await.unwrap_err();
        match e {
            FenceError::Failed { code, detail, .. } => {
                assert_eq!(code, Some(2));
                assert_eq!(detail, "ERROR: BMC said no");
            }
            other => panic!("{other}"),
        }
    }
}
