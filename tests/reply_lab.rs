//! Ack-by-reply in namespace labs, signed the way Twilio signs (PyPI's `twilio`
//! RequestValidator), from gw to the reply listener on lb02.
//!
//! - Standalone watch beside keepalived: a valid ACK is accepted and confirmed;
//!   a repeated MessageSid is handled once; a tampered body, a wrong token, a
//!   wrong URL are 401, an unknown sender and an unknown code 403; every one is
//!   in the audit log and in `status`.
//! - The full loop with `splitguard run` on lb02 (arbiter off, so VRRP
//!   firewalled makes a split brain): SMS at the receiver → signed
//!   `<code> DEMOTE` → lb02 releases the VIP → gw sees one owner → resolved.
//!
//! Needs root, keepalived, python3 and the venv contrib/test.sh builds.

mod common;

use common::*;
use splitguard_lab::{Lab, LabProcess, wait_for};
use std::time::Duration;

const TOKEN: &str = "tw1l10-t0ken";
const ONCALL: &str = "+15550002222";
const URL: &str = "http://192.0.2.6:8725/reply/twilio";

fn reply_config() -> String {
    format!(
        "\n[reply]\nlisten = \"192.0.2.6:8725\"\npublic_url = \"{URL}\"\ntwilio_auth_token = \"{TOKEN}\"\n\
         allowed_senders = [\"{ONCALL}\"]\n\n\
         [[channel]]\ntype = \"sms\"\nprovider = \"twilio\"\nname = \"sms\"\napi_url = \"http://192.0.2.254:8081\"\n\
         account_sid = \"AC0123\"\nauth_token = \"tok3n\"\nfrom = \"+15550001111\"\nto = [\"{ONCALL}\"]\n\n\
         [alerts]\ngroup_wait = \"1s\"\n"
    )
}

/// Posts a signed reply from gw; returns the HTTP status.
fn post(lab: &Lab, from: &str, body: &str, sid: &str, extra: &[&str]) -> u16 {
    let py = twilio_python();
    let script = format!(
        "{}/tests/fixtures/twilio_reply.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut argv = vec![py.as_str(), script.as_str(), URL, TOKEN, from, body, sid];
    argv.extend_from_slice(extra);
    let out = lab.run("gw", &argv).expect("reply posted");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no status: {}", String::from_utf8_lossy(&out.stderr)))
}

/// The first SMS alert's code at the recorder.
fn alert_code(log: &std::path::Path, procs: &[&LabProcess]) -> String {
    let body = wait_for(BOUND, || {
        read_jsonl(log).into_iter().find_map(|r| {
            let b = r["form"]["Body"].as_str()?.to_owned();
            b.contains("Reply ").then_some(b)
        })
    })
    .unwrap_or_else(|| panic!("no alert SMS\n{}", logs(procs)));
    body.split("Reply ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_default()
        .to_owned()
}

fn sms_bodies(log: &std::path::Path) -> Vec<String> {
    read_jsonl(log)
        .iter()
        .filter_map(|r| r["form"]["Body"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn signed_replies_are_checked_audited_and_confirmed() {
    let lab = pair_lab("rpl");
    let (_rec, log) = start_recorder(&lab, 8081);
    let ka1 = start_keepalived(&lab, "lb01", &ka_config("lb01", 150, 2, "1"));
    expect_owner(&lab, Some("lb01"), &[&ka1], "keepalived lb01 master");
    let ka2 = start_keepalived(&lab, "lb02", &ka_config("lb02", 100, 2, "1"));
    let dir = lab.dir().display().to_string();
    let cfg = format!(
        "node = \"lb02\"\nstate_dir = \"{dir}/watch-state\"\ncontrol_socket = \"{dir}/watch.sock\"\n\n\
         [[watch]]\nvip = \"{VIP}\"\ninterface = \"eth0\"\nrole = \"backup\"\n{}",
        reply_config()
    );
    let w = start_watch(&lab, "lb02", &cfg);
    wait_listening(&lab, "gw", "192.0.2.6", 8725);
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    let procs = [&ka1, &ka2, &w];
    let code = alert_code(&log, &procs);

    // Refused before any decision: 401.
    assert_eq!(
        post(
            &lab,
            ONCALL,
            &code,
            "SM-t1",
            &["--send-body", "9999 DEMOTE"]
        ),
        401,
        "tampered body"
    );
    assert_eq!(
        post(&lab, ONCALL, &code, "SM-t2", &["--sign-token", "wrong"]),
        401,
        "wrong token"
    );
    assert_eq!(
        post(
            &lab,
            ONCALL,
            &code,
            "SM-t3",
            &["--sign-url", "http://lb02.example/reply/twilio"]
        ),
        401,
        "wrong URL"
    );
    // Decided and refused: 403.
    assert_eq!(
        post(&lab, "+15559999999", &code, "SM-t4", &[]),
        403,
        "unknown sender"
    );
    assert_eq!(
        post(&lab, ONCALL, "9999", "SM-t5", &[]),
        403,
        "unknown code"
    );
    // Accepted, once.
    assert_eq!(post(&lab, ONCALL, &code, "SM-ok", &[]), 200, "valid ACK");
    assert_eq!(
        post(&lab, ONCALL, &code, "SM-ok", &[]),
        200,
        "a repeat is answered"
    );
    let confirmed = wait_for(BOUND, || {
        sms_bodies(&log)
            .into_iter()
            .find(|b| b.contains(&format!("{code} (split_brain) acked by {ONCALL}")))
    });
    assert!(
        confirmed.is_some(),
        "no confirmation: {:?}\n{}",
        sms_bodies(&log),
        logs(&procs)
    );

    let audit: Vec<serde_json::Value> =
        read_jsonl(&lab.dir().join("watch-state/reply-audit.jsonl"));
    let accepted = audit.iter().filter(|r| r["accepted"] == true).count();
    assert_eq!(accepted, 1, "handled once: {audit:#?}");
    let reasons: Vec<String> = audit
        .iter()
        .filter_map(|r| r["reason"].as_str().map(str::to_owned))
        .collect();
    for want in [
        "bad Twilio signature",
        "sender +15559999999 is not allowed",
        "code 9999 is not open",
        "already handled",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(want)),
            "no {want:?} in {reasons:#?}"
        );
    }
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("bad Twilio signature"))
            .count(),
        3
    );
    // status: the incident acked, the replies listed.
    let status = status_via(&lab, "lb02", "watch.sock");
    assert_eq!(status["incidents"][0]["code"], code.as_str(), "{status}");
    assert_eq!(status["incidents"][0]["acked"], true, "{status}");
    assert!(
        status["replies"].as_array().is_some_and(|r| r.len() >= 7),
        "{status}"
    );
}

#[test]
fn demote_by_reply_releases_the_vip_and_resolves() {
    let lab = pair_lab("rplloop");
    let (_rec, log) = start_recorder(&lab, 8081);
    let ka1 = start_keepalived(&lab, "lb01", &ka_config("lb01", 150, 2, "1"));
    expect_owner(&lab, Some("lb01"), &[&ka1], "keepalived lb01 master");
    // splitguard run on lb02 without the arbiter: with VRRP firewalled it claims,
    // as keepalived would, and its watchdog sees the split brain.
    let extra = format!("\n[arbiter]\nenabled = false\n{}", reply_config());
    let cfg = sg_config(&lab, "lb02", 100, 2, "1s", &extra);
    let lb02 = start_splitguard(&lab, "lb02", &cfg);
    wait_listening(&lab, "gw", "192.0.2.6", 8725);
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    let procs = [&ka1, &lb02];
    let code = alert_code(&log, &procs);
    assert!(holds(&lab, "lb02"), "split brain: lb02 holds the VIP too");

    assert_eq!(
        post(&lab, ONCALL, &format!("{code} DEMOTE"), "SM-d1", &[]),
        200
    );
    wait_for(BOUND, || (!holds(&lab, "lb02")).then_some(()))
        .unwrap_or_else(|| panic!("lb02 kept the VIP\n{}", logs(&procs)));
    expect_owner(&lab, Some("lb01"), &procs, "one owner after DEMOTE");
    wait_for(BOUND, || {
        sms_bodies(&log)
            .iter()
            .any(|b| b.contains("RESOLVED") && b.contains("split_brain"))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no resolved SMS: {:?}\n{}", sms_bodies(&log), logs(&procs)));
    assert!(
        sms_bodies(&log).iter().any(|b| b.contains("DEMOTE by")),
        "DEMOTE confirmed: {:?}",
        sms_bodies(&log)
    );
    // Held backup: still not holding a while later, though lb01's adverts are
    // still dropped.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !holds(&lab, "lb02"),
        "the hold must last until RESUME\n{}",
        logs(&procs)
    );
}

/// The generic gateway's signed reply: HMAC-SHA256 over "<ts>.<body>", within
/// the replay window; computed here by Python's hmac, independently of ours.
#[test]
fn generic_gateway_replies_are_signed_and_fresh() {
    let lab = pair_lab("rplgen");
    let dir = lab.dir().display().to_string();
    let cfg = format!(
        "node = \"lb02\"\nstate_dir = \"{dir}/watch-state\"\ncontrol_socket = \"{dir}/watch.sock\"\n\n\
         [[watch]]\nvip = \"{VIP}\"\ninterface = \"eth0\"\nrole = \"backup\"\n\n\
         [reply]\nlisten = \"192.0.2.6:8725\"\ngeneric_secret = \"g3n3r1c\"\nallowed_senders = [\"{ONCALL}\"]\n"
    );
    let w = start_watch(&lab, "lb02", &cfg);
    wait_listening(&lab, "gw", "192.0.2.6", 8725);
    let post = |secret: &str, age: i64, id: &str| -> u16 {
        post_generic_reply(
            &lab,
            "http://192.0.2.6:8725/reply/generic",
            secret,
            ONCALL,
            "STATUS",
            id,
            age,
        )
    };
    assert_eq!(post("g3n3r1c", 0, "g1"), 200, "{}", w.log_text());
    assert_eq!(post("wrong", 0, "g2"), 401);
    assert_eq!(
        post("g3n3r1c", 3600, "g3"),
        401,
        "outside the replay window"
    );
    let audit = read_jsonl(&lab.dir().join("watch-state/reply-audit.jsonl"));
    assert_eq!(
        audit.iter().filter(|r| r["accepted"] == true).count(),
        1,
        "{audit:#?}"
    );
    assert_eq!(audit.len(), 3, "{audit:#?}");
    // A client that sends half its body and stalls is cut off (408), not waited
    // for; and an oversized body is refused (413).
    let slow = r#"
import socket
s = socket.create_connection(("192.0.2.6", 8725), 5)
s.sendall(b"POST /reply/generic HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"from\"")
s.settimeout(20)
print(s.recv(100).decode().split("\r\n")[0])
"#;
    let out = lab.run("gw", &[SYS_PYTHON, "-c", slow]).expect("python");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("408"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let big = r#"
import urllib.request, urllib.error
req = urllib.request.Request("http://192.0.2.6:8725/reply/generic", data=b"x" * 100000)
try:
    print(urllib.request.urlopen(req, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
"#;
    let out = lab.run("gw", &[SYS_PYTHON, "-c", big]).expect("python");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "413");
}

/// A mail reply through a real dovecot: the alert mail's code in the subject,
/// "ack" in the body above the quoted alert; the incident is acked, everyone on
/// the mail channel hears who acked, and the sender gets a confirmation.
#[test]
fn a_mail_reply_acks_through_the_imap_mailbox() {
    use common::dovecot::{Dovecot, PASSWORD, USER};
    let lab = pair_lab("rplmail");
    let dovecot = Dovecot::start(&lab);
    let maildir = lab.dir().join("smtp");
    let smtp_script = format!(
        "{}/tests/fixtures/receivers/smtp_sink.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let _smtp = lab
        .spawn(
            "gw",
            "smtp",
            &[
                SYS_PYTHON,
                &smtp_script,
                "--listen",
                "192.0.2.254:2525",
                "--dir",
                maildir.to_str().expect("utf-8"),
            ],
        )
        .expect("smtp");
    wait_listening(&lab, "gw", "192.0.2.254", 2525);
    let ka1 = start_keepalived(&lab, "lb01", &ka_config("lb01", 150, 2, "1"));
    expect_owner(&lab, Some("lb01"), &[&ka1], "keepalived lb01 master");
    let ka2 = start_keepalived(&lab, "lb02", &ka_config("lb02", 100, 2, "1"));
    let dir = lab.dir().display().to_string();
    let cfg = format!(
        "node = \"lb02\"\nstate_dir = \"{dir}/watch-state\"\ncontrol_socket = \"{dir}/watch.sock\"\n\n\
         [[watch]]\nvip = \"{VIP}\"\ninterface = \"eth0\"\nrole = \"backup\"\n\n\
         [[channel]]\ntype = \"mail\"\nname = \"mail\"\nhost = \"192.0.2.254\"\nport = 2525\ntls = \"none\"\n\
         from = \"splitguard@lb02.example\"\nto = [\"oncall@example.com\"]\n\n\
         [reply]\nallowed_senders = [\"oncall@example.com\"]\n\n\
         [reply.imap]\nhost = \"192.0.2.254\"\nport = 143\ntls = \"none\"\nusername = \"{USER}\"\n\
         password = \"{PASSWORD}\"\nmailbox = \"INBOX\"\npoll_interval = \"2s\"\n\n\
         [alerts]\ngroup_wait = \"1s\"\n"
    );
    let w = start_watch(&lab, "lb02", &cfg);
    std::thread::sleep(Duration::from_secs(2));
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    let procs = [&ka1, &ka2, &w];
    let mails = || stored_mails(&maildir);
    let alert = wait_for(BOUND, || {
        mails()
            .into_iter()
            .find(|m| m.contains("CRITICAL split_brain"))
    })
    .unwrap_or_else(|| panic!("no alert mail\n{}", logs(&procs)));
    let header = |m: &str, name: &str| {
        m.lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .map(|l| l[name.len() + 1..].trim().to_owned())
            .unwrap_or_default()
    };
    let subject = header(&alert, "Subject");
    let msgid = header(&alert, "Message-ID");
    let code = subject
        .split("[SG-")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or_default()
        .to_owned();
    dovecot.deliver(&format!(
        "From: Alice <oncall@example.com>\nTo: splitguard@lb02.example\nSubject: Re: {subject}\n\
         Message-ID: <reply-1@example.com>\nIn-Reply-To: {msgid}\nReferences: {msgid}\n\
         Date: Wed, 25 Nov 2026 01:00:00 +0000\nContent-Type: text/plain; charset=utf-8\n\n\
         ack\n\nOn Wed, splitguard wrote:\n> VIP 192.0.2.3 is on lb02\n"
    ));
    wait_for(BOUND, || {
        mails()
            .iter()
            .any(|m| m.contains(&format!("[SG-{code}] ACKED")))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no acked notice: {:#?}\n{}", mails(), logs(&procs)));
    wait_for(BOUND, || {
        mails()
            .iter()
            .any(|m| {
                m.contains("acked by oncall@example.com")
                    && m.contains("Auto-Submitted: auto-replied")
            })
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no confirmation: {:#?}\n{}", mails(), logs(&procs)));
    let audit = read_jsonl(&lab.dir().join("watch-state/reply-audit.jsonl"));
    assert!(
        audit
            .iter()
            .any(|r| r["accepted"] == true && r["via"] == "mail" && r["code"] == code.as_str()),
        "{audit:#?}"
    );
}
