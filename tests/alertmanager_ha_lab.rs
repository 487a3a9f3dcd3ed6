//! Alertmanager in HA (issue 22): `splitguard watch` on lb02, beside a
//! keepalived pair, pages through an `alertmanager` channel whose `urls` name
//! the three instances of a real, gossiping Alertmanager cluster on the
//! management segment (`splitguard_lab::alertmanager`); the cluster's receiver
//! is a webhook that records each notification.
//!
//! - All three up: the page reaches every instance and the receiver exactly
//!   once (the cluster dedupes what each instance was given).
//! - One instance killed before the page: the page still arrives once, the
//!   delivery is counted, the dead instance's copy is retried and given up
//!   after `instance_retry_for`, visible in `/metrics` and in one log line,
//!   its password masked everywhere.
//!
//! Needs root, keepalived and prometheus-alertmanager; fails, never skips,
//! without them. Every wait is bounded.

mod common;

use common::*;
use splitguard_lab::alertmanager::{AmCluster, DEDUP_WINDOW};
use splitguard_lab::{Lab, LabProcess, configs, wait_for};
use std::time::Duration;

const METRICS: &str = "http://192.0.2.6:9745/metrics";
/// From the split brain to the receiver: the page at once, then the cluster's
/// group wait and settle, with generous slack.
const PAGE_BOUND: Duration = Duration::from_secs(60);

fn lab(tag: &str) -> Lab {
    configs::alertmanager_lab(tag).expect("lab builds (run as root)")
}

fn cluster(lab: &Lab) -> AmCluster<'_> {
    AmCluster::start(lab).unwrap_or_else(|e| panic!("Alertmanager cluster: {e}"))
}

/// `splitguard watch` on lb02 with one alertmanager channel posting to `urls`.
fn watch(lab: &Lab, urls: &[String], extra: &str) -> LabProcess {
    let dir = lab.dir().display();
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let config = format!(
        "node = \"lb02\"\nstate_dir = \"{dir}/watch-state\"\ncontrol_socket = \"{dir}/watch.sock\"\n\
         metrics_listen = \"192.0.2.6:9745\"\n\n\
         [[watch]]\nvip = \"{VIP}\"\ninterface = \"eth0\"\nrole = \"backup\"\n\n\
         [[channel]]\ntype = \"alertmanager\"\nname = \"am\"\nurls = [{}]\ntimeout = \"2s\"\n{extra}\n\
         [alerts]\ngroup_wait = \"1s\"\n",
        urls.join(", ")
    );
    start_watch(lab, "lb02", &config)
}

/// keepalived on both nodes, lb01 master; then VRRP firewalled on lb02, which
/// takes the VIP too: a split brain, paged at once.
fn split_brain(lab: &Lab) -> (LabProcess, LabProcess) {
    let ka1 = start_keepalived(lab, "lb01", &ka_config("lb01", 150, 2, "1"));
    expect_owner(lab, Some("lb01"), &[&ka1], "keepalived lb01 master");
    let ka2 = start_keepalived(lab, "lb02", &ka_config("lb02", 100, 2, "1"));
    (ka1, ka2)
}

/// The receiver's notifications about a firing split brain.
fn split_brain_pages(c: &AmCluster<'_>) -> Vec<serde_json::Value> {
    c.notifications()
        .into_iter()
        .filter(|n| {
            n["status"] == "firing"
                && n["alerts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["labels"]["alertname"] == "split_brain"))
        })
        .collect()
}

/// Waits for the page at the receiver, then long enough for any duplicate
/// (the last instance's position wait, and more); returns every firing
/// split-brain notification.
fn pages_after_dedup(c: &AmCluster<'_>, procs: &[&LabProcess]) -> Vec<serde_json::Value> {
    wait_for(PAGE_BOUND, || {
        (!split_brain_pages(c).is_empty()).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the receiver got no page: {:?}\n{}{}",
            c.notifications(),
            logs(procs),
            c.log_tails(20)
        )
    });
    std::thread::sleep(DEDUP_WINDOW);
    split_brain_pages(c)
}

/// Whether instance `i` lists the split brain from lb02 (it was posted to it:
/// Alertmanager does not gossip alerts).
fn lists_split_brain(c: &AmCluster<'_>, i: usize) -> bool {
    c.alerts(i)
        .unwrap_or_default()
        .iter()
        .any(|a| a["labels"]["alertname"] == "split_brain" && a["labels"]["node"] == "lb02")
}

/// A sample of lb02's `/metrics` (0 when absent), read from gw.
fn metric(lab: &Lab, sample: &str) -> u64 {
    http_get(lab, METRICS)
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn one_page_reaches_every_instance_and_the_receiver_once() {
    let lab = lab("amha1");
    let c = cluster(&lab);
    let urls = c.urls();
    let w = watch(&lab, &urls, "");
    let (ka1, ka2) = split_brain(&lab);
    std::thread::sleep(Duration::from_secs(2));
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    let procs = [&ka1, &ka2, &w];

    let pages = pages_after_dedup(&c, &procs);
    assert_eq!(
        pages.len(),
        1,
        "the cluster notifies once: {pages:#?}\n{}",
        c.log_tails(20)
    );
    let alert = &pages[0]["alerts"][0];
    assert_eq!(alert["labels"]["node"], "lb02");
    assert_eq!(alert["labels"]["severity"], "critical");
    for i in 0..3 {
        assert!(
            lists_split_brain(&c, i),
            "instance {i} was not given the alert: {:?}\n{}",
            c.alerts(i),
            logs(&procs)
        );
    }
    assert_eq!(
        metric(&lab, "splitguard_alerts_sent_total{channel=\"am\"}"),
        1
    );
    for u in &urls {
        let up = format!("splitguard_alerts_instance_up{{channel=\"am\",url=\"{u}/\"}}");
        assert_eq!(metric(&lab, &up), 1, "{u}\n{}", http_get(&lab, METRICS));
    }
}

#[test]
fn a_killed_instance_is_retried_boundedly_and_the_page_still_arrives_once() {
    let lab = lab("amha2");
    let mut c = cluster(&lab);
    // am3 dies before the page; the others see it gone.
    c.kill(2).unwrap_or_else(|e| panic!("kill am3: {e}"));
    let am3 = c.addr(2).expect("am3");
    // Its URL carries a password, which must show masked everywhere.
    let mut urls = c.urls();
    urls[2] = format!("http://sg:s3cr3t-pw@{am3}:9093");
    let shown = format!("http://sg:***@{am3}:9093/");
    let w = watch(&lab, &urls, "instance_retry_for = \"3s\"\n");
    let (ka1, ka2) = split_brain(&lab);
    std::thread::sleep(Duration::from_secs(2));
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    let procs = [&ka1, &ka2, &w];

    let pages = pages_after_dedup(&c, &procs);
    assert_eq!(
        pages.len(),
        1,
        "the two left notify once: {pages:#?}\n{}",
        c.log_tails(20)
    );
    assert!(lists_split_brain(&c, 0) && lists_split_brain(&c, 1));
    // Delivered: counted once, not retried as a whole.
    assert_eq!(
        metric(&lab, "splitguard_alerts_sent_total{channel=\"am\"}"),
        1
    );
    assert_eq!(
        metric(&lab, "splitguard_alerts_retried_total{channel=\"am\"}"),
        0
    );

    // am3's copy: retried, then given up after instance_retry_for (3 s).
    let posts = |outcome: &str| {
        metric(
            &lab,
            &format!(
                "splitguard_alerts_instance_posts_total{{channel=\"am\",url=\"{shown}\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    wait_for(Duration::from_secs(30), || {
        (posts("gave_up") == 1).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "am3's copy never given up:\n{}\n{}",
            http_get(&lab, METRICS),
            w.log_text()
        )
    });
    let failed = posts("failed");
    assert!(failed >= 2, "the page and at least one retry: {failed}");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(posts("failed"), failed, "no retry after giving up");
    assert_eq!(posts("gave_up"), 1);
    assert_eq!(posts("accepted"), 0);
    let up = format!("splitguard_alerts_instance_up{{channel=\"am\",url=\"{shown}\"}}");
    assert_eq!(metric(&lab, &up), 0);

    // One line for the instance going down, naming it masked; the password
    // nowhere in the log or the metrics.
    let log = w.log_text();
    let down: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("alertmanager instance does not take alerts"))
        .collect();
    assert_eq!(down.len(), 1, "{log}");
    assert!(down[0].contains(&shown), "{}", down[0]);
    // Why, not only reqwest's "error sending request": am3 is gone, so its
    // host refuses the connection.
    assert!(down[0].contains("Connection refused"), "{}", down[0]);
    assert!(!log.contains("s3cr3t-pw"), "{log}");
    assert!(!http_get(&lab, METRICS).contains("s3cr3t-pw"));
}
