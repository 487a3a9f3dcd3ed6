//! The lab's pictures: `lab scenario --html/--svg` (who owned the VIP as gw
//! saw it, lane by lane, with the fault, the heal and the pages) and `lab
//! bench --html` (each measurement's runs per implementation on a shared
//! axis). Pure: plain data in, a `String` out; the command writes the file.
//! Self-contained by construction: inline SVG and CSS, no script, and a
//! Content-Security-Policy that forbids the page any fetch.

mod bench;
mod timeline;

use std::fmt::Write as _;

pub use bench::bench_report;
pub use timeline::{scenario_report, timeline_svg};

/// `s` safe as XML/HTML text and as a quoted attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab and newline are not XML.
            c if c.is_control() && c != '\t' && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A coordinate with one decimal at most, so the files stay small.
fn num(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == 0.0 || !r.is_finite() {
        return "0".into();
    }
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// About how wide `text` is at `size` px in a sans-serif font, for placing
/// labels without a layout engine.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.55
}

/// A linear axis widened to round ends, its ticks and the decimals their
/// labels need.
#[derive(Debug, Clone, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    decimals: usize,
}

impl Axis {
    /// About `target` round steps covering `[lo, hi]`.
    fn new(lo: f64, hi: f64, target: usize) -> Axis {
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo, lo + 1.0) };
        let raw = (hi - lo) / target.max(1) as f64;
        let mag = 10f64.powf(raw.log10().floor());
        let step = match raw / mag {
            n if n <= 1.0 => 1.0,
            n if n <= 2.0 => 2.0,
            n if n <= 5.0 => 5.0,
            _ => 10.0,
        } * mag;
        let decimals = (-step.log10().floor()).max(0.0) as usize;
        // The small slack keeps 20.000001 from adding a whole step.
        let first = (lo / step + 1e-9).floor() as i64;
        let last = (hi / step - 1e-9).ceil() as i64;
        Axis {
            lo: first as f64 * step,
            hi: last as f64 * step,
            ticks: (first..=last).map(|i| i as f64 * step).collect(),
            decimals,
        }
    }

    /// `v`'s position between `x0` and `x1`.
    fn x(&self, v: f64, x0: f64, x1: f64) -> f64 {
        x0 + (v - self.lo) / (self.hi - self.lo) * (x1 - x0)
    }

    fn label(&self, v: f64) -> String {
        format!("{v:.*}", self.decimals)
    }
}

/// The horizontal axis line both figures draw under their plots.
fn axis_line(out: &mut String, x0: f64, x1: f64, y: f64) {
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{}\" x2=\"{}\" y1=\"{2}\" y2=\"{2}\"/>",
        num(x0),
        num(x1),
        num(y)
    );
}

/// The page around `body`: one file, styles inline, and a policy that lets it
/// load nothing (no font, stylesheet, image or script from anywhere).
fn page(title: &str, body: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{PAGE_CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    );
    out
}

const PAGE_CSS: &str = "body{font:14px/1.4 sans-serif;color:#222;margin:1.5em auto;max-width:1000px;padding:0 1em}\n\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}h3{font-size:1em;margin:1.5em 0 .3em}\n\
table.figures{border-collapse:collapse;margin:1em 0}\n\
table.figures th,table.figures td{border:1px solid #ccc;padding:.25em .5em;vertical-align:top}\n\
table.figures td.n{text-align:right;white-space:nowrap}\n\
p.note{color:#555;white-space:pre-line}\n\
p.ratios{margin:.2em 0;color:#333}\n\
svg{display:block;max-width:100%;height:auto}\n";

/// An HTML table: `header` then `rows`; columns in `numeric` right-aligned.
fn html_table(header: &[String], rows: &[Vec<String>], numeric: &[usize]) -> String {
    let mut out = String::from("<table class=\"figures\">\n<tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if numeric.contains(&i) {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// Test helpers: a well-formedness check for the SVG parts and the checks
/// every report must pass.
#[cfg(test)]
pub(crate) mod check {
    /// Panics unless `xml` is well-formed as far as these files need: tags
    /// nest and close, attribute values are quoted and free of `<`, and text
    /// has no raw `<` or stray `&`.
    pub fn well_formed(xml: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = xml;
        while let Some(open) = rest.find('<') {
            check_text(&rest[..open]);
            rest = &rest[open..];
            let close = rest
                .find('>')
                .unwrap_or_else(|| panic!("unclosed tag: {rest:.80}"));
            let tag = &rest[1..close];
            rest = &rest[close + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack
                    .pop()
                    .unwrap_or_else(|| panic!("</{name}> closes nothing"));
                assert_eq!(top, name.trim(), "</{name}> closes <{top}>");
                continue;
            }
            if tag.starts_with('!') || tag.starts_with('?') {
                continue;
            }
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name: String = body.chars().take_while(|c| !c.is_whitespace()).collect();
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "bad tag name in <{tag}>"
            );
            check_attributes(&body[name.len()..], tag);
            if !self_closing {
                stack.push(name);
            }
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    }

    fn check_attributes(mut attrs: &str, tag: &str) {
        loop {
            attrs = attrs.trim_start();
            if attrs.is_empty() {
                return;
            }
            let eq = attrs
                .find('=')
                .unwrap_or_else(|| panic!("attribute without value in <{tag}>"));
            let name = attrs[..eq].trim();
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'),
                "bad attribute name {name:?} in <{tag}>"
            );
            let value = &attrs[eq + 1..];
            assert!(value.starts_with('"'), "unquoted attribute in <{tag}>");
            let end = value[1..]
                .find('"')
                .unwrap_or_else(|| panic!("unterminated attribute in <{tag}>"));
            check_text(&value[1..end + 1]);
            attrs = &value[end + 2..];
        }
    }

    fn check_text(text: &str) {
        assert!(
            !text.contains('<') && !text.contains('>'),
            "raw bracket in {text:?}"
        );
        let mut rest = text;
        while let Some(at) = rest.find('&') {
            rest = &rest[at..];
            let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                .iter()
                .any(|e| rest.starts_with(e));
            assert!(ok, "stray & in {text:?}");
            rest = &rest[1..];
        }
    }

    /// Every `<svg …>…</svg>` in `html`, checked.
    pub fn svgs_well_formed(html: &str) -> usize {
        let mut n = 0;
        let mut rest = html;
        while let Some(start) = rest.find("<svg") {
            let end = rest[start..].find("</svg>").expect("svg closes") + start + 6;
            well_formed(&rest[start..end]);
            n += 1;
            rest = &rest[end..];
        }
        n
    }

    /// Nothing that could make a browser fetch: no remote reference, no
    /// script, no external stylesheet or font (the SVG namespace is a name,
    /// not a fetch).
    pub fn fetches_nothing(doc: &str) {
        let lower = doc.to_ascii_lowercase();
        for bad in [
            "src=", "href=", "<script", "@import", "url(", "<link", "<img", "<iframe", "<object",
            "<use",
        ] {
            assert!(!lower.contains(bad), "{bad} in the output");
        }
        let without_ns = lower.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(
            !without_ns.contains("http://") && !without_ns.contains("https://"),
            "a URL in the output"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_hostile_text_inert() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script> 'q'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt; &#39;q&#39;"
        );
        assert_eq!(escape("lb01\u{0}"), "lb01\u{fffd}");
        check::well_formed(&format!(
            "<t a=\"{0}\">{0}</t>",
            escape("<a href='x'>&amp;</a>\"")
        ));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(12.0), "12");
        assert_eq!(num(12.04), "12");
        assert_eq!(num(12.06), "12.1");
        assert_eq!(num(-0.01), "0");
        assert_eq!(num(f64::NAN), "0");
    }

    #[test]
    fn axes_end_on_round_ticks() {
        let a = Axis::new(-2.0, 20.0, 12);
        assert_eq!((a.lo, a.hi, a.decimals), (-2.0, 20.0, 0));
        assert_eq!(a.ticks.len(), 12);
        assert_eq!(a.x(9.0, 100.0, 210.0), 210.0 - 11.0 * 5.0);
        let a = Axis::new(0.0, 0.3, 5);
        assert_eq!((a.lo, a.decimals, a.ticks.len()), (0.0, 1, 4));
        assert_eq!(a.label(a.ticks[2]), "0.2");
        let a = Axis::new(0.0, 3611.0, 6);
        assert_eq!((a.lo, a.hi), (0.0, 4000.0));
        let flat = Axis::new(0.0, 0.0, 5);
        assert!(flat.hi > flat.lo);
    }

    #[test]
    #[should_panic(expected = "closes")]
    fn the_check_catches_bad_nesting() {
        check::well_formed("<svg><g></svg></g>");
    }
}
