//! Holds `src/core/` to being the pure half: no file under it may mention an
//! I/O or async crate or API (see lib.rs). A plain text search, comments
//! included, so a core module cannot even start to lean on one.

use std::path::{Path, PathBuf};

/// What the pure half must not mention.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "reqwest",
    "lettre",
    "std::net::TcpStream",
    "std::fs",
    "async fn",
    "hyper",
    "axum",
    "async_imap",
];

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_mentions_no_io() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files = Vec::new();
    rust_files(&core, &mut files);
    // A moved or renamed folder must not make this pass by finding nothing.
    assert!(
        files.len() >= 10,
        "only {} files under {}",
        files.len(),
        core.display()
    );
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            for word in FORBIDDEN.iter().filter(|w| line.contains(**w)) {
                found.push(format!(
                    "{}:{}: {word}: {}",
                    file.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "I/O in the pure half:\n{}",
        found.join("\n")
    );
}
