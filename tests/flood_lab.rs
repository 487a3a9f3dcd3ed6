//! A hostile segment (issue 19): a fourth lab host floods the pair with
//! malformed and hostile VRRP frames for the pair's own VRID and VIP, 10,000 a
//! second for 10 s, while gw watches who answers for the VIP and times lb01's
//! adverts. The pair keeps its owner, lb01's adverts keep their interval, the
//! backup never claims, each daemon writes a bounded number of rejection
//! lines, its rejection counters equal what was sent per reason, and the
//! watchers page `invalid_adverts` naming the flooding host, never a second
//! master.
//!
//! Needs root; fails without it.

mod common;

use common::*;
use splitguard_lab::configs::{GW_ADDR, LB01_ADDR, LB02_ADDR, VIP_ADDR};
use splitguard_lab::flood::{FloodReport, FloodSpec, Garbage, flood};
use splitguard_lab::{Lab, LabProcess, OwnerSamples};
use splitguard_vrrp::Version;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

const FLOOD_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
const SAMPLES: u32 = 56;
/// The pair's advert interval (v2, 1 s).
const INTERVAL: f64 = 1.0;

/// `splitguard_adverts_rejected_total` of VI_1 by reason, from `node`'s /metrics.
fn rejected(lab: &Lab, addr: Ipv4Addr) -> BTreeMap<String, u64> {
    let text = http_get(lab, &format!("http://{addr}:9745/metrics"));
    assert!(!text.starts_with("ERR"), "/metrics of {addr}: {text}");
    text.lines()
        .filter_map(|l| {
            let rest =
                l.strip_prefix("splitguard_adverts_rejected_total{instance=\"VI_1\",reason=\"")?;
            let (reason, value) = rest.split_once("\"} ")?;
            Some((reason.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Raw socket drops in `host` (the kernel's count of frames a full receive
/// queue refused), to tell a daemon that miscounts from one that never got
/// the frame.
fn raw_drops(lab: &Lab, host: &str) -> String {
    lab.run(host, &["cat", "/proc/net/raw"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| e.to_string())
}

fn new_lines(p: &LabProcess, from: usize) -> Vec<String> {
    p.log_text()
        .lines()
        .skip(from)
        .map(str::to_string)
        .collect()
}

#[test]
fn a_flood_of_garbage_keeps_the_owner_the_adverts_and_the_log_bounded() {
    let lab = Lab::builder("flood")
        .host("lb01", LB01_ADDR)
        .host("lb02", LB02_ADDR)
        .host("gw", GW_ADDR)
        .host("flood", FLOOD_ADDR)
        .build()
        .expect("lab builds (run as root)");
    let config = |node: &str, prio: u8, addr: Ipv4Addr| {
        sg_config(&lab, node, prio, 2, "1s", "").replacen(
            "\n\n[[instance]]",
            &format!("\nmetrics_listen = \"{addr}:9745\"\n\n[[instance]]"),
            1,
        )
    };
    let lb01 = start_splitguard(&lab, "lb01", &config("lb01", 150, LB01_ADDR));
    let lb02 = start_splitguard(&lab, "lb02", &config("lb02", 100, LB02_ADDR));
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "steady state");
    let before = |p: &LabProcess| p.log_text().lines().count();
    let (lines01, lines02) = (before(&lb01), before(&lb02));
    let counted = [rejected(&lab, LB01_ADDR), rejected(&lab, LB02_ADDR)];

    let mut w = lab
        .watch_owners("gw", VIP, SAMPLE_EVERY, SAMPLES)
        .expect("arping starts");
    // lb01's adverts as gw receives them, over the flood and a little more.
    let adverts = gw_tshark(&lab, &format!("ip proto 112 and src host {LB01_ADDR}"))
        .args([
            "-a",
            "duration:13",
            "-T",
            "fields",
            "-e",
            "frame.time_relative",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tshark starts");
    // tshark needs a moment to open its capture.
    std::thread::sleep(Duration::from_secs(1));
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
    let adverts = adverts.wait_with_output().expect("tshark ends");
    w.wait_exit(Duration::from_secs(40));
    let s = OwnerSamples::parse(&w.log_text());
    let procs = [&lb01, &lb02];
    assert!(
        report.sent >= 50_000,
        "the flood sent too little to mean anything: {report:?}"
    );

    // One owner throughout.
    let mac = lab.mac_of("lb01").expect("mac");
    assert_eq!(s.dual(), 0, "gw saw two owners: {s:?}\n{}", logs(&procs));
    assert_eq!(
        s.all_owners().into_iter().collect::<Vec<_>>(),
        vec![mac],
        "only lb01 may answer: {s:?}\n{}",
        logs(&procs)
    );

    // lb01's adverts kept their interval: no gap near two intervals.
    let times: Vec<f64> = String::from_utf8_lossy(&adverts.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let widest = gaps.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "lb01 adverts at gw: {} in the capture, widest gap {widest:.3} s",
        times.len()
    );
    assert!(
        times.len() >= 10,
        "gw captured {} adverts of lb01 in 12 s: {times:?}",
        times.len()
    );
    assert!(
        widest < INTERVAL * 1.5,
        "lb01 missed an advert under the flood: widest gap {widest:.3} s in {gaps:?}"
    );

    // Every frame counted under its reason, exactly.
    std::thread::sleep(Duration::from_secs(1));
    for ((name, addr), before) in [("lb01", LB01_ADDR), ("lb02", LB02_ADDR)]
        .into_iter()
        .zip(counted)
    {
        let after = rejected(&lab, addr);
        let host_drops = raw_drops(&lab, name);
        for reason in Garbage::ALL.iter().filter_map(|g| g.reason()) {
            let got =
                after.get(reason).copied().unwrap_or(0) - before.get(reason).copied().unwrap_or(0);
            assert_eq!(
                got,
                report.sent_for(reason),
                "{name} counted {got} frames under {reason} for {report:?}\n\
                 counters: {after:?}\n/proc/net/raw:\n{host_drops}"
            );
        }
    }

    for (name, new) in [
        ("lb01", new_lines(&lb01, lines01)),
        ("lb02", new_lines(&lb02, lines02)),
    ] {
        assert_log_bounded(name, &new, &report);
    }
}

/// The log of one daemon over the flood: a bounded number of rejection lines,
/// `invalid_adverts` naming the flooding host, no second master, no claim.
fn assert_log_bounded(name: &str, new: &[String], report: &FloodReport) {
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
        new.iter()
            .any(|l| l.contains("invalid_adverts") && l.contains(&FLOOD_ADDR.to_string())),
        "{name} did not name the flooding host in an invalid_adverts incident:\n{}",
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
