//! The Debian package (`contrib/deb/build.sh`, which `contrib/test.sh` runs
//! before the tests): what it holds, what lintian says of it, and a real
//! `apt install`, use, `apt remove` and `apt purge` on this machine's own system seen
//! through an overlay in a private mount namespace, so the host is never
//! touched and whatever the package leaves behind is exactly the overlay's
//! upper layer. Needs root, dpkg-deb, lintian and systemd-analyze; fails
//! without them.

mod common;

use common::pair_lab;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The target directory this test was built in (its binary is in `debug/`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_splitguard"))
        .parent()
        .and_then(Path::parent)
        .expect("the binary lies in <target>/<profile>/")
        .to_path_buf()
}

/// The newest `splitguard_*.deb` that `contrib/deb/build.sh` made.
fn deb() -> PathBuf {
    let dir = target_dir().join("debian");
    let newest = std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("splitguard_") && n.ends_with(".deb"))
        })
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    newest.unwrap_or_else(|| {
        panic!(
            "no splitguard_*.deb in {}: run `bash contrib/deb/build.sh` (contrib/test.sh does)",
            dir.display()
        )
    })
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("sg-deb-{name}-"))
        .tempdir()
        .expect("temp dir")
}

/// Every file the package installs, by path, from `dpkg-deb -c`.
fn contents(deb: &Path) -> Vec<String> {
    let out = run("dpkg-deb", &["-c", deb.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "dpkg-deb -c: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect()
}

#[test]
fn the_package_holds_the_lean_binary_units_configs_pages_and_glue() {
    let deb = deb();
    let files = contents(&deb);
    let has = |p: &str| files.iter().any(|f| f == p);
    for p in [
        "/usr/bin/splitguard",
        "/usr/lib/systemd/system/splitguard.service",
        "/usr/lib/systemd/system/splitguard-watch.service",
        "/usr/lib/sysusers.d/splitguard.conf",
        "/etc/splitguard/splitguard.toml",
        "/etc/splitguard/watch.toml",
        "/usr/share/man/man1/splitguard.1.gz",
        "/usr/share/man/man1/splitguard-run.1.gz",
        "/usr/share/man/man1/splitguard-watch.1.gz",
        "/usr/share/man/man5/splitguard.toml.5.gz",
        "/usr/share/bash-completion/completions/splitguard",
        "/usr/share/zsh/vendor-completions/_splitguard",
        "/usr/share/fish/vendor_completions.d/splitguard.fish",
        "/usr/share/splitguard/zabbix/userparameter_splitguard.conf",
        "/usr/share/splitguard/zabbix/template_splitguard.yaml",
        "/usr/share/splitguard/nagios/splitguard.cfg",
        "/usr/share/splitguard/grafana/splitguard.json",
        "/usr/share/doc/splitguard/copyright",
    ] {
        assert!(
            has(p),
            "{p} missing from {}:\n{}",
            deb.display(),
            files.join("\n")
        );
    }
    // The lean build: no lab, so no page for it either.
    assert!(
        !files.iter().any(|f| f.contains("splitguard-lab")),
        "{}",
        files.join("\n")
    );

    let control = scratch("control");
    let c = control.path().to_str().expect("utf-8");
    let out = run("dpkg-deb", &["-e", deb.to_str().expect("utf-8"), c]);
    assert!(out.status.success(), "dpkg-deb -e: {}", text(&out.stderr));
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).expect("conffiles");
    for f in [
        "/etc/splitguard/splitguard.toml",
        "/etc/splitguard/watch.toml",
    ] {
        assert!(
            conffiles.lines().any(|l| l == f),
            "{f} not a conffile:\n{conffiles}"
        );
    }
    let postinst = std::fs::read_to_string(control.path().join("postinst")).expect("postinst");
    let sysusers = postinst
        .find("systemd-sysusers")
        .expect("postinst creates the user");
    let chown = postinst
        .find("chown root:splitguard")
        .expect("postinst sets the group");
    assert!(
        sysusers < chown,
        "the user must exist before the chown:\n{postinst}"
    );
    assert!(
        !postinst.contains("deb-systemd-invoke start"),
        "the units must not start before the config is edited:\n{postinst}"
    );

    // The packaged binary runs, is this version, and has no lab.
    let root = scratch("x");
    let r = root.path().to_str().expect("utf-8");
    let out = run("dpkg-deb", &["-x", deb.to_str().expect("utf-8"), r]);
    assert!(out.status.success(), "dpkg-deb -x: {}", text(&out.stderr));
    let bin = root.path().join("usr/bin/splitguard");
    let bin = bin.to_str().expect("utf-8");
    let version = run(bin, &["--version"]);
    assert_eq!(
        text(&version.stdout).trim(),
        format!("splitguard {}", env!("CARGO_PKG_VERSION")),
        "{}",
        text(&version.stderr)
    );
    let lab = run(bin, &["lab", "demo"]);
    assert_eq!(lab.status.code(), Some(2), "{}", text(&lab.stderr));
    assert!(
        text(&lab.stderr).contains("unrecognized subcommand"),
        "{}",
        text(&lab.stderr)
    );
    // Its man pages are the ones it generates itself (no stale page, none missing).
    let pages = scratch("man");
    let out = run(
        bin,
        &["manpages", "--out", pages.path().to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut generated: Vec<String> = std::fs::read_dir(pages.path())
        .expect("pages")
        .filter_map(Result::ok)
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let section = name.rsplit('.').next().unwrap_or_default().to_owned();
            format!("/usr/share/man/man{section}/{name}.gz")
        })
        .collect();
    generated.sort();
    let mut packaged: Vec<String> = files
        .iter()
        .filter(|f| f.starts_with("/usr/share/man/man") && f.ends_with(".gz"))
        .cloned()
        .collect();
    packaged.sort();
    assert_eq!(packaged, generated);
}

#[test]
fn lintian_reports_no_errors_or_warnings() {
    let deb = deb();
    let out = run(
        "lintian",
        &[
            "--fail-on",
            "error,warning",
            "--tag-display-limit",
            "0",
            deb.to_str().expect("utf-8"),
        ],
    );
    assert!(
        out.status.success(),
        "lintian (exit {:?}):\n{}{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    // The overrides (contrib/deb/lintian-overrides) say why each is fine.
    assert!(
        !text(&out.stdout)
            .lines()
            .any(|l| l.starts_with("E: ") || l.starts_with("W: ")),
        "{}",
        text(&out.stdout)
    );
}

/// Runs inside a private mount namespace: an overlay of `/` whose upper layer
/// is a tmpfs, the package installed, used, removed and purged in a chroot
/// of it, then the upper layer listed. Sections start with `== `.
const OVERLAY_SCRIPT: &str = r#"
set -eu
T=$1; DEB=$2; NS1=$3; NS2=$4
mount -t tmpfs -o size=1g sg-deb "$T"
mkdir "$T/upper" "$T/work" "$T/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$T/root"
R=$T/root
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount -t tmpfs tmpfs "$R/run"
mount -t tmpfs tmpfs "$R/tmp"
cp "$DEB" "$R/tmp/splitguard.deb"
inroot() { chroot "$R" "$@"; }
# apt as the README says, with no network: everything it needs is installed.
apt() { unshare --net chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get -q -y "$@"; }
# man-db would rebuild its whole index on every install and removal: seconds of
# CPU that prove nothing here (`man -w` below reads the directories).
inroot rm -f /var/lib/man-db/auto-update
echo "== install"
apt install /tmp/splitguard.deb 2>&1
echo "== version"
inroot splitguard --version
echo "== modes"
inroot stat -c '%n %U:%G %a' /etc/splitguard /etc/splitguard/splitguard.toml /etc/splitguard/watch.toml /var/lib/splitguard /var/lib/splitguard-watch
echo "== check-config"
inroot runuser -u splitguard -- splitguard check-config -c /etc/splitguard/splitguard.toml 2>&1
inroot runuser -u splitguard -- splitguard check-config -c /etc/splitguard/watch.toml 2>&1
echo "== verify"
inroot systemd-analyze verify /usr/lib/systemd/system/splitguard.service /usr/lib/systemd/system/splitguard-watch.service 2>&1
echo "== enabled"
inroot systemctl is-enabled splitguard.service splitguard-watch.service 2>&1 || true
echo "== man"
inroot sh -c 'zcat /usr/share/man/man1/splitguard.1.gz | head -n 3'
inroot man -w splitguard.toml
echo "== pair"
# The tutorial's pair from the installed files, as the README's install section
# runs it on two machines: lb01 from /etc/splitguard/splitguard.toml, lb02 from
# the packaged example, both moved to the lab's TEST-NET-1 addresses, each with
# its own state since both run here, lb02 its own socket (lb01 keeps the
# packaged one, which a bare `splitguard status` finds), as the splitguard user
# with only the capabilities the unit grants.
inroot install -d -m 0750 -o splitguard -g splitguard /run/splitguard
for n in lb01 lb02; do
  src=/usr/share/doc/splitguard/examples/$n.toml
  sock=$n.sock
  [ $n = lb01 ] && src=/etc/splitguard/splitguard.toml && sock=splitguard.sock
  inroot install -d -m 0700 -o splitguard -g splitguard /var/lib/splitguard/$n
  inroot sh -c "sed 's/10\.0\.0\./192.0.2./g; /track_scripts/d; s|/run/splitguard/splitguard.sock|/run/splitguard/$sock|; s|^state_dir = .*|state_dir = \"/var/lib/splitguard/$n\"|' $src > /etc/splitguard/$n.toml"
  inroot chown root:splitguard /etc/splitguard/$n.toml
  inroot chmod 0640 /etc/splitguard/$n.toml
done
start() {
  ip netns exec "$2" chroot "$R" setpriv --reuid splitguard --regid splitguard --init-groups \
    --inh-caps -all,+net_admin,+net_raw --ambient-caps -all,+net_admin,+net_raw \
    --bounding-set -all,+net_admin,+net_raw \
    splitguard run -c "/etc/splitguard/$1.toml" > "$T/$1.log" 2>&1 &
}
holds() { ip -n "$1" -br addr show dev eth0 | grep -q ' 192\.0\.2\.3/'; }
# Bounded: 15 s each, 100 ms apart.
wait_holds() { i=0; while [ $i -lt 150 ]; do holds "$1" && return 0; sleep 0.1; i=$((i+1)); done; return 1; }
start lb01 "$NS1"; pid1=$!
start lb02 "$NS2"; pid2=$!
if wait_holds "$NS1"; then echo "lb01 holds the VIP"; else echo "lb01 never held the VIP"; fi
holds "$NS2" && echo "lb02 holds the VIP too"
inroot runuser -u splitguard -- splitguard status 2>&1 | head -n 5
kill -TERM $pid1; wait $pid1 || true
if wait_holds "$NS2"; then echo "lb02 took the VIP"; else echo "lb02 never took the VIP"; fi
kill -TERM $pid2; wait $pid2 || true
echo "-- lb01 log"; tail -n 20 "$T/lb01.log"
echo "-- lb02 log"; tail -n 20 "$T/lb02.log"
inroot rm -rf /etc/splitguard/lb01.toml /etc/splitguard/lb02.toml /var/lib/splitguard/lb01 /var/lib/splitguard/lb02
echo "== remove"
apt remove splitguard 2>&1
echo "== after remove"
inroot sh -c 'for p in /usr/bin/splitguard /etc/splitguard/splitguard.toml /var/lib/splitguard; do [ -e "$p" ] && echo "present $p" || echo "absent $p"; done'
echo "== purge"
apt purge splitguard 2>&1
echo "== left"
cd "$T/upper"
find . -mindepth 1 \( -type d -printf 'd %P\n' \) -o -printf '%y %P\n' | while read -r kind p; do
  # A directory the host already has was only copied up.
  if [ "$kind" = d ] && [ -d "/$p" ]; then continue; fi
  echo "$kind $p"
done
echo "== end"
"#;

/// What dpkg, the user's creation and the tools themselves may leave in the
/// overlay: their databases and logs, never a file of the package.
fn allowed_leftover(path: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "var/lib/dpkg/",
        "var/lib/apt/",
        "var/cache/apt/",
        "var/log/",
        "var/cache/debconf/",
        "var/cache/man/",
        // Removed above, so man-db's trigger skips the index (a whiteout).
        "var/lib/man-db/auto-update",
        "etc/passwd",
        "etc/group",
        "etc/shadow",
        "etc/gshadow",
        "etc/subuid",
        "etc/subgid",
        "etc/.pwd.lock",
        "etc/ld.so.cache",
        "root/",
    ];
    PREFIXES.iter().any(|p| path.starts_with(p))
}

fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .find(&format!("== {name}\n"))
        .unwrap_or_else(|| panic!("no section {name}:\n{out}"))
        + name.len()
        + 4;
    let rest = &out[start..];
    let end = if rest.starts_with("== ") {
        0
    } else {
        rest.find("\n== ").map_or(rest.len(), |i| i + 1)
    };
    &rest[..end]
}

#[test]
fn apt_installs_runs_the_pair_removes_and_purges_without_leftovers() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root (mount namespaces)"
    );
    let deb = deb();
    let lab = pair_lab("debpkg");
    let ns = |h: &str| lab.host(h).expect("host").netns.clone();
    let t = scratch("overlay");
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            OVERLAY_SCRIPT,
            "sh",
        ])
        .arg(t.path())
        .arg(&deb)
        .args([ns("lb01"), ns("lb02")])
        .output()
        .expect("unshare runs");
    let all = text(&out.stdout);
    assert!(
        out.status.success(),
        "the overlay script failed (exit {:?}):\n{all}\n{}",
        out.status.code(),
        text(&out.stderr)
    );

    assert_eq!(
        section(&all, "version").trim(),
        format!("splitguard {}", env!("CARGO_PKG_VERSION"))
    );
    let modes = section(&all, "modes");
    for line in [
        "/etc/splitguard/splitguard.toml root:splitguard 640",
        "/etc/splitguard/watch.toml root:splitguard 640",
        "/var/lib/splitguard splitguard:splitguard 700",
        "/var/lib/splitguard-watch splitguard:splitguard 700",
    ] {
        assert!(modes.lines().any(|l| l == line), "{line}:\n{modes}");
    }
    let checked = section(&all, "check-config");
    assert!(
        checked.contains("/etc/splitguard/splitguard.toml: OK: node lb01")
            && checked.contains("/etc/splitguard/watch.toml: OK: node lb02"),
        "{checked}"
    );
    let verify = section(&all, "verify");
    assert!(
        verify.trim().is_empty(),
        "systemd-analyze verify:\n{verify}"
    );
    assert_eq!(
        section(&all, "enabled")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["disabled", "disabled"],
        "installed, not enabled: the example config needs editing first"
    );
    let man = section(&all, "man");
    assert!(man.contains(".TH splitguard 1"), "{all}");
    // `man splitguard.toml` finds the config's page, which the units name.
    assert!(
        man.contains("/usr/share/man/man5/splitguard.toml.5.gz"),
        "{man}"
    );

    let pair = section(&all, "pair");
    for line in ["lb01 holds the VIP", "lb02 took the VIP"] {
        assert!(pair.lines().any(|l| l == line), "{line}:\n{pair}");
    }
    assert!(!pair.contains("lb02 holds the VIP too"), "{pair}");
    // A bare `splitguard status` finds the packaged socket.
    assert!(
        pair.contains("splitguard on lb01") && pair.contains("MASTER"),
        "status shows lb01 MASTER:\n{pair}"
    );

    // Removed: the binary goes, conffiles and state stay until purge (Debian's rule).
    let removed = section(&all, "after remove");
    for line in [
        "absent /usr/bin/splitguard",
        "present /etc/splitguard/splitguard.toml",
        "present /var/lib/splitguard",
    ] {
        assert!(removed.lines().any(|l| l == line), "{line}:\n{removed}");
    }

    let left: Vec<&str> = section(&all, "left")
        .lines()
        .filter(|l| {
            let path = l.split_once(' ').map_or(*l, |(_, p)| p);
            !allowed_leftover(path)
        })
        .collect();
    assert!(
        left.is_empty(),
        "apt purge left these behind:\n{}\n\nwhole run:\n{all}",
        left.join("\n")
    );
}
