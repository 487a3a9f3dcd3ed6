//! `splitguard import-keepalived FILE`: reads a keepalived.conf (with its includes)
//! and produces equivalent splitguard TOML. So far the pure front half: [`lexer`]
//! (text to tokens), [`parser`] (tokens to statements, includes spliced through a
//! [`Loader`]) and [`script`] (keepalived's command-line splitting).

pub mod lexer;
pub mod parser;
pub mod script;

use std::fmt;

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
