//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`, seeds and the
//! crash repros kept there) through the same entry points the cargo-fuzz targets
//! call, on stable and without libFuzzer, so a fixed crash stays fixed. A missing
//! or empty corpus fails the test rather than passing without input.

use std::path::{Path, PathBuf};

type Entry = fn(&[u8]);

const TARGETS: &[(&str, Entry)] = &[
    ("vrrp_packet", splitguard_vrrp::fuzzing::vrrp_packet),
    ("config", splitguard_node::fuzzing::config),
    (
        "import_keepalived",
        splitguard_node::fuzzing::import_keepalived,
    ),
    ("reply_text", splitguard_watchdog::fuzzing::reply_text),
    ("reply_mail", splitguard_watchdog::fuzzing::reply_mail),
    ("webhook_form", splitguard_watchdog::fuzzing::webhook_form),
    ("ndp", splitguard_node::fuzzing::ndp),
    ("ipv6_advert", splitguard_node::fuzzing::ipv6_advert),
    ("witness_confirm", splitguard_node::fuzzing::witness_confirm),
];

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: cannot read the corpus: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()).expect("corpus entry"))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    files
}

fn replay(target: &str, entry: Entry) {
    let files = corpus(target);
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).expect("read corpus file");
        if std::panic::catch_unwind(|| entry(&data)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs panicked:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

fn run(target: &str) {
    let (_, entry) = TARGETS
        .iter()
        .find(|(t, _)| *t == target)
        .expect("target listed in TARGETS");
    replay(target, *entry);
}

#[test]
fn every_target_has_a_test() {
    let listed: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("fuzz/fuzz_targets")
        .map(|e| e.expect("entry").path())
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    found.sort();
    let mut listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "fuzz targets and replayed corpora differ");
}

#[test]
fn vrrp_packet() {
    run("vrrp_packet");
}

#[test]
fn config() {
    run("config");
}

#[test]
fn import_keepalived() {
    run("import_keepalived");
}

#[test]
fn reply_text() {
    run("reply_text");
}

#[test]
fn reply_mail() {
    run("reply_mail");
}

#[test]
fn webhook_form() {
    run("webhook_form");
}

#[test]
fn ndp() {
    run("ndp");
}

#[test]
fn ipv6_advert() {
    run("ipv6_advert");
}
