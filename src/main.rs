//! The `splitguard` binary: parses the command line, sets up logging, and runs the
//! subcommand. Errors reach the operator as one readable chain (anyhow), and exit
//! codes are part of the contract (check-config: 0 valid, 2 invalid).

mod cli;
#[cfg(feature = "lab")]
mod lab;
mod toml_page;

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use splitguard_node::config;

use cli::{CheckCommand, CheckFormat, Cli, Command};

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
            splitguard_node::logging::init(cli.log_format, "info");
            match watch(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("splitguard: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "splitguard", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Manpages { out } => match manpages(&out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("splitguard manpages: {e:#}");
                ExitCode::FAILURE
            }
        },
        #[cfg(feature = "lab")]
        Command::Lab { cmd } => lab::run(cmd),
        Command::Run { config, dry_run } => {
            splitguard_node::logging::init(cli.log_format, "info");
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

/// splitguard(1) and a page per subcommand, from the clap definition, so the
/// pages cannot drift from the command line (a build without the lab has no
/// splitguard-lab pages), and splitguard.toml(5) from the config reference.
fn manpages(out: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    clap_mangen::generate_to(Cli::command(), out)
        .with_context(|| format!("write the man pages into {}", out.display()))?;
    let page = out.join(toml_page::FILE_NAME);
    std::fs::write(&page, toml_page::render()).with_context(|| format!("write {}", page.display()))
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            // What `run` and `watch` would refuse, reported the same way.
            let (refused, warnings) = exposed_files(path, &cfg);
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            if let Some(w) = cfg.witness.as_ref().and_then(config::Witness::warning) {
                eprintln!("warning: {w}");
            }
            let mut problems = refused;
            for (keys, files) in cfg.tls_listeners() {
                if let Err(e) = splitguard_watchdog::io::listener::load_tls(&files.into()) {
                    problems.push(format!("{keys}: {e}"));
                }
            }
            if let Some(tls) = cfg.witness.as_ref().and_then(|w| w.tls.as_ref())
                && let Err(e) = splitguard_node::witness::store::tls_options(tls)
            {
                problems.push(e.to_string());
            }
            for (i, f) in cfg.fences.iter().enumerate() {
                match &f.device.kind {
                    splitguard_node::fence::DeviceKind::Agent(a) => {
                        if splitguard_node::fence::agent::resolve(&a.agent)
                            .is_none_or(|p| !p.is_file())
                        {
                            problems.push(format!(
                                "fence[{i}].agent: {} not found in /usr/sbin, /sbin or the PATH (Debian: apt install fence-agents)",
                                a.agent
                            ));
                        }
                    }
                    splitguard_node::fence::DeviceKind::Redfish(r) => {
                        if let Some(ca) = &r.ca
                            && let Err(e) = std::fs::read(ca)
                        {
                            problems
                                .push(format!("fence[{i}].options.tls_ca: {}: {e}", ca.display()));
                        }
                    }
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
            if let Some(w) = &cfg.witness {
                println!("  {}", w.summary());
            }
            for f in &cfg.fences {
                println!("  {}", f.summary());
            }
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
    let imported = splitguard_node::import::import_file(path);
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
    let daemon = splitguard_node::daemon::run(cfg, splitguard_node::daemon::Options { dry_run });
    block_on_task(&rt, daemon)
}

/// Runs the daemon as a spawned task, not as `block_on`'s own future: the
/// runtime wakes its root future through the driver (an eventfd write per wake,
/// a third of all syscalls at 251 instances), a task through its run queue.
fn block_on_task<F>(rt: &tokio::runtime::Runtime, daemon: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    rt.block_on(async { tokio::spawn(daemon).await })
        .context("the daemon's task ended abnormally")?
}

fn watch(path: &std::path::Path) -> anyhow::Result<()> {
    let cfg = load_for_service(path)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    block_on_task(&rt, splitguard_node::daemon::watch(cfg))
}

/// Default control socket, as in the config's default.
const DEFAULT_SOCKET: &str = "/run/splitguard.sock";

/// Where the Debian package's configs put it (the unit's RuntimeDirectory, since
/// the unprivileged daemon cannot create a socket in /run itself).
const PACKAGED_SOCKET: &str = "/run/splitguard/splitguard.sock";

/// The control socket: from the config file, the flag, or the default; with
/// none given and no socket at the default, the packaged layout's when it
/// exists, so `splitguard status` finds a daemon the package runs.
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
        (None, None) => {
            let packaged = std::path::Path::new(PACKAGED_SOCKET);
            if !std::path::Path::new(DEFAULT_SOCKET).exists() && packaged.exists() {
                packaged.into()
            } else {
                DEFAULT_SOCKET.into()
            }
        }
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
    let status = rt.block_on(splitguard_node::control::client::status(
        &socket,
        std::time::Duration::from_secs(5),
    ))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", splitguard_node::status::render_text(&status));
    }
    Ok(())
}

/// `splitguard check …`: prints the answer, exits with the plugin code (Nagios)
/// or 0 (Zabbix, JSON; an unknown answer is in the output).
fn check(what: CheckCommand) -> ExitCode {
    use splitguard_node::check::report::{self, StateReport, UNKNOWN};
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
            rt.block_on(splitguard_node::control::client::status(
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
            // The daemon first (it probes for us, no privilege needed), then
            // ARP or neighbour discovery ourselves.
            let from_daemon = socket_path(config.as_deref(), socket)
                .ok()
                .filter(|p| p.exists())
                .and_then(|path| {
                    let req = splitguard_node::control::Request::Owners { vip };
                    rt.block_on(splitguard_node::control::client::request(
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
                None => rt.block_on(splitguard_node::check::probe_vip(
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
