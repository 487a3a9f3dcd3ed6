//! The watchdog's I/O half: the channels that send alerts (HTTP, SMTP), the
//! durable spool and its dispatcher (disk, tokio tasks), the bounded HTTP
//! listener and the reply transports (webhooks, IMAP). Decisions come from
//! [`crate::core`]; this half moves them over the network and onto disk.

pub mod channels;
pub mod dispatch;
pub mod listener;
pub mod reply;
pub mod spool;
