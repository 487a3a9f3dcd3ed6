//! splitguard: keeps one owner per virtual IP in an HA pair and tells people at once
//! when that fails. This crate holds the VRRP core, the configuration, the I/O edges
//! (sockets, netlink, processes), the control socket, the watchdog's observers
//! (`watch`) and the lab; the binary's daemon wires them together.

pub mod check;
pub mod config;
pub mod control;
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
pub mod lab;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod service;
pub mod status;
pub mod track;
pub mod vrrp;
pub mod watch;
