//! The arbiter in namespace labs, splitguard on both nodes (DESIGN.md "Arbitration
//! — the rules"): the split-brain scenarios keepalived falls into, each watched from
//! gw for 12 s with an ARP request every 250 ms, counting the MACs that answer.
//!
//! - S2 VRRP firewalled on lb02: lb02 withholds its claim, naming lb01's MAC.
//! - S3 lb02 on VRID 52 for the same VIP: lb02 withholds its claim.
//! - S4 lb01 (master) cut off at the switch, link up: lb01 releases the VIP within
//!   fall × interval + 1 s, lb02 takes over, and the heal makes no second owner.
//! - S5 gw stops answering pings, lb01 and lb02 still see each other: both are
//!   demoted alike, the VIP stays on lb01 (default gateway as the reference).
//! - S6 lb02 with another auth_pass: lb02 withholds its claim.
//! - A blind claim: VRRP dropped on lb02 and lb01's ARP answers for the VIP
//!   kept from lb02 until it claims; once they reach it again, lb02 yields within
//!   its probation and withholds the claim, naming lb01's MAC.
//! - VRRP blocked both ways before either node starts (the deploy-day firewall):
//!   one node ends up holding the VIP and the other withholds, naming its MAC.
//! - Reboot with `--dry-run`: one logged reboot, the ledger refuses a second.
//! - lb01's own link down for 8 s: paged as `link_down` (a local fault), never
//!   `isolated`; the page could not leave lb01 while its link was down, so gw
//!   gets one resolved notice marked `missed`, and no page for it.
//!
//! Needs root; fails without it.

mod common;

use common::*;
use splitguard_lab::{Lab, LabProcess, OwnerSamples, wait_for};
use std::time::{Duration, Instant};

const GW: &str = "192.0.2.254";
const LB01: &str = "192.0.2.5";
const LB02: &str = "192.0.2.6";
/// 12 s of owner samples, one every 250 ms.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
const SAMPLES: u32 = 48;

/// An `[arbiter]` table with gw as the reference, probing every second with a
/// 500 ms timeout, rise 2, fall 3.
fn arbiter(peers: &[&str], extra: &str) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "\n[arbiter]\nreferences = [\"{GW}\"]\npeers = [{}]\nprobe_interval = \"1s\"\n\
         probe_timeout = \"500ms\"\nprobe_rise = 2\nprobe_fall = 3\n{extra}",
        peers.join(", ")
    )
}

fn lb01_config(lab: &Lab) -> String {
    sg_config(lab, "lb01", 150, 2, "1s", &arbiter(&[LB02], ""))
}

fn lb02_config(lab: &Lab) -> String {
    sg_config(lab, "lb02", 100, 2, "1s", &arbiter(&[LB01], ""))
}

/// Watches the VIP from gw for the whole window and returns the samples.
fn watch_window(lab: &Lab) -> OwnerSamples {
    let mut w = lab
        .watch_owners("gw", VIP, SAMPLE_EVERY, SAMPLES)
        .expect("arping starts");
    w.wait_exit(Duration::from_secs(30));
    let s = OwnerSamples::parse(&w.log_text());
    assert!(
        s.per_request.len() >= SAMPLES as usize - 1,
        "the watch did not run its window:\n{}",
        w.log_text()
    );
    s
}

fn assert_single_owner(lab: &Lab, s: &OwnerSamples, owner: &str, procs: &[&LabProcess]) {
    let mac = lab.mac_of(owner).expect("mac");
    assert_eq!(s.dual(), 0, "gw saw two owners: {s:?}\n{}", logs(procs));
    assert_eq!(
        s.all_owners().into_iter().collect::<Vec<_>>(),
        vec![mac],
        "only {owner} may answer: {s:?}\n{}",
        logs(procs)
    );
}

fn withheld_naming(lb02: &LabProcess, mac: &str) -> bool {
    lb02.log_text()
        .lines()
        .any(|l| l.contains("claim withheld") && l.to_ascii_lowercase().contains(mac))
}

/// Starts lb01 and waits until it is the only owner; then starts lb02 from
/// `lb02_cfg` and gives it time to settle.
fn lb01_then(lab: &Lab, lb02_cfg: &str) -> (LabProcess, LabProcess) {
    let lb01 = start_splitguard(lab, "lb01", &lb01_config(lab));
    expect_owner(lab, Some("lb01"), &[&lb01], "lb01 alone");
    let lb02 = start_splitguard(lab, "lb02", lb02_cfg);
    (lb01, lb02)
}

#[test]
fn s2_vrrp_firewalled_on_the_backup_never_makes_two_owners() {
    let lab = pair_lab("s2");
    let lb01 = start_splitguard(&lab, "lb01", &lb01_config(&lab));
    let lb02 = start_splitguard(&lab, "lb02", &lb02_config(&lab));
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "steady state");
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    let s = watch_window(&lab);
    assert_single_owner(&lab, &s, "lb01", &[&lb01, &lb02]);
    assert!(!holds(&lab, "lb02"));
    let mac1 = lab.mac_of("lb01").expect("mac");
    assert!(
        withheld_naming(&lb02, &mac1),
        "lb02 must say it withheld the claim because lb01 ({mac1}) answers:\n{}",
        lb02.log_text()
    );
    // The status names the reason too.
    let json = status_via(&lab, "lb02", "lb02.sock");
    let text = json.to_string().to_ascii_lowercase();
    let gate = json["instances"][0]["claim_gate"]
        .as_str()
        .unwrap_or_default();
    assert!(gate.contains(&mac1), "status: {text}");
    assert_eq!(
        json["arbiter"]["references"],
        serde_json::json!([{"ip": GW, "reachable": true}]),
        "status: {text}"
    );
    assert_eq!(
        json["arbiter"]["peers"],
        serde_json::json!([{"ip": LB01, "reachable": true}]),
        "status: {text}"
    );
    assert_eq!(json["arbiter"]["isolated"], false, "status: {text}");
}

#[test]
fn a_blind_claim_yields_once_the_vip_is_seen_answering_elsewhere() {
    let lab = pair_lab("yield");
    let lb01 = start_splitguard(&lab, "lb01", &lb01_config(&lab));
    let lb02 = start_splitguard(&lab, "lb02", &lb02_config(&lab));
    let procs = [&lb01, &lb02];
    expect_owner(&lab, Some("lb01"), &procs, "steady state");
    // What 30 % loss does now and then, made certain: lb02 hears no advert and
    // no ARP from the VIP, so every ownership round goes unanswered and it claims.
    let port = lab.host("lb02").expect("lb02").bridge_port.clone();
    lab.nft(
        None,
        &format!(
            "table bridge blind {{\n chain fwd_arp {{\n  type filter hook forward priority 0;\n  \
             oifname \"{port}\" ether type arp arp saddr ip {VIP} drop\n }}\n}}\n"
        ),
    )
    .expect("nft");
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    let claimed = wait_for(BOUND, || holds(&lab, "lb02").then_some(()));
    assert!(
        claimed.is_some(),
        "lb02 never claimed blind:\n{}",
        logs(&procs)
    );
    // lb01's answers reach lb02 again (VRRP still dropped): the probation finds
    // them and lb02 gives the VIP back.
    lab.nft(None, "delete table bridge blind\n")
        .expect("heal ARP");
    let gave_back = wait_for(Duration::from_secs(10), || {
        (!holds(&lab, "lb02")).then_some(())
    });
    assert!(gave_back.is_some(), "lb02 kept the VIP:\n{}", logs(&procs));
    assert!(holds(&lab, "lb01"), "lb01 must have kept the VIP");
    let mac1 = lab.mac_of("lb01").expect("mac");
    let log = lb02.log_text().to_ascii_lowercase();
    assert!(
        log.lines()
            .any(|l| l.contains("yielding") && l.contains(&mac1)),
        "lb02 must say it yielded to lb01 ({mac1}):\n{}",
        lb02.log_text()
    );
    // From then on it withholds the claim, as in S2, and stays backup.
    let s = watch_window(&lab);
    assert_single_owner(&lab, &s, "lb01", &procs);
    assert!(withheld_naming(&lb02, &mac1), "{}", lb02.log_text());
    let json = status_via(&lab, "lb02", "lb02.sock");
    assert_eq!(json["instances"][0]["state"], "BACKUP", "status: {json}");
    // The VRRP heal: no second owner, lb01 stays.
    lab.nft(Some("lb02"), "delete table inet s2\n")
        .expect("heal VRRP");
    expect_owner_stays(
        &lab,
        "lb01",
        Duration::from_secs(4),
        &procs,
        "after the heal",
    );
}

#[test]
fn vrrp_blocked_both_ways_from_the_start_leaves_one_owner() {
    let lab = pair_lab("both");
    lab.nft(Some("lb01"), VRRP_DROP).expect("nft");
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    let lb01 = start_splitguard(&lab, "lb01", &lb01_config(&lab));
    let lb02 = start_splitguard(&lab, "lb02", &lb02_config(&lab));
    let procs = [&lb01, &lb02];
    // Whatever happened at the start (a blind claim and a yield, or a claim
    // withheld at once), it settles: one owner, which then stays.
    let settled = wait_for(Duration::from_secs(40), || {
        let owners = lab.vip_owners("gw", VIP).ok()?;
        (owners.len() == 1).then_some(owners)
    });
    let owners = settled.unwrap_or_else(|| panic!("never one owner:\n{}", logs(&procs)));
    let mac1 = lab.mac_of("lb01").expect("mac");
    let mac2 = lab.mac_of("lb02").expect("mac");
    let (owner, other, owner_mac) = if owners.contains(&mac1) {
        ("lb01", &lb02, &mac1)
    } else {
        ("lb02", &lb01, &mac2)
    };
    let s = watch_window(&lab);
    assert_single_owner(&lab, &s, owner, &procs);
    assert!(
        withheld_naming(other, owner_mac),
        "{} must withhold naming {owner_mac}:\n{}",
        other.name,
        logs(&procs)
    );
}

#[test]
fn s3_vrid_mismatch_does_not_claim_a_held_vip() {
    let lab = pair_lab("s3");
    let cfg = lb02_config(&lab).replace("vrid = 51", "vrid = 52");
    let (lb01, lb02) = lb01_then(&lab, &cfg);
    let s = watch_window(&lab);
    assert_single_owner(&lab, &s, "lb01", &[&lb01, &lb02]);
    let mac1 = lab.mac_of("lb01").expect("mac");
    assert!(withheld_naming(&lb02, &mac1), "{}", lb02.log_text());
}

#[test]
fn s6_auth_mismatch_does_not_claim_a_held_vip() {
    let lab = pair_lab("s6");
    let cfg = lb02_config(&lab).replace("auth_pass = \"1111\"", "auth_pass = \"2222\"");
    let (lb01, lb02) = lb01_then(&lab, &cfg);
    let s = watch_window(&lab);
    assert_single_owner(&lab, &s, "lb01", &[&lb01, &lb02]);
    let mac1 = lab.mac_of("lb01").expect("mac");
    assert!(withheld_naming(&lb02, &mac1), "{}", lb02.log_text());
}

#[test]
fn s4_isolated_master_releases_and_the_heal_makes_no_second_owner() {
    let lab = pair_lab("s4");
    let lb01 = start_splitguard(&lab, "lb01", &lb01_config(&lab));
    let lb02 = start_splitguard(&lab, "lb02", &lb02_config(&lab));
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "steady state");
    let port = lab.host("lb01").expect("lb01").bridge_port.clone();
    let watch = lab
        .watch_owners("gw", VIP, SAMPLE_EVERY, SAMPLES)
        .expect("arping starts");
    // Cut lb01 off at the switch; its own link stays up.
    lab.nft(
        None,
        &format!(
            "table bridge s4 {{\n chain cut {{\n  type filter hook forward priority 0;\n  \
             iifname \"{port}\" drop\n  oifname \"{port}\" drop\n }}\n}}\n"
        ),
    )
    .expect("nft");
    let cut = Instant::now();
    let released = wait_for(Duration::from_secs(10), || {
        (!holds(&lab, "lb01")).then(Instant::now)
    })
    .unwrap_or_else(|| panic!("lb01 kept the VIP while cut off\n{}", logs(&[&lb01, &lb02])));
    // fall (3) × interval (1 s) + 1 s.
    let took = released - cut;
    assert!(
        took <= Duration::from_secs(4),
        "lb01 released after {took:?}\n{}",
        logs(&[&lb01, &lb02])
    );
    wait_for(BOUND, || holds(&lab, "lb02").then_some(()))
        .unwrap_or_else(|| panic!("lb02 never took over\n{}", logs(&[&lb01, &lb02])));
    std::thread::sleep(Duration::from_secs(2));
    lab.nft(None, "delete table bridge s4\n").expect("heal");
    let mut watch = watch;
    watch.wait_exit(Duration::from_secs(30));
    let s = OwnerSamples::parse(&watch.log_text());
    assert_eq!(
        s.dual(),
        0,
        "gw saw two owners: {s:?}\n{}",
        logs(&[&lb01, &lb02])
    );
    // After the heal lb01 (higher priority) takes the VIP back once its reference
    // is proven again; still one owner throughout.
    let after = watch_window(&lab);
    assert_eq!(
        after.dual(),
        0,
        "two owners after the heal: {after:?}\n{}",
        logs(&[&lb01, &lb02])
    );
    assert!(
        lb01.log_text().contains("releasing the VIPs"),
        "{}",
        lb01.log_text()
    );
}

#[test]
fn s5_gateway_down_keeps_the_vip_where_it_is() {
    let lab = pair_lab("s5");
    // The default gateway is the reference: no `references` key.
    for h in ["lb01", "lb02"] {
        lab.run(h, &["ip", "route", "add", "default", "via", GW])
            .expect("route");
    }
    let arb = |peer: &str| {
        format!(
            "\n[arbiter]\npeers = [\"{peer}\"]\nprobe_interval = \"1s\"\nprobe_timeout = \"500ms\"\n"
        )
    };
    let lb01 = start_splitguard(
        &lab,
        "lb01",
        &sg_config(&lab, "lb01", 150, 2, "1s", &arb(LB02)),
    );
    let lb02 = start_splitguard(
        &lab,
        "lb02",
        &sg_config(&lab, "lb02", 100, 2, "1s", &arb(LB01)),
    );
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "steady state");
    assert!(
        lb01.log_text().contains("using the default gateway"),
        "{}",
        lb01.log_text()
    );
    lab.nft(
        Some("gw"),
        "table inet s5 {\n chain input {\n  type filter hook input priority 0;\n  icmp type echo-request drop\n }\n}\n",
    )
    .expect("nft");
    let s = watch_window(&lab);
    assert_single_owner(&lab, &s, "lb01", &[&lb01, &lb02]);
    assert_eq!(
        s.empty(),
        0,
        "the VIP went down: {s:?}\n{}",
        logs(&[&lb01, &lb02])
    );
    for p in [&lb01, &lb02] {
        assert!(
            p.log_text().contains("arbiter demotion"),
            "both nodes are demoted alike:\n{}",
            logs(&[&lb01, &lb02])
        );
    }
}

#[test]
fn reboot_dry_run_logs_one_reboot_and_the_ledger_refuses_a_second() {
    let lab = pair_lab("reboot");
    let cfg = sg_config(
        &lab,
        "lb01",
        150,
        2,
        "1s",
        &arbiter(
            &[],
            "on_isolated = \"reboot\"\nreboot_after = \"1s\"\nreboot_min_uptime = \"0s\"\n",
        ),
    );
    let path = lab.write_file("lb01.toml", &cfg).expect("config");
    let lb01 = lab
        .spawn(
            "lb01",
            "splitguard-lb01",
            &[
                env!("CARGO_BIN_EXE_splitguard"),
                "run",
                "--dry-run",
                "-c",
                path.to_str().expect("utf-8"),
            ],
        )
        .expect("starts");
    expect_owner(&lab, Some("lb01"), &[&lb01], "lb01 master");
    let drop_pings = "table inet gwdown {\n chain input {\n  type filter hook input priority 0;\n  icmp type echo-request drop\n }\n}\n";
    let count = |what: &str| lb01.log_text().matches(what).count();

    lab.nft(Some("gw"), drop_pings).expect("nft");
    wait_for(BOUND, || (count("would reboot") == 1).then_some(()))
        .unwrap_or_else(|| panic!("no dry-run reboot\n{}", lb01.log_text()));
    assert!(!holds(&lab, "lb01"), "released before the reboot");
    lab.nft(Some("gw"), "delete table inet gwdown\n")
        .expect("heal");
    // Proven connected again (rise 2), lb01 claims back...
    wait_for(BOUND, || holds(&lab, "lb01").then_some(()))
        .unwrap_or_else(|| panic!("lb01 never came back\n{}", lb01.log_text()));
    // ...and a second isolation inside the hour is refused by the ledger.
    lab.nft(Some("gw"), drop_pings).expect("nft");
    wait_for(BOUND, || (count("not rebooting") == 1).then_some(()))
        .unwrap_or_else(|| panic!("the ledger did not refuse\n{}", lb01.log_text()));
    assert_eq!(count("would reboot"), 1, "{}", lb01.log_text());
    assert!(
        lb01.log_text().contains("1 reboot already in the last"),
        "{}",
        lb01.log_text()
    );
    let ledger = lab.dir().join("lb01-state/reboot-ledger.dry-run.jsonl");
    assert!(ledger.exists(), "dry-run ledger at {}", ledger.display());
    assert!(
        !lab.dir().join("lb01-state/reboot-ledger.jsonl").exists(),
        "a dry run never writes the real ledger"
    );
}

/// The real (not dry-run) path with a harmless reboot command: the hardware
/// watchdog (a plain file here, written with the kernel's protocol) is fed while
/// healthy, the command runs once the ledger allows it, and feeding then stops so
/// the hardware would reset a node whose reboot hangs. A clean stop writes the
/// magic close `V`.
#[test]
fn reboot_runs_the_command_and_starves_the_hardware_watchdog() {
    let lab = pair_lab("rebootwd");
    let dir = lab.dir().to_path_buf();
    let wd = dir.join("watchdog");
    std::fs::write(&wd, b"").expect("watchdog file");
    let marker = dir.join("rebooted");
    let extra = format!(
        "on_isolated = \"reboot\"\nreboot_after = \"1s\"\nreboot_min_uptime = \"0s\"\n\
         reboot_command = [\"touch\", \"{}\"]\nwatchdog_device = \"{}\"\n",
        marker.display(),
        wd.display()
    );
    let cfg = sg_config(&lab, "lb01", 150, 2, "1s", &arbiter(&[], &extra));
    let mut lb01 = start_splitguard(&lab, "lb01", &cfg);
    expect_owner(&lab, Some("lb01"), &[&lb01], "lb01 master");
    let size = || std::fs::metadata(&wd).map(|m| m.len()).unwrap_or(0);
    let fed = size();
    assert!(fed > 0, "not fed while healthy\n{}", lb01.log_text());
    assert!(
        std::fs::read(&wd).expect("read").iter().all(|b| *b == 0),
        "feeds are single NUL bytes"
    );

    lab.nft(
        Some("gw"),
        "table inet gwdown {\n chain input {\n  type filter hook input priority 0;\n  icmp type echo-request drop\n }\n}\n",
    )
    .expect("nft");
    wait_for(BOUND, || marker.exists().then_some(()))
        .unwrap_or_else(|| panic!("the reboot command never ran\n{}", lb01.log_text()));
    let at_reboot = size();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        size() <= at_reboot + 1,
        "still fed after the reboot started ({} -> {} bytes)\n{}",
        at_reboot,
        size(),
        lb01.log_text()
    );
    assert!(
        std::fs::read_to_string(dir.join("lb01-state/reboot-ledger.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
            == 1,
        "the real ledger records the reboot"
    );
    lb01.stop(Duration::from_secs(10));
    assert_eq!(
        std::fs::read(&wd).expect("read").last(),
        Some(&b'V'),
        "magic close on a clean stop"
    );
}

#[test]
fn own_link_down_is_a_local_fault_paged_once_after_the_link_returns() {
    let lab = pair_lab("linkdn");
    let (recorder, events) = start_recorder(&lab, 8080);
    let hook = format!(
        "\n[[channel]]\ntype = \"webhook\"\nname = \"gw\"\nurl = \"http://{GW}:8080/hook\"\n\n\
         [alerts]\ngroup_wait = \"1s\"\n"
    );
    let lb01 = start_splitguard(
        &lab,
        "lb01",
        &sg_config(
            &lab,
            "lb01",
            150,
            2,
            "1s",
            &format!("{}{hook}", arbiter(&[LB02], "")),
        ),
    );
    let lb02 = start_splitguard(&lab, "lb02", &lb02_config(&lab));
    let procs = [&lb01, &lb02, &recorder];
    expect_owner(&lab, Some("lb01"), &procs, "lb01 master");
    // Past the start-up's own pages, if any.
    std::thread::sleep(Duration::from_secs(3));
    let from_lb01 = |kinds: &[&str]| -> Vec<serde_json::Value> {
        read_jsonl(&events)
            .into_iter()
            .map(|e| e["json"].clone())
            .filter(|b| b["node"] == "lb01" && kinds.iter().any(|k| b["kind"] == *k))
            .collect()
    };
    assert!(from_lb01(&["link_down", "isolated"]).is_empty());

    lab.run("lb01", &["ip", "link", "set", "eth0", "down"])
        .expect("link down");
    // Past group_wait and fall × probe_interval: the page is made, and fails.
    std::thread::sleep(Duration::from_secs(8));
    lab.run("lb01", &["ip", "link", "set", "eth0", "up"])
        .expect("link up");
    // The retry backoff is at most 60 s.
    let notices = wait_for(Duration::from_secs(75), || {
        let n = from_lb01(&["link_down", "isolated"]);
        (!n.is_empty()).then_some(n)
    })
    .unwrap_or_else(|| panic!("nothing from lb01 at gw\n{}", logs(&procs)));
    // Anything more would follow at once.
    std::thread::sleep(Duration::from_secs(3));
    let notices = from_lb01(&["link_down", "isolated"])
        .into_iter()
        .chain(notices)
        .collect::<Vec<_>>();
    let distinct: std::collections::BTreeSet<String> = notices
        .iter()
        .map(|n| n["idempotency_key"].to_string())
        .collect();
    assert_eq!(distinct.len(), 1, "{notices:#?}\n{}", logs(&procs));
    let n = &notices[0];
    assert_eq!(n["kind"], "link_down", "{n}");
    assert_eq!(n["severity"], "warning", "{n}");
    assert_eq!(n["status"], "resolved", "{n}");
    assert_eq!(n["missed"], true, "{n}");
    assert!(
        n["cause"].as_str().is_some_and(|c| c.contains("eth0")),
        "{n}"
    );
    assert!(
        !lb01.log_text().contains("kind=\"isolated\"")
            && !lb01.log_text().contains("kind=isolated"),
        "{}",
        logs(&procs)
    );
}
