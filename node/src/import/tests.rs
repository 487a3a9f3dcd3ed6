//! Tests of the whole import pipeline (lexer, parser, converter, validation) on
//! in-memory files: one per carried construct and one per warning, a round trip of
//! the TOML through `config::parse`, and a property test that no input panics.

use std::net::IpAddr;
use std::time::Duration;

use proptest::prelude::*;

use super::parser::tests::MemLoader;
use super::*;
use crate::config::{self, Config};

const FILE: &str = "/k/keepalived.conf";

fn import_files(files: &[(&str, &str)]) -> Imported {
    let mut loader = MemLoader::with(files);
    let root = loader.source(files[0].0);
    let options = Options {
        origin: files[0].0.to_owned(),
        hostname: Some("host1".to_owned()),
    };
    import(&root, &mut loader, &options)
}

fn import_text(text: &str) -> Imported {
    import_files(&[(FILE, text)])
}

/// Converts `text`, which must succeed; the config as splitguard reads it back, and
/// the warnings as printed.
fn convert_ok(text: &str) -> (Config, String, Vec<String>) {
    let imported = import_text(text);
    let warnings: Vec<String> = imported.warnings.iter().map(ToString::to_string).collect();
    let toml = match imported.result {
        Ok(toml) => toml,
        Err(e) => panic!(
            "conversion failed:\n{e}\nwarnings:\n{}",
            warnings.join("\n")
        ),
    };
    let config = config::parse(&toml, "out.toml")
        .unwrap_or_else(|e| panic!("output does not parse:\n{e}\n{toml}"));
    (config, toml, warnings)
}

fn convert_err(text: &str) -> (String, Vec<String>) {
    let imported = import_text(text);
    let warnings = imported.warnings.iter().map(ToString::to_string).collect();
    match imported.result {
        Ok(toml) => panic!("expected an error, got:\n{toml}"),
        Err(e) => (e.to_string(), warnings),
    }
}

/// An instance with everything required, plus `extra` lines.
fn instance(extra: &str) -> String {
    format!(
        "global_defs {{\n  router_id lb01\n}}\nvrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress {{\n    10.0.0.3/24\n  }}\n{extra}}}\n"
    )
}

/// The line `extra`'s first line lands on in [`instance`].
const EXTRA_LINE: u32 = 10;

fn has(warnings: &[String], wanted: &str) -> bool {
    warnings.iter().any(|w| w.contains(wanted))
}

#[track_caller]
fn assert_warned(warnings: &[String], wanted: &str) {
    assert!(
        has(warnings, wanted),
        "no warning containing {wanted:?} in:\n{}",
        warnings.join("\n")
    );
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP")
}

// ---------------------------------------------------------------- carried

#[test]
fn the_tutorial_lb01_round_trips() {
    let (config, toml, warnings) = convert_ok(
        "! Configuration File for keepalived\nglobal_defs {\n   router_id lb01\n}\n\nvrrp_instance VI_1 {\n    state MASTER\n    interface eth0\n    virtual_router_id 51\n    priority 150\n    advert_int 1\n    authentication {\n        auth_type PASS\n        auth_pass 1111\n    }\n    virtual_ipaddress {\n        10.0.0.3/24 dev eth0 label eth0:1\n    }\n}\n",
    );
    assert!(
        toml.starts_with("# converted from /k/keepalived.conf by splitguard import-keepalived\n")
    );
    assert_eq!(config.node, "lb01");
    let i = &config.instances[0];
    assert_eq!(i.name, "VI_1");
    assert_eq!(i.interface, "eth0");
    assert_eq!(i.vrid, 51);
    assert_eq!(i.priority, 150);
    assert_eq!(i.advert_interval, Duration::from_secs(1));
    assert_eq!(i.version.number(), 2);
    assert!(i.preempt);
    assert_eq!(i.auth_pass.as_ref().map(|s| s.expose()), Some("1111"));
    assert_eq!(
        i.vips.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["10.0.0.3/24"]
    );
    assert_eq!(i.vip_label.as_deref(), Some("eth0:1"));
    assert!(i.unicast_peers.is_empty());
    // Defaults splitguard fills in are left out of the file.
    assert!(!toml.contains("state_dir") && !toml.contains("control_socket"));
    assert_eq!(
        warnings,
        [
            "/k/keepalived.conf:7: state: MASTER: not carried: splitguard has no initial state; every node starts as BACKUP and the highest priority wins the election (this one has 150)"
        ]
    );
}

#[test]
fn state_backup_is_no_warning() {
    let (_, _, warnings) = convert_ok(&instance("  state BACKUP\n"));
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn keepalived_defaults_are_written_out() {
    let (config, toml, _) = convert_ok(&instance(""));
    let i = &config.instances[0];
    assert_eq!(i.priority, 100);
    assert_eq!(i.advert_interval, Duration::from_secs(1));
    assert_eq!(i.version.number(), 2);
    assert!(i.preempt);
    assert!(i.auth_pass.is_none());
    assert!(toml.contains("priority = 100\n"));
}

#[test]
fn instances_keep_their_order() {
    let text = "global_defs { router_id lb01 }\n\
        vrrp_instance B { interface eth0\n virtual_router_id 2\n virtual_ipaddress { 10.0.0.4/24 } }\n\
        vrrp_instance A { interface eth0\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.3/24 } }\n";
    let (config, _, _) = convert_ok(text);
    let names: Vec<_> = config.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["B", "A"]);
}

#[test]
fn version_from_instance_or_global_and_v3_intervals() {
    let (config, _, _) = convert_ok(&instance("  version 3\n  advert_int 0.5\n"));
    let i = &config.instances[0];
    assert_eq!(i.version.number(), 3);
    assert_eq!(i.advert_interval, Duration::from_millis(500));
    let text = instance("").replace("router_id lb01", "router_id lb01\n  vrrp_version 3");
    let (config, _, _) = convert_ok(&text);
    assert_eq!(config.instances[0].version.number(), 3);
}

#[test]
fn ipv6_vips_use_v3() {
    let text = instance("").replace("10.0.0.3/24", "2001:db8::3/64");
    let (config, _, warnings) = convert_ok(&text);
    assert_eq!(config.instances[0].version.number(), 3);
    assert!(warnings.is_empty(), "{warnings:?}");
    let text = instance("  version 2\n").replace("10.0.0.3/24", "2001:db8::3/64");
    let (config, _, warnings) = convert_ok(&text);
    assert_eq!(config.instances[0].version.number(), 3);
    assert_warned(
        &warnings,
        &format!("{FILE}:{EXTRA_LINE}: version: 2: IPv6 VIPs need VRRPv3"),
    );
}

#[test]
fn preemption() {
    let (config, _, _) = convert_ok(&instance("  state BACKUP\n  nopreempt\n"));
    assert!(!config.instances[0].preempt);
    let (config, _, _) = convert_ok(&instance("  preempt_delay 30\n"));
    assert!(config.instances[0].preempt);
    assert_eq!(config.instances[0].preempt_delay, Duration::from_secs(30));
    let (config, _, _) = convert_ok(&instance("  preempt_delay 2.5\n"));
    assert_eq!(
        config.instances[0].preempt_delay,
        Duration::from_millis(2500)
    );
}

#[test]
fn unicast_source_and_peers() {
    let (config, _, warnings) = convert_ok(&instance(
        "  unicast_src_ip 10.0.0.5\n  unicast_peer {\n    10.0.0.6\n    10.0.0.7\n  }\n",
    ));
    let i = &config.instances[0];
    assert_eq!(i.unicast_src_ip, Some(ip("10.0.0.5")));
    assert_eq!(i.unicast_peers, [ip("10.0.0.6"), ip("10.0.0.7")]);
    assert!(warnings.is_empty(), "{warnings:?}");
    // keepalived's mcast_src_ip is the same setting.
    let (config, _, _) = convert_ok(&instance("  mcast_src_ip 10.0.0.5\n"));
    assert_eq!(config.instances[0].unicast_src_ip, Some(ip("10.0.0.5")));
}

#[test]
fn unicast_peer_ttl_options_are_warned() {
    let (_, _, warnings) = convert_ok(&instance(
        "  unicast_peer {\n    10.0.0.6 min_ttl 254\n  }\n",
    ));
    assert_warned(
        &warnings,
        &format!(
            "{FILE}:{}: unicast_peer: 10.0.0.6: min_ttl 254: not carried",
            EXTRA_LINE + 1
        ),
    );
}

#[test]
fn vip_without_prefix_is_kept_as_32_with_a_warning() {
    let (config, _, warnings) = convert_ok(&instance("").replace("10.0.0.3/24", "10.0.0.3"));
    assert_eq!(config.instances[0].vips[0].prefix_len, 32);
    assert_warned(
        &warnings,
        &format!(
            "{FILE}:8: virtual_ipaddress: 10.0.0.3: no prefix length; keepalived adds it as /32, kept as 10.0.0.3/32"
        ),
    );
}

#[test]
fn vip_on_another_device_is_warned() {
    let text = instance("").replace("10.0.0.3/24", "10.0.0.3/24 dev eth1");
    let (_, _, warnings) = convert_ok(&text);
    assert_warned(
        &warnings,
        &format!(
            "{FILE}:8: virtual_ipaddress: 10.0.0.3/24: dev eth1: keepalived adds this VIP on eth1; splitguard adds every VIP on the instance's interface eth0"
        ),
    );
    let text = instance("").replace("10.0.0.3/24", "10.0.0.3/24 dev eth0");
    assert!(convert_ok(&text).2.is_empty());
}

#[test]
fn differing_labels_are_warned_and_the_first_is_used() {
    let text = instance("").replace(
        "10.0.0.3/24",
        "10.0.0.3/24 label eth0:1\n    10.0.0.4/24 label eth0:2\n    10.0.0.5/24",
    );
    let (config, _, warnings) = convert_ok(&text);
    assert_eq!(config.instances[0].vip_label.as_deref(), Some("eth0:1"));
    assert_eq!(config.instances[0].vips.len(), 3);
    assert_warned(
        &warnings,
        &format!(
            "{FILE}:9: virtual_ipaddress: 10.0.0.4/24: label eth0:2: splitguard has one vip_label for all of an instance's VIPs; it gets eth0:1"
        ),
    );
    assert_warned(
        &warnings,
        &format!("{FILE}:10: virtual_ipaddress: 10.0.0.5/24: no label:"),
    );
}

#[test]
fn a_label_for_another_interface_is_not_carried() {
    let text = instance("").replace("10.0.0.3/24", "10.0.0.3/24 dev eth1 label eth1:1");
    let (config, _, warnings) = convert_ok(&text);
    assert_eq!(config.instances[0].vip_label, None);
    assert_warned(
        &warnings,
        "label eth1:1: not carried: splitguard adds VIPs on eth0",
    );
}

#[test]
fn vip_options_are_warned() {
    let text = instance("").replace(
        "10.0.0.3/24",
        "10.0.0.3/24 brd 10.0.0.255 scope global no_track",
    );
    let (_, _, warnings) = convert_ok(&text);
    assert_warned(&warnings, "10.0.0.3/24: brd 10.0.0.255: not carried");
    assert_warned(&warnings, "10.0.0.3/24: scope global: not carried");
    assert_warned(&warnings, "10.0.0.3/24: no_track: not carried");
}

#[test]
fn a_bad_vip_is_an_error() {
    let (err, _) = convert_err(&instance("").replace("10.0.0.3/24", "10.0.0.300/24"));
    assert!(
        err.starts_with(&format!("{FILE}:8: virtual_ipaddress: 10.0.0.300/24:")),
        "{err}"
    );
}

#[test]
fn authentication() {
    let auth = |body: &str| instance(&format!("  authentication {{\n{body}  }}\n"));
    let (config, _, warnings) = convert_ok(&auth("    auth_type PASS\n    auth_pass secret\n"));
    assert_eq!(
        config.instances[0].auth_pass.as_ref().map(|s| s.expose()),
        Some("secret")
    );
    assert!(warnings.is_empty());

    let (config, _, warnings) = convert_ok(&auth("    auth_type PASS\n    auth_pass 1234567890\n"));
    assert_eq!(
        config.instances[0].auth_pass.as_ref().map(|s| s.expose()),
        Some("12345678")
    );
    assert_warned(
        &warnings,
        &format!(
            "{FILE}:{}: auth_pass: longer than 8 characters; keepalived uses the first 8",
            EXTRA_LINE + 2
        ),
    );

    let (config, _, warnings) = convert_ok(&auth("    auth_type AH\n    auth_pass 1111\n"));
    assert!(config.instances[0].auth_pass.is_none());
    assert_warned(
        &warnings,
        &format!(
            "{FILE}:{}: auth_type: AH: not carried: splitguard supports PASS only",
            EXTRA_LINE + 1
        ),
    );

    let text = auth("    auth_type PASS\n    auth_pass 1111\n")
        .replace("  interface eth0", "  version 3\n  interface eth0");
    let (config, _, warnings) = convert_ok(&text);
    assert!(config.instances[0].auth_pass.is_none());
    assert_warned(
        &warnings,
        "authentication: not carried: VRRPv3 has no authentication",
    );
}

#[test]
fn track_scripts_and_their_weights() {
    let text = format!(
        "vrrp_script check_web {{\n  script \"/bin/pidof nginx\"\n  interval 2\n  timeout 1\n  weight -20\n  rise 2\n  fall 3\n}}\n{}",
        instance("  track_script {\n    check_web\n  }\n")
    );
    let (config, _, warnings) = convert_ok(&text);
    assert!(warnings.is_empty(), "{warnings:?}");
    let t = &config.track_scripts[0];
    assert_eq!(t.name, "check_web");
    assert_eq!(t.command, ["/bin/pidof", "nginx"]);
    assert_eq!(t.interval, Duration::from_secs(2));
    assert_eq!(t.timeout, Duration::from_secs(1));
    assert_eq!((t.weight, t.rise, t.fall), (-20, 2, 3));
    assert_eq!(config.instances[0].track_scripts, ["check_web"]);
}

#[test]
fn a_weight_override_gets_its_own_copy() {
    let text = format!(
        "vrrp_script chk {{\n  script \"/bin/true\"\n}}\n{}",
        instance("  track_script {\n    chk weight 10\n  }\n")
    );
    let (config, _, warnings) = convert_ok(&text);
    assert_eq!(config.track_scripts.len(), 1);
    assert_eq!(config.track_scripts[0].name, "chk_w10");
    assert_eq!(config.track_scripts[0].weight, 10);
    assert_eq!(
        config.track_scripts[0].interval,
        Duration::from_secs(1),
        "keepalived's default"
    );
    assert_eq!(config.instances[0].track_scripts, ["chk_w10"]);
    assert_warned(
        &warnings,
        "track_script: chk: weight 10 overrides the script's 0",
    );
}

#[test]
fn script_problems_are_warned() {
    let text = format!(
        "vrrp_script chk {{\n  script \"/bin/check arg\" nobody\n  interval 2\n  timeout 5\n  weight 10 reverse\n  init_fail\n}}\nvrrp_script unused {{\n  script /bin/true\n}}\n{}",
        instance("  track_script {\n    chk\n    missing\n  }\n")
    );
    let (config, _, warnings) = convert_ok(&text);
    assert_eq!(
        config.track_scripts.len(),
        1,
        "the unused script is not carried"
    );
    assert_eq!(config.track_scripts[0].timeout, Duration::from_secs(2));
    assert_warned(
        &warnings,
        "/k/keepalived.conf:2: script: runs as nobody in keepalived; not carried",
    );
    assert_warned(
        &warnings,
        "/k/keepalived.conf:4: timeout: timeout 5s is longer than interval 2s",
    );
    assert_warned(
        &warnings,
        "/k/keepalived.conf:5: weight: reverse: not carried",
    );
    assert_warned(&warnings, "/k/keepalived.conf:6: init_fail: not carried");
    assert_warned(
        &warnings,
        "/k/keepalived.conf:8: vrrp_script: unused: not tracked by any vrrp_instance; not carried",
    );
    assert_warned(
        &warnings,
        "track_script: missing: no vrrp_script has this name; not carried",
    );
}

#[test]
fn shell_scripts_run_under_sh_with_a_warning() {
    let text = format!(
        "vrrp_script chk_vip {{\n  script \"ip a | grep 10.0.0.3\"\n}}\n{}",
        instance("  track_script {\n    chk_vip\n  }\n")
    );
    let (config, _, warnings) = convert_ok(&text);
    assert_eq!(
        config.track_scripts[0].command,
        ["/bin/sh", "-c", "ip a | grep 10.0.0.3"]
    );
    assert_warned(
        &warnings,
        "/k/keepalived.conf:2: script: \"ip a | grep 10.0.0.3\" uses shell syntax (`|`); converted to [\"/bin/sh\", \"-c\", …]",
    );
    // A quoted `|` is an argument, not a pipe.
    let text = text.replace("\"ip a | grep 10.0.0.3\"", r#""/bin/grep -q 'a|b' /etc/x""#);
    let (config, _, warnings) = convert_ok(&text);
    assert_eq!(
        config.track_scripts[0].command,
        ["/bin/grep", "-q", "a|b", "/etc/x"]
    );
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn track_interfaces() {
    let (config, _, warnings) = convert_ok(&instance(
        "  track_interface {\n    eth1\n    eth2 weight -10\n  }\n",
    ));
    assert_eq!(config.instances[0].track_interfaces, ["eth1", "eth2"]);
    assert_warned(
        &warnings,
        &format!(
            "{FILE}:{}: track_interface: eth2: weight -10: not carried: splitguard puts the instance in FAULT",
            EXTRA_LINE + 2
        ),
    );
}

#[test]
fn notify_scripts() {
    let (config, _, warnings) = convert_ok(&instance(
        "  notify_master \"/etc/keepalived/to.sh master\"\n  notify_backup /etc/keepalived/backup.sh\n  notify_fault \"/bin/logger fault\"\n  notify_stop /bin/stop.sh\n  notify \"/usr/local/bin/notify.sh\" root\n",
    ));
    let i = &config.instances[0];
    let argv = |a: &Option<Vec<String>>| a.clone().unwrap_or_default();
    assert_eq!(argv(&i.notify_master), ["/etc/keepalived/to.sh", "master"]);
    assert_eq!(argv(&i.notify_backup), ["/etc/keepalived/backup.sh"]);
    assert_eq!(argv(&i.notify_fault), ["/bin/logger", "fault"]);
    assert_eq!(argv(&i.notify_stop), ["/bin/stop.sh"]);
    assert_eq!(argv(&i.notify), ["/usr/local/bin/notify.sh"]);
    assert_warned(
        &warnings,
        &format!(
            "{FILE}:{}: notify: runs as root in keepalived",
            EXTRA_LINE + 4
        ),
    );
}

#[test]
fn garp_settings() {
    let text =
        instance("  garp_master_repeat 3\n  garp_master_refresh 30\n  garp_master_delay 5\n");
    let (config, _, warnings) = convert_ok(&text);
    assert_eq!(config.instances[0].garp_repeat, 3);
    assert_eq!(config.instances[0].garp_refresh, Duration::from_secs(30));
    assert_warned(
        &warnings,
        &format!(
            "{FILE}:{}: garp_master_delay: not carried: splitguard sends its gratuitous ARPs at once",
            EXTRA_LINE + 2
        ),
    );
}

#[test]
fn no_router_id_uses_the_host_name() {
    let text = instance("").replace("  router_id lb01\n", "");
    let (config, _, warnings) = convert_ok(&text);
    assert_eq!(config.node, "host1");
    assert_warned(
        &warnings,
        "/k/keepalived.conf: router_id: none in global_defs; keepalived uses the host name, so node = \"host1\"",
    );
}

// ---------------------------------------------------------------- not carried

#[test]
fn unsupported_keywords_are_warned_with_their_lines() {
    let text = "global_defs {\n  router_id lb01\n  notification_email {\n    ops@example.com\n  }\n  smtp_server 10.0.0.1\n  vrrp_strict\n  enable_script_security\n  lvs_id lb\n}\nvrrp_sync_group G {\n  group {\n    VI_1\n  }\n}\nvirtual_server 10.0.0.3 80 {\n  real_server 10.0.0.7 80 {\n    weight 1\n  }\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress {\n    10.0.0.3/24\n  }\n  use_vmac\n  track_file {\n    f\n  }\n  track_process {\n    p\n  }\n  smtp_alert\n  frobnicate 1\n  virtual_ipaddress_excluded {\n    10.0.0.9/24\n  }\n}\nbfd_instance b {\n}\n";
    let (_, _, warnings) = convert_ok(text);
    let expected = [
        "/k/keepalived.conf:3: notification_email: not carried: splitguard alerts through [[channel]] sections",
        "/k/keepalived.conf:6: smtp_server: not carried: splitguard alerts",
        "/k/keepalived.conf:7: vrrp_strict: not carried: splitguard has no strict mode",
        "/k/keepalived.conf:8: enable_script_security: not carried: splitguard runs scripts as the user it runs as",
        "/k/keepalived.conf:9: lvs_id: not carried: LVS is outside splitguard",
        "/k/keepalived.conf:11: vrrp_sync_group: not carried: splitguard has no sync groups",
        "/k/keepalived.conf:16: virtual_server: not carried: LVS is outside splitguard",
        "/k/keepalived.conf:27: use_vmac: not carried: splitguard uses the interface's own MAC",
        "/k/keepalived.conf:28: track_file: not carried: splitguard tracks scripts and interfaces only",
        "/k/keepalived.conf:31: track_process: not carried: splitguard tracks scripts and interfaces only",
        "/k/keepalived.conf:34: smtp_alert: not carried: splitguard alerts",
        "/k/keepalived.conf:35: frobnicate: not carried: splitguard has no equivalent",
        "/k/keepalived.conf:36: virtual_ipaddress_excluded: not carried",
        "/k/keepalived.conf:40: bfd_instance: not carried",
    ];
    for e in expected {
        assert_warned(&warnings, e);
    }
    // A skipped block's contents are not warned about one by one.
    assert!(!has(&warnings, "real_server"), "{warnings:?}");
    assert!(!has(&warnings, ":18: weight"), "{warnings:?}");
    assert_eq!(warnings.len(), expected.len(), "{}", warnings.join("\n"));
}

#[test]
fn definitions_and_conditional_lines_are_warned() {
    let text = format!("$IF=eth0\n@lb02 priority 1\n{}", instance(""));
    let (_, _, warnings) = convert_ok(&text);
    assert_warned(
        &warnings,
        "/k/keepalived.conf:1: $IF=eth0: not carried: keepalived parameter definitions",
    );
    assert_warned(
        &warnings,
        "/k/keepalived.conf:2: @lb02: not carried: lines conditional",
    );
}

// ---------------------------------------------------------------- errors

#[test]
fn missing_values_are_errors() {
    let (err, _) = convert_err(&instance("  priority\n"));
    assert_eq!(err, format!("{FILE}:{EXTRA_LINE}: priority: missing value"));
    let (err, _) = convert_err(&instance("  priority high\n"));
    assert_eq!(
        err,
        format!("{FILE}:{EXTRA_LINE}: priority: \"high\" is not a whole number")
    );
    let (err, _) = convert_err(&instance("  advert_int fast\n"));
    assert!(
        err.contains("advert_int: \"fast\" is not a number of seconds"),
        "{err}"
    );
    let (err, _) = convert_err(&instance("").replace("  interface eth0\n", ""));
    assert_eq!(
        err,
        format!("{FILE}:4: vrrp_instance: VI_1: no interface (keepalived needs one too)")
    );
    let (err, _) = convert_err(&instance("").replace("  virtual_router_id 51\n", ""));
    assert!(err.contains("no virtual_router_id"), "{err}");
    let (err, _) = convert_err(&instance("  unicast_src_ip lb01\n"));
    assert!(
        err.contains("unicast_src_ip: \"lb01\" is not an IP address"),
        "{err}"
    );
}

#[test]
fn syntax_errors() {
    let (err, _) = convert_err("vrrp_instance VI_1 {\n  interface eth0\n");
    assert_eq!(
        err,
        "/k/keepalived.conf:1: vrrp_instance: its `{` is never closed (missing `}`)"
    );
    let (err, _) = convert_err("global_defs {\n}\n}\n");
    assert_eq!(err, "/k/keepalived.conf:3: `}` without a matching `{`");
    let (err, _) = convert_err("global_defs {\n router_id \"lb01\n}\n");
    assert_eq!(err, "/k/keepalived.conf:2: unterminated double quote");
}

#[test]
fn validation_failures_point_at_the_keepalived_lines() {
    let (err, _) =
        convert_err(&instance("").replace("virtual_router_id 51", "virtual_router_id 300"));
    assert_eq!(
        err,
        "/k/keepalived.conf:6: virtual_router_id: splitguard rejects the converted config: instance[0].vrid: VRID 300 is out of range; it must be between 1 and 255"
    );
    let text = instance("").replace("10.0.0.3/24", "10.0.0.3/24\n    10.0.0.3/24");
    let (err, _) = convert_err(&text);
    assert_eq!(
        err,
        "/k/keepalived.conf:9: virtual_ipaddress: splitguard rejects the converted config: instance[0].vips[1]: VIP 10.0.0.3 is already listed as vips[0]"
    );
    // keepalived accepts an instance without VIPs; splitguard does not.
    let text = "global_defs { router_id a }\nvrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n}\n";
    let (err, _) = convert_err(text);
    assert!(
        err.starts_with("/k/keepalived.conf:2: vrrp_instance: splitguard rejects the converted config: instance[0].vips: at least one VIP is required"),
        "{err}"
    );
}

#[test]
fn includes_are_followed() {
    let imported = import_files(&[
        (
            "/k/keepalived.conf",
            "global_defs {\n router_id lb01\n}\ninclude conf.d/*.conf\n",
        ),
        (
            "/k/conf.d/vi1.conf",
            "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n virtual_ipaddress { 10.0.0.3/24 }\n state MASTER\n}\n",
        ),
    ]);
    let toml = imported.result.expect("converts");
    let config = config::parse(&toml, "out").expect("parses");
    assert_eq!(config.instances[0].name, "VI_1");
    let warnings: Vec<String> = imported.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with("/k/conf.d/vi1.conf:5: state: MASTER"),
        "{warnings:?}"
    );
}

// ---------------------------------------------------------------- no panics

fn keepalived_ish() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("vrrp_instance".to_owned()),
        Just("vrrp_script".to_owned()),
        Just("global_defs".to_owned()),
        Just("virtual_ipaddress".to_owned()),
        Just("authentication".to_owned()),
        Just("track_script".to_owned()),
        Just("unicast_peer".to_owned()),
        Just("include".to_owned()),
        Just("script".to_owned()),
        Just("notify".to_owned()),
        Just("priority".to_owned()),
        Just("auth_type".to_owned()),
        Just("PASS".to_owned()),
        Just("weight".to_owned()),
        Just("10.0.0.3/24".to_owned()),
        Just("2001:db8::1".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("\n".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("\\".to_owned()),
        Just("#".to_owned()),
        Just("|".to_owned()),
        "[a-z0-9_./:-]{0,8}",
        any::<String>(),
    ];
    prop::collection::vec(word, 0..60).prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_input_panics(text in any::<String>()) {
        let _ = lexer::lex(&text);
        let _ = script::split(&text);
        let _ = import_files(&[(FILE, &text), ("/k/x", &text)]);
    }

    #[test]
    fn no_keepalived_like_input_panics(text in keepalived_ish()) {
        let _ = import_files(&[(FILE, &text), ("/k/10.0.0.3/24", "include keepalived.conf")]);
    }
}
