//! The control socket: how `splitguard status`, `splitguard check vip` and operators
//! talk to the running daemon. Newline-delimited JSON over a Unix stream socket
//! (mode 0660, a configurable group for the monitoring user); reading status needs
//! only access to the socket, changing state needs root or the daemon's owner uid.

pub mod client;
mod group;
pub mod protocol;
pub mod server;

pub use client::{ClientError, request, status};
pub use group::GroupError;
pub use protocol::{Command, ErrorKind, Request, RequestError, Response};
pub use server::{BindError, CommandRequest, ControlServer, Limits, PeerCred, authorize};

/// The outputs every long-running command opens first: the control socket
/// (claimed before anything else, so a second daemon on the same config fails
/// before it touches a VIP) and the `events_file` stream.
pub async fn open_outputs(
    cfg: &crate::config::Config,
) -> anyhow::Result<(ControlServer, Option<crate::notify::events::EventSink>)> {
    use anyhow::Context;
    // SAFETY: getuid(2) cannot fail and has no memory effects.
    let owner_uid = unsafe { libc::getuid() };
    let control = ControlServer::bind(
        &cfg.control_socket,
        cfg.control_socket_group.as_deref(),
        owner_uid,
    )
    .with_context(|| format!("control socket {}", cfg.control_socket.display()))?;
    let events = match &cfg.events_file {
        Some(path) => Some(
            crate::notify::events::EventSink::open(path)
                .await
                .with_context(|| format!("events_file {}", path.display()))?,
        ),
        None => None,
    };
    Ok((control, events))
}
