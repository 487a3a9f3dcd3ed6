//! The alert channels against real receivers in a namespace lab: the sender runs
//! in lb02 (its sockets live in lb02's namespace), the receivers in gw:
//! - mail: an aiosmtpd server (Debian `python3-aiosmtpd`,
//!   `tests/fixtures/receivers/smtp_sink.py`) that stores each message;
//! - SMS and PagerDuty: `tests/fixtures/receivers/http_recorder.py`, which records
//!   every request and answers as Twilio, PagerDuty or a plain gateway would;
//! - Alertmanager: Debian's `prometheus-alertmanager` itself.
//!
//! Needs root and those packages (`contrib/test.sh` installs them); fails, never
//! skips, without them. Every wait is bounded.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use splitguard_lab::{Lab, LabProcess, wait_for};
use splitguard_watchdog::core::secret::Secret;
use splitguard_watchdog::io::channels::{
    AlertmanagerChannel, AlertmanagerSpec, Channel, GatewayMethod, HttpSmsChannel, HttpSmsSpec,
    MailChannel, MailSpec, PagerdutyChannel, PagerdutySpec, SendError, SmtpTls, TwilioChannel,
    TwilioSpec, http_client,
};
use splitguard_watchdog::{Alert, AlertStatus, IncidentKind, Severity};

const GW: &str = "192.0.2.254";
const BOUND: Duration = Duration::from_secs(20);
/// Debian's interpreter: python3-aiosmtpd installs into it (a `python3` earlier
/// on PATH, e.g. pyenv's, would not have it).
const PYTHON: &str = "/usr/bin/python3";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

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

/// `path` if it exists; otherwise the test fails naming the package.
fn tool(path: &'static str, package: &str) -> &'static str {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the Debian package {package} (contrib/test.sh does)"
    );
    path
}

fn receiver(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/receivers")
        .join(name)
        .to_str()
        .expect("utf-8 path")
        .to_owned()
}

/// Waits until `addr` accepts TCP connections from lb02.
fn wait_listening(lab: &Lab, addr: &str, server: &LabProcess) {
    let addr: SocketAddr = addr.parse().expect("socket address");
    let up = wait_for(BOUND, || {
        lab.within("lb02", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()
        })
        .ok()
        .flatten()
    });
    assert!(
        up.is_some(),
        "{} does not listen on {addr}:\n{}",
        server.name,
        server.log_text()
    );
}

/// Starts the HTTP recorder in gw on `port`; returns it and its request log.
fn start_recorder(lab: &Lab, port: u16, fail: &[&str]) -> (LabProcess, PathBuf) {
    let log = lab.dir().join(format!("requests-{port}.jsonl"));
    let script = receiver("http_recorder.py");
    let listen = format!("{GW}:{port}");
    let log_arg = log.to_str().expect("utf-8 path").to_owned();
    let mut argv = vec![
        tool(PYTHON, "python3"),
        script.as_str(),
        "--listen",
        listen.as_str(),
        "--log",
        log_arg.as_str(),
    ];
    for f in fail {
        argv.extend(["--fail", f]);
    }
    let rec = lab
        .spawn("gw", &format!("recorder-{port}"), &argv)
        .expect("recorder starts");
    wait_listening(lab, &listen, &rec);
    (rec, log)
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("recorder writes JSON lines"))
        .collect()
}

/// One notification about incident lb02-7 (a split brain on VIP .3).
fn alert(started: DateTime<Utc>, status: AlertStatus, notification: u32) -> Alert {
    Alert {
        id: "lb02-7".into(),
        status,
        kind: IncidentKind::SplitBrain,
        severity: Severity::Critical,
        node: "lb02".into(),
        instance: Some("VI_1".into()),
        vip: Some("192.0.2.3".parse().expect("ip")),
        owners: vec!["02:00:00:00:00:05".into(), "02:00:00:00:00:06".into()],
        cause: "VIP 192.0.2.3 is on lb02 and lb01 answers ARP for it".into(),
        code: "4821".into(),
        at: Utc::now(),
        started_at: started,
        notification,
        idempotency_key: format!("lb02-7-{}-{notification}", status.as_str()),
        acked_by: (status == AlertStatus::Acknowledged).then(|| "+15550002222".into()),
        missed: false,
    }
}

fn expect_err(result: Result<splitguard_watchdog::io::channels::Receipt, SendError>) -> SendError {
    match result {
        Ok(r) => panic!("expected an error, got a receipt {r:?}"),
        Err(e) => e,
    }
}

// ----------------------------------------------------------------------- mail

/// Headers (names lower-cased, folded lines joined) and body of a raw message.
fn parse_mail(raw: &str) -> (BTreeMap<String, String>, String) {
    let (head, body) = raw.split_once("\r\n\r\n").expect("header/body split");
    let mut headers = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(name) = &last
                && let Some(v) = headers.get_mut(name)
            {
                let v: &mut String = v;
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            headers.insert(name.clone(), value.trim().to_owned());
            last = Some(name);
        }
    }
    (headers, body.to_owned())
}

fn mail_spec(port: u16, password: &str, to: &[&str]) -> MailSpec {
    MailSpec {
        name: "mail0".into(),
        tier: 0,
        host: GW.into(),
        port,
        tls: SmtpTls::None,
        username: Some("alerts".into()),
        password: Some(Secret::new(password)),
        from: "splitguard <splitguard@lb02.example>".into(),
        to: to.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn mail_reaches_a_real_smtp_server_tagged_and_threaded() {
    let lab = lab("chmail");
    let maildir = lab.dir().join("maildir");
    let script = receiver("smtp_sink.py");
    let mut sink = lab
        .spawn(
            "gw",
            "smtp",
            &[
                tool(PYTHON, "python3-aiosmtpd"),
                &script,
                "--listen",
                "192.0.2.254:2525",
                "--dir",
                maildir.to_str().expect("utf-8"),
                "--auth",
                "alerts:s3cret",
            ],
        )
        .expect("smtp sink starts");
    wait_listening(&lab, "192.0.2.254:2525", &sink);

    let started = Utc::now();
    let to = ["oncall@example.com", "second@example.com"];
    let (ids, first, repeat, resolved) = lab
        .within("lb02", || {
            rt().block_on(async {
                let ch = Channel::Mail(
                    MailChannel::new(mail_spec(2525, "s3cret", &to)).expect("mail channel"),
                );
                let first = alert(started, AlertStatus::Firing, 1);
                let repeat = alert(started, AlertStatus::Firing, 2);
                let resolved = alert(started, AlertStatus::Resolved, 3);
                let mut ids = Vec::new();
                for a in [&first, &repeat, &resolved] {
                    let r = ch.send(a).await.unwrap_or_else(|e| {
                        panic!("send #{}: {e}\n{}", a.notification, sink.log_text())
                    });
                    ids.push(r.reference.expect("the receipt names the Message-ID"));
                }
                (ids, first, repeat, resolved)
            })
        })
        .expect("inside lb02");

    let mut messages = Vec::new();
    for n in 1..=3 {
        let meta = maildir.join(format!("msg-{n:04}.json"));
        let eml = maildir.join(format!("msg-{n:04}.eml"));
        wait_for(BOUND, || meta.exists().then_some(()))
            .unwrap_or_else(|| panic!("message {n} not stored:\n{}", sink.log_text()));
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(&meta).expect("meta")).expect("json");
        let raw = std::fs::read_to_string(&eml).expect("eml");
        messages.push((meta, parse_mail(&raw)));
    }

    for (i, ((meta, (h, body)), a)) in messages
        .iter()
        .zip([&first, &repeat, &resolved])
        .enumerate()
    {
        assert_eq!(meta["rcpt_tos"], serde_json::json!(to), "envelope {i}");
        assert_eq!(meta["mail_from"], "splitguard@lb02.example");
        assert_eq!(meta["login"], "alerts", "AUTH with the configured user");
        assert_eq!(h["subject"], a.mail_subject());
        assert!(h["subject"].starts_with("[SG-4821] "), "{h:?}");
        assert_eq!(h["message-id"], ids[i]);
        assert_eq!(h["auto-submitted"], "auto-generated");
        assert_eq!(h["x-splitguard-code"], "4821");
        assert_eq!(h["to"], "oncall@example.com, second@example.com");
        assert!(body.contains(&a.cause), "body {i}: {body}");
    }
    let first_id = &ids[0];
    assert_eq!(first_id, "<sg.lb02-7.1.mail0@splitguard.invalid>");
    assert!(!messages[0].1.0.contains_key("in-reply-to"));
    for (_, (h, _)) in &messages[1..] {
        assert_eq!(&h["in-reply-to"], first_id, "{h:?}");
        assert_eq!(&h["references"], first_id);
    }
    assert!(messages[0].1.1.contains("4821 DEMOTE"));
    assert!(messages[2].1.0["subject"].contains("RESOLVED"));

    // Refusals and outages, from the same real server.
    lab.within("lb02", || {
        rt().block_on(async {
            let page = alert(started, AlertStatus::Firing, 1);
            let send = |spec: MailSpec| {
                let page = page.clone();
                async move {
                    let ch = MailChannel::new(spec).expect("mail channel");
                    ch.send(&page).await
                }
            };
            let e = expect_err(send(mail_spec(2525, "wrong", &to)).await);
            assert!(
                !e.retryable && e.message.contains("535"),
                "bad password: {e}"
            );
            let e = expect_err(send(mail_spec(2525, "s3cret", &["nobody@example.com"])).await);
            assert!(!e.retryable && e.message.contains("550"), "no mailbox: {e}");
            let e = expect_err(send(mail_spec(2525, "s3cret", &["busy@example.com"])).await);
            assert!(e.retryable && e.message.contains("451"), "busy: {e}");
            let e = expect_err(send(mail_spec(2599, "s3cret", &to)).await);
            assert!(e.retryable, "nothing listening: {e}");
            // The sink offers no STARTTLS and speaks no TLS: both TLS modes fail
            // (retryably: the relay can be fixed) and nothing goes out in clear.
            let e = expect_err(
                send(MailSpec {
                    tls: SmtpTls::Starttls,
                    ..mail_spec(2525, "s3cret", &to)
                })
                .await,
            );
            assert!(e.retryable && e.message.contains("STARTTLS"), "{e}");
            let e = expect_err(
                send(MailSpec {
                    tls: SmtpTls::Implicit,
                    ..mail_spec(2525, "s3cret", &to)
                })
                .await,
            );
            assert!(e.retryable, "implicit TLS to a plain server: {e}");
        })
    })
    .expect("inside lb02");

    let stored = std::fs::read_dir(&maildir)
        .expect("maildir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension() == Some("eml".as_ref()))
        })
        .count();
    assert_eq!(stored, 3, "refused and TLS-less sends stored nothing");

    sink.kill();
    lab.within("lb02", || {
        rt().block_on(async {
            let ch = MailChannel::new(mail_spec(2525, "s3cret", &to)).expect("mail channel");
            let e = expect_err(ch.send(&alert(started, AlertStatus::Firing, 4)).await);
            assert!(e.retryable, "server down: {e}");
        })
    })
    .expect("inside lb02");
}

// ------------------------------------------------------------------------ SMS

fn twilio_spec(to: &[&str]) -> TwilioSpec {
    TwilioSpec {
        name: "sms0".into(),
        tier: 0,
        api_url: url::Url::parse(&format!("http://{GW}:8080")).expect("url"),
        account_sid: "ACtest".into(),
        auth_token: Secret::new("tok3n"),
        from: "+15550001111".into(),
        to: to.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn twilio_messages_reach_a_twilio_compatible_receiver() {
    let lab = lab("chtwilio");
    let (rec, log) = start_recorder(&lab, 8080, &["+15550000400=400", "+15550000503=503x1"]);
    let started = Utc::now();
    let page = alert(started, AlertStatus::Firing, 1);

    let receipt = lab
        .within("lb02", || {
            rt().block_on(async {
                let ch = Channel::TwilioSms(
                    TwilioChannel::new(twilio_spec(&["+15550002222", "+15550003333"]))
                        .expect("twilio channel"),
                );
                ch.send(&page).await
            })
        })
        .expect("inside lb02")
        .unwrap_or_else(|e| panic!("send: {e}\n{}", rec.log_text()));
    let sids = receipt.reference.expect("SIDs in the receipt");
    let sids: Vec<&str> = sids.split(',').collect();
    assert_eq!(sids.len(), 2, "{sids:?}");
    assert!(sids.iter().all(|s| s.starts_with("SM")), "{sids:?}");

    let reqs = read_jsonl(&log);
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    for (req, to) in reqs.iter().zip(["+15550002222", "+15550003333"]) {
        assert_eq!(req["method"], "POST");
        assert_eq!(req["path"], "/2010-04-01/Accounts/ACtest/Messages.json");
        // base64("ACtest:tok3n")
        assert_eq!(req["authorization"], "Basic QUN0ZXN0OnRvazNu");
        assert_eq!(req["form"]["To"], to);
        assert_eq!(req["form"]["From"], "+15550001111");
        assert_eq!(req["form"]["Body"], page.sms_text());
    }
    let body = reqs[0]["form"]["Body"].as_str().expect("body");
    assert!(body.is_ascii() && body.len() <= 160, "{body}");
    assert!(body.contains("Reply 4821 to ack"), "{body}");

    lab.within("lb02", || {
        rt().block_on(async {
            // 400: Twilio refuses the number; final, with Twilio's words.
            let ch = TwilioChannel::new(twilio_spec(&["+15550000400"])).expect("channel");
            let e = expect_err(ch.send(&page).await);
            assert!(!e.retryable, "{e}");
            assert!(
                e.message.contains("Twilio error 21211") && e.message.contains("not a valid"),
                "{e}"
            );

            // 503 for one recipient: retryable, and the retry sends only to it.
            let ch = TwilioChannel::new(twilio_spec(&["+15550002222", "+15550000503"]))
                .expect("channel");
            let repeat = alert(started, AlertStatus::Firing, 2);
            let e = expect_err(ch.send(&repeat).await);
            assert!(e.retryable, "{e}");
            assert!(
                e.message.contains("503") && e.message.contains("delivered to +15550002222"),
                "{e}"
            );
            let r = ch.send(&repeat).await.expect("the retry succeeds");
            assert_eq!(r.reference.expect("sids").split(',').count(), 2);
        })
    })
    .expect("inside lb02");

    let reqs = read_jsonl(&log);
    let to_of = |r: &Value| r["form"]["To"].as_str().unwrap_or_default().to_owned();
    let later: Vec<String> = reqs[2..].iter().map(to_of).collect();
    assert_eq!(
        later,
        [
            "+15550000400",
            "+15550002222",
            "+15550000503",
            "+15550000503"
        ],
        "one 400, then the partial send and a retry to the failed recipient only"
    );
}

#[test]
fn sms_gateway_get_and_post_forms() {
    let lab = lab("chgateway");
    let (rec, log) = start_recorder(&lab, 8081, &["+15550000503=503"]);
    let page = alert(Utc::now(), AlertStatus::Firing, 1);
    let text = page.sms_text();
    let spec = |url: &str, method, body: Option<&str>, to: &str| HttpSmsSpec {
        name: "gw0".into(),
        tier: 0,
        url_template: Secret::new(url),
        method,
        body_template: body.map(Secret::new),
        to: vec![to.to_owned()],
        timeout: Duration::from_secs(5),
    };
    let base = format!("http://{GW}:8081");
    lab.within("lb02", || {
        rt().block_on(async {
            let cases = [
                spec(
                    &format!("{base}/sendmsg?user=sg&passwd=pw&to={{to}}&text={{text}}"),
                    GatewayMethod::Get,
                    None,
                    "+15550002222",
                ),
                spec(
                    &format!("{base}/api/form"),
                    GatewayMethod::Post,
                    Some("user=sg&to={to}&text={text}"),
                    "+15550002222",
                ),
                spec(
                    &format!("{base}/api/json?key=k"),
                    GatewayMethod::Post,
                    Some(r#"{"to": "{to}", "message": "{text}"}"#),
                    "+15550002222",
                ),
            ];
            for s in cases {
                let ch = Channel::HttpSms(HttpSmsChannel::new(s).expect("gateway channel"));
                ch.send(&page)
                    .await
                    .unwrap_or_else(|e| panic!("send: {e}\n{}", rec.log_text()));
            }
            let failing = HttpSmsChannel::new(spec(
                &format!("{base}/sendmsg?to={{to}}&text={{text}}"),
                GatewayMethod::Get,
                None,
                "+15550000503",
            ))
            .expect("gateway channel");
            let e = expect_err(failing.send(&page).await);
            assert!(e.retryable && e.message.contains("503"), "{e}");
            assert!(!e.message.contains("passwd"), "no URL in errors: {e}");
        })
    })
    .expect("inside lb02");

    let reqs = read_jsonl(&log);
    assert_eq!(reqs.len(), 4, "{reqs:?}");
    let get = &reqs[0];
    assert_eq!(get["method"], "GET");
    assert_eq!(get["path"], "/sendmsg");
    assert_eq!(get["query"]["user"], "sg");
    assert_eq!(get["query"]["to"], "+15550002222");
    assert_eq!(get["query"]["text"], text.as_str());
    let form = &reqs[1];
    assert_eq!(form["method"], "POST");
    assert_eq!(form["content_type"], "application/x-www-form-urlencoded");
    assert_eq!(form["form"]["to"], "+15550002222");
    assert_eq!(form["form"]["text"], text.as_str());
    let json = &reqs[2];
    assert_eq!(json["content_type"], "application/json");
    assert_eq!(json["query"]["key"], "k");
    assert_eq!(json["json"]["to"], "+15550002222");
    assert_eq!(json["json"]["message"], text.as_str());
}

// -------------------------------------------------------------- Alertmanager

/// The alerts Alertmanager lists for incident lb02-7 under `query`.
async fn am_alerts(client: &reqwest::Client, base: &str, query: &str) -> Vec<Value> {
    let url = format!("{base}/api/v2/alerts?filter=incident%3D%22lb02-7%22{query}");
    let resp = client.get(&url).send().await.expect("GET alerts");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let v: Value = resp.json().await.expect("JSON list");
    v.as_array().cloned().unwrap_or_default()
}

#[test]
fn alertmanager_takes_firing_and_resolved_alerts() {
    let lab = lab("cham");
    let config = lab
        .write_file(
            "alertmanager.yml",
            "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
        )
        .expect("config written");
    let storage = lab.dir().join("am-data");
    let config_arg = format!("--config.file={}", config.display());
    let storage_arg = format!("--storage.path={}", storage.display());
    let am = lab
        .spawn(
            "gw",
            "alertmanager",
            &[
                tool(ALERTMANAGER, "prometheus-alertmanager"),
                &config_arg,
                &storage_arg,
                "--web.listen-address=192.0.2.254:9093",
                "--cluster.listen-address=",
            ],
        )
        .expect("alertmanager starts");
    wait_listening(&lab, "192.0.2.254:9093", &am);
    let base = format!("http://{GW}:9093");
    let started = Utc::now() - chrono::Duration::seconds(5);

    lab.within("lb02", || {
        rt().block_on(async {
            let client = http_client(Duration::from_secs(5)).expect("client");
            let ready = async {
                loop {
                    if let Ok(r) = client.get(format!("{base}/-/ready")).send().await
                        && r.status().is_success()
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            };
            tokio::time::timeout(BOUND, ready)
                .await
                .unwrap_or_else(|_| panic!("alertmanager not ready:\n{}", am.log_text()));

            let spec = AlertmanagerSpec::new(
                "am0",
                0,
                url::Url::parse(&base).expect("url"),
                Duration::from_secs(5),
            );
            let ch = Channel::Alertmanager(AlertmanagerChannel::new(spec).expect("channel"));
            let firing = alert(started, AlertStatus::Firing, 1);
            ch.send(&firing)
                .await
                .unwrap_or_else(|e| panic!("firing: {e}\n{}", am.log_text()));

            let listed = am_alerts(&client, &base, "").await;
            assert_eq!(listed.len(), 1, "{listed:?}");
            let a = &listed[0];
            assert_eq!(a["labels"]["alertname"], "split_brain");
            assert_eq!(a["labels"]["severity"], "critical");
            assert_eq!(a["labels"]["node"], "lb02");
            assert_eq!(a["labels"]["instance"], "VI_1");
            assert_eq!(a["labels"]["vip"], "192.0.2.3");
            assert_eq!(a["annotations"]["code"], "4821");
            assert_eq!(a["annotations"]["summary"], firing.cause.as_str());
            let ends: DateTime<Utc> = a["endsAt"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("endsAt");
            assert!(ends > Utc::now() + chrono::Duration::hours(1), "{a}");

            // No acknowledgement in Alertmanager: not wanted, not sent.
            let ack = alert(started, AlertStatus::Acknowledged, 2);
            assert!(!ch.wants(&ack));
            let r = ch.send(&ack).await.expect("skipped");
            assert_eq!(r.reference, None);
            assert_eq!(am_alerts(&client, &base, "").await.len(), 1);

            let resolved = alert(started, AlertStatus::Resolved, 3);
            ch.send(&resolved).await.expect("resolved");
            let gone = am_alerts(&client, &base, "").await;
            assert!(gone.is_empty(), "resolved alerts are not listed: {gone:?}");
            // Not even when asking for inactive ones: the v2 list never shows
            // alerts whose endsAt has passed.
            let all = am_alerts(
                &client,
                &base,
                "&active=true&silenced=true&inhibited=true&unprocessed=true",
            )
            .await;
            assert!(all.is_empty(), "{all:?}");
        })
    })
    .expect("inside lb02");
}

// ------------------------------------------------------------------ PagerDuty

#[test]
fn pagerduty_events_trigger_acknowledge_resolve_one_alert() {
    let lab = lab("chpd");
    let (rec, log) = start_recorder(&lab, 8082, &["lb02-429=429", "lb02-400=400"]);
    let started = Utc::now();
    let spec = PagerdutySpec {
        name: "pd0".into(),
        tier: 1,
        routing_key: Secret::new("R0UT1NGKEY"),
        url: url::Url::parse(&format!("http://{GW}:8082/v2/enqueue")).expect("url"),
        timeout: Duration::from_secs(5),
    };
    lab.within("lb02", || {
        rt().block_on(async {
            let ch = Channel::Pagerduty(PagerdutyChannel::new(spec.clone()).expect("channel"));
            assert_eq!(ch.tier(), 1);
            for (status, n) in [
                (AlertStatus::Firing, 1),
                (AlertStatus::Acknowledged, 2),
                (AlertStatus::Resolved, 3),
            ] {
                let r = ch
                    .send(&alert(started, status, n))
                    .await
                    .unwrap_or_else(|e| panic!("{status:?}: {e}\n{}", rec.log_text()));
                assert_eq!(r.reference.as_deref(), Some("lb02-7"));
            }
            let mut throttled = alert(started, AlertStatus::Firing, 1);
            throttled.id = "lb02-429".into();
            let e = expect_err(ch.send(&throttled).await);
            assert!(e.retryable && e.message.contains("429"), "{e}");
            let mut invalid = throttled.clone();
            invalid.id = "lb02-400".into();
            let e = expect_err(ch.send(&invalid).await);
            assert!(!e.retryable && e.message.contains("400"), "{e}");
        })
    })
    .expect("inside lb02");

    let reqs = read_jsonl(&log);
    assert_eq!(reqs.len(), 5, "{reqs:?}");
    let actions: Vec<&str> = reqs[..3]
        .iter()
        .map(|r| r["json"]["event_action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
    for r in &reqs[..3] {
        assert_eq!(r["method"], "POST");
        assert_eq!(r["path"], "/v2/enqueue");
        assert_eq!(r["content_type"], "application/json");
        assert_eq!(r["json"]["routing_key"], "R0UT1NGKEY");
        assert_eq!(r["json"]["dedup_key"], "lb02-7");
    }
    let p = &reqs[0]["json"]["payload"];
    assert_eq!(p["source"], "lb02");
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["component"], "VI_1");
    assert_eq!(p["group"], "192.0.2.3");
    assert_eq!(p["custom_details"]["code"], "4821");
    assert!(
        p["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("[SG-4821] CRITICAL split_brain")),
        "{p}"
    );
    assert!(reqs[1]["json"].get("payload").is_none());
    assert!(reqs[2]["json"].get("payload").is_none());
}
