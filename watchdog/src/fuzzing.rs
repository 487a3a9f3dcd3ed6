//! The fuzz entry points of this crate: one function per cargo-fuzz target in
//! `fuzz/` (reply text, reply mail, webhook requests), each taking the raw fuzz
//! input. They live here rather than in the fuzz crate so that the root crate's
//! `tests/fuzz_corpus.rs` replays the committed corpora through exactly the code
//! libFuzzer ran. Each one panics only when a property it checks fails.

use axum::http::{HeaderMap, HeaderValue};
use chrono::{DateTime, Utc};

use crate::core::reply::{mail_parse, parse};
use crate::io::channels::webhook::{HEADER_SIGNATURE, HEADER_TIMESTAMP, signature};
use crate::io::reply::http::{self, GenericRefusal, REPLAY_WINDOW};

const TOKEN: &str = "twilio-auth-token";
const URL: &str = "https://sg.example.invalid/reply/twilio";
const SECRET: &str = "generic-secret";
/// The fuzz targets' clock, in Unix seconds.
const NOW: i64 = 1_800_000_000;

/// `reply_text`: an SMS reply. The first byte's low bit says whether the reply is
/// known to answer code 4821 (as a mail's subject would tell); the rest is the
/// text, read lossily.
pub fn reply_text(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let context = (selector & 1 == 1).then_some("4821");
    check_reply(&String::from_utf8_lossy(rest), context);
}

fn is_digits(s: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// The reply language's promises, whatever the text.
fn check_reply(text: &str, context: Option<&str>) {
    if let Some(line) = parse::command_line(text) {
        assert!(
            !line.is_empty() && line == line.trim() && !line.starts_with('>'),
            "bad command line {line:?}"
        );
    }
    if let Some(code) = parse::subject_code(text) {
        assert!(is_digits(&code, 4..=5), "subject code {code:?}");
    }
    match parse::parse(text, context) {
        Ok(p) => {
            match (&p.command, &p.code) {
                (parse::Command::Status, code) => assert_eq!(*code, None, "STATUS with a code"),
                (_, Some(code)) => assert!(
                    is_digits(code, 4..=5) || Some(code.as_str()) == context,
                    "code {code:?}"
                ),
                (command, None) => panic!("{} without a code", command.word()),
            }
            if let Some(pin) = &p.pin {
                assert!(is_digits(pin, 4..=8), "PIN {pin:?}");
            }
            if let parse::Command::Mute(d) = p.command {
                assert!(!d.is_zero(), "MUTE for no time");
            }
        }
        Err(e) => {
            if let parse::ParseError::NotUnderstood(echo) = &e {
                assert!(echo.chars().count() <= 80, "echo too long");
            }
            assert!(!e.to_string().is_empty());
        }
    }
}

/// `reply_mail`: one raw RFC 5322 message from the reply mailbox, through
/// [`mail_parse::parse_reply`] and then, as the poller hands it on, the reply
/// language with the subject's code as context.
pub fn reply_mail(data: &[u8]) {
    let fallback = "imap:7:42";
    let at: DateTime<Utc> = DateTime::from_timestamp(NOW, 0).unwrap_or_default();
    let (reply, _notes) = match mail_parse::parse_reply(data, fallback, at) {
        Ok(parsed) => parsed,
        Err(skip) => {
            assert!(!skip.to_string().is_empty());
            return;
        }
    };
    assert!(!reply.from.is_empty(), "a reply with no sender");
    assert!(!reply.text.contains('\r'), "line ends not normalized");
    let bracketed = |id: &str| id.starts_with('<') && id.ends_with('>');
    assert!(
        reply.reference == fallback || bracketed(&reply.reference),
        "reference {:?}",
        reply.reference
    );
    assert!(reply.refers_to.iter().all(|id| bracketed(id)));
    let context = reply.subject.as_deref().and_then(parse::subject_code);
    check_reply(&reply.text, context.as_deref());
}

/// `webhook_form`: one inbound webhook request without a socket. The input's first
/// line is the signature header (sent as both `X-Twilio-Signature` and
/// `X-Splitguard-Signature`), its second the `X-Splitguard-Timestamp` header, the
/// rest the body, read as a Twilio form and as a generic gateway request. Checks
/// that a correctly signed request always passes the signature check (with the
/// same decoded fields) and one signed for another URL or time never does.
pub fn webhook_form(data: &[u8]) {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let sig = parts.next().unwrap_or_default();
    let ts = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    // Bytes a header cannot carry are left out, as hyper would refuse them.
    if let Ok(v) = HeaderValue::from_bytes(sig) {
        headers.insert("X-Twilio-Signature", v.clone());
        headers.insert(HEADER_SIGNATURE, v);
    }
    if let Ok(v) = HeaderValue::from_bytes(ts) {
        headers.insert(HEADER_TIMESTAMP, v);
    }

    // Twilio.
    let as_sent = http::read_twilio(TOKEN, URL, &headers, body);
    let mut signed = HeaderMap::new();
    let good = http::twilio_signature(TOKEN, URL, &as_sent.params);
    match HeaderValue::from_str(&good) {
        Ok(v) => signed.insert("X-Twilio-Signature", v),
        Err(e) => panic!("a Twilio signature is not a header value: {e}"),
    };
    let verified = http::read_twilio(TOKEN, URL, &signed, body);
    assert!(verified.signed, "a correctly signed Twilio form refused");
    assert_eq!(
        (verified.params, verified.from, verified.text, verified.sid),
        (as_sent.params, as_sent.from, as_sent.text, as_sent.sid),
        "the signature header changed the decoded form"
    );
    let elsewhere = http::read_twilio(TOKEN, "https://other.invalid/", &signed, body);
    assert!(!elsewhere.signed, "a form signed for another URL accepted");

    // Generic gateway, headers as given.
    if let Err(e) = http::read_generic(SECRET, &headers, body, NOW) {
        assert!(!e.to_string().is_empty());
    }
    // Correctly signed for the given timestamp, if it is a number: only the
    // replay window decides.
    let ts_text = String::from_utf8_lossy(ts);
    if let Ok(t) = ts_text.trim().parse::<i64>() {
        let sig = signature(SECRET.as_bytes(), t, body);
        let got = http::generic_valid(SECRET, Some(&ts_text), Some(&sig), body, NOW);
        let fresh = NOW.abs_diff(t) <= REPLAY_WINDOW.unsigned_abs();
        assert_eq!(got.is_ok(), fresh, "timestamp {t}: {got:?}");
    }
    // Correctly signed now: never refused as unauthorized; decoded iff it is the JSON.
    let mut now_signed = HeaderMap::new();
    now_signed.insert(HEADER_TIMESTAMP, HeaderValue::from(NOW));
    match HeaderValue::from_str(&signature(SECRET.as_bytes(), NOW, body)) {
        Ok(v) => now_signed.insert(HEADER_SIGNATURE, v),
        Err(e) => panic!("a generic signature is not a header value: {e}"),
    };
    let decoded = http::read_generic(SECRET, &now_signed, body, NOW);
    let json = serde_json::from_slice::<http::GenericBody>(body).ok();
    match decoded {
        Ok(b) => assert_eq!(Some(b), json),
        Err(GenericRefusal::BadBody) => assert_eq!(json, None),
        Err(e @ GenericRefusal::Unauthorized(_)) => {
            panic!("a correctly signed request refused: {e}")
        }
    }
    let stale = http::read_generic(SECRET, &now_signed, body, NOW + REPLAY_WINDOW + 1);
    assert!(
        matches!(stale, Err(GenericRefusal::Unauthorized(_))),
        "a request signed too long ago accepted"
    );
}
