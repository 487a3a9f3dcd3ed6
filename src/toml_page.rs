//! splitguard.toml(5): the config file's man page, rendered with `roff` from
//! the node crate's reference (`splitguard_node::config::reference`), which
//! a test holds to the schema. Layout only; every word is the reference's.

use roff::{Inline, Roff, bold, italic, roman};
use splitguard_node::config::reference::{
    DESCRIPTION, EXAMPLE_RUN, EXAMPLE_WATCH, FILES, Key, KeyDefault, SECTIONS, SEE_ALSO, SUMMARY,
    Section,
};

/// The page's file name in the output directory.
pub const FILE_NAME: &str = "splitguard.toml.5";

/// The whole page as roff source. `roff` escapes text lines (backslashes,
/// hyphens, a leading `.` or `'`); control lines carry only fixed words.
pub fn render() -> String {
    let mut page = Roff::new();
    let version = format!("splitguard {}", env!("CARGO_PKG_VERSION"));
    // An empty date: the page is generated, and a build date would make
    // packages irreproducible. `""` is roff's empty argument.
    page.control(
        "TH",
        [
            "SPLITGUARD.TOML",
            "5",
            "\"\"",
            version.as_str(),
            "File Formats",
        ],
    );
    // No hyphenation, ragged right: key names and paths stay whole.
    page.control("nh", []).control("ad", ["l"]);

    page.control("SH", ["NAME"]);
    page.text([roman(format!("splitguard.toml - {SUMMARY}"))]);

    page.control("SH", ["SYNOPSIS"]);
    let mut paths = Vec::new();
    for (i, (path, _)) in FILES.iter().enumerate() {
        if i > 0 {
            paths.push(roff::line_break());
        }
        paths.push(bold(*path));
    }
    page.text(paths);

    page.control("SH", ["DESCRIPTION"]);
    for (i, paragraph) in DESCRIPTION.iter().enumerate() {
        if i > 0 {
            page.control("PP", []);
        }
        page.text(marked(paragraph));
    }

    page.control("SH", ["TABLES AND KEYS"]);
    page.text(marked(
        "Each table below is written `[name]` (or `[[name]]`, repeated for each entry) and takes exactly the keys listed; a key's type, default and limits follow its name.",
    ));
    for section in SECTIONS {
        render_section(&mut page, section);
    }

    page.control("SH", ["EXAMPLES"]);
    page.text(marked("A minimal file for `splitguard run`:"));
    example(&mut page, EXAMPLE_RUN);
    page.control("PP", []);
    page.text(marked(
        "A minimal file for `splitguard watch` beside keepalived, with DEMOTE and RESUME replies stopping and starting it:",
    ));
    example(&mut page, EXAMPLE_WATCH);

    page.control("SH", ["FILES"]);
    for (path, what) in FILES {
        page.control("TP", []);
        page.text([bold(*path)]);
        page.text(marked(what));
    }

    page.control("SH", ["SEE ALSO"]);
    let mut refs = Vec::new();
    for (i, (name, section)) in SEE_ALSO.iter().enumerate() {
        if i > 0 {
            refs.push(roman(", "));
        }
        refs.push(bold(*name));
        refs.push(roman(format!("({section})")));
    }
    page.text(refs);
    ascii(&page.render())
}

/// Non-ASCII characters (the reference's `…`) as groff's `\[uXXXX]`, so the
/// page needs no input encoding (preconv) to format cleanly.
fn ascii(roff: &str) -> String {
    let mut out = String::with_capacity(roff.len());
    for c in roff.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

fn render_section(page: &mut Roff, section: &Section) {
    // `.SS` without arguments heads the section with the next text line, which
    // roff escapes as any text (headings hold quotes and brackets).
    page.control("SS", []);
    page.text([roman(section.heading)]);
    page.text(marked(section.about));
    if let Some(free) = section.free_keys {
        page.control("PP", []);
        page.text(marked(free));
    }
    for key in section.keys {
        page.control("TP", []);
        page.text(tag(key));
        page.text(marked(key.about));
    }
}

/// `name (type, secret; default: value)`.
fn tag(key: &Key) -> Vec<Inline> {
    let mut out = vec![bold(key.name), roman(" (")];
    out.push(italic(key.kind));
    if key.secret {
        out.push(roman(", secret"));
    }
    match key.default {
        KeyDefault::Required => out.push(roman("; required)")),
        KeyDefault::Value(value) => {
            out.push(roman("; default: "));
            out.extend(marked(value));
            out.push(roman(")"));
        }
    }
    out
}

/// An example file, set as it is written.
fn example(page: &mut Roff, text: &str) {
    page.control("RS", ["4"]);
    page.control("nf", []);
    for line in text.lines() {
        page.text([roman(line)]);
    }
    page.control("fi", []);
    page.control("RE", []);
}

/// The reference's text, its backticked code in bold.
fn marked(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| if i % 2 == 1 { bold(part) } else { roman(part) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_bold_and_text_is_escaped() {
        assert_eq!(
            marked("a `b-c` d"),
            vec![roman("a "), bold("b-c"), roman(" d")]
        );
        let page = render();
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "roff's preamble");
        assert!(
            page.contains("\\fBsecret_file_mode\\fR"),
            "key names in bold"
        );
        assert!(page.contains("splitguard.toml \\- "), "hyphens escaped");
        assert!(page.is_ascii());
        assert!(
            page.contains("reboot_command\\fR, \\[u2026])"),
            "an ellipsis, escaped"
        );
        // No text line may start a request by accident.
        for line in page.lines().filter(|l| !l.starts_with('.')) {
            assert!(!line.starts_with('\''), "{line}");
        }
    }
}
