//! Interop with the real keepalived 2.2.7 (Debian package), both directions, VRRPv2
//! with PASS and VRRPv3: each side stays backup while the other's adverts flow and
//! takes over when the other stops; gw sees exactly one owner throughout.
//! Also: tshark decodes our adverts as VRRP with a correct checksum.
//! Needs root and keepalived/tshark (contrib/test.sh installs them).

mod common;

use common::*;
use std::time::Duration;

fn keepalived_master_splitguard_backup(tag: &str, version: u8) {
    let lab = pair_lab(tag);
    let mut ka = start_keepalived(&lab, "lb01", &ka_config("lb01", 150, version, "1"));
    let sg = start_splitguard(
        &lab,
        "lb02",
        &sg_config(&lab, "lb02", 100, version, "1s", ""),
    );
    expect_owner(&lab, Some("lb01"), &[&ka, &sg], "keepalived master");
    expect_owner_stays(
        &lab,
        "lb01",
        Duration::from_secs(5),
        &[&ka, &sg],
        "splitguard stays backup",
    );
    assert!(
        !sg.log_text().contains("to=\"MASTER\""),
        "{}",
        logs(&[&ka, &sg])
    );

    ka.stop(Duration::from_secs(10));
    expect_owner(
        &lab,
        Some("lb02"),
        &[&ka, &sg],
        "splitguard takes over from keepalived",
    );
}

fn splitguard_master_keepalived_backup(tag: &str, version: u8) {
    let lab = pair_lab(tag);
    let mut sg = start_splitguard(
        &lab,
        "lb01",
        &sg_config(&lab, "lb01", 150, version, "1s", ""),
    );
    let ka = start_keepalived(&lab, "lb02", &ka_config("lb02", 100, version, "1"));
    expect_owner(&lab, Some("lb01"), &[&sg, &ka], "splitguard master");
    expect_owner_stays(
        &lab,
        "lb01",
        Duration::from_secs(5),
        &[&sg, &ka],
        "keepalived stays backup",
    );
    let log = ka.log_text();
    assert!(
        log.contains("Entering BACKUP STATE"),
        "{}",
        logs(&[&sg, &ka])
    );
    assert!(
        !log.contains("Entering MASTER STATE"),
        "{}",
        logs(&[&sg, &ka])
    );
    assert!(
        !log.contains("checksum"),
        "keepalived complained about our checksum\n{log}"
    );

    let status = sg.stop(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{}", sg.log_text());
    expect_owner(
        &lab,
        Some("lb02"),
        &[&sg, &ka],
        "keepalived takes over from splitguard",
    );
    assert!(ka.log_text().contains("Entering MASTER STATE"));
}

#[test]
fn v2_keepalived_master_splitguard_backup() {
    keepalived_master_splitguard_backup("kasgv2", 2);
}

#[test]
fn v3_keepalived_master_splitguard_backup() {
    keepalived_master_splitguard_backup("kasgv3", 3);
}

#[test]
fn v2_splitguard_master_keepalived_backup() {
    splitguard_master_keepalived_backup("sgkav2", 2);
}

#[test]
fn v3_splitguard_master_keepalived_backup() {
    splitguard_master_keepalived_backup("sgkav3", 3);
}

fn tshark_decodes(tag: &str, version: u8) {
    let lab = pair_lab(tag);
    let sg = start_splitguard(
        &lab,
        "lb01",
        &sg_config(&lab, "lb01", 150, version, "1s", ""),
    );
    expect_owner(&lab, Some("lb01"), &[&sg], "splitguard master");
    let text = tshark_vrrp(&lab, "ip proto 112");
    assert!(
        text.contains(&format!("VRRP protocol version: {version}")),
        "{text}"
    );
    assert!(text.contains("Virtual Rtr ID: 51"), "{text}");
    assert!(text.contains("Priority: 150"), "{text}");
}

#[test]
fn tshark_decodes_our_v2_adverts() {
    tshark_decodes("tsharkv2", 2);
}

#[test]
fn tshark_decodes_our_v3_adverts() {
    tshark_decodes("tsharkv3", 3);
}
