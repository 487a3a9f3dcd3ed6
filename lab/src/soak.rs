//! `splitguard lab soak`: one pair lab run for a long while under random frame
//! loss (nftables `numgen random`, on the bridge; this kernel has no netem) with
//! faults on a fixed rotation, watching for what only time shows: growing memory,
//! file descriptors or threads, panics, and dual-owner seconds the arbiter should
//! have prevented. splitguard (this binary) runs on lb01 and lb02 with its
//! arbiter (reference gw) and a webhook to gw; gw asks who holds the VIP every
//! 250 ms, as in `lab scenario`.
//!
//! The loss, by default, is on every frame to and from lb02 (S7 in both
//! directions). Loss on every bridge port was tried first: gw's own who-has then
//! loses about half its answers (60 of 120 s read as zero-owner), both arbiters
//! lose their reference again and again (`isolated` paged a dozen times in 2
//! minutes) and the pair flaps (20-odd owner changes): the soak measured its own
//! observer. With the loss on lb02 only, gw sees lb01 exactly and lb02, the node
//! that decides whether to claim, works through the loss. `--loss all` keeps
//! the harsher form.
//!
//! Faults, every [`PERIOD`] from [`FIRST_FAULT`] on, in cycles of four: lb01's
//! link down for 5 s; VRRP dropped on lb02's input for 8 s; lb02's daemon
//! SIGTERMed and started again 2 s later; lb01's daemon SIGKILLed (its VIP stays
//! in the kernel) and started again 5 s later. The restarts come in the first
//! cycle and every [`RESTART_EVERY_CYCLES`]th after it; the other cycles flap and
//! drop VRRP only, so the daemons live long enough for growth to show. A fault
//! is planned only if it ends, grace included, before the run does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::configs::{pair_lab, start_splitguard};
use super::gw::{GwObserver, OwnerSample};
use super::measure;
use super::netns::Lab;
use super::pair::{RunError, SAMPLE_EVERY, STEADY_BOUND, splitguard_node_ready, start_gw_observer};
use super::process::LabProcess;
use super::report::Implementation;
use super::scenario::{
    Scenario, ScenarioError, apply_fault, check_prerequisites, heal_fault, sg_node_config,
};
use splitguard_node::status::state;

/// Time between two faults.
pub const PERIOD: Duration = Duration::from_secs(15);
/// From the start of the soak (the pair steady, the loss on) to the first fault.
pub const FIRST_FAULT: Duration = Duration::from_secs(10);
/// After a fault ends, dual owners are not counted against the soak for this
/// long: a restarted daemon needs Master_Down_Interval (about 3.5 s) to claim,
/// and under the loss the other node may miss its first adverts for a few
/// seconds more (8 s was once overrun by 0.4 s after a SIGKILL restart).
pub const GRACE: Duration = Duration::from_secs(10);
/// The longest dual owner a claim in a VRRP drop may cause before its
/// probation retracts it: a few ownership rounds (the arbiter's probation) plus
/// gw's sampling.
pub const RETRACT_BOUND: Duration = Duration::from_secs(3);
/// Restarts come in cycle 0 and every this many cycles after it.
pub const RESTART_EVERY_CYCLES: usize = 10;
/// How often each daemon's RSS, fds and threads are read.
pub const SAMPLE_RESOURCES_EVERY: Duration = Duration::from_secs(2);
/// A daemon's first sample that counts is taken at least this long after its start.
pub const WARMUP: Duration = Duration::from_secs(10);
/// A lifetime is checked for growth only if its counted samples span this long.
pub const MIN_SPAN: Duration = Duration::from_secs(30);
/// The loss on the bridge, in percent.
pub const LOSS_PERCENT: u32 = 30;
/// The longest soak accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The shortest soak accepted.
pub const MIN_DURATION: Duration = Duration::from_secs(30);

/// How much a daemon may grow over one lifetime (first counted sample to last).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// RSS growth fails only when it exceeds both this many KiB …
    pub rss_kib: u64,
    /// … and this percentage of the first sample.
    pub rss_percent: f64,
    pub fds: i64,
    pub threads: i64,
}

/// The bounds the soak enforces. A steady daemon settles within the warm-up
/// (tokio's workers, sockets, the control listener); what may still move is
/// allocator noise (a few hundred KiB), an alert or control connection open at
/// the sampling instant (a few fds) and a blocking-pool thread or two.
pub const BOUNDS: Bounds = Bounds {
    rss_kib: 2048,
    rss_percent: 20.0,
    fds: 4,
    threads: 2,
};

/// Where the random loss applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LossScope {
    /// Every frame the bridge forwards, both directions, every port (VRRP, ARP,
    /// the arbiter's probes, the webhook, gw's who-has).
    All,
    /// Only frames to and from lb02 (the backup's adverts and probes).
    Lb02,
}

impl LossScope {
    fn text(self) -> String {
        match self {
            LossScope::All => {
                format!("{LOSS_PERCENT} % random loss of every frame the bridge forwards")
            }
            LossScope::Lb02 => format!("{LOSS_PERCENT} % random loss of lb02's frames"),
        }
    }

    /// The bridge's ruleset for this scope (table `bridge soak`).
    pub fn ruleset(self, lb02_port: &str) -> String {
        let rules = match self {
            LossScope::All => format!("  numgen random mod 100 < {LOSS_PERCENT} drop\n"),
            LossScope::Lb02 => format!(
                "  iifname \"{lb02_port}\" numgen random mod 100 < {LOSS_PERCENT} drop\n  \
                 oifname \"{lb02_port}\" numgen random mod 100 < {LOSS_PERCENT} drop\n"
            ),
        };
        format!(
            "table bridge soak {{\n chain loss {{\n  type filter hook forward priority 0;\n{rules} }}\n}}\n"
        )
    }
}

/// One kind of fault in the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    LinkFlap,
    VrrpDrop,
    TermLb02,
    KillLb01,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [
        FaultKind::LinkFlap,
        FaultKind::VrrpDrop,
        FaultKind::TermLb02,
        FaultKind::KillLb01,
    ];

    pub fn text(self) -> &'static str {
        match self {
            FaultKind::LinkFlap => "lb01 link flap (down 5 s)",
            FaultKind::VrrpDrop => "VRRP dropped on lb02 (8 s)",
            FaultKind::TermLb02 => "lb02 daemon SIGTERM, restart after 2 s",
            FaultKind::KillLb01 => "lb01 daemon SIGKILL, restart after 5 s",
        }
    }

    /// From the fault to its heal (link up, rule removed, daemon started).
    pub fn length(self) -> Duration {
        Duration::from_secs(match self {
            FaultKind::LinkFlap => 5,
            FaultKind::VrrpDrop => 8,
            FaultKind::TermLb02 => 2,
            FaultKind::KillLb01 => 5,
        })
    }

    /// Whether dual owners while this fault is on (and for [`GRACE`] after it)
    /// are excused. VRRP dropped on the backup is exactly what the arbiter is
    /// for, so its window counts. A link flap makes lb02 take over and lb01
    /// preempt on its return; a restart hands over; a SIGKILLed daemon leaves
    /// its VIP answering ARP until it is started again: no arbiter on the other
    /// node can remove an address from a host whose daemon is dead.
    pub fn excused(self) -> bool {
        self != FaultKind::VrrpDrop
    }
}

/// A fault, planned or done: offsets from the start of the soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub at: Duration,
    pub heal: Duration,
}

/// The faults of a soak of `duration`: one every [`PERIOD`] from
/// [`FIRST_FAULT`], each ended and its grace over before `duration`.
pub fn plan(duration: Duration) -> Vec<Fault> {
    const QUIET_CYCLE: [FaultKind; 4] = [
        FaultKind::LinkFlap,
        FaultKind::VrrpDrop,
        FaultKind::LinkFlap,
        FaultKind::VrrpDrop,
    ];
    let mut out = Vec::new();
    for i in 0.. {
        let (cycle, slot) = (i / 4, i % 4);
        let kind = if cycle % RESTART_EVERY_CYCLES == 0 {
            FaultKind::ALL[slot]
        } else {
            QUIET_CYCLE[slot]
        };
        let at = FIRST_FAULT + PERIOD * i as u32;
        let heal = at + kind.length();
        if heal + GRACE > duration {
            break;
        }
        out.push(Fault { kind, at, heal });
    }
    out
}

/// Whether a dual-owner sample at `t` (since the start) is excused by `faults`.
pub fn excused(faults: &[Fault], t: Duration) -> bool {
    faults
        .iter()
        .any(|f| f.kind.excused() && f.at <= t && t < f.heal + GRACE)
}

/// One reading of a daemon's /proc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResSample {
    /// Since the daemon was started.
    pub age: Duration,
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
}

/// Reads VmRSS, the open fds and the tasks of `pid`.
pub fn sample_process(pid: u32, age: Duration) -> Option<ResSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let count = |dir: &str| {
        std::fs::read_dir(format!("/proc/{pid}/{dir}"))
            .ok()
            .map(|d| d.count() as u64)
    };
    Some(ResSample {
        age,
        rss_kib: measure::parse_vmrss_kib(&status)?,
        fds: count("fd")?,
        threads: count("task")?,
    })
}

/// One daemon process's samples (a restart starts a new series).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub node: String,
    /// 1 for the first process on the node, 2 after its first restart, …
    pub lifetime: usize,
    pub samples: Vec<ResSample>,
}

/// A lifetime's first counted sample against its last.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    pub node: String,
    pub lifetime: usize,
    pub first: ResSample,
    pub last: ResSample,
    /// Whether the span reached [`MIN_SPAN`] (else shown, not judged).
    pub checked: bool,
    pub violations: Vec<String>,
}

/// The growth of `s` against `b`; None when no sample is past the warm-up.
pub fn check_series(s: &Series, b: &Bounds) -> Option<Growth> {
    let first = *s.samples.iter().find(|x| x.age >= WARMUP)?;
    let last = *s.samples.last()?;
    let checked = last.age.saturating_sub(first.age) >= MIN_SPAN;
    let mut violations = Vec::new();
    if checked {
        let rss = last.rss_kib as i64 - first.rss_kib as i64;
        let pct = rss as f64 * 100.0 / first.rss_kib.max(1) as f64;
        if rss > b.rss_kib as i64 && pct > b.rss_percent {
            violations.push(format!(
                "RSS grew {rss} KiB ({pct:.0} %), bound {} KiB or {:.0} %",
                b.rss_kib, b.rss_percent
            ));
        }
        let fds = last.fds as i64 - first.fds as i64;
        if fds > b.fds {
            violations.push(format!("open fds grew by {fds}, bound {}", b.fds));
        }
        let threads = last.threads as i64 - first.threads as i64;
        if threads > b.threads {
            violations.push(format!("threads grew by {threads}, bound {}", b.threads));
        }
    }
    Some(Growth {
        node: s.node.clone(),
        lifetime: s.lifetime,
        first,
        last,
        checked,
        violations,
    })
}

/// Lines of `log` that tell of a panic.
pub fn panics_in(node: &str, log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("panicked"))
        .map(|l| format!("{node}: {}", l.trim()))
        .collect()
}

/// A run of counted dual-owner samples in a row (no other sample, and no gap in
/// gw's sampling, between).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DualEpisode {
    /// The first sample's time since the start.
    pub at: Duration,
    pub samples: usize,
    /// Inside a VRRP drop on lb02 or its [`GRACE`].
    pub in_vrrp_drop: bool,
}

impl DualEpisode {
    pub fn length(&self) -> Duration {
        SAMPLE_EVERY * self.samples as u32
    }

    /// Whether the arbiter could have prevented it: a dual owner away from the
    /// VRRP drops, or one in a drop that outlasts [`RETRACT_BOUND`]. A claim in a
    /// drop whose every ownership answer was lost is not preventable; the
    /// probation after it must end it within the bound.
    pub fn preventable(&self) -> bool {
        !self.in_vrrp_drop || self.length() > RETRACT_BOUND
    }
}

/// What gw saw: dual (all, counted), zero, total samples, owner changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnerCounts {
    pub dual: usize,
    pub dual_counted: usize,
    /// The counted dual-owner samples, in runs.
    pub episodes: Vec<DualEpisode>,
    pub zero: usize,
    pub total: usize,
    /// Times the single owner changed from one MAC to another.
    pub owner_changes: usize,
}

impl OwnerCounts {
    /// Episodes inside VRRP drops that ended within the bound: claims made
    /// blind and retracted.
    pub fn retracted(&self) -> impl Iterator<Item = &DualEpisode> {
        self.episodes.iter().filter(|e| !e.preventable())
    }
}

/// Counts `samples` in `[t0, t0 + duration)` against the faults done.
pub fn count(
    samples: &[OwnerSample],
    t0: Instant,
    duration: Duration,
    faults: &[Fault],
) -> OwnerCounts {
    let mut c = OwnerCounts::default();
    let mut owner: Option<&String> = None;
    // Whether the previous sample extended the last episode.
    let mut in_episode = false;
    for s in samples
        .iter()
        .filter(|s| s.at >= t0 && s.at < t0 + duration)
    {
        c.total += 1;
        let mut counted = false;
        match s.macs.len() {
            0 => c.zero += 1,
            1 => {
                let mac = s.macs.iter().next();
                if owner.is_some() && owner != mac {
                    c.owner_changes += 1;
                }
                owner = mac;
            }
            _ => {
                c.dual += 1;
                let t = s.at - t0;
                if !excused(faults, t) {
                    counted = true;
                    c.dual_counted += 1;
                    // A gap in gw's samples (a stall) ends the run as well.
                    let next = |e: &DualEpisode| e.at + SAMPLE_EVERY * (e.samples as u32 + 2);
                    match c.episodes.last_mut() {
                        Some(e) if in_episode && t <= next(e) => e.samples += 1,
                        _ => c.episodes.push(DualEpisode {
                            at: t,
                            samples: 1,
                            in_vrrp_drop: faults.iter().any(|f| {
                                f.kind == FaultKind::VrrpDrop && f.at <= t && t < f.heal + GRACE
                            }),
                        }),
                    }
                }
            }
        }
        in_episode = counted;
    }
    c
}

/// The soak's findings.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakReport {
    pub duration: Duration,
    pub loss: LossScope,
    pub faults: Vec<Fault>,
    pub owners: OwnerCounts,
    /// (kind, status) → how many webhooks reached gw.
    pub alerts: BTreeMap<(String, String), usize>,
    pub growth: Vec<Growth>,
    pub panics: Vec<String>,
    /// Anything else that went wrong (a daemon that exited by itself, gw's
    /// observer stopping, a fault that could not be applied).
    pub problems: Vec<String>,
}

fn secs(n: usize) -> f64 {
    n as f64 * SAMPLE_EVERY.as_secs_f64()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl SoakReport {
    /// Why the soak fails; empty when it passes.
    pub fn reasons(&self) -> Vec<String> {
        let mut r = Vec::new();
        let preventable: Vec<&DualEpisode> = self
            .owners
            .episodes
            .iter()
            .filter(|e| e.preventable())
            .collect();
        if !preventable.is_empty() {
            let total: Duration = preventable.iter().map(|e| e.length()).sum();
            let at: Vec<String> = preventable
                .iter()
                .map(|e| {
                    format!(
                        "+{:.2} s for {:.2} s{}",
                        e.at.as_secs_f64(),
                        e.length().as_secs_f64(),
                        if e.in_vrrp_drop {
                            " in a VRRP drop"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            r.push(format!(
                "{:.2} dual-owner seconds the arbiter could have prevented ({})",
                total.as_secs_f64(),
                at.join(", ")
            ));
        }
        for p in &self.panics {
            r.push(format!("panic: {p}"));
        }
        for g in &self.growth {
            for v in &g.violations {
                r.push(format!("{} (lifetime {}): {v}", g.node, g.lifetime));
            }
        }
        r.extend(self.problems.iter().cloned());
        r
    }

    pub fn passed(&self) -> bool {
        self.reasons().is_empty()
    }

    fn fault_counts(&self) -> String {
        let mut by: BTreeMap<FaultKind, usize> = BTreeMap::new();
        for f in &self.faults {
            *by.entry(f.kind).or_default() += 1;
        }
        let parts: Vec<String> = by
            .iter()
            .map(|(k, n)| format!("{} ×{n}", k.text()))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }

    fn alert_counts(&self) -> String {
        let parts: Vec<String> = self
            .alerts
            .iter()
            .map(|((kind, status), n)| {
                if status == "firing" {
                    format!("{kind} ×{n}")
                } else {
                    format!("{status} {kind} ×{n}")
                }
            })
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }

    /// The report, plain text or Markdown.
    pub fn render(&self, markdown: bool) -> String {
        let b = BOUNDS;
        let o = &self.owners;
        let reasons = self.reasons();
        let verdict = if reasons.is_empty() { "PASS" } else { "FAIL" };
        let lines = [
            ("duration", format!("{} s", self.duration.as_secs())),
            ("loss", self.loss.text()),
            (
                "faults",
                format!("{} ({})", self.faults.len(), self.fault_counts()),
            ),
            ("owner changes seen by gw", o.owner_changes.to_string()),
            (
                "dual-owner",
                format!(
                    "{:.2} s in all, {:.2} s counted",
                    secs(o.dual),
                    secs(o.dual_counted)
                ),
            ),
            ("claims retracted in VRRP drops", {
                let r: Vec<&DualEpisode> = o.retracted().collect();
                match r.iter().map(|e| e.length()).max() {
                    None => "none".to_string(),
                    Some(longest) => format!(
                        "{} ({:.2} s dual-owner, longest {:.2} s)",
                        r.len(),
                        r.iter().map(|e| e.length()).sum::<Duration>().as_secs_f64(),
                        longest.as_secs_f64()
                    ),
                }
            }),
            ("zero-owner", format!("{:.2} s", secs(o.zero))),
            ("gw samples", o.total.to_string()),
            ("alerts at gw", self.alert_counts()),
            (
                "panics",
                if self.panics.is_empty() {
                    "none".into()
                } else {
                    self.panics.len().to_string()
                },
            ),
        ];
        let mut out = String::new();
        if markdown {
            let _ = writeln!(out, "## splitguard lab soak: {verdict}\n");
            for (k, v) in &lines {
                let _ = writeln!(out, "- **{k}**: {v}");
            }
            let _ = writeln!(
                out,
                "\n| daemon | RSS MiB first → last | fds | threads | span s | growth check |\n\
                 |---|--:|--:|--:|--:|---|"
            );
        } else {
            let _ = writeln!(out, "splitguard lab soak");
            for (k, v) in &lines {
                let _ = writeln!(out, "{k}: {v}");
            }
            let _ = writeln!(out, "daemons (first sample after warm-up → last):");
        }
        for g in &self.growth {
            let check = if !g.checked {
                "too short to judge".to_string()
            } else if g.violations.is_empty() {
                "ok".to_string()
            } else {
                g.violations.join("; ")
            };
            let span = g.last.age.saturating_sub(g.first.age).as_secs();
            let (rss, fds, thr) = (
                format!("{:.1} → {:.1}", mib(g.first.rss_kib), mib(g.last.rss_kib)),
                format!("{} → {}", g.first.fds, g.last.fds),
                format!("{} → {}", g.first.threads, g.last.threads),
            );
            if markdown {
                let _ = writeln!(
                    out,
                    "| {} #{} | {rss} | {fds} | {thr} | {span} | {check} |",
                    g.node, g.lifetime
                );
            } else {
                let _ = writeln!(
                    out,
                    "  {} #{}: RSS {rss} MiB, fds {fds}, threads {thr}, over {span} s: {check}",
                    g.node, g.lifetime
                );
            }
        }
        let _ = writeln!(
            out,
            "{}bounds per lifetime, first sample {} s after the start to the last, judged when \
             {} s apart: RSS growth at most {} KiB or {:.0} % (whichever is larger), open fds \
             +{}, threads +{}. Dual owners count against the soak except during a link flap, \
             a restart or a SIGKILLed daemon and {} s after each ends. VRRP dropped on lb02 \
             is the arbiter's case: there only a claim made with every ownership answer \
             lost is excused, and it must be retracted within {} s. gw asks every {} ms.",
            if markdown { "\n" } else { "" },
            WARMUP.as_secs(),
            MIN_SPAN.as_secs(),
            b.rss_kib,
            b.rss_percent,
            b.fds,
            b.threads,
            GRACE.as_secs(),
            RETRACT_BOUND.as_secs(),
            SAMPLE_EVERY.as_millis()
        );
        if markdown {
            let _ = writeln!(out, "\n**verdict: {verdict}**");
        } else {
            let _ = writeln!(out, "verdict: {verdict}");
        }
        for r in &reasons {
            let _ = writeln!(out, "{}{r}", if markdown { "- " } else { "  " });
        }
        out
    }
}

/// What `splitguard lab soak` was asked to do.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub duration: Duration,
    pub loss: LossScope,
    /// The splitguard binary the nodes run (normally this very binary).
    pub splitguard: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error(transparent)]
    Prerequisite(#[from] ScenarioError),
    #[error("the soak could not run: {0}")]
    Run(String),
    #[error("interrupted; the lab was torn down")]
    Interrupted,
}

impl From<RunError> for SoakError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Interrupted => SoakError::Interrupted,
            e => SoakError::Run(e.to_string()),
        }
    }
}

/// One node's daemon across its restarts.
struct Node {
    name: &'static str,
    proc: Option<LabProcess>,
    started: Instant,
    /// The logs of earlier lifetimes (a restart truncates the log file).
    logs: String,
    series: Vec<Series>,
}

impl Node {
    fn start(
        lab: &Lab,
        opts: &SoakOptions,
        name: &'static str,
        url: &str,
    ) -> Result<Node, SoakError> {
        let mut n = Node {
            name,
            proc: None,
            started: Instant::now(),
            logs: String::new(),
            series: Vec::new(),
        };
        n.restart(lab, opts, url)?;
        Ok(n)
    }

    fn restart(&mut self, lab: &Lab, opts: &SoakOptions, url: &str) -> Result<(), SoakError> {
        self.keep_log();
        let cfg = sg_node_config(lab, self.name, Implementation::Splitguard, None, url);
        let p = start_splitguard(lab, self.name, &opts.splitguard, &cfg)
            .map_err(|e| SoakError::Run(e.to_string()))?;
        self.proc = Some(p);
        self.started = Instant::now();
        self.series.push(Series {
            node: self.name.into(),
            lifetime: self.series.len() + 1,
            samples: Vec::new(),
        });
        Ok(())
    }

    fn keep_log(&mut self) {
        if let Some(p) = &self.proc {
            let _ = writeln!(self.logs, "{}", p.log_text());
        }
    }

    fn sample(&mut self) {
        let Some(pid) = self.proc.as_ref().and_then(LabProcess::pid) else {
            return;
        };
        if let (Some(s), Some(series)) = (
            sample_process(pid, self.started.elapsed()),
            self.series.last_mut(),
        ) {
            series.samples.push(s);
        }
    }

    fn all_logs(&mut self) -> String {
        self.keep_log();
        std::mem::take(&mut self.logs)
    }
}

fn pause(d: Duration) -> Result<(), SoakError> {
    measure::pause(d, SoakError::Interrupted)
}

/// Runs the soak; `progress` gets a line per step. The lab is gone when it returns.
pub fn run(opts: &SoakOptions, progress: &mut dyn FnMut(&str)) -> Result<SoakReport, SoakError> {
    if opts.duration < MIN_DURATION || opts.duration > MAX_DURATION {
        return Err(SoakError::Run(format!(
            "the duration must be between {} s and {} h",
            MIN_DURATION.as_secs(),
            MAX_DURATION.as_secs() / 3600
        )));
    }
    check_prerequisites(false)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ScenarioError::Runtime)?;
    let lab = pair_lab("soak").map_err(|e| SoakError::Run(e.to_string()))?;
    let gw = start_gw_observer(&lab, STEADY_BOUND + opts.duration + Duration::from_secs(30))
        .map_err(|e| SoakError::Run(e.to_string()))?;
    let url = gw.webhook_url().to_string();
    let mut lb01 = Node::start(&lab, opts, "lb01", &url)?;
    let mut lb02 = Node::start(&lab, opts, "lb02", &url)?;
    let result = soak(&rt, &lab, &gw, &mut lb01, &mut lb02, opts, &url, progress);
    for n in [&mut lb01, &mut lb02] {
        if let Some(p) = n.proc.as_mut() {
            p.stop(Duration::from_secs(5));
        }
    }
    let mut report = result?;
    for n in [&mut lb01, &mut lb02] {
        let logs = n.all_logs();
        report.panics.extend(panics_in(n.name, &logs));
        report
            .growth
            .extend(n.series.iter().filter_map(|s| check_series(s, &BOUNDS)));
    }
    Ok(report)
}

/// Waits until lb01 is master with the VIP, lb02 backup, both arbiters see gw,
/// and gw sees lb01 alone.
fn wait_steady(rt: &tokio::runtime::Runtime, lab: &Lab, gw: &GwObserver) -> Result<(), SoakError> {
    let mac1 = lab
        .mac_of("lb01")
        .map_err(|e| SoakError::Run(e.to_string()))?;
    let deadline = Instant::now() + STEADY_BOUND;
    loop {
        let ready = splitguard_node_ready(rt, lab, "lb01", state::MASTER, true)
            .and_then(|()| splitguard_node_ready(rt, lab, "lb02", state::BACKUP, true))
            .and_then(|()| gw.sees_only(&mac1, SAMPLE_EVERY * 2));
        let why = match ready {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(SoakError::Run(format!(
                "the pair did not settle within {} s: {why}",
                STEADY_BOUND.as_secs()
            )));
        }
        pause(Duration::from_millis(100))?;
    }
}

#[allow(clippy::too_many_arguments)] // the run's whole context, used once
fn soak(
    rt: &tokio::runtime::Runtime,
    lab: &Lab,
    gw: &GwObserver,
    lb01: &mut Node,
    lb02: &mut Node,
    opts: &SoakOptions,
    url: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<SoakReport, SoakError> {
    wait_steady(rt, lab, gw)?;
    progress("steady: lb01 master with the VIP, lb02 backup, both arbiters see gw");
    let lb02_port = lab
        .host("lb02")
        .map_err(|e| SoakError::Run(e.to_string()))?
        .bridge_port
        .clone();
    lab.nft(None, &opts.loss.ruleset(&lb02_port))
        .map_err(|e| SoakError::Run(format!("put the loss in place: {e}")))?;
    progress(&format!(
        "+0 s {} on, for {} s",
        opts.loss.text(),
        opts.duration.as_secs()
    ));
    let t0 = Instant::now();
    let planned = plan(opts.duration);
    // (offset, fault index, true = heal)
    let mut steps: Vec<(Duration, usize, bool)> = planned
        .iter()
        .enumerate()
        .flat_map(|(i, f)| [(f.at, i, false), (f.heal, i, true)])
        .collect();
    steps.sort();
    let mut steps = steps.into_iter().peekable();
    let mut done: Vec<Fault> = Vec::new();
    let mut problems = Vec::new();
    let mut next_sample = t0;
    let end = t0 + opts.duration;
    while Instant::now() < end {
        if measure::interrupted() {
            return Err(SoakError::Interrupted);
        }
        while let Some(&(at, i, heal)) = steps.peek() {
            if t0.elapsed() < at {
                break;
            }
            steps.next();
            let kind = planned[i].kind;
            let now = t0.elapsed();
            if heal {
                if let Some(f) = done.iter_mut().rev().find(|f| f.kind == kind) {
                    f.heal = now;
                }
            } else {
                done.push(Fault {
                    kind,
                    at: now,
                    heal: now + kind.length(),
                });
            }
            if let Err(e) = step(lab, opts, url, lb01, lb02, kind, heal) {
                problems.push(format!("+{} s {}: {e}", now.as_secs(), kind.text()));
            }
            progress(&format!(
                "+{:.1} s {} {}",
                now.as_secs_f64(),
                if heal { "healed:" } else { "fault:" },
                kind.text()
            ));
        }
        if Instant::now() >= next_sample {
            lb01.sample();
            lb02.sample();
            next_sample += SAMPLE_RESOURCES_EVERY;
        }
        for n in [&mut *lb01, &mut *lb02] {
            if let Some(p) = n.proc.as_mut()
                && let Some(status) = p.try_exit()
            {
                problems.push(format!(
                    "{} exited by itself at +{} s ({status})",
                    n.name,
                    t0.elapsed().as_secs()
                ));
                n.keep_log();
                n.proc = None;
            }
        }
        pause(Duration::from_millis(100).min(end.saturating_duration_since(Instant::now())))?;
    }
    if let Some(e) = gw.error() {
        problems.push(format!("gw's observer stopped: {e}"));
    }
    let owners = count(&gw.samples(), t0, opts.duration, &done);
    let expected = (opts.duration.as_secs_f64() / SAMPLE_EVERY.as_secs_f64()) as usize;
    if owners.total * 10 < expected * 9 {
        problems.push(format!(
            "gw took {} samples, expected about {expected}",
            owners.total
        ));
    }
    let mut alerts = BTreeMap::new();
    for h in gw.hooks().iter().filter(|h| h.at >= t0 && h.at < end) {
        *alerts
            .entry((h.kind().to_owned(), h.status().to_owned()))
            .or_default() += 1;
    }
    progress(&format!(
        "+{} s done: dual-owner {:.2} s ({:.2} s counted), zero-owner {:.2} s",
        t0.elapsed().as_secs(),
        secs(owners.dual),
        secs(owners.dual_counted),
        secs(owners.zero)
    ));
    Ok(SoakReport {
        duration: opts.duration,
        loss: opts.loss,
        faults: done,
        owners,
        alerts,
        growth: Vec::new(),
        panics: Vec::new(),
        problems,
    })
}

/// Puts a fault in place (`heal` false) or takes it away.
fn step(
    lab: &Lab,
    opts: &SoakOptions,
    url: &str,
    lb01: &mut Node,
    lb02: &mut Node,
    kind: FaultKind,
    heal: bool,
) -> Result<(), String> {
    let net = |s: Scenario| {
        if heal {
            heal_fault(lab, s)
        } else {
            apply_fault(lab, s)
        }
        .map_err(|e| e.to_string())
    };
    match (kind, heal) {
        (FaultKind::LinkFlap, _) => net(Scenario::S1),
        (FaultKind::VrrpDrop, _) => net(Scenario::S2),
        (FaultKind::TermLb02, false) => {
            let Some(p) = lb02.proc.as_mut() else {
                return Err("lb02's daemon was not running".into());
            };
            let status = p.stop(Duration::from_secs(5));
            lb02.keep_log();
            lb02.proc = None;
            match status {
                Some(s) if s.success() => Ok(()),
                other => Err(format!("lb02 did not exit cleanly on SIGTERM: {other:?}")),
            }
        }
        (FaultKind::KillLb01, false) => {
            let Some(p) = lb01.proc.as_mut() else {
                return Err("lb01's daemon was not running".into());
            };
            p.kill();
            lb01.keep_log();
            lb01.proc = None;
            Ok(())
        }
        (FaultKind::TermLb02, true) => lb02.restart(lab, opts, url).map_err(|e| e.to_string()),
        (FaultKind::KillLb01, true) => lb01.restart(lab, opts, url).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn s(age: u64, rss_kib: u64, fds: u64, threads: u64) -> ResSample {
        ResSample {
            age: Duration::from_secs(age),
            rss_kib,
            fds,
            threads,
        }
    }

    #[test]
    fn two_minutes_plan_every_kind_ended_before_the_end() {
        let p = plan(Duration::from_secs(120));
        let kinds: Vec<FaultKind> = p.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![
                FaultKind::LinkFlap,
                FaultKind::VrrpDrop,
                FaultKind::TermLb02,
                FaultKind::KillLb01,
                FaultKind::LinkFlap,
                FaultKind::VrrpDrop,
                FaultKind::LinkFlap,
            ]
        );
        assert_eq!(p[1].at, Duration::from_secs(25));
        assert_eq!(p[1].heal, Duration::from_secs(33));
        assert!(p.iter().all(|f| f.heal + GRACE <= Duration::from_secs(120)));
        // Restarts come back only in cycle RESTART_EVERY_CYCLES.
        let long = plan(PERIOD * 4 * (RESTART_EVERY_CYCLES as u32 + 1) + FIRST_FAULT);
        let restarts: Vec<usize> = long
            .iter()
            .enumerate()
            .filter(|(_, f)| matches!(f.kind, FaultKind::TermLb02 | FaultKind::KillLb01))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(restarts, vec![2, 3, 42, 43]);
        assert!(plan(Duration::from_secs(20)).is_empty());
    }

    #[test]
    fn dual_owners_count_except_around_flaps_and_restarts() {
        let f = |kind, at, heal| Fault {
            kind,
            at: Duration::from_secs(at),
            heal: Duration::from_secs(heal),
        };
        let faults = [
            f(FaultKind::LinkFlap, 10, 15),
            f(FaultKind::VrrpDrop, 25, 33),
        ];
        let at = |secs: u64| Duration::from_secs(secs);
        assert!(!excused(&faults, at(5)));
        assert!(excused(&faults, at(10)));
        assert!(excused(&faults, at(24)));
        assert!(!excused(&faults, at(25)));
        assert!(!excused(&faults, at(28)), "VRRP drop is the arbiter's case");

        let t0 = Instant::now();
        let sample = |ms: u64, macs: &[&str]| OwnerSample {
            at: t0 + Duration::from_millis(ms),
            macs: macs.iter().map(|m| m.to_string()).collect::<BTreeSet<_>>(),
        };
        let samples = vec![
            sample(1_000, &["a"]),
            sample(11_000, &[]),
            sample(12_000, &["b"]),
            sample(16_000, &["a", "b"]),
            sample(17_000, &["a"]),
            sample(26_000, &["a", "b"]),
            sample(27_000, &["a"]),
            sample(200_000, &["a", "b"]),
        ];
        let c = count(&samples, t0, Duration::from_secs(120), &faults);
        assert_eq!(
            c,
            OwnerCounts {
                dual: 2,
                dual_counted: 1,
                episodes: vec![DualEpisode {
                    at: Duration::from_secs(26),
                    samples: 1,
                    in_vrrp_drop: true,
                }],
                zero: 1,
                total: 7,
                owner_changes: 2,
            }
        );
        assert_eq!(c.retracted().count(), 1);

        // Runs: consecutive dual samples make one episode; a drop episode longer
        // than the bound, or any away from a drop, is preventable.
        let run = |from: u64, n: u64, macs: &[&str]| {
            (0..n)
                .map(|k| sample(from + k * 250, macs))
                .collect::<Vec<_>>()
        };
        let mut samples = run(26_000, 4, &["a", "b"]);
        samples.extend(run(27_000, 1, &["a"]));
        samples.extend(run(28_000, 13, &["a", "b"]));
        samples.extend(run(50_000, 2, &["a", "b"]));
        let c = count(&samples, t0, Duration::from_secs(120), &faults);
        let runs: Vec<(u64, usize, bool, bool)> = c
            .episodes
            .iter()
            .map(|e| (e.at.as_secs(), e.samples, e.in_vrrp_drop, e.preventable()))
            .collect();
        assert_eq!(
            runs,
            vec![
                (26, 4, true, false),
                (28, 13, true, true),
                (50, 2, false, true)
            ]
        );
    }

    #[test]
    fn growth_is_judged_after_warm_up_over_a_long_enough_lifetime() {
        let series = |samples| Series {
            node: "lb01".into(),
            lifetime: 2,
            samples,
        };
        // Start-up growth before the warm-up is not held against it.
        let ok = check_series(
            &series(vec![
                s(2, 1000, 5, 1),
                s(10, 6000, 12, 4),
                s(50, 6400, 13, 5),
            ]),
            &BOUNDS,
        )
        .unwrap();
        assert!(ok.checked && ok.violations.is_empty(), "{ok:?}");
        assert_eq!(ok.first.rss_kib, 6000);
        let bad = check_series(
            &series(vec![s(10, 6000, 12, 4), s(60, 9000, 20, 9)]),
            &BOUNDS,
        )
        .unwrap();
        assert_eq!(bad.violations.len(), 3, "{bad:?}");
        // Large relative growth of a small RSS under 2 MiB passes; so does 2.5
        // MiB on a big one (under 20 %).
        let small = check_series(&series(vec![s(10, 4000, 1, 1), s(60, 6000, 1, 1)]), &BOUNDS);
        assert!(small.unwrap().violations.is_empty());
        let big = check_series(
            &series(vec![s(10, 40000, 1, 1), s(60, 42560, 1, 1)]),
            &BOUNDS,
        );
        assert!(big.unwrap().violations.is_empty());
        let short = check_series(
            &series(vec![s(10, 6000, 1, 1), s(20, 60000, 9, 9)]),
            &BOUNDS,
        )
        .unwrap();
        assert!(!short.checked && short.violations.is_empty());
        assert!(check_series(&series(vec![s(3, 1, 1, 1)]), &BOUNDS).is_none());
    }

    #[test]
    fn panics_are_found_in_logs() {
        let log = "INFO started\nthread 'tokio-runtime-worker' panicked at src/x.rs:1:2:\nboom\n";
        assert_eq!(
            panics_in("lb02", log),
            vec!["lb02: thread 'tokio-runtime-worker' panicked at src/x.rs:1:2:"]
        );
        assert!(panics_in("lb02", "INFO fine\n").is_empty());
    }

    fn report() -> SoakReport {
        let mut alerts = BTreeMap::new();
        alerts.insert(("claim_withheld".into(), "firing".into()), 2);
        alerts.insert(("claim_withheld".into(), "resolved".into()), 1);
        SoakReport {
            duration: Duration::from_secs(120),
            loss: LossScope::All,
            faults: plan(Duration::from_secs(120)),
            owners: OwnerCounts {
                dual: 4,
                dual_counted: 0,
                episodes: vec![],
                zero: 20,
                total: 480,
                owner_changes: 6,
            },
            alerts,
            growth: vec![Growth {
                node: "lb01".into(),
                lifetime: 1,
                first: s(10, 6144, 12, 4),
                last: s(44, 6400, 12, 4),
                checked: true,
                violations: vec![],
            }],
            panics: vec![],
            problems: vec![],
        }
    }

    #[test]
    fn a_claim_retracted_within_the_bound_passes_and_is_reported() {
        let mut r = report();
        r.owners.dual_counted = 3;
        r.owners.episodes = vec![DualEpisode {
            at: Duration::from_secs(28),
            samples: 3,
            in_vrrp_drop: true,
        }];
        assert!(r.passed(), "{:?}", r.reasons());
        let text = r.render(false);
        assert!(
            text.contains("claims retracted in VRRP drops: 1 (0.75 s dual-owner, longest 0.75 s)"),
            "{text}"
        );
    }

    #[test]
    fn the_report_names_figures_and_verdict() {
        let r = report();
        assert!(r.passed());
        let text = r.render(false);
        for want in [
            "duration: 120 s",
            "faults: 7 (lb01 link flap (down 5 s) ×3, VRRP dropped on lb02 (8 s) ×2, \
             lb02 daemon SIGTERM, restart after 2 s ×1, lb01 daemon SIGKILL, restart after 5 s ×1)",
            "dual-owner: 1.00 s in all, 0.00 s counted",
            "claims retracted in VRRP drops: none",
            "zero-owner: 5.00 s",
            "alerts at gw: claim_withheld ×2, resolved claim_withheld ×1",
            "lb01 #1: RSS 6.0 → 6.2 MiB, fds 12 → 12, threads 4 → 4, over 34 s: ok",
            "panics: none",
            "verdict: PASS",
        ] {
            assert!(text.contains(want), "no {want:?} in:\n{text}");
        }
        let md = r.render(true);
        assert!(
            md.contains("| lb01 #1 | 6.0 → 6.2 | 12 → 12 | 4 → 4 | 34 | ok |"),
            "{md}"
        );
        assert!(md.contains("**verdict: PASS**"), "{md}");

        let mut bad = report();
        bad.owners.dual_counted = 15;
        bad.owners.episodes = vec![
            DualEpisode {
                at: Duration::from_millis(27_250),
                samples: 2,
                in_vrrp_drop: false,
            },
            DualEpisode {
                at: Duration::from_millis(40_000),
                samples: 13,
                in_vrrp_drop: true,
            },
        ];
        bad.panics.push("lb02: thread 'main' panicked at x".into());
        bad.growth[0]
            .violations
            .push("open fds grew by 9, bound 4".into());
        assert!(!bad.passed());
        let text = bad.render(false);
        assert!(text.contains("verdict: FAIL"), "{text}");
        assert!(
            text.contains(
                "3.75 dual-owner seconds the arbiter could have prevented (+27.25 s for 0.50 s, \
                 +40.00 s for 3.25 s in a VRRP drop)"
            ),
            "{text}"
        );
        assert!(
            text.contains("panic: lb02: thread 'main' panicked at x"),
            "{text}"
        );
        assert!(
            text.contains("lb01 (lifetime 1): open fds grew by 9, bound 4"),
            "{text}"
        );
    }

    #[test]
    fn the_loss_rules_cover_the_scope() {
        let all = LossScope::All.ruleset("p-lb02");
        assert!(all.contains("numgen random mod 100 < 30 drop"), "{all}");
        assert!(!all.contains("p-lb02"), "{all}");
        let lb02 = LossScope::Lb02.ruleset("p-lb02");
        assert!(lb02.contains("iifname \"p-lb02\" numgen random mod 100 < 30 drop"));
        assert!(lb02.contains("oifname \"p-lb02\" numgen random mod 100 < 30 drop"));
    }

    #[test]
    fn this_process_can_be_sampled() {
        let me = sample_process(std::process::id(), Duration::ZERO).unwrap();
        assert!(me.rss_kib > 0 && me.fds > 0 && me.threads > 0, "{me:?}");
    }
}
