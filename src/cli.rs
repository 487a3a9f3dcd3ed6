//! The command line (clap): subcommands and their flags, as DESIGN.md's CLI contract
//! names them. Parsing only; `main` dispatches.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use splitguard::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "splitguard",
    version,
    about = "Split-brain detection and arbitration for VRRP HA pairs",
    long_about = "Split-brain detection and arbitration for VRRP HA pairs.\n\n\
        splitguard speaks VRRP (v2 and v3) with keepalived on the wire, and adds what \
        keepalived lacks: arbitration before claiming a VIP, self-demotion when isolated, \
        and a watchdog that tells failover from split brain."
)]
pub struct Cli {
    /// Log line format on stderr (RUST_LOG sets the filter).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: the VRRP instances of the config file.
    Run {
        /// Configuration file (TOML).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Log the reboot an isolated node would do instead of doing it (the reboot
        /// ledger is kept in a separate dry-run file, so tests never block a real one).
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the watchdog alone beside keepalived: watches the `[[watch]]` VIPs and
    /// pages through the configured channels.
    Watch {
        /// Configuration file (TOML).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Show the running daemon's state (asks it over the control socket).
    Status {
        /// Take the socket path from this config file.
        #[arg(short, long, value_name = "FILE", conflicts_with = "socket")]
        config: Option<PathBuf>,
        /// The control socket (default /run/splitguard.sock).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Print the status JSON (the contract in DESIGN.md) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One-shot checks for monitoring: Zabbix (one value, LLD), Nagios (plugin
    /// line with perfdata, exit 0/1/2/3), JSON.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
    /// Validate a configuration file: exit 0, or print each problem as FILE:LINE:COL and exit 2.
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Convert a keepalived.conf to splitguard TOML, printed on stdout.
    ///
    /// What cannot be carried over is listed on stderr as FILE:LINE: keyword: why.
    /// Exit 0 when converted (with or without warnings), 2 on a syntax error, an
    /// include that cannot be read, or a result that check-config would refuse.
    ImportKeepalived {
        /// keepalived configuration file (its includes are read too).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The namespace lab: throw-away network namespaces on this machine (needs root;
    /// addresses from 192.0.2.0/24 only; every lab is deleted when done).
    Lab {
        #[command(subcommand)]
        cmd: LabCommand,
    },
}

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
    },
    /// Failover, handover and idle footprint: splitguard (arbiter on and off) against
    /// keepalived, alternating run by run, each run in a fresh lab. Run the release
    /// build (`cargo run --release -- lab bench`): the pairs run this very binary.
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
            threads' schedstat run time, in ns) and its RSS, v2/1 s.\n\n\
            Needs root and keepalived on PATH. The pairs run this very binary, so use the \
            release build for numbers worth keeping. Progress goes to stderr, the table \
            to stdout; exit 0 when every run succeeded, 1 when some failed (they are \
            listed under the table), 130 when interrupted."
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
        /// Only the VRRPv3/100 ms cases (the idle pair too): a short form for CI.
        #[arg(long)]
        quick: bool,
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
        #[arg(long, value_parser = parse_timeout, default_value = "2m")]
        duration: std::time::Duration,
        /// Where the loss applies: lb02's frames, both directions (the default), or
        /// every frame the bridge forwards (gw's own who-has and both arbiters'
        /// probes too: the pair flaps and gw's view is half blind).
        #[arg(long, value_enum, default_value = "lb02")]
        loss: splitguard::lab::soak::LossScope,
        /// Print the report as Markdown.
        #[arg(long)]
        markdown: bool,
    },
}

/// The scenarios named on the command line.
#[derive(Debug, Clone)]
pub struct ScenarioList(pub Vec<splitguard::lab::scenario::Scenario>);

fn parse_scenarios(s: &str) -> Result<ScenarioList, String> {
    splitguard::lab::scenario::Scenario::parse_list(s).map(ScenarioList)
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
    pub fn implementation(self) -> splitguard::lab::report::Implementation {
        use splitguard::lab::report::Implementation;
        match self {
            LabImpl::Splitguard => Implementation::Splitguard,
            LabImpl::SplitguardNoarb => Implementation::SplitguardNoArb,
            LabImpl::Keepalived => Implementation::Keepalived,
        }
    }
}

/// How a check prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    /// One value (Zabbix UserParameter); `ZBX_NOTSUPPORTED: reason` when unknown.
    Zabbix,
    /// `SPLITGUARD OK|WARNING|CRITICAL|UNKNOWN - text | perfdata`, exit 0/1/2/3.
    Nagios,
    Json,
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    splitguard::config::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Who holds the VIP: asked of the running daemon over its control socket
    /// when there is one, else this node's addresses and an ARP who-has (needs
    /// CAP_NET_RAW); Zabbix gets the number of distinct owners (1 healthy,
    /// 0 down, 2 or more split brain).
    Vip {
        #[arg(long, value_name = "IP")]
        vip: std::net::Ipv4Addr,
        /// The interface to ask on (default: the one on the VIP's subnet).
        #[arg(long, value_name = "IF")]
        interface: Option<String>,
        #[arg(long, value_enum, default_value = "nagios")]
        format: CheckFormat,
        /// How long to wait for ARP answers.
        #[arg(long, default_value = "200ms", value_parser = parse_timeout)]
        timeout: std::time::Duration,
        /// Take the daemon's socket path from this config file.
        #[arg(short, long, value_name = "FILE", conflicts_with = "socket")]
        config: Option<PathBuf>,
        /// The daemon's control socket, asked first when it exists (default
        /// /run/splitguard.sock).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// An instance's state from the daemon: Zabbix gets keepalived's numbers
    /// (0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT).
    State {
        #[arg(long, value_name = "NAME")]
        instance: String,
        #[arg(long, value_enum, default_value = "nagios")]
        format: CheckFormat,
        /// Take the socket path from this config file.
        #[arg(short, long, value_name = "FILE", conflicts_with = "socket")]
        config: Option<PathBuf>,
        /// The control socket (default /run/splitguard.sock).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Zabbix low-level discovery: a JSON array of {#INSTANCE}, {#VIP},
    /// {#VRID}, {#INTERFACE}, one entry per VIP.
    Discovery {
        #[arg(short, long, value_name = "FILE", conflicts_with = "socket")]
        config: Option<PathBuf>,
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
}
