//! splitguard.toml(5) against the schema. The page is rendered from
//! `config::reference`; these tests hold that reference to what the real
//! loader takes, through its own "unknown key" errors, which list the keys a
//! table expects: every section's keys must be exactly the schema's (a key in
//! either and not the other fails, naming it and the section), every table
//! the schema takes must have a section, and every channel type and SMS
//! provider must have one.

use std::collections::BTreeSet;

use splitguard_node::config::reference::{SECTIONS, Section};
use splitguard_node::config::{self, Diagnostic};

/// The unknown key every probe adds; no section will ever take it.
const PROBE: &str = "zz_probe";

/// The diagnostics for `text` (none when it loads).
fn diagnostics(text: &str) -> Vec<Diagnostic> {
    match config::parse(text, "probe.toml") {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics().to_vec(),
    }
}

/// The TOML form of a selector or probe line.
fn line(key: &str, value: &str) -> String {
    format!("{key} = {value}\n")
}

/// What a section's parent table needs for the loader to get as far as
/// checking the section's keys: the Redfish options are checked once the
/// whole file has read, which takes a `[[fence]]` with its peer.
fn setup(section: &Section) -> &'static str {
    match section.path {
        ["fence", "options"] => "peer = \"192.0.2.6\"\n",
        _ => "",
    }
}

/// The smallest file that reaches `section`'s table with `body` in it.
fn reach(section: &Section, body: &str) -> String {
    // The top level's own `node` is probed in place of this one.
    let mut text = if section.path.is_empty() && body.starts_with("node ") {
        String::new()
    } else {
        String::from("node = \"probe\"\n")
    };
    let selector: String = section.selector.iter().map(|(k, v)| line(k, v)).collect();
    match section.path {
        [] => text.push_str(body),
        [table] => {
            text.push_str(&header(table, section.array));
            text.push_str(&selector);
            text.push_str(body);
        }
        [parent, child] => {
            // The parent's shape: arrays of tables (`[[fence]]`) or one table.
            let parent_array = SECTIONS
                .iter()
                .find(|s| s.path == [*parent])
                .is_some_and(|s| s.array);
            text.push_str(&header(parent, parent_array));
            text.push_str(&selector);
            text.push_str(setup(section));
            text.push_str(&header(&format!("{parent}.{child}"), section.array));
            text.push_str(body);
        }
        deeper => panic!(
            "{}: no probe for a path as deep as {deeper:?}",
            section.heading
        ),
    }
    text
}

fn header(name: &str, array: bool) -> String {
    if array {
        format!("[[{name}]]\n")
    } else {
        format!("[{name}]\n")
    }
}

/// How the loader names a key of `section`'s table in a diagnostic
/// (`instance[0].vrid`, `reply.imap.host`, `vrid` at the top).
fn key_path(section: &Section, key: &str) -> String {
    let mut path = String::new();
    for (i, seg) in section.path.iter().enumerate() {
        let array = if i == 0 {
            SECTIONS
                .iter()
                .find(|s| s.path == [*seg])
                .is_some_and(|s| s.array)
        } else {
            section.array
        };
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(seg);
        if array {
            path.push_str("[0]");
        }
    }
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The keys an "unknown key" error says its table expects: serde's (``unknown
/// key `x`; expected one of `a`, `b` ``, ``expected `a` or `b` ``, ``expected
/// `a` ``) or the Redfish options' (`takes no option "x"; it takes a, b`).
fn expected_keys(message: &str) -> Option<BTreeSet<String>> {
    let unknown = message.starts_with(&format!("unknown key `{PROBE}`"))
        || message.contains(&format!("no option \"{PROBE}\""));
    if !unknown {
        return None;
    }
    let (_, list) = message
        .split_once("; expected ")
        .or_else(|| message.split_once("; it takes "))?;
    let list = list.strip_prefix("one of ").unwrap_or(list);
    Some(
        list.split(", ")
            .flat_map(|k| k.split(" or "))
            .map(|k| k.trim().trim_matches(['`', '"']).to_owned())
            .collect(),
    )
}

/// The schema's keys for `section`: what its "unknown key" error lists, plus
/// the selector keys a top-level table's reader takes out first (`type`,
/// `provider`).
fn schema_keys(section: &Section) -> Result<BTreeSet<String>, String> {
    let text = reach(section, &line(PROBE, "\"x\""));
    let diags = diagnostics(&text);
    let at = key_path(section, PROBE);
    let Some(mut keys) = diags
        .iter()
        .filter(|d| d.key.as_deref() == Some(at.as_str()))
        .find_map(|d| expected_keys(&d.message))
    else {
        return Err(format!(
            "section `{}`: the probe did not reach it (no unknown-key error at {at}); \
             teach this test how to reach it.\nThe file:\n{text}\nThe errors:\n{}",
            section.heading,
            lines(&diags)
        ));
    };
    if section.path.len() == 1 {
        keys.extend(section.selector.iter().map(|(k, _)| (*k).to_owned()));
    }
    Ok(keys)
}

fn lines(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names under `section` the page documents: its keys and its nested
/// sections (`reply`'s `imap`, the top level's `arbiter`).
fn documented(section: &Section) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = section.keys.iter().map(|k| k.name.to_owned()).collect();
    for child in SECTIONS {
        if child.path.len() == section.path.len() + 1 && child.path.starts_with(section.path) {
            names.insert(child.path[section.path.len()].to_owned());
        }
    }
    names
}

/// Whether the schema takes `key` of `section` as a table (or an array of
/// tables): a probe table in its place is not refused as a value, only
/// perhaps for what is in it. An enum reads a one-key table as its variant
/// (`tls = { starttls = … }`); its "unknown variant" refusal counts as a
/// value's.
fn takes_a_table(section: &Section, key: &str) -> bool {
    let at = key_path(section, key);
    let first = format!("{at}[0]");
    [
        format!("{{ {PROBE} = \"x\" }}"),
        format!("[{{ {PROBE} = \"x\" }}]"),
    ]
    .iter()
    .any(|value| {
        let diags = diagnostics(&reach(section, &line(key, value)));
        !diags.iter().any(|d| {
            let Some(k) = d.key.as_deref() else {
                return false;
            };
            let under = k.starts_with(&format!("{at}.")) || k.starts_with(&format!("{at}["));
            k == at || k == first || (under && d.message.starts_with("unknown variant"))
        })
    })
}

/// Every section with a key list lists exactly the keys the schema takes
/// there, both ways; every free-form table takes any key.
#[test]
fn every_section_documents_exactly_the_keys_the_schema_takes() {
    let mut failures = Vec::new();
    for section in SECTIONS {
        if section.free_keys.is_some() {
            let text = reach(section, &line(PROBE, "\"x\""));
            let diags = diagnostics(&text);
            if let Some(d) = diags.iter().find(|d| expected_keys(&d.message).is_some()) {
                failures.push(format!(
                    "section `{}`: the page says any key goes, but the schema refuses `{PROBE}`: {d}",
                    section.heading
                ));
            }
            continue;
        }
        let schema = match schema_keys(section) {
            Ok(keys) => keys,
            Err(why) => {
                failures.push(why);
                continue;
            }
        };
        let page = documented(section);
        for key in schema.difference(&page) {
            failures.push(format!(
                "section `{}`: the schema takes key `{key}`, which the page does not document",
                section.heading
            ));
        }
        for key in page.difference(&schema) {
            failures.push(format!(
                "section `{}`: the page documents key `{key}`, which the schema does not take",
                section.heading
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

/// Every key the schema takes as a table has a section of its own, so a new
/// table (top-level or nested) cannot go undocumented.
#[test]
fn every_table_the_schema_takes_has_a_section() {
    let mut failures = Vec::new();
    for section in SECTIONS.iter().filter(|s| s.free_keys.is_none()) {
        let Ok(keys) = schema_keys(section) else {
            continue; // reported by the test above
        };
        let selectors: Vec<&str> = section.selector.iter().map(|(k, _)| *k).collect();
        for key in keys.iter().filter(|k| !selectors.contains(&k.as_str())) {
            if !takes_a_table(section, key) {
                continue;
            }
            let path: Vec<&str> = section.path.iter().copied().chain([key.as_str()]).collect();
            if !SECTIONS.iter().any(|s| s.path == path.as_slice()) {
                failures.push(format!(
                    "section `{}`: the schema takes `{key}` as a table, and the page has no section `{}`",
                    section.heading,
                    path.join(".")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

/// The quoted values an "unknown channel type/provider" error lists.
fn tag_values(text: &str, what: &str) -> Vec<String> {
    let diags = diagnostics(text);
    let Some(list) = diags
        .iter()
        .find_map(|d| d.message.split_once("; expected one of ").map(|(_, l)| l))
    else {
        panic!(
            "no list of {what}s for:\n{text}\nThe errors:\n{}",
            lines(&diags)
        );
    };
    list.split(", ")
        .map(|v| v.trim().trim_matches('"').to_owned())
        .collect()
}

/// Every channel type, and every SMS provider, has a section of its own.
#[test]
fn every_channel_type_and_provider_has_a_section() {
    let mut failures = Vec::new();
    let types = tag_values(
        &format!("node = \"probe\"\n[[channel]]\ntype = \"{PROBE}\"\n"),
        "channel type",
    );
    assert!(types.len() >= 5, "{types:?}");
    for kind in types {
        let quoted = format!("\"{kind}\"");
        let selectors: Vec<Vec<(&str, String)>> = if kind == "sms" {
            tag_values(
                &format!("node = \"probe\"\n[[channel]]\ntype = \"sms\"\nprovider = \"{PROBE}\"\n"),
                "SMS provider",
            )
            .into_iter()
            .map(|p| vec![("type", quoted.clone()), ("provider", format!("\"{p}\""))])
            .collect()
        } else {
            vec![vec![("type", quoted.clone())]]
        };
        for selector in selectors {
            let found = SECTIONS.iter().any(|s| {
                s.path == ["channel"]
                    && s.selector.len() == selector.len()
                    && s.selector
                        .iter()
                        .zip(&selector)
                        .all(|((k, v), (sk, sv))| k == sk && v == sv)
            });
            if !found {
                let words: Vec<String> =
                    selector.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                failures.push(format!(
                    "the schema takes a [[channel]] with {}, and the page has no section for it",
                    words.join(", ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}
