//! `lab scenario`'s pictures: one figure per scenario, a panel per
//! implementation, a lane per MAC that answered gw (or is a lab node's), bars
//! where it answered, the two-owner and no-owner stretches shaded across the
//! lanes, the fault and the heal as vertical lines, and the pages that reached
//! gw as markers with their text as labels and tooltips. The headline figures
//! are the text table's.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{Axis, axis_line, escape, html_table, num, page, text_width};
use crate::configs::GW_ADDR;
use crate::scenario::{
    AlertSeen, OwnerAt, RunResult, TABLE_HEADER, Timeline, first_line, impl_label, scenario_label,
    table_note, table_row,
};

const WIDTH: f64 = 960.0;
/// The lane labels' gutter.
const LEFT: f64 = 150.0;
const RIGHT: f64 = 16.0;
const LANE_H: f64 = 26.0;
const LANE_GAP: f64 = 4.0;
const PAGE_ROW: f64 = 14.0;
const LABEL_SIZE: f64 = 10.0;

/// The figure's styles: inside a standalone SVG, once in the HTML page.
const SVG_CSS: &str = ".t{font-size:13px;fill:#222}.b{font-weight:bold}\
.s{font-size:10px;fill:#555}.h{font-size:15px;font-weight:bold;fill:#111}\
.fail{fill:#b00}.lanebg{fill:#f3f3f3}.grid{stroke:#ddd;stroke-width:1}\
.axis{stroke:#888;stroke-width:1}\
.c0{fill:#2f6db5}.c1{fill:#e08a1e}.c2{fill:#8a5cb8}\
.dual{fill:#d62728;fill-opacity:.25}.zero{fill:#777;fill-opacity:.25}\
.fault{stroke:#111;stroke-width:1.5}.heal{stroke:#1e8c45;stroke-width:1.5;stroke-dasharray:5 3}\
.faultt{fill:#111}.healt{fill:#1e8c45}\
.page circle{stroke-width:1.5}.critical circle{fill:#c0392b;stroke:#c0392b}\
.warning circle{fill:#e67e22;stroke:#e67e22}.info circle,.other circle{fill:#2e86c1;stroke:#2e86c1}\
.resolved circle{fill:#fff;stroke:#1e8c45}\n";

/// A standalone SVG of one scenario's runs (each a panel, in order): what
/// `--svg` writes and the README shows.
pub fn timeline_svg(runs: &[&RunResult]) -> String {
    figure(runs, true)
}

/// The whole `lab scenario` run as one HTML page: the table's figures, then
/// a figure per scenario.
pub fn scenario_report(results: &[RunResult]) -> String {
    let mut body = String::from("<h1>splitguard lab scenario</h1>\n");
    let _ = writeln!(
        body,
        "<p>Who owned the VIP as gw ({GW_ADDR}) saw it, for each scenario and \
         implementation, each run in a fresh lab. One lane per MAC: a bar where \
         that MAC answered gw's who-has, red shading where two answered, grey where \
         none did; the fault and its heal as vertical lines; the pages that reached \
         gw's webhook as dots (hover for the text).</p>"
    );
    let header: Vec<String> = TABLE_HEADER.iter().map(|h| h.to_string()).collect();
    let rows: Vec<Vec<String>> = results.iter().map(|r| table_row(r).to_vec()).collect();
    body.push_str(&html_table(&header, &rows, &[2, 3, 4]));
    let _ = writeln!(
        body,
        "<p class=\"note\">{}</p>",
        escape(&table_note(results))
    );
    // One figure per scenario and family, in the order they ran.
    let mut groups: Vec<Vec<&RunResult>> = Vec::new();
    for r in results {
        match groups
            .iter_mut()
            .find(|g| g[0].scenario == r.scenario && g[0].family == r.family)
        {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    for g in &groups {
        let _ = writeln!(
            body,
            "<section class=\"scenario\">\n<h2>{}</h2>\n{}</section>",
            escape(&scenario_label(g[0].scenario, g[0].family)),
            figure(g, false)
        );
    }
    let css = format!("<style>{SVG_CSS}</style>\n");
    page("splitguard lab scenario", &format!("{css}{body}"))
}

/// The figure; `standalone` adds the XML namespace, its own styles and the
/// title the HTML page gives as a heading instead.
fn figure(runs: &[&RunResult], standalone: bool) -> String {
    let axis = time_axis(runs);
    let mut out = String::new();
    let mut y = 8.0;
    if standalone && let Some(r) = runs.first() {
        let _ = writeln!(
            out,
            "<text class=\"h\" x=\"8\" y=\"{}\">{}</text>",
            num(y + 14.0),
            escape(&scenario_label(r.scenario, r.family))
        );
        y += 24.0;
    }
    if let Some(r) = runs.first() {
        let heal = r.scenario.heal_text();
        let text = if heal.is_empty() {
            format!("fault at 0 s: {}", r.scenario.fault_text_in(r.family))
        } else {
            format!(
                "fault at 0 s: {}; heal: {}",
                r.scenario.fault_text_in(r.family),
                heal
            )
        };
        let _ = writeln!(
            out,
            "<text class=\"t\" x=\"8\" y=\"{}\">{}</text>",
            num(y + 12.0),
            escape(&text)
        );
        y += 22.0;
    }
    y += legend(&mut out, y);
    for r in runs {
        y += panel(&mut out, r, &axis, y) + 10.0;
    }
    let height = y.ceil();
    let mut svg = String::new();
    let ns = if standalone {
        " xmlns=\"http://www.w3.org/2000/svg\""
    } else {
        ""
    };
    let title = runs
        .first()
        .map(|r| {
            format!(
                "{}: who owned the VIP as gw saw it",
                scenario_label(r.scenario, r.family)
            )
        })
        .unwrap_or_default();
    let _ = write!(
        svg,
        "<svg{ns} class=\"timeline\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" role=\"img\">\n<title>{}</title>\n",
        escape(&title),
        w = num(WIDTH),
        h = num(height)
    );
    if standalone {
        let _ = writeln!(svg, "<style>{SVG_CSS}</style>");
    }
    svg.push_str(&out);
    svg.push_str("</svg>\n");
    svg
}

/// One time axis for every panel of a figure, so they line up: from the
/// first sample (before the fault) to the window's end.
fn time_axis(runs: &[&RunResult]) -> Axis {
    let mut lo: f64 = 0.0;
    let mut hi: f64 = 0.0;
    for r in runs {
        hi = hi.max(r.scenario.window().as_secs_f64());
        if let Ok(o) = &r.outcome {
            let t = &o.timeline;
            hi = hi.max(t.window_s);
            if let Some(first) = t.samples.first() {
                // To a tenth, so a request a few ms before −2 s does not
                // widen the axis by a whole step.
                lo = lo.min((first.at_s * 10.0).round() / 10.0);
            }
        }
    }
    Axis::new(lo, hi, 12)
}

/// The legend row; returns its height.
fn legend(out: &mut String, y: f64) -> f64 {
    let cy = y + 9.0;
    let mut x = 8.0;
    let mut item = |out: &mut String, mark: String, text: &str| {
        out.push_str(&mark.replace("{X}", &num(x)).replace("{X2}", &num(x + 8.0)));
        let _ = writeln!(
            out,
            "<text class=\"s\" x=\"{}\" y=\"{}\">{}</text>",
            num(x + 22.0),
            num(cy + 3.5),
            escape(text)
        );
        x += 22.0 + text_width(text, LABEL_SIZE) + 12.0;
    };
    let top = num(cy - 6.0);
    out.push_str("<g class=\"legend\">\n");
    item(
        out,
        format!(
            "<rect class=\"c0\" x=\"{{X}}\" y=\"{top}\" width=\"8\" height=\"12\"/>\
             <rect class=\"c1\" x=\"{{X2}}\" y=\"{top}\" width=\"8\" height=\"12\"/>"
        ),
        "this MAC answered gw's who-has",
    );
    item(
        out,
        format!("<rect class=\"dual\" x=\"{{X}}\" y=\"{top}\" width=\"16\" height=\"12\"/>"),
        "two owners",
    );
    item(
        out,
        format!("<rect class=\"zero\" x=\"{{X}}\" y=\"{top}\" width=\"16\" height=\"12\"/>"),
        "no owner",
    );
    let (l0, l1) = (num(cy - 7.0), num(cy + 7.0));
    item(
        out,
        format!("<line class=\"fault\" x1=\"{{X2}}\" x2=\"{{X2}}\" y1=\"{l0}\" y2=\"{l1}\"/>"),
        "fault",
    );
    item(
        out,
        format!("<line class=\"heal\" x1=\"{{X2}}\" x2=\"{{X2}}\" y1=\"{l0}\" y2=\"{l1}\"/>"),
        "heal",
    );
    let c = num(cy);
    item(
        out,
        format!("<g class=\"page critical\"><circle cx=\"{{X2}}\" cy=\"{c}\" r=\"4.5\"/></g>"),
        "page: red critical, orange warning, blue info",
    );
    item(
        out,
        format!("<g class=\"page resolved\"><circle cx=\"{{X2}}\" cy=\"{c}\" r=\"4.5\"/></g>"),
        "resolved notice",
    );
    out.push_str("</g>\n");
    24.0
}

/// One implementation's panel at `y`; returns its height.
fn panel(out: &mut String, r: &RunResult, axis: &Axis, y: f64) -> f64 {
    let o = match &r.outcome {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(
                out,
                "<text class=\"t\" x=\"8\" y=\"{}\"><tspan class=\"b\">{}</tspan> \
                 <tspan class=\"fail\">FAILED: {}</tspan></text>",
                num(y + 14.0),
                escape(impl_label(r.imp)),
                escape(first_line(e))
            );
            return 22.0;
        }
    };
    let _ = write!(
        out,
        "<g class=\"panel\" data-impl=\"{}\">\n<text class=\"t\" x=\"8\" y=\"{}\">\
         <tspan class=\"b\">{}</tspan>: dual-owner {:.2} s · zero-owner {:.2} s · \
         owner changes {}</text>\n",
        escape(r.imp.name()),
        num(y + 14.0),
        escape(impl_label(r.imp)),
        o.dual_s,
        o.zero_s,
        o.owner_changes
    );
    let t = &o.timeline;
    let x0 = LEFT;
    let x1 = WIDTH - RIGHT;
    let x = |v: f64| axis.x(v.clamp(axis.lo, axis.hi), x0, x1);
    let lanes = lanes(t);
    let lanes_top = y + 22.0;
    let n = lanes.len() as f64;
    let lanes_h = (n * LANE_H + (n - 1.0).max(0.0) * LANE_GAP).max(LANE_H);
    let pages = place_pages(&o.alerts, &x);
    let rows = pages.iter().map(|p| p.row + 1).max().unwrap_or(1) as f64;
    let pages_top = lanes_top + lanes_h + 6.0;
    let pages_h = rows * PAGE_ROW + 4.0;
    let axis_y = pages_top + pages_h;

    // Backgrounds and the grid first, so the data sits on top.
    for (i, _) in lanes.iter().enumerate() {
        let ly = lanes_top + i as f64 * (LANE_H + LANE_GAP);
        let _ = writeln!(
            out,
            "<rect class=\"lanebg\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
            num(x0),
            num(ly),
            num(x1 - x0),
            num(LANE_H)
        );
    }
    for &tick in &axis.ticks {
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\"/>",
            num(x(tick)),
            num(lanes_top),
            num(axis_y)
        );
    }
    // Two owners and no owner, across every lane.
    for (class, what, spans) in [
        ("dual", "two owners", spans(t, |s| s.macs.len() >= 2)),
        ("zero", "no owner", spans(t, |s| s.macs.is_empty())),
    ] {
        for (a, b) in spans {
            let _ = writeln!(
                out,
                "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\">\
                 <title>{what}: {} to {} ({:.2} s)</title></rect>",
                num(x(a)),
                num(lanes_top - 2.0),
                num((x(b) - x(a)).max(1.0)),
                num(lanes_h + 4.0),
                signed(a),
                signed(b),
                b - a
            );
        }
    }
    for (i, lane) in lanes.iter().enumerate() {
        let ly = lanes_top + i as f64 * (LANE_H + LANE_GAP);
        let _ = write!(
            out,
            "<g class=\"lane\" data-node=\"{}\" data-mac=\"{}\">\n\
             <text class=\"t b\" x=\"8\" y=\"{}\">{}</text>\
             <text class=\"s\" x=\"8\" y=\"{}\">{}</text>\n",
            escape(&lane.node),
            escape(&lane.mac),
            num(ly + 11.0),
            escape(&lane.node),
            num(ly + 23.0),
            escape(&lane.mac)
        );
        for (a, b) in spans(t, |s| s.macs.contains(&lane.mac)) {
            let _ = writeln!(
                out,
                "<rect class=\"bar {}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\">\
                 <title>{} ({}) answered: {} to {}</title></rect>",
                lane.colour,
                num(x(a)),
                num(ly + 3.0),
                num((x(b) - x(a)).max(1.0)),
                num(LANE_H - 6.0),
                escape(&lane.node),
                escape(&lane.mac),
                signed(a),
                signed(b)
            );
        }
        out.push_str("</g>\n");
    }
    // The pages' row(s).
    let _ = writeln!(
        out,
        "<text class=\"t b\" x=\"8\" y=\"{}\">pages at gw</text>",
        num(pages_top + 11.0)
    );
    for p in &pages {
        let cy = pages_top + p.row as f64 * PAGE_ROW + 7.0;
        let _ = writeln!(
            out,
            "<g class=\"page {} {}\"><title>{}</title>\
             <circle cx=\"{}\" cy=\"{}\" r=\"4.5\"/>\
             <text class=\"s\" x=\"{}\" y=\"{}\"{}>{}</text></g>",
            p.status_class,
            p.severity_class,
            escape(&p.tooltip),
            num(p.x),
            num(cy),
            num(p.text_x),
            num(cy + 3.5),
            if p.anchor_end {
                " text-anchor=\"end\""
            } else {
                ""
            },
            escape(&p.label)
        );
    }
    // The fault and the heal over lanes and pages, then the axis.
    let mut edge = |class: &str, at: f64, text: &str, title: String| {
        let _ = write!(
            out,
            "<line class=\"{class}\" x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\"><title>{3}</title></line>\n\
             <text class=\"s {class}t\" x=\"{4}\" y=\"{5}\">{text}</text>\n",
            num(x(at)),
            num(lanes_top - 4.0),
            num(axis_y),
            escape(&title),
            num(x(at) + 3.0),
            num(axis_y + 24.0)
        );
    };
    edge(
        "fault",
        0.0,
        "fault",
        format!("fault at 0 s: {}", r.scenario.fault_text_in(r.family)),
    );
    if let Some(h) = t.heal_s {
        edge(
            "heal",
            h,
            "heal",
            format!("heal at {}: {}", signed(h), r.scenario.heal_text()),
        );
    }
    axis_line(out, x0, x1, axis_y);
    for &tick in &axis.ticks {
        let _ = writeln!(
            out,
            "<text class=\"s\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            num(x(tick)),
            num(axis_y + 12.0),
            escape(&signed_tick(tick))
        );
    }
    out.push_str("</g>\n");
    axis_y + 28.0 - y
}

/// A lane: whose MAC, and its bars' colour class.
struct Lane {
    node: String,
    mac: String,
    colour: &'static str,
}

/// The lab's nodes first (lb01, lb02: a node that never answered keeps its
/// empty lane, which is the point in S2), then any other MAC gw heard.
fn lanes(t: &Timeline) -> Vec<Lane> {
    let mut out: Vec<Lane> = t
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Lane {
            node: n.node.clone(),
            mac: n.mac.clone(),
            colour: if i == 0 { "c0" } else { "c1" },
        })
        .collect();
    let seen: BTreeSet<&String> = t.samples.iter().flat_map(|s| &s.macs).collect();
    for mac in seen {
        if !out.iter().any(|l| &l.mac == mac) {
            out.push(Lane {
                node: "other".into(),
                mac: mac.clone(),
                colour: "c2",
            });
        }
    }
    out
}

/// The stretches where `pred` holds, in seconds: a sample stands until the
/// next one (at most two periods, so a stall in gw's sampling is not drawn
/// as an answer), and back-to-back samples merge into one bar.
fn spans(t: &Timeline, pred: impl Fn(&OwnerAt) -> bool) -> Vec<(f64, f64)> {
    let every = if t.every_s > 0.0 { t.every_s } else { 0.25 };
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (i, s) in t.samples.iter().enumerate() {
        if !pred(s) {
            continue;
        }
        let next = t
            .samples
            .get(i + 1)
            .map_or(s.at_s + every, |n| n.at_s)
            .min(s.at_s + 2.0 * every);
        match out.last_mut() {
            Some(last) if (last.1 - s.at_s).abs() < 1e-9 => last.1 = next,
            _ => out.push((s.at_s, next)),
        }
    }
    out
}

/// A page's marker as placed.
struct PlacedPage {
    x: f64,
    row: usize,
    text_x: f64,
    anchor_end: bool,
    label: String,
    tooltip: String,
    status_class: &'static str,
    severity_class: &'static str,
}

/// Markers left to right, each label in the first row where it overlaps no
/// other (pages often come in bursts: S5 has four within a second).
fn place_pages(alerts: &[AlertSeen], x: &dyn Fn(f64) -> f64) -> Vec<PlacedPage> {
    let mut sorted: Vec<&AlertSeen> = alerts.iter().collect();
    sorted.sort_by_key(|a| a.after);
    let mut row_ends: Vec<f64> = Vec::new();
    let mut out = Vec::new();
    for a in sorted {
        let px = x(a.after.as_secs_f64());
        let label = a.label();
        let w = text_width(&label, LABEL_SIZE);
        let anchor_end = px + 7.0 + w > WIDTH - 4.0;
        let (start, end, text_x) = if anchor_end {
            (px - 7.0 - w, px + 5.0, px - 7.0)
        } else {
            (px - 5.0, px + 7.0 + w, px + 7.0)
        };
        let row = match row_ends.iter().position(|&e| e + 6.0 <= start) {
            Some(r) => {
                row_ends[r] = end;
                r
            }
            None => {
                row_ends.push(end);
                row_ends.len() - 1
            }
        };
        out.push(PlacedPage {
            x: px,
            row,
            text_x,
            anchor_end,
            tooltip: format!(
                "{} {} {} from {}, {} after the fault",
                a.status,
                a.severity,
                a.kind,
                a.node,
                signed(a.after.as_secs_f64())
            ),
            label,
            status_class: match a.status.as_str() {
                "firing" => "firing",
                "resolved" => "resolved",
                _ => "other",
            },
            severity_class: match a.severity.as_str() {
                "critical" => "critical",
                "warning" => "warning",
                "info" => "info",
                _ => "other",
            },
        });
    }
    out
}

/// `+3.40 s`, `−1.25 s`.
fn signed(v: f64) -> String {
    if v < 0.0 {
        format!("−{:.2} s", -v)
    } else {
        format!("+{v:.2} s")
    }
}

/// An axis label: `0 s`, `+4 s`, `−2 s`.
fn signed_tick(v: f64) -> String {
    let r = v.round() as i64;
    match r {
        0 => "0 s".into(),
        r if r < 0 => format!("−{} s", -r),
        r => format!("+{r} s"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::check;
    use super::*;
    use crate::configs::Family;
    use crate::report::Implementation;
    use crate::scenario::{NodeMac, Outcome, Scenario};

    const LB01: &str = "4a:22:11:45:cd:44";
    const LB02: &str = "0a:62:60:1a:a9:77";

    fn alert(kind: &str, status: &str, node: &str, severity: &str, ms: u64) -> AlertSeen {
        AlertSeen {
            kind: kind.into(),
            status: status.into(),
            node: node.into(),
            severity: severity.into(),
            after: Duration::from_millis(ms),
        }
    }

    /// S2 as keepalived makes it: lb01 alone, then lb01 and lb02 from +3 s
    /// to the heal at +12 s, a stretch with no owner at +15 s, and a third
    /// MAC once.
    fn s2_keepalived() -> RunResult {
        let mut samples = Vec::new();
        for i in -8..80 {
            let at = i as f64 * 0.25;
            let macs: Vec<&str> = match at {
                a if (3.0..12.0).contains(&a) => vec![LB01, LB02],
                a if (15.0..15.5).contains(&a) => vec![],
                a if (17.0..17.25).contains(&a) => vec![LB01, "de:ad:be:ef:00:01"],
                _ => vec![LB01],
            };
            samples.push(OwnerAt {
                at_s: at,
                macs: macs.into_iter().map(String::from).collect(),
            });
        }
        RunResult {
            scenario: Scenario::S2,
            family: Family::Ipv4,
            imp: Implementation::Keepalived,
            outcome: Ok(Outcome {
                dual_s: 9.25,
                zero_s: 0.5,
                owner_changes: 4,
                samples: 80,
                alerts: vec![
                    alert("split_brain", "firing", "lb02", "critical", 3400),
                    alert("split_brain", "resolved", "lb02", "critical", 12900),
                ],
                timeline: Timeline {
                    samples,
                    every_s: 0.25,
                    window_s: 20.0,
                    heal_s: Some(12.01),
                    nodes: vec![
                        NodeMac {
                            node: "lb01".into(),
                            mac: LB01.into(),
                        },
                        NodeMac {
                            node: "lb02".into(),
                            mac: LB02.into(),
                        },
                    ],
                },
            }),
            logs: String::new(),
        }
    }

    fn count(hay: &str, needle: &str) -> usize {
        hay.matches(needle).count()
    }

    #[test]
    fn a_lane_per_mac_with_overlap_gap_fault_heal_and_pages() {
        let r = s2_keepalived();
        let svg = timeline_svg(&[&r]);
        check::well_formed(&svg);
        check::fetches_nothing(&svg);
        let (legend, panel) = svg.split_at(svg.find("<g class=\"panel\"").expect("a panel"));
        assert!(legend.contains("<g class=\"legend\">"));
        // lb01, lb02 and the stray MAC.
        assert_eq!(count(panel, "<g class=\"lane\""), 3, "{svg}");
        assert!(svg.contains(&format!("data-mac=\"{LB02}\"")));
        assert!(svg.contains(">other</text>"));
        // The overlap: one merged stretch, +3 to +12 s, and the stray MAC's.
        assert_eq!(count(panel, "<rect class=\"dual\""), 2, "{svg}");
        assert!(
            svg.contains("two owners: +3.00 s to +12.00 s (9.00 s)"),
            "{svg}"
        );
        assert_eq!(count(panel, "<rect class=\"zero\""), 1, "{svg}");
        assert!(svg.contains("no owner: +15.00 s to +15.50 s"), "{svg}");
        // lb02's one bar; lb01's broken by the gap only.
        assert_eq!(count(&svg, "<rect class=\"bar c1\""), 1, "{svg}");
        assert_eq!(count(&svg, "<rect class=\"bar c0\""), 2, "{svg}");
        assert_eq!(count(panel, "<line class=\"fault\""), 1);
        assert_eq!(count(panel, "<line class=\"heal\""), 1);
        assert!(svg.contains("heal at +12.01 s: lb02&#39;s firewall rule is removed"));
        assert!(svg.contains("firing critical split_brain from lb02, +3.40 s after the fault"));
        assert!(svg.contains(">split_brain@lb02 +3.4s</text>"));
        assert!(svg.contains("<g class=\"page resolved critical\">"));
        assert!(svg.contains("dual-owner 9.25 s · zero-owner 0.50 s · owner changes 4"));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        // Coordinates keep one decimal at most.
        assert!(!svg.contains(".00\""), "long coordinates");
    }

    #[test]
    fn a_silent_node_keeps_its_lane_and_a_failed_run_says_why() {
        let mut r = s2_keepalived();
        r.imp = Implementation::Splitguard;
        if let Ok(o) = &mut r.outcome {
            for s in &mut o.timeline.samples {
                s.macs = vec![LB01.into()];
            }
        }
        let failed = RunResult {
            scenario: Scenario::S2,
            family: Family::Ipv4,
            imp: Implementation::Keepalived,
            outcome: Err("the pair did not settle\nlog".into()),
            logs: String::new(),
        };
        let svg = timeline_svg(&[&r, &failed]);
        check::well_formed(&svg);
        let panel = &svg[svg.find("<g class=\"panel\"").expect("a panel")..];
        assert_eq!(count(panel, "<g class=\"lane\""), 2);
        assert_eq!(count(panel, "<rect class=\"bar c1\""), 0);
        assert_eq!(count(panel, "<rect class=\"dual\""), 0);
        assert!(
            svg.contains("FAILED: the pair did not settle</tspan>"),
            "{svg}"
        );
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() {
        let mut r = s2_keepalived();
        let evil = "<script>alert('x')</script>\"&amp;";
        if let Ok(o) = &mut r.outcome {
            o.alerts.push(alert(evil, evil, evil, evil, 5000));
            o.alerts.push(alert(evil, "firing", evil, "critical", 6000));
            o.timeline.nodes[0].node = evil.into();
            o.timeline.nodes[0].mac = evil.into();
            o.timeline.samples[0].macs = vec![evil.into()];
        }
        let html = scenario_report(&[r]);
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;amp;"));
        assert_eq!(check::svgs_well_formed(&html), 1);
        check::fetches_nothing(&html);
        // The table's cells too.
        assert!(
            html.contains("<td>split_brain@lb02 +3.4s, &lt;script&gt;alert(&#39;x&#39;)"),
            "{html}"
        );
    }

    #[test]
    fn the_report_has_the_table_a_figure_per_scenario_and_no_fetch() {
        let mut sg = s2_keepalived();
        sg.imp = Implementation::Splitguard;
        let mut s5 = s2_keepalived();
        s5.scenario = Scenario::S5;
        if let Ok(o) = &mut s5.outcome {
            o.alerts = (0..4)
                .map(|i| alert("isolated", "firing", "lb0x", "warning", 3200 + i * 10))
                .collect();
        }
        let html = scenario_report(&[s2_keepalived(), sg, s5]);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("Content-Security-Policy"));
        assert_eq!(count(&html, "<section class=\"scenario\">"), 2);
        assert_eq!(count(&html, "<g class=\"panel\""), 3);
        assert_eq!(check::svgs_well_formed(&html), 2);
        check::fetches_nothing(&html);
        assert!(html.contains("<td class=\"n\">9.25</td>"), "{html}");
        assert!(html.contains("<h2>S2 VRRP firewalled on the backup</h2>"));
        // A burst of pages at one instant takes a row each.
        let rows: BTreeSet<&str> = html
            .match_indices("<g class=\"page firing warning\">")
            .map(|(i, _)| {
                let rest = &html[i..];
                let cy = rest.find("cy=\"").map(|j| &rest[j + 4..]).unwrap_or("");
                &cy[..cy.find('"').unwrap_or(0)]
            })
            .collect();
        assert_eq!(rows.len(), 4, "{rows:?}");
    }

    #[test]
    fn spans_merge_back_to_back_samples_and_stop_at_a_stall() {
        let t = Timeline {
            samples: [0.0, 0.25, 0.5, 2.0, 2.25]
                .iter()
                .map(|&at_s| OwnerAt {
                    at_s,
                    macs: vec![LB01.into()],
                })
                .collect(),
            every_s: 0.25,
            ..Timeline::default()
        };
        assert_eq!(spans(&t, |_| true), vec![(0.0, 1.0), (2.0, 2.5)]);
        assert_eq!(spans(&t, |s| s.at_s > 10.0), vec![]);
    }
}
