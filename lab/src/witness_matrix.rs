//! `splitguard lab witness`: issue 20's partition matrix, each case run the
//! same way for three implementations, one fresh lab each with its own
//! three-member etcd cluster: splitguard with the witness (ownership probing
//! off, so the witness alone referees), splitguard with the witness off and
//! ownership probing off (the arbiter still on, gw or the node's router as its
//! reference), and keepalived. The runs without a witness do not use etcd but
//! get the same faults (etcd cut off, stopped, its leader killed), so the
//! rows compare.
//!
//! What is counted over each window (20 s; `--quick`: 8 s):
//! - gw's view (the six rows on one data segment): an ARP who-has for the VIP
//!   every 250 ms from gw ([`GwObserver`]); a request answered by two MACs is
//!   a dual-owner sample, one answered by none a no-owner sample.
//! - the nodes' view (every row; the only one in the routed row, where a
//!   neighbour on one segment cannot see the other's claim): whether lb01 and
//!   lb02 have the VIP on eth0, read every 250 ms in each node by a netlink
//!   address dump (what `ip -4 addr show dev eth0` prints), the two reads of
//!   a sample lined up on the same tick; both holding is a dual-owner sample.
//! - owner changes: gw's (its answering set changed), the nodes' in the
//!   routed row.
//! - in "the master cut off", the takeover: from the cut to lb02's address
//!   event (netlink, subscribed before the cut), and lb01's release (the first
//!   node sample after the cut without it).
//! - splitguard's incidents (its events file: kind, node, time after the
//!   fault) and the witness's refusals (`claim_withheld` naming the key's
//!   holder).
//!
//! Then the failover time with the witness: `runs` more runs of "the master
//! cut off" (nodes sampled every 50 ms there), min / median / max.
//!
//! Runs go one after another: on a small machine three labs with three etcd
//! members each would share the cores with the daemons under test, and a
//! starved lease renewal would be measured instead of the witness.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::configs::{self, GW_ADDR, ROUTED_VIP_ADDR, VIP_ADDR};
use super::etcd::EtcdCluster;
use super::gw::{GwObserver, GwOptions, OwnerSample, count_owner_changes, count_owners};
use super::measure::{self, AddressWatch};
use super::netns::{Lab, LabError};
use super::pair::{self, HOOK_PORT, RunError, SAMPLE_EVERY, pause};
use super::process::LabProcess;
use super::scenario::VRRP_DROP;
use splitguard_node::net::netlink::Netlink;
use splitguard_node::status::{Status, state};

/// The lease's time to live in every witness run.
pub const LEASE_TTL: &str = "3s";
pub const LEASE_TTL_S: u64 = 3;
/// The observation window of each case.
pub const WINDOW: Duration = Duration::from_secs(20);
/// The window with `--quick`.
pub const QUICK_WINDOW: Duration = Duration::from_secs(8);
/// Failover runs with the witness.
pub const FAILOVER_RUNS: u32 = 5;
pub const QUICK_FAILOVER_RUNS: u32 = 2;
/// The failover runs' window: the takeover comes at about the TTL.
const FAILOVER_WINDOW: Duration = Duration::from_secs(LEASE_TTL_S + 5);
/// How often the nodes' addresses are read in a failover run.
const FAILOVER_SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// After steady, before the fault (as `lab scenario`).
const SETTLE: Duration = Duration::from_secs(2);
/// Longest wait for a pair to settle, or for a first owner.
const STEADY_BOUND: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// One case of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Row {
    /// VRRP dropped on the backup's input (S2).
    BackupDropsVrrp,
    /// VRRP dropped on both nodes' input before either starts.
    BlockedBothWays,
    /// lb01's data port cut at the switch (its link stays up) and its
    /// management port down.
    MasterCutOff,
    /// lb01 cannot reach any etcd member; VRRP and the confirm path work.
    MasterCutFromEtcd,
    /// Every etcd member stopped, the pair healthy.
    StoreDown,
    /// etcd's leader killed (SIGKILL).
    LeaderKilled,
    /// The routed pair ([`configs::routed_lab`]), VRRP dropped where rt
    /// forwards.
    RoutedVrrpDropped,
}

impl Row {
    pub const ALL: [Row; 7] = [
        Row::BackupDropsVrrp,
        Row::BlockedBothWays,
        Row::MasterCutOff,
        Row::MasterCutFromEtcd,
        Row::StoreDown,
        Row::LeaderKilled,
        Row::RoutedVrrpDropped,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Row::BackupDropsVrrp => "W1",
            Row::BlockedBothWays => "W2",
            Row::MasterCutOff => "W3",
            Row::MasterCutFromEtcd => "W4",
            Row::StoreDown => "W5",
            Row::LeaderKilled => "W6",
            Row::RoutedVrrpDropped => "W7",
        }
    }

    /// The case, as the issue's matrix names it.
    pub fn title(self) -> &'static str {
        match self {
            Row::BackupDropsVrrp => "VRRP dropped on the backup (S2)",
            Row::BlockedBothWays => "VRRP blocked both ways from the start",
            Row::MasterCutOff => "the master cut off from the data and the management segment",
            Row::MasterCutFromEtcd => "the master cut off from etcd only (VRRP fine)",
            Row::StoreDown => "all three etcd members stopped, the pair healthy",
            Row::LeaderKilled => "etcd's leader killed",
            Row::RoutedVrrpDropped => {
                "a routed pair (unicast VRRP via rt), VRRP dropped between them"
            }
        }
    }

    /// What the issue expects of splitguard with the witness.
    pub fn expected(self) -> &'static str {
        match self {
            Row::BackupDropsVrrp => "one owner throughout, claim refused naming the holder",
            Row::BlockedBothWays => "one owner, the other refused",
            Row::MasterCutOff => {
                "it releases before its lease expires; the backup takes over after the TTL; \
                 0 dual-owner samples"
            }
            Row::MasterCutFromEtcd => "no change of owner; paged",
            Row::StoreDown => "no change of owner, no outage; paged",
            Row::LeaderKilled => "no change of owner",
            Row::RoutedVrrpDropped => "one owner",
        }
    }

    pub fn routed(self) -> bool {
        self == Row::RoutedVrrpDropped
    }

    /// The VIP whose owners are counted.
    pub fn vip(self) -> Ipv4Addr {
        if self.routed() {
            ROUTED_VIP_ADDR
        } else {
            VIP_ADDR
        }
    }

    /// W1 … W7 (or w1), comma-separated, or `all`.
    pub fn parse_list(s: &str) -> Result<Vec<Row>, String> {
        if s.eq_ignore_ascii_case("all") {
            return Ok(Row::ALL.to_vec());
        }
        s.split(',')
            .map(|name| {
                Row::ALL
                    .into_iter()
                    .find(|r| r.id().eq_ignore_ascii_case(name.trim()))
                    .ok_or_else(|| format!("unknown row {name:?}: use W1 … W7 or all"))
            })
            .collect()
    }
}

/// Who runs on lb01 and lb02.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flavour {
    /// splitguard, `[witness]` on etcd, ownership probing off.
    Witness,
    /// splitguard, no `[witness]`, ownership probing off, the arbiter on with
    /// gw (the routed row: the node's router) as its reference.
    NoWitness,
    /// keepalived 2.2.7 (unicast in the routed row).
    Keepalived,
}

impl Flavour {
    pub const ALL: [Flavour; 3] = [Flavour::Witness, Flavour::NoWitness, Flavour::Keepalived];

    pub fn label(self) -> &'static str {
        match self {
            Flavour::Witness => "splitguard + witness",
            Flavour::NoWitness => "splitguard, witness off",
            Flavour::Keepalived => "keepalived",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Flavour::Witness => "w",
            Flavour::NoWitness => "n",
            Flavour::Keepalived => "k",
        }
    }
}

/// Samples in a window: how many, and how many had two owners or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub dual: usize,
    pub none: usize,
    pub total: usize,
}

/// What one run saw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CaseOutcome {
    /// gw's ARP view; None in the routed row.
    pub gw: Option<Counts>,
    /// The nodes' own address lists.
    pub nodes: Counts,
    /// gw's owner changes, or the nodes' in the routed row.
    pub owner_changes: usize,
    /// "The master cut off": from the cut to lb02's VIP address event; None
    /// if it did not come within the window (or another row).
    pub takeover: Option<Duration>,
    /// "The master cut off": from the cut to the first node sample without
    /// lb01 holding; None if lb01 kept it through the window.
    pub released: Option<Duration>,
    /// Whether the row measures a takeover at all.
    pub cut: bool,
    /// The node that held the VIP first (the blocked-both-ways row).
    pub first_owner: Option<String>,
    /// splitguard's incidents in the window, first of each (kind, node):
    /// `kind@node +1.2s`.
    pub incidents: Vec<String>,
    /// The witness's refusals in the window, first per node:
    /// `lb02: key held by lb01`.
    pub refusals: Vec<String>,
    /// Anything else worth a note (etcd's new leader).
    pub notes: Vec<String>,
}

/// One run: a row for one flavour.
#[derive(Debug)]
pub struct CaseResult {
    pub row: Row,
    pub flavour: Flavour,
    pub outcome: Result<CaseOutcome, String>,
    /// From the lab's build to its teardown.
    pub elapsed: Duration,
    /// Every daemon's whole log, for a reader who wants the why.
    pub logs: String,
}

/// One failover run with the witness.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverRun {
    pub takeover: Duration,
    pub released: Option<Duration>,
    pub dual_nodes: usize,
}

/// What `splitguard lab witness` was asked to do.
#[derive(Debug, Clone)]
pub struct MatrixOptions {
    pub rows: Vec<Row>,
    pub flavours: Vec<Flavour>,
    /// Each case's window.
    pub window: Duration,
    /// Failover runs with the witness after the matrix (0: none).
    pub failover_runs: u32,
    /// The splitguard binary the nodes run (normally this very binary).
    pub splitguard: PathBuf,
}

impl MatrixOptions {
    /// The whole matrix and the failover runs, full length or `--quick`
    /// (8 s windows, 2 failover runs).
    pub fn new(quick: bool, splitguard: PathBuf) -> MatrixOptions {
        MatrixOptions {
            rows: Row::ALL.to_vec(),
            flavours: Flavour::ALL.to_vec(),
            window: if quick { QUICK_WINDOW } else { WINDOW },
            failover_runs: if quick {
                QUICK_FAILOVER_RUNS
            } else {
                FAILOVER_RUNS
            },
            splitguard,
        }
    }
}

/// The matrix's results.
#[derive(Debug)]
pub struct MatrixReport {
    pub window: Duration,
    pub cases: Vec<CaseResult>,
    pub failover: Vec<Result<FailoverRun, String>>,
    /// The whole command's wall time.
    pub elapsed: Duration,
}

impl MatrixReport {
    /// Whether any run gave no figures.
    pub fn any_failed(&self) -> bool {
        self.cases.iter().any(|c| c.outcome.is_err()) || self.failover.iter().any(|f| f.is_err())
    }

    /// The result of `row` for `flavour`, if it ran.
    pub fn case(&self, row: Row, flavour: Flavour) -> Option<&CaseResult> {
        self.cases
            .iter()
            .find(|c| c.row == row && c.flavour == flavour)
    }
}

/// The matrix fails the way `lab scenario` does (root, a missing program,
/// an interruption, the runtime).
pub use super::scenario::ScenarioError as MatrixError;

/// Root and the programs the matrix drives: the scenarios' and etcd's.
pub fn check_prerequisites(keepalived: bool) -> Result<(), MatrixError> {
    super::scenario::check_prerequisites(keepalived)?;
    super::scenario::require_programs(&[
        ("etcd", "etcd-server", "--version"),
        ("etcdctl", "etcd-client", "version"),
    ])
}

/// Runs every row for every flavour, then the failover runs; `progress` gets
/// a line per step.
pub fn run(
    opts: &MatrixOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<MatrixReport, MatrixError> {
    check_prerequisites(opts.flavours.contains(&Flavour::Keepalived))?;
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(MatrixError::Runtime)?;
    let mut cases = Vec::new();
    for &row in &opts.rows {
        for &flavour in &opts.flavours {
            progress(&format!(
                "{} {} — {} ({:.0} s in)",
                row.id(),
                row.title(),
                flavour.label(),
                started.elapsed().as_secs_f64()
            ));
            let t = Instant::now();
            let mut logs = String::new();
            let outcome = run_case(
                &rt,
                opts,
                row,
                flavour,
                opts.window,
                SAMPLE_EVERY,
                progress,
                &mut logs,
            );
            if matches!(&outcome, Err(e) if e.is_interrupted()) {
                return Err(MatrixError::Interrupted);
            }
            match &outcome {
                Ok(o) => progress(&format!("  {}", summary(row, o))),
                Err(e) => progress(&format!("  FAILED: {e}")),
            }
            cases.push(CaseResult {
                row,
                flavour,
                outcome: outcome.map_err(|e| e.to_string()),
                elapsed: t.elapsed(),
                logs,
            });
        }
    }
    let mut failover = Vec::new();
    for i in 0..opts.failover_runs {
        progress(&format!(
            "failover with the witness, run {}/{} ({:.0} s in)",
            i + 1,
            opts.failover_runs,
            started.elapsed().as_secs_f64()
        ));
        let mut logs = String::new();
        let outcome = run_case(
            &rt,
            opts,
            Row::MasterCutOff,
            Flavour::Witness,
            FAILOVER_WINDOW,
            FAILOVER_SAMPLE_EVERY,
            progress,
            &mut logs,
        );
        if matches!(&outcome, Err(e) if e.is_interrupted()) {
            return Err(MatrixError::Interrupted);
        }
        let run = outcome.map_err(|e| e.to_string()).and_then(|o| {
            Ok(FailoverRun {
                takeover: o
                    .takeover
                    .ok_or_else(|| "lb02 never took the VIP".to_string())?,
                released: o.released,
                dual_nodes: o.nodes.dual,
            })
        });
        match &run {
            Ok(r) => progress(&format!(
                "  lb02 holds after {:.2} s; lb01 released after {}",
                r.takeover.as_secs_f64(),
                secs_or(r.released, "—")
            )),
            Err(e) => progress(&format!("  FAILED: {e}")),
        }
        failover.push(run);
    }
    Ok(MatrixReport {
        window: opts.window,
        cases,
        failover,
        elapsed: started.elapsed(),
    })
}

/// One line of progress for a finished run.
fn summary(row: Row, o: &CaseOutcome) -> String {
    let gw =
        o.gw.map(|g| format!("gw: dual {}, none {} of {}; ", g.dual, g.none, g.total))
            .unwrap_or_default();
    let mut s = format!(
        "{gw}nodes: dual {}, none {} of {}; owner changes {}",
        o.nodes.dual, o.nodes.none, o.nodes.total, o.owner_changes
    );
    if row == Row::MasterCutOff {
        let _ = write!(
            s,
            "; lb02 holds after {}, lb01 released after {}",
            secs_or(o.takeover, "—"),
            secs_or(o.released, "—")
        );
    }
    s
}

// ------------------------------------------------------------------ one run

/// One run in its own lab; `logs` gets every daemon's log either way.
#[allow(clippy::too_many_arguments)] // one run's whole context, used twice
fn run_case(
    rt: &tokio::runtime::Runtime,
    opts: &MatrixOptions,
    row: Row,
    flavour: Flavour,
    window: Duration,
    node_every: Duration,
    progress: &mut dyn FnMut(&str),
    logs: &mut String,
) -> Result<CaseOutcome, RunError> {
    let tag = format!("wm{}{}", &row.id()[1..], flavour.tag());
    let lab = if row.routed() {
        configs::routed_lab(&tag)?
    } else {
        configs::witness_lab(&tag)?
    };
    let mut etcd = EtcdCluster::start(&lab).map_err(|e| RunError::Broken(format!("etcd: {e}")))?;
    let limit = STEADY_BOUND * 2 + SETTLE + window + Duration::from_secs(30);
    let vip = IpAddr::V4(row.vip());
    let gw = if row.routed() {
        None
    } else {
        Some(GwObserver::start(
            &lab,
            "gw",
            GwOptions {
                vip,
                port: HOOK_PORT,
                every: SAMPLE_EVERY,
                limit,
            },
        )?)
    };
    let nodes = NodeSampler::start(&lab, &["lb01", "lb02"], vip, node_every, limit)?;
    let mut run = Run {
        rt,
        lab: &lab,
        opts,
        row,
        flavour,
        endpoints: etcd.endpoints(),
        lb01: None,
        lb02: None,
        lb02_started: None,
    };
    let result = run.observe(&mut etcd, gw.as_ref(), &nodes, window, progress);
    *logs = run.logs();
    let tails = format!("{}{}", run.log_tails(), etcd.log_tails(5));
    // Daemons first (a witness revokes its lease while etcd still runs), then
    // the observers, etcd and the lab, in that order.
    run.stop();
    drop(nodes);
    drop(gw);
    drop(etcd);
    result.map_err(|e| match e {
        RunError::Interrupted => e,
        e if e.is_interrupted() => e,
        e => RunError::Broken(format!("{e}{tails}")),
    })
}

/// The daemons of one run and what they need to know.
struct Run<'a> {
    rt: &'a tokio::runtime::Runtime,
    lab: &'a Lab,
    opts: &'a MatrixOptions,
    row: Row,
    flavour: Flavour,
    endpoints: Vec<String>,
    lb01: Option<LabProcess>,
    lb02: Option<LabProcess>,
    /// When lb02's daemon was started.
    lb02_started: Option<Instant>,
}

/// keepalived says nothing when it hears a master: its backup counts as
/// settled once it has run longer than its Master_Down_Interval (3 × 1 s +
/// skew 0.61 s at priority 100) without claiming.
const KEEPALIVED_BACKUP_SETTLED: Duration = Duration::from_secs(4);

impl Run<'_> {
    fn start(&self, node: &str) -> Result<LabProcess, RunError> {
        let prio = if node == "lb01" { 150 } else { 100 };
        let p = match self.flavour {
            Flavour::Keepalived => {
                let cfg = if self.row.routed() {
                    configs::ka_unicast_config(node, prio)
                } else {
                    configs::ka_config(node, prio, 2, "1")
                };
                configs::start_keepalived(self.lab, node, &cfg)?
            }
            _ => configs::start_splitguard(
                self.lab,
                node,
                &self.opts.splitguard,
                &sg_node_config(self.lab, self.row, self.flavour, node, &self.endpoints),
            )?,
        };
        Ok(p)
    }

    fn procs(&self) -> Vec<&LabProcess> {
        self.lb01.iter().chain(self.lb02.iter()).collect()
    }

    fn logs(&self) -> String {
        self.procs()
            .iter()
            .map(|p| format!("----- {} -----\n{}", p.name, p.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn log_tails(&self) -> String {
        self.procs().iter().map(|p| p.log_tail(8)).collect()
    }

    fn stop(&mut self) {
        for p in [self.lb02.take(), self.lb01.take()].into_iter().flatten() {
            let mut p = p;
            p.stop(Duration::from_secs(3));
        }
    }

    /// Starts the pair, puts the row's fault in place and watches the window.
    fn observe(
        &mut self,
        etcd: &mut EtcdCluster<'_>,
        gw: Option<&GwObserver>,
        nodes: &NodeSampler,
        window: Duration,
        progress: &mut dyn FnMut(&str),
    ) -> Result<CaseOutcome, RunError> {
        let lab = self.lab;
        let row = self.row;
        let mut out = CaseOutcome {
            cut: row == Row::MasterCutOff,
            ..CaseOutcome::default()
        };
        let fault_at;
        let window_from;
        if row == Row::BlockedBothWays {
            lab.nft(Some("lb01"), VRRP_DROP)?;
            lab.nft(Some("lb02"), VRRP_DROP)?;
            fault_at = Instant::now();
            self.lb01 = Some(self.start("lb01")?);
            self.lb02 = Some(self.start("lb02")?);
            let first = wait_until(STEADY_BOUND, || {
                self.check_alive()?;
                Ok(nodes
                    .samples()
                    .into_iter()
                    .find(|s| s.at >= fault_at && !s.macs.is_empty()))
            })?
            .ok_or_else(|| RunError::NotSteady {
                within: STEADY_BOUND,
                detail: "nobody took the VIP".into(),
            })?;
            out.first_owner = Some(first.macs.iter().cloned().collect::<Vec<_>>().join("+"));
            progress(&format!(
                "  first owner {} after {:.1} s",
                first.macs.iter().cloned().collect::<Vec<_>>().join("+"),
                (first.at - fault_at).as_secs_f64()
            ));
            window_from = first.at;
        } else {
            self.lb01 = Some(self.start("lb01")?);
            wait_until(STEADY_BOUND, || {
                self.check_alive()?;
                Ok(nodes
                    .latest_holders(Duration::from_millis(600))
                    .and_then(|h| (h.len() == 1 && h.contains("lb01")).then_some(())))
            })?
            .ok_or_else(|| RunError::NotSteady {
                within: STEADY_BOUND,
                detail: "lb01 alone never took the VIP".into(),
            })?;
            self.lb02 = Some(self.start("lb02")?);
            self.lb02_started = Some(Instant::now());
            self.wait_steady(gw, nodes)?;
            progress("  steady: lb01 holds the VIP, lb02 is its backup");
            pause(SETTLE)?;
            fault_at = Instant::now();
            window_from = fault_at;
            self.apply_fault(etcd, &mut out, fault_at, window)?;
        }
        let end = window_from + window;
        pause(end.saturating_duration_since(Instant::now()))?;
        if let Some(e) = gw.and_then(GwObserver::error) {
            return Err(RunError::Broken(format!("gw's observer stopped: {e}")));
        }
        if let Some(e) = nodes.error() {
            return Err(RunError::Broken(format!("the nodes' sampler stopped: {e}")));
        }
        let expected = (window.as_secs_f64() / nodes.every.as_secs_f64()) as usize;
        let node_samples = nodes.samples();
        let (dual, none, total) = count_owners(&node_samples, window_from, end);
        if total + 4 < expected {
            return Err(RunError::Broken(format!(
                "the nodes were sampled {total} times in the window, expected about {expected}"
            )));
        }
        out.nodes = Counts { dual, none, total };
        out.owner_changes = count_owner_changes(&node_samples, window_from, end);
        if let Some(gw) = gw {
            let samples = gw.samples();
            let (dual, none, total) = count_owners(&samples, window_from, end);
            let expected = (window.as_secs_f64() / SAMPLE_EVERY.as_secs_f64()) as usize;
            if total + 4 < expected {
                return Err(RunError::Broken(format!(
                    "gw took {total} samples in the window, expected about {expected}"
                )));
            }
            out.gw = Some(Counts { dual, none, total });
            out.owner_changes = count_owner_changes(&samples, window_from, end);
        }
        if out.cut {
            out.released = node_samples
                .iter()
                .find(|s| s.at >= fault_at && !s.macs.contains("lb01"))
                .map(|s| s.at - fault_at);
        }
        if self.flavour != Flavour::Keepalived {
            let (incidents, refusals) = read_events(lab, fault_at, end);
            out.incidents = incidents;
            out.refusals = refusals;
        }
        Ok(out)
    }

    /// The row's fault, at `fault_at` (now).
    fn apply_fault(
        &self,
        etcd: &mut EtcdCluster<'_>,
        out: &mut CaseOutcome,
        fault_at: Instant,
        window: Duration,
    ) -> Result<(), RunError> {
        let lab = self.lab;
        let etcd_err = |e: super::etcd::EtcdError| RunError::Broken(format!("etcd: {e}"));
        match self.row {
            Row::BackupDropsVrrp => lab.nft(Some("lb02"), VRRP_DROP)?,
            Row::BlockedBothWays => {}
            Row::MasterCutOff => {
                let port = lab.host("lb01")?.bridge_port.clone();
                let cut = || -> Result<(), measure::MeasureError> {
                    lab.nft(
                        None,
                        &format!(
                            "table bridge cut {{\n chain cut {{\n  type filter hook forward priority 0;\n  \
                             iifname \"{port}\" drop\n  oifname \"{port}\" drop\n }}\n}}\n"
                        ),
                    )?;
                    lab.set_management_port("lb01", false)?;
                    Ok(())
                };
                let watch = AddressWatch {
                    host: "lb02",
                    iface: "eth0",
                    addr: IpAddr::V4(self.row.vip()),
                    align: None,
                    bound: window,
                };
                match measure::address_instants(lab, watch, cut) {
                    Ok((t0, t1)) => out.takeover = Some(t1.saturating_duration_since(t0)),
                    // No takeover within the window is a figure, not a failure.
                    Err(measure::MeasureError::Timeout { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Row::MasterCutFromEtcd => lab.nft(
                Some("lb01"),
                "table inet cutetcd {\n chain out {\n  type filter hook output priority 0;\n  \
                 ip daddr 192.0.2.201-192.0.2.203 drop\n }\n chain in {\n  type filter hook input priority 0;\n  \
                 ip saddr 192.0.2.201-192.0.2.203 drop\n }\n}\n",
            )?,
            Row::StoreDown => {
                etcd.stop_all().map_err(etcd_err)?;
                out.notes.push(format!(
                    "every member stopped by +{:.1}s",
                    fault_at.elapsed().as_secs_f64()
                ));
            }
            Row::LeaderKilled => {
                let leader = etcd
                    .wait_leader(Duration::from_secs(10))
                    .map_err(etcd_err)?;
                let name = etcd.name(leader).map_err(etcd_err)?;
                etcd.kill(leader).map_err(etcd_err)?;
                match etcd.wait_leader(Duration::from_secs(10)) {
                    Ok(new) => out.notes.push(format!(
                        "leader {name} killed; {} leads +{:.1}s",
                        etcd.name(new).map_err(etcd_err)?,
                        fault_at.elapsed().as_secs_f64()
                    )),
                    Err(_) => out
                        .notes
                        .push(format!("leader {name} killed; no new leader in 10 s")),
                }
            }
            Row::RoutedVrrpDropped => lab.nft(Some("rt"), configs::ROUTED_VRRP_DROP)?,
        }
        Ok(())
    }

    /// A daemon that exited is a broken run.
    fn check_alive(&mut self) -> Result<(), RunError> {
        for p in self.lb01.iter_mut().chain(self.lb02.iter_mut()) {
            if let Some(status) = p.try_exit() {
                return Err(RunError::Broken(format!("{} exited ({status})", p.name)));
            }
        }
        if measure::interrupted() {
            return Err(RunError::Interrupted);
        }
        Ok(())
    }

    /// lb01 master with the VIP, lb02 backup having heard it (with the
    /// witness: lb01 holds the key and lb02 hears lb01's confirmations), the
    /// nodes' addresses and gw agree.
    fn wait_steady(
        &mut self,
        gw: Option<&GwObserver>,
        nodes: &NodeSampler,
    ) -> Result<(), RunError> {
        let mac1 = self.lab.mac_of("lb01")?;
        let mut last = String::new();
        let done = wait_until(STEADY_BOUND, || {
            self.check_alive()?;
            let ready = self.daemons_ready().and_then(|()| {
                match nodes.latest_holders(Duration::from_millis(600)) {
                    Some(h) if h.len() == 1 && h.contains("lb01") => Ok(()),
                    h => Err(format!("the nodes hold {h:?}")),
                }
            });
            let ready = ready.and_then(|()| match gw {
                Some(gw) => gw.sees_only(&mac1, SAMPLE_EVERY * 2),
                None => Ok(()),
            });
            Ok(match ready {
                Ok(()) => Some(()),
                Err(why) => {
                    last = why;
                    None
                }
            })
        })?;
        done.ok_or(RunError::NotSteady {
            within: STEADY_BOUND,
            detail: last,
        })
    }

    fn daemons_ready(&self) -> Result<(), String> {
        let (Some(lb01), Some(lb02)) = (&self.lb01, &self.lb02) else {
            return Err("a daemon is not started".into());
        };
        if self.flavour == Flavour::Keepalived {
            pair::keepalived_node_ready(lb01, state::MASTER)?;
            pair::keepalived_node_ready(lb02, state::BACKUP)?;
            if self
                .lb02_started
                .is_none_or(|t| t.elapsed() < KEEPALIVED_BACKUP_SETTLED)
            {
                return Err(
                    "lb02's keepalived has not outlasted its Master_Down_Interval yet".into(),
                );
            }
            return Ok(());
        }
        pair::splitguard_node_ready(self.rt, self.lab, "lb01", state::MASTER, true)?;
        pair::splitguard_node_ready(self.rt, self.lab, "lb02", state::BACKUP, true)?;
        if self.flavour == Flavour::Witness {
            let s1 = self.status("lb01")?;
            let ours = s1
                .witness
                .as_ref()
                .is_some_and(|w| w.vrids.first().is_some_and(|v| v.ours));
            if !ours {
                return Err("lb01 does not hold the VRID's key yet".into());
            }
            let s2 = self.status("lb02")?;
            if s2.witness.as_ref().and_then(|w| w.peer_heard) != Some(true) {
                return Err("lb02 has not heard lb01's confirmations yet".into());
            }
        }
        Ok(())
    }

    fn status(&self, node: &str) -> Result<Status, String> {
        self.rt
            .block_on(splitguard_node::control::client::status(
                configs::sg_socket(self.lab, node),
                Duration::from_secs(2),
            ))
            .map_err(|e| format!("{node}: {e}"))
    }
}

/// Polls `probe` every 100 ms until it gives Some, `within` passes (None),
/// it fails, or an interrupt comes.
fn wait_until<T>(
    within: Duration,
    mut probe: impl FnMut() -> Result<Option<T>, RunError>,
) -> Result<Option<T>, RunError> {
    let deadline = Instant::now() + within;
    loop {
        if measure::interrupted() {
            return Err(RunError::Interrupted);
        }
        if let Some(v) = probe()? {
            return Ok(Some(v));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// `node`'s splitguard config for `row` and `flavour` (not keepalived): the
/// pair's instance (the routed row's unicast one), the arbiter with
/// ownership probing off, the witness when `flavour` has it, and the events
/// file `<node>-events.jsonl` in the lab directory.
pub fn sg_node_config(
    lab: &Lab,
    row: Row,
    flavour: Flavour,
    node: &str,
    endpoints: &[String],
) -> String {
    let prio = if node == "lb01" { 150 } else { 100 };
    if row.routed() {
        let tables = match flavour {
            Flavour::Witness => configs::routed_witness_tables(node, endpoints, LEASE_TTL),
            _ => configs::routed_arbiter_table(node),
        };
        return configs::routed_sg_config(lab, node, prio, &tables);
    }
    let tables = match flavour {
        Flavour::Witness => configs::witness_tables(node, endpoints, LEASE_TTL),
        _ => format!("\n[arbiter]\nreferences = [\"{GW_ADDR}\"]\nownership_probe = false\n"),
    };
    configs::sg_config(lab, node, prio, 2, "1s", &tables).replacen(
        "\n\n[[instance]]",
        &format!(
            "\nevents_file = \"{}/{node}-events.jsonl\"\n\n[[instance]]",
            lab.dir().display()
        ),
        1,
    )
}

/// Unix milliseconds at `at` (an instant of this process's clock).
fn unix_ms_at(at: Instant) -> u64 {
    let now = Instant::now();
    let sys = if at <= now {
        SystemTime::now() - (now - at)
    } else {
        SystemTime::now() + (at - now)
    };
    sys.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The incidents that fired in `[from, to)` (first of each kind and node,
/// `kind@node +1.2s` after `from`) and the witness's refusals (first per
/// node), from both nodes' events files.
fn read_events(lab: &Lab, from: Instant, to: Instant) -> (Vec<String>, Vec<String>) {
    let (from_ms, to_ms) = (unix_ms_at(from), unix_ms_at(to));
    let mut events = Vec::new();
    for node in ["lb01", "lb02"] {
        let text = std::fs::read_to_string(lab.dir().join(format!("{node}-events.jsonl")))
            .unwrap_or_default();
        events.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .map(|e| (node, e)),
        );
    }
    events_in_window(&events, from_ms, to_ms)
}

/// [`read_events`] on parsed lines `(node, event)`.
fn events_in_window(
    events: &[(&str, serde_json::Value)],
    from_ms: u64,
    to_ms: u64,
) -> (Vec<String>, Vec<String>) {
    let mut timed: Vec<(u64, &str, &serde_json::Value)> = events
        .iter()
        .filter_map(|(node, e)| {
            let at = e["at_ms"].as_u64()?;
            (at >= from_ms && at < to_ms).then_some((at, *node, e))
        })
        .collect();
    timed.sort_by_key(|t| t.0);
    let mut incidents = Vec::new();
    let mut seen = BTreeSet::new();
    let mut refusals = Vec::new();
    let mut refused = BTreeSet::new();
    for (at, node, e) in timed {
        let after = (at - from_ms) as f64 / 1000.0;
        if e["event"] == "incident" && e["status"] == "firing" {
            let kind = e["kind"].as_str().unwrap_or("?");
            if seen.insert((kind.to_owned(), node)) {
                incidents.push(format!("{kind}@{node} +{after:.1}s"));
            }
        }
        if e["event"] == "claim_withheld"
            && let Some(holder) = e["reason"]
                .as_str()
                .and_then(|r| r.split("the VRID's key is held by ").nth(1))
            && refused.insert(node)
        {
            refusals.push(format!("{node}: key held by {}", holder.trim()));
        }
    }
    (incidents, refusals)
}

// ------------------------------------------------------- the nodes' view

/// Reads, in each node, whether the VIP is on its eth0 (a netlink address
/// dump: what `ip -4 addr show dev eth0` prints), every `every` on a shared
/// schedule, so the nodes' reads of one tick are taken together. Bounded by
/// `limit` and stopped when dropped.
pub struct NodeSampler {
    every: Duration,
    stop: Arc<AtomicBool>,
    hosts: Vec<String>,
    /// Per host: (tick, when read, held).
    reads: Vec<Reads>,
    errors: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<Result<(), LabError>>>,
}

/// One node's reads: (tick, when read, whether it held the VIP).
type Reads = Arc<Mutex<Vec<(u64, Instant, bool)>>>;

impl NodeSampler {
    pub fn start(
        lab: &Lab,
        hosts: &[&str],
        vip: IpAddr,
        every: Duration,
        limit: Duration,
    ) -> Result<NodeSampler, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let base = tokio::time::Instant::now() + Duration::from_millis(100);
        let mut sampler = NodeSampler {
            every,
            stop: Arc::clone(&stop),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            reads: Vec::new(),
            errors: Arc::clone(&errors),
            threads: Vec::new(),
        };
        for host in hosts {
            let iface = lab.host(host)?.iface.clone();
            let reads = Arc::new(Mutex::new(Vec::new()));
            sampler.reads.push(Arc::clone(&reads));
            let (stop, errors, name) = (Arc::clone(&stop), Arc::clone(&errors), host.to_string());
            // Pushed at once: if a later host fails, Drop stops this one.
            sampler.threads.push(lab.spawn_within(host, move || {
                if let Err(e) = read_host(&iface, vip, base, every, limit, &stop, &reads) {
                    lock(&errors).push(format!("{name}: {e}"));
                }
            })?);
        }
        Ok(sampler)
    }

    pub fn every(&self) -> Duration {
        self.every
    }

    /// Every tick read in all the nodes, as owner samples whose "MACs" are
    /// the names of the nodes holding the VIP.
    pub fn samples(&self) -> Vec<OwnerSample> {
        let mut ticks: BTreeMap<u64, (Instant, BTreeSet<String>, usize)> = BTreeMap::new();
        for (host, reads) in self.hosts.iter().zip(&self.reads) {
            for &(k, at, held) in lock(reads).iter() {
                let e = ticks.entry(k).or_insert((at, BTreeSet::new(), 0));
                e.0 = e.0.min(at);
                e.2 += 1;
                if held {
                    e.1.insert(host.clone());
                }
            }
        }
        ticks
            .into_values()
            .filter(|(_, _, n)| *n == self.hosts.len())
            .map(|(at, macs, _)| OwnerSample { at, macs })
            .collect()
    }

    /// The holders of the latest complete sample, if it is younger than
    /// `fresh`.
    pub fn latest_holders(&self, fresh: Duration) -> Option<BTreeSet<String>> {
        self.samples()
            .pop()
            .filter(|s| s.at.elapsed() <= fresh)
            .map(|s| s.macs)
    }

    /// Why a node's reads stopped early, if they did.
    pub fn error(&self) -> Option<String> {
        lock(&self.errors).first().cloned()
    }
}

impl Drop for NodeSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One node's reads, on a thread inside its namespace.
fn read_host(
    iface: &str,
    vip: IpAddr,
    base: tokio::time::Instant,
    every: Duration,
    limit: Duration,
    stop: &AtomicBool,
    reads: &Mutex<Vec<(u64, Instant, bool)>>,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        let nl = Netlink::connect().map_err(|e| format!("netlink: {e}"))?;
        let index = nl
            .link_by_name(iface)
            .await
            .map_err(|e| format!("{iface}: {e}"))?
            .index;
        let end = base + limit;
        for k in 0u32.. {
            let due = base + every * k;
            if due >= end || stop.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep_until(due).await;
            let at = Instant::now();
            let held = nl
                .addresses(index)
                .await
                .map_err(|e| format!("address dump: {e}"))?
                .iter()
                .any(|a| a.addr == vip);
            lock(reads).push((u64::from(k), at, held));
        }
        Ok(())
    })
}

// ------------------------------------------------------------------ report

fn secs_or(d: Option<Duration>, none: &str) -> String {
    d.map(|d| format!("{:.2} s", d.as_secs_f64()))
        .unwrap_or_else(|| none.to_owned())
}

fn fraction(c: Counts) -> String {
    format!("{}/{}", c.dual, c.total)
}

/// Whether splitguard with the witness did what the issue expects in `row`;
/// the reason when not.
pub fn expectation(row: Row, o: &CaseOutcome) -> Result<(), String> {
    let ttl = Duration::from_secs(LEASE_TTL_S);
    let dual = o.nodes.dual + o.gw.map_or(0, |g| g.dual);
    if dual > 0 {
        return Err(format!("{dual} dual-owner samples"));
    }
    let none = o.nodes.none + o.gw.map_or(0, |g| g.none);
    let refused = |holder: &str| {
        o.refusals
            .iter()
            .any(|r| r.ends_with(&format!("key held by {holder}")))
    };
    let paged = o
        .incidents
        .iter()
        .any(|i| i.starts_with("witness_unreachable@"));
    match row {
        Row::BackupDropsVrrp | Row::RoutedVrrpDropped => {
            if none > 0 || o.owner_changes > 0 {
                return Err(format!(
                    "{none} no-owner samples, {} owner changes",
                    o.owner_changes
                ));
            }
            if !refused("lb01") {
                return Err("no refusal naming lb01".into());
            }
        }
        Row::BlockedBothWays => {
            let owner = o.first_owner.as_deref().unwrap_or("?");
            if o.owner_changes > 0 {
                return Err(format!("{} owner changes", o.owner_changes));
            }
            if !refused(owner) {
                return Err(format!("no refusal naming {owner}"));
            }
        }
        Row::MasterCutOff => {
            match o.released {
                Some(r) if r < ttl => {}
                r => return Err(format!("lb01 released after {}", secs_or(r, "never"))),
            }
            match o.takeover {
                Some(t)
                    if t >= o.released.unwrap_or_default() && t <= ttl + Duration::from_secs(1) => {
                }
                t => return Err(format!("lb02 took over after {}", secs_or(t, "never"))),
            }
        }
        Row::MasterCutFromEtcd | Row::StoreDown => {
            if none > 0 || o.owner_changes > 0 {
                return Err(format!(
                    "{none} no-owner samples, {} owner changes",
                    o.owner_changes
                ));
            }
            if !paged {
                return Err("not paged witness_unreachable".into());
            }
        }
        Row::LeaderKilled => {
            if none > 0 || o.owner_changes > 0 {
                return Err(format!(
                    "{none} no-owner samples, {} owner changes",
                    o.owner_changes
                ));
            }
        }
    }
    Ok(())
}

/// Min, median and max of `v` (sorted here); None when empty.
pub fn min_median_max(v: &[Duration]) -> Option<(Duration, Duration, Duration)> {
    let mut v = v.to_vec();
    v.sort();
    let n = v.len();
    if n == 0 {
        return None;
    }
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    };
    Some((v[0], median, v[n - 1]))
}

/// The report as Markdown: the matrix, what the issue expects with a verdict
/// per row, the failover figures, and how it was measured.
pub fn render(report: &MatrixReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| case | implementation | dual-owner samples, gw | dual-owner samples, nodes | \
         no-owner samples, gw | no-owner samples, nodes | owner changes | takeover | \
         incidents, refusals |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|---|---|");
    for c in &report.cases {
        let case = format!("{} {}", c.row.id(), c.row.title());
        let cells = match &c.outcome {
            Ok(o) => {
                let gw_dual = o.gw.map_or("—".into(), fraction);
                let gw_none =
                    o.gw.map_or("—".into(), |g| format!("{}/{}", g.none, g.total));
                let takeover = if o.cut {
                    format!(
                        "lb02 +{}, lb01 released +{}",
                        secs_or(o.takeover, "never"),
                        secs_or(o.released, "never")
                    )
                    .replace("+never", "never")
                } else {
                    "—".into()
                };
                let mut notes: Vec<String> = Vec::new();
                if let Some(owner) = &o.first_owner {
                    notes.push(format!("first owner {owner}"));
                }
                notes.extend(o.incidents.iter().cloned());
                notes.extend(o.refusals.iter().cloned());
                notes.extend(o.notes.iter().cloned());
                if notes.is_empty() {
                    notes.push(if c.flavour == Flavour::Keepalived {
                        "(no alerts of its own)".into()
                    } else {
                        "none".into()
                    });
                }
                [
                    gw_dual,
                    fraction(o.nodes),
                    gw_none,
                    format!("{}/{}", o.nodes.none, o.nodes.total),
                    o.owner_changes.to_string(),
                    takeover,
                    notes.join("; "),
                ]
            }
            Err(e) => {
                let dash = || "—".to_string();
                [
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    format!("FAILED: {}", e.lines().next().unwrap_or("")),
                ]
            }
        };
        let _ = writeln!(
            out,
            "| {case} | {} | {} |",
            c.flavour.label(),
            cells.join(" | ")
        );
    }
    let _ = writeln!(
        out,
        "\nExpected of splitguard + witness, and what it did:\n"
    );
    for row in Row::ALL {
        let Some(c) = report.case(row, Flavour::Witness) else {
            continue;
        };
        let verdict = match &c.outcome {
            Ok(o) => match expectation(row, o) {
                Ok(()) => "met".to_string(),
                Err(why) => format!("NOT met: {why}"),
            },
            Err(_) => "not measured (the run failed)".into(),
        };
        let _ = writeln!(out, "- {}: {} — {verdict}", row.id(), row.expected());
    }
    let takeovers: Vec<Duration> = report
        .failover
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|r| r.takeover))
        .collect();
    let releases: Vec<Duration> = report
        .failover
        .iter()
        .filter_map(|r| r.as_ref().ok().and_then(|r| r.released))
        .collect();
    if !report.failover.is_empty() {
        let failed = report.failover.iter().filter(|r| r.is_err()).count();
        let dual: usize = report
            .failover
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|r| r.dual_nodes))
            .sum();
        let mmm = |v: &[Duration]| {
            min_median_max(v)
                .map(|(a, b, c)| {
                    format!(
                        "{:.2} / {:.2} / {:.2} s",
                        a.as_secs_f64(),
                        b.as_secs_f64(),
                        c.as_secs_f64()
                    )
                })
                .unwrap_or_else(|| "—".into())
        };
        let _ = writeln!(
            out,
            "\nFailover with the witness (the master cut off from both segments, lease TTL \
             {LEASE_TTL_S} s), {} run(s){}: lb02 holds the VIP {} (min / median / max) after \
             the cut; lb01 released it {}; dual-owner node samples (every 50 ms): {dual}.",
            takeovers.len(),
            if failed > 0 {
                format!(" ({failed} more failed)")
            } else {
                String::new()
            },
            mmm(&takeovers),
            mmm(&releases),
        );
    }
    let _ = writeln!(
        out,
        "\nEach case in a fresh lab with its own three-member etcd 3.4 cluster on the \
         management segment, lb01 priority 150, lb02 100, VRRPv2 with 1 s adverts; \
         splitguard with ownership probing off (the witness, when on, with lease_ttl \
         {LEASE_TTL}). Window: {} s from the fault, put in place once the pair \
         settled (W2: from the first owner, VRRP being blocked before either node \
         starts). gw ({GW_ADDR}) asks who has the VIP every 250 ms; the nodes' own \
         address lists are read every 250 ms (a netlink dump of eth0, both nodes on \
         the same tick); a sample with two owners is dual, one with none is no-owner \
         (counts are dual/samples). In W7 (lb01 192.0.2.5/26 via rt .1, lb02 \
         192.0.2.70/26 via rt .65, VIP 192.0.2.130/32, unicast VRRP) only the nodes' \
         view exists. Owner changes: as gw sees them (W7: the nodes' view). Takeover \
         (W3): the cut to lb02's netlink address event; lb01's release to the first node sample without it. \
         Incidents from splitguard's events file (kind@node, time after the fault); \
         refusals are the witness's claim_withheld naming the key's holder. Total run \
         time {:.1} min.",
        report.window.as_secs(),
        report.elapsed.as_secs_f64() / 60.0,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_and_name_the_choices() {
        assert_eq!(Row::parse_list("all").unwrap().len(), 7);
        assert_eq!(
            Row::parse_list("w1, W7").unwrap(),
            vec![Row::BackupDropsVrrp, Row::RoutedVrrpDropped]
        );
        let e = Row::parse_list("W8").unwrap_err();
        assert!(e.contains("W1 … W7"), "{e}");
        let ids: BTreeSet<&str> = Row::ALL.iter().map(|r| r.id()).collect();
        assert_eq!(ids.len(), 7);
    }

    #[test]
    fn events_give_incidents_and_refusals_in_the_window() {
        let ev = |at: u64, v: serde_json::Value| {
            let mut v = v;
            v["at_ms"] = at.into();
            v
        };
        let events = vec![
            (
                "lb02",
                ev(
                    900,
                    serde_json::json!({"event": "incident", "kind": "split_brain", "status": "firing"}),
                ),
            ),
            (
                "lb02",
                ev(
                    1500,
                    serde_json::json!({"event": "claim_withheld",
                        "reason": "the witness refuses: the VRID's key is held by lb01"}),
                ),
            ),
            (
                "lb02",
                ev(
                    1600,
                    serde_json::json!({"event": "claim_withheld",
                        "reason": "the witness refuses: the VRID's key is held by lb01"}),
                ),
            ),
            (
                "lb01",
                ev(
                    2200,
                    serde_json::json!({"event": "incident", "kind": "witness_unreachable", "status": "firing"}),
                ),
            ),
            (
                "lb01",
                ev(
                    2300,
                    serde_json::json!({"event": "incident", "kind": "witness_unreachable", "status": "resolved"}),
                ),
            ),
            (
                "lb01",
                ev(
                    9000,
                    serde_json::json!({"event": "incident", "kind": "isolated", "status": "firing"}),
                ),
            ),
        ];
        let (incidents, refusals) = events_in_window(&events, 1000, 5000);
        assert_eq!(incidents, vec!["witness_unreachable@lb01 +1.2s"]);
        assert_eq!(refusals, vec!["lb02: key held by lb01"]);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_middle_pair_s_mean() {
        let s = Duration::from_secs;
        assert_eq!(
            min_median_max(&[s(4), s(1), s(3), s(2)]),
            Some((s(1), Duration::from_millis(2500), s(4)))
        );
        assert_eq!(
            min_median_max(&[s(2), s(9), s(1)]),
            Some((s(1), s(2), s(9)))
        );
        assert_eq!(min_median_max(&[]), None);
    }

    #[test]
    fn the_witness_verdicts_follow_the_issue() {
        let one_owner = CaseOutcome {
            gw: Some(Counts {
                dual: 0,
                none: 0,
                total: 80,
            }),
            nodes: Counts {
                dual: 0,
                none: 0,
                total: 80,
            },
            refusals: vec!["lb02: key held by lb01".into()],
            incidents: vec!["witness_unreachable@lb01 +1.1s".into()],
            ..CaseOutcome::default()
        };
        for row in [
            Row::BackupDropsVrrp,
            Row::MasterCutFromEtcd,
            Row::StoreDown,
            Row::LeaderKilled,
        ] {
            assert_eq!(expectation(row, &one_owner), Ok(()), "{row:?}");
        }
        let mut dual = one_owner.clone();
        dual.nodes.dual = 1;
        assert!(expectation(Row::LeaderKilled, &dual).is_err());
        let mut outage = one_owner.clone();
        outage.gw = Some(Counts {
            dual: 0,
            none: 3,
            total: 80,
        });
        assert!(expectation(Row::StoreDown, &outage).is_err());
        let cut = CaseOutcome {
            cut: true,
            released: Some(Duration::from_millis(2500)),
            takeover: Some(Duration::from_millis(3400)),
            ..one_owner.clone()
        };
        assert_eq!(expectation(Row::MasterCutOff, &cut), Ok(()));
        let late = CaseOutcome {
            released: Some(Duration::from_millis(3100)),
            ..cut.clone()
        };
        assert!(expectation(Row::MasterCutOff, &late).is_err());
        let blocked = CaseOutcome {
            first_owner: Some("lb02".into()),
            refusals: vec!["lb01: key held by lb02".into()],
            ..one_owner
        };
        assert_eq!(expectation(Row::BlockedBothWays, &blocked), Ok(()));
    }

    #[test]
    fn the_routed_configs_cross_rt_by_unicast() {
        let ka = configs::ka_unicast_config("lb02", 100);
        assert!(ka.contains("unicast_src_ip 192.0.2.70\n"), "{ka}");
        assert!(ka.contains("unicast_peer {\n    192.0.2.5\n  }"), "{ka}");
        assert!(ka.contains("192.0.2.130/32 dev eth0\n"), "{ka}");
        assert!(!ka.contains("192.0.2.3/"), "{ka}");
        assert!(ka.contains("auth_pass 1111"), "{ka}");
        let w = configs::routed_witness_tables("lb02", &["http://192.0.2.201:2379".into()], "3s");
        assert!(w.contains("references = [\"192.0.2.65\"]"), "{w}");
        assert!(w.contains("ownership_probe = false"), "{w}");
        assert!(w.contains("confirm_listen = \"192.0.2.198:8727\""), "{w}");
        let a = configs::routed_arbiter_table("lb01");
        assert!(a.contains("references = [\"192.0.2.1\"]") && !a.contains("[witness]"));
        for addr in [
            configs::RT_A_ADDR,
            configs::RT_B_ADDR,
            configs::LB01_ADDR,
            configs::ROUTED_LB02_ADDR,
        ] {
            // The VIP is in neither /26 and no host has it.
            assert_ne!(addr, ROUTED_VIP_ADDR);
            assert!(addr.octets()[3] < 128);
        }
        assert_eq!(ROUTED_VIP_ADDR.octets()[3] & 0xc0, 0x80);
    }

    #[test]
    fn the_table_has_a_line_per_run_and_marks_failures() {
        let ok = CaseOutcome {
            gw: None,
            nodes: Counts {
                dual: 0,
                none: 0,
                total: 80,
            },
            refusals: vec!["lb02: key held by lb01".into()],
            ..CaseOutcome::default()
        };
        let report = MatrixReport {
            window: WINDOW,
            cases: vec![
                CaseResult {
                    row: Row::RoutedVrrpDropped,
                    flavour: Flavour::Witness,
                    outcome: Ok(ok),
                    elapsed: Duration::ZERO,
                    logs: String::new(),
                },
                CaseResult {
                    row: Row::RoutedVrrpDropped,
                    flavour: Flavour::Keepalived,
                    outcome: Err("the pair did not settle\nmore".into()),
                    elapsed: Duration::ZERO,
                    logs: String::new(),
                },
            ],
            failover: vec![
                Ok(FailoverRun {
                    takeover: Duration::from_millis(3400),
                    released: Some(Duration::from_millis(2500)),
                    dual_nodes: 0,
                }),
                Err("broken".into()),
            ],
            elapsed: Duration::from_secs(90),
        };
        let md = render(&report);
        assert!(
            md.contains("| W7 a routed pair (unicast VRRP via rt), VRRP dropped between them | splitguard + witness | — | 0/80 | — | 0/80 | 0 | — | lb02: key held by lb01 |"),
            "{md}"
        );
        assert!(
            md.contains("| keepalived | — | — | — | — | — | — | FAILED: the pair did not settle |"),
            "{md}"
        );
        assert!(md.contains("- W7: one owner — met"), "{md}");
        assert!(
            md.contains("1 run(s) (1 more failed): lb02 holds the VIP 3.40 / 3.40 / 3.40 s"),
            "{md}"
        );
        assert!(report.any_failed());
    }
}
