//! The status snapshot: what `splitguard status` shows and the control socket serves.
//!
//! Field names are the DESIGN.md status JSON contract; fields may be added (with
//! `#[serde(default)]` so an older daemon's reply still parses), never renamed.
//! `render_text` is the operator's view: one table row per instance, one arbiter
//! line, the open incidents.

use serde::{Deserialize, Serialize};
use splitguard_watchdog::{IncidentKind, Severity};
use std::fmt::Write as _;
use std::net::IpAddr;

/// keepalived's words for instance states; `InstanceStatus::state` holds one of them.
/// Strings, not an enum, so a newer daemon's state never breaks an older client.
pub mod state {
    pub const INIT: &str = "INIT";
    pub const BACKUP: &str = "BACKUP";
    pub const MASTER: &str = "MASTER";
    pub const FAULT: &str = "FAULT";
    pub const STOP: &str = "STOP";
}

/// One node's state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub node: String,
    pub instances: Vec<InstanceStatus>,
    pub arbiter: ArbiterStatus,
    /// The etcd witness, when `[witness]` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness: Option<WitnessStatus>,
    /// Peer fencing, when `[[fence]]` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<FenceStatus>,
    pub incidents: Vec<IncidentStatus>,
    /// The latest replies (ack-by-reply), accepted and refused.
    #[serde(default)]
    pub replies: Vec<ReplyStatus>,
    /// Unix time (ms) the snapshot was taken; ages in the text view count from it.
    #[serde(default)]
    pub at_ms: Option<u64>,
}

/// One VRRP instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub vrid: u8,
    /// One of the `state` module's words.
    pub state: String,
    /// Configured priority.
    pub priority: u8,
    /// Priority after trackers and arbiter demotion: what goes on the wire.
    pub effective_priority: u8,
    /// CIDR strings as configured, e.g. `10.0.0.3/24`.
    pub vips: Vec<String>,
    /// Whether this node has the VIPs on its interface right now.
    pub vips_held: bool,
    /// The master's address as last heard (ours when we are master); null if unknown.
    pub master: Option<IpAddr>,
    #[serde(default)]
    pub interface: String,
    /// VRRP version, 2 or 3.
    #[serde(default)]
    pub version: u8,
    /// Null while the arbiter lets this backup claim; the reason while it does not.
    #[serde(default)]
    pub claim_gate: Option<String>,
    /// Unix time (ms) the instance entered its current state.
    #[serde(default)]
    pub since_ms: Option<u64>,
    /// Why it entered its current state, in words (e.g. "master silent").
    #[serde(default)]
    pub cause: Option<String>,
}

/// What the network says about this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArbiterStatus {
    /// Fewer references reachable than the quorum asks for.
    pub isolated: bool,
    pub references: Vec<Reachability>,
    pub peers: Vec<Reachability>,
    /// How many references must answer; null when no arbiter is configured.
    #[serde(default)]
    pub quorum: Option<usize>,
}

/// The witness: the lease, the members, who holds each VRID's key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessStatus {
    /// The key namespace (`[witness] cluster`).
    pub cluster: String,
    /// This node holds a safe lease.
    pub reachable: bool,
    /// Why not, while it does not (the store client's last error).
    #[serde(default)]
    pub unreachable: Option<String>,
    /// The lease id (hex), while one is granted.
    #[serde(default)]
    pub lease: Option<String>,
    /// How long the lease surely lasts at the store without another renewal
    /// (from the send time of the last acknowledged one), in ms, to 100 ms.
    #[serde(default)]
    pub lease_remaining_ms: Option<u64>,
    pub members: Vec<WitnessMember>,
    pub vrids: Vec<WitnessVrid>,
    /// The peer's confirm address, when a confirm path is configured.
    #[serde(default)]
    pub peer: Option<String>,
    /// Whether the peer's datagrams arrive (within three confirm intervals).
    #[serde(default)]
    pub peer_heard: Option<bool>,
    /// Datagrams on the peer path dropped since start, by reason
    /// (`foreign_source`, `bad_tag`, ...): a wrong `confirm_secret` shows here.
    #[serde(default)]
    pub peer_dropped: std::collections::BTreeMap<String, u64>,
}

/// Peer fencing: one entry per `[[fence]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceStatus {
    pub peers: Vec<FencePeer>,
}

/// One peer this node may fence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencePeer {
    pub peer: IpAddr,
    /// The fence agent's name (or path), or `redfish`.
    pub agent: String,
    /// `idle`, `waiting` (a trigger holds; the fence is due), `fencing`,
    /// `confirming`, `fenced`, `failed`.
    pub phase: String,
    /// Where this node stands against the peer in the VRRP order: `better`
    /// (fences first), `worse` (waits longer), `unknown` (does not fence a
    /// split brain by itself).
    pub standing: String,
    /// The claim gate is closed until a fence is confirmed.
    pub gate_closed: bool,
    pub dry_run: bool,
    /// Fences in the ledger's window, and what it allows.
    pub attempts_in_window: usize,
    pub limit: u32,
    pub window_s: u64,
    /// The MAC split brains are matched against: `peer_mac` (pinned), or
    /// the one the peer's address answered from; unset until then.
    #[serde(default)]
    pub peer_mac: Option<String>,
    #[serde(default)]
    pub peer_mac_pinned: bool,
    /// The latest attempt, refusal or outcome.
    #[serde(default)]
    pub last: Option<FenceOutcome>,
    /// Outcomes since the start, by name (`fenced`, `failed`, `refused`,
    /// `dry_run`).
    #[serde(default)]
    pub outcomes: std::collections::BTreeMap<String, u64>,
}

/// One fence attempt's outcome (or a refusal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceOutcome {
    pub at_ms: u64,
    /// `split_brain`, `daemon_dead`, `ordered`.
    pub reason: String,
    /// `fencing`, `fenced`, `failed`, `refused`, `dry_run`.
    pub outcome: String,
    #[serde(default)]
    pub detail: Option<String>,
}

/// One etcd member, as its own status probe saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessMember {
    pub endpoint: String,
    pub reachable: bool,
    pub leader: bool,
}

/// One VRID's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessVrid {
    pub instance: String,
    pub vrid: u8,
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// The node named in the key; null when free or not known.
    pub holder: Option<String>,
    /// This node holds it under its lease.
    pub ours: bool,
}

/// One probed address and its debounced verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reachability {
    pub ip: IpAddr,
    pub reachable: bool,
}

/// One reply decision (the audit log's latest lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyStatus {
    pub at_ms: u64,
    pub via: String,
    pub from: String,
    pub command: Option<String>,
    pub code: Option<String>,
    pub accepted: bool,
    pub reason: Option<String>,
}

/// One open incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentStatus {
    /// The short numeric code an on-call replies with.
    pub code: String,
    pub kind: IncidentKind,
    pub severity: Severity,
    pub acked: bool,
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default)]
    pub vip: Option<String>,
    /// The cause in words, as the alert says it.
    #[serde(default)]
    pub cause: Option<String>,
    /// Unix time (ms) the incident opened.
    #[serde(default)]
    pub since_ms: Option<u64>,
}

/// The human view, as `splitguard status` prints it. Plain ASCII, no colour, no
/// trailing spaces, so it reads the same in a terminal, a mail and a log.
pub fn render_text(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "splitguard on {}", or_dash(&status.node));
    out.push('\n');

    if status.instances.is_empty() {
        out.push_str("instances: none\n");
    } else {
        let mut rows = vec![
            [
                "INSTANCE", "VRID", "STATE", "SINCE", "PRIO", "VIPS", "HELD", "MASTER", "GATE",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for i in &status.instances {
            rows.push(vec![
                i.name.clone(),
                i.vrid.to_string(),
                i.state.clone(),
                age(status.at_ms, i.since_ms),
                format!("{}/{}", i.priority, i.effective_priority),
                if i.vips.is_empty() {
                    "-".to_owned()
                } else {
                    i.vips.join(",")
                },
                yes_no(i.vips_held).to_owned(),
                i.master.map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
                if i.claim_gate.is_some() {
                    "CLOSED"
                } else {
                    "open"
                }
                .to_owned(),
            ]);
        }
        table(&mut out, &rows, "");
        // The long words go under the table, so the table stays narrow.
        for i in &status.instances {
            if let Some(cause) = &i.cause {
                let _ = writeln!(out, "  {} {}: {}", i.name, i.state, cause);
            }
            if let Some(reason) = &i.claim_gate {
                let _ = writeln!(out, "  {} gate closed: {}", i.name, reason);
            }
        }
    }
    out.push('\n');

    out.push_str(&arbiter_line(&status.arbiter));
    if let Some(w) = &status.witness {
        out.push_str(&witness_lines(w));
    }
    if let Some(f) = &status.fence {
        out.push_str(&fence_lines(f));
    }
    out.push('\n');

    if status.incidents.is_empty() {
        out.push_str("incidents: none\n");
    } else {
        let unacked = status.incidents.iter().filter(|i| !i.acked).count();
        let _ = writeln!(
            out,
            "incidents: {} open, {} unacked",
            status.incidents.len(),
            unacked
        );
        let mut rows = vec![
            [
                "CODE", "KIND", "SEVERITY", "ACKED", "AGE", "INSTANCE", "VIP", "CAUSE",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for i in &status.incidents {
            rows.push(vec![
                i.code.clone(),
                i.kind.as_str().to_owned(),
                i.severity.as_str().to_ascii_uppercase(),
                yes_no(i.acked).to_owned(),
                age(status.at_ms, i.since_ms),
                opt_dash(&i.instance),
                opt_dash(&i.vip),
                opt_dash(&i.cause),
            ]);
        }
        table(&mut out, &rows, "  ");
    }
    out
}

fn arbiter_line(a: &ArbiterStatus) -> String {
    // No quorum and nothing probed: no arbiter runs, so nothing vouches for "ok".
    if a.quorum.is_none() && a.references.is_empty() && a.peers.is_empty() {
        return "arbiter: off (claims are not gated)\n".to_owned();
    }
    let verdict = if a.isolated { "ISOLATED" } else { "ok" };
    let mut line = format!("arbiter: {verdict}");
    let quorum = a
        .quorum
        .map(|q| format!(" (quorum {q})"))
        .unwrap_or_default();
    let _ = write!(line, "; references {}", reach_list(&a.references, &quorum));
    let _ = write!(line, "; peers {}", reach_list(&a.peers, ""));
    line.push('\n');
    line
}

/// `fence: peer 192.0.2.6 by fence_ipmilan: idle, better; 0/1 in 3600 s`,
/// and the latest outcome under it.
fn fence_lines(f: &FenceStatus) -> String {
    let mut out = String::new();
    for p in &f.peers {
        let _ = write!(
            out,
            "fence: peer {} by {}: {}, {}; {}/{} in {} s",
            p.peer, p.agent, p.phase, p.standing, p.attempts_in_window, p.limit, p.window_s
        );
        if let Some(mac) = &p.peer_mac {
            let _ = write!(
                out,
                "; MAC {mac}{}",
                if p.peer_mac_pinned { " (pinned)" } else { "" }
            );
        }
        if p.gate_closed {
            out.push_str("; claims withheld until the fence is confirmed");
        }
        if p.dry_run {
            out.push_str(" (dry run)");
        }
        out.push('\n');
        if let Some(l) = &p.last {
            let _ = write!(out, "  last: {} ({})", l.outcome, l.reason);
            if let Some(d) = &l.detail {
                let _ = write!(out, ": {d}");
            }
            out.push('\n');
        }
    }
    out
}

/// `witness: ok (cluster lb, lease 2.7 s); members 3/3 up: …; peer … heard`,
/// then one line per VRID key.
fn witness_lines(w: &WitnessStatus) -> String {
    let mut line = String::from("witness: ");
    match &w.unreachable {
        None => line.push_str("ok"),
        Some(why) => {
            let _ = write!(line, "UNREACHABLE ({why})");
        }
    }
    let _ = write!(line, "; cluster {}", w.cluster);
    if let Some(ms) = w.lease_remaining_ms {
        let _ = write!(line, "; lease {:.1} s", ms as f64 / 1000.0);
    }
    let up = w.members.iter().filter(|m| m.reachable).count();
    let each = w
        .members
        .iter()
        .map(|m| {
            format!(
                "{} {}{}",
                m.endpoint,
                if m.reachable { "up" } else { "DOWN" },
                if m.leader { " (leader)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(line, "; members {up}/{} up: {each}", w.members.len());
    if let Some(peer) = &w.peer {
        let heard = if w.peer_heard == Some(true) {
            "heard"
        } else {
            "UNHEARD"
        };
        let _ = write!(line, "; peer {peer} {heard}");
    }
    line.push('\n');
    for v in &w.vrids {
        let _ = writeln!(
            line,
            "  key {} vrid {} ({}): {}{}",
            v.instance,
            v.vrid,
            v.family,
            v.holder.as_deref().unwrap_or("free"),
            if v.ours { " (this node)" } else { "" }
        );
    }
    line
}

/// `1/2 up: 192.0.2.254 up, 192.0.2.253 DOWN`; "DOWN" is loud on purpose. `note`
/// goes before the colon.
fn reach_list(list: &[Reachability], note: &str) -> String {
    if list.is_empty() {
        return "none".to_owned();
    }
    let up = list.iter().filter(|r| r.reachable).count();
    let each = list
        .iter()
        .map(|r| format!("{} {}", r.ip, if r.reachable { "up" } else { "DOWN" }))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{up}/{} up{note}: {each}", list.len())
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table(out: &mut String, rows: &[Vec<String>], indent: &str) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = indent.to_owned();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// `45s`, `3m12s`, `2h05m`, `4d03h`: precise enough to tell "just now" from "hours".
fn age(now_ms: Option<u64>, since_ms: Option<u64>) -> String {
    let (Some(now), Some(since)) = (now_ms, since_ms) else {
        return "-".to_owned();
    };
    // A clock step can put `since` after `now`; show 0s rather than nonsense.
    let s = now.saturating_sub(since) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

fn opt_dash(s: &Option<String>) -> String {
    s.as_deref().map_or("-", or_dash).to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    const T0: u64 = 1_700_000_000_000;

    /// Two instances, one isolated-and-withheld, one split-brain incident: the
    /// picture an operator gets paged for.
    pub(crate) fn sample() -> Status {
        Status {
            node: "lb01".into(),
            at_ms: Some(T0),
            instances: vec![
                InstanceStatus {
                    name: "VI_1".into(),
                    vrid: 51,
                    interface: "eth0".into(),
                    version: 2,
                    state: state::MASTER.into(),
                    priority: 150,
                    effective_priority: 150,
                    vips: vec!["10.0.0.3/24".into()],
                    vips_held: true,
                    master: Some("192.0.2.5".parse().unwrap()),
                    claim_gate: None,
                    since_ms: Some(T0 - 192_000),
                    cause: Some("master silent (failover)".into()),
                },
                InstanceStatus {
                    name: "VI_2".into(),
                    vrid: 52,
                    interface: "eth0".into(),
                    version: 3,
                    state: state::BACKUP.into(),
                    priority: 100,
                    effective_priority: 50,
                    vips: vec!["10.0.0.4/24".into(), "10.0.0.5/24".into()],
                    vips_held: false,
                    master: None,
                    claim_gate: Some("isolated: 0 reference(s) reachable, quorum is 1".into()),
                    since_ms: Some(T0 - 3_725_000),
                    cause: None,
                },
            ],
            arbiter: ArbiterStatus {
                isolated: true,
                references: vec![Reachability {
                    ip: "192.0.2.254".parse().unwrap(),
                    reachable: false,
                }],
                peers: vec![Reachability {
                    ip: "192.0.2.6".parse().unwrap(),
                    reachable: true,
                }],
                quorum: Some(1),
            },
            witness: None,
            fence: None,
            replies: vec![],
            incidents: vec![IncidentStatus {
                code: "4821".into(),
                kind: IncidentKind::SplitBrain,
                severity: Severity::Critical,
                acked: false,
                instance: Some("VI_1".into()),
                vip: Some("10.0.0.3".into()),
                cause: Some("VIP 10.0.0.3 answered by 02:00:00:00:00:06 too".into()),
                since_ms: Some(T0 - 45_000),
            }],
        }
    }

    fn keys(v: &Value) -> BTreeSet<&str> {
        v.as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect()
    }

    fn has_all(v: &Value, contract: &[&str]) {
        let got = keys(v);
        for k in contract {
            assert!(got.contains(k), "missing contract key {k:?} in {v}");
        }
    }

    #[test]
    fn json_keys_follow_the_contract() {
        let v: Value = serde_json::to_value(sample()).unwrap();
        has_all(&v, &["node", "instances", "arbiter", "incidents"]);
        for inst in v["instances"].as_array().unwrap() {
            has_all(
                inst,
                &[
                    "name",
                    "vrid",
                    "state",
                    "priority",
                    "effective_priority",
                    "vips",
                    "vips_held",
                    "master",
                ],
            );
        }
        has_all(&v["arbiter"], &["isolated", "references", "peers"]);
        for r in v["arbiter"]["references"]
            .as_array()
            .unwrap()
            .iter()
            .chain(v["arbiter"]["peers"].as_array().unwrap())
        {
            assert_eq!(keys(r), BTreeSet::from(["ip", "reachable"]));
        }
        has_all(&v["incidents"][0], &["code", "kind", "severity", "acked"]);
    }

    #[test]
    fn json_values_use_the_contract_vocabulary() {
        let v: Value = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["node"], "lb01");
        assert_eq!(v["instances"][0]["state"], "MASTER");
        assert_eq!(v["instances"][0]["vrid"], 51);
        assert_eq!(v["instances"][0]["master"], "192.0.2.5");
        assert_eq!(v["instances"][0]["vips"][0], "10.0.0.3/24");
        // An unknown master is an explicit null, not a missing key.
        assert_eq!(v["instances"][1]["master"], Value::Null);
        assert_eq!(v["arbiter"]["references"][0]["ip"], "192.0.2.254");
        assert_eq!(v["arbiter"]["references"][0]["reachable"], false);
        assert_eq!(v["incidents"][0]["kind"], "split_brain");
        assert_eq!(v["incidents"][0]["severity"], "critical");
        assert_eq!(v["incidents"][0]["code"], "4821");
    }

    #[test]
    fn json_round_trips_and_tolerates_missing_additions() {
        let s = sample();
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&text).unwrap(), s);

        // Only the contract's keys: what an older daemon (or a hand-written fixture) sends.
        let minimal = r#"{"node":"lb02","instances":[{"name":"VI_1","vrid":51,
            "state":"BACKUP","priority":100,"effective_priority":100,"vips":["10.0.0.3/24"],
            "vips_held":false,"master":"192.0.2.5"}],"arbiter":{"isolated":false,
            "references":[{"ip":"192.0.2.254","reachable":true}],"peers":[]},
            "incidents":[{"code":"17","kind":"failover","severity":"warning","acked":true}]}"#;
        let parsed: Status = serde_json::from_str(minimal).unwrap();
        assert_eq!(parsed.instances[0].claim_gate, None);
        assert_eq!(parsed.incidents[0].kind, IncidentKind::Failover);
    }

    #[test]
    fn text_rendering_golden() {
        let expected = "\
splitguard on lb01

INSTANCE  VRID  STATE   SINCE  PRIO     VIPS                     HELD  MASTER     GATE
VI_1      51    MASTER  3m12s  150/150  10.0.0.3/24              yes   192.0.2.5  open
VI_2      52    BACKUP  1h02m  100/50   10.0.0.4/24,10.0.0.5/24  no    -          CLOSED
  VI_1 MASTER: master silent (failover)
  VI_2 gate closed: isolated: 0 reference(s) reachable, quorum is 1

arbiter: ISOLATED; references 0/1 up (quorum 1): 192.0.2.254 DOWN; peers 1/1 up: 192.0.2.6 up

incidents: 1 open, 1 unacked
  CODE  KIND         SEVERITY  ACKED  AGE  INSTANCE  VIP       CAUSE
  4821  split_brain  CRITICAL  no     45s  VI_1      10.0.0.3  VIP 10.0.0.3 answered by 02:00:00:00:00:06 too
";
        assert_eq!(render_text(&sample()), expected);
    }

    /// The sample with a witness: lb01 holds VI_1's key, VI_2's is free,
    /// one member down.
    pub(crate) fn sample_with_witness() -> Status {
        let mut s = sample();
        s.witness = Some(WitnessStatus {
            cluster: "lb".into(),
            reachable: true,
            unreachable: None,
            lease: Some("694d8a1b2c3d4e5f".into()),
            lease_remaining_ms: Some(2700),
            members: vec![
                WitnessMember {
                    endpoint: "http://192.0.2.201:2379".into(),
                    reachable: true,
                    leader: true,
                },
                WitnessMember {
                    endpoint: "http://192.0.2.202:2379".into(),
                    reachable: false,
                    leader: false,
                },
            ],
            vrids: vec![
                WitnessVrid {
                    instance: "VI_1".into(),
                    vrid: 51,
                    family: "ipv4".into(),
                    holder: Some("lb01".into()),
                    ours: true,
                },
                WitnessVrid {
                    instance: "VI_2".into(),
                    vrid: 52,
                    family: "ipv4".into(),
                    holder: None,
                    ours: false,
                },
            ],
            peer: Some("192.0.2.198:8727".into()),
            peer_heard: Some(true),
            peer_dropped: [("bad_tag".to_owned(), 3)].into(),
        });
        s
    }

    /// The sample with fencing: lb02 fenced for a split brain.
    pub(crate) fn sample_with_fence() -> Status {
        let mut s = sample();
        s.fence = Some(FenceStatus {
            peers: vec![FencePeer {
                peer: "192.0.2.6".parse().unwrap(),
                agent: "fence_ipmilan".into(),
                phase: "fenced".into(),
                standing: "better".into(),
                gate_closed: false,
                dry_run: false,
                attempts_in_window: 1,
                limit: 1,
                window_s: 3600,
                peer_mac: Some("52:54:00:00:00:06".into()),
                peer_mac_pinned: true,
                last: Some(FenceOutcome {
                    at_ms: 1_700_000_000_000,
                    reason: "split_brain".into(),
                    outcome: "fenced".into(),
                    detail: None,
                }),
                outcomes: [("fenced".to_owned(), 1)].into(),
            }],
        });
        s
    }

    #[test]
    fn the_fence_block_in_json_and_text() {
        let s = sample_with_fence();
        let v: Value = serde_json::to_value(&s).unwrap();
        let p = &v["fence"]["peers"][0];
        assert_eq!(p["peer"], "192.0.2.6");
        assert_eq!(p["phase"], "fenced");
        assert_eq!(p["outcomes"]["fenced"], 1);
        assert_eq!(p["last"]["reason"], "split_brain");
        assert_eq!(p["peer_mac"], "52:54:00:00:00:06");
        assert_eq!(p["peer_mac_pinned"], true);
        // Round trip, and an older daemon's reply (no block) still parses.
        let back: Status = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, s);
        // A daemon from before peer_mac: its block still parses.
        let mut older = v;
        let op = older["fence"]["peers"][0].as_object_mut().unwrap();
        op.remove("peer_mac");
        op.remove("peer_mac_pinned");
        let older: Status = serde_json::from_value(older).unwrap();
        assert_eq!(older.fence.unwrap().peers[0].peer_mac, None);
        assert!(
            serde_json::to_value(sample())
                .unwrap()
                .get("fence")
                .is_none()
        );
        let text = render_text(&s);
        assert!(
            text.contains(
                "fence: peer 192.0.2.6 by fence_ipmilan: fenced, better; 1/1 in 3600 s; MAC 52:54:00:00:00:06 (pinned)\n  last: fenced (split_brain)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_witness_block_in_json_and_text() {
        let s = sample_with_witness();
        let v: Value = serde_json::to_value(&s).unwrap();
        let w = &v["witness"];
        let keys: BTreeSet<&str> = w.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "cluster",
                "reachable",
                "unreachable",
                "lease",
                "lease_remaining_ms",
                "members",
                "vrids",
                "peer",
                "peer_heard",
                "peer_dropped"
            ])
        );
        assert_eq!(w["vrids"][0]["holder"], "lb01");
        assert_eq!(w["members"][1]["reachable"], false);
        assert_eq!(serde_json::from_value::<Status>(v).unwrap(), s);
        // No witness configured: no key at all.
        let v: Value = serde_json::to_value(sample()).unwrap();
        assert!(v.get("witness").is_none());

        let text = render_text(&s);
        assert!(
            text.contains(
                "witness: ok; cluster lb; lease 2.7 s; members 1/2 up: http://192.0.2.201:2379 up (leader), http://192.0.2.202:2379 DOWN; peer 192.0.2.198:8727 heard\n  key VI_1 vrid 51 (ipv4): lb01 (this node)\n  key VI_2 vrid 52 (ipv4): free\n"
            ),
            "{text}"
        );
        let mut down = s.clone();
        if let Some(w) = &mut down.witness {
            w.reachable = false;
            w.unreachable = Some("lease keep-alive: no answer in time".into());
            w.peer_heard = Some(false);
        }
        let text = render_text(&down);
        assert!(
            text.contains("witness: UNREACHABLE (lease keep-alive: no answer in time); cluster lb"),
            "{text}"
        );
        assert!(text.contains("peer 192.0.2.198:8727 UNHEARD"), "{text}");
    }

    #[test]
    fn text_rendering_of_an_empty_node() {
        let s = Status::default();
        assert_eq!(
            render_text(&s),
            "splitguard on -\n\ninstances: none\n\narbiter: off (claims are not gated)\n\nincidents: none\n"
        );
    }

    #[test]
    fn ages() {
        assert_eq!(age(None, Some(1)), "-");
        assert_eq!(age(Some(1000), Some(5000)), "0s");
        assert_eq!(age(Some(59_999), Some(0)), "59s");
        assert_eq!(age(Some(60_000), Some(0)), "1m00s");
        assert_eq!(age(Some(3_600_000), Some(0)), "1h00m");
        assert_eq!(age(Some(90_000_000), Some(0)), "1d01h");
    }
}
