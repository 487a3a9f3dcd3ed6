//! splitguard-node: splitguard on one node. The configuration, the daemon
//! (`daemon`: the event loop of `splitguard run` and `splitguard watch`), the I/O
//! edges (sockets, netlink, the ARP codec, processes), the watchdog's observers
//! (`watch`), the control socket and status, `/metrics`, the monitoring checks and
//! the keepalived importer. The decisions live in the pure cores it drives: the
//! VRRP core (`splitguard_vrrp`), the arbiter's policy (`splitguard_arbiter`) and
//! the watchdog's classifier and alert engine (`splitguard_watchdog`).

pub mod check;
pub mod config;
pub mod control;
pub mod daemon;
pub mod fence;
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod service;
pub mod status;
pub mod track;
pub mod watch;
pub mod witness;
