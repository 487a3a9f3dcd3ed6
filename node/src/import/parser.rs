//! The keepalived.conf parser: tokens to a small AST of [`Statement`]s (a keyword, its
//! arguments, an optional `{ }` block, and the file and line of the keyword), with
//! `include GLOB` spliced in where it stands. Owns block structure, include depth and
//! cycle rules, and the [`Loader`] trait through which includes are read; the parser
//! itself does no I/O (the filesystem loader lives in `mod.rs`), so tests feed it
//! files from memory. Never panics; nesting is bounded so no input exhausts the stack.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Problem;
use super::lexer::{Token, TokenKind, lex};

/// Blocks nested deeper than this are refused (keepalived's deepest is 3 or 4).
pub const MAX_NESTING: usize = 32;
/// Includes nested deeper than this are refused.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// Where a keyword is: file (as named to the user) and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: u32,
}

impl fmt::Display for Loc {
    /// `FILE:LINE`, or `FILE` alone for line 0 (about the file as a whole).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

/// One keyword line, e.g. `priority 150` or `vrrp_instance VI_1 { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub keyword: String,
    /// The words after the keyword, quotes removed.
    pub args: Vec<String>,
    /// The arguments as written (quotes and escapes kept), for scripts, which
    /// keepalived re-splits from the raw line.
    pub raw_args: String,
    pub block: Option<Vec<Statement>>,
    pub at: Loc,
}

impl Statement {
    /// The statements of the block (empty when there is none).
    pub fn children(&self) -> &[Statement] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// A file handed to the parser.
#[derive(Debug, Clone)]
pub struct Source {
    /// How messages name it.
    pub name: String,
    /// Its identity for cycle detection (a canonical path on disk).
    pub key: PathBuf,
    /// The directory relative includes in it are resolved against.
    pub dir: PathBuf,
    pub text: String,
}

/// Why an include could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncludeError {
    #[error("no such file")]
    NotFound,
    /// A glob with wildcards that matched nothing (keepalived 2.2.7 logs "Config
    /// files missing" and goes on, as it does for a missing file).
    #[error("the pattern matches no file")]
    NoMatch,
    #[error("bad glob pattern: {0}")]
    BadPattern(String),
    #[error("{path}: {message}")]
    Read { path: String, message: String },
}

/// Reads the files an `include` names.
pub trait Loader {
    /// The files `pattern` matches, relative to `dir` unless absolute, sorted.
    fn include(&mut self, dir: &Path, pattern: &str) -> Result<Vec<Source>, IncludeError>;
}

/// A file that cannot be parsed; Display is `FILE:LINE: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{at}: unterminated double quote")]
    UnterminatedQuote { at: Loc },
    #[error("{at}: `}}` without a matching `{{`")]
    UnexpectedClose { at: Loc },
    #[error("{at}: `{{` without a keyword before it")]
    StrayOpen { at: Loc },
    #[error("{at}: {keyword}: its `{{` is never closed (missing `}}`)")]
    UnclosedBlock { at: Loc, keyword: String },
    #[error("{at}: blocks are nested more than {MAX_NESTING} deep")]
    TooDeep { at: Loc },
    #[error("{at}: include: takes exactly one file name or glob, got {count}")]
    IncludeArgs { at: Loc, count: usize },
    #[error("{at}: include: a block after include makes no sense")]
    IncludeBlock { at: Loc },
    #[error("{at}: include: {pattern}: {source}")]
    Include {
        at: Loc,
        pattern: String,
        #[source]
        source: IncludeError,
    },
    #[error("{at}: include: {path} is already being read (include cycle: {chain})")]
    IncludeCycle {
        at: Loc,
        path: String,
        chain: String,
    },
    #[error("{at}: include: includes are nested more than {MAX_INCLUDE_DEPTH} deep")]
    IncludeTooDeep { at: Loc },
}

/// A parsed file tree, with notes the parser has for the user (warnings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub statements: Vec<Statement>,
    pub notes: Vec<Problem>,
    /// Every file read, in the order they were opened (the root first).
    pub files: Vec<Arc<str>>,
}

/// Parses `root` and everything it includes.
pub fn parse(root: &Source, loader: &mut dyn Loader) -> Result<Parsed, ParseError> {
    let mut parser = Parser {
        loader,
        open: Vec::new(),
        notes: Vec::new(),
        files: Vec::new(),
    };
    let statements = parser.file(root)?;
    Ok(Parsed {
        statements,
        notes: parser.notes,
        files: parser.files,
    })
}

struct Parser<'l> {
    loader: &'l mut dyn Loader,
    /// Files being read, outermost first: (key, name).
    open: Vec<(PathBuf, String)>,
    notes: Vec<Problem>,
    files: Vec<Arc<str>>,
}

/// The tokens of one file and a position in them.
struct Cursor<'s> {
    source: &'s Source,
    file: Arc<str>,
    tokens: Vec<Token>,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn loc(&self, token: &Token) -> Loc {
        Loc {
            file: self.file.clone(),
            line: token.line,
        }
    }

    fn skip_newlines(&mut self) {
        while self.peek().is_some_and(|t| t.kind == TokenKind::Newline) {
            self.pos += 1;
        }
    }
}

impl Parser<'_> {
    fn file(&mut self, source: &Source) -> Result<Vec<Statement>, ParseError> {
        let file: Arc<str> = Arc::from(source.name.as_str());
        self.files.push(file.clone());
        let tokens = lex(&source.text).map_err(|e| ParseError::UnterminatedQuote {
            at: Loc {
                file: file.clone(),
                line: e.line(),
            },
        })?;
        let mut cursor = Cursor {
            source,
            file,
            tokens,
            pos: 0,
        };
        self.open.push((source.key.clone(), source.name.clone()));
        let result = self.block(&mut cursor, None, 0);
        self.open.pop();
        result
    }

    /// Statements up to the `}` closing `opener` (or the end of the file at top level).
    fn block(
        &mut self,
        c: &mut Cursor<'_>,
        opener: Option<(&Loc, &str)>,
        depth: usize,
    ) -> Result<Vec<Statement>, ParseError> {
        let mut out = Vec::new();
        loop {
            c.skip_newlines();
            let Some(token) = c.peek().cloned() else {
                return match opener {
                    Some((at, keyword)) => Err(ParseError::UnclosedBlock {
                        at: at.clone(),
                        keyword: keyword.to_owned(),
                    }),
                    None => Ok(out),
                };
            };
            match &token.kind {
                TokenKind::Newline => {}
                TokenKind::Close => {
                    c.pos += 1;
                    if opener.is_some() {
                        return Ok(out);
                    }
                    return Err(ParseError::UnexpectedClose { at: c.loc(&token) });
                }
                TokenKind::Open => return Err(ParseError::StrayOpen { at: c.loc(&token) }),
                TokenKind::Word(_) => {
                    let statement = self.statement(c, depth)?;
                    if statement.keyword == "include" {
                        self.include(statement, &mut out, c.source)?;
                    } else {
                        out.push(statement);
                    }
                }
            }
        }
    }

    /// A keyword, its words up to the end of the line or a brace, and its block if a
    /// `{` follows (on the same line or a later one).
    fn statement(&mut self, c: &mut Cursor<'_>, depth: usize) -> Result<Statement, ParseError> {
        let mut words: Vec<(String, std::ops::Range<usize>)> = Vec::new();
        let mut at = None;
        while let Some(token) = c.peek() {
            let TokenKind::Word(text) = &token.kind else {
                break;
            };
            if at.is_none() {
                at = Some(c.loc(token));
            }
            words.push((text.clone(), token.span.clone()));
            c.pos += 1;
        }
        let at = at.unwrap_or_else(|| Loc {
            file: c.file.clone(),
            line: 0,
        });
        let mut words = words.into_iter();
        let keyword = words.next().map(|(w, _)| w).unwrap_or_default();
        let args: Vec<(String, std::ops::Range<usize>)> = words.collect();
        let raw_args = match (args.first(), args.last()) {
            (Some(first), Some(last)) => c
                .source
                .text
                .get(first.1.start..last.1.end)
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        };

        // A block may open on a later line (keepalived accepts `{` alone on a line).
        let save = c.pos;
        c.skip_newlines();
        let block = match c.peek() {
            Some(t) if t.kind == TokenKind::Open => {
                if depth + 1 > MAX_NESTING {
                    return Err(ParseError::TooDeep { at: c.loc(t) });
                }
                c.pos += 1;
                Some(self.block(c, Some((&at, &keyword)), depth + 1)?)
            }
            _ => {
                c.pos = save;
                None
            }
        };
        Ok(Statement {
            keyword,
            args: args.into_iter().map(|(w, _)| w).collect(),
            raw_args,
            block,
            at,
        })
    }

    /// Splices the statements of the files `include` names into `out`.
    fn include(
        &mut self,
        statement: Statement,
        out: &mut Vec<Statement>,
        from: &Source,
    ) -> Result<(), ParseError> {
        let at = statement.at;
        if statement.block.is_some() {
            return Err(ParseError::IncludeBlock { at });
        }
        let [pattern] = statement.args.as_slice() else {
            return Err(ParseError::IncludeArgs {
                at,
                count: statement.args.len(),
            });
        };
        if self.open.len() > MAX_INCLUDE_DEPTH {
            return Err(ParseError::IncludeTooDeep { at });
        }
        let sources = match self.loader.include(&from.dir, pattern) {
            Ok(sources) => sources,
            Err(IncludeError::NoMatch) => {
                self.notes.push(Problem {
                    at,
                    keyword: "include".to_owned(),
                    message: format!(
                        "{pattern}: matches no file; nothing included (keepalived reports the files missing and goes on too)"
                    ),
                });
                return Ok(());
            }
            Err(source) => {
                return Err(ParseError::Include {
                    at,
                    pattern: pattern.clone(),
                    source,
                });
            }
        };
        for source in &sources {
            if self.open.iter().any(|(key, _)| *key == source.key) {
                let mut chain: Vec<&str> = self.open.iter().map(|(_, n)| n.as_str()).collect();
                chain.push(&source.name);
                return Err(ParseError::IncludeCycle {
                    at,
                    path: source.name.clone(),
                    chain: chain.join(" -> "),
                });
            }
            out.extend(self.file(source)?);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Files in memory; patterns are globs over their paths.
    #[derive(Default)]
    pub(crate) struct MemLoader {
        pub files: BTreeMap<String, String>,
    }

    impl MemLoader {
        pub fn with(files: &[(&str, &str)]) -> Self {
            MemLoader {
                files: files
                    .iter()
                    .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
                    .collect(),
            }
        }

        pub fn source(&self, path: &str) -> Source {
            let p = Path::new(path);
            Source {
                name: path.to_owned(),
                key: p.to_owned(),
                dir: p.parent().map(Path::to_owned).unwrap_or_default(),
                text: self.files.get(path).cloned().unwrap_or_default(),
            }
        }
    }

    impl Loader for MemLoader {
        fn include(&mut self, dir: &Path, pattern: &str) -> Result<Vec<Source>, IncludeError> {
            // Lexically normalised, so `../x` matches like a path on disk would.
            let mut parts: Vec<&str> = Vec::new();
            let joined = dir.join(pattern).display().to_string();
            for part in joined.split('/') {
                match part {
                    ".." => {
                        parts.pop();
                    }
                    "." => {}
                    p => parts.push(p),
                }
            }
            let full = parts.join("/");
            let glob =
                glob::Pattern::new(&full).map_err(|e| IncludeError::BadPattern(e.to_string()))?;
            let found: Vec<Source> = self
                .files
                .keys()
                .filter(|k| glob.matches(k))
                .map(|k| self.source(k))
                .collect();
            if found.is_empty() {
                return Err(if pattern.contains(['*', '?', '[']) {
                    IncludeError::NoMatch
                } else {
                    IncludeError::NotFound
                });
            }
            Ok(found)
        }
    }

    fn parse_files(files: &[(&str, &str)]) -> Result<Parsed, ParseError> {
        let mut loader = MemLoader::with(files);
        let root = loader.source(files[0].0);
        parse(&root, &mut loader)
    }

    fn parse_one(text: &str) -> Result<Vec<Statement>, ParseError> {
        parse_files(&[("/k/keepalived.conf", text)]).map(|p| p.statements)
    }

    #[test]
    fn statements_blocks_and_lines() {
        let s = parse_one(
            "global_defs {\n  router_id lb01\n}\n\nvrrp_instance VI_1\n{\n  priority 150\n  virtual_ipaddress { 10.0.0.3/24 dev eth0 }\n}\n",
        )
        .expect("parses");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].keyword, "global_defs");
        assert_eq!(s[0].children()[0].keyword, "router_id");
        assert_eq!(s[0].children()[0].args, ["lb01"]);
        assert_eq!(s[0].children()[0].at.line, 2);
        assert_eq!(s[1].args, ["VI_1"]);
        assert_eq!(s[1].at.line, 5);
        let inner = s[1].children();
        assert_eq!(inner[0].keyword, "priority");
        assert_eq!(inner[0].at.line, 7);
        assert_eq!(inner[1].children()[0].keyword, "10.0.0.3/24");
        assert_eq!(inner[1].children()[0].args, ["dev", "eth0"]);
        assert_eq!(inner[1].at.to_string(), "/k/keepalived.conf:8");
    }

    #[test]
    fn raw_args_keep_quotes() {
        let s = parse_one("script \"/bin/sh -c 'a | b'\"   # check\n").expect("parses");
        assert_eq!(s[0].args, ["/bin/sh -c 'a | b'"]);
        assert_eq!(s[0].raw_args, "\"/bin/sh -c 'a | b'\"");
    }

    #[test]
    fn one_line_blocks_and_words_after_close() {
        let s = parse_one("a { b 1 } c 2\n").expect("parses");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].children()[0].args, ["1"]);
        assert_eq!(s[1].keyword, "c");
    }

    #[test]
    fn unbalanced_braces_are_errors_with_lines() {
        let e = parse_one("vrrp_instance VI_1 {\n  priority 1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/k/keepalived.conf:1: vrrp_instance: its `{` is never closed (missing `}`)"
        );
        let e = parse_one("a {\n}\n}\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/k/keepalived.conf:3: `}` without a matching `{`"
        );
        let e = parse_one("\n{\n}\n").unwrap_err();
        assert!(matches!(e, ParseError::StrayOpen { at } if at.line == 2));
        let e = parse_one("a \"b\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/k/keepalived.conf:1: unterminated double quote"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "a {".repeat(MAX_NESTING + 1) + &"}".repeat(MAX_NESTING + 1);
        assert!(matches!(parse_one(&deep), Err(ParseError::TooDeep { .. })));
        let ok = "a {".repeat(MAX_NESTING) + &"}".repeat(MAX_NESTING);
        assert!(parse_one(&ok).is_ok());
    }

    #[test]
    fn includes_are_spliced_relative_to_the_including_file() {
        let p = parse_files(&[
            (
                "/k/keepalived.conf",
                "global_defs { router_id lb01 }\ninclude conf.d/*.conf\n",
            ),
            ("/k/conf.d/b.conf", "vrrp_instance B {\n}\n"),
            (
                "/k/conf.d/a.conf",
                "vrrp_instance A {\n include ../scripts.inc\n}\n",
            ),
            ("/k/scripts.inc", "\n\npriority 1\n"),
        ])
        .expect("parses");
        let names: Vec<_> = p
            .statements
            .iter()
            .map(|s| s.args.first().map_or(s.keyword.as_str(), String::as_str))
            .collect();
        assert_eq!(names, ["global_defs", "A", "B"]);
        let inner = &p.statements[1].children()[0];
        assert_eq!(inner.keyword, "priority");
        assert_eq!(inner.at.to_string(), "/k/scripts.inc:3");
    }

    #[test]
    fn include_problems() {
        let e = parse_files(&[("/k/a.conf", "\ninclude missing.conf\n")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/k/a.conf:2: include: missing.conf: no such file"
        );
        let p = parse_files(&[("/k/a.conf", "include none/*.conf\n")])
            .expect("a glob may match nothing");
        assert_eq!(p.notes.len(), 1);
        assert_eq!(
            p.notes[0].to_string(),
            "/k/a.conf:1: include: none/*.conf: matches no file; nothing included (keepalived reports the files missing and goes on too)"
        );
        let e = parse_files(&[
            ("/k/a.conf", "include b.conf\n"),
            ("/k/b.conf", "\ninclude a.conf\n"),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/k/b.conf:2: include: /k/a.conf is already being read (include cycle: /k/a.conf -> /k/b.conf -> /k/a.conf)"
        );
        let e = parse_files(&[("/k/a.conf", "include\n")]).unwrap_err();
        assert!(matches!(e, ParseError::IncludeArgs { count: 0, .. }));
        let e = parse_files(&[("/k/a.conf", "include a b\n")]).unwrap_err();
        assert!(matches!(e, ParseError::IncludeArgs { count: 2, .. }));
    }

    #[test]
    fn include_depth_is_bounded() {
        // f0 includes f1 includes f2 ... : no cycle, just deep.
        let names: Vec<String> = (0..=MAX_INCLUDE_DEPTH + 1)
            .map(|i| format!("/k/f{i}.conf"))
            .collect();
        let texts: Vec<String> = (0..=MAX_INCLUDE_DEPTH + 1)
            .map(|i| format!("include f{}.conf\n", i + 1))
            .collect();
        let files: Vec<(&str, &str)> = names
            .iter()
            .zip(&texts)
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let e = parse_files(&files).unwrap_err();
        assert!(matches!(e, ParseError::IncludeTooDeep { .. }), "{e}");
    }
}
