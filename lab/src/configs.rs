//! The lab's standard HA pair and its daemon configs, shared by the integration
//! tests and `splitguard lab bench`: lb01 (.5), lb02 (.6) and gw (.254) on one
//! bridge, one instance VI_1 (VRID 51) on `eth0` with VIP 192.0.2.3/24, as a
//! splitguard TOML config and as the equivalent keepalived 2.2.7 config, and how
//! each daemon is started inside a lab host. The `_in` variants take the
//! address family: in IPv6 the pair runs VRRPv3 over IPv6 with the VIP
//! 2001:db8::3/64 (adverts from the hosts' link-locals), in a lab built with
//! [`pair_lab6`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use splitguard_vrrp::wire::Family;
use std::path::Path;

use super::netns::{Lab, LabError};
use super::process::LabProcess;
use super::report::Implementation;

/// The pair's virtual IP (without prefix length; it is a /24).
pub const VIP: &str = "192.0.2.3";
pub const VIP_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
pub const LB01_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 5);
pub const LB02_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 6);
pub const GW_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// The pair's VRID and its VRRPv2 PASS password, as [`sg_config`] and
/// [`ka_config`] write them (for a host that must speak to the pair's instance).
pub const VRID: u8 = 51;
pub const AUTH_PASS: &str = "1111";
/// The pair's IPv6 VIP (a /64) in an IPv6 lab.
pub const VIP6: &str = "2001:db8::3";
pub const VIP6_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);

/// The pair's VIP in `family`.
pub fn vip_in(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => VIP,
        Family::Ipv6 => VIP6,
    }
}

/// A lab host's address in `family` (2001:db8::N for 192.0.2.N).
pub fn addr_in(host: Ipv4Addr, family: Family) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(host),
        Family::Ipv6 => IpAddr::V6(crate::netns::lab_v6(host)),
    }
}

/// What VRRP calls a host's address in `family`: the IPv4 address, or the
/// link-local that IPv6 adverts come from.
pub fn vrrp_addr_in(host: Ipv4Addr, family: Family) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(host),
        Family::Ipv6 => IpAddr::V6(crate::netns::lab_link_local(host)),
    }
}

/// The pair lab for `family`.
pub fn pair_lab_in(tag: &str, family: Family) -> Result<Lab, LabError> {
    match family {
        Family::Ipv4 => pair_lab(tag),
        Family::Ipv6 => pair_lab6(tag),
    }
}

/// A lab with hosts lb01, lb02 and gw; `tag` names it (see [`Lab::builder`]).
pub fn pair_lab(tag: &str) -> Result<Lab, LabError> {
    pair(tag).build()
}

/// The same pair lab with IPv6 too ([`crate::LabBuilder::ipv6`]): lb01, lb02
/// and gw at 2001:db8::5, ::6 and ::fe, link-locals fe80::ff:fe00:5, :6, :fe.
pub fn pair_lab6(tag: &str) -> Result<Lab, LabError> {
    pair(tag).ipv6().build()
}

/// The hostile host of a flood lab ([`flood_lab`]), on the pair's segment.
pub const FLOOD_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);
/// The fencing lab's fourth host ([`fence_rogue_lab`]).
pub const ROGUE_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 67);

/// The IPv4 pair lab with a fourth host, `flood` at [`FLOOD_ADDR`], to send
/// [`crate::flood::flood`] from (issue 19; the flood is IPv4 only).
pub fn flood_lab(tag: &str) -> Result<Lab, LabError> {
    pair(tag).host("flood", FLOOD_ADDR).build()
}

fn pair(tag: &str) -> crate::LabBuilder {
    Lab::builder(tag)
        .host("lb01", LB01_ADDR)
        .host("lb02", LB02_ADDR)
        .host("gw", GW_ADDR)
}

/// A splitguard config for `node`: one instance VI_1 on eth0 with VIP .3/24,
/// `interval` in the config's syntax (`"1s"`, `"100ms"`), PASS auth `1111` for
/// VRRPv2; state and control socket in the lab directory. `extra` is appended
/// as is (for example an `[arbiter]` table).
pub fn sg_config(
    lab: &Lab,
    node: &str,
    priority: u8,
    version: u8,
    interval: &str,
    extra: &str,
) -> String {
    sg_config_in(lab, node, priority, version, interval, extra, Family::Ipv4)
}

/// [`sg_config`] in `family`: for IPv6, VRRPv3 (whatever `version` says), the
/// VIP 2001:db8::3/64 and no label (IPv6 addresses have none).
pub fn sg_config_in(
    lab: &Lab,
    node: &str,
    priority: u8,
    version: u8,
    interval: &str,
    extra: &str,
    family: Family,
) -> String {
    let dir = lab.dir().display();
    if family == Family::Ipv6 {
        return format!(
            "node = \"{node}\"\nstate_dir = \"{dir}/{node}-state\"\ncontrol_socket = \"{dir}/{node}.sock\"\n\n\
             [[instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\n\
             advert_interval = \"{interval}\"\nversion = 3\nvips = [\"{VIP6}/64\"]\n{extra}"
        );
    }
    let auth = if version == 2 {
        "auth_pass = \"1111\"\n"
    } else {
        ""
    };
    format!(
        "node = \"{node}\"\nstate_dir = \"{dir}/{node}-state\"\ncontrol_socket = \"{dir}/{node}.sock\"\n\n\
         [[instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\n\
         advert_interval = \"{interval}\"\nversion = {version}\n{auth}vips = [\"{VIP}/24\"]\n\
         vip_label = \"eth0:1\"\n{extra}"
    )
}

/// Where [`sg_config`] puts `node`'s control socket.
pub fn sg_socket(lab: &Lab, node: &str) -> std::path::PathBuf {
    lab.dir().join(format!("{node}.sock"))
}

/// The `[arbiter]` table of each splitguard flavour (`peer`: the other node).
pub fn arbiter_table(imp: Implementation, peer: Ipv4Addr) -> String {
    arbiter_table_in(imp, peer, Family::Ipv4)
}

/// [`arbiter_table`] in `family`: gw and the peer by their addresses of that
/// family.
pub fn arbiter_table_in(imp: Implementation, peer: Ipv4Addr, family: Family) -> String {
    let gw = addr_in(GW_ADDR, family);
    let peer = addr_in(peer, family);
    match imp {
        Implementation::Splitguard => {
            format!("\n[arbiter]\nreferences = [\"{gw}\"]\npeers = [\"{peer}\"]\n")
        }
        Implementation::SplitguardNoEarly => format!(
            "\n[arbiter]\nreferences = [\"{gw}\"]\npeers = [\"{peer}\"]\n\
             early_takeover = false\n"
        ),
        _ => "\n[arbiter]\nenabled = false\n".to_string(),
    }
}

/// A webhook channel to `url` and the alert timing the lab uses (group wait 1 s;
/// criticals go at once): appended to a splitguard or watch config.
pub fn webhook_tables(url: &str) -> String {
    format!(
        "\n[[channel]]\ntype = \"webhook\"\nname = \"gw\"\nurl = \"{url}\"\n\n\
         [alerts]\ngroup_wait = \"1s\"\n"
    )
}

/// The control socket of `splitguard watch` on `node` (see [`watch_config`]).
pub fn watch_socket(lab: &Lab, node: &str) -> std::path::PathBuf {
    lab.dir().join(format!("watch-{node}.sock"))
}

/// A `splitguard watch` config for `node` beside keepalived: the pair's VIP on
/// eth0 in `role` ("backup" or "master"), paging `hook_url`; state, control
/// socket (`watch-<node>.sock`) and events file in the lab directory.
pub fn watch_config(lab: &Lab, node: &str, role: &str, hook_url: &str) -> String {
    watch_config_in(lab, node, role, hook_url, Family::Ipv4)
}

/// [`watch_config`] for the pair's VIP in `family`.
pub fn watch_config_in(
    lab: &Lab,
    node: &str,
    role: &str,
    hook_url: &str,
    family: Family,
) -> String {
    let dir = lab.dir().display();
    let vip = vip_in(family);
    format!(
        "node = \"{node}\"\nstate_dir = \"{dir}/watch-{node}-state\"\n\
         control_socket = \"{}\"\nevents_file = \"{dir}/watch-{node}-events.jsonl\"\n\n\
         [[watch]]\nvip = \"{vip}\"\ninterface = \"eth0\"\nrole = \"{role}\"\n{}",
        watch_socket(lab, node).display(),
        webhook_tables(hook_url)
    )
}

/// Starts `splitguard watch` (the binary at `bin`) in `host` with `config`,
/// written to `watch-<host>.toml`; the log is `splitguard-watch-<host>`.
pub fn start_watch(
    lab: &Lab,
    host: &str,
    bin: &Path,
    config: &str,
) -> Result<LabProcess, LabError> {
    spawn_splitguard(lab, host, bin, "watch", &format!("watch-{host}"), config)
}

/// A keepalived 2.2.7 config equivalent to [`sg_config`]; `interval` is
/// keepalived's `advert_int` in seconds (`"1"`, `"0.1"`; fractions need v3).
pub fn ka_config(node: &str, priority: u8, version: u8, interval: &str) -> String {
    ka_config_in(node, priority, version, interval, Family::Ipv4)
}

/// [`ka_config`] in `family`: for IPv6, VRRPv3 and the VIP 2001:db8::3/64,
/// which makes keepalived's instance an IPv6 one (adverts from the link-local
/// to ff02::12); no label, which keepalived ignores on IPv6.
pub fn ka_config_in(
    node: &str,
    priority: u8,
    version: u8,
    interval: &str,
    family: Family,
) -> String {
    if family == Family::Ipv6 {
        return format!(
            "global_defs {{\n  router_id {node}\n  vrrp_version 3\n}}\n\
             vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
             priority {priority}\n  advert_int {interval}\n  virtual_ipaddress {{\n    {VIP6}/64 dev eth0\n  }}\n}}\n"
        );
    }
    let auth = if version == 2 {
        "  authentication {\n    auth_type PASS\n    auth_pass 1111\n  }\n"
    } else {
        ""
    };
    format!(
        "global_defs {{\n  router_id {node}\n  vrrp_version {version}\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
         priority {priority}\n  advert_int {interval}\n{auth}  virtual_ipaddress {{\n    {VIP}/24 dev eth0 label eth0:1\n  }}\n}}\n"
    )
}

/// The most instances a scale lab can give an IPv4 VIP each: TEST-NET-1 has 256
/// addresses, less the network and broadcast addresses and the three hosts.
pub const MAX_SCALE_INSTANCES: usize = 251;

/// The VIP of instance `k` (0-based) in a scale lab: every TEST-NET-1 address
/// but .0, .255 and the hosts' .5, .6 and .254, in order (.1 to .4, then .7 on).
pub fn scale_vip(k: usize) -> Option<Ipv4Addr> {
    (1u8..=253)
        .filter(|x| ![5, 6].contains(x))
        .nth(k)
        .map(|x| Ipv4Addr::new(192, 0, 2, x))
}

/// The port of `/metrics` in a scale lab's splitguard configs, on the node's
/// own address.
pub const SCALE_METRICS_PORT: u16 = 9745;

/// Where `node`'s `/metrics` listens in a scale lab ([`sg_scale_config`]).
pub fn scale_metrics_addr(lab: &Lab, node: &str) -> Result<std::net::SocketAddr, LabError> {
    Ok((lab.host(node)?.addr, SCALE_METRICS_PORT).into())
}

/// A splitguard config for `node` with `n` instances VI_1..VI_n (VRID k, VIP
/// [`scale_vip`]`(k - 1)`/24) on eth0, all at `priority`, VRRPv3 at `interval`;
/// state and control socket in the lab directory, `/metrics` on
/// [`scale_metrics_addr`]; `extra` appended as is. None when `n` is above
/// [`MAX_SCALE_INSTANCES`] or `node` is not a host of `lab`.
pub fn sg_scale_config(
    lab: &Lab,
    node: &str,
    priority: u8,
    n: usize,
    interval: &str,
    extra: &str,
) -> Option<String> {
    sg_scale_config_version(lab, node, priority, n, 3, interval, extra)
}

/// [`sg_scale_config`] for VRRP `version` 2 or 3; v2 instances carry the PASS
/// auth `1111` of [`sg_config`], as keepalived's do in [`ka_scale_config_version`].
pub fn sg_scale_config_version(
    lab: &Lab,
    node: &str,
    priority: u8,
    n: usize,
    version: u8,
    interval: &str,
    extra: &str,
) -> Option<String> {
    let dir = lab.dir().display();
    let auth = if version == 2 {
        "auth_pass = \"1111\"\n"
    } else {
        ""
    };
    let metrics = scale_metrics_addr(lab, node).ok()?;
    let mut out = format!(
        "node = \"{node}\"\nstate_dir = \"{dir}/{node}-state\"\ncontrol_socket = \"{dir}/{node}.sock\"\n\
         metrics_listen = \"{metrics}\"\n{extra}\n"
    );
    for k in 1..=n {
        let vip = scale_vip(k - 1)?;
        out.push_str(&format!(
            "\n[[instance]]\nname = \"VI_{k}\"\ninterface = \"eth0\"\nvrid = {k}\npriority = {priority}\n\
             advert_interval = \"{interval}\"\nversion = {version}\n{auth}vips = [\"{vip}/24\"]\n"
        ));
    }
    Some(out)
}

/// A keepalived 2.2.7 config equivalent to [`sg_scale_config`]; `interval` is
/// keepalived's `advert_int` in seconds.
pub fn ka_scale_config(node: &str, priority: u8, n: usize, interval: &str) -> Option<String> {
    ka_scale_config_version(node, priority, n, 3, interval)
}

/// [`ka_scale_config`] for VRRP `version` 2 or 3 (v2 with PASS auth `1111`, as
/// [`ka_config`]).
pub fn ka_scale_config_version(
    node: &str,
    priority: u8,
    n: usize,
    version: u8,
    interval: &str,
) -> Option<String> {
    let auth = if version == 2 {
        "  authentication {\n    auth_type PASS\n    auth_pass 1111\n  }\n"
    } else {
        ""
    };
    let mut out = format!("global_defs {{\n  router_id {node}\n  vrrp_version {version}\n}}\n");
    for k in 1..=n {
        let vip = scale_vip(k - 1)?;
        out.push_str(&format!(
            "vrrp_instance VI_{k} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {k}\n  \
             priority {priority}\n  advert_int {interval}\n{auth}  virtual_ipaddress {{\n    {vip}/24 dev eth0\n  }}\n}}\n"
        ));
    }
    Some(out)
}

/// How many of the first `n` scale VIPs `host` has on its eth0 (`ip addr`).
pub fn scale_vips_held(lab: &Lab, host: &str, n: usize) -> Result<usize, LabError> {
    let out = lab.run(host, &["ip", "-br", "-4", "addr", "show", "dev", "eth0"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let held: std::collections::BTreeSet<&str> = text
        .split_whitespace()
        .filter_map(|w| w.strip_suffix("/24"))
        .collect();
    Ok((0..n)
        .filter_map(scale_vip)
        .filter(|v| held.contains(v.to_string().as_str()))
        .count())
}

fn path_str(path: &Path) -> Result<&str, LabError> {
    path.to_str().ok_or_else(|| LabError::Spawn {
        command: format!("use path {}", path.display()),
        source: std::io::Error::other("path is not UTF-8"),
    })
}

/// Starts `splitguard run` (the binary at `bin`) in `host` with `config`, which is
/// written to `<host>.toml` in the lab directory; the log is `splitguard-<host>`.
pub fn start_splitguard(
    lab: &Lab,
    host: &str,
    bin: &Path,
    config: &str,
) -> Result<LabProcess, LabError> {
    spawn_splitguard(lab, host, bin, "run", host, config)
}

/// Starts `splitguard <command> -c <name>.toml` (the binary at `bin`) in
/// `host`, with `config` written to `<name>.toml` in the lab directory; the
/// log is `splitguard-<name>`.
pub fn spawn_splitguard(
    lab: &Lab,
    host: &str,
    bin: &Path,
    command: &str,
    name: &str,
    config: &str,
) -> Result<LabProcess, LabError> {
    let path = lab.write_file(&format!("{name}.toml"), config)?;
    lab.spawn(
        host,
        &format!("splitguard-{name}"),
        &[path_str(bin)?, command, "-c", path_str(&path)?],
    )
}

/// Starts keepalived (VRRP only, foreground, logging to its log file) in `host`,
/// with pid files in the lab directory so parallel labs never collide. The
/// process started is keepalived's parent; it forks the VRRP child.
pub fn start_keepalived(lab: &Lab, host: &str, config: &str) -> Result<LabProcess, LabError> {
    let conf = lab.write_file(&format!("{host}-keepalived.conf"), config)?;
    let dir = lab.dir();
    let pid = dir.join(format!("{host}-keepalived.pid"));
    let vpid = dir.join(format!("{host}-vrrp.pid"));
    lab.spawn(
        host,
        &format!("keepalived-{host}"),
        &[
            "keepalived",
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--vrrp",
            "-f",
            path_str(&conf)?,
            "-p",
            path_str(&pid)?,
            "-r",
            path_str(&vpid)?,
        ],
    )
}

/// Whether `host` has the VIP configured on its eth0 (asked with `ip addr`).
pub fn holds_vip(lab: &Lab, host: &str) -> Result<bool, LabError> {
    holds_vip_in(lab, host, Family::Ipv4)
}

/// [`holds_vip`] for the pair's VIP in `family`.
pub fn holds_vip_in(lab: &Lab, host: &str, family: Family) -> Result<bool, LabError> {
    let flag = match family {
        Family::Ipv4 => "-4",
        Family::Ipv6 => "-6",
    };
    let out = lab.run(host, &["ip", "-br", flag, "addr", "show", "dev", "eth0"])?;
    Ok(String::from_utf8_lossy(&out.stdout).contains(&format!("{}/", vip_in(family))))
}

/// The confirm path's port in the witness lab.
pub const CONFIRM_PORT: u16 = 8727;
/// The confirm path's shared secret in the witness lab.
pub const CONFIRM_SECRET: &str = "lab-witness-confirm-secret";

/// A pair lab with a management segment (lb01 .197, lb02 .198) and the
/// three etcd members s1-s3 on it (.201-.203): the witness lab.
pub fn witness_lab(tag: &str) -> Result<Lab, LabError> {
    managed_pair(tag).etcd_members().build()
}

/// A pair lab with a management segment (lb01 .197, lb02 .198) and a
/// three-instance Alertmanager cluster's hosts am1-am3 on it (.193-.195),
/// with its webhook receiver's host (.196): [`crate::alertmanager`].
pub fn alertmanager_lab(tag: &str) -> Result<Lab, LabError> {
    managed_pair(tag).alertmanager_hosts().build()
}

/// The standard pair (lb01, lb02, gw) with both nodes on a management
/// segment (lb01 .197, lb02 .198): what the witness and fencing labs add to.
fn managed_pair(tag: &str) -> crate::LabBuilder {
    pair(tag).management(&[
        ("lb01", crate::etcd::LB01_MGMT),
        ("lb02", crate::etcd::LB02_MGMT),
    ])
}

/// The `[arbiter]` and `[witness]` tables of `node` (lb01 or lb02) in the
/// witness lab: gw as the reference, ownership probing off (so the witness
/// alone referees), the etcd cluster at `endpoints`, lease `ttl` ("3s"), and
/// the confirm path between the nodes' management addresses.
pub fn witness_tables(node: &str, endpoints: &[String], ttl: &str) -> String {
    let (me, peer) = if node == "lb01" {
        (crate::etcd::LB01_MGMT, crate::etcd::LB02_MGMT)
    } else {
        (crate::etcd::LB02_MGMT, crate::etcd::LB01_MGMT)
    };
    let etcd = endpoints
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "\n[arbiter]\nreferences = [\"{GW_ADDR}\"]\nownership_probe = false\n\n\
         [witness]\netcd = [{etcd}]\ncluster = \"lab\"\nlease_ttl = \"{ttl}\"\n\
         confirm_listen = \"{me}:{CONFIRM_PORT}\"\nconfirm_peer = \"{peer}:{CONFIRM_PORT}\"\n\
         confirm_secret = \"{CONFIRM_SECRET}\"\n"
    )
}

// ------------------------------------------------------------ the routed pair

/// The routed pair (issue 20's seventh row): lb01 and lb02 on two /26s of
/// TEST-NET-1 with a router namespace `rt` between them, unicast VRRP across
/// it, and the management segment and etcd members of [`witness_lab`].
///
/// - Segment A, 192.0.2.0/26 on the lab's bridge `br0`: rt's eth0 at .1,
///   lb01 at .5 ([`LB01_ADDR`]).
/// - Segment B, 192.0.2.64/26 on a second bridge [`ROUTED_BRIDGE`] in the same
///   bridge namespace: rt's eth1 at .65, lb02 at .70.
/// - Each node's default route is its router address; rt forwards (the
///   sysctl is its namespace's own).
/// - The VIP [`ROUTED_VIP`]/32 lies outside both /26s and goes on the
///   holder's eth0: a neighbour on one segment cannot tell who holds it, so
///   owners are counted from the nodes' own address lists
///   ([`holds_routed_vip`]).
pub const ROUTED_VIP: &str = "192.0.2.130";
pub const ROUTED_VIP_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 130);
/// The routed segments' prefix length.
pub const ROUTED_PREFIX_LEN: u8 = 26;
/// rt on segment A (lb01's router) and on segment B (lb02's).
pub const RT_A_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const RT_B_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 65);
/// lb02 on segment B (lb01 keeps [`LB01_ADDR`] on segment A).
pub const ROUTED_LB02_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 70);
/// Segment B's bridge, beside the lab's `br0` in its bridge namespace.
pub const ROUTED_BRIDGE: &str = "br1";
/// rt's interface on segment B.
pub const RT_B_IFACE: &str = "eth1";
/// VRRP (IP protocol 112) dropped where rt forwards, in table `inet routedcut`:
/// the seventh row's fault, VRRP lost between the nodes while everything else
/// (the arbiter's echoes, the management segment) still passes.
pub const ROUTED_VRRP_DROP: &str = "table inet routedcut {\n chain forward {\n  type filter hook forward priority 0;\n  meta l4proto 112 drop\n }\n}\n";

/// The routed pair lab: see [`ROUTED_VIP`]. Built from the lab's own builder
/// (lb01, lb02 and rt on `br0`, the management segment, the etcd members),
/// then re-cabled with `ip` the way an operator would: lb02's port moves to a
/// second bridge, rt gets a leg on it, the /24s become /26s, and the nodes
/// route through rt. Everything lives in the lab's namespaces and goes with
/// them.
pub fn routed_lab(tag: &str) -> Result<Lab, LabError> {
    let lab = Lab::builder(tag)
        .host("lb01", LB01_ADDR)
        .host("lb02", ROUTED_LB02_ADDR)
        .host("rt", RT_A_ADDR)
        .management(&[
            ("lb01", crate::etcd::LB01_MGMT),
            ("lb02", crate::etcd::LB02_MGMT),
        ])
        .etcd_members()
        .build()?;
    let br = lab.bridge_netns().to_owned();
    let lb02_port = lab.host("lb02")?.bridge_port.clone();
    let rt_port = format!("p-rt{}", RT_B_IFACE.trim_start_matches("eth"));
    lab.run_on_bridge(&[
        "ip",
        "link",
        "add",
        ROUTED_BRIDGE,
        "type",
        "bridge",
        "forward_delay",
        "0",
    ])?;
    lab.run_on_bridge(&["ip", "link", "set", ROUTED_BRIDGE, "up"])?;
    lab.run_on_bridge(&["ip", "link", "set", &lb02_port, "master", ROUTED_BRIDGE])?;
    lab.run(
        "rt",
        &[
            "ip", "link", "add", RT_B_IFACE, "type", "veth", "peer", "name", &rt_port, "netns", &br,
        ],
    )?;
    lab.run_on_bridge(&["ip", "link", "set", &rt_port, "master", ROUTED_BRIDGE])?;
    lab.run_on_bridge(&["ip", "link", "set", &rt_port, "up"])?;
    for (host, addr) in [
        ("lb01", LB01_ADDR),
        ("lb02", ROUTED_LB02_ADDR),
        ("rt", RT_A_ADDR),
    ] {
        lab.run(
            host,
            &["ip", "addr", "del", &format!("{addr}/24"), "dev", "eth0"],
        )?;
        lab.run(
            host,
            &[
                "ip",
                "addr",
                "add",
                &format!("{addr}/{ROUTED_PREFIX_LEN}"),
                "dev",
                "eth0",
            ],
        )?;
    }
    lab.run(
        "rt",
        &[
            "ip",
            "addr",
            "add",
            &format!("{RT_B_ADDR}/{ROUTED_PREFIX_LEN}"),
            "dev",
            RT_B_IFACE,
        ],
    )?;
    lab.run("rt", &["ip", "link", "set", RT_B_IFACE, "up"])?;
    lab.run("rt", &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    for node in ["lb01", "lb02"] {
        let via = routed_router_of(node).to_string();
        lab.run(node, &["ip", "route", "add", "default", "via", &via])?;
    }
    Ok(lab)
}

/// `node`'s router in the routed lab: rt's address on its segment (its
/// default route and its arbiter reference).
pub fn routed_router_of(node: &str) -> Ipv4Addr {
    if node == "lb01" { RT_A_ADDR } else { RT_B_ADDR }
}

/// The other node's address in the routed lab (its unicast VRRP peer).
pub fn routed_peer_of(node: &str) -> Ipv4Addr {
    if node == "lb01" {
        ROUTED_LB02_ADDR
    } else {
        LB01_ADDR
    }
}

/// A splitguard config for `node` in the routed lab: one instance VI_1
/// (VRID 51, VRRPv2 with 1 s adverts and PASS auth `1111`, as [`sg_config`])
/// on eth0 with the VIP [`ROUTED_VIP`]/32, unicast to the other node;
/// state, control socket and events file (`<node>-events.jsonl`) in the lab
/// directory. `extra` is appended as is (the `[arbiter]` and `[witness]`
/// tables).
pub fn routed_sg_config(lab: &Lab, node: &str, priority: u8, extra: &str) -> String {
    let dir = lab.dir().display();
    let peer = routed_peer_of(node);
    format!(
        "node = \"{node}\"\nstate_dir = \"{dir}/{node}-state\"\ncontrol_socket = \"{dir}/{node}.sock\"\n\
         events_file = \"{dir}/{node}-events.jsonl\"\n\n\
         [[instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvrid = {VRID}\npriority = {priority}\n\
         advert_interval = \"1s\"\nversion = 2\nauth_pass = \"{AUTH_PASS}\"\n\
         vips = [\"{ROUTED_VIP}/32\"]\nunicast_peers = [\"{peer}\"]\n{extra}"
    )
}

/// The routed lab's `[arbiter]` table without a witness: `node`'s router as
/// the reference and ownership probing off (a neighbour on one segment cannot
/// see the other's claim anyway).
pub fn routed_arbiter_table(node: &str) -> String {
    format!(
        "\n[arbiter]\nreferences = [\"{}\"]\nownership_probe = false\n",
        routed_router_of(node)
    )
}

/// [`witness_tables`] for the routed lab: the same `[witness]` (etcd and the
/// confirm path over the management segment), `node`'s router as the
/// arbiter's reference instead of gw.
pub fn routed_witness_tables(node: &str, endpoints: &[String], ttl: &str) -> String {
    witness_tables(node, endpoints, ttl).replace(
        &format!("references = [\"{GW_ADDR}\"]"),
        &format!("references = [\"{}\"]", routed_router_of(node)),
    )
}

/// keepalived's config for `node` in the routed lab: [`ka_config`]'s
/// instance (VRRPv2, 1 s, PASS `1111`) with `unicast_src_ip`, the other node
/// as `unicast_peer`, and the VIP [`ROUTED_VIP`]/32 on eth0.
pub fn ka_unicast_config(node: &str, priority: u8) -> String {
    let me = if node == "lb01" {
        LB01_ADDR
    } else {
        ROUTED_LB02_ADDR
    };
    ka_config(node, priority, 2, "1")
        .replace(
            &format!("    {VIP}/24 dev eth0 label eth0:1\n"),
            &format!("    {ROUTED_VIP}/32 dev eth0\n"),
        )
        .replace(
            "  virtual_ipaddress {",
            &format!(
                "  unicast_src_ip {me}\n  unicast_peer {{\n    {}\n  }}\n  virtual_ipaddress {{",
                routed_peer_of(node)
            ),
        )
}

/// Whether `host` has [`ROUTED_VIP`] on its eth0 (asked with `ip addr`).
pub fn holds_routed_vip(lab: &Lab, host: &str) -> Result<bool, LabError> {
    let out = lab.run(host, &["ip", "-br", "-4", "addr", "show", "dev", "eth0"])?;
    Ok(String::from_utf8_lossy(&out.stdout).contains(&format!("{ROUTED_VIP}/")))
}

/// A pair lab with a management segment (lb01 .197, lb02 .198) and the BMC
/// hosts on it: `bmc1` (.204, lb01's), `bmc2` (.205, lb02's) and `rfbmc`
/// (.206, Redfish): the fencing lab.
pub fn fence_lab(tag: &str) -> Result<Lab, LabError> {
    managed_pair(tag).bmc_hosts().build()
}

/// The fencing lab with a fourth data host, `rogue` at [`ROGUE_ADDR`]: a
/// host that can be made to answer for the peer's address and the VIP (an
/// address conflict, or a spoofer), for `peer_mac`.
pub fn fence_rogue_lab(tag: &str) -> Result<Lab, LabError> {
    managed_pair(tag)
        .host("rogue", ROGUE_ADDR)
        .bmc_hosts()
        .build()
}

/// The fencing lab with the three etcd members on its management segment:
/// the witness's confirm path is the daemons' direct health path.
pub fn fence_witness_lab(tag: &str) -> Result<Lab, LabError> {
    managed_pair(tag).etcd_members().bmc_hosts().build()
}

/// The `[[fence]]` table by which `node` (lb01 or lb02) fences the other
/// through `fence_ipmilan` at the other's IPMI BMC in the fencing lab, with
/// no start limit (`fence_min_uptime = "0s"`); `extra` adds keys to it.
/// `cipher = 3` and `power_wait = 0` keep a call to a fraction of a second
/// against `ipmi_sim`.
pub fn fence_ipmi_table(node: &str, password: &str, extra: &str) -> String {
    let (peer, bmc) = if node == "lb01" {
        (LB02_ADDR, crate::bmc::IPMI_ADDR2)
    } else {
        (LB01_ADDR, crate::bmc::IPMI_ADDR)
    };
    let user = crate::bmc::BMC_USER;
    format!(
        "\n[[fence]]\npeer = \"{peer}\"\nagent = \"fence_ipmilan\"\n\
         options = {{ ip = \"{bmc}\", username = \"{user}\", password = \"{password}\", \
         lanplus = 1, cipher = 3, power_wait = 0, power_timeout = 5 }}\n\
         fence_min_uptime = \"0s\"\n{extra}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_vips_fill_test_net_1_around_the_hosts() {
        let vips: Vec<Ipv4Addr> = (0..MAX_SCALE_INSTANCES)
            .map(|k| scale_vip(k).expect("within the pool"))
            .collect();
        assert_eq!(vips[0], Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(vips[4], Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(vips[MAX_SCALE_INSTANCES - 1], Ipv4Addr::new(192, 0, 2, 253));
        for host in [LB01_ADDR, LB02_ADDR, GW_ADDR] {
            assert!(!vips.contains(&host));
        }
        let unique: std::collections::BTreeSet<_> = vips.iter().collect();
        assert_eq!(unique.len(), MAX_SCALE_INSTANCES);
        assert_eq!(scale_vip(MAX_SCALE_INSTANCES), None);
        let ka = ka_scale_config("lb01", 150, 3, "0.1").expect("3 fit");
        assert!(ka.contains("virtual_router_id 3") && ka.contains("192.0.2.3/24"));
        assert_eq!(
            ka_scale_config("lb01", 150, MAX_SCALE_INSTANCES + 1, "1"),
            None
        );
        let v2 = ka_scale_config_version("lb02", 100, 2, 2, "1").expect("2 fit");
        assert!(v2.contains("vrrp_version 2") && v2.contains("auth_pass 1111"));
        assert_eq!(v2.matches("authentication").count(), 2);
        assert!(!ka.contains("auth_pass"));
    }

    #[test]
    fn only_the_arbiter_flavour_names_a_reference() {
        let on = arbiter_table(Implementation::Splitguard, LB02_ADDR);
        assert!(on.contains("references = [\"192.0.2.254\"]"));
        assert!(on.contains("peers = [\"192.0.2.6\"]"));
        let off = arbiter_table(Implementation::SplitguardNoArb, LB02_ADDR);
        assert!(off.contains("enabled = false"));
        assert!(!off.contains("references"));
    }

    #[test]
    fn the_vrid_and_password_constants_are_what_the_configs_say() {
        let ka = ka_config("lb01", 150, 2, "1");
        assert!(ka.contains(&format!("virtual_router_id {VRID}\n")));
        assert!(ka.contains(&format!("auth_pass {AUTH_PASS}\n")));
        for v in [GW_ADDR, LB01_ADDR, LB02_ADDR, VIP_ADDR] {
            assert_ne!(FLOOD_ADDR, v);
        }
    }

    #[test]
    fn keepalived_config_has_auth_only_for_v2() {
        let v2 = ka_config("lb01", 150, 2, "1");
        assert!(v2.contains("auth_pass 1111"));
        assert!(v2.contains("advert_int 1\n"));
        assert!(v2.contains("vrrp_version 2"));
        let v3 = ka_config("lb02", 100, 3, "0.1");
        assert!(!v3.contains("auth_pass"));
        assert!(v3.contains("advert_int 0.1\n"));
        assert!(v3.contains("priority 100\n"));
        assert!(v3.contains("192.0.2.3/24 dev eth0 label eth0:1"));
    }
}
