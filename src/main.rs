//! The `splitguard` binary: parses the command line, sets up logging, and runs the
//! subcommand. Errors reach the operator as one readable chain (anyhow), and exit
//! codes are part of the contract (check-config: 0 valid, 2 invalid).

mod cli;
mod daemon;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use splitguard::config;

use cli::{CheckCommand, CheckFormat, Cli, Command, LabCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Check { what } => check(what),
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
        Command::Lab {
            cmd:
                LabCommand::Bench {
                    runs,
                    markdown,
                    idle,
                    quick,
                },
        } => lab_bench(runs, markdown, std::time::Duration::from_secs(idle), quick),
        Command::Lab {
            cmd: LabCommand::Demo { quick },
        } => lab_demo(quick),
        Command::Lab {
            cmd:
                LabCommand::Soak {
                    duration,
                    loss,
                    markdown,
                },
        } => lab_soak(duration, loss, markdown),
        Command::Lab {
            cmd:
                LabCommand::Scenario {
                    name,
                    impls,
                    markdown,
                },
        } => lab_scenario(name.0, &impls, markdown),
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
            // What `run` and `watch` would refuse, reported the same way.
            let (refused, warnings) = exposed_files(path, &cfg);
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            let mut problems = refused;
            for (keys, files) in cfg.tls_listeners() {
                if let Err(e) = splitguard_watchdog::io::listener::load_tls(&files.into()) {
                    problems.push(format!("{keys}: {e}"));
                }
            }
            if !problems.is_empty() {
                for p in &problems {
                    eprintln!("{p}");
                }
                return ExitCode::from(2);
            }
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

/// Secret-bearing files others may read (the config itself, TLS keys), as
/// (refusals, warnings) per `secret_file_mode`.
fn exposed_files(path: &std::path::Path, cfg: &config::Config) -> (Vec<String>, Vec<String>) {
    let found: Vec<String> = config::exposure::check(path, cfg)
        .iter()
        .map(ToString::to_string)
        .collect();
    match cfg.secret_file_mode {
        config::SecretFileMode::Refuse => (found, Vec::new()),
        config::SecretFileMode::Warn => (Vec::new(), found),
    }
}

/// Loads the config for `run` or `watch`: valid, and its secrets not readable
/// by others (or only warned about, with `secret_file_mode = "warn"`).
fn load_for_service(path: &std::path::Path) -> anyhow::Result<config::Config> {
    let cfg = config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (refused, warnings) = exposed_files(path, &cfg);
    for w in warnings {
        tracing::warn!("{w}");
    }
    if !refused.is_empty() {
        anyhow::bail!("{}", refused.join("\n"));
    }
    Ok(cfg)
}

fn run(path: &std::path::Path, dry_run: bool) -> anyhow::Result<()> {
    let cfg = load_for_service(path)?;
    // One thread: the daemon's work is a few packets a second, and a single-thread
    // runtime keeps its footprint next to keepalived's.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(daemon::run(cfg, daemon::Options { dry_run }))
}

fn watch(path: &std::path::Path) -> anyhow::Result<()> {
    let cfg = load_for_service(path)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(splitguard::watch::standalone::run(cfg))
}

/// The binary the lab's nodes run: this one.
fn lab_binary() -> anyhow::Result<std::path::PathBuf> {
    std::env::current_exe().context("find this binary (the lab's nodes run it as splitguard)")
}

/// `splitguard lab demo`: the timeline on stdout. Exit 0 when the story played
/// through, 1 when a step did not happen (it says which), 130 when interrupted.
fn lab_demo(quick: bool) -> ExitCode {
    use splitguard::lab::demo::{self, DemoError, DemoOptions};
    splitguard::lab::measure::install_interrupt_handler();
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

/// `splitguard lab scenario`: progress on stderr, the table on stdout.
fn lab_scenario(
    scenarios: Vec<splitguard::lab::scenario::Scenario>,
    impls: &[cli::LabImpl],
    markdown: bool,
) -> ExitCode {
    use splitguard::lab::report::Implementation;
    use splitguard::lab::scenario::{self, ScenarioError, ScenarioOptions};
    splitguard::lab::measure::install_interrupt_handler();
    let outcome = (|| -> anyhow::Result<Vec<scenario::RunResult>> {
        let mut impls: Vec<Implementation> = impls.iter().map(|i| i.implementation()).collect();
        if impls.is_empty() {
            impls = vec![Implementation::Splitguard, Implementation::Keepalived];
        }
        impls.dedup();
        let opts = ScenarioOptions {
            scenarios,
            impls,
            splitguard: lab_binary()?,
        };
        Ok(scenario::run(&opts, &mut |line| eprintln!("{line}"))?)
    })();
    match outcome {
        Ok(results) => {
            print!("{}", scenario::render(&results, markdown));
            if scenario::any_failed(&results) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
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
    loss: splitguard::lab::soak::LossScope,
    markdown: bool,
) -> ExitCode {
    use splitguard::lab::soak::{self, SoakError, SoakOptions};
    splitguard::lab::measure::install_interrupt_handler();
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

/// `splitguard lab bench`: the table on stdout, progress on stderr. Exit 1 when a
/// run failed (the table lists it), 130 when interrupted; the labs are gone either way.
fn lab_bench(runs: u32, markdown: bool, idle: std::time::Duration, quick: bool) -> ExitCode {
    use splitguard::lab::bench::{self, BenchError, BenchOptions};
    let outcome = (|| -> anyhow::Result<splitguard::lab::report::Report> {
        bench::check_prerequisites()?;
        let splitguard = std::env::current_exe()
            .context("find this binary (the bench runs it as the splitguard daemon)")?;
        if cfg!(debug_assertions) {
            eprintln!(
                "note: this is a debug build; for numbers worth keeping run \
                 `cargo run --release -- lab bench` (or target/release/splitguard)"
            );
        }
        eprintln!(
            "lab bench: {runs} run(s) per case and implementation, idle window {} s{}; daemon {}",
            idle.as_secs(),
            if quick { ", v3/100 ms only" } else { "" },
            splitguard.display()
        );
        splitguard::lab::measure::install_interrupt_handler();
        let opts = BenchOptions {
            runs,
            idle,
            quick,
            splitguard,
        };
        Ok(bench::run(&opts, &mut |line| eprintln!("{line}"))?)
    })();
    match outcome {
        Ok(report) => {
            if markdown {
                print!("{}", report.render_markdown());
            } else {
                print!("{}", report.render_text());
            }
            if report.failures().is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("splitguard lab bench: {e:#}");
            match e.downcast_ref::<BenchError>() {
                Some(BenchError::Interrupted) => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Default control socket, as in the config's default.
const DEFAULT_SOCKET: &str = "/run/splitguard.sock";

/// The control socket: from the config file, the flag, or the default.
fn socket_path(
    config: Option<&std::path::Path>,
    socket: Option<std::path::PathBuf>,
) -> anyhow::Result<std::path::PathBuf> {
    Ok(match (config, socket) {
        (Some(path), _) => {
            config::load(path)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .control_socket
        }
        (None, Some(socket)) => socket,
        (None, None) => DEFAULT_SOCKET.into(),
    })
}

fn status(
    config: Option<&std::path::Path>,
    socket: Option<std::path::PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let socket = socket_path(config, socket)?;
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

/// `splitguard check …`: prints the answer, exits with the plugin code (Nagios)
/// or 0 (Zabbix, JSON; an unknown answer is in the output).
fn check(what: CheckCommand) -> ExitCode {
    use splitguard::check::report::{self, StateReport, UNKNOWN};
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("SPLITGUARD UNKNOWN - cannot start: {e}");
            return ExitCode::from(UNKNOWN);
        }
    };
    let daemon_status = |config: Option<std::path::PathBuf>, socket| {
        socket_path(config.as_deref(), socket).and_then(|path| {
            rt.block_on(splitguard::control::client::status(
                &path,
                std::time::Duration::from_secs(3),
            ))
            .map_err(anyhow::Error::from)
        })
    };
    match what {
        CheckCommand::Vip {
            vip,
            interface,
            format,
            timeout,
            config,
            socket,
        } => {
            // The daemon first (it probes for us, no privilege needed), then ARP.
            let from_daemon = socket_path(config.as_deref(), socket)
                .ok()
                .filter(|p| p.exists())
                .and_then(|path| {
                    let req = splitguard::control::Request::Owners {
                        vip: std::net::IpAddr::V4(vip),
                    };
                    rt.block_on(splitguard::control::client::request(
                        &path,
                        &req,
                        std::time::Duration::from_secs(3),
                    ))
                    .ok()
                })
                .and_then(|resp| resp.owners);
            let r = match from_daemon {
                Some(o) => report::VipReport {
                    vip: o.vip,
                    owners: o.owners.into_iter().collect(),
                    local: o.local,
                    rtt_ms: None,
                    unknown: None,
                },
                None => rt.block_on(splitguard::check::probe_vip(
                    vip,
                    interface.as_deref(),
                    timeout,
                )),
            };
            match format {
                CheckFormat::Zabbix => {
                    println!("{}", report::zabbix_vip(&r));
                    ExitCode::SUCCESS
                }
                CheckFormat::Nagios => {
                    let (line, code) = report::nagios_vip(&r);
                    println!("{line}");
                    ExitCode::from(code)
                }
                CheckFormat::Json => {
                    println!("{}", serde_json::to_string(&r).unwrap_or_default());
                    ExitCode::from(if r.unknown.is_some() { UNKNOWN } else { 0 })
                }
            }
        }
        CheckCommand::State {
            instance,
            format,
            config,
            socket,
        } => {
            let r = match daemon_status(config, socket) {
                Ok(st) => match st.instances.iter().find(|i| i.name == instance) {
                    Some(i) => StateReport {
                        instance: instance.clone(),
                        state: Some(i.state.clone()),
                        unknown: None,
                    },
                    None => StateReport {
                        instance: instance.clone(),
                        state: None,
                        unknown: Some(format!("no instance named {instance}")),
                    },
                },
                Err(e) => StateReport {
                    instance: instance.clone(),
                    state: None,
                    unknown: Some(format!("{e:#}")),
                },
            };
            match format {
                CheckFormat::Zabbix => {
                    println!("{}", report::zabbix_state(&r));
                    ExitCode::SUCCESS
                }
                CheckFormat::Nagios => {
                    let (line, code) = report::nagios_state(&r);
                    println!("{line}");
                    ExitCode::from(code)
                }
                CheckFormat::Json => {
                    println!("{}", serde_json::to_string(&r).unwrap_or_default());
                    ExitCode::from(if r.unknown.is_some() { UNKNOWN } else { 0 })
                }
            }
        }
        CheckCommand::Discovery { config, socket } => match daemon_status(config, socket) {
            Ok(st) => {
                let rows: Vec<serde_json::Value> = st
                    .instances
                    .iter()
                    .flat_map(|i| {
                        i.vips.iter().map(move |v| {
                            serde_json::json!({
                                "{#INSTANCE}": i.name,
                                "{#VIP}": v.split('/').next().unwrap_or(v),
                                "{#VRID}": i.vrid,
                                "{#INTERFACE}": i.interface,
                            })
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("ZBX_NOTSUPPORTED: {e:#}");
                ExitCode::SUCCESS
            }
        },
    }
}
