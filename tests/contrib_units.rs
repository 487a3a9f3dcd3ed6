//! The shipped systemd units pass `systemd-analyze verify` (pointed at this
//! build, since verify checks that ExecStart's binary exists). Needs systemd's
//! systemd-analyze (contrib/test.sh installs systemd).

use std::process::Command;

#[test]
fn systemd_units_verify() {
    let dir = std::env::temp_dir().join(format!("sg-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut paths = Vec::new();
    for unit in ["splitguard.service", "splitguard-watch.service"] {
        let text = std::fs::read_to_string(format!(
            "{}/contrib/systemd/{unit}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("unit");
        assert!(
            text.contains("Type=notify") && text.contains("WatchdogSec="),
            "{unit}"
        );
        let path = dir.join(unit);
        std::fs::write(
            &path,
            text.replace("/usr/bin/splitguard", env!("CARGO_BIN_EXE_splitguard")),
        )
        .expect("write");
        paths.push(path);
    }
    // Their Documentation= pages exist once installed (tests/deb_package.rs
    // verifies the installed units with them); not here.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .output()
        .expect("systemd-analyze runs (install systemd)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Zabbix 6.0 template parses (Debian's python3-yaml), uses only the keys
/// the shipped UserParameters define, and its triggers name the template.
#[test]
fn zabbix_template_matches_the_user_parameters() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/zabbix");
    let script = format!(
        r#"
import re, sys, yaml
t = yaml.safe_load(open("{dir}/template_splitguard.yaml"))["zabbix_export"]
assert t["version"] == "6.0", t["version"]
tpl = t["templates"][0]
params = re.findall(r"^UserParameter=([^\[,]+)", open("{dir}/userparameter_splitguard.conf").read(), re.M)
rule = tpl["discovery_rules"][0]
keys = [rule["key"]] + [p["key"] for p in rule["item_prototypes"]]
for k in keys:
    assert k.split("[")[0] in params, (k, params)
uuids = re.findall(r"uuid: ([0-9a-f]+)", open("{dir}/template_splitguard.yaml").read())
assert len(uuids) == len(set(uuids)) and all(len(u) == 32 for u in uuids), uuids
for p in rule["item_prototypes"]:
    for tr in p.get("trigger_prototypes", []):
        assert "/" + tpl["template"] + "/" + p["key"] in tr["expression"], tr
print("ok", len(keys))
"#
    );
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs (python3-yaml)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
