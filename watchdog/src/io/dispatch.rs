//! Moves spooled notifications to their channels: one worker task per channel,
//! strictly in order (a resolved notice never overtakes its page), retrying with
//! backoff while the channel may recover, parking for good what it refuses. A
//! channel that is down delays only itself.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

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
    Delivered { reference: Option<String> },
    Retrying { attempt: u32, error: String },
    Failed { error: String },
}

/// Hands spooled entries to the workers.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    queues: Vec<(String, mpsc::UnboundedSender<OutboxEntry>)>,
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
        for ch in channels {
            let (tx, rx) = mpsc::unbounded_channel();
            queues.push((ch.name().to_owned(), tx));
            tokio::spawn(worker(spool.clone(), ch, rx, reports.clone()));
        }
        let d = Dispatcher { queues };
        for e in spool.pending()? {
            if !d.submit(e.clone()) {
                warn!(channel = %e.channel, key = %e.alert.idempotency_key, "spooled notification for a channel no longer configured; left in the spool");
            }
        }
        Ok(d)
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
) {
    while let Some(mut e) = rx.recv().await {
        loop {
            let result = ch.send(&e.alert).await;
            let report = |outcome| Delivery {
                channel: e.channel.clone(),
                idempotency_key: e.alert.idempotency_key.clone(),
                code: e.alert.code.clone(),
                kind: e.alert.kind.as_str().to_owned(),
                status: e.alert.status.as_str().to_owned(),
                at: Utc::now(),
                outcome,
            };
            match result {
                Ok(receipt) => {
                    info!(channel = %e.channel, code = %e.alert.code, kind = %e.alert.kind, status = e.alert.status.as_str(), "alert delivered");
                    if let Err(err) = spool.done(&e) {
                        error!(channel = %e.channel, error = %err, "delivered, but the spool entry was not removed; it may be sent again after a restart");
                    }
                    let _ = reports.send(report(Outcome::Delivered {
                        reference: receipt.reference,
                    }));
                    break;
                }
                Err(err) if err.retryable => {
                    e.attempts += 1;
                    let wait = backoff(e.attempts - 1);
                    warn!(channel = %e.channel, code = %e.alert.code, attempt = e.attempts, retry_in = ?wait, error = %err, "alert not delivered; will retry");
                    if let Err(se) = spool.retried(&e) {
                        warn!(error = %se, "attempt count not recorded");
                    }
                    let _ = reports.send(report(Outcome::Retrying {
                        attempt: e.attempts,
                        error: err.message.clone(),
                    }));
                    tokio::time::sleep(wait).await;
                }
                Err(err) => {
                    error!(channel = %e.channel, code = %e.alert.code, error = %err, "alert refused by the channel; kept in spool/failed");
                    if let Err(se) = spool.failed(&e, &err.message) {
                        error!(error = %se, "could not park the refused alert");
                    }
                    let _ = reports.send(report(Outcome::Failed {
                        error: err.message.clone(),
                    }));
                    break;
                }
            }
        }
    }
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
}
