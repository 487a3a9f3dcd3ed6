//! The PagerDuty channel: Events API v2 (`POST https://events.pagerduty.com/v2/enqueue`
//! by default). One PagerDuty alert per incident: `dedup_key` is the incident id,
//! so repeats fold into the open alert, and the acknowledgement and resolution
//! reach the same one. Firing sends `trigger` (with the payload), acknowledged
//! sends `acknowledge` and resolved `resolve` (those two carry no payload, as the
//! API wants).
//!
//! Payload: `summary` (the mail subject and the cause, at most 1024 characters),
//! `source` (the node), `severity` (critical, warning or info), `timestamp` (when
//! the news happened), `component` (the VRRP instance), `group` (the VIP),
//! `class` (the kind) and `custom_details` (`code`, `owners`, `cause`, `incident`,
//! `notification`).
//!
//! Errors: 2xx (PagerDuty answers 202) is success; 400 (an invalid event, a bad
//! routing key) and other 4xx are permanent; 429 (rate limited), 5xx, timeouts
//! and refused connections are retried.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Receipt, SendError, error_text, http_client};
use crate::core::alert::{Alert, AlertStatus, rfc3339};
use crate::core::secret::Secret;

pub const DEFAULT_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// PagerDuty truncates longer summaries; we cut them ourselves.
pub const MAX_SUMMARY_CHARS: usize = 1024;

/// A PagerDuty channel as configured (`type = "pagerduty"`).
#[derive(Debug, Clone)]
pub struct PagerdutySpec {
    pub name: String,
    pub tier: u8,
    /// The integration key of a service's Events API v2 integration.
    pub routing_key: Secret,
    /// [`DEFAULT_EVENTS_URL`] unless a proxy or test receiver stands in.
    pub url: url::Url,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct PagerdutyChannel {
    pub spec: PagerdutySpec,
    client: reqwest::Client,
}

/// `trigger`, `acknowledge` or `resolve`.
pub fn event_action(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::Firing => "trigger",
        AlertStatus::Acknowledged => "acknowledge",
        AlertStatus::Resolved => "resolve",
    }
}

/// `[SG-4821] CRITICAL split_brain VIP 10.0.0.3 on lb02: <cause>`, cut to
/// [`MAX_SUMMARY_CHARS`].
pub fn summary(alert: &Alert) -> String {
    format!("{}: {}", alert.mail_subject(), alert.cause)
        .chars()
        .take(MAX_SUMMARY_CHARS)
        .collect()
}

/// The event for `alert`.
pub fn event_body(routing_key: &str, alert: &Alert) -> Value {
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": event_action(alert.status),
        "dedup_key": alert.id,
    });
    if alert.status == AlertStatus::Firing {
        let mut payload = json!({
            "summary": summary(alert),
            "source": alert.node,
            "severity": alert.severity.as_str(),
            "timestamp": rfc3339(alert.at),
            "class": alert.kind.as_str(),
            "custom_details": {
                "code": alert.code,
                "owners": alert.owners,
                "cause": alert.cause,
                "incident": alert.id,
                "notification": alert.notification,
            },
        });
        if let Some(i) = &alert.instance {
            payload["component"] = json!(i);
        }
        if let Some(v) = &alert.vip {
            payload["group"] = json!(v.to_string());
        }
        event["payload"] = payload;
        event["client"] = json!("splitguard");
    }
    event
}

/// The `dedup_key` from PagerDuty's answer (`{"status":"success",
/// "message":"Event processed","dedup_key":"…"}`).
pub fn answered_dedup_key(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v.get("dedup_key")?.as_str().map(str::to_owned)
}

impl PagerdutyChannel {
    pub fn new(spec: PagerdutySpec) -> Result<Self, SendError> {
        Ok(PagerdutyChannel {
            client: http_client(spec.timeout)?,
            spec,
        })
    }

    /// The receipt's reference is the dedup key PagerDuty confirmed (the incident
    /// id when its answer has none).
    pub async fn send(&self, alert: &Alert) -> Result<Receipt, SendError> {
        let what = format!("pagerduty {}", self.spec.name);
        let body = event_body(self.spec.routing_key.expose(), alert);
        let resp = self
            .client
            .post(self.spec.url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| SendError::from_reqwest(&what, &e))?;
        let status = resp.status();
        let text = error_text(resp).await;
        if status.is_success() {
            Ok(Receipt {
                reference: Some(answered_dedup_key(&text).unwrap_or_else(|| alert.id.clone())),
            })
        } else {
            let hide = [self.spec.routing_key.expose()];
            Err(SendError::from_status(&what, status, &text, &hide))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::alert::testing::sample;

    #[test]
    fn trigger_carries_the_payload() {
        let v = event_body("R0UT1NG", &sample());
        assert_eq!(
            v,
            json!({
                "routing_key": "R0UT1NG",
                "event_action": "trigger",
                "dedup_key": "lb02-1",
                "client": "splitguard",
                "payload": {
                    "summary": "[SG-4821] CRITICAL split_brain VIP 10.0.0.3 on lb02: VIP 10.0.0.3 is on lb02 and 02:00:00:00:00:05 answers ARP for it too",
                    "source": "lb02",
                    "severity": "critical",
                    "timestamp": "2026-11-25T00:15:00.250Z",
                    "component": "VI_1",
                    "group": "10.0.0.3",
                    "class": "split_brain",
                    "custom_details": {
                        "code": "4821",
                        "owners": ["02:00:00:00:00:05", "02:00:00:00:00:06"],
                        "cause": "VIP 10.0.0.3 is on lb02 and 02:00:00:00:00:05 answers ARP for it too",
                        "incident": "lb02-1",
                        "notification": 1,
                    },
                },
            })
        );
    }

    #[test]
    fn acknowledge_and_resolve_are_bare() {
        let mut a = sample();
        a.status = AlertStatus::Acknowledged;
        a.acked_by = Some("+15550002222".into());
        assert_eq!(
            event_body("K", &a),
            json!({"routing_key": "K", "event_action": "acknowledge", "dedup_key": "lb02-1"})
        );
        a.status = AlertStatus::Resolved;
        assert_eq!(
            event_body("K", &a),
            json!({"routing_key": "K", "event_action": "resolve", "dedup_key": "lb02-1"})
        );
    }

    #[test]
    fn summary_is_cut_and_optional_fields_left_out() {
        let mut a = sample();
        a.cause = "x".repeat(5000);
        a.instance = None;
        a.vip = None;
        let v = event_body("K", &a);
        assert_eq!(
            v["payload"]["summary"].as_str().unwrap().chars().count(),
            MAX_SUMMARY_CHARS
        );
        assert!(v["payload"].get("component").is_none());
        assert!(v["payload"].get("group").is_none());
    }

    #[test]
    fn the_answer_names_the_dedup_key() {
        assert_eq!(
            answered_dedup_key(
                r#"{"status":"success","message":"Event processed","dedup_key":"lb02-1"}"#
            )
            .as_deref(),
            Some("lb02-1")
        );
        assert_eq!(answered_dedup_key(""), None);
    }
}
