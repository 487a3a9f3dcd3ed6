//! The control socket end to end: a real server on a Unix socket in a temp dir, the
//! real client, raw-line clients for misbehaviour, and a child process under another
//! uid (via `setpriv`) for the permission checks. Runs as root, like CI.

use serde_json::Value;
use splitguard_node::control::{
    self, BindError, ClientError, CommandRequest, ControlServer, ErrorKind, Limits, Request,
    Response,
};
use splitguard_node::status::{self, ArbiterStatus, InstanceStatus, Reachability, Status};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(5);
const NOBODY: u32 = 65534;
const CHILD_ENV: &str = "SPLITGUARD_CTL_TEST_CHILD";

/// A fresh directory under the system temp dir, world-traversable so a child under
/// another uid can reach the socket; removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "splitguard-ctl-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn snapshot(node: &str, state: &str) -> Status {
    Status {
        node: node.into(),
        instances: vec![InstanceStatus {
            name: "VI_1".into(),
            vrid: 51,
            interface: "eth0".into(),
            version: 2,
            state: state.into(),
            priority: 150,
            effective_priority: 150,
            vips: vec!["192.0.2.3/24".into()],
            vips_held: state == status::state::MASTER,
            master: Some("192.0.2.5".parse().unwrap()),
            claim_gate: None,
            since_ms: None,
            cause: None,
        }],
        arbiter: ArbiterStatus {
            isolated: false,
            references: vec![Reachability {
                ip: "192.0.2.254".parse().unwrap(),
                reachable: true,
            }],
            peers: vec![],
            quorum: Some(1),
        },
        witness: None,
        fence: None,
        replies: vec![],
        incidents: vec![],
        at_ms: None,
    }
}

/// A serving server and the handles that drive it.
struct Running {
    status: watch::Sender<Status>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("server stops in time")
            .expect("server task not panicked")
            .expect("serve ok");
    }
}

fn serve(server: ControlServer, commands: Option<mpsc::Sender<CommandRequest>>) -> Running {
    let (status, rx) = watch::channel(snapshot("lb01", status::state::BACKUP));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(rx, commands, async move {
        let _ = stopped.await;
    }));
    Running {
        status,
        stop: Some(stop),
        task,
    }
}

/// Sends raw bytes, reads one reply line as JSON.
async fn raw_exchange(stream: &mut BufReader<UnixStream>, bytes: &[u8]) -> Value {
    stream.get_mut().write_all(bytes).await.unwrap();
    read_reply(stream).await
}

async fn read_reply(stream: &mut BufReader<UnixStream>) -> Value {
    let mut line = String::new();
    tokio::time::timeout(WAIT, stream.read_line(&mut line))
        .await
        .expect("a reply in time")
        .unwrap();
    assert!(line.ends_with('\n'), "reply is a full line: {line:?}");
    serde_json::from_str(&line).unwrap()
}

/// After an error the server hangs up: EOF, or ECONNRESET if our bytes were unread.
async fn assert_closed(stream: &mut BufReader<UnixStream>) {
    let mut rest = Vec::new();
    match tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("server closes in time")
    {
        Ok(_) => assert!(rest.is_empty(), "nothing after the error: {rest:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

async fn connect(path: &Path) -> BufReader<UnixStream> {
    BufReader::new(UnixStream::connect(path).await.unwrap())
}

#[tokio::test]
async fn status_is_served_and_follows_the_watch_channel() {
    let dir = TempDir::new("status");
    let path = dir.path("run/sub/splitguard.sock");
    let server = ControlServer::bind(&path, None, 0).unwrap();
    assert_eq!(server.path(), path);
    let running = serve(server, None);

    let got = control::status(&path, WAIT).await.unwrap();
    assert_eq!(got, snapshot("lb01", "BACKUP"));

    // The wire shape, as `jq` or a Zabbix script sees it.
    let mut raw = connect(&path).await;
    let v = raw_exchange(&mut raw, b"{\"cmd\":\"status\"}\n").await;
    assert_eq!(v["ok"], true);
    assert_eq!(v["status"]["node"], "lb01");
    assert_eq!(v["status"]["instances"][0]["state"], "BACKUP");
    assert_eq!(v["status"]["instances"][0]["vips"][0], "192.0.2.3/24");
    assert_eq!(v["status"]["arbiter"]["references"][0]["reachable"], true);

    running.status.send_replace(snapshot("lb01", "MASTER"));
    // Same connection, next request: the newest snapshot.
    let v = raw_exchange(&mut raw, b"{\"cmd\":\"status\"}\n").await;
    assert_eq!(v["status"]["instances"][0]["state"], "MASTER");
    assert_eq!(v["status"]["instances"][0]["vips_held"], true);
    let got = control::status(&path, WAIT).await.unwrap();
    assert_eq!(got.instances[0].state, "MASTER");

    running.stop().await;
}

#[tokio::test]
async fn socket_is_0660_with_the_configured_group_and_removed_on_shutdown() {
    let dir = TempDir::new("mode");
    let path = dir.path("new/splitguard.sock");
    let running = serve(
        ControlServer::bind(&path, Some("nogroup"), 0).unwrap(),
        None,
    );

    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()));
    assert_eq!(meta.mode() & 0o7777, 0o660);
    assert_eq!(meta.gid(), NOBODY, "group nogroup");
    assert_eq!(meta.uid(), 0);
    let parent = std::fs::metadata(dir.path("new")).unwrap();
    assert_eq!(parent.mode() & 0o7777, 0o755, "created parent dir");

    running.stop().await;
    assert!(!path.exists(), "socket file removed on shutdown");

    // Group by name "root" too, and dropping an unserved server removes its file.
    let server = ControlServer::bind(&path, Some("root"), 0).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().gid(), 0);
    drop(server);
    assert!(!path.exists(), "socket file removed on drop");
}

#[tokio::test]
async fn unknown_group_is_an_error_naming_it() {
    let dir = TempDir::new("group");
    let path = dir.path("splitguard.sock");
    let err = ControlServer::bind(&path, Some("no-such-group-sg"), 0).unwrap_err();
    assert!(matches!(err, BindError::Group(_)), "{err:?}");
    assert!(err.to_string().contains("no-such-group-sg"), "{err}");
    assert!(!path.exists(), "nothing created for a bad group");
}

#[tokio::test]
async fn a_second_server_is_refused_while_the_first_runs() {
    let dir = TempDir::new("twice");
    let path = dir.path("splitguard.sock");
    let running = serve(ControlServer::bind(&path, None, 0).unwrap(), None);

    let err = ControlServer::bind(&path, None, 0).unwrap_err();
    assert!(matches!(err, BindError::AlreadyRunning(_)), "{err:?}");
    assert!(
        err.to_string().contains(&format!(
            "another splitguard is running on {}",
            path.display()
        )),
        "{err}"
    );
    // The refused attempt left the first server's socket alone.
    assert_eq!(control::status(&path, WAIT).await.unwrap().node, "lb01");
    running.stop().await;

    // A plain file is never taken for a stale socket.
    std::fs::write(&path, b"not a socket").unwrap();
    let err = ControlServer::bind(&path, None, 0).unwrap_err();
    assert!(matches!(err, BindError::NotASocket(_)), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new("stale");
    let path = dir.path("splitguard.sock");
    // A daemon that died without cleaning up: the file stays, nobody listens.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let err = control::status(&path, WAIT).await.unwrap_err();
    assert!(matches!(err, ClientError::Stale(_)), "{err:?}");

    let running = serve(ControlServer::bind(&path, None, 0).unwrap(), None);
    assert_eq!(control::status(&path, WAIT).await.unwrap().node, "lb01");
    running.stop().await;
}

#[tokio::test]
async fn an_oversized_request_gets_an_error_and_the_connection_closes() {
    let dir = TempDir::new("long");
    let path = dir.path("splitguard.sock");
    let running = serve(ControlServer::bind(&path, None, 0).unwrap(), None);

    let mut raw = connect(&path).await;
    let huge = vec![b'x'; control::protocol::MAX_REQUEST_LINE + 4096];
    let v = raw_exchange(&mut raw, &huge).await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["error_kind"], "request_too_long");
    assert!(v["error"].as_str().unwrap().contains("65536"), "{v}");
    assert_closed(&mut raw).await;

    // The server itself is fine.
    assert_eq!(control::status(&path, WAIT).await.unwrap().node, "lb01");
    running.stop().await;
}

#[tokio::test]
async fn bad_and_unknown_requests_get_errors_and_the_connection_stays_usable() {
    let dir = TempDir::new("unknown");
    let path = dir.path("splitguard.sock");
    let running = serve(ControlServer::bind(&path, None, 0).unwrap(), None);

    let mut raw = connect(&path).await;
    let v = raw_exchange(&mut raw, b"{\"cmd\":\"frobnicate\"}\n").await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["error_kind"], "unknown_command");
    assert!(v["error"].as_str().unwrap().contains("frobnicate"), "{v}");

    let v = raw_exchange(&mut raw, b"status please\n").await;
    assert_eq!(v["error_kind"], "bad_request");
    let v = raw_exchange(&mut raw, b"{\"cmd\":\"demote\",\"instnace\":\"VI_1\"}\n").await;
    assert_eq!(v["error_kind"], "bad_request");
    assert!(v["error"].as_str().unwrap().contains("instnace"), "{v}");

    // Blank lines are skipped; the next request is answered.
    let v = raw_exchange(&mut raw, b"\n\r\n{\"cmd\":\"status\"}\r\n").await;
    assert_eq!(v["ok"], true);
    running.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_hung_up_on() {
    let dir = TempDir::new("idle");
    let path = dir.path("splitguard.sock");
    let limits = Limits {
        read_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let server = ControlServer::bind(&path, None, 0)
        .unwrap()
        .with_limits(limits);
    let running = serve(server, None);

    let mut raw = connect(&path).await;
    // Half a request, never finished.
    raw.get_mut().write_all(b"{\"cmd\":").await.unwrap();
    let v = read_reply(&mut raw).await;
    assert_eq!(v["error_kind"], "timeout");
    assert_closed(&mut raw).await;
    running.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_told_busy() {
    let dir = TempDir::new("busy");
    let path = dir.path("splitguard.sock");
    let limits = Limits {
        max_connections: 1,
        ..Limits::default()
    };
    let server = ControlServer::bind(&path, None, 0)
        .unwrap()
        .with_limits(limits);
    let running = serve(server, None);

    // Answered once, so the server holds it as its one connection.
    let mut first = connect(&path).await;
    assert_eq!(
        raw_exchange(&mut first, b"{\"cmd\":\"status\"}\n").await["ok"],
        true
    );
    let mut second = connect(&path).await;
    let v = read_reply(&mut second).await;
    assert_eq!(v["error_kind"], "busy");
    assert_closed(&mut second).await;

    // Once the first leaves, there is room again (the slot frees asynchronously).
    drop(first);
    let mut ok = false;
    for _ in 0..50 {
        if control::status(&path, WAIT).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a slot frees up after the first client leaves");
    running.stop().await;
}

#[tokio::test]
async fn a_state_change_from_root_reaches_the_daemon_with_peer_credentials() {
    let dir = TempDir::new("root");
    let path = dir.path("splitguard.sock");
    let (tx, mut rx) = mpsc::channel::<CommandRequest>(4);
    // Owner uid is someone else: root passes anyway.
    let running = serve(ControlServer::bind(&path, None, 1000).unwrap(), Some(tx));

    let daemon = tokio::spawn(async move {
        let req = rx.recv().await.expect("a command");
        let seen = (req.command.clone(), req.peer);
        let _ = req.reply.send(Response::done("demoted VI_1"));
        seen
    });
    let resp = control::request(
        &path,
        &Request::Demote {
            instance: Some("VI_1".into()),
        },
        WAIT,
    )
    .await
    .unwrap();
    assert!(resp.ok, "{resp:?}");
    assert_eq!(resp.message.as_deref(), Some("demoted VI_1"));

    let (command, peer) = tokio::time::timeout(WAIT, daemon).await.unwrap().unwrap();
    assert_eq!(
        command,
        control::Command::Demote {
            instance: Some("VI_1".into())
        }
    );
    assert_eq!(peer.uid, 0);
    assert_eq!(peer.pid, Some(std::process::id() as i32));
    running.stop().await;
}

#[tokio::test]
async fn state_changes_without_a_handler_are_unsupported_or_unavailable() {
    let dir = TempDir::new("unsupported");
    let path = dir.path("splitguard.sock");
    let running = serve(ControlServer::bind(&path, None, 0).unwrap(), None);
    let resp = control::request(&path, &Request::Resume { instance: None }, WAIT)
        .await
        .unwrap();
    assert!(!resp.ok);
    assert_eq!(resp.error_kind, Some(ErrorKind::Unsupported));
    assert!(resp.error.unwrap().contains("resume"));
    running.stop().await;

    // A daemon loop that drops the request unanswered.
    let (tx, mut rx) = mpsc::channel::<CommandRequest>(1);
    let running = serve(ControlServer::bind(&path, None, 0).unwrap(), Some(tx));
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            drop(req);
        }
    });
    let resp = control::request(&path, &Request::Ack { code: "1".into() }, WAIT)
        .await
        .unwrap();
    assert_eq!(resp.error_kind, Some(ErrorKind::Unavailable), "{resp:?}");
    running.stop().await;
}

#[tokio::test]
async fn client_errors_say_what_is_wrong() {
    let dir = TempDir::new("client");
    let path = dir.path("splitguard.sock");

    let err = control::status(&path, WAIT).await.unwrap_err();
    assert!(matches!(err, ClientError::NotRunning(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "splitguard is not running (no socket at {})",
            path.display()
        )
    );

    // Something that accepts (the backlog does) and never answers.
    let mute = tokio::net::UnixListener::bind(&path).unwrap();
    let err = control::status(&path, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    drop(mute);
    std::fs::remove_file(&path).unwrap();

    // Something that answers nonsense.
    let liar = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        if let Ok((mut s, _)) = liar.accept().await {
            let _ = s.write_all(b"hello\n").await;
        }
    });
    let err = control::status(&path, WAIT).await.unwrap_err();
    assert!(matches!(err, ClientError::Malformed { .. }), "{err:?}");
}

// ---- under another uid, in a child process ----

/// What the child reports: the reply, or the client error's message.
#[derive(Debug)]
enum ChildOutcome {
    Reply(Box<Response>),
    Error(String),
}

/// Runs `child_client` from this test binary as uid/gid 65534 with no supplementary
/// groups, asking `request` on `path`.
async fn as_nobody(path: &Path, request: &Request) -> ChildOutcome {
    let exe = std::env::current_exe().unwrap();
    let out = tokio::process::Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(&exe)
        .args(["--exact", "child_client", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .env(
            "SPLITGUARD_CTL_TEST_REQUEST",
            serde_json::to_string(request).unwrap(),
        )
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("child finishes")
        .expect("setpriv runs (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for line in stdout.lines() {
        // libtest prints "test child_client ... " before our line; skip past it.
        if let Some((_, json)) = line.split_once("CHILD-REPLY ") {
            return ChildOutcome::Reply(Box::new(serde_json::from_str(json).unwrap()));
        }
        if let Some((_, msg)) = line.split_once("CHILD-ERROR ") {
            return ChildOutcome::Error(msg.to_owned());
        }
    }
    panic!("child printed no outcome:\n{stdout}");
}

/// Not a test of its own: the client half of the cross-uid tests, a no-op unless
/// the parent set `SPLITGUARD_CTL_TEST_CHILD`.
#[test]
fn child_client() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let request: Request =
        serde_json::from_str(&std::env::var("SPLITGUARD_CTL_TEST_REQUEST").unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(control::request(PathBuf::from(path), &request, WAIT)) {
        Ok(resp) => println!("CHILD-REPLY {}", serde_json::to_string(&resp).unwrap()),
        Err(e) => println!("CHILD-ERROR {e}"),
    }
}

#[tokio::test]
async fn a_group_member_may_read_status_but_not_change_state() {
    let dir = TempDir::new("nobody");
    let path = dir.path("splitguard.sock");
    let (tx, mut rx) = mpsc::channel::<CommandRequest>(4);
    let running = serve(
        ControlServer::bind(&path, Some("nogroup"), 0).unwrap(),
        Some(tx),
    );

    match as_nobody(&path, &Request::Status).await {
        ChildOutcome::Reply(r) => {
            assert!(r.ok, "{r:?}");
            assert_eq!(r.status.unwrap().node, "lb01");
        }
        other => panic!("status as nobody: {other:?}"),
    }
    match as_nobody(&path, &Request::Demote { instance: None }).await {
        ChildOutcome::Reply(r) => {
            assert!(!r.ok);
            assert_eq!(r.error_kind, Some(ErrorKind::PermissionDenied));
            let msg = r.error.unwrap();
            assert!(msg.starts_with("permission denied: demote"), "{msg}");
            assert!(msg.contains("65534"), "{msg}");
        }
        other => panic!("demote as nobody: {other:?}"),
    }
    assert!(rx.try_recv().is_err(), "the daemon never saw the demote");
    running.stop().await;
}

#[tokio::test]
async fn a_user_outside_the_group_is_told_which_group_to_join() {
    let dir = TempDir::new("outsider");
    let path = dir.path("splitguard.sock");
    let running = serve(ControlServer::bind(&path, Some("root"), 0).unwrap(), None);

    match as_nobody(&path, &Request::Status).await {
        ChildOutcome::Error(msg) => assert_eq!(
            msg,
            format!(
                "cannot connect to {}: permission denied — add this user to group root",
                path.display()
            )
        ),
        other => panic!("expected EACCES: {other:?}"),
    }
    running.stop().await;
}
