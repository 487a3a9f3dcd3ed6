//! The gateway's view of a lab, for `lab demo` and `lab scenario`: one thread in
//! gw's namespace that asks who holds the VIP every `every`, by ARP for an IPv4
//! VIP and by neighbour solicitation for an IPv6 one (each answer
//! counted for the request it follows, so a sample is the set of MACs that
//! answered) and receives the webhook alerts the daemons send to gw. Everything
//! is stamped with this process's monotonic clock, so "fault → alert" and
//! "fault → owner changed" are measured without clock skew. Bounded: it stops
//! after `limit`, or when dropped.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use splitguard_node::net::pace::{Probe, ProbeSocket};
use splitguard_vrrp::gate::format_mac;

use super::netns::{Lab, LabError};
use splitguard_node::net::arp_socket::ArpSocket;
use splitguard_node::net::ndisc::NdiscSocket;
use splitguard_node::net::netlink::Netlink;

/// One request from gw (ARP or neighbour solicitation) and the MACs that
/// answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerSample {
    pub at: Instant,
    pub macs: BTreeSet<String>,
}

/// One webhook POST received on gw.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub at: Instant,
    /// The JSON body (a string value when the body was not JSON).
    pub body: serde_json::Value,
}

impl Hook {
    fn field(&self, name: &str) -> &str {
        self.body[name].as_str().unwrap_or("")
    }
    /// The incident kind (`split_brain`, `claim_withheld`, ...).
    pub fn kind(&self) -> &str {
        self.field("kind")
    }
    /// `firing`, `resolved` or `acknowledged`.
    pub fn status(&self) -> &str {
        self.field("status")
    }
    pub fn node(&self) -> &str {
        self.field("node")
    }
    pub fn severity(&self) -> &str {
        self.field("severity")
    }
}

#[derive(Debug, Default)]
struct Seen {
    samples: Vec<OwnerSample>,
    hooks: Vec<Hook>,
    /// Why the observer stopped early, if it did.
    error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GwError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("the gateway observer did not start: {0}")]
    Start(String),
}

/// The running observer; stops (and joins its thread) when dropped.
pub struct GwObserver {
    seen: Arc<Mutex<Seen>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), LabError>>>,
    url: String,
}

/// What to observe.
#[derive(Debug, Clone, Copy)]
pub struct GwOptions {
    /// The VIP whose owners are sampled (IPv6: gw must have an IPv6 address,
    /// see [`crate::LabBuilder::ipv6`]).
    pub vip: IpAddr,
    /// The webhook port on gw's address.
    pub port: u16,
    /// One request per `every`.
    pub every: Duration,
    /// The observer stops by itself after this long.
    pub limit: Duration,
}

fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    // A panic while holding the lock leaves plain data; keep reading it.
    seen.lock().unwrap_or_else(|p| p.into_inner())
}

impl GwObserver {
    /// Starts sampling and receiving in `host` (normally gw); returns once the
    /// ARP or neighbour discovery socket is open and the webhook port listens.
    pub fn start(lab: &Lab, host: &str, opts: GwOptions) -> Result<GwObserver, GwError> {
        let addr = lab.host(host)?.addr;
        // Requests leave from the host's own address of the VIP's family.
        let source = match opts.vip {
            IpAddr::V4(_) => IpAddr::V4(addr),
            IpAddr::V6(_) => IpAddr::V6(lab.host(host)?.addr6.ok_or_else(|| {
                GwError::Start(format!("{host} has no IPv6 address (not an IPv6 lab)"))
            })?),
        };
        let iface = lab.host(host)?.iface.clone();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let inner = Arc::clone(&seen);
        let thread = lab.spawn_within(host, move || {
            let result = observe(&iface, addr, source, opts, &inner, ready_tx, stop_rx);
            if let Err(e) = result {
                lock(&inner).error = Some(e);
            }
        })?;
        let mut me = GwObserver {
            seen,
            stop: Some(stop_tx),
            thread: Some(thread),
            url: format!("http://{addr}:{}/hook", opts.port),
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(me),
            Ok(Err(e)) => Err(GwError::Start(e)),
            Err(_) => {
                me.shutdown();
                let why = lock(&me.seen).error.clone();
                Err(GwError::Start(
                    why.unwrap_or_else(|| "not ready in 10 s".into()),
                ))
            }
        }
    }

    /// The URL the daemons' webhook channel posts to.
    pub fn webhook_url(&self) -> &str {
        &self.url
    }

    /// Every sample so far.
    pub fn samples(&self) -> Vec<OwnerSample> {
        lock(&self.seen).samples.clone()
    }

    /// The most recent sample taken at or after `since`.
    pub fn latest_since(&self, since: Instant) -> Option<OwnerSample> {
        lock(&self.seen)
            .samples
            .iter()
            .rev()
            .find(|s| s.at >= since)
            .cloned()
    }

    /// Ok when gw's latest sample (of the last `fresh`) saw `mac` alone answer
    /// for the VIP; otherwise what it saw, for a "not steady" message.
    pub fn sees_only(&self, mac: &str, fresh: Duration) -> Result<(), String> {
        match self.latest_since(Instant::now() - fresh) {
            Some(s) if s.macs.len() == 1 && s.macs.contains(mac) => Ok(()),
            s => Err(format!(
                "gw sees {:?}",
                s.map(|s| s.macs).unwrap_or_default()
            )),
        }
    }

    /// Every webhook received so far.
    pub fn hooks(&self) -> Vec<Hook> {
        lock(&self.seen).hooks.clone()
    }

    /// Why the observer stopped early, if it did.
    pub fn error(&self) -> Option<String> {
        lock(&self.seen).error.clone()
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for GwObserver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The thread's body, inside gw's namespace.
fn observe(
    iface: &str,
    addr: Ipv4Addr,
    source: IpAddr,
    opts: GwOptions,
    seen: &Arc<Mutex<Seen>>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        let setup = async {
            let nl = Netlink::connect().map_err(|e| format!("netlink: {e}"))?;
            let link = nl
                .link_by_name(iface)
                .await
                .map_err(|e| format!("{iface}: {e}"))?;
            let mac = link
                .mac
                .ok_or_else(|| format!("{iface} has no Ethernet address"))?;
            let sock = match opts.vip {
                IpAddr::V4(_) => ProbeSocket::Arp(std::sync::Arc::new(
                    ArpSocket::open(link.index).map_err(|e| format!("ARP socket: {e}"))?,
                )),
                IpAddr::V6(_) => ProbeSocket::Nd(std::sync::Arc::new(
                    NdiscSocket::open_probe(iface, link.index)
                        .map_err(|e| format!("ICMPv6 socket: {e}"))?,
                )),
            };
            let listener = tokio::net::TcpListener::bind(SocketAddr::from((addr, opts.port)))
                .await
                .map_err(|e| format!("listen on {addr}:{}: {e}", opts.port))?;
            Ok::<_, String>((mac, sock, listener))
        };
        let (mac, sock, listener) = match setup.await {
            Ok(v) => v,
            Err(e) => {
                let _ = ready.send(Err(e.clone()));
                return Err(e);
            }
        };
        let _ = ready.send(Ok(()));
        let deadline = tokio::time::Instant::now() + opts.limit;
        let hooks = Arc::clone(seen);
        let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let hooks = Arc::clone(&hooks);
            async move {
                let at = Instant::now();
                let body = serde_json::from_slice(&body).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
                });
                lock(&hooks).hooks.push(Hook { at, body });
                axum::http::StatusCode::OK
            }
        });
        let (server_stop_tx, server_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = server_stop_rx.await;
                })
                .await
        });
        let sampled = sample(&sock, mac, source, opts, deadline, seen, stop).await;
        let _ = server_stop_tx.send(());
        // Graceful shutdown waits for open connections; bound it.
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        sampled
    })
}

/// Sends one who-has per `every` and files each answer under the request it
/// follows, until `deadline` or `stop`. An answer is addressed to gw (an ARP
/// reply, a solicited advertisement): a takeover's unsolicited announcement
/// is not a sample's answer.
async fn sample(
    sock: &ProbeSocket,
    mac: [u8; 6],
    source: IpAddr,
    opts: GwOptions,
    deadline: tokio::time::Instant,
    seen: &Mutex<Seen>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), String> {
    let mut next = tokio::time::Instant::now();
    while next < deadline {
        let at = Instant::now();
        let request = Probe::who_has(mac, source, opts.vip)
            .ok_or("the request's source and the VIP differ in family")?;
        sock.send(&request)
            .await
            .map_err(|e| format!("who-has request: {e}"))?;
        next += opts.every;
        let mut macs = BTreeSet::new();
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => {
                    lock(seen).samples.push(OwnerSample { at, macs });
                    return Ok(());
                }
                _ = tokio::time::sleep_until(next) => break,
                got = sock.recv(0) => match got {
                    Ok(Some(n)) if n.ip == opts.vip && n.answer_to == Some(source) => {
                        macs.insert(format_mac(&n.mac));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(format!("who-has receive: {e}")),
                },
            }
        }
        lock(seen).samples.push(OwnerSample { at, macs });
    }
    Ok(())
}

/// Owner samples in `[from, to)` as counts: (dual, zero, total).
pub fn count_owners(samples: &[OwnerSample], from: Instant, to: Instant) -> (usize, usize, usize) {
    let window: Vec<&OwnerSample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at < to)
        .collect();
    let dual = window.iter().filter(|s| s.macs.len() >= 2).count();
    let zero = window.iter().filter(|s| s.macs.is_empty()).count();
    (dual, zero, window.len())
}

/// How often the owners gw saw changed in `[from, to)`: a sample answered by
/// a different set of MACs than the last answered one (one owner to two, two to
/// the other one, one to another). Unanswered samples change nothing: a gap is
/// zero-owner time, and the owner after it may be the one before.
pub fn count_owner_changes(samples: &[OwnerSample], from: Instant, to: Instant) -> usize {
    let mut last: Option<&BTreeSet<String>> = None;
    let mut changes = 0;
    for s in samples.iter().filter(|s| s.at >= from && s.at < to) {
        if s.macs.is_empty() {
            continue;
        }
        if last.is_some_and(|l| *l != s.macs) {
            changes += 1;
        }
        last = Some(&s.macs);
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: Instant, macs: &[&str]) -> OwnerSample {
        OwnerSample {
            at,
            macs: macs.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn owners_are_counted_only_inside_the_window() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let samples = vec![
            s(t, &["a", "b"]),
            s(t + ms(250), &["a"]),
            s(t + ms(500), &[]),
            s(t + ms(750), &["a", "b"]),
            s(t + ms(1000), &[]),
        ];
        assert_eq!(count_owners(&samples, t, t + ms(1000)), (2, 1, 4));
        assert_eq!(count_owners(&samples, t + ms(250), t + ms(900)), (1, 1, 3));
        assert_eq!(
            count_owners(&samples, t + ms(2000), t + ms(3000)),
            (0, 0, 0)
        );
    }

    #[test]
    fn owner_changes_count_new_sets_and_skip_gaps() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let samples = vec![
            s(t, &["a"]),
            s(t + ms(250), &[]),
            s(t + ms(500), &["a"]),
            s(t + ms(750), &["a", "b"]),
            s(t + ms(1000), &["b"]),
            s(t + ms(1250), &[]),
            s(t + ms(1500), &["a"]),
        ];
        // a → a (gap between: no change) → a+b → b → a.
        assert_eq!(count_owner_changes(&samples, t, t + ms(2000)), 3);
        assert_eq!(count_owner_changes(&samples, t, t + ms(700)), 0);
        assert_eq!(count_owner_changes(&samples, t + ms(2000), t + ms(3000)), 0);
    }

    #[test]
    fn hook_fields_read_from_the_body_and_default_to_empty() {
        let h = Hook {
            at: Instant::now(),
            body: serde_json::json!({"kind": "split_brain", "status": "firing", "node": "lb02"}),
        };
        assert_eq!(
            (h.kind(), h.status(), h.node(), h.severity()),
            ("split_brain", "firing", "lb02", "")
        );
        let text = Hook {
            at: Instant::now(),
            body: serde_json::Value::String("not json".into()),
        };
        assert_eq!(text.kind(), "");
    }
}
