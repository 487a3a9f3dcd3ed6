//! The I/O edges on a real (namespaced) network: VIPs via rtnetlink with labels and
//! idempotence, address events, gratuitous ARP over AF_PACKET, raw VRRP multicast
//! with TTL 255. Needs root; fails without it.

use splitguard::lab::Lab;
use splitguard::net::arp_socket::ArpSocket;
use splitguard::net::netlink::{self, NetEvent, Netlink};
use splitguard::net::vrrp_socket::{VRRP_GROUP_V4, VrrpSocketV4};
use splitguard_arbiter::arp::Operation;
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

#[test]
fn raw_vrrp_multicast_arrives_with_ttl_255() {
    let lab = lab("netvrrp");
    let got = std::thread::scope(|s| {
        let rx = s.spawn(|| {
            lab.within("lb02", || {
                rt().block_on(async {
                    let nl = Netlink::connect().expect("netlink");
                    let eth0 = nl.link_by_name("eth0").await.expect("eth0");
                    let sock =
                        VrrpSocketV4::open("eth0", eth0.index, Ipv4Addr::new(192, 0, 2, 6), true)
                            .expect("socket");
                    let mut buf = [0u8; 1500];
                    tokio::time::timeout(BOUND, sock.recv(&mut buf))
                        .await
                        .expect("datagram within bound")
                        .map(|(n, src)| (buf[..n].to_vec(), src))
                        .expect("recv")
                })
            })
        });
        lab.within("lb01", || {
            rt().block_on(async {
                let nl = Netlink::connect().expect("netlink");
                let eth0 = nl.link_by_name("eth0").await.expect("eth0");
                let sock =
                    VrrpSocketV4::open("eth0", eth0.index, Ipv4Addr::new(192, 0, 2, 5), true)
                        .expect("socket");
                // Any 20 bytes will do: this checks the socket path, not the codec.
                for _ in 0..20 {
                    sock.send(&[0x21; 20], VRRP_GROUP_V4).await.expect("send");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if rx.is_finished() {
                        break;
                    }
                }
            })
        })
        .expect("inside lb01");
        rx.join().expect("receiver")
    })
    .expect("inside lb02");
    let (bytes, src) = got;
    assert_eq!(src, Ipv4Addr::new(192, 0, 2, 5));
    assert_eq!(bytes[8], 255, "TTL");
    assert_eq!(bytes[9], 112, "protocol");
    assert_eq!(bytes[1], 0xc0, "TOS");
    assert_eq!(&bytes[16..20], &[224, 0, 0, 18]);
    assert_eq!(&bytes[20..], &[0x21; 20]);
}
