//! `splitguard import-keepalived FILE`: reads a keepalived.conf (with its includes)
//! and produces equivalent splitguard TOML, with a warning for everything that is not
//! carried over. Owns the pipeline and its only I/O: reading the root file and the
//! filesystem [`FsLoader`] for `include`. The steps are pure: [`lexer`] (text to
//! tokens), [`parser`] (tokens to statements, includes spliced), [`convert`]
//! (statements to TOML and warnings), then the result is checked with
//! [`crate::config::parse`], splitguard's own validation, and its problems are
//! traced back to the keepalived lines they came from.

pub mod convert;
pub mod lexer;
pub mod parser;
pub mod script;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

pub use convert::{Conversion, Options};
pub use parser::{IncludeError, Loader, Loc, ParseError, Source, Statement};

/// A warning or error about one keepalived line; Display is `FILE:LINE: keyword: why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Loc,
    pub keyword: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.keyword, self.message)
    }
}

/// Why a keepalived.conf could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Values that cannot be read; one per line in Display.
    #[error("{}", lines(.0))]
    Convert(Vec<Problem>),
    /// The converted TOML fails splitguard's validation; one per line in Display,
    /// each traced back to a keepalived line where possible.
    #[error("{}", lines(.0))]
    Invalid(Vec<String>),
}

fn lines<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What an import produced: warnings always, TOML when it succeeded.
#[derive(Debug)]
pub struct Imported {
    pub warnings: Vec<Problem>,
    pub result: Result<String, ImportError>,
}

/// Reads `path` and its includes from disk and converts them.
pub fn import_file(path: &Path) -> Imported {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(source) => {
            return Imported {
                warnings: Vec::new(),
                result: Err(ImportError::Read {
                    path: path.to_owned(),
                    source,
                }),
            };
        }
    };
    let name = path.display().to_string();
    let root = Source {
        key: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
        dir: path.parent().map(Path::to_owned).unwrap_or_default(),
        name: name.clone(),
        text,
    };
    let options = Options {
        origin: name,
        hostname: hostname(),
    };
    import(&root, &mut FsLoader, &options)
}

/// Converts `root` (and what it includes, through `loader`), then validates the TOML.
pub fn import(root: &Source, loader: &mut dyn Loader, options: &Options) -> Imported {
    let parsed = match parser::parse(root, loader) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Imported {
                warnings: Vec::new(),
                result: Err(e.into()),
            };
        }
    };
    let conversion = convert::convert(&parsed.statements, options);
    let mut warnings = parsed.notes;
    warnings.extend(conversion.warnings.iter().cloned());
    // In reading order: by file as first opened, then by line.
    warnings.sort_by_key(|w| {
        let file = parsed.files.iter().position(|f| *f == w.at.file);
        (file.unwrap_or(usize::MAX), w.at.line)
    });
    if !conversion.errors.is_empty() {
        return Imported {
            warnings,
            result: Err(ImportError::Convert(conversion.errors)),
        };
    }
    let result = match crate::config::parse(&conversion.toml, "converted TOML") {
        Ok(_) => Ok(conversion.toml),
        Err(e) => Err(ImportError::Invalid(trace(&e, &conversion))),
    };
    Imported { warnings, result }
}

/// Each validation problem, prefixed with the keepalived line its key came from.
fn trace(e: &crate::config::ConfigError, conversion: &Conversion) -> Vec<String> {
    let diagnostics = e.diagnostics();
    if diagnostics.is_empty() {
        return vec![e.to_string()];
    }
    diagnostics
        .iter()
        .map(|d| {
            let origin = d.key.as_deref().and_then(|k| conversion.origin_of(k));
            let key = d
                .key
                .as_deref()
                .map(|k| format!("{k}: "))
                .unwrap_or_default();
            match origin {
                Some((at, keyword)) => format!(
                    "{at}: {keyword}: splitguard rejects the converted config: {key}{}",
                    d.message
                ),
                None => format!(
                    "converted TOML:{}:{}: splitguard rejects it: {key}{}",
                    d.line, d.column, d.message
                ),
            }
        })
        .collect()
}

/// The host name (keepalived's default router_id), if the kernel tells it.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// Most files one include may match (a glob over a huge directory is a mistake).
const MAX_INCLUDE_FILES: usize = 1000;

/// Reads includes from disk: globs relative to the including file's directory, as
/// keepalived does (it changes into that directory while reading the file).
#[derive(Debug, Default)]
pub struct FsLoader;

impl Loader for FsLoader {
    fn include(&mut self, dir: &Path, pattern: &str) -> Result<Vec<Source>, IncludeError> {
        let full = if Path::new(pattern).is_absolute() || dir.as_os_str().is_empty() {
            pattern.to_owned()
        } else {
            format!(
                "{}/{pattern}",
                glob::Pattern::escape(&dir.display().to_string())
            )
        };
        let paths = glob::glob(&full).map_err(|e| IncludeError::BadPattern(e.to_string()))?;
        let mut out = Vec::new();
        for entry in paths {
            let path = entry.map_err(|e| IncludeError::Read {
                path: e.path().display().to_string(),
                message: e.error().to_string(),
            })?;
            if path.is_dir() {
                continue;
            }
            if out.len() >= MAX_INCLUDE_FILES {
                return Err(IncludeError::BadPattern(format!(
                    "matches more than {MAX_INCLUDE_FILES} files"
                )));
            }
            let bytes = std::fs::read(&path).map_err(|e| IncludeError::Read {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            out.push(Source {
                name: path.display().to_string(),
                key: std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone()),
                dir: path.parent().map(Path::to_owned).unwrap_or_default(),
                text: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        if out.is_empty() {
            let wildcard = pattern.contains(['*', '?', '[']);
            return Err(if wildcard {
                IncludeError::NoMatch
            } else {
                IncludeError::NotFound
            });
        }
        Ok(out)
    }
}
