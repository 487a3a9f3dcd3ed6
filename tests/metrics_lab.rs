//! `/metrics` scraped by a real Prometheus (Debian `prometheus`) in the lab, the
//! target up and the series queryable; `promtool check metrics` passes on the
//! exposition. The same run checks the Grafana dashboard
//! (`contrib/grafana/splitguard.json`): every panel's expression names only
//! families the lab's daemons export, and Prometheus answers each one. Needs
//! root and prometheus; fails without them (the dashboard's own checks,
//! without a lab, need neither).

mod common;

use common::*;
use serde_json::Value;
use splitguard_lab::wait_for;
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn prometheus_scrapes_metrics_and_answers_the_grafana_dashboard() {
    assert!(
        std::path::Path::new("/usr/bin/prometheus").exists(),
        "install the Debian package prometheus (contrib/test.sh does)"
    );
    let lab = pair_lab("metrics");
    let cfg = sg_config(&lab, "lb01", 150, 2, "1s", "\n[arbiter]\nenabled = false\n").replacen(
        "\n\n[[instance]]",
        "\nmetrics_listen = \"192.0.2.5:9745\"\n\n[[instance]]",
        1,
    );
    let lb01 = start_splitguard(&lab, "lb01", &cfg);
    expect_owner(&lab, Some("lb01"), &[&lb01], "lb01 master");
    // lb02 exports the families that exist only when configured (arbiter
    // targets, witness, fencing) and pages through a channel that refuses, so
    // the dashboard's every panel has a family to name and most have samples.
    let lb02 = start_splitguard(&lab, "lb02", &lb02_config(&lab));

    let text = http_get(&lab, "http://192.0.2.5:9745/metrics");
    assert!(
        text.contains("splitguard_instance_state{instance=\"VI_1\",state=\"MASTER\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("splitguard_adverts_sent_total{instance=\"VI_1\"}"),
        "{text}"
    );
    // promtool reads the exposition on stdin.
    let exposition = lab.write_file("metrics.txt", &text).expect("write");
    let check = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("promtool check metrics < {}", exposition.display()),
        ])
        .output()
        .expect("promtool runs");
    assert!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let prom_cfg = lab
        .write_file(
            "prometheus.yml",
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: splitguard\n    static_configs:\n      - targets: ['192.0.2.5:9745', '192.0.2.6:9745']\n",
        )
        .expect("config");
    let _prom = lab
        .spawn(
            "gw",
            "prometheus",
            &[
                "prometheus",
                &format!("--config.file={}", prom_cfg.display()),
                &format!("--storage.tsdb.path={}", lab.dir().join("tsdb").display()),
                "--web.listen-address=192.0.2.254:9090",
            ],
        )
        .expect("prometheus starts");
    let up = wait_for(Duration::from_secs(60), || {
        let t = http_get(&lab, "http://192.0.2.254:9090/api/v1/targets");
        (t.matches("\"health\":\"up\"").count() == 2).then_some(t)
    });
    assert!(
        up.is_some(),
        "targets never both up: {}\n{}",
        http_get(&lab, "http://192.0.2.254:9090/api/v1/targets"),
        logs(&[&lb01, &lb02])
    );
    let q = wait_for(Duration::from_secs(30), || {
        let r = http_get(
            &lab,
            "http://192.0.2.254:9090/api/v1/query?query=splitguard_instance_state%7Bstate%3D%22MASTER%22%7D",
        );
        r.contains("\"VI_1\"").then_some(r)
    })
    .expect("the series is queryable");
    assert!(q.contains("\"1\"]"), "{q}");

    // The dashboard names only families the daemons export (both nodes'
    // `# TYPE` lines; `up` is Prometheus's own per target). The Alertmanager
    // instances' families start with lb02's first post to them.
    let lb02_text = wait_for(Duration::from_secs(30), || {
        let t = http_get(&lab, "http://192.0.2.6:9745/metrics");
        t.contains("# TYPE splitguard_alerts_instance_up ")
            .then_some(t)
    })
    .unwrap_or_else(|| {
        panic!(
            "lb02 never posted to its Alertmanager instances:\n{}",
            logs(&[&lb01, &lb02])
        )
    });
    let mut families = exported_families(&text);
    families.extend(exported_families(&lb02_text));
    for f in [
        "splitguard_witness_peer_heard",
        "splitguard_fence_gate_closed",
        "splitguard_arbiter_reachable",
    ] {
        assert!(
            families.contains_key(f),
            "lb02 exports no {f}: {families:?}"
        );
    }
    families.insert("up".into(), "gauge".into());
    let board = dashboard();
    let unknown = unknown_metrics(&board, &families);
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));

    // Prometheus answers every panel's query, variables substituted; those
    // whose families always have samples in this lab answer with data.
    let queries = queries(&board);
    let exprs: Vec<String> = queries.iter().map(|q| substitute(&q.expr)).collect();
    let answers = wait_for(Duration::from_secs(30), || {
        let a = ask_prometheus(&lab, &exprs);
        // A refusal will not heal; missing data may, while samples arrive.
        let refused = a.iter().any(|r| r["status"] != "success");
        let empty = queries
            .iter()
            .zip(&a)
            .any(|(q, r)| must_have_data(&q.expr) && result_len(r) == 0);
        (refused || !empty).then_some(a)
    })
    .unwrap_or_else(|| ask_prometheus(&lab, &exprs));
    let mut problems = Vec::new();
    for ((q, expr), r) in queries.iter().zip(&exprs).zip(&answers) {
        if r["status"] != "success" {
            problems.push(format!("{q}: Prometheus refused {expr}: {r}"));
        } else if must_have_data(&q.expr) && result_len(r) == 0 {
            problems.push(format!("{q}: no data for {expr}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        logs(&[&lb01, &lb02])
    );

    // The state panel's encoding and its legend's labels: lb01 MASTER (2),
    // lb02 BACKUP (1), the VRRP instance as `exported_instance` (Prometheus
    // renames the exposition's `instance`, which clashes with the target's).
    let (i, _) = queries
        .iter()
        .enumerate()
        .find(|(_, q)| q.panel == "VRRP state")
        .expect("the dashboard has a VRRP state panel");
    let states: BTreeMap<String, String> = answers[i]["data"]["result"]
        .as_array()
        .expect("a vector")
        .iter()
        .filter(|s| s["metric"]["exported_instance"] == "VI_1")
        .map(|s| {
            (
                s["metric"]["node"].as_str().unwrap_or("?").to_owned(),
                s["value"][1].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        BTreeMap::from([("lb01".into(), "2".into()), ("lb02".into(), "1".into())]),
        "{}",
        answers[i]
    );
}

/// lb02 for the dashboard: the arbiter on (gw, lb01), a witness whose etcd
/// refuses (gw's closed port: the witness families, no lease, never a claim
/// from lb02), a confirm path lb01 does not answer, a dry-run fence of lb01
/// that never fires (the default minimum uptime is 5 min), and a webhook and
/// an Alertmanager cluster of two instances gw refuses (the per-instance
/// families).
fn lb02_config(lab: &splitguard_lab::Lab) -> String {
    let extra = format!(
        "\n[arbiter]\nreferences = [\"192.0.2.254\"]\npeers = [\"192.0.2.5\"]\n\n\
         [witness]\netcd = [\"http://192.0.2.254:2379\"]\ncluster = \"metrics\"\n\
         confirm_listen = \"192.0.2.6:8727\"\nconfirm_peer = \"192.0.2.5:8727\"\n\
         confirm_secret = \"metrics-lab-confirm-secret\"\n\n\
         [[fence]]\npeer = \"192.0.2.5\"\nagent = \"/bin/true\"\ndry_run = true\n\n\
         [[channel]]\ntype = \"alertmanager\"\nname = \"am\"\n\
         urls = [\"http://192.0.2.254:9\", \"http://192.0.2.254:10\"]\n{}",
        splitguard_lab::configs::webhook_tables("http://192.0.2.254:9/hook")
    );
    sg_config(lab, "lb02", 100, 2, "1s", &extra).replacen(
        "\n\n[[instance]]",
        "\nmetrics_listen = \"192.0.2.6:9745\"\n\n[[instance]]",
        1,
    )
}

// ------------------------------------------------------------ the dashboard

/// Families whose samples appear only after an event (a rejection, an
/// incident, a page, a key taken, a dropped datagram): a panel naming one
/// may answer empty in the lab.
const EVENT_FAMILIES: [&str; 7] = [
    "splitguard_adverts_rejected_total",
    "splitguard_incidents_open",
    "splitguard_alerts_sent_total",
    "splitguard_alerts_retried_total",
    "splitguard_alerts_failed_total",
    "splitguard_witness_key_holder",
    "splitguard_witness_peer_dropped_total",
];

fn dashboard() -> Value {
    serde_json::from_str(include_str!("../contrib/grafana/splitguard.json"))
        .expect("contrib/grafana/splitguard.json is JSON")
}

/// One panel target's query.
struct Query {
    panel: String,
    ref_id: String,
    expr: String,
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "panel {:?} target {}", self.panel, self.ref_id)
    }
}

/// Every panel, rows' nested panels included (a collapsed row holds its own).
fn all_panels(board: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&board["panels"], &mut out);
    out
}

fn queries(board: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for p in all_panels(board) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(Query {
                panel: p["title"].as_str().unwrap_or("?").to_owned(),
                ref_id: t["refId"].as_str().unwrap_or("?").to_owned(),
                expr: t["expr"].as_str().unwrap_or("").to_owned(),
            });
        }
    }
    out
}

/// What Grafana would send: `$__rate_interval` and the other interval macros
/// as `1m`, `$__range` as `5m`, every template variable (`$job`, `${job}`,
/// `${job:regex}`) as `.*`, the "All" of a regex matcher.
fn substitute(expr: &str) -> String {
    let c: Vec<char> = expr.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if c[i] != '$' {
            out.push(c[i]);
            i += 1;
            continue;
        }
        let name: String = if c.get(i + 1) == Some(&'{') {
            let end = c[i..]
                .iter()
                .position(|&x| x == '}')
                .map_or(c.len(), |e| i + e);
            let inner: String = c[i + 2..end].iter().collect();
            i = end + 1;
            inner.split(':').next().unwrap_or("").to_owned()
        } else {
            let start = i + 1;
            i = start;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            c[start..i].iter().collect()
        };
        out.push_str(match name.as_str() {
            "__range" => "5m",
            n if n.starts_with("__") => "1m",
            _ => ".*",
        });
    }
    out
}

/// PromQL's words that are not metric names: aggregations (followed by
/// `by`/`without` or a parenthesis), set and binary operators, modifiers.
const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const KEYWORDS: [&str; 8] = [
    "and", "or", "unless", "atan2", "bool", "offset", "inf", "nan",
];
/// Modifiers followed by a parenthesised list of label names.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The index just past the string literal that opens at `i`.
fn skip_string(c: &[char], i: usize) -> Result<usize, String> {
    let quote = c[i];
    let mut j = i + 1;
    while j < c.len() {
        if c[j] == '\\' && quote != '`' {
            j += 2;
            continue;
        }
        if c[j] == quote {
            return Ok(j + 1);
        }
        j += 1;
    }
    Err(format!("unterminated string at {i}"))
}

/// The index just past the `close` matching the opener at `i`, skipping the
/// strings inside (a label value may hold a brace).
fn skip_group(c: &[char], i: usize, close: char) -> Result<usize, String> {
    let open = c[i];
    let mut depth = 0;
    let mut j = i;
    while j < c.len() {
        match c[j] {
            '"' | '\'' | '`' => {
                j = skip_string(c, j)?;
                continue;
            }
            x if x == open => depth += 1,
            x if x == close => {
                depth -= 1;
                if depth == 0 {
                    return Ok(j + 1);
                }
            }
            _ => {}
        }
        j += 1;
    }
    Err(format!("unclosed {open:?} at {i}"))
}

/// The metric names `expr` selects: identifiers outside label matchers,
/// ranges, strings and label lists that are neither PromQL words nor
/// function calls (a name followed by `(`), in order of appearance.
fn metric_names(expr: &str) -> Result<Vec<String>, String> {
    let c: Vec<char> = expr.chars().collect();
    let is_word = |x: char| x.is_ascii_alphanumeric() || x == '_' || x == ':';
    let mut names = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '"' | '\'' | '`' => i = skip_string(&c, i)?,
            // Label matchers, then ranges and subqueries' durations.
            '{' => i = skip_group(&c, i, '}')?,
            '[' => i = skip_group(&c, i, ']')?,
            '#' => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '$' => return Err(format!("an unsubstituted variable at {i}")),
            // Numbers and durations (`0.5`, `1e3`, `5m`).
            x if x.is_ascii_digit()
                || (x == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                while i < c.len() && (is_word(c[i]) || c[i] == '.') {
                    i += 1;
                }
            }
            x if x.is_ascii_alphabetic() || x == '_' || x == ':' => {
                let start = i;
                while i < c.len() && is_word(c[i]) {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                let mut j = i;
                while j < c.len() && c[j].is_whitespace() {
                    j += 1;
                }
                let lower = word.to_ascii_lowercase();
                if LABEL_LISTS.contains(&lower.as_str()) {
                    if c.get(j) == Some(&'(') {
                        i = skip_group(&c, j, ')')?;
                    }
                } else if AGGREGATIONS.contains(&lower.as_str())
                    || KEYWORDS.contains(&lower.as_str())
                    || c.get(j) == Some(&'(')
                {
                    // Not a selector: an operator, a modifier or a function.
                } else {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    Ok(names)
}

/// `name -> type` from an exposition's `# TYPE` lines.
fn exported_families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("# TYPE ")?.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}

/// The family a series name belongs to: itself, or for a histogram's or a
/// summary's `_bucket`, `_sum` and `_count` series, the family they came from.
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, String>) -> Option<&'a str> {
    if families.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        let kind = families.get(base)?;
        (kind == "histogram" || (kind == "summary" && *suffix != "_bucket")).then_some(base)
    })
}

/// Every metric a panel or a template variable names that is not among
/// `families`, and every expression the tokenizer cannot read, as messages.
fn unknown_metrics(board: &Value, families: &BTreeMap<String, String>) -> Vec<String> {
    let mut sources: Vec<(String, String)> = queries(board)
        .iter()
        .map(|q| (q.to_string(), q.expr.clone()))
        .collect();
    // `label_values(SELECTOR, label)`: the selector names a metric, the
    // label does not.
    for v in board["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["definition"].as_str().unwrap_or("");
        if let Some(args) = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
        {
            if let Some((selector, _label)) = args.rsplit_once(',') {
                sources.push((format!("variable {}", v["name"]), selector.to_owned()));
            }
        } else {
            sources.push((
                format!("variable {}", v["name"]),
                format!("unreadable: {q}"),
            ));
        }
    }
    let mut out = Vec::new();
    for (what, expr) in sources {
        if expr.trim().is_empty() {
            out.push(format!("{what}: no expression"));
            continue;
        }
        match metric_names(&substitute(&expr)) {
            Err(e) => out.push(format!("{what}: {e} in {expr}")),
            Ok(names) if names.is_empty() => out.push(format!("{what}: names no metric: {expr}")),
            Ok(names) => {
                for n in names {
                    if family_of(&n, families).is_none() {
                        out.push(format!("{what}: {n} is not exported ({expr})"));
                    }
                }
            }
        }
    }
    out
}

/// Whether a query's families always have samples in the lab.
fn must_have_data(expr: &str) -> bool {
    let names = metric_names(&substitute(expr)).unwrap_or_default();
    !names.iter().any(|n| EVENT_FAMILIES.contains(&n.as_str()))
}

fn result_len(answer: &Value) -> usize {
    answer["data"]["result"].as_array().map_or(0, Vec::len)
}

/// Each of `exprs` asked of the lab's Prometheus (`/api/v1/query`, a POST
/// from gw), its JSON answer in order; one Python run for them all.
fn ask_prometheus(lab: &splitguard_lab::Lab, exprs: &[String]) -> Vec<Value> {
    let file = lab
        .write_file(
            "dashboard-queries.json",
            &serde_json::to_string(exprs).expect("JSON"),
        )
        .expect("write");
    let script = r#"
import json, sys, urllib.error, urllib.parse, urllib.request
out = []
for q in json.load(open(sys.argv[1])):
    body = urllib.parse.urlencode({"query": q}).encode()
    try:
        r = urllib.request.urlopen("http://192.0.2.254:9090/api/v1/query", data=body, timeout=10)
        out.append(json.load(r))
    except urllib.error.HTTPError as e:
        out.append(json.loads(e.read() or b"{}"))
    except Exception as e:
        out.append({"status": "error", "error": str(e)})
print(json.dumps(out))
"#;
    let out = lab
        .run(
            "gw",
            &[SYS_PYTHON, "-c", script, file.to_str().expect("utf-8")],
        )
        .expect("python");
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the queries' answers are not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(answers.len(), exprs.len(), "one answer per query");
    answers
}

/// Every family the daemon can export: the exposition of a snapshot with
/// the witness (and its confirm path) and fencing configured.
fn registered_families() -> BTreeMap<String, String> {
    use splitguard_node::metrics::{Counters, Snapshot, render};
    use splitguard_node::status::{FenceStatus, Status, WitnessStatus};
    let snapshot = Snapshot {
        status: Status {
            witness: Some(WitnessStatus {
                peer_heard: Some(false),
                ..Default::default()
            }),
            fence: Some(FenceStatus::default()),
            ..Default::default()
        },
        // An Alertmanager channel that has posted: its instances' families.
        counters: Counters {
            alert_instance_posts: [(("am".into(), "http://am1:9093/".into(), "failed"), 1)].into(),
            alert_instance_up: [(("am".into(), "http://am1:9093/".into()), false)].into(),
            ..Default::default()
        },
    };
    let mut families = exported_families(&render(&snapshot));
    families.insert("up".into(), "gauge".into());
    families
}

/// Renames `from` to `to` in the first target of the panel titled `title`
/// (rows' nested panels included); whether it found one.
fn rename_metric(panels: &mut Value, title: &str, from: &str, to: &str) -> bool {
    for p in panels.as_array_mut().into_iter().flatten() {
        if p["title"] == title {
            let expr = p["targets"][0]["expr"]
                .as_str()
                .unwrap_or("")
                .replace(from, to);
            p["targets"][0]["expr"] = expr.into();
            return true;
        }
        if rename_metric(&mut p["panels"], title, from, to) {
            return true;
        }
    }
    false
}

#[test]
fn the_grafana_dashboard_names_only_exported_families() {
    let board = dashboard();
    assert_eq!(board["schemaVersion"], 39, "schemaVersion");
    let families = registered_families();
    let unknown = unknown_metrics(&board, &families);
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));

    // Any Prometheus: the datasource is a variable, the target filters are
    // `job` and `instance` variables, and no panel or target pins a UID.
    let vars: Vec<&str> = board["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for v in ["datasource", "job", "instance"] {
        assert!(vars.contains(&v), "no {v} variable: {vars:?}");
    }
    let mut ids = std::collections::BTreeSet::new();
    for p in all_panels(&board) {
        assert!(
            ids.insert(p["id"].to_string()),
            "panel id {} twice",
            p["id"]
        );
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap_or("?");
        assert!(
            p["description"].as_str().is_some_and(|d| d.len() > 40),
            "panel {title:?} says what a bad value means"
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {title:?}");
        for t in p["targets"].as_array().expect("targets") {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {title:?}");
            let expr = t["expr"].as_str().unwrap_or("");
            assert!(
                expr.contains("$job") && expr.contains("$instance"),
                "panel {title:?} filters by $job and $instance: {expr}"
            );
        }
    }

    // A panel naming a metric nobody exports is caught.
    let mut broken = board.clone();
    assert!(
        rename_metric(
            &mut broken["panels"],
            "Adverts sent and received",
            "splitguard_adverts_sent_total",
            "splitguard_adverts_send_total"
        ),
        "an adverts panel"
    );
    let unknown = unknown_metrics(&broken, &families);
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0].contains("splitguard_adverts_send_total is not exported"),
        "{unknown:?}"
    );
}

#[test]
fn the_promql_tokenizer_finds_selectors_only() {
    let names = |e: &str| metric_names(&substitute(e)).expect("reads");
    assert_eq!(
        names(
            "sum by (job, instance) (rate(a_total{job=~\"$job\", x=\"}{by\"}[$__rate_interval])) \
             * on (job) group_left (node) max without (v) (b{job=~\"${job:regex}\"})"
        ),
        ["a_total", "b"]
    );
    assert_eq!(names("count(up == 0) or vector(0)"), ["up"]);
    assert_eq!(
        names("max(c offset 5m) > bool 1 unless d[5m:1m] and e:recorded"),
        ["c", "d", "e:recorded"]
    );
    assert_eq!(
        names("histogram_quantile(0.9, sum by (le) (rate(lat_seconds_bucket[1m])))"),
        ["lat_seconds_bucket"]
    );
    assert!(metric_names("a{job=\"x\"").is_err(), "an unclosed brace");
    assert!(metric_names("a offset $__range").is_err(), "unsubstituted");
    assert_eq!(
        substitute("rate(a{i=~\"$instance\"}[$__rate_interval]) offset $__range"),
        "rate(a{i=~\".*\"}[1m]) offset 5m"
    );
    let families = BTreeMap::from([
        ("lat_seconds".to_owned(), "histogram".to_owned()),
        ("rpc".to_owned(), "summary".to_owned()),
    ]);
    assert_eq!(
        family_of("lat_seconds_bucket", &families),
        Some("lat_seconds")
    );
    assert_eq!(family_of("rpc_count", &families), Some("rpc"));
    assert_eq!(family_of("rpc_bucket", &families), None);
    assert_eq!(family_of("lat", &families), None);
}
