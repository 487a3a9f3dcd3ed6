//! Owns where each arbiter probe leaves from: for every reference and peer, the
//! interface and the kind of source address its echoes use, or why there is
//! none. Pure (the instances, or `watch`'s watched VIPs, in; a route or a
//! reason out): validation calls it for the configured targets, so
//! `check-config` refuses what `run` and `watch` would, and they call it again
//! for the default gateways they find.
//!
//! The rules, by target:
//! - IPv4: from the node's own address on the first IPv4 instance's interface;
//! - IPv6 link-local: from the link-local address of the one interface that
//!   carries IPv6 instances (a TOML address has no `%zone`, so two such
//!   interfaces make it ambiguous), or of the instance it belongs to (a default
//!   peer or gateway);
//! - IPv6 global: from a usable global address (not a VIP) on the first IPv6
//!   instance's interface, found at run time;
//! - a target that comes from an instance (a default peer or gateway) leaves
//!   from that instance's interface.
//!
//! `watch` (beside keepalived, no instances) probes its references only for
//! fencing; there the `[[watch]]` VIPs stand for the instances: echoes leave
//! from this node's own address on a watched VIP's interface.
//!
//! Never from a VIP: replies to a VIP go to whichever node holds it.

use std::net::IpAddr;

// The route types live with the config tree that holds them.
use super::schema::{Instance, Watch};
pub use super::schema::{ProbeRoute, SourceKind};

fn is_ipv6(inst: &Instance) -> bool {
    inst.vips.first().is_some_and(|v| v.is_ipv6())
}

/// What echoes may leave from: `run`'s instances, or `watch`'s watched VIPs
/// (each an interface and whether it is IPv6), in configuration order.
#[derive(Debug, Clone, Copy)]
pub enum Sites<'a> {
    Instances(&'a [Instance]),
    Watches(&'a [Watch]),
}

impl Sites<'_> {
    /// The interfaces of the sites of the target's family, in order.
    fn of_family(&self, ipv6: bool) -> Vec<&str> {
        match self {
            Sites::Instances(list) => list
                .iter()
                .filter(|i| is_ipv6(i) == ipv6)
                .map(|i| i.interface.as_str())
                .collect(),
            Sites::Watches(list) => list
                .iter()
                .filter(|w| w.vip.is_ipv6() == ipv6)
                .map(|w| w.interface.as_str())
                .collect(),
        }
    }

    /// How an error names them.
    fn plural(&self) -> &'static str {
        match self {
            Sites::Instances(_) => "instances",
            Sites::Watches(_) => "watched VIPs",
        }
    }
}

/// The route of the echoes to `target`, from `instances`; `home` is the
/// interface of the instance the target comes from, when it comes from one (a
/// default peer, a default gateway): they leave from there. The error says why
/// no instance can send them.
pub fn route(
    target: IpAddr,
    instances: &[Instance],
    home: Option<&str>,
) -> Result<ProbeRoute, String> {
    route_from(target, Sites::Instances(instances), home)
}

/// [`route`] from `sites`: the instances, or the watched VIPs.
pub fn route_from(
    target: IpAddr,
    sites: Sites<'_>,
    home: Option<&str>,
) -> Result<ProbeRoute, String> {
    let source = SourceKind::for_target(target);
    let of_family = sites.of_family(target.is_ipv6());
    let (family, other) = if target.is_ipv6() {
        ("IPv6", "IPv4")
    } else {
        ("IPv4", "IPv6")
    };
    let plural = sites.plural();
    let Some(&first) = of_family.first() else {
        return Err(match sites {
            Sites::Instances(_) => format!(
                "{target} is {family} but every instance is {other}: echoes leave from an instance's own {family} address"
            ),
            Sites::Watches(_) => format!(
                "{target} is {family} but every watched VIP is {other}: echoes leave from this node's own {family} address on a watched VIP's interface"
            ),
        });
    };
    let interface = match (source, home) {
        (_, Some(home)) => home,
        (SourceKind::LinkLocal, None) => {
            let mut distinct: Vec<&str> = Vec::new();
            for i in &of_family {
                if !distinct.contains(i) {
                    distinct.push(i);
                }
            }
            if let [a, b, ..] = distinct.as_slice() {
                return Err(format!(
                    "link-local {target} is ambiguous: IPv6 {plural} are on {a} and {b}, and an address here has no zone; give a global address"
                ));
            }
            first
        }
        _ => first,
    };
    Ok(ProbeRoute {
        target,
        interface: interface.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instances(specs: &[(&str, &str)]) -> Vec<Instance> {
        let mut toml = String::from("node = \"n\"\n");
        for (k, (iface, vip)) in specs.iter().enumerate() {
            let (version, len) = if vip.contains(':') { (3, 64) } else { (2, 24) };
            toml.push_str(&format!(
                "[[instance]]\nname = \"i{k}\"\ninterface = \"{iface}\"\nvrid = {}\npriority = 100\n\
                 advert_interval = \"1s\"\nversion = {version}\nvips = [\"{vip}/{len}\"]\n",
                k + 1
            ));
        }
        crate::config::parse(&toml, "t.toml")
            .unwrap_or_else(|e| panic!("{e}"))
            .instances
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_target_leaves_from_an_instance_of_its_family() {
        let dual = instances(&[("eth0", "192.0.2.3"), ("eth1", "2001:db8::3")]);
        assert_eq!(
            route(ip("192.0.2.254"), &dual, None),
            Ok(ProbeRoute {
                target: ip("192.0.2.254"),
                interface: "eth0".into(),
                source: SourceKind::Ipv4
            })
        );
        assert_eq!(
            route(ip("2001:db8::fe"), &dual, None).map(|r| (r.interface, r.source)),
            Ok(("eth1".into(), SourceKind::Global))
        );
        assert_eq!(
            route(ip("fe80::1"), &dual, None).map(|r| (r.interface, r.source)),
            Ok(("eth1".into(), SourceKind::LinkLocal))
        );
        let v4 = instances(&[("eth0", "192.0.2.3")]);
        assert_eq!(
            route(ip("2001:db8::fe"), &v4, None),
            Err("2001:db8::fe is IPv6 but every instance is IPv4: echoes leave from an instance's own IPv6 address".into())
        );
        let v6 = instances(&[("eth0", "2001:db8::3")]);
        assert!(
            route(ip("192.0.2.254"), &v6, None)
                .unwrap_err()
                .starts_with("192.0.2.254 is IPv4 but every instance is IPv6")
        );
    }

    #[test]
    fn a_link_local_target_needs_one_ipv6_interface_or_its_own_instance() {
        let two = instances(&[("eth0", "2001:db8::3"), ("eth1", "2001:db8:1::3")]);
        assert_eq!(
            route(ip("fe80::1"), &two, None),
            Err("link-local fe80::1 is ambiguous: IPv6 instances are on eth0 and eth1, and an address here has no zone; give a global address".into())
        );
        assert_eq!(
            route(ip("fe80::1"), &two, Some("eth1")).map(|r| r.interface),
            Ok("eth1".into())
        );
        let same = instances(&[("eth0", "2001:db8::3"), ("eth0", "2001:db8::4")]);
        assert!(route(ip("fe80::1"), &same, None).is_ok(), "one interface");
    }

    #[test]
    fn beside_keepalived_the_watched_vips_stand_for_the_instances() {
        let c = crate::config::parse(
            "node = \"n\"\n[[watch]]\nvip = \"192.0.2.3\"\ninterface = \"eth0\"\nrole = \"master\"\n\
             [[watch]]\nvip = \"2001:db8::3\"\ninterface = \"eth1\"\nrole = \"master\"\n",
            "t.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let sites = Sites::Watches(&c.watches);
        assert_eq!(
            route_from(ip("192.0.2.254"), sites, None).map(|r| (r.interface, r.source)),
            Ok(("eth0".into(), SourceKind::Ipv4))
        );
        assert_eq!(
            route_from(ip("fe80::1"), sites, None).map(|r| (r.interface, r.source)),
            Ok(("eth1".into(), SourceKind::LinkLocal))
        );
        let v4 = Sites::Watches(&c.watches[..1]);
        assert_eq!(
            route_from(ip("2001:db8::fe"), v4, None),
            Err("2001:db8::fe is IPv6 but every watched VIP is IPv4: echoes leave from this node's own IPv6 address on a watched VIP's interface".into())
        );
    }
}
