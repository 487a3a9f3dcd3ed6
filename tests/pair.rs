//! A splitguard pair in a namespace lab (lb01, lb02, gw on one bridge), v2 and v3:
//! steady state, link loss, preemption on return, graceful handover on SIGTERM,
//! nopreempt. Ownership is judged from gw with arping, as a neighbour would see it.
//! Needs root; fails without it.

mod common;

use common::*;
use std::time::Duration;

fn failover_cycle(tag: &str, version: u8, interval: &str) {
    let lab = pair_lab(tag);
    let mut lb01 = start_splitguard(
        &lab,
        "lb01",
        &sg_config(&lab, "lb01", 150, version, interval, ""),
    );
    let lb02 = start_splitguard(
        &lab,
        "lb02",
        &sg_config(&lab, "lb02", 100, version, interval, ""),
    );

    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "steady state");

    // Pull lb01's cable at the switch: its link goes down, it releases the VIP
    // (FAULT) and lb02 takes over.
    lab.set_bridge_port("lb01", false).expect("port down");
    expect_owner(
        &lab,
        Some("lb02"),
        &[&lb01, &lb02],
        "after lb01's link loss",
    );

    // Back with a higher priority: lb01 preempts.
    lab.set_bridge_port("lb01", true).expect("port up");
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "after lb01 returns");

    // Graceful stop: priority 0, VIP released, exit 0; lb02 takes over.
    let status = lb01.stop(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM exits 0: {status:?}\n{}",
        lb01.log_text()
    );
    assert!(!holds(&lab, "lb01"), "a stopped node keeps no VIP");
    expect_owner(&lab, Some("lb02"), &[&lb01, &lb02], "after SIGTERM on lb01");
    assert!(
        lb02.log_text().contains("master released (priority 0)"),
        "lb02 took over on the priority-0 advert, not by timeout\n{}",
        lb02.log_text()
    );
}

#[test]
fn v2_pair_fails_over_preempts_and_hands_over() {
    failover_cycle("pairv2", 2, "1s");
}

#[test]
fn v3_pair_fails_over_preempts_and_hands_over() {
    failover_cycle("pairv3", 3, "100ms");
}

#[test]
fn nopreempt_keeps_the_current_master() {
    let lab = pair_lab("nopreempt");
    let lb02 = start_splitguard(
        &lab,
        "lb02",
        &sg_config(&lab, "lb02", 100, 2, "1s", "preempt = false\n"),
    );
    expect_owner(&lab, Some("lb02"), &[&lb02], "lb02 alone");
    let lb01 = start_splitguard(
        &lab,
        "lb01",
        &sg_config(&lab, "lb01", 150, 2, "1s", "preempt = false\n"),
    );
    // Longer than lb01's Master_Down_Interval (3.4 s) twice over.
    expect_owner_stays(
        &lab,
        "lb02",
        Duration::from_secs(8),
        &[&lb01, &lb02],
        "nopreempt",
    );
}

#[test]
fn sigkill_then_restart_leaves_no_stale_vip() {
    let lab = pair_lab("sigkill");
    let cfg1 = sg_config(&lab, "lb01", 150, 2, "1s", "");
    let mut lb01 = start_splitguard(&lab, "lb01", &cfg1);
    let lb02 = start_splitguard(&lab, "lb02", &sg_config(&lab, "lb02", 100, 2, "1s", ""));
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "steady state");

    // A crash leaves the VIP configured on lb01 with nobody advertising it.
    lb01.kill();
    assert!(
        holds(&lab, "lb01"),
        "SIGKILL cannot clean up: the VIP is stale"
    );
    // Restarted, lb01 removes the stale VIP at once and later wins the election.
    let lb01 = start_splitguard(&lab, "lb01", &cfg1);
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "after restart");
    assert!(
        lb01.log_text()
            .contains("removed a VIP left on eth0 by a previous run"),
        "{}",
        lb01.log_text()
    );
}

#[test]
fn unicast_pair_works_with_multicast_dropped() {
    let lab = pair_lab("unicast");
    // Drop anything to or from the VRRP group in both nodes: only unicast can pass.
    let drop_multicast = "table inet sgtest {\n\
        chain in { type filter hook input priority 0; ip daddr 224.0.0.18 drop; }\n\
        chain out { type filter hook output priority 0; ip daddr 224.0.0.18 drop; }\n}\n";
    lab.nft(Some("lb01"), drop_multicast).expect("nft lb01");
    lab.nft(Some("lb02"), drop_multicast).expect("nft lb02");
    let mut lb01 = start_splitguard(
        &lab,
        "lb01",
        &sg_config(
            &lab,
            "lb01",
            150,
            2,
            "1s",
            "unicast_peers = [\"192.0.2.6\"]\n",
        ),
    );
    let lb02 = start_splitguard(
        &lab,
        "lb02",
        &sg_config(
            &lab,
            "lb02",
            100,
            2,
            "1s",
            "unicast_peers = [\"192.0.2.5\"]\n",
        ),
    );
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "unicast steady state");
    expect_owner_stays(
        &lab,
        "lb01",
        Duration::from_secs(5),
        &[&lb01, &lb02],
        "unicast adverts keep lb02 backup",
    );
    lb01.stop(Duration::from_secs(10));
    expect_owner(&lab, Some("lb02"), &[&lb01, &lb02], "unicast handover");
}

#[test]
fn takeover_sends_a_garp_burst_that_moves_gw_neighbour_entry() {
    let lab = pair_lab("garp");
    let mut lb01 = start_splitguard(&lab, "lb01", &sg_config(&lab, "lb01", 150, 2, "1s", ""));
    let lb02 = start_splitguard(&lab, "lb02", &sg_config(&lab, "lb02", 100, 2, "1s", ""));
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "steady state");
    let mac1 = lab.mac_of("lb01").expect("mac");
    let mac2 = lab.mac_of("lb02").expect("mac");

    // gw talks to the VIP, so its neighbour table holds lb01's MAC for it.
    lab.run("gw", &["ping", "-c", "1", "-W", "5", VIP])
        .expect("gw reaches the VIP");
    let neigh = || {
        let out = lab
            .run("gw", &["ip", "neigh", "show", VIP])
            .expect("ip neigh");
        String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
    };
    assert!(neigh().contains(&mac1), "{}", neigh());
    // Past the kernel's neighbour locktime (1 s), so a GARP may overwrite the entry.
    std::thread::sleep(Duration::from_millis(1100));

    let tcpdump = lab
        .spawn(
            "gw",
            "tcpdump-gw",
            &[
                "timeout", "30", "tcpdump", "-l", "-n", "-e", "-i", "eth0", "arp",
            ],
        )
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(500));
    lb01.stop(Duration::from_secs(10));
    splitguard_lab::wait_for(BOUND, || holds(&lab, "lb02").then_some(()))
        .unwrap_or_else(|| panic!("lb02 never took over\n{}", logs(&[&lb01, &lb02])));
    // From the moment lb02 holds the VIP, gw must follow within 1 s, by GARP alone
    // (gw sends nothing meanwhile).
    let moved = splitguard_lab::wait_for(Duration::from_secs(1), || {
        neigh().contains(&mac2).then_some(())
    });
    assert!(
        moved.is_some(),
        "gw still has {} for the VIP\n{}",
        neigh(),
        logs(&[&lb01, &lb02, &tcpdump])
    );

    // The burst: several gratuitous requests from lb02's MAC for the VIP.
    let garps = splitguard_lab::wait_for(Duration::from_secs(5), || {
        let n = tcpdump
            .log_text()
            .lines()
            .filter(|l| is_garp_from(l, &mac2))
            .count();
        (n >= 3).then_some(n)
    });
    assert!(
        garps.is_some(),
        "expected a GARP burst from lb02:\n{}",
        tcpdump.log_text()
    );
}

/// A tcpdump -e line of a gratuitous ARP for the VIP from `mac`: timestamp, source
/// MAC, then "Request who-has VIP (ff:ff:ff:ff:ff:ff) tell VIP".
fn is_garp_from(line: &str, mac: &str) -> bool {
    let line = line.to_ascii_lowercase();
    line.split_whitespace().nth(1) == Some(mac)
        && line.contains(&format!("request who-has {VIP} "))
        && line.contains(&format!("tell {VIP},"))
}
