//! Ack-by-reply, the pure half: replies from the on-call, by SMS (a signed
//! webhook) or by mail (an IMAP mailbox), in one shape for the parser and the
//! authorization rules; the language, the gate and mail parsing. The
//! transports that receive them are in [`crate::io::reply`].

pub mod mail_parse;

use chrono::{DateTime, Utc};

/// How a reply came in (and so how its confirmation goes out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Twilio's inbound SMS webhook.
    Twilio,
    /// The generic gateway's signed webhook.
    Generic,
    /// A mail in the reply mailbox.
    Mail,
}

/// One reply as received, before it is parsed or authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundReply {
    pub via: Via,
    /// E.164 number or mail address (for mail: the From address, lower case).
    pub from: String,
    /// The text: the SMS body, or the mail's plain-text body (quoted text and
    /// signatures included; the parser skips them).
    pub text: String,
    /// Mail only: the Subject (carries `[SG-<code>]` when replied to).
    pub subject: Option<String>,
    /// Mail only: the Message-IDs in In-Reply-To and References, in order.
    pub refers_to: Vec<String>,
    /// What makes this reply unique at its source (Twilio MessageSid, mail
    /// Message-ID), so a redelivered reply is handled once.
    pub reference: String,
    pub received_at: DateTime<Utc>,
}

pub mod gate;
pub mod parse;
