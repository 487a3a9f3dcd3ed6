//! Semantic checks on a config that parsed, and the step that turns the raw section
//! shapes into the public [`Config`]. Every rule reports the key path it is about;
//! the span comes from the document, falling back to the enclosing table's header
//! when the key was left to its default. All problems are collected, not just the
//! first.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::duration::DurationDisplay;
use super::locate::{Document, KeyPath};
use super::probe_plan::{self, ProbeRoute};
use super::read::{Found, RawChannel, RawConfig};
use super::schema::{
    Alertmanager, Arbiter, CLUSTER_MAX, CONFIRM_SECRET_MIN, Channel, Config,
    DEFAULT_CONFIRM_INTERVAL, DEFAULT_DEMOTE_WEIGHT, DEFAULT_GARP_INTERVAL, DEFAULT_GARP_REFRESH,
    DEFAULT_LEASE_TTL, DEFAULT_PROBE_FALL, DEFAULT_PROBE_INTERVAL, DEFAULT_PROBE_RISE,
    DEFAULT_PROBE_TIMEOUT, DEFAULT_QUORUM, DEFAULT_REBOOT_LIMIT, DEFAULT_REBOOT_MIN_UPTIME,
    DEFAULT_REBOOT_WINDOW, HttpMethod, Instance, MAX_CONFIRM_INTERVAL, MAX_ETCD_ENDPOINTS,
    MAX_GARP_REPEAT, MAX_LEASE_TTL, MIN_CONFIRM_INTERVAL, MIN_LEASE_TTL, OnIsolated, Probe,
    RawAlertmanager, RawArbiter, RawInstance, RawTrackScript, RawWitness, Reply, Sms, TrackScript,
    Watch, WatchActions, Witness, WitnessConfirm, WitnessTls, check_http_url,
    default_reboot_command, tls_files,
};
use super::values::{Argv, HttpUrl, Secret, Vip};
use splitguard_vrrp::Version;

mod fence;

/// Linux IFNAMSIZ is 16 including the NUL.
const IFNAME_MAX: usize = 15;
/// RFC 3768 §5.3.11: the simple-text password field is 8 octets.
const AUTH_PASS_MAX: usize = 8;
const CENTISECOND: Duration = Duration::from_millis(10);
/// RFC 5798: the v3 interval is a 12-bit count of centiseconds.
const V3_MAX_INTERVAL: Duration = Duration::from_millis(4095 * 10);
const TRACK_WEIGHT_MAX: i64 = 253;

struct Checker<'d, 'i> {
    doc: &'d Document<'i>,
    found: Vec<Found>,
}

impl Checker<'_, '_> {
    fn err(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.found.push(Found {
            span: self.doc.span_of(path),
            path: Some(path.clone()),
            missing: None,
            message: message.into(),
        });
    }

    fn non_empty(&mut self, path: &KeyPath, value: &str, what: &str) {
        if value.trim().is_empty() {
            self.err(path, format!("{what} must not be empty"));
        }
    }

    fn secret(&mut self, path: &KeyPath, value: Option<&Secret>) {
        if let Some(s) = value
            && s.expose().is_empty()
        {
            self.err(
                path,
                "the secret must not be empty; leave the key out instead",
            );
        }
    }

    fn positive(&mut self, path: &KeyPath, d: Duration) {
        if d.is_zero() {
            self.err(path, "the duration must be greater than zero");
        }
    }

    fn argv(&mut self, path: &KeyPath, argv: &Argv) {
        match argv.first() {
            None => self.err(
                path,
                "the command must not be empty; give the program and its arguments as a list",
            ),
            Some(program) if program.trim().is_empty() => {
                self.err(&path.idx(0), "the program name must not be empty")
            }
            Some(_) => {}
        }
    }

    fn opt_argv(&mut self, path: &KeyPath, argv: Option<&Argv>) {
        if let Some(argv) = argv {
            self.argv(path, argv);
        }
    }

    fn interface(&mut self, path: &KeyPath, name: &str) {
        if let Err(why) = interface_name_problem(name) {
            self.err(path, format!("interface name {name:?} {why}"));
        }
    }

    fn absolute(&mut self, path: &KeyPath, p: &Path) {
        if !p.is_absolute() {
            self.err(
                path,
                format!("{:?} must be an absolute path", p.display().to_string()),
            );
        }
    }

    /// A TLS certificate and key: both or neither, absolute paths, and only
    /// with the listener they are for (`Err(key)`: that listener key is unset).
    fn tls_pair(
        &mut self,
        table: &KeyPath,
        (cert_name, cert): (&str, &Option<std::path::PathBuf>),
        (key_name, key): (&str, &Option<std::path::PathBuf>),
        listener: Result<(), &str>,
    ) {
        for (name, path) in [(cert_name, cert), (key_name, key)] {
            if let Some(p) = path {
                self.absolute(&table.key(name), p);
            }
        }
        match (cert, key) {
            (Some(_), None) => self.err(
                &table.key(cert_name),
                format!("{cert_name} is set, so {key_name} (its private key) is required"),
            ),
            (None, Some(_)) => self.err(
                &table.key(key_name),
                format!("{key_name} is set, so {cert_name} (the certificate chain) is required"),
            ),
            (Some(_), Some(_)) => {
                if let Err(listen) = listener {
                    self.err(
                        &table.key(cert_name),
                        format!(
                            "{cert_name} is set but {listen} is not, so nothing would serve TLS"
                        ),
                    );
                }
            }
            (None, None) => {}
        }
    }

    /// An integer key that must lie in `lo..=hi`.
    fn range(&mut self, path: &KeyPath, value: i64, lo: i64, hi: i64, what: &str) {
        if value < lo || value > hi {
            self.err(
                path,
                format!("{what} {value} is out of range; it must be between {lo} and {hi}"),
            );
        }
    }

    /// Unicast, and not one of the VIPs (a VIP moves between nodes, so probing or
    /// peering with it says nothing about a node).
    fn node_address(&mut self, path: &KeyPath, ip: IpAddr, vips: &HashMap<IpAddr, KeyPath>) {
        if let Err(why) = unicast_problem(ip) {
            self.err(path, format!("{ip} {why}"));
        } else if let Some(owner) = vips.get(&ip) {
            self.err(
                path,
                format!("{ip} is a VIP ({owner}); use a node's own address, which does not move"),
            );
        }
    }

    fn e164(&mut self, path: &KeyPath, number: &str) {
        if !is_e164(number) {
            self.err(
                path,
                format!(
                    "{number:?} is not an E.164 number: '+' then 8-15 digits, e.g. \"+15550002222\""
                ),
            );
        }
    }

    fn mail_address(&mut self, path: &KeyPath, address: &str) {
        if !is_mail_address(address) {
            self.err(
                path,
                format!("{address:?} is not a mail address like \"oncall@example.com\""),
            );
        }
    }

    fn non_empty_list<T>(&mut self, path: &KeyPath, list: &[T], what: &str) {
        if list.is_empty() {
            self.err(path, format!("at least one {what} is required"));
        }
    }

    /// A count such as rise or fall: at least 1.
    fn count(&mut self, path: &KeyPath, value: i64, what: &str) -> u32 {
        match u32::try_from(value) {
            Ok(n) if n >= 1 => n,
            Ok(_) => {
                self.err(
                    path,
                    format!("{what} 0 is out of range; it must be at least 1"),
                );
                1
            }
            Err(_) if value < 0 => {
                self.err(
                    path,
                    format!("{what} {value} is out of range; it must be at least 1"),
                );
                1
            }
            Err(_) => {
                self.err(path, format!("{what} {value} is too large"));
                1
            }
        }
    }
}

/// Checks everything and builds the [`Config`], or returns every problem found.
pub(crate) fn validate(raw: RawConfig, doc: &Document<'_>) -> Result<Config, Vec<Found>> {
    let mut c = Checker {
        doc,
        found: Vec::new(),
    };
    let root = KeyPath::root();

    c.non_empty(&root.key("node"), &raw.top.node, "node");
    c.absolute(&root.key("state_dir"), &raw.top.state_dir);
    c.absolute(&root.key("control_socket"), &raw.top.control_socket);
    if let Some(group) = &raw.top.control_socket_group {
        c.non_empty(
            &root.key("control_socket_group"),
            group,
            "control_socket_group",
        );
    }

    if let Some(path) = &raw.top.events_file {
        c.absolute(&root.key("events_file"), path);
    }
    c.tls_pair(
        &root,
        ("metrics_tls_cert", &raw.top.metrics_tls_cert),
        ("metrics_tls_key", &raw.top.metrics_tls_key),
        raw.top
            .metrics_listen
            .is_some()
            .then_some(())
            .ok_or("metrics_listen"),
    );

    // Every VIP with where it is declared, for the "not a VIP" rules.
    let mut vip_owner: HashMap<IpAddr, KeyPath> = HashMap::new();
    for (i, inst) in raw.instances.iter().enumerate() {
        for (j, vip) in inst.vips.iter().enumerate() {
            vip_owner
                .entry(vip.addr)
                .or_insert_with(|| root.key("instance").idx(i).key("vips").idx(j));
        }
    }

    let script_names: HashMap<&str, usize> = raw
        .track_scripts
        .iter()
        .enumerate()
        .rev() // so the first declaration wins
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();

    let instances = check_instances(&mut c, &raw.instances, &script_names, &vip_owner);
    let track_scripts = check_track_scripts(&mut c, &raw.track_scripts);
    // `watch` has no instances: its watched VIPs say where echoes leave from.
    let sites = if instances.is_empty() && !raw.watches.is_empty() {
        probe_plan::Sites::Watches(&raw.watches)
    } else {
        probe_plan::Sites::Instances(&instances)
    };
    let arbiter = check_arbiter(
        &mut c,
        &raw.arbiter,
        &instances,
        sites,
        &vip_owner,
        !raw.fences.is_empty(),
    );
    let channels = check_channels(&mut c, raw.channels);
    if let Some(reply) = &raw.reply {
        check_reply(&mut c, reply);
    }
    check_watches(&mut c, &raw.watches, &raw.watch_actions);
    check_alerts(&mut c, &raw.alerts);
    let witness = raw
        .witness
        .as_ref()
        .map(|w| check_witness(&mut c, w, &instances, &vip_owner));
    // The witness gates claims through the arbiter's gate and runs beside it.
    if witness.is_some() && !arbiter.enabled {
        c.err(
            &KeyPath::root().key("witness"),
            "[witness] needs the arbiter, which `[arbiter] enabled = false` turns off",
        );
    }
    let fences = fence::check_fences(&mut c, &raw.fences, &instances, &raw.watches);

    if !c.found.is_empty() {
        return Err(c.found);
    }
    Ok(Config {
        node: raw.top.node,
        state_dir: raw.top.state_dir,
        control_socket: raw.top.control_socket,
        control_socket_group: raw.top.control_socket_group,
        events_file: raw.top.events_file,
        metrics_listen: raw.top.metrics_listen,
        metrics_tls: tls_files(&raw.top.metrics_tls_cert, &raw.top.metrics_tls_key),
        secret_file_mode: raw.top.secret_file_mode,
        instances,
        track_scripts,
        arbiter,
        channels,
        reply: raw.reply,
        watches: raw.watches,
        watch_actions: raw.watch_actions,
        alerts: raw.alerts,
        witness,
        fences,
    })
}

/// Every `[[instance]]`: each one's own rules, then what must be unique across
/// them (names, VRIDs per interface and family).
fn check_instances(
    c: &mut Checker<'_, '_>,
    raw: &[RawInstance],
    script_names: &HashMap<&str, usize>,
    vip_owner: &HashMap<IpAddr, KeyPath>,
) -> Vec<Instance> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    // VRIDs are per interface and per address family (RFC 5798 §7.3: IPv4 and IPv6
    // virtual routers use different virtual MACs, so they may share a number).
    let mut vrids: HashMap<(&str, u8, bool), usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());

    for (i, inst) in raw.iter().enumerate() {
        let p = KeyPath::root().key("instance").idx(i);
        let key = |k: &str| p.key(k);

        c.non_empty(&key("name"), &inst.name, "the instance name");
        if let Some(first) = first_seen(&mut names, inst.name.as_str(), i) {
            c.err(
                &key("name"),
                format!(
                    "instance name {:?} is already used by instance[{first}]",
                    inst.name
                ),
            );
        }
        c.interface(&key("interface"), &inst.interface);
        c.range(&key("vrid"), inst.vrid, 1, 255, "VRID");
        c.range(&key("priority"), inst.priority, 1, 255, "priority");

        let version = check_version(c, &key("version"), inst.version);
        check_advert_interval(c, &key("advert_interval"), inst.advert_interval, version);
        if let Some(pass) = &inst.auth_pass {
            check_auth_pass(c, &key("auth_pass"), pass, version);
        }

        let ipv6 = check_vips(c, &p, inst, version, vip_owner);
        if let Some(label) = &inst.vip_label {
            check_vip_label(c, &key("vip_label"), label, &inst.interface);
        }
        check_unicast(c, &p, inst, ipv6, vip_owner);
        check_tracking(c, &p, inst, script_names);
        for (name, argv) in [
            ("notify", &inst.notify),
            ("notify_master", &inst.notify_master),
            ("notify_backup", &inst.notify_backup),
            ("notify_fault", &inst.notify_fault),
            ("notify_stop", &inst.notify_stop),
        ] {
            c.opt_argv(&key(name), argv.as_ref());
        }
        if inst.v3_checksum_as_v2 && version == Some(Version::V2) {
            c.err(
                &key("v3_checksum_as_v2"),
                "v3_checksum_as_v2 applies only to version = 3",
            );
        }
        check_garp(c, &p, inst);

        let vrid = u8::try_from(inst.vrid).unwrap_or(0);
        if vrid != 0
            && !inst.interface.is_empty()
            && let Some(first) = first_seen(&mut vrids, (inst.interface.as_str(), vrid, ipv6), i)
        {
            c.err(
                    &key("vrid"),
                    format!(
                        "VRID {vrid} on {} is already used by instance[{first}] ({}); VRIDs must be unique per interface and address family",
                        inst.interface,
                        if ipv6 { "IPv6" } else { "IPv4" },
                    ),
                );
        }

        out.push(instance(inst, vrid, version));
    }
    out
}

/// The VRRP version: 2 or 3; `None` (after an error) for anything else.
fn check_version(c: &mut Checker<'_, '_>, at: &KeyPath, version: i64) -> Option<Version> {
    match version {
        2 => Some(Version::V2),
        3 => Some(Version::V3),
        other => {
            c.err(
                at,
                format!("VRRP version {other} is not supported; use 2 or 3"),
            );
            None
        }
    }
}

/// `auth_pass`: VRRPv2 only, not empty, at most what the packet carries.
fn check_auth_pass(c: &mut Checker<'_, '_>, at: &KeyPath, pass: &Secret, version: Option<Version>) {
    if version == Some(Version::V3) {
        c.err(
            at,
            "auth_pass is for VRRPv2 only; RFC 5798 (v3) has no authentication",
        );
    } else if pass.expose().is_empty() {
        c.err(
            at,
            "auth_pass must not be empty; leave the key out for no authentication",
        );
    } else if pass.expose().len() > AUTH_PASS_MAX {
        c.err(
            at,
            format!(
                "auth_pass is {} bytes; VRRPv2 carries at most {AUTH_PASS_MAX}",
                pass.expose().len()
            ),
        );
    }
}

/// `vip_label`: iproute2's `<interface>:<suffix>`, within IFNAMSIZ.
fn check_vip_label(c: &mut Checker<'_, '_>, at: &KeyPath, label: &str, interface: &str) {
    let prefix = format!("{interface}:");
    if label.len() > IFNAME_MAX {
        c.err(
            at,
            format!(
                "vip_label {label:?} is {} bytes; labels are at most {IFNAME_MAX}",
                label.len()
            ),
        );
    } else if !label.starts_with(&prefix) || label.len() == prefix.len() {
        c.err(
            at,
            format!(
                "vip_label {label:?} must start with the interface name and a colon, e.g. \"{prefix}1\" (iproute2 rule)"
            ),
        );
    }
}

/// `unicast_peers` and `unicast_src_ip`: node addresses of the VIPs' family,
/// each peer once and never this node itself.
fn check_unicast(
    c: &mut Checker<'_, '_>,
    p: &KeyPath,
    inst: &RawInstance,
    ipv6: bool,
    vip_owner: &HashMap<IpAddr, KeyPath>,
) {
    let mut peers_seen = HashMap::new();
    for (j, peer) in inst.unicast_peers.iter().enumerate() {
        let at = p.key("unicast_peers").idx(j);
        c.node_address(&at, *peer, vip_owner);
        family_matches(c, &at, *peer, ipv6, "unicast peer");
        if Some(*peer) == inst.unicast_src_ip {
            c.err(
                &at,
                format!("{peer} is also unicast_src_ip; a node cannot peer with itself"),
            );
        }
        if let Some(first) = first_seen(&mut peers_seen, *peer, j) {
            c.err(
                &at,
                format!("{peer} is already listed as unicast_peers[{first}]"),
            );
        }
    }
    if let Some(src) = inst.unicast_src_ip {
        let at = p.key("unicast_src_ip");
        c.node_address(&at, src, vip_owner);
        family_matches(c, &at, src, ipv6, "unicast_src_ip");
    }
}

/// `track_scripts` (each defined, each once) and `track_interfaces`.
fn check_tracking(
    c: &mut Checker<'_, '_>,
    p: &KeyPath,
    inst: &RawInstance,
    script_names: &HashMap<&str, usize>,
) {
    let mut tracked = HashMap::new();
    for (j, name) in inst.track_scripts.iter().enumerate() {
        let at = p.key("track_scripts").idx(j);
        if !script_names.contains_key(name.as_str()) {
            c.err(&at, format!("no [[track_script]] is named {name:?}"));
        }
        if let Some(first) = first_seen(&mut tracked, name.as_str(), j) {
            c.err(
                &at,
                format!("{name:?} is already listed as track_scripts[{first}]"),
            );
        }
    }
    for (j, name) in inst.track_interfaces.iter().enumerate() {
        c.interface(&p.key("track_interfaces").idx(j), name);
    }
}

/// The gratuitous ARP / unsolicited NA burst and refresh.
fn check_garp(c: &mut Checker<'_, '_>, p: &KeyPath, inst: &RawInstance) {
    if !(0..=MAX_GARP_REPEAT).contains(&inst.garp_repeat) {
        c.err(
            &p.key("garp_repeat"),
            format!(
                "garp_repeat {} is out of range; it must be between 0 and {MAX_GARP_REPEAT}",
                inst.garp_repeat
            ),
        );
    }
    if inst
        .garp_interval
        .is_some_and(|d| d > Duration::from_secs(10))
    {
        c.err(
            &p.key("garp_interval"),
            "garp_interval must be at most 10s: the burst exists to announce a takeover quickly",
        );
    }
    if inst
        .garp_refresh
        .is_some_and(|d| !d.is_zero() && d < Duration::from_secs(1))
    {
        c.err(
            &p.key("garp_refresh"),
            "garp_refresh must be 0 (off) or at least 1s",
        );
    }
}

/// The checked instance, defaults filled in (values out of range have been
/// reported; they become 0 here and the config is refused anyway).
fn instance(inst: &RawInstance, vrid: u8, version: Option<Version>) -> Instance {
    Instance {
        name: inst.name.clone(),
        interface: inst.interface.clone(),
        vrid,
        priority: u8::try_from(inst.priority).unwrap_or(0),
        advert_interval: inst.advert_interval,
        version: version.unwrap_or(Version::V2),
        preempt: inst.preempt,
        preempt_delay: inst.preempt_delay.unwrap_or(Duration::ZERO),
        auth_pass: inst.auth_pass.clone(),
        vips: inst.vips.clone(),
        vip_label: inst.vip_label.clone(),
        unicast_peers: inst.unicast_peers.clone(),
        unicast_src_ip: inst.unicast_src_ip,
        track_scripts: inst.track_scripts.clone(),
        track_interfaces: inst.track_interfaces.clone(),
        notify: inst.notify.clone(),
        notify_master: inst.notify_master.clone(),
        notify_backup: inst.notify_backup.clone(),
        notify_fault: inst.notify_fault.clone(),
        notify_stop: inst.notify_stop.clone(),
        v3_checksum_as_v2: inst.v3_checksum_as_v2,
        garp_repeat: u32::try_from(inst.garp_repeat).unwrap_or(0),
        garp_interval: inst.garp_interval.unwrap_or(DEFAULT_GARP_INTERVAL),
        garp_refresh: inst.garp_refresh.unwrap_or(DEFAULT_GARP_REFRESH),
    }
}

fn check_advert_interval(
    c: &mut Checker<'_, '_>,
    at: &KeyPath,
    d: Duration,
    version: Option<Version>,
) {
    let problem = match version {
        Some(Version::V2) => (d.subsec_nanos() != 0 || d.as_secs() == 0 || d.as_secs() > 255)
            .then_some("VRRPv2; it must be whole seconds, 1s-255s"),
        Some(Version::V3) => (d < CENTISECOND
            || d > V3_MAX_INTERVAL
            || !d.as_nanos().is_multiple_of(CENTISECOND.as_nanos()))
        .then_some("VRRPv3; it must be a multiple of 10ms, 10ms-40.95s"),
        None => None,
    };
    if let Some(rule) = problem {
        c.err(
            at,
            format!(
                "advert_interval {} is not valid for {rule}",
                DurationDisplay(d)
            ),
        );
    }
}

/// Checks the VIP list; returns whether the instance is IPv6 (by its first VIP).
fn check_vips(
    c: &mut Checker<'_, '_>,
    p: &KeyPath,
    inst: &RawInstance,
    version: Option<Version>,
    vip_owner: &HashMap<IpAddr, KeyPath>,
) -> bool {
    let at = p.key("vips");
    c.non_empty_list(&at, &inst.vips, "VIP");
    let ipv6 = inst.vips.first().is_some_and(Vip::is_ipv6);
    let mut seen = HashMap::new();
    for (j, vip) in inst.vips.iter().enumerate() {
        let at = at.idx(j);
        if let Err(why) = unicast_problem(vip.addr) {
            c.err(&at, format!("VIP {vip} {why}"));
        } else if vip.is_ipv6() && version == Some(Version::V2) {
            c.err(
                &at,
                format!("VIP {vip} is IPv6; VRRPv2 carries IPv4 only, set version = 3"),
            );
        } else if vip.is_ipv6() != ipv6 {
            c.err(
                &at,
                format!(
                    "VIP {vip} mixes address families in one instance; use one instance per family"
                ),
            );
        }
        if let Some(first) = first_seen(&mut seen, vip.addr, j) {
            c.err(
                &at,
                format!("VIP {} is already listed as vips[{first}]", vip.addr),
            );
        } else if let Some(owner) = vip_owner.get(&vip.addr).filter(|o| !o.starts_with(p)) {
            c.err(
                &at,
                format!(
                    "VIP {} is already in {owner}; a VIP belongs to one instance",
                    vip.addr
                ),
            );
        }
    }
    ipv6
}

fn family_matches(c: &mut Checker<'_, '_>, at: &KeyPath, ip: IpAddr, ipv6: bool, what: &str) {
    if ip.is_ipv6() != ipv6 {
        let (got, want) = if ipv6 {
            ("IPv4", "IPv6")
        } else {
            ("IPv6", "IPv4")
        };
        c.err(
            at,
            format!("{what} {ip} is {got} but the instance's VIPs are {want}"),
        );
    }
}

fn check_track_scripts(c: &mut Checker<'_, '_>, raw: &[RawTrackScript]) -> Vec<TrackScript> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let p = KeyPath::root().key("track_script").idx(i);
        let key = |k: &str| p.key(k);
        c.non_empty(&key("name"), &t.name, "the track_script name");
        if let Some(first) = first_seen(&mut names, t.name.as_str(), i) {
            c.err(
                &key("name"),
                format!(
                    "track_script name {:?} is already used by track_script[{first}]",
                    t.name
                ),
            );
        }
        c.argv(&key("command"), &t.command);
        c.positive(&key("interval"), t.interval);
        let timeout = t.timeout.unwrap_or(t.interval);
        if t.timeout.is_some() {
            c.positive(&key("timeout"), timeout);
            if timeout > t.interval {
                c.err(
                    &key("timeout"),
                    format!(
                        "timeout {} is longer than interval {}; a run must end before the next starts",
                        DurationDisplay(timeout),
                        DurationDisplay(t.interval)
                    ),
                );
            }
        }
        let rise = c.count(&key("rise"), t.rise, "rise");
        let fall = c.count(&key("fall"), t.fall, "fall");
        c.range(
            &key("weight"),
            t.weight,
            -TRACK_WEIGHT_MAX,
            TRACK_WEIGHT_MAX,
            "weight",
        );
        out.push(TrackScript {
            name: t.name.clone(),
            command: t.command.clone(),
            interval: t.interval,
            timeout,
            rise,
            fall,
            weight: i16::try_from(t.weight).unwrap_or(0),
        });
    }
    out
}

/// `[arbiter]`: its addresses, quorum, demotion, reboot policy and probes.
fn check_arbiter(
    c: &mut Checker<'_, '_>,
    raw: &RawArbiter,
    instances: &[Instance],
    sites: probe_plan::Sites<'_>,
    vip_owner: &HashMap<IpAddr, KeyPath>,
    fencing: bool,
) -> Arbiter {
    let p = KeyPath::root().key("arbiter");
    let key = |k: &str| p.key(k);

    let peers = check_arbiter_addresses(c, &p, raw, instances, vip_owner);
    let enabled = raw.enabled.unwrap_or(true);
    // Fencing probes the references even with the arbiter off: a node must
    // know it is not isolated before it fences.
    let routes = if enabled || fencing {
        check_probe_routes(c, &p, raw, instances, sites, &peers)
    } else {
        Vec::new()
    };
    let quorum = check_quorum(c, &key("quorum"), raw);

    let demote_weight = raw.demote_weight.unwrap_or(DEFAULT_DEMOTE_WEIGHT);
    c.range(
        &key("demote_weight"),
        demote_weight,
        1,
        254,
        "demote_weight",
    );

    let reboot = check_reboot(c, &p, raw);
    let probe = check_probe(c, &p, raw);
    let (liveness_interval, liveness_misses) = check_liveness(c, &p, raw);
    if let Some(dev) = &raw.watchdog_device {
        c.absolute(&key("watchdog_device"), dev);
    }

    Arbiter {
        enabled,
        routes,
        references: raw.references.clone(),
        peers,
        quorum: u32::try_from(quorum).unwrap_or(1),
        ownership_probe: raw.ownership_probe.unwrap_or(true),
        on_isolated: raw.on_isolated,
        demote_weight: u8::try_from(demote_weight).unwrap_or(0),
        reboot_after: raw.reboot_after,
        reboot_command: reboot.command,
        reboot_limit: reboot.limit,
        reboot_window: reboot.window,
        reboot_min_uptime: reboot.min_uptime,
        probe,
        watchdog_device: raw.watchdog_device.clone(),
        early_takeover: raw.early_takeover.unwrap_or(true),
        liveness_interval,
        liveness_misses,
    }
}

/// Early takeover's liveness stream: its interval (10 ms to 1 s) and the misses
/// that lose a peer (2 to 20: one miss is any lost packet).
fn check_liveness(c: &mut Checker<'_, '_>, p: &KeyPath, raw: &RawArbiter) -> (Duration, u32) {
    use splitguard_arbiter::early::{DEFAULT_INTERVAL, DEFAULT_MISSES, MIN_INTERVAL};
    let interval = raw.liveness_interval.unwrap_or(DEFAULT_INTERVAL);
    if !(MIN_INTERVAL..=Duration::from_secs(1)).contains(&interval) {
        c.err(
            &p.key("liveness_interval"),
            format!(
                "liveness_interval {} is outside 10ms to 1s",
                DurationDisplay(interval)
            ),
        );
    }
    let misses = raw.liveness_misses.unwrap_or(i64::from(DEFAULT_MISSES));
    c.range(&p.key("liveness_misses"), misses, 2, 20, "liveness_misses");
    (interval, u32::try_from(misses).unwrap_or(DEFAULT_MISSES))
}

/// `references` and `peers`: node addresses, each once. Returns the peers,
/// by default every instance's unicast peers (first occurrence order).
fn check_arbiter_addresses(
    c: &mut Checker<'_, '_>,
    p: &KeyPath,
    raw: &RawArbiter,
    instances: &[Instance],
    vip_owner: &HashMap<IpAddr, KeyPath>,
) -> Vec<IpAddr> {
    let mut seen = HashMap::new();
    for (j, ip) in raw.references.iter().enumerate() {
        let at = p.key("references").idx(j);
        c.node_address(&at, *ip, vip_owner);
        if let Some(first) = first_seen(&mut seen, *ip, j) {
            c.err(
                &at,
                format!("{ip} is already listed as references[{first}]"),
            );
        }
    }
    match &raw.peers {
        Some(list) => {
            let mut seen = HashMap::new();
            for (j, ip) in list.iter().enumerate() {
                let at = p.key("peers").idx(j);
                c.node_address(&at, *ip, vip_owner);
                if let Some(first) = first_seen(&mut seen, *ip, j) {
                    c.err(&at, format!("{ip} is already listed as peers[{first}]"));
                }
            }
            list.clone()
        }
        None => {
            let mut all: Vec<IpAddr> = Vec::new();
            for ip in instances.iter().flat_map(|i| &i.unicast_peers) {
                if !all.contains(ip) {
                    all.push(*ip);
                }
            }
            all
        }
    }
}

/// Every reference and peer has an instance to send its echoes from
/// (`probe_plan::route`): the same rule `run` follows, so a config this accepts
/// also starts. Default peers are their own instance's unicast peers, sent
/// from that instance's interface. `sites`: the instances, or `watch`'s
/// watched VIPs when there are none.
fn check_probe_routes(
    c: &mut Checker<'_, '_>,
    p: &KeyPath,
    raw: &RawArbiter,
    instances: &[Instance],
    sites: probe_plan::Sites<'_>,
    peers: &[IpAddr],
) -> Vec<ProbeRoute> {
    let mut routes: Vec<ProbeRoute> = Vec::new();
    let mut take = |c: &mut Checker<'_, '_>, at: KeyPath, ip: IpAddr, home: Option<&str>| {
        if routes.iter().any(|r| r.target == ip) {
            return;
        }
        match probe_plan::route_from(ip, sites, home) {
            Ok(r) => routes.push(r),
            Err(why) => c.err(&at, why),
        }
    };
    for (j, &ip) in raw.references.iter().enumerate() {
        take(c, p.key("references").idx(j), ip, None);
    }
    if raw.peers.is_some() {
        for (j, &ip) in peers.iter().enumerate() {
            take(c, p.key("peers").idx(j), ip, None);
        }
    } else {
        for (i, inst) in instances.iter().enumerate() {
            let ipv6 = inst.vips.first().is_some_and(Vip::is_ipv6);
            for (j, &ip) in inst.unicast_peers.iter().enumerate() {
                if ip.is_ipv6() != ipv6 {
                    continue; // refused with the instance already
                }
                let at = KeyPath::root()
                    .key("instance")
                    .idx(i)
                    .key("unicast_peers")
                    .idx(j);
                take(c, at, ip, Some(&inst.interface));
            }
        }
    }
    routes
}

/// `quorum`: at least 1, and reachable with the references given.
fn check_quorum(c: &mut Checker<'_, '_>, at: &KeyPath, raw: &RawArbiter) -> i64 {
    let quorum = raw.quorum.unwrap_or(DEFAULT_QUORUM);
    if quorum < 1 {
        c.err(
            at,
            format!("quorum {quorum} is out of range; it must be at least 1"),
        );
    } else if !raw.references.is_empty() && quorum > raw.references.len() as i64 {
        c.err(
            at,
            format!(
                "quorum {quorum} exceeds the {} reference(s) given; this node would always count as isolated",
                raw.references.len()
            ),
        );
    } else if raw.references.is_empty() && quorum > 1 {
        c.err(
            at,
            format!("quorum {quorum} needs that many references; without `references` the only reference is the default gateway"),
        );
    }
    quorum
}

/// The reboot policy's checked values (`reboot_after` is taken as it is).
struct Reboot {
    command: Argv,
    limit: u32,
    window: Duration,
    min_uptime: Duration,
}

/// `on_isolated = "reboot"` and the `reboot_*` keys.
fn check_reboot(c: &mut Checker<'_, '_>, p: &KeyPath, raw: &RawArbiter) -> Reboot {
    let key = |k: &str| p.key(k);
    if raw.on_isolated == OnIsolated::Reboot && raw.reboot_after.is_none() {
        c.err(
            &key("reboot_after"),
            "on_isolated = \"reboot\" requires reboot_after, e.g. reboot_after = \"5m\"",
        );
    }
    if let Some(d) = raw.reboot_after {
        c.positive(&key("reboot_after"), d);
    }
    let command = raw
        .reboot_command
        .clone()
        .unwrap_or_else(default_reboot_command);
    if raw.reboot_command.is_some() {
        c.argv(&key("reboot_command"), &command);
    }
    let limit = c.count(
        &key("reboot_limit"),
        raw.reboot_limit.unwrap_or(DEFAULT_REBOOT_LIMIT),
        "reboot_limit",
    );
    let window = raw.reboot_window.unwrap_or(DEFAULT_REBOOT_WINDOW);
    c.positive(&key("reboot_window"), window);
    Reboot {
        command,
        limit,
        window,
        min_uptime: raw.reboot_min_uptime.unwrap_or(DEFAULT_REBOOT_MIN_UPTIME),
    }
}

/// The reference probes: interval, timeout (within the interval), rise, fall.
fn check_probe(c: &mut Checker<'_, '_>, p: &KeyPath, raw: &RawArbiter) -> Probe {
    let key = |k: &str| p.key(k);
    let interval = raw.probe_interval.unwrap_or(DEFAULT_PROBE_INTERVAL);
    c.positive(&key("probe_interval"), interval);
    // The default timeout follows a shorter interval down rather than exceed it.
    let timeout = raw
        .probe_timeout
        .unwrap_or(DEFAULT_PROBE_TIMEOUT.min(interval));
    if raw.probe_timeout.is_some() {
        c.positive(&key("probe_timeout"), timeout);
        if timeout > interval {
            c.err(
                &key("probe_timeout"),
                format!(
                    "probe_timeout {} is longer than probe_interval {}",
                    DurationDisplay(timeout),
                    DurationDisplay(interval)
                ),
            );
        }
    }
    let rise = c.count(
        &key("probe_rise"),
        raw.probe_rise.unwrap_or(DEFAULT_PROBE_RISE),
        "probe_rise",
    );
    let fall = c.count(
        &key("probe_fall"),
        raw.probe_fall.unwrap_or(DEFAULT_PROBE_FALL),
        "probe_fall",
    );
    Probe {
        interval,
        timeout,
        rise,
        fall,
    }
}

fn check_channels(c: &mut Checker<'_, '_>, raw: Vec<RawChannel>) -> Vec<Channel> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, ch) in raw.into_iter().enumerate() {
        let p = KeyPath::root().key("channel").idx(i);
        let key = |k: &str| p.key(k);
        let channel = match ch {
            RawChannel::Webhook(w) => {
                c.secret(&key("hmac_secret"), w.hmac_secret.as_ref());
                c.positive(&key("timeout"), w.timeout);
                Channel::Webhook(w)
            }
            RawChannel::Mail(m) => {
                c.non_empty(&key("host"), &m.host, "the SMTP host");
                if m.port == Some(0) {
                    c.err(&key("port"), "port 0 is not a valid SMTP port");
                }
                c.mail_address(&key("from"), &m.from);
                c.non_empty_list(&key("to"), &m.to, "recipient");
                for (j, to) in m.to.iter().enumerate() {
                    c.mail_address(&key("to").idx(j), to);
                }
                match (&m.username, &m.password) {
                    (Some(_), None) => {
                        c.err(&key("password"), "username is set, so password is required")
                    }
                    (None, Some(_)) => {
                        c.err(&key("username"), "password is set, so username is required")
                    }
                    _ => {}
                }
                c.secret(&key("password"), m.password.as_ref());
                c.positive(&key("timeout"), m.timeout);
                Channel::Mail(m.into_mail())
            }
            RawChannel::Twilio(t) => {
                c.non_empty(&key("account_sid"), &t.account_sid, "account_sid");
                c.secret(&key("auth_token"), Some(&t.auth_token));
                c.non_empty(&key("from"), &t.from, "from");
                sms_recipients(c, &p, &t.to);
                c.positive(&key("timeout"), t.timeout);
                Channel::Sms(Sms::Twilio(t))
            }
            RawChannel::HttpSms(h) => {
                check_url_template(c, &p, &h.url_template, h.body_template.as_deref(), h.method);
                sms_recipients(c, &p, &h.to);
                c.positive(&key("timeout"), h.timeout);
                Channel::Sms(Sms::Http(h))
            }
            RawChannel::Alertmanager(a) => {
                c.positive(&key("timeout"), a.timeout);
                c.positive(&key("instance_retry_for"), a.instance_retry_for);
                Channel::Alertmanager(check_alertmanager(c, &p, a))
            }
            RawChannel::Pagerduty(d) => {
                c.secret(&key("routing_key"), Some(&d.routing_key));
                c.positive(&key("timeout"), d.timeout);
                Channel::Pagerduty(d)
            }
        };
        if let Some(name) = channel.name() {
            c.non_empty(&key("name"), name, "the channel name");
            if let Some(first) = names.get(name) {
                c.err(
                    &key("name"),
                    format!("channel name {name:?} is already used by channel[{first}]"),
                );
            } else {
                names.insert(name.to_owned(), i);
            }
        }
        out.push(channel);
    }
    out
}

/// An Alertmanager channel's instances: `url` (one) or `urls` (a cluster's
/// every instance), exactly one of them; a list neither empty nor naming an
/// instance twice, each an http(s) URL. Messages show URLs with their
/// credentials masked.
fn check_alertmanager(c: &mut Checker<'_, '_>, p: &KeyPath, a: RawAlertmanager) -> Alertmanager {
    const HOW: &str = "`url` for one Alertmanager, `urls` for every instance of a cluster";
    let mut single = false;
    let urls = match (a.url, a.urls) {
        (Some(_), Some(_)) => {
            c.err(
                &p.key("urls"),
                format!("`url` and `urls` are both given; give one: {HOW}"),
            );
            Vec::new()
        }
        (None, None) => {
            c.err(
                &p.key("url"),
                format!("missing required key `url` or `urls` ({HOW})"),
            );
            Vec::new()
        }
        (Some(url), None) => {
            single = true;
            vec![url]
        }
        (None, Some(list)) => {
            let at = p.key("urls");
            c.non_empty_list(&at, &list, "Alertmanager URL");
            let mut seen = HashMap::new();
            let mut out = Vec::with_capacity(list.len());
            for (j, text) in list.iter().enumerate() {
                match check_http_url(text) {
                    Ok(url) => {
                        let shown = splitguard_watchdog::core::secret::redact_url(&url);
                        if let Some(first) = first_seen(&mut seen, same_instance(&url), j) {
                            c.err(
                                &at.idx(j),
                                format!("{shown} is already listed as urls[{first}]: Alertmanager dedupes across its instances, so each is listed once"),
                            );
                        }
                        out.push(HttpUrl::new(url));
                    }
                    Err(why) => c.err(
                        &at.idx(j),
                        format!("invalid URL {:?}: {why}", mask_userinfo(text)),
                    ),
                }
            }
            out
        }
    };
    Alertmanager {
        name: a.name,
        tier: a.tier,
        urls,
        single,
        timeout: a.timeout,
        instance_retry_for: a.instance_retry_for,
    }
}

/// What makes two Alertmanager URLs the same instance: scheme, host, port and
/// path (trailing `/` aside), whatever the credentials or query.
fn same_instance(url: &url::Url) -> (String, String, Option<u16>, String) {
    (
        url.scheme().to_owned(),
        url.host_str().unwrap_or_default().to_ascii_lowercase(),
        url.port_or_known_default(),
        url.path().trim_end_matches('/').to_owned(),
    )
}

/// `text` with a password in its userinfo masked, for a URL that did not
/// parse (one that did is shown by `redact_url`).
fn mask_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{}", &rest[end..])
        }
        None => text.to_owned(),
    }
}

fn sms_recipients(c: &mut Checker<'_, '_>, p: &KeyPath, to: &[String]) {
    let at = p.key("to");
    c.non_empty_list(&at, to, "recipient number");
    for (j, number) in to.iter().enumerate() {
        c.e164(&at.idx(j), number);
    }
}

fn check_url_template(
    c: &mut Checker<'_, '_>,
    p: &KeyPath,
    url_template: &str,
    body_template: Option<&str>,
    method: HttpMethod,
) {
    let at = p.key("url_template");
    // Fill the placeholders with harmless stand-ins so the URL parser sees what a
    // real send would.
    let filled = url_template
        .replace("{to}", "%2B15550000000")
        .replace("{text}", "x");
    if let Err(why) = check_http_url(&filled) {
        c.err(
            &at,
            format!("url_template {url_template:?} does not make a valid URL: {why}"),
        );
    }
    if body_template.is_some() && method == HttpMethod::Get {
        c.err(
            &p.key("body_template"),
            "body_template needs method = \"POST\"",
        );
    }
    for placeholder in ["{to}", "{text}"] {
        let in_body = body_template.is_some_and(|b| b.contains(placeholder));
        if !url_template.contains(placeholder) && !in_body {
            c.err(
                &at,
                format!("url_template (or body_template) must contain {placeholder}, where the gateway expects it"),
            );
        }
    }
}

fn check_reply(c: &mut Checker<'_, '_>, reply: &Reply) {
    let p = KeyPath::root().key("reply");
    let key = |k: &str| p.key(k);
    c.secret(&key("twilio_auth_token"), reply.twilio_auth_token.as_ref());
    c.secret(&key("generic_secret"), reply.generic_secret.as_ref());
    c.tls_pair(
        &p,
        ("tls_cert", &reply.tls_cert),
        ("tls_key", &reply.tls_key),
        reply.listen.is_some().then_some(()).ok_or("listen"),
    );
    if reply.twilio_auth_token.is_some() && reply.public_url.is_none() {
        c.err(
            &key("public_url"),
            "twilio_auth_token is set, so public_url is required: Twilio signs the exact URL it posts to",
        );
    }
    let http_verifier = reply.twilio_auth_token.is_some() || reply.generic_secret.is_some();
    match (&reply.listen, http_verifier) {
        (None, true) => c.err(
            &key("listen"),
            "twilio_auth_token or generic_secret is set, so listen (the HTTP address for replies) is required",
        ),
        (Some(_), false) => c.err(
            &key("listen"),
            "listen is set but neither twilio_auth_token nor generic_secret is, so no HTTP reply could be verified",
        ),
        (None, false) if reply.imap.is_none() => c.err(
            &p,
            "nothing would receive replies; set listen with a verifier, or an [reply.imap] mailbox",
        ),
        _ => {}
    }
    c.non_empty_list(
        &key("allowed_senders"),
        &reply.allowed_senders,
        "allowed sender",
    );
    for (j, sender) in reply.allowed_senders.iter().enumerate() {
        if !is_e164(sender) && !is_mail_address(sender) {
            c.err(
                &key("allowed_senders").idx(j),
                format!(
                    "{sender:?} is neither an E.164 number (\"+15550002222\") nor a mail address"
                ),
            );
        }
    }
    if let Some(imap) = &reply.imap {
        let p = key("imap");
        c.non_empty(&p.key("host"), &imap.host, "the IMAP host");
        if imap.port == 0 {
            c.err(&p.key("port"), "port 0 is not a valid IMAP port");
        }
        c.non_empty(&p.key("username"), &imap.username, "the IMAP username");
        c.secret(&p.key("password"), Some(&imap.password));
        c.non_empty(&p.key("mailbox"), &imap.mailbox, "the mailbox");
        c.positive(&p.key("poll_interval"), imap.poll_interval);
    }
}

fn check_watches(c: &mut Checker<'_, '_>, watches: &[Watch], actions: &WatchActions) {
    let mut seen = HashMap::new();
    for (i, w) in watches.iter().enumerate() {
        let p = KeyPath::root().key("watch").idx(i);
        if let Err(why) = unicast_problem(w.vip) {
            c.err(&p.key("vip"), format!("{} {why}", w.vip));
        }
        if let Some(first) = first_seen(&mut seen, w.vip, i) {
            c.err(
                &p.key("vip"),
                format!("VIP {} is already watched by watch[{first}]", w.vip),
            );
        }
        c.interface(&p.key("interface"), &w.interface);
    }
    let p = KeyPath::root().key("watch_actions");
    c.opt_argv(&p.key("demote_command"), actions.demote_command.as_ref());
    c.opt_argv(&p.key("resume_command"), actions.resume_command.as_ref());
}

fn check_alerts(c: &mut Checker<'_, '_>, alerts: &super::schema::Alerts) {
    let p = KeyPath::root().key("alerts");
    c.positive(&p.key("repeat_interval"), alerts.repeat_interval);
    c.positive(&p.key("escalate_after"), alerts.escalate_after);
    if alerts.rate_limit == 0 {
        c.err(
            &p.key("rate_limit"),
            "rate_limit 0 would never send; it must be at least 1",
        );
    }
    c.positive(&p.key("rate_limit_window"), alerts.rate_limit_window);
}

/// `[witness]`: the endpoints, the key namespace, the lease, TLS, the login
/// and the confirm path, then what the witness needs of the instances.
fn check_witness(
    c: &mut Checker<'_, '_>,
    raw: &RawWitness,
    instances: &[Instance],
    vip_owner: &HashMap<IpAddr, KeyPath>,
) -> Witness {
    let p = KeyPath::root().key("witness");
    let key = |k: &str| p.key(k);

    let etcd = check_etcd_endpoints(c, &p, raw);
    check_cluster(c, &key("cluster"), &raw.cluster);

    let lease_ttl = raw.lease_ttl.unwrap_or(DEFAULT_LEASE_TTL);
    let ttl_ok = if !(MIN_LEASE_TTL..=MAX_LEASE_TTL).contains(&lease_ttl) {
        c.err(
            &key("lease_ttl"),
            format!(
                "lease_ttl {} is outside {}s to {}s",
                DurationDisplay(lease_ttl),
                MIN_LEASE_TTL.as_secs(),
                MAX_LEASE_TTL.as_secs()
            ),
        );
        false
    } else if lease_ttl.subsec_nanos() != 0 {
        c.err(
            &key("lease_ttl"),
            format!(
                "lease_ttl {} is not whole seconds; etcd grants leases in seconds",
                DurationDisplay(lease_ttl)
            ),
        );
        false
    } else {
        true
    };

    let tls = check_witness_tls(c, &p, raw, &etcd);

    match (&raw.username, &raw.password) {
        (Some(_), None) => c.err(&key("password"), "username is set, so password is required"),
        (None, Some(_)) => c.err(&key("username"), "password is set, so username is required"),
        _ => {}
    }
    if let Some(user) = &raw.username {
        c.non_empty(&key("username"), user, "username");
    }
    c.secret(&key("password"), raw.password.as_ref());

    let mut witness = Witness {
        etcd: etcd.into_iter().map(|e| e.text).collect(),
        cluster: raw.cluster.clone(),
        lease_ttl,
        tls,
        username: raw.username.clone(),
        password: raw.password.clone(),
        confirm: None,
    };
    witness.confirm = check_confirm(c, &p, raw, &witness, ttl_ok, vip_owner);
    check_witness_instances(c, &p, instances);
    witness
}

/// One `etcd` endpoint as checked: `scheme://host:port`.
struct Endpoint {
    text: String,
    https: bool,
}

/// `etcd`: 1 to 7 endpoints, each `http(s)://host:port` and each once. Returns
/// the ones that parse, normalized.
fn check_etcd_endpoints(c: &mut Checker<'_, '_>, p: &KeyPath, raw: &RawWitness) -> Vec<Endpoint> {
    let at = p.key("etcd");
    c.non_empty_list(&at, &raw.etcd, "etcd endpoint");
    if raw.etcd.len() > MAX_ETCD_ENDPOINTS {
        c.err(
            &at,
            format!(
                "{} etcd endpoints given; at most {MAX_ETCD_ENDPOINTS} (etcd recommends at most {MAX_ETCD_ENDPOINTS} members)",
                raw.etcd.len()
            ),
        );
    }
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(raw.etcd.len());
    for (j, text) in raw.etcd.iter().enumerate() {
        match etcd_endpoint(text) {
            Ok(e) => {
                if let Some(first) = first_seen(&mut seen, e.text.clone(), j) {
                    c.err(
                        &at.idx(j),
                        format!("{text:?} is already listed as etcd[{first}]"),
                    );
                }
                out.push(e);
            }
            Err(why) => c.err(&at.idx(j), why),
        }
    }
    out
}

/// `http://host:port` or `https://host:port` (a trailing `/` is dropped), the
/// host a name or an address (IPv6 in brackets), the port given and not 0.
fn etcd_endpoint(text: &str) -> Result<Endpoint, String> {
    const FORM: &str =
        "write http://host:port or https://host:port, e.g. \"http://192.0.2.201:2379\"";
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!("etcd endpoint {text:?} is not a URL; {FORM}"));
    };
    let https = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => {
            return Err(format!(
                "etcd endpoint {text:?} has scheme {scheme:?}; it must be http or https ({FORM})"
            ));
        }
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err(format!(
            "etcd endpoint {text:?} carries credentials; give them as username and password"
        ));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(format!("etcd endpoint {text:?} has a path; {FORM}"));
    }
    let port = match rest.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']'))) =>
        {
            if host.is_empty() {
                return Err(format!("etcd endpoint {text:?} has no host; {FORM}"));
            }
            match port.parse::<u16>() {
                Ok(n) if n != 0 => n,
                _ => {
                    return Err(format!(
                        "etcd endpoint {text:?} has port {port}; it must be 1-65535"
                    ));
                }
            }
        }
        _ => {
            return Err(format!("etcd endpoint {text:?} has no port; {FORM}"));
        }
    };
    let url = url::Url::parse(&format!("{scheme}://{rest}"))
        .map_err(|why| format!("etcd endpoint {text:?} is not a valid URL: {why}"))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("etcd endpoint {text:?} has no host; {FORM}"))?;
    let scheme = if https { "https" } else { "http" };
    Ok(Endpoint {
        text: format!("{scheme}://{host}:{port}"),
        https,
    })
}

/// `cluster`: the etcd key prefix's name.
fn check_cluster(c: &mut Checker<'_, '_>, at: &KeyPath, cluster: &str) {
    if cluster.is_empty() {
        c.err(at, "cluster must not be empty");
    } else if cluster.len() > CLUSTER_MAX {
        c.err(
            at,
            format!(
                "cluster is {} characters; at most {CLUSTER_MAX}",
                cluster.len()
            ),
        );
    } else if !cluster
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        c.err(
            at,
            format!(
                "cluster {cluster:?} may hold only letters, digits, '.', '_' and '-' (it names the etcd key prefix)"
            ),
        );
    }
}

/// `tls_ca`, `tls_cert`, `tls_key`: absolute paths, certificate and key
/// together, and with any of them every endpoint https. An https endpoint
/// without them still gets TLS, with the system's roots.
fn check_witness_tls(
    c: &mut Checker<'_, '_>,
    p: &KeyPath,
    raw: &RawWitness,
    etcd: &[Endpoint],
) -> Option<WitnessTls> {
    if let Some(ca) = &raw.tls_ca {
        c.absolute(&p.key("tls_ca"), ca);
    }
    // The client pair: the same rules as a listener's, and always "served".
    c.tls_pair(
        p,
        ("tls_cert", &raw.tls_cert),
        ("tls_key", &raw.tls_key),
        Ok(()),
    );
    let tls_key = [
        ("tls_ca", &raw.tls_ca),
        ("tls_cert", &raw.tls_cert),
        ("tls_key", &raw.tls_key),
    ]
    .into_iter()
    .find_map(|(name, v)| v.is_some().then_some(name));
    let first_https = raw
        .etcd
        .iter()
        .position(|t| etcd_endpoint(t).is_ok_and(|e| e.https));
    for (j, text) in raw.etcd.iter().enumerate() {
        let Ok(e) = etcd_endpoint(text) else { continue };
        if e.https {
            continue;
        }
        if let Some(name) = tls_key {
            c.err(
                &p.key("etcd").idx(j),
                format!("{text:?} is http, but {name} is set: with TLS every etcd endpoint must be https"),
            );
        } else if let Some(first) = first_https {
            c.err(
                &p.key("etcd").idx(j),
                format!("{text:?} is http but etcd[{first}] is https; the endpoints of one cluster are all http or all https"),
            );
        }
    }
    (tls_key.is_some() || etcd.iter().any(|e| e.https)).then(|| WitnessTls {
        ca: raw.tls_ca.clone(),
        cert: raw.tls_cert.clone(),
        key: raw.tls_key.clone(),
    })
}

/// The confirm path: `confirm_listen`, `confirm_peer` and `confirm_secret`
/// together or none, and `confirm_interval` short enough for two
/// confirmations per [`Witness::confirm_valid`].
fn check_confirm(
    c: &mut Checker<'_, '_>,
    p: &KeyPath,
    raw: &RawWitness,
    witness: &Witness,
    ttl_ok: bool,
    vip_owner: &HashMap<IpAddr, KeyPath>,
) -> Option<WitnessConfirm> {
    let key = |k: &str| p.key(k);
    let parts = [
        ("confirm_listen", raw.confirm_listen.is_some()),
        ("confirm_peer", raw.confirm_peer.is_some()),
        ("confirm_secret", raw.confirm_secret.is_some()),
    ];
    let set: Vec<&str> = parts.iter().filter(|p| p.1).map(|p| p.0).collect();
    if set.is_empty() {
        if raw.confirm_interval.is_some() {
            c.err(
                &key("confirm_interval"),
                "confirm_interval is set but confirm_listen, confirm_peer and confirm_secret are not; without them there is no confirm path",
            );
        }
    } else if set.len() < parts.len() {
        for (name, _) in parts.iter().filter(|p| !p.1) {
            c.err(
                &key(name),
                format!(
                    "{} {} set, so {name} is required: confirm_listen, confirm_peer and confirm_secret go together",
                    set.join(" and "),
                    if set.len() == 1 { "is" } else { "are" }
                ),
            );
        }
    }

    for (name, addr) in [
        ("confirm_listen", raw.confirm_listen),
        ("confirm_peer", raw.confirm_peer),
    ] {
        if let Some(a) = addr
            && a.port() == 0
        {
            c.err(
                &key(name),
                format!("{name} {a} has port 0; give the port the confirm path uses, e.g. 8727"),
            );
        }
    }
    if let Some(peer) = raw.confirm_peer {
        let at = key("confirm_peer");
        c.node_address(&at, peer.ip(), vip_owner);
        if let Some(listen) = raw.confirm_listen {
            if peer.ip() == listen.ip() {
                c.err(
                    &at,
                    format!("{peer} is this node's confirm_listen address; give the peer's confirm_listen"),
                );
            } else if peer.is_ipv6() != listen.is_ipv6() {
                let family = |a: SocketAddr| if a.is_ipv6() { "IPv6" } else { "IPv4" };
                c.err(
                    &at,
                    format!(
                        "confirm_peer {peer} is {} but confirm_listen {listen} is {}",
                        family(peer),
                        family(listen)
                    ),
                );
            }
        }
    }
    if let Some(secret) = &raw.confirm_secret {
        let len = secret.expose().len();
        if len < CONFIRM_SECRET_MIN {
            c.err(
                &key("confirm_secret"),
                format!("confirm_secret is {len} bytes; it must be at least {CONFIRM_SECRET_MIN}"),
            );
        }
    }

    let interval = raw.confirm_interval.unwrap_or(DEFAULT_CONFIRM_INTERVAL);
    if !(MIN_CONFIRM_INTERVAL..=MAX_CONFIRM_INTERVAL).contains(&interval) {
        c.err(
            &key("confirm_interval"),
            format!(
                "confirm_interval {} is outside {} to {}",
                DurationDisplay(interval),
                DurationDisplay(MIN_CONFIRM_INTERVAL),
                DurationDisplay(MAX_CONFIRM_INTERVAL)
            ),
        );
    } else if ttl_ok && interval * 2 > witness.confirm_valid() {
        c.err(
            &key("confirm_interval"),
            format!(
                "confirm_interval {} is too long for lease_ttl {}: a confirmation holds for lease_ttl - 1s = {} and at least two must fit in it, so confirm_interval must be at most {}",
                DurationDisplay(interval),
                DurationDisplay(witness.lease_ttl),
                DurationDisplay(witness.confirm_valid()),
                DurationDisplay(witness.confirm_valid() / 2)
            ),
        );
    }

    match (raw.confirm_listen, raw.confirm_peer, &raw.confirm_secret) {
        (Some(listen), Some(peer), Some(secret)) => Some(WitnessConfirm {
            listen,
            peer,
            secret: secret.clone(),
            interval,
        }),
        _ => None,
    }
}

/// The witness holds one etcd key per address family and VRID, so it needs
/// instances, and no two of them may share a family and a VRID (on one
/// interface that is refused anyway; across interfaces it is refused here).
fn check_witness_instances(c: &mut Checker<'_, '_>, p: &KeyPath, instances: &[Instance]) {
    if instances.is_empty() {
        c.err(p, "[witness] needs at least one [[instance]]");
        return;
    }
    let mut seen: HashMap<(bool, u8), usize> = HashMap::new();
    for (i, inst) in instances.iter().enumerate() {
        if inst.vrid == 0 {
            continue; // out of range, reported with the instance
        }
        let ipv6 = inst.vips.first().is_some_and(Vip::is_ipv6);
        let Some(first) = first_seen(&mut seen, (ipv6, inst.vrid), i) else {
            continue;
        };
        let other = &instances[first];
        if other.interface == inst.interface {
            continue; // the per-interface rule has said so
        }
        c.err(
            &KeyPath::root().key("instance").idx(i).key("vrid"),
            format!(
                "VRID {} ({}) is also instance[{first}]'s ({:?} on {}); with [witness] the etcd key is per address family and VRID, so instance[{i}] ({:?} on {}) and instance[{first}] would share it",
                inst.vrid,
                if ipv6 { "IPv6" } else { "IPv4" },
                other.name,
                other.interface,
                inst.name,
                inst.interface,
            ),
        );
    }
}

/// The index `key` was first seen at, or None (recording `index`) if this is the
/// first time; a later duplicate never replaces the first.
fn first_seen<K: std::hash::Hash + Eq>(
    seen: &mut HashMap<K, usize>,
    key: K,
    index: usize,
) -> Option<usize> {
    match seen.entry(key) {
        std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(index);
            None
        }
    }
}

/// The kernel's rule for interface names (`dev_valid_name`).
fn interface_name_problem(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    if name.len() > IFNAME_MAX {
        return Err(format!(
            "is {} bytes; Linux allows at most {IFNAME_MAX}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err("is not allowed".to_owned());
    }
    if name
        .chars()
        .any(|ch| ch == '/' || ch == ':' || ch.is_whitespace())
    {
        return Err("must not contain '/', ':' or whitespace".to_owned());
    }
    Ok(())
}

fn unicast_problem(ip: IpAddr) -> Result<(), &'static str> {
    if ip.is_unspecified() {
        Err("is the unspecified address; give a real unicast address")
    } else if ip.is_multicast() {
        Err("is a multicast address; give a unicast address")
    } else if ip.is_loopback() {
        Err("is a loopback address; give an address on the network")
    } else if matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) {
        Err("is the broadcast address; give a unicast address")
    } else {
        Ok(())
    }
}

/// `+` then 8-15 digits.
pub(crate) fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

/// A plain `local@domain`, no display name; enough to catch a number or a typo in
/// the wrong list, not an RFC 5322 parser.
pub(crate) fn is_mail_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !address
            .chars()
            .any(|ch| ch.is_whitespace() || matches!(ch, '<' | '>' | ',' | ';'))
}
