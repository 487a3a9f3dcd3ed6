//! The daemon: `splitguard run` (the VRRP instances, the arbiter and the watcher
//! on one node) and `splitguard watch` (the watcher alone, beside a running
//! keepalived). Both turn the same event loop (`event_loop`); what differs is the
//! parts plugged into it. This file owns the entry points, the [`Node`] the parts
//! make up, and how each input is handed to them.
//!
//! The parts, each owning its state:
//! - `instances`: the VRRP instances and their interfaces (sockets, routers, GARP
//!   and NA announcers, VIPs, track scripts, notify queues), with `router`;
//! - `arbiter`: the arbiter's policy and evidence, its verdicts, the reboot;
//!   `witness` beside it, the etcd witness and the peer confirm path;
//! - `watcher`: split-brain detection, alerts and replies; `beside` adds what
//!   `watch` needs beside keepalived (`references` there: its isolation for
//!   fencing, no arbiter running);
//! - `fence`: peer fencing (`[[fence]]`), fed by the watcher's split brains
//!   and the arbiter's isolation (or `watch`'s references), closing claims
//!   through the arbiter's gate in `run`;
//! - `control`: the control socket and its commands (operator holds);
//! - `outputs`: the event stream, status, `/metrics` and the incident outbox.
//!
//! Decisions stay in the pure cores (`splitguard_vrrp`, `splitguard_arbiter`,
//! `splitguard_watchdog`); the daemon only moves bytes, timestamps and actions.

mod arbiter;
mod beside;
mod control;
mod early;
mod event_loop;
mod fence;
mod instances;
mod outputs;
mod probers;
mod references;
mod reject_log;
mod router;
mod schedule;
mod watcher;
mod witness;

use std::time::{Duration, Instant};

use crate::config::Config;
use crate::net::netlink::{self, NetEvent, Netlink};
use crate::status::Status;
use anyhow::{Context, bail};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use arbiter::Arbiter;
use beside::Beside;
use control::Control;
use event_loop::{Input, Inputs};
use instances::Instances;
use outputs::{Outputs, Report};
use watcher::Watching;

/// How `run` was asked to behave beyond the config.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Log the reboot (and any fence) instead of doing it.
    pub dry_run: bool,
}

/// How long `run`'s shutdown waits for queued notify scripts (STOP included) and
/// events.
const DRAIN_BOUND: Duration = Duration::from_secs(10);
/// How long `watch`'s shutdown waits for queued events.
const WATCH_DRAIN_BOUND: Duration = Duration::from_secs(5);

/// Who holds the VIPs, and so carries out what the watcher and the operator ask.
// One per process: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Owner {
    /// `run`: this node's VRRP instances, and the arbiter unless
    /// `[arbiter] enabled = false`.
    Instances {
        instances: Instances,
        arbiter: Option<Arbiter>,
    },
    /// `watch`: keepalived does; replies run `watch_actions`.
    Keepalived(Beside),
}

/// The parts one node runs, driven by the event loop.
struct Node {
    out: Outputs,
    owner: Owner,
    watching: Watching,
    /// Peer fencing, when `[[fence]]` is configured.
    fence: Option<fence::FencePart>,
    /// The alert engine's revision when the open incidents were last published.
    incidents_published: Option<u64>,
    /// Every interface the instances run on is down: the dispatcher holds
    /// its retries until one is back (set after the step's flush).
    links_down: bool,
}

/// Runs the daemon until SIGTERM or SIGINT, then steps down cleanly.
pub async fn run(cfg: Config, opts: Options) -> anyhow::Result<()> {
    run_until(cfg, opts, None).await
}

/// [`run`], which also stops (as on SIGTERM) when `stop` fires or its sender is
/// dropped: for embedding the daemon in-process (tests).
pub async fn run_until(
    cfg: Config,
    opts: Options,
    stop: Option<oneshot::Receiver<()>>,
) -> anyhow::Result<()> {
    splitguard_watchdog::io::channels::install_crypto_provider();
    let (server, events) = crate::control::open_outputs(&cfg).await?;
    let nl = Netlink::connect().context("open netlink")?;
    let net_events = netlink::subscribe().context("subscribe to netlink events")?;
    let (dgram_tx, dgram_rx) = mpsc::channel(256);

    let (status_tx, status_rx) = watch::channel(Status::default());
    let metrics = start_metrics(&cfg).await?;
    let mut out = Outputs::new(cfg.node.clone(), events, status_tx, metrics);
    let mut instances = Instances::open(&cfg, &nl, dgram_tx).await?;

    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let (adv_tx, adv_rx) = mpsc::channel(256);
    let (nb_tx, nb_rx) = mpsc::channel(256);
    let watching = Watching::start_on_instances(&cfg, &instances, reports_tx, adv_tx, nb_tx)
        .context("watchdog")?;
    let (probe_tx, probe_rx) = mpsc::channel(64);
    let (echo_tx, echo_rx) = mpsc::channel(64);
    let (witness_tx, witness_rx) = mpsc::channel(256);
    // Fencing needs to know whether this node is isolated: with the arbiter
    // off it still probes the references, and gates nothing.
    let arbiter = if cfg.arbiter.enabled || !cfg.fences.is_empty() {
        Some(
            Arbiter::start(
                &cfg,
                opts.dry_run,
                &instances,
                probe_tx,
                echo_tx,
                witness_tx,
            )
            .await
            .context("arbiter")?,
        )
    } else {
        drop(probe_tx);
        drop(echo_tx);
        None
    };

    if !cfg.arbiter.enabled {
        warn!("[arbiter] enabled = false: claims follow VRRP alone, as keepalived's do");
    }
    let (fence_tx, fence_rx) = mpsc::channel(16);
    let fence = if cfg.fences.is_empty() {
        None
    } else {
        Some(
            fence::FencePart::start(&cfg, opts.dry_run, fence_tx, Instant::now())
                .context("fence")?,
        )
    };

    let (track_tx, track_rx) = mpsc::channel(64);
    instances.spawn_trackers(&cfg, &track_tx);
    drop(track_tx);

    let reply_rx = crate::watch::start_reply_listener(&cfg).await?;
    let (control, cmd_rx) = Control::start(server, status_rx);
    let mut inputs = Inputs::new(net_events, nb_rx, adv_rx, reports_rx, reply_rx, cmd_rx)?;
    inputs.datagrams = Some(dgram_rx);
    inputs.trackers = Some(track_rx);
    inputs.probes = Some(probe_rx);
    inputs.echoes = Some(echo_rx);
    inputs.witness = Some(witness_rx);
    inputs.fence = fence.is_some().then_some(fence_rx);
    inputs.stop = stop;

    let now = Instant::now();
    instances.start(now, &mut out).await;
    let mut arbiter = arbiter;
    // Started with every link down: no event will say so.
    let down = instances.own_links_down();
    let links_down = down.is_some();
    if let Some(arb) = arbiter.as_mut() {
        arb.on_links(down, now, &mut instances, &mut out).await;
    }
    let mut node = Node {
        out,
        owner: Owner::Instances { instances, arbiter },
        watching,
        fence,
        incidents_published: None,
        links_down,
    };
    node.settle(now).await;
    node.publish_status();
    node.end_step(now);
    info!(node = %cfg.node, instances = cfg.instances.len(), "splitguard running");
    crate::service::ready();
    inputs.start_service_watchdog();

    let why = event_loop::drive(&mut node, &mut inputs).await;
    debug!(why, "event loop stopped");
    info!("shutting down: releasing VIPs");
    crate::service::stopping();
    if let Owner::Instances { instances, arbiter } = &mut node.owner {
        instances.shutdown(Instant::now(), &mut node.out).await;
        if let Some(arb) = arbiter {
            arb.close();
            // The VIPs are gone: the peer may take the keys without a TTL's wait.
            if let Some(w) = &mut arb.witness {
                w.shutdown(instances.routers()).await;
            }
        }
    }
    node.publish_status();
    control.close().await;
    if let Owner::Instances { instances, .. } = &mut node.owner {
        instances.drain(DRAIN_BOUND).await;
    }
    node.watching.watcher.save_pending().await;
    node.out.close(DRAIN_BOUND).await;
    Ok(())
}

/// Serves `/metrics` on `metrics_listen`, if set, in `run` and `watch` alike;
/// the sender of its snapshots.
async fn start_metrics(
    cfg: &Config,
) -> anyhow::Result<Option<watch::Sender<crate::metrics::Snapshot>>> {
    let Some(addr) = cfg.metrics_listen else {
        return Ok(None);
    };
    let (tx, rx) = watch::channel(crate::metrics::Snapshot::default());
    // Loaded and bound now, so a bad certificate or a taken port fails the
    // start, not a later scrape.
    let tls = cfg
        .metrics_tls
        .as_ref()
        .map(|files| splitguard_watchdog::io::listener::load_tls(&files.into()))
        .transpose()
        .context("metrics_tls_cert/metrics_tls_key")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics_listen {addr}"))?;
    info!(%addr, tls = tls.is_some(), "metrics on /metrics");
    tokio::spawn(crate::metrics::serve(listener, rx, tls));
    Ok(Some(tx))
}

/// Runs the watcher beside keepalived (`splitguard watch`) until SIGTERM or
/// SIGINT: it watches each `[[watch]]` VIP on its interface and pages through the
/// configured channels; `status` shows its open incidents over the control socket.
pub async fn watch(cfg: Config) -> anyhow::Result<()> {
    if cfg.watches.is_empty() {
        bail!("no [[watch]] entries: nothing to watch (add vip, interface, role)");
    }
    splitguard_watchdog::io::channels::install_crypto_provider();
    let (server, events) = crate::control::open_outputs(&cfg).await?;
    let nl = Netlink::connect().context("open netlink")?;
    let net_events = netlink::subscribe().context("subscribe to netlink events")?;

    let (nb_tx, nb_rx) = mpsc::channel(256);
    let (adv_tx, adv_rx) = mpsc::channel(256);
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let (mut beside, mut watching) = Beside::start(&cfg, &nl, reports_tx, adv_tx, nb_tx).await?;

    let reply_rx = crate::watch::start_reply_listener(&cfg).await?;
    // The channels' counters (per Alertmanager instance too) matter beside
    // keepalived as much as in `run`.
    let metrics = start_metrics(&cfg).await?;
    let (status_tx, status_rx) = watch::channel(Status::default());
    let (control, cmd_rx) = Control::start(server, status_rx);
    let mut inputs = Inputs::new(net_events, nb_rx, adv_rx, reports_rx, reply_rx, cmd_rx)?;

    // Fencing beside keepalived: no arbiter runs here, so the references are
    // probed for isolation alone; keepalived decides the claims.
    let (fence_tx, fence_rx) = mpsc::channel(16);
    let fence = if cfg.fences.is_empty() {
        None
    } else {
        let (probe_tx, probe_rx) = mpsc::channel(64);
        beside
            .start_references(&cfg, probe_tx)
            .await
            .context("fence")?;
        inputs.probes = Some(probe_rx);
        // `watch` has no `--dry-run`: a rehearsal is `dry_run = true` per fence.
        Some(fence::FencePart::start(&cfg, false, fence_tx, Instant::now()).context("fence")?)
    };
    inputs.fence = fence.is_some().then_some(fence_rx);

    beside.present_at_start(&mut watching).await?;
    info!(node = %cfg.node, vips = cfg.watches.len(), channels = cfg.channels.len(), "splitguard watching");
    crate::service::ready();
    inputs.start_service_watchdog();
    let mut node = Node {
        out: Outputs::new(cfg.node.clone(), events, status_tx, metrics),
        owner: Owner::Keepalived(beside),
        watching,
        fence,
        incidents_published: None,
        links_down: false,
    };
    node.publish_status();

    let why = event_loop::drive(&mut node, &mut inputs).await;
    debug!(why, "event loop stopped");
    info!("watch stopping; undelivered alerts stay in the spool");
    crate::service::stopping();
    control.close().await;
    node.watching.watcher.save_pending().await;
    node.out.close(WATCH_DRAIN_BOUND).await;
    Ok(())
}

impl Node {
    /// When the next timer of any part is due.
    fn deadline(&self) -> Option<Instant> {
        let owner = match &self.owner {
            Owner::Instances { instances, arbiter } => [
                instances.deadline(),
                arbiter.as_ref().and_then(Arbiter::deadline),
            ],
            Owner::Keepalived(_) => [None, None],
        };
        owner
            .into_iter()
            .chain([
                self.watching.deadline(),
                self.fence.as_ref().and_then(fence::FencePart::deadline),
            ])
            .flatten()
            .min()
    }

    /// Hands one input to the parts it concerns.
    async fn on_input(&mut self, input: Input, now: Instant) {
        let out = &mut self.out;
        match input {
            Input::Datagram(d) => {
                if let Owner::Instances { instances, arbiter } = &mut self.owner {
                    let heard = instances.on_datagram(d, now, out).await;
                    if let Some(arb) = arbiter {
                        for i in heard {
                            arb.heard_master(instances.routers(), i, now);
                        }
                    }
                }
            }
            Input::Net(ev) => {
                self.watching.on_net_event(&ev, now).await;
                match &mut self.owner {
                    Owner::Instances { instances, arbiter } => {
                        let links = matches!(ev, NetEvent::Link(_) | NetEvent::Overrun);
                        instances.on_net_event(ev, now, out).await;
                        if links {
                            let down = instances.own_links_down();
                            self.links_down = down.is_some();
                            if let Some(arb) = arbiter {
                                arb.on_links(down, now, instances, out).await;
                            }
                        }
                    }
                    Owner::Keepalived(beside) => {
                        if let NetEvent::Overrun = ev {
                            beside.resync(&mut self.watching).await;
                        }
                    }
                }
            }
            Input::Tracker(up) => {
                if let Owner::Instances { instances, .. } = &mut self.owner {
                    instances.on_tracker(up, now, out).await;
                }
            }
            Input::Probe(p) => match &mut self.owner {
                Owner::Instances {
                    instances,
                    arbiter: Some(arb),
                } => arb.on_probe(p, now, instances, out).await,
                Owner::Instances { arbiter: None, .. } => {}
                Owner::Keepalived(beside) => {
                    if let Some(r) = &mut beside.references {
                        r.on_probe(now, &p);
                    }
                }
            },
            Input::Witness(w) => {
                if let Owner::Instances {
                    instances,
                    arbiter: Some(arb),
                } = &mut self.owner
                {
                    arb.on_witness(w, now, instances, out).await;
                }
            }
            Input::Echo(e) => {
                if let Owner::Instances {
                    instances,
                    arbiter: Some(arb),
                } = &mut self.owner
                {
                    arb.on_echo(e, now, instances, out).await;
                }
            }
            Input::Fence(r) => {
                if let Some(f) = &mut self.fence {
                    f.on_result(now, r, out);
                }
            }
            Input::Neighbour(n) => {
                if let Some(f) = &mut self.fence {
                    f.on_neighbour(now, &n);
                }
                self.watching.on_neighbour(&n, now).await;
                if let Owner::Instances {
                    instances,
                    arbiter: Some(arb),
                } = &mut self.owner
                {
                    arb.on_neighbour(instances.routers(), &n);
                }
            }
            Input::Advert(a) => self.watching.on_advert(a, now).await,
            Input::Delivery(d) => out.on_delivery(&d),
            Input::Reply(ev) => self.on_reply(ev, now).await,
            Input::Control(req) => self.on_command(req, now).await,
            Input::Timer => {
                if let Owner::Instances {
                    instances,
                    arbiter: Some(arb),
                } = &mut self.owner
                {
                    arb.on_timers(now, instances, out).await;
                }
                self.watching.on_timers(now).await;
                if let Owner::Instances { instances, .. } = &mut self.owner {
                    instances.on_timers(now, &mut self.out).await;
                }
            }
            Input::ServiceWatchdog => crate::service::watchdog_ping(),
            // The loop leaves on a stop before handing it on.
            Input::Stop(_) => {}
        }
    }

    /// After every input: the arbiter and the instances settle, the outbox goes
    /// to the watcher, the status out.
    async fn step_done(&mut self, now: Instant) {
        self.fence_step(now);
        self.settle(now).await;
        self.watching.flush(now, &mut self.out).await;
        // After the flush: what the link's return resolved is queued first.
        self.watching.watcher.set_offline(self.links_down);
        self.publish_status();
        self.end_step(now);
    }

    /// Fencing looks at what the step changed (isolation, split brains,
    /// priorities) and acts; its gate goes to the arbiter's policy before it
    /// settles.
    fn fence_step(&mut self, now: Instant) {
        let Some(f) = &mut self.fence else {
            return;
        };
        match &mut self.owner {
            // `run` starts the arbiter whenever fencing is configured: its
            // references say whether this node is isolated.
            Owner::Instances {
                instances,
                arbiter: Some(arb),
            } => {
                let own = |vip| instances.order_for_vip(vip);
                f.observe(
                    now,
                    arb.isolated_for_fencing(),
                    &self.watching.watcher,
                    &own,
                );
                // The witness's confirm path is the daemons' direct health path.
                let alive = arb.witness.as_ref().and_then(|w| w.peer_daemon_alive(now));
                f.observe_peer_daemon(
                    now,
                    alive,
                    &|mac| arb.vip_answered_by(instances, mac),
                    &self.watching.watcher,
                    &|peer| instances.vip_of_family(peer),
                );
                let gate = f.act(now, &mut self.out);
                // The gate first: cleared evidence must not show a closed
                // fence gate for an instant (and page it).
                arb.set_fence_gate(now, gate);
                for mac in f.take_fenced_macs() {
                    arb.peer_fenced(now, mac);
                }
            }
            Owner::Instances { arbiter: None, .. } => {}
            // Beside keepalived this node's standing comes from its
            // keepalived's own adverts (the capture's `from_self`), and
            // keepalived decides the claims: there is no gate to close.
            Owner::Keepalived(beside) => {
                f.observe(now, beside.isolated(), &self.watching.watcher, &|_| None);
                let _gate = f.act(now, &mut self.out);
                // No arbiter's evidence to clear.
                let _ = f.take_fenced_macs();
            }
        }
    }

    /// Runs the arbiter's policy and the state machines to a fixed point.
    async fn settle(&mut self, now: Instant) {
        if let Owner::Instances {
            instances,
            arbiter: Some(arb),
        } = &mut self.owner
        {
            arb.settle(now, instances, &mut self.out).await;
        }
    }

    /// Publishes what this step changed to the control socket (and `/metrics`):
    /// the touched instances' lines and counters, not every instance's.
    fn publish_status(&mut self) {
        let now = Instant::now();
        let fence = self
            .fence
            .as_mut()
            .and_then(fence::FencePart::status_if_changed);
        let (count, instances, arbiter, witness) = match &mut self.owner {
            Owner::Instances { instances, arbiter } => {
                // In index order: at the start every line is new and goes in
                // at its place.
                let mut touched = instances.touched();
                touched.sort_unstable();
                (
                    instances.routers().len(),
                    touched
                        .into_iter()
                        .filter_map(|i| instances.status_report(i))
                        .collect(),
                    arbiter.as_mut().and_then(Arbiter::status_if_changed),
                    arbiter
                        .as_mut()
                        .and_then(|a| a.witness.as_mut())
                        .and_then(|w| w.status_if_changed(now, instances.routers())),
                )
            }
            Owner::Keepalived(beside) => (
                0,
                Vec::new(),
                beside
                    .references
                    .as_mut()
                    .and_then(references::References::status_if_changed),
                None,
            ),
        };
        // Rebuilt only when the engine changed: hundreds of instances can hold
        // an incident each (claims withheld at start-up).
        let revision = self.watching.watcher.incidents_revision();
        let incidents = (self.incidents_published != Some(revision)).then(|| {
            self.incidents_published = Some(revision);
            self.watching.watcher.incidents()
        });
        self.out.publish(Report {
            count,
            instances,
            arbiter,
            witness,
            fence,
            incidents,
            replies: self.watching.watcher.recent_replies(),
        });
    }

    /// Ends a step: deadlines of what it touched are re-read.
    fn end_step(&mut self, now: Instant) {
        if let Owner::Instances { instances, arbiter } = &mut self.owner {
            if let Some(arb) = arbiter {
                arb.end_step(now, instances);
            }
            instances.end_step();
        }
    }
}
