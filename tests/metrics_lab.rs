//! `/metrics` scraped by a real Prometheus (Debian `prometheus`) in the lab, the
//! target up and the series queryable; `promtool check metrics` passes on the
//! exposition. Needs root and prometheus; fails without them.

mod common;

use common::*;
use splitguard_lab::wait_for;
use std::time::Duration;

#[test]
fn prometheus_scrapes_metrics_and_promtool_accepts_them() {
    assert!(
        std::path::Path::new("/usr/bin/prometheus").exists(),
        "install the Debian package prometheus (contrib/test.sh does)"
    );
    let lab = pair_lab("metrics");
    let cfg = sg_config(&lab, "lb01", 150, 2, "1s", "\n[arbiter]\nenabled = false\n").replacen(
        "\n\n[[instance]]",
        "\nmetrics_listen = \"192.0.2.5:9745\"\n\n[[instance]]",
        1,
    );
    let lb01 = start_splitguard(&lab, "lb01", &cfg);
    expect_owner(&lab, Some("lb01"), &[&lb01], "lb01 master");

    let text = http_get(&lab, "http://192.0.2.5:9745/metrics");
    assert!(
        text.contains("splitguard_instance_state{instance=\"VI_1\",state=\"MASTER\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("splitguard_adverts_sent_total{instance=\"VI_1\"}"),
        "{text}"
    );
    // promtool reads the exposition on stdin.
    let exposition = lab.write_file("metrics.txt", &text).expect("write");
    let check = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("promtool check metrics < {}", exposition.display()),
        ])
        .output()
        .expect("promtool runs");
    assert!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let prom_cfg = lab
        .write_file(
            "prometheus.yml",
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: splitguard\n    static_configs:\n      - targets: ['192.0.2.5:9745']\n",
        )
        .expect("config");
    let _prom = lab
        .spawn(
            "gw",
            "prometheus",
            &[
                "prometheus",
                &format!("--config.file={}", prom_cfg.display()),
                &format!("--storage.tsdb.path={}", lab.dir().join("tsdb").display()),
                "--web.listen-address=192.0.2.254:9090",
            ],
        )
        .expect("prometheus starts");
    let up = wait_for(Duration::from_secs(60), || {
        let t = http_get(&lab, "http://192.0.2.254:9090/api/v1/targets");
        t.contains("\"health\":\"up\"").then_some(t)
    });
    assert!(
        up.is_some(),
        "target never up: {}",
        http_get(&lab, "http://192.0.2.254:9090/api/v1/targets")
    );
    let q = wait_for(Duration::from_secs(30), || {
        let r = http_get(
            &lab,
            "http://192.0.2.254:9090/api/v1/query?query=splitguard_instance_state%7Bstate%3D%22MASTER%22%7D",
        );
        r.contains("\"VI_1\"").then_some(r)
    })
    .expect("the series is queryable");
    assert!(q.contains("\"1\"]"), "{q}");
}
