//! Replies at the watcher: the gate decides, ACK and MUTE act on the alert engine
//! here, DEMOTE and RESUME go back to the owner (the daemon holds the node
//! backup; the standalone watch runs its configured command), STATUS is
//! answered with the owner's summary. Every decision is appended to the audit
//! log (`<state_dir>/reply-audit.jsonl`) and kept for `status`; every command is
//! confirmed to the sender on the channel kind it came from.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use splitguard_watchdog::core::reply::gate::{AuditRecord, Refusal, ReplyGate, ReplyRules};
use splitguard_watchdog::core::reply::parse::{self, Command, HELP};
use splitguard_watchdog::core::reply::{InboundReply, Via};
use splitguard_watchdog::io::channels::Channel;
use tracing::{info, warn};

use super::Watcher;
use crate::config::Config;

/// How many decisions `status` shows.
const RECENT: usize = 20;

/// What the owner must do for an accepted DEMOTE or RESUME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerAction {
    Demote {
        instance: Option<String>,
    },
    Resume {
        instance: Option<String>,
    },
    /// Fence the peer named `target` (its `[[fence]]` name or address), on
    /// `by`'s word; fencing carries it out, not the VIPs' owner.
    Fence {
        target: String,
        by: String,
    },
}

/// The outcome of one reply, for the HTTP answer and the owner.
#[derive(Debug)]
pub struct ReplyOutcome {
    pub http_status: u16,
    pub action: Option<OwnerAction>,
    /// The confirmation to send, once the owner has acted.
    pub confirm: Option<Confirmation>,
}

/// A text back to the sender on the channel kind the reply came by.
#[derive(Debug, Clone)]
pub struct Confirmation {
    pub via: Via,
    pub to: String,
    pub subject: String,
    pub text: String,
}

pub struct ReplyDesk {
    gate: ReplyGate,
    audit_path: PathBuf,
    recent: VecDeque<AuditRecord>,
}

impl ReplyDesk {
    pub fn new(cfg: &Config) -> Option<ReplyDesk> {
        let r = cfg.reply.as_ref()?;
        Some(ReplyDesk {
            gate: ReplyGate::new(ReplyRules {
                allowed_senders: r.allowed_senders.clone(),
                pins: r.pins.clone(),
            }),
            audit_path: cfg.state_dir.join("reply-audit.jsonl"),
            recent: VecDeque::new(),
        })
    }

    /// Appends to the audit log (and the recent list). A log that cannot be
    /// written is reported, never silently skipped.
    pub fn audit(&mut self, rec: AuditRecord) {
        let line = serde_json::to_string(&rec).unwrap_or_default();
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.audit_path)
            .and_then(|mut f| writeln!(f, "{line}").and_then(|()| f.sync_data()));
        if let Err(e) = written {
            warn!(path = %self.audit_path.display(), error = %e, "reply audit not written");
        }
        if rec.accepted {
            info!(from = %rec.from, via = ?rec.via, command = rec.command.unwrap_or("-"), code = rec.code.as_deref().unwrap_or("-"), "reply accepted");
        } else {
            warn!(from = %rec.from, via = ?rec.via, reason = rec.reason.as_deref().unwrap_or("-"), "reply refused");
        }
        self.recent.push_back(rec);
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    pub fn recent(&self) -> impl Iterator<Item = &AuditRecord> {
        self.recent.iter()
    }
}

impl Watcher {
    /// The code a mail answers: its subject tag, else the incident its
    /// references point at.
    fn mail_context(&self, reply: &InboundReply) -> Option<String> {
        if let Some(code) = reply.subject.as_deref().and_then(parse::subject_code) {
            return Some(code);
        }
        self.engine.open().iter().find_map(|o| {
            reply
                .refers_to
                .iter()
                .any(|r| splitguard_watchdog::core::message_id::refers_to_incident(r, &o.id))
                .then(|| o.code.clone())
        })
    }

    /// Decides on one reply; ACK and MUTE take effect here.
    pub async fn on_reply(&mut self, reply: InboundReply, summary: &str) -> ReplyOutcome {
        if self.replies.is_none() {
            return ReplyOutcome {
                http_status: 404,
                action: None,
                confirm: None,
            };
        }
        let context = if reply.via == Via::Mail {
            self.mail_context(&reply)
        } else {
            None
        };
        let open: Vec<String> = self.engine.open().iter().map(|o| o.code.clone()).collect();
        let Some(desk) = self.replies.as_mut() else {
            return ReplyOutcome {
                http_status: 404,
                action: None,
                confirm: None,
            };
        };
        let (decision, audit) = desk
            .gate
            .decide(Utc::now(), &reply, context.as_deref(), |c| {
                open.iter().any(|o| o == c)
            });
        desk.audit(audit);
        let subject = reply
            .subject
            .clone()
            .unwrap_or_else(|| "splitguard".to_owned());
        let answer = |text: String| {
            Some(Confirmation {
                via: reply.via,
                to: reply.from.clone(),
                subject: subject.clone(),
                text,
            })
        };
        let accepted = match decision {
            Ok(a) => a,
            Err(refusal) => {
                let http_status = refusal.http_status();
                // Help for what we could not read; a plain "no" for the rest,
                // but never to a stranger (that would confirm the number works).
                let confirm = match &refusal {
                    Refusal::UnknownSender(_) | Refusal::Duplicate(_) => None,
                    Refusal::Unparsed(_) => answer(HELP.to_owned()),
                    other => answer(format!("splitguard: not done: {other}.")),
                };
                return ReplyOutcome {
                    http_status,
                    action: None,
                    confirm,
                };
            }
        };
        let code = accepted.code.clone().unwrap_or_default();
        let instance = self
            .engine
            .open()
            .iter()
            .find(|o| o.code == code)
            .and_then(|o| o.instance.clone());
        let now = Utc::now();
        let (action, text) = match accepted.command {
            Command::Ack => match self.engine.handle_ack(now, &code, &accepted.by) {
                Ok(inc) => (
                    None,
                    format!(
                        "splitguard: {code} ({}) acked by {}.",
                        inc.kind, accepted.by
                    ),
                ),
                Err(e) => (None, format!("splitguard: not done: {e}.")),
            },
            Command::Mute(d) => {
                let until = now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
                match self.engine.handle_mute(now, &code, until) {
                    Ok(_) => (
                        None,
                        format!(
                            "splitguard: {code} muted until {}.",
                            until.format("%H:%M UTC")
                        ),
                    ),
                    Err(e) => (None, format!("splitguard: not done: {e}.")),
                }
            }
            Command::Status => (None, format!("splitguard: {summary}")),
            Command::Demote => (
                Some(OwnerAction::Demote { instance }),
                format!(
                    "splitguard: {code} DEMOTE by {}: releasing the VIP here and holding backup until RESUME.",
                    accepted.by
                ),
            ),
            Command::Fence => {
                let target = accepted.target.clone().unwrap_or_default();
                (
                    Some(OwnerAction::Fence {
                        target: target.clone(),
                        by: accepted.by.clone(),
                    }),
                    format!(
                        "splitguard: {code} FENCE {target} by {}: ordered.",
                        accepted.by
                    ),
                )
            }
            Command::Resume => (
                Some(OwnerAction::Resume { instance }),
                format!(
                    "splitguard: {code} RESUME by {}: the hold is lifted.",
                    accepted.by
                ),
            ),
        };
        // Saved with the notices the reply sends, not before them.
        self.settle_changed(std::time::Instant::now(), true).await;
        ReplyOutcome {
            http_status: 200,
            action,
            confirm: answer(text),
        }
    }

    /// Sends a confirmation in the background on the first channel of the
    /// reply's kind; logged, not spooled (the sender is waiting now, not later).
    pub fn confirm(&self, c: Confirmation) {
        let channel: Option<Arc<Channel>> = self
            .channels
            .iter()
            .find(|ch| {
                matches!(
                    (c.via, ch.as_ref()),
                    (Via::Mail, Channel::Mail(_))
                        | (Via::Twilio, Channel::TwilioSms(_))
                        | (Via::Generic, Channel::HttpSms(_))
                )
            })
            .cloned();
        let Some(ch) = channel else {
            warn!(via = ?c.via, to = %c.to, "no channel of this kind to confirm a reply on");
            return;
        };
        tokio::spawn(async move {
            match ch.send_text(&c.to, &c.subject, &c.text).await {
                Ok(_) => info!(to = %c.to, channel = %ch.name(), "reply confirmed"),
                Err(e) => {
                    warn!(to = %c.to, channel = %ch.name(), error = %e, "confirmation not sent")
                }
            }
        });
    }
}
