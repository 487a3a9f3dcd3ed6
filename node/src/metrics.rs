//! Prometheus `/metrics` on its own listener (`metrics_listen`): the daemon's
//! status and counters in the text exposition format. Rendering is pure (a
//! snapshot in, text out); the listener serves the latest snapshot, optionally
//! over TLS (`metrics_tls_cert`, `metrics_tls_key`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use tokio::sync::watch;

use crate::status::{InstanceStatus, Status, state};

/// Counters for one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceCounters {
    pub transitions: u64,
    pub adverts_received: u64,
    pub adverts_sent: u64,
    /// Rejected adverts by reason (`ttl`, `vrid`, `password`, ...).
    pub adverts_rejected: BTreeMap<&'static str, u64>,
}

/// Everything counted since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub instances: BTreeMap<String, InstanceCounters>,
    /// Per channel: delivered, retried and failed notifications.
    pub alerts_sent: BTreeMap<String, u64>,
    pub alerts_retried: BTreeMap<String, u64>,
    pub alerts_failed: BTreeMap<String, u64>,
    /// Per Alertmanager instance of a channel, `(channel, instance URL with
    /// credentials masked, outcome)`: its posts, the notices' and late
    /// copies' alike; outcome `accepted`, `failed` or `gave_up`.
    pub alert_instance_posts: BTreeMap<(String, String, &'static str), u64>,
    /// Per `(channel, instance URL)`: whether its last post was taken.
    pub alert_instance_up: BTreeMap<(String, String), bool>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub status: Status,
    pub counters: Counters,
}

/// A label value as the exposition format wants it.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

const STATES: [&str; 5] = [
    state::INIT,
    state::BACKUP,
    state::MASTER,
    state::FAULT,
    state::STOP,
];

/// The exposition text for `snapshot`: one family (or a group of families
/// that share their samples' loop) after the other, in a fixed order.
pub fn render(snapshot: &Snapshot) -> String {
    let st = &snapshot.status;
    let c = &snapshot.counters;
    let mut o = Out(String::new());
    build_info(&mut o, st);
    instance_state(&mut o, st);
    instance_gauge(
        &mut o,
        st,
        "splitguard_instance_priority",
        "Configured priority.",
        |i| i.priority,
    );
    instance_gauge(
        &mut o,
        st,
        "splitguard_instance_effective_priority",
        "Priority on the wire, after trackers and arbiter demotion.",
        |i| i.effective_priority,
    );
    instance_gauge(
        &mut o,
        st,
        "splitguard_instance_vips_held",
        "1 while this node holds the VIPs.",
        |i| u8::from(i.vips_held),
    );
    instance_counters(&mut o, st, c);
    arbiter_isolated(&mut o, st);
    arbiter_reachable(&mut o, st);
    if let Some(w) = &st.witness {
        witness(&mut o, w);
    }
    if let Some(f) = &st.fence {
        fence(&mut o, f);
    }
    incidents_open(&mut o, st);
    alert_counters(&mut o, c);
    alert_instances(&mut o, c);
    o.0
}

/// `splitguard_build_info`: version and node, always 1.
fn build_info(o: &mut Out, st: &Status) {
    o.head("splitguard_build_info", "gauge", "Build information.");
    o.sample(
        "splitguard_build_info",
        &[("version", env!("CARGO_PKG_VERSION")), ("node", &st.node)],
        1,
    );
}

/// `splitguard_instance_state`: one sample per instance and state.
fn instance_state(o: &mut Out, st: &Status) {
    o.head(
        "splitguard_instance_state",
        "gauge",
        "1 for the instance's current VRRP state, 0 for the others.",
    );
    for i in &st.instances {
        for s in STATES {
            o.sample(
                "splitguard_instance_state",
                &[("instance", &i.name), ("state", s)],
                u8::from(i.state == s),
            );
        }
    }
}

/// A gauge with one sample per instance.
fn instance_gauge(
    o: &mut Out,
    st: &Status,
    name: &str,
    help: &str,
    value: impl Fn(&InstanceStatus) -> u8,
) {
    o.head(name, "gauge", help);
    for i in &st.instances {
        o.sample(name, &[("instance", &i.name)], value(i));
    }
}

/// The per-instance counters: their four heads, then each instance's samples.
fn instance_counters(o: &mut Out, st: &Status, c: &Counters) {
    o.head(
        "splitguard_instance_transitions_total",
        "counter",
        "State changes.",
    );
    o.head(
        "splitguard_adverts_received_total",
        "counter",
        "Adverts accepted.",
    );
    o.head("splitguard_adverts_sent_total", "counter", "Adverts sent.");
    o.head(
        "splitguard_adverts_rejected_total",
        "counter",
        "Adverts refused, by reason.",
    );
    for i in &st.instances {
        let n = c.instances.get(&i.name).cloned().unwrap_or_default();
        let l = [("instance", i.name.as_str())];
        o.sample("splitguard_instance_transitions_total", &l, n.transitions);
        o.sample("splitguard_adverts_received_total", &l, n.adverts_received);
        o.sample("splitguard_adverts_sent_total", &l, n.adverts_sent);
        for (reason, count) in &n.adverts_rejected {
            o.sample(
                "splitguard_adverts_rejected_total",
                &[("instance", &i.name), ("reason", reason)],
                count,
            );
        }
    }
}

/// `splitguard_arbiter_isolated`.
fn arbiter_isolated(o: &mut Out, st: &Status) {
    o.head(
        "splitguard_arbiter_isolated",
        "gauge",
        "1 while fewer references answer than the quorum.",
    );
    o.sample(
        "splitguard_arbiter_isolated",
        &[],
        u8::from(st.arbiter.isolated),
    );
}

/// `splitguard_arbiter_reachable`: references, then peers.
fn arbiter_reachable(o: &mut Out, st: &Status) {
    o.head(
        "splitguard_arbiter_reachable",
        "gauge",
        "1 while a reference or peer answers (debounced).",
    );
    for (role, list) in [
        ("reference", &st.arbiter.references),
        ("peer", &st.arbiter.peers),
    ] {
        for r in list {
            o.sample(
                "splitguard_arbiter_reachable",
                &[("target", &r.ip.to_string()), ("role", role)],
                u8::from(r.reachable),
            );
        }
    }
}

/// The witness's families, present only when `[witness]` is configured.
fn witness(o: &mut Out, w: &crate::status::WitnessStatus) {
    o.head(
        "splitguard_witness_reachable",
        "gauge",
        "1 while this node holds a safe lease at the witness.",
    );
    o.sample("splitguard_witness_reachable", &[], u8::from(w.reachable));
    o.head(
        "splitguard_witness_lease_remaining_seconds",
        "gauge",
        "How long the lease surely lasts without another renewal (0 without one).",
    );
    let remaining = w.lease_remaining_ms.unwrap_or(0) as f64 / 1000.0;
    o.sample("splitguard_witness_lease_remaining_seconds", &[], remaining);
    o.head(
        "splitguard_witness_member_reachable",
        "gauge",
        "1 while an etcd member answers its status probe.",
    );
    for m in &w.members {
        o.sample(
            "splitguard_witness_member_reachable",
            &[("endpoint", &m.endpoint)],
            u8::from(m.reachable),
        );
    }
    o.head(
        "splitguard_witness_member_leader",
        "gauge",
        "1 for the member that says it leads.",
    );
    for m in &w.members {
        o.sample(
            "splitguard_witness_member_leader",
            &[("endpoint", &m.endpoint)],
            u8::from(m.leader),
        );
    }
    o.head(
        "splitguard_witness_key_ours",
        "gauge",
        "1 while this node holds the instance's key.",
    );
    for v in &w.vrids {
        o.sample(
            "splitguard_witness_key_ours",
            &[("instance", &v.instance)],
            u8::from(v.ours),
        );
    }
    o.head(
        "splitguard_witness_key_holder",
        "gauge",
        "1 for the node named in the instance's key (absent while the key is free).",
    );
    for v in &w.vrids {
        if let Some(h) = &v.holder {
            o.sample(
                "splitguard_witness_key_holder",
                &[("instance", &v.instance), ("holder", h)],
                1,
            );
        }
    }
    if let Some(heard) = w.peer_heard {
        o.head(
            "splitguard_witness_peer_heard",
            "gauge",
            "1 while the peer's confirm datagrams arrive.",
        );
        o.sample("splitguard_witness_peer_heard", &[], u8::from(heard));
        o.head(
            "splitguard_witness_peer_dropped_total",
            "counter",
            "Datagrams on the peer path dropped, by reason.",
        );
        for (reason, n) in &w.peer_dropped {
            o.sample(
                "splitguard_witness_peer_dropped_total",
                &[("reason", reason)],
                n,
            );
        }
    }
}

/// Peer fencing's families, present only when `[[fence]]` is configured.
fn fence(o: &mut Out, f: &crate::status::FenceStatus) {
    o.head(
        "splitguard_fence_outcomes_total",
        "counter",
        "Fence attempts and refusals since the start, by peer and outcome (fenced, failed, refused, dry_run).",
    );
    for p in &f.peers {
        let peer = p.peer.to_string();
        for outcome in ["fenced", "failed", "refused", "dry_run"] {
            let n = p.outcomes.get(outcome).copied().unwrap_or(0);
            o.sample(
                "splitguard_fence_outcomes_total",
                &[("peer", &peer), ("outcome", outcome)],
                n,
            );
        }
    }
    o.head(
        "splitguard_fence_in_progress",
        "gauge",
        "1 while a fence of the peer runs or awaits its confirmation.",
    );
    for p in &f.peers {
        let running = matches!(p.phase.as_str(), "fencing" | "confirming");
        o.sample(
            "splitguard_fence_in_progress",
            &[("peer", &p.peer.to_string())],
            u8::from(running),
        );
    }
    o.head(
        "splitguard_fence_gate_closed",
        "gauge",
        "1 while claims are withheld until a fence of the peer is confirmed.",
    );
    for p in &f.peers {
        o.sample(
            "splitguard_fence_gate_closed",
            &[("peer", &p.peer.to_string())],
            u8::from(p.gate_closed),
        );
    }
}

/// `splitguard_incidents_open`: counted by kind and severity, sorted.
fn incidents_open(o: &mut Out, st: &Status) {
    o.head(
        "splitguard_incidents_open",
        "gauge",
        "Open incidents, by kind.",
    );
    let mut open: BTreeMap<(String, String), u64> = BTreeMap::new();
    for inc in &st.incidents {
        *open
            .entry((
                inc.kind.as_str().to_owned(),
                inc.severity.as_str().to_owned(),
            ))
            .or_default() += 1;
    }
    for ((kind, severity), n) in &open {
        o.sample(
            "splitguard_incidents_open",
            &[("kind", kind), ("severity", severity)],
            n,
        );
    }
}

/// The per-channel alert counters: sent, retried, failed.
fn alert_counters(o: &mut Out, c: &Counters) {
    for (name, help, map) in [
        (
            "splitguard_alerts_sent_total",
            "Notifications delivered, per channel.",
            &c.alerts_sent,
        ),
        (
            "splitguard_alerts_retried_total",
            "Failed attempts that will be retried, per channel.",
            &c.alerts_retried,
        ),
        (
            "splitguard_alerts_failed_total",
            "Notifications a channel refused for good, per channel.",
            &c.alerts_failed,
        ),
    ] {
        o.head(name, "counter", help);
        for (channel, n) in map {
            o.sample(name, &[("channel", channel)], n);
        }
    }
}

/// Per Alertmanager instance: `splitguard_alerts_instance_posts_total` and
/// `splitguard_alerts_instance_up`, only when a channel has instances. The
/// label is `url`, not `instance`, which Prometheus gives the scrape target.
fn alert_instances(o: &mut Out, c: &Counters) {
    if c.alert_instance_posts.is_empty() {
        return;
    }
    let name = "splitguard_alerts_instance_posts_total";
    o.head(
        name,
        "counter",
        "Posts to each Alertmanager instance of a channel, by outcome (accepted, failed, gave_up: its copy is not retried any more).",
    );
    for ((channel, url, outcome), n) in &c.alert_instance_posts {
        o.sample(
            name,
            &[("channel", channel), ("url", url), ("outcome", outcome)],
            n,
        );
    }
    let name = "splitguard_alerts_instance_up";
    o.head(
        name,
        "gauge",
        "1 when the Alertmanager instance took the channel's last post to it.",
    );
    for ((channel, url), up) in &c.alert_instance_up {
        o.sample(name, &[("channel", channel), ("url", url)], u8::from(*up));
    }
}

/// Serves `GET /metrics` on `listener` with the latest snapshot, over TLS when
/// `tls` is given, with the listener bounds of `splitguard_watchdog::io::listener`
/// (header-read timeout, connection cap).
pub async fn serve(
    listener: tokio::net::TcpListener,
    snapshots: watch::Receiver<Snapshot>,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let text = render(&snapshots.borrow());
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    splitguard_watchdog::io::listener::serve(
        listener,
        app,
        tls,
        splitguard_watchdog::io::listener::Limits::default(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_states_counters_and_escapes_labels() {
        let mut snap = Snapshot {
            status: crate::status::tests::sample(),
            counters: Counters::default(),
        };
        snap.counters.instances.insert(
            "VI_1".into(),
            InstanceCounters {
                transitions: 3,
                adverts_received: 10,
                adverts_sent: 7,
                adverts_rejected: [("vrid", 2)].into(),
            },
        );
        snap.counters.alerts_sent.insert("hook".into(), 4);
        let text = render(&snap);
        assert!(
            !text.contains("splitguard_alerts_instance"),
            "none configured"
        );
        let am3 = (
            "am".to_string(),
            "http://am:***@192.0.2.195:9093/".to_string(),
        );
        snap.counters
            .alert_instance_posts
            .insert((am3.0.clone(), am3.1.clone(), "failed"), 3);
        snap.counters.alert_instance_up.insert(am3, false);
        let text = render(&snap);
        assert!(
            text.contains("splitguard_alerts_instance_posts_total{channel=\"am\",url=\"http://am:***@192.0.2.195:9093/\",outcome=\"failed\"} 3"),
            "{text}"
        );
        assert!(text.contains(
            "splitguard_alerts_instance_up{channel=\"am\",url=\"http://am:***@192.0.2.195:9093/\"} 0"
        ));
        assert!(
            text.contains("splitguard_instance_state{instance=\"VI_1\",state=\"MASTER\"} 1"),
            "{text}"
        );
        assert!(text.contains("splitguard_instance_state{instance=\"VI_1\",state=\"BACKUP\"} 0"));
        assert!(
            text.contains("splitguard_adverts_rejected_total{instance=\"VI_1\",reason=\"vrid\"} 2")
        );
        assert!(text.contains("splitguard_instance_transitions_total{instance=\"VI_1\"} 3"));
        assert!(text.contains("splitguard_alerts_sent_total{channel=\"hook\"} 4"));
        assert!(text.contains("# TYPE splitguard_adverts_sent_total counter"));
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
    #[test]
    fn the_fence_families() {
        let snap = Snapshot {
            status: crate::status::tests::sample_with_fence(),
            counters: Counters::default(),
        };
        let text = render(&snap);
        for line in [
            "splitguard_fence_outcomes_total{peer=\"192.0.2.6\",outcome=\"fenced\"} 1",
            "splitguard_fence_outcomes_total{peer=\"192.0.2.6\",outcome=\"failed\"} 0",
            "splitguard_fence_in_progress{peer=\"192.0.2.6\"} 0",
            "splitguard_fence_gate_closed{peer=\"192.0.2.6\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        let plain = Snapshot {
            status: crate::status::tests::sample(),
            counters: Counters::default(),
        };
        assert!(!render(&plain).contains("splitguard_fence_"));
    }

    #[test]
    fn the_witness_families() {
        let snap = Snapshot {
            status: crate::status::tests::sample_with_witness(),
            counters: Counters::default(),
        };
        let text = render(&snap);
        for line in [
            "splitguard_witness_reachable 1",
            "splitguard_witness_lease_remaining_seconds 2.7",
            "splitguard_witness_member_reachable{endpoint=\"http://192.0.2.202:2379\"} 0",
            "splitguard_witness_member_leader{endpoint=\"http://192.0.2.201:2379\"} 1",
            "splitguard_witness_key_ours{instance=\"VI_1\"} 1",
            "splitguard_witness_key_ours{instance=\"VI_2\"} 0",
            "splitguard_witness_key_holder{instance=\"VI_1\",holder=\"lb01\"} 1",
            "splitguard_witness_peer_heard 1",
            "splitguard_witness_peer_dropped_total{reason=\"bad_tag\"} 3",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        assert!(
            !text.contains("holder=\"\""),
            "a free key has no holder sample"
        );
        // Without a witness, no witness family.
        let plain = render(&Snapshot {
            status: crate::status::tests::sample(),
            counters: Counters::default(),
        });
        assert!(!plain.contains("splitguard_witness_"));
    }
}
