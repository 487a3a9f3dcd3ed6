//! Secrets never show: a pair whose configs set a distinctive value in every
//! secret key (auth_pass, webhook HMAC secret and URL token, SMTP password,
//! Twilio tokens, gateway key in the URL template, Alertmanager password in the
//! URL, PagerDuty routing key, reply Twilio token, generic secret, PIN, IMAP
//! password, and the TLS private key) runs into a split brain; every channel but
//! one fails (so errors are logged: some cannot connect, the gateway,
//! Alertmanager, PagerDuty and a webhook get a 400 that echoes the request,
//! credentials included), the IMAP mailbox is unreachable, a reply
//! with a wrong signature is refused, a signed one with the PIN is accepted.
//! Then the daemons' logs, `check-config` and `status --json` output,
//! `/metrics`, and every file in the state directories (spool, engine state,
//! reply audit) and the event stream are searched for each secret: none is
//! found anywhere.
//!
//! On the way, the HTTP listeners are checked for real: the reply listener and
//! `/metrics` serve HTTPS with a self-signed certificate (made with Debian's
//! `openssl` CLI; clients are `curl --cacert` and Python's ssl), a missing key
//! stops the start with an error naming the file, and a client that opens a
//! connection and sends nothing, or a head it never finishes, is dropped after
//! the 10 s header-read bound.
//!
//! Needs root, python3, curl and openssl; fails without them.

mod common;

use common::*;
use splitguard_lab::{Lab, wait_for};
use std::path::{Path, PathBuf};

const AUTH_PASS: &str = "Vq8zL2kW";
const HMAC: &str = "hmacsec-Q1w2e3";
const HOOK_TOKEN: &str = "hooktok-7Yh3n5";
const SMTP_PASS: &str = "smtppw-Kx91b7";
const TWILIO_DOWN: &str = "twdown-P0o9c4";
const TWILIO_TOKEN: &str = "twtok-Zz81m2";
const GATEWAY_KEY: &str = "gwkey-Mm47v6";
const AM_PASS: &str = "ampw-Rr26x8";
/// `am:` + AM_PASS as Basic credentials: decodable, so a secret as well.
const AM_BASIC: &str = "YW06YW1wdy1ScjI2eDg=";
const PD_KEY: &str = "pdkey-Tt53j1";
const REPLY_TWILIO: &str = "rplytw-Uu64h9";
const GENERIC: &str = "generic-Ii75g0";
const PIN: &str = "40917263";
const IMAP_PASS: &str = "imappw-Oo86f5";

const ONCALL: &str = "+15550002222";
const S2_DROP: &str = "table inet s2 {\n chain input {\n  type filter hook input priority 0;\n  ip protocol 112 drop\n }\n}\n";

/// A self-signed leaf certificate for 192.0.2.6 and its key (0600), made by
/// the `openssl` CLI; returns (cert, key).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("tls dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=lb02",
            "-addext",
            "subjectAltName=IP:192.0.2.6",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl CLI runs (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// lb02's config: every secret key set, every channel but `sms` pointed at a
/// closed port on gw, the reply listener and /metrics over TLS. `key` is the
/// TLS key path (a wrong one for the failed start).
fn lb02_config(lab: &Lab, cert: &Path, key: &Path) -> String {
    let dir = lab.dir().display();
    let (cert, key) = (cert.display(), key.display());
    let top = format!(
        "metrics_listen = \"192.0.2.6:9745\"\nmetrics_tls_cert = \"{cert}\"\nmetrics_tls_key = \"{key}\"\n\
         events_file = \"{dir}/lb02-events.jsonl\"\n"
    );
    let extra = format!(
        r#"
[arbiter]
enabled = false

[[channel]]
type = "webhook"
name = "hook"
url = "http://192.0.2.254:9/hook?token={HOOK_TOKEN}"
hmac_secret = "{HMAC}"

[[channel]]
type = "webhook"
name = "hook-echo"
url = "http://192.0.2.254:8082/hook?token={HOOK_TOKEN}"
hmac_secret = "{HMAC}"

[[channel]]
type = "mail"
name = "mail"
host = "192.0.2.254"
port = 9
tls = "none"
username = "alerts"
password = "{SMTP_PASS}"
from = "splitguard@example.com"
to = ["oncall@example.com"]

[[channel]]
type = "sms"
provider = "twilio"
name = "twilio-down"
api_url = "http://192.0.2.254:9"
account_sid = "AC0123"
auth_token = "{TWILIO_DOWN}"
from = "+15550001111"
to = ["{ONCALL}"]

[[channel]]
type = "sms"
provider = "twilio"
name = "sms"
api_url = "http://192.0.2.254:8081"
account_sid = "AC0123"
auth_token = "{TWILIO_TOKEN}"
from = "+15550001111"
to = ["{ONCALL}"]

[[channel]]
type = "sms"
provider = "http"
name = "gateway"
url_template = "http://192.0.2.254:8082/send?key={GATEWAY_KEY}&to={{to}}&text={{text}}"
to = ["{ONCALL}"]

[[channel]]
type = "alertmanager"
name = "am"
url = "http://am:{AM_PASS}@192.0.2.254:8082"

[[channel]]
type = "pagerduty"
name = "pd"
routing_key = "{PD_KEY}"
url = "http://192.0.2.254:8082/v2/enqueue"

[reply]
listen = "192.0.2.6:8725"
public_url = "https://192.0.2.6:8725/reply/twilio"
twilio_auth_token = "{REPLY_TWILIO}"
generic_secret = "{GENERIC}"
allowed_senders = ["{ONCALL}"]
pins = {{ "{ONCALL}" = "{PIN}" }}
tls_cert = "{cert}"
tls_key = "{key}"

[reply.imap]
host = "192.0.2.254"
port = 9
tls = "none"
username = "replies"
password = "{IMAP_PASS}"
poll_interval = "1s"

[alerts]
group_wait = "1s"
"#
    );
    let cfg = sg_config(lab, "lb02", 100, 2, "1s", &extra)
        .replace("\"1111\"", &format!("\"{AUTH_PASS}\""));
    format!("{top}{cfg}")
}

/// Runs `argv` in `host`, success or not: (exit code, stdout, stderr).
fn run_any(lab: &Lab, host: &str, argv: &[&str]) -> (i32, String, String) {
    let (program, args) = argv.split_first().expect("argv");
    let out = lab
        .command(host, program)
        .expect("host")
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

/// The generic gateway's signed reply over HTTPS from gw (Python's hmac and
/// ssl, trusting only `cert`); the HTTP status.
fn generic_reply(lab: &Lab, cert: &Path, secret: &str, text: &str, id: &str) -> String {
    let script = format!(
        r#"
import hmac, hashlib, json, ssl, time, urllib.request, urllib.error
ctx = ssl.create_default_context(cafile="{cert}")
body = json.dumps({{"from": "{ONCALL}", "text": "{text}", "id": "{id}"}}).encode()
ts = str(int(time.time()))
sig = "sha256=" + hmac.new(b"{secret}", ts.encode() + b"." + body, hashlib.sha256).hexdigest()
req = urllib.request.Request("https://192.0.2.6:8725/reply/generic", data=body,
    headers={{"X-Splitguard-Timestamp": ts, "X-Splitguard-Signature": sig, "Content-Type": "application/json"}})
try:
    print(urllib.request.urlopen(req, timeout=10, context=ctx).status)
except urllib.error.HTTPError as e:
    print(e.code)
"#,
        cert = cert.display()
    );
    let (_, out, err) = run_any(lab, "gw", &[SYS_PYTHON, "-c", &script]);
    format!("{}{err}", out.trim())
}

/// From gw: two clients that connect to the TLS listeners and send nothing
/// (not even a TLS hello), and one that completes the TLS handshake with the
/// reply listener and then sends a request head a line a second, never ending
/// it. How long each stayed connected, in whole seconds.
fn held_open(lab: &Lab, cert: &Path) -> Vec<(String, u64)> {
    let script = format!(
        r#"
import socket, ssl, threading, time
def silent(port, name, out):
    s = socket.create_connection(("192.0.2.6", port), 5)
    s.settimeout(30)
    t = time.time()
    try:
        while s.recv(100):
            pass
    except OSError:
        pass
    out.append((name, time.time() - t))
def slow(port, name, out):
    ctx = ssl.create_default_context(cafile="{cert}")
    s = ctx.wrap_socket(socket.create_connection(("192.0.2.6", port), 5), server_hostname="192.0.2.6")
    s.settimeout(1)
    t = time.time()
    lines = [b"POST /reply/generic HTTP/1.1\r\n", b"Host: lb02\r\n"] + [b"X-Pad: %d\r\n" % i for i in range(28)]
    for line in lines:
        try:
            s.sendall(line)
            if s.recv(100) == b"":
                break
        except socket.timeout:
            continue
        except OSError:
            break
    out.append((name, time.time() - t))
out = []
threads = [threading.Thread(target=f, args=(p, n, out)) for f, p, n in [
    (silent, 8725, "reply-silent"), (silent, 9745, "metrics-silent"), (slow, 8725, "reply-slow")]]
for t in threads: t.start()
for t in threads: t.join(40)
for n, d in out: print(n, int(d))
"#,
        cert = cert.display()
    );
    let (_, out, err) = run_any(lab, "gw", &[SYS_PYTHON, "-c", &script]);
    let held: Vec<(String, u64)> = out
        .lines()
        .filter_map(|l| {
            let (n, d) = l.split_once(' ')?;
            Some((n.to_owned(), d.parse().ok()?))
        })
        .collect();
    assert_eq!(held.len(), 3, "{out}{err}");
    held
}

#[test]
fn secrets_appear_in_no_log_status_output_or_state_file() {
    let lab = pair_lab("secrets");
    let (cert, key) = self_signed(&lab.dir().join("tls"));
    let key_pem = std::fs::read_to_string(&key).expect("key");
    // A line of the private key's body stands for the key.
    let key_line = key_pem
        .lines()
        .find(|l| !l.starts_with("-----") && l.len() > 40)
        .expect("a base64 line")
        .to_owned();

    // A key that is not there: the start stops, naming the file.
    let missing = lab.dir().join("tls/missing.pem");
    let mut broken = start_splitguard(&lab, "lb02", &lb02_config(&lab, &cert, &missing));
    let exit = broken.wait_exit(BOUND);
    let broken_log = broken.log_text();
    assert!(exit.is_some_and(|s| !s.success()), "{exit:?}\n{broken_log}");
    assert!(
        broken_log.contains(&format!(
            "metrics_tls_cert/metrics_tls_key: {}: cannot read: No such file",
            missing.display()
        )),
        "{broken_log}"
    );

    let (_rec, rec_log) = start_recorder(&lab, 8081);
    // The gateway, Alertmanager, PagerDuty and a second webhook answer 400 with
    // the request echoed back, credentials and all.
    let (_echo, echo_log) = start_recorder_with(&lab, 8082, &["--echo"]);
    let lb01_cfg =
        sg_config(&lab, "lb01", 150, 2, "1s", "").replace("\"1111\"", &format!("\"{AUTH_PASS}\""));
    let lb01 = start_splitguard(&lab, "lb01", &lb01_cfg);
    let lb02_cfg = lb02_config(&lab, &cert, &key);
    let lb02 = start_splitguard(&lab, "lb02", &lb02_cfg);
    let procs = [&lb01, &lb02];
    expect_owner(&lab, Some("lb01"), &procs, "steady state");
    wait_listening(&lab, "gw", "192.0.2.6", 8725);

    // Split brain: lb02 stops hearing lb01 and, with its arbiter off, claims.
    lab.nft(Some("lb02"), S2_DROP).expect("nft");
    wait_for(BOUND, || {
        read_jsonl(&rec_log)
            .iter()
            .any(|r| {
                r["form"]["Body"]
                    .as_str()
                    .is_some_and(|b| b.contains("split_brain"))
            })
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no split-brain SMS\n{}", logs(&procs)));
    // Every other channel failed, and said so in the log.
    for channel in [
        "hook",
        "hook-echo",
        "mail",
        "twilio-down",
        "gateway",
        "am",
        "pd",
    ] {
        wait_for(BOUND, || {
            lb02.log_text()
                .lines()
                .any(|l| {
                    (l.contains("alert not delivered") || l.contains("alert refused"))
                        && l.contains(&format!("channel={channel} "))
                })
                .then_some(())
        })
        .unwrap_or_else(|| panic!("no delivery failure logged for {channel}\n{}", logs(&procs)));
    }
    wait_for(BOUND, || {
        lb02.log_text()
            .contains("reply mailbox: session failed")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no IMAP failure logged\n{}", logs(&procs)));

    // Replies over HTTPS: a forged Twilio signature (401, with the PIN in the
    // body), a generic reply signed with a wrong secret (401), a signed
    // STATUS with the PIN (accepted).
    let cert_s = cert.display().to_string();
    let (_, forged, err) = run_any(
        &lab,
        "gw",
        &[
            "curl",
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            &cert_s,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "X-Twilio-Signature: Zm9yZ2Vk",
            "--data-urlencode",
            &format!("From={ONCALL}"),
            "--data-urlencode",
            &format!("Body=4821 DEMOTE {PIN}"),
            "--data-urlencode",
            "MessageSid=SMforged",
            "https://192.0.2.6:8725/reply/twilio",
        ],
    );
    assert_eq!(forged, "401", "{err}");
    assert_eq!(
        generic_reply(&lab, &cert, "not-the-secret", "STATUS", "g1"),
        "401"
    );
    assert_eq!(
        generic_reply(&lab, &cert, GENERIC, &format!("STATUS {PIN}"), "g2"),
        "200"
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    let (code, plain, _) = run_any(
        &lab,
        "gw",
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://192.0.2.6:8725/reply/generic",
        ],
    );
    assert!(
        code != 0 && plain.trim_start_matches('0').is_empty(),
        "{code} {plain}"
    );

    // /metrics over HTTPS, trusting only the test certificate.
    let (code, metrics, err) = run_any(
        &lab,
        "gw",
        &[
            "curl",
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            &cert_s,
            "https://192.0.2.6:9745/metrics",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(metrics.contains("splitguard_build_info{"), "{metrics}");
    assert!(
        metrics.contains("splitguard_alerts_retried_total{channel=\"hook\"}"),
        "{metrics}"
    );

    // Silent and slow clients are dropped at the 10 s header-read bound.
    for (name, secs) in held_open(&lab, &cert) {
        assert!((8..=14).contains(&secs), "{name} held {secs} s");
    }

    let status = status_via(&lab, "lb02", "lb02.sock").to_string();
    assert!(
        status.contains("\"command\":\"STATUS\""),
        "the accepted reply is in status: {status}"
    );
    let (code, checked, check_err) = run_any(
        &lab,
        "lb02",
        &[
            env!("CARGO_BIN_EXE_splitguard"),
            "check-config",
            "-c",
            lab.dir().join("lb02.toml").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 0, "{checked}{check_err}");
    // The same file readable by others: refused, naming keys, not values.
    let open = lab.dir().join("lb02-open.toml");
    std::fs::copy(lab.dir().join("lb02.toml"), &open).expect("copy");
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let (code, _, refused) = run_any(
        &lab,
        "lb02",
        &[
            env!("CARGO_BIN_EXE_splitguard"),
            "check-config",
            "-c",
            open.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 2, "{refused}");
    for k in [
        "instance[0].auth_pass",
        "channel[0].hmac_secret",
        "channel[0].url",
        "channel[1].hmac_secret",
        "channel[1].url",
        "channel[2].password",
        "channel[3].auth_token",
        "channel[5].url_template",
        "channel[6].url",
        "channel[7].routing_key",
        "reply.twilio_auth_token",
        "reply.generic_secret",
        "reply.pins",
        "reply.imap.password",
    ] {
        assert!(refused.contains(k), "{k} not named: {refused}");
    }

    // Stopped, so their logs are complete.
    drop(lb02);
    drop(lb01);

    let mut texts: Vec<(String, String)> = vec![
        ("broken start log".into(), broken_log),
        (
            "lb01 log".into(),
            std::fs::read_to_string(lab.dir().join("splitguard-lb01.log")).unwrap_or_default(),
        ),
        (
            "lb02 log".into(),
            std::fs::read_to_string(lab.dir().join("splitguard-lb02.log")).unwrap_or_default(),
        ),
        ("status --json".into(), status),
        ("/metrics".into(), metrics),
        ("check-config".into(), format!("{checked}{check_err}")),
        ("check-config (refused)".into(), refused),
    ];
    let mut files = Vec::new();
    for dir in ["lb01-state", "lb02-state"] {
        files_under(&lab.dir().join(dir), &mut files);
    }
    files.push(lab.dir().join("lb02-events.jsonl"));
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        texts.push((
            f.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    for want in ["spool", "reply-audit.jsonl", "lb02-events.jsonl"] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "no {want} among {names:#?}"
        );
    }
    let audit =
        std::fs::read_to_string(lab.dir().join("lb02-state/reply-audit.jsonl")).expect("audit");
    assert!(
        audit.contains("DEMOTE ***") && audit.contains("STATUS ***"),
        "{audit}"
    );
    let secrets = [
        AUTH_PASS,
        HMAC,
        HOOK_TOKEN,
        SMTP_PASS,
        TWILIO_DOWN,
        TWILIO_TOKEN,
        GATEWAY_KEY,
        AM_PASS,
        PD_KEY,
        REPLY_TWILIO,
        GENERIC,
        PIN,
        IMAP_PASS,
        &key_line,
        AM_BASIC,
    ];
    let mut leaks = Vec::new();
    for (what, text) in &texts {
        for s in secrets {
            if text.contains(s) {
                leaks.push(format!("{s} in {what}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    // The echoes did carry the secrets back, and the errors kept their text
    // with the secrets masked.
    let echoed = std::fs::read_to_string(&echo_log).unwrap_or_default();
    for s in [GATEWAY_KEY, PD_KEY, HOOK_TOKEN, AM_BASIC] {
        assert!(echoed.contains(s), "{s} was not sent to the echo: {echoed}");
    }
    for channel in ["gateway", "hook-echo", "am"] {
        assert!(
            texts[2].1.lines().any(|l| {
                l.contains(&format!("channel={channel} "))
                    && l.contains("HTTP 400")
                    && l.contains("rejected ")
                    && l.contains("***")
            }),
            "no masked echo logged for {channel}:\n{}",
            texts[2].1
        );
    }
    // The failures were logged with the URLs redacted, not left out.
    let lb02_log = &texts[2].1;
    assert!(lb02_log.contains("192.0.2.254:9/hook?***"), "{lb02_log}");
}
