//! splitguard-watchdog: what people hear.
//!
//! - [`core`] is the pure half: the vocabulary of incidents (kinds and severities,
//!   named exactly as the status JSON and webhook contracts spell them),
//!   classification, the alert engine, alert wording and reply parsing and
//!   authorization. No sockets, files, async or clock reads.
//! - [`io`] is the I/O half: alert channels, the spool and its dispatcher, the
//!   HTTP listener and the reply transports (webhooks, IMAP).

pub mod core;
#[doc(hidden)]
pub mod fuzzing;
pub mod io;

pub use crate::core::alert::{Alert, AlertStatus};
pub use crate::core::incident::{IncidentKind, Severity};
