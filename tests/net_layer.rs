//! The I/O edges on a real (namespaced) network: VIPs via rtnetlink with labels and
//! idempotence, address events, gratuitous ARP over AF_PACKET, raw VRRP multicast
//! with TTL 255, neighbour solicitations answered with hop limit 255. Needs root;
//! fails without it.

use splitguard_lab::Lab;
use splitguard_node::net::arp::Operation;
use splitguard_node::net::arp_socket::ArpSocket;
use splitguard_node::net::ndisc::NdiscSocket;
use splitguard_node::net::ndp::NdpRepr;
use splitguard_node::net::netlink::{self, NetEvent, Netlink};
use splitguard_node::net::vrrp_socket::{Received, VRRP_GROUP_V4, VRRP_GROUP_V6, VrrpSocket};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};
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

/// Adds an IPv6 address without duplicate address detection, as the daemon's
/// VIPs are added (the lab's hosts have only their link-local addresses).
fn add_v6(lab: &Lab, host: &str, addr: &str) {
    let out = lab
        .run(
            host,
            &["ip", "-6", "addr", "add", addr, "dev", "eth0", "nodad"],
        )
        .expect("ip runs");
    assert!(
        out.status.success(),
        "{host}: ip -6 addr add {addr}: {out:?}"
    );
}

const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);
const LB01_6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5);

/// lb01 solicits 2001:db8::3, held by lb02: lb02's kernel answers with a
/// solicited advertisement naming its MAC. Before that, once lb01's probe socket
/// is open, lb02 sends a forged advertisement for the same address with hop
/// limit 64 (as if routed): the probe socket must never return it, nor lb01's
/// own solicitations.
#[test]
fn a_solicitation_draws_the_holders_advertisement_and_routed_ones_are_dropped() {
    let lab = lab("netndp");
    add_v6(&lab, "lb01", "2001:db8::5/64");
    add_v6(&lab, "lb02", "2001:db8::3/64");
    const FORGED_MAC: [u8; 6] = [0x02, 0xde, 0xad, 0, 0, 1];
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<[u8; 6]>();
    let lab = &lab;
    let (got, seen, lb01_mac, lb02_mac) = std::thread::scope(|s| {
        let lb02 = s.spawn(move || {
            lab.within("lb02", move || {
                rt().block_on(async {
                    let nl = Netlink::connect().expect("netlink");
                    let eth0 = nl.link_by_name("eth0").await.expect("eth0");
                    // A raw ICMPv6 socket with an ordinary hop limit: what a
                    // router would deliver, or an off-link forger.
                    let raw = socket2::Socket::new(
                        socket2::Domain::IPV6,
                        socket2::Type::RAW,
                        Some(socket2::Protocol::ICMPV6),
                    )
                    .expect("raw socket");
                    raw.set_unicast_hops_v6(64).expect("hops");
                    raw.bind_device(Some(b"eth0")).expect("bind device");
                    let forged = NdpRepr::Advert {
                        router: false,
                        solicited: true,
                        override_: true,
                        target: VIP6,
                        target_ll: Some(FORGED_MAC),
                    }
                    .emit();
                    let to = socket2::SockAddr::from(SocketAddrV6::new(LB01_6, 0, 0, 0));
                    ready_rx.recv_timeout(BOUND).expect("lb01's socket is open");
                    for _ in 0..3 {
                        raw.send_to(&forged, &to).expect("forged advert sent");
                    }
                    let mac = eth0.mac.expect("mac");
                    sent_tx.send(mac).expect("lb01 waits");
                    mac
                })
            })
        });
        let lb01 = lab
            .within("lb01", move || {
                rt().block_on(async {
                    let nl = Netlink::connect().expect("netlink");
                    let eth0 = nl.link_by_name("eth0").await.expect("eth0");
                    let mac = eth0.mac.expect("mac");
                    let sock = NdiscSocket::open_probe("eth0", eth0.index).expect("probe socket");
                    ready_tx.send(()).expect("lb02 waits");
                    let lb02_mac = sent_rx.recv_timeout(BOUND).expect("forged adverts sent");
                    let mut seen = Vec::new();
                    // Bounded: at most 20 solicitations, 200 ms apart.
                    let got = tokio::time::timeout(BOUND, async {
                        for _ in 0..20 {
                            sock.solicit(LB01_6, mac, VIP6).await.expect("solicit");
                            let wait = tokio::time::sleep(Duration::from_millis(200));
                            tokio::pin!(wait);
                            loop {
                                tokio::select! {
                                    _ = &mut wait => break,
                                    m = sock.recv() => {
                                        let m = m.expect("recv");
                                        seen.push(m);
                                        if matches!(m.repr, NdpRepr::Advert { target_ll: Some(ll), .. } if ll == lb02_mac) {
                                            return m;
                                        }
                                    }
                                }
                            }
                        }
                        panic!("no advertisement from lb02 in 20 solicitations");
                    })
                    .await
                    .expect("an answer within bound");
                    (got, seen, mac)
                })
            })
            .expect("inside lb01");
        let lb02_mac = lb02.join().expect("lb02 thread").expect("inside lb02");
        (lb01.0, lb01.1, lb01.2, lb02_mac)
    });
    assert_eq!(got.src, VIP6, "the holder answers from the VIP");
    assert_eq!(
        got.repr,
        NdpRepr::Advert {
            router: false,
            solicited: true,
            override_: true,
            target: VIP6,
            target_ll: Some(lb02_mac),
        }
    );
    for m in &seen {
        assert!(
            !matches!(m.repr, NdpRepr::Advert { target_ll: Some(ll), .. } if ll == FORGED_MAC),
            "a hop-limit-64 advertisement was returned: {m:?}"
        );
        assert!(
            !matches!(m.repr, NdpRepr::Solicit { source_ll: Some(ll), .. } if ll == lb01_mac),
            "lb01's own solicitation came back: {m:?}"
        );
    }
}

/// `::` is duplicate address detection, never an ownership probe.
#[test]
fn a_solicitation_from_the_unspecified_address_is_refused() {
    let lab = lab("netndp0");
    lab.within("lb01", || {
        rt().block_on(async {
            let nl = Netlink::connect().expect("netlink");
            let eth0 = nl.link_by_name("eth0").await.expect("eth0");
            let sock = NdiscSocket::open_probe("eth0", eth0.index).expect("probe socket");
            let e = sock
                .solicit(Ipv6Addr::UNSPECIFIED, [2, 0, 0, 0, 0, 5], VIP6)
                .await
                .expect_err("refused");
            assert!(e.to_string().contains("unicast"), "{e}");
        })
    })
    .expect("inside lb01");
}
