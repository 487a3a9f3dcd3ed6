//! `check-config` refuses what `run` would refuse, for every family combination
//! of instances and arbiter targets: each config below is checked, and each one
//! check-config accepts is started with `run` in a namespace (lb01 of an IPv6
//! lab, with a second IPv6 interface) and must come up and answer `status`.
//! The expected verdict of each case is part of the table, so a check that
//! became too strict fails as surely as one that let a config through.
//!
//! Needs root; fails without it.

mod common;

use common::*;
use splitguard_lab::Lab;
use std::process::Command;
use std::time::Duration;

/// (name, instances) on lb01: eth0 carries 192.0.2.5 and 2001:db8::5, eth1 (one end
/// of a veth pair) 2001:db8:1::5.
/// One instance: interface, VIP, extra keys.
type Spec = (&'static str, &'static str, &'static str);

const INSTANCES: &[(&str, &[Spec])] = &[
    ("v4", &[("eth0", "192.0.2.3/24", "")]),
    ("v6", &[("eth0", "2001:db8::3/64", "")]),
    (
        "dual",
        &[("eth0", "192.0.2.3/24", ""), ("eth0", "2001:db8::3/64", "")],
    ),
    (
        "v6two",
        &[
            ("eth0", "2001:db8::3/64", ""),
            (
                "eth1",
                "2001:db8:1::3/64",
                "unicast_peers = [\"fe80::ff:fe00:6\"]\n",
            ),
        ],
    ),
];

/// (name, `[arbiter]` keys).
const ARBITERS: &[(&str, &str)] = &[
    ("default", ""),
    ("ref4", "references = [\"192.0.2.254\"]\n"),
    ("ref6", "references = [\"2001:db8::fe\"]\n"),
    ("refll", "references = [\"fe80::ff:fe00:fe\"]\n"),
    ("peer6", "peers = [\"2001:db8::6\"]\n"),
    (
        "dualrefs",
        "references = [\"192.0.2.254\", \"2001:db8::fe\"]\nquorum = 2\n",
    ),
];

/// What check-config must say: None to accept, or a piece of its refusal.
fn expected(instances: &str, arbiter: &str) -> Option<&'static str> {
    match (instances, arbiter) {
        ("v4", "ref6" | "refll" | "peer6" | "dualrefs") => {
            Some("is IPv6 but every instance is IPv4")
        }
        ("v6" | "v6two", "ref4" | "dualrefs") => Some("is IPv4 but every instance is IPv6"),
        ("v6two", "refll") => Some("is ambiguous: IPv6 instances are on eth0 and eth1"),
        _ => None,
    }
}

fn config(lab: &Lab, case: &str, instances: &[Spec], arbiter: &str) -> String {
    let dir = lab.dir().display();
    let mut s = format!(
        "node = \"lb01\"\nstate_dir = \"{dir}/{case}-state\"\ncontrol_socket = \"{dir}/{case}.sock\"\n"
    );
    for (k, (iface, vip, extra)) in instances.iter().enumerate() {
        let version = if vip.contains(':') { 3 } else { 2 };
        let auth = if version == 2 {
            "auth_pass = \"1111\"\n"
        } else {
            ""
        };
        s.push_str(&format!(
            "\n[[instance]]\nname = \"VI_{k}\"\ninterface = \"{iface}\"\nvrid = {}\npriority = 150\n\
             advert_interval = \"1s\"\nversion = {version}\n{auth}vips = [\"{vip}\"]\n{extra}",
            51 + k
        ));
    }
    s.push_str(&format!("\n[arbiter]\nprobe_interval = \"1s\"\n{arbiter}"));
    s
}

#[test]
fn check_config_and_run_agree_for_every_family_combination() {
    let lab = splitguard_lab::configs::pair_lab6("parity").expect("lab builds (run as root)");
    for cmd in [
        // A veth pair inside lb01: a second interface with carrier (the
        // dummy driver may not be loadable).
        "ip link add eth1 type veth peer name eth1p",
        "sysctl -qw net.ipv6.conf.eth1.accept_dad=0",
        "ip -6 addr add 2001:db8:1::5/64 dev eth1 nodad",
        "ip link set eth1p up",
        "ip link set eth1 up",
    ] {
        let argv: Vec<&str> = cmd.split_whitespace().collect();
        lab.run("lb01", &argv).expect(cmd);
    }
    let bin = env!("CARGO_BIN_EXE_splitguard");
    let mut started = 0;
    for (iname, instances) in INSTANCES {
        for (aname, arbiter) in ARBITERS {
            let case = format!("{iname}-{aname}");
            let path = lab
                .write_file(
                    &format!("{case}.toml"),
                    &config(&lab, &case, instances, arbiter),
                )
                .expect("write");
            let out = Command::new(bin)
                .args(["check-config", "-c", path.to_str().expect("utf-8")])
                .output()
                .expect("check-config runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            match expected(iname, aname) {
                Some(why) => {
                    assert!(!out.status.success(), "{case}: check-config accepted it");
                    assert!(
                        stderr.contains(why),
                        "{case}: expected `{why}` in:\n{stderr}"
                    );
                    continue;
                }
                None => assert!(
                    out.status.success(),
                    "{case}: check-config refused it:\n{stderr}"
                ),
            }
            let mut p = lab
                .spawn(
                    "lb01",
                    &format!("splitguard-{case}"),
                    &[bin, "run", "-c", path.to_str().expect("utf-8")],
                )
                .expect("run starts");
            let up = splitguard_lab::wait_for(BOUND, || {
                if let Some(status) = p.try_exit() {
                    panic!(
                        "{case}: check-config accepted it but run exited ({status}):\n{}",
                        p.log_text()
                    );
                }
                let sock = lab.dir().join(format!("{case}.sock"));
                let out = lab
                    .run(
                        "lb01",
                        &[bin, "status", "--json", "--socket", sock.to_str()?],
                    )
                    .ok()?;
                let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
                json["arbiter"].is_object().then_some(json)
            });
            assert!(
                up.is_some(),
                "{case}: run never answered status:\n{}",
                p.log_text()
            );
            p.stop(Duration::from_secs(10));
            started += 1;
        }
    }
    assert_eq!(started, 15, "every accepted case was started");
}
