//! The lab's HTML reports as a browser sees them: the scenario and bench
//! reports rendered from realistic data (an S2 pair of runs, an S5 burst of
//! pages, a bench row set) load in headless Chromium, in a network namespace
//! with no network, with no console error or policy violation, with a lane
//! element per MAC and a strip per implementation, and screenshot to a PNG;
//! the standalone SVG renders too. And `--html`/`--svg` refuse a path that
//! cannot be written before any lab is built. Needs root (a network
//! namespace), util-linux and chromium; fails without them.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::chromium;
use splitguard_lab::configs::Family;
use splitguard_lab::report::{Flavour, Implementation, Measurement, Report};
use splitguard_lab::scenario::{
    AlertSeen, NodeMac, Outcome, OwnerAt, RunResult, Scenario, Timeline,
};

const LB01: &str = "4a:22:11:45:cd:44";
const LB02: &str = "0a:62:60:1a:a9:77";

fn alert(kind: &str, status: &str, node: &str, severity: &str, ms: u64) -> AlertSeen {
    AlertSeen {
        kind: kind.into(),
        status: status.into(),
        node: node.into(),
        severity: severity.into(),
        after: Duration::from_millis(ms),
    }
}

/// A run of `scenario` whose samples `owners` answers, second by second
/// from −2 s to +20 s at gw's 250 ms.
fn run(
    scenario: Scenario,
    imp: Implementation,
    heal_s: Option<f64>,
    alerts: Vec<AlertSeen>,
    owners: impl Fn(f64) -> Vec<&'static str>,
) -> RunResult {
    let samples: Vec<OwnerAt> = (-8..80)
        .map(|i| {
            // gw's requests drift a few ms from the grid, as real ones do.
            let at_s = i as f64 * 0.25 + 0.003 * (i % 3) as f64;
            OwnerAt {
                at_s,
                macs: owners(at_s).into_iter().map(String::from).collect(),
            }
        })
        .collect();
    let in_window = |s: &&OwnerAt| s.at_s >= 0.0;
    let dual = samples
        .iter()
        .filter(in_window)
        .filter(|s| s.macs.len() > 1)
        .count();
    let zero = samples
        .iter()
        .filter(in_window)
        .filter(|s| s.macs.is_empty())
        .count();
    RunResult {
        scenario,
        family: Family::Ipv4,
        imp,
        outcome: Ok(Outcome {
            dual_s: dual as f64 * 0.25,
            zero_s: zero as f64 * 0.25,
            owner_changes: 2,
            samples: 80,
            alerts,
            timeline: Timeline {
                samples,
                every_s: 0.25,
                window_s: 20.0,
                heal_s,
                nodes: vec![
                    NodeMac {
                        node: "lb01".into(),
                        mac: LB01.into(),
                    },
                    NodeMac {
                        node: "lb02".into(),
                        mac: LB02.into(),
                    },
                ],
            },
        }),
        logs: String::new(),
    }
}

/// S2 for both (keepalived: two owners from +3.3 s to the heal), S5's burst
/// of pages, and a hostile alert kind.
fn scenario_results() -> Vec<RunResult> {
    vec![
        run(
            Scenario::S2,
            Implementation::Splitguard,
            Some(12.01),
            vec![
                alert("claim_withheld", "firing", "lb02", "critical", 2600),
                alert("claim_withheld", "resolved", "lb02", "critical", 13100),
            ],
            |_| vec![LB01],
        ),
        run(
            Scenario::S2,
            Implementation::Keepalived,
            Some(12.01),
            vec![
                alert("split_brain", "firing", "lb02", "critical", 3400),
                alert("split_brain", "resolved", "lb02", "critical", 13000),
            ],
            |t| match t {
                t if (3.3..12.3).contains(&t) => vec![LB01, LB02],
                _ => vec![LB01],
            },
        ),
        run(
            Scenario::S5,
            Implementation::Splitguard,
            Some(12.0),
            vec![
                alert("isolated", "firing", "lb02", "warning", 3200),
                alert("isolated", "firing", "lb01", "warning", 3210),
                alert("demoted", "firing", "lb01", "warning", 4200),
                alert(
                    "<script>alert('x')</script>",
                    "firing",
                    "lb02",
                    "info",
                    4210,
                ),
                alert("isolated", "resolved", "lb01", "warning", 13000),
            ],
            |t| match t {
                t if (14.0..14.5).contains(&t) => vec![],
                _ => vec![LB01],
            },
        ),
    ]
}

fn bench_report() -> Report {
    let fixed = Measurement::Failover(Flavour::V2OneSecond);
    let random = Measurement::FailoverRandom(Flavour::V2OneSecond);
    let mut r = Report::with_columns(
        vec![fixed, random],
        5,
        vec![Implementation::Splitguard, Implementation::Keepalived],
    );
    for (m, sg, ka) in [
        (
            fixed,
            [383.0, 381.0, 384.0, 383.0, 382.0],
            [3611.0, 3610.0, 3615.0, 3610.0, 3612.0],
        ),
        (
            random,
            [408.0, 386.0, 450.0, 401.0, 395.0],
            [3089.0, 2616.0, 3560.0, 2901.0, 3300.0],
        ),
    ] {
        for v in sg {
            r.record(m, Implementation::Splitguard, Ok(v));
        }
        for v in ka {
            r.record(m, Implementation::Keepalived, Ok(v));
        }
    }
    r
}

/// The lanes a report's figures should have: each run's nodes and any other
/// MAC its samples hold.
fn expected_lanes(results: &[RunResult]) -> usize {
    results
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok())
        .map(|o| {
            let mut macs: BTreeSet<&str> =
                o.timeline.nodes.iter().map(|n| n.mac.as_str()).collect();
            macs.extend(
                o.timeline
                    .samples
                    .iter()
                    .flat_map(|s| s.macs.iter().map(String::as_str)),
            );
            macs.len()
        })
        .sum()
}

fn assert_clean(what: &str, r: &chromium::Rendered) {
    assert!(
        r.console.is_empty(),
        "{what}: console messages:\n{}\n\nlog:\n{}",
        r.console.join("\n"),
        r.log
    );
}

#[test]
fn scenario_report_loads_in_chromium_with_a_lane_per_mac_and_no_fetch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let results = scenario_results();
    let page = dir.path().join("scenario.html");
    std::fs::write(&page, splitguard_lab::html::scenario_report(&results)).expect("write");
    let r = chromium::dump_dom(&page);
    assert_clean("scenario report", &r);
    assert_eq!(
        chromium::count_class(&r.dom, "lane"),
        expected_lanes(&results),
        "{}",
        r.dom
    );
    assert_eq!(chromium::count_class(&r.dom, "panel"), 3);
    // keepalived's overlap, and the legend of each scenario's figure.
    assert_eq!(chromium::count_class(&r.dom, "dual"), 3);
    // The hostile kind arrived as text, not as an element.
    assert!(!r.dom.contains("<script"), "{}", r.dom);
    assert!(
        r.dom.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "{}",
        r.dom
    );
    let png = dir.path().join("scenario.png");
    let size = chromium::screenshot(&page, &png, 1100, 1500);
    assert!(
        size > 20_000,
        "a screenshot of {size} bytes is too plain to hold the report"
    );
    if let Ok(keep) = std::env::var("SPLITGUARD_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).expect("copy the screenshot");
    }
}

#[test]
fn standalone_svg_renders_in_chromium() {
    let dir = tempfile::tempdir().expect("temp dir");
    let results = scenario_results();
    let s2: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.scenario == Scenario::S2)
        .collect();
    let svg = dir.path().join("s2.svg");
    std::fs::write(&svg, splitguard_lab::html::timeline_svg(&s2)).expect("write");
    let r = chromium::dump_dom(&svg);
    assert_clean("standalone SVG", &r);
    assert_eq!(chromium::count_class(&r.dom, "lane"), 4, "{}", r.dom);
    let size = chromium::screenshot(&svg, &dir.path().join("s2.png"), 1000, 500);
    assert!(size > 10_000, "{size} bytes");
}

#[test]
fn bench_report_loads_in_chromium_with_a_strip_per_implementation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("bench.html");
    std::fs::write(&page, splitguard_lab::html::bench_report(&bench_report())).expect("write");
    let r = chromium::dump_dom(&page);
    assert_clean("bench report", &r);
    assert_eq!(chromium::count_class(&r.dom, "impl"), 4, "{}", r.dom);
    assert_eq!(chromium::count_class(&r.dom, "measurement"), 2);
    assert!(r.dom.contains("splitguard / keepalived 0.11"), "{}", r.dom);
    let size = chromium::screenshot(&page, &dir.path().join("bench.png"), 1100, 800);
    assert!(size > 10_000, "{size} bytes");
}

/// `splitguard ARGS`: (exit code, stderr).
fn splitguard(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_splitguard"))
        .args(args)
        .output()
        .expect("splitguard runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_report_path_that_cannot_be_written_fails_before_the_lab() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-such-dir").join("report.html");
    let missing = missing.to_str().expect("utf-8 temp path");
    let started = std::time::Instant::now();
    for args in [
        &["lab", "scenario", "s2", "--html", missing][..],
        &["lab", "scenario", "s2", "--svg", missing][..],
        &["lab", "bench", "--quick", "--html", missing][..],
    ] {
        let (code, stderr) = splitguard(args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(missing), "{args:?}: {stderr}");
        assert!(stderr.contains("cannot write the report there"), "{stderr}");
    }
    // A directory is no file either.
    let here = dir.path().to_str().expect("utf-8 temp path");
    let (code, stderr) = splitguard(&["lab", "scenario", "s2", "--html", here]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(here), "{stderr}");
    let never = dir.path().join("never.svg");
    let never_arg = never.to_str().expect("utf-8 temp path");
    let (code, stderr) = splitguard(&["lab", "scenario", "all", "--svg", never_arg]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--svg draws one scenario"), "{stderr}");
    assert!(!never.exists(), "a refused run leaves no file");
    // No lab was built: each refusal came at once.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
