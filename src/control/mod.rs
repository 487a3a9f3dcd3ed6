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
