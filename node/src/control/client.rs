//! The client side of the control socket, for `splitguard status`, `check vip` and
//! tests: one request, one reply, within a deadline, with errors that tell the
//! operator what to do (start the daemon, join the socket's group, ...).

use super::group;
use super::protocol::{MAX_RESPONSE_LINE, Request, Response};
use crate::status::Status;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("splitguard is not running (no socket at {})", .0.display())]
    NotRunning(PathBuf),
    #[error("splitguard is not running (stale socket at {}, nothing listening)", .0.display())]
    Stale(PathBuf),
    #[error("cannot connect to {}: permission denied — {hint}", path.display())]
    PermissionDenied { path: PathBuf, hint: String },
    #[error("no reply from splitguard at {} within {after:?}", path.display())]
    Timeout { path: PathBuf, after: Duration },
    #[error("malformed reply from {}: {detail}", path.display())]
    Malformed { path: PathBuf, detail: String },
    /// The daemon answered `ok: false`.
    #[error("splitguard refused: {0}")]
    Refused(String),
    #[error("control socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Sends `req` to the daemon at `path` and returns its reply, `ok: false` included.
pub async fn request(
    path: impl AsRef<Path>,
    req: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let path = path.as_ref();
    match tokio::time::timeout(timeout, exchange(path, req)).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout {
            path: path.to_owned(),
            after: timeout,
        }),
    }
}

/// The daemon's status snapshot; an `ok: false` reply is `ClientError::Refused`.
pub async fn status(path: impl AsRef<Path>, timeout: Duration) -> Result<Status, ClientError> {
    let path = path.as_ref();
    let response = request(path, &Request::Status, timeout).await?;
    match response {
        Response {
            ok: true,
            status: Some(status),
            ..
        } => Ok(status),
        Response { ok: true, .. } => Err(ClientError::Malformed {
            path: path.to_owned(),
            detail: "ok reply without a status".into(),
        }),
        Response { error, .. } => Err(ClientError::Refused(
            error.unwrap_or_else(|| "no reason given".into()),
        )),
    }
}

async fn exchange(path: &Path, req: &Request) -> Result<Response, ClientError> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|e| connect_error(path, e))?;
    let io_err = |source| ClientError::Io {
        path: path.to_owned(),
        source,
    };
    let malformed = |detail: String| ClientError::Malformed {
        path: path.to_owned(),
        detail,
    };
    let mut line = serde_json::to_vec(req).map_err(|e| malformed(e.to_string()))?;
    line.push(b'\n');
    let (rd, mut wr) = stream.into_split();
    wr.write_all(&line).await.map_err(io_err)?;

    let mut reply = Vec::new();
    let limit = u64::try_from(MAX_RESPONSE_LINE).unwrap_or(u64::MAX);
    BufReader::new(rd)
        .take(limit)
        .read_until(b'\n', &mut reply)
        .await
        .map_err(io_err)?;
    if reply.last() != Some(&b'\n') {
        return Err(malformed(if reply.is_empty() {
            "connection closed without a reply".into()
        } else if reply.len() as u64 >= limit {
            format!("reply longer than {MAX_RESPONSE_LINE} bytes")
        } else {
            "connection closed in the middle of a reply".into()
        }));
    }
    serde_json::from_slice(&reply).map_err(|e| malformed(e.to_string()))
}

fn connect_error(path: &Path, e: io::Error) -> ClientError {
    let path = path.to_owned();
    match e.kind() {
        io::ErrorKind::NotFound => ClientError::NotRunning(path),
        io::ErrorKind::ConnectionRefused => ClientError::Stale(path),
        io::ErrorKind::PermissionDenied => {
            let hint = group_hint(&path);
            ClientError::PermissionDenied { path, hint }
        }
        _ => ClientError::Io { path, source: e },
    }
}

/// What to do about EACCES: join the socket's group, if we can see which it is.
fn group_hint(path: &Path) -> String {
    let gid = std::fs::metadata(path).ok().map(|m| m.gid());
    match gid.map(|gid| (gid, group::name_by_gid(gid))) {
        Some((_, Some(name))) => format!("add this user to group {name}"),
        Some((gid, None)) => format!("add this user to group {gid}"),
        None => "run as root or as a member of the socket's group".into(),
    }
}
