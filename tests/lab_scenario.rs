//! `splitguard lab scenario`: the catalogue's split-brain faults, run through
//! the library the command uses, each in its own lab (the tests run in
//! parallel). splitguard must show no dual-owner second in S2, S3, S4 and S6;
//! in S2 keepalived runs too and must show two owners, so the measurement can
//! tell the two apart. S2 and S6 run over IPv6 too (`--ipv6`). S2's runs
//! also make the `--html` report, which must load in headless Chromium with a
//! lane per MAC gw saw and keepalived's overlap shaded. Needs root, nft,
//! keepalived and chromium; fails without them.

mod common;

use std::collections::BTreeSet;

use common::chromium;
use splitguard_lab::configs::Family;
use splitguard_lab::report::Implementation;
use splitguard_lab::scenario::{self, Outcome, RunResult, Scenario, ScenarioOptions};

/// Each implementation's outcome and daemon logs.
fn run(s: Scenario, impls: &[Implementation]) -> Vec<(Outcome, String)> {
    run_in(s, impls, Family::Ipv4)
}

fn run_in(s: Scenario, impls: &[Implementation], family: Family) -> Vec<(Outcome, String)> {
    outcomes(results_in(s, impls, family))
}

/// The runs as `lab scenario` returns them; the table on stderr.
fn results_in(s: Scenario, impls: &[Implementation], family: Family) -> Vec<RunResult> {
    let opts = ScenarioOptions {
        scenarios: vec![s],
        impls: impls.to_vec(),
        family,
        splitguard: env!("CARGO_BIN_EXE_splitguard").into(),
    };
    let mut log = Vec::new();
    let results = scenario::run(&opts, &mut |line| log.push(line.to_owned()))
        .expect("the scenario runs (as root, with nft and keepalived)");
    let table = scenario::render(&results, false);
    eprintln!("{}\n{table}", log.join("\n"));
    results
}

/// Each run's outcome and logs; a failed run fails the test.
fn outcomes(results: Vec<RunResult>) -> Vec<(Outcome, String)> {
    results
        .into_iter()
        .map(|r| {
            let o = r.outcome.unwrap_or_else(|e| {
                panic!(
                    "{} {} failed: {e}\n{}",
                    r.scenario.id(),
                    r.imp.name(),
                    r.logs
                )
            });
            (o, r.logs)
        })
        .collect()
}

fn has_alert(o: &Outcome, kind: &str, node: &str) -> bool {
    o.alerts
        .iter()
        .any(|a| a.kind == kind && a.node == node && a.status == "firing")
}

#[test]
fn s2_splitguard_withholds_its_claim_where_keepalived_makes_two_owners() {
    s2_in(Family::Ipv4);
}

#[test]
fn v6_s2_splitguard_withholds_its_claim_where_keepalived_makes_two_owners() {
    s2_in(Family::Ipv6);
}

fn s2_in(family: Family) {
    let results = results_in(
        Scenario::S2,
        &[Implementation::Splitguard, Implementation::Keepalived],
        family,
    );
    if family == Family::Ipv4 {
        html_report_shows(&results);
    }
    let r = outcomes(results);
    let ((sg, sg_logs), (ka, ka_logs)) = (&r[0], &r[1]);
    assert_eq!(sg.dual_s, 0.0, "{sg:?}\n{sg_logs}");
    assert_eq!(sg.zero_s, 0.0, "{sg:?}\n{sg_logs}");
    assert!(has_alert(sg, "claim_withheld", "lb02"), "{sg:?}\n{sg_logs}");
    // keepalived's backup takes the VIP while lb01 keeps it, until the heal.
    assert!(ka.dual_s >= 3.0, "{ka:?}\n{ka_logs}");
    assert!(has_alert(ka, "split_brain", "lb02"), "{ka:?}\n{ka_logs}");
    let latency = ka
        .alerts
        .iter()
        .find(|a| a.kind == "split_brain")
        .map(|a| a.after)
        .unwrap_or_default();
    assert!(
        latency < std::time::Duration::from_secs(10),
        "split_brain reached gw {latency:?} after the fault"
    );
}

#[test]
fn s3_vrid_mismatch_makes_no_second_owner_and_is_named() {
    let (sg, logs) = &run(Scenario::S3, &[Implementation::Splitguard])[0];
    assert_eq!(sg.dual_s, 0.0, "{sg:?}\n{logs}");
    assert!(has_alert(sg, "vrid_mismatch", "lb02"), "{sg:?}\n{logs}");
}

#[test]
fn s4_cut_master_releases_and_the_backup_serves_without_two_owners() {
    let (sg, logs) = &run(Scenario::S4, &[Implementation::Splitguard])[0];
    assert_eq!(sg.dual_s, 0.0, "{sg:?}\n{logs}");
    // lb02 takes over early (its arbiter confirms lb01 dead, well under a
    // second) or at the latest after Master_Down_Interval (3.6 s): the VIP is
    // back for gw long before the window ends, and it pages as a failover.
    assert!(sg.zero_s <= 8.0, "{sg:?}\n{logs}");
    assert!(has_alert(sg, "failover", "lb02"), "{sg:?}\n{logs}");
}

#[test]
fn s6_auth_mismatch_makes_no_second_owner_and_is_named() {
    let (sg, logs) = &run(Scenario::S6, &[Implementation::Splitguard])[0];
    assert_eq!(sg.dual_s, 0.0, "{sg:?}\n{logs}");
    assert!(has_alert(sg, "auth_mismatch", "lb02"), "{sg:?}\n{logs}");
}

/// Over IPv6, S6 is an advert interval mismatch (VRRPv3 has no password):
/// nothing splits, and lb02 names the mismatch.
#[test]
fn v6_s6_interval_mismatch_makes_no_second_owner_and_is_named() {
    let (sg, logs) = &run_in(Scenario::S6, &[Implementation::Splitguard], Family::Ipv6)[0];
    assert_eq!(sg.dual_s, 0.0, "{sg:?}\n{logs}");
    assert!(
        has_alert(sg, "advert_interval_mismatch", "lb02"),
        "{sg:?}\n{logs}"
    );
}

/// `--html`'s report of these runs in Chromium: it loads without a console
/// message, each panel has a lane per MAC (the nodes', and any other gw
/// heard), and keepalived's two owners are shaded.
fn html_report_shows(results: &[RunResult]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("s2.html");
    std::fs::write(&page, splitguard_lab::html::scenario_report(results)).expect("write");
    let r = chromium::dump_dom(&page);
    assert!(r.console.is_empty(), "{}\n{}", r.console.join("\n"), r.log);
    let lanes: usize = results
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok())
        .map(|o| {
            let t = &o.timeline;
            let mut macs: BTreeSet<&String> = t.nodes.iter().map(|n| &n.mac).collect();
            macs.extend(t.samples.iter().flat_map(|s| &s.macs));
            macs.len()
        })
        .sum();
    assert!(lanes >= 4, "two nodes in two runs");
    assert_eq!(chromium::count_class(&r.dom, "lane"), lanes, "{}", r.dom);
    assert_eq!(chromium::count_class(&r.dom, "panel"), 2, "{}", r.dom);
    // The legend's swatch and at least keepalived's overlap.
    assert!(chromium::count_class(&r.dom, "dual") >= 2, "{}", r.dom);
    assert!(r.dom.contains("heal at +12"), "{}", r.dom);
}
