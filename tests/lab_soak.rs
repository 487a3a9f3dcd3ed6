//! `splitguard lab soak --duration 2m` (the CI form of the soak): a pair under
//! 30 % random loss of lb02's frames with link flaps, VRRP drops and daemon
//! restarts: no growth beyond the bounds, no panic, no dual owner the arbiter
//! could have prevented (a blind claim in a VRRP drop must be retracted within
//! the bound); the verdict is PASS, the report names its figures, and no
//! namespace of its lab is left. Needs root and nft.

mod common;

use common::namespaces;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_splitguard");

#[test]
fn a_two_minute_soak_reports_its_figures_and_cleans_up() {
    let child = Command::new(BIN)
        .args(["lab", "soak", "--duration", "2m"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("soak starts");
    let pid = child.id();
    let out = child.wait_with_output().expect("soak ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}\n{stdout}");
    let verdict = stdout.lines().find(|l| l.starts_with("verdict: "));
    assert_eq!(verdict, Some("verdict: PASS"), "{stdout}\n{stderr}");
    assert!(out.status.success(), "soak failed:\n{stdout}\n{stderr}");
    for expected in [
        "duration: 120 s",
        "loss: 30 % random loss of lb02's frames",
        "faults: 7 (lb01 link flap (down 5 s) ×3, VRRP dropped on lb02 (8 s) ×2, \
         lb02 daemon SIGTERM, restart after 2 s ×1, lb01 daemon SIGKILL, restart after 5 s ×1)",
        "s counted",
        // A blind claim in a VRRP drop is retracted within the bound, or none
        // happened; anything else would have failed the verdict.
        "claims retracted in VRRP drops: ",
        "panics: none",
        "lb01 #1: RSS",
        "lb02 #2: RSS",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    // Each fault was put in place and taken away again.
    for step in ["fault: lb01 link flap", "healed: lb01 daemon SIGKILL"] {
        assert!(stderr.contains(step), "no {step:?} in:\n{stderr}");
    }
    let left = namespaces();
    assert!(
        !left.contains(&format!("-{pid}-")),
        "namespaces left behind:\n{left}"
    );
}
