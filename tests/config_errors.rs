//! `config::load` on the files under `tests/fixtures/config/`: the good one loads,
//! each bad one gives exactly the listed `FILE:LINE:COL: key: message` lines. And
//! `splitguard check-config` on a generated 255-instance file (issue: 255 VRIDs
//! on a node): valid, it passes in well under a second (bounded generously here,
//! a debug build); with errors deep in it, they are still located by line:col.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use splitguard_node::config::{self, Channel, ConfigError, OnIsolated, Sms};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

/// Loads a bad fixture and checks every diagnostic line, in order. `expected`
/// lines leave out the `FILE:` prefix, which is added here.
#[track_caller]
fn assert_errors(name: &str, expected: &[&str]) {
    let path = fixture(name);
    let err = match config::load(&path) {
        Ok(_) => panic!("{name} loaded but should not have"),
        Err(e) => e,
    };
    let shown = err.to_string();
    let got: Vec<&str> = shown.lines().collect();
    let want: Vec<String> = expected
        .iter()
        .map(|line| format!("{}:{line}", path.display()))
        .collect();
    assert_eq!(got, want, "{name}");
    assert_eq!(err.diagnostics().len(), expected.len());
}

#[test]
fn good_fixture_loads() {
    let c = config::load(&fixture("good.toml")).unwrap();
    assert_eq!(c.node, "lb01");
    assert_eq!(c.control_socket_group.as_deref(), Some("monitoring"));
    assert_eq!(c.instances.len(), 2);
    assert_eq!(c.instances[1].advert_interval, Duration::from_millis(200));
    assert_eq!(c.track_scripts[0].timeout, Duration::from_millis(1500));
    assert_eq!(c.track_scripts[0].weight, -20);
    assert_eq!(c.arbiter.on_isolated, OnIsolated::Reboot);
    assert_eq!(c.arbiter.reboot_after, Some(Duration::from_secs(300)));
    // No `peers` key: the instances' unicast peers, without repeats.
    assert_eq!(
        c.arbiter.peers,
        vec!["192.0.2.6".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(c.channels.len(), 6);
    assert_eq!(c.channel_name(0).as_deref(), Some("ops-hook"));
    assert!(matches!(&c.channels[2], Channel::Sms(Sms::Twilio(t)) if t.tier == 1));
    assert!(matches!(&c.channels[1], Channel::Mail(m) if m.port == 2525));
    let imap = c.reply.as_ref().and_then(|r| r.imap.as_ref()).unwrap();
    assert_eq!(imap.port, 143);
    assert_eq!(
        c.watch_actions.demote_command.as_deref(),
        Some(
            &[
                "systemctl".to_owned(),
                "stop".to_owned(),
                "keepalived".to_owned()
            ][..]
        )
    );
    let shown = format!("{c:?}");
    for secret in [
        "1111",
        "s3cret",
        "tw-token",
        "gw-secret",
        "imap-pw",
        "pd-key",
    ] {
        assert!(
            !shown.contains(&format!("\"{secret}\"")),
            "{secret} leaked in Debug"
        );
    }
}

#[test]
fn syntax_error() {
    assert_errors("syntax.toml", &["3:12: unclosed array table, expected `]`"]);
}

#[test]
fn unknown_keys_at_every_level() {
    let path = fixture("unknown-keys.toml");
    let err = config::load(&path).unwrap_err().to_string();
    let heads: Vec<&str> = err
        .lines()
        .map(|l| l.split_once("; expected").map_or(l, |(head, _)| head))
        .collect();
    let p = path.display();
    assert_eq!(
        heads,
        vec![
            format!("{p}:2:1: nodename: unknown key `nodename`"),
            format!("{p}:11:1: instance[0].virtual_router_id: unknown key `virtual_router_id`"),
            format!("{p}:14:1: arbiter.refrences: unknown key `refrences`"),
            format!("{p}:19:1: channel[0].secret: unknown key `secret`"),
        ]
    );
}

#[test]
fn instance_and_track_script_rules() {
    assert_errors(
        "instance.toml",
        &[
            "6:8: instance[0].vrid: VRID 0 is out of range; it must be between 1 and 255",
            "7:12: instance[0].priority: priority 256 is out of range; it must be between 1 and 255",
            "8:19: instance[0].advert_interval: advert_interval 1s500ms is not valid for VRRPv2; it must be whole seconds, 1s-255s",
            "9:13: instance[0].auth_pass: auth_pass is 15 bytes; VRRPv2 carries at most 8",
            "10:25: instance[0].vips[1]: VIP 2001:db8::3/64 is IPv6; VRRPv2 carries IPv4 only, set version = 3",
            "11:13: instance[0].vip_label: vip_label \"eth1:1\" must start with the interface name and a colon, e.g. \"eth0:1\" (iproute2 rule)",
            "12:18: instance[0].track_scripts[0]: no [[track_script]] is named \"nope\"",
            "15:8: instance[1].name: instance name \"VI_1\" is already used by instance[0]",
            "16:13: instance[1].interface: interface name \"eth0.100/x\" must not contain '/', ':' or whitespace",
            "19:19: instance[1].advert_interval: advert_interval 5ms is not valid for VRRPv3; it must be a multiple of 10ms, 10ms-40.95s",
            "22:18: instance[1].unicast_peers[0]: 192.0.2.4 is a VIP (instance[1].vips[0]); use a node's own address, which does not move",
            "26:11: track_script[0].command: the command must not be empty; give the program and its arguments as a list",
            "28:11: track_script[0].timeout: timeout 2s is longer than interval 1s; a run must end before the next starts",
            "29:10: track_script[0].weight: weight 300 is out of range; it must be between -253 and 253",
        ],
    );
}

#[test]
fn arbiter_rules() {
    assert_errors(
        "arbiter.toml",
        &[
            "11:1: arbiter.reboot_after: on_isolated = \"reboot\" requires reboot_after, e.g. reboot_after = \"5m\"",
            "12:30: arbiter.references[1]: 192.0.2.3 is a VIP (instance[0].vips[0]); use a node's own address, which does not move",
            "13:10: arbiter.quorum: quorum 3 exceeds the 2 reference(s) given; this node would always count as isolated",
            "16:17: arbiter.probe_timeout: probe_timeout 2s is longer than probe_interval 1s",
        ],
    );
}

#[test]
fn channel_and_reply_rules() {
    assert_errors(
        "channels.toml",
        &[
            "9:7: channel[0].to[0]: \"5550002222\" is not an E.164 number: '+' then 8-15 digits, e.g. \"+15550002222\"",
            "14:16: channel[1].url_template: url_template \"gw.example/send?to={to}\" does not make a valid URL: relative URL without a base",
            "14:16: channel[1].url_template: url_template (or body_template) must contain {text}, where the gateway expects it",
            "17:1: channel[2].username: password is set, so username is required",
            "22:6: channel[2].to: at least one recipient is required",
            "24:1: reply.public_url: twilio_auth_token is set, so public_url is required: Twilio signs the exact URL it posts to",
            "27:20: reply.allowed_senders[0]: \"someone\" is neither an E.164 number (\"+15550002222\") nor a mail address",
        ],
    );
}

#[test]
fn bad_durations_in_two_sections() {
    assert_errors(
        "bad-duration.toml",
        &[
            "6:12: track_script[0].interval: duration \"2 seconds\" has unknown unit \" seconds\" (units: ns, us, ms, s, m, h, d)",
            "9:14: alerts.group_wait: negative duration \"-5s\"; durations cannot be negative",
        ],
    );
}

#[test]
fn missing_file_is_a_read_error() {
    let path = fixture("does-not-exist.toml");
    match config::load(&path) {
        Err(ConfigError::Read { path: p, .. }) => assert_eq!(p, path),
        other => panic!("{other:?}"),
    }
}

/// Every VRID a node can have.
const MAX_INSTANCES: usize = 255;
/// For `check-config` on 255 instances in this debug build; the release build
/// takes a few milliseconds (BENCHMARKS.md).
const CHECK_BOUND: Duration = Duration::from_secs(5);

/// The VIP of instance `k` (1-based): TEST-NET-1 for the first 200, then
/// TEST-NET-2. Config text only, never on a wire.
fn scale_vip(k: usize) -> String {
    if k <= 200 {
        format!("192.0.2.{k}/24")
    } else {
        format!("198.51.100.{}/24", k - 200)
    }
}

/// A config with instances VI_1..VI_255 on eth0, VRID k, one VIP each;
/// `priority(k)` and `vrid(k)` give each instance's values.
fn scale_config(priority: impl Fn(usize) -> u32, vrid: impl Fn(usize) -> usize) -> String {
    let mut out = String::from(
        "node = \"lb01\"\nstate_dir = \"/var/lib/splitguard\"\n\n[arbiter]\nreferences = [\"192.0.2.254\"]\n",
    );
    for k in 1..=MAX_INSTANCES {
        out.push_str(&format!(
            "\n[[instance]]\nname = \"VI_{k}\"\ninterface = \"eth0\"\nvrid = {}\npriority = {}\n\
             advert_interval = \"100ms\"\nversion = 3\nvips = [\"{}\"]\n",
            vrid(k),
            priority(k),
            scale_vip(k)
        ));
    }
    out
}

/// Writes `text` to `name` in this test binary's scratch directory and runs
/// `splitguard check-config` on it: the path, the exit code, stderr and the time.
fn check_config(name: &str, text: &str) -> (PathBuf, Option<i32>, String, Duration) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("config_errors");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_splitguard"))
        .args(["check-config", "-c"])
        .arg(&path)
        .output()
        .expect("the binary runs");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (path, out.status.code(), stderr, took)
}

/// 1-based line of the `nth` (0-based) line in `text` that equals `line`.
fn line_of(text: &str, line: &str, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| *l == line)
        .nth(nth)
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("no {line:?} #{nth}"))
}

#[test]
fn check_config_passes_255_instances_quickly() {
    let text = scale_config(|_| 150, |k| k);
    let (path, code, stderr, took) = check_config("scale-255.toml", &text);
    assert_eq!(code, Some(0), "{}: {stderr}", path.display());
    assert!(took < CHECK_BOUND, "check-config took {took:?}");
    let config = config::load(&path).expect("loads");
    assert_eq!(config.instances.len(), MAX_INSTANCES);
    assert_eq!(config.instances[254].vrid, 255);
}

#[test]
fn errors_deep_in_255_instances_are_located() {
    // Instance 200 (instance[199]) has priority 300; instance 250
    // (instance[249]) reuses instance 249's VRID.
    let text = scale_config(
        |k| if k == 200 { 300 } else { 150 },
        |k| if k == 250 { 249 } else { k },
    );
    let (path, code, stderr, took) = check_config("scale-255-bad.toml", &text);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(took < CHECK_BOUND, "check-config took {took:?}");
    let p = path.display();
    let priority_line = line_of(&text, "priority = 300", 0);
    let vrid_line = line_of(&text, "vrid = 249", 1);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert_eq!(
        lines[0],
        format!(
            "{p}:{priority_line}:12: instance[199].priority: priority 300 is out of range; it must be between 1 and 255"
        )
    );
    assert!(
        lines[1].starts_with(&format!(
            "{p}:{vrid_line}:8: instance[249].vrid: VRID 249 on eth0 is already used by instance[248]"
        )),
        "{stderr}"
    );
}

/// `check-config` on an Alertmanager channel with `urls` (every instance of a
/// cluster): a good list passes; a bad scheme and an instance listed twice
/// are located by line:col and index, the password masked; `url` and `urls`
/// together are refused.
#[test]
fn check_config_locates_alertmanager_urls_errors() {
    let base = "node = \"lb01\"\nstate_dir = \"/var/lib/splitguard\"\n\n[[instance]]\nname = \"VI_1\"\n\
                interface = \"eth0\"\nvrid = 51\npriority = 150\nadvert_interval = \"1s\"\nvips = [\"192.0.2.3/24\"]\n\n\
                [[channel]]\ntype = \"alertmanager\"\n";
    let good = format!(
        "{base}urls = [\"http://192.0.2.193:9093\", \"http://192.0.2.194:9093\", \"http://192.0.2.195:9093\"]\n"
    );
    let (path, code, stderr, _) = check_config("am-urls-good.toml", &good);
    assert_eq!(code, Some(0), "{}: {stderr}", path.display());

    let bad = format!(
        "{base}urls = [\"http://192.0.2.193:9093\", \"ftp://192.0.2.194:9093\", \"http://sg:pa55word@192.0.2.193:9093/\"]\n"
    );
    let (path, code, stderr, _) = check_config("am-urls-bad.toml", &bad);
    let p = path.display();
    assert_eq!(code, Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "{p}:14:36: channel[0].urls[1]: invalid URL \"ftp://192.0.2.194:9093\": scheme \"ftp\" is not http or https"
            ),
            format!(
                "{p}:14:62: channel[0].urls[2]: http://sg:***@192.0.2.193:9093/ is already listed as urls[0]: Alertmanager dedupes across its instances, so each is listed once"
            ),
        ]
    );
    assert!(!stderr.contains("pa55word"), "{stderr}");

    let both =
        format!("{base}url = \"http://192.0.2.193:9093\"\nurls = [\"http://192.0.2.194:9093\"]\n");
    let (path, code, stderr, _) = check_config("am-urls-both.toml", &both);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        format!(
            "{}:15:8: channel[0].urls: `url` and `urls` are both given; give one: `url` for one Alertmanager, `urls` for every instance of a cluster",
            path.display()
        )
    );
}
