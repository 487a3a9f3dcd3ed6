//! `splitguard run` as the systemd unit runs it: an unprivileged user (nobody)
//! holding only CAP_NET_ADMIN and CAP_NET_RAW (ambient, with the bounding set
//! cut to the same two and no_new_privs), set up by `setpriv` the way
//! contrib/systemd/splitguard.service sets it up. The pair elects lb01, fails
//! over to lb02 on link loss, lb01 preempts on return and hands over cleanly on
//! SIGTERM; the arbiter's ICMP probes reach the gateway; `/proc/PID/status`
//! shows the daemon's uid and exactly those two capabilities. Its state and socket live in a directory nobody owns; its
//! config is root:nogroup 0640 (group-readable, as the unit's docs suggest).
//!
//! Needs root (namespaces, setpriv to another uid); fails without it.

mod common;

use common::*;
use splitguard_lab::{Lab, LabProcess};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// nobody / nogroup.
const UID: u32 = 65534;
const GID: u32 = 65534;
/// CAP_NET_ADMIN (12) and CAP_NET_RAW (13), as /proc/PID/status prints them.
const NET_ADMIN_RAW: &str = "0000000000003000";

/// The setpriv prefix: uid, gid and groups of nobody; only the two capabilities
/// inheritable, ambient and in the bounding set; no new privileges.
fn setpriv() -> Vec<String> {
    [
        "setpriv".to_owned(),
        format!("--reuid={UID}"),
        format!("--regid={GID}"),
        "--clear-groups".to_owned(),
        "--inh-caps=-all,+net_admin,+net_raw".to_owned(),
        "--ambient-caps=-all,+net_admin,+net_raw".to_owned(),
        "--bounding-set=-all,+net_admin,+net_raw".to_owned(),
        "--no-new-privs".to_owned(),
    ]
    .into()
}

/// Starts `splitguard run` for `node` as nobody: a copy of the binary in the
/// lab directory (the build tree may sit where nobody cannot reach), state and
/// control socket in `<lab>/<node>-run` (owned by nobody, 0700).
fn start_unprivileged(lab: &Lab, node: &str, priority: u8) -> LabProcess {
    let bin = lab.dir().join("bin/splitguard");
    if !bin.exists() {
        std::fs::create_dir_all(lab.dir().join("bin")).expect("bin dir");
        std::fs::copy(env!("CARGO_BIN_EXE_splitguard"), &bin).expect("copy the binary");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let dir = lab.dir().join(format!("{node}-run"));
    std::fs::create_dir(&dir).expect("run dir");
    std::os::unix::fs::chown(&dir, Some(UID), Some(GID)).expect("chown run dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");

    let lab_dir = lab.dir().display().to_string();
    // The gateway as the arbiter's reference: ICMP probes, raw (the lab's
    // ping_group_range allows no datagram ICMP), need CAP_NET_RAW.
    let arbiter = "\n[arbiter]\nreferences = [\"192.0.2.254\"]\n";
    let config = sg_config(lab, node, priority, 2, "1s", arbiter)
        .replace(
            &format!("{lab_dir}/{node}-state"),
            &format!("{}/state", dir.display()),
        )
        .replace(
            &format!("{lab_dir}/{node}.sock"),
            &format!("{}/ctl.sock", dir.display()),
        );
    assert!(
        config.contains("/state\"") && config.contains("auth_pass"),
        "{config}"
    );
    // root:nogroup 0640: the daemon reads it through its group, others cannot.
    let path = lab
        .write_file(&format!("{node}-run/{node}.toml"), &config)
        .expect("config");
    std::os::unix::fs::chown(&path, Some(0), Some(GID)).expect("chown config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");

    let mut argv = setpriv();
    argv.extend([
        bin.display().to_string(),
        "run".to_owned(),
        "-c".to_owned(),
        path.display().to_string(),
    ]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    lab.spawn(node, &format!("splitguard-{node}"), &argv)
        .expect("setpriv starts")
}

/// `Key:\tvalue` lines of /proc/PID/status.
fn proc_status(p: &LabProcess) -> Vec<(String, String)> {
    let pid = p.pid().expect("running");
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}\n{}", p.log_text()))
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

fn field<'a>(status: &'a [(String, String)], key: &str) -> &'a str {
    status
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in /proc/PID/status"))
}

#[test]
fn the_pair_runs_unprivileged_with_only_net_admin_and_net_raw() {
    let lab = pair_lab("leastpriv");
    let mut lb01 = start_unprivileged(&lab, "lb01", 150);
    let lb02 = start_unprivileged(&lab, "lb02", 100);

    expect_owner(
        &lab,
        Some("lb01"),
        &[&lb01, &lb02],
        "steady state as nobody",
    );

    for p in [&lb01, &lb02] {
        let st = proc_status(p);
        // setpriv and `ip netns exec` exec in place: this pid is the daemon.
        assert_eq!(field(&st, "Name"), "splitguard", "{st:?}");
        let uids: Vec<&str> = field(&st, "Uid").split_whitespace().collect();
        assert_eq!(uids, ["65534"; 4], "real, effective, saved, fs uid");
        let gids: Vec<&str> = field(&st, "Gid").split_whitespace().collect();
        assert_eq!(gids, ["65534"; 4]);
        assert_eq!(field(&st, "Groups"), "");
        assert_eq!(field(&st, "CapEff"), NET_ADMIN_RAW, "{}", p.name);
        assert_eq!(field(&st, "CapPrm"), NET_ADMIN_RAW);
        assert_eq!(field(&st, "CapBnd"), NET_ADMIN_RAW);
        assert_eq!(field(&st, "NoNewPrivs"), "1");
    }

    // The control socket, made by nobody, answers root's `status`.
    let status = status_via(&lab, "lb01", "lb01-run/ctl.sock");
    assert_eq!(status["instances"][0]["state"], "MASTER", "{status}");
    // Its ICMP probes reach the gateway.
    splitguard_lab::wait_for(BOUND, || {
        let s = status_via(&lab, "lb01", "lb01-run/ctl.sock");
        (s["arbiter"]["references"][0]["reachable"] == true).then_some(())
    })
    .unwrap_or_else(|| panic!("gw never reachable\n{}", logs(&[&lb01, &lb02])));

    // Link loss at the switch: lb02 takes the VIP, lb01 drops it (netlink as
    // nobody, with CAP_NET_ADMIN).
    lab.set_bridge_port("lb01", false).expect("port down");
    expect_owner(
        &lab,
        Some("lb02"),
        &[&lb01, &lb02],
        "after lb01's link loss",
    );
    lab.set_bridge_port("lb01", true).expect("port up");
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "after lb01 returns");

    // SIGTERM: priority-0 advert, VIP released, exit 0, all unprivileged.
    let exit = lb01.stop(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|s| s.success()),
        "SIGTERM exits 0: {exit:?}\n{}",
        lb01.log_text()
    );
    assert!(!holds(&lab, "lb01"), "a stopped node keeps no VIP");
    expect_owner(&lab, Some("lb02"), &[&lb01, &lb02], "after SIGTERM on lb01");

    // Nothing it does needed more than it has.
    for p in [&lb01, &lb02] {
        let log = p.log_text();
        for denied in [
            "Operation not permitted",
            "Permission denied",
            "EPERM",
            "EACCES",
        ] {
            assert!(!log.contains(denied), "{}: {denied}\n{log}", p.name);
        }
    }
}
