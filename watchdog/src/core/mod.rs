//! The watchdog's pure half: incident vocabulary, the classifier, the alert
//! engine, the words alerts are sent in, Message-IDs, secrets and the reply
//! language, gate and mail parsing. Values in, values out: no sockets, no files,
//! no async, and no clock read but the `now` a caller passes in
//! (`tests/purity.rs` holds it to that).

pub mod alert;
pub mod classify;
pub mod engine;
pub mod fanout;
pub mod incident;
pub mod message_id;
pub mod reply;
pub mod secret;
