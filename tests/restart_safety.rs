//! Restart safety (issue 9 part 3): SIGKILL at pseudo-random points during
//! VRRP transitions and alert sends, the victim restarted, 20 iterations each.
//!
//! - Transitions: a splitguard pair (VRRPv3, 100 ms adverts, arbiter on with
//!   gw as reference, webhook to gw). Each iteration triggers a failover (lb01's
//!   switch port down), a handover (SIGTERM of lb01) or a preemption (lb01
//!   crashed and restarted), SIGKILLs the node taking over or the node
//!   releasing 0–500 ms into it, restarts it, and checks: exactly one node holds
//!   the VIP in the kernel, gw hears exactly one MAC for it by ARP, and the
//!   killed node holds no VIP once it is back as backup.
//! - Alert sends: the same pair with the arbiter off; VRRP dropped on lb02's
//!   input (S2) makes a split brain that both nodes page. Each iteration
//!   SIGKILLs one node 0–300 ms after lb02 took the VIP, restarts it, checks
//!   both nodes' pages reached gw, heals, and checks both resolved notices
//!   reached gw.
//!
//! At the end of each test, what gw's webhook received is judged by
//! idempotency key: every incident that fired was resolved (nothing lost),
//! no notification of one incident arrived under two keys (nothing paged
//! twice), both spools' outboxes are empty; raw duplicates of one key (a resend
//! after a crash between delivery and the spool's bookkeeping, which the key
//! lets a receiver drop) are printed and counted.
//!
//! Seeds are fixed and printed (`SG_RESTART_SEED` overrides; `SG_RESTART_ITERATIONS`
//! changes the count). Needs root; fails without it.

mod common;

use common::*;
use serde_json::Value;
use splitguard_lab::gw::{GwObserver, GwOptions, Hook};
use splitguard_lab::{Lab, LabProcess, wait_for};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const PORT: u16 = 8080;
const ITERATIONS: u64 = 20;

/// xorshift64: reproducible delays and choices without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The pair, its configs, every process started so far (for the logs).
struct Pair<'a> {
    lab: &'a Lab,
    cfg: BTreeMap<&'static str, std::path::PathBuf>,
    running: BTreeMap<&'static str, LabProcess>,
    dead: Vec<LabProcess>,
    starts: u32,
}

impl<'a> Pair<'a> {
    fn new(lab: &'a Lab, arbiter: bool, hook_url: &str) -> Pair<'a> {
        let mut cfg = BTreeMap::new();
        for (node, prio, peer) in [("lb01", 150, "192.0.2.6"), ("lb02", 100, "192.0.2.5")] {
            let arb = if arbiter {
                format!("\n[arbiter]\nreferences = [\"192.0.2.254\"]\npeers = [\"{peer}\"]\n")
            } else {
                "\n[arbiter]\nenabled = false\n".to_owned()
            };
            // The default rate limit (30 a channel an hour) would hold back
            // this test's own traffic; restart safety is what is judged here.
            let extra = format!(
                "{arb}{}rate_limit = 10000\n",
                splitguard_lab::configs::webhook_tables(hook_url)
            );
            let text = sg_config(lab, node, prio, 3, "100ms", &extra);
            let path = lab
                .write_file(&format!("{node}.toml"), &text)
                .expect("config");
            cfg.insert(node, path);
        }
        let mut p = Pair {
            lab,
            cfg,
            running: BTreeMap::new(),
            dead: Vec::new(),
            starts: 0,
        };
        p.start("lb01");
        p.start("lb02");
        p
    }

    fn start(&mut self, node: &'static str) {
        self.starts += 1;
        let path = self.cfg[node].to_str().expect("utf-8").to_owned();
        let p = self
            .lab
            .spawn(
                node,
                &format!("splitguard-{node}-{:03}", self.starts),
                &[env!("CARGO_BIN_EXE_splitguard"), "run", "-c", &path],
            )
            .expect("splitguard starts");
        if let Some(old) = self.running.insert(node, p) {
            self.dead.push(old);
        }
    }

    fn kill(&mut self, node: &'static str) {
        if let Some(mut p) = self.running.remove(node) {
            p.kill();
            self.dead.push(p);
        }
    }

    /// SIGTERM without waiting (a handover in progress).
    fn term(&mut self, node: &'static str) {
        if let Some(p) = self.running.get(node) {
            p.signal(libc::SIGTERM);
        }
    }

    /// Waits for a SIGTERMed node to exit (bounded); it must exit 0.
    fn reap(&mut self, node: &'static str) {
        if let Some(mut p) = self.running.remove(node) {
            let st = p.wait_exit(Duration::from_secs(10));
            let ok = st.is_some_and(|s| s.success());
            let log = p.log_text();
            self.dead.push(p);
            assert!(ok, "{node} did not exit 0 on SIGTERM: {st:?}\n{log}");
        }
    }

    /// Logs of everything started (the tail of each), for a failure message.
    fn logs(&self) -> String {
        let mut all: Vec<&LabProcess> = self.dead.iter().collect();
        all.extend(self.running.values());
        all.iter()
            .map(|p| {
                let t = p.log_text();
                let lines: Vec<&str> = t.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                format!("----- {} -----\n{tail}", p.name)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every running daemon is still alive and no log shows a panic.
    fn check_alive(&mut self, what: &str) {
        let mut gone = Vec::new();
        for (node, p) in self.running.iter_mut() {
            if let Some(st) = p.try_exit() {
                gone.push(format!("{node} exited: {st}"));
            }
        }
        let panicked: Vec<String> = self
            .dead
            .iter()
            .chain(self.running.values())
            .filter(|p| p.log_text().contains("panicked"))
            .map(|p| p.name.clone())
            .collect();
        assert!(
            gone.is_empty() && panicked.is_empty(),
            "{what}: {gone:?}, panics in {panicked:?}\n{}",
            self.logs()
        );
    }

    /// Exactly `owner` holds the VIP: in the kernels (`ip addr`) and as gw
    /// hears it by ARP (one MAC).
    fn expect_owner(&self, owner: &str, what: &str) {
        let mac = self.lab.mac_of(owner).expect("mac");
        let others: Vec<&str> = ["lb01", "lb02"]
            .into_iter()
            .filter(|h| *h != owner)
            .collect();
        let ok = wait_for(BOUND, || {
            let owners = self.lab.vip_owners("gw", VIP).ok()?;
            let kernel = holds(self.lab, owner) && others.iter().all(|h| !holds(self.lab, h));
            (kernel && owners == BTreeSet::from([mac.clone()])).then_some(())
        });
        if ok.is_none() {
            panic!(
                "{what}: expected {owner} ({mac}) alone; gw hears {:?}; lb01 holds: {}, lb02 holds: {}\n{}",
                self.lab.vip_owners("gw", VIP).unwrap_or_default(),
                holds(self.lab, "lb01"),
                holds(self.lab, "lb02"),
                self.logs()
            );
        }
    }

    /// `node`'s status says `state` (and, for a backup, that it hears lb01;
    /// with the arbiter, that it reaches gw).
    fn expect_state(&self, node: &str, state: &str, arbiter: bool, what: &str) {
        let ok = wait_for(BOUND, || {
            let s = self.status(node)?;
            let inst = &s["instances"][0];
            let heard = state != "BACKUP" || inst["master"] == "192.0.2.5";
            let arb = !arbiter
                || s["arbiter"]["references"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty() && r.iter().all(|x| x["reachable"] == true));
            (inst["state"] == state && heard && arb).then_some(())
        });
        if ok.is_none() {
            panic!(
                "{what}: {node} not {state}: {:?}\n{}",
                self.status(node),
                self.logs()
            );
        }
    }

    /// `splitguard status --json` of `node`; None while its socket is not up.
    fn status(&self, node: &str) -> Option<Value> {
        let sock = self.lab.dir().join(format!("{node}.sock"));
        let out = self
            .lab
            .run(
                node,
                &[
                    env!("CARGO_BIN_EXE_splitguard"),
                    "status",
                    "--json",
                    "--socket",
                    sock.to_str().expect("utf-8"),
                ],
            )
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The steady state every iteration starts and ends in.
    fn expect_steady(&mut self, arbiter: bool, what: &str) {
        self.expect_owner("lb01", what);
        self.expect_state("lb01", "MASTER", arbiter, what);
        self.expect_state("lb02", "BACKUP", arbiter, what);
        self.check_alive(what);
    }

    fn outbox_left(&self) -> Vec<String> {
        let mut left = Vec::new();
        for node in ["lb01", "lb02"] {
            for sub in ["outbox", "failed"] {
                let d = self.lab.dir().join(format!("{node}-state/spool/{sub}"));
                if let Ok(rd) = std::fs::read_dir(&d) {
                    for e in rd.flatten() {
                        left.push(format!("{node}/{sub}/{}", e.file_name().to_string_lossy()));
                    }
                }
            }
        }
        left
    }

    fn open_incidents(&self) -> Vec<String> {
        let mut open = Vec::new();
        for node in ["lb01", "lb02"] {
            let p = self
                .lab
                .dir()
                .join(format!("{node}-state/spool/engine.json"));
            let v: Value = std::fs::read_to_string(&p)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            for o in v["open"].as_array().into_iter().flatten() {
                open.push(format!("{node}: {} {}", o["kind"], o["id"]));
            }
        }
        open
    }
}

fn observer(lab: &Lab) -> GwObserver {
    GwObserver::start(
        lab,
        "gw",
        GwOptions {
            vip: splitguard_lab::configs::VIP_ADDR.into(),
            port: PORT,
            every: Duration::from_millis(500),
            limit: Duration::from_secs(600),
        },
    )
    .expect("gw observer")
}

fn key(h: &Hook) -> String {
    h.body["idempotency_key"].as_str().unwrap_or("").to_owned()
}

/// What gw's webhook received, judged by idempotency key.
struct Verdict {
    /// Firing incident ids with no resolved notice.
    unresolved: Vec<String>,
    /// One incident notification (id, status, kind, severity) under two keys.
    rekeyed: Vec<String>,
    /// Keys delivered more than once (resends after a crash).
    raw_duplicates: Vec<(String, usize)>,
    /// Bodies without a key or an id.
    malformed: usize,
    total: usize,
}

fn judge(hooks: &[Hook]) -> Verdict {
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_note: BTreeMap<(String, String, String, String), BTreeSet<String>> =
        BTreeMap::new();
    let mut fired: BTreeSet<String> = BTreeSet::new();
    let mut resolved: BTreeSet<String> = BTreeSet::new();
    let mut malformed = 0;
    for h in hooks {
        let k = key(h);
        let id = h.body["id"].as_str().unwrap_or("").to_owned();
        if k.is_empty() || id.is_empty() {
            malformed += 1;
            continue;
        }
        *per_key.entry(k.clone()).or_default() += 1;
        per_note
            .entry((
                id.clone(),
                h.status().to_owned(),
                h.kind().to_owned(),
                h.severity().to_owned(),
            ))
            .or_default()
            .insert(k);
        match h.status() {
            "firing" => {
                fired.insert(id);
            }
            "resolved" => {
                resolved.insert(id);
            }
            _ => {}
        }
    }
    Verdict {
        unresolved: fired.difference(&resolved).cloned().collect(),
        rekeyed: per_note
            .iter()
            .filter(|(_, keys)| keys.len() > 1)
            .map(|(n, keys)| format!("{n:?}: {keys:?}"))
            .collect(),
        raw_duplicates: per_key.into_iter().filter(|(_, n)| *n > 1).collect(),
        malformed,
        total: hooks.len(),
    }
}

fn print_hooks(hooks: &[Hook], t0: Instant) -> String {
    hooks
        .iter()
        .map(|h| {
            format!(
                "{:>8.3}s {} {} {} {}",
                h.at.saturating_duration_since(t0).as_secs_f64(),
                h.node(),
                h.kind(),
                h.status(),
                key(h)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The end of a test: everything healed, so every page is resolved, nothing
/// waits in a spool, no notification arrived under two keys.
fn final_alert_check(pair: &Pair, gw: &GwObserver, t0: Instant, what: &str) {
    // A restored incident nobody sees again resolves after RESTORE_GRACE (20 s).
    let settled = wait_for(Duration::from_secs(45), || {
        let v = judge(&gw.hooks());
        (v.unresolved.is_empty()
            && pair.outbox_left().is_empty()
            && pair.open_incidents().is_empty())
        .then_some(())
    });
    let hooks = gw.hooks();
    let v = judge(&hooks);
    println!(
        "[{:6.1}s] {what}: {} webhook POSTs, {} distinct keys; raw duplicates (same key resent after a crash): {:?}",
        t0.elapsed().as_secs_f64(),
        v.total,
        v.total - v.raw_duplicates.iter().map(|(_, n)| n - 1).sum::<usize>(),
        v.raw_duplicates
    );
    let ctx = || {
        format!(
            "received:\n{}\noutbox left: {:?}\nopen: {:?}\n{}",
            print_hooks(&hooks, t0),
            pair.outbox_left(),
            pair.open_incidents(),
            pair.logs()
        )
    };
    assert!(v.total > 0, "{what}: no alert reached gw\n{}", ctx());
    assert_eq!(
        v.malformed,
        0,
        "{what}: bodies without key or id\n{}",
        ctx()
    );
    assert!(
        v.rekeyed.is_empty(),
        "{what}: one notification under two keys (a duplicate page): {:?}\n{}",
        v.rekeyed,
        ctx()
    );
    assert!(
        settled.is_some(),
        "{what}: lost notifications: fired but never resolved: {:?}\n{}",
        v.unresolved,
        ctx()
    );
    assert!(gw.error().is_none(), "gw observer: {:?}", gw.error());
}

#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// lb01's switch port goes down: lb01 releases (FAULT), lb02 takes over.
    Failover,
    /// lb01 SIGTERMed: priority 0, lb02 takes over at once.
    Handover,
    /// lb01 stopped, lb02 took over, lb01 restarted: lb01 preempts lb02.
    Preempt,
}

#[test]
fn sigkill_during_transitions_leaves_one_owner() {
    let seed = env_u64("SG_RESTART_SEED", 0x5eed_0009_0003);
    let n = env_u64("SG_RESTART_ITERATIONS", ITERATIONS);
    let mut rng = Rng::new(seed);
    println!("transitions: seed {seed:#x}, {n} iterations");
    let lab = pair_lab("rstrans");
    let gw = observer(&lab);
    let t0 = Instant::now();
    let mut pair = Pair::new(&lab, true, gw.webhook_url());
    pair.expect_steady(true, "steady state");

    for it in 1..=n {
        let trigger = match rng.below(3) {
            0 => Trigger::Failover,
            1 => Trigger::Handover,
            _ => Trigger::Preempt,
        };
        // The taker gets the VIP, the releaser gives it up.
        let (victim, role) = if rng.below(2) == 0 {
            ("lb02", "taking over")
        } else {
            ("lb01", "releasing")
        };
        let (victim, role) = match trigger {
            // In a preemption lb01 takes over and lb02 releases.
            Trigger::Preempt if victim == "lb01" => ("lb01", "taking over"),
            Trigger::Preempt => ("lb02", "releasing"),
            _ => (victim, role),
        };
        let delay = Duration::from_millis(rng.below(501));
        println!(
            "[{:6.1}s] iteration {it}/{n}: {trigger:?}, SIGKILL {victim} ({role}) after {} ms",
            t0.elapsed().as_secs_f64(),
            delay.as_millis()
        );
        let what = format!("iteration {it} ({trigger:?}, {victim} {role}, {delay:?})");
        match trigger {
            Trigger::Failover => {
                lab.set_bridge_port("lb01", false).expect("port down");
                std::thread::sleep(delay);
                pair.kill(victim);
                pair.start(victim);
                // lb01 is cut off: lb02 owns the VIP, and lb01, restarted or
                // not, holds no VIP while its link is down.
                pair.expect_owner("lb02", &format!("{what}, lb01 cut off"));
                lab.set_bridge_port("lb01", true).expect("port up");
            }
            Trigger::Handover => {
                pair.term("lb01");
                std::thread::sleep(delay);
                pair.kill(victim);
                if victim == "lb02" {
                    pair.start("lb02");
                    pair.reap("lb01");
                    // lb01 stopped: the restarted lb02 alone owns the VIP.
                    pair.expect_owner("lb02", &format!("{what}, lb01 stopped"));
                }
                // lb01 killed mid-shutdown may leave its VIP in its kernel
                // (answering ARP, so lb02's arbiter rightly withholds the claim):
                // the restart removes it and the pair elects again.
                pair.start("lb01");
            }
            Trigger::Preempt => {
                pair.term("lb01");
                pair.reap("lb01");
                pair.expect_owner("lb02", &format!("{what}, lb01 stopped"));
                pair.start("lb01");
                std::thread::sleep(delay);
                pair.kill(victim);
                pair.start(victim);
            }
        }
        pair.expect_steady(true, &format!("{what}, after restart"));
    }
    final_alert_check(&pair, &gw, t0, "transitions");
}

#[test]
fn sigkill_during_alert_sends_loses_and_doubles_nothing() {
    let seed = env_u64("SG_RESTART_SEED", 0xa1e7_0009_0003);
    let n = env_u64("SG_RESTART_ITERATIONS", ITERATIONS);
    let mut rng = Rng::new(seed);
    println!("alert sends: seed {seed:#x}, {n} iterations");
    let lab = pair_lab("rsalert");
    let gw = observer(&lab);
    let t0 = Instant::now();
    let mut pair = Pair::new(&lab, false, gw.webhook_url());
    pair.expect_steady(false, "steady state");

    for it in 1..=n {
        let victim = if rng.below(2) == 0 { "lb01" } else { "lb02" };
        let delay = Duration::from_millis(rng.below(301));
        println!(
            "[{:6.1}s] iteration {it}/{n}: split brain, SIGKILL {victim} {} ms after lb02 took the VIP",
            t0.elapsed().as_secs_f64(),
            delay.as_millis()
        );
        let what = format!("iteration {it} ({victim}, {delay:?})");
        let since = gw.hooks().len();
        lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
        let ok = wait_for(BOUND, || holds(&lab, "lb02").then_some(()));
        assert!(ok.is_some(), "{what}: lb02 never claimed\n{}", pair.logs());
        std::thread::sleep(delay);
        pair.kill(victim);
        pair.start(victim);
        // The restarted node takes the VIP again (lb02 deaf to lb01, lb01
        // preempting a deaf lb02) and sees the split brain go on, so an
        // incident it restored from its spool is seen again, not left for
        // the 20 s restore grace.
        let back = wait_for(BOUND, || holds(&lab, victim).then_some(()));
        assert!(
            back.is_some(),
            "{what}: {victim} never claimed after its restart\n{}",
            pair.logs()
        );
        std::thread::sleep(Duration::from_millis(1500));
        // Both nodes page the split brain (the victim before its death, or
        // after its restart, when it sees the other owner again).
        let paged = wait_for(BOUND, || {
            let hooks = gw.hooks();
            let nodes: BTreeSet<&str> = hooks[since..]
                .iter()
                .filter(|h| h.kind() == "split_brain" && h.status() == "firing")
                .map(Hook::node)
                .collect();
            (nodes.len() == 2).then_some(())
        });
        let open_before = open_split_brains(&gw.hooks());
        assert!(
            paged.is_some() || open_before.len() == 2,
            "{what}: the split brain was not paged by both nodes (open: {open_before:?})\n{}\n{}",
            print_hooks(&gw.hooks(), t0),
            pair.logs()
        );
        lab.nft(Some("lb02"), "delete table inet s2\n")
            .expect("nft");
        pair.expect_steady(false, &format!("{what}, healed"));
        // Both resolved notices arrive.
        let cleared = wait_for(BOUND, || {
            open_split_brains(&gw.hooks()).is_empty().then_some(())
        });
        assert!(
            cleared.is_some(),
            "{what}: split brain not resolved at gw: {:?}\n{}\n{}",
            open_split_brains(&gw.hooks()),
            print_hooks(&gw.hooks(), t0),
            pair.logs()
        );
    }
    final_alert_check(&pair, &gw, t0, "alert sends");
}

/// Split-brain incident ids that fired and have no resolved notice yet.
fn open_split_brains(hooks: &[Hook]) -> BTreeSet<String> {
    let mut open = BTreeSet::new();
    for h in hooks.iter().filter(|h| h.kind() == "split_brain") {
        let id = h.body["id"].as_str().unwrap_or("").to_owned();
        match h.status() {
            "firing" => {
                open.insert(id);
            }
            "resolved" => {
                open.remove(&id);
            }
            _ => {}
        }
    }
    open
}
