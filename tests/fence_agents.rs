//! Fencing's I/O edges (issue 21) against emulated BMCs in namespace labs:
//! lb01 fences lb02 over the management segment, with Debian's real fence
//! agents (`fence_ipmilan`, `fence_redfish`) and the native Redfish client.
//!
//! - `fence_ipmilan` against OpenIPMI's `ipmi_sim`: status On; off runs the
//!   BMC's hook, which kills lb02's processes and sets its links down; status
//!   Off; on sets the links up again. A wrong password fails with the agent's
//!   own reason, no Python warning and no password in it. A stalled BMC
//!   (SIGSTOPped) is a `Timeout` within the device's bound, and the BMC
//!   answers again once resumed.
//! - `fence_redfish` and the native client against sushy-tools' emulator
//!   (HTTPS, basic auth, its fake driver applies a power change 1-11 s late):
//!   status On, off (lb02 goes off through the lab's poller), status Off, on.
//!   The native client trusts the lab's CA, refuses the certificate under an
//!   unrelated CA, and reports a wrong password as HTTP 401; fence_redfish's
//!   wrong password fails readably. A stalled emulator (SIGSTOPped) is a
//!   `Timeout` within the bound for both (fence_redfish itself would wait
//!   forever).
//!
//! Needs root, fence-agents, openipmi, curl, openssl and the venv
//! `target/sushy-venv` (contrib/test.sh makes it); fails without them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use splitguard_lab::Lab;
use splitguard_lab::bmc::{
    BMC_PASSWORD, BMC_USER, IPMI_ADDR, IpmiBmc, REDFISH_ADDR, REDFISH_PORT, REDFISH_SYSTEM_ID,
    RedfishBmc,
};
use splitguard_lab::configs::{LB01_ADDR, LB02_ADDR};
use splitguard_lab::etcd::{LB01_MGMT, LB02_MGMT};
use splitguard_node::fence::{
    AgentSpec, DeviceKind, FenceDevice, FenceError, Op, OptionValue, PowerState, RedfishSpec,
};
use splitguard_watchdog::core::secret::Secret;

/// Far above what a call takes (fence_ipmilan 0.1-0.3 s; fence_redfish off
/// 2-12 s with the fake driver's delay).
const AGENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The stalled BMC's bound, below fence_ipmilan's own 5 s login timeout so
/// the kill is ours.
const STALL_TIMEOUT: Duration = Duration::from_secs(3);
/// What killing and reaping may add to a timeout.
const SLACK: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(10);

fn lab(tag: &str, bmc: (&str, std::net::Ipv4Addr)) -> Lab {
    Lab::builder(tag)
        .host("lb01", LB01_ADDR)
        .host("lb02", LB02_ADDR)
        .management(&[("lb01", LB01_MGMT), ("lb02", LB02_MGMT)])
        .management_host(bmc.0, bmc.1)
        .build()
        .expect("lab builds (run as root)")
}

/// Runs `op` on `dev` from lb01, on a runtime of its own; the answer and how
/// long it took.
fn fence(
    lab: &Lab,
    dev: &FenceDevice,
    op: Op,
) -> (Result<Option<PowerState>, FenceError>, Duration) {
    let dev = dev.clone();
    lab.within("lb01", move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let t = Instant::now();
        let r = rt.block_on(dev.run(op));
        (r, t.elapsed())
    })
    .expect("runs within lb01")
}

fn plain(k: &str, v: &str) -> (String, OptionValue) {
    (k.to_string(), OptionValue::Plain(v.to_string()))
}

fn ipmilan(password: &str, timeout: Duration) -> FenceDevice {
    FenceDevice {
        kind: DeviceKind::Agent(AgentSpec {
            agent: "fence_ipmilan".into(),
            options: vec![
                plain("ip", &IPMI_ADDR.to_string()),
                plain("username", BMC_USER),
                (
                    "password".into(),
                    OptionValue::Secret(Secret::new(password)),
                ),
                plain("lanplus", "1"),
                // Without it each call costs 10-14 s against ipmi_sim.
                plain("cipher", "3"),
                plain("power_wait", "0"),
                plain("power_timeout", "10"),
            ],
        }),
        timeout,
    }
}

/// The links of `host` that are up, `lo` aside.
fn links_up(lab: &Lab, host: &str) -> Vec<String> {
    let out = lab
        .run(host, &["ip", "-o", "link", "show", "up"])
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n != "lo")
        .collect()
}

fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn fence_ipmilan_powers_the_peer_off_and_on() {
    let lab = lab("fipmi", ("bmc1", IPMI_ADDR));
    let bmc = IpmiBmc::start(&lab, "bmc1", "lb02").expect("ipmi_sim starts");
    let dev = ipmilan(BMC_PASSWORD, AGENT_TIMEOUT);
    let logs = || bmc.log_tail(20);

    let shown = dev.describe(Op::Off);
    assert_eq!(
        shown,
        format!(
            "fence_ipmilan action=off ip={IPMI_ADDR} username=admin password=*** lanplus=1 cipher=3 power_wait=0 power_timeout=10"
        )
    );
    assert!(!shown.contains(BMC_PASSWORD));

    let (r, took) = fence(&lab, &dev, Op::Status);
    assert_eq!(r.expect("status"), Some(PowerState::On), "{}", logs());
    eprintln!("fence_ipmilan status: {took:?}");

    let mut victim = lab
        .spawn("lb02", "victim", &["sleep", "600"])
        .expect("sleep in lb02");
    assert_eq!(links_up(&lab, "lb02"), ["eth0", "mgmt0"]);

    let (r, took) = fence(&lab, &dev, Op::Off);
    assert_eq!(r.expect("off"), None, "{}", logs());
    eprintln!("fence_ipmilan off: {took:?}");
    assert_eq!(bmc.power_offs(), 1, "{}", logs());
    assert_eq!(bmc.powered(), Some(false));
    assert!(
        links_up(&lab, "lb02").is_empty(),
        "{:?}",
        links_up(&lab, "lb02")
    );
    let status = victim.wait_exit(WAIT).expect("lb02's process was killed");
    assert!(!status.success(), "{status}");

    let (r, _) = fence(&lab, &dev, Op::Status);
    assert_eq!(r.expect("status"), Some(PowerState::Off), "{}", logs());

    let (r, took) = fence(&lab, &dev, Op::On);
    assert_eq!(r.expect("on"), None, "{}", logs());
    eprintln!("fence_ipmilan on: {took:?}");
    assert_eq!(links_up(&lab, "lb02"), ["eth0", "mgmt0"]);
    let (r, _) = fence(&lab, &dev, Op::Status);
    assert_eq!(r.expect("status"), Some(PowerState::On), "{}", logs());
    assert_eq!(bmc.power_offs(), 1);
}

#[test]
fn fence_ipmilan_with_a_wrong_password_fails_readably() {
    let lab = lab("fipmipw", ("bmc1", IPMI_ADDR));
    let bmc = IpmiBmc::start(&lab, "bmc1", "lb02").expect("ipmi_sim starts");
    let wrong = "not-the-password";
    let (r, took) = fence(&lab, &ipmilan(wrong, AGENT_TIMEOUT), Op::Off);
    eprintln!("fence_ipmilan with a wrong password: {took:?}: {r:?}");
    match r {
        Err(FenceError::Failed { code, detail, .. }) => {
            assert_eq!(code, Some(1));
            assert!(!detail.is_empty());
            for noise in ["DeprecationWarning", "pipes", wrong, BMC_PASSWORD, "\n"] {
                assert!(!detail.contains(noise), "{noise:?} in {detail:?}");
            }
            assert!(detail.len() < 400, "{detail}");
        }
        other => panic!("expected Failed, got {other:?}{}", bmc.log_tail(20)),
    }
    assert_eq!(bmc.power_offs(), 0);
    assert_eq!(links_up(&lab, "lb02"), ["eth0", "mgmt0"]);
}

#[test]
fn a_stalled_bmc_is_a_timeout() {
    let lab = lab("fipmist", ("bmc1", IPMI_ADDR));
    let bmc = IpmiBmc::start(&lab, "bmc1", "lb02").expect("ipmi_sim starts");
    bmc.stall();
    let (r, took) = fence(&lab, &ipmilan(BMC_PASSWORD, STALL_TIMEOUT), Op::Off);
    eprintln!("fence_ipmilan against a stalled BMC: {took:?}: {r:?}");
    match r {
        Err(FenceError::Timeout { after, .. }) => assert_eq!(after, STALL_TIMEOUT),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(
        took >= STALL_TIMEOUT && took < STALL_TIMEOUT + SLACK,
        "{took:?}"
    );
    // The killed agent left nothing behind in lb01 (ipmitool included).
    let netns = lab.host("lb01").expect("lb01").netns.clone();
    assert!(
        wait_until(WAIT, || {
            let out = std::process::Command::new("ip")
                .args(["netns", "pids", &netns])
                .output()
                .expect("ip netns pids");
            out.stdout.is_empty()
        }),
        "a process of the agent outlived the timeout in lb01"
    );
    bmc.resume();
    let (r, _) = fence(&lab, &ipmilan(BMC_PASSWORD, AGENT_TIMEOUT), Op::Status);
    assert_eq!(r.expect("status once resumed"), Some(PowerState::On));
    assert_eq!(bmc.power_offs(), 0);
}

fn redfish_agent(password: &str, timeout: Duration) -> FenceDevice {
    FenceDevice {
        kind: DeviceKind::Agent(AgentSpec {
            agent: "fence_redfish".into(),
            options: vec![
                plain("ip", &REDFISH_ADDR.to_string()),
                plain("ipport", &REDFISH_PORT.to_string()),
                plain("username", BMC_USER),
                (
                    "password".into(),
                    OptionValue::Secret(Secret::new(password)),
                ),
                plain("ssl_insecure", "1"),
                plain(
                    "systems-uri",
                    &format!("/redfish/v1/Systems/{REDFISH_SYSTEM_ID}"),
                ),
            ],
        }),
        timeout,
    }
}

fn native(bmc: &RedfishBmc, ca: Option<PathBuf>, password: &str) -> FenceDevice {
    FenceDevice {
        kind: DeviceKind::Redfish(RedfishSpec {
            url: url::Url::parse(&bmc.url()).expect("url"),
            username: BMC_USER.into(),
            password: Secret::new(password),
            system: None,
            ca,
            insecure: false,
        }),
        timeout: AGENT_TIMEOUT,
    }
}

/// Runs `op`, expecting `want`; panics with the emulator's log otherwise.
fn expect(lab: &Lab, bmc: &RedfishBmc, dev: &FenceDevice, op: Op, want: Option<PowerState>) {
    let (r, took) = fence(lab, dev, op);
    eprintln!("{}: {took:?}: {r:?}", dev.describe(op));
    match r {
        Ok(got) => assert_eq!(got, want, "{op:?}"),
        Err(e) => panic!("{op:?}: {e}{}", bmc.log_tail(30)),
    }
}

#[test]
fn fence_redfish_powers_the_peer_off_and_on() {
    let lab = lab("frfagent", ("rfbmc", REDFISH_ADDR));
    let bmc = RedfishBmc::start(&lab, "rfbmc", Some("lb02")).expect("sushy-emulator starts");
    let dev = redfish_agent(BMC_PASSWORD, AGENT_TIMEOUT);
    assert!(!dev.describe(Op::Off).contains(BMC_PASSWORD));
    expect(&lab, &bmc, &dev, Op::Status, Some(PowerState::On));
    expect(&lab, &bmc, &dev, Op::Off, None);
    expect(&lab, &bmc, &dev, Op::Status, Some(PowerState::Off));
    assert!(
        wait_until(WAIT, || bmc.power_offs() == 1
            && links_up(&lab, "lb02").is_empty()),
        "lb02 not powered off: {:?}{}",
        bmc.power_log(),
        bmc.log_tail(20)
    );
    expect(&lab, &bmc, &dev, Op::On, None);
    expect(&lab, &bmc, &dev, Op::Status, Some(PowerState::On));
    assert!(
        wait_until(WAIT, || links_up(&lab, "lb02").len() == 2),
        "lb02 not powered on: {:?}",
        bmc.power_log()
    );

    // A wrong password: the agent's reason, without warnings or passwords.
    let wrong = "not-the-password";
    let (r, took) = fence(&lab, &redfish_agent(wrong, AGENT_TIMEOUT), Op::Off);
    eprintln!("fence_redfish with a wrong password: {took:?}: {r:?}");
    match r {
        Err(FenceError::Failed { detail, .. }) => {
            assert!(!detail.is_empty());
            for noise in ["DeprecationWarning", "pipes", wrong, BMC_PASSWORD, "\n"] {
                assert!(!detail.contains(noise), "{noise:?} in {detail:?}");
            }
        }
        other => panic!("expected Failed, got {other:?}"),
    }

    // fence_redfish has no request timeout: against a stalled BMC only the
    // device's bound ends it.
    bmc.stall();
    let (r, took) = fence(&lab, &redfish_agent(BMC_PASSWORD, STALL_TIMEOUT), Op::Off);
    eprintln!("fence_redfish against a stalled BMC: {took:?}: {r:?}");
    bmc.resume();
    assert!(matches!(r, Err(FenceError::Timeout { .. })), "{r:?}");
    assert!(
        took >= STALL_TIMEOUT && took < STALL_TIMEOUT + SLACK,
        "{took:?}"
    );
    assert_eq!(bmc.power_offs(), 1);
}

#[test]
fn native_redfish_client_powers_off_and_checks_its_peer() {
    let lab = lab("frfnative", ("rfbmc", REDFISH_ADDR));
    let bmc = RedfishBmc::start(&lab, "rfbmc", Some("lb02")).expect("sushy-emulator starts");
    let dev = native(&bmc, Some(bmc.ca_path().to_path_buf()), BMC_PASSWORD);
    let shown = dev.describe(Op::Off);
    assert_eq!(
        shown,
        format!(
            "redfish POST https://{REDFISH_ADDR}:{REDFISH_PORT}/redfish/v1/Systems/<id>/Actions/ComputerSystem.Reset ForceOff as admin"
        )
    );

    expect(&lab, &bmc, &dev, Op::Status, Some(PowerState::On));
    // Polls PowerState until Off (the fake driver's 1-11 s).
    expect(&lab, &bmc, &dev, Op::Off, None);
    expect(&lab, &bmc, &dev, Op::Status, Some(PowerState::Off));
    assert!(
        wait_until(WAIT, || bmc.power_offs() == 1
            && links_up(&lab, "lb02").is_empty()),
        "lb02 not powered off: {:?}",
        bmc.power_log()
    );
    expect(&lab, &bmc, &dev, Op::On, None);
    expect(&lab, &bmc, &dev, Op::Status, Some(PowerState::On));

    // The system named by its id, and any certificate accepted when insecure.
    let mut named = native(&bmc, None, BMC_PASSWORD);
    if let DeviceKind::Redfish(spec) = &mut named.kind {
        spec.system = Some(REDFISH_SYSTEM_ID.into());
        spec.insecure = true;
    }
    expect(&lab, &bmc, &named, Op::Status, Some(PowerState::On));
    let mut unknown = named.clone();
    if let DeviceKind::Redfish(spec) = &mut unknown.kind {
        spec.system = Some("no-such-system".into());
    }
    let (r, _) = fence(&lab, &unknown, Op::Status);
    let e = r.expect_err("unknown system");
    assert!(e.to_string().contains("no-such-system"), "{e}");

    // A certificate under another CA is refused.
    let other = bmc.unrelated_ca().expect("another CA");
    let (r, _) = fence(&lab, &native(&bmc, Some(other), BMC_PASSWORD), Op::Status);
    eprintln!("native client with an unrelated CA: {r:?}");
    match r {
        Err(e @ FenceError::Redfish { .. }) => {
            let text = e.to_string();
            assert!(
                text.to_lowercase().contains("certificate") || text.contains("UnknownIssuer"),
                "{text}"
            );
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }

    // A wrong password is the BMC's 401, the password nowhere.
    let wrong = "not-the-password";
    let (r, _) = fence(
        &lab,
        &native(&bmc, Some(bmc.ca_path().to_path_buf()), wrong),
        Op::Off,
    );
    eprintln!("native client with a wrong password: {r:?}");
    match r {
        Err(e @ FenceError::Redfish { .. }) => {
            let text = e.to_string();
            assert!(text.contains("401"), "{text}");
            assert!(
                !text.contains(wrong) && !text.contains(BMC_PASSWORD),
                "{text}"
            );
        }
        other => panic!("expected a 401, got {other:?}"),
    }

    // A stalled BMC: the device's bound ends the action.
    let mut bounded = native(&bmc, Some(bmc.ca_path().to_path_buf()), BMC_PASSWORD);
    bounded.timeout = STALL_TIMEOUT;
    bmc.stall();
    let (r, took) = fence(&lab, &bounded, Op::Off);
    eprintln!("native client against a stalled BMC: {took:?}: {r:?}");
    bmc.resume();
    assert!(matches!(r, Err(FenceError::Timeout { .. })), "{r:?}");
    assert!(
        took >= STALL_TIMEOUT && took < STALL_TIMEOUT + SLACK,
        "{took:?}"
    );
    assert_eq!(bmc.power_offs(), 1);
}
