//! Script command lines: splitting a keepalived `script`/`notify*` value into argv the
//! way keepalived 2.x does (`alloc_strvec_quoted_escaped` in lib/parser.c: whitespace
//! separates words, `"…"` and `'…'` group, backslash escapes such as `\"`, `\t`,
//! `\x41`, `\101`), and spotting shell syntax that only a shell would give meaning to.
//! Pure: no I/O, never panics.

/// Why a command line could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("missing terminating {0} quote")]
    UnterminatedQuote(char),
    #[error("a backslash at the end escapes nothing")]
    TrailingBackslash,
}

/// A command line split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub words: Vec<String>,
    /// Shell metacharacters found outside quotes (`|`, `;`, `&`, `<`, `>`, `$`, `` ` ``),
    /// in order of first appearance.
    pub shell: Vec<char>,
}

impl Split {
    pub fn needs_shell(&self) -> bool {
        !self.shell.is_empty()
    }
}

const SHELL_CHARS: &[char] = &['|', ';', '&', '<', '>', '$', '`'];

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Splits `text` into words as keepalived's quoted-and-escaped splitter does.
pub fn split(text: &str) -> Result<Split, SplitError> {
    let mut words = Vec::new();
    let mut shell = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| is_space(*c)).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut word: Vec<u8> = Vec::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            match (quote, c) {
                (None, c) if is_space(c) => break,
                (_, '\\') => {
                    chars.next();
                    escape(&mut chars, &mut word)?;
                }
                (None, '"' | '\'') => {
                    chars.next();
                    quote = Some(c);
                }
                (Some(q), c) if c == q => {
                    chars.next();
                    quote = None;
                }
                (q, c) => {
                    chars.next();
                    if q.is_none() && SHELL_CHARS.contains(&c) && !shell.contains(&c) {
                        shell.push(c);
                    }
                    let mut buf = [0u8; 4];
                    word.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if let Some(q) = quote {
            return Err(SplitError::UnterminatedQuote(q));
        }
        words.push(String::from_utf8_lossy(&word).into_owned());
    }
    Ok(Split { words, shell })
}

/// One escape after a backslash, appended to `word` as keepalived decodes it.
fn escape(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    word: &mut Vec<u8>,
) -> Result<(), SplitError> {
    let Some(c) = chars.next() else {
        return Err(SplitError::TrailingBackslash);
    };
    let byte = match c {
        'x' if chars.peek().is_some_and(char::is_ascii_hexdigit) => {
            let mut value: u8 = 0;
            while let Some(d) = chars.next_if(char::is_ascii_hexdigit) {
                // C's char arithmetic: extra digits shift the first ones out.
                value = value.wrapping_shl(4) | d.to_digit(16).unwrap_or(0) as u8;
            }
            value
        }
        'c' if chars.peek().is_some() => {
            let next = chars.next().map(|n| n as u32).unwrap_or(0);
            (next & 0x1f) as u8
        }
        '0'..='7' => {
            let mut value = c.to_digit(8).unwrap_or(0) as u8;
            for _ in 0..2 {
                match chars.next_if(|d| ('0'..='7').contains(d)) {
                    Some(d) => {
                        value = value
                            .wrapping_shl(3)
                            .wrapping_add(d.to_digit(8).unwrap_or(0) as u8)
                    }
                    None => break,
                }
            }
            value
        }
        'a' => 0x07,
        'b' => 0x08,
        'E' => 0x1b,
        'f' => 0x0c,
        'n' => b'\n',
        'r' => b'\r',
        't' => b'\t',
        'v' => 0x0b,
        other => {
            let mut buf = [0u8; 4];
            word.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            return Ok(());
        }
    };
    word.push(byte);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        split(text).expect("splits").words
    }

    #[test]
    fn whitespace_separates() {
        assert_eq!(words("  /bin/pidof   nginx "), ["/bin/pidof", "nginx"]);
        assert!(words("").is_empty());
    }

    #[test]
    fn quotes_group_and_may_sit_mid_word() {
        assert_eq!(
            words(r#"/bin/sh -c 'ip a | grep x' "a b"c"#),
            ["/bin/sh", "-c", "ip a | grep x", "a bc"]
        );
        assert_eq!(words(r#"say "it's""#), ["say", "it's"]);
    }

    #[test]
    fn escapes() {
        assert_eq!(words(r#"a\ b \"q\" \x41\101\t"#), ["a b", "\"q\"", "AA\t"]);
    }

    #[test]
    fn shell_syntax_outside_quotes_is_reported() {
        let s = split("ip a | grep 10.0.0.3 > /dev/null; echo $?").expect("splits");
        assert_eq!(s.shell, ['|', '>', ';', '$']);
        assert!(s.needs_shell());
        let s = split("/bin/sh -c 'ip a | grep x'").expect("splits");
        assert!(!s.needs_shell(), "quoted: already a shell's business");
        assert!(!split("/bin/pidof nginx").expect("splits").needs_shell());
        assert!(split("a && b").expect("splits").shell == ['&']);
    }

    #[test]
    fn errors() {
        assert_eq!(split("a 'b"), Err(SplitError::UnterminatedQuote('\'')));
        assert_eq!(split("a \"b"), Err(SplitError::UnterminatedQuote('"')));
        assert_eq!(split("a\\"), Err(SplitError::TrailingBackslash));
    }
}
