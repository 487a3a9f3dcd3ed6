//! The arbiter over IPv6 in namespace labs (VRRPv3 over IPv6, VIP 2001:db8::3,
//! adverts from the fixed link-locals of `pair_lab6`): the ownership probe is a
//! neighbour solicitation for the VIP from the node's link-local, and an
//! advertisement from another MAC means someone holds it. Owners are counted from
//! gw with ndisc6, which keeps every answer.
//!
//! - S2 VRRP firewalled on lb02: lb02 withholds its claim, naming lb01's MAC,
//!   with splitguard and with keepalived as lb01.
//! - S3 lb02 on VRID 52 for the same VIP: lb02 withholds its claim.
//! - A blind claim (lb01's advertisements kept from lb02 until it claims) yields
//!   once they reach it again.
//!
//! Needs root; fails without it.

mod common;

use common::*;
use splitguard_lab::configs::pair_lab6;
use splitguard_lab::{Lab, LabProcess, wait_for};
use std::time::{Duration, Instant};

const VIP6: &str = "2001:db8::3";
/// lb01's fixed MAC in an IPv6 lab.
const LB01_MAC: &str = "02:00:00:00:00:05";

fn lab6(tag: &str) -> Lab {
    pair_lab6(tag).expect("lab builds (run as root)")
}

/// One VRRPv3 instance on eth0 for the IPv6 VIP, 1 s adverts; `extra` is
/// appended as is.
fn sg6(lab: &Lab, node: &str, vrid: u8, priority: u8, extra: &str) -> String {
    let dir = lab.dir().display();
    format!(
        "node = \"{node}\"\nstate_dir = \"{dir}/{node}-state\"\ncontrol_socket = \"{dir}/{node}.sock\"\n\n\
         [[instance]]\nname = \"VI_6\"\ninterface = \"eth0\"\nvrid = {vrid}\npriority = {priority}\n\
         advert_interval = \"1s\"\nversion = 3\nvips = [\"{VIP6}/64\"]\n{extra}"
    )
}

fn ka6(priority: u8, state: &str) -> String {
    format!(
        "global_defs {{\n    router_id ka\n}}\n\
         vrrp_instance VI_6 {{\n    state {state}\n    interface eth0\n    virtual_router_id 51\n\
         \x20   priority {priority}\n    advert_int 1\n\
         \x20   virtual_ipaddress {{\n        {VIP6}/64 dev eth0\n    }}\n}}\n"
    )
}

fn holds6(lab: &Lab, host: &str) -> bool {
    let out = lab
        .run(host, &["ip", "-br", "-6", "addr", "show", "dev", "eth0"])
        .expect("ip addr");
    String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP6}/64"))
}

/// Waits until only `owner` holds the VIP and gw's solicitation is answered by
/// its MAC alone.
fn expect_owner6(lab: &Lab, owner: &str, other: &str, procs: &[&LabProcess], what: &str) {
    let mac = lab.mac_of(owner).expect("mac");
    let ok = wait_for(BOUND, || {
        let owners = lab.vip_owners("gw", VIP6).ok()?;
        (holds6(lab, owner) && !holds6(lab, other) && owners.len() == 1 && owners.contains(&mac))
            .then_some(())
    });
    assert!(
        ok.is_some(),
        "{what}: expected only {owner} ({mac}) to hold {VIP6}; gw sees {:?}\n{}",
        lab.vip_owners("gw", VIP6).unwrap_or_default(),
        logs(procs)
    );
}

/// For `window`: `other` never holds the VIP (checked every 200 ms), and gw's
/// solicitations, every 2 s or so, are answered by `owner` alone.
fn expect_single_owner6(
    lab: &Lab,
    owner: &str,
    other: &str,
    window: Duration,
    procs: &[&LabProcess],
) {
    let mac = lab.mac_of(owner).expect("mac");
    let end = Instant::now() + window;
    let mut asked = 0;
    while Instant::now() < end {
        assert!(!holds6(lab, other), "{other} took the VIP\n{}", logs(procs));
        if asked < (window.as_secs() / 3).max(1) {
            let owners = lab.vip_owners("gw", VIP6).expect("ndisc6");
            assert_eq!(
                owners.into_iter().collect::<Vec<_>>(),
                vec![mac.clone()],
                "only {owner} may answer\n{}",
                logs(procs)
            );
            asked += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn withheld_naming(p: &LabProcess, mac: &str) -> bool {
    p.log_text()
        .lines()
        .any(|l| l.contains("claim withheld") && l.to_ascii_lowercase().contains(mac))
}

#[test]
fn v6_s2_vrrp_firewalled_on_the_backup_never_makes_two_owners() {
    let lab = lab6("v6s2");
    let lb01 = start_splitguard(&lab, "lb01", &sg6(&lab, "lb01", 51, 150, ""));
    let lb02 = start_splitguard(&lab, "lb02", &sg6(&lab, "lb02", 51, 100, ""));
    let procs = [&lb01, &lb02];
    expect_owner6(&lab, "lb01", "lb02", &procs, "steady state");
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    expect_single_owner6(&lab, "lb01", "lb02", Duration::from_secs(10), &procs);
    assert!(
        withheld_naming(&lb02, LB01_MAC),
        "lb02 must say it withheld the claim because lb01 ({LB01_MAC}) answers:\n{}",
        lb02.log_text()
    );
    let json = status_via(&lab, "lb02", "lb02.sock");
    let gate = json["instances"][0]["claim_gate"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(gate.contains(LB01_MAC), "status: {json}");
    // The heal: lb02 hears lb01 again and nothing changes hands.
    lab.nft(Some("lb02"), "delete table inet s2\n")
        .expect("heal");
    expect_single_owner6(&lab, "lb01", "lb02", Duration::from_secs(4), &procs);
}

#[test]
fn v6_s2_beside_a_keepalived_master_withholds_naming_its_mac() {
    let lab = lab6("v6s2ka");
    let ka = start_keepalived(&lab, "lb01", &ka6(150, "MASTER"));
    let lb02 = start_splitguard(&lab, "lb02", &sg6(&lab, "lb02", 51, 100, ""));
    let procs = [&ka, &lb02];
    expect_owner6(&lab, "lb01", "lb02", &procs, "keepalived master");
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    expect_single_owner6(&lab, "lb01", "lb02", Duration::from_secs(10), &procs);
    assert!(
        withheld_naming(&lb02, LB01_MAC),
        "lb02 must withhold naming keepalived's MAC {LB01_MAC}:\n{}",
        lb02.log_text()
    );
}

#[test]
fn v6_s3_vrid_mismatch_does_not_claim_a_held_vip() {
    let lab = lab6("v6s3");
    let lb01 = start_splitguard(&lab, "lb01", &sg6(&lab, "lb01", 51, 150, ""));
    let procs1 = [&lb01];
    wait_for(BOUND, || holds6(&lab, "lb01").then_some(()))
        .unwrap_or_else(|| panic!("lb01 never became master\n{}", logs(&procs1)));
    let lb02 = start_splitguard(&lab, "lb02", &sg6(&lab, "lb02", 52, 100, ""));
    let procs = [&lb01, &lb02];
    expect_single_owner6(&lab, "lb01", "lb02", Duration::from_secs(8), &procs);
    assert!(withheld_naming(&lb02, LB01_MAC), "{}", lb02.log_text());
}

#[test]
fn v6_blind_claim_yields_once_the_vip_is_seen_answering_elsewhere() {
    let lab = lab6("v6yield");
    let lb01 = start_splitguard(&lab, "lb01", &sg6(&lab, "lb01", 51, 150, ""));
    let lb02 = start_splitguard(&lab, "lb02", &sg6(&lab, "lb02", 51, 100, ""));
    let procs = [&lb01, &lb02];
    expect_owner6(&lab, "lb01", "lb02", &procs, "steady state");
    // lb02 hears no advert and no neighbour advertisement for the VIP, so every
    // ownership round goes unanswered and it claims.
    let port = lab.host("lb02").expect("lb02").bridge_port.clone();
    lab.nft(
        None,
        &format!(
            "table bridge blind {{\n chain fwd_nd {{\n  type filter hook forward priority 0;\n  \
             oifname \"{port}\" ether type ip6 icmpv6 type nd-neighbor-advert drop\n }}\n}}\n"
        ),
    )
    .expect("nft");
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    wait_for(BOUND, || holds6(&lab, "lb02").then_some(()))
        .unwrap_or_else(|| panic!("lb02 never claimed blind:\n{}", logs(&procs)));
    // lb01's answers reach lb02 again (VRRP still dropped): the probation finds
    // them and lb02 gives the VIP back.
    lab.nft(None, "delete table bridge blind\n")
        .expect("heal ND");
    wait_for(Duration::from_secs(10), || {
        (!holds6(&lab, "lb02")).then_some(())
    })
    .unwrap_or_else(|| panic!("lb02 kept the VIP:\n{}", logs(&procs)));
    assert!(holds6(&lab, "lb01"), "lb01 must have kept the VIP");
    assert!(
        lb02.log_text()
            .to_ascii_lowercase()
            .lines()
            .any(|l| l.contains("yielding") && l.contains(LB01_MAC)),
        "lb02 must say it yielded to lb01 ({LB01_MAC}):\n{}",
        lb02.log_text()
    );
    expect_single_owner6(&lab, "lb01", "lb02", Duration::from_secs(6), &procs);
    assert!(withheld_naming(&lb02, LB01_MAC), "{}", lb02.log_text());
}
