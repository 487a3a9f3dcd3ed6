//! A hostile segment (issue 19): a fourth lab host floods the pair with
//! malformed and hostile VRRP frames for the pair's own VRID and VIP, 10,000 a
//! second for 10 s, while gw watches who answers for the VIP. The pair keeps
//! its owner, the backup never claims, each daemon writes a bounded number of
//! rejection lines, and no second master is paged.
//!
//! Needs root; fails without it.

mod common;

use common::*;
use splitguard_lab::configs::{GW_ADDR, LB01_ADDR, LB02_ADDR, VIP_ADDR};
use splitguard_lab::flood::{FloodSpec, flood};
use splitguard_lab::{Lab, OwnerSamples};
use splitguard_vrrp::Version;
use std::net::Ipv4Addr;
use std::time::Duration;

const FLOOD_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
const SAMPLES: u32 = 56;

#[test]
fn a_flood_of_garbage_keeps_the_owner_and_the_log_bounded() {
    let lab = Lab::builder("flood")
        .host("lb01", LB01_ADDR)
        .host("lb02", LB02_ADDR)
        .host("gw", GW_ADDR)
        .host("flood", FLOOD_ADDR)
        .build()
        .expect("lab builds (run as root)");
    let lb01 = start_splitguard(&lab, "lb01", &sg_config(&lab, "lb01", 150, 2, "1s", ""));
    let lb02 = start_splitguard(&lab, "lb02", &sg_config(&lab, "lb02", 100, 2, "1s", ""));
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "steady state");
    let before = |p: &splitguard_lab::LabProcess| p.log_text().lines().count();
    let (lines01, lines02) = (before(&lb01), before(&lb02));

    let mut w = lab
        .watch_owners("gw", VIP, SAMPLE_EVERY, SAMPLES)
        .expect("arping starts");
    let report = flood(
        &lab,
        "flood",
        &FloodSpec {
            src: FLOOD_ADDR,
            version: Version::V2,
            vrid: 51,
            vip: VIP_ADDR,
            password: "1111".into(),
            adver_int: 1,
            rate: 10_000,
            duration: Duration::from_secs(10),
        },
    )
    .expect("the flood runs");
    w.wait_exit(Duration::from_secs(40));
    let s = OwnerSamples::parse(&w.log_text());
    let procs = [&lb01, &lb02];
    assert!(
        report.sent >= 50_000,
        "the flood sent too little to mean anything: {report:?}"
    );
    let mac = lab.mac_of("lb01").expect("mac");
    assert_eq!(s.dual(), 0, "gw saw two owners: {s:?}\n{}", logs(&procs));
    assert_eq!(
        s.all_owners().into_iter().collect::<Vec<_>>(),
        vec![mac],
        "only lb01 may answer: {s:?}\n{}",
        logs(&procs)
    );
    let after = |p: &splitguard_lab::LabProcess, from: usize| -> Vec<String> {
        p.log_text()
            .lines()
            .skip(from)
            .map(str::to_string)
            .collect()
    };
    for (name, new) in [
        ("lb01", after(&lb01, lines01)),
        ("lb02", after(&lb02, lines02)),
    ] {
        let rejected = new.iter().filter(|l| l.contains("rejected")).count();
        // First lines: a burst of 5, one more a second; a summary of at most 6
        // lines per 10 s: about 30 in the flood's 10 s and the summary after.
        eprintln!("{name}: {rejected} rejection lines for {report:?}");
        // Not vacuous: the frames reached the daemon and were refused.
        assert!(
            rejected >= 1,
            "{name} rejected nothing: the flood did not reach it:\n{}",
            new.join("\n")
        );
        assert!(
            rejected <= 40,
            "{name} wrote {rejected} rejection lines for {report:?}:\n{}",
            new.join("\n")
        );
        assert!(
            !new.iter().any(|l| l.contains("split_brain")),
            "{name} paged a split brain for a flood:\n{}",
            new.join("\n")
        );
        assert!(
            !new.iter()
                .any(|l| l.contains("to=\"MASTER\"") && l.contains("state changed")),
            "{name} changed state under the flood:\n{}",
            new.join("\n")
        );
    }
}
