//! The control socket: how `splitguard status`, `splitguard check vip` and operators
//! talk to the running daemon. Newline-delimited JSON over a Unix stream socket
//! (mode 0660, a configurable group for the monitoring user); reading status needs
//! only access to the socket, changing state needs root or the daemon's owner uid.

pub mod protocol;

pub use protocol::{Command, ErrorKind, Request, RequestError, Response};
