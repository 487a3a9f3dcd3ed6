//! The keepalived.conf lexer: text to [`Token`]s with line numbers and byte spans.
//! Owns comment stripping, double quotes and `{`/`}` splitting, following keepalived's
//! `read_line`/`decomment`/`alloc_strvec` (lib/parser.c): `!` and `#` start a
//! comment anywhere outside double quotes (`\!` and `\#` are literal), `{` and `}`
//! are tokens of their own outside double quotes (even inside a word), and a double-
//! quoted string is one word without its quotes. Single quotes and other backslash
//! escapes are left as written; scripts are re-split from the raw text later, as
//! keepalived does (see `script.rs`). Pure: no I/O, never panics.

use std::ops::Range;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A word, quotes removed.
    Word(String),
    /// `{`
    Open,
    /// `}`
    Close,
    /// The end of a line (statements end there).
    Newline,
}

/// One token with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    /// 1-based.
    pub line: u32,
    /// Bytes of the source text this token covers (for a word: with its quotes).
    pub span: Range<usize>,
}

/// Why a text could not be split into tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LexError {
    #[error("unterminated double quote")]
    UnterminatedQuote { line: u32 },
}

impl LexError {
    pub fn line(&self) -> u32 {
        match self {
            LexError::UnterminatedQuote { line } => *line,
        }
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\x0b' | '\x0c')
}

/// Splits `text` into tokens; every line ends with a [`TokenKind::Newline`].
pub fn lex(text: &str) -> Result<Vec<Token>, LexError> {
    let mut tokens = Vec::new();
    let mut offset = 0;
    for (index, line) in text.split('\n').enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        lex_line(line, offset, number, &mut tokens)?;
        tokens.push(Token {
            kind: TokenKind::Newline,
            line: number,
            span: offset + line.len()..offset + line.len(),
        });
        offset += line.len() + 1;
    }
    Ok(tokens)
}

fn lex_line(line: &str, base: usize, number: u32, out: &mut Vec<Token>) -> Result<(), LexError> {
    let mut chars = line.char_indices().peekable();
    // The word being built: its text and where it started.
    let mut word: Option<(String, usize)> = None;
    let flush = |word: &mut Option<(String, usize)>, end: usize, out: &mut Vec<Token>| {
        if let Some((text, start)) = word.take() {
            out.push(Token {
                kind: TokenKind::Word(text),
                line: number,
                span: base + start..base + end,
            });
        }
    };
    while let Some((at, c)) = chars.next() {
        match c {
            c if is_space(c) => flush(&mut word, at, out),
            '!' | '#' => {
                flush(&mut word, at, out);
                return Ok(());
            }
            '{' | '}' => {
                flush(&mut word, at, out);
                out.push(Token {
                    kind: if c == '{' {
                        TokenKind::Open
                    } else {
                        TokenKind::Close
                    },
                    line: number,
                    span: base + at..base + at + 1,
                });
            }
            '"' => {
                // A quote ends a bare word and starts a word of its own (alloc_strvec).
                flush(&mut word, at, out);
                let mut text = String::new();
                let mut end = None;
                while let Some((j, q)) = chars.next() {
                    match q {
                        '"' => {
                            end = Some(j + 1);
                            break;
                        }
                        '\\' => match chars.peek() {
                            Some(&(_, e @ ('"' | '\\'))) => {
                                text.push(e);
                                chars.next();
                            }
                            _ => text.push('\\'),
                        },
                        other => text.push(other),
                    }
                }
                let Some(end) = end else {
                    return Err(LexError::UnterminatedQuote { line: number });
                };
                out.push(Token {
                    kind: TokenKind::Word(text),
                    line: number,
                    span: base + at..base + end,
                });
            }
            '\\' if matches!(chars.peek(), Some((_, '!' | '#'))) => {
                if let Some((_, escaped)) = chars.next() {
                    word.get_or_insert_with(|| (String::new(), at))
                        .0
                        .push(escaped);
                }
            }
            other => word
                .get_or_insert_with(|| (String::new(), at))
                .0
                .push(other),
        }
    }
    flush(&mut word, line.len(), out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        lex(text)
            .expect("lexes")
            .into_iter()
            .map(|t| t.kind)
            .filter(|k| *k != TokenKind::Newline)
            .collect()
    }

    fn w(s: &str) -> TokenKind {
        TokenKind::Word(s.to_owned())
    }

    #[test]
    fn words_and_braces() {
        assert_eq!(
            kinds("vrrp_instance VI_1 {\n  priority 150\n}"),
            vec![
                w("vrrp_instance"),
                w("VI_1"),
                TokenKind::Open,
                w("priority"),
                w("150"),
                TokenKind::Close
            ]
        );
    }

    #[test]
    fn braces_split_words() {
        assert_eq!(
            kinds("vrrp_instance VI_1{ }x"),
            vec![
                w("vrrp_instance"),
                w("VI_1"),
                TokenKind::Open,
                TokenKind::Close,
                w("x")
            ]
        );
    }

    #[test]
    fn comments_anywhere_outside_quotes() {
        assert_eq!(kinds("! a comment\n# another"), vec![]);
        assert_eq!(
            kinds("priority 150 # the master"),
            vec![w("priority"), w("150")]
        );
        assert_eq!(kinds("priority 150!x"), vec![w("priority"), w("150")]);
        assert_eq!(
            kinds("script \"grep '#' /x ! y { }\""),
            vec![w("script"), w("grep '#' /x ! y { }")]
        );
        assert_eq!(kinds(r"auth_pass a\#b"), vec![w("auth_pass"), w("a#b")]);
    }

    #[test]
    fn quotes_make_one_word() {
        assert_eq!(
            kinds(r#"script "/bin/sh -c \"a b\"" user"#),
            vec![w("script"), w(r#"/bin/sh -c "a b""#), w("user")]
        );
        // A quote mid-word starts a new word, as keepalived's alloc_strvec does.
        assert_eq!(kinds(r#"ab"c d"e"#), vec![w("ab"), w("c d"), w("e")]);
        assert_eq!(kinds(r#""""#), vec![w("")]);
    }

    #[test]
    fn lines_and_spans() {
        let text = "a\n  bb \"c\"\r\n";
        let tokens = lex(text).expect("lexes");
        let words: Vec<_> = tokens
            .iter()
            .filter(|t| matches!(t.kind, TokenKind::Word(_)))
            .map(|t| (t.line, &text[t.span.clone()]))
            .collect();
        assert_eq!(words, vec![(1, "a"), (2, "bb"), (2, "\"c\"")]);
    }

    #[test]
    fn unterminated_quote_names_the_line() {
        assert_eq!(
            lex("a\nscript \"/bin/true\n"),
            Err(LexError::UnterminatedQuote { line: 2 })
        );
    }
}
