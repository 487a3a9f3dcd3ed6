//! VRRPv3 over IPv6 in a namespace lab: a splitguard pair elects, fails over and
//! announces the takeover with unsolicited neighbour advertisements; tshark decodes
//! the adverts (ff02::12, hop limit 255, checksum good); keepalived interoperates.
//!
//! Lab addressing: the lab's IPv4 rule is TEST-NET-1 only; its IPv6 counterpart
//! here is link-local scope only (fe80::/64, as RFC 5798 wants for the first IPv6
//! VIP anyway), which the kernel never routes beyond the lab's own veths.
//! Needs root; fails without it.

mod common;

use common::*;
use splitguard_lab::{Lab, LabProcess, wait_for};
use std::time::Duration;

const VIP6: &str = "fe80::55:3";

fn v6_config(lab: &Lab, node: &str, priority: u8) -> String {
    let dir = lab.dir().display();
    format!(
        "node = \"{node}\"\nstate_dir = \"{dir}/{node}-state\"\ncontrol_socket = \"{dir}/{node}.sock\"\n\n\
         [[instance]]\nname = \"VI_6\"\ninterface = \"eth0\"\nvrid = 61\npriority = {priority}\n\
         advert_interval = \"1s\"\nversion = 3\nvips = [\"{VIP6}/64\"]\n"
    )
}

fn holds6(lab: &Lab, host: &str) -> bool {
    let out = lab
        .run(host, &["ip", "-br", "-6", "addr", "show", "dev", "eth0"])
        .expect("ip addr");
    String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP6}/64"))
}

/// gw's neighbour entry for the VIP (lower case), after gw talks to it.
fn gw_neigh(lab: &Lab) -> String {
    let out = lab
        .run("gw", &["ip", "-6", "neigh", "show", VIP6, "dev", "eth0"])
        .expect("ip neigh");
    String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
}

fn expect_holder(lab: &Lab, owner: &str, other: &str, procs: &[&LabProcess], what: &str) {
    let ok = wait_for(BOUND, || {
        (holds6(lab, owner) && !holds6(lab, other)).then_some(())
    });
    assert!(
        ok.is_some(),
        "{what}: expected only {owner} to hold {VIP6}\n{}",
        logs(procs)
    );
}

#[test]
fn v3_ipv6_pair_fails_over_and_moves_gw_neighbour_entry() {
    let lab = pair_lab("v6pair");
    let mut lb01 = start_splitguard(&lab, "lb01", &v6_config(&lab, "lb01", 150));
    let lb02 = start_splitguard(&lab, "lb02", &v6_config(&lab, "lb02", 100));
    expect_holder(&lab, "lb01", "lb02", &[&lb01, &lb02], "steady state");
    // Stays that way: adverts flow both ways over ff02::12.
    std::thread::sleep(Duration::from_secs(4));
    expect_holder(&lab, "lb01", "lb02", &[&lb01, &lb02], "still steady");

    let mac1 = lab.mac_of("lb01").expect("mac");
    let mac2 = lab.mac_of("lb02").expect("mac");
    // gw talks to the VIP, so its neighbour table holds lb01's MAC for it.
    let reached = wait_for(BOUND, || {
        lab.run(
            "gw",
            &["ping", "-6", "-c", "1", "-W", "2", "-I", "eth0", VIP6],
        )
        .ok()
        .filter(|o| o.status.success())
    });
    assert!(reached.is_some(), "gw cannot reach {VIP6}");
    assert!(gw_neigh(&lab).contains(&mac1), "{}", gw_neigh(&lab));
    // Past the neighbour locktime, so an advertisement may overwrite the entry.
    std::thread::sleep(Duration::from_millis(1100));

    lb01.stop(Duration::from_secs(10));
    wait_for(BOUND, || holds6(&lab, "lb02").then_some(()))
        .unwrap_or_else(|| panic!("lb02 never took over\n{}", logs(&[&lb01, &lb02])));
    assert!(!holds6(&lab, "lb01"), "lb01 kept the VIP after SIGTERM");
    // gw sends nothing meanwhile: only lb02's unsolicited advertisement can move it.
    let moved = wait_for(Duration::from_secs(2), || {
        gw_neigh(&lab).contains(&mac2).then_some(())
    });
    assert!(
        moved.is_some(),
        "gw still has `{}` for the VIP\n{}",
        gw_neigh(&lab),
        logs(&[&lb01, &lb02])
    );
}

#[test]
fn tshark_decodes_our_v3_ipv6_adverts() {
    let lab = pair_lab("v6tshark");
    let sg = start_splitguard(&lab, "lb01", &v6_config(&lab, "lb01", 150));
    wait_for(BOUND, || holds6(&lab, "lb01").then_some(()))
        .unwrap_or_else(|| panic!("lb01 never became master\n{}", logs(&[&sg])));
    let text = tshark_vrrp(&lab, "ip6 proto 112");
    assert!(text.contains("VRRP protocol version: 3"), "{text}");
    assert!(text.contains("Destination Address: ff02::12"), "{text}");
    assert!(text.contains("Hop Limit: 255"), "{text}");
    assert!(text.contains("Virtual Rtr ID: 61"), "{text}");
    assert!(text.contains(&format!("IPv6 Address: {VIP6}")), "{text}");
}

fn ka_v6_config(priority: u8, state: &str) -> String {
    format!(
        "global_defs {{\n    router_id ka\n    vrrp_version 3\n}}\n\
         vrrp_instance VI_6 {{\n    state {state}\n    interface eth0\n    virtual_router_id 61\n\
         \x20   priority {priority}\n    advert_int 1\n\
         \x20   virtual_ipaddress {{\n        {VIP6}/64\n    }}\n}}\n"
    )
}

#[test]
fn v3_ipv6_interop_with_keepalived_both_ways() {
    let lab = pair_lab("v6ka");
    // keepalived master, splitguard backup: splitguard stays backup, then takes over.
    let mut ka = start_keepalived(&lab, "lb01", &ka_v6_config(150, "MASTER"));
    let mut sg = start_splitguard(&lab, "lb02", &v6_config(&lab, "lb02", 100));
    expect_holder(&lab, "lb01", "lb02", &[&ka, &sg], "keepalived master");
    std::thread::sleep(Duration::from_secs(5));
    expect_holder(&lab, "lb01", "lb02", &[&ka, &sg], "splitguard stays backup");
    ka.stop(Duration::from_secs(10));
    expect_holder(&lab, "lb02", "lb01", &[&ka, &sg], "splitguard takes over");
    sg.stop(Duration::from_secs(10));

    // splitguard master, keepalived backup.
    let sg2 = start_splitguard(&lab, "lb01", &v6_config(&lab, "lb01", 150));
    wait_for(BOUND, || holds6(&lab, "lb01").then_some(()))
        .unwrap_or_else(|| panic!("splitguard never became master\n{}", logs(&[&sg2])));
    let ka2 = start_keepalived(&lab, "lb02", &ka_v6_config(100, "BACKUP"));
    std::thread::sleep(Duration::from_secs(6));
    expect_holder(
        &lab,
        "lb01",
        "lb02",
        &[&sg2, &ka2],
        "keepalived stays backup",
    );
    assert!(
        !ka2.log_text().contains("Entering MASTER STATE"),
        "keepalived went master beside a splitguard master:\n{}",
        ka2.log_text()
    );
}
