//! `splitguard lab …` (the `lab` feature, on by default): the lab's command line and
//! its glue to `splitguard_lab`. A packager's build (`--no-default-features`) has
//! neither this module nor the lab crate.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// The story in one command (under 2 minutes, needs root): splitguard on lb01
    /// and lb02, a webhook on gw, and a live timeline of who holds the VIP as gw
    /// sees it and which alerts arrive: steady state, failover, preempt, VRRP
    /// firewalled (S2), VRID typo (S3), uplink cut with the link up (S4).
    Demo {
        /// Stop after S2 (steady, failover, preempt, S2): the short form CI runs.
        #[arg(long)]
        quick: bool,
    },
    /// The split-brain catalogue, each in a fresh lab, the same way for every
    /// implementation: dual-owner and zero-owner seconds seen from gw over a fixed
    /// window, and the alerts that reached gw (kind, node, time after the fault).
    #[command(
        long_about = "The split-brain catalogue, each scenario in a fresh lab (lb01 192.0.2.5 \
            priority 150, lb02 192.0.2.6 priority 100, gw 192.0.2.254, VIP 192.0.2.3/24, \
            VRRPv2 with 1 s adverts), the same way for every implementation:\n\n\
            S1 master dies (link loss), S2 VRRP firewalled on the backup, S3 VRID \
            mismatch, S4 master's uplink broken with its link up, S5 gateway dies, S6 \
            auth mismatch, S7 30 % loss of the frames to the backup.\n\n\
            gw asks who has the VIP every 250 ms; over 20 s after the fault (S7: 60 s) \
            the table counts dual-owner and zero-owner seconds, and lists the alerts that \
            reached gw's webhook with their time after the fault. splitguard runs with \
            its arbiter (reference gw) and alerts; keepalived runs with `splitguard \
            watch` on lb02 for alerts. Needs root (and keepalived for --impl \
            keepalived). Exit 0 when every run gave figures, 1 when one failed, 130 \
            when interrupted."
    )]
    Scenario {
        /// S1 … S7, or all.
        #[arg(value_name = "NAME|all", value_parser = parse_scenarios)]
        name: ScenarioList,
        /// Which implementation to run (repeat for several; default: splitguard
        /// and keepalived).
        #[arg(long = "impl", value_enum, value_name = "IMPL")]
        impls: Vec<LabImpl>,
        /// Print the table as Markdown.
        #[arg(long)]
        markdown: bool,
        /// Run VRRPv3 over IPv6 instead: VIP 2001:db8::3/64, adverts from the
        /// hosts' link-locals, gw asking by neighbour solicitation; S6 is then
        /// an advert interval mismatch (VRRPv3 has no password).
        #[arg(long)]
        ipv6: bool,
        /// Also write a self-contained HTML report to FILE: the table's figures
        /// and, per scenario and implementation, a timeline of who owned the VIP
        /// as gw saw it (a lane per MAC, two-owner and no-owner stretches
        /// shaded, the fault, the heal and the pages). No scripts, nothing
        /// fetched.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Also write the scenario's timeline, every implementation's panel,
        /// as a standalone SVG to FILE (one scenario: name it, not all).
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Failover, handover and idle footprint: splitguard (arbiter on and off) against
    /// keepalived, alternating run by run, each run in a fresh lab; with --scale or
    /// --instances, many instances per pair instead. Run the release build
    /// (`cargo run --release -- lab bench`): the pairs run this very binary.
    #[command(
        long_about = "Failover, handover and idle footprint: splitguard (arbiter on and off) \
            against keepalived 2.2.7, alternating run by run, each run in a fresh lab \
            (lb01 192.0.2.5 priority 150, lb02 192.0.2.6 priority 100, gw 192.0.2.254, \
            VIP 192.0.2.3/24).\n\n\
            failover: lb01's eth0 goes down; handover: lb01's daemon gets SIGTERM (a \
            priority-0 advert). Both are timed from just before the fault to the VIP's \
            address event in lb02 (netlink, subscribed before the fault), the fault \
            lined up just after an advert from lb01. VRRPv2/1 s and VRRPv3/100 ms. \
            idle: the master's CPU over the window (utime+stime, in clock ticks, and the \
            threads' schedstat run time, in ns) and its RSS, v2/1 s. \
            flood (splitguard and keepalived; v3/100 ms, and v2/1 s without --quick): a \
            fourth host (192.0.2.66) sends 10,000 frames a second of VRRP garbage at the \
            pair's VRID and VIP for 10 s, between 5 s windows before and after: the \
            master's CPU (schedstat) in each window, its RSS growth, the longest gap \
            between its adverts and their jitter as gw captures them (tcpdump), and the \
            adverts the backup sent (a spurious takeover).\n\n\
            scale (--scale, or --instances): instead of the cases above, a pair with N \
            VRRP instances, one IPv4 VIP each from TEST-NET-1, splitguard (arbiter on) \
            against keepalived, for each N of --instances (default 1,64,251) in \
            v3/100 ms and v2/1 s: both nodes started together, the time to steady state \
            (lb01 holds every VIP, lb02 none) and how many VIPs lb02 added on the way; \
            each daemon's CPU over a fixed steady window (utime+stime, % of one core; \
            per advert from schedstat) and RSS; then lb01's eth0 goes down and the mass \
            failover is timed to the last VIP added on lb02 and to the last VIP gw hears \
            from lb02's MAC (its who-has answered, or lb02's gratuitous ARP), also as a \
            multiple of the single instance's Master_Down_Interval. N is at most 251: \
            TEST-NET-1 less .0, .255 and the lab's three hosts (255 would need addresses \
            the lab never uses).\n\n\
            --html FILE adds a self-contained report (inline SVG and CSS, no script, \
            nothing fetched): the table's figures and, per measurement, every \
            implementation's runs as dots on a shared axis with the median, min, max \
            and the ratios the table shows; the file is opened before the first run.\n\n\
            Needs root and keepalived on PATH. The pairs run this very binary, so use the \
            release build for numbers worth keeping. Progress goes to stderr, the table \
            to stdout; exit 0 when every run succeeded, 1 when some failed (they are \
            listed under the table) or the report could not be written, 130 when \
            interrupted."
    )]
    Bench {
        /// Runs per implementation and case.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// Print the table as Markdown.
        #[arg(long)]
        markdown: bool,
        /// The idle window in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        idle: u64,
        /// Only the VRRPv3/100 ms cases (the idle pair too; with --scale, only
        /// v3/100 ms): a short form for CI.
        #[arg(long)]
        quick: bool,
        /// Run the scale section instead of the cases above: N instances per pair,
        /// for each N of --instances (default 1,64,251).
        #[arg(long)]
        scale: bool,
        /// Instance counts for the scale section, comma-separated or repeated
        /// (implies --scale; default 1,64,251). At most 251: one IPv4 VIP each
        /// from TEST-NET-1 beside the lab's three hosts, so not 255.
        #[arg(long, value_name = "N[,N...]", value_delimiter = ',', value_parser = parse_instances)]
        instances: Vec<usize>,
        /// The scale section's steady window in seconds (CPU is read over it).
        #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        scale_window: u64,
        /// VRRPv3 over IPv6 instead (VIP 2001:db8::3/64): failover at a fixed
        /// and a random phase and handover at 1 s and 100 ms adverts, and the
        /// idle pair (with --quick, the 100 ms cases only).
        #[arg(long, conflicts_with_all = ["scale", "instances"])]
        ipv6: bool,
        /// Also write a self-contained HTML report to FILE: the table's figures
        /// and, per measurement, every implementation's runs on a shared axis
        /// (median, min, max and the ratios marked). No scripts, nothing fetched.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// A long run of one pair under 30 % random frame loss with faults on a fixed
    /// rotation: fails on growth of RSS, fds or threads beyond a stated bound, on
    /// any panic, or on a dual-owner second the arbiter could have prevented.
    #[command(
        long_about = "A long run of one pair (lb01 192.0.2.5 priority 150, lb02 192.0.2.6 \
            priority 100, gw 192.0.2.254, VIP 192.0.2.3/24, VRRPv2 with 1 s adverts; \
            splitguard with its arbiter and a webhook to gw) under 30 % random frame loss \
            on the bridge (nftables numgen; by default every frame to and from lb02), with a fault every 15 s: lb01's link down for \
            5 s, VRRP dropped on lb02 for 8 s, lb02's daemon SIGTERMed and restarted, \
            lb01's daemon SIGKILLed and restarted (the restarts in the first minute and \
            every tenth cycle after).\n\n\
            Each daemon's RSS, open fds and threads are read every 2 s; a lifetime's \
            first sample 10 s after its start is compared with its last. gw asks who \
            has the VIP every 250 ms. The report gives the faults, owner changes, \
            dual-owner and zero-owner seconds, alerts by kind, and each daemon's figures, \
            then PASS or FAIL with the reasons. Needs root and nft. Exit 0 on PASS, 1 on \
            FAIL, 130 when interrupted."
    )]
    Soak {
        /// How long the soak runs after the pair has settled (e.g. 2m, 1h).
        #[arg(long, value_parser = parse_duration, default_value = "2m")]
        duration: std::time::Duration,
        /// Where the loss applies: lb02's frames, both directions (the default), or
        /// every frame the bridge forwards (gw's own who-has and both arbiters'
        /// probes too: the pair flaps and gw's view is half blind).
        #[arg(long, value_enum, default_value = "lb02")]
        loss: splitguard_lab::soak::LossScope,
        /// Print the report as Markdown.
        #[arg(long)]
        markdown: bool,
    },
    /// Issue 20's partition matrix with the etcd witness: seven cases, each for
    /// splitguard with the witness, splitguard with it off, and keepalived, in
    /// fresh labs with their own etcd cluster; then the failover time with the
    /// witness. The table (Markdown) on stdout.
    #[command(
        long_about = "Issue 20's partition matrix with the etcd witness, each case in a \
            fresh lab (lb01 priority 150, lb02 100, gw 192.0.2.254, VRRPv2 with 1 s \
            adverts, a management segment 192.0.2.192/28 with a three-member etcd \
            cluster at .201-.203) for three implementations: splitguard with [witness] \
            (lease_ttl 3s, ownership probing off, so the witness alone referees), \
            splitguard with the witness off and ownership probing off (the arbiter on, \
            gw as its reference), and keepalived. Every run starts its own etcd and \
            gets the same faults, so the rows compare.\n\n\
            W1 VRRP dropped on the backup (S2); W2 VRRP blocked both ways from the \
            start; W3 the master cut off from the data and the management segment; W4 \
            the master cut off from etcd only; W5 every etcd member stopped; W6 etcd's \
            leader killed; W7 a routed pair (lb01 192.0.2.5/26 and lb02 192.0.2.70/26 \
            behind a router namespace, unicast VRRP, VIP 192.0.2.130/32), VRRP dropped \
            where the router forwards.\n\n\
            Each case is watched for 20 s (--quick: 8 s): gw's ARP who-has every 250 \
            ms, and the nodes' own address lists every 250 ms (the only view in W7); \
            the table counts dual-owner and no-owner samples, owner changes, W3's \
            takeover (the cut to lb02's address event) and lb01's release, splitguard's \
            incidents and the witness's refusals (--rows picks cases). Then --runs \
            runs of W3 with the witness (default 5, --quick 2): the failover time, \
            min / median / max.\n\n\
            Runs go one after another (about 12 minutes in all; --quick about 7). Needs \
            root, nft, etcd-server, etcd-client and keepalived. Progress on stderr, the \
            table on stdout and in --out. Exit 0 when every run gave figures, 1 when one \
            failed, 130 when interrupted."
    )]
    Witness {
        /// 8 s windows instead of 20 s, and 2 failover runs: the short form.
        #[arg(long)]
        quick: bool,
        /// Also write the Markdown table to FILE.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// Failover runs with the witness after the matrix (default 5, --quick 2).
        #[arg(long, value_name = "N")]
        runs: Option<u32>,
        /// Only these cases, comma-separated (default: all seven).
        #[arg(long, value_name = "W1,...|all", value_parser = parse_witness_rows)]
        rows: Option<WitnessRows>,
    },
    /// Issue 21's fencing measurement: two blind claimants (VRRP dropped on
    /// both nodes), each with a `[[fence]]` for the other at its IPMI BMC, in
    /// --runs fresh labs with seeded start orders and offsets: double fencings,
    /// who fenced, and how long gw saw two owners. The table on stdout.
    #[command(
        long_about = "Issue 21's fencing measurement: \"in the two blind claimants case, gw \
            sees one owner within fence_after + the agent's time + 1 s, with 0 double \
            fencing in 20 seeded runs\".\n\n\
            Each run is a fresh lab (lb01 192.0.2.5 priority 150, lb02 192.0.2.6 priority \
            100, gw 192.0.2.254, VIP 192.0.2.3/24, VRRPv2 with 1 s adverts, a management \
            segment with ipmi_sim BMCs at 192.0.2.204 for lb01 and .205 for lb02, whose \
            power-off kills the host's processes and downs its links). VRRP is dropped on \
            both nodes' input, so both claim; splitguard runs on both with the arbiter off \
            (gw its reference) and a [[fence]] for the other through fence_ipmilan \
            (fence_after 2s, timeout 5s). The seed picks each run's start order and the \
            offset of the second daemon (0-3 s); the same seed replays the same plans.\n\n\
            Per run, since the first daemon's start: gw's first ARP request answered by \
            both nodes (gw asks every 100 ms), the fencing node's fencing event, the \
            BMC's power-off, gw's first request answered by one node after the last \
            answered by both, the two-owner time, who fenced, the agent's time (fencing \
            to fenced: off and status) and the issue's bound (fence_after + agent + 1 s). \
            Then the summary: double fencings, whether the better node fenced every time, \
            the two-owner time min / median / max, the runs within the bound; and \
            keepalived 2.2.7 with the same start (it cannot fence: its two-owner time over \
            a 15 s window), unless --no-keepalived.\n\n\
            A run lasts at most 60 s (about 15 s when the fence works). Needs root, nft, \
            fence-agents, ipmitool, openipmi (and keepalived for the comparison). \
            Progress on stderr, the table on stdout. Exit 0 when every run resolved \
            without a double fencing, 1 otherwise (or when a run gave no figures), 130 \
            when interrupted."
    )]
    Fence {
        /// Seeded runs of splitguard.
        #[arg(long, default_value_t = splitguard_lab::fence_bench::DEFAULT_RUNS,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(splitguard_lab::fence_bench::MAX_RUNS)))]
        runs: u32,
        /// The seed of the start plans (run i uses seed + i).
        #[arg(long, default_value_t = splitguard_lab::fence_bench::DEFAULT_SEED)]
        seed: u64,
        /// Print the table as Markdown.
        #[arg(long)]
        markdown: bool,
        /// Skip keepalived's comparison run.
        #[arg(long)]
        no_keepalived: bool,
    },
}

/// The scenarios named on the command line.
#[derive(Debug, Clone)]
pub struct ScenarioList(pub Vec<splitguard_lab::scenario::Scenario>);

fn parse_scenarios(s: &str) -> Result<ScenarioList, String> {
    splitguard_lab::scenario::Scenario::parse_list(s).map(ScenarioList)
}

/// The cases of `lab witness` named on the command line.
#[derive(Debug, Clone)]
pub struct WitnessRows(pub Vec<splitguard_lab::witness_matrix::Row>);

fn parse_witness_rows(s: &str) -> Result<WitnessRows, String> {
    splitguard_lab::witness_matrix::Row::parse_list(s).map(WitnessRows)
}

/// An implementation `lab scenario` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabImpl {
    /// splitguard with its arbiter.
    Splitguard,
    /// splitguard with `[arbiter] enabled = false`.
    SplitguardNoarb,
    /// keepalived, with `splitguard watch` beside it for alerts.
    Keepalived,
}

impl LabImpl {
    pub fn implementation(self) -> splitguard_lab::report::Implementation {
        use splitguard_lab::report::Implementation;
        match self {
            LabImpl::Splitguard => Implementation::Splitguard,
            LabImpl::SplitguardNoarb => Implementation::SplitguardNoArb,
            LabImpl::Keepalived => Implementation::Keepalived,
        }
    }
}

/// One `--instances` count, 1 to 251.
fn parse_instances(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of instances"))?;
    splitguard_lab::bench_scale::check_instances(n)
}

/// A duration as the config writes one (`90s`, `2m`, `1h`).
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    splitguard_node::config::parse_duration(s).map_err(|e| e.to_string())
}

/// Runs one lab subcommand; exit codes as each one documents.
pub fn run(cmd: LabCommand) -> ExitCode {
    match cmd {
        LabCommand::Bench {
            runs,
            markdown,
            idle,
            quick,
            scale,
            instances,
            scale_window,
            ipv6,
            html,
        } => {
            let section = if scale || !instances.is_empty() {
                BenchSection::Scale {
                    instances,
                    window: std::time::Duration::from_secs(scale_window),
                }
            } else {
                BenchSection::Cases {
                    idle: std::time::Duration::from_secs(idle),
                    ipv6,
                }
            };
            lab_bench(runs, markdown, quick, section, html.as_deref())
        }
        LabCommand::Demo { quick } => lab_demo(quick),
        LabCommand::Soak {
            duration,
            loss,
            markdown,
        } => lab_soak(duration, loss, markdown),
        LabCommand::Scenario {
            name,
            impls,
            markdown,
            ipv6,
            html,
            svg,
        } => lab_scenario(
            name.0,
            &impls,
            markdown,
            ipv6,
            ScenarioFiles {
                html: html.as_deref(),
                svg: svg.as_deref(),
            },
        ),
        LabCommand::Witness {
            quick,
            out,
            runs,
            rows,
        } => lab_witness(quick, out, runs, rows.map(|r| r.0)),
        LabCommand::Fence {
            runs,
            seed,
            markdown,
            no_keepalived,
        } => lab_fence(runs, seed, markdown, !no_keepalived),
    }
}

/// `splitguard lab fence`: progress on stderr, the table on stdout. Exit 0
/// when every run resolved without a double fencing, 1 when one did not (or
/// gave no figures, or the command could not run), 130 when interrupted.
fn lab_fence(runs: u32, seed: u64, markdown: bool, keepalived: bool) -> ExitCode {
    use splitguard_lab::fence_bench::{self, FenceError, FenceOptions};
    splitguard_lab::measure::install_interrupt_handler();
    let outcome = (|| -> anyhow::Result<fence_bench::FenceReport> {
        let opts = FenceOptions {
            runs,
            seed,
            keepalived,
            splitguard: lab_binary()?,
        };
        Ok(fence_bench::run(&opts, &mut |line| eprintln!("{line}"))?)
    })();
    match outcome {
        Ok(report) => {
            print!("{}", fence_bench::render(&report, markdown));
            if report.any_failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("splitguard lab fence: {e:#}");
            match e.downcast_ref::<FenceError>() {
                Some(FenceError::Interrupted) => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// `splitguard lab witness`: progress on stderr, the table on stdout (and in
/// `out`). Exit 0 when every run gave figures, 1 when one failed or the
/// matrix could not run, 130 when interrupted.
fn lab_witness(
    quick: bool,
    out: Option<std::path::PathBuf>,
    runs: Option<u32>,
    rows: Option<Vec<splitguard_lab::witness_matrix::Row>>,
) -> ExitCode {
    use splitguard_lab::witness_matrix::{self, MatrixError, MatrixOptions};
    splitguard_lab::measure::install_interrupt_handler();
    let outcome = (|| -> anyhow::Result<witness_matrix::MatrixReport> {
        let mut opts = MatrixOptions::new(quick, lab_binary()?);
        if let Some(runs) = runs {
            opts.failover_runs = runs;
        }
        if let Some(rows) = rows {
            opts.rows = rows;
        }
        Ok(witness_matrix::run(&opts, &mut |line| eprintln!("{line}"))?)
    })();
    match outcome {
        Ok(report) => {
            let table = witness_matrix::render(&report);
            print!("{table}");
            if let Some(path) = out
                && let Err(e) = std::fs::write(&path, &table)
            {
                eprintln!("splitguard lab witness: write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            if report.any_failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("splitguard lab witness: {e:#}");
            match e.downcast_ref::<MatrixError>() {
                Some(MatrixError::Interrupted) => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// The binary the lab's nodes run: this one.
fn lab_binary() -> anyhow::Result<std::path::PathBuf> {
    std::env::current_exe().context("find this binary (the lab's nodes run it as splitguard)")
}

/// `splitguard lab demo`: the timeline on stdout. Exit 0 when the story played
/// through, 1 when a step did not happen (it says which), 130 when interrupted.
fn lab_demo(quick: bool) -> ExitCode {
    use splitguard_lab::demo::{self, DemoError, DemoOptions};
    splitguard_lab::measure::install_interrupt_handler();
    let outcome = (|| -> anyhow::Result<demo::DemoSummary> {
        let opts = DemoOptions {
            quick,
            splitguard: lab_binary()?,
        };
        Ok(demo::run(&opts, &mut |line| println!("{line}"))?)
    })();
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("splitguard lab demo: {e:#}");
            match e.downcast_ref::<DemoError>() {
                Some(DemoError::Interrupted) => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// A report file named on the command line. It is opened before the lab runs,
/// so a path that cannot be written fails in a second, not after the runs.
struct ReportFile {
    path: PathBuf,
    file: std::fs::File,
    /// Whether opening it made it, so an aborted run leaves no empty file.
    created: bool,
}

impl ReportFile {
    fn open(path: &Path, flag: &str) -> anyhow::Result<ReportFile> {
        let created = std::fs::symlink_metadata(path).is_err();
        // No truncation yet: a run that never finishes keeps the old report.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("{flag} {}: cannot write the report there", path.display()))?;
        Ok(ReportFile {
            path: path.to_owned(),
            file,
            created,
        })
    }

    fn write(mut self, text: &str) -> anyhow::Result<()> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all(text.as_bytes()))
            .and_then(|()| self.file.flush())
            .with_context(|| format!("write the report to {}", self.path.display()))
    }

    /// The run gave nothing to write: remove the file if this run made it.
    fn abandon(self) {
        if self.created {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Opens `path` for `flag`, if given.
fn open_report(path: Option<&Path>, flag: &str) -> anyhow::Result<Option<ReportFile>> {
    path.map(|p| ReportFile::open(p, flag)).transpose()
}

/// `lab scenario`'s optional pictures.
struct ScenarioFiles<'a> {
    html: Option<&'a Path>,
    svg: Option<&'a Path>,
}

/// `splitguard lab scenario`: progress on stderr, the table on stdout, the
/// pictures in the files asked for.
fn lab_scenario(
    scenarios: Vec<splitguard_lab::scenario::Scenario>,
    impls: &[LabImpl],
    markdown: bool,
    ipv6: bool,
    files: ScenarioFiles<'_>,
) -> ExitCode {
    use splitguard_lab::configs::Family;
    use splitguard_lab::report::Implementation;
    use splitguard_lab::scenario::{self, ScenarioError, ScenarioOptions};
    let opened = (|| -> anyhow::Result<(Option<ReportFile>, Option<ReportFile>)> {
        if files.svg.is_some() && scenarios.len() != 1 {
            anyhow::bail!("--svg draws one scenario: name it (S1 … S7), not all");
        }
        Ok((
            open_report(files.html, "--html")?,
            open_report(files.svg, "--svg")?,
        ))
    })();
    let (html, svg) = match opened {
        Ok(files) => files,
        Err(e) => {
            eprintln!("splitguard lab scenario: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    splitguard_lab::measure::install_interrupt_handler();
    let outcome = (|| -> anyhow::Result<Vec<scenario::RunResult>> {
        let mut impls: Vec<Implementation> = impls.iter().map(|i| i.implementation()).collect();
        if impls.is_empty() {
            impls = vec![Implementation::Splitguard, Implementation::Keepalived];
        }
        impls.dedup();
        let opts = ScenarioOptions {
            scenarios,
            impls,
            family: if ipv6 { Family::Ipv6 } else { Family::Ipv4 },
            splitguard: lab_binary()?,
        };
        Ok(scenario::run(&opts, &mut |line| eprintln!("{line}"))?)
    })();
    match outcome {
        Ok(results) => {
            print!("{}", scenario::render(&results, markdown));
            let mut code = if scenario::any_failed(&results) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
            let pictures = [
                (html, splitguard_lab::html::scenario_report(&results)),
                (
                    svg,
                    splitguard_lab::html::timeline_svg(&results.iter().collect::<Vec<_>>()),
                ),
            ];
            for (file, text) in pictures {
                if let Some(file) = file
                    && let Err(e) = file.write(&text)
                {
                    eprintln!("splitguard lab scenario: {e:#}");
                    code = ExitCode::FAILURE;
                }
            }
            code
        }
        Err(e) => {
            html.into_iter().chain(svg).for_each(ReportFile::abandon);
            eprintln!("splitguard lab scenario: {e:#}");
            match e.downcast_ref::<ScenarioError>() {
                Some(ScenarioError::Interrupted) => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// `splitguard lab soak`: progress on stderr, the report on stdout. Exit 0 on
/// PASS, 1 on FAIL or when the soak could not run, 130 when interrupted.
fn lab_soak(
    duration: std::time::Duration,
    loss: splitguard_lab::soak::LossScope,
    markdown: bool,
) -> ExitCode {
    use splitguard_lab::soak::{self, SoakError, SoakOptions};
    splitguard_lab::measure::install_interrupt_handler();
    let outcome = (|| -> anyhow::Result<soak::SoakReport> {
        let opts = SoakOptions {
            duration,
            loss,
            splitguard: lab_binary()?,
        };
        Ok(soak::run(&opts, &mut |line| eprintln!("{line}"))?)
    })();
    match outcome {
        Ok(report) => {
            print!("{}", report.render(markdown));
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("splitguard lab soak: {e:#}");
            match e.downcast_ref::<SoakError>() {
                Some(SoakError::Interrupted) => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Which part of `lab bench` runs.
enum BenchSection {
    /// Failover, handover, idle, detection, check vip.
    Cases {
        idle: std::time::Duration,
        ipv6: bool,
    },
    /// Many instances per pair.
    Scale {
        instances: Vec<usize>,
        window: std::time::Duration,
    },
}

/// `splitguard lab bench`: the table on stdout, progress on stderr. Exit 1 when a
/// run failed (the table lists it), 130 when interrupted; the labs are gone either way.
fn lab_bench(
    runs: u32,
    markdown: bool,
    quick: bool,
    section: BenchSection,
    html: Option<&Path>,
) -> ExitCode {
    use splitguard_lab::bench::{self, BenchError, BenchOptions};
    use splitguard_lab::bench_scale::{self, ScaleOptions};
    let html = match open_report(html, "--html") {
        Ok(file) => file,
        Err(e) => {
            eprintln!("splitguard lab bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = (|| -> anyhow::Result<splitguard_lab::report::Report> {
        bench::check_prerequisites()?;
        let splitguard = std::env::current_exe()
            .context("find this binary (the bench runs it as the splitguard daemon)")?;
        if cfg!(debug_assertions) {
            eprintln!(
                "note: this is a debug build; for numbers worth keeping run \
                 `cargo run --release -- lab bench` (or target/release/splitguard)"
            );
        }
        splitguard_lab::measure::install_interrupt_handler();
        match section {
            BenchSection::Cases { idle, ipv6 } => {
                eprintln!(
                    "lab bench: {runs} run(s) per case and implementation, idle window {} s{}; daemon {}",
                    idle.as_secs(),
                    if quick { ", v3/100 ms only" } else { "" },
                    splitguard.display()
                );
                let opts = BenchOptions {
                    runs,
                    idle,
                    quick,
                    ipv6,
                    splitguard,
                };
                Ok(bench::run(&opts, &mut |line| eprintln!("{line}"))?)
            }
            BenchSection::Scale { instances, window } => {
                let shown = if instances.is_empty() {
                    &bench_scale::DEFAULT_INSTANCES[..]
                } else {
                    &instances[..]
                };
                eprintln!(
                    "lab bench, scale: N = {:?}, {runs} run(s) per N, flavour and implementation, \
                     steady window {} s{}; daemon {}",
                    shown,
                    window.as_secs(),
                    if quick { ", v3/100 ms only" } else { "" },
                    splitguard.display()
                );
                let opts = ScaleOptions {
                    instances,
                    runs,
                    window,
                    quick,
                    splitguard,
                };
                Ok(bench_scale::run(&opts, &mut |line| eprintln!("{line}"))?)
            }
        }
    })();
    match outcome {
        Ok(report) => {
            if markdown {
                print!("{}", report.render_markdown());
            } else {
                print!("{}", report.render_text());
            }
            if let Some(file) = html
                && let Err(e) = file.write(&splitguard_lab::html::bench_report(&report))
            {
                eprintln!("splitguard lab bench: {e:#}");
                return ExitCode::FAILURE;
            }
            if report.failures().is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            html.into_iter().for_each(ReportFile::abandon);
            eprintln!("splitguard lab bench: {e:#}");
            match e.downcast_ref::<BenchError>() {
                Some(BenchError::Interrupted) => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
