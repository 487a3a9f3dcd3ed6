//! Measuring daemons in a lab: when an address appears in a host (a netlink
//! address-event subscription inside the host's namespace, made before the fault,
//! so the moment is the event's arrival, not a poll), optionally lined up just
//! after an advert from the master; and what a process tree costs (CPU time from
//! `/proc/PID/stat` in clock ticks and, finer, from every thread's
//! `/proc/PID/task/TID/schedstat` in ns; VmRSS from `/proc/PID/status`); how
//! on time a master's adverts were, from a tcpdump capture's kernel timestamps
//! (the longest gap and the jitter). Also the interrupt flag that
//! lets every wait here end early on Ctrl-C, so a lab is always dropped.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::netns::{Lab, LabError};
use splitguard_node::net::netlink::{self, NetEvent, Netlink, NetlinkError};
use splitguard_node::net::vrrp_socket::{Received, SocketError, VrrpSocket};
use splitguard_vrrp::wire::Endpoints;

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("netlink in the lab host: {0}")]
    Netlink(#[from] NetlinkError),
    #[error("{0}")]
    Socket(#[from] SocketError),
    #[error("start a runtime for the watcher: {0}")]
    Runtime(std::io::Error),
    #[error("{addr} is already on the watched host before the fault")]
    AlreadyPresent { addr: IpAddr },
    #[error("no advert from {master} within {within:?} to line the fault up with")]
    NoAdvert { master: IpAddr, within: Duration },
    #[error("the address watcher was not ready within {0:?}")]
    NotReady(Duration),
    #[error("{addr} did not appear within {within:?}")]
    Timeout { addr: IpAddr, within: Duration },
    #[error("the kernel dropped address events (ENOBUFS); the timing is lost")]
    Overrun,
    #[error("the netlink subscription ended")]
    SubscriptionEnded,
    #[error("cancelled: {0}")]
    Cancelled(String),
    #[error("interrupted")]
    Interrupted,
    #[error("read {path}: {source}")]
    Proc {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot parse {what}: {text:?}")]
    Parse { what: &'static str, text: String },
}

// ------------------------------------------------------------------ interrupt

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns SIGINT, SIGTERM and SIGHUP into a flag ([`interrupted`]) instead of an
/// exit, so the caller unwinds normally and every lab's Drop deletes its
/// namespaces. Waits in this module check the flag at least every 100 ms.
pub fn install_interrupt_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe;
        // a zeroed sigaction with sa_sigaction set is a valid plain handler.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Whether an interrupt arrived since [`install_interrupt_handler`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// [`sleep_unless_interrupted`] as a step of a run: `Err(interrupted)` when an
/// interrupt came meanwhile.
pub fn pause<E>(d: Duration, interrupted: E) -> Result<(), E> {
    if sleep_unless_interrupted(d) {
        Ok(())
    } else {
        Err(interrupted)
    }
}

/// Sleeps `d` in short steps; false when interrupted meanwhile.
pub fn sleep_unless_interrupted(d: Duration) -> bool {
    let deadline = Instant::now() + d;
    while !interrupted() {
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
    false
}

// -------------------------------------------------------------- address watch

/// Line the fault up with the advert cycle: wait for an advert from `master`
/// (priority above 0) heard in the watched host, and act right after it. Every run
/// then measures the whole Master_Down_Interval instead of a random part of it.
#[derive(Debug, Clone, Copy)]
pub struct Align {
    /// The master's address as VRRP names it: IPv4, or its IPv6 link-local.
    pub master: IpAddr,
    /// How long to wait for that advert.
    pub within: Duration,
}

/// What to watch for and how long.
#[derive(Debug, Clone, Copy)]
pub struct AddressWatch<'a> {
    pub host: &'a str,
    pub iface: &'a str,
    pub addr: IpAddr,
    pub align: Option<Align>,
    /// The longest the address may take to appear after `act` starts.
    pub bound: Duration,
}

/// How long the watcher may take to subscribe and check the starting state.
const READY_BOUND: Duration = Duration::from_secs(10);

/// Measures from just before `act` runs to the moment `watch.addr` is added in
/// `watch.host`. A thread entered into the host's namespace subscribes to
/// address events first (and checks the address is not there yet), then, when
/// aligned, waits for an advert; only then does `act` run on the calling thread,
/// with t0 taken just before it. t1 is when the address event is read. Bounded:
/// `bound` after t0, or the interrupt flag, ends the wait with an error.
pub fn time_to_address(
    lab: &Lab,
    watch: AddressWatch<'_>,
    act: impl FnOnce() -> Result<(), MeasureError>,
) -> Result<Duration, MeasureError> {
    let (t0, t1) = address_instants(lab, watch, act)?;
    Ok(t1.saturating_duration_since(t0))
}

/// As [`time_to_address`], but the two instants themselves (t0 just before
/// `act`, t1 when the address event was read), for lining the moment up with
/// other observations on this process's clock (an alert's arrival).
pub fn address_instants(
    lab: &Lab,
    watch: AddressWatch<'_>,
    act: impl FnOnce() -> Result<(), MeasureError>,
) -> Result<(Instant, Instant), MeasureError> {
    // The host's own address in the master's family: IPv6 adverts are heard
    // on a socket that sends from the link-local.
    let host = lab.host(watch.host)?.addr;
    let local = match watch.align.map(|a| a.master) {
        Some(IpAddr::V6(_)) => IpAddr::V6(crate::netns::lab_link_local(host)),
        _ => IpAddr::V4(host),
    };
    std::thread::scope(|s| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<String>();
        let watcher = s.spawn(move || {
            lab.within(watch.host, move || {
                watch_in_host(watch, local, ready_tx, cancel_rx)
            })
        });
        let ready_within = READY_BOUND + watch.align.map_or(Duration::ZERO, |a| a.within);
        match ready_rx.recv_timeout(ready_within) {
            Ok(()) => {}
            // The watcher gave up and says why.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(join(watcher)
                    .err()
                    .unwrap_or(MeasureError::NotReady(ready_within)));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = cancel_tx.send("not ready".into());
                let _ = join(watcher);
                return Err(MeasureError::NotReady(ready_within));
            }
        }
        let t0 = Instant::now();
        if let Err(e) = act() {
            let _ = cancel_tx.send(e.to_string());
            let _ = join(watcher);
            return Err(e);
        }
        let t1 = join(watcher)?;
        drop(cancel_tx);
        Ok((t0, t1))
    })
}

type Watcher<'scope> =
    std::thread::ScopedJoinHandle<'scope, Result<Result<Instant, MeasureError>, LabError>>;

/// The watcher's verdict; its panic, if any, goes on up.
fn join(watcher: Watcher<'_>) -> Result<Instant, MeasureError> {
    match watcher.join() {
        Ok(r) => r.map_err(MeasureError::from).and_then(|r| r),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The watcher's body, on a thread inside the watched host's namespace.
fn watch_in_host(
    watch: AddressWatch<'_>,
    local: IpAddr,
    ready: std::sync::mpsc::Sender<()>,
    mut cancel: tokio::sync::oneshot::Receiver<String>,
) -> Result<Instant, MeasureError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(MeasureError::Runtime)?;
    rt.block_on(async move {
        // Subscribed before anything else: no event after this point is missed.
        let mut events = netlink::subscribe()?;
        let nl = Netlink::connect()?;
        let link = nl.link_by_name(watch.iface).await?;
        if nl
            .addresses(link.index)
            .await?
            .iter()
            .any(|a| a.addr == watch.addr)
        {
            return Err(MeasureError::AlreadyPresent { addr: watch.addr });
        }
        if let Some(align) = watch.align {
            wait_for_advert(watch.iface, link.index, local, align).await?;
        }
        if ready.send(()).is_err() {
            return Err(MeasureError::Cancelled("the caller went away".into()));
        }
        let deadline = tokio::time::Instant::now() + watch.bound;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                biased;
                event = events.recv() => match event {
                    Some(NetEvent::AddrAdded(a)) if a.addr == watch.addr && a.index == link.index => {
                        return Ok(Instant::now());
                    }
                    Some(NetEvent::Overrun) => return Err(MeasureError::Overrun),
                    Some(_) => {}
                    None => return Err(MeasureError::SubscriptionEnded),
                },
                why = &mut cancel => {
                    return Err(MeasureError::Cancelled(why.unwrap_or_else(|_| "caller gone".into())));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(MeasureError::Timeout { addr: watch.addr, within: watch.bound });
                }
                _ = tick.tick() => {
                    if interrupted() {
                        return Err(MeasureError::Interrupted);
                    }
                }
            }
        }
    })
}

/// Waits until an advert from `align.master` with a priority above 0 is heard on
/// `iface` (a VRRP receive socket of our own, joined to 224.0.0.18 or
/// ff02::12). Call it on a thread inside the host whose `iface` it is; `local`
/// is that host's address of the master's family (IPv6: its link-local).
pub async fn wait_for_advert(
    iface: &str,
    ifindex: u32,
    local: IpAddr,
    align: Align,
) -> Result<(), MeasureError> {
    let socket = match local {
        IpAddr::V4(v4) => VrrpSocket::open_v4(iface, ifindex, v4, true)?,
        IpAddr::V6(v6) => VrrpSocket::open_v6(iface, ifindex, v6)?,
    };
    let deadline = tokio::time::Instant::now() + align.within;
    loop {
        let received = tokio::select! {
            r = socket.recv() => r.map_err(|source| MeasureError::Proc {
                path: format!("VRRP socket on {iface}"),
                source,
            })?,
            _ = tokio::time::sleep_until(deadline) => {
                return Err(MeasureError::NoAdvert { master: align.master, within: align.within });
            }
        };
        if interrupted() {
            return Err(MeasureError::Interrupted);
        }
        if let Received::Advert { ip, vrrp } = received
            && is_live_advert_from(&ip.endpoints, &vrrp, align.master)
        {
            return Ok(());
        }
    }
}

/// An advert from `master` that is not a priority-0 "I am leaving" one.
fn is_live_advert_from(endpoints: &Endpoints, vrrp: &[u8], master: IpAddr) -> bool {
    let from_master = endpoints.src() == master;
    // Byte 2 of a v2 or v3 advert is the priority.
    from_master && vrrp.get(2).is_some_and(|p| *p > 0)
}

// ------------------------------------------------------------ advert timing

/// One VRRP packet in a `tcpdump -n -tt` capture: when the capturing host's
/// kernel received it (time since the Unix epoch) and who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturedAdvert {
    pub at: Duration,
    pub src: std::net::Ipv4Addr,
    /// The priority tcpdump printed (`prio N`), when it printed one.
    pub priority: Option<u8>,
}

/// The VRRP packets of a `tcpdump -n -tt` text, for example
/// `1733524000.123456 IP 192.0.2.5 > 224.0.0.18: VRRPv3, Advertisement, vrid
/// 51, prio 150, intvl 10cs, length 12`. tcpdump's own lines (`listening on`,
/// the counts at exit) and anything else that does not parse are skipped.
pub fn parse_vrrp_capture(text: &str) -> Vec<CapturedAdvert> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let at = parse_epoch(words.next()?)?;
            if words.next()? != "IP" {
                return None;
            }
            let src = words.next()?.parse().ok()?;
            if !line.contains("VRRP") {
                return None;
            }
            let priority = line
                .split(", ")
                .find_map(|field| field.strip_prefix("prio ")?.parse().ok());
            Some(CapturedAdvert { at, src, priority })
        })
        .collect()
}

/// `1733524000.123456` (tcpdump `-tt`) as a time since the epoch, exactly (an
/// f64 would keep only about a microsecond at today's epoch seconds).
fn parse_epoch(word: &str) -> Option<Duration> {
    let (secs, frac) = word.split_once('.')?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = format!("{frac:0<9}").parse().ok()?;
    Some(Duration::new(secs.parse().ok()?, nanos))
}

/// The gaps between consecutive adverts that touch the window `from..=to`:
/// the adverts inside it, and the last one before it and the first after it,
/// so a silence across either edge counts in full. `times` in any order.
pub fn gaps_across(times: &[Duration], from: Duration, to: Duration) -> Vec<Duration> {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let first = sorted.iter().rposition(|t| *t < from).unwrap_or(0);
    let last = sorted
        .iter()
        .position(|t| *t > to)
        .unwrap_or(sorted.len().saturating_sub(1));
    sorted
        .get(first..=last)
        .unwrap_or_default()
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect()
}

/// How on time a master's adverts were.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdvertTiming {
    /// The longest gap between two adverts, ms: one missed advert makes it
    /// about twice the interval.
    pub max_gap_ms: f64,
    /// The 95th percentile (nearest rank) of |gap − interval|, ms: how far a
    /// usual advert strays from its slot, apart from the worst few.
    pub jitter_p95_ms: f64,
    pub gaps: usize,
}

/// [`AdvertTiming`] of `gaps` against the advert `interval`; None without gaps.
pub fn advert_timing(gaps: &[Duration], interval: Duration) -> Option<AdvertTiming> {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let max_gap = gaps.iter().max()?;
    let mut off: Vec<f64> = gaps.iter().map(|g| (ms(*g) - ms(interval)).abs()).collect();
    off.sort_by(f64::total_cmp);
    // Nearest rank: the smallest value with at least 95 % of them at or below it.
    let rank = (off.len() * 95).div_ceil(100).max(1);
    Some(AdvertTiming {
        max_gap_ms: ms(*max_gap),
        jitter_p95_ms: *off.get(rank - 1)?,
        gaps: gaps.len(),
    })
}

// ------------------------------------------------------------------ /proc

/// The fields of `/proc/PID/stat` the bench needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    pub ppid: u32,
    /// User and system CPU time, in clock ticks (`sysconf(_SC_CLK_TCK)`).
    pub utime: u64,
    pub stime: u64,
}

/// Parses one `/proc/PID/stat` line. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so fields are counted after the
/// last `)`: state is field 3, ppid 4, utime 14, stime 15.
pub fn parse_stat(text: &str) -> Result<ProcStat, MeasureError> {
    let bad = || MeasureError::Parse {
        what: "/proc/PID/stat",
        text: text.chars().take(200).collect(),
    };
    let open = text.find(" (").ok_or_else(bad)?;
    let close = text.rfind(')').ok_or_else(bad)?;
    let pid = text[..open].trim().parse().map_err(|_| bad())?;
    let rest: Vec<&str> = text
        .get(close + 1..)
        .ok_or_else(bad)?
        .split_whitespace()
        .collect();
    // rest[0] is field 3 (state), so field N is rest[N - 3].
    let field = |n: usize| -> Result<u64, MeasureError> {
        rest.get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(bad)
    };
    Ok(ProcStat {
        pid,
        ppid: u32::try_from(field(4)?).map_err(|_| bad())?,
        utime: field(14)?,
        stime: field(15)?,
    })
}

/// VmRSS in KiB from a `/proc/PID/status` text (None for kernel threads, which
/// have none).
pub fn parse_vmrss_kib(status: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        l.strip_prefix("VmRSS:")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// The on-CPU time in ns from a `/proc/PID/task/TID/schedstat` text (its first
/// field). The kernel updates it when the task is scheduled out, so it is exact
/// for a sleeping daemon and may lag for one that is running right now.
pub fn parse_schedstat_ns(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `root` and every process descending from it, from `(pid, ppid)` pairs.
pub fn descendants(root: u32, all: &[(u32, u32)]) -> Vec<u32> {
    let mut tree = vec![root];
    let mut i = 0;
    // Bounded: each pid is added at most once and `all` is finite.
    while i < tree.len() {
        let parent = tree[i];
        for (pid, ppid) in all {
            if *ppid == parent && !tree.contains(pid) {
                tree.push(*pid);
            }
        }
        i += 1;
    }
    tree
}

fn read_proc(path: &str) -> Result<String, MeasureError> {
    std::fs::read_to_string(path).map_err(|source| MeasureError::Proc {
        path: path.to_string(),
        source,
    })
}

/// Every process's stat line that can be read now (processes come and go).
fn all_stats() -> Result<Vec<ProcStat>, MeasureError> {
    let dir = std::fs::read_dir("/proc").map_err(|source| MeasureError::Proc {
        path: "/proc".into(),
        source,
    })?;
    Ok(dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|text| parse_stat(&text).ok())
        .collect())
}

/// One look at a process tree: CPU ticks per process, on-CPU ns per thread, and
/// the summed RSS.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeSample {
    pub at: Instant,
    /// utime + stime per pid.
    pub ticks: BTreeMap<u32, u64>,
    /// schedstat run time per thread id (empty where schedstat is unavailable).
    pub run_ns: BTreeMap<u32, u64>,
    pub rss_kib: u64,
}

/// `root` and every process under it now.
pub fn tree_pids(root: u32) -> Result<Vec<u32>, MeasureError> {
    let pairs: Vec<(u32, u32)> = all_stats()?.iter().map(|s| (s.pid, s.ppid)).collect();
    if !pairs.iter().any(|(pid, _)| *pid == root) {
        read_proc(&format!("/proc/{root}/stat"))?;
    }
    Ok(descendants(root, &pairs))
}

/// Sends `signal` to each of `pids` (ones that are gone already are skipped).
pub fn signal_all(pids: &[u32], signal: i32) {
    for &pid in pids {
        let Ok(pid) = i32::try_from(pid) else {
            continue;
        };
        // SAFETY: kill(2) has no memory effects; the pids are the lab's own daemons.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// A number in [0, 1) from the kernel's random source (the clock's
/// nanoseconds if that cannot be read), for placing a fault at a random phase.
pub fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    let bits = match read {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => {
            u64::from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0),
            ) << 32
        }
    };
    // The top 53 bits: every value exact in an f64, never 1.0.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Samples `root` and its descendants (keepalived's parent and VRRP child;
/// splitguard alone).
pub fn sample_tree(root: u32) -> Result<TreeSample, MeasureError> {
    let stats = all_stats()?;
    let pairs: Vec<(u32, u32)> = stats.iter().map(|s| (s.pid, s.ppid)).collect();
    if !pairs.iter().any(|(pid, _)| *pid == root) {
        // Say why in the words of the file that is missing.
        read_proc(&format!("/proc/{root}/stat"))?;
    }
    let tree = descendants(root, &pairs);
    let mut ticks = BTreeMap::new();
    let mut run_ns = BTreeMap::new();
    let mut rss_kib = 0;
    for s in stats.iter().filter(|s| tree.contains(&s.pid)) {
        ticks.insert(s.pid, s.utime + s.stime);
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", s.pid)) {
            rss_kib += parse_vmrss_kib(&status).unwrap_or(0);
        }
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", s.pid)) {
            for tid in tasks
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            {
                let path = format!("/proc/{}/task/{tid}/schedstat", s.pid);
                if let Some(ns) = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|t| parse_schedstat_ns(&t))
                {
                    run_ns.insert(tid, ns);
                }
            }
        }
    }
    Ok(TreeSample {
        at: Instant::now(),
        ticks,
        run_ns,
        rss_kib,
    })
}

/// CPU use between two samples as a percentage of one core: the ticks gained by
/// processes present in both, over the wall time between them.
pub fn cpu_percent(start: &TreeSample, end: &TreeSample, ticks_per_sec: u64) -> Option<f64> {
    let wall = end.at.checked_duration_since(start.at)?.as_secs_f64();
    if wall <= 0.0 || ticks_per_sec == 0 {
        return None;
    }
    let ticks: u64 = end
        .ticks
        .iter()
        .filter_map(|(pid, t)| Some(t.saturating_sub(*start.ticks.get(pid)?)))
        .sum();
    Some(ticks as f64 / ticks_per_sec as f64 / wall * 100.0)
}

/// The same from schedstat: on-CPU ns gained by threads present in both samples,
/// over the wall time. None when either sample has no schedstat data, or no
/// thread ran at all (a kernel without schedstat reads 0 everywhere).
pub fn cpu_percent_precise(start: &TreeSample, end: &TreeSample) -> Option<f64> {
    let wall = end.at.checked_duration_since(start.at)?.as_secs_f64();
    if wall <= 0.0 || start.run_ns.is_empty() || end.run_ns.is_empty() {
        return None;
    }
    if end.run_ns.values().all(|ns| *ns == 0) {
        return None;
    }
    let ns: u64 = end
        .run_ns
        .iter()
        .filter_map(|(tid, t)| Some(t.saturating_sub(*start.run_ns.get(tid)?)))
        .sum();
    Some(ns as f64 / 1e9 / wall * 100.0)
}

/// The kernel's clock ticks per second for `/proc/PID/stat` times.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(n).ok().filter(|n| *n > 0).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_after_the_last_parenthesis() {
        // A real keepalived line, shortened after field 17.
        let line = "4242 (keepalived) S 4241 4242 4242 0 -1 4194624 389 0 0 0 17 23 0 0 20 0 1";
        assert_eq!(
            parse_stat(line).ok(),
            Some(ProcStat {
                pid: 4242,
                ppid: 4241,
                utime: 17,
                stime: 23
            })
        );
        // A name with spaces and a parenthesis does not shift the fields.
        let odd = "77 (a b) c)) R 1 77 77 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0";
        let s = parse_stat(odd).expect("parses");
        assert_eq!((s.pid, s.ppid, s.utime, s.stime), (77, 1, 5, 6));
    }

    #[test]
    fn bad_stat_lines_are_errors_not_panics() {
        for bad in [
            "",
            "12",
            "12 (x",
            "x (y) S 1",
            "12 (y) S z 1 1 1 1 1 1 1 1 1 1 1",
        ] {
            assert!(parse_stat(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn vmrss_is_read_in_kib() {
        let status = "Name:\tsplitguard\nVmPeak:\t  20000 kB\nVmRSS:\t    5321 kB\nThreads:\t1\n";
        assert_eq!(parse_vmrss_kib(status), Some(5321));
        assert_eq!(parse_vmrss_kib("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn descendants_follow_ppid_links_transitively() {
        let all = [(1, 0), (10, 1), (11, 10), (12, 11), (13, 1), (14, 10)];
        let mut tree = descendants(10, &all);
        tree.sort_unstable();
        assert_eq!(tree, vec![10, 11, 12, 14]);
        assert_eq!(descendants(99, &all), vec![99]);
    }

    #[test]
    fn cpu_percent_counts_processes_present_at_both_ends() {
        let t = Instant::now();
        let start = TreeSample {
            at: t,
            ticks: [(1, 100), (2, 50), (3, 7)].into(),
            run_ns: [(1, 1_000_000), (2, 0), (3, 5)].into(),
            rss_kib: 0,
        };
        let end = TreeSample {
            at: t + Duration::from_secs(10),
            // pid 3 exited, pid 4 is new: neither counts.
            ticks: [(1, 110), (2, 60), (4, 1000)].into(),
            run_ns: [(1, 3_000_000), (2, 500_000), (4, 9_000_000_000)].into(),
            rss_kib: 0,
        };
        let pct = cpu_percent(&start, &end, 100).expect("some");
        // 20 ticks = 0.2 s over 10 s = 2 %.
        assert!((pct - 2.0).abs() < 1e-9, "{pct}");
        assert_eq!(cpu_percent(&end, &start, 100), None);
        // 2.5 ms over 10 s = 0.025 %.
        let fine = cpu_percent_precise(&start, &end).expect("some");
        assert!((fine - 0.025).abs() < 1e-9, "{fine}");
        let no_schedstat = TreeSample {
            run_ns: BTreeMap::new(),
            ..end.clone()
        };
        assert_eq!(cpu_percent_precise(&start, &no_schedstat), None);
    }

    #[test]
    fn schedstat_run_time_is_the_first_field() {
        assert_eq!(
            parse_schedstat_ns("160845909 5871711 531\n"),
            Some(160_845_909)
        );
        assert_eq!(parse_schedstat_ns(""), None);
        assert_eq!(parse_schedstat_ns("x 1 2"), None);
    }

    #[test]
    fn tcpdump_lines_give_time_source_and_priority() {
        use std::net::Ipv4Addr;
        let text = "tcpdump: verbose output suppressed, use -v[v]... for full protocol decode\n\
            listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n\
            1733524000.123456 IP 192.0.2.5 > 224.0.0.18: VRRPv3, Advertisement, vrid 51, prio 150, intvl 10cs, length 12\n\
            1733524000.2 IP 192.0.2.6 > 224.0.0.18: VRRPv2, Advertisement, vrid 51, prio 0, authtype simple, intvl 1s, length 20, addrs: 192.0.2.3 auth \"1111\"\n\
            1733524000.300000 IP 192.0.2.5 > 224.0.0.18: ip-proto-112 6\n\
            1733524000.x IP 192.0.2.5 > 224.0.0.18: VRRPv3, Advertisement\n\
            \n\
            3 packets captured\n";
        let got = parse_vrrp_capture(text);
        assert_eq!(
            got,
            vec![
                CapturedAdvert {
                    at: Duration::new(1_733_524_000, 123_456_000),
                    src: Ipv4Addr::new(192, 0, 2, 5),
                    priority: Some(150),
                },
                CapturedAdvert {
                    at: Duration::new(1_733_524_000, 200_000_000),
                    src: Ipv4Addr::new(192, 0, 2, 6),
                    priority: Some(0),
                },
            ]
        );
    }

    #[test]
    fn gaps_span_the_window_edges() {
        let s = |ms: u64| Duration::from_millis(ms);
        // Adverts every 100 ms but one missing at 400, shuffled.
        let times = [s(500), s(0), s(100), s(300), s(200), s(600), s(700)];
        // The window 250..=550: 200 (before) to 600 (after).
        assert_eq!(
            gaps_across(&times, s(250), s(550)),
            vec![s(100), s(200), s(100)]
        );
        // A window past the last advert still sees the last gap.
        assert_eq!(gaps_across(&times, s(800), s(900)), vec![]);
        assert_eq!(gaps_across(&times, s(650), s(900)), vec![s(100)]);
        assert_eq!(gaps_across(&[], s(0), s(1)), vec![]);
        assert_eq!(gaps_across(&[s(5)], s(0), s(10)), vec![]);
    }

    #[test]
    fn advert_timing_has_the_worst_gap_and_the_p95_deviation() {
        let interval = Duration::from_millis(100);
        // 99 gaps 1 ms off (early or late), one of 210 ms: a missed advert.
        let mut gaps: Vec<Duration> = (0..99)
            .map(|i| Duration::from_millis(if i % 2 == 0 { 101 } else { 99 }))
            .collect();
        gaps.push(Duration::from_millis(210));
        let t = advert_timing(&gaps, interval).expect("gaps");
        assert!((t.max_gap_ms - 210.0).abs() < 1e-9, "{t:?}");
        assert!((t.jitter_p95_ms - 1.0).abs() < 1e-9, "{t:?}");
        assert_eq!(t.gaps, 100);
        // Few gaps: the 95th percentile is the worst one.
        let few = [Duration::from_millis(1003), Duration::from_millis(990)];
        let t = advert_timing(&few, Duration::from_secs(1)).expect("gaps");
        assert!((t.jitter_p95_ms - 10.0).abs() < 1e-9, "{t:?}");
        assert_eq!(advert_timing(&[], interval), None);
    }

    #[test]
    fn only_live_adverts_from_the_master_line_up_a_fault() {
        use std::net::{Ipv4Addr, Ipv6Addr};
        let master = Ipv4Addr::new(192, 0, 2, 5);
        let from = |src| Endpoints::V4 {
            src,
            dst: Ipv4Addr::new(224, 0, 0, 18),
        };
        let advert = [0x21, 51, 150, 1];
        let m = IpAddr::V4(master);
        assert!(is_live_advert_from(&from(master), &advert, m));
        assert!(!is_live_advert_from(&from(master), &[0x21, 51, 0, 1], m));
        assert!(!is_live_advert_from(
            &from(Ipv4Addr::new(192, 0, 2, 6)),
            &advert,
            m
        ));
        assert!(!is_live_advert_from(&from(master), &[0x21], m));
        // IPv6: the master is its link-local.
        let ll: Ipv6Addr = "fe80::ff:fe00:5".parse().unwrap();
        let v6 = Endpoints::V6 {
            src: ll,
            dst: "ff02::12".parse().unwrap(),
        };
        assert!(is_live_advert_from(
            &v6,
            &[0x31, 51, 150, 10],
            IpAddr::V6(ll)
        ));
        assert!(!is_live_advert_from(&v6, &advert, m));
    }
}
