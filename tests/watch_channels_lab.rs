//! The watchdog end to end through every channel and the spool, with real
//! servers on gw: keepalived on both nodes, `splitguard watch` on lb02, VRRP
//! firewalled on lb02 (split brain).
//!
//! - The same alert reaches a real SMTP server (code in the subject), a
//!   Twilio-compatible receiver (form fields, basic auth), a real Alertmanager
//!   (visible through its API) and a PagerDuty-compatible receiver; after the
//!   heal, resolved follows on each.
//! - Spool: SMTP down while the alert is accepted, the watch SIGKILLed and
//!   restarted, SMTP up after 30 s → the mail arrives once.
//!
//! Needs root, keepalived, python3-aiosmtpd, prometheus-alertmanager.

mod common;

use common::*;
use serde_json::Value;
use splitguard_lab::{Lab, LabProcess, wait_for};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

fn tool(path: &'static str, package: &str) -> &'static str {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the Debian package {package} (contrib/test.sh does)"
    );
    path
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn listening(lab: &Lab, port: u16) {
    let probe = format!("import socket; socket.create_connection(('192.0.2.254', {port}), 1)");
    wait_for(Duration::from_secs(15), || {
        lab.run("lb02", &[PYTHON, "-c", &probe])
            .ok()
            .filter(|o| o.status.success())
    })
    .unwrap_or_else(|| panic!("nothing listens on gw:{port}"));
}

fn start_smtp(lab: &Lab, maildir: &Path) -> LabProcess {
    let p = lab
        .spawn(
            "gw",
            "smtp",
            &[
                tool(PYTHON, "python3-aiosmtpd"),
                &fixture("receivers/smtp_sink.py"),
                "--listen",
                "192.0.2.254:2525",
                "--dir",
                maildir.to_str().expect("utf-8"),
            ],
        )
        .expect("smtp sink");
    listening(lab, 2525);
    p
}

fn mails(maildir: &Path) -> Vec<String> {
    stored_mails(maildir)
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn watch_config(lab: &Lab, channels: &str) -> String {
    let dir = lab.dir().display();
    format!(
        "node = \"lb02\"\nstate_dir = \"{dir}/watch-state\"\ncontrol_socket = \"{dir}/watch.sock\"\n\n\
         [[watch]]\nvip = \"{VIP}\"\ninterface = \"eth0\"\nrole = \"backup\"\n\n{channels}\n\
         [alerts]\ngroup_wait = \"1s\"\n"
    )
}

fn start_watch(lab: &Lab, config: &str, name: &str) -> LabProcess {
    let path = lab.write_file("watch.toml", config).expect("config");
    lab.spawn(
        "lb02",
        name,
        &[
            env!("CARGO_BIN_EXE_splitguard"),
            "watch",
            "-c",
            path.to_str().expect("utf-8"),
        ],
    )
    .expect("watch starts")
}

fn keepalived_pair(lab: &Lab) -> (LabProcess, LabProcess) {
    let ka1 = start_keepalived(lab, "lb01", &ka_config("lb01", 150, 2, "1"));
    expect_owner(lab, Some("lb01"), &[&ka1], "keepalived lb01 master");
    let ka2 = start_keepalived(lab, "lb02", &ka_config("lb02", 100, 2, "1"));
    (ka1, ka2)
}

async fn am_alerts(base: &str) -> Vec<Value> {
    let Ok(resp) = reqwest::get(format!("{base}/api/v2/alerts?active=true")).await else {
        return Vec::new();
    };
    resp.json().await.unwrap_or_default()
}

fn am_active(lab: &Lab) -> Vec<Value> {
    splitguard_watchdog::io::channels::install_crypto_provider();
    lab.within("lb02", || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(am_alerts("http://192.0.2.254:9093"))
    })
    .unwrap_or_default()
}

#[test]
fn one_split_brain_reaches_every_channel_and_resolves_on_each() {
    let lab = pair_lab("wchan");
    let maildir = lab.dir().join("maildir");
    let _smtp = start_smtp(&lab, &maildir);
    let rec_log = lab.dir().join("recorder.jsonl");
    let _rec = lab
        .spawn(
            "gw",
            "recorder",
            &[
                PYTHON,
                &fixture("receivers/http_recorder.py"),
                "--listen",
                "192.0.2.254:8081",
                "--log",
                rec_log.to_str().expect("utf-8"),
            ],
        )
        .expect("recorder");
    listening(&lab, 8081);
    let am_cfg = lab
        .write_file(
            "alertmanager.yml",
            "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
        )
        .expect("am config");
    let _am = lab
        .spawn(
            "gw",
            "alertmanager",
            &[
                tool(ALERTMANAGER, "prometheus-alertmanager"),
                &format!("--config.file={}", am_cfg.display()),
                &format!("--storage.path={}", lab.dir().join("am-data").display()),
                "--web.listen-address=192.0.2.254:9093",
                "--cluster.listen-address=",
            ],
        )
        .expect("alertmanager");
    listening(&lab, 9093);

    let channels = "[[channel]]\ntype = \"mail\"\nname = \"mail\"\nhost = \"192.0.2.254\"\nport = 2525\ntls = \"none\"\n\
        from = \"splitguard@lb02.example\"\nto = [\"oncall@example.com\"]\n\n\
        [[channel]]\ntype = \"sms\"\nprovider = \"twilio\"\nname = \"sms\"\napi_url = \"http://192.0.2.254:8081\"\n\
        account_sid = \"AC0123\"\nauth_token = \"tok3n\"\nfrom = \"+15550001111\"\nto = [\"+15550002222\"]\n\n\
        [[channel]]\ntype = \"alertmanager\"\nname = \"am\"\nurl = \"http://192.0.2.254:9093\"\n\n\
        [[channel]]\ntype = \"pagerduty\"\nname = \"pd\"\nrouting_key = \"R0UTING\"\nurl = \"http://192.0.2.254:8081/v2/enqueue\"\n";
    let (ka1, ka2) = keepalived_pair(&lab);
    let w = start_watch(&lab, &watch_config(&lab, channels), "splitguard-watch");
    std::thread::sleep(Duration::from_secs(2));
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    let procs = [&ka1, &ka2, &w];

    // Mail with the code in the subject.
    let first = wait_for(BOUND, || mails(&maildir).into_iter().next())
        .unwrap_or_else(|| panic!("no mail\n{}", logs(&procs)));
    let subject = first
        .lines()
        .find(|l| l.starts_with("Subject:"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        subject.contains("CRITICAL split_brain VIP 192.0.2.3 on lb02"),
        "{subject}"
    );
    let code: String = subject
        .split("[SG-")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(code.len(), 4, "{subject}");
    assert!(first.contains("Auto-Submitted: auto-generated"), "{first}");

    // SMS and PagerDuty at the recorder.
    let twilio = wait_for(BOUND, || {
        jsonl(&rec_log).into_iter().find(|r| {
            r["path"]
                .as_str()
                .unwrap_or_default()
                .ends_with("/Messages.json")
        })
    })
    .unwrap_or_else(|| panic!("no SMS\n{}", logs(&procs)));
    assert_eq!(twilio["path"], "/2010-04-01/Accounts/AC0123/Messages.json");
    assert_eq!(twilio["form"]["To"], "+15550002222");
    assert_eq!(twilio["form"]["From"], "+15550001111");
    let body = twilio["form"]["Body"].as_str().unwrap_or_default();
    assert!(body.contains(&format!("Reply {code} to ack")), "{body}");
    // Basic auth of AC0123:tok3n.
    assert_eq!(twilio["authorization"], "Basic QUMwMTIzOnRvazNu");
    let trigger = wait_for(BOUND, || {
        jsonl(&rec_log)
            .into_iter()
            .find(|r| r["json"]["event_action"] == "trigger")
    })
    .unwrap_or_else(|| panic!("no PagerDuty trigger\n{}", logs(&procs)));
    assert_eq!(trigger["json"]["routing_key"], "R0UTING");
    let dedup = trigger["json"]["dedup_key"].clone();

    // Alertmanager shows it.
    let active = wait_for(BOUND, || {
        let a = am_active(&lab);
        a.iter()
            .any(|x| x["labels"]["alertname"] == "split_brain" && x["labels"]["node"] == "lb02")
            .then_some(a)
    })
    .unwrap_or_else(|| panic!("Alertmanager has no alert\n{}", logs(&procs)));
    assert!(!active.is_empty());

    // Heal: lb02's keepalived hears lb01 again and releases the VIP.
    lab.nft(Some("lb02"), "delete table inet s2\n")
        .expect("heal");
    wait_for(BOUND, || {
        mails(&maildir)
            .iter()
            .any(|m| m.contains(&format!("[SG-{code}] RESOLVED")))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no resolved mail\n{}", logs(&procs)));
    wait_for(BOUND, || {
        jsonl(&rec_log)
            .iter()
            .any(|r| {
                r["form"]["Body"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("RESOLVED")
            })
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no resolved SMS\n{}", logs(&procs)));
    wait_for(BOUND, || {
        jsonl(&rec_log)
            .iter()
            .any(|r| r["json"]["event_action"] == "resolve" && r["json"]["dedup_key"] == dedup)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no PagerDuty resolve\n{}", logs(&procs)));
    wait_for(BOUND, || {
        (!am_active(&lab)
            .iter()
            .any(|x| x["labels"]["alertname"] == "split_brain"))
        .then_some(())
    })
    .unwrap_or_else(|| panic!("Alertmanager still shows it active\n{}", logs(&procs)));
}

fn spool_outbox(lab: &Lab) -> PathBuf {
    lab.dir().join("watch-state/spool/outbox")
}

/// The notifications in the outbox: its `.json` files. A retry rewrites its
/// entry through a `.tmp` beside it, which is not a second notification.
fn spooled(lab: &Lab) -> Option<usize> {
    std::fs::read_dir(spool_outbox(lab)).ok().map(|d| {
        d.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count()
    })
}

#[test]
fn mail_accepted_while_smtp_is_down_survives_sigkill_and_arrives_once() {
    let lab = pair_lab("wspool");
    let maildir = lab.dir().join("maildir");
    let channels = "[[channel]]\ntype = \"mail\"\nname = \"mail\"\nhost = \"192.0.2.254\"\nport = 2525\ntls = \"none\"\n\
        from = \"splitguard@lb02.example\"\nto = [\"oncall@example.com\"]\n";
    let config = watch_config(&lab, channels);
    let (ka1, ka2) = keepalived_pair(&lab);
    let mut w = start_watch(&lab, &config, "splitguard-watch");
    std::thread::sleep(Duration::from_secs(2));
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    // SMTP is down: the alert is accepted into the spool, not sent.
    let accepted = wait_for(BOUND, || spooled(&lab).filter(|n| *n > 0))
        .unwrap_or_else(|| panic!("nothing spooled\n{}", logs(&[&ka1, &ka2, &w])));
    let down_since = Instant::now();
    assert_eq!(accepted, 1, "one notification on one channel");
    // The spool file is written before the first attempt, so its failure may
    // be logged a moment later.
    assert!(
        wait_for(BOUND, || w.log_text().contains("will retry").then_some(())).is_some(),
        "retrying while SMTP is down:\n{}",
        w.log_text()
    );
    // SIGKILL between accepting and sending, then start again (SMTP still down).
    w.kill();
    let w2 = start_watch(&lab, &config, "splitguard-watch-2");
    // Down for 30 s in all, then up.
    std::thread::sleep(Duration::from_secs(30).saturating_sub(down_since.elapsed()));
    let _smtp = start_smtp(&lab, &maildir);
    wait_for(Duration::from_secs(90), || {
        (!mails(&maildir).is_empty()).then_some(())
    })
    .unwrap_or_else(|| panic!("the spooled mail never arrived\n{}", logs(&[&w, &w2])));
    // Give a duplicate every chance to show up.
    std::thread::sleep(Duration::from_secs(5));
    let got = mails(&maildir);
    assert_eq!(got.len(), 1, "exactly once: {got:#?}\n{}", logs(&[&w, &w2]));
    assert!(got[0].contains("split_brain"), "{}", got[0]);
    assert_eq!(
        std::fs::read_dir(spool_outbox(&lab))
            .map(|d| d.count())
            .unwrap_or(99),
        0,
        "the outbox is empty once delivered (no entry, no temporary)"
    );
}
