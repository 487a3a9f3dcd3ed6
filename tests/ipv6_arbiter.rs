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
//! - An IPv6-only config with no `[arbiter]` table runs and probes the IPv6
//!   default gateway (ICMPv6 echo from the node's own global address).
//! - S4 lb01 cut off at the switch: it releases within fall × interval + 1 s,
//!   lb02 takes over, gw never sees two owners.
//! - S5 gw stops answering ICMPv6 echo (the default gateway, link-local, is the
//!   reference): both nodes are demoted alike and the VIP stays on lb01.
//!
//! Needs root; fails without it.

mod common;

use common::*;
use splitguard_lab::configs::{Family, pair_lab6};
use splitguard_lab::scenario::{Scenario, apply_fault_in, heal_fault};
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

/// An `[arbiter]` table probing every second (500 ms timeout, rise 2, fall 3)
/// with `peers` and the default gateway as the reference.
fn arbiter6(peer: &str) -> String {
    format!(
        "\n[arbiter]\npeers = [\"{peer}\"]\nprobe_interval = \"1s\"\nprobe_timeout = \"500ms\"\n\
         probe_rise = 2\nprobe_fall = 3\n"
    )
}

fn default_route6(lab: &Lab, host: &str, via: &str) {
    let mut argv = vec!["ip", "-6", "route", "add", "default", "via", via];
    if via.starts_with("fe80") {
        argv.extend(["dev", "eth0"]);
    }
    lab.run(host, &argv).expect("route add");
}

/// Samples gw's view for `window` (ndisc6, about one sample a second) while
/// `during` runs; returns (samples, samples with two owners).
fn gw_samples_during<T>(
    lab: &Lab,
    window: Duration,
    during: impl FnOnce() -> T,
) -> (usize, usize, T) {
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let end = Instant::now() + window;
            let (mut n, mut dual) = (0, 0);
            while Instant::now() < end {
                if let Ok(owners) = lab.vip_owners("gw", VIP6) {
                    n += 1;
                    if owners.len() > 1 {
                        dual += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(150));
            }
            (n, dual)
        });
        let out = during();
        let (n, dual) = sampler.join().expect("sampler");
        (n, dual, out)
    })
}

#[test]
fn v6_only_config_without_an_arbiter_table_probes_the_ipv6_default_gateway() {
    let lab = lab6("v6dflt");
    default_route6(&lab, "lb01", "2001:db8::fe");
    let lb01 = start_splitguard(&lab, "lb01", &sg6(&lab, "lb01", 51, 150, ""));
    wait_for(BOUND, || holds6(&lab, "lb01").then_some(()))
        .unwrap_or_else(|| panic!("lb01 never became master\n{}", logs(&[&lb01])));
    let reachable = wait_for(BOUND, || {
        let json = status_via(&lab, "lb01", "lb01.sock");
        (json["arbiter"]["references"]
            == serde_json::json!([{"ip": "2001:db8::fe", "reachable": true}]))
        .then_some(json)
    });
    assert!(
        reachable.is_some(),
        "gw must be the reference and reachable: {}\n{}",
        status_via(&lab, "lb01", "lb01.sock"),
        lb01.log_text()
    );
    let log = lb01.log_text();
    assert!(log.contains("using the default gateway"), "{log}");
    assert!(!log.contains("need an IPv4 instance"), "{log}");
}

#[test]
fn v6_s4_isolated_master_releases_and_gw_never_sees_two_owners() {
    let lab = lab6("v6s4");
    let lb01 = start_splitguard(
        &lab,
        "lb01",
        &sg6(
            &lab,
            "lb01",
            51,
            150,
            &format!(
                "{}references = [\"2001:db8::fe\"]\n",
                arbiter6("2001:db8::6")
            ),
        ),
    );
    let lb02 = start_splitguard(
        &lab,
        "lb02",
        &sg6(
            &lab,
            "lb02",
            51,
            100,
            &format!(
                "{}references = [\"2001:db8::fe\"]\n",
                arbiter6("2001:db8::5")
            ),
        ),
    );
    let procs = [&lb01, &lb02];
    expect_owner6(&lab, "lb01", "lb02", &procs, "steady state");
    let (samples, dual, took) = gw_samples_during(&lab, Duration::from_secs(12), || {
        apply_fault_in(&lab, Scenario::S4, Family::Ipv6).expect("nft");
        let cut = Instant::now();
        let released = wait_for(Duration::from_secs(10), || {
            (!holds6(&lab, "lb01")).then(Instant::now)
        })
        .unwrap_or_else(|| panic!("lb01 kept the VIP while cut off\n{}", logs(&procs)));
        wait_for(BOUND, || holds6(&lab, "lb02").then_some(()))
            .unwrap_or_else(|| panic!("lb02 never took over\n{}", logs(&procs)));
        released - cut
    });
    // fall (3) × interval (1 s) + 1 s.
    assert!(
        took <= Duration::from_secs(4),
        "lb01 released after {took:?}\n{}",
        logs(&procs)
    );
    assert!(samples >= 5, "gw sampled only {samples} times");
    assert_eq!(
        dual,
        0,
        "gw saw two owners in {dual} of {samples} samples\n{}",
        logs(&procs)
    );
    assert!(
        lb01.log_text().contains("releasing the VIPs"),
        "{}",
        lb01.log_text()
    );
    // The heal: lb01 takes the VIP back once its reference is proven again,
    // and gw never sees two owners meanwhile.
    let (samples, dual, ()) = gw_samples_during(&lab, Duration::from_secs(10), || {
        heal_fault(&lab, Scenario::S4).expect("heal");
    });
    assert_eq!(
        dual,
        0,
        "two owners after the heal ({dual} of {samples})\n{}",
        logs(&procs)
    );
}

#[test]
fn v6_s5_gateway_down_keeps_the_vip_where_it_is() {
    let lab = lab6("v6s5");
    // The default gateway, a router's link-local, is the reference.
    for h in ["lb01", "lb02"] {
        default_route6(&lab, h, "fe80::ff:fe00:fe");
    }
    let lb01 = start_splitguard(
        &lab,
        "lb01",
        &sg6(&lab, "lb01", 51, 150, &arbiter6("2001:db8::6")),
    );
    let lb02 = start_splitguard(
        &lab,
        "lb02",
        &sg6(&lab, "lb02", 51, 100, &arbiter6("2001:db8::5")),
    );
    let procs = [&lb01, &lb02];
    expect_owner6(&lab, "lb01", "lb02", &procs, "steady state");
    let json = status_via(&lab, "lb01", "lb01.sock");
    assert_eq!(
        json["arbiter"]["references"][0]["ip"], "fe80::ff:fe00:fe",
        "status: {json}"
    );
    lab.nft(
        Some("gw"),
        "table inet s5 {\n chain input {\n  type filter hook input priority 0;\n  icmpv6 type echo-request drop\n }\n}\n",
    )
    .expect("nft");
    expect_single_owner6(&lab, "lb01", "lb02", Duration::from_secs(10), &procs);
    for p in procs {
        assert!(
            p.log_text().contains("arbiter demotion"),
            "both nodes are demoted alike:\n{}",
            logs(&procs)
        );
    }
    let json = status_via(&lab, "lb01", "lb01.sock");
    assert_eq!(json["arbiter"]["isolated"], true, "status: {json}");
}

#[test]
fn dual_stack_counts_ipv4_and_ipv6_references_in_one_quorum() {
    let lab = lab6("v6dual");
    let dir = lab.dir().display();
    let config = format!(
        "node = \"lb01\"\nstate_dir = \"{dir}/lb01-state\"\ncontrol_socket = \"{dir}/lb01.sock\"\n\n\
         [[instance]]\nname = \"VI_4\"\ninterface = \"eth0\"\nvrid = 51\npriority = 150\n\
         advert_interval = \"1s\"\nauth_pass = \"1111\"\nvips = [\"192.0.2.3/24\"]\n\n\
         [[instance]]\nname = \"VI_6\"\ninterface = \"eth0\"\nvrid = 52\npriority = 150\n\
         advert_interval = \"1s\"\nversion = 3\nvips = [\"{VIP6}/64\"]\n\n\
         [arbiter]\nreferences = [\"192.0.2.254\", \"2001:db8::fe\"]\nquorum = 2\n\
         probe_interval = \"1s\"\nprobe_timeout = \"500ms\"\nprobe_rise = 2\nprobe_fall = 3\n"
    );
    let lb01 = start_splitguard(&lab, "lb01", &config);
    let sock = lab.dir().join("lb01.sock");
    let bin = env!("CARGO_BIN_EXE_splitguard");
    // Null until the daemon answers.
    let status = || -> serde_json::Value {
        lab.run(
            "lb01",
            &[
                bin,
                "status",
                "--json",
                "--socket",
                sock.to_str().expect("utf-8"),
            ],
        )
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or_default()
    };
    let both = serde_json::json!([
        {"ip": "192.0.2.254", "reachable": true},
        {"ip": "2001:db8::fe", "reachable": true}
    ]);
    wait_for(BOUND, || {
        let s = status();
        (s["arbiter"]["references"] == both && s["arbiter"]["isolated"] == false).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "both references reachable: {}\n{}",
            status(),
            lb01.log_text()
        )
    });
    // Only ICMPv6 echo is lost: one reference of two, below quorum 2.
    lab.nft(
        Some("gw"),
        "table inet q {\n chain input {\n  type filter hook input priority 0;\n  icmpv6 type echo-request drop\n }\n}\n",
    )
    .expect("nft");
    wait_for(BOUND, || {
        (status()["arbiter"]["isolated"] == true).then_some(())
    })
    .unwrap_or_else(|| panic!("not isolated: {}\n{}", status(), lb01.log_text()));
    let s = status();
    assert_eq!(s["arbiter"]["references"][0]["reachable"], true, "{s}");
    assert_eq!(s["arbiter"]["references"][1]["reachable"], false, "{s}");
}
