//! The I/O edges on a real (namespaced) network: VIPs via rtnetlink with labels and
//! idempotence, address events, gratuitous ARP over AF_PACKET, raw VRRP multicast
//! with TTL 255. Needs root; fails without it.

use splitguard_lab::Lab;
use splitguard_node::net::arp::Operation;
use splitguard_node::net::arp_socket::ArpSocket;
use splitguard_node::net::netlink::{self, NetEvent, Netlink};
use splitguard_node::net::vrrp_socket::{Received, VRRP_GROUP_V4, VRRP_GROUP_V6, VrrpSocket};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
const BOUND: Duration = Duration::from_secs(10);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn lab(tag: &str) -> Lab {
    Lab::builder(tag)
        .host("lb01", Ipv4Addr::new(192, 0, 2, 5))
        .host("lb02", Ipv4Addr::new(192, 0, 2, 6))
        .build()
        .expect("lab builds (run as root)")
}

#[test]
fn vips_are_added_and_removed_idempotently_with_events() {
    let lab = lab("netvip");
    lab.within("lb01", || {
        rt().block_on(async {
            let nl = Netlink::connect().expect("netlink");
            let mut events = netlink::subscribe().expect("subscribe");
            let eth0 = nl.link_by_name("eth0").await.expect("eth0");
            assert!(eth0.up && eth0.mac.is_some(), "{eth0:?}");
            assert!(matches!(
                nl.link_by_name("nosuch0").await,
                Err(netlink::NetlinkError::NoSuchInterface(_))
            ));

            let vip = IpAddr::V4(VIP);
            assert!(
                nl.add_address(eth0.index, vip, 24, Some("eth0:1"))
                    .await
                    .expect("add")
            );
            assert!(
                !nl.add_address(eth0.index, vip, 24, Some("eth0:1"))
                    .await
                    .expect("re-add")
            );
            let addrs = nl.addresses(eth0.index).await.expect("list");
            let held = addrs.iter().find(|a| a.addr == vip).expect("VIP listed");
            assert_eq!(held.label.as_deref(), Some("eth0:1"));
            assert!(
                held.secondary,
                "the VIP sits beside the primary, not instead of it"
            );
            assert_eq!(addrs[0].addr, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5)));

            let added = tokio::time::timeout(BOUND, async {
                loop {
                    match events.recv().await {
                        Some(NetEvent::AddrAdded(a)) if a.addr == vip => return a,
                        Some(_) => continue,
                        None => panic!("event stream ended"),
                    }
                }
            })
            .await
            .expect("address event within bound");
            assert_eq!(added.index, eth0.index);

            assert!(nl.del_address(eth0.index, vip, 24).await.expect("del"));
            assert!(!nl.del_address(eth0.index, vip, 24).await.expect("re-del"));
            tokio::time::timeout(BOUND, async {
                loop {
                    if let Some(NetEvent::AddrRemoved(a)) = events.recv().await
                        && a.addr == vip
                    {
                        return;
                    }
                }
            })
            .await
            .expect("removal event within bound");
        })
    })
    .expect("inside lb01");
}

#[test]
fn gratuitous_arp_reaches_the_segment() {
    let lab = lab("netgarp");
    let listener = std::thread::scope(|s| {
        let rx = s.spawn(|| {
            lab.within("lb02", || {
                rt().block_on(async {
                    let nl = Netlink::connect().expect("netlink");
                    let eth0 = nl.link_by_name("eth0").await.expect("eth0");
                    let sock = ArpSocket::open(eth0.index).expect("arp socket");
                    tokio::time::timeout(BOUND, async {
                        loop {
                            let arp = sock.recv().await.expect("recv");
                            if arp.sender_ip == VIP && arp.target_ip == VIP {
                                return arp;
                            }
                        }
                    })
                    .await
                    .expect("GARP seen within bound")
                })
            })
        });
        // Bounded: at most 20 GARPs, 200 ms apart, until the listener has one.
        lab.within("lb01", || {
            rt().block_on(async {
                let nl = Netlink::connect().expect("netlink");
                let eth0 = nl.link_by_name("eth0").await.expect("eth0");
                let sock = ArpSocket::open(eth0.index).expect("arp socket");
                let mac = eth0.mac.expect("mac");
                for _ in 0..20 {
                    sock.gratuitous(mac, VIP).await.expect("send");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if rx.is_finished() {
                        break;
                    }
                }
                mac
            })
        })
        .map(|mac| (mac, rx.join().expect("listener")))
    })
    .expect("inside lb01");
    let (mac, arp) = listener;
    let arp = arp.expect("inside lb02");
    assert_eq!(arp.operation, Operation::Request);
    assert_eq!(arp.sender_mac, mac);
    assert_eq!(arp.target_mac, [0xff; 6]);
}

/// The address a lab host sends VRRP from: its IPv4 address, or (IPv6) the
/// interface's link-local address, as the daemon picks it.
async fn source(nl: &Netlink, index: u32, v4: Ipv4Addr, v6: bool) -> IpAddr {
    if !v6 {
        return IpAddr::V4(v4);
    }
    let addrs = nl.addresses(index).await.expect("addresses");
    addrs
        .iter()
        .find_map(|a| match a.addr {
            IpAddr::V6(x) if x.is_unicast_link_local() => Some(a.addr),
            _ => None,
        })
        .expect("eth0 has a link-local address")
}

fn open(src: IpAddr, index: u32) -> VrrpSocket {
    match src {
        IpAddr::V4(a) => VrrpSocket::open_v4("eth0", index, a, true),
        IpAddr::V6(a) => VrrpSocket::open_v6("eth0", index, a),
    }
    .expect("socket")
}

/// Sends 20 arbitrary bytes (this checks the socket path, not the codec) from lb01
/// to the VRRP group and returns lb01's source and what lb02's socket read.
fn vrrp_roundtrip(tag: &str, v6: bool) -> (IpAddr, Received) {
    let lab = lab(tag);
    let group = if v6 {
        IpAddr::V6(VRRP_GROUP_V6)
    } else {
        IpAddr::V4(VRRP_GROUP_V4)
    };
    std::thread::scope(|s| {
        let rx = s.spawn(|| {
            lab.within("lb02", || {
                rt().block_on(async {
                    let nl = Netlink::connect().expect("netlink");
                    let eth0 = nl.link_by_name("eth0").await.expect("eth0");
                    let src = source(&nl, eth0.index, Ipv4Addr::new(192, 0, 2, 6), v6).await;
                    let sock = open(src, eth0.index);
                    tokio::time::timeout(BOUND, sock.recv())
                        .await
                        .expect("datagram within bound")
                        .expect("recv")
                })
            })
        });
        let src = lab
            .within("lb01", || {
                rt().block_on(async {
                    let nl = Netlink::connect().expect("netlink");
                    let eth0 = nl.link_by_name("eth0").await.expect("eth0");
                    let src = source(&nl, eth0.index, Ipv4Addr::new(192, 0, 2, 5), v6).await;
                    let sock = open(src, eth0.index);
                    for _ in 0..20 {
                        // Early sends may fail while a link-local address is tentative.
                        let _ = sock.send(&[0x21; 20], group).await;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if rx.is_finished() {
                            break;
                        }
                    }
                    src
                })
            })
            .expect("inside lb01");
        (src, rx.join().expect("receiver").expect("inside lb02"))
    })
}

#[test]
fn raw_vrrp_multicast_arrives_with_ttl_255() {
    let (src, got) = vrrp_roundtrip("netvrrp", false);
    let Received::Advert { ip, vrrp } = got else {
        panic!("bad header: {got:?}")
    };
    assert_eq!(ip.endpoints.src(), src);
    assert_eq!(ip.endpoints.dst(), IpAddr::V4(VRRP_GROUP_V4));
    assert_eq!(ip.ttl, 255, "TTL");
    assert_eq!(vrrp, [0x21; 20]);
}

/// The hop limit and destination of an IPv6 advert come from ancillary data.
#[test]
fn raw_vrrp_ipv6_multicast_arrives_with_hop_limit_255() {
    let (src, got) = vrrp_roundtrip("netvrrp6", true);
    let Received::Advert { ip, vrrp } = got else {
        panic!("unexpected: {got:?}")
    };
    assert_eq!(ip.endpoints.src(), src);
    assert_eq!(ip.endpoints.dst(), IpAddr::V6(VRRP_GROUP_V6));
    assert_eq!(ip.ttl, 255, "hop limit");
    assert_eq!(vrrp, [0x21; 20]);
}
