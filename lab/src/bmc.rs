//! BMC emulators on the lab's management segment (issue 21, fencing): the
//! power switch a fence agent or the native Redfish client throws. Each runs
//! in a management-only host, keeps its files in a directory of its own in
//! the lab directory, and is stopped when dropped.
//!
//! - [`IpmiBmc`]: OpenIPMI's `ipmi_sim` on UDP 623 (IPMI 1.5 and 2.0/lanplus).
//!   Its `chassis_control` program is a shell hook the lab writes: it keeps
//!   the power state in a file, and "set power 0" powers the target lab host
//!   off (SIGKILLs every process in its namespace and sets each of its links
//!   but `lo` down); "set power 1" sets the links up again. Every call is
//!   appended with a timestamp to a log ([`IpmiBmc::power_log`]).
//!   [`IpmiBmc::stall`] SIGSTOPs the simulator: a BMC that never answers.
//! - [`RedfishBmc`]: PyPI's `sushy-tools` 2.2.0 (`sushy-emulator`, its fake
//!   driver) over HTTPS with basic auth, from the venv `target/sushy-venv`
//!   that `contrib/test.sh` makes. sushy has no power hook, so a poller
//!   thread reads the system's `PowerState` every [`REDFISH_POLL`] and runs
//!   the same hook on a change: the target host goes off as with IPMI.
//!
//! What the emulators do, and this relies on:
//! - `ipmi_sim` exits 1 at once, logging to syslog only, without an
//!   `mc_setbmc` before the MC's definition ("No bmc_ipmb specified"); it
//!   binds port 623 only at the command file's `mc_enable`. The hook is
//!   called as `PROG 0x20 get power` (answers `power:1` or `power:0`) and
//!   `PROG 0x20 set power 0|1`.
//! - `fence_ipmilan` needs `cipher=3` with lanplus against `ipmi_sim` (else each
//!   call costs 10-14 s); with `power_wait=0` a call takes 0.1-0.3 s. Against
//!   a stalled `ipmi_sim` it gives up by itself after 5 s ("Connection timed
//!   out"), the default `login_timeout`.
//! - sushy's fake driver answers ForceOff with 204 and applies the new
//!   `PowerState` 1-11 s later, and only when the system is read.
//!   `SUSHY_EMULATOR_FAKE_DRIVER` must be in the config file (the environment
//!   variable is ignored); the auth file takes bcrypt hashes only.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netns::{Lab, LabBuilder, LabError};
use super::process::LabProcess;

/// The IPMI BMCs' addresses (management-only hosts `bmc1`, `bmc2`).
pub const IPMI_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 204);
pub const IPMI_ADDR2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 205);
/// The Redfish BMC's address (management-only host `rfbmc`).
pub const REDFISH_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 206);
pub const IPMI_PORT: u16 = 623;
pub const REDFISH_PORT: u16 = 8000;
/// The emulators' admin account (a lab's, shown nowhere else).
pub const BMC_USER: &str = "admin";
pub const BMC_PASSWORD: &str = "lab-bmc-s3cret";
/// The Redfish system's id: `/redfish/v1/Systems/<id>`.
pub const REDFISH_SYSTEM_ID: &str = "27946b59-9e44-4fa7-8e91-f3527a1ef094";
/// How often the Redfish poller reads `PowerState`.
pub const REDFISH_POLL: Duration = Duration::from_secs(1);
/// How long an emulator may take to listen (measured: ipmi_sim < 0.1 s,
/// sushy-emulator 1-3 s).
const START_BOUND: Duration = Duration::from_secs(30);
const READY_POLL: Duration = Duration::from_millis(100);
/// How long the poller lives at most (a test lasts minutes).
const POLLER_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a request of the lab's own (curl) may take.
const CURL_MAX_TIME: &str = "3";
/// The IPMI MC's address, as the hook sees it.
const MC: &str = "0x20";
const CERT_DAYS: &str = "2";
/// Log lines an error carries.
const TAIL: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum BmcError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "the sushy-tools venv {0} is missing (sushy-emulator not found): run contrib/test.sh, which makes it with `pip install sushy-tools==2.2.0`"
    )]
    NoSushyVenv(PathBuf),
    #[error("{name} exited ({status}){logs}")]
    Exited {
        name: String,
        status: String,
        logs: String,
    },
    #[error("{what}: not within {within:?}{logs}")]
    Timeout {
        what: String,
        within: Duration,
        logs: String,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
}

impl LabBuilder {
    /// Adds the IPMI BMCs' hosts `bmc1` ([`IPMI_ADDR`]) and `bmc2`
    /// ([`IPMI_ADDR2`]) and the Redfish BMC's `rfbmc` ([`REDFISH_ADDR`]),
    /// management-only (and so the management segment).
    pub fn bmc_hosts(self) -> Self {
        self.management_host("bmc1", IPMI_ADDR)
            .management_host("bmc2", IPMI_ADDR2)
            .management_host("rfbmc", REDFISH_ADDR)
    }
}

/// One call of the power hook, from its log.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerCall {
    /// Seconds since the epoch.
    pub at: f64,
    /// `get power`, `set power 0`, `set power 1`, or what else it was asked.
    pub call: String,
}

/// The hook's files: the script, its power state and its log.
struct Hook {
    script: PathBuf,
    state: PathBuf,
    log: PathBuf,
}

impl Hook {
    /// Writes the hook for `target`'s namespace into `dir`, power on.
    fn write(dir: &Path, target_netns: &str) -> Result<Hook, BmcError> {
        let script = dir.join("power-hook.sh");
        let state = dir.join("power");
        let log = dir.join("power.log");
        let text = format!(
            r#"#!/bin/sh
# ipmi_sim's chassis_control (and the Redfish poller's): `$0 MC get power`
# prints power:0|1; `$0 MC set power 0|1` powers {ns} off or on.
state='{state}'
log='{log}'
ns='{ns}'
echo "$(date +%s.%N) $2 $3 $4" >> "$log"
links() {{
  ip -n "$ns" -o link show 2>/dev/null | awk -F': ' '{{print $2}}' | cut -d@ -f1 | grep -vx lo
}}
case "$2 $3" in
"get power")
  p=$(cat "$state" 2>/dev/null || echo 1)
  echo "power:$p"
  ;;
"set power")
  if [ "$4" = 0 ]; then
    # A process forking while it is killed is caught by the next pass.
    for pass in 1 2 3 4 5; do
      pids=$(ip netns pids "$ns" 2>/dev/null)
      [ -z "$pids" ] && break
      kill -9 $pids 2>/dev/null
      sleep 0.02
    done
    for l in $(links); do ip -n "$ns" link set "$l" down; done
    echo 0 > "$state"
  else
    for l in $(links); do ip -n "$ns" link set "$l" up; done
    echo 1 > "$state"
  fi
  ;;
esac
exit 0
"#,
            ns = target_netns,
            state = state.display(),
            log = log.display(),
        );
        write_file(&script, &text, 0o700)?;
        write_file(&state, "1\n", 0o600)?;
        write_file(&log, "", 0o600)?;
        Ok(Hook { script, state, log })
    }

    fn calls(&self) -> Vec<PowerCall> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let (at, call) = line.split_once(' ')?;
                Some(PowerCall {
                    at: at.parse().ok()?,
                    call: call.trim().to_string(),
                })
            })
            .collect()
    }

    fn offs(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.call == "set power 0")
            .count()
    }

    fn powered(&self) -> Option<bool> {
        match std::fs::read_to_string(&self.state).ok()?.trim() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        }
    }

    /// Runs the hook as the BMC would.
    fn run(&self, args: &[&str]) -> Result<Output, BmcError> {
        let out = Command::new(&self.script)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| BmcError::Io {
                what: format!("run {}", self.script.display()),
                source,
            })?;
        Ok(out)
    }
}

/// `ipmi_sim` in a management host, the power switch of `target`.
pub struct IpmiBmc<'lab> {
    lab: &'lab Lab,
    host: String,
    addr: Ipv4Addr,
    dir: PathBuf,
    hook: Hook,
    process: Option<LabProcess>,
    stalled: AtomicBool,
}

impl<'lab> IpmiBmc<'lab> {
    /// Starts a BMC in management host `host` (listening on its address,
    /// port [`IPMI_PORT`], user [`BMC_USER`]/[`BMC_PASSWORD`], admin) that
    /// powers lab host `target` off and on; waits until it listens.
    pub fn start(lab: &'lab Lab, host: &str, target: &str) -> Result<IpmiBmc<'lab>, BmcError> {
        let addr = lab.host(host)?.addr;
        let target_netns = lab.host(target)?.netns.clone();
        let dir = lab.dir().join(format!("bmc-{host}"));
        let state_dir = dir.join("state");
        std::fs::create_dir_all(&state_dir).map_err(|source| BmcError::Io {
            what: format!("create {}", state_dir.display()),
            source,
        })?;
        let hook = Hook::write(&dir, &target_netns)?;
        let lan = dir.join("lan.conf");
        write_file(
            &lan,
            &format!(
                r#"name "sg-{host}"
set_working_mc {MC}
  startlan 1
    addr {addr} {IPMI_PORT}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{hook} {MC}"
user 2 true "{BMC_USER}" "{BMC_PASSWORD}" admin 10 none md2 md5 straight
"#,
                hook = hook.script.display()
            ),
            0o600,
        )?;
        let emu = dir.join("sim.emu");
        // mc_setbmc first, or ipmi_sim exits; mc_enable last, or it never binds.
        write_file(
            &emu,
            &format!(
                "mc_setbmc {MC}\nmc_add {MC} 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable {MC}\n"
            ),
            0o600,
        )?;
        let (lan_s, emu_s, state_s) = (
            lan.to_string_lossy().into_owned(),
            emu.to_string_lossy().into_owned(),
            state_dir.to_string_lossy().into_owned(),
        );
        let process = lab.spawn(
            host,
            &format!("ipmi_sim-{host}"),
            &["ipmi_sim", "-c", &lan_s, "-f", &emu_s, "-s", &state_s, "-n"],
        )?;
        let mut bmc = IpmiBmc {
            lab,
            host: host.to_string(),
            addr,
            dir,
            hook,
            process: Some(process),
            stalled: AtomicBool::new(false),
        };
        bmc.wait_listening()?;
        Ok(bmc)
    }

    fn wait_listening(&mut self) -> Result<(), BmcError> {
        let deadline = Instant::now() + START_BOUND;
        let want = format!("{}:{IPMI_PORT}", self.addr);
        loop {
            if let Some(p) = self.process.as_mut()
                && let Some(status) = p.try_exit()
            {
                return Err(BmcError::Exited {
                    name: p.name.clone(),
                    status: status.to_string(),
                    logs: p.log_tail(TAIL),
                });
            }
            let out = self.lab.run(&self.host, &["ss", "-Hlun"])?;
            if String::from_utf8_lossy(&out.stdout).contains(&want) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BmcError::Timeout {
                    what: format!("ipmi_sim listening on {want}"),
                    within: START_BOUND,
                    logs: self.log_tail(TAIL),
                });
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// The BMC's address (port [`IPMI_PORT`]).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The BMC's files (configs, hook, power log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every call of the power hook so far, oldest first.
    pub fn power_log(&self) -> Vec<PowerCall> {
        self.hook.calls()
    }

    /// How many times the BMC was told to power off.
    pub fn power_offs(&self) -> usize {
        self.hook.offs()
    }

    /// The emulated power: Some(true) on, Some(false) off.
    pub fn powered(&self) -> Option<bool> {
        self.hook.powered()
    }

    /// SIGSTOPs the simulator: requests go unanswered until [`Self::resume`].
    pub fn stall(&self) {
        set_stalled(self.process.as_ref(), &self.stalled, true);
    }

    /// SIGCONTs a stalled simulator.
    pub fn resume(&self) {
        set_stalled(self.process.as_ref(), &self.stalled, false);
    }

    /// The simulator's log and the hook's calls, for a failure report.
    pub fn log_tail(&self, n: usize) -> String {
        let mut text = self
            .process
            .as_ref()
            .map(|p| p.log_tail(n))
            .unwrap_or_default();
        let calls = self.hook.calls();
        let shown: Vec<String> = calls[calls.len().saturating_sub(n)..]
            .iter()
            .map(|c| format!("{:.3} {}", c.at, c.call))
            .collect();
        text.push_str(&format!(
            "\n  --- power hook of {} ---\n    {}",
            self.host,
            shown.join("\n    ")
        ));
        text
    }
}

impl Drop for IpmiBmc<'_> {
    fn drop(&mut self) {
        // A stopped process ignores SIGTERM until continued.
        if self.stalled.load(Ordering::Relaxed) {
            self.resume();
        }
        if let Some(mut p) = self.process.take() {
            p.stop(Duration::from_secs(2));
        }
    }
}

/// The venv with sushy-tools: `target/sushy-venv` in the workspace, or
/// `$SPLITGUARD_SUSHY_VENV`; an error naming contrib/test.sh when missing.
pub fn sushy_venv() -> Result<PathBuf, BmcError> {
    let venv = match std::env::var_os("SPLITGUARD_SUSHY_VENV") {
        Some(v) => PathBuf::from(v),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .join("target/sushy-venv"),
    };
    if venv.join("bin/sushy-emulator").is_file() && venv.join("bin/python").exists() {
        Ok(venv)
    } else {
        Err(BmcError::NoSushyVenv(venv))
    }
}

/// `sushy-emulator` (fake driver) over HTTPS in a management host, one
/// system ([`REDFISH_SYSTEM_ID`], power on), optionally the power switch of
/// a target lab host through the poller.
pub struct RedfishBmc<'lab> {
    lab: &'lab Lab,
    host: String,
    addr: Ipv4Addr,
    dir: PathBuf,
    ca: PathBuf,
    netrc: PathBuf,
    hook: Option<Arc<Hook>>,
    process: Option<LabProcess>,
    poller: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    stalled: AtomicBool,
}

impl<'lab> RedfishBmc<'lab> {
    /// Starts the emulator in management host `host` on its address, port
    /// [`REDFISH_PORT`], with a certificate for that address from a CA of
    /// its own ([`Self::ca_path`]) and user [`BMC_USER`]/[`BMC_PASSWORD`];
    /// with `target`, powering the system off powers that lab host off.
    /// Waits until it answers.
    pub fn start(
        lab: &'lab Lab,
        host: &str,
        target: Option<&str>,
    ) -> Result<RedfishBmc<'lab>, BmcError> {
        let venv = sushy_venv()?;
        let addr = lab.host(host)?.addr;
        let dir = lab.dir().join(format!("bmc-{host}"));
        let state_dir = dir.join("state");
        std::fs::create_dir_all(&state_dir).map_err(|source| BmcError::Io {
            what: format!("create {}", state_dir.display()),
            source,
        })?;
        let hook = match target {
            Some(t) => Some(Arc::new(Hook::write(&dir, &lab.host(t)?.netns)?)),
            None => None,
        };
        let (ca, _) = make_ca(&dir, "ca")?;
        let (cert, key) = make_leaf(&dir, &ca, addr)?;
        let htpasswd = dir.join("htpasswd");
        let hash = bcrypt_hash(&venv, BMC_PASSWORD)?;
        write_file(&htpasswd, &format!("{BMC_USER}:{hash}\n"), 0o600)?;
        let netrc = dir.join("netrc");
        write_file(
            &netrc,
            &format!("machine {addr} login {BMC_USER} password {BMC_PASSWORD}\n"),
            0o600,
        )?;
        let config = dir.join("sushy.conf");
        let py = |p: &Path| format!("{:?}", p.to_string_lossy());
        write_file(
            &config,
            &format!(
                "SUSHY_EMULATOR_LISTEN_IP = '{addr}'\n\
                 SUSHY_EMULATOR_LISTEN_PORT = {REDFISH_PORT}\n\
                 SUSHY_EMULATOR_SSL_CERT = {cert}\n\
                 SUSHY_EMULATOR_SSL_KEY = {key}\n\
                 SUSHY_EMULATOR_AUTH_FILE = {auth}\n\
                 SUSHY_EMULATOR_STATE_DIR = {state}\n\
                 SUSHY_EMULATOR_FAKE_DRIVER = True\n\
                 SUSHY_EMULATOR_FAKE_SYSTEMS = [{{'uuid': '{REDFISH_SYSTEM_ID}', 'name': '{name}', 'power_state': 'On', 'nics': [{{'mac': '02:00:00:00:00:06', 'ip': '192.0.2.6'}}]}}]\n",
                cert = py(&cert),
                key = py(&key),
                auth = py(&htpasswd),
                state = py(&state_dir),
                name = target.unwrap_or("system"),
            ),
            0o600,
        )?;
        let program = venv.join("bin/sushy-emulator");
        let (program_s, config_s) = (
            program.to_string_lossy().into_owned(),
            config.to_string_lossy().into_owned(),
        );
        let process = lab.spawn(
            host,
            &format!("sushy-{host}"),
            &[&program_s, "--config", &config_s],
        )?;
        let mut bmc = RedfishBmc {
            lab,
            host: host.to_string(),
            addr,
            dir,
            ca,
            netrc,
            hook,
            process: Some(process),
            poller: None,
            stalled: AtomicBool::new(false),
        };
        bmc.wait_ready()?;
        if bmc.hook.is_some() {
            bmc.start_poller()?;
        }
        Ok(bmc)
    }

    /// The BMC's base URL, `https://192.0.2.206:8000`.
    pub fn url(&self) -> String {
        format!("https://{}:{REDFISH_PORT}", self.addr)
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The CA that signed the BMC's certificate (PEM).
    pub fn ca_path(&self) -> &Path {
        &self.ca
    }

    /// A CA that did not sign it (for a test of a wrong `ca`).
    pub fn unrelated_ca(&self) -> Result<PathBuf, BmcError> {
        Ok(make_ca(&self.dir, "other-ca")?.0)
    }

    /// The system's path, `/redfish/v1/Systems/<id>`.
    pub fn system_path(&self) -> String {
        format!("/redfish/v1/Systems/{REDFISH_SYSTEM_ID}")
    }

    /// The system's `PowerState` as the emulator says it now (reading it is
    /// also what makes the fake driver apply a pending change).
    pub fn power_state(&self) -> Result<Option<String>, BmcError> {
        let body = self.get(&self.system_path())?;
        Ok(serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("PowerState")?.as_str().map(str::to_string)))
    }

    /// The power hook's calls (with a target), oldest first.
    pub fn power_log(&self) -> Vec<PowerCall> {
        self.hook.as_ref().map(|h| h.calls()).unwrap_or_default()
    }

    /// How many times the target was powered off (with a target).
    pub fn power_offs(&self) -> usize {
        self.hook.as_ref().map_or(0, |h| h.offs())
    }

    /// SIGSTOPs the emulator: connections are accepted by the kernel but
    /// never answered (fence_redfish then waits forever) until
    /// [`Self::resume`].
    pub fn stall(&self) {
        set_stalled(self.process.as_ref(), &self.stalled, true);
    }

    /// SIGCONTs a stalled emulator.
    pub fn resume(&self) {
        set_stalled(self.process.as_ref(), &self.stalled, false);
    }

    /// The emulator's log, for a failure report.
    pub fn log_tail(&self, n: usize) -> String {
        self.process
            .as_ref()
            .map(|p| p.log_tail(n))
            .unwrap_or_default()
    }

    /// GET `path` with curl in the BMC's own host, checked against the CA;
    /// the body of a 2xx answer.
    fn get(&self, path: &str) -> Result<Vec<u8>, BmcError> {
        curl_get(
            self.lab,
            &self.host,
            &self.ca,
            &self.netrc,
            &format!("{}{path}", self.url()),
        )
    }

    fn wait_ready(&mut self) -> Result<(), BmcError> {
        let deadline = Instant::now() + START_BOUND;
        loop {
            if let Some(p) = self.process.as_mut()
                && let Some(status) = p.try_exit()
            {
                return Err(BmcError::Exited {
                    name: p.name.clone(),
                    status: status.to_string(),
                    logs: p.log_tail(TAIL),
                });
            }
            let last = match self.get("/redfish/v1/Systems") {
                Ok(_) => return Ok(()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(BmcError::Timeout {
                    what: format!("sushy-emulator answering on {} (last: {last})", self.url()),
                    within: START_BOUND,
                    logs: self.log_tail(TAIL),
                });
            }
            std::thread::sleep(READY_POLL * 3);
        }
    }

    /// The thread that turns the system's `PowerState` into the target's
    /// power: it reads the system every [`REDFISH_POLL`] and runs the hook
    /// on a change. Ends on Drop, or after [`POLLER_LIFETIME`].
    fn start_poller(&mut self) -> Result<(), BmcError> {
        let Some(hook) = self.hook.clone() else {
            return Ok(());
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let netns = self.lab.host(&self.host)?.netns.clone();
        let (ca, netrc, url) = (
            self.ca.clone(),
            self.netrc.clone(),
            format!("{}{}", self.url(), self.system_path()),
        );
        let handle = std::thread::Builder::new()
            .name(format!("bmc-poller-{}", self.host))
            .spawn(move || {
                let started = Instant::now();
                let mut on = true;
                while !stop2.load(Ordering::Relaxed) && started.elapsed() < POLLER_LIFETIME {
                    let state = curl_in(&netns, &ca, &netrc, &url).ok().and_then(|body| {
                        serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()?
                            .get("PowerState")?
                            .as_str()
                            .map(str::to_string)
                    });
                    let now_on = match state.as_deref() {
                        Some("On") => Some(true),
                        Some("Off") => Some(false),
                        _ => None,
                    };
                    if let Some(now_on) = now_on
                        && now_on != on
                    {
                        on = now_on;
                        let _ = hook.run(&[MC, "set", "power", if on { "1" } else { "0" }]);
                    }
                    // Sleep in slices so Drop need not wait a whole period.
                    let until = Instant::now() + REDFISH_POLL;
                    while Instant::now() < until && !stop2.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
            .map_err(|source| BmcError::Io {
                what: "start the Redfish power poller".into(),
                source,
            })?;
        self.poller = Some((stop, handle));
        Ok(())
    }
}

impl Drop for RedfishBmc<'_> {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.poller.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
        // A stopped process ignores SIGTERM until continued.
        if self.stalled.load(Ordering::Relaxed) {
            self.resume();
        }
        if let Some(mut p) = self.process.take() {
            p.stop(Duration::from_secs(3));
        }
    }
}

/// curl GET in `host`'s namespace (see [`curl_in`]).
fn curl_get(
    lab: &Lab,
    host: &str,
    ca: &Path,
    netrc: &Path,
    url: &str,
) -> Result<Vec<u8>, BmcError> {
    curl_in(&lab.host(host)?.netns, ca, netrc, url)
}

/// curl GET `url` inside namespace `netns`, bounded, credentials from a
/// netrc file (not argv); the body of a 2xx answer, else an error.
fn curl_in(netns: &str, ca: &Path, netrc: &Path, url: &str) -> Result<Vec<u8>, BmcError> {
    let (ca, netrc) = (ca.to_string_lossy(), netrc.to_string_lossy());
    let args = [
        "netns",
        "exec",
        netns,
        "curl",
        "-sS",
        "--fail",
        "--max-time",
        CURL_MAX_TIME,
        "--cacert",
        &ca,
        "--netrc-file",
        &netrc,
        url,
    ];
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BmcError::Io {
            what: "run curl (is curl installed?)".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(BmcError::Command {
            command: format!("curl {url}"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// A bcrypt hash of `password` by the venv's bcrypt (sushy's auth file
/// takes no other); the password goes by stdin.
fn bcrypt_hash(venv: &Path, password: &str) -> Result<String, BmcError> {
    use std::io::Write as _;
    let python = venv.join("bin/python");
    let command = format!("{} -c <bcrypt.hashpw>", python.display());
    let mut child = Command::new(&python)
        .args([
            "-c",
            "import bcrypt,sys; print(bcrypt.hashpw(sys.stdin.buffer.read(), bcrypt.gensalt(rounds=4)).decode())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BmcError::Io {
            what: command.clone(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(password.as_bytes())
            .map_err(|source| BmcError::Io {
                what: command.clone(),
                source,
            })?;
    }
    let out = child.wait_with_output().map_err(|source| BmcError::Io {
        what: command.clone(),
        source,
    })?;
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !hash.starts_with("$2") {
        return Err(BmcError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(hash)
}

fn openssl(args: &[&str]) -> Result<(), BmcError> {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BmcError::Io {
            what: "run openssl".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(BmcError::Command {
            command: format!("openssl {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// A self-signed CA, `<name>.pem` and `<name>.key` in `dir`.
fn make_ca(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), BmcError> {
    let (pem, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let subject = format!("/CN=splitguard lab BMC {name}");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        CERT_DAYS,
        "-subj",
        &subject,
        "-keyout",
        &key.to_string_lossy(),
        "-out",
        &pem.to_string_lossy(),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ])?;
    Ok((pem, key))
}

/// The BMC's certificate for `addr` (CN and IP SAN), signed by `ca`.
fn make_leaf(dir: &Path, ca: &Path, addr: Ipv4Addr) -> Result<(PathBuf, PathBuf), BmcError> {
    let (pem, key, csr, ext) = (
        dir.join("bmc.pem"),
        dir.join("bmc.key"),
        dir.join("bmc.csr"),
        dir.join("bmc.ext"),
    );
    let ca_key = ca.with_extension("key");
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        &format!("/CN={addr}"),
        "-keyout",
        &key.to_string_lossy(),
        "-out",
        &csr.to_string_lossy(),
    ])?;
    write_file(
        &ext,
        &format!(
            "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\nsubjectAltName = IP:{addr}\n"
        ),
        0o600,
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr.to_string_lossy(),
        "-CA",
        &ca.to_string_lossy(),
        "-CAkey",
        &ca_key.to_string_lossy(),
        "-CAcreateserial",
        "-days",
        CERT_DAYS,
        "-extfile",
        &ext.to_string_lossy(),
        "-out",
        &pem.to_string_lossy(),
    ])?;
    Ok((pem, key))
}

/// Writes `text` to `path` with `mode` (a new or rewritten file).
fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), BmcError> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let error = |source| BmcError::Io {
        what: format!("write {}", path.display()),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(error)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)
}

/// Stops (SIGSTOP) or continues (SIGCONT) an emulator's process and notes
/// which, so it is continued before it is stopped for good on drop.
fn set_stalled(process: Option<&LabProcess>, stalled: &AtomicBool, stall: bool) {
    if let Some(p) = process {
        p.signal(if stall { libc::SIGSTOP } else { libc::SIGCONT });
        stalled.store(stall, Ordering::Relaxed);
    }
}
