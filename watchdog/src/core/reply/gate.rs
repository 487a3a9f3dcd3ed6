//! Who may reply, and to what: the authorization of replies, pure. A reply
//! counts only from an allowed sender (E.164 numbers, mail addresses), once per
//! source reference (a redelivered webhook or mail is handled once), for an open
//! code, and, for commands that act on the node, with the sender's PIN when one
//! is set. Every decision comes with an audit record and the answer to send back.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::parse::{self, Command, ParseError, Parsed};
use super::{InboundReply, Via};
use crate::core::secret::Secret;

/// How many source references are remembered for deduplication.
const SEEN_MAX: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct ReplyRules {
    pub allowed_senders: Vec<String>,
    /// Per sender: the PIN its acting commands need.
    pub pins: BTreeMap<String, Secret>,
}

/// Why a reply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("sender {0} is not allowed")]
    UnknownSender(String),
    #[error("already handled ({0})")]
    Duplicate(String),
    #[error("{0}")]
    Unparsed(ParseError),
    #[error("code {0} is not open (unknown, resolved or expired)")]
    UnknownCode(String),
    #[error("{0} needs your PIN")]
    PinRequired(&'static str),
    #[error("wrong PIN")]
    BadPin,
    /// FENCE powers a machine off: it needs a PIN even from a sender who has
    /// none configured.
    #[error("{0} needs a PIN, and none is set for this sender (reply.pins)")]
    PinNotSet(&'static str),
}

impl Refusal {
    /// The HTTP status a webhook gets: 403 for who/what is refused, 200 for a
    /// duplicate (already handled) and for text we answer with help.
    pub fn http_status(&self) -> u16 {
        match self {
            Refusal::Duplicate(_) | Refusal::Unparsed(_) => 200,
            _ => 403,
        }
    }
}

/// An accepted reply: what to do, for which code, on whose word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub command: Command,
    pub code: Option<String>,
    pub by: String,
    /// FENCE's node.
    pub target: Option<String>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub via: Via,
    pub from: String,
    pub reference: String,
    /// The command line as received (first 200 characters), PINs masked.
    pub text: String,
    pub accepted: bool,
    pub command: Option<&'static str>,
    pub code: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Default)]
pub struct ReplyGate {
    rules: ReplyRules,
    seen: VecDeque<String>,
}

/// Numbers compare without spaces, dashes or brackets; addresses without case.
pub fn normalize_sender(s: &str) -> String {
    let t = s.trim();
    if t.contains('@') {
        let addr = t
            .rsplit_once('<')
            .and_then(|(_, r)| r.split_once('>'))
            .map_or(t, |(a, _)| a);
        addr.trim().to_ascii_lowercase()
    } else {
        t.chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect()
    }
}

impl ReplyGate {
    pub fn new(rules: ReplyRules) -> ReplyGate {
        let rules = ReplyRules {
            allowed_senders: rules
                .allowed_senders
                .iter()
                .map(|s| normalize_sender(s))
                .collect(),
            pins: rules
                .pins
                .into_iter()
                .map(|(k, v)| (normalize_sender(&k), v))
                .collect(),
        };
        ReplyGate {
            rules,
            seen: VecDeque::new(),
        }
    }

    /// Decides on `reply`. `is_open` says whether a code is open; `context_code`
    /// is the code a mail answers (subject tag or references).
    pub fn decide(
        &mut self,
        now: DateTime<Utc>,
        reply: &InboundReply,
        context_code: Option<&str>,
        is_open: impl Fn(&str) -> bool,
    ) -> (Result<Accepted, Refusal>, AuditRecord) {
        let from = normalize_sender(&reply.from);
        let line = parse::command_line(&reply.text).unwrap_or_default();
        let mut audit = AuditRecord {
            at: now,
            via: reply.via,
            from: from.clone(),
            reference: reply.reference.clone(),
            text: parse::redact_pins(line).chars().take(200).collect(),
            accepted: false,
            command: None,
            code: None,
            reason: None,
        };
        let result = self.check(reply, &from, context_code, is_open);
        match &result {
            Ok(a) => {
                audit.accepted = true;
                audit.command = Some(a.command.word());
                audit.code = a.code.clone();
            }
            Err(r) => audit.reason = Some(r.to_string()),
        }
        (result, audit)
    }

    fn check(
        &mut self,
        reply: &InboundReply,
        from: &str,
        context_code: Option<&str>,
        is_open: impl Fn(&str) -> bool,
    ) -> Result<Accepted, Refusal> {
        if !self.rules.allowed_senders.iter().any(|s| s == from) {
            return Err(Refusal::UnknownSender(from.to_owned()));
        }
        if self.seen.contains(&reply.reference) {
            return Err(Refusal::Duplicate(reply.reference.clone()));
        }
        self.seen.push_back(reply.reference.clone());
        if self.seen.len() > SEEN_MAX {
            self.seen.pop_front();
        }
        let Parsed {
            command,
            code,
            pin,
            target,
        } = parse::parse(&reply.text, context_code).map_err(Refusal::Unparsed)?;
        if let Some(code) = &code
            && !is_open(code)
        {
            return Err(Refusal::UnknownCode(code.clone()));
        }
        if command == Command::Fence && !self.rules.pins.contains_key(from) {
            return Err(Refusal::PinNotSet(command.word()));
        }
        if command.acts()
            && let Some(want) = self.rules.pins.get(from)
        {
            let got = pin.ok_or(Refusal::PinRequired(command.word()))?;
            let same: bool = got.as_bytes().ct_eq(want.expose().as_bytes()).into();
            if !same {
                return Err(Refusal::BadPin);
            }
        }
        Ok(Accepted {
            command,
            code,
            by: from.to_owned(),
            target,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(from: &str, text: &str, reference: &str) -> InboundReply {
        InboundReply {
            via: Via::Twilio,
            from: from.into(),
            text: text.into(),
            subject: None,
            refers_to: vec![],
            reference: reference.into(),
            received_at: Utc::now(),
        }
    }

    fn gate() -> ReplyGate {
        ReplyGate::new(ReplyRules {
            allowed_senders: vec!["+1 555 000-2222".into(), "OnCall@Example.com".into()],
            pins: [("+15550002222".to_owned(), Secret::new("7741"))].into(),
        })
    }

    fn open(code: &str) -> bool {
        code == "4821"
    }

    #[test]
    fn an_allowed_sender_acks_an_open_code_once() {
        let mut g = gate();
        let (r, audit) = g.decide(
            Utc::now(),
            &reply("+15550002222", "4821", "SM1"),
            None,
            open,
        );
        assert_eq!(
            r,
            Ok(Accepted {
                command: Command::Ack,
                code: Some("4821".into()),
                by: "+15550002222".into(),
                target: None,
            })
        );
        assert!(audit.accepted && audit.command == Some("ACK"));
        let (r, audit) = g.decide(
            Utc::now(),
            &reply("+15550002222", "4821", "SM1"),
            None,
            open,
        );
        assert_eq!(r, Err(Refusal::Duplicate("SM1".into())));
        assert!(!audit.accepted);
        assert_eq!(Refusal::Duplicate(String::new()).http_status(), 200);
    }

    #[test]
    fn strangers_unknown_codes_and_bad_pins_are_refused() {
        let mut g = gate();
        let d = |g: &mut ReplyGate, from: &str, text: &str, r: &str| {
            g.decide(Utc::now(), &reply(from, text, r), None, open).0
        };
        assert_eq!(
            d(&mut g, "+15559999999", "4821", "a"),
            Err(Refusal::UnknownSender("+15559999999".into()))
        );
        assert_eq!(
            d(&mut g, "+15550002222", "1234", "b"),
            Err(Refusal::UnknownCode("1234".into()))
        );
        assert_eq!(
            d(&mut g, "+15550002222", "4821 DEMOTE", "c"),
            Err(Refusal::PinRequired("DEMOTE"))
        );
        assert_eq!(
            d(&mut g, "+15550002222", "4821 DEMOTE 1111", "d"),
            Err(Refusal::BadPin)
        );
        assert_eq!(
            d(&mut g, "+15550002222", "4821 DEMOTE 7741", "e").map(|a| a.command),
            Ok(Command::Demote)
        );
        assert_eq!(Refusal::BadPin.http_status(), 403);
        // No PIN configured for this sender: acting commands need none.
        let mut m = InboundReply {
            via: Via::Mail,
            ..reply("Alice <oncall@example.com>", "demote", "<m1@x>")
        };
        m.subject = Some("Re: [SG-4821] CRITICAL".into());
        let (r, _) = g.decide(Utc::now(), &m, Some("4821"), open);
        assert_eq!(r.map(|a| a.by), Ok("oncall@example.com".into()));
    }

    #[test]
    fn fence_needs_the_senders_pin_always() {
        let mut g = gate();
        let d = |g: &mut ReplyGate, from: &str, text: &str, r: &str| {
            g.decide(Utc::now(), &reply(from, text, r), None, open).0
        };
        assert_eq!(
            d(&mut g, "+15550002222", "4821 FENCE lb02", "a"),
            Err(Refusal::PinRequired("FENCE"))
        );
        assert_eq!(
            d(&mut g, "+15550002222", "4821 FENCE lb02 1111", "b"),
            Err(Refusal::BadPin)
        );
        let ok = d(&mut g, "+15550002222", "4821 FENCE lb02 7741", "c").unwrap();
        assert_eq!(
            (ok.command, ok.target.as_deref()),
            (Command::Fence, Some("lb02"))
        );
        // A sender without a PIN may DEMOTE, never FENCE.
        assert_eq!(
            d(&mut g, "oncall@example.com", "4821 FENCE lb02 7741", "d"),
            Err(Refusal::PinNotSet("FENCE"))
        );
    }

    #[test]
    fn senders_are_normalized() {
        assert_eq!(normalize_sender(" +1 (555) 000-2222 "), "+15550002222");
        assert_eq!(normalize_sender("Bob <BOB@Example.COM>"), "bob@example.com");
    }
}
