//! `splitguard lab fence --runs 2` (issue 21's fencing measurement, short
//! form): two seeded runs of two blind claimants with fencing and keepalived's
//! comparison; the table has a row per run and the summary, nobody was
//! fenced twice, lb01 (the better node) fenced, gw saw one owner again within
//! generous bounds, keepalived kept two owners, and no namespace is left.
//!
//! Needs root, nft, fence-agents, ipmitool, openipmi and keepalived; fails
//! without them.

mod common;

use common::namespaces;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_splitguard");

/// The seconds in a cell like "3.21 s".
fn secs(cell: &str) -> Option<f64> {
    cell.trim().strip_suffix(" s")?.parse().ok()
}

#[test]
fn two_seeded_runs_fence_once_each_and_keepalived_keeps_two_owners() {
    let child = Command::new(BIN)
        .args(["lab", "fence", "--runs", "2", "--seed", "7", "--markdown"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("lab fence starts");
    let pid = child.id();
    let out = child.wait_with_output().expect("lab fence ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "lab fence failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.starts_with("| run | start"), "{stdout}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("| 1 |") || l.starts_with("| 2 |"))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    for row in &rows {
        assert_eq!(row.len(), 11, "{row:?}");
        // Who fenced, and gw's two-owner time: generous, the goal is ~3.3 s.
        assert_eq!(row[7], "lb01", "{stdout}");
        let dual = secs(row[6]).unwrap_or_else(|| panic!("no two-owner time: {row:?}"));
        assert!(dual > 0.0 && dual < 15.0, "{stdout}");
        let agent = secs(row[8]).unwrap_or_else(|| panic!("no agent time: {row:?}"));
        assert!(agent < 10.0, "{stdout}");
    }
    for expected in [
        "- runs: 2 (seed 7), 2 measured, 0 without figures",
        "- double fencings: 0 (must be 0)",
        "- runs never back to one owner: 0",
        "- the better node (lb01, priority 150) fenced: 2 of 2 runs, every time",
        "- two owners to one owner at gw, min / median / max: ",
        "- within fence_after (2s) + the agent's time + 1 s: ",
        "- keepalived 2.2.7, the same start",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    // keepalived cannot end it: two owners over most of its window.
    let ka = stdout
        .lines()
        .find(|l| l.contains("keepalived 2.2.7"))
        .unwrap_or_default();
    let held: f64 = ka
        .split("two owners for ")
        .nth(1)
        .and_then(|r| r.split(" s of").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no keepalived figure: {ka}"));
    assert!(held >= 10.0, "{ka}");
    let left = namespaces();
    assert!(
        !left.contains(&format!("-{pid}-")),
        "namespaces left behind:\n{left}"
    );
}
