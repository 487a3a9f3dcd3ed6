//! Owns what every part hands out besides network actions: the event stream, the
//! status snapshot the control socket serves, `/metrics` and its alert counters,
//! and the outbox of incidents the instances and the arbiter raise for the
//! watcher's alert engine.

use std::time::{Duration, SystemTime};

use crate::metrics::{Counters, InstanceCounters, Snapshot};
use crate::notify::events::{Event, EventSink, unix_ms};
use crate::status::{
    ArbiterStatus, FenceStatus, IncidentStatus, InstanceStatus, ReplyStatus, Status, WitnessStatus,
};
use splitguard_watchdog::core::engine::Raise;
use splitguard_watchdog::io::dispatch::{Delivery, InstanceResult, Outcome};
use tokio::sync::watch;
use tracing::warn;

pub(super) struct Outputs {
    pub node: String,
    events: Option<EventSink>,
    status: watch::Sender<Status>,
    /// `/metrics`, when `metrics_listen` is set.
    metrics: Option<watch::Sender<Snapshot>>,
    /// Alert counters per channel as last published.
    alert_counts: Counters,
    /// Per instance (by index): its name and its counters as last published,
    /// so a step compares what it touched without a lookup by name.
    published: Vec<(String, InstanceCounters)>,
    /// Incidents raised (true) or resolved (false), waiting for the watcher.
    pub incidents: Vec<(Raise, bool)>,
}

/// What one step may have changed in the status snapshot: the lines and
/// counters of the instances it touched (by index, of `count` in all), and the
/// node-wide parts, which are small.
#[derive(Default)]
pub(super) struct Report {
    pub count: usize,
    pub instances: Vec<InstanceReport>,
    /// None: unchanged since the last report.
    pub arbiter: Option<ArbiterStatus>,
    /// None: unchanged since the last report.
    pub witness: Option<WitnessStatus>,
    /// None: unchanged since the last report.
    pub fence: Option<FenceStatus>,
    /// None: unchanged since the last report.
    pub incidents: Option<Vec<IncidentStatus>>,
    pub replies: Vec<ReplyStatus>,
}

/// One touched instance in a [`Report`].
pub(super) struct InstanceReport {
    pub index: usize,
    /// Its status line, when it changed since the last report (the first
    /// report has every line).
    pub status: Option<InstanceStatus>,
    pub counters: InstanceCounters,
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
            published: Vec::new(),
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
        for i in &d.instances {
            let key = (d.channel.clone(), i.url.clone());
            let up = matches!(i.result, InstanceResult::Accepted);
            self.alert_counts.alert_instance_up.insert(key.clone(), up);
            *self
                .alert_counts
                .alert_instance_posts
                .entry((key.0, key.1, i.result.as_str()))
                .or_default() += 1;
        }
        let map = match d.outcome {
            Outcome::Delivered { .. } => &mut self.alert_counts.alerts_sent,
            Outcome::Retrying { .. } => &mut self.alert_counts.alerts_retried,
            Outcome::Failed { .. } => &mut self.alert_counts.alerts_failed,
            // Neither sent nor failed: the notice that replaced it is counted.
            // A late copy: the notice was counted when it was delivered.
            Outcome::Superseded { .. } | Outcome::Copies => {
                self.emit(Some(crate::watch::delivery_event(d)));
                return;
            }
        };
        *map.entry(d.channel.clone()).or_default() += 1;
        self.emit(Some(crate::watch::delivery_event(d)));
    }

    /// Publishes what changed to the control socket (and `/metrics`). The loop
    /// turns on every packet: the work here is in proportion to what the step
    /// touched, and the whole status is copied for `/metrics` only when it changed.
    pub fn publish(&mut self, r: Report) {
        // Names arrive with the first status line of each instance.
        for ir in &r.instances {
            if let Some(st) = &ir.status {
                if self.published.len() <= ir.index {
                    self.published.resize_with(ir.index + 1, || {
                        (String::new(), InstanceCounters::default())
                    });
                }
                if self.published[ir.index].0 != st.name {
                    self.published[ir.index].0 = st.name.clone();
                }
            }
        }
        // The instances whose counters moved (an advert counts: most steps).
        let mut moved: Vec<usize> = Vec::new();
        for ir in &r.instances {
            let Some((_, old)) = self.published.get_mut(ir.index) else {
                continue;
            };
            if *old != ir.counters {
                *old = ir.counters.clone();
                moved.push(ir.index);
            }
        }
        let status_changed = self.status.send_if_modified(|s| {
            let mut changed = false;
            if s.node != self.node {
                s.node = self.node.clone();
                changed = true;
            }
            if s.instances.len() != r.count {
                // Only at the start, when every instance is touched: the
                // lines below fill in each one.
                s.instances.truncate(r.count);
                changed = true;
            }
            for (i, st) in r
                .instances
                .iter()
                .filter_map(|ir| Some((ir.index, ir.status.as_ref()?)))
            {
                let len = s.instances.len();
                match s.instances.get_mut(i) {
                    Some(line) if line == st => {}
                    Some(line) => {
                        *line = st.clone();
                        changed = true;
                    }
                    None if i == len => {
                        s.instances.push(st.clone());
                        changed = true;
                    }
                    None => warn!(instance = %st.name, "status line out of order; not published"),
                }
            }
            if let Some(arbiter) = r.arbiter
                && s.arbiter != arbiter
            {
                s.arbiter = arbiter;
                changed = true;
            }
            if let Some(witness) = r.witness
                && s.witness.as_ref() != Some(&witness)
            {
                s.witness = Some(witness);
                changed = true;
            }
            if let Some(fence) = r.fence
                && s.fence.as_ref() != Some(&fence)
            {
                s.fence = Some(fence);
                changed = true;
            }
            if let Some(incidents) = r.incidents
                && s.incidents != incidents
            {
                s.incidents = incidents;
                changed = true;
            }
            if s.replies != r.replies {
                s.replies = r.replies;
                changed = true;
            }
            if changed {
                s.at_ms = Some(unix_ms(SystemTime::now()));
            }
            changed
        });
        if let Some(m) = &self.metrics {
            m.send_if_modified(|snap| {
                let alerts_changed = snap.counters.alerts_sent != self.alert_counts.alerts_sent
                    || snap.counters.alerts_retried != self.alert_counts.alerts_retried
                    || snap.counters.alerts_failed != self.alert_counts.alerts_failed
                    || snap.counters.alert_instance_posts != self.alert_counts.alert_instance_posts
                    || snap.counters.alert_instance_up != self.alert_counts.alert_instance_up;
                if !status_changed && moved.is_empty() && !alerts_changed {
                    return false;
                }
                if status_changed {
                    snap.status = self.status.borrow().clone();
                }
                for &i in &moved {
                    let (name, c) = &self.published[i];
                    match snap.counters.instances.get_mut(name.as_str()) {
                        Some(old) => *old = c.clone(),
                        None => {
                            snap.counters.instances.insert(name.clone(), c.clone());
                        }
                    }
                }
                if alerts_changed {
                    snap.counters.alerts_sent = self.alert_counts.alerts_sent.clone();
                    snap.counters.alerts_retried = self.alert_counts.alerts_retried.clone();
                    snap.counters.alerts_failed = self.alert_counts.alerts_failed.clone();
                    snap.counters.alert_instance_posts =
                        self.alert_counts.alert_instance_posts.clone();
                    snap.counters.alert_instance_up = self.alert_counts.alert_instance_up.clone();
                }
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
