//! The mail channel: one SMTP message per notification (lettre, rustls with
//! ring), to all of the channel's recipients in one transaction.
//!
//! Headers a reader (and the reply handler) relies on:
//! - `Subject`: [`Alert::mail_subject`], which carries `[SG-<code>]`.
//! - `Message-ID: <sg.{id}.{notification}.{channel}@splitguard.invalid>`: the
//!   incident id, the notification number and the channel name, so it is stable
//!   per notification (a resend after a crash carries the same ID and clients drop
//!   the copy) yet distinct per channel (someone on two mail channels gets both).
//!   The parts are reduced to `[A-Za-z0-9_+=-]` (anything else becomes `_`).
//! - `In-Reply-To` and `References`: on every notification but the first page,
//!   the first page's Message-ID on this channel (notification 1), derived from
//!   the incident id alone, so repeats, the acknowledgement and the resolution
//!   thread under the first page. A channel that joined later (an escalation
//!   tier) points at a page its readers never got; threading clients treat it as
//!   a phantom root, as Alertmanager's mail threading does.
//! - `Auto-Submitted: auto-generated` (RFC 3834) and
//!   `X-Auto-Response-Suppress: All`, so autoresponders stay quiet and the reply
//!   handler can drop machine answers.
//! - `X-Splitguard-Code`, `X-Splitguard-Incident`, `X-Splitguard-Status`.
//! - `Date`: when the news happened ([`Alert::at`]), so a resend is the same mail.
//!
//! Errors: SMTP 5xx replies (550 mailbox unavailable, 535 bad credentials, 554
//! rejected) are permanent, and bad addresses are refused when the channel is
//! built. Everything else is retried: 4xx replies, refused connections, TLS
//! failures, timeouts, and what lettre calls client errors (a relay that stops
//! offering STARTTLS, no common AUTH mechanism), which the relay's admin can fix
//! while the alert waits. With STARTTLS required nothing is sent in clear: no
//! credentials, no message.
//!
//! The transport opens a connection per notification and QUITs after it (lettre
//! without its `pool` feature): alerts are rare, and a pool's idle connections
//! would be dead by the next one.

use std::time::{Duration, SystemTime};

use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Receipt, SendError, install_crypto_provider};
use crate::core::alert::{Alert, AlertStatus};
use crate::core::message_id::{message_id, thread_root};
use crate::core::secret::Secret;

pub const HEADER_CODE: &str = "X-Splitguard-Code";
pub const HEADER_INCIDENT: &str = "X-Splitguard-Incident";
pub const HEADER_STATUS: &str = "X-Splitguard-Status";

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS, which must be offered
    /// (submission, port 587).
    Starttls,
    /// No TLS (a relay on localhost or a lab).
    None,
}

/// A mail channel as configured (`type = "mail"`).
#[derive(Debug, Clone)]
pub struct MailSpec {
    pub name: String,
    pub tier: u8,
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// With a username the channel authenticates (the password may be empty);
    /// without one it never does, password or not.
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    /// For connecting and for each SMTP command.
    pub timeout: Duration,
}

pub struct MailChannel {
    pub spec: MailSpec,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// Boxed: the TLS parameters make it large, and `Channel` holds one by value.
    transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
}

impl std::fmt::Debug for MailChannel {
    // The transport holds the credentials; print the spec (whose password is a
    // Secret) only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailChannel")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl MailChannel {
    /// Checks the addresses and prepares the transport; connects only on send.
    pub fn new(spec: MailSpec) -> Result<Self, SendError> {
        let what = format!("mail {}", spec.name);
        let from: Mailbox = spec
            .from
            .parse()
            .map_err(|e| SendError::permanent(format!("{what}: from {:?}: {e}", spec.from)))?;
        if spec.to.is_empty() {
            return Err(SendError::permanent(format!("{what}: no recipients")));
        }
        let to = spec
            .to
            .iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|e| SendError::permanent(format!("{what}: to {t:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        install_crypto_provider();
        let builder = match spec.tls {
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&spec.host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&spec.host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                spec.host.as_str(),
            )),
        }
        .map_err(|e| SendError::permanent(format!("{what}: TLS setup for {}: {e}", spec.host)))?;
        let mut builder = builder.port(spec.port).timeout(Some(spec.timeout));
        if let Some(user) = &spec.username {
            let password = spec
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(MailChannel {
            from,
            to,
            transport: Box::new(builder.build()),
            spec,
        })
    }

    /// Sends the notification; the receipt's reference is its Message-ID.
    pub async fn send(&self, alert: &Alert) -> Result<Receipt, SendError> {
        let what = format!("mail {}", self.spec.name);
        let message = build_message(&self.spec.name, &self.from, &self.to, alert)
            .map_err(|e| SendError::permanent(format!("{what}: {e}")))?;
        let id = message_id(alert, &self.spec.name);
        // The timeout covers each SMTP command; this bounds the whole exchange
        // (connect, EHLO, STARTTLS, AUTH, MAIL, RCPT per recipient, DATA, QUIT).
        let overall = self.spec.timeout.saturating_mul(8 + self.to.len() as u32);
        match tokio::time::timeout(overall, self.transport.send(message)).await {
            Ok(Ok(_response)) => Ok(Receipt {
                reference: Some(id),
            }),
            Ok(Err(e)) => Err(classify(&what, &e)),
            Err(_) => Err(SendError::retry(format!(
                "{what}: no answer within {overall:?}"
            ))),
        }
    }
}

impl MailChannel {
    /// A direct answer to one person (a reply's confirmation): plain text, the
    /// loop guards of every alert mail, `Re:` the subject they wrote.
    pub async fn send_text(
        &self,
        to: &str,
        subject: &str,
        text: &str,
    ) -> Result<Receipt, SendError> {
        let what = format!("mail {}", self.spec.name);
        let to: Mailbox = to
            .parse()
            .map_err(|e| SendError::permanent(format!("{what}: to {to:?}: {e}")))?;
        let subject = if subject.to_ascii_lowercase().starts_with("re:") {
            subject.to_owned()
        } else {
            format!("Re: {subject}")
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .raw_header(raw("Auto-Submitted", "auto-replied"))
            .raw_header(raw("X-Auto-Response-Suppress", "All"))
            .body(text.to_owned())
            .map_err(|e| SendError::permanent(format!("{what}: {e}")))?;
        match tokio::time::timeout(
            self.spec.timeout.saturating_mul(8),
            self.transport.send(message),
        )
        .await
        {
            Ok(Ok(_)) => Ok(Receipt::default()),
            Ok(Err(e)) => Err(classify(&what, &e)),
            Err(_) => Err(SendError::retry(format!("{what}: no answer"))),
        }
    }
}

/// Maps an SMTP failure to retry or give up: only a permanent (5xx) reply is
/// final.
fn classify(what: &str, e: &lettre::transport::smtp::Error) -> SendError {
    // lettre's text names the reply code ("permanent error (550): …").
    let message = format!("{what}: SMTP {e}");
    if e.is_permanent() {
        SendError::permanent(message)
    } else {
        SendError::retry(message)
    }
}

/// `Name: value` as a lettre raw header.
fn raw(name: &'static str, value: impl Into<String>) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.into())
}

/// The message for `alert` on channel `channel` (pure: tests read its bytes).
pub fn build_message(
    channel: &str,
    from: &Mailbox,
    to: &[Mailbox],
    alert: &Alert,
) -> Result<Message, lettre::error::Error> {
    let mut b = Message::builder()
        .from(from.clone())
        .subject(alert.mail_subject())
        .message_id(Some(message_id(alert, channel)))
        .date(SystemTime::from(alert.at))
        .header(ContentType::TEXT_PLAIN)
        .raw_header(raw("Auto-Submitted", "auto-generated"))
        .raw_header(raw("X-Auto-Response-Suppress", "All"))
        .raw_header(raw(HEADER_CODE, alert.code.clone()))
        .raw_header(raw(HEADER_INCIDENT, alert.id.clone()))
        .raw_header(raw(HEADER_STATUS, alert.status.as_str()));
    for mbox in to {
        b = b.to(mbox.clone());
    }
    let first_page = alert.notification <= 1 && alert.status == AlertStatus::Firing;
    if !first_page {
        let root = thread_root(&alert.id, channel);
        b = b.in_reply_to(root.clone()).references(root);
    }
    b.body(alert.mail_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::alert::AlertStatus;
    use crate::core::alert::testing::sample;

    fn render(alert: &Alert) -> String {
        let from: Mailbox = "splitguard <sg@lb02.example>".parse().unwrap();
        let to: Vec<Mailbox> = vec![
            "oncall@example.com".parse().unwrap(),
            "Second <second@example.com>".parse().unwrap(),
        ];
        let m = build_message("mail0", &from, &to, alert).unwrap();
        String::from_utf8(m.formatted()).unwrap()
    }

    fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
        let head = text.split("\r\n\r\n").next()?;
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
    }

    #[test]
    fn first_page_has_subject_ids_and_loop_guards() {
        let text = render(&sample());
        assert_eq!(
            header(&text, "Subject"),
            Some("[SG-4821] CRITICAL split_brain VIP 10.0.0.3 on lb02")
        );
        assert_eq!(
            header(&text, "Message-ID"),
            Some("<sg.lb02-1.1.mail0@splitguard.invalid>")
        );
        assert_eq!(header(&text, "Auto-Submitted"), Some("auto-generated"));
        assert_eq!(header(&text, "X-Splitguard-Code"), Some("4821"));
        assert_eq!(header(&text, "X-Splitguard-Incident"), Some("lb02-1"));
        assert_eq!(header(&text, "X-Splitguard-Status"), Some("firing"));
        assert_eq!(header(&text, "In-Reply-To"), None);
        assert_eq!(header(&text, "References"), None);
        assert_eq!(
            header(&text, "To"),
            Some("oncall@example.com, Second <second@example.com>")
        );
        assert_eq!(
            header(&text, "Date"),
            Some("Wed, 25 Nov 2026 00:15:00 +0000")
        );
        assert!(text.contains("4821 DEMOTE"), "{text}");
    }

    #[test]
    fn repeats_and_resolution_thread_under_the_first_page() {
        let mut a = sample();
        a.notification = 2;
        let text = render(&a);
        assert_eq!(
            header(&text, "Message-ID"),
            Some("<sg.lb02-1.2.mail0@splitguard.invalid>")
        );
        assert_eq!(
            header(&text, "In-Reply-To"),
            Some("<sg.lb02-1.1.mail0@splitguard.invalid>")
        );
        assert_eq!(
            header(&text, "References"),
            Some("<sg.lb02-1.1.mail0@splitguard.invalid>")
        );
        a.notification = 3;
        a.status = AlertStatus::Resolved;
        let text = render(&a);
        assert!(header(&text, "Subject").unwrap().contains("RESOLVED"));
        assert_eq!(header(&text, "X-Splitguard-Status"), Some("resolved"));
        assert_eq!(
            header(&text, "In-Reply-To"),
            Some("<sg.lb02-1.1.mail0@splitguard.invalid>")
        );
    }

    #[test]
    fn the_same_notification_renders_the_same_ids() {
        let a = sample();
        assert_eq!(render(&a), render(&a.clone()));
        assert_ne!(message_id(&a, "mail0"), message_id(&a, "mail1"));
    }

    #[test]
    fn our_own_alerts_are_skipped_as_replies() {
        // What the mail channel sends, looped back into the reply mailbox.
        use crate::core::reply::mail_parse::{Skip, parse_reply};
        let at: chrono::DateTime<chrono::Utc> = "2026-11-25T00:20:00Z".parse().unwrap();
        let alert = sample();
        let from: Mailbox = "splitguard <sg@lb02.example>".parse().unwrap();
        let to = vec!["replies@example.com".parse().unwrap()];
        let m = build_message("mail0", &from, &to, &alert).unwrap();
        match parse_reply(&m.formatted(), "x", at) {
            Err(Skip::Automatic(w)) => assert!(w.contains("auto-generated"), "{w}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_addresses_are_refused_when_built() {
        let spec = MailSpec {
            name: "m".into(),
            tier: 0,
            host: "192.0.2.254".into(),
            port: 25,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "not an address".into(),
            to: vec!["a@example.com".into()],
            timeout: Duration::from_secs(1),
        };
        let e = MailChannel::new(spec.clone()).unwrap_err();
        assert!(!e.retryable && e.message.contains("from"), "{e}");
        let e = MailChannel::new(MailSpec {
            from: "sg@example.com".into(),
            to: vec![],
            ..spec.clone()
        })
        .unwrap_err();
        assert!(e.message.contains("no recipients"), "{e}");
        let ok = MailChannel::new(MailSpec {
            from: "sg@example.com".into(),
            password: Some(Secret::new("hunter2")),
            username: Some("u".into()),
            ..spec
        })
        .unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
    }
}
