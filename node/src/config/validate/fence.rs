//! `[[fence]]`: the device (a fence agent and its options, or the native
//! Redfish client), the peer, and the fencing policy's limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use super::Checker;
use crate::config::duration::DurationDisplay;
use crate::config::fence::{
    DEFAULT_FENCE_AFTER, DEFAULT_FENCE_LIMIT, DEFAULT_FENCE_MIN_UPTIME, DEFAULT_FENCE_TIMEOUT,
    DEFAULT_FENCE_WINDOW, Fence, MAX_FENCE_AFTER, MAX_FENCE_LIMIT, MAX_FENCE_TIMEOUT,
    MIN_FENCE_AFTER, MIN_FENCE_TIMEOUT, OptionText, RawFence,
};
use crate::config::locate::KeyPath;
use crate::config::schema::{Instance, Watch};
use crate::fence::{AgentSpec, DeviceKind, FenceDevice, OptionValue, RedfishSpec};
use splitguard_watchdog::core::secret::Secret;

/// What `agent = "redfish"` takes in `options`.
const REDFISH_OPTIONS: &[&str] = &[
    "url",
    "username",
    "password",
    "system",
    "tls_ca",
    "ssl_insecure",
];

/// `watches`: beside keepalived (`watch`, no instances) the peer is the
/// keepalived node holding a watched VIP it should not.
pub(super) fn check_fences(
    c: &mut Checker<'_, '_>,
    raw: &[RawFence],
    instances: &[Instance],
    watches: &[Watch],
) -> Vec<Fence> {
    let mut peers: HashMap<IpAddr, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, f) in raw.iter().enumerate() {
        let p = KeyPath::root().key("fence").idx(i);
        if let Some(first) = peers.insert(f.peer, i) {
            c.err(
                &p.key("peer"),
                format!(
                    "peer {} is also fence[{first}]'s; one [[fence]] per peer",
                    f.peer
                ),
            );
        }
        if f.peer.is_unspecified() || f.peer.is_multicast() || f.peer.is_loopback() {
            c.err(
                &p.key("peer"),
                format!("{} is not a peer's address", f.peer),
            );
        }
        if let Some(inst) = instances
            .iter()
            .find(|x| x.vips.iter().any(|v| v.addr == f.peer))
        {
            c.err(
                &p.key("peer"),
                format!(
                    "{} is a VIP of instance {:?}; name the peer's own address",
                    f.peer, inst.name
                ),
            );
        }
        if let Some(name) = &f.name {
            c.non_empty(&p.key("name"), name, "name");
            if name.contains(char::is_whitespace) {
                c.err(
                    &p.key("name"),
                    "a node name has no spaces (a reply names it in one word)",
                );
            }
        }
        if instances.is_empty() {
            watch_peer(c, &p, f.peer, watches);
        }
        let timeout = f.timeout.unwrap_or(DEFAULT_FENCE_TIMEOUT);
        if !(MIN_FENCE_TIMEOUT..=MAX_FENCE_TIMEOUT).contains(&timeout) {
            c.err(
                &p.key("timeout"),
                format!(
                    "timeout {} is outside {}s to {}s",
                    DurationDisplay(timeout),
                    MIN_FENCE_TIMEOUT.as_secs(),
                    MAX_FENCE_TIMEOUT.as_secs()
                ),
            );
        }
        let fence_after = f.fence_after.unwrap_or(DEFAULT_FENCE_AFTER);
        if !(MIN_FENCE_AFTER..=MAX_FENCE_AFTER).contains(&fence_after) {
            c.err(
                &p.key("fence_after"),
                format!(
                    "fence_after {} is outside {}s to {}s",
                    DurationDisplay(fence_after),
                    MIN_FENCE_AFTER.as_secs(),
                    MAX_FENCE_AFTER.as_secs()
                ),
            );
        }
        let limit = f.fence_limit.unwrap_or(DEFAULT_FENCE_LIMIT);
        if !(1..=MAX_FENCE_LIMIT).contains(&limit) {
            c.err(
                &p.key("fence_limit"),
                format!("fence_limit {limit} is outside 1 to {MAX_FENCE_LIMIT}"),
            );
        }
        let window = f.fence_window.unwrap_or(DEFAULT_FENCE_WINDOW);
        c.positive(&p.key("fence_window"), window);
        if f.peer_priority == Some(0) {
            c.err(
                &p.key("peer_priority"),
                "peer_priority 0 is a master giving up (RFC 5798); a peer's priority is 1 to 255",
            );
        }
        let peer_mac = f
            .peer_mac
            .as_deref()
            .and_then(|m| check_peer_mac(c, &p.key("peer_mac"), m));
        let kind = if f.agent == "redfish" {
            redfish(c, &p, &f.options).map(DeviceKind::Redfish)
        } else {
            agent(c, &p, f).map(DeviceKind::Agent)
        };
        if let Some(kind) = kind {
            out.push(Fence {
                peer: f.peer,
                name: f.name.clone(),
                device: FenceDevice { kind, timeout },
                fence_after,
                limit,
                window,
                min_uptime: f.fence_min_uptime.unwrap_or(DEFAULT_FENCE_MIN_UPTIME),
                peer_priority: f.peer_priority,
                peer_mac,
                dry_run: f.dry_run,
            });
        }
    }
    out
}

/// `peer_mac`: a unicast MAC, six hex pairs split by `:` or `-`.
fn check_peer_mac(c: &mut Checker<'_, '_>, p: &KeyPath, text: &str) -> Option<[u8; 6]> {
    let Some(mac) = parse_mac(text) else {
        c.err(
            p,
            format!("{text:?} is not a MAC address (six hex pairs, as in 52:54:00:12:34:56)"),
        );
        return None;
    };
    if mac[0] & 1 == 1 || mac == [0; 6] {
        c.err(
            p,
            format!("{text} is not a host's MAC (multicast, broadcast or zero); name the peer's own NIC's"),
        );
        return None;
    }
    Some(mac)
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let sep = if text.contains('-') { '-' } else { ':' };
    let mut mac = [0u8; 6];
    let mut parts = text.split(sep);
    for byte in &mut mac {
        let part = parts.next()?;
        // from_str_radix alone would take "+f".
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// A peer beside keepalived: its split brain is seen on a watched VIP (its
/// MAC answering for a VIP held here), and its MAC is asked for from that
/// VIP's interface, so it must be of a watched VIP's family and not a VIP.
fn watch_peer(c: &mut Checker<'_, '_>, p: &KeyPath, peer: IpAddr, watches: &[Watch]) {
    if let Some(j) = watches.iter().position(|w| w.vip == peer) {
        c.err(
            &p.key("peer"),
            format!(
                "{peer} is watch[{j}]'s VIP; name the keepalived peer's own address, which does not move"
            ),
        );
    } else if !watches.is_empty() && !watches.iter().any(|w| w.vip.is_ipv6() == peer.is_ipv6()) {
        let (family, other) = if peer.is_ipv6() {
            ("IPv6", "IPv4")
        } else {
            ("IPv4", "IPv6")
        };
        c.err(
            &p.key("peer"),
            format!(
                "{peer} is {family} but every watched VIP is {other}: beside keepalived a peer is fenced for holding a watched VIP, and its MAC is asked for on that VIP's interface"
            ),
        );
    }
}

/// A fence agent: its name (or path) and its stdin options.
fn agent(c: &mut Checker<'_, '_>, p: &KeyPath, f: &RawFence) -> Option<AgentSpec> {
    let name = f.agent.as_str();
    let named = name.strip_prefix("fence_").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if !named && !name.starts_with('/') {
        c.err(
            &p.key("agent"),
            format!(
                "agent {name:?} is neither a fence agent's name (fence_ipmilan, fence_redfish, …), an absolute path, nor \"redfish\""
            ),
        );
        return None;
    }
    let mut ok = true;
    let mut options = Vec::with_capacity(f.options.len());
    for (key, OptionText(value)) in &f.options {
        let kp = p.key("options").key(key);
        let key_ok = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !key_ok {
            c.err(
                &kp,
                format!("option {key:?}: a key is letters, digits, `_` and `-`"),
            );
            ok = false;
            continue;
        }
        if key == "action" {
            c.err(
                &kp,
                "`action` is not an option: splitguard sets it (off, status, on)",
            );
            ok = false;
            continue;
        }
        // A newline would start another key=value line on the agent's stdin.
        if value.contains(['\n', '\r', '\0']) {
            c.err(
                &kp,
                format!("option {key}: the value holds a line break or NUL"),
            );
            ok = false;
            continue;
        }
        let v = if crate::fence::agent::is_secret_key(key) {
            if value.is_empty() {
                c.err(
                    &kp,
                    "the secret must not be empty; leave the key out instead",
                );
                ok = false;
            }
            OptionValue::Secret(Secret::new(value.clone()))
        } else {
            OptionValue::Plain(value.clone())
        };
        options.push((key.clone(), v));
    }
    ok.then(|| AgentSpec {
        agent: name.to_owned(),
        options,
    })
}

/// The native Redfish client's options.
fn redfish(
    c: &mut Checker<'_, '_>,
    p: &KeyPath,
    options: &std::collections::BTreeMap<String, OptionText>,
) -> Option<RedfishSpec> {
    let mut ok = true;
    for key in options.keys() {
        if !REDFISH_OPTIONS.contains(&key.as_str()) {
            c.err(
                &p.key("options").key(key),
                format!(
                    "agent \"redfish\" takes no option {key:?}; it takes {}",
                    REDFISH_OPTIONS.join(", ")
                ),
            );
            ok = false;
        }
    }
    let get = |k: &str| options.get(k).map(|v| v.0.clone());
    let url = match get("url") {
        None => {
            c.err(
                &p.key("options"),
                "agent \"redfish\" needs options.url, e.g. \"https://192.0.2.206:8000\"",
            );
            None
        }
        Some(text) => match url::Url::parse(&text) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {
                if u.password().is_some() || !u.username().is_empty() {
                    c.err(
                        &p.key("options").key("url"),
                        "put the login in options.username and options.password, not in the URL",
                    );
                    None
                } else {
                    Some(u)
                }
            }
            _ => {
                c.err(
                    &p.key("options").key("url"),
                    format!("{text:?} is not a BMC's URL such as \"https://192.0.2.206:8000\""),
                );
                None
            }
        },
    };
    let username = get("username");
    let password = get("password");
    if username.as_deref().is_none_or(str::is_empty) {
        c.err(
            &p.key("options"),
            "agent \"redfish\" needs options.username",
        );
        ok = false;
    }
    if password.as_deref().is_none_or(str::is_empty) {
        c.err(
            &p.key("options"),
            "agent \"redfish\" needs options.password",
        );
        ok = false;
    }
    let insecure = match get("ssl_insecure").as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => {
            c.err(
                &p.key("options").key("ssl_insecure"),
                format!("ssl_insecure {other:?}: write true or false"),
            );
            ok = false;
            false
        }
    };
    let ca = get("tls_ca").map(PathBuf::from);
    if let Some(ca) = &ca {
        c.absolute(&p.key("options").key("tls_ca"), ca);
    }
    if insecure && ca.is_some() {
        c.err(
            &p.key("options").key("ssl_insecure"),
            "ssl_insecure and tls_ca together: pick one",
        );
        ok = false;
    }
    let system = get("system");
    if system
        .as_deref()
        .is_some_and(|s| s.is_empty() || s.contains('/'))
    {
        c.err(
            &p.key("options").key("system"),
            "system is the id under /redfish/v1/Systems/, without slashes",
        );
        ok = false;
    }
    let url = url?;
    ok.then(|| RedfishSpec {
        url,
        username: username.unwrap_or_default(),
        password: Secret::new(password.unwrap_or_default()),
        system,
        ca,
        insecure,
    })
}
