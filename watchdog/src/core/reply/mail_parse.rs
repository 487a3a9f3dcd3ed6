//! One raw mail from the reply mailbox turned into an [`InboundReply`], or the
//! reason it is not one. Pure (bytes in, value out): the IMAP poller feeds it, the
//! tests feed it sample messages.
//!
//! MIME decoding is mail-parser's: transfer encodings (quoted-printable,
//! base64), RFC 2047 encoded words in the Subject, charsets to UTF-8. What this
//! module decides:
//! - **Machine mail is dropped** (RFC 3834 loop guard): `Auto-Submitted` other
//!   than `no` (auto-replies, our own alerts, bounces from MTAs that set it),
//!   delivery and read reports (`multipart/report`), a null `Return-Path: <>`
//!   (bounces), `Precedence: bulk|junk|auto_reply` and the `X-Autoreply` /
//!   `X-Autorespond` markers of older vacation programs.
//! - **The sender** is the first address of `From`, lower-cased; a mail without
//!   one cannot be authorized and is dropped.
//! - **The text** is the first text/plain body part (for multipart/alternative
//!   the plain alternative); an HTML-only mail gets its tags stripped by
//!   mail-parser's HTML-to-text. Line ends become `\n`. A mail with no text part
//!   at all is still a reply (its subject may say enough), with empty text.
//! - **Message-IDs** (`reference`, `refers_to`) keep their angle brackets, the
//!   way the mail channel mints them (`<sg.{id}.{n}.{channel}@splitguard.invalid>`),
//!   so they compare equal. A mail without a Message-ID gets the fallback
//!   reference the caller passes (the poller's `imap:<uidvalidity>:<uid>`).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use mail_parser::{HeaderName, HeaderValue, Message, MessageParser};

use super::{InboundReply, Via};

/// Why a mail is not handed on as a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("not a parseable mail message")]
    Unparseable,
    /// Sent by a program, not a person (the string says which header told).
    #[error("machine-sent ({0})")]
    Automatic(String),
    #[error("no sender address in From")]
    NoSender,
}

/// What the poller logs beside a reply it hands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notes {
    /// The text came from an HTML part with its tags stripped.
    pub html_only: bool,
    /// The mail has no text part at all.
    pub no_text: bool,
}

/// Parses `raw` (a whole RFC 5322 message) into a mail reply received at
/// `received_at`. `fallback_reference` stands in for a missing Message-ID.
pub fn parse_reply(
    raw: &[u8],
    fallback_reference: &str,
    received_at: DateTime<Utc>,
) -> Result<(InboundReply, Notes), Skip> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(Skip::Unparseable)?;
    // mail-parser accepts nearly anything as a message; without a single
    // header it is not one.
    if message.headers().is_empty() {
        return Err(Skip::Unparseable);
    }
    if let Some(why) = automatic(&message) {
        return Err(Skip::Automatic(why));
    }
    let from = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty())
        .ok_or(Skip::NoSender)?;
    let mut notes = Notes::default();
    let text = match message.text_part(0) {
        Some(part) => {
            notes.html_only = part.is_text_html();
            message
                .body_text(0)
                .map(Cow::into_owned)
                .unwrap_or_default()
        }
        None => {
            notes.no_text = true;
            String::new()
        }
    };
    let reference = message
        .message_id()
        .map(bracketed)
        .unwrap_or_else(|| fallback_reference.to_owned());
    let mut refers_to = Vec::new();
    for value in [message.in_reply_to(), message.references()] {
        for id in ids(value) {
            if !refers_to.contains(&id) {
                refers_to.push(id);
            }
        }
    }
    Ok((
        InboundReply {
            via: Via::Mail,
            from,
            text: normalize_newlines(&text),
            subject: message.subject().map(str::to_owned),
            refers_to,
            reference,
            received_at,
        },
        notes,
    ))
}

/// Which header marks `message` as machine-sent, if one does.
fn automatic(message: &Message<'_>) -> Option<String> {
    if let Some(v) = raw_header(message, "Auto-Submitted") {
        // `no`, possibly with parameters (`no; comment`), is a person.
        let keyword = v.split([';', '(']).next().unwrap_or("").trim();
        if !keyword.eq_ignore_ascii_case("no") {
            return Some(format!("Auto-Submitted: {v}"));
        }
    }
    if let Some(ct) = message
        .header(HeaderName::ContentType)
        .and_then(HeaderValue::as_content_type)
        && ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        return Some("Content-Type: multipart/report".into());
    }
    if let Some(v) = raw_header(message, "Return-Path")
        && v.trim_start_matches('<')
            .trim_end_matches('>')
            .trim()
            .is_empty()
    {
        return Some("Return-Path: <>".into());
    }
    if let Some(v) = raw_header(message, "Precedence")
        && ["bulk", "junk", "auto_reply"]
            .iter()
            .any(|p| v.eq_ignore_ascii_case(p))
    {
        return Some(format!("Precedence: {v}"));
    }
    for marker in ["X-Autoreply", "X-Autorespond"] {
        if raw_header(message, marker).is_some() {
            return Some(marker.to_owned());
        }
    }
    None
}

/// A header's raw value, unfolded and trimmed (None when absent).
fn raw_header(message: &Message<'_>, name: &'static str) -> Option<String> {
    let raw = message.header_raw(name)?;
    let unfolded = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(unfolded)
}

/// The Message-IDs in an In-Reply-To or References value, bracketed.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![bracketed(t)],
        HeaderValue::TextList(list) => list.iter().map(|t| bracketed(t)).collect(),
        _ => Vec::new(),
    }
}

/// `id` as `<id>` (mail-parser hands IDs out without brackets).
fn bracketed(id: &str) -> String {
    let inner = id.trim().trim_start_matches('<').trim_end_matches('>');
    format!("<{inner}>")
}

fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2026-11-25T00:20:00Z".parse().unwrap()
    }

    fn parse(raw: &str) -> Result<(InboundReply, Notes), Skip> {
        parse_reply(raw.replace('\n', "\r\n").as_bytes(), "imap:7:42", at())
    }

    fn reply(raw: &str) -> InboundReply {
        parse(raw).unwrap().0
    }

    const PLAIN_REPLY: &str = "\
Return-Path: <Oncall@Example.COM>
From: On Call <Oncall@Example.COM>
To: splitguard <replies@example.com>
Subject: Re: [SG-4821] CRITICAL split_brain VIP 10.0.0.3 on lb02
Message-ID: <CAF+reply.1@mail.example.com>
In-Reply-To: <sg.lb02-1.1.mail0@splitguard.invalid>
References: <sg.lb02-1.1.mail0@splitguard.invalid>
Date: Wed, 25 Nov 2026 00:19:00 +0000
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

4821 ACK

On Wed, 25 Nov 2026 splitguard wrote:
> splitguard CRITICAL split_brain
";

    #[test]
    fn a_plain_reply_carries_sender_subject_ids_and_text() {
        let (r, notes) = parse(PLAIN_REPLY).unwrap();
        assert_eq!(r.via, Via::Mail);
        assert_eq!(r.from, "oncall@example.com");
        assert_eq!(
            r.subject.as_deref(),
            Some("Re: [SG-4821] CRITICAL split_brain VIP 10.0.0.3 on lb02")
        );
        assert_eq!(r.reference, "<CAF+reply.1@mail.example.com>");
        assert_eq!(r.refers_to, vec!["<sg.lb02-1.1.mail0@splitguard.invalid>"]);
        assert!(r.text.starts_with("4821 ACK\n\nOn Wed"), "{:?}", r.text);
        assert!(!r.text.contains('\r'));
        assert_eq!(r.received_at, at());
        assert_eq!(notes, Notes::default());
    }

    #[test]
    fn in_reply_to_comes_first_then_references_without_duplicates() {
        let r = reply(
            "\
From: a@example.com
Subject: Re: x
In-Reply-To: <sg.lb02-1.2.mail0@splitguard.invalid>
References: <sg.lb02-1.1.mail0@splitguard.invalid>
 <sg.lb02-1.2.mail0@splitguard.invalid>

ack
",
        );
        assert_eq!(
            r.refers_to,
            vec![
                "<sg.lb02-1.2.mail0@splitguard.invalid>",
                "<sg.lb02-1.1.mail0@splitguard.invalid>",
            ]
        );
        assert!(crate::core::message_id::refers_to_incident(
            &r.refers_to[0],
            "lb02-1"
        ));
    }

    #[test]
    fn a_missing_message_id_takes_the_fallback_reference() {
        let r = reply("From: a@example.com\nSubject: 4821 ack\n\nack\n");
        assert_eq!(r.reference, "imap:7:42");
        assert!(r.refers_to.is_empty());
    }

    #[test]
    fn quoted_printable_and_charsets_are_decoded() {
        let r = reply(
            "\
From: =?UTF-8?Q?J=C3=B6rg?= <JOERG@example.de>
Subject: =?ISO-8859-1?Q?Re=3A_=5BSG-4821=5D_St=F6rung?=
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

4821 ACK =E4hm, ich k=FCmmere mich=
 drum
",
        );
        assert_eq!(r.from, "joerg@example.de");
        assert_eq!(r.subject.as_deref(), Some("Re: [SG-4821] Störung"));
        assert_eq!(r.text.trim_end(), "4821 ACK ähm, ich kümmere mich drum");
    }

    #[test]
    fn base64_utf8_subjects_and_bodies_are_decoded() {
        // "Re: [SG-4821] 故障" and "4821 确认\n"
        let r = reply(
            "\
From: ops@example.cn
Subject: =?UTF-8?B?UmU6IFtTRy00ODIxXSDmlYXpmpw=?=
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

NDgyMSDnoa7orqQK
",
        );
        assert_eq!(r.subject.as_deref(), Some("Re: [SG-4821] 故障"));
        assert_eq!(r.text, "4821 确认\n");
    }

    #[test]
    fn legacy_cjk_charsets_are_decoded() {
        // "4821 了解" in Shift_JIS.
        let mut raw = b"From: a@example.jp\r\nSubject: ack\r\nContent-Type: text/plain; charset=Shift_JIS\r\n\r\n4821 ".to_vec();
        raw.extend([0x97, 0xb9, 0x89, 0xf0]);
        raw.extend(b"\r\n");
        let (r, _) = parse_reply(&raw, "x", at()).unwrap();
        assert_eq!(r.text, "4821 了解\n");
    }

    #[test]
    fn multipart_alternative_takes_the_plain_part() {
        let (r, notes) = parse(
            "\
From: a@example.com
Subject: Re: [SG-4821] x
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=\"b1\"

--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

4821 DEMOTE
--b1
Content-Type: text/html; charset=utf-8

<html><body><p>4821 <b>RESUME</b></p></body></html>
--b1--
",
        )
        .unwrap();
        assert_eq!(r.text.trim(), "4821 DEMOTE");
        assert!(!notes.html_only);
    }

    #[test]
    fn multipart_mixed_takes_the_first_text_plain_not_the_attachment() {
        let r = reply(
            "\
From: a@example.com
Subject: Re: x
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"m\"

--m
Content-Type: multipart/alternative; boundary=\"a\"

--a
Content-Type: text/plain

4821 ACK
--a
Content-Type: text/html

<p>4821 ACK</p>
--a--
--m
Content-Type: text/plain; name=\"notes.txt\"
Content-Disposition: attachment; filename=\"notes.txt\"

4821 DEMOTE
--m--
",
        );
        assert_eq!(r.text.trim(), "4821 ACK");
    }

    #[test]
    fn html_only_mail_is_stripped_of_tags() {
        let (r, notes) = parse(
            "\
From: a@example.com
Subject: Re: [SG-4821] x
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><head><style>p {color: red}</style></head><body><p>4821 <b>ACK</b></p><div>sent from my phone</div></body></html>
",
        )
        .unwrap();
        assert!(notes.html_only);
        assert!(r.text.contains("4821 ACK"), "{:?}", r.text);
        assert!(!r.text.contains('<'), "{:?}", r.text);
    }

    #[test]
    fn a_mail_with_only_an_attachment_has_empty_text() {
        let (r, notes) = parse(
            "\
From: a@example.com
Subject: Re: [SG-4821] ACK
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"m\"

--m
Content-Type: application/octet-stream
Content-Disposition: attachment; filename=\"x.bin\"
Content-Transfer-Encoding: base64

AAEC
--m--
",
        )
        .unwrap();
        assert!(notes.no_text);
        assert_eq!(r.text, "");
        assert_eq!(r.subject.as_deref(), Some("Re: [SG-4821] ACK"));
    }

    #[test]
    fn machine_mail_is_skipped() {
        let base = "From: a@example.com\nSubject: Re: [SG-4821] x\n";
        for (header, why) in [
            (
                "Auto-Submitted: auto-replied\n",
                "Auto-Submitted: auto-replied",
            ),
            ("Auto-Submitted: auto-generated\n", "Auto-Submitted"),
            (
                "auto-submitted: Auto-Replied (vacation)\n",
                "Auto-Submitted",
            ),
            (
                "Auto-Submitted: auto-notified; owner-email=x@y\n",
                "Auto-Submitted",
            ),
            ("Return-Path: <>\n", "Return-Path: <>"),
            ("Precedence: bulk\n", "Precedence: bulk"),
            ("Precedence: Junk\n", "Precedence: Junk"),
            ("X-Autoreply: yes\n", "X-Autoreply"),
            ("X-Autorespond: yes\n", "X-Autorespond"),
        ] {
            let raw = format!("{header}{base}\nI am out of office.\n");
            match parse(&raw) {
                Err(Skip::Automatic(w)) => assert!(w.contains(why), "{header:?} → {w}"),
                other => panic!("{header:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn auto_submitted_no_is_a_person() {
        for v in ["no", "No", "no; comment", " no (human)"] {
            let raw = format!("Auto-Submitted: {v}\nFrom: a@example.com\nSubject: s\n\nack\n");
            assert_eq!(reply(&raw).text, "ack\n", "{v}");
        }
        // Precedence: list is a mailing list, not an autoresponder.
        assert!(parse("Precedence: list\nFrom: a@example.com\n\nack\n").is_ok());
    }

    #[test]
    fn delivery_reports_are_skipped() {
        let raw = "\
From: MAILER-DAEMON@example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"

--r
Content-Type: text/plain

Your message could not be delivered.
--r
Content-Type: message/delivery-status

Final-Recipient: rfc822; nobody@example.com
Action: failed
--r--
";
        assert_eq!(
            parse(raw).unwrap_err(),
            Skip::Automatic("Content-Type: multipart/report".into())
        );
    }

    #[test]
    fn no_sender_and_garbage_are_skipped() {
        assert_eq!(
            parse("Subject: Re: [SG-4821] x\n\nack\n").unwrap_err(),
            Skip::NoSender
        );
        assert_eq!(
            parse("From: undisclosed-recipients:;\nSubject: x\n\nack\n").unwrap_err(),
            Skip::NoSender
        );
        assert_eq!(parse_reply(b"", "x", at()).unwrap_err(), Skip::Unparseable);
    }
}
