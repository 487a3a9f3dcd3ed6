//! Where alerts go: one sender per configured channel. Each takes an [`Alert`] and
//! either delivers it or says why not, and whether trying again can help (5xx,
//! timeouts, refused connections: yes; 4xx, bad credentials: no). Retries,
//! backoff and the once-per-channel record are the spool's business, not theirs.

pub mod alertmanager;
pub mod mail;
pub mod pagerduty;
pub mod sms;
pub mod webhook;

use std::time::Duration;

use crate::core::alert::{Alert, AlertStatus};

pub use alertmanager::{AlertmanagerChannel, AlertmanagerSpec};
pub use mail::{MailChannel, MailSpec, SmtpTls};
pub use pagerduty::{PagerdutyChannel, PagerdutySpec};
pub use sms::{GatewayMethod, HttpSmsChannel, HttpSmsSpec, TwilioChannel, TwilioSpec};
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
    /// pass later. reqwest puts the whole URL in its message; a token in its
    /// query or a password in it must not reach a log, so it is shown redacted.
    pub fn from_reqwest(what: &str, e: &reqwest::Error) -> Self {
        SendError::retry(format!("{what}: {}", describe(e)))
    }

    /// An HTTP status that is not success: 5xx and 429 are retried, other 4xx not.
    /// The start of the remote's body is kept for the operator, with every value
    /// in `hide` (the channel's credentials) masked: a gateway that echoes the
    /// request back must not put a token into a log, the spool or `status`.
    pub fn from_status(what: &str, status: reqwest::StatusCode, body: &str, hide: &[&str]) -> Self {
        // Masked before the cut, so a secret the cut goes through is masked too.
        let snippet: String = mask(body, hide).chars().take(ERROR_BODY_CHARS).collect();
        let message = format!("{what}: HTTP {status}: {snippet}");
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            SendError::retry(message)
        } else {
            SendError::permanent(message)
        }
    }
}

/// How much of a remote error body an error keeps.
const ERROR_BODY_CHARS: usize = 200;

/// `text` with every value of `hide` masked.
pub fn mask(text: &str, hide: &[&str]) -> String {
    hide.iter()
        .filter(|h| h.len() >= MIN_HIDDEN_LEN)
        .fold(text.to_owned(), |out, secret| out.replace(secret, "***"))
}

/// `user:password` as the Authorization header's Basic scheme carries it.
pub fn basic_credentials(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// Shorter values are not masked: masking "a" would garble the message and
/// protect nothing.
const MIN_HIDDEN_LEN: usize = 4;

/// The parts of `url` that carry credentials (its password, also as the Basic
/// credentials a gateway might echo from the Authorization header, and its query
/// values), for [`SendError::from_status`]'s `hide`.
pub fn url_secrets(url: &url::Url) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(password) = url.password() {
        out.push(password.to_owned());
        out.push(basic_credentials(url.username(), password));
    }
    out.extend(url.query_pairs().map(|(_, v)| v.into_owned()));
    if let Some(q) = url.query() {
        out.push(q.to_owned());
    }
    out
}

/// One configured channel, ready to send.
#[derive(Debug)]
pub enum Channel {
    Webhook(WebhookChannel),
    Mail(MailChannel),
    TwilioSms(TwilioChannel),
    HttpSms(HttpSmsChannel),
    Alertmanager(AlertmanagerChannel),
    Pagerduty(PagerdutyChannel),
}

impl Channel {
    /// The channel's name (the spool keys deliveries by it).
    pub fn name(&self) -> &str {
        match self {
            Channel::Webhook(c) => &c.spec.name,
            Channel::Mail(c) => &c.spec.name,
            Channel::TwilioSms(c) => &c.spec.name,
            Channel::HttpSms(c) => &c.spec.name,
            Channel::Alertmanager(c) => &c.spec.name,
            Channel::Pagerduty(c) => &c.spec.name,
        }
    }

    /// The escalation tier: 0 is paged first.
    pub fn tier(&self) -> u8 {
        match self {
            Channel::Webhook(c) => c.spec.tier,
            Channel::Mail(c) => c.spec.tier,
            Channel::TwilioSms(c) => c.spec.tier,
            Channel::HttpSms(c) => c.spec.tier,
            Channel::Alertmanager(c) => c.spec.tier,
            Channel::Pagerduty(c) => c.spec.tier,
        }
    }

    /// Whether this channel wants this kind of notice at all. Alertmanager has no
    /// acknowledgement (silences are a person's decision, not ours), so it takes
    /// firing and resolved only; every other channel takes all three.
    pub fn wants(&self, alert: &Alert) -> bool {
        match self {
            Channel::Alertmanager(_) => alert.status != AlertStatus::Acknowledged,
            _ => true,
        }
    }

    /// Delivers `alert`. A notice the channel does not want (see [`Channel::wants`])
    /// is dropped with an empty receipt, so a spool that skips the check loses
    /// nothing and sends nothing wrong.
    /// Sends `text` to one person on this channel (a reply's confirmation). Only
    /// channels that reach people (mail, SMS) can; the others say so.
    pub async fn send_text(
        &self,
        to: &str,
        subject: &str,
        text: &str,
    ) -> Result<Receipt, SendError> {
        let ascii: String = text
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .take(160)
            .collect();
        match self {
            Channel::Mail(c) => c.send_text(to, subject, text).await,
            Channel::TwilioSms(c) => c
                .send_one(to, &ascii)
                .await
                .map(|reference| Receipt { reference }),
            Channel::HttpSms(c) => c
                .send_one(to, &ascii)
                .await
                .map(|reference| Receipt { reference }),
            _ => Err(SendError::permanent(format!(
                "channel {} cannot answer a person",
                self.name()
            ))),
        }
    }

    pub async fn send(&self, alert: &Alert) -> Result<Receipt, SendError> {
        if !self.wants(alert) {
            return Ok(Receipt::default());
        }
        match self {
            Channel::Webhook(c) => c.send(alert).await,
            Channel::Mail(c) => c.send(alert).await,
            Channel::TwilioSms(c) => c.send(alert).await,
            Channel::HttpSms(c) => c.send(alert).await,
            Channel::Alertmanager(c) => c.send(alert).await,
            Channel::Pagerduty(c) => c.send(alert).await,
        }
    }
}

/// `base` with `segments` appended to its path (`http://am:9093/prefix` +
/// `api/v2/alerts` is `http://am:9093/prefix/api/v2/alerts`), each segment
/// percent-encoded as a path segment.
pub fn join_path(base: &url::Url, segments: &[&str]) -> Result<url::Url, SendError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| SendError::permanent(format!("URL {base} cannot take a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// An HTTP error on one line with its causes: reqwest's own message says only
/// "error sending request for url (…)", and why (refused, reset, TLS, DNS) is
/// further down its source chain. The URL's password and query are masked.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    for cause in causes(e) {
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    match e.url() {
        Some(url) => text.replace(url.as_str(), &crate::core::secret::redact_url(url)),
        None => text,
    }
}

/// The messages below `e` in its source chain, outermost first, each once.
/// Bounded: a chain is a few links; 8 is more than any seen.
pub fn causes(e: &dyn std::error::Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut source = e.source();
    for _ in 0..8 {
        let Some(err) = source else { break };
        let text = err.to_string();
        if !out.iter().any(|o| o.contains(&text)) {
            out.push(text);
        }
        source = err.source();
    }
    out
}

/// The body of a failed answer, for the error message; a body that cannot be read
/// is reported as such rather than hiding the status.
async fn error_text(resp: reqwest::Response) -> String {
    resp.text()
        .await
        .unwrap_or_else(|e| format!("(body unreadable: {})", describe(&e)))
}

/// The shared HTTP client: rustls with the ring provider (installed once for the
/// process, so reqwest and lettre use the same one), a bounded connect timeout.
/// `HTTP(S)_PROXY` from the environment is honoured, as other tools do.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_keep_their_start_with_credentials_masked() {
        let e = SendError::from_status(
            "webhook x",
            reqwest::StatusCode::FORBIDDEN,
            "denied for token s3cr3t-t0ken (user admin)",
            &["s3cr3t-t0ken", "pw", ""],
        );
        assert_eq!(
            e.message,
            "webhook x: HTTP 403 Forbidden: denied for token *** (user admin)"
        );
        assert!(!e.retryable);
        // A secret the 200-character cut goes through is masked as a whole.
        let long = format!("{}s3cr3t-t0ken", "x".repeat(195));
        let e = SendError::from_status(
            "w",
            reqwest::StatusCode::BAD_GATEWAY,
            &long,
            &["s3cr3t-t0ken"],
        );
        assert!(!e.message.contains("s3cr3t"), "{e}");
        assert!(e.message.ends_with("***") && e.retryable, "{e}");
        let url =
            url::Url::parse("https://u:pa55word@am.example/api/v2/alerts?token=abcd1234").unwrap();
        let hidden = url_secrets(&url);
        assert!(
            hidden.contains(&"pa55word".to_string()) && hidden.contains(&"abcd1234".to_string())
        );
    }

    /// A refused connection to a hook whose URL carries a token: the error
    /// names the host and the cause, never the token.
    #[tokio::test]
    async fn reqwest_errors_do_not_carry_url_credentials() {
        // A port nothing listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let client = http_client(Duration::from_secs(2)).expect("client");
        let e = client
            .get(format!(
                "http://user:pa55word@127.0.0.1:{port}/hook?token=t0k3n"
            ))
            .send()
            .await
            .expect_err("nothing listens");
        let msg = SendError::from_reqwest("webhook w", &e).message;
        assert!(msg.contains(&format!("127.0.0.1:{port}/hook?***")), "{msg}");
        assert!(!msg.contains("t0k3n") && !msg.contains("pa55word"), "{msg}");
    }
}
