//! Owns what every part hands out besides network actions: the event stream, the
//! status snapshot the control socket serves, `/metrics` and its alert counters,
//! and the outbox of incidents the instances and the arbiter raise for the
//! watcher's alert engine.

use std::time::{Duration, SystemTime};

use crate::metrics::{Counters, Snapshot};
use crate::notify::events::{Event, EventSink, unix_ms};
use crate::status::{ArbiterStatus, IncidentStatus, InstanceStatus, ReplyStatus, Status};
use splitguard_watchdog::core::engine::Raise;
use splitguard_watchdog::io::dispatch::{Delivery, Outcome};
use tokio::sync::watch;
use tracing::warn;

pub(super) struct Outputs {
    pub node: String,
    events: Option<EventSink>,
    status: watch::Sender<Status>,
    /// `/metrics`, when `metrics_listen` is set.
    metrics: Option<watch::Sender<Snapshot>>,
    alert_counts: Counters,
    /// Incidents raised (true) or resolved (false), waiting for the watcher.
    pub incidents: Vec<(Raise, bool)>,
}

/// Everything one status snapshot is made of.
pub(super) struct Report {
    pub instances: Vec<InstanceStatus>,
    pub arbiter: ArbiterStatus,
    pub incidents: Vec<IncidentStatus>,
    pub replies: Vec<ReplyStatus>,
    pub counters: std::collections::BTreeMap<String, crate::metrics::InstanceCounters>,
}

impl Outputs {
    pub fn new(
        node: String,
        events: Option<EventSink>,
        status: watch::Sender<Status>,
        metrics: Option<watch::Sender<Snapshot>>,
    ) -> Self {
        Outputs {
            node,
            events,
            status,
            metrics,
            alert_counts: Counters::default(),
            incidents: Vec::new(),
        }
    }

    pub fn emit(&self, event: Option<Event>) {
        if let (Some(sink), Some(event)) = (&self.events, event)
            && let Err(e) = sink.emit(event)
        {
            warn!(error = %e, "event not written");
        }
    }

    /// A delivery report: counted for `/metrics`, written to the event stream.
    pub fn on_delivery(&mut self, d: &Delivery) {
        let map = match d.outcome {
            Outcome::Delivered { .. } => &mut self.alert_counts.alerts_sent,
            Outcome::Retrying { .. } => &mut self.alert_counts.alerts_retried,
            Outcome::Failed { .. } => &mut self.alert_counts.alerts_failed,
        };
        *map.entry(d.channel.clone()).or_default() += 1;
        self.emit(Some(crate::watch::delivery_event(d)));
    }

    /// Publishes the status to the control socket (and `/metrics`) when it changed.
    pub fn publish(&self, r: Report) {
        let status_changed = self.status.send_if_modified(|s| {
            if s.instances == r.instances
                && s.node == self.node
                && s.arbiter == r.arbiter
                && s.incidents == r.incidents
                && s.replies == r.replies
            {
                return false;
            }
            s.node = self.node.clone();
            s.instances = r.instances;
            s.arbiter = r.arbiter;
            s.incidents = r.incidents;
            s.replies = r.replies;
            s.at_ms = Some(unix_ms(SystemTime::now()));
            true
        });
        if let Some(m) = &self.metrics {
            let mut counters = self.alert_counts.clone();
            counters.instances = r.counters;
            // The loop turns on every packet: copy the status for /metrics
            // only when it or a counter moved.
            m.send_if_modified(|snap| {
                if !status_changed && snap.counters == counters {
                    return false;
                }
                snap.status = self.status.borrow().clone();
                snap.counters = counters;
                true
            });
        }
    }

    /// Lets queued events reach the stream, bounded.
    pub async fn close(&mut self, bound: Duration) {
        if let Some(sink) = self.events.take()
            && let Err(e) = sink.close(bound).await
        {
            warn!(error = %e, "event stream not closed cleanly");
        }
    }
}
