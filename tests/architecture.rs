//! The invariants ARCHITECTURE.md states that a machine can check: which crates
//! are pure (the VRRP core's dependency tree holds nothing that does I/O), that
//! the workspace's own crates depend on each other one way only, and that the
//! packager's build (`--no-default-features`) leaves the lab out. Read from
//! `cargo tree`, so a new dependency that breaks a rule fails here, not in review.

use std::collections::BTreeSet;
use std::process::Command;

/// Crates that do I/O (or an async runtime); none may reach the VRRP core.
const IO_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "socket2",
    "surge-ping",
    "rtnetlink",
    "netlink-sys",
    "nix",
    "libc",
    "reqwest",
    "hyper",
    "axum",
    "lettre",
];

/// The workspace's own crates, lowest first: ARCHITECTURE.md's "dependencies
/// point one way". A crate may depend only on crates before it in this list.
const RANK: &[&str] = &[
    "splitguard-vrrp",
    "splitguard-arbiter",
    "splitguard-watchdog",
    "splitguard-node",
    "splitguard-lab",
    "splitguard",
];

/// `cargo tree -p PKG -e normal` with one crate name per line (with depth).
fn tree(pkg: &str, extra: &[&str]) -> Vec<(usize, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--locked", "--offline", "-p", pkg, "-e", "normal"])
        .args(["--prefix", "depth", "--format", "{p}"])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {pkg} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let digits = l.chars().take_while(char::is_ascii_digit).count();
            let depth = l[..digits].parse().ok()?;
            let name = l[digits..].split_whitespace().next()?.to_string();
            Some((depth, name))
        })
        .collect()
}

#[test]
fn the_vrrp_core_depends_on_nothing_that_does_io() {
    let deps: BTreeSet<String> = tree("splitguard-vrrp", &[])
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert!(
        deps.contains("splitguard-vrrp"),
        "cargo tree said: {deps:?}"
    );
    let io: Vec<&&str> = IO_CRATES.iter().filter(|c| deps.contains(**c)).collect();
    assert!(io.is_empty(), "splitguard-vrrp reaches I/O crates {io:?}");
    let own: Vec<&String> = deps
        .iter()
        .filter(|d| d.starts_with("splitguard") && *d != "splitguard-vrrp")
        .collect();
    assert!(own.is_empty(), "splitguard-vrrp depends on {own:?}");
}

#[test]
fn workspace_crates_depend_one_way() {
    for (rank, pkg) in RANK.iter().enumerate() {
        // Direct dependencies only: depth 1.
        let direct: Vec<String> = tree(pkg, &["--depth", "1"])
            .into_iter()
            .filter(|(depth, name)| *depth == 1 && name.starts_with("splitguard"))
            .map(|(_, n)| n)
            .collect();
        for d in &direct {
            let Some(dep_rank) = RANK.iter().position(|r| r == d) else {
                panic!("{pkg} depends on {d}, a workspace crate ARCHITECTURE.md does not list");
            };
            assert!(
                dep_rank < rank,
                "{pkg} depends on {d}, which comes after it: dependencies point one way ({RANK:?})"
            );
        }
    }
}

#[test]
fn the_packagers_build_has_no_lab() {
    let lean: BTreeSet<String> = tree("splitguard", &["--no-default-features"])
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert!(
        lean.contains("splitguard-node"),
        "cargo tree said: {lean:?}"
    );
    assert!(
        !lean.contains("splitguard-lab"),
        "the lean build pulls in splitguard-lab"
    );
    let full: BTreeSet<String> = tree("splitguard", &[])
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert!(
        full.contains("splitguard-lab"),
        "the default build lost the lab"
    );
}
