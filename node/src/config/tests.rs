//! Tests of the whole config pipeline: text in, `Config` or located diagnostics out.
//! One test per rule, each asserting the exact `file:line:col: key: message` line.

use std::net::IpAddr;
use std::time::Duration;

use super::*;
use splitguard_vrrp::Version;

/// The config block from DESIGN.md ("Contracts"), verbatim.
const DESIGN_EXAMPLE: &str = r#"node = "lb01"
state_dir = "/var/lib/splitguard"
control_socket = "/run/splitguard.sock"

[[instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 150
advert_interval = "1s"
version = 2                # 2 | 3
preempt = true
auth_pass = "1111"         # VRRPv2 PASS
vips = ["10.0.0.3/24"]
vip_label = "eth0:1"
unicast_peers = []         # empty: multicast 224.0.0.18
track_scripts = ["check_web"]

[[track_script]]
name = "check_web"
command = ["/server/scripts/check_web.sh"]
interval = "2s"
weight = 0                 # 0: FAULT on fall, else priority +/- weight

[arbiter]
references = ["10.0.0.254"]
peers = ["10.0.0.6"]
quorum = 1
ownership_probe = true
on_isolated = "demote"     # demote | reboot | none

[[channel]]
type = "webhook"
url = "http://alerts.example/hook"

[[channel]]
type = "sms"
provider = "twilio"
api_url = "https://api.twilio.com"   # overridable for tests and proxies
account_sid = "AC..."
auth_token = "..."
from = "+15550001111"
to = ["+15550002222"]

[reply]
listen = "0.0.0.0:8725"
public_url = "https://lb02.example/reply/twilio"   # what Twilio signs
twilio_auth_token = "..."
allowed_senders = ["+15550002222", "oncall@example.com"]

# standalone watchdog (`splitguard watch`) beside keepalived
[[watch]]
vip = "10.0.0.3"
interface = "eth0"
role = "backup"            # the role this node should have for the VIP
"#;

/// Smallest valid config; line 3 is the `[[instance]]` header.
const MINIMAL: &str = r#"node = "lb01"

[[instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 150
advert_interval = "1s"
vips = ["10.0.0.3/24"]
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn errors(text: &str) -> Vec<String> {
    match parse(text, "t.toml") {
        Ok(_) => Vec::new(),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

/// The one diagnostic `text` produces.
#[track_caller]
fn only(text: &str) -> String {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected exactly one error, got {errs:#?}");
    errs.into_iter().next().unwrap()
}

/// MINIMAL with `extra` lines appended to the `[[instance]]` table (from line 10).
fn instance_with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

/// MINIMAL with `find` replaced by `replace` (which must occur once).
fn minimal_replacing(find: &str, replace: &str) -> String {
    assert_eq!(MINIMAL.matches(find).count(), 1, "{find:?}");
    MINIMAL.replacen(find, replace, 1)
}

// ------------------------------------------------------------------ good configs

#[test]
fn design_example_parses() {
    let c = parse(DESIGN_EXAMPLE, "design.toml").unwrap();
    assert_eq!(c.node, "lb01");
    let i = &c.instances[0];
    assert_eq!((i.name.as_str(), i.vrid, i.priority), ("VI_1", 51, 150));
    assert_eq!(i.version, Version::V2);
    assert_eq!(i.advert_interval, Duration::from_secs(1));
    assert_eq!(
        i.vips,
        vec![Vip {
            addr: ip("10.0.0.3"),
            prefix_len: 24
        }]
    );
    assert_eq!(i.auth_pass.as_ref().map(Secret::expose), Some("1111"));
    assert_eq!(c.track_scripts[0].timeout, Duration::from_secs(2));
    assert_eq!(c.arbiter.references, vec![ip("10.0.0.254")]);
    assert_eq!(c.arbiter.peers, vec![ip("10.0.0.6")]);
    assert_eq!(c.channels.len(), 2);
    assert!(
        matches!(&c.channels[0], Channel::Webhook(w) if w.url.as_str() == "http://alerts.example/hook")
    );
    match &c.channels[1] {
        Channel::Sms(Sms::Twilio(t)) => {
            assert_eq!(t.api_url.as_str(), "https://api.twilio.com/");
            assert_eq!(t.to, vec!["+15550002222"]);
        }
        other => panic!("{other:?}"),
    }
    let reply = c.reply.as_ref().unwrap();
    assert_eq!(reply.listen, Some("0.0.0.0:8725".parse().unwrap()));
    assert_eq!(c.watches[0].role, Role::Backup);
}

#[test]
fn debug_output_hides_secrets() {
    let c = parse(DESIGN_EXAMPLE, "design.toml").unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("\"1111\""), "auth_pass leaked");
    assert!(!shown.contains("\"...\""), "a token leaked");
    assert!(shown.contains("***"));
}

#[test]
fn defaults_are_applied() {
    let c = parse(MINIMAL, "t.toml").unwrap();
    assert_eq!(c.state_dir, std::path::Path::new("/var/lib/splitguard"));
    assert_eq!(
        c.control_socket,
        std::path::Path::new("/run/splitguard.sock")
    );
    assert_eq!(c.control_socket_group, None);
    let i = &c.instances[0];
    assert_eq!(i.version, Version::V2);
    assert!(i.preempt);
    assert_eq!(i.preempt_delay, Duration::ZERO);
    assert!(
        i.unicast_peers.is_empty() && i.track_interfaces.is_empty() && i.track_scripts.is_empty()
    );
    assert!(!i.v3_checksum_as_v2);
    assert!(i.notify.is_none() && i.auth_pass.is_none());

    let a = &c.arbiter;
    assert!(a.references.is_empty() && a.peers.is_empty());
    assert_eq!(a.quorum, 1);
    assert!(a.ownership_probe);
    assert!(a.early_takeover, "early takeover is on with the arbiter");
    assert_eq!(a.liveness_interval, Duration::from_millis(100));
    assert_eq!(a.liveness_misses, 3);
    assert_eq!(a.on_isolated, OnIsolated::Demote);
    assert_eq!(a.demote_weight, 50);
    assert_eq!(a.reboot_after, None);
    assert_eq!(a.reboot_command, vec!["systemctl", "reboot"]);
    assert!(a.enabled);
    assert_eq!(a.reboot_limit, 1);
    assert_eq!(a.reboot_window, Duration::from_secs(3600));
    assert_eq!(a.reboot_min_uptime, Duration::from_secs(600));
    assert_eq!(
        a.probe,
        Probe {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3
        }
    );

    assert!(c.channels.is_empty() && c.reply.is_none() && c.watches.is_empty());
    assert!(c.watch_actions.demote_command.is_none());
    assert_eq!(c.alerts.group_wait, Duration::from_secs(10));
    assert_eq!(c.alerts.rate_limit, 30);
    assert!(c.alerts.send_resolved);
}

#[test]
fn section_defaults_are_applied() {
    let text = r#"node = "lb01"

[[instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 150
advert_interval = "1s"
vips = ["10.0.0.3/24"]
unicast_peers = ["10.0.0.6"]
track_scripts = ["chk"]

[[track_script]]
name = "chk"
command = ["/bin/true"]
interval = "3s"

[[channel]]
type = "mail"
host = "smtp.example"
from = "lb01@example.com"
to = ["oncall@example.com"]

[[channel]]
type = "mail"
host = "smtp.example"
tls = "implicit"
from = "lb01@example.com"
to = ["oncall@example.com"]
tier = 1

[[channel]]
type = "pagerduty"
routing_key = "R0UT1NG"

[[channel]]
type = "sms"
provider = "http"
url_template = "https://gw.example/send?to={to}&text={text}"
to = ["+15550002222"]

[reply]
allowed_senders = ["oncall@example.com"]

[reply.imap]
host = "imap.example"
username = "replies"
password = "pw"
"#;
    let c = parse(text, "t.toml").unwrap();
    let t = &c.track_scripts[0];
    assert_eq!(
        (t.timeout, t.rise, t.fall, t.weight),
        (Duration::from_secs(3), 1, 1, 0)
    );
    // peers default to the unicast peers.
    assert_eq!(c.arbiter.peers, vec![ip("10.0.0.6")]);
    match (&c.channels[0], &c.channels[1]) {
        (Channel::Mail(a), Channel::Mail(b)) => {
            assert_eq!((a.tls, a.port, a.tier), (Tls::Starttls, 587, 0));
            assert_eq!((b.tls, b.port, b.tier), (Tls::Implicit, 465, 1));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&c.channels[2], Channel::Pagerduty(p) if p.url.as_str() == "https://events.pagerduty.com/v2/enqueue")
    );
    assert!(matches!(&c.channels[3], Channel::Sms(Sms::Http(h)) if h.method == HttpMethod::Get));
    assert_eq!(c.channel_name(2).as_deref(), Some("pagerduty2"));
    let imap = c.reply.unwrap().imap.unwrap();
    assert_eq!(
        (imap.port, imap.tls, imap.mailbox.as_str()),
        (993, Tls::Implicit, "INBOX")
    );
    assert_eq!(imap.poll_interval, Duration::from_secs(30));
}

#[test]
fn v3_ipv6_instance_parses() {
    let text = r#"node = "lb01"
[[instance]]
name = "VI_6"
interface = "eth0"
vrid = 51
priority = 100
advert_interval = "250ms"
version = 3
vips = ["2001:db8::3/64", "2001:db8::4/64"]
unicast_peers = ["2001:db8::6"]
v3_checksum_as_v2 = true
"#;
    let c = parse(text, "t.toml").unwrap();
    assert_eq!(c.instances[0].version, Version::V3);
    assert_eq!(c.instances[0].advert_interval, Duration::from_millis(250));
}

// ------------------------------------------------------------------ syntax, types, unknown keys

#[test]
fn toml_syntax_error_is_located() {
    assert_eq!(
        only("node = \"lb01\"\n[arbiter\n"),
        "t.toml:2:9: unclosed table, expected `]`"
    );
}

#[test]
fn several_syntax_errors_are_all_reported() {
    let errs = errors("node = \"lb01\"\nnode = \"lb02\"\nx = = 1\n");
    // The toml crate recovers and may add follow-on errors on the same line.
    assert!(errs.len() >= 2, "{errs:#?}");
    assert_eq!(errs[0], "t.toml:2:1: duplicate key");
    assert_eq!(errs[1], "t.toml:3:5: extra `=`, expected nothing");
}

#[test]
fn unknown_top_level_key_is_located() {
    let e = only(&format!("colour = \"red\"\n{MINIMAL}"));
    assert!(
        e.starts_with("t.toml:1:1: colour: unknown key `colour`; expected one of `node`, "),
        "{e}"
    );
    assert!(e.contains("`instance`"), "{e}");
}

#[test]
fn unknown_nested_key_is_located() {
    let e = only(&instance_with("vird = 5\n"));
    assert!(
        e.starts_with("t.toml:10:1: instance[0].vird: unknown key `vird`; expected one of `name`,"),
        "{e}"
    );
}

#[test]
fn unknown_key_in_a_section_table_is_located() {
    let e = only(&format!("{MINIMAL}\n[arbiter]\nquorom = 1\n"));
    assert!(
        e.starts_with("t.toml:12:1: arbiter.quorom: unknown key `quorom`"),
        "{e}"
    );
}

#[test]
fn unknown_key_in_a_channel_is_located() {
    let text = format!(
        "{MINIMAL}\n[[channel]]\ntype = \"webhook\"\nurl = \"http://a.example/\"\nsecret = \"x\"\n"
    );
    let e = only(&text);
    assert!(
        e.starts_with("t.toml:14:1: channel[0].secret: unknown key `secret`"),
        "{e}"
    );
}

#[test]
fn unknown_key_in_nested_imap_is_located() {
    let text = format!(
        "{MINIMAL}\n[reply]\nallowed_senders = [\"a@b.example\"]\n[reply.imap]\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\nfolder = \"x\"\n"
    );
    let e = only(&text);
    assert!(
        e.starts_with("t.toml:17:1: reply.imap.folder: unknown key `folder`"),
        "{e}"
    );
}

#[test]
fn type_error_is_located_with_its_key() {
    assert_eq!(
        only(&minimal_replacing("vrid = 51", "vrid = \"51\"")),
        "t.toml:6:8: instance[0].vrid: invalid type: string \"51\", expected an integer"
    );
}

#[test]
fn section_of_the_wrong_shape_is_located() {
    assert_eq!(
        only(&format!("arbiter = 5\n{MINIMAL}")),
        "t.toml:1:11: arbiter: expected a table (`[arbiter]`), found integer"
    );
    assert_eq!(
        only(&format!("{MINIMAL}\n[[arbiter]]\nquorum = 1\n")),
        "t.toml:11:1: arbiter: expected a table (`[arbiter]`), found an array of tables; use `[arbiter]`, not `[[arbiter]]`"
    );
    assert_eq!(
        only("node = \"lb01\"\ninstance = 5\n"),
        "t.toml:2:12: instance: expected an array of tables (`[[instance]]`), found integer"
    );
    assert_eq!(
        only(&minimal_replacing(
            "vips = [\"10.0.0.3/24\"]",
            "vips = \"10.0.0.3/24\""
        )),
        "t.toml:9:8: instance[0].vips: invalid type: string \"10.0.0.3/24\", expected an array"
    );
}

#[test]
fn missing_key_points_at_the_table_header() {
    assert_eq!(
        only(&minimal_replacing("vrid = 51\n", "")),
        "t.toml:3:1: instance[0].vrid: missing required key `vrid`"
    );
    assert_eq!(
        only(&minimal_replacing("node = \"lb01\"\n", "")),
        "t.toml:1:1: node: missing required key `node`"
    );
}

#[test]
fn errors_in_several_sections_are_all_reported() {
    let text = format!("{MINIMAL}vird = 1\n\n[arbiter]\nquorum = \"one\"\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with("t.toml:10:1: instance[0].vird: "),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with("t.toml:13:10: arbiter.quorum: invalid type"),
        "{errs:#?}"
    );
}

#[test]
fn bad_duration_names_the_value() {
    assert_eq!(
        only(&minimal_replacing("\"1s\"", "\"1 sec\"")),
        "t.toml:8:19: instance[0].advert_interval: duration \"1 sec\" has unknown unit \" sec\" (units: ns, us, ms, s, m, h, d)"
    );
    assert_eq!(
        only(&minimal_replacing("\"1s\"", "\"-1s\"")),
        "t.toml:8:19: instance[0].advert_interval: negative duration \"-1s\"; durations cannot be negative"
    );
    assert_eq!(
        only(&minimal_replacing("\"1s\"", "\"\"")),
        "t.toml:8:19: instance[0].advert_interval: empty duration; write e.g. \"1s\" or \"200ms\""
    );
}

#[test]
fn vip_without_prefix_is_located() {
    assert_eq!(
        only(&minimal_replacing(
            "\"10.0.0.3/24\"",
            "\"10.0.0.3/24\", \"10.0.0.4\""
        )),
        "t.toml:9:24: instance[0].vips[1]: VIP \"10.0.0.4\" needs a prefix length in CIDR form, e.g. \"10.0.0.4/24\""
    );
}

#[test]
fn bad_ip_is_a_located_type_error() {
    let e = only(&instance_with("unicast_peers = [\"10.0.0.300\"]\n"));
    assert!(
        e.starts_with("t.toml:10:18: instance[0].unicast_peers[0]: "),
        "{e}"
    );
}

#[test]
fn channel_type_and_provider_are_checked() {
    let base = format!("{MINIMAL}\n[[channel]]\n");
    assert_eq!(
        only(&format!("{base}type = \"pager\"\n")),
        "t.toml:12:8: channel[0].type: unknown channel type \"pager\"; expected one of \"webhook\", \"mail\", \"sms\", \"alertmanager\", \"pagerduty\""
    );
    assert_eq!(
        only(&format!("{base}url = \"http://a.example/\"\n")),
        "t.toml:11:1: channel[0].type: missing required key `type` (one of \"webhook\", \"mail\", \"sms\", \"alertmanager\", \"pagerduty\")"
    );
    assert_eq!(
        only(&format!(
            "{base}type = \"sms\"\nprovider = \"carrier-pigeon\"\nto = []\n"
        )),
        "t.toml:13:12: channel[0].provider: unknown channel provider \"carrier-pigeon\"; expected one of \"twilio\", \"http\""
    );
}

#[test]
fn channel_url_must_parse() {
    let text =
        format!("{MINIMAL}\n[[channel]]\ntype = \"webhook\"\nurl = \"alerts.example/hook\"\n");
    assert_eq!(
        only(&text),
        "t.toml:13:7: channel[0].url: invalid URL \"alerts.example/hook\": relative URL without a base"
    );
    let text =
        format!("{MINIMAL}\n[[channel]]\ntype = \"alertmanager\"\nurl = \"ftp://am.example\"\n");
    assert_eq!(
        only(&text),
        "t.toml:13:7: channel[0].url: invalid URL \"ftp://am.example\": scheme \"ftp\" is not http or https"
    );
}

/// An Alertmanager cluster: `urls` lists every instance; `url` still names
/// one; exactly one of the two.
#[test]
fn alertmanager_takes_url_or_urls() {
    let am = |keys: &str| format!("{MINIMAL}\n[[channel]]\ntype = \"alertmanager\"\n{keys}");
    let cfg = parse(
        &am("urls = [\"http://am1:9093\", \"http://am2:9093/prefix\", \"https://am3\"]\ninstance_retry_for = \"30s\"\n"),
        "t.toml",
    )
    .expect("valid");
    let Channel::Alertmanager(a) = &cfg.channels[0] else {
        panic!("{:?}", cfg.channels[0]);
    };
    let urls: Vec<&str> = a.urls.iter().map(|u| u.as_str()).collect();
    assert_eq!(
        urls,
        ["http://am1:9093/", "http://am2:9093/prefix", "https://am3/"]
    );
    assert!(!a.single);
    assert_eq!(a.instance_retry_for, Duration::from_secs(30));
    let cfg = parse(&am("url = \"http://am1:9093\"\n"), "t.toml").expect("valid");
    let Channel::Alertmanager(a) = &cfg.channels[0] else {
        panic!("{:?}", cfg.channels[0]);
    };
    assert!(a.single && a.urls.len() == 1);
    assert_eq!(a.instance_retry_for, Duration::from_secs(300));
    assert_eq!(
        only(&am("")),
        "t.toml:11:1: channel[0].url: missing required key `url` or `urls` (`url` for one Alertmanager, `urls` for every instance of a cluster)"
    );
    assert_eq!(
        only(&am(
            "url = \"http://am1:9093\"\nurls = [\"http://am2:9093\"]\n"
        )),
        "t.toml:14:8: channel[0].urls: `url` and `urls` are both given; give one: `url` for one Alertmanager, `urls` for every instance of a cluster"
    );
    assert_eq!(
        only(&am(
            "instance_retry_for = \"0s\"\nurls = [\"http://am1:9093\"]\n"
        )),
        "t.toml:13:22: channel[0].instance_retry_for: the duration must be greater than zero"
    );
}

#[test]
fn alertmanager_urls_are_checked_one_by_one() {
    let am = |keys: &str| format!("{MINIMAL}\n[[channel]]\ntype = \"alertmanager\"\n{keys}");
    assert_eq!(
        only(&am("urls = []\n")),
        "t.toml:13:8: channel[0].urls: at least one Alertmanager URL is required"
    );
    assert_eq!(
        errors(&am(
            "urls = [\"http://am1:9093\", \"ftp://u:pw@am2:9093\", \"am3:9093\"]\n"
        )),
        [
            "t.toml:13:28: channel[0].urls[1]: invalid URL \"ftp://u:***@am2:9093\": scheme \"ftp\" is not http or https",
            "t.toml:13:51: channel[0].urls[2]: invalid URL \"am3:9093\": scheme \"am3\" is not http or https",
        ]
    );
    // The same instance twice, however written: credentials masked.
    assert_eq!(
        only(&am(
            "urls = [\"http://am1:9093/\", \"http://am2:9093\", \"http://am:s3cret@AM1:9093\"]\n"
        )),
        "t.toml:13:48: channel[0].urls[2]: http://am:***@am1:9093/ is already listed as urls[0]: Alertmanager dedupes across its instances, so each is listed once"
    );
    assert_eq!(
        only(&am("urls = [\"http://am1:80\", \"http://am1/\"]\n")),
        "t.toml:13:26: channel[0].urls[1]: http://am1/ is already listed as urls[0]: Alertmanager dedupes across its instances, so each is listed once"
    );
}

/// A password in any of the `urls` makes the file a secret one, named by
/// its index; Debug shows none of them.
#[test]
fn alertmanager_urls_with_credentials_are_secrets() {
    let text = format!(
        "{MINIMAL}\n[[channel]]\ntype = \"alertmanager\"\nurls = [\"http://am1:9093\", \"http://am:hunter2@am2:9093\", \"http://am3:9093/?token=hunter3\"]\n"
    );
    let c = parse(&text, "t.toml").unwrap();
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("hunter3"),
        "{shown}"
    );
    assert_eq!(
        exposure::secret_keys(&c),
        ["channel[0].urls[1]", "channel[0].urls[2]"]
    );
}

// ------------------------------------------------------------------ validation rules

#[test]
fn node_must_not_be_empty() {
    assert_eq!(
        only(&minimal_replacing("node = \"lb01\"", "node = \"\"")),
        "t.toml:1:8: node: node must not be empty"
    );
}

#[test]
fn paths_must_be_absolute() {
    assert_eq!(
        only(&format!("state_dir = \"var/lib\"\n{MINIMAL}")),
        "t.toml:1:13: state_dir: \"var/lib\" must be an absolute path"
    );
}

#[test]
fn vrid_range() {
    assert_eq!(
        only(&minimal_replacing("vrid = 51", "vrid = 0")),
        "t.toml:6:8: instance[0].vrid: VRID 0 is out of range; it must be between 1 and 255"
    );
    assert_eq!(
        only(&minimal_replacing("vrid = 51", "vrid = 256")),
        "t.toml:6:8: instance[0].vrid: VRID 256 is out of range; it must be between 1 and 255"
    );
}

#[test]
fn priority_range() {
    assert_eq!(
        only(&minimal_replacing("priority = 150", "priority = 0")),
        "t.toml:7:12: instance[0].priority: priority 0 is out of range; it must be between 1 and 255"
    );
    assert_eq!(
        only(&minimal_replacing("priority = 150", "priority = 300")),
        "t.toml:7:12: instance[0].priority: priority 300 is out of range; it must be between 1 and 255"
    );
}

#[test]
fn version_must_be_2_or_3() {
    assert_eq!(
        only(&instance_with("version = 4\n")),
        "t.toml:10:11: instance[0].version: VRRP version 4 is not supported; use 2 or 3"
    );
}

#[test]
fn v2_advert_interval_whole_seconds() {
    for bad in ["1.5s", "0s", "256s", "500ms"] {
        let e = only(&minimal_replacing("\"1s\"", &format!("{bad:?}")));
        assert!(
            e.starts_with("t.toml:8:19: instance[0].advert_interval: advert_interval ")
                && e.ends_with(" is not valid for VRRPv2; it must be whole seconds, 1s-255s"),
            "{bad}: {e}"
        );
    }
    assert_eq!(
        only(&minimal_replacing("\"1s\"", "\"1.5s\"")),
        "t.toml:8:19: instance[0].advert_interval: advert_interval 1s500ms is not valid for VRRPv2; it must be whole seconds, 1s-255s"
    );
    assert!(errors(&minimal_replacing("\"1s\"", "\"255s\"")).is_empty());
}

#[test]
fn v3_advert_interval_centiseconds() {
    let v3 = |interval: &str| minimal_replacing("\"1s\"", &format!("{interval:?}\nversion = 3"));
    for good in ["10ms", "40.95s", "1s", "250ms"] {
        assert!(errors(&v3(good)).is_empty(), "{good}");
    }
    for bad in ["5ms", "41s", "15ms", "0s"] {
        let e = only(&v3(bad));
        assert!(
            e.starts_with("t.toml:8:19: instance[0].advert_interval: advert_interval ")
                && e.ends_with(
                    " is not valid for VRRPv3; it must be a multiple of 10ms, 10ms-40.95s"
                ),
            "{bad}: {e}"
        );
    }
}

#[test]
fn auth_pass_rules() {
    assert_eq!(
        only(&instance_with("auth_pass = \"123456789\"\n")),
        "t.toml:10:13: instance[0].auth_pass: auth_pass is 9 bytes; VRRPv2 carries at most 8"
    );
    assert_eq!(
        only(&instance_with("auth_pass = \"\"\n")),
        "t.toml:10:13: instance[0].auth_pass: auth_pass must not be empty; leave the key out for no authentication"
    );
    assert_eq!(
        only(&instance_with("version = 3\nauth_pass = \"1111\"\n")),
        "t.toml:11:13: instance[0].auth_pass: auth_pass is for VRRPv2 only; RFC 5798 (v3) has no authentication"
    );
    assert!(errors(&instance_with("auth_pass = \"12345678\"\n")).is_empty());
}

#[test]
fn ipv6_vip_needs_v3() {
    assert_eq!(
        only(&minimal_replacing("\"10.0.0.3/24\"", "\"2001:db8::3/64\"")),
        "t.toml:9:9: instance[0].vips[0]: VIP 2001:db8::3/64 is IPv6; VRRPv2 carries IPv4 only, set version = 3"
    );
}

#[test]
fn mixed_vip_families_rejected() {
    let text = minimal_replacing(
        "vips = [\"10.0.0.3/24\"]",
        "vips = [\"10.0.0.3/24\", \"2001:db8::3/64\"]\nversion = 3",
    );
    assert_eq!(
        only(&text),
        "t.toml:9:24: instance[0].vips[1]: VIP 2001:db8::3/64 mixes address families in one instance; use one instance per family"
    );
}

#[test]
fn vips_must_be_unicast_unique_and_present() {
    assert_eq!(
        only(&minimal_replacing("\"10.0.0.3/24\"", "\"224.0.0.18/32\"")),
        "t.toml:9:9: instance[0].vips[0]: VIP 224.0.0.18/32 is a multicast address; give a unicast address"
    );
    assert_eq!(
        only(&minimal_replacing(
            "\"10.0.0.3/24\"",
            "\"10.0.0.3/24\", \"10.0.0.3/32\""
        )),
        "t.toml:9:24: instance[0].vips[1]: VIP 10.0.0.3 is already listed as vips[0]"
    );
    assert_eq!(
        only(&minimal_replacing("[\"10.0.0.3/24\"]", "[]")),
        "t.toml:9:8: instance[0].vips: at least one VIP is required"
    );
}

#[test]
fn vip_label_rules() {
    assert_eq!(
        only(&instance_with("vip_label = \"eth1:1\"\n")),
        "t.toml:10:13: instance[0].vip_label: vip_label \"eth1:1\" must start with the interface name and a colon, e.g. \"eth0:1\" (iproute2 rule)"
    );
    assert_eq!(
        only(&instance_with("vip_label = \"eth0:0123456789a\"\n")),
        "t.toml:10:13: instance[0].vip_label: vip_label \"eth0:0123456789a\" is 16 bytes; labels are at most 15"
    );
    assert!(
        only(&instance_with("vip_label = \"eth0:\"\n"))
            .starts_with("t.toml:10:13: instance[0].vip_label: ")
    );
}

#[test]
fn interface_name_rules() {
    assert_eq!(
        only(&minimal_replacing("\"eth0\"", "\"eth0/1\"")),
        "t.toml:5:13: instance[0].interface: interface name \"eth0/1\" must not contain '/', ':' or whitespace"
    );
    assert_eq!(
        only(&minimal_replacing("\"eth0\"", "\"averyveryverylongif\"")),
        "t.toml:5:13: instance[0].interface: interface name \"averyveryverylongif\" is 19 bytes; Linux allows at most 15"
    );
    assert_eq!(
        only(&instance_with(
            "track_interfaces = [\"eth1\", \"bond 0\"]\n"
        )),
        "t.toml:10:29: instance[0].track_interfaces[1]: interface name \"bond 0\" must not contain '/', ':' or whitespace"
    );
}

#[test]
fn instance_names_unique() {
    let second = MINIMAL
        .replacen("node = \"lb01\"\n", "", 1)
        .replace("vrid = 51", "vrid = 52")
        .replace("10.0.0.3", "10.0.0.4");
    let text = format!("{MINIMAL}{second}");
    assert_eq!(
        only(&text),
        "t.toml:12:8: instance[1].name: instance name \"VI_1\" is already used by instance[0]"
    );
}

#[test]
fn interface_vrid_pairs_unique() {
    let second = MINIMAL
        .replacen("node = \"lb01\"\n", "", 1)
        .replace("VI_1", "VI_2")
        .replace("10.0.0.3", "10.0.0.4");
    let text = format!("{MINIMAL}{second}");
    assert_eq!(
        only(&text),
        "t.toml:14:8: instance[1].vrid: VRID 51 on eth0 is already used by instance[0] (IPv4); VRIDs must be unique per interface and address family"
    );
    // The same VRID on another interface is fine.
    assert!(errors(&text.replacen("\"eth0\"", "\"eth1\"", 1)).is_empty());
}

#[test]
fn a_vip_belongs_to_one_instance() {
    let second = MINIMAL
        .replacen("node = \"lb01\"\n", "", 1)
        .replace("VI_1", "VI_2")
        .replace("vrid = 51", "vrid = 52");
    assert_eq!(
        only(&format!("{MINIMAL}{second}")),
        "t.toml:17:9: instance[1].vips[0]: VIP 10.0.0.3 is already in instance[0].vips[0]; a VIP belongs to one instance"
    );
}

#[test]
fn track_scripts_must_exist() {
    assert_eq!(
        only(&instance_with("track_scripts = [\"chk_nginx\"]\n")),
        "t.toml:10:18: instance[0].track_scripts[0]: no [[track_script]] is named \"chk_nginx\""
    );
}

#[test]
fn track_script_rules() {
    let script = |body: &str| format!("{MINIMAL}\n[[track_script]]\nname = \"chk\"\n{body}");
    assert_eq!(
        only(&script("command = []\ninterval = \"2s\"\n")),
        "t.toml:13:11: track_script[0].command: the command must not be empty; give the program and its arguments as a list"
    );
    assert_eq!(
        only(&script("command = [\"/bin/true\"]\ninterval = \"0s\"\n")),
        "t.toml:14:12: track_script[0].interval: the duration must be greater than zero"
    );
    assert_eq!(
        only(&script(
            "command = [\"/bin/true\"]\ninterval = \"2s\"\ntimeout = \"3s\"\n"
        )),
        "t.toml:15:11: track_script[0].timeout: timeout 3s is longer than interval 2s; a run must end before the next starts"
    );
    assert_eq!(
        only(&script(
            "command = [\"/bin/true\"]\ninterval = \"2s\"\nweight = -254\n"
        )),
        "t.toml:15:10: track_script[0].weight: weight -254 is out of range; it must be between -253 and 253"
    );
    assert_eq!(
        only(&script(
            "command = [\"/bin/true\"]\ninterval = \"2s\"\nrise = 0\n"
        )),
        "t.toml:15:8: track_script[0].rise: rise 0 is out of range; it must be at least 1"
    );
    let dup = format!(
        "{}\n[[track_script]]\nname = \"chk\"\ncommand = [\"/bin/false\"]\ninterval = \"1s\"\n",
        script("command = [\"/bin/true\"]\ninterval = \"2s\"\n")
    );
    assert_eq!(
        only(&dup),
        "t.toml:17:8: track_script[1].name: track_script name \"chk\" is already used by track_script[0]"
    );
}

#[test]
fn unicast_peer_rules() {
    assert_eq!(
        only(&instance_with("unicast_peers = [\"10.0.0.3\"]\n")),
        "t.toml:10:18: instance[0].unicast_peers[0]: 10.0.0.3 is a VIP (instance[0].vips[0]); use a node's own address, which does not move"
    );
    assert_eq!(
        only(&instance_with("unicast_peers = [\"2001:db8::6\"]\n")),
        "t.toml:10:18: instance[0].unicast_peers[0]: unicast peer 2001:db8::6 is IPv6 but the instance's VIPs are IPv4"
    );
    assert_eq!(
        only(&instance_with(
            "unicast_src_ip = \"10.0.0.5\"\nunicast_peers = [\"10.0.0.5\"]\n"
        )),
        "t.toml:11:18: instance[0].unicast_peers[0]: 10.0.0.5 is also unicast_src_ip; a node cannot peer with itself"
    );
}

#[test]
fn arbiter_addresses_must_not_be_vips() {
    let text = format!(
        "{MINIMAL}\n[arbiter]\nreferences = [\"10.0.0.254\", \"10.0.0.3\"]\npeers = [\"10.0.0.3\"]\n"
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:12:29: arbiter.references[1]: 10.0.0.3 is a VIP (instance[0].vips[0]); use a node's own address, which does not move",
            "t.toml:13:10: arbiter.peers[0]: 10.0.0.3 is a VIP (instance[0].vips[0]); use a node's own address, which does not move",
        ]
    );
}

#[test]
fn quorum_rules() {
    let arb = |body: &str| format!("{MINIMAL}\n[arbiter]\n{body}");
    assert_eq!(
        only(&arb("references = [\"10.0.0.254\"]\nquorum = 2\n")),
        "t.toml:13:10: arbiter.quorum: quorum 2 exceeds the 1 reference(s) given; this node would always count as isolated"
    );
    assert_eq!(
        only(&arb("quorum = 0\n")),
        "t.toml:12:10: arbiter.quorum: quorum 0 is out of range; it must be at least 1"
    );
    assert!(
        only(&arb("quorum = 2\n"))
            .starts_with("t.toml:12:10: arbiter.quorum: quorum 2 needs that many references")
    );
}

#[test]
fn reboot_needs_reboot_after() {
    let text = format!("{MINIMAL}\n[arbiter]\non_isolated = \"reboot\"\n");
    assert_eq!(
        only(&text),
        "t.toml:11:1: arbiter.reboot_after: on_isolated = \"reboot\" requires reboot_after, e.g. reboot_after = \"5m\""
    );
    assert!(errors(&format!("{text}reboot_after = \"5m\"\n")).is_empty());
}

#[test]
fn on_isolated_is_an_enum() {
    let e = only(&format!("{MINIMAL}\n[arbiter]\non_isolated = \"panic\"\n"));
    assert!(
        e.starts_with("t.toml:12:15: arbiter.on_isolated: unknown variant `panic`"),
        "{e}"
    );
}

#[test]
fn probe_timing_rules() {
    let text =
        format!("{MINIMAL}\n[arbiter]\nprobe_interval = \"500ms\"\nprobe_timeout = \"1s\"\n");
    assert_eq!(
        only(&text),
        "t.toml:13:17: arbiter.probe_timeout: probe_timeout 1s is longer than probe_interval 500ms"
    );
    // The default timeout follows a short interval down.
    let c = parse(
        &format!("{MINIMAL}\n[arbiter]\nprobe_interval = \"500ms\"\n"),
        "t",
    )
    .unwrap();
    assert_eq!(c.arbiter.probe.timeout, Duration::from_millis(500));
}

#[test]
fn liveness_keys_are_checked_and_early_takeover_can_be_turned_off() {
    let text = format!(
        "{MINIMAL}\n[arbiter]\nearly_takeover = false\nliveness_interval = \"5ms\"\nliveness_misses = 1\n"
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:13:21: arbiter.liveness_interval: liveness_interval 5ms is outside 10ms to 1s",
            "t.toml:14:19: arbiter.liveness_misses: liveness_misses 1 is out of range; it must be between 2 and 20",
        ]
    );
    let c = parse(
        &format!("{MINIMAL}\n[arbiter]\nearly_takeover = false\nliveness_interval = \"200ms\"\n"),
        "t",
    )
    .unwrap();
    assert!(!c.arbiter.early_takeover);
    assert_eq!(c.arbiter.liveness_interval, Duration::from_millis(200));
}

#[test]
fn sms_numbers_are_e164() {
    let text = format!(
        "{MINIMAL}\n[[channel]]\ntype = \"sms\"\nprovider = \"twilio\"\naccount_sid = \"AC1\"\nauth_token = \"t\"\nfrom = \"+15550001111\"\nto = [\"+15550002222\", \"5550002222\", \"+1234567\"]\n"
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:17:23: channel[0].to[1]: \"5550002222\" is not an E.164 number: '+' then 8-15 digits, e.g. \"+15550002222\"",
            "t.toml:17:37: channel[0].to[2]: \"+1234567\" is not an E.164 number: '+' then 8-15 digits, e.g. \"+15550002222\"",
        ]
    );
}

#[test]
fn http_sms_template_rules() {
    let text = format!(
        "{MINIMAL}\n[[channel]]\ntype = \"sms\"\nprovider = \"http\"\nurl_template = \"https://gw.example/send?to={{to}}\"\nto = [\"+15550002222\"]\n"
    );
    assert_eq!(
        only(&text),
        "t.toml:14:16: channel[0].url_template: url_template (or body_template) must contain {text}, where the gateway expects it"
    );
    let post = text.replace(
        "?to={to}\"",
        "\"\nmethod = \"POST\"\nbody_template = \"to={to}&msg={text}\"",
    );
    assert!(errors(&post).is_empty(), "{:#?}", errors(&post));
}

#[test]
fn mail_channel_rules() {
    let text = format!(
        "{MINIMAL}\n[[channel]]\ntype = \"mail\"\nhost = \"smtp.example\"\nusername = \"lb01\"\nfrom = \"lb01\"\nto = [\"+15550002222\"]\n"
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:11:1: channel[0].password: username is set, so password is required",
            "t.toml:15:8: channel[0].from: \"lb01\" is not a mail address like \"oncall@example.com\"",
            "t.toml:16:7: channel[0].to[0]: \"+15550002222\" is not a mail address like \"oncall@example.com\"",
        ]
    );
}

#[test]
fn channel_names_unique_and_secrets_non_empty() {
    let text = format!(
        "{MINIMAL}\n[[channel]]\ntype = \"pagerduty\"\nname = \"pd\"\nrouting_key = \"\"\n\n[[channel]]\ntype = \"alertmanager\"\nname = \"pd\"\nurl = \"http://am.example:9093\"\n"
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:14:15: channel[0].routing_key: the secret must not be empty; leave the key out instead",
            "t.toml:18:8: channel[1].name: channel name \"pd\" is already used by channel[0]",
        ]
    );
}

#[test]
fn reply_needs_public_url_with_twilio() {
    let text = format!(
        "{MINIMAL}\n[reply]\nlisten = \"0.0.0.0:8725\"\ntwilio_auth_token = \"tok\"\nallowed_senders = [\"+15550002222\"]\n"
    );
    assert_eq!(
        only(&text),
        "t.toml:11:1: reply.public_url: twilio_auth_token is set, so public_url is required: Twilio signs the exact URL it posts to"
    );
}

#[test]
fn reply_listener_and_senders() {
    let text =
        format!("{MINIMAL}\n[reply]\ngeneric_secret = \"s\"\nallowed_senders = [\"on call\"]\n");
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:11:1: reply.listen: twilio_auth_token or generic_secret is set, so listen (the HTTP address for replies) is required",
            "t.toml:13:20: reply.allowed_senders[0]: \"on call\" is neither an E.164 number (\"+15550002222\") nor a mail address",
        ]
    );
    let nothing = format!("{MINIMAL}\n[reply]\nallowed_senders = []\n");
    assert_eq!(
        errors(&nothing),
        vec![
            "t.toml:11:1: reply: nothing would receive replies; set listen with a verifier, or an [reply.imap] mailbox",
            "t.toml:12:19: reply.allowed_senders: at least one allowed sender is required",
        ]
    );
}

#[test]
fn tls_files_come_in_pairs_with_their_listener() {
    let reply = "\n[reply]\nlisten = \"0.0.0.0:8725\"\ngeneric_secret = \"s\"\nallowed_senders = [\"+15550002222\"]\n";
    let both = format!(
        "{MINIMAL}{reply}tls_cert = \"/etc/splitguard/reply.crt\"\ntls_key = \"/etc/splitguard/reply.key\"\n"
    );
    let c = parse(&both, "t.toml").unwrap();
    let r = c.reply.as_ref().unwrap();
    assert_eq!(
        r.tls(),
        Some(TlsFiles {
            cert: "/etc/splitguard/reply.crt".into(),
            key: "/etc/splitguard/reply.key".into(),
        })
    );
    assert_eq!(c.tls_listeners().len(), 1);
    assert_eq!(
        only(&format!("{MINIMAL}{reply}tls_cert = \"/etc/c.pem\"\n")),
        "t.toml:15:12: reply.tls_cert: tls_cert is set, so tls_key (its private key) is required"
    );
    assert_eq!(
        only(&format!(
            "{MINIMAL}{reply}tls_key = \"k.pem\"\ntls_cert = \"/etc/c.pem\"\n"
        )),
        "t.toml:15:11: reply.tls_key: \"k.pem\" must be an absolute path"
    );
    let imap_only = "\n[reply]\nallowed_senders = [\"a@b.example\"]\ntls_cert = \"/c\"\ntls_key = \"/k\"\n[reply.imap]\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n";
    assert_eq!(
        only(&format!("{MINIMAL}{imap_only}")),
        "t.toml:13:12: reply.tls_cert: tls_cert is set but listen is not, so nothing would serve TLS"
    );

    let metrics = format!(
        "metrics_listen = \"127.0.0.1:9745\"\nmetrics_tls_cert = \"/c\"\nmetrics_tls_key = \"/k\"\n{MINIMAL}"
    );
    let c = parse(&metrics, "t.toml").unwrap();
    assert_eq!(
        c.metrics_tls.as_ref().map(|t| t.key.clone()),
        Some("/k".into())
    );
    assert_eq!(
        only(&format!(
            "metrics_tls_cert = \"/c\"\nmetrics_tls_key = \"/k\"\n{MINIMAL}"
        )),
        "t.toml:1:20: metrics_tls_cert: metrics_tls_cert is set but metrics_listen is not, so nothing would serve TLS"
    );
    assert_eq!(
        only(&format!(
            "metrics_listen = \"127.0.0.1:9745\"\nmetrics_tls_key = \"/k\"\n{MINIMAL}"
        )),
        "t.toml:2:19: metrics_tls_key: metrics_tls_key is set, so metrics_tls_cert (the certificate chain) is required"
    );
}

#[test]
fn secret_file_mode_is_refuse_unless_warn() {
    assert_eq!(
        parse(MINIMAL, "t.toml").unwrap().secret_file_mode,
        SecretFileMode::Refuse
    );
    let warn = format!("secret_file_mode = \"warn\"\n{MINIMAL}");
    assert_eq!(
        parse(&warn, "t.toml").unwrap().secret_file_mode,
        SecretFileMode::Warn
    );
    let e = only(&format!("secret_file_mode = \"ignore\"\n{MINIMAL}"));
    assert!(
        e.starts_with(
            "t.toml:1:20: secret_file_mode: unknown variant `ignore`, expected `refuse` or `warn`"
        ),
        "{e}"
    );
}

#[test]
fn watch_rules() {
    let text = format!(
        "{MINIMAL}\n[[watch]]\nvip = \"10.0.0.3\"\ninterface = \"eth0\"\nrole = \"backup\"\n\n[[watch]]\nvip = \"10.0.0.3\"\ninterface = \"eth 0\"\nrole = \"master\"\n\n[watch_actions]\ndemote_command = []\n"
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:17:7: watch[1].vip: VIP 10.0.0.3 is already watched by watch[0]",
            "t.toml:18:13: watch[1].interface: interface name \"eth 0\" must not contain '/', ':' or whitespace",
            "t.toml:22:18: watch_actions.demote_command: the command must not be empty; give the program and its arguments as a list",
        ]
    );
    let e = only(&format!(
        "{MINIMAL}\n[[watch]]\nvip = \"10.0.0.3\"\ninterface = \"eth0\"\nrole = \"primary\"\n"
    ));
    assert!(
        e.starts_with("t.toml:14:8: watch[0].role: unknown variant `primary`"),
        "{e}"
    );
}

#[test]
fn alerts_rules() {
    let text = format!("{MINIMAL}\n[alerts]\nrate_limit = 0\nrepeat_interval = \"0s\"\n");
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:12:14: alerts.rate_limit: rate_limit 0 would never send; it must be at least 1",
            "t.toml:13:19: alerts.repeat_interval: the duration must be greater than zero",
        ]
    );
}

#[test]
fn notify_argv_must_not_be_empty() {
    assert_eq!(
        only(&instance_with("notify_master = [\"\"]\n")),
        "t.toml:10:18: instance[0].notify_master[0]: the program name must not be empty"
    );
}

#[test]
fn v3_checksum_flag_needs_v3() {
    assert_eq!(
        only(&instance_with("v3_checksum_as_v2 = true\n")),
        "t.toml:10:21: instance[0].v3_checksum_as_v2: v3_checksum_as_v2 applies only to version = 3"
    );
}

#[test]
fn all_validation_errors_are_reported_in_file_order() {
    let text = r#"node = ""

[[instance]]
name = "VI_1"
interface = "eth0"
vrid = 0
priority = 0
advert_interval = "1.5s"
vips = ["10.0.0.3/24"]
"#;
    assert_eq!(
        errors(text),
        vec![
            "t.toml:1:8: node: node must not be empty",
            "t.toml:6:8: instance[0].vrid: VRID 0 is out of range; it must be between 1 and 255",
            "t.toml:7:12: instance[0].priority: priority 0 is out of range; it must be between 1 and 255",
            "t.toml:8:19: instance[0].advert_interval: advert_interval 1s500ms is not valid for VRRPv2; it must be whole seconds, 1s-255s",
        ]
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    // "é" is two bytes but one column.
    assert_eq!(
        only(&instance_with("track_interfaces = [\"é\", \"a b\"]\n")),
        "t.toml:10:26: instance[0].track_interfaces[1]: interface name \"a b\" must not contain '/', ':' or whitespace"
    );
}

#[test]
fn arbiter_value_ranges() {
    let arb = |body: &str| format!("{MINIMAL}\n[arbiter]\n{body}");
    assert_eq!(
        only(&arb("demote_weight = 0\n")),
        "t.toml:12:17: arbiter.demote_weight: demote_weight 0 is out of range; it must be between 1 and 254"
    );
    assert_eq!(
        only(&arb("probe_fall = -1\n")),
        "t.toml:12:14: arbiter.probe_fall: probe_fall -1 is out of range; it must be at least 1"
    );
    assert_eq!(
        only(&arb("reboot_command = []\n")),
        "t.toml:12:18: arbiter.reboot_command: the command must not be empty; give the program and its arguments as a list"
    );
    assert_eq!(
        only(&arb("watchdog_device = \"watchdog\"\n")),
        "t.toml:12:19: arbiter.watchdog_device: \"watchdog\" must be an absolute path"
    );
    assert_eq!(
        only(&arb("references = [\"0.0.0.0\"]\n")),
        "t.toml:12:15: arbiter.references[0]: 0.0.0.0 is the unspecified address; give a real unicast address"
    );
}

#[test]
fn unicast_src_ip_family_must_match() {
    assert_eq!(
        only(&instance_with("unicast_src_ip = \"2001:db8::5\"\n")),
        "t.toml:10:18: instance[0].unicast_src_ip: unicast_src_ip 2001:db8::5 is IPv6 but the instance's VIPs are IPv4"
    );
}

#[test]
fn http_sms_body_needs_post() {
    let text = format!(
        "{MINIMAL}\n[[channel]]\ntype = \"sms\"\nprovider = \"http\"\nurl_template = \"https://gw.example/send\"\nbody_template = \"to={{to}}&text={{text}}\"\nto = [\"+15550002222\"]\n"
    );
    assert_eq!(
        only(&text),
        "t.toml:15:17: channel[0].body_template: body_template needs method = \"POST\""
    );
}

#[test]
fn reply_listen_needs_a_verifier() {
    let text = format!(
        "{MINIMAL}\n[reply]\nlisten = \"127.0.0.1:8725\"\nallowed_senders = [\"+15550002222\"]\n"
    );
    assert_eq!(
        only(&text),
        "t.toml:12:10: reply.listen: listen is set but neither twilio_auth_token nor generic_secret is, so no HTTP reply could be verified"
    );
}

#[test]
fn imap_rules() {
    let text = format!(
        "{MINIMAL}\n[reply]\nallowed_senders = [\"oncall@example.com\"]\n\n[reply.imap]\nhost = \"imap.example\"\nport = 0\nusername = \"\"\npassword = \"pw\"\npoll_interval = \"0s\"\n"
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:16:8: reply.imap.port: port 0 is not a valid IMAP port",
            "t.toml:17:12: reply.imap.username: the IMAP username must not be empty",
            "t.toml:19:17: reply.imap.poll_interval: the duration must be greater than zero",
        ]
    );
}

#[test]
fn urls_in_debug_output_hide_credentials() {
    let text = format!(
        "{MINIMAL}\n[[channel]]\ntype = \"alertmanager\"\nurl = \"https://am:hunter2@am.example/\"\n\n[[channel]]\ntype = \"sms\"\nprovider = \"http\"\nurl_template = \"https://gw.example/send?passwd=hunter3&to={{to}}&text={{text}}\"\nto = [\"+15550002222\"]\n"
    );
    let c = parse(&text, "t.toml").unwrap();
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("hunter3"),
        "{shown}"
    );
    match &c.channels[0] {
        Channel::Alertmanager(a) => assert_eq!(a.urls[0].password(), Some("hunter2")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn garp_keys_have_defaults_and_bounds() {
    let cfg = parse(&instance_with(""), "t.toml").expect("valid");
    let i = &cfg.instances[0];
    assert_eq!(i.garp_repeat, 5);
    assert_eq!(i.garp_interval, Duration::from_millis(100));
    assert_eq!(i.garp_refresh, Duration::from_secs(60));
    let cfg = parse(
        &instance_with("garp_repeat = 0\ngarp_refresh = \"0s\"\n"),
        "t.toml",
    )
    .expect("valid");
    assert_eq!(cfg.instances[0].garp_repeat, 0);
    assert!(cfg.instances[0].garp_refresh.is_zero());
    let err = only(&instance_with("garp_repeat = 101\n"));
    assert!(
        err.contains("instance[0].garp_repeat: garp_repeat 101 is out of range"),
        "{err}"
    );
    let err = only(&instance_with("garp_refresh = \"200ms\"\n"));
    assert!(
        err.contains("instance[0].garp_refresh: garp_refresh must be 0 (off) or at least 1s"),
        "{err}"
    );
}

#[test]
fn reboot_ledger_limits_and_arbiter_switch() {
    let c = parse(
        &format!(
            "{MINIMAL}\n[arbiter]\nenabled = false\non_isolated = \"reboot\"\nreboot_after = \"30s\"\n\
         reboot_limit = 2\nreboot_window = \"6h\"\nreboot_min_uptime = \"0s\"\n"
        ),
        "t.toml",
    )
    .expect("valid");
    let a = &c.arbiter;
    assert!(!a.enabled);
    assert_eq!(a.reboot_limit, 2);
    assert_eq!(a.reboot_window, Duration::from_secs(6 * 3600));
    assert_eq!(a.reboot_min_uptime, Duration::ZERO);
    let errs = errors(&format!(
        "{MINIMAL}\n[arbiter]\nreboot_limit = 0\nreboot_window = \"0s\"\n"
    ));
    assert_eq!(
        errs,
        vec![
            "t.toml:12:16: arbiter.reboot_limit: reboot_limit 0 is out of range; it must be at least 1",
            "t.toml:13:17: arbiter.reboot_window: the duration must be greater than zero",
        ]
    );
}

#[test]
fn arbiter_targets_need_an_instance_of_their_family() {
    let text = format!("{MINIMAL}\n[arbiter]\nreferences = [\"2001:db8::fe\"]\n");
    assert_eq!(
        only(&text),
        "t.toml:12:15: arbiter.references[0]: 2001:db8::fe is IPv6 but every instance is IPv4: echoes leave from an instance's own IPv6 address"
    );
    let off = format!("{MINIMAL}\n[arbiter]\nenabled = false\nreferences = [\"2001:db8::fe\"]\n");
    assert!(errors(&off).is_empty(), "no probes when the arbiter is off");
    let v6 = minimal_replacing(
        "vips = [\"10.0.0.3/24\"]",
        "vips = [\"2001:db8::3/64\"]\nversion = 3",
    );
    let text = format!("{v6}\n[arbiter]\npeers = [\"10.0.0.9\", \"fe80::9\"]\n");
    assert_eq!(
        only(&text),
        "t.toml:13:10: arbiter.peers[0]: 10.0.0.9 is IPv4 but every instance is IPv6: echoes leave from an instance's own IPv4 address"
    );
}

// ------------------------------------------------------------------ [witness]

/// MINIMAL with a `[witness]` table (line 11) whose keys start at line 12.
fn witness_with(body: &str) -> String {
    format!("{MINIMAL}\n[witness]\n{body}")
}

/// The smallest witness: `etcd` on line 12, `cluster` on 13; more from 14.
const WITNESS_BASE: &str = "etcd = [\"http://192.0.2.201:2379\"]\ncluster = \"lb\"\n";

/// A 16-byte confirm secret.
const CONFIRM_SECRET: &str = "0123456789abcdef";

fn witness_base_with(extra: &str) -> String {
    witness_with(&format!("{WITNESS_BASE}{extra}"))
}

#[test]
fn witness_full_section_parses() {
    let text = witness_with(&format!(
        r#"etcd = ["https://192.0.2.201:2379", "https://192.0.2.202:2379/", "https://etcd3.example:2379"]
cluster = "lb-pair_1.prod"
lease_ttl = "5s"
tls_ca = "/etc/splitguard/etcd-ca.pem"
tls_cert = "/etc/splitguard/etcd-client.pem"
tls_key = "/etc/splitguard/etcd-client.key"
username = "splitguard"
password = "etcd-pass"
confirm_listen = "192.0.2.197:8727"
confirm_peer = "192.0.2.198:8727"
confirm_secret = "{CONFIRM_SECRET}"
confirm_interval = "250ms"
"#
    ));
    let c = parse(&text, "t.toml").unwrap();
    let w = c.witness.as_ref().expect("witness");
    assert_eq!(
        w.etcd,
        [
            "https://192.0.2.201:2379",
            "https://192.0.2.202:2379",
            "https://etcd3.example:2379"
        ]
    );
    assert_eq!(w.cluster, "lb-pair_1.prod");
    assert_eq!(w.lease_ttl, Duration::from_secs(5));
    assert_eq!(
        w.tls,
        Some(WitnessTls {
            ca: Some("/etc/splitguard/etcd-ca.pem".into()),
            cert: Some("/etc/splitguard/etcd-client.pem".into()),
            key: Some("/etc/splitguard/etcd-client.key".into()),
        })
    );
    assert_eq!(w.username.as_deref(), Some("splitguard"));
    assert_eq!(w.password.as_ref().map(Secret::expose), Some("etcd-pass"));
    let confirm = w.confirm.as_ref().expect("confirm");
    assert_eq!(confirm.listen, "192.0.2.197:8727".parse().unwrap());
    assert_eq!(confirm.peer, "192.0.2.198:8727".parse().unwrap());
    assert_eq!(confirm.secret.expose(), CONFIRM_SECRET);
    assert_eq!(confirm.interval, Duration::from_millis(250));
    assert_eq!(w.warning(), None);

    // Never the secrets: not in Debug, not in check-config's summary.
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("etcd-pass") && !shown.contains(CONFIRM_SECRET),
        "{shown}"
    );
    assert_eq!(
        w.summary(),
        "witness: etcd https://192.0.2.201:2379,https://192.0.2.202:2379,https://etcd3.example:2379 \
         cluster \"lb-pair_1.prod\" lease_ttl 5s confirm peer 192.0.2.198:8727 every 250ms"
    );
    // And the secret-file rule knows them.
    assert_eq!(
        exposure::secret_keys(&c),
        ["witness.password", "witness.confirm_secret"]
    );
    assert_eq!(
        exposure::key_files(&c),
        [(
            "witness.tls_key".to_owned(),
            std::path::PathBuf::from("/etc/splitguard/etcd-client.key")
        )]
    );
}

#[test]
fn witness_defaults_are_applied() {
    assert!(parse(MINIMAL, "t.toml").unwrap().witness.is_none());

    let c = parse(&witness_with(WITNESS_BASE), "t.toml").unwrap();
    let w = c.witness.as_ref().expect("witness");
    assert_eq!(w.etcd, ["http://192.0.2.201:2379"]);
    assert_eq!(w.lease_ttl, Duration::from_secs(3));
    assert_eq!(w.tls, None);
    assert!(w.username.is_none() && w.password.is_none() && w.confirm.is_none());
    assert_eq!(w.warning(), Some(WITNESS_WITHOUT_CONFIRM));
    assert_eq!(
        WITNESS_WITHOUT_CONFIRM,
        "[witness] without confirm_peer: a master that cannot reach etcd releases its VIPs; with a confirm path it keeps them while its peer confirms"
    );
    assert_eq!(
        w.summary(),
        "witness: etcd http://192.0.2.201:2379 cluster \"lb\" lease_ttl 3s no confirm path"
    );
    assert!(exposure::secret_keys(&c).is_empty());

    // The confirm interval's default.
    let c = parse(
        &witness_base_with(&format!(
            "confirm_listen = \"192.0.2.197:8727\"\nconfirm_peer = \"192.0.2.198:8727\"\nconfirm_secret = \"{CONFIRM_SECRET}\"\n"
        )),
        "t.toml",
    )
    .unwrap();
    let confirm = c.witness.unwrap().confirm.unwrap();
    assert_eq!(confirm.interval, Duration::from_millis(500));

    // An https endpoint without TLS keys: TLS with the system's roots.
    let c = parse(
        &witness_with("etcd = [\"https://etcd.example:2379\"]\ncluster = \"lb\"\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(
        c.witness.unwrap().tls,
        Some(WitnessTls {
            ca: None,
            cert: None,
            key: None
        })
    );
}

#[test]
fn witness_timing_is_derived_from_the_lease() {
    let c = parse(&witness_with(WITNESS_BASE), "t.toml").unwrap();
    let mut w = c.witness.unwrap();
    // The default 3s lease: renewed every second, confirmations hold 2s.
    assert_eq!(w.renew_interval(), Duration::from_secs(1));
    assert_eq!(w.margin(), Duration::from_millis(300));
    assert_eq!(w.confirm_valid(), Duration::from_secs(2));
    // The shortest lease (a third, rounded down to the nanosecond).
    w.lease_ttl = Duration::from_secs(2);
    assert_eq!(w.renew_interval(), Duration::from_nanos(666_666_666));
    assert_eq!(w.confirm_valid(), Duration::from_secs(1));
    assert_eq!(w.margin(), Duration::from_millis(300));
    // The longest.
    w.lease_ttl = Duration::from_secs(60);
    assert_eq!(w.renew_interval(), Duration::from_secs(20));
    assert_eq!(w.confirm_valid(), Duration::from_secs(59));
    // Every accepted TTL leaves room for two confirmations at the longest
    // interval the shortest TTL allows (500ms), and renews inside the margin.
    for secs in 2..=60 {
        w.lease_ttl = Duration::from_secs(secs);
        assert!(
            Duration::from_millis(500) * 2 <= w.confirm_valid(),
            "{secs}s"
        );
        assert!(w.renew_interval() * 3 <= w.lease_ttl, "{secs}s");
        assert!(w.confirm_valid() + w.margin() < w.lease_ttl, "{secs}s");
    }
}

#[test]
fn witness_endpoints_are_http_urls_with_a_port() {
    assert_eq!(
        only(&witness_with(
            "etcd = [\"grpc://192.0.2.201:2379\"]\ncluster = \"lb\"\n"
        )),
        "t.toml:12:9: witness.etcd[0]: etcd endpoint \"grpc://192.0.2.201:2379\" has scheme \"grpc\"; it must be http or https (write http://host:port or https://host:port, e.g. \"http://192.0.2.201:2379\")"
    );
    assert_eq!(
        only(&witness_with(
            "etcd = [\"192.0.2.201:2379\"]\ncluster = \"lb\"\n"
        )),
        "t.toml:12:9: witness.etcd[0]: etcd endpoint \"192.0.2.201:2379\" is not a URL; write http://host:port or https://host:port, e.g. \"http://192.0.2.201:2379\""
    );
    assert_eq!(
        only(&witness_with(
            "etcd = [\"http://192.0.2.201\"]\ncluster = \"lb\"\n"
        )),
        "t.toml:12:9: witness.etcd[0]: etcd endpoint \"http://192.0.2.201\" has no port; write http://host:port or https://host:port, e.g. \"http://192.0.2.201:2379\""
    );
    assert_eq!(
        only(&witness_with(
            "etcd = [\"http://192.0.2.201:2379/v3\"]\ncluster = \"lb\"\n"
        )),
        "t.toml:12:9: witness.etcd[0]: etcd endpoint \"http://192.0.2.201:2379/v3\" has a path; write http://host:port or https://host:port, e.g. \"http://192.0.2.201:2379\""
    );
    assert_eq!(
        only(&witness_with(
            "etcd = [\"http://u:p@192.0.2.201:2379\"]\ncluster = \"lb\"\n"
        )),
        "t.toml:12:9: witness.etcd[0]: etcd endpoint \"http://u:p@192.0.2.201:2379\" carries credentials; give them as username and password"
    );
    assert_eq!(
        only(&witness_with(
            "etcd = [\"http://192.0.2.201:0\"]\ncluster = \"lb\"\n"
        )),
        "t.toml:12:9: witness.etcd[0]: etcd endpoint \"http://192.0.2.201:0\" has port 0; it must be 1-65535"
    );
    // IPv6 in brackets is fine.
    let c = parse(
        &witness_with("etcd = [\"http://[2001:DB8::201]:2379\"]\ncluster = \"lb\"\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.witness.unwrap().etcd, ["http://[2001:db8::201]:2379"]);
    assert_eq!(
        only(&witness_with("etcd = []\ncluster = \"lb\"\n")),
        "t.toml:12:8: witness.etcd: at least one etcd endpoint is required"
    );
}

#[test]
fn witness_takes_at_most_seven_endpoints_each_once() {
    let eight: Vec<String> = (201..=208)
        .map(|n| format!("\"http://192.0.2.{n}:2379\""))
        .collect();
    assert_eq!(
        only(&witness_with(&format!(
            "etcd = [{}]\ncluster = \"lb\"\n",
            eight.join(", ")
        ))),
        "t.toml:12:8: witness.etcd: 8 etcd endpoints given; at most 7 (etcd recommends at most 7 members)"
    );
    let seven = eight[..7].join(", ");
    assert!(
        errors(&witness_with(&format!(
            "etcd = [{seven}]\ncluster = \"lb\"\n"
        )))
        .is_empty()
    );
    assert_eq!(
        only(&witness_with(
            "etcd = [\"http://192.0.2.201:2379\", \"http://192.0.2.201:2379/\"]\ncluster = \"lb\"\n"
        )),
        "t.toml:12:36: witness.etcd[1]: \"http://192.0.2.201:2379/\" is already listed as etcd[0]"
    );
}

#[test]
fn witness_cluster_names_a_key_prefix() {
    assert_eq!(
        only(&witness_with(
            "etcd = [\"http://192.0.2.201:2379\"]\ncluster = \"lb/1\"\n"
        )),
        "t.toml:13:11: witness.cluster: cluster \"lb/1\" may hold only letters, digits, '.', '_' and '-' (it names the etcd key prefix)"
    );
    assert_eq!(
        only(&witness_with(
            "etcd = [\"http://192.0.2.201:2379\"]\ncluster = \"\"\n"
        )),
        "t.toml:13:11: witness.cluster: cluster must not be empty"
    );
    let long = "x".repeat(65);
    assert_eq!(
        only(&witness_with(&format!(
            "etcd = [\"http://192.0.2.201:2379\"]\ncluster = \"{long}\"\n"
        ))),
        "t.toml:13:11: witness.cluster: cluster is 65 characters; at most 64"
    );
    assert!(
        errors(&witness_with(&format!(
            "etcd = [\"http://192.0.2.201:2379\"]\ncluster = \"{}\"\n",
            "x".repeat(64)
        )))
        .is_empty()
    );
    assert_eq!(
        only(&witness_with("etcd = [\"http://192.0.2.201:2379\"]\n")),
        "t.toml:11:1: witness.cluster: missing required key `cluster`"
    );
}

#[test]
fn witness_lease_ttl_bounds() {
    assert_eq!(
        only(&witness_base_with("lease_ttl = \"1s\"\n")),
        "t.toml:14:13: witness.lease_ttl: lease_ttl 1s is outside 2s to 60s"
    );
    assert_eq!(
        only(&witness_base_with("lease_ttl = \"61s\"\n")),
        "t.toml:14:13: witness.lease_ttl: lease_ttl 1m1s is outside 2s to 60s"
    );
    assert_eq!(
        only(&witness_base_with("lease_ttl = \"2500ms\"\n")),
        "t.toml:14:13: witness.lease_ttl: lease_ttl 2s500ms is not whole seconds; etcd grants leases in seconds"
    );
    assert_eq!(
        only(&witness_base_with("lease_ttl = \"3 s\"\n")),
        "t.toml:14:13: witness.lease_ttl: duration \"3 s\" has unknown unit \" s\" (units: ns, us, ms, s, m, h, d)"
    );
    for ok in ["2s", "60s", "1m"] {
        assert!(
            errors(&witness_base_with(&format!("lease_ttl = \"{ok}\"\n"))).is_empty(),
            "{ok}"
        );
    }
}

#[test]
fn witness_tls_rules() {
    let https =
        "etcd = [\"https://192.0.2.201:2379\", \"https://192.0.2.202:2379\"]\ncluster = \"lb\"\n";
    assert_eq!(
        only(&witness_with(&format!("{https}tls_key = \"/etc/k.pem\"\n"))),
        "t.toml:14:11: witness.tls_key: tls_key is set, so tls_cert (the certificate chain) is required"
    );
    assert_eq!(
        only(&witness_with(&format!(
            "{https}tls_cert = \"/etc/c.pem\"\n"
        ))),
        "t.toml:14:12: witness.tls_cert: tls_cert is set, so tls_key (its private key) is required"
    );
    assert_eq!(
        only(&witness_with(&format!("{https}tls_ca = \"ca.pem\"\n"))),
        "t.toml:14:10: witness.tls_ca: \"ca.pem\" must be an absolute path"
    );
    // With TLS set, every endpoint is https.
    assert_eq!(
        only(&witness_with(
            "etcd = [\"https://192.0.2.201:2379\", \"http://192.0.2.202:2379\"]\ncluster = \"lb\"\ntls_ca = \"/etc/ca.pem\"\n"
        )),
        "t.toml:12:37: witness.etcd[1]: \"http://192.0.2.202:2379\" is http, but tls_ca is set: with TLS every etcd endpoint must be https"
    );
    assert_eq!(
        only(&witness_base_with("tls_ca = \"/etc/ca.pem\"\n")),
        "t.toml:12:9: witness.etcd[0]: \"http://192.0.2.201:2379\" is http, but tls_ca is set: with TLS every etcd endpoint must be https"
    );
    // Without TLS keys, one cluster is still one scheme.
    assert_eq!(
        only(&witness_with(
            "etcd = [\"http://192.0.2.201:2379\", \"https://192.0.2.202:2379\"]\ncluster = \"lb\"\n"
        )),
        "t.toml:12:9: witness.etcd[0]: \"http://192.0.2.201:2379\" is http but etcd[1] is https; the endpoints of one cluster are all http or all https"
    );
}

#[test]
fn witness_login_comes_in_pairs() {
    assert_eq!(
        only(&witness_base_with("username = \"splitguard\"\n")),
        "t.toml:11:1: witness.password: username is set, so password is required"
    );
    assert_eq!(
        only(&witness_base_with("password = \"pw\"\n")),
        "t.toml:11:1: witness.username: password is set, so username is required"
    );
    assert_eq!(
        only(&witness_base_with(
            "username = \"splitguard\"\npassword = \"\"\n"
        )),
        "t.toml:15:12: witness.password: the secret must not be empty; leave the key out instead"
    );
}

#[test]
fn witness_confirm_path_rules() {
    let listen = "confirm_listen = \"192.0.2.197:8727\"\n";
    let peer = "confirm_peer = \"192.0.2.198:8727\"\n";
    let secret = format!("confirm_secret = \"{CONFIRM_SECRET}\"\n");

    assert_eq!(
        errors(&witness_base_with(listen)),
        vec![
            "t.toml:11:1: witness.confirm_peer: confirm_listen is set, so confirm_peer is required: confirm_listen, confirm_peer and confirm_secret go together",
            "t.toml:11:1: witness.confirm_secret: confirm_listen is set, so confirm_secret is required: confirm_listen, confirm_peer and confirm_secret go together",
        ]
    );
    assert_eq!(
        only(&witness_base_with(&format!("{listen}{peer}"))),
        "t.toml:11:1: witness.confirm_secret: confirm_listen and confirm_peer are set, so confirm_secret is required: confirm_listen, confirm_peer and confirm_secret go together"
    );
    assert_eq!(
        only(&witness_base_with("confirm_interval = \"200ms\"\n")),
        "t.toml:14:20: witness.confirm_interval: confirm_interval is set but confirm_listen, confirm_peer and confirm_secret are not; without them there is no confirm path"
    );
    assert_eq!(
        only(&witness_base_with(&format!(
            "{listen}{peer}confirm_secret = \"too-short\"\n"
        ))),
        "t.toml:16:18: witness.confirm_secret: confirm_secret is 9 bytes; it must be at least 16"
    );
    assert_eq!(
        only(&witness_base_with(&format!(
            "confirm_listen = \"192.0.2.197\"\n{peer}{secret}"
        ))),
        "t.toml:14:18: witness.confirm_listen: 192.0.2.197 has no port; write e.g. \"192.0.2.197:8727\""
    );
    assert_eq!(
        only(&witness_base_with(&format!(
            "{listen}confirm_peer = \"lb02\"\n{secret}"
        ))),
        "t.toml:15:16: witness.confirm_peer: \"lb02\" is not an address and port such as \"192.0.2.197:8727\""
    );
    assert_eq!(
        only(&witness_base_with(&format!(
            "{listen}confirm_peer = \"192.0.2.198:0\"\n{secret}"
        ))),
        "t.toml:15:16: witness.confirm_peer: confirm_peer 192.0.2.198:0 has port 0; give the port the confirm path uses, e.g. 8727"
    );
    assert_eq!(
        only(&witness_base_with(&format!(
            "{listen}confirm_peer = \"192.0.2.197:8728\"\n{secret}"
        ))),
        "t.toml:15:16: witness.confirm_peer: 192.0.2.197:8728 is this node's confirm_listen address; give the peer's confirm_listen"
    );
    assert_eq!(
        only(&witness_base_with(&format!(
            "{listen}confirm_peer = \"10.0.0.3:8727\"\n{secret}"
        ))),
        "t.toml:15:16: witness.confirm_peer: 10.0.0.3 is a VIP (instance[0].vips[0]); use a node's own address, which does not move"
    );
    assert_eq!(
        only(&witness_base_with(&format!(
            "{listen}confirm_peer = \"[2001:db8::198]:8727\"\n{secret}"
        ))),
        "t.toml:15:16: witness.confirm_peer: confirm_peer [2001:db8::198]:8727 is IPv6 but confirm_listen 192.0.2.197:8727 is IPv4"
    );
    // Listening on every address is allowed, as for [reply] listen.
    assert!(
        errors(&witness_base_with(&format!(
            "confirm_listen = \"0.0.0.0:8727\"\n{peer}{secret}"
        )))
        .is_empty()
    );
}

#[test]
fn witness_confirm_interval_fits_the_lease() {
    let confirm = format!(
        "confirm_listen = \"192.0.2.197:8727\"\nconfirm_peer = \"192.0.2.198:8727\"\nconfirm_secret = \"{CONFIRM_SECRET}\"\n"
    );
    // Line 14: lease_ttl, 15-17: the confirm keys, 18: confirm_interval.
    let with = |ttl: &str, interval: &str| {
        witness_base_with(&format!(
            "lease_ttl = \"{ttl}\"\n{confirm}confirm_interval = \"{interval}\"\n"
        ))
    };
    assert_eq!(
        only(&with("2s", "600ms")),
        "t.toml:18:20: witness.confirm_interval: confirm_interval 600ms is too long for lease_ttl 2s: a confirmation holds for lease_ttl - 1s = 1s and at least two must fit in it, so confirm_interval must be at most 500ms"
    );
    assert!(errors(&with("2s", "500ms")).is_empty());
    assert!(errors(&with("3s", "1s")).is_empty());
    assert_eq!(
        only(&with("3s", "50ms")),
        "t.toml:18:20: witness.confirm_interval: confirm_interval 50ms is outside 100ms to 1s"
    );
    assert_eq!(
        only(&with("10s", "2s")),
        "t.toml:18:20: witness.confirm_interval: confirm_interval 2s is outside 100ms to 1s"
    );
}

#[test]
fn witness_unknown_key_and_shape_are_located() {
    let e = only(&witness_base_with("lease = \"3s\"\n"));
    assert!(
        e.starts_with("t.toml:14:1: witness.lease: unknown key `lease`; expected one of `etcd`, `cluster`, `lease_ttl`,"),
        "{e}"
    );
    assert!(e.contains("`confirm_interval`"), "{e}");
    assert_eq!(
        only(&format!("{MINIMAL}\n[[witness]]\n{WITNESS_BASE}")),
        "t.toml:11:1: witness: expected a table (`[witness]`), found an array of tables; use `[witness]`, not `[[witness]]`"
    );
}

#[test]
fn witness_needs_instances() {
    let text = format!("node = \"lb01\"\n\n[witness]\n{WITNESS_BASE}");
    assert_eq!(
        only(&text),
        "t.toml:3:1: witness: [witness] needs at least one [[instance]]"
    );
}

#[test]
fn witness_keys_are_per_family_and_vrid() {
    let two = format!(
        "{MINIMAL}\n[[instance]]\nname = \"VI_2\"\ninterface = \"eth1\"\nvrid = 51\npriority = 150\nadvert_interval = \"1s\"\nvips = [\"10.0.1.3/24\"]\n"
    );
    assert!(
        errors(&two).is_empty(),
        "without a witness, VRIDs are per interface"
    );
    assert_eq!(
        only(&format!("{two}\n[witness]\n{WITNESS_BASE}")),
        "t.toml:14:8: instance[1].vrid: VRID 51 (IPv4) is also instance[0]'s (\"VI_1\" on eth0); with [witness] the etcd key is per address family and VRID, so instance[1] (\"VI_2\" on eth1) and instance[0] would share it"
    );
    // The other family may share the number.
    let v6 = format!(
        "{MINIMAL}\n[[instance]]\nname = \"VI_6\"\ninterface = \"eth1\"\nvrid = 51\npriority = 150\nadvert_interval = \"1s\"\nversion = 3\nvips = [\"2001:db8::3/64\"]\n\n[witness]\n{WITNESS_BASE}"
    );
    assert!(errors(&v6).is_empty(), "{:#?}", errors(&v6));
}

#[test]
fn contrib_examples_parse_with_their_witness_block_uncommented() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/examples");
    for name in ["lb01", "lb02", "dual-master-lb01", "dual-master-lb02"] {
        let path = dir.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).expect("example");
        let plain = parse(&text, name).unwrap_or_else(|e| panic!("{e}"));
        assert!(plain.witness.is_none(), "{name}: the witness is off");

        // The lines from `# [witness]` to the next blank line lose one `# `.
        let on = parse(&uncommented(&text, "# [witness]"), name).unwrap_or_else(|e| panic!("{e}"));
        let w = on.witness.expect("witness");
        assert_eq!(w.etcd.len(), 3, "{name}");
        assert_eq!(w.lease_ttl, Duration::from_secs(3), "{name}");
        let confirm = w.confirm.expect("confirm");
        assert_eq!(confirm.listen.port(), 8727, "{name}");
        // Each node's peer is the other's listen address.
        let (me, peer) = if name.ends_with("lb01") {
            ("192.0.2.197", "192.0.2.198")
        } else {
            ("192.0.2.198", "192.0.2.197")
        };
        assert_eq!(confirm.listen.ip(), ip(me), "{name}");
        assert_eq!(confirm.peer.ip(), ip(peer), "{name}");
    }
}

/// `text` with the commented block that starts at the line `marker` (to
/// the next blank line) uncommented.
fn uncommented(text: &str, marker: &str) -> String {
    let at = text
        .find(&format!("\n{marker}\n"))
        .unwrap_or_else(|| panic!("no {marker} example"))
        + 1;
    let (head, rest) = text.split_at(at);
    let end = rest.find("\n\n").map_or(rest.len(), |e| e + 1);
    let (block, tail) = rest.split_at(end);
    let block: String = block
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
        .collect();
    format!("{head}{block}{tail}")
}

#[test]
fn contrib_examples_parse_with_their_fence_block_uncommented() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/examples");
    for (name, peer) in [("lb01", "10.0.0.6"), ("lb02", "10.0.0.5")] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).expect("example");
        assert!(parse(&text, name).unwrap().fences.is_empty(), "{name}: off");
        let on = parse(&uncommented(&text, "# [[fence]]"), name).unwrap_or_else(|e| panic!("{e}"));
        let f = &on.fences[0];
        assert_eq!(f.peer, ip(peer), "{name}");
        assert!(f.dry_run, "{name}: the example starts as a dry run");
        assert!(!format!("{f:?}").contains("password = \"...\""));
    }
}

#[test]
fn witness_needs_the_arbiter() {
    let text = format!("{MINIMAL}\n[arbiter]\nenabled = false\n\n[witness]\n{WITNESS_BASE}");
    let e = only(&text);
    assert!(
        e.contains("witness")
            && e.contains(
                "[witness] needs the arbiter, which `[arbiter] enabled = false` turns off"
            ),
        "{e}"
    );
}

// ------------------------------------------------------------------ [[fence]]

/// MINIMAL with a `[[fence]]` table (line 11) whose keys start at line 12.
fn fence_with(body: &str) -> String {
    format!("{MINIMAL}\n[[fence]]\n{body}")
}

#[test]
fn fence_as_design_writes_it_parses_with_defaults() {
    // DESIGN.md's block, with its documentation addresses.
    let c = parse(
        &fence_with(
            r#"peer = "10.0.0.6"
agent = "fence_ipmilan"
options = { ip = "10.0.9.6", username = "admin", password = "s3cret", lanplus = "1" }
fence_after = "5s"
"#,
        ),
        "t.toml",
    )
    .unwrap();
    let f = &c.fences[0];
    assert_eq!(f.peer, ip("10.0.0.6"));
    assert_eq!(f.fence_after, Duration::from_secs(5));
    assert_eq!(f.limit, 1);
    assert_eq!(f.window, Duration::from_secs(3600));
    assert_eq!(f.min_uptime, Duration::from_secs(300));
    assert_eq!(f.device.timeout, Duration::from_secs(30));
    assert!(!f.dry_run);
    let crate::fence::DeviceKind::Agent(a) = &f.device.kind else {
        panic!("an agent: {f:?}");
    };
    assert_eq!(a.agent, "fence_ipmilan");
    assert!(a.options.iter().any(|(k, v)| k == "password"
        && matches!(v, crate::fence::OptionValue::Secret(s) if s.expose() == "s3cret")));
    // The password is a secret: the rule on the file's mode names it, and no
    // output shows it.
    assert_eq!(exposure::secret_keys(&c), ["fence[0].options.password"]);
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn fence_takes_integer_and_boolean_option_values_and_every_limit() {
    let c = parse(
        &fence_with(
            r#"peer = "192.0.2.6"
agent = "/usr/local/sbin/fence_custom"
options = { ip = "192.0.2.205", lanplus = 1, ssl_insecure = true, power_wait = 0 }
timeout = "20s"
fence_after = "3s"
fence_limit = 2
fence_window = "30m"
fence_min_uptime = "0s"
peer_priority = 100
peer_mac = "52-54-00-AB-cd-06"
dry_run = true
"#,
        ),
        "t.toml",
    )
    .unwrap();
    let f = &c.fences[0];
    assert_eq!(f.peer_mac, Some([0x52, 0x54, 0, 0xab, 0xcd, 6]));
    assert!(
        f.summary()
            .starts_with("fence: peer 192.0.2.6 (MAC 52:54:00:ab:cd:06) by "),
        "{}",
        f.summary()
    );
    assert_eq!(
        (f.limit, f.window, f.min_uptime, f.peer_priority, f.dry_run),
        (
            2,
            Duration::from_secs(1800),
            Duration::ZERO,
            Some(100),
            true
        )
    );
    assert_eq!(
        f.device.describe(crate::fence::Op::Off),
        "/usr/local/sbin/fence_custom action=off ip=192.0.2.205 lanplus=1 power_wait=0 ssl_insecure=1"
    );
    assert!(exposure::secret_keys(&c).is_empty());
}

#[test]
fn fence_refuses_what_would_break_the_agent_protocol() {
    assert_eq!(
        only(&fence_with(
            "peer = \"192.0.2.6\"\nagent = \"fence_ipmilan\"\noptions = { action = \"reboot\" }\n"
        )),
        "t.toml:14:22: fence[0].options.action: `action` is not an option: splitguard sets it (off, status, on)"
    );
    assert_eq!(
        only(&fence_with(
            "peer = \"192.0.2.6\"\nagent = \"fence_ipmilan\"\noptions = { ip = \"192.0.2.205\\nport=1\" }\n"
        )),
        "t.toml:14:18: fence[0].options.ip: option ip: the value holds a line break or NUL"
    );
    assert_eq!(
        only(&fence_with("peer = \"192.0.2.6\"\nagent = \"ipmilan\"\n")),
        "t.toml:13:9: fence[0].agent: agent \"ipmilan\" is neither a fence agent's name (fence_ipmilan, fence_redfish, …), an absolute path, nor \"redfish\""
    );
    assert_eq!(
        only(&fence_with(
            "peer = \"10.0.0.3\"\nagent = \"fence_ipmilan\"\n"
        )),
        "t.toml:12:8: fence[0].peer: 10.0.0.3 is a VIP of instance \"VI_1\"; name the peer's own address"
    );
    assert_eq!(
        only(&fence_with(
            "peer = \"192.0.2.6\"\nagent = \"fence_ipmilan\"\nfence_after = \"0s\"\n"
        )),
        "t.toml:14:15: fence[0].fence_after: fence_after 0s is outside 1s to 600s"
    );
    let two = format!(
        "{}\n[[fence]]\npeer = \"192.0.2.6\"\nagent = \"fence_virsh\"\n",
        fence_with("peer = \"192.0.2.6\"\nagent = \"fence_ipmilan\"\n")
    );
    assert_eq!(
        only(&two),
        "t.toml:16:8: fence[1].peer: peer 192.0.2.6 is also fence[0]'s; one [[fence]] per peer"
    );
}

#[test]
fn fence_peer_mac_is_one_host_s_mac() {
    let c = parse(
        &fence_with("peer = \"192.0.2.6\"\nagent = \"fence_ipmilan\"\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.fences[0].peer_mac, None, "learned by ARP unless pinned");
    for (mac, why) in [
        ("52:54:00:12:34", "is not a MAC address"),
        ("52:54:00:12:34:56:78", "is not a MAC address"),
        ("52:54:00:12:34:5g", "is not a MAC address"),
        ("52:54:00:12:34:+f", "is not a MAC address"),
        ("525400123456", "is not a MAC address"),
        ("52:54-00:12:34:56", "is not a MAC address"),
        ("ff:ff:ff:ff:ff:ff", "multicast, broadcast or zero"),
        ("01:00:5e:00:00:12", "multicast, broadcast or zero"),
        ("00:00:00:00:00:00", "multicast, broadcast or zero"),
    ] {
        let e = only(&fence_with(&format!(
            "peer = \"192.0.2.6\"\nagent = \"fence_ipmilan\"\npeer_mac = \"{mac}\"\n"
        )));
        assert!(
            e.starts_with("t.toml:14:12: fence[0].peer_mac: ") && e.contains(why),
            "{mac}: {e}"
        );
    }
}

#[test]
fn fence_redfish_takes_its_own_options() {
    let c = parse(
        &fence_with(
            r#"peer = "192.0.2.6"
agent = "redfish"
options = { url = "https://192.0.2.206:8000", username = "admin", password = "s3cret", system = "lb02", tls_ca = "/etc/splitguard/bmc-ca.pem" }
"#,
        ),
        "t.toml",
    )
    .unwrap();
    let crate::fence::DeviceKind::Redfish(r) = &c.fences[0].device.kind else {
        panic!("redfish");
    };
    assert_eq!(r.url.as_str(), "https://192.0.2.206:8000/");
    assert_eq!(r.system.as_deref(), Some("lb02"));
    assert!(!r.insecure);
    assert_eq!(exposure::secret_keys(&c), ["fence[0].options.password"]);
    assert_eq!(
        only(&fence_with(
            "peer = \"192.0.2.6\"\nagent = \"redfish\"\noptions = { url = \"https://192.0.2.206\", username = \"a\", password = \"b\", lanplus = 1 }\n"
        )),
        "t.toml:14:84: fence[0].options.lanplus: agent \"redfish\" takes no option \"lanplus\"; it takes url, username, password, system, tls_ca, ssl_insecure"
    );
    assert_eq!(
        only(&fence_with(
            "peer = \"192.0.2.6\"\nagent = \"redfish\"\noptions = { url = \"ftp://192.0.2.206\", username = \"a\", password = \"b\" }\n"
        )),
        "t.toml:14:19: fence[0].options.url: \"ftp://192.0.2.206\" is not a BMC's URL such as \"https://192.0.2.206:8000\""
    );
}

/// A `splitguard watch` config (no instances) with `[arbiter] references`
/// and a `[[fence]]`: beside keepalived the references' echoes leave from a
/// watched VIP's interface.
const WATCH_FENCE: &str = r#"node = "lb01"

[[watch]]
vip = "192.0.2.3"
interface = "eth0"
role = "master"

[arbiter]
references = ["192.0.2.254"]
"#;

#[test]
fn fence_in_a_watch_config_probes_from_the_watched_interface() {
    let c = parse(
        &format!("{WATCH_FENCE}\n[[fence]]\npeer = \"192.0.2.6\"\nagent = \"fence_ipmilan\"\n"),
        "t.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.instances.is_empty());
    assert_eq!(c.fences[0].peer, ip("192.0.2.6"));
    assert_eq!(
        c.arbiter.routes,
        [crate::config::probe_plan::ProbeRoute {
            target: ip("192.0.2.254"),
            interface: "eth0".into(),
            source: crate::config::probe_plan::SourceKind::Ipv4,
        }]
    );
    // The peer is the keepalived node's own address, of a watched VIP's
    // family.
    assert_eq!(
        only(&format!(
            "{WATCH_FENCE}\n[[fence]]\npeer = \"192.0.2.3\"\nagent = \"fence_ipmilan\"\n"
        )),
        "t.toml:12:8: fence[0].peer: 192.0.2.3 is watch[0]'s VIP; name the keepalived peer's own address, which does not move"
    );
    assert_eq!(
        only(&format!(
            "{WATCH_FENCE}\n[[fence]]\npeer = \"2001:db8::6\"\nagent = \"fence_ipmilan\"\n"
        )),
        "t.toml:12:8: fence[0].peer: 2001:db8::6 is IPv6 but every watched VIP is IPv4: beside keepalived a peer is fenced for holding a watched VIP, and its MAC is asked for on that VIP's interface"
    );
    assert_eq!(
        only(&format!(
            "{}\n[[fence]]\npeer = \"192.0.2.6\"\nagent = \"fence_ipmilan\"\n",
            WATCH_FENCE.replace("192.0.2.254", "2001:db8::fe")
        )),
        "t.toml:9:15: arbiter.references[0]: 2001:db8::fe is IPv6 but every watched VIP is IPv4: echoes leave from this node's own IPv6 address on a watched VIP's interface"
    );
}
