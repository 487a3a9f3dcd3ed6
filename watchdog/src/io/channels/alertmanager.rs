//! The Alertmanager channel: `POST {url}/api/v2/alerts` with one alert, so
//! Alertmanager's routing, grouping, inhibition and silences take over from there.
//!
//! A cluster (`urls`): Alertmanager's HA rule is that clients post every alert
//! to every instance, never through a load balancer; the instances gossip and
//! notify once. So a notice goes to each instance at once, each post with the
//! channel's timeout ([`AlertmanagerChannel::post_each`]); it counts as sent
//! when any instance took it. Which instances still owe a copy, and for how
//! long they are retried, is `core::fanout`'s; the dispatcher drives it.
//!
//! The alert's labels identify the incident and never change during its life
//! (Alertmanager's fingerprint is the label set, so the resolution must carry the
//! same labels as the page): `alertname` (the kind), `severity`, `node`,
//! `instance` and `vip` (when known) and `incident` (its id). Annotations carry
//! the words: `summary` (the cause), `code` (to ack by reply), `owners`.
//!
//! Times: `startsAt` is when the incident fired. While firing, `endsAt` is
//! [`AlertmanagerSpec::firing_ttl`] after the notification: Alertmanager resolves
//! an alert by itself once `endsAt` passes (and, without one, after its
//! `resolve_timeout`, 5m by default), and our engine stops repeating once
//! someone acks, so a short horizon would mark an acked, still open incident
//! resolved. The resolution sets `endsAt` to when it cleared, which ends the
//! alert at once: `GET /api/v2/alerts` no longer lists it.
//!
//! Acknowledgements are not sent: Alertmanager has no ack (its nearest thing, a
//! silence, is a person's decision with an end time), so [`super::Channel::wants`]
//! says no to them.
//!
//! Errors: 2xx is success; 400 (a label set Alertmanager refuses) and other 4xx
//! are permanent; 429, 5xx, timeouts and refused connections are retried.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::{Receipt, SendError, error_text, http_client, join_path};
use crate::core::alert::{Alert, AlertStatus, rfc3339};
use crate::core::fanout::DEFAULT_RETRY_FOR;
use crate::core::secret::redact_url;

/// A day: long enough to outlast any repeat interval, short enough that an alert
/// whose resolution was lost (the node died for good) leaves Alertmanager.
pub const DEFAULT_FIRING_TTL: Duration = Duration::from_secs(24 * 3600);

/// The longest `firing_ttl` honoured (a year and a day), so `endsAt` stays a
/// date Alertmanager parses.
pub const MAX_FIRING_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// An Alertmanager channel as configured (`type = "alertmanager"`).
#[derive(Debug, Clone)]
pub struct AlertmanagerSpec {
    pub name: String,
    pub tier: u8,
    /// Each instance's base URL (`http://am:9093`, or with a path prefix): one
    /// for a lone Alertmanager, every member of a cluster.
    pub urls: Vec<url::Url>,
    /// Each post's timeout.
    pub timeout: Duration,
    /// How long a copy an instance missed (another took the notice) is retried.
    pub retry_for: Duration,
    /// How long after a firing notification Alertmanager keeps the alert active
    /// without another one.
    pub firing_ttl: Duration,
    /// Where the alert links back to (`generatorURL`), if anywhere.
    pub generator_url: Option<url::Url>,
}

impl AlertmanagerSpec {
    /// One Alertmanager, with [`DEFAULT_FIRING_TTL`] and no generator URL.
    pub fn new(name: impl Into<String>, tier: u8, url: url::Url, timeout: Duration) -> Self {
        AlertmanagerSpec::cluster(name, tier, vec![url], timeout)
    }

    /// Every instance of a cluster, with [`DEFAULT_FIRING_TTL`],
    /// [`DEFAULT_RETRY_FOR`] and no generator URL.
    pub fn cluster(
        name: impl Into<String>,
        tier: u8,
        urls: Vec<url::Url>,
        timeout: Duration,
    ) -> Self {
        AlertmanagerSpec {
            name: name.into(),
            tier,
            urls,
            timeout,
            retry_for: DEFAULT_RETRY_FOR,
            firing_ttl: DEFAULT_FIRING_TTL,
            generator_url: None,
        }
    }
}

/// One instance of the cluster.
#[derive(Debug)]
struct Instance {
    alerts_url: url::Url,
    /// Its base URL with credentials masked: what logs, metrics and errors name.
    shown: String,
}

#[derive(Debug)]
pub struct AlertmanagerChannel {
    pub spec: AlertmanagerSpec,
    client: reqwest::Client,
    instances: Vec<Instance>,
}

/// One element of the `POST /api/v2/alerts` array (Alertmanager's `postableAlert`).
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<&'static str, String>,
    pub annotations: BTreeMap<&'static str, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

/// The alert as Alertmanager takes it.
pub fn postable_alert(
    alert: &Alert,
    firing_ttl: Duration,
    generator_url: Option<&url::Url>,
) -> PostableAlert {
    let mut labels = BTreeMap::new();
    labels.insert("alertname", alert.kind.as_str().to_owned());
    labels.insert("severity", alert.severity.as_str().to_owned());
    labels.insert("node", alert.node.clone());
    if let Some(i) = &alert.instance {
        labels.insert("instance", i.clone());
    }
    if let Some(v) = &alert.vip {
        labels.insert("vip", v.to_string());
    }
    labels.insert("incident", alert.id.clone());
    let mut annotations = BTreeMap::new();
    annotations.insert("summary", alert.cause.clone());
    annotations.insert("code", alert.code.clone());
    if !alert.owners.is_empty() {
        annotations.insert("owners", alert.owners.join(", "));
    }
    if alert.missed {
        annotations.insert(
            "missed",
            "opened and resolved before its page could be sent".to_string(),
        );
    }
    let ends_at = match alert.status {
        AlertStatus::Resolved => alert.at,
        AlertStatus::Firing | AlertStatus::Acknowledged => {
            let ttl = chrono::Duration::from_std(firing_ttl.min(MAX_FIRING_TTL))
                .unwrap_or(chrono::Duration::days(366));
            alert.at.checked_add_signed(ttl).unwrap_or(alert.at)
        }
    };
    PostableAlert {
        labels,
        annotations,
        starts_at: rfc3339(alert.started_at),
        ends_at: rfc3339(ends_at),
        generator_url: generator_url.map(|u| u.to_string()),
    }
}

/// The request body: a JSON array of one alert.
pub fn request_body(
    alert: &Alert,
    firing_ttl: Duration,
    generator_url: Option<&url::Url>,
) -> serde_json::Value {
    serde_json::json!([postable_alert(alert, firing_ttl, generator_url)])
}

impl AlertmanagerChannel {
    pub fn new(spec: AlertmanagerSpec) -> Result<Self, SendError> {
        if spec.urls.is_empty() {
            return Err(SendError::permanent(format!(
                "alertmanager {}: no instance URL",
                spec.name
            )));
        }
        let instances = spec
            .urls
            .iter()
            .map(|u| {
                Ok(Instance {
                    alerts_url: join_path(u, &["api", "v2", "alerts"])?,
                    shown: redact_url(u),
                })
            })
            .collect::<Result<Vec<_>, SendError>>()?;
        Ok(AlertmanagerChannel {
            client: http_client(spec.timeout)?,
            instances,
            spec,
        })
    }

    /// How many instances it posts to.
    pub fn instance_count(&self) -> usize {
        self.instances.len()
    }

    /// Instance `i`'s base URL with credentials masked, for logs and metrics.
    pub fn instance_url(&self, i: usize) -> &str {
        self.instances.get(i).map_or("", |x| x.shown.as_str())
    }

    /// Posts firing and resolved notices to every instance; an acknowledgement
    /// is skipped (no request, an empty receipt). Sent when any instance took
    /// it; otherwise every instance's error, retryable when any is. The
    /// receipt names no reference: Alertmanager answers with an empty body.
    /// (The dispatcher uses [`AlertmanagerChannel::post_each`] to also retry
    /// the instances that missed it.)
    pub async fn send(&self, alert: &Alert) -> Result<Receipt, SendError> {
        if alert.status == AlertStatus::Acknowledged {
            return Ok(Receipt::default());
        }
        let results = self.post_each(alert).await;
        if results.iter().any(Result::is_ok) {
            return Ok(Receipt::default());
        }
        Err(self.all_failed(results.into_iter().filter_map(Result::err)))
    }

    /// One error for a notice no instance took: retryable when any part is.
    pub fn all_failed(&self, errors: impl IntoIterator<Item = SendError>) -> SendError {
        let errors: Vec<SendError> = errors.into_iter().collect();
        if errors.len() == 1 {
            return errors.into_iter().next().unwrap_or_else(|| {
                SendError::permanent(format!("alertmanager {}: no instance", self.spec.name))
            });
        }
        let retryable = errors.iter().any(|e| e.retryable);
        let words: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        SendError {
            message: format!("no instance took it: {}", words.join("; ")),
            retryable,
        }
    }

    /// Posts `alert` to every instance at once, each with the channel's
    /// timeout; the results in instance order.
    pub async fn post_each(&self, alert: &Alert) -> Vec<Result<(), SendError>> {
        futures::future::join_all((0..self.instances.len()).map(|i| self.post(i, alert))).await
    }

    /// Posts `alert` to instance `i`.
    pub async fn post(&self, i: usize, alert: &Alert) -> Result<(), SendError> {
        let Some(inst) = self.instances.get(i) else {
            return Err(SendError::permanent(format!(
                "alertmanager {}: no instance {i}",
                self.spec.name
            )));
        };
        let what = format!("alertmanager {} at {}", self.spec.name, inst.shown);
        let body = request_body(
            alert,
            self.spec.firing_ttl,
            self.spec.generator_url.as_ref(),
        );
        let resp = self
            .client
            .post(inst.alerts_url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| SendError::from_reqwest(&what, &e))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            let text = error_text(resp).await;
            let hide = super::url_secrets(&inst.alerts_url);
            let hide: Vec<&str> = hide.iter().map(String::as_str).collect();
            Err(SendError::from_status(&what, status, &text, &hide))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::alert::testing::sample;

    #[test]
    fn firing_alert_has_labels_annotations_and_a_future_end() {
        let a = sample();
        let v = request_body(&a, Duration::from_secs(3600), None);
        assert_eq!(
            v,
            serde_json::json!([{
                "labels": {
                    "alertname": "split_brain",
                    "severity": "critical",
                    "node": "lb02",
                    "instance": "VI_1",
                    "vip": "10.0.0.3",
                    "incident": "lb02-1",
                },
                "annotations": {
                    "summary": "VIP 10.0.0.3 is on lb02 and 02:00:00:00:00:05 answers ARP for it too",
                    "code": "4821",
                    "owners": "02:00:00:00:00:05, 02:00:00:00:00:06",
                },
                "startsAt": "2026-11-25T00:15:00.250Z",
                "endsAt": "2026-11-25T01:15:00.250Z",
            }])
        );
    }

    #[test]
    fn resolution_keeps_the_labels_and_ends_now() {
        let firing = sample();
        let mut resolved = sample();
        resolved.status = AlertStatus::Resolved;
        resolved.notification = 3;
        resolved.at = "2026-11-25T00:20:00Z".parse().unwrap();
        let g = url::Url::parse("http://lb02.example/status").unwrap();
        let p = postable_alert(&resolved, DEFAULT_FIRING_TTL, Some(&g));
        assert_eq!(
            p.labels,
            postable_alert(&firing, DEFAULT_FIRING_TTL, None).labels
        );
        assert_eq!(p.starts_at, "2026-11-25T00:15:00.250Z");
        assert_eq!(p.ends_at, "2026-11-25T00:20:00.000Z");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["generatorURL"], "http://lb02.example/status");
    }

    #[test]
    fn missing_instance_and_vip_are_left_out() {
        let mut a = sample();
        a.instance = None;
        a.vip = None;
        a.owners.clear();
        let p = postable_alert(&a, DEFAULT_FIRING_TTL, None);
        assert!(!p.labels.contains_key("instance") && !p.labels.contains_key("vip"));
        assert!(!p.annotations.contains_key("owners"));
        let huge = postable_alert(&a, Duration::MAX, None);
        assert_eq!(huge.ends_at, "2027-11-26T00:15:00.250Z");
    }

    #[test]
    fn the_url_keeps_a_prefix() {
        let spec = AlertmanagerSpec::new(
            "am",
            0,
            url::Url::parse("http://192.0.2.254:9093/am/").unwrap(),
            Duration::from_secs(1),
        );
        let c = AlertmanagerChannel::new(spec).unwrap();
        assert_eq!(
            c.instances[0].alerts_url.as_str(),
            "http://192.0.2.254:9093/am/api/v2/alerts"
        );
    }

    /// A cluster: each instance gets its own alerts URL; logs and metrics
    /// name it with its password masked; none at all is refused.
    #[test]
    fn each_instance_has_its_url_with_secrets_masked() {
        let urls = [
            "http://am:s3cret@192.0.2.193:9093",
            "http://192.0.2.194:9093/",
        ]
        .map(|u| url::Url::parse(u).unwrap())
        .to_vec();
        let c = AlertmanagerChannel::new(AlertmanagerSpec::cluster(
            "am",
            0,
            urls,
            Duration::from_secs(1),
        ))
        .unwrap();
        assert_eq!(c.instance_count(), 2);
        assert_eq!(c.instance_url(0), "http://am:***@192.0.2.193:9093/");
        assert_eq!(
            c.instances[1].alerts_url.as_str(),
            "http://192.0.2.194:9093/api/v2/alerts"
        );
        let none = AlertmanagerSpec::cluster("am", 0, vec![], Duration::from_secs(1));
        assert!(!AlertmanagerChannel::new(none).unwrap_err().retryable);
        let e = c.all_failed([
            SendError::permanent("a: HTTP 400"),
            SendError::retry("b: refused"),
        ]);
        assert!(
            e.retryable && e.message.contains("a: HTTP 400; b: refused"),
            "{e}"
        );
    }
}
