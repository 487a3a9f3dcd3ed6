//! `lab bench`'s picture: per measurement, every implementation's runs on
//! one shared axis (a dot per run, the min–max line, the median's tick, the
//! figures written beside), with the ratios the text table shows.

use std::fmt::Write as _;

use super::{Axis, axis_line, escape, html_table, num, page};
use crate::report::{Implementation, Measurement, Report, format_ratio, ratio, stats};

const WIDTH: f64 = 960.0;
/// The implementations' names.
const LEFT: f64 = 150.0;
/// The figures beside each lane.
const RIGHT: f64 = 260.0;
const LANE_H: f64 = 24.0;
const LANE_GAP: f64 = 4.0;

const BENCH_CSS: &str = ".t{font-size:13px;fill:#222}.s{font-size:11px;fill:#444}\
.fail{fill:#b00}.lanebg{fill:#f3f3f3}.grid{stroke:#ddd;stroke-width:1}\
.axis{stroke:#888;stroke-width:1}.range{stroke:#555;stroke-width:1.5}\
.median{stroke:#111;stroke-width:2.5}.pt{fill-opacity:.75;stroke:#fff;stroke-width:.8}\
.i0{fill:#2f6db5}.i1{fill:#1b9e8a}.i2{fill:#8a5cb8}.i3{fill:#e08a1e}\n";

/// The bench's report as one HTML page: the text table's cells, then a strip
/// plot per measurement.
pub fn bench_report(report: &Report) -> String {
    let mut body = String::from("<h1>splitguard lab bench</h1>\n");
    body.push_str(
        "<p>Each measurement's runs per implementation on a shared axis: a dot per run \
         (hover for its value), a line from the smallest to the largest, a tick at the \
         median. The figures and ratios are the text table's (ratios are of medians).</p>\n",
    );
    let grid = report.grid();
    if let Some((header, rows)) = grid.split_first() {
        let numeric: Vec<usize> = (1..header.len()).collect();
        body.push_str(&html_table(header, rows, &numeric));
    }
    let mut footer = String::new();
    report.footer(&mut footer, "");
    let _ = writeln!(body, "<p class=\"note\">{}</p>", escape(footer.trim()));
    for &m in &report.rows {
        let _ = writeln!(
            body,
            "<section class=\"measurement\">\n<h3>{}</h3>",
            escape(&m.label())
        );
        let ratios = ratios(report, m);
        if !ratios.is_empty() {
            let _ = writeln!(
                body,
                "<p class=\"ratios\">{}</p>",
                escape(&ratios.join(" · "))
            );
        }
        body.push_str(&strip_plot(report, m));
        body.push_str("</section>\n");
    }
    page(
        "splitguard lab bench",
        &format!("<style>{BENCH_CSS}</style>\n{body}"),
    )
}

/// The ratio columns with a value for `m`, as `splitguard / keepalived 0.11`.
fn ratios(report: &Report, m: Measurement) -> Vec<String> {
    if !m.has_ratio() {
        return Vec::new();
    }
    report
        .ratio_columns()
        .into_iter()
        .filter_map(|(name, a, b)| {
            let r = ratio(report.median_of(m, a), report.median_of(m, b))?;
            Some(format!("{name} {}", format_ratio(Some(r))))
        })
        .collect()
}

/// One measurement's lanes: the implementations that ran it.
fn strip_plot(report: &Report, m: Measurement) -> String {
    let lanes: Vec<(usize, Implementation)> = report
        .columns
        .iter()
        .enumerate()
        .filter(|(_, imp)| report.samples(m, **imp).is_some())
        .map(|(i, imp)| (i, *imp))
        .collect();
    let values: Vec<f64> = lanes
        .iter()
        .filter_map(|(_, imp)| report.samples(m, *imp))
        .flat_map(|s| s.values.iter().copied().filter(|v| v.is_finite()))
        .collect();
    let lo = values.iter().copied().fold(0.0, f64::min);
    let hi = values.iter().copied().fold(lo, f64::max);
    let axis = Axis::new(lo, hi, 6);
    let x0 = LEFT;
    let x1 = WIDTH - RIGHT;
    let x = |v: f64| axis.x(v, x0, x1);
    let top = 6.0;
    let n = lanes.len().max(1) as f64;
    let axis_y = top + n * (LANE_H + LANE_GAP);
    let height = axis_y + 20.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg class=\"strip\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" role=\"img\"><title>{}</title>",
        escape(&m.label()),
        w = num(WIDTH),
        h = num(height)
    );
    for &tick in &axis.ticks {
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\"/>\
             <text class=\"s\" x=\"{0}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>",
            num(x(tick)),
            num(top),
            num(axis_y),
            num(axis_y + 14.0),
            escape(&axis.label(tick))
        );
    }
    axis_line(&mut out, x0, x1, axis_y);
    for (row, (colour, imp)) in lanes.iter().enumerate() {
        let Some(samples) = report.samples(m, *imp) else {
            continue;
        };
        let ly = top + row as f64 * (LANE_H + LANE_GAP);
        let cy = ly + LANE_H / 2.0;
        let _ = writeln!(
            out,
            "<g class=\"impl\" data-impl=\"{0}\"><rect class=\"lanebg\" x=\"{1}\" y=\"{2}\" \
             width=\"{3}\" height=\"{4}\"/><text class=\"t\" x=\"8\" y=\"{5}\">{0}</text>",
            escape(imp.name()),
            num(x0),
            num(ly),
            num(x1 - x0),
            num(LANE_H),
            num(cy + 4.5)
        );
        let failed = match samples.failures.len() {
            0 => String::new(),
            k => format!(" · {k} failed"),
        };
        match stats(&samples.values) {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "<line class=\"range\" x1=\"{}\" x2=\"{}\" y1=\"{2}\" y2=\"{2}\"/>",
                    num(x(s.min)),
                    num(x(s.max)),
                    num(cy)
                );
                for (i, v) in samples.values.iter().enumerate() {
                    // Spread equal values a little so five identical runs
                    // show as five dots.
                    let jitter = (i % 5) as f64 * 3.0 - 6.0;
                    let _ = writeln!(
                        out,
                        "<circle class=\"pt i{colour}\" cx=\"{}\" cy=\"{}\" r=\"3.5\">\
                         <title>{} run {}: {}</title></circle>",
                        num(x(*v)),
                        num(cy + jitter),
                        escape(imp.name()),
                        i + 1,
                        escape(&m.format(*v))
                    );
                }
                let _ = writeln!(
                    out,
                    "<line class=\"median\" x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\"/>",
                    num(x(s.median)),
                    num(ly + 2.0),
                    num(ly + LANE_H - 2.0)
                );
                let _ = writeln!(
                    out,
                    "<text class=\"s\" x=\"{}\" y=\"{}\">median {} · min {} · max {} · n={}{}</text>",
                    num(x1 + 8.0),
                    num(cy + 4.0),
                    escape(&m.format(s.median)),
                    escape(&m.format(s.min)),
                    escape(&m.format(s.max)),
                    s.n,
                    failed
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "<text class=\"s fail\" x=\"{}\" y=\"{}\">no run gave a figure{}</text>",
                    num(x0 + 8.0),
                    num(cy + 4.0),
                    failed
                );
            }
        }
        out.push_str("</g>\n");
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;
    use crate::report::Flavour;

    fn report() -> Report {
        let f = Measurement::Failover(Flavour::V2OneSecond);
        let cpu = Measurement::IdleCpu(Flavour::V2OneSecond);
        let mut r = Report::with_columns(
            vec![f, cpu],
            5,
            vec![Implementation::Splitguard, Implementation::Keepalived],
        );
        for v in [383.0, 381.0, 384.0, 383.5, 382.0] {
            r.record(f, Implementation::Splitguard, Ok(v));
        }
        for v in [3611.0, 3610.0, 3615.0, 3610.0] {
            r.record(f, Implementation::Keepalived, Ok(v));
        }
        r.record(
            f,
            Implementation::Keepalived,
            Err("<script>alert(\"x\")</script> & more".into()),
        );
        r.record(cpu, Implementation::Splitguard, Ok(0.1));
        r.record(cpu, Implementation::Keepalived, Ok(0.05));
        r
    }

    fn count(hay: &str, needle: &str) -> usize {
        hay.matches(needle).count()
    }

    #[test]
    fn each_measurement_has_its_lanes_dots_figures_and_ratio() {
        let html = bench_report(&report());
        assert_eq!(check::svgs_well_formed(&html), 2);
        check::fetches_nothing(&html);
        assert_eq!(count(&html, "<section class=\"measurement\">"), 2);
        assert_eq!(count(&html, "<g class=\"impl\""), 4);
        assert_eq!(count(&html, "<circle class=\"pt i0\""), 6);
        assert_eq!(count(&html, "<circle class=\"pt i1\""), 5);
        assert!(
            html.contains("median 383 · min 381 · max 384 · n=5</text>"),
            "{html}"
        );
        assert!(
            html.contains("median 3610 · min 3610 · max 3615 · n=4 · 1 failed</text>"),
            "{html}"
        );
        assert!(
            html.contains("<p class=\"ratios\">splitguard / keepalived 0.11</p>"),
            "{html}"
        );
        assert!(
            html.contains("<p class=\"ratios\">splitguard / keepalived 2.00</p>"),
            "{html}"
        );
        // The text table's cells.
        assert!(
            html.contains("<td class=\"n\">383 (381–384)</td>"),
            "{html}"
        );
        // The failure's text is inert.
        assert!(!html.contains("<script"));
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more"));
    }

    #[test]
    fn a_measurement_nobody_ran_draws_nothing_and_one_without_figures_says_so() {
        let mut r = report();
        let h = Measurement::Handover(Flavour::V2OneSecond);
        r.rows.push(h);
        r.record(h, Implementation::Keepalived, Err("gone".into()));
        let html = bench_report(&r);
        assert_eq!(check::svgs_well_formed(&html), 3);
        assert!(html.contains("no run gave a figure · 1 failed"), "{html}");
        let empty = Report::with_columns(vec![h], 1, vec![Implementation::Splitguard]);
        let html = bench_report(&empty);
        assert_eq!(check::svgs_well_formed(&html), 1);
        assert_eq!(count(&html, "<g class=\"impl\""), 0);
    }
}
