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
            text.replace(
                "/usr/local/bin/splitguard",
                env!("CARGO_BIN_EXE_splitguard"),
            ),
        )
        .expect("write");
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
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
