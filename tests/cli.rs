//! The `splitguard` binary's command line: check-config's exit codes and located
//! errors, the contrib examples, secret-bearing files others may read (refused,
//! or warned about with `secret_file_mode = "warn"`), clear refusals of bad
//! arguments, and the man pages and completion scripts generated from the
//! command line (and splitguard.toml(5), from the config reference).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// `text` written to `name` in this test binary's scratch directory, at `mode`.
fn scratch(name: &str, text: &str, mode: u32) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

#[test]
fn contrib_examples_pass_check_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("contrib/examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            // They hold auth_pass, so installed as they should be: 0600.
            let example = std::fs::read_to_string(&path).expect("example");
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            let path = scratch(name, &example, 0o600);
            let out = splitguard(&["check-config", "-c", path.to_str().expect("utf-8 path")]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
            assert!(
                text(&out.stdout).contains(": OK: node "),
                "{}",
                text(&out.stdout)
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 4,
        "expected the tutorial pair and the dual-master pair"
    );
}

#[test]
fn bad_configs_print_file_line_col_and_key_and_exit_2() {
    for (file, expect) in [
        (
            "tests/fixtures/config/instance.toml",
            "tests/fixtures/config/instance.toml:6:8: instance[0].vrid: VRID 0 is out of range",
        ),
        (
            "tests/fixtures/config/syntax.toml",
            "tests/fixtures/config/syntax.toml:3:",
        ),
        ("tests/fixtures/config/unknown-keys.toml", "unknown key"),
        (
            "tests/fixtures/config/bad-duration.toml",
            "tests/fixtures/config/bad-duration.toml:",
        ),
    ] {
        let out = splitguard(&["check-config", "-c", file]);
        assert_eq!(out.status.code(), Some(2), "{file}");
        let err = text(&out.stderr);
        assert!(
            err.contains(expect),
            "{file}: expected {expect:?} in:\n{err}"
        );
        assert!(out.stdout.is_empty(), "nothing on stdout for a bad file");
    }
}

const SECRET_CONFIG: &str = r#"node = "lb01"

[[instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 150
advert_interval = "1s"
auth_pass = "pw1"
vips = ["192.0.2.3/24"]
"#;

#[test]
fn secrets_others_may_read_are_refused_with_the_fix() {
    for mode in [0o600, 0o640] {
        let path = scratch(&format!("ok-{mode:o}.toml"), SECRET_CONFIG, mode);
        let out = splitguard(&["check-config", "-c", path.to_str().expect("utf-8")]);
        assert!(out.status.success(), "{mode:o}: {}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    }

    let path = scratch("open.toml", SECRET_CONFIG, 0o644);
    let p = path.to_str().expect("utf-8");
    let expected = format!(
        "{p}: mode 0644 lets others read it, and it holds secrets (instance[0].auth_pass); \
         run `chmod o-r {p}` (or `chmod 600 {p}`), or set secret_file_mode = \"warn\" to go on anyway"
    );
    let out = splitguard(&["check-config", "-c", p]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr).trim(), expected);
    assert!(out.stdout.is_empty());
    // run and watch refuse it the same way, before touching the network.
    for cmd in ["run", "watch"] {
        let out = splitguard(&[cmd, "-c", p]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(
            text(&out.stderr).contains(&expected),
            "{cmd}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("pw1"), "{}", text(&out.stderr));
    }

    // secret_file_mode = "warn": a warning, and the file is valid.
    let warned = scratch(
        "warned.toml",
        &format!("secret_file_mode = \"warn\"\n{SECRET_CONFIG}"),
        0o644,
    );
    let out = splitguard(&["check-config", "-c", warned.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with(&format!("warning: {}: mode 0644", warned.display())),
        "{}",
        text(&out.stderr)
    );

    // Nothing secret: any mode.
    let plain = scratch(
        "plain.toml",
        &SECRET_CONFIG.replace("auth_pass = \"pw1\"\n", ""),
        0o644,
    );
    let out = splitguard(&["check-config", "-c", plain.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn check_config_loads_the_tls_files() {
    let missing = scratch(
        "tls.toml",
        &format!(
            "metrics_listen = \"127.0.0.1:9745\"\nmetrics_tls_cert = \"/nonexistent/c.pem\"\n\
             metrics_tls_key = \"/nonexistent/k.pem\"\n{SECRET_CONFIG}"
        ),
        0o600,
    );
    let out = splitguard(&["check-config", "-c", missing.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(
            "metrics_tls_cert/metrics_tls_key: /nonexistent/c.pem: cannot read: No such file"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_missing_file_is_named() {
    let out = splitguard(&["check-config", "-c", "/nonexistent/splitguard.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/nonexistent/splitguard.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_arguments_are_refused_with_usage() {
    let out = splitguard(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unrecognized subcommand"));
    let out = splitguard(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--config <FILE>"));
    let out = splitguard(&["--version"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("splitguard "));
}

#[test]
fn run_refuses_an_invalid_config_before_touching_the_network() {
    let out = splitguard(&["run", "-c", "tests/fixtures/config/instance.toml"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("instance[0].vrid"),
        "{}",
        text(&out.stderr)
    );
}

/// The man pages come from the clap definition: one per subcommand, and
/// splitguard.toml(5) from the config reference; each a page groff formats
/// without a warning, the config page with a heading for every section and a
/// line for every key.
#[test]
fn man_pages_are_generated_for_every_subcommand_and_format_cleanly() {
    let dir = std::env::temp_dir().join(format!("sg-man-{}", std::process::id()));
    let out = splitguard(&["manpages", "--out", dir.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in [
        "splitguard.1",
        "splitguard-run.1",
        "splitguard-watch.1",
        "splitguard-status.1",
        "splitguard-check.1",
        "splitguard-check-vip.1",
        "splitguard-check-config.1",
        "splitguard-import-keepalived.1",
        "splitguard-completions.1",
        "splitguard-manpages.1",
        "splitguard.toml.5",
    ] {
        let path = dir.join(page);
        let roff = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(roff.contains(".TH "), "{page}: no title line");
        // -ww: every warning; -z: format, print nothing.
        let g = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .expect("groff runs (Debian: groff-base)");
        assert!(
            g.status.success() && g.stderr.is_empty(),
            "{page}: {}",
            text(&g.stderr)
        );
    }
    let run = std::fs::read_to_string(dir.join("splitguard-run.1")).expect("run page");
    assert!(run.contains("dry\\-run"), "{run}");

    // The config page is plain ASCII roff, so groff's default device takes it
    // too, without preconv (clap's pages carry the help text's UTF-8).
    let page = dir.join("splitguard.toml.5");
    let g = Command::new("groff")
        .args(["-man", "-ww", "-z"])
        .arg(&page)
        .output()
        .expect("groff runs");
    assert!(
        g.status.success() && g.stderr.is_empty(),
        "splitguard.toml.5: {}",
        text(&g.stderr)
    );
    // As `man -l` shows it, without bold or underline (-P-cbou).
    let shown = Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(&page)
        .output()
        .expect("groff runs");
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let shown = text(&shown.stdout);
    let lines: Vec<&str> = shown.lines().map(str::trim).collect();
    for section in splitguard_node::config::reference::SECTIONS {
        assert!(
            lines.contains(&section.heading),
            "splitguard.toml.5 shows no heading {:?}:\n{shown}",
            section.heading
        );
        for key in section.keys {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("{} (", key.name))),
                "splitguard.toml.5: {} shows no key {}",
                section.heading,
                key.name
            );
        }
    }
    for words in [
        "EXAMPLES",
        "SEE ALSO",
        "splitguard-check-config(1)",
        "keepalived.conf(5)",
    ] {
        assert!(shown.contains(words), "splitguard.toml.5 shows no {words}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Completion scripts for the shells clap knows, from the same definition;
/// bash's parses.
#[test]
fn completion_scripts_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = splitguard(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["check-config", "import-keepalived", "status"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    let bash = splitguard(&["completions", "bash"]);
    let file = scratch("completion.bash", &text(&bash.stdout), 0o644);
    let n = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash");
    assert!(n.status.success(), "{}", text(&n.stderr));
    let bad = splitguard(&["completions", "tcsh"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}
