//! Building and tearing down a lab: namespaces, veth pairs into a bridge, addresses,
//! and running commands inside a host. Uses iproute2 (`ip`) so what a test does is
//! exactly what an operator would type to reproduce it.
//!
//! A lab may have a second segment, the management segment (issue 20, a witness
//! on etcd): [`MANAGEMENT_NET`]/28 on a bridge of its own namespace
//! (`<lab id>-mg`), with an interface `mgmt0` in the data hosts that get a
//! management address ([`LabBuilder::management`]) and hosts that live on it
//! alone ([`LabBuilder::management_host`]: a namespace with only `lo` and
//! `mgmt0`). The management bridge has a namespace of its own, not a second
//! bridge beside the data segment's, so the data segment's faults (an `nft`
//! ruleset on the bridge, [`Lab::run_on_bridge`]) never reach it: partitioning
//! the data segment must leave the witness reachable, as separate switches do.

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
/// The management segment, 192.0.2.192/28 inside TEST-NET-1: a /28 on `mgmt0`
/// beside the data segment's /24 on `eth0`, so longest-prefix match sends a
/// data host's management traffic over `mgmt0`. Its hosts are .193 to .206.
pub const MANAGEMENT_NET: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 192);
/// The management segment's prefix length.
pub const MANAGEMENT_PREFIX_LEN: u8 = 28;
/// A host's interface on the management segment.
pub const MANAGEMENT_IFACE: &str = "mgmt0";
/// Namespace suffixes a lab uses for itself, so no host may take them.
const RESERVED_NAMES: [&str; 2] = ["br", "mg"];

/// Whether `addr` is a host address of the management segment (not its
/// network or broadcast address).
pub fn in_management_net(addr: Ipv4Addr) -> bool {
    let [a, b, c, d] = addr.octets();
    let [na, nb, nc, nd] = MANAGEMENT_NET.octets();
    (a, b, c) == (na, nb, nc) && d & 0xf0 == nd && d & 0x0f != 0 && d & 0x0f != 0x0f
}
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
    #[error("lab host name {0:?} is the lab's own (its bridge namespaces)")]
    ReservedHostName(String),
    #[error(
        "management address {0} is not a host address of the management segment 192.0.2.192/28"
    )]
    OutsideManagementNet(Ipv4Addr),
    #[error(
        "data address {0} lies in the management segment 192.0.2.192/28, which longest-prefix match sends over mgmt0"
    )]
    DataAddressInManagementNet(Ipv4Addr),
    #[error("lab address {0} given twice")]
    DuplicateAddress(Ipv4Addr),
    #[error("the lab has no management segment (LabBuilder::management)")]
    NoManagementSegment,
    #[error("lab host {host:?} is not on the {segment} segment")]
    NotOnSegment { host: String, segment: &'static str },
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

/// A host in the lab: one namespace with `eth0` plugged into the bridge, and
/// `mgmt0` into the management bridge when it has a management address. A
/// management-only host ([`LabBuilder::management_host`]) has `mgmt0` alone:
/// then `addr`, `iface` and `bridge_port` describe that link.
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
    /// Whether the host lives on the management segment alone (no data link).
    pub management_only: bool,
    /// Its link on the management segment, if it has one (a management-only
    /// host's is its only link, the same as `addr`, `iface`, `bridge_port`).
    pub management: Option<ManagementLink>,
}

/// A host's link on the management segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementLink {
    /// Its address, in [`MANAGEMENT_NET`]/28.
    pub addr: Ipv4Addr,
    /// The interface inside the host's namespace ([`MANAGEMENT_IFACE`]).
    pub iface: String,
    /// The port (in the management bridge's namespace) its cable ends in.
    pub port: String,
}

pub struct LabBuilder {
    tag: String,
    hosts: Vec<(String, Ipv4Addr)>,
    ipv6: bool,
    /// Management addresses of data hosts.
    management: Vec<(String, Ipv4Addr)>,
    /// Hosts on the management segment alone.
    management_hosts: Vec<(String, Ipv4Addr)>,
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

    /// Adds the management segment ([`MANAGEMENT_NET`]/28, its own bridge) and
    /// gives each named data host (added with [`LabBuilder::host`], before or
    /// after this call) an interface [`MANAGEMENT_IFACE`] at its address/28.
    /// IPv4 only, also in an IPv6 lab.
    pub fn management(mut self, links: &[(&str, Ipv4Addr)]) -> Self {
        self.management
            .extend(links.iter().map(|(name, addr)| (name.to_string(), *addr)));
        self
    }

    /// Adds a host that lives on the management segment alone (and so adds
    /// the segment): its own namespace with `lo` and [`MANAGEMENT_IFACE`] at
    /// `addr`/28, nothing on the data segment. For servers a pair reaches over
    /// management only, like the etcd members of [`crate::etcd`].
    pub fn management_host(mut self, name: &str, addr: Ipv4Addr) -> Self {
        self.management_hosts.push((name.to_string(), addr));
        self
    }

    fn check(&self) -> Result<(), LabError> {
        let mut seen = BTreeMap::new();
        let with_management = !self.management.is_empty() || !self.management_hosts.is_empty();
        for (name, addr) in self.hosts.iter().chain(&self.management_hosts) {
            let ok_name = (1..=8).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !ok_name {
                return Err(LabError::BadHostName(name.clone()));
            }
            if RESERVED_NAMES.contains(&name.as_str()) {
                return Err(LabError::ReservedHostName(name.clone()));
            }
            if addr.octets()[..3] != TEST_NET_1.octets()[..3] {
                return Err(LabError::AddressOutsideTestNet(*addr));
            }
            if seen.insert(name.clone(), *addr).is_some() {
                return Err(LabError::DuplicateHost(name.clone()));
            }
        }
        if with_management {
            // A data address inside the /28 would be reached over mgmt0.
            if let Some((_, addr)) = self.hosts.iter().find(|(_, a)| in_management_net(*a)) {
                return Err(LabError::DataAddressInManagementNet(*addr));
            }
        }
        let mut linked = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for (name, addr) in &self.management_hosts {
            if !in_management_net(*addr) {
                return Err(LabError::OutsideManagementNet(*addr));
            }
            if addrs.insert(*addr, ()).is_some() {
                return Err(LabError::DuplicateAddress(*addr));
            }
            linked.insert(name.clone(), ());
        }
        for (name, addr) in &self.management {
            if !self.hosts.iter().any(|(h, _)| h == name) {
                return Err(LabError::NoSuchHost(name.clone()));
            }
            if addr.octets()[..3] != TEST_NET_1.octets()[..3] {
                return Err(LabError::AddressOutsideTestNet(*addr));
            }
            if !in_management_net(*addr) {
                return Err(LabError::OutsideManagementNet(*addr));
            }
            if linked.insert(name.clone(), ()).is_some() {
                return Err(LabError::DuplicateHost(name.clone()));
            }
            if addrs.insert(*addr, ()).is_some() {
                return Err(LabError::DuplicateAddress(*addr));
            }
        }
        Ok(())
    }

    pub fn build(self) -> Result<Lab, LabError> {
        if !is_root() {
            return Err(LabError::NotRoot);
        }
        self.check()?;
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
            management_netns: None,
            id,
            hosts: BTreeMap::new(),
            dir,
        };
        lab.create_bridge(self.ipv6)?;
        for (name, addr) in self.hosts {
            lab.add_host(&name, addr, self.ipv6)?;
        }
        if !self.management.is_empty() || !self.management_hosts.is_empty() {
            lab.create_management_bridge()?;
            for (name, addr) in self.management {
                lab.add_management_link(&name, addr)?;
            }
            for (name, addr) in self.management_hosts {
                lab.add_management_host(&name, addr)?;
            }
        }
        Ok(lab)
    }
}

/// A running lab. Dropping it kills every process in its namespaces and deletes them.
pub struct Lab {
    id: String,
    bridge_netns: String,
    /// The management bridge's namespace, when the lab has the segment.
    management_netns: Option<String>,
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
            management: Vec::new(),
            management_hosts: Vec::new(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn bridge_netns(&self) -> &str {
        &self.bridge_netns
    }

    /// The management bridge's namespace, if the lab has the management segment.
    pub fn management_netns(&self) -> Option<&str> {
        self.management_netns.as_deref()
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

    /// Runs `argv` inside the management bridge's namespace (for faults on the
    /// management segment).
    pub fn run_on_management(&self, argv: &[&str]) -> Result<Output, LabError> {
        let netns = self.management_ns()?;
        let mut full = vec!["netns", "exec", netns];
        full.extend_from_slice(argv);
        ip(&full)
    }

    /// Brings `host`'s cable up or down at the bridge end: the host keeps its link
    /// state flag but no frame passes, like a pulled cable on the switch side.
    pub fn set_bridge_port(&self, host: &str, up: bool) -> Result<(), LabError> {
        let h = self.host(host)?;
        if h.management_only {
            return Err(LabError::NotOnSegment {
                host: host.to_string(),
                segment: "data",
            });
        }
        let port = h.bridge_port.clone();
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.bridge_netns, "link", "set", &port, state])?;
        Ok(())
    }

    /// [`Lab::set_bridge_port`] on the management segment: cuts `host` off the
    /// management segment alone (its data link, if any, stays as it is).
    pub fn set_management_port(&self, host: &str, up: bool) -> Result<(), LabError> {
        let port = self
            .host(host)?
            .management
            .as_ref()
            .ok_or_else(|| LabError::NotOnSegment {
                host: host.to_string(),
                segment: "management",
            })?
            .port
            .clone();
        let netns = self.management_ns()?;
        let state = if up { "up" } else { "down" };
        ip(&["-n", netns, "link", "set", &port, state])?;
        Ok(())
    }

    fn management_ns(&self) -> Result<&str, LabError> {
        self.management_netns
            .as_deref()
            .ok_or(LabError::NoManagementSegment)
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
                management_only: false,
                management: None,
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

impl Lab {
    /// The management segment's bridge, in a namespace of its own (see the
    /// module's documentation for why not beside the data bridge).
    fn create_management_bridge(&mut self) -> Result<(), LabError> {
        let mg = format!("{}-mg", self.id);
        ip(&["netns", "add", &mg])?;
        // Owned from here on: Drop deletes it whatever fails next.
        self.management_netns = Some(mg.clone());
        ip(&["-n", &mg, "link", "set", "lo", "up"])?;
        ip(&["-n", &mg, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            &mg,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        ip(&["-n", &mg, "link", "set", "br0", "up"])?;
        Ok(())
    }

    /// Plugs data host `name` into the management bridge: `mgmt0` at `addr`/28.
    fn add_management_link(&mut self, name: &str, addr: Ipv4Addr) -> Result<(), LabError> {
        let netns = self.host(name)?.netns.clone();
        let link = self.plug_management(&netns, name, addr)?;
        if let Some(host) = self.hosts.get_mut(name) {
            host.management = Some(link);
        }
        Ok(())
    }

    /// A host on the management segment alone: a namespace with `lo` and
    /// `mgmt0` at `addr`/28.
    fn add_management_host(&mut self, name: &str, addr: Ipv4Addr) -> Result<(), LabError> {
        let netns = format!("{}-{name}", self.id);
        ip(&["netns", "add", &netns])?;
        let port = format!("m-{name}");
        self.hosts.insert(
            name.to_string(),
            Host {
                name: name.to_string(),
                netns: netns.clone(),
                addr,
                addr6: None,
                iface: MANAGEMENT_IFACE.to_string(),
                bridge_port: port.clone(),
                management_only: true,
                management: None,
            },
        );
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        let link = self.plug_management(&netns, name, addr)?;
        if let Some(host) = self.hosts.get_mut(name) {
            host.management = Some(link);
        }
        Ok(())
    }

    /// A veth from the management bridge (port `m-<name>`) to `mgmt0` in
    /// `netns`, at `addr`/28, both ends up.
    fn plug_management(
        &self,
        netns: &str,
        name: &str,
        addr: Ipv4Addr,
    ) -> Result<ManagementLink, LabError> {
        let mg = self.management_ns()?;
        let port = format!("m-{name}");
        ip(&[
            "-n",
            mg,
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            MANAGEMENT_IFACE,
            "netns",
            netns,
        ])?;
        ip(&["-n", mg, "link", "set", &port, "master", "br0"])?;
        ip(&["-n", mg, "link", "set", &port, "up"])?;
        let cidr = format!("{addr}/{MANAGEMENT_PREFIX_LEN}");
        ip(&["-n", netns, "addr", "add", &cidr, "dev", MANAGEMENT_IFACE])?;
        ip(&["-n", netns, "link", "set", MANAGEMENT_IFACE, "up"])?;
        Ok(ManagementLink {
            addr,
            iface: MANAGEMENT_IFACE.to_string(),
            port,
        })
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
        all.extend(self.management_netns.clone());
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
/// Such a lab's directory stays, for its logs, but its bulky scratch goes:
/// directories named `*.data` (etcd's, [`crate::etcd`], preallocate 128 MB).
pub fn cleanup_stale() {
    let gone = |name: &str| {
        creator_pid(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(name) = line.split_whitespace().next()
                && gone(name)
            {
                delete_netns(name);
            }
        }
    }
    let Ok(dirs) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for dir in dirs.flatten() {
        if !dir.file_name().to_str().is_some_and(gone) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "data") && path.is_dir() {
                let _ = std::fs::remove_dir_all(&path);
            }
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
        assert_eq!(creator_pid("sg-etcd-4242-0-mg"), Some(4242));
        assert_eq!(creator_pid("sg-etcd-4242-0-s1"), Some(4242));
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

    #[test]
    fn management_addresses_are_checked() {
        let a = |d| Ipv4Addr::new(192, 0, 2, d);
        let lb = || Lab::builder("t").host("lb01", a(5));
        assert!(lb().management(&[("lb01", a(197))]).check().is_ok());
        assert!(lb().management_host("s1", a(201)).check().is_ok());
        // Outside the /28, or its network or broadcast address.
        for d in [5, 191, 192, 207, 208] {
            assert!(matches!(
                lb().management(&[("lb01", a(d))]).check(),
                Err(LabError::OutsideManagementNet(x)) if x == a(d)
            ));
            assert!(matches!(
                lb().management_host("s1", a(d)).check(),
                Err(LabError::OutsideManagementNet(x)) if x == a(d)
            ));
        }
        assert!(matches!(
            lb().management(&[("lb01", Ipv4Addr::new(10, 0, 0, 197))])
                .check(),
            Err(LabError::AddressOutsideTestNet(_))
        ));
        assert!(matches!(
            lb().management(&[("lb02", a(198))]).check(),
            Err(LabError::NoSuchHost(h)) if h == "lb02"
        ));
        assert!(matches!(
            lb().management(&[("lb01", a(197))])
                .management_host("s1", a(197))
                .check(),
            Err(LabError::DuplicateAddress(x)) if x == a(197)
        ));
        assert!(matches!(
            lb().management_host("lb01", a(201)).check(),
            Err(LabError::DuplicateHost(h)) if h == "lb01"
        ));
        assert!(matches!(
            lb().host("x", a(200)).management_host("s1", a(201)).check(),
            Err(LabError::DataAddressInManagementNet(x)) if x == a(200)
        ));
        // Without a management segment, .200 is an ordinary data address.
        assert!(lb().host("x", a(200)).check().is_ok());
        for name in ["br", "mg"] {
            assert!(matches!(
                lb().management_host(name, a(201)).check(),
                Err(LabError::ReservedHostName(_))
            ));
        }
    }
}
