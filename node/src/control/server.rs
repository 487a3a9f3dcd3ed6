//! The daemon's side of the control socket: binds it safely (no clobbering a live
//! daemon's socket, mode 0660 and the configured group before anyone can connect),
//! answers `status` from the latest snapshot without bothering the daemon loop,
//! passes state-changing commands from root or the owner to the loop, and removes
//! the socket file when it goes away.

use super::group::{self, GroupError};
use super::protocol::{Command, ErrorKind, MAX_REQUEST_LINE, READ_TIMEOUT, Request, Response};
use crate::status::Status;
use socket2::{Domain, SockAddr, Socket, Type};
use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// The socket file's mode: owner and group may connect, nobody else.
pub const SOCKET_MODE: u32 = 0o660;
/// Mode for a parent directory we have to create.
const DIR_MODE: u32 = 0o755;
const BACKLOG: i32 = 128;

/// Bounds that keep a misbehaving client from pinning the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line; a longer one gets an error and the connection is closed.
    pub max_line: usize,
    /// Time allowed for one full request line to arrive.
    pub read_timeout: Duration,
    /// Time allowed for a reply to be taken by the client.
    pub write_timeout: Duration,
    /// Time the daemon loop has to take and answer a command.
    pub command_timeout: Duration,
    /// Connections served at once; the next one is told "busy" and closed.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: MAX_REQUEST_LINE,
            read_timeout: READ_TIMEOUT,
            write_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

/// Who is on the other end, from SO_PEERCRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

impl From<tokio::net::unix::UCred> for PeerCred {
    fn from(c: tokio::net::unix::UCred) -> Self {
        PeerCred {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        }
    }
}

/// A state-changing command for the daemon loop. The loop answers on `reply`;
/// dropping it unanswered tells the client the daemon did not act.
#[derive(Debug)]
pub struct CommandRequest {
    pub command: Command,
    pub peer: PeerCred,
    pub reply: oneshot::Sender<Response>,
}

/// Whether `peer` may make `request`. Reading status needs only the socket's file
/// permissions (owner or group); changing state needs root or the owner uid, since
/// the group is handed to monitoring users.
pub fn authorize(request: &Request, peer: Option<&PeerCred>, owner_uid: u32) -> Result<(), String> {
    if !request.changes_state() {
        return Ok(());
    }
    match peer {
        Some(p) if p.uid == 0 || p.uid == owner_uid => Ok(()),
        Some(p) => Err(format!(
            "permission denied: {} needs root or uid {owner_uid}, you are uid {}",
            request.name(),
            p.uid
        )),
        None => Err(format!(
            "permission denied: {} needs root or uid {owner_uid}, and the caller's \
             credentials are unknown",
            request.name()
        )),
    }
}

#[derive(Debug, Error)]
pub enum BindError {
    #[error("another splitguard is running on {} (it answers connections)", .0.display())]
    AlreadyRunning(PathBuf),
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    #[error("control socket group: {0}")]
    Group(#[from] GroupError),
    #[error(
        "cannot give control socket {} to uid {owner_uid}{}: {source}",
        path.display(),
        group.as_deref().map(|g| format!(" and group {g:?}")).unwrap_or_default()
    )]
    Chown {
        path: PathBuf,
        owner_uid: u32,
        group: Option<String>,
        #[source]
        source: io::Error,
    },
    #[error("control socket {}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> BindError + 'a {
    move |source| BindError::Io {
        path: path.to_owned(),
        what,
        source,
    }
}

/// Removes the socket file on drop, but only if it is still the one we made: a
/// successor that replaced it must keep its socket.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let Ok(meta) = std::fs::symlink_metadata(&self.path) else {
            return;
        };
        if self.id != (meta.dev(), meta.ino()) {
            debug!(path = %self.path.display(), "control socket was replaced; leaving it");
            return;
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => debug!(path = %self.path.display(), "control socket removed"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot remove control socket")
            }
        }
    }
}

/// What is behind an existing socket file.
enum Probe {
    Live,
    Stale,
    Gone,
}

/// Connects without blocking: a full backlog (EAGAIN) still means a live listener.
fn probe(path: &Path) -> io::Result<Probe> {
    let addr = SockAddr::unix(path)?;
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    match sock.connect(&addr) {
        Ok(()) => Ok(Probe::Live),
        Err(e) => match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EINPROGRESS) => Ok(Probe::Live),
            Some(libc::ECONNREFUSED) => Ok(Probe::Stale),
            Some(libc::ENOENT) => Ok(Probe::Gone),
            _ => Err(e),
        },
    }
}

/// A bound control socket, ready to `serve`.
#[derive(Debug)]
pub struct ControlServer {
    listener: std::os::unix::net::UnixListener,
    owner_uid: u32,
    limits: Limits,
    // Declared last so the listener is closed before the file goes.
    file: SocketFile,
}

impl ControlServer {
    /// Binds the control socket at `path`, mode 0660, group `group` (the process's
    /// group when `None`), owned by `owner_uid`, who with root may change state.
    ///
    /// An existing socket file is replaced only if nothing listens on it. The parent
    /// directory is created (0755) if missing. Needs no async runtime.
    pub fn bind(
        path: impl AsRef<Path>,
        group: Option<&str>,
        owner_uid: u32,
    ) -> Result<Self, BindError> {
        let path = path.as_ref();
        // Resolve the group first: a typo should fail before anything is touched.
        let gid = group.map(group::gid_by_name).transpose()?;

        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(parent)
                .map_err(io_err(path, "cannot create its directory"))?;
        }

        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(BindError::NotASocket(path.to_owned()));
            }
            Ok(_) => match probe(path).map_err(io_err(path, "cannot probe existing socket"))? {
                Probe::Live => return Err(BindError::AlreadyRunning(path.to_owned())),
                Probe::Stale => {
                    info!(path = %path.display(), "removing stale control socket");
                    match std::fs::remove_file(path) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => {
                            return Err(io_err(path, "cannot remove stale socket")(e));
                        }
                        _ => {}
                    }
                }
                Probe::Gone => {}
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, "cannot inspect existing path")(e)),
        }

        let addr = SockAddr::unix(path).map_err(io_err(path, "invalid socket path"))?;
        let sock = Socket::new(Domain::UNIX, Type::STREAM, None)
            .map_err(io_err(path, "cannot create socket"))?;
        sock.bind(&addr).map_err(|e| {
            // Another daemon won the race between our probe and our bind.
            if e.kind() == io::ErrorKind::AddrInUse {
                BindError::AlreadyRunning(path.to_owned())
            } else {
                io_err(path, "cannot bind")(e)
            }
        })?;
        let meta = std::fs::symlink_metadata(path).map_err(io_err(path, "cannot stat"))?;
        let file = SocketFile {
            path: path.to_owned(),
            id: (meta.dev(), meta.ino()),
        };
        // Mode and owner are set before listen(): until then connects are refused,
        // so nobody gets in through a umask-wide window.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
            .map_err(io_err(path, "cannot set mode 0660"))?;
        std::os::unix::fs::chown(path, Some(owner_uid), gid).map_err(|source| {
            BindError::Chown {
                path: path.to_owned(),
                owner_uid,
                group: group.map(str::to_owned),
                source,
            }
        })?;
        sock.listen(BACKLOG)
            .map_err(io_err(path, "cannot listen"))?;
        sock.set_nonblocking(true)
            .map_err(io_err(path, "cannot set non-blocking"))?;
        info!(path = %path.display(), ?gid, owner_uid, "control socket listening");
        Ok(ControlServer {
            listener: sock.into(),
            owner_uid,
            limits: Limits::default(),
            file,
        })
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Serves until `shutdown` completes, then closes open connections and removes
    /// the socket file. `status` is read for each `status` request; state-changing
    /// commands go to `commands`, or are answered "unsupported" when it is `None`.
    pub async fn serve(
        self,
        status: watch::Receiver<Status>,
        commands: Option<mpsc::Sender<CommandRequest>>,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let ControlServer {
            listener,
            owner_uid,
            limits,
            file,
        } = self;
        let listener = tokio::net::UnixListener::from_std(listener)?;
        let ctx = Arc::new(Ctx {
            status,
            commands,
            owner_uid,
            limits,
        });
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(done) = conns.join_next(), if !conns.is_empty() => {
                    if let Err(e) = done
                        && e.is_panic()
                    {
                        warn!(error = %e, "control connection task panicked");
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => match slots.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let ctx = ctx.clone();
                            conns.spawn(async move {
                                handle(stream, &ctx).await;
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            warn!(max = limits.max_connections, "control socket busy; turning a client away");
                            // Best effort and non-blocking: a fresh socket's buffer has room.
                            let _ = stream.try_write(
                                &Response::error(ErrorKind::Busy, "busy: too many control connections, try again").to_line(),
                            );
                        }
                    },
                    Err(e) => {
                        // Typically EMFILE; back off rather than spin.
                        warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        conns.shutdown().await;
        drop(listener);
        drop(file);
        Ok(())
    }
}

struct Ctx {
    status: watch::Receiver<Status>,
    commands: Option<mpsc::Sender<CommandRequest>>,
    owner_uid: u32,
    limits: Limits,
}

enum Line {
    Request(Vec<u8>),
    Eof,
    TooLong,
}

/// Reads up to one line of at most `max` bytes (newline excluded). A final line
/// without a newline still counts, so `printf '{"cmd":"status"}' | socat` works.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> io::Result<Line> {
    let mut buf = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let n = (&mut *r).take(limit).read_until(b'\n', &mut buf).await?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if buf.len() > max {
        return Ok(Line::TooLong);
    }
    Ok(Line::Request(buf))
}

async fn handle(stream: UnixStream, ctx: &Ctx) {
    let peer = match stream.peer_cred() {
        Ok(c) => Some(PeerCred::from(c)),
        Err(e) => {
            warn!(error = %e, "control socket: no peer credentials");
            None
        }
    };
    debug!(?peer, "control connection");
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let limits = ctx.limits;
    loop {
        let line =
            match tokio::time::timeout(limits.read_timeout, read_line(&mut rd, limits.max_line))
                .await
            {
                Err(_) => {
                    debug!(?peer, "control connection timed out waiting for a request");
                    let msg = format!(
                        "timeout: no complete request line within {:?}; closing",
                        limits.read_timeout
                    );
                    let _ = send(&mut wr, &Response::error(ErrorKind::Timeout, msg), limits).await;
                    return;
                }
                Ok(Err(e)) => {
                    debug!(?peer, error = %e, "control connection read failed");
                    return;
                }
                Ok(Ok(Line::Eof)) => return,
                Ok(Ok(Line::TooLong)) => {
                    warn!(
                        ?peer,
                        max = limits.max_line,
                        "control request too long; closing"
                    );
                    let msg = format!(
                        "request line longer than {} bytes; closing",
                        limits.max_line
                    );
                    let _ = send(
                        &mut wr,
                        &Response::error(ErrorKind::RequestTooLong, msg),
                        limits,
                    )
                    .await;
                    return;
                }
                Ok(Ok(Line::Request(line))) => line,
            };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let response = respond(&line, peer.as_ref(), ctx).await;
        if let Err(e) = send(&mut wr, &response, limits).await {
            debug!(?peer, error = %e, "control reply not delivered");
            return;
        }
    }
}

async fn send(
    wr: &mut tokio::net::unix::OwnedWriteHalf,
    response: &Response,
    limits: Limits,
) -> io::Result<()> {
    let line = response.to_line();
    match tokio::time::timeout(limits.write_timeout, wr.write_all(&line)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client does not read",
        )),
    }
}

async fn respond(line: &[u8], peer: Option<&PeerCred>, ctx: &Ctx) -> Response {
    let request = match Request::parse(line) {
        Ok(r) => r,
        Err(e) => {
            debug!(?peer, error = %e, "bad control request");
            return Response::error(e.kind(), e.to_string());
        }
    };
    if let Err(msg) = authorize(&request, peer, ctx.owner_uid) {
        warn!(?peer, cmd = request.name(), "control request refused");
        return Response::error(ErrorKind::PermissionDenied, msg);
    }
    let name = request.name();
    let Some(command) = request.into_command() else {
        // Clone out of the watch lock; serialize after releasing it.
        let snapshot = ctx.status.borrow().clone();
        return Response::status(snapshot);
    };
    // Authorized means `peer` is known.
    let Some(peer) = peer.copied() else {
        return Response::error(
            ErrorKind::PermissionDenied,
            "permission denied: unknown caller",
        );
    };
    let Some(commands) = &ctx.commands else {
        return Response::error(
            ErrorKind::Unsupported,
            format!("{name} is not supported by this daemon yet"),
        );
    };
    info!(cmd = name, uid = peer.uid, pid = ?peer.pid, "control command");
    dispatch(commands, command, peer, ctx.limits.command_timeout).await
}

async fn dispatch(
    commands: &mpsc::Sender<CommandRequest>,
    command: Command,
    peer: PeerCred,
    within: Duration,
) -> Response {
    let name = command.name();
    let (reply, answer) = oneshot::channel();
    let unavailable = |why: &str| Response::error(ErrorKind::Unavailable, format!("{name}: {why}"));
    let sent = tokio::time::timeout(
        within,
        commands.send(CommandRequest {
            command,
            peer,
            reply,
        }),
    )
    .await;
    match sent {
        Err(_) => return unavailable("the daemon is too busy to take it; try again"),
        Ok(Err(_)) => return unavailable("the daemon is shutting down"),
        Ok(Ok(())) => {}
    }
    match tokio::time::timeout(within, answer).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => unavailable("the daemon dropped it without an answer"),
        Err(_) => unavailable("no answer from the daemon in time; it may still act"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(uid: u32) -> PeerCred {
        PeerCred {
            uid,
            gid: uid,
            pid: Some(1234),
        }
    }

    #[test]
    fn status_is_open_to_anyone_who_can_connect() {
        assert_eq!(authorize(&Request::Status, Some(&cred(65534)), 0), Ok(()));
        assert_eq!(authorize(&Request::Status, None, 0), Ok(()));
    }

    #[test]
    fn state_changes_need_root_or_the_owner() {
        let demote = Request::Demote { instance: None };
        assert_eq!(authorize(&demote, Some(&cred(0)), 990), Ok(()));
        assert_eq!(authorize(&demote, Some(&cred(990)), 990), Ok(()));
        let err = authorize(&demote, Some(&cred(65534)), 990).unwrap_err();
        assert!(err.starts_with("permission denied: demote"), "{err}");
        assert!(err.contains("65534"), "{err}");
        let ack = Request::Ack { code: "1".into() };
        assert!(authorize(&ack, Some(&cred(1000)), 0).is_err());
        assert!(authorize(&ack, None, 0).is_err());
    }

    #[tokio::test]
    async fn read_line_caps_and_frames() {
        async fn lines(input: &[u8], max: usize) -> Vec<String> {
            let mut r = BufReader::new(input);
            let mut out = Vec::new();
            loop {
                match read_line(&mut r, max).await.unwrap() {
                    Line::Eof => return out,
                    Line::TooLong => {
                        out.push("<too long>".into());
                        return out;
                    }
                    Line::Request(l) => out.push(String::from_utf8(l).unwrap()),
                }
            }
        }
        assert_eq!(lines(b"ab\r\ncd\nef", 4).await, ["ab", "cd", "ef"]);
        assert_eq!(lines(b"abcd\n", 4).await, ["abcd"]);
        assert_eq!(lines(b"abcde\n", 4).await, ["<too long>"]);
        assert_eq!(lines(b"abcde", 4).await, ["<too long>"]);
        assert_eq!(lines(b"", 4).await, Vec::<String>::new());
    }
}
