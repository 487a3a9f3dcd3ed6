//! Track scripts, notify queues and the event stream against real processes and files.
//! Scripts run as `/bin/sh FILE` so no test writes an executable and races another
//! test's fork (ETXTBSY). Every wait is bounded; bounds are generous, no test asserts a
//! timing beyond "eventually" and "not more often than the floor allows".

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use splitguard_node::notify::events::{Event, EventSink};
use splitguard_node::notify::{Notifier, NotifyError, NotifySpec, ScriptLimit};
use splitguard_node::track::{self, MIN_INTERVAL, ScriptSpec, ScriptTrackers, TrackerUpdate};
use splitguard_vrrp::instance::{Cause, State};
use tokio::sync::mpsc;

const BOUND: Duration = Duration::from_secs(10);

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "splitguard-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes a shell script and returns the argv that runs it with `args`.
    fn script(&self, name: &str, body: &str, args: &[&str]) -> Vec<String> {
        let path = self.join(name);
        fs::write(&path, body).expect("write script");
        let mut argv = vec!["/bin/sh".to_owned(), s(&path)];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 temp path").to_owned()
}

fn spec(name: &str, argv: Vec<String>, interval_ms: u64, rise: u32, fall: u32) -> ScriptSpec {
    ScriptSpec {
        name: name.to_owned(),
        argv,
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_secs(5),
        rise,
        fall,
    }
}

async fn next(rx: &mut mpsc::Receiver<TrackerUpdate>) -> TrackerUpdate {
    tokio::time::timeout(BOUND, rx.recv())
        .await
        .expect("an update within the bound")
        .expect("tracker still running")
}

/// Replaces a file atomically, so a script never reads it half-written.
fn put(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).expect("write");
    fs::rename(&tmp, path).expect("rename");
}

fn read_pid(path: &Path) -> u32 {
    fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid")
}

/// Alive and not a zombie.
fn running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
    }
}

async fn eventually_not_running(pid: u32) {
    let deadline = Instant::now() + BOUND;
    while running(pid) {
        assert!(Instant::now() < deadline, "pid {pid} still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn true_never_reports_and_false_goes_down() {
    let (tx, mut rx) = mpsc::channel(8);
    let ok = track::spawn(spec("ok", vec!["/bin/true".into()], 10, 1, 1), tx.clone());
    let bad = track::spawn(spec("bad", vec!["/bin/false".into()], 10, 1, 2), tx);
    let update = next(&mut rx).await;
    assert_eq!(
        update,
        TrackerUpdate {
            name: "bad".into(),
            up: false,
            detail: "exit status 1".into()
        }
    );
    // Dozens more runs of both: still nothing, since nothing changed.
    let quiet = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
    assert!(quiet.is_err(), "unexpected update {quiet:?}");
    ok.abort();
    bad.abort();
}

#[tokio::test]
async fn a_flipping_check_is_debounced_both_ways() {
    let dir = TempDir::new("flip");
    let code = dir.join("code");
    put(&code, "0");
    let argv = dir.script("check.sh", "exit \"$(cat \"$1\")\"\n", &[&s(&code)]);
    let (tx, mut rx) = mpsc::channel(8);
    let task = track::spawn(spec("flip", argv, 20, 3, 2), tx);

    put(&code, "1");
    let down = next(&mut rx).await;
    assert_eq!((down.name.as_str(), down.up), ("flip", false));
    assert_eq!(down.detail, "exit status 1");

    put(&code, "0");
    let up = next(&mut rx).await;
    assert!(up.up);
    assert_eq!(up.detail, "exit status 0");

    put(&code, "7");
    let down = next(&mut rx).await;
    assert_eq!((down.up, down.detail.as_str()), (false, "exit status 7"));
    task.abort();
}

#[tokio::test]
async fn a_timed_out_check_fails_and_its_processes_are_killed_and_reaped() {
    let dir = TempDir::new("timeout");
    let leader = dir.join("leader");
    let child = dir.join("child");
    // The shell records itself and the `sleep` it starts, then waits for it.
    let argv = dir.script(
        "slow.sh",
        "echo $$ > \"$1\"\nsleep 60 &\necho $! > \"$2\"\nwait\n",
        &[&s(&leader), &s(&child)],
    );
    let mut spec = spec("slow", argv, 60_000, 1, 1);
    spec.timeout = Duration::from_millis(200);
    let (tx, mut rx) = mpsc::channel(8);
    let task = track::spawn(spec, tx);

    let update = next(&mut rx).await;
    assert_eq!(
        (update.up, update.detail.as_str()),
        (false, "timed out after 200ms")
    );
    // The leader was reaped before the update was sent: not even a zombie is left.
    let leader = read_pid(&leader);
    assert!(
        !Path::new(&format!("/proc/{leader}")).exists(),
        "leader {leader} left behind"
    );
    // The grandchild got the group kill (init reaps it; it must at least be dead).
    eventually_not_running(read_pid(&child)).await;
    task.abort();
}

#[tokio::test]
async fn a_missing_executable_is_a_failure() {
    let (tx, mut rx) = mpsc::channel(8);
    let task = track::spawn(
        spec(
            "missing",
            vec!["/nonexistent/splitguard-check".into(), "arg".into()],
            10,
            1,
            3,
        ),
        tx,
    );
    let update = next(&mut rx).await;
    assert!(!update.up);
    assert!(
        update
            .detail
            .starts_with("could not start /nonexistent/splitguard-check: No such file"),
        "{}",
        update.detail
    );
    task.abort();
}

#[tokio::test]
async fn a_zero_interval_is_held_to_the_floor() {
    let dir = TempDir::new("floor");
    let log = dir.join("log");
    let argv = dir.script("count.sh", "echo run >> \"$1\"\nexit 1\n", &[&s(&log)]);
    let (tx, _rx) = mpsc::channel(8);
    let started = Instant::now();
    let task = track::spawn(spec("floor", argv, 0, 1, 1), tx);
    tokio::time::sleep(Duration::from_millis(300)).await;
    task.abort();
    let _ = task.await;
    let elapsed = started.elapsed();
    let runs = fs::read_to_string(&log).unwrap_or_default().lines().count() as u128;
    let allowed = elapsed.as_millis() / MIN_INTERVAL.as_millis() + 1;
    assert!(runs >= 2, "only {runs} runs");
    assert!(
        runs <= allowed,
        "{runs} runs in {elapsed:?}: above the floor"
    );
}

#[tokio::test]
async fn runs_never_overlap() {
    let dir = TempDir::new("overlap");
    let log = dir.join("log");
    let lock = dir.join("lock");
    // Each run takes longer than the interval; a second one starting early would find
    // the lock directory still there.
    let argv = dir.script(
        "slowish.sh",
        "mkdir \"$2\" || echo overlap >> \"$1\"\necho run >> \"$1\"\nsleep 0.05\nrmdir \"$2\"\n",
        &[&s(&log), &s(&lock)],
    );
    let (tx, _rx) = mpsc::channel(8);
    let trackers = ScriptTrackers::spawn([spec("overlap", argv, 10, 1, 1)], &tx);
    assert_eq!(trackers.len(), 1);
    let deadline = Instant::now() + BOUND;
    while fs::read_to_string(&log).unwrap_or_default().lines().count() < 4 {
        assert!(Instant::now() < deadline, "too few runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::timeout(BOUND, trackers.shutdown())
        .await
        .expect("shutdown within the bound");
    let text = fs::read_to_string(&log).expect("log");
    assert!(!text.contains("overlap"), "{text}");
}

#[tokio::test]
async fn a_tracker_stops_when_nobody_listens() {
    let (tx, rx) = mpsc::channel(8);
    let task = track::spawn(spec("idle", vec!["/bin/true".into()], 10, 1, 1), tx);
    drop(rx);
    tokio::time::timeout(BOUND, task)
        .await
        .expect("stops within the bound")
        .expect("no panic");
}

/// Appends its arguments to `$LOG`-style file given first; the first call sleeps.
const LOGGER: &str = "log=\"$1\"; shift\n\
    if mkdir \"$log.slept\" 2>/dev/null; then sleep 0.3; fi\n\
    echo \"$*\" >> \"$log\"\n";

#[tokio::test]
async fn notifies_run_in_order_with_keepalived_arguments() {
    let dir = TempDir::new("notify");
    let out = dir.join("out");
    let o = s(&out);
    let logger = |label: &str| dir.script("log.sh", LOGGER, &[&o, label]);
    let spec = NotifySpec {
        notify: Some(logger("notify")),
        notify_master: Some(logger("notify_master")),
        notify_backup: Some(logger("notify_backup")),
        notify_fault: Some(logger("notify_fault")),
        notify_stop: Some(logger("notify_stop")),
        ..NotifySpec::new("VI_1")
    };
    let handle = Notifier::spawn(spec);
    for (state, prio) in [
        ("BACKUP", 100),
        ("MASTER", 150),
        ("BACKUP", 100),
        ("STOP", 0),
    ] {
        handle.transition(state, prio).expect("queued");
    }
    assert!(
        handle.pending() >= 1,
        "the first notify sleeps, so work is queued"
    );
    tokio::time::timeout(BOUND, handle.drain(BOUND))
        .await
        .expect("bounded")
        .expect("drained");
    assert_eq!(
        fs::read_to_string(&out).expect("output"),
        "notify_backup\n\
         notify INSTANCE VI_1 BACKUP 100\n\
         notify_master\n\
         notify INSTANCE VI_1 MASTER 150\n\
         notify_backup\n\
         notify INSTANCE VI_1 BACKUP 100\n\
         notify_stop\n\
         notify INSTANCE VI_1 STOP 0\n"
    );
}

/// A mass takeover: many instances' scripts at once share the daemon's limit, so
/// no more than it run together, and all of them run.
#[tokio::test]
async fn queues_sharing_a_limit_run_no_more_scripts_at_once_than_it_allows() {
    let dir = TempDir::new("notify-limit");
    let out = dir.join("out");
    let o = s(&out);
    let script = dir.script(
        "slow.sh",
        "echo start >> \"$1\"\nsleep 0.3\necho end >> \"$1\"\n",
        &[&o],
    );
    let limit = ScriptLimit::new(2);
    let handles: Vec<_> = (0..6)
        .map(|k| {
            let spec = NotifySpec {
                notify_master: Some(script.clone()),
                ..NotifySpec::new(format!("VI_{k}"))
            };
            Notifier::spawn_limited(spec, limit.clone())
        })
        .collect();
    for h in &handles {
        h.transition("MASTER", 150).expect("queued");
    }
    for h in handles {
        h.drain(BOUND).await.expect("drained");
    }
    let text = fs::read_to_string(&out).expect("output");
    let (mut running, mut most, mut started) = (0i32, 0i32, 0);
    for line in text.lines() {
        match line {
            "start" => {
                running += 1;
                started += 1;
            }
            "end" => running -= 1,
            other => panic!("unexpected line {other:?}"),
        }
        most = most.max(running);
    }
    assert_eq!(started, 6, "every script ran:\n{text}");
    assert_eq!(running, 0, "{text}");
    assert!(most <= 2, "{most} ran at once:\n{text}");
}

#[tokio::test]
async fn failing_and_hanging_notifies_do_not_stop_the_queue() {
    let dir = TempDir::new("notify-fail");
    let out = dir.join("out");
    let pid = dir.join("pid");
    let hang = dir.script("hang.sh", "echo $$ > \"$1\"\nexec sleep 60\n", &[&s(&pid)]);
    let spec = NotifySpec {
        notify: Some(dir.script("log.sh", "echo \"$*\" >> \"$1\"\n", &[&s(&out)])),
        notify_master: Some(hang),
        notify_backup: Some(vec!["/nonexistent/notify".into()]),
        notify_fault: Some(vec!["/bin/false".into()]),
        timeout: Duration::from_millis(200),
        ..NotifySpec::new("VI_2")
    };
    let handle = Notifier::spawn(spec);
    for (state, prio) in [("MASTER", 150), ("BACKUP", 100), ("FAULT", 0)] {
        handle.transition(state, prio).expect("queued");
    }
    handle.drain(BOUND).await.expect("drained");
    let out = fs::read_to_string(&out).expect("output");
    let lines: Vec<&str> = out.lines().collect();
    // `$1` (the output file) is printed too; compare the appended arguments.
    let tails: Vec<&str> = lines
        .iter()
        .map(|l| l.split_once(' ').map_or("", |(_, t)| t))
        .collect();
    assert_eq!(
        tails,
        [
            "INSTANCE VI_2 MASTER 150",
            "INSTANCE VI_2 BACKUP 100",
            "INSTANCE VI_2 FAULT 0"
        ]
    );
    let pid = read_pid(&pid);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "timed-out notify {pid} left behind"
    );
}

#[tokio::test]
async fn drain_is_bounded_and_kills_what_still_runs() {
    let dir = TempDir::new("notify-drain");
    let pid = dir.join("pid");
    let spec = NotifySpec {
        notify_stop: Some(dir.script("hang.sh", "echo $$ > \"$1\"\nexec sleep 60\n", &[&s(&pid)])),
        ..NotifySpec::new("VI_3")
    };
    let handle = Notifier::spawn(spec);
    handle.transition("STOP", 0).expect("queued");
    handle.transition("STOP", 0).expect("queued");
    // Let the first one start (and write its pid) before giving up on the queue.
    let deadline = Instant::now() + BOUND;
    while !pid.exists() {
        assert!(Instant::now() < deadline, "notify never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let result = handle.drain(Duration::from_millis(200)).await;
    assert!(
        matches!(result, Err(NotifyError::DrainTimedOut { pending: 2, .. })),
        "{result:?}"
    );
    eventually_not_running(read_pid(&pid)).await;
}

#[tokio::test]
async fn the_event_stream_appends_parseable_lines_in_order() {
    use std::os::unix::fs::PermissionsExt;

    let dir = TempDir::new("events");
    let path = dir.join("events.jsonl");
    let sink = EventSink::open(&path).await.expect("open");
    sink.emit(Event::state_changed(
        "VI_1",
        51,
        State::Backup,
        State::Master,
        150,
        &Cause::MasterSilent,
    ))
    .expect("queued");
    sink.emit(Event::claim_withheld(
        "VI_1",
        51,
        "isolated: 0 reference(s) reachable",
    ))
    .expect("queued");
    sink.emit(Event::vip_added("VI_1", 51, "192.0.2.3/24"))
        .expect("queued");
    for seq in 0..200u32 {
        sink.emit(Event::new("tick").field("seq", seq))
            .expect("queued");
    }
    sink.emit(Event::vip_removed("VI_1", 51, "192.0.2.3/24"))
        .expect("queued");
    sink.close(BOUND).await.expect("closed");

    let mode = fs::metadata(&path).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode & !0o640, 0, "mode {mode:o} wider than 0640");

    // A second sink appends after the first one's lines.
    let sink = EventSink::open(&path).await.expect("reopen");
    sink.emit(Event::new("restarted")).expect("queued");
    sink.close(BOUND).await.expect("closed");

    let text = fs::read_to_string(&path).expect("read");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 205);
    let kinds: Vec<&str> = lines
        .iter()
        .map(|v| v["event"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        &kinds[..3],
        ["state_changed", "claim_withheld", "vip_added"]
    );
    assert_eq!(&kinds[203..], ["vip_removed", "restarted"]);
    for (i, v) in lines[3..203].iter().enumerate() {
        assert_eq!(v["seq"], i as u64, "ticks in order");
    }
    let first = &lines[0];
    assert_eq!(first["instance"], "VI_1");
    assert_eq!(first["vrid"], 51);
    assert_eq!(first["from"], "BACKUP");
    assert_eq!(first["to"], "MASTER");
    assert_eq!(first["priority"], 150);
    assert_eq!(first["cause"], "master_silent");
    assert_eq!(lines[1]["reason"], "isolated: 0 reference(s) reachable");
    assert_eq!(lines[2]["vip"], "192.0.2.3/24");
    let stamps: Vec<u64> = lines
        .iter()
        .map(|v| v["at_ms"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "at_ms never goes back"
    );
    assert!(stamps[0] > 1_600_000_000_000, "unix milliseconds");
}
