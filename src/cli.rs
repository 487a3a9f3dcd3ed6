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
}
