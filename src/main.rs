//! The `splitguard` binary: parses the command line, sets up logging, and runs the
//! subcommand. Errors reach the operator as one readable chain (anyhow), and exit
//! codes are part of the contract (check-config: 0 valid, 2 invalid).

mod cli;
mod daemon;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use splitguard::config;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::ImportKeepalived { file } => import_keepalived(&file),
        Command::Status {
            config,
            socket,
            json,
        } => match status(config.as_deref(), socket, json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("splitguard status: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Watch { config } => {
            splitguard::logging::init(cli.log_format, "info");
            match watch(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("splitguard: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config, dry_run } => {
            splitguard::logging::init(cli.log_format, "info");
            match run(&config, dry_run) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("splitguard: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            println!(
                "{}: OK: node {}, {} instance(s){}",
                path.display(),
                cfg.node,
                cfg.instances.len(),
                cfg.instances
                    .iter()
                    .map(|i| format!(
                        "\n  {} vrid {} on {} priority {} VRRPv{} VIPs {}",
                        i.name,
                        i.vrid,
                        i.interface,
                        i.priority,
                        i.version.number(),
                        i.vips
                            .iter()
                            .map(|v| format!("{}/{}", v.addr, v.prefix_len))
                            .collect::<Vec<_>>()
                            .join(",")
                    ))
                    .collect::<String>()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// Prints the converted TOML on stdout and every warning on stderr; exit 0 when
/// converted, 2 when the file cannot be read or parsed or the result is invalid.
fn import_keepalived(path: &std::path::Path) -> ExitCode {
    let imported = splitguard::import::import_file(path);
    for warning in &imported.warnings {
        eprintln!("{warning}");
    }
    match imported.result {
        Ok(toml) => {
            print!("{toml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn run(path: &std::path::Path, dry_run: bool) -> anyhow::Result<()> {
    let cfg = config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    // One thread: the daemon's work is a few packets a second, and a single-thread
    // runtime keeps its footprint next to keepalived's.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(daemon::run(cfg, daemon::Options { dry_run }))
}

fn watch(path: &std::path::Path) -> anyhow::Result<()> {
    let cfg = config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(splitguard::watch::standalone::run(cfg))
}

/// Default control socket, as in the config's default.
const DEFAULT_SOCKET: &str = "/run/splitguard.sock";

fn status(
    config: Option<&std::path::Path>,
    socket: Option<std::path::PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let socket = match (config, socket) {
        (Some(path), _) => {
            config::load(path)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .control_socket
        }
        (None, Some(socket)) => socket,
        (None, None) => DEFAULT_SOCKET.into(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let status = rt.block_on(splitguard::control::client::status(
        &socket,
        std::time::Duration::from_secs(5),
    ))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", splitguard::status::render_text(&status));
    }
    Ok(())
}
