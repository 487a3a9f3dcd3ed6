//! Secret-bearing files that others may read: which keys of a [`Config`] hold
//! secrets, the rule on a file's mode, and the check of the config file and the
//! TLS private keys it names. The rule and the key list are pure; [`check`]
//! reads file metadata. What to do about a finding (refuse or warn, per
//! `secret_file_mode`) is the caller's.
//!
//! Group-readable is fine: a service's files are commonly `root:splitguard
//! 0640`. Readable by others is not, whatever the owner.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::schema::{Channel, Config, Sms};
use super::values::HttpUrl;

/// A file that holds secrets and that others may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposed {
    pub path: PathBuf,
    /// The permission bits (`0o644`).
    pub mode: u32,
    /// What it holds: config keys (`instance[0].auth_pass`) or, for a key file,
    /// the key that names it (`reply.tls_key`).
    pub holds: Vec<String>,
    /// A TLS private key file rather than the config itself.
    pub key_file: bool,
}

impl fmt::Display for Exposed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let what = if self.key_file {
            format!("is the TLS private key named by {}", self.holds.join(", "))
        } else {
            format!("holds secrets ({})", self.holds.join(", "))
        };
        write!(
            f,
            "{path}: mode {:04o} lets others read it, and it {what}; run `chmod o-r {path}` \
             (or `chmod 600 {path}`), or set secret_file_mode = \"warn\" to go on anyway",
            self.mode
        )
    }
}

/// True when "others" (neither owner nor group) may read a file of this mode.
pub fn readable_by_others(mode: u32) -> bool {
    mode & 0o004 != 0
}

/// A finding for a file of `mode` holding `holds`, or None when it is fine.
pub fn judge(path: &Path, mode: u32, holds: Vec<String>, key_file: bool) -> Option<Exposed> {
    (readable_by_others(mode) && !holds.is_empty()).then(|| Exposed {
        path: path.to_owned(),
        mode: mode & 0o7777,
        holds,
        key_file,
    })
}

/// A URL carries credentials when it has a password, or a query string (where
/// gateways and hooks put tokens): the parts [`HttpUrl`] masks when shown.
fn url_has_secret(url: &HttpUrl) -> bool {
    url.password().is_some() || url.query().is_some()
}

/// The keys of `cfg` that hold secrets, in file order: passwords, tokens, keys
/// and PINs, plus URLs and SMS templates with the parts that often carry one.
pub fn secret_keys(cfg: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    for (i, inst) in cfg.instances.iter().enumerate() {
        if inst.auth_pass.is_some() {
            keys.push(format!("instance[{i}].auth_pass"));
        }
    }
    for (i, ch) in cfg.channels.iter().enumerate() {
        let mut key = |k: &str| keys.push(format!("channel[{i}].{k}"));
        match ch {
            Channel::Webhook(w) => {
                if w.hmac_secret.is_some() {
                    key("hmac_secret");
                }
                if url_has_secret(&w.url) {
                    key("url");
                }
            }
            Channel::Mail(m) => {
                if m.password.is_some() {
                    key("password");
                }
            }
            Channel::Sms(Sms::Twilio(t)) => {
                key("auth_token");
                if url_has_secret(&t.api_url) {
                    key("api_url");
                }
            }
            Channel::Sms(Sms::Http(h)) => {
                if h.url_template.contains('?') || h.url_template.contains('@') {
                    key("url_template");
                }
                if h.body_template.is_some() {
                    key("body_template");
                }
            }
            Channel::Alertmanager(a) => {
                for (j, u) in a.urls.iter().enumerate() {
                    if url_has_secret(u) {
                        key(&a.url_key(j));
                    }
                }
            }
            Channel::Pagerduty(p) => {
                key("routing_key");
                if url_has_secret(&p.url) {
                    key("url");
                }
            }
        }
    }
    if let Some(r) = &cfg.reply {
        if r.public_url.as_ref().is_some_and(url_has_secret) {
            keys.push("reply.public_url".to_owned());
        }
        if r.twilio_auth_token.is_some() {
            keys.push("reply.twilio_auth_token".to_owned());
        }
        if r.generic_secret.is_some() {
            keys.push("reply.generic_secret".to_owned());
        }
        if !r.pins.is_empty() {
            keys.push("reply.pins".to_owned());
        }
        if r.imap.is_some() {
            keys.push("reply.imap.password".to_owned());
        }
    }
    for (i, f) in cfg.fences.iter().enumerate() {
        match &f.device.kind {
            crate::fence::DeviceKind::Agent(a) => {
                for (k, v) in &a.options {
                    if matches!(v, crate::fence::OptionValue::Secret(_)) {
                        keys.push(format!("fence[{i}].options.{k}"));
                    }
                }
            }
            crate::fence::DeviceKind::Redfish(_) => {
                keys.push(format!("fence[{i}].options.password"))
            }
        }
    }
    if let Some(w) = &cfg.witness {
        if w.password.is_some() {
            keys.push("witness.password".to_owned());
        }
        if w.confirm.is_some() {
            keys.push("witness.confirm_secret".to_owned());
        }
    }
    keys
}

/// The TLS private keys `cfg` names (the listeners' and the witness client's),
/// with the key that names each.
pub fn key_files(cfg: &Config) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    if let Some(t) = &cfg.metrics_tls {
        files.push(("metrics_tls_key".to_owned(), t.key.clone()));
    }
    if let Some(t) = cfg.reply.as_ref().and_then(|r| r.tls()) {
        files.push(("reply.tls_key".to_owned(), t.key));
    }
    // The witness's client key is as secret as a listener's.
    if let Some(key) = cfg
        .witness
        .as_ref()
        .and_then(|w| w.tls.as_ref())
        .and_then(|t| t.key.clone())
    {
        files.push(("witness.tls_key".to_owned(), key));
    }
    files
}

/// The config file at `path` (already loaded as `cfg`) and the TLS keys it
/// names, each judged by its mode. A file whose metadata cannot be read is
/// skipped here: reading it fails later with its own, clearer error.
pub fn check(path: &Path, cfg: &Config) -> Vec<Exposed> {
    let mode = |p: &Path| std::fs::metadata(p).ok().map(|m| m.permissions().mode());
    let mut found = Vec::new();
    if let Some(m) = mode(path) {
        found.extend(judge(path, m, secret_keys(cfg), false));
    }
    for (key, file) in key_files(cfg) {
        if let Some(m) = mode(&file) {
            found.extend(judge(&file, m, vec![key], true));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::Permissions;

    const WITH_SECRETS: &str = r#"
node = "lb01"
[[instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 150
advert_interval = "1s"
auth_pass = "s3cr3t"
vips = ["192.0.2.3/24"]

[[channel]]
type = "webhook"
url = "http://192.0.2.254:8080/hook?token=t0k3n"
hmac_secret = "h"

[[channel]]
type = "webhook"
url = "http://192.0.2.254:8080/plain"

[[channel]]
type = "sms"
provider = "twilio"
account_sid = "AC1"
auth_token = "tw"
from = "+15550001111"
to = ["+15550002222"]

[reply]
listen = "192.0.2.6:8725"
generic_secret = "g"
allowed_senders = ["+15550002222"]
pins = { "+15550002222" = "7741" }
"#;

    const WITHOUT_SECRETS: &str = r#"
node = "lb01"
[[instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 150
advert_interval = "1s"
vips = ["192.0.2.3/24"]
"#;

    fn written(dir: &Path, name: &str, text: &str, mode: u32) -> (PathBuf, Config) {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, Permissions::from_mode(mode)).expect("chmod");
        let cfg = crate::config::load(&path).expect("valid");
        (path, cfg)
    }

    #[test]
    fn every_secret_key_is_listed_and_plain_urls_are_not() {
        let cfg = crate::config::parse(WITH_SECRETS, "t.toml").expect("valid");
        assert_eq!(
            secret_keys(&cfg),
            [
                "instance[0].auth_pass",
                "channel[0].hmac_secret",
                "channel[0].url",
                "channel[2].auth_token",
                "reply.generic_secret",
                "reply.pins",
            ]
        );
        let cfg = crate::config::parse(WITHOUT_SECRETS, "t.toml").expect("valid");
        assert!(secret_keys(&cfg).is_empty());
    }

    #[test]
    fn world_readable_is_refused_group_readable_is_fine() {
        assert!(!readable_by_others(0o600));
        assert!(!readable_by_others(0o640));
        assert!(readable_by_others(0o644));
        assert!(readable_by_others(0o604));
        assert!(!readable_by_others(0o100660));

        let dir = tempfile::tempdir().expect("tempdir");
        for (mode, exposed) in [(0o600, false), (0o640, false), (0o644, true), (0o664, true)] {
            let (path, cfg) = written(dir.path(), &format!("{mode:o}.toml"), WITH_SECRETS, mode);
            let found = check(&path, &cfg);
            assert_eq!(found.len(), usize::from(exposed), "{mode:o}: {found:?}");
            if let Some(e) = found.first() {
                let text = e.to_string();
                let p = path.display();
                assert!(
                    text.starts_with(&format!("{p}: mode 0{mode:o} lets others read it")),
                    "{text}"
                );
                assert!(text.contains("instance[0].auth_pass"), "{text}");
                assert!(text.contains(&format!("`chmod o-r {p}`")), "{text}");
                assert!(text.contains(&format!("`chmod 600 {p}`")), "{text}");
                assert!(text.contains("secret_file_mode"), "{text}");
                assert!(
                    !text.contains("s3cr3t") && !text.contains("t0k3n"),
                    "{text}"
                );
            }
        }
        // Nothing secret in it: any mode will do.
        let (path, cfg) = written(dir.path(), "plain.toml", WITHOUT_SECRETS, 0o644);
        assert!(check(&path, &cfg).is_empty());
    }

    #[test]
    fn a_tls_key_readable_by_others_is_found_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").expect("write");
        std::fs::set_permissions(&key, Permissions::from_mode(0o644)).expect("chmod");
        // Top-level keys go before the first table.
        let text = format!(
            "metrics_listen = \"192.0.2.5:9745\"\nmetrics_tls_cert = \"/etc/c.pem\"\n\
             metrics_tls_key = \"{}\"\n{WITHOUT_SECRETS}",
            key.display()
        );
        let (path, cfg) = written(dir.path(), "m.toml", &text, 0o600);
        let found = check(&path, &cfg);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, key);
        assert!(
            found[0]
                .to_string()
                .contains("TLS private key named by metrics_tls_key"),
            "{}",
            found[0]
        );
        std::fs::set_permissions(&key, Permissions::from_mode(0o640)).expect("chmod");
        assert!(check(&path, &cfg).is_empty());
    }
}
