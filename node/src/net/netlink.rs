//! rtnetlink: interface lookup, VIP add/remove (idempotent, with a label), address
//! listing, and the event stream of address and link changes. The daemon never polls
//! `ip addr`; it reads these events.

use futures::TryStreamExt;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{Handle, MulticastGroup, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use splitguard_vrrp::wire::Family;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("no interface named {0:?}")]
    NoSuchInterface(String),
    #[error("{what}: {source}")]
    Request {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
}

/// What the kernel says about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    /// Administratively up and with carrier (IFF_UP and IFF_LOWER_UP).
    pub up: bool,
}

/// One address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub label: Option<String>,
    pub secondary: bool,
    /// Neither tentative (IPv6 duplicate address detection still running: it
    /// must not be a source yet, RFC 4862 §5.4) nor dadfailed (another node
    /// answered for it: it is not ours to use). IPv4 addresses always are.
    pub usable: bool,
}

/// Whether `addr` is in the network `net`/`prefix` (a prefix longer than the
/// address counts as the whole address); never across families.
pub fn in_prefix(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    fn masked(a: u128, b: u128, bits: u32, prefix: u8) -> bool {
        let p = u32::from(prefix).min(bits);
        let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
        (a << (128 - bits)) & mask == (b << (128 - bits)) & mask
    }
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            masked(u32::from(a).into(), u32::from(n).into(), 32, prefix)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => masked(a.into(), n.into(), 128, prefix),
        _ => false,
    }
}

/// A change the kernel announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    AddrAdded(AddrInfo),
    AddrRemoved(AddrInfo),
    Link(LinkInfo),
    /// The kernel dropped events (ENOBUFS): state must be re-read with a dump.
    Overrun,
}

/// A request handle; cheap to clone.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

fn link_info(msg: &LinkMessage) -> LinkInfo {
    let mut name = String::new();
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(a) if a.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(a);
                mac = Some(m);
            }
            _ => {}
        }
    }
    let f = msg.header.flags;
    LinkInfo {
        index: msg.header.index,
        name,
        mac,
        up: f.contains(LinkFlags::Up) && f.contains(LinkFlags::LowerUp),
    }
}

fn addr_info(msg: &AddressMessage) -> Option<AddrInfo> {
    let mut addr = None;
    let mut local = None;
    let mut label = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Address(a) => addr = Some(*a),
            // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Label(l) => label = Some(l.clone()),
            _ => {}
        }
    }
    Some(AddrInfo {
        index: msg.header.index,
        addr: local.or(addr)?,
        prefix_len: msg.header.prefix_len,
        label,
        secondary: msg.header.flags.contains(AddressHeaderFlags::Secondary),
        usable: !msg
            .header
            .flags
            .intersects(AddressHeaderFlags::Tentative | AddressHeaderFlags::Dadfailed),
    })
}

impl Netlink {
    /// Opens a request connection; its driver runs as a tokio task.
    pub fn connect() -> Result<Self, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub async fn link_by_name(&self, name: &str) -> Result<LinkInfo, NetlinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(link_info(&msg)),
            Ok(None) => Err(NetlinkError::NoSuchInterface(name.to_string())),
            // The kernel answers ENODEV for an unknown name.
            Err(e) if errno(&e) == Some(libc::ENODEV) => {
                Err(NetlinkError::NoSuchInterface(name.to_string()))
            }
            Err(source) => Err(NetlinkError::Request {
                what: format!("look up interface {name}"),
                source,
            }),
        }
    }

    pub async fn link_by_index(&self, index: u32) -> Result<LinkInfo, NetlinkError> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(link_info(&msg)),
            Ok(None) => Err(NetlinkError::NoSuchInterface(index.to_string())),
            Err(e) if errno(&e) == Some(libc::ENODEV) => {
                Err(NetlinkError::NoSuchInterface(index.to_string()))
            }
            Err(source) => Err(NetlinkError::Request {
                what: format!("look up interface {index}"),
                source,
            }),
        }
    }

    /// Every address on interface `index`, in the kernel's order (primary first).
    pub async fn addresses(&self, index: u32) -> Result<Vec<AddrInfo>, NetlinkError> {
        let msgs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|source| NetlinkError::Request {
                what: format!("list addresses of interface {index}"),
                source,
            })?;
        Ok(msgs.iter().filter_map(addr_info).collect())
    }

    /// Every address on every interface (for finding where a VIP lives).
    pub async fn all_addresses(&self) -> Result<Vec<AddrInfo>, NetlinkError> {
        let msgs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| NetlinkError::Request {
            what: "list addresses".to_owned(),
            source,
        })?;
        Ok(msgs.iter().filter_map(addr_info).collect())
    }

    /// Adds `addr/prefix_len` with `label`. Returns false when it was already there
    /// (EEXIST is not an error: adding a held VIP again must be harmless).
    pub async fn add_address(
        &self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
        label: Option<&str>,
    ) -> Result<bool, NetlinkError> {
        let mut req = self.handle.address().add(index, addr, prefix_len);
        if let Some(label) = label {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Label(label.to_string()));
        }
        if addr.is_ipv6() {
            // As keepalived does: a VIP moving between nodes must be usable at once,
            // not after duplicate address detection (which would also see the old
            // owner during a handover and mark it failed).
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(false),
            Err(source) => Err(NetlinkError::Request {
                what: format!("add {addr}/{prefix_len} to interface {index}"),
                source,
            }),
        }
    }

    /// Removes `addr/prefix_len`. Returns false when it was not there.
    pub async fn del_address(
        &self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<bool, NetlinkError> {
        let mut msg = self
            .handle
            .address()
            .add(index, addr, prefix_len)
            .message_mut()
            .clone();
        // Deleting by (index, local, prefix) is what `ip addr del` sends.
        msg.attributes
            .retain(|a| matches!(a, AddressAttribute::Local(_) | AddressAttribute::Address(_)));
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => Ok(false),
            Err(source) => Err(NetlinkError::Request {
                what: format!("remove {addr}/{prefix_len} from interface {index}"),
                source,
            }),
        }
    }

    /// The gateway of the default route of `family` (main table, prefix length
    /// 0) that leaves through interface `ifindex`: the arbiter's reference when
    /// none is configured. None when there is no such route or it has no
    /// gateway. With several, the one with the lowest metric wins, as in the
    /// kernel's choice. An IPv6 gateway is often link-local (a router's
    /// advertisement sets it so).
    pub async fn default_gateway(
        &self,
        ifindex: u32,
        family: Family,
    ) -> Result<Option<IpAddr>, NetlinkError> {
        // A dump: without NETLINK_GET_STRICT_CHK the kernel ignores the header's
        // filters, so every route of the family comes back and is filtered here.
        let (request, what) = match family {
            Family::Ipv4 => (
                RouteMessageBuilder::<Ipv4Addr>::new().build(),
                "list IPv4 routes",
            ),
            Family::Ipv6 => (
                RouteMessageBuilder::<Ipv6Addr>::new().build(),
                "list IPv6 routes",
            ),
        };
        let routes: Vec<RouteMessage> = self
            .handle
            .route()
            .get(request)
            .execute()
            .try_collect()
            .await
            .map_err(|source| NetlinkError::Request {
                what: what.to_string(),
                source,
            })?;
        Ok(routes
            .iter()
            .filter_map(|r| default_via(r, ifindex, family))
            .min_by_key(|(metric, _)| *metric)
            .map(|(_, gw)| gw))
    }
}

/// `(metric, gateway)` when `route` is a main-table unicast default route of
/// `family` with a next hop through `ifindex` (directly or as one of its
/// multipath next hops).
fn default_via(route: &RouteMessage, ifindex: u32, family: Family) -> Option<(u32, IpAddr)> {
    let h = &route.header;
    let want = match family {
        Family::Ipv4 => AddressFamily::Inet,
        Family::Ipv6 => AddressFamily::Inet6,
    };
    if h.address_family != want || h.destination_prefix_length != 0 || h.kind != RouteType::Unicast
    {
        return None;
    }
    let gateway_of = |a: &RouteAttribute| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(g)) if family == Family::Ipv4 => {
            Some(IpAddr::V4(*g))
        }
        RouteAttribute::Gateway(RouteAddress::Inet6(g)) if family == Family::Ipv6 => {
            Some(IpAddr::V6(*g))
        }
        _ => None,
    };
    // The 8-bit header field only holds table ids below 256; the attribute is exact.
    let mut table = u32::from(h.table);
    let (mut oif, mut gateway, mut metric, mut hops) = (None, None, 0, None);
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(_) => gateway = gateway_of(attr),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::MultiPath(nh) => hops = Some(nh),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    if oif == Some(ifindex) {
        return gateway.map(|g| (metric, g));
    }
    hops.into_iter()
        .flatten()
        .filter(|nh| nh.interface_index == ifindex)
        .find_map(|nh| {
            nh.attributes
                .iter()
                .find_map(gateway_of)
                .map(|g| (metric, g))
        })
}

/// Subscribes to IPv4/IPv6 address and link events. Events arrive on the returned
/// channel in kernel order; the connection task ends when the receiver is dropped.
pub fn subscribe() -> Result<mpsc::UnboundedReceiver<NetEvent>, NetlinkError> {
    let (mut conn, _handle, mut messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ])?;
    // A larger buffer makes ENOBUFS (lost events) rarer under address storms.
    let _ = conn.socket_mut().socket_mut().set_rx_buf_sz(1 << 20);
    tokio::spawn(conn);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        use futures::StreamExt;
        while let Some((msg, _)) = messages.next().await {
            let event = match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a)) => {
                    addr_info(&a).map(NetEvent::AddrAdded)
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(a)) => {
                    addr_info(&a).map(NetEvent::AddrRemoved)
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                    Some(NetEvent::Link(link_info(&l)))
                }
                NetlinkPayload::Overrun(_) => Some(NetEvent::Overrun),
                _ => None,
            };
            if let Some(event) = event
                && tx.send(event).is_err()
            {
                break;
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::route::RouteNextHop;

    fn message(addr: IpAddr, flags: AddressHeaderFlags) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.index = 7;
        m.header.prefix_len = 64;
        m.header.flags = flags;
        m.attributes.push(AddressAttribute::Address(addr));
        m
    }

    #[test]
    fn tentative_and_dadfailed_addresses_are_not_usable() {
        let a: IpAddr = "2001:db8::3".parse().unwrap();
        let info = addr_info(&message(a, AddressHeaderFlags::Permanent)).expect("address");
        assert_eq!((info.index, info.addr, info.prefix_len), (7, a, 64));
        assert!(info.usable);
        for f in [AddressHeaderFlags::Tentative, AddressHeaderFlags::Dadfailed] {
            let info = addr_info(&message(a, f | AddressHeaderFlags::Permanent)).expect("address");
            assert!(!info.usable, "{f:?}");
        }
        let v4 = addr_info(&message(
            "192.0.2.3".parse().unwrap(),
            AddressHeaderFlags::Secondary,
        ))
        .expect("address");
        assert!(v4.usable && v4.secondary);
    }

    fn default_route(family: AddressFamily, attrs: Vec<RouteAttribute>) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = family;
        m.header.destination_prefix_length = 0;
        m.header.kind = RouteType::Unicast;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.attributes = attrs;
        m
    }

    #[test]
    fn the_default_gateway_is_read_per_family_direct_or_multipath() {
        let ll: Ipv6Addr = "fe80::ff:fe00:fe".parse().unwrap();
        let v6 = default_route(
            AddressFamily::Inet6,
            vec![
                RouteAttribute::Oif(2),
                RouteAttribute::Gateway(RouteAddress::Inet6(ll)),
                RouteAttribute::Priority(1024),
            ],
        );
        assert_eq!(
            default_via(&v6, 2, Family::Ipv6),
            Some((1024, IpAddr::V6(ll)))
        );
        assert_eq!(default_via(&v6, 3, Family::Ipv6), None, "another interface");
        assert_eq!(default_via(&v6, 2, Family::Ipv4), None, "another family");
        let gw4 = Ipv4Addr::new(192, 0, 2, 254);
        let v4 = default_route(
            AddressFamily::Inet,
            vec![
                RouteAttribute::Oif(2),
                RouteAttribute::Gateway(RouteAddress::Inet(gw4)),
            ],
        );
        assert_eq!(
            default_via(&v4, 2, Family::Ipv4),
            Some((0, IpAddr::V4(gw4)))
        );
        assert_eq!(default_via(&v4, 2, Family::Ipv6), None);
        let global: Ipv6Addr = "2001:db8::fe".parse().unwrap();
        let hop = |index, g| {
            let mut nh = RouteNextHop::default();
            nh.interface_index = index;
            nh.attributes = vec![RouteAttribute::Gateway(RouteAddress::Inet6(g))];
            nh
        };
        let multipath = default_route(
            AddressFamily::Inet6,
            vec![
                RouteAttribute::Priority(5),
                RouteAttribute::MultiPath(vec![hop(3, ll), hop(2, global)]),
            ],
        );
        assert_eq!(
            default_via(&multipath, 2, Family::Ipv6),
            Some((5, IpAddr::V6(global)))
        );
        let mut other_table = v6.clone();
        other_table.attributes.push(RouteAttribute::Table(100));
        assert_eq!(default_via(&other_table, 2, Family::Ipv6), None);
    }

    #[test]
    fn prefixes_match_within_one_family() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_prefix(ip("192.0.2.3"), ip("192.0.2.255"), 24));
        assert!(!in_prefix(ip("192.0.2.3"), ip("192.0.3.1"), 24));
        assert!(in_prefix(ip("192.0.2.3"), ip("10.0.0.1"), 0));
        assert!(
            in_prefix(ip("192.0.2.3"), ip("192.0.2.3"), 40),
            "over 32 counts as 32"
        );
        assert!(!in_prefix(ip("192.0.2.3"), ip("192.0.2.4"), 32));
        assert!(in_prefix(ip("2001:db8::3"), ip("2001:db8::ffff"), 64));
        assert!(!in_prefix(ip("2001:db8:1::3"), ip("2001:db8::6"), 64));
        assert!(in_prefix(ip("2001:db8::3"), ip("::"), 0));
        assert!(!in_prefix(ip("2001:db8::3"), ip("2001:db8::4"), 128));
        assert!(
            !in_prefix(ip("192.0.2.3"), ip("::"), 0),
            "never across families"
        );
    }
}
