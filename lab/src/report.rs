//! The benchmark's results and how they read: samples per measurement and
//! implementation (values and failed runs), median and min–max, the ratios
//! splitguard / keepalived and splitguard-noarb / splitguard, and the table as
//! plain text or Markdown; the scale section's rows too (a report shows only the
//! implementations it ran, and the ratios those allow). Pure: no I/O, no clock.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What runs the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Implementation {
    /// splitguard with the arbiter on (gw as the reference, the other node as peer).
    Splitguard,
    /// The same with `early_takeover = false`: RFC timing, no liveness stream
    /// (what splitguard did before early takeover).
    SplitguardNoEarly,
    /// splitguard with `[arbiter] enabled = false`.
    SplitguardNoArb,
    /// keepalived 2.2.7 (the Debian package).
    Keepalived,
}

impl Implementation {
    /// In the order runs alternate and columns appear.
    pub const ALL: [Implementation; 4] = [
        Implementation::Splitguard,
        Implementation::SplitguardNoEarly,
        Implementation::SplitguardNoArb,
        Implementation::Keepalived,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Implementation::Splitguard => "splitguard",
            Implementation::SplitguardNoEarly => "splitguard-noearly",
            Implementation::SplitguardNoArb => "splitguard-noarb",
            Implementation::Keepalived => "keepalived",
        }
    }

    /// Whether it runs splitguard's arbiter.
    pub fn has_arbiter(self) -> bool {
        matches!(
            self,
            Implementation::Splitguard | Implementation::SplitguardNoEarly
        )
    }
}

/// The VRRP flavour of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flavour {
    /// VRRPv2, advert interval 1 s, PASS auth.
    V2OneSecond,
    /// VRRPv3, advert interval 100 ms.
    V3HundredMs,
    /// VRRPv3 over IPv6 (VIP 2001:db8::3), advert interval 1 s.
    V3OneSecondIpv6,
    /// VRRPv3 over IPv6, advert interval 100 ms.
    V3HundredMsIpv6,
}

impl Flavour {
    pub fn label(self) -> &'static str {
        match self {
            Flavour::V2OneSecond => "v2/1 s",
            Flavour::V3HundredMs => "v3/100 ms",
            Flavour::V3OneSecondIpv6 => "v3/1 s IPv6",
            Flavour::V3HundredMsIpv6 => "v3/100 ms IPv6",
        }
    }

    /// The address family VRRP runs in.
    pub fn family(self) -> splitguard_vrrp::wire::Family {
        match self {
            Flavour::V2OneSecond | Flavour::V3HundredMs => splitguard_vrrp::wire::Family::Ipv4,
            Flavour::V3OneSecondIpv6 | Flavour::V3HundredMsIpv6 => {
                splitguard_vrrp::wire::Family::Ipv6
            }
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measurement {
    /// lb01's link goes down → the VIP appears on lb02, in ms.
    Failover(Flavour),
    /// The same with the fault at a random phase of the advert cycle (not
    /// right after an advert), in ms from the fault.
    FailoverRandom(Flavour),
    /// lb01's daemon gets SIGTERM (priority-0 advert) → the VIP appears on lb02, in ms.
    Handover(Flavour),
    /// The master's CPU use over the idle window, % of one core, from utime+stime
    /// (`/proc/PID/stat`, clock ticks).
    IdleCpu(Flavour),
    /// The same from every thread's schedstat run time (ns).
    IdleCpuSched(Flavour),
    /// The master's resident memory at the end of the idle window, MiB.
    IdleRss(Flavour),
    /// VRRP dropped on lb02 (S2) → the VIP appears on lb02 while lb01 keeps it →
    /// the alert reaches gw's webhook, in ms from the address event.
    Detection(Flavour),
    /// `splitguard check vip --format zabbix` on the backup, wall time in ms.
    CheckVip(Flavour),
    /// The backup's CPU over the idle window (schedstat), % of one core: where
    /// the liveness stream is sent from.
    IdleCpuBackup(Flavour),
    /// Packets a second both nodes send over the idle window (adverts, the
    /// arbiter's probes, the liveness stream and the answers to it).
    IdlePps(Flavour),
    /// lb01's daemon killed with SIGKILL (its node alive, the VIP still on its
    /// interface): time at gw with two owners over the window after, ms.
    KillDual(Flavour),
    /// lb01 frozen (its processes SIGSTOPped and its switch port silent, as a
    /// paused VM) for longer than the implementation's failover time, then
    /// resumed: time at gw with two owners from the freeze to 5 s after, ms.
    FreezeDual(Flavour),
    /// A flood of VRRP garbage at the pair (issue 19): one figure of the master
    /// before, during or after it (see [`FloodMetric`]).
    Flood {
        flavour: Flavour,
        metric: FloodMetric,
    },
    /// The scale section: one figure of a pair with `n` instances.
    Scale {
        flavour: Flavour,
        n: u16,
        metric: ScaleMetric,
    },
}

/// What one row of the flood case measures: a lab host sends [`FLOOD_RATE`]
/// frames a second of VRRP garbage at the pair's VRID and VIP for the middle
/// one of [`FLOOD_WINDOW_SECS`], between a window before and one after (see
/// `bench`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FloodMetric {
    /// The master's daemon (keepalived: all its processes), schedstat run
    /// time over the window, % of one core.
    CpuBefore,
    CpuDuring,
    CpuAfter,
    /// The master's RSS: the larger of the samples at the flood's end and at
    /// the after window's end, less the sample before, MiB.
    RssGrowth,
    /// The longest gap between the master's adverts as gw received them
    /// (kernel timestamps), over the flood window and across its edges, ms.
    AdvertMaxGap,
    /// The 95th percentile of |gap − advert interval| of those, ms.
    AdvertJitter,
    /// Adverts gw captured from the backup over the three windows: more than
    /// none is a spurious takeover. A figure, not a failed run, so that an
    /// implementation that does take over still shows what its master did.
    BackupAdverts,
}

/// The flood case's windows, s: before, the flood, after.
pub const FLOOD_WINDOW_SECS: [u64; 3] = [5, 10, 5];
/// The flood's rate, frames a second (the figure).
pub const FLOOD_RATE: u64 = 10_000;

impl FloodMetric {
    /// In the order the rows appear.
    pub const ALL: [FloodMetric; 7] = [
        FloodMetric::CpuBefore,
        FloodMetric::CpuDuring,
        FloodMetric::CpuAfter,
        FloodMetric::RssGrowth,
        FloodMetric::AdvertMaxGap,
        FloodMetric::AdvertJitter,
        FloodMetric::BackupAdverts,
    ];

    pub fn label(self) -> String {
        let [before, during, after] = FLOOD_WINDOW_SECS;
        match self {
            FloodMetric::CpuBefore => {
                format!("CPU of the master in the {before} s before (schedstat), %")
            }
            FloodMetric::CpuDuring => {
                format!("CPU of the master during the {during} s flood (schedstat), %")
            }
            FloodMetric::CpuAfter => {
                format!("CPU of the master in the {after} s after (schedstat), %")
            }
            FloodMetric::RssGrowth => {
                "RSS growth of the master (end of flood or after, the larger, − before), MiB".into()
            }
            FloodMetric::AdvertMaxGap => {
                "longest gap between the master's adverts at gw, ms".into()
            }
            FloodMetric::AdvertJitter => {
                "advert jitter at gw (95th percentile of each gap's distance from the interval), ms"
                    .into()
            }
            FloodMetric::BackupAdverts => {
                format!(
                    "adverts from the backup (a spurious takeover) in the {} s",
                    before + during + after
                )
            }
        }
    }
}

/// What one row of the scale section measures (see `bench_scale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScaleMetric {
    /// Both started together → lb01 holds all VIPs and lb02 none, ms.
    StartToSteady,
    /// VIPs lb02 added during the start (a transient second owner), a count.
    Lb02StartClaims,
    /// A node's daemon over the steady window (utime+stime), % of one core.
    CpuLb01,
    CpuLb02,
    /// The same from schedstat run time over the adverts in the window (lb01
    /// sends N per interval, lb02 hears them), µs of CPU per advert.
    CpuPerAdvertLb01,
    CpuPerAdvertLb02,
    /// The marginal cost: what the instances added since the next smaller N
    /// cost per advert they added, from the same round's two runs. The average
    /// above carries the fixed cost (reference pings, timers) that one
    /// instance does not amortise; this one is what "flat in N" means.
    MarginalPerAdvertLb01,
    MarginalPerAdvertLb02,
    /// Packets a second lb02 sent over the window (`ip -s link`). A backup
    /// sends no adverts: this is splitguard's liveness echoes (one stream per
    /// peer, so flat in N) and probes.
    PpsLb02,
    /// Resident memory at the end of the window (keepalived: all its processes), MiB.
    RssLb01,
    RssLb02,
    /// lb01's link down → the last VIP added on lb02 (netlink), ms.
    FailoverLastAddr,
    /// lb01's link down → the last VIP heard at gw from lb02's MAC (ARP answer
    /// or gratuitous ARP), ms.
    FailoverLastArp,
    /// That over the single instance's Master_Down_Interval (3 adverts and
    /// lb02's skew): 1.10 is the "within 10 %".
    FailoverOverMdi,
    /// `status` over lb01's control socket (what `splitguard status --json`
    /// asks), the median round trip of a few, ms; splitguard only.
    StatusLb01,
    /// One `GET /metrics` of lb01 from gw, connect to last byte, the median of
    /// a few, ms; splitguard only.
    MetricsLb01,
}

impl ScaleMetric {
    /// In the order the rows appear.
    pub const ALL: [ScaleMetric; 16] = [
        ScaleMetric::StartToSteady,
        ScaleMetric::Lb02StartClaims,
        ScaleMetric::CpuLb01,
        ScaleMetric::CpuLb02,
        ScaleMetric::CpuPerAdvertLb01,
        ScaleMetric::CpuPerAdvertLb02,
        ScaleMetric::MarginalPerAdvertLb01,
        ScaleMetric::MarginalPerAdvertLb02,
        ScaleMetric::PpsLb02,
        ScaleMetric::RssLb01,
        ScaleMetric::RssLb02,
        ScaleMetric::FailoverLastAddr,
        ScaleMetric::FailoverLastArp,
        ScaleMetric::FailoverOverMdi,
        ScaleMetric::StatusLb01,
        ScaleMetric::MetricsLb01,
    ];

    /// Whether only splitguard has this figure (keepalived has no status
    /// socket or `/metrics`; its cell stays empty).
    pub fn splitguard_only(self) -> bool {
        matches!(self, ScaleMetric::StatusLb01 | ScaleMetric::MetricsLb01)
    }

    /// Whether the figure compares a run with the next smaller N's (so the
    /// smallest N has no such row).
    pub fn marginal(self) -> bool {
        matches!(
            self,
            ScaleMetric::MarginalPerAdvertLb01 | ScaleMetric::MarginalPerAdvertLb02
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            ScaleMetric::StartToSteady => "start → steady (lb01 all, lb02 none), ms",
            ScaleMetric::Lb02StartClaims => "VIPs lb02 added during the start",
            ScaleMetric::CpuLb01 => "CPU lb01 (utime+stime), %",
            ScaleMetric::CpuLb02 => "CPU lb02 (utime+stime), %",
            ScaleMetric::CpuPerAdvertLb01 => "CPU per advert sent, lb01 (schedstat), µs",
            ScaleMetric::CpuPerAdvertLb02 => "CPU per advert heard, lb02 (schedstat), µs",
            ScaleMetric::MarginalPerAdvertLb01 => {
                "CPU per advert sent, lb01, marginal over the next smaller N (schedstat), µs"
            }
            ScaleMetric::MarginalPerAdvertLb02 => {
                "CPU per advert heard, lb02, marginal over the next smaller N (schedstat), µs"
            }
            ScaleMetric::PpsLb02 => "packets/s lb02 sent (a backup: no adverts)",
            ScaleMetric::RssLb01 => "RSS lb01, MiB",
            ScaleMetric::RssLb02 => "RSS lb02, MiB",
            ScaleMetric::FailoverLastAddr => "mass failover: link down → last VIP on lb02, ms",
            ScaleMetric::FailoverLastArp => {
                "mass failover: link down → last VIP answering at gw, ms"
            }
            ScaleMetric::FailoverOverMdi => "mass failover at gw ÷ Master_Down_Interval",
            ScaleMetric::StatusLb01 => {
                "status over lb01's control socket (round trip), ms; goal ≤ 100"
            }
            ScaleMetric::MetricsLb01 => "/metrics of lb01 scraped from gw, ms; goal ≤ 50",
        }
    }
}

impl Measurement {
    pub fn label(self) -> String {
        match self {
            Measurement::Failover(f) => format!("failover (link loss), {}, ms", f.label()),
            Measurement::FailoverRandom(f) => format!(
                "failover (link loss) at a random phase of the advert cycle, {}, ms",
                f.label()
            ),
            Measurement::IdleCpuBackup(f) => {
                format!("idle CPU of the backup (schedstat), {}, %", f.label())
            }
            Measurement::IdlePps(f) => {
                format!("idle packets/s sent by both nodes, {}", f.label())
            }
            Measurement::KillDual(f) => format!(
                "master's daemon SIGKILLed: two owners at gw in the {} s after, {}, ms",
                KILL_WINDOW_SECS,
                f.label()
            ),
            Measurement::FreezeDual(f) => format!(
                "master frozen past failover ({} s; keepalived {} s), then resumed: \
                 two owners at gw, {}, ms",
                FREEZE_SECS[0],
                FREEZE_SECS[1],
                f.label()
            ),
            Measurement::Handover(f) => format!("handover (priority 0), {}, ms", f.label()),
            Measurement::IdleCpu(f) => {
                format!("idle CPU of the master (utime+stime), {}, %", f.label())
            }
            Measurement::IdleCpuSched(f) => {
                format!("idle CPU of the master (schedstat), {}, %", f.label())
            }
            Measurement::IdleRss(f) => format!("idle RSS of the master, {}, MiB", f.label()),
            Measurement::Detection(f) => format!(
                "detection: second owner → alert at gw (S2), {}, ms",
                f.label()
            ),
            Measurement::CheckVip(f) => {
                format!("check vip on the backup (zabbix), {}, ms", f.label())
            }
            Measurement::Flood { flavour, metric } => format!(
                "flood {} frames/s: {}, {}",
                FLOOD_RATE,
                metric.label(),
                flavour.label()
            ),
            Measurement::Scale { flavour, n, metric } => {
                format!("scale {}, N={n}: {}", flavour.label(), metric.label())
            }
        }
    }

    /// Whether the ratio columns mean anything for this row: not for a growth
    /// that is about zero for both, where a ratio is noise over noise, nor for
    /// a count that should be zero.
    pub fn has_ratio(self) -> bool {
        !matches!(
            self,
            Measurement::Flood {
                metric: FloodMetric::RssGrowth | FloodMetric::BackupAdverts,
                ..
            }
        )
    }

    /// How a value of this measurement is printed.
    pub fn format(self, v: f64) -> String {
        match self {
            Measurement::Failover(_)
            | Measurement::FailoverRandom(_)
            | Measurement::KillDual(_)
            | Measurement::FreezeDual(_)
            | Measurement::Handover(_)
            | Measurement::Detection(_)
            | Measurement::CheckVip(_) => {
                if v.abs() >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            }
            Measurement::IdleCpu(_) => format!("{v:.3}"),
            Measurement::IdleCpuSched(_) | Measurement::IdleCpuBackup(_) => format!("{v:.4}"),
            Measurement::IdlePps(_) => format!("{v:.1}"),
            Measurement::IdleRss(_) => format!("{v:.1}"),
            Measurement::Flood { metric, .. } => match metric {
                FloodMetric::CpuBefore | FloodMetric::CpuDuring | FloodMetric::CpuAfter => {
                    format!("{v:.3}")
                }
                FloodMetric::RssGrowth => format!("{v:.2}"),
                FloodMetric::BackupAdverts => format!("{v:.0}"),
                FloodMetric::AdvertMaxGap | FloodMetric::AdvertJitter => {
                    if v.abs() >= 100.0 {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.1}")
                    }
                }
            },
            Measurement::Scale { metric, .. } => match metric {
                ScaleMetric::Lb02StartClaims => format!("{v:.0}"),
                ScaleMetric::CpuLb01 | ScaleMetric::CpuLb02 => format!("{v:.2}"),
                ScaleMetric::RssLb01 | ScaleMetric::RssLb02 | ScaleMetric::PpsLb02 => {
                    format!("{v:.1}")
                }
                ScaleMetric::FailoverOverMdi => format!("{v:.2}"),
                ScaleMetric::CpuPerAdvertLb01
                | ScaleMetric::CpuPerAdvertLb02
                | ScaleMetric::MarginalPerAdvertLb01
                | ScaleMetric::MarginalPerAdvertLb02
                | ScaleMetric::StartToSteady
                | ScaleMetric::FailoverLastAddr
                | ScaleMetric::FailoverLastArp
                | ScaleMetric::StatusLb01
                | ScaleMetric::MetricsLb01 => {
                    if v.abs() >= 100.0 {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.1}")
                    }
                }
            },
        }
    }
}

/// How long gw watches after the master's daemon is SIGKILLed, s: past
/// Master_Down_Interval at 1 s adverts (3.6 s) with room to see the result.
pub const KILL_WINDOW_SECS: u64 = 7;
/// How long the master is frozen: past splitguard's failover with early
/// takeover (under 1 s) and past keepalived's Master_Down_Interval (3.6 s), as
/// the issue asks (2 s and 4 s).
pub const FREEZE_SECS: [u64; 2] = [2, 4];

/// The runs of one measurement for one implementation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    pub values: Vec<f64>,
    /// Why each failed run failed.
    pub failures: Vec<String>,
}

/// Median and range of some values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

/// The median (the mean of the middle two for an even count); None when empty.
/// NaN values are ignored.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

pub fn stats(values: &[f64]) -> Option<Stats> {
    let median = median(values)?;
    let finite = values.iter().copied().filter(|x| !x.is_nan());
    Some(Stats {
        median,
        min: finite.clone().fold(f64::INFINITY, f64::min),
        max: finite.clone().fold(f64::NEG_INFINITY, f64::max),
        n: finite.count(),
    })
}

/// `a / b`, None when either is missing or `b` is 0.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// Everything one bench produced, rows in the order they were declared.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub rows: Vec<Measurement>,
    pub cells: BTreeMap<(Measurement, Implementation), Samples>,
    /// Runs per implementation and case that were asked for.
    pub runs: u32,
    /// The implementations that have a column, in order (the scale section runs
    /// no splitguard-noarb, so an empty column would only be noise).
    pub columns: Vec<Implementation>,
}

impl Report {
    /// A report with a column for every implementation.
    pub fn new(rows: Vec<Measurement>, runs: u32) -> Report {
        Report::with_columns(rows, runs, Implementation::ALL.to_vec())
    }

    /// A report with columns for `columns` only; a ratio column appears when
    /// both of its implementations have one.
    pub fn with_columns(rows: Vec<Measurement>, runs: u32, columns: Vec<Implementation>) -> Report {
        Report {
            rows,
            cells: BTreeMap::new(),
            runs,
            columns,
        }
    }

    fn has(&self, imp: Implementation) -> bool {
        self.columns.contains(&imp)
    }

    /// The ratio columns this report has: (header, numerator, denominator).
    pub(crate) fn ratio_columns(&self) -> Vec<(&'static str, Implementation, Implementation)> {
        use Implementation::{Keepalived, Splitguard, SplitguardNoArb, SplitguardNoEarly};
        [
            ("splitguard / keepalived", Splitguard, Keepalived),
            ("splitguard / noearly", Splitguard, SplitguardNoEarly),
            ("noarb / splitguard", SplitguardNoArb, Splitguard),
        ]
        .into_iter()
        .filter(|(_, a, b)| self.has(*a) && self.has(*b))
        .collect()
    }

    pub fn record(&mut self, m: Measurement, imp: Implementation, value: Result<f64, String>) {
        let cell = self.cells.entry((m, imp)).or_default();
        match value {
            Ok(v) => cell.values.push(v),
            Err(e) => cell.failures.push(e),
        }
    }

    pub fn samples(&self, m: Measurement, imp: Implementation) -> Option<&Samples> {
        self.cells.get(&(m, imp))
    }

    pub fn stats(&self, m: Measurement, imp: Implementation) -> Option<Stats> {
        stats(&self.samples(m, imp)?.values)
    }

    pub(crate) fn median_of(&self, m: Measurement, imp: Implementation) -> Option<f64> {
        self.stats(m, imp).map(|s| s.median)
    }

    /// Every failed run, in table order.
    pub fn failures(&self) -> Vec<(Measurement, Implementation, &str)> {
        let mut out = Vec::new();
        for m in &self.rows {
            for &imp in &self.columns {
                if let Some(s) = self.samples(*m, imp) {
                    out.extend(s.failures.iter().map(|f| (*m, imp, f.as_str())));
                }
            }
        }
        out
    }

    /// The table as rows of cells: header first.
    pub(crate) fn grid(&self) -> Vec<Vec<String>> {
        let ratios = self.ratio_columns();
        let mut grid = vec![{
            let mut h = vec!["measurement".to_string()];
            h.extend(self.columns.iter().map(|i| i.name().to_string()));
            h.extend(ratios.iter().map(|(name, _, _)| name.to_string()));
            h
        }];
        for m in &self.rows {
            let mut row = vec![m.label()];
            for &imp in &self.columns {
                row.push(self.cell(*m, imp));
            }
            for (_, a, b) in &ratios {
                row.push(match m.has_ratio() {
                    true => format_ratio(ratio(self.median_of(*m, *a), self.median_of(*m, *b))),
                    false => format_ratio(None),
                });
            }
            grid.push(row);
        }
        grid
    }

    /// `median (min–max)`, and how many runs failed; `—` when none succeeded.
    fn cell(&self, m: Measurement, imp: Implementation) -> String {
        let Some(samples) = self.samples(m, imp) else {
            return "—".into();
        };
        let mut text = match stats(&samples.values) {
            Some(s) if s.n == 1 => m.format(s.median),
            Some(s) => format!(
                "{} ({}–{})",
                m.format(s.median),
                m.format(s.min),
                m.format(s.max)
            ),
            None => "—".into(),
        };
        if !samples.failures.is_empty() {
            let _ = write!(text, " [{} failed]", samples.failures.len());
        }
        text
    }

    /// A plain-text table with aligned columns.
    pub fn render_text(&self) -> String {
        let grid = self.grid();
        let widths: Vec<usize> = (0..grid[0].len())
            .map(|c| grid.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (i, row) in grid.iter().enumerate() {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (cell, w))| {
                    let pad = w - cell.chars().count();
                    if c == 0 {
                        format!("{cell}{}", " ".repeat(pad))
                    } else {
                        format!("{}{cell}", " ".repeat(pad))
                    }
                })
                .collect();
            let _ = writeln!(out, "{}", line.join("  ").trim_end());
            if i == 0 {
                let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
                let _ = writeln!(out, "{}", "-".repeat(total));
            }
        }
        self.footer(&mut out, "");
        out
    }

    /// A Markdown (GitHub) table.
    pub fn render_markdown(&self) -> String {
        let grid = self.grid();
        let mut out = String::new();
        for (i, row) in grid.iter().enumerate() {
            let _ = writeln!(out, "| {} |", row.join(" | "));
            if i == 0 {
                let rule: Vec<&str> = (0..row.len())
                    .map(|c| if c == 0 { "---" } else { "---:" })
                    .collect();
                let _ = writeln!(out, "|{}|", rule.join("|"));
            }
        }
        self.footer(&mut out, "- ");
        out
    }

    pub(crate) fn footer(&self, out: &mut String, bullet: &str) {
        let _ = writeln!(
            out,
            "\n{bullet}Cells: median (min–max) of {} run(s) per implementation; ratios are of medians.",
            self.runs
        );
        // A failed run empties every row of its case: each failure once, at its
        // first row, with how many rows it emptied.
        let mut failures: Vec<(Measurement, Implementation, &str, usize)> = Vec::new();
        for (m, imp, why) in self.failures() {
            match failures.iter_mut().find(|f| f.1 == imp && f.2 == why) {
                Some(f) => f.3 += 1,
                None => failures.push((m, imp, why, 1)),
            }
        }
        if !failures.is_empty() {
            let _ = writeln!(out, "{bullet}Failed runs ({}):", failures.len());
            for (m, imp, why, rows) in failures {
                let more = match rows {
                    1 => String::new(),
                    n => format!(" (and {} more rows)", n - 1),
                };
                let _ = writeln!(out, "  {bullet}{} / {}{more}: {why}", m.label(), imp.name());
            }
        }
    }
}

pub(crate) fn format_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{r:.2}"),
        None => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 2.0]), Some(2.0));
    }

    #[test]
    fn stats_have_the_range_and_count() {
        let s = stats(&[3.0, 9.0, 1.0, 4.0, 5.0]).expect("some");
        assert_eq!((s.median, s.min, s.max, s.n), (4.0, 1.0, 9.0, 5));
        assert_eq!(stats(&[]), None);
    }

    #[test]
    fn ratios_need_both_sides_and_a_non_zero_divisor() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(1.0), None), None);
    }

    fn sample_report() -> Report {
        let f = Measurement::Failover(Flavour::V3HundredMs);
        let cpu = Measurement::IdleCpu(Flavour::V2OneSecond);
        let mut r = Report::new(vec![f, cpu], 3);
        for v in [370.0, 365.0, 380.0] {
            r.record(f, Implementation::Splitguard, Ok(v));
        }
        for v in [360.0, 362.0, 364.0] {
            r.record(f, Implementation::SplitguardNoArb, Ok(v));
        }
        for v in [3600.0, 3610.0] {
            r.record(f, Implementation::SplitguardNoEarly, Ok(v));
        }
        r.record(f, Implementation::Keepalived, Ok(361.0));
        r.record(f, Implementation::Keepalived, Ok(363.0));
        r.record(
            f,
            Implementation::Keepalived,
            Err("192.0.2.3 did not appear within 30s".into()),
        );
        r.record(cpu, Implementation::Splitguard, Ok(0.05));
        r.record(cpu, Implementation::SplitguardNoArb, Ok(0.02));
        r.record(cpu, Implementation::Keepalived, Ok(0.0));
        r
    }

    #[test]
    fn markdown_table_has_medians_ranges_ratios_and_failures() {
        let md = sample_report().render_markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| measurement | splitguard | splitguard-noearly | splitguard-noarb | keepalived | \
             splitguard / keepalived | splitguard / noearly | noarb / splitguard |"
        );
        assert_eq!(lines[1], "|---|---:|---:|---:|---:|---:|---:|---:|");
        // Two runs: the median is the mean of both.
        assert_eq!(
            lines[2],
            "| failover (link loss), v3/100 ms, ms | 370 (365–380) | 3605 (3600–3610) | 362 (360–364) | \
             362 (361–363) [1 failed] | 1.02 | 0.10 | 0.98 |"
        );
        // keepalived at 0 % makes the ratio undefined, not infinite; a column
        // with no run for a row shows a dash.
        assert_eq!(
            lines[3],
            "| idle CPU of the master (utime+stime), v2/1 s, % | 0.050 | — | 0.020 | 0.000 | — | — | 0.40 |"
        );
        assert!(md.contains("median (min–max) of 3 run(s)"));
        assert!(md.contains("keepalived: 192.0.2.3 did not appear within 30s"));
    }

    #[test]
    fn text_table_aligns_columns() {
        let text = sample_report().render_text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("measurement"));
        assert!(lines[1].chars().all(|c| c == '-'));
        // Numbers are right-aligned and the last column ends every line, so the
        // header, the rule and each row are equally wide.
        let width = |l: &str| l.chars().count();
        for l in &lines[1..4] {
            assert_eq!(width(l), width(lines[0]), "{l:?}\n{text}");
        }
        // Ends of the keepalived column line up (right alignment).
        let end_of = |l: &str, needle: &str| {
            l.find(needle)
                .map(|i| l[..i].chars().count() + needle.chars().count())
        };
        let cell_end = end_of(lines[2], "362 (361–363) [1 failed]");
        assert_eq!(cell_end, end_of(lines[3], "0.000"));
        assert!(text.contains("Failed runs (1)"));
    }

    #[test]
    fn a_report_without_noarb_has_neither_its_column_nor_its_ratio() {
        let m = Measurement::Scale {
            flavour: Flavour::V3HundredMs,
            n: 251,
            metric: ScaleMetric::FailoverLastArp,
        };
        let mut r = Report::with_columns(
            vec![m],
            1,
            vec![Implementation::Splitguard, Implementation::Keepalived],
        );
        r.record(m, Implementation::Splitguard, Ok(380.0));
        r.record(m, Implementation::Keepalived, Ok(400.0));
        r.record(
            m,
            Implementation::SplitguardNoArb,
            Err("not a column".into()),
        );
        let md = r.render_markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| measurement | splitguard | keepalived | splitguard / keepalived |"
        );
        assert_eq!(
            lines[2],
            "| scale v3/100 ms, N=251: mass failover: link down → last VIP answering at gw, ms | 380 | 400 | 0.95 |"
        );
        // A failure in a column the report does not show is not listed either.
        assert!(!md.contains("not a column"), "{md}");
    }

    #[test]
    fn flood_rows_have_labels_and_growth_has_no_ratio() {
        let f = Flavour::V3HundredMs;
        let row = |metric| Measurement::Flood { flavour: f, metric };
        let mut r = Report::with_columns(
            FloodMetric::ALL.into_iter().map(row).collect(),
            1,
            vec![Implementation::Splitguard, Implementation::Keepalived],
        );
        for (m, sg, ka) in [
            (FloodMetric::CpuDuring, 4.0, 2.0),
            (FloodMetric::RssGrowth, 0.02, 0.01),
            (FloodMetric::AdvertMaxGap, 104.26, 130.0),
        ] {
            r.record(row(m), Implementation::Splitguard, Ok(sg));
            r.record(row(m), Implementation::Keepalived, Ok(ka));
        }
        let md = r.render_markdown();
        assert!(
            md.contains(
                "| flood 10000 frames/s: CPU of the master during the 10 s flood (schedstat), %, \
                 v3/100 ms | 4.000 | 2.000 | 2.00 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("− before), MiB, v3/100 ms | 0.02 | 0.01 | — |"),
            "{md}"
        );
        assert!(
            md.contains(
                "longest gap between the master's adverts at gw, ms, v3/100 ms | 104 | 130 | 0.80 |"
            ),
            "{md}"
        );
        // No label breaks a Markdown table: every row has the header's cells.
        let cells = |l: &str| l.matches('|').count();
        let lines: Vec<&str> = md.lines().take_while(|l| l.starts_with('|')).collect();
        assert!(lines.iter().all(|l| cells(l) == cells(lines[0])), "{md}");
    }

    #[test]
    fn a_cell_with_no_success_shows_a_dash() {
        let m = Measurement::Handover(Flavour::V2OneSecond);
        let mut r = Report::new(vec![m], 1);
        r.record(m, Implementation::Splitguard, Err("boom".into()));
        let md = r.render_markdown();
        assert!(
            md.contains("| handover (priority 0), v2/1 s, ms | — [1 failed] | — | — | — | — |")
        );
    }
}
