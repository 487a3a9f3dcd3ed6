//! `splitguard lab scenario`: the split-brain catalogue (S1–S7), each run in a
//! fresh pair lab the same way for every implementation, and what gw saw over a
//! fixed window after the fault: dual-owner and zero-owner seconds (ARP
//! who-has every 250 ms from gw; a sample answered by two MACs is a dual-owner
//! quarter second) and the alerts that reached gw's webhook (kind, node, time
//! since the fault). splitguard runs with its arbiter and its own alerts;
//! keepalived runs with `splitguard watch` beside it on lb02 for the alerts,
//! as an operator would put it. The faults and configs live here so `lab demo`
//! plays the same ones. With `--ipv6` the pair runs VRRPv3 over IPv6 (VIP
//! 2001:db8::3, adverts from link-locals) and gw asks by neighbour
//! solicitation; S6 is then an advert interval mismatch, VRRPv3 having no
//! password.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::configs::{
    self, Family, GW_ADDR, LB01_ADDR, LB02_ADDR, addr_in, arbiter_table_in, ka_config_in,
    pair_lab_in, sg_config_in, webhook_tables,
};
use super::gw::{GwObserver, Hook, OwnerSample, count_owner_changes, count_owners};
use super::measure;
use super::netns::{Lab, LabError};
use super::pair::{
    self, Daemons, RunError, SAMPLE_EVERY, STEADY_BOUND, pause, start_gw_observer_in,
};
use super::process::LabProcess;
use super::report::Implementation;
/// After steady, before the fault: the takeover's gratuitous ARP is over and the
/// backup has heard a few adverts.
const SETTLE: Duration = Duration::from_secs(2);

/// S2's firewall: VRRP (IP protocol or IPv6 next header 112) dropped on a host's input, in table
/// `inet s2`.
pub const VRRP_DROP: &str = "table inet s2 {\n chain input {\n  type filter hook input priority 0;\n  meta l4proto 112 drop\n }\n}\n";

/// One fault of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// The master's link goes down (and comes back: lb01 preempts).
    S1,
    /// VRRP is dropped on the backup's input (a host firewall rule).
    S2,
    /// The backup starts with another VRID (a typo in its config).
    S3,
    /// The master's port is cut at the switch while its own link stays up.
    S4,
    /// The gateway stops answering pings (both nodes lose their reference).
    S5,
    /// The backup starts with another VRRPv2 password (IPv6: another advert
    /// interval).
    S6,
    /// 30 % of the frames to the backup are lost on the segment.
    S7,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::S1,
        Scenario::S2,
        Scenario::S3,
        Scenario::S4,
        Scenario::S5,
        Scenario::S6,
        Scenario::S7,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Scenario::S1 => "S1",
            Scenario::S2 => "S2",
            Scenario::S3 => "S3",
            Scenario::S4 => "S4",
            Scenario::S5 => "S5",
            Scenario::S6 => "S6",
            Scenario::S7 => "S7",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Scenario::S1 => "master dies (link loss)",
            Scenario::S2 => "VRRP firewalled on the backup",
            Scenario::S3 => "VRID mismatch",
            Scenario::S4 => "master's uplink broken, link up",
            Scenario::S5 => "gateway dies",
            Scenario::S6 => "auth mismatch",
            Scenario::S7 => "30 % loss to the backup",
        }
    }

    /// `S2`, `s2`, or `all`; anything else names the valid choices.
    pub fn parse_list(name: &str) -> Result<Vec<Scenario>, String> {
        if name.eq_ignore_ascii_case("all") {
            return Ok(Scenario::ALL.to_vec());
        }
        Scenario::ALL
            .into_iter()
            .find(|s| s.id().eq_ignore_ascii_case(name))
            .map(|s| vec![s])
            .ok_or_else(|| format!("unknown scenario {name:?}: use S1 … S7 or all"))
    }

    /// The observation window after the fault.
    pub fn window(self) -> Duration {
        match self {
            // Random loss needs a longer look for its rare runs of lost adverts.
            Scenario::S7 => Duration::from_secs(60),
            _ => Duration::from_secs(20),
        }
    }

    /// When the fault is taken away again, if it is (config mistakes stay).
    pub fn heal_after(self) -> Option<Duration> {
        match self {
            Scenario::S1 | Scenario::S2 | Scenario::S4 | Scenario::S5 => {
                Some(Duration::from_secs(12))
            }
            Scenario::S3 | Scenario::S6 | Scenario::S7 => None,
        }
    }

    /// [`Scenario::title`] in `family`: VRRPv3 has no password, so S6 over
    /// IPv6 is the other setting two nodes must agree on.
    pub fn title_in(self, family: Family) -> &'static str {
        match (self, family) {
            (Scenario::S6, Family::Ipv6) => "advert interval mismatch",
            _ => self.title(),
        }
    }

    /// [`Scenario::fault_text`] in `family`.
    pub fn fault_text_in(self, family: Family) -> &'static str {
        match (self, family) {
            (Scenario::S2, Family::Ipv6) => "lb02 drops VRRP (IPv6 next header 112) on input",
            (Scenario::S5, Family::Ipv6) => "gw stops answering ICMPv6 echo",
            (Scenario::S6, Family::Ipv6) => "lb02 starts with advert_interval 2s instead of 1s",
            _ => self.fault_text(),
        }
    }

    /// S3 and S6 are mistakes in lb02's config: lb02 starts with them at the
    /// fault, after lb01 holds the VIP.
    pub fn lb02_at_fault(self) -> bool {
        matches!(self, Scenario::S3 | Scenario::S6)
    }

    /// What an operator would see go wrong, in words.
    pub fn fault_text(self) -> &'static str {
        match self {
            Scenario::S1 => "lb01's eth0 goes down",
            Scenario::S2 => "lb02 drops VRRP (IP protocol 112) on input",
            Scenario::S3 => "lb02 starts with VRID 52 instead of 51",
            Scenario::S4 => "the switch drops every frame to and from lb01; lb01's link stays up",
            Scenario::S5 => "gw stops answering pings",
            Scenario::S6 => "lb02 starts with auth_pass 2222 instead of 1111",
            Scenario::S7 => "the switch drops 30 % of the frames to lb02 at random",
        }
    }

    pub fn heal_text(self) -> &'static str {
        match self {
            Scenario::S1 => "lb01's eth0 comes back",
            Scenario::S2 => "lb02's firewall rule is removed",
            Scenario::S4 => "the switch forwards lb01's frames again",
            Scenario::S5 => "gw answers pings again",
            _ => "",
        }
    }
}

/// `node`'s splitguard config in `scenario` (lb02's carries the S3/S6 mistake;
/// `hook_url`: where alerts go).
pub fn sg_node_config(
    lab: &Lab,
    node: &str,
    imp: Implementation,
    scenario: Option<Scenario>,
    hook_url: &str,
) -> String {
    sg_node_config_in(lab, node, imp, scenario, hook_url, Family::Ipv4)
}

/// [`sg_node_config`] in `family`.
pub fn sg_node_config_in(
    lab: &Lab,
    node: &str,
    imp: Implementation,
    scenario: Option<Scenario>,
    hook_url: &str,
    family: Family,
) -> String {
    let (prio, peer) = if node == "lb01" {
        (150, LB02_ADDR)
    } else {
        (100, LB01_ADDR)
    };
    let extra = format!(
        "{}{}",
        arbiter_table_in(imp, peer, family),
        webhook_tables(hook_url)
    );
    let cfg = sg_config_in(lab, node, prio, 2, "1s", &extra, family);
    let s6 = match family {
        Family::Ipv4 => ("auth_pass = \"1111\"", "auth_pass = \"2222\""),
        Family::Ipv6 => ("advert_interval = \"1s\"", "advert_interval = \"2s\""),
    };
    with_mistake(cfg, node, scenario, ("vrid = 51", "vrid = 52"), s6)
}

/// keepalived's config for `node` in `scenario`.
pub fn ka_node_config(node: &str, scenario: Option<Scenario>) -> String {
    ka_node_config_in(node, scenario, Family::Ipv4)
}

/// [`ka_node_config`] in `family`.
pub fn ka_node_config_in(node: &str, scenario: Option<Scenario>, family: Family) -> String {
    let prio = if node == "lb01" { 150 } else { 100 };
    let cfg = ka_config_in(node, prio, 2, "1", family);
    let s6 = match family {
        Family::Ipv4 => ("auth_pass 1111", "auth_pass 2222"),
        Family::Ipv6 => ("advert_int 1", "advert_int 2"),
    };
    with_mistake(
        cfg,
        node,
        scenario,
        ("virtual_router_id 51", "virtual_router_id 52"),
        s6,
    )
}

/// lb02's `cfg` with the mistake of `scenario` (S3: the VRID, S6: the
/// password, or over IPv6 the advert interval), each given as (right, wrong) in
/// the config's syntax; any other node's or scenario's as it is.
fn with_mistake(
    cfg: String,
    node: &str,
    scenario: Option<Scenario>,
    vrid: (&str, &str),
    s6: (&str, &str),
) -> String {
    if node != "lb02" {
        return cfg;
    }
    match scenario {
        Some(Scenario::S3) => cfg.replace(vrid.0, vrid.1),
        Some(Scenario::S6) => cfg.replace(s6.0, s6.1),
        _ => cfg,
    }
}

/// Puts the network part of `scenario` in place (S3 and S6 are configs).
pub fn apply_fault(lab: &Lab, scenario: Scenario) -> Result<(), LabError> {
    apply_fault_in(lab, scenario, Family::Ipv4)
}

/// [`apply_fault`] in `family`: S5 drops ICMPv6 echo requests on gw (never
/// neighbour discovery); S2's rule matches VRRP in both families.
pub fn apply_fault_in(lab: &Lab, scenario: Scenario, family: Family) -> Result<(), LabError> {
    match scenario {
        Scenario::S1 => {
            lab.run("lb01", &["ip", "link", "set", "eth0", "down"])?;
        }
        Scenario::S2 => lab.nft(Some("lb02"), VRRP_DROP)?,
        Scenario::S4 => {
            let port = lab.host("lb01")?.bridge_port.clone();
            lab.nft(
                None,
                &format!(
                    "table bridge s4 {{\n chain cut {{\n  type filter hook forward priority 0;\n  \
                     iifname \"{port}\" drop\n  oifname \"{port}\" drop\n }}\n}}\n"
                ),
            )?
        }
        Scenario::S5 => lab.nft(
            Some("gw"),
            match family {
                Family::Ipv4 => "table inet s5 {\n chain input {\n  type filter hook input priority 0;\n  icmp type echo-request drop\n }\n}\n",
                Family::Ipv6 => "table inet s5 {\n chain input {\n  type filter hook input priority 0;\n  icmpv6 type echo-request drop\n }\n}\n",
            },
        )?,
        Scenario::S7 => {
            let port = lab.host("lb02")?.bridge_port.clone();
            lab.nft(
                None,
                &format!(
                    "table bridge s7 {{\n chain loss {{\n  type filter hook forward priority 0;\n  \
                     oifname \"{port}\" numgen random mod 100 < 30 drop\n }}\n}}\n"
                ),
            )?
        }
        Scenario::S3 | Scenario::S6 => {}
    }
    Ok(())
}

/// Takes the fault away again (where [`Scenario::heal_after`] says it is).
pub fn heal_fault(lab: &Lab, scenario: Scenario) -> Result<(), LabError> {
    match scenario {
        Scenario::S1 => {
            lab.run("lb01", &["ip", "link", "set", "eth0", "up"])?;
        }
        Scenario::S2 => lab.nft(Some("lb02"), "delete table inet s2\n")?,
        Scenario::S4 => lab.nft(None, "delete table bridge s4\n")?,
        Scenario::S5 => lab.nft(Some("gw"), "delete table inet s5\n")?,
        Scenario::S7 => lab.nft(None, "delete table bridge s7\n")?,
        Scenario::S3 | Scenario::S6 => {}
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("needs root: it creates network namespaces (run it as root, e.g. with sudo)")]
    NotRoot,
    #[error("{program} is not runnable ({why}); install the Debian package `{package}`")]
    Missing {
        program: &'static str,
        package: &'static str,
        why: String,
    },
    #[error("interrupted; every lab was torn down")]
    Interrupted,
    #[error("start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Root and the programs the lab drives.
pub fn check_prerequisites(keepalived: bool) -> Result<(), ScenarioError> {
    // SAFETY: geteuid(2) cannot fail and has no memory effects.
    if unsafe { libc::geteuid() } != 0 {
        return Err(ScenarioError::NotRoot);
    }
    let mut needed = vec![("ip", "iproute2", "-V"), ("nft", "nftables", "--version")];
    if keepalived {
        needed.push(("keepalived", "keepalived", "--version"));
    }
    require_programs(&needed)
}

/// Each (program, Debian package, harmless argument) runs, or the error names
/// the package to install.
pub fn require_programs(
    needed: &[(&'static str, &'static str, &str)],
) -> Result<(), ScenarioError> {
    for &(program, package, arg) in needed {
        std::process::Command::new(program)
            .arg(arg)
            .output()
            .map_err(|e| ScenarioError::Missing {
                program,
                package,
                why: e.to_string(),
            })?;
    }
    Ok(())
}

/// An alert that reached gw during the window.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSeen {
    pub kind: String,
    pub status: String,
    pub node: String,
    pub severity: String,
    /// From the fault to its arrival at gw.
    pub after: Duration,
}

impl AlertSeen {
    /// `split_brain@lb02 +3.4s`, `resolved split_brain@lb02 +12.9s`.
    pub(crate) fn label(&self) -> String {
        let what = if self.status == "firing" {
            self.kind.clone()
        } else {
            format!("{} {}", self.status, self.kind)
        };
        format!("{what}@{} +{:.1}s", self.node, self.after.as_secs_f64())
    }
}

/// What gw saw in one scenario for one implementation.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub dual_s: f64,
    pub zero_s: f64,
    /// How often the set of MACs answering gw changed (see
    /// [`count_owner_changes`]).
    pub owner_changes: usize,
    pub samples: usize,
    /// The first arrival of each (kind, status, node), in arrival order.
    pub alerts: Vec<AlertSeen>,
    /// gw's raw samples and the fault's edges, for `--html` and `--svg`.
    pub timeline: Timeline,
}

/// gw's view of one run in seconds from the fault (which is at 0), so the
/// pictures (`crate::html`) take plain numbers and never an `Instant`.
#[derive(Clone, PartialEq, Default)]
pub struct Timeline {
    /// gw's requests from [`SETTLE`] before the fault to the window's end.
    pub samples: Vec<OwnerAt>,
    /// gw's request period, s: a sample stands for this long.
    pub every_s: f64,
    /// The window the figures count, `[0, window_s)`.
    pub window_s: f64,
    /// When the fault was taken away, s after it (config mistakes stay).
    pub heal_s: Option<f64>,
    /// The lab's nodes and their MACs, to name what answered.
    pub nodes: Vec<NodeMac>,
}

// Hand-written so a failed assertion's `{outcome:?}` stays readable: a
// window's samples are a hundred lines of MACs.
impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline")
            .field("samples", &self.samples.len())
            .field("every_s", &self.every_s)
            .field("window_s", &self.window_s)
            .field("heal_s", &self.heal_s)
            .field("nodes", &self.nodes)
            .finish()
    }
}

/// One request of gw's: when, in seconds from the fault (negative before
/// it), and the MACs that answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerAt {
    pub at_s: f64,
    pub macs: Vec<String>,
}

/// A lab node and its interface's MAC (lowercase, colon-separated, as gw's
/// samples write it).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeMac {
    pub node: String,
    pub mac: String,
}

/// gw's `samples` from `before` ahead of `t0` to `end`, in seconds from `t0`.
pub fn owners_from(
    samples: &[OwnerSample],
    t0: Instant,
    before: Duration,
    end: Instant,
) -> Vec<OwnerAt> {
    samples
        .iter()
        .filter(|s| s.at + before >= t0 && s.at < end)
        .map(|s| OwnerAt {
            at_s: seconds_from(t0, s.at),
            macs: s.macs.iter().cloned().collect(),
        })
        .collect()
}

/// `at - t0` in seconds, negative when `at` is earlier.
fn seconds_from(t0: Instant, at: Instant) -> f64 {
    match at.checked_duration_since(t0) {
        Some(d) => d.as_secs_f64(),
        None => -(t0 - at).as_secs_f64(),
    }
}

/// One row of the table.
#[derive(Debug)]
pub struct RunResult {
    pub scenario: Scenario,
    pub family: Family,
    pub imp: Implementation,
    pub outcome: Result<Outcome, String>,
    /// Every daemon's whole log, for a reader who wants the why.
    pub logs: String,
}

/// What `splitguard lab scenario` was asked to do.
#[derive(Debug, Clone)]
pub struct ScenarioOptions {
    pub scenarios: Vec<Scenario>,
    pub impls: Vec<Implementation>,
    /// The address family VRRP, the arbiter and gw's observer run in.
    pub family: Family,
    /// The splitguard binary the nodes run (normally this very binary).
    pub splitguard: PathBuf,
}

/// Runs every scenario for every implementation, one fresh lab each. `progress`
/// gets a line per step.
pub fn run(
    opts: &ScenarioOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<RunResult>, ScenarioError> {
    check_prerequisites(opts.impls.contains(&Implementation::Keepalived))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ScenarioError::Runtime)?;
    let mut results = Vec::new();
    for &scenario in &opts.scenarios {
        for &imp in &opts.impls {
            if measure::interrupted() {
                return Err(ScenarioError::Interrupted);
            }
            progress(&format!(
                "{} {}{} — {}:",
                scenario.id(),
                scenario.title_in(opts.family),
                family_suffix(opts.family),
                imp.name()
            ));
            let (outcome, logs) = run_one(&rt, opts, scenario, imp, progress);
            if measure::interrupted() || matches!(outcome, Err(RunError::Interrupted)) {
                return Err(ScenarioError::Interrupted);
            }
            let line = match &outcome {
                Ok(o) => format!(
                    "  dual-owner {:.2} s, zero-owner {:.2} s, {} owner change(s); alerts: {}",
                    o.dual_s,
                    o.zero_s,
                    o.owner_changes,
                    alerts_text(&o.alerts)
                ),
                Err(e) => format!("  FAILED: {e}"),
            };
            progress(&line);
            results.push(RunResult {
                scenario,
                family: opts.family,
                imp,
                outcome: outcome.map_err(|e| e.to_string()),
                logs,
            });
        }
    }
    Ok(results)
}

fn start_node(
    lab: &Lab,
    opts: &ScenarioOptions,
    imp: Implementation,
    node: &str,
    scenario: Option<Scenario>,
    hook_url: &str,
) -> Result<LabProcess, LabError> {
    match imp {
        Implementation::Keepalived => {
            configs::start_keepalived(lab, node, &ka_node_config_in(node, scenario, opts.family))
        }
        _ => configs::start_splitguard(
            lab,
            node,
            &opts.splitguard,
            &sg_node_config_in(lab, node, imp, scenario, hook_url, opts.family),
        ),
    }
}

/// Waits until gw sees only lb01 answer for the VIP, lb01's daemon is master and
/// lb02's (when running) is backup; with the arbiter, both see gw.
fn wait_steady(
    rt: &tokio::runtime::Runtime,
    lab: &Lab,
    gw: &GwObserver,
    nodes: &mut Daemons,
    imp: Implementation,
) -> Result<(), RunError> {
    let mac1 = lab.mac_of("lb01")?;
    pair::wait_steady(rt, lab, nodes, imp, || {
        Ok(gw.sees_only(&mac1, SAMPLE_EVERY * 2))
    })
}

/// One run in its own lab: the outcome and every daemon's log.
fn run_one(
    rt: &tokio::runtime::Runtime,
    opts: &ScenarioOptions,
    scenario: Scenario,
    imp: Implementation,
    progress: &mut dyn FnMut(&str),
) -> (Result<Outcome, RunError>, String) {
    let mut logs = String::new();
    let outcome = run_in_lab(rt, opts, scenario, imp, progress, &mut logs);
    (outcome, logs)
}

fn run_in_lab(
    rt: &tokio::runtime::Runtime,
    opts: &ScenarioOptions,
    scenario: Scenario,
    imp: Implementation,
    progress: &mut dyn FnMut(&str),
    logs: &mut String,
) -> Result<Outcome, RunError> {
    let lab = pair_lab_in(scenario.id(), opts.family)?;
    let window = scenario.window();
    let gw = start_gw_observer_in(
        &lab,
        STEADY_BOUND + SETTLE + window + Duration::from_secs(30),
        opts.family,
    )?;
    let url = gw.webhook_url().to_string();
    let lb01 = start_node(&lab, opts, imp, "lb01", Some(scenario), &url)?;
    let lb02 = if scenario.lb02_at_fault() {
        None
    } else {
        Some(start_node(&lab, opts, imp, "lb02", Some(scenario), &url)?)
    };
    let watch = if imp == Implementation::Keepalived {
        let cfg = configs::watch_config_in(&lab, "lb02", "backup", &url, opts.family);
        Some(configs::start_watch(&lab, "lb02", &opts.splitguard, &cfg)?)
    } else {
        None
    };
    let mut nodes = Daemons { lb01, lb02, watch };
    let result = observe(rt, &lab, &gw, &mut nodes, opts, scenario, imp, progress);
    *logs = nodes.logs();
    result.map_err(|e| match e {
        RunError::Interrupted => e,
        e => RunError::Broken(format!("{e}{}", nodes.log_tails())),
    })
}

#[allow(clippy::too_many_arguments)] // one run's whole context, used once
fn observe(
    rt: &tokio::runtime::Runtime,
    lab: &Lab,
    gw: &GwObserver,
    nodes: &mut Daemons,
    opts: &ScenarioOptions,
    scenario: Scenario,
    imp: Implementation,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, RunError> {
    wait_steady(rt, lab, gw, nodes, imp)?;
    progress("  steady: lb01 holds the VIP, gw sees only lb01");
    pause(SETTLE)?;
    let t0 = Instant::now();
    if scenario.lb02_at_fault() {
        nodes.lb02 = Some(start_node(
            lab,
            opts,
            imp,
            "lb02",
            Some(scenario),
            gw.webhook_url(),
        )?);
    } else {
        apply_fault_in(lab, scenario, opts.family)?;
    }
    progress(&format!(
        "  +0.0 s fault: {}",
        scenario.fault_text_in(opts.family)
    ));
    let end = t0 + scenario.window();
    let mut heal_s = None;
    if let Some(after) = scenario.heal_after() {
        pause(after)?;
        heal_fault(lab, scenario)?;
        let healed = t0.elapsed().as_secs_f64();
        heal_s = Some(healed);
        progress(&format!("  +{healed:.1} s heal: {}", scenario.heal_text()));
    }
    pause(end.saturating_duration_since(Instant::now()))?;
    if let Some(e) = gw.error() {
        return Err(RunError::Broken(format!("gw's observer stopped: {e}")));
    }
    let samples = gw.samples();
    let (dual, zero, total) = count_owners(&samples, t0, end);
    let expected = (scenario.window().as_secs_f64() / SAMPLE_EVERY.as_secs_f64()) as usize;
    if total + 4 < expected {
        return Err(RunError::Broken(format!(
            "gw took {total} samples in the window, expected about {expected}"
        )));
    }
    let quarter = SAMPLE_EVERY.as_secs_f64();
    let mut nodes = Vec::new();
    for node in ["lb01", "lb02"] {
        nodes.push(NodeMac {
            node: node.to_owned(),
            mac: lab.mac_of(node)?,
        });
    }
    Ok(Outcome {
        dual_s: dual as f64 * quarter,
        zero_s: zero as f64 * quarter,
        owner_changes: count_owner_changes(&samples, t0, end),
        samples: total,
        alerts: first_alerts(&gw.hooks(), t0, end),
        timeline: Timeline {
            samples: owners_from(&samples, t0, SETTLE, end),
            every_s: quarter,
            window_s: scenario.window().as_secs_f64(),
            heal_s,
            nodes,
        },
    })
}

/// The first arrival of each (kind, status, node) in `[t0, end)`.
pub fn first_alerts(hooks: &[Hook], t0: Instant, end: Instant) -> Vec<AlertSeen> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for h in hooks.iter().filter(|h| h.at >= t0 && h.at < end) {
        let key = (
            h.kind().to_owned(),
            h.status().to_owned(),
            h.node().to_owned(),
        );
        if seen.insert(key, ()).is_none() {
            out.push(AlertSeen {
                kind: h.kind().to_owned(),
                status: h.status().to_owned(),
                node: h.node().to_owned(),
                severity: h.severity().to_owned(),
                after: h.at - t0,
            });
        }
    }
    out
}

/// The pages (firing alerts) in order, then how many resolved notices came.
fn alerts_text(alerts: &[AlertSeen]) -> String {
    let firing: Vec<String> = alerts
        .iter()
        .filter(|a| a.status == "firing")
        .map(AlertSeen::label)
        .collect();
    let resolved = alerts.iter().filter(|a| a.status == "resolved").count();
    match (firing.is_empty(), resolved) {
        (true, 0) => "none".into(),
        (_, 0) => firing.join(", "),
        (true, n) => format!("{n} resolved"),
        (false, n) => format!("{}; {n} resolved", firing.join(", ")),
    }
}

pub(crate) fn impl_label(imp: Implementation) -> &'static str {
    match imp {
        Implementation::Keepalived => "keepalived (+ watch)",
        other => other.name(),
    }
}

/// The table's header, also the HTML report's.
pub(crate) const TABLE_HEADER: [&str; 6] = [
    "scenario",
    "implementation",
    "dual-owner s",
    "zero-owner s",
    "owner changes",
    "pages at gw (kind@node, time after the fault)",
];

/// One result as the table's cells.
pub(crate) fn table_row(r: &RunResult) -> [String; 6] {
    let (dual, zero, changes, alerts) = match &r.outcome {
        Ok(o) => (
            format!("{:.2}", o.dual_s),
            format!("{:.2}", o.zero_s),
            o.owner_changes.to_string(),
            alerts_text(&o.alerts),
        ),
        Err(e) => (
            "—".into(),
            "—".into(),
            "—".into(),
            format!("FAILED: {}", first_line(e)),
        ),
    };
    [
        scenario_label(r.scenario, r.family),
        impl_label(r.imp).to_owned(),
        dual,
        zero,
        changes,
        alerts,
    ]
}

/// `S2 VRRP firewalled on the backup`, with ` (IPv6)` over IPv6.
pub(crate) fn scenario_label(scenario: Scenario, family: Family) -> String {
    format!(
        "{} {}{}",
        scenario.id(),
        scenario.title_in(family),
        family_suffix(family)
    )
}

/// The results as a table, plain text or Markdown.
pub fn render(results: &[RunResult], markdown: bool) -> String {
    let header = TABLE_HEADER;
    let rows: Vec<[String; 6]> = results.iter().map(table_row).collect();
    let mut out = String::new();
    if markdown {
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|---|---|--:|--:|--:|---|");
        for r in &rows {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
    } else {
        let widths: Vec<usize> = (0..5)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: [&str; 6]| {
            format!(
                "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                cells[5],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4]
            )
        };
        let _ = writeln!(out, "{}", line(header));
        for r in &rows {
            let _ = writeln!(
                out,
                "{}",
                line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]).trim_end()
            );
        }
    }
    let _ = writeln!(out, "\n{}", table_note(results));
    out
}

/// What the table's figures mean, one paragraph.
pub(crate) fn table_note(results: &[RunResult]) -> String {
    let ipv6 = results.iter().any(|r| r.family == Family::Ipv6);
    format!(
        "Window: 20 s after the fault (S7: 60 s); S1, S2, S4 and S5 heal at +12 s. \
         gw ({GW_ADDR}{}) asks who has the VIP every 250 ms{}; a request answered by two MACs \
         counts 0.25 dual-owner seconds, one answered by none 0.25 zero-owner seconds; \
         an owner change is a request answered by another set of MACs than the last \
         answered one (a claim shorter than 250 ms can fall between two). \
         Pages: the first firing alert of each kind from each node, with its arrival at gw \
         after the fault; resolved notices are counted. keepalived has no alerts of its \
         own; its alerts come from `splitguard watch` on lb02.",
        if ipv6 {
            format!(", {}", addr_in(GW_ADDR, Family::Ipv6))
        } else {
            String::new()
        },
        if ipv6 {
            " (IPv6 rows: by neighbour solicitation for 2001:db8::3, VRRPv3 over IPv6; \
             S6 there is an advert interval mismatch, VRRPv3 having no password)"
        } else {
            ""
        }
    )
}

/// " (IPv6)" after an IPv6 row's title.
fn family_suffix(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "",
        Family::Ipv6 => " (IPv6)",
    }
}

pub(crate) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Whether any run failed.
pub fn any_failed(results: &[RunResult]) -> bool {
    results.iter().any(|r| r.outcome.is_err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_parse_and_bad_ones_name_the_choices() {
        assert_eq!(Scenario::parse_list("s2").unwrap(), vec![Scenario::S2]);
        assert_eq!(Scenario::parse_list("S7").unwrap(), vec![Scenario::S7]);
        assert_eq!(Scenario::parse_list("ALL").unwrap().len(), 7);
        let e = Scenario::parse_list("S8").unwrap_err();
        assert!(e.contains("S8") && e.contains("S1 … S7 or all"), "{e}");
    }

    #[test]
    fn config_mistakes_are_only_in_lb02s_config() {
        let ka = ka_node_config("lb02", Some(Scenario::S3));
        assert!(ka.contains("virtual_router_id 52"), "{ka}");
        let ka = ka_node_config("lb01", Some(Scenario::S3));
        assert!(ka.contains("virtual_router_id 51"), "{ka}");
        let ka = ka_node_config("lb02", Some(Scenario::S6));
        assert!(ka.contains("auth_pass 2222"), "{ka}");
        assert!(ka_node_config("lb02", Some(Scenario::S2)).contains("auth_pass 1111"));
    }

    #[test]
    fn first_alerts_keep_one_per_kind_status_and_node_in_the_window() {
        let t0 = Instant::now();
        let hook = |ms: u64, kind: &str, status: &str, node: &str| Hook {
            at: t0 + Duration::from_millis(ms),
            body: serde_json::json!({"kind": kind, "status": status, "node": node, "severity": "critical"}),
        };
        let hooks = vec![
            hook(100, "claim_withheld", "firing", "lb02"),
            hook(900, "claim_withheld", "firing", "lb02"),
            hook(1200, "claim_withheld", "resolved", "lb02"),
            hook(1500, "split_brain", "firing", "lb01"),
            hook(30_000, "failover", "firing", "lb02"),
        ];
        let a = first_alerts(&hooks, t0, t0 + Duration::from_secs(20));
        let labels: Vec<String> = a.iter().map(AlertSeen::label).collect();
        assert_eq!(
            labels,
            vec![
                "claim_withheld@lb02 +0.1s",
                "resolved claim_withheld@lb02 +1.2s",
                "split_brain@lb01 +1.5s"
            ]
        );
        assert_eq!(
            alerts_text(&a),
            "claim_withheld@lb02 +0.1s, split_brain@lb01 +1.5s; 1 resolved"
        );
        assert_eq!(alerts_text(&[]), "none");
    }

    #[test]
    fn owners_are_kept_from_before_the_fault_in_seconds_from_it() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let ms = Duration::from_millis;
        let at = |t: Instant, macs: &[&str]| OwnerSample {
            at: t,
            macs: macs.iter().map(|m| m.to_string()).collect(),
        };
        let samples = vec![
            at(t0 - ms(3000), &["a"]),
            at(t0 - ms(1500), &["a"]),
            at(t0 + ms(250), &["a", "b"]),
            at(t0 + ms(20_000), &[]),
        ];
        let kept = owners_from(&samples, t0, ms(2000), t0 + ms(20_000));
        assert_eq!(
            kept,
            vec![
                OwnerAt {
                    at_s: -1.5,
                    macs: vec!["a".into()]
                },
                OwnerAt {
                    at_s: 0.25,
                    macs: vec!["a".into(), "b".into()]
                },
            ]
        );
    }

    #[test]
    fn the_table_shows_figures_alerts_and_failures() {
        let results = vec![
            RunResult {
                scenario: Scenario::S2,
                family: Family::Ipv4,
                imp: Implementation::Splitguard,
                outcome: Ok(Outcome {
                    dual_s: 0.0,
                    zero_s: 0.0,
                    owner_changes: 0,
                    samples: 80,
                    alerts: vec![AlertSeen {
                        kind: "claim_withheld".into(),
                        status: "firing".into(),
                        node: "lb02".into(),
                        severity: "critical".into(),
                        after: Duration::from_millis(3900),
                    }],
                    timeline: Timeline::default(),
                }),
                logs: String::new(),
            },
            RunResult {
                scenario: Scenario::S2,
                family: Family::Ipv4,
                imp: Implementation::Keepalived,
                outcome: Err("the pair did not settle\nmore".into()),
                logs: String::new(),
            },
            RunResult {
                scenario: Scenario::S6,
                family: Family::Ipv6,
                imp: Implementation::Splitguard,
                outcome: Err("skipped".into()),
                logs: String::new(),
            },
        ];
        let md = render(&results, true);
        assert!(
            md.contains("| S2 VRRP firewalled on the backup | splitguard | 0.00 | 0.00 | 0 | claim_withheld@lb02 +3.9s |"),
            "{md}"
        );
        assert!(
            md.contains("| keepalived (+ watch) | — | — | — | FAILED: the pair did not settle |"),
            "{md}"
        );
        assert!(
            md.contains("| S6 advert interval mismatch (IPv6) | splitguard |"),
            "{md}"
        );
        assert!(md.contains("gw (192.0.2.254, 2001:db8::fe)"), "{md}");
        assert!(
            !render(&results[..1], true).contains("2001:db8"),
            "IPv4 only"
        );
        let text = render(&results, false);
        assert!(
            text.lines().next().unwrap().starts_with("scenario"),
            "{text}"
        );
        assert!(any_failed(&results));
    }
}
