//! One notification about one incident, as every channel sends it, and the words
//! each channel uses: the webhook body (DESIGN.md's contract, extended), the SMS
//! line, the mail subject and body. Pure.

use std::fmt::Write as _;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::core::incident::{IncidentKind, Severity};

/// Where an incident stands in this notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    /// Someone acked it: repeats stop; the other on-call people are told who.
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One notification. `id` names the incident (stable across its repeats and its
/// resolution); `idempotency_key` names this notification on this channel, so a
/// send retried after a crash carries the same key and the receiver can drop the
/// copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub status: AlertStatus,
    pub kind: IncidentKind,
    pub severity: Severity,
    pub node: String,
    pub instance: Option<String>,
    pub vip: Option<IpAddr>,
    /// MACs seen holding the VIP.
    pub owners: Vec<String>,
    /// The cause in words, naming the values (MACs, VRIDs, nodes).
    pub cause: String,
    /// The short numeric code an on-call replies with.
    pub code: String,
    /// When this notification's news happened (fired, acked, resolved).
    pub at: DateTime<Utc>,
    /// When the incident first fired.
    pub started_at: DateTime<Utc>,
    /// 1 for the first page, 2 and up for repeats; resolved and acknowledged
    /// notices count on from there.
    pub notification: u32,
    pub idempotency_key: String,
    /// Who acked, for an acknowledged notice.
    pub acked_by: Option<String>,
    /// A resolved notice for an incident that opened and closed before its
    /// first page left for this channel (unreachable, or busy with what was
    /// queued before): this one notice tells the whole story instead of a
    /// stale page and its end.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missed: bool,
}

/// The webhook body: DESIGN.md's fields first, then the extensions.
#[derive(Debug, Serialize)]
struct WebhookBody<'a> {
    id: &'a str,
    status: &'a str,
    kind: &'a str,
    severity: &'a str,
    node: &'a str,
    instance: Option<&'a str>,
    vip: Option<String>,
    owners: &'a [String],
    cause: &'a str,
    code: &'a str,
    at: String,
    started_at: String,
    notification: u32,
    idempotency_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    acked_by: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    missed: bool,
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Alert {
    /// The JSON body webhooks receive.
    pub fn webhook_body(&self) -> serde_json::Value {
        let body = WebhookBody {
            id: &self.id,
            status: self.status.as_str(),
            kind: self.kind.as_str(),
            severity: self.severity.as_str(),
            node: &self.node,
            instance: self.instance.as_deref(),
            vip: self.vip.map(|v| v.to_string()),
            owners: &self.owners,
            cause: &self.cause,
            code: &self.code,
            at: rfc3339(self.at),
            started_at: rfc3339(self.started_at),
            notification: self.notification,
            idempotency_key: &self.idempotency_key,
            acked_by: self.acked_by.as_deref(),
            missed: self.missed,
        };
        serde_json::to_value(body).unwrap_or(serde_json::Value::Null)
    }

    /// "VIP 10.0.0.3" or the instance name, for short texts.
    fn subject_thing(&self) -> String {
        match (&self.vip, &self.instance) {
            (Some(vip), _) => format!("VIP {vip}"),
            (None, Some(i)) => format!("instance {i}"),
            (None, None) => "node".to_owned(),
        }
    }

    /// One SMS: ASCII only, at most 160 characters, the code and how to reply
    /// first so a cut-off text still carries them.
    pub fn sms_text(&self) -> String {
        let sev = self.severity.as_str().to_ascii_uppercase();
        let head = match self.status {
            AlertStatus::Firing => format!(
                "splitguard {sev} {} {} on {}.",
                self.kind,
                self.subject_thing(),
                self.node
            ),
            AlertStatus::Acknowledged => format!(
                "splitguard ACKED {} {} on {} by {}.",
                self.kind,
                self.subject_thing(),
                self.node,
                self.acked_by.as_deref().unwrap_or("someone")
            ),
            AlertStatus::Resolved if self.missed => format!(
                "splitguard RESOLVED {} {} on {}, open {}-{} UTC, before its page could be sent.",
                self.kind,
                self.subject_thing(),
                self.node,
                self.started_at.format("%H:%M:%S"),
                self.at.format("%H:%M:%S")
            ),
            AlertStatus::Resolved => format!(
                "splitguard RESOLVED {} {} on {}.",
                self.kind,
                self.subject_thing(),
                self.node
            ),
        };
        let tail = match self.status {
            AlertStatus::Firing => format!(
                " Reply {c} to ack, {c} DEMOTE to release it here.",
                c = self.code
            ),
            _ => String::new(),
        };
        let mut text = format!("{head}{tail} {}", self.cause);
        text.retain(|c| c.is_ascii() && !c.is_ascii_control());
        truncate_ascii(&text, 160)
    }

    /// `[SG-<code>] CRITICAL split_brain VIP 10.0.0.3 on lb02`: replies keep the
    /// subject, so the code comes back in it.
    pub fn mail_subject(&self) -> String {
        let what = match self.status {
            AlertStatus::Firing => self.severity.as_str().to_ascii_uppercase(),
            AlertStatus::Acknowledged => "ACKED".to_owned(),
            AlertStatus::Resolved => "RESOLVED".to_owned(),
        };
        let missed = if self.missed {
            " (opened and closed before its page could be sent)"
        } else {
            ""
        };
        format!(
            "[SG-{}] {what} {} {} on {}{missed}",
            self.code,
            self.kind,
            self.subject_thing(),
            self.node
        )
    }

    /// The plain-text mail body.
    pub fn mail_body(&self) -> String {
        let mut b = String::new();
        let _ = writeln!(b, "{}\n", self.cause);
        let _ = writeln!(b, "incident:  {} ({})", self.id, self.status.as_str());
        let _ = writeln!(b, "kind:      {} ({})", self.kind, self.severity);
        let _ = writeln!(b, "node:      {}", self.node);
        if let Some(i) = &self.instance {
            let _ = writeln!(b, "instance:  {i}");
        }
        if let Some(v) = &self.vip {
            let _ = writeln!(b, "vip:       {v}");
        }
        if !self.owners.is_empty() {
            let _ = writeln!(b, "owners:    {}", self.owners.join(", "));
        }
        let _ = writeln!(b, "since:     {}", rfc3339(self.started_at));
        let _ = writeln!(b, "at:        {}", rfc3339(self.at));
        if let Some(by) = &self.acked_by {
            let _ = writeln!(b, "acked by:  {by}");
        }
        if self.missed {
            let _ = writeln!(
                b,
                "\nThis incident opened and resolved on {} before its page could be\n\
                 sent: the page never left, so this notice stands for both.",
                self.node
            );
        }
        if self.status == AlertStatus::Firing {
            let _ = writeln!(
                b,
                "\nReply with {c} to acknowledge, {c} DEMOTE to release the VIP on {n},\n\
                 {c} RESUME to undo that, STATUS for the pair's state, {c} MUTE 30m to mute.",
                c = self.code,
                n = self.node
            );
        }
        b
    }
}

/// The first `max` characters of an ASCII string.
fn truncate_ascii(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared test alert (channels use it too).
    fn sample() -> Alert {
        crate::core::alert::testing::sample()
    }

    #[test]
    fn webhook_body_has_the_contract_fields() {
        let v = sample().webhook_body();
        for k in [
            "id", "status", "kind", "severity", "node", "instance", "vip", "owners", "cause",
            "code", "at",
        ] {
            assert!(v.get(k).is_some(), "missing {k}: {v}");
        }
        assert_eq!(v["status"], "firing");
        assert_eq!(v["kind"], "split_brain");
        assert_eq!(v["vip"], "10.0.0.3");
        assert_eq!(v["at"], "2026-11-25T00:15:00.250Z");
        assert!(v.get("acked_by").is_none());
    }

    #[test]
    fn sms_is_ascii_short_and_leads_with_the_code() {
        let mut a = sample();
        let t = a.sms_text();
        assert!(t.starts_with(
            "splitguard CRITICAL split_brain VIP 10.0.0.3 on lb02. Reply 4821 to ack, 4821 DEMOTE to release it here."
        ), "{t}");
        assert!(t.len() <= 160 && t.is_ascii());
        a.cause = "é".repeat(400);
        let t = a.sms_text();
        assert!(t.len() <= 160 && t.is_ascii(), "{t}");
        a.status = AlertStatus::Resolved;
        assert!(
            a.sms_text()
                .starts_with("splitguard RESOLVED split_brain VIP 10.0.0.3 on lb02.")
        );
    }

    #[test]
    fn mail_subject_carries_the_code() {
        assert_eq!(
            sample().mail_subject(),
            "[SG-4821] CRITICAL split_brain VIP 10.0.0.3 on lb02"
        );
        assert!(sample().mail_body().contains("4821 DEMOTE"));
    }
}

/// A sample alert for the tests of every module that renders or sends one.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Alert, AlertStatus};
    use crate::core::incident::{IncidentKind, Severity};

    /// A first page for a split brain on lb02 (the shape the engine produces).
    pub fn sample() -> Alert {
        let t: chrono::DateTime<chrono::Utc> = "2026-11-25T00:15:00.250Z".parse().unwrap();
        Alert {
            id: "lb02-1".into(),
            status: AlertStatus::Firing,
            kind: IncidentKind::SplitBrain,
            severity: Severity::Critical,
            node: "lb02".into(),
            instance: Some("VI_1".into()),
            vip: Some("10.0.0.3".parse().unwrap()),
            owners: vec!["02:00:00:00:00:05".into(), "02:00:00:00:00:06".into()],
            cause: "VIP 10.0.0.3 is on lb02 and 02:00:00:00:00:05 answers ARP for it too".into(),
            code: "4821".into(),
            at: t,
            started_at: t,
            notification: 1,
            idempotency_key: "lb02-1-firing-1-chan".into(),
            acked_by: None,
            missed: false,
        }
    }
}
