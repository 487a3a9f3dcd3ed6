//! `splitguard lab bench`: splitguard (arbiter on and off) against keepalived 2.2.7,
//! each run in a fresh pair lab (lb01 150, lb02 100, gw; VIP 192.0.2.3/24), the
//! implementations alternating run by run so drift hits all alike. It owns the
//! schedule, starting a pair, the faults (lb01's link down; SIGTERM to lb01's
//! daemon), the idle window and the flood (a fourth host sends VRRP garbage
//! with `flood`; gw's tcpdump times the master's adverts); waiting for the
//! steady pair and gw's observer are in `pair`, timing, /proc sampling and
//! advert gaps in `measure`, statistics and tables in `report`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::configs::{self, Family, LB01_ADDR, LB02_ADDR, VIP_ADDR, webhook_tables};
use super::flood::{FloodSpec, flood};
use super::gw::{GwObserver, GwOptions, OwnerSample, count_owners};
use super::measure::{self, AddressWatch, Align};
use super::netns::{Lab, LabError};
use super::pair::{self, Daemons, RunError, STEADY_BOUND, start_gw_observer};
use super::process::LabProcess;
use super::report::{
    FLOOD_RATE, FLOOD_WINDOW_SECS, FREEZE_SECS, Flavour, FloodMetric, Implementation,
    KILL_WINDOW_SECS, Measurement, Report,
};
use super::scenario::{Scenario, apply_fault};

/// Longest wait for the VIP to move after a fault.
pub const FAILOVER_BOUND: Duration = Duration::from_secs(30);
/// After the pair is steady: the takeover's gratuitous ARP bursts are over and
/// lb02 has heard a few adverts.
const SETTLE: Duration = Duration::from_secs(1);
/// Before the idle window: start-up work is over.
const IDLE_SETTLE: Duration = Duration::from_secs(2);
/// Longest wait for the alert after the second owner appeared.
const ALERT_BOUND: Duration = Duration::from_secs(10);
/// Random-phase failovers per implementation and round: `--runs 5` gives 10.
pub const RANDOM_REPEATS: u32 = 2;
/// How often gw asks who holds the VIP while timing two owners (kill, freeze).
const OWNER_SAMPLE: Duration = Duration::from_millis(20);
/// After a frozen master resumes, how long gw keeps watching.
const AFTER_FREEZE: Duration = Duration::from_secs(5);
/// Longest wait for gw's tcpdump to say it is capturing.
const CAPTURE_READY: Duration = Duration::from_secs(5);
/// After the last window: the capture's last packets are read before it stops.
const CAPTURE_DRAIN: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("needs root: it creates network namespaces (run it as root or with sudo)")]
    NotRoot,
    #[error("keepalived is not runnable ({0}); install the Debian package `keepalived`")]
    NoKeepalived(String),
    #[error("interrupted; every lab was torn down")]
    Interrupted,
    #[error("start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("--instances: {0}")]
    Instances(String),
}

/// What `splitguard lab bench` was asked to do.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Runs per implementation and case.
    pub runs: u32,
    /// The idle window.
    pub idle: Duration,
    /// Only the v3/100 ms cases (the idle pair too), for CI.
    pub quick: bool,
    /// The IPv6 cases ([`cases`]) instead.
    pub ipv6: bool,
    /// The splitguard binary the pairs run (normally this very binary).
    pub splitguard: PathBuf,
}

/// One kind of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Failover(Flavour),
    /// Link loss at a random phase of the advert cycle, [`RANDOM_REPEATS`]
    /// times a round (the issue asks for ≥ 10 runs, median and maximum).
    FailoverRandom(Flavour),
    /// SIGKILL to lb01's daemon (every process of it): gw watches the owners.
    Kill(Flavour),
    /// lb01 frozen like a paused VM past the failover time, then resumed.
    Freeze(Flavour),
    Handover(Flavour),
    Idle(Flavour),
    /// S2 on lb02 and the alert's way to gw (a second owner must appear, so
    /// not for the arbiter-on flavour, which withholds the claim).
    Detection(Flavour),
    /// `check vip` on the backup: through the daemon's socket (splitguard), by
    /// its own ARP probe beside keepalived.
    CheckVip(Flavour),
    /// A fourth host floods the pair with VRRP garbage (issue 19): the
    /// master's CPU and RSS before, during and after, its adverts' gaps at gw,
    /// and the backup's adverts (a spurious takeover). IPv4 flavours only.
    Flood(Flavour),
}

impl Case {
    pub fn label(self) -> String {
        match self {
            Case::Failover(f) => format!("failover {}", f.label()),
            Case::FailoverRandom(f) => format!("failover@rand {}", f.label()),
            Case::Kill(f) => format!("kill {}", f.label()),
            Case::Freeze(f) => format!("freeze {}", f.label()),
            Case::Handover(f) => format!("handover {}", f.label()),
            Case::Idle(f) => format!("idle {}", f.label()),
            Case::Detection(f) => format!("detection {}", f.label()),
            Case::CheckVip(f) => format!("check vip {}", f.label()),
            Case::Flood(f) => format!("flood {}", f.label()),
        }
    }

    /// The one table row a timed case fills (none for idle and the flood, which
    /// fill [`idle_rows`] and [`flood_rows`]).
    fn timed_row(self) -> Option<Measurement> {
        match self {
            Case::Failover(f) => Some(Measurement::Failover(f)),
            Case::FailoverRandom(f) => Some(Measurement::FailoverRandom(f)),
            Case::Kill(f) => Some(Measurement::KillDual(f)),
            Case::Freeze(f) => Some(Measurement::FreezeDual(f)),
            Case::Handover(f) => Some(Measurement::Handover(f)),
            Case::Detection(f) => Some(Measurement::Detection(f)),
            Case::CheckVip(f) => Some(Measurement::CheckVip(f)),
            Case::Idle(_) | Case::Flood(_) => None,
        }
    }

    fn flavour(self) -> Flavour {
        match self {
            Case::Failover(f)
            | Case::FailoverRandom(f)
            | Case::Kill(f)
            | Case::Freeze(f)
            | Case::Handover(f)
            | Case::Idle(f)
            | Case::Detection(f)
            | Case::CheckVip(f)
            | Case::Flood(f) => f,
        }
    }

    /// Who runs this case. Detection: splitguard with the arbiter off (its
    /// embedded watcher) and keepalived with `splitguard watch` beside it.
    /// check vip: splitguard's daemon answers it; beside keepalived it probes.
    /// Early takeover's before and after (splitguard-noearly) where it can
    /// differ: failover and the idle pair's cost; the kill and the freeze
    /// compare splitguard as it ships with keepalived, and so does the flood.
    pub fn implementations(self) -> &'static [Implementation] {
        use Implementation::{Keepalived, Splitguard, SplitguardNoArb};
        match self {
            Case::Detection(_) => &[SplitguardNoArb, Keepalived],
            Case::CheckVip(_) | Case::Kill(_) | Case::Freeze(_) | Case::Flood(_) => {
                &[Splitguard, Keepalived]
            }
            Case::Handover(_) => &[Splitguard, SplitguardNoArb, Keepalived],
            Case::Failover(_) | Case::FailoverRandom(_) | Case::Idle(_) => &Implementation::ALL,
        }
    }

    /// Runs per implementation and round.
    pub fn repeats(self) -> u32 {
        match self {
            Case::FailoverRandom(_) => RANDOM_REPEATS,
            _ => 1,
        }
    }
}

/// The cases of one round, in order; `quick` keeps the v3/100 ms ones (the
/// flood too: 100 ms adverts are the sternest test of "no missed interval");
/// `ipv6` runs the failovers, the handover and the idle pair over IPv6 (VRRPv3
/// at 1 s and at 100 ms) instead (the flood is IPv4 only).
pub fn cases(quick: bool, ipv6: bool) -> Vec<Case> {
    if ipv6 {
        let (slow, fast) = (Flavour::V3OneSecondIpv6, Flavour::V3HundredMsIpv6);
        let mut v = vec![
            Case::Failover(fast),
            Case::FailoverRandom(fast),
            Case::Handover(fast),
            Case::Idle(fast),
        ];
        if !quick {
            v.splice(
                0..0,
                [
                    Case::Failover(slow),
                    Case::FailoverRandom(slow),
                    Case::Handover(slow),
                ],
            );
        }
        return v;
    }
    if quick {
        let f = Flavour::V3HundredMs;
        vec![
            Case::Failover(f),
            Case::FailoverRandom(f),
            Case::Handover(f),
            Case::Idle(f),
            Case::Detection(f),
            Case::CheckVip(f),
            Case::Flood(f),
        ]
    } else {
        let (v2, v3) = (Flavour::V2OneSecond, Flavour::V3HundredMs);
        vec![
            Case::Failover(v2),
            Case::FailoverRandom(v2),
            Case::Handover(v2),
            Case::Failover(v3),
            Case::FailoverRandom(v3),
            Case::Handover(v3),
            Case::Kill(v2),
            Case::Freeze(v2),
            Case::Idle(v2),
            Case::Detection(v2),
            Case::CheckVip(v2),
            Case::Flood(v2),
            Case::Flood(v3),
        ]
    }
}

/// The table rows the cases fill.
pub fn rows(cases: &[Case]) -> Vec<Measurement> {
    cases
        .iter()
        .flat_map(|c| match (c, c.timed_row()) {
            (_, Some(m)) => vec![m],
            (Case::Flood(f), None) => flood_rows(*f).to_vec(),
            (_, None) => idle_rows(c.flavour()).to_vec(),
        })
        .collect()
}

/// The rows a flood case fills, one per [`FloodMetric`].
fn flood_rows(f: Flavour) -> [Measurement; 7] {
    FloodMetric::ALL.map(|metric| Measurement::Flood { flavour: f, metric })
}

/// The rows an idle case fills: the master's CPU twice (utime+stime,
/// schedstat) and RSS, the backup's CPU, and the packet rate.
fn idle_rows(f: Flavour) -> [Measurement; 5] {
    [
        Measurement::IdleCpu(f),
        Measurement::IdleCpuSched(f),
        Measurement::IdleRss(f),
        Measurement::IdleCpuBackup(f),
        Measurement::IdlePps(f),
    ]
}

pub(crate) fn version(f: Flavour) -> u8 {
    match f {
        Flavour::V2OneSecond => 2,
        Flavour::V3HundredMs | Flavour::V3OneSecondIpv6 | Flavour::V3HundredMsIpv6 => 3,
    }
}

pub(crate) fn advert_interval(f: Flavour) -> Duration {
    match f {
        Flavour::V2OneSecond | Flavour::V3OneSecondIpv6 => Duration::from_secs(1),
        Flavour::V3HundredMs | Flavour::V3HundredMsIpv6 => Duration::from_millis(100),
    }
}

/// The advert interval in splitguard's syntax and in keepalived's.
pub(crate) fn intervals(f: Flavour) -> (&'static str, &'static str) {
    match f {
        Flavour::V2OneSecond | Flavour::V3OneSecondIpv6 => ("1s", "1"),
        Flavour::V3HundredMs | Flavour::V3HundredMsIpv6 => ("100ms", "0.1"),
    }
}

/// The measurements of one successful run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// A time in ms: fault to VIP on lb02, VIP on lb02 to alert at gw, or a
    /// check's wall time.
    Ms(f64),
    /// The master over the idle window: CPU from utime+stime, CPU from schedstat
    /// (None where the kernel has none), RSS at the end; the backup's CPU
    /// (schedstat) and the packets both nodes sent a second.
    Idle {
        cpu_percent: f64,
        cpu_sched_percent: Option<f64>,
        rss_mib: f64,
        backup_sched_percent: Option<f64>,
        pps: f64,
    },
    /// The flood case: the master's CPU (schedstat; None where the kernel has
    /// none) before, during and after, its RSS growth, its adverts' timing at
    /// gw over the flood, the backup's adverts, and what the flood sent.
    Flood {
        cpu_percent: [Option<f64>; 3],
        rss_growth_mib: f64,
        adverts: measure::AdvertTiming,
        backup_adverts: u64,
        sent_per_sec: f64,
        refused: u64,
    },
}

/// What the bench needs before it starts: root, and keepalived on PATH.
pub fn check_prerequisites() -> Result<(), BenchError> {
    // SAFETY: geteuid(2) cannot fail and has no memory effects.
    if unsafe { libc::geteuid() } != 0 {
        return Err(BenchError::NotRoot);
    }
    std::process::Command::new("keepalived")
        .arg("--version")
        .output()
        .map_err(|e| BenchError::NoKeepalived(e.to_string()))?;
    Ok(())
}

/// Runs the whole bench: `runs` rounds; in each, every case, and for each case
/// the implementations in turn. `progress` gets one line per run.
pub fn run(opts: &BenchOptions, progress: &mut dyn FnMut(&str)) -> Result<Report, BenchError> {
    check_prerequisites()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let cases = cases(opts.quick, opts.ipv6);
    let mut report = Report::new(rows(&cases), opts.runs);
    let total = opts.runs as usize
        * cases
            .iter()
            .map(|c| c.implementations().len() * c.repeats() as usize)
            .sum::<usize>();
    let mut done = 0;
    for round in 1..=opts.runs {
        for case in &cases {
            for (imp, _) in (0..case.repeats())
                .flat_map(|r| case.implementations().iter().map(move |&imp| (imp, r)))
            {
                if measure::interrupted() {
                    return Err(BenchError::Interrupted);
                }
                done += 1;
                let started = Instant::now();
                let result = run_once(&rt, opts, *case, imp);
                let took = started.elapsed().as_secs_f64();
                let what = match &result {
                    Ok(Outcome::Ms(ms)) => format!("{ms:.1} ms"),
                    Ok(Outcome::Idle {
                        cpu_percent,
                        cpu_sched_percent,
                        rss_mib,
                        backup_sched_percent,
                        pps,
                    }) => format!(
                        "CPU {cpu_percent:.3} % (schedstat {}), RSS {rss_mib:.1} MiB, \
                         backup {}, {pps:.1} packets/s",
                        cpu_sched_percent.map_or("n/a".into(), |c| format!("{c:.4} %")),
                        backup_sched_percent.map_or("n/a".into(), |c| format!("{c:.4} %"))
                    ),
                    Ok(Outcome::Flood {
                        cpu_percent,
                        rss_growth_mib,
                        adverts,
                        backup_adverts,
                        sent_per_sec,
                        refused,
                    }) => format!(
                        "CPU {} % (before/during/after), RSS {rss_growth_mib:+.2} MiB, \
                         adverts: longest gap {:.1} ms, p95 jitter {:.1} ms over {} gaps, \
                         {backup_adverts} from the backup; flood {sent_per_sec:.0} frames/s \
                         ({refused} refused)",
                        cpu_percent
                            .map(|c| c.map_or("n/a".into(), |c| format!("{c:.3}")))
                            .join("/"),
                        adverts.max_gap_ms,
                        adverts.jitter_p95_ms,
                        adverts.gaps
                    ),
                    Err(e) if e.is_interrupted() => "interrupted".to_string(),
                    Err(e) => format!("FAILED: {e}"),
                };
                progress(&format!(
                    "[{done:>3}/{total}] {:<18} {:<16} run {round}/{}: {what} ({took:.1} s)",
                    case.label(),
                    imp.name(),
                    opts.runs
                ));
                if result.as_ref().is_err_and(RunError::is_interrupted) || measure::interrupted() {
                    return Err(BenchError::Interrupted);
                }
                record(&mut report, *case, imp, result);
            }
        }
    }
    Ok(report)
}

fn record(report: &mut Report, case: Case, imp: Implementation, result: Result<Outcome, RunError>) {
    // Only the first line: a failure's detail (daemon logs) went to progress.
    let why = |e: &RunError| e.to_string().lines().next().unwrap_or_default().to_string();
    match (case, result) {
        (
            Case::Idle(f),
            Ok(Outcome::Idle {
                cpu_percent,
                cpu_sched_percent,
                rss_mib,
                backup_sched_percent,
                pps,
            }),
        ) => {
            let sched =
                |p: Option<f64>| p.ok_or_else(|| "no schedstat run times on this kernel".into());
            report.record(Measurement::IdleCpu(f), imp, Ok(cpu_percent));
            report.record(Measurement::IdleCpuSched(f), imp, sched(cpu_sched_percent));
            report.record(Measurement::IdleRss(f), imp, Ok(rss_mib));
            report.record(
                Measurement::IdleCpuBackup(f),
                imp,
                sched(backup_sched_percent),
            );
            report.record(Measurement::IdlePps(f), imp, Ok(pps));
        }
        (Case::Idle(f), other) => {
            let e = match other {
                Err(e) => why(&e),
                Ok(o) => format!("unexpected outcome {o:?}"),
            };
            for m in idle_rows(f) {
                report.record(m, imp, Err(e.clone()));
            }
        }
        (
            Case::Flood(f),
            Ok(Outcome::Flood {
                cpu_percent: [before, during, after],
                rss_growth_mib,
                adverts,
                backup_adverts,
                ..
            }),
        ) => {
            let sched =
                |p: Option<f64>| p.ok_or_else(|| "no schedstat run times on this kernel".into());
            let row = |metric| Measurement::Flood { flavour: f, metric };
            report.record(row(FloodMetric::CpuBefore), imp, sched(before));
            report.record(row(FloodMetric::CpuDuring), imp, sched(during));
            report.record(row(FloodMetric::CpuAfter), imp, sched(after));
            report.record(row(FloodMetric::RssGrowth), imp, Ok(rss_growth_mib));
            report.record(row(FloodMetric::AdvertMaxGap), imp, Ok(adverts.max_gap_ms));
            report.record(
                row(FloodMetric::AdvertJitter),
                imp,
                Ok(adverts.jitter_p95_ms),
            );
            report.record(
                row(FloodMetric::BackupAdverts),
                imp,
                Ok(backup_adverts as f64),
            );
        }
        (Case::Flood(f), other) => {
            let e = match other {
                Err(e) => why(&e),
                Ok(o) => format!("unexpected outcome {o:?}"),
            };
            for m in flood_rows(f) {
                report.record(m, imp, Err(e.clone()));
            }
        }
        (timed, r) => {
            if let Some(m) = timed.timed_row() {
                report.record(m, imp, r.map(moved_ms).map_err(|e| why(&e)));
            }
        }
    }
}

fn moved_ms(o: Outcome) -> f64 {
    match o {
        Outcome::Ms(ms) => ms,
        Outcome::Idle { .. } | Outcome::Flood { .. } => f64::NAN,
    }
}

/// One run in its own lab; the lab (and the daemons in it) go when this returns,
/// whatever happened.
fn run_once(
    rt: &tokio::runtime::Runtime,
    opts: &BenchOptions,
    case: Case,
    imp: Implementation,
) -> Result<Outcome, RunError> {
    let lab = match case {
        // The hostile host's fourth namespace (IPv4 only).
        Case::Flood(_) => configs::flood_lab("bench")?,
        _ => configs::pair_lab_in("bench", case.flavour().family())?,
    };
    // Detection needs gw's webhook receiver (and its clock); the kill and the
    // freeze its owner samples, finer than the scenarios' 250 ms.
    let limit = STEADY_BOUND + FAILOVER_BOUND + ALERT_BOUND + Duration::from_secs(30);
    let gw = match case {
        Case::Detection(_) => Some(start_gw_observer(&lab, limit)?),
        Case::Kill(_) | Case::Freeze(_) => Some(GwObserver::start(
            &lab,
            "gw",
            GwOptions {
                vip: VIP_ADDR.into(),
                port: pair::HOOK_PORT,
                every: OWNER_SAMPLE,
                limit,
            },
        )?),
        _ => None,
    };
    let hook = match case {
        Case::Detection(_) => gw.as_ref().map(|g| g.webhook_url().to_owned()),
        _ => None,
    };
    let mut daemons = start_pair(&lab, opts, imp, case.flavour(), hook.as_deref())?;
    let result = measure_pair(rt, &lab, &mut daemons, opts, case, imp, gw.as_ref());
    let result = result.map_err(|e| match e {
        e if e.is_interrupted() => e,
        e => RunError::Broken(format!("{e}{}", daemons.log_tails())),
    });
    daemons.kill();
    drop(daemons);
    drop(lab);
    result
}

/// Starts the pair; with `hook`, alerts go there: splitguard's own, or those of
/// a `splitguard watch` started on lb02 beside keepalived.
fn start_pair(
    lab: &Lab,
    opts: &BenchOptions,
    imp: Implementation,
    f: Flavour,
    hook: Option<&str>,
) -> Result<Daemons, RunError> {
    let (sg_interval, ka_interval) = intervals(f);
    let v = version(f);
    let family = f.family();
    let start = |host: &str, prio: u8, peer: Ipv4Addr| -> Result<LabProcess, LabError> {
        match imp {
            Implementation::Keepalived => configs::start_keepalived(
                lab,
                host,
                &configs::ka_config_in(host, prio, v, ka_interval, family),
            ),
            _ => {
                let extra = format!(
                    "{}{}",
                    configs::arbiter_table_in(imp, peer, family),
                    hook.map(webhook_tables).unwrap_or_default()
                );
                let cfg = configs::sg_config_in(lab, host, prio, v, sg_interval, &extra, family);
                configs::start_splitguard(lab, host, &opts.splitguard, &cfg)
            }
        }
    };
    // Both at once, as after a power cut: lb01's shorter skew makes it master.
    let lb01 = start("lb01", 150, LB02_ADDR)?;
    let lb02 = start("lb02", 100, LB01_ADDR)?;
    let watch = match (imp, hook) {
        (Implementation::Keepalived, Some(url)) => {
            let cfg = configs::watch_config_in(lab, "lb02", "backup", url, family);
            Some(configs::start_watch(lab, "lb02", &opts.splitguard, &cfg)?)
        }
        _ => None,
    };
    Ok(Daemons {
        lb01,
        lb02: Some(lb02),
        watch,
    })
}

fn measure_pair(
    rt: &tokio::runtime::Runtime,
    lab: &Lab,
    daemons: &mut Daemons,
    opts: &BenchOptions,
    case: Case,
    imp: Implementation,
    gw: Option<&GwObserver>,
) -> Result<Outcome, RunError> {
    // Steady: the daemons ready (with the arbiter, lb02 sees its reference)
    // and only lb01 has the VIP.
    let family = case.flavour().family();
    pair::wait_steady(rt, lab, daemons, imp, || {
        let addresses = (
            configs::holds_vip_in(lab, "lb01", family)?,
            configs::holds_vip_in(lab, "lb02", family)?,
        );
        Ok(match addresses {
            (true, false) => Ok(()),
            (a, b) => Err(format!("daemons ready but VIP on lb01: {a}, on lb02: {b}")),
        })
    })?;
    let f = case.flavour();
    let watch = |align| AddressWatch {
        host: "lb02",
        iface: "eth0",
        addr: match family {
            Family::Ipv4 => IpAddr::V4(VIP_ADDR),
            Family::Ipv6 => IpAddr::V6(configs::VIP6_ADDR),
        },
        align,
        bound: FAILOVER_BOUND,
    };
    let align = Some(Align {
        master: configs::vrrp_addr_in(LB01_ADDR, family),
        within: advert_interval(f) * 3 + Duration::from_secs(2),
    });
    match case {
        Case::Failover(_) => {
            pair::pause(SETTLE)?;
            let d = measure::time_to_address(lab, watch(align), || {
                lab.run("lb01", &["ip", "link", "set", "eth0", "down"])?;
                Ok(())
            })?;
            Ok(Outcome::Ms(d.as_secs_f64() * 1000.0))
        }
        Case::FailoverRandom(_) => {
            pair::pause(SETTLE)?;
            // Aligned to an advert, then a random part of one interval later:
            // a fault at a random phase of the cycle.
            let phase = advert_interval(f).mul_f64(measure::random_fraction());
            let fault_at = std::cell::Cell::new(None);
            let (_, moved) = measure::address_instants(lab, watch(align), || {
                std::thread::sleep(phase);
                fault_at.set(Some(Instant::now()));
                lab.run("lb01", &["ip", "link", "set", "eth0", "down"])?;
                Ok(())
            })?;
            let at = fault_at
                .get()
                .ok_or_else(|| RunError::Broken("the fault did not happen".into()))?;
            Ok(Outcome::Ms(
                moved.saturating_duration_since(at).as_secs_f64() * 1000.0,
            ))
        }
        Case::Kill(_) => {
            let gw = gw.ok_or_else(|| RunError::Broken("no observer on gw".into()))?;
            pair::pause(SETTLE)?;
            let pids = lb01_processes(daemons)?;
            let t0 = Instant::now();
            // Stopped first, so keepalived's parent cannot restart a child
            // that dies before it.
            measure::signal_all(&pids, libc::SIGSTOP);
            measure::signal_all(&pids, libc::SIGKILL);
            let window = Duration::from_secs(KILL_WINDOW_SECS);
            pair::pause(window)?;
            Ok(Outcome::Ms(dual_ms(&gw.samples(), t0, t0 + window)?))
        }
        Case::Freeze(_) => {
            let gw = gw.ok_or_else(|| RunError::Broken("no observer on gw".into()))?;
            pair::pause(SETTLE)?;
            let pids = lb01_processes(daemons)?;
            let secs = match imp {
                Implementation::Keepalived => FREEZE_SECS[1],
                _ => FREEZE_SECS[0],
            };
            let port = lab.host("lb01")?.bridge_port.clone();
            let t0 = Instant::now();
            measure::signal_all(&pids, libc::SIGSTOP);
            let cut = lab.nft(
                None,
                &format!(
                    "table bridge freeze {{\n chain cut {{\n  type filter hook forward priority 0;\n  \
                     iifname \"{port}\" drop\n  oifname \"{port}\" drop\n }}\n}}\n"
                ),
            );
            // Whatever happened, lb01 resumes: processes and port.
            let frozen = cut
                .map_err(RunError::from)
                .and_then(|()| pair::pause(Duration::from_secs(secs)));
            let healed = lab.nft(None, "delete table bridge freeze\n");
            measure::signal_all(&pids, libc::SIGCONT);
            let resumed = Instant::now();
            frozen?;
            healed?;
            pair::pause(AFTER_FREEZE)?;
            let samples = gw.samples();
            // lb02 must have taken over while lb01 was frozen, or the freeze
            // measured nothing.
            let lb02 = lab.mac_of("lb02")?;
            if !samples
                .iter()
                .any(|s| s.at >= t0 && s.at < resumed && s.macs.contains(&lb02))
            {
                return Err(RunError::Broken(format!(
                    "lb02 never answered for the VIP during the {secs} s freeze"
                )));
            }
            Ok(Outcome::Ms(dual_ms(&samples, t0, resumed + AFTER_FREEZE)?))
        }
        Case::Handover(_) => {
            pair::pause(SETTLE)?;
            let lb01 = &daemons.lb01;
            let d = measure::time_to_address(lab, watch(align), || {
                lb01.signal(libc::SIGTERM);
                Ok(())
            })?;
            Ok(Outcome::Ms(d.as_secs_f64() * 1000.0))
        }
        Case::Detection(_) => {
            let gw = gw.ok_or_else(|| RunError::Broken("no observer on gw".into()))?;
            pair::pause(SETTLE)?;
            let (_, appeared) = measure::address_instants(lab, watch(None), || {
                apply_fault(lab, Scenario::S2)?;
                Ok(())
            })?;
            let deadline = Instant::now() + ALERT_BOUND;
            loop {
                let hook = gw.hooks().into_iter().find(|h| {
                    h.at >= appeared && h.status() == "firing" && h.severity() == "critical"
                });
                if let Some(h) = hook {
                    return Ok(Outcome::Ms(
                        h.at.duration_since(appeared).as_secs_f64() * 1000.0,
                    ));
                }
                if Instant::now() >= deadline {
                    return Err(RunError::Broken(format!(
                        "no critical alert at gw within {ALERT_BOUND:?} of the second owner; got {:?}",
                        gw.hooks()
                            .iter()
                            .map(|h| h.kind().to_owned())
                            .collect::<Vec<_>>()
                    )));
                }
                pair::pause(Duration::from_millis(5))?;
            }
        }
        Case::CheckVip(_) => {
            pair::pause(SETTLE)?;
            // Splitguard: the daemon's socket; beside keepalived there is none
            // and the check probes ARP itself.
            let socket = match imp {
                Implementation::Keepalived => lab.dir().join("no-daemon.sock"),
                _ => configs::sg_socket(lab, "lb02"),
            };
            let check = || -> Result<f64, RunError> {
                let started = Instant::now();
                let out = lab
                    .command("lb02", &opts.splitguard)?
                    .args(["check", "vip", "--vip", configs::VIP, "--format", "zabbix"])
                    .arg("--socket")
                    .arg(&socket)
                    .output()
                    .map_err(|e| RunError::Broken(format!("run check vip: {e}")))?;
                let took = started.elapsed().as_secs_f64() * 1000.0;
                let text = String::from_utf8_lossy(&out.stdout);
                if text.trim() != "1" {
                    return Err(RunError::Broken(format!(
                        "check vip said {:?} (stderr {:?}), expected 1",
                        text.trim(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
                Ok(took)
            };
            // The first call pays for loading the binary; time the second.
            check()?;
            Ok(Outcome::Ms(check()?))
        }
        Case::Flood(_) => measure_flood(lab, daemons, f),
        Case::Idle(_) => {
            pair::pause(IDLE_SETTLE)?;
            let pid = daemons
                .lb01
                .pid()
                .ok_or_else(|| RunError::Broken("lb01's daemon has exited".into()))?;
            let backup = daemons
                .lb02
                .as_ref()
                .and_then(LabProcess::pid)
                .ok_or_else(|| RunError::Broken("lb02's daemon has exited".into()))?;
            let sent = || -> Result<u64, RunError> {
                Ok(tx_packets(lab, "lb01")? + tx_packets(lab, "lb02")?)
            };
            let (sent0, backup0) = (sent()?, measure::sample_tree(backup)?);
            let start = measure::sample_tree(pid)?;
            pair::pause(opts.idle)?;
            let end = measure::sample_tree(pid)?;
            let (sent1, backup1) = (sent()?, measure::sample_tree(backup)?);
            let wall = backup1
                .at
                .saturating_duration_since(backup0.at)
                .as_secs_f64();
            if wall <= 0.0 {
                return Err(RunError::Broken("no wall time between samples".into()));
            }
            // Still the steady pair it was at the start?
            if !configs::holds_vip_in(lab, "lb01", family)?
                || configs::holds_vip_in(lab, "lb02", family)?
            {
                return Err(RunError::Broken(
                    "the VIP moved during the idle window".into(),
                ));
            }
            let cpu_percent = measure::cpu_percent(&start, &end, measure::clock_ticks_per_sec())
                .ok_or_else(|| RunError::Broken("no wall time between samples".into()))?;
            Ok(Outcome::Idle {
                cpu_percent,
                cpu_sched_percent: measure::cpu_percent_precise(&start, &end),
                rss_mib: end.rss_kib as f64 / 1024.0,
                backup_sched_percent: measure::cpu_percent_precise(&backup0, &backup1),
                pps: sent1.saturating_sub(sent0) as f64 / wall,
            })
        }
    }
}

/// The flood case on a steady pair: gw captures both nodes' adverts (tcpdump,
/// kernel timestamps, a BPF filter that leaves the flood out) over three
/// windows while lb01's daemon is sampled at their edges; in the middle one
/// the `flood` host sends [`FLOOD_RATE`] frames a second of VRRP garbage at the
/// pair's VRID and VIP. Adverts from lb02 are a takeover the flood caused:
/// counted, as a figure (keepalived 2.2.7's master falls silent under this
/// flood and its backup takes over; its figures still belong beside
/// splitguard's). The run fails if the VIP is not back on lb01 alone by the
/// end, or lb01 gave up (a priority-0 advert).
fn measure_flood(lab: &Lab, daemons: &Daemons, f: Flavour) -> Result<Outcome, RunError> {
    if f.family() != Family::Ipv4 {
        return Err(RunError::Broken("the flood is IPv4 only".into()));
    }
    let [before, during, after] = FLOOD_WINDOW_SECS.map(Duration::from_secs);
    pair::pause(IDLE_SETTLE)?;
    let pid = daemons
        .lb01
        .pid()
        .ok_or_else(|| RunError::Broken("lb01's daemon has exited".into()))?;
    let src = lab.host("flood")?.addr;
    let spec = FloodSpec {
        src,
        version: match version(f) {
            2 => splitguard_vrrp::Version::V2,
            _ => splitguard_vrrp::Version::V3,
        },
        vrid: configs::VRID,
        vip: VIP_ADDR,
        password: configs::AUTH_PASS.into(),
        // The pair's own interval, in v2 seconds or v3 centiseconds.
        adver_int: match version(f) {
            2 => advert_interval(f).as_secs() as u16,
            _ => (advert_interval(f).as_millis() / 10) as u16,
        },
        rate: FLOOD_RATE,
        duration: during,
    };
    // Bounded twice: `timeout` ends it past every window, and it is stopped
    // (or dropped) once they are over.
    let limit = (before + during + after + CAPTURE_READY * 2)
        .as_secs()
        .to_string();
    let filter = format!("ip proto 112 and (src host {LB01_ADDR} or src host {LB02_ADDR})");
    let mut capture = lab.spawn(
        "gw",
        "tcpdump-adverts",
        &[
            "timeout", &limit, "tcpdump", "-l", "-n", "-tt", "-i", "eth0", &filter,
        ],
    )?;
    let deadline = Instant::now() + CAPTURE_READY;
    while !capture.log_text().contains("listening on") {
        if Instant::now() >= deadline {
            return Err(RunError::Broken(format!(
                "gw's tcpdump did not start within {CAPTURE_READY:?}{}",
                capture.log_tail(4)
            )));
        }
        pair::pause(Duration::from_millis(50))?;
    }
    let s0 = measure::sample_tree(pid)?;
    pair::pause(before)?;
    let s1 = measure::sample_tree(pid)?;
    let from = since_epoch();
    // Blocks for the flood's duration; the samples on either side bracket it.
    let sent = flood(lab, "flood", &spec).map_err(|e| RunError::Broken(format!("{e}")))?;
    let to = since_epoch();
    let s2 = measure::sample_tree(pid)?;
    // A flood well short of its rate (a starved sender) measures a lighter load.
    if sent.sent < FLOOD_RATE * during.as_secs() / 2 {
        return Err(RunError::Broken(format!(
            "the flood sent only {} of {} frames ({} refused)",
            sent.sent,
            FLOOD_RATE * during.as_secs(),
            sent.refused
        )));
    }
    pair::pause(after)?;
    let s3 = measure::sample_tree(pid)?;
    pair::pause(CAPTURE_DRAIN)?;
    capture.stop(Duration::from_secs(2));
    let captured = measure::parse_vrrp_capture(&capture.log_text());

    let backup_adverts = captured.iter().filter(|a| a.src == LB02_ADDR).count() as u64;
    if !configs::holds_vip(lab, "lb01")? || configs::holds_vip(lab, "lb02")? {
        return Err(RunError::Broken(format!(
            "the VIP was not on lb01 alone {after:?} after the flood \
             ({backup_adverts} adverts from lb02)"
        )));
    }
    // Only live adverts count; a priority-0 one is lb01 giving up.
    let lb01: Vec<Duration> = captured
        .iter()
        .filter(|a| a.src == LB01_ADDR)
        .map(|a| match a.priority {
            Some(0) => Err(RunError::Broken("lb01 sent a priority-0 advert".into())),
            _ => Ok(a.at),
        })
        .collect::<Result<_, _>>()?;
    // The gaps across the window's edges need an advert on either side.
    if !lb01.iter().any(|t| *t < from) || !lb01.iter().any(|t| *t > to) {
        return Err(RunError::Broken(format!(
            "gw did not capture lb01's adverts on both sides of the flood ({} in all){}",
            lb01.len(),
            capture.log_tail(4)
        )));
    }
    let gaps = measure::gaps_across(&lb01, from, to);
    let adverts = measure::advert_timing(&gaps, advert_interval(f))
        .ok_or_else(|| RunError::Broken("no advert gaps over the flood".into()))?;
    let kib = |s: &measure::TreeSample| s.rss_kib as f64;
    let flood_secs = sent.elapsed.as_secs_f64();
    if flood_secs <= 0.0 {
        return Err(RunError::Broken("the flood took no time".into()));
    }
    Ok(Outcome::Flood {
        cpu_percent: [
            measure::cpu_percent_precise(&s0, &s1),
            measure::cpu_percent_precise(&s1, &s2),
            measure::cpu_percent_precise(&s2, &s3),
        ],
        rss_growth_mib: (kib(&s2).max(kib(&s3)) - kib(&s0)) / 1024.0,
        adverts,
        backup_adverts,
        sent_per_sec: sent.sent as f64 / flood_secs,
        refused: sent.refused,
    })
}

/// Now as tcpdump's `-tt` timestamps count (the Unix epoch; zero if the clock
/// is before it, which no lab run sees).
fn since_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// lb01's daemon and every process under it (keepalived: parent and children).
fn lb01_processes(daemons: &Daemons) -> Result<Vec<u32>, RunError> {
    let pid = daemons
        .lb01
        .pid()
        .ok_or_else(|| RunError::Broken("lb01's daemon has exited".into()))?;
    Ok(measure::tree_pids(pid)?)
}

/// How long gw saw two owners between `from` and `to`: the share of its
/// samples there that two MACs answered, times the span, ms.
fn dual_ms(samples: &[OwnerSample], from: Instant, to: Instant) -> Result<f64, RunError> {
    let (dual, _, total) = count_owners(samples, from, to);
    if total == 0 {
        return Err(RunError::Broken("gw took no owner samples".into()));
    }
    let span = to.saturating_duration_since(from).as_secs_f64() * 1000.0;
    Ok(dual as f64 / total as f64 * span)
}

/// Packets `host` has sent on its lab interface (`ip -s -j link`).
pub(crate) fn tx_packets(lab: &Lab, host: &str) -> Result<u64, RunError> {
    let iface = lab.host(host)?.iface.clone();
    let out = lab.run(host, &["ip", "-s", "-j", "link", "show", "dev", &iface])?;
    parse_tx_packets(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| RunError::Broken(format!("no tx packet count for {iface} in {host}")))
}

/// The first link's `stats64.tx.packets` from `ip -s -j link` output.
fn parse_tx_packets(json: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get(0)?
        .get("stats64")?
        .get("tx")?
        .get("packets")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_runs_only_the_v3_cases_and_rows_follow_cases() {
        let quick = cases(true, false);
        assert!(quick.iter().all(|c| c.flavour() == Flavour::V3HundredMs));
        assert_eq!(
            rows(&quick).len(),
            17,
            "failover twice, handover, idle (CPU twice, RSS, backup CPU, packets), \
             detection, check vip, flood (CPU thrice, RSS growth, advert gap and \
             jitter, the backup's adverts)"
        );
        let full = cases(false, false);
        assert_eq!(rows(&full).len(), 29);
        assert!(full.contains(&Case::Flood(Flavour::V2OneSecond)));
        assert!(full.contains(&Case::Flood(Flavour::V3HundredMs)));
        assert!(rows(&full).contains(&Measurement::FreezeDual(Flavour::V2OneSecond)));
        assert!(rows(&full).contains(&Measurement::IdleCpu(Flavour::V2OneSecond)));
        assert!(rows(&full).contains(&Measurement::Detection(Flavour::V2OneSecond)));
    }

    #[test]
    fn the_ipv6_cases_run_vrrpv3_over_ipv6_only() {
        let full = cases(false, true);
        assert!(
            full.iter()
                .all(|c| c.flavour().family() == configs::Family::Ipv6 && version(c.flavour()) == 3)
        );
        assert_eq!(
            rows(&full).len(),
            11,
            "failover twice and handover at 1 s and 100 ms, the idle pair's five"
        );
        let quick = cases(true, true);
        assert!(
            quick
                .iter()
                .all(|c| c.flavour() == Flavour::V3HundredMsIpv6)
        );
        assert_eq!(rows(&quick).len(), 8);
    }

    #[test]
    fn detection_skips_the_arbiter_and_check_vip_the_noarb_flavour() {
        let f = Flavour::V2OneSecond;
        assert!(
            !Case::Detection(f)
                .implementations()
                .contains(&Implementation::Splitguard)
        );
        assert!(
            Case::Detection(f)
                .implementations()
                .contains(&Implementation::Keepalived)
        );
        assert!(
            !Case::CheckVip(f)
                .implementations()
                .contains(&Implementation::SplitguardNoArb)
        );
        assert_eq!(Case::Failover(f).implementations().len(), 4);
        assert!(
            Case::Failover(f)
                .implementations()
                .contains(&Implementation::SplitguardNoEarly)
        );
        assert_eq!(Case::FailoverRandom(f).repeats(), RANDOM_REPEATS);
    }

    #[test]
    fn tx_packets_come_from_ip_link_json() {
        let json = r#"[{"ifindex":2,"ifname":"eth0","stats64":{"rx":{"packets":7},"tx":{"bytes":900,"packets":42}}}]"#;
        assert_eq!(parse_tx_packets(json), Some(42));
        assert_eq!(parse_tx_packets("[]"), None);
        assert_eq!(parse_tx_packets("not json"), None);
    }

    #[test]
    fn two_owners_are_timed_as_a_share_of_the_samples() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let sample = |at: u64, macs: &[&str]| OwnerSample {
            at: t + ms(at),
            macs: macs.iter().map(|m| m.to_string()).collect(),
        };
        // Four samples over 1 s, one of them with two MACs: 250 ms.
        let samples = [
            sample(0, &["a"]),
            sample(250, &["a", "b"]),
            sample(500, &["b"]),
            sample(750, &[]),
            sample(1500, &["a", "b"]),
        ];
        let d = dual_ms(&samples, t, t + ms(1000)).expect("samples");
        assert!((d - 250.0).abs() < 1e-9, "{d}");
        assert!(dual_ms(&samples, t + ms(2000), t + ms(3000)).is_err());
    }

    #[test]
    fn random_phases_stay_inside_one_interval() {
        for _ in 0..1000 {
            let x = measure::random_fraction();
            assert!((0.0..1.0).contains(&x), "{x}");
        }
    }

    #[test]
    fn the_flood_runs_in_ipv4_for_splitguard_and_keepalived() {
        for ipv6 in [false, true] {
            for quick in [false, true] {
                for c in cases(quick, ipv6) {
                    if let Case::Flood(f) = c {
                        assert_eq!(f.family(), Family::Ipv4, "{c:?}");
                        assert_eq!(
                            c.implementations(),
                            &[Implementation::Splitguard, Implementation::Keepalived]
                        );
                    }
                }
            }
        }
        assert!(
            !cases(false, true)
                .iter()
                .any(|c| matches!(c, Case::Flood(_)))
        );
    }

    #[test]
    fn flood_runs_fill_every_flood_row_or_fail_them_all() {
        let f = Flavour::V3HundredMs;
        let mut r = Report::new(rows(&[Case::Flood(f)]), 1);
        record(
            &mut r,
            Case::Flood(f),
            Implementation::Splitguard,
            Ok(Outcome::Flood {
                cpu_percent: [Some(0.05), Some(3.5), None],
                rss_growth_mib: 0.01,
                adverts: measure::AdvertTiming {
                    max_gap_ms: 104.0,
                    jitter_p95_ms: 1.5,
                    gaps: 100,
                },
                backup_adverts: 0,
                sent_per_sec: 9_990.0,
                refused: 0,
            }),
        );
        record(
            &mut r,
            Case::Flood(f),
            Implementation::Keepalived,
            Err(RunError::Broken(
                "the VIP was not on lb01\n  --- log ---".into(),
            )),
        );
        let row = |metric| Measurement::Flood { flavour: f, metric };
        let sg = |m| r.samples(row(m), Implementation::Splitguard).expect("cell");
        assert_eq!(sg(FloodMetric::CpuDuring).values, vec![3.5]);
        assert_eq!(sg(FloodMetric::AdvertMaxGap).values, vec![104.0]);
        assert_eq!(sg(FloodMetric::CpuAfter).failures.len(), 1);
        assert_eq!(sg(FloodMetric::BackupAdverts).values, vec![0.0]);
        for m in flood_rows(f) {
            let s = r.samples(m, Implementation::Keepalived).expect("cell");
            assert_eq!(s.failures, vec!["the VIP was not on lb01".to_string()]);
        }
    }

    #[test]
    fn failed_idle_runs_count_against_both_idle_rows() {
        let f = Flavour::V2OneSecond;
        let mut r = Report::new(rows(&[Case::Idle(f)]), 1);
        record(
            &mut r,
            Case::Idle(f),
            Implementation::Keepalived,
            Err(RunError::Broken("gone\n  --- log ---".into())),
        );
        for m in idle_rows(f) {
            let s = r.samples(m, Implementation::Keepalived).expect("cell");
            assert_eq!(s.failures, vec!["gone".to_string()]);
        }
    }
}
