//! Ownership probes at scale (issue: 255 VIPs must not produce a burst the
//! segment or the arbiter chokes on): lb02 alone with 8 instances of 30 VIPs
//! each at 100 ms adverts, and gw holding one VIP of instance 5. No master
//! speaks, so every instance goes overdue and probes ownership round after
//! round, two requests per VIP: unpaced, that is 60 requests in one instant
//! per instance and about 480 in any 100 ms. gw's capture shows every VIP
//! probed and never more than the queue's rate (one per millisecond, with
//! slack for capture jitter), and the one answer that matters is matched to
//! its instance: lb02 claims the other 7 instances' VIPs and withholds all of
//! instance 5's. (A debug build's loop is too slow to make 251 one-VIP
//! instances burst; `splitguard lab bench --scale` runs the release build.)
//! Needs root; fails without it.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use splitguard_lab::configs::{GW_ADDR, LB02_ADDR, scale_vip};
use splitguard_lab::wait_for;

const INSTANCES: usize = 8;
const VIPS_EACH: usize = 30;
/// The instance (1-based) one of whose VIPs gw holds.
const TAKEN: usize = 5;
const CAPTURE: Duration = Duration::from_secs(8);
/// Most requests gw may see in any 100 ms: 100 at the queue's pace, plus
/// capture jitter.
const MOST_PER_100MS: usize = 125;

fn vips_of(k: usize) -> Vec<Ipv4Addr> {
    (VIPS_EACH * (k - 1)..VIPS_EACH * k)
        .map(|i| scale_vip(i).expect("in TEST-NET-1"))
        .collect()
}

fn config(lab: &splitguard_lab::Lab) -> String {
    let dir = lab.dir().display();
    let mut out = format!(
        "node = \"lb02\"\nstate_dir = \"{dir}/lb02-state\"\ncontrol_socket = \"{dir}/lb02.sock\"\n\n\
         [arbiter]\nreferences = [\"{GW_ADDR}\"]\n"
    );
    for k in 1..=INSTANCES {
        let vips: Vec<String> = vips_of(k).iter().map(|v| format!("\"{v}/24\"")).collect();
        out.push_str(&format!(
            "\n[[instance]]\nname = \"VI_{k}\"\ninterface = \"eth0\"\nvrid = {k}\npriority = 100\n\
             advert_interval = \"100ms\"\nversion = 3\nvips = [{}]\n",
            vips.join(", ")
        ));
    }
    out
}

/// How many of `vips` `host` has on eth0.
fn held(lab: &splitguard_lab::Lab, host: &str, vips: &[Ipv4Addr]) -> usize {
    let out = lab
        .run(host, &["ip", "-4", "addr", "show", "dev", "eth0"])
        .expect("ip addr");
    let text = String::from_utf8_lossy(&out.stdout);
    vips.iter()
        .filter(|v| text.contains(&format!("inet {v}/")))
        .count()
}

#[test]
fn overdue_instances_probe_at_a_bounded_rate_and_the_answer_finds_its_instance() {
    let lab = pair_lab("probepace");
    let taken = vips_of(TAKEN)[VIPS_EACH / 2];
    lab.run(
        "gw",
        &["ip", "addr", "add", &format!("{taken}/24"), "dev", "eth0"],
    )
    .expect("gw takes the VIP");
    // ARP requests whose sender is lb02, as gw receives them.
    let capture = gw_tshark(&lab, &format!("arp src host {LB02_ADDR}"))
        .args([
            "-a",
            &format!("duration:{}", CAPTURE.as_secs()),
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "arp.opcode",
            "-e",
            "arp.dst.proto_ipv4",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tshark starts");
    // tshark needs a moment to open the interface; the first probes leave one
    // and a half advert intervals after lb02 starts.
    std::thread::sleep(Duration::from_millis(700));
    let lb02 = start_splitguard(&lab, "lb02", &config(&lab));
    let procs = [&lb02];

    let out = capture.wait_with_output().expect("tshark ends");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut times = Vec::new();
    let mut probed = BTreeSet::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        // Requests only (opcode 1) to a scale VIP: the probes, not GARPs.
        if f.len() < 3 || f[1] != "1" {
            continue;
        }
        let (Ok(t), Ok(vip)) = (f[0].parse::<f64>(), f[2].parse::<Ipv4Addr>()) else {
            continue;
        };
        if vip == LB02_ADDR {
            continue;
        }
        times.push(t);
        probed.insert(vip);
    }
    assert!(
        times.len() > 2 * INSTANCES * VIPS_EACH,
        "gw saw {} requests from lb02\n{}\n{}",
        times.len(),
        String::from_utf8_lossy(&out.stderr),
        logs(&procs)
    );
    let missing: Vec<Ipv4Addr> = (1..=INSTANCES)
        .flat_map(vips_of)
        .filter(|v| !probed.contains(v))
        .collect();
    assert!(missing.is_empty(), "never probed: {missing:?}");
    times.sort_by(f64::total_cmp);
    let mut busiest = 0;
    let mut from = 0;
    for (to, t) in times.iter().enumerate() {
        while t - times[from] >= 0.1 {
            from += 1;
        }
        busiest = busiest.max(to - from + 1);
    }
    eprintln!("{} requests, at most {busiest} within 100 ms", times.len());
    assert!(
        busiest <= MOST_PER_100MS,
        "{busiest} requests within 100 ms (at most {MOST_PER_100MS})"
    );

    // gw's answer closed the gate of its instance alone: every other
    // instance's VIPs are claimed, none of instance 5's.
    let others: Vec<Ipv4Addr> = (1..=INSTANCES)
        .filter(|&k| k != TAKEN)
        .flat_map(vips_of)
        .collect();
    let claimed = wait_for(BOUND, || {
        (held(&lab, "lb02", &others) == others.len()).then_some(())
    });
    assert!(
        claimed.is_some(),
        "lb02 holds {} of the {} VIPs nobody else has\n{}",
        held(&lab, "lb02", &others),
        others.len(),
        logs(&procs)
    );
    assert_eq!(
        held(&lab, "lb02", &vips_of(TAKEN)),
        0,
        "lb02 claimed instance {TAKEN}, one of whose VIPs gw holds\n{}",
        logs(&procs)
    );
    assert_eq!(held(&lab, "gw", &[taken]), 1, "gw lost its address");
    assert!(!lb02.log_text().contains("panicked"), "{}", lb02.log_text());
}
