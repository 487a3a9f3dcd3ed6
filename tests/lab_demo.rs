//! `splitguard lab demo --quick` (the CI form of the README's first command):
//! it plays steady state, failover, preemption and S2 with alerts, gw never sees
//! two owners, and no namespace of its lab is left. Without root it says so.

mod common;

use common::namespaces;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_splitguard");

#[test]
fn the_quick_demo_tells_the_story_and_cleans_up() {
    let child = Command::new(BIN)
        .args(["lab", "demo", "--quick"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("demo starts");
    let pid = child.id();
    let out = child.wait_with_output().expect("demo ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for expected in [
        "== 1. steady state",
        "lb01 is master and holds the VIP",
        "failover: gw reaches the VIP on lb02",
        "alert at gw: firing warning failover from lb02",
        "lb01 holds the VIP again",
        "alert at gw: firing warning claim_withheld from lb02",
        "gw still sees only lb01",
        "alert at gw: resolved warning claim_withheld from lb02",
        "saw two owners 0 times",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("TWO OWNERS"), "{stdout}");
    // lb01 becoming master at start-up is not a failover; nobody preempting
    // pages split brain.
    assert!(!stdout.contains("failover from lb01"), "{stdout}");
    assert!(!stdout.contains("split_brain"), "{stdout}");
    // lb01's own link going down is a local fault, not isolation; what it
    // could not send while its link was down arrives as one notice, never
    // as a page for something already over followed by its end.
    assert!(!stdout.contains("isolated from lb01"), "{stdout}");
    assert!(
        !stdout.contains("firing warning link_down from lb01"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "resolved warning link_down from lb01 (opened and closed before its page could be sent)"
        ),
        "{stdout}"
    );
    // Lab namespaces carry the creating process's pid.
    let left = namespaces();
    assert!(
        !left.contains(&format!("-{pid}-")),
        "namespaces left behind:\n{left}"
    );
}

#[test]
fn without_root_the_demo_says_it_needs_root() {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "lab",
            "demo",
        ])
        .output()
        .expect("setpriv runs (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("needs root") && stderr.contains("sudo"),
        "{stderr}"
    );
}
