//! The daemon's trackers, notify scripts, event stream and status, in a namespace
//! lab: a weight-0 track script failing and a tracked interface going down both put
//! the instance in FAULT and release the VIP; notify scripts run in order with
//! keepalived's arguments; `status --json` follows every step. Needs root.

mod common;

use common::*;
use splitguard_lab::{Lab, LabProcess, wait_for};
use std::process::Command;
use std::time::Duration;

fn status_json(config: &std::path::Path) -> Option<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_splitguard"))
        .args(["status", "--json", "-c", config.to_str()?])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn wait_state(
    lab: &Lab,
    config: &std::path::Path,
    want: &str,
    lb01: &LabProcess,
) -> serde_json::Value {
    wait_for(BOUND, || {
        let s = status_json(config)?;
        (s["instances"][0]["state"] == want).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "state never became {want}; status now: {:?}; holds VIP: {}\n{}",
            status_json(config),
            holds(lab, "lb01"),
            lb01.log_text()
        )
    })
}

#[test]
fn trackers_fault_and_recover_with_ordered_notifies_and_status() {
    let lab = Lab::builder("features")
        .host("lb01", std::net::Ipv4Addr::new(192, 0, 2, 5))
        .host("gw", std::net::Ipv4Addr::new(192, 0, 2, 254))
        .build()
        .expect("lab builds (run as root)");
    // A second interface to track (this kernel has no dummy driver: a veth pair).
    lab.run(
        "lb01",
        &[
            "ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p",
        ],
    )
    .expect("veth");
    lab.run("lb01", &["ip", "link", "set", "uplink0p", "up"])
        .expect("peer up");
    lab.run("lb01", &["ip", "link", "set", "uplink0", "up"])
        .expect("uplink up");

    let dir = lab.dir().to_path_buf();
    let flag = dir.join("healthy");
    std::fs::write(&flag, "").expect("flag");
    let notify_log = dir.join("notify.log");
    let script = lab
        .write_file(
            "notify.sh",
            &format!("#!/bin/sh\necho \"$@\" >> {}\n", notify_log.display()),
        )
        .expect("script");
    let master_script = lab
        .write_file(
            "master.sh",
            &format!(
                "#!/bin/sh\necho master-script >> {}\n",
                notify_log.display()
            ),
        )
        .expect("script");
    let events = dir.join("events.jsonl");
    let extra = format!(
        "track_scripts = [\"chk\"]\ntrack_interfaces = [\"uplink0\"]\n\
         notify = [\"/bin/sh\", \"{}\"]\nnotify_master = [\"/bin/sh\", \"{}\"]\n\n\
         [[track_script]]\nname = \"chk\"\ncommand = [\"/usr/bin/test\", \"-e\", \"{}\"]\n\
         interval = \"200ms\"\nweight = 0\n",
        script.display(),
        master_script.display(),
        flag.display()
    );
    let mut cfg = sg_config(&lab, "lb01", 150, 3, "100ms", &extra);
    cfg = format!("events_file = \"{}\"\n{cfg}", events.display());
    let config = lab.write_file("lb01.toml", &cfg).expect("config");
    let mut lb01 = start_splitguard(&lab, "lb01", &cfg);

    let s = wait_state(&lab, &config, "MASTER", &lb01);
    assert_eq!(s["node"], "lb01");
    assert_eq!(s["instances"][0]["vips_held"], true);
    assert_eq!(s["instances"][0]["vips"][0], "192.0.2.3/24");
    assert!(holds(&lab, "lb01"));

    // The check fails: FAULT, VIP released.
    std::fs::remove_file(&flag).expect("unflag");
    let s = wait_state(&lab, &config, "FAULT", &lb01);
    assert_eq!(s["instances"][0]["vips_held"], false);
    assert!(!holds(&lab, "lb01"), "FAULT releases the VIP");
    std::fs::write(&flag, "").expect("flag");
    wait_state(&lab, &config, "MASTER", &lb01);

    // The tracked interface goes down: FAULT again.
    lab.run("lb01", &["ip", "link", "set", "uplink0p", "down"])
        .expect("down");
    wait_state(&lab, &config, "FAULT", &lb01);
    assert!(!holds(&lab, "lb01"));
    lab.run("lb01", &["ip", "link", "set", "uplink0p", "up"])
        .expect("up");
    wait_state(&lab, &config, "MASTER", &lb01);

    let status = lb01.stop(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{}", lb01.log_text());

    // Notifies: in order, keepalived's arguments, the state script before `notify`.
    let log = std::fs::read_to_string(&notify_log).expect("notify log");
    let lines: Vec<&str> = log.lines().collect();
    let states: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("INSTANCE VI_1 "))
        .map(|rest| rest.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        states,
        [
            "BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER", "STOP"
        ],
        "notify log:\n{log}"
    );
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("INSTANCE VI_1 MASTER") {
            assert_eq!(
                lines.get(i.wrapping_sub(1)),
                Some(&"master-script"),
                "{log}"
            );
        }
    }
    assert!(lines.contains(&"INSTANCE VI_1 MASTER 150"), "{log}");

    // The event stream saw the same story, in order.
    let events = std::fs::read_to_string(&events).expect("events");
    let tos: Vec<String> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "state_changed")
        .filter_map(|e| e["to"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        tos,
        [
            "BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER", "INIT"
        ],
        "{events}"
    );
}

#[test]
fn status_without_a_daemon_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_splitguard"))
        .args(["status", "--socket", "/nonexistent/splitguard.sock"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not running"), "{err}");
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused_before_touching_vips() {
    let lab = pair_lab("twice");
    let cfg = sg_config(&lab, "lb01", 150, 2, "1s", "");
    let first = start_splitguard(&lab, "lb01", &cfg);
    expect_owner(&lab, Some("lb01"), &[&first], "first daemon");
    let mut second = start_splitguard(&lab, "lb01", &cfg);
    let status = second.wait_exit(BOUND);
    assert!(
        status.is_some_and(|s| !s.success()),
        "{}",
        second.log_text()
    );
    assert!(
        second.log_text().contains("control socket"),
        "{}",
        second.log_text()
    );
    // The first daemon still holds the VIP: the second removed nothing.
    expect_owner(
        &lab,
        Some("lb01"),
        &[&first],
        "after the refused second daemon",
    );
}

/// The control socket's commands on a running daemon: `demote` releases the VIP
/// and holds the node backup (no claim although nobody else holds it), `resume`
/// lets it claim again, `ack` of an unknown code is refused with the reason, and
/// `owners` probes the segment for the caller.
#[test]
fn control_commands_demote_resume_ack_and_owners() {
    use splitguard_node::control::{Request, client};
    let lab = pair_lab("ctlcmd");
    let cfg = sg_config(&lab, "lb01", 150, 2, "1s", "\n[arbiter]\nenabled = false\n");
    let lb01 = start_splitguard(&lab, "lb01", &cfg);
    expect_owner(&lab, Some("lb01"), &[&lb01], "lb01 master");
    let sock = lab.dir().join("lb01.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ask = |req: Request| {
        rt.block_on(client::request(&sock, &req, Duration::from_secs(5)))
            .expect("answer")
    };
    let owners = ask(Request::Owners {
        vip: VIP.parse().expect("ip"),
    });
    let o = owners.owners.expect("owners answered");
    assert_eq!(o.owners, vec![lab.mac_of("lb01").expect("mac")]);
    assert!(o.local);

    let r = ask(Request::Demote {
        instance: Some("VI_1".into()),
    });
    assert!(r.ok, "{r:?}");
    wait_for(BOUND, || (!holds(&lab, "lb01")).then_some(()))
        .unwrap_or_else(|| panic!("demote did not release\n{}", lb01.log_text()));
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !holds(&lab, "lb01"),
        "held backup although nobody else holds the VIP"
    );
    let r = ask(Request::Resume { instance: None });
    assert!(r.ok, "{r:?}");
    expect_owner(&lab, Some("lb01"), &[&lb01], "claims again after resume");

    let r = ask(Request::Ack {
        code: "0000".into(),
    });
    assert!(!r.ok);
    assert!(
        r.error
            .unwrap_or_default()
            .contains("no open incident has code 0000"),
        "the reason is named"
    );
    let r = ask(Request::Demote {
        instance: Some("nope".into()),
    });
    assert!(
        !r.ok
            && r.error
                .unwrap_or_default()
                .contains("no instance named nope")
    );
}

/// Under systemd (`Type=notify`, `WatchdogSec=`): READY once serving, WATCHDOG
/// pings from the main loop at half the interval, STOPPING on SIGTERM. The
/// notify socket here is the test's own datagram socket.
#[test]
fn systemd_notify_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let lab = pair_lab("sdnotify");
    let notify_path = lab.dir().join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let cfg = sg_config(&lab, "lb01", 150, 2, "1s", "\n[arbiter]\nenabled = false\n");
    let path = lab.write_file("lb01.toml", &cfg).expect("config");
    let mut child = lab
        .command("lb01", env!("CARGO_BIN_EXE_splitguard"))
        .expect("host")
        .args(["run", "-c", path.to_str().expect("utf-8")])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("daemon starts");
    let mut buf = [0u8; 256];
    let mut next = || {
        let n = sock.recv(&mut buf).expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).trim().to_owned()
    };
    assert_eq!(next(), "READY=1");
    let t = std::time::Instant::now();
    assert_eq!(next(), "WATCHDOG=1");
    assert_eq!(next(), "WATCHDOG=1");
    assert!(t.elapsed() < Duration::from_secs(3), "pings every 0.5 s");
    // SAFETY: kill(2) on our own child's pid, no memory involved.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopping = (0..20).map(|_| next()).find(|m| m == "STOPPING=1");
    assert_eq!(stopping.as_deref(), Some("STOPPING=1"));
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status:?}");
}
