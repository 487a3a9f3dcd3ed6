//! Shared helpers for the lab integration tests: a three-host lab (lb01, lb02, gw),
//! splitguard and keepalived configs, and assertions that print daemon logs on
//! failure.
#![allow(dead_code)] // each test binary uses its own subset

pub mod chromium;
pub mod dovecot;

use std::collections::BTreeSet;
use std::time::Duration;

use splitguard_lab::configs;
use splitguard_lab::{Lab, LabProcess, wait_for};

#[allow(unused_imports)] // each test binary uses its own subset
pub use splitguard_lab::configs::{VIP, ka_config, sg_config};
#[allow(unused_imports)] // each test binary uses its own subset
pub use splitguard_lab::scenario::VRRP_DROP;

/// Generous bound for anything VRRP should do in a few seconds.
pub const BOUND: Duration = Duration::from_secs(20);

pub fn pair_lab(tag: &str) -> Lab {
    configs::pair_lab(tag).expect("lab builds (run as root)")
}

/// Starts `splitguard run` in `host` with `config`.
pub fn start_splitguard(lab: &Lab, host: &str, config: &str) -> LabProcess {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_splitguard"));
    configs::start_splitguard(lab, host, bin, config).expect("splitguard starts")
}

/// Starts `splitguard watch` in `host` with `config` (written to
/// `watch-<host>.toml`; the log is `splitguard-watch-<host>`).
pub fn start_watch(lab: &Lab, host: &str, config: &str) -> LabProcess {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_splitguard"));
    configs::start_watch(lab, host, bin, config).expect("splitguard watch starts")
}

/// Whether `host` has the VIP configured on its eth0.
pub fn holds(lab: &Lab, host: &str) -> bool {
    configs::holds_vip(lab, host).expect("ip addr")
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
    expect_owner_in(lab, owner, procs, what, configs::Family::Ipv4)
}

/// [`expect_owner`] for the pair's VIP in `family` (IPv6: gw asks by
/// neighbour solicitation, with ndisc6).
pub fn expect_owner_in(
    lab: &Lab,
    owner: Option<&str>,
    procs: &[&LabProcess],
    what: &str,
    family: configs::Family,
) {
    let vip = configs::vip_in(family);
    let holds = |h: &str| configs::holds_vip_in(lab, h, family).expect("ip addr");
    let expected: BTreeSet<String> = owner
        .map(|h| lab.mac_of(h).expect("mac"))
        .into_iter()
        .collect();
    let seen = wait_for(BOUND, || {
        let owners = lab.vip_owners("gw", vip).ok()?;
        let hosts_agree = ["lb01", "lb02"]
            .iter()
            .all(|h| holds(h) == (Some(*h) == owner));
        (owners == expected && hosts_agree).then_some(owners)
    });
    if seen.is_none() {
        let now = lab.vip_owners("gw", vip).unwrap_or_default();
        panic!(
            "{what}: expected owner {owner:?} ({expected:?}), gw sees {now:?}; lb01 holds: {}, lb02 holds: {}\n{}",
            holds("lb01"),
            holds("lb02"),
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

/// Starts keepalived (VRRP only, foreground, logging to its log file) in `host`,
/// with pid files in the lab directory so parallel labs never collide.
pub fn start_keepalived(lab: &Lab, host: &str, config: &str) -> LabProcess {
    configs::start_keepalived(lab, host, config).expect("keepalived starts")
}

/// Debian's interpreter (python3-aiosmtpd lives there).
pub const SYS_PYTHON: &str = "/usr/bin/python3";

/// Waits until something on gw (192.0.2.254) or any lab address accepts TCP on
/// `addr:port`, asked from `from`.
pub fn wait_listening(lab: &Lab, from: &str, addr: &str, port: u16) {
    let probe = format!("import socket; socket.create_connection(('{addr}', {port}), 1)");
    splitguard_lab::wait_for(Duration::from_secs(15), || {
        lab.run(from, &[SYS_PYTHON, "-c", &probe])
            .ok()
            .filter(|o| o.status.success())
    })
    .unwrap_or_else(|| panic!("nothing listens on {addr}:{port}"));
}

/// The HTTP recorder (Twilio, PagerDuty, gateways) on gw at `port`; returns it
/// and its JSON-lines log.
pub fn start_recorder(lab: &Lab, port: u16) -> (LabProcess, std::path::PathBuf) {
    start_recorder_with(lab, port, &[])
}

/// [`start_recorder`] with more arguments (`--fail KEY=STATUS`, `--echo`).
pub fn start_recorder_with(
    lab: &Lab,
    port: u16,
    extra: &[&str],
) -> (LabProcess, std::path::PathBuf) {
    let log = lab.dir().join(format!("recorder-{port}.jsonl"));
    let script = format!(
        "{}/tests/fixtures/receivers/http_recorder.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let listen = format!("192.0.2.254:{port}");
    let mut argv = vec![
        SYS_PYTHON,
        &script,
        "--listen",
        &listen,
        "--log",
        log.to_str().expect("utf-8"),
    ];
    argv.extend_from_slice(extra);
    let p = lab
        .spawn("gw", &format!("recorder-{port}"), &argv)
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

/// The events file `<name>-events.jsonl` in the lab directory.
pub fn events(lab: &Lab, name: &str) -> Vec<serde_json::Value> {
    read_jsonl(&lab.dir().join(format!("{name}-events.jsonl")))
}

/// Whether an `incident` event of `kind` fired (was paged) in `events`.
pub fn incident_fired(events: &[serde_json::Value], kind: &str) -> bool {
    events
        .iter()
        .any(|e| e["event"] == "incident" && e["kind"] == kind && e["status"] == "firing")
}

/// The `fence` events with `outcome` in `events`.
pub fn fence_events(events: &[serde_json::Value], outcome: &str) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter(|e| e["event"] == "fence" && e["outcome"] == outcome)
        .cloned()
        .collect()
}

/// The daemons' logs and each BMC's power calls and log tail.
pub fn logs_with_bmcs(procs: &[&LabProcess], bmcs: &[&splitguard_lab::bmc::IpmiBmc<'_>]) -> String {
    let mut s = logs(procs);
    for b in bmcs {
        s.push_str(&format!(
            "\n----- bmc {} -----\n{:?}\n{}",
            b.addr(),
            b.power_log(),
            b.log_tail(10)
        ));
    }
    s
}

/// Waits until gw sees `owner` alone answer for the VIP (a fenced host's
/// namespace keeps its addresses, but it is off the wire: its links are
/// down); panics with the logs otherwise.
pub fn gw_sees_only(lab: &Lab, owner: &str, procs: &[&LabProcess], what: &str) {
    let mac = lab.mac_of(owner).expect("mac");
    let seen = wait_for(BOUND, || {
        let owners = lab.vip_owners("gw", VIP).unwrap_or_default();
        (owners.len() == 1 && owners.contains(&mac)).then_some(())
    });
    assert!(
        seen.is_some(),
        "{what}: gw never saw {owner} alone: {:?}\n{}",
        lab.vip_owners("gw", VIP),
        logs(procs)
    );
}

/// Posts a reply through the generic gateway at `url` from gw, signed as it
/// asks (HMAC-SHA256 over "<ts>.<body>" with `secret`, computed by Python's
/// hmac, independently of ours), `age` seconds old; the HTTP status.
pub fn post_generic_reply(
    lab: &Lab,
    url: &str,
    secret: &str,
    from: &str,
    text: &str,
    id: &str,
    age: i64,
) -> u16 {
    let script = format!(
        r#"
import hmac, hashlib, json, time, urllib.request, urllib.error
body = json.dumps({{"from": "{from}", "text": "{text}", "id": "{id}"}}).encode()
ts = str(int(time.time()) - {age})
sig = "sha256=" + hmac.new(b"{secret}", ts.encode() + b"." + body, hashlib.sha256).hexdigest()
req = urllib.request.Request("{url}", data=body,
    headers={{"X-Splitguard-Timestamp": ts, "X-Splitguard-Signature": sig, "Content-Type": "application/json"}})
try:
    print(urllib.request.urlopen(req, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
"#
    );
    let out = lab.run("gw", &[SYS_PYTHON, "-c", &script]).expect("python");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
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

/// `status --json` of `node` (its socket where `sg_config` puts it), or
/// `None` until its control socket answers.
pub fn try_status(lab: &Lab, node: &str) -> Option<serde_json::Value> {
    try_status_at(lab, node, &configs::sg_socket(lab, node))
}

/// `status --json` from `host` against the control socket `sock`, or `None`
/// until it answers.
pub fn try_status_at(lab: &Lab, host: &str, sock: &std::path::Path) -> Option<serde_json::Value> {
    let out = lab
        .run(
            host,
            &[
                env!("CARGO_BIN_EXE_splitguard"),
                "status",
                "--json",
                "--socket",
                sock.to_str()?,
            ],
        )
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// `splitguard status --json` against the socket `sock` (a file name in the lab
/// directory), run in `host`.
pub fn status_via(lab: &Lab, host: &str, sock: &str) -> serde_json::Value {
    let path = lab.dir().join(sock);
    let out = lab
        .run(
            host,
            &[
                env!("CARGO_BIN_EXE_splitguard"),
                "status",
                "--json",
                "--socket",
                path.to_str().expect("utf-8"),
            ],
        )
        .expect("status");
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

/// The mails an `smtp_sink.py` stored in `maildir`, in arrival order.
pub fn stored_mails(maildir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(maildir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                // The sink writes the .json last: without it the .eml may
                // still be half-written (an empty subject was read once).
                .filter(|e| e.path().with_extension("json").exists())
                .filter_map(|e| {
                    Some((
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read_to_string(e.path()).ok()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|m| m.1).collect()
}

/// Two VRRP frames captured and decoded by tshark on gw (`filter` is the
/// capture filter, e.g. `ip proto 112`), at most 15 s; asserts they are VRRP
/// with a good checksum and returns tshark's verbose text for further checks.
pub fn tshark_vrrp(lab: &Lab, filter: &str) -> String {
    let out = gw_tshark(lab, filter)
        .args(["-c", "2", "-a", "duration:15", "-V"])
        .output()
        .expect("tshark runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("Virtual Router Redundancy Protocol"),
        "tshark saw no VRRP:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("[Checksum Status: Good]") || text.contains("[correct]"),
        "tshark must find the checksum correct:\n{text}"
    );
    assert!(!text.contains("incorrect"), "{text}");
    text
}

/// tshark on gw's eth0 with capture filter `filter`; the caller adds the rest.
pub fn gw_tshark(lab: &Lab, filter: &str) -> std::process::Command {
    let mut cmd = lab.command("gw", "tshark").expect("gw");
    cmd.args(["-i", "eth0", "-f", filter]);
    cmd
}

/// An HTTP GET from gw with the system's Python: the body, or `ERR` and why.
pub fn http_get(lab: &Lab, url: &str) -> String {
    let code = format!(
        "import urllib.request\ntry:\n    print(urllib.request.urlopen('{url}', timeout=5).read().decode())\nexcept Exception as e:\n    print('ERR', e)"
    );
    let out = lab.run("gw", &[SYS_PYTHON, "-c", &code]).expect("python");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip netns list` as text: lab namespace names carry the creating process's
/// pid, so a test can check its command left none behind.
pub fn namespaces() -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
