//! The reply mailbox poller against a real dovecot (Debian `dovecot-imapd`) in a
//! namespace lab: dovecot runs in gw (192.0.2.254, plain IMAP on 143), the
//! poller in lb02, so its sockets live in lb02's namespace. Mail is "delivered"
//! the way an MTA's maildir delivery does it: written into the user's
//! `tmp/` and renamed into `new/`.
//!
//! Dovecot runs in the foreground (`dovecot -F -c <labdir>/dovecot/dovecot.conf`)
//! with a self-contained config: `listen = 192.0.2.254`, `ssl = no` (the TLS
//! modes are exercised only as far as a plain server allows: STARTTLS is
//! refused, implicit TLS fails its handshake), base_dir and state_dir in the lab
//! dir, a passwd-file with a plain password. Accounts in this container: the
//! master runs as root (we are root); its login and internal processes keep
//! dovecot's defaults, the Debian package's `dovenull` and `dovecot` users; the
//! mail user must not be root (passwd-file refuses UID 0: "invalid UID '0'"), so
//! the mailbox belongs to `nobody` (65534) and delivered files are chowned to it.
//!
//! Needs root and dovecot-imapd (`contrib/test.sh` installs it); fails, never
//! skips, without them. Every wait is bounded.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use splitguard_lab::{Lab, wait_for};

mod common;
use common::dovecot::{Dovecot, GW, PASSWORD, USER};
use splitguard_watchdog::core::reply::{InboundReply, Via};
use splitguard_watchdog::core::secret::Secret;
use splitguard_watchdog::io::reply::imap::{
    ImapSpec, ImapTls, MailboxPoller, MailboxStatus, PollerOptions, spawn_mailbox_poller_with,
};
use tokio::sync::{mpsc, watch};

const WRONG_PASSWORD: &str = "n0t-the-pa55word";
const BOUND: Duration = Duration::from_secs(20);

fn lab(tag: &str) -> Lab {
    Lab::builder(tag)
        .host("lb02", Ipv4Addr::new(192, 0, 2, 6))
        .host("gw", Ipv4Addr::new(192, 0, 2, 254))
        .build()
        .expect("lab builds (run as root)")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn spec(password: &str, tls: ImapTls, poll_interval: Duration) -> ImapSpec {
    ImapSpec {
        host: GW.into(),
        port: 143,
        tls,
        username: USER.into(),
        password: Secret::new(password),
        mailbox: "INBOX".into(),
        poll_interval,
    }
}

fn quick() -> PollerOptions {
    PollerOptions {
        connect_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(10),
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_secs(1),
        ..PollerOptions::default()
    }
}

/// The next reply, within `within`.
async fn next(rx: &mut mpsc::Receiver<InboundReply>, within: Duration) -> Option<InboundReply> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}

/// Waits until the status satisfies `ok`; panics with it (and dovecot's log)
/// after BOUND.
async fn status_until(
    poller: &MailboxPoller,
    dovecot: &Dovecot,
    what: &str,
    ok: impl FnMut(&MailboxStatus) -> bool,
) -> MailboxStatus {
    let mut st: watch::Receiver<MailboxStatus> = poller.watch_status();
    match tokio::time::timeout(BOUND, st.wait_for(ok)).await {
        Ok(Ok(s)) => s.clone(),
        _ => panic!(
            "{what}: not within {BOUND:?}; status {:?}\n{}",
            poller.status(),
            dovecot.log()
        ),
    }
}

/// The reply to our first page (as a mail client writes it).
const HUMAN_REPLY: &str = "\
Return-Path: <Oncall@Example.com>
From: On Call <Oncall@Example.com>
To: replies@splitguard.example
Subject: Re: [SG-4821] CRITICAL split_brain VIP 192.0.2.3 on lb02
Date: Wed, 25 Nov 2026 00:19:00 +0000
Message-ID: <reply-1@mail.example.com>
In-Reply-To: <sg.lb02-1.1.mail0@splitguard.invalid>
References: <sg.lb02-1.1.mail0@splitguard.invalid>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

4821 ACK

> splitguard CRITICAL split_brain VIP 192.0.2.3 on lb02+lb01.
";

const AUTO_REPLY: &str = "\
From: Vacation <away@example.com>
To: replies@splitguard.example
Subject: Out of office: [SG-4821] CRITICAL split_brain
Auto-Submitted: auto-replied
Message-ID: <away-1@example.com>
In-Reply-To: <sg.lb02-1.1.mail0@splitguard.invalid>

I am away until Monday.
";

/// Multipart, quoted-printable, an encoded subject and no Message-ID.
const MULTIPART_REPLY: &str = "\
From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.de>
To: replies@splitguard.example
Subject: =?UTF-8?Q?Re:_[SG-4821]_St=C3=B6rung?=
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=\"b\"

--b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

4821 DEMOTE =E2=80=93 ich k=C3=BCmmere mich
--b
Content-Type: text/html; charset=utf-8

<p>4821 RESUME</p>
--b--
";

#[test]
fn replies_are_handed_on_once_across_restarts_and_machine_mail_is_not() {
    let lab = lab("rimap");
    let mut dovecot = Dovecot::start(&lab);
    dovecot.deliver(HUMAN_REPLY);
    dovecot.deliver(AUTO_REPLY);
    dovecot.deliver(MULTIPART_REPLY);
    let started = Utc::now();

    lab.within("lb02", || {
        rt().block_on(async {
            let (tx, mut rx) = mpsc::channel(16);
            let poller = spawn_mailbox_poller_with(
                spec(PASSWORD, ImapTls::None, Duration::from_secs(60)),
                quick(),
                tx.clone(),
            );
            let mut got = BTreeMap::new();
            for _ in 0..2 {
                let r = next(&mut rx, BOUND).await.unwrap_or_else(|| {
                    panic!("no reply; status {:?}\n{}", poller.status(), dovecot.log())
                });
                got.insert(r.from.clone(), r);
            }
            let st = status_until(&poller, &dovecot, "first scan", |s| s.scans >= 1).await;
            assert_eq!((st.forwarded, st.skipped), (2, 1), "{st:?}");
            assert!(st.connected && st.uses_idle && st.uses_keyword, "{st:?}");
            assert_eq!(
                next(&mut rx, Duration::from_millis(500)).await,
                None,
                "the auto-reply is not handed on"
            );

            let r = &got["oncall@example.com"];
            assert_eq!(r.via, Via::Mail);
            assert_eq!(
                r.subject.as_deref(),
                Some("Re: [SG-4821] CRITICAL split_brain VIP 192.0.2.3 on lb02")
            );
            assert_eq!(r.refers_to, ["<sg.lb02-1.1.mail0@splitguard.invalid>"]);
            assert_eq!(r.reference, "<reply-1@mail.example.com>");
            assert!(r.text.starts_with("4821 ACK\n"), "{:?}", r.text);
            // INTERNALDATE: when the maildir got it.
            let age = (r.received_at - started).num_seconds().abs();
            assert!(age < 120, "received_at {} vs {started}", r.received_at);

            let r = &got["joerg@example.de"];
            assert_eq!(r.subject.as_deref(), Some("Re: [SG-4821] Störung"));
            assert_eq!(r.text.trim_end(), "4821 DEMOTE – ich kümmere mich");
            let parts: Vec<&str> = r.reference.split(':').collect();
            assert!(
                parts.len() == 3 && parts[0] == "imap" && parts[2].parse::<u32>().is_ok(),
                "synthesized reference {:?}",
                r.reference
            );
            assert!(r.refers_to.is_empty());

            // Restart the poller: nothing is handed on again.
            let t = Instant::now();
            poller.shutdown(Duration::from_secs(5)).await;
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "shutdown took {:?}",
                t.elapsed()
            );
            let poller = spawn_mailbox_poller_with(
                spec(PASSWORD, ImapTls::None, Duration::from_secs(60)),
                quick(),
                tx.clone(),
            );
            let st = status_until(&poller, &dovecot, "rescan", |s| s.scans >= 1).await;
            assert_eq!((st.forwarded, st.skipped), (0, 0), "{st:?}");
            assert_eq!(next(&mut rx, Duration::from_millis(500)).await, None);

            // Stop dovecot under the running poller: the failure is seen and
            // logged; once dovecot is back the poller reconnects and still
            // hands nothing on twice. (The lab's process calls block this
            // thread's runtime briefly; the poller catches up after.)
            dovecot.stop();
            let st = status_until(&poller, &dovecot, "outage seen", |s| {
                !s.connected && s.consecutive_failures >= 1
            })
            .await;
            assert!(st.last_error.is_some(), "{st:?}");
            dovecot.restart(&lab);
            let st = status_until(&poller, &dovecot, "reconnect", |s| {
                s.connected && s.consecutive_failures == 0 && s.scans >= 2
            })
            .await;
            assert_eq!((st.forwarded, st.skipped), (0, 0), "{st:?}");
            assert_eq!(next(&mut rx, Duration::from_millis(500)).await, None);

            // New mail after all that arrives once.
            dovecot.deliver(&HUMAN_REPLY.replace("reply-1@", "reply-2@"));
            let r = next(&mut rx, BOUND).await.expect("the new reply");
            assert_eq!(r.reference, "<reply-2@mail.example.com>");
            assert_eq!(next(&mut rx, Duration::from_millis(500)).await, None);
            poller.shutdown(Duration::from_secs(5)).await;
        })
    })
    .expect("inside lb02");

    // Handled mail is \Seen (maildir flag S) and carries the keyword (dovecot
    // keeps keywords as lower-case letters after the flags, named in
    // dovecot-keywords).
    let cur = dovecot.cur_files();
    assert_eq!(cur.len(), 4, "{cur:?}");
    for f in &cur {
        let flags = f.rsplit_once(":2,").map(|(_, fl)| fl).unwrap_or("");
        assert!(flags.contains('S') && flags.contains('a'), "{f}");
    }
    let keywords =
        std::fs::read_to_string(dovecot.maildir.join("dovecot-keywords")).unwrap_or_default();
    assert!(keywords.contains("0 $SplitguardHandled"), "{keywords:?}");
    // The last shutdown logged out (dovecot logs it a moment later).
    let out = wait_for(BOUND, || dovecot.log().contains("Logged out").then_some(()));
    assert!(out.is_some(), "the poller logs out:\n{}", dovecot.log());
}

#[test]
fn mail_delivered_while_idle_arrives_within_seconds() {
    let lab = lab("ridle");
    let dovecot = Dovecot::start(&lab);
    lab.within("lb02", || {
        rt().block_on(async {
            let (tx, mut rx) = mpsc::channel(16);
            // Polling alone would take two minutes.
            let poller = spawn_mailbox_poller_with(
                spec(PASSWORD, ImapTls::None, Duration::from_secs(120)),
                quick(),
                tx,
            );
            let st = status_until(&poller, &dovecot, "idle", |s| s.scans >= 1).await;
            assert!(st.uses_idle, "{st:?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
            for n in 0..3 {
                let t = Instant::now();
                dovecot.deliver(&HUMAN_REPLY.replace("reply-1@", &format!("idle-{n}@")));
                let r = next(&mut rx, Duration::from_secs(10))
                    .await
                    .unwrap_or_else(|| panic!("mail {n} not seen while idle\n{}", dovecot.log()));
                assert_eq!(r.reference, format!("<idle-{n}@mail.example.com>"));
                assert!(
                    t.elapsed() < Duration::from_secs(5),
                    "mail {n} took {:?}",
                    t.elapsed()
                );
            }
            // The reply handler goes away: the poller leaves IDLE and ends.
            drop(rx);
            let ended = tokio::time::timeout(BOUND, async {
                while !poller.is_finished() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await;
            assert!(ended.is_ok(), "the poller outlives its receiver");
        })
    })
    .expect("inside lb02");
}

/// A writer for a tracing subscriber that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn refusals_are_logged_and_retried_never_fatal() {
    let lab = lab("rrefuse");
    let dovecot = Dovecot::start(&lab);
    dovecot.deliver(HUMAN_REPLY);
    let captured = Captured::default();
    let writer = captured.clone();
    lab.within("lb02", || {
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        rt().block_on(async {
            let (tx, mut rx) = mpsc::channel(16);

            // A wrong password: logged, retried with backoff, never a panic.
            let poller = spawn_mailbox_poller_with(
                spec(WRONG_PASSWORD, ImapTls::None, Duration::from_secs(60)),
                quick(),
                tx.clone(),
            );
            let t = Instant::now();
            let st = status_until(&poller, &dovecot, "login failures", |s| {
                s.consecutive_failures >= 2
            })
            .await;
            let e = st.last_error.clone().unwrap_or_default();
            assert!(e.contains("LOGIN") && e.contains("replies"), "{e}");
            assert!(
                !e.contains(WRONG_PASSWORD),
                "the password is never shown: {e}"
            );
            assert!(!st.connected && !poller.is_finished(), "{st:?}");
            // Bounded: dovecot delays each failure ~2 s and we back off; no spin.
            let per_sec = f64::from(poller.status().consecutive_failures)
                / t.elapsed().as_secs_f64().max(1.0);
            assert!(per_sec < 2.0, "{per_sec} attempts/s");
            poller.shutdown(Duration::from_secs(5)).await;

            // STARTTLS required, the server has no TLS: refused, retried, and
            // the password never goes out in clear.
            let poller = spawn_mailbox_poller_with(
                spec(PASSWORD, ImapTls::Starttls, Duration::from_secs(60)),
                quick(),
                tx.clone(),
            );
            let st = status_until(&poller, &dovecot, "STARTTLS failures", |s| {
                s.consecutive_failures >= 2
            })
            .await;
            let e = st.last_error.clone().unwrap_or_default();
            assert!(e.contains("STARTTLS"), "{e}");
            poller.shutdown(Duration::from_secs(5)).await;

            // Implicit TLS to a plain port: the handshake fails, retried.
            let poller = spawn_mailbox_poller_with(
                spec(PASSWORD, ImapTls::Implicit, Duration::from_secs(60)),
                quick(),
                tx.clone(),
            );
            let st = status_until(&poller, &dovecot, "TLS failures", |s| {
                s.consecutive_failures >= 2
            })
            .await;
            let e = st.last_error.clone().unwrap_or_default();
            assert!(e.contains("TLS"), "{e}");
            poller.shutdown(Duration::from_secs(5)).await;

            // Nothing listening: connect errors, retried.
            let poller = spawn_mailbox_poller_with(
                ImapSpec {
                    port: 1143,
                    ..spec(PASSWORD, ImapTls::None, Duration::from_secs(60))
                },
                quick(),
                tx.clone(),
            );
            let st = status_until(&poller, &dovecot, "connect failures", |s| {
                s.consecutive_failures >= 2
            })
            .await;
            let e = st.last_error.clone().unwrap_or_default();
            assert!(e.contains("connect to 192.0.2.254:1143"), "{e}");
            poller.shutdown(Duration::from_secs(5)).await;

            assert_eq!(next(&mut rx, Duration::from_millis(200)).await, None);
        })
    })
    .expect("inside lb02");

    let logs = captured.text();
    let failed: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("session failed"))
        .collect();
    assert!(failed.len() >= 8, "{logs}");
    assert!(
        failed.iter().any(|l| l.contains("AUTHENTICATIONFAILED")
            && l.contains("attempt=2")
            && l.contains("retry_in=")
            && l.contains("host=192.0.2.254")),
        "{logs}"
    );
    assert!(
        !logs.contains(WRONG_PASSWORD),
        "the password is never logged:\n{logs}"
    );
    assert!(!logs.contains("panicked"), "{logs}");
    // Neither TLS attempt logged in: dovecot saw no LOGIN at all.
    let server = dovecot.log();
    assert!(!server.contains("Login: user=<replies>"), "{server}");
}
