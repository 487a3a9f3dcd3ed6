//! Peer confirmation's socket edge (issue 20): one UDP socket on `listen`,
//! sending to and hearing from the pair's other daemon at `peer`. The codec,
//! the nonce ring and why an echo dates a confirmation are the arbiter's
//! (`splitguard_arbiter::witness::confirm`, pure); this file only moves bytes.
//!
//! - **Receiving.** A reader task takes every datagram, drops those not from
//!   `peer` (IP and port) and those [`decode`] refuses under the key, and
//!   forwards the rest as `(Datagram, Instant)` (the instant it was read, on
//!   this node's clock) to the channel given at start. Every drop is counted
//!   by reason ([`ConfirmCounters`]) and logged at most once per reason every
//!   [`LOG_EVERY`], with how many were not logged. The reader never waits on
//!   the channel: a full queue drops the datagram (counted as `queue_full`),
//!   which only loses a confirmation (the next follows an interval later);
//!   the task ends when the channel's receiver is gone or the path is dropped.
//! - **Sending.** [`ConfirmPath::send`] encodes and hands the datagram to the
//!   kernel with one non-blocking `sendto`, so the event loop never waits on
//!   the path: a UDP send does not wait for the peer, and in the rare case the
//!   socket's send buffer is full the datagram is refused (`WouldBlock`) rather
//!   than queued, since a late confirmation is worth no more than the next one.
//!   (tokio's `try_send_to` would refuse until the runtime has first polled the
//!   socket's writability; the plain syscall has no such warm-up.)
//!
//! - **The peer's port closed.** The socket asks for ICMP errors
//!   (`IP_RECVERR`): a peer host that answers "port unreachable" to our
//!   datagrams is up while nothing listens on its confirm port, its daemon
//!   gone. Each such answer is counted ([`ConfirmStats::port_unreachable`]),
//!   whether the kernel reports it to a send or to the reader; fencing reads
//!   it as the direct health path's "daemon dead" (silence alone never is:
//!   a cut management network is silent too). The error queue is drained so
//!   it never fills.
//!
//! Nothing here is needed for safety beyond the tag: a replayed or delayed
//! datagram is forwarded like any other, and the master's nonce ring dates it
//! by its echo, so it cannot extend a confirmation.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use splitguard_arbiter::witness::confirm::{
    ConfirmError, Datagram, MAX_DATAGRAM_LEN, check_key, decode, encode,
};

/// At most one log line per drop reason in this long.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// The reader's pause after a failed receive, so a persistent error cannot spin.
const RECEIVE_BACKOFF: Duration = Duration::from_millis(100);
/// DSCP CS6, as the VRRP adverts carry (`net::vrrp_socket`).
const TOS_INTERNETWORK_CONTROL: u32 = 0xc0;

/// Why a received datagram was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Not from the configured peer's IP and port.
    ForeignSource,
    TooShort,
    BadMagic,
    UnknownVersion,
    BadLength,
    TooManyEntries,
    TrailingBytes,
    BadTag,
    BadName,
    UnknownFamily,
    ReservedBits,
    ShortKey,
    /// Decoded, but the receiving channel was full.
    QueueFull,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 13] = [
        DropReason::ForeignSource,
        DropReason::TooShort,
        DropReason::BadMagic,
        DropReason::UnknownVersion,
        DropReason::BadLength,
        DropReason::TooManyEntries,
        DropReason::TrailingBytes,
        DropReason::BadTag,
        DropReason::BadName,
        DropReason::UnknownFamily,
        DropReason::ReservedBits,
        DropReason::ShortKey,
        DropReason::QueueFull,
    ];
    const COUNT: usize = DropReason::ALL.len();

    /// A stable snake_case name, for metric labels and log fields (the
    /// codec's own label for a decode error).
    pub fn label(self) -> &'static str {
        match self {
            DropReason::ForeignSource => "foreign_source",
            DropReason::TooShort => "too_short",
            DropReason::BadMagic => "bad_magic",
            DropReason::UnknownVersion => "unknown_version",
            DropReason::BadLength => "bad_length",
            DropReason::TooManyEntries => "too_many_entries",
            DropReason::TrailingBytes => "trailing_bytes",
            DropReason::BadTag => "bad_tag",
            DropReason::BadName => "bad_name",
            DropReason::UnknownFamily => "unknown_family",
            DropReason::ReservedBits => "reserved_bits",
            DropReason::ShortKey => "short_key",
            DropReason::QueueFull => "queue_full",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl From<&ConfirmError> for DropReason {
    fn from(e: &ConfirmError) -> DropReason {
        match e {
            ConfirmError::TooShort { .. } => DropReason::TooShort,
            ConfirmError::BadMagic => DropReason::BadMagic,
            ConfirmError::UnknownVersion(_) => DropReason::UnknownVersion,
            ConfirmError::BadLength { .. } => DropReason::BadLength,
            ConfirmError::TooManyEntries { .. } => DropReason::TooManyEntries,
            ConfirmError::TrailingBytes { .. } => DropReason::TrailingBytes,
            ConfirmError::BadTag => DropReason::BadTag,
            ConfirmError::BadName => DropReason::BadName,
            ConfirmError::UnknownFamily(_) => DropReason::UnknownFamily,
            ConfirmError::ReservedBits { .. } => DropReason::ReservedBits,
            ConfirmError::ShortKey { .. } => DropReason::ShortKey,
        }
    }
}

/// The path's counters, shared with the reader task (for `/metrics`).
#[derive(Debug, Default)]
pub struct ConfirmCounters {
    forwarded: AtomicU64,
    sent: AtomicU64,
    send_errors: AtomicU64,
    receive_errors: AtomicU64,
    port_unreachable: AtomicU64,
    dropped: [AtomicU64; DropReason::COUNT],
}

impl ConfirmCounters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn drop_one(&self, reason: DropReason) {
        ConfirmCounters::bump(&self.dropped[reason.index()]);
    }

    /// The counters as they stand.
    pub fn snapshot(&self) -> ConfirmStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConfirmStats {
            forwarded: load(&self.forwarded),
            sent: load(&self.sent),
            send_errors: load(&self.send_errors),
            receive_errors: load(&self.receive_errors),
            port_unreachable: load(&self.port_unreachable),
            dropped: std::array::from_fn(|i| load(&self.dropped[i])),
        }
    }
}

/// A snapshot of [`ConfirmCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfirmStats {
    /// Datagrams decoded and handed to the channel.
    pub forwarded: u64,
    /// Datagrams handed to the kernel.
    pub sent: u64,
    /// Sends the kernel refused.
    pub send_errors: u64,
    /// Failed receives.
    pub receive_errors: u64,
    /// ICMP "port unreachable" answers from the peer: its host is up and
    /// nothing listens on its confirm port.
    pub port_unreachable: u64,
    dropped: [u64; DropReason::COUNT],
}

impl ConfirmStats {
    /// Datagrams received and dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Datagrams received and dropped, for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Each reason and its count, in [`DropReason::ALL`]'s order.
    pub fn dropped_by_reason(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.dropped(r)))
    }
}

/// Why the path could not start.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("peer confirmation key: {0}")]
    Key(#[from] ConfirmError),
    #[error("peer confirmation peer {peer}: {why}")]
    Peer { peer: SocketAddr, why: &'static str },
    #[error("peer confirmation socket on {listen}: {what}: {source}")]
    Socket {
        listen: SocketAddr,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The authenticated direct path to the pair's other daemon.
pub struct ConfirmPath {
    sock: Arc<UdpSocket>,
    peer: SocketAddr,
    /// `peer` as this socket's family writes it (v4-mapped on an IPv6 socket).
    send_to: SockAddr,
    key: Arc<[u8]>,
    counters: Arc<ConfirmCounters>,
    reader: JoinHandle<()>,
}

impl fmt::Debug for ConfirmPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("ConfirmPath")
            .field("local", &self.sock.local_addr().ok())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl ConfirmPath {
    /// Binds a UDP socket on `listen`, and starts the reader that forwards
    /// `peer`'s datagrams, decoded under `key`, to `tx`. Inside a tokio runtime.
    pub fn start(
        listen: SocketAddr,
        peer: SocketAddr,
        key: &[u8],
        tx: mpsc::Sender<(Datagram, Instant)>,
    ) -> Result<ConfirmPath, PathError> {
        check_key(key)?;
        let e = |what| {
            move |source| PathError::Socket {
                listen,
                what,
                source,
            }
        };
        let s = Socket::new(
            Domain::for_address(listen),
            Type::DGRAM,
            Some(Protocol::UDP),
        )
        .map_err(e("open"))?;
        // Best effort: the path works without its priority marking.
        let marked = match listen {
            SocketAddr::V4(_) => s.set_tos_v4(TOS_INTERNETWORK_CONTROL),
            SocketAddr::V6(_) => s.set_tclass_v6(TOS_INTERNETWORK_CONTROL),
        };
        if let Err(error) = marked {
            debug!(%listen, %error, "peer confirmation socket left unmarked (DSCP CS6)");
        }
        if listen.is_ipv6() && peer.ip().to_canonical().is_ipv4() {
            // An IPv4 peer reaches an IPv6 socket only dual-stack, whatever
            // net.ipv6.bindv6only says.
            s.set_only_v6(false)
                .map_err(e("accept IPv4 on the IPv6 socket"))?;
        }
        s.bind(&SockAddr::from(listen)).map_err(e("bind"))?;
        // Without it Linux keeps ICMP errors from an unconnected socket.
        if let Err(error) = set_recv_err(&s, listen.is_ipv6()) {
            warn!(%listen, %error, "peer confirmation socket: ICMP errors not asked for; a dead peer daemon looks like silence");
        }
        ConfirmPath::from_std(std::net::UdpSocket::from(s), peer, key, tx)
    }

    /// As [`ConfirmPath::start`], over a socket already bound.
    pub fn from_std(
        socket: std::net::UdpSocket,
        peer: SocketAddr,
        key: &[u8],
        tx: mpsc::Sender<(Datagram, Instant)>,
    ) -> Result<ConfirmPath, PathError> {
        check_key(key)?;
        let local = socket.local_addr().map_err(|source| PathError::Socket {
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            what: "read the bound address",
            source,
        })?;
        let e = |what| {
            move |source| PathError::Socket {
                listen: local,
                what,
                source,
            }
        };
        if peer.port() == 0 || peer.ip().is_unspecified() || peer.ip().is_multicast() {
            return Err(PathError::Peer {
                peer,
                why: "needs a unicast address and a port",
            });
        }
        let send_to = match (local, peer.ip().to_canonical()) {
            (SocketAddr::V6(_), IpAddr::V4(v4)) => {
                SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), peer.port())
            }
            (SocketAddr::V4(_), IpAddr::V4(v4)) => SocketAddr::new(IpAddr::V4(v4), peer.port()),
            (SocketAddr::V4(_), IpAddr::V6(_)) => {
                return Err(PathError::Peer {
                    peer,
                    why: "is IPv6 and the listen address IPv4",
                });
            }
            (SocketAddr::V6(_), IpAddr::V6(_)) => peer,
        };
        socket
            .set_nonblocking(true)
            .map_err(e("set non-blocking"))?;
        let sock = Arc::new(UdpSocket::from_std(socket).map_err(e("register with tokio"))?);
        let key: Arc<[u8]> = Arc::from(key);
        let counters = Arc::new(ConfirmCounters::default());
        let reader = tokio::spawn(read_loop(
            Arc::clone(&sock),
            peer,
            Arc::clone(&key),
            tx,
            Arc::clone(&counters),
        ));
        Ok(ConfirmPath {
            sock,
            peer,
            send_to: SockAddr::from(send_to),
            key,
            counters,
            reader,
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The configured peer.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The counters, shared (for `/metrics`).
    pub fn counters(&self) -> Arc<ConfirmCounters> {
        Arc::clone(&self.counters)
    }

    /// The counters as they stand.
    pub fn snapshot(&self) -> ConfirmStats {
        self.counters.snapshot()
    }

    /// Encodes `d` and sends it to the peer now, without waiting: a full send
    /// buffer refuses it (`WouldBlock`) rather than queue it.
    pub fn send(&self, d: &Datagram) -> io::Result<()> {
        let bytes = encode(d, &self.key);
        let result = SockRef::from(&*self.sock)
            .send_to(&bytes, &self.send_to)
            .and_then(|n| {
                if n == bytes.len() {
                    Ok(())
                } else {
                    Err(io::Error::other(format!(
                        "sent {n} of {} bytes",
                        bytes.len()
                    )))
                }
            });
        match &result {
            Ok(()) => ConfirmCounters::bump(&self.counters.sent),
            // An ICMP error from an earlier datagram, reported here.
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                ConfirmCounters::bump(&self.counters.port_unreachable);
                drain_error_queue(&self.sock);
            }
            Err(_) => ConfirmCounters::bump(&self.counters.send_errors),
        }
        result
    }
}

impl Drop for ConfirmPath {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Asks the kernel for ICMP errors on this unconnected socket.
fn set_recv_err(s: &Socket, v6: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    let (level, name) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    // SAFETY: a valid socket, an int option of the size given.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Empties the socket's error queue (what `IP_RECVERR` queues besides the
/// error it reports), at most 64 entries a call: ICMP errors are rate
/// limited by the sender's kernel, and one datagram goes out per interval.
fn drain_error_queue(sock: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    for _ in 0..64 {
        let mut data = [0u8; 64];
        let mut control = [0u8; 256];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: msghdr is plain data; zeroed is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len();
        // SAFETY: the buffers outlive the call and their lengths are given.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if n < 0 {
            return;
        }
    }
}

/// Whether `src` is the configured peer: the same IP (an IPv4 peer also as
/// its v4-mapped IPv6 form) and port.
fn is_peer(src: SocketAddr, peer: SocketAddr) -> bool {
    src.port() == peer.port() && src.ip().to_canonical() == peer.ip().to_canonical()
}

/// One log line per reason per [`LOG_EVERY`], saying how many were not logged
/// since the last.
#[derive(Debug, Default)]
struct LogGate {
    /// Per drop reason, then one slot for receive errors.
    last: [Option<Instant>; DropReason::COUNT + 1],
    quiet: [u64; DropReason::COUNT + 1],
}

impl LogGate {
    const RECEIVE_ERROR: usize = DropReason::COUNT;

    /// `Some(not logged since the last line)` when a line may be written now.
    fn pass(&mut self, slot: usize, now: Instant) -> Option<u64> {
        match self.last[slot] {
            Some(last) if now.saturating_duration_since(last) < LOG_EVERY => {
                self.quiet[slot] += 1;
                None
            }
            _ => {
                self.last[slot] = Some(now);
                Some(std::mem::take(&mut self.quiet[slot]))
            }
        }
    }
}

async fn read_loop(
    sock: Arc<UdpSocket>,
    peer: SocketAddr,
    key: Arc<[u8]>,
    tx: mpsc::Sender<(Datagram, Instant)>,
    counters: Arc<ConfirmCounters>,
) {
    // One byte over the longest datagram: a longer one arrives cut, and the
    // codec refuses it.
    let mut buf = vec![0u8; MAX_DATAGRAM_LEN + 1];
    let mut gate = LogGate::default();
    loop {
        let received = sock.recv_from(&mut buf).await;
        let now = Instant::now();
        let (n, src) = match received {
            Ok(r) => r,
            Err(error) if error.raw_os_error() == Some(libc::ECONNREFUSED) => {
                ConfirmCounters::bump(&counters.port_unreachable);
                drain_error_queue(&sock);
                continue;
            }
            Err(error) => {
                ConfirmCounters::bump(&counters.receive_errors);
                if let Some(suppressed) = gate.pass(LogGate::RECEIVE_ERROR, now) {
                    warn!(%error, suppressed, "peer confirmation receive failed");
                }
                tokio::time::sleep(RECEIVE_BACKOFF).await;
                continue;
            }
        };
        let dropped = if !is_peer(src, peer) {
            (DropReason::ForeignSource, None)
        } else {
            match decode(buf.get(..n).unwrap_or(&[]), &key) {
                Ok(d) => match tx.try_send((d, now)) {
                    Ok(()) => {
                        ConfirmCounters::bump(&counters.forwarded);
                        continue;
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => (DropReason::QueueFull, None),
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                },
                Err(e) => ((&e).into(), Some(e)),
            }
        };
        let (reason, error) = dropped;
        counters.drop_one(reason);
        if let Some(suppressed) = gate.pass(reason.index(), now) {
            match error {
                Some(error) => warn!(
                    reason = reason.label(),
                    source = %src,
                    len = n,
                    %error,
                    suppressed,
                    "peer confirmation datagram dropped"
                ),
                None => warn!(
                    reason = reason.label(),
                    source = %src,
                    %peer,
                    len = n,
                    suppressed,
                    "peer confirmation datagram dropped"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitguard_arbiter::witness::confirm::{Entry, Family};

    const KEY: &[u8] = b"pair-secret-0123456789";

    fn datagram(node: &str, nonce: u64, echo: Option<u64>) -> Datagram {
        let entries = vec![Entry {
            family: Family::Ipv4,
            vrid: 51,
            hears_master: true,
            wants_preempt: false,
            released: false,
        }];
        Datagram::new(node, nonce, echo, entries).expect("valid datagram")
    }

    fn bind(ip: &str) -> std::net::UdpSocket {
        std::net::UdpSocket::bind((ip, 0)).expect("bind on loopback")
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn recv(rx: &mut mpsc::Receiver<(Datagram, Instant)>) -> (Datagram, Instant) {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a datagram within 5 s")
            .expect("channel open")
    }

    #[tokio::test]
    async fn two_paths_exchange_datagrams() {
        let b_sock = bind("127.0.0.1");
        let b_addr = b_sock.local_addr().expect("bound");
        let (a_tx, mut a_rx) = mpsc::channel(8);
        let a = ConfirmPath::start("127.0.0.1:0".parse().expect("addr"), b_addr, KEY, a_tx)
            .expect("start a");
        let a_addr = a.local_addr().expect("bound");
        let (b_tx, mut b_rx) = mpsc::channel(8);
        let b = ConfirmPath::from_std(b_sock, a_addr, KEY, b_tx).expect("start b");
        assert_eq!(b.peer(), a_addr);

        let before = Instant::now();
        let hello = datagram("lb01", 1 << 32, None);
        a.send(&hello).expect("a sends");
        let (got, at) = recv(&mut b_rx).await;
        assert_eq!(got, hello);
        assert!(at >= before);

        let reply = datagram("lb02", 7 << 32, Some(hello.nonce()));
        b.send(&reply).expect("b sends");
        let (got, _) = recv(&mut a_rx).await;
        assert_eq!(got, reply);
        assert_eq!(got.echo(), Some(1 << 32));

        for (path, name) in [(&a, "a"), (&b, "b")] {
            let stats = path.snapshot();
            assert_eq!((stats.sent, stats.forwarded), (1, 1), "{name}");
            assert_eq!(stats.dropped_total(), 0, "{name}");
        }
        assert!(
            !format!("{a:?}").contains("pair-secret"),
            "Debug shows the key"
        );
    }

    #[tokio::test]
    async fn wrong_key_and_foreign_sources_are_dropped_and_counted() {
        let peer = bind("127.0.0.1");
        let peer_addr = peer.local_addr().expect("bound");
        let (tx, mut rx) = mpsc::channel(1);
        let path = ConfirmPath::start("127.0.0.1:0".parse().expect("addr"), peer_addr, KEY, tx)
            .expect("start");
        let local = path.local_addr().expect("bound");

        // From the peer, under another key: a bad tag.
        let forged = encode(&datagram("lb02", 1, None), b"some-other-secret-key");
        peer.send_to(&forged, local).expect("send");
        // From the peer, not a confirmation at all.
        peer.send_to(b"hello", local).expect("send");
        // Valid under the key, but from another port, then another IP.
        let valid = encode(&datagram("lb02", 2, None), KEY);
        bind("127.0.0.1").send_to(&valid, local).expect("send");
        bind("127.0.0.2").send_to(&valid, local).expect("send");
        // Then the peer's own: forwarded, the only one.
        let own = datagram("lb02", 3, Some(9));
        peer.send_to(&encode(&own, KEY), local).expect("send");
        let (got, _) = recv(&mut rx).await;
        assert_eq!(got, own);

        let counters = path.counters();
        until("the drops counted", || {
            counters.snapshot().dropped_total() == 4
        })
        .await;
        let stats = path.snapshot();
        assert_eq!(stats.dropped(DropReason::BadTag), 1);
        assert_eq!(stats.dropped(DropReason::TooShort), 1);
        assert_eq!(stats.dropped(DropReason::ForeignSource), 2);
        assert_eq!(stats.forwarded, 1);

        // A full channel drops (and counts) rather than stall the reader.
        let more = encode(&datagram("lb02", 4, None), KEY);
        peer.send_to(&more, local).expect("send");
        peer.send_to(&more, local).expect("send");
        until("the queue-full drop", || {
            counters.snapshot().dropped(DropReason::QueueFull) == 1
        })
        .await;
        assert_eq!(path.snapshot().forwarded, 2);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err(), "nothing else forwarded");
    }

    #[tokio::test]
    async fn an_ipv6_socket_talks_to_an_ipv4_peer() {
        let peer = bind("127.0.0.1");
        let peer_addr = peer.local_addr().expect("bound");
        let (tx, mut rx) = mpsc::channel(1);
        let listen: SocketAddr = "[::]:0".parse().expect("addr");
        let path = match ConfirmPath::start(listen, peer_addr, KEY, tx) {
            Ok(path) => path,
            // A host without IPv6 cannot run this one.
            Err(PathError::Socket { .. }) => return,
            Err(e) => panic!("{e}"),
        };
        let port = path.local_addr().expect("bound").port();
        let own = datagram("lb02", 5, None);
        peer.send_to(&encode(&own, KEY), ("127.0.0.1", port))
            .expect("send");
        assert_eq!(recv(&mut rx).await.0, own);

        path.send(&own).expect("send to the mapped peer");
        let mut buf = [0u8; 256];
        peer.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let (n, _) = peer.recv_from(&mut buf).expect("a datagram");
        assert_eq!(decode(&buf[..n], KEY), Ok(own));
    }

    #[tokio::test]
    async fn start_refuses_a_short_key_and_a_bad_peer() {
        let (tx, _rx) = mpsc::channel(1);
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let peer: SocketAddr = "127.0.0.1:7000".parse().expect("addr");
        assert!(matches!(
            ConfirmPath::start(listen, peer, b"short", tx.clone()),
            Err(PathError::Key(ConfirmError::ShortKey { len: 5 }))
        ));
        for bad in ["127.0.0.1:0", "0.0.0.0:7000", "[2001:db8::1]:7000"] {
            let bad: SocketAddr = bad.parse().expect("addr");
            assert!(
                matches!(
                    ConfirmPath::start(listen, bad, KEY, tx.clone()),
                    Err(PathError::Peer { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_v4_peer_matches_its_mapped_form() {
        let peer: SocketAddr = "192.0.2.7:7000".parse().expect("addr");
        assert!(is_peer(
            "[::ffff:192.0.2.7]:7000".parse().expect("addr"),
            peer
        ));
        assert!(is_peer(peer, peer));
        assert!(!is_peer("192.0.2.7:7001".parse().expect("addr"), peer));
        assert!(!is_peer("192.0.2.8:7000".parse().expect("addr"), peer));
    }

    #[test]
    fn logs_are_bounded_per_reason() {
        let t0 = Instant::now();
        let mut gate = LogGate::default();
        let tag = DropReason::BadTag.index();
        let foreign = DropReason::ForeignSource.index();
        assert_eq!(gate.pass(tag, t0), Some(0));
        for i in 1..=5 {
            assert_eq!(gate.pass(tag, t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(gate.pass(foreign, t0), Some(0), "reasons are apart");
        assert_eq!(gate.pass(tag, t0 + LOG_EVERY), Some(5));
        assert_eq!(gate.pass(tag, t0 + LOG_EVERY), None);
    }

    #[test]
    fn every_reason_has_its_own_counter_and_label() {
        let labels: std::collections::BTreeSet<_> =
            DropReason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let e = ConfirmError::BadTag;
        assert_eq!(DropReason::from(&e).label(), e.label());
    }
}
