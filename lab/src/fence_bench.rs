//! `splitguard lab fence`: issue 21's fencing measurement. Owns the runs of
//! "two blind claimants" with fencing (each in a fresh fencing lab), the
//! seeded start plan that varies them, what each run measured, the summary
//! against the goal and its rendering; and keepalived's comparison
//! run, which cannot fence.
//!
//! The issue's goal: "in the 'two blind claimants' case, gw sees one owner
//! within `fence_after` + the agent's time + 1 s, with 0 double fencing in 20
//! seeded runs".
//!
//! Each run: [`configs::fence_lab`], `ipmi_sim` BMCs for both nodes (bmc1
//! powers lb01, bmc2 lb02), VRRP dropped on both hosts' input, splitguard on
//! lb01 (priority 150) and lb02 (100), the arbiter off (gw its reference, so
//! a node knows it is not isolated), each with a `[[fence]]` for the other
//! (`fence_after` 2 s, agent timeout 5 s). Both claim; the better node by
//! VRRP's order (lb01) should power lb02 off. The seed varies what a real
//! site varies: which daemon starts first and the offset to the second
//! (0-3 s), from a small deterministic generator (splitmix64 of seed + run),
//! so a run can be replayed with the same `--seed`.
//!
//! Measured per run, against the first daemon's start:
//! - gw's view (an ARP who-has every 100 ms, [`GwObserver`]): the first
//!   request answered by both nodes ("two owners"), and the first request
//!   answered by exactly one node after the last one answered by both ("one
//!   owner"): the dual ownership's length includes any flicker.
//! - the fencing node's event stream: `fence` events `fencing` (the agent
//!   started) and `fenced` (status confirmed off); their difference is the
//!   agent's time. The BMC's power log gives the moment the power went off.
//! - which BMC powered its host off: bmc2 means lb01 fenced lb02; both is a
//!   double fencing, the failure fencing must never have.
//!
//! A run ends [`HOLD`] after the fence showed (a BMC powered off and gw sees
//! one owner), or at [`RUN_BOUND`]; its lab is torn down on drop, also on a
//! panic or an error.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::bmc::{BMC_PASSWORD, IpmiBmc};
use super::configs::{self, VIP_ADDR};
use super::gw::{GwObserver, GwOptions, OwnerSample};
use super::netns::Lab;
use super::pair::{HOOK_PORT, RunError, pause};
use super::process::LabProcess;
use super::scenario::VRRP_DROP;
use super::witness_matrix::min_median_max;

/// Runs by default: the 20.
pub const DEFAULT_RUNS: u32 = 20;
/// The seed by default.
pub const DEFAULT_SEED: u64 = 1;
/// Most runs one command makes (every loop is bounded).
pub const MAX_RUNS: u32 = 1000;
/// The `[[fence]]`'s `fence_after`, as the config writes it and as a time.
pub const FENCE_AFTER: &str = "2s";
pub const FENCE_AFTER_TIME: Duration = Duration::from_secs(2);
/// The agent's `timeout` in the `[[fence]]` table.
pub const AGENT_TIMEOUT: &str = "5s";
/// The margin over `fence_after` + the agent's time.
pub const MARGIN: Duration = Duration::from_secs(1);
/// The largest start offset between the two daemons, in ms.
pub const MAX_OFFSET_MS: u64 = 3000;
/// How long one run may last from the first daemon's start: Master_Down
/// (about 3.6 s), the offset (3 s), detection, `fence_after`, the worse
/// node's wait if the better one failed (2 s + 2 x 5 s + 5 s) and the
/// agent's calls fit well within it.
pub const RUN_BOUND: Duration = Duration::from_secs(60);
/// How long a run goes on watching after the fence showed: a second fence
/// or a second owner would show here.
pub const HOLD: Duration = Duration::from_secs(3);
/// gw's request interval.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// keepalived's comparison: the window watched after both claimed, and the
/// longest wait for both to claim.
pub const KEEPALIVED_WINDOW: Duration = Duration::from_secs(15);
const KEEPALIVED_CLAIM_BOUND: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
/// Log lines a failed run's error carries per process.
const TAIL: usize = 15;

/// One node of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Lb01,
    Lb02,
}

impl Node {
    pub fn name(self) -> &'static str {
        match self {
            Node::Lb01 => "lb01",
            Node::Lb02 => "lb02",
        }
    }

    pub fn other(self) -> Node {
        match self {
            Node::Lb01 => Node::Lb02,
            Node::Lb02 => Node::Lb01,
        }
    }

    /// VRRP priority in the lab: lb01 is the better node.
    pub fn priority(self) -> u8 {
        match self {
            Node::Lb01 => 150,
            Node::Lb02 => 100,
        }
    }
}

/// How one run starts its daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartPlan {
    pub first: Node,
    /// From the first daemon's start to the second's.
    pub offset: Duration,
}

impl StartPlan {
    /// Run `run`'s plan under `seed`: deterministic, so a seed replays.
    pub fn for_run(seed: u64, run: u32) -> StartPlan {
        let r = splitmix64(seed.wrapping_add(u64::from(run)));
        StartPlan {
            first: if r & 1 == 0 { Node::Lb01 } else { Node::Lb02 },
            offset: Duration::from_millis((r >> 1) % (MAX_OFFSET_MS + 1)),
        }
    }

    /// "lb02, lb01 +1.73 s".
    pub fn describe(&self) -> String {
        format!(
            "{}, {} +{:.2} s",
            self.first.name(),
            self.first.other().name(),
            self.offset.as_secs_f64()
        )
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): a tiny, well-mixed generator; one
/// output per (seed + run) is all a plan needs, and it keeps the lab free of
/// a random-number crate.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What `lab fence` does.
#[derive(Debug, Clone)]
pub struct FenceOptions {
    pub runs: u32,
    pub seed: u64,
    /// Also run keepalived's comparison.
    pub keepalived: bool,
    /// The splitguard binary the nodes run (normally this very binary).
    pub splitguard: PathBuf,
}

/// What one run measured; times are since the first daemon's start.
#[derive(Debug, Clone, PartialEq)]
pub struct FenceRun {
    pub plan: StartPlan,
    /// gw's first request answered by both nodes.
    pub two_owners_at: Option<Duration>,
    /// gw's first request answered by one node after the last answered by
    /// both.
    pub one_owner_at: Option<Duration>,
    /// Who answered gw last (None: nobody).
    pub final_owner: Option<Node>,
    /// The nodes whose BMC powered them off.
    pub powered_off: Vec<Node>,
    /// The fencing node's `fencing` and `fenced` events.
    pub fencing_at: Option<Duration>,
    pub fenced_at: Option<Duration>,
    /// The first power-off in the BMCs' logs.
    pub off_at: Option<Duration>,
    /// The daemons' and BMCs' log tails of a run that failed (empty
    /// otherwise), for whoever reads the report.
    pub logs: String,
}

impl FenceRun {
    /// Who fenced: the node whose peer was powered off (one of them).
    pub fn fencer(&self) -> Option<Node> {
        match self.powered_off.as_slice() {
            [one] => Some(one.other()),
            _ => None,
        }
    }

    /// Both powered off: the failure fencing must never have.
    pub fn double_fenced(&self) -> bool {
        self.powered_off.len() >= 2
    }

    /// gw saw two owners and then one again.
    pub fn resolved(&self) -> bool {
        self.two_owners_at.is_some() && self.one_owner_at.is_some()
    }

    /// How long gw saw two owners (first two-owner request to one owner).
    pub fn dual(&self) -> Option<Duration> {
        Some(self.one_owner_at?.saturating_sub(self.two_owners_at?))
    }

    /// The agent's time: `fencing` to `fenced` (off, then status).
    pub fn agent(&self) -> Option<Duration> {
        Some(self.fenced_at?.saturating_sub(self.fencing_at?))
    }

    /// The bound: `fence_after` + the agent's time + 1 s.
    pub fn bound(&self) -> Option<Duration> {
        Some(FENCE_AFTER_TIME + self.agent()? + MARGIN)
    }

    /// Whether gw saw one owner within the bound.
    pub fn met(&self) -> bool {
        matches!((self.dual(), self.bound()), (Some(d), Some(b)) if d <= b)
    }

    /// A run the command fails on: double fencing, or never resolved.
    pub fn failed(&self) -> bool {
        self.double_fenced() || !self.resolved()
    }
}

/// keepalived's comparison run: the same start, no fencing.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepalivedRun {
    pub plan: StartPlan,
    pub two_owners_at: Option<Duration>,
    /// Two-owner requests and all requests in the window after both claimed.
    pub dual_samples: usize,
    pub samples: usize,
    pub window: Duration,
}

impl KeepalivedRun {
    /// Two-owner time in the window: its share of the window's requests
    /// (one per [`SAMPLE_EVERY`], give or take one at the window's edges).
    pub fn dual(&self) -> Duration {
        if self.samples == 0 {
            return Duration::ZERO;
        }
        self.window
            .mul_f64(self.dual_samples.min(self.samples) as f64 / self.samples as f64)
    }
}

/// The command's results.
#[derive(Debug)]
pub struct FenceReport {
    pub seed: u64,
    pub runs: Vec<Result<FenceRun, String>>,
    pub keepalived: Option<Result<KeepalivedRun, String>>,
    pub elapsed: Duration,
}

impl FenceReport {
    /// Whether the command fails: a run gave no figures, double-fenced or
    /// never resolved (keepalived's row is a comparison, never a failure
    /// unless it could not run).
    pub fn any_failed(&self) -> bool {
        self.runs
            .iter()
            .any(|r| r.as_ref().map_or(true, FenceRun::failed))
            || matches!(self.keepalived, Some(Err(_)))
    }

    fn measured(&self) -> impl Iterator<Item = &FenceRun> {
        self.runs.iter().filter_map(|r| r.as_ref().ok())
    }
}

/// `lab fence` fails the way `lab scenario` does (root, a missing program,
/// an interruption).
pub use super::scenario::ScenarioError as FenceError;

/// Root and the programs the runs drive.
pub fn check_prerequisites(keepalived: bool) -> Result<(), FenceError> {
    super::scenario::check_prerequisites(keepalived)?;
    super::scenario::require_programs(&[
        ("fence_ipmilan", "fence-agents", "--version"),
        ("ipmitool", "ipmitool", "-V"),
        ("ipmi_sim", "openipmi", "--version"),
    ])
}

/// Every run, then keepalived's; `progress` gets a line per step.
pub fn run(opts: &FenceOptions, progress: &mut dyn FnMut(&str)) -> Result<FenceReport, FenceError> {
    check_prerequisites(opts.keepalived)?;
    let started = Instant::now();
    let mut runs = Vec::new();
    for i in 0..opts.runs.min(MAX_RUNS) {
        let plan = StartPlan::for_run(opts.seed, i);
        progress(&format!(
            "run {}/{}: start {}, then {} +{:.2} s ({:.0} s in)",
            i + 1,
            opts.runs,
            plan.first.name(),
            plan.first.other().name(),
            plan.offset.as_secs_f64(),
            started.elapsed().as_secs_f64()
        ));
        let outcome = run_one(opts, i, plan);
        if matches!(&outcome, Err(e) if e.is_interrupted()) {
            return Err(FenceError::Interrupted);
        }
        match &outcome {
            Ok(r) => progress(&format!("  {}", summary(r))),
            Err(e) => progress(&format!("  FAILED: {e}")),
        }
        runs.push(outcome.map_err(|e| e.to_string()));
    }
    let keepalived = if opts.keepalived {
        let plan = StartPlan::for_run(opts.seed, 0);
        progress(&format!(
            "keepalived 2.2.7: start {}, then {} +{:.2} s ({:.0} s in)",
            plan.first.name(),
            plan.first.other().name(),
            plan.offset.as_secs_f64(),
            started.elapsed().as_secs_f64()
        ));
        let outcome = run_keepalived(plan);
        if matches!(&outcome, Err(e) if e.is_interrupted()) {
            return Err(FenceError::Interrupted);
        }
        match &outcome {
            Ok(k) => progress(&format!(
                "  two owners for {:.1} s of the {} s window",
                k.dual().as_secs_f64(),
                k.window.as_secs()
            )),
            Err(e) => progress(&format!("  FAILED: {e}")),
        }
        Some(outcome.map_err(|e| e.to_string()))
    } else {
        None
    };
    Ok(FenceReport {
        seed: opts.seed,
        runs,
        keepalived,
        elapsed: started.elapsed(),
    })
}

/// One line on a run, for progress.
fn summary(r: &FenceRun) -> String {
    format!(
        "two owners at {}, one owner at {} ({}), fenced by {}, agent {}{}",
        secs_or(r.two_owners_at, "never"),
        secs_or(r.one_owner_at, "never"),
        secs_or(r.dual(), "—"),
        fencer_label(r),
        secs_or(r.agent(), "—"),
        if r.double_fenced() {
            "; DOUBLE FENCING"
        } else {
            ""
        }
    )
}

fn fencer_label(r: &FenceRun) -> String {
    if r.double_fenced() {
        "both".into()
    } else {
        r.fencer().map_or("nobody".into(), |n| n.name().to_string())
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn secs_or(d: Option<Duration>, none: &str) -> String {
    d.map_or(none.to_string(), secs)
}

fn broken(what: &str) -> impl Fn(super::bmc::BmcError) -> RunError + '_ {
    move |e| RunError::Broken(format!("{what}: {e}"))
}

/// `node`'s config: the arbiter off with gw as its reference (probed even
/// so: a node that cannot reach it is isolated and fences nobody), the
/// events file in the lab directory, a `[[fence]]` for the other node.
pub fn node_config(lab: &Lab, node: Node) -> String {
    let fence = configs::fence_ipmi_table(
        node.name(),
        BMC_PASSWORD,
        &format!("fence_after = \"{FENCE_AFTER}\"\ntimeout = \"{AGENT_TIMEOUT}\"\n"),
    );
    let extra = format!("\n[arbiter]\nenabled = false\nreferences = [\"192.0.2.254\"]\n{fence}");
    let c = configs::sg_config(lab, node.name(), node.priority(), 2, "1s", &extra);
    // events_file is a top-level key: it goes before the first table.
    c.replacen(
        "\n\n[[instance]]",
        &format!(
            "\nevents_file = \"{}\"\n\n[[instance]]",
            events_path(lab, node).display()
        ),
        1,
    )
}

fn events_path(lab: &Lab, node: Node) -> PathBuf {
    lab.dir().join(format!("{}-events.jsonl", node.name()))
}

/// The `at_ms` of `node`'s first `fence` event with `outcome`.
fn fence_event_ms(path: &Path, outcome: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "fence" && e["outcome"] == outcome)
        .and_then(|e| e["at_ms"].as_u64())
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A wall-clock time in ms as time since `t0_ms` (the daemons stamp their
/// events with the wall clock; the same machine's, so no skew).
fn since_ms(at_ms: u64, t0_ms: u64) -> Duration {
    Duration::from_millis(at_ms.saturating_sub(t0_ms))
}

/// What gw's samples say, as times since `t0`: the first two-owner request,
/// the first one-owner request after the last two-owner one, and who
/// answered last.
pub fn owner_times(
    samples: &[OwnerSample],
    t0: Instant,
    node_of: &BTreeMap<String, Node>,
) -> (Option<Duration>, Option<Duration>, Option<Node>) {
    let since = |s: &OwnerSample| s.at.saturating_duration_since(t0);
    let first_dual = samples.iter().find(|s| s.macs.len() >= 2).map(since);
    let last_dual = samples.iter().rposition(|s| s.macs.len() >= 2);
    let one = last_dual.and_then(|i| {
        samples[i + 1..]
            .iter()
            .find(|s| s.macs.len() == 1)
            .map(since)
    });
    let final_owner = samples
        .iter()
        .rev()
        .find(|s| !s.macs.is_empty())
        .filter(|s| s.macs.len() == 1)
        .and_then(|s| s.macs.iter().next())
        .and_then(|m| node_of.get(m).copied());
    (first_dual, one, final_owner)
}

/// The MACs of lb01 and lb02 in `lab`.
fn node_macs(lab: &Lab) -> Result<BTreeMap<String, Node>, RunError> {
    let mut m = BTreeMap::new();
    for n in [Node::Lb01, Node::Lb02] {
        m.insert(lab.mac_of(n.name())?, n);
    }
    Ok(m)
}

fn start_gw(lab: &Lab, limit: Duration) -> Result<GwObserver, RunError> {
    Ok(GwObserver::start(
        lab,
        "gw",
        GwOptions {
            vip: IpAddr::V4(VIP_ADDR),
            port: HOOK_PORT,
            every: SAMPLE_EVERY,
            limit,
        },
    )?)
}

/// Starts both daemons by `plan`; `start` starts one. Returns them in
/// (first, second) order.
fn start_pair(
    plan: StartPlan,
    mut start: impl FnMut(Node) -> Result<LabProcess, RunError>,
) -> Result<(LabProcess, LabProcess), RunError> {
    let first = start(plan.first)?;
    pause(plan.offset)?;
    let second = start(plan.first.other())?;
    Ok((first, second))
}

fn tails(procs: &[&LabProcess], bmcs: &[&IpmiBmc<'_>]) -> String {
    let mut s: String = procs.iter().map(|p| p.log_tail(TAIL)).collect();
    for b in bmcs {
        s.push_str(&b.log_tail(5));
    }
    s
}

/// One seeded run of two blind claimants with fencing, in its own lab.
fn run_one(opts: &FenceOptions, index: u32, plan: StartPlan) -> Result<FenceRun, RunError> {
    // The lab id adds this process's id and a counter: unique per run.
    let lab = configs::fence_lab(&format!("fb{index}"))?;
    let bmc1 = IpmiBmc::start(&lab, "bmc1", "lb01").map_err(broken("bmc1"))?;
    let bmc2 = IpmiBmc::start(&lab, "bmc2", "lb02").map_err(broken("bmc2"))?;
    // Both drop VRRP on input (their capture still sees the adverts, so each
    // knows the other's priority): two blind claimants.
    for n in [Node::Lb01, Node::Lb02] {
        lab.nft(Some(n.name()), VRRP_DROP)?;
    }
    let node_of = node_macs(&lab)?;
    let gw = start_gw(&lab, RUN_BOUND + Duration::from_secs(10))?;
    let config = |n: Node| node_config(&lab, n);
    let t0 = Instant::now();
    let t0_ms = unix_ms(SystemTime::now());
    let (a, b) = start_pair(plan, |n| {
        Ok(configs::start_splitguard(
            &lab,
            n.name(),
            &opts.splitguard,
            &config(n),
        )?)
    })?;
    let deadline = t0 + RUN_BOUND;
    let mut showed: Option<Instant> = None;
    // Bounded by RUN_BOUND; pause() ends it on an interrupt.
    loop {
        let now = Instant::now();
        if now >= deadline || showed.is_some_and(|s| now >= s + HOLD) {
            break;
        }
        if showed.is_none() {
            let off = bmc1.power_offs() + bmc2.power_offs() > 0;
            let one = gw
                .latest_since(now - SAMPLE_EVERY * 3)
                .is_some_and(|s| s.macs.len() == 1);
            let dual_seen = gw.samples().iter().any(|s| s.macs.len() >= 2);
            if off && one && dual_seen {
                showed = Some(now);
            }
        }
        pause(POLL)?;
    }
    if let Some(e) = gw.error() {
        return Err(RunError::Broken(format!(
            "gw's observer stopped: {e}{}",
            tails(&[&a, &b], &[&bmc1, &bmc2])
        )));
    }
    let (two_owners_at, one_owner_at, final_owner) = owner_times(&gw.samples(), t0, &node_of);
    let mut powered_off = Vec::new();
    for (n, bmc) in [(Node::Lb01, &bmc1), (Node::Lb02, &bmc2)] {
        if bmc.power_offs() > 0 {
            powered_off.push(n);
        }
    }
    let off_at = [&bmc1, &bmc2]
        .iter()
        .flat_map(|b| b.power_log())
        .filter(|c| c.call == "set power 0")
        .map(|c| c.at)
        .reduce(f64::min)
        .map(|at| since_ms((at * 1000.0) as u64, t0_ms));
    // The fencer's events (with a double fence, the first node's).
    let fencer = powered_off.first().map(|n| n.other());
    let (fencing_at, fenced_at) = match fencer {
        Some(f) => {
            let path = events_path(&lab, f);
            (
                fence_event_ms(&path, "fencing").map(|ms| since_ms(ms, t0_ms)),
                fence_event_ms(&path, "fenced").map(|ms| since_ms(ms, t0_ms)),
            )
        }
        None => (None, None),
    };
    let mut run = FenceRun {
        plan,
        two_owners_at,
        one_owner_at,
        final_owner,
        powered_off,
        fencing_at,
        fenced_at,
        off_at,
        logs: String::new(),
    };
    // A run that failed keeps its figures (a double fencing is counted as
    // one) and carries the logs.
    if run.failed() {
        run.logs = tails(&[&a, &b], &[&bmc1, &bmc2]);
    }
    Ok(run)
}

/// keepalived 2.2.7 on both nodes, the same start and VRRP drop: nothing
/// ends the dual ownership; counts it over [`KEEPALIVED_WINDOW`] after both
/// claimed.
fn run_keepalived(plan: StartPlan) -> Result<KeepalivedRun, RunError> {
    let lab = configs::fence_lab("fbka")?;
    for n in [Node::Lb01, Node::Lb02] {
        lab.nft(Some(n.name()), VRRP_DROP)?;
    }
    let gw = start_gw(
        &lab,
        KEEPALIVED_CLAIM_BOUND + KEEPALIVED_WINDOW + Duration::from_secs(10),
    )?;
    let t0 = Instant::now();
    let (a, b) = start_pair(plan, |n| {
        Ok(configs::start_keepalived(
            &lab,
            n.name(),
            &configs::ka_config(n.name(), n.priority(), 2, "1"),
        )?)
    })?;
    let claim_deadline = t0 + KEEPALIVED_CLAIM_BOUND;
    // Bounded by KEEPALIVED_CLAIM_BOUND.
    let first_dual = loop {
        if let Some(s) = gw.samples().into_iter().find(|s| s.macs.len() >= 2) {
            break s.at;
        }
        if Instant::now() >= claim_deadline {
            return Err(RunError::Broken(format!(
                "gw never saw both keepalived nodes claim within {KEEPALIVED_CLAIM_BOUND:?}{}",
                tails(&[&a, &b], &[])
            )));
        }
        pause(POLL)?;
    };
    let end = first_dual + KEEPALIVED_WINDOW;
    pause(end.saturating_duration_since(Instant::now()) + SAMPLE_EVERY)?;
    let window: Vec<OwnerSample> = gw
        .samples()
        .into_iter()
        .filter(|s| s.at >= first_dual && s.at < end)
        .collect();
    Ok(KeepalivedRun {
        plan,
        two_owners_at: Some(first_dual.saturating_duration_since(t0)),
        dual_samples: window.iter().filter(|s| s.macs.len() >= 2).count(),
        samples: window.len(),
        window: KEEPALIVED_WINDOW,
    })
}

// ------------------------------------------------------------------ rendering

/// A table as Markdown or as aligned text.
struct Table {
    header: Vec<&'static str>,
    /// Right-aligned columns (numbers).
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn render(&self, markdown: bool) -> String {
        let mut out = String::new();
        if markdown {
            let _ = writeln!(out, "| {} |", self.header.join(" | "));
            let rule: Vec<&str> = self
                .right
                .iter()
                .map(|r| if *r { "--:" } else { "---" })
                .collect();
            let _ = writeln!(out, "|{}|", rule.join("|"));
            for row in &self.rows {
                let _ = writeln!(out, "| {} |", row.join(" | "));
            }
            return out;
        }
        let width: Vec<usize> = (0..self.header.len())
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .chain([self.header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let w = width.get(i).copied().unwrap_or(0);
                    if self.right.get(i).copied().unwrap_or(false) {
                        format!("{c:>w$}")
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect();
            padded.join("  ").trim_end().to_string()
        };
        let _ = writeln!(out, "{}", line(self.header.clone()));
        for row in &self.rows {
            let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
        }
        out
    }
}

/// The per-run table, then the summary against the goal and
/// keepalived's comparison.
pub fn render(report: &FenceReport, markdown: bool) -> String {
    let mut table = Table {
        header: vec![
            "run",
            "start (first, second +offset)",
            "two owners",
            "fencing",
            "power off",
            "one owner",
            "two-owner time",
            "fenced by",
            "agent",
            "bound",
            "within",
        ],
        right: vec![
            true, false, true, true, true, true, true, false, true, true, false,
        ],
        rows: Vec::new(),
    };
    for (i, r) in report.runs.iter().enumerate() {
        let plan = StartPlan::for_run(report.seed, u32::try_from(i).unwrap_or(u32::MAX));
        let mut row = vec![(i + 1).to_string(), plan.describe()];
        match r {
            Ok(r) => row.extend([
                secs_or(r.two_owners_at, "never"),
                secs_or(r.fencing_at, "—"),
                secs_or(r.off_at, "—"),
                secs_or(r.one_owner_at, "never"),
                secs_or(r.dual(), "—"),
                fencer_label(r),
                secs_or(r.agent(), "—"),
                secs_or(r.bound(), "—"),
                if r.met() { "yes" } else { "NO" }.to_string(),
            ]),
            Err(e) => {
                // The first line only: the logs follow under the summary.
                let first = e.lines().next().unwrap_or("").replace('|', "/");
                row.push(format!("FAILED: {first}"));
                row.extend(std::iter::repeat_n(String::new(), 8));
            }
        }
        table.rows.push(row);
    }
    let mut out = table.render(markdown);
    let _ = writeln!(out);
    let measured: Vec<&FenceRun> = report.measured().collect();
    let n = report.runs.len();
    let failed_runs = n - measured.len();
    let doubles = measured.iter().filter(|r| r.double_fenced()).count();
    let unresolved = measured.iter().filter(|r| !r.resolved()).count();
    let better = measured
        .iter()
        .filter(|r| r.fencer() == Some(Node::Lb01))
        .count();
    let met = measured.iter().filter(|r| r.met()).count();
    let duals: Vec<Duration> = measured.iter().filter_map(|r| r.dual()).collect();
    let agents: Vec<Duration> = measured.iter().filter_map(|r| r.agent()).collect();
    let mmm = |v: &[Duration]| {
        min_median_max(v).map_or("—".to_string(), |(a, m, b)| {
            format!("{} / {} / {}", secs(a), secs(m), secs(b))
        })
    };
    let bullet = if markdown { "- " } else { "" };
    let lines = [
        format!(
            "runs: {n} (seed {}), {} measured, {failed_runs} without figures",
            report.seed,
            measured.len()
        ),
        format!("double fencings: {doubles} (must be 0)"),
        format!("runs never back to one owner: {unresolved}"),
        format!(
            "the better node (lb01, priority 150) fenced: {better} of {} runs{}",
            measured.len(),
            if better == measured.len() && !measured.is_empty() {
                ", every time"
            } else {
                ""
            }
        ),
        format!(
            "two owners to one owner at gw, min / median / max: {}",
            mmm(&duals)
        ),
        format!(
            "the agent's time (fencing to fenced), min / median / max: {}",
            mmm(&agents)
        ),
        format!(
            "within fence_after ({FENCE_AFTER}) + the agent's time + {} s: {met} of {n} runs",
            MARGIN.as_secs()
        ),
    ];
    for l in lines {
        let _ = writeln!(out, "{bullet}{l}");
    }
    if let Some(k) = &report.keepalived {
        let line = match k {
            Ok(k) => format!(
                "keepalived 2.2.7, the same start ({}), cannot fence: two owners for {:.1} s \
                 of the {} s window after both claimed ({} of {} requests)",
                k.plan.describe(),
                k.dual().as_secs_f64(),
                k.window.as_secs(),
                k.dual_samples,
                k.samples
            ),
            Err(e) => format!(
                "keepalived 2.2.7: FAILED: {}",
                e.lines().next().unwrap_or("")
            ),
        };
        let _ = writeln!(out, "{bullet}{line}");
    }
    let _ = writeln!(
        out,
        "{bullet}wall time: {:.0} s; times are since the first daemon's start; gw asks who has \
         the VIP every {} ms",
        report.elapsed.as_secs_f64(),
        SAMPLE_EVERY.as_millis()
    );
    let logs: Vec<(usize, String)> = report
        .runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Err(e) => Some((i + 1, e.clone())),
            Ok(r) if r.failed() => Some((i + 1, format!("{}{}", summary(r), r.logs))),
            Ok(_) => None,
        })
        .collect();
    if !logs.is_empty() {
        let _ = writeln!(out, "\nfailed runs:");
        for (i, e) in logs {
            let _ = writeln!(out, "run {i}: {e}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn plans_are_deterministic_and_cover_both_orders_and_the_offsets() {
        let a: Vec<StartPlan> = (0..20).map(|i| StartPlan::for_run(1, i)).collect();
        let b: Vec<StartPlan> = (0..20).map(|i| StartPlan::for_run(1, i)).collect();
        assert_eq!(a, b);
        assert!(a.iter().any(|p| p.first == Node::Lb01));
        assert!(a.iter().any(|p| p.first == Node::Lb02));
        assert!(
            a.iter()
                .all(|p| p.offset <= Duration::from_millis(MAX_OFFSET_MS))
        );
        let distinct: BTreeSet<Duration> = a.iter().map(|p| p.offset).collect();
        assert!(distinct.len() > 10, "{a:?}");
        assert_ne!(StartPlan::for_run(2, 0), StartPlan::for_run(3, 0));
    }

    fn sample(t0: Instant, ms: u64, macs: &[&str]) -> OwnerSample {
        OwnerSample {
            at: t0 + Duration::from_millis(ms),
            macs: macs.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn owner_times_take_the_first_dual_and_one_owner_after_the_last_dual() {
        let t0 = Instant::now();
        let node_of: BTreeMap<String, Node> =
            [("a".to_string(), Node::Lb01), ("b".to_string(), Node::Lb02)].into();
        let s = vec![
            sample(t0, 0, &[]),
            sample(t0, 100, &["a"]),
            sample(t0, 200, &["a", "b"]),
            sample(t0, 300, &["a"]), // a flicker: one lost answer
            sample(t0, 400, &["a", "b"]),
            sample(t0, 500, &["a"]),
            sample(t0, 600, &["a"]),
        ];
        let (two, one, last) = owner_times(&s, t0, &node_of);
        assert_eq!(two, Some(Duration::from_millis(200)));
        assert_eq!(one, Some(Duration::from_millis(500)));
        assert_eq!(last, Some(Node::Lb01));
        let (two, one, _) = owner_times(&s[..2], t0, &node_of);
        assert_eq!((two, one), (None, None));
    }

    fn run(dual_ms: u64, agent_ms: u64, off: &[Node]) -> FenceRun {
        FenceRun {
            plan: StartPlan::for_run(1, 0),
            two_owners_at: Some(Duration::from_secs(4)),
            one_owner_at: Some(Duration::from_secs(4) + Duration::from_millis(dual_ms)),
            final_owner: Some(Node::Lb01),
            powered_off: off.to_vec(),
            fencing_at: Some(Duration::from_secs(6)),
            fenced_at: Some(Duration::from_secs(6) + Duration::from_millis(agent_ms)),
            off_at: Some(Duration::from_secs(6)),
            logs: String::new(),
        }
    }

    #[test]
    fn a_run_meets_the_bound_fails_on_a_double_fence_and_names_the_fencer() {
        let ok = run(3000, 300, &[Node::Lb02]);
        assert_eq!(ok.fencer(), Some(Node::Lb01));
        assert_eq!(ok.bound(), Some(Duration::from_millis(3300)));
        assert!(ok.met() && !ok.failed());
        let slow = run(3400, 300, &[Node::Lb02]);
        assert!(
            !slow.met() && !slow.failed(),
            "slow is reported, not failed"
        );
        let double = run(3000, 300, &[Node::Lb01, Node::Lb02]);
        assert!(double.double_fenced() && double.failed());
        assert_eq!(double.fencer(), None);
        let mut never = run(3000, 300, &[]);
        never.one_owner_at = None;
        assert!(never.failed() && !never.met());
    }

    #[test]
    fn the_report_renders_a_row_per_run_and_the_summary() {
        let report = FenceReport {
            seed: 1,
            runs: vec![
                Ok(run(3000, 300, &[Node::Lb02])),
                Err("lab: boom\nlogs".into()),
            ],
            keepalived: Some(Ok(KeepalivedRun {
                plan: StartPlan::for_run(1, 0),
                two_owners_at: Some(Duration::from_secs(4)),
                dual_samples: 150,
                samples: 150,
                window: KEEPALIVED_WINDOW,
            })),
            elapsed: Duration::from_secs(30),
        };
        assert!(report.any_failed());
        let md = render(&report, true);
        assert!(md.starts_with("| run | start"), "{md}");
        assert!(md.contains("| 1 | "), "{md}");
        assert!(
            md.contains("| 2 | ") && md.contains("FAILED: lab: boom"),
            "{md}"
        );
        assert!(md.contains("- double fencings: 0 (must be 0)"), "{md}");
        assert!(md.contains("fenced: 1 of 1 runs, every time"), "{md}");
        assert!(
            md.contains("two owners for 15.0 s of the 15 s window"),
            "{md}"
        );
        let mut double = run(3000, 300, &[Node::Lb01, Node::Lb02]);
        double.logs = "\n  --- splitguard-lb02 (last lines) ---".into();
        let doubled = FenceReport {
            seed: 1,
            runs: vec![Ok(double)],
            keepalived: None,
            elapsed: Duration::from_secs(10),
        };
        assert!(doubled.any_failed());
        let md2 = render(&doubled, true);
        assert!(md2.contains("- double fencings: 1 (must be 0)"), "{md2}");
        assert!(md2.contains("| both |"), "{md2}");
        assert!(
            md2.contains("run 1: ")
                && md2.contains("DOUBLE FENCING")
                && md2.contains("splitguard-lb02"),
            "{md2}"
        );
        let text = render(&report, false);
        assert!(text.starts_with("run  start"), "{text}");
        assert!(text.contains("within fence_after (2s) + the agent's time + 1 s: 1 of 2 runs"));
    }
}
