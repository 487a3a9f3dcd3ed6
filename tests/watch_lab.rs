//! `splitguard watch` standalone beside keepalived 2.2.7 on both nodes, paging a
//! webhook receiver on gw: the split-brain scenarios are named by their cause and
//! reach gw within 1 s of the second owner appearing; a normal failover is a
//! `failover`, not split brain; resolved follows. The same over IPv6 (VRRPv3,
//! VIP 2001:db8::3): the second owner found by neighbour solicitation, the
//! VRID mistake named from the passive capture of IPv6 adverts; and an IPv6
//! `run` node whose advert interval differs from the keepalived master's pages
//! the mismatch.
//!
//! Needs root, keepalived and python3; fails without them.

mod common;

use common::*;
use splitguard_lab::configs::Family;
use splitguard_lab::{Lab, LabProcess, configs, wait_for};
use std::time::Duration;

/// What gw's receiver got: one JSON value per request.
fn received(lab: &Lab) -> Vec<serde_json::Value> {
    std::fs::read_to_string(lab.dir().join("hooks.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn start_receiver(lab: &Lab) -> LabProcess {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/webhook_receiver.py"
    );
    let out = lab.dir().join("hooks.jsonl");
    let p = lab
        .spawn(
            "gw",
            "webhook-receiver",
            &[
                "python3",
                script,
                "192.0.2.254",
                "8080",
                out.to_str().expect("utf-8"),
            ],
        )
        .expect("receiver starts");
    // Ready when the port answers.
    wait_for(Duration::from_secs(10), || {
        lab.run(
            "gw",
            &[
                "python3",
                "-c",
                "import socket; socket.create_connection(('192.0.2.254', 8080), 1)",
            ],
        )
        .ok()
        .filter(|o| o.status.success())
    })
    .expect("receiver listening");
    p
}

fn start_watch(lab: &Lab, family: Family) -> LabProcess {
    let cfg = configs::watch_config_in(
        lab,
        "lb02",
        "backup",
        "http://192.0.2.254:8080/hook",
        family,
    );
    common::start_watch(lab, "lb02", &cfg)
}

/// When the VIP arrived on lb02, from the watch's event stream (unix ms).
fn vip_arrived_ms(lab: &Lab) -> Option<u64> {
    std::fs::read_to_string(lab.dir().join("watch-lb02-events.jsonl"))
        .ok()?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "vip_arrived")
        .and_then(|v| v["at_ms"].as_u64())
}

/// Runs one scenario: keepalived on both nodes (lb02's config changed by
/// `lb02_ka`), the watch on lb02, `fault` applied once lb01 holds the VIP; then
/// expects a firing alert of `kind` naming lb01's MAC within 1 s of the VIP
/// arriving on lb02.
fn scenario(tag: &str, lb02_ka: impl Fn(String) -> String, fault: impl Fn(&Lab), kind: &str) {
    scenario_in(tag, lb02_ka, fault, kind, Family::Ipv4)
}

fn scenario_in(
    tag: &str,
    lb02_ka: impl Fn(String) -> String,
    fault: impl Fn(&Lab),
    kind: &str,
    family: Family,
) {
    let lab = configs::pair_lab_in(tag, family).expect("lab builds (run as root)");
    let _rx = start_receiver(&lab);
    let ka = |node, prio| configs::ka_config_in(node, prio, 2, "1", family);
    let ka1 = start_keepalived(&lab, "lb01", &ka("lb01", 150));
    expect_owner_in(
        &lab,
        Some("lb01"),
        &[&ka1],
        "keepalived lb01 master",
        family,
    );
    let w = start_watch(&lab, family);
    let ka2 = start_keepalived(&lab, "lb02", &lb02_ka(ka("lb02", 100)));
    std::thread::sleep(Duration::from_secs(2));
    fault(&lab);
    let procs = [&ka1, &ka2, &w];
    let alert = wait_for(BOUND, || {
        received(&lab)
            .into_iter()
            .find(|r| r["body"]["kind"] == kind && r["body"]["status"] == "firing")
    })
    .unwrap_or_else(|| {
        panic!(
            "no {kind} alert at gw; got {:?}\n{}",
            received(&lab),
            logs(&procs)
        )
    });
    let body = &alert["body"];
    let mac1 = lab.mac_of("lb01").expect("mac");
    assert_eq!(body["severity"], "critical", "{body}");
    assert_eq!(body["node"], "lb02");
    assert_eq!(body["vip"], configs::vip_in(family));
    assert!(
        body["cause"].as_str().unwrap_or_default().contains(&mac1),
        "the cause names lb01's MAC: {body}"
    );
    assert!(
        body["owners"]
            .as_array()
            .is_some_and(|o| o.iter().any(|m| m == mac1.as_str()))
    );
    let code = body["code"].as_str().unwrap_or_default();
    assert!(
        code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit()),
        "{body}"
    );
    assert_eq!(
        alert["headers"]["idempotency-key"], body["idempotency_key"],
        "{alert}"
    );
    let arrived = vip_arrived_ms(&lab).expect("the watch saw the VIP arrive");
    let got_ms = (alert["t"].as_f64().unwrap_or_default() * 1000.0) as u64;
    let latency = got_ms.saturating_sub(arrived);
    assert!(
        latency <= 1000,
        "alert reached gw {latency} ms after the second owner appeared\n{}",
        logs(&procs)
    );
    // The incident shows in `status`.
    let text = status_via(&lab, "lb02", "watch-lb02.sock").to_string();
    assert!(text.contains(code) && text.contains(kind), "status: {text}");
}

#[test]
fn s2_vrrp_firewalled_on_lb02_pages_split_brain() {
    scenario(
        "ws2",
        |c| c,
        |lab| {
            lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
        },
        "split_brain",
    );
}

#[test]
fn s3_vrid_mismatch_pages_vrid_mismatch() {
    scenario(
        "ws3",
        |c| c.replace("virtual_router_id 51", "virtual_router_id 52"),
        |_| {},
        "vrid_mismatch",
    );
}

#[test]
fn s6_auth_mismatch_pages_auth_mismatch() {
    scenario(
        "ws6",
        |c| c.replace("auth_pass 1111", "auth_pass 2222"),
        |_| {},
        "auth_mismatch",
    );
}

#[test]
fn a_normal_failover_is_a_failover_and_resolves() {
    failover_resolves("wfail", Family::Ipv4);
}

#[test]
fn v6_a_normal_failover_is_a_failover_and_resolves() {
    failover_resolves("wfail6", Family::Ipv6);
}

fn failover_resolves(tag: &str, family: Family) {
    let lab = configs::pair_lab_in(tag, family).expect("lab builds (run as root)");
    let _rx = start_receiver(&lab);
    let ka = |node, prio| configs::ka_config_in(node, prio, 2, "1", family);
    let mut ka1 = start_keepalived(&lab, "lb01", &ka("lb01", 150));
    let ka2 = start_keepalived(&lab, "lb02", &ka("lb02", 100));
    expect_owner_in(
        &lab,
        Some("lb01"),
        &[&ka1, &ka2],
        "keepalived lb01 master",
        family,
    );
    let w = start_watch(&lab, family);
    std::thread::sleep(Duration::from_secs(2));
    ka1.stop(Duration::from_secs(10));
    let procs = [&ka1, &ka2, &w];
    let alert = wait_for(BOUND, || {
        received(&lab)
            .into_iter()
            .find(|r| r["body"]["status"] == "firing")
    })
    .unwrap_or_else(|| panic!("no alert\n{}", logs(&procs)));
    assert_eq!(alert["body"]["kind"], "failover", "{alert}");
    assert_eq!(alert["body"]["severity"], "warning", "{alert}");
    // Give it time: no split brain may follow.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        received(&lab)
            .iter()
            .all(|r| r["body"]["kind"] == "failover"),
        "{:?}",
        received(&lab)
    );
    // lb01 comes back and preempts: the VIP leaves lb02, the failover resolves.
    let ka1 = start_keepalived(&lab, "lb01", &ka("lb01", 150));
    let resolved = wait_for(BOUND, || {
        received(&lab)
            .into_iter()
            .find(|r| r["body"]["status"] == "resolved")
    })
    .unwrap_or_else(|| panic!("no resolved\n{}", logs(&[&ka1, &ka2, &w])));
    assert_eq!(resolved["body"]["id"], alert["body"]["id"]);
    // The preemption overlap (lb01's gratuitous ARP while lb02 still had the VIP
    // for a moment) is no split brain.
    std::thread::sleep(Duration::from_secs(2));
    let kinds: Vec<String> = received(&lab)
        .iter()
        .map(|r| format!("{} {}", r["body"]["kind"], r["body"]["status"]))
        .collect();
    assert!(
        kinds.iter().all(|k| k.starts_with("\"failover\"")),
        "{kinds:?}"
    );
}

#[test]
fn v6_s2_vrrp_firewalled_on_lb02_pages_split_brain() {
    scenario_in(
        "ws2v6",
        |c| c,
        |lab| {
            lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
        },
        "split_brain",
        Family::Ipv6,
    );
}

#[test]
fn v6_s3_vrid_mismatch_pages_vrid_mismatch() {
    scenario_in(
        "ws3v6",
        |c| c.replace("virtual_router_id 51", "virtual_router_id 52"),
        |_| {},
        "vrid_mismatch",
        Family::Ipv6,
    );
}

/// VRRPv3 has no password; what two IPv6 nodes can disagree on instead is the
/// advert interval. A v3 backup follows the master's interval and keeps
/// silent, so beside keepalived nothing on the wire shows it; `run` knows its
/// own instance's interval and pages the mismatch from the captured adverts of
/// the keepalived master, as a warning (nothing splits).
#[test]
fn v6_advert_interval_mismatch_is_paged_by_the_node_that_knows_its_own() {
    let lab = configs::pair_lab6("wint6").expect("lab builds (run as root)");
    let _rx = start_receiver(&lab);
    let ka1 = start_keepalived(
        &lab,
        "lb01",
        &configs::ka_config_in("lb01", 150, 3, "1", Family::Ipv6),
    );
    expect_owner_in(
        &lab,
        Some("lb01"),
        &[&ka1],
        "keepalived lb01 master",
        Family::Ipv6,
    );
    let extra = format!(
        "\n[arbiter]\nenabled = false\n{}",
        configs::webhook_tables("http://192.0.2.254:8080/hook")
    );
    let lb02 = common::start_splitguard(
        &lab,
        "lb02",
        &configs::sg_config_in(&lab, "lb02", 100, 3, "2s", &extra, Family::Ipv6),
    );
    let procs = [&ka1, &lb02];
    let alert = wait_for(BOUND, || {
        received(&lab).into_iter().find(|r| {
            r["body"]["kind"] == "advert_interval_mismatch" && r["body"]["status"] == "firing"
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "no advert_interval_mismatch at gw; got {:?}\n{}",
            received(&lab),
            logs(&procs)
        )
    });
    let body = &alert["body"];
    assert_eq!(body["vip"], configs::VIP6, "{alert}");
    assert_eq!(body["severity"], "warning", "{alert}");
    let cause = body["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("fe80::ff:fe00:5")
            && cause.contains("VRRPv3 backup takes the master's interval"),
        "{cause}"
    );
    expect_owner_in(&lab, Some("lb01"), &procs, "nothing moved", Family::Ipv6);
    assert!(
        received(&lab)
            .iter()
            .all(|r| r["body"]["kind"] == "advert_interval_mismatch"),
        "{:?}",
        received(&lab)
    );
}
