//! The standard pair at run time, as `bench`, `scenario`, `demo` and `soak`
//! drive it: gw's observer on the pair's VIP and webhook port, the daemons of
//! one run, whether each daemon is ready, waiting for the steady state (lb01
//! master with the VIP, lb02 backup), and why one run gave no figures. The
//! pair's addresses and configs are in `configs`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::configs::{self, Family, LB01_ADDR, VIP_ADDR, VIP6_ADDR};
use super::gw::{GwError, GwObserver, GwOptions};
use super::measure::{self, MeasureError};
use super::netns::{Lab, LabError};
use super::process::LabProcess;
use super::report::Implementation;
use splitguard_node::status::{Status, state};

/// How often gw asks who holds the VIP.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// The webhook port on gw.
pub const HOOK_PORT: u16 = 8080;
/// Longest wait for a freshly started pair to settle (lb01 master, lb02 backup).
pub const STEADY_BOUND: Duration = Duration::from_secs(30);
/// How often readiness is checked.
const POLL: Duration = Duration::from_millis(100);

/// Starts gw's observer: ARP who-has for the VIP every [`SAMPLE_EVERY`] and a
/// webhook receiver on [`HOOK_PORT`], for at most `limit`.
pub fn start_gw_observer(lab: &Lab, limit: Duration) -> Result<GwObserver, GwError> {
    start_gw_observer_in(lab, limit, Family::Ipv4)
}

/// [`start_gw_observer`] for the pair's VIP in `family` (IPv6: neighbour
/// solicitations from gw's 2001:db8::fe).
pub fn start_gw_observer_in(
    lab: &Lab,
    limit: Duration,
    family: Family,
) -> Result<GwObserver, GwError> {
    GwObserver::start(
        lab,
        "gw",
        GwOptions {
            vip: match family {
                Family::Ipv4 => IpAddr::V4(VIP_ADDR),
                Family::Ipv6 => IpAddr::V6(VIP6_ADDR),
            },
            port: HOOK_PORT,
            every: SAMPLE_EVERY,
            limit,
        },
    )
}

/// Why one run gave no figures (bench: it is counted as failed and the bench
/// goes on; scenario: its row says FAILED).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Measure(#[from] MeasureError),
    #[error(transparent)]
    Gw(#[from] GwError),
    #[error("the pair did not settle within {within:?}: {detail}")]
    NotSteady { within: Duration, detail: String },
    #[error("{0}")]
    Broken(String),
    #[error("interrupted")]
    Interrupted,
}

impl RunError {
    /// Whether the run stopped because the user interrupted it.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            RunError::Interrupted | RunError::Measure(MeasureError::Interrupted)
        )
    }
}

/// Sleeps `d`; [`RunError::Interrupted`] when interrupted meanwhile.
pub fn pause(d: Duration) -> Result<(), RunError> {
    measure::pause(d, RunError::Interrupted)
}

/// The daemons of one run (stopped when the lab goes).
pub struct Daemons {
    pub lb01: LabProcess,
    /// None until it is started (a scenario whose fault is lb02's config).
    pub lb02: Option<LabProcess>,
    /// `splitguard watch` on lb02 beside keepalived.
    pub watch: Option<LabProcess>,
}

impl Daemons {
    pub fn all(&self) -> Vec<&LabProcess> {
        let mut v = vec![&self.lb01];
        v.extend(self.lb02.as_ref());
        v.extend(self.watch.as_ref());
        v
    }

    /// Every daemon's whole log.
    pub fn logs(&self) -> String {
        self.all()
            .iter()
            .map(|p| format!("----- {} -----\n{}", p.name, p.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last lines of every log, for a failure report.
    pub fn log_tails(&self) -> String {
        self.all().iter().map(|p| p.log_tail(8)).collect()
    }

    /// SIGKILL all (the lab is about to go; no need to wait for a clean stop).
    pub fn kill(&mut self) {
        self.lb01.kill();
        if let Some(p) = &mut self.lb02 {
            p.kill();
        }
        if let Some(w) = &mut self.watch {
            w.kill();
        }
    }
}

/// Waits until lb01's daemon is master, lb02's (when running) is backup — with
/// the arbiter, both see gw — the watch (when running) answers, and `placed`
/// says the VIP is where it should be (its `Err` text says where it is instead;
/// it is asked on every round).
pub fn wait_steady(
    rt: &tokio::runtime::Runtime,
    lab: &Lab,
    daemons: &mut Daemons,
    imp: Implementation,
    mut placed: impl FnMut() -> Result<Result<(), String>, RunError>,
) -> Result<(), RunError> {
    let deadline = Instant::now() + STEADY_BOUND;
    loop {
        if measure::interrupted() {
            return Err(RunError::Interrupted);
        }
        let mut procs = vec![&mut daemons.lb01];
        procs.extend(daemons.lb02.as_mut());
        procs.extend(daemons.watch.as_mut());
        for p in procs {
            if let Some(status) = p.try_exit() {
                return Err(RunError::Broken(format!(
                    "{} exited during start-up ({status})",
                    p.name
                )));
            }
        }
        let mut ready = node_ready(rt, lab, imp, &daemons.lb01, "lb01", state::MASTER);
        if ready.is_ok()
            && let Some(lb02) = &daemons.lb02
        {
            ready = node_ready(rt, lab, imp, lb02, "lb02", state::BACKUP);
        }
        if ready.is_ok() && daemons.watch.is_some() {
            ready = watch_ready(rt, lab, "lb02");
        }
        let placed = placed()?;
        let last = match ready.and(placed) {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(RunError::NotSteady {
                within: STEADY_BOUND,
                detail: last,
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Whether the daemon `p` of `imp` on `node` is in `want` (see
/// [`keepalived_node_ready`] and [`splitguard_node_ready`]; only the arbiter
/// flavour is asked whether it sees its reference).
fn node_ready(
    rt: &tokio::runtime::Runtime,
    lab: &Lab,
    imp: Implementation,
    p: &LabProcess,
    node: &str,
    want: &str,
) -> Result<(), String> {
    match imp {
        Implementation::Keepalived => keepalived_node_ready(p, want),
        _ => splitguard_node_ready(rt, lab, node, want, imp.has_arbiter()),
    }
}

/// Whether keepalived `p` has logged entering `want` (MASTER or BACKUP).
pub fn keepalived_node_ready(p: &LabProcess, want: &str) -> Result<(), String> {
    let line = format!("Entering {} STATE", want.to_ascii_uppercase());
    if p.log_text().contains(&line) {
        Ok(())
    } else {
        Err(format!("{} is not {want} yet", p.name))
    }
}

/// Whether `splitguard watch` on `node` answers on its control socket.
pub fn watch_ready(rt: &tokio::runtime::Runtime, lab: &Lab, node: &str) -> Result<(), String> {
    rt.block_on(splitguard_node::control::client::status(
        configs::watch_socket(lab, node),
        Duration::from_secs(2),
    ))
    .map(|_| ())
    .map_err(|e| format!("the watch on {node}: {e}"))
}

/// Asks `node`'s daemon: is its instance in `want` (a master with its VIP, a
/// backup that has heard lb01), and with `arbiter`, does it see its reference?
pub fn splitguard_node_ready(
    rt: &tokio::runtime::Runtime,
    lab: &Lab,
    node: &str,
    want: &str,
    arbiter: bool,
) -> Result<(), String> {
    let s: Status = rt
        .block_on(splitguard_node::control::client::status(
            configs::sg_socket(lab, node),
            Duration::from_secs(2),
        ))
        .map_err(|e| format!("{node}: {e}"))?;
    let inst = s
        .instances
        .first()
        .ok_or_else(|| format!("{node}: no instance in status"))?;
    if inst.state != want {
        return Err(format!("{node} is {}, not {want} yet", inst.state));
    }
    if want == state::MASTER && !inst.vips_held {
        return Err(format!("{node} is master without its VIP yet"));
    }
    // lb01 as VRRP names it: its IPv4 address, or its IPv6 link-local.
    let lb01 = [Family::Ipv4, Family::Ipv6].map(|f| Some(configs::vrrp_addr_in(LB01_ADDR, f)));
    if want == state::BACKUP && !lb01.contains(&inst.master) {
        return Err(format!("{node} has not heard lb01 yet"));
    }
    let a = &s.arbiter;
    if arbiter
        && (a.isolated || a.references.is_empty() || a.references.iter().any(|r| !r.reachable))
    {
        return Err(format!("{node}'s arbiter does not see its reference yet"));
    }
    Ok(())
}
