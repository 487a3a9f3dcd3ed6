//! The tutorial's keepalived configs in contrib/keepalived and their imported
//! TOML stay in step with `import-keepalived` (output and warnings byte for
//! byte), pass `check-config`, and the imported pair runs in a lab with one
//! owner. Needs root for the lab part.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/keepalived");
const CONFIGS: [&str; 4] = ["lb01", "lb02", "dual-master-lb01", "dual-master-lb02"];

fn import(name: &str) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_splitguard"))
        .current_dir(DIR)
        .args(["import-keepalived", &format!("{name}.conf")])
        .output()
        .expect("import runs");
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_conversions_match_the_importer_and_validate() {
    for name in CONFIGS {
        let (toml, warnings) = import(name);
        let shipped = std::fs::read_to_string(format!("{DIR}/{name}.toml")).expect("toml");
        assert_eq!(toml, shipped, "{name}.toml is stale: regenerate it");
        let shipped_w =
            std::fs::read_to_string(format!("{DIR}/{name}.warnings")).expect("warnings");
        assert_eq!(warnings, shipped_w, "{name}.warnings is stale");
        // Checked as installed: the TOML holds auth_pass, so mode 0600.
        let installed = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("contrib-keepalived-{name}.toml"));
        std::fs::write(&installed, &shipped).expect("write");
        std::fs::set_permissions(&installed, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        let check = Command::new(env!("CARGO_BIN_EXE_splitguard"))
            .args(["check-config", "-c", installed.to_str().expect("utf-8")])
            .output()
            .expect("check-config runs");
        assert!(
            check.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

#[test]
fn the_imported_pair_runs_with_one_owner() {
    let lab = pair_lab("kaimport");
    let dir = lab.dir().display().to_string();
    let mut procs = Vec::new();
    for node in ["lb01", "lb02"] {
        let (toml, _) = import(node);
        // The tutorial's 10.0.0.x become the lab's TEST-NET-1; sockets and state
        // per node, since both run on one machine.
        let toml = toml.replace("10.0.0.", "192.0.2.").replacen(
            &format!("node = \"{node}\"\n"),
            &format!(
                "node = \"{node}\"\nstate_dir = \"{dir}/{node}-state\"\ncontrol_socket = \"{dir}/{node}.sock\"\n"
            ),
            1,
        );
        procs.push(start_splitguard(&lab, node, &toml));
    }
    let refs: Vec<&splitguard_lab::LabProcess> = procs.iter().collect();
    expect_owner(&lab, Some("lb01"), &refs, "the imported pair");
    expect_owner_stays(
        &lab,
        "lb01",
        std::time::Duration::from_secs(4),
        &refs,
        "steady",
    );
}
