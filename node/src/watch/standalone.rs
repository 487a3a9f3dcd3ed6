//! `splitguard watch -c FILE`: the watchdog alone, beside a running keepalived.
//! It watches each `[[watch]]` VIP on its interface and pages through the
//! configured channels; `status` shows its open incidents over the control socket.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::net::arp::ArpRepr;
use anyhow::{Context, bail};
use splitguard_watchdog::core::classify::{AdvertSeen, ExpectedRole, WatchedVip};
use splitguard_watchdog::io::dispatch::Delivery;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::reply::OwnerAction;
use super::{VipSite, Watcher};
use crate::config::{Config, Role};
use crate::control::{Command, CommandRequest, ErrorKind, Response};
use crate::net::arp_socket::ArpSocket;
use crate::net::netlink::{self, NetEvent, Netlink};
use crate::notify::events::{Event, EventSink, unix_ms};
use crate::status::Status;
use splitguard_watchdog::io::reply::http::ReplyEvent;

const DRAIN_BOUND: Duration = Duration::from_secs(5);
/// Bound on DEMOTE/RESUME commands.
const ACTION_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    if cfg.watches.is_empty() {
        bail!("no [[watch]] entries: nothing to watch (add vip, interface, role)");
    }
    splitguard_watchdog::io::channels::install_crypto_provider();
    let (control, events) = crate::control::open_outputs(&cfg).await?;
    let nl = Netlink::connect().context("open netlink")?;
    let mut net_events = netlink::subscribe().context("subscribe to netlink events")?;

    let mut vips = Vec::new();
    let mut sites = Vec::new();
    let mut arp_socks: BTreeMap<u32, Arc<ArpSocket>> = BTreeMap::new();
    let mut ifindexes: BTreeMap<u32, String> = BTreeMap::new();
    for w in &cfg.watches {
        let IpAddr::V4(vip) = w.vip else {
            bail!("watch {}: IPv6 VIPs are not watched yet", w.vip);
        };
        let link = nl
            .link_by_name(&w.interface)
            .await
            .with_context(|| format!("watch {}: interface {}", w.vip, w.interface))?;
        let mac = link
            .mac
            .with_context(|| format!("interface {} has no Ethernet address", w.interface))?;
        let addrs = nl.addresses(link.index).await?;
        let source = addrs
            .iter()
            .filter(|a| !a.secondary && a.addr != w.vip)
            .find_map(|a| match a.addr {
                IpAddr::V4(v) => Some(v),
                IpAddr::V6(_) => None,
            })
            .with_context(|| {
                format!(
                    "interface {} has no IPv4 address of its own to probe from",
                    w.interface
                )
            })?;
        if let std::collections::btree_map::Entry::Vacant(e) = arp_socks.entry(link.index) {
            e.insert(Arc::new(ArpSocket::open(link.index).with_context(
                || format!("open ARP socket on {} (needs CAP_NET_RAW)", w.interface),
            )?));
        }
        ifindexes.insert(link.index, w.interface.clone());
        vips.push(WatchedVip {
            vip: w.vip,
            interface: w.interface.clone(),
            role: match w.role {
                Role::Master => ExpectedRole::Master,
                Role::Backup => ExpectedRole::Backup,
            },
            instance: None,
            // Beside keepalived the watch does not know the instance's settings.
            expected: None,
        });
        sites.push(VipSite {
            vip,
            ifindex: link.index,
            mac,
            source,
        });
    }

    let (arp_tx, mut arp_rx) = mpsc::channel::<(u32, ArpRepr)>(256);
    let (adv_tx, mut adv_rx) = mpsc::channel::<AdvertSeen>(256);
    let watched: Vec<std::net::Ipv4Addr> = sites.iter().map(|s| s.vip).collect();
    for (&ifindex, sock) in &arp_socks {
        super::spawn_arp_receiver(ifindex, sock.clone(), watched.clone(), arp_tx.clone());
        super::spawn_capture(ifindex, &ifindexes[&ifindex], adv_tx.clone())?;
    }
    drop((arp_tx, adv_tx));

    let (reports_tx, mut reports_rx) = mpsc::unbounded_channel::<Delivery>();
    let mut watcher = Watcher::start(&cfg, vips, sites.clone(), arp_socks, reports_tx)?;

    let mut reply_rx = super::start_reply_listener(&cfg).await?;
    let (status_tx, status_rx) = watch::channel(Status::default());
    let (stop_control, control_stopped) = tokio::sync::oneshot::channel::<()>();
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<CommandRequest>(16);
    let control_task = tokio::spawn(control.serve(status_rx, Some(cmd_tx), async {
        let _ = control_stopped.await;
    }));

    // What is already here counts as arriving now.
    let now = Instant::now();
    for s in &sites {
        let present = nl
            .addresses(s.ifindex)
            .await?
            .iter()
            .any(|a| a.addr == IpAddr::V4(s.vip));
        if present {
            watcher.on_addr(now, IpAddr::V4(s.vip), true).await;
        }
    }
    info!(node = %cfg.node, vips = cfg.watches.len(), channels = cfg.channels.len(), "splitguard watching");
    crate::service::ready();
    let mut watchdog = crate::service::watchdog_ticker();

    let mut sigterm = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    let publish = |w: &Watcher| {
        status_tx.send_if_modified(|s| {
            let incidents = w.incidents();
            let replies = w.recent_replies();
            if s.incidents == incidents && s.node == cfg.node && s.replies == replies {
                return false;
            }
            s.node = cfg.node.clone();
            s.incidents = incidents;
            s.replies = replies;
            s.at_ms = Some(unix_ms(SystemTime::now()));
            true
        });
    };
    publish(&watcher);
    loop {
        let deadline = watcher.deadline();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(ev) = net_events.recv() => match ev {
                NetEvent::AddrAdded(a) if ifindexes.contains_key(&a.index) => {
                    watcher.on_addr(Instant::now(), a.addr, true).await
                }
                NetEvent::AddrRemoved(a) if ifindexes.contains_key(&a.index) => {
                    watcher.on_addr(Instant::now(), a.addr, false).await
                }
                NetEvent::Overrun => {
                    warn!("netlink events were lost; re-reading the watched addresses");
                    for s in &sites {
                        let present = nl.addresses(s.ifindex).await.map(|l| l.iter().any(|a| a.addr == IpAddr::V4(s.vip))).unwrap_or(false);
                        watcher.on_addr(Instant::now(), IpAddr::V4(s.vip), present).await;
                    }
                }
                _ => {}
            },
            Some((ifindex, arp)) = arp_rx.recv() => watcher.on_arp(Instant::now(), ifindex, &arp).await,
            Some(adv) = adv_rx.recv() => watcher.on_advert(Instant::now(), adv).await,
            Some(d) = reports_rx.recv() => emit(&events, super::delivery_event(&d)),
            () = sleep => watcher.on_timers(Instant::now()).await,
            Some(req) = cmd_rx.recv() => on_command(&mut watcher, req).await,
            Some(ev) = async {
                match &mut reply_rx {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => on_reply_event(&cfg, &mut watcher, ev).await,
            () = crate::service::watchdog_tick(&mut watchdog) => crate::service::watchdog_ping(),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        for ev in watcher.take_events() {
            emit(&events, ev);
        }
        publish(&watcher);
    }
    info!("watch stopping; undelivered alerts stay in the spool");
    crate::service::stopping();
    let _ = stop_control.send(());
    let _ = control_task.await;
    if let Some(sink) = events {
        let _ = sink.close(DRAIN_BOUND).await;
    }
    Ok(())
}

fn emit(events: &Option<EventSink>, ev: Event) {
    if let Some(sink) = events
        && let Err(e) = sink.emit(ev)
    {
        warn!(error = %e, "event not written");
    }
}

/// A reply from the listener: decided by the watcher; DEMOTE and RESUME run the
/// configured commands (e.g. `systemctl stop keepalived`), as the tutorial's
/// nginx check does.
async fn on_reply_event(cfg: &Config, watcher: &mut Watcher, ev: ReplyEvent) {
    match ev {
        ReplyEvent::Refused(rec) => watcher.audit_refused(rec),
        ReplyEvent::Request { reply, answer } => {
            let summary = watcher.summary(&cfg.node);
            let mut outcome = watcher.on_reply(reply, &summary).await;
            let command = match &outcome.action {
                Some(OwnerAction::Demote { .. }) => {
                    Some(("DEMOTE", &cfg.watch_actions.demote_command))
                }
                Some(OwnerAction::Resume { .. }) => {
                    Some(("RESUME", &cfg.watch_actions.resume_command))
                }
                None => None,
            };
            if let Some((word, argv)) = command {
                let result = match argv {
                    Some(argv) => crate::track::command::run(argv, ACTION_TIMEOUT)
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|st| {
                            if st.success() {
                                Ok(())
                            } else {
                                Err(format!("exited with {st}"))
                            }
                        }),
                    None => Err(format!(
                        "{word} is not configured on {} (watch_actions)",
                        cfg.node
                    )),
                };
                if let Err(why) = result {
                    warn!(word, error = %why, "reply command failed");
                    if let Some(c) = outcome.confirm.as_mut() {
                        c.text = format!("splitguard: {word} not done: {why}.");
                    }
                } else {
                    info!(word, "reply command ran");
                }
            }
            let _ = answer.send(outcome.http_status);
            if let Some(c) = outcome.confirm {
                watcher.confirm(c);
            }
        }
    }
}

/// Control-socket commands beside keepalived: `owners` and `ack`; DEMOTE and
/// RESUME belong to keepalived's own tooling here (or to replies, which run
/// `watch_actions`).
async fn on_command(watcher: &mut Watcher, req: CommandRequest) {
    let CommandRequest {
        command,
        peer,
        reply,
    } = req;
    match command {
        Command::Owners { vip } => watcher.request_owners(Instant::now(), vip, reply).await,
        Command::Ack { code } => {
            let r = watcher
                .ack_local(Instant::now(), &code, &format!("uid {}", peer.uid))
                .await;
            let _ = reply.send(r);
        }
        other => {
            let _ = reply.send(Response::error(
                ErrorKind::Unsupported,
                format!(
                    "{} is not available beside keepalived; reply to the page (watch_actions) or use keepalived's tools",
                    other.name()
                ),
            ));
        }
    }
}
