//! The webhook channel: POSTs the alert's JSON body. Headers carry the
//! idempotency key (also in the body) and, with a secret, an HMAC-SHA256
//! signature over `<timestamp>.<body>` so a receiver can check origin and
//! refuse replays.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Receipt, SendError, http_client};
use crate::core::alert::Alert;
use crate::core::secret::Secret;

pub const HEADER_IDEMPOTENCY: &str = "Idempotency-Key";
pub const HEADER_TIMESTAMP: &str = "X-Splitguard-Timestamp";
pub const HEADER_SIGNATURE: &str = "X-Splitguard-Signature";

#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub name: String,
    pub tier: u8,
    pub url: url::Url,
    pub hmac_secret: Option<Secret>,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct WebhookChannel {
    pub spec: WebhookSpec,
    client: reqwest::Client,
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>").
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl WebhookChannel {
    pub fn new(spec: WebhookSpec) -> Result<Self, SendError> {
        let client = http_client(spec.timeout)?;
        Ok(WebhookChannel { spec, client })
    }

    pub async fn send(&self, alert: &Alert) -> Result<Receipt, SendError> {
        let what = format!("webhook {}", self.spec.name);
        let body = serde_json::to_vec(&alert.webhook_body())
            .map_err(|e| SendError::permanent(format!("{what}: encode body: {e}")))?;
        let mut req = self
            .client
            .post(self.spec.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_IDEMPOTENCY, &alert.idempotency_key);
        if let Some(secret) = &self.spec.hmac_secret {
            let ts = chrono::Utc::now().timestamp();
            req = req.header(HEADER_TIMESTAMP, ts.to_string()).header(
                HEADER_SIGNATURE,
                signature(secret.expose().as_bytes(), ts, &body),
            );
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::from_reqwest(&what, &e))?;
        let status = resp.status();
        if status.is_success() {
            Ok(Receipt::default())
        } else {
            let text = resp.text().await.unwrap_or_default();
            let mut hide = super::url_secrets(&self.spec.url);
            hide.extend(self.spec.hmac_secret.iter().map(|s| s.expose().to_owned()));
            let hide: Vec<&str> = hide.iter().map(String::as_str).collect();
            Err(SendError::from_status(&what, status, &text, &hide))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected value from Python: hmac.new(b"Jefe", b"0.what do ya want for
    /// nothing?", hashlib.sha256).hexdigest().
    #[test]
    fn signature_is_hmac_sha256_hex_over_timestamp_and_body() {
        let sig = signature(b"Jefe", 0, b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
        );
        assert_ne!(sig, signature(b"Jefe", 1, b"what do ya want for nothing?"));
    }
}
