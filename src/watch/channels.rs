//! The configured `[[channel]]`s, turned into the watchdog's senders. The config
//! owns validation; this only maps its values.

use std::sync::Arc;

use anyhow::Context;
use splitguard_watchdog::channels::{Channel, WebhookChannel, WebhookSpec};

use crate::config::{self, Config};

pub fn build(cfg: &Config) -> anyhow::Result<Vec<Arc<Channel>>> {
    let mut out = Vec::new();
    for (i, ch) in cfg.channels.iter().enumerate() {
        let name = cfg.channel_name(i).unwrap_or_default();
        let built = match ch {
            config::Channel::Webhook(w) => Channel::Webhook(
                WebhookChannel::new(WebhookSpec {
                    name: name.clone(),
                    tier: w.tier,
                    url: (*w.url).clone(),
                    hmac_secret: w.hmac_secret.clone(),
                    timeout: w.timeout,
                })
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("channel {name}"))?,
            ),
            other => anyhow::bail!(
                "channel {name}: type {} is not available in this build yet",
                other.kind()
            ),
        };
        out.push(Arc::new(built));
    }
    Ok(out)
}
