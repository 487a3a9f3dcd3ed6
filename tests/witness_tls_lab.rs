//! The witness on a secured etcd (issue 20): the lab's three-member cluster
//! with https client URLs (certificates from a CA the lab makes) and etcd's
//! auth, and lb01/lb02 running splitguard with `[witness]` `tls_ca`,
//! `tls_cert`/`tls_key`, `username`/`password`. Ownership probing is off, so
//! the witness alone referees, as in tests/witness_lab.rs.
//!
//! - TLS verified with `tls_ca`, password auth, tokens that expire every 5 s
//!   (JWTs): lb01 holds the VIP and the key; with VRRP dropped on lb02 (S2)
//!   gw sees lb01 alone, lb02's claim is refused naming lb01, and lb01's
//!   status stays reachable across four token lifetimes.
//! - Client-certificate auth (mTLS, the certificate's CN is the etcd user, no
//!   password): lb01 takes the key and the VIP.
//! - An unrelated CA as `tls_ca`: lb01 never claims; its status says the
//!   witness is unreachable and why (the certificate), and the log says why,
//!   each failure once.
//! - A wrong password: likewise, the reason names authentication.
//!
//! Needs root, etcd-server, etcd-client and openssl; fails without them.

mod common;

use common::*;
use splitguard_lab::configs::{self, CONFIRM_PORT, CONFIRM_SECRET, GW_ADDR, VIP};
use splitguard_lab::etcd::{EtcdCluster, EtcdOptions, LB01_MGMT, LB02_MGMT};
use splitguard_lab::{Lab, LabProcess, OwnerSamples, wait_for};
use std::time::{Duration, Instant};

/// 20 s of owner samples, one every 250 ms.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
const SAMPLES: u32 = 80;
const TTL: &str = "3s";
/// etcd's user for splitguard (role `splitguard`: readwrite on `/lab/`).
const USER: &str = "splitguard";
const PASSWORD: &str = "lab-witness-etcd-password";
/// The auth tokens' lifetime in case a: the window watched is four of them.
const TOKEN_TTL: Duration = Duration::from_secs(5);
/// How long a node that cannot reach etcd is watched for a claim it must not
/// make (VRRP's Master_Down_Interval is 3.6 s).
const NO_CLAIM_WINDOW: Duration = Duration::from_secs(8);
/// At most this many "etcd call failed" lines while etcd keeps refusing the
/// same way: each distinct failure is logged once (the daemon's loops fail in
/// turn with different words), until etcd answers again.
const MAX_ERROR_LINES: usize = 4;
const KEY: &str = "/lab/vrid/ipv4/51";

fn lab(tag: &str) -> Lab {
    configs::witness_lab(tag).expect("lab builds (run as root)")
}

fn start(lab: &Lab, options: EtcdOptions) -> EtcdCluster<'_> {
    EtcdCluster::start_with(lab, options).expect("etcd starts (etcd-server, openssl installed?)")
}

/// `node`'s config: [`configs::witness_tables`]'s `[arbiter]` and
/// `[witness]` (gw the reference, ownership probing off, the confirm path on
/// the management segment), over `etcd`'s endpoints (https with TLS), with
/// `secure` (`tls_ca = …` lines) in the `[witness]` table; the events file in
/// the lab directory.
fn config(lab: &Lab, node: &str, etcd: &EtcdCluster<'_>, secure: &str) -> String {
    let (priority, me, peer) = if node == "lb01" {
        (150, LB01_MGMT, LB02_MGMT)
    } else {
        (100, LB02_MGMT, LB01_MGMT)
    };
    let endpoints = etcd
        .endpoints()
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let tables = format!(
        "\n[arbiter]\nreferences = [\"{GW_ADDR}\"]\nownership_probe = false\n\n\
         [witness]\netcd = [{endpoints}]\ncluster = \"lab\"\nlease_ttl = \"{TTL}\"\n{secure}\
         confirm_listen = \"{me}:{CONFIRM_PORT}\"\nconfirm_peer = \"{peer}:{CONFIRM_PORT}\"\n\
         confirm_secret = \"{CONFIRM_SECRET}\"\n"
    );
    sg_config(lab, node, priority, 2, "1s", &tables).replacen(
        "\n\n[[instance]]",
        &format!(
            "\nevents_file = \"{}/{node}-events.jsonl\"\n\n[[instance]]",
            lab.dir().display()
        ),
        1,
    )
}

/// `tls_ca` (the cluster's CA), `username`, `password` lines.
fn ca_and_password(etcd: &EtcdCluster<'_>, password: &str) -> String {
    let ca = etcd.ca_path().expect("a TLS cluster has a CA");
    format!(
        "tls_ca = \"{}\"\nusername = \"{USER}\"\npassword = \"{password}\"\n",
        ca.display()
    )
}

/// Starts lb01, waits for it to hold the VIP, then lb02 until it is a
/// settled backup that hears and confirms lb01.
fn pair(lab: &Lab, etcd: &EtcdCluster<'_>, secure: &str) -> (LabProcess, LabProcess) {
    let lb01 = start_splitguard(lab, "lb01", &config(lab, "lb01", etcd, secure));
    expect_owner(lab, Some("lb01"), &[&lb01], "lb01 alone");
    let lb02 = start_splitguard(lab, "lb02", &config(lab, "lb02", etcd, secure));
    wait_for(BOUND, || {
        let st = try_status(lab, "lb02")?;
        (st["witness"]["peer_heard"] == true
            && st["instances"][0]["state"] == "BACKUP"
            && st["arbiter"]["references"][0]["reachable"] == true)
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "lb02 never settled as backup\n{}",
            all_logs(&[&lb01, &lb02], etcd)
        )
    });
    (lb01, lb02)
}

fn all_logs(procs: &[&LabProcess], etcd: &EtcdCluster<'_>) -> String {
    format!("{}\n----- etcd -----\n{}", logs(procs), etcd.log_tails(20))
}

/// The events file of `node`, one JSON value per line.
fn events(lab: &Lab, node: &str) -> Vec<serde_json::Value> {
    read_jsonl(&lab.dir().join(format!("{node}-events.jsonl")))
}

fn incident_fired(lab: &Lab, node: &str, kind: &str) -> bool {
    events(lab, node)
        .iter()
        .any(|e| e["event"] == "incident" && e["kind"] == kind && e["status"] == "firing")
}

fn keys(etcd: &EtcdCluster<'_>) -> Vec<(String, String)> {
    etcd.get_prefix("/lab/").expect("etcdctl get")
}

/// Lines of `p`'s log that report a failed store call.
fn error_lines(p: &LabProcess) -> Vec<String> {
    p.log_text()
        .lines()
        .filter(|l| l.contains("witness: etcd call failed"))
        .map(str::to_owned)
        .collect()
}

/// `p`'s log says why etcd refused it, each failure once.
fn expect_error_logged(p: &LabProcess) {
    let lines = error_lines(p);
    assert!(
        !lines.is_empty() && lines.len() <= MAX_ERROR_LINES,
        "the log must say why, each failure once: {lines:#?}\n{}",
        p.log_text()
    );
}

#[test]
fn tls_and_password_auth_s2_refuses_the_backup_and_token_expiry_changes_nothing() {
    let lab = lab("wtls-pw");
    let etcd = start(
        &lab,
        EtcdOptions {
            tls: true,
            auth: Some((USER.into(), PASSWORD.into())),
            token_ttl: Some(TOKEN_TTL),
            ..EtcdOptions::default()
        },
    );
    assert!(etcd.endpoints().iter().all(|e| e.starts_with("https://")));
    let started = Instant::now();
    let (lb01, lb02) = pair(&lab, &etcd, &ca_and_password(&etcd, PASSWORD));
    let procs = [&lb01, &lb02];
    assert_eq!(
        keys(&etcd),
        vec![(KEY.to_owned(), "lb01".to_owned())],
        "{}",
        all_logs(&procs, &etcd)
    );
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    // gw watches the VIP for 20 s (four token lifetimes) while lb01's status
    // is sampled every 500 ms: its lease must stay safe throughout.
    let mut watch = lab
        .watch_owners("gw", VIP, SAMPLE_EVERY, SAMPLES)
        .expect("arping starts");
    let window = SAMPLE_EVERY * SAMPLES;
    let watched = Instant::now();
    let (mut sampled, mut not_reachable) = (0, Vec::new());
    while watched.elapsed() < window {
        if let Some(st) = try_status(&lab, "lb01") {
            sampled += 1;
            if st["witness"]["reachable"] != true || st["witness"]["vrids"][0]["ours"] != true {
                not_reachable.push(st["witness"].clone());
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    watch.wait_exit(Duration::from_secs(40));
    let s = OwnerSamples::parse(&watch.log_text());
    eprintln!(
        "lb01 ran {:?} ({} token lifetimes); {sampled} status samples",
        started.elapsed(),
        started.elapsed().as_secs() / TOKEN_TTL.as_secs()
    );
    assert!(
        s.per_request.len() >= SAMPLES as usize - 1,
        "the watch did not run its window:\n{}",
        watch.log_text()
    );
    let mac = lab.mac_of("lb01").expect("mac");
    assert_eq!(
        s.dual(),
        0,
        "two owners: {s:?}\n{}",
        all_logs(&procs, &etcd)
    );
    assert_eq!(s.empty(), 0, "no owner: {s:?}\n{}", all_logs(&procs, &etcd));
    assert_eq!(
        s.all_owners().into_iter().collect::<Vec<_>>(),
        vec![mac],
        "only lb01 may answer: {s:?}\n{}",
        all_logs(&procs, &etcd)
    );
    // The tokens expired several times over (etcd refused them: the members
    // log each refusal) ...
    let expired = etcd
        .log_tails(usize::MAX)
        .lines()
        .filter(|l| l.contains("jwt") && l.contains("expired"))
        .count();
    eprintln!("etcd refused {expired} expired tokens");
    assert!(
        expired > 0,
        "no token expired: is the JWT ttl in force?{}",
        etcd.log_tails(40)
    );
    // ... and lb01 renewed throughout: each refused call was retried under
    // a new token, unseen by the daemon.
    assert!(sampled >= 20, "{sampled} status samples in {window:?}");
    for p in procs {
        assert!(
            error_lines(p).is_empty(),
            "{} saw a store call fail: {:#?}",
            p.name,
            error_lines(p)
        );
    }
    assert!(
        not_reachable.is_empty(),
        "lb01's witness went unreachable (token expiry?): {not_reachable:#?}\n{}",
        all_logs(&procs, &etcd)
    );
    assert!(
        !incident_fired(&lab, "lb01", "witness_unreachable"),
        "lb01 was paged: {:?}\n{}",
        events(&lab, "lb01"),
        all_logs(&procs, &etcd)
    );
    let refused = lb02
        .log_text()
        .lines()
        .any(|l| l.contains("claim withheld") && l.contains("the VRID's key is held by lb01"));
    assert!(
        refused,
        "lb02 must say the key held by lb01 refuses its claim:\n{}",
        all_logs(&procs, &etcd)
    );
    let st = status_via(&lab, "lb01", "lb01.sock");
    assert_eq!(st["witness"]["reachable"], true, "status: {st}");
    assert_eq!(st["witness"]["vrids"][0]["ours"], true, "status: {st}");
    assert!(
        st["witness"]["lease_remaining_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0),
        "status: {st}"
    );
    let st = status_via(&lab, "lb02", "lb02.sock");
    assert_eq!(st["witness"]["vrids"][0]["holder"], "lb01", "status: {st}");
    assert_eq!(st["witness"]["reachable"], true, "status: {st}");
    assert_eq!(
        keys(&etcd),
        vec![(KEY.to_owned(), "lb01".to_owned())],
        "{}",
        all_logs(&procs, &etcd)
    );
}

#[test]
fn client_certificate_auth_without_a_password_takes_the_key() {
    let lab = lab("wtls-mt");
    let etcd = start(
        &lab,
        EtcdOptions {
            tls: true,
            client_cert_auth: true,
            auth: Some((USER.into(), PASSWORD.into())),
            ..EtcdOptions::default()
        },
    );
    let ca = etcd.ca_path().expect("ca");
    let (cert, key) = etcd.client_cert_paths().expect("client certificate");
    let secure = format!(
        "tls_ca = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        ca.display(),
        cert.display(),
        key.display()
    );
    let lb01 = start_splitguard(&lab, "lb01", &config(&lab, "lb01", &etcd, &secure));
    expect_owner(&lab, Some("lb01"), &[&lb01], "lb01 with mTLS");
    let kv = wait_for(Duration::from_secs(5), || {
        let kv = etcd.get_prefix("/lab/").ok()?;
        (!kv.is_empty()).then_some(kv)
    });
    assert_eq!(
        kv,
        Some(vec![(KEY.to_owned(), "lb01".to_owned())]),
        "{}",
        all_logs(&[&lb01], &etcd)
    );
    let st = status_via(&lab, "lb01", "lb01.sock");
    assert_eq!(st["witness"]["reachable"], true, "status: {st}");
    assert_eq!(st["witness"]["vrids"][0]["ours"], true, "status: {st}");
    assert!(error_lines(&lb01).is_empty(), "{}", lb01.log_text());
}

/// lb01 alone with `secure`: it must not claim within [`NO_CLAIM_WINDOW`];
/// returns its witness status (unreachable) and the process.
fn refused(lab: &Lab, etcd: &EtcdCluster<'_>, secure: &str) -> (serde_json::Value, LabProcess) {
    let lb01 = start_splitguard(lab, "lb01", &config(lab, "lb01", etcd, secure));
    let started = Instant::now();
    while started.elapsed() < NO_CLAIM_WINDOW {
        assert!(
            !holds(lab, "lb01"),
            "lb01 claimed without the witness after {:?}\n{}",
            started.elapsed(),
            all_logs(&[&lb01], etcd)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let st = wait_for(Duration::from_secs(5), || try_status(lab, "lb01"))
        .unwrap_or_else(|| panic!("no status\n{}", all_logs(&[&lb01], etcd)));
    let w = st["witness"].clone();
    assert_eq!(w["reachable"], false, "status: {st}");
    assert!(keys(etcd).is_empty(), "{}", all_logs(&[&lb01], etcd));
    (w, lb01)
}

#[test]
fn an_unrelated_ca_leaves_the_witness_unreachable_and_lb01_unclaimed() {
    let lab = lab("wtls-ca");
    let etcd = start(
        &lab,
        EtcdOptions {
            tls: true,
            ..EtcdOptions::default()
        },
    );
    let other = etcd.unrelated_ca().expect("a second CA");
    let (w, lb01) = refused(&lab, &etcd, &format!("tls_ca = \"{}\"\n", other.display()));
    let reason = w["unreachable"].as_str().unwrap_or_default().to_owned();
    eprintln!("unreachable: {reason}");
    let lower = reason.to_lowercase();
    // It names the lease's call, not the key reads, and the certificate.
    assert!(lower.starts_with("lease grant"), "{reason:?}");
    assert!(
        ["certificate", "tls", "issuer", "transport error"]
            .iter()
            .any(|w| lower.contains(w)),
        "the reason must name the TLS failure: {reason:?}\n{}",
        lb01.log_text()
    );
    expect_error_logged(&lb01);
}

#[test]
fn a_wrong_password_leaves_the_witness_unreachable_and_lb01_unclaimed() {
    let lab = lab("wtls-pwd");
    let etcd = start(
        &lab,
        EtcdOptions {
            tls: true,
            auth: Some((USER.into(), PASSWORD.into())),
            ..EtcdOptions::default()
        },
    );
    let (w, lb01) = refused(&lab, &etcd, &ca_and_password(&etcd, "not-the-password"));
    let reason = w["unreachable"].as_str().unwrap_or_default().to_owned();
    eprintln!("unreachable: {reason}");
    assert!(
        reason.to_lowercase().contains("authentication"),
        "the reason must name authentication: {reason:?}\n{}",
        lb01.log_text()
    );
    expect_error_logged(&lb01);
}
