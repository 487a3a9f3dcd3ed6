//! The scale section of `splitguard lab bench` (`--scale`, `--instances N,…`):
//! a pair with N VRRP instances, one IPv4 VIP each ([`configs::scale_vip`]),
//! splitguard (arbiter on, gw as reference, the other node as peer) against
//! keepalived 2.2.7, alternating run by run, each run in a fresh lab. A run
//! starts lb01 (priority 150) and lb02 (100) together and times the start to
//! steady state (lb01 holds every VIP, lb02 none; lb02's additions on the way
//! are counted: a transient second owner), reads both daemons' CPU and RSS over
//! a fixed steady window, then takes lb01's link down and times the mass
//! failover to the last VIP, on lb02 (netlink) and as gw hears it (ARP, from
//! lb02's MAC). Address events come from a netlink subscription in each node
//! made before the daemons start, so no transient owner falls between two polls.
//! For splitguard, after the window, lb01's `status` over the control socket
//! and one `GET /metrics` from gw are each timed a few times (the goals:
//! ≤ 100 ms and ≤ 50 ms at 255 instances); keepalived has neither.
//!
//! N is at most [`MAX_SCALE_INSTANCES`] (251): TEST-NET-1 less .0, .255 and the
//! three hosts. The 255 would need addresses outside TEST-NET-1, which
//! the lab never uses.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use splitguard_node::control;
use splitguard_node::net::arp::ArpRepr;
use splitguard_node::net::arp_socket::ArpSocket;
use splitguard_node::net::netlink::{self, NetEvent, Netlink};

use super::bench::{self, BenchError};
use super::configs::{
    self, LB01_ADDR, LB02_ADDR, MAX_SCALE_INSTANCES, arbiter_table, ka_scale_config_version,
    pair_lab, scale_metrics_addr, scale_vip, scale_vips_held, sg_scale_config_version, sg_socket,
};
use super::measure::{self, Align, TreeSample};
use super::netns::{Lab, LabError};
use super::pair::{self, Daemons, RunError};
use super::process::LabProcess;
use super::report::{Flavour, Implementation, Measurement, Report, ScaleMetric};

/// The instance counts when none are named: one (the single-instance
/// reference), a middling 64, and as many as TEST-NET-1 holds.
pub const DEFAULT_INSTANCES: [usize; 3] = [1, 64, MAX_SCALE_INSTANCES];
/// The steady window when none is named.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// Who runs the scale section (the arbiter-off flavour adds nothing here: the
/// per-instance work is the same).
pub const IMPLEMENTATIONS: [Implementation; 2] =
    [Implementation::Splitguard, Implementation::Keepalived];

/// Longest wait for the started pair to settle: 251 instances on a loaded
/// 2-core machine take a few seconds, v2 needs its 3.6 s down timers.
const STEADY_BOUND: Duration = Duration::from_secs(60);
/// After steady state, before the window: keepalived repeats its takeover
/// gratuitous ARPs 5 s after becoming master (`vrrp_garp_master_delay`), and
/// that burst is start-up work, not steady state.
const SETTLE: Duration = Duration::from_secs(6);
/// Longest wait for the last VIP after lb01's link went down.
const FAILOVER_BOUND: Duration = Duration::from_secs(30);
/// How often the address events are read for steady state (they carry their
/// own instants, so this only bounds how soon the window starts).
const POLL: Duration = Duration::from_millis(50);
/// gw's prober sends at most one who-has per gap (1,000 a second)...
const PROBE_GAP: Duration = Duration::from_millis(1);
/// ...and asks for one VIP at most once per this, so a single instance is not
/// flooded either.
const REPROBE: Duration = Duration::from_millis(10);
/// How long an observer thread may take to subscribe or open its sockets.
const READY_BOUND: Duration = Duration::from_secs(10);
/// How long after gw heard the last VIP its address event may still be on the
/// way from lb02's netlink thread.
const EVENT_LAG: Duration = Duration::from_secs(2);
/// How many times lb01's status and `/metrics` are asked per run; the run's
/// figure is the median, so one scheduling hiccup on 2 cores does not decide it.
const LATENCY_SAMPLES: usize = 7;
/// Longest one status request or scrape may take before the run fails.
const LATENCY_BOUND: Duration = Duration::from_secs(5);

/// What the scale section was asked to do.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Instance counts, each in 1..=[`MAX_SCALE_INSTANCES`].
    pub instances: Vec<usize>,
    /// Runs per implementation, flavour and instance count.
    pub runs: u32,
    /// The steady window over which CPU is read.
    pub window: Duration,
    /// Only VRRPv3 at 100 ms, for CI.
    pub quick: bool,
    /// The splitguard binary the pairs run (normally this very binary).
    pub splitguard: PathBuf,
}

/// Checks one instance count; the error says why the top is 251 and not 255.
pub fn check_instances(n: usize) -> Result<usize, String> {
    if (1..=MAX_SCALE_INSTANCES).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{n} instances is outside 1 to {MAX_SCALE_INSTANCES}: each instance gets one IPv4 \
             VIP from TEST-NET-1 (192.0.2.0/24 less .0, .255 and the lab's three hosts); \
             255 would need addresses outside TEST-NET-1"
        ))
    }
}

/// The flavours the section runs: v3/100 ms first (the heavy one), then v2/1 s
/// unless `quick`.
pub fn flavours(quick: bool) -> Vec<Flavour> {
    if quick {
        vec![Flavour::V3HundredMs]
    } else {
        vec![Flavour::V3HundredMs, Flavour::V2OneSecond]
    }
}

/// The table's rows: per flavour, each metric for every N in turn, so a row
/// block shows how a figure grows with N.
pub fn rows(instances: &[usize], flavours: &[Flavour]) -> Vec<Measurement> {
    let mut out = Vec::new();
    for &flavour in flavours {
        for metric in ScaleMetric::ALL {
            // The smallest N has nothing below it to be marginal over.
            let skip = usize::from(metric.marginal());
            for &n in instances.iter().skip(skip) {
                out.push(scale_row(flavour, n, metric));
            }
        }
    }
    out
}

fn scale_row(flavour: Flavour, n: usize, metric: ScaleMetric) -> Measurement {
    Measurement::Scale {
        flavour,
        // Checked against MAX_SCALE_INSTANCES, so it fits.
        n: u16::try_from(n).unwrap_or(u16::MAX),
        metric,
    }
}

/// The single instance's Master_Down_Interval on lb02 (RFC 3768/5798: three
/// adverts and the skew `(256 - 100) / 256` of one): what a failover that
/// "keeps up" is compared with.
pub fn master_down_interval(f: Flavour) -> Duration {
    bench::advert_interval(f).mul_f64(3.0 + (256.0 - 100.0) / 256.0)
}

/// The figures of one successful run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleOutcome {
    pub start_to_steady: Duration,
    /// VIP additions lb02 made between the start and steady state.
    pub lb02_start_claims: usize,
    /// lb01, lb02: % of one core over the window (utime+stime).
    pub cpu_percent: [f64; 2],
    /// lb01, lb02: µs of CPU (schedstat) per advert sent (lb01) or heard (lb02);
    /// None without schedstat.
    pub cpu_per_advert_us: [Option<f64>; 2],
    /// lb01, lb02: MiB at the end of the window.
    pub rss_mib: [f64; 2],
    /// Packets a second lb02 sent over the window.
    pub pps_lb02: f64,
    /// Fault → the last VIP's address event on lb02.
    pub failover_last_addr: Duration,
    /// Fault → the last VIP heard at gw from lb02's MAC.
    pub failover_last_arp: Duration,
    /// Median round trip of lb01's `status` over the control socket; None for
    /// keepalived.
    pub status_rtt: Option<Duration>,
    /// Median wall time of one `GET /metrics` of lb01 from gw; None for keepalived.
    pub metrics_scrape: Option<Duration>,
}

impl ScaleOutcome {
    fn value(&self, f: Flavour, metric: ScaleMetric) -> Result<f64, String> {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Ok(match metric {
            ScaleMetric::StartToSteady => ms(self.start_to_steady),
            ScaleMetric::Lb02StartClaims => self.lb02_start_claims as f64,
            ScaleMetric::CpuLb01 => self.cpu_percent[0],
            ScaleMetric::CpuLb02 => self.cpu_percent[1],
            ScaleMetric::CpuPerAdvertLb01 | ScaleMetric::CpuPerAdvertLb02 => {
                let i = usize::from(metric == ScaleMetric::CpuPerAdvertLb02);
                self.cpu_per_advert_us[i]
                    .ok_or_else(|| "no schedstat run times on this kernel".to_string())?
            }
            ScaleMetric::MarginalPerAdvertLb01 | ScaleMetric::MarginalPerAdvertLb02 => {
                return Err("a marginal figure needs two runs (see record_marginal)".into());
            }
            ScaleMetric::PpsLb02 => self.pps_lb02,
            ScaleMetric::RssLb01 => self.rss_mib[0],
            ScaleMetric::RssLb02 => self.rss_mib[1],
            ScaleMetric::FailoverLastAddr => ms(self.failover_last_addr),
            ScaleMetric::FailoverLastArp => ms(self.failover_last_arp),
            ScaleMetric::FailoverOverMdi => {
                self.failover_last_arp.as_secs_f64() / master_down_interval(f).as_secs_f64()
            }
            ScaleMetric::StatusLb01 => ms(self
                .status_rtt
                .ok_or_else(|| "no status socket timed".to_string())?),
            ScaleMetric::MetricsLb01 => ms(self
                .metrics_scrape
                .ok_or_else(|| "no /metrics timed".to_string())?),
        })
    }
}

/// µs of CPU per advert: `percent` of one core spent on `n` instances each
/// sending (or hearing) one advert per `interval`.
pub fn per_advert_us(percent: f64, n: usize, interval: Duration) -> f64 {
    let adverts_per_sec = n as f64 / interval.as_secs_f64();
    percent / 100.0 * 1e6 / adverts_per_sec
}

/// µs of CPU per advert that the larger run added: `(n_a, per_a)` and
/// `(n_b, per_b)` are two runs' instance counts and average µs per advert, at
/// the same advert interval; None unless `n_b > n_a`.
pub fn marginal_per_advert_us(a: (usize, f64), b: (usize, f64)) -> Option<f64> {
    let ((n_a, per_a), (n_b, per_b)) = (a, b);
    (n_b > n_a).then(|| (per_b * n_b as f64 - per_a * n_a as f64) / (n_b - n_a) as f64)
}

/// Runs the scale section: `runs` rounds; in each, every flavour and N, and
/// for each the implementations in turn. `progress` gets one line per run.
pub fn run(opts: &ScaleOptions, progress: &mut dyn FnMut(&str)) -> Result<Report, BenchError> {
    bench::check_prerequisites()?;
    let mut instances = Vec::new();
    for &n in &opts.instances {
        instances.push(check_instances(n).map_err(BenchError::Instances)?);
    }
    instances.sort_unstable();
    instances.dedup();
    if instances.is_empty() {
        instances = DEFAULT_INSTANCES.to_vec();
    }
    let flavours = flavours(opts.quick);
    let mut report = Report::with_columns(
        rows(&instances, &flavours),
        opts.runs,
        IMPLEMENTATIONS.to_vec(),
    );
    let total = opts.runs as usize * flavours.len() * instances.len() * IMPLEMENTATIONS.len();
    let mut done = 0;
    for round in 1..=opts.runs {
        // This round's previous run per flavour and implementation: the
        // marginal rows compare with it.
        let mut previous: BTreeMap<(Flavour, Implementation), (usize, Option<ScaleOutcome>)> =
            BTreeMap::new();
        for &f in &flavours {
            for &n in &instances {
                for imp in IMPLEMENTATIONS {
                    if measure::interrupted() {
                        return Err(BenchError::Interrupted);
                    }
                    done += 1;
                    let started = Instant::now();
                    let result = run_once(opts, n, f, imp);
                    let took = started.elapsed().as_secs_f64();
                    let what = match &result {
                        Ok(o) => summary(o),
                        Err(e) if e.is_interrupted() => "interrupted".to_string(),
                        Err(e) => format!("FAILED: {e}"),
                    };
                    progress(&format!(
                        "[{done:>3}/{total}] scale {:<9} N={n:<3} {:<10} run {round}/{}: {what} ({took:.1} s)",
                        f.label(),
                        imp.name(),
                        opts.runs
                    ));
                    if result.as_ref().is_err_and(RunError::is_interrupted)
                        || measure::interrupted()
                    {
                        return Err(BenchError::Interrupted);
                    }
                    if let Some((below, before)) = previous.get(&(f, imp)) {
                        record_marginal(
                            &mut report,
                            f,
                            imp,
                            (*below, before.as_ref()),
                            (n, &result),
                        );
                    }
                    previous.insert((f, imp), (n, result.as_ref().ok().copied()));
                    record(&mut report, f, n, imp, result);
                }
            }
        }
    }
    Ok(report)
}

fn summary(o: &ScaleOutcome) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "steady {:.0} ms (lb02 added {}), CPU {:.2} / {:.2} %, RSS {:.1} / {:.1} MiB, \
         failover {:.0} ms on lb02, {:.0} ms at gw",
        ms(o.start_to_steady),
        o.lb02_start_claims,
        o.cpu_percent[0],
        o.cpu_percent[1],
        o.rss_mib[0],
        o.rss_mib[1],
        ms(o.failover_last_addr),
        ms(o.failover_last_arp),
    )
}

fn record(
    report: &mut Report,
    f: Flavour,
    n: usize,
    imp: Implementation,
    result: Result<ScaleOutcome, RunError>,
) {
    for metric in ScaleMetric::ALL {
        // keepalived has no such figure: its cell stays empty, not failed.
        if (imp == Implementation::Keepalived && metric.splitguard_only()) || metric.marginal() {
            continue;
        }
        let value = match &result {
            Ok(o) => o.value(f, metric),
            // Only the first line: a failure's detail (daemon logs) went to progress.
            Err(e) => Err(e.to_string().lines().next().unwrap_or_default().to_string()),
        };
        report.record(scale_row(f, n, metric), imp, value);
    }
}

/// The marginal rows of run `n` (`result`) over the same round's run at
/// `below` instances (`before`, None when that one failed).
fn record_marginal(
    report: &mut Report,
    f: Flavour,
    imp: Implementation,
    (below, before): (usize, Option<&ScaleOutcome>),
    (n, result): (usize, &Result<ScaleOutcome, RunError>),
) {
    let metrics = [
        ScaleMetric::MarginalPerAdvertLb01,
        ScaleMetric::MarginalPerAdvertLb02,
    ];
    for (node, metric) in metrics.into_iter().enumerate() {
        let value = match (before, result) {
            // Only the first line, as in `record`.
            (_, Err(e)) => Err(e.to_string().lines().next().unwrap_or_default().to_string()),
            (None, Ok(_)) => Err(format!("this round's run at N={below} failed")),
            (Some(a), Ok(b)) => match (a.cpu_per_advert_us[node], b.cpu_per_advert_us[node]) {
                (Some(pa), Some(pb)) => marginal_per_advert_us((below, pa), (n, pb))
                    .ok_or_else(|| format!("N={n} is not above N={below}")),
                _ => Err("no schedstat run times on this kernel".to_string()),
            },
        };
        report.record(scale_row(f, n, metric), imp, value);
    }
}

/// One run in its own lab; the lab, the daemons and the observers go when this
/// returns, whatever happened.
fn run_once(
    opts: &ScaleOptions,
    n: usize,
    f: Flavour,
    imp: Implementation,
) -> Result<ScaleOutcome, RunError> {
    let lab = pair_lab("benchscale")?;
    let vips: Vec<Ipv4Addr> = (0..n)
        .map(scale_vip)
        .collect::<Option<_>>()
        .ok_or_else(|| RunError::Broken(check_instances(n).err().unwrap_or_default()))?;
    let limit = STEADY_BOUND + SETTLE + opts.window + FAILOVER_BOUND + Duration::from_secs(60);
    let logs = [
        AddrLog::start(&lab, "lb01", &vips, limit)?,
        AddrLog::start(&lab, "lb02", &vips, limit)?,
    ];
    let lb02_mac = link_mac(&lab, "lb02")?;
    let (c1, c2) = (
        config(&lab, imp, f, n, "lb01", 150, LB02_ADDR)?,
        config(&lab, imp, f, n, "lb02", 100, LB01_ADDR)?,
    );
    // Both at once, as after a power cut.
    let started = Instant::now();
    let lb01 = start(&lab, opts, imp, "lb01", &c1)?;
    let lb02 = start(&lab, opts, imp, "lb02", &c2);
    let mut daemons = Daemons {
        lb01,
        lb02: Some(lb02?),
        watch: None,
    };
    let result = measure_pair(
        &lab,
        &mut daemons,
        &logs,
        opts,
        (f, imp),
        &vips,
        lb02_mac,
        started,
    );
    let result = result.map_err(|e| match e {
        e if e.is_interrupted() => e,
        e => RunError::Broken(format!("{e}{}", daemons.log_tails())),
    });
    daemons.kill();
    drop(daemons);
    drop(logs);
    drop(lab);
    result
}

/// `host`'s config for `imp` with `n` instances in flavour `f`.
fn config(
    lab: &Lab,
    imp: Implementation,
    f: Flavour,
    n: usize,
    host: &str,
    priority: u8,
    peer: Ipv4Addr,
) -> Result<String, RunError> {
    let (sg_interval, ka_interval) = bench::intervals(f);
    let v = bench::version(f);
    let cfg = match imp {
        Implementation::Keepalived => ka_scale_config_version(host, priority, n, v, ka_interval),
        _ => sg_scale_config_version(
            lab,
            host,
            priority,
            n,
            v,
            sg_interval,
            &arbiter_table(imp, peer),
        ),
    };
    cfg.ok_or_else(|| RunError::Broken(check_instances(n).err().unwrap_or_default()))
}

fn start(
    lab: &Lab,
    opts: &ScaleOptions,
    imp: Implementation,
    host: &str,
    cfg: &str,
) -> Result<LabProcess, LabError> {
    match imp {
        Implementation::Keepalived => configs::start_keepalived(lab, host, cfg),
        _ => configs::start_splitguard(lab, host, &opts.splitguard, cfg),
    }
}

#[allow(clippy::too_many_arguments)]
fn measure_pair(
    lab: &Lab,
    daemons: &mut Daemons,
    logs: &[AddrLog; 2],
    opts: &ScaleOptions,
    (f, imp): (Flavour, Implementation),
    vips: &[Ipv4Addr],
    lb02_mac: [u8; 6],
    started: Instant,
) -> Result<ScaleOutcome, RunError> {
    let n = vips.len();
    // ---- start → steady
    let deadline = started + STEADY_BOUND;
    let (steady_at, lb02_events) = loop {
        if measure::interrupted() {
            return Err(RunError::Interrupted);
        }
        for p in [&mut daemons.lb01].into_iter().chain(daemons.lb02.as_mut()) {
            if let Some(status) = p.try_exit() {
                return Err(RunError::Broken(format!(
                    "{} exited during start-up ({status})",
                    p.name
                )));
            }
        }
        for log in logs {
            log.check()?;
        }
        // The address events say when it may be steady; `ip addr` confirms
        // then. Asking `ip` on every round would start two processes per poll
        // on a 2-core machine while the daemons race to settle.
        let (lb01_events, lb02_events) = (logs[0].events(), logs[1].events());
        if let Some(at) = steady_instant(&lb01_events, &lb02_events, n) {
            let held = (
                scale_vips_held(lab, "lb01", n)?,
                scale_vips_held(lab, "lb02", n)?,
            );
            if held == (n, 0) {
                break (at, lb02_events);
            }
        }
        if Instant::now() >= deadline {
            let held = (
                scale_vips_held(lab, "lb01", n)?,
                scale_vips_held(lab, "lb02", n)?,
            );
            return Err(RunError::NotSteady {
                within: STEADY_BOUND,
                detail: format!("lb01 holds {} of {n} VIPs, lb02 {}", held.0, held.1),
            });
        }
        pair::pause(POLL)?;
    };
    let lb02_start_claims = lb02_events.iter().filter(|e| e.added).count();

    // ---- the steady window
    pair::pause(SETTLE)?;
    let pids = [
        daemons.lb01.pid(),
        daemons.lb02.as_ref().and_then(|p| p.pid()),
    ];
    let [Some(pid1), Some(pid2)] = pids else {
        return Err(RunError::Broken("a daemon has exited".into()));
    };
    let start = [measure::sample_tree(pid1)?, measure::sample_tree(pid2)?];
    let (tx_from, tx_start) = (Instant::now(), bench::tx_packets(lab, "lb02")?);
    pair::pause(opts.window)?;
    let end = [measure::sample_tree(pid1)?, measure::sample_tree(pid2)?];
    let tx_end = bench::tx_packets(lab, "lb02")?;
    let pps_lb02 = tx_end.saturating_sub(tx_start) as f64 / tx_from.elapsed().as_secs_f64();
    let held = (
        scale_vips_held(lab, "lb01", n)?,
        scale_vips_held(lab, "lb02", n)?,
    );
    let later = logs[1]
        .events()
        .iter()
        .filter(|e| e.added)
        .count()
        .saturating_sub(lb02_start_claims);
    if held != (n, 0) || later > 0 {
        return Err(RunError::Broken(format!(
            "the split did not hold through the window: lb01 holds {} of {n}, lb02 {}, \
             lb02 added {later} after steady state",
            held.0, held.1
        )));
    }
    let interval = bench::advert_interval(f);
    let window = |i: usize| -> Result<(f64, Option<f64>, f64), RunError> {
        let cpu = measure::cpu_percent(&start[i], &end[i], measure::clock_ticks_per_sec())
            .ok_or_else(|| RunError::Broken("no wall time between samples".into()))?;
        let precise = measure::cpu_percent_precise(&start[i], &end[i])
            .map(|pct| per_advert_us(pct, n, interval));
        Ok((cpu, precise, rss_mib(&end[i])))
    };
    let (w1, w2) = (window(0)?, window(1)?);

    // ---- status and /metrics, after the window so they do not count in its CPU
    let (status_rtt, metrics_scrape) = match imp {
        Implementation::Keepalived => (None, None),
        _ => {
            let (rtts, status) =
                status_round_trips(&sg_socket(lab, "lb01"), LATENCY_SAMPLES, LATENCY_BOUND)?;
            if status.instances.len() != n {
                return Err(RunError::Broken(format!(
                    "lb01's status lists {} of {n} instances",
                    status.instances.len()
                )));
            }
            let scrape = scrape_metrics(
                lab,
                "gw",
                scale_metrics_addr(lab, "lb01")?,
                LATENCY_SAMPLES,
                LATENCY_BOUND,
            )?;
            let series = scrape
                .body
                .lines()
                .filter(|l| l.starts_with("splitguard_adverts_sent_total{"))
                .count();
            if series != n {
                return Err(RunError::Broken(format!(
                    "lb01's /metrics has {series} of {n} instances' advert counters"
                )));
            }
            (
                Some(median_duration(&rtts)),
                Some(median_duration(&scrape.times)),
            )
        }
    };

    // ---- the mass failover
    let align = Align {
        master: LB01_ADDR.into(),
        within: interval * 3 + Duration::from_secs(2),
    };
    let (t0, heard) = mass_failover(lab, vips, lb02_mac, align, FAILOVER_BOUND)?;
    let last_arp = heard.iter().max().copied().unwrap_or(t0);
    // The address events: each VIP's first addition on lb02 after the fault.
    let event_deadline = Instant::now() + EVENT_LAG;
    let added = loop {
        logs[1].check()?;
        let mut first: BTreeMap<Ipv4Addr, Instant> = BTreeMap::new();
        for e in logs[1].events().iter().filter(|e| e.added && e.at >= t0) {
            first.entry(e.vip).or_insert(e.at);
        }
        if first.len() == n {
            break first;
        }
        if Instant::now() >= event_deadline {
            return Err(RunError::Broken(format!(
                "gw heard all {n} VIPs from lb02 but lb02 added only {} after the fault",
                first.len()
            )));
        }
        pair::pause(Duration::from_millis(20))?;
    };
    let last_addr = added.values().max().copied().unwrap_or(t0);
    let on_lb02 = scale_vips_held(lab, "lb02", n)?;
    if on_lb02 != n {
        return Err(RunError::Broken(format!(
            "after the failover lb02 holds {on_lb02} of {n} VIPs"
        )));
    }
    Ok(ScaleOutcome {
        start_to_steady: steady_at.saturating_duration_since(started),
        lb02_start_claims,
        cpu_percent: [w1.0, w2.0],
        cpu_per_advert_us: [w1.1, w2.1],
        rss_mib: [w1.2, w2.2],
        pps_lb02,
        failover_last_addr: last_addr.saturating_duration_since(t0),
        failover_last_arp: last_arp.saturating_duration_since(t0),
        status_rtt,
        metrics_scrape,
    })
}

/// The median of `times` (the upper middle one for an even count); zero when empty.
pub fn median_duration(times: &[Duration]) -> Duration {
    let mut v = times.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

// ------------------------------------------------------- status and /metrics

/// Asks the daemon at `socket` for its status `count` times in a row, as
/// `splitguard status` does (one connection each); returns each round trip and
/// the last status. The socket is a path, so this works from outside the host's
/// namespace.
pub fn status_round_trips(
    socket: &Path,
    count: usize,
    bound: Duration,
) -> Result<(Vec<Duration>, splitguard_node::status::Status), RunError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Broken(format!("runtime: {e}")))?;
    rt.block_on(async {
        let mut times = Vec::with_capacity(count);
        let mut last = None;
        for _ in 0..count.max(1) {
            let t = Instant::now();
            let status = control::status(socket, bound)
                .await
                .map_err(|e| RunError::Broken(format!("status: {e}")))?;
            times.push(t.elapsed());
            last = Some(status);
        }
        last.map(|s| (times, s))
            .ok_or_else(|| RunError::Broken("no status asked".into()))
    })
}

/// What [`scrape_metrics`] saw: each scrape's wall time and the last body.
#[derive(Debug, Clone)]
pub struct Scrapes {
    pub times: Vec<Duration>,
    pub body: String,
}

/// `GET /metrics` of `addr` from inside `host`, `count` times in a row, each on
/// a new connection (as Prometheus does after an idle interval), timed from
/// connect to the reply's last byte.
pub fn scrape_metrics(
    lab: &Lab,
    host: &str,
    addr: SocketAddr,
    count: usize,
    bound: Duration,
) -> Result<Scrapes, RunError> {
    let got = lab.within(host, move || -> Result<Scrapes, String> {
        let mut times = Vec::with_capacity(count);
        let mut body = String::new();
        for _ in 0..count.max(1) {
            let t = Instant::now();
            body = http_get(addr, "/metrics", bound)?;
            times.push(t.elapsed());
        }
        Ok(Scrapes { times, body })
    })?;
    got.map_err(|e| RunError::Broken(format!("GET http://{addr}/metrics: {e}")))
}

/// A plain HTTP/1.1 GET with `Connection: close`; the body of a 200 reply.
/// `bound` is per socket operation. Small on purpose: the lab crate has no
/// HTTP client, and the daemon answers with a Content-Length body.
fn http_get(addr: SocketAddr, path: &str, bound: Duration) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&addr, bound).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(bound))
        .and_then(|()| stream.set_write_timeout(Some(bound)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    let reply = String::from_utf8(reply).map_err(|e| format!("not UTF-8: {e}"))?;
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .ok_or("no end of headers in the reply")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("reply {status:?}"));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err("a chunked reply (this reader expects Content-Length)".into());
    }
    Ok(body.to_string())
}

fn rss_mib(s: &TreeSample) -> f64 {
    s.rss_kib as f64 / 1024.0
}

// ------------------------------------------------------------ address events

/// One scale VIP added to or removed from a node's eth0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrEvent {
    pub at: Instant,
    pub vip: Ipv4Addr,
    pub added: bool,
}

/// When the pair became steady by the address events of lb01 and lb02: the last
/// moment lb01 came to hold all `n` VIPs and lb02 none, if that is how the
/// events end (None otherwise). Both logs start empty (subscribed before the
/// daemons started).
pub fn steady_instant(lb01: &[AddrEvent], lb02: &[AddrEvent], n: usize) -> Option<Instant> {
    let mut merged: Vec<(Instant, usize, AddrEvent)> = lb01
        .iter()
        .map(|e| (e.at, 0, *e))
        .chain(lb02.iter().map(|e| (e.at, 1, *e)))
        .collect();
    // Stable: events of one host keep their order when instants tie.
    merged.sort_by_key(|(at, _, _)| *at);
    let mut held = [BTreeSet::new(), BTreeSet::new()];
    let mut steady = None;
    let mut was = false;
    for (at, host, e) in merged {
        if e.added {
            held[host].insert(e.vip);
        } else {
            held[host].remove(&e.vip);
        }
        let now = held[0].len() == n && held[1].is_empty();
        if now && !was {
            steady = Some(at);
        }
        was = now;
    }
    if was { steady } else { None }
}

#[derive(Debug, Default)]
struct LogState {
    events: Vec<AddrEvent>,
    /// Why the log stopped early (events were lost), if it did.
    error: Option<String>,
}

/// A thread in one host recording the scale VIPs added to and removed from its
/// eth0; stops (and is joined) when dropped, or by itself after its limit.
struct AddrLog {
    state: Arc<Mutex<LogState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), LabError>>>,
    host: String,
}

fn lock(state: &Mutex<LogState>) -> MutexGuard<'_, LogState> {
    // A panic while holding the lock leaves plain data; keep reading it.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl AddrLog {
    /// Subscribes in `host`; returns once no later event can be missed.
    fn start(
        lab: &Lab,
        host: &str,
        vips: &[Ipv4Addr],
        limit: Duration,
    ) -> Result<AddrLog, RunError> {
        let iface = lab.host(host)?.iface.clone();
        let wanted: BTreeSet<Ipv4Addr> = vips.iter().copied().collect();
        let state = Arc::new(Mutex::new(LogState::default()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let inner = Arc::clone(&state);
        let thread = lab.spawn_within(host, move || {
            if let Err(e) = record_addresses(&iface, &wanted, limit, &inner, ready_tx, stop_rx) {
                lock(&inner).error = Some(e);
            }
        })?;
        let mut log = AddrLog {
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
            host: host.to_string(),
        };
        match ready_rx.recv_timeout(READY_BOUND) {
            Ok(Ok(())) => Ok(log),
            Ok(Err(e)) => Err(RunError::Broken(format!("address log on {host}: {e}"))),
            Err(_) => {
                log.shutdown();
                Err(RunError::Broken(format!(
                    "address log on {host} not ready within {READY_BOUND:?}"
                )))
            }
        }
    }

    fn events(&self) -> Vec<AddrEvent> {
        lock(&self.state).events.clone()
    }

    /// Err when the log stopped early (then its events are incomplete).
    fn check(&self) -> Result<(), RunError> {
        match &lock(&self.state).error {
            Some(e) => Err(RunError::Broken(format!(
                "address log on {}: {e}",
                self.host
            ))),
            None => Ok(()),
        }
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AddrLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The log's body, on a thread inside the host.
fn record_addresses(
    iface: &str,
    wanted: &BTreeSet<Ipv4Addr>,
    limit: Duration,
    state: &Mutex<LogState>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        let setup = async {
            // Subscribed first: no event after this point is missed.
            let events = netlink::subscribe().map_err(|e| format!("subscribe: {e}"))?;
            let nl = Netlink::connect().map_err(|e| format!("netlink: {e}"))?;
            let link = nl
                .link_by_name(iface)
                .await
                .map_err(|e| format!("{iface}: {e}"))?;
            Ok::<_, String>((events, link.index))
        };
        let (mut events, index) = match setup.await {
            Ok(v) => v,
            Err(e) => {
                let _ = ready.send(Err(e.clone()));
                return Err(e);
            }
        };
        let _ = ready.send(Ok(()));
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => return Ok(()),
                event = events.recv() => {
                    let at = Instant::now();
                    let (a, added) = match event {
                        Some(NetEvent::AddrAdded(a)) => (a, true),
                        Some(NetEvent::AddrRemoved(a)) => (a, false),
                        Some(NetEvent::Overrun) => {
                            return Err("the kernel dropped address events (ENOBUFS)".into());
                        }
                        Some(NetEvent::Link(_)) => continue,
                        None => return Err("the netlink subscription ended".into()),
                    };
                    if let IpAddr::V4(vip) = a.addr
                        && a.index == index
                        && wanted.contains(&vip)
                    {
                        lock(state).events.push(AddrEvent { at, vip, added });
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
            }
        }
    })
}

/// `host`'s eth0 MAC (asked over netlink inside the host).
fn link_mac(lab: &Lab, host: &str) -> Result<[u8; 6], RunError> {
    let iface = lab.host(host)?.iface.clone();
    let mac = lab.within(host, move || -> Result<[u8; 6], String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        rt.block_on(async {
            let nl = Netlink::connect().map_err(|e| format!("netlink: {e}"))?;
            let link = nl
                .link_by_name(&iface)
                .await
                .map_err(|e| format!("{iface}: {e}"))?;
            link.mac
                .ok_or_else(|| format!("{iface} has no Ethernet address"))
        })
    })?;
    mac.map_err(|e| RunError::Broken(format!("{host}'s MAC: {e}")))
}

// ------------------------------------------------------------- gw's prober

/// Takes lb01's link down just after gw heard one of lb01's adverts, and
/// returns the fault's instant and, per VIP, when gw first heard it from
/// `owner` (lb02's MAC) after it: an answer to gw's who-has, or lb02's
/// gratuitous ARP, whichever came first. gw asks for every VIP not heard yet,
/// at most one who-has per [`PROBE_GAP`] and per VIP per [`REPROBE`], until all
/// are heard or `bound` has passed.
fn mass_failover(
    lab: &Lab,
    vips: &[Ipv4Addr],
    owner: [u8; 6],
    align: Align,
    bound: Duration,
) -> Result<(Instant, Vec<Instant>), RunError> {
    let gw = lab.host("gw")?;
    let (iface, addr) = (gw.iface.clone(), gw.addr);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<Instant>();
    let vips = vips.to_vec();
    let prober = lab.spawn_within("gw", move || {
        probe_in_gw(&iface, addr, &vips, owner, align, bound, ready_tx, go_rx)
    })?;
    let join = |prober: std::thread::JoinHandle<Result<Result<Vec<Instant>, String>, LabError>>| {
        match prober.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    };
    let within = READY_BOUND + align.within;
    match ready_rx.recv_timeout(within) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            drop(go_tx);
            let _ = join(prober);
            return Err(RunError::Broken(format!("gw's prober: {e}")));
        }
        Err(_) => {
            drop(go_tx);
            let _ = join(prober);
            return Err(RunError::Broken(format!(
                "gw's prober was not ready within {within:?}"
            )));
        }
    }
    let t0 = Instant::now();
    if let Err(e) = lab.run("lb01", &["ip", "link", "set", "eth0", "down"]) {
        drop(go_tx);
        let _ = join(prober);
        return Err(e.into());
    }
    // The prober gone already is seen at its join.
    let _ = go_tx.send(t0);
    match join(prober)? {
        Ok(heard) => Ok((t0, heard)),
        Err(_) if measure::interrupted() => Err(RunError::Interrupted),
        Err(e) => Err(RunError::Broken(format!("gw's prober: {e}"))),
    }
}

/// The prober's body, on a thread inside gw.
#[allow(clippy::too_many_arguments)]
fn probe_in_gw(
    iface: &str,
    addr: Ipv4Addr,
    vips: &[Ipv4Addr],
    owner: [u8; 6],
    align: Align,
    bound: Duration,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    go: tokio::sync::oneshot::Receiver<Instant>,
) -> Result<Vec<Instant>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        let setup = async {
            let nl = Netlink::connect().map_err(|e| format!("netlink: {e}"))?;
            let link = nl
                .link_by_name(iface)
                .await
                .map_err(|e| format!("{iface}: {e}"))?;
            let mac = link
                .mac
                .ok_or_else(|| format!("{iface} has no Ethernet address"))?;
            // Open before the fault, so lb02's first gratuitous ARP is queued
            // here even if it came before the loop below runs.
            let arp = ArpSocket::open(link.index).map_err(|e| format!("ARP socket: {e}"))?;
            measure::wait_for_advert(iface, link.index, addr.into(), align)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((mac, arp))
        };
        let (mac, arp) = match setup.await {
            Ok(v) => v,
            Err(e) => {
                let _ = ready.send(Err(e.clone()));
                return Err(e);
            }
        };
        let _ = ready.send(Ok(()));
        let t0 = go
            .await
            .map_err(|_| "cancelled before the fault".to_string())?;
        let index: BTreeMap<Ipv4Addr, usize> =
            vips.iter().enumerate().map(|(k, v)| (*v, k)).collect();
        let mut heard: Vec<Option<Instant>> = vec![None; vips.len()];
        let mut asked: Vec<Option<tokio::time::Instant>> = vec![None; vips.len()];
        let mut cursor = 0;
        let deadline = tokio::time::Instant::now() + bound;
        let mut tick = tokio::time::interval(PROBE_GAP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u32;
        // Bounded by `deadline` (and so to bound / PROBE_GAP requests).
        while heard.iter().any(Option::is_none) {
            tokio::select! {
                biased;
                got = arp.recv() => {
                    let a = got.map_err(|e| format!("ARP receive: {e}"))?;
                    let at = Instant::now();
                    if a.sender_mac == owner
                        && at >= t0
                        && let Some(&k) = index.get(&a.sender_ip)
                    {
                        heard[k].get_or_insert(at);
                    }
                }
                _ = tick.tick() => {
                    ticks = ticks.wrapping_add(1);
                    if ticks.is_multiple_of(100) && measure::interrupted() {
                        return Err("interrupted".to_string());
                    }
                    let now = tokio::time::Instant::now();
                    let due = (0..vips.len()).map(|s| (cursor + s) % vips.len()).find(|&k| {
                        heard[k].is_none() && asked[k].is_none_or(|t| now - t >= REPROBE)
                    });
                    if let Some(k) = due {
                        arp.broadcast(&ArpRepr::probe(mac, addr, vips[k]))
                            .await
                            .map_err(|e| format!("ARP request: {e}"))?;
                        asked[k] = Some(now);
                        cursor = k + 1;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let missing = heard.iter().filter(|h| h.is_none()).count();
                    return Err(format!(
                        "{missing} of {} VIPs not heard from lb02 at gw within {bound:?}",
                        vips.len()
                    ));
                }
            }
        }
        Ok(heard.into_iter().flatten().collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_counts_outside_the_pool_say_why() {
        assert_eq!(check_instances(1), Ok(1));
        assert_eq!(check_instances(251), Ok(251));
        for bad in [0, 252, 255] {
            let e = check_instances(bad).expect_err("out of range");
            assert!(e.contains("1 to 251") && e.contains("TEST-NET-1"), "{e}");
        }
    }

    #[test]
    fn rows_group_each_metric_over_n_per_flavour() {
        let r = rows(&[1, 64], &flavours(false));
        // Every metric for both N, but the marginal ones only for 64.
        assert_eq!(r.len(), 2 * (ScaleMetric::ALL.len() * 2 - 2));
        assert!(!r.contains(&scale_row(
            Flavour::V3HundredMs,
            1,
            ScaleMetric::MarginalPerAdvertLb02
        )));
        assert_eq!(
            r[0],
            scale_row(Flavour::V3HundredMs, 1, ScaleMetric::StartToSteady)
        );
        assert_eq!(
            r[1],
            scale_row(Flavour::V3HundredMs, 64, ScaleMetric::StartToSteady)
        );
        assert!(matches!(
            r.last(),
            Some(Measurement::Scale {
                flavour: Flavour::V2OneSecond,
                n: 64,
                ..
            })
        ));
        assert_eq!(flavours(true), vec![Flavour::V3HundredMs]);
    }

    #[test]
    fn master_down_interval_is_three_adverts_and_lb02s_skew() {
        let v3 = master_down_interval(Flavour::V3HundredMs).as_secs_f64();
        assert!((v3 - 0.3609375).abs() < 1e-9, "{v3}");
        let v2 = master_down_interval(Flavour::V2OneSecond).as_secs_f64();
        assert!((v2 - 3.609375).abs() < 1e-9, "{v2}");
    }

    #[test]
    fn the_median_duration_is_the_middle_one() {
        let ms = Duration::from_millis;
        assert_eq!(median_duration(&[ms(9), ms(1), ms(3)]), ms(3));
        assert_eq!(median_duration(&[ms(4), ms(1)]), ms(4));
        assert_eq!(median_duration(&[]), Duration::ZERO);
    }

    #[test]
    fn cpu_per_advert_divides_by_the_advert_rate() {
        // 5 % of a core on 250 instances at 100 ms (2,500 adverts/s): 20 µs each.
        let us = per_advert_us(5.0, 250, Duration::from_millis(100));
        assert!((us - 20.0).abs() < 1e-9, "{us}");
    }

    #[test]
    fn marginal_cost_takes_out_what_the_smaller_run_already_spent() {
        // 1 instance at 150 µs per advert (mostly fixed cost), 64 at 9 µs:
        // the 63 added instances cost (576 - 150) / 63 µs per advert each.
        let m = marginal_per_advert_us((1, 150.0), (64, 9.0)).expect("n grows");
        assert!((m - (576.0 - 150.0) / 63.0).abs() < 1e-9, "{m}");
        assert_eq!(marginal_per_advert_us((64, 9.0), (64, 9.0)), None);
        assert_eq!(marginal_per_advert_us((64, 9.0), (1, 150.0)), None);
    }

    #[test]
    fn marginal_rows_compare_with_the_rounds_previous_run() {
        let f = Flavour::V3HundredMs;
        let imp = Implementation::Splitguard;
        let mut r = Report::with_columns(rows(&[1, 64], &[f]), 1, IMPLEMENTATIONS.to_vec());
        let run = |per: [Option<f64>; 2]| ScaleOutcome {
            start_to_steady: Duration::from_millis(1500),
            lb02_start_claims: 0,
            cpu_percent: [1.0, 0.5],
            cpu_per_advert_us: per,
            rss_mib: [13.0, 12.0],
            pps_lb02: 10.0,
            failover_last_addr: Duration::from_millis(370),
            failover_last_arp: Duration::from_millis(380),
            status_rtt: None,
            metrics_scrape: None,
        };
        let small = run([Some(300.0), Some(150.0)]);
        let big = Ok(run([Some(20.0), Some(9.0)]));
        record_marginal(&mut r, f, imp, (1, Some(&small)), (64, &big));
        let cell = |r: &Report, m| r.samples(scale_row(f, 64, m), imp).cloned().expect("cell");
        let lb01 = cell(&r, ScaleMetric::MarginalPerAdvertLb01).values[0];
        assert!((lb01 - (1280.0 - 300.0) / 63.0).abs() < 1e-9, "{lb01}");
        assert_eq!(cell(&r, ScaleMetric::MarginalPerAdvertLb02).values.len(), 1);
        // The smaller run failed: the marginal row says so.
        record_marginal(&mut r, f, imp, (1, None), (64, &big));
        assert_eq!(
            cell(&r, ScaleMetric::MarginalPerAdvertLb01).failures,
            vec!["this round's run at N=1 failed".to_string()]
        );
        // This run failed: its reason, first line only.
        let failed = Err(RunError::Broken("not steady\n  --- log ---".into()));
        record_marginal(&mut r, f, imp, (1, Some(&small)), (64, &failed));
        assert_eq!(
            cell(&r, ScaleMetric::MarginalPerAdvertLb02).failures.last(),
            Some(&"not steady".to_string())
        );
    }

    fn ev(at: Instant, vip: u8, added: bool) -> AddrEvent {
        AddrEvent {
            at,
            vip: Ipv4Addr::new(192, 0, 2, vip),
            added,
        }
    }

    #[test]
    fn steady_is_the_last_time_lb01_has_all_and_lb02_none() {
        let t = Instant::now();
        let ms = |m| t + Duration::from_millis(m);
        // lb01 takes .1 at 10 ms; lb02 takes .2 at 12 ms (a transient second
        // owner), lb01 .2 at 15 ms; lb02 gives .2 up at 30 ms: steady at 30.
        let lb01 = [ev(ms(10), 1, true), ev(ms(15), 2, true)];
        let lb02 = [ev(ms(12), 2, true), ev(ms(30), 2, false)];
        assert_eq!(steady_instant(&lb01, &lb02, 2), Some(ms(30)));
        // Without lb02's detour, steady when lb01 has the second.
        assert_eq!(steady_instant(&lb01, &[], 2), Some(ms(15)));
        // Steady, then lost again: not steady.
        let lost = [
            ev(ms(10), 1, true),
            ev(ms(15), 2, true),
            ev(ms(40), 1, false),
        ];
        assert_eq!(steady_instant(&lost, &[], 2), None);
        // Steady, lost, steady again: the later moment counts.
        let back = [
            ev(ms(10), 1, true),
            ev(ms(15), 2, true),
            ev(ms(40), 1, false),
            ev(ms(50), 1, true),
        ];
        assert_eq!(steady_instant(&back, &[], 2), Some(ms(50)));
        assert_eq!(steady_instant(&[], &[], 1), None);
    }

    #[test]
    fn a_failed_run_fails_every_row_of_its_n_and_flavour() {
        let f = Flavour::V3HundredMs;
        let mut r = Report::with_columns(rows(&[4], &[f]), 1, IMPLEMENTATIONS.to_vec());
        record(
            &mut r,
            f,
            4,
            Implementation::Keepalived,
            Err(RunError::Broken("not steady\n  --- log ---".into())),
        );
        for metric in ScaleMetric::ALL {
            let s = r.samples(scale_row(f, 4, metric), Implementation::Keepalived);
            if metric.splitguard_only() || metric.marginal() {
                // Not a failure: keepalived has no such figure, and a marginal
                // one is recorded beside (record_marginal).
                assert_eq!(s, None, "{metric:?}");
            } else {
                assert_eq!(s.expect("cell").failures, vec!["not steady".to_string()]);
            }
        }
        let ok = ScaleOutcome {
            start_to_steady: Duration::from_millis(1500),
            lb02_start_claims: 0,
            cpu_percent: [1.0, 0.5],
            cpu_per_advert_us: [Some(20.0), None],
            rss_mib: [13.0, 12.0],
            pps_lb02: 10.0,
            failover_last_addr: Duration::from_millis(370),
            failover_last_arp: Duration::from_millis(380),
            status_rtt: Some(Duration::from_micros(2500)),
            metrics_scrape: None,
        };
        record(&mut r, f, 4, Implementation::Splitguard, Ok(ok));
        let cell = |m| {
            r.samples(scale_row(f, 4, m), Implementation::Splitguard)
                .cloned()
        };
        assert_eq!(
            cell(ScaleMetric::StartToSteady).map(|s| s.values),
            Some(vec![1500.0])
        );
        let over = cell(ScaleMetric::FailoverOverMdi).expect("cell").values[0];
        assert!((over - 0.380 / 0.3609375).abs() < 1e-9);
        assert_eq!(
            cell(ScaleMetric::StatusLb01).map(|s| s.values),
            Some(vec![2.5])
        );
        assert_eq!(
            cell(ScaleMetric::MetricsLb01).expect("cell").failures.len(),
            1
        );
        // No schedstat: that row fails, the others stand.
        assert_eq!(
            cell(ScaleMetric::CpuPerAdvertLb02)
                .expect("cell")
                .failures
                .len(),
            1
        );
    }
}
