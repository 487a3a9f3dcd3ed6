//! The SMS channels: Twilio's Messages REST API and a generic HTTP gateway
//! reached through `{to}`/`{text}` templates. Both send [`Alert::sms_text`] (ASCII,
//! at most 160 characters) in one request per recipient.
//!
//! **Several recipients, one delivery.** The spool records a delivery per
//! channel, and neither Twilio nor a typical gateway takes an idempotency key.
//! So each channel remembers, per notification (its idempotency key), which
//! recipients got it and which refused it for good; a retry of the same
//! notification sends only to the rest. The send succeeds when every recipient
//! got it; it is retryable while any recipient failed retryably; otherwise a
//! recipient that refused for good (a 4xx) makes it permanent, with the
//! delivered ones named in the message. The memory is in-process and bounded
//! (the last [`REMEMBERED_NOTIFICATIONS`] notifications): after a crash or
//! restart, a retry may send again to recipients that already got the text.
//! That duplicate is the price of not losing a page.
//!
//! **Generic gateway templates.** `{to}` and `{text}` are replaced in one pass
//! (a value that itself contains `{text}` is not expanded again); other braces
//! stay as they are.
//! - In the URL template each value is percent-encoded (everything but
//!   `A-Za-z0-9-._~`), valid in a path and in a query.
//! - In the body template (POST only; a GET sends no body), by the template's
//!   shape:
//!   - **JSON** when the template with its placeholders filled with a plain word
//!     parses as JSON (e.g. `{"to":"{to}","text":"{text}"}`): values are
//!     JSON-string-escaped without quotes, so placeholders belong inside JSON
//!     strings; sent as `application/json`.
//!   - **form** when it contains `=` and no whitespace (e.g.
//!     `user=u&to={to}&text={text}`): values are form-urlencoded (space as `+`);
//!     sent as `application/x-www-form-urlencoded`.
//!   - **text** otherwise: values as they are, `text/plain; charset=utf-8`.
//!
//! Errors: Twilio's 4xx answers are permanent and quote Twilio's error code and
//! message; 429, 5xx, timeouts and refused connections are retried. The gateway
//! is judged by status alone: 2xx delivered, 429/5xx retried, other 4xx final.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{Receipt, SendError, error_text, http_client, join_path, url_secrets};
use crate::core::alert::Alert;
use crate::core::secret::Secret;

/// How many notifications each SMS channel remembers per-recipient outcomes for.
pub const REMEMBERED_NOTIFICATIONS: usize = 256;

/// A Twilio SMS channel as configured (`type = "sms"`, `provider = "twilio"`).
#[derive(Debug, Clone)]
pub struct TwilioSpec {
    pub name: String,
    pub tier: u8,
    /// `https://api.twilio.com`, or a proxy or test receiver.
    pub api_url: url::Url,
    pub account_sid: String,
    pub auth_token: Secret,
    /// A number or a sender ID, as the account allows.
    pub from: String,
    /// E.164 numbers.
    pub to: Vec<String>,
    pub timeout: Duration,
}

/// GET or POST for the generic gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GatewayMethod {
    #[default]
    Get,
    Post,
}

/// A generic SMS gateway as configured (`type = "sms"`, `provider = "http"`). The
/// templates often carry the gateway's user and password, so they are
/// [`Secret`]s: they never print.
#[derive(Debug, Clone)]
pub struct HttpSmsSpec {
    pub name: String,
    pub tier: u8,
    pub url_template: Secret,
    pub method: GatewayMethod,
    /// POST only; ignored for GET.
    pub body_template: Option<Secret>,
    pub to: Vec<String>,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct TwilioChannel {
    pub spec: TwilioSpec,
    client: reqwest::Client,
    messages_url: url::Url,
    log: Mutex<DeliveryLog>,
}

#[derive(Debug)]
pub struct HttpSmsChannel {
    pub spec: HttpSmsSpec,
    client: reqwest::Client,
    log: Mutex<DeliveryLog>,
}

// ------------------------------------------------------------------ Twilio

/// `{api_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`.
pub fn twilio_messages_url(api_url: &url::Url, account_sid: &str) -> Result<url::Url, SendError> {
    join_path(
        api_url,
        &["2010-04-01", "Accounts", account_sid, "Messages.json"],
    )
}

/// The form fields of one Twilio message.
pub fn twilio_form<'a>(from: &'a str, to: &'a str, body: &'a str) -> [(&'static str, &'a str); 3] {
    [("To", to), ("From", from), ("Body", body)]
}

/// The message SID from Twilio's answer (`{"sid": "SM…", …}`).
pub fn twilio_sid(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("sid")?.as_str().map(str::to_owned)
}

/// A non-2xx Twilio answer: Twilio's own `code` and `message` quoted when the
/// body has them (`{"code": 21211, "message": "The 'To' number … is not a valid
/// phone number.", "status": 400, …}`).
pub fn twilio_failure(
    what: &str,
    status: reqwest::StatusCode,
    body: &str,
    hide: &[&str],
) -> SendError {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(|c| c.as_i64());
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(|m| m.as_str());
    match (code, message) {
        (Some(code), Some(message)) => {
            let retry = SendError::from_status(what, status, "", &[]).retryable;
            let message = super::mask(message, hide);
            let text = format!("{what}: Twilio error {code} (HTTP {status}): {message:?}");
            if retry {
                SendError::retry(text)
            } else {
                SendError::permanent(text)
            }
        }
        _ => SendError::from_status(what, status, body, hide),
    }
}

impl TwilioChannel {
    pub fn new(spec: TwilioSpec) -> Result<Self, SendError> {
        require_recipients(&format!("sms {}", spec.name), &spec.to)?;
        let messages_url = twilio_messages_url(&spec.api_url, &spec.account_sid)?;
        Ok(TwilioChannel {
            client: http_client(spec.timeout)?,
            messages_url,
            spec,
            log: Mutex::default(),
        })
    }

    /// One message per recipient not yet served; the receipt lists the SIDs.
    pub async fn send(&self, alert: &Alert) -> Result<Receipt, SendError> {
        send_alert(self, alert).await
    }

    /// One text to one number (alerts fan out over this; reply confirmations
    /// use it directly).
    pub async fn send_one(&self, to: &str, text: &str) -> Result<Option<String>, SendError> {
        let what = format!("to {to}");
        let resp = self
            .client
            .post(self.messages_url.clone())
            .basic_auth(&self.spec.account_sid, Some(self.spec.auth_token.expose()))
            .form(&twilio_form(&self.spec.from, to, text))
            .send()
            .await
            .map_err(|e| SendError::from_reqwest(&what, &e))?;
        let status = resp.status();
        let body = error_text(resp).await;
        if status.is_success() {
            Ok(twilio_sid(&body))
        } else {
            let basic =
                super::basic_credentials(&self.spec.account_sid, self.spec.auth_token.expose());
            let hide = [self.spec.auth_token.expose(), basic.as_str()];
            Err(twilio_failure(&what, status, &body, &hide))
        }
    }
}

// ---------------------------------------------------------- generic gateway

/// How a body template is encoded (see the module head for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Form,
    Text,
}

impl BodyKind {
    pub fn of(template: &str) -> BodyKind {
        let probe = fill(template, "x", "x", |s| s.to_owned());
        if serde_json::from_str::<serde_json::Value>(&probe).is_ok() {
            BodyKind::Json
        } else if template.contains('=') && !template.trim().contains(char::is_whitespace) {
            BodyKind::Form
        } else {
            BodyKind::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            BodyKind::Json => "application/json",
            BodyKind::Form => "application/x-www-form-urlencoded",
            BodyKind::Text => "text/plain; charset=utf-8",
        }
    }
}

/// Replaces `{to}` and `{text}` in `template` in one pass, each value passed
/// through `encode`.
pub fn fill(template: &str, to: &str, text: &str, encode: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + text.len() * 3);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(r) = tail.strip_prefix("{to}") {
            out.push_str(&encode(to));
            rest = r;
        } else if let Some(r) = tail.strip_prefix("{text}") {
            out.push_str(&encode(text));
            rest = r;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// application/x-www-form-urlencoded, as HTML forms send it.
pub fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The contents of a JSON string for `s`, without the quotes.
pub fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// The gateway URL for one message.
pub fn gateway_url(template: &str, to: &str, text: &str) -> Result<url::Url, SendError> {
    let filled = fill(template, to, text, percent_encode);
    url::Url::parse(&filled).map_err(|e| {
        // The URL may carry the gateway's password: name the problem, not the URL.
        SendError::permanent(format!("the filled url_template is not a URL: {e}"))
    })
}

/// The gateway body for one message and its content type.
pub fn gateway_body(template: &str, to: &str, text: &str) -> (String, &'static str) {
    let kind = BodyKind::of(template);
    let body = match kind {
        BodyKind::Json => fill(template, to, text, json_escape),
        BodyKind::Form => fill(template, to, text, form_encode),
        BodyKind::Text => fill(template, to, text, str::to_owned),
    };
    (body, kind.content_type())
}

impl HttpSmsChannel {
    pub fn new(spec: HttpSmsSpec) -> Result<Self, SendError> {
        let what = format!("sms {} (HTTP gateway)", spec.name);
        require_recipients(&what, &spec.to)?;
        // A template that cannot make a URL fails now, not at the first page.
        gateway_url(spec.url_template.expose(), "+15550000000", "test")
            .map_err(|e| SendError::permanent(format!("{what}: {e}")))?;
        Ok(HttpSmsChannel {
            client: http_client(spec.timeout)?,
            spec,
            log: Mutex::default(),
        })
    }

    pub async fn send(&self, alert: &Alert) -> Result<Receipt, SendError> {
        send_alert(self, alert).await
    }

    /// One text to one number (alerts fan out over this; reply confirmations
    /// use it directly).
    pub async fn send_one(&self, to: &str, text: &str) -> Result<Option<String>, SendError> {
        let what = format!("to {to}");
        let url = gateway_url(self.spec.url_template.expose(), to, text)?;
        let url_hidden = url_secrets(&url);
        let req = match self.spec.method {
            GatewayMethod::Get => self.client.get(url),
            GatewayMethod::Post => {
                let req = self.client.post(url);
                match &self.spec.body_template {
                    Some(t) => {
                        let (body, content_type) = gateway_body(t.expose(), to, text);
                        req.header(reqwest::header::CONTENT_TYPE, content_type)
                            .body(body)
                    }
                    None => req,
                }
            }
        };
        let resp = req
            .send()
            .await
            .map_err(|e| SendError::from_reqwest(&what, &e.without_url()))?;
        let status = resp.status();
        if status.is_success() {
            Ok(None)
        } else {
            let body = error_text(resp).await;
            let mut hide = url_hidden;
            hide.extend(
                self.spec
                    .body_template
                    .iter()
                    .flat_map(|t| key_like_runs(t.expose())),
            );
            let hide: Vec<&str> = hide.iter().map(String::as_str).collect();
            Err(SendError::from_status(&what, status, &body, &hide))
        }
    }
}

/// Runs of at least 12 token characters in a body template: where a gateway's
/// API key sits (`{"key":"…","to":"{to}"}`), masked if the gateway echoes it.
fn key_like_runs(template: &str) -> Vec<String> {
    template
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|run| run.len() >= 12)
        .map(str::to_owned)
        .collect()
}

// ------------------------------------------------------ what both share

/// A channel's refusal to be built without recipients: `{what}: no recipients`.
fn require_recipients(what: &str, to: &[String]) -> Result<(), SendError> {
    if to.is_empty() {
        return Err(SendError::permanent(format!("{what}: no recipients")));
    }
    Ok(())
}

/// What [`send_alert`] needs of an SMS channel: its name in errors, its
/// recipients, its per-recipient memory and one text to one number.
trait SmsSender {
    fn what(&self) -> String;
    fn recipients(&self) -> &[String];
    fn log(&self) -> &Mutex<DeliveryLog>;
    async fn send_to(&self, to: &str, text: &str) -> Result<Option<String>, SendError>;
}

impl SmsSender for TwilioChannel {
    fn what(&self) -> String {
        format!("sms {} (Twilio)", self.spec.name)
    }
    fn recipients(&self) -> &[String] {
        &self.spec.to
    }
    fn log(&self) -> &Mutex<DeliveryLog> {
        &self.log
    }
    async fn send_to(&self, to: &str, text: &str) -> Result<Option<String>, SendError> {
        self.send_one(to, text).await
    }
}

impl SmsSender for HttpSmsChannel {
    fn what(&self) -> String {
        format!("sms {} (HTTP gateway)", self.spec.name)
    }
    fn recipients(&self) -> &[String] {
        &self.spec.to
    }
    fn log(&self) -> &Mutex<DeliveryLog> {
        &self.log
    }
    async fn send_to(&self, to: &str, text: &str) -> Result<Option<String>, SendError> {
        self.send_one(to, text).await
    }
}

/// Both channels' `send`: the alert's SMS line to every recipient not yet
/// served for this notification, in configured order.
async fn send_alert(channel: &impl SmsSender, alert: &Alert) -> Result<Receipt, SendError> {
    let text = alert.sms_text();
    fan_out(
        &channel.what(),
        channel.log(),
        &alert.idempotency_key,
        channel.recipients(),
        |to| channel.send_to(to, &text),
    )
    .await
}

// ------------------------------------------------- per-recipient outcomes

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Delivered, with the provider's reference if it gave one.
    Sent(Option<String>),
    /// Refused for good (the error message).
    Refused(String),
}

/// Final outcomes per (notification, recipient) for the last
/// [`REMEMBERED_NOTIFICATIONS`] notifications. Retryable failures are not
/// recorded: they are what a retry is for.
#[derive(Debug, Default)]
struct DeliveryLog {
    order: VecDeque<String>,
    by_key: HashMap<String, HashMap<String, Outcome>>,
}

impl DeliveryLog {
    fn get(&self, key: &str, to: &str) -> Option<Outcome> {
        self.by_key.get(key)?.get(to).cloned()
    }

    fn record(&mut self, key: &str, to: &str, outcome: Outcome) {
        if !self.by_key.contains_key(key) {
            self.order.push_back(key.to_owned());
            while self.order.len() > REMEMBERED_NOTIFICATIONS {
                if let Some(old) = self.order.pop_front() {
                    self.by_key.remove(&old);
                }
            }
        }
        self.by_key
            .entry(key.to_owned())
            .or_default()
            .insert(to.to_owned(), outcome);
    }
}

fn lock(log: &Mutex<DeliveryLog>) -> MutexGuard<'_, DeliveryLog> {
    // The log holds plain data; a panic elsewhere cannot leave it half-written.
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends to each recipient not yet served for `key` and sums up (see the module
/// head). The receipt's reference lists the providers' references, comma-separated.
async fn fan_out<'a, F, Fut>(
    what: &str,
    log: &Mutex<DeliveryLog>,
    key: &str,
    recipients: &'a [String],
    mut send_one: F,
) -> Result<Receipt, SendError>
where
    F: FnMut(&'a str) -> Fut,
    Fut: Future<Output = Result<Option<String>, SendError>>,
{
    let mut refs = Vec::new();
    let mut delivered = Vec::new();
    let mut pending = Vec::new();
    let mut refused = Vec::new();
    for to in recipients {
        let known = lock(log).get(key, to);
        let outcome = match known {
            Some(o) => o,
            None => match send_one(to).await {
                Ok(reference) => {
                    let o = Outcome::Sent(reference);
                    lock(log).record(key, to, o.clone());
                    o
                }
                Err(e) if e.retryable => {
                    pending.push(e.message);
                    continue;
                }
                Err(e) => {
                    let o = Outcome::Refused(e.message);
                    lock(log).record(key, to, o.clone());
                    o
                }
            },
        };
        match outcome {
            Outcome::Sent(reference) => {
                delivered.push(to.as_str());
                refs.extend(reference);
            }
            Outcome::Refused(message) => refused.push(message),
        }
    }
    let n = recipients.len();
    let done = if delivered.is_empty() {
        String::new()
    } else {
        format!("; delivered to {}", delivered.join(", "))
    };
    if !pending.is_empty() {
        let mut failures = pending;
        failures.extend(refused);
        return Err(SendError::retry(format!(
            "{what}: {} of {n} recipients not reached: {}{done}",
            n - delivered.len(),
            failures.join("; ")
        )));
    }
    if !refused.is_empty() {
        return Err(SendError::permanent(format!(
            "{what}: {} of {n} recipients refused: {}{done}",
            refused.len(),
            refused.join("; ")
        )));
    }
    Ok(Receipt {
        reference: (!refs.is_empty()).then(|| refs.join(",")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn twilio_url_keeps_a_proxy_prefix_and_encodes_the_sid() {
        let api = url::Url::parse("https://api.twilio.com").unwrap();
        assert_eq!(
            twilio_messages_url(&api, "AC123").unwrap().as_str(),
            "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json"
        );
        let proxy = url::Url::parse("http://192.0.2.254:8080/twilio/").unwrap();
        assert_eq!(
            twilio_messages_url(&proxy, "AC/1").unwrap().as_str(),
            "http://192.0.2.254:8080/twilio/2010-04-01/Accounts/AC%2F1/Messages.json"
        );
    }

    #[test]
    fn twilio_form_and_answers() {
        let form = twilio_form("+15550001111", "+15550002222", "splitguard CRITICAL");
        assert_eq!(
            form,
            [
                ("To", "+15550002222"),
                ("From", "+15550001111"),
                ("Body", "splitguard CRITICAL")
            ]
        );
        assert_eq!(
            twilio_sid(r#"{"sid":"SM0123","status":"queued"}"#).as_deref(),
            Some("SM0123")
        );
        assert_eq!(twilio_sid("not json"), None);
    }

    #[test]
    fn echoed_credentials_are_masked_in_errors() {
        let token = "tok3n-0f-the-account";
        let body = format!(r#"{{"code": 20003, "message": "Authenticate: bad token {token}"}}"#);
        let e = twilio_failure("to +1", reqwest::StatusCode::UNAUTHORIZED, &body, &[token]);
        assert!(
            !e.message.contains(token) && e.message.contains("bad token ***"),
            "{e}"
        );
        let e = twilio_failure(
            "to +1",
            reqwest::StatusCode::BAD_GATEWAY,
            &format!("<p>{token}</p>"),
            &[token],
        );
        assert!(
            !e.message.contains(token) && e.message.contains("<p>***</p>"),
            "{e}"
        );
        let url =
            url::Url::parse("https://gw.example/send?user=me&key=K3Y-0F-GATEWAY&to=1").unwrap();
        let hide = url_secrets(&url);
        assert!(hide.contains(&"K3Y-0F-GATEWAY".to_string()), "{hide:?}");
        let template = r#"{"api_key":"abcdef0123456789","to":"{to}","text":"{text}"}"#;
        assert_eq!(key_like_runs(template), vec!["abcdef0123456789"]);
    }

    #[test]
    fn twilio_errors_quote_code_and_message() {
        let body = r#"{"code": 21211, "message": "The 'To' number +1 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        let e = twilio_failure("to +1", reqwest::StatusCode::BAD_REQUEST, body, &[]);
        assert!(!e.retryable);
        assert!(
            e.message
                .contains("Twilio error 21211 (HTTP 400 Bad Request)")
                && e.message.contains("is not a valid phone number"),
            "{e}"
        );
        let e = twilio_failure(
            "to +1",
            reqwest::StatusCode::TOO_MANY_REQUESTS,
            r#"{"code": 20429, "message": "Too Many Requests"}"#,
            &[],
        );
        assert!(e.retryable, "{e}");
        let e = twilio_failure(
            "to +1",
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
            "<html>",
            &[],
        );
        assert!(e.retryable && e.message.contains("503"), "{e}");
        let e = twilio_failure("to +1", reqwest::StatusCode::UNAUTHORIZED, "", &[]);
        assert!(!e.retryable, "{e}");
    }

    #[test]
    fn fill_replaces_once_and_leaves_other_braces() {
        let out = fill("a{to}b{text}c{x}{", "{text}", "T", |s| s.to_owned());
        assert_eq!(out, "a{text}bTc{x}{");
    }

    #[test]
    fn gateway_url_percent_encodes_values() {
        let u = gateway_url(
            "http://gw.example/send/{to}?user=u&text={text}",
            "+1 555",
            "a&b=c d/é",
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "http://gw.example/send/%2B1%20555?user=u&text=a%26b%3Dc%20d%2F%C3%A9"
        );
        let e = gateway_url("not a url {to}", "1", "t").unwrap_err();
        assert!(!e.retryable && !e.message.contains("not a url"), "{e}");
    }

    #[test]
    fn body_kind_rule() {
        assert_eq!(
            BodyKind::of(r#"{"to":"{to}","text":"{text}"}"#),
            BodyKind::Json
        );
        assert_eq!(
            BodyKind::of(r#"[{"msisdn": "{to}", "msg": "{text}"}]"#),
            BodyKind::Json
        );
        assert_eq!(BodyKind::of("user=u&to={to}&text={text}\n"), BodyKind::Form);
        assert_eq!(BodyKind::of("{text}"), BodyKind::Text);
        assert_eq!(BodyKind::of("SEND {to} {text}"), BodyKind::Text);
        assert_eq!(BodyKind::of("to = {to}"), BodyKind::Text);
    }

    #[test]
    fn gateway_bodies_are_encoded_by_kind() {
        let text = "say \"hi\" & go\\ 100%";
        let (b, ct) = gateway_body(r#"{"to":"{to}","text":"{text}"}"#, "+1555", text);
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["text"], text);
        assert_eq!(v["to"], "+1555");
        let (b, ct) = gateway_body("to={to}&text={text}", "+1555", text);
        assert_eq!(ct, "application/x-www-form-urlencoded");
        assert_eq!(b, "to=%2B1555&text=say+%22hi%22+%26+go%5C+100%25");
        let parsed: Vec<(String, String)> = url::form_urlencoded::parse(b.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(parsed[1], ("text".into(), text.into()));
        let (b, ct) = gateway_body("SEND {to} {text}", "+1555", text);
        assert_eq!(ct, "text/plain; charset=utf-8");
        assert_eq!(b, format!("SEND +1555 {text}"));
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Recipients: "ok*" deliver, "busy*" fail retryably while `busy` is set,
    /// "bad*" refuse for good.
    fn fake<'a>(
        calls: &'a RefCell<Vec<String>>,
        busy: &'a RefCell<bool>,
    ) -> impl FnMut(&'a str) -> std::future::Ready<Result<Option<String>, SendError>> {
        move |to: &str| {
            calls.borrow_mut().push(to.to_owned());
            std::future::ready(if to.starts_with("bad") {
                Err(SendError::permanent(format!("to {to}: HTTP 400")))
            } else if to.starts_with("busy") && *busy.borrow() {
                Err(SendError::retry(format!("to {to}: HTTP 503")))
            } else {
                Ok(Some(format!("ref-{to}")))
            })
        }
    }

    #[test]
    fn a_retry_sends_only_to_the_recipients_not_yet_served() {
        let log = Mutex::default();
        let calls = RefCell::new(Vec::new());
        let busy = RefCell::new(true);
        let to: Vec<String> = vec!["ok1".into(), "busy2".into(), "ok3".into()];
        let e = block_on(fan_out("sms t", &log, "k1", &to, fake(&calls, &busy))).unwrap_err();
        assert!(e.retryable, "{e}");
        assert!(
            e.message.contains(
                "1 of 3 recipients not reached: to busy2: HTTP 503; delivered to ok1, ok3"
            ),
            "{e}"
        );
        assert_eq!(*calls.borrow(), ["ok1", "busy2", "ok3"]);

        *busy.borrow_mut() = false;
        calls.borrow_mut().clear();
        let r = block_on(fan_out("sms t", &log, "k1", &to, fake(&calls, &busy))).unwrap();
        assert_eq!(*calls.borrow(), ["busy2"]);
        assert_eq!(r.reference.as_deref(), Some("ref-ok1,ref-busy2,ref-ok3"));

        // Another notification starts afresh.
        calls.borrow_mut().clear();
        block_on(fan_out("sms t", &log, "k2", &to, fake(&calls, &busy))).unwrap();
        assert_eq!(calls.borrow().len(), 3);
    }

    #[test]
    fn a_refusal_is_final_unless_someone_is_still_pending() {
        let log = Mutex::default();
        let calls = RefCell::new(Vec::new());
        let busy = RefCell::new(true);
        let to: Vec<String> = vec!["bad1".into(), "busy2".into()];
        let e = block_on(fan_out("sms t", &log, "k", &to, fake(&calls, &busy))).unwrap_err();
        assert!(e.retryable, "{e}");
        *busy.borrow_mut() = false;
        calls.borrow_mut().clear();
        let e = block_on(fan_out("sms t", &log, "k", &to, fake(&calls, &busy))).unwrap_err();
        assert!(!e.retryable, "{e}");
        assert_eq!(*calls.borrow(), ["busy2"], "the refusal is not asked again");
        assert!(
            e.message
                .contains("1 of 2 recipients refused: to bad1: HTTP 400; delivered to busy2"),
            "{e}"
        );
    }

    #[test]
    fn the_log_is_bounded() {
        let mut log = DeliveryLog::default();
        for i in 0..REMEMBERED_NOTIFICATIONS + 10 {
            log.record(&format!("k{i}"), "a", Outcome::Sent(None));
        }
        assert_eq!(log.by_key.len(), REMEMBERED_NOTIFICATIONS);
        assert_eq!(log.get("k0", "a"), None);
        assert_eq!(
            log.get(&format!("k{}", REMEMBERED_NOTIFICATIONS + 9), "a"),
            Some(Outcome::Sent(None))
        );
    }
}
