//! The reply language, pure: what an on-call types back. Case-insensitive;
//! for mail it reads the first line that is neither quoted text nor empty, stops
//! at a signature, and takes the code from the subject (`[SG-4821]`) when the
//! body has none.
//!
//! ```text
//! 4821                 ack
//! ACK 4821 / 4821 ACK  ack
//! 4821 DEMOTE [PIN]    release this node's VIPs and hold it backup
//! 4821 RESUME [PIN]    lift the hold
//! 4821 MUTE 30m [PIN]  no repeats for 30 minutes
//! 4821 FENCE lb02 PIN  power the peer lb02 off (STONITH); the PIN is required
//! STATUS [PIN]         the pair's state, answered on the same channel
//! ```

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Ack,
    Demote,
    Resume,
    Mute(Duration),
    Status,
    /// Fence the node named in [`Parsed::target`].
    Fence,
}

impl Command {
    pub fn word(&self) -> &'static str {
        match self {
            Command::Ack => "ACK",
            Command::Demote => "DEMOTE",
            Command::Resume => "RESUME",
            Command::Mute(_) => "MUTE",
            Command::Status => "STATUS",
            Command::Fence => "FENCE",
        }
    }

    /// Commands that act on the node (beyond acknowledging) may need a PIN.
    pub fn acts(&self) -> bool {
        !matches!(self, Command::Ack)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub command: Command,
    /// The incident code; None only for STATUS.
    pub code: Option<String>,
    pub pin: Option<String>,
    /// FENCE's node: its name or address, as written (lower case).
    pub target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty reply")]
    Empty,
    #[error("no incident code in the reply")]
    NoCode,
    #[error("not understood: {0:?}")]
    NotUnderstood(String),
    #[error("MUTE needs a duration such as 30m, 2h or 90s")]
    BadDuration,
    #[error("FENCE needs the node to fence, e.g. 4821 FENCE lb02 PIN")]
    NoTarget,
}

/// What to send back when a reply is not understood.
pub const HELP: &str = "splitguard: reply CODE to ack; CODE DEMOTE, CODE RESUME, CODE MUTE 30m (add your PIN if you have one); CODE FENCE NODE PIN; STATUS.";

/// Codes are 4 (or, once 9000 are taken, 5) digits.
fn is_code(w: &str) -> bool {
    (4..=5).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_digit())
}

fn is_pin(w: &str) -> bool {
    (4..=8).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_digit())
}

/// `30m`, `2h`, `90s`, `1d`; bare numbers are minutes.
fn duration(w: &str) -> Option<Duration> {
    let (num, unit) = match w.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => w.split_at(i),
        None => (w, "m"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" | "sec" | "secs" => n,
        "m" | "min" | "mins" => n.checked_mul(60)?,
        "h" | "hr" | "hrs" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// The line that carries the command: the first non-empty line that is not
/// quoted, before any signature or "On … wrote:" attribution.
pub fn command_line(text: &str) -> Option<&str> {
    for line in text.lines() {
        let l = line.trim();
        if l == "--" || l == "-- " || l.starts_with("-----Original Message") {
            return None;
        }
        if l.is_empty() || l.starts_with('>') {
            continue;
        }
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("on ") && lower.ends_with("wrote:") {
            return None;
        }
        return Some(l);
    }
    None
}

/// `line` fit to keep or show: every number that could be a PIN becomes `***`.
/// The first code-shaped number stays (that is the incident code, as
/// [`parse`] reads it) unless STATUS, which takes no code, came first; any
/// other 4-8 digit number is masked, a wrong PIN included (a near miss of the
/// right one).
pub fn redact_pins(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut code_seen = false;
    let mut status_seen = false;
    let mut word = String::new();
    let mut flush = |word: &mut String, out: &mut String| {
        let core = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if core.eq_ignore_ascii_case("status") {
            status_seen = true;
        }
        if is_pin(core) {
            if !code_seen && !status_seen && is_code(core) {
                code_seen = true;
            } else if let Some(at) = word.find(core) {
                word.replace_range(at..at + core.len(), "***");
            }
        }
        out.push_str(word);
        word.clear();
    };
    for c in line.chars() {
        if c.is_whitespace() || c == ',' || c == ';' {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The `[SG-<code>]` tag of a subject, if any.
pub fn subject_code(subject: &str) -> Option<String> {
    let upper = subject.to_ascii_uppercase();
    let start = upper.find("[SG-")? + 4;
    let rest = subject.get(start..)?;
    let end = rest.find(']')?;
    let code = rest.get(..end)?.trim();
    is_code(code).then(|| code.to_owned())
}

/// Parses one reply. `context_code` is the code the reply is known to answer
/// (from a mail's subject or references), used when the text names none.
pub fn parse(text: &str, context_code: Option<&str>) -> Result<Parsed, ParseError> {
    let line = command_line(text).ok_or(ParseError::Empty)?;
    // Words: letters and digits; punctuation ("4821.", "ack!") is noise.
    let words: Vec<String> = line
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .map(|w| {
            w.trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_ascii_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Err(ParseError::Empty);
    }
    let not_understood = || ParseError::NotUnderstood(redact_pins(line).chars().take(80).collect());
    let mut code: Option<String> = None;
    let mut command: Option<Command> = None;
    let mut pin: Option<String> = None;
    let mut target: Option<String> = None;
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        match w {
            "ack" | "ok" | "acknowledge" if command.is_none() => command = Some(Command::Ack),
            "demote" | "release" if command.is_none() => command = Some(Command::Demote),
            "resume" if command.is_none() => command = Some(Command::Resume),
            "status" if command.is_none() => command = Some(Command::Status),
            "fence" | "stonith" if command.is_none() => {
                // The node comes next: a name or an address, never a PIN or
                // a code (a node named by digits alone is too easily a typo).
                let node = words
                    .get(i + 1)
                    .filter(|w| !is_pin(w) && !is_code(w))
                    .ok_or(ParseError::NoTarget)?;
                target = Some(node.clone());
                command = Some(Command::Fence);
                i += 1;
            }
            "mute" if command.is_none() => {
                // "MUTE 4821 2h": the code may sit between the word and the duration.
                let next = words.get(i + 1).map(String::as_str);
                if code.is_none()
                    && next.is_some_and(is_code)
                    && words.get(i + 2).and_then(|n| duration(n)).is_some()
                {
                    code = next.map(str::to_owned);
                    i += 1;
                }
                let d = words
                    .get(i + 1)
                    .and_then(|n| duration(n))
                    .ok_or(ParseError::BadDuration)?;
                command = Some(Command::Mute(d));
                i += 1;
            }
            _ if code.is_none() && is_code(w) && !matches!(command, Some(Command::Status)) => {
                code = Some(w.to_owned())
            }
            _ if pin.is_none() && is_pin(w) && (code.is_some() || command.is_some()) => {
                pin = Some(w.to_owned())
            }
            _ => return Err(not_understood()),
        }
        i += 1;
    }
    let command = match (command, &code) {
        (Some(c), _) => c,
        // A bare code acks.
        (None, Some(_)) => Command::Ack,
        (None, None) => return Err(not_understood()),
    };
    if command == Command::Status {
        return Ok(Parsed {
            command,
            code: None,
            pin,
            target,
        });
    }
    let code = code
        .or_else(|| context_code.map(str::to_owned))
        .ok_or(ParseError::NoCode)?;
    Ok(Parsed {
        command,
        code: Some(code),
        pin,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_masked_and_codes_kept() {
        for (line, shown) in [
            ("4821 DEMOTE 7741", "4821 DEMOTE ***"),
            ("demote 4821, 7741!", "demote 4821, ***!"),
            ("STATUS 7741", "STATUS ***"),
            ("4821 MUTE 30m 12345678", "4821 MUTE 30m ***"),
            ("ACK 4821", "ACK 4821"),
            ("12345678 DEMOTE", "*** DEMOTE"),
            ("4821 DEMOTE 7741 please", "4821 DEMOTE *** please"),
        ] {
            assert_eq!(redact_pins(line), shown, "{line}");
        }
        let e = parse("4821 DEMOTE 7741 please", None).unwrap_err();
        assert!(!e.to_string().contains("7741"), "{e}");
    }

    fn p(text: &str) -> Result<Parsed, ParseError> {
        parse(text, None)
    }

    fn ok(command: Command, code: &str, pin: Option<&str>) -> Result<Parsed, ParseError> {
        Ok(Parsed {
            command,
            code: Some(code.into()),
            pin: pin.map(str::to_owned),
            target: None,
        })
    }

    #[test]
    fn the_forms_of_ack() {
        for t in [
            "4821",
            "ACK 4821",
            "4821 ACK",
            "ack 4821",
            "  4821.  ",
            "Ok 4821!",
        ] {
            assert_eq!(p(t), ok(Command::Ack, "4821", None), "{t:?}");
        }
    }

    #[test]
    fn commands_with_and_without_pin() {
        assert_eq!(p("4821 DEMOTE"), ok(Command::Demote, "4821", None));
        assert_eq!(
            p("4821 demote 7741"),
            ok(Command::Demote, "4821", Some("7741"))
        );
        assert_eq!(p("4821 Resume"), ok(Command::Resume, "4821", None));
        assert_eq!(
            p("4821 MUTE 30m"),
            ok(Command::Mute(Duration::from_secs(1800)), "4821", None)
        );
        assert_eq!(
            p("mute 4821 2h 7741"),
            ok(
                Command::Mute(Duration::from_secs(7200)),
                "4821",
                Some("7741")
            )
        );
        assert_eq!(
            p("STATUS"),
            Ok(Parsed {
                command: Command::Status,
                code: None,
                pin: None,
                target: None,
            })
        );
    }

    #[test]
    fn fence_names_its_node_and_takes_a_pin() {
        let fence = |code: &str, node: &str, pin: Option<&str>| {
            Ok(Parsed {
                command: Command::Fence,
                code: Some(code.into()),
                pin: pin.map(str::to_owned),
                target: Some(node.into()),
            })
        };
        assert_eq!(
            p("4821 FENCE lb02 7741"),
            fence("4821", "lb02", Some("7741"))
        );
        assert_eq!(
            p("fence LB02 4821 7741"),
            fence("4821", "lb02", Some("7741"))
        );
        assert_eq!(p("4821 FENCE 192.0.2.6"), fence("4821", "192.0.2.6", None));
        assert_eq!(p("4821 FENCE"), Err(ParseError::NoTarget));
        assert_eq!(p("4821 FENCE 7741"), Err(ParseError::NoTarget));
        assert_eq!(redact_pins("4821 FENCE lb02 7741"), "4821 FENCE lb02 ***");
        assert!(Command::Fence.acts());
    }

    #[test]
    fn mail_replies_with_quotes_signatures_and_subject_codes() {
        let body = "\n\nDEMOTE\n\n-- \nAlice\n\nOn Tue, 24 Nov 2026 splitguard wrote:\n> 4821 ...";
        assert_eq!(parse(body, Some("4821")), ok(Command::Demote, "4821", None));
        let body = "> quoted 1111\nack\nOn Tue wrote:\n";
        assert_eq!(parse(body, Some("4821")), ok(Command::Ack, "4821", None));
        assert_eq!(parse("ack", None), Err(ParseError::NoCode));
        assert_eq!(
            subject_code("Re: [SG-4821] CRITICAL split_brain"),
            Some("4821".into())
        );
        assert_eq!(subject_code("RE: [sg-4821]"), Some("4821".into()));
        assert_eq!(subject_code("no tag"), None);
        assert_eq!(subject_code("[SG-12]"), None);
    }

    #[test]
    fn anything_else_is_not_understood() {
        assert!(matches!(
            p("hello there"),
            Err(ParseError::NotUnderstood(_))
        ));
        assert!(matches!(
            p("4821 REBOOT"),
            Err(ParseError::NotUnderstood(_))
        ));
        assert_eq!(p("4821 MUTE"), Err(ParseError::BadDuration));
        assert_eq!(p("4821 MUTE forever"), Err(ParseError::BadDuration));
        assert_eq!(p(""), Err(ParseError::Empty));
        assert_eq!(p("> only quoted"), Err(ParseError::Empty));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in ".{0,200}", ctx in proptest::option::of("[0-9]{4}")) {
            let _ = parse(&text, ctx.as_deref());
            let _ = subject_code(&text);
        }
    }
}
