//! Peer fencing in `splitguard watch` beside keepalived (issue 21), in the
//! fencing lab: keepalived 2.2.7 on lb01 (priority 150) and lb02 (100),
//! `splitguard watch` on lb01 alone (role master) with a `[[fence]]` for lb02
//! through Debian's `fence_ipmilan` at lb02's IPMI BMC (`ipmi_sim`, whose
//! power-off kills every process of lb02's namespace and downs its links),
//! and gw (192.0.2.254) as its reference. The fault is S2: VRRP dropped on
//! lb02's input, so lb02's keepalived claims the VIP too.
//!
//! - Connected: the watch sees the split brain (lb02's MAC answering for the
//!   VIP lb01 holds), knows it is the better node from the adverts, fences
//!   lb02 after `fence_after`, confirms with `status`; gw then sees lb01
//!   alone. The same with no `references`: the watch probes lb01's default
//!   gateway (gw).
//! - Isolated (lb01's pings to gw dropped): the watch refuses, saying it is
//!   isolated, and lb02 is never powered off.
//!
//! Needs root, keepalived, fence-agents, ipmitool and openipmi; fails
//! without them.

mod common;

use common::*;
use splitguard_lab::bmc::{BMC_PASSWORD, IpmiBmc};
use splitguard_lab::configs;
use splitguard_lab::{Lab, LabProcess, wait_for};
use std::time::{Duration, Instant};

/// How long a fence may take to show: keepalived's Master_Down on lb02, the
/// watch's detection and references, `fence_after` (2 s), the agent's calls.
const FENCE_BOUND: Duration = Duration::from_secs(45);

/// Drops lb01's echo requests to gw: its only reference never answers.
const NO_REFERENCE: &str = "table inet noref {\n chain out {\n  type filter hook output priority 0;\n  ip daddr 192.0.2.254 icmp type echo-request drop\n }\n}\n";

/// The watch's config on lb01: gw as the reference (or, with `references`
/// false, none: the default gateway then), a fence of lb02 (the webhook goes
/// nowhere: the event stream is what the tests read).
fn watch_config(lab: &Lab, references: bool) -> String {
    format!(
        "{}{}{}",
        configs::watch_config(lab, "lb01", "master", "http://192.0.2.254:8080/hook"),
        if references {
            "\n[arbiter]\nreferences = [\"192.0.2.254\"]\n"
        } else {
            ""
        },
        configs::fence_ipmi_table(
            "lb01",
            BMC_PASSWORD,
            "fence_after = \"2s\"\ntimeout = \"5s\"\n"
        )
    )
}

/// The watch's `status --json`, or None until its socket answers.
fn try_watch_status(lab: &Lab) -> Option<serde_json::Value> {
    try_status_at(lab, "lb01", &configs::watch_socket(lab, "lb01"))
}

/// keepalived on both nodes with lb01 master, the watch on lb01 (`references`
/// as in [`watch_config`]), then S2. Returns the processes (keepalived lb01,
/// keepalived lb02, the watch).
fn s2_beside_keepalived(lab: &Lab, references: bool) -> [LabProcess; 3] {
    let ka1 = start_keepalived(lab, "lb01", &ka_config("lb01", 150, 2, "1"));
    expect_owner(lab, Some("lb01"), &[&ka1], "keepalived lb01 master");
    let w = start_watch(lab, "lb01", &watch_config(lab, references));
    let ka2 = start_keepalived(lab, "lb02", &ka_config("lb02", 100, 2, "1"));
    // lb02 settles as backup before the fault.
    std::thread::sleep(Duration::from_secs(2));
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    [ka1, ka2, w]
}

#[test]
fn the_watch_fences_the_keepalived_peer_holding_the_vip() {
    fences_lb02("fw-s2", true);
}

#[test]
fn without_references_the_watch_probes_the_default_gateway_and_fences() {
    fences_lb02("fw-gw", false);
}

/// S2 beside keepalived: the watch on lb01 fences lb02. `references`: gw is
/// configured as the reference, else it is lb01's default gateway.
fn fences_lb02(tag: &str, references: bool) {
    let lab = configs::fence_lab(tag).expect("lab builds (run as root)");
    let bmc1 = IpmiBmc::start(&lab, "bmc1", "lb01").expect("bmc1");
    let bmc2 = IpmiBmc::start(&lab, "bmc2", "lb02").expect("bmc2");
    if !references {
        let out = lab
            .run(
                "lb01",
                &["ip", "route", "add", "default", "via", "192.0.2.254"],
            )
            .expect("ip route");
        assert!(out.status.success(), "{out:?}");
    }
    let [ka1, ka2, w] = s2_beside_keepalived(&lab, references);
    let procs = [&ka1, &ka2, &w];
    // Both keepalived hold the VIP: the split brain the watch must end.
    let both = wait_for(BOUND, || {
        (holds(&lab, "lb01") && holds(&lab, "lb02")).then(Instant::now)
    })
    .unwrap_or_else(|| panic!("lb02 never claimed too\n{}", logs(&procs)));
    let fenced = wait_for(FENCE_BOUND, || (bmc2.power_offs() > 0).then_some(()));
    assert!(
        fenced.is_some(),
        "the watch never fenced lb02\n{}",
        logs_with_bmcs(&procs, &[&bmc1, &bmc2])
    );
    let mac = lab.mac_of("lb01").expect("mac");
    let alone = wait_for(BOUND, || {
        let owners = lab.vip_owners("gw", configs::VIP).unwrap_or_default();
        (owners.len() == 1 && owners.contains(&mac)).then(Instant::now)
    })
    .unwrap_or_else(|| {
        panic!(
            "gw never saw lb01 alone: {:?}\n{}",
            lab.vip_owners("gw", configs::VIP),
            logs_with_bmcs(&procs, &[&bmc1, &bmc2])
        )
    });
    eprintln!(
        "both held the VIP; gw saw lb01 alone {} ms later",
        alone.duration_since(both).as_millis()
    );
    let st = wait_for(FENCE_BOUND, || {
        let st = try_watch_status(&lab)?;
        (st["fence"]["peers"][0]["phase"] == "fenced").then_some(st)
    })
    .unwrap_or_else(|| {
        panic!(
            "the watch never confirmed the fence\n{}",
            logs_with_bmcs(&procs, &[&bmc1, &bmc2])
        )
    });
    let p = &st["fence"]["peers"][0];
    assert_eq!(p["peer"], "192.0.2.6", "{p}");
    assert_eq!(p["standing"], "better", "{p}");
    assert_eq!(p["outcomes"]["fenced"], 1, "{p}");
    assert_eq!(st["arbiter"]["isolated"], false, "{st}");
    assert_eq!(st["arbiter"]["references"][0]["ip"], "192.0.2.254", "{st}");
    assert_eq!(bmc2.power_offs(), 1, "{:?}", bmc2.power_log());
    assert_eq!(
        bmc1.power_offs(),
        0,
        "{}",
        logs_with_bmcs(&procs, &[&bmc1, &bmc2])
    );
    let started = fence_events(&events(&lab, "watch-lb01"), "fencing");
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["reason"], "split_brain", "{started:?}");
    let call = started[0]["call"].as_str().unwrap_or_default();
    assert!(
        call.starts_with("fence_ipmilan action=off ")
            && call.contains(" ip=192.0.2.205 ")
            && call.contains("password=***"),
        "{call}"
    );
    assert_eq!(
        fence_events(&events(&lab, "watch-lb01"), "fenced").len(),
        1,
        "{:?}",
        events(&lab, "watch-lb01")
    );
    let audit = std::fs::read_to_string(lab.dir().join("watch-lb01-state/fence-audit.jsonl"))
        .expect("the audit file");
    assert!(
        audit.contains("\"event\":\"fencing\"") && audit.contains("\"event\":\"fenced\""),
        "{audit}"
    );
    assert!(
        !audit.contains(BMC_PASSWORD),
        "the password leaked: {audit}"
    );
    // lb01's keepalived kept the VIP throughout.
    assert!(holds(&lab, "lb01"));
}

#[test]
fn an_isolated_watch_refuses_to_fence() {
    let lab = configs::fence_lab("fw-iso").expect("lab builds (run as root)");
    let bmc1 = IpmiBmc::start(&lab, "bmc1", "lb01").expect("bmc1");
    let bmc2 = IpmiBmc::start(&lab, "bmc2", "lb02").expect("bmc2");
    lab.nft(Some("lb01"), NO_REFERENCE).expect("nft");
    let [ka1, ka2, w] = s2_beside_keepalived(&lab, true);
    let procs = [&ka1, &ka2, &w];
    wait_for(BOUND, || {
        (holds(&lab, "lb01") && holds(&lab, "lb02")).then_some(())
    })
    .unwrap_or_else(|| panic!("lb02 never claimed too\n{}", logs(&procs)));
    let refused = wait_for(FENCE_BOUND, || {
        let r = fence_events(&events(&lab, "watch-lb01"), "refused");
        (!r.is_empty()).then_some(r)
    })
    .unwrap_or_else(|| {
        panic!(
            "no refusal\n{:?}\n{}",
            events(&lab, "watch-lb01"),
            logs_with_bmcs(&procs, &[&bmc1, &bmc2])
        )
    });
    assert!(
        refused
            .iter()
            .any(|e| e["detail"].as_str().is_some_and(|d| d.contains("isolated"))),
        "{refused:?}"
    );
    // Well past fence_after and the agent's calls: still nobody fenced,
    // the split brain still there.
    std::thread::sleep(Duration::from_secs(20));
    assert_eq!(
        bmc1.power_offs() + bmc2.power_offs(),
        0,
        "the isolated watch fenced\n{}",
        logs_with_bmcs(&procs, &[&bmc1, &bmc2])
    );
    assert!(fence_events(&events(&lab, "watch-lb01"), "fencing").is_empty());
    assert!(holds(&lab, "lb02"), "lb02 still holds: nobody fenced it");
    let st = try_watch_status(&lab).expect("status");
    assert_eq!(st["arbiter"]["isolated"], true, "{st}");
    assert_ne!(st["fence"]["peers"][0]["phase"], "fenced", "{st}");
}
