//! Owns the one event loop both `run` and `watch` turn: every input the node
//! reacts to arrives here as one [`Input`] (datagrams, netlink events, track
//! results, probe results, ARP and adverts seen, alert deliveries, replies,
//! control commands, timers, the service watchdog's tick, signals), is handed to
//! the node's parts, and after each one (or each batch of packets that came
//! together) the parts settle and the status is published. Channels a mode does not use are simply absent.

use std::time::Instant;

use crate::control::CommandRequest;
use crate::net::neighbour::NeighbourSeen;
use crate::net::netlink::NetEvent;
use crate::track::TrackerUpdate;
use anyhow::Context;
use splitguard_arbiter::probe::ProbeResult;
use splitguard_watchdog::core::classify::Captured;
use splitguard_watchdog::io::dispatch::Delivery;
use splitguard_watchdog::io::reply::http::ReplyEvent;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use super::Node;
use super::early::EchoResult;
use super::fence::FenceResult;
use super::instances::Datagram;
use super::witness::WitnessInput;

/// One thing that happened, for the node to react to.
pub(super) enum Input {
    /// A datagram on an instance interface's VRRP socket.
    Datagram(Datagram),
    /// A link or address change (netlink).
    Net(NetEvent),
    /// A track script's new result.
    Tracker(TrackerUpdate),
    /// A reference or peer probe's outcome.
    Probe(ProbeResult),
    /// An early-takeover liveness echo's outcome.
    Echo(EchoResult),
    /// What the witness's store or its peer path said.
    Witness(WitnessInput),
    /// A fence device's answer.
    Fence(FenceResult),
    /// ARP or neighbour discovery about a watched address, or an answer to us.
    Neighbour(NeighbourSeen),
    /// A VRRP advert seen by a capture.
    Advert(Captured),
    /// An alert delivery report.
    Delivery(Delivery),
    /// A reply to a page.
    Reply(ReplyEvent),
    /// A control-socket command.
    Control(CommandRequest),
    /// The earliest deadline of a part passed.
    Timer,
    /// systemd's watchdog wants a sign of life.
    ServiceWatchdog,
    /// SIGTERM or SIGINT, or the embedder's stop: leave the loop.
    Stop(&'static str),
}

/// Where inputs come from; `None` where the mode has no such source.
pub(super) struct Inputs {
    pub net: mpsc::UnboundedReceiver<NetEvent>,
    pub datagrams: Option<mpsc::Receiver<Datagram>>,
    pub trackers: Option<mpsc::Receiver<TrackerUpdate>>,
    pub probes: Option<mpsc::Receiver<ProbeResult>>,
    pub echoes: Option<mpsc::Receiver<EchoResult>>,
    pub witness: Option<mpsc::Receiver<WitnessInput>>,
    pub fence: Option<mpsc::Receiver<FenceResult>>,
    pub neighbours: mpsc::Receiver<NeighbourSeen>,
    pub adverts: mpsc::Receiver<Captured>,
    pub deliveries: mpsc::UnboundedReceiver<Delivery>,
    pub replies: Option<mpsc::Receiver<ReplyEvent>>,
    pub commands: mpsc::Receiver<CommandRequest>,
    /// A stop asked for by whoever embeds the daemon (tests), besides signals.
    pub stop: Option<oneshot::Receiver<()>>,
    service_watchdog: Option<tokio::time::Interval>,
    /// The one timer, reset only when the deadline moves: a fresh sleep per
    /// turn re-registers with tokio's timer wheel, which wakes its driver
    /// (an eventfd write) whenever the new entry is earlier than it planned.
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    timer_at: Option<Instant>,
    sigterm: Signal,
    sigint: Signal,
}

/// Receives from `rx` when there is one; never completes otherwise.
async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Inputs {
    /// The sources every mode has; the rest are filled in by the entry point.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        net: mpsc::UnboundedReceiver<NetEvent>,
        neighbours: mpsc::Receiver<NeighbourSeen>,
        adverts: mpsc::Receiver<Captured>,
        deliveries: mpsc::UnboundedReceiver<Delivery>,
        replies: Option<mpsc::Receiver<ReplyEvent>>,
        commands: mpsc::Receiver<CommandRequest>,
    ) -> anyhow::Result<Inputs> {
        Ok(Inputs {
            net,
            datagrams: None,
            trackers: None,
            probes: None,
            echoes: None,
            witness: None,
            fence: None,
            neighbours,
            adverts,
            deliveries,
            replies,
            commands,
            stop: None,
            service_watchdog: None,
            timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            timer_at: None,
            sigterm: signal(SignalKind::terminate()).context("install SIGTERM handler")?,
            sigint: signal(SignalKind::interrupt()).context("install SIGINT handler")?,
        })
    }

    /// A datagram already waiting, if any.
    fn ready_datagram(&mut self) -> Option<Datagram> {
        self.datagrams.as_mut()?.try_recv().ok()
    }

    /// A link or address event already waiting, if any.
    fn ready_net(&mut self) -> Option<Input> {
        self.net.try_recv().ok().map(Input::Net)
    }

    /// A packet already waiting, if any: a datagram for the instances, an
    /// advert a capture saw, or an ARP / neighbour discovery frame (the
    /// answers to a mass takeover's probes come in bursts too).
    fn ready_packet(&mut self) -> Option<Input> {
        if let Some(d) = self.ready_datagram() {
            return Some(Input::Datagram(d));
        }
        if let Ok(a) = self.adverts.try_recv() {
            return Some(Input::Advert(a));
        }
        self.neighbours.try_recv().ok().map(Input::Neighbour)
    }

    /// Starts systemd's watchdog ticker (once the node reported ready).
    pub fn start_service_watchdog(&mut self) {
        self.service_watchdog = crate::service::watchdog_ticker();
    }

    /// The next input; `deadline` is when [`Input::Timer`] is due.
    async fn next(&mut self, deadline: Option<Instant>) -> Input {
        if deadline != self.timer_at {
            if let Some(at) = deadline {
                self.timer.as_mut().reset(at.into());
            }
            self.timer_at = deadline;
        }
        let armed = self.timer_at.is_some();
        let stop_rx = &mut self.stop;
        let stop = async {
            match stop_rx {
                // A dropped sender stops too: nobody is left to ask.
                Some(rx) => {
                    let _ = rx.await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(d) = recv(&mut self.datagrams) => Input::Datagram(d),
            Some(ev) = self.net.recv() => Input::Net(ev),
            Some(up) = recv(&mut self.trackers) => Input::Tracker(up),
            () = &mut self.timer, if armed => {
                // Fired: the next turn arms it again, even for the same instant.
                self.timer_at = None;
                Input::Timer
            }
            Some(p) = recv(&mut self.probes) => Input::Probe(p),
            Some(e) = recv(&mut self.echoes) => Input::Echo(e),
            Some(w) = recv(&mut self.witness) => Input::Witness(w),
            Some(f) = recv(&mut self.fence) => Input::Fence(f),
            Some(n) = self.neighbours.recv() => Input::Neighbour(n),
            Some(adv) = self.adverts.recv() => Input::Advert(adv),
            Some(d) = self.deliveries.recv() => Input::Delivery(d),
            Some(ev) = recv(&mut self.replies) => Input::Reply(ev),
            Some(req) = self.commands.recv() => Input::Control(req),
            () = crate::service::watchdog_tick(&mut self.service_watchdog) => Input::ServiceWatchdog,
            _ = self.sigterm.recv() => Input::Stop("SIGTERM"),
            _ = self.sigint.recv() => Input::Stop("SIGINT"),
            () = stop => Input::Stop("stop requested"),
        }
    }
}

/// Datagrams taken ahead of a timer at most: a flood cannot hold the timers
/// back by more than this many steps.
const DRAIN_BEFORE_TIMERS: usize = 1024;

/// Packets handled in one step at most. A master of hundreds of instances
/// sends their adverts in one burst; the burst's packets go through one
/// settle, one flush of the watcher and one status update together, where a
/// step per packet paid those (and the select over every source) each time.
const BATCH: usize = 256;

/// Adverts that arrived before a timer fell due count before it: on a loaded
/// node, hundreds of adverts can wait in the reader tasks' queue (or in the
/// socket, until those tasks run) while a down timer expires, and a backup
/// that took the timer first would claim from a master it has in fact heard.
/// So do link and address events: a link back at the moment an incident's
/// page falls due resolves the incident before the page goes; and the
/// witness's renewals and confirmations. One yield lets
/// the readers move what the sockets hold.
async fn adverts_before_timers(node: &mut Node, inputs: &mut Inputs) {
    tokio::task::yield_now().await;
    let mut net = 0;
    while net < BATCH {
        let Some(ev) = inputs.ready_net() else {
            break;
        };
        node.on_input(ev, Instant::now()).await;
        net += 1;
    }
    // A renewal or a confirmation that came in time counts before the
    // deadline it would have moved.
    while net < BATCH {
        let Some(w) = inputs.witness.as_mut().and_then(|rx| rx.try_recv().ok()) else {
            break;
        };
        node.on_input(Input::Witness(w), Instant::now()).await;
        net += 1;
    }
    if net > 0 {
        node.step_done(Instant::now()).await;
    }
    let mut left = DRAIN_BEFORE_TIMERS;
    while left > 0 {
        let mut batch = 0;
        while batch < BATCH.min(left) {
            let Some(d) = inputs.ready_datagram() else {
                break;
            };
            node.on_input(Input::Datagram(d), Instant::now()).await;
            batch += 1;
        }
        if batch == 0 {
            break;
        }
        node.step_done(Instant::now()).await;
        left -= batch;
    }
}

/// Turns the loop until a stop: each input to the node's parts, then the parts
/// settle and the status goes out.
pub(super) async fn drive(node: &mut Node, inputs: &mut Inputs) -> &'static str {
    loop {
        let deadline = node.deadline();
        let input = inputs.next(deadline).await;
        if let Input::Stop(why) = input {
            return why;
        }
        if let Input::Timer = input {
            adverts_before_timers(node, inputs).await;
        }
        let packet = matches!(
            input,
            Input::Datagram(_) | Input::Advert(_) | Input::Neighbour(_)
        );
        let net = matches!(input, Input::Net(_));
        node.on_input(input, Instant::now()).await;
        if packet || net {
            // The packets (or the address events: a mass takeover adds
            // hundreds of VIPs at once) that came with it share its step, so
            // its settle, the watcher's durable save and the status update
            // are paid once for the burst, not once per packet or address.
            for _ in 1..BATCH {
                let more = if packet {
                    inputs.ready_packet()
                } else {
                    inputs.ready_net()
                };
                let Some(more) = more else {
                    break;
                };
                node.on_input(more, Instant::now()).await;
            }
        }
        node.step_done(Instant::now()).await;
    }
}
