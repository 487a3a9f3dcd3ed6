//! splitguard: keeps one owner per virtual IP in an HA pair and tells people at once
//! when that fails. This crate holds the VRRP core, the configuration, and (as they
//! are built) the daemon, control socket and lab that wire the parts together.

pub mod config;
pub mod lab;
pub mod logging;
pub mod net;
pub mod notify;
pub mod track;
pub mod vrrp;
