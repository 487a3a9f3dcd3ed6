//! The reply listener (axum): SMS replies come in as webhooks.
//!
//! - `POST /reply/twilio`: Twilio's form (From, To, Body, MessageSid), signed in
//!   `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, public URL + each
//!   parameter's name and value, sorted by name)), checked in constant time
//!   against the configured public URL (the daemon usually sits behind a proxy,
//!   so the URL it sees is not the one Twilio signed). Answers empty TwiML; the
//!   confirmation goes out as its own message.
//! - `POST /reply/generic`: a gateway's JSON `{"from", "text", "id"}`, signed in
//!   `X-Splitguard-Signature` = `sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>`
//!   with `X-Splitguard-Timestamp` within a replay window.
//!
//! A bad signature is 401; the rest of the decision (sender, code, PIN) is the
//! gate's, made by the owner of the incidents, which answers through a oneshot.
//! Limits: request body size, a time bound on the whole request (a slow body
//! included), a per-sender rate.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::core::reply::gate::{AuditRecord, normalize_sender};
use crate::core::reply::{InboundReply, Via};
use crate::core::secret::Secret;
use crate::io::channels::webhook::{HEADER_SIGNATURE, HEADER_TIMESTAMP, signature};

/// Bodies beyond this are refused (an SMS webhook is a few hundred bytes).
pub const BODY_LIMIT: usize = 16 * 1024;
/// How long a request may wait for the decision.
pub const DECISION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request may take, body and decision included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Generic gateway timestamps may be this far from our clock.
pub const REPLAY_WINDOW: i64 = 300;
/// Per sender, at most this many requests per minute.
pub const PER_SENDER_PER_MINUTE: usize = 10;

const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

#[derive(Debug, Clone)]
pub struct HttpSpec {
    /// The exact URL Twilio posts to (what it signs).
    pub public_url: Option<String>,
    pub twilio_auth_token: Option<Secret>,
    pub generic_secret: Option<Secret>,
}

/// What the listener hands to the owner of the incidents.
#[derive(Debug)]
pub enum ReplyEvent {
    /// Decide on this reply and answer with an HTTP status.
    Request {
        reply: InboundReply,
        answer: oneshot::Sender<u16>,
    },
    /// Refused before it could be decided (signature, rate): audit it.
    Refused(AuditRecord),
}

/// base64(HMAC-SHA1(token, url + sorted name/value pairs)), as Twilio signs.
pub fn twilio_signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(token.as_bytes()) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Checks the generic gateway's signature and timestamp.
pub fn generic_valid(
    secret: &str,
    timestamp: Option<&str>,
    sig: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), &'static str> {
    let ts: i64 = timestamp
        .ok_or("no timestamp header")?
        .trim()
        .parse()
        .map_err(|_| "bad timestamp header")?;
    // abs_diff: a timestamp near i64::MIN or MAX must be refused, not overflow.
    if now.abs_diff(ts) > REPLAY_WINDOW.unsigned_abs() {
        return Err("timestamp outside the replay window");
    }
    let sig = sig.ok_or("no signature header")?;
    if same(sig.trim(), &signature(secret.as_bytes(), ts, body)) {
        Ok(())
    } else {
        Err("bad signature")
    }
}

/// A Twilio webhook as decoded from its form body, and whether its
/// `X-Twilio-Signature` holds for the configured token and public URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioRequest {
    /// The form's name/value pairs, in body order (what the signature covers).
    pub params: Vec<(String, String)>,
    pub from: String,
    pub text: String,
    /// Twilio's MessageSid.
    pub sid: String,
    pub signed: bool,
}

/// Decodes a Twilio webhook's form body and checks its signature; pure, so the
/// handler and the fuzz target share it. Missing fields read as empty.
pub fn read_twilio(token: &str, url: &str, headers: &HeaderMap, body: &[u8]) -> TwilioRequest {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (from, text, sid) = (field("From"), field("Body"), field("MessageSid"));
    let given = headers
        .get("X-Twilio-Signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let signed = same(given, &twilio_signature(token, url, &params));
    TwilioRequest {
        params,
        from,
        text,
        sid,
        signed,
    }
}

/// The generic gateway's JSON body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct GenericBody {
    pub from: String,
    pub text: String,
    pub id: String,
}

/// Why a generic gateway request is refused before it is decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenericRefusal {
    /// Signature or timestamp (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Signed, but not the expected JSON (400).
    #[error("expected JSON {{\"from\", \"text\", \"id\"}}")]
    BadBody,
}

/// Checks a generic gateway request's signature headers at `now` (Unix seconds),
/// then decodes its body; pure, so the handler and the fuzz target share it.
pub fn read_generic(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<GenericBody, GenericRefusal> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    generic_valid(secret, h(HEADER_TIMESTAMP), h(HEADER_SIGNATURE), body, now)
        .map_err(GenericRefusal::Unauthorized)?;
    serde_json::from_slice::<GenericBody>(body).map_err(|_| GenericRefusal::BadBody)
}

#[derive(Debug)]
struct Shared {
    spec: HttpSpec,
    tx: mpsc::Sender<ReplyEvent>,
    rate: Mutex<BTreeMap<String, VecDeque<Instant>>>,
}

impl Shared {
    /// True when `sender` is within its rate.
    fn admit(&self, sender: &str) -> bool {
        let Ok(mut rate) = self.rate.lock() else {
            return true;
        };
        let now = Instant::now();
        // Forget quiet senders so the map stays small.
        rate.retain(|_, q| {
            q.back()
                .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60))
        });
        let q = rate.entry(sender.to_owned()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            q.pop_front();
        }
        if q.len() >= PER_SENDER_PER_MINUTE {
            return false;
        }
        q.push_back(now);
        true
    }

    fn refuse(&self, via: Via, from: &str, reference: &str, text: &str, reason: &str) {
        let _ = self.tx.try_send(ReplyEvent::Refused(AuditRecord {
            at: Utc::now(),
            via,
            from: normalize_sender(from),
            reference: reference.to_owned(),
            text: crate::core::reply::parse::redact_pins(text)
                .chars()
                .take(200)
                .collect(),
            accepted: false,
            command: None,
            code: None,
            reason: Some(reason.to_owned()),
        }));
    }

    async fn decide(&self, reply: InboundReply) -> u16 {
        let (answer, rx) = oneshot::channel();
        if self
            .tx
            .send(ReplyEvent::Request { reply, answer })
            .await
            .is_err()
        {
            return 503;
        }
        match tokio::time::timeout(DECISION_TIMEOUT, rx).await {
            Ok(Ok(status)) => status,
            _ => 503,
        }
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn twilio(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (Some(token), Some(url)) = (&s.spec.twilio_auth_token, &s.spec.public_url) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let TwilioRequest {
        from,
        text,
        sid,
        signed,
        ..
    } = read_twilio(token.expose(), url, &headers, &body);
    if !signed {
        warn!(%from, "Twilio reply with a bad signature refused");
        s.refuse(Via::Twilio, &from, &sid, &text, "bad Twilio signature");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if !s.admit(&normalize_sender(&from)) {
        s.refuse(Via::Twilio, &from, &sid, &text, "rate limit");
        return StatusCode::TOO_MANY_REQUESTS.into_response();
    }
    let reply = InboundReply {
        via: Via::Twilio,
        from,
        text,
        subject: None,
        refers_to: Vec::new(),
        reference: format!("twilio:{sid}"),
        received_at: Utc::now(),
    };
    let code = s.decide(reply).await;
    (
        status(code),
        [(header::CONTENT_TYPE, "text/xml")],
        EMPTY_TWIML,
    )
        .into_response()
}

async fn generic(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &s.spec.generic_secret else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let b = match read_generic(secret.expose(), &headers, &body, Utc::now().timestamp()) {
        Ok(b) => b,
        Err(GenericRefusal::Unauthorized(why)) => {
            warn!(reason = why, "generic reply refused");
            s.refuse(Via::Generic, "", "", "", why);
            return StatusCode::UNAUTHORIZED.into_response();
        }
        Err(e @ GenericRefusal::BadBody) => {
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    if !s.admit(&normalize_sender(&b.from)) {
        s.refuse(Via::Generic, &b.from, &b.id, &b.text, "rate limit");
        return StatusCode::TOO_MANY_REQUESTS.into_response();
    }
    let reply = InboundReply {
        via: Via::Generic,
        from: b.from,
        text: b.text,
        subject: None,
        refers_to: Vec::new(),
        reference: format!("generic:{}", b.id),
        received_at: Utc::now(),
    };
    status(s.decide(reply).await).into_response()
}

/// The listener's routes, with the body limit.
pub fn router(spec: HttpSpec, tx: mpsc::Sender<ReplyEvent>) -> Router {
    let shared = Arc::new(Shared {
        spec,
        tx,
        rate: Mutex::new(BTreeMap::new()),
    });
    Router::new()
        .route("/reply/twilio", post(twilio))
        .route("/reply/generic", post(generic))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(bounded))
        .with_state(shared)
}

/// The whole request, a slow body included, gets [`REQUEST_TIMEOUT`]; a
/// client that dribbles its bytes is cut off with 408.
async fn bounded(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twilio's documented example (the "Validating Requests" page): token
    /// 12345, this URL and these parameters sign to this value.
    #[test]
    fn twilio_signature_matches_the_documented_example() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            twilio_signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn generic_signatures_and_the_replay_window() {
        let body = br#"{"from":"+15550002222","text":"4821","id":"g1"}"#;
        let sig = signature(b"s3cret", 1000, body);
        assert_eq!(
            generic_valid("s3cret", Some("1000"), Some(&sig), body, 1100),
            Ok(())
        );
        assert_eq!(
            generic_valid("s3cret", Some("1000"), Some(&sig), body, 2000),
            Err("timestamp outside the replay window")
        );
        assert_eq!(
            generic_valid("other", Some("1000"), Some(&sig), body, 1000),
            Err("bad signature")
        );
        assert_eq!(
            generic_valid("s3cret", None, Some(&sig), body, 1000),
            Err("no timestamp header")
        );
        assert_eq!(
            generic_valid("s3cret", Some("1000"), Some(&sig), b"tampered", 1000),
            Err("bad signature")
        );
        // Far-off timestamps are refused, not an overflow.
        for ts in [i64::MIN, i64::MAX] {
            let sig = signature(b"s3cret", ts, body);
            assert_eq!(
                generic_valid("s3cret", Some(&ts.to_string()), Some(&sig), body, 1000),
                Err("timestamp outside the replay window")
            );
        }
    }
}
