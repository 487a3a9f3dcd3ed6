//! The converter: the keepalived AST to splitguard's TOML, with a warning for every
//! keyword or option that is not carried over and an error for values that cannot be
//! read. Owns the keepalived keyword → splitguard key mapping and the wording of the
//! warnings. Pure: no I/O (the host name for a missing `router_id` comes in through
//! [`Options`]), never panics. The TOML is written by the `toml` serializer from the
//! `Out*` shapes below, whose field names are those of `config/schema.rs`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::Problem;
use super::parser::{Loc, Statement};
use super::script;
use crate::config::{Vip, format_duration};

/// What the converter needs besides the AST.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The root file as named on the command line (for the header comment).
    pub origin: String,
    /// The host name, used as `node` when there is no `router_id` (as keepalived does).
    pub hostname: Option<String>,
}

/// The result of a conversion: TOML (when there are no errors), warnings, errors, and
/// where each emitted key came from.
#[derive(Debug, Clone, Default)]
pub struct Conversion {
    /// Empty when `errors` is not.
    pub toml: String,
    pub warnings: Vec<Problem>,
    pub errors: Vec<Problem>,
    /// (splitguard key path such as `instance[0].vrid`, keepalived location, keyword).
    pub origins: Vec<(String, Loc, String)>,
}

impl Conversion {
    /// The keepalived location of a splitguard key, or of its nearest parent.
    pub fn origin_of(&self, key: &str) -> Option<(&Loc, &str)> {
        let mut key = key;
        loop {
            if let Some((_, at, kw)) = self.origins.iter().find(|(k, _, _)| k == key) {
                return Some((at, kw));
            }
            let cut = key.rfind(['.', '['])?;
            key = &key[..cut];
        }
    }
}

// ---------------------------------------------------------------- output shapes

#[derive(Debug, Serialize)]
struct OutConfig {
    node: String,
    #[serde(rename = "instance", skip_serializing_if = "Vec::is_empty")]
    instances: Vec<OutInstance>,
    #[serde(rename = "track_script", skip_serializing_if = "Vec::is_empty")]
    track_scripts: Vec<OutTrackScript>,
}

#[derive(Debug, Serialize)]
struct OutInstance {
    name: String,
    interface: String,
    vrid: i64,
    priority: i64,
    advert_interval: String,
    version: i64,
    preempt: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    preempt_delay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_pass: Option<String>,
    vips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vip_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unicast_src_ip: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unicast_peers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    track_scripts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    track_interfaces: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_master: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_backup: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_fault: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_stop: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    garp_repeat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    garp_refresh: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct OutTrackScript {
    name: String,
    command: Vec<String>,
    interval: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rise: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fall: Option<i64>,
    weight: i64,
}

// ---------------------------------------------------------------- the context

#[derive(Default)]
struct Cx {
    warnings: Vec<Problem>,
    errors: Vec<Problem>,
    origins: Vec<(String, Loc, String)>,
}

impl Cx {
    fn warn_at(&mut self, at: &Loc, keyword: &str, message: impl Into<String>) {
        self.warnings.push(Problem {
            at: at.clone(),
            keyword: keyword.to_owned(),
            message: message.into(),
        });
    }

    fn warn(&mut self, s: &Statement, message: impl Into<String>) {
        self.warn_at(&s.at, &s.keyword, message);
    }

    fn error(&mut self, s: &Statement, message: impl Into<String>) {
        self.errors.push(Problem {
            at: s.at.clone(),
            keyword: s.keyword.clone(),
            message: message.into(),
        });
    }

    fn origin(&mut self, key: String, s: &Statement) {
        self.origins.push((key, s.at.clone(), s.keyword.clone()));
    }

    /// For a line inside a block whose first word is a value (a VIP, a peer), named
    /// by the block's keyword.
    fn origin_in(&mut self, key: String, s: &Statement, block: &str) {
        self.origins.push((key, s.at.clone(), block.to_owned()));
    }

    /// The not-carried warning for `s`, with the reason for its keyword.
    fn not_carried(&mut self, s: &Statement) {
        let reason = reason(&s.keyword);
        self.warn(s, reason);
    }

    /// The single value of `s`; an error when missing, a warning for extra words.
    fn value<'s>(&mut self, s: &'s Statement) -> Option<&'s str> {
        match s.args.as_slice() {
            [] => {
                self.error(s, "missing value");
                None
            }
            [one] => Some(one),
            [one, rest @ ..] => {
                self.warn(
                    s,
                    format!(
                        "extra words after the value ignored, as keepalived does: {}",
                        rest.join(" ")
                    ),
                );
                Some(one)
            }
        }
    }

    fn int(&mut self, s: &Statement) -> Option<i64> {
        let v = self.value(s)?;
        match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(s, format!("{v:?} is not a whole number"));
                None
            }
        }
    }

    fn seconds(&mut self, s: &Statement) -> Option<Duration> {
        let v = self.value(s)?;
        match parse_seconds(v) {
            Some(d) => Some(d),
            None => {
                self.error(
                    s,
                    format!("{v:?} is not a number of seconds (e.g. 1 or 0.5)"),
                );
                None
            }
        }
    }

    fn ip(&mut self, s: &Statement, text: &str) -> Option<IpAddr> {
        match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.error(s, format!("{text:?} is not an IP address"));
                None
            }
        }
    }

    /// Complains unless `s` has no block (keywords that take values, not blocks).
    fn no_block(&mut self, s: &Statement) {
        if s.block.is_some() {
            self.warn(s, "a `{ }` block here means nothing to keepalived; ignored");
        }
    }

    fn needs_block<'s>(&mut self, s: &'s Statement) -> &'s [Statement] {
        if s.block.is_none() {
            self.error(s, "needs a `{ }` block");
        }
        s.children()
    }
}

/// `1`, `0.5`, `1.25` seconds, exactly (to the microsecond, as keepalived's timers).
fn parse_seconds(text: &str) -> Option<Duration> {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 6
        || int.len() > 9
    {
        return None;
    }
    let secs: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let micros: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    Some(Duration::from_secs(secs) + Duration::from_micros(u64::from(micros)))
}

/// Why a keyword is not carried over.
fn reason(keyword: &str) -> &'static str {
    const ALERTS: &str = "not carried: splitguard alerts through [[channel]] sections (mail, SMS, webhook); add them by hand";
    const LVS: &str =
        "not carried: LVS is outside splitguard, which replaces keepalived's VRRP side only";
    const TRACKERS: &str = "not carried: splitguard tracks scripts and interfaces only; a vrrp_script can make this check";
    const ROUTES: &str = "not carried: splitguard adds and removes VIPs only; set these up in the system's network configuration";
    const GARP: &str = "not carried: splitguard's gratuitous ARP settings are garp_repeat, garp_interval and garp_refresh (defaults: 5, 100ms, 60s)";
    match keyword {
        "notification_email" | "notification_email_from" | "email_faults" | "smtp_alert" => ALERTS,
        k if k.starts_with("smtp_") => ALERTS,
        "virtual_server" | "virtual_server_group" | "real_server" => LVS,
        k if k.starts_with("lvs_") || k.starts_with("checker_") => LVS,
        "vrrp_sync_group" => {
            "not carried: splitguard has no sync groups; each instance fails over on its own"
        }
        "track_file" | "vrrp_track_file" | "track_process" | "vrrp_track_process" | "track_bfd"
        | "bfd_instance" => TRACKERS,
        "static_ipaddress" | "static_routes" | "static_rules" | "virtual_routes"
        | "virtual_rules" => ROUTES,
        "garp_master_delay" | "vrrp_garp_master_delay" => {
            "not carried: splitguard sends its gratuitous ARPs at once on takeover (garp_repeat of them, garp_interval apart)"
        }
        k if k.starts_with("garp_") || k.starts_with("vrrp_garp_") => GARP,
        "vrrp_strict" | "strict_mode" => {
            "not carried: splitguard has no strict mode (it adds no firewall rules; unicast, authentication and preempt_delay stay as configured)"
        }
        "enable_script_security" | "script_user" | "user" => {
            "not carried: splitguard runs scripts as the user it runs as"
        }
        "use_vmac" | "vmac_xmit_base" => {
            "not carried: splitguard uses the interface's own MAC, not a VRRP virtual MAC; gratuitous ARP moves the VIP"
        }
        "accept" | "no_accept" => "not carried: splitguard never filters traffic to its VIPs",
        "dont_track_primary" => {
            "not carried: in splitguard the instance's own interface losing link is always FAULT"
        }
        "virtual_ipaddress_excluded" => {
            "not carried: splitguard advertises every VIP it holds; add these to vips only if the peers list them too"
        }
        "init_fail" => {
            "not carried: splitguard's track scripts start up (passing), as keepalived's do without init_fail"
        }
        "unicast_ttl" | "min_ttl" | "max_ttl" => {
            "not carried: splitguard sends with TTL 255 and checks it only for multicast"
        }
        k if k.starts_with('$') => {
            "not carried: keepalived parameter definitions and $NAME substitutions are not expanded by import-keepalived; expand them by hand"
        }
        k if k.starts_with('@') => {
            "not carried: lines conditional on a keepalived config id are skipped; resolve them by hand"
        }
        k if k.starts_with('~') => {
            "not carried: ~SEQ expansions are not expanded; expand them by hand"
        }
        _ => "not carried: splitguard has no equivalent",
    }
}

// ---------------------------------------------------------------- conversion

#[derive(Debug, Clone)]
struct ScriptDef {
    name: String,
    at: Statement,
    out: Option<OutTrackScript>,
    /// Weights instances track it with; each distinct one is a track_script.
    used_with: Vec<i64>,
}

#[derive(Default)]
struct Globals {
    node: Option<(String, Statement)>,
    version: Option<i64>,
    garp_repeat: Option<(i64, Statement)>,
    garp_refresh: Option<(Duration, Statement)>,
}

/// Converts parsed keepalived statements to splitguard TOML.
pub fn convert(statements: &[Statement], options: &Options) -> Conversion {
    let mut cx = Cx::default();
    let mut globals = Globals::default();
    let mut scripts: Vec<ScriptDef> = Vec::new();
    let mut instances: Vec<&Statement> = Vec::new();

    for s in statements {
        match s.keyword.as_str() {
            "global_defs" => global_defs(&mut cx, s, &mut globals),
            "vrrp_script" => {
                if let Some(def) = vrrp_script(&mut cx, s) {
                    if let Some(first) = scripts.iter().find(|d| d.name == def.name) {
                        let line = first.at.at.line;
                        cx.warn(
                            s,
                            format!(
                                "{}: already defined on line {line}; this one is ignored",
                                def.name
                            ),
                        );
                    } else {
                        scripts.push(def);
                    }
                }
            }
            "vrrp_instance" => {
                if s.args.is_empty() {
                    cx.error(s, "needs a name, e.g. `vrrp_instance VI_1 { … }`");
                } else {
                    instances.push(s);
                }
            }
            _ => cx.not_carried(s),
        }
    }

    let mut out_instances = Vec::new();
    // Per instance, the scripts it tracks: (script index, weight it tracks with).
    let mut tracked: Vec<Vec<(usize, i64)>> = Vec::new();
    for s in &instances {
        let index = out_instances.len();
        let (inst, refs) = vrrp_instance(&mut cx, s, index, &globals, &mut scripts);
        if let Some(inst) = inst {
            out_instances.push(inst);
            tracked.push(refs);
        }
    }

    // Track scripts: one per (script, weight) in use, in definition order; a weight an
    // instance overrides gets a copy named after the weight.
    let mut out_scripts: Vec<OutTrackScript> = Vec::new();
    let mut names: HashMap<(usize, i64), String> = HashMap::new();
    for (i, def) in scripts.iter().enumerate() {
        let Some(base) = &def.out else { continue };
        if def.used_with.is_empty() {
            cx.warn(
                &def.at,
                format!(
                    "{}: not tracked by any vrrp_instance; not carried (keepalived does not run it either)",
                    def.name
                ),
            );
            continue;
        }
        for &weight in &def.used_with {
            let name = if weight == base.weight {
                base.name.clone()
            } else {
                unique_name(&format!("{}_w{weight}", base.name), &scripts, &out_scripts)
            };
            names.insert((i, weight), name.clone());
            let key = format!("track_script[{}]", out_scripts.len());
            cx.origin(key.clone(), &def.at);
            for (k, kw) in [
                ("interval", "interval"),
                ("timeout", "timeout"),
                ("weight", "weight"),
                ("rise", "rise"),
                ("fall", "fall"),
                ("command", "script"),
            ] {
                if let Some(child) = def.at.children().iter().rev().find(|c| c.keyword == kw) {
                    cx.origin(format!("{key}.{k}"), child);
                }
            }
            out_scripts.push(OutTrackScript {
                name,
                weight,
                ..base.clone()
            });
        }
    }
    for (inst, refs) in out_instances.iter_mut().zip(&tracked) {
        inst.track_scripts = refs
            .iter()
            .filter_map(|key| names.get(key).cloned())
            .collect();
    }

    let node = match globals.node {
        Some((node, s)) => {
            cx.origin("node".to_owned(), &s);
            node
        }
        None => {
            let at = Loc {
                file: options.origin.as_str().into(),
                line: 0,
            };
            match options.hostname.as_deref().filter(|h| !h.is_empty()) {
                Some(host) => {
                    cx.warn_at(
                        &at,
                        "router_id",
                        format!(
                            "none in global_defs; keepalived uses the host name, so node = {host:?}"
                        ),
                    );
                    host.to_owned()
                }
                None => {
                    cx.warn_at(
                        &at,
                        "router_id",
                        "none in global_defs and no host name known; node = \"keepalived\", change it",
                    );
                    "keepalived".to_owned()
                }
            }
        }
    };

    let config = OutConfig {
        node,
        instances: out_instances,
        track_scripts: out_scripts,
    };
    let mut conversion = Conversion {
        toml: String::new(),
        warnings: cx.warnings,
        errors: cx.errors,
        origins: cx.origins,
    };
    if conversion.errors.is_empty() {
        match toml::to_string(&config) {
            Ok(body) => conversion.toml = format!("{}\n{body}", header(&options.origin)),
            Err(e) => conversion.errors.push(Problem {
                at: Loc {
                    file: options.origin.as_str().into(),
                    line: 0,
                },
                keyword: "toml".to_owned(),
                message: format!("could not write the TOML: {e}"),
            }),
        }
    }
    conversion
}

fn header(origin: &str) -> String {
    // One line per comment; a file name with a newline must not end the comment.
    let origin: String = origin
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    format!(
        "# converted from {origin} by splitguard import-keepalived\n\
         # keepalived has no arbiter; splitguard's is on by default (reference: the default\n\
         # gateway), so an isolated node does not claim the VIP. For keepalived's behaviour\n\
         # add `[arbiter]` with `enabled = false` (README: \"Migrating from keepalived\").\n"
    )
}

fn unique_name(wanted: &str, scripts: &[ScriptDef], taken: &[OutTrackScript]) -> String {
    let free = |n: &str| !scripts.iter().any(|d| d.name == n) && !taken.iter().any(|t| t.name == n);
    if free(wanted) {
        return wanted.to_owned();
    }
    (2..)
        .map(|i| format!("{wanted}_{i}"))
        .find(|n| free(n))
        .unwrap_or_else(|| wanted.to_owned())
}

fn global_defs(cx: &mut Cx, s: &Statement, g: &mut Globals) {
    for c in cx.needs_block(s) {
        match c.keyword.as_str() {
            "router_id" => {
                cx.no_block(c);
                if let Some(v) = cx.value(c) {
                    g.node = Some((v.to_owned(), c.clone()));
                }
            }
            "vrrp_version" => {
                cx.no_block(c);
                g.version = cx.int(c);
            }
            "vrrp_garp_master_repeat" => {
                cx.no_block(c);
                if let Some(n) = cx.int(c) {
                    g.garp_repeat = Some((n, c.clone()));
                }
            }
            "vrrp_garp_master_refresh" => {
                cx.no_block(c);
                if let Some(d) = cx.seconds(c) {
                    g.garp_refresh = Some((d, c.clone()));
                }
            }
            _ => cx.not_carried(c),
        }
    }
}

fn vrrp_script(cx: &mut Cx, s: &Statement) -> Option<ScriptDef> {
    let Some(name) = s.args.first() else {
        cx.error(s, "needs a name, e.g. `vrrp_script check_web { … }`");
        return None;
    };
    let mut command = None;
    let mut interval = Duration::from_secs(1);
    let mut timeout = None;
    let mut weight = 0;
    let mut rise = None;
    let mut fall = None;
    for c in cx.needs_block(s) {
        match c.keyword.as_str() {
            "script" => {
                cx.no_block(c);
                command = script_argv(cx, c);
            }
            "interval" => interval = cx.seconds(c).unwrap_or(interval),
            "timeout" => timeout = cx.seconds(c).map(|d| (d, c)),
            "weight" => {
                if let Some(w) = c.args.first() {
                    match w.parse::<i64>() {
                        Ok(n) => weight = n,
                        Err(_) => cx.error(c, format!("{w:?} is not a whole number")),
                    }
                } else {
                    cx.error(c, "missing value");
                }
                weight_extras(cx, c);
            }
            "rise" => rise = cx.int(c),
            "fall" => fall = cx.int(c),
            _ => cx.not_carried(c),
        }
    }
    let timeout = match timeout {
        Some((t, c)) if t > interval => {
            cx.warn(
                c,
                format!(
                    "timeout {} is longer than interval {}; splitguard needs a run to end before the next starts, so timeout = interval",
                    format_duration(t),
                    format_duration(interval)
                ),
            );
            Some(interval)
        }
        other => other.map(|(t, _)| t),
    };
    let out = match command {
        Some(command) => Some(OutTrackScript {
            name: name.clone(),
            command,
            interval: format_duration(interval),
            timeout: timeout.map(format_duration),
            rise,
            fall,
            weight,
        }),
        None => {
            if !s.children().iter().any(|c| c.keyword == "script") {
                cx.warn(
                    s,
                    format!("{name}: has no script; not carried (keepalived ignores it too)"),
                );
            }
            None
        }
    };
    Some(ScriptDef {
        name: name.clone(),
        at: s.clone(),
        out,
        used_with: Vec::new(),
    })
}

/// `weight N [reverse]`: warns about `reverse` and anything else after the number.
fn weight_extras(cx: &mut Cx, c: &Statement) {
    for extra in c.args.iter().skip(1) {
        if extra == "reverse" {
            cx.warn(
                c,
                "reverse: not carried: splitguard applies weights in keepalived's default direction only",
            );
        } else {
            cx.warn(c, format!("{extra:?} after the weight ignored"));
        }
    }
}

/// A script or notify command line as argv: keepalived's two-level split (the
/// statement's words, then the first word into argv), `/bin/sh -c` when it needs a
/// shell, with warnings for what is not carried.
fn script_argv(cx: &mut Cx, s: &Statement) -> Option<Vec<String>> {
    let words = match script::split(&s.raw_args) {
        Ok(split) => split.words,
        Err(e) => {
            cx.error(s, format!("cannot split the command line: {e}"));
            return None;
        }
    };
    let Some(line) = words.first() else {
        cx.error(s, "missing value");
        return None;
    };
    if words.len() > 1 {
        cx.warn(
            s,
            format!(
                "runs as {} in keepalived; not carried: splitguard runs scripts as the user it runs as",
                words[1..].join(":")
            ),
        );
    }
    let split = match script::split(line) {
        Ok(split) => split,
        Err(e) => {
            cx.error(s, format!("cannot split {line:?}: {e}"));
            return None;
        }
    };
    if split.words.is_empty() {
        cx.error(s, "the command is empty");
        return None;
    }
    if split.needs_shell() {
        let chars: Vec<String> = split.shell.iter().map(|c| format!("`{c}`")).collect();
        cx.warn(
            s,
            format!(
                "{line:?} uses shell syntax ({}); converted to [\"/bin/sh\", \"-c\", …] so a shell runs it (keepalived 2.x runs scripts without a shell and would pass these characters as plain arguments)",
                chars.join(", ")
            ),
        );
        return Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), line.clone()]);
    }
    Some(split.words)
}

/// One `vrrp_instance` block: its statements gathered in order, then checked
/// and completed (VIPs, version, authentication, tracked scripts) into an
/// instance, with the script references it makes.
fn vrrp_instance(
    cx: &mut Cx,
    s: &Statement,
    index: usize,
    g: &Globals,
    scripts: &mut [ScriptDef],
) -> (Option<OutInstance>, Vec<(usize, i64)>) {
    let name = s.args.first().cloned().unwrap_or_default();
    let key = |k: &str| instance_key(index, k);
    cx.origin(format!("instance[{index}]"), s);

    let f = instance_fields(cx, s, index, g);

    let Some(interface) = f.interface else {
        cx.error(
            s,
            format!("{name}: no interface (keepalived needs one too)"),
        );
        return (None, Vec::new());
    };
    let Some(vrid) = f.vrid else {
        cx.error(
            s,
            format!("{name}: no virtual_router_id (keepalived needs one too)"),
        );
        return (None, Vec::new());
    };

    if let Some(c) = f.state_master {
        cx.warn(
            c,
            format!(
                "MASTER: not carried: splitguard has no initial state; every node starts as BACKUP and the highest priority wins the election (this one has {})",
                f.priority
            ),
        );
    }

    let (vips, vip_label) = instance_vips(cx, &f.vip_blocks, &interface, index);
    let version = instance_version(cx, f.version, g, &vips);

    let auth_pass = authentication(cx, f.auth, version).map(|(pass, at)| {
        cx.origin(key("auth_pass"), at);
        pass
    });

    let mut refs = Vec::new();
    for r in f.script_refs {
        track_script_ref(cx, r, scripts, &mut refs);
    }

    let [
        notify,
        notify_master,
        notify_backup,
        notify_fault,
        notify_stop,
    ] = f.notify;
    let out = OutInstance {
        name,
        interface,
        vrid,
        priority: f.priority,
        advert_interval: format_duration(f.advert),
        version,
        preempt: f.preempt,
        preempt_delay: f.preempt_delay.map(format_duration),
        auth_pass,
        vips,
        vip_label,
        unicast_src_ip: f.src_ip,
        unicast_peers: f.peers,
        track_scripts: Vec::new(),
        track_interfaces: f.track_interfaces,
        notify,
        notify_master,
        notify_backup,
        notify_fault,
        notify_stop,
        garp_repeat: f.garp_repeat,
        garp_refresh: f.garp_refresh.map(format_duration),
    };
    (Some(out), refs)
}

/// `instance[{index}].{k}`: where a converted value lands, for its origin.
fn instance_key(index: usize, k: &str) -> String {
    format!("instance[{index}].{k}")
}

/// What one `vrrp_instance` block's statements say, read in one pass; the
/// blocks that need the whole instance (VIPs, authentication, track_script)
/// are kept for later.
struct InstanceFields<'s> {
    interface: Option<String>,
    vrid: Option<i64>,
    priority: i64,
    advert: Duration,
    version: Option<(i64, &'s Statement)>,
    preempt: bool,
    preempt_delay: Option<Duration>,
    auth: Option<&'s Statement>,
    vip_blocks: Vec<&'s Statement>,
    src_ip: Option<String>,
    peers: Vec<String>,
    script_refs: Vec<&'s Statement>,
    track_interfaces: Vec<String>,
    /// notify, notify_master, notify_backup, notify_fault, notify_stop.
    notify: [Option<Vec<String>>; 5],
    garp_repeat: Option<i64>,
    garp_refresh: Option<Duration>,
    state_master: Option<&'s Statement>,
}

/// Reads an instance block's statements in order (warnings come out in the
/// order of the file), with keepalived's defaults and the global GARP values.
fn instance_fields<'s>(
    cx: &mut Cx,
    s: &'s Statement,
    index: usize,
    g: &Globals,
) -> InstanceFields<'s> {
    let key = |k: &str| instance_key(index, k);
    let mut f = InstanceFields {
        interface: None,
        vrid: None,
        priority: 100,
        advert: Duration::from_secs(1),
        version: None,
        preempt: true,
        preempt_delay: None,
        auth: None,
        vip_blocks: Vec::new(),
        src_ip: None,
        peers: Vec::new(),
        script_refs: Vec::new(),
        track_interfaces: Vec::new(),
        notify: Default::default(),
        garp_repeat: g.garp_repeat.as_ref().map(|(n, _)| *n),
        garp_refresh: g.garp_refresh.as_ref().map(|(d, _)| *d),
        state_master: None,
    };

    for c in cx.needs_block(s) {
        let kw = c.keyword.as_str();
        if VALUE_KEYWORDS.contains(&kw) {
            cx.no_block(c);
        }
        match kw {
            "state" => match cx.value(c) {
                Some("MASTER") => f.state_master = Some(c),
                Some("BACKUP") | None => {}
                Some(other) => cx.warn(
                    c,
                    format!("{other:?}: not carried: keepalived knows MASTER and BACKUP only"),
                ),
            },
            "interface" => {
                if let Some(v) = cx.value(c) {
                    f.interface = Some(v.to_owned());
                    cx.origin(key("interface"), c);
                }
            }
            "virtual_router_id" => {
                if let Some(n) = cx.int(c) {
                    f.vrid = Some(n);
                    cx.origin(key("vrid"), c);
                }
            }
            "priority" => {
                if let Some(n) = cx.int(c) {
                    f.priority = n;
                    cx.origin(key("priority"), c);
                }
            }
            "advert_int" => {
                if let Some(d) = cx.seconds(c) {
                    f.advert = d;
                    cx.origin(key("advert_interval"), c);
                }
            }
            "version" => {
                if let Some(n) = cx.int(c) {
                    f.version = Some((n, c));
                    cx.origin(key("version"), c);
                }
            }
            "nopreempt" => f.preempt = false,
            "preempt" => f.preempt = true,
            "preempt_delay" => {
                if let Some(d) = cx.seconds(c) {
                    f.preempt_delay = Some(d);
                    cx.origin(key("preempt_delay"), c);
                }
            }
            "authentication" => f.auth = Some(c),
            "virtual_ipaddress" => f.vip_blocks.push(c),
            "unicast_src_ip" | "mcast_src_ip" => {
                // keepalived treats the two as one: the adverts' source address.
                if let Some(v) = cx.value(c)
                    && let Some(ip) = cx.ip(c, v)
                {
                    f.src_ip = Some(ip.to_string());
                    cx.origin(key("unicast_src_ip"), c);
                }
            }
            "unicast_peer" => unicast_peers(cx, c, index, &mut f.peers),
            "check_unicast_src" => {
                // splitguard always accepts unicast adverts only from unicast_peers.
            }
            "track_script" => f.script_refs.extend(cx.needs_block(c)),
            "track_interface" => track_interfaces(cx, c, index, &mut f.track_interfaces),
            "notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => {
                let slot = match kw {
                    "notify" => 0,
                    "notify_master" => 1,
                    "notify_backup" => 2,
                    "notify_fault" => 3,
                    _ => 4,
                };
                if let Some(argv) = script_argv(cx, c) {
                    f.notify[slot] = Some(argv);
                    cx.origin(key(kw), c);
                }
            }
            "garp_master_repeat" => {
                if let Some(n) = cx.int(c) {
                    f.garp_repeat = Some(n);
                    cx.origin(key("garp_repeat"), c);
                }
            }
            "garp_master_refresh" => {
                if let Some(d) = cx.seconds(c) {
                    f.garp_refresh = Some(d);
                    cx.origin(key("garp_refresh"), c);
                }
            }
            _ => cx.not_carried(c),
        }
    }
    f
}

/// A `unicast_peer` block: one address per line, appended to `peers`.
fn unicast_peers(cx: &mut Cx, c: &Statement, index: usize, peers: &mut Vec<String>) {
    for p in cx.needs_block(c) {
        let Some(ip) = cx.ip(p, &p.keyword) else {
            continue;
        };
        cx.origin_in(
            instance_key(index, &format!("unicast_peers[{}]", peers.len())),
            p,
            &c.keyword,
        );
        peers.push(ip.to_string());
        if !p.args.is_empty() {
            cx.warn_at(
                &p.at,
                "unicast_peer",
                format!("{}: {}: {}", p.keyword, p.args.join(" "), reason("min_ttl")),
            );
        }
    }
}

/// A `track_interface` block: one interface per line, appended to `out`.
fn track_interfaces(cx: &mut Cx, c: &Statement, index: usize, out: &mut Vec<String>) {
    for t in cx.needs_block(c) {
        cx.origin_in(
            instance_key(index, &format!("track_interfaces[{}]", out.len())),
            t,
            &c.keyword,
        );
        out.push(t.keyword.clone());
        if !t.args.is_empty() && t.args != ["weight", "0"] {
            cx.warn_at(
                &t.at,
                "track_interface",
                format!(
                    "{}: {}: not carried: splitguard puts the instance in FAULT when a tracked interface goes down (keepalived's weight 0)",
                    t.keyword,
                    t.args.join(" ")
                ),
            );
        }
    }
}

/// The instance's VIPs from its `virtual_ipaddress` blocks, and the one label
/// they can share.
fn instance_vips(
    cx: &mut Cx,
    vip_blocks: &[&Statement],
    interface: &str,
    index: usize,
) -> (Vec<String>, Option<String>) {
    let mut vips: Vec<String> = Vec::new();
    let mut labels: Vec<(Option<String>, &Statement)> = Vec::new();
    for block in vip_blocks {
        for v in cx.needs_block(block) {
            if let Some((vip, label)) = vip_line(cx, v, interface) {
                cx.origin_in(
                    instance_key(index, &format!("vips[{}]", vips.len())),
                    v,
                    "virtual_ipaddress",
                );
                vips.push(vip);
                labels.push((label, v));
            }
        }
    }
    let vip_label = choose_label(cx, &labels, interface);
    if let Some((_, at)) = labels.iter().find(|(l, _)| l.is_some()) {
        cx.origin_in(instance_key(index, "vip_label"), at, "virtual_ipaddress");
    }
    (vips, vip_label)
}

/// Version: the instance's, else the global one, else 2; IPv6 VIPs force 3.
fn instance_version(
    cx: &mut Cx,
    version: Option<(i64, &Statement)>,
    g: &Globals,
    vips: &[String],
) -> i64 {
    let explicit = version.map(|(n, _)| n).or(g.version);
    let mut version_number = explicit.unwrap_or(2);
    let ipv6 = vips.iter().any(|v| v.contains(':'));
    if ipv6 && version_number == 2 {
        if let Some((_, c)) = version {
            cx.warn(
                c,
                "2: IPv6 VIPs need VRRPv3, which keepalived uses for them anyway; version = 3",
            );
        }
        version_number = 3;
    }
    version_number
}

/// Instance keywords that take values, not blocks.
const VALUE_KEYWORDS: &[&str] = &[
    "state",
    "interface",
    "virtual_router_id",
    "priority",
    "advert_int",
    "version",
    "nopreempt",
    "preempt",
    "preempt_delay",
    "unicast_src_ip",
    "mcast_src_ip",
    "notify",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "garp_master_repeat",
    "garp_master_refresh",
];

/// One `virtual_ipaddress` line: `ADDR[/PREFIX] [dev X] [label Y] [options]`.
fn vip_line(cx: &mut Cx, v: &Statement, interface: &str) -> Option<(String, Option<String>)> {
    const KW: &str = "virtual_ipaddress";
    let text = &v.keyword;
    let vip = if text.contains('/') {
        text.clone()
    } else {
        match text.parse::<IpAddr>() {
            Ok(ip) => {
                let full = if ip.is_ipv4() { 32 } else { 128 };
                cx.warn_at(
                    &v.at,
                    KW,
                    format!("{text}: no prefix length; keepalived adds it as /{full}, kept as {text}/{full}"),
                );
                format!("{text}/{full}")
            }
            Err(_) => text.clone(),
        }
    };
    if let Err(e) = vip.parse::<Vip>() {
        cx.errors.push(Problem {
            at: v.at.clone(),
            keyword: KW.to_owned(),
            message: format!("{text}: {e}"),
        });
        return None;
    }
    let mut label = None;
    let mut args = v.args.iter();
    while let Some(word) = args.next() {
        match word.as_str() {
            "dev" => match args.next() {
                Some(dev) if dev != interface => cx.warn_at(
                    &v.at,
                    KW,
                    format!("{text}: dev {dev}: keepalived adds this VIP on {dev}; splitguard adds every VIP on the instance's interface {interface}"),
                ),
                Some(_) => {}
                None => cx.warn_at(&v.at, KW, format!("{text}: `dev` without a device; ignored")),
            },
            "label" => match args.next() {
                Some(l) => label = Some(l.clone()),
                None => cx.warn_at(&v.at, KW, format!("{text}: `label` without a label; ignored")),
            },
            "brd" | "broadcast" | "scope" | "preferred_lft" | "track_group" | "metric" => {
                let value = args.next().map(String::as_str).unwrap_or("");
                cx.warn_at(
                    &v.at,
                    KW,
                    format!("{text}: {word} {value}: not carried: splitguard adds VIPs with their address and prefix only"),
                );
            }
            other => cx.warn_at(
                &v.at,
                KW,
                format!("{text}: {other}: not carried: splitguard adds VIPs with their address and prefix only"),
            ),
        }
    }
    Some((vip, label))
}

/// The one `vip_label` for the instance's VIPs, warning where they differ.
fn choose_label(
    cx: &mut Cx,
    labels: &[(Option<String>, &Statement)],
    interface: &str,
) -> Option<String> {
    const KW: &str = "virtual_ipaddress";
    let (first, first_at) = labels
        .iter()
        .find_map(|(l, at)| l.clone().map(|l| (l, *at)))?;
    let prefix = format!("{interface}:");
    if !first.starts_with(&prefix) || first.len() == prefix.len() {
        cx.warn_at(
            &first_at.at,
            KW,
            format!("{}: label {first}: not carried: splitguard adds VIPs on {interface}, and a label must start with \"{prefix}\"", first_at.keyword),
        );
        return None;
    }
    for (label, at) in labels {
        if label.as_deref() != Some(first.as_str()) {
            let had = label
                .as_deref()
                .map_or("no label".to_owned(), |l| format!("label {l}"));
            cx.warn_at(
                &at.at,
                KW,
                format!("{}: {had}: splitguard has one vip_label for all of an instance's VIPs; it gets {first}", at.keyword),
            );
        }
    }
    Some(first)
}

/// The password to carry, and the `auth_pass` line it came from.
fn authentication<'s>(
    cx: &mut Cx,
    auth: Option<&'s Statement>,
    version: i64,
) -> Option<(String, &'s Statement)> {
    let auth = auth?;
    let mut kind: Option<&Statement> = None;
    let mut pass: Option<&Statement> = None;
    for c in cx.needs_block(auth) {
        match c.keyword.as_str() {
            "auth_type" => kind = Some(c),
            "auth_pass" => pass = Some(c),
            _ => cx.not_carried(c),
        }
    }
    if version == 3 {
        cx.warn(
            auth,
            "not carried: VRRPv3 has no authentication (keepalived ignores it for v3 too)",
        );
        return None;
    }
    let kind_value = kind.and_then(|k| cx.value(k));
    match (kind_value, kind) {
        (Some("PASS"), _) => {}
        (Some("AH"), Some(k)) => {
            cx.warn(k, "AH: not carried: splitguard supports PASS only; the instance now has no authentication, and keepalived peers using AH will drop its adverts");
            return None;
        }
        (Some(other), Some(k)) => {
            cx.warn(
                k,
                format!("{other}: not carried: keepalived knows PASS and AH"),
            );
            return None;
        }
        _ => {
            if let Some(p) = pass {
                cx.warn(p, "not carried: without `auth_type PASS` keepalived sends no password, so neither does splitguard");
            }
            return None;
        }
    }
    let Some(p) = pass else {
        if let Some(k) = kind {
            cx.warn(
                k,
                "PASS without auth_pass: keepalived sends an empty password; not carried",
            );
        }
        return None;
    };
    let value = cx.value(p)?;
    if value.len() > 8 {
        let mut end = 8;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        cx.warn(p, "longer than 8 characters; keepalived uses the first 8 and so does the converted config");
        return Some((value[..end].to_owned(), p));
    }
    Some((value.to_owned(), p))
}

fn track_script_ref(
    cx: &mut Cx,
    r: &Statement,
    scripts: &mut [ScriptDef],
    refs: &mut Vec<(usize, i64)>,
) {
    const KW: &str = "track_script";
    let Some(index) = scripts.iter().position(|d| d.name == r.keyword) else {
        cx.warn_at(
            &r.at,
            KW,
            format!(
                "{}: no vrrp_script has this name; not carried (keepalived ignores it too)",
                r.keyword
            ),
        );
        return;
    };
    let def = &mut scripts[index];
    let Some(base) = &def.out else {
        cx.warn_at(
            &r.at,
            KW,
            format!(
                "{}: the vrrp_script has no usable script; not carried",
                r.keyword
            ),
        );
        return;
    };
    let mut weight = base.weight;
    match r.args.as_slice() {
        [] => {}
        [w, value, rest @ ..] if w == "weight" => {
            match value.parse::<i64>() {
                Ok(n) => weight = n,
                Err(_) => cx.errors.push(Problem {
                    at: r.at.clone(),
                    keyword: KW.to_owned(),
                    message: format!("{}: weight {value:?} is not a whole number", r.keyword),
                }),
            }
            for extra in rest {
                let why = if extra == "reverse" {
                    "not carried: splitguard applies weights in keepalived's default direction only"
                } else {
                    "ignored"
                };
                cx.warn_at(&r.at, KW, format!("{}: {extra}: {why}", r.keyword));
            }
        }
        other => cx.warn_at(
            &r.at,
            KW,
            format!("{}: {}: ignored", r.keyword, other.join(" ")),
        ),
    }
    if weight != base.weight {
        cx.warn_at(
            &r.at,
            KW,
            format!(
                "{}: weight {weight} overrides the script's {}; splitguard keeps weights on the script, so this instance tracks a copy with weight {weight}",
                r.keyword, base.weight
            ),
        );
    }
    if !def.used_with.contains(&weight) {
        def.used_with.push(weight);
    }
    if !refs.contains(&(index, weight)) {
        refs.push((index, weight));
    }
}
