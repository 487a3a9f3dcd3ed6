//! splitguard-watchdog: what people hear.
//!
//! It owns the vocabulary of incidents (kinds and severities, named exactly as the
//! status JSON and webhook contracts spell them) and, as they are built, observation,
//! classification, alerting and reply handling.

pub mod alert;
pub mod channels;
pub mod classify;
pub mod dispatch;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod incident;
pub mod listener;
pub mod reply;
pub mod secret;
pub mod spool;

pub use alert::{Alert, AlertStatus};
pub use incident::{IncidentKind, Severity};
