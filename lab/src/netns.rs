//! Building and tearing down a lab: namespaces, veth pairs into a bridge, addresses,
//! and running commands inside a host. Uses iproute2 (`ip`) so what a test does is
//! exactly what an operator would type to reproduce it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace a lab creates; `cleanup_stale` relies on it.
const NS_PREFIX: &str = "sg-";
/// The only prefix lab addresses may come from (RFC 5737 TEST-NET-1).
const TEST_NET_1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 0);
/// The lab's IPv6 prefix, inside the documentation prefix (RFC 3849): host
/// 192.0.2.N is also 2001:db8::N (N in hex, as written) in an IPv6 lab.
pub const LAB_V6_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0);

/// A lab host's IPv6 address: 2001:db8::N for 192.0.2.N.
pub fn lab_v6(addr: Ipv4Addr) -> Ipv6Addr {
    let mut o = LAB_V6_PREFIX.octets();
    o[15] = addr.octets()[3];
    Ipv6Addr::from(o)
}

/// A lab host's fixed MAC in an IPv6 lab, 02:00:00:00:00:NN for 192.0.2.N
/// (locally administered): its link-local address is then known in advance
/// and the same after the link goes down and up.
pub fn lab_mac(addr: Ipv4Addr) -> [u8; 6] {
    [2, 0, 0, 0, 0, addr.octets()[3]]
}

/// The EUI-64 link-local address the kernel forms from [`lab_mac`]:
/// fe80::ff:fe00:NN.
pub fn lab_link_local(addr: Ipv4Addr) -> Ipv6Addr {
    let m = lab_mac(addr);
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces")]
    NotRoot,
    #[error("lab address {0} is outside TEST-NET-1 192.0.2.0/24")]
    AddressOutsideTestNet(Ipv4Addr),
    #[error("lab host name {0:?} must be 1-8 characters of [a-z0-9]")]
    BadHostName(String),
    #[error("lab host {0:?} defined twice")]
    DuplicateHost(String),
    #[error("no lab host named {0:?}")]
    NoSuchHost(String),
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
}

/// A host in the lab: one namespace with `eth0` plugged into the bridge.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub netns: String,
    pub addr: Ipv4Addr,
    /// Its IPv6 address in an IPv6 lab ([`lab_v6`]).
    pub addr6: Option<Ipv6Addr>,
    /// The interface inside the host's namespace.
    pub iface: String,
    /// The bridge port (in the bridge namespace) this host's cable ends in.
    pub bridge_port: String,
}

pub struct LabBuilder {
    tag: String,
    hosts: Vec<(String, Ipv4Addr)>,
    ipv6: bool,
}

impl LabBuilder {
    /// Adds a host named `name` (also its namespace suffix) at `addr`/24.
    pub fn host(mut self, name: &str, addr: Ipv4Addr) -> Self {
        self.hosts.push((name.to_string(), addr));
        self
    }

    /// Gives every host an IPv6 address too: a fixed MAC ([`lab_mac`]) and so a
    /// known link-local, 2001:db8::N/64 beside 192.0.2.N/24, no duplicate
    /// address detection (addresses are usable at once, as IPv4 ones are), no
    /// router advertisements, and addresses kept while the link is down (so a
    /// link flap takes away only what it takes away for IPv4).
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    pub fn build(self) -> Result<Lab, LabError> {
        if !is_root() {
            return Err(LabError::NotRoot);
        }
        let mut seen = BTreeMap::new();
        for (name, addr) in &self.hosts {
            let ok_name = (1..=8).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !ok_name {
                return Err(LabError::BadHostName(name.clone()));
            }
            if addr.octets()[..3] != TEST_NET_1.octets()[..3] {
                return Err(LabError::AddressOutsideTestNet(*addr));
            }
            if seen.insert(name.clone(), *addr).is_some() {
                return Err(LabError::DuplicateHost(name.clone()));
            }
        }
        cleanup_stale();
        let n = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("{NS_PREFIX}{}-{}-{n}", self.tag, std::process::id());
        // The lab owns its namespaces from the first one on, so a failure half-way
        // is torn down by Drop like any other.
        let dir = std::env::temp_dir().join(&id);
        std::fs::create_dir_all(&dir).map_err(|source| LabError::Spawn {
            command: format!("mkdir {}", dir.display()),
            source,
        })?;
        let mut lab = Lab {
            bridge_netns: format!("{id}-br"),
            id,
            hosts: BTreeMap::new(),
            dir,
        };
        lab.create_bridge(self.ipv6)?;
        for (name, addr) in self.hosts {
            lab.add_host(&name, addr, self.ipv6)?;
        }
        Ok(lab)
    }
}

/// A running lab. Dropping it kills every process in its namespaces and deletes them.
pub struct Lab {
    id: String,
    bridge_netns: String,
    hosts: BTreeMap<String, Host>,
    /// Scratch files (configs, logs); see `process.rs`.
    pub(super) dir: std::path::PathBuf,
}

impl Lab {
    /// `tag` names the lab in namespace names (keep it short: a test's initials).
    pub fn builder(tag: &str) -> LabBuilder {
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect();
        LabBuilder {
            tag,
            hosts: Vec::new(),
            ipv6: false,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn bridge_netns(&self) -> &str {
        &self.bridge_netns
    }

    pub fn host(&self, name: &str) -> Result<&Host, LabError> {
        self.hosts
            .get(name)
            .ok_or_else(|| LabError::NoSuchHost(name.to_string()))
    }

    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values()
    }

    /// A command that runs inside `host`'s namespace (not yet started).
    ///
    /// The child joins the namespace before `spawn` returns (`setns` between fork
    /// and exec), not only once `ip netns exec` gets to it: a lab dropped right
    /// after a spawn must find the process in the namespace to kill it. `ip netns
    /// exec` still runs, for its per-namespace /sys and /etc/netns files.
    pub fn command<S: AsRef<OsStr>>(&self, host: &str, program: S) -> Result<Command, LabError> {
        let netns = self.host(host)?.netns.clone();
        let (_, file) = self.netns_file(host)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &netns]).arg(program);
        // SAFETY: the closure only calls setns(2), which is async-signal-safe, on
        // an fd opened before the fork; the fd is close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// Runs `f` on a fresh thread that has joined `host`'s network namespace, so the
    /// sockets and netlink connections `f` opens live in that host. The namespace
    /// is per thread; the caller's thread is untouched.
    pub fn within<F, R>(&self, host: &str, f: F) -> Result<R, LabError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let (path, file) = self.netns_file(host)?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    enter_netns(&path, &file)?;
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Like [`Lab::within`], but `f` runs on a detached thread the caller joins
    /// when it likes: for observers that live as long as a scenario (the
    /// gateway's ARP sampler and webhook receiver). The thread must end on its
    /// own (a bound or a stop signal): the lab's namespaces go when it is dropped.
    pub fn spawn_within<F, R>(
        &self,
        host: &str,
        f: F,
    ) -> Result<std::thread::JoinHandle<Result<R, LabError>>, LabError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (path, file) = self.netns_file(host)?;
        std::thread::Builder::new()
            .name(format!("lab-{host}"))
            .spawn(move || {
                enter_netns(&path, &file)?;
                Ok(f())
            })
            .map_err(|source| LabError::Spawn {
                command: format!("start a thread in {host}"),
                source,
            })
    }

    /// `host`'s namespace file, opened.
    fn netns_file(&self, host: &str) -> Result<(String, std::fs::File), LabError> {
        let path = format!("/run/netns/{}", self.host(host)?.netns);
        let file = std::fs::File::open(&path).map_err(|source| LabError::Spawn {
            command: format!("open {path}"),
            source,
        })?;
        Ok((path, file))
    }

    /// Runs `argv` inside `host` and returns its output; a non-zero exit is an error.
    pub fn run(&self, host: &str, argv: &[&str]) -> Result<Output, LabError> {
        let netns = self.host(host)?.netns.clone();
        let mut full = vec!["netns", "exec", &netns];
        full.extend_from_slice(argv);
        ip(&full)
    }

    /// Runs `argv` inside the bridge namespace (for faults on the segment).
    pub fn run_on_bridge(&self, argv: &[&str]) -> Result<Output, LabError> {
        let mut full = vec!["netns", "exec", &self.bridge_netns];
        full.extend_from_slice(argv);
        ip(&full)
    }

    /// Loads an nftables ruleset (`nft -f` syntax) in `host`, or on the bridge with
    /// `host = None`: the lab's fault injector (drops, random loss with
    /// `numgen random mod 100 < N drop`; this kernel has no netem).
    pub fn nft(&self, host: Option<&str>, ruleset: &str) -> Result<(), LabError> {
        let netns = match host {
            Some(h) => self.host(h)?.netns.clone(),
            None => self.bridge_netns.clone(),
        };
        let file = self.dir.join(format!(
            "nft-{netns}-{}.nft",
            LAB_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&file, ruleset).map_err(|source| LabError::Spawn {
            command: format!("write {}", file.display()),
            source,
        })?;
        let path = file.to_string_lossy().into_owned();
        ip(&["netns", "exec", &netns, "nft", "-f", &path])?;
        Ok(())
    }

    /// Brings `host`'s cable up or down at the bridge end: the host keeps its link
    /// state flag but no frame passes, like a pulled cable on the switch side.
    pub fn set_bridge_port(&self, host: &str, up: bool) -> Result<(), LabError> {
        let port = self.host(host)?.bridge_port.clone();
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.bridge_netns, "link", "set", &port, state])?;
        Ok(())
    }

    fn create_bridge(&mut self, ipv6: bool) -> Result<(), LabError> {
        let br = self.bridge_netns.clone();
        ip(&["netns", "add", &br])?;
        ip(&["-n", &br, "link", "set", "lo", "up"])?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        let set = |option: &str, value: &str| {
            ip(&[
                "-n", &br, "link", "set", "br0", "type", "bridge", option, value,
            ])
        };
        // No STP delay: ports forward at once, so tests don't wait 30 s for learning.
        set("forward_delay", "0")?;
        if ipv6 {
            // Flood multicast to every port: no MLD querier runs in the lab, and
            // solicitations to solicited-node groups and adverts to ff02::12 must
            // not depend on snooping state.
            set("mcast_snooping", "0")?;
        }
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        Ok(())
    }

    fn add_host(&mut self, name: &str, addr: Ipv4Addr, ipv6: bool) -> Result<(), LabError> {
        let netns = format!("{}-{name}", self.id);
        let port = format!("p-{name}");
        let br = self.bridge_netns.clone();
        ip(&["netns", "add", &netns])?;
        self.hosts.insert(
            name.to_string(),
            Host {
                name: name.to_string(),
                netns: netns.clone(),
                addr,
                addr6: ipv6.then(|| lab_v6(addr)),
                iface: "eth0".to_string(),
                bridge_port: port.clone(),
            },
        );
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &netns,
        ])?;
        ip(&["-n", &br, "link", "set", &port, "master", "br0"])?;
        ip(&["-n", &br, "link", "set", &port, "up"])?;
        let cidr = format!("{addr}/24");
        ip(&["-n", &netns, "addr", "add", &cidr, "dev", "eth0"])?;
        if ipv6 {
            let m = lab_mac(addr);
            let mac = format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            );
            ip(&["-n", &netns, "link", "set", "eth0", "address", &mac])?;
            for key in [
                "net.ipv6.conf.eth0.accept_dad=0",
                "net.ipv6.conf.eth0.keep_addr_on_down=1",
                "net.ipv6.conf.eth0.accept_ra=0",
            ] {
                ip(&["netns", "exec", &netns, "sysctl", "-qw", key])?;
            }
            let cidr6 = format!("{}/64", lab_v6(addr));
            ip(&[
                "-n", &netns, "-6", "addr", "add", &cidr6, "dev", "eth0", "nodad",
            ])?;
        }
        ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        Ok(())
    }
}

/// Moves the calling thread into the network namespace `file` (at `path`).
fn enter_netns(path: &str, file: &std::fs::File) -> Result<(), LabError> {
    // SAFETY: setns on a valid namespace fd affects only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(LabError::Spawn {
            command: format!("setns {path}"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut all: Vec<String> = self.hosts.values().map(|h| h.netns.clone()).collect();
        all.push(self.bridge_netns.clone());
        for ns in all {
            delete_netns(&ns);
        }
        // Keep the logs of a failed test for the person reading CI output.
        if std::thread::panicking() {
            eprintln!("lab {}: files kept in {}", self.id, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Kills everything running in `ns` (daemons that forked included) and deletes it.
fn delete_netns(ns: &str) {
    // A process forking while it is killed can leave a child the first listing
    // missed: list again until the namespace is empty (a few passes at most).
    for _ in 0..5 {
        let Ok(out) = Command::new("ip")
            .args(["netns", "pids", ns])
            .stderr(Stdio::null())
            .output()
        else {
            break;
        };
        let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: kill(2) has no memory effects; a pid that already exited
            // only yields ESRCH.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// Deletes lab namespaces left by processes that no longer exist (a test binary
/// killed by a signal has no chance to run Drop). Names carry the creator's pid.
pub fn cleanup_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if let Some(pid) = creator_pid(name)
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            delete_netns(name);
        }
    }
}

/// `sg-<tag>-<pid>-<n>-<host>` → pid.
fn creator_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NS_PREFIX)?;
    let mut parts = rest.split('-');
    let _tag = parts.next()?;
    parts.next()?.parse().ok()
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no memory effects.
    unsafe { libc::geteuid() == 0 }
}

fn ip(args: &[&str]) -> Result<Output, LabError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_lab_addresses_follow_the_ipv4_host_number() {
        let gw = Ipv4Addr::new(192, 0, 2, 254);
        assert_eq!(lab_v6(gw), "2001:db8::fe".parse::<Ipv6Addr>().unwrap());
        assert_eq!(lab_mac(gw), [2, 0, 0, 0, 0, 0xfe]);
        assert_eq!(
            lab_link_local(Ipv4Addr::new(192, 0, 2, 5)),
            "fe80::ff:fe00:5".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn creator_pid_is_read_from_names() {
        assert_eq!(creator_pid("sg-pair-4242-0-lb01"), Some(4242));
        assert_eq!(creator_pid("sg-pair-4242-0-br"), Some(4242));
        assert_eq!(creator_pid("other-4242"), None);
        assert_eq!(creator_pid("sg-x"), None);
    }

    #[test]
    fn addresses_outside_test_net_are_refused() {
        let err = Lab::builder("t")
            .host("a", Ipv4Addr::new(10, 0, 0, 3))
            .build()
            .err();
        // Not root is also a refusal; as root the address check must be what fails.
        match err {
            Some(LabError::AddressOutsideTestNet(a)) => assert_eq!(a, Ipv4Addr::new(10, 0, 0, 3)),
            Some(LabError::NotRoot) => assert!(!is_root()),
            other => panic!("unexpected: {other:?}"),
        }
    }
}
