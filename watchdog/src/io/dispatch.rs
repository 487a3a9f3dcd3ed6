//! Moves spooled notifications to their channels: one worker task per channel,
//! strictly in order (a resolved notice never overtakes its page), retrying with
//! backoff while the channel may recover, parking for good what it refuses. A
//! channel that is down delays only itself. A page still undelivered when its
//! incident's resolved notice queues behind it is moot: the two become one
//! notice ([`collapse_missed`]), so a channel that comes back does not get a
//! page for something that already ended, followed by its end.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::core::alert::AlertStatus;
use crate::io::channels::Channel;
use crate::io::spool::{OutboxEntry, Spool};

/// First retry delay; doubles per failure up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What happened to one notification, for the event stream and the bench.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub channel: String,
    pub idempotency_key: String,
    pub code: String,
    pub kind: String,
    pub status: String,
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        reference: Option<String>,
    },
    Retrying {
        attempt: u32,
        error: String,
    },
    Failed {
        error: String,
    },
    /// Not sent: its incident resolved while it waited, and the notice named
    /// by `by` (an idempotency key) went instead.
    Superseded {
        by: String,
    },
}

impl Delivery {
    /// What happened to entry `e` now.
    fn of(e: &OutboxEntry, outcome: Outcome) -> Delivery {
        Delivery {
            channel: e.channel.clone(),
            idempotency_key: e.alert.idempotency_key.clone(),
            code: e.alert.code.clone(),
            kind: e.alert.kind.as_str().to_owned(),
            status: e.alert.status.as_str().to_owned(),
            at: Utc::now(),
            outcome,
        }
    }
}

/// Hands spooled entries to the workers.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    queues: Vec<(String, mpsc::UnboundedSender<OutboxEntry>)>,
    /// Whether the node has no link of its own (see [`Dispatcher::set_offline`]).
    offline: Arc<watch::Sender<bool>>,
}

/// The rule for a page the channel has not taken yet (`head`: about to be
/// sent, or failed so far), given what queued behind it: when the
/// incident's resolved notice is among them, the page, and any repeat or ack
/// of that incident between, are dropped. The resolved notice goes in the
/// page's place, marked [`Alert::missed`](crate::core::alert::Alert::missed)
/// when `head` was the incident's first page (nothing about it ever reached
/// this channel).
/// Returns the notice to send now and the entries it supersedes (`head`
/// first), or None when nothing changes.
pub fn collapse_missed(
    head: &OutboxEntry,
    backlog: &mut VecDeque<OutboxEntry>,
) -> Option<(OutboxEntry, Vec<OutboxEntry>)> {
    if head.alert.status != AlertStatus::Firing {
        return None;
    }
    let id = &head.alert.id;
    let at = backlog
        .iter()
        .position(|e| e.alert.id == *id && e.alert.status == AlertStatus::Resolved)?;
    let mut resolved = backlog.remove(at)?;
    let mut superseded = vec![head.clone()];
    let mut k = 0;
    while k < at.min(backlog.len()) {
        if backlog[k].alert.id == *id {
            superseded.extend(backlog.remove(k));
        } else {
            k += 1;
        }
    }
    resolved.alert.missed = head.alert.notification == 1;
    // The channel is still failing: the next try keeps the backoff.
    resolved.attempts = head.attempts;
    Some((resolved, superseded))
}

pub fn backoff(attempts: u32) -> Duration {
    let factor = 1u32 << attempts.min(16);
    BACKOFF_START.saturating_mul(factor).min(BACKOFF_MAX)
}

impl Dispatcher {
    /// Starts one worker per channel and queues what the spool still holds from
    /// an earlier run. Entries for a channel no longer configured stay in the
    /// spool and are reported.
    pub fn spawn(
        spool: Arc<Spool>,
        channels: Vec<Arc<Channel>>,
        reports: mpsc::UnboundedSender<Delivery>,
    ) -> Result<Dispatcher, crate::io::spool::SpoolError> {
        let mut queues = Vec::new();
        let (offline, offline_rx) = watch::channel(false);
        for ch in channels {
            let (tx, rx) = mpsc::unbounded_channel();
            queues.push((ch.name().to_owned(), tx));
            tokio::spawn(worker(
                spool.clone(),
                ch,
                rx,
                reports.clone(),
                offline_rx.clone(),
            ));
        }
        let d = Dispatcher {
            queues,
            offline: Arc::new(offline),
        };
        for e in spool.pending()? {
            if !d.submit(e.clone()) {
                warn!(channel = %e.channel, key = %e.alert.idempotency_key, "spooled notification for a channel no longer configured; left in the spool");
            }
        }
        Ok(d)
    }

    /// The node's own links are all down (`true`), or one is back. While
    /// they are down, a failed notification is retried only once they are
    /// back (or after [`BACKOFF_MAX`], for a channel reached another way).
    /// The caller says "back" only after what the link's return resolved is
    /// queued here, so a page for something that ended meanwhile folds into
    /// its resolved notice rather than racing it onto the wire.
    pub fn set_offline(&self, offline: bool) {
        self.offline.send_if_modified(|o| {
            let changed = *o != offline;
            *o = offline;
            changed
        });
    }

    /// Queues a spooled entry; false when its channel is unknown.
    pub fn submit(&self, e: OutboxEntry) -> bool {
        match self.queues.iter().find(|(n, _)| *n == e.channel) {
            Some((_, tx)) => tx.send(e).is_ok(),
            None => false,
        }
    }
}

async fn worker(
    spool: Arc<Spool>,
    ch: Arc<Channel>,
    mut rx: mpsc::UnboundedReceiver<OutboxEntry>,
    reports: mpsc::UnboundedSender<Delivery>,
    mut offline: watch::Receiver<bool>,
) {
    // What queued behind an entry the channel keeps refusing.
    let mut backlog: VecDeque<OutboxEntry> = VecDeque::new();
    loop {
        let mut e = match backlog.pop_front() {
            Some(e) => e,
            None => match rx.recv().await {
                Some(e) => e,
                None => break,
            },
        };
        loop {
            // Before each try: what queued meanwhile may end this page.
            while let Ok(next) = rx.try_recv() {
                backlog.push_back(next);
            }
            if let Some((merged, superseded)) = collapse_missed(&e, &mut backlog) {
                e = supersede(&spool, merged, superseded, &reports);
            }
            let result = ch.send(&e.alert).await;
            match result {
                Ok(receipt) => {
                    info!(channel = %e.channel, code = %e.alert.code, kind = %e.alert.kind, status = e.alert.status.as_str(), "alert delivered");
                    if let Err(err) = spool.done(&e) {
                        error!(channel = %e.channel, error = %err, "delivered, but the spool entry was not removed; it may be sent again after a restart");
                    }
                    let _ = reports.send(Delivery::of(
                        &e,
                        Outcome::Delivered {
                            reference: receipt.reference,
                        },
                    ));
                    break;
                }
                Err(err) if err.retryable => {
                    e.attempts += 1;
                    let wait = backoff(e.attempts - 1);
                    warn!(channel = %e.channel, code = %e.alert.code, attempt = e.attempts, retry_in = ?wait, error = %err, "alert not delivered; will retry");
                    if let Err(se) = spool.retried(&e) {
                        warn!(error = %se, "attempt count not recorded");
                    }
                    let _ = reports.send(Delivery::of(
                        &e,
                        Outcome::Retrying {
                            attempt: e.attempts,
                            error: err.message.clone(),
                        },
                    ));
                    tokio::time::sleep(wait).await;
                    if *offline.borrow() {
                        let back = offline.wait_for(|o| !*o);
                        let _ = tokio::time::timeout(BACKOFF_MAX, back).await;
                    }
                }
                Err(err) => {
                    error!(channel = %e.channel, code = %e.alert.code, error = %err, "alert refused by the channel; kept in spool/failed");
                    if let Err(se) = spool.failed(&e, &err.message) {
                        error!(error = %se, "could not park the refused alert");
                    }
                    let _ = reports.send(Delivery::of(
                        &e,
                        Outcome::Failed {
                            error: err.message.clone(),
                        },
                    ));
                    break;
                }
            }
        }
    }
}

/// Spools `merged` (before the entries it replaces go, so a crash in between
/// loses nothing), drops the superseded entries and reports them.
fn supersede(
    spool: &Spool,
    merged: OutboxEntry,
    superseded: Vec<OutboxEntry>,
    reports: &mpsc::UnboundedSender<Delivery>,
) -> OutboxEntry {
    if let Err(err) = spool.retried(&merged) {
        warn!(channel = %merged.channel, error = %err, "merged notice not recorded; it may be sent as it was after a restart");
    }
    info!(
        channel = %merged.channel,
        code = %merged.alert.code,
        kind = %merged.alert.kind,
        superseded = superseded.len(),
        missed = merged.alert.missed,
        "incident resolved before its page could be delivered: one resolved notice instead"
    );
    for old in &superseded {
        if let Err(err) = spool.done(old) {
            error!(channel = %old.channel, error = %err, "superseded entry not removed; it may be sent after a restart");
        }
        let _ = reports.send(Delivery::of(
            old,
            Outcome::Superseded {
                by: merged.alert.idempotency_key.clone(),
            },
        ));
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(30), BACKOFF_MAX);
    }

    fn entry(seq: u64, id: &str, status: AlertStatus, notification: u32) -> OutboxEntry {
        let mut alert = crate::core::alert::testing::sample();
        alert.id = id.into();
        alert.status = status;
        alert.notification = notification;
        alert.idempotency_key = format!("{id}.{}.{notification}", status.as_str());
        OutboxEntry {
            seq,
            channel: "sms".into(),
            alert,
            attempts: 0,
        }
    }

    /// A first page the channel could not take, its incident resolved behind
    /// it: one resolved notice marked missed; another incident's entries stay
    /// where they were.
    #[test]
    fn an_undelivered_first_page_and_its_resolution_become_one_missed_notice() {
        let mut head = entry(1, "a", AlertStatus::Firing, 1);
        let mut backlog: VecDeque<OutboxEntry> = [
            entry(2, "b", AlertStatus::Firing, 1),
            entry(3, "a", AlertStatus::Firing, 2),
            entry(4, "a", AlertStatus::Resolved, 3),
            entry(5, "b", AlertStatus::Resolved, 2),
        ]
        .into();
        head.attempts = 3;
        let (merged, superseded) = collapse_missed(&head, &mut backlog).expect("collapses");
        assert_eq!(
            (merged.seq, merged.alert.status),
            (4, AlertStatus::Resolved)
        );
        assert!(merged.alert.missed);
        assert_eq!(merged.attempts, 3, "the backoff goes on");
        let gone: Vec<u64> = superseded.iter().map(|e| e.seq).collect();
        assert_eq!(gone, vec![1, 3]);
        let left: Vec<u64> = backlog.iter().map(|e| e.seq).collect();
        assert_eq!(left, vec![2, 5]);
        let sms = merged.alert.sms_text();
        assert!(sms.contains("before its page could be sent"), "{sms}");
        assert_eq!(
            merged.alert.webhook_body()["missed"],
            serde_json::Value::Bool(true)
        );
    }

    /// A repeat the channel could not take (the first page arrived): the
    /// repeat is dropped, the resolved notice goes as it is; an incident still
    /// open keeps its page; an ack or a resolved notice at the head is sent.
    #[test]
    fn a_stale_repeat_is_dropped_and_nothing_else_collapses() {
        let mut head = entry(1, "a", AlertStatus::Firing, 2);
        head.attempts = 1;
        let mut backlog: VecDeque<OutboxEntry> = [entry(2, "a", AlertStatus::Resolved, 3)].into();
        let (merged, superseded) = collapse_missed(&head, &mut backlog).expect("collapses");
        assert!(!merged.alert.missed);
        assert_eq!(superseded.len(), 1);
        assert!(backlog.is_empty());

        let mut backlog: VecDeque<OutboxEntry> = [entry(2, "b", AlertStatus::Resolved, 2)].into();
        assert_eq!(collapse_missed(&head, &mut backlog), None);
        let mut resolved = entry(1, "a", AlertStatus::Resolved, 3);
        resolved.attempts = 2;
        let mut backlog: VecDeque<OutboxEntry> = [entry(2, "a", AlertStatus::Resolved, 4)].into();
        assert_eq!(collapse_missed(&resolved, &mut backlog), None);
        assert_eq!(backlog.len(), 1);
    }
}
