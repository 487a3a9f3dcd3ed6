//! Configuration: the TOML schema (DESIGN.md, "Contracts"), parsing, and validation
//! with `FILE:LINE:COL: key: message` diagnostics. Owns [`load`], [`parse`], the
//! [`Config`] tree and [`ConfigError`]; the rest of splitguard only reads a
//! `Config` that already passed every check here.
//!
//! Reading goes in three steps: the text is parsed once into a spanned document
//! (so every key and value keeps its byte span), each section is deserialized from
//! that document (`read`), then the semantic rules run (`validate`), which look up
//! the span of each key they complain about (`locate`).

mod duration;
pub mod exposure;
mod fence;
mod locate;
pub mod probe_plan;
mod read;
pub mod reference;
mod schema;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

pub use duration::{DurationError, format_duration, parse_duration};
pub use fence::Fence;
pub use locate::KeyPath;
pub use schema::{
    Alertmanager, Alerts, Arbiter, Channel, Config, HttpMethod, HttpSms, Imap, Instance, Mail,
    OnIsolated, Pagerduty, Probe, Reply, Role, SecretFileMode, Sms, Tls, TlsFiles, TrackScript,
    TwilioSms, WITNESS_WITHOUT_CONFIRM, Watch, WatchActions, Webhook, Witness, WitnessConfirm,
    WitnessTls,
};
pub use values::{Argv, HttpUrl, Secret, Template, Vip, VipError};

use locate::{Document, LineIndex};
use read::Found;

/// One problem in a config file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name (or other origin) given to [`parse`].
    pub origin: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// The key the problem is about, e.g. `instance[1].vrid`; None for TOML syntax
    /// errors, which are about text rather than a key.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.origin, self.line, self.column)?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Syntax, type or validation problems; Display prints one per line, in file order.
    #[error("{}", Lines(.0))]
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    /// The located problems (empty for a read error).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Invalid(d) => d,
            ConfigError::Read { .. } => &[],
        }
    }
}

struct Lines<'a>(&'a [Diagnostic]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Reads and checks the config file at `path`; diagnostics name the path as given.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and checks config text; `origin` is the file name used in diagnostics.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let lines = LineIndex::new(text);
    let render = |found: Vec<Found>, doc: Option<&Document<'_>>| {
        ConfigError::Invalid(render(found, doc, &lines, origin))
    };

    let (table, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // Positions only: after a syntax error the recovered document is a guess,
        // so no key is named.
        let found = syntax
            .iter()
            .map(|e| Found {
                span: e.span().unwrap_or(0..0),
                path: Some(KeyPath::root()),
                missing: None,
                message: e.message().trim().to_owned(),
            })
            .collect();
        return Err(render(found, None));
    }
    let doc = Document::new(table.clone());

    let mut found = Vec::new();
    let Some(raw) = read::read(table, &mut found) else {
        return Err(render(found, Some(&doc)));
    };
    validate::validate(raw, &doc).map_err(|found| render(found, Some(&doc)))
}

/// Gives each problem its line, column and key, sorted by position.
fn render(
    found: Vec<Found>,
    doc: Option<&Document<'_>>,
    lines: &LineIndex<'_>,
    origin: &str,
) -> Vec<Diagnostic> {
    let mut out: Vec<(usize, Diagnostic)> = found
        .into_iter()
        .map(|f| {
            let path = match (f.path, doc) {
                (Some(p), _) => p,
                (None, Some(doc)) => doc.path_at(&f.span),
                (None, None) => KeyPath::root(),
            };
            let path = match &f.missing {
                Some(k) => path.key(k),
                None => path,
            };
            let (line, column) = lines.line_col(f.span.start);
            let diagnostic = Diagnostic {
                origin: origin.to_owned(),
                line,
                column,
                key: (!path.is_root()).then(|| path.to_string()),
                message: f.message,
            };
            (f.span.start, diagnostic)
        })
        .collect();
    out.sort_by_key(|a| a.0);
    out.dedup_by(|a, b| a.1 == b.1);
    out.into_iter().map(|(_, d)| d).collect()
}
