//! Headless Chromium (Debian's `chromium`) for the report tests: loads a file
//! in a fresh network namespace that has only a downed `lo` (`unshare --net`),
//! so the page cannot fetch anything even if it tried, and returns the DOM it
//! built, the console lines it logged and, if asked, a screenshot.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A cold start on a busy 2-core machine takes a few seconds.
const BOUND: Duration = Duration::from_secs(90);

/// What Chromium made of a page.
pub struct Rendered {
    /// The serialized DOM after load (`--dump-dom`).
    pub dom: String,
    /// Console messages (script errors, policy violations), from its log.
    pub console: Vec<String>,
    /// The whole log, for a failure's message.
    pub log: String,
}

/// Chromium's flags for a headless run as root, with its profile in `profile`.
fn command(profile: &Path) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--", "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` with stdout and stderr to files, killed (its whole process
/// group: Chromium's helpers too) if it outlives [`BOUND`].
fn run(mut cmd: Command, dir: &Path, tag: &str) -> (String, String) {
    let out = dir.join(format!("{tag}.out"));
    let err = dir.join(format!("{tag}.err"));
    cmd.stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .process_group(0);
    let mut child = cmd
        .spawn()
        .expect("unshare and chromium run (Debian: util-linux, chromium)");
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) on the process group this test started.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
            panic!(
                "chromium did not finish in {BOUND:?}\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(status.success(), "chromium failed: {status}\n{stderr}");
    (stdout, stderr)
}

/// Loads `page` and returns its DOM and console lines.
pub fn dump_dom(page: &Path) -> Rendered {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = command(&dir.path().join("profile"));
    cmd.arg("--dump-dom").arg(file_url(page));
    let (dom, log) = run(cmd, dir.path(), "dom");
    let console = log
        .lines()
        .filter(|l| {
            l.contains(":CONSOLE")
                || l.contains("Uncaught")
                || l.contains("Content Security Policy")
                || l.contains("net::ERR")
        })
        .map(str::to_owned)
        .collect();
    Rendered { dom, console, log }
}

/// A PNG of `page` at `width`×`height` into `png`; returns its size in bytes.
pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32) -> u64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = command(&dir.path().join("profile"));
    cmd.arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg("--hide-scrollbars")
        .arg(file_url(page));
    run(cmd, dir.path(), "png");
    let bytes = std::fs::read(png).expect("the screenshot was written");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        png.display()
    );
    bytes.len() as u64
}

fn file_url(page: &Path) -> String {
    let abs: PathBuf = std::fs::canonicalize(page).expect("the page exists");
    url::Url::from_file_path(&abs)
        .expect("an absolute path")
        .to_string()
}

/// How many elements of `dom` carry `class` as their first class.
pub fn count_class(dom: &str, class: &str) -> usize {
    dom.matches(&format!("class=\"{class}\"")).count()
        + dom.matches(&format!("class=\"{class} ")).count()
}
