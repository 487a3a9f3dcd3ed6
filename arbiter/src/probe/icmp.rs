//! ICMP echo reachability probes for the arbiter's references and peers: one socket
//! per prober, bound to the node's own primary address and to its interface, and a
//! loop that probes every target concurrently once per interval and sends each
//! result down a channel (to `Policy::handle_probe`). Nothing is decided here.
//!
//! - **Source.** The socket is bound to the node's primary address, never a VIP:
//!   replies to a VIP go to whichever node holds it, so the probe would measure the
//!   other node's reachability. SO_BINDTODEVICE keeps echoes on the interface the VIP
//!   lives on even when another route to the target exists.
//! - **Socket kind.** surge-ping first asks for an unprivileged ICMP datagram socket
//!   ("ping socket") and silently falls back to a raw one when the kernel refuses:
//!   datagram sockets need the process's group inside `net.ipv4.ping_group_range`
//!   (per network namespace; the kernel default `1 0` admits nobody, root included),
//!   raw sockets need CAP_NET_RAW. [`IcmpProber::socket_kind`] says which one was
//!   opened and [`IcmpProber::new`] logs it.
//! - **Sequence numbers.** On a datagram socket the kernel owns the ICMP identifier,
//!   so surge-ping matches replies by (host, sequence) only. Every echo a prober
//!   sends takes the next value of one wrapping counter, so concurrent echoes (the
//!   same host listed twice, or probed again while an old echo is pending) never
//!   collide (`SurgeError::IdenticalRequests`).
//! - **Failures are results.** A timeout, a failed send (network unreachable) or an
//!   ICMP error from a router (destination unreachable) all report `ok: false`. The
//!   loop is paced by its interval, so a send that fails at once cannot spin.
//! - **IPv6** works the same way with an IPv6 source (ICMPv6 echo). A link-local
//!   source is bound with its interface as the scope ([`IcmpProber::new_scoped`]):
//!   surge-ping binds before it sets SO_BINDTODEVICE, and the kernel refuses a
//!   link-local bind without a scope. Link-local targets are sent with that scope
//!   too. `net.ipv4.ping_group_range` governs ICMPv6 ping sockets as well.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use surge_ping::{Client, Config, ICMP, IcmpPacket, PingIdentifier, PingSequence, SurgeError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// Echo payload: small, and recognisable in a capture.
const PAYLOAD: &[u8; 16] = b"splitguard-probe";
/// ICMP "echo reply" types; anything else answering an echo is an error report.
const ICMPV4_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REPLY: u8 = 129;
/// Longest interface name the kernel accepts (IFNAMSIZ minus the NUL).
const IFNAME_MAX: usize = 15;

/// Gives each prober in the process its own ICMP identifier (raw sockets match
/// replies by it, and see every echo reply the host receives).
static NEXT_IDENT: AtomicU16 = AtomicU16::new(0);

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("open ICMP socket bound to {local} on {interface}: {error}")]
    Open {
        local: IpAddr,
        interface: String,
        #[source]
        error: std::io::Error,
    },
    #[error("ICMP probe source {0} must be a unicast address of this node")]
    BadSource(IpAddr),
    #[error("ICMP probe source {0} is link-local: it needs its interface's index as the scope")]
    NoScope(IpAddr),
    #[error("interface name {0:?} is not valid (1 to 15 bytes)")]
    BadInterface(String),
    #[error("ICMP probes must be started inside a tokio runtime")]
    NoRuntime,
    #[error("cannot probe {target} from {local}: the address families differ")]
    FamilyMismatch { local: IpAddr, target: IpAddr },
    #[error("the probe interval must be above zero")]
    ZeroInterval,
    #[error("the probe timeout must be above zero")]
    ZeroTimeout,
}

/// Which ICMP socket surge-ping managed to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// An unprivileged ping socket (SOCK_DGRAM, IPPROTO_ICMP).
    Datagram,
    /// A raw ICMP socket (needs CAP_NET_RAW).
    Raw,
}

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub target: IpAddr,
    /// An echo reply came back from `target` within the timeout.
    pub ok: bool,
    /// Round-trip time, when `ok`.
    pub rtt: Option<Duration>,
    /// When the outcome was known (reply, failure or timeout): the policy's `now`.
    pub at: Instant,
}

/// An ICMP echo client bound to one source address and interface.
pub struct IcmpProber {
    client: Client,
    local: IpAddr,
    interface: String,
    /// The interface index, for link-local addresses (0 otherwise).
    scope: u32,
    kind: SocketKind,
    ident: PingIdentifier,
    seq: AtomicU16,
}

impl std::fmt::Debug for IcmpProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IcmpProber")
            .field("local", &self.local)
            .field("interface", &self.interface)
            .field("kind", &self.kind)
            .field("ident", &self.ident)
            .finish_non_exhaustive()
    }
}

impl IcmpProber {
    /// Opens the socket, bound to `local` (the node's primary address) and to
    /// `interface`. Must be called inside a tokio runtime: surge-ping spawns its
    /// receiving task there.
    pub fn new(local: IpAddr, interface: &str) -> Result<Self, ProbeError> {
        IcmpProber::new_scoped(local, interface, 0)
    }

    /// As [`IcmpProber::new`], with `scope` the index of `interface`: needed for
    /// an IPv6 link-local `local`, and the scope of link-local targets.
    pub fn new_scoped(local: IpAddr, interface: &str, scope: u32) -> Result<Self, ProbeError> {
        check_source(local)?;
        let link_local = matches!(local, IpAddr::V6(v6) if v6.is_unicast_link_local());
        if link_local && scope == 0 {
            return Err(ProbeError::NoScope(local));
        }
        if interface.is_empty() || interface.len() > IFNAME_MAX {
            return Err(ProbeError::BadInterface(interface.to_owned()));
        }
        tokio::runtime::Handle::try_current().map_err(|_| ProbeError::NoRuntime)?;
        let family = match local {
            IpAddr::V4(_) => ICMP::V4,
            IpAddr::V6(_) => ICMP::V6,
        };
        let config = Config::builder()
            .kind(family)
            .bind(match local {
                IpAddr::V6(v6) if link_local => SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, scope)),
                _ => SocketAddr::new(local, 0),
            })
            .interface(interface)
            .build();
        let client = Client::new(&config).map_err(|error| ProbeError::Open {
            local,
            interface: interface.to_owned(),
            error,
        })?;
        let kind = if client.get_socket().get_type() == socket2::Type::RAW {
            SocketKind::Raw
        } else {
            SocketKind::Datagram
        };
        let n = NEXT_IDENT.fetch_add(1, Ordering::Relaxed);
        // Truncating the pid is fine: the identifier only has to differ from other
        // pingers on this host most of the time; the sequence does the rest.
        let ident = PingIdentifier((std::process::id() as u16).wrapping_add(n));
        tracing::info!(%local, interface, kind = ?kind, "ICMP prober ready");
        Ok(IcmpProber {
            client,
            local,
            interface: interface.to_owned(),
            scope,
            kind,
            ident,
            seq: AtomicU16::new(0),
        })
    }

    pub fn socket_kind(&self) -> SocketKind {
        self.kind
    }

    pub fn local(&self) -> IpAddr {
        self.local
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Sends one echo to `target` and waits at most `timeout` (send included) for
    /// the reply. Never fails: every problem is an `ok: false` result, logged at
    /// debug level (the policy reports the state changes that matter).
    pub async fn probe(&self, target: IpAddr, timeout: Duration) -> ProbeResult {
        let seq = PingSequence(self.seq.fetch_add(1, Ordering::Relaxed));
        let outcome = if target.is_ipv4() != self.local.is_ipv4() {
            Err(ProbeError::FamilyMismatch {
                local: self.local,
                target,
            }
            .to_string())
        } else {
            let mut pinger = self.client.pinger(target, self.ident).await;
            pinger.timeout(timeout);
            if matches!(target, IpAddr::V6(t) if t.is_unicast_link_local()) {
                pinger.scope_id(self.scope);
            }
            // The outer bound also covers a send that blocks, which surge-ping's own
            // timeout (started after the send) does not.
            match tokio::time::timeout(timeout, pinger.ping(seq, PAYLOAD)).await {
                Ok(Ok((packet, rtt))) if is_echo_reply(&packet) => Ok(rtt),
                Ok(Ok((packet, _))) => Err(format!("answered by an ICMP error: {packet:?}")),
                Ok(Err(SurgeError::Timeout { .. })) | Err(_) => {
                    Err(format!("no reply within {timeout:?}"))
                }
                Ok(Err(e)) => Err(e.to_string()),
            }
        };
        let at = Instant::now();
        match outcome {
            Ok(rtt) => ProbeResult {
                target,
                ok: true,
                rtt: Some(rtt),
                at,
            },
            Err(why) => {
                tracing::debug!(%target, seq = seq.0, local = %self.local, "probe failed: {why}");
                ProbeResult {
                    target,
                    ok: false,
                    rtt: None,
                    at,
                }
            }
        }
    }
}

/// Probes every target once per `interval`, concurrently, and sends each result as
/// soon as it is known. A round lasts at most `timeout`; when it lasts longer than
/// `interval` the next round starts late rather than in a burst
/// (`MissedTickBehavior::Delay`). The loop ends when `results` is dropped. The
/// prober may be shared (`Arc`): one raw socket per node, whose every ICMP
/// arrival wakes it, serves other echoes too (early takeover's liveness).
///
/// Fails at once, before spawning anything, on a zero interval or timeout, a target
/// of the other address family than the prober's source, or outside a runtime.
pub fn spawn_probe_loop(
    prober: impl Into<Arc<IcmpProber>>,
    targets: Vec<IpAddr>,
    interval: Duration,
    timeout: Duration,
    results: mpsc::Sender<ProbeResult>,
) -> Result<JoinHandle<()>, ProbeError> {
    let prober = prober.into();
    check_loop(prober.local, &targets, interval, timeout)?;
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| ProbeError::NoRuntime)?;
    Ok(runtime.spawn(probe_loop(prober, targets, interval, timeout, results)))
}

async fn probe_loop(
    prober: Arc<IcmpProber>,
    targets: Vec<IpAddr>,
    interval: Duration,
    timeout: Duration,
    results: mpsc::Sender<ProbeResult>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = results.closed() => return,
            _ = ticks.tick() => {}
        }
        let mut round: FuturesUnordered<_> = targets
            .iter()
            .map(|&target| prober.probe(target, timeout))
            .collect();
        while let Some(result) = round.next().await {
            if results.send(result).await.is_err() {
                return;
            }
        }
    }
}

fn check_source(local: IpAddr) -> Result<(), ProbeError> {
    let bad = local.is_unspecified()
        || local.is_multicast()
        || matches!(local, IpAddr::V4(v4) if v4.is_broadcast());
    if bad {
        return Err(ProbeError::BadSource(local));
    }
    Ok(())
}

fn check_loop(
    local: IpAddr,
    targets: &[IpAddr],
    interval: Duration,
    timeout: Duration,
) -> Result<(), ProbeError> {
    if interval.is_zero() {
        return Err(ProbeError::ZeroInterval);
    }
    if timeout.is_zero() {
        return Err(ProbeError::ZeroTimeout);
    }
    if let Some(&target) = targets.iter().find(|t| t.is_ipv4() != local.is_ipv4()) {
        return Err(ProbeError::FamilyMismatch { local, target });
    }
    Ok(())
}

/// surge-ping hands back whatever answered the echo, including a router's
/// "destination unreachable"; only a real echo reply proves reachability.
fn is_echo_reply(packet: &IcmpPacket) -> bool {
    match packet {
        IcmpPacket::V4(p) => p.get_icmp_type().0 == ICMPV4_ECHO_REPLY,
        IcmpPacket::V6(p) => p.get_icmpv6_type().0 == ICMPV6_ECHO_REPLY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use surge_ping::Icmpv4Packet;

    const US: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 5);
    const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);

    fn v4(a: Ipv4Addr) -> IpAddr {
        IpAddr::V4(a)
    }

    /// An ICMP message as a datagram ping socket delivers it (no IP header).
    fn icmp(kind: u8, code: u8, rest: &[u8]) -> Vec<u8> {
        let mut b = vec![kind, code, 0, 0];
        b.extend_from_slice(rest);
        b
    }

    #[test]
    fn only_echo_replies_prove_reachability() {
        // Echo reply: id 7, seq 3, then payload.
        let reply = icmp(0, 0, &[0, 7, 0, 3, b'x', b'y']);
        let p = Icmpv4Packet::decode(&reply, socket2::Type::DGRAM, GW, US).expect("decodes");
        assert!(is_echo_reply(&IcmpPacket::V4(p)));

        // Destination unreachable quoting our echo to .254 (IP header + 8 bytes).
        let mut quoted = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0];
        quoted.extend_from_slice(&US.octets());
        quoted.extend_from_slice(&GW.octets());
        quoted.extend_from_slice(&[8, 0, 0, 0, 0, 7, 0, 3]);
        let mut rest = vec![0, 0, 0, 0];
        rest.extend_from_slice(&quoted);
        let unreachable = icmp(3, 1, &rest);
        let p = Icmpv4Packet::decode(&unreachable, socket2::Type::DGRAM, US, US).expect("decodes");
        assert_eq!(p.get_real_dest(), GW, "routed to the waiter of the echo");
        assert!(!is_echo_reply(&IcmpPacket::V4(p)));
    }

    #[test]
    fn sources_that_are_not_one_host_are_refused() {
        for bad in ["0.0.0.0", "224.0.0.18", "255.255.255.255", "::"] {
            let ip: IpAddr = bad.parse().expect("literal");
            assert!(
                matches!(check_source(ip), Err(ProbeError::BadSource(x)) if x == ip),
                "{bad}"
            );
        }
        assert!(check_source(v4(US)).is_ok());
    }

    #[test]
    fn loop_arguments_are_checked_before_anything_runs() {
        let s = Duration::from_secs(1);
        let targets = [v4(GW), v4(Ipv4Addr::new(192, 0, 2, 6))];
        assert!(check_loop(v4(US), &targets, s, s).is_ok());
        assert!(check_loop(v4(US), &[], s, s).is_ok());
        assert!(matches!(
            check_loop(v4(US), &targets, Duration::ZERO, s),
            Err(ProbeError::ZeroInterval)
        ));
        assert!(matches!(
            check_loop(v4(US), &targets, s, Duration::ZERO),
            Err(ProbeError::ZeroTimeout)
        ));
        let v6: IpAddr = "2001:db8::1".parse().expect("literal");
        let err = check_loop(v4(US), &[v4(GW), v6], s, s).expect_err("mixed families");
        assert_eq!(
            err.to_string(),
            "cannot probe 2001:db8::1 from 192.0.2.5: the address families differ"
        );
    }

    #[test]
    fn a_prober_needs_a_runtime_and_a_sane_interface() {
        assert!(matches!(
            IcmpProber::new(v4(US), "eth0"),
            Err(ProbeError::NoRuntime)
        ));
        assert!(matches!(
            IcmpProber::new(v4(US), ""),
            Err(ProbeError::BadInterface(_))
        ));
        assert!(matches!(
            IcmpProber::new(v4(US), "a-very-long-name0"),
            Err(ProbeError::BadInterface(_))
        ));
        let ll: IpAddr = "fe80::ff:fe00:5".parse().expect("literal");
        assert!(matches!(
            IcmpProber::new(ll, "eth0"),
            Err(ProbeError::NoScope(_))
        ));
    }
}
