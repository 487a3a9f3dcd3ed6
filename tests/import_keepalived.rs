//! `splitguard import-keepalived FILE` end to end: the tutorial's keepalived configs
//! (checked to be real keepalived syntax with keepalived 2.2.7's `--config-test`), a
//! config split over includes, one full of what is not carried, and broken ones. The
//! TOML on stdout must parse with `splitguard_node::config::parse`, pass `check-config`,
//! and mean what the hand-written contrib examples mean; warnings go to stderr as
//! `FILE:LINE: keyword: why`. A generated 255-instance keepalived.conf (issue:
//! 255 VRIDs on a node) imports to 255 instances that validate, quickly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use splitguard_node::config::{self, Config};

const DIR: &str = "tests/fixtures/import";

fn splitguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_splitguard"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixture(name: &str) -> String {
    format!("{DIR}/{name}")
}

/// Runs the import; on success, the config read back from stdout and stderr's lines.
fn import_ok(name: &str) -> (Config, String, Vec<String>) {
    let file = fixture(name);
    let out = splitguard(&["import-keepalived", &file]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{file}: stderr:\n{stderr}");
    let config = config::parse(&stdout, "stdout")
        .unwrap_or_else(|e| panic!("{file}: stdout does not parse:\n{e}\n{stdout}"));
    assert!(
        stdout.starts_with(&format!(
            "# converted from {file} by splitguard import-keepalived\n"
        )),
        "{stdout}"
    );
    check_config_accepts(name, &stdout);
    (config, stdout, stderr.lines().map(str::to_owned).collect())
}

/// Writes `toml` to a file and runs `splitguard check-config` on it.
fn check_config_accepts(name: &str, toml: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("import_keepalived");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{}.toml", name.replace('/', "_")));
    std::fs::write(&path, toml).expect("write the TOML");
    // As it would be installed: it may hold auth_pass.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let out = splitguard(&["check-config", "-c", path.to_str().expect("utf-8")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "check-config refuses the import of {name}:\n{}\n{toml}",
        text(&out.stderr)
    );
}

fn example(name: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/examples")
        .join(name);
    config::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The VRRP meaning of each instance: what must match the hand-written examples.
fn vrrp_view(config: &Config) -> Vec<String> {
    config
        .instances
        .iter()
        .map(|i| {
            format!(
                "{} {} vrid {} prio {} every {:?} v{} preempt {} auth {:?} vips {:?} label {:?} peers {:?}",
                i.name,
                i.interface,
                i.vrid,
                i.priority,
                i.advert_interval,
                i.version.number(),
                i.preempt,
                i.auth_pass.as_ref().map(|s| s.expose().to_owned()),
                i.vips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                i.vip_label,
                i.unicast_peers,
            )
        })
        .collect()
}

/// keepalived 2.2.7 itself accepts the fixture. `--config-test` exits 0 even for a
/// file that does not exist (it only logs "Config files missing"), so stderr must be
/// empty too.
fn keepalived_accepts(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR).join(name);
    assert!(path.is_file(), "{}", path.display());
    let out = Command::new("keepalived")
        .arg("--config-test")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("keepalived is installed (contrib/test.sh installs it)");
    assert_eq!(
        (
            out.status.code(),
            text(&out.stderr).as_str(),
            text(&out.stdout).as_str()
        ),
        (Some(0), "", ""),
        "keepalived --config-test -f {}",
        path.display()
    );
}

#[test]
fn the_tutorial_fixtures_are_valid_keepalived_configs() {
    for name in [
        "lb01.conf",
        "lb02.conf",
        "dual-master-lb01.conf",
        "dual-master-lb02.conf",
    ] {
        keepalived_accepts(name);
    }
}

#[test]
fn the_tutorial_pair_converts_to_the_contrib_examples() {
    for (conf, toml, node) in [
        ("lb01.conf", "lb01.toml", "lb01"),
        ("lb02.conf", "lb02.toml", "lb02"),
    ] {
        let (config, _, warnings) = import_ok(conf);
        assert_eq!(config.node, node);
        assert_eq!(
            vrrp_view(&config),
            vrrp_view(&example(toml)),
            "{conf} vs {toml}"
        );
        if node == "lb01" {
            assert_eq!(
                warnings,
                [format!(
                    "{DIR}/lb01.conf:7: state: MASTER: not carried: splitguard has no initial state; every node starts as BACKUP and the highest priority wins the election (this one has 150)"
                )]
            );
        } else {
            assert!(
                warnings.is_empty(),
                "state BACKUP is splitguard's start: {warnings:?}"
            );
        }
    }
}

#[test]
fn the_dual_master_pair_converts_to_the_contrib_examples() {
    for node in ["lb01", "lb02"] {
        let (config, _, warnings) = import_ok(&format!("dual-master-{node}.conf"));
        assert_eq!(config.node, node);
        let names: Vec<_> = config.instances.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["VI_1", "VI_2"], "instance order is kept");
        assert_eq!(
            vrrp_view(&config),
            vrrp_view(&example(&format!("dual-master-{node}.toml")))
        );
        let master_line = if node == "lb01" { 8 } else { 23 };
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!(
                "{DIR}/dual-master-{node}.conf:{master_line}: state: MASTER: not carried"
            )),
            "{warnings:?}"
        );
    }
}

#[test]
fn includes_are_read_relative_to_the_including_file() {
    let (config, _, warnings) = import_ok("includes/keepalived.conf");
    let names: Vec<_> = config.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["VI_1", "VI_2"]);
    assert_eq!(config.instances[0].track_scripts, ["check_web"]);
    assert_eq!(config.track_scripts[0].command, ["/bin/pidof", "nginx"]);
    assert_eq!(config.track_scripts[0].rise, 2);
    assert_eq!(
        warnings,
        [format!(
            "{DIR}/includes/keepalived.conf:9: include: optional.d/*.conf: matches no file; nothing included (keepalived reports the files missing and goes on too)"
        )]
    );
}

#[test]
fn what_is_not_carried_is_listed_on_stderr_with_lines() {
    let (config, stdout, warnings) = import_ok("unsupported.conf");
    let f = fixture("unsupported.conf");
    let expected = [
        format!(
            "{f}:3: notification_email: not carried: splitguard alerts through [[channel]] sections"
        ),
        format!("{f}:7: smtp_server: not carried:"),
        format!("{f}:10: vrrp_strict: not carried: splitguard has no strict mode"),
        format!("{f}:11: enable_script_security: not carried:"),
        format!("{f}:18: user: not carried: splitguard runs scripts as the user it runs as"),
        format!(
            "{f}:22: script: \"ip a | grep 10.0.0.3\" uses shell syntax (`|`); converted to [\"/bin/sh\", \"-c\", …]"
        ),
        format!("{f}:26: vrrp_sync_group: not carried: splitguard has no sync groups"),
        format!("{f}:33: state: MASTER: not carried:"),
        format!("{f}:35: use_vmac: not carried:"),
        format!("{f}:39: garp_master_delay: not carried:"),
        format!("{f}:41: auth_type: AH: not carried: splitguard supports PASS only"),
        format!(
            "{f}:45: virtual_ipaddress: 10.0.0.3: no prefix length; keepalived adds it as /32, kept as 10.0.0.3/32"
        ),
        format!(
            "{f}:46: virtual_ipaddress: 10.0.0.4/24: dev eth1: keepalived adds this VIP on eth1; splitguard adds every VIP on the instance's interface eth0"
        ),
        format!(
            "{f}:46: virtual_ipaddress: 10.0.0.4/24: label eth1:1: splitguard has one vip_label"
        ),
        format!("{f}:52: track_file: not carried:"),
        format!("{f}:55: smtp_alert: not carried:"),
        format!("{f}:66: virtual_server: not carried: LVS is outside splitguard"),
    ];
    for e in &expected {
        assert!(
            warnings.iter().any(|w| w.starts_with(e.as_str())),
            "missing {e:?} in:\n{}",
            warnings.join("\n")
        );
    }
    assert_eq!(
        warnings.len(),
        expected.len() + 2,
        "{}",
        warnings.join("\n")
    ); // + notification_email_from, smtp_connect_timeout
    let mut lines: Vec<u32> = warnings
        .iter()
        .filter_map(|w| {
            w.strip_prefix(&format!("{f}:"))?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(lines.len(), warnings.len(), "every warning has FILE:LINE");
    let sorted = {
        lines.sort_unstable();
        lines.clone()
    };
    assert_eq!(lines, sorted, "in file order");
    // The LVS block's insides are skipped with it, not warned one by one.
    assert!(
        !warnings
            .iter()
            .any(|w| w.contains("real_server") || w.contains("lb_algo"))
    );
    // Warnings never reach stdout.
    assert!(!stdout.contains("not carried"), "{stdout}");

    let i = &config.instances[0];
    assert!(!i.preempt);
    assert!(i.auth_pass.is_none(), "AH is not carried");
    assert_eq!(
        i.vips.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["10.0.0.3/32", "10.0.0.4/24"]
    );
    assert_eq!(
        i.unicast_peers,
        ["10.0.0.6".parse::<std::net::IpAddr>().expect("ip")]
    );
    assert_eq!(
        i.notify_master.as_deref(),
        Some(&["/etc/keepalived/notify.sh".to_owned(), "master".to_owned()][..])
    );
    let commands: Vec<_> = config
        .track_scripts
        .iter()
        .map(|t| t.command.join(" "))
        .collect();
    assert_eq!(
        commands,
        [
            "/usr/bin/killall -0 nginx",
            "/bin/sh -c ip a | grep 10.0.0.3"
        ]
    );
}

#[test]
fn broken_input_exits_2_with_file_and_line() {
    let b = |n: &str| fixture(&format!("broken/{n}"));
    for (name, expected) in [
        (
            "unbalanced.conf",
            format!(
                "{}:5: vrrp_instance: its `{{` is never closed (missing `}}`)",
                b("unbalanced.conf")
            ),
        ),
        (
            "extra-close.conf",
            format!("{}:4: `}}` without a matching `{{`", b("extra-close.conf")),
        ),
        (
            "missing-value.conf",
            format!("{}:8: priority: missing value", b("missing-value.conf")),
        ),
        (
            "include-missing.conf",
            format!(
                "{}:4: include: does-not-exist.conf: no such file",
                b("include-missing.conf")
            ),
        ),
        (
            "include-cycle.conf",
            format!(
                "{}:2: include: {} is already being read (include cycle: {} -> {} -> {})",
                b("include-cycle-back.conf"),
                b("include-cycle.conf"),
                b("include-cycle.conf"),
                b("include-cycle-back.conf"),
                b("include-cycle.conf"),
            ),
        ),
        (
            "no-vips.conf",
            format!(
                "{}:6: vrrp_instance: splitguard rejects the converted config: instance[0].vips: at least one VIP is required",
                b("no-vips.conf")
            ),
        ),
    ] {
        let out = splitguard(&["import-keepalived", &b(name)]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}: nothing on stdout");
        assert!(
            stderr.lines().any(|l| l == expected),
            "{name}: expected the line\n{expected}\nin:\n{stderr}"
        );
    }
}

#[test]
fn a_missing_file_exits_2_and_is_named() {
    let out = splitguard(&["import-keepalived", "/nonexistent/keepalived.conf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).starts_with("/nonexistent/keepalived.conf: cannot read:"),
        "{}",
        text(&out.stderr)
    );
}

/// A keepalived.conf with every VRID, 1 to 255: VRRPv3 at 100 ms, one VIP each
/// (TEST-NET-1 above the nodes' .5 and .6 for the first 200, then TEST-NET-2;
/// config text only), the odd ones unicast to the peer.
fn keepalived_255() -> String {
    let mut out = String::from("global_defs {\n  router_id lb01\n  vrrp_version 3\n}\n");
    for k in 1..=255 {
        let vip = if k <= 200 {
            format!("192.0.2.{}", k + 6)
        } else {
            format!("198.51.100.{}", k - 200)
        };
        let unicast = if k % 2 == 1 {
            "  unicast_src_ip 192.0.2.5\n  unicast_peer {\n    192.0.2.6\n  }\n"
        } else {
            ""
        };
        out.push_str(&format!(
            "vrrp_instance VI_{k} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {k}\n  \
             priority 150\n  advert_int 0.1\n{unicast}  virtual_ipaddress {{\n    {vip}/24 dev eth0\n  }}\n}}\n"
        ));
    }
    out
}

#[test]
fn a_255_instance_keepalived_conf_imports_and_validates() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("import_keepalived");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let conf = dir.join("keepalived-255.conf");
    std::fs::write(&conf, keepalived_255()).expect("write");
    // It is keepalived syntax (see keepalived_accepts).
    let test = Command::new("keepalived")
        .arg("--config-test")
        .arg("-f")
        .arg(&conf)
        .output()
        .expect("keepalived is installed (contrib/test.sh installs it)");
    assert_eq!(
        (test.status.code(), text(&test.stderr).as_str()),
        (Some(0), ""),
        "keepalived --config-test"
    );

    let started = Instant::now();
    let out = splitguard(&["import-keepalived", conf.to_str().expect("utf-8")]);
    let took = started.elapsed();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A debug build; the release build takes milliseconds (BENCHMARKS.md).
    assert!(took < Duration::from_secs(5), "the import took {took:?}");
    let config = config::parse(&stdout, "stdout").unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    assert_eq!(config.instances.len(), 255);
    for (k, i) in config.instances.iter().enumerate() {
        assert_eq!(usize::from(i.vrid), k + 1, "{}", i.name);
        assert_eq!(i.name, format!("VI_{}", k + 1));
        assert_eq!(i.advert_interval, Duration::from_millis(100), "{}", i.name);
        assert_eq!(i.unicast_peers.len(), (k + 1) % 2, "{}", i.name);
    }
    assert_eq!(
        config.instances[254].vips[0].to_string(),
        "198.51.100.55/24"
    );
    check_config_accepts("keepalived-255", &stdout);
}
