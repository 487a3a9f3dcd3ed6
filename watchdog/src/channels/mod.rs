//! Where alerts go: one sender per configured channel. Each takes an [`Alert`] and
//! either delivers it or says why not, and whether trying again can help (5xx,
//! timeouts, refused connections: yes; 4xx, bad credentials: no). Retries,
//! backoff and the once-per-channel record are the spool's business, not theirs.

pub mod webhook;

use std::time::Duration;

use crate::alert::Alert;

pub use webhook::{WebhookChannel, WebhookSpec};

/// What a successful send left behind (a Message-ID, a Twilio SID), for the log
/// and for matching replies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receipt {
    pub reference: Option<String>,
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    /// True when the same send may succeed later.
    pub retryable: bool,
}

impl SendError {
    pub fn retry(message: impl Into<String>) -> Self {
        SendError {
            message: message.into(),
            retryable: true,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        SendError {
            message: message.into(),
            retryable: false,
        }
    }

    /// A reqwest failure: anything before a status (connect, timeout, body) may
    /// pass later.
    pub fn from_reqwest(what: &str, e: &reqwest::Error) -> Self {
        SendError::retry(format!("{what}: {e}"))
    }

    /// An HTTP status that is not success: 5xx and 429 are retried, other 4xx not.
    pub fn from_status(what: &str, status: reqwest::StatusCode, body: &str) -> Self {
        let snippet: String = body.chars().take(200).collect();
        let message = format!("{what}: HTTP {status}: {snippet}");
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            SendError::retry(message)
        } else {
            SendError::permanent(message)
        }
    }
}

/// One configured channel, ready to send.
#[derive(Debug)]
pub enum Channel {
    Webhook(WebhookChannel),
}

impl Channel {
    /// The channel's name (the spool keys deliveries by it).
    pub fn name(&self) -> &str {
        match self {
            Channel::Webhook(c) => &c.spec.name,
        }
    }

    /// The escalation tier: 0 is paged first.
    pub fn tier(&self) -> u8 {
        match self {
            Channel::Webhook(c) => c.spec.tier,
        }
    }

    /// Whether this channel wants this kind of notice at all (e.g. an SMS for an
    /// acknowledgement goes only to those who did not ack).
    pub fn wants(&self, _alert: &Alert) -> bool {
        true
    }

    pub async fn send(&self, alert: &Alert) -> Result<Receipt, SendError> {
        match self {
            Channel::Webhook(c) => c.send(alert).await,
        }
    }
}

/// The shared HTTP client: rustls with the ring provider (installed once for the
/// process, so reqwest and lettre use the same one), no proxy from the
/// environment surprises, a bounded connect timeout.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, SendError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("splitguard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SendError::permanent(format!("HTTP client: {e}")))
}

/// Installs ring as the process's rustls provider; later calls do nothing.
pub fn install_crypto_provider() {
    // Err means one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
