//! A three-instance Alertmanager cluster on the lab's management segment
//! (issue 22, Alertmanager in HA): Debian's `prometheus-alertmanager` (0.25) in
//! management-only hosts am1, am2, am3 at 192.0.2.193-.195
//! ([`LabBuilder::alertmanager_hosts`]), gossiping with each other, and a
//! webhook receiver in host `amhook` (.196) that records every notification
//! the cluster sends ([`AmCluster::notifications`]). Read with `amtool`, the
//! way an operator would.
//!
//! What Alertmanager 0.25 does here, and the code relies on:
//! - Alerts are not gossiped, only silences and the notification log: an
//!   instance lists an alert only if it was posted to it, so a client must
//!   post to each. The notification log is what dedupes: after `group_wait`,
//!   the instance at position p (by the sorted member names) waits
//!   p × `--cluster.peer-timeout` and sends only if no peer's log entry for
//!   the group has arrived by then. So with gossip far quicker than the peer
//!   timeout, the cluster notifies once.
//! - An instance starts notifying only once the cluster has settled (the
//!   member count steady for a few gossip rounds) or `--cluster.settle-timeout`
//!   passed; [`AmCluster::start`] waits for every member to say `ready`.
//! - A member killed with SIGKILL is dropped from the others' member lists
//!   after a failed probe and the suspicion time (about a second at the
//!   probe timings below).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::netns::{Lab, LabBuilder, LabError};
use super::process::LabProcess;

/// The members: management-only hosts on [`crate::netns::MANAGEMENT_NET`]/28.
pub const MEMBERS: [(&str, Ipv4Addr); 3] = [
    ("am1", Ipv4Addr::new(192, 0, 2, 193)),
    ("am2", Ipv4Addr::new(192, 0, 2, 194)),
    ("am3", Ipv4Addr::new(192, 0, 2, 195)),
];
/// The host of the cluster's webhook receiver.
pub const HOOK_HOST: (&str, Ipv4Addr) = ("amhook", Ipv4Addr::new(192, 0, 2, 196));
pub const API_PORT: u16 = 9093;
pub const GOSSIP_PORT: u16 = 9094;
pub const HOOK_PORT: u16 = 9099;
/// The Debian binary and its package.
pub const BINARY: &str = "/usr/bin/prometheus-alertmanager";
const AMTOOL: &str = "/usr/bin/amtool";
const PACKAGE: &str = "prometheus-alertmanager";
/// How long [`AmCluster::start`] waits for every member to be ready.
pub const START_BOUND: Duration = Duration::from_secs(30);
/// The position wait per member: long beside gossip (50 ms), short for a test.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(2);
/// The route's `group_wait`.
pub const GROUP_WAIT: Duration = Duration::from_secs(1);
/// How long after the first notification a duplicate could still come: the
/// last member's position wait, plus generous slack.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(12);
/// The receiver stops by itself after this long (a lab lives minutes).
const HOOK_LIMIT: Duration = Duration::from_secs(900);
const POLL: Duration = Duration::from_millis(200);
const TAIL: usize = 15;

#[derive(Debug, thiserror::Error)]
pub enum AmError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("{0} is missing: install the Debian package {PACKAGE} (contrib/test.sh does)")]
    Missing(&'static str),
    #[error("no Alertmanager member {0}")]
    NoSuchMember(usize),
    #[error("the webhook receiver did not start: {0}")]
    Hook(String),
    #[error("Alertmanager: no {what} within {within:?}{logs}")]
    Timeout {
        what: String,
        within: Duration,
        logs: String,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Amtool {
        command: String,
        status: String,
        stderr: String,
    },
}

impl LabBuilder {
    /// Adds the members ([`MEMBERS`]) and the receiver's host ([`HOOK_HOST`])
    /// as management-only hosts, and so the management segment.
    pub fn alertmanager_hosts(self) -> Self {
        MEMBERS
            .iter()
            .chain([&HOOK_HOST])
            .fold(self, |b, (name, addr)| b.management_host(name, *addr))
    }
}

struct Member {
    name: &'static str,
    addr: Ipv4Addr,
    process: Option<LabProcess>,
    /// Its log once it is gone.
    old_log: Option<std::path::PathBuf>,
}

/// The running cluster and its receiver. Borrows its lab, so it is dropped
/// (members killed, receiver stopped) before the lab's namespaces go.
pub struct AmCluster<'lab> {
    lab: &'lab Lab,
    members: Vec<Member>,
    hook: HookReceiver,
}

impl<'lab> AmCluster<'lab> {
    /// Starts the receiver and a member in each of am1, am2, am3 (the lab
    /// must have them: [`LabBuilder::alertmanager_hosts`]), each peering with
    /// the other two, and waits, at most [`START_BOUND`], until every member
    /// says the cluster is ready with all three in it.
    pub fn start(lab: &'lab Lab) -> Result<AmCluster<'lab>, AmError> {
        for tool in [BINARY, AMTOOL] {
            if !Path::new(tool).exists() {
                return Err(AmError::Missing(tool));
            }
        }
        let hook = HookReceiver::start(lab)?;
        let config = lab.write_file("alertmanager.yml", &route_config(&hook.url))?;
        let mut cluster = AmCluster {
            lab,
            members: MEMBERS
                .iter()
                .map(|(name, addr)| Member {
                    name,
                    addr: *addr,
                    process: None,
                    old_log: None,
                })
                .collect(),
            hook,
        };
        for i in 0..MEMBERS.len() {
            cluster.spawn(i, &config)?;
        }
        cluster.wait_members(MEMBERS.len(), &[0, 1, 2], START_BOUND)?;
        Ok(cluster)
    }

    /// Each member's API base URL, `http://192.0.2.193:9093` and on.
    pub fn urls(&self) -> Vec<String> {
        self.members.iter().map(|m| api_url(m.addr)).collect()
    }

    /// Member `i`'s address.
    pub fn addr(&self, i: usize) -> Result<Ipv4Addr, AmError> {
        Ok(self.member(i)?.addr)
    }

    /// SIGKILLs member `i` (a crash), then waits until every other member's
    /// list has dropped it.
    pub fn kill(&mut self, i: usize) -> Result<(), AmError> {
        let m = self.members.get_mut(i).ok_or(AmError::NoSuchMember(i))?;
        if let Some(mut p) = m.process.take() {
            p.kill();
            m.old_log = Some(p.log.clone());
        }
        let alive: Vec<usize> = (0..self.members.len()).filter(|j| *j != i).collect();
        self.wait_members(alive.len(), &alive, START_BOUND)
    }

    /// Every notification the receiver got so far (Alertmanager's webhook
    /// bodies, version 4), in arrival order.
    pub fn notifications(&self) -> Vec<serde_json::Value> {
        self.hook.bodies()
    }

    /// The alerts member `i` lists (`amtool alert query -o json`, asked in
    /// its own host): what was posted to it, alerts being not gossiped.
    pub fn alerts(&self, i: usize) -> Result<Vec<serde_json::Value>, AmError> {
        let out = self.amtool(i, &["alert", "query", "-o", "json"])?;
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// The last `lines` lines of every member's log, under headers.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut text = String::new();
        for m in &self.members {
            let log = m
                .process
                .as_ref()
                .map(|p| p.log.clone())
                .or(m.old_log.clone());
            let Some(log) = log else { continue };
            let all = std::fs::read_to_string(&log).unwrap_or_default();
            let all: Vec<&str> = all.lines().collect();
            let tail = all[all.len().saturating_sub(lines)..].join("\n    ");
            text.push_str(&format!("\n  --- {} ---\n    {tail}", m.name));
        }
        if let Some(e) = self.hook.error() {
            text.push_str(&format!("\n  --- receiver stopped: {e}"));
        }
        text
    }

    fn member(&self, i: usize) -> Result<&Member, AmError> {
        self.members.get(i).ok_or(AmError::NoSuchMember(i))
    }

    /// Starts member `i`, peering with the others.
    fn spawn(&mut self, i: usize, config: &Path) -> Result<(), AmError> {
        let lab = self.lab;
        let peers: Vec<String> = MEMBERS
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (_, addr))| format!("--cluster.peer={addr}:{GOSSIP_PORT}"))
            .collect();
        let m = self.members.get_mut(i).ok_or(AmError::NoSuchMember(i))?;
        let storage = lab.dir().join(format!("alertmanager-{}.data", m.name));
        let args = [
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", storage.display()),
            format!("--web.listen-address={}:{API_PORT}", m.addr),
            format!("--cluster.listen-address={}:{GOSSIP_PORT}", m.addr),
            format!("--cluster.advertise-address={}:{GOSSIP_PORT}", m.addr),
            "--cluster.gossip-interval=50ms".into(),
            "--cluster.pushpull-interval=1s".into(),
            "--cluster.settle-timeout=10s".into(),
            format!("--cluster.peer-timeout={}s", PEER_TIMEOUT.as_secs()),
            "--cluster.probe-interval=200ms".into(),
            "--cluster.probe-timeout=100ms".into(),
            "--cluster.reconnect-interval=1s".into(),
        ];
        let mut argv: Vec<&str> = vec![BINARY];
        argv.extend(args.iter().map(String::as_str));
        argv.extend(peers.iter().map(String::as_str));
        m.process = Some(lab.spawn(m.name, &format!("alertmanager-{}", m.name), &argv)?);
        Ok(())
    }

    /// Waits until each member in `asked` runs and says the cluster is
    /// `ready` with `count` members.
    fn wait_members(
        &mut self,
        count: usize,
        asked: &[usize],
        within: Duration,
    ) -> Result<(), AmError> {
        let deadline = Instant::now() + within;
        loop {
            let mut ok = true;
            for &i in asked {
                if let Some(p) = self.members[i].process.as_mut()
                    && p.try_exit().is_some()
                {
                    return Err(
                        self.timeout(format!("{} (it exited)", self.members[i].name), within)
                    );
                }
                let status = self
                    .amtool(i, &["cluster", "show", "-o", "json"])
                    .ok()
                    .and_then(|out| serde_json::from_slice::<serde_json::Value>(&out).ok());
                let ready = status.as_ref().is_some_and(|s| {
                    s["status"] == "ready"
                        && s["peers"].as_array().is_some_and(|p| p.len() == count)
                });
                ok &= ready;
            }
            if ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.timeout(format!("ready cluster of {count} members"), within));
            }
            std::thread::sleep(POLL);
        }
    }

    /// `amtool ARGS` against member `i`, in its own host; stdout.
    fn amtool(&self, i: usize, args: &[&str]) -> Result<Vec<u8>, AmError> {
        let m = self.member(i)?;
        let mut cmd = self.lab.command(m.name, AMTOOL)?;
        cmd.arg(format!("--alertmanager.url={}", api_url(m.addr)))
            .arg("--timeout=2s")
            .args(args)
            .stdin(Stdio::null());
        let command = format!("{cmd:?}");
        let out = cmd.output().map_err(|source| LabError::Spawn {
            command: command.clone(),
            source,
        })?;
        if !out.status.success() {
            return Err(AmError::Amtool {
                command,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }

    fn timeout(&self, what: String, within: Duration) -> AmError {
        AmError::Timeout {
            what,
            within,
            logs: self.log_tails(TAIL),
        }
    }
}

impl Drop for AmCluster<'_> {
    /// Kills every member (their data goes with the lab's directory); the
    /// receiver stops when its field drops.
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut p) = m.process.take() {
                p.kill();
            }
        }
    }
}

fn api_url(addr: Ipv4Addr) -> String {
    format!("http://{addr}:{API_PORT}")
}

/// One route to the receiver, grouped by alert name, timers short for a lab;
/// resolved notices too, as by default.
fn route_config(hook_url: &str) -> String {
    format!(
        "route:\n  receiver: hook\n  group_by: ['alertname']\n  group_wait: {}s\n  group_interval: 5s\n  repeat_interval: 1h\n\
         receivers:\n  - name: hook\n    webhook_configs:\n      - url: {hook_url}\n        send_resolved: true\n",
        GROUP_WAIT.as_secs()
    )
}

// ---------------------------------------------------------------- receiver

#[derive(Debug, Default)]
struct Received {
    bodies: Vec<serde_json::Value>,
    error: Option<String>,
}

fn lock(r: &Mutex<Received>) -> MutexGuard<'_, Received> {
    // A panic while holding the lock leaves plain data; keep reading it.
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// A small HTTP receiver in [`HOOK_HOST`]: takes each POST, keeps its JSON
/// body, answers 200. Stops when dropped, or after [`HOOK_LIMIT`].
struct HookReceiver {
    url: String,
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), LabError>>>,
}

impl HookReceiver {
    fn start(lab: &Lab) -> Result<HookReceiver, AmError> {
        let (host, addr) = HOOK_HOST;
        lab.host(host)?;
        let received = Arc::new(Mutex::new(Received::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (r, s) = (Arc::clone(&received), Arc::clone(&stop));
        let thread = lab.spawn_within(host, move || {
            if let Err(e) = serve(addr, &r, &s, ready_tx) {
                lock(&r).error = Some(e);
            }
        })?;
        let mut me = HookReceiver {
            url: format!("http://{addr}:{HOOK_PORT}/hook"),
            received,
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(me),
            Ok(Err(e)) => Err(AmError::Hook(e)),
            Err(_) => {
                me.shutdown();
                Err(AmError::Hook("not listening within 10 s".into()))
            }
        }
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        lock(&self.received).bodies.clone()
    }

    fn error(&self) -> Option<String> {
        lock(&self.received).error.clone()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HookReceiver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The receiver's loop, inside its host: accepts until `stop` or the limit.
fn serve(
    addr: Ipv4Addr,
    received: &Mutex<Received>,
    stop: &AtomicBool,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> Result<(), String> {
    let listener = match std::net::TcpListener::bind((addr, HOOK_PORT))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
    {
        Ok(l) => l,
        Err(e) => {
            let e = format!("listen on {addr}:{HOOK_PORT}: {e}");
            let _ = ready.send(Err(e.clone()));
            return Err(e);
        }
    };
    let _ = ready.send(Ok(()));
    let deadline = Instant::now() + HOOK_LIMIT;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                // One bad request must not stop the receiver.
                if let Ok(Some(body)) = read_post(stream) {
                    let value = serde_json::from_slice(&body).unwrap_or_else(|_| {
                        serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
                    });
                    lock(received).bodies.push(value);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
    Ok(())
}

/// Reads one request (headers, then a Content-Length body), answers 200 and
/// closes; the body of a POST.
fn read_post(mut stream: std::net::TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::{Read as _, Write as _};
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(None);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length.min(1 << 20) {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    Ok(head.starts_with("post ").then_some(body))
}
