//! Moves spooled notifications to their channels: one worker task per channel,
//! strictly in order (a resolved notice never overtakes its page), retrying with
//! backoff while the channel may recover, parking for good what it refuses. A
//! channel that is down delays only itself. A page still undelivered when its
//! incident's resolved notice queues behind it is moot: the two become one
//! notice ([`collapse_missed`]), so a channel that comes back does not get a
//! page for something that already ended, followed by its end.
//!
//! An Alertmanager channel with several instances posts each notice to all of
//! them; the notice is delivered (and leaves the spool) once any took it. The
//! instances that failed owe a copy, which the same worker retries while it
//! waits for the next notice, on the same backoff, for the channel's
//! `retry_for` (the rules: `core::fanout`). Each instance's result is in the
//! [`Delivery`] report; its failures are logged when it goes down and then
//! every ten minutes, never once per retry.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::core::alert::{Alert, AlertStatus};
use crate::core::fanout::{Attempt, CopyOutcome, Fanout, Note, Verdict};
use crate::io::channels::{AlertmanagerChannel, Channel, Receipt, SendError};
use crate::io::spool::{OutboxEntry, Spool};

// The retry schedule lives with the fan-out's pure rules, which use it too.
pub use crate::core::fanout::{BACKOFF_MAX, backoff};

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
    /// For a channel that posts to several Alertmanager instances: what each
    /// did with this try (or, for [`Outcome::Copies`], with its late copy).
    /// Empty for other channels.
    pub instances: Vec<InstanceReport>,
}

/// What one Alertmanager instance did with one post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceReport {
    /// The instance's base URL, credentials masked.
    pub url: String,
    pub result: InstanceResult,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceResult {
    Accepted,
    Failed {
        error: String,
    },
    /// Failed, and its copy is not retried any more (`retry_for` ran out, or
    /// it refused the copy for good).
    GaveUp {
        error: String,
        attempts: u32,
    },
}

impl InstanceResult {
    /// The word `/metrics` and the event stream use.
    pub fn as_str(&self) -> &'static str {
        match self {
            InstanceResult::Accepted => "accepted",
            InstanceResult::Failed { .. } => "failed",
            InstanceResult::GaveUp { .. } => "gave_up",
        }
    }
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
    /// A late copy to an instance that missed a notice the channel delivered
    /// (its result in [`Delivery::instances`]); the notice itself was counted
    /// when it was delivered.
    Copies,
}

impl Delivery {
    /// What happened to entry `e` now.
    fn of(e: &OutboxEntry, outcome: Outcome) -> Delivery {
        Delivery::about(&e.channel, &e.alert, outcome, Vec::new())
    }

    fn about(
        channel: &str,
        alert: &Alert,
        outcome: Outcome,
        instances: Vec<InstanceReport>,
    ) -> Delivery {
        Delivery {
            channel: channel.to_owned(),
            idempotency_key: alert.idempotency_key.clone(),
            code: alert.code.clone(),
            kind: alert.kind.as_str().to_owned(),
            status: alert.status.as_str().to_owned(),
            at: Utc::now(),
            outcome,
            instances,
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
    // The copies an Alertmanager cluster's instances owe.
    let mut fanout = match &*ch {
        Channel::Alertmanager(am) => Some(Fanout::new(am.instance_count(), am.spec.retry_for)),
        _ => None,
    };
    loop {
        let mut e = match backlog.pop_front() {
            Some(e) => e,
            None => match next_entry(&mut rx, &ch, fanout.as_mut(), &reports).await {
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
            let (result, instances) = match (&*ch, fanout.as_mut()) {
                (Channel::Alertmanager(am), Some(f)) if ch.wants(&e.alert) => {
                    send_to_each(am, f, &e).await
                }
                _ => (ch.send(&e.alert).await, Vec::new()),
            };
            match result {
                Ok(receipt) => {
                    info!(channel = %e.channel, code = %e.alert.code, kind = %e.alert.kind, status = e.alert.status.as_str(), "alert delivered");
                    if let Err(err) = spool.done(&e) {
                        error!(channel = %e.channel, error = %err, "delivered, but the spool entry was not removed; it may be sent again after a restart");
                    }
                    let mut d = Delivery::of(
                        &e,
                        Outcome::Delivered {
                            reference: receipt.reference,
                        },
                    );
                    d.instances = instances;
                    let _ = reports.send(d);
                    break;
                }
                Err(err) if err.retryable => {
                    e.attempts += 1;
                    let wait = backoff(e.attempts - 1);
                    warn!(channel = %e.channel, code = %e.alert.code, attempt = e.attempts, retry_in = ?wait, error = %err, "alert not delivered; will retry");
                    if let Err(se) = spool.retried(&e) {
                        warn!(error = %se, "attempt count not recorded");
                    }
                    let mut d = Delivery::of(
                        &e,
                        Outcome::Retrying {
                            attempt: e.attempts,
                            error: err.message.clone(),
                        },
                    );
                    d.instances = instances;
                    let _ = reports.send(d);
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
                    let mut d = Delivery::of(
                        &e,
                        Outcome::Failed {
                            error: err.message.clone(),
                        },
                    );
                    d.instances = instances;
                    let _ = reports.send(d);
                    break;
                }
            }
        }
    }
}

/// The next spooled entry; while none comes, the copies an Alertmanager
/// cluster's instances owe are retried as they fall due.
async fn next_entry(
    rx: &mut mpsc::UnboundedReceiver<OutboxEntry>,
    ch: &Channel,
    fanout: Option<&mut Fanout>,
    reports: &mpsc::UnboundedSender<Delivery>,
) -> Option<OutboxEntry> {
    let (Channel::Alertmanager(am), Some(f)) = (ch, fanout) else {
        return rx.recv().await;
    };
    loop {
        let Some(due) = f.poll_timeout() else {
            return rx.recv().await;
        };
        tokio::select! {
            e = rx.recv() => return e,
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(due)) => {
                retry_copies(am, f, reports).await;
            }
        }
    }
}

fn attempt_of(r: &Result<(), SendError>) -> Attempt {
    match r {
        Ok(()) => Attempt::Accepted,
        Err(e) => Attempt::Failed {
            retryable: e.retryable,
            error: e.message.clone(),
        },
    }
}

/// Posts entry `e` to every instance of `am` at once; delivered when any took
/// it, and then the others owe a copy (`f`). Returns what the channel's
/// `send` would, and each instance's result.
async fn send_to_each(
    am: &AlertmanagerChannel,
    f: &mut Fanout,
    e: &OutboxEntry,
) -> (Result<Receipt, SendError>, Vec<InstanceReport>) {
    let dropped = f.begin(&e.alert);
    if dropped > 0 {
        debug!(channel = %e.channel, code = %e.alert.code, dropped, "copies of older notices of this incident no longer owed: this one replaces them");
    }
    let results = am.post_each(&e.alert).await;
    let attempts: Vec<Attempt> = results.iter().map(attempt_of).collect();
    let (verdict, notes) = f.settle(Instant::now(), &e.alert, &attempts);
    let mut out = Vec::with_capacity(results.len());
    for (i, (r, note)) in results.iter().zip(notes).enumerate() {
        let url = am.instance_url(i);
        log_note(&e.channel, url, &note, r.as_ref().err());
        out.push(InstanceReport {
            url: url.to_owned(),
            result: match r {
                Ok(()) => InstanceResult::Accepted,
                Err(err) => InstanceResult::Failed {
                    error: err.message.clone(),
                },
            },
        });
    }
    if verdict == Verdict::Delivered && out.len() > 1 {
        let took = results.iter().filter(|r| r.is_ok()).count();
        debug!(channel = %e.channel, code = %e.alert.code, took, of = out.len(), "alertmanager instances that took the notice");
    }
    let result = match verdict {
        Verdict::Delivered => Ok(Receipt::default()),
        Verdict::Retry | Verdict::Refused => {
            Err(am.all_failed(results.into_iter().filter_map(Result::err)))
        }
    };
    (result, out)
}

/// Retries every copy due now, all at once; reports each result.
async fn retry_copies(
    am: &AlertmanagerChannel,
    f: &mut Fanout,
    reports: &mpsc::UnboundedSender<Delivery>,
) {
    let due = f.due(Instant::now());
    let results = futures::future::join_all(due.iter().map(|(i, alert)| am.post(*i, alert))).await;
    let now = Instant::now();
    let channel = am.spec.name.as_str();
    for ((i, alert), r) in due.iter().zip(results) {
        let Some((outcome, note)) = f.record_copy(*i, &alert.idempotency_key, now, &attempt_of(&r))
        else {
            continue;
        };
        let url = am.instance_url(*i);
        log_note(channel, url, &note, r.as_ref().err());
        let error = r.err().map(|e| e.message).unwrap_or_default();
        let result = match outcome {
            CopyOutcome::Taken => {
                info!(channel, instance = url, code = %alert.code, kind = %alert.kind, status = alert.status.as_str(), "alert copy taken by an instance that had missed it");
                InstanceResult::Accepted
            }
            CopyOutcome::Retrying { attempt, after } => {
                debug!(channel, instance = url, code = %alert.code, attempt, retry_in = ?after, %error, "alert copy not taken; will retry");
                InstanceResult::Failed { error }
            }
            CopyOutcome::GaveUp { attempts } => {
                debug!(channel, instance = url, code = %alert.code, attempts, %error, "alert copy given up; the engine's repeats bring the instance up to date");
                InstanceResult::GaveUp { error, attempts }
            }
        };
        let report = InstanceReport {
            url: url.to_owned(),
            result,
        };
        let _ = reports.send(Delivery::about(
            channel,
            alert,
            Outcome::Copies,
            vec![report],
        ));
    }
}

/// Writes what `note` says about instance `url` of `channel`: a line when it
/// goes down, one per ten minutes while it stays down, one when it is back;
/// every other failure at debug only.
fn log_note(channel: &str, url: &str, note: &Note, error: Option<&SendError>) {
    let error = error.map(|e| e.message.as_str()).unwrap_or_default();
    match note {
        Note::Quiet if !error.is_empty() => {
            debug!(
                channel,
                instance = url,
                error,
                "alertmanager instance did not take the alert"
            );
        }
        Note::Quiet => {}
        Note::Down => {
            warn!(
                channel,
                instance = url,
                error,
                "alertmanager instance does not take alerts; retried, and reported every 10 min until it does"
            );
        }
        Note::StillDown {
            failures,
            gave_up,
            down_for,
        } => {
            warn!(channel, instance = url, failures, copies_given_up = gave_up, down_for = ?down_for, error, "alertmanager instance still does not take alerts");
        }
        Note::Recovered { failures, down_for } => {
            info!(channel, instance = url, failures, down_for = ?down_for, "alertmanager instance takes alerts again");
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
