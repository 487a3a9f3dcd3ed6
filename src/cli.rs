//! The command line (clap): subcommands and their flags, as DESIGN.md's CLI contract
//! names them. Parsing only; `main` dispatches.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use splitguard_node::logging::LogFormat;

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
        /// Log the reboot an isolated node would do, and any fence of a peer,
        /// instead of doing them (their ledgers are kept in separate dry-run
        /// files, so rehearsals never block a real one).
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
        /// The control socket (default /run/splitguard.sock, else the Debian
        /// package's /run/splitguard/splitguard.sock when only that exists).
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
    /// Print a completion script for SHELL on stdout, generated from this command
    /// line (e.g. `splitguard completions bash > /usr/share/bash-completion/completions/splitguard`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages into DIR: splitguard.1 and one page per subcommand
    /// (splitguard-run.1, ...), generated from this command line, and
    /// splitguard.toml.5, the config file's keys, from the config schema's reference.
    Manpages {
        /// The directory to write them into (made if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// The namespace lab: throw-away network namespaces on this machine (needs root;
    /// addresses from 192.0.2.0/24 only; every lab is deleted when done).
    #[cfg(feature = "lab")]
    Lab {
        #[command(subcommand)]
        cmd: crate::lab::LabCommand,
    },
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
    splitguard_node::config::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Who holds the VIP: asked of the running daemon over its control socket
    /// when there is one, else this node's addresses and an ARP who-has (IPv4)
    /// or a neighbour solicitation (IPv6), which need CAP_NET_RAW; Zabbix gets
    /// the number of distinct owners (1 healthy, 0 down, 2 or more split brain).
    Vip {
        /// The VIP, IPv4 or IPv6 (without prefix length).
        #[arg(long, value_name = "IP")]
        vip: std::net::IpAddr,
        /// The interface to ask on (default: the one holding the VIP, else the
        /// one on its subnet; a link-local IPv6 VIP needs it named).
        #[arg(long, value_name = "IF")]
        interface: Option<String>,
        #[arg(long, value_enum, default_value = "nagios")]
        format: CheckFormat,
        /// How long to wait for ARP or neighbour advertisement answers.
        #[arg(long, default_value = "200ms", value_parser = parse_timeout)]
        timeout: std::time::Duration,
        /// Take the daemon's socket path from this config file.
        #[arg(short, long, value_name = "FILE", conflicts_with = "socket")]
        config: Option<PathBuf>,
        /// The daemon's control socket, asked first when it exists (default
        /// /run/splitguard.sock, else the Debian package's
        /// /run/splitguard/splitguard.sock when only that exists).
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
        /// The control socket (default /run/splitguard.sock, else the Debian
        /// package's /run/splitguard/splitguard.sock when only that exists).
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
