//! Shared helpers for the lab integration tests: a three-host lab (lb01, lb02, gw),
//! splitguard and keepalived configs, and assertions that print daemon logs on
//! failure.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use splitguard::lab::{Lab, LabProcess, wait_for};

pub const VIP: &str = "192.0.2.3";
/// Generous bound for anything VRRP should do in a few seconds.
pub const BOUND: Duration = Duration::from_secs(20);

pub fn pair_lab(tag: &str) -> Lab {
    Lab::builder(tag)
        .host("lb01", Ipv4Addr::new(192, 0, 2, 5))
        .host("lb02", Ipv4Addr::new(192, 0, 2, 6))
        .host("gw", Ipv4Addr::new(192, 0, 2, 254))
        .build()
        .expect("lab builds (run as root)")
}

/// A splitguard config for `node`: one instance VI_1 on eth0 with VIP .3/24.
pub fn sg_config(
    lab: &Lab,
    node: &str,
    priority: u8,
    version: u8,
    interval: &str,
    extra: &str,
) -> String {
    let dir = lab.dir().display();
    let auth = if version == 2 {
        "auth_pass = \"1111\"\n"
    } else {
        ""
    };
    format!(
        "node = \"{node}\"\nstate_dir = \"{dir}/{node}-state\"\ncontrol_socket = \"{dir}/{node}.sock\"\n\n\
         [[instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\n\
         advert_interval = \"{interval}\"\nversion = {version}\n{auth}vips = [\"{VIP}/24\"]\n\
         vip_label = \"eth0:1\"\n{extra}"
    )
}

/// Starts `splitguard run` in `host` with `config`.
pub fn start_splitguard(lab: &Lab, host: &str, config: &str) -> LabProcess {
    let path = lab
        .write_file(&format!("{host}.toml"), config)
        .expect("config written");
    let bin = env!("CARGO_BIN_EXE_splitguard");
    let path = path.to_str().expect("utf-8 path");
    lab.spawn(
        host,
        &format!("splitguard-{host}"),
        &[bin, "run", "-c", path],
    )
    .expect("splitguard starts")
}

/// Whether `host` has the VIP configured on its eth0.
pub fn holds(lab: &Lab, host: &str) -> bool {
    let out = lab
        .run(host, &["ip", "-br", "-4", "addr", "show", "dev", "eth0"])
        .expect("ip addr");
    String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP}/"))
}

pub fn logs(procs: &[&LabProcess]) -> String {
    procs
        .iter()
        .map(|p| format!("----- {} -----\n{}", p.name, p.log_text()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until gw sees exactly `expected` answer ARP for the VIP (and the hosts'
/// own address lists agree); panics with the daemons' logs otherwise.
pub fn expect_owner(lab: &Lab, owner: Option<&str>, procs: &[&LabProcess], what: &str) {
    let expected: BTreeSet<String> = owner
        .map(|h| lab.mac_of(h).expect("mac"))
        .into_iter()
        .collect();
    let seen = wait_for(BOUND, || {
        let owners = lab.vip_owners("gw", VIP).ok()?;
        let hosts_agree = ["lb01", "lb02"]
            .iter()
            .all(|h| holds(lab, h) == (Some(*h) == owner));
        (owners == expected && hosts_agree).then_some(owners)
    });
    if seen.is_none() {
        let now = lab.vip_owners("gw", VIP).unwrap_or_default();
        panic!(
            "{what}: expected owner {owner:?} ({expected:?}), gw sees {now:?}; lb01 holds: {}, lb02 holds: {}\n{}",
            holds(lab, "lb01"),
            holds(lab, "lb02"),
            logs(procs)
        );
    }
}

/// Stays true for `window`: the owner does not change (checked every 500 ms).
pub fn expect_owner_stays(
    lab: &Lab,
    owner: &str,
    window: Duration,
    procs: &[&LabProcess],
    what: &str,
) {
    let mac = lab.mac_of(owner).expect("mac");
    let deadline = std::time::Instant::now() + window;
    while std::time::Instant::now() < deadline {
        let owners = lab.vip_owners("gw", VIP).unwrap_or_default();
        let expected: BTreeSet<String> = [mac.clone()].into();
        if owners != expected {
            panic!(
                "{what}: owner changed: gw sees {owners:?}, expected {owner}\n{}",
                logs(procs)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A keepalived 2.2.7 config equivalent to `sg_config`.
pub fn ka_config(node: &str, priority: u8, version: u8, interval: &str) -> String {
    let auth = if version == 2 {
        "  authentication {\n    auth_type PASS\n    auth_pass 1111\n  }\n"
    } else {
        ""
    };
    format!(
        "global_defs {{\n  router_id {node}\n  vrrp_version {version}\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
         priority {priority}\n  advert_int {interval}\n{auth}  virtual_ipaddress {{\n    {VIP}/24 dev eth0 label eth0:1\n  }}\n}}\n"
    )
}

/// Starts keepalived (VRRP only, foreground, logging to its log file) in `host`,
/// with pid files in the lab directory so parallel labs never collide.
pub fn start_keepalived(lab: &Lab, host: &str, config: &str) -> LabProcess {
    let conf = lab
        .write_file(&format!("{host}-keepalived.conf"), config)
        .expect("config written");
    let dir = lab.dir();
    let pid = dir.join(format!("{host}-keepalived.pid"));
    let vpid = dir.join(format!("{host}-vrrp.pid"));
    lab.spawn(
        host,
        &format!("keepalived-{host}"),
        &[
            "keepalived",
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--vrrp",
            "-f",
            conf.to_str().expect("utf-8"),
            "-p",
            pid.to_str().expect("utf-8"),
            "-r",
            vpid.to_str().expect("utf-8"),
        ],
    )
    .expect("keepalived starts")
}

/// Debian's interpreter (python3-aiosmtpd lives there).
pub const SYS_PYTHON: &str = "/usr/bin/python3";

/// Waits until something on gw (192.0.2.254) or any lab address accepts TCP on
/// `addr:port`, asked from `from`.
pub fn wait_listening(lab: &Lab, from: &str, addr: &str, port: u16) {
    let probe = format!("import socket; socket.create_connection(('{addr}', {port}), 1)");
    splitguard::lab::wait_for(Duration::from_secs(15), || {
        lab.run(from, &[SYS_PYTHON, "-c", &probe])
            .ok()
            .filter(|o| o.status.success())
    })
    .unwrap_or_else(|| panic!("nothing listens on {addr}:{port}"));
}

/// The HTTP recorder (Twilio, PagerDuty, gateways) on gw at `port`; returns it
/// and its JSON-lines log.
pub fn start_recorder(lab: &Lab, port: u16) -> (LabProcess, std::path::PathBuf) {
    let log = lab.dir().join(format!("recorder-{port}.jsonl"));
    let script = format!(
        "{}/tests/fixtures/receivers/http_recorder.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let p = lab
        .spawn(
            "gw",
            &format!("recorder-{port}"),
            &[
                SYS_PYTHON,
                &script,
                "--listen",
                &format!("192.0.2.254:{port}"),
                "--log",
                log.to_str().expect("utf-8"),
            ],
        )
        .expect("recorder starts");
    wait_listening(lab, "gw", "192.0.2.254", port);
    (p, log)
}

pub fn read_jsonl(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// PyPI's twilio in the venv contrib/test.sh makes.
pub fn twilio_python() -> String {
    let p = format!("{}/target/pyvenv/bin/python", env!("CARGO_MANIFEST_DIR"));
    assert!(
        std::path::Path::new(&p).exists(),
        "{p} is missing: run contrib/test.sh, which installs PyPI's twilio there"
    );
    p
}
