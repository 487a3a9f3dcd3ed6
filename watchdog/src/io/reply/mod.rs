//! Ack-by-reply, the I/O half: where replies come in, the signed SMS webhooks
//! ([`http`]) and the reply mailbox ([`imap`]), each handing on
//! [`crate::core::reply::InboundReply`]s.

pub mod http;
pub mod imap;
