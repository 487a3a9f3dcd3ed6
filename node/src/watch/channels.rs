//! The configured `[[channel]]`s, turned into the watchdog's senders. The config
//! owns validation; this only maps its values.

use std::sync::Arc;

use splitguard_watchdog::core::secret::Secret;
use splitguard_watchdog::io::channels::{
    AlertmanagerChannel, AlertmanagerSpec, Channel, GatewayMethod, HttpSmsChannel, HttpSmsSpec,
    MailChannel, MailSpec, PagerdutyChannel, PagerdutySpec, SendError, SmtpTls, TwilioChannel,
    TwilioSpec, WebhookChannel, WebhookSpec,
};

use crate::config::{self, Config, HttpMethod, Sms, Tls};

fn one(name: String, ch: &config::Channel) -> Result<Channel, SendError> {
    Ok(match ch {
        config::Channel::Webhook(w) => Channel::Webhook(WebhookChannel::new(WebhookSpec {
            name,
            tier: w.tier,
            url: w.url.clone().into_url(),
            hmac_secret: w.hmac_secret.clone(),
            timeout: w.timeout,
        })?),
        config::Channel::Mail(m) => Channel::Mail(MailChannel::new(MailSpec {
            name,
            tier: m.tier,
            host: m.host.clone(),
            port: m.port,
            tls: match m.tls {
                Tls::Implicit => SmtpTls::Implicit,
                Tls::Starttls => SmtpTls::Starttls,
                Tls::None => SmtpTls::None,
            },
            username: m.username.clone(),
            password: m.password.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            timeout: m.timeout,
        })?),
        config::Channel::Sms(Sms::Twilio(t)) => {
            Channel::TwilioSms(TwilioChannel::new(TwilioSpec {
                name,
                tier: t.tier,
                api_url: t.api_url.clone().into_url(),
                account_sid: t.account_sid.clone(),
                auth_token: t.auth_token.clone(),
                from: t.from.clone(),
                to: t.to.clone(),
                timeout: t.timeout,
            })?)
        }
        // Templates may carry gateway credentials: they travel as secrets.
        config::Channel::Sms(Sms::Http(h)) => Channel::HttpSms(HttpSmsChannel::new(HttpSmsSpec {
            name,
            tier: h.tier,
            url_template: Secret::new(&*h.url_template),
            method: match h.method {
                HttpMethod::Get => GatewayMethod::Get,
                HttpMethod::Post => GatewayMethod::Post,
            },
            body_template: h.body_template.as_ref().map(|b| Secret::new(&**b)),
            to: h.to.clone(),
            timeout: h.timeout,
        })?),
        config::Channel::Alertmanager(a) => {
            let urls = a.urls.iter().map(|u| u.clone().into_url()).collect();
            let mut spec = AlertmanagerSpec::cluster(name, a.tier, urls, a.timeout);
            spec.retry_for = a.instance_retry_for;
            Channel::Alertmanager(AlertmanagerChannel::new(spec)?)
        }
        config::Channel::Pagerduty(p) => {
            Channel::Pagerduty(PagerdutyChannel::new(PagerdutySpec {
                name,
                tier: p.tier,
                routing_key: p.routing_key.clone(),
                url: p.url.clone().into_url(),
                timeout: p.timeout,
            })?)
        }
    })
}

pub fn build(cfg: &Config) -> anyhow::Result<Vec<Arc<Channel>>> {
    let mut out = Vec::new();
    for (i, ch) in cfg.channels.iter().enumerate() {
        let name = cfg.channel_name(i).unwrap_or_default();
        let built = one(name.clone(), ch).map_err(|e| anyhow::anyhow!("channel {name}: {e}"))?;
        out.push(Arc::new(built));
    }
    Ok(out)
}
