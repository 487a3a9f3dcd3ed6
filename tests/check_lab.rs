//! `splitguard check` in a namespace lab, the way monitoring runs it: counted
//! from gw with ARP (one owner, two, none), through a real Zabbix agent's
//! UserParameter (`zabbix_agentd -t`), as an unprivileged user without
//! CAP_NET_RAW (UNKNOWN with the reason, never a number), and `check state` /
//! `check discovery` from a running daemon. The same for an IPv6 VIP in a
//! `pair_lab6`, counted by neighbour solicitation (ndisc6 from gw agrees).
//!
//! Needs root, zabbix-agent and ndisc6; fails without them.

mod common;

use common::*;
use splitguard_lab::Lab;
use splitguard_lab::configs::{Family, VIP6, sg_config_in};
use std::collections::BTreeSet;
use std::process::Output;

/// lb01's and lb02's fixed MACs in an IPv6 lab.
const LB01_MAC: &str = "02:00:00:00:00:05";
const LB02_MAC: &str = "02:00:00:00:00:06";

fn lab6(tag: &str) -> Lab {
    splitguard_lab::configs::pair_lab6(tag).expect("lab builds (run as root)")
}

fn check(lab: &Lab, host: &str, args: &[&str]) -> (String, i32) {
    // Non-zero exits are answers here (Nagios codes), so not `lab.run`.
    let out: Output = lab
        .command(host, env!("CARGO_BIN_EXE_splitguard"))
        .expect("host")
        .arg("check")
        .args(args)
        .output()
        .expect("check runs");
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// Runs `splitguard check ARGS` in `host` as nobody (uid/gid 65534, no
/// capabilities) from a copy in the lab directory (the build tree may sit under
/// a private home); returns stdout (trimmed) and the exit code.
fn check_as_nobody(lab: &Lab, host: &str, args: &[&str]) -> (String, i32) {
    let bin = lab.dir().join("splitguard-nobody");
    if !bin.exists() {
        std::fs::copy(env!("CARGO_BIN_EXE_splitguard"), &bin).expect("copy");
    }
    let out = lab
        .command(host, "setpriv")
        .expect("host")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&bin)
        .arg("check")
        .args(args)
        .output()
        .expect("setpriv runs");
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn set_vip(lab: &Lab, host: &str, present: bool) {
    let verb = if present { "add" } else { "del" };
    lab.run(
        host,
        &["ip", "addr", verb, &format!("{VIP}/24"), "dev", "eth0"],
    )
    .expect("ip addr");
}

fn set_vip6(lab: &Lab, host: &str, present: bool) {
    let verb = if present { "add" } else { "del" };
    // nodad: usable at once, as a VRRP VIP is.
    lab.run(
        host,
        &[
            "ip",
            "-6",
            "addr",
            verb,
            &format!("{VIP6}/64"),
            "dev",
            "eth0",
            "nodad",
        ],
    )
    .expect("ip -6 addr");
}

/// The shipped UserParameters as a zabbix_agentd config in the lab directory,
/// pointed at this build (and at the control socket `sock`, when given);
/// returns its path.
fn agent_conf(lab: &Lab, sock: Option<&str>) -> String {
    let mut shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/zabbix/userparameter_splitguard.conf"
    ))
    .expect("contrib/zabbix/userparameter_splitguard.conf")
    .replace("/usr/bin/splitguard", env!("CARGO_BIN_EXE_splitguard"));
    if let Some(sock) = sock {
        shipped = shipped.replace("/run/splitguard/splitguard.sock", sock);
    }
    let conf = lab
        .write_file(
            "zabbix_agentd.conf",
            &format!("AllowRoot=1\nLogType=console\n{shipped}"),
        )
        .expect("conf");
    conf.to_str().expect("utf-8").to_owned()
}

/// The value a real `zabbix_agentd -t KEY` gets in `host` with `conf`.
fn agent_item(lab: &Lab, host: &str, conf: &str, key: &str) -> String {
    let out = lab
        .run(host, &["zabbix_agentd", "-c", conf, "-t", key])
        .expect("zabbix_agentd runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "key   [t|value]"
    text.split("[t|")
        .nth(1)
        .and_then(|r| r.rsplit_once(']'))
        .map(|(v, _)| v.to_owned())
        .unwrap_or_else(|| {
            panic!(
                "no value in {text:?} / {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

#[test]
fn check_vip_counts_owners_for_zabbix_and_nagios() {
    let lab = pair_lab("chkvip");
    let vip_args = |fmt: &'static str| ["vip", "--vip", VIP, "--format", fmt, "--timeout", "300ms"];
    assert_eq!(
        check(&lab, "gw", &vip_args("zabbix")),
        ("0".into(), 0),
        "nobody"
    );
    let (line, code) = check(&lab, "gw", &vip_args("nagios"));
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("SPLITGUARD CRITICAL - nobody answers"),
        "{line}"
    );

    set_vip(&lab, "lb01", true);
    assert_eq!(check(&lab, "gw", &vip_args("zabbix")), ("1".into(), 0));
    let (line, code) = check(&lab, "gw", &vip_args("nagios"));
    assert_eq!(code, 0, "{line}");
    let mac1 = lab.mac_of("lb01").expect("mac");
    assert!(
        line.contains(&mac1) && line.contains("| owners=1;;2 rtt="),
        "{line}"
    );

    // Split brain, seen from gw and from lb02 (its own address counts).
    set_vip(&lab, "lb02", true);
    assert_eq!(check(&lab, "gw", &vip_args("zabbix")), ("2".into(), 0));
    assert_eq!(check(&lab, "lb02", &vip_args("zabbix")), ("2".into(), 0));
    let (line, code) = check(&lab, "lb02", &vip_args("nagios"));
    assert_eq!(code, 2, "{line}");
    assert!(
        line.contains("split brain") && line.contains("owners=2;;2"),
        "{line}"
    );
    let (json, _) = check(&lab, "gw", &vip_args("json"));
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v["owners"].as_array().map(Vec::len), Some(2), "{json}");

    // Bad input is an error naming it, not a number.
    let out = lab
        .command("gw", env!("CARGO_BIN_EXE_splitguard"))
        .expect("host")
        .args(["check", "vip", "--vip", "not-an-ip"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-an-ip"));
}

#[test]
fn without_cap_net_raw_the_answer_is_unknown_with_the_reason() {
    let lab = pair_lab("chkpriv");
    set_vip(&lab, "lb01", true);
    let as_nobody =
        |fmt: &str| check_as_nobody(&lab, "gw", &["vip", "--vip", VIP, "--format", fmt]);
    let (z, _) = as_nobody("zabbix");
    assert!(z.starts_with("ZBX_NOTSUPPORTED: no CAP_NET_RAW"), "{z}");
    let (n, code) = as_nobody("nagios");
    assert_eq!(code, 3, "{n}");
    assert!(
        n.starts_with("SPLITGUARD UNKNOWN") && n.contains("setcap"),
        "{n}"
    );
}

#[test]
fn zabbix_agent_runs_the_user_parameters() {
    let lab = pair_lab("chkzbx");
    set_vip(&lab, "lb01", true);
    // The socket's group lets an unprivileged monitoring user ask the daemon.
    let cfg = sg_config(&lab, "lb02", 100, 2, "1s", "\n[arbiter]\nenabled = false\n").replacen(
        "\n\n[[instance]]",
        "\ncontrol_socket_group = \"nogroup\"\n\n[[instance]]",
        1,
    );
    let sg = start_splitguard(&lab, "lb02", &cfg);
    let sock = format!("{}/lb02.sock", lab.dir().display());
    let conf = agent_conf(&lab, Some(&sock));
    let item = |key: &str| agent_item(&lab, "lb02", &conf, key);
    assert_eq!(item(&format!("splitguard.vip.owners[{VIP}]")), "1");
    // lb02's daemon is backup (lb01 "holds" the VIP by hand, but sends no
    // adverts: lb02 becomes master and adds it too: two owners).
    let two = splitguard_lab::wait_for(BOUND, || {
        (item(&format!("splitguard.vip.owners[{VIP}]")) == "2").then_some(())
    });
    assert!(two.is_some(), "{}", sg.log_text());
    assert_eq!(item("splitguard.state[VI_1]"), "2");
    let disc: serde_json::Value =
        serde_json::from_str(&item("splitguard.discovery")).expect("LLD JSON");
    assert_eq!(
        disc,
        serde_json::json!([{"{#INSTANCE}": "VI_1", "{#VIP}": VIP, "{#VRID}": 51, "{#INTERFACE}": "eth0"}])
    );
    assert!(item("splitguard.state[nope]").starts_with("ZBX_NOTSUPPORTED: no instance named nope"));
    // Without CAP_NET_RAW but in the socket's group: the daemon probes and answers.
    let (value, _) = check_as_nobody(
        &lab,
        "lb02",
        &["vip", "--vip", VIP, "--format", "zabbix", "--socket", &sock],
    );
    assert_eq!(value, "2");
}

/// The acceptance case: a keepalived pair, the shipped UserParameter evaluated by
/// a real zabbix_agentd on lb02, and the Nagios plugin beside it: 1 / OK in
/// steady state, 2 / CRITICAL with VRRP firewalled on lb02 (S2), 0 / CRITICAL
/// with both keepalived stopped.
#[test]
fn keepalived_pair_through_zabbix_and_nagios() {
    let lab = pair_lab("chkka");
    let conf = agent_conf(&lab, None);
    let key = format!("splitguard.vip.owners[{VIP}]");
    let zabbix = || agent_item(&lab, "lb02", &conf, &key);
    let nagios = || check(&lab, "lb02", &["vip", "--vip", VIP, "--format", "nagios"]);
    let until = |want: &str| {
        splitguard_lab::wait_for(BOUND, || (zabbix() == want).then_some(()))
            .unwrap_or_else(|| panic!("zabbix never saw {want}; last {}", zabbix()));
    };

    let mut ka1 = start_keepalived(&lab, "lb01", &ka_config("lb01", 150, 2, "1"));
    let mut ka2 = start_keepalived(&lab, "lb02", &ka_config("lb02", 100, 2, "1"));
    expect_owner(&lab, Some("lb01"), &[&ka1, &ka2], "steady state");
    until("1");
    let (line, code) = nagios();
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with("SPLITGUARD OK") && line.contains("owners=1;;2"),
        "{line}"
    );

    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    until("2");
    let (line, code) = nagios();
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("SPLITGUARD CRITICAL - split brain"),
        "{line}"
    );

    ka1.stop(std::time::Duration::from_secs(10));
    ka2.stop(std::time::Duration::from_secs(10));
    until("0");
    let (line, code) = nagios();
    assert_eq!(code, 2, "{line}");
    assert!(
        line.contains("nobody answers") && line.contains("owners=0;;2"),
        "{line}"
    );
}

/// The owners `splitguard check vip --format json` reports from `host`.
fn owners_json(lab: &Lab, host: &str, vip: &str) -> BTreeSet<String> {
    let (json, code) = check(lab, host, &["vip", "--vip", vip, "--format", "json"]);
    assert_eq!(code, 0, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    v["owners"]
        .as_array()
        .expect("owners")
        .iter()
        .map(|m| m.as_str().expect("MAC").to_owned())
        .collect()
}

#[test]
fn check_vip_counts_ipv6_owners_for_zabbix_and_nagios() {
    let lab = lab6("chkvip6");
    let vip_args =
        |fmt: &'static str| ["vip", "--vip", VIP6, "--format", fmt, "--timeout", "300ms"];
    for host in ["gw", "lb02"] {
        assert_eq!(
            check(&lab, host, &vip_args("zabbix")),
            ("0".into(), 0),
            "nobody, from {host}"
        );
        let (line, code) = check(&lab, host, &vip_args("nagios"));
        assert_eq!(code, 2, "{line}");
        assert!(
            line.starts_with(&format!(
                "SPLITGUARD CRITICAL - nobody answers for VIP {VIP6}"
            )) && line.ends_with("| owners=0;;2"),
            "{line}"
        );
    }

    set_vip6(&lab, "lb01", true);
    for host in ["gw", "lb02"] {
        assert_eq!(
            check(&lab, host, &vip_args("zabbix")),
            ("1".into(), 0),
            "lb01, from {host}"
        );
        let (line, code) = check(&lab, host, &vip_args("nagios"));
        assert_eq!(code, 0, "{line}");
        assert!(
            line.starts_with(&format!("SPLITGUARD OK - VIP {VIP6} held by {LB01_MAC} |"))
                && line.contains("| owners=1;;2 rtt="),
            "{line}"
        );
    }
    // ndisc6 from gw, independent of splitguard, agrees.
    let lb01: BTreeSet<String> = [LB01_MAC.to_owned()].into();
    assert_eq!(lab.vip_owners("gw", VIP6).expect("ndisc6"), lb01);
    assert_eq!(owners_json(&lab, "gw", VIP6), lb01);
    // lb01 itself: its own address counts, nobody else answers.
    let (line, code) = check(&lab, "lb01", &vip_args("nagios"));
    assert_eq!(code, 0, "{line}");
    assert!(
        line.contains(&format!("held by {LB01_MAC} (this node)")),
        "{line}"
    );

    // Split brain, seen from gw and from lb02 (its own address counts).
    set_vip6(&lab, "lb02", true);
    let both: BTreeSet<String> = [LB01_MAC.to_owned(), LB02_MAC.to_owned()].into();
    for host in ["gw", "lb02"] {
        assert_eq!(
            check(&lab, host, &vip_args("zabbix")),
            ("2".into(), 0),
            "both, from {host}"
        );
        let (line, code) = check(&lab, host, &vip_args("nagios"));
        assert_eq!(code, 2, "{line}");
        assert!(
            line.starts_with(&format!(
                "SPLITGUARD CRITICAL - split brain: VIP {VIP6} answered by {LB01_MAC}, {LB02_MAC} |"
            )) && line.contains("owners=2;;2"),
            "{line}"
        );
        assert_eq!(owners_json(&lab, host, VIP6), both, "from {host}");
    }
    assert_eq!(lab.vip_owners("gw", VIP6).expect("ndisc6"), both);

    // A link-local VIP is on every link: UNKNOWN until the interface is named.
    let ll = "fe80::ff:fe00:5";
    let (z, code) = check(&lab, "gw", &["vip", "--vip", ll, "--format", "zabbix"]);
    assert_eq!(code, 0, "{z}");
    assert!(
        z.starts_with("ZBX_NOTSUPPORTED: ")
            && z.contains("link-local")
            && z.contains("--interface"),
        "{z}"
    );
    let (n, code) = check(&lab, "gw", &["vip", "--vip", ll, "--format", "nagios"]);
    assert_eq!(code, 3, "{n}");
    assert!(
        n.starts_with(&format!("SPLITGUARD UNKNOWN - VIP {ll}: ")) && n.contains("--interface"),
        "{n}"
    );
    let named = [
        "vip",
        "--vip",
        ll,
        "--interface",
        "eth0",
        "--format",
        "nagios",
    ];
    let (n, code) = check(&lab, "gw", &named);
    assert_eq!(code, 0, "{n}");
    assert!(n.contains(&format!("held by {LB01_MAC} |")), "{n}");
}

#[test]
fn without_cap_net_raw_an_ipv6_answer_is_unknown_with_the_reason() {
    let lab = lab6("chkpriv6");
    set_vip6(&lab, "lb01", true);
    let as_nobody =
        |fmt: &str| check_as_nobody(&lab, "gw", &["vip", "--vip", VIP6, "--format", fmt]);
    let (z, code) = as_nobody("zabbix");
    assert_eq!(code, 0, "{z}");
    assert!(
        z.starts_with("ZBX_NOTSUPPORTED: no CAP_NET_RAW") && z.contains("neighbour solicitation"),
        "{z}"
    );
    let (n, code) = as_nobody("nagios");
    assert_eq!(code, 3, "{n}");
    assert!(
        n.starts_with(&format!("SPLITGUARD UNKNOWN - VIP {VIP6}: no CAP_NET_RAW"))
            && n.contains("setcap"),
        "{n}"
    );
}

/// An IPv6-only VRRPv3 daemon on lb01: the shipped UserParameters through a real
/// zabbix_agentd (owners with a `:`-laden key, state, discovery naming the IPv6
/// VIP), and the daemon answering `check vip` for a user without CAP_NET_RAW.
#[test]
fn zabbix_agent_runs_the_user_parameters_for_an_ipv6_vip() {
    let lab = lab6("chkzbx6");
    let cfg = sg_config_in(
        &lab,
        "lb01",
        150,
        3,
        "1s",
        "\n[arbiter]\nenabled = false\n",
        Family::Ipv6,
    )
    .replacen(
        "\n\n[[instance]]",
        "\ncontrol_socket_group = \"nogroup\"\n\n[[instance]]",
        1,
    );
    let sg = start_splitguard(&lab, "lb01", &cfg);
    let sock = format!("{}/lb01.sock", lab.dir().display());
    let conf = agent_conf(&lab, Some(&sock));
    let item = |key: &str| agent_item(&lab, "lb01", &conf, key);
    let master = splitguard_lab::wait_for(BOUND, || {
        (item("splitguard.state[VI_1]") == "2").then_some(())
    });
    assert!(master.is_some(), "{}", sg.log_text());
    let owners = format!("splitguard.vip.owners[{VIP6}]");
    assert_eq!(item(&owners), "1", "{}", sg.log_text());
    let disc: serde_json::Value =
        serde_json::from_str(&item("splitguard.discovery")).expect("LLD JSON");
    assert_eq!(
        disc,
        serde_json::json!([{"{#INSTANCE}": "VI_1", "{#VIP}": VIP6, "{#VRID}": 51, "{#INTERFACE}": "eth0"}])
    );
    // lb02 takes the VIP by hand (no daemon, no adverts): two owners, seen by
    // lb01's agent and by its daemon for a user without CAP_NET_RAW.
    set_vip6(&lab, "lb02", true);
    assert_eq!(item(&owners), "2", "{}", sg.log_text());
    let two = splitguard_lab::wait_for(BOUND, || {
        let (value, _) = check_as_nobody(
            &lab,
            "lb01",
            &[
                "vip", "--vip", VIP6, "--format", "zabbix", "--socket", &sock,
            ],
        );
        (value == "2").then_some(())
    });
    assert!(two.is_some(), "{}", sg.log_text());
}
